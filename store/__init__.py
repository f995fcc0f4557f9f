"""The database layer: one ``Store`` seam, two implementations (SQLite and PostGIS).

    from store import open_store
    store = open_store()                      # $DATABASE_URL or sqlite:///var/gridconsole.sqlite
    store = open_store("sqlite:///data/x.sqlite")
    store = open_store("postgresql://user@host:5432/db")
"""

from __future__ import annotations

import os

from store.base import BBox, ConflictError, Range, Store, StoreError

__all__ = ["BBox", "ConflictError", "Range", "Store", "StoreError", "open_store", "DEFAULT_URL"]

DEFAULT_URL = "sqlite:///var/gridconsole.sqlite"


def open_store(url: str | None = None) -> Store:
    """Open (and migrate) the store at ``url``.

    ``sqlite:///relative/path.sqlite``, ``sqlite:////absolute/path.sqlite``, a bare file path,
    ``postgresql://...`` or ``postgres://...``. Without a url: env ``DATABASE_URL``, else
    ``sqlite:///var/gridconsole.sqlite`` relative to the current directory (its folder is created).
    """
    if url is None:
        url = os.environ.get("DATABASE_URL") or DEFAULT_URL
    if not isinstance(url, str) or not url.strip():
        raise StoreError(f"bad store url {url!r}")
    url = url.strip()
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme in ("postgresql", "postgres") or scheme.startswith("postgresql+"):
        from store.postgis import PostGISStore

        if scheme.startswith("postgresql+"):  # tolerate SQLAlchemy-style driver suffixes
            url = "postgresql://" + url.split("://", 1)[1]
        return PostGISStore(url)
    if scheme in ("sqlite", ""):
        from store.sqlite import SQLiteStore, sqlite_path_from_url

        path = sqlite_path_from_url(url)
        return SQLiteStore(path, url=url if scheme else f"sqlite:///{path}")
    raise StoreError(f"unsupported store url {url!r}: use sqlite:///path/to/file.sqlite or postgresql://...")
