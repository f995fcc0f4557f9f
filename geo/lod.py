"""Level of detail for maps: how much geometry a screen at a given zoom can carry.

Web-map zoom z shows 256·2^z pixels around the equator; one pixel is ``360 / (256·2^z)`` degrees of
longitude. Simplifying to about one pixel and rounding coordinates to what a pixel can show keeps a
screen's payload bounded whatever the size of the city.
"""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import shapely

from geo.errors import CRSError


def degrees_per_pixel(zoom: float) -> float:
    """Degrees of longitude covered by one screen pixel at web-map zoom ``zoom``."""
    return 360.0 / (256.0 * 2.0**zoom)


def metres_per_pixel(zoom: float, *, lat: float) -> float:
    return 156_543.033_92 * math.cos(math.radians(lat)) / 2.0**zoom


def view_bbox(
    lat: float, lon: float, zoom: float, *, width_px: int, height_px: int
) -> tuple[float, float, float, float]:
    """(min lon, min lat, max lon, max lat) a screen of the given size shows around (lat, lon)."""
    half_w = width_px / 2 * degrees_per_pixel(zoom)
    half_h = height_px / 2 * degrees_per_pixel(zoom) * math.cos(math.radians(lat))
    return (lon - half_w, lat - half_h, lon + half_w, lat + half_h)


def decimals_for_zoom(zoom: float) -> int:
    """Decimal places of a lon/lat coordinate that still resolve a tenth of a pixel."""
    return max(3, min(7, math.ceil(-math.log10(degrees_per_pixel(zoom) / 10))))


def simplify_for_zoom(
    frame: gpd.GeoDataFrame, *, zoom: float, pixels: float = 1.0, coverage: bool = False
) -> gpd.GeoDataFrame:
    """A new frame with geometries simplified to ``pixels`` screen pixels and coordinates rounded.

    The frame must be in lon/lat (EPSG:4326). With ``coverage=True`` the polygons are treated as a
    coverage (grids, admin units) and simplified together so neighbours keep their shared edges.
    """
    if frame.crs is None:
        raise CRSError("simplify_for_zoom: the frame has no CRS")
    if not frame.crs.equals("EPSG:4326"):
        raise CRSError(f"simplify_for_zoom expects lon/lat (EPSG:4326), got {frame.crs.to_string()}")
    out = frame.copy()
    if len(out) == 0:
        return out
    tol = degrees_per_pixel(zoom) * pixels
    geoms = out.geometry.to_numpy()
    if coverage and len(geoms) > 1:
        try:
            simplified = shapely.coverage_simplify(geoms, tol)
        except Exception:  # not a valid coverage: fall back to per-geometry simplification
            simplified = shapely.simplify(geoms, tol, preserve_topology=True)
    else:
        simplified = shapely.simplify(geoms, tol, preserve_topology=True)
    d = decimals_for_zoom(zoom)
    rounded = shapely.transform(simplified, lambda c: np.round(c, d))
    # Rounding can collapse tiny parts; keep the simplified geometry where it did.
    bad = shapely.is_empty(rounded) | ~shapely.is_valid(rounded)
    rounded[bad] = simplified[bad]
    out[out.geometry.name] = rounded
    return out
