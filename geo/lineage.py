"""Where grids went between two versions: lineage pairs, code assignment at publish time, and a diff.

* :func:`lineage` — which old grids became which new ones, with household shares (from buildings)
  or area shares.
* :func:`assign_codes` — 15-digit codes for a draft being published: grids that match a previous grid
  keep its code, all others get fresh sequence numbers in reading order after every code ever used.
* :func:`diff` — unchanged / changed / added / removed grids, for a before/after map.

The frames may be in different CRSs: geometries are compared in the old frame's CRS (the new one's
when the old is empty) and areas measured in metres (that CRS if projected in metres, else the local
UTM zone). When both frames have a ``kind`` column, base grids
are only paired with base grids and dedicated with dedicated (a dedicated grid lies over base grids;
pairing across kinds would count its households twice).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import pyproj
import shapely

from geo._types import IntArray
from geo.codes import MAX_GRIDS_PER_VILLAGE, reading_order
from geo.crs import require_crs
from geo.edit import _Space

__all__ = [
    "BASE_RANGE",
    "DEDICATED_RANGE",
    "MIN_OVERLAP_M2",
    "assign_codes",
    "diff",
    "iou",
    "lineage",
]

MIN_OVERLAP_M2 = 1.0  # lineage pairs need more overlap than this (or households)
BASE_RANGE = (1, 899)  # grid sequence numbers of base grids
DEDICATED_RANGE = (901, 999)  # … and of dedicated grids (schools, hospitals, markets, parks)



# --------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------


@dataclass
class _Common:
    """Frames' geometries in one CRS (the first non-empty frame's), where overlaps are computed —
    reprojecting one frame's edges would bow them by millimetres against the other's — and how to
    measure there (:class:`geo.edit._Space`: metres per unit, projection to metres)."""

    values: list[npt.NDArray[Any]]
    space: _Space | None

    def native_m2(self, geoms: Any) -> Any:
        """Area from the common CRS scaled to m² (robust for hairline slivers; ~1e-4 in lon/lat)."""
        return shapely.area(geoms) if self.space is None else self.space.area(geoms)

    def metric_m2(self, geoms: Any) -> Any:
        """Area in m² after projecting to metres (exact for real polygons)."""
        return shapely.area(geoms) if self.space is None else shapely.area(self.space.to_metric(geoms))


def _common(frames: list[gpd.GeoDataFrame]) -> _Common:
    for f in frames:
        require_crs(f)
    ref = next((f for f in frames if len(f) and np.isfinite(np.asarray(f.total_bounds, dtype=float)).all()), None)
    if ref is None:
        return _Common([np.asarray(f.geometry.values, dtype=object) for f in frames], None)
    crs = pyproj.CRS.from_user_input(ref.crs)
    out = []
    for f in frames:
        series = f.geometry if pyproj.CRS.from_user_input(f.crs).equals(crs) else f.geometry.to_crs(crs)
        values = np.asarray(series.values, dtype=object)
        bad = ~np.asarray(shapely.is_valid(values) | shapely.is_missing(values), dtype=bool)
        if bad.any():
            values = values.copy()
            values[bad] = shapely.make_valid(values[bad])
        out.append(values)
    return _Common(out, _Space.of(ref))


def _kinds(frame: gpd.GeoDataFrame, other: gpd.GeoDataFrame) -> npt.NDArray[Any]:
    if "kind" in frame.columns and "kind" in other.columns:
        return frame["kind"].astype(object).fillna("base").to_numpy()
    return np.full(len(frame), "", dtype=object)


def _pairs(a: npt.NDArray[Any], b: npt.NDArray[Any]) -> tuple[IntArray, IntArray, npt.NDArray[Any]]:
    """Intersecting pairs (i in a, j in b) and their intersections."""
    ok_a = np.flatnonzero(~(shapely.is_missing(a) | shapely.is_empty(a)))
    ok_b = np.flatnonzero(~(shapely.is_missing(b) | shapely.is_empty(b)))
    if len(ok_a) == 0 or len(ok_b) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=object)
    hit_a, hit_b = shapely.STRtree(b[ok_b]).query(a[ok_a], predicate="intersects")
    i, j = ok_a[hit_a], ok_b[hit_b]
    inter = np.asarray(shapely.intersection(a[i], b[j]), dtype=object)
    return i.astype(np.int64), j.astype(np.int64), inter


def iou(a: Any, b: Any) -> float:
    """Intersection over union of two polygonal geometries in the same CRS."""
    inter = float(shapely.area(shapely.intersection(a, b)))
    union = float(shapely.area(a)) + float(shapely.area(b)) - inter
    return inter / union if union > 0 else 0.0


def _keys(frame: gpd.GeoDataFrame, column: str, what: str, *, allow_missing: bool = False) -> npt.NDArray[Any]:
    if column not in frame.columns:
        raise ValueError(f"the {what} frame has no {column!r} column")
    values = frame[column].astype(object).to_numpy()
    missing = pd.isna(frame[column]).to_numpy()
    if missing.any() and not allow_missing:
        raise ValueError(f"{int(missing.sum())} {what} grid(s) have no {column!r}")
    present = values[~missing]
    if len(set(present)) != len(present):
        dup = pd.Series(present)[pd.Series(present).duplicated()].unique().tolist()
        raise ValueError(f"{column!r} must be unique in the {what} frame; duplicated: {dup[:10]}")
    return np.asarray([None if m else v for v, m in zip(values, missing, strict=True)], dtype=object)


# --------------------------------------------------------------------------------------------
# Lineage
# --------------------------------------------------------------------------------------------


def lineage(
    old: gpd.GeoDataFrame,
    new: gpd.GeoDataFrame,
    *,
    buildings: gpd.GeoDataFrame | None = None,
    old_key: str = "code",
    new_key: str = "key",
    households: str = "households",
) -> pd.DataFrame:
    """Which old grids became which new ones.

    One row per (old, new) pair that overlaps by more than 1 m² or shares households, with columns
    ``old``, ``new`` (the ``old_key``/``new_key`` values), ``households``, ``share_of_old``,
    ``share_of_new``, ``area_m2``, ``area_share_of_old``; rows in old-frame order, then new-frame order.

    With ``buildings``, each building counts (its ``households``; missing counts as 0) for the grids
    holding its representative point — the first such grid of each kind in each frame — and
    ``share_of_old``/``share_of_new`` are the pair's households over the old/new grid's (NaN for a grid
    without households). Without buildings, ``households`` is NaN and the shares are area shares
    (``area_m2`` over the old/new grid's area). ``area_share_of_old`` is always the area share.
    """
    old_ids = _keys(old, old_key, "old")
    new_ids = _keys(new, new_key, "new")
    frames = [old, new] if buildings is None else [old, new, buildings]
    common = _common(frames)
    old_m, new_m = common.values[0], common.values[1]
    old_kind, new_kind = _kinds(old, new), _kinds(new, old)
    i, j, inter = _pairs(old_m, new_m)
    # Overlaps are found in the common CRS (a shared edge is no overlap there) and measured in metres.
    real = (old_kind[i] == new_kind[j]) & (np.asarray(common.native_m2(inter), dtype=np.float64) > MIN_OVERLAP_M2)
    area = np.zeros(len(i), dtype=np.float64)
    if real.any():
        area[real] = np.asarray(common.metric_m2(inter[real]), dtype=np.float64)
    same = old_kind[i] == new_kind[j]
    pairs = pd.DataFrame({"i": i[same], "j": j[same], "area_m2": area[same]})
    old_area = np.asarray(common.metric_m2(old_m), dtype=np.float64)
    new_area = np.asarray(common.metric_m2(new_m), dtype=np.float64)

    if buildings is not None:
        if households not in buildings.columns:
            raise ValueError(f"the buildings frame has no {households!r} column")
        hh = pd.to_numeric(buildings[households], errors="coerce").fillna(0.0).to_numpy(dtype=np.float64)
        fps = common.values[2]
        ok = ~np.asarray(shapely.is_missing(fps) | shapely.is_empty(fps), dtype=bool)
        points = np.asarray(shapely.point_on_surface(fps[ok]), dtype=object)
        hh = hh[ok]

        def homes(grids_m: npt.NDArray[Any], kinds: npt.NDArray[Any]) -> pd.DataFrame:
            if len(points) == 0 or len(grids_m) == 0:
                return pd.DataFrame({"pt": np.zeros(0, dtype=np.int64), "g": np.zeros(0, dtype=np.int64), "kind": []})
            pt, g = shapely.STRtree(grids_m).query(points, predicate="intersects")
            found = pd.DataFrame({"pt": pt.astype(np.int64), "g": g.astype(np.int64), "kind": kinds[g]})
            return found.sort_values(["pt", "g"]).drop_duplicates(["pt", "kind"])

        in_old, in_new = homes(old_m, old_kind), homes(new_m, new_kind)
        in_old["hh"] = hh[in_old["pt"].to_numpy()]
        in_new["hh"] = hh[in_new["pt"].to_numpy()]
        old_total = np.bincount(in_old["g"].to_numpy(), weights=in_old["hh"].to_numpy(), minlength=len(old_m))
        new_total = np.bincount(in_new["g"].to_numpy(), weights=in_new["hh"].to_numpy(), minlength=len(new_m))
        both = in_old.merge(in_new[["pt", "g", "kind"]], on=["pt", "kind"], suffixes=("_old", "_new"))
        summed = both.groupby(["g_old", "g_new"])["hh"].sum().reset_index()
        hh_pairs = pd.DataFrame(summed).rename(columns={"g_old": "i", "g_new": "j"})
        pairs = pairs.merge(hh_pairs, on=["i", "j"], how="outer")
        pairs["area_m2"] = pairs["area_m2"].fillna(0.0)
        pairs["households"] = pairs["hh"].fillna(0.0)
        keep = (pairs["area_m2"] > MIN_OVERLAP_M2) | (pairs["households"] > 0)
        pairs = pairs[keep].copy()
        ii, jj = pairs["i"].to_numpy(dtype=np.int64), pairs["j"].to_numpy(dtype=np.int64)
        with np.errstate(divide="ignore", invalid="ignore"):
            share_old = np.where(old_total[ii] > 0, pairs["households"].to_numpy() / old_total[ii], np.nan)
            share_new = np.where(new_total[jj] > 0, pairs["households"].to_numpy() / new_total[jj], np.nan)
        whole = bool(np.all(hh == np.round(hh)))
        hh_col: Any = pairs["households"].to_numpy()
        if whole:
            hh_col = np.round(hh_col).astype(np.int64)
    else:
        pairs = pairs[pairs["area_m2"] > MIN_OVERLAP_M2].copy()
        ii, jj = pairs["i"].to_numpy(dtype=np.int64), pairs["j"].to_numpy(dtype=np.int64)
        with np.errstate(divide="ignore", invalid="ignore"):
            share_old = np.where(old_area[ii] > 0, pairs["area_m2"].to_numpy() / old_area[ii], np.nan)
            share_new = np.where(new_area[jj] > 0, pairs["area_m2"].to_numpy() / new_area[jj], np.nan)
        hh_col = np.full(len(pairs), np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):
        area_share = np.where(old_area[ii] > 0, pairs["area_m2"].to_numpy() / old_area[ii], np.nan)
    out = pd.DataFrame(
        {
            "old": pd.Series(old_ids[ii], dtype=object),
            "new": pd.Series(new_ids[jj], dtype=object),
            "households": hh_col,
            "share_of_old": share_old,
            "share_of_new": share_new,
            "area_m2": pairs["area_m2"].to_numpy(dtype=np.float64),
            "area_share_of_old": area_share,
        }
    )
    order = np.lexsort((jj, ii))
    return out.iloc[order].reset_index(drop=True)


# --------------------------------------------------------------------------------------------
# Codes
# --------------------------------------------------------------------------------------------


def _range_of(kind: Any) -> tuple[int, int]:
    return DEDICATED_RANGE if kind == "dedicated" else BASE_RANGE


def _sequence(code: Any, unit_code: str) -> int | None:
    """The 3-digit sequence of a 15-digit code of this unit, else None."""
    if not isinstance(code, str) or len(code) != 15 or not code.isascii() or not code.isdigit():
        return None
    if not code.startswith(unit_code):
        return None
    return int(code[12:])


def assign_codes(
    new: gpd.GeoDataFrame,
    *,
    previous: gpd.GeoDataFrame,
    unit_code: str,
    used: Iterable[str] = (),
    tolerance: float = 0.99,
) -> pd.Series:
    """Codes for the grids of ``new`` (a draft being published), aligned with ``new.index``.

    * A new grid keeps a previous grid's code when their intersection over union is at least
      ``tolerance``, the code belongs to ``unit_code`` and its sequence fits the grid's kind, and the
      grid's own ``code`` is that code or missing (a grid re-created in the draft with the very shape
      it had gets its code back). Each previous code goes to at most one grid (best match first).
    * A grid that kept its code through edits but whose shape changed more than that (IoU below
      ``tolerance``) is a different grid for the people using the codes: it gets a **new** code. Small
      corrections (IoU ≥ ``tolerance``) keep it.
    * Every other grid gets a fresh sequence number, never one of ``previous``, ``used`` (all codes
      ever issued in the unit: old versions keep referring to them) or the draft's own codes. Fresh
      numbers follow the largest sequence used so far in the kind's range, in reading order
      (:func:`geo.codes.reading_order`) of the new grids of that kind; when the range's top is
      reached the lowest never-used numbers are taken. Base grids use 001–899, dedicated grids
      (``kind == "dedicated"``) 901–999.

    Raises ``ValueError`` for a malformed ``unit_code`` or when a range has no free number left (a
    village has at most 999 codes).
    """
    if not (isinstance(unit_code, str) and len(unit_code) == 12 and unit_code.isascii() and unit_code.isdigit()):
        raise ValueError(f"unit_code must be the 12-digit village/community code, got {unit_code!r}")
    if not 0.0 < float(tolerance) <= 1.0:
        raise ValueError(f"tolerance must be in (0, 1], got {tolerance!r}")
    require_crs(new)
    require_crs(previous)
    n = len(new)
    kinds = new["kind"].astype(object).fillna("base").to_numpy() if "kind" in new.columns else np.full(n, "base")
    own = new["code"].astype(object).to_numpy() if "code" in new.columns else np.full(n, None, dtype=object)
    own = np.asarray([None if pd.isna(c) else str(c) for c in own], dtype=object)
    prev_codes = (
        np.asarray([None if pd.isna(c) else str(c) for c in previous["code"].astype(object)], dtype=object)
        if "code" in previous.columns
        else np.full(len(previous), None, dtype=object)
    )
    new_m, prev_m = _common([new, previous]).values

    # Matches, best first.
    i, j, inter_geoms = _pairs(new_m, prev_m)
    candidates: list[tuple[float, int, int]] = []
    if len(i):
        inter = np.asarray(shapely.area(inter_geoms), dtype=np.float64)
        union = np.asarray(shapely.area(new_m[i]), dtype=np.float64) + np.asarray(shapely.area(prev_m[j])) - inter
        with np.errstate(divide="ignore", invalid="ignore"):
            scores = np.where(union > 0, inter / union, 0.0)
        for a, b, s in zip(i, j, scores, strict=True):
            code = prev_codes[b]
            seq = _sequence(code, unit_code)
            if s < tolerance or seq is None:
                continue
            lo, hi = _range_of(kinds[a])
            if not lo <= seq <= hi or (own[a] is not None and own[a] != code):
                continue
            candidates.append((float(s), int(a), int(b)))
    candidates.sort(key=lambda t: (-t[0], t[1], t[2]))
    result = np.full(n, None, dtype=object)
    taken_codes: set[str] = set()
    for _score, a, b in candidates:
        code = prev_codes[b]
        if result[a] is None and code not in taken_codes:
            result[a] = code
            taken_codes.add(code)

    # Fresh numbers.
    issued = {c for c in prev_codes if c is not None} | {str(c) for c in used if c is not None}
    issued |= {c for c in own if c is not None}
    taken = {s for s in (_sequence(c, unit_code) for c in issued) if s is not None}
    geometry = new.geometry
    for kind_name, (lo, hi) in (("base", BASE_RANGE), ("dedicated", DEDICATED_RANGE)):
        members = np.flatnonzero((kinds == "dedicated") == (kind_name == "dedicated"))
        need = [int(members[k]) for k in reading_order(geometry.iloc[members]) if result[members[k]] is None]
        if not need:
            continue
        in_range = sorted(s for s in taken if lo <= s <= hi)
        start = (in_range[-1] + 1) if in_range else lo
        free = [s for s in range(start, hi + 1) if s not in taken] + [s for s in range(lo, start) if s not in taken]
        if len(free) < len(need):
            raise ValueError(
                f"village {unit_code} would need more than {MAX_GRIDS_PER_VILLAGE} grid codes: {len(need)} new "
                f"{kind_name} grid(s) but only {len(free)} unused sequence number(s) left in "
                f"{lo:03d}–{hi:03d} (codes are never reused)"
            )
        for pos, s in zip(need, free, strict=False):
            result[pos] = f"{unit_code}{s:03d}"
    return pd.Series(result, index=new.index, name="code", dtype=object)


# --------------------------------------------------------------------------------------------
# Diff
# --------------------------------------------------------------------------------------------


def diff(
    old: gpd.GeoDataFrame,
    new: gpd.GeoDataFrame,
    *,
    old_key: str = "code",
    new_key: str = "code",
    tolerance: float = 0.99,
) -> gpd.GeoDataFrame:
    """Before/after of two grid sets, matched by key: columns ``key``, ``status`` and geometry.

    A key in both is ``"unchanged"`` when the geometries' intersection over union is at least
    ``tolerance``, else ``"changed"`` (new geometry); a key only in ``new`` (or a missing key there,
    like a draft grid without a code yet) is ``"added"``; a key only in ``old`` is ``"removed"`` (old
    geometry). Rows: ``new``'s order, then the removed ones in ``old``'s order. The result is in
    ``new``'s CRS.
    """
    old_ids = _keys(old, old_key, "old", allow_missing=True)
    new_ids = _keys(new, new_key, "new", allow_missing=True)
    old_m, new_m = _common([old, new]).values
    where_old = {k: p for p, k in enumerate(old_ids) if k is not None}
    keys: list[Any] = []
    status: list[str] = []
    geoms: list[Any] = []
    seen: set[int] = set()
    new_values = np.asarray(new.geometry.values, dtype=object)
    for p, k in enumerate(new_ids):
        q = where_old.get(k) if k is not None else None
        if q is None:
            status.append("added")
        else:
            seen.add(q)
            a, b = new_m[p], old_m[q]
            same = a is not None and b is not None and iou(a, b) >= tolerance
            status.append("unchanged" if same else "changed")
        keys.append(k)
        geoms.append(new_values[p])
    old_in_new = old.geometry if old.crs is None or new.crs is None else old.geometry.to_crs(new.crs)
    old_values = np.asarray(old_in_new.values, dtype=object)
    for q, k in enumerate(old_ids):
        if q not in seen:
            keys.append(k)
            status.append("removed")
            geoms.append(old_values[q])
    return gpd.GeoDataFrame(
        {"key": pd.Series(keys, dtype=object), "status": pd.Series(status, dtype=object)},
        geometry=gpd.GeoSeries(geoms, crs=new.crs),
        crs=new.crs,
    )
