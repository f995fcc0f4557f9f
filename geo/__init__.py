"""Pure spatial core: CRS handling, validation, household partitioning and grid codes.

Everything here takes data and returns new objects (GeoDataFrames, geometries, arrays); no
Streamlit, folium or database. Measurements are in metres in a projected CRS; a frame without a
CRS is an error (:class:`geo.errors.CRSError`).

Modules: :mod:`geo.crs`, :mod:`geo.validate`, :mod:`geo.partition`, :mod:`geo.codes`. (The
function ``partition`` is not re-exported here: it would shadow the submodule ``geo.partition``.)
"""

from geo.codes import grid_codes, reading_order
from geo.crs import CGCS2000, WGS84, parse_crs, require_crs, to_metric, to_wgs84
from geo.errors import CRSError
from geo.partition import partition_households, tessellate
from geo.validate import Issue, ValidationReport, validate_frame

__all__ = [
    "CGCS2000",
    "CRSError",
    "Issue",
    "ValidationReport",
    "WGS84",
    "grid_codes",
    "parse_crs",
    "partition_households",
    "reading_order",
    "require_crs",
    "tessellate",
    "to_metric",
    "to_wgs84",
    "validate_frame",
]
