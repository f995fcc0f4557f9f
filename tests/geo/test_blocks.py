from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pytest
import shapely

from geo.blocks import as_geometries, block_graph, blocks
from geo.crs import from_wgs84, to_wgs84
from geo.errors import CRSError

UTM = "EPSG:32651"
X0, Y0 = 569_000.0, 4_682_000.0  # near Tieling in UTM 51N


def box(x0: float, y0: float, x1: float, y1: float) -> shapely.Polygon:
    return shapely.box(X0 + x0, Y0 + y0, X0 + x1, Y0 + y1)


def line(*points: tuple[float, float]) -> shapely.LineString:
    return shapely.LineString([(X0 + x, Y0 + y) for x, y in points])


def assert_exact_cover(frame: gpd.GeoDataFrame, boundary: Any) -> None:
    geoms = np.asarray(frame.geometry.values, dtype=object)
    union = shapely.union_all(geoms)
    assert union.symmetric_difference(boundary).area / boundary.area < 1e-6
    assert abs(shapely.area(geoms).sum() - boundary.area) / boundary.area < 1e-6
    assert bool(shapely.coverage_is_valid(geoms))


def test_street_grid_cuts_into_blocks() -> None:
    boundary = box(0, 0, 400, 300)
    roads = [line((100, -20), (100, 320)), line((250, -20), (250, 320)), line((-20, 150), (420, 150))]
    out = blocks(boundary, roads=roads, crs=UTM)
    assert list(out.columns) == ["block", "kind", "geometry"]
    assert out["block"].tolist() == list(range(6))
    assert (out["kind"] == "land").all()
    assert out.crs.to_epsg() == 32651
    assert sorted(np.round(out.area).tolist()) == [15000, 15000, 22500, 22500, 22500, 22500]
    assert_exact_cover(out, boundary)
    # numbered north to south, then west to east
    first = out.geometry.iloc[0].representative_point()
    assert first.y > Y0 + 150 and first.x < X0 + 100


def test_dangles_do_not_close_a_block_and_inputs_are_untouched() -> None:
    boundary = box(0, 0, 200, 100)
    roads = gpd.GeoDataFrame(
        geometry=[line((100, -10), (100, 110)), line((20, 50), (80, 50)), line((150, 0), (150, 60))], crs=UTM
    )
    before = roads.copy()
    out = blocks(boundary, roads=roads, crs=UTM)
    assert len(out) == 2  # the cul-de-sacs (one from the boundary, one floating) cut nothing
    assert_exact_cover(out, boundary)
    assert roads.geom_equals(before).all()


def test_multipolygon_with_holes_and_roads_outside() -> None:
    left = shapely.Polygon(
        [(X0, Y0), (X0 + 200, Y0), (X0 + 200, Y0 + 200), (X0, Y0 + 200)],
        [[(X0 + 20, Y0 + 20), (X0 + 60, Y0 + 20), (X0 + 60, Y0 + 60), (X0 + 20, Y0 + 60)]],
    )
    island = box(300, 0, 400, 100)
    boundary = shapely.MultiPolygon([left, island])
    roads = [line((-50, 40), (450, 40)), line((100, 500), (100, 600))]  # through the hole, and far away
    out = blocks(boundary, roads=roads, crs=UTM)
    assert_exact_cover(out, boundary)
    assert len(out) == 4  # left part cut in two by the road (which also crosses the hole), island cut in two
    holes = shapely.get_num_interior_rings(np.asarray(out.geometry.values, dtype=object))
    assert holes.sum() == 0  # the road runs through the hole, so no block keeps it


def test_no_roads_gives_the_boundary_parts() -> None:
    boundary = shapely.MultiPolygon([box(0, 0, 100, 100), box(200, 0, 300, 100)])
    for roads in (None, [], gpd.GeoDataFrame(geometry=[], crs=UTM)):
        out = blocks(boundary, roads=roads, crs=UTM)
        assert len(out) == 2
        assert_exact_cover(out, boundary)


def test_water_polygons_make_water_blocks() -> None:
    boundary = box(0, 0, 300, 200)
    river = box(-10, 90, 310, 110)  # a straight river across
    lake = box(200, 20, 250, 60)  # a pond inside the southern block
    out = blocks(boundary, water=gpd.GeoSeries([river, lake], crs=UTM), crs=UTM)
    assert_exact_cover(out, boundary)
    assert sorted(out["kind"]) == ["land", "land", "water", "water"]
    pond = out[(out["kind"] == "water") & (out.area < 3000)]
    assert pond.geometry.iloc[0].equals(lake)
    land = np.asarray(out[out["kind"] == "land"].geometry.values, dtype=object)
    assert sorted(shapely.get_num_interior_rings(land).tolist()) == [
        0,
        1,
    ]  # the southern block rings the pond
    graph = block_graph(out)
    pond_id = int(pond["block"].iloc[0])
    assert len(graph[pond_id]) == 1  # the pond touches only the land around it


def test_slivers_merge_into_the_longest_neighbour() -> None:
    boundary = box(0, 0, 300, 200)
    roads = [
        line((-10, 199.2), (310, 199.2)),  # 0.8 m inside the northern edge: a thin strip
        line((150, -10), (150, 210)),
        line((290, 0), (300, 5)),  # a corner cut: a 25 m² triangle
    ]
    out = blocks(boundary, roads=roads, crs=UTM)
    assert_exact_cover(out, boundary)
    assert len(out) == 2
    assert sorted(np.round(out.area).tolist()) == [30000, 30000]
    # without merging the strip and the triangle stay
    raw = blocks(boundary, roads=roads, crs=UTM, min_area_m2=0, min_width_m=0)
    assert len(raw) == 5
    assert_exact_cover(raw, boundary)


def test_block_graph_edges_not_points() -> None:
    boundary = box(0, 0, 200, 200)
    roads = [line((100, -10), (100, 210)), line((-10, 100), (210, 100))]
    out = blocks(boundary, roads=roads, crs=UTM)
    graph = block_graph(out)
    assert set(graph) == {0, 1, 2, 3}
    for block, nbrs in graph.items():
        assert len(nbrs) == 2  # the diagonal neighbour only touches at the crossing
        assert all(length == pytest.approx(100.0) for length in nbrs.values())
        for other, length in nbrs.items():
            assert graph[other][block] == length
    single = block_graph(out.iloc[:1])
    assert single == {int(out["block"].iloc[0]): {}}


def test_lonlat_boundary_measures_in_metres() -> None:
    boundary_m = box(0, 0, 300, 200)
    roads_m = [line((150, -10), (150, 210)), line((-10, 199.5), (310, 199.5))]
    boundary = gpd.GeoSeries([boundary_m], crs=UTM).to_crs("EPSG:4326").iloc[0]
    roads = gpd.GeoDataFrame(geometry=roads_m, crs=UTM)  # another CRS: reprojected
    out = blocks(boundary, roads=roads, crs="EPSG:4326")
    assert out.crs.to_epsg() == 4326
    assert len(out) == 2  # the 0.5 m strip is a sliver in metres although tiny in degrees
    assert_exact_cover(out, boundary)
    graph = block_graph(out)
    assert graph[0][1] == pytest.approx(200.0, rel=1e-3)


def test_gcj02_frames_are_shifted_back() -> None:
    boundary_m = box(0, 0, 300, 200)
    boundary = gpd.GeoSeries([boundary_m], crs=UTM).to_crs("EPSG:4326")
    road = gpd.GeoDataFrame(geometry=[line((150, -10), (150, 210))], crs=UTM).to_crs("EPSG:4326")
    shifted = from_wgs84(road, target="gcj02")  # as a web map would hold it, marked
    out = blocks(boundary.iloc[0], roads=shifted, crs="EPSG:4326")
    assert len(out) == 2
    assert sorted(np.round(out.to_crs(UTM).area).tolist()) == [30000, 30000]
    # raw GCJ-02 coordinates must be converted by the caller first
    raw = shifted.copy()
    raw.attrs = {}
    fixed = to_wgs84(raw, source="gcj02")
    out2 = blocks(boundary, roads=fixed, crs="EPSG:4326")
    assert sorted(np.round(out2.to_crs(UTM).area).tolist()) == [30000, 30000]


def test_errors() -> None:
    with pytest.raises(ValueError, match="Polygon"):
        blocks(shapely.Point(0, 0), crs=UTM)
    with pytest.raises(ValueError, match="empty"):
        blocks(shapely.Polygon(), crs=UTM)
    bowtie = shapely.Polygon([(0, 0), (1, 1), (1, 0), (0, 1)])
    with pytest.raises(ValueError, match="valid"):
        blocks(bowtie, crs=UTM)
    with pytest.raises(CRSError):
        blocks(box(0, 0, 10, 10), crs="gcj02")
    with pytest.raises(CRSError):
        blocks(box(0, 0, 10, 10), roads=gpd.GeoDataFrame(geometry=[line((0, 0), (1, 1))]), crs=UTM)
    with pytest.raises(CRSError):
        block_graph(gpd.GeoDataFrame({"block": [0]}, geometry=[box(0, 0, 1, 1)]))
    with pytest.raises(ValueError, match="geometries"):
        as_geometries([1, 2], crs=UTM)
