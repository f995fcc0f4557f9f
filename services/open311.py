"""Open311 GeoReport v2 over the case loop: what ``/open311/v2/`` serves (api/open311.py renders it).

Citizens' apps that speak GeoReport v2 (https://wiki.open311.org/GeoReport_v2) list the categories
as *services*, post *service requests* and follow them. Here:

- a service is an active case category (``services.cases.categories``): ``service_code`` is the
  category code, ``description`` names its time limit ("时限 5 工作小时 / 5 working hours"),
  ``group`` the department answerable for it; no service has extra attributes (``metadata`` false);
- a service request is a case: ``service_request_id`` is the case id, ``status`` is ``closed`` for the
  final states (rejected, closed, evaluated) and ``open`` for every other one (a resolved or verified
  case is still open until it is closed), ``expected_datetime`` is the case's deadline once it is
  dispatched, else what the category's limit would give if it were dispatched now;
- a posted request goes through ``services.cases.create_case`` with ``source="open311"``, so it is
  validated, attributed to its grid and linked to an earlier open case when it is a duplicate (the
  answer then carries that case's id and a notice saying it was merged).

Errors are ``Open311Error(status, description)``, which the API renders as the spec's error list
``[{"code": status, "description": ...}]``; ``from_case_error`` maps every ``CaseError`` code.

Settings (in the store): ``open311.api_keys`` -- comma-separated keys; when set, posting a request
needs one of them (403 otherwise), reading stays open. ``open311.jurisdiction_id`` -- when set, a
request naming another jurisdiction is refused (404); without it ``jurisdiction_id`` is ignored.
``open311.contact`` -- the contact shown in the discovery document.
"""

from __future__ import annotations

import hmac
import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from services import cases as cs
from services import sla
from services.geocode import building_point, gazetteer
from services.settings import city_tz
from store.base import Range, Store

SPEC_URL = "http://wiki.open311.org/GeoReport_v2"
MAX_RESULTS = 1000  # GET requests: at most this many, newest first
WINDOW = pd.Timedelta(days=90)  # the default (and the widest) span of start_date .. end_date
MAX_IDS = 1000
SETTING_API_KEYS = "open311.api_keys"
SETTING_JURISDICTION = "open311.jurisdiction_id"
SETTING_CONTACT = "open311.contact"

# CaseError.code -> HTTP status of the Open311 error
ERROR_STATUS = {
    "invalid": 400,
    "out_of_region": 400,
    "unknown_category": 400,
    "not_found": 404,
    "bad_state": 409,
    "conflict": 409,
}

STATE_NOTES = {
    "reported": ("已受理，待立案", "received, waiting to be filed"),
    "filed": ("已立案，待派遣", "filed, waiting to be dispatched"),
    "dispatched": ("已派遣，待签收", "dispatched, waiting to be accepted"),
    "accepted": ("已签收", "accepted by the person in charge"),
    "in_progress": ("处置中", "being handled"),
    "resolved": ("已处置，待核查", "handled, waiting for the on-site check"),
    "verified": ("已核查，待结案", "checked on site, waiting to be closed"),
    "closed": ("已结案", "closed"),
    "evaluated": ("已结案并评价", "closed and rated"),
    "rejected": ("不予立案", "not taken up"),
}

_ROLE_GROUPS = {
    "mediator": ("矛盾纠纷", "Disputes"),
    "legal_adviser": ("矛盾纠纷", "Disputes"),
    "police": ("平安建设", "Public safety"),
}


class Open311Error(Exception):
    """A request the Open311 API refuses: ``status`` is the HTTP status and the error's ``code``."""

    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status = status
        self.description = description


def from_case_error(e: cs.CaseError) -> Open311Error:
    """The Open311 error for a CaseError (every code of services.cases has its status)."""
    text = str(e)
    if e.code == "out_of_region":
        text = f"out of region: {text}; this service covers only the city's own counties"
    elif e.code == "unknown_category":
        text = f"service_code: {text}; GET services.json lists the codes"
    elif e.field and e.field not in text:
        text = f"{e.field}: {text}"
    return Open311Error(ERROR_STATUS.get(e.code, 400), text)


def lang_of(value: str | None) -> str:
    """'en' for English (a ``lang`` value or an Accept-Language header starting with en), else 'zh'."""
    return "en" if (value or "").strip().lower().startswith("en") else "zh"


# ----------------------------------------------------------------------------- jurisdiction, keys


def check_jurisdiction(store: Store, jurisdiction_id: str | None) -> None:
    """Without the ``open311.jurisdiction_id`` setting any value is accepted (and ignored)."""
    served = (store.get_setting(SETTING_JURISDICTION) or "").strip()
    given = (jurisdiction_id or "").strip()
    if served and given and given != served:
        raise Open311Error(404, f"jurisdiction_id {given[:100]!r} was not found; this server serves {served!r}")


def check_api_key(store: Store, api_key: str | None) -> None:
    """403 unless ``api_key`` is one of the keys in ``open311.api_keys`` (an empty setting: open)."""
    keys = [k.strip() for k in (store.get_setting(SETTING_API_KEYS) or "").split(",") if k.strip()]
    if not keys:
        return
    given = (api_key or "").strip().encode()
    ok = False
    for k in keys:  # compare with every key, in constant time each
        ok |= hmac.compare_digest(given, k.encode())
    if not given:
        raise Open311Error(403, "api_key was not provided; posting requests needs a key from the operator")
    if not ok:
        raise Open311Error(403, "api_key is not valid")


# ----------------------------------------------------------------------------- services


def _department_names(store: Store) -> dict[str, tuple[str, str]]:
    deps = store.read("departments", columns=["code", "name_zh", "name_en"])
    return {str(r.code): (str(r.name_zh), str(r.name_en)) for r in deps.itertuples(index=False)}


def _service(row: Any, departments: Mapping[str, tuple[str, str]], lang: str) -> dict[str, Any]:
    amount, unit = float(row["time_limit"]), str(row["limit_unit"])
    zh, en = sla.limit_text(amount, unit, "zh"), sla.limit_text(amount, unit, "en")
    i = 1 if lang == "en" else 0
    dept = departments.get(str(row["department"])) if isinstance(row["department"], str) else None
    group = dept or _ROLE_GROUPS.get(str(row["handler_role"]), ("城市管理", "City services"))
    return {
        "service_code": str(row["code"]),
        "service_name": str(row["name_en"] if lang == "en" else row["name_zh"]),
        "description": f"{row['name_zh']} / {row['name_en']}：时限 {zh} / {en}（自派遣起算 / counted from dispatch）",
        "metadata": False,
        "type": "realtime",
        "keywords": f"{row['code']}, {row['name_zh']}, {row['name_en']}",
        "group": group[i],
    }


def service_list(store: Store, *, lang: str = "zh") -> list[dict[str, Any]]:
    """GET services: every category taking reports."""
    cats = cs.categories(store, active_only=True)
    departments = _department_names(store)
    return [_service(r, departments, lang) for _, r in cats.iterrows()]


def service_definition(store: Store, service_code: str) -> dict[str, Any]:
    """GET services/{code}: no service has attributes, so the list is empty; 404 when not offered."""
    cats = cs.categories(store, active_only=True)
    if service_code not in set(cats["code"].astype(str)):
        raise Open311Error(404, f"service_code {service_code[:100]!r} was not found")
    return {"service_code": service_code, "attributes": []}


def discovery(store: Store, endpoint_url: str, *, changeset: pd.Timestamp | None = None) -> dict[str, Any]:
    """The service discovery document for this one endpoint."""
    stamp = _iso(changeset if changeset is not None else cs.utc(), city_tz(store))
    return {
        "changeset": stamp,
        "contact": store.get_setting(SETTING_CONTACT) or "",
        "key_service": "api_key: ask the operator of this platform" if _has_keys(store) else "",
        "endpoints": [
            {
                "specification": SPEC_URL,
                "url": endpoint_url,
                "changeset": stamp,
                "type": "production",
                "formats": ["application/json", "text/xml"],
            }
        ],
    }


def _has_keys(store: Store) -> bool:
    return any(k.strip() for k in (store.get_setting(SETTING_API_KEYS) or "").split(","))


# ----------------------------------------------------------------------------- reading requests


def _na(v: Any) -> bool:
    if v is None:
        return True
    try:
        return bool(pd.isna(v))
    except (TypeError, ValueError):
        return False


def _iso(ts: Any, tz: str) -> str | None:
    if _na(ts):
        return None
    t = cs.utc(ts)
    return str(t.tz_convert(tz).isoformat(timespec="seconds"))


def _iso_column(values: pd.Series, tz: str) -> list[str | None]:
    """ISO 8601 with the city's offset (``2026-11-20T17:00:00+08:00``), None for missing; vectorised."""
    t = pd.to_datetime(values, utc=True)
    text = t.dt.tz_convert(tz).dt.strftime("%Y-%m-%dT%H:%M:%S%z")
    text = text.str.replace(r"([+-]\d{2})(\d{2})$", r"\1:\2", regex=True)
    return [None if _na(v) else str(v) for v in text]


@dataclass(frozen=True)
class _Category:
    name_zh: str
    name_en: str
    time_limit: float
    limit_unit: str


def _text(v: Any) -> str | None:
    return None if _na(v) else str(v)


def _requests(store: Store, rows: pd.DataFrame, now: pd.Timestamp, lang: str) -> list[dict[str, Any]]:
    """Cases (rows of ``cases`` with geometry) as Open311 service requests, in the rows' order."""
    if not len(rows):
        return []
    rows = rows.reset_index(drop=True)
    tz = city_tz(store)
    en = lang == "en"
    c = cs.categories(store)
    cats = {
        str(code): _Category(str(zh), str(en_), float(amount), str(unit))
        for code, zh, en_, amount, unit in zip(c["code"].tolist(), c["name_zh"].tolist(), c["name_en"].tolist(),
                                               c["time_limit"].tolist(), c["limit_unit"].tolist(), strict=True)
    }  # fmt: skip
    units = store.read("admin_units", columns=["code", "name"], geometry=False)
    unit_names = dict(zip(units["code"].astype(str), units["name"].astype(str), strict=True))
    assignees = sorted({int(v) for v in rows["assignee_id"].dropna()})
    staff_units: dict[int, str] = {}
    if assignees:
        staff = store.read("staff", where={"id": assignees}, columns=["id", "unit_code"])
        staff_units = {int(i): str(u) for i, u in zip(staff["id"], staff["unit_code"], strict=True) if not _na(u)}

    # updated: the last change recorded on the row (demo rows have no updated_at: their latest step)
    steps = ["reported_at", "dispatched_at", "accepted_at", "resolved_at", "closed_at", "escalated_at"]
    updated = rows["updated_at"].fillna(rows[steps].max(axis=1))
    # expected: the deadline once dispatched; an open case not dispatched yet: the category's limit
    # counted from now (its clock starts at dispatch, which has not happened)
    expected = rows["deadline_at"].astype(object).where(rows["deadline_at"].notna(), None)
    waiting = rows["deadline_at"].isna() & rows["state"].isin(cs.OPEN_STATES)
    if waiting.any():
        cal = sla.calendar(store)
        for i in waiting[waiting].index:
            cat = cats.get(str(rows.at[i, "category"]))
            if cat is None:
                continue
            rep = rows.at[i, "reported_at"]
            start = now if _na(rep) else max(cs.utc(rep), now)
            try:
                expected.at[i] = sla.deadline(start, cat.time_limit, cat.limit_unit, cal)
            except ValueError:
                pass
    lons, lats = rows.geometry.x, rows.geometry.y  # NaN for a missing or empty point

    out = []
    for (cid, state, code, notes, reports, desc, address, photos, assignee, township, county, requested_s,
         updated_s, expected_s, lon, lat) in zip(  # fmt: skip
        rows["id"].tolist(), rows["state"].tolist(), rows["category"].tolist(), rows["status_notes"].tolist(),
        rows["reports"].tolist(), rows["description"].tolist(), rows["address"].tolist(),
        rows["photo_urls"].tolist(), rows["assignee_id"].tolist(), rows["township_code"].tolist(),
        rows["county_code"].tolist(), _iso_column(rows["reported_at"], tz), _iso_column(updated, tz),
        _iso_column(expected, tz), lons.tolist(), lats.tolist(), strict=True,
    ):
        state, code = str(state), str(code)
        cat = cats.get(code)
        note = _text(notes)
        if not note or not note.strip():
            zh_en = STATE_NOTES.get(state)
            note = (zh_en[1] if en else zh_en[0]) if zh_en else state
        n = 1 if _na(reports) else int(reports)
        notice = None
        if n > 1:
            notice = f"{n} reports of this problem were merged" if en else f"已合并 {n} 次相同报告"
        agency = None
        if not _na(assignee):
            agency = unit_names.get(staff_units.get(int(assignee), ""))
        for unit in (township, county):
            if agency is None and not _na(unit):
                agency = unit_names.get(str(unit))
        media = cs.photo_list(photos)
        out.append({
            "service_request_id": str(int(cid)),
            "status": "closed" if state in cs.FINAL_STATES else "open",
            "status_notes": note,
            "service_name": (cat.name_en if en else cat.name_zh) if cat else code,
            "service_code": code,
            "description": _text(desc),
            "agency_responsible": agency,
            "service_notice": notice,
            "requested_datetime": requested_s,
            "updated_datetime": updated_s,
            "expected_datetime": expected_s,
            "address": _text(address),
            "address_id": None,
            "zipcode": None,
            "lat": None if _na(lat) else float(lat),
            "long": None if _na(lon) else float(lon),
            "media_url": media[0] if media else None,
        })  # fmt: skip
    return out


_ID = re.compile(r"[0-9]{1,18}")


def _case_id(text: str) -> int | None:
    s = text.strip()
    return int(s) if _ID.fullmatch(s) and int(s) > 0 else None


def get_request(store: Store, request_id: str, *, now: Any = None, lang: str = "zh") -> list[dict[str, Any]]:
    """GET requests/{id}: a one-element list; 404 when there is no such request."""
    cid = _case_id(request_id)
    rows = store.read("cases", where={"id": cid}) if cid is not None else None
    if rows is None or not len(rows):
        raise Open311Error(404, f"service_request_id {request_id[:100]!r} was not found")
    return _requests(store, rows, cs.utc(now), lang)


_W3C = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,9})?)?)?(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)?")


def parse_datetime(text: str, name: str, tz: str) -> pd.Timestamp:
    """A W3C/ISO 8601 date-time (``2026-11-20T08:00:00Z``, ``...+08:00``, or a date) as UTC; one
    without an offset is taken in the city's time zone. 400 for anything else."""
    s = text.strip()
    # an unencoded '+' of an offset arrives as a space: "...T08:00:00 08:00"
    s = re.sub(r"(T[0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]+)?)?) ([0-9]{2}(?::?[0-9]{2})?)$", r"\1+\2", s)
    if not _W3C.fullmatch(s):
        raise Open311Error(400, f"{name} {text[:60]!r} is not a W3C date-time such as 2026-11-20T08:00:00+08:00")
    try:
        ts = pd.Timestamp(s.replace(" ", "T"))
    except (ValueError, OverflowError) as e:  # OutOfBoundsDatetime is a ValueError
        raise Open311Error(400, f"{name} {text[:60]!r} is not a valid date-time ({e})") from None
    if ts is pd.NaT or _na(ts):
        raise Open311Error(400, f"{name} {text[:60]!r} is not a valid date-time")
    if not 1900 <= ts.year <= 2200:
        raise Open311Error(400, f"{name} {text[:60]!r} lies outside the years 1900 to 2200")
    try:
        return ts.tz_localize(tz).tz_convert("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    except (ValueError, OverflowError) as e:  # nonexistent local time, out of range after shifting
        raise Open311Error(400, f"{name} {text[:60]!r} is not a valid date-time ({e})") from None


def _values(params: Mapping[str, Sequence[str]], key: str) -> list[str]:
    """The comma-separated values of a parameter that may also be declared several times."""
    out: list[str] = []
    for v in params.get(key, ()):
        out.extend(p.strip() for p in str(v).split(",") if p.strip())
    return list(dict.fromkeys(out))


def _first(params: Mapping[str, Sequence[str]], key: str) -> str | None:
    vals = [str(v) for v in params.get(key, ()) if v is not None and str(v).strip()]
    return vals[0] if vals else None


def find_requests(
    store: Store, params: Mapping[str, Sequence[str]], *, now: Any = None, lang: str = "zh"
) -> list[dict[str, Any]]:
    """GET requests with the spec's filters: ``service_request_id`` (comma-separated; then every
    other filter is ignored), ``service_code`` (comma-separated), ``start_date``/``end_date`` on
    the requested time (default and widest span: 90 days; end_date inclusive), ``status`` (open,
    closed). At most MAX_RESULTS, newest first."""
    now_ts = cs.utc(now)
    check_jurisdiction(store, _first(params, "jurisdiction_id"))
    order = ["-reported_at", "-id"]
    if params.get("service_request_id") is not None and any(str(v).strip() for v in params["service_request_id"]):
        wanted = _values(params, "service_request_id")
        if len(wanted) > MAX_IDS:
            raise Open311Error(400, f"at most {MAX_IDS} service_request_id values are accepted at once")
        ids = [i for i in (_case_id(w) for w in wanted) if i is not None]
        if not ids:
            return []
        rows = store.read("cases", where={"id": ids}, order_by=order, limit=MAX_RESULTS)
        return _requests(store, rows, now_ts, lang)
    where: dict[str, Any] = {}
    codes = _values(params, "service_code")
    if codes:
        known = set(cs.categories(store)["code"].astype(str))
        unknown = [c for c in codes if c not in known]
        if unknown:
            raise Open311Error(400, f"service_code {', '.join(repr(c[:100]) for c in unknown[:5])} was not found")
        where["category"] = codes
    status = [s.lower() for s in _values(params, "status")]
    bad = [s for s in status if s not in ("open", "closed")]
    if bad:
        raise Open311Error(400, f"status {bad[0][:60]!r} is not open or closed")
    states: list[str] = []
    if "open" in status:
        states += cs.OPEN_STATES
    if "closed" in status:
        states += cs.FINAL_STATES
    if states:
        where["state"] = states
    tz = city_tz(store)
    start_s, end_s = _first(params, "start_date"), _first(params, "end_date")
    start = parse_datetime(start_s, "start_date", tz) if start_s else None
    end = parse_datetime(end_s, "end_date", tz) if end_s else None
    if start is not None and end is not None:
        if end < start:
            raise Open311Error(400, "end_date lies before start_date")
        if end - start > WINDOW:
            raise Open311Error(400, f"start_date and end_date may span at most {WINDOW.days} days")
    elif start is not None:
        end = start + WINDOW
    elif end is not None:
        start = end - WINDOW
    else:
        end, start = now_ts, now_ts - WINDOW
    assert start is not None and end is not None
    # stored times are whole seconds: the end is inclusive to the second
    where["reported_at"] = Range(start.floor("s"), end.floor("s") + pd.Timedelta(seconds=1))
    rows = store.read("cases", where=where, order_by=order, limit=MAX_RESULTS)
    return _requests(store, rows, now_ts, lang)


# ----------------------------------------------------------------------------- posting


@dataclass(frozen=True)
class Submitted:
    service_request_id: str
    service_notice: str
    account_id: str | None
    created: bool  # False: merged into an earlier request

    def as_dict(self) -> dict[str, Any]:
        return {"service_request_id": self.service_request_id, "service_notice": self.service_notice,
                "account_id": self.account_id}  # fmt: skip


def locate(store: Store, address_string: str | None, address_id: str | None) -> tuple[float, float] | None:
    """(lon, lat) of an address: ``address_id`` is a building id; ``address_string`` is looked up in
    the city's gazetteer (services.geocode: community, then building, facility). None when nothing
    named in it is known or what is named is ambiguous."""
    if address_id:
        bid = _case_id(address_id)
        if bid is not None:
            got = building_point(store, bid)
            if got is not None:
                return got
    text = (address_string or "").strip()
    if len(text) < 2:
        return None
    hit = gazetteer(store).locate(text)
    return None if hit is None else (hit[0], hit[1])


def _is_cjk(text: str) -> bool:
    return any("\u3400" <= ch <= "\u9fff" for ch in text)


def reporter_name(first: str | None, last: str | None) -> str | None:
    """'John Smith'; Chinese names family name first without a space: 董 + 丽琳 -> 董丽琳."""
    first, last = (first or "").strip(), (last or "").strip()
    if first and last and _is_cjk(first) and _is_cjk(last):
        return last + first
    return " ".join(p for p in (first, last) if p) or None


def _number(text: str, name: str) -> float:
    try:
        v = float(text.strip())
    except (TypeError, ValueError):
        raise Open311Error(400, f"{name} {text[:40]!r} is not a number") from None
    if not math.isfinite(v):
        raise Open311Error(400, f"{name} must be a finite number, not {text[:40]!r}")
    return v


def submit(store: Store, fields: Mapping[str, Sequence[str]], *, now: Any = None) -> Submitted:
    """POST requests: ``fields`` as posted (each name with its values, as a form gives them)."""
    now_ts = cs.utc(now)
    check_jurisdiction(store, _first(fields, "jurisdiction_id"))
    check_api_key(store, _first(fields, "api_key"))
    code = (_first(fields, "service_code") or "").strip()
    if not code:
        raise Open311Error(400, "service_code was not provided")
    offered = cs.categories(store, active_only=True)
    hit = offered[offered["code"].astype(str) == code]
    if not len(hit):
        raise Open311Error(400, f"service_code {code[:100]!r} was not found; GET services.json lists the codes")
    cat = hit.iloc[0]
    description = _first(fields, "description")
    address = cs.clean_text(_first(fields, "address_string"), limit=cs.MAX_SHORT_TEXT, name="address_string")
    lat_s, lon_s = _first(fields, "lat"), _first(fields, "long") or _first(fields, "lon") or _first(fields, "lng")
    if lat_s is not None or lon_s is not None:
        if lat_s is None or lon_s is None:
            raise Open311Error(400, "lat and long must be given together")
        lon, lat = cs.check_lonlat(_number(lon_s, "long"), _number(lat_s, "lat"))
    else:
        address_id = _first(fields, "address_id")
        if not address and not address_id:
            raise Open311Error(400, "a location is required: lat and long, address_string or address_id")
        got = locate(store, address, address_id)
        if got is None:
            what = f"address_string {address[:60]!r}" if address else f"address_id {str(address_id)[:60]!r}"
            raise Open311Error(400, f"location not found: {what} matches no building, facility or road; "
                                    "send lat and long")  # fmt: skip
        lon, lat = got
    if description is not None and len(description.strip()) > cs.MAX_DESCRIPTION:
        raise Open311Error(
            400, f"description is {len(description.strip())} characters long; at most {cs.MAX_DESCRIPTION} are accepted"
        )
    if not (description or "").strip() and not address:  # the spec makes description optional
        description = f"{cat['name_zh']}（{cat['name_en']}）"
    photos = [str(v) for v in fields.get("media_url", ()) if v is not None and str(v).strip()]
    email, device = _first(fields, "email"), _first(fields, "device_id")
    who = cs.clean_text(email or device or "anonymous", limit=cs.MAX_SHORT_TEXT, name="email" if email else "device_id")
    made = cs.create_case(
        store,
        cs.NewCase(
            category=code,
            lon=lon,
            lat=lat,
            description=description,
            address=address,
            source="open311",
            reporter_name=reporter_name(_first(fields, "first_name"), _first(fields, "last_name")),
            reporter_phone=_first(fields, "phone"),
            reporter_email=email,
            photo_urls=photos,
            actor=f"open311:{(who or 'anonymous')[:100]}",
        ),
        now=now_ts,
    )
    rid = str(made.case_id)
    limit_zh = sla.limit_text(float(cat["time_limit"]), str(cat["limit_unit"]), "zh")
    limit_en = sla.limit_text(float(cat["time_limit"]), str(cat["limit_unit"]), "en")
    if made.created:
        notice = (f"已受理，请求编号 {rid}；处置时限 {limit_zh}（自派遣起算） / "
                  f"Received as request {rid}; time limit {limit_en} from dispatch")  # fmt: skip
    else:
        notice = (f"同一地点的同类问题已在处理，本报告已合并到请求 {rid} / "
                  f"Merged into request {rid}: the same problem at this place is already being handled")  # fmt: skip
    return Submitted(rid, notice, None, made.created)
