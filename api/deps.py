"""What the routers share: the store the app opened (``app.state.store``, set in the lifespan)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from store.base import Store


def get_store(request: Request) -> Store:
    """FastAPI dependency: the store of the running app (a connection passed in, not a global)."""
    return request.app.state.store  # type: ignore[no-any-return]


StoreDep = Annotated[Store, Depends(get_store)]
