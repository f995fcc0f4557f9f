"""Dispatch: who should take a case, the plan for a surge of cases, clusters and duplicates.

Why: a dispatcher asks "who is closest and free?", but the closest dot on the map may be a stale
position, a worker already carrying eight cases, a volunteer when police are needed, or someone
across a river. These functions answer with a ranked, *explained* list (every row carries short
reason codes the console translates), a minimum-distance plan when many cases come at once, and
the two checks that stop double work: space-time clusters of similar reports and the likely
duplicate of a new report.

Staff (input of :func:`rank_candidates` and :func:`plan_assignment`)
----------------------------------------------------------------------
A GeoDataFrame with a CRS, one row per person, columns

* ``staff_id`` (required, unique, not null);
* ``name``, ``role`` (optional; ``None`` when absent);
* ``on_duty`` (bool; absent: everybody is on duty; null: off duty);
* ``age_s`` — seconds since the last position fix; NaN when unknown (absent column: every
  position counts as fresh);
* ``workload`` — open cases assigned (absent or NaN: 0);
* ``grids`` — the grid codes the person is responsible for (tuple/list/array, a single string,
  or None/empty);
* ``geometry`` — the last position (Point), None or empty when there is none.

A position is *usable* when it is a non-empty Point with finite coordinates, and *fresh* when it
is usable and ``age_s <= max_age_s``. Distances are metres in a projected CRS: the road network's
when one is given, else the UTM zone of the case (:func:`geo.crs.utm_crs`); inputs may be in any
CRS, lon/lat included. Inputs are never modified (geopandas may cache a spatial index on ``staff``).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, fields
from functools import cached_property
from numbers import Real
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from scipy import sparse
from scipy.optimize import linear_sum_assignment
from scipy.sparse import csgraph
from scipy.spatial import cKDTree

from geo._types import BoolArray, FloatArray, IntArray, ObjArray
from geo.crs import WGS84, require_crs, utm_crs
from geo.network import RoadNetwork, point_xy, reproject_xy

__all__ = [
    "CLOSED_STATES",
    "OUTLINE_COLUMNS",
    "PLAN_COLUMNS",
    "RANK_COLUMNS",
    "REASONS",
    "RankWeights",
    "cluster_outlines",
    "likely_duplicate",
    "plan_assignment",
    "rank_candidates",
    "space_time_clusters",
]


RANK_COLUMNS = [
    "rank",
    "staff_id",
    "name",
    "role",
    "distance_m",
    "distance_kind",
    "eta_s",
    "workload",
    "fresh",
    "role_fit",
    "responsible",
    "on_duty",
    "age_s",
    "score",
    "reasons",
    "lon",
    "lat",
]
PLAN_COLUMNS = ["case_id", "staff_id", "distance_m", "distance_kind"]
OUTLINE_COLUMNS = ["cluster", "category", "n", "first", "last", "geometry"]

#: The reason codes of :func:`rank_candidates`, with what they mean (the console translates them).
REASONS: dict[str, str] = {
    "nearest": "the shortest distance among the fresh, on-duty candidates within the radius",
    "grid_responsible": "responsible for the case's grid",
    "role_fit": "has one of the preferred roles",
    "role_misfit": "preferred roles were asked for and this person has none of them",
    "road_distance": "the distance is measured along the roads",
    "no_road_path": "the road network has no path to this person: the distance is a straight line",
    "stale_position": "the last position is older than max_age_s (or of unknown age)",
    "no_position": "no usable position",
    "beyond_radius": "fresh position, but farther than radius_m (listed as responsible for the grid)",
    "busy": "carries open cases: at least half of max_workload",
    "over_workload_limit": "carries max_workload open cases or more; listed after everybody else on duty",
    "off_duty": "off duty; listed last, only when responsible for the grid",
}

#: Case states (store.schema.CASE_STATES) that :func:`likely_duplicate` does not treat as open.
CLOSED_STATES = ("rejected", "verified", "closed", "evaluated")

_NS = 1_000_000_000
_72H = pd.Timedelta(hours=72)
_24H = pd.Timedelta(hours=24)


@dataclass(frozen=True)
class RankWeights:
    """The penalties of :func:`rank_candidates`' score, in seconds of travel time.

    ``score = eta_s + per_open_case_s × workload + role_misfit_s (if not role_fit)
    + not_responsible_s (if a grid_code was given and the person is not responsible for it)``;
    a stale position adds ``stale_position_s`` to its travel time, and a person without a usable
    position gets ``no_position_s`` instead of a travel time. With the defaults, a free worker
    4 minutes away (about 1 km at 4 m/s) ranks above one 2 minutes away with two open cases.
    All weights must be finite and >= 0.
    """

    per_open_case_s: float = 120.0
    role_misfit_s: float = 600.0
    not_responsible_s: float = 300.0
    stale_position_s: float = 600.0
    no_position_s: float = 1800.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, Real) or not math.isfinite(value) or value < 0:
                raise ValueError(f"RankWeights.{f.name} must be a finite number >= 0, got {value!r}")


# --------------------------------------------------------------------------------------------
# Shared preparation
# --------------------------------------------------------------------------------------------


class _Staff:
    """A checked view of the staff frame; columns are read for the rows asked for only, so that
    ranking touches the few people near a case rather than all 15,000."""

    def __init__(self, staff: Any) -> None:
        frame = _frame(staff, "staff")
        if "staff_id" not in frame.columns:
            raise ValueError("the staff frame has no 'staff_id' column")
        ids = frame["staff_id"]
        if ids.isna().any():
            raise ValueError("the staff frame has rows without a staff_id")
        dup = ids.duplicated(keep=False).to_numpy()
        if dup.any():
            shown = list(dict.fromkeys(ids[dup].tolist()))[:5]
            raise ValueError(f"duplicate staff_id values in the staff frame: {shown}")
        self.frame = frame
        self.crs = pyproj.CRS.from_user_input(frame.crs)

    def __len__(self) -> int:
        return len(self.frame)

    def _column(self, name: str, rows: IntArray | None) -> pd.Series | None:
        if name not in self.frame.columns:
            return None
        column = self.frame[name]
        return column if rows is None else column.iloc[rows]

    def objects(self, name: str, rows: IntArray | None = None) -> ObjArray:
        """Values of a column as objects (None for an absent column)."""
        column = self._column(name, rows)
        n = len(self.frame) if rows is None else len(rows)
        if column is None:
            return np.full(n, None, dtype=object)
        return np.asarray(column.to_numpy(dtype=object), dtype=object)

    # Numeric columns are read whole once (fast for numeric dtypes) and indexed with numpy.

    @cached_property
    def _on_duty(self) -> BoolArray:
        column = self._column("on_duty", None)
        if column is None:
            return np.ones(len(self.frame), dtype=bool)
        if column.dtype == bool:
            return np.asarray(column.to_numpy(), dtype=bool)
        raw = column.to_numpy(dtype=object)
        missing = np.asarray(pd.isna(raw), dtype=bool)
        out = np.zeros(len(raw), dtype=bool)
        out[~missing] = raw[~missing].astype(bool)
        return out

    @cached_property
    def _age_s(self) -> FloatArray:
        column = self._column("age_s", None)
        if column is None:
            return np.zeros(len(self.frame), dtype=np.float64)
        return pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)

    @cached_property
    def _workload(self) -> IntArray:
        column = self._column("workload", None)
        if column is None:
            return np.zeros(len(self.frame), dtype=np.int64)
        load = pd.to_numeric(column, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        return np.floor(np.where(np.isfinite(load), np.maximum(load, 0.0), 0.0)).astype(np.int64)

    @cached_property
    def _geoms(self) -> ObjArray:
        return np.asarray(self.frame.geometry.values, dtype=object)

    def on_duty(self, rows: IntArray | None = None) -> BoolArray:
        """Absent column: on duty; null: off duty."""
        return self._on_duty if rows is None else self._on_duty[rows]

    def age_s(self, rows: IntArray | None = None) -> FloatArray:
        """Absent column: 0 (fresh); null or unparsable: NaN (unknown age)."""
        return self._age_s if rows is None else self._age_s[rows]

    def workload(self, rows: IntArray | None = None) -> IntArray:
        """Open cases; absent, NaN or negative: 0."""
        return self._workload if rows is None else self._workload[rows]

    def xy(self, rows: IntArray | None = None) -> FloatArray:
        """(n, 2) positions in the staff CRS, NaN rows without a usable position."""
        return point_xy(self._geoms if rows is None else self._geoms[rows], crs=self.crs)

    def responsible(self, grid_code: Any, rows: IntArray | None = None) -> BoolArray:
        """True where ``grids`` holds ``grid_code`` (all False without a code or a column)."""
        n = len(self.frame) if rows is None else len(rows)
        if grid_code is None or "grids" not in self.frame.columns:
            return np.zeros(n, dtype=bool)
        cells = self.objects("grids", rows)
        plain = (tuple, list)
        # the common cell is a tuple or list of codes: test it in C
        return np.fromiter(
            ((grid_code in g) if type(g) in plain else _holds(g, grid_code) for g in cells),
            dtype=bool,
            count=n,
        )


def _frame(value: Any, what: str) -> gpd.GeoDataFrame:
    if not isinstance(value, gpd.GeoDataFrame):
        raise TypeError(f"{what} must be a GeoDataFrame, got {type(value).__name__}")
    require_crs(value)
    return value


def _objects(frame: pd.DataFrame, column: str) -> ObjArray:
    if column not in frame.columns:
        return np.full(len(frame), None, dtype=object)
    return np.asarray(frame[column].to_numpy(dtype=object), dtype=object)


def _holds(grids: Any, code: Any) -> bool:
    """True when the value of a ``grids`` cell (a string, an iterable, None, NaN) contains ``code``."""
    if grids is None:
        return False
    if isinstance(grids, str):
        return grids == code
    try:
        return any(g == code for g in grids)
    except TypeError:  # NaN and other non-iterables
        return False


def _utm_of(xy: FloatArray, crs: pyproj.CRS) -> pyproj.CRS:
    """The UTM zone of the centre of the finite points (in ``crs``)."""
    fine = xy[np.isfinite(xy).all(axis=1)]
    if fine.size == 0:
        raise ValueError("no usable position to choose a metric CRS from")
    centre = (fine.min(axis=0) + fine.max(axis=0)) / 2.0
    lon, lat = reproject_xy(centre, crs=crs, to=WGS84)[0]
    return utm_crs(float(lon), float(lat))


def _point(at: Any, what: str = "at") -> shapely.Point:
    if not isinstance(at, shapely.Point):
        raise TypeError(f"{what} must be a shapely Point, got {type(at).__name__}")
    if at.is_empty or not np.isfinite(point_xy([at])).all():
        raise ValueError(f"{what} is an empty point or has non-finite coordinates")
    return at


def _positive(name: str, value: float, *, allow_zero: bool = False, allow_inf: bool = False) -> float:
    v = float(value)
    ok = (v >= 0 if allow_zero else v > 0) and (allow_inf or math.isfinite(v)) and not math.isnan(v)
    if not ok:
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} number, got {value!r}")
    return v


def _xy_points(xy: FloatArray) -> ObjArray:
    return np.asarray(shapely.points(xy), dtype=object)


# --------------------------------------------------------------------------------------------
# Ranking the candidates for one case
# --------------------------------------------------------------------------------------------


def _near(s: _Staff, at_xy: FloatArray, work: pyproj.CRS, radius_m: float) -> IntArray:
    """Rows of staff with a usable position within ``radius_m`` (straight line) of ``at_xy`` (in
    the work CRS), in row order. The spatial index of the staff frame (in its own CRS, built once
    and cached by geopandas) narrows 15,000 people to the box around the circle first."""
    ax, ay = float(at_xy[0]), float(at_xy[1])
    if s.crs == work:
        bounds = (ax - radius_m, ay - radius_m, ax + radius_m, ay + radius_m)
    else:
        angles = np.linspace(0.0, 2.0 * np.pi, 72, endpoint=False)
        ring = np.column_stack([ax + radius_m * np.cos(angles), ay + radius_m * np.sin(angles)])
        back = reproject_xy(np.vstack([ring, [[ax, ay]]]), crs=work, to=s.crs)
        back = back[np.isfinite(back).all(axis=1)]
        lo, hi = back.min(axis=0), back.max(axis=0)
        pad = (hi - lo) * 0.01 + 1e-9  # the 72-gon is a little inside the circle
        bounds = (lo[0] - pad[0], lo[1] - pad[1], hi[0] + pad[0], hi[1] + pad[1])
    rows = np.sort(np.asarray(s.frame.sindex.query(shapely.box(*bounds)), dtype=np.int64))
    xy = reproject_xy(s.xy(rows), crs=s.crs, to=work)
    dist = np.hypot(xy[:, 0] - ax, xy[:, 1] - ay)
    return rows[np.isfinite(dist) & (dist <= radius_m)]


def _empty_rank() -> pd.DataFrame:
    dtypes = {
        "rank": "int64",
        "distance_m": "float64",
        "eta_s": "float64",
        "workload": "int64",
        "fresh": "bool",
        "role_fit": "bool",
        "responsible": "bool",
        "on_duty": "bool",
        "age_s": "float64",
        "score": "float64",
        "lon": "float64",
        "lat": "float64",
    }
    return pd.DataFrame({c: pd.Series([], dtype=dtypes.get(c, "object")) for c in RANK_COLUMNS})


def rank_candidates(
    staff: gpd.GeoDataFrame,
    *,
    at: shapely.Point,
    crs: Any = None,
    grid_code: str | None = None,
    preferred_roles: Sequence[str] = (),
    max_age_s: float = 900,
    max_workload: int = 8,
    speed_mps: float = 4.0,
    network: RoadNetwork | None = None,
    radius_m: float = 5000,
    limit: int = 10,
    weights: RankWeights | None = None,
) -> pd.DataFrame:
    """The best people to send to a case at ``at`` (in ``crs``, default the staff's), best first.

    Candidates (see the module docstring for the staff columns):

    0. on duty, fresh position within ``radius_m`` (straight line), under ``max_workload``;
    1. the fallback — on duty, responsible for ``grid_code``, not in tier 0 (stale, no position
       or beyond the radius), under ``max_workload``;
    2. everybody of tiers 0–1 at or over ``max_workload`` (reason ``over_workload_limit``);
    3. off duty but responsible for ``grid_code`` (reason ``off_duty``).

    Anybody else (off duty and not responsible; on duty but stale or far and not responsible) is
    not a candidate. Within a tier, rows go by ``score`` (lower is better; see :class:`RankWeights`):
    travel time ``eta_s = distance_m / speed_mps`` plus penalties. The first ``limit`` rows are
    returned, so the fallback appears only when fewer than ``limit`` fresh candidates exist.

    With ``network`` (a :class:`geo.network.RoadNetwork`), distances are along the roads where the
    network has a path (``distance_kind`` "road"), else straight ("straight", reason
    ``no_road_path``); the radius always applies to the straight line, which is never longer. The
    spatial index of ``staff`` narrows the search to the circle before any distance is computed,
    so 15,000 staff cost a few milliseconds; road distances then come from one (unbounded)
    Dijkstra for all candidates, tens of milliseconds on a city's network.

    Returns a DataFrame with :data:`RANK_COLUMNS`: ``rank`` (1..), ``staff_id``, ``name``, ``role``,
    ``distance_m`` (NaN without a usable position; a stale position's distance is shown),
    ``distance_kind`` ("road" | "straight" | "none"), ``eta_s``, ``workload`` (NaN counted as 0),
    ``fresh``, ``role_fit`` (True when no role is preferred), ``responsible``, ``on_duty``, ``age_s``,
    ``score``, ``reasons`` (a tuple of codes) and ``lon``/``lat`` of the position in EPSG:4326.

    Reason codes (:data:`REASONS`), in this order within a row:

    * ``nearest`` — the shortest distance among the tier-0 candidates;
    * ``grid_responsible`` — responsible for ``grid_code``;
    * ``role_fit`` / ``role_misfit`` — has / lacks a preferred role (only when roles are preferred);
    * ``road_distance`` / ``no_road_path`` — distance along the roads / straight for want of a path
      (only with a network);
    * ``stale_position`` / ``no_position`` — the position is older than ``max_age_s`` (or of
      unknown age) / there is no usable position;
    * ``beyond_radius`` — fresh, but farther than ``radius_m`` (listed as responsible);
    * ``busy`` — carries at least half of ``max_workload`` open cases (but fewer than it);
    * ``over_workload_limit`` — carries ``max_workload`` or more;
    * ``off_duty`` — off duty (listed only as responsible for the grid).

    Raises ``TypeError``/``ValueError`` for bad arguments, duplicate or missing staff ids, and
    :class:`geo.errors.CRSError` for a staff frame without a CRS.
    """
    s = _Staff(staff)
    point = _point(at)
    max_age = _positive("max_age_s", max_age_s, allow_zero=True, allow_inf=True)
    speed = _positive("speed_mps", speed_mps)
    radius = _positive("radius_m", radius_m, allow_zero=True)
    if isinstance(max_workload, bool) or not isinstance(max_workload, int | np.integer) or max_workload < 0:
        raise ValueError(f"max_workload must be an integer >= 0, got {max_workload!r}")
    if isinstance(limit, bool) or not isinstance(limit, int | np.integer) or limit < 1:
        raise ValueError(f"limit must be an integer >= 1, got {limit!r}")
    if network is not None and not isinstance(network, RoadNetwork):
        raise TypeError(f"network must be a RoadNetwork, got {type(network).__name__}")
    w = RankWeights() if weights is None else weights
    if not isinstance(w, RankWeights):
        raise TypeError(f"weights must be RankWeights, got {type(w).__name__}")
    roles = (preferred_roles,) if isinstance(preferred_roles, str) else tuple(preferred_roles)
    source = s.crs if crs is None else pyproj.CRS.from_user_input(crs)
    at_src = point_xy([point], crs=source)
    if network is not None:
        work = network.crs
    else:
        work = _utm_of(reproject_xy(at_src, crs=source, to=WGS84), pyproj.CRS.from_user_input(WGS84))
    at_xy = reproject_xy(at_src, crs=source, to=work)[0]
    if not np.isfinite(at_xy).all():
        raise ValueError("at cannot be projected to a metric CRS")
    if len(s) == 0:
        return _empty_rank()

    # tier 0 needs only the people inside the circle; the fallback scans everybody's grids, and
    # only when tier 0 cannot fill the list
    near = _near(s, at_xy, work, radius)
    near_ok = s.on_duty(near) & (s.age_s(near) <= max_age)
    chosen = near[near_ok]
    tier0_count = int((s.workload(chosen) < max_workload).sum())
    if tier0_count < limit and grid_code is not None:
        chosen = np.union1d(chosen, np.flatnonzero(s.responsible(grid_code)))
    if chosen.size == 0:
        return _empty_rank()
    in_radius = np.isin(chosen, near, assume_unique=True)

    c_duty = s.on_duty(chosen)
    c_age = s.age_s(chosen)
    c_load = s.workload(chosen)
    c_role = s.objects("role", chosen)
    c_resp = s.responsible(grid_code, chosen)
    c_xy_src = s.xy(chosen)
    usable = np.isfinite(c_xy_src).all(axis=1)
    c_fresh = usable & (c_age <= max_age)
    over = c_load >= max_workload
    c_tier0 = in_radius & c_duty & c_fresh & ~over  # (only the on-duty, fresh, under-limit are near)

    # distances in the work CRS: straight, then along the roads where there is a path
    xy = reproject_xy(c_xy_src, crs=s.crs, to=work)
    distance = np.hypot(xy[:, 0] - at_xy[0], xy[:, 1] - at_xy[1])
    usable &= np.isfinite(distance)
    kind = np.where(usable, "straight", "none").astype(object)
    no_path = np.zeros(chosen.size, dtype=bool)
    if network is not None and usable.any():
        road = network.reach(shapely.Point(at_xy), crs=work).distances_to(_xy_points(xy[usable]))
        found = np.isfinite(road)
        idx = np.flatnonzero(usable)
        distance[idx[found]] = road[found]
        kind[idx[found]] = "road"
        no_path[idx[~found]] = True
    eta = distance / speed

    role_fit = (
        np.fromiter((r in roles for r in c_role), dtype=bool, count=chosen.size)
        if roles
        else np.ones(chosen.size, dtype=bool)
    )
    tier = np.where(c_tier0, 0, 1)
    tier = np.where(c_duty & over, 2, tier)
    tier = np.where(~c_duty, 3, tier)
    travel = np.where(usable, eta, w.no_position_s) + np.where(usable & ~c_fresh, w.stale_position_s, 0.0)
    score = (
        travel
        + w.per_open_case_s * c_load
        + np.where(role_fit, 0.0, w.role_misfit_s)
        + np.where((grid_code is not None) & ~c_resp, w.not_responsible_s, 0.0)
    )
    order = np.lexsort((chosen, score, tier))[:limit]

    nearest = -1
    if c_tier0.any():
        t0 = np.flatnonzero(c_tier0)
        nearest = int(t0[np.lexsort((chosen[t0], score[t0], distance[t0]))[0]])
    busy_at = max(1, math.ceil(max_workload / 2))
    reasons: list[tuple[str, ...]] = []
    for k in order:
        codes: list[str] = []
        if k == nearest:
            codes.append("nearest")
        if c_resp[k]:
            codes.append("grid_responsible")
        if roles:
            codes.append("role_fit" if role_fit[k] else "role_misfit")
        if kind[k] == "road":
            codes.append("road_distance")
        elif no_path[k]:
            codes.append("no_road_path")
        if not usable[k]:
            codes.append("no_position")
        elif not c_fresh[k]:
            codes.append("stale_position")
        elif not in_radius[k]:
            codes.append("beyond_radius")
        if over[k]:
            codes.append("over_workload_limit")
        elif c_load[k] >= busy_at:
            codes.append("busy")
        if not c_duty[k]:
            codes.append("off_duty")
        reasons.append(tuple(codes))

    rows = chosen[order]
    lonlat = reproject_xy(c_xy_src[order], crs=s.crs, to=WGS84)
    reason_col = np.empty(order.size, dtype=object)
    reason_col[:] = reasons
    return pd.DataFrame(
        {
            "rank": np.arange(1, order.size + 1, dtype=np.int64),
            "staff_id": pd.Series(s.objects("staff_id", rows), dtype=object),
            "name": s.objects("name", rows),
            "role": c_role[order],
            "distance_m": distance[order],
            "distance_kind": kind[order],
            "eta_s": eta[order],
            "workload": c_load[order],
            "fresh": c_fresh[order],
            "role_fit": role_fit[order],
            "responsible": c_resp[order],
            "on_duty": c_duty[order],
            "age_s": c_age[order],
            "score": score[order],
            "reasons": reason_col,
            "lon": lonlat[:, 0],
            "lat": lonlat[:, 1],
        },
        columns=RANK_COLUMNS,
    )


# --------------------------------------------------------------------------------------------
# The surge plan: many cases at once
# --------------------------------------------------------------------------------------------

_MAX_K = 500  # candidate people per case in plan_assignment (see its docstring)


def _capacities(s: _Staff, capacity: int | Mapping[Any, int], max_workload: int) -> IntArray:
    if isinstance(capacity, Mapping):
        cap = np.zeros(len(s), dtype=np.int64)
        for i, sid in enumerate(s.objects("staff_id")):
            value = capacity.get(sid, 0)
            if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 0:
                raise ValueError(f"capacity of staff {sid!r} must be an integer >= 0, got {value!r}")
            cap[i] = int(value)
    else:
        if isinstance(capacity, bool) or not isinstance(capacity, int | np.integer) or capacity < 0:
            raise ValueError(f"capacity must be an integer >= 0 or a mapping, got {capacity!r}")
        cap = np.full(len(s), int(capacity), dtype=np.int64)
    return np.asarray(np.minimum(cap, np.maximum(max_workload - s.workload(), 0)), dtype=np.int64)


def _empty_plan(cases: pd.DataFrame, ids: ObjArray) -> pd.DataFrame:
    index = cases.index.copy()
    return pd.DataFrame(
        {
            "case_id": pd.Series(ids, index=index, dtype=object),
            "staff_id": pd.Series(np.full(len(ids), None, dtype=object), index=index, dtype=object),
            "distance_m": pd.Series(np.full(len(ids), np.nan), index=index),
            "distance_kind": pd.Series(np.full(len(ids), None, dtype=object), index=index, dtype=object),
        },
        index=index,
        columns=PLAN_COLUMNS,
    )


def plan_assignment(
    cases: gpd.GeoDataFrame,
    staff: gpd.GeoDataFrame,
    *,
    capacity: int | Mapping[Any, int] = 1,
    max_distance_m: float = 5000,
    network: RoadNetwork | None = None,
    max_age_s: float = 900,
    max_workload: int = 8,
) -> pd.DataFrame:
    """Assign ``cases`` (columns ``id``, geometry Points) to on-duty staff with fresh positions so
    that the total travel distance is minimal, after assigning as many cases as possible.

    Each person takes at most ``capacity`` new cases (a Mapping gives it per ``staff_id``; people
    missing from it take none), and never more than ``max_workload - workload``. A case is only
    given to someone within ``max_distance_m`` (along the roads with ``network``, where it has a
    path; straight where it has none, like :func:`rank_candidates`).

    Method: every person is ``capacity`` identical *slots*; each case considers its ``K`` nearest
    people (straight line, within ``max_distance_m``) where ``K`` is the largest number of cases
    within ``2 × max_distance_m`` of one case (at most 500) — enough for the optimum, since only
    those cases can compete for the same people. The case–person pairs split into independent
    groups (connected components), and each group is one ``scipy.optimize.linear_sum_assignment``
    over its cases and slots, impossible pairs costing more than all possible ones together.
    With a network, the choice of the ``K`` is still by straight line.

    Returns a DataFrame indexed like ``cases`` with :data:`PLAN_COLUMNS`: ``case_id``, ``staff_id``
    (None when nobody can take it), ``distance_m`` (NaN then) and ``distance_kind`` ("road" |
    "straight" | None). Cases without a usable position stay unassigned.
    """
    frame = _frame(cases, "cases")
    if "id" not in frame.columns:
        raise ValueError("the cases frame has no 'id' column")
    s = _Staff(staff)
    max_d = _positive("max_distance_m", max_distance_m)
    max_age = _positive("max_age_s", max_age_s, allow_zero=True, allow_inf=True)
    if isinstance(max_workload, bool) or not isinstance(max_workload, int | np.integer) or max_workload < 0:
        raise ValueError(f"max_workload must be an integer >= 0, got {max_workload!r}")
    if network is not None and not isinstance(network, RoadNetwork):
        raise TypeError(f"network must be a RoadNetwork, got {type(network).__name__}")
    case_ids = _objects(frame, "id")
    out = _empty_plan(frame, case_ids)
    cap = _capacities(s, capacity, max_workload)
    case_src = point_xy(np.asarray(frame.geometry.values, dtype=object), crs=frame.crs)
    case_ok = np.isfinite(case_src).all(axis=1)
    staff_xy = s.xy()
    fresh = np.isfinite(staff_xy).all(axis=1) & (s.age_s() <= max_age) & s.on_duty() & (cap > 0)
    if not case_ok.any() or not fresh.any():
        return out
    case_crs = pyproj.CRS.from_user_input(frame.crs)
    work = network.crs if network is not None else _utm_of(case_src, case_crs)
    c_rows = np.flatnonzero(case_ok)
    c_xy = reproject_xy(case_src[c_rows], crs=case_crs, to=work)
    p_rows = np.flatnonzero(fresh)
    p_xy = reproject_xy(staff_xy[p_rows], crs=s.crs, to=work)
    keep_c = np.isfinite(c_xy).all(axis=1)
    c_rows, c_xy = c_rows[keep_c], c_xy[keep_c]
    keep_p = np.isfinite(p_xy).all(axis=1)
    p_rows, p_xy, p_cap = p_rows[keep_p], p_xy[keep_p], cap[p_rows[keep_p]]
    if c_rows.size == 0 or p_rows.size == 0:
        return out

    # the K nearest people of every case
    competing = cKDTree(c_xy).query_ball_point(c_xy, r=2.0 * max_d, return_length=True)
    k = int(min(max(int(np.max(competing)), 1), _MAX_K, p_rows.size))
    dist, nn = cKDTree(p_xy).query(c_xy, k=k, distance_upper_bound=max_d)
    dist = np.asarray(dist, dtype=np.float64).reshape(c_rows.size, k)
    nn = np.asarray(nn, dtype=np.int64).reshape(c_rows.size, k)
    ci, slot = np.nonzero(np.isfinite(dist))
    pi, pd_ = nn[ci, slot], dist[ci, slot]
    pkind = np.full(ci.size, "straight", dtype=object)
    if network is not None and ci.size:
        keep = np.ones(ci.size, dtype=bool)
        starts = np.flatnonzero(np.r_[True, ci[1:] != ci[:-1]])
        stops = np.r_[starts[1:], ci.size]
        for a, b in zip(starts, stops, strict=True):
            reach = network.reach(shapely.Point(c_xy[ci[a]]), crs=work, limit_m=max_d)
            pts = _xy_points(p_xy[pi[a:b]])
            road = reach.distances_to(pts)
            found = np.isfinite(road)
            pd_[a:b] = np.where(found, road, pd_[a:b])
            pkind[a:b] = np.where(found, "road", "straight")
            # a path that exists but is longer than max_distance_m rules the pair out
            keep[a:b] = found | ~reach.connected(pts)
        ci, pi, pd_, pkind = ci[keep], pi[keep], pd_[keep], pkind[keep]
    if ci.size == 0:
        return out

    # independent groups of cases and people
    n_c, n_p = c_rows.size, p_rows.size
    graph = sparse.coo_matrix((np.ones(ci.size), (ci, n_c + pi)), shape=(n_c + n_p, n_c + n_p))
    _, comp = csgraph.connected_components(graph, directed=False)
    pair_comp = comp[ci]
    order = np.argsort(pair_comp, kind="stable")
    ci, pi, pd_, pkind, pair_comp = ci[order], pi[order], pd_[order], pkind[order], pair_comp[order]
    starts = np.flatnonzero(np.r_[True, pair_comp[1:] != pair_comp[:-1]])
    stops = np.r_[starts[1:], ci.size]
    staff_ids = s.objects("staff_id")
    staff_out = out["staff_id"].to_numpy(dtype=object).copy()
    dist_out = out["distance_m"].to_numpy(dtype=np.float64).copy()
    kind_out = out["distance_kind"].to_numpy(dtype=object).copy()
    for a, b in zip(starts, stops, strict=True):
        g_c, g_p, g_d, g_k = ci[a:b], pi[a:b], pd_[a:b], pkind[a:b]
        cases_g, row_of = np.unique(g_c, return_inverse=True)
        people_g, col_of = np.unique(g_p, return_inverse=True)
        pairs_per_person = np.bincount(col_of, minlength=people_g.size)
        slots = np.minimum(p_cap[people_g], pairs_per_person).astype(np.int64)
        first_slot = np.r_[0, np.cumsum(slots)[:-1]]
        big = (cases_g.size + 1.0) * max_d + 1.0
        cost = np.full((cases_g.size, int(slots.sum())), big, dtype=np.float64)
        reps = slots[col_of]
        r = np.repeat(row_of, reps)
        offs = np.arange(int(reps.sum())) - np.repeat(np.cumsum(reps) - reps, reps)
        cost[r, np.repeat(first_slot[col_of], reps) + offs] = np.repeat(g_d, reps)
        rows_a, cols_a = linear_sum_assignment(cost)
        real = cost[rows_a, cols_a] < big
        rows_a, cols_a = rows_a[real], cols_a[real]
        person_of_slot = np.repeat(np.arange(people_g.size), slots)
        # find the pair of each assignment: pairs sorted by (case, person) key
        key = row_of.astype(np.int64) * people_g.size + col_of
        by_key = np.argsort(key)
        wanted = rows_a.astype(np.int64) * people_g.size + person_of_slot[cols_a]
        pair = by_key[np.searchsorted(key[by_key], wanted)]
        target = c_rows[cases_g[rows_a]]
        staff_out[target] = staff_ids[p_rows[people_g[person_of_slot[cols_a]]]]
        dist_out[target] = g_d[pair]
        kind_out[target] = g_k[pair]
    out["staff_id"] = pd.Series(staff_out, index=out.index, dtype=object)
    out["distance_m"] = dist_out
    out["distance_kind"] = pd.Series(kind_out, index=out.index, dtype=object)
    return out


# --------------------------------------------------------------------------------------------
# Space-time clusters and duplicates
# --------------------------------------------------------------------------------------------


def _utc_ns(values: pd.Series, what: str) -> tuple[IntArray, BoolArray]:
    """Nanoseconds (UTC for aware times) and a validity mask of a datetime-like column."""
    if not pd.api.types.is_datetime64_any_dtype(values):
        try:
            values = pd.to_datetime(values)
        except (ValueError, TypeError) as exc:
            raise TypeError(f"{what} must hold datetimes: {exc}") from exc
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        values = values.dt.tz_convert("UTC").dt.tz_localize(None)
    ok = values.notna().to_numpy()
    ns = values.to_numpy(dtype="datetime64[ns]").astype(np.int64)
    return ns, ok


def _window_ns(window: pd.Timedelta | float, what: str) -> int:
    if isinstance(window, pd.Timedelta | np.timedelta64) or hasattr(window, "total_seconds"):
        td = pd.Timedelta(window)
        if pd.isna(td) or td < pd.Timedelta(0):
            raise ValueError(f"{what} must be a non-negative duration, got {window!r}")
        return int(td.value)
    seconds = _positive(what, float(window), allow_zero=True)
    return int(round(seconds * _NS))


def _groups(frame: pd.DataFrame, by: str | None) -> IntArray:
    if by is None:
        return np.zeros(len(frame), dtype=np.int64)
    if by not in frame.columns:
        raise ValueError(f"the cases have no column {by!r} (pass by=None to ignore categories)")
    codes, _ = pd.factorize(frame[by], use_na_sentinel=True)
    return np.asarray(codes, dtype=np.int64)


def space_time_clusters(
    cases: gpd.GeoDataFrame,
    *,
    eps_m: float = 300,
    window: pd.Timedelta | float = _72H,
    min_size: int = 3,
    by: str | None = "category",
    time_col: str = "reported_at",
) -> pd.Series:
    """Clusters of similar cases close in space and time (ST-DBSCAN-like single linkage).

    Two cases are *linked* when they are in the same ``by`` group (any when ``by`` is None), at most
    ``eps_m`` metres apart and at most ``window`` apart in time (a Timedelta or seconds). A connected
    component of links with at least ``min_size`` cases is a cluster (so chains can reach farther
    than ``eps_m``: that is single linkage). Cases with a missing or empty position, a missing time
    or a missing ``by`` value are in no cluster.

    Returns an ``Int64`` Series named "cluster", aligned with ``cases``: 1, 2, ... numbered by each
    cluster's earliest report (then row order), ``<NA>`` for cases in no cluster. Uses an STRtree
    ``dwithin`` query in the UTM zone of the cases and ``scipy.sparse.csgraph.connected_components``.
    """
    frame = _frame(cases, "cases")
    eps = _positive("eps_m", eps_m, allow_zero=True)
    span = _window_ns(window, "window")
    if isinstance(min_size, bool) or not isinstance(min_size, int | np.integer) or min_size < 1:
        raise ValueError(f"min_size must be an integer >= 1, got {min_size!r}")
    if time_col not in frame.columns:
        raise ValueError(f"the cases have no column {time_col!r}")
    out = pd.Series(pd.array([pd.NA] * len(frame), dtype="Int64"), index=frame.index, name="cluster")
    ns, t_ok = _utc_ns(frame[time_col], time_col)
    group = _groups(frame, by)
    src = point_xy(np.asarray(frame.geometry.values, dtype=object), crs=frame.crs)
    usable = np.flatnonzero(np.isfinite(src).all(axis=1) & t_ok & (group >= 0))
    if usable.size < min_size:
        return out
    crs = pyproj.CRS.from_user_input(frame.crs)
    xy = reproject_xy(src[usable], crs=crs, to=_utm_of(src[usable], crs))
    fine = np.isfinite(xy).all(axis=1)
    usable, xy = usable[fine], xy[fine]
    n = usable.size
    tree = shapely.STRtree(_xy_points(xy))
    a, b = tree.query(_xy_points(xy), predicate="dwithin", distance=eps)
    t, g = ns[usable], group[usable]
    link = (a < b) & (g[a] == g[b]) & (np.abs(t[a] - t[b]) <= span)
    a, b = a[link], b[link]
    adj = sparse.coo_matrix((np.ones(a.size), (a, b)), shape=(n, n))
    _, comp = csgraph.connected_components(adj, directed=False)
    size = np.bincount(comp)
    big = size[comp] >= min_size
    if not big.any():
        return out
    # number clusters by their earliest report, then by the row order of that report
    members = np.flatnonzero(big)
    first = members[np.lexsort((usable[members], t[members]))]
    _, first_of = np.unique(comp[first], return_index=True)
    comp_order = comp[first][np.sort(first_of)]
    number = np.zeros(int(comp.max()) + 1, dtype=np.int64)
    number[comp_order] = np.arange(1, comp_order.size + 1)
    values = np.zeros(len(frame), dtype=np.int64)
    values[usable[members]] = number[comp[members]]
    labels = pd.array(values, dtype="Int64")
    labels[values == 0] = pd.NA
    return pd.Series(labels, index=frame.index, name="cluster")


def cluster_outlines(
    cases: gpd.GeoDataFrame,
    labels: pd.Series,
    *,
    buffer_m: float = 60,
    by: str | None = "category",
    time_col: str = "reported_at",
) -> gpd.GeoDataFrame:
    """One outline per cluster of :func:`space_time_clusters`, for drawing.

    ``labels`` must be aligned with ``cases`` (same index). Returns a GeoDataFrame with
    :data:`OUTLINE_COLUMNS`, in the cases' CRS, sorted by cluster: ``cluster``, ``category`` (the
    ``by`` value of its first case; None when ``by`` is None), ``n`` cases, ``first``/``last``
    report time and the convex hull of the cases grown by ``buffer_m`` metres.
    """
    frame = _frame(cases, "cases")
    buffer = _positive("buffer_m", buffer_m, allow_zero=True)
    if not isinstance(labels, pd.Series) or not labels.index.equals(frame.index):
        raise ValueError("labels must be a Series with the same index as cases (from space_time_clusters)")
    if time_col not in frame.columns:
        raise ValueError(f"the cases have no column {time_col!r}")
    if by is not None and by not in frame.columns:
        raise ValueError(f"the cases have no column {by!r}")
    lab = labels.astype("Int64")
    src = point_xy(np.asarray(frame.geometry.values, dtype=object), crs=frame.crs)
    member = np.flatnonzero(lab.notna().to_numpy() & np.isfinite(src).all(axis=1))
    empty = gpd.GeoDataFrame(
        {
            "cluster": pd.Series([], dtype="int64"),
            "category": pd.Series([], dtype=object),
            "n": pd.Series([], dtype="int64"),
            "first": pd.Series([], dtype=frame[time_col].dtype),
            "last": pd.Series([], dtype=frame[time_col].dtype),
        },
        geometry=gpd.GeoSeries([], crs=frame.crs),
        crs=frame.crs,
    )
    if member.size == 0:
        return empty
    crs = pyproj.CRS.from_user_input(frame.crs)
    work = _utm_of(src[member], crs)
    xy = reproject_xy(src[member], crs=crs, to=work)
    cl = lab.iloc[member].to_numpy(dtype=np.int64)
    order = np.argsort(cl, kind="stable")
    member, xy, cl = member[order], xy[order], cl[order]
    ids, start, count = np.unique(cl, return_index=True, return_counts=True)
    _, index = np.unique(cl, return_inverse=True)
    hulls = shapely.convex_hull(shapely.multipoints(xy, indices=index))
    shapes = gpd.GeoSeries(shapely.buffer(hulls, buffer), crs=work).to_crs(frame.crs)
    times = frame[time_col].iloc[member].reset_index(drop=True)
    by_cluster = times.groupby(cl)
    category = frame[by].to_numpy(dtype=object)[member[start]] if by is not None else [None] * ids.size
    return gpd.GeoDataFrame(
        {
            "cluster": ids.astype(np.int64),
            "category": np.asarray(category, dtype=object),
            "n": count.astype(np.int64),
            "first": by_cluster.min().to_numpy(),
            "last": by_cluster.max().to_numpy(),
        },
        geometry=shapes.to_numpy(),
        crs=frame.crs,
    )[OUTLINE_COLUMNS]


def likely_duplicate(
    existing: gpd.GeoDataFrame,
    *,
    at: shapely.Point,
    crs: Any = None,
    category: str,
    when: pd.Timestamp,
    within_m: float = 100,
    within: pd.Timedelta = _24H,
    closed_states: Collection[str] = CLOSED_STATES,
) -> Any | None:
    """The ``id`` of the case a new report at ``at`` (in ``crs``, default the frame's) of
    ``category`` at time ``when`` most likely repeats, or None.

    That is the closest case of ``existing`` (columns ``id``, ``category``, ``reported_at``,
    geometry) of the same category, reported at or before ``when`` but not more than ``within``
    earlier, at most ``within_m`` metres away, and open: when there is a ``state`` column, cases in
    ``closed_states`` are left out, and when there is a ``duplicate_of`` column, reports already
    merged into another case are too (their original is the one to match). Ties in distance go to
    the latest report. ``when`` and ``reported_at`` must both be timezone-aware or both naive.
    """
    frame = _frame(existing, "existing")
    for column in ("id", "category", "reported_at"):
        if column not in frame.columns:
            raise ValueError(f"the existing cases have no column {column!r}")
    point = _point(at)
    limit_m = _positive("within_m", within_m, allow_zero=True)
    span = _window_ns(within, "within")
    stamp = pd.Timestamp(when)
    if pd.isna(stamp):
        raise ValueError("when must be a timestamp, got NaT")
    times = frame["reported_at"]
    if not pd.api.types.is_datetime64_any_dtype(times):
        times = pd.to_datetime(times)
    aware = isinstance(times.dtype, pd.DatetimeTZDtype)
    if aware != (stamp.tzinfo is not None):
        raise TypeError("when and reported_at must both be timezone-aware or both naive")
    now_ns = (stamp.tz_convert("UTC").tz_localize(None) if aware else stamp).as_unit("ns").value
    if len(frame) == 0:
        return None
    ns, t_ok = _utc_ns(times, "reported_at")
    keep = t_ok & (frame["category"].to_numpy(dtype=object) == category)
    keep &= (ns <= now_ns) & (now_ns - ns <= span)
    if "state" in frame.columns:
        keep &= ~frame["state"].isin(list(closed_states)).to_numpy()
    if "duplicate_of" in frame.columns:
        keep &= frame["duplicate_of"].isna().to_numpy()
    rows = np.flatnonzero(keep)
    if rows.size == 0:
        return None
    source = pyproj.CRS.from_user_input(frame.crs) if crs is None else pyproj.CRS.from_user_input(crs)
    at_src = point_xy([point], crs=source)
    work = _utm_of(reproject_xy(at_src, crs=source, to=WGS84), pyproj.CRS(WGS84))
    at_xy = reproject_xy(at_src, crs=source, to=work)[0]
    geoms = np.asarray(frame.geometry.values, dtype=object)[rows]
    xy = point_xy(geoms, crs=frame.crs, to=work)
    dist = np.hypot(xy[:, 0] - at_xy[0], xy[:, 1] - at_xy[1])
    near = np.isfinite(dist) & (dist <= limit_m)
    if not near.any():
        return None
    cand = np.flatnonzero(near)
    best = cand[np.lexsort((-ns[rows[cand]], dist[cand]))[0]]
    value = frame["id"].iloc[int(rows[best])]
    return value.item() if isinstance(value, np.generic) else value
