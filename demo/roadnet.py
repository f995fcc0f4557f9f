"""The road network as a graph, for routing the patrol simulator's grid workers.

The graph building (noding, snapping, densifying; subgraphs and paths) lives in
:mod:`geo.network`, because the dispatcher measures road distances on the same graph and ``geo``
must not import ``demo``. This module re-exports it under the names the simulator uses.
"""

from __future__ import annotations

from geo.network import RoadGraph, SubGraph, build_road_graph, path_from_predecessors, subgraph

__all__ = [
    "RoadGraph",
    "SubGraph",
    "build_road_graph",
    "path_from_predecessors",
    "subgraph",
]
