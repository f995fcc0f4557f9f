"""services.files: real files (GeoJSON, GeoPackage, zipped/plain Shapefile, CSV) into both stores.

Every rejected import must say what is wrong in plain words AND leave the store as it was.
"""

from __future__ import annotations

import json
import math
import zipfile
from pathlib import Path
from typing import Any

import geopandas as gpd
import pandas as pd
import pyogrio
import pytest
import shapely
from pyproj import Geod
from shapely.geometry import MultiPolygon, Point, Polygon, box

from geo.crs import wgs84_to_gcj02
from services.files import ImportRejected, ImportReport, export_file, import_file
from store import open_store

TIELING = (123.0, 41.5, 125.5, 43.8)  # (min lon, min lat, max lon, max lat)
TABLES = ("admin_units", "grids", "buildings", "staff", "cameras")
GEOD = Geod(ellps="WGS84")

HOSTILE = [
    "<script>alert('x')</script>",
    "Robert'); DROP TABLE grids;--",
    '"quoted", with, commas & <b>tags</b>',
    "网格\"甲\" OR 1=1; -- 注释",
]


# --------------------------------------------------------------------------- sample data


def boundaries_frame() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "code": ["211202", "211202001", "211202001001", "211202001201"],
            "name": ["银州区", "红旗街道", "红旗社区", "南山村"],
        },
        geometry=[
            box(123.70, 42.20, 123.95, 42.40),
            box(123.80, 42.25, 123.90, 42.32),
            box(123.82, 42.27, 123.86, 42.30),
            box(123.86, 42.27, 123.89, 42.30),
        ],
        crs="EPSG:4326",
    )


def grids_frame(n: int = 3) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "code": [f"211202001001{i + 1:03d}" for i in range(n)],
            "name": [f"红旗社区第{i + 1}网格" for i in range(n)],
            "kind": ["base"] * (n - 1) + ["dedicated"],
            "purpose": [None] * (n - 1) + ["school"],
            "band_min": [30] * n,
            "band_max": [50] * n,
        },
        geometry=[box(123.82 + 0.01 * i, 42.27, 123.83 + 0.01 * i, 42.28) for i in range(n)],
        crs="EPSG:4326",
    )


def buildings_frame() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "id": [101, 102, 103],
            "households": [24, 36, 8],
            "kind": ["apartment", "apartment", "house"],
            "name": ["1号楼", "2号楼", None],
            "floors": [6, 6, 1],
            "units": [2, 3, None],
            "grid_code": ["211202001001001", "211202001001001", "211202001001002"],
        },
        geometry=[
            box(123.8210, 42.2710, 123.8220, 42.2715),
            box(123.8230, 42.2710, 123.8240, 42.2715),
            box(123.8310, 42.2710, 123.8315, 42.2714),
        ],
        crs="EPSG:4326",
    )


CAMERA_IDS = ["21120200001310000001", "21120200001320000002", "21120200001310000003"]


def cameras_frame() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "id": CAMERA_IDS,
            "name": ["红旗街口", "社区东门", "学校北门"],
            "direction": [0.0, 135.5, 360.0],
            "fov": [60.0, 90.0, 110.0],
            "range_m": [80.0, 50.0, 120.0],
            "cam_class": ["class1", "other", "class1"],
            "online": [True, False, True],
            "stream_url": ["http://gw.local/hls/1.m3u8", None, "rtsp://10.0.0.3/ch1"],
        },
        geometry=[Point(123.8251, 42.2752), Point(123.8352, 42.2761), Point(123.8453, 42.2770)],
        crs="EPSG:4326",
    )


STAFF_ROWS = [
    {"id": 1, "name": "张伟", "role": "grid_worker_full", "phone": "13800000001", "unit_code": "211202001001",
     "device_id": "000123", "on_duty": True},
    {"id": 2, "name": "李娜", "role": "police", "phone": "024-72211234", "unit_code": "211202001",
     "device_id": None, "on_duty": False},
    {"id": 3, "name": "王芳", "role": "volunteer", "phone": None, "unit_code": None, "device_id": "A7",
     "on_duty": None},
]


# --------------------------------------------------------------------------- file writers


def write_geojson(frame: gpd.GeoDataFrame, path: Path, *, crs_member: str | None = None) -> Path:
    """A GeoJSON FeatureCollection written by hand: without a ``crs`` member unless asked."""
    data = json.loads(frame.to_json(drop_id=True))
    data.pop("crs", None)
    if crs_member is not None:
        data["crs"] = {"type": "name", "properties": {"name": crs_member}}
    path.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    return path


def write_zipped_shp(
    frame: gpd.GeoDataFrame, path: Path, *, prj: bool = True, encoding: str = "UTF-8", cpg: bool = True
) -> Path:
    folder = path.parent / (path.stem + "_parts")
    folder.mkdir()
    pyogrio.write_dataframe(frame, folder / f"{path.stem}.shp", encoding=encoding)
    skip = {".prj"} if not prj else set()
    skip |= {".cpg"} if not cpg else set()
    with zipfile.ZipFile(path, "w") as zf:
        for part in sorted(folder.iterdir()):
            if part.suffix not in skip:
                zf.write(part, arcname=part.name)
    return path


def counts(store: Any) -> dict[str, int]:
    return {t: store.count(t) for t in TABLES}


def assert_rejected(store: Any, kind: str, path: Path, match: str, **kw: Any) -> ImportRejected:
    before = counts(store)
    with pytest.raises(ImportRejected, match=match) as info:
        import_file(store, kind, path, **kw)
    assert counts(store) == before, "a rejected import changed the store"
    assert info.value.report.errors, "a rejection must carry its errors"
    assert info.value.report.rows_written == 0
    return info.value


def read_sorted(store: Any, table: str, key: str) -> pd.DataFrame:
    return store.read(table).sort_values(key).reset_index(drop=True)


def same_geometry(a: Any, b: Any, tol: float = 1e-7) -> bool:
    return bool(shapely.equals_exact(shapely.normalize(a), shapely.normalize(b), tolerance=tol))


def plain(value: Any) -> Any:
    """Comparable scalar: NaN/NA/None -> None, numpy scalars -> Python."""
    if value is None or value is pd.NA:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):
        value = value.item()
        if isinstance(value, float) and math.isnan(value):
            return None
    return value


# --------------------------------------------------------------------------- formats


def test_geojson_grids_import(store: Any, tmp_path: Path) -> None:
    path = write_geojson(grids_frame(), tmp_path / "grids.geojson")
    report = import_file(store, "grids", path, region=TIELING)
    assert isinstance(report, ImportReport)
    assert report.ok and report.errors == []
    assert (report.kind, report.rows_read, report.rows_written) == ("grids", 3, 3)
    assert report.crs_used == "EPSG:4326"
    assert any("RFC 7946" in w for w in report.warnings)
    got = read_sorted(store, "grids", "code")
    assert got["code"].tolist() == ["211202001001001", "211202001001002", "211202001001003"]
    assert got["unit_code"].tolist() == ["211202001001"] * 3  # taken from the code
    assert got["kind"].tolist() == ["base", "base", "dedicated"]
    assert got.loc[2, "purpose"] == "school"
    assert isinstance(got.geometry.iloc[0], MultiPolygon)
    assert same_geometry(got.geometry.iloc[0], MultiPolygon([box(123.82, 42.27, 123.83, 42.28)]))


def test_gpkg_boundaries_first_layer_and_named_layer(store: Any, tmp_path: Path) -> None:
    path = tmp_path / "plan.gpkg"
    pyogrio.write_dataframe(boundaries_frame(), path, layer="units")
    pyogrio.write_dataframe(grids_frame(), path, layer="grids", append=False)
    assert [str(r[0]) for r in pyogrio.list_layers(path)][:2] == ["units", "grids"]

    report = import_file(store, "boundaries", path)  # first layer
    assert report.rows_written == 4 and report.crs_used == "EPSG:4326"
    units = read_sorted(store, "admin_units", "code").set_index("code")
    assert units.loc["211202", "level"] == "county" and units.loc["211202", "kind"] == "district"
    assert units.loc["211202001", "level"] == "township" and units.loc["211202001", "kind"] == "street"
    assert units.loc["211202001", "parent_code"] == "211202"
    assert units.loc["211202001001", "kind"] == "community"
    assert units.loc["211202001201", "kind"] == "village"
    assert units.loc["211202001201", "parent_code"] == "211202001"

    assert import_file(store, "grids", path, layer="grids").rows_written == 3
    assert_rejected(store, "grids", path, "no layer 'nope'", layer="nope")


def test_zipped_shapefile_cgcs2000(store: Any, tmp_path: Path) -> None:
    frame = buildings_frame().set_crs("EPSG:4490", allow_override=True)
    path = write_zipped_shp(frame, tmp_path / "buildings.zip")
    report = import_file(store, "buildings", path, region=TIELING)
    assert report.rows_written == 3
    assert report.crs_used == "EPSG:4490"
    got = read_sorted(store, "buildings", "id")
    assert got["id"].tolist() == [101, 102, 103]
    assert got["households"].tolist() == [24, 36, 8]
    assert got["unit_code"].tolist() == ["211202001001"] * 3  # from grid_code
    assert same_geometry(got.geometry.iloc[0], box(123.8210, 42.2710, 123.8220, 42.2715))


def test_zipped_gbk_shapefile_without_cpg(store: Any, tmp_path: Path) -> None:
    """Older Chinese tools write GBK text into the DBF without a .cpg; GDAL alone reads mojibake."""
    frame = boundaries_frame().rename(columns={"code": "编码", "name": "名称"})
    path = write_zipped_shp(frame, tmp_path / "units.zip", encoding="GBK", cpg=False)
    with zipfile.ZipFile(path) as zf:
        assert not any(n.endswith(".cpg") for n in zf.namelist())
    report = import_file(store, "boundaries", path)
    assert report.rows_written == 4
    assert any("GBK" in w for w in report.warnings)
    got = read_sorted(store, "admin_units", "code")
    assert got["name"].tolist() == ["银州区", "红旗街道", "红旗社区", "南山村"]


def test_plain_shapefile_and_missing_prj(store: Any, tmp_path: Path) -> None:
    shp = tmp_path / "cams.shp"
    pyogrio.write_dataframe(cameras_frame(), shp, encoding="UTF-8")
    shp.with_suffix(".prj").unlink()
    error = assert_rejected(store, "cameras", shp, "no CRS: give --crs")
    assert ".prj" in str(error)
    report = import_file(store, "cameras", shp, crs="EPSG:4326")
    assert report.rows_written == 3 and report.crs_used == "EPSG:4326"
    assert sorted(store.read("cameras")["id"].tolist()) == sorted(CAMERA_IDS)


def test_zipped_shapefile_without_prj_is_rejected(store: Any, tmp_path: Path) -> None:
    path = write_zipped_shp(grids_frame(), tmp_path / "grids.zip", prj=False)
    assert_rejected(store, "grids", path, "no CRS: give --crs")


def test_csv_gbk_with_chinese_headers(store: Any, tmp_path: Path) -> None:
    text = (  # trailing commas: the empty columns a spreadsheet leaves behind
        "编号,姓名,角色,电话,所属村社区编码,设备号,在岗,,\n"
        "1,张伟,专职网格员,13800000001,211202001001,000123,是,,\n"
        "2,李娜,网格警,024-72211234,211202001,,否,,\n"
        "3,王芳,志愿者,,,A7,,,\n"
    )
    path = tmp_path / "staff.csv"
    path.write_bytes(text.encode("gbk"))
    report = import_file(store, "staff", path)
    assert report.rows_written == 3 and report.crs_used is None
    assert report.warnings == []
    got = read_sorted(store, "staff", "id")
    assert got["name"].tolist() == ["张伟", "李娜", "王芳"]
    assert got["role"].tolist() == ["grid_worker_full", "police", "volunteer"]
    assert got["phone"].tolist()[:2] == ["13800000001", "024-72211234"]
    assert got.loc[0, "device_id"] == "000123"  # leading zeros kept
    assert [plain(v) for v in got["on_duty"]] == [True, False, None]


def test_csv_utf8_bom_cameras_from_lonlat(store: Any, tmp_path: Path) -> None:
    path = tmp_path / "cams.csv"
    text = "国标编码,名称,lng,lat,方向,视角,视距,在线\n" + "".join(
        f"{cid},{name},{p.x},{p.y},{d},{f},{r},{'在线' if o else '离线'}\n"
        for cid, name, p, d, f, r, o in zip(
            CAMERA_IDS, ["甲", "乙", "丙"], cameras_frame().geometry, [0, 90, 360], [60, 60, 60],
            [80, 80, 80], [True, False, True], strict=True,
        )
    )
    path.write_text(text, encoding="utf-8-sig")
    assert_rejected(store, "cameras", path, "no CRS: give --crs")  # a CSV has no CRS
    report = import_file(store, "cameras", path, crs="wgs84", region=TIELING)
    assert report.rows_written == 3
    got = store.read("cameras").set_index("id").loc[CAMERA_IDS]
    assert got["direction"].tolist() == [0.0, 90.0, 360.0]
    assert [plain(v) for v in got["online"]] == [True, False, True]
    assert abs(got.geometry.iloc[0].x - 123.8251) < 1e-9


def test_csv_wkt_column(store: Any, tmp_path: Path) -> None:
    frame = buildings_frame()
    table = pd.DataFrame(frame.drop(columns="geometry"))
    table["WKT"] = [g.wkt for g in frame.geometry]
    path = tmp_path / "b.csv"
    table.to_csv(path, index=False)
    report = import_file(store, "buildings", path, crs="EPSG:4326")
    assert report.rows_written == 3
    assert store.count("buildings") == 3


def test_upsert_updates_and_replace_starts_over(store: Any, tmp_path: Path) -> None:
    import_file(store, "grids", write_geojson(grids_frame(3), tmp_path / "a.geojson"))
    renamed = grids_frame(2)
    renamed["name"] = ["新一", "新二"]
    import_file(store, "grids", write_geojson(renamed, tmp_path / "b.geojson"), mode="upsert")
    got = read_sorted(store, "grids", "code")
    assert got["name"].tolist()[:2] == ["新一", "新二"] and len(got) == 3
    import_file(store, "grids", write_geojson(renamed, tmp_path / "c.geojson"), mode="replace")
    assert store.count("grids") == 2


# --------------------------------------------------------------------------- CRS


def test_gcj02_input_is_shifted_back_to_wgs84(store: Any, tmp_path: Path) -> None:
    wgs = Point(123.8440, 42.2900)  # Tieling, Yinzhou district
    glon, glat = wgs84_to_gcj02(wgs.x, wgs.y)
    frame = cameras_frame().iloc[[0]].copy()
    frame = frame.set_geometry([Point(glon, glat)], crs="EPSG:4326")
    path = write_geojson(frame, tmp_path / "amap.geojson")
    report = import_file(store, "cameras", path, crs="gcj02", region=TIELING)
    assert report.crs_used == "gcj02"
    got = store.read("cameras").geometry.iloc[0]
    assert abs(got.x - wgs.x) < 1e-7 and abs(got.y - wgs.y) < 1e-7
    # GCJ-02 lies east (and a little north) of WGS84 here: the import moves the point back
    # west by a few hundred metres.
    assert got.x < glon
    _, _, metres = GEOD.inv(glon, glat, got.x, got.y)
    assert 300 < metres < 900


def test_gcj02_mislabelled_as_wgs84_and_file_crs_wins_otherwise(store: Any, tmp_path: Path) -> None:
    wgs = Point(123.8440, 42.2900)
    glon, glat = wgs84_to_gcj02(wgs.x, wgs.y)
    frame = cameras_frame().iloc[[0]].set_geometry([Point(glon, glat)], crs="EPSG:4326")
    # the file SAYS WGS84 (a crs member) but the planner knows it came from AMap
    path = write_geojson(frame, tmp_path / "labelled.geojson", crs_member="urn:ogc:def:crs:OGC:1.3:CRS84")
    report = import_file(store, "cameras", path, crs="gcj02")
    assert report.crs_used == "gcj02" and any("often labelled WGS84" in w for w in report.warnings)
    got = store.read("cameras").geometry.iloc[0]
    assert abs(got.x - wgs.x) < 1e-7

    # a GeoPackage in CGCS2000 with --crs EPSG:3857: the file's CRS wins, with a warning
    gpkg = tmp_path / "cams.gpkg"
    pyogrio.write_dataframe(cameras_frame().set_crs("EPSG:4490", allow_override=True), gpkg)
    report = import_file(store, "cameras", gpkg, crs="EPSG:3857")
    assert report.crs_used == "EPSG:4490"
    assert any("overrides --crs" in w for w in report.warnings)


def test_bad_crs_argument(store: Any, tmp_path: Path) -> None:
    path = write_geojson(grids_frame(), tmp_path / "g.geojson")
    assert_rejected(store, "grids", path, "not a coordinate system", crs="EPSG:999999")


def test_geojson_in_metres_without_crs(store: Any, tmp_path: Path) -> None:
    frame = grids_frame().to_crs("EPSG:32651")
    path = write_geojson(frame, tmp_path / "metres.geojson")
    assert_rejected(store, "grids", path, "no CRS: give --crs")
    report = import_file(store, "grids", path, crs="EPSG:32651", region=TIELING)
    assert report.rows_written == 3
    got = read_sorted(store, "grids", "code")
    assert same_geometry(got.geometry.iloc[0], MultiPolygon([box(123.82, 42.27, 123.83, 42.28)]), 1e-6)


# --------------------------------------------------------------------------- bad input catalogue


def test_file_not_found_and_unknown_type(store: Any, tmp_path: Path) -> None:
    assert_rejected(store, "grids", tmp_path / "nope.geojson", "file not found")
    odd = tmp_path / "grids.dat"
    odd.write_bytes(b"\x01\x02 hello")
    assert_rejected(store, "grids", odd, "cannot tell what kind of file")
    xlsx = tmp_path / "staff.xlsx"
    xlsx.write_bytes(b"PK\x03\x04junk")
    assert_rejected(store, "staff", xlsx, "save the sheet as CSV")


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("corrupt.gpkg", b"this is not a database at all" * 10, "not a valid GeoPackage"),
        ("fake.gpkg", b"SQLite format 3\x00" + b"\x00" * 200, "could not read fake.gpkg"),
        ("corrupt.zip", b"PK\x03\x04" + b"\x00garbage" * 20, "not a valid zip"),
        ("truncated.geojson", b'{"type": "FeatureCollection", "features": [{"type": "Feat', "could not read"),
        ("text.geojson", b"hello world", "not a valid GeoJSON"),
        ("binary.csv", b"\x00\x01\x02\x03" * 50, "binary file"),
    ],
)
def test_unreadable_or_corrupt_file(store: Any, tmp_path: Path, name: str, content: bytes, match: str) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    assert_rejected(store, "grids", path, match)


def test_zip_without_shapefile_or_sidecars(store: Any, tmp_path: Path) -> None:
    notes = tmp_path / "notes.zip"
    with zipfile.ZipFile(notes, "w") as zf:
        zf.writestr("readme.txt", "hello")
    assert_rejected(store, "grids", notes, "holds no .shp")
    partial = tmp_path / "partial.zip"
    folder = tmp_path / "parts"
    folder.mkdir()
    pyogrio.write_dataframe(grids_frame(), folder / "g.shp")
    with zipfile.ZipFile(partial, "w") as zf:
        zf.write(folder / "g.shp", arcname="g.shp")
        zf.write(folder / "g.prj", arcname="g.prj")
    assert_rejected(store, "grids", partial, r"without its \.shx and \.dbf")


@pytest.mark.parametrize("name", ["empty.geojson", "empty.csv", "empty.gpkg", "empty.zip"])
def test_empty_file(store: Any, tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(b"")
    assert_rejected(store, "grids", path, "empty")


def test_no_rows(store: Any, tmp_path: Path) -> None:
    path = tmp_path / "none.geojson"
    path.write_text('{"type": "FeatureCollection", "features": []}')
    assert_rejected(store, "grids", path, "has no rows")
    header_only = tmp_path / "staff.csv"
    header_only.write_text("id,name,role\n")
    assert_rejected(store, "staff", header_only, "has no rows")


def test_missing_key_column(store: Any, tmp_path: Path) -> None:
    path = tmp_path / "staff.csv"
    path.write_text("name,role\n张伟,police\n")
    assert_rejected(store, "staff", path, "no id column")


def test_swapped_lat_lon(store: Any, tmp_path: Path) -> None:
    frame = grids_frame()
    frame = frame.set_geometry(shapely.transform(frame.geometry.array, lambda xy: xy[:, ::-1]))
    path = write_geojson(frame, tmp_path / "swapped.geojson")
    error = assert_rejected(store, "grids", path, "(?i)swap", region=TIELING, crs="EPSG:4326")
    assert "row 1" in str(error)


def test_self_intersecting_polygon_is_repaired(store: Any, tmp_path: Path) -> None:
    frame = grids_frame()
    bowtie = Polygon([(123.82, 42.27), (123.83, 42.28), (123.83, 42.27), (123.82, 42.28), (123.82, 42.27)])
    assert not bowtie.is_valid
    frame = frame.set_geometry([bowtie, *frame.geometry.iloc[1:]], crs="EPSG:4326")
    path = tmp_path / "bowtie.gpkg"
    pyogrio.write_dataframe(frame, path)
    report = import_file(store, "grids", path, region=TIELING)
    assert report.rows_written == 3 and report.repaired >= 1
    assert any("row 1" in w for w in report.warnings), report.warnings
    got = read_sorted(store, "grids", "code")
    assert got.geometry.iloc[0].is_valid and got.geometry.iloc[0].area > 0


def test_empty_geometry(store: Any, tmp_path: Path) -> None:
    frame = grids_frame()
    table = pd.DataFrame(frame.drop(columns="geometry"))
    table["wkt"] = [frame.geometry.iloc[0].wkt, "POLYGON EMPTY", frame.geometry.iloc[2].wkt]
    path = tmp_path / "g.csv"
    table.to_csv(path, index=False)
    error = assert_rejected(store, "grids", path, "(?i)empty", crs="wgs84")
    assert "row 2" in str(error)


def test_nan_coordinate(store: Any, tmp_path: Path) -> None:
    path = tmp_path / "cams.csv"
    path.write_text(
        "id,name,lon,lat\n"
        f"{CAMERA_IDS[0]},甲,123.82,42.27\n"
        f"{CAMERA_IDS[1]},乙,123.83,NaN\n"
    )
    error = assert_rejected(store, "cameras", path, "(?i)nan|not a number", crs="wgs84")
    assert "row 2" in str(error)


def test_wrong_geometry_type(store: Any, tmp_path: Path) -> None:
    points = grids_frame()
    points = points.set_geometry([g.centroid for g in points.geometry], crs="EPSG:4326")
    path = write_geojson(points, tmp_path / "points.geojson")
    error = assert_rejected(store, "grids", path, "Point is not allowed here")
    assert len(error.report.errors) == 3  # one message per row, not two

    two_parts = buildings_frame()
    two_parts.loc[0, "geometry"] = MultiPolygon(
        [box(123.821, 42.271, 123.822, 42.2715), box(123.823, 42.271, 123.824, 42.2715)]
    )
    path = write_geojson(two_parts, tmp_path / "multi.geojson")
    assert_rejected(store, "buildings", path, "row 1 \\(id 101\\): the building outline has 2 separate parts")


def test_bad_wkt(store: Any, tmp_path: Path) -> None:
    path = tmp_path / "g.csv"
    path.write_text('code,name,wkt\n211202001001001,一,"POLYGON ((1 2, 3"\n')  # quoted: a WKT has commas
    assert_rejected(store, "grids", path, "not valid WKT", crs="wgs84")


def test_duplicate_codes_within_file(store: Any, tmp_path: Path) -> None:
    frame = grids_frame()
    frame.loc[2, "code"] = frame.loc[0, "code"]
    path = write_geojson(frame, tmp_path / "dup.geojson")
    assert_rejected(store, "grids", path, r"code 211202001001001 appears 2 times in the file \(rows 1, 3\)")


def test_duplicate_against_store_in_append_mode(store: Any, tmp_path: Path) -> None:
    import_file(store, "grids", write_geojson(grids_frame(2), tmp_path / "first.geojson"))
    assert store.count("grids") == 2
    path = write_geojson(grids_frame(3), tmp_path / "second.geojson")  # 001, 002 clash; 003 new
    error = assert_rejected(store, "grids", path, "already exists in the store", mode="append")
    assert "211202001001001" in str(error) and "211202001001002" in str(error)
    assert store.count("grids") == 2
    assert import_file(store, "grids", path, mode="upsert").rows_written == 3


@pytest.mark.parametrize("households", [0, -3, 2.5])
def test_bad_households(store: Any, tmp_path: Path, households: float) -> None:
    frame = buildings_frame()
    frame["households"] = frame["households"].astype(float)
    frame.loc[1, "households"] = households
    path = tmp_path / "b.gpkg"
    pyogrio.write_dataframe(frame, path)
    error = assert_rejected(store, "buildings", path, "households must be a (positive )?whole number")
    assert "row 2 (id 102)" in str(error)


def test_unknown_role(store: Any, tmp_path: Path) -> None:
    path = tmp_path / "staff.csv"
    pd.DataFrame(STAFF_ROWS).assign(role=["police", "chef", "volunteer"]).to_csv(path, index=False)
    error = assert_rejected(store, "staff", path, "role 'chef' is not one of")
    assert "row 2 (id 2)" in str(error)


def test_bad_camera_id_and_angles(store: Any, tmp_path: Path) -> None:
    frame = cameras_frame()
    frame.loc[0, "id"] = "2112020000131000001"  # 19 digits
    frame.loc[1, "direction"] = 361.0
    frame.loc[2, "fov"] = -5.0
    path = write_geojson(frame, tmp_path / "cams.geojson")
    error = assert_rejected(store, "cameras", path, "20-digit GB/T 28181")
    text = str(error)
    assert "direction must be between 0 and 360 degrees, got 361" in text
    assert "fov must be between 0 and 360 degrees, got -5" in text
    assert text.index("row 1") < text.index("row 2") < text.index("row 3")


def test_a_partial_camera_import_reports_bad_rows_and_imports_the_rest(store: Any, tmp_path: Path) -> None:
    frame = cameras_frame()
    n = len(frame)
    frame.loc[0, "id"] = "2112020000131000001"  # 19 digits
    frame.loc[1, "fov"] = 400.0
    path = write_geojson(frame, tmp_path / "cams.geojson")
    report = import_file(store, "cameras", path, partial=True)
    assert report.rows_written == n - 2 and report.rows_skipped == 2
    assert any("row 1" in e and "20-digit" in e for e in report.errors)
    assert any("row 2" in e and "fov must be between 0 and 360" in e for e in report.errors)
    assert store.count("cameras") == n - 2
    assert "2 skipped" in report.summary()


def test_bad_codes(store: Any, tmp_path: Path) -> None:
    frame = boundaries_frame()
    frame["code"] = ["21120", "211202001", "2.11202E+11", "211202001201"]
    frame["level"] = [None, "village", None, None]
    path = write_geojson(frame, tmp_path / "units.geojson")
    text = str(assert_rejected(store, "boundaries", path, "has 5 digits"))
    assert "level village does not fit a 9-digit code" in text
    assert "scientific notation" in text


def test_oversized_file(store: Any, tmp_path: Path) -> None:
    path = write_geojson(grids_frame(), tmp_path / "big.geojson")
    assert_rejected(store, "grids", path, "more than the 100 allowed", max_bytes=100)


def test_many_problems_are_summarised(store: Any, tmp_path: Path) -> None:
    path = tmp_path / "staff.csv"
    path.write_text("id,name,role\n" + "".join(f"{i},n{i},cook\n" for i in range(1, 31)))
    error = assert_rejected(store, "staff", path, r"\(30 problems\)")
    assert "... and 10 more" in str(error)
    assert len(error.report.errors) == 30


def test_unknown_kind_and_mode(store: Any, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown kind"):
        import_file(store, "parcels", tmp_path / "x.geojson")
    with pytest.raises(ValueError, match="mode must be"):
        import_file(store, "grids", tmp_path / "x.geojson", mode="merge")  # type: ignore[arg-type]


# --------------------------------------------------------------------------- hostile text


def test_hostile_text_round_trips_verbatim(store: Any, tmp_path: Path) -> None:
    frame = grids_frame(len(HOSTILE))
    frame["name"] = HOSTILE
    import_file(store, "grids", write_geojson(frame, tmp_path / "h.geojson"))
    assert read_sorted(store, "grids", "code")["name"].tolist() == HOSTILE
    out = tmp_path / "h.csv"
    export_file(store, "grids", out)
    import_file(store, "grids", out, crs="wgs84", mode="replace")
    assert read_sorted(store, "grids", "code")["name"].tolist() == HOSTILE
    staff = tmp_path / "s.csv"
    pd.DataFrame(STAFF_ROWS).assign(name=HOSTILE[:3]).to_csv(staff, index=False)
    import_file(store, "staff", staff)
    assert read_sorted(store, "staff", "id")["name"].tolist() == HOSTILE[:3]


# --------------------------------------------------------------------------- export


def seed(store: Any, tmp_path: Path) -> None:
    import_file(store, "boundaries", write_geojson(boundaries_frame(), tmp_path / "seed_units.geojson"))
    import_file(store, "grids", write_geojson(grids_frame(), tmp_path / "seed_grids.geojson"))
    import_file(store, "buildings", write_geojson(buildings_frame(), tmp_path / "seed_b.geojson"))
    import_file(store, "cameras", write_geojson(cameras_frame(), tmp_path / "seed_c.geojson"))
    staff = tmp_path / "seed_staff.csv"
    pd.DataFrame(STAFF_ROWS).to_csv(staff, index=False)
    import_file(store, "staff", staff)


KEYS = {"boundaries": ("admin_units", "code"), "grids": ("grids", "code"), "buildings": ("buildings", "id"),
        "cameras": ("cameras", "id"), "staff": ("staff", "id")}


def assert_same_rows(before: pd.DataFrame, after: pd.DataFrame, columns: list[str]) -> None:
    assert len(before) == len(after)
    for col in columns:
        assert [plain(v) for v in before[col]] == [plain(v) for v in after[col]], col
    if "geometry" in before.columns:
        for a, b in zip(before.geometry, after.geometry, strict=True):
            assert same_geometry(a, b), (a.wkt, b.wkt)


@pytest.mark.parametrize("ext", ["geojson", "gpkg", "zip", "shp", "csv"])
@pytest.mark.parametrize("kind", ["boundaries", "grids", "buildings", "cameras", "staff"])
def test_export_then_import_round_trip(store: Any, tmp_path: Path, kind: str, ext: str) -> None:
    if kind == "staff" and ext in ("zip", "shp"):
        with pytest.raises(ValueError, match="no geometry"):
            export_file(store, kind, tmp_path / f"out.{ext}")
        return
    seed(store, tmp_path)
    table, key = KEYS[kind]
    before = read_sorted(store, table, key)
    out = tmp_path / "export" / f"{kind}.{ext}"
    assert export_file(store, kind, out) == len(before)
    crs = "wgs84" if ext == "csv" else None
    columns = [c for c in before.columns if c != "geometry"]
    fresh = open_store(f"sqlite:///{tmp_path / 'fresh.sqlite'}")
    try:
        report = import_file(fresh, kind, out, crs=crs, mode="append")
        assert report.ok and report.rows_written == len(before), report.errors
        assert_same_rows(before, read_sorted(fresh, table, key), columns)
    finally:
        fresh.close()
    # and back into the same kind of store it came from (replace: a fresh table)
    report = import_file(store, kind, out, crs=crs, mode="replace")
    assert report.rows_written == len(before)
    assert_same_rows(before, read_sorted(store, table, key), columns)


def test_export_keeps_codes_as_text(store: Any, tmp_path: Path) -> None:
    seed(store, tmp_path)
    shp = tmp_path / "grids.zip"
    export_file(store, "grids", shp)
    with zipfile.ZipFile(shp) as zf:
        assert sorted(Path(n).suffix for n in zf.namelist())[:4] == [".cpg", ".dbf", ".prj", ".shp"]
    info = pyogrio.read_info(f"/vsizip/{shp}/grids.shp")
    fields = dict(zip(info["fields"], info["ogr_types"], strict=True))
    assert fields["code"] == "OFTString" and fields["unit_code"] == "OFTString"
    staff_csv = tmp_path / "staff.csv"
    assert export_file(store, "staff", staff_csv) == 3
    raw = staff_csv.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")  # BOM: spreadsheets read the Chinese right
    text = raw.decode("utf-8-sig")
    assert ",000123," in text and "211202001001" in text and "张伟" in text


def test_export_gcj02_and_back(store: Any, tmp_path: Path) -> None:
    seed(store, tmp_path)
    out = tmp_path / "cams_gcj.geojson"
    export_file(store, "cameras", out, crs="gcj02")
    shifted = pyogrio.read_dataframe(out).sort_values("id").reset_index(drop=True)
    stored = read_sorted(store, "cameras", "id")
    for s, w in zip(shifted.geometry, stored.geometry, strict=True):
        glon, glat = wgs84_to_gcj02(w.x, w.y)
        assert abs(s.x - glon) < 1e-9 and abs(s.y - glat) < 1e-9
    import_file(store, "cameras", out, crs="gcj02", mode="replace")
    back = read_sorted(store, "cameras", "id")
    for a, b in zip(stored.geometry, back.geometry, strict=True):
        assert abs(a.x - b.x) < 1e-7 and abs(a.y - b.y) < 1e-7


def test_export_where_and_bad_extension(store: Any, tmp_path: Path) -> None:
    seed(store, tmp_path)
    out = tmp_path / "villages.gpkg"
    assert export_file(store, "boundaries", out, where={"level": "village"}) == 2
    assert sorted(pyogrio.read_dataframe(out)["code"]) == ["211202001001", "211202001201"]
    with pytest.raises(ValueError, match="cannot export"):
        export_file(store, "grids", tmp_path / "grids.kml")
