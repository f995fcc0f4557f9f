from __future__ import annotations

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely

from geo.crs import to_metric
from geo.validate import Issue, ValidationReport, validate_frame
from tests.fixtures import geometries as fx

POLYGONS = ("Polygon", "MultiPolygon")


def check(frame: gpd.GeoDataFrame, **kwargs: object) -> tuple[gpd.GeoDataFrame, ValidationReport]:
    options: dict[str, object] = {"region": fx.TIELING_REGION, "id_column": "id", "geometry_types": POLYGONS}
    options.update(kwargs)
    return validate_frame(frame, **options)  # type: ignore[arg-type]


def test_good_frame_is_ok_and_new() -> None:
    frame = fx.good_buildings()
    out, report = check(frame)
    assert report.ok and not report.errors and not report.warnings and report.repaired == 0
    assert out is not frame
    assert out.crs.to_epsg() == 4326
    assert list(out.columns) == list(frame.columns)
    assert out.index.equals(frame.index)


@pytest.mark.parametrize("case", sorted(fx.CATALOGUE))
def test_catalogue_expected_errors(case: str) -> None:
    frame = fx.CATALOGUE[case]()
    before = frame.copy()
    out, report = check(frame)
    expected = fx.EXPECTED_ERRORS[case]
    codes = {issue.code for issue in report.errors}
    if expected is None:
        assert report.ok, report.summary()
    else:
        assert not report.ok
        assert expected in codes, report.summary()
    # never mutates, always returns the same rows
    assert frame.geometry.equals(before.geometry) or frame.geometry.isna().all()
    assert len(out) == len(frame)
    assert out.index.equals(frame.index)


def test_bowtie_is_repaired_as_polygonal_warning() -> None:
    frame = fx.bowtie()
    original = frame.geometry.iloc[0]
    out, report = check(frame)
    assert report.ok
    assert report.repaired == 1
    assert [w.code for w in report.warnings] == ["repaired_geometry"]
    assert report.warnings[0].row == frame.index[0]
    assert "bowtie" in report.warnings[0].message  # the id is named
    assert "Self-intersection" in report.warnings[0].message
    fixed = out.geometry.iloc[0]
    assert fixed.is_valid and fixed.geom_type == "MultiPolygon" and fixed.area > 0
    assert frame.geometry.iloc[0].equals(original)  # input untouched


def test_repair_changing_type_is_flagged_for_polygon_only_layers() -> None:
    _, report = check(fx.bowtie(), geometry_types=("Polygon",))
    assert report.ok
    assert {"repaired_geometry", "repair_changed_type"} <= report.codes()


def test_repair_disabled_reports_invalid() -> None:
    frame = fx.bowtie()
    out, report = check(frame, repair=False)
    assert report.repaired == 0
    assert [w.code for w in report.warnings] == ["invalid_geometry"]
    assert not out.geometry.iloc[0].is_valid


def test_sliver_cannot_be_repaired() -> None:
    _, report = check(fx.sliver())
    assert [e.code for e in report.errors] == ["degenerate_geometry"]
    assert report.repaired == 0


def test_valid_awkward_shapes_kept_exactly() -> None:
    for frame in (fx.polygon_with_hole(), fx.multipolygon()):
        out, report = check(frame)
        assert report.ok and not report.warnings
        assert out.geometry.iloc[0].equals_exact(frame.geometry.iloc[0], tolerance=0)


def test_nan_and_inf_reported_per_row() -> None:
    frame = fx.nan_coordinates()
    _, report = check(frame, geometry_types=None)
    rows = {issue.row for issue in report.errors if issue.code == "non_finite_coordinates"}
    assert rows == set(frame.index)


def test_null_and_empty() -> None:
    frame = pd.concat([fx.null_geometry(), fx.empty_polygon(), fx.good_buildings()], ignore_index=True)
    frame = gpd.GeoDataFrame(frame, geometry="geometry", crs=fx.CRS)
    _, report = check(frame)
    assert {(e.row, e.code) for e in report.errors} == {(0, "null_geometry"), (1, "empty_geometry")}
    assert report.error_rows() == [0, 1]


def test_swapped_point_in_point_layer() -> None:
    _, report = check(fx.swapped_point(), geometry_types=("Point",))
    assert [e.code for e in report.errors] == ["swapped_lat_lon"]
    assert "latitude and longitude look swapped" in report.errors[0].message


def test_swapped_without_region() -> None:
    _, report = validate_frame(fx.swapped_polygon())
    assert [e.code for e in report.errors] == ["swapped_lat_lon"]


def test_swapped_detected_by_region() -> None:
    # Both orders are legal lon/lat here; only the region tells which is right.
    frame = gpd.GeoDataFrame({"id": ["a"]}, geometry=[shapely.Point(45.0, 15.0)], crs=fx.CRS)
    _, report = validate_frame(frame, region=(10.0, 40.0, 20.0, 50.0))
    assert [e.code for e in report.errors] == ["swapped_lat_lon"]
    assert "latitude and longitude look swapped" in report.errors[0].message


def test_out_of_range_not_swappable() -> None:
    frame = gpd.GeoDataFrame({"id": ["a"]}, geometry=[shapely.Point(500.0, 300.0)], crs=fx.CRS)
    _, report = validate_frame(frame)
    assert [e.code for e in report.errors] == ["coordinates_out_of_range"]


def test_outside_and_partly_outside_region() -> None:
    _, report = check(fx.far_away())
    assert [e.code for e in report.errors] == ["outside_region"]
    straddling = gpd.GeoDataFrame(
        {"id": ["edge"]}, geometry=[shapely.box(125.1, 42.0, 125.3, 42.1)], crs=fx.CRS
    )
    _, report = check(straddling)
    assert report.ok
    assert [w.code for w in report.warnings] == ["partly_outside_region"]


def test_duplicate_and_null_ids() -> None:
    frame = fx.duplicate_ids()
    _, report = check(frame)
    dup_rows = sorted(e.row for e in report.errors if e.code == "duplicate_id")
    null_rows = [e.row for e in report.errors if e.code == "null_id"]
    assert dup_rows == [0, 2]
    assert null_rows == [3]
    assert "'dup'" in next(e.message for e in report.errors if e.code == "duplicate_id")


def test_blank_string_id_is_null() -> None:
    frame = fx.good_buildings()
    frame.loc[1, "id"] = "  "
    _, report = check(frame)
    assert [(e.row, e.code) for e in report.errors] == [(1, "null_id")]


def test_missing_id_column() -> None:
    _, report = check(fx.good_buildings(), id_column="code")
    assert [(e.row, e.code) for e in report.errors] == [(None, "missing_id_column")]


def test_no_crs_keeps_frame_and_reports() -> None:
    frame = fx.no_crs()
    out, report = check(frame)
    assert [e.code for e in report.errors] == ["no_crs"]
    assert out.crs is None
    assert out.geometry.equals(frame.geometry)


def test_reprojects_cgcs2000_and_projected_input() -> None:
    out, report = check(fx.cgcs2000_buildings())
    assert report.ok and out.crs.to_epsg() == 4326
    metric = to_metric(fx.good_buildings())
    out, report = check(metric)
    assert report.ok and out.crs.to_epsg() == 4326
    assert np.allclose(out.total_bounds, fx.good_buildings().total_bounds, atol=1e-9)


def test_all_cases_together_never_raise() -> None:
    frames = [fx.CATALOGUE[name]() for name in sorted(fx.CATALOGUE) if name != "no_crs"]
    frames = [f.set_crs(fx.CRS, allow_override=True) for f in frames]
    frame = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=fx.CRS)
    out, report = check(frame)
    assert len(out) == len(frame)
    assert not report.ok
    assert report.repaired == 1
    expected = {code for code in fx.EXPECTED_ERRORS.values() if code not in (None, "no_crs")}
    assert expected <= report.codes()
    # every error names a real row, except frame-level ones
    assert all(e.row in frame.index for e in report.errors)


def test_summary_is_readable() -> None:
    _, report = check(fx.duplicate_ids())
    text = report.summary()
    assert text.startswith("REJECTED: 3 errors, 0 warnings, 0 geometries repaired")
    assert "duplicate_id" in text and "row 0" in text
    short = report.summary(limit=1)
    assert "... and 2 more" in short
    ok = ValidationReport()
    assert ok.ok and ok.summary() == "OK: 0 errors, 0 warnings, 0 geometries repaired"
    assert str(Issue(None, "no_crs", "x")) == "frame: x [no_crs]"


def test_bad_arguments_raise() -> None:
    with pytest.raises(ValueError, match="unknown geometry type"):
        validate_frame(fx.good_buildings(), geometry_types=("Polygonz",))
    with pytest.raises(ValueError, match="region"):
        validate_frame(fx.good_buildings(), region=(125.0, 41.0, 123.0, 43.0))
    with pytest.raises(TypeError):
        validate_frame(pd.DataFrame({"a": [1]}))  # type: ignore[arg-type]
