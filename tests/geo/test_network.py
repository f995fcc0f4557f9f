"""RoadNetwork: distances along a small hand-made street grid near Tieling (EPSG:32651)."""

from __future__ import annotations

import warnings

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import LineString, MultiLineString, Point, Polygon

import demo.roadnet
import geo.network
from geo.errors import CRSError
from geo.network import RoadNetwork, point_xy
from tests.geo.conftest import ORIGIN, UTM51N

X0, Y0 = ORIGIN


def P(dx: float, dy: float) -> Point:
    """A point ``dx``, ``dy`` metres from the origin of the street grid."""
    return Point(X0 + dx, Y0 + dy)


def streets() -> gpd.GeoDataFrame:
    """A 4 x 4 block grid (streets every 100 m over 0..400 m, each street one line crossing the
    others without shared vertices), and east of a 'river' (x 400..600, no bridge) a separate
    little grid over x 600..800."""
    lines: list[object] = []
    for k in range(5):
        lines.append(LineString([(X0, Y0 + 100 * k), (X0 + 400, Y0 + 100 * k)]))
        lines.append(LineString([(X0 + 100 * k, Y0), (X0 + 100 * k, Y0 + 400)]))
    for k in range(3):
        lines.append(LineString([(X0 + 600, Y0 + 100 * k), (X0 + 800, Y0 + 100 * k)]))
        lines.append(LineString([(X0 + 600 + 100 * k, Y0), (X0 + 600 + 100 * k, Y0 + 200)]))
    return gpd.GeoDataFrame({"name": [f"r{i}" for i in range(len(lines))]}, geometry=lines, crs=UTM51N)


@pytest.fixture(scope="module")
def net() -> RoadNetwork:
    return RoadNetwork.from_roads(streets())


def test_distances_follow_the_streets(net: RoadNetwork) -> None:
    targets = gpd.GeoSeries([P(100, 100), P(400, 400), P(0, 0), P(200, 100)], crs=UTM51N)
    got = net.distances_from(P(0, 0), targets)
    assert got == pytest.approx([200.0, 800.0, 0.0, 300.0])
    # points meet the roads at the foot of the perpendicular, anywhere along an edge
    mid = net.distances_from(P(0, 0), [P(250, 100), P(250, 130), P(50, 0)])
    assert mid == pytest.approx([350.0, 380.0, 50.0])
    assert net.distances_from(P(20, -10), [P(70, 5)]) == pytest.approx([10.0 + 50.0 + 5.0])
    # across a block: out to the south street, round the corner, back from the north street
    assert net.distances_from(P(50, 30), [P(50, 70)]) == pytest.approx([30.0 + 50.0 + 100.0 + 50.0 + 30.0])
    assert net.crs.to_epsg() == 32651
    assert "RoadNetwork(" in repr(net)


def test_road_distance_is_never_shorter_than_the_straight_line(net: RoadNetwork) -> None:
    rng = np.random.default_rng(7)
    xy = rng.uniform(-50, 450, (200, 2))
    targets = gpd.GeoSeries(shapely.points(xy + [X0, Y0]), crs=UTM51N)
    origin = P(133.0, 271.0)  # off the streets: the snap legs count
    road = net.distances_from(origin, targets)
    straight = targets.distance(origin).to_numpy()
    assert np.isfinite(road).all()
    assert (road >= straight - 1e-9).all()
    assert (road > straight + 1.0).mean() > 0.5  # most are real detours


def test_the_far_bank_of_the_river_is_unreachable(net: RoadNetwork) -> None:
    far = gpd.GeoSeries([P(700, 100), P(300, 100)], crs=UTM51N)
    got = net.distances_from(P(0, 0), far)
    assert np.isinf(got[0]) and got[1] == pytest.approx(400.0)
    reach = net.reach(P(0, 0))
    assert reach.connected(far).tolist() == [False, True]
    # from the far bank, the near bank is unreachable and the far bank is not
    back = net.distances_from(P(600, 0), far)
    assert back[0] == pytest.approx(200.0) and np.isinf(back[1])


def test_limit_counts_the_whole_distance(net: RoadNetwork) -> None:
    targets = gpd.GeoSeries([P(100, 0), P(200, 0), P(100, 100)], crs=UTM51N)
    got = net.distances_from(P(0, 0), targets, limit_m=150.0)
    assert got[0] == pytest.approx(100.0)
    assert np.isinf(got[1:]).all()
    # the snap leg of the origin is part of the total
    off = net.distances_from(P(0, -30), targets, limit_m=130.0)
    assert off[0] == pytest.approx(130.0)
    assert np.isinf(net.distances_from(P(0, -30), targets, limit_m=129.0)[0])
    assert np.isinf(net.distances_from(P(0, -30), targets, limit_m=20.0)).all()
    with pytest.raises(ValueError, match="limit_m"):
        net.distances_from(P(0, 0), targets, limit_m=-1.0)


def test_unusable_targets_give_inf(net: RoadNetwork) -> None:
    targets = gpd.GeoSeries([None, Point(), Point(np.nan, Y0), P(100, 0)], crs=UTM51N)
    got = net.distances_from(P(0, 0), targets)
    assert np.isinf(got[:3]).all() and got[3] == pytest.approx(100.0)
    assert net.distances_from(P(0, 0), gpd.GeoSeries([], crs=UTM51N)).shape == (0,)


def test_array_targets_use_the_given_crs(net: RoadNetwork) -> None:
    targets = gpd.GeoSeries([P(100, 100), P(300, 0)], crs=UTM51N).to_crs(4326)
    origin = gpd.GeoSeries([P(0, 0)], crs=UTM51N).to_crs(4326).iloc[0]
    as_series = net.distances_from(origin, targets)  # the series' CRS
    as_array = net.distances_from(origin, np.asarray(targets.values), crs="EPSG:4326")
    assert as_series == pytest.approx([200.0, 300.0], abs=0.01)
    assert as_array == pytest.approx(as_series)
    # without crs, plain points are in the network's CRS
    assert net.distances_from(P(0, 0), [P(100, 100)]) == pytest.approx([200.0])


def test_lon_lat_roads_are_projected_internally() -> None:
    roads = streets().to_crs(4326)
    before = roads.copy()
    net = RoadNetwork.from_roads(roads)
    assert net.crs.to_epsg() == 32651  # the UTM zone of Tieling
    targets = gpd.GeoSeries([P(100, 100), P(700, 100)], crs=UTM51N).to_crs(4326)
    origin = gpd.GeoSeries([P(0, 0)], crs=UTM51N).to_crs(4326).iloc[0]
    got = net.distances_from(origin, targets)
    assert got[0] == pytest.approx(200.0, abs=0.05) and np.isinf(got[1])
    assert roads.equals(before)  # the input is not modified


def test_bad_input_is_refused() -> None:
    with pytest.raises(CRSError):
        RoadNetwork.from_roads(streets().set_crs(None, allow_override=True))
    with pytest.raises(ValueError, match="usable LineString"):
        RoadNetwork.from_roads(gpd.GeoDataFrame(geometry=[Polygon(), None], crs=UTM51N))
    with pytest.raises(TypeError):
        RoadNetwork.from_roads([LineString([(0, 0), (1, 1)])])  # type: ignore[arg-type]
    net = RoadNetwork.from_roads(streets())
    with pytest.raises(TypeError, match="Point"):
        net.distances_from(LineString([(X0, Y0), (X0 + 1, Y0)]), [P(1, 0)])  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        net.distances_from(Point(), [P(1, 0)])
    with pytest.raises(TypeError, match="Point"):
        net.distances_from(P(0, 0), [shapely.box(X0, Y0, X0 + 1, Y0 + 1)])
    with pytest.raises(CRSError):
        net.distances_from(P(0, 0), gpd.GeoSeries([P(1, 0)]))  # a target series without CRS
    with pytest.raises(CRSError):
        RoadNetwork(net.graph, crs="EPSG:4326")  # not metric


def test_awkward_road_geometries_are_skipped() -> None:
    roads = streets()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # shapely warns about the NaN vertex
        nan_line = LineString([(X0, np.nan), (X0 + 5, Y0)])
    extra = gpd.GeoDataFrame(
        {"name": ["none", "empty", "nan", "multi", "poly"]},
        geometry=[
            None,
            LineString(),
            nan_line,
            MultiLineString([[(X0 + 400, Y0 + 400), (X0 + 400, Y0 + 500)]]),
            shapely.box(X0, Y0, X0 + 10, Y0 + 10),
        ],
        crs=UTM51N,
    )
    both = gpd.GeoDataFrame(pd.concat([roads, extra], ignore_index=True), crs=UTM51N)
    net = RoadNetwork.from_roads(both)
    assert net.distances_from(P(0, 0), [P(400, 500)]) == pytest.approx([900.0])


def test_point_xy_marks_unusable_points() -> None:
    xy = point_xy([P(1, 2), None, Point(), Point(np.inf, 0)])
    assert xy[0].tolist() == [X0 + 1, Y0 + 2]
    assert np.isnan(xy[1:]).all()
    with pytest.raises(CRSError):
        point_xy([P(0, 0)], to="EPSG:4326")


def test_demo_roadnet_reexports_the_graph_builder() -> None:
    assert demo.roadnet.build_road_graph is geo.network.build_road_graph
    assert demo.roadnet.RoadGraph is geo.network.RoadGraph
    assert demo.roadnet.subgraph is geo.network.subgraph
