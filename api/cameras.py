"""Cameras over HTTP: which cameras see a point or a case (video dispatch), status pushed by the
media gateway, stored coverage.

- ``GET /api/cameras/seeing?lon=..&lat=..`` or ``?case_id=..`` (also ``GET /api/cases/{id}/cameras``);
- ``PUT /api/cameras/{id}/status`` ``{"online": true}`` and ``POST /api/cameras/status``
  ``{"cameras": [{"id": ..., "online": ...}, ...]}`` (≤ 5,000; unknown ids are listed, not fatal);
- ``GET /api/cameras/coverage?level=village|grid``.

Access (api/deps.py): ``cameras.view`` to read, ``cameras.manage`` to push status. Only cameras
(and coverage rows, and cases) inside the caller's jurisdiction are seen or changed; a camera
outside it is answered as an unknown one (404, or listed under ``unknown``).
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.cases import NO_CONTROL, _records, in_scope
from api.deps import Int64Path, Int64Query, PrincipalDep, StoreDep
from services import cameras as cams
from services.auth import Principal
from store.base import Store

router = APIRouter(tags=["cameras"])

NO_CONTROL_CHAR = r"[\x00-\x1f\x7f]"


def _error(e: cams.CameraError) -> JSONResponse:
    return JSONResponse({"detail": str(e)}, status_code=404 if e.code == "not_found" else 422)


def _seeing_body(store: Store, principal: Principal, target: tuple[float, float], table: Any) -> dict[str, Any]:
    rows = _records(table)
    mine = _visible_cameras(store, principal, [str(r["id"]) for r in rows])
    return {"lon": target[0], "lat": target[1], "cameras": [r for r in rows if str(r["id"]) in mine]}


def _visible_cameras(store: Store, principal: Principal, ids: list[str]) -> set[str]:
    """Which of the camera ids exist inside the principal's jurisdiction (by the camera's unit)."""
    if not ids:
        return set()
    rows = store.read("cameras", where={"id": sorted(set(ids))}, columns=["id", "unit_code"], geometry=False)
    return {str(i) for i, u in zip(rows["id"], rows["unit_code"], strict=True) if principal.covers(u)}


def _no_case(case_id: int) -> JSONResponse:
    return JSONResponse({"detail": f"there is no case {case_id}"}, status_code=404)


@router.get("/api/cameras/seeing", summary="Cameras that see a point or a case")
def seeing(
    store: StoreDep,
    principal: PrincipalDep,
    lon: float | None = None,
    lat: float | None = None,
    case_id: Int64Query = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
) -> JSONResponse:
    try:
        if case_id is not None:
            if not in_scope(store, principal, case_id):
                return _no_case(case_id)
            target, table = cams.seeing_case(store, case_id, limit=limit)
        elif lon is not None and lat is not None and math.isfinite(lon) and math.isfinite(lat):
            target, table = (lon, lat), cams.seeing(store, lon=lon, lat=lat, limit=limit)
        else:
            return JSONResponse({"detail": "give lon and lat, or case_id"}, status_code=422)
    except cams.CameraError as e:
        return _error(e)
    return JSONResponse(_seeing_body(store, principal, target, table))


@router.get("/api/cases/{case_id}/cameras", summary="Cameras that see a case")
def case_cameras(
    case_id: Int64Path, store: StoreDep, principal: PrincipalDep, limit: Annotated[int, Query(ge=1, le=100)] = 10
) -> JSONResponse:
    if not in_scope(store, principal, case_id):
        return _no_case(case_id)
    try:
        target, table = cams.seeing_case(store, case_id, limit=limit)
    except cams.CameraError as e:
        return _error(e)
    return JSONResponse(_seeing_body(store, principal, target, table))


class Status(BaseModel):
    model_config = ConfigDict(extra="forbid")
    online: bool


class StatusItem(Status):
    id: str = Field(min_length=1, max_length=40, pattern=NO_CONTROL)


class StatusBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cameras: list[StatusItem] = Field(min_length=1, max_length=5000)


@router.put("/api/cameras/{camera_id}/status", summary="Online/offline of one camera (media gateway)")
def put_status(camera_id: str, body: Status, store: StoreDep, principal: PrincipalDep) -> JSONResponse:
    if not camera_id or len(camera_id) > 40 or re.search(NO_CONTROL_CHAR, camera_id):
        return JSONResponse({"detail": f"there is no camera {camera_id[:60]!r}"}, status_code=404)
    if not _visible_cameras(store, principal, [camera_id]):
        return JSONResponse({"detail": f"there is no camera {camera_id!r}"}, status_code=404)
    out = cams.set_status(store, [(camera_id, body.online)])
    if out["unknown"]:
        return JSONResponse({"detail": f"there is no camera {camera_id!r}"}, status_code=404)
    return JSONResponse({"id": camera_id, "online": body.online, "changed": bool(out["updated"])})


@router.post("/api/cameras/status", summary="Online/offline of many cameras at once (media gateway)")
def post_status(body: StatusBatch, store: StoreDep, principal: PrincipalDep) -> JSONResponse:
    mine = _visible_cameras(store, principal, [c.id for c in body.cameras])
    out = cams.set_status(store, [(c.id, c.online) for c in body.cameras if c.id in mine])
    out["unknown"] = out["unknown"] + [c.id for c in body.cameras if c.id not in mine]  # outside: as unknown
    return JSONResponse(out)


@router.get("/api/cameras/coverage", summary="Stored coverage per community or grid")
def get_coverage(
    store: StoreDep,
    principal: PrincipalDep,
    level: str = "village",
    limit: Annotated[int, Query(ge=1, le=20000)] = 1000,
) -> JSONResponse:
    try:
        table = cams.coverage_table(store, level=level, unit_prefix=principal.prefix).head(limit)
    except cams.CameraError as e:
        return _error(e)
    return JSONResponse({"level": level, "rows": _records(table)})
