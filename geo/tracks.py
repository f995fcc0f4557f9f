"""GPS tracks of grid workers: jumps, segments, trips, stay points, grid visits, patrol coverage, daily KPIs.

Input ("fixes")
---------------
A GeoDataFrame of Point geometries with a CRS (normally EPSG:4326) and the columns

* ``ts`` — the time of the fix, ``datetime64`` *timezone-aware* (any zone; used as UTC);
* ``staff_id`` (optional) — the worker; without it the frame is one worker, reported as ``staff_id`` 0;
* ``accuracy`` (optional) — the reported accuracy radius in metres, may be NaN;
* ``jump`` (optional, bool) — fixes flagged as GPS jumps (see :func:`flag_jumps`).

Rows may arrive in any order: everything is computed on the fixes sorted by ``(staff_id, ts)`` (stable:
fixes with equal times keep their input order). Rows with a null or empty geometry, a missing ``ts`` or
a missing ``staff_id`` are *unusable* and ignored everywhere (they get ``jump = False`` from
:func:`flag_jumps` and ``None`` from :func:`locate`). A non-Point geometry, a naive ``ts`` or a frame
without a CRS is an error (:class:`geo.errors.CRSError` for the CRS).

Definitions
-----------
* **Accepted fix**: a usable fix that is not flagged as a jump. Jump fixes are excluded from every
  computation except :func:`flag_jumps` itself and the ``points``/``jumps`` counts.
* **Segment**: the straight line between two consecutive accepted fixes of the same worker, with
  ``duration_s``, ``distance_m`` (metres, in the UTM zone of the fixes — :func:`geo.crs.metric_crs`)
  and ``speed_mps = distance_m / duration_s`` (NaN when ``duration_s`` is 0). A segment is a **gap**
  when ``duration_s > max_gap_s`` (the phone was silent): gaps carry no distance and no moving time.
* **Moving time**: the summed duration of the non-gap segments with ``speed_mps >= moving_speed_mps``.
* **Jump** (:func:`flag_jumps`): a fix whose distance from the last accepted fix of the same worker,
  less an allowance ``max(slack_m, accuracy of either fix)``, needs more than ``max_speed_mps`` over
  the elapsed time (absolute, so late arrivals older than the reference are judged too; elapsed 0 and
  distance beyond the allowance is a jump). ``confirm`` consecutive flagged fixes consistent with each
  other prove the reference wrong (or a real trip during a silence): they are unflagged and become
  the reference.
* **Stay point** (:func:`stops`, after Li et al. 2008, "Mining user similarity based on location
  history"): from an anchor fix *i*, extend *j* while ``distance(i, j) <= radius_m`` and no silence
  longer than ``max_gap_s`` separates *j* from *j-1*; if the last fix reached is at least
  ``min_dwell_s`` after *i*, fixes *i..last* are a stop (positioned at their mean) and the search goes
  on after it, else it goes on from *i + 1*.
* **Grid visit** (:func:`grid_visits`): a maximal run of consecutive accepted fixes of one worker in
  the same grid, not interrupted by a silence longer than ``max_gap_s``; it is entered at its first fix
  and exited at its last.
* **Passed building** (:func:`patrol_coverage`): the track — every non-gap segment and every accepted
  fix — comes within ``radius_m`` of the footprint (or point).
* **Visited building** (:func:`daily_summary`): a stop's position lies within ``visit_radius_m`` of it.
* **Day** (:func:`daily_summary`): the local calendar date in ``tz`` of a fix, of the start ``t0`` of a
  segment (a segment crossing midnight belongs to the day it started) and of the start of a stop.

Results are new objects in the input CRS, timestamps are ``datetime64[ns, UTC]``; inputs are never
modified. Everything is vectorised with numpy/shapely over sorted arrays and group offsets, except two
loops that only visit *candidates*: the jump fixes of :func:`flag_jumps` and the possible stop anchors
of :func:`stops`.
"""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import dataclass, replace
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyproj
import shapely

from geo._types import BoolArray, FloatArray, IntArray, ObjArray
from geo.crs import metric_crs, require_crs
from geo.locate import PolygonIndex

__all__ = [
    "Coverage",
    "TripStats",
    "daily_summary",
    "flag_jumps",
    "grid_visits",
    "locate",
    "patrol_coverage",
    "stops",
    "track_segments",
    "trip_stats",
]


_NS = 1_000_000_000
_DAY_NS = 86_400 * _NS
_NO_STAFF = 0  # staff_id reported for a frame without a staff_id column

SEGMENT_COLUMNS = ["staff_id", "t0", "t1", "duration_s", "distance_m", "speed_mps", "gap", "geometry"]
STOP_COLUMNS = ["staff_id", "start", "end", "duration_s", "points", "geometry"]
VISIT_COLUMNS = ["staff_id", "grid", "entered_at", "exited_at", "duration_s", "points"]
DAILY_COLUMNS = [
    "staff_id",
    "day",
    "points",
    "jumps",
    "distance_m",
    "duration_s",
    "moving_s",
    "stops",
    "buildings_visited",
    "households_visited",
    "first_ts",
    "last_ts",
]


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TripStats:
    """Figures of one worker's track (:func:`trip_stats`).

    ``points``/``jumps``: usable fixes and how many of them are flagged jumps; ``distance_m``: length of
    the non-gap segments; ``duration_s``: last minus first accepted fix; ``moving_s``: moving time;
    ``start``/``end``: first and last accepted fix (``None`` without accepted fixes).
    """

    points: int
    jumps: int
    distance_m: float
    duration_s: float
    moving_s: float
    start: pd.Timestamp | None
    end: pd.Timestamp | None


@dataclass(frozen=True, eq=False)
class Coverage:
    """Outcome of :func:`patrol_coverage`.

    ``buildings``: a copy of the input buildings (same index, CRS and columns) plus ``passed`` (bool)
    and ``passed_at`` (first time the track came near, ``NaT`` if never). Shares are in 0..1 (0 when
    the total is 0). Household figures are 0 when no household column is used. (``eq=False``: a frame
    has no single truth value, so instances compare by identity.)
    """

    buildings: gpd.GeoDataFrame
    buildings_total: int
    buildings_passed: int
    households_total: float
    households_passed: float
    share_buildings: float
    share_households: float


# --------------------------------------------------------------------------------------------
# Preparing the fixes: usable rows, sorted by (staff, ts), in metres
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Track:
    """Usable fixes sorted by (staff, ts). Positions below are positions in this sorted order."""

    crs: Any  # the input CRS
    metric: pyproj.CRS | None  # the metric CRS of x/y (None when there are no usable fixes)
    rows: IntArray  # position of each fix in the input frame
    geoms: ObjArray  # the input Point geometries
    staff: npt.NDArray[Any]  # staff id (input values)
    srank: IntArray  # rank of the staff id, 0..k-1 (non-decreasing)
    ns: IntArray  # UTC nanoseconds
    x: FloatArray  # metres
    y: FloatArray
    acc: FloatArray  # accuracy in metres, NaN if unknown
    jump: BoolArray

    def __len__(self) -> int:
        return len(self.ns)

    def take(self, which: BoolArray | IntArray) -> _Track:
        return replace(
            self,
            rows=self.rows[which],
            geoms=self.geoms[which],
            staff=self.staff[which],
            srank=self.srank[which],
            ns=self.ns[which],
            x=self.x[which],
            y=self.y[which],
            acc=self.acc[which],
            jump=self.jump[which],
        )

    def accepted(self) -> _Track:
        return self.take(~self.jump) if self.jump.any() else self

    def new_staff(self) -> BoolArray:
        """True at the first fix of each worker."""
        out = np.ones(len(self), dtype=bool)
        out[1:] = self.srank[1:] != self.srank[:-1]
        return out

    def staff_ends(self) -> IntArray:
        """For each fix, the position after the last fix of its worker."""
        starts = np.flatnonzero(self.new_staff())
        ends = np.append(starts[1:], len(self)).astype(np.int64)
        return ends[np.cumsum(self.new_staff()) - 1]

    def from_metric(self, x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
        """Metric coordinates back to the input CRS."""
        assert self.metric is not None
        transformer = pyproj.Transformer.from_crs(
            self.metric, pyproj.CRS.from_user_input(self.crs), always_xy=True
        )
        bx, by = transformer.transform(x, y)
        return np.asarray(bx, dtype=np.float64), np.asarray(by, dtype=np.float64)


def _check_frame(frame: Any, what: str) -> None:
    if not isinstance(frame, gpd.GeoDataFrame):
        raise TypeError(f"{what} must be a GeoDataFrame, got {type(frame).__name__}")
    require_crs(frame)


def _utc_ns(values: pd.Series, what: str) -> tuple[IntArray, BoolArray]:
    """UTC nanoseconds of a tz-aware datetime column, and where it is present."""
    if len(values) == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=bool)
    if not isinstance(values.dtype, pd.DatetimeTZDtype):
        raise ValueError(
            f"{what} must be timezone-aware datetimes (datetime64[ns, UTC]), got dtype {values.dtype}; "
            "localise naive times first, e.g. ts.dt.tz_localize('Asia/Shanghai')"
        )
    index = pd.DatetimeIndex(values).tz_convert("UTC").as_unit("ns")
    present = ~np.asarray(index.isna(), dtype=bool)
    return np.asarray(index.asi8, dtype=np.int64), present


def _utc(ns: IntArray) -> pd.DatetimeIndex:
    """UTC nanoseconds (NaT = int64 min) → DatetimeIndex[ns, UTC]."""
    return pd.DatetimeIndex(np.asarray(ns, dtype=np.int64).view("M8[ns]")).tz_localize("UTC")


def _transformer(source: Any, target: pyproj.CRS) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(pyproj.CRS.from_user_input(source), target, always_xy=True)


def _track(
    fixes: Any, *, project: bool = True, metric: pyproj.CRS | None = None, what: str = "fixes"
) -> _Track:
    """Validate ``fixes`` and return its usable fixes sorted by (staff, ts), projected to metres."""
    _check_frame(fixes, what)
    n = len(fixes)
    if "ts" not in fixes.columns and n:
        raise ValueError(f"{what} need a 'ts' column (timezone-aware datetimes)")
    ns, usable = _utc_ns(
        fixes["ts"] if "ts" in fixes.columns else pd.Series([], dtype=object), f"{what}['ts']"
    )
    geoms = np.asarray(fixes.geometry.to_numpy(), dtype=object)
    type_ids = shapely.get_type_id(geoms)
    wrong = (type_ids != 0) & (type_ids != -1)
    if wrong.any():
        kinds = sorted({shapely.get_type_id(g) for g in geoms[wrong]})
        raise ValueError(f"{what} must be Point geometries; found geometry type ids {kinds}")
    usable = usable & (type_ids == 0) & ~shapely.is_empty(geoms)
    if "staff_id" in fixes.columns:
        staff_all = fixes["staff_id"].to_numpy()
        usable &= ~np.asarray(pd.isna(staff_all), dtype=bool)
    else:
        staff_all = np.full(n, _NO_STAFF, dtype=np.int64)
    if "accuracy" in fixes.columns:
        acc_all = pd.to_numeric(fixes["accuracy"], errors="coerce").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
    else:
        acc_all = np.full(n, np.nan)
    if "jump" in fixes.columns:
        jump_all = fixes["jump"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    else:
        jump_all = np.zeros(n, dtype=bool)

    rows = np.flatnonzero(usable).astype(np.int64)
    staff_u = staff_all[rows]
    if len(staff_u) and staff_u.dtype == object:
        staff_u = pd.Series(staff_u).infer_objects().to_numpy()
    codes, _ = pd.factorize(staff_u, sort=True)
    order = np.lexsort((ns[rows], codes))
    rows = rows[order]
    pts = geoms[rows]
    gx = np.asarray(shapely.get_x(pts), dtype=np.float64)
    gy = np.asarray(shapely.get_y(pts), dtype=np.float64)
    target: pyproj.CRS | None = metric
    if project and len(rows):
        if target is None:
            target = metric_crs(gpd.GeoSeries(pts, crs=fixes.crs))
        source = pyproj.CRS.from_user_input(fixes.crs)
        if source == target:
            x, y = gx, gy
        else:
            tx, ty = _transformer(source, target).transform(gx, gy)
            x, y = np.asarray(tx, dtype=np.float64), np.asarray(ty, dtype=np.float64)
    else:
        x, y = gx, gy
    return _Track(
        crs=fixes.crs,
        metric=target if project and len(rows) else None,
        rows=rows,
        geoms=pts,
        staff=staff_u[order],
        srank=codes[order].astype(np.int64),
        ns=ns[rows],
        x=x,
        y=y,
        acc=acc_all[rows],
        jump=jump_all[rows],
    )


def _positive(name: str, value: float, *, allow_zero: bool = True) -> float:
    number = float(value)
    if not math.isfinite(number) or number < 0 or (number == 0 and not allow_zero):
        raise ValueError(
            f"{name} must be a {'non-negative' if allow_zero else 'positive'} number, got {value!r}"
        )
    return number


def _staff_dtype(track: _Track) -> Any:
    return track.staff.dtype if len(track) else np.dtype(np.int64)


# --------------------------------------------------------------------------------------------
# Jumps
# --------------------------------------------------------------------------------------------


def flag_jumps(
    fixes: gpd.GeoDataFrame,
    *,
    previous: gpd.GeoDataFrame | None = None,
    max_speed_mps: float = 40.0,
    slack_m: float = 30.0,
    confirm: int = 3,
) -> gpd.GeoDataFrame:
    """A copy of ``fixes`` (same rows, order and index) with a bool column ``jump``.

    Per worker, in time order, each fix is compared with the *reference*: the last accepted fix. It is
    a jump when ``(distance - max(slack_m, accuracy of either fix)) > max_speed_mps * |elapsed s|``
    (so with no elapsed time any distance beyond the allowance is a jump). An accepted fix becomes the
    reference unless it is older than the reference (a late arrival); a jump never does. When
    ``confirm`` (>= 2) consecutive flagged fixes are consistent with each other (each within reach of
    the previous one by the same rule), the reference was wrong — or the worker really travelled during
    a silence: they are unflagged and the last of them becomes the reference.

    ``previous`` (GeoDataFrame with ``staff_id``, ``ts``, geometry and optionally ``accuracy``; any
    CRS) gives the last accepted fix per worker from before this batch, e.g. the latest-position
    table; the latest row per worker seeds the reference. Without a ``staff_id`` column in ``fixes``
    the latest row of ``previous`` seeds the single worker. Without a seed a worker's first fix is
    accepted. Any existing ``jump`` column is replaced; unusable rows get ``False``.

    Speeds between neighbours are computed vectorised; only the flagged fixes and their successors
    are revisited one by one, so a million fixes take about a second.
    """
    max_speed = _positive("max_speed_mps", max_speed_mps, allow_zero=False)
    slack = _positive("slack_m", slack_m)
    if isinstance(confirm, bool) or not isinstance(confirm, int | np.integer) or confirm < 2:
        raise ValueError(f"confirm must be an integer >= 2, got {confirm!r}")
    track = _track(fixes)
    out = fixes.copy()
    jump_all = np.zeros(len(fixes), dtype=bool)
    n = len(track)
    if n:
        seeds = _seeds(previous, track, staff_given="staff_id" in fixes.columns)
        jump_all[track.rows] = _flag(track, seeds, max_speed=max_speed, slack=slack, confirm=int(confirm))
    out["jump"] = pd.Series(jump_all, index=out.index, dtype=bool)
    return out


def _seeds(
    previous: gpd.GeoDataFrame | None, track: _Track, *, staff_given: bool
) -> dict[int, tuple[float, float, int, float]]:
    """Reference per staff rank from ``previous``: (x, y, ns, accuracy) in the track's metric CRS."""
    if previous is None or len(previous) == 0:
        if previous is not None:
            _check_frame(previous, "previous")
        return {}
    _check_frame(previous, "previous")
    assert track.metric is not None
    if staff_given and "staff_id" not in previous.columns:
        raise ValueError("previous needs a 'staff_id' column to seed the references of several workers")
    prev = _track(previous, metric=track.metric, what="previous")
    if not len(prev):
        return {}
    last = np.append(prev.srank[1:] != prev.srank[:-1], True)  # the latest fix per worker
    if not staff_given:
        latest = int(np.argmax(np.where(last, prev.ns, np.iinfo(np.int64).min)))
        candidates = [latest]
        keys: list[Any] = [_NO_STAFF]
    else:
        candidates = [int(i) for i in np.flatnonzero(last)]
        keys = [prev.staff[i] for i in candidates]
    rank_of = {value: rank for rank, value in enumerate(pd.unique(track.staff))}
    seeds: dict[int, tuple[float, float, int, float]] = {}
    for i, key in zip(candidates, keys, strict=True):
        rank = rank_of.get(key)
        if rank is not None:
            seeds[rank] = (float(prev.x[i]), float(prev.y[i]), int(prev.ns[i]), float(prev.acc[i]))
    return seeds


def _flag(
    track: _Track,
    seeds: dict[int, tuple[float, float, int, float]],
    *,
    max_speed: float,
    slack: float,
    confirm: int,
) -> BoolArray:
    """Jump flags of a sorted track (see :func:`flag_jumps`)."""
    n = len(track)
    x, y, acc = track.x, track.y, track.acc
    base = int(track.ns.min())
    t = (track.ns - base) / 1e9
    new_staff = track.new_staff()
    # Vectorised first pass: each fix against its predecessor. Wherever the predecessor is accepted
    # and is the reference this is the final answer; the loop below revisits the rest.
    against_prev = np.zeros(n, dtype=bool)
    if n > 1:
        dist = np.hypot(np.diff(x), np.diff(y))
        allowance = np.fmax(slack, np.fmax(acc[1:], acc[:-1]))
        against_prev[1:] = dist - allowance > max_speed * np.abs(np.diff(t))
    against_prev[new_staff] = False
    candidate = against_prev.copy()
    if seeds:
        starts = np.flatnonzero(new_staff)
        seeded = np.array([int(track.srank[s]) in seeds for s in starts], dtype=bool)
        candidate[starts[seeded]] = True
    candidates = np.flatnonzero(candidate)
    jump = np.zeros(n, dtype=bool)
    if not len(candidates):
        return jump
    ends = track.staff_ends()

    def is_jump(
        ax: float, ay: float, at: float, aa: float, bx: float, by: float, bt: float, ba: float
    ) -> bool:
        allowance = slack
        if aa > allowance:  # NaN compares False
            allowance = aa
        if ba > allowance:
            allowance = ba
        return math.hypot(ax - bx, ay - by) - allowance > max_speed * abs(at - bt)

    k = 0
    while k < len(candidates):
        i = int(candidates[k])
        end = int(ends[i])
        if new_staff[i]:
            sx, sy, sns, sa = seeds[int(track.srank[i])]
            ref = (sx, sy, (sns - base) / 1e9, sa)
            ref_pos = -1
        else:
            ref = (float(x[i - 1]), float(y[i - 1]), float(t[i - 1]), float(acc[i - 1]))
            ref_pos = i - 1
        chain: list[int] = []
        j = i
        while j < end:
            cur = (float(x[j]), float(y[j]), float(t[j]), float(acc[j]))
            if is_jump(*cur, *ref):
                jump[j] = True
                if chain:
                    p = chain[-1]
                    prev_fix = (float(x[p]), float(y[p]), float(t[p]), float(acc[p]))
                    chain = [*chain, j] if not is_jump(*cur, *prev_fix) else [j]
                else:
                    chain = [j]
                if len(chain) >= confirm:
                    jump[chain] = False
                    ref, ref_pos, chain = cur, j, []
            else:
                chain = []
                if cur[2] >= ref[2]:
                    ref, ref_pos = cur, j
            j += 1
            if ref_pos == j - 1 and not chain:
                break  # the reference is the predecessor again: the first pass holds from here
        k = int(np.searchsorted(candidates, j))
    return jump


# --------------------------------------------------------------------------------------------
# Locating fixes in grids
# --------------------------------------------------------------------------------------------


def _grid_keys(points: ObjArray, crs: Any, grids: gpd.GeoDataFrame, key: str) -> ObjArray:
    """Key of the grid containing each point (smallest key on shared borders), None outside."""
    _check_frame(grids, "grids")
    if key not in grids.columns:
        raise ValueError(f"grids have no column {key!r} (columns: {list(grids.columns)})")
    if not len(points) or not len(grids):
        return np.full(len(points), None, dtype=object)
    same = pyproj.CRS.from_user_input(grids.crs) == pyproj.CRS.from_user_input(crs)
    index = PolygonIndex(grids if same else grids.to_crs(crs), key=key)
    return index.lookup(shapely.get_x(points), shapely.get_y(points))


def locate(fixes: gpd.GeoDataFrame, grids: gpd.GeoDataFrame, *, key: str = "code") -> pd.Series:
    """The grid of each fix: a Series aligned with ``fixes`` (same index) holding the ``key`` of the grid
    polygon containing the fix, ``None`` outside every grid.

    A fix on a border shared by several grids (or in an overlap) gets the smallest key. Jump fixes and
    unusable rows get ``None``. ``grids`` may be in another CRS than ``fixes`` (it is reprojected);
    grids with a null key or geometry are ignored.
    """
    track = _track(fixes, project=False)
    accepted = track.accepted()
    values = np.full(len(fixes), None, dtype=object)
    values[accepted.rows] = _grid_keys(accepted.geoms, fixes.crs, grids, key)
    return pd.Series(values, index=fixes.index, name=key, dtype=object)


# --------------------------------------------------------------------------------------------
# Segments and trip figures
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Segments:
    a: IntArray  # position of the first fix (in the accepted track)
    dur: FloatArray
    dist: FloatArray
    speed: FloatArray
    gap: BoolArray

    @property
    def b(self) -> IntArray:
        return self.a + 1


def _segments(accepted: _Track, max_gap_s: float) -> _Segments:
    a = np.flatnonzero(accepted.srank[1:] == accepted.srank[:-1]).astype(np.int64)
    b = a + 1
    dur = (accepted.ns[b] - accepted.ns[a]) / 1e9
    dist = np.hypot(accepted.x[b] - accepted.x[a], accepted.y[b] - accepted.y[a])
    speed = np.full(len(a), np.nan)
    np.divide(dist, dur, out=speed, where=dur > 0)
    return _Segments(a=a, dur=dur, dist=dist, speed=speed, gap=dur > max_gap_s)


def track_segments(fixes: gpd.GeoDataFrame, *, max_gap_s: float = 600) -> gpd.GeoDataFrame:
    """One LineString per pair of consecutive accepted fixes of the same worker.

    Columns: ``staff_id``, ``t0``, ``t1`` (UTC), ``duration_s``, ``distance_m`` (metres, UTM),
    ``speed_mps`` (NaN when ``duration_s`` is 0), ``gap`` (``duration_s > max_gap_s``) and the line in
    the input CRS. Rows sorted by (staff_id, t0); a new RangeIndex.
    """
    max_gap = _positive("max_gap_s", max_gap_s)
    track = _track(fixes)
    accepted = track.accepted()
    seg = _segments(accepted, max_gap)
    a, b = seg.a, seg.b
    coords = np.empty((2 * len(a), 2), dtype=np.float64)
    if len(a):
        coords[0::2] = shapely.get_coordinates(accepted.geoms[a])
        coords[1::2] = shapely.get_coordinates(accepted.geoms[b])
        lines = shapely.linestrings(coords, indices=np.repeat(np.arange(len(a)), 2))
    else:
        lines = np.empty(0, dtype=object)
    data = {
        "staff_id": pd.Series(accepted.staff[a], dtype=_staff_dtype(track)),
        "t0": _utc(accepted.ns[a]),
        "t1": _utc(accepted.ns[b]),
        "duration_s": seg.dur,
        "distance_m": seg.dist,
        "speed_mps": seg.speed,
        "gap": seg.gap,
    }
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(lines, crs=fixes.crs), crs=fixes.crs)


def trip_stats(
    fixes: gpd.GeoDataFrame, *, moving_speed_mps: float = 0.5, max_gap_s: float = 600
) -> TripStats:
    """Figures of one worker's fixes (a ``staff_id`` column, if any, must hold a single worker).

    ``distance_m`` sums the non-gap segments; ``duration_s`` is last minus first accepted fix;
    ``moving_s`` sums the non-gap segments at ``speed_mps >= moving_speed_mps``. Empty input gives
    zeros and ``start``/``end`` None.
    """
    moving_speed = _positive("moving_speed_mps", moving_speed_mps)
    max_gap = _positive("max_gap_s", max_gap_s)
    track = _track(fixes)
    if len(track) and track.srank[-1] > 0:
        raise ValueError(
            f"trip_stats takes one worker's fixes, got {int(track.srank[-1]) + 1} staff ids; "
            "group by staff_id or use daily_summary"
        )
    accepted = track.accepted()
    seg = _segments(accepted, max_gap)
    ok = ~seg.gap
    if len(accepted):
        start: pd.Timestamp | None = _utc(accepted.ns[:1])[0]
        end: pd.Timestamp | None = _utc(accepted.ns[-1:])[0]
        duration = (int(accepted.ns[-1]) - int(accepted.ns[0])) / 1e9
    else:
        start = end = None
        duration = 0.0
    return TripStats(
        points=len(track),
        jumps=int(track.jump.sum()),
        distance_m=float(seg.dist[ok].sum()),
        duration_s=float(duration),
        moving_s=float(seg.dur[ok & (seg.speed >= moving_speed)].sum()),
        start=start,
        end=end,
    )


# --------------------------------------------------------------------------------------------
# Stay points
# --------------------------------------------------------------------------------------------


def _first_at_or_after(track: _Track, target_ns: IntArray) -> IntArray:
    """For each fix i, the first position k of the same worker with ns[k] >= target_ns[i]
    (the position after the worker's last fix when there is none)."""
    n = len(track)
    if not n:
        return np.zeros(0, dtype=np.int64)
    new_staff = track.new_staff()
    worker = np.cumsum(new_staff) - 1
    starts_of = np.flatnonzero(new_staff)
    first_ns = track.ns[starts_of][worker]
    rel = track.ns - first_ns
    rel_target = np.maximum(target_ns - first_ns, 0)
    span = max(int(rel.max()), int(rel_target.max())) + 1
    if len(starts_of) * span < 2**62:
        offset = worker * span
        return np.searchsorted(rel + offset, rel_target + offset, side="left").astype(np.int64)
    found = np.empty(n, dtype=np.int64)  # very long histories of many workers: per worker
    for s, e in zip(starts_of, np.append(starts_of[1:], n), strict=True):
        found[s:e] = s + np.searchsorted(track.ns[s:e], target_ns[s:e], side="left")
    return found


def _stay_points(
    accepted: _Track, *, min_dwell_s: float, radius_m: float, max_gap_s: float
) -> tuple[IntArray, IntArray]:
    """(first, last) positions of the stay points of a sorted accepted track."""
    n = len(accepted)
    if not n:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    x, y, ns = accepted.x, accepted.y, accepted.ns
    radius2 = radius_m * radius_m
    # breaks[k]: k cannot continue a stop of k-1 (another worker, or a silence longer than max_gap_s)
    breaks = accepted.new_staff()
    breaks[1:] |= (ns[1:] - ns[:-1]) > max_gap_s * _NS
    dwell_ns = int(round(min_dwell_s * _NS))
    # Necessary condition for an anchor i: the first fix k at least min_dwell_s later exists, no break
    # lies in (i, k] and k is within the radius. Only anchors passing it are visited.
    reach = _first_at_or_after(accepted, accepted.ns + dwell_ns)
    ends = accepted.staff_ends()
    inside = reach < ends
    reach_c = np.minimum(reach, n - 1)
    cum_breaks = np.cumsum(breaks)
    positions = np.arange(n)
    ok = inside & (cum_breaks[reach_c] == cum_breaks[positions])
    ok &= (x[reach_c] - x) ** 2 + (y[reach_c] - y) ** 2 <= radius2
    candidates = np.flatnonzero(ok)
    firsts: list[int] = []
    lasts: list[int] = []
    k = 0
    while k < len(candidates):
        i = int(candidates[k])
        j = int(reach[i])
        xi, yi = x[i], y[i]
        window = slice(i + 1, j + 1)
        if (((x[window] - xi) ** 2 + (y[window] - yi) ** 2 > radius2) | breaks[window]).any():
            k += 1  # left the circle before min_dwell_s
            continue
        last = n - 1
        lo, width = j + 1, 32
        while lo < n:
            hi = min(lo + width, n)
            out = ((x[lo:hi] - xi) ** 2 + (y[lo:hi] - yi) ** 2 > radius2) | breaks[lo:hi]
            if out.any():
                last = lo + int(np.argmax(out)) - 1
                break
            lo, width = hi, width * 2
        firsts.append(i)
        lasts.append(last)
        k = int(np.searchsorted(candidates, last + 1))
    return np.asarray(firsts, dtype=np.int64), np.asarray(lasts, dtype=np.int64)


def _stop_centres(accepted: _Track, first: IntArray, last: IntArray) -> tuple[FloatArray, FloatArray]:
    """Mean metric position of fixes first..last (inclusive) of each stop."""
    if not len(first):
        return np.zeros(0), np.zeros(0)
    x0, y0 = float(accepted.x[0]), float(accepted.y[0])
    cx = np.concatenate([[0.0], np.cumsum(accepted.x - x0)])
    cy = np.concatenate([[0.0], np.cumsum(accepted.y - y0)])
    count = (last - first + 1).astype(np.float64)
    return x0 + (cx[last + 1] - cx[first]) / count, y0 + (cy[last + 1] - cy[first]) / count


def stops(
    fixes: gpd.GeoDataFrame, *, min_dwell_s: float = 300, radius_m: float = 50, max_gap_s: float = 3600
) -> gpd.GeoDataFrame:
    """Stay points of each worker (Li et al. 2008; see the module docstring).

    Columns: ``staff_id``, ``start``/``end`` (UTC, first and last fix of the stop), ``duration_s``,
    ``points`` and the mean position (computed in metres, returned in the input CRS). Rows sorted by
    (staff_id, start). Runs in amortised linear time: anchors that cannot start a stop are ruled out
    vectorised, a stop is scanned once.
    """
    dwell = _positive("min_dwell_s", min_dwell_s)
    radius = _positive("radius_m", radius_m)
    max_gap = _positive("max_gap_s", max_gap_s)
    track = _track(fixes)
    accepted = track.accepted()
    first, last = _stay_points(accepted, min_dwell_s=dwell, radius_m=radius, max_gap_s=max_gap)
    if len(first):
        mx, my = _stop_centres(accepted, first, last)
        gx, gy = accepted.from_metric(mx, my)
        points = shapely.points(gx, gy)
    else:
        points = np.empty(0, dtype=object)
    data = {
        "staff_id": pd.Series(accepted.staff[first], dtype=_staff_dtype(track)),
        "start": _utc(accepted.ns[first]),
        "end": _utc(accepted.ns[last]),
        "duration_s": (accepted.ns[last] - accepted.ns[first]) / 1e9,
        "points": (last - first + 1).astype(np.int64),
    }
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(points, crs=fixes.crs), crs=fixes.crs)


# --------------------------------------------------------------------------------------------
# Grid visits
# --------------------------------------------------------------------------------------------


def grid_visits(
    fixes: gpd.GeoDataFrame, grids: gpd.GeoDataFrame, *, key: str = "code", max_gap_s: float = 600
) -> pd.DataFrame:
    """Entries into and exits from grids: one row per run of consecutive accepted fixes of a worker in
    the same grid (as :func:`locate` places them), split by silences longer than ``max_gap_s``.

    Columns: ``staff_id``, ``grid`` (the key), ``entered_at``/``exited_at`` (UTC, first and last fix of
    the run), ``duration_s``, ``points``. Runs outside every grid are omitted. Sorted by (staff_id,
    entered_at).
    """
    max_gap = _positive("max_gap_s", max_gap_s)
    track = _track(fixes, project=False)
    accepted = track.accepted()
    keys = _grid_keys(accepted.geoms, fixes.crs, grids, key)
    n = len(accepted)
    codes = pd.factorize(pd.Series(keys, dtype=object), use_na_sentinel=True)[0].astype(np.int64)
    starts_mask = accepted.new_staff()
    if n > 1:
        starts_mask[1:] |= (codes[1:] != codes[:-1]) | ((accepted.ns[1:] - accepted.ns[:-1]) > max_gap * _NS)
    starts = np.flatnonzero(starts_mask)
    lasts = np.append(starts[1:], n).astype(np.int64) - 1
    inside = codes[starts] >= 0
    starts, lasts = starts[inside], lasts[inside]
    return pd.DataFrame(
        {
            "staff_id": pd.Series(accepted.staff[starts], dtype=_staff_dtype(track)),
            "grid": pd.Series(keys[starts], dtype=object),
            "entered_at": _utc(accepted.ns[starts]),
            "exited_at": _utc(accepted.ns[lasts]),
            "duration_s": (accepted.ns[lasts] - accepted.ns[starts]) / 1e9,
            "points": (lasts - starts + 1).astype(np.int64),
        }
    )


# --------------------------------------------------------------------------------------------
# Buildings: patrol coverage and visits
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Buildings:
    geoms: ObjArray  # metric
    households: FloatArray
    integer: bool  # the household column is of an integer dtype


def _buildings(buildings: Any, households: str | None, metric: pyproj.CRS | None) -> _Buildings:
    _check_frame(buildings, "buildings")
    if households is not None and households not in buildings.columns:
        raise ValueError(
            f"buildings have no household column {households!r} (columns: {list(buildings.columns)}); "
            "pass households=None to count buildings only"
        )
    if households is None:
        hh = np.zeros(len(buildings))
        integer = True
    else:
        column = buildings[households]
        integer = pd.api.types.is_integer_dtype(column.dtype)
        hh = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        hh = np.where(np.isfinite(hh), hh, 0.0)
    if len(buildings) == 0:
        return _Buildings(np.empty(0, dtype=object), hh, integer)
    target = metric if metric is not None else metric_crs(buildings)
    geo = buildings.geometry
    same = pyproj.CRS.from_user_input(buildings.crs) == target
    geoms = np.asarray((geo if same else geo.to_crs(target)).to_numpy(), dtype=object)
    return _Buildings(geoms, hh, integer)


def _households_value(value: float, integer: bool) -> float:
    return int(round(value)) if integer else float(value)


def patrol_coverage(
    fixes: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    *,
    radius_m: float = 30.0,
    households: str | None = "households",
    max_gap_s: float = 600,
) -> Coverage:
    """Which buildings the patrols passed: within ``radius_m`` of the track (every non-gap segment —
    the straight line between two consecutive accepted fixes — and every accepted fix).

    All workers in ``fixes`` count together. ``passed_at`` is the earliest time the track came near:
    the fix's time, or the start ``t0`` of the segment. Buildings may be polygons or points, in any
    CRS; null geometries count in the totals and are never passed. ``households`` names the household
    column (missing values count 0); ``None`` counts buildings only.
    """
    radius = _positive("radius_m", radius_m)
    max_gap = _positive("max_gap_s", max_gap_s)
    track = _track(fixes)
    bld = _buildings(buildings, households, track.metric)
    nb = len(bld.geoms)
    first_ns = np.full(nb, np.iinfo(np.int64).max, dtype=np.int64)
    accepted = track.accepted()
    if nb and len(accepted):
        seg = _segments(accepted, max_gap)
        a = seg.a[~seg.gap]
        xy = np.empty((2 * len(a), 2))
        xy[0::2, 0], xy[0::2, 1] = accepted.x[a], accepted.y[a]
        xy[1::2, 0], xy[1::2, 1] = accepted.x[a + 1], accepted.y[a + 1]
        lines: ObjArray = np.empty(0, dtype=object)
        if len(a):
            lines = np.asarray(shapely.linestrings(xy, indices=np.repeat(np.arange(len(a)), 2)), dtype=object)
        points: ObjArray = np.asarray(shapely.points(accepted.x, accepted.y), dtype=object)
        tree = shapely.STRtree(bld.geoms)
        for geoms, times in ((lines, accepted.ns[a]), (points, accepted.ns)):
            if not len(geoms):
                continue
            hit_geom, hit_bld = tree.query(geoms, predicate="dwithin", distance=radius)
            np.minimum.at(first_ns, hit_bld, times[hit_geom])
    passed = first_ns != np.iinfo(np.int64).max
    passed_ns = np.where(passed, first_ns, np.iinfo(np.int64).min)
    out = buildings.copy()
    out["passed"] = pd.Series(passed, index=out.index, dtype=bool)
    out["passed_at"] = pd.Series(_utc(passed_ns), index=out.index)
    hh_total = float(bld.households.sum())
    hh_passed = float(bld.households[passed].sum())
    n_passed = int(passed.sum())
    return Coverage(
        buildings=out,
        buildings_total=nb,
        buildings_passed=n_passed,
        households_total=_households_value(hh_total, bld.integer),
        households_passed=_households_value(hh_passed, bld.integer),
        share_buildings=n_passed / nb if nb else 0.0,
        share_households=hh_passed / hh_total if hh_total > 0 else 0.0,
    )


# --------------------------------------------------------------------------------------------
# Daily KPIs
# --------------------------------------------------------------------------------------------


def _local_days(ns: IntArray, tz: str) -> IntArray:
    """Local calendar day (days since 1970-01-01) in ``tz`` of UTC nanoseconds."""
    if not len(ns):
        return np.zeros(0, dtype=np.int64)
    local = _utc(ns).tz_convert(tz).tz_localize(None).as_unit("ns")
    return np.asarray(local.asi8, dtype=np.int64) // _DAY_NS


def _sum_by(group: npt.NDArray[np.integer[Any]], weights: FloatArray, n_groups: int) -> FloatArray:
    return np.asarray(np.bincount(group, weights=weights, minlength=n_groups), dtype=np.float64)


def daily_summary(
    fixes: gpd.GeoDataFrame,
    *,
    buildings: gpd.GeoDataFrame | None = None,
    tz: str = "Asia/Shanghai",
    moving_speed_mps: float = 0.5,
    max_gap_s: float = 600,
    min_dwell_s: float = 300,
    visit_radius_m: float = 30.0,
    households: str | None = "households",
    stop_radius_m: float = 50.0,
    stop_max_gap_s: float = 3600,
) -> pd.DataFrame:
    """Per-worker KPIs: one row per (staff_id, day), ``day`` the local calendar date (``datetime.date``)
    in ``tz``, for every worker-day with at least one usable fix. Sorted by (staff_id, day).

    * ``points``/``jumps``: usable fixes of the day and how many are flagged jumps;
    * ``distance_m``/``moving_s``: over the non-gap segments starting that day (a segment crossing
      midnight belongs to the day of its ``t0``);
    * ``first_ts``/``last_ts``: first and last accepted fix of the day (UTC; NaT if the day has only
      jumps); ``duration_s`` = ``last_ts - first_ts`` plus the duration of a non-gap segment that leaves
      the day's last fix across midnight (so ``moving_s <= duration_s`` always holds);
    * ``stops``: stay points (:func:`stops` with ``min_dwell_s``, ``stop_radius_m``,
      ``stop_max_gap_s``) starting that day, detected on the whole track (a stop over midnight counts
      on the day it began);
    * ``buildings_visited``/``households_visited``: distinct buildings within ``visit_radius_m`` of
      the position of one of the day's stops, and their households (0 without ``buildings``).
    """
    moving_speed = _positive("moving_speed_mps", moving_speed_mps)
    max_gap = _positive("max_gap_s", max_gap_s)
    dwell = _positive("min_dwell_s", min_dwell_s)
    visit_radius = _positive("visit_radius_m", visit_radius_m)
    stop_radius = _positive("stop_radius_m", stop_radius_m)
    stop_gap = _positive("stop_max_gap_s", stop_max_gap_s)
    track = _track(fixes)
    bld = _buildings(buildings, households, track.metric) if buildings is not None else None
    hh_integer = bld.integer if bld is not None else True

    day = _local_days(track.ns, tz)
    if len(track):
        d0, n_days = int(day.min()), int(day.max() - day.min()) + 1
    else:
        d0, n_days = 0, 1
    # Group key (staff rank, day) — non-decreasing along the sorted track, so groups are contiguous.
    gkey = track.srank * n_days + (day - d0)
    group_first = np.flatnonzero(np.r_[True, gkey[1:] != gkey[:-1]]) if len(gkey) else np.zeros(0, np.int64)
    keys = gkey[group_first]
    n_groups = len(keys)
    points = np.diff(np.append(group_first, len(gkey))).astype(np.int64)
    jumps = np.add.reduceat(track.jump.astype(np.int64), group_first) if n_groups else np.zeros(0, np.int64)

    accepted_mask = ~track.jump
    accepted = track.take(accepted_mask)
    a_group = np.searchsorted(keys, gkey[accepted_mask])
    first_ns = np.full(n_groups, np.iinfo(np.int64).min, dtype=np.int64)
    last_ns = np.full(n_groups, np.iinfo(np.int64).min, dtype=np.int64)
    duration = np.zeros(n_groups)
    distance = np.zeros(n_groups)
    moving = np.zeros(n_groups)
    n_stops = np.zeros(n_groups, dtype=np.int64)
    visited = np.zeros(n_groups, dtype=np.int64)
    visited_hh = np.zeros(n_groups)
    if len(accepted):
        starts = np.flatnonzero(np.r_[True, a_group[1:] != a_group[:-1]])
        lasts = np.append(starts[1:], len(a_group)) - 1
        first_ns[a_group[starts]] = accepted.ns[starts]
        last_ns[a_group[lasts]] = accepted.ns[lasts]
        duration[a_group[starts]] = (accepted.ns[lasts] - accepted.ns[starts]) / 1e9

        seg = _segments(accepted, max_gap)
        ok = ~seg.gap
        sg = a_group[seg.a]
        distance = _sum_by(sg, np.where(ok, seg.dist, 0.0), n_groups)
        moving_ok = ok & (seg.speed >= moving_speed)
        moving = _sum_by(sg, np.where(moving_ok, seg.dur, 0.0), n_groups)
        crossing = ok & (a_group[seg.b] != sg)
        duration += _sum_by(sg, np.where(crossing, seg.dur, 0.0), n_groups)

        s_first, s_last = _stay_points(accepted, min_dwell_s=dwell, radius_m=stop_radius, max_gap_s=stop_gap)
        stop_group = a_group[s_first]
        n_stops = np.bincount(stop_group, minlength=n_groups).astype(np.int64)
        if bld is not None and len(bld.geoms) and len(s_first):
            sx, sy = _stop_centres(accepted, s_first, s_last)
            hit_stop, hit_bld = shapely.STRtree(bld.geoms).query(
                shapely.points(sx, sy), predicate="dwithin", distance=visit_radius
            )
            pairs = np.unique(stop_group[hit_stop] * len(bld.geoms) + hit_bld)
            pair_group, pair_bld = pairs // len(bld.geoms), pairs % len(bld.geoms)
            visited = np.bincount(pair_group, minlength=n_groups).astype(np.int64)
            visited_hh = _sum_by(pair_group, bld.households[pair_bld], n_groups)

    epoch = _dt.date(1970, 1, 1)
    days = [epoch + _dt.timedelta(days=int(d0 + k % n_days)) for k in keys]
    return pd.DataFrame(
        {
            "staff_id": pd.Series(track.staff[group_first], dtype=_staff_dtype(track)),
            "day": pd.Series(days, dtype=object),
            "points": points,
            "jumps": jumps.astype(np.int64),
            "distance_m": distance,
            "duration_s": duration,
            "moving_s": moving,
            "stops": n_stops,
            "buildings_visited": visited,
            "households_visited": np.rint(visited_hh).astype(np.int64) if hh_integer else visited_hh,
            "first_ts": _utc(first_ns),
            "last_ts": _utc(last_ns),
        },
        columns=DAILY_COLUMNS,
    )
