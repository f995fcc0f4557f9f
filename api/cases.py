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

Access (api/deps.py has the table): a Bearer token on every route; a case outside the caller's
jurisdiction is answered exactly as an unknown one (404; in ``bulk`` a ``not_found`` result).
Residents' names, phones and e-mails (and the e-mail in an Open311 reporter's actor name) come
back as ``***`` to roles without ``cases.personal``; every response that does carry them is
audited as ``export.personal`` with the number of cases.
"""

from __future__ import annotations

import math
from typing import Annotated, Any

import pandas as pd
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from api.deps import (
    ASSIGN_ACTIONS,
    Int64,
    Int64Path,
    PrincipalDep,
    StoreDep,
    case_visible,
    forbidden,
    note_export,
)
from services import auth, dispatch
from services import cases as cs
from services.auth import Principal
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


# ----------------------------------------------------------------------------- access

OPEN311_ACTOR = "open311:"  # services/open311.py names a citizen's events open311:<e-mail or device>


def _has_personal(record: dict[str, Any]) -> bool:
    return any(record.get(c) not in (None, "", auth.REDACTED) for c in auth.PERSONAL_COLUMNS)


def _citizen_actor(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(OPEN311_ACTOR) and value != OPEN311_ACTOR + "anonymous"


def _shown_timeline(principal: Principal, rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    """The timeline as the principal may see it, and whether it names a citizen."""
    named = any(_citizen_actor(r.get("actor")) for r in rows)
    if not named or principal.can("cases.personal"):
        return rows, named
    return [r | {"actor": OPEN311_ACTOR + auth.REDACTED} if _citizen_actor(r.get("actor")) else r for r in rows], named


def shown_case(request: Request, principal: Principal, case: dict[str, Any],
               timeline: list[dict[str, Any]] | None = None) -> dict[str, Any]:  # fmt: skip
    """``{"case": ..., ["timeline": ...]}`` redacted for the principal; a response carrying a
    resident's personal data is audited (export.personal)."""
    body = case_json(case)
    personal = _has_personal(body)
    body = auth.redact_record(principal, body)
    out: dict[str, Any] = {"case": body}
    if timeline is not None:
        out["timeline"], named = _shown_timeline(principal, timeline)
        personal = personal or named
    note_export(request, principal, int(personal))
    return out


def not_found(case_id: int) -> JSONResponse:
    """The answer for a case that does not exist -- and for one outside the jurisdiction."""
    return _error(cs.CaseError(f"there is no case {case_id}", code="not_found"))


CODE_COLUMNS = ["id", "county_code", "township_code", "village_code", "grid_code"]


def visible_ids(store: Store, principal: Principal, ids: list[int]) -> set[int]:
    """Which of the case ids exist inside the principal's jurisdiction."""
    if not ids:
        return set()
    rows = store.read("cases", where={"id": sorted(set(ids))}, columns=CODE_COLUMNS, geometry=False)
    return {int(r["id"]) for r in rows.to_dict("records") if case_visible(principal, r)}


def in_scope(store: Store, principal: Principal, case_id: int) -> bool:
    return case_id in visible_ids(store, principal, [case_id])


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


def _actor(text: str, principal: Principal) -> str:
    """Who the case timeline says acted: the signed-in person for a console session; for an API
    token (another system), the token's name and the person that system names in ``actor``
    (``dispatch-system/wang``), so a caller cannot pass itself off as someone else."""
    named = cs.clean_text(text, limit=100, name="actor") or "api"
    if principal.kind == "user":
        return principal.name
    return f"{principal.name}/{named}"


@router.post("", status_code=201, summary="A grid worker's report from the phone")
def report(body: Report, store: StoreDep, principal: PrincipalDep) -> JSONResponse:
    bound = device_of(principal)
    if principal.role == "grid_worker" and bound is not None and bound != body.device_id:
        raise forbidden(f"this token is bound to the device {bound!r}")
    staff = store.read("staff", where={"device_id": body.device_id}, columns=["id", "name", "unit_code"])
    if not len(staff) or not principal.covers(staff["unit_code"].iloc[0]):
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
    principal: PrincipalDep,
    request: Request,
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
    # the jurisdiction: an indexed range on the principal's own level's code column (auth.case_scope)
    frame = cs.open_cases(store, bbox=box, states=states, categories_=category, scope=auth.case_scope(principal)).head(limit)
    rows = _records(frame.assign(lon=frame.geometry.x, lat=frame.geometry.y) if len(frame) else frame)
    note_export(request, principal, sum(_has_personal(r) for r in rows))
    rows = [auth.redact_record(principal, r) for r in rows]
    return JSONResponse({"cases": rows, "count": len(rows)})


@router.get("/{case_id}", summary="One case and its timeline")
def one(case_id: Int64Path, store: StoreDep, principal: PrincipalDep, request: Request) -> JSONResponse:
    try:
        case = cs.get_case(store, case_id)
    except cs.CaseError as e:
        return _error(e)
    if not case_visible(principal, case):
        return not_found(case_id)
    return JSONResponse(shown_case(request, principal, case, _records(cs.timeline(store, case_id))))


@router.get("/{case_id}/candidates", summary="Staff ranked for the case")
def candidates(
    case_id: Int64Path,
    store: StoreDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 10,
    roads: bool = True,
) -> JSONResponse:
    if not in_scope(store, principal, case_id):
        return not_found(case_id)
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
            "candidates": [auth.redact_record(principal, r) for r in _records(got.table)],
        }
    )


@router.post("/{case_id}/assign", summary="Assign (dispatch) or reassign the case")
def assign(
    case_id: Int64Path, body: Assign, store: StoreDep, principal: PrincipalDep, request: Request
) -> JSONResponse:
    if not in_scope(store, principal, case_id):
        return not_found(case_id)
    try:
        case = cs.assign(store, case_id, body.staff_id, actor=_actor(body.actor, principal), expected_rev=body.expected_rev)
    except cs.CaseError as e:
        return _error(e)
    return JSONResponse(shown_case(request, principal, case))


@router.post("/{case_id}/unassign", summary="Take the case back from its assignee")
def unassign(
    case_id: Int64Path, body: Action, store: StoreDep, principal: PrincipalDep, request: Request
) -> JSONResponse:
    return _act(store, principal, request, case_id, "unassign", body)


@router.post("/{case_id}/actions/{action}", summary="A step of the closed loop")
def action(
    case_id: Int64Path, action: str, body: Action, store: StoreDep, principal: PrincipalDep, request: Request
) -> JSONResponse:
    if action not in cs.ACTIONS:
        return JSONResponse({"detail": f"unknown action {action!r}; one of {', '.join(cs.ACTIONS)}"}, status_code=404)
    if action in ASSIGN_ACTIONS and not principal.can("cases.assign"):
        raise forbidden(f"the role {principal.role} may not cases.assign")
    return _act(store, principal, request, case_id, action, body)


def _act(store: Store, principal: Principal, request: Request, case_id: int, action: str, body: Action) -> JSONResponse:
    if not in_scope(store, principal, case_id):
        return not_found(case_id)
    try:
        case = cs.act(
            store,
            case_id,
            action,
            actor=_actor(body.actor, principal),
            expected_rev=body.expected_rev,
            staff_id=body.staff_id,
            note=body.note,
            satisfaction=body.satisfaction,
            kind=body.kind,
        )
    except cs.CaseError as e:
        return _error(e)
    return JSONResponse(shown_case(request, principal, case))


@router.post("/{case_id}/summon", summary="Summon departments to report (吹哨报到)")
def summon(
    case_id: Int64Path, body: Summon, store: StoreDep, principal: PrincipalDep, request: Request
) -> JSONResponse:
    if not in_scope(store, principal, case_id):
        return not_found(case_id)
    try:
        case = cs.summon(store, case_id, body.departments, actor=_actor(body.actor, principal), due_hours=body.due_hours,
                         note=body.note)  # fmt: skip
    except cs.CaseError as e:
        return _error(e)
    return JSONResponse(shown_case(request, principal, case))


@router.post("/{case_id}/departments/{department}/{step}", summary="A summoned department accepts or reports back")
def respond(
    case_id: Int64Path,
    department: str,
    step: str,
    body: Respond,
    store: StoreDep,
    principal: PrincipalDep,
    request: Request,
) -> JSONResponse:
    if step not in ("accept", "report"):
        return JSONResponse({"detail": "step is accept or report"}, status_code=404)
    if not in_scope(store, principal, case_id):
        return not_found(case_id)
    try:
        cs.department_responds(store, case_id, department, actor=_actor(body.actor, principal), step=step, note=body.note)
        case = cs.get_case(store, case_id)
    except cs.CaseError as e:
        return _error(e)
    return JSONResponse(shown_case(request, principal, case))


@router.post("/bulk", summary="Many assignments or unassignments at once")
def bulk(body: Bulk, store: StoreDep, principal: PrincipalDep) -> JSONResponse:
    visible = visible_ids(store, principal, [int(c) for c, _ in body.pairs])
    mine = [(c, s) for c, s in body.pairs if int(c) in visible]
    done = iter(cs.bulk(store, mine, actor=_actor(body.actor, principal), action=body.action) if mine else [])
    results = []
    for c, _ in body.pairs:
        if int(c) in visible:
            o = next(done)
            results.append({"case_id": o.case_id, "ok": o.ok, "detail": o.message, "code": o.code})
        else:  # unknown, or outside the jurisdiction: the same answer
            results.append({"case_id": int(c), "ok": False, "detail": f"there is no case {c}", "code": "not_found"})
    return JSONResponse({"ok": sum(bool(r["ok"]) for r in results), "results": results})


@router.post("/escalate", summary="Run the escalation sweep now")
def escalate(store: StoreDep) -> JSONResponse:
    """The sweep the API runs every minute anyway (time-based and idempotent), so any principal who
    may assign cases may run it now; it covers every case, as the background sweep does."""
    out = cs.escalate_due(store)
    return JSONResponse({"escalated": [o.case_id for o in out if o.ok], "skipped": [o.case_id for o in out if not o.ok]})


def device_of(principal: Principal) -> str | None:
    """The device a token is bound to: API tokens named ``device:<device id>`` (see api/app.py)."""
    if principal.kind == "token" and principal.name.startswith(DEVICE_TOKEN_PREFIX):
        return principal.name[len(DEVICE_TOKEN_PREFIX):] or None
    return None


DEVICE_TOKEN_PREFIX = "device:"
