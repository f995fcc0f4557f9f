"""Planners' edits of a draft (geo.edit): split, merge, move buildings, reshape, replace."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geo.edit import EditError, merge_grids, move_buildings, replace_grids, reshape_grid, split_grid
from geo.errors import CRSError
from tests.fixtures import geometries as fx

UTM = "EPSG:32651"
LONLAT = "EPSG:4326"
VILLAGE = "211202001201"
X0, Y0 = 569_200.0, 4_682_200.0  # near Tieling (lon 123.84, lat 42.29) in UTM 51N
CELL = 100.0


def cell(c: int, r: int) -> shapely.Polygon:
    """The 100 m cell in column ``c`` (west→east) and row ``r`` (0 = north) of a 3 x 2 village."""
    return shapely.box(X0 + c * CELL, Y0 + (1 - r) * CELL, X0 + (c + 1) * CELL, Y0 + (2 - r) * CELL)


PARENT = shapely.box(X0, Y0, X0 + 3 * CELL, Y0 + 2 * CELL)
SCHOOL = shapely.box(X0 + 28, Y0 + 127, X0 + 58, Y0 + 157)  # a dedicated grid over grid 1, between houses
OFFSETS = [(15.0, 15.0), (60.0, 15.0), (15.0, 60.0), (60.0, 60.0)]  # building SW corners within a cell


def grids_utm() -> gpd.GeoDataFrame:
    """Six base grids (keys 1–6, codes …001–…006 in reading order) and a dedicated school (7, …901)."""
    geoms = [cell(c, r) for r in range(2) for c in range(3)] + [SCHOOL]
    return gpd.GeoDataFrame(
        {
            "key": np.arange(1, 8, dtype=np.int64),
            "code": pd.Series([f"{VILLAGE}{s:03d}" for s in [1, 2, 3, 4, 5, 6, 901]], dtype=object),
            "kind": ["base"] * 6 + ["dedicated"],
            "name": [f"网格{k}" for k in range(1, 7)] + ["学校"],
            "band_min": [30] * 7,
            "band_max": [50] * 7,
            "purpose": [None] * 6 + ["school"],
        },
        geometry=geoms,
        crs=UTM,
    )


def buildings_utm() -> gpd.GeoDataFrame:
    """Four 12 m x 10 m houses of 10 households per base grid; ids 1..24 (grid g holds 4g-3..4g)."""
    geoms, ids = [], []
    for r in range(2):
        for c in range(3):
            x0, y0 = cell(c, r).bounds[:2]
            for dx, dy in OFFSETS:
                geoms.append(shapely.box(x0 + dx, y0 + dy, x0 + dx + 12, y0 + dy + 10))
                ids.append(len(ids) + 1)
    return gpd.GeoDataFrame({"id": ids, "households": [10] * len(ids)}, geometry=geoms, crs=UTM)


@dataclass
class Village:
    crs: str
    grids: gpd.GeoDataFrame
    buildings: gpd.GeoDataFrame
    parent: Any

    def g(self, geom: Any) -> Any:
        """A geometry given in UTM, in the frame's CRS."""
        return gpd.GeoSeries([geom], crs=UTM).to_crs(self.crs).iloc[0]


def make_village(crs: str) -> Village:
    grids, buildings = grids_utm(), buildings_utm()
    parent = PARENT
    if crs != UTM:
        grids, buildings = grids.to_crs(crs), buildings.to_crs(crs)
        parent = gpd.GeoSeries([PARENT], crs=UTM).to_crs(crs).iloc[0]
    return Village(crs, grids, buildings, parent)


@pytest.fixture(params=[UTM, LONLAT])
def village(request: pytest.FixtureRequest) -> Village:
    return make_village(request.param)


def metric(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return frame.to_crs(UTM)


def by_key(frame: gpd.GeoDataFrame, key: int) -> Any:
    rows = frame[frame["key"] == key]
    assert len(rows) == 1, f"key {key}: {len(rows)} rows"
    return rows.iloc[0]


def area(frame: gpd.GeoDataFrame, key: int) -> float:
    return float(metric(frame[frame["key"] == key]).geometry.area.sum())


def approx(value: float, frame: gpd.GeoDataFrame) -> Any:
    """An area expected in UTM metres: exact for UTM frames; for lon/lat frames, whose edges are
    straight in degrees, to 1e-4 (a straight 300 m edge in degrees bows by ~2 mm in UTM)."""
    return pytest.approx(value, rel=1e-6 if frame.crs == UTM else 1e-4)


def assert_base_coverage(before: gpd.GeoDataFrame, after: gpd.GeoDataFrame) -> None:
    """The base grids still tile the same territory: same union and total area (relative, in the
    frame's own CRS, where its edges are straight), and no overlaps above 0.01 m²."""
    assert after.crs == before.crs
    b = np.asarray(before.geometry[before["kind"] == "base"].values, dtype=object)
    a = np.asarray(after.geometry[after["kind"] == "base"].values, dtype=object)
    assert all(g.is_valid and not g.is_empty for g in a)
    ub, ua = shapely.union_all(b), shapely.union_all(a)
    assert ub.symmetric_difference(ua).area / ub.area < 1e-6
    assert abs(float(shapely.area(a).sum()) - ub.area) / ub.area < 1e-6
    scale = square_metres_per_unit(after)  # not projecting: that would inflate hairline slivers
    for x, y in itertools.combinations(a, 2):
        assert x.intersection(y).area * scale <= 0.01


def square_metres_per_unit(frame: gpd.GeoDataFrame) -> float:
    """m² per square unit of the frame's CRS around its centre (1 for UTM)."""
    if frame.crs == UTM:
        return 1.0
    x0, y0, x1, y1 = frame.total_bounds
    cx, cy, d = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 100
    probe = gpd.GeoSeries([shapely.box(cx, cy, cx + d, cy + d)], crs=frame.crs).to_crs(UTM)
    return float(probe.area.iloc[0]) / d**2


def assert_untouched(before: gpd.GeoDataFrame, after: gpd.GeoDataFrame, keys: list[int]) -> None:
    """Rows of ``keys`` are identical, geometry bit for bit."""
    for k in keys:
        old, new = by_key(before, k), by_key(after, k)
        assert new.geometry.equals_exact(old.geometry, tolerance=0.0), k
        for col in before.columns:
            if col != before.geometry.name:
                assert (pd.isna(old[col]) and pd.isna(new[col])) or old[col] == new[col], (k, col)


def snapshot(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return frame.copy(deep=True)


def assert_same_frame(a: gpd.GeoDataFrame, b: gpd.GeoDataFrame) -> None:
    pd.testing.assert_frame_equal(pd.DataFrame(a.drop(columns="geometry")), pd.DataFrame(b.drop(columns="geometry")))
    assert list(a.index) == list(b.index)
    assert all(x.equals_exact(y, tolerance=0.0) for x, y in zip(a.geometry, b.geometry, strict=True))
    assert a.crs == b.crs


def vline(x: float, y0: float, y1: float) -> shapely.LineString:
    return shapely.LineString([(x, y0), (x, y1)])


# --- split -----------------------------------------------------------------------------------


def test_split_line_crossing_fully(village: Village) -> None:
    line = village.g(vline(X0 + 50, Y0 + 90, Y0 + 210))  # crosses grid 1 north to south, and beyond
    out = split_grid(village.grids, 1, line)
    assert list(out["key"]) == [8, 9, 2, 3, 4, 5, 6, 7]  # the pieces take grid 1's place
    assert out["code"].iloc[:2].isna().all()
    assert list(out["name"].iloc[:2]) == ["网格1", "网格1"]
    assert list(out["kind"].iloc[:2]) == ["base", "base"]
    assert out.crs == village.grids.crs
    assert isinstance(out.index, pd.RangeIndex)
    west, east = metric(out).geometry.iloc[0], metric(out).geometry.iloc[1]
    assert west.area == approx(5000, out) and east.area == approx(5000, out)
    assert west.centroid.x < east.centroid.x  # reading order: west first
    assert_base_coverage(village.grids, out)
    assert_untouched(village.grids, out, [2, 3, 4, 5, 6, 7])


def test_split_line_in_lonlat_for_a_utm_frame() -> None:
    v = make_village(UTM)
    line = gpd.GeoSeries([vline(X0 + 150, Y0 + 95, Y0 + 205)], crs=UTM).to_crs(LONLAT).iloc[0]
    out = split_grid(v.grids, 2, line)
    assert sorted(round(area(out, k)) for k in (8, 9)) == [5000, 5000]
    assert_base_coverage(v.grids, out)


def test_split_line_not_crossing_raises(village: Village) -> None:
    inside = village.g(vline(X0 + 50, Y0 + 120, Y0 + 150))  # ends 20 m and 50 m from the edges
    with pytest.raises(EditError, match="does not cut grid 1"):
        split_grid(village.grids, 1, inside)
    elsewhere = village.g(vline(X0 + 250, Y0 + 90, Y0 + 210))  # crosses grid 3, not grid 1
    with pytest.raises(EditError):
        split_grid(village.grids, 1, elsewhere)
    with pytest.raises(EditError, match="no grid with key 99"):
        split_grid(village.grids, 99, inside)
    with pytest.raises(EditError, match="LineString"):
        split_grid(village.grids, 1, village.g(SCHOOL))


def test_split_line_drawn_slightly_short_of_the_edge(village: Village) -> None:
    short = village.g(vline(X0 + 40, Y0 + 102, Y0 + 197.5))  # 2 m and 2.5 m short of the edges
    out = split_grid(village.grids, 1, short)
    assert sorted(round(area(out, k)) for k in (8, 9)) == [4000, 6000]
    assert_base_coverage(village.grids, out)
    with pytest.raises(EditError):
        split_grid(village.grids, 1, short, extend=0.0)


def test_split_line_drawn_near_a_corner_snaps_to_it(village: Village) -> None:
    # a diagonal from 0.3 m off the north-west corner to 0.2 m off the south-east corner
    diagonal = village.g(shapely.LineString([(X0 + 0.3, Y0 + 199.8), (X0 + 99.8, Y0 + 100.1)]))
    out = split_grid(village.grids, 1, diagonal)
    pieces = metric(out[out["key"].isin([8, 9])]).geometry
    assert len(pieces) == 2
    assert all(p.area == approx(5000, out) for p in pieces)  # exactly corner to corner
    assert_base_coverage(village.grids, out)


def test_split_keeps_buildings_whole(village: Village) -> None:
    # x = X0 + 20 runs through houses 1 and 3 (x from X0 + 15 to X0 + 27): 5 m west, 7 m east
    line = village.g(vline(X0 + 20, Y0 + 95, Y0 + 205))
    cut = split_grid(village.grids, 1, line)
    whole = split_grid(village.grids, 1, line, buildings=village.buildings)
    houses = metric(village.buildings)
    for result, expect_whole in ((cut, False), (whole, True)):
        pieces = metric(result[result["key"].isin([8, 9])]).geometry
        for hid in (1, 3):
            fp = houses.geometry[houses["id"] == hid].iloc[0]
            best = max(fp.intersection(p).area for p in pieces) / fp.area
            assert (best > 1 - 1e-6) == expect_whole
    east = metric(whole[whole["key"] == 9]).geometry.iloc[0]
    for hid in (1, 3):
        assert east.buffer(1e-6).contains(houses.geometry[houses["id"] == hid].iloc[0])
    assert_base_coverage(village.grids, whole)
    assert_untouched(village.grids, whole, [2, 3, 4, 5, 6, 7])


def test_split_buildings_in_another_crs() -> None:
    v = make_village(UTM)
    line = vline(X0 + 20, Y0 + 95, Y0 + 205)
    out = split_grid(v.grids, 1, line, buildings=v.buildings.to_crs(LONLAT))
    east = by_key(out, 9).geometry
    assert east.buffer(1e-6).contains(v.buildings.geometry.iloc[0])


def test_split_zigzag_makes_three_pieces(village: Village) -> None:
    # enters from the north, leaves south, comes back in from the south and leaves north again
    zigzag = village.g(
        shapely.LineString([(X0 + 20, Y0 + 205), (X0 + 30, Y0 + 95), (X0 + 60, Y0 + 95), (X0 + 70, Y0 + 205)])
    )
    out = split_grid(village.grids, 1, zigzag)
    assert list(out["key"][:3]) == [8, 9, 10]
    assert_base_coverage(village.grids, out)


# --- merge -----------------------------------------------------------------------------------


def test_merge_adjacent(village: Village) -> None:
    out = merge_grids(village.grids, [1, 2])
    assert list(out["key"]) == [8, 3, 4, 5, 6, 7]
    merged = by_key(out, 8)
    assert pd.isna(merged["code"]) and merged["name"] == "网格1"
    assert merged.geometry.geom_type == "Polygon"
    assert area(out, 8) == approx(20_000, out)
    assert_base_coverage(village.grids, out)
    assert_untouched(village.grids, out, [3, 4, 5, 6, 7])


def test_merge_takes_the_first_keys_attributes_and_place(village: Village) -> None:
    out = merge_grids(village.grids, [3, 1, 2])  # a chain: 1–2–3
    assert list(out["key"]) == [8, 4, 5, 6, 7]  # in the place of grid 3, the first key given
    assert by_key(out, 8)["name"] == "网格3"
    assert area(out, 8) == approx(30_000, out)
    assert_base_coverage(village.grids, out)


def test_merge_not_neighbours(village: Village) -> None:
    with pytest.raises(EditError, match="not neighbours"):
        merge_grids(village.grids, [1, 3])
    with pytest.raises(EditError, match="not neighbours"):
        merge_grids(village.grids, [1, 5])  # touching at a corner only
    with pytest.raises(EditError, match="not neighbours"):
        merge_grids(village.grids, [1, 2, 6])  # 6 touches 2 at a corner only


def test_merge_refuses_nonsense(village: Village) -> None:
    with pytest.raises(EditError, match="at least two"):
        merge_grids(village.grids, [1, 1])
    with pytest.raises(EditError, match="base and dedicated"):
        merge_grids(village.grids, [1, 7])
    with pytest.raises(EditError, match="key 42"):
        merge_grids(village.grids, [1, 42])


# --- move buildings --------------------------------------------------------------------------


def test_move_building_to_neighbour(village: Village) -> None:
    # house 7 sits in the north-west quarter of grid 2 (the Voronoi cell touches grid 1's edge)
    out = move_buildings(village.grids, village.buildings, [7], to=1)
    assert list(out["key"]) == list(village.grids["key"])
    assert list(out["code"]) == list(village.grids["code"])
    assert area(out, 1) > 10_000 + 1_000 and area(out, 2) < 10_000 - 1_000
    assert area(out, 1) + area(out, 2) == approx(20_000, out)
    house = metric(village.buildings).geometry.iloc[6]
    assert metric(out[out["key"] == 1]).geometry.iloc[0].buffer(1e-6).contains(house)
    assert_base_coverage(village.grids, out)
    assert_untouched(village.grids, out, [3, 4, 5, 6, 7])


def test_move_two_buildings_from_two_grids(village: Village) -> None:
    # house 7: north-west quarter of grid 2; house 15: north-west quarter of grid 4; both border grid 1
    out = move_buildings(village.grids, village.buildings, [7, 15], to=1)
    assert area(out, 1) > 10_000 + 2_000
    assert area(out, 2) < 10_000 and area(out, 4) < 10_000
    assert_base_coverage(village.grids, out)


def test_move_building_to_non_neighbour(village: Village) -> None:
    with pytest.raises(EditError, match="do not border grid 3"):
        move_buildings(village.grids, village.buildings, [7], to=3)  # grid 2's north-west house
    with pytest.raises(EditError, match="do not border grid 5"):
        move_buildings(village.grids, village.buildings, [7], to=5)  # grid 5 lies south of grid 2


def test_move_refuses_nonsense(village: Village) -> None:
    with pytest.raises(EditError, match="without area"):
        move_buildings(village.grids, village.buildings, [5, 6, 7, 8], to=1)  # all of grid 2
    with pytest.raises(EditError, match="already in grid 1"):
        move_buildings(village.grids, village.buildings, [1], to=1)
    with pytest.raises(EditError, match="unknown building"):
        move_buildings(village.grids, village.buildings, [999], to=1)
    with pytest.raises(EditError, match="dedicated"):
        move_buildings(village.grids, village.buildings, [7], to=7)


# --- reshape ---------------------------------------------------------------------------------


def test_reshape_growing(village: Village) -> None:
    outline = village.g(shapely.box(X0, Y0 + 100, X0 + 120, Y0 + 200))
    out = reshape_grid(village.grids, 1, outline, parent=village.parent)
    assert area(out, 1) == approx(12_000, out)
    assert area(out, 2) == approx(8_000, out)
    assert list(out["key"]) == list(village.grids["key"]) and list(out["code"]) == list(village.grids["code"])
    assert_base_coverage(village.grids, out)
    assert_untouched(village.grids, out, [3, 4, 5, 6, 7])


def test_reshape_outline_past_the_village_is_clipped(village: Village) -> None:
    outline = village.g(shapely.box(X0 - 30, Y0 + 100, X0 + 120, Y0 + 260))  # beyond west and north edges
    out = reshape_grid(village.grids, 1, outline, parent=village.parent)
    assert area(out, 1) == approx(12_000, out)
    assert_base_coverage(village.grids, out)


def test_reshape_shrinking_gives_area_to_the_longest_edge(village: Village) -> None:
    outline = village.g(shapely.box(X0, Y0 + 100, X0 + 80, Y0 + 200))
    out = reshape_grid(village.grids, 1, outline, parent=village.parent)
    assert area(out, 1) == approx(8_000, out)
    assert area(out, 2) == approx(12_000, out)  # 100 m shared edge beats grid 4's 20 m
    assert_base_coverage(village.grids, out)
    assert_untouched(village.grids, out, [3, 4, 5, 6, 7])


def test_reshape_rough_outline_snaps_to_existing_edges(village: Village) -> None:
    # drawn by hand: 0.3 m off the west, north and south edges, taking a 20 m strip of grid 2
    rough = shapely.Polygon(
        [(X0 - 0.3, Y0 + 100.2), (X0 + 120, Y0 + 99.7), (X0 + 120, Y0 + 200.3), (X0 + 0.2, Y0 + 199.8)]
    )
    out = reshape_grid(village.grids, 1, village.g(rough), parent=village.parent)
    assert area(out, 1) == approx(12_000, out)
    assert area(out, 4) == approx(10_000, out)  # no sliver taken from the southern grids
    assert_untouched(village.grids, out, [4, 5])
    for geom in metric(out).geometry:
        assert all(p.area > 1 for p in getattr(geom, "geoms", [geom]))
    assert_base_coverage(village.grids, out)


def test_reshape_refuses_nonsense(village: Village) -> None:
    with pytest.raises(EditError, match="covers all of grid 2"):
        reshape_grid(village.grids, 1, village.g(shapely.box(X0, Y0 + 100, X0 + 200, Y0 + 200)), parent=village.parent)
    with pytest.raises(EditError, match="does not change"):
        reshape_grid(village.grids, 1, village.g(cell(0, 0)), parent=village.parent)
    with pytest.raises(EditError, match="without area"):
        reshape_grid(village.grids, 1, village.g(shapely.box(X0 - 50, Y0, X0 - 10, Y0 + 50)), parent=village.parent)


def test_reshape_dedicated_grid_leaves_base_grids_alone(village: Village) -> None:
    out = reshape_grid(village.grids, 7, village.g(shapely.box(X0 + 28, Y0 + 127, X0 + 148, Y0 + 157)), parent=village.parent)
    assert area(out, 7) == approx(3_600, out)
    assert_untouched(village.grids, out, [1, 2, 3, 4, 5, 6])


def test_reshape_parent_as_geoseries_in_another_crs() -> None:
    v = make_village(LONLAT)
    parent = gpd.GeoSeries([PARENT], crs=UTM)
    out = reshape_grid(v.grids, 1, v.g(shapely.box(X0, Y0 + 100, X0 + 120, Y0 + 200)), parent=parent)
    assert area(out, 1) == approx(12_000, out)


# --- replace ---------------------------------------------------------------------------------


def strips(n: int) -> list[shapely.Polygon]:
    """The union of grids 1 and 2 cut into ``n`` vertical strips (listed east to west)."""
    w = 2 * CELL / n
    return [shapely.box(X0 + i * w, Y0 + 100, X0 + (i + 1) * w, Y0 + 200) for i in reversed(range(n))]


def test_replace_grids_with_new_pieces(village: Village) -> None:
    pieces = [village.g(p) for p in strips(3)]
    out = replace_grids(village.grids, [1, 2], pieces)
    assert list(out["key"]) == [8, 9, 10, 3, 4, 5, 6, 7]
    new = metric(out.iloc[:3])
    xs = [g.centroid.x for g in new.geometry]
    assert xs == sorted(xs)  # keys in reading order
    assert new["code"].isna().all() and list(new["name"]) == ["网格1"] * 3
    assert all(g.area == approx(20_000 / 3, out) for g in new.geometry)
    assert_base_coverage(village.grids, out)
    assert_untouched(village.grids, out, [3, 4, 5, 6, 7])


def test_replace_with_a_geodataframe_carries_its_attributes() -> None:
    v = make_village(LONLAT)
    pieces = gpd.GeoDataFrame({"band_max": [40, 45], "label": [0, 1]}, geometry=strips(2), crs=UTM)
    out = replace_grids(v.grids, [1, 2], pieces)
    assert list(out["band_max"].iloc[:2]) == [45, 40]  # west (label 1) first
    assert "label" not in out.columns
    assert_base_coverage(v.grids, out)


def test_replace_with_bad_pieces(village: Village) -> None:
    good = strips(3)
    with pytest.raises(EditError, match="uncovered"):
        replace_grids(village.grids, [1, 2], [village.g(p) for p in good[:2]])
    overlapping = [*good[:2], good[2].buffer(2.0, join_style="mitre").intersection(shapely.box(X0, Y0 + 100, X0 + 200, Y0 + 200))]
    with pytest.raises(EditError, match="overlap"):
        replace_grids(village.grids, [1, 2], [village.g(p) for p in overlapping])
    outside = [*good[:2], shapely.box(X0, Y0 + 100, X0 + 200 / 3, Y0 + 230)]
    with pytest.raises(EditError, match="outside"):
        replace_grids(village.grids, [1, 2], [village.g(p) for p in outside])
    with pytest.raises(EditError, match="base and dedicated"):
        replace_grids(village.grids, [1, 7], [village.g(p) for p in good])
    with pytest.raises(EditError, match="no new pieces"):
        replace_grids(village.grids, [1, 2], [])


def test_replace_tolerates_float_noise_and_fits_exactly() -> None:
    v = make_village(UTM)
    noisy = [shapely.affinity.translate(p, 1e-5, 0) for p in strips(2)]  # 1e-3 m² off: within 0.01 m²
    out = replace_grids(v.grids, [1, 2], noisy)
    assert_base_coverage(v.grids, out)
    union = shapely.union_all(np.asarray(out.geometry.iloc[:2], dtype=object))
    assert union.symmetric_difference(shapely.box(X0, Y0 + 100, X0 + 200, Y0 + 200)).area < 1e-6


# --- all edits: inputs untouched, CRS required ----------------------------------------------

EDITS: dict[str, Callable[[Village], gpd.GeoDataFrame]] = {
    "split": lambda v: split_grid(v.grids, 1, v.g(vline(X0 + 20, Y0 + 95, Y0 + 205)), buildings=v.buildings),
    "merge": lambda v: merge_grids(v.grids, [1, 2]),
    "move": lambda v: move_buildings(v.grids, v.buildings, [7], to=1),
    "reshape": lambda v: reshape_grid(v.grids, 1, v.g(shapely.box(X0, Y0 + 100, X0 + 120, Y0 + 200)), parent=v.parent),
    "replace": lambda v: replace_grids(v.grids, [1, 2], [v.g(p) for p in strips(3)]),
}


@pytest.mark.parametrize("name", list(EDITS))
def test_inputs_not_mutated(village: Village, name: str) -> None:
    grids, buildings = snapshot(village.grids), snapshot(village.buildings)
    out = EDITS[name](village)
    assert out is not village.grids
    assert_same_frame(village.grids, grids)
    assert_same_frame(village.buildings, buildings)
    assert_base_coverage(village.grids, out)


@pytest.mark.parametrize("name", list(EDITS))
def test_no_crs_raises(name: str) -> None:
    v = make_village(UTM)
    v.grids = v.grids.set_crs(None, allow_override=True)
    with pytest.raises(CRSError):
        EDITS[name](v)


def test_buildings_without_crs_raise() -> None:
    v = make_village(UTM)
    with pytest.raises(CRSError):
        move_buildings(v.grids, fx.no_crs(), ["b1"], to=1)


def test_the_unit_frame_of_the_catalogue_works_in_lonlat() -> None:
    # the catalogue's buildings sit around (LON, LAT); a single grid around them splits between b1 and b2
    houses = fx.good_buildings()
    x0, y0 = fx.offset(-20, -20)
    x1, y1 = fx.offset(100, 40)
    grids = gpd.GeoDataFrame(
        {"key": [1], "code": [f"{VILLAGE}001"], "kind": ["base"]}, geometry=[shapely.box(x0, y0, x1, y1)], crs=fx.CRS
    )
    a, b = fx.offset(25, -25), fx.offset(25, 45)
    out = split_grid(grids, 1, shapely.LineString([a, b]), buildings=houses)
    assert list(out["key"]) == [2, 3]
    west = out.geometry.iloc[0]
    assert west.contains(houses.geometry.iloc[0]) and not west.intersects(houses.geometry.iloc[1])


# --- awkward geometries ----------------------------------------------------------------------


def multipolygon_village() -> gpd.GeoDataFrame:
    """Grid 1 is two parts (west and east cells of a row), grid 2 the middle cell between them."""
    return gpd.GeoDataFrame(
        {"key": [1, 2], "code": [f"{VILLAGE}001", f"{VILLAGE}002"], "kind": ["base", "base"]},
        geometry=[shapely.MultiPolygon([cell(0, 0), cell(2, 0)]), cell(1, 0)],
        crs=UTM,
    )


def courtyard_village() -> gpd.GeoDataFrame:
    """Grid 1 is a 300 m square with a 100 m hole; grid 2 fills the hole."""
    outer = shapely.box(X0, Y0, X0 + 300, Y0 + 300)
    inner = shapely.box(X0 + 100, Y0 + 100, X0 + 200, Y0 + 200)
    ring = shapely.Polygon(outer.exterior.coords, [inner.exterior.coords])
    return gpd.GeoDataFrame(
        {"key": [1, 2], "code": [f"{VILLAGE}001", f"{VILLAGE}002"], "kind": ["base", "base"]},
        geometry=[ring, inner],
        crs=UTM,
    )


@pytest.mark.parametrize("crs", [UTM, LONLAT])
def test_split_multipolygon_grid(crs: str) -> None:
    grids = multipolygon_village().to_crs(crs)
    line = gpd.GeoSeries([vline(X0 + 50, Y0 + 90, Y0 + 210)], crs=UTM).to_crs(crs).iloc[0]
    out = split_grid(grids, 1, line)
    assert list(out["key"]) == [3, 4, 2]
    areas = sorted(round(area(out, k)) for k in (3, 4))
    assert areas == [5000, 15000]  # the uncut east part joins the nearer (east) piece
    assert_base_coverage(grids, out)
    merged = merge_grids(grids, [1, 2])
    assert area(merged, 3) == approx(30_000, merged)
    assert by_key(merged, 3).geometry.geom_type == "Polygon"


@pytest.mark.parametrize("crs", [UTM, LONLAT])
def test_grid_with_a_hole(crs: str) -> None:
    grids = courtyard_village().to_crs(crs)
    line = gpd.GeoSeries([vline(X0 + 150, Y0 - 5, Y0 + 305)], crs=UTM).to_crs(crs).iloc[0]
    out = split_grid(grids, 1, line)  # crosses the hole: two U-shaped pieces
    assert sorted(round(area(out, k)) for k in (3, 4)) == [40_000, 40_000]
    assert all(len(g.interiors) == 0 for g in out.geometry.iloc[:2])
    assert_base_coverage(grids, out)
    merged = merge_grids(grids, [2, 1])
    geom = by_key(merged, 3).geometry
    assert geom.geom_type == "Polygon" and len(geom.interiors) == 0
    assert area(merged, 3) == approx(90_000, merged)
    houses = gpd.GeoDataFrame(
        {"id": [1, 2], "households": [5, 5]},
        geometry=[shapely.box(X0 + 130, Y0 + 120, X0 + 140, Y0 + 130), shapely.box(X0 + 160, Y0 + 160, X0 + 170, Y0 + 170)],
        crs=UTM,
    )
    moved = move_buildings(grids, houses, [1], to=1)  # the courtyard house's cell joins the ring
    assert area(moved, 1) > 80_000 and area(moved, 2) < 10_000
    assert_base_coverage(grids, moved)


# --- chained random edits --------------------------------------------------------------------


def voronoi_village(seed: int) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame, shapely.Polygon]:
    """25 Voronoi grids in a 500 m square (UTM) and 150 small houses scattered over it."""
    rng = np.random.default_rng(seed)
    box = shapely.box(X0, Y0, X0 + 500, Y0 + 500)
    sites = shapely.multipoints(rng.uniform(0, 500, (25, 2)) + [X0, Y0])
    cells = [c.intersection(box) for c in shapely.get_parts(shapely.voronoi_polygons(sites, extend_to=box))]
    grids = gpd.GeoDataFrame(
        {"key": np.arange(1, 26), "code": [f"{VILLAGE}{s:03d}" for s in range(1, 26)], "kind": "base"},
        geometry=cells,
        crs=UTM,
    )
    xy = rng.uniform(5, 490, (150, 2)) + [X0, Y0]
    houses = gpd.GeoDataFrame(
        {"id": np.arange(150), "households": rng.integers(1, 8, 150)},
        geometry=shapely.box(xy[:, 0], xy[:, 1], xy[:, 0] + 8, xy[:, 1] + 6),
        crs=UTM,
    )
    return grids, houses, box


@pytest.mark.parametrize("crs", [UTM, LONLAT])
@pytest.mark.parametrize("seed", [0, 1])
def test_chained_random_edits_keep_exact_coverage(crs: str, seed: int) -> None:
    grids, houses, box = voronoi_village(seed)
    to_crs = (lambda geom: gpd.GeoSeries([geom], crs=UTM).to_crs(crs).iloc[0]) if crs != UTM else (lambda geom: geom)
    original, houses, parent = grids.to_crs(crs), houses.to_crs(crs), to_crs(box)
    rng = np.random.default_rng(seed + 10)
    current, applied = original, 0
    for _ in range(30):
        op = str(rng.choice(["split", "merge", "move", "reshape"]))
        keys = list(current["key"])
        key = int(rng.choice(keys))
        geom_m = metric(current[current["key"] == key]).geometry.iloc[0]
        neighbours = current[current.geometry.touches(current[current["key"] == key].geometry.iloc[0])]
        try:
            if op == "split":
                c, angle = geom_m.centroid, rng.uniform(0, np.pi)
                dx, dy = 300 * np.cos(angle), 300 * np.sin(angle)
                line = shapely.LineString([(c.x - dx, c.y - dy), (c.x + dx, c.y + dy)])
                new = split_grid(current, key, to_crs(line), buildings=houses if rng.random() < 0.5 else None)
            elif op == "merge" and len(neighbours):
                new = merge_grids(current, [key, int(neighbours["key"].iloc[0])])
            elif op == "move" and len(neighbours):
                inside = houses[houses.representative_point().within(current[current["key"] == key].geometry.iloc[0])]
                if not len(inside):
                    continue
                new = move_buildings(current, houses, [inside["id"].iloc[0]], to=int(neighbours["key"].iloc[0]))
            elif op == "reshape":
                outline = geom_m.buffer(float(rng.uniform(-10, 15)), join_style="mitre")
                new = reshape_grid(current, key, to_crs(outline), parent=parent)
            else:
                continue
        except EditError:
            continue
        assert_base_coverage(original, new)
        current, applied = new, applied + 1
    assert applied >= 15
