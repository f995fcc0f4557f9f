"""Grid codes following the Chinese administrative codes, and reading-order numbering.

A grid code has 15 digits::

    211202 001 201 007
    county township village grid
    (GB/T 2260) (GB/T 10114) (sequence, numbered west→east, north→south)

Township part (digits 7–9): 001–099 street (街道), 100–199 town (镇), 200–399 township (乡).
Village part (digits 10–12): 001–199 residents' committee / community (社区),
200–399 villagers' committee / village (村).
"""

from __future__ import annotations

import re
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely

from geo.crs import require_crs

__all__ = [
    "grid_codes",
    "is_valid_county_code",
    "is_valid_gbt28181_id",
    "is_valid_grid_code",
    "reading_order",
    "township_kind",
    "village_kind",
]

_DIGITS = re.compile(r"[0-9]+")
# First two digits of GB/T 2260 codes: provinces, autonomous regions, municipalities, HK/MO/TW.
_PROVINCES = frozenset(
    [11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46]
    + [50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82]
)
MAX_GRIDS_PER_VILLAGE = 999


def _digits(code: Any, n: int | None = None) -> bool:
    """True if ``code`` is a str of ASCII digits (exactly ``n`` of them if given)."""
    if not isinstance(code, str) or not _DIGITS.fullmatch(code):
        return False
    return n is None or len(code) == n


def reading_order(geoms: Any) -> npt.NDArray[np.int64]:
    """Positions of ``geoms`` in reading order: rows north→south, west→east within a row.

    Returns a permutation like :func:`numpy.argsort`: ``geoms.iloc[reading_order(geoms)]`` lists
    them in reading order. Rows are bands of centroid y about one median cell height (of the
    bounding boxes) tall: walking the centroids from north to south, a new row starts whenever a
    centroid is half a median cell height or more below the row's northernmost one. Ties are
    broken by position, so the result is deterministic. Null or empty geometries come last.
    ``geoms`` is a GeoSeries (or GeoDataFrame) with a CRS.
    """
    series = geoms.geometry if isinstance(geoms, gpd.GeoDataFrame) else geoms
    require_crs(series)
    values = np.asarray(series.values, dtype=object)
    n = len(values)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    missing = np.asarray(shapely.is_missing(values) | shapely.is_empty(values), dtype=bool)
    present = np.flatnonzero(~missing)
    xy = shapely.get_coordinates(shapely.centroid(values[present])).reshape(-1, 2)
    bounds = np.asarray(shapely.bounds(values[present]), dtype=np.float64).reshape(-1, 4)
    heights = bounds[:, 3] - bounds[:, 1]
    finite = np.isfinite(xy).all(axis=1)
    band = float(np.median(heights[finite])) if finite.any() else 0.0
    # North to south (ties: west first, then input position).
    ordered = np.lexsort((present, xy[:, 0], -xy[:, 1]))
    rows = np.zeros(len(present), dtype=np.int64)
    row, row_top = 0, None
    for j in ordered:
        y = xy[j, 1]
        if row_top is None:
            row_top = y
        elif not (row_top - y < band / 2.0):  # also true for NaN: such geometries get their own row
            row += 1
            row_top = y
        rows[j] = row
    order = np.lexsort((present, xy[:, 0], rows))
    return np.concatenate([present[order], np.flatnonzero(missing)]).astype(np.int64)


def grid_codes(grids: gpd.GeoDataFrame, *, village_code: str) -> pd.Series:
    """15-digit grid codes: the 12-digit village code + a 3-digit sequence (001…) in reading order.

    Returns a string Series named ``"grid_code"`` aligned with ``grids.index``. Raises
    ``ValueError`` if ``village_code`` is not 12 ASCII digits or there are more than 999 grids.
    """
    if not _digits(village_code, 12):
        raise ValueError(f"village_code must be 12 digits (6 county + 3 township + 3 village), got {village_code!r}")
    n = len(grids)
    if n > MAX_GRIDS_PER_VILLAGE:
        raise ValueError(f"{n} grids in village {village_code}: at most {MAX_GRIDS_PER_VILLAGE} fit a 3-digit sequence")
    order = reading_order(grids)
    sequence = np.empty(n, dtype=np.int64)
    sequence[order] = np.arange(1, n + 1)
    codes = [f"{village_code}{s:03d}" for s in sequence]
    return pd.Series(codes, index=grids.index, name="grid_code", dtype=object)


def township_kind(code: str) -> str:
    """``'street'``, ``'town'`` or ``'township'`` from digits 7–9 of a code of 9 or more digits."""
    if not _digits(code) or len(code) < 9:
        raise ValueError(f"expected a code of at least 9 digits, got {code!r}")
    part = int(code[6:9])
    if 1 <= part <= 99:
        return "street"
    if 100 <= part <= 199:
        return "town"
    if 200 <= part <= 399:
        return "township"
    raise ValueError(f"township part {code[6:9]} of {code!r} is not a street (001–099), town (100–199) or township (200–399)")


def village_kind(code: str) -> str:
    """``'community'`` (001–199) or ``'village'`` (200–399) from digits 10–12 of a 12+-digit code."""
    if not _digits(code) or len(code) < 12:
        raise ValueError(f"expected a code of at least 12 digits, got {code!r}")
    part = int(code[9:12])
    if 1 <= part <= 199:
        return "community"
    if 200 <= part <= 399:
        return "village"
    raise ValueError(f"village part {code[9:12]} of {code!r} is not a community (001–199) or village (200–399)")


def is_valid_county_code(code: Any) -> bool:
    """A 6-digit GB/T 2260 code below province level, e.g. ``'211202'`` (Yinzhou) or ``'211200'``
    (Tieling city): a known province prefix and not ``xx0000``."""
    return _digits(code, 6) and int(code[:2]) in _PROVINCES and code[2:] != "0000"


def is_valid_grid_code(code: Any) -> bool:
    """A 15-digit grid code: valid county, street/town/township, community/village, sequence 001–999."""
    if not _digits(code, 15) or not is_valid_county_code(code[:6]):
        return False
    try:
        township_kind(code)
        village_kind(code)
    except ValueError:
        return False
    return code[12:] != "000"


def is_valid_gbt28181_id(s: Any) -> bool:
    """A GB/T 28181 device/platform ID: exactly 20 ASCII digits."""
    return _digits(s, 20)
