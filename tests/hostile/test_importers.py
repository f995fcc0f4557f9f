"""Hostile input against the file importers (issue #8): ``services.files.import_file`` and the 12345
hotline import ``services.hotline.import_export``.

Every case is a file written to ``tmp_path`` and an expected outcome: either a clear rejection
(``ImportRejected``/``HotlineError`` whose message names the problem) after which every table is
exactly as before, or a safe import whose result is checked by reading it back. Never an
unexpected exception type, never a partial write.
"""

from __future__ import annotations

import csv
import io
import json
import math
import random
import shutil
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import pytest
import shapely
from shapely.geometry import Point, box

from services import hotline
from services.files import ImportRejected, import_file
from store import open_store
from tests.fixtures.demo_db import FIXED_NOW, copy_demo

LON, LAT = 123.84, 42.29
TIELING = (123.0, 41.5, 125.5, 43.8)  # (min lon, min lat, max lon, max lat)
TABLES = {"admin_units": "code", "grids": "code", "buildings": "id", "staff": "id", "cameras": "id"}

SQL = "'; DROP TABLE grids;--"
XSS = "<script>alert('x')</script>"
IMG = '<img src=x onerror="alert(1)">'
HOSTILE = (SQL, XSS, IMG)

GRID_A, GRID_B = "211202001001001", "211202001001002"
CAM_A = "21120200001310000001"


# --------------------------------------------------------------------------- file builders


def fc(features: list[dict[str, Any]], **extra: Any) -> bytes:
    return json.dumps({"type": "FeatureCollection", **extra, "features": features}, ensure_ascii=False).encode()


def feature(props: dict[str, Any], geometry: Any) -> dict[str, Any]:
    geom = geometry if geometry is None or isinstance(geometry, dict) else shapely.geometry.mapping(geometry)
    return {"type": "Feature", "properties": props, "geometry": geom}


def square(i: int = 0, size: float = 0.001) -> shapely.Polygon:
    return box(LON + 0.002 * i, LAT, LON + 0.002 * i + size, LAT + size)


def grid(code: str, name: str = "网格", geometry: Any = None, **props: Any) -> dict[str, Any]:
    return feature({"code": code, "name": name, **props}, square(int(code[-1]) if code[-1].isdigit() else 0) if geometry is None else geometry)


def grids_fc(*features: dict[str, Any]) -> bytes:
    return fc(list(features))


def csv_bytes(text: str, encoding: str = "utf-8") -> bytes:
    return text.encode(encoding)


def wkt_grid_csv(wkt: str, code: str = "211202001001009") -> bytes:
    return f'code,name,wkt\n{code},x,"{wkt}"\n'.encode()


def camera_csv(rows: list[str], header: str = "id,name,direction,fov,range_m,lon,lat") -> bytes:
    return (header + "\n" + "\n".join(rows) + "\n").encode()


def cam_row(ident: str = "21120200001310000009", direction: str = "90", fov: str = "60", rng: str = "50",
            lon: float = LON, lat: float = LAT, name: str = "cam") -> str:  # fmt: skip
    return f"{ident},{name},{direction},{fov},{rng},{lon},{lat}"


def shp_zip(frame: gpd.GeoDataFrame, *, prj: bool = True, stem: str = "layer",
            rename: Callable[[str], str] | None = None) -> Callable[[Path], None]:  # fmt: skip
    """A writer of a zipped Shapefile; ``rename`` turns each member's name into the archived one."""

    def write(path: Path) -> None:
        parts = path.parent / f"{path.stem}_parts"
        parts.mkdir()
        pyogrio.write_dataframe(frame, parts / f"{stem}.shp", encoding="UTF-8")
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
            for part in sorted(parts.iterdir()):
                if part.suffix == ".prj" and not prj:
                    continue
                zf.write(part, arcname=rename(part.name) if rename else part.name)
        shutil.rmtree(parts)

    return write


def projected_grids() -> gpd.GeoDataFrame:
    """Two grids in UTM 51N metres (as a county's surveying office sends them)."""
    frame = gpd.GeoDataFrame(
        {"code": [GRID_A[:-1] + "7", GRID_A[:-1] + "8"], "name": ["a", "b"]},
        geometry=[square(7), square(8)], crs="EPSG:4326",
    )  # fmt: skip
    return frame.to_crs("EPSG:32651")


def zip_bomb(path: Path) -> None:
    """A few hundred kB of zip that declares (and holds) more than 200 MB of zeros."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name in ("bomb.shp", "bomb.shx", "bomb.dbf"):
            with zf.open(name, "w", force_zip64=True) as out:
                if name == "bomb.shp":
                    chunk = b"\0" * (1 << 20)
                    for _ in range(205):
                        out.write(chunk)


def lying_zip_bomb(path: Path) -> None:
    """A zip whose headers claim small sizes while its member inflates to 8 MB."""
    zip_bomb_small = io.BytesIO()
    with zipfile.ZipFile(zip_bomb_small, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.shp", b"\0" * (8 << 20))
        zf.writestr("x.shx", b"")
        zf.writestr("x.dbf", b"")
    data = bytearray(zip_bomb_small.getvalue())
    # patch the uncompressed size of x.shp in its local header (offset 22) and central record
    size = (8 << 20).to_bytes(4, "little")
    data[22:26] = (100).to_bytes(4, "little")
    cd = data.find(b"PK\x01\x02")
    assert data[cd + 24 : cd + 28] == size
    data[cd + 24 : cd + 28] = (100).to_bytes(4, "little")
    path.write_bytes(bytes(data))


def many_vertices(n: int) -> Callable[[Path], None]:
    """A grid whose outline is a circle with ``n`` vertices, as WKT in a CSV."""

    def write(path: Path) -> None:
        angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
        ring = np.column_stack([LON + 0.005 * np.cos(angles), LAT + 0.005 * np.sin(angles)])
        path.write_bytes(wkt_grid_csv(shapely.Polygon(ring).wkt))

    return write


# --------------------------------------------------------------------------- the store before each case


def seed(store: Any, tmp_path: Path) -> None:
    """Rows of every kind already in the store, so "unchanged after a rejection" means something."""
    folder = tmp_path / "seed"
    folder.mkdir()
    (folder / "g.geojson").write_bytes(grids_fc(grid(GRID_A, "甲"), grid(GRID_B, "乙")))
    import_file(store, "grids", folder / "g.geojson")
    (folder / "s.csv").write_text("id,name,role\n1,张伟,grid_worker_full\n", encoding="utf-8")
    import_file(store, "staff", folder / "s.csv")
    (folder / "c.csv").write_bytes(camera_csv([cam_row(CAM_A, name="东门")]))
    import_file(store, "cameras", folder / "c.csv", crs="wgs84")
    (folder / "b.geojson").write_bytes(fc([feature({"id": 7, "households": 12, "name": "1号楼"}, square(0, 0.0002))]))
    import_file(store, "buildings", folder / "b.geojson")


def snapshot(store: Any) -> dict[str, list[dict[str, Any]]]:
    """Every row of every importable table, comparable (geometry as WKB hex, NaN as None)."""
    out: dict[str, list[dict[str, Any]]] = {}
    for table, key in TABLES.items():
        frame = store.read(table)
        rows = []
        for rec in frame.sort_values(key).to_dict("records") if len(frame) else []:
            row = {}
            for col, value in rec.items():
                if isinstance(value, shapely.Geometry):
                    value = shapely.to_wkb(value, hex=True)
                elif value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
                    value = None
                row[col] = value
            rows.append(row)
        out[table] = rows
    return out


# --------------------------------------------------------------------------- the catalogue


@dataclass
class Case:
    kind: str
    name: str  # the file name (its extension picks the format)
    content: bytes | Callable[[Path], None]
    match: str | None  # the rejection's message must match this; None: a safe import
    options: dict[str, Any] = field(default_factory=dict)
    check: Callable[[Any, Any], None] | None = None  # (store, report) after a safe import


def names_are(table: str, key: str, expected: dict[Any, str]) -> Callable[..., None]:
    """The ``name`` column of ``table`` holds exactly ``expected`` (key -> text), read back."""

    def check(store: Any, report: Any) -> None:
        rows = store.read(table).set_index(key)
        for k, value in expected.items():
            assert rows.loc[k, "name"] == value, (k, rows.loc[k, "name"])

    return check


def rows_are(table: str, n: int) -> Callable[..., None]:
    def check(store: Any, report: Any) -> None:
        assert store.count(table) == n

    return check


def gb18030_staff(store: Any, report: Any) -> None:
    assert store.read("staff", where={"id": 2})["name"].iloc[0] == "李娜·网格员"


def bowtie_repaired(store: Any, report: Any) -> None:
    geom = store.read("grids", where={"code": "211202001001009"}).geometry.iloc[0]
    assert geom.is_valid and geom.area > 0 and report.repaired == 1
    assert any("repaired" in w or "invalid" in w for w in report.warnings), report.warnings


def upsert_updates(store: Any, report: Any) -> None:
    assert store.count("grids") == 2  # seeded A and B; A updated in place
    assert store.read("grids", where={"code": GRID_A})["name"].iloc[0] == "新名字"


def partial_cameras(store: Any, report: Any) -> None:
    assert report.rows_written == 1 and report.rows_skipped == 2
    assert set(store.read("cameras")["id"]) == {CAM_A, "21120200001310000009"}


def huge_extent(store: Any, report: Any) -> None:
    # accepted: it covers the region, so it is only "partly outside" (a warning), see the report
    assert any("outside" in w for w in report.warnings), report.warnings
    assert store.count("grids") == 3


def unused_header(store: Any, report: Any) -> None:
    assert store.count("staff") == 2
    assert any(SQL in w and "not used" in w for w in report.warnings), report.warnings


def big_polygon(store: Any, report: Any) -> None:
    geom = store.read("grids", where={"code": "211202001001009"}).geometry.iloc[0]
    assert len(shapely.get_coordinates(geom)) > 50_000


BOWTIE = shapely.Polygon([(LON, LAT), (LON + 0.001, LAT + 0.001), (LON + 0.001, LAT), (LON, LAT + 0.001), (LON, LAT)])
_rng = random.Random(8)
GARBAGE_NO_NUL = bytes(_rng.randrange(128, 256) for _ in range(4096))

STAFF_HOSTILE_CSV = (
    "id,name,role,phone,device_id\n"
    + "".join(f'{10 + i},"{t.replace(chr(34), chr(34) * 2)}",volunteer,"{t.replace(chr(34), chr(34) * 2)}",'
              f'"{t.replace(chr(34), chr(34) * 2)}"\n' for i, t in enumerate(HOSTILE))
)  # fmt: skip


def staff_hostile_check(store: Any, report: Any) -> None:
    rows = store.read("staff").set_index("id")
    for i, text in enumerate(HOSTILE):
        assert [rows.loc[10 + i, c] for c in ("name", "phone", "device_id")] == [text] * 3
    assert store.count("grids") == 2  # "DROP TABLE grids" was text, not SQL


CAMERAS_HOSTILE = fc([
    feature({"id": f"2112020000131000001{i}", "name": t, "stream_url": t, "cam_class": "other"}, Point(LON, LAT))
    for i, t in enumerate(HOSTILE)
])  # fmt: skip


def cameras_hostile_check(store: Any, report: Any) -> None:
    rows = store.read("cameras").set_index("id")
    for i, text in enumerate(HOSTILE):
        assert rows.loc[f"2112020000131000001{i}", "name"] == text
        assert rows.loc[f"2112020000131000001{i}", "stream_url"] == text
    assert any("stream_url" in w for w in report.warnings)  # not an address: said, but kept verbatim


BUILDINGS_HOSTILE = fc([
    feature({"id": 100 + i, "households": 5, "name": t, "kind": t}, square(i, 0.0002)) for i, t in enumerate(HOSTILE)
])  # fmt: skip


def buildings_hostile_check(store: Any, report: Any) -> None:
    rows = store.read("buildings").set_index("id")
    for i, text in enumerate(HOSTILE):
        assert rows.loc[100 + i, "name"] == text and rows.loc[100 + i, "kind"] == text


BOUNDARIES_HOSTILE = fc([
    feature({"code": "211202", "name": SQL, "kind": "district"}, box(123.7, 42.2, 123.95, 42.4)),
    feature({"code": "211202001", "name": XSS, "kind": "street"}, box(123.8, 42.25, 123.9, 42.32)),
    feature({"code": "211202001001", "name": IMG, "kind": "community"}, box(123.82, 42.27, 123.86, 42.3)),
])  # fmt: skip


CASES: list[Any] = [
    # ---- malformed CSV
    pytest.param(Case("staff", "s.csv", b'id,name,role\n5,"Zhang,grid_worker_full\n6,Li,police\n',
                      r"could not read s\.csv as CSV"), id="csv-unbalanced-quote"),  # fmt: skip
    pytest.param(Case("staff", "s.csv", b"id,name,role\n5,Zhang,police,extra,more\n6,Li,police\n",
                      r"could not read s\.csv as CSV: a row has more fields than the header"),
                 id="csv-ragged-long-first-row"),  # fmt: skip
    pytest.param(Case("staff", "s.csv", b"id,name,role\n5,Zhang,police\n6,Li,police,x\n",
                      r"could not read s\.csv as CSV.*Expected 3 fields in line 3"), id="csv-ragged-long-later-row"),
    pytest.param(Case("staff", "s.csv", b"id,name,role\n5,Zhang,police,\n6,Li,police,\n",
                      r"a row has more fields than the header"), id="csv-trailing-delimiters"),
    pytest.param(Case("staff", "s.csv", b"id,name,role\n5\n6,Li,police\n", r"row 1 \(id 5\): name is missing"),
                 id="csv-ragged-short-row"),
    pytest.param(Case("staff", "s.csv", b"", r"s\.csv is empty \(0 bytes\)"), id="csv-empty-file"),
    pytest.param(Case("staff", "s.csv", b"\r\n \n\t\n", r"s\.csv is empty"), id="csv-whitespace-only"),
    pytest.param(Case("staff", "s.csv", b"id,name,role\n", r"s\.csv has no rows"), id="csv-header-only"),
    pytest.param(Case("staff", "s.csv", bytes(range(256)) * 16, r"s\.csv is a binary file"), id="csv-binary-garbage"),
    pytest.param(Case("staff", "s.csv", GARBAGE_NO_NUL, r"s\.csv is neither UTF-8 nor GBK text"),
                 id="csv-binary-garbage-without-nul"),
    pytest.param(Case("staff", "s.csv", b"id,name,role\n5,Zh\x00ang,police\n", r"s\.csv is a binary file"),
                 id="csv-nul-byte"),
    # ---- encodings
    pytest.param(Case("staff", "s.csv", csv_bytes("id,name,role\n2,李娜·网格员,民警\n", "gb18030"), None,
                      check=gb18030_staff), id="csv-gb18030-undeclared"),  # fmt: skip
    pytest.param(Case("staff", "s.csv", b"id,name,role\n5,\xff\xfe\xff\xfe,police\n", r"neither UTF-8 nor GBK"),
                 id="csv-invalid-utf8"),
    pytest.param(Case("staff", "s.csv", "id,name,role\n5,张伟,police\n".encode("utf-16-le"), r"binary file"),
                 id="csv-utf16-without-bom"),
    # ---- malformed GeoJSON
    pytest.param(Case("grids", "g.geojson", b'{"type": "FeatureCollection", "features": [',
                      r"could not read g\.geojson as GeoJSON"), id="geojson-not-json"),  # fmt: skip
    pytest.param(Case("grids", "g.geojson", b"[1, 2, 3]", r"g\.geojson is not a valid GeoJSON"),
                 id="geojson-json-array"),
    pytest.param(Case("grids", "g.geojson", b'{"type": "Topology", "objects": {}}', r"could not read g\.geojson as GeoJSON"),
                 id="geojson-not-a-featurecollection"),
    pytest.param(Case("grids", "g.geojson", grids_fc(grid("211202001001009", geometry=None) | {"geometry": None}),
                      r"g\.geojson has no geometry: grids need polygons"), id="geojson-features-without-geometry"),
    pytest.param(Case("grids", "g.geojson", grids_fc(grid("211202001001009", geometry=Point(LON, LAT))),
                      r"row 1.*(Point|point)"), id="geojson-point-for-grids"),  # fmt: skip
    pytest.param(Case("grids", "g.geojson",
                      grids_fc(grid("211202001001009", geometry=shapely.LineString([(LON, LAT), (LON + 0.01, LAT)]))),
                      r"row 1 \(code 211202001001009\): LineString is not allowed here"), id="geojson-line-for-grids"),  # fmt: skip
    pytest.param(Case("cameras", "c.geojson", fc([feature({"id": "21120200001310000009", "name": "c"}, square())]),
                      r"row 1 .*: Polygon is not allowed here"), id="geojson-polygon-for-cameras"),  # fmt: skip
    # ---- invalid geometries
    pytest.param(Case("grids", "g.geojson", grids_fc(grid("211202001001009", geometry=BOWTIE)), None,
                      check=bowtie_repaired), id="geometry-bowtie-repaired"),  # fmt: skip
    pytest.param(Case("grids", "g.csv", wkt_grid_csv("POLYGON EMPTY"), r"row 1.*empty", {"crs": "wgs84"}),
                 id="geometry-empty"),
    pytest.param(Case("grids", "g.csv", wkt_grid_csv(f"POLYGON(({LON} {LAT}, NaN {LAT}, {LON} 42.3, {LON} {LAT}))"),
                      r"row 1 .*: coordinates contain NaN or infinity", {"crs": "wgs84"}), id="geometry-nan-coordinate"),  # fmt: skip
    pytest.param(Case("grids", "g.csv", wkt_grid_csv(f"POLYGON(({LON} {LAT}, inf {LAT}, {LON} 42.3, {LON} {LAT}))"),
                      r"row 1 .*: coordinates contain NaN or infinity", {"crs": "wgs84"}), id="geometry-inf-coordinate"),  # fmt: skip
    pytest.param(Case("grids", "g.csv", many_vertices(1_000_000), r"more than the 10,000,000 allowed",
                      {"crs": "wgs84", "max_bytes": 10_000_000}), id="geometry-1e6-vertices-over-size-limit"),
    pytest.param(Case("grids", "g.csv", many_vertices(60_000), None, {"crs": "wgs84"}, check=big_polygon),
                 id="geometry-60k-vertices-imports"),
    pytest.param(Case("grids", "g.csv", wkt_grid_csv("POLYGON((-179 -89, 179 -89, 179 89, -179 89, -179 -89))"),
                      None, {"crs": "wgs84", "region": TIELING}, check=huge_extent), id="geometry-huge-extent"),
    pytest.param(Case("grids", "g.csv", wkt_grid_csv("POLYGON((100 10, 101 10, 101 11, 100 11, 100 10))"),
                      r"row 1.*outside", {"crs": "wgs84", "region": TIELING}), id="geometry-far-away"),
    pytest.param(Case("grids", "g.csv", wkt_grid_csv("POLYGON((0 0, 1e300 0, 1e300 1e300, 0 0))"),
                      r"row 1 .*: coordinates are outside longitude", {"crs": "wgs84"}), id="geometry-absurd-coordinates"),
    pytest.param(Case("grids", "g.csv", wkt_grid_csv("NOT WKT (1 2"), r"row 1.*not valid WKT", {"crs": "wgs84"}),
                 id="geometry-bad-wkt"),
    # ---- CRS
    pytest.param(Case("grids", "g.zip", shp_zip(projected_grids(), prj=False),
                      r"no CRS: give --crs \(the zipped Shapefile has no \.prj"), id="crs-projected-zip-without-prj"),
    pytest.param(Case("grids", "g.geojson", grids_fc(grid("211202001001009")), r"EPSG:999999.*not a coordinate system",
                      {"crs": "EPSG:999999"}), id="crs-unknown-epsg-argument"),  # fmt: skip
    pytest.param(Case("grids", "g.geojson",
                      fc([grid("211202001001009")], crs={"type": "name", "properties": {"name": "EPSG:999999"}}),
                      None, check=rows_are("grids", 3)), id="crs-unknown-epsg-in-file"),  # fmt: skip
    pytest.param(Case("grids", "g.csv", wkt_grid_csv(square().wkt), r"no CRS: give --crs \(a CSV carries no CRS"),
                 id="crs-csv-without-crs"),
    pytest.param(Case("cameras", "c.csv", camera_csv([cam_row(lon=LAT, lat=LON)]), r"row 1.*swapped",
                      {"crs": "wgs84"}), id="crs-swapped-lat-lon-point"),  # fmt: skip
    pytest.param(Case("grids", "g.geojson",
                      grids_fc(grid("211202001001009", geometry=shapely.transform(square(), lambda xy: xy[:, ::-1]))),
                      r"row 1.*swapped"), id="crs-swapped-lat-lon-polygon"),  # fmt: skip
    # ---- duplicates and collisions
    pytest.param(Case("grids", "g.geojson", grids_fc(grid("211202001001009"), grid("211202001001009")),
                      r"code 211202001001009 appears 2 times in the file \(rows 1, 2\)"), id="duplicate-ids-in-file"),
    pytest.param(Case("grids", "g.geojson", grids_fc(grid(GRID_A, "新名字"), grid("211202001001009")),
                      r"code 211202001001001 already exists in the store", {"mode": "append"}),
                 id="collision-append-mode"),
    pytest.param(Case("grids", "g.geojson", grids_fc(grid(GRID_A, "新名字")), None, {"mode": "upsert"},
                      check=upsert_updates), id="collision-upsert-updates"),  # fmt: skip
    pytest.param(Case("grids", "g.geojson", grids_fc(grid("211202001001009", SQL)), None, {"mode": "replace"},
                      check=rows_are("grids", 1)), id="collision-replace-starts-over"),  # fmt: skip
    pytest.param(Case("staff", "s.csv", b"id,name,role\n1,a,police\n01,b,police\n", r"id 1 appears 2 times"),
                 id="duplicate-ids-leading-zero"),
    # ---- camera ids and angles
    pytest.param(Case("cameras", "c.csv", camera_csv([cam_row("2112020000131000000")]),
                      r"'2112020000131000000' is not a 20-digit GB/T 28181 device id", {"crs": "wgs84"}),
                 id="camera-id-19-digits"),
    pytest.param(Case("cameras", "c.csv", camera_csv([cam_row("2112020000131000000X")]),
                      r"is not a 20-digit GB/T 28181", {"crs": "wgs84"}), id="camera-id-with-letter"),
    pytest.param(Case("cameras", "c.csv", camera_csv([cam_row("２１１２０２００００１３１００００００９")]),
                      r"is not a 20-digit GB/T 28181", {"crs": "wgs84"}), id="camera-id-fullwidth-digits"),
    pytest.param(Case("cameras", "c.geojson",
                      fc([feature({"id": 21120200001310000009, "name": "c"}, Point(LON, LAT))]),
                      r"was stored as a number"), id="camera-id-stored-as-number"),  # fmt: skip
    pytest.param(Case("cameras", "c.csv", camera_csv([cam_row("2.11202000013100E+19")]),
                      r"is not a 20-digit", {"crs": "wgs84"}), id="camera-id-scientific-notation"),
    pytest.param(Case("cameras", "c.csv", camera_csv([cam_row(direction="361")]),
                      r"direction must be between 0 and 360 degrees, got 361", {"crs": "wgs84"}),
                 id="camera-direction-361"),
    pytest.param(Case("cameras", "c.csv", camera_csv([cam_row(fov="-5")]),
                      r"fov must be between 0 and 360 degrees, got -5", {"crs": "wgs84"}), id="camera-fov-negative"),
    pytest.param(Case("cameras", "c.csv", camera_csv([cam_row(direction="NaN")]),
                      r"direction must be a finite number", {"crs": "wgs84"}), id="camera-direction-nan"),
    pytest.param(Case("cameras", "c.csv", camera_csv([cam_row(rng="0")]),
                      r"range_m must be more than 0 metres", {"crs": "wgs84"}), id="camera-range-zero"),
    pytest.param(Case("cameras", "c.csv",
                      camera_csv([cam_row("21120200001310000008", direction="400"), cam_row(), cam_row("123")]),
                      None, {"crs": "wgs84", "partial": True}, check=partial_cameras), id="camera-partial-skips-bad"),
    pytest.param(Case("grids", "g.csv", f'code,name,households,wkt\n211202001001009,x,{10**24},"{square().wkt}"\n'.encode(),
                      r"the store refused the rows: column 'households'", {"crs": "wgs84"}),
                 id="integer-overflow"),  # fmt: skip
    # ---- size limits, zips
    pytest.param(Case("grids", "g.geojson", grids_fc(grid("211202001001009")), r"more than the 100 allowed",
                      {"max_bytes": 100}), id="size-over-limit"),  # fmt: skip
    pytest.param(Case("grids", "g.zip", zip_bomb, r"unpacks to 214,958,080 bytes, more than the 209,715,200 allowed"),
                 id="zip-bomb"),
    pytest.param(Case("grids", "g.zip", lying_zip_bomb, r"g\.zip is damaged: x\.shp fails its checksum"), id="zip-bomb-lying-headers"),
    pytest.param(Case("grids", "g.zip", shp_zip(projected_grids().to_crs(4326), rename=lambda n: "../" + n),
                      None, check=rows_are("grids", 4)), id="zip-path-traversal"),  # fmt: skip
    pytest.param(Case("grids", "g.zip", shp_zip(projected_grids().to_crs(4326), rename=lambda n: "/tmp/abs_" + n),
                      None, check=rows_are("grids", 4)), id="zip-absolute-member-names"),  # fmt: skip
    pytest.param(Case("grids", "g.zip", lambda p: _zip_of(p, {"readme.txt": b"hi", "g.dbf": b""}),
                      r"g\.zip holds no \.shp file \(it has: readme\.txt, g\.dbf\)"), id="zip-without-shp"),
    pytest.param(Case("grids", "g.zip", b"PK\x03\x04 this is not really a zip", r"g\.zip is not a valid zip file"),
                 id="zip-damaged"),
    pytest.param(Case("grids", "g.zip", b"just text", r"g\.zip is not a valid zipped Shapefile"), id="zip-not-a-zip"),
    pytest.param(Case("grids", "g.gpkg", b"SQLite format 3\x00" + b"\x00" * 200, r"could not read g\.gpkg as GeoPackage: .*file is not a database"),
                 id="gpkg-damaged"),
    # ---- SQL metacharacters and markup: stored verbatim, never interpreted
    pytest.param(Case("grids", "g.geojson", grids_fc(*[grid(f"21120200100100{i + 5}", t) for i, t in enumerate(HOSTILE)]),
                      None, check=names_are("grids", "code",
                                            {f"21120200100100{i + 5}": t for i, t in enumerate(HOSTILE)})),
                 id="text-grids-name"),  # fmt: skip
    pytest.param(Case("staff", "s.csv", STAFF_HOSTILE_CSV.encode(), None, check=staff_hostile_check),
                 id="text-staff-name-phone-device"),
    pytest.param(Case("cameras", "c.geojson", CAMERAS_HOSTILE, None, check=cameras_hostile_check),
                 id="text-cameras-name-stream-url"),
    pytest.param(Case("buildings", "b.geojson", BUILDINGS_HOSTILE, None, check=buildings_hostile_check),
                 id="text-buildings-name-kind"),
    pytest.param(Case("boundaries", "a.geojson", BOUNDARIES_HOSTILE, None,
                      check=names_are("admin_units", "code",
                                      {"211202": SQL, "211202001": XSS, "211202001001": IMG})),
                 id="text-boundaries-name"),  # fmt: skip
    pytest.param(Case("grids", "g.geojson", grids_fc(grid(SQL)), r"code must be digits only, got \"'; DROP TABLE"),
                 id="text-sql-in-key-column"),
    pytest.param(Case("staff", "s.csv", f"id,name,role\n5,x,{XSS}\n".encode(), r"role \"<script>alert\('x'\)</script>\" is not one of"),
                 id="text-markup-in-choice-column"),
    pytest.param(Case("staff", "s.csv", f'id,name,role,"{SQL}"\n5,x,police,y\n'.encode(), None,
                      check=unused_header), id="text-sql-in-header"),  # fmt: skip
]


def _zip_of(path: Path, members: dict[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


@pytest.mark.parametrize("case", CASES)
def test_hostile_file(store: Any, tmp_path: Path, case: Case) -> None:
    seed(store, tmp_path)
    before = snapshot(store)
    work = tmp_path / "in"
    work.mkdir()
    path = work / case.name
    if isinstance(case.content, bytes):
        path.write_bytes(case.content)
    else:
        case.content(path)
    outside_before = sorted(p.name for p in tmp_path.iterdir())
    if case.match is None:
        report = import_file(store, case.kind, path, **case.options)
        assert report.rows_written > 0, report.errors
        assert report.ok or case.options.get("partial"), report.errors  # partial: skipped rows are reported
        assert case.check is not None
        case.check(store, report)
    else:
        with pytest.raises(ImportRejected, match=case.match) as info:
            import_file(store, case.kind, path, **case.options)
        assert info.value.report.errors and info.value.report.rows_written == 0
        assert snapshot(store) == before, "a rejected import changed the store"
    # nothing was unpacked or written next to the file (path traversal)
    assert sorted(p.name for p in tmp_path.iterdir()) == outside_before
    assert sorted(p.name for p in work.iterdir()) == [case.name]
    for table in TABLES:  # every table is still there
        store.count(table)


def test_catalogue_is_large_enough() -> None:
    assert len(CASES) >= 30
    assert len({p.id for p in CASES}) == len(CASES)


# --------------------------------------------------------------------------- 12345 hotline exports

HEADER = ["工单编号", "来电时间", "诉求分类", "诉求内容", "事发地址", "来电人", "来电号码", "经度", "纬度"]
X, Y = 123.886594, 42.298454  # a village of the small demo (WGS84)


def hotline_csv(rows: list[list[str]], encoding: str = "utf-8") -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerows([HEADER, *rows])
    return buf.getvalue().encode(encoding)


@pytest.fixture
def db(small_demo_url: str, tmp_path: Path) -> Iterator[Any]:
    """A fresh copy of the small demo city."""
    store = open_store(copy_demo(small_demo_url, tmp_path / "db.sqlite"))
    try:
        yield store
    finally:
        store.close()


def hotline_state(store: Any) -> tuple[int, ...]:
    return tuple(store.count(t) for t in ("cases", "hotline_queue", "case_events"))


HOSTILE_ROW = ["'; DROP TABLE cases;--", "2026-11-19 09:00", "暴露垃圾", f"{XSS}{IMG}垃圾", SQL, IMG, "1380000'--",
               str(X), str(Y)]  # fmt: skip


def hostile_row_check(store: Any, report: Any) -> None:
    assert report.created == 1, report.errors
    case = store.read("cases", where={"source": "hotline_12345", "external_id": HOSTILE_ROW[0]}).iloc[0]
    assert case["description"] == HOSTILE_ROW[3]
    assert case["address"] == SQL and case["reporter_name"] == IMG and case["reporter_phone"] == "1380000'--"
    assert store.count("grids") > 0  # the table the payload names is still there


def gb18030_check(store: Any, report: Any) -> None:
    assert report.created == 1, report.errors
    case = store.read("cases", where={"source": "hotline_12345", "external_id": "GB-1"}).iloc[0]
    assert case["description"] == "楼道垃圾堆放"


def nul_check(store: Any, report: Any) -> None:
    assert report.created == 1, report.errors
    case = store.read("cases", where={"source": "hotline_12345", "external_id": "N-1"}).iloc[0]
    assert case["description"] == "垃圾没人清"


def header_only_check(store: Any, report: Any) -> None:
    assert report.rows == 0 and report.created == 0


def unbalanced_check(store: Any, report: Any) -> None:
    # the csv module reads an unclosed quote to the end of the file: one row, nothing lost
    assert report.rows == 1


HOTLINE_CASES: list[Any] = [
    pytest.param(b"", "the file is empty", None, id="hotline-empty"),
    pytest.param(b" \r\n\t\r\n", "the file is empty", None, id="hotline-whitespace"),
    pytest.param(bytes(range(256)) * 16, "neither UTF-8, GB18030/GBK nor UTF-16", None, id="hotline-binary-garbage"),
    pytest.param(b"\xff\xfe\x00\xd8" * 100, "neither UTF-8, GB18030/GBK nor UTF-16", None, id="hotline-invalid-utf16"),
    pytest.param(",".join(HEADER).encode() + b"\r\n\x81\x30\xff\xff,\xff\r\n", "neither UTF-8, GB18030",
                 None, id="hotline-invalid-bytes"),  # fmt: skip
    pytest.param(b"<!DOCTYPE html><html><table><tr><td>1</td></tr></table></html>", "web page", None,
                 id="hotline-html-as-xls"),
    pytest.param(b"\xd0\xcf\x11\xe0" + b"\x00" * 500, r"old \.xls", None, id="hotline-old-xls"),
    pytest.param(b"PK\x03\x04 broken", "spreadsheet cannot be read|openpyxl", None, id="hotline-damaged-xlsx"),
    pytest.param(b"a,b,c\r\n1,2,3\r\n", "lacks the column", None, id="hotline-no-needed-columns"),
    pytest.param(",".join(HEADER).encode() + b"\r\n", None, header_only_check, id="hotline-header-only"),
    pytest.param(hotline_csv([HOSTILE_ROW]), None, hostile_row_check, id="hotline-sql-and-markup"),
    pytest.param(hotline_csv([["GB-1", "2026-11-19 09:00", "暴露垃圾", "楼道垃圾堆放", "", "", "", str(X), str(Y)]],
                             "gb18030"), None, gb18030_check, id="hotline-gb18030-undeclared"),  # fmt: skip
    pytest.param(hotline_csv([["N-1", "2026-11-19 09:00", "暴露垃圾", "垃圾没\x00人清", "", "", "", str(X), str(Y)]]),
                 None, nul_check, id="hotline-few-nul-bytes"),  # fmt: skip
    pytest.param(",".join(HEADER).encode() + '\r\nU-1,2026-11-19 09:00,暴露垃圾,"垃圾,,,\r\n'.encode(), None,
                 unbalanced_check, id="hotline-unbalanced-quote"),  # fmt: skip
]


@pytest.mark.parametrize(("content", "match", "check"), HOTLINE_CASES)
def test_hostile_hotline_export(db: Any, tmp_path: Path, content: bytes, match: str | None,
                                check: Callable[[Any, Any], None] | None) -> None:  # fmt: skip
    path = tmp_path / "export.csv"
    path.write_bytes(content)
    before = hotline_state(db)
    if match is not None:
        with pytest.raises(hotline.HotlineError, match=match):
            hotline.import_export(db, path, now=FIXED_NOW)
        assert hotline_state(db) == before, "a rejected 12345 import changed the store"
    else:
        report = hotline.import_export(db, path, now=FIXED_NOW)
        assert check is not None
        check(db, report)
    for table in ("cases", "hotline_queue", "case_events", "grids"):
        db.count(table)
