"""Pure spatial core: CRS handling, validation, household partitioning and grid codes.

Everything here takes data and returns new objects (GeoDataFrames, geometries, arrays); no
Streamlit, folium or database. Measurements are in metres in a projected CRS; a frame without a
CRS is an error (:class:`geo.errors.CRSError`).

Modules: :mod:`geo.crs`, :mod:`geo.validate`, :mod:`geo.partition`, :mod:`geo.codes`,
:mod:`geo.unify`, :mod:`geo.audit`, :mod:`geo.blocks`, :mod:`geo.households`. (The functions
``partition``, ``unify`` and ``blocks`` are not re-exported here: they would shadow the submodules
``geo.partition``, ``geo.unify`` and ``geo.blocks``.)
"""

from geo.audit import AuditReport, Finding, audit_grids, recount
from geo.blocks import block_graph
from geo.codes import grid_codes, reading_order
from geo.crs import CGCS2000, WGS84, parse_crs, require_crs, to_metric, to_wgs84
from geo.edit import EditError, merge_grids, move_buildings, replace_grids, reshape_grid, split_grid
from geo.errors import CRSError
from geo.households import estimate_households
from geo.lineage import assign_codes
from geo.partition import edge_alignment, partition_households, tessellate
from geo.unify import Unified, disagreements
from geo.validate import Issue, ValidationReport, validate_frame

__all__ = [
    "AuditReport",
    "CGCS2000",
    "CRSError",
    "EditError",
    "Finding",
    "Issue",
    "Unified",
    "ValidationReport",
    "WGS84",
    "assign_codes",
    "audit_grids",
    "block_graph",
    "disagreements",
    "edge_alignment",
    "estimate_households",
    "grid_codes",
    "merge_grids",
    "move_buildings",
    "parse_crs",
    "partition_households",
    "reading_order",
    "recount",
    "replace_grids",
    "require_crs",
    "reshape_grid",
    "split_grid",
    "tessellate",
    "to_metric",
    "to_wgs84",
    "validate_frame",
]
