"""geo.cameras on a hand-made block whose coverage is worked out by hand.

The block (metres from ORIGIN, UTM 51N): a 200 × 200 m grid; an east-west street y = 100 and a
north-south street x = 100, 200 m each (400 m of road); one 10 × 10 m building at x 145–155,
y 120–130; three cameras:

* A at (0, 100) looking east (90°), fov 60°, range 50 m, online — sees the east-west street over
  x 0–50 (50 m) and a sector of π·50²/6 = 1,309.0 m²;
* B, a dome (no direction) at the crossing (100, 100), range 15 m, online — sees 15 m each way
  on both streets (60 m) and a disc of π·15² = 706.9 m²;
* C at (150, 150) looking south (180°), fov 60°, range 90 m, offline — the building stands
  right in front of it. Unblocked, C would see the east-west street over x = 150 ± 50·tan 30°
  = 121.13–178.87; the building's near face (y = 130, x 145–155) hides x = 150 ± 50·(5/20) =
  137.5–162.5, so C sees 2 × (28.87 − 12.5) = 32.74 m. Its sector is π·90²/6 = 4,241.2 m²; the
  building hides the wedge of half-angle atan(5/20) out to 90 m (½·2·atan(0.25)·90² = 1,984.3 m²)
  minus the triangle in front of it (½·10·20 = 100 m²): C sees 4,241.2 − 1,884.3 = 2,356.9 m².

No two views overlap (B's disc is 18.3 m from C's left edge), so: road seen 50 + 60 + 32.74 =
142.74 of 400 m (35.7 %); open space 40,000 − 100 = 39,900 m², seen 1,309.0 + 706.9 + 2,356.9 =
4,372.7 m²; cameras 3, online 2. Unseen road: on the east-west street x 50–85 (35 m), 115–121.13
(6.13), 137.5–162.5 (25), 178.87–200 (21.13); on the north-south street y 0–85 and 115–200
(85 m each). Arcs are polygons (a vertex every 5°, 0.13 % under the true arc), hence the
tolerances on areas.
"""

from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import LineString, MultiPolygon, Point, Polygon, box

from geo import cameras as gc
from geo.errors import CRSError
from tests.fixtures.geometries import CATALOGUE, offset
from tests.geo.conftest import ORIGIN, UTM51N

OX, OY = ORIGIN


def xy(x: float, y: float) -> tuple[float, float]:
    return (OX + x, OY + y)


def pt(x: float, y: float) -> Point:
    return Point(*xy(x, y))


def rect(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    return box(*xy(x0, y0), *xy(x1, y1))


@pytest.fixture
def cams() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "id": ["A", "B", "C"],
            "name": ["东向", "球机", "南向"],
            "direction": [90.0, np.nan, 180.0],
            "fov": [60.0, np.nan, 60.0],
            "range_m": [50.0, 15.0, 90.0],
            "online": [True, True, False],
        },
        geometry=[pt(0, 100), pt(100, 100), pt(150, 150)],
        crs=UTM51N,
    )


@pytest.fixture
def roads() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"id": [1, 2]},
        geometry=[LineString([xy(0, 100), xy(200, 100)]), LineString([xy(100, 0), xy(100, 200)])],
        crs=UTM51N,
    )


@pytest.fixture
def buildings() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"id": [1]}, geometry=[rect(145, 120, 155, 130)], crs=UTM51N)


@pytest.fixture
def grid() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame({"code": ["G1"]}, geometry=[rect(0, 0, 200, 200)], crs=UTM51N)


C_ROAD = 2 * (50 * math.tan(math.radians(30)) - 12.5)
C_AREA = math.pi * 90**2 / 6 - (0.5 * 2 * math.atan(0.25) * 90**2 - 100)
A_AREA = math.pi * 50**2 / 6
B_AREA = math.pi * 15**2


def test_hand_computed_coverage(cams, roads, buildings, grid) -> None:
    ticks: list[tuple[int, int]] = []
    visible = gc.visible_areas(cams, buildings, progress=lambda done, total: ticks.append((done, total)))
    assert ticks[-1] == (3, 3)
    areas = dict(zip(visible["id"], visible.area, strict=True))
    assert areas["A"] == pytest.approx(A_AREA, rel=0.003)
    assert areas["B"] == pytest.approx(B_AREA, rel=0.003)
    assert areas["C"] == pytest.approx(C_AREA, rel=0.003)
    calls: list[tuple[int, int]] = []
    table = gc.coverage(
        grid, key="code", roads=roads, buildings=buildings, visible=visible, cameras=cams,
        progress=lambda done, total: calls.append((done, total)),
    )  # fmt: skip
    row = table.set_index("code").loc["G1"]
    assert row["road_m"] == pytest.approx(400.0)
    assert row["road_covered_m"] == pytest.approx(50 + 60 + C_ROAD, abs=0.02)  # 142.74
    assert row["road_share"] == pytest.approx((110 + C_ROAD) / 400, abs=1e-4)
    assert row["open_m2"] == pytest.approx(39_900.0)
    assert row["open_covered_m2"] == pytest.approx(A_AREA + B_AREA + C_AREA, rel=0.003)  # 4,372.7
    assert (row["cameras"], row["cameras_online"]) == (3, 2)
    assert row["online_share"] == pytest.approx(2 / 3)
    assert calls[-1] == (1, 1)


def test_hand_computed_blind_spots(cams, roads, buildings) -> None:
    visible = gc.visible_areas(cams, buildings)
    spots = gc.blind_spots(roads, visible=visible, min_length_m=20)
    expected = sorted([85.0, 85.0, 35.0, 25.0, 50 - 50 * math.tan(math.radians(30)) + 0.0], reverse=True)
    assert spots["length_m"].tolist() == pytest.approx(expected, abs=0.02)
    assert spots.crs == visible.crs and (spots.geom_type == "LineString").all()
    everything = gc.uncovered_roads(roads, visible=visible)
    assert everything["length_m"].sum() == pytest.approx(400 - 110 - C_ROAD, abs=0.05)  # the 6.13 m gap too
    # the piece hidden by the building is exactly x 137.5–162.5 on y = 100
    hidden = spots[(spots["length_m"] - 25).abs() < 0.02].geometry.iloc[0]
    xs = sorted(x - OX for x, _ in hidden.coords)
    assert xs == pytest.approx([137.5, 162.5], abs=0.01)


def test_occlusion_is_what_removes_coverage(cams, roads, grid) -> None:
    no_buildings = gpd.GeoDataFrame({"id": []}, geometry=gpd.GeoSeries([], crs=UTM51N), crs=UTM51N)
    visible = gc.visible_areas(cams, no_buildings)
    table = gc.coverage(grid, key="code", roads=roads, buildings=no_buildings, visible=visible, cameras=cams)
    # without the building C sees its whole chord: 2 × 50·tan 30° = 57.74 m
    assert table["road_covered_m"].iloc[0] == pytest.approx(
        110 + 2 * 50 * math.tan(math.radians(30)), abs=0.02
    )


def test_cameras_seeing_a_place(cams, buildings) -> None:
    seen = gc.cameras_seeing(cams, at=pt(100, 110), crs=UTM51N, buildings=buildings)
    assert seen["id"].tolist() == ["B"] and seen["distance_m"].iloc[0] == pytest.approx(10.0)
    assert seen["off_axis_deg"].iloc[0] == 0.0 and seen["rank"].tolist() == [1]
    # in front of the building, in C's view
    front = gc.cameras_seeing(cams, at=pt(130, 100), crs=UTM51N, buildings=buildings)
    assert front["id"].tolist() == ["C"] and bool(front["online"].iloc[0]) is False
    assert front["bearing_deg"].iloc[0] == pytest.approx(180 + math.degrees(math.atan(20 / 50)), abs=0.1)
    assert front["off_axis_deg"].iloc[0] == pytest.approx(math.degrees(math.atan(20 / 50)), abs=0.1)
    # behind it: hidden; the same place with no buildings: seen
    assert gc.cameras_seeing(cams, at=pt(150, 100), crs=UTM51N, buildings=buildings).empty
    assert gc.cameras_seeing(cams, at=pt(150, 100), crs=UTM51N).id.tolist() == ["C"]
    # out of range / outside the angle
    assert gc.cameras_seeing(cams, at=pt(60, 100), crs=UTM51N, buildings=buildings).empty
    assert gc.cameras_seeing(cams, at=pt(30, 140), crs=UTM51N, buildings=buildings).empty
    # a place inside a building is seen on its wall: the building it stands in does not block
    inside = gc.cameras_seeing(cams, at=pt(150, 128), crs=UTM51N, buildings=buildings)
    assert inside["id"].tolist() == ["C"]


def test_cameras_seeing_ranks_online_then_near_then_head_on() -> None:
    frame = gpd.GeoDataFrame(
        {
            "id": ["far", "near_side", "near_axis", "off"],
            "direction": [0.0, 30.0, 0.0, 0.0],
            "fov": [90.0, 90.0, 90.0, 90.0],
            "range_m": [100.0, 100.0, 100.0, 100.0],
            "online": [True, True, True, False],
        },
        geometry=[pt(0, -60), pt(-1, -20), pt(2, -24), pt(0, -5)],
        crs=UTM51N,
    )
    got = gc.cameras_seeing(frame, at=pt(0, 0), crs=UTM51N)
    assert got["id"].tolist() == ["near_axis", "near_side", "far", "off"]
    assert got["rank"].tolist() == [1, 2, 3, 4]


def test_cameras_seeing_in_lonlat_matches_metric(cams, buildings) -> None:
    ll = cams.to_crs(4326)
    target = gpd.GeoSeries([pt(130, 100)], crs=UTM51N).to_crs(4326).iloc[0]
    got = gc.cameras_seeing(ll, at=target, crs=4326, buildings=buildings.to_crs(4326))
    assert got["id"].tolist() == ["C"] and got["distance_m"].iloc[0] == pytest.approx(
        math.hypot(20, 50), abs=0.5
    )
    with pytest.raises(gc.CameraGeometryError):
        gc.cameras_seeing(cams, at=Point(float("nan"), 0), crs=UTM51N)


def test_sectors_shapes_and_bad_cameras(cams) -> None:
    sectors = gc.view_sectors(cams)
    assert sectors.crs == cams.crs and sectors["id"].tolist() == ["A", "B", "C"]
    a = sectors.geometry.iloc[0]
    assert (
        a.area == pytest.approx(A_AREA, rel=0.003) and a.contains(pt(40, 100)) and not a.contains(pt(40, 130))
    )
    assert sectors.geometry.iloc[1].contains(pt(100, 86)) and sectors.geometry.iloc[1].contains(pt(86, 100))
    # the straight sides are exact: the edge at 60° from north passes through (25, 100 + 25·tan 30°)
    edge = Point(*xy(25 * math.tan(math.radians(60)), 100 + 25))
    assert a.exterior.distance(edge) < 1e-6
    bad = cams.assign(fov=[0.0, np.nan, 60.0])
    with pytest.raises(gc.CameraGeometryError, match="A"):
        gc.view_sectors(bad)
    with pytest.raises(CRSError):
        gc.view_sectors(cams.set_crs(None, allow_override=True))
    # no position: dropped, sees nothing
    lost = cams.copy()
    lost.loc[1, "geometry"] = None
    assert gc.view_sectors(lost)["id"].tolist() == ["A", "C"]


def test_shadows_of_awkward_footprints(cams) -> None:
    """A concave (U-shaped) building, one with a courtyard, and a multipolygon: each hides what
    is behind it and nothing else; a building the camera is mounted on hides nothing."""
    cam = gpd.GeoDataFrame({"id": ["S"], "direction": [0.0], "fov": [90.0], "range_m": [100.0]},
                           geometry=[pt(0, 0)], crs=UTM51N)  # fmt: skip
    u = rect(-20, 30, 20, 40).union(rect(-20, 40, -10, 60)).union(rect(10, 40, 20, 60))  # U open to the north
    court = Polygon(rect(-20, 30, 20, 60).exterior.coords, [rect(-10, 40, 10, 50).exterior.coords])
    parts = MultiPolygon([rect(-20, 30, -10, 40), rect(10, 30, 20, 40)])
    mounted = rect(-5, -5, 5, 0.5)  # contains the camera
    for shape in (u, court, parts):
        bld = gpd.GeoDataFrame({"id": [1]}, geometry=[shape], crs=UTM51N)
        seen = set()
        for probe, name in ((pt(0, 80), "behind"), (pt(0, 20), "front"), (pt(-60, 70), "beside")):
            if not gc.cameras_seeing(cam, at=probe, crs=UTM51N, buildings=bld).empty:
                seen.add(name)
        if shape is parts:
            assert seen == {"behind", "front", "beside"}  # the gap between the two parts
        else:
            assert seen == {"front", "beside"}
        vis = gc.visible_areas(cam, bld).geometry.iloc[0]
        assert not vis.intersects(rect(-1, 70, 1, 90)) or shape is parts
        assert vis.contains(pt(-60, 70)) and vis.contains(pt(0, 20))
    with_mount = gpd.GeoDataFrame({"id": [1]}, geometry=[mounted], crs=UTM51N)
    assert gc.visible_areas(cam, with_mount).area.iloc[0] == pytest.approx(math.pi * 100**2 / 4, rel=0.003)


def test_awkward_areas_do_not_break_coverage(cams, roads, buildings) -> None:
    bow_tie = Polygon([xy(0, 0), xy(200, 200), xy(200, 0), xy(0, 200)])  # self-intersecting
    areas = gpd.GeoDataFrame(
        {"code": ["empty", "none", "bow", "multi"]},
        geometry=[Polygon(), None, bow_tie, MultiPolygon([rect(0, 0, 100, 200), rect(100, 0, 200, 200)])],
        crs=UTM51N,
    )
    visible = gc.visible_areas(cams, buildings)
    table = gc.coverage(areas, key="code", roads=roads, buildings=buildings, visible=visible, cameras=cams)
    t = table.set_index("code")
    assert t.loc["empty", "road_m"] == 0 and np.isnan(t.loc["empty", "road_share"])
    assert t.loc["none", "cameras"] == 0
    assert t.loc["multi", "road_covered_m"] == pytest.approx(110 + C_ROAD, abs=0.05)
    assert 0 < t.loc["bow", "road_m"] <= 400 + 1e-6  # repaired, not an exception


def test_coverage_in_lonlat_inputs(cams, roads, buildings, grid) -> None:
    visible = gc.visible_areas(cams.to_crs(4326), buildings.to_crs(4326))
    assert visible.crs.is_projected
    table = gc.coverage(grid.to_crs(4326), key="code", roads=roads.to_crs(4326), buildings=buildings.to_crs(4326),
                        visible=visible, cameras=cams.to_crs(4326))  # fmt: skip
    assert table["road_covered_m"].iloc[0] == pytest.approx(110 + C_ROAD, abs=0.1)


def test_suggestions_are_greedy_and_bounded(cams, roads, buildings) -> None:
    visible = gc.visible_areas(cams, buildings)
    picks, stats = gc.suggest_cameras(roads, visible=visible, buildings=buildings, k=2, range_m=50)
    assert len(picks) == 2 and picks["order"].tolist() == [1, 2]
    gains = picks["gain_m"].tolist()
    # one dome can take a whole 85 m stretch of the north-south street, so the first pick gains
    # at least that; the greedy then takes less (it is not optimal: two domes on the two stretches
    # would see 170 m) but never less than (1 − 1/e) of the bound
    assert gains[0] >= 85 and gains[0] >= gains[1] > 0
    assert stats["covered_m"] == pytest.approx(sum(gains), abs=0.05)
    assert stats["covered_m"] <= stats["upper_bound_m"] <= stats["uncovered_m"] + 1e-6
    assert stats["uncovered_m"] == pytest.approx(400 - 110 - C_ROAD, abs=0.05)
    assert 1 - 1 / math.e <= stats["ratio"] <= 1.0
    assert picks["cumulative_m"].iloc[-1] == pytest.approx(stats["covered_m"], abs=0.05)
    # each pick stands on unseen road, outside buildings
    unseen = gc.uncovered_roads(roads, visible=visible).union_all()
    assert all(unseen.distance(p) < 0.2 for p in picks.geometry)
    # already covered everything: nothing to suggest
    everywhere = gpd.GeoDataFrame({"id": ["X"], "range_m": [500.0]}, geometry=[pt(100, 100)], crs=UTM51N)
    none, s2 = gc.suggest_cameras(
        roads, visible=gc.visible_areas(everywhere, buildings.iloc[:0]), buildings=buildings, k=3
    )
    assert none.empty and s2["ratio"] == 1.0 and s2["uncovered_m"] == 0
    with pytest.raises(ValueError):
        gc.suggest_cameras(roads, visible=visible, buildings=buildings, k=0)


def test_inputs_are_not_modified(cams, roads, buildings, grid) -> None:
    before = [f.copy() for f in (cams, roads, buildings, grid)]
    visible = gc.visible_areas(cams, buildings)
    gc.coverage(grid, key="code", roads=roads, buildings=buildings, visible=visible, cameras=cams)
    gc.cameras_seeing(cams, at=pt(130, 100), crs=UTM51N, buildings=buildings)
    for a, b in zip(before, (cams, roads, buildings, grid), strict=True):
        pd.testing.assert_frame_equal(pd.DataFrame(a), pd.DataFrame(b))


@pytest.mark.parametrize("case", sorted(set(CATALOGUE) - {"no_crs"}))
def test_awkward_building_footprints(case: str) -> None:
    """Every footprint in the awkward-geometry catalogue: a clear answer, never an exception."""
    bld = CATALOGUE[case]()
    cam = gpd.GeoDataFrame({"id": ["S"], "direction": [45.0], "fov": [120.0], "range_m": [80.0]},
                           geometry=[Point(*offset(-20, -20))], crs=4326)  # fmt: skip
    vis = gc.visible_areas(cam, bld)
    assert vis.crs.is_projected and len(vis) == 1 and vis.geometry.iloc[0].is_valid
    assert 0 < vis.area.iloc[0] <= math.pi * 80**2 / 3 * 1.001
    gc.cameras_seeing(cam, at=Point(*offset(10, 10)), crs=4326, buildings=bld)


def test_buildings_without_crs_are_an_error(cams) -> None:
    with pytest.raises(CRSError):
        gc.visible_areas(cams, CATALOGUE["no_crs"]())
