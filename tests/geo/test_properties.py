"""Property-based tests (hypothesis) for the spatial core: datum shifts and projections, grid
codes, camera geometry, validation and partitioning.

Every test has bounded, derandomized settings so CI runs the same examples every time and the
whole file stays well under a minute.
"""

from __future__ import annotations

import math
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import LineString, Point, box

from geo import cameras as gc
from geo.codes import (
    grid_codes,
    is_valid_county_code,
    is_valid_gbt28181_id,
    is_valid_grid_code,
    reading_order,
    township_kind,
    village_kind,
)
from geo.crs import (
    bd09_to_gcj02,
    bd09_to_wgs84,
    gcj02_to_bd09,
    gcj02_to_wgs84,
    out_of_china,
    require_crs,
    to_lonlat,
    to_metric,
    utm_crs,
    wgs84_to_bd09,
    wgs84_to_gcj02,
)
from geo.errors import CRSError
from geo.partition import partition
from geo.validate import validate_frame
from tests.fixtures.geometries import CATALOGUE, TIELING_REGION
from tests.geo.conftest import ORIGIN, UTM51N


def _settings(n: int) -> settings:
    """Bounded and reproducible: ``n`` examples, no per-example deadline, fixed example order."""
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


# --------------------------------------------------------------------------------------------
# geo.crs
# --------------------------------------------------------------------------------------------

# Well inside the China box (lon 73.66–135.05, lat 3.86–53.55): the GCJ-02/BD-09 shifts are at
# most ~0.01°, so a shifted point stays in the box and the inverse applies. (Within ~0.01° of the
# box edge a round trip cannot be exact: the shifted point may fall outside the box, where the
# inverse is the identity — a property of the published algorithm, not tested here.)
china_lon = st.floats(74.0, 134.7, allow_nan=False)
china_lat = st.floats(4.2, 53.2, allow_nan=False)
any_lon = st.floats(-180.0, 180.0, allow_nan=False)
any_lat = st.floats(-90.0, 90.0, allow_nan=False)
ROUND_TRIP_DEG = 1e-9  # ~0.1 mm


@_settings(200)
@given(china_lon, china_lat)
def test_gcj02_round_trip_inside_china(lon: float, lat: float) -> None:
    g_lon, g_lat = wgs84_to_gcj02(lon, lat)
    assert (g_lon, g_lat) != (lon, lat)
    back = gcj02_to_wgs84(g_lon, g_lat)
    assert math.isclose(back[0], lon, abs_tol=ROUND_TRIP_DEG)
    assert math.isclose(back[1], lat, abs_tol=ROUND_TRIP_DEG)


@_settings(200)
@given(china_lon, china_lat)
def test_bd09_round_trips_inside_china(lon: float, lat: float) -> None:
    b = gcj02_to_bd09(lon, lat)
    g = bd09_to_gcj02(*b)
    assert math.isclose(g[0], lon, abs_tol=ROUND_TRIP_DEG) and math.isclose(g[1], lat, abs_tol=ROUND_TRIP_DEG)
    w = bd09_to_wgs84(*wgs84_to_bd09(lon, lat))
    assert math.isclose(w[0], lon, abs_tol=ROUND_TRIP_DEG) and math.isclose(w[1], lat, abs_tol=ROUND_TRIP_DEG)
    # The shifts are a few hundred metres at most.
    assert abs(b[0] - lon) < 0.03 and abs(b[1] - lat) < 0.03


@_settings(200)
@given(
    st.one_of(
        st.tuples(any_lon, st.floats(-90.0, 3.86)),
        st.tuples(any_lon, st.floats(53.55, 90.0)),
        st.tuples(st.floats(-180.0, 73.66), any_lat),
        st.tuples(st.floats(135.05, 180.0), any_lat),
    )
)
def test_out_of_china_points_are_unchanged(lonlat: tuple[float, float]) -> None:
    lon, lat = lonlat
    assert bool(out_of_china(lon, lat))
    for func in (wgs84_to_gcj02, gcj02_to_wgs84, gcj02_to_bd09, bd09_to_gcj02, wgs84_to_bd09, bd09_to_wgs84):
        assert func(lon, lat) == (lon, lat)


@_settings(50)
@given(st.lists(st.tuples(china_lon, china_lat), min_size=1, max_size=20))
def test_vectorised_shifts_match_scalar_ones(points: list[tuple[float, float]]) -> None:
    lons = np.array([p[0] for p in points])
    lats = np.array([p[1] for p in points])
    v_lon, v_lat = wgs84_to_gcj02(lons, lats)
    for i, (lon, lat) in enumerate(points):
        s_lon, s_lat = wgs84_to_gcj02(lon, lat)
        assert v_lon[i] == s_lon and v_lat[i] == s_lat


@_settings(40)
@given(
    st.floats(-179.0, 179.0),
    st.floats(-79.0, 83.0),  # the UTM latitude band
    st.lists(st.tuples(st.floats(-0.05, 0.05), st.floats(-0.05, 0.05)), min_size=1, max_size=8),
)
def test_to_metric_to_lonlat_round_trip(lon: float, lat: float, offsets: list[tuple[float, float]]) -> None:
    pts = [Point(lon + dx, lat + dy) for dx, dy in offsets]
    frame = gpd.GeoDataFrame({"n": range(len(pts))}, geometry=pts, crs="EPSG:4326")
    metric = to_metric(frame)
    assert metric.crs.is_projected and metric.crs.axis_info[0].unit_name == "metre"
    back = to_lonlat(metric)
    assert str(back.crs) == "EPSG:4326"
    assert np.allclose(back.geometry.x, frame.geometry.x, atol=1e-7)
    assert np.allclose(back.geometry.y, frame.geometry.y, atol=1e-7)
    assert frame.geometry.x.tolist() == [p.x for p in pts]  # the input is not modified


@_settings(40)
@given(st.lists(st.tuples(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6)), max_size=5), st.booleans())
def test_require_crs_raises_on_no_crs(coords: list[tuple[float, float]], series: bool) -> None:
    frame: Any = gpd.GeoDataFrame(geometry=[Point(x, y) for x, y in coords], crs=None)
    if series:
        frame = frame.geometry
    with pytest.raises(CRSError):
        require_crs(frame)
    with pytest.raises(CRSError):
        to_metric(frame)
    with pytest.raises(CRSError):
        to_lonlat(frame)
    require_crs(frame.set_crs("EPSG:4326"))


@_settings(200)
@given(any_lon, any_lat)
def test_utm_crs_for_any_lonlat(lon: float, lat: float) -> None:
    crs = utm_crs(lon, lat)
    epsg = crs.to_epsg()
    assert epsg is not None
    zone = epsg % 100
    assert 1 <= zone <= 60
    assert epsg // 100 == (326 if lat >= 0 else 327)
    # The zone's central meridian is within 3° of the longitude (zone 60 also holds lon 180).
    central = -183.0 + 6.0 * zone
    assert abs(lon - central) <= 3.0 + 1e-9 or lon == 180.0


@_settings(100)
@given(
    st.one_of(
        st.tuples(st.sampled_from([math.nan, math.inf, -math.inf]), any_lat),
        st.tuples(any_lon, st.sampled_from([math.nan, math.inf, -math.inf])),
        st.tuples(st.floats(allow_nan=False).filter(lambda v: abs(v) > 180), any_lat),
        st.tuples(any_lon, st.floats(allow_nan=False).filter(lambda v: abs(v) > 90)),
    )
)
def test_utm_crs_rejects_non_finite_or_out_of_range(lonlat: tuple[float, float]) -> None:
    with pytest.raises(CRSError):
        utm_crs(*lonlat)


# --------------------------------------------------------------------------------------------
# geo.codes
# --------------------------------------------------------------------------------------------

# GB/T 2260 province prefixes (as in geo.codes).
PROVINCES = [
    *range(11, 16),
    *range(21, 24),
    *range(31, 38),
    *range(41, 47),
    *range(50, 55),
    *range(61, 66),
    71,
    81,
    82,
]


@st.composite
def grid_code_parts(draw: st.DrawFn) -> tuple[str, str, str, int]:
    """(county, township, village, sequence) of a valid grid code, and the expected kinds."""
    province = draw(st.sampled_from(PROVINCES))
    rest = draw(st.integers(1, 9999))
    county = f"{province:02d}{rest:04d}"
    township = f"{draw(st.integers(1, 399)):03d}"
    village = f"{draw(st.integers(1, 399)):03d}"
    return county, township, village, draw(st.integers(1, 999))


@_settings(200)
@given(grid_code_parts())
def test_grid_code_format_parse_round_trip(parts: tuple[str, str, str, int]) -> None:
    county, township, village, seq = parts
    code = f"{county}{township}{village}{seq:03d}"
    assert len(code) == 15 and is_valid_grid_code(code)
    assert is_valid_county_code(code[:6])
    # Parsing the code back gives the parts it was formatted from.
    assert (code[:6], code[6:9], code[9:12], int(code[12:])) == (county, township, village, seq)
    t = int(township)
    assert township_kind(code) == ("street" if t < 100 else "town" if t < 200 else "township")
    v = int(village)
    assert village_kind(code) == ("community" if v < 200 else "village")


@_settings(200)
@given(
    st.one_of(st.text(max_size=20), st.from_regex(r"[0-9]{9,16}", fullmatch=True), st.integers(), st.none())
)
def test_code_checks_never_raise_on_junk(code: Any) -> None:
    for check in (is_valid_grid_code, is_valid_county_code, is_valid_gbt28181_id):
        assert isinstance(check(code), bool)
    for kind in (township_kind, village_kind):
        try:
            assert kind(code) in {"street", "town", "township", "community", "village"}
        except ValueError:
            pass  # the clean rejection
    if is_valid_grid_code(code):
        assert isinstance(code, str) and len(code) == 15 and code.isascii() and code.isdigit()


@_settings(200)
@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=15, max_size=15))
def test_only_ascii_digits_make_codes(code: str) -> None:
    # Unicode digits (e.g. '١' or full-width '１') are not ASCII digits and never make a valid code.
    if is_valid_grid_code(code):
        assert all("0" <= ch <= "9" for ch in code)


@_settings(40)
@given(
    grid_code_parts(),
    st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=30, unique=True),
)
def test_grid_codes_number_every_grid_once(
    parts: tuple[str, str, str, int], cells: list[tuple[int, int]]
) -> None:
    county, township, village, _ = parts
    village_code = f"{county}{township}{village}"
    x0, y0 = ORIGIN
    grids = gpd.GeoDataFrame(
        geometry=[box(x0 + 100 * i, y0 + 100 * j, x0 + 100 * i + 90, y0 + 100 * j + 90) for i, j in cells],
        crs=UTM51N,
    )
    codes = grid_codes(grids, village_code=village_code)
    assert codes.index.equals(grids.index)
    assert all(is_valid_grid_code(c) and c.startswith(village_code) for c in codes)
    assert sorted(int(c[12:]) for c in codes) == list(range(1, len(cells) + 1))
    order = reading_order(grids)
    assert sorted(order.tolist()) == list(range(len(cells)))
    # Reading order: rows north to south, west to east within a row.
    keys = [(-cells[k][1], cells[k][0]) for k in order]
    assert keys == sorted(keys)


# --------------------------------------------------------------------------------------------
# geo.cameras (UTM 51N, metres around ORIGIN)
# --------------------------------------------------------------------------------------------


@st.composite
def camera_frames(draw: st.DrawFn, max_size: int = 4) -> gpd.GeoDataFrame:
    n = draw(st.integers(1, max_size))
    rows = []
    for i in range(n):
        dome = draw(st.booleans().map(lambda b: b and draw(st.integers(0, 4)) == 0))
        rows.append(
            {
                "id": f"c{i}",
                "x": ORIGIN[0] + draw(st.floats(0.0, 200.0)),
                "y": ORIGIN[1] + draw(st.floats(0.0, 200.0)),
                "direction": None if dome else draw(st.floats(-720.0, 720.0)),
                "fov": None if dome else draw(st.floats(1.0, 400.0)),
                "range_m": draw(st.floats(5.0, 120.0)),
                "online": draw(st.booleans()),
            }
        )
    frame = pd.DataFrame(rows)
    geometry = gpd.points_from_xy(frame.pop("x"), frame.pop("y"))
    return gpd.GeoDataFrame(frame.astype({"direction": float, "fov": float}), geometry=geometry, crs=UTM51N)


@st.composite
def building_boxes(draw: st.DrawFn, max_size: int = 5) -> list[Any]:
    out = []
    for _ in range(draw(st.integers(0, max_size))):
        x = ORIGIN[0] + draw(st.floats(-20.0, 220.0))
        y = ORIGIN[1] + draw(st.floats(-20.0, 220.0))
        out.append(box(x, y, x + draw(st.floats(2.0, 40.0)), y + draw(st.floats(2.0, 40.0))))
    return out


def _buildings(geoms: list[Any]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(geometry=geoms, crs=UTM51N)


AREA_TOL = 1e-6  # m², for overlay round-off


@_settings(40)
@given(camera_frames(), building_boxes())
def test_visible_area_within_nominal_sector(cams: gpd.GeoDataFrame, blds: list[Any]) -> None:
    sectors = gc.view_sectors(cams)
    visible = gc.visible_areas(cams, _buildings(blds), crs=UTM51N)
    assert visible["id"].tolist() == sectors["id"].tolist() == cams["id"].tolist()
    for seen, nominal in zip(visible.geometry, sectors.geometry, strict=True):
        assert seen.difference(nominal).area <= AREA_TOL * max(1.0, nominal.area)
        for b in blds:  # nothing inside a building is seen (unless the camera is in it)
            if not b.covers(nominal.centroid) and not any(b.covers(p) for p in cams.geometry):
                assert seen.intersection(b).area <= 1e-3


@_settings(30)
@given(camera_frames(), building_boxes(max_size=3), building_boxes(max_size=1).filter(bool))
def test_adding_a_building_never_enlarges_a_view(
    cams: gpd.GeoDataFrame, blds: list[Any], extra: list[Any]
) -> None:
    before = gc.visible_areas(cams, _buildings(blds), crs=UTM51N)
    after = gc.visible_areas(cams, _buildings(blds + extra), crs=UTM51N)
    for old, new in zip(before.geometry, after.geometry, strict=True):
        assert new.area <= old.area + 1e-3
        assert new.difference(old).area <= 1e-3


@_settings(200)
@given(
    st.floats(-1e6, 1e6),
    st.floats(-1e6, 1e6),
    st.floats(-1000.0, 1000.0),
    st.floats(0.5, 359.9),
    st.floats(0.1, 5000.0),
)
def test_sector_area_matches_fov_share_of_disc(
    x: float, y: float, direction: float, fov: float, r: float
) -> None:
    poly = gc.sector(x, y, direction=direction, fov=fov, range_m=r)
    assert poly.is_valid
    exact = fov / 360.0 * math.pi * r * r
    assert abs(poly.area - exact) <= 0.005 * exact
    disc = gc.sector(x, y, direction=None, fov=None, range_m=r)
    assert abs(disc.area - math.pi * r * r) <= 0.005 * math.pi * r * r


@_settings(30)
@given(camera_frames(), building_boxes(max_size=3), st.integers(1, 3))
def test_coverage_shares_are_fractions(cams: gpd.GeoDataFrame, blds: list[Any], n_areas: int) -> None:
    x0, y0 = ORIGIN
    width = 240.0 / n_areas
    areas = gpd.GeoDataFrame(
        {"grid": [f"g{i}" for i in range(n_areas)]},
        geometry=[
            box(x0 - 20 + i * width, y0 - 20, x0 - 20 + (i + 1) * width, y0 + 220) for i in range(n_areas)
        ],
        crs=UTM51N,
    )
    roads = gpd.GeoDataFrame(
        geometry=[
            LineString([(x0 - 20, y0 + 100), (x0 + 220, y0 + 100)]),
            LineString([(x0 + 100, y0 + 300), (x0 + 100, y0 + 400)]),
        ],
        crs=UTM51N,
    )
    visible = gc.visible_areas(cams, _buildings(blds), crs=UTM51N)
    table = gc.coverage(
        areas, key="grid", roads=roads, buildings=_buildings(blds), visible=visible, cameras=cams
    )
    assert table["grid"].tolist() == areas["grid"].tolist()
    for col in ("road_share", "open_share", "online_share"):
        values = table[col].to_numpy(dtype=float)
        ok = np.isnan(values) | ((values >= 0.0) & (values <= 1.0 + 1e-9))
        assert ok.all(), (col, values)
    assert (table["road_covered_m"] <= table["road_m"] + 0.01).all()
    assert (table["cameras_online"] <= table["cameras"]).all()
    assert table["cameras"].sum() == len(cams)  # the areas tile the cameras' square


@_settings(40)
@given(
    camera_frames(max_size=6), building_boxes(max_size=3), st.floats(-20.0, 220.0), st.floats(-20.0, 220.0)
)
def test_cameras_seeing_within_range_and_fov(
    cams: gpd.GeoDataFrame, blds: list[Any], dx: float, dy: float
) -> None:
    at = Point(ORIGIN[0] + dx, ORIGIN[1] + dy)
    table = gc.cameras_seeing(cams, at=at, crs=UTM51N, buildings=_buildings(blds) if blds else None)
    assert table["rank"].tolist() == list(range(1, len(table) + 1))
    assert table["id"].is_unique
    by_id = cams.set_index("id")
    for row in table.itertuples():
        cam = by_id.loc[row.id]
        assert row.distance_m <= cam["range_m"] + 0.05 + 1e-9
        assert abs(row.distance_m - cam.geometry.distance(at)) <= 0.05 + 1e-9
        fov = cam["fov"]
        if not (pd.isna(fov) or pd.isna(cam["direction"]) or fov >= 360):
            assert row.off_axis_deg <= fov / 2.0 + 0.05 + 1e-9
    # Online cameras rank first.
    online = table["online"].tolist()
    assert online == sorted(online, reverse=True)
    # Without buildings, a camera sees the place exactly when its (exact) sector holds it.
    if not blds:
        for cam in cams.itertuples():
            d = cam.geometry.distance(at)
            full = pd.isna(cam.fov) or pd.isna(cam.direction) or cam.fov >= 360
            bearing = math.degrees(math.atan2(at.x - cam.geometry.x, at.y - cam.geometry.y)) % 360.0
            off = abs((bearing - cam.direction % 360.0 + 180.0) % 360.0 - 180.0) if not full else 0.0
            if d < cam.range_m - 0.01 and (full or d < 1e-3 or off < cam.fov / 2.0 - 0.01):
                assert cam.id in set(table["id"])
            if d > cam.range_m + 0.01 or (not full and d > 1e-3 and off > cam.fov / 2.0 + 0.01):
                assert cam.id not in set(table["id"])


# --------------------------------------------------------------------------------------------
# geo.validate and geo.partition
# --------------------------------------------------------------------------------------------


@_settings(60)
@given(
    st.sampled_from(sorted(CATALOGUE)),
    st.booleans(),
    st.sampled_from([None, TIELING_REGION, (10.0, 40.0, 20.0, 50.0)]),
    st.sampled_from([None, ("Polygon", "MultiPolygon"), ("Point",)]),
    st.booleans(),
)
def test_validate_reports_and_never_raises_on_the_catalogue(
    name: str, repair: bool, region: Any, types: Any, with_id: bool
) -> None:
    frame = CATALOGUE[name]()
    snapshot = frame.copy()
    out, report = validate_frame(
        frame, region=region, geometry_types=types, repair=repair, id_column="id" if with_id else None
    )
    assert len(out) == len(frame) and out.index.equals(frame.index)
    assert isinstance(report.ok, bool)
    assert frame.equals(snapshot)  # the input is not modified
    if frame.crs is not None:
        assert out.crs is not None and out.crs.to_epsg() == 4326


@st.composite
def awkward_polygons(draw: st.DrawFn) -> Any:
    pts = draw(st.lists(st.tuples(st.floats(-50.0, 50.0), st.floats(-50.0, 50.0)), min_size=0, max_size=6))
    kind = draw(st.sampled_from(["ring", "box", "none", "empty", "point"]))
    if kind == "none":
        return None
    if kind == "empty" or (kind == "ring" and len(pts) < 3):
        return shapely.Polygon()
    if kind == "point":
        return Point(*(pts[0] if pts else (0.0, 0.0)))
    if kind == "box" and pts:
        (ax, ay), (bx, by) = pts[0], pts[-1]
        return box(min(ax, bx), min(ay, by), max(ax, bx), max(ay, by))
    return shapely.Polygon(pts) if len(pts) >= 3 else shapely.Polygon()  # possibly self-crossing


@_settings(60)
@given(st.lists(awkward_polygons(), max_size=6), st.booleans())
def test_validate_never_raises_on_random_geometry(geoms: list[Any], repair: bool) -> None:
    frame = gpd.GeoDataFrame({"id": [str(i % 3) for i in range(len(geoms))]}, geometry=geoms, crs=UTM51N)
    out, report = validate_frame(
        frame, id_column="id", repair=repair, geometry_types=("Polygon", "MultiPolygon")
    )
    assert len(out) == len(frame)
    assert isinstance(report.ok, bool)
    if repair:
        # rows reported as errors (a polygon with no area cannot be repaired) keep what they had
        kept = ~out.index.isin(report.error_rows())
        values = np.asarray(out.geometry.values, dtype=object)
        present = ~(shapely.is_missing(values) | shapely.is_empty(values))
        polys = values[present & kept & out.geom_type.isin(["Polygon", "MultiPolygon"]).to_numpy()]
        assert shapely.is_valid(polys).all()


@_settings(12)
@given(
    st.lists(st.integers(1, 60), min_size=1, max_size=40),
    st.integers(4, 8),
)
def test_partition_conserves_households_and_assigns_every_building_once(
    households: list[int], cols: int
) -> None:
    x0, y0 = ORIGIN
    boxes = [
        box(
            x0 + 30 * (i % cols) + 5,
            y0 + 30 * (i // cols) + 5,
            x0 + 30 * (i % cols) + 25,
            y0 + 30 * (i // cols) + 25,
        )
        for i in range(len(households))
    ]
    frame = gpd.GeoDataFrame({"households": households}, geometry=boxes, crs=UTM51N)
    frame.index = frame.index * 7 + 3  # a non-default index
    rows = (len(households) + cols - 1) // cols
    boundary = box(x0, y0, x0 + 30 * cols, y0 + 30 * rows)
    grids, labels = partition(frame, boundary=boundary)
    assert labels.index.equals(frame.index) and labels.notna().all()
    assert set(labels) == set(grids["label"])
    assert grids["households"].sum() == sum(households)
    assert grids["buildings"].sum() == len(households)
    per_label = frame["households"].groupby(labels).sum()
    assert per_label.sort_index().tolist() == grids.set_index("label")["households"].sort_index().tolist()
    union = shapely.union_all(np.asarray(grids.geometry.values, dtype=object))
    assert union.symmetric_difference(boundary).area <= 1e-6 * boundary.area
    assert abs(grids.area.sum() - boundary.area) <= 1e-6 * boundary.area
