"""The big screen's headline figures as JSON, for other screens (a wall controller, a provincial
dashboard): ``GET /api/kpis`` for the city, ``GET /api/kpis?county=211202`` for one district.
The same numbers as the /bigscreen page, from ``services.bigscreen.kpis`` (definitions there).

Access: ``bigscreen.view`` (every role). Without ``county`` a principal of a district (or of a street,
community or grid inside it) gets that district's figures, a city-level one the city's; ``county``
outside the caller's jurisdiction (and not the district the caller is in) is refused with 403."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from api.deps import PrincipalDep, StoreDep, forbidden
from services import bigscreen as bs

router = APIRouter(tags=["big screen"])


@router.get("/api/kpis", summary="Headline figures of the city or one district")
def get_kpis(
    store: StoreDep,
    principal: PrincipalDep,
    county: Annotated[str | None, Query(pattern=r"^\d{6}$", description="a district's 6-digit code")] = None,
) -> JSONResponse:
    own = principal.prefix[:6] if len(principal.prefix) >= 6 else None  # the caller's district, if below the city
    if county is None:
        county = own
    elif not (principal.covers(county) or county == own):
        raise forbidden(f"the district {county} is outside {principal.unit_code}")
    return JSONResponse(bs.kpis(store, county=county).as_dict(), headers={"Cache-Control": "no-store"})
