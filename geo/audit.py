"""Auditing a grid-planning draft before it is published (issue 3).

Planners redraw the micro-grids of one village or community (the *parent unit*). A draft may not be
published while it has errors; warnings may be accepted with a reason. :func:`audit_grids` checks a
draft against the rules "cover the territory completely, with no gaps and no overlaps" (纵向到底、
横向到边、全面覆盖), "never split a building" and the household band, and returns an
:class:`AuditReport` of :class:`Finding` s, each with a stable machine code, a sentence for a person
and the geometry of the defect (in the grids' CRS, ready to draw on a map).
:func:`recount` recounts households and buildings per grid from building footprints.

Grids
-----
Columns: the key (``code`` by default; ``None``/``""`` for the new grids of a draft, which are then
labelled ``"#<index label>"``), ``kind`` (``"base"`` or ``"dedicated"``; missing column or empty value
= base), optionally ``band_min``/``band_max`` (per-grid household band overriding ``band``) and the
``households`` column (used when no buildings are given). Geometry: Polygon or MultiPolygon.
Dedicated grids (schools, hospitals, markets, industrial parks) lie *over* base grids, which is
allowed: gaps, overlaps and building assignment are computed among base grids only.

Rules (all measured in metres, in the UTM zone of the parent unit)
-----------------------------------------------------------------------
* Invalid grid geometries are reported and then repaired (:func:`shapely.make_valid`, polygonal
  parts) so that the other checks still see the grid; a repaired grid is not also reported as
  ``non_contiguous``. Null, empty and unrepairable grids take part only in the code checks.
* Gaps, overlaps, parts outside the parent and detached parts smaller than ``min_area_m2`` are
  ignored (digitising noise, reprojection slivers).
* A building belongs to the base grid containing its *representative point*
  (:func:`shapely.point_on_surface` of the footprint). When the point lies in two or more base grids
  (an overlap, or exactly on a shared boundary) it is counted in the one holding the largest share of
  its footprint (ties: the first grid in frame order) and reported as ``building_in_two``.
* A building is *split* (``building_split``) when another base grid than its own holds at least
  :data:`SPLIT_SHARE` (10 %) of its footprint area, and at least ``min_area_m2``. Smaller pieces are
  treated as drawing noise.
* Buildings whose representative point lies outside the parent and in no base grid belong to a
  neighbouring unit and are ignored. Buildings with a null or empty footprint are ignored.
* Household checks apply to base grids. Households come from the buildings (recounted) when
  buildings are given, else from the grids' ``households`` column; without either they are skipped.
  A grid with no households is ``empty_grid`` (not also ``out_of_band``). A grid over the band whose
  households all live in one building is ``oversized_building`` instead of ``out_of_band``.

Codes (severity) — :data:`CODES`
--------------------------------
Errors: ``empty_geometry``, ``invalid_geometry``, ``duplicate_code``, ``outside_parent``, ``gap``,
``overlap``, ``non_contiguous``, ``dedicated_overlap`` (a dedicated grid overlapping another dedicated
grid, or extending outside the parent), ``building_unassigned``, ``building_in_two``,
``building_split``.
Warnings: ``out_of_band``, ``oversized_building``, ``empty_grid``, ``no_worker``.

A frame (or parent GeoSeries) without a CRS raises :class:`geo.errors.CRSError`; bad arguments raise
``ValueError``/``TypeError``. Inputs are never modified.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from shapely.geometry.base import BaseGeometry

from geo._types import BoolArray, FloatArray, IntArray, ObjArray
from geo.crs import metric_crs, require_crs
from geo.errors import CRSError
from geo.validate import _polygonal_part

__all__ = ["CODES", "ERROR", "SPLIT_SHARE", "WARNING", "AuditReport", "Finding", "audit_grids", "recount"]

ERROR = "error"
WARNING = "warning"

# Every code with its severity, in the order findings are reported.
CODES: dict[str, str] = {
    "empty_geometry": ERROR,
    "invalid_geometry": ERROR,
    "duplicate_code": ERROR,
    "outside_parent": ERROR,
    "gap": ERROR,
    "overlap": ERROR,
    "non_contiguous": ERROR,
    "dedicated_overlap": ERROR,
    "building_unassigned": ERROR,
    "building_in_two": ERROR,
    "building_split": ERROR,
    "out_of_band": WARNING,
    "oversized_building": WARNING,
    "empty_grid": WARNING,
    "no_worker": WARNING,
}
_ORDER = {code: i for i, code in enumerate(CODES)}

# Share of a footprint in another base grid from which a building counts as split.
SPLIT_SHARE = 0.10
# Distance (m) within which a grid may border a gap.
_NEAR_M = 0.05
# Length (m) of a gap's outline a grid must share to be named as next to it.
_NEIGHBOUR_M = 0.5


_BASE, _DEDICATED = "base", "dedicated"
_POLYGON_TYPE_IDS = (3, 6)
_LOCATION = re.compile(r"\[\s*([-+0-9.eE]+)\s+([-+0-9.eE]+)\s*\]")


# --------------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Finding:
    """One problem of a draft.

    ``grids``: labels of the grids concerned (codes, or ``"#<index label>"`` for uncoded new grids);
    ``buildings``: building ids concerned; ``area_m2``: the area of the defect where it has one;
    ``geometry``: where it is, in the input grids' CRS (``None`` when it has no place).
    """

    code: str
    severity: str
    grids: tuple[str, ...]
    buildings: tuple[Any, ...]
    message: str
    area_m2: float | None = None
    geometry: BaseGeometry | None = None

    def __str__(self) -> str:
        return f"{self.severity}: {self.message} [{self.code}]"


@dataclass(frozen=True)
class AuditReport:
    """Outcome of :func:`audit_grids`: findings ordered by code (see :data:`CODES`), then by place."""

    findings: tuple[Finding, ...] = ()
    crs: Any = None

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == ERROR)

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == WARNING)

    @property
    def ok(self) -> bool:
        """True when the draft has no errors (it may be published, warnings accepted with a reason)."""
        return not self.errors

    def codes(self) -> set[str]:
        return {f.code for f in self.findings}

    def counts_by_code(self) -> dict[str, int]:
        """``{code: number of findings}`` for the codes present, in :data:`CODES` order."""
        counts: dict[str, int] = {}
        for finding in self.findings:
            counts[finding.code] = counts.get(finding.code, 0) + 1
        return counts

    def summary(self, *, limit: int = 20) -> str:
        """A short account for a person: a head line and at most ``limit`` findings."""
        head = (
            f"{'OK' if self.ok else 'NOT PUBLISHABLE'}: {len(self.errors)} error(s), "
            f"{len(self.warnings)} warning(s)"
        )
        lines = [head, *(f"  - {f}" for f in self.findings[:limit])]
        if len(self.findings) > limit:
            lines.append(f"  ... and {len(self.findings) - limit} more")
        return "\n".join(lines)

    def to_frame(self) -> gpd.GeoDataFrame:
        """Findings as a GeoDataFrame (code, severity, grids comma-joined, message, area_m2, geometry)."""
        data = {
            "code": pd.Series([f.code for f in self.findings], dtype=object),
            "severity": pd.Series([f.severity for f in self.findings], dtype=object),
            "grids": pd.Series([", ".join(f.grids) for f in self.findings], dtype=object),
            "message": pd.Series([f.message for f in self.findings], dtype=object),
            "area_m2": pd.Series(
                [np.nan if f.area_m2 is None else float(f.area_m2) for f in self.findings], dtype=np.float64
            ),
        }
        geometry = gpd.GeoSeries([f.geometry for f in self.findings], crs=self.crs)
        return gpd.GeoDataFrame(data, geometry=geometry, crs=self.crs)


# --------------------------------------------------------------------------------------------
# Preparing the inputs (all in one metric CRS)
# --------------------------------------------------------------------------------------------


def _to_crs(geoms: ObjArray, src: pyproj.CRS, dst: pyproj.CRS) -> ObjArray:
    """New geometry objects in ``dst`` (copies even when the CRS is the same)."""
    if len(geoms) == 0:
        return np.empty(0, dtype=object)
    if src == dst:
        return np.asarray(shapely.transform(geoms, lambda xy: xy), dtype=object)
    return np.asarray(gpd.GeoSeries(geoms, crs=src).to_crs(dst).values, dtype=object)


def _objects(values: Any) -> ObjArray:
    out = np.empty(len(values), dtype=object)
    out[:] = list(values)
    return out


def _is_blank(value: Any) -> bool:
    if value is None:
        return True
    if np.ndim(value) == 0 and pd.isna(value):
        return True
    return isinstance(value, str) and not value.strip()


def _code_text(value: Any) -> str | None:
    if _is_blank(value):
        return None
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    return str(value).strip()


def _fmt_area(area: float) -> str:
    return f"{area:,.0f} m²" if area >= 10 else f"{area:.1f} m²"


def _fmt_band(lo: float | None, hi: float | None) -> str:
    def num(v: float | None) -> str:
        return "…" if v is None else f"{v:g}"

    return f"{num(lo)}–{num(hi)}"


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n} {one if n == 1 else (many or one + 's')}"


@dataclass
class _Grids:
    index: pd.Index
    codes: list[str | None]
    labels: list[str]
    base: BoolArray
    usable: BoolArray  # has a polygonal geometry with area
    repaired: BoolArray  # was invalid and has been repaired
    geoms_in: ObjArray  # repaired geometry, input CRS (None when unusable)
    geoms: ObjArray  # repaired geometry, metric CRS (None when unusable)
    area: FloatArray


@dataclass
class _Buildings:
    index: pd.Index
    ids: list[Any]
    households: IntArray
    usable: BoolArray
    foot: ObjArray  # metric footprint (None when unusable)
    points: ObjArray  # metric representative point (None when unusable)
    area: FloatArray


class _Collector:
    """Findings being gathered; geometries in the metric CRS are brought back in one batch."""

    def __init__(self) -> None:
        self._items: list[tuple[Finding, BaseGeometry | None, bool]] = []

    def add(
        self,
        code: str,
        message: str,
        *,
        grids: tuple[str, ...] = (),
        buildings: tuple[Any, ...] = (),
        area: float | None = None,
        geometry: BaseGeometry | None = None,
        metric: bool = False,
    ) -> None:
        finding = Finding(code, CODES[code], tuple(grids), tuple(buildings), message, area, None)
        self._items.append((finding, geometry, metric))

    def build(self, metric: pyproj.CRS, src: pyproj.CRS) -> tuple[Finding, ...]:
        geoms = _objects([geom for _, geom, _ in self._items])
        in_metric = np.array([m and g is not None for _, g, m in self._items], dtype=bool)
        if in_metric.any():
            geoms[in_metric] = _to_crs(geoms[in_metric], metric, src)
        out = [
            Finding(f.code, f.severity, f.grids, f.buildings, f.message, f.area_m2, geoms[i])
            for i, (f, _, _) in enumerate(self._items)
        ]
        out.sort(key=lambda f: _ORDER[f.code])
        return tuple(out)


def _require_frame(frame: Any, name: str) -> None:
    if not isinstance(frame, gpd.GeoDataFrame):
        raise TypeError(f"{name} must be a GeoDataFrame, got {type(frame).__name__}")
    require_crs(frame)


def _kinds(grids: gpd.GeoDataFrame) -> BoolArray:
    """True for base grids."""
    if "kind" not in grids.columns:
        return np.ones(len(grids), dtype=bool)
    base = np.ones(len(grids), dtype=bool)
    bad: list[str] = []
    for i, value in enumerate(grids["kind"].tolist()):
        if _is_blank(value):
            continue
        text = str(value).strip().lower()
        if text == _DEDICATED:
            base[i] = False
        elif text != _BASE:
            bad.append(f"{grids.index[i]!r}: {value!r}")
    if bad:
        raise ValueError(f"unknown grid kind (expected 'base' or 'dedicated'): {', '.join(bad[:10])}")
    return base


def _prepare_grids(
    grids: gpd.GeoDataFrame, *, key: str, metric: pyproj.CRS, collect: _Collector | None
) -> _Grids:
    n = len(grids)
    index = grids.index
    raw = grids[key].tolist() if key in grids.columns else [None] * n
    codes = [_code_text(v) for v in raw]
    labels = [c if c is not None else f"#{index[i]}" for i, c in enumerate(codes)]
    base = _kinds(grids)
    src = pyproj.CRS.from_user_input(grids.crs)
    geographic = src.is_geographic

    def report(code: str, i: int, message: str, geometry: BaseGeometry | None = None) -> None:
        if collect is not None:
            collect.add(code, message, grids=(labels[i],), geometry=geometry)

    original = np.asarray(grids.geometry.values, dtype=object)
    missing = np.asarray(shapely.is_missing(original), dtype=bool)
    empty = np.asarray(shapely.is_empty(original), dtype=bool) & ~missing
    coords, coord_rows = shapely.get_coordinates(original, return_index=True)
    nonfinite = np.zeros(n, dtype=bool)
    if len(coords):
        nonfinite[np.unique(coord_rows[~np.isfinite(coords).all(axis=1)])] = True
    nonfinite &= ~missing
    for i in np.flatnonzero(missing | empty):
        report(
            "empty_geometry",
            int(i),
            f"grid {labels[i]} has no geometry ({'null' if missing[i] else 'empty'})",
        )
    for i in np.flatnonzero(nonfinite & ~empty):
        report("invalid_geometry", int(i), f"grid {labels[i]} has coordinates that are NaN or infinite")
    usable = ~(missing | empty | nonfinite)

    fixed = original.copy()
    repaired = np.zeros(n, dtype=bool)
    check = np.flatnonzero(usable)
    type_ids = np.full(n, -1, dtype=np.int64)
    type_ids[check] = shapely.get_type_id(original[check])
    valid = np.zeros(n, dtype=bool)
    valid[check] = shapely.is_valid(original[check])
    for i in check:
        geom = original[i]
        polygonal = int(type_ids[i]) in _POLYGON_TYPE_IDS
        if polygonal and valid[i]:
            continue
        repaired[i] = True
        fixed[i] = _polygonal_part(shapely.make_valid(geom) if not valid[i] else geom)
        if not polygonal:
            why = f"is a {geom.geom_type}, not a Polygon or MultiPolygon"
            where = None
        else:
            reason = str(shapely.is_valid_reason(geom))
            match = _LOCATION.search(reason)
            where = shapely.Point(float(match.group(1)), float(match.group(2))) if match else None
            text = _LOCATION.sub("", reason).strip() or "invalid"
            if where is not None:
                digits = 6 if geographic else 1
                text += f" at ({where.x:.{digits}f}, {where.y:.{digits}f})"
            why = f"has an invalid geometry: {text}"
        if fixed[i].is_empty or fixed[i].area == 0:
            usable[i] = False
            fixed[i] = None
            why += "; no area is left after repair"
        report("invalid_geometry", int(i), f"grid {labels[i]} {why}", where)

    geoms_in = np.full(n, None, dtype=object)
    geoms_in[usable] = fixed[usable]
    geoms = np.full(n, None, dtype=object)
    geoms[usable] = _to_crs(fixed[usable], src, metric)
    # Reprojection can, rarely, make a valid ring touch itself: repair silently.
    bad = usable & ~np.asarray(shapely.is_valid(geoms), dtype=bool)
    for i in np.flatnonzero(bad):
        geoms[i] = _polygonal_part(shapely.make_valid(geoms[i]))
    area = np.zeros(n, dtype=np.float64)
    area[usable] = shapely.area(geoms[usable])
    return _Grids(index, codes, labels, base, usable, repaired, geoms_in, geoms, area)


def _prepare_buildings(buildings: gpd.GeoDataFrame, *, households: str, metric: pyproj.CRS) -> _Buildings:
    n = len(buildings)
    if households not in buildings.columns:
        raise ValueError(f"buildings have no {households!r} column; columns are {list(buildings.columns)}")
    counts = pd.to_numeric(buildings[households], errors="coerce").fillna(0).round().astype(np.int64)
    ids = buildings["id"].tolist() if "id" in buildings.columns else buildings.index.tolist()
    original = np.asarray(buildings.geometry.values, dtype=object)
    usable = ~np.asarray(shapely.is_missing(original) | shapely.is_empty(original), dtype=bool)
    coords, rows = shapely.get_coordinates(original, return_index=True)
    if len(coords):
        usable[np.unique(rows[~np.isfinite(coords).all(axis=1)])] = False
    foot = np.full(n, None, dtype=object)
    foot[usable] = _to_crs(original[usable], pyproj.CRS.from_user_input(buildings.crs), metric)
    invalid = usable & ~np.asarray(shapely.is_valid(foot), dtype=bool)
    for i in np.flatnonzero(invalid):
        repaired = shapely.make_valid(foot[i])
        if foot[i].geom_type in ("Polygon", "MultiPolygon"):
            repaired = _polygonal_part(repaired)
        foot[i] = repaired
        if repaired.is_empty:
            usable[i] = False
            foot[i] = None
    points = np.full(n, None, dtype=object)
    points[usable] = shapely.point_on_surface(foot[usable])
    area = np.zeros(n, dtype=np.float64)
    area[usable] = shapely.area(foot[usable])
    return _Buildings(buildings.index, ids, counts.to_numpy(dtype=np.int64), usable, foot, points, area)


# --------------------------------------------------------------------------------------------
# Assigning buildings to grids
# --------------------------------------------------------------------------------------------


@dataclass
class _Assignment:
    grid: IntArray  # base grid position per building, -1 for none
    point_hits: dict[int, list[int]]  # buildings whose point lies in 2+ base grids -> grid positions
    piece_b: IntArray  # (building, base grid, area of the footprint in that grid) for every
    piece_g: IntArray  # footprint–base grid pair that intersects
    piece_area: FloatArray
    dedicated_b: IntArray  # (building, dedicated grid) pairs, by representative point
    dedicated_g: IntArray


def _assign(g: _Grids, b: _Buildings) -> _Assignment:
    nb = len(b.ids)
    assigned = np.full(nb, -1, dtype=np.int64)
    empty_i = np.empty(0, dtype=np.int64)
    pieces: tuple[IntArray, IntArray, FloatArray] = (empty_i, empty_i, np.empty(0, dtype=np.float64))
    point_hits: dict[int, list[int]] = {}
    dedicated: tuple[IntArray, IntArray] = (empty_i, empty_i)
    bpos = np.flatnonzero(b.usable)
    base_pos = np.flatnonzero(g.base & g.usable)
    if len(bpos) and len(base_pos):
        base_geoms = g.geoms[base_pos]
        tree = shapely.STRtree(base_geoms)
        shapely.prepare(base_geoms)
        # footprint pieces
        fb, fg = tree.query(b.foot[bpos], predicate="intersects")
        fb, fg = bpos[fb], base_pos[fg]
        area = b.area[fb].copy()
        inside = np.asarray(shapely.contains_properly(g.geoms[fg], b.foot[fb]), dtype=bool)
        cut = ~inside
        if cut.any():
            area[cut] = shapely.area(shapely.intersection(g.geoms[fg[cut]], b.foot[fb[cut]]))
        pieces = (fb.astype(np.int64), fg.astype(np.int64), area)
        # representative points
        pb, pg = tree.query(b.points[bpos], predicate="intersects")
        pb, pg = bpos[pb], base_pos[pg]
        hits = np.bincount(pb, minlength=nb)
        single = hits[pb] == 1
        assigned[pb[single]] = pg[single]
        if (~single).any():
            share = {(int(x), int(y)): float(a) for x, y, a in zip(fb, fg, area, strict=True)}
            for x in np.unique(pb[~single]):
                cands = sorted(int(y) for y in pg[pb == x])
                point_hits[int(x)] = cands
                best = max(cands, key=lambda y: (share.get((int(x), y), 0.0), -y))
                assigned[x] = best
    ded_pos = np.flatnonzero(~g.base & g.usable)
    if len(bpos) and len(ded_pos):
        tree = shapely.STRtree(g.geoms[ded_pos])
        db, dg = tree.query(b.points[bpos], predicate="intersects")
        dedicated = (bpos[db].astype(np.int64), ded_pos[dg].astype(np.int64))
    return _Assignment(assigned, point_hits, *pieces, *dedicated)


def _tallies(g: _Grids, b: _Buildings, a: _Assignment) -> tuple[IntArray, IntArray]:
    n = len(g.labels)
    households = np.zeros(n, dtype=np.int64)
    count = np.zeros(n, dtype=np.int64)
    has = a.grid >= 0
    np.add.at(households, a.grid[has], b.households[has])
    np.add.at(count, a.grid[has], 1)
    np.add.at(households, a.dedicated_g, b.households[a.dedicated_b])
    np.add.at(count, a.dedicated_g, 1)
    return households, count


def _assignment_series(g: _Grids, b: _Buildings, a: _Assignment, name: str) -> pd.Series:
    values = [g.labels[k] if k >= 0 else None for k in a.grid.tolist()]
    return pd.Series(values, index=b.index.copy(), dtype=object, name=name)


def _metric_for(*frames: gpd.GeoDataFrame) -> pyproj.CRS:
    for frame in frames:
        try:
            return metric_crs(frame)
        except CRSError:
            continue
    raise CRSError("cannot choose a metric CRS: no frame has finite coordinates")


def recount(
    grids: gpd.GeoDataFrame, buildings: gpd.GeoDataFrame, *, key: str = "code", households: str = "households"
) -> tuple[gpd.GeoDataFrame, pd.Series]:
    """Recount households and buildings per grid from building footprints.

    Returns ``(copy of grids with fresh integer columns households and buildings, assignment)``.
    Base grids count the buildings assigned to them (representative point; a point in two base grids
    goes to the one holding most of the footprint); dedicated grids count every building whose
    representative point they cover, without taking it from its base grid. ``assignment`` is indexed
    like ``buildings`` and holds each building's base grid label (its code, or ``"#<index label>"``
    for an uncoded grid), ``None`` when it lies in no base grid or has no footprint. ``buildings`` may be
    in any CRS. Raises :class:`CRSError` when either frame has no CRS.
    """
    _require_frame(grids, "grids")
    _require_frame(buildings, "buildings")
    metric = _metric_for(grids, buildings)
    g = _prepare_grids(grids, key=key, metric=metric, collect=None)
    b = _prepare_buildings(buildings, households=households, metric=metric)
    a = _assign(g, b)
    counted, number = _tallies(g, b, a)
    out = grids.copy()
    out[households] = counted
    out["buildings"] = number
    return out, _assignment_series(g, b, a, key)


# --------------------------------------------------------------------------------------------
# The audit
# --------------------------------------------------------------------------------------------


def _parent_geometry(parent: Any, crs: pyproj.CRS) -> BaseGeometry:
    """The parent boundary as one valid (Multi)Polygon in ``crs``."""
    if isinstance(parent, gpd.GeoDataFrame | gpd.GeoSeries):
        require_crs(parent)
        series = parent.geometry if isinstance(parent, gpd.GeoDataFrame) else parent
        series = series[~(series.isna() | series.is_empty)]
        geom = shapely.union_all(np.asarray(series.to_crs(crs).values, dtype=object)) if len(series) else None
    elif isinstance(parent, BaseGeometry):
        geom = parent
    else:
        raise TypeError(
            f"parent must be a shapely geometry, GeoSeries or GeoDataFrame, got {type(parent).__name__}"
        )
    if geom is None or geom.is_empty:
        raise ValueError("the parent unit's boundary is empty")
    if not geom.is_valid or geom.geom_type not in ("Polygon", "MultiPolygon"):
        geom = _polygonal_part(shapely.make_valid(geom))
    if geom.is_empty or geom.area == 0:
        raise ValueError("the parent unit's boundary has no area")
    return geom


def _check_band(band: tuple[int, int] | None) -> tuple[float, float] | None:
    if band is None:
        return None
    if len(band) != 2:
        raise ValueError(f"band must be (min, max) households, got {band!r}")
    lo, hi = float(band[0]), float(band[1])
    if not (np.isfinite(lo) and np.isfinite(hi) and 0 <= lo <= hi):
        raise ValueError(f"band must be (min, max) with 0 <= min <= max, got {band!r}")
    return lo, hi


def _column(grids: gpd.GeoDataFrame, name: str) -> FloatArray:
    if name not in grids.columns:
        return np.full(len(grids), np.nan)
    return pd.to_numeric(grids[name], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _pairs(tree_geoms: ObjArray) -> tuple[IntArray, IntArray, ObjArray, FloatArray]:
    """Pairs (i < j) of geometries whose interiors intersect, with the polygonal intersection."""
    if len(tree_geoms) < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64), np.empty(0, object), np.empty(0)
    tree = shapely.STRtree(tree_geoms)
    i, j = tree.query(tree_geoms, predicate="intersects")
    keep = i < j
    i, j = i[keep], j[keep]
    inner = np.asarray(shapely.relate_pattern(tree_geoms[i], tree_geoms[j], "T********"), dtype=bool)
    i, j = i[inner], j[inner]
    shared = np.asarray(shapely.intersection(tree_geoms[i], tree_geoms[j]), dtype=object)
    shared = _objects([_polygonal_part(s) for s in shared])
    return i.astype(np.int64), j.astype(np.int64), shared, np.asarray(shapely.area(shared), dtype=np.float64)


def audit_grids(
    grids: gpd.GeoDataFrame,
    *,
    parent: Any,
    buildings: gpd.GeoDataFrame | None = None,
    band: tuple[int, int] | None = None,
    key: str = "code",
    households: str = "households",
    staffed: Collection[str] | None = None,
    min_area_m2: float = 1.0,
) -> AuditReport:
    """Audit a grid-planning draft of one parent unit (see the module docstring for every rule).

    * ``parent``: the unit's boundary, a shapely geometry in the grids' CRS, or a GeoSeries/
      GeoDataFrame with a CRS (reprojected; several rows are merged).
    * ``buildings``: footprints with an ``id`` column (else the index is the id) and the
      ``households`` column, any CRS.
    * ``band``: (min, max) households per base grid, e.g. ``(80, 120)``; the grids' own
      ``band_min``/``band_max`` override it. ``None`` and no band columns: the band is not checked.
    * ``staffed``: codes of grids that have a responsible worker (``None``: not checked).
    * ``min_area_m2``: smaller gaps, overlaps, parts outside and detached parts are ignored.

    Returns an :class:`AuditReport` whose finding geometries are in the grids' CRS.
    """
    _require_frame(grids, "grids")
    if buildings is not None:
        _require_frame(buildings, "buildings")
    limits = _check_band(band)
    min_area = float(min_area_m2)
    if not (np.isfinite(min_area) and min_area >= 0):
        raise ValueError(f"min_area_m2 must be a non-negative number, got {min_area_m2!r}")

    src = pyproj.CRS.from_user_input(grids.crs)
    parent_in = _parent_geometry(parent, src)
    metric = metric_crs(gpd.GeoSeries([parent_in], crs=src))
    parent_m = _polygonal_part(_to_crs(_objects([parent_in]), src, metric)[0])
    if not parent_m.is_valid:
        parent_m = _polygonal_part(shapely.make_valid(parent_m))
    shapely.prepare(parent_m)

    collect = _Collector()
    g = _prepare_grids(grids, key=key, metric=metric, collect=collect)
    _check_codes(g, collect)
    _check_parent(g, parent_m, min_area, collect)
    _check_coverage(g, parent_m, min_area, collect)
    _check_contiguity(g, min_area, collect)
    _check_dedicated(g, min_area, collect)

    counts: FloatArray | None = None
    occupied: IntArray | None = None
    b: _Buildings | None = None
    a: _Assignment | None = None
    if buildings is not None:
        b = _prepare_buildings(buildings, households=households, metric=metric)
        a = _assign(g, b)
        _check_buildings(g, b, a, parent_m, min_area, collect)
        tally, _ = _tallies(g, b, a)
        counts = tally.astype(np.float64)
        occupied = np.zeros(len(g.labels), dtype=np.int64)
        has = a.grid >= 0
        np.add.at(occupied, a.grid[has], 1)
    elif households in grids.columns:
        counts = _column(grids, households)
    if counts is not None:
        lo = _column(grids, "band_min")
        hi = _column(grids, "band_max")
        if limits is not None:
            lo = np.where(np.isnan(lo), limits[0], lo)
            hi = np.where(np.isnan(hi), limits[1], hi)
        _check_households(g, counts, occupied, lo, hi, b, a, collect)
    if staffed is not None:
        _check_workers(g, staffed, collect)
    return AuditReport(collect.build(metric, src), crs=grids.crs)


def _check_codes(g: _Grids, collect: _Collector) -> None:
    rows: dict[str, list[int]] = {}
    for i, code in enumerate(g.codes):
        if code is not None:
            rows.setdefault(code, []).append(i)
    for code, where in rows.items():
        if len(where) < 2:
            continue
        shown = ", ".join(repr(g.index[i]) for i in where[:10]) + (" ..." if len(where) > 10 else "")
        shapes = [g.geoms_in[i] for i in where if g.usable[i]]
        collect.add(
            "duplicate_code",
            f"code {code} is used by {len(where)} grids (rows {shown})",
            grids=(code,),
            geometry=shapely.union_all(shapes) if shapes else None,
        )


def _check_parent(g: _Grids, parent: BaseGeometry, min_area: float, collect: _Collector) -> None:
    rows = np.flatnonzero(g.usable)
    if not len(rows):
        return
    rows = rows[~np.asarray(shapely.covers(parent, g.geoms[rows]), dtype=bool)]
    if not len(rows):
        return
    outside = np.asarray(shapely.difference(g.geoms[rows], parent), dtype=object)
    for i, part in zip(rows, outside, strict=True):
        part = _polygonal_part(part)
        area = float(part.area)
        if area < min_area or area == 0:
            continue
        label = g.labels[i]
        share = f"{100.0 * area / g.area[i]:.0f}% of the grid" if g.area[i] > 0 else "all of it"
        if g.base[i]:
            collect.add(
                "outside_parent",
                f"grid {label} extends {_fmt_area(area)} outside the parent unit ({share})",
                grids=(label,),
                area=area,
                geometry=part,
                metric=True,
            )
        else:
            collect.add(
                "dedicated_overlap",
                f"dedicated grid {label} extends {_fmt_area(area)} outside the parent unit ({share})",
                grids=(label,),
                area=area,
                geometry=part,
                metric=True,
            )


def _check_coverage(g: _Grids, parent: BaseGeometry, min_area: float, collect: _Collector) -> None:
    base_pos = np.flatnonzero(g.base & g.usable)
    base_geoms = g.geoms[base_pos]
    cover = shapely.union_all(base_geoms) if len(base_pos) else shapely.Polygon()
    holes = _polygonal_part(shapely.difference(parent, cover))
    parts = np.asarray(shapely.get_parts(holes), dtype=object)
    areas = np.asarray(shapely.area(parts), dtype=np.float64) if len(parts) else np.empty(0)
    keep = np.flatnonzero((areas >= min_area) & (areas > 0))
    keep = keep[np.argsort(-areas[keep], kind="stable")]
    near: dict[int, list[int]] = {}
    if len(keep) and len(base_pos):
        tree = shapely.STRtree(base_geoms)
        hi, hj = tree.query(parts[keep], predicate="dwithin", distance=_NEAR_M)
        # neighbours share a stretch of the gap's outline (not just a corner)
        shared = shapely.length(
            shapely.intersection(shapely.boundary(parts[keep][hi]), shapely.buffer(base_geoms[hj], _NEAR_M))
        )
        for x, y in zip(hi[shared > _NEIGHBOUR_M], hj[shared > _NEIGHBOUR_M], strict=True):
            near.setdefault(int(x), []).append(int(base_pos[y]))
    for k, part_i in enumerate(keep):
        area = float(areas[part_i])
        labels = tuple(g.labels[i] for i in sorted(near.get(k, [])))
        nearby = f", next to grid{'s' if len(labels) > 1 else ''} {', '.join(labels)}" if labels else ""
        collect.add(
            "gap",
            f"gap of {_fmt_area(area)} inside the parent unit is covered by no base grid{nearby}",
            grids=labels,
            area=area,
            geometry=parts[part_i],
            metric=True,
        )
    i, j, shared, areas2 = _pairs(base_geoms)
    for x, y, geom, area in zip(i, j, shared, areas2, strict=True):
        if area < min_area or area == 0:
            continue
        a, b = g.labels[base_pos[x]], g.labels[base_pos[y]]
        collect.add(
            "overlap",
            f"base grids {a} and {b} overlap by {_fmt_area(float(area))}",
            grids=(a, b),
            area=float(area),
            geometry=geom,
            metric=True,
        )


def _check_contiguity(g: _Grids, min_area: float, collect: _Collector) -> None:
    for i in np.flatnonzero(g.usable & ~g.repaired):
        geom = g.geoms[i]
        if geom.geom_type != "MultiPolygon":
            continue
        parts = [p for p in shapely.get_parts(geom) if p.area >= min_area and p.area > 0]
        if len(parts) < 2:
            continue
        parts.sort(key=lambda p: -p.area)
        detached = parts[1:]
        area = float(sum(p.area for p in detached))
        sizes = ", ".join(_fmt_area(p.area) for p in detached[:5]) + (" ..." if len(detached) > 5 else "")
        label = g.labels[i]
        collect.add(
            "non_contiguous",
            f"grid {label} is in {len(parts)} separate parts: the main part of {_fmt_area(parts[0].area)} "
            f"and detached {sizes} (parts touching only at a point count as separate)",
            grids=(label,),
            area=area,
            geometry=shapely.MultiPolygon(detached) if len(detached) > 1 else detached[0],
            metric=True,
        )


def _check_dedicated(g: _Grids, min_area: float, collect: _Collector) -> None:
    pos = np.flatnonzero(~g.base & g.usable)
    i, j, shared, areas = _pairs(g.geoms[pos])
    for x, y, geom, area in zip(i, j, shared, areas, strict=True):
        if area < min_area or area == 0:
            continue
        a, b = g.labels[pos[x]], g.labels[pos[y]]
        collect.add(
            "dedicated_overlap",
            f"dedicated grids {a} and {b} overlap by {_fmt_area(float(area))}",
            grids=(a, b),
            area=float(area),
            geometry=geom,
            metric=True,
        )


def _check_buildings(
    g: _Grids, b: _Buildings, a: _Assignment, parent: BaseGeometry, min_area: float, collect: _Collector
) -> None:
    def who(k: int) -> str:
        return f"building {b.ids[k]} ({_plural(int(b.households[k]), 'household')})"

    nowhere = np.flatnonzero(b.usable & (a.grid < 0))
    if len(nowhere):
        inside = np.asarray(shapely.covers(parent, b.points[nowhere]), dtype=bool)
        for k in nowhere[inside]:
            collect.add(
                "building_unassigned",
                f"{who(int(k))} lies in no base grid",
                buildings=(b.ids[k],),
                area=float(b.area[k]) if b.area[k] > 0 else None,
                geometry=b.foot[k],
                metric=True,
            )
    for k, hits in a.point_hits.items():
        labels = tuple(g.labels[i] for i in hits)
        own = g.labels[a.grid[k]]
        collect.add(
            "building_in_two",
            f"{who(k)} lies in {len(hits)} base grids ({', '.join(labels)}); it is counted in {own}",
            grids=labels,
            buildings=(b.ids[k],),
            area=float(b.area[k]) if b.area[k] > 0 else None,
            geometry=b.foot[k],
            metric=True,
        )
    # split buildings: a piece of the footprint in another base grid than its own
    own = a.grid[a.piece_b]
    total = b.area[a.piece_b]
    other = (own >= 0) & (a.piece_g != own) & (total > 0)
    other &= (a.piece_area >= SPLIT_SHARE * total) & (a.piece_area >= min_area)
    multi = np.zeros(len(b.ids), dtype=bool)
    multi[list(a.point_hits)] = True
    other &= ~multi[a.piece_b]
    pieces: dict[int, list[tuple[int, float]]] = {}
    for k, i, area in zip(a.piece_b[other], a.piece_g[other], a.piece_area[other], strict=True):
        pieces.setdefault(int(k), []).append((int(i), float(area)))
    for k, parts in pieces.items():
        own_label = g.labels[a.grid[k]]
        text = "; ".join(
            f"{100.0 * area / b.area[k]:.0f}% ({_fmt_area(area)}) lies in grid {g.labels[i]}"
            for i, area in parts
        )
        collect.add(
            "building_split",
            f"{who(k)} is split by a grid boundary: it is counted in {own_label}, but {text}; "
            "a building must not be split",
            grids=(own_label, *(g.labels[i] for i, _ in parts)),
            buildings=(b.ids[k],),
            area=float(sum(area for _, area in parts)),
            geometry=b.foot[k],
            metric=True,
        )


def _check_households(
    g: _Grids,
    counts: FloatArray,
    occupied: IntArray | None,
    lo: FloatArray,
    hi: FloatArray,
    b: _Buildings | None,
    a: _Assignment | None,
    collect: _Collector,
) -> None:
    # per base grid: number of buildings with households, and the biggest one
    lived: dict[int, list[int]] = {}
    if b is not None and a is not None:
        for pos in np.flatnonzero((a.grid >= 0) & (b.households > 0)).tolist():
            lived.setdefault(int(a.grid[pos]), []).append(pos)
    for i in np.flatnonzero(g.base & g.usable):
        n = counts[i]
        if np.isnan(n):
            continue
        label = g.labels[i]
        households = int(round(n))
        low = None if np.isnan(lo[i]) else float(lo[i])
        high = None if np.isnan(hi[i]) else float(hi[i])
        band_text = _fmt_band(low, high)
        geom = g.geoms_in[i]
        if households == 0:
            if occupied is None:
                detail = ""
            elif occupied[i] == 0:
                detail = " and no buildings"
            else:
                detail = f" ({_plural(int(occupied[i]), 'building')}, none with households)"
            collect.add(
                "empty_grid", f"base grid {label} has no households{detail}", grids=(label,), geometry=geom
            )
            continue
        homes = lived.get(int(i), [])
        if high is not None and households > high:
            over = f"{households - high:g}"
            if len(homes) == 1:
                k = homes[0]
                collect.add(
                    "oversized_building",
                    f"grid {label} has {households} households, over the band {band_text} by {over}, "
                    f"all in one building ({b.ids[k] if b else '?'}); a building is never split, "
                    "so accept this with a reason",
                    grids=(label,),
                    buildings=(b.ids[k],) if b else (),
                    geometry=geom,
                )
                continue
            alone = ""
            if b is not None and homes:
                big = max(homes, key=lambda k: int(b.households[k]))
                if b.households[big] > high:
                    alone = f" (building {b.ids[big]} alone has {int(b.households[big])})"
            collect.add(
                "out_of_band",
                f"grid {label} has {households} households, over the band {band_text} by {over}{alone}",
                grids=(label,),
                geometry=geom,
            )
        elif low is not None and households < low:
            collect.add(
                "out_of_band",
                f"grid {label} has {households} households, under the band {band_text} by {low - households:g}",
                grids=(label,),
                geometry=geom,
            )


def _check_workers(g: _Grids, staffed: Collection[str], collect: _Collector) -> None:
    if isinstance(staffed, str):
        raise TypeError("staffed must be a collection of grid codes, not a single string")
    known = {text for text in (_code_text(c) for c in staffed) if text is not None}
    for i, code in enumerate(g.codes):
        if code is not None and code in known:
            continue
        label = g.labels[i]
        kind = "base" if g.base[i] else "dedicated"
        new = " (a new grid without a code)" if code is None else ""
        collect.add(
            "no_worker",
            f"{kind} grid {label}{new} has no responsible grid worker",
            grids=(label,),
            geometry=g.geoms_in[i],
        )
