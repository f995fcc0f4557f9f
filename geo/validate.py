"""Checking (and lightly repairing) imported geometry layers.

:func:`validate_frame` never raises on bad data: it returns a repaired copy in EPSG:4326 and a
:class:`ValidationReport`; the caller decides (importers reject the whole file when
``not report.ok``).

Issue codes
-----------
Errors:
``no_crs``, ``crs_transform_failed``, ``null_geometry``, ``empty_geometry``,
``non_finite_coordinates`` (NaN or infinite), ``wrong_geometry_type``, ``outside_region``,
``swapped_lat_lon`` (the geometry is outside the region / the lon-lat range but its swapped
version is not), ``coordinates_out_of_range`` (|lon| > 180 or |lat| > 90),
``degenerate_geometry`` (a polygon with no area left after repair), ``missing_id_column``,
``null_id``, ``duplicate_id``.

Warnings:
``repaired_geometry`` (made valid; the message says why it was invalid), ``invalid_geometry``
(invalid and ``repair=False``), ``partly_outside_region``, ``repair_changed_type``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely

from geo.crs import to_wgs84

__all__ = ["Issue", "ValidationReport", "validate_frame"]

# Geometry type names in the order of shapely's type ids.
_TYPE_NAMES = (
    "Point",
    "LineString",
    "LinearRing",
    "Polygon",
    "MultiPoint",
    "MultiLineString",
    "MultiPolygon",
    "GeometryCollection",
)
_GEOMETRY_TYPES = {name.lower(): name for name in _TYPE_NAMES}
_POLYGONAL = ("Polygon", "MultiPolygon")


@dataclass(frozen=True)
class Issue:
    """One problem found in one row (``row`` is the frame's index label; ``None`` for the whole frame)."""

    row: Any
    code: str
    message: str

    def __str__(self) -> str:
        where = "frame" if self.row is None else f"row {self.row!r}"
        return f"{where}: {self.message} [{self.code}]"


@dataclass
class ValidationReport:
    """Outcome of :func:`validate_frame`."""

    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)
    repaired: int = 0

    @property
    def ok(self) -> bool:
        """True when there are no errors (warnings are allowed)."""
        return not self.errors

    def error_rows(self) -> list[Any]:
        """Index labels of rows with at least one error, in first-seen order."""
        return list(dict.fromkeys(issue.row for issue in self.errors if issue.row is not None))

    def codes(self) -> set[str]:
        """All issue codes present (errors and warnings)."""
        return {issue.code for issue in (*self.errors, *self.warnings)}

    def summary(self, *, limit: int = 20) -> str:
        """A short human-readable account, listing at most ``limit`` issues of each kind."""

        def plural(n: int, one: str, many: str) -> str:
            return f"{n} {one if n == 1 else many}"

        head = (
            f"{'OK' if self.ok else 'REJECTED'}: {plural(len(self.errors), 'error', 'errors')}, "
            f"{plural(len(self.warnings), 'warning', 'warnings')}, "
            f"{plural(self.repaired, 'geometry', 'geometries')} repaired"
        )
        lines = [head]
        for title, issues in (("Errors", self.errors), ("Warnings", self.warnings)):
            if not issues:
                continue
            lines.append(f"{title}:")
            lines.extend(f"  - {issue}" for issue in issues[:limit])
            if len(issues) > limit:
                lines.append(f"  ... and {len(issues) - limit} more")
        return "\n".join(lines)


def _normalise_types(geometry_types: Sequence[str] | None) -> set[str] | None:
    if geometry_types is None:
        return None
    if isinstance(geometry_types, str):
        geometry_types = (geometry_types,)
    out = set()
    for name in geometry_types:
        key = str(name).strip().lower()
        if key not in _GEOMETRY_TYPES:
            raise ValueError(f"unknown geometry type {name!r}; expected one of {sorted(_GEOMETRY_TYPES.values())}")
        out.add(_GEOMETRY_TYPES[key])
    return out


def _check_region(region: tuple[float, float, float, float]) -> tuple[float, float, float, float]:
    if len(region) != 4:
        raise ValueError("region must be (min_lon, min_lat, max_lon, max_lat)")
    minx, miny, maxx, maxy = (float(v) for v in region)
    if not (np.isfinite([minx, miny, maxx, maxy]).all() and minx < maxx and miny < maxy):
        raise ValueError(f"region must be (min_lon, min_lat, max_lon, max_lat) with min < max, got {region!r}")
    return minx, miny, maxx, maxy


def _polygonal_part(geom: Any) -> Any:
    """The polygonal parts of a (repaired) geometry as a Polygon/MultiPolygon (possibly empty)."""
    if geom.geom_type in _POLYGONAL:
        return geom
    parts = [p for p in shapely.get_parts(geom) if p.geom_type in _POLYGONAL]
    polys: list[shapely.Polygon] = []
    for part in parts:
        polys.extend(shapely.get_parts(part) if part.geom_type == "MultiPolygon" else [part])
    if not polys:
        return shapely.Polygon()
    if len(polys) == 1:
        return polys[0]
    return shapely.MultiPolygon(polys)


def validate_frame(
    frame: gpd.GeoDataFrame,
    *,
    region: tuple[float, float, float, float] | None = None,
    id_column: str | None = None,
    geometry_types: tuple[str, ...] | None = None,
    repair: bool = True,
) -> tuple[gpd.GeoDataFrame, ValidationReport]:
    """Check a layer and return ``(new frame in EPSG:4326, report)``.

    * ``region``: plausible (min_lon, min_lat, max_lon, max_lat) box; geometries entirely outside it
      are errors (with a "latitude and longitude look swapped" hint when the swapped version fits),
      partly outside are warnings.
    * ``id_column``: must exist, be non-null and unique.
    * ``geometry_types``: allowed geometry type names, e.g. ``("Polygon", "MultiPolygon")``.
    * ``repair``: make invalid geometries valid with :func:`shapely.make_valid`; polygons keep only
      their polygonal parts. Each repair is a warning.

    The input is never modified. If the frame has no CRS the copy keeps ``crs=None`` (and region and
    range checks are skipped). Raises only for bad arguments (``ValueError``/``TypeError``).
    """
    if not isinstance(frame, gpd.GeoDataFrame):
        raise TypeError(f"validate_frame expects a GeoDataFrame, got {type(frame).__name__}")
    allowed_types = _normalise_types(geometry_types)
    box = None if region is None else _check_region(region)
    report = ValidationReport()
    index = frame.index
    ids: pd.Series | None = None
    if id_column is not None:
        if id_column in frame.columns:
            ids = frame[id_column]
        else:
            report.errors.append(
                Issue(None, "missing_id_column", f"id column {id_column!r} not found; columns are {list(frame.columns)}")
            )

    def who(i: int) -> str:
        if ids is None:
            return ""
        value = ids.iloc[i]
        if np.ndim(value) == 0 and pd.isna(value):
            return ""
        return f"id {value!r}: "

    def error(i: int, code: str, message: str) -> None:
        report.errors.append(Issue(index[i], code, who(i) + message))

    def warning(i: int, code: str, message: str) -> None:
        report.warnings.append(Issue(index[i], code, who(i) + message))

    original = np.asarray(frame.geometry.values, dtype=object)
    n = len(original)
    bad = np.zeros(n, dtype=bool)  # rows whose geometry cannot be used further

    # -- CRS ---------------------------------------------------------------------------------
    if frame.crs is None:
        report.errors.append(
            Issue(None, "no_crs", "the layer has no coordinate reference system; declare it (e.g. EPSG:4490)")
        )

    # -- null, empty, non-finite --------------------------------------------------------------
    missing = np.asarray(shapely.is_missing(original), dtype=bool)
    coords, coord_rows = shapely.get_coordinates(original, return_index=True)
    nonfinite = np.zeros(n, dtype=bool)
    if len(coords):
        nonfinite[np.unique(coord_rows[~np.isfinite(coords).all(axis=1)])] = True
    empty = np.asarray(shapely.is_empty(original), dtype=bool) & ~missing & ~nonfinite
    for i in np.flatnonzero(missing):
        error(int(i), "null_geometry", "no geometry (null)")
    for i in np.flatnonzero(empty):
        error(int(i), "empty_geometry", "empty geometry")
    for i in np.flatnonzero(nonfinite):
        error(int(i), "non_finite_coordinates", "coordinates contain NaN or infinity")
    bad |= missing | empty | nonfinite

    # -- geometry type --------------------------------------------------------------------------
    usable = np.flatnonzero(~bad)
    type_ids = np.full(n, -1, dtype=np.int64)
    type_ids[usable] = shapely.get_type_id(original[usable])
    type_names = [_type_name(int(t)) for t in type_ids]
    if allowed_types is not None:
        for i in usable:
            if type_names[i] not in allowed_types:
                error(
                    int(i),
                    "wrong_geometry_type",
                    f"{type_names[i]} is not allowed here (expected {' or '.join(sorted(allowed_types))})",
                )
                bad[i] = True

    # -- reproject to WGS84 ---------------------------------------------------------------------
    out = frame.copy()
    lonlat = False  # True once `out` is known to be in EPSG:4326
    if frame.crs is not None:
        try:
            out = to_wgs84(frame)
            lonlat = True
        except Exception as exc:  # pyproj can fail on exotic definitions; report, don't raise
            report.errors.append(Issue(None, "crs_transform_failed", f"cannot reproject to EPSG:4326: {exc}"))
    geoms = np.asarray(out.geometry.values, dtype=object).copy()
    if lonlat:
        good = np.flatnonzero(~bad)
        _, rows_after = shapely.get_coordinates(geoms[good], return_index=True)
        coords_after = shapely.get_coordinates(geoms[good])
        broke = np.zeros(len(good), dtype=bool)
        if len(coords_after):
            broke[np.unique(rows_after[~np.isfinite(coords_after).all(axis=1)])] = True
        for i in good[broke]:
            error(int(i), "crs_transform_failed", "coordinates could not be transformed to EPSG:4326")
            bad[i] = True

    # -- validity and repair ----------------------------------------------------------------------
    check = np.flatnonzero(~bad)
    invalid = check[~np.asarray(shapely.is_valid(geoms[check]), dtype=bool)]
    if len(invalid):
        reasons = shapely.is_valid_reason(geoms[invalid])
        fixed_all = shapely.make_valid(geoms[invalid]) if repair else None
        for j, i in enumerate(invalid):
            reason = str(reasons[j])
            if fixed_all is None:
                warning(int(i), "invalid_geometry", f"invalid geometry ({reason}); not repaired")
                continue
            fixed: Any = fixed_all[j]
            was = type_names[i]
            if was in _POLYGONAL:
                fixed = _polygonal_part(fixed)
                if fixed.is_empty or fixed.area == 0:
                    error(int(i), "degenerate_geometry", f"polygon has no area ({reason}); cannot be repaired")
                    bad[i] = True
                    continue
            geoms[i] = fixed
            report.repaired += 1
            warning(int(i), "repaired_geometry", f"invalid geometry repaired ({reason})")
            if allowed_types is not None and fixed.geom_type not in allowed_types:
                warning(int(i), "repair_changed_type", f"repair turned the {was} into a {fixed.geom_type}")
        out[out.geometry.name] = gpd.GeoSeries(geoms, index=out.index, crs=out.crs)

    # -- plausible position -------------------------------------------------------------------------
    if lonlat:
        check = np.flatnonzero(~bad)
        bounds = np.asarray(shapely.bounds(geoms[check]), dtype=np.float64).reshape(-1, 4)
        _position_checks(check, bounds, box, error, warning, bad)

    # -- ids ------------------------------------------------------------------------------------------
    if ids is not None:
        _id_checks(ids, error)

    return out, report


def _type_name(type_id: int) -> str:
    return _TYPE_NAMES[type_id] if 0 <= type_id < len(_TYPE_NAMES) else "Unknown"


def _intersects_box(bounds: npt.NDArray[np.float64], box: tuple[float, float, float, float]) -> npt.NDArray[np.bool_]:
    minx, miny, maxx, maxy = box
    return np.asarray(
        (bounds[:, 0] <= maxx) & (bounds[:, 2] >= minx) & (bounds[:, 1] <= maxy) & (bounds[:, 3] >= miny)
    )


def _within_box(bounds: npt.NDArray[np.float64], box: tuple[float, float, float, float]) -> npt.NDArray[np.bool_]:
    minx, miny, maxx, maxy = box
    return np.asarray(
        (bounds[:, 0] >= minx) & (bounds[:, 2] <= maxx) & (bounds[:, 1] >= miny) & (bounds[:, 3] <= maxy)
    )


def _position_checks(
    rows: npt.NDArray[np.intp],
    bounds: npt.NDArray[np.float64],
    box: tuple[float, float, float, float] | None,
    error: Any,
    warning: Any,
    bad: npt.NDArray[np.bool_],
) -> None:
    swapped = bounds[:, [1, 0, 3, 2]]
    world = (-180.0, -90.0, 180.0, 90.0)
    in_range = _within_box(bounds, world)
    swapped_in_range = _within_box(swapped, world)
    for k in np.flatnonzero(~in_range):
        i = int(rows[k])
        bad[i] = True
        fits = swapped_in_range[k] and (box is None or _intersects_box(swapped[k : k + 1], box)[0])
        if fits:
            error(i, "swapped_lat_lon", "latitude and longitude look swapped (latitude beyond ±90°)")
        else:
            error(i, "coordinates_out_of_range", "coordinates are outside longitude ±180° / latitude ±90°")
    if box is None:
        return
    inside = _intersects_box(bounds, box)
    within = _within_box(bounds, box)
    swapped_inside = _intersects_box(swapped, box)
    lo = f"({box[0]:g}, {box[1]:g}, {box[2]:g}, {box[3]:g})"
    for k in np.flatnonzero(in_range & ~inside):
        i = int(rows[k])
        bad[i] = True
        if swapped_inside[k]:
            error(i, "swapped_lat_lon", f"outside the region {lo}: latitude and longitude look swapped")
        else:
            error(i, "outside_region", f"outside the region {lo} (lon/lat bounds {_fmt_bounds(bounds[k])})")
    for k in np.flatnonzero(in_range & inside & ~within):
        warning(int(rows[k]), "partly_outside_region", f"partly outside the region {lo}")


def _fmt_bounds(b: npt.NDArray[np.float64]) -> str:
    return f"{b[0]:.5f}, {b[1]:.5f}, {b[2]:.5f}, {b[3]:.5f}"


def _id_checks(ids: pd.Series, error: Any) -> None:
    values = ids.to_numpy(dtype=object)
    null = np.asarray(pd.isna(ids), dtype=bool)
    blank = np.array([isinstance(v, str) and not v.strip() for v in values], dtype=bool)
    for i in np.flatnonzero(null | blank):
        error(int(i), "null_id", "missing id")
    present = ~(null | blank)
    dup = np.asarray(ids.duplicated(keep=False), dtype=bool) & present
    if not dup.any():
        return
    positions: dict[Any, list[int]] = {}
    for i in np.flatnonzero(dup):
        positions.setdefault(values[i], []).append(int(i))
    index = ids.index
    for where in positions.values():
        rows = ", ".join(repr(index[j]) for j in where[:10]) + (" ..." if len(where) > 10 else "")
        for pos in where:
            error(pos, "duplicate_id", f"duplicate id, used by {len(where)} rows ({rows})")
