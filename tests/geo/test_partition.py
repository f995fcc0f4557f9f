from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geo.crs import from_wgs84, to_wgs84
from geo.errors import CRSError
from geo.partition import (
    choose_grid_count,
    compactness,
    edge_alignment,
    partition,
    partition_households,
    tessellate,
)
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


def test_partition_households_large_village(community: Factory) -> None:
    """5,000 houses (its speed is measured in bench/planning_speed.py, not asserted here)."""
    frame = community(5000)
    labels = partition_households(frame)
    assert len(labels) == len(frame) and labels.notna().all()


# --- apartment estates: chunky household counts ------------------------------------------------


def slab_estate(seed: int, blocks: tuple[int, int] = (2, 2)) -> tuple[gpd.GeoDataFrame, shapely.Polygon]:
    """An urban community like the demo city's: street blocks of 260 m x 210 m (20 m roads, 8 m
    setbacks) filled with rows of 60 m x 12 m slabs (12 m apart along a row, 18 m between rows,
    7 % left green). Households = floors x stairwells x 2 per landing: walk-ups of 5-7 floors with
    2-4 stairwells (20-56), 11-floor slabs with 2 (44) and 18-floor towers with 3 (108, a grid
    on their own). Returns the buildings (UTM 51N) and the community boundary."""
    rng = np.random.default_rng(seed)
    x0, y0 = 569_000.0, 4_682_000.0
    boxes, households = [], []
    for bx in range(blocks[0]):
        for by in range(blocks[1]):
            ix0, iy0 = x0 + bx * 260.0 + 18.0, y0 + by * 210.0 + 18.0
            ix1, iy1 = x0 + (bx + 1) * 260.0 - 18.0, y0 + (by + 1) * 210.0 - 18.0
            for sx in range(int((ix1 - ix0 + 12.0) // 72.0)):
                for sy in range(int((iy1 - iy0 + 18.0) // 30.0)):
                    if rng.random() < 0.07:
                        continue
                    floors = int(rng.choice([6, 6, 6, 6, 7, 5, 5, 11, 18]))
                    stairwells = int(rng.choice([2, 3, 3, 4])) if floors < 11 else 2 if floors < 18 else 3
                    fx, fy = ix0 + sx * 72.0, iy0 + sy * 30.0
                    boxes.append(shapely.box(fx, fy, fx + 60.0, fy + 12.0))
                    households.append(floors * stairwells * 2)
    frame = gpd.GeoDataFrame({"households": households}, geometry=boxes, crs="EPSG:32651")
    frame.index = frame.index + 500
    return frame, shapely.box(x0, y0, x0 + blocks[0] * 260.0, y0 + blocks[1] * 210.0)


def test_slab_estates_get_grids_in_band() -> None:
    """Chunky counts (a tower fills a grid alone, two or three walk-ups make one): the greedy
    bisection left ~13 % of these grids out of 80-120 (and cut along rows of slabs through their
    centres, leaving some grids empty); the subtree search leaves < 3 %. The (4, 3) estate needs
    more grids than one search takes: its first cuts are greedy."""
    totals, shapes = [], []
    for seed, blocks in [(0, (2, 2)), (1, (2, 2)), (2, (2, 2)), (3, (3, 2)), (4, (1, 1)), (5, (4, 3))]:
        frame, boundary = slab_estate(seed, blocks)
        grids, labels = partition(frame, boundary=boundary)
        assert_exact_cover(grids, boundary)
        assert (grids.geom_type == "Polygon").all() and (grids.area > 1.0).all()
        own = grids.set_index("label").geometry.loc[labels.to_numpy()].to_numpy()
        assert shapely.contains(own, frame.geometry.centroid.to_numpy()).all()
        assert labels.equals(partition_households(frame))
        totals.append(grids["households"])
        shapes.append(compactness(grids))
    households = pd.concat(totals)
    assert households.between(80, 120).mean() >= 0.97
    assert np.median(np.concatenate(shapes)) > 0.6


def test_slab_estate_grid_lines_keep_off_buildings() -> None:
    """Cut lines go through the gaps between slabs where they can: no line along a row through
    the slabs' centres (which also left empty grids)."""
    inside = []
    for seed in range(3):
        frame, boundary = slab_estate(seed)
        grids, labels = partition(frame, boundary=boundary)
        own = grids.set_index("label").geometry.loc[labels.to_numpy()].to_numpy()
        footprints = frame.geometry.to_numpy()
        inside.append(shapely.area(shapely.intersection(footprints, own)) / shapely.area(footprints))
    share = np.concatenate(inside)
    assert share.mean() > 0.9
    assert (share >= 0.6).mean() > 0.95


def test_slab_estate_large() -> None:
    frame, boundary = slab_estate(7, (4, 3))  # ~200 slabs, ~7,000 households (timed in bench/)
    grids, _ = partition(frame, boundary=boundary)
    assert grids["buildings"].sum() == len(frame)


def test_oversized_building_in_a_row_of_slabs() -> None:
    """An oversized building (its own grid, out of the band) in the middle of a column of slabs
    gets its own region; the slabs on either side stay in contiguous grids."""
    boxes = [shapely.box(0.0, 30.0 * i, 60.0, 30.0 * i + 12.0) for i in range(9)]
    frame = gpd.GeoDataFrame(
        {"households": [40, 48, 36, 44, 400, 42, 40, 48, 36]}, geometry=boxes, crs="EPSG:32651"
    )
    boundary = shapely.box(-20.0, -20.0, 80.0, 272.0)
    grids, labels = partition(frame, boundary=boundary)
    assert_exact_cover(grids, boundary)
    assert (grids.geom_type == "Polygon").all()
    assert (labels == labels.iloc[4]).sum() == 1 and labels.iloc[4] == labels.max()
    assert grids["in_band"].sum() == len(grids) - 1


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
    assert list(grids.columns) == ["label", "households", "buildings", "in_band", "oversized", "geometry"]
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
    assert list(grids.columns) == ["label", "households", "buildings", "in_band", "oversized", "geometry"]


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


# --- following roads and water -------------------------------------------------------------------

URBAN_X = (0.0, 120.0, 270.0, 370.0, 540.0, 670.0)  # street centre lines, metres from the origin
URBAN_Y = (0.0, 90.0, 210.0, 310.0, 450.0)
TIELING = (569_000.0, 4_682_000.0)  # near Tieling (lon 123.84, lat 42.29) in UTM 51N


def street_community(seed: int) -> tuple[gpd.GeoDataFrame, shapely.Polygon, gpd.GeoDataFrame]:
    """An urban community near Tieling (UTM 51N): a grid of streets (the outer ones are the
    boundary), one block a park, a cul-de-sac, and rows of apartment slabs set 12 m back from the
    street centre lines, 12 m apart along a row and 18 m between rows. Households = floors x
    stairwells x 2 (walk-ups 20-56, 11-floor slabs 44, 18-floor towers 108). Returns the
    buildings, the boundary and the roads."""
    rng = np.random.default_rng(seed)
    x0, y0 = TIELING
    xs, ys = np.asarray(URBAN_X) + x0, np.asarray(URBAN_Y) + y0
    roads = [shapely.LineString([(x, ys[0] - 30), (x, ys[-1] + 30)]) for x in xs[1:-1]]
    roads += [shapely.LineString([(xs[0] - 30, y), (xs[-1] + 30, y)]) for y in ys[1:-1]]
    roads.append(shapely.LineString([(xs[2] + 50, ys[2]), (xs[2] + 50, ys[2] + 60)]))  # a cul-de-sac
    boxes, households = [], []
    for i in range(len(xs) - 1):
        for j in range(len(ys) - 1):
            if (i, j) == (3, 1):
                continue  # a park
            bx0, bx1, by0, by1 = xs[i] + 12, xs[i + 1] - 12, ys[j] + 12, ys[j + 1] - 12
            length = min(60.0, bx1 - bx0)
            for a in range(max(1, int((bx1 - bx0 + 12) // (length + 12)))):
                for b in range(max(1, int((by1 - by0 + 18) // 30))):
                    if rng.random() < 0.07:
                        continue
                    floors = int(rng.choice([6, 6, 6, 6, 7, 5, 5, 11, 18]))
                    stairwells = int(rng.choice([2, 3, 3, 4])) if floors < 11 else 2 if floors < 18 else 3
                    fx, fy = bx0 + a * (length + 12), by0 + b * 30
                    boxes.append(shapely.box(fx, fy, fx + length, fy + 12))
                    households.append(floors * stairwells * 2)
    frame = gpd.GeoDataFrame({"households": households}, geometry=boxes, crs="EPSG:32651")
    frame.index = frame.index + 100
    return (
        frame,
        shapely.box(xs[0], ys[0], xs[-1], ys[-1]),
        gpd.GeoDataFrame(geometry=roads, crs="EPSG:32651"),
    )


def river_village(
    seed: int, n: int = 300
) -> tuple[gpd.GeoDataFrame, shapely.Polygon, gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """A village of ``n`` one-household houses (UTM 51N) in a five-sided boundary, crossed by a
    meandering river 24 m wide, a main road with a bridge, two cross roads and two lanes (one a
    dead end). Returns buildings, boundary, roads and water."""
    rng = np.random.default_rng(seed)
    x0, y0 = 571_000.0, 4_690_000.0
    boundary = shapely.Polygon(
        [(x0, y0), (x0 + 700, y0 + 20), (x0 + 720, y0 + 520), (x0 + 350, y0 + 600), (x0 - 20, y0 + 480)]
    )
    xs = np.linspace(x0 - 50, x0 + 770, 60)
    river = shapely.LineString(np.column_stack([xs, y0 + 260 + 40 * np.sin((xs - x0) / 120.0)])).buffer(
        12.0, cap_style="flat"
    )
    roads = [
        shapely.LineString([(x0 + 330, y0 - 20), (x0 + 360, y0 + 620)]),
        shapely.LineString([(x0 - 30, y0 + 130), (x0 + 740, y0 + 150)]),
        shapely.LineString([(x0 - 30, y0 + 420), (x0 + 740, y0 + 400)]),
        shapely.LineString([(x0 + 160, y0 + 150), (x0 + 150, y0 + 230)]),
        shapely.LineString([(x0 + 540, y0 + 400), (x0 + 560, y0 + 600)]),
    ]
    clear = shapely.union_all([river.buffer(8), *[r.buffer(7) for r in roads]])
    shapely.prepare(boundary)
    shapely.prepare(clear)
    points: list[tuple[float, float]] = []
    while len(points) < n:
        x, y = rng.uniform(x0, x0 + 720), rng.uniform(y0, y0 + 600)
        spot = shapely.Point(x, y)
        if (
            boundary.contains(spot.buffer(10))
            and not clear.intersects(spot.buffer(7))
            and all((x - a) ** 2 + (y - b) ** 2 > 17**2 for a, b in points)
        ):
            points.append((x, y))
    xy = np.asarray(points)
    houses = shapely.box(xy[:, 0] - 6, xy[:, 1] - 5, xy[:, 0] + 6, xy[:, 1] + 5)
    frame = gpd.GeoDataFrame({"households": np.ones(n, dtype=np.int64)}, geometry=houses, crs="EPSG:32651")
    return (
        frame,
        boundary,
        gpd.GeoDataFrame(geometry=roads, crs="EPSG:32651"),
        gpd.GeoDataFrame({"kind": ["river"]}, geometry=[river], crs="EPSG:32651"),
    )


def footprint_share_in_own_grid(frame: gpd.GeoDataFrame, grids: gpd.GeoDataFrame, labels: pd.Series) -> Any:
    own = grids.set_index("label").geometry.loc[labels.to_numpy()].to_numpy()
    footprints = frame.geometry.to_numpy()
    return shapely.area(shapely.intersection(footprints, own)) / shapely.area(footprints)


def assert_good_partition(
    frame: gpd.GeoDataFrame, grids: gpd.GeoDataFrame, labels: pd.Series, boundary: Any
) -> None:
    assert list(grids.columns) == ["label", "households", "buildings", "in_band", "oversized", "geometry"]
    assert_exact_cover(grids, boundary)
    assert (grids.geom_type == "Polygon").all()  # contiguous
    assert labels.index.equals(frame.index) and set(labels) == set(grids["label"])
    assert (footprint_share_in_own_grid(frame, grids, labels) >= 0.99).all()  # no building split
    assert grids["households"].sum() == frame["households"].sum()
    assert grids["buildings"].sum() == len(frame)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_urban_grids_follow_streets(seed: int) -> None:
    frame, boundary, roads = street_community(seed)
    before = frame.copy()
    grids, labels = partition(frame, boundary=boundary, roads=roads)
    assert frame.equals(before)
    assert_good_partition(frame, grids, labels, boundary)
    assert grids["in_band"].mean() >= 0.9
    assert not grids["oversized"].any()
    plain, _ = partition(frame, boundary=boundary)
    with_roads = edge_alignment(grids, roads=roads)
    without = edge_alignment(plain, roads=roads)
    assert with_roads >= 0.4 and with_roads > without + 0.2, (with_roads, without)


def test_village_grids_follow_river_and_lanes() -> None:
    frame, boundary, roads, water = river_village(0)
    grids, labels = partition(frame, boundary=boundary, band=(30, 50), roads=roads, water=water)
    assert_good_partition(frame, grids, labels, boundary)
    assert grids["in_band"].mean() >= 0.9
    plain, _ = partition(frame, boundary=boundary, band=(30, 50))
    assert (
        edge_alignment(grids, roads=roads, water=water)
        > edge_alignment(plain, roads=roads, water=water) + 0.2
    )
    # no grid is cut by the river: every grid's houses lie on one bank (or the grid spans it whole)
    river = water.geometry.iloc[0]
    for geom in grids.geometry:
        assert geom.difference(river).geom_type in ("Polygon", "MultiPolygon")


def test_gcj02_village_is_converted_first() -> None:
    """Data drawn on an AMap basemap is in GCJ-02: convert every layer with to_wgs84(source="gcj02")
    and partition in lon/lat; grids come back in WGS84 and cover the converted boundary."""
    frame_m, boundary_m, roads_m, water_m = river_village(1, n=200)

    def as_gcj(layer: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
        wgs = layer.to_crs("EPSG:4326")
        shifted = from_wgs84(wgs, target="gcj02")
        shifted.attrs = {}  # an import from AMap carries no marker: just lon/lat numbers
        return shifted

    boundary_gcj = as_gcj(gpd.GeoDataFrame(geometry=[boundary_m], crs="EPSG:32651"))
    frame = to_wgs84(as_gcj(frame_m), source="gcj02")
    roads = to_wgs84(as_gcj(roads_m), source="gcj02")
    water = to_wgs84(as_gcj(water_m), source="gcj02")
    boundary = to_wgs84(boundary_gcj, source="gcj02").geometry.iloc[0]
    assert (
        shapely.hausdorff_distance(
            gpd.GeoSeries([boundary], crs="EPSG:4326").to_crs("EPSG:32651").iloc[0], boundary_m
        )
        < 0.05
    )  # the round trip lands back within centimetres
    grids, labels = partition(frame, boundary=boundary, band=(30, 50), roads=roads, water=water)
    assert grids.crs.to_epsg() == 4326
    assert_good_partition(frame, grids, labels, boundary)
    assert grids["in_band"].mean() >= 0.9
    # the same in metres gives the same grouping
    metric, metric_labels = partition(
        frame_m, boundary=boundary_m, band=(30, 50), roads=roads_m, water=water_m
    )
    pairs = pd.crosstab(labels.to_numpy(), metric_labels.to_numpy())
    assert ((pairs > 0).sum(axis=1) == 1).mean() >= 0.8


def test_roads_in_any_form() -> None:
    frame, boundary, roads = street_community(0)
    expected, expected_labels = partition(frame, boundary=boundary, roads=roads)
    as_lonlat = roads.to_crs("EPSG:4326")
    as_array = roads.geometry.to_numpy()
    for form in (as_lonlat.geometry, list(as_array)):
        grids, labels = partition(frame, boundary=boundary, roads=form)
        assert labels.equals(expected_labels)
        assert len(grids) == len(expected)
    with pytest.raises(CRSError):
        partition(frame, boundary=boundary, roads=gpd.GeoDataFrame(geometry=list(as_array)))


def test_no_roads_keeps_the_plain_partition(community: Factory) -> None:
    frame = community(400, seed=3)
    boundary = shapely.box(*frame.total_bounds).buffer(40.0, join_style="mitre")
    grids, labels = partition(frame, boundary=boundary)
    assert labels.equals(partition_households(frame))
    assert grids["oversized"].dtype == bool and not grids["oversized"].any()
    # an empty road layer: one block, cut by the bisection alone
    grids2, labels2 = partition(frame, boundary=boundary, roads=gpd.GeoDataFrame(geometry=[], crs=frame.crs))
    assert_exact_cover(grids2, boundary)
    assert grids2["in_band"].mean() >= 0.95


def test_towers_parks_and_water_blocks() -> None:
    """An oversized tower is its own flagged grid; a park block and a pond join a neighbour
    without households; a road crossing a footprint glues its two blocks (the building stays whole)."""
    x0, y0 = TIELING
    boxes = [shapely.box(x0 + 10 + 30 * i, y0 + 10, x0 + 30 + 30 * i, y0 + 30) for i in range(6)]  # 6 x 20
    boxes += [shapely.box(x0 + 10 + 30 * i, y0 + 110, x0 + 30 + 30 * i, y0 + 130) for i in range(6)]  # 6 x 20
    boxes.append(shapely.box(x0 + 210, y0 + 10, x0 + 240, y0 + 40))  # a tower of 300
    boxes.append(shapely.box(x0 + 210, y0 + 110, x0 + 260, y0 + 130))  # a slab the east road runs through
    households = [20] * 12 + [300, 40]
    frame = gpd.GeoDataFrame({"households": households}, geometry=boxes, crs="EPSG:32651")
    boundary = shapely.box(x0, y0, x0 + 400, y0 + 200)
    roads = gpd.GeoDataFrame(
        geometry=[
            shapely.LineString([(x0 - 10, y0 + 80), (x0 + 410, y0 + 80)]),
            shapely.LineString([(x0 + 200, y0 - 10), (x0 + 200, y0 + 210)]),
            shapely.LineString([(x0 + 250, y0 + 90), (x0 + 250, y0 + 210)]),  # through the slab
            shapely.LineString([(x0 + 300, y0 - 10), (x0 + 300, y0 + 210)]),  # east of it: a park
        ],
        crs="EPSG:32651",
    )
    water = gpd.GeoDataFrame(geometry=[shapely.box(x0 + 320, y0 + 20, x0 + 380, y0 + 60)], crs="EPSG:32651")
    grids, labels = partition(frame, boundary=boundary, roads=roads, water=water)
    assert_good_partition(frame, grids, labels, boundary)
    tower = grids[grids["label"] == labels.iloc[12]].iloc[0]
    assert tower["oversized"] and tower["buildings"] == 1 and not tower["in_band"]
    assert grids["oversized"].sum() == 1
    assert grids.loc[~grids["oversized"], "in_band"].all()
    assert (grids["households"] > 0).all()  # the park and the pond belong to grids with households


def test_island_without_buildings_joins_the_nearest_grid() -> None:
    x0, y0 = TIELING
    boxes = [shapely.box(x0 + 10 + 30 * i, y0 + 10, x0 + 30 + 30 * i, y0 + 30) for i in range(8)]
    frame = gpd.GeoDataFrame({"households": [20] * 8}, geometry=boxes, crs="EPSG:32651")
    boundary = shapely.MultiPolygon(
        [shapely.box(x0, y0, x0 + 250, y0 + 100), shapely.box(x0 + 300, y0, x0 + 350, y0 + 100)]
    )
    roads = [shapely.LineString([(x0 + 125, y0 - 10), (x0 + 125, y0 + 110)])]
    grids, labels = partition(frame, boundary=boundary, roads=roads)
    assert_exact_cover(grids, boundary)
    assert len(grids) == 2 and grids["in_band"].all()
    assert (grids.geom_type == "Polygon").sum() == 1  # the eastern grid also holds the island


def test_partition_with_roads_edge_cases() -> None:
    frame = fx.good_buildings()
    boundary = shapely.box(*frame.total_bounds).buffer(0.0005)
    grids, labels = partition(frame.iloc[:0], boundary=boundary, roads=[])
    assert grids.empty and labels.empty and "oversized" in grids.columns
    with pytest.raises(CRSError):
        partition(fx.no_crs(), boundary=boundary, roads=[])
    with pytest.raises(ValueError, match="household counts must be positive"):
        partition(frame.assign(households=[1, 0, 2]), boundary=boundary, roads=[])
    grids, labels = partition(frame.assign(households=[30, 30, 30]), boundary=boundary, roads=[])
    assert labels.tolist() == [0, 0, 0] and grids["in_band"].all()
    assert_exact_cover(grids, boundary)


def test_edge_alignment() -> None:
    x0, y0 = TIELING
    halves = gpd.GeoDataFrame(
        geometry=[shapely.box(x0, y0, x0 + 100, y0 + 100), shapely.box(x0 + 100, y0, x0 + 200, y0 + 100)],
        crs="EPSG:32651",
    )
    on_road = [shapely.LineString([(x0 + 103, y0 - 50), (x0 + 103, y0 + 150)])]
    off_road = [shapely.LineString([(x0 + 150, y0 - 50), (x0 + 150, y0 + 150)])]
    assert edge_alignment(halves, roads=on_road) == pytest.approx(1.0)
    assert edge_alignment(halves, roads=on_road, tolerance_m=2.0) == pytest.approx(0.0)
    assert edge_alignment(halves, roads=off_road) == pytest.approx(0.0)
    half_road = [shapely.LineString([(x0 + 100, y0 + 50), (x0 + 100, y0 + 150)])]
    assert edge_alignment(halves, roads=half_road, tolerance_m=0.5) == pytest.approx(0.5, abs=0.01)
    assert (
        edge_alignment(halves, roads=None, water=gpd.GeoSeries(on_road, crs="EPSG:32651").buffer(1.0)) > 0.99
    )
    assert edge_alignment(
        halves.to_crs("EPSG:4326"), roads=gpd.GeoSeries(on_road, crs="EPSG:32651")
    ) == pytest.approx(1.0)
    assert math.isnan(edge_alignment(halves.iloc[:1], roads=on_road))
    with pytest.raises(CRSError):
        edge_alignment(gpd.GeoDataFrame(geometry=list(halves.geometry)), roads=on_road)
