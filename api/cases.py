"""Cases and dispatch over HTTP (``/api/cases``).

- ``POST /api/cases`` -- a grid worker's report from the phone (JSON, photo URLs), by device id;
- ``GET /api/cases`` -- open cases (filters: state, category, bbox, limit);
- ``GET /api/cases/{id}`` -- one case with its timeline;
- ``GET /api/cases/{id}/candidates`` -- staff ranked for it (distance, ETA, workload, reasons);
- ``POST /api/cases/{id}/assign`` / ``unassign`` -- compare-and-set: of two dispatchers assigning
  the same case at once exactly one gets 200, the other 409 naming who got it;
- ``POST /api/cases/{id}/actions/{action}`` -- any other step of the loop (accept, resolve, ...);
- ``POST /api/cases/{id}/summon`` and ``.../departments/{code}/{accept|report}`` -- 吹哨报到;
- ``POST /api/cases/bulk`` -- many assignments (or unassignments) at once;
- ``POST /api/cases/escalate`` -- run the escalation sweep now (the API also runs it every minute).

Errors are ``{"detail": text}`` (plus ``current`` on 409): 404 unknown case, 409 lost race or wrong
state, 422 invalid values, 403 unknown device.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import Int64, Int64Path, StoreDep
from services import cases as cs
from services import dispatch
from store.base import Store

router = APIRouter(prefix="/api/cases", tags=["cases"])

NO_CONTROL = r"^[^\x00-\x1f\x7f]+$"  # identifiers: no NUL or other control characters
STATUS = {"not_found": 404, "conflict": 409, "bad_state": 409}


def _error(e: cs.CaseError) -> JSONResponse:
    body: dict[str, Any] = {"detail": str(e), "code": e.code}
    if e.field:
        body["field"] = e.field
    if isinstance(e, cs.CaseConflict):
        body["current"] = e.current
    return JSONResponse(body, status_code=STATUS.get(e.code, 422))


def _jsonable(value: Any) -> Any:
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and not isinstance(value, str | bytes):
        try:
            return _jsonable(value.item())
        except (ValueError, AttributeError):
            return str(value)
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [_jsonable(r) for r in frame.drop(columns=["geometry"], errors="ignore").to_dict("records")]


def case_json(case: dict[str, Any]) -> dict[str, Any]:
    out = dict(case)
    summons = out.pop("summons", None)
    out["summons"] = _records(summons) if isinstance(summons, pd.DataFrame) else []
    return _jsonable(out)  # type: ignore[no-any-return]


class Report(BaseModel):
    """A grid worker's report from the phone."""

    model_config = ConfigDict(extra="forbid")
    device_id: str = Field(min_length=1, max_length=100, pattern=NO_CONTROL)
    category: str = Field(min_length=1, max_length=100)
    lat: float
    lon: float
    description: str | None = None
    address: str | None = None
    photo_urls: list[str] = Field(default_factory=list)
    urgency: Int64 | None = None
    reported_at: str | None = None


class Assign(BaseModel):
    model_config = ConfigDict(extra="forbid")
    staff_id: Int64
    expected_rev: Int64 | None = None
    actor: str = Field(default="dispatcher", min_length=1, max_length=100)


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid")
    expected_rev: Int64 | None = None
    actor: str = Field(default="dispatcher", min_length=1, max_length=100)
    note: str | None = None
    staff_id: Int64 | None = None
    satisfaction: Int64 | None = None
    kind: str | None = None


class Summon(BaseModel):
    model_config = ConfigDict(extra="forbid")
    departments: list[str] = Field(min_length=1, max_length=20)
    due_hours: float = 24.0
    note: str | None = None
    actor: str = Field(default="dispatcher", min_length=1, max_length=100)


class Respond(BaseModel):
    model_config = ConfigDict(extra="forbid")
    actor: str = Field(min_length=1, max_length=100)
    note: str | None = None


class Bulk(BaseModel):
    model_config = ConfigDict(extra="forbid")
    action: str = Field(default="assign", pattern="^(assign|unassign)$")
    pairs: list[tuple[Int64, Int64 | None]] = Field(min_length=1, max_length=500)
    actor: str = Field(default="dispatcher", min_length=1, max_length=100)


def _actor(text: str) -> str:
    return cs.clean_text(text, limit=100, name="actor") or "api"


@router.post("", status_code=201, summary="A grid worker's report from the phone")
def report(body: Report, store: StoreDep) -> JSONResponse:
    staff = store.read("staff", where={"device_id": body.device_id}, columns=["id", "name"])
    if not len(staff):
        return JSONResponse({"detail": f"unknown device {body.device_id!r}"}, status_code=403)
    sid = int(staff["id"].iloc[0])
    try:
        made = cs.create_case(
            store,
            cs.NewCase(
                category=body.category,
                lon=body.lon,
                lat=body.lat,
                description=body.description,
                address=body.address,
                source="app",
                reporter_name=str(staff["name"].iloc[0]),
                photo_urls=body.photo_urls,
                urgency=body.urgency,
                reported_at=body.reported_at,
                actor=f"staff:{sid}",
            ),
        )
    except (cs.CaseError, ValueError) as e:
        return _error(e if isinstance(e, cs.CaseError) else cs.CaseError(str(e)))
    return JSONResponse(
        {"id": made.case_id, "created": made.created, "duplicate_of": made.duplicate_of, "reason": made.reason},
        status_code=201 if made.created else 200,
    )


@router.get("", summary="Open cases")
def list_cases(
    store: StoreDep,
    state: Annotated[list[str] | None, Query()] = None,
    category: Annotated[list[str] | None, Query()] = None,
    bbox: Annotated[str | None, Query(description="min_lon,min_lat,max_lon,max_lat")] = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> JSONResponse:
    box = None
    if bbox:
        try:
            parts = [float(v) for v in bbox.split(",")]
            if len(parts) != 4 or not all(math.isfinite(v) for v in parts):
                raise ValueError
            box = (parts[0], parts[1], parts[2], parts[3])
        except ValueError:
            return JSONResponse({"detail": "bbox is min_lon,min_lat,max_lon,max_lat"}, status_code=422)
    states = state or list(cs.OPEN_STATES)
    bad = [s for s in states if s not in cs.OPEN_STATES + cs.FINAL_STATES]
    if bad:
        return JSONResponse({"detail": f"unknown state(s): {', '.join(bad)}"}, status_code=422)
    frame = cs.open_cases(store, bbox=box, states=states, categories_=category, limit=limit)
    rows = _records(frame.assign(lon=frame.geometry.x, lat=frame.geometry.y) if len(frame) else frame)
    return JSONResponse({"cases": rows, "count": len(rows)})


@router.get("/{case_id}", summary="One case and its timeline")
def one(case_id: Int64Path, store: StoreDep) -> JSONResponse:
    try:
        case = cs.get_case(store, case_id)
    except cs.CaseError as e:
        return _error(e)
    return JSONResponse({"case": case_json(case), "timeline": _records(cs.timeline(store, case_id))})


@router.get("/{case_id}/candidates", summary="Staff ranked for the case")
def candidates(
    case_id: Int64Path,
    store: StoreDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    roads: bool = True,
) -> JSONResponse:
    try:
        got = dispatch.candidates(store, case_id, limit=limit, roads=roads)
    except cs.CaseError as e:
        return _error(e)
    return JSONResponse(
        {
            "case_id": got.case_id,
            "rev": got.rev,
            "state": got.state,
            "lon": got.lon,
            "lat": got.lat,
            "grid_code": got.grid_code,
            "candidates": _records(got.table),
        }
    )


@router.post("/{case_id}/assign", summary="Assign (dispatch) or reassign the case")
def assign(case_id: Int64Path, body: Assign, store: StoreDep) -> JSONResponse:
    try:
        case = cs.assign(store, case_id, body.staff_id, actor=_actor(body.actor), expected_rev=body.expected_rev)
    except cs.CaseError as e:
        return _error(e)
    return JSONResponse({"case": case_json(case)})


@router.post("/{case_id}/unassign", summary="Take the case back from its assignee")
def unassign(case_id: Int64Path, body: Action, store: StoreDep) -> JSONResponse:
    return _act(store, case_id, "unassign", body)


@router.post("/{case_id}/actions/{action}", summary="A step of the closed loop")
def action(case_id: Int64Path, action: str, body: Action, store: StoreDep) -> JSONResponse:
    if action not in cs.ACTIONS:
        return JSONResponse({"detail": f"unknown action {action!r}; one of {', '.join(cs.ACTIONS)}"}, status_code=404)
    return _act(store, case_id, action, body)


def _act(store: Store, case_id: int, action: str, body: Action) -> JSONResponse:
    try:
        case = cs.act(
            store,
            case_id,
            action,
            actor=_actor(body.actor),
            expected_rev=body.expected_rev,
            staff_id=body.staff_id,
            note=body.note,
            satisfaction=body.satisfaction,
            kind=body.kind,
        )
    except cs.CaseError as e:
        return _error(e)
    return JSONResponse({"case": case_json(case)})


@router.post("/{case_id}/summon", summary="Summon departments to report (吹哨报到)")
def summon(case_id: Int64Path, body: Summon, store: StoreDep) -> JSONResponse:
    try:
        case = cs.summon(store, case_id, body.departments, actor=_actor(body.actor), due_hours=body.due_hours,
                         note=body.note)  # fmt: skip
    except cs.CaseError as e:
        return _error(e)
    return JSONResponse({"case": case_json(case)})


@router.post("/{case_id}/departments/{department}/{step}", summary="A summoned department accepts or reports back")
def respond(case_id: Int64Path, department: str, step: str, body: Respond, store: StoreDep) -> JSONResponse:
    if step not in ("accept", "report"):
        return JSONResponse({"detail": "step is accept or report"}, status_code=404)
    try:
        cs.department_responds(store, case_id, department, actor=_actor(body.actor), step=step, note=body.note)
        case = cs.get_case(store, case_id)
    except cs.CaseError as e:
        return _error(e)
    return JSONResponse({"case": case_json(case)})


@router.post("/bulk", summary="Many assignments or unassignments at once")
def bulk(body: Bulk, store: StoreDep) -> JSONResponse:
    out = cs.bulk(store, body.pairs, actor=_actor(body.actor), action=body.action)
    return JSONResponse(
        {"ok": sum(o.ok for o in out), "results": [{"case_id": o.case_id, "ok": o.ok, "detail": o.message,
                                                    "code": o.code} for o in out]}  # fmt: skip
    )


@router.post("/escalate", summary="Run the escalation sweep now")
def escalate(store: StoreDep) -> JSONResponse:
    out = cs.escalate_due(store)
    return JSONResponse({"escalated": [o.case_id for o in out if o.ok], "skipped": [o.case_id for o in out if not o.ok]})
