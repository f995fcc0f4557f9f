"""Planners' edits to a draft of a village's micro-grids: split, merge, move buildings, reshape, replace.

A *draft grids frame* has the columns ``key`` (int, unique in the draft and stable across edits),
``code`` (15-digit str, or missing for a grid created in the draft), ``kind`` (``"base"`` or
``"dedicated"``), any other attribute columns (carried along) and Polygon/MultiPolygon geometry.
Base grids tile the village exactly; dedicated grids lie over them and are left alone unless an edit
names them. Every function takes the frame first, options keyword-only, and returns a **new** frame
(inputs are never modified) with a fresh ``RangeIndex``: rows keep their order, the grids an edit
creates take the place of the first grid they replace. New grids get new keys (``max(key) + 1``, …)
and no code; grids that only change shape keep their key and code (codes change at publish time,
:func:`geo.lineage.assign_codes`). An edit that makes no sense raises :class:`EditError` (a
``ValueError``) with a message for the planner, and nothing is changed.

How geometry is handled
-----------------------
* Inputs may be in lon/lat (EPSG:4326/4490) or in a projected CRS. Everything *measured* — lengths
  of shared edges, the extension of a drawn line, building buffers, Voronoi cells of buildings,
  snapping tolerances — is done in metres, in the frame's own CRS when it is projected in metres and
  otherwise in the local UTM zone (:func:`geo.crs.metric_crs`). Areas used as thresholds are the
  frame's own areas scaled by the local metres per unit (see :meth:`_Space.area`).
* The overlays that produce the new boundaries (cut, union, difference, intersection) run in the
  frame's **own CRS**, on the original coordinates. Edges an edit does not touch therefore keep
  their vertices bit for bit, and grids the edit does not touch are returned unchanged. (Doing the
  overlays in metres and reprojecting the changed grids would not keep coverage exact: a vertex
  placed on a straight edge in metres lies off the same edge in degrees — a straight 300 m edge
  bows by ~2 mm between the two — which opens slivers of tenths of a square metre against the
  untouched neighbours.)
* Slivers are avoided by **snapping** rather than by a precision grid (a grid would move the vertices
  of the untouched neighbours too): drawn lines and outlines are snapped to the existing vertices and
  edges within ``snap`` metres (default 0.5 m) before use, so a line drawn "to the corner" goes
  through the corner and an outline traced along a neighbour's edge follows it exactly. After each
  overlay, polygon parts and holes smaller than :data:`SLIVER_M2` (0.01 m²) are dropped, as are
  rounding-error "spikes" (a ring running out and back along an edge), and pieces of a split smaller
  than :data:`MIN_PIECE_M2` go back to their neighbouring piece. Coverage among base grids thus
  stays exact up to floating-point noise far below 0.01 m² — in the frame's own CRS: measuring a
  lon/lat result by projecting its vertices to metres shows the millimetre bows above as apparent
  overlaps and gaps, which are not in the data.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyproj
import shapely
from shapely.geometry.base import BaseGeometry

from geo._types import FloatArray
from geo.codes import reading_order
from geo.crs import metric_crs, require_crs

__all__ = [
    "BUILDING_BUFFER_M",
    "EXTEND_M",
    "EditError",
    "MIN_EDGE_M",
    "MIN_PIECE_M2",
    "SLIVER_M2",
    "SNAP_M",
    "merge_grids",
    "move_buildings",
    "replace_grids",
    "reshape_grid",
    "split_grid",
]


SLIVER_M2 = 0.01  # polygon parts and holes smaller than this are dropped after an overlay
MIN_PIECE_M2 = 1.0  # split pieces smaller than this join a neighbouring piece; smaller grids are "empty"
MIN_EDGE_M = 0.5  # grids are neighbours when they share an edge at least this long (a point is not enough)
EXTEND_M = 5.0  # a drawn split line's end segments are extended by this much
SNAP_M = 0.5  # drawn lines/outlines snap to existing vertices and edges within this distance
BUILDING_BUFFER_M = 1.0  # a building kept whole by a split takes its footprint plus this margin

_KINDS = ("base", "dedicated")
_EDGE_PROBE_M = 0.001  # a boundary counts as shared where it runs within 1 mm of the other grid
_MIN_GAP_WIDTH_M = 0.1  # gaps between the base grids and the parent narrower than this are noise
_MIN_MISMATCH_WIDTH_M = 0.01  # replace_grids: gaps/overlaps thinner than 1 cm on average are noise
_SPIKE_M = 1e-6  # hairline spikes (rounding-error wide) narrower than 1 µm are removed after an overlay


class EditError(ValueError):
    """An edit that makes no sense for the draft (unknown key, a line that does not cross the grid,
    grids that are not neighbours…). The message is meant for the planner; nothing was changed."""


# --------------------------------------------------------------------------------------------
# Geometry helpers
# --------------------------------------------------------------------------------------------


def _polygons(geom: Any) -> list[shapely.Polygon]:
    """The non-empty polygons in a geometry (lines and points an overlay may leave are dropped)."""
    if geom is None or geom.is_empty:
        return []
    if isinstance(geom, shapely.Polygon):
        return [geom]
    if isinstance(geom, shapely.MultiPolygon | shapely.GeometryCollection):
        out: list[shapely.Polygon] = []
        for part in geom.geoms:
            out.extend(_polygons(part))
        return out
    return []


def _as_polygonal(polys: Sequence[shapely.Polygon]) -> shapely.Polygon | shapely.MultiPolygon:
    if not polys:
        return shapely.Polygon()
    if len(polys) == 1:
        return polys[0]
    return shapely.MultiPolygon(list(polys))


def _despike_ring(coords: FloatArray, eps: float) -> list[tuple[float, float]] | None:
    """The ring without spikes: vertices where it turns back on itself (a reversal) with the two
    segments less than ``eps`` apart, and repeated vertices. None if fewer than 3 vertices remain."""
    pts = [(float(x), float(y)) for x, y in coords[:-1]]
    changed = True
    while changed and len(pts) >= 3:
        changed = False
        i = 0
        while i < len(pts) and len(pts) >= 3:
            a, b, c = pts[i - 1], pts[i], pts[(i + 1) % len(pts)]
            abx, aby, bcx, bcy = b[0] - a[0], b[1] - a[1], c[0] - b[0], c[1] - b[1]
            longer = max(math.hypot(abx, aby), math.hypot(bcx, bcy))
            reversal = abx * bcx + aby * bcy < 0 and abs(abx * bcy - aby * bcx) <= eps * longer
            if (abx == 0.0 and aby == 0.0) or reversal:
                del pts[i]
                changed = True
            else:
                i += 1
    if len(pts) < 3:
        return None
    return [*pts, pts[0]]


def _despike(poly: shapely.Polygon, eps: float) -> Any:
    """Remove hairline spikes from a polygon's rings: where a vertex was placed on an edge up to
    floating-point rounding, an overlay can leave a zero-width 'spike' running along that edge."""
    shell = _despike_ring(shapely.get_coordinates(poly.exterior), eps)
    if shell is None:
        return shapely.Polygon()
    holes = [h for h in (_despike_ring(shapely.get_coordinates(r), eps) for r in poly.interiors) if h is not None]
    out = shapely.Polygon(shell, holes)
    if out.equals_exact(poly, tolerance=0.0):
        return poly
    return out if out.is_valid else shapely.make_valid(out)


def _clean(geom: Any, min_area: float, eps: float = 0.0) -> shapely.Polygon | shapely.MultiPolygon:
    """A valid Polygon/MultiPolygon without parts or holes smaller than ``min_area`` (CRS units²)
    and, with ``eps`` (CRS units), without hairline spikes narrower than that."""
    if geom is None or geom.is_empty:
        return shapely.Polygon()
    if not geom.is_valid:
        geom = shapely.make_valid(geom)
    parts = _polygons(geom)
    if eps > 0:
        parts = [q for p in parts for q in _polygons(_despike(p, eps))]
    kept: list[shapely.Polygon] = []
    for part in parts:
        if part.area < min_area:
            continue
        holes = [ring for ring in part.interiors if shapely.Polygon(ring).area >= min_area]
        if len(holes) != len(part.interiors):
            part = shapely.Polygon(part.exterior, holes)
        kept.append(part)
    out = _as_polygonal(kept)
    if not out.is_valid:  # dropping parts cannot break validity, but be safe
        out = _as_polygonal(_polygons(shapely.make_valid(out)))
    return out


def _transform(transformer: pyproj.Transformer, geoms: Any) -> Any:
    def apply(xy: FloatArray) -> FloatArray:
        x, y = transformer.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)])

    return shapely.transform(geoms, apply)


def _is_metre_projection(crs: pyproj.CRS) -> bool:
    if not crs.is_projected:
        return False
    units = {(axis.unit_name or "").lower() for axis in crs.axis_info}
    return bool(units) and units <= {"metre", "meter", "m"}


@dataclass(frozen=True)
class _Space:
    """The frame's CRS and the metric CRS measurements are made in, with local scales (metres per
    CRS unit along x and y at the frame's centre) for tolerances."""

    source: pyproj.CRS
    metric: pyproj.CRS
    forward: pyproj.Transformer | None
    backward: pyproj.Transformer | None
    sx: float
    sy: float

    @classmethod
    def of(cls, frame: gpd.GeoDataFrame) -> _Space:
        source = pyproj.CRS.from_user_input(frame.crs)
        if _is_metre_projection(source):
            return cls(source, source, None, None, 1.0, 1.0)
        metric = metric_crs(frame)
        forward = pyproj.Transformer.from_crs(source, metric, always_xy=True)
        backward = pyproj.Transformer.from_crs(metric, source, always_xy=True)
        minx, miny, maxx, maxy = (float(v) for v in frame.total_bounds)
        cx, cy = (minx + maxx) / 2.0, (miny + maxy) / 2.0
        step = max(maxx - minx, maxy - miny, 1e-9) * 1e-3
        x0, y0 = forward.transform(cx, cy)
        x1, y1 = forward.transform(cx + step, cy)
        x2, y2 = forward.transform(cx, cy + step)
        sx = math.hypot(x1 - x0, y1 - y0) / step
        sy = math.hypot(x2 - x0, y2 - y0) / step
        return cls(source, metric, forward, backward, sx, sy)

    def to_metric(self, geoms: Any) -> Any:
        return geoms if self.forward is None else _transform(self.forward, geoms)

    def to_source(self, geoms: Any) -> Any:
        return geoms if self.backward is None else _transform(self.backward, geoms)

    def area(self, geoms: Any) -> Any:
        """Area in m² (float for one geometry, array for many), measured in the frame's own CRS and
        scaled by the local metres per unit. Used for thresholds: projecting a hairline sliver of a
        lon/lat frame would inflate it (its edges are straight in degrees, bowed by millimetres in
        metres), while the scale varies by ~1e-4 across a village."""
        return shapely.area(geoms) * (self.sx * self.sy)

    def units(self, metres: float) -> float:
        """A distance tolerance in CRS units (conservative: the larger scale)."""
        return metres / max(self.sx, self.sy)

    def area_units(self, square_metres: float) -> float:
        return square_metres / (self.sx * self.sy)


def _shared_length(space: _Space, a: Any, b: Any) -> float:
    """Length in metres of the part of ``a``'s boundary running along ``b`` (within 1 mm): robust to
    the last-bit mismatches of edges that were noded separately."""
    if a.is_empty or b.is_empty:
        return 0.0
    ma, mb = space.to_metric(a), space.to_metric(b)
    if ma.distance(mb) > _EDGE_PROBE_M:
        return 0.0
    along = shapely.intersection(ma.boundary, mb.buffer(_EDGE_PROBE_M, quad_segs=2))
    return float(along.length)


def _snap(geom: Any, reference: Any, tolerance: float) -> Any:
    """Snap ``geom``'s vertices to ``reference``'s vertices, then to its edges, within ``tolerance``
    (CRS units); reference vertices close to ``geom``'s segments are inserted into them."""
    if tolerance <= 0 or reference is None or reference.is_empty:
        return geom
    out = shapely.snap(geom, reference, tolerance)
    coords = shapely.get_coordinates(out)
    if len(coords) == 0:
        return out
    points: Any = np.asarray(shapely.points(coords), dtype=object).reshape(-1)
    dist = np.asarray(shapely.distance(points, reference), dtype=np.float64)
    near = (dist > 0) & (dist <= tolerance)
    if near.any():
        ends = shapely.get_coordinates(shapely.shortest_line(points[near], reference)).reshape(-1, 2, 2)
        coords = coords.copy()
        coords[near] = ends[:, 1, :]
        out = shapely.transform(out, lambda _xy: coords)
        out = shapely.snap(out, reference, tolerance)  # vertices of the reference along moved segments
    return out


def _linework(geoms: Iterable[Any]) -> Any:
    """All boundaries of the given polygons as one MultiLineString."""
    lines: list[Any] = []
    for g in geoms:
        if g is None or g.is_empty:
            continue
        lines.extend(shapely.get_parts(shapely.boundary(g)))
    return shapely.MultiLineString(lines) if lines else shapely.MultiLineString()


# --------------------------------------------------------------------------------------------
# The draft
# --------------------------------------------------------------------------------------------


class _Draft:
    """A validated view of a draft grids frame."""

    def __init__(self, grids: gpd.GeoDataFrame) -> None:
        require_crs(grids)
        if not isinstance(grids, gpd.GeoDataFrame):
            raise TypeError(f"grids must be a GeoDataFrame, got {type(grids).__name__}")
        missing = [c for c in ("key", "kind") if c not in grids.columns]
        if missing:
            raise ValueError(f"the grids frame lacks column(s) {missing}; a draft has key, code, kind and geometry")
        keys = pd.to_numeric(grids["key"], errors="coerce")
        if keys.isna().any() or not np.all(np.mod(keys.to_numpy(dtype=np.float64), 1) == 0):
            raise ValueError("every grid needs an integer key")
        self.keys = keys.to_numpy(dtype=np.int64)
        if len(np.unique(self.keys)) != len(self.keys):
            dup = sorted({int(k) for k in self.keys[pd.Series(self.keys).duplicated().to_numpy()]})
            raise ValueError(f"grid keys must be unique within a draft; duplicated: {dup}")
        self.kinds = grids["kind"].astype(object).to_numpy()
        bad = [k for k in set(self.kinds) if k not in _KINDS]
        if bad:
            raise ValueError(f"kind must be 'base' or 'dedicated', found {bad}")
        self.frame = grids
        self.geoms = np.asarray(grids.geometry.values, dtype=object)
        for i, g in enumerate(self.geoms):
            if g is None or g.is_empty or g.geom_type not in ("Polygon", "MultiPolygon"):
                raise ValueError(f"grid {self.keys[i]} has no polygon geometry")
        self._pos = {int(k): i for i, k in enumerate(self.keys)}

    @cached_property
    def space(self) -> _Space:
        return _Space.of(self.frame)

    @cached_property
    def metric(self) -> npt.NDArray[Any]:
        return np.asarray(self.space.to_metric(self.geoms), dtype=object)

    def pos(self, key: Any) -> int:
        try:
            k = int(key)
        except (TypeError, ValueError):
            raise EditError(f"grid key must be an integer, got {key!r}") from None
        if k not in self._pos:
            raise EditError(f"there is no grid with key {k} in this draft")
        return self._pos[k]

    def base(self, exclude: Iterable[int] = ()) -> list[int]:
        skip = set(exclude)
        return [i for i in range(len(self.keys)) if self.kinds[i] == "base" and i not in skip]

    def label(self, i: int) -> str:
        return f"grid {self.keys[i]}"

    def clean(self, geom: Any) -> shapely.Polygon | shapely.MultiPolygon:
        return _clean(geom, self.space.area_units(SLIVER_M2), self.space.units(_SPIKE_M))

    def area(self, geom: Any) -> float:
        return 0.0 if geom is None or geom.is_empty else float(self.space.area(geom))

    def user_geometry(self, geom: Any, crs: Any, what: str, types: tuple[str, ...]) -> Any:
        """A drawn geometry in the frame's CRS. ``crs=None``: the frame's CRS, except that a frame in
        a projected CRS receiving coordinates that can only be lon/lat takes them as EPSG:4326."""
        if isinstance(geom, gpd.GeoDataFrame | gpd.GeoSeries):
            require_crs(geom)
            series = geom.geometry if isinstance(geom, gpd.GeoDataFrame) else geom
            if len(series) != 1:
                raise EditError(f"expected one {what}, got {len(series)}")
            return self.user_geometry(series.to_crs(self.frame.crs).iloc[0], None, what, types)
        if not isinstance(geom, BaseGeometry) or geom.is_empty:
            raise EditError(f"the {what} is empty or not a geometry")
        if geom.geom_type not in types:
            raise EditError(f"the {what} must be a {' or '.join(types)}, got a {geom.geom_type}")
        coords = shapely.get_coordinates(geom)
        if not np.isfinite(coords).all():
            raise EditError(f"the {what} has NaN or infinite coordinates")
        source = self.space.source
        if crs is not None:
            given = pyproj.CRS.from_user_input(crs)
        elif (
            source.is_projected
            and (np.abs(coords[:, 0]) <= 180).all()
            and (np.abs(coords[:, 1]) <= 90).all()
        ):
            given = pyproj.CRS.from_epsg(4326)
        else:
            given = source
        if not given.equals(source):
            geom = _transform(pyproj.Transformer.from_crs(given, source, always_xy=True), geom)
        return geom

    def rebuild(self, rows: list[tuple[int, Any, bool]]) -> gpd.GeoDataFrame:
        """The output frame: one ``(source position, geometry, is_new)`` per row. New rows copy the
        source row's attributes and get the next free keys (in order) and no code."""
        take = [r[0] for r in rows]
        is_new = np.array([r[2] for r in rows], dtype=bool)
        keys = np.array([int(self.keys[p]) for p in take], dtype=np.int64)
        start = int(self.keys.max()) + 1 if len(self.keys) else 1
        keys[is_new] = np.arange(start, start + int(is_new.sum()), dtype=np.int64)
        out = self.frame.iloc[take].copy()
        out.index = pd.RangeIndex(len(out))
        geometry_name = self.frame.geometry.name
        out[geometry_name] = gpd.GeoSeries([r[1] for r in rows], index=out.index, crs=self.frame.crs)
        out["key"] = pd.Series(keys, index=out.index).astype(self.frame["key"].dtype)
        if "code" in out.columns and is_new.any():
            out.loc[is_new, "code"] = None
        return out


def _require_grid_kind(draft: _Draft, positions: Sequence[int], what: str) -> str:
    kinds = {draft.kinds[p] for p in positions}
    if len(kinds) > 1:
        raise EditError(f"cannot {what} base and dedicated grids together")
    return str(kinds.pop())


# --------------------------------------------------------------------------------------------
# Split
# --------------------------------------------------------------------------------------------


def _extend_line(line: shapely.LineString, space: _Space, metres: float) -> shapely.LineString:
    """The line with both end segments extended by ``metres`` (measured in metres); the original
    vertices are kept exactly."""
    coords = shapely.get_coordinates(line)
    if metres <= 0 or len(coords) < 2:
        return line
    metric = np.asarray(shapely.get_coordinates(space.to_metric(line)), dtype=np.float64)

    def beyond(end: int, step: int) -> tuple[float, float] | None:
        i = end + step
        while 0 <= i < len(metric):
            d = metric[end] - metric[i]
            n = math.hypot(float(d[0]), float(d[1]))
            if n > 1e-9:
                p = metric[end] + d / n * metres
                q = space.to_source(shapely.Point(float(p[0]), float(p[1])))
                return float(q.x), float(q.y)
            i += step
        return None

    head, tail = beyond(0, 1), beyond(len(metric) - 1, -1)
    out = [tuple(c) for c in coords]
    if head is not None:
        out.insert(0, head)
    if tail is not None:
        out.append(tail)
    return shapely.LineString(out)


def _cut(geom: Any, line: Any) -> tuple[list[shapely.Polygon], list[shapely.Polygon]]:
    """Faces of the polygon parts the line cuts (``cut``) and the parts it leaves whole (``whole``)."""
    cut: list[shapely.Polygon] = []
    whole: list[shapely.Polygon] = []
    for part in _polygons(geom):
        if not part.intersects(line):
            whole.append(part)
            continue
        noded = shapely.union(part.boundary, line)
        faces = _polygons(shapely.polygonize(shapely.get_parts(noded)))
        shapely.prepare(part)
        inside = [f for f in faces if part.contains(f.representative_point())]
        if len(inside) <= 1:
            whole.append(part)
        else:
            cut.extend(inside)
    return cut, whole


def _join(pieces: list[Any], draft: _Draft, index: int) -> int:
    """The piece ``index`` is joined to: longest shared edge, else the nearest. -1 if alone."""
    best, best_len, best_dist = -1, 0.0, math.inf
    for j, other in enumerate(pieces):
        if j == index or other.is_empty:
            continue
        length = _shared_length(draft.space, pieces[index], other)
        if length > best_len:
            best, best_len = j, length
        elif best_len == 0.0:
            dist = float(draft.space.to_metric(pieces[index]).distance(draft.space.to_metric(other)))
            if dist < best_dist:
                best, best_dist = j, dist
    return best


def _absorb_small(pieces: list[Any], draft: _Draft, min_area: float) -> list[Any]:
    """Give pieces smaller than ``min_area`` m² to their neighbouring piece (smallest first)."""
    pieces = list(pieces)
    while len(pieces) > 1:
        areas = [draft.area(p) for p in pieces]
        i = int(np.argmin(areas))
        if areas[i] >= min_area:
            break
        j = _join(pieces, draft, i)
        if j < 0:
            break
        pieces[j] = draft.clean(shapely.union(pieces[j], pieces[i]))
        del pieces[i]
    return pieces


def _keep_buildings_whole(
    pieces: list[Any], grid: Any, buildings: gpd.GeoDataFrame, draft: _Draft, margin: float
) -> list[Any]:
    """Move the footprint (plus ``margin`` metres) of every building a cut crosses wholly into the
    piece holding its larger part; other buildings' footprints are never cut by that margin."""
    require_crs(buildings)
    frame = buildings if pyproj.CRS.from_user_input(buildings.crs).equals(draft.space.source) else buildings.to_crs(draft.frame.crs)
    values = np.asarray(frame.geometry.values, dtype=object)
    values = values[~(shapely.is_missing(values) | shapely.is_empty(values))]
    if len(values) == 0:
        return pieces
    tree = shapely.STRtree(values)
    footprints = values[tree.query(grid, predicate="intersects")]
    if len(footprints) == 0:
        return pieces
    footprints = np.asarray([g if g.is_valid else shapely.make_valid(g) for g in footprints], dtype=object)
    metric_pieces = [draft.space.to_metric(p) for p in pieces]
    metric_fps = np.asarray(draft.space.to_metric(footprints), dtype=object)
    shares = np.array([shapely.area(shapely.intersection(metric_fps, mp)) for mp in metric_pieces]).T
    home = np.argmax(shares, axis=1)
    crossed = np.flatnonzero((shares > SLIVER_M2).sum(axis=1) >= 2)
    if len(crossed) == 0:
        return pieces
    out = list(pieces)
    for b in crossed:
        p = int(home[b])
        zone = draft.space.to_source(shapely.buffer(metric_fps[b], margin, quad_segs=4))
        zone = shapely.union(zone, footprints[b])
        others = footprints[(home != p) & (np.arange(len(footprints)) != b)]
        if len(others):
            zone = shapely.difference(zone, shapely.union_all(others))
        zone = draft.clean(shapely.intersection(zone, grid))
        if zone.is_empty:
            continue
        for q in range(len(out)):
            out[q] = draft.clean(shapely.union(out[q], zone) if q == p else shapely.difference(out[q], zone))
    return [p for p in out if not p.is_empty]


def split_grid(
    grids: gpd.GeoDataFrame,
    key: int,
    line: Any,
    *,
    buildings: gpd.GeoDataFrame | None = None,
    crs: Any = None,
    extend: float = EXTEND_M,
    snap: float = SNAP_M,
    building_buffer: float = BUILDING_BUFFER_M,
    min_piece: float = MIN_PIECE_M2,
) -> gpd.GeoDataFrame:
    """Cut grid ``key`` along a drawn LineString; every piece becomes a new grid.

    ``line`` is in the frame's CRS, or in lon/lat (recognised when the frame is projected and the
    coordinates can only be degrees; pass ``crs`` to say so explicitly). Its vertices snap to the
    grid's vertices and edges within ``snap`` metres and both end segments are extended by ``extend``
    metres, so a line drawn to just short of (or just past) the edge still cuts; parts of the line
    beyond the grid are ignored. The line must cut the grid into at least two pieces (pieces smaller
    than ``min_piece`` m² are given back to a neighbouring piece). Parts of a MultiPolygon grid the
    line does not cut join the nearest piece.

    With ``buildings`` (footprints, any CRS), no building is cut: each footprint the line crosses,
    plus ``building_buffer`` metres around it, goes wholly to the piece holding its larger part.

    The pieces replace the grid (in reading order, at its position), with new keys, no code and the
    grid's other attributes. Raises :class:`EditError`.
    """
    draft = _Draft(grids)
    pos = draft.pos(key)
    grid = draft.geoms[pos]
    drawn = draft.user_geometry(line, crs, "line", ("LineString",))
    if draft.space.to_metric(drawn).length <= 0:
        raise EditError("the line has no length: draw it across the grid")
    space = draft.space
    drawn = _snap(drawn, _linework([grid]), space.units(snap))
    cutter = _extend_line(drawn, space, extend)
    cut, whole = _cut(grid, cutter)
    pieces: list[Any] = [draft.clean(f) for f in cut]
    pieces = _absorb_small([p for p in pieces if not p.is_empty], draft, min_piece)
    if len(pieces) < 2:
        raise EditError(
            f"the line does not cut {draft.label(pos)} in two: draw it across the grid, from edge to edge"
        )
    for part in whole:  # uncut parts of a MultiPolygon grid join the nearest piece
        mp = space.to_metric(part)
        j = int(np.argmin([mp.distance(space.to_metric(p)) for p in pieces]))
        pieces[j] = draft.clean(shapely.union(pieces[j], part))
    if buildings is not None:
        pieces = _keep_buildings_whole(pieces, grid, buildings, draft, building_buffer)
        pieces = _absorb_small(pieces, draft, min_piece)
        if len(pieces) < 2:
            raise EditError(
                f"keeping buildings whole leaves nothing on one side of the line in {draft.label(pos)}: "
                "draw the line between buildings"
            )
    order = _reading_positions(pieces, draft)
    rows: list[tuple[int, Any, bool]] = []
    for i, g in enumerate(draft.geoms):
        if i == pos:
            rows.extend((pos, pieces[j], True) for j in order)
        else:
            rows.append((i, g, False))
    return draft.rebuild(rows)


def _reading_positions(pieces: Sequence[Any], draft: _Draft) -> list[int]:
    series = gpd.GeoSeries(list(pieces), crs=draft.frame.crs)
    return [int(i) for i in reading_order(series)]


# --------------------------------------------------------------------------------------------
# Merge
# --------------------------------------------------------------------------------------------


def _components(n: int, adjacent: dict[int, set[int]]) -> list[list[int]]:
    seen: set[int] = set()
    out: list[list[int]] = []
    for start in range(n):
        if start in seen:
            continue
        stack, comp = [start], []
        seen.add(start)
        while stack:
            i = stack.pop()
            comp.append(i)
            for j in adjacent[i] - seen:
                seen.add(j)
                stack.append(j)
        out.append(sorted(comp))
    return out


def merge_grids(grids: gpd.GeoDataFrame, keys: Sequence[int], *, min_edge: float = MIN_EDGE_M) -> gpd.GeoDataFrame:
    """Merge two or more grids that form one connected piece into a new grid.

    Grids are connected through shared edges at least ``min_edge`` metres long (touching at a point
    is not enough; overlapping dedicated grids count as connected). All must be of the same kind.
    The merged grid takes the first grid's place and attributes (``keys[0]``), a new key and no
    code. Raises :class:`EditError`.
    """
    draft = _Draft(grids)
    if isinstance(keys, str | bytes) or not isinstance(keys, Iterable):
        raise EditError("give the keys of two or more grids to merge")
    positions: list[int] = []
    for k in keys:
        p = draft.pos(k)
        if p not in positions:
            positions.append(p)
    if len(positions) < 2:
        raise EditError("select at least two different grids to merge")
    _require_grid_kind(draft, positions, "merge")
    geoms = [draft.geoms[p] for p in positions]
    adjacent: dict[int, set[int]] = {i: set() for i in range(len(positions))}
    metric = [draft.metric[p] for p in positions]
    for i in range(len(positions)):
        for j in range(i + 1, len(positions)):
            if metric[i].distance(metric[j]) > _EDGE_PROBE_M:
                continue
            overlap = draft.area(shapely.intersection(geoms[i], geoms[j]))
            if overlap > SLIVER_M2 or _shared_length(draft.space, geoms[i], geoms[j]) >= min_edge:
                adjacent[i].add(j)
                adjacent[j].add(i)
    groups = _components(len(positions), adjacent)
    if len(groups) > 1:
        described = "; ".join(", ".join(str(draft.keys[positions[i]]) for i in g) for g in groups)
        raise EditError(
            f"the grids are not neighbours: they fall into {len(groups)} separate groups ({described}); "
            "grids to merge must share an edge, touching at a corner is not enough"
        )
    merged = draft.clean(shapely.union_all(np.asarray(geoms, dtype=object)))
    first = positions[0]
    removed = set(positions[1:])
    rows: list[tuple[int, Any, bool]] = []
    for i, g in enumerate(draft.geoms):
        if i == first:
            rows.append((first, merged, True))
        elif i not in removed:
            rows.append((i, g, False))
    return draft.rebuild(rows)


# --------------------------------------------------------------------------------------------
# Move buildings
# --------------------------------------------------------------------------------------------


def _voronoi_cells(points_m: FloatArray, extent: Any) -> list[Any]:
    """Voronoi cells (metric) of the points, in input order; coincident points share a cell."""
    if len(points_m) == 1:
        return [extent]
    snapped = np.round(points_m, 3)
    sites, inverse = np.unique(snapped, axis=0, return_inverse=True)
    if len(sites) == 1:
        return [extent] * len(points_m)
    diagram = shapely.voronoi_polygons(shapely.multipoints(sites), extend_to=extent, ordered=True)
    cells = np.asarray(shapely.intersection(shapely.get_parts(diagram), extent), dtype=object)
    return [cells[int(i)] for i in np.asarray(inverse).reshape(-1)]


def move_buildings(
    grids: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    ids: Any,
    *,
    to: int,
    id_column: str = "id",
) -> gpd.GeoDataFrame:
    """Move buildings (by ``id``) from their current base grid into base grid ``to``.

    A building's current grid is the base grid holding its representative point. What moves is the
    building's *cell*: its Voronoi cell among the buildings of its current grid (computed in metres),
    clipped to that grid, together with the part of its footprint in that grid — minus the footprints
    of the buildings that stay. Buildings already in ``to`` are skipped. The source grid(s) and ``to``
    keep their keys and codes. Raises :class:`EditError` when ``to`` is not a base grid, an id is
    unknown or in no base grid, the moved cells do not touch ``to`` along an edge (``to`` would fall
    apart), or a source grid would be left without area (merge the grids instead). A source grid may
    become a MultiPolygon when the building moved out of its middle.
    """
    draft = _Draft(grids)
    target = draft.pos(to)
    if draft.kinds[target] != "base":
        raise EditError(f"buildings can only be moved into a base grid; {draft.label(target)} is dedicated")
    require_crs(buildings)
    if id_column not in buildings.columns:
        raise ValueError(f"the buildings frame has no {id_column!r} column")
    wanted = [ids] if isinstance(ids, str | int | np.integer) else list(ids)
    if not wanted:
        raise EditError("select at least one building to move")
    frame = buildings
    if not pyproj.CRS.from_user_input(buildings.crs).equals(draft.space.source):
        frame = buildings.to_crs(draft.frame.crs)
    id_values = frame[id_column].to_numpy()
    index_of: dict[Any, int] = {}
    for i, v in enumerate(id_values):
        index_of.setdefault(v, i)
    missing = [w for w in wanted if w not in index_of]
    if missing:
        raise EditError(f"unknown building id(s): {missing[:10]}")
    footprints = np.asarray(frame.geometry.values, dtype=object)
    valid = ~(shapely.is_missing(footprints) | shapely.is_empty(footprints))
    bad = [w for w in wanted if not valid[index_of[w]]]
    if bad:
        raise EditError(f"building(s) {bad[:10]} have no footprint")

    base = draft.base()
    base_geoms = np.asarray([draft.geoms[p] for p in base], dtype=object)
    rows = np.flatnonzero(valid)
    fps = np.asarray([g if g.is_valid else shapely.make_valid(g) for g in footprints[rows]], dtype=object)
    reps = shapely.point_on_surface(fps)
    hit_pt, hit_grid = shapely.STRtree(base_geoms).query(reps, predicate="intersects")
    order = np.lexsort((hit_grid, hit_pt))
    hit_pt, hit_grid = hit_pt[order], hit_grid[order]
    first = np.concatenate(([True], hit_pt[1:] != hit_pt[:-1])) if len(hit_pt) else np.zeros(0, dtype=bool)
    home = np.full(len(rows), -1, dtype=np.int64)
    home[hit_pt[first]] = np.asarray(base, dtype=np.int64)[hit_grid[first]]  # on a shared edge: first grid
    row_of = {int(r): i for i, r in enumerate(rows)}

    moving: dict[int, list[int]] = {}
    for w in dict.fromkeys(wanted):
        i = row_of[index_of[w]]
        if home[i] < 0:
            raise EditError(f"building {w!r} lies in no base grid of this draft")
        if home[i] != target:
            moving.setdefault(int(home[i]), []).append(i)
    if not moving:
        raise EditError(f"the selected building(s) are already in {draft.label(target)}")

    space = draft.space
    new_geoms: dict[int, Any] = {}
    moved_all: list[Any] = []
    for source, movers in moving.items():
        grid = draft.geoms[source]
        members = np.flatnonzero(home == source)
        points_m = shapely.get_coordinates(space.to_metric(reps[members]))
        minx, miny, maxx, maxy = shapely.bounds(draft.metric[source])
        pad = max(maxx - minx, maxy - miny) + 100.0
        extent = shapely.box(minx - pad, miny - pad, maxx + pad, maxy + pad)
        cells = _voronoi_cells(points_m, extent)
        local = {int(m): j for j, m in enumerate(members)}
        mover_set = set(movers)
        taken = [space.to_source(cells[local[i]]) for i in movers] + [fps[i] for i in movers]
        region = shapely.intersection(shapely.union_all(np.asarray(taken, dtype=object)), grid)
        stay = [fps[int(m)] for m in members if int(m) not in mover_set]
        if stay:
            region = shapely.difference(region, shapely.union_all(np.asarray(stay, dtype=object)))
        region = draft.clean(region)
        if region.is_empty:
            continue
        rest = draft.clean(shapely.difference(grid, region))
        if draft.area(rest) < MIN_PIECE_M2:
            raise EditError(
                f"moving the building(s) would leave {draft.label(source)} without area: merge the grids instead"
            )
        new_geoms[source] = rest
        moved_all.append(region)
    if not moved_all:
        raise EditError("the selected buildings carry no area to move")
    moved = shapely.union_all(np.asarray(moved_all, dtype=object))
    grown = draft.clean(shapely.union(draft.geoms[target], moved))
    before = len(_polygons(draft.clean(draft.geoms[target])))
    if len(_polygons(grown)) > before:
        raise EditError(
            f"the building(s) do not border {draft.label(target)}: their cells must touch it along an edge "
            "(the grid would fall apart)"
        )
    new_geoms[target] = grown
    return draft.rebuild([(i, new_geoms.get(i, g), False) for i, g in enumerate(draft.geoms)])


# --------------------------------------------------------------------------------------------
# Reshape
# --------------------------------------------------------------------------------------------


def _parent_geometry(parent: Any, draft: _Draft) -> Any:
    if isinstance(parent, gpd.GeoDataFrame | gpd.GeoSeries):
        require_crs(parent)
        series = parent.geometry if isinstance(parent, gpd.GeoDataFrame) else parent
        geom = shapely.union_all(np.asarray(series.to_crs(draft.frame.crs).values, dtype=object))
    else:
        geom = parent
    if not isinstance(geom, shapely.Polygon | shapely.MultiPolygon) or geom.is_empty:
        raise ValueError("parent must be the village's (Multi)Polygon boundary in the grids' CRS, or a GeoSeries")
    return geom if geom.is_valid else shapely.make_valid(geom)


def _is_real_gap(piece: Any, draft: _Draft) -> bool:
    """At least MIN_PIECE_M2 and, on average, wider than _MIN_GAP_WIDTH_M (2 · area / perimeter): a
    parent reprojected separately from the grids leaves hairlines of a square metre or more along
    long edges (straight in one CRS, bowed by millimetres in the other)."""
    area = draft.area(piece)
    if area < MIN_PIECE_M2:
        return False
    perimeter = float(draft.space.to_metric(piece).length)
    return perimeter > 0 and 2.0 * area / perimeter >= _MIN_GAP_WIDTH_M


def reshape_grid(
    grids: gpd.GeoDataFrame,
    key: int,
    outline: Any,
    *,
    parent: Any,
    crs: Any = None,
    snap: float = SNAP_M,
) -> gpd.GeoDataFrame:
    """Give grid ``key`` a new outline: ``outline ∩ parent``.

    ``outline`` is a drawn (Multi)Polygon in the frame's CRS or lon/lat (see :func:`split_grid`);
    its vertices snap to the existing grid edges and the parent's boundary within ``snap`` metres.
    ``parent`` is the village boundary (a shapely geometry in the frame's CRS, or a GeoSeries /
    GeoDataFrame in any CRS). Where the base grids tile the parent, the outline is clipped to their
    union — their own outer edges, so a parent reprojected separately (edges a hair off the grids')
    leaves no slivers; real gaps (1 m² or more, 10 cm wide on average) between the grids and the
    parent may be taken. For a base grid, the area it now takes is removed from the other base
    grids, and each connected piece of area it gives up goes to the base grid sharing the longest
    edge with that piece, so the base grids still tile the village exactly. A dedicated grid just
    takes the new outline. The grid and its neighbours keep their keys and codes. Raises
    :class:`EditError` when the outline leaves the grid (nearly) empty or unchanged, swallows another
    grid, or gives up area no other grid borders.
    """
    draft = _Draft(grids)
    pos = draft.pos(key)
    old = draft.geoms[pos]
    boundary = _parent_geometry(parent, draft)
    drawn = draft.user_geometry(outline, crs, "outline", ("Polygon", "MultiPolygon"))
    if not drawn.is_valid:
        drawn = _as_polygonal(_polygons(shapely.make_valid(drawn)))
    space = draft.space
    near = shapely.STRtree(draft.geoms).query(drawn, predicate="dwithin", distance=space.units(max(snap, 0.0)) * 2)
    reference = _linework([draft.geoms[int(i)] for i in near if draft.kinds[int(i)] == "base" or int(i) == pos] + [boundary])
    snapped = _snap(drawn, reference, space.units(snap))
    if not snapped.is_valid:
        snapped = shapely.make_valid(snapped)
    # Clip to the village as the base grids tile it (exact: their own edges), plus any real gap
    # (parts of at least MIN_PIECE_M2) the parent has beyond them: a parent whose edges miss the
    # grids' outer edges by a hair (e.g. reprojected separately) must not leave hairline slivers.
    covered = shapely.union_all(np.asarray([draft.geoms[i] for i in draft.base()], dtype=object))
    gaps = [g for g in _polygons(draft.clean(shapely.difference(boundary, covered))) if _is_real_gap(g, draft)]
    village = shapely.union(covered, _as_polygonal(gaps)) if gaps else covered
    new = draft.clean(shapely.intersection(snapped, village))
    if draft.area(new) < MIN_PIECE_M2:
        raise EditError(f"the outline leaves {draft.label(pos)} without area inside the village")
    if draft.area(shapely.symmetric_difference(new, old)) < MIN_PIECE_M2:
        raise EditError(f"the outline does not change {draft.label(pos)}")
    changes: dict[int, Any] = {pos: new}
    if draft.kinds[pos] == "base":
        others = draft.base(exclude=[pos])
        shapely.prepare(new)
        for o in others:
            g = draft.geoms[o]
            if not new.intersects(g) or draft.area(shapely.intersection(new, g)) <= SLIVER_M2:
                continue
            rest = draft.clean(shapely.difference(g, new))
            if draft.area(rest) < MIN_PIECE_M2:
                raise EditError(
                    f"the outline covers all of {draft.label(o)}: merge the grids instead of reshaping"
                )
            changes[o] = rest
        released = draft.clean(shapely.difference(old, new))
        for piece in _polygons(released):
            best, best_len = -1, 0.0
            for o in others:
                length = _shared_length(space, piece, changes.get(o, draft.geoms[o]))
                if length > best_len:
                    best, best_len = o, length
            if best < 0:
                if draft.area(piece) < MIN_PIECE_M2:
                    continue
                raise EditError(
                    f"the outline gives up {draft.area(piece):.0f} m² of {draft.label(pos)} that no other "
                    "grid borders: include it in the outline"
                )
            changes[best] = draft.clean(shapely.union(changes.get(best, draft.geoms[best]), piece))
    return draft.rebuild([(i, changes.get(i, g), False) for i, g in enumerate(draft.geoms)])


# --------------------------------------------------------------------------------------------
# Replace
# --------------------------------------------------------------------------------------------


def _mismatch(geom: Any, draft: _Draft) -> float:
    """m² of the polygon parts of ``geom`` that are not hairlines (mean width 2 · area / perimeter of
    at least _MIN_MISMATCH_WIDTH_M): hairlines are reprojection noise, fitted away silently."""
    total = 0.0
    for part in _polygons(geom):
        area = draft.area(part)
        perimeter = float(draft.space.to_metric(part).length)
        if perimeter > 0 and 2.0 * area / perimeter >= _MIN_MISMATCH_WIDTH_M:
            total += area
    return total


def replace_grids(
    grids: gpd.GeoDataFrame,
    keys: Sequence[int],
    new_pieces: Any,
    *,
    tolerance: float = SLIVER_M2,
) -> gpd.GeoDataFrame:
    """Replace grids ``keys`` by new pieces (e.g. a re-partition of their union).

    ``new_pieces`` is a GeoDataFrame/GeoSeries (any CRS) or a sequence/array of shapely polygons in
    the frame's CRS. The pieces must cover exactly the union of the replaced grids: gaps, parts
    outside it and overlaps between pieces may each total at most ``tolerance`` m² or a millionth of
    the union's area, whichever is larger (0.03 m² for three grids of a hectare), else
    :class:`EditError`; hairlines (less than 1 cm wide on average, as reprojection leaves along
    long edges) do not count. Within that tolerance the pieces are
    then fitted exactly (clipped to the union, overlaps removed, gaps given to the piece sharing the
    longest edge). New grids are of the replaced grids' kind, take the first replaced grid's place and
    attributes — overridden by same-named columns of a ``new_pieces`` GeoDataFrame — new keys (in
    reading order) and no code.
    """
    draft = _Draft(grids)
    if isinstance(keys, str | bytes) or not isinstance(keys, Iterable):
        raise EditError("give the keys of the grids to replace")
    positions: list[int] = []
    for k in keys:
        p = draft.pos(k)
        if p not in positions:
            positions.append(p)
    if not positions:
        raise EditError("select at least one grid to replace")
    _require_grid_kind(draft, positions, "replace")
    attrs: pd.DataFrame | None = None
    if isinstance(new_pieces, gpd.GeoDataFrame | gpd.GeoSeries):
        require_crs(new_pieces)
        converted = new_pieces.to_crs(draft.frame.crs)
        if isinstance(converted, gpd.GeoDataFrame):
            attrs = pd.DataFrame(converted.drop(columns=converted.geometry.name))
        raw = list(np.asarray(converted.geometry.values, dtype=object))
    else:
        raw = list(new_pieces)
    if not raw:
        raise EditError("no new pieces were given")
    pieces: list[Any] = []
    for i, g in enumerate(raw):
        if not isinstance(g, shapely.Polygon | shapely.MultiPolygon) or g.is_empty:
            raise EditError(f"new piece {i} is not a non-empty (Multi)Polygon")
        pieces.append(g if g.is_valid else shapely.make_valid(g))
    region = shapely.union_all(np.asarray([draft.geoms[p] for p in positions], dtype=object))
    union = shapely.union_all(np.asarray(pieces, dtype=object))
    region_area = draft.area(region)
    allowed = max(tolerance, 1e-6 * region_area)
    gap = _mismatch(shapely.difference(region, union), draft)
    outside = _mismatch(shapely.difference(union, region), draft)
    overlap = sum(
        _mismatch(shapely.intersection(a, b), draft)
        for i, a in enumerate(pieces)
        for b in pieces[i + 1 :]
        if a.intersects(b)
    )
    problems = []
    if gap > allowed:
        problems.append(f"they leave {gap:.2f} m² uncovered")
    if outside > allowed:
        problems.append(f"{outside:.2f} m² lie outside the replaced grids")
    if overlap > allowed:
        problems.append(f"they overlap by {overlap:.2f} m²")
    if problems:
        raise EditError(
            "the new pieces do not cover exactly the grids they replace: " + "; ".join(problems)
            + f" (tolerance {allowed:.2f} m²)"
        )
    fitted: list[Any] = []
    covered: Any = shapely.Polygon()
    for g in pieces:
        piece = draft.clean(shapely.difference(shapely.intersection(g, region), covered))
        fitted.append(piece)
        covered = shapely.union(covered, piece)
    for leftover in _polygons(shapely.difference(region, covered)):  # gaps within tolerance, however small
        j = _join([*fitted, leftover], draft, len(fitted))
        if j >= 0:
            fitted[j] = draft.clean(shapely.union(fitted[j], leftover))
    keep = [i for i, g in enumerate(fitted) if draft.area(g) >= MIN_PIECE_M2 or len(fitted) == 1]
    if not keep or any(fitted[i].is_empty for i in keep):
        raise EditError("the new pieces are empty inside the replaced grids")
    for i in range(len(fitted)):
        if i not in keep and not fitted[i].is_empty:  # a crumb: give it to a kept neighbour
            candidates = [g if k in keep or k == i else shapely.Polygon() for k, g in enumerate(fitted)]
            j = _join(candidates, draft, i)
            if j >= 0:
                fitted[j] = draft.clean(shapely.union(fitted[j], fitted[i]))
            fitted[i] = shapely.Polygon()
    final = [fitted[i] for i in keep]
    final_attrs = attrs.iloc[keep].reset_index(drop=True) if attrs is not None else None
    order = _reading_positions(final, draft)
    first = positions[0]
    removed = set(positions[1:])
    rows: list[tuple[int, Any, bool]] = []
    for i, g in enumerate(draft.geoms):
        if i == first:
            rows.extend((first, final[j], True) for j in order)
        elif i not in removed:
            rows.append((i, g, False))
    out = draft.rebuild(rows)
    if final_attrs is not None:
        protected = {"key", "code", "kind", draft.frame.geometry.name}
        shared = [c for c in final_attrs.columns if c in out.columns and c not in protected]
        if shared:
            at = first - sum(1 for p in removed if p < first)
            for n, j in enumerate(order):
                for c in shared:
                    out.at[at + n, c] = final_attrs.at[j, c]
    return out
