"""CCTV geometry: fields of view, what a camera really sees past buildings, which cameras see a
place, coverage of roads and open space, blind spots, and where to add cameras.

Why: "25 cameras, no blind spots" is a claim a command center must be able to check. A camera's
nominal field of view is a sector (apex at the camera, ``direction`` degrees clockwise from north,
``fov`` degrees wide, ``range_m`` metres deep), but a building in front of it hides everything
behind; coverage counted on bare sectors overstates what the wall of screens can show.

Cameras (input of every function here)
--------------------------------------
A GeoDataFrame with a CRS, one row per camera, Point geometry, columns

* ``id`` (required);
* ``direction`` — degrees clockwise from north; null: the camera turns (a dome), full circle;
* ``fov`` — field-of-view angle in degrees, ``0 < fov``; null or ``>= 360``: full circle;
* ``range_m`` — how far it usefully sees, metres, ``> 0``; null: ``default_range_m``;
* ``online``, ``name`` (optional).

Rows with no usable position (null, empty, NaN) see nothing and are dropped; a non-positive
``fov`` or ``range_m`` is an error (:class:`CameraGeometryError`, naming the ids). Directions are
taken against the metric CRS's grid north (in UTM the difference from true north is under 2° in
China's zones; the registry's directions are rarely better than 5°).

Occlusion
---------
Building footprints block the view: a point is visible when it lies in the sector and the
segment from the camera to it does not pass through a building's interior. A building that
contains the camera (a camera mounted on or in it, or a position a few metres off) is ignored for
that camera; a building that contains the *target* point does not block it (the camera sees the
wall where the incident is reported). The shadow of a convex footprint is the convex hull of the
footprint and far points on its rays (exact); of any other footprint, the union of its edges'
shadows (exact for concave shapes and courtyards). Arcs are polygons with a vertex every
``step_deg`` degrees (5°: areas 0.13 % under the true sector; the straight sides are exact).

Everything is measured in metres in a projected CRS (:func:`geo.crs.metric_crs` of the input
unless ``crs=`` says otherwise); inputs are never modified.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from shapely.geometry import LineString, MultiLineString, Point, Polygon
from shapely.geometry.base import BaseGeometry

from geo._types import BoolArray, FloatArray, IntArray, ObjArray
from geo.crs import metric_crs, require_crs, utm_crs

__all__ = [
    "CameraGeometryError",
    "blind_spots",
    "cameras_seeing",
    "coverage",
    "sector",
    "suggest_cameras",
    "uncovered_roads",
    "view_sectors",
    "visible_areas",
]

DEFAULT_RANGE_M = 50.0
STEP_DEG = 5.0
SEE_BAND_M = 10.0  # cameras_seeing: distances in the same 10 m band rank by angle
_EPS = 1e-6

Progress = Callable[[int, int], None]


class CameraGeometryError(ValueError):
    """Cameras that cannot be drawn: a non-positive field of view or range (ids named)."""


# --------------------------------------------------------------------------------------------
# Inputs
# --------------------------------------------------------------------------------------------


def _column(frame: pd.DataFrame, name: str) -> FloatArray:
    if name not in frame.columns:
        return np.full(len(frame), np.nan)
    return pd.to_numeric(frame[name], errors="coerce").to_numpy(dtype=float)


def _work_crs(*frames: Any) -> pyproj.CRS:
    """The metric CRS of the first non-empty frame (or of the first frame when all are empty)."""
    for f in frames:
        require_crs(f)
    for f in frames:
        if len(f) and np.isfinite(np.asarray(f.total_bounds, dtype=float)).all():
            crs = pyproj.CRS.from_user_input(f.crs)
            return crs if crs.is_projected else metric_crs(f)
    crs = pyproj.CRS.from_user_input(frames[0].crs)
    if crs.is_projected:
        return crs
    return utm_crs(0.0, 0.0)  # all empty: any metric CRS will do


_KINDS = {"polygon": (3, 6), "line": (1, 5)}  # shapely type ids: (Multi)Polygon, (Multi)LineString


def _geoms(frame: gpd.GeoDataFrame | gpd.GeoSeries, crs: pyproj.CRS, *, kind: str | None = None) -> ObjArray:
    """Usable geometries of ``frame`` in ``crs``: nulls, empties, non-finite coordinates (NaN,
    or a swapped lat/lon that does not project) and, with ``kind``, other geometry types dropped;
    invalid ones repaired."""
    require_crs(frame)
    series = frame.geometry if isinstance(frame, gpd.GeoDataFrame) else frame
    if len(series) == 0:
        return np.empty(0, dtype=object)
    arr = np.asarray(series.to_crs(crs).array, dtype=object)
    ok = ~(shapely.is_missing(arr) | shapely.is_empty(arr))
    if kind is not None:
        ok &= np.isin(shapely.get_type_id(arr), _KINDS[kind])
    coords, where = shapely.get_coordinates(arr[ok], return_index=True)
    bad = np.unique(where[~np.isfinite(coords).all(axis=1)])
    if len(bad):
        ok[np.flatnonzero(ok)[bad]] = False
    arr = arr[ok]
    invalid = ~shapely.is_valid(arr)
    if invalid.any():
        arr = arr.copy()
        arr[invalid] = shapely.make_valid(arr[invalid])
        if kind is not None:  # a repaired bow-tie is a MultiPolygon; a collapsed one may be a line
            arr = np.asarray([_only(g, kind) for g in arr], dtype=object)
            arr = arr[~(shapely.is_missing(arr) | shapely.is_empty(arr))]
    return arr


def _only(g: BaseGeometry, kind: str) -> BaseGeometry | None:
    if shapely.get_type_id(g) in _KINDS[kind]:
        return g
    parts = [p for p in shapely.get_parts(g) if shapely.get_type_id(p) in _KINDS[kind]]
    return shapely.union_all(parts) if parts else None


class _Cams:
    """Cameras in a metric CRS as arrays (rows without a usable position dropped)."""

    def __init__(self, cameras: gpd.GeoDataFrame, crs: pyproj.CRS, default_range_m: float) -> None:
        require_crs(cameras)
        if "id" not in cameras.columns:
            raise CameraGeometryError("cameras need an 'id' column")
        if not default_range_m > 0:
            raise CameraGeometryError("default_range_m must be positive")
        pts = (
            np.asarray(cameras.geometry.to_crs(crs).array, dtype=object)
            if len(cameras)
            else np.empty(0, object)
        )
        usable = ~(shapely.is_missing(pts) | shapely.is_empty(pts)) if len(pts) else np.zeros(0, bool)
        x = np.full(len(pts), np.nan)
        y = np.full(len(pts), np.nan)
        if usable.any():
            x[usable] = shapely.get_x(pts[usable])
            y[usable] = shapely.get_y(pts[usable])
        usable &= np.isfinite(x) & np.isfinite(y)
        fov = _column(cameras, "fov")
        rng = _column(cameras, "range_m")
        bad = usable & ((np.isfinite(fov) & (fov <= 0)) | (np.isfinite(rng) & (rng <= 0)))
        if bad.any():
            ids = ", ".join(map(str, cameras["id"].to_numpy()[bad][:10]))
            raise CameraGeometryError(f"cameras with a non-positive field of view or range: {ids}")
        keep = np.flatnonzero(usable)
        self.rows = keep  # positions in the input frame
        self.ids = cameras["id"].to_numpy()[keep]
        self.x, self.y = x[keep], y[keep]
        direction = _column(cameras, "direction")[keep]
        fov = fov[keep]
        self.full = ~np.isfinite(direction) | ~np.isfinite(fov) | (fov >= 360.0)
        self.direction = np.where(np.isfinite(direction), direction % 360.0, 0.0)
        self.fov = np.where(self.full, 360.0, fov)
        self.range = np.where(np.isfinite(rng[keep]), rng[keep], float(default_range_m))
        online = cameras["online"] if "online" in cameras.columns else pd.Series(True, index=cameras.index)
        self.online = online.astype("boolean").fillna(False).to_numpy(dtype=bool)[keep]
        names = (
            cameras["name"]
            if "name" in cameras.columns
            else pd.Series(None, index=cameras.index, dtype=object)
        )
        self.names = names.to_numpy(dtype=object)[keep]

    def __len__(self) -> int:
        return len(self.ids)


# --------------------------------------------------------------------------------------------
# Sectors and shadows
# --------------------------------------------------------------------------------------------


def sector(
    x: float,
    y: float,
    *,
    direction: float | None,
    fov: float | None,
    range_m: float,
    step_deg: float = STEP_DEG,
) -> Polygon:
    """The field of view of a camera at (x, y) in a metric CRS: a sector ``fov`` degrees wide
    centred on ``direction`` (clockwise from north), ``range_m`` deep; a full circle when the
    camera turns (``direction`` or ``fov`` is None/NaN, or ``fov >= 360``)."""
    if not range_m > 0:
        raise CameraGeometryError("range_m must be positive")
    full = (
        direction is None
        or fov is None
        or not math.isfinite(direction)
        or not math.isfinite(fov)
        or fov >= 360
    )
    if full:
        n = max(8, math.ceil(360.0 / step_deg))
        a = np.radians(np.linspace(0.0, 360.0, n, endpoint=False))
        return Polygon(np.column_stack([x + range_m * np.sin(a), y + range_m * np.cos(a)]))
    assert direction is not None and fov is not None
    if not fov > 0:
        raise CameraGeometryError("fov must be positive")
    n = max(1, math.ceil(fov / step_deg))
    a = np.radians(np.linspace(direction - fov / 2.0, direction + fov / 2.0, n + 1))
    arc = np.column_stack([x + range_m * np.sin(a), y + range_m * np.cos(a)])
    return Polygon(np.vstack([[x, y], arc]))


def _sectors(c: _Cams, step_deg: float) -> ObjArray:
    out = np.empty(len(c), dtype=object)
    for i in range(len(c)):
        full = bool(c.full[i])
        out[i] = sector(
            float(c.x[i]),
            float(c.y[i]),
            direction=None if full else float(c.direction[i]),
            fov=None if full else float(c.fov[i]),
            range_m=float(c.range[i]),
            step_deg=step_deg,
        )
    return out


def _far(cx: float, cy: float, angles: FloatArray, dist: float) -> FloatArray:
    """Points at ``dist`` from (cx, cy) at math angles (radians, counter-clockwise from east)."""
    return np.column_stack([cx + dist * np.cos(angles), cy + dist * np.sin(angles)])


def _shadow_convex(part: Polygon, cx: float, cy: float, reach: float) -> BaseGeometry:
    xy = np.asarray(part.exterior.coords)[:-1]
    d = np.hypot(xy[:, 0] - cx, xy[:, 1] - cy)
    far = max(2.0 * reach, 2.0 * float(d.max()))
    ang = np.arctan2(xy[:, 1] - cy, xy[:, 0] - cx)
    mid = math.atan2(part.centroid.y - cy, part.centroid.x - cx)
    rel = (ang - mid + math.pi) % (2 * math.pi) - math.pi
    lo, hi = float(rel.min()), float(rel.max())
    steps = max(1, math.ceil((hi - lo) / math.radians(15.0)))
    arc = _far(cx, cy, mid + np.linspace(lo, hi, steps + 1), far)
    return shapely.MultiPoint(np.vstack([xy, arc])).convex_hull


def _shadow_edges(part: Polygon, cx: float, cy: float, reach: float) -> BaseGeometry:
    quads: list[BaseGeometry] = [part]
    rings = [part.exterior, *part.interiors]
    for ring in rings:
        xy = np.asarray(ring.coords)
        a, b = xy[:-1], xy[1:]
        ax, ay, bx, by = a[:, 0] - cx, a[:, 1] - cy, b[:, 0] - cx, b[:, 1] - cy
        cross = ax * by - ay * bx
        ok = np.abs(cross) > _EPS * (np.hypot(ax, ay) * np.hypot(bx, by) + _EPS)
        if not ok.any():
            continue
        ta, tb = np.arctan2(ay, ax), np.arctan2(by, bx)
        half = ((tb - ta + math.pi) % (2 * math.pi) - math.pi) / 2.0
        far = np.maximum(2.0 * reach, 2.0 * np.maximum(np.hypot(ax, ay), np.hypot(bx, by)))
        for i in np.flatnonzero(ok):
            f = float(far[i])
            pts = [
                (a[i, 0], a[i, 1]),
                (b[i, 0], b[i, 1]),
                (cx + f * math.cos(tb[i]), cy + f * math.sin(tb[i])),
                (cx + f * math.cos(ta[i] + half[i]), cy + f * math.sin(ta[i] + half[i])),
                (cx + f * math.cos(ta[i]), cy + f * math.sin(ta[i])),
            ]
            quads.append(shapely.convex_hull(shapely.multipoints(pts)))
    return shapely.union_all(quads)


def _shadow(footprint: BaseGeometry, cx: float, cy: float, reach: float) -> BaseGeometry | None:
    """What ``footprint`` hides from (cx, cy), itself included, out to at least ``reach``."""
    parts = [p for p in shapely.get_parts(footprint) if isinstance(p, Polygon) and not p.is_empty]
    out: list[BaseGeometry] = []
    here = Point(cx, cy)
    for part in parts:
        if part.covers(here):
            continue  # the camera is mounted on / in it
        hull = part.convex_hull
        if not part.interiors and hull.area - part.area <= 1e-9 * max(1.0, part.area):
            out.append(_shadow_convex(part, cx, cy, reach))
        else:
            out.append(_shadow_edges(part, cx, cy, reach))
    if not out:
        return None
    return out[0] if len(out) == 1 else shapely.union_all(out)


def _occlude(views: ObjArray, c: _Cams, buildings: ObjArray, progress: Progress | None = None) -> ObjArray:
    """Each view minus what the buildings hide from its camera."""
    out = views.copy()
    total = len(views)
    if not len(buildings) or not total:
        if progress:
            progress(total, total)
        return out
    tree = shapely.STRtree(buildings)
    vi, bi = tree.query(views, predicate="intersects")
    if not len(vi):
        return out
    order = np.argsort(vi, kind="stable")
    vi, bi = vi[order], bi[order]
    cuts = np.flatnonzero(np.diff(vi)) + 1
    every = max(1, total // 100)
    for done, (group_v, group_b) in enumerate(zip(np.split(vi, cuts), np.split(bi, cuts), strict=True)):
        i = int(group_v[0])
        shadows = [_shadow(buildings[j], float(c.x[i]), float(c.y[i]), float(c.range[i])) for j in group_b]
        hidden = [s for s in shadows if s is not None]
        if hidden:
            out[i] = views[i].difference(shapely.union_all(hidden))
        if progress and done % every == 0:
            progress(i, total)
    if progress:
        progress(total, total)
    return out


# --------------------------------------------------------------------------------------------
# Public: sectors and visible areas
# --------------------------------------------------------------------------------------------


def view_sectors(
    cameras: gpd.GeoDataFrame, *, default_range_m: float = DEFAULT_RANGE_M, step_deg: float = STEP_DEG
) -> gpd.GeoDataFrame:
    """Each camera's nominal field of view (no occlusion), for drawing: ``id``, ``online``, Polygon
    geometry, in the cameras' CRS."""
    crs = _work_crs(cameras)
    c = _Cams(cameras, crs, default_range_m)
    sectors = gpd.GeoSeries(_sectors(c, step_deg), crs=crs).to_crs(cameras.crs)
    return gpd.GeoDataFrame({"id": c.ids, "online": c.online}, geometry=sectors.to_numpy(), crs=cameras.crs)


def visible_areas(
    cameras: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame | gpd.GeoSeries,
    *,
    default_range_m: float = DEFAULT_RANGE_M,
    crs: Any = None,
    step_deg: float = STEP_DEG,
    progress: Progress | None = None,
) -> gpd.GeoDataFrame:
    """What each camera really sees: its sector minus building footprints and their shadows.
    Returns ``id``, ``online``, ``range_m`` and the visible (Multi)Polygon, possibly empty, in a
    metric CRS (``crs``, else the cameras' — or the buildings' when there are no cameras).
    ``progress(done, total)`` is called as cameras are done."""
    work = pyproj.CRS.from_user_input(crs) if crs is not None else _work_crs(cameras, buildings)
    if not work.is_projected:
        raise CameraGeometryError(f"visible areas are computed in a projected CRS, not {work.name}")
    c = _Cams(cameras, work, default_range_m)
    views = _occlude(_sectors(c, step_deg), c, _geoms(buildings, work, kind="polygon"), progress)
    return gpd.GeoDataFrame(
        {"id": c.ids, "online": c.online, "range_m": c.range},
        geometry=gpd.GeoSeries(views, crs=work),
        crs=work,
    )


# --------------------------------------------------------------------------------------------
# Public: which cameras see a place
# --------------------------------------------------------------------------------------------


def cameras_seeing(
    cameras: gpd.GeoDataFrame,
    *,
    at: Point,
    crs: Any,
    buildings: gpd.GeoDataFrame | gpd.GeoSeries | None = None,
    default_range_m: float = DEFAULT_RANGE_M,
) -> pd.DataFrame:
    """The cameras whose field of view contains ``at`` (a Point in ``crs``) within range, with a
    line of sight no building blocks. Online cameras first, then nearest (in 10 m bands), then
    most head-on: ``rank`` (1 = best), ``id``, ``name``, ``online``, ``distance_m``,
    ``bearing_deg`` (from the camera to the place, clockwise from north) and ``off_axis_deg``
    (0 for a camera that turns)."""
    cols = ["rank", "id", "name", "online", "distance_m", "bearing_deg", "off_axis_deg"]
    if not isinstance(at, Point) or at.is_empty or not all(math.isfinite(v) for v in (at.x, at.y)):
        raise CameraGeometryError("the place must be a finite Point")
    src = pyproj.CRS.from_user_input(crs)
    if src.is_projected:
        work = src
        target = at
    else:
        work = utm_crs(at.x, at.y)
        tx, ty = pyproj.Transformer.from_crs(src, work, always_xy=True).transform(at.x, at.y)
        target = Point(tx, ty)
    c = _Cams(cameras, work, default_range_m)
    if not len(c):
        return pd.DataFrame({k: [] for k in cols})
    dx, dy = target.x - c.x, target.y - c.y
    dist = np.hypot(dx, dy)
    bearing = np.degrees(np.arctan2(dx, dy)) % 360.0
    off = np.abs((bearing - c.direction + 180.0) % 360.0 - 180.0)
    off = np.where(c.full | (dist < _EPS), 0.0, off)
    cand = (dist <= c.range + _EPS) & (off <= c.fov / 2.0 + _EPS)
    idx = np.flatnonzero(cand)
    if len(idx) and buildings is not None and len(buildings):
        blocked = _blocked(c, idx, target, _geoms(buildings, work, kind="polygon"))
        idx = idx[~blocked]
    table = pd.DataFrame(
        {
            "id": c.ids[idx],
            "name": c.names[idx],
            "online": c.online[idx],
            "distance_m": dist[idx].round(1),
            "bearing_deg": bearing[idx].round(1),
            "off_axis_deg": off[idx].round(1),
        }
    )
    table = table.assign(_band=np.floor(dist[idx] / SEE_BAND_M), _off=~table["online"])
    table = table.sort_values(["_off", "_band", "off_axis_deg", "distance_m", "id"], kind="stable")
    table = table.drop(columns=["_band", "_off"]).reset_index(drop=True)
    table.insert(0, "rank", np.arange(1, len(table) + 1))
    return table[cols]


def _blocked(c: _Cams, idx: IntArray, target: Point, buildings: ObjArray) -> BoolArray:
    """For cameras ``idx``: does a building's interior lie between the camera and the target?"""
    out = np.zeros(len(idx), dtype=bool)
    segs: Any = shapely.linestrings(
        np.stack(
            [np.column_stack([c.x[idx], c.y[idx]]), np.tile([target.x, target.y], (len(idx), 1))], axis=1
        )
    )
    far: BoolArray = shapely.length(segs) > _EPS
    if not far.any() or not len(buildings):
        return out
    tree = shapely.STRtree(buildings)
    si, bi = tree.query(segs, predicate="intersects")
    if not len(si):
        return out
    crosses: BoolArray = shapely.relate_pattern(segs[si], buildings[bi], "T********")
    cams = shapely.points(c.x[idx][si], c.y[idx][si])
    mounted: BoolArray = shapely.covers(buildings[bi], cams)
    holds_target: BoolArray = shapely.covers(buildings[bi], target)
    hit = crosses & ~mounted & ~holds_target & far[si]
    out[np.unique(si[hit])] = True
    return out


# --------------------------------------------------------------------------------------------
# Public: coverage, blind spots, suggestions
# --------------------------------------------------------------------------------------------


def _grouped(tree_geoms: ObjArray, query: ObjArray) -> dict[int, IntArray]:
    """query position -> positions in tree_geoms it intersects."""
    if not len(tree_geoms) or not len(query):
        return {}
    qi, ti = shapely.STRtree(tree_geoms).query(query, predicate="intersects")
    order = np.argsort(qi, kind="stable")
    qi, ti = qi[order], ti[order]
    cuts = np.flatnonzero(np.diff(qi)) + 1
    return {int(g[0]): t for g, t in zip(np.split(qi, cuts), np.split(ti, cuts), strict=True) if len(g)}


def _linear(g: BaseGeometry) -> float:
    return float(shapely.length(g)) if g is not None and not g.is_empty else 0.0


def _area(g: BaseGeometry) -> float:
    return float(shapely.area(g)) if g is not None and not g.is_empty else 0.0


def coverage(
    areas: gpd.GeoDataFrame,
    *,
    key: str,
    roads: gpd.GeoDataFrame | gpd.GeoSeries,
    buildings: gpd.GeoDataFrame | gpd.GeoSeries,
    visible: gpd.GeoDataFrame,
    cameras: gpd.GeoDataFrame | None = None,
    progress: Progress | None = None,
) -> pd.DataFrame:
    """Per area (a grid, a community): road length and the part of it some camera sees; open
    space (the area minus building footprints) and the part some camera sees; cameras inside and
    how many are online. Columns ``key``, ``road_m``, ``road_covered_m``, ``road_share``,
    ``open_m2``, ``open_covered_m2``, ``open_share``, ``cameras``, ``cameras_online``,
    ``online_share`` (shares NaN where there is nothing to share). ``visible`` is
    :func:`visible_areas`' result; ``progress(done, total)`` is called as areas are done."""
    if key not in areas.columns:
        raise KeyError(f"areas have no column {key!r}")
    work = _work_crs(visible, areas)
    n = len(areas)
    raw = np.asarray(areas.geometry.to_crs(work).array, dtype=object) if n else np.empty(0, object)
    ok = ~(shapely.is_missing(raw) | shapely.is_empty(raw)) if n else np.zeros(0, bool)
    area_g = np.full(n, None, dtype=object)
    area_g[ok] = raw[ok]
    invalid = ok & ~shapely.is_valid(area_g)
    if invalid.any():
        area_g[invalid] = shapely.make_valid(area_g[invalid])
    query = area_g  # None never intersects anything
    road_g, bld_g, vis_g = (
        _geoms(roads, work, kind="line"),
        _geoms(buildings, work, kind="polygon"),
        _geoms(visible, work, kind="polygon"),
    )
    roads_of, blds_of, vis_of = _grouped(road_g, query), _grouped(bld_g, query), _grouped(vis_g, query)
    road_m, road_cov, open_m2, open_cov = (np.zeros(n) for _ in range(4))
    every = max(1, n // 100)
    for i in range(n):
        shape = area_g[i]
        if shape is not None:
            seen = None
            if i in vis_of:
                seen = shapely.intersection(shapely.union_all(vis_g[vis_of[i]]), shape)
            if i in roads_of:
                pieces = shapely.intersection(road_g[roads_of[i]], shape)
                road_m[i] = float(shapely.length(pieces).sum())
                if seen is not None and not seen.is_empty:
                    road_cov[i] = float(shapely.length(shapely.intersection(pieces, seen)).sum())
            open_space = shape.difference(shapely.union_all(bld_g[blds_of[i]])) if i in blds_of else shape
            open_m2[i] = _area(open_space)
            if seen is not None and not seen.is_empty:
                open_cov[i] = _area(shapely.intersection(open_space, seen))
        if progress and ((i + 1) % every == 0 or i + 1 == n):
            progress(i + 1, n)
    n_cam, n_online = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
    if cameras is not None and len(cameras) and n:
        c = _Cams(cameras, work, DEFAULT_RANGE_M)
        pts = shapely.points(c.x, c.y)
        pi, ai = shapely.STRtree(query).query(pts, predicate="intersects")
        first = np.unique(pi, return_index=True)[1]  # a camera on a shared border counts once
        pi, ai = pi[first], ai[first]
        np.add.at(n_cam, ai, 1)
        np.add.at(n_online, ai, c.online[pi].astype(np.int64))

    def share(a: FloatArray, b: FloatArray) -> FloatArray:
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(b > 0, a / np.where(b > 0, b, 1.0), np.nan)

    return pd.DataFrame(
        {
            key: areas[key].to_numpy(),
            "road_m": road_m.round(2),
            "road_covered_m": road_cov.round(2),
            "road_share": share(road_cov, road_m),
            "open_m2": open_m2.round(1),
            "open_covered_m2": open_cov.round(1),
            "open_share": share(open_cov, open_m2),
            "cameras": n_cam,
            "cameras_online": n_online,
            "online_share": share(n_online.astype(float), n_cam.astype(float)),
        }
    )


def uncovered_roads(
    roads: gpd.GeoDataFrame | gpd.GeoSeries, *, visible: gpd.GeoDataFrame
) -> gpd.GeoDataFrame:
    """The parts of the roads no camera sees, merged into continuous lines: ``length_m`` and
    LineString geometry in ``visible``'s metric CRS (the roads' when ``visible`` is empty)."""
    work = _work_crs(visible, roads)
    road_g, vis_g = _geoms(roads, work, kind="line"), _geoms(visible, work, kind="polygon")
    seen_by = _grouped(vis_g, road_g)
    parts: list[LineString] = []
    for j, road in enumerate(road_g):
        rest = road.difference(shapely.union_all(vis_g[seen_by[j]])) if j in seen_by else road
        parts.extend(p for p in shapely.get_parts(rest) if isinstance(p, LineString) and p.length > _EPS)
    if parts:
        merged = shapely.line_merge(MultiLineString(parts))
        lines = [p for p in shapely.get_parts(merged) if isinstance(p, LineString)]
    else:
        lines = []
    geoms = gpd.GeoSeries(lines, crs=work)
    return gpd.GeoDataFrame({"length_m": geoms.length.round(2).to_numpy()}, geometry=geoms, crs=work)


def blind_spots(
    roads: gpd.GeoDataFrame | gpd.GeoSeries, *, visible: gpd.GeoDataFrame, min_length_m: float = 20.0
) -> gpd.GeoDataFrame:
    """Stretches of road no camera sees, at least ``min_length_m`` long, longest first
    (:func:`uncovered_roads` without the short gaps between neighbouring views)."""
    lines = uncovered_roads(roads, visible=visible)
    lines = lines[lines["length_m"] >= min_length_m]
    return lines.sort_values("length_m", ascending=False, kind="stable").reset_index(drop=True)


def _candidates(lines: ObjArray, spacing_m: float) -> FloatArray:
    xy: list[FloatArray] = []
    for line in lines:
        n = max(1, int(line.length // spacing_m))
        at = (np.arange(n) + 0.5) * (line.length / n)
        pts = shapely.line_interpolate_point(line, at)
        xy.append(shapely.get_coordinates(pts))
    if not xy:
        return np.empty((0, 2))
    return np.unique(np.round(np.vstack(xy), 1), axis=0)


def suggest_cameras(
    roads: gpd.GeoDataFrame | gpd.GeoSeries,
    *,
    visible: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame | gpd.GeoSeries,
    k: int,
    range_m: float = 60.0,
    spacing_m: float = 20.0,
) -> tuple[gpd.GeoDataFrame, dict[str, float]]:
    """Where to put ``k`` more cameras (domes seeing ``range_m`` all round, occluded by
    buildings) to see the most road no camera sees now. Candidates are points every ``spacing_m``
    along the unseen road; the choice is greedy (lazy evaluation), which is within (1 − 1/e) of the
    best possible choice among the candidates, and the stats say how good it is on *this* input:

    * ``uncovered_m`` — unseen road before; ``covered_m`` — what the k picks see of it;
    * ``upper_bound_m`` — no k candidates can see more than this (the least, over the greedy's
      steps, of what was picked so far plus the k largest remaining gains; coverage is
      submodular so each is a bound), and never more than ``uncovered_m``;
    * ``ratio`` = covered / upper bound (1 when there is nothing to cover); ``candidates``.

    Returns the picks (``order``, ``gain_m``, ``cumulative_m``, Point geometry, metric CRS) and
    the stats."""
    if k < 1:
        raise ValueError("k must be at least 1")
    if not (range_m > 0 and spacing_m > 0):
        raise ValueError("range_m and spacing_m must be positive")
    work = _work_crs(visible, roads)
    lines = np.asarray(uncovered_roads(roads, visible=visible).geometry.array, dtype=object)
    total = float(shapely.length(lines).sum()) if len(lines) else 0.0
    cand = _candidates(lines, spacing_m)
    bld = _geoms(buildings, work, kind="polygon")
    if len(cand) and len(bld):
        inside = np.zeros(len(cand), dtype=bool)
        pi, _ = shapely.STRtree(bld).query(shapely.points(cand), predicate="within")
        inside[pi] = True
        cand = cand[~inside]
    empty = gpd.GeoDataFrame(
        {"order": pd.Series([], dtype="int64"), "gain_m": [], "cumulative_m": []},
        geometry=gpd.GeoSeries([], crs=work),
        crs=work,
    )
    stats = {"uncovered_m": round(total, 2), "covered_m": 0.0, "upper_bound_m": round(total, 2), "ratio": 1.0}
    stats["candidates"] = float(len(cand))
    if not len(cand) or total <= 0:
        return empty, stats
    domes = gpd.GeoDataFrame(
        {"id": np.arange(len(cand)), "range_m": range_m}, geometry=shapely.points(cand), crs=work
    )
    views = np.asarray(
        visible_areas(domes, gpd.GeoSeries(bld, crs=work), crs=work).geometry.array, dtype=object
    )
    uncovered: BaseGeometry = MultiLineString(list(lines))
    gains = shapely.length(shapely.intersection(uncovered, views))
    heap = [(-float(g), int(i)) for i, g in enumerate(gains) if g > _EPS]
    heapq.heapify(heap)
    picks: list[tuple[int, float]] = []
    covered = 0.0
    bound = total

    def top_k_sum() -> float:
        return float(-sum(g for g, _ in heapq.nsmallest(k, heap)))

    while heap and len(picks) < k:
        bound = min(bound, covered + top_k_sum())
        neg, i = heapq.heappop(heap)
        fresh = _linear(shapely.intersection(uncovered, views[i]))
        if heap and fresh < -heap[0][0] - _EPS:
            if fresh > _EPS:
                heapq.heappush(heap, (-fresh, i))
            continue
        if fresh <= _EPS:
            break
        picks.append((i, fresh))
        covered += fresh
        uncovered = uncovered.difference(views[i])
    bound = min(bound, covered + top_k_sum())
    bound = max(bound, covered)
    if not picks:
        return empty, stats
    order = [i for i, _ in picks]
    out = gpd.GeoDataFrame(
        {
            "order": np.arange(1, len(picks) + 1, dtype=np.int64),
            "gain_m": np.round([g for _, g in picks], 2),
            "cumulative_m": np.round(np.cumsum([g for _, g in picks]), 2),
        },
        geometry=shapely.points(cand[order]),
        crs=work,
    )
    stats.update(
        covered_m=round(covered, 2),
        upper_bound_m=round(bound, 2),
        ratio=round(covered / bound, 4) if bound > 0 else 1.0,
    )
    return out, stats
