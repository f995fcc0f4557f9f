from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geo.errors import CRSError
from geo.partition import choose_grid_count, compactness, partition, partition_households, tessellate
from tests.fixtures import geometries as fx

Factory = Callable[..., gpd.GeoDataFrame]


def in_band_share(frame: gpd.GeoDataFrame, labels: pd.Series, band: tuple[int, int]) -> float:
    totals = frame["households"].groupby(labels).sum()
    return float(((totals >= band[0]) & (totals <= band[1])).mean())


def assert_exact_cover(grids: gpd.GeoDataFrame, boundary: Any) -> None:
    """Union equals the boundary, pieces do not overlap, and they form a valid coverage."""
    geoms = np.asarray(grids.geometry.values, dtype=object)
    union = shapely.union_all(geoms)
    assert union.symmetric_difference(boundary).area / boundary.area < 1e-6
    assert abs(shapely.area(geoms).sum() - boundary.area) / boundary.area < 1e-6  # no overlaps
    assert bool(shapely.coverage_is_valid(geoms[~shapely.is_empty(geoms)]))
    assert shapely.difference(union, boundary).area / boundary.area < 1e-9  # nothing outside


# --- choosing k -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "band", "expected"),
    [
        (1000, (80, 120), 10),
        (100, (80, 120), 1),
        (50, (80, 120), 1),  # too few households: one (under-full) grid
        (130, (80, 120), 1),  # no k fits the band: closest to 100
        (170, (80, 120), 2),  # 85 each is inside the band
        (250, (80, 120), 3),  # 250/3 = 83.3 is the only in-band mean
        (400, (30, 50), 10),
    ],
)
def test_choose_grid_count(total: float, band: tuple[int, int], expected: int) -> None:
    assert choose_grid_count(total, band=band) == expected


def test_choose_grid_count_target_and_zero() -> None:
    assert choose_grid_count(1000, band=(80, 120), target=85) == 12  # 83.3 is closer to 85 than 90.9
    assert choose_grid_count(0, band=(80, 120)) == 0
    with pytest.raises(ValueError):
        choose_grid_count(100, band=(120, 80))


# --- partition_households -----------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["rows", "random"])
@pytest.mark.parametrize("seed", [0, 1])
def test_urban_buildings_mostly_in_band(community: Factory, layout: str, seed: int) -> None:
    frame = community(5000, max_households=60, layout=layout, seed=seed)
    labels = partition_households(frame, band=(80, 120))
    assert in_band_share(frame, labels, (80, 120)) >= 0.95


def test_village_houses_in_band(community: Factory) -> None:
    frame = community(3000, households=1, layout="random", seed=3)
    labels = partition_households(frame, band=(30, 50))
    assert in_band_share(frame, labels, (30, 50)) >= 0.95
    assert labels.nunique() == choose_grid_count(3000, band=(30, 50))


def test_labels_are_contiguous_ints_aligned_with_index(community: Factory) -> None:
    frame = community(400)
    labels = partition_households(frame)
    assert labels.index.equals(frame.index)
    assert labels.dtype == np.int64
    assert labels.name == "label"
    assert sorted(labels.unique()) == list(range(labels.nunique()))


def test_groups_are_spatially_separated(community: Factory) -> None:
    """Recursive bisection: the convex hulls of different groups' centroids never overlap."""
    frame = community(800, layout="random", seed=5)
    labels = partition_households(frame)
    centroids = frame.geometry.centroid
    hulls = np.array(
        [shapely.convex_hull(shapely.multipoints(shapely.get_coordinates(centroids[labels == k].values)))
         for k in sorted(labels.unique())],
        dtype=object,
    )
    left, right = shapely.STRtree(hulls).query(hulls, predicate="overlaps")
    assert not np.any(left != right)


def test_oversized_buildings_are_their_own_group(community: Factory) -> None:
    frame = community(300, seed=2)
    big_rows = frame.index[[5, 50, 150]]
    frame.loc[big_rows, "households"] = [121, 300, 800]
    labels = partition_households(frame)
    for row in big_rows:
        assert (labels == labels[row]).sum() == 1
    assert labels[big_rows].nunique() == 3


def test_deterministic_and_input_untouched(community: Factory) -> None:
    frame = community(600, layout="random")
    before = frame.copy()
    a = partition_households(frame)
    b = partition_households(frame)
    assert a.equals(b)
    assert frame.equals(before)


def test_lonlat_input_partitions_like_metric(community: Factory) -> None:
    metric = community(600)
    lonlat = metric.to_crs("EPSG:4326")
    labels = partition_households(lonlat)
    assert in_band_share(lonlat, labels, (80, 120)) >= 0.95
    # same grouping up to relabelling
    pairs = pd.crosstab(labels, partition_households(metric))
    assert ((pairs > 0).sum(axis=1) == 1).mean() > 0.9


def test_target_changes_grid_size(community: Factory) -> None:
    frame = community(1000)
    small = partition_households(frame, target=85)
    large = partition_households(frame, target=115)
    assert small.nunique() > large.nunique()


@pytest.mark.parametrize("bad", [0, -3, math.nan])
def test_bad_household_counts_raise(bad: float) -> None:
    frame = fx.good_buildings().astype({"households": float})
    frame.loc[1, "households"] = bad
    with pytest.raises(ValueError, match="household counts must be positive"):
        partition_households(frame)


def test_other_input_errors() -> None:
    with pytest.raises(ValueError, match="not found"):
        partition_households(fx.good_buildings(), households="hh")
    with pytest.raises(CRSError):
        partition_households(fx.no_crs())
    with pytest.raises(ValueError, match="band"):
        partition_households(fx.good_buildings(), band=(0, 10))
    with pytest.raises(ValueError, match="null or empty"):
        partition_households(pd.concat([fx.good_buildings(), fx.empty_polygon()], ignore_index=True))


def test_tiny_inputs() -> None:
    empty = fx.good_buildings().iloc[:0]
    assert partition_households(empty).empty
    one = fx.good_buildings().iloc[:1]
    assert partition_households(one).tolist() == [0]
    # a whole courtyard building of 90 households is one grid
    assert partition_households(fx.polygon_with_hole().assign(households=90)).tolist() == [0]


def test_partition_households_speed(community: Factory) -> None:
    frame = community(5000)
    start = time.perf_counter()
    partition_households(frame)
    assert time.perf_counter() - start < 1.0


# --- tessellate -----------------------------------------------------------------------------------


def test_tessellate_covers_boundary_exactly(community: Factory, tieling_boundary_utm: Callable[..., Any]) -> None:
    frame = community(1500, layout="random", seed=7)
    boundary = tieling_boundary_utm(frame)
    labels = partition_households(frame)
    grids = tessellate(frame, labels, boundary=boundary)
    assert list(grids.columns) == ["label", "geometry"]
    assert grids["label"].tolist() == sorted(labels.unique())
    assert grids.crs == frame.crs
    assert_exact_cover(grids, boundary)


def test_tessellate_lonlat_returns_lonlat(community: Factory, tieling_boundary_utm: Callable[..., Any]) -> None:
    metric = community(500)
    boundary_m = tieling_boundary_utm(metric)
    frame = metric.to_crs("EPSG:4326")
    boundary = gpd.GeoSeries([boundary_m], crs=metric.crs).to_crs("EPSG:4326").iloc[0]
    grids = tessellate(frame, partition_households(frame), boundary=boundary)
    assert grids.crs.to_epsg() == 4326
    assert_exact_cover(grids, boundary)


def test_tessellate_coincident_points_and_single_building() -> None:
    frame = fx.good_buildings()
    frame = gpd.GeoDataFrame(pd.concat([frame, frame.iloc[[0]]], ignore_index=True), crs=frame.crs)
    labels = pd.Series([0, 1, 1, 0], index=frame.index)  # row 3 sits exactly on row 0
    boundary = shapely.box(*frame.total_bounds).buffer(0.001)
    grids = tessellate(frame, labels, boundary=boundary)
    assert_exact_cover(grids, boundary)
    one = fx.good_buildings().iloc[:1]
    grids = tessellate(one, pd.Series([0], index=one.index), boundary=boundary)
    assert grids.geometry.iloc[0].equals(boundary)


def test_tessellate_errors() -> None:
    frame = fx.good_buildings()
    labels = pd.Series([0, 0, 1], index=frame.index)
    boundary = shapely.box(*frame.total_bounds).buffer(0.001)
    with pytest.raises(ValueError, match="labels are missing"):
        tessellate(frame, labels.iloc[:2], boundary=boundary)
    with pytest.raises(ValueError, match="not a valid polygon"):
        tessellate(frame, labels, boundary=fx.bowtie().geometry.iloc[0])
    with pytest.raises(ValueError, match="Polygon"):
        tessellate(frame, labels, boundary=shapely.Point(0, 0))  # type: ignore[arg-type]
    with pytest.raises(CRSError):
        tessellate(fx.no_crs(), labels.iloc[:2], boundary=boundary)


# --- partition ---------------------------------------------------------------------------------------


def test_partition_grids_and_statistics(community: Factory) -> None:
    frame = community(2000, seed=11)
    frame.loc[frame.index[[3, 700]], "households"] = [150, 400]  # two towers
    boundary = shapely.box(*frame.total_bounds).buffer(40.0, join_style="mitre")
    grids, labels = partition(frame, boundary=boundary)
    assert list(grids.columns) == ["label", "households", "buildings", "in_band", "geometry"]
    assert labels.equals(partition_households(frame))
    assert grids["households"].sum() == frame["households"].sum()
    assert grids["buildings"].sum() == len(frame)
    assert (grids["in_band"] == grids["households"].between(80, 120)).all()
    assert grids["in_band"].mean() >= 0.95
    assert_exact_cover(grids, boundary)
    # contiguous grids, every building's centroid inside its own grid
    assert (grids.geom_type == "Polygon").all()
    own = grids.set_index("label").geometry.loc[labels.to_numpy()].to_numpy()
    centroids = frame.geometry.centroid
    assert shapely.intersects(own, centroids.to_numpy()).all()
    # the towers got their own non-empty grids
    for row in frame.index[[3, 700]]:
        grid = grids.loc[grids["label"] == labels[row]].iloc[0]
        assert grid["buildings"] == 1 and not grid.geometry.is_empty


def test_partition_village_in_lonlat(community: Factory, tieling_boundary_utm: Callable[..., Any]) -> None:
    metric = community(1200, households=1, layout="random", seed=4)
    frame = metric.to_crs("EPSG:4490")
    boundary = gpd.GeoSeries([tieling_boundary_utm(metric)], crs=metric.crs).to_crs("EPSG:4490").iloc[0]
    grids, labels = partition(frame, boundary=boundary, band=(30, 50))
    assert grids.crs.to_epsg() == 4490
    assert grids["in_band"].mean() >= 0.95
    assert_exact_cover(grids, boundary)


def test_partition_is_more_compact_than_voronoi(community: Factory) -> None:
    frame = community(2000, layout="random", seed=9)
    boundary = shapely.box(*frame.total_bounds).buffer(40.0, join_style="mitre")
    grids, labels = partition(frame, boundary=boundary)
    voronoi = tessellate(frame, labels, boundary=boundary)
    assert (grids.geom_type == "MultiPolygon").sum() <= (voronoi.geom_type == "MultiPolygon").sum()
    assert np.nanmedian(compactness(grids)) > 0.5


def test_partition_only_towers_and_single_building() -> None:
    frame = fx.good_buildings().assign(households=[130, 200, 500])
    boundary = shapely.box(*frame.total_bounds).buffer(0.0005)
    grids, labels = partition(frame, boundary=boundary)
    assert sorted(labels) == [0, 1, 2]
    assert grids["buildings"].tolist() == [1, 1, 1]
    assert not grids["in_band"].any()
    assert_exact_cover(grids, boundary)
    grids, labels = partition(frame.iloc[:1].assign(households=90), boundary=boundary)
    assert labels.tolist() == [0] and grids.geometry.iloc[0].equals(boundary)


def test_partition_empty_frame() -> None:
    grids, labels = partition(fx.good_buildings().iloc[:0], boundary=shapely.box(0, 0, 1, 1))
    assert grids.empty and labels.empty
    assert list(grids.columns) == ["label", "households", "buildings", "in_band", "geometry"]


# --- compactness -------------------------------------------------------------------------------------


def test_compactness_shapes() -> None:
    shapes = gpd.GeoSeries(
        [shapely.box(0, 0, 100, 100), shapely.Point(0, 0).buffer(100, quad_segs=64), shapely.box(0, 0, 1000, 1),
         shapely.Polygon()],
        crs="EPSG:32651",
    )
    score = compactness(shapes)
    assert score[0] == pytest.approx(math.pi / 4)
    assert score[1] == pytest.approx(1.0, abs=1e-3)
    assert score[2] < 0.01
    assert math.isnan(score[3])


def test_compactness_in_lonlat_uses_metres() -> None:
    square_m = fx.building(0, 0, width_m=100, depth_m=100)
    score = compactness(gpd.GeoDataFrame(geometry=[square_m], crs="EPSG:4326"))
    assert score[0] == pytest.approx(math.pi / 4, abs=0.01)


def test_compactness_needs_crs() -> None:
    with pytest.raises(CRSError):
        compactness(fx.no_crs().geometry)
