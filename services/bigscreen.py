"""The command center's big screen: headline figures, the ticker of new and escalated cases, the
charts and what the map shows, for the whole city or one district (county code).

Each headline figure is one count on the store, defined here once and served to the page and to
``GET /api/kpis`` alike:

* ``cases_today`` — cases reported since local midnight (the city's ``tz`` setting);
* ``open`` — cases in an open state (``services.cases.OPEN_STATES``: reported … verified);
* ``overdue`` — cases someone is working on (dispatched, accepted, in progress) past their deadline;
* ``closed_rate`` — of the cases reported in the last 30 days, the share closed (closed or
  evaluated); rejected reports are left out of both sides;
* ``satisfaction`` — the mean residents' rating (1–5) of the cases closed in the last 30 days that
  were rated, ``satisfied_share`` the share rated 4 or 5;
* ``staff_online`` — staff whose phone's last fix is at most 5 minutes old; ``staff_on_duty`` —
  staff on the duty roster; ``staff_total``;
* ``cameras_online`` / ``cameras_total``.

Cheap enough to run every refresh: counts on indexed columns; the charts (read once a minute)
read one column of the last 30 days.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import geopandas as gpd
import pandas as pd
from shapely.geometry import Point

from services.cameras import counts_per_street
from services.cases import OPEN_STATES, WORKING_STATES, categories, utc
from services.settings import city_tz
from services.tracks import ONLINE_S, live_staff, staff_counts
from store.base import Range, Store

__all__ = [
    "CLOSED_STATES",
    "WINDOW_DAYS",
    "BigMap",
    "Charts",
    "Kpis",
    "charts",
    "district_at",
    "districts",
    "kpis",
    "local_day_start",
    "map_data",
    "ticker",
    "tour_next",
]

WINDOW_DAYS = 30
CLOSED_STATES = ("closed", "evaluated")
NEW_MINUTES = 10  # a case this new flashes on the map
MAX_CASES_DRAWN = 2000  # in a district; more: counts per community
MAX_CAMERAS_DRAWN = 3000


@dataclass(frozen=True)
class Kpis:
    as_of: str  # ISO 8601, UTC
    county: str | None
    cases_today: int
    open: int
    overdue: int
    reported_30d: int
    closed_30d: int
    closed_rate: float | None
    rated_30d: int
    satisfaction: float | None
    satisfied_share: float | None
    staff_online: int
    staff_on_duty: int
    staff_total: int
    cameras_online: int
    cameras_total: int

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _local_midnight(now: pd.Timestamp, tz: str) -> pd.Timestamp:
    return now.tz_convert(tz).normalize().tz_convert("UTC")


def _where_county(county: str | None, **where: Any) -> dict[str, Any]:
    return {**where, "county_code": county} if county else dict(where)


def _share(a: float, b: float) -> float | None:
    return round(a / b, 4) if b > 0 else None


def _cameras_in(store: Store, county: str | None) -> pd.DataFrame:
    """Cameras (online column) of the city, or standing inside one district (by position: a
    registry's unit codes are often missing)."""
    if not county:
        return store.read("cameras", columns=["online"], geometry=False)
    shape = store.read("admin_units", where={"code": county}, columns=["code"])
    if not len(shape):
        return pd.DataFrame({"online": pd.Series([], dtype="boolean")})
    b = shape.total_bounds
    cams = store.read("cameras", bbox=(float(b[0]), float(b[1]), float(b[2]), float(b[3])), columns=["online"])
    return cams[cams.geometry.within(shape.geometry.iloc[0])]


def kpis(store: Store, *, now: Any = None, county: str | None = None) -> Kpis:
    """The headline figures (see the module docstring) for the city, or one district."""
    ts = utc(now)
    tz = city_tz(store)
    since = ts - pd.Timedelta(days=WINDOW_DAYS)
    cases_today = store.count("cases", where=_where_county(county, reported_at=Range(_local_midnight(ts, tz), None)))
    open_ = store.count("cases", where=_where_county(county, state=list(OPEN_STATES)))
    overdue = store.count("cases", where=_where_county(county, state=list(WORKING_STATES), deadline_at=Range(None, ts)))
    # one column of a month of cases (the (reported_at, state) index covers it); a GROUP BY would
    # let SQLite walk the state index over every case ever reported
    states = store.read("cases", where=_where_county(county, reported_at=Range(since, None)), columns=["state"],
                        geometry=False)["state"]  # fmt: skip
    n = {str(k): int(v) for k, v in states.value_counts().items()}
    reported = sum(v for k, v in n.items() if k != "rejected")
    closed = sum(n.get(k, 0) for k in CLOSED_STATES)
    rated = store.group_count(
        "cases", ["satisfaction"], where=_where_county(county, closed_at=Range(since, None), satisfaction=Range(1, 6))
    )
    r_n = int(rated["n"].sum()) if len(rated) else 0
    mean = float((rated["satisfaction"].astype(float) * rated["n"]).sum() / r_n) if r_n else None
    happy = int(rated.loc[rated["satisfaction"].astype(float) >= 4, "n"].sum()) if r_n else 0
    staff = store.read("staff", columns=["id", "unit_code", "on_duty"], geometry=False)
    cams = _cameras_in(store, county)
    fresh = store.read("latest_positions", where={"ts": Range(ts - pd.Timedelta(seconds=ONLINE_S), None)},
                       columns=["staff_id"], geometry=False)  # fmt: skip
    if county:
        staff = staff[staff["unit_code"].fillna("").astype(str).str.startswith(county)]
    online = int(fresh["staff_id"].isin(staff["id"]).sum())
    cam_online = cams["online"].astype("boolean").fillna(False).astype(bool)
    return Kpis(
        as_of=ts.isoformat(),
        county=county,
        cases_today=int(cases_today),
        open=int(open_),
        overdue=int(overdue),
        reported_30d=int(reported),
        closed_30d=int(closed),
        closed_rate=_share(closed, reported),
        rated_30d=r_n,
        satisfaction=round(mean, 2) if mean is not None else None,
        satisfied_share=_share(happy, r_n),
        staff_online=online,
        staff_on_duty=int(staff["on_duty"].astype("boolean").fillna(False).astype(bool).sum()),
        staff_total=len(staff),
        cameras_online=int(cam_online.sum()),
        cameras_total=len(cams),
    )


def _names(store: Store, codes: list[str]) -> dict[str, str]:
    if not codes:
        return {}
    units = store.read("admin_units", where={"code": codes}, columns=["code", "name"], geometry=False)
    return dict(zip(units["code"].astype(str), units["name"].astype(str), strict=True))


def _category_names(store: Store, lang: str) -> dict[str, str]:
    cats = categories(store)
    return dict(zip(cats["code"], cats["name_zh" if lang == "zh" else "name_en"], strict=True))


def ticker(
    store: Store, *, now: Any = None, county: str | None = None, hours: float = 24, limit: int = 30, lang: str = "zh"
) -> pd.DataFrame:
    """New and escalated cases of the last ``hours``, newest first: kind (new | escalated), ts
    (UTC), case_id, category (name), place (street name), level (escalation level), text (the
    description, cut to 60 characters)."""
    ts = utc(now)
    since = ts - pd.Timedelta(hours=hours)
    cols = ["id", "category", "township_code", "description", "address", "reported_at", "escalated_at", "escalation_level"]
    new = store.read("cases", where=_where_county(county, reported_at=Range(since, None)), columns=cols,
                     order_by=["-reported_at"], limit=limit, geometry=False)  # fmt: skip
    esc = store.read("cases", where=_where_county(county, escalated_at=Range(since, None)), columns=cols,
                     order_by=["-escalated_at"], limit=limit, geometry=False)  # fmt: skip
    rows = pd.concat(
        [new.assign(kind="new", ts=new["reported_at"]), esc.assign(kind="escalated", ts=esc["escalated_at"])],
        ignore_index=True,
    )
    out_cols = ["kind", "ts", "case_id", "category", "place", "level", "text"]
    if not len(rows):
        return pd.DataFrame({c: [] for c in out_cols})
    rows = rows.sort_values("ts", ascending=False, kind="stable").head(limit)
    names = _names(store, sorted(rows["township_code"].dropna().astype(str).unique()))
    cats = _category_names(store, lang)
    text = rows["description"].fillna(rows["address"]).fillna("").astype(str).str.slice(0, 60)
    return pd.DataFrame(
        {
            "kind": rows["kind"].to_numpy(),
            "ts": rows["ts"].to_numpy(),
            "case_id": rows["id"].astype(int).to_numpy(),
            "category": rows["category"].map(cats).fillna(rows["category"]).to_numpy(),
            "place": rows["township_code"].map(names).to_numpy(),
            "level": pd.to_numeric(rows["escalation_level"], errors="coerce").fillna(0).astype(int).to_numpy(),
            "text": text.to_numpy(),
        }
    )


@dataclass(frozen=True)
class Charts:
    by_category: pd.DataFrame  # category, name, n — reported in the last 30 days
    daily: pd.DataFrame  # day (local date), n — reported per day, the last 30 days (zeros kept)
    top_streets: pd.DataFrame  # code, name, open — the 10 with the most open cases
    top_grids: pd.DataFrame  # code, name, open
    closure_hours: pd.DataFrame  # category, name, median_h, n — closed in the last 30 days


def charts(store: Store, *, now: Any = None, county: str | None = None, lang: str = "zh", top: int = 10) -> Charts:
    """What the big screen's charts draw."""
    ts = utc(now)
    tz = city_tz(store)
    since = _local_midnight(ts, tz) - pd.Timedelta(days=WINDOW_DAYS - 1)
    cats = _category_names(store, lang)
    month = store.read("cases", where=_where_county(county, reported_at=Range(since, None)),
                       columns=["category", "reported_at"], geometry=False)  # fmt: skip
    counts = month["category"].value_counts()
    by_cat = pd.DataFrame({"category": counts.index.astype(str), "n": counts.to_numpy().astype(int)})
    by_cat = by_cat.assign(name=by_cat["category"].map(cats).fillna(by_cat["category"]))[["category", "name", "n"]]
    stamps = month["reported_at"]
    days = pd.date_range(since.tz_convert(tz).normalize(), periods=WINDOW_DAYS, freq="D").date
    local = pd.to_datetime(stamps, utc=True).dt.tz_convert(tz).dt.date
    daily = pd.DataFrame({"day": days, "n": local.value_counts().reindex(days, fill_value=0).astype(int).to_numpy()})
    open_where = _where_county(county, state=list(OPEN_STATES))
    streets = store.group_count("cases", ["township_code"], where=open_where).dropna(subset=["township_code"])
    streets = streets.sort_values("n", ascending=False).head(top)
    s_names = _names(store, streets["township_code"].astype(str).tolist())
    top_streets = pd.DataFrame(
        {"code": streets["township_code"].astype(str), "name": streets["township_code"].astype(str).map(s_names),
         "open": streets["n"].astype(int)}  # fmt: skip
    ).reset_index(drop=True)
    grids = store.group_count("cases", ["grid_code"], where=open_where).dropna(subset=["grid_code"])
    grids = grids.sort_values("n", ascending=False).head(top)
    g = store.read("grids", where={"code": grids["grid_code"].astype(str).tolist()}, columns=["code", "name"],
                   geometry=False) if len(grids) else pd.DataFrame({"code": [], "name": []})  # fmt: skip
    g_names = dict(zip(g["code"].astype(str), g["name"].astype(str), strict=True))
    top_grids = pd.DataFrame(
        {"code": grids["grid_code"].astype(str), "name": grids["grid_code"].astype(str).map(g_names),
         "open": grids["n"].astype(int)}  # fmt: skip
    ).reset_index(drop=True)
    closed = store.read("cases", where=_where_county(county, closed_at=Range(since, None)),
                        columns=["category", "reported_at", "closed_at"], geometry=False)  # fmt: skip
    hours = (closed["closed_at"] - closed["reported_at"]).dt.total_seconds() / 3600.0
    closure = (
        pd.DataFrame({"category": closed["category"], "h": hours})
        .dropna()
        .groupby("category")["h"]
        .agg(median_h="median", n="size")
        .reset_index()
    )
    closure = closure.assign(name=closure["category"].map(cats).fillna(closure["category"]),
                             median_h=closure["median_h"].round(1))  # fmt: skip
    closure = closure.sort_values("median_h", ascending=False)[["category", "name", "median_h", "n"]]
    return Charts(by_cat.reset_index(drop=True), daily, top_streets, top_grids, closure.reset_index(drop=True))


def districts(store: Store) -> gpd.GeoDataFrame:
    """The city's districts/counties (code, name, geometry), for the map's outlines and the tour."""
    units = store.read("admin_units", where={"level": "county"}, columns=["code", "name"])
    return units.sort_values("code").reset_index(drop=True)


def district_at(store: Store, *, lon: float, lat: float) -> str | None:
    """The district (county code) that holds (lon, lat), None outside the city."""
    if not (math.isfinite(lon) and math.isfinite(lat)):
        return None
    eps = 1e-6
    units = store.read("admin_units", where={"level": "county"}, columns=["code"], bbox=(lon - eps, lat - eps, lon + eps, lat + eps))
    hit = units[units.geometry.covers(Point(lon, lat))]
    return str(hit["code"].iloc[0]) if len(hit) else None


@dataclass(frozen=True)
class BigMap:
    """What the big screen's map shows: open cases as counts per street (city) or per community
    (district), the new cases that flash, live staff, cameras by status, the district outlines."""

    county: str | None
    bounds: tuple[float, float, float, float]  # lon/lat box to fit
    case_counts: gpd.GeoDataFrame  # code, name, open, overdue (points)
    new_cases: gpd.GeoDataFrame  # id, category_name, reported_at, place (points)
    staff: gpd.GeoDataFrame  # live_staff's columns (points; on duty or reporting)
    staff_counts: gpd.GeoDataFrame | None  # per street when the whole city is shown
    cameras: gpd.GeoDataFrame  # id, name, online, cam_class (points) — in a district
    camera_counts: gpd.GeoDataFrame | None  # code, name, cameras, online (points) — whole city
    outlines: gpd.GeoDataFrame  # code, name, geometry: districts (city) or the one district


def _case_counts(store: Store, *, county: str | None, now: pd.Timestamp) -> gpd.GeoDataFrame:
    level_col = "village_code" if county else "township_code"
    open_ = store.group_count("cases", [level_col], where=_where_county(county, state=list(OPEN_STATES)))
    late = store.group_count(
        "cases", [level_col], where=_where_county(county, state=list(WORKING_STATES), deadline_at=Range(None, now))
    )
    open_ = open_.dropna(subset=[level_col])
    agg = pd.DataFrame({"code": open_[level_col].astype(str), "open": open_["n"].astype(int)})
    late_n = dict(zip(late[level_col].astype(str), late["n"].astype(int), strict=True)) if len(late) else {}
    agg = agg.assign(overdue=agg["code"].map(late_n).fillna(0).astype(int))
    units = store.read("admin_units", where={"code": agg["code"].tolist()}, columns=["code", "name"]) if len(agg) else None
    if units is None or not len(units):
        return gpd.GeoDataFrame({"code": [], "name": [], "open": [], "overdue": []}, geometry=gpd.GeoSeries([], crs=4326), crs=4326)
    merged = units.merge(agg, on="code")
    pts = gpd.GeoSeries(merged.geometry.representative_point(), crs=4326)
    return gpd.GeoDataFrame(merged[["code", "name", "open", "overdue"]], geometry=pts.to_numpy(), crs=4326)


def map_data(store: Store, *, now: Any = None, county: str | None = None, lang: str = "zh") -> BigMap:
    """The map's overlays for the whole city (``county`` None) or one district."""
    ts = utc(now)
    units = districts(store)
    if county:
        outline = units[units["code"] == county]
        if not len(outline):
            raise ValueError(f"there is no district {county}")
    else:
        outline = units
    b = outline.total_bounds if len(outline) else (0.0, 0.0, 0.0, 0.0)
    bounds = (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
    bbox = bounds if county else None
    cats = _category_names(store, lang)
    new = store.read("cases", where=_where_county(county, reported_at=Range(ts - pd.Timedelta(minutes=NEW_MINUTES), None)),
                     columns=["id", "category", "township_code", "reported_at"], order_by=["-reported_at"], limit=500)  # fmt: skip
    names = _names(store, sorted(new["township_code"].dropna().astype(str).unique()))
    new = new.assign(category_name=new["category"].map(cats).fillna(new["category"]), place=new["township_code"].map(names))
    live = live_staff(store, bbox=bbox, now=ts)
    if county:
        live = live[live["unit_code"].fillna("").astype(str).str.startswith(county)].reset_index(drop=True)
    s_counts = None if county else staff_counts(live, store, level="township")
    cams = store.read("cameras", bbox=bbox, columns=["id", "name", "online", "cam_class", "unit_code"])
    if county:
        cams = cams[cams.geometry.within(outline.geometry.iloc[0])]
    c_counts = None
    if not county or len(cams) > MAX_CAMERAS_DRAWN:
        c_counts = counts_per_street(store, cams)
        cams = cams.head(0)
    return BigMap(
        county=county,
        bounds=bounds,
        case_counts=_case_counts(store, county=county, now=ts),
        new_cases=gpd.GeoDataFrame(new, geometry="geometry", crs=4326),
        staff=live,
        staff_counts=s_counts,
        cameras=cams,
        camera_counts=c_counts,
        outlines=outline,
    )


def tour_next(codes: list[str], current: str | None) -> str | None:
    """The district after ``current`` in a tour of the city: the whole city (None) first, then
    each district in code order, then the city again."""
    if not codes:
        return None
    if current is None:
        return codes[0]
    try:
        i = codes.index(current)
    except ValueError:
        return codes[0]
    return None if i + 1 >= len(codes) else codes[i + 1]


def local_day_start(now: Any, tz: str) -> datetime:
    """Local midnight of ``now`` in ``tz``, as a UTC datetime (what ``cases_today`` counts from)."""
    return _local_midnight(utc(now), tz).to_pydatetime()

