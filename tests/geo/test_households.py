from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pytest
import shapely

from geo.errors import CRSError
from geo.households import WARNINGS_ATTR, estimate_households
from geo.partition import partition

UTM = "EPSG:32651"
SLAB = shapely.box(569_000.0, 4_682_000.0, 569_060.0, 4_682_012.0)  # 60 m x 12 m = 720 m²


def frame(**columns: list[object]) -> gpd.GeoDataFrame:
    n = len(next(iter(columns.values())))
    return gpd.GeoDataFrame(columns, geometry=[SLAB] * n, crs=UTM)


def test_area_times_levels_over_area_per_household() -> None:
    out = estimate_households(
        frame(building=["apartments", "apartments", "house"], **{"building:levels": ["5", 6, None]})
    )
    # 720 m² x 5 / 90 = 40; x 6 = 48; a house without levels: 1 storey -> 8
    assert out["households"].tolist() == [40, 48, 8]
    assert out["households"].dtype == np.int64
    assert out["households_estimated"].tolist() == [True, True, True]
    assert out.attrs[WARNINGS_ATTR] == []


def test_options_are_configurable() -> None:
    base = frame(building=["apartments", "weird"], **{"building:levels": [None, None]})
    out = estimate_households(
        base, area_per_household_m2=120.0, levels_by_kind={"apartments": 5}, default_levels=1
    )
    assert out["households"].tolist() == [30, 6]  # 720 x 5 / 120; unknown kind: 720 x 1 / 120
    out = estimate_households(base.assign(height=["18 m", "9"]), storey_height_m=3.0)
    assert out["households"].tolist() == [48, 24]  # 6 and 3 storeys from the height


def test_existing_values_are_kept_and_bad_ones_reported() -> None:
    base = frame(
        households=[12, "7", 0, -3, None, "abc", 5.6, "", 0.3],
        building=["apartments"] * 9,
        **{"building:levels": ["5"] * 9},
    )
    before = base.copy()
    out = estimate_households(base)
    assert out["households"].tolist() == [12, 7, 40, 40, 40, 40, 6, 40, 40]
    assert out["households_estimated"].tolist() == [False, False, True, True, True, True, False, True, True]
    warnings = out.attrs[WARNINGS_ATTR]
    assert any("zero, negative or fractional" in w and "-3" in w for w in warnings)
    assert any("unreadable households" in w and "'abc'" in w for w in warnings)
    assert base.equals(before)  # input untouched
    assert WARNINGS_ATTR not in base.attrs


@pytest.mark.parametrize(
    ("levels", "expected"),
    [
        ("5", 40),
        (" 5 ", 40),
        ("5;7", 48),  # mean of the parts: 6 storeys
        ("5-7", 48),
        ("5.5", 44),
        (6.0, 48),
        ("", 16),  # missing: the "yes" default of 2 storeys
        (None, 16),
        (math.nan, 16),
        ("abc", 16),
        ("0", 16),
        (-2, 16),
        ("350", 16),  # not a building
        (math.inf, 16),
        (True, 16),
    ],
)
def test_osm_levels_values(levels: object, expected: int) -> None:
    out = estimate_households(frame(building=["yes"], **{"building:levels": [levels]}))
    assert out["households"].tolist() == [expected]
    bad = levels in ("abc", "0", -2, "350", True) or (isinstance(levels, float) and math.isinf(levels))
    assert bool(out.attrs[WARNINGS_ATTR]) == bad


@pytest.mark.parametrize(
    ("height", "expected"), [("15", 40), ("15 m", 40), ("49.2 ft", 40), ("tall", 16), (-4, 16)]
)
def test_osm_height_values(height: object, expected: int) -> None:
    out = estimate_households(frame(building=["yes"], height=[height]))
    assert out["households"].tolist() == [expected]


def test_non_residential_kinds_get_none_and_small_houses_one() -> None:
    shed = shapely.box(0, 0, 3, 3)
    base = gpd.GeoDataFrame(
        {"building": ["School", "garage", "yes", "house", None]},
        geometry=[SLAB, SLAB, shed, shed, shed],
        crs=UTM,
    )
    out = estimate_households(base)
    assert out["households"].tolist() == [0, 0, 1, 1, 1]
    out = estimate_households(base, min_households=0, non_residential=("house",))
    assert out["households"].tolist() == [16, 16, 0, 0, 0]  # kinds outside the table: 2 storeys


def test_lonlat_footprints_are_measured_in_metres() -> None:
    base = frame(building=["apartments"]).to_crs("EPSG:4326")
    out = estimate_households(base)
    assert out["households"].tolist() == [48]  # 720 m² x 6 / 90
    assert out.crs.to_epsg() == 4326


def test_null_geometry_without_households_gets_zero() -> None:
    base = gpd.GeoDataFrame(
        {"building": ["yes", "yes"], "households": [None, 10]}, geometry=[None, None], crs=UTM
    )
    out = estimate_households(base)
    assert out["households"].tolist() == [0, 10]
    assert any("without a geometry" in w for w in out.attrs[WARNINGS_ATTR])


def test_errors_and_empty() -> None:
    with pytest.raises(CRSError):
        estimate_households(gpd.GeoDataFrame(geometry=[SLAB]))
    with pytest.raises(ValueError, match="area_per_household"):
        estimate_households(frame(building=["yes"]), area_per_household_m2=0)
    with pytest.raises(ValueError, match="storey_height"):
        estimate_households(frame(building=["yes"]), storey_height_m=-1)
    with pytest.raises(ValueError, match="levels_by_kind"):
        estimate_households(frame(building=["yes"]), levels_by_kind={"yes": 0})
    empty = estimate_households(gpd.GeoDataFrame({"building": []}, geometry=[], crs=UTM))
    assert empty.empty and list(empty.columns) == [
        "building",
        "geometry",
        "households",
        "households_estimated",
    ]


def test_estimates_feed_the_partition() -> None:
    rng = np.random.default_rng(0)
    xs = rng.uniform(0, 400, 120) + 569_000.0
    ys = rng.uniform(0, 300, 120) + 4_682_000.0
    houses = gpd.GeoDataFrame(
        {"building": ["house"] * 110 + ["shed"] * 10, "building:levels": ["1"] * 60 + ["2"] * 50 + [""] * 10},
        geometry=shapely.box(xs - 6, ys - 5, xs + 6, ys + 5),
        crs=UTM,
    )
    out = estimate_households(houses, area_per_household_m2=150.0)
    residential = out[out["households"] > 0]
    assert len(residential) == 110
    grids, labels = partition(
        residential, boundary=shapely.box(*houses.total_bounds).buffer(20), band=(30, 50)
    )
    assert grids["households"].sum() == out["households"].sum()
