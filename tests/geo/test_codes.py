from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely

from geo.codes import (
    grid_codes,
    is_valid_county_code,
    is_valid_gbt28181_id,
    is_valid_grid_code,
    reading_order,
    township_kind,
    village_kind,
)
from geo.errors import CRSError
from tests.fixtures import geometries as fx

VILLAGE = "211202001201"  # Yinzhou district, street 001, village 201


def grid_of_cells(rows: int, cols: int, *, jitter: float = 0.0, seed: int = 0) -> tuple[gpd.GeoDataFrame, list[int]]:
    """rows x cols 100 m cells (UTM), shuffled; returns the frame and the expected reading order of
    its positions (north row first, west to east)."""
    rng = np.random.default_rng(seed)
    cells, expected_rank = [], []
    for r in range(rows):  # r = 0 is the northernmost row
        for c in range(cols):
            dx, dy = rng.uniform(-jitter, jitter, 2)
            x0, y0 = 569_000 + c * 100 + dx, 4_682_000 - r * 100 + dy
            cells.append(shapely.box(x0, y0, x0 + 100, y0 + 100))
            expected_rank.append(r * cols + c)
    perm = rng.permutation(len(cells))
    frame = gpd.GeoDataFrame({"rank": np.array(expected_rank)[perm]}, geometry=[cells[i] for i in perm], crs="EPSG:32651")
    frame.index = frame.index * 10 + 7
    expected = list(np.argsort(frame["rank"].to_numpy()))
    return frame, expected


@pytest.mark.parametrize("jitter", [0.0, 20.0])
def test_reading_order_rows_north_to_south_west_to_east(jitter: float) -> None:
    frame, expected = grid_of_cells(4, 5, jitter=jitter)
    order = reading_order(frame.geometry)
    assert order.dtype == np.int64
    assert order.tolist() == expected
    assert frame.iloc[order]["rank"].tolist() == list(range(20))


def test_reading_order_irregular_rows_and_lonlat() -> None:
    # two rows of different-sized grids, in lon/lat
    frame, expected = grid_of_cells(2, 3, jitter=10.0, seed=3)
    lonlat = frame.to_crs("EPSG:4326")
    assert reading_order(lonlat).tolist() == expected


def test_reading_order_deterministic_ties_and_empties() -> None:
    same = shapely.box(0, 0, 10, 10)
    frame = gpd.GeoDataFrame(geometry=[same, shapely.Polygon(), same, None, shapely.box(20, 0, 30, 10)], crs="EPSG:32651")
    assert reading_order(frame.geometry).tolist() == [0, 2, 4, 1, 3]
    assert reading_order(frame.geometry.iloc[:0]).tolist() == []


def test_reading_order_needs_crs() -> None:
    with pytest.raises(CRSError):
        reading_order(fx.no_crs().geometry)


def test_grid_codes() -> None:
    frame, _ = grid_of_cells(3, 4, jitter=15.0)
    codes = grid_codes(frame, village_code=VILLAGE)
    assert codes.index.equals(frame.index)
    assert codes.name == "grid_code"
    assert all(len(c) == 15 and c.startswith(VILLAGE) for c in codes)
    seq = codes.str[-3:].astype(int)
    assert (seq.to_numpy() == frame["rank"].to_numpy() + 1).all()
    assert codes.is_unique
    assert all(is_valid_grid_code(c) for c in codes)
    assert grid_codes(frame.iloc[:0], village_code=VILLAGE).empty


@pytest.mark.parametrize("bad", ["21120200120", "2112020012011", "21120200120a", "２１１２０２００１２０１", 211202001201])
def test_grid_codes_rejects_bad_village_codes(bad: object) -> None:
    frame, _ = grid_of_cells(1, 2)
    with pytest.raises(ValueError, match="12 digits"):
        grid_codes(frame, village_code=bad)  # type: ignore[arg-type]


def test_grid_codes_rejects_more_than_999() -> None:
    frame = gpd.GeoDataFrame(geometry=shapely.points(np.arange(1000), np.zeros(1000)), crs="EPSG:32651")
    with pytest.raises(ValueError, match="999"):
        grid_codes(frame, village_code=VILLAGE)
    assert grid_codes(frame.iloc[:999], village_code=VILLAGE).iloc[-1].endswith("999")


@pytest.mark.parametrize(
    ("code", "kind"),
    [("211202001", "street"), ("211202099201", "street"), ("211202100", "town"), ("211202199001", "town"),
     ("211202200", "township"), ("211202399", "township")],
)
def test_township_kind(code: str, kind: str) -> None:
    assert township_kind(code) == kind


@pytest.mark.parametrize("code", ["211202000", "211202400", "21120201", "21120200a", ""])
def test_township_kind_errors(code: str) -> None:
    with pytest.raises(ValueError):
        township_kind(code)


@pytest.mark.parametrize(
    ("code", "kind"),
    [("211202001001", "community"), ("211202001199", "community"), ("211202201200", "village"),
     ("211202201399007", "village")],
)
def test_village_kind(code: str, kind: str) -> None:
    assert village_kind(code) == kind


@pytest.mark.parametrize("code", ["211202001000", "211202001400", "21120200120", "211202001x01"])
def test_village_kind_errors(code: str) -> None:
    with pytest.raises(ValueError):
        village_kind(code)


@pytest.mark.parametrize(
    ("code", "ok"),
    [("211200", True), ("211202", True), ("110101", True), ("429004", True), ("210000", False),
     ("991200", False), ("21120", False), ("2112021", False), ("21120a", False), (211202, False), (None, False)],
)
def test_is_valid_county_code(code: object, ok: bool) -> None:
    assert is_valid_county_code(code) is ok


@pytest.mark.parametrize(
    ("code", "ok"),
    [("211202001201007", True), ("211200100001001", True), ("211202001201000", False),
     ("211202400201007", False), ("211202001400007", False), ("991202001201007", False),
     ("21120200120100", False), ("2112020012010071", False), (211202001201007, False)],
)
def test_is_valid_grid_code(code: object, ok: bool) -> None:
    assert is_valid_grid_code(code) is ok


@pytest.mark.parametrize(
    ("s", "ok"),
    [("34020000001320000001", True), ("21120200001310000123", True), ("3402000000132000000", False),
     ("340200000013200000011", False), ("3402000000132000000a", False), ("３４020000001320000001", False),
     (34020000001320000001, False), (None, False)],
)
def test_is_valid_gbt28181_id(s: object, ok: bool) -> None:
    assert is_valid_gbt28181_id(s) is ok
