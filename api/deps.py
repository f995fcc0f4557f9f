"""What the routers share: the store the app opened (``app.state.store``, set in the lifespan)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Query, Request
from pydantic import Field

from store.base import Store


def get_store(request: Request) -> Store:
    """FastAPI dependency: the store of the running app (a connection passed in, not a global)."""
    return request.app.state.store  # type: ignore[no-any-return]


StoreDep = Annotated[Store, Depends(get_store)]


# Integers the store can hold (SQLite and PostgreSQL bigint): a larger id, revision or staff id in a
# request is refused with 422 instead of failing in the store.
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
Int64 = Annotated[int, Field(ge=INT64_MIN, le=INT64_MAX)]
Int64Path = Annotated[int, Path(ge=INT64_MIN, le=INT64_MAX)]
Int64Query = Annotated[int | None, Query(ge=INT64_MIN, le=INT64_MAX)]
