"""What the staff page shows: live positions, a worker's track, patrol coverage and KPIs.

- **Live**: every on-duty staff member at the latest position, with its freshness -- online
  (a fix within ``online_s``, default 5 min), stale (within ``offline_s``, 30 min) or offline.
  Zoomed out over a city of 15,000 staff the map gets counts per township instead of points.
- **Track**: a worker's fixes for a period (GPS jumps excluded), the path as time-stamped
  segments, stops (dwell ≥ ``min_dwell_s``), trip statistics and grid entries/exits.
- **Coverage**: the share of the buildings and households of the worker's grids that the track
  passed within ``radius_m``; the grids nobody was present in on a day.
- **KPIs** per day / week / month: distance patrolled, moving time, households visited (buildings
  with a stop nearby), cases reported and handled. Days are rolled up into ``staff_days`` once
  (``rollup``); today is always computed fresh.

Days are calendar days in the city's time zone (setting ``tz``, default Asia/Shanghai).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd

from geo.tracks import (
    Coverage,
    TripStats,
    daily_summary,
    grid_visits,
    patrol_coverage,
    stops,
    track_segments,
    trip_stats,
)
from services.cases import code_range
from services.settings import city_tz
from store import Range
from store.base import BBox, Store

ONLINE_S = 300.0
OFFLINE_S = 1800.0
MAX_POINTS = 3000  # staff points drawn at once; beyond that, counts per township
Period = Literal["day", "week", "month"]


def _utc_now(now: datetime | pd.Timestamp | None) -> pd.Timestamp:
    ts = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def day_bounds(day: date, tz: str) -> tuple[pd.Timestamp, pd.Timestamp]:
    """[start, end) in UTC of a local calendar day."""
    start = pd.Timestamp(day).tz_localize(tz)
    return start.tz_convert("UTC"), (start + pd.Timedelta(days=1)).tz_convert("UTC")


def local_today(store: Store, now: datetime | pd.Timestamp | None = None) -> date:
    return _utc_now(now).tz_convert(city_tz(store)).date()


# --------------------------------------------------------------------------- live


def freshness(age_s: pd.Series, *, online_s: float = ONLINE_S, offline_s: float = OFFLINE_S) -> pd.Series:
    return pd.Series(
        np.select([age_s <= online_s, age_s <= offline_s], ["online", "stale"], "offline"), index=age_s.index
    )


def _units(store: Store) -> pd.DataFrame:
    return store.read("admin_units", columns=["code", "name", "level"], geometry=False)


def live_staff(
    store: Store,
    *,
    bbox: BBox | None = None,
    now: datetime | pd.Timestamp | None = None,
    roles: Sequence[str] | None = None,
    on_duty_only: bool = True,
    online_s: float = ONLINE_S,
    offline_s: float = OFFLINE_S,
    unit_prefix: str | None = None,
) -> gpd.GeoDataFrame:
    """Latest positions joined with staff: staff_id, name, role, unit_code, unit_name, ts, age_s,
    freshness, battery, speed, accuracy, grid_code (EPSG:4326); with ``unit_prefix``, only staff
    of the units under it."""
    latest = store.read("latest_positions", bbox=bbox)
    staff = store.read("staff", columns=["id", "name", "role", "unit_code", "on_duty"],
                       where={"unit_code": code_range(unit_prefix)} if unit_prefix else None)  # fmt: skip
    if roles:
        staff = staff[staff["role"].isin(list(roles))]
    units = _units(store).set_index("code")["name"]
    out = latest.merge(staff.rename(columns={"id": "staff_id"}), on="staff_id", how="inner")
    age = (_utc_now(now) - out["ts"]).dt.total_seconds().clip(lower=0)
    if on_duty_only:  # on the duty roster, or reporting right now (a phone that sends is on duty)
        keep = out["on_duty"].fillna(False).astype(bool).to_numpy() | (age <= offline_s).to_numpy()
        out, age = out[keep], age[keep]
    out = out.assign(
        unit_name=out["unit_code"].map(units),
        age_s=age,
        freshness=freshness(age, online_s=online_s, offline_s=offline_s),
    )
    cols = ["staff_id", "name", "role", "unit_code", "unit_name", "ts", "age_s", "freshness", "battery", "speed",
            "accuracy", "grid_code", "geometry"]  # fmt: skip
    return gpd.GeoDataFrame(out[cols].reset_index(drop=True), geometry="geometry", crs=4326)


def staff_counts(live: gpd.GeoDataFrame, store: Store, *, level: Literal["county", "township", "village"] = "township") -> gpd.GeoDataFrame:
    """Live staff counted per unit of ``level`` (online / stale / offline), at the unit's centre:
    what a city-wide view draws instead of 15,000 points."""
    n = {"county": 6, "township": 9, "village": 12}[level]
    units = store.read("admin_units", where={"level": level}, columns=["code", "name"])
    key = live["unit_code"].astype(str).str[:n]
    counts = pd.crosstab(key, live["freshness"]).reindex(columns=["online", "stale", "offline"], fill_value=0)
    out = units.merge(counts, left_on="code", right_index=True, how="inner")
    centres = out.geometry.representative_point()
    return gpd.GeoDataFrame(
        out[["code", "name", "online", "stale", "offline"]].reset_index(drop=True),
        geometry=centres.reset_index(drop=True),
        crs=4326,
    )


def staff_choices(store: Store, *, unit_prefix: str | None = None) -> pd.DataFrame:
    """Staff to pick from: id, name, role, unit_code, unit_name, device_id (sorted by unit, name)."""
    staff = store.read("staff", columns=["id", "name", "role", "unit_code", "device_id"])
    if unit_prefix:
        staff = staff[staff["unit_code"].astype(str).str.startswith(unit_prefix)]
    units = _units(store).set_index("code")["name"]
    return staff.assign(unit_name=staff["unit_code"].map(units)).sort_values(["unit_code", "name"]).reset_index(drop=True)


# --------------------------------------------------------------------------- track


def _fixes(store: Store, staff_ids: Sequence[int], start: pd.Timestamp, end: pd.Timestamp) -> gpd.GeoDataFrame:
    """The staff's fixes in [start, end), time order, ``jump`` as a plain bool (NULL: not a jump)."""
    fixes = store.read("positions", where={"staff_id": list(staff_ids), "ts": Range(start, end)}, order_by=["staff_id", "ts"])
    fixes["jump"] = fixes["jump"].fillna(False).astype(bool)
    return fixes


@dataclass(frozen=True, eq=False)
class Track:
    staff_id: int
    start: pd.Timestamp
    end: pd.Timestamp
    fixes: gpd.GeoDataFrame  # every fix of the period, jumps included (flag ``jump``)
    accepted: gpd.GeoDataFrame  # without jumps, time order
    segments: gpd.GeoDataFrame
    stops: gpd.GeoDataFrame
    stats: TripStats
    visits: pd.DataFrame  # grid entries and exits

    @property
    def empty(self) -> bool:
        return len(self.accepted) == 0


def track(
    store: Store,
    staff_id: int,
    *,
    start: datetime | pd.Timestamp,
    end: datetime | pd.Timestamp,
    min_dwell_s: float = 300,
    stop_radius_m: float = 50,
    max_gap_s: float = 600,
) -> Track:
    """A worker's track over [start, end)."""
    s, e = _utc_now(start), _utc_now(end)
    if e <= s:
        raise ValueError(f"the period ends ({e}) before it starts ({s})")
    fixes = _fixes(store, [int(staff_id)], s, e)
    accepted = fixes[~fixes["jump"]].reset_index(drop=True)
    grids = store.read("grids", bbox=tuple(accepted.total_bounds)) if len(accepted) else None  # type: ignore[arg-type]
    visits = (
        grid_visits(accepted, grids, key="code", max_gap_s=max_gap_s)
        if grids is not None and len(grids)
        else pd.DataFrame(columns=["staff_id", "grid", "entered_at", "exited_at", "duration_s", "points"])
    )
    return Track(
        staff_id=int(staff_id),
        start=s,
        end=e,
        fixes=fixes,
        accepted=accepted,
        segments=track_segments(accepted, max_gap_s=max_gap_s),
        stops=stops(accepted, min_dwell_s=min_dwell_s, radius_m=stop_radius_m),
        stats=trip_stats(accepted, max_gap_s=max_gap_s),
        visits=visits,
    )


# --------------------------------------------------------------------------- coverage


def _worker_grids(store: Store, staff_id: int) -> gpd.GeoDataFrame:
    codes = store.read("staff_grids", where={"staff_id": int(staff_id)})["grid_code"].tolist()
    return store.read("grids", where={"code": codes}) if codes else store.read("grids", limit=0)


def coverage(
    store: Store,
    staff_id: int,
    *,
    start: datetime | pd.Timestamp,
    end: datetime | pd.Timestamp,
    radius_m: float = 30.0,
    fixes: gpd.GeoDataFrame | None = None,
) -> tuple[Coverage, gpd.GeoDataFrame]:
    """Patrol coverage of the worker's grids over [start, end): (coverage of their buildings, the
    grids). ``fixes``: the period's fixes when already read (``Track.fixes``), else read here."""
    grids = _worker_grids(store, staff_id)
    buildings = store.read("buildings", where={"grid_code": grids["code"].tolist()}) if len(grids) else store.read("buildings", limit=0)
    if fixes is None:
        fixes = _fixes(store, [int(staff_id)], _utc_now(start), _utc_now(end))
    return patrol_coverage(fixes, buildings, radius_m=radius_m, households="households"), grids


def unpatrolled_grids(store: Store, *, day: date, unit_prefix: str | None = None, bbox: BBox | None = None) -> gpd.GeoDataFrame:
    """Base grids with no staff present in them on ``day`` (local), optionally within a unit."""
    grids = store.read("grids", bbox=bbox, columns=["code", "name", "unit_code", "kind", "households"])
    if unit_prefix:
        grids = grids[grids["unit_code"].astype(str).str.startswith(unit_prefix)]
    seen = store.read("grid_presence", where={"day": day.isoformat()}, columns=["grid_code"])
    return grids[~grids["code"].isin(set(seen["grid_code"]))].reset_index(drop=True)


def patrol_summary(store: Store, *, day: date, unit_prefix: str | None = None) -> dict[str, int]:
    """Grids and how many of them had someone present on ``day``."""
    grids = store.read("grids", columns=["code", "unit_code"], geometry=False)
    if unit_prefix:
        grids = grids[grids["unit_code"].astype(str).str.startswith(unit_prefix)]
    seen = store.read("grid_presence", where={"day": day.isoformat()}, columns=["grid_code"])
    patrolled = int(grids["code"].isin(set(seen["grid_code"])).sum())
    return {"grids": len(grids), "patrolled": patrolled, "unpatrolled": len(grids) - patrolled}


# --------------------------------------------------------------------------- KPIs


SUMMARY_COLUMNS = [
    "points", "jumps", "distance_m", "duration_s", "moving_s", "stops", "buildings_visited", "households_visited",
    "first_ts", "last_ts",
]  # fmt: skip


def summarise_day(store: Store, day: date, *, staff_ids: Sequence[int] | None = None, batch: int = 500) -> pd.DataFrame:
    """``geo.tracks.daily_summary`` of one local day for the staff who sent fixes (in batches of
    staff, so a city's day never sits in memory at once)."""
    tz = city_tz(store)
    s, e = day_bounds(day, tz)
    if staff_ids is None:
        latest = store.read("latest_positions", columns=["staff_id"], geometry=False)
        staff_ids = sorted(set(latest["staff_id"].astype(int)))
    parts: list[pd.DataFrame] = []
    for i in range(0, len(staff_ids), batch):
        ids = [int(x) for x in staff_ids[i : i + batch]]
        fixes = _fixes(store, ids, s, e)
        if not len(fixes):
            continue
        links = store.read("staff_grids", where={"staff_id": ids})
        buildings = store.read("buildings", where={"grid_code": sorted(set(links["grid_code"]))}, columns=["households"])
        parts.append(daily_summary(fixes, buildings=buildings if len(buildings) else None, tz=tz))
    if not parts:
        return pd.DataFrame(columns=["staff_id", "day", *SUMMARY_COLUMNS])
    out = pd.concat(parts, ignore_index=True)
    out = out[out["day"] == day]
    return out.assign(day=day.isoformat()).reset_index(drop=True)


def rollup(store: Store, *, day: date, now: datetime | pd.Timestamp | None = None) -> int:
    """Summarise a finished local day into ``staff_days`` (re-running replaces that day's rows);
    returns the rows written. Today is refused: it is not finished."""
    if day >= local_today(store, now):
        raise ValueError(f"{day} is not over yet; KPIs for today are computed on the fly")
    rows = summarise_day(store, day)
    with store.transaction():
        store.delete("staff_days", {"day": day.isoformat()})
        if len(rows):
            store.write("staff_days", rows.assign(computed_at=_utc_now(now).floor("s")))
    return len(rows)


def rollup_missing(store: Store, *, days: int = 7, now: datetime | pd.Timestamp | None = None) -> list[date]:
    """Roll up the finished days of the last ``days`` that have fixes but no ``staff_days`` rows."""
    today = local_today(store, now)
    done = set(store.read("staff_days", columns=["day"])["day"])
    out = []
    for k in range(days, 0, -1):
        d = today - timedelta(days=k)
        if d.isoformat() in done:
            continue
        s, e = day_bounds(d, city_tz(store))
        if store.count("positions", where={"ts": Range(s, e)}):
            rollup(store, day=d, now=now)
            out.append(d)
    return out


def _period_start(day: pd.Series, period: Period) -> pd.Series:
    d = pd.to_datetime(day)
    if period == "week":
        d = d - pd.to_timedelta(d.dt.day_of_week, unit="D")
    elif period == "month":
        d = d.dt.to_period("M").dt.start_time
    return d.dt.strftime("%Y-%m-%d")


def kpis(
    store: Store,
    *,
    start: date,
    end: date,
    period: Period = "day",
    staff_ids: Sequence[int] | None = None,
    unit_prefix: str | None = None,
    now: datetime | pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Per worker and period over local days [start, end] (inclusive): distance_km, moving_h,
    households_visited, buildings_visited, stops, cases_reported, cases_handled. Finished days come
    from ``staff_days``; today is summarised fresh."""
    if end < start:
        raise ValueError("the period ends before it starts")
    staff = staff_choices(store, unit_prefix=unit_prefix)
    if staff_ids is not None:
        staff = staff[staff["id"].isin([int(x) for x in staff_ids])]
    ids = staff["id"].astype(int).tolist()
    days = store.read("staff_days", where={"staff_id": ids, "day": Range(start.isoformat(), (end + timedelta(days=1)).isoformat())})
    today = local_today(store, now)
    if start <= today <= end:
        fresh = summarise_day(store, today, staff_ids=ids)
        days = pd.concat([days[days["day"] != today.isoformat()], fresh], ignore_index=True)
    tz = city_tz(store)
    s, _ = day_bounds(start, tz)
    _, e = day_bounds(end, tz)
    events = store.read("case_events", where={"ts": Range(s, e), "action": ["report", "resolve"]}, columns=["case_id", "ts", "actor", "action"])
    events = events[events["actor"].astype(str).str.startswith("staff:")]
    events = events.assign(
        staff_id=pd.to_numeric(events["actor"].str.slice(6), errors="coerce"),
        day=events["ts"].dt.tz_convert(tz).dt.strftime("%Y-%m-%d"),
    ).dropna(subset=["staff_id"])
    events = events[events["staff_id"].isin(ids)]
    frames = []
    if len(days):
        d = days.assign(period=_period_start(days["day"], period))
        frames.append(
            d.groupby(["staff_id", "period"], as_index=False).agg(
                distance_m=("distance_m", "sum"),
                moving_s=("moving_s", "sum"),
                households_visited=("households_visited", "sum"),
                buildings_visited=("buildings_visited", "sum"),
                stops=("stops", "sum"),
                days_on_duty=("day", "nunique"),
            )
        )
    if len(events):
        ev = events.assign(period=_period_start(events["day"], period))
        counts = pd.crosstab([ev["staff_id"].astype(int), ev["period"]], ev["action"]).reset_index()
        frames.append(counts.rename(columns={"report": "cases_reported", "resolve": "cases_handled"}))
    cols = ["staff_id", "period", "distance_km", "moving_h", "households_visited", "buildings_visited", "stops",
            "cases_reported", "cases_handled", "days_on_duty"]  # fmt: skip
    if not frames:
        return pd.DataFrame(columns=["staff_id", "name", "role", "unit_name", *cols[1:]])
    out = frames[0]
    for f in frames[1:]:
        out = out.merge(f, on=["staff_id", "period"], how="outer")
    for c in ("distance_m", "moving_s", "households_visited", "buildings_visited", "stops", "cases_reported",
              "cases_handled", "days_on_duty"):  # fmt: skip
        out[c] = pd.to_numeric(out[c], errors="coerce").fillna(0) if c in out else 0
    out["distance_km"] = (out["distance_m"] / 1000).round(2)
    out["moving_h"] = (out["moving_s"] / 3600).round(2)
    out = out.merge(staff.rename(columns={"id": "staff_id"})[["staff_id", "name", "role", "unit_name"]], on="staff_id")
    int_cols = ["households_visited", "buildings_visited", "stops", "cases_reported", "cases_handled", "days_on_duty"]
    out[int_cols] = out[int_cols].astype(int)
    return out[["staff_id", "name", "role", "unit_name", *cols[1:]]].sort_values(["period", "staff_id"]).reset_index(drop=True)
