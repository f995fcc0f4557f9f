"""Lineage between grid versions, code assignment at publish time, and the before/after diff."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geo.edit import merge_grids, replace_grids, reshape_grid, split_grid
from geo.errors import CRSError
from geo.lineage import assign_codes, diff, lineage
from tests.geo.test_edit import LONLAT, UTM, VILLAGE, X0, Y0, Village, make_village, strips, vline


@pytest.fixture(params=[UTM, LONLAT])
def village(request: pytest.FixtureRequest) -> Village:
    return make_village(request.param)


def code(seq: int) -> str:
    return f"{VILLAGE}{seq:03d}"


def rows_for(lin: pd.DataFrame, old: object) -> pd.DataFrame:
    return lin[lin["old"] == old].sort_values("new").reset_index(drop=True)


def split_north_west(v: Village, x: float = X0 + 50) -> gpd.GeoDataFrame:
    """Grid 1 (…001) split by a north–south line at ``x`` into 8 (west) and 9 (east)."""
    return split_grid(v.grids, 1, v.g(vline(x, Y0 + 95, Y0 + 205)), buildings=v.buildings)


# --- lineage ---------------------------------------------------------------------------------


def test_split_one_to_two_household_shares(village: Village) -> None:
    out = split_north_west(village)
    lin = lineage(village.grids, out, buildings=village.buildings, old_key="code", new_key="key")
    assert list(lin.columns) == [
        "old", "new", "households", "share_of_old", "share_of_new", "area_m2", "area_share_of_old"
    ]
    first = rows_for(lin, code(1))
    assert list(first["new"]) == [8, 9]
    assert list(first["households"]) == [20, 20]  # two houses of 10 on each side of x = 50 m
    assert first["share_of_old"].sum() == pytest.approx(1.0)
    assert list(first["share_of_new"]) == [1.0, 1.0]
    assert first["area_share_of_old"].sum() == pytest.approx(1.0, rel=1e-6)
    assert first["area_m2"].sum() == pytest.approx(10_000, rel=1e-4)
    # the other grids map one to one: no spurious pairs across shared edges
    for seq, key in zip([2, 3, 4, 5, 6], [2, 3, 4, 5, 6], strict=True):
        row = rows_for(lin, code(seq))
        assert list(row["new"]) == [key]
        assert row["share_of_old"].iloc[0] == 1.0 and row["share_of_new"].iloc[0] == 1.0
    # the dedicated school pairs only with itself, and holds no households
    school = rows_for(lin, code(901))
    assert list(school["new"]) == [7]
    assert school["households"].iloc[0] == 0 and np.isnan(school["share_of_old"].iloc[0])
    assert school["area_m2"].iloc[0] == pytest.approx(900, rel=1e-4)
    assert lin["households"].sum() == 240


def test_merge_two_to_one(village: Village) -> None:
    out = merge_grids(village.grids, [1, 2])
    lin = lineage(village.grids, out, buildings=village.buildings, old_key="code", new_key="key")
    merged = lin[lin["new"] == 8]
    assert sorted(merged["old"]) == [code(1), code(2)]
    assert list(merged["share_of_old"]) == [1.0, 1.0]
    assert merged["share_of_new"].sum() == pytest.approx(1.0)
    assert list(merged["households"]) == [40, 40]


def test_lineage_without_buildings_uses_area_shares(village: Village) -> None:
    out = split_grid(village.grids, 1, village.g(vline(X0 + 30, Y0 + 95, Y0 + 205)))
    lin = lineage(village.grids, out, old_key="code", new_key="key")
    first = rows_for(lin, code(1))
    assert first["households"].isna().all()
    assert list(first["share_of_old"].round(4)) == [0.3, 0.7]
    assert list(first["share_of_new"].round(6)) == [1.0, 1.0]
    assert list(first["area_share_of_old"].round(4)) == [0.3, 0.7]


def test_lineage_across_crs_and_small_overlaps() -> None:
    v = make_village(UTM)
    out = reshape_grid(v.grids, 1, shapely.box(X0, Y0 + 100, X0 + 100.5, Y0 + 200), parent=v.parent).to_crs(LONLAT)
    lin = lineage(v.grids, out, old_key="code", new_key="key")
    second = rows_for(lin, code(2))
    assert list(second["new"]) == [1, 2]  # 50 m² of grid 2 went to grid 1
    assert second["area_m2"].iloc[0] == pytest.approx(50, rel=1e-3)
    assert (lin["area_m2"] > 1.0).all()


def test_lineage_errors() -> None:
    v = make_village(UTM)
    with pytest.raises(ValueError, match="no 'ref' column"):
        lineage(v.grids, v.grids, new_key="ref")
    dup = v.grids.assign(code=code(1))
    with pytest.raises(ValueError, match="unique"):
        lineage(dup, v.grids)
    with pytest.raises(ValueError, match="no 'code'"):
        lineage(v.grids.assign(code=None), v.grids)
    with pytest.raises(CRSError):
        lineage(v.grids.set_crs(None, allow_override=True), v.grids)
    with pytest.raises(CRSError):
        lineage(v.grids, v.grids, buildings=v.buildings.set_crs(None, allow_override=True))


# --- assign_codes ----------------------------------------------------------------------------


def test_unchanged_grids_keep_codes_and_new_ones_follow_the_max(village: Village) -> None:
    out = split_north_west(village)
    codes = assign_codes(out, previous=village.grids, unit_code=VILLAGE)
    assert codes.index.equals(out.index)
    by_key = dict(zip(out["key"], codes, strict=True))
    assert [by_key[k] for k in (2, 3, 4, 5, 6, 7)] == [code(s) for s in (2, 3, 4, 5, 6, 901)]
    assert by_key[8] == code(7) and by_key[9] == code(8)  # west first, after the largest (006)


def test_codes_never_reuse_used_ones(village: Village) -> None:
    out = split_north_west(village)
    used = {code(12), "211202001202099", "None", "nan", code(950)}
    codes = assign_codes(out, previous=village.grids, unit_code=VILLAGE, used=used)
    by_key = dict(zip(out["key"], codes, strict=True))
    assert by_key[8] == code(13) and by_key[9] == code(14)
    assert code(1) not in set(codes)  # the split grid's code is retired with it


def test_codes_follow_reading_order_across_rows(village: Village) -> None:
    out = split_grid(village.grids, 5, village.g(vline(X0 + 150, Y0 - 5, Y0 + 105)))  # south row: 8, 9
    out = replace_grids(out, [1, 2], [village.g(p) for p in strips(3)])  # north row: 10, 11, 12
    codes = dict(zip(out["key"], assign_codes(out, previous=village.grids, unit_code=VILLAGE), strict=True))
    assert [codes[k] for k in (10, 11, 12, 8, 9)] == [code(s) for s in (7, 8, 9, 10, 11)]


def test_dedicated_grids_use_their_range(village: Village) -> None:
    extra = village.grids.iloc[[6]].assign(key=8, code=None, purpose="market")
    extra = extra.set_geometry([village.g(shapely.box(X0 + 220, Y0 + 20, X0 + 260, Y0 + 60))], crs=village.grids.crs)
    draft = pd.concat([village.grids, extra], ignore_index=True)
    codes = assign_codes(draft, previous=village.grids, unit_code=VILLAGE)
    assert list(codes) == [code(s) for s in (1, 2, 3, 4, 5, 6, 901, 902)]


def test_codes_of_reshaped_grids(village: Village) -> None:
    big = reshape_grid(village.grids, 1, village.g(shapely.box(X0, Y0 + 100, X0 + 120, Y0 + 200)), parent=village.parent)
    codes = assign_codes(big, previous=village.grids, unit_code=VILLAGE)
    assert list(codes[:2]) == [code(7), code(8)]  # IoU 0.83 and 0.8: different grids now
    assert list(codes[2:]) == [code(s) for s in (3, 4, 5, 6, 901)]
    small = reshape_grid(village.grids, 1, village.g(shapely.box(X0, Y0 + 100, X0 + 100.5, Y0 + 200)), parent=village.parent)
    assert list(assign_codes(small, previous=village.grids, unit_code=VILLAGE)) == list(village.grids["code"])


def test_a_grid_recreated_with_its_old_shape_gets_its_code_back(village: Village) -> None:
    merged = merge_grids(village.grids, [1, 2])
    back = split_grid(merged, 8, village.g(vline(X0 + 100, Y0 + 95, Y0 + 205)))
    assert back["code"].iloc[:2].isna().all()
    codes = assign_codes(back, previous=village.grids, unit_code=VILLAGE)
    assert list(codes[:2]) == [code(1), code(2)]


def test_previous_codes_of_another_unit_or_kind_are_not_kept(village: Village) -> None:
    previous = village.grids.assign(code=[f"211202001202{s:03d}" for s in (1, 2, 3, 4, 5, 6, 901)])
    codes = assign_codes(village.grids.assign(code=None), previous=previous, unit_code=VILLAGE)
    assert list(codes) == [code(s) for s in (1, 2, 3, 4, 5, 6, 901)]  # fresh, in reading order
    swapped = village.grids.assign(kind=["dedicated"] + ["base"] * 6)  # grid 1 is now dedicated
    codes = assign_codes(swapped, previous=village.grids, unit_code=VILLAGE)
    assert codes.iloc[0] == code(902) and codes.iloc[6] == code(7)


def test_codes_wrap_to_unused_numbers_then_run_out(village: Village) -> None:
    out = split_north_west(village)
    codes = assign_codes(out, previous=village.grids, unit_code=VILLAGE, used={code(899)})
    assert list(codes[:2]) == [code(7), code(8)]  # nothing after 899: the lowest never-used numbers
    everything = {code(s) for s in range(1, 900)}
    with pytest.raises(ValueError, match="more than 999"):
        assign_codes(out, previous=village.grids, unit_code=VILLAGE, used=everything)
    with pytest.raises(ValueError, match="12-digit"):
        assign_codes(out, previous=village.grids, unit_code="2112020012")


# --- diff ------------------------------------------------------------------------------------


def test_diff_statuses(village: Village) -> None:
    out = split_north_west(village)
    out = reshape_grid(out, 2, village.g(shapely.box(X0 + 100, Y0 + 120, X0 + 200, Y0 + 200)), parent=village.parent)
    d = diff(village.grids, out)
    assert list(d.columns) == ["key", "status", "geometry"]
    assert d.crs == out.crs
    status = dict(zip(d["key"].astype(str), d["status"], strict=True))
    assert status[code(2)] == "changed" and status[code(5)] == "changed"  # grid 5 took the released strip
    assert status[code(3)] == "unchanged" and status[code(4)] == "unchanged"
    assert status[code(901)] == "unchanged"
    assert status[code(1)] == "removed"
    added = d[d["status"] == "added"]
    assert len(added) == 2 and added["key"].isna().all()
    assert list(d["status"])[-1] == "removed"  # removed ones come last, with their old geometry
    assert d.geometry.iloc[-1].equals_exact(village.grids.geometry.iloc[0], tolerance=0.0)


def test_diff_matches_within_tolerance_and_across_crs() -> None:
    v = make_village(UTM)
    nudged = reshape_grid(v.grids, 1, shapely.box(X0, Y0 + 100, X0 + 100.5, Y0 + 200), parent=v.parent)
    d = diff(v.grids, nudged.to_crs(LONLAT))
    assert set(d["status"]) == {"unchanged"}
    assert list(diff(v.grids, nudged, tolerance=0.999)["status"][:2]) == ["changed", "changed"]


# --- all three -------------------------------------------------------------------------------


def test_no_crs_raises_and_inputs_are_not_mutated() -> None:
    v = make_village(LONLAT)
    out = split_north_west(v)
    bare = v.grids.set_crs(None, allow_override=True)
    with pytest.raises(CRSError):
        assign_codes(out, previous=bare, unit_code=VILLAGE)
    with pytest.raises(CRSError):
        diff(bare, out)
    before = [f.copy(deep=True) for f in (v.grids, out, v.buildings)]
    lineage(v.grids, out, buildings=v.buildings, new_key="key")
    assign_codes(out, previous=v.grids, unit_code=VILLAGE)
    diff(v.grids, out)
    for f, b in zip((v.grids, out, v.buildings), before, strict=True):
        pd.testing.assert_frame_equal(pd.DataFrame(f.drop(columns="geometry")), pd.DataFrame(b.drop(columns="geometry")))
        assert all(x.equals_exact(y, tolerance=0.0) for x, y in zip(f.geometry, b.geometry, strict=True))
