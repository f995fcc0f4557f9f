"""What the overview map shows for a given view: the level of detail and display-ready frames.

At city zoom the map carries aggregated units (county, township/street, village/community) with
their counts; micro-grids are drawn only for the visible area once few enough are in view. All
frames are simplified for the zoom, so a screen's payload stays bounded whatever the city's size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import geopandas as gpd
import numpy as np
import pandas as pd

from geo.crs import from_wgs84
from geo.lod import simplify_for_zoom
from store.base import BBox, Store

Level = Literal["county", "township", "village", "grid"]
OPEN_STATES = ("reported", "filed", "dispatched", "accepted", "in_progress", "resolved", "verified")
MAX_GRIDS = 900  # grids drawn at once; beyond that the map shows villages/communities
MAX_UNITS = 1200
MAX_BUILDINGS = 4000  # footprints drawn from zoom BUILDING_ZOOM when this few are in view
BUILDING_ZOOM = 16
CODE_LEN = {"county": 6, "township": 9, "village": 12}


@dataclass(frozen=True)
class View:
    bbox: BBox  # WGS84 lon/lat
    zoom: int


@dataclass
class MapData:
    level: Level
    features: gpd.GeoDataFrame  # grids or units, display-ready
    roads: gpd.GeoDataFrame
    water: gpd.GeoDataFrame
    boundaries: gpd.GeoDataFrame | None
    buildings: gpd.GeoDataFrame | None = None


def level_for_zoom(zoom: int) -> Level:
    """City zoom shows townships/streets with their counts; a province-wide view shows counties."""
    if zoom <= 8:
        return "county"
    if zoom <= 12:
        return "township"
    if zoom <= 14:
        return "village"
    return "grid"


def grid_status(
    households: pd.Series, band_min: pd.Series, band_max: pd.Series, kind: pd.Series
) -> np.ndarray:
    """in_band / under / over / empty for base grids, dedicated for dedicated grids."""
    hh = households.fillna(0).to_numpy(dtype=float)
    lo = pd.to_numeric(band_min, errors="coerce").to_numpy(dtype=float)
    hi = pd.to_numeric(band_max, errors="coerce").to_numpy(dtype=float)
    out = np.where(hh < lo, "under", np.where(hh > hi, "over", "in_band")).astype(object)
    out[hh == 0] = "empty"
    out[(kind == "dedicated").to_numpy()] = "dedicated"
    return out


def unit_stats(store: Store) -> pd.DataFrame:
    """Per admin unit (index: code): name, level, households, grids, in_band, in_band_share, staff,
    open_cases — villages from the tables, townships/counties/city rolled up by code prefix."""
    units = store.read("admin_units", columns=["code", "name", "level", "kind", "parent_code", "households"])
    grids = store.read("grids", columns=["code", "unit_code", "kind", "households", "band_min", "band_max"])
    base = grids[grids["kind"] == "base"].copy()
    base["in_band"] = grid_status(base["households"], base["band_min"], base["band_max"], base["kind"]) == "in_band"
    per_village = base.groupby("unit_code").agg(grids=("code", "size"), in_band=("in_band", "sum"))
    staff = store.group_count("staff", ["unit_code"]).set_index("unit_code")["n"]
    open_cases = store.group_count("cases", ["village_code"], where={"state": list(OPEN_STATES)}).set_index(
        "village_code"
    )["n"]
    leaf = pd.DataFrame(index=units.loc[units["level"] == "village", "code"])
    leaf["grids"] = per_village["grids"].reindex(leaf.index).fillna(0)
    leaf["in_band"] = per_village["in_band"].reindex(leaf.index).fillna(0)
    leaf["open_cases"] = open_cases.reindex(leaf.index).fillna(0)
    out = units.set_index("code")[["name", "level", "kind", "parent_code", "households"]].copy()
    for col in ("grids", "in_band", "open_cases"):
        out[col] = 0.0
        out.loc[leaf.index, col] = leaf[col]
    own_staff = staff.reindex(out.index).fillna(0)  # staff attached to the unit itself
    out["staff"] = own_staff
    codes = out.index.to_series()
    for level, n in (("township", 9), ("county", 6)):
        child_level = "village" if level == "township" else "township"
        child = out[out["level"] == child_level]
        sums = child[["grids", "in_band", "open_cases"]].groupby(child.index.str[:n]).sum()
        staff_sum = own_staff.groupby(codes.str[:n]).sum()  # own staff + everyone below
        idx = out.index[out["level"] == level]
        out.loc[idx, ["grids", "in_band", "open_cases"]] = sums.reindex(idx).fillna(0).to_numpy()
        out.loc[idx, "staff"] = staff_sum.reindex(idx).fillna(0).to_numpy()
    top = out["level"] == "city"
    for col in ("grids", "in_band", "open_cases"):
        out.loc[top, col] = out.loc[out["level"] == "county", col].sum()
    out.loc[top, "staff"] = own_staff.sum()
    out["households"] = out["households"].fillna(0)
    out["in_band_share"] = np.where(out["grids"] > 0, out["in_band"] / out["grids"].clip(lower=1), 0.0)
    for col in ("grids", "in_band", "open_cases", "staff", "households"):
        out[col] = out[col].astype("int64")
    return out


def map_data(
    store: Store,
    view: View,
    *,
    stats: pd.DataFrame,
    shift: Literal["gcj02"] | None = None,
) -> MapData:
    """The frames for one screen: the finest level whose features in view fit the budget."""
    level = level_for_zoom(view.zoom)
    features: gpd.GeoDataFrame | None = None
    boundaries = None
    buildings = None
    if view.zoom >= BUILDING_ZOOM and store.count("buildings", bbox=view.bbox) <= MAX_BUILDINGS:
        buildings = store.read("buildings", bbox=view.bbox, columns=["kind"])
    if level == "grid":
        n = store.count("grids", bbox=view.bbox)
        if n <= MAX_GRIDS:
            features = _grids(store, view, stats)
            boundaries = store.read("admin_units", bbox=view.bbox, where={"level": "village"}, columns=["code"])
        else:
            level = "village"
    if level == "village" and store.count("admin_units", bbox=view.bbox, where={"level": "village"}) > MAX_UNITS:
        level = "township"
    if features is None:
        features = _units(store, view, stats, level)
    roads = store.read("roads", bbox=view.bbox, where={"kind": _road_kinds(view.zoom)}, columns=["kind"])
    water = store.read("water", bbox=view.bbox, columns=["kind"])
    z = view.zoom
    features = simplify_for_zoom(features, zoom=z, coverage=True)
    roads = simplify_for_zoom(roads, zoom=z, pixels=1.5)
    water = simplify_for_zoom(water, zoom=z)
    if boundaries is not None:
        boundaries = simplify_for_zoom(boundaries, zoom=z, coverage=True)
    if buildings is not None:
        buildings = simplify_for_zoom(buildings, zoom=z)
    if shift is not None:
        features, roads, water = (from_wgs84(f, target=shift) for f in (features, roads, water))
        if boundaries is not None:
            boundaries = from_wgs84(boundaries, target=shift)
        if buildings is not None:
            buildings = from_wgs84(buildings, target=shift)
    return MapData(
        level=level, features=features, roads=roads, water=water, boundaries=boundaries, buildings=buildings
    )


def _road_kinds(zoom: int) -> list[str]:
    if zoom <= 11:
        return ["arterial", "rural"]
    if zoom <= 13:
        return ["arterial", "street", "rural"]
    return ["arterial", "street", "rural", "lane"]


def _units(store: Store, view: View, stats: pd.DataFrame, level: Level) -> gpd.GeoDataFrame:
    units = store.read("admin_units", bbox=view.bbox, where={"level": level}, columns=["code", "name"])
    s = stats.reindex(units["code"])
    for col in ("grids", "households", "in_band_share", "staff", "open_cases"):
        units[col] = s[col].fillna(0).to_numpy()
    return units


def _grids(store: Store, view: View, stats: pd.DataFrame) -> gpd.GeoDataFrame:
    grids = store.read(
        "grids",
        bbox=view.bbox,
        columns=["code", "name", "unit_code", "kind", "households", "band_min", "band_max"],
    )
    grids["status"] = grid_status(grids["households"], grids["band_min"], grids["band_max"], grids["kind"])
    grids["unit_name"] = stats["name"].reindex(grids["unit_code"]).to_numpy()
    grids["worker"] = responsible_workers(store, grids["code"].tolist()).reindex(grids["code"]).to_numpy()
    return grids


def responsible_workers(store: Store, grid_codes: list[str]) -> pd.Series:
    """The full-time grid worker responsible for each grid (index: grid code) as 'name (phone-less)'."""
    if not grid_codes:
        return pd.Series(dtype=object)
    links = store.read("staff_grids", where={"grid_code": grid_codes})
    if len(links) == 0:
        return pd.Series(dtype=object)
    staff = store.read(
        "staff",
        where={"id": sorted(set(int(i) for i in links["staff_id"])), "role": "grid_worker_full"},
        columns=["id", "name"],
    )
    named = links.merge(staff, left_on="staff_id", right_on="id")
    return named.drop_duplicates("grid_code").set_index("grid_code")["name"]
