from __future__ import annotations

from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from geopandas.testing import assert_geodataframe_equal, assert_geoseries_equal

from geo.audit import CODES, ERROR, WARNING, AuditReport, Finding, audit_grids, recount
from geo.errors import CRSError
from tests.fixtures import drafts as fx


def run(name: str, **overrides: Any) -> tuple[fx.Draft, AuditReport]:
    draft = fx.CATALOGUE[name]()
    options = {**fx.options(name), **overrides}
    report = audit_grids(draft.grids, parent=draft.parent, buildings=draft.buildings, **options)
    return draft, report


def only(report: AuditReport, code: str) -> list[Finding]:
    return [f for f in report.findings if f.code == code]


def one(report: AuditReport, code: str) -> Finding:
    found = only(report, code)
    assert len(found) == 1, report.summary()
    return found[0]


def in_utm(geometry: Any, crs: Any) -> Any:
    return gpd.GeoSeries([geometry], crs=crs).to_crs(fx.UTM).iloc[0]


def same_place(geometry: Any, expected: Any, *, crs: Any = fx.UTM, tolerance_m2: float = 1e-3) -> bool:
    """``geometry`` (in ``crs``) covers the same ground as ``expected`` (in UTM), within a tolerance."""
    return bool(in_utm(geometry, crs).symmetric_difference(expected).area < tolerance_m2)


def without_crs(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(frame.drop(columns="geometry"), geometry=list(frame.geometry), crs=None)


# --- the clean draft and the catalogue ---------------------------------------------------------


@pytest.mark.parametrize("name", ["clean", "clean_lonlat", "lonlat_grids_metric_parent"])
def test_clean_draft_has_no_findings(name: str) -> None:
    _, report = run(name)
    assert report.findings == (), report.summary()
    assert report.ok and report.errors == () and report.warnings == ()
    assert report.counts_by_code() == {}


def test_clean_draft_without_optional_inputs() -> None:
    draft = fx.clean()
    report = audit_grids(draft.grids, parent=draft.parent)  # no buildings, band or staff: geometry only
    assert report.findings == ()


def test_parent_as_frame_of_several_rows_in_another_crs() -> None:
    draft = fx.clean()
    halves = gpd.GeoDataFrame(geometry=[fx.box(0, 0, 150, 300), fx.box(150, 0, 300, 300)], crs=fx.UTM)
    report = audit_grids(
        draft.grids, parent=halves.to_crs(fx.LONLAT), buildings=draft.buildings, **fx.options("clean")
    )
    assert report.findings == (), report.summary()


@pytest.mark.parametrize("name", sorted(fx.CATALOGUE))
def test_catalogue_case_reports_exactly_its_codes(name: str) -> None:
    draft = fx.CATALOGUE[name]()
    grids_before = draft.grids.copy()
    buildings_before = None if draft.buildings is None else draft.buildings.copy()
    parent_before = draft.parent.copy() if isinstance(draft.parent, gpd.GeoSeries) else draft.parent
    parent_wkb = None if isinstance(draft.parent, gpd.GeoSeries) else shapely.to_wkb(draft.parent)

    report = audit_grids(draft.grids, parent=draft.parent, buildings=draft.buildings, **fx.options(name))

    assert report.codes() == set(draft.expected_codes), report.summary()
    assert report.ok == (not any(CODES[c] == ERROR for c in draft.expected_codes))
    for finding in report.findings:
        assert finding.severity == CODES[finding.code]
        assert finding.message
        assert finding.area_m2 is None or finding.area_m2 > 0
    assert sum(report.counts_by_code().values()) == len(report.findings)
    # the findings are ordered by code as listed in CODES
    order = [list(CODES).index(f.code) for f in report.findings]
    assert order == sorted(order)
    # every located finding lies in (or just beside) the parent unit, in the grids' CRS
    bounds = gpd.GeoSeries([fx.parent_polygon()], crs=fx.UTM).to_crs(draft.grids.crs).total_bounds
    margin = (bounds[2] - bounds[0]) * 0.2
    for finding in report.findings:
        if finding.geometry is None:
            continue
        x0, y0, x1, y1 = finding.geometry.bounds
        assert x0 >= bounds[0] - margin and x1 <= bounds[2] + margin, finding
        assert y0 >= bounds[1] - margin and y1 <= bounds[3] + margin, finding
    # inputs untouched (not even prepared)
    assert not shapely.is_prepared(np.asarray(draft.grids.geometry.values, dtype=object)).any()
    if draft.buildings is not None:
        assert not shapely.is_prepared(np.asarray(draft.buildings.geometry.values, dtype=object)).any()
    assert_geodataframe_equal(draft.grids, grids_before)
    if buildings_before is not None:
        assert draft.buildings is not None
        assert_geodataframe_equal(draft.buildings, buildings_before)
    if parent_wkb is None:
        assert_geoseries_equal(draft.parent, parent_before)
    else:
        assert shapely.to_wkb(draft.parent) == parent_wkb


def test_catalogue_exercises_every_code() -> None:
    exercised = set().union(*(factory().expected_codes for factory in fx.CATALOGUE.values()))
    assert exercised == set(CODES)
    assert set(CODES.values()) == {ERROR, WARNING}


def test_audit_is_deterministic() -> None:
    _, first = run("many_defects")
    _, second = run("many_defects")
    assert [(f.code, f.message) for f in first.findings] == [(f.code, f.message) for f in second.findings]


# --- each defect: numbers in the message, geometry where the defect is --------------------------------


def test_gap_is_located_and_measured() -> None:
    _, report = run("gap")
    gap = one(report, "gap")
    assert gap.area_m2 == pytest.approx(1000.0)
    assert "1,000 m²" in gap.message
    assert gap.grids == (fx.CODES[0], fx.CODES[3])  # grid 1 east of the strip, grid 4 south of it
    assert same_place(gap.geometry, fx.box(0, 200, 10, 300))


def test_gap_with_lonlat_grids_and_metric_parent_is_measured_in_metres() -> None:
    draft, report = run("gap_lonlat_grids_metric_parent")
    gap = one(report, "gap")
    assert gap.area_m2 == pytest.approx(1000.0, rel=1e-4)
    assert gap.geometry is not None
    x0, y0, x1, y1 = gap.geometry.bounds  # in the grids' CRS: lon/lat
    assert 123.8 < x0 < x1 < 123.9 and 42.2 < y0 < y1 < 42.4
    assert same_place(gap.geometry, fx.box(0, 200, 10, 300), crs=draft.grids.crs, tolerance_m2=0.01)


def test_sliver_below_min_area_is_ignored_but_found_with_a_smaller_threshold() -> None:
    _, report = run("sliver_gap")
    assert report.findings == ()
    _, report = run("sliver_gap", min_area_m2=0.1)
    gap = one(report, "gap")
    assert gap.area_m2 == pytest.approx(0.5, rel=1e-3)
    assert "0.5 m²" in gap.message


def test_overlap_is_per_pair() -> None:
    _, report = run("overlap")
    overlap = one(report, "overlap")
    assert overlap.grids == (fx.CODES[0], fx.CODES[1])
    assert overlap.area_m2 == pytest.approx(1000.0)
    assert "overlap by 1,000 m²" in overlap.message
    assert same_place(overlap.geometry, fx.box(90, 200, 100, 300))


def test_outside_parent() -> None:
    _, report = run("outside_parent")
    outside = one(report, "outside_parent")
    assert outside.grids == (fx.CODES[2],)
    assert outside.area_m2 == pytest.approx(1000.0)
    assert "1,000 m²" in outside.message and "9% of the grid" in outside.message
    assert same_place(outside.geometry, fx.box(300, 200, 310, 300))


def test_duplicate_code() -> None:
    _, report = run("duplicate_code")
    dup = one(report, "duplicate_code")
    assert dup.grids == (fx.CODES[0],)
    assert "used by 2 grids" in dup.message and "101" in dup.message and "102" in dup.message
    assert same_place(dup.geometry, fx.square(1).union(fx.square(2)))


def test_bowtie_is_located_repaired_and_still_audited() -> None:
    _, report = run("bowtie")
    invalid = one(report, "invalid_geometry")
    assert invalid.grids == (fx.CODES[4],)
    assert "Self-intersection" in invalid.message
    assert invalid.geometry is not None and invalid.geometry.distance(fx.point(150, 150)) < 1e-6
    gaps = only(report, "gap")
    assert [g.area_m2 for g in gaps] == [pytest.approx(2500.0)] * 2
    north, south = sorted(gaps, key=lambda g: -float(shapely.get_coordinates(g.geometry)[:, 1].max()))
    assert same_place(
        north.geometry, shapely.Polygon([fx.point(100, 200), fx.point(200, 200), fx.point(150, 150)])
    )
    assert same_place(
        south.geometry, shapely.Polygon([fx.point(100, 100), fx.point(200, 100), fx.point(150, 150)])
    )
    assert set(north.grids) == {fx.CODES[1], fx.CODES[4]}  # grids 1 and 3 touch its corners only
    assert {f.buildings for f in only(report, "building_unassigned")} == {("5-1",), ("5-2",)}
    band = one(report, "out_of_band")
    assert "48 households" in band.message and "under the band 80–120 by 32" in band.message


@pytest.mark.parametrize(("name", "word"), [("empty_geometry", "empty"), ("null_geometry", "null")])
def test_missing_geometry(name: str, word: str) -> None:
    _, report = run(name)
    missing = one(report, "empty_geometry")
    assert missing.grids == (fx.CODES[8],) and word in missing.message and missing.geometry is None
    gap = one(report, "gap")
    assert gap.area_m2 == pytest.approx(10_000.0)
    assert same_place(gap.geometry, fx.square(9))
    assert len(only(report, "building_unassigned")) == 4
    assert not only(report, "empty_grid")  # a grid without geometry is not also "empty"


@pytest.mark.parametrize(
    ("name", "block"),
    [("non_contiguous", fx.box(180, 280, 200, 300)), ("touching_at_point", fx.box(100, 180, 120, 200))],
)
def test_non_contiguous_grid_points_at_its_detached_part(name: str, block: Any) -> None:
    _, report = run(name)
    finding = one(report, "non_contiguous")
    assert finding.grids == (fx.CODES[0],)
    assert finding.area_m2 == pytest.approx(400.0)
    assert "2 separate parts" in finding.message and "400 m²" in finding.message
    assert same_place(finding.geometry, block)


def test_hole_is_a_gap_unless_filled() -> None:
    _, report = run("hole_in_grid")
    gap = one(report, "gap")
    assert gap.area_m2 == pytest.approx(400.0) and gap.grids == (fx.CODES[4],)
    assert same_place(gap.geometry, fx.box(140, 135, 160, 155))
    shed = one(report, "building_unassigned")
    assert shed.buildings == ("shed",) and "5 households" in shed.message
    assert same_place(shed.geometry, fx.box(145, 140, 155, 150))

    _, report = run("hole_filled")
    empty = one(report, "empty_grid")
    assert empty.grids == (fx.NEW_CODE,) and "1 building, none with households" in empty.message


def test_dedicated_grid_does_not_fill_a_gap() -> None:
    _, report = run("school_cut_out")
    gap = one(report, "gap")
    assert gap.area_m2 == pytest.approx(27 * 28)
    assert set(gap.grids) == {fx.CODES[4], fx.CODES[5]}
    assert one(report, "building_unassigned").buildings == ("school",)
    assert "0 households" in one(report, "building_unassigned").message


def test_building_in_two_grids() -> None:
    _, report = run("building_in_two")
    assert one(report, "overlap").area_m2 == pytest.approx(3500.0)
    found = only(report, "building_in_two")
    assert sorted(f.buildings for f in found) == [("1-2",), ("1-4",)]
    for finding in found:
        assert finding.grids == (fx.CODES[0], fx.CODES[1])
        assert f"counted in {fx.CODES[0]}" in finding.message


def test_building_split_by_a_boundary() -> None:
    _, report = run("building_split")
    found = sorted(only(report, "building_split"), key=lambda f: f.buildings)
    assert [f.buildings for f in found] == [("4-2",), ("4-4",)]
    for finding, j in zip(found, (1, 3), strict=True):
        assert finding.grids == (fx.CODES[3], fx.CODES[4])
        assert finding.area_m2 == pytest.approx(60.0)
        assert "25%" in finding.message and "60 m²" in finding.message
        assert same_place(finding.geometry, fx.house(4, j))


@pytest.mark.parametrize(
    ("name", "k", "words"),
    [
        ("under_band", 7, ["43 households", "under the band 80–120 by 37"]),
        ("over_band", 8, ["145 households", "over the band 80–120 by 25"]),
        ("band_override", 1, ["100 households", "over the band 30–50 by 50"]),
        ("households_column_only", 4, ["60 households", "under the band 80–120 by 20"]),
    ],
)
def test_out_of_band(name: str, k: int, words: list[str]) -> None:
    _, report = run(name)
    finding = one(report, "out_of_band")
    assert finding.grids == (fx.CODES[k - 1],)
    for word in words:
        assert word in finding.message, finding.message
    assert same_place(finding.geometry, fx.square(k))


def test_oversized_building_replaces_out_of_band() -> None:
    _, report = run("oversized_building")
    finding = one(report, "oversized_building")
    assert finding.grids == (fx.CODES[8],) and finding.buildings == ("tower",)
    assert "150 households" in finding.message and "by 30" in finding.message


@pytest.mark.parametrize(
    ("name", "words"), [("empty_grid", "no households and no buildings"), ("zero_households", "4 buildings")]
)
def test_empty_grid(name: str, words: str) -> None:
    _, report = run(name)
    finding = one(report, "empty_grid")
    assert finding.grids == (fx.CODES[8],) and words in finding.message


def test_no_worker() -> None:
    _, report = run("no_worker")
    assert one(report, "no_worker").grids == (fx.CODES[4],)
    _, report = run("no_worker", staffed=None)
    assert report.findings == ()


def test_new_grids_get_fallback_labels() -> None:
    _, report = run("new_grids_without_code")
    assert sorted(f.grids for f in only(report, "no_worker")) == [("#200",), ("#201",)]
    bands = {f.grids[0]: f.message for f in only(report, "out_of_band")}
    assert set(bands) == {fx.CODES[8], "#200", "#201"}
    assert "40 households" in bands[fx.CODES[8]] and "30 households" in bands["#200"]
    assert not only(report, "duplicate_code")  # two blank codes are not a duplicate


def test_dedicated_overlap_and_outside() -> None:
    _, report = run("dedicated_overlap")
    finding = one(report, "dedicated_overlap")
    assert finding.grids == (fx.SCHOOL, fx.HOSPITAL) and finding.area_m2 == pytest.approx(280.0)
    assert "280 m²" in finding.message
    assert same_place(finding.geometry, fx.box(202, 130, 212, 158))

    _, report = run("dedicated_outside")
    finding = one(report, "dedicated_overlap")
    assert finding.grids == (fx.MARKET,) and finding.area_m2 == pytest.approx(600.0)
    assert "600 m²" in finding.message and "outside" in finding.message
    assert same_place(finding.geometry, fx.box(300, 20, 320, 50))


def test_many_defects_counts() -> None:
    _, report = run("many_defects")
    assert report.counts_by_code() == {"duplicate_code": 1, "outside_parent": 1, "gap": 1, "no_worker": 1}
    assert not report.ok
    assert {f.code for f in report.errors} == {"duplicate_code", "outside_parent", "gap"}
    assert [f.code for f in report.warnings] == ["no_worker"]
    assert "NOT PUBLISHABLE: 3 error(s), 1 warning(s)" in report.summary()


# --- the report as a frame ---------------------------------------------------------------------------------


def test_to_frame() -> None:
    draft, report = run("building_in_two")
    frame = report.to_frame()
    assert list(frame.columns) == ["code", "severity", "grids", "message", "area_m2", "geometry"]
    assert frame.crs == draft.grids.crs
    assert len(frame) == len(report.findings)
    assert frame["code"].tolist() == [f.code for f in report.findings]
    assert f"{fx.CODES[0]}, {fx.CODES[1]}" in frame["grids"].tolist()
    assert frame["area_m2"].dtype == np.float64

    draft, report = run("clean_lonlat")
    empty = report.to_frame()
    assert len(empty) == 0 and empty.crs == draft.grids.crs
    assert list(empty.columns) == ["code", "severity", "grids", "message", "area_m2", "geometry"]

    _, report = run("no_worker")
    assert report.to_frame()["area_m2"].isna().all()


def test_to_frame_geometries_are_in_the_input_crs() -> None:
    draft, report = run("gap_lonlat_grids_metric_parent")
    frame = report.to_frame()
    assert frame.crs == draft.grids.crs
    assert same_place(frame.geometry.iloc[0], fx.box(0, 200, 10, 300), crs=frame.crs, tolerance_m2=0.01)


# --- recount ---------------------------------------------------------------------------------------------------


def test_recount_clean_draft() -> None:
    grids, buildings = fx.clean_grids(), fx.clean_buildings()
    grids_before, buildings_before = grids.copy(), buildings.copy()
    counted, assignment = recount(grids.drop(columns="households"), buildings)
    assert counted.index.equals(grids.index) and counted.crs == grids.crs
    expected = [sum(fx.HOUSEHOLDS[k]) for k in range(1, 10)] + [0]
    assert counted["households"].tolist() == expected
    # the school counts in grid 5 and in its own dedicated grid
    assert counted["buildings"].tolist() == [4, 4, 4, 4, 5, 4, 4, 4, 4, 1]
    assert assignment.index.equals(buildings.index)
    assert assignment.loc[fx.building_label("3-2")] == fx.CODES[2]
    assert assignment.loc[fx.building_label("school")] == fx.CODES[4]  # base grid, not the dedicated one
    assert_geodataframe_equal(grids, grids_before)
    assert_geodataframe_equal(buildings, buildings_before)


def test_recount_reprojects_buildings() -> None:
    grids, buildings = fx.clean_grids(), fx.clean_buildings()
    counted_utm, assigned_utm = recount(grids, buildings)
    counted_ll, assigned_ll = recount(grids.to_crs(fx.LONLAT), buildings.to_crs("EPSG:4490"))
    assert counted_ll["households"].tolist() == counted_utm["households"].tolist()
    pd.testing.assert_series_equal(assigned_ll, assigned_utm)


def test_recount_unassigned_and_ambiguous_buildings() -> None:
    draft = fx.empty_geometry()
    assert draft.buildings is not None
    counted, assignment = recount(draft.grids, draft.buildings)
    assert counted.loc[fx.label(9), "households"] == 0
    assert assignment.loc[fx.building_label("9-1")] is None

    draft = fx.building_in_two()
    assert draft.buildings is not None
    counted, assignment = recount(draft.grids, draft.buildings)
    assert assignment.loc[fx.building_label("1-2")] == fx.CODES[0]  # holds all of the footprint
    assert counted.loc[fx.label(1), "households"] == sum(fx.HOUSEHOLDS[1])
    assert counted.loc[fx.label(2), "households"] == sum(fx.HOUSEHOLDS[2])

    draft = fx.new_grids_without_code()
    assert draft.buildings is not None
    _, assignment = recount(draft.grids, draft.buildings)
    assert assignment.loc[fx.building_label("9-4")] == "#200"


def test_recount_awkward_buildings() -> None:
    draft = fx.awkward_buildings()
    assert draft.buildings is not None
    counted, assignment = recount(draft.grids, draft.buildings)
    assert assignment.loc[2000] is None  # null footprint
    assert assignment.loc[2001] == fx.CODES[4]  # bow-tie footprint, repaired
    assert assignment.loc[2003] == fx.CODES[4]  # a point
    assert assignment.loc[2004] is None  # the neighbour's house
    assert counted.loc[fx.label(5), "households"] == sum(fx.HOUSEHOLDS[5]) + 2 + 0 + 1


# --- errors ------------------------------------------------------------------------------------------------------


def test_missing_crs_raises() -> None:
    draft = fx.clean()
    assert draft.buildings is not None
    with pytest.raises(CRSError):
        audit_grids(without_crs(draft.grids), parent=draft.parent)
    with pytest.raises(CRSError):
        audit_grids(draft.grids, parent=draft.parent, buildings=without_crs(draft.buildings))
    with pytest.raises(CRSError):
        audit_grids(draft.grids, parent=gpd.GeoSeries([draft.parent]))
    with pytest.raises(CRSError):
        recount(without_crs(draft.grids), draft.buildings)
    with pytest.raises(CRSError):
        recount(draft.grids, without_crs(draft.buildings))


def test_bad_arguments() -> None:
    draft = fx.clean()
    with pytest.raises(ValueError, match="band"):
        audit_grids(draft.grids, parent=draft.parent, band=(120, 80))
    with pytest.raises(ValueError, match="min_area"):
        audit_grids(draft.grids, parent=draft.parent, min_area_m2=-1)
    with pytest.raises(TypeError):
        audit_grids(pd.DataFrame(draft.grids), parent=draft.parent)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        audit_grids(draft.grids, parent=None)
    with pytest.raises(ValueError, match="empty"):
        audit_grids(draft.grids, parent=shapely.Polygon())
    with pytest.raises(TypeError):
        audit_grids(draft.grids, parent=draft.parent, staffed="211202001201001")
    odd = draft.grids.copy()
    odd.loc[fx.label(1), "kind"] = "special"
    with pytest.raises(ValueError, match="kind"):
        audit_grids(odd, parent=draft.parent)
    assert draft.buildings is not None
    with pytest.raises(ValueError, match="households"):
        audit_grids(draft.grids, parent=draft.parent, buildings=draft.buildings.drop(columns="households"))


def test_missing_kind_column_means_all_base() -> None:
    draft = fx.clean()
    grids = draft.grids.drop(columns="kind")
    report = audit_grids(grids, parent=draft.parent, buildings=draft.buildings, **fx.options("clean"))
    # the school grid is now a base grid overlapping grids 5 and 6 and holding no households
    assert report.codes() == {"overlap", "empty_grid", "building_in_two"}


# --- speed --------------------------------------------------------------------------------------------------------


def big_village(
    n_side: int = 10, n_buildings: int = 3000, seed: int = 7
) -> tuple[gpd.GeoDataFrame, Any, gpd.GeoDataFrame]:
    rng = np.random.default_rng(seed)
    size = 100.0
    xs, ys = np.meshgrid(np.arange(n_side) * size, np.arange(n_side) * size)
    cells = shapely.box(
        fx.X0 + xs.ravel(), fx.Y0 + ys.ravel(), fx.X0 + xs.ravel() + size, fx.Y0 + ys.ravel() + size
    )
    grids = gpd.GeoDataFrame(
        {"code": [f"{fx.PARENT_CODE}{k + 1:03d}" for k in range(len(cells))], "kind": "base"},
        geometry=cells,
        crs=fx.UTM,
    )
    xy = rng.uniform(2.0, n_side * size - 12.0, (n_buildings, 2)) + np.array([fx.X0, fx.Y0])
    footprints = shapely.box(xy[:, 0], xy[:, 1], xy[:, 0] + 10.0, xy[:, 1] + 8.0)
    buildings = gpd.GeoDataFrame(
        {"id": [f"b{i}" for i in range(n_buildings)], "households": rng.integers(0, 7, n_buildings)},
        geometry=footprints,
        crs=fx.UTM,
    )
    parent = fx.box(0, 0, n_side * size, n_side * size)
    return grids, parent, buildings


def test_village_of_100_grids_and_3000_buildings() -> None:
    """Its speed is measured in bench/planning_speed.py, not asserted here."""
    grids, parent, buildings = big_village()
    staffed = set(grids["code"])
    report = audit_grids(grids, parent=parent, buildings=buildings, band=(80, 120), staffed=staffed)
    # random houses straddle boundaries: splits, but no coverage errors
    assert report.codes() <= {"building_split", "out_of_band"}
    counted, _ = recount(grids, buildings)
    assert counted["households"].sum() == buildings["households"].sum()
