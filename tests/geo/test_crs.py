from __future__ import annotations

import math

import geopandas as gpd
import numpy as np
import pyproj
import pytest
import shapely

from geo import crs as gcrs
from geo.crs import (
    CGCS2000,
    WGS84,
    bd09_to_gcj02,
    bd09_to_wgs84,
    from_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    metric_crs,
    parse_crs,
    require_crs,
    shift_geometries,
    to_lonlat,
    to_metric,
    to_wgs84,
    utm_crs,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from geo.errors import CRSError
from tests.fixtures import geometries as fx


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    r = 6_371_008.8
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


# --- reference values -------------------------------------------------------------------------
# googollee/eviltransform, go/transform_test.go and python/test.py ("tests"):
#   (wgsLat, wgsLng, gcjLat, gcjLng) for Shanghai, Shenzhen, Beijing.
EVILTRANSFORM_PAIRS = [
    (31.1774276, 121.5272106, 31.17530398364597, 121.531541859215),  # shanghai
    (22.543847, 113.912316, 22.540796131694766, 113.9171764808363),  # shenzhen
    (39.911954, 116.377817, 39.91334545536069, 116.38404722455657),  # beijing
]
# wandergis/coordtransform, README.md "result" block for input (116.404, 39.915), (lng, lat) order.
COORDTRANSFORM_BD09_TO_GCJ02 = (116.39762729119315, 39.90865673957631)
COORDTRANSFORM_GCJ02_TO_BD09 = (116.41036949371029, 39.92133699351021)
COORDTRANSFORM_WGS84_TO_GCJ02 = (116.41024449916938, 39.91640428150164)
# Its gcj02towgs84 is the one-step approximation; ours is the exact inverse, so only "close".
COORDTRANSFORM_GCJ02_TO_WGS84_APPROX = (116.39775550083061, 39.91359571849836)


def test_constants() -> None:
    assert WGS84 == "EPSG:4326"
    assert CGCS2000 == "EPSG:4490"


def test_crs_error_is_value_error() -> None:
    assert issubclass(CRSError, ValueError)


def test_require_crs() -> None:
    require_crs(fx.good_buildings())
    require_crs(fx.good_buildings().geometry)
    with pytest.raises(CRSError, match="no coordinate reference system"):
        require_crs(fx.no_crs())
    with pytest.raises(CRSError):
        require_crs(fx.no_crs().geometry)


@pytest.mark.parametrize(
    ("lon", "lat", "epsg"),
    [(123.84, 42.29, 32651), (116.4, 39.9, 32650), (-0.1, 51.5, 32630), (151.2, -33.9, 32756), (180.0, 0.0, 32660)],
)
def test_utm_crs(lon: float, lat: float, epsg: int) -> None:
    assert utm_crs(lon, lat).to_epsg() == epsg


@pytest.mark.parametrize(("lon", "lat"), [(math.nan, 42.0), (123.0, math.inf), (200.0, 42.0), (123.0, 95.0)])
def test_utm_crs_rejects_bad_positions(lon: float, lat: float) -> None:
    with pytest.raises(CRSError):
        utm_crs(lon, lat)


def test_to_metric_measures_metres_and_keeps_input() -> None:
    frame = fx.good_buildings()
    before = frame.copy()
    metric = to_metric(frame)
    assert metric is not frame
    assert metric.crs.to_epsg() == 32651
    assert metric_crs(frame).to_epsg() == 32651
    width = metric.geometry.iloc[0].bounds[2] - metric.geometry.iloc[0].bounds[0]
    assert width == pytest.approx(20.0, abs=0.2)  # fixtures are 20 m wide
    assert frame.crs == before.crs
    assert frame.geometry.equals(before.geometry)


def test_to_metric_forced_crs_and_series() -> None:
    series = fx.good_buildings().geometry
    out = to_metric(series, crs="EPSG:32650")
    assert isinstance(out, gpd.GeoSeries)
    assert out.crs.to_epsg() == 32650


def test_to_metric_and_to_lonlat_need_crs() -> None:
    with pytest.raises(CRSError):
        to_metric(fx.no_crs())
    with pytest.raises(CRSError):
        to_lonlat(fx.no_crs())


def test_to_metric_rejects_frames_without_coordinates() -> None:
    with pytest.raises(CRSError, match="no finite coordinates"):
        to_metric(fx.empty_polygon())


def test_to_lonlat_round_trip() -> None:
    frame = fx.good_buildings()
    back = to_lonlat(to_metric(frame))
    assert back.crs.to_epsg() == 4326
    assert np.allclose(back.total_bounds, frame.total_bounds, atol=1e-9)


# --- datum shifts -----------------------------------------------------------------------------


@pytest.mark.parametrize(("wlat", "wlng", "glat", "glng"), EVILTRANSFORM_PAIRS)
def test_wgs84_to_gcj02_eviltransform_pairs(wlat: float, wlng: float, glat: float, glng: float) -> None:
    lng, lat = wgs84_to_gcj02(wlng, wlat)
    assert lng == pytest.approx(glng, abs=1e-9)
    assert lat == pytest.approx(glat, abs=1e-9)


@pytest.mark.parametrize(("wlat", "wlng", "glat", "glng"), EVILTRANSFORM_PAIRS)
def test_gcj02_to_wgs84_exact_within_a_centimetre(wlat: float, wlng: float, glat: float, glng: float) -> None:
    lng, lat = gcj02_to_wgs84(glng, glat)
    assert haversine_m(lng, lat, wlng, wlat) < 0.01  # eviltransform's own "exact" test allows 0.5 m


def test_coordtransform_readme_values() -> None:
    assert wgs84_to_gcj02(116.404, 39.915) == pytest.approx(COORDTRANSFORM_WGS84_TO_GCJ02, abs=1e-12)
    assert gcj02_to_bd09(116.404, 39.915) == pytest.approx(COORDTRANSFORM_GCJ02_TO_BD09, abs=1e-12)
    # Our BD-09 inverse refines the published closed form: within ~0.5 m of it, and exact.
    lng, lat = bd09_to_gcj02(116.404, 39.915)
    ref = COORDTRANSFORM_BD09_TO_GCJ02
    assert haversine_m(lng, lat, *ref) < 0.5
    assert gcj02_to_bd09(lng, lat) == pytest.approx((116.404, 39.915), abs=1e-11)
    # The one-step GCJ inverse there is off by about a metre; ours is exact.
    lng, lat = gcj02_to_wgs84(116.404, 39.915)
    assert 0.0 < haversine_m(lng, lat, *COORDTRANSFORM_GCJ02_TO_WGS84_APPROX) < 5.0
    assert wgs84_to_gcj02(lng, lat) == pytest.approx((116.404, 39.915), abs=1e-11)


def test_tieling_offset_is_hundreds_of_metres() -> None:
    lng, lat = wgs84_to_gcj02(fx.LON, fx.LAT)
    assert 200 < haversine_m(fx.LON, fx.LAT, lng, lat) < 1000
    blng, blat = wgs84_to_bd09(fx.LON, fx.LAT)
    assert 500 < haversine_m(fx.LON, fx.LAT, blng, blat) < 2000


def _china_grid() -> tuple[np.ndarray, np.ndarray]:
    lon, lat = np.meshgrid(np.linspace(74.0, 134.9, 61), np.linspace(4.0, 53.4, 50))
    return lon, lat


@pytest.mark.parametrize(
    ("forward", "inverse"),
    [(wgs84_to_gcj02, gcj02_to_wgs84), (gcj02_to_bd09, bd09_to_gcj02), (wgs84_to_bd09, bd09_to_wgs84)],
)
def test_round_trips_over_china(forward: gcrs.LonLatFunc, inverse: gcrs.LonLatFunc) -> None:
    lon, lat = _china_grid()
    flon, flat = forward(lon, lat)
    assert flon.shape == lon.shape
    assert np.abs(flon - lon).max() > 1e-4  # it really moved
    blon, blat = inverse(flon, flat)
    # 1e-9 degrees is about 0.1 mm
    assert np.abs(blon - lon).max() < 1e-9
    assert np.abs(blat - lat).max() < 1e-9


@pytest.mark.parametrize(
    "func", [wgs84_to_gcj02, gcj02_to_wgs84, gcj02_to_bd09, bd09_to_gcj02, wgs84_to_bd09, bd09_to_wgs84]
)
def test_outside_china_unchanged(func: gcrs.LonLatFunc) -> None:
    lon = np.array([-0.1276, 139.69, 2.35, 123.84])
    lat = np.array([51.5072, 35.69, 48.86, -42.29])
    out_lon, out_lat = func(lon, lat)
    assert np.array_equal(out_lon, lon)
    assert np.array_equal(out_lat, lat)


def test_scalars_arrays_lists_and_nan() -> None:
    lng, lat = wgs84_to_gcj02(fx.LON, fx.LAT)
    assert isinstance(lng, float) and isinstance(lat, float)
    lngs, lats = wgs84_to_gcj02([fx.LON, math.nan], [fx.LAT, fx.LAT])
    assert isinstance(lngs, np.ndarray)
    assert lngs[0] == pytest.approx(lng)
    assert math.isnan(lngs[1])
    # broadcasting a scalar latitude
    many, _ = gcj02_to_wgs84(np.full(3, fx.LON), fx.LAT)
    assert many.shape == (3,)


def test_inputs_not_modified() -> None:
    lon = np.array([fx.LON, 121.5])
    lat = np.array([fx.LAT, 31.2])
    lon0, lat0 = lon.copy(), lat.copy()
    gcj02_to_wgs84(lon, lat)
    bd09_to_wgs84(lon, lat)
    assert np.array_equal(lon, lon0) and np.array_equal(lat, lat0)


def test_shift_geometries_series_array_scalar() -> None:
    frame = fx.good_buildings()
    series = frame.geometry
    before = series.copy()
    shifted = shift_geometries(series, wgs84_to_gcj02)
    assert isinstance(shifted, gpd.GeoSeries)
    assert shifted.index.equals(series.index) and shifted.crs == series.crs
    assert series.equals(before)
    expected = wgs84_to_gcj02(*shapely.get_coordinates(series.values).T)
    assert np.allclose(shapely.get_coordinates(shifted.values), np.column_stack(expected))

    array = np.array([shapely.Point(fx.LON, fx.LAT, 7.0), None, shapely.Polygon()], dtype=object)
    out = shift_geometries(array, wgs84_to_gcj02)
    assert isinstance(out, np.ndarray)
    assert out[0].has_z and out[0].z == 7.0
    assert out[1] is None and out[2].is_empty

    point = shift_geometries(shapely.Point(fx.LON, fx.LAT), gcj02_to_wgs84)
    assert isinstance(point, shapely.Point)
    assert (point.x, point.y) == pytest.approx(gcj02_to_wgs84(fx.LON, fx.LAT))


def test_shift_geometries_keeps_holes_and_parts() -> None:
    for frame in (fx.polygon_with_hole(), fx.multipolygon()):
        geom = frame.geometry.iloc[0]
        out = shift_geometries(geom, wgs84_to_gcj02)
        assert out.geom_type == geom.geom_type
        assert shapely.get_num_coordinates(out) == shapely.get_num_coordinates(geom)
        assert out.is_valid


# --- parse_crs ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["gcj02", "GCJ-02", " gcj_02 ", "GCJ02"])
def test_parse_crs_gcj02(text: str) -> None:
    assert parse_crs(text) == "gcj02"


@pytest.mark.parametrize("text", ["bd09", "BD-09", "bd09ll", "Bd_09"])
def test_parse_crs_bd09(text: str) -> None:
    assert parse_crs(text) == "bd09"


@pytest.mark.parametrize(
    ("text", "epsg"),
    [("wgs84", 4326), ("WGS-84", 4326), ("cgcs2000", 4490), ("CGCS 2000", 4490), ("EPSG:4490", 4490),
     ("epsg:4326", 4326), ("EPSG:4547", 4547), (4490, 4490), ("+proj=utm +zone=51 +datum=WGS84", None)],
)
def test_parse_crs_pyproj(text: str | int, epsg: int | None) -> None:
    parsed = parse_crs(text)
    assert isinstance(parsed, pyproj.CRS)
    if epsg is not None:
        assert parsed.to_epsg() == epsg


def test_parse_crs_passes_crs_objects_through() -> None:
    crs = pyproj.CRS.from_epsg(4490)
    assert parse_crs(crs) is crs


@pytest.mark.parametrize("text", ["garbage", "", "   ", "EPSG:999999", "gcj03"])
def test_parse_crs_garbage(text: str) -> None:
    with pytest.raises(CRSError):
        parse_crs(text)


# --- frame conversions ------------------------------------------------------------------------


def test_to_wgs84_relabels_cgcs2000() -> None:
    frame = fx.cgcs2000_buildings()
    out = to_wgs84(frame)
    assert out.crs.to_epsg() == 4326
    assert frame.crs.to_epsg() == 4490  # input untouched
    assert np.array_equal(shapely.get_coordinates(out.geometry.values), shapely.get_coordinates(frame.geometry.values))


def test_to_wgs84_from_projected() -> None:
    frame = fx.good_buildings()
    out = to_wgs84(to_metric(frame))
    assert out.crs.to_epsg() == 4326
    assert np.allclose(out.total_bounds, frame.total_bounds, atol=1e-9)


def test_to_wgs84_from_gcj02_and_bd09() -> None:
    frame = fx.good_buildings()
    gcj = frame.copy()
    gcj["geometry"] = shift_geometries(frame.geometry, wgs84_to_gcj02)
    bd = frame.copy()
    bd["geometry"] = shift_geometries(frame.geometry, wgs84_to_bd09)
    for shifted, source in ((gcj, "gcj02"), (bd, "BD-09")):
        out = to_wgs84(shifted, source=source)
        assert out.crs.to_epsg() == 4326
        assert np.abs(shapely.get_coordinates(out.geometry.values) - shapely.get_coordinates(frame.geometry.values)).max() < 1e-9
        assert list(out.columns) == list(frame.columns)
        assert out["id"].tolist() == frame["id"].tolist()


def test_to_wgs84_source_overrides_missing_crs() -> None:
    out = to_wgs84(fx.no_crs(), source="EPSG:4490")
    assert out.crs.to_epsg() == 4326
    out = to_wgs84(fx.no_crs(), source="gcj02")
    assert out.crs.to_epsg() == 4326


def test_to_wgs84_errors() -> None:
    with pytest.raises(CRSError):
        to_wgs84(fx.no_crs())
    with pytest.raises(CRSError, match="projected"):
        to_wgs84(to_metric(fx.good_buildings()), source="gcj02")
    with pytest.raises(CRSError):
        to_wgs84(fx.good_buildings(), source="nonsense")


def test_from_wgs84_and_back() -> None:
    frame = fx.cgcs2000_buildings()
    for target in ("gcj02", "bd09"):
        shown = from_wgs84(frame, target=target)
        assert shown.crs.to_epsg() == 4326
        assert shown.attrs["datum_shift"] == target
        moved = haversine_m(*shown.geometry.iloc[0].exterior.coords[0], *frame.geometry.iloc[0].exterior.coords[0])
        assert 200 < moved < 2000
        back = to_wgs84(shown)  # attrs tell it the coordinates are shifted
        assert "datum_shift" not in back.attrs
        diff = shapely.get_coordinates(back.geometry.values) - shapely.get_coordinates(frame.geometry.values)
        assert np.abs(diff).max() < 1e-9
    assert frame.crs.to_epsg() == 4490


def test_from_wgs84_rejects_bad_target() -> None:
    with pytest.raises(CRSError):
        from_wgs84(fx.good_buildings(), target="EPSG:3857")
    with pytest.raises(CRSError):
        from_wgs84(fx.no_crs(), target="gcj02")
