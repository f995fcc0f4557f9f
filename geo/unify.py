"""Unified grids (多网合一): merging several departments' legacy grid layers into one set.

Civil affairs, police, urban management, market supervision ... each keep their own grid layer
for the same territory, and the layers disagree. Dalian merged six or seven such layers into one
unified set so that every department uses the same grids. :func:`unify` proposes that set and
says how each legacy grid maps onto it; :func:`disagreements` only reports where the layers
disagree.

Method
------
1. **Check and reproject.** Every layer must be a GeoDataFrame with a CRS (else
   :class:`~geo.errors.CRSError`), polygons only, with a unique, non-null ``code`` per row.
   Invalid polygons (bow-ties, rings touching themselves) are repaired with
   :func:`shapely.make_valid`, keeping the polygonal parts; each repair is recorded in
   :attr:`Unified.notes`. All layers are reprojected to one metric CRS: the output CRS itself when
   it is projected in metres, else the UTM zone of the first layer's centre. A frame labelled
   lon/lat whose coordinates are not degrees, or labelled projected whose coordinates look like
   degrees, is rejected (``ValueError``).
2. **Snap.** Layers are snapped in order, each onto the boundaries already placed (the
   ``boundary`` first, then the earlier layers): vertices within ``snap_m`` of a reference vertex
   move onto it (:func:`shapely.snap`, which also inserts reference vertices into nearby
   segments), then vertices within ``snap_m`` of a reference edge move onto that edge. Edges that
   were digitized twice with a metre or two of noise then coincide.
3. **Common refinement.** The territory is ``boundary`` or the union of all layers. The
   boundaries of all grids (and of the territory) are noded and polygonized into *faces*: every
   face lies in exactly one grid of each layer that covers it. Faces outside the territory are
   dropped.
4. **Slivers.** A piece is a sliver when its area is below ``min_area_m2`` or its mean width
   ``2·area/perimeter`` is below ``2·snap_m`` (the strips that digitizing differences leave).
   Slivers, smallest first, are merged into the neighbour with the longest shared edge (a
   non-sliver neighbour when there is one). Each merged piece takes, per layer, the legacy grid
   covering most of its area (no grid when the layer covers less than half of it).
5. **Outer edges.** Neighbouring pieces that no layer separates (some layer covers both and every
   layer covering both has them in the same grid: the edge is only where another layer's
   coverage ends) are joined, never putting two grids of one layer together. A bow-tie repaired
   into two triangles thus leaves its grid's other two triangles as *coverage* gaps instead of
   cutting the other layers' grid into four.
6. **Households band** (only with ``buildings`` and ``band``). Buildings are counted in the piece
   holding their representative point. While some piece has fewer households than the band's
   minimum, the smallest one is merged with a neighbour, never pushing the sum above the band's
   maximum (empty pieces may always merge), preferring (in this order) neighbours in the same
   legacy grids of more layers, results inside the band, and compact results (Polsby–Popper
   ``4πA/P²``). Pieces above the band are not split (that is :func:`geo.partition.partition`'s
   job); both cases are listed in the notes. Without a band the pieces are the unified grids.
7. Unified grids are numbered 1… in reading order (north→south, west→east).

Disagreements and agreement
---------------------------
After step 4 (before steps 5 and 6), an edge between two pieces is a *boundary disagreement*
when, among the layers covering both sides, some put the two pieces in different grids (they
draw the edge) and others in the same grid (they do not). Pieces joined by such edges form *disagreement zones*, reported
with ``kind="boundary"`` and ``layers`` = the layers drawing the disputed edges. Pieces that some
layer does not cover form ``kind="coverage"`` features (contiguous pieces missing the same
layers are dissolved), ``layers`` = the layers missing there. A piece may be in both kinds.

``agreement`` is the share of the territory's area lying in pieces that every layer covers and
that are in no boundary-disagreement zone: there, every layer draws exactly the same grid (up to
``snap_m`` / ``min_area_m2`` noise). Identical layers give 1.0.

Crosswalk
---------
For every legacy grid of every layer and every unified grid it overlaps: the overlap's area in
m², ``share_of_legacy`` (overlap / the legacy grid's whole area, so it sums to ~1 per legacy grid
lying inside the territory), ``share_of_unified`` (overlap / the unified grid's area) and the
households of buildings whose representative point falls in the overlap (``<NA>`` without
buildings). Overlaps are exact, slivers included: a row with a tiny share is usually a
digitizing difference the sliver step absorbed.

Everything is computed in metres; frames are returned in the CRS of the first layer (or ``crs``).
Inputs are never modified.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyproj
import shapely

from geo._types import FloatArray, IntArray
from geo.codes import reading_order
from geo.crs import metric_crs, require_crs, to_wgs84
from geo.errors import CRSError

__all__ = ["Unified", "disagreements", "unify"]

ObjArray = npt.NDArray[Any]

_FORBIDDEN_IN_NAMES = ",;:"
_DATUM_SHIFT_ATTR = "datum_shift"
# Noding precision (metres) used only when exact noding of the linework fails.
_FALLBACK_GRID_SIZE = 1e-3
# Digits kept when matching face edges (metres): identical edges share bit-identical vertices.
_EDGE_DECIMALS = 6


@dataclass(frozen=True)
class Unified:
    """The result of :func:`unify`.

    * ``grids``: the proposed unified grids, columns ``key`` (int, 1… in reading order),
      ``households`` (only when buildings were given), ``area_m2``, ``sources`` (the legacy grids
      it came from, e.g. ``"civil:A01; police:P3,P4"``, listing per layer the grids covering at
      least ``min_area_m2`` or half of it, largest first) and ``geometry``.
    * ``crosswalk``: ``layer``, ``legacy_code``, ``unified_key``, ``area_m2``, ``share_of_legacy``,
      ``share_of_unified``, ``households`` (nullable Int64/float; ``<NA>`` without buildings).
    * ``disagreements``: ``area_m2``, ``layers``, ``kind`` (``"boundary"``/``"coverage"``),
      ``geometry`` (see the module docstring).
    * ``agreement``: share of the territory where all layers cover it and draw the same grid.
    * ``notes``: what was repaired, reprojected, merged or left out of the band, in plain words.
    """

    grids: gpd.GeoDataFrame
    crosswalk: pd.DataFrame
    disagreements: gpd.GeoDataFrame
    agreement: float
    notes: tuple[str, ...] = ()


# --------------------------------------------------------------------------------------------
# Input checks
# --------------------------------------------------------------------------------------------


@dataclass
class _Layer:
    name: str
    codes: list[str]
    geoms: ObjArray  # metric, snapped, valid Polygon/MultiPolygon
    area: FloatArray


def _check_number(name: str, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"{name} must be a number of metres, got {value!r}") from exc
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return number


def _check_band(band: Any) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in band)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"band must be a (min, max) pair of household counts, got {band!r}") from exc
    if not (math.isfinite(lo) and math.isfinite(hi) and 0 < lo <= hi):
        raise ValueError(f"band must satisfy 0 < min <= max, got {band!r}")
    return lo, hi


def _polygonal(geom: Any) -> Any:
    """The polygonal parts of a geometry as a Polygon/MultiPolygon (possibly empty)."""
    if geom is None:
        return shapely.Polygon()
    if geom.geom_type in ("Polygon", "MultiPolygon"):
        return geom
    polys: list[Any] = []
    for part in shapely.get_parts(geom):
        if part.geom_type == "Polygon" and part.area > 0:
            polys.append(part)
        elif part.geom_type == "MultiPolygon":
            polys.extend(part.geoms)
        elif part.geom_type == "GeometryCollection":
            sub = _polygonal(part)
            if not sub.is_empty:
                polys.extend(shapely.get_parts(sub))
    if not polys:
        return shapely.Polygon()
    return polys[0] if len(polys) == 1 else shapely.MultiPolygon(polys)


def _codes(frame: gpd.GeoDataFrame, code: str, name: str) -> list[str]:
    if code not in frame.columns:
        raise ValueError(f"layer {name!r} has no code column {code!r}; columns are {list(frame.columns)}")
    column = frame[code]
    nulls = column.isna().to_numpy()
    if nulls.any():
        rows = list(frame.index[nulls][:10])
        raise ValueError(f"layer {name!r}: {int(nulls.sum())} grid(s) have no code in {code!r} (rows {rows})")
    if pd.api.types.is_float_dtype(column) and bool((column == column.round()).all()):
        column = column.astype(np.int64)
    codes = [str(v) for v in column]
    seen: dict[str, int] = {}
    for c in codes:
        seen[c] = seen.get(c, 0) + 1
    duplicates = sorted(c for c, n in seen.items() if n > 1)
    if duplicates:
        shown = ", ".join(repr(c) for c in duplicates[:10])
        raise ValueError(
            f"layer {name!r}: duplicate codes in {code!r}: {shown}{' ...' if len(duplicates) > 10 else ''}; "
            "every legacy grid needs its own code"
        )
    return codes


def _check_geometries(frame: gpd.GeoDataFrame, codes: list[str], name: str, notes: list[str]) -> ObjArray:
    """Polygonal, non-empty, finite, valid (repaired) geometries in the frame's own CRS."""
    values = np.asarray(frame.geometry.values, dtype=object).copy()
    missing = np.asarray(shapely.is_missing(values) | shapely.is_empty(values), dtype=bool)
    if missing.any():
        which = [codes[i] for i in np.flatnonzero(missing)[:10]]
        raise ValueError(
            f"layer {name!r}: {int(missing.sum())} grid(s) have null or empty geometry (codes {which})"
        )
    coords = shapely.get_coordinates(values)
    if not np.isfinite(coords).all():
        raise ValueError(f"layer {name!r}: geometries contain NaN or infinite coordinates")
    types = shapely.get_type_id(values)
    wrong = ~np.isin(types, (3, 6))  # Polygon, MultiPolygon
    if wrong.any():
        first = int(np.flatnonzero(wrong)[0])
        raise ValueError(
            f"layer {name!r}: grids must be polygons; {int(wrong.sum())} are not "
            f"(code {codes[first]!r} is a {values[first].geom_type})"
        )
    invalid = np.flatnonzero(~np.asarray(shapely.is_valid(values), dtype=bool))
    if len(invalid):
        reasons = shapely.is_valid_reason(values[invalid])
        repaired = shapely.make_valid(values[invalid])
        described = []
        for j, i in enumerate(invalid):
            fixed = _polygonal(repaired[j])
            if fixed.is_empty or fixed.area <= 0:
                raise ValueError(
                    f"layer {name!r}: grid {codes[i]!r} is invalid ({reasons[j]}) and has no area left after repair"
                )
            values[i] = fixed
            described.append(f"{codes[i]} ({reasons[j]})")
        notes.append(
            f"layer {name!r}: repaired {len(invalid)} invalid geometr{'y' if len(invalid) == 1 else 'ies'} "
            f"with make_valid: {'; '.join(described[:10])}{' ...' if len(described) > 10 else ''}"
        )
    return values


def _check_units(frame: gpd.GeoDataFrame, values: ObjArray, name: str) -> None:
    """Reject frames whose CRS label plainly contradicts their coordinates."""
    crs = pyproj.CRS.from_user_input(frame.crs)
    minx, miny, maxx, maxy = (float(v) for v in shapely.total_bounds(values))
    looks_lonlat = -180.0 <= minx and maxx <= 180.0 and -90.0 <= miny and maxy <= 90.0
    if crs.is_geographic and not looks_lonlat:
        raise CRSError(
            f"layer {name!r} is labelled {crs.name} (longitude/latitude) but its coordinates "
            f"(bounds {minx:.1f}, {miny:.1f}, {maxx:.1f}, {maxy:.1f}) are not degrees; "
            "are they metres in a projected CRS? Set the right CRS with .set_crs(..., allow_override=True)"
        )
    if not crs.is_geographic and looks_lonlat and float(np.median(shapely.area(values))) < 1.0:
        raise CRSError(
            f"layer {name!r} is labelled {crs.name} (projected, metres) but its coordinates "
            f"(bounds {minx:.4f}, {miny:.4f}, {maxx:.4f}, {maxy:.4f}) look like longitude/latitude degrees; "
            "label it EPSG:4326 or EPSG:4490 with .set_crs(..., allow_override=True)"
        )


def _working_crs(out_crs: pyproj.CRS, first: gpd.GeoDataFrame) -> pyproj.CRS:
    if out_crs.is_projected and all(
        (axis.unit_name or "").lower() in ("metre", "meter") for axis in out_crs.axis_info
    ):
        return out_crs
    return metric_crs(first)


def _read_layers(
    layers: Mapping[str, gpd.GeoDataFrame], code: str, crs: Any, notes: list[str]
) -> tuple[list[tuple[str, list[str], gpd.GeoSeries]], pyproj.CRS, pyproj.CRS]:
    """Validated layers as (name, codes, metric GeoSeries), the output CRS and the working CRS."""
    if not isinstance(layers, Mapping):
        raise TypeError(
            f"layers must be a mapping of layer name -> GeoDataFrame, got {type(layers).__name__}"
        )
    if len(layers) == 0:
        raise ValueError("no layers given: pass a mapping of layer name -> GeoDataFrame of legacy grids")
    checked: list[tuple[str, list[str], gpd.GeoDataFrame, ObjArray]] = []
    for name, frame in layers.items():
        if not isinstance(name, str) or not name.strip() or any(c in name for c in _FORBIDDEN_IN_NAMES):
            raise ValueError(
                f"layer names must be non-empty strings without {', '.join(repr(c) for c in _FORBIDDEN_IN_NAMES)}; "
                f"got {name!r}"
            )
        if not isinstance(frame, gpd.GeoDataFrame):
            raise TypeError(f"layer {name!r} must be a GeoDataFrame, got {type(frame).__name__}")
        try:
            require_crs(frame)
        except CRSError as exc:
            raise CRSError(f"layer {name!r}: {exc}") from exc
        if len(frame) == 0:
            raise ValueError(f"layer {name!r} has no grids")
        codes = _codes(frame, code, name)
        if frame.attrs.get(_DATUM_SHIFT_ATTR):
            notes.append(f"layer {name!r}: shifted from {frame.attrs[_DATUM_SHIFT_ATTR]} back to WGS84")
            frame = to_wgs84(frame)
        values = _check_geometries(frame, codes, name, notes)
        _check_units(frame, values, name)
        checked.append((name, codes, frame, values))
    first = checked[0][2]
    out_crs = pyproj.CRS.from_user_input(first.crs if crs is None else crs)
    working = _working_crs(out_crs, first)
    result: list[tuple[str, list[str], gpd.GeoSeries]] = []
    for name, codes, frame, values in checked:
        series = gpd.GeoSeries(values, crs=frame.crs)
        source = pyproj.CRS.from_user_input(frame.crs)
        if not source.equals(working):
            series = series.to_crs(working)
            if not source.equals(out_crs):
                notes.append(f"layer {name!r}: reprojected from {_crs_name(source)} to {_crs_name(out_crs)}")
        if not np.isfinite(shapely.get_coordinates(np.asarray(series.values, dtype=object))).all():
            raise CRSError(
                f"layer {name!r} could not be reprojected to {_crs_name(working)} (non-finite coordinates)"
            )
        result.append((name, codes, series))
    return result, out_crs, working


def _crs_name(crs: pyproj.CRS) -> str:
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg is not None else crs.name


def _territory(boundary: Any, out_crs: pyproj.CRS, working: pyproj.CRS, notes: list[str]) -> Any:
    """The boundary as one valid metric (Multi)Polygon, or None."""
    if boundary is None:
        return None
    geom: Any
    if isinstance(boundary, gpd.GeoDataFrame | gpd.GeoSeries):
        require_crs(boundary)
        series = boundary.geometry if isinstance(boundary, gpd.GeoDataFrame) else boundary
        values = np.asarray(series.to_crs(working).values, dtype=object)
        values = values[~np.asarray(shapely.is_missing(values), dtype=bool)]
        geom = shapely.union_all(shapely.make_valid(values)) if len(values) else shapely.Polygon()
    elif isinstance(boundary, shapely.Geometry):
        geom = boundary
        if not geom.is_empty:
            if not geom.is_valid:
                notes.append(f"boundary repaired with make_valid ({shapely.is_valid_reason(geom)})")
                geom = shapely.make_valid(geom)
            geom = gpd.GeoSeries([geom], crs=out_crs).to_crs(working).iloc[0]
    else:
        raise TypeError(
            "boundary must be a shapely (Multi)Polygon in the output CRS or a GeoDataFrame/GeoSeries "
            f"with a CRS, got {type(boundary).__name__}"
        )
    geom = _polygonal(geom)
    if geom.is_empty or geom.area <= 0:
        raise ValueError("boundary is empty or has no area")
    if not geom.is_valid:
        geom = _polygonal(shapely.make_valid(geom))
    return geom


# --------------------------------------------------------------------------------------------
# Snapping and the common refinement
# --------------------------------------------------------------------------------------------


def _make_valid_all(values: ObjArray) -> ObjArray:
    out = values.copy()
    bad = np.flatnonzero(~np.asarray(shapely.is_valid(out), dtype=bool))
    if len(bad):
        out[bad] = [_polygonal(g) for g in shapely.make_valid(out[bad])]
    return out


def _snap_to(values: ObjArray, reference: ObjArray, snap_m: float) -> ObjArray:
    """Snap polygons onto reference lines: vertex to vertex (GEOS snap), then vertex to edge."""
    tree = shapely.STRtree(reference)
    poly_idx, ref_idx = tree.query(values, predicate="dwithin", distance=snap_m)
    if len(poly_idx) == 0:
        return values.copy()
    out = values.copy()
    targets = np.unique(poly_idx)
    holder = np.empty(len(values), dtype=object)
    holder[:] = None
    collections = shapely.geometrycollections(reference[ref_idx], indices=poly_idx, out=holder)
    out[targets] = shapely.snap(values[targets], collections[targets], snap_m)
    out = _make_valid_all(out)
    # Vertices near a reference edge but no reference vertex: move them onto the edge.
    coords = shapely.get_coordinates(out)
    reference_xy = shapely.get_coordinates(reference)
    loose = np.flatnonzero(
        ~np.isin(coords[:, 0] + 1j * coords[:, 1], reference_xy[:, 0] + 1j * reference_xy[:, 1])
    )  # vertices already on a reference vertex stay
    points = np.asarray(shapely.points(coords[loose]), dtype=object)
    pt_idx, near_idx = tree.query_nearest(points, max_distance=snap_m, all_matches=False)
    if len(pt_idx):
        lines: Any = shapely.shortest_line(points[pt_idx], reference[near_idx])
        ends = shapely.get_coordinates(lines)[1::2]
        moved = coords.copy()
        moved[loose[pt_idx]] = ends
        if not np.array_equal(moved, coords):
            out = np.asarray(shapely.transform(out, lambda _c: moved), dtype=object)
            out = _make_valid_all(out)
    return out


def _snap_layers(series: list[ObjArray], territory: Any, snap_m: float) -> list[ObjArray]:
    references: list[ObjArray] = []
    if territory is not None:
        references.append(np.asarray([shapely.boundary(territory)], dtype=object))
    snapped: list[ObjArray] = []
    for values in series:
        out = values.copy()
        if snap_m > 0 and references:
            out = _snap_to(out, np.concatenate(references), snap_m)
        out = np.asarray([_polygonal(g) for g in out], dtype=object)
        snapped.append(out)
        references.append(np.asarray(shapely.boundary(out), dtype=object))
    return snapped


def _faces(layers: list[_Layer], territory: Any) -> ObjArray:
    """Faces of the arrangement of all grid boundaries (and the territory's)."""
    lines = [np.asarray(shapely.boundary(layer.geoms), dtype=object) for layer in layers]
    if territory is not None:
        lines.append(np.asarray([shapely.boundary(territory)], dtype=object))
    linework = np.concatenate(lines)
    linework = linework[~np.asarray(shapely.is_empty(linework), dtype=bool)]
    try:
        noded = shapely.union_all(linework)
    except shapely.errors.GEOSException:
        noded = shapely.union_all(linework, grid_size=_FALLBACK_GRID_SIZE)
    faces = np.asarray(shapely.get_parts(shapely.polygonize(shapely.get_parts(noded))), dtype=object)
    return faces[np.asarray(shapely.area(faces), dtype=np.float64) > 0]


def _locate(faces: ObjArray, layer: _Layer) -> IntArray:
    """For each face, the row of the layer's grid containing it (-1: none). Where grids of one
    layer overlap, the face goes to the first of them (by row)."""
    points = shapely.point_on_surface(faces)
    tree = shapely.STRtree(layer.geoms)
    face_idx, grid_idx = tree.query(points, predicate="within")
    located = np.full(len(faces), -1, dtype=np.int64)
    order = np.lexsort((grid_idx, face_idx))
    face_idx, grid_idx = face_idx[order], grid_idx[order]
    first = np.ones(len(face_idx), dtype=bool)
    first[1:] = face_idx[1:] != face_idx[:-1]
    located[face_idx[first]] = grid_idx[first]
    return located


def _self_overlap(values: ObjArray) -> float:
    """Total area (m²) where grids of one layer overlap each other."""
    tree = shapely.STRtree(values)
    i, j = tree.query(values, predicate="intersects")
    keep = i < j
    if not keep.any():
        return 0.0
    return float(shapely.area(shapely.intersection(values[i[keep]], values[j[keep]])).sum())


def _face_adjacency(faces: ObjArray) -> tuple[IntArray, IntArray, FloatArray]:
    """Pairs of faces sharing edges (i < j) and the shared length. Faces of one polygonized
    arrangement share bit-identical edge vertices, so shared edges are found by matching segments."""
    rings, ring_face = shapely.get_rings(faces, return_index=True)
    coords, coord_ring = shapely.get_coordinates(rings, return_index=True)
    if len(coords) < 2:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    same_ring = coord_ring[1:] == coord_ring[:-1]
    a = np.round(coords[:-1][same_ring], _EDGE_DECIMALS)
    b = np.round(coords[1:][same_ring], _EDGE_DECIMALS)
    face = ring_face[coord_ring[:-1][same_ring]]
    swap = (a[:, 0] > b[:, 0]) | ((a[:, 0] == b[:, 0]) & (a[:, 1] > b[:, 1]))
    lo = np.where(swap[:, None], b, a)
    hi = np.where(swap[:, None], a, b)
    keys = np.column_stack([lo, hi])
    order = np.lexsort((face, keys[:, 3], keys[:, 2], keys[:, 1], keys[:, 0]))
    keys, face = keys[order], face[order]
    same = np.all(keys[1:] == keys[:-1], axis=1) & (face[1:] != face[:-1])
    i, j = face[:-1][same], face[1:][same]
    length = np.hypot(
        keys[:-1][same][:, 2] - keys[:-1][same][:, 0], keys[:-1][same][:, 3] - keys[:-1][same][:, 1]
    )
    if len(i) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0)
    pairs = pd.DataFrame({"i": np.minimum(i, j), "j": np.maximum(i, j), "length": length})
    summed = pairs.groupby(["i", "j"], sort=True)["length"].sum().reset_index()
    return (
        summed["i"].to_numpy(dtype=np.int64),
        summed["j"].to_numpy(dtype=np.int64),
        summed["length"].to_numpy(dtype=np.float64),
    )


class _Groups:
    """Pieces made of faces, with their adjacency, merged greedily."""

    def __init__(
        self,
        area: FloatArray,
        perimeter: FloatArray,
        households: FloatArray,
        located: IntArray,  # (n_faces, n_layers) grid row per layer, -1 none
        adjacency: tuple[IntArray, IntArray, FloatArray],
    ) -> None:
        n, n_layers = located.shape
        self.n_layers = n_layers
        self.members: dict[int, list[int]] = {f: [f] for f in range(n)}
        self.area: dict[int, float] = {f: float(area[f]) for f in range(n)}
        self.perimeter: dict[int, float] = {f: float(perimeter[f]) for f in range(n)}
        self.households: dict[int, float] = {f: float(households[f]) for f in range(n)}
        self.grids: dict[int, list[dict[int, float]]] = {
            f: [({int(located[f, k]): float(area[f])} if located[f, k] >= 0 else {}) for k in range(n_layers)]
            for f in range(n)
        }
        self.adj: dict[int, dict[int, float]] = {f: {} for f in range(n)}
        for i, j, length in zip(*adjacency, strict=True):
            self.adj[int(i)][int(j)] = float(length)
            self.adj[int(j)][int(i)] = float(length)

    def dominant(self, g: int, k: int) -> int:
        """The layer-k grid covering most of piece g (-1 if layer k covers less than half of it)."""
        cover = self.grids[g][k]
        if not cover or sum(cover.values()) < 0.5 * self.area[g]:
            return -1
        return max(cover.items(), key=lambda kv: (kv[1], -kv[0]))[0]

    def signature(self, g: int) -> tuple[int, ...]:
        return tuple(self.dominant(g, k) for k in range(self.n_layers))

    def merge(self, g: int, h: int) -> int:
        """Merge piece g into piece h; returns h."""
        shared = self.adj[g].pop(h, 0.0)
        self.adj[h].pop(g, None)
        self.members[h].extend(self.members.pop(g))
        self.area[h] += self.area.pop(g)
        self.perimeter[h] = max(self.perimeter[h] + self.perimeter.pop(g) - 2.0 * shared, 0.0)
        self.households[h] += self.households.pop(g)
        for mine, theirs in zip(self.grids[h], self.grids.pop(g), strict=True):
            for grid, a in theirs.items():
                mine[grid] = mine.get(grid, 0.0) + a
        for n, length in self.adj.pop(g).items():
            del self.adj[n][g]
            self.adj[h][n] = self.adj[h].get(n, 0.0) + length
            self.adj[n][h] = self.adj[n].get(h, 0.0) + length
        return h

    def compactness_with(self, g: int, h: int) -> float:
        area = self.area[g] + self.area[h]
        perimeter = self.perimeter[g] + self.perimeter[h] - 2.0 * self.adj[g].get(h, 0.0)
        return 4.0 * math.pi * area / perimeter**2 if perimeter > 0 else 0.0

    def same_grids(self, g: int, h: int) -> int:
        """Number of layers putting pieces g and h mostly in the same grid."""
        count = 0
        for k in range(self.n_layers):
            mine = self.dominant(g, k)
            count += int(mine >= 0 and mine == self.dominant(h, k))
        return count


def _merge_slivers(groups: _Groups, min_area_m2: float, snap_m: float) -> tuple[int, int]:
    """Merge slivers into their longest-edge neighbours. Returns (merged, left alone)."""

    def is_sliver(g: int) -> bool:
        a, p = groups.area[g], groups.perimeter[g]
        return a < min_area_m2 or (p > 0 and 2.0 * a / p < 2.0 * snap_m)

    heap = [(groups.area[g], g) for g in groups.members if is_sliver(g)]
    heapq.heapify(heap)
    merged, alone = 0, 0
    while heap:
        area, g = heapq.heappop(heap)
        if g not in groups.members or groups.area[g] != area or not is_sliver(g):
            continue
        neighbours = groups.adj[g]
        if not neighbours:
            alone += 1
            continue
        best = max(neighbours, key=lambda h: (not is_sliver(h), neighbours[h], -h))
        h = groups.merge(g, best)
        merged += 1
        if is_sliver(h):
            heapq.heappush(heap, (groups.area[h], h))
    return merged, alone


def _join_across_outer_edges(groups: _Groups) -> int:
    """Join neighbouring pieces that no layer separates: some layer covers both and every layer
    covering both puts them in the same grid (the edge between them is only where another layer's
    coverage ends). A join never puts two grids of one layer together. Returns the number of joins."""
    grids: dict[int, list[int]] = {g: list(groups.signature(g)) for g in groups.members}

    def joinable(g: int, h: int) -> bool:
        shared = False
        for a, b in zip(grids[g], grids[h], strict=True):
            if a >= 0 and b >= 0:
                if a != b:
                    return False
                shared = True
        return shared

    joins = 0
    queue = sorted(groups.members)
    while queue:
        g = queue.pop()
        if g not in groups.members:
            continue
        for h in sorted(groups.adj[g], key=lambda n: (-groups.adj[g][n], n)):
            if joinable(g, h):
                merged = [a if a >= 0 else b for a, b in zip(grids[g], grids.pop(h), strict=True)]
                groups.merge(h, g)
                grids[g] = merged
                joins += 1
                queue.append(g)
                break
    return joins


def _merge_to_band(groups: _Groups, band: tuple[float, float]) -> None:
    lo, hi = band
    heap = [(groups.households[g], groups.area[g], g) for g in groups.members if groups.households[g] < lo]
    heapq.heapify(heap)
    while heap:
        hh, area, g = heapq.heappop(heap)
        if g not in groups.members or groups.households[g] != hh or groups.area[g] != area or hh >= lo:
            continue
        feasible = [h for h in groups.adj[g] if hh == 0 or hh + groups.households[h] <= hi]
        if not feasible:
            continue

        def rank(h: int, g: int = g, hh: float = hh) -> tuple[int, int, float, float, int]:
            total = hh + groups.households[h]
            return (
                -groups.same_grids(g, h),
                0 if lo <= total <= hi else 1,
                -groups.compactness_with(g, h),
                groups.households[h],
                h,
            )

        h = groups.merge(g, min(feasible, key=rank))
        if groups.households[h] < lo:
            heapq.heappush(heap, (groups.households[h], groups.area[h], h))


@dataclass
class _Refinement:
    layers: list[_Layer]
    out_crs: pyproj.CRS
    working: pyproj.CRS
    faces: ObjArray
    face_area: FloatArray
    located: IntArray  # (n_faces, n_layers)
    groups: _Groups
    territory_area: float
    notes: list[str]


def _refine(
    layers: Mapping[str, gpd.GeoDataFrame],
    *,
    code: str,
    boundary: Any,
    crs: Any,
    snap_m: float,
    min_area_m2: float,
    face_households: Any = None,
) -> tuple[_Refinement, Any]:
    """Steps 1–4 of the method. ``face_households`` (faces -> per-face households) is called
    once the faces exist; its second result is passed back to the caller."""
    snap_m = _check_number("snap_m", snap_m)
    min_area_m2 = _check_number("min_area_m2", min_area_m2)
    notes: list[str] = []
    read, out_crs, working = _read_layers(layers, code, crs, notes)
    territory = _territory(boundary, out_crs, working, notes)
    metric_values = [np.asarray(series.values, dtype=object) for _, _, series in read]
    for (name, _, _), values in zip(read, metric_values, strict=True):
        overlap = _self_overlap(values)
        if overlap >= 1.0:
            notes.append(
                f"layer {name!r}: its grids overlap each other over {overlap:,.0f} m²; "
                "each overlap is counted in the first of the grids (by row)"
            )
    snapped = _snap_layers(metric_values, territory, snap_m)
    model = [
        _Layer(name, codes, geoms, np.asarray(shapely.area(geoms), dtype=np.float64))
        for (name, codes, _), geoms in zip(read, snapped, strict=True)
    ]
    for layer in model:
        gone = np.flatnonzero(layer.area <= 0)
        if len(gone):
            notes.append(
                f"layer {layer.name!r}: grid(s) {', '.join(layer.codes[i] for i in gone[:10])} are narrower than "
                f"snap_m={snap_m:g} m and vanished when snapped (they get no crosswalk rows)"
            )
    faces = _faces(model, territory)
    located = np.full((len(faces), len(model)), -1, dtype=np.int64)
    for k, layer in enumerate(model):
        located[:, k] = _locate(faces, layer)
    if territory is not None:
        inside: npt.NDArray[np.bool_] = np.asarray(
            shapely.within(shapely.point_on_surface(faces), territory), dtype=bool
        )
        for k, layer in enumerate(model):
            outside = float(shapely.area(faces[~inside & (located[:, k] >= 0)]).sum())
            if outside >= max(min_area_m2, 1.0):
                notes.append(
                    f"layer {layer.name!r}: {outside:,.0f} m² lie outside the boundary and were left out"
                )
    else:
        inside = np.asarray((located >= 0).any(axis=1), dtype=bool)
    faces, located = faces[inside], located[inside]
    if len(faces) == 0 or not (located >= 0).any():
        raise ValueError(
            "the layers and the boundary have no area in common: is a layer in the wrong place or CRS?"
        )
    for k, layer in enumerate(model):
        if not (located[:, k] >= 0).any():
            notes.append(f"layer {layer.name!r} does not overlap the territory at all (wrong place or CRS?)")
    face_area = np.asarray(shapely.area(faces), dtype=np.float64)
    extra = None
    households = np.zeros(len(faces))
    if face_households is not None:
        households, extra = face_households(faces, working, notes)
    groups = _Groups(
        face_area,
        np.asarray(shapely.length(faces), dtype=np.float64),
        households,
        located,
        _face_adjacency(faces),
    )
    merged, alone = _merge_slivers(groups, min_area_m2, snap_m)
    if merged:
        notes.append(
            f"{merged} sliver(s) (under {min_area_m2:g} m² or narrower than {2 * snap_m:g} m on average) "
            "merged into the neighbour with the longest shared edge"
        )
    if alone:
        notes.append(f"{alone} isolated sliver(s) have no neighbour and were kept as they are")
    refinement = _Refinement(
        model, out_crs, working, faces, face_area, located, groups, float(face_area.sum()), notes
    )
    return refinement, extra


# --------------------------------------------------------------------------------------------
# Disagreements
# --------------------------------------------------------------------------------------------


def _union(faces: ObjArray) -> Any:
    if len(faces) == 1:
        return faces[0]
    merged = shapely.coverage_union_all(faces)
    if (
        not shapely.is_valid(merged)
        or abs(merged.area - float(shapely.area(faces).sum())) > 1e-6 * merged.area + 1e-6
    ):
        merged = shapely.union_all(faces)
    return merged


def _components(nodes: list[int], edges: list[tuple[int, int]]) -> list[list[int]]:
    parent = {n: n for n in nodes}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    out: dict[int, list[int]] = {}
    for n in nodes:
        out.setdefault(find(n), []).append(n)
    return list(out.values())


def _disagreements(ref: _Refinement) -> tuple[gpd.GeoDataFrame, float]:
    groups = ref.groups
    names = [layer.name for layer in ref.layers]
    pieces = sorted(groups.members)
    signature = {g: groups.signature(g) for g in pieces}
    # Boundary disagreements: edges some covering layers draw and others do not.
    drawn_by: dict[int, set[int]] = {g: set() for g in pieces}
    edges: list[tuple[int, int]] = []
    for g in pieces:
        for h in groups.adj[g]:
            if h <= g:
                continue
            both = [k for k in range(len(names)) if signature[g][k] >= 0 and signature[h][k] >= 0]
            drawn = {k for k in both if signature[g][k] != signature[h][k]}
            if drawn and len(drawn) < len(both):
                edges.append((g, h))
                drawn_by[g] |= drawn
                drawn_by[h] |= drawn
    rows: list[tuple[float, str, str, Any]] = []
    disputed: set[int] = set()
    for zone in _components(pieces, edges):
        layers_drawing = set().union(*(drawn_by[g] for g in zone))
        if not layers_drawing:
            continue
        disputed.update(zone)
        faces = ref.faces[[f for g in zone for f in groups.members[g]]]
        rows.append(
            (sum(groups.area[g] for g in zone), _names(names, layers_drawing), "boundary", _union(faces))
        )
    # Coverage: pieces some layer does not cover, contiguous ones with the same missing layers dissolved.
    missing = {g: frozenset(k for k in range(len(names)) if signature[g][k] < 0) for g in pieces}
    gaps = [g for g in pieces if missing[g]]
    gap_edges = [(g, h) for g in gaps for h in groups.adj[g] if h in missing and missing[h] == missing[g]]
    for zone in _components(gaps, gap_edges):
        faces = ref.faces[[f for g in zone for f in groups.members[g]]]
        rows.append(
            (sum(groups.area[g] for g in zone), _names(names, missing[zone[0]]), "coverage", _union(faces))
        )
    agreeing = sum(groups.area[g] for g in pieces if g not in disputed and not missing[g])
    agreement = agreeing / ref.territory_area if ref.territory_area > 0 else 0.0
    rows.sort(key=lambda r: (r[2] != "boundary", -r[0], r[1]))
    frame = gpd.GeoDataFrame(
        {
            "area_m2": np.asarray([r[0] for r in rows], dtype=np.float64),
            "layers": pd.Series([r[1] for r in rows], dtype=object),
            "kind": pd.Series([r[2] for r in rows], dtype=object),
        },
        geometry=gpd.GeoSeries([r[3] for r in rows], crs=ref.working),
        crs=ref.working,
    )
    return _to_out(frame, ref), float(min(max(agreement, 0.0), 1.0))


def _names(names: list[str], ks: Any) -> str:
    return ",".join(names[k] for k in sorted(ks))


def _to_out(frame: gpd.GeoDataFrame, ref: _Refinement) -> gpd.GeoDataFrame:
    if ref.working.equals(ref.out_crs):
        return frame
    return frame.to_crs(ref.out_crs)


def disagreements(
    layers: Mapping[str, gpd.GeoDataFrame],
    *,
    code: str = "code",
    boundary: Any = None,
    crs: Any = None,
    snap_m: float = 2.0,
    min_area_m2: float = 200.0,
) -> gpd.GeoDataFrame:
    """Where the legacy layers disagree: :attr:`Unified.disagreements` without building the
    unified grids. Columns ``area_m2``, ``layers``, ``kind`` (``"boundary"``/``"coverage"``),
    ``geometry`` in the first layer's CRS (or ``crs``); see the module docstring for the method
    and the arguments of :func:`unify` for the options."""
    ref, _ = _refine(layers, code=code, boundary=boundary, crs=crs, snap_m=snap_m, min_area_m2=min_area_m2)
    frame, _ = _disagreements(ref)
    return frame


# --------------------------------------------------------------------------------------------
# Buildings, unified grids and the crosswalk
# --------------------------------------------------------------------------------------------


def _building_counter(buildings: gpd.GeoDataFrame, households: str) -> Any:
    if not isinstance(buildings, gpd.GeoDataFrame):
        raise TypeError(f"buildings must be a GeoDataFrame, got {type(buildings).__name__}")
    try:
        require_crs(buildings)
    except CRSError as exc:
        raise CRSError(f"buildings: {exc}") from exc
    if households not in buildings.columns:
        raise ValueError(
            f"buildings have no household column {households!r}; columns are {list(buildings.columns)}"
        )
    try:
        counts = pd.to_numeric(buildings[households], errors="raise").to_numpy(
            dtype=np.float64, na_value=np.nan
        )
    except (TypeError, ValueError) as exc:
        raise ValueError(f"household column {households!r} must be numeric: {exc}") from exc
    bad = ~np.isfinite(counts) | (counts < 0)
    if bad.any():
        rows = list(buildings.index[bad][:10])
        raise ValueError(
            f"household counts must be finite numbers >= 0; {int(bad.sum())} building(s) have "
            f"negative or missing values in {households!r} (rows {rows})"
        )
    values = np.asarray(buildings.geometry.values, dtype=object)
    missing = np.asarray(shapely.is_missing(values) | shapely.is_empty(values), dtype=bool)
    if missing.any():
        rows = list(buildings.index[missing][:10])
        raise ValueError(f"{int(missing.sum())} building(s) have null or empty geometry (rows {rows})")

    def count(faces: ObjArray, working: pyproj.CRS, notes: list[str]) -> tuple[FloatArray, IntArray]:
        metric = np.asarray(gpd.GeoSeries(values, crs=buildings.crs).to_crs(working).values, dtype=object)
        points = shapely.point_on_surface(shapely.make_valid(metric))
        tree = shapely.STRtree(faces)
        pt_idx, face_idx = tree.query(points, predicate="intersects")
        face_of = np.full(len(points), -1, dtype=np.int64)
        face_of[pt_idx[::-1]] = face_idx[::-1]  # first hit wins
        outside = face_of < 0
        if outside.any():
            notes.append(
                f"{int(outside.sum())} building(s) with {counts[outside].sum():g} households lie outside the "
                "territory and were not counted"
            )
        totals = np.bincount(face_of[~outside], weights=counts[~outside], minlength=len(faces))
        return totals.astype(np.float64), face_of

    return count


def _as_counts(values: Any) -> Any:
    array = np.asarray(values, dtype=np.float64)
    if len(array) and np.all(array == np.round(array)):
        return array.astype(np.int64)
    return array


def unify(
    layers: Mapping[str, gpd.GeoDataFrame],
    *,
    code: str = "code",
    boundary: Any = None,
    buildings: gpd.GeoDataFrame | None = None,
    band: tuple[float, float] | None = None,
    households: str = "households",
    snap_m: float = 2.0,
    min_area_m2: float = 200.0,
    crs: Any = None,
) -> Unified:
    """Propose unified grids for several departments' legacy grid layers (多网合一).

    * ``layers``: layer name (e.g. ``"civil"``, ``"police"``) -> GeoDataFrame of that department's
      grids, each with a CRS and a unique ``code`` column. Layers may be in different CRSs.
    * ``boundary``: the territory, a shapely (Multi)Polygon in the output CRS or a GeoDataFrame/
      GeoSeries with a CRS; default the union of all layers.
    * ``buildings`` with a ``households`` column: counted per unified grid and crosswalk row;
      with ``band`` (min, max households) small pieces are merged towards the band.
    * ``snap_m``: vertices closer than this (metres) to another layer's boundary are snapped to it.
    * ``min_area_m2``: pieces smaller than this are slivers and merged away.
    * ``crs``: the CRS of the returned frames (default: the first layer's).

    Raises ``ValueError`` for an empty mapping, missing/duplicate/null codes, non-polygon or empty
    geometries, bad options, or ``band`` without ``buildings``; :class:`~geo.errors.CRSError` (a
    ``ValueError``) for a layer without a CRS or whose coordinates contradict its CRS. Invalid
    polygons are repaired and noted. See the module docstring for the method and definitions.
    """
    lohi = None if band is None else _check_band(band)
    if lohi is not None and buildings is None:
        raise ValueError("band needs buildings: pass buildings=... with a households column, or drop band")
    counter = None if buildings is None else _building_counter(buildings, households)
    ref, face_of = _refine(
        layers,
        code=code,
        boundary=boundary,
        crs=crs,
        snap_m=snap_m,
        min_area_m2=min_area_m2,
        face_households=counter,
    )
    notes = ref.notes
    frame_disagreements, agreement = _disagreements(ref)
    groups = ref.groups
    joins = _join_across_outer_edges(groups)
    if joins:
        notes.append(
            f"{joins} piece(s) separated only by the outer edge of some layer's coverage were joined "
            "to their neighbour in the same grids"
        )
    if lohi is not None:
        before = len(groups.members)
        _merge_to_band(groups, lohi)
        lo, hi = lohi
        merged = before - len(groups.members)
        if merged:
            notes.append(f"{merged} merge(s) of pieces below the band ({lo:g}–{hi:g} households)")
        below = sum(1 for g in groups.members if groups.households[g] < lo)
        above = sum(1 for g in groups.members if groups.households[g] > hi)
        if below:
            notes.append(
                f"{below} unified grid(s) stay below {lo:g} households: no neighbour could take them "
                f"without exceeding {hi:g}"
            )
        if above:
            notes.append(
                f"{above} unified grid(s) hold more than {hi:g} households; split them with geo.partition.partition"
            )

    # Unified grids, keyed in reading order.
    pieces = sorted(groups.members)
    geoms = np.asarray([_union(ref.faces[groups.members[g]]) for g in pieces], dtype=object)
    order = reading_order(gpd.GeoSeries(geoms, crs=ref.working))
    key_of = {pieces[int(i)]: rank + 1 for rank, i in enumerate(order)}
    face_key = np.zeros(len(ref.faces), dtype=np.int64)
    for g in pieces:
        face_key[groups.members[g]] = key_of[g]
    unified_area = {key_of[g]: groups.area[g] for g in pieces}

    crosswalk = _crosswalk(ref, face_key, unified_area, face_of, buildings, households)
    names = [layer.name for layer in ref.layers]
    sources = _sources(crosswalk, names, unified_area, _check_number("min_area_m2", min_area_m2))

    by_key = sorted(range(len(pieces)), key=lambda i: key_of[pieces[i]])
    ordered = [pieces[i] for i in by_key]
    columns: dict[str, Any] = {"key": np.asarray([key_of[g] for g in ordered], dtype=np.int64)}
    if buildings is not None:
        columns["households"] = _as_counts([groups.households[g] for g in ordered])
    columns["area_m2"] = np.asarray([groups.area[g] for g in ordered], dtype=np.float64)
    columns["sources"] = pd.Series([sources.get(key_of[g], "") for g in ordered], dtype=object)
    grids = gpd.GeoDataFrame(
        columns,
        geometry=gpd.GeoSeries(geoms[by_key], crs=ref.working),
        crs=ref.working,
    )
    return Unified(
        grids=_to_out(grids, ref),
        crosswalk=crosswalk,
        disagreements=frame_disagreements,
        agreement=agreement,
        notes=tuple(notes),
    )


def _crosswalk(
    ref: _Refinement,
    face_key: IntArray,
    unified_area: dict[int, float],
    face_of: Any,
    buildings: gpd.GeoDataFrame | None,
    households: str,
) -> pd.DataFrame:
    face_hh = None
    if buildings is not None and face_of is not None:
        counts = pd.to_numeric(buildings[households]).to_numpy(dtype=np.float64)
        inside = face_of >= 0
        face_hh = np.bincount(face_of[inside], weights=counts[inside], minlength=len(ref.faces))
    parts: list[pd.DataFrame] = []
    for k, layer in enumerate(ref.layers):
        covered = ref.located[:, k] >= 0
        rows = ref.located[covered, k]
        part = pd.DataFrame(
            {
                "row": rows,
                "unified_key": face_key[covered],
                "area_m2": ref.face_area[covered],
                "households": face_hh[covered] if face_hh is not None else np.zeros(int(covered.sum())),
            }
        )
        part = part.groupby(["row", "unified_key"], sort=True, as_index=False).sum()
        part.insert(0, "layer", layer.name)
        part.insert(1, "legacy_code", [layer.codes[int(r)] for r in part["row"]])
        part["share_of_legacy"] = part["area_m2"] / layer.area[part["row"].to_numpy(dtype=np.int64)]
        part["share_of_unified"] = part["area_m2"] / part["unified_key"].map(unified_area)
        parts.append(part)
    columns = [
        "layer",
        "legacy_code",
        "unified_key",
        "area_m2",
        "share_of_legacy",
        "share_of_unified",
        "households",
    ]
    table = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=[*columns, "row"])
    table = table.sort_values(["row", "unified_key"], kind="stable")
    table["layer"] = pd.Categorical(
        table["layer"], categories=[layer.name for layer in ref.layers], ordered=True
    )
    table = table.sort_values(["layer", "row", "unified_key"], kind="stable").reset_index(drop=True)
    table["layer"] = table["layer"].astype(object)
    table["unified_key"] = table["unified_key"].astype(np.int64)
    table["share_of_legacy"] = table["share_of_legacy"].clip(upper=1.0)
    table["share_of_unified"] = table["share_of_unified"].clip(upper=1.0)
    if face_hh is None:
        table["households"] = pd.array([pd.NA] * len(table), dtype="Int64")
    else:
        hh = table["households"].to_numpy(dtype=np.float64)
        table["households"] = _as_counts(hh)
    return table[columns]


def _sources(
    crosswalk: pd.DataFrame, names: list[str], unified_area: dict[int, float], min_area_m2: float
) -> dict[int, str]:
    """Per unified key: ``"civil:A01; police:P3,P4"`` (grids covering >= min_area_m2 or half of it)."""
    keep = (crosswalk["area_m2"] >= min_area_m2) | (crosswalk["share_of_unified"] >= 0.5)
    table = crosswalk[keep].sort_values(["unified_key", "area_m2"], ascending=[True, False], kind="stable")
    rank = {name: i for i, name in enumerate(names)}
    listed: dict[int, list[list[str]]] = {}
    for key, layer, legacy in zip(table["unified_key"], table["layer"], table["legacy_code"], strict=True):
        listed.setdefault(int(key), [[] for _ in names])[rank[layer]].append(str(legacy))
    out = {
        key: "; ".join(
            f"{name}:{','.join(codes)}" for name, codes in zip(names, per_layer, strict=True) if codes
        )
        for key, per_layer in listed.items()
    }
    for key in unified_area:
        out.setdefault(key, "")
    return out
