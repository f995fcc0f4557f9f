"""The road network as a graph, for routing the patrol simulator's grid workers.

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
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from scipy import sparse
from scipy.sparse import csgraph
from scipy.spatial import cKDTree

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

__all__ = [
    "RoadGraph",
    "SubGraph",
    "build_road_graph",
    "path_from_predecessors",
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
