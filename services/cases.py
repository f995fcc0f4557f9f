"""Cases (事件): intake, the closed loop, time limits and escalation.

The loop (DOMAIN.md): reported → filed (or rejected) → dispatched (the clock starts) → accepted →
in progress → resolved → verified on site → closed ("销号") → evaluated; a finished or rejected
case can be reopened. ``ACTIONS`` lists every action, the states it may start from and the state it
leads to. Every action appends one row to ``case_events`` (append-only in the database), so a
case's history is never rewritten.

Writes are compare-and-set: each case row carries ``rev``, which every change increments inside the
same ``UPDATE ... WHERE id = ? AND rev = ?``. Two dispatchers (or two API processes) assigning the
same case at once both read rev N; exactly one update matches, the other gets ``CaseConflict``
naming who got there first. This holds across processes and on both stores, because the database
decides, not a lock in Python.

Intake (``create_case``) validates, attributes the case to its grid, village/community, street and
county by location, and links a likely duplicate (same category, close in space and time, still
open) to the earlier case instead of creating it twice.
"""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import geopandas as gpd
import pandas as pd
from shapely.geometry import Point

from geo.dispatch import cluster_outlines, likely_duplicate, space_time_clusters
from geo.locate import PolygonIndex
from services import sla
from store.base import Range, Store

OPEN_STATES = ("reported", "filed", "dispatched", "accepted", "in_progress", "resolved", "verified")
UNASSIGNED_STATES = ("reported", "filed")
WORKING_STATES = ("dispatched", "accepted", "in_progress")  # someone is on it; its clock runs
FINAL_STATES = ("rejected", "closed", "evaluated")
KINDS = ("immediate", "deadline", "multi_department")
ESCALATION_LEVELS = ("grid", "community", "street", "district")
SOURCES = ("app", "hotline_12345", "cctv", "walk_in", "referral", "open311", "dispatcher")

# action -> (states it may start from, state it leads to; None keeps the state)
ACTIONS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "file": (("reported",), "filed"),
    "reject": (("reported", "filed"), "rejected"),
    "dispatch": (UNASSIGNED_STATES, "dispatched"),
    "reassign": (WORKING_STATES, "dispatched"),
    "unassign": (WORKING_STATES, "filed"),
    "accept": (("dispatched",), "accepted"),
    "start": (("accepted",), "in_progress"),
    "resolve": (("accepted", "in_progress"), "resolved"),
    "verify": (("resolved",), "verified"),
    "return": (("resolved", "verified"), "in_progress"),  # verification failed: back to work
    "close": (("verified",), "closed"),
    "evaluate": (("closed",), "evaluated"),
    "reopen": (("rejected", "resolved", "verified", "closed", "evaluated"), "filed"),
    "escalate": (OPEN_STATES, None),
    "note": (OPEN_STATES + FINAL_STATES, None),
    "set_kind": (OPEN_STATES, None),
}

MAX_DESCRIPTION = 4000  # characters
MAX_SHORT_TEXT = 200  # names, addresses, phone numbers, e-mail
MAX_PHOTOS = 10
MAX_URL = 2000
DUPLICATE_WITHIN_M = 100.0
DUPLICATE_WITHIN = pd.Timedelta(hours=24)
DEFAULT_ACCEPT_HOURS = 2.0
CLUSTER_WINDOW = pd.Timedelta(hours=72)
SEARCH_WINDOW = pd.Timedelta(days=90)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class CaseError(ValueError):
    """A request about a case that cannot be carried out; ``code`` is machine-readable
    (not_found, invalid, out_of_region, unknown_category, bad_state, conflict), the message is for a
    person. Nothing was written."""

    code = "invalid"

    def __init__(self, message: str, *, code: str | None = None, field: str | None = None) -> None:
        super().__init__(message)
        if code:
            self.code = code
        self.field = field


class CaseNotFound(CaseError):
    code = "not_found"


class CaseConflict(CaseError):
    """Someone else changed the case first (or it is no longer in a state the action allows)."""

    code = "conflict"

    def __init__(self, message: str, *, current: Mapping[str, Any] | None = None) -> None:
        super().__init__(message)
        self.current = dict(current or {})


def utc(value: Any = None) -> pd.Timestamp:
    ts = pd.Timestamp.now(tz="UTC") if value is None else pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def code_range(prefix: str) -> Range:
    """Unit codes starting with ``prefix`` as a half-open text range, which the store answers from
    an index: 211202 → [211202, 211203) holds 211202 and every code below it."""
    lo = str(prefix)
    nxt = str(int(lo) + 1).zfill(len(lo)) if lo.isdigit() else None
    return Range(lo, nxt if nxt is not None and len(nxt) == len(lo) else None)


def clean_text(value: Any, *, limit: int, name: str) -> str | None:
    """User text as stored: control characters (other than tab/newline) removed, surrounding space
    stripped, None when empty; longer than ``limit`` characters is an error (nothing is cut)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = _CONTROL.sub("", str(value).replace("\r\n", "\n").replace("\r", "\n")).strip()
    if len(text) > limit:
        raise CaseError(f"{name} is {len(text)} characters long; at most {limit} are accepted", field=name)
    return text or None


def clean_urls(urls: Iterable[Any] | str | None) -> list[str]:
    """http(s) photo URLs (at most MAX_PHOTOS); anything else is an error."""
    if urls is None:
        return []
    items = [urls] if isinstance(urls, str) else list(urls)
    out = []
    for u in items:
        s = str(u).strip()
        if not s:
            continue
        parts = urlsplit(s)
        if parts.scheme not in ("http", "https") or not parts.netloc or len(s) > MAX_URL or any(c in s for c in ' "<>'):
            raise CaseError(f"not an http(s) photo URL: {s[:80]!r}", field="media_url")
        out.append(s)
    if len(out) > MAX_PHOTOS:
        raise CaseError(f"{len(out)} photos; at most {MAX_PHOTOS} are accepted", field="media_url")
    return out


# ----------------------------------------------------------------------------- categories


def categories(store: Store, *, active_only: bool = False) -> pd.DataFrame:
    """The categories with their time limits resolved: code, name_zh, name_en, handler_role,
    time_limit, limit_unit, accept_hours, kind, department, urgency, active."""
    cats = _resolved(store.read("case_categories", order_by=["code"]))
    if active_only:
        cats = cats[cats["active"]]
    return cats.reset_index(drop=True)


def _resolved(cats: pd.DataFrame) -> pd.DataFrame:
    """case_categories rows with defaults filled in and the limit resolved (sla.category_limit)."""
    limits = [sla.category_limit(r) for r in cats.to_dict("records")]
    cats = cats.assign(
        time_limit=[a for a, _ in limits],
        limit_unit=[u for _, u in limits],
        accept_hours=pd.to_numeric(cats["accept_hours"], errors="coerce").fillna(DEFAULT_ACCEPT_HOURS),
        kind=cats["kind"].where(cats["kind"].isin(KINDS), "deadline"),
        urgency=pd.to_numeric(cats["urgency"], errors="coerce").fillna(1).astype(int),
        active=cats["active"].map(lambda v: True if v is None or pd.isna(v) else bool(v)),
    )
    return cats


def category(store: Store, code: str) -> pd.Series:
    """One category as ``categories`` gives it (one row read, not the table)."""
    rows = store.read("case_categories", where={"code": str(code)})
    if not len(rows):
        raise CaseError(f"unknown category {code!r}", code="unknown_category", field="service_code")
    return _resolved(rows).iloc[0]


def set_category_limit(
    store: Store,
    code: str,
    *,
    time_limit: float,
    limit_unit: str,
    accept_hours: float | None = None,
    kind: str | None = None,
    urgency: int | None = None,
    active: bool | None = None,
    actor: str = "admin",
) -> None:
    """Edit a category's time limit (the admin's table); ValueError and nothing saved if bad."""
    category(store, code)
    if limit_unit not in sla.LIMIT_UNITS:
        raise CaseError(f"unknown unit {limit_unit!r}", field="limit_unit")
    if not (isinstance(time_limit, int | float) and math.isfinite(time_limit) and 0 < time_limit <= 24 * 365):
        raise CaseError("the time limit must be a positive number (at most a year)", field="time_limit")
    if accept_hours is not None and not (math.isfinite(accept_hours) and 0 < accept_hours <= 24 * 30):
        raise CaseError("the time to accept must be between 0 and 720 hours", field="accept_hours")
    if kind is not None and kind not in KINDS:
        raise CaseError(f"unknown kind {kind!r}", field="kind")
    if urgency is not None and urgency not in (1, 2, 3):
        raise CaseError("urgency is 1, 2 or 3", field="urgency")
    calendar_hours = time_limit * (sla.WorkCalendar().day_hours if limit_unit == "working_days" else 1.0)
    values: dict[str, Any] = {"time_limit": float(time_limit), "limit_unit": limit_unit}
    if limit_unit == "hours":
        values["time_limit_hours"] = float(time_limit)
    else:  # keep the legacy column meaningful for readers that know only it
        values["time_limit_hours"] = float(calendar_hours)
    if accept_hours is not None:
        values["accept_hours"] = float(accept_hours)
    if kind is not None:
        values["kind"] = kind
    if urgency is not None:
        values["urgency"] = int(urgency)
    if active is not None:
        values["active"] = bool(active)
    store.update("case_categories", {"code": code}, values)


# ----------------------------------------------------------------------------- attribution


@dataclass
class _Locator:
    signature: tuple[int, int]
    grids: PolygonIndex
    villages: PolygonIndex
    counties: PolygonIndex
    grid_unit: dict[str, str]


_LOCATORS: dict[str, _Locator] = {}
_LOCATOR_LOCK = threading.Lock()


def _locator(store: Store) -> _Locator:
    """Point-in-polygon indexes over grids, villages and counties, rebuilt when a grid version is
    published (the count of grid_versions rows changes) or the city is regenerated."""
    sig = (store.count("grid_versions"), store.count("grids"))
    with _LOCATOR_LOCK:
        hit = _LOCATORS.get(store.url)
        if hit is not None and hit.signature == sig:
            return hit
    grids = store.read("grids", columns=["code", "unit_code"])
    villages = store.read("admin_units", where={"level": "village"}, columns=["code"])
    counties = store.read("admin_units", where={"level": "county"}, columns=["code"])
    loc = _Locator(
        signature=sig,
        grids=PolygonIndex(grids, key="code"),
        villages=PolygonIndex(villages, key="code"),
        counties=PolygonIndex(counties, key="code"),
        grid_unit=dict(zip(grids["code"].astype(str), grids["unit_code"].astype(str), strict=True)),
    )
    with _LOCATOR_LOCK:
        _LOCATORS[store.url] = loc
    return loc


def forget_locator(store: Store) -> None:
    with _LOCATOR_LOCK:
        _LOCATORS.pop(store.url, None)


@dataclass(frozen=True)
class Attribution:
    grid_code: str | None
    village_code: str | None
    township_code: str | None
    county_code: str | None


def check_lonlat(lon: Any, lat: Any) -> tuple[float, float]:
    """Finite WGS84 lon/lat, or a CaseError that says what is wrong (swapped, NaN, out of range)."""
    try:
        x, y = float(lon), float(lat)
    except (TypeError, ValueError):
        raise CaseError("lat and long must be numbers", field="lat") from None
    if not (math.isfinite(x) and math.isfinite(y)):
        raise CaseError("lat and long must be finite numbers", field="lat")
    if not (-90 <= y <= 90) and -90 <= x <= 90 and -180 <= y <= 180:
        raise CaseError(f"lat {y} is not a latitude: are lat and long swapped?", field="lat")
    if not (-180 <= x <= 180 and -90 <= y <= 90):
        raise CaseError(f"({x}, {y}) is not a WGS84 longitude/latitude", field="lat")
    return x, y


def attribute(store: Store, lon: float, lat: float) -> Attribution:
    """The grid, village/community, street/township and county at (lon, lat) (WGS84).
    Outside every county of the city: CaseError(code="out_of_region")."""
    x, y = check_lonlat(lon, lat)
    loc = _locator(store)
    grid = loc.grids.lookup([x], [y])[0]
    village = loc.grid_unit.get(str(grid)) if grid is not None else loc.villages.lookup([x], [y])[0]
    county = loc.counties.lookup([x], [y])[0]
    if county is None and village is None:
        raise CaseError(
            f"({y:.6f}, {x:.6f}) lies outside the area this platform serves", code="out_of_region", field="lat"
        )
    v = str(village) if village is not None else None
    return Attribution(
        grid_code=str(grid) if grid is not None else None,
        village_code=v,
        township_code=v[:9] if v else None,
        county_code=str(county) if county is not None else (v[:6] if v else None),
    )


# ----------------------------------------------------------------------------- intake


@dataclass
class NewCase:
    category: str
    lon: float
    lat: float
    description: str | None = None
    address: str | None = None
    source: str = "app"
    reporter_name: str | None = None
    reporter_phone: str | None = None
    reporter_email: str | None = None
    photo_urls: Sequence[str] = field(default_factory=tuple)
    external_id: str | None = None
    urgency: int | None = None
    kind: str | None = None
    reported_at: Any = None
    actor: str = "resident"


@dataclass(frozen=True)
class Created:
    case_id: int
    created: bool  # False: linked to an earlier case (duplicate) or already imported (same external id)
    duplicate_of: int | None = None
    reason: str | None = None  # duplicate | already_imported


def _validated(store: Store, new: NewCase, now: pd.Timestamp) -> tuple[dict[str, Any], Attribution, pd.Series]:
    if new.source not in SOURCES:
        raise CaseError(f"unknown source {new.source!r}", field="source")
    cat = category(store, str(new.category or ""))
    if not bool(cat["active"]):
        raise CaseError(f"category {new.category!r} is not taking reports", code="unknown_category", field="service_code")
    x, y = check_lonlat(new.lon, new.lat)
    where = attribute(store, x, y)
    reported = utc(new.reported_at) if new.reported_at is not None else now
    if reported > now + pd.Timedelta(minutes=10):
        raise CaseError("the report time lies in the future", field="requested_datetime")
    urgency = int(new.urgency) if new.urgency is not None else int(cat["urgency"])
    if urgency not in (1, 2, 3):
        raise CaseError("urgency is 1 (normal), 2 (urgent) or 3 (immediate)", field="urgency")
    kind = new.kind or str(cat["kind"])
    if kind not in KINDS:
        raise CaseError(f"unknown kind {kind!r}", field="kind")
    row = {
        "category": str(cat["code"]),
        "description": clean_text(new.description, limit=MAX_DESCRIPTION, name="description"),
        "address": clean_text(new.address, limit=MAX_SHORT_TEXT, name="address_string"),
        "reporter_name": clean_text(new.reporter_name, limit=MAX_SHORT_TEXT, name="name"),
        "reporter_phone": clean_text(new.reporter_phone, limit=40, name="phone"),
        "reporter_email": clean_text(new.reporter_email, limit=MAX_SHORT_TEXT, name="email"),
        "external_id": clean_text(new.external_id, limit=100, name="external_id"),
        "photo_urls": json.dumps(clean_urls(new.photo_urls)),
        "source": new.source,
        "urgency": urgency,
        "kind": kind,
        "reported_at": reported,
        "lon": x,
        "lat": y,
    }
    if row["description"] is None and row["address"] is None:
        raise CaseError("a report needs a description", field="description")
    return row, where, cat


def create_case(store: Store, new: NewCase, *, now: Any = None, dedupe: bool = True) -> Created:
    """Validate and record a report. A report of the same category within DUPLICATE_WITHIN_M metres
    and DUPLICATE_WITHIN of an open case is linked to it (event ``duplicate_report``, the case's
    ``reports`` count grows) instead of becoming a second case; a repeated external id from the same
    source (a 12345 export imported twice) returns the existing case."""
    now_ts = utc(now)
    row, where, _cat = _validated(store, new, now_ts)
    if row["external_id"]:
        prev = store.read(
            "cases", where={"source": row["source"], "external_id": row["external_id"]}, columns=["id"], geometry=False
        )
        if len(prev):
            return Created(int(prev["id"].iloc[0]), False, None, "already_imported")
    if dedupe:
        dup = _find_duplicate(store, row, now_ts)
        if dup is not None:
            _link_duplicate(store, dup, row, actor=new.actor, now=now_ts)
            return Created(dup, False, dup, "duplicate")
    state = "filed" if new.source == "dispatcher" else "reported"
    values = {k: v for k, v in row.items() if k not in ("lon", "lat")}
    values.update(
        state=state,
        grid_code=where.grid_code,
        village_code=where.village_code,
        township_code=where.township_code,
        county_code=where.county_code,
        rev=0,
        escalation_level=0,
        reports=1,
        updated_at=now_ts,
        geom=Point(row["lon"], row["lat"]),
    )
    with store.transaction():
        case_id = int(store.insert("cases", values))
        _event(store, case_id, now_ts, new.actor, "report", None, "reported", note=None, rev=0)
        if state == "filed":
            _event(store, case_id, now_ts, new.actor, "file", "reported", "filed", note=None, rev=0)
    return Created(case_id, True)


def _find_duplicate(store: Store, row: Mapping[str, Any], now: pd.Timestamp) -> int | None:
    x, y = float(row["lon"]), float(row["lat"])
    dlat = DUPLICATE_WITHIN_M / 111_000 * 1.5
    dlon = dlat / max(0.1, math.cos(math.radians(y)))
    near = store.read(
        "cases",
        bbox=(x - dlon, y - dlat, x + dlon, y + dlat),
        where={"category": row["category"], "state": list(OPEN_STATES)},
        columns=["id", "category", "reported_at"],
    )
    if not len(near):
        return None
    near = near[near["reported_at"] <= row["reported_at"] + pd.Timedelta(minutes=10)]
    hit = likely_duplicate(
        near,
        at=Point(x, y),
        crs=4326,
        category=str(row["category"]),
        when=row["reported_at"],
        within_m=DUPLICATE_WITHIN_M,
        within=DUPLICATE_WITHIN,
    )
    return None if hit is None else int(hit)


def _link_duplicate(store: Store, case_id: int, row: Mapping[str, Any], *, actor: str, now: pd.Timestamp) -> None:
    detail = {k: row.get(k) for k in ("source", "description", "address", "reporter_name", "reporter_phone",
                                       "reporter_email", "external_id", "lon", "lat")}  # fmt: skip
    detail["photo_urls"] = photo_list(row.get("photo_urls"))
    detail["reported_at"] = str(row["reported_at"])
    for _ in range(5):  # a counter bumped under compare-and-set; retried when another write wins
        cur = _read_case(store, case_id)
        rev = _rev(cur)
        n = int(cur["reports"]) if pd.notna(cur["reports"]) else 1
        with store.transaction():
            changed = store.update(
                "cases", {"id": case_id, "rev": _rev_key(cur)}, {"reports": n + 1, "rev": rev + 1, "updated_at": now}
            )
            if changed:
                _event(store, case_id, now, actor, "duplicate_report", cur["state"], cur["state"],
                       note=json.dumps(detail, ensure_ascii=False, default=str), rev=rev + 1)  # fmt: skip
                return
    raise CaseConflict(f"case {case_id} kept changing; the duplicate report was not linked")


# ----------------------------------------------------------------------------- reading


def _rev(row: Mapping[str, Any]) -> int:
    v = row.get("rev")
    return 0 if v is None or pd.isna(v) else int(v)


def _rev_key(row: Mapping[str, Any]) -> int | None:
    v = row.get("rev")
    return None if v is None or pd.isna(v) else int(v)


def _read_case(store: Store, case_id: int, columns: Sequence[str] | None = None) -> dict[str, Any]:
    """One case as a dict (``columns``: only these, plus its point when given "geometry")."""
    geometry = columns is None or "geometry" in columns
    cols = None if columns is None else [c for c in columns if c != "geometry"]
    rows = store.read("cases", where={"id": int(case_id)}, columns=cols, geometry=geometry)
    if not len(rows):
        raise CaseNotFound(f"there is no case {case_id}")
    return {str(k): v for k, v in rows.iloc[0].to_dict().items()}


def get_case(store: Store, case_id: int, *, now: Any = None) -> dict[str, Any]:
    """One case as a dict with lon/lat, category names, assignee name, photos (list), the
    overdue / due-soon flags and the summoned departments."""
    row = _read_case(store, case_id)
    out = {k: (None if _isna(v) else v) for k, v in row.items() if k != "geometry"}
    g = row["geometry"]
    out["lon"], out["lat"] = (None, None) if g is None or g.is_empty else (float(g.x), float(g.y))
    out["rev"] = _rev(row)
    reports, level = out.get("reports"), out.get("escalation_level")
    out["reports"] = int(reports) if reports is not None else 1
    out["escalation_level"] = int(level) if level is not None else 0
    out["photo_urls"] = photo_list(out.get("photo_urls"))
    try:
        cat = category(store, str(row["category"]))
        out["category_zh"], out["category_en"] = cat["name_zh"], cat["name_en"]
        out["time_limit"], out["limit_unit"] = float(cat["time_limit"]), str(cat["limit_unit"])
    except CaseError:
        out["category_zh"] = out["category_en"] = str(row["category"])
    out["assignee_name"] = _staff_name(store, out.get("assignee_id"))
    started = out.get("dispatched_at")
    od, ds = sla.flags(
        pd.Series([out.get("deadline_at")], dtype="datetime64[ns, UTC]"),
        pd.Series([started], dtype="datetime64[ns, UTC]"),
        now=utc(now),
        open_=pd.Series([row["state"] in OPEN_STATES and row["state"] not in ("resolved", "verified")]),
    )
    out["overdue"], out["due_soon"] = bool(od.iloc[0]), bool(ds.iloc[0])
    out["summons"] = store.read("case_summons", where={"case_id": int(case_id)}, order_by=["summoned_at", "department"])
    return out


def _ts(v: Any) -> pd.Timestamp | None:
    """A stored instant as a UTC Timestamp, None when missing."""
    return None if _isna(v) else utc(v)


def _isna(v: Any) -> bool:
    try:
        return v is None or bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def photo_list(value: Any) -> list[str]:
    """The photo URLs stored in a case's ``photo_urls`` (a JSON list); [] for anything else."""
    if not value:
        return []
    try:
        got = json.loads(value)
    except (TypeError, ValueError):
        return []
    return [str(u) for u in got] if isinstance(got, list) else []


def _staff_name(store: Store, staff_id: Any) -> str | None:
    if staff_id is None or _isna(staff_id):
        return None
    rows = store.read("staff", where={"id": int(staff_id)}, columns=["name"])
    return str(rows["name"].iloc[0]) if len(rows) else f"#{int(staff_id)}"


def timeline(store: Store, case_id: int) -> pd.DataFrame:
    """The case's events, oldest first, with the staff member's name where an event names one."""
    ev = store.read("case_events", where={"case_id": int(case_id)}, order_by=["ts", "id"])
    ids = [int(v) for v in ev["staff_id"].dropna().unique()] if len(ev) else []
    names = store.read("staff", where={"id": ids}, columns=["id", "name"]) if ids else pd.DataFrame(columns=["id", "name"])
    lookup = dict(zip(names["id"].astype(int), names["name"], strict=True))
    names_of = pd.Series([lookup.get(int(v)) if pd.notna(v) else None for v in ev["staff_id"]], index=ev.index, dtype=object)
    return ev.assign(staff_name=names_of)


def open_cases(
    store: Store,
    *,
    bbox: tuple[float, float, float, float] | None = None,
    now: Any = None,
    states: Sequence[str] = OPEN_STATES,
    categories_: Sequence[str] | None = None,
    unit_prefix: str | None = None,
    limit: int | None = None,
    scope: Mapping[str, Any] | None = None,
) -> gpd.GeoDataFrame:
    """Open cases (in view) with flags: id, category, state, urgency, kind, description, address,
    reported_at, dispatched_at, deadline_at, overdue, due_soon, escalation_level, assignee_id,
    grid_code, village_code, reports, rev, geometry (EPSG:4326). Most urgent first. ``scope``: more
    ``where`` conditions (a jurisdiction: services.auth.case_scope)."""
    where: dict[str, Any] = {**(scope or {}), "state": list(states)}
    if categories_:
        where["category"] = list(categories_)
    cols = ["id", "category", "state", "urgency", "kind", "description", "address", "reported_at", "dispatched_at",
            "deadline_at", "escalation_level", "assignee_id", "grid_code", "village_code", "township_code",
            "reports", "rev", "source"]  # fmt: skip
    if unit_prefix:
        where["village_code"] = code_range(unit_prefix)
    cases = store.read("cases", bbox=bbox, where=where, columns=cols)
    running = cases["state"].isin(WORKING_STATES)
    od, ds = sla.flags(cases["deadline_at"], cases["dispatched_at"], now=utc(now), open_=running)
    cases = cases.assign(
        overdue=od.to_numpy(),
        due_soon=ds.to_numpy(),
        urgency=pd.to_numeric(cases["urgency"], errors="coerce").fillna(1).astype(int),
        escalation_level=pd.to_numeric(cases["escalation_level"], errors="coerce").fillna(0).astype(int),
        reports=pd.to_numeric(cases["reports"], errors="coerce").fillna(1).astype(int),
        kind=cases["kind"].fillna("deadline"),
    )
    cases = cases.sort_values(["overdue", "urgency", "due_soon", "reported_at"], ascending=[False, False, False, True])
    if limit is not None:
        cases = cases.head(limit)
    return gpd.GeoDataFrame(cases.reset_index(drop=True), geometry="geometry", crs=4326)


# ----------------------------------------------------------------------------- the loop


def _event(
    store: Store,
    case_id: int,
    ts: pd.Timestamp,
    actor: str | None,
    action: str,
    from_state: str | None,
    to_state: str | None,
    *,
    note: str | None = None,
    staff_id: int | None = None,
    rev: int | None = None,
) -> None:
    store.insert(
        "case_events",
        {"case_id": int(case_id), "ts": ts, "actor": actor, "action": action, "from_state": from_state,
         "to_state": to_state, "note": note, "staff_id": staff_id, "rev": rev},
    )  # fmt: skip


def _last_change(store: Store, case_id: int) -> str:
    ev = store.read("case_events", where={"case_id": int(case_id)}, order_by=["-id"], limit=1)
    if not len(ev):
        return ""
    e = ev.iloc[0]
    return f"{e['action']} by {e['actor'] or '?'} at {e['ts']:%Y-%m-%d %H:%M:%S} UTC"


def _conflict(store: Store, case_id: int, action: str, expected: str) -> CaseConflict:
    cur = _read_case(store, case_id)
    who = _staff_name(store, cur["assignee_id"])
    msg = f"case {case_id} {expected}; it is now {cur['state']}"
    if who:
        msg += f", assigned to {who}"
    last = _last_change(store, case_id)
    if last:
        msg += f" (last change: {last})"
    return CaseConflict(
        msg,
        current={"state": cur["state"], "assignee_id": None if _isna(cur["assignee_id"]) else int(cur["assignee_id"]),
                 "assignee_name": who, "rev": _rev(cur), "last_change": last},
    )  # fmt: skip


def act(
    store: Store,
    case_id: int,
    action: str,
    *,
    actor: str,
    expected_rev: int | None = None,
    staff_id: int | None = None,
    note: str | None = None,
    satisfaction: int | None = None,
    kind: str | None = None,
    now: Any = None,
) -> dict[str, Any]:
    """Carry out one action of the loop on a case (see ACTIONS) and record it as an event.

    ``expected_rev``: the rev the caller saw; if the case changed since, CaseConflict (nothing
    written). Without it the action still cannot be applied twice: the update is conditional on
    the rev read here. ``dispatch``/``reassign`` need ``staff_id`` (an existing staff member);
    ``evaluate`` needs ``satisfaction`` 1..5; ``set_kind`` needs ``kind``. Returns the new case."""
    if action not in ACTIONS:
        raise CaseError(f"unknown action {action!r}")
    now_ts = utc(now)
    allowed, to_state = ACTIONS[action]
    cur = _read_case(store, case_id)
    rev = _rev(cur)
    if expected_rev is not None and int(expected_rev) != rev:
        raise _conflict(store, case_id, action, "was changed by someone else since you looked at it")
    state = str(cur["state"])
    if state not in allowed:
        if action in ("dispatch",) and state in WORKING_STATES:
            raise _conflict(store, case_id, action, "is already assigned")
        raise CaseError(
            f"case {case_id} is {state}: '{action}' is possible only from {', '.join(allowed)}", code="bad_state"
        )
    note = clean_text(note, limit=MAX_DESCRIPTION, name="note")
    values: dict[str, Any] = {"rev": rev + 1, "updated_at": now_ts}
    new_state = to_state or state
    if to_state:
        values["state"] = to_state
    event_staff: int | None = None
    if action in ("dispatch", "reassign"):
        if staff_id is None:
            raise CaseError(f"'{action}' needs the staff member to assign", field="staff_id")
        if not store.count("staff", where={"id": int(staff_id)}):
            raise CaseError(f"there is no staff member {staff_id}", code="not_found", field="staff_id")
        if action == "reassign" and not _isna(cur["assignee_id"]) and int(cur["assignee_id"]) == int(staff_id):
            raise CaseError("the case is already assigned to this person", code="bad_state")
        cat = category(store, str(cur["category"]))
        values["assignee_id"] = int(staff_id)
        values["accept_deadline_at"] = now_ts + pd.Timedelta(hours=float(cat["accept_hours"]))
        values["accepted_at"] = None
        if _isna(cur["dispatched_at"]):  # the clock starts at the first dispatch
            values["dispatched_at"] = now_ts
            values["deadline_at"] = sla.deadline(now_ts, float(cat["time_limit"]), str(cat["limit_unit"]), sla.calendar(store))
        event_staff = int(staff_id)
    elif action == "unassign":
        values.update(assignee_id=None, accept_deadline_at=None, accepted_at=None)
        event_staff = None if _isna(cur["assignee_id"]) else int(cur["assignee_id"])
    elif action == "accept":
        values["accepted_at"] = now_ts
        event_staff = None if _isna(cur["assignee_id"]) else int(cur["assignee_id"])
    elif action == "resolve":
        values["resolved_at"] = now_ts
    elif action == "return":
        values["resolved_at"] = None
    elif action == "close":
        values["closed_at"] = now_ts
    elif action == "evaluate":
        if satisfaction not in (1, 2, 3, 4, 5):
            raise CaseError("satisfaction is 1 to 5", field="satisfaction")
        values["satisfaction"] = int(satisfaction)
    elif action == "reopen":
        values.update(closed_at=None, resolved_at=None, satisfaction=None, assignee_id=None, accepted_at=None,
                      accept_deadline_at=None, dispatched_at=None, deadline_at=None, escalation_level=0,
                      escalated_at=None)  # fmt: skip
    elif action == "escalate":
        level = int(cur["escalation_level"]) if not _isna(cur["escalation_level"]) else 0
        if level >= len(ESCALATION_LEVELS) - 1:
            raise CaseError(f"case {case_id} is already at the district level", code="bad_state")
        values.update(escalation_level=level + 1, escalated_at=now_ts)
        note = note or f"escalated to {ESCALATION_LEVELS[level + 1]}"
    elif action == "set_kind":
        if kind not in KINDS:
            raise CaseError(f"unknown kind {kind!r}", field="kind")
        values["kind"] = kind
        note = note or kind
    with store.transaction():
        changed = store.update("cases", {"id": int(case_id), "rev": _rev_key(cur)}, values)
        if not changed:
            raise _conflict(store, case_id, action, "was changed by someone else at the same moment")
        if action == "dispatch" and state == "reported":  # the dispatcher's click files it too
            _event(store, case_id, now_ts, actor, "file", "reported", "filed", rev=rev + 1)
            state = "filed"
        _event(store, case_id, now_ts, actor, action, state, new_state, note=note, staff_id=event_staff, rev=rev + 1)
    return get_case(store, case_id, now=now_ts)


def assign(
    store: Store, case_id: int, staff_id: int, *, actor: str, expected_rev: int | None = None, now: Any = None
) -> dict[str, Any]:
    """Dispatch an unassigned case to ``staff_id``, or reassign a case someone is working on (the
    latter only with ``expected_rev``: reassigning needs to know what you are replacing). When two
    dispatchers assign the same unassigned case at once, one wins and the other gets CaseConflict
    with the winner's name."""
    cur = _read_case(store, case_id)
    state = str(cur["state"])
    if state in WORKING_STATES and expected_rev is not None:
        return act(store, case_id, "reassign", actor=actor, expected_rev=expected_rev, staff_id=staff_id, now=now)
    return act(store, case_id, "dispatch", actor=actor, expected_rev=expected_rev, staff_id=staff_id, now=now)


@dataclass(frozen=True)
class Outcome:
    case_id: int
    ok: bool
    message: str = ""
    code: str = ""


def bulk(
    store: Store,
    pairs: Iterable[tuple[int, int | None]],
    *,
    actor: str,
    action: str = "assign",
    now: Any = None,
) -> list[Outcome]:
    """Assign (``action="assign"``: pairs of case id and staff id) or unassign (staff id ignored)
    many cases; each case on its own, so one conflict does not stop the others."""
    out = []
    for case_id, staff_id in pairs:
        try:
            if action == "assign":
                if staff_id is None:
                    raise CaseError("no staff member given", field="staff_id")
                assign(store, int(case_id), int(staff_id), actor=actor, now=now)
            elif action == "unassign":
                act(store, int(case_id), "unassign", actor=actor, now=now)
            else:
                act(store, int(case_id), action, actor=actor, now=now)
            out.append(Outcome(int(case_id), True))
        except CaseError as e:
            out.append(Outcome(int(case_id), False, str(e), e.code))
    return out


# ----------------------------------------------------------------------------- escalation


def escalate_due(store: Store, *, now: Any = None, actor: str = "system") -> list[Outcome]:
    """The periodic sweep: a dispatched case not accepted by its accept deadline, or a working
    case past its deadline, goes one level up (grid → community → street → district); it goes up
    again each time another accept window (or quarter of its time limit, at least 2 hours) passes
    without progress. Returns what it escalated."""
    now_ts = utc(now)
    cols = ["id", "state", "rev", "escalation_level", "escalated_at", "accept_deadline_at", "dispatched_at",
            "deadline_at", "category"]  # fmt: skip
    # only cases past a deadline can be due (two indexed range reads, not every working case: the
    # API runs this every minute beside the position ingest)
    late = store.read("cases", where={"state": list(WORKING_STATES), "deadline_at": Range(None, now_ts)},
                      columns=cols, geometry=False)  # fmt: skip
    unaccepted = store.read("cases", where={"state": "dispatched", "accept_deadline_at": Range(None, now_ts)},
                            columns=cols, geometry=False)  # fmt: skip
    rows = pd.concat([f for f in (late, unaccepted) if len(f)]) if len(late) or len(unaccepted) else late
    if not len(rows):
        return []
    rows = rows.drop_duplicates("id").sort_values("id")
    cats = categories(store).set_index("code")["accept_hours"]
    out = []
    for r in rows.to_dict("records"):
        level = 0 if _isna(r["escalation_level"]) else int(r["escalation_level"])
        if level >= len(ESCALATION_LEVELS) - 1:
            continue
        reason = None
        step = pd.Timedelta(hours=float(cats.get(r["category"], DEFAULT_ACCEPT_HOURS)))
        accept_by, due = _ts(r["accept_deadline_at"]), _ts(r["deadline_at"])
        if r["state"] == "dispatched" and accept_by is not None and accept_by < now_ts:
            reason = "not accepted in time"
        elif due is not None and due < now_ts:
            reason = "not resolved in time"
            started = _ts(r["dispatched_at"])
            if started is not None:
                step = max(pd.Timedelta(hours=2), (due - started) / 4)
        if reason is None:
            continue
        last = _ts(r["escalated_at"])
        if last is not None and now_ts - last < step:
            continue
        try:
            act(store, int(r["id"]), "escalate", actor=actor, expected_rev=0 if _isna(r["rev"]) else int(r["rev"]),
                note=f"{reason}: escalated to {ESCALATION_LEVELS[level + 1]}", now=now_ts)  # fmt: skip
            out.append(Outcome(int(r["id"]), True, reason))
        except CaseError as e:  # changed meanwhile: the next sweep looks again
            out.append(Outcome(int(r["id"]), False, str(e), e.code))
    return out


# ----------------------------------------------------------------------------- summons


def departments(store: Store) -> pd.DataFrame:
    return store.read("departments", order_by=["code"])


def summon(
    store: Store,
    case_id: int,
    departments_: Sequence[str],
    *,
    actor: str,
    due_hours: float = 24.0,
    note: str | None = None,
    now: Any = None,
) -> dict[str, Any]:
    """"Blow the whistle": ask departments to report to a case. Each department's acceptance is
    tracked in case_summons; the case becomes multi-department. A department already summoned is
    not asked twice."""
    now_ts = utc(now)
    known = set(departments(store)["code"].astype(str))
    wanted = [d for d in dict.fromkeys(departments_) if d]
    if not wanted:
        raise CaseError("name at least one department", field="departments")
    unknown = [d for d in wanted if d not in known]
    if unknown:
        raise CaseError(f"unknown department(s): {', '.join(unknown)}", code="not_found", field="departments")
    if not (math.isfinite(due_hours) and 0 < due_hours <= 24 * 30):
        raise CaseError("the time to report must be between 0 and 720 hours", field="due_hours")
    already = set(store.read("case_summons", where={"case_id": int(case_id)}, columns=["department"])["department"])
    new = [d for d in wanted if d not in already]
    cur = _read_case(store, case_id)
    if cur["state"] not in OPEN_STATES:
        raise CaseError(f"case {case_id} is {cur['state']}; only open cases can summon departments", code="bad_state")
    if not new:
        return get_case(store, case_id, now=now_ts)
    note = clean_text(note, limit=MAX_DESCRIPTION, name="note")
    with store.transaction():
        for d in new:
            store.insert("case_summons", {"case_id": int(case_id), "department": d, "summoned_at": now_ts,
                                          "summoned_by": actor, "due_at": now_ts + pd.Timedelta(hours=due_hours),
                                          "note": note})  # fmt: skip
        rev = _rev(cur)
        changed = store.update("cases", {"id": int(case_id), "rev": _rev_key(cur)},
                               {"kind": "multi_department", "rev": rev + 1, "updated_at": now_ts})  # fmt: skip
        if not changed:
            raise _conflict(store, case_id, "summon", "was changed by someone else at the same moment")
        _event(store, case_id, now_ts, actor, "summon", str(cur["state"]), str(cur["state"]),
               note=", ".join(new) + (f" — {note}" if note else ""), rev=rev + 1)  # fmt: skip
    return get_case(store, case_id, now=now_ts)


def department_responds(
    store: Store, case_id: int, department: str, *, actor: str, step: str = "accept", note: str | None = None,
    now: Any = None,
) -> None:
    """A summoned department accepts (``step="accept"``) or reports back (``"report"``)."""
    now_ts = utc(now)
    rows = store.read("case_summons", where={"case_id": int(case_id), "department": department})
    if not len(rows):
        raise CaseError(f"department {department!r} was not summoned to case {case_id}", code="not_found")
    if step not in ("accept", "report"):
        raise CaseError(f"unknown step {step!r}")
    column = "accepted_at" if step == "accept" else "reported_back_at"
    if not _isna(rows[column].iloc[0]):
        raise CaseError(f"{department} has already done that", code="bad_state")
    cur = _read_case(store, case_id)
    note = clean_text(note, limit=MAX_DESCRIPTION, name="note")
    with store.transaction():
        values: dict[str, Any] = {column: now_ts}
        if step == "accept":
            values["accepted_by"] = actor
        if step == "report" and _isna(rows["accepted_at"].iloc[0]):
            values.update(accepted_at=now_ts, accepted_by=actor)
        if note:
            values["note"] = note
        changed = store.update(
            "case_summons", {"case_id": int(case_id), "department": department, column: None}, values
        )
        if not changed:
            raise CaseConflict(f"{department} responded at the same moment from elsewhere")
        _event(store, case_id, now_ts, actor, f"department_{step}", str(cur["state"]), str(cur["state"]),
               note=department + (f" — {note}" if note else ""))  # fmt: skip


# ----------------------------------------------------------------------------- batches


def similar_groups(
    store: Store,
    *,
    now: Any = None,
    eps_m: float = 300.0,
    window: pd.Timedelta = CLUSTER_WINDOW,
    min_size: int = 3,
    bbox: tuple[float, float, float, float] | None = None,
) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """Open cases of the same category close in space and time (Anshan's batch resolution): the
    cases with a ``cluster`` number, and one outline per cluster (cluster, category, n, first, last,
    geometry)."""
    cases = open_cases(store, bbox=bbox, now=now)
    if not len(cases):
        empty = gpd.GeoDataFrame({"cluster": [], "category": [], "n": [], "first": [], "last": []},
                                 geometry=gpd.GeoSeries([], crs=4326), crs=4326)  # fmt: skip
        return cases.assign(cluster=pd.Series([], dtype="Int64")), empty
    labels = space_time_clusters(cases, eps_m=eps_m, window=window, min_size=min_size, by="category")
    cases = cases.assign(cluster=labels)
    outlines = cluster_outlines(cases, labels)
    return cases, outlines


def act_on_group(
    store: Store, case_ids: Sequence[int], action: str, *, actor: str, note: str | None = None, now: Any = None,
    staff_id: int | None = None,
) -> list[Outcome]:
    """One action on every case of a group (resolve them together, assign them to one person)."""
    out = []
    for cid in case_ids:
        try:
            if action == "assign":
                if staff_id is None:
                    raise CaseError("no staff member given", field="staff_id")
                assign(store, int(cid), int(staff_id), actor=actor, now=now)
            else:
                act(store, int(cid), action, actor=actor, note=note, now=now)
            out.append(Outcome(int(cid), True))
        except CaseError as e:
            out.append(Outcome(int(cid), False, str(e), e.code))
    return out


def change_mark(store: Store) -> int:
    """A number that grows with every change to any case (the newest ``case_events`` id): a cache
    of case data keyed by it is never stale after an action (one indexed read)."""
    row = store.read("case_events", columns=["id"], order_by=["-id"], limit=1, geometry=False)
    return int(row["id"].iloc[0]) if len(row) else 0


def state_counts(store: Store) -> dict[str, int]:
    g = store.group_count("cases", ["state"], where={"state": list(OPEN_STATES)})
    return {str(s): int(n) for s, n in zip(g["state"], g["n"], strict=True)}



def search(
    store: Store,
    *,
    states: Sequence[str] | None = None,
    categories_: Sequence[str] | None = None,
    unit_prefix: str | None = None,
    since: Any = None,
    until: Any = None,
    text: str | None = None,
    case_id: int | None = None,
    limit: int = 1000,
) -> pd.DataFrame:
    """Cases in any state, newest first, for the case list: filters by state, category, area
    (code prefix), report time [since, until), and text in the description or address."""
    if case_id is not None:
        where: dict[str, Any] = {"id": int(case_id)}
    else:
        where = {}
        if states:
            where["state"] = list(states)
        if categories_:
            where["category"] = list(categories_)
        if unit_prefix:
            where["village_code"] = code_range(unit_prefix)
        if text and since is None:  # filtered after reading: never the whole history
            since = utc() - SEARCH_WINDOW
        if since is not None or until is not None:
            where["reported_at"] = Range(utc(since) if since is not None else None, utc(until) if until is not None else None)
    cols = ["id", "category", "state", "urgency", "kind", "source", "description", "address", "reported_at",
            "deadline_at", "closed_at", "assignee_id", "village_code", "escalation_level", "reports", "satisfaction"]  # fmt: skip
    # an area or text filter is applied after reading, so read more rows than shown
    if case_id is not None and unit_prefix:
        where["village_code"] = code_range(unit_prefix)  # one case, only when inside the area
    rows = store.read("cases", where=where or None, columns=cols, order_by=["-reported_at"],
                      limit=None if text else limit, geometry=False)  # fmt: skip
    if text:
        needle = text.strip()
        hay = rows["description"].fillna("") + " " + rows["address"].fillna("")
        rows = rows[hay.str.contains(needle, regex=False)]
    return rows.head(limit).reset_index(drop=True)
