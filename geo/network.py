"""Road networks as graphs: building them from road centre lines, and distances along them.

Why: "the closest worker" in a straight line can be across a river or behind a fenced block, so the
dispatcher (:mod:`geo.dispatch`) measures along the roads; the patrol simulator
(:mod:`demo.simulate`) routes its workers on the same graph.

Building (:func:`build_road_graph`)
-----------------------------------
Road centre lines (as the store holds them: one LineString per road, crossing each other without
shared vertices) become an undirected graph in a metric CRS:

1. **Noding.** All lines are noded together (``shapely.node``): every crossing becomes a vertex of
   both lines.
2. **Snapping.** Vertices closer than ``snap_m`` (default 1 m) are one node (a KD-tree's close
   pairs, joined as connected components), so ends that meet with floating-point noise connect.
   A line's end within ``dangle_m`` (default 3 m) of another edge's interior splits that edge
   there and joins it: a road that stops on another one (a T-junction drawn without a shared
   vertex, or rural roads ending at a village centre that lies on the village lane) connects.
3. **Densifying.** Edges longer than ``max_edge_m`` (default 40 m) are cut into equal pieces, so
   that "the roads inside an area" can be chosen edge by edge (by midpoint) at that resolution.

Edges are straight segments between nodes; a path is a sequence of nodes and its geometry is
the polyline through their coordinates. Routing uses ``scipy.sparse.csgraph`` on the subgraph of
an area (:func:`subgraph`), with :func:`path_from_predecessors` to read paths back.

Distances (:class:`RoadNetwork`)
--------------------------------
:meth:`RoadNetwork.from_roads` builds the graph of a roads GeoDataFrame in any CRS, working in
metres (the roads' own CRS when it is projected in metres, else the UTM zone of their centre,
:func:`geo.crs.metric_crs`). A point meets the roads at the foot of the perpendicular on the
nearest edge (an STRtree ``query_nearest``), and the road distance from an origin to a target is

    straight leg origin → its foot  +  along the edge to one of its ends  +  shortest path
    +  along the target's edge from one of its ends  +  straight leg foot → target

(the best of the combinations, or straight along the edge when both feet are on the same one),
so it is never shorter than the straight line. One ``csgraph.dijkstra`` call from the two ends of
the origin's edge (``indices=``, ``limit=``; :meth:`RoadNetwork.reach`) answers any number of
targets: the dispatcher asks it about ~100 candidate workers per case. Unreachable targets
(another connected component: the far bank of a river without a bridge in the data), targets
beyond ``limit_m`` and missing, empty or non-finite targets get ``inf``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pyproj
import shapely
from scipy import sparse
from scipy.sparse import csgraph
from scipy.spatial import cKDTree

from geo._types import BoolArray, FloatArray, IntArray
from geo.crs import metric_crs, require_crs
from geo.errors import CRSError

__all__ = [
    "Reach",
    "RoadGraph",
    "RoadNetwork",
    "SubGraph",
    "build_road_graph",
    "path_from_predecessors",
    "point_xy",
    "reproject_xy",
    "subgraph",
]


@dataclass(frozen=True)
class RoadGraph:
    """An undirected road graph in metres: node coordinates, edges as node pairs, edge lengths."""

    xy: FloatArray  # (n_nodes, 2)
    edges: IntArray  # (n_edges, 2), u < v
    length: FloatArray  # (n_edges,)

    @property
    def n_nodes(self) -> int:
        return int(self.xy.shape[0])

    @property
    def n_edges(self) -> int:
        return int(self.edges.shape[0])

    def midpoints(self) -> FloatArray:
        """(n_edges, 2) midpoints of the edges."""
        return np.asarray((self.xy[self.edges[:, 0]] + self.xy[self.edges[:, 1]]) / 2.0, dtype=np.float64)

    def total_length(self) -> float:
        return float(self.length.sum())


@dataclass(frozen=True)
class SubGraph:
    """The part of a :class:`RoadGraph` made of some of its edges, with local node numbers."""

    nodes: IntArray  # local node i is global node nodes[i]
    xy: FloatArray  # (n, 2) coordinates of the local nodes
    edges: IntArray  # (k, 2) local node pairs
    length: FloatArray  # (k,)
    matrix: sparse.csr_matrix  # symmetric (n, n) adjacency weighted by length

    @property
    def n_nodes(self) -> int:
        return int(self.nodes.shape[0])


def _lines(geoms: Iterable[Any]) -> npt.NDArray[np.object_]:
    arr = np.asarray([g for g in geoms if g is not None], dtype=object)
    if arr.size == 0:
        return arr
    arr = arr[~shapely.is_empty(arr)]
    parts = shapely.get_parts(arr)
    kinds = shapely.get_type_id(parts)
    return np.asarray(parts[kinds == 1], dtype=object)  # LineString


def _cluster(points: FloatArray, radius: float) -> tuple[IntArray, FloatArray]:
    """Label points closer than ``radius`` (transitively) as one; returns labels and one point per label."""
    n = points.shape[0]
    if n == 0:
        return np.empty(0, dtype=np.int64), np.empty((0, 2))
    pairs = cKDTree(points).query_pairs(r=radius, output_type="ndarray")
    if len(pairs):
        adj = sparse.coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n))
        _, raw = csgraph.connected_components(adj, directed=False)
    else:
        raw = np.arange(n)
    # Number clusters by their first point so the result does not depend on scipy's numbering.
    first = np.full(int(raw.max()) + 1, n, dtype=np.int64)
    np.minimum.at(first, raw, np.arange(n, dtype=np.int64))
    order = np.argsort(first, kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    labels = rank[raw].astype(np.int64)
    reps = points[np.sort(first)]
    return labels, np.asarray(reps, dtype=np.float64)


def _dedupe(edges: IntArray) -> IntArray:
    edges = np.sort(edges, axis=1)
    edges = edges[edges[:, 0] != edges[:, 1]]
    if edges.size == 0:
        return edges.reshape(0, 2)
    return np.unique(edges, axis=0).astype(np.int64)


def _snap_ends(
    xy: FloatArray, edges: IntArray, ends: IntArray, dangle_m: float
) -> tuple[FloatArray, IntArray]:
    """Join road ends (nodes ``ends``) to the interior of a nearby edge (splitting it there)."""
    dangles = np.unique(ends)
    if dangles.size == 0 or edges.size == 0:
        return xy, edges
    a, b = xy[edges[:, 0]], xy[edges[:, 1]]
    segs: npt.NDArray[np.object_] = np.asarray(shapely.linestrings(np.stack([a, b], axis=1)), dtype=object)
    tree = shapely.STRtree(segs)
    pts = shapely.points(xy[dangles])
    di, ei = tree.query(pts, predicate="dwithin", distance=dangle_m)
    if di.size == 0:
        return xy, edges
    node = dangles[di]
    own = (edges[ei, 0] == node) | (edges[ei, 1] == node)
    di, ei, node = di[~own], ei[~own], node[~own]
    if di.size == 0:
        return xy, edges
    ab = b[ei] - a[ei]
    ab2 = np.maximum((ab**2).sum(axis=1), 1e-12)
    t = ((xy[node] - a[ei]) * ab).sum(axis=1) / ab2
    t = np.clip(t, 0.0, 1.0)
    proj = a[ei] + ab * t[:, None]
    dist = np.hypot(*(xy[node] - proj).T)
    # nearest edge per dangle
    order = np.lexsort((dist, node))
    keep = np.ones(order.size, dtype=bool)
    keep[1:] = node[order][1:] != node[order][:-1]
    sel = order[keep]
    node, ei, t = node[sel], ei[sel], t[sel]
    new_edges: list[IntArray] = []
    split = np.zeros(edges.shape[0], dtype=bool)
    # ends: the dangle joins the edge's end node directly
    at_a, at_b = t <= 1e-9, t >= 1.0 - 1e-9
    ends = np.where(at_a, edges[ei, 0], edges[ei, 1])
    endpoint = at_a | at_b
    if endpoint.any():
        new_edges.append(np.column_stack([node[endpoint], ends[endpoint]]))
    inner = ~endpoint
    if inner.any():
        e_in, t_in, n_in = ei[inner], t[inner], node[inner]
        order = np.lexsort((t_in, e_in))
        e_in, n_in = e_in[order], n_in[order]
        split[e_in] = True
        # chain u -> dangles (by t) -> v for every split edge
        starts = np.flatnonzero(np.r_[True, e_in[1:] != e_in[:-1]])
        stops = np.r_[starts[1:], e_in.size]
        for s, f in zip(starts, stops, strict=True):
            e = int(e_in[s])
            chain = np.r_[edges[e, 0], n_in[s:f], edges[e, 1]]
            new_edges.append(np.column_stack([chain[:-1], chain[1:]]))
    merged = np.vstack([edges[~split], *new_edges]) if new_edges else edges
    return xy, _dedupe(merged.astype(np.int64))


def _densify(xy: FloatArray, edges: IntArray, max_edge_m: float) -> tuple[FloatArray, IntArray]:
    """Cut edges longer than ``max_edge_m`` into equal pieces (new nodes appended)."""
    a, b = xy[edges[:, 0]], xy[edges[:, 1]]
    length = np.hypot(*(b - a).T)
    pieces = np.maximum(1, np.ceil(length / max_edge_m - 1e-9)).astype(np.int64)
    long = pieces > 1
    if not long.any():
        return xy, edges
    k = pieces[long]
    e_long = edges[long]
    # new interior nodes: for edge i with k pieces, points j/k for j = 1..k-1
    n_new = int((k - 1).sum())
    owner = np.repeat(np.arange(k.size), k - 1)
    first = np.cumsum(k - 1) - (k - 1)
    j = np.arange(n_new) - first[owner] + 1
    frac = (j / k[owner])[:, None]
    pa, pb = xy[e_long[owner, 0]], xy[e_long[owner, 1]]
    new_xy = pa + (pb - pa) * frac
    new_ids = xy.shape[0] + np.arange(n_new, dtype=np.int64)
    # chains: u, new..., v per long edge
    chain_len = k + 1
    total = int(chain_len.sum())
    chain = np.empty(total, dtype=np.int64)
    cstart = np.cumsum(chain_len) - chain_len
    chain[cstart] = e_long[:, 0]
    chain[cstart + k] = e_long[:, 1]
    inner_pos = np.repeat(cstart, k - 1) + j
    chain[inner_pos] = new_ids
    # consecutive pairs within each chain
    valid = np.ones(total, dtype=bool)
    valid[cstart + k] = False  # last of each chain starts no edge
    idx = np.flatnonzero(valid)
    pairs = np.column_stack([chain[idx], chain[idx + 1]])
    out_edges = np.vstack([edges[~long], pairs])
    return np.vstack([xy, new_xy]), np.sort(out_edges, axis=1).astype(np.int64)


def build_road_graph(
    lines: Iterable[Any],
    *,
    snap_m: float = 1.0,
    dangle_m: float = 3.0,
    max_edge_m: float = 40.0,
) -> RoadGraph:
    """The road graph of (metric) line geometries: noded, snapped, densified; see the module doc."""
    parts = _lines(lines)
    if parts.size == 0:
        return RoadGraph(np.empty((0, 2)), np.empty((0, 2), dtype=np.int64), np.empty(0))
    noded = shapely.get_parts(shapely.node(shapely.multilinestrings(parts)))
    coords, owner = shapely.get_coordinates(noded, return_index=True)
    same = owner[1:] == owner[:-1]
    seg_a = np.flatnonzero(same)
    labels, xy = _cluster(np.asarray(coords, dtype=np.float64), snap_m)
    edges = _dedupe(np.column_stack([labels[seg_a], labels[seg_a + 1]]))
    firsts = np.r_[0, np.flatnonzero(~same) + 1]
    lasts = np.r_[np.flatnonzero(~same), owner.size - 1]
    xy, edges = _snap_ends(xy, edges, labels[np.r_[firsts, lasts]], dangle_m)
    if max_edge_m > 0 and edges.size:
        xy, edges = _densify(xy, edges, max_edge_m)
    length = np.hypot(*(xy[edges[:, 1]] - xy[edges[:, 0]]).T)
    return RoadGraph(
        np.asarray(xy, dtype=np.float64), edges.astype(np.int64), np.asarray(length, dtype=np.float64)
    )


def subgraph(graph: RoadGraph, edge_ids: Sequence[int] | IntArray) -> SubGraph:
    """The subgraph made of the given edges (local node numbers, symmetric CSR adjacency)."""
    ids = np.asarray(edge_ids, dtype=np.int64)
    e = graph.edges[ids]
    nodes, inv = np.unique(e.ravel(), return_inverse=True)
    local = inv.reshape(-1, 2).astype(np.int64)
    length = graph.length[ids]
    n = nodes.size
    w = np.maximum(length, 1e-6)  # csgraph treats explicit zeros as missing edges
    m = sparse.coo_matrix(
        (np.r_[w, w], (np.r_[local[:, 0], local[:, 1]], np.r_[local[:, 1], local[:, 0]])), shape=(n, n)
    ).tocsr()
    return SubGraph(nodes.astype(np.int64), graph.xy[nodes], local, length, m)


def path_from_predecessors(pred: npt.NDArray[Any], source: int, target: int) -> list[int]:
    """Nodes of the shortest path source → target from a ``csgraph.dijkstra`` predecessor row
    computed from ``source``; empty when target is unreachable."""
    if source == target:
        return [source]
    out = [target]
    node = target
    guard = pred.shape[0] + 1
    while node != source:
        node = int(pred[node])
        if node < 0 or guard == 0:
            return []
        out.append(node)
        guard -= 1
    out.reverse()
    return out


# --------------------------------------------------------------------------------------------
# Distances along the roads
# --------------------------------------------------------------------------------------------


def _is_metric(crs: pyproj.CRS) -> bool:
    """A projected CRS whose first axis is in metres."""
    if not crs.is_projected:
        return False
    units = {(axis.unit_name or "").lower() for axis in crs.axis_info}
    return bool(units) and units <= {"metre", "meter", "m"}


def _as_crs(crs: Any) -> pyproj.CRS:
    return crs if isinstance(crs, pyproj.CRS) else pyproj.CRS.from_user_input(crs)


def point_xy(points: Any, *, crs: Any = None, to: Any = None) -> FloatArray:
    """The ``(n, 2)`` coordinates of Points, reprojected from ``crs`` to ``to``.

    ``points`` is a GeoSeries (which brings its own CRS: it must have one, and ``crs`` must be
    ``None`` or the same), or a sequence/array of shapely geometries, or one geometry, in ``crs``.
    ``None``, empty and non-finite points give a row of NaN; any other geometry type is a
    ``TypeError``. ``to`` ``None`` (or equal to the source CRS) leaves the coordinates as they are.
    """
    if isinstance(points, gpd.GeoSeries):
        require_crs(points)
        own = _as_crs(points.crs)
        if crs is not None and _as_crs(crs) != own:
            raise ValueError(f"crs={crs!r} was given for a GeoSeries in another CRS ({own.to_string()})")
        crs = own
        geoms = np.asarray(points.values, dtype=object)
    elif isinstance(points, shapely.Geometry) or points is None:
        geoms = np.asarray([points], dtype=object)
    else:
        geoms = np.asarray(list(points), dtype=object)
    geoms = geoms.reshape(-1)
    out = np.full((geoms.size, 2), np.nan, dtype=np.float64)
    if geoms.size == 0:
        return out
    types = shapely.get_type_id(geoms)
    bad = (types != -1) & (types != shapely.GeometryType.POINT)
    if bad.any():
        kind = shapely.get_type_id(geoms[np.flatnonzero(bad)[0]])
        raise TypeError(f"expected Point geometries, got {shapely.GeometryType(kind).name}")
    ok = (types == shapely.GeometryType.POINT) & ~shapely.is_empty(geoms)
    if ok.any():
        out[ok, 0] = shapely.get_x(geoms[ok])
        out[ok, 1] = shapely.get_y(geoms[ok])
    out[~np.isfinite(out).all(axis=1)] = np.nan
    if to is None:
        return out
    if crs is None:
        raise CRSError("cannot reproject points of unknown CRS: pass crs=...")
    return reproject_xy(out, crs=crs, to=to)


_local = threading.local()


def _transformer(source: pyproj.CRS, target: pyproj.CRS) -> pyproj.Transformer:
    """A cached ``always_xy`` transformer (one cache per thread: transformers are not shared)."""
    cache: dict[tuple[str, str], pyproj.Transformer] | None = getattr(_local, "transformers", None)
    if cache is None:
        cache = _local.transformers = {}
    key = (source.srs, target.srs)
    found = cache.get(key)
    if found is None:
        if len(cache) > 32:
            cache.clear()
        found = cache[key] = pyproj.Transformer.from_crs(source, target, always_xy=True)
    return found


def reproject_xy(xy: npt.ArrayLike, *, crs: Any, to: Any) -> FloatArray:
    """An ``(n, 2)`` array of coordinates from ``crs`` to ``to`` (a new array); NaN rows stay NaN,
    as do points the transformation cannot handle."""
    out = np.array(xy, dtype=np.float64).reshape(-1, 2)
    source, target = _as_crs(crs), _as_crs(to)
    fine = np.isfinite(out).all(axis=1)
    out[~fine] = np.nan
    if source != target and fine.any():
        transformer = _transformer(source, target)
        x, y = transformer.transform(out[fine, 0], out[fine, 1])
        out[fine, 0], out[fine, 1] = x, y
        out[~np.isfinite(out).all(axis=1)] = np.nan
    return out


def _origin_xy(origin: Any, crs: Any, to: pyproj.CRS) -> FloatArray:
    if not isinstance(origin, shapely.Point):
        raise TypeError(f"the origin must be a shapely Point, got {type(origin).__name__}")
    xy = point_xy([origin], crs=crs, to=to)[0]
    if not np.isfinite(xy).all():
        raise ValueError("the origin is an empty point or has non-finite coordinates")
    return xy


class RoadNetwork:
    """A road graph in a metric CRS, ready for distance queries (see the module docstring).

    Build it with :meth:`from_roads` (or from a :class:`RoadGraph` whose coordinates are in the
    metric ``crs``). Immutable once built; share one per city.
    """

    def __init__(self, graph: RoadGraph, *, crs: Any) -> None:
        work = _as_crs(crs)
        if not _is_metric(work):
            raise CRSError(f"a road network works in a projected CRS in metres, got {work.to_string()}")
        self.graph = graph
        self.crs = work
        n = graph.n_nodes
        u, v = graph.edges[:, 0], graph.edges[:, 1]
        w = np.maximum(graph.length, 1e-6)  # csgraph treats explicit zeros as missing edges
        self.matrix: sparse.csr_matrix = sparse.coo_matrix(
            (np.r_[w, w], (np.r_[u, v], np.r_[v, u])), shape=(n, n)
        ).tocsr()
        if n:
            _, labels = csgraph.connected_components(self.matrix, directed=False)
            self.components: IntArray = labels.astype(np.int64)
        else:
            self.components = np.empty(0, dtype=np.int64)
        segments: npt.NDArray[np.object_] = np.empty(0, dtype=object)
        if graph.n_edges:
            segments = np.asarray(shapely.linestrings(np.stack([graph.xy[u], graph.xy[v]], axis=1)), dtype=object)
        self._tree = shapely.STRtree(segments)

    def __repr__(self) -> str:
        return (
            f"RoadNetwork({self.graph.n_nodes} nodes, {self.graph.n_edges} edges, "
            f"{self.graph.total_length() / 1000:.1f} km, crs={self.crs.to_string()})"
        )

    @classmethod
    def from_roads(
        cls,
        roads: gpd.GeoDataFrame,
        *,
        snap_m: float = 1.0,
        dangle_m: float = 3.0,
        max_edge_m: float = 0.0,
    ) -> RoadNetwork:
        """The network of the (Multi)LineStrings of ``roads`` (other geometries are ignored).

        Works in the roads' CRS when it is projected in metres, else in the UTM zone of their
        centre. ``snap_m``, ``dangle_m``, ``max_edge_m``: see :func:`build_road_graph`; points
        snap onto edges, so the network needs no densifying (``max_edge_m`` 0) and stays small.
        Raises :class:`geo.errors.CRSError` without a CRS and ``ValueError`` when no road line
        is usable.
        """
        if not isinstance(roads, gpd.GeoDataFrame | gpd.GeoSeries):
            raise TypeError(f"roads must be a GeoDataFrame, got {type(roads).__name__}")
        require_crs(roads)
        geoms = gpd.GeoSeries(roads.geometry, crs=roads.crs)
        usable = _lines(np.asarray(geoms.values, dtype=object))
        if usable.size == 0 or not np.isfinite(shapely.get_coordinates(usable)).all(axis=1).any():
            raise ValueError("the roads have no usable LineString geometry")
        source = _as_crs(roads.crs)
        work = source if _is_metric(source) else metric_crs(geoms[~(geoms.is_empty | geoms.isna())])
        if work != source:
            geoms = geoms.to_crs(work)
        lines = _lines(np.asarray(geoms.values, dtype=object))
        coords = shapely.get_coordinates(lines)
        # A line with a NaN vertex would poison the noding: keep only fully finite lines.
        finite = np.isfinite(coords).all(axis=1)
        if not finite.all():
            _, owner = shapely.get_coordinates(lines, return_index=True)
            lines = np.delete(lines, np.unique(owner[~finite]))
        graph = build_road_graph(lines, snap_m=snap_m, dangle_m=dangle_m, max_edge_m=max_edge_m)
        if graph.n_edges == 0:
            raise ValueError("the roads have no usable LineString geometry")
        return cls(graph, crs=work)

    def snap(self, points: Any, *, crs: Any = None) -> tuple[IntArray, FloatArray, FloatArray]:
        """Where each point meets the roads: the nearest edge, the position along it (0 at
        ``graph.edges[e, 0]``, 1 at the other end) and the straight distance to it (metres).

        ``points`` as in :func:`point_xy`; ``crs`` defaults to a GeoSeries's own, else the
        network's. Unusable points (and every point when the network has no edge) get edge
        ``-1``, position NaN and distance ``inf``.
        """
        if crs is None and not isinstance(points, gpd.GeoSeries):
            crs = self.crs
        xy = point_xy(points, crs=crs, to=self.crs)
        edge = np.full(xy.shape[0], -1, dtype=np.int64)
        frac = np.full(xy.shape[0], np.nan, dtype=np.float64)
        leg = np.full(xy.shape[0], np.inf, dtype=np.float64)
        ok = np.flatnonzero(np.isfinite(xy).all(axis=1))
        if self.graph.n_edges == 0 or ok.size == 0:
            return edge, frac, leg
        src, hit = self._tree.query_nearest(shapely.points(xy[ok]), all_matches=False)
        rows, e = ok[src], np.asarray(hit, dtype=np.int64)
        a = self.graph.xy[self.graph.edges[e, 0]]
        ab = self.graph.xy[self.graph.edges[e, 1]] - a
        ab2 = (ab**2).sum(axis=1)
        t = np.where(ab2 > 0, ((xy[rows] - a) * ab).sum(axis=1) / np.where(ab2 > 0, ab2, 1.0), 0.0)
        t = np.clip(t, 0.0, 1.0)
        foot = a + ab * t[:, None]
        edge[rows], frac[rows] = e, t
        leg[rows] = np.hypot(*(xy[rows] - foot).T)
        return edge, frac, leg

    def reach(self, origin: shapely.Point, *, crs: Any = None, limit_m: float | None = None) -> Reach:
        """The shortest distances from ``origin`` (in ``crs``, default the network's), up to
        ``limit_m`` metres in total (snap leg included; ``None``: no limit): one
        ``csgraph.dijkstra`` call from the two ends of the origin's edge. Ask it with
        :meth:`Reach.distances_to`."""
        source = self.crs if crs is None else _as_crs(crs)
        limit = np.inf if limit_m is None else float(limit_m)
        if np.isnan(limit) or limit < 0:
            raise ValueError(f"limit_m must be >= 0 or None, got {limit_m!r}")
        xy = _origin_xy(origin, source, self.crs)
        edges, fracs, legs = self.snap([shapely.Point(xy)], crs=self.crs)
        edge, frac, leg = int(edges[0]), float(fracs[0]), float(legs[0])
        node_m = np.full(self.graph.n_nodes, np.inf, dtype=np.float64)
        if edge >= 0 and leg <= limit:
            ends = self.graph.edges[edge]
            length = float(self.graph.length[edge])
            offset = np.array([frac * length, (1.0 - frac) * length]) + leg
            dist = csgraph.dijkstra(self.matrix, directed=True, indices=ends, limit=limit - float(offset.min()))
            node_m = np.min(np.asarray(dist, dtype=np.float64) + offset[:, None], axis=0)
        return Reach(network=self, crs=source, edge=edge, frac=frac, leg_m=leg, node_m=node_m, limit_m=limit)

    def distances_from(
        self,
        origin: shapely.Point,
        targets: Any,
        *,
        crs: Any = None,
        limit_m: float | None = None,
    ) -> FloatArray:
        """Metres along the roads from ``origin`` to each of ``targets`` (Points: a GeoSeries or
        an array/sequence), ``inf`` when unreachable, beyond ``limit_m`` or missing/empty.

        ``crs`` is the CRS of ``origin`` and of array targets; it defaults to the targets' CRS
        when they are a GeoSeries (which must have one), else to the network's CRS.
        """
        if crs is None and isinstance(targets, gpd.GeoSeries):
            require_crs(targets)
            crs = targets.crs
        return self.reach(origin, crs=crs, limit_m=limit_m).distances_to(targets)


@dataclass(frozen=True, eq=False)
class Reach:
    """The shortest road distances from one origin (:meth:`RoadNetwork.reach`).

    The origin meets the roads on edge ``edge`` at position ``frac``, ``leg_m`` away;
    ``node_m[k]`` is the distance origin → node ``k`` (leg included), ``inf`` beyond ``limit_m``
    or in another component; ``crs`` is the origin's CRS, the default for targets.
    """

    network: RoadNetwork
    crs: pyproj.CRS
    edge: int  # -1 when the network has no edge
    frac: float
    leg_m: float
    node_m: FloatArray = field(repr=False)
    limit_m: float  # inf: no limit

    def distances_to(self, targets: Any, *, crs: Any = None) -> FloatArray:
        """Metres along the roads to each target (``inf``: unreachable, beyond the limit, unusable).

        ``crs``: of array targets, default the origin's; a GeoSeries brings its own."""
        if crs is None and not isinstance(targets, gpd.GeoSeries):
            crs = self.crs
        net = self.network
        edge, frac, leg = net.snap(targets, crs=crs)
        out = np.full(edge.size, np.inf, dtype=np.float64)
        ok = np.flatnonzero(edge >= 0)
        if ok.size == 0 or self.edge < 0:
            return out
        e, t = edge[ok], frac[ok]
        length = net.graph.length[e]
        ends = net.graph.edges[e]
        via_a = self.node_m[ends[:, 0]] + t * length
        via_b = self.node_m[ends[:, 1]] + (1.0 - t) * length
        best = np.minimum(via_a, via_b)
        # on the origin's own edge: straight along it, without a detour through a node
        same = e == self.edge
        best[same] = np.minimum(best[same], self.leg_m + np.abs(t[same] - self.frac) * length[same])
        out[ok] = best + leg[ok]
        out[out > self.limit_m] = np.inf
        return out

    def connected(self, targets: Any, *, crs: Any = None) -> BoolArray:
        """True where a road path to the target exists at all (same connected component),
        whatever its length: tells "too far" from "no road" among the ``inf`` of :meth:`distances_to`."""
        if crs is None and not isinstance(targets, gpd.GeoSeries):
            crs = self.crs
        net = self.network
        edge, _, _ = net.snap(targets, crs=crs)
        if self.edge < 0:
            return np.zeros(edge.size, dtype=bool)
        comp = net.components[net.graph.edges[np.maximum(edge, 0), 0]]
        mine = net.components[net.graph.edges[self.edge, 0]]
        return np.asarray((edge >= 0) & (comp == mine), dtype=bool)
