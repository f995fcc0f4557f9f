"""Household counts for buildings that have none: estimates from footprint area and storeys.

Partitioning needs a household count per building, but building extracts (OpenStreetMap, a
survey's footprints) often have none, or hostile values. :func:`estimate_households` keeps every
valid count it is given and estimates the rest:

    households = round(footprint area in m² × storeys ÷ area_per_household_m2)

* **Footprint area** is measured in metres (geographic data in its UTM zone).
* **Storeys** come from ``building:levels`` (OSM; ``"5"``, ``"5.5"``, ``"5;6"`` and ``"5-6"``
  read as the mean of the numbers), else from ``height`` ÷ ``storey_height_m`` (``"15"``,
  ``"15 m"``, ``"50 ft"``), else from the kind of building (``building``: house 1, apartments 6,
  residential 3, yes 2 … see :data:`LEVELS_BY_KIND`; ``levels_by_kind`` overrides entries), else
  ``default_levels`` (default: the ``"yes"`` entry, 2). Unreadable, non-positive or absurd
  values (more than :data:`MAX_LEVELS` storeys) are ignored and reported.
* **Area per household** defaults to 90 m² of floor area (a Chinese urban flat's gross floor area
  including its share of stairs and walls).
* Residential footprints get at least ``min_households``; kinds in ``non_residential`` (schools,
  hospitals, shops, garages… see :data:`NON_RESIDENTIAL`) get 0.

A given household count is kept when it is a positive finite number (numeric strings such as
``"12"`` too; fractions are rounded). Zero, negative, missing and unreadable counts are treated
as missing, estimated, and reported. Every default above is a keyword argument.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyproj
import shapely

from geo.crs import require_crs, to_metric

__all__ = ["LEVELS_BY_KIND", "MAX_LEVELS", "NON_RESIDENTIAL", "WARNINGS_ATTR", "estimate_households"]

# Storeys assumed for a building of a given OSM ``building=*`` kind when neither levels nor a
# height are known.
LEVELS_BY_KIND: dict[str, float] = {
    "house": 1,
    "detached": 1,
    "bungalow": 1,
    "farm": 1,
    "hut": 1,
    "cabin": 1,
    "static_caravan": 1,
    "semidetached_house": 2,
    "terrace": 2,
    "residential": 3,
    "apartments": 6,
    "dormitory": 5,
    "yes": 2,
}

# OSM ``building=*`` kinds that hold no households.
NON_RESIDENTIAL: tuple[str, ...] = (
    "school",
    "kindergarten",
    "college",
    "university",
    "hospital",
    "clinic",
    "commercial",
    "industrial",
    "retail",
    "supermarket",
    "kiosk",
    "office",
    "government",
    "civic",
    "public",
    "hotel",
    "church",
    "chapel",
    "cathedral",
    "temple",
    "mosque",
    "shrine",
    "religious",
    "garage",
    "garages",
    "carport",
    "parking",
    "warehouse",
    "shed",
    "barn",
    "cowshed",
    "stable",
    "sty",
    "greenhouse",
    "farm_auxiliary",
    "hangar",
    "service",
    "transformer_tower",
    "water_tower",
    "silo",
    "storage_tank",
    "toilets",
    "train_station",
    "transportation",
    "fire_station",
    "sports_hall",
    "sports_centre",
    "stadium",
    "grandstand",
    "pavilion",
    "roof",
    "ruins",
    "bunker",
    "bridge",
    "construction",
)

# More storeys than this (the tallest buildings have ~160) is a typo, not a building.
MAX_LEVELS = 200.0
# The result's ``attrs`` key holding the list of warnings.
WARNINGS_ATTR = "households_warnings"

_NUMBER = r"\d+(?:\.\d+)?"
_LEVELS_RE = re.compile(rf"^\s*({_NUMBER})(?:\s*[;,/\-–]\s*({_NUMBER}))*\s*$")
_HEIGHT_RE = re.compile(rf"^\s*({_NUMBER})\s*(m|metres|meters|ft|feet|')?\s*$", re.IGNORECASE)
_FEET = 0.3048


def _parse_levels(value: Any) -> float:
    """Storeys from an OSM ``building:levels`` value: NaN when missing, -1 when unreadable."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return math.nan
    if isinstance(value, bool):
        return -1.0
    if isinstance(value, int | float | np.integer | np.floating):
        v = float(value)
        return v if math.isfinite(v) else -1.0
    text = str(value).strip()
    if not text:
        return math.nan
    if not _LEVELS_RE.match(text):
        return -1.0
    numbers = [float(x) for x in re.findall(_NUMBER, text)]
    return sum(numbers) / len(numbers)


def _parse_height(value: Any) -> float:
    """Metres from an OSM ``height`` value: NaN when missing, -1 when unreadable."""
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return math.nan
    if isinstance(value, bool):
        return -1.0
    if isinstance(value, int | float | np.integer | np.floating):
        v = float(value)
        return v if math.isfinite(v) else -1.0
    text = str(value).strip()
    if not text:
        return math.nan
    match = _HEIGHT_RE.match(text)
    if not match:
        return -1.0
    metres = float(match.group(1))
    unit = (match.group(2) or "m").lower()
    return metres * _FEET if unit in ("ft", "feet", "'") else metres


def _rows(index: pd.Index, mask: npt.NDArray[np.bool_]) -> str:
    rows = list(index[mask][:5])
    return f"{rows}{' ...' if mask.sum() > 5 else ''}"


def _examples(values: npt.NDArray[Any], mask: npt.NDArray[np.bool_]) -> str:
    seen: list[str] = []
    for v in values[mask]:
        text = repr(v)
        if text not in seen:
            seen.append(text)
        if len(seen) == 3:
            break
    return ", ".join(seen)


def estimate_households(
    buildings: gpd.GeoDataFrame,
    *,
    area_per_household_m2: float = 90.0,
    levels_column: str = "building:levels",
    default_levels: float | None = None,
    levels_by_kind: Mapping[str, float] | None = None,
    kind_column: str = "building",
    non_residential: Iterable[str] = NON_RESIDENTIAL,
    min_households: int = 1,
    height_column: str = "height",
    storey_height_m: float = 3.0,
) -> gpd.GeoDataFrame:
    """A copy of ``buildings`` with ``households`` (int >= 0) and ``households_estimated`` (bool).

    Valid counts already in ``households`` are kept (``households_estimated`` False); the others
    are estimated as described in the module docstring: footprint m² × storeys ÷
    ``area_per_household_m2``, rounded, at least ``min_households`` for residential footprints,
    0 for kinds in ``non_residential`` (compared case-insensitively). Missing columns are fine
    (no ``households``: everything is estimated; no kind column: every building is ``"yes"``).

    What was wrong with the input (non-positive or unreadable counts, unreadable or absurd
    levels and heights, null geometries, which get 0) is listed, one line per problem with
    example rows, in ``result.attrs["households_warnings"]``. Raises
    :class:`~geo.errors.CRSError` without a CRS and ``ValueError`` for bad options.
    """
    require_crs(buildings)
    if not (math.isfinite(area_per_household_m2) and area_per_household_m2 > 0):
        raise ValueError(f"area_per_household_m2 must be positive, got {area_per_household_m2!r}")
    if not (math.isfinite(storey_height_m) and storey_height_m > 0):
        raise ValueError(f"storey_height_m must be positive, got {storey_height_m!r}")
    if min_households < 0:
        raise ValueError(f"min_households must be >= 0, got {min_households!r}")
    kinds_table = dict(LEVELS_BY_KIND)
    if levels_by_kind is not None:
        kinds_table.update({str(k).strip().lower(): float(v) for k, v in levels_by_kind.items()})
    if any(not (math.isfinite(v) and v > 0) for v in kinds_table.values()):
        raise ValueError("levels_by_kind values must be positive numbers")
    fallback = float(default_levels) if default_levels is not None else kinds_table.get("yes", 2.0)
    if not (math.isfinite(fallback) and fallback > 0):
        raise ValueError(f"default_levels must be positive, got {default_levels!r}")
    closed = {str(k).strip().lower() for k in non_residential}

    out = buildings.copy()
    n = len(out)
    warnings: list[str] = []
    index = out.index

    # existing counts
    if "households" in out.columns:
        raw = out["households"].to_numpy(dtype=object)
        given = pd.to_numeric(out["households"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        given = np.where([isinstance(v, bool) for v in raw], np.nan, given)
        present = np.asarray(pd.notna(out["households"]), dtype=bool) & np.asarray(
            [not (isinstance(v, str) and not v.strip()) for v in raw], dtype=bool
        )
        unreadable = present & ~np.isfinite(given)
        non_positive = np.isfinite(given) & (np.round(np.where(np.isfinite(given), given, 0.0)) < 1)
        if unreadable.any():
            warnings.append(
                f"{int(unreadable.sum())} building(s) have unreadable households "
                f"({_examples(raw, unreadable)}; rows {_rows(index, unreadable)}); estimated instead"
            )
        if non_positive.any():
            warnings.append(
                f"{int(non_positive.sum())} building(s) have zero, negative or fractional households "
                f"({_examples(raw, non_positive)}; rows {_rows(index, non_positive)}); estimated instead"
            )
        valid = np.isfinite(given) & ~non_positive
        rounded = np.round(np.where(valid, given, 0.0))
    else:
        valid = np.zeros(n, dtype=bool)
        rounded = np.zeros(n, dtype=np.float64)

    # kinds
    if kind_column in out.columns:
        kinds = np.asarray(
            [str(v).strip().lower() if isinstance(v, str) and v.strip() else "yes" for v in out[kind_column]],
            dtype=object,
        )
    else:
        kinds = np.full(n, "yes", dtype=object)
    closed_kind = np.asarray([k in closed for k in kinds], dtype=bool)

    # storeys: levels, else height / storey height, else kind table, else the fallback
    levels = np.full(n, np.nan)
    if levels_column in out.columns:
        raw_levels = out[levels_column].to_numpy(dtype=object)
        parsed = np.asarray([_parse_levels(v) for v in raw_levels], dtype=np.float64)
        bad = (parsed == -1.0) | (np.isfinite(parsed) & ((parsed <= 0) | (parsed > MAX_LEVELS)))
        if bad.any():
            warnings.append(
                f"{int(bad.sum())} building(s) have unreadable or implausible {levels_column!r} "
                f"({_examples(raw_levels, bad)}; rows {_rows(index, bad)}); used height or kind instead"
            )
        levels = np.where(bad, np.nan, parsed)
    if height_column in out.columns:
        raw_height = out[height_column].to_numpy(dtype=object)
        heights = np.asarray([_parse_height(v) for v in raw_height], dtype=np.float64)
        bad = (heights == -1.0) | (
            np.isfinite(heights) & ((heights <= 0) | (heights > MAX_LEVELS * storey_height_m))
        )
        if bad.any():
            warnings.append(
                f"{int(bad.sum())} building(s) have unreadable or implausible {height_column!r} "
                f"({_examples(raw_height, bad)}; rows {_rows(index, bad)}); used the kind instead"
            )
        from_height = np.where(bad, np.nan, np.maximum(np.round(heights / storey_height_m), 1.0))
        levels = np.where(np.isnan(levels), from_height, levels)
    by_kind = np.asarray([kinds_table.get(k, fallback) for k in kinds], dtype=np.float64)
    levels = np.where(np.isnan(levels), by_kind, levels)

    # footprint areas in square metres
    geoms = np.asarray(out.geometry.values, dtype=object)
    missing = np.asarray(shapely.is_missing(geoms) | shapely.is_empty(geoms), dtype=bool)
    area = np.zeros(n)
    if (~missing).any():
        series = out.geometry[~missing]
        if pyproj.CRS.from_user_input(out.crs).is_geographic:
            series = to_metric(series)
        area[~missing] = np.asarray(shapely.area(np.asarray(series.values, dtype=object)), dtype=np.float64)
    if (missing & ~valid).any():
        warnings.append(
            f"{int((missing & ~valid).sum())} building(s) without a geometry and without households "
            f"(rows {_rows(index, missing & ~valid)}); set to 0"
        )

    estimate = np.round(area * levels / area_per_household_m2)
    estimate = np.maximum(estimate, float(min_households))
    estimate = np.where(closed_kind | missing, 0.0, estimate)
    households = np.where(valid, rounded, estimate).astype(np.int64)

    out["households"] = households
    out["households_estimated"] = ~valid
    out.attrs = dict(buildings.attrs)
    out.attrs[WARNINGS_ATTR] = warnings
    return out
