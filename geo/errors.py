"""Exceptions raised by the spatial core."""

from __future__ import annotations

__all__ = ["CRSError"]


class CRSError(ValueError):
    """A coordinate reference system is missing, unknown or unusable for the requested operation.

    A ``ValueError`` subclass, so callers that already catch ``ValueError`` keep working.
    """
