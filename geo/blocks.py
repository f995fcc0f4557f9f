"""Street blocks: a community's boundary cut by road centre lines and river/lake outlines.

* :func:`blocks` polygonizes the noded union of the boundary's rings and the road lines and water
  outlines near it. The faces inside the boundary are the blocks; together they cover the
  boundary exactly (no gaps, no overlaps: neighbours share identical edges). A road that ends
  inside a block (a cul-de-sac, a dangle) does not close anything and is simply ignored by the
  polygonizer. Faces inside a water polygon are ``kind="water"``, the others ``"land"``. Slivers
  (less than ``min_area_m2`` square metres, or a mean width ``2·area/perimeter`` under
  ``min_width_m`` metres, as where a road runs a metre beside the boundary) are merged into the
  neighbour with the longest shared edge.
* :func:`block_graph` is the blocks' adjacency: pairs that share an edge of positive length, in
  metres (blocks touching at a point are not neighbours).
* :func:`as_geometries` normalises the ways roads and water can be passed (frames in any CRS,
  geometry arrays, single geometries) into an array of geometries in one CRS.

Areas and lengths are measured in metres: geographic input is measured in the UTM zone of the
boundary's centre, while the polygons themselves are built in the input CRS (so the union of the
blocks is the boundary, vertex for vertex, apart from the road crossings added on its edges).
"""

from __future__ import annotations

import heapq
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pyproj
import shapely
from geopandas.array import GeometryArray

from geo.crs import BD09, GCJ02, parse_crs, require_crs, to_wgs84, utm_crs
from geo.errors import CRSError

__all__ = ["as_geometries", "block_graph", "blocks", "reproject", "shared_edges"]

GeomArray = npt.NDArray[Any]
Adjacency = dict[int, dict[int, float]]

_POLYGONAL = ("Polygon", "MultiPolygon")
_LINEAL = ("LineString", "LinearRing", "MultiLineString")


def _crs(crs: Any) -> pyproj.CRS:
    parsed = parse_crs(crs)
    if isinstance(parsed, str):  # the gcj02 / bd09 markers
        raise CRSError(
            f"{crs!r} is not a CRS one can measure in; bring the data to WGS84 first "
            "(geo.crs.to_wgs84(frame, source='gcj02'))"
        )
    return parsed


def as_geometries(data: Any, *, crs: Any, default_crs: Any = None) -> GeomArray:
    """An object array of the shapely geometries in ``data``, in ``crs``; nulls and empties dropped.

    ``data`` may be ``None`` (nothing), a GeoDataFrame or GeoSeries with a CRS (reprojected; a frame
    made by :func:`geo.crs.from_wgs84` is shifted back from GCJ-02/BD-09 first; a frame without a CRS
    raises :class:`~geo.errors.CRSError`), a geopandas GeometryArray (reprojected when it has a
    CRS), or a sequence/array of shapely geometries or a single geometry, which are taken to be in
    ``default_crs`` (default: ``crs``) and reprojected from it. Never modifies ``data``.
    """
    target = _crs(crs)
    if data is None:
        return np.empty(0, dtype=object)
    source: Any
    if isinstance(data, gpd.GeoDataFrame | gpd.GeoSeries):
        require_crs(data)
        frame: Any = data
        if frame.attrs.get("datum_shift") in (GCJ02, BD09):
            frame = to_wgs84(frame)
        series = frame.geometry if isinstance(frame, gpd.GeoDataFrame) else frame
        values = np.asarray(series.values, dtype=object)
        source = series.crs
    elif isinstance(data, GeometryArray):
        values = np.asarray(data, dtype=object)
        source = data.crs if data.crs is not None else (default_crs if default_crs is not None else target)
    elif isinstance(data, shapely.Geometry):
        values = np.array([data], dtype=object)
        source = default_crs if default_crs is not None else target
    else:
        try:
            values = np.asarray(list(data), dtype=object)
        except TypeError as exc:
            raise ValueError(f"expected geometries, got {type(data).__name__}") from exc
        source = default_crs if default_crs is not None else target
    if len(values):
        bad = [type(v).__name__ for v in values if v is not None and not isinstance(v, shapely.Geometry)]
        if bad:
            raise ValueError(f"expected shapely geometries, got {bad[0]}")
    values = np.asarray([v for v in values if v is not None and not v.is_empty], dtype=object)
    source_crs = _crs(source)
    if len(values) and not source_crs.equals(target):
        values = np.asarray(reproject(values, source_crs, target), dtype=object)
    return values


def reproject(geoms: Any, source: pyproj.CRS, target: pyproj.CRS) -> Any:
    """Reproject geometries vertex by vertex (shared vertices stay shared)."""
    forward = pyproj.Transformer.from_crs(source, target, always_xy=True)

    def _apply(xy: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        x, y = forward.transform(xy[:, 0], xy[:, 1])
        return np.column_stack([x, y])

    return shapely.transform(geoms, _apply)


def _metric_of(crs: pyproj.CRS, geom: Any) -> pyproj.CRS:
    """``crs`` itself when projected, else the UTM zone of ``geom``'s centre."""
    if not crs.is_geographic:
        return crs
    minx, miny, maxx, maxy = geom.bounds
    return utm_crs((minx + maxx) / 2.0, (miny + maxy) / 2.0)


def _boundary_geometry(boundary: Any, crs: pyproj.CRS) -> Any:
    if isinstance(boundary, gpd.GeoDataFrame | gpd.GeoSeries):
        parts = as_geometries(boundary, crs=crs)
        geom = shapely.union_all(parts) if len(parts) else shapely.Polygon()
    else:
        geom = boundary
    if not isinstance(geom, shapely.Polygon | shapely.MultiPolygon):
        raise ValueError(f"boundary must be a shapely Polygon or MultiPolygon, got {type(geom).__name__}")
    if geom.is_empty:
        raise ValueError("boundary is empty")
    if not geom.is_valid:
        raise ValueError(f"boundary is not a valid polygon: {shapely.is_valid_reason(geom)}")
    return geom


def _parts_of(geoms: GeomArray, kinds: tuple[str, ...]) -> GeomArray:
    if not len(geoms):
        return np.empty(0, dtype=object)
    parts = np.asarray(shapely.get_parts(geoms), dtype=object)
    keep = np.isin(np.asarray(shapely.get_type_id(parts)), [_TYPE_IDS[k] for k in kinds])
    parts = parts[keep & ~np.asarray(shapely.is_empty(parts), dtype=bool)]
    return parts


_TYPE_IDS = {"LineString": 1, "LinearRing": 2, "Polygon": 3, "MultiLineString": 5, "MultiPolygon": 6}


def shared_edges(
    geoms: GeomArray,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Pairs ``(i, j)`` (``i < j``) of polygons sharing an edge, with the shared length in the
    geometries' units. Polygons touching at points only are left out."""
    n = len(geoms)
    if n < 2:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty.copy(), np.zeros(0)
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    keep = left < right
    left, right = left[keep].astype(np.int64), right[keep].astype(np.int64)
    rings = np.asarray(shapely.boundary(geoms), dtype=object)
    common = shapely.intersection(rings[left], rings[right])
    length = np.asarray(shapely.length(common), dtype=np.float64)
    ok = length > 0
    return left[ok], right[ok], length[ok]


def _union(parts: list[Any]) -> Any:
    if len(parts) == 1:
        return parts[0]
    array = np.asarray(parts, dtype=object)
    try:
        merged = shapely.coverage_union_all(array)
    except shapely.errors.GEOSException:  # not exactly noded
        merged = None
    if merged is None or not merged.is_valid or merged.geom_type not in _POLYGONAL:
        merged = shapely.union_all(array)
    return merged


def blocks(
    boundary: Any,
    *,
    roads: Any = None,
    water: Any = None,
    crs: Any,
    min_area_m2: float = 100.0,
    min_width_m: float = 2.0,
) -> gpd.GeoDataFrame:
    """Cut ``boundary`` into blocks along ``roads`` and ``water``: GeoDataFrame[block, kind, geometry].

    ``boundary`` is a shapely Polygon or MultiPolygon (holes allowed) in ``crs``, or a
    GeoDataFrame/GeoSeries whose geometries are unioned (and reprojected to ``crs``). ``roads``
    are centre lines; ``water`` are river/lake polygons (their outlines cut, the faces inside
    them are ``kind="water"``) or lines (cut like roads). Both accept whatever
    :func:`as_geometries` does (plain geometries are taken to be in ``crs``); polygonal roads
    cut along their outline, points are ignored.

    The boundary's rings and the lines (clipped to a box around the boundary) are noded into one
    line network and polygonized; the faces inside the boundary (not in its holes) are the
    blocks, which cover the boundary exactly. Roads ending inside a block leave it whole. Blocks smaller than
    ``min_area_m2`` or thinner on average than ``min_width_m`` (``2·area/perimeter``) are merged
    into the neighbour with the longest shared edge, smallest first (a sliver with no neighbour
    stays). ``block`` numbers run north to south, then west to east. Raises ``ValueError`` for an
    invalid or empty boundary and :class:`~geo.errors.CRSError` for an unusable ``crs``.
    """
    target = _crs(crs)
    region = _boundary_geometry(boundary, target)
    if not (min_area_m2 >= 0 and min_width_m >= 0):
        raise ValueError("min_area_m2 and min_width_m must be >= 0")
    road_geoms = as_geometries(roads, crs=target)
    water_geoms = as_geometries(water, crs=target)

    water_polys = _parts_of(water_geoms, ("Polygon", "MultiPolygon"))
    lines = np.concatenate(
        [
            _parts_of(road_geoms, _LINEAL),
            _parts_of(water_geoms, _LINEAL),
            np.asarray(shapely.boundary(_parts_of(road_geoms, _POLYGONAL)), dtype=object),
            np.asarray(shapely.boundary(water_polys), dtype=object),
        ]
    )
    shapely.prepare(region)
    if len(lines):
        lines = lines[np.asarray(shapely.intersects(lines, region), dtype=bool)]
    if len(lines):
        # Clip to a box around the boundary, not to the boundary itself: computed end points on
        # the boundary may fall a hair inside it and leave a road as a dangle that cuts nothing.
        # Noding whole lines with the rings and keeping the faces inside is exact.
        minx, miny, maxx, maxy = region.bounds
        margin = 0.01 * max(maxx - minx, maxy - miny, 1e-9)
        boxed = shapely.clip_by_rect(lines, minx - margin, miny - margin, maxx + margin, maxy + margin)
        clipped = _parts_of(np.asarray(boxed, dtype=object), _LINEAL)
    else:
        clipped = np.empty(0, dtype=object)
    linework = shapely.union_all(np.concatenate([[region.boundary], clipped]))
    faces = np.asarray(shapely.get_parts(shapely.polygonize(shapely.get_parts(linework))), dtype=object)
    inside_pts = shapely.point_on_surface(faces)
    faces = faces[np.asarray(shapely.within(inside_pts, region), dtype=bool)]
    if not len(faces):  # cannot happen for a valid polygon; be safe
        faces = np.asarray(shapely.get_parts(region), dtype=object)

    kinds = np.full(len(faces), "land", dtype=object)
    if len(water_polys):
        water_union = shapely.union_all(water_polys)
        shapely.prepare(water_union)
        on_water = np.asarray(shapely.within(shapely.point_on_surface(faces), water_union), dtype=bool)
        kinds[on_water] = "water"

    metric = _metric_of(target, region)
    metric_faces = (
        faces if metric.equals(target) else np.asarray(reproject(faces, target, metric), dtype=object)
    )
    groups = _merge_slivers(metric_faces, min_area_m2, min_width_m)

    geoms: list[Any] = []
    group_kinds: list[str] = []
    keys: list[tuple[float, float]] = []
    for root, members in groups.items():
        geoms.append(_union([faces[i] for i in members]))
        group_kinds.append(str(kinds[root]))
        point = shapely.point_on_surface(_union([metric_faces[i] for i in members]))
        keys.append((-round(point.y, 3), round(point.x, 3)))
    order = sorted(range(len(geoms)), key=lambda i: keys[i])
    return gpd.GeoDataFrame(
        {"block": np.arange(len(order), dtype=np.int64), "kind": [group_kinds[i] for i in order]},
        geometry=[geoms[i] for i in order],
        crs=target,
    )


def _merge_slivers(metric_faces: GeomArray, min_area: float, min_width: float) -> dict[int, list[int]]:
    """Groups of faces (root → members, root = the face that absorbed the others) after merging
    every sliver into the neighbour with the longest shared edge, smallest sliver first."""
    n = len(metric_faces)
    area = np.asarray(shapely.area(metric_faces), dtype=np.float64).copy()
    perimeter = np.asarray(shapely.length(metric_faces), dtype=np.float64).copy()
    members: dict[int, list[int]] = {i: [i] for i in range(n)}

    def is_sliver(g: int) -> bool:
        width = 2.0 * area[g] / perimeter[g] if perimeter[g] > 0 else 0.0
        return bool(area[g] < min_area or width < min_width)

    candidates = [(float(area[i]), i) for i in range(n) if is_sliver(i)]
    if not candidates or n < 2:
        return members
    left, right, length = shared_edges(metric_faces)
    nbrs: dict[int, dict[int, float]] = {i: {} for i in range(n)}
    for a, b, ln in zip(left.tolist(), right.tolist(), length.tolist(), strict=True):
        nbrs[a][b] = nbrs[a].get(b, 0.0) + ln
        nbrs[b][a] = nbrs[b].get(a, 0.0) + ln
    heapq.heapify(candidates)
    while candidates:
        a_g, g = heapq.heappop(candidates)
        if g not in members or a_g != area[g] or not is_sliver(g) or not nbrs[g]:
            continue
        host = max(nbrs[g], key=lambda h: (round(nbrs[g][h], 6), -h))
        shared = nbrs[g].pop(host)
        nbrs[host].pop(g)
        for other, ln in nbrs.pop(g).items():
            nbrs[other].pop(g)
            nbrs[other][host] = nbrs[other].get(host, 0.0) + ln
            nbrs[host][other] = nbrs[host].get(other, 0.0) + ln
        area[host] += area[g]
        perimeter[host] += perimeter[g] - 2.0 * shared
        members[host].extend(members.pop(g))
        if is_sliver(host):
            heapq.heappush(candidates, (float(area[host]), host))
    return members


def block_graph(blocks: gpd.GeoDataFrame) -> Adjacency:
    """Adjacency of blocks (or any polygon coverage): ``{block: {neighbour: shared edge length in
    metres}}``, symmetric, with every block as a key (possibly with no neighbours).

    Keys are the ``block`` column's values when there is one, else the index. Blocks touching
    at a point only are not neighbours. Geographic frames are measured in their UTM zone.
    Raises :class:`~geo.errors.CRSError` without a CRS.
    """
    require_crs(blocks)
    keys = blocks["block"].tolist() if "block" in blocks.columns else blocks.index.tolist()
    graph: Adjacency = {int(k): {} for k in keys}
    if len(blocks) < 2:
        return graph
    geoms = np.asarray(blocks.geometry.values, dtype=object)
    crs = pyproj.CRS.from_user_input(blocks.crs)
    valid = ~np.asarray(shapely.is_missing(geoms) | shapely.is_empty(geoms), dtype=bool)
    if crs.is_geographic and valid.any():
        metric = _metric_of(crs, shapely.box(*shapely.total_bounds(geoms[valid])))
        geoms = geoms.copy()
        geoms[valid] = reproject(geoms[valid], crs, metric)
    index = np.flatnonzero(valid)
    left, right, length = shared_edges(geoms[valid])
    for a, b, ln in zip(index[left].tolist(), index[right].tolist(), length.tolist(), strict=True):
        ka, kb = int(keys[a]), int(keys[b])
        graph[ka][kb] = graph[ka].get(kb, 0.0) + ln
        graph[kb][ka] = graph[kb].get(ka, 0.0) + ln
    return graph
