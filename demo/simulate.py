"""A patrol simulator: grid workers walking their grids' roads, reporting as Traccar Client phones.

Planning (:func:`plan_patrols`)
-------------------------------
For every selected staff member (on duty by default) the planner reads the worker's grids
(``staff_grids`` → ``grids``), or, for workers without a grid (township mediators, volunteers and
police), their unit's outline (``admin_units``); the roads and buildings around them; and projects
everything to the UTM zone of the area (:func:`geo.crs.metric_crs`). The roads become one graph
(:mod:`demo.roadnet`: noded, snapped, cut into edges of at most 40 m). A worker's *area* is the
union of their grids (or their unit) grown by ``area_buffer_m`` (90 m: the streets round a
block reach its interior grids); the worker's roads are the edges with both ends in it, and the
patrol uses the largest connected piece of them.

A patrol is a **closed loop**, walked over and over:

* ``road`` mode (the area holds at least ``min_road_m`` of connected road): a few *cover*
  waypoints spread over the worker's roads (farthest-point sampling from the node nearest the
  area's centre, one per ~350 m of road, 2–6 of them, only nodes within ``walk_radius_m`` /
  ``ride_radius_m`` of road distance of that centre), plus the road access nodes of 2–5 buildings
  to visit (households-weighted, at most ``max_walk_in_m`` from the road), visited in angular order
  around their centroid; consecutive waypoints are joined by shortest paths on the worker's roads
  (``scipy.sparse.csgraph.dijkstra``). At a visited building the worker walks from the road to the
  building's centroid, stays 3–10 minutes and walks back. Off-road walking is kept at most
  ``offroad_share_max`` (15 %) of the loop: when the visits need more, the road loop is walked
  two or three times per visit round (every other lap in the opposite direction), and if that is
  still not enough the farthest visits are dropped.
* ``buildings`` mode (no usable roads, e.g. a village grid away from its lane): straight walks
  between 4–7 building centroids of the area, dwelling at 2–5 of them (a grid of fewer buildings
  adds random points of its area, so the worker walks round the courtyard too).
* ``area`` mode (no roads, no buildings): a loop through four random points of the area;
  ``still`` when even the area is unknown.

Routes are stored flat for all workers: vertex coordinates (lon/lat), local time ``tau`` (seconds
since the start of the loop, dwells included) and cumulative distance, with per-segment speed,
bearing and kind (moving or dwelling). Straight runs are merged, so a route is a few dozen vertices.

The state model (:meth:`Patrols.positions_at`)
----------------------------------------------
Vectorised over all workers for a time ``t`` (unix seconds, one for all or one per worker):

* **loop time** ``s = (t − paused(t) + phase) mod period`` where ``paused`` is the lunch time
  taken so far, so a worker stands still during lunch and resumes where they stopped; the fix is
  the route interpolated at ``s`` (one ``searchsorted`` over all routes).
* **speed**: per worker, walking ~ N(1.2, 0.15) m/s within [0.85, 1.6], or an e-bike (12 % of
  grid workers, 70 % of unit-level officers) ~ N(4.0, 0.5) within [3, 5.5]; the walk from the road
  to a building is always on foot. Reported speed is the segment's ±8 %, 0 when standing.
* **lunch**: 30–60 min starting between 11:30 and 12:30 local time (UTC+8), standing.
* **GPS**: accuracy per fix = the phone's base (4–10 m) × a log-normal factor (×1.6 indoors at a
  visit), within 3–25 m; the reported position is off by N(0, accuracy/1.5) per axis.
* **battery**: a saw-tooth from 100 % down to 15 % at 5–9 %/h, then charging at 45 %/h
  (``charging`` true) back to 100 %.
* **offline**: a share of phones (``offline_share``, 8 %) loses the network for 5–45 min every
  1.5–4 h; fixes taken then are buffered and uploaded in order through the batch endpoint when
  the phone is back online.
* altitude about 60 m (Tieling) ± noise.

All randomness is a hash of (seed, staff id, time, stream), so a fix depends only on those:
planning the same staff with the same seed gives the same routes, and the same time gives the
same fix whether asked for by :func:`run`, :func:`backfill` or :meth:`Patrols.positions_at`.

Sending (:func:`run`, :func:`backfill`)
---------------------------------------
:func:`run` ticks every ``interval_s`` of simulated time (``speedup`` × real time). Each worker has
a fixed offset inside the interval, so requests spread over it. Every tick appends a fix to each
worker's queue; an online worker's queue is sent oldest first: fixes buffered while offline as
``POST /api/positions`` batches (≤ 1,000), live fixes as OsmAnd requests
(``POST /osmand?id=…&timestamp=…&lat=…&lon=…&speed=<knots>&bearing=…&altitude=…&accuracy=…
&batt=…&charge=…``). A 5xx answer or a transport error keeps the fix queued (retried later, in
order; more than ``max_resend`` waiting go as a batch); a 4xx answer rejects it (logged, counted,
dropped). Requests go through ``httpx.AsyncClient``s (HTTP/1.1 keep-alive; several clients of
four connections each, because httpcore's pool costs CPU per request in proportion to its size)
with at most ``concurrency`` workers sending at once; a worker never has two requests in flight,
so its positions arrive in order. Measured on the 2-core dev machine: 15,093 workers at one fix
per 30 s keep to schedule (~500 requests/s) using ~40 % of one core. :func:`backfill` sends a
period's history through the batch endpoint.

Every request carries ``Authorization: Bearer <token>`` when a ``token`` is given (keyword of
:func:`run`, :func:`simulate`, :func:`abackfill`, :func:`backfill`; default: env
``GRIDCONSOLE_API_TOKEN``). The simulator sends for many devices, so its token is a gateway's:
an administrator's token (``positions.relay``) whose unit covers the simulated workers.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import os
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import geopandas as gpd
import httpx
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely
from scipy.sparse import csgraph
from scipy.spatial import cKDTree

from demo.roadnet import RoadGraph, build_road_graph, path_from_predecessors, subgraph
from geo._types import BoolArray, FloatArray, IntArray, ObjArray
from geo.crs import metric_crs, to_metric
from store.base import Store

__all__ = [
    "KNOTS_PER_MS",
    "PatrolModel",
    "Patrols",
    "RunStats",
    "abackfill",
    "backfill",
    "default_start",
    "osmand_query",
    "plan_patrols",
    "run",
    "simulate",
]

log = logging.getLogger(__name__)


KNOTS_PER_MS = 3600.0 / 1852.0  # 1 m/s in knots (OsmAnd's speed unit)
TOKEN_ENV = "GRIDCONSOLE_API_TOKEN"


def auth_headers(token: str | None) -> dict[str, str]:
    """The headers carrying ``token`` (else the one in env GRIDCONSOLE_API_TOKEN; none without)."""
    token = token if token is not None else os.environ.get(TOKEN_ENV) or None
    return {"Authorization": f"Bearer {token}"} if token else {}
_M_PER_DEG_LAT = 111_320.0
_DAY = 86_400.0

MOVE, DWELL = 0, 1
STATES = ("patrol", "visit", "break")


@dataclass(frozen=True)
class PatrolModel:
    """The simulator's parameters (see the module docstring)."""

    walk_speed: tuple[float, float] = (1.2, 0.15)  # mean, sd, m/s
    walk_speed_range: tuple[float, float] = (0.85, 1.6)
    ebike_speed: tuple[float, float] = (4.0, 0.5)
    ebike_speed_range: tuple[float, float] = (3.0, 5.5)
    ebike_share: float = 0.12  # of grid-based staff
    ebike_share_unit: float = 0.7  # of staff patrolling a whole township/village
    visits: tuple[int, int] = (2, 5)  # buildings visited per round, inclusive
    dwell_s: tuple[float, float] = (180.0, 600.0)
    lunch_start_h: tuple[float, float] = (11.5, 12.5)  # local time
    lunch_min: tuple[float, float] = (30.0, 60.0)
    utc_offset_h: float = 8.0
    accuracy_base_m: tuple[float, float] = (4.0, 10.0)
    accuracy_range_m: tuple[float, float] = (3.0, 25.0)
    indoor_accuracy_factor: float = 1.6
    offline_share: float = 0.08
    offline_min: tuple[float, float] = (5.0, 45.0)
    offline_every_h: tuple[float, float] = (1.5, 4.0)
    battery_drain_per_h: tuple[float, float] = (5.0, 9.0)
    battery_charge_per_h: float = 45.0
    battery_low: float = 15.0
    altitude_m: float = 60.0
    area_buffer_m: float = 90.0  # a worker's roads: both ends within this of their grids
    max_edge_m: float = 40.0
    min_road_m: float = 150.0
    cover_spacing_m: float = 350.0
    walk_radius_m: float = 1200.0
    ride_radius_m: float = 3500.0
    max_walk_in_m: float = 150.0
    offroad_share_max: float = 0.15
    max_laps: int = 3


# --------------------------------------------------------------------------------------------
# counter-based randomness: a fix depends only on (seed, staff id, time, stream)

_GOLD = np.uint64(0x9E3779B97F4A7C15)
_C1 = np.uint64(0xBF58476D1CE4E5B9)
_C2 = np.uint64(0x94D049BB133111EB)
_K_STAFF = np.uint64(0xD1B54A32D192ED03)
_K_TIME = np.uint64(0x8CB92BA72F3D8DD7)
_K_STREAM = np.uint64(0xA0761D6478BD642F)


def _mix(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """splitmix64's finaliser (array arithmetic wraps modulo 2**64)."""
    x = x ^ (x >> np.uint64(30))
    x = x * _C1
    x = x ^ (x >> np.uint64(27))
    x = x * _C2
    return x ^ (x >> np.uint64(31))


def _uniform(seed: int, staff: npt.ArrayLike, stream: int, t_ms: npt.ArrayLike = 0) -> FloatArray:
    """Uniform [0, 1) numbers, one per (staff, t_ms) pair (broadcast), for a named stream."""
    s = np.atleast_1d(np.asarray(staff, dtype=np.int64)).view(np.uint64)
    t = np.atleast_1d(np.asarray(t_ms, dtype=np.int64)).view(np.uint64)
    s, t = np.broadcast_arrays(s, t)
    key = np.array([seed & 0xFFFFFFFFFFFFFFFF, stream & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64)
    base = _mix(key[:1] * _GOLD + key[1:] * _K_STREAM)
    h = _mix(base ^ (s * _K_STAFF) ^ (t * _K_TIME) + _GOLD)
    return np.asarray((h >> np.uint64(11)).astype(np.float64) * (1.0 / 9007199254740992.0))


def _normal(seed: int, staff: npt.ArrayLike, stream: int, t_ms: npt.ArrayLike = 0) -> FloatArray:
    u1 = _uniform(seed, staff, 2 * stream + 1000, t_ms)
    u2 = _uniform(seed, staff, 2 * stream + 1001, t_ms)
    return np.asarray(np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2))


def _between(u: FloatArray, lo_hi: tuple[float, float]) -> FloatArray:
    return np.asarray(lo_hi[0] + (lo_hi[1] - lo_hi[0]) * u)


# --------------------------------------------------------------------------------------------
# pure geometry helpers (metres)


def polyline_lengths(xy: FloatArray) -> FloatArray:
    """Cumulative distance along a polyline (same length as ``xy``, starting at 0)."""
    if xy.shape[0] == 0:
        return np.empty(0)
    steps = np.hypot(*np.diff(xy, axis=0).T)
    return np.asarray(np.r_[0.0, np.cumsum(steps)])


def bearings(xy: FloatArray) -> FloatArray:
    """Bearing (degrees clockwise from north) of each segment of a polyline (len(xy) - 1 values)."""
    d = np.diff(xy, axis=0)
    return np.asarray(np.degrees(np.arctan2(d[:, 0], d[:, 1])) % 360.0)


def loop_order(xy: FloatArray, first: int = 0) -> IntArray:
    """Indices of points in angular order around their centroid, starting at ``first``."""
    n = xy.shape[0]
    if n <= 2:
        order = np.arange(n)
    else:
        c = xy.mean(axis=0)
        order = np.argsort(np.arctan2(xy[:, 1] - c[1], xy[:, 0] - c[0]), kind="stable")
    k = int(np.flatnonzero(order == first)[0]) if n else 0
    return np.asarray(np.roll(order, -k), dtype=np.int64)


def farthest_points(xy: FloatArray, first: int, k: int, *, min_gap: float = 1.0) -> list[int]:
    """Greedy farthest-point sampling: ``first`` then up to k-1 points each farthest from those chosen."""
    chosen = [first]
    if xy.shape[0] == 0:
        return chosen
    d = np.hypot(*(xy - xy[first]).T)
    while len(chosen) < k:
        j = int(np.argmax(d))
        if d[j] <= min_gap:
            break
        chosen.append(j)
        d = np.minimum(d, np.hypot(*(xy - xy[j]).T))
    return chosen


def simplify_route(
    xy: FloatArray, kinds: npt.NDArray[np.uint8], speeds: FloatArray, *, tol_deg: float = 0.5
) -> BoolArray:
    """Vertices to keep: drop interior vertices of straight runs (same kind and speed on both
    sides, direction changing by less than ``tol_deg``). ``kinds``/``speeds`` are per segment."""
    n = xy.shape[0]
    keep = np.ones(n, dtype=bool)
    if n < 3:
        return keep
    d = np.diff(xy, axis=0)
    a, b = d[:-1], d[1:]
    la, lb = np.hypot(*a.T), np.hypot(*b.T)
    cross = a[:, 0] * b[:, 1] - a[:, 1] * b[:, 0]
    dot = (a * b).sum(axis=1)
    straight = (np.abs(cross) <= np.sin(np.radians(tol_deg)) * la * lb) & (dot > 0)
    same = (kinds[:-1] == MOVE) & (kinds[1:] == MOVE) & np.isclose(speeds[:-1], speeds[1:])
    keep[1:-1] = ~(straight & same & (la > 0) & (lb > 0))
    return keep


# --------------------------------------------------------------------------------------------
# routes


@dataclass
class _Route:
    xy: FloatArray  # (k, 2) metres
    dur: FloatArray  # (k-1,) seconds per segment
    kind: npt.NDArray[np.uint8]  # (k-1,)
    speed: FloatArray  # (k-1,) m/s (0 for dwells)
    mode: str
    stops: list[tuple[int, float, float, float, float]]  # building id, x, y, tau start, tau end


class _RouteBuilder:
    """Accumulates a loop: moves along polylines at a speed, dwells in place. Segment lengths and
    durations are computed once, in :meth:`route`."""

    def __init__(self, start: FloatArray) -> None:
        self.last = np.asarray(start, dtype=np.float64).reshape(2)
        self.pts: list[FloatArray] = [self.last[None, :]]
        self.runs: list[tuple[int, int, float]] = [(1, MOVE, 1.0)]  # points, kind, speed or dwell s
        self.visits: list[int] = []  # building ids of the dwells, in order

    def path(self, xy: FloatArray, v: float) -> None:
        """Move through the points ``xy`` (k, 2) in turn at ``v`` m/s."""
        if xy.shape[0] == 0:
            return
        self.pts.append(xy)
        self.runs.append((xy.shape[0], MOVE, v))
        self.last = xy[-1]

    def move(self, p: FloatArray, v: float) -> None:
        self.path(np.asarray(p, dtype=np.float64).reshape(1, 2), v)

    def dwell(self, seconds: float, building: int) -> None:
        self.pts.append(self.last[None, :])
        self.runs.append((1, DWELL, seconds))
        self.visits.append(building)

    def route(self, mode: str) -> _Route:
        if len(self.pts) == 1:  # a route needs one segment: stand for an hour
            self.dwell(3600.0, -1)
            self.visits.pop()
        xy = np.vstack(self.pts)
        counts = np.array([r[0] for r in self.runs])
        kind = np.repeat(np.array([r[1] for r in self.runs], dtype=np.uint8), counts)
        value = np.repeat(np.array([r[2] for r in self.runs], dtype=np.float64), counts)
        d = np.hypot(*np.diff(xy, axis=0).T)
        # drop moves that go nowhere (a path starting where the last one ended)
        keep = np.r_[True, (kind[1:] == DWELL) | (d >= 0.01)]
        xy, kind, value = xy[keep], kind[keep], value[keep]
        d = np.hypot(*np.diff(xy, axis=0).T)
        seg_kind, seg_value = kind[1:], value[1:]  # a segment has the kind of the point it leads to
        speed = np.where(seg_kind == MOVE, seg_value, 0.0)
        dur = np.where(seg_kind == DWELL, seg_value, d / np.where(speed > 0, speed, 1.0))
        if dur.size == 0:  # all points in one place: stand for an hour
            xy, dur = np.vstack([xy[:1], xy[:1]]), np.array([3600.0])
            seg_kind, speed = np.array([DWELL], dtype=np.uint8), np.zeros(1)
        tau = np.r_[0.0, np.cumsum(dur)]
        j = np.flatnonzero(seg_kind == DWELL)
        stops = [
            (b, float(xy[k, 0]), float(xy[k, 1]), float(tau[k]), float(tau[k + 1]))
            for b, k in zip(self.visits, j.tolist(), strict=False)
            if b >= 0
        ]
        return _Route(xy, dur, seg_kind.astype(np.uint8), speed, mode, stops)


@dataclass
class _Worker:
    staff_id: int
    speed: float
    walk: float
    riding: bool
    unit_level: bool
    area: Any  # metric polygon (buffered) or None
    centre: FloatArray
    edges: IntArray  # global road edge ids in the area
    buildings: IntArray  # indices into the building arrays


@dataclass
class _Buildings:
    ids: IntArray
    xy: FloatArray
    households: FloatArray


def _plan_road(
    w: _Worker, graph: RoadGraph, bld: _Buildings, model: PatrolModel, rng: np.random.Generator
) -> _Route | None:
    if w.edges.size == 0:
        return None
    sub = subgraph(graph, w.edges)
    ncomp, lab = csgraph.connected_components(sub.matrix, directed=False)
    comp_len = np.bincount(lab[sub.edges[:, 0]], weights=sub.length, minlength=ncomp)
    best = int(np.argmax(comp_len))
    if comp_len[best] < model.min_road_m:
        return None
    members = np.flatnonzero(lab == best)
    base = int(members[np.argmin(np.hypot(*(sub.xy[members] - w.centre).T))])
    radius = model.ride_radius_m if w.riding else model.walk_radius_m
    dist = csgraph.dijkstra(sub.matrix, indices=base, limit=radius)
    reach = np.flatnonzero(np.isfinite(dist))
    both = np.isfinite(dist[sub.edges[:, 0]]) & np.isfinite(dist[sub.edges[:, 1]])
    road_len = float(sub.length[both].sum())
    if road_len < model.min_road_m:
        return None
    k_cover = int(np.clip(round(road_len / model.cover_spacing_m), 2, 6))
    first = int(np.flatnonzero(reach == base)[0])
    cover = [int(reach[i]) for i in farthest_points(sub.xy[reach], first, k_cover)]

    # buildings to visit: reachable on foot from a road node
    visits: dict[int, list[tuple[int, float]]] = {}  # access node -> [(building index, walk-in)]
    if w.buildings.size:
        tree = cKDTree(sub.xy[reach])
        walk_in, j = tree.query(bld.xy[w.buildings], distance_upper_bound=model.max_walk_in_m)
        ok = np.isfinite(walk_in)
        cand, walk_in, access = w.buildings[ok], walk_in[ok], reach[j[ok]]
        n_vis = int(rng.integers(model.visits[0], model.visits[1] + 1))
        if cand.size:
            weight = (bld.households[cand] + 5.0) / (walk_in + 20.0)
            pick = rng.choice(cand.size, size=min(n_vis, cand.size), replace=False, p=weight / weight.sum())
            for p in pick:
                visits.setdefault(int(access[p]), []).append((int(cand[p]), float(walk_in[p])))
    waypoints = list(dict.fromkeys(cover + list(visits)))
    if len(waypoints) < 2:
        far = int(reach[np.argmax(dist[reach])])
        waypoints = list(dict.fromkeys([base, far]))
        if len(waypoints) < 2:
            return None
    order = loop_order(sub.xy[waypoints], 0)
    if rng.random() < 0.5:
        order = np.r_[order[:1], order[1:][::-1]]
    wp = [waypoints[i] for i in order]
    _, pred = csgraph.dijkstra(sub.matrix, indices=wp, return_predecessors=True)
    legs: list[list[int]] = []
    for i in range(len(wp)):
        a, b = i, (i + 1) % len(wp)
        path = path_from_predecessors(pred[a], wp[a], wp[b])
        if not path:  # unreachable (cannot happen within one component)
            return None
        legs.append(path)
    loop_len = float(sum(np.hypot(*np.diff(sub.xy[p], axis=0).T).sum() for p in legs))
    if loop_len <= 0:
        return None

    # keep off-road walking within its share: more laps, else fewer visits
    ratio = model.offroad_share_max / (1.0 - model.offroad_share_max)
    flat = sorted(((d, n, b) for n, vs in visits.items() for b, d in vs), reverse=True)
    off = 2.0 * sum(d for d, _, _ in flat)
    laps = int(np.clip(math.ceil(off / (ratio * loop_len)) if off > 0 else 1, 1, model.max_laps))
    while flat and off > ratio * loop_len * laps:
        d, n, b = flat.pop(0)
        off -= 2.0 * d
    kept: dict[int, list[int]] = {}
    for _, n, b in flat:
        kept.setdefault(n, []).append(b)

    rb = _RouteBuilder(sub.xy[wp[0]])
    for lap in range(laps):
        seq = legs if lap % 2 == 0 else [p[::-1] for p in reversed(legs)]
        for path in seq:
            node = path[0]
            if lap == 0:
                for b in kept.get(node, []):
                    rb.move(bld.xy[b], w.walk)
                    rb.dwell(float(rng.uniform(*model.dwell_s)), int(bld.ids[b]))
                    rb.move(sub.xy[node], w.walk)
            rb.path(sub.xy[path[1:]], w.speed)
    return rb.route("road")


def _plan_buildings(
    w: _Worker, bld: _Buildings, model: PatrolModel, rng: np.random.Generator
) -> _Route | None:
    if w.buildings.size == 0:
        return None
    cand = w.buildings
    radius = model.ride_radius_m if w.riding else model.walk_radius_m
    near = cand[np.hypot(*(bld.xy[cand] - w.centre).T) <= radius]
    if near.size == 0:
        near = cand[np.argsort(np.hypot(*(bld.xy[cand] - w.centre).T))[:1]]
    n_way = min(near.size, int(rng.integers(4, 8)))
    weight = bld.households[near] + 1.0
    pick = near[rng.choice(near.size, size=n_way, replace=False, p=weight / weight.sum())]
    pts = bld.xy[pick]
    if pick.size < 4:  # a grid of one or two slabs: walk round its surroundings too
        if w.area is not None:
            near_area = shapely.intersection(w.area, shapely.buffer(shapely.Point(*pts.mean(axis=0)), 250.0))
            region = near_area if not near_area.is_empty else w.area
            extra = _random_points(region, 4 - pick.size, rng)
        else:
            extra = w.centre[None, :]
        pts = np.vstack([pts, extra])
    order = loop_order(pts, 0)
    n_vis = int(rng.integers(model.visits[0], model.visits[1] + 1))
    dwell_at = set(rng.choice(pick.size, size=min(n_vis, pick.size), replace=False).tolist())
    rb = _RouteBuilder(pts[order[0]])
    for k in range(order.size + 1):
        i = int(order[k % order.size])
        rb.move(pts[i], w.speed)
        if k < order.size and i < pick.size and i in dwell_at:
            rb.dwell(float(rng.uniform(*model.dwell_s)), int(bld.ids[pick[i]]))
    return rb.route("buildings")


def _random_points(area: Any, n: int, rng: np.random.Generator) -> FloatArray:
    minx, miny, maxx, maxy = area.bounds
    out: list[FloatArray] = []
    for _ in range(20):
        cand = rng.uniform([minx, miny], [maxx, maxy], size=(64, 2))
        out.extend(cand[shapely.contains_xy(area, cand[:, 0], cand[:, 1])])
        if len(out) >= n:
            break
    if len(out) < n:
        p = area.representative_point()
        out.extend([np.array([p.x, p.y])] * (n - len(out)))
    return np.asarray(out[:n], dtype=np.float64)


def _plan_area(w: _Worker, model: PatrolModel, rng: np.random.Generator) -> _Route:
    if w.area is None or w.area.is_empty:
        rb = _RouteBuilder(w.centre)
        return rb.route("still")
    pts = _random_points(w.area, 4, rng)
    order = loop_order(pts, 0)
    rb = _RouteBuilder(pts[order[0]])
    for k in range(1, order.size + 1):
        rb.move(pts[order[k % order.size]], w.speed)
    return rb.route("area")


# --------------------------------------------------------------------------------------------
# the patrols


@dataclass
class Patrols:
    """Planned patrol loops of n workers, flat arrays (see the module docstring)."""

    staff_id: IntArray  # (n,)
    device_id: ObjArray  # (n,)
    role: ObjArray  # (n,)
    mode: ObjArray  # (n,) road | buildings | area | still
    vehicle: ObjArray  # (n,) walk | ebike
    speed: FloatArray  # (n,) m/s on the move
    start: IntArray  # (n+1,) offsets into the vertex arrays
    lon: FloatArray  # (M,)
    lat: FloatArray  # (M,)
    tau: FloatArray  # (M,) seconds since the loop's start
    dist: FloatArray  # (M,) metres since the loop's start
    seg_speed: FloatArray  # (M,) m/s on the segment starting at the vertex (0 = standing)
    seg_bearing: FloatArray  # (M,)
    seg_kind: npt.NDArray[np.uint8]  # (M,) MOVE | DWELL
    stops: pd.DataFrame  # staff_id, building_id, lon, lat, t_start, t_end (loop time)
    seed: int = 0
    model: PatrolModel = field(default_factory=PatrolModel)
    crs: str = "EPSG:4326"  # the metric CRS the routes were planned in
    # per-worker state parameters, derived from (seed, staff id) in __post_init__
    period: FloatArray = field(init=False, repr=False)  # loop duration, s
    phase: FloatArray = field(init=False, repr=False)
    lunch_start: FloatArray = field(init=False, repr=False)  # s after local midnight
    lunch_len: FloatArray = field(init=False, repr=False)
    acc_base: FloatArray = field(init=False, repr=False)
    batt_drain_s: FloatArray = field(init=False, repr=False)
    batt_charge_s: FloatArray = field(init=False, repr=False)
    batt_phase: FloatArray = field(init=False, repr=False)
    flaky: BoolArray = field(init=False, repr=False)
    off_period: FloatArray = field(init=False, repr=False)
    off_len: FloatArray = field(init=False, repr=False)
    off_phase: FloatArray = field(init=False, repr=False)
    alt_base: FloatArray = field(init=False, repr=False)
    _key: FloatArray = field(init=False, repr=False)
    _base: FloatArray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        n = self.staff_id.size
        seed, sid, m = self.seed, self.staff_id, self.model
        self.period = np.asarray(self.tau[self.start[1:] - 1] if n else np.empty(0), dtype=np.float64)
        self._base = np.r_[0.0, np.cumsum(self.period + 1.0)][:n]
        owner = np.repeat(np.arange(n), np.diff(self.start))
        self._key = self.tau + self._base[owner] if n else np.empty(0)
        self.phase = _uniform(seed, sid, 1) * self.period
        self.lunch_start = _between(_uniform(seed, sid, 2), m.lunch_start_h) * 3600.0
        self.lunch_len = _between(_uniform(seed, sid, 3), m.lunch_min) * 60.0
        self.acc_base = _between(_uniform(seed, sid, 4), m.accuracy_base_m)
        drain = _between(_uniform(seed, sid, 5), m.battery_drain_per_h)
        span = 100.0 - m.battery_low
        self.batt_drain_s = span / drain * 3600.0
        self.batt_charge_s = np.full(n, span / m.battery_charge_per_h * 3600.0)
        self.batt_phase = _uniform(seed, sid, 6) * (self.batt_drain_s + self.batt_charge_s)
        self.flaky = _uniform(seed, sid, 7) < m.offline_share
        self.off_period = _between(_uniform(seed, sid, 8), m.offline_every_h) * 3600.0
        self.off_len = _between(_uniform(seed, sid, 9), m.offline_min) * 60.0
        self.off_phase = _uniform(seed, sid, 10) * self.off_period
        self.alt_base = m.altitude_m + 4.0 * _normal(seed, sid, 11)

    def __len__(self) -> int:
        return int(self.staff_id.size)

    def send_offsets(self, interval_s: float) -> IntArray:
        """Each worker's whole-second offset inside a reporting interval (spreads the requests)."""
        span = max(1, int(interval_s))
        return np.asarray(np.floor(_uniform(self.seed, self.staff_id, 12) * span), dtype=np.int64)

    def loop_time(self, t: npt.ArrayLike, idx: IntArray | None = None) -> tuple[FloatArray, BoolArray]:
        """Loop time ``s`` of the workers at unix time(s) t, and whether they are at lunch."""
        ix = np.arange(len(self)) if idx is None else idx
        tt = np.broadcast_to(np.asarray(t, dtype=np.float64), ix.shape)
        local = tt + self.model.utc_offset_h * 3600.0
        day = np.floor(local / _DAY)
        into = local - day * _DAY - self.lunch_start[ix]
        ln = self.lunch_len[ix]
        on_break = (into >= 0) & (into < ln)
        paused = day * ln + np.clip(into, 0.0, ln)
        s = np.mod(tt - paused + self.phase[ix], self.period[ix])
        return np.asarray(s), np.asarray(on_break)

    def fixes(self, t: npt.ArrayLike, idx: IntArray | None = None) -> dict[str, Any]:
        """The fixes of workers ``idx`` (default all) at time(s) ``t`` as a dict of arrays."""
        ix = np.arange(len(self)) if idx is None else np.asarray(idx, dtype=np.int64)
        tt = np.broadcast_to(np.asarray(t, dtype=np.float64), ix.shape).copy()
        sid, seed, m = self.staff_id[ix], self.seed, self.model
        s, on_break = self.loop_time(tt, ix)
        lo, hi = self.start[ix], self.start[ix + 1] - 2
        i = np.searchsorted(self._key, self._base[ix] + s, side="right") - 1
        i = np.clip(i, lo, hi)
        t0, t1 = self.tau[i], self.tau[i + 1]
        dt = t1 - t0
        f = np.clip(np.divide(s - t0, dt, out=np.zeros_like(s), where=dt > 0), 0.0, 1.0)
        lon = self.lon[i] + f * (self.lon[i + 1] - self.lon[i])
        lat = self.lat[i] + f * (self.lat[i + 1] - self.lat[i])
        kind = self.seg_kind[i]
        moving = (kind == MOVE) & ~on_break & (self.seg_speed[i] > 0)
        state = np.where(on_break, 2, np.where(kind == DWELL, 1, 0)).astype(np.int8)
        t_ms = np.round(tt * 1000.0).astype(np.int64)
        speed = np.where(moving, self.seg_speed[i] * (1.0 + 0.08 * _normal(seed, sid, 20, t_ms)), 0.0)
        speed = np.maximum(speed, 0.0)
        bearing = np.where(moving, (self.seg_bearing[i] + 4.0 * _normal(seed, sid, 21, t_ms)) % 360.0, 0.0)
        acc = self.acc_base[ix] * np.exp(0.35 * _normal(seed, sid, 22, t_ms))
        acc = np.where(state == 1, acc * m.indoor_accuracy_factor, acc)
        acc = np.clip(acc, *m.accuracy_range_m)
        sigma = acc / 1.5
        dx = sigma * _normal(seed, sid, 23, t_ms)
        dy = sigma * _normal(seed, sid, 24, t_ms)
        lat_n = lat + dy / _M_PER_DEG_LAT
        lon_n = lon + dx / (_M_PER_DEG_LAT * np.cos(np.radians(lat)))
        alt = self.alt_base[ix] + 1.5 * _normal(seed, sid, 25, t_ms)
        cycle = self.batt_drain_s[ix] + self.batt_charge_s[ix]
        u = np.mod(tt + self.batt_phase[ix], cycle)
        charging = u >= self.batt_drain_s[ix]
        span = 100.0 - m.battery_low
        battery = np.where(
            charging,
            m.battery_low + span * (u - self.batt_drain_s[ix]) / self.batt_charge_s[ix],
            100.0 - span * u / self.batt_drain_s[ix],
        )
        online = ~(self.flaky[ix] & (np.mod(tt + self.off_phase[ix], self.off_period[ix]) < self.off_len[ix]))
        return {
            "idx": ix,
            "ts": tt,
            "lon": lon_n,
            "lat": lat_n,
            "speed": speed,
            "bearing": bearing,
            "altitude": alt,
            "accuracy": acc,
            "battery": np.round(battery, 1),
            "charging": charging,
            "online": online,
            "state": state,
        }

    def positions_at(self, t: float | npt.ArrayLike) -> pd.DataFrame:
        """Every worker's fix at unix time t (a scalar, or one time per worker): device_id,
        staff_id, ts, lon, lat (WGS84), speed (m/s), bearing, altitude, accuracy (m), battery (%),
        charging, online, state (patrol | visit | break)."""
        fx = self.fixes(t)
        ix = fx["idx"]
        return pd.DataFrame(
            {
                "device_id": self.device_id[ix],
                "staff_id": self.staff_id[ix],
                "ts": fx["ts"],
                "lon": fx["lon"],
                "lat": fx["lat"],
                "speed": fx["speed"],
                "bearing": fx["bearing"],
                "altitude": fx["altitude"],
                "accuracy": fx["accuracy"],
                "battery": fx["battery"],
                "charging": fx["charging"],
                "online": fx["online"],
                "state": pd.Categorical.from_codes(fx["state"], categories=pd.Index(STATES)),
            }
        )

    def route(self, i: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        """Worker i's loop: lon, lat and loop time of its vertices."""
        a, b = int(self.start[i]), int(self.start[i + 1])
        return self.lon[a:b], self.lat[a:b], self.tau[a:b]

    def route_frame(self) -> gpd.GeoDataFrame:
        """One row per worker: staff_id, device_id, role, mode, vehicle, length_m, period_s and the
        loop as a LineString (EPSG:4326) — for maps and checks."""
        n = len(self)
        coords = np.column_stack([self.lon, self.lat])
        owner = np.repeat(np.arange(n), np.diff(self.start))
        lines: ObjArray = (
            np.asarray(shapely.linestrings(coords, indices=owner), dtype=object)
            if n
            else np.empty(0, dtype=object)
        )
        return gpd.GeoDataFrame(
            {
                "staff_id": self.staff_id,
                "device_id": self.device_id,
                "role": self.role,
                "mode": self.mode,
                "vehicle": self.vehicle,
                "length_m": self.dist[self.start[1:] - 1] if n else np.empty(0),
                "period_s": self.period,
            },
            geometry=list(lines),
            crs="EPSG:4326",
        )

    def nbytes(self) -> int:
        """Approximate memory of the route arrays, in bytes."""
        arrays = (
            self.lon,
            self.lat,
            self.tau,
            self.dist,
            self.seg_speed,
            self.seg_bearing,
            self.seg_kind,
            self._key,
        )
        return int(sum(a.nbytes for a in arrays))


def _incidence(graph: RoadGraph) -> tuple[IntArray, IntArray]:
    """CSR-style node → incident edge ids (indptr, edge ids)."""
    ends = graph.edges.ravel()
    order = np.argsort(ends, kind="stable")
    indptr = np.searchsorted(ends[order], np.arange(graph.n_nodes + 1))
    return indptr.astype(np.int64), (order // 2).astype(np.int64)


def _edges_within(graph: RoadGraph, incident: tuple[IntArray, IntArray], nodes: IntArray) -> IntArray:
    """Edges with both end nodes in ``nodes`` (sorted unique node ids)."""
    if nodes.size == 0:
        return np.empty(0, dtype=np.int64)
    indptr, ids = incident
    starts, stops = indptr[nodes], indptr[nodes + 1]
    counts = stops - starts
    pos = np.repeat(starts - np.r_[0, np.cumsum(counts)[:-1]], counts) + np.arange(int(counts.sum()))
    cand = np.unique(ids[pos])
    both = np.isin(graph.edges[cand], nodes).all(axis=1)
    return np.asarray(cand[both], dtype=np.int64)


def _read_area_frames(
    store: Store, staff: pd.DataFrame, model: PatrolModel
) -> tuple[pd.DataFrame, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """staff_grids of the staff, their grids and the units of staff without a grid (lon/lat)."""
    sg = store.read("staff_grids")
    sg = sg[sg["staff_id"].isin(staff["id"])]
    codes = sorted(set(sg["grid_code"].astype(str)))
    if len(codes) > 2000:
        grids = store.read("grids", columns=["code", "unit_code", "geom"])
        grids = grids[grids["code"].isin(codes)]
    elif codes:
        grids = store.read("grids", columns=["code", "unit_code", "geom"], where={"code": codes})
    else:
        grids = store.read("grids", columns=["code", "unit_code", "geom"], limit=0)
    grids = grids[grids.geometry.notna() & ~grids.geometry.is_empty]
    sg = sg[sg["grid_code"].isin(grids["code"])]
    no_grid = staff[~staff["id"].isin(sg["staff_id"])]
    units_needed = sorted(set(no_grid["unit_code"].dropna().astype(str)))
    if units_needed:
        units = store.read("admin_units", columns=["code", "geom"], where={"code": units_needed})
    else:
        units = store.read("admin_units", columns=["code", "geom"], limit=0)
    return sg, grids, units


def plan_patrols(
    store: Store,
    *,
    staff_ids: Sequence[int] | None = None,
    limit: int | None = None,
    on_duty_only: bool = True,
    seed: int = 0,
    model: PatrolModel | None = None,
    progress: Callable[[str, int], None] | None = None,
) -> Patrols:
    """Plan a patrol loop for each selected staff member (see the module docstring).

    ``staff_ids`` restricts to those staff, ``on_duty_only`` to staff on duty, ``limit`` keeps the
    first n (by id) of what is left. Staff without a device id are skipped. Deterministic for a
    seed: a worker's loop depends on the seed, its staff id and the map, not on who else is planned.
    """
    m = model or PatrolModel()
    tick = progress or (lambda stage, n: None)
    staff = store.read("staff", columns=["id", "role", "unit_code", "device_id", "on_duty"])
    if on_duty_only:
        staff = staff[staff["on_duty"].fillna(False).astype(bool)]
    if staff_ids is not None:
        staff = staff[staff["id"].isin([int(s) for s in staff_ids])]
    no_device = staff["device_id"].isna() | (staff["device_id"].astype(str).str.strip() == "")
    if no_device.any():
        log.warning("skipping %d staff without a device id", int(no_device.sum()))
        staff = staff[~no_device]
    staff = staff.sort_values("id")
    if limit is not None:
        staff = staff.head(limit)
    staff = staff.reset_index(drop=True)
    if staff.empty:
        return _empty_patrols(seed, m)

    sg, grids, units = _read_area_frames(store, staff, m)
    frames = [f for f in (grids, units) if len(f)]
    if not frames:
        raise ValueError("the selected staff have neither grids nor units with a geometry")
    lonlat_all = gpd.GeoDataFrame(
        pd.concat([f[["geometry"]] for f in frames]), geometry="geometry", crs="EPSG:4326"
    )
    crs = metric_crs(lonlat_all)
    minx, miny, maxx, maxy = (float(v) for v in lonlat_all.total_bounds)
    pad = 0.01  # ~1 km around, so roads crossing the edge are whole enough to route
    bbox = (minx - pad, miny - pad, maxx + pad, maxy + pad)
    roads = store.read("roads", bbox=bbox, columns=["id", "geom"])
    blds = store.read("buildings", bbox=bbox, columns=["id", "grid_code", "unit_code", "households", "geom"])
    tick("read", 1)

    grids_m = to_metric(grids, crs=crs).reset_index(drop=True)
    units_m = to_metric(units, crs=crs).reset_index(drop=True)
    graph = build_road_graph(to_metric(roads, crs=crs).geometry.to_numpy(), max_edge_m=m.max_edge_m)
    blds_m = to_metric(blds, crs=crs).reset_index(drop=True)
    cent = shapely.centroid(blds_m.geometry.to_numpy())
    bld = _Buildings(
        blds_m["id"].to_numpy(dtype=np.int64),
        np.asarray(shapely.get_coordinates(cent), dtype=np.float64).reshape(-1, 2),
        blds_m["households"].fillna(0).to_numpy(dtype=np.float64),
    )
    tick("graph", 1)

    # the areas: grids and units grown by the buffer; their road nodes
    shapes = np.concatenate([grids_m.geometry.to_numpy(), units_m.geometry.to_numpy()])
    n_grids = len(grids_m)
    grown = shapely.buffer(shapes, m.area_buffer_m, quad_segs=4)
    if graph.n_edges:
        node_tree = shapely.STRtree(np.asarray(shapely.points(graph.xy), dtype=object))
        a_idx, n_idx = node_tree.query(grown, predicate="contains")
    else:
        a_idx = n_idx = np.empty(0, dtype=np.int64)
    order = np.argsort(a_idx, kind="stable")
    a_idx, n_idx = a_idx[order], n_idx[order]
    cuts = np.searchsorted(a_idx, np.arange(len(shapes) + 1))
    nodes_of = [n_idx[cuts[k] : cuts[k + 1]] for k in range(len(shapes))]
    incident = _incidence(graph)
    grid_pos = {c: i for i, c in enumerate(grids_m["code"].astype(str))}
    unit_pos = {c: n_grids + i for i, c in enumerate(units_m["code"].astype(str))}
    shape_centre = np.asarray(shapely.get_coordinates(shapely.centroid(shapes)), dtype=np.float64).reshape(
        -1, 2
    )
    shape_area = shapely.area(shapes)

    # buildings per grid / per unit prefix
    bgrid = blds_m["grid_code"].astype("string").fillna("")
    b_by_grid: dict[Any, Any] = pd.Series(np.arange(len(blds_m))).groupby(bgrid.to_numpy()).indices
    bunit = blds_m["unit_code"].astype("string").fillna("")
    b_by_prefix: dict[int, dict[Any, Any]] = {}
    for code in units_m["code"].astype(str):
        if len(code) not in b_by_prefix:
            b_by_prefix[len(code)] = (
                pd.Series(np.arange(len(blds_m))).groupby(bunit.str[: len(code)].to_numpy()).indices
            )

    grids_of: dict[int, list[str]] = {}
    for sid_, code_ in zip(sg["staff_id"].tolist(), sg["grid_code"].astype(str).tolist(), strict=True):
        grids_of.setdefault(int(sid_), []).append(code_)
    for codes_ in grids_of.values():
        codes_.sort()
    sid_arr = staff["id"].to_numpy(dtype=np.int64)
    unit_level = ~np.isin(sid_arr, np.asarray(list(grids_of), dtype=np.int64))
    u_vehicle = _uniform(seed, sid_arr, 13)
    riding = np.where(unit_level, u_vehicle < m.ebike_share_unit, u_vehicle < m.ebike_share)
    walk = np.clip(m.walk_speed[0] + m.walk_speed[1] * _normal(seed, sid_arr, 14), *m.walk_speed_range)
    ride = np.clip(m.ebike_speed[0] + m.ebike_speed[1] * _normal(seed, sid_arr, 15), *m.ebike_speed_range)
    speed = np.where(riding, ride, walk)

    routes: list[_Route] = []
    for k, row in enumerate(staff.itertuples(index=False)):
        sid = int(sid_arr[k])
        if not unit_level[k]:
            pos = [grid_pos[c] for c in grids_of[sid] if c in grid_pos]
            bl = [b_by_grid.get(c) for c in grids_of[sid]]
            b_idx = np.concatenate([b for b in bl if b is not None] or [np.empty(0, dtype=np.int64)])
        else:
            code = str(row.unit_code) if row.unit_code is not None else ""
            pos = [unit_pos[code]] if code in unit_pos else []
            b_idx = (
                b_by_prefix.get(len(code), {}).get(code, np.empty(0, dtype=np.int64))
                if code
                else np.empty(0, dtype=np.int64)
            )
        b_idx = np.asarray(b_idx, dtype=np.int64)
        if pos:
            wts = shape_area[pos] + 1e-9
            centre = (shape_centre[pos] * wts[:, None]).sum(axis=0) / wts.sum()
            if unit_level[k] and b_idx.size:
                centre = bld.xy[b_idx].mean(axis=0)
            area = grown[pos[0]] if len(pos) == 1 else shapely.union_all(grown[pos])
            edges = _edges_within(graph, incident, np.unique(np.concatenate([nodes_of[p] for p in pos])))
        else:
            centre = bld.xy[b_idx].mean(axis=0) if b_idx.size else np.zeros(2)
            area, edges = None, np.empty(0, dtype=np.int64)
        w = _Worker(
            sid,
            float(speed[k]),
            float(walk[k]),
            bool(riding[k]),
            bool(unit_level[k]),
            area,
            centre,
            edges,
            b_idx,
        )
        rng = np.random.default_rng([seed & 0xFFFFFFFF, sid])
        route = _plan_road(w, graph, bld, m, rng) or _plan_buildings(w, bld, m, rng) or _plan_area(w, m, rng)
        routes.append(route)
        if (k + 1) % 1000 == 0:
            tick("plan", 1000)
    tick("plan", len(staff) % 1000)
    return _assemble(staff, routes, speed, riding, crs.to_string(), seed, m)


def _assemble(
    staff: pd.DataFrame,
    routes: list[_Route],
    speed: FloatArray,
    riding: BoolArray,
    crs: str,
    seed: int,
    model: PatrolModel,
) -> Patrols:
    xs, taus, dists, kinds, speeds, bears, counts = [], [], [], [], [], [], []
    stop_rows: list[tuple[int, int, float, float, float, float]] = []
    for k, r in enumerate(routes):
        tau = np.r_[0.0, np.cumsum(r.dur)]
        dist = polyline_lengths(r.xy)
        keep = simplify_route(r.xy, r.kind, r.speed)
        xy = r.xy[keep]
        kind = np.r_[r.kind, DWELL][keep]
        tau_k, dist_k = tau[keep], dist[keep]
        seg_speed = np.zeros(xy.shape[0])
        dt = np.diff(tau_k)
        dd = np.diff(dist_k)
        seg_speed[:-1] = np.divide(dd, dt, out=np.zeros_like(dd), where=dt > 0)
        seg_speed[:-1][kind[:-1] == DWELL] = 0.0
        bear = np.zeros(xy.shape[0])
        bear[:-1] = bearings(xy)
        xs.append(xy)
        taus.append(tau_k)
        dists.append(dist_k)
        kinds.append(kind)
        speeds.append(seg_speed)
        bears.append(bear)
        counts.append(xy.shape[0])
        for b, x, y, t0, t1 in r.stops:
            stop_rows.append((k, b, x, y, t0, t1))
    xy_all = np.vstack(xs)
    pts = gpd.GeoSeries(shapely.points(xy_all), crs=crs).to_crs("EPSG:4326")
    lonlat = np.asarray(shapely.get_coordinates(pts.to_numpy()), dtype=np.float64)
    stops = pd.DataFrame(stop_rows, columns=["worker", "building_id", "x", "y", "t_start", "t_end"])
    if len(stops):
        sp = gpd.GeoSeries(shapely.points(stops[["x", "y"]].to_numpy()), crs=crs).to_crs("EPSG:4326")
        stops["lon"], stops["lat"] = sp.x.to_numpy(), sp.y.to_numpy()
    else:
        stops["lon"], stops["lat"] = [], []
    stops.insert(
        1, "staff_id", staff["id"].to_numpy(dtype=np.int64)[stops["worker"].to_numpy(dtype=np.int64)]
    )
    stops = stops.drop(columns=["x", "y"])
    return Patrols(
        staff_id=staff["id"].to_numpy(dtype=np.int64),
        device_id=staff["device_id"].astype(str).to_numpy(dtype=object),
        role=staff["role"].astype(str).to_numpy(dtype=object),
        mode=np.asarray([r.mode for r in routes], dtype=object),
        vehicle=np.where(riding, "ebike", "walk").astype(object),
        speed=np.asarray(speed, dtype=np.float64),
        start=np.r_[0, np.cumsum(counts)].astype(np.int64),
        lon=np.ascontiguousarray(lonlat[:, 0]),
        lat=np.ascontiguousarray(lonlat[:, 1]),
        tau=np.concatenate(taus),
        dist=np.concatenate(dists),
        seg_speed=np.concatenate(speeds),
        seg_bearing=np.concatenate(bears),
        seg_kind=np.concatenate(kinds).astype(np.uint8),
        stops=stops,
        seed=seed,
        model=model,
        crs=crs,
    )


def _empty_patrols(seed: int, model: PatrolModel) -> Patrols:
    e = np.empty(0)
    return Patrols(
        staff_id=np.empty(0, dtype=np.int64),
        device_id=np.empty(0, dtype=object),
        role=np.empty(0, dtype=object),
        mode=np.empty(0, dtype=object),
        vehicle=np.empty(0, dtype=object),
        speed=e,
        start=np.zeros(1, dtype=np.int64),
        lon=e,
        lat=e,
        tau=e,
        dist=e,
        seg_speed=e,
        seg_bearing=e,
        seg_kind=np.empty(0, dtype=np.uint8),
        stops=pd.DataFrame(columns=["worker", "staff_id", "building_id", "t_start", "t_end", "lon", "lat"]),
        seed=seed,
        model=model,
    )


# --------------------------------------------------------------------------------------------
# sending


@dataclass
class RunStats:
    """What a :func:`run` / :func:`backfill` did. Positions are counted once per submission:
    ``sent = acked + rejected + failed`` and, at the end of a run, every generated position is
    ``acked``, ``rejected``, still ``pending`` (buffered: phone offline or server failing) or,
    for a backfill only, ``lost`` (gave up after its retries)."""

    ticks: int = 0
    positions: int = 0  # fixes generated
    buffered: int = 0  # of which taken while the phone was offline
    requests: int = 0
    osmand_requests: int = 0
    batch_requests: int = 0
    sent: int = 0  # position submissions, retries included
    acked: int = 0  # committed by the server (duplicates included)
    duplicates: int = 0
    rejected: int = 0  # refused with a 4xx (or listed as rejected in a batch answer): dropped
    retried: int = 0  # submissions of positions that had failed before
    failed: int = 0  # submissions that failed (5xx, transport error): kept for a retry
    pending: int = 0  # still buffered when the run ended
    lost: int = 0  # backfill: given up after max_attempts
    sim_start: float | None = None  # simulated unix time of the first tick
    sim_time: float | None = None  # simulated unix time of the last tick
    elapsed_s: float = 0.0  # by the run's clock

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class _Fix:
    __slots__ = (
        "accuracy",
        "altitude",
        "attempts",
        "battery",
        "bearing",
        "buffered",
        "charging",
        "lat",
        "lon",
        "speed",
        "ts",
    )

    def __init__(
        self,
        ts: int,
        lat: float,
        lon: float,
        speed: float,
        bearing: float,
        altitude: float,
        accuracy: float,
        battery: float,
        charging: bool,
        buffered: bool,
    ) -> None:
        self.ts = ts
        self.lat = lat
        self.lon = lon
        self.speed = speed
        self.bearing = bearing
        self.altitude = altitude
        self.accuracy = accuracy
        self.battery = battery
        self.charging = charging
        self.buffered = buffered
        self.attempts = 0


def osmand_query(
    device_id: str,
    ts: int,
    lat: float,
    lon: float,
    speed_ms: float,
    bearing: float,
    altitude: float,
    accuracy: float,
    battery: float,
    charging: bool,
) -> str:
    """The query string of an OsmAnd request as Traccar Client sends it (speed in knots)."""
    return (
        f"id={quote(device_id, safe='')}&timestamp={int(ts)}&lat={lat:.7f}&lon={lon:.7f}"
        f"&speed={speed_ms * KNOTS_PER_MS:.2f}&bearing={bearing:.1f}&altitude={altitude:.1f}"
        f"&accuracy={accuracy:.1f}&batt={battery:.0f}&charge={'true' if charging else 'false'}"
    )


def _position_json(
    dev_json: str,
    ts: int,
    lat: float,
    lon: float,
    speed: float,
    bearing: float,
    altitude: float,
    accuracy: float,
    battery: float,
    charging: bool,
) -> str:
    return (
        f'{{"device_id":{dev_json},"timestamp":{int(ts)},"lat":{lat:.7f},"lon":{lon:.7f},'
        f'"speed":{speed:.2f},"bearing":{bearing:.1f},"altitude":{altitude:.1f},'
        f'"accuracy":{accuracy:.1f},"battery":{battery:.1f},"charging":{"true" if charging else "false"}}}'
    )


def _batch_body(parts: list[str]) -> bytes:
    return ('{"positions":[' + ",".join(parts) + "]}").encode()


def _retryable(status: int) -> bool:
    return status >= 500 or status in (408, 425, 429)


def _detail(r: httpx.Response) -> str:
    try:
        data = r.json()
    except ValueError:
        return r.text[:200]
    if isinstance(data, dict) and "detail" in data:
        return str(data["detail"])[:300]
    return str(data)[:300]


class _Sender:
    """Per-worker queues and the two endpoints; never two requests of one worker in flight."""

    def __init__(
        self,
        clients: list[httpx.AsyncClient],
        base_url: str,
        patrols: Patrols,
        stats: RunStats,
        *,
        batch_size: int,
        max_resend: int,
        headers: dict[str, str] | None = None,
    ) -> None:
        n = len(patrols)
        self.headers = headers or {}
        self.clients = clients  # worker w sends through clients[w % len(clients)]
        self.base = base_url.rstrip("/")
        self.devices = [str(d) for d in patrols.device_id]
        self.dev_json = [json.dumps(d) for d in self.devices]
        self.stats = stats
        self.batch_size = max(1, min(int(batch_size), 1000))
        self.max_resend = max(1, int(max_resend))
        self.queues: list[deque[_Fix]] = [deque() for _ in range(n)]
        self.online = np.ones(n, dtype=bool)
        self.active = np.zeros(n, dtype=bool)
        self._logged = 0

    def log_rejection(self, what: str, detail: str) -> None:
        self._logged += 1
        if self._logged <= 20 or self._logged % 1000 == 0:
            log.warning("rejected %s: %s (%d rejections so far)", what, detail, self._logged)

    async def drain(self, w: int) -> None:
        q = self.queues[w]
        while q and self.online[w]:
            head = q[0]
            if len(q) == 1 and not head.buffered:
                done = await self.send_osmand(w, head)
                if not done:
                    return
                q.popleft()
            elif head.buffered or len(q) > self.max_resend:
                eligible = len(q) if q[-1].buffered else len(q) - 1
                items = [q[i] for i in range(min(eligible, self.batch_size))]
                done = await self.send_batch(w, items)
                if not done:
                    return
                for _ in items:
                    q.popleft()
            else:
                done = await self.send_osmand(w, head)
                if not done:
                    return
                q.popleft()

    async def drain_and_release(self, w: int, sem: asyncio.Semaphore) -> None:
        try:
            await self.drain(w)
        finally:
            self.active[w] = False
            sem.release()

    async def send_osmand(self, w: int, f: _Fix) -> bool:
        """True when the fix is settled (committed or rejected), False to retry it later."""
        st = self.stats
        st.requests += 1
        st.osmand_requests += 1
        st.sent += 1
        if f.attempts:
            st.retried += 1
        f.attempts += 1
        q = osmand_query(
            self.devices[w],
            f.ts,
            f.lat,
            f.lon,
            f.speed,
            f.bearing,
            f.altitude,
            f.accuracy,
            f.battery,
            f.charging,
        )
        try:
            r = await self.clients[w % len(self.clients)].post(f"{self.base}/osmand?{q}", content=b"",
                                                               headers=self.headers)
        except httpx.HTTPError as e:
            st.failed += 1
            log.debug("osmand %s@%d failed: %r", self.devices[w], f.ts, e)
            return False
        if r.status_code < 300:
            st.acked += 1
            return True
        if _retryable(r.status_code):
            st.failed += 1
            return False
        st.rejected += 1
        self.log_rejection(f"osmand {self.devices[w]}@{f.ts} ({r.status_code})", _detail(r))
        return True

    async def send_batch(self, w: int, items: list[_Fix]) -> bool:
        st = self.stats
        n = len(items)
        st.requests += 1
        st.batch_requests += 1
        st.sent += n
        dj = self.dev_json[w]
        parts = []
        for f in items:
            if f.attempts:
                st.retried += 1
            f.attempts += 1
            parts.append(
                _position_json(
                    dj, f.ts, f.lat, f.lon, f.speed, f.bearing, f.altitude, f.accuracy, f.battery, f.charging
                )
            )
        ok = await post_batch(
            self.clients[w % len(self.clients)],
            self.base,
            _batch_body(parts),
            n,
            st,
            self.log_rejection,
            self.devices[w],
            self.headers,
        )
        return ok


async def post_batch(
    client: httpx.AsyncClient,
    base: str,
    body: bytes,
    n: int,
    st: RunStats,
    on_reject: Callable[[str, str], None],
    label: str,
    headers: dict[str, str] | None = None,
) -> bool:
    """POST one batch; count the outcome. True when settled, False when it should be retried."""
    try:
        r = await client.post(
            f"{base}/api/positions", content=body, headers={"Content-Type": "application/json", **(headers or {})}
        )
    except httpx.HTTPError as e:
        st.failed += n
        log.debug("batch of %d (%s) failed: %r", n, label, e)
        return False
    if r.status_code < 300:
        try:
            data = r.json()
        except ValueError:
            data = {}
        rejected = data.get("rejected") or [] if isinstance(data, dict) else []
        n_rej = min(len(rejected), n)
        st.acked += n - n_rej
        st.rejected += n_rej
        st.duplicates += int(data.get("duplicates") or 0) if isinstance(data, dict) else 0
        for item in rejected[:n_rej]:
            detail = item.get("detail") if isinstance(item, dict) else item
            index = item.get("index") if isinstance(item, dict) else None
            on_reject(f"batch position {index} ({label})", str(detail))
        return True
    if _retryable(r.status_code):
        st.failed += n
        return False
    st.rejected += n
    on_reject(f"batch of {n} ({label}, {r.status_code})", _detail(r))
    return True


CONNECTIONS_PER_CLIENT = 4


def _new_clients(concurrency: int, timeout_s: float) -> list[httpx.AsyncClient]:
    """HTTP/1.1 keep-alive clients for ``concurrency`` connections, at most
    :data:`CONNECTIONS_PER_CLIENT` each: httpcore's pool does work proportional to (requests in
    flight × connections) per request, so one pool of 64 costs ~4 ms of CPU a request against
    ~1 ms for small pools (measured with httpx 0.28.1 / httpcore 1.0.9)."""
    n = max(1, math.ceil(max(1, concurrency) / CONNECTIONS_PER_CLIENT))
    per = max(1, math.ceil(max(1, concurrency) / n))
    limits = httpx.Limits(max_connections=per, max_keepalive_connections=per, keepalive_expiry=30.0)
    return [httpx.AsyncClient(limits=limits, timeout=httpx.Timeout(timeout_s), http2=False) for _ in range(n)]


def default_start(now: float, speedup: float, duration_s: float | None) -> float:
    """Where simulated time starts when not given: now, or — faster than real time over a known
    duration — early enough that the last fix is stamped about now (never in the server's future)."""
    if speedup > 1 and duration_s is not None:
        return now - duration_s + duration_s / speedup
    return now


async def run(
    base_url: str,
    patrols: Patrols,
    *,
    interval_s: float = 30,
    speedup: float = 1.0,
    duration_s: float | None = None,
    concurrency: int = 64,
    client: httpx.AsyncClient | None = None,
    clock: Callable[[], float] = time.time,
    on_tick: Callable[[RunStats], None] | None = None,
    start: float | datetime | None = None,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    batch_size: int = 1000,
    max_resend: int = 5,
    timeout_s: float = 10.0,
    slot_s: float = 0.05,
    stats: RunStats | None = None,
    token: str | None = None,
) -> RunStats:
    """Drive the patrols live: a fix per worker every ``interval_s`` of simulated time, sent as
    Traccar Client would (see the module docstring).

    Simulated time starts at ``start`` and runs ``speedup`` times faster than ``clock``; by default
    it starts now, or with ``speedup > 1`` and a ``duration_s`` so that the run ends now-ish in
    simulated time (:func:`default_start`: the server refuses fixes from the future). Each worker
    reports at its own offset inside the interval. ``duration_s`` (simulated
    seconds) ends the run, else it runs until cancelled. ``client`` is used as given (not closed);
    otherwise HTTP/1.1 keep-alive clients with ``concurrency`` connections in all are made
    (:func:`_new_clients`; one client with a large pool is CPU-bound well below 500 requests/s). ``on_tick``
    is called with the running stats after each tick has been dispatched; ``sleep`` is how the run
    waits (tests pass one that advances a fake ``clock``). ``token``: sent as ``Authorization:
    Bearer`` (default: env GRIDCONSOLE_API_TOKEN; a gateway's token, see the module docstring).
    """
    if interval_s <= 0 or speedup <= 0:
        raise ValueError("interval_s and speedup must be positive")
    st = stats if stats is not None else RunStats()
    clients = [client] if client is not None else _new_clients(concurrency, timeout_s)
    sender = _Sender(clients, base_url, patrols, st, batch_size=batch_size, max_resend=max_resend,
                     headers=auth_headers(token))  # fmt: skip
    n = len(patrols)
    offsets = patrols.send_offsets(interval_s)
    order = np.argsort(offsets, kind="stable")
    # one semaphore per client: at most `concurrency` workers sending, spread over the clients
    per_client = max(1, math.ceil(max(1, concurrency) / len(clients)))
    sems = [asyncio.Semaphore(per_client) for _ in clients]
    tasks: set[asyncio.Task[None]] = set()
    real0 = clock()
    sim0 = float(math.floor(_unix(start) if start is not None else default_start(real0, speedup, duration_s)))
    if speedup > 1 and duration_s is None:
        log.warning(
            "speedup %g without a duration: simulated time will run ahead of the clock, and servers "
            "refuse fixes from the future",
            speedup,
        )
    st.sim_start = sim0
    end = sim0 + duration_s if duration_s is not None else math.inf
    if n:
        slot_of = np.floor(offsets[order] / speedup / max(slot_s, 1e-6)).astype(np.int64)
        groups = np.split(order, np.flatnonzero(np.diff(slot_of)) + 1)
    else:
        groups = []

    async def start_drain(w: int) -> None:
        sem = sems[w % len(sems)]
        await sem.acquire()
        sender.active[w] = True
        task = asyncio.create_task(sender.drain_and_release(w, sem))
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    try:
        k = 0
        while sim0 + k * interval_s < end:
            t_tick = sim0 + k * interval_s
            ts = t_tick + offsets.astype(np.float64)
            fx = patrols.fixes(ts)
            cols = [
                fx[c].tolist() for c in ("lat", "lon", "speed", "bearing", "altitude", "accuracy", "battery")
            ]
            lat, lon, spd, brg, alt, acc, bat = cols
            chg, onl = fx["charging"].tolist(), fx["online"].tolist()
            for group in groups:
                first = int(group[0])
                due = real0 + (t_tick - sim0 + float(offsets[first])) / speedup
                delay = due - clock()
                if delay > 0:
                    await sleep(delay)
                for w in group.tolist():
                    t_w = int(ts[w])
                    if t_w >= end:
                        continue
                    online = bool(onl[w])
                    sender.queues[w].append(
                        _Fix(
                            t_w,
                            lat[w],
                            lon[w],
                            spd[w],
                            brg[w],
                            alt[w],
                            acc[w],
                            bat[w],
                            bool(chg[w]),
                            not online,
                        )
                    )
                    st.positions += 1
                    if not online:
                        st.buffered += 1
                    sender.online[w] = online
                    if online and not sender.active[w]:
                        await start_drain(w)
            st.ticks += 1
            st.sim_time = t_tick
            if on_tick is not None:
                on_tick(st)
            k += 1
        while tasks:
            await asyncio.gather(*list(tasks))
        # last chances for what failed near the end (phones still offline keep their buffers)
        for attempt in range(3):
            todo = [w for w in range(n) if sender.queues[w] and sender.online[w]]
            if not todo:
                break
            if attempt:
                await sleep(min(5.0, interval_s / speedup))
            for w in todo:
                await start_drain(w)
            while tasks:
                await asyncio.gather(*list(tasks))
    finally:
        for task in list(tasks):
            task.cancel()
        if tasks:
            await asyncio.gather(*list(tasks), return_exceptions=True)
        st.pending = sum(len(q) for q in sender.queues)
        st.elapsed_s = clock() - real0
        if client is None:
            for c in clients:
                await c.aclose()
    return st


def simulate(
    base_url: str,
    patrols: Patrols,
    *,
    interval_s: float = 30,
    speedup: float = 1.0,
    duration_s: float | None = None,
    concurrency: int = 64,
    client: httpx.AsyncClient | None = None,
    clock: Callable[[], float] = time.time,
    on_tick: Callable[[RunStats], None] | None = None,
    start: float | datetime | None = None,
    stats: RunStats | None = None,
    token: str | None = None,
) -> RunStats:
    """:func:`run` from synchronous code (a CLI); Ctrl-C stops it and returns the stats so far."""
    st = stats if stats is not None else RunStats()
    try:
        asyncio.run(
            run(
                base_url,
                patrols,
                interval_s=interval_s,
                speedup=speedup,
                duration_s=duration_s,
                concurrency=concurrency,
                client=client,
                clock=clock,
                on_tick=on_tick,
                start=start,
                stats=st,
                token=token,
            )
        )
    except KeyboardInterrupt:
        log.info("simulation stopped: %s", st.as_dict())
    return st


def _unix(t: float | datetime | pd.Timestamp) -> float:
    if isinstance(t, datetime):  # pd.Timestamp is a datetime
        if t.tzinfo is None:
            raise ValueError("datetimes must be timezone-aware")
        return float(t.timestamp())
    return float(t)


async def abackfill(
    base_url: str,
    patrols: Patrols,
    *,
    start: float | datetime,
    end: float | datetime,
    interval_s: float = 30,
    client: httpx.AsyncClient | None = None,
    concurrency: int = 8,
    batch_size: int = 1000,
    max_attempts: int = 5,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    timeout_s: float = 30.0,
    on_batch: Callable[[RunStats], None] | None = None,
    stats: RunStats | None = None,
    token: str | None = None,
) -> RunStats:
    """Upload every worker's fixes of [start, end) (one per ``interval_s``, at the worker's offset
    in the interval, as :func:`run` would have made them) through the batch endpoint, ≤
    ``batch_size`` (1,000) per request. Workers are split into ``concurrency`` lanes; a lane sends
    its workers' histories oldest first, one request at a time, so each device's positions arrive
    in order. A failed request is retried up to ``max_attempts`` times with back-off. ``token`` as
    for :func:`run`."""
    t0, t1 = _unix(start), _unix(end)
    if interval_s <= 0:
        raise ValueError("interval_s must be positive")
    st = stats if stats is not None else RunStats()
    st.sim_start, st.sim_time = t0, t1
    n = len(patrols)
    if n == 0 or t1 <= t0:
        return st
    clients = [client] if client is not None else _new_clients(concurrency, timeout_s)
    size = max(1, min(int(batch_size), 1000))
    offsets = patrols.send_offsets(interval_s).astype(np.float64)
    k_ticks = int(math.ceil((t1 - t0) / interval_s))
    st.ticks = k_ticks
    dev_json = [json.dumps(str(d)) for d in patrols.device_id]
    base = base_url.rstrip("/")
    headers = auth_headers(token)
    logged = [0]

    def on_reject(what: str, detail: str) -> None:
        logged[0] += 1
        if logged[0] <= 20 or logged[0] % 1000 == 0:
            log.warning("backfill rejected %s: %s", what, detail)

    async def send(http: httpx.AsyncClient, parts: list[str]) -> None:
        body = _batch_body(parts)
        for attempt in range(max(1, max_attempts)):
            st.requests += 1
            st.batch_requests += 1
            st.sent += len(parts)
            if attempt:
                st.retried += len(parts)
            if await post_batch(http, base, body, len(parts), st, on_reject, "backfill", headers):
                if on_batch is not None:
                    on_batch(st)
                return
            if attempt + 1 < max_attempts:
                await sleep(min(30.0, 0.5 * 2**attempt))
        st.lost += len(parts)
        log.error("backfill: gave up on a batch of %d positions after %d attempts", len(parts), max_attempts)

    async def lane(http: httpx.AsyncClient, workers: IntArray) -> None:
        group = max(1, 20_000 // max(1, k_ticks))
        parts: list[str] = []
        for g0 in range(0, workers.size, group):
            ws = workers[g0 : g0 + group]
            idx = np.repeat(ws, k_ticks)
            tt = t0 + np.tile(np.arange(k_ticks, dtype=np.float64) * interval_s, ws.size) + offsets[idx]
            keep = tt < t1
            idx, tt = idx[keep], tt[keep]
            fx = patrols.fixes(tt, idx)
            cols = [
                fx[c].tolist()
                for c in ("ts", "lat", "lon", "speed", "bearing", "altitude", "accuracy", "battery")
            ]
            tsl, lat, lon, spd, brg, alt, acc, bat = cols
            chg = fx["charging"].tolist()
            st.positions += idx.size
            for j, w in enumerate(idx.tolist()):
                parts.append(
                    _position_json(
                        dev_json[w],
                        int(tsl[j]),
                        lat[j],
                        lon[j],
                        spd[j],
                        brg[j],
                        alt[j],
                        acc[j],
                        bat[j],
                        chg[j],
                    )
                )
                if len(parts) == size:
                    await send(http, parts)
                    parts = []
        if parts:
            await send(http, parts)

    try:
        lanes = [a.astype(np.int64) for a in np.array_split(np.arange(n), max(1, min(concurrency, n)))]
        await asyncio.gather(*(lane(clients[i % len(clients)], a) for i, a in enumerate(lanes) if a.size))
    finally:
        if client is None:
            for c in clients:
                await c.aclose()
    return st


def backfill(
    base_url: str,
    patrols: Patrols,
    *,
    start: float | datetime,
    end: float | datetime,
    interval_s: float = 30,
    client: httpx.AsyncClient | None = None,
    concurrency: int = 8,
    on_batch: Callable[[RunStats], None] | None = None,
    token: str | None = None,
) -> RunStats:
    """:func:`abackfill` from synchronous code."""
    return asyncio.run(
        abackfill(
            base_url,
            patrols,
            start=start,
            end=end,
            interval_s=interval_s,
            client=client,
            concurrency=concurrency,
            on_batch=on_batch,
            token=token,
        )
    )
