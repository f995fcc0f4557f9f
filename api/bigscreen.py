"""The big screen's headline figures as JSON, for other screens (a wall controller, a provincial
dashboard): ``GET /api/kpis`` for the city, ``GET /api/kpis?county=211202`` for one district.
The same numbers as the /bigscreen page, from ``services.bigscreen.kpis`` (definitions there)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from api.deps import StoreDep
from services import bigscreen as bs

router = APIRouter(tags=["big screen"])


@router.get("/api/kpis", summary="Headline figures of the city or one district")
def get_kpis(
    store: StoreDep,
    county: Annotated[str | None, Query(pattern=r"^\d{6}$", description="a district's 6-digit code")] = None,
) -> JSONResponse:
    return JSONResponse(bs.kpis(store, county=county).as_dict(), headers={"Cache-Control": "no-store"})
