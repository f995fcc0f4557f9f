"""Import and export of the data a site brings in from QGIS and spreadsheets.

Kinds (what a file holds) and the table each one fills:

    boundaries  admin_units  code, name, level, kind, parent_code, households; polygons
    grids       grids        code, name, unit_code, kind, purpose, band_min, band_max, households; polygons
    buildings   buildings    id, households, kind, name, floors, units, unit_code, grid_code; polygons
    staff       staff        id, name, role, phone, unit_code, device_id, on_duty; no geometry
    cameras     cameras      id, name, unit_code, direction, fov, range_m, cam_class, online,
                             stream_url; points

Formats, recognised by extension (and, for an unknown extension, by content): GeoJSON
(``.geojson``/``.json``), GeoPackage (``.gpkg``; the first layer or ``layer=``), zipped Shapefile
(``.zip`` holding ``.shp``/``.shx``/``.dbf`` and usually ``.prj``, read through GDAL's ``/vsizip/``),
plain Shapefile (``.shp`` with its sidecars; a DBF without ``.cpg`` whose text is not UTF-8 is
read as GBK, as older Chinese tools write it) and CSV (``.csv``/``.txt``; UTF-8 with or without
BOM, GBK/GB18030 as a fallback; points from lon/lat columns or any geometry from a ``wkt`` column).
A file larger than ``max_bytes`` (for a zip: packed or unpacked) is refused before it is parsed.
Column headers are matched through an alias table (``COLUMN_ALIASES`` plus per-kind entries in
``KIND_ALIASES``), so Chinese headers such as 编码/名称/户数 and ``lng``/``x``/``lat``/``y`` work.

Which CRS the coordinates are in (``crs_used`` in the report), in this order:

1. The file declares a CRS (a ``.prj``, the GeoPackage's SRS, a GeoJSON ``crs`` member):
   the file wins. A ``crs=`` that disagrees is overruled, with a warning. The one exception:
   the file says EPSG:4326/WGS84 and ``crs=`` is ``gcj02`` or ``bd09``: then ``crs=`` wins,
   because web-map (AMap/Tencent/Baidu) coordinates saved by tools that label everything WGS84
   are the common case and only the person importing knows.
2. The file declares nothing: ``crs=`` is used.
3. Neither: a GeoJSON file whose coordinates look like lon/lat is taken as WGS84, as RFC 7946
   says (a GeoJSON without a ``crs`` member counts as "declares nothing", so ``crs=`` still wins
   in step 2). Anything else (CSV, a Shapefile without ``.prj``, a GeoJSON in metres) is
   rejected with "no CRS: give --crs".

Everything is converted to EPSG:4326 (GCJ-02/BD-09 are shifted back, CGCS2000 relabelled) before
it is validated and written.

An import reads the whole file, maps and checks every row (codes, households, roles, ids, angles,
duplicates within the file and, for ``mode="append"``, against keys already stored), and writes in
ONE store transaction; any error means nothing is written and :class:`ImportRejected` is raised
carrying the :class:`ImportReport`. Rows are numbered from 1 in file order (in a CSV, row 1 is the first line
after the header). Text is stored verbatim: escaping is the display layer's job.

Export writes GeoJSON, GeoPackage, zipped Shapefile, plain Shapefile or CSV (UTF-8 with BOM, so
spreadsheet programs read the Chinese) by extension, keeps codes as text (leading zeros survive
DBF and CSV) and can shift coordinates to GCJ-02/BD-09 for systems that need them (the file is
then labelled EPSG:4326, as such files always are: re-import it with ``crs="gcj02"``).
"""

from __future__ import annotations

import csv
import io
import math
import re
import tempfile
import warnings
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import geopandas as gpd
import numpy as np
import pandas as pd
import pyogrio
import shapely
from pyproj import CRS
from shapely.geometry import MultiPolygon, Point, Polygon
from shapely.geometry.base import BaseGeometry

from geo.codes import township_kind, village_kind
from geo.crs import from_wgs84, parse_crs, to_wgs84
from geo.errors import CRSError
from geo.validate import validate_frame
from store import schema
from store.base import Store, StoreError, Where, WriteMode

__all__ = [
    "COLUMN_ALIASES",
    "KINDS",
    "KIND_ALIASES",
    "ImportRejected",
    "ImportReport",
    "export_file",
    "import_file",
]

DEFAULT_MAX_BYTES = 200 * 1024 * 1024
MAX_MESSAGE_PROBLEMS = 20


# --------------------------------------------------------------------------- kinds


@dataclass(frozen=True)
class _Kind:
    name: str
    table: str
    key: str  # the primary key column (codes/ids)
    geometry: Literal["polygon", "point"] | None
    columns: tuple[str, ...]  # file columns understood, in output order (key first)


KINDS: dict[str, _Kind] = {
    k.name: k
    for k in (
        _Kind(
            "boundaries",
            "admin_units",
            "code",
            "polygon",
            ("code", "name", "level", "kind", "parent_code", "households"),
        ),
        _Kind(
            "grids",
            "grids",
            "code",
            "polygon",
            ("code", "name", "unit_code", "kind", "purpose", "band_min", "band_max", "households"),
        ),
        _Kind(
            "buildings",
            "buildings",
            "id",
            "polygon",
            ("id", "households", "kind", "name", "floors", "units", "unit_code", "grid_code"),
        ),
        _Kind(
            "staff",
            "staff",
            "id",
            None,
            ("id", "name", "role", "phone", "unit_code", "device_id", "on_duty"),
        ),
        _Kind(
            "cameras",
            "cameras",
            "id",
            "point",
            ("id", "name", "unit_code", "direction", "fov", "range_m", "cam_class", "online", "stream_url"),
        ),
    )
}

# Header aliases shared by every kind: normalised alias -> canonical column. A header is
# normalised by stripping it, lower-casing it and turning spaces, dashes and dots into "_".
COLUMN_ALIASES: dict[str, str] = {
    # codes
    "编码": "code", "代码": "code", "区划代码": "code", "区划编码": "code", "行政区划代码": "code",
    "行政代码": "code", "adcode": "code", "gbcode": "code", "gb_code": "code", "dm": "code",
    # names
    "名称": "name", "名字": "name", "mc": "name", "区划名称": "name",
    # admin level / kind
    "级别": "level", "层级": "level", "jb": "level",
    "类型": "kind", "种类": "kind", "type": "kind", "lx": "kind",
    "parent": "parent_code", "parent_cod": "parent_code", "pcode": "parent_code",
    "上级编码": "parent_code", "上级代码": "parent_code", "父级编码": "parent_code",
    "上级区划代码": "parent_code",
    # belonging
    "unit_cod": "unit_code", "village_code": "unit_code", "community_code": "unit_code",
    "村社区编码": "unit_code", "所属村社区编码": "unit_code", "所属社区编码": "unit_code",
    "所属村编码": "unit_code", "单位编码": "unit_code", "所属单位编码": "unit_code",
    "grid_cod": "grid_code", "所属网格编码": "grid_code",
    # grids
    "用途": "purpose", "专属类型": "purpose",
    "户数下限": "band_min", "min_households": "band_min", "hh_min": "band_min", "band_mi": "band_min",
    "户数上限": "band_max", "max_households": "band_max", "hh_max": "band_max", "band_ma": "band_max",
    # buildings
    "户数": "households", "住户数": "households", "hh": "households", "hhs": "households",
    "household": "households", "hshlds": "households", "househol": "households",
    "层数": "floors", "楼层": "floors", "楼层数": "floors", "storeys": "floors", "stories": "floors",
    "单元数": "units", "单元": "units", "stairwells": "units",
    # staff
    "姓名": "name", "xm": "name",
    "角色": "role", "岗位": "role", "职务": "role", "身份": "role",
    "电话": "phone", "手机": "phone", "手机号": "phone", "手机号码": "phone", "联系电话": "phone",
    "mobile": "phone", "tel": "phone", "telephone": "phone",
    "设备号": "device_id", "终端编号": "device_id", "设备id": "device_id", "deviceid": "device_id",
    "device": "device_id", "imei": "device_id",
    "在岗": "on_duty", "是否在岗": "on_duty", "onduty": "on_duty", "值班": "on_duty",
    # cameras
    "方向": "direction", "朝向": "direction", "方位角": "direction", "azimuth": "direction",
    "heading": "direction", "bearing": "direction", "dir": "direction", "directio": "direction",
    "视场角": "fov", "视角": "fov", "field_of_view": "fov", "view_angle": "fov",
    "视距": "range_m", "可视距离": "range_m", "范围": "range_m", "range": "range_m",
    "radius": "range_m", "distance": "range_m",
    "camclass": "cam_class", "class": "cam_class", "点位类别": "cam_class", "点位等级": "cam_class",
    "在线": "online", "是否在线": "online", "在线状态": "online",
    "视频流": "stream_url", "流地址": "stream_url", "播放地址": "stream_url", "url": "stream_url",
    "stream": "stream_url", "video_url": "stream_url", "stream_ur": "stream_url",
}

# Per-kind aliases, consulted before COLUMN_ALIASES (the same header means different things).
KIND_ALIASES: dict[str, dict[str, str]] = {
    "boundaries": {"级别": "level", "类别": "kind"},
    "grids": {
        "网格编码": "code", "网格代码": "code", "网格名称": "name", "网格类型": "kind", "类别": "kind",
        "grid_code": "code",
    },
    "buildings": {
        "编号": "id", "楼栋编号": "id", "建筑编号": "id", "building_id": "id", "bldg_id": "id",
        "objectid": "id", "网格编码": "grid_code", "楼栋名称": "name", "建筑类型": "kind", "类别": "kind",
    },
    "staff": {
        "编号": "id", "工号": "id", "人员编号": "id", "staff_id": "id", "类别": "role", "人员类别": "role",
        "网格员类型": "role",
    },
    "cameras": {
        "编号": "id", "设备编码": "id", "设备编号": "id", "国标编码": "id", "国标编号": "id", "gbid": "id",
        "gb_id": "id", "gb28181_id": "id", "device_id": "id", "deviceid": "id", "camera_id": "id",
        "类别": "cam_class", "级别": "cam_class", "等级": "cam_class", "状态": "online", "status": "online",
    },
}

# Columns that carry geometry in a CSV.
_LON_ALIASES = ("lon", "lng", "long", "longitude", "x", "经度", "东经", "point_x")
_LAT_ALIASES = ("lat", "latitude", "y", "纬度", "北纬", "point_y")
_WKT_ALIASES = ("wkt", "geometry", "geom", "wkt_geom", "the_geom", "shape", "几何", "空间信息")

_LEVEL_ALIASES = {
    "市": "city", "地级市": "city", "city": "city",
    "县": "county", "区": "county", "县区": "county", "区县": "county", "县级": "county", "county": "county",
    "district": "county",
    "乡镇": "township", "街道": "township", "乡": "township", "镇": "township", "乡镇街道": "township",
    "township": "township", "town": "township", "street": "township",
    "村": "village", "社区": "village", "村社区": "village", "村居": "village", "village": "village",
    "community": "village",
}
_ADMIN_KIND_ALIASES = {
    "市": "city", "地级市": "city",
    "区": "district", "市辖区": "district", "县": "county", "旗": "county", "县级市": "county_city",
    "街道": "street", "街道办事处": "street", "镇": "town", "乡": "township", "民族乡": "township",
    "社区": "community", "居委会": "community", "社区居委会": "community", "居民委员会": "community",
    "村": "village", "行政村": "village", "村委会": "village", "村民委员会": "village",
}
_GRID_KIND_ALIASES = {"基础": "base", "基础网格": "base", "专属": "dedicated", "专属网格": "dedicated"}
_PURPOSE_ALIASES = {
    "学校": "school", "医院": "hospital", "市场": "market", "农贸市场": "market",
    "园区": "industrial_park", "工业园区": "industrial_park", "产业园区": "industrial_park",
}
_ROLE_ALIASES = {
    "专职网格员": "grid_worker_full", "专职": "grid_worker_full", "full_time": "grid_worker_full",
    "兼职网格员": "grid_worker_part", "兼职": "grid_worker_part", "part_time": "grid_worker_part",
    "网格警": "police", "民警": "police", "警察": "police", "网格民警": "police",
    "调解员": "mediator", "人民调解员": "mediator",
    "法律顾问": "legal_adviser", "律师": "legal_adviser", "legal_advisor": "legal_adviser",
    "志愿者": "volunteer",
}
_BUILDING_KIND_ALIASES = {
    "住宅": "apartment", "楼房": "apartment", "单元楼": "apartment", "住宅楼": "apartment",
    "平房": "house", "民房": "house", "自建房": "house", "学校": "school", "医院": "hospital",
    "市场": "market",
}
_CAM_CLASS_ALIASES = {
    "一类": "class1", "一类点": "class1", "一类点位": "class1", "class_1": "class1", "1": "class1",
    "二类": "other", "三类": "other", "其他": "other", "其它": "other", "2": "other", "3": "other",
}
_TRUE = {"true", "t", "yes", "y", "1", "1_0", "是", "在岗", "在线", "on", "online", "on_duty"}
_FALSE = {"false", "f", "no", "n", "0", "0_0", "否", "离岗", "离线", "off", "offline", "off_duty"}
_URL_SCHEMES = ("http://", "https://", "rtsp://", "rtmp://", "ws://", "wss://", "webrtc://", "srt://")

# Shapefile (DBF) field names are at most 10 characters.
_SHP_NAMES = {"parent_code": "parent_cod"}


# --------------------------------------------------------------------------- report


@dataclass
class ImportReport:
    """What an import read, wrote and found. ``errors``/``warnings`` are sentences for a person,
    each naming its row (counted from 1 in file order) and code/id where there is one."""

    kind: str
    path: str
    rows_read: int = 0
    rows_written: int = 0
    rows_skipped: int = 0  # rows with errors left out (partial imports)
    repaired: int = 0
    warnings: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    crs_used: str | None = None

    @property
    def ok(self) -> bool:
        return not self.errors

    def summary(self) -> str:
        head = (
            f"{self.kind} from {Path(self.path).name}: {self.rows_read} rows read, "
            f"{self.rows_written} written, {self.rows_skipped} skipped, {self.repaired} repaired, {len(self.warnings)} warnings, "
            f"{len(self.errors)} errors"
        )
        if self.crs_used:
            head += f" (coordinates read as {self.crs_used})"
        return head


class ImportRejected(Exception):
    """An import found problems and wrote nothing. ``report`` holds every problem; the message
    lists the first ones."""

    def __init__(self, report: ImportReport) -> None:
        self.report = report
        n = len(report.errors)
        lines = [
            f"import of {report.kind} from {Path(report.path).name} rejected, nothing was written "
            f"({n} problem{'s' if n != 1 else ''}):"
        ]
        lines += [f"  - {e}" for e in report.errors[:MAX_MESSAGE_PROBLEMS]]
        if n > MAX_MESSAGE_PROBLEMS:
            lines.append(f"  ... and {n - MAX_MESSAGE_PROBLEMS} more")
        super().__init__("\n".join(lines))


class _Problems:
    """Collects row-level problems; renders them with row numbers and keys, in row order."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.labels: dict[int, str] = {}
        self.errors: list[tuple[int, int | None, str]] = []
        self.warnings: list[tuple[int, int | None, str]] = []
        self._seq = 0

    def error(self, row: int | None, message: str) -> None:
        self._seq += 1
        self.errors.append((self._seq, row, message))

    def warn(self, row: int | None, message: str) -> None:
        self._seq += 1
        self.warnings.append((self._seq, row, message))

    def _render(self, items: list[tuple[int, int | None, str]]) -> list[str]:
        ordered = sorted(items, key=lambda t: (-1 if t[1] is None else t[1], t[0]))
        out = []
        for _, row, message in ordered:
            if row is None:
                out.append(message)
                continue
            label = f"row {row + 1}"
            if self.labels.get(row):
                label += f" ({self.key} {self.labels[row]})"
            out.append(f"{label}: {message}")
        return out

    def render_errors(self) -> list[str]:
        return self._render(self.errors)

    def render_warnings(self) -> list[str]:
        return self._render(self.warnings)


class _Unreadable(Exception):
    """The file cannot be read at all; the message says why."""


# --------------------------------------------------------------------------- reading


@dataclass
class _Raw:
    frame: pd.DataFrame  # attribute columns, original headers, RangeIndex
    geometry: list[BaseGeometry | None] | None
    file_crs: CRS | None
    fmt: str  # geojson | gpkg | shp | zip | csv
    implicit_wgs84: bool = False  # GeoJSON without a crs member
    row_errors: list[tuple[int, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # file-level warnings (e.g. from GDAL)


_FORMAT_BY_EXT = {
    ".geojson": "geojson", ".json": "geojson", ".gpkg": "gpkg", ".zip": "zip", ".shp": "shp",
    ".csv": "csv", ".txt": "csv",
}
_FORMAT_NAMES = {
    "geojson": "GeoJSON", "gpkg": "GeoPackage", "zip": "zipped Shapefile", "shp": "Shapefile", "csv": "CSV",
}


def _detect_format(path: Path) -> str:
    ext = path.suffix.lower()
    with path.open("rb") as fh:
        head = fh.read(4096)
    if ext in (".xls", ".xlsx", ".ods"):
        raise _Unreadable(f"{path.name} is a spreadsheet workbook: save the sheet as CSV and import that")
    sniffed: str | None = None
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        sniffed = "zip"
    elif head.startswith(b"SQLite format 3\x00"):
        sniffed = "gpkg"
    elif head.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"{"):
        sniffed = "geojson"
    fmt = _FORMAT_BY_EXT.get(ext)
    if fmt is None:
        if sniffed is None:
            raise _Unreadable(
                f"cannot tell what kind of file {path.name} is: use .geojson, .gpkg, .zip "
                "(zipped Shapefile), .shp or .csv"
            )
        return sniffed
    if fmt in ("gpkg", "zip", "geojson") and sniffed != fmt:
        raise _Unreadable(
            f"{path.name} is not a valid {_FORMAT_NAMES[fmt]} (the file is damaged or has the wrong extension)"
        )
    return fmt


def _size_check(path: Path, fmt: str, max_bytes: int) -> None:
    size = path.stat().st_size
    if fmt == "shp":
        size += sum(p.stat().st_size for p in _shp_sidecars(path).values() if p is not None)
    if size > max_bytes:
        raise _Unreadable(f"{path.name} is {size:,} bytes, more than the {max_bytes:,} allowed")
    if fmt == "zip":
        try:
            with zipfile.ZipFile(path) as zf:
                unpacked = sum(i.file_size for i in zf.infolist())
        except (zipfile.BadZipFile, OSError) as exc:
            raise _Unreadable(f"{path.name} is not a valid zip file: {exc}") from None
        if unpacked > max_bytes:
            raise _Unreadable(
                f"{path.name} unpacks to {unpacked:,} bytes, more than the {max_bytes:,} allowed"
            )


def _shp_sidecars(shp: Path) -> dict[str, Path | None]:
    found: dict[str, Path | None] = {".shx": None, ".dbf": None, ".prj": None, ".cpg": None}
    for sibling in shp.parent.glob(f"{_glob_escape(shp.stem)}.*"):
        ext = sibling.suffix.lower()
        if ext in found and sibling.stem == shp.stem:
            found[ext] = sibling
    return found


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]])", r"[\1]", text)


def _gdal_call(call: Callable[[], Any], source: str, name: str, fmt: str, notes: list[str]) -> Any:
    """Run a pyogrio call; GDAL's warnings become notes, its failures a plain _Unreadable."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            result = call()
        except Exception as exc:  # pyogrio raises DataSourceError, DataLayerError, OSError, ...
            message = str(exc).split(";")[0].replace(source, name)
            raise _Unreadable(f"could not read {name} as {_FORMAT_NAMES[fmt]}: {message}") from None
    for w in caught:
        text = "GDAL: " + str(w.message).replace(source, name)
        if text not in notes:
            notes.append(text)
    return result


def _read_gis(path: Path, fmt: str, layer: str | None) -> _Raw:
    name = path.name
    source = str(path)
    read_layer = layer
    notes: list[str] = []
    dbf_head: bytes | None = None
    if fmt == "gpkg":
        listed = _gdal_call(lambda: pyogrio.list_layers(source), source, name, fmt, notes)
        layers = [str(row[0]) for row in listed]
        if not layers:
            raise _Unreadable(f"{name} holds no layers")
        if layer is None:
            read_layer = layers[0]
        elif layer not in layers:
            raise _Unreadable(f"{name} has no layer {layer!r}; its layers: {', '.join(layers)}")
    elif fmt == "zip":
        source, dbf_head = _zip_member(path, layer)
        read_layer = None
    elif fmt == "shp":
        sidecars = _shp_sidecars(path)
        missing = [ext for ext in (".shx", ".dbf") if sidecars[ext] is None]
        if missing:
            raise _Unreadable(
                f"{name} comes without its {' and '.join(missing)} file(s): a Shapefile needs "
                ".shp, .shx, .dbf (and .prj for its CRS) side by side; zip them together"
            )
        read_layer = None
        dbf = sidecars[".dbf"]
        if sidecars[".cpg"] is None and dbf is not None:
            with dbf.open("rb") as fh:
                dbf_head = fh.read(_DBF_SNIFF)
    elif fmt == "geojson":
        read_layer = None
    encoding = _dbf_encoding(dbf_head) if dbf_head is not None else None
    if encoding == "GB18030":
        notes.append("the Shapefile has no .cpg and its text is not UTF-8: read it as GBK")
    frame = _gdal_call(
        lambda: pyogrio.read_dataframe(source, layer=read_layer, encoding=encoding), source, name, fmt, notes
    )
    if not isinstance(frame, gpd.GeoDataFrame):
        frame = gpd.GeoDataFrame(frame)
    geometry: list[BaseGeometry | None] | None = None
    file_crs: CRS | None = None
    if "geometry" in frame.columns and isinstance(frame, gpd.GeoDataFrame):
        geometry = list(frame.geometry.array)
        file_crs = CRS.from_user_input(frame.crs) if frame.crs is not None else None
        frame = pd.DataFrame(frame.drop(columns=frame.geometry.name))
    implicit = False
    if fmt == "geojson":
        implicit = not _geojson_declares_crs(path)
        if implicit:
            file_crs = None
    return _Raw(frame.reset_index(drop=True), geometry, file_crs, fmt, implicit_wgs84=implicit, notes=notes)


def _geojson_declares_crs(path: Path) -> bool:
    """Whether a GeoJSON file has a (pre-RFC 7946) ``crs`` member. GDAL reports EPSG:4326 either
    way; the rule for ``crs=`` needs to know whether the file actually said so."""
    pattern = re.compile(rb'"crs"\s*:\s*\{')
    size = path.stat().st_size
    with path.open("rb") as fh:
        head = fh.read(1 << 20)
        if pattern.search(head):
            return True
        if size > len(head):
            fh.seek(max(size - (1 << 16), len(head)))
            return bool(pattern.search(fh.read()))
    return False


def _zip_member(path: Path, layer: str | None) -> tuple[str, bytes | None]:
    """The /vsizip/ path of the Shapefile in a zip, and the head of its .dbf when the zip has no
    .cpg saying how its text is encoded."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n for n in zf.namelist() if not n.startswith("__MACOSX/") and not n.endswith("/")]
            bad = zf.testzip()
    except (zipfile.BadZipFile, OSError) as exc:
        raise _Unreadable(f"{path.name} is not a valid zip file: {exc}") from None
    if bad is not None:
        raise _Unreadable(f"{path.name} is damaged: {bad} fails its checksum")
    shps = sorted(n for n in names if n.lower().endswith(".shp"))
    if not shps:
        raise _Unreadable(f"{path.name} holds no .shp file (it has: {', '.join(names[:10]) or 'nothing'})")
    if layer is not None:
        chosen = [n for n in shps if Path(n).stem == layer]
        if not chosen:
            stems = ", ".join(Path(n).stem for n in shps)
            raise _Unreadable(f"{path.name} has no Shapefile {layer!r}; it has: {stems}")
        member = chosen[0]
    elif len(shps) > 1:
        stems = ", ".join(Path(n).stem for n in shps)
        raise _Unreadable(f"{path.name} holds {len(shps)} Shapefiles ({stems}): say which with layer=")
    else:
        member = shps[0]
    base = member[: -len(".shp")]
    lower = {n.lower() for n in names}
    missing = [ext for ext in (".shx", ".dbf") if (base + ext).lower() not in lower]
    if missing:
        raise _Unreadable(
            f"{path.name}: {member} comes without its {' and '.join(missing)} file(s); "
            "zip .shp, .shx, .dbf and .prj together"
        )
    dbf_head: bytes | None = None
    if (base + ".cpg").lower() not in lower:
        dbf_name = next(n for n in names if n.lower() == (base + ".dbf").lower())
        with zipfile.ZipFile(path) as zf, zf.open(dbf_name) as fh:
            dbf_head = fh.read(_DBF_SNIFF)
    return f"/vsizip/{path.resolve()}/{member}", dbf_head


_DBF_SNIFF = 4 * 1024 * 1024


def _dbf_encoding(head: bytes) -> str | None:
    """How to read a .dbf that comes without a .cpg. Chinese Shapefiles made by older tools are
    GBK without saying so, and GDAL would then read them as Latin-1 (mojibake). Returns None when
    the text is plain ASCII or declared by the DBF itself (its language driver byte), "UTF-8"
    when it decodes as UTF-8, else "GB18030" (a superset of GBK)."""
    if len(head) < 32:
        return None
    if head[29] != 0:  # language driver id set: GDAL honours it
        return None
    header_len = int.from_bytes(head[8:10], "little")
    names = b"".join(head[i : i + 11].split(b"\x00")[0] for i in range(32, min(header_len, len(head)) - 1, 32))
    text = names + head[header_len:]
    if text.isascii():
        return None
    try:
        text.decode("utf-8")
        return "UTF-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(text) - 3:  # a character cut by the sniff limit
            return "UTF-8"
    return "GB18030"


def _decode_text(data: bytes, name: str) -> str:
    if b"\x00" in data[:65536]:
        raise _Unreadable(f"{name} is a binary file, not CSV text")
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            return data.decode(encoding)
        except UnicodeDecodeError:
            continue
    raise _Unreadable(f"{name} is neither UTF-8 nor GBK text")


def _norm(header: object) -> str:
    text = str(header).strip().lstrip("\ufeff").strip().lower()
    return re.sub(r"[\s\-.]+", "_", text)


def _read_csv(path: Path, kind: _Kind) -> _Raw:
    text = _decode_text(path.read_bytes(), path.name)
    if not text.strip():
        raise _Unreadable(f"{path.name} is empty")
    first_line = text.lstrip().splitlines()[0]
    delimiter = ","
    counts = {d: first_line.count(d) for d in (",", ";", "\t", "|")}
    if counts[","] == 0 and max(counts.values()) > 0:
        delimiter = max(counts, key=lambda d: counts[d])
    try:
        # index_col=False: when the first data row has more fields than the header, pandas would
        # otherwise silently use the surplus leading columns as the index and shift every value
        # one column to the right (ids read from the name column); it warns instead, and the
        # warning is made an error below.
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                io.StringIO(text), dtype=str, keep_default_na=False, sep=delimiter, skipinitialspace=False,
                index_col=False,
            )
    except pd.errors.ParserWarning:
        raise _Unreadable(
            f"could not read {path.name} as CSV: a row has more fields than the header has columns "
            "(a stray delimiter, or a value with a comma that is not quoted)"
        ) from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, csv.Error, ValueError) as exc:
        raise _Unreadable(f"could not read {path.name} as CSV: {exc}") from None
    # spreadsheets leave empty trailing columns behind ("Unnamed: 7"): drop them quietly
    blank_cols = [
        c for c in frame.columns
        if str(c).startswith("Unnamed:") and not any(str(v).strip() for v in frame[c].tolist())
    ]
    frame = frame.drop(columns=blank_cols).reset_index(drop=True)
    raw = _Raw(frame, None, None, "csv")
    if kind.geometry is None:
        return raw
    headers = {_norm(c): c for c in frame.columns}
    wkt_col = next((headers[a] for a in _WKT_ALIASES if a in headers), None)
    lon_col = next((headers[a] for a in _LON_ALIASES if a in headers), None)
    lat_col = next((headers[a] for a in _LAT_ALIASES if a in headers), None)
    geoms: list[BaseGeometry | None] = []
    if wkt_col is not None:
        for i, value in enumerate(frame[wkt_col].tolist()):
            text_value = "" if value is None else str(value).strip()
            if not text_value:
                geoms.append(None)
                continue
            try:
                geoms.append(shapely.from_wkt(text_value, on_invalid="raise"))
            except shapely.errors.ShapelyError as exc:
                geoms.append(None)
                raw.row_errors.append((i, f"the {wkt_col} column is not valid WKT ({exc})"))
        used = [wkt_col]
    elif lon_col is not None and lat_col is not None:
        for i, (x, y) in enumerate(zip(frame[lon_col].tolist(), frame[lat_col].tolist(), strict=True)):
            xs, ys = str(x).strip(), str(y).strip()
            if not xs and not ys:
                geoms.append(None)
                continue
            try:
                geoms.append(Point(float(xs), float(ys)))
            except ValueError:
                geoms.append(None)
                raw.row_errors.append((i, f"longitude/latitude {xs!r}/{ys!r} are not numbers"))
        used = [lon_col, lat_col]
    else:
        raise _Unreadable(
            f"{path.name} has no coordinates: a CSV of {kind.name} needs lon/lat columns "
            "(lon/lng/x/经度 and lat/y/纬度) or a wkt column"
        )
    raw.frame = frame.drop(columns=used)
    raw.geometry = geoms
    return raw


def _read(path: Path, kind: _Kind, layer: str | None, max_bytes: int) -> _Raw:
    if not path.exists():
        raise _Unreadable(f"file not found: {path}")
    if not path.is_file():
        raise _Unreadable(f"{path} is not a file")
    if path.stat().st_size == 0:
        raise _Unreadable(f"{path.name} is empty (0 bytes)")
    fmt = _detect_format(path)
    _size_check(path, fmt, max_bytes)
    if fmt == "csv":
        return _read_csv(path, kind)
    return _read_gis(path, fmt, layer)


def _map_columns(columns: Iterable[object], kind: _Kind) -> tuple[dict[str, str], list[str], list[str]]:
    """File headers -> canonical names. Returns (rename, ignored headers, notes)."""
    per_kind = KIND_ALIASES.get(kind.name, {})
    rename: dict[str, str] = {}
    taken: dict[str, str] = {}
    ignored: list[str] = []
    notes: list[str] = []
    for header in columns:
        h = str(header)
        n = _norm(h)
        canonical = n if n in kind.columns else per_kind.get(n) or COLUMN_ALIASES.get(n)
        if canonical is None or canonical not in kind.columns:
            ignored.append(h)
            continue
        if canonical in taken:
            notes.append(f"columns {taken[canonical]!r} and {h!r} both mean {canonical}: used {taken[canonical]!r}")
            continue
        taken[canonical] = h
        rename[h] = canonical
    return rename, ignored, notes


# --------------------------------------------------------------------------- CRS


def _crs_label(crs: object) -> str:
    if isinstance(crs, str):
        return crs
    if isinstance(crs, CRS):
        epsg = crs.to_epsg()
        return f"EPSG:{epsg}" if epsg else crs.to_string()
    return str(crs)


def _is_wgs84(crs: CRS) -> bool:
    try:
        if crs.to_epsg() == 4326:
            return True
        return bool(crs.equals(CRS.from_epsg(4326), ignore_axis_order=True))
    except Exception:
        return False


def _same_crs(a: CRS, b: CRS) -> bool:
    try:
        return bool(a.equals(b, ignore_axis_order=True)) or (a.to_epsg() is not None and a.to_epsg() == b.to_epsg())
    except Exception:
        return False


def _lonlat_like(geoms: list[BaseGeometry | None]) -> bool:
    arr = np.array([g for g in geoms if g is not None and not g.is_empty], dtype=object)
    if arr.size == 0:
        return True
    minx, miny, maxx, maxy = shapely.total_bounds(arr)
    if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)):
        return True  # NaN coordinates are the validator's to report
    lonlat = -180 <= minx <= maxx <= 180 and -90 <= miny <= maxy <= 90
    swapped = -90 <= minx <= maxx <= 90 and -180 <= miny <= maxy <= 180  # the validator says "swapped"
    return lonlat or swapped


def _decide_crs(raw: _Raw, crs: str | None, problems: _Problems) -> str | CRS | None:
    """The CRS rule of the module docstring. Returns what ``to_wgs84`` takes as ``source``
    (``"gcj02"``, ``"bd09"`` or a pyproj CRS), or None after recording an error."""
    arg: str | CRS | None = None
    if crs is not None:
        try:
            arg = parse_crs(crs)
        except (CRSError, ValueError) as exc:
            problems.error(None, f"--crs {crs!r} is not a coordinate system I know: {exc}")
            return None
    file_crs = raw.file_crs
    if file_crs is None:
        if arg is not None:
            return arg
        if raw.implicit_wgs84:
            if _lonlat_like(raw.geometry or []):
                problems.warn(None, "the GeoJSON names no CRS: read as WGS84 (EPSG:4326) as RFC 7946 says")
                return CRS.from_epsg(4326)
            problems.error(
                None,
                "no CRS: give --crs (the GeoJSON names no CRS and its coordinates are not longitude/latitude)",
            )
            return None
        what = {
            "csv": "a CSV carries no CRS",
            "shp": "the Shapefile has no .prj",
            "zip": "the zipped Shapefile has no .prj",
        }.get(raw.fmt, "the file names no CRS")
        problems.error(None, f"no CRS: give --crs ({what}; e.g. --crs wgs84, gcj02, EPSG:4490)")
        return None
    if arg is None:
        return file_crs
    if isinstance(arg, str):  # gcj02 / bd09
        if _is_wgs84(file_crs):
            problems.warn(
                None,
                f"the file says EPSG:4326 but --crs says {arg}: coordinates read as {arg} "
                "(web-map data is often labelled WGS84)",
            )
            return arg
        problems.warn(None, f"the file's CRS {_crs_label(file_crs)} overrides --crs {arg}")
        return file_crs
    if isinstance(arg, CRS) and not _same_crs(file_crs, arg):
        problems.warn(None, f"the file's CRS {_crs_label(file_crs)} overrides --crs {_crs_label(arg)}")
    return file_crs


# --------------------------------------------------------------------------- values


class _Bad(ValueError):
    pass


def _blank(value: object) -> bool:
    if value is None or value is pd.NA or value is pd.NaT:
        return True
    if isinstance(value, float | np.floating) and math.isnan(value):
        return True
    return isinstance(value, str) and not value.strip()


def _text(value: object) -> str | None:
    if _blank(value):
        return None
    if isinstance(value, bool | np.bool_):
        return "true" if value else "false"
    if isinstance(value, float | np.floating) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    return str(value).strip()


_SCI = re.compile(r"^\d(\.\d+)?[eE][+]?\d+$")


def _code(value: object, what: str) -> str | None:
    """A code as text of digits. Numbers (DBF/GPKG numeric fields) are accepted when whole."""
    if _blank(value):
        return None
    if isinstance(value, bool | np.bool_):
        raise _Bad(f"{what} must be digits, got {value!r}")
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        number = float(value)
        if number.is_integer() and abs(number) < 2**53:
            return str(int(number))
        raise _Bad(f"{what} must be digits, got the number {value!r}")
    text = str(value).strip()
    if _SCI.match(text):
        raise _Bad(
            f"{what} {text!r} looks like a number a spreadsheet turned into scientific notation: "
            "format the column as text and export again"
        )
    if re.fullmatch(r"\d+\.0+", text):
        text = text.split(".")[0]
    if not text.isascii() or not text.isdigit():
        raise _Bad(f"{what} must be digits only, got {text!r}")
    return text


def _int(value: object, what: str) -> int | None:
    if _blank(value):
        return None
    if isinstance(value, bool | np.bool_):
        raise _Bad(f"{what} must be a whole number, got {value!r}")
    if isinstance(value, int | np.integer):
        return int(value)
    number: float
    if isinstance(value, float | np.floating):
        number = float(value)
    else:
        text = str(value).strip()
        try:
            return int(text)
        except ValueError:
            pass
        try:
            number = float(text)
        except ValueError:
            raise _Bad(f"{what} must be a whole number, got {text!r}") from None
    if not math.isfinite(number) or not number.is_integer():
        raise _Bad(f"{what} must be a whole number, got {value!r}")
    return int(number)


def _real(value: object, what: str) -> float | None:
    if _blank(value):
        return None
    if isinstance(value, bool | np.bool_):
        raise _Bad(f"{what} must be a number, got {value!r}")
    try:
        number = float(str(value).strip()) if isinstance(value, str) else float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise _Bad(f"{what} must be a number, got {value!r}") from None
    if not math.isfinite(number):
        raise _Bad(f"{what} must be a finite number, got {value!r}")
    return number


def _bool(value: object, what: str) -> bool | None:
    if _blank(value):
        return None
    if isinstance(value, bool | np.bool_):
        return bool(value)
    if isinstance(value, int | float | np.integer | np.floating) and value in (0, 1):
        return bool(value)
    text = _norm(value)
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise _Bad(f"{what} must be yes/no (true/false, 1/0, 是/否), got {value!r}")


def _choice(value: str | None, aliases: Mapping[str, str], allowed: Iterable[str], what: str) -> str | None:
    if value is None:
        return None
    n = _norm(value)
    allowed = tuple(allowed)
    if n in allowed:
        return n
    if n in aliases and aliases[n] in allowed:
        return aliases[n]
    if value.strip() in aliases and aliases[value.strip()] in allowed:
        return aliases[value.strip()]
    raise _Bad(f"{what} {value!r} is not one of: {', '.join(allowed)}")


# --------------------------------------------------------------------------- kind rules

_Rec = dict[str, Any]
_Emit = Callable[[str], None]

_ADMIN_LEN = {"city": 6, "county": 6, "township": 9, "village": 12}


def _level_from_code(code: str) -> str | None:
    if len(code) == 6:
        return "city" if code.endswith("00") else "county"
    return {9: "township", 12: "village"}.get(len(code))


def _admin_kind_guess(level: str, code: str, name: str | None) -> str | None:
    if level == "city":
        return "city"
    name = name or ""
    if level == "county":
        for suffix, kind in (("县级市", "county_city"), ("区", "district"), ("县", "county"), ("旗", "county"),
                             ("市", "county_city")):
            if name.endswith(suffix):
                return kind
        return None
    by_code = township_kind if level == "township" else village_kind
    try:
        return by_code(code)  # GB/T 10114 number ranges
    except ValueError:
        pass
    suffixes = (
        (("街道", "street"), ("镇", "town"), ("乡", "township"))
        if level == "township"
        else (("社区", "community"), ("村", "village"))
    )
    for suffix, kind in suffixes:
        if name.endswith(suffix):
            return kind
    return None


def _parent_from_code(code: str, level: str) -> str | None:
    if level == "county":
        return code[:4] + "00"
    if level == "township":
        return code[:6]
    if level == "village":
        return code[:9]
    return None


def _rules_boundaries(rec: _Rec, err: _Emit, warn: _Emit) -> _Rec:
    out: _Rec = {}
    code = _code(rec.get("code"), "code")
    if code is None:
        err("code is missing")
        return out
    out["code"] = code
    inferred = _level_from_code(code)
    if inferred is None:
        err(
            f"code {code!r} has {len(code)} digits: admin codes have 6 (county, GB/T 2260), "
            "9 (township/street) or 12 (village/community)"
        )
        return out
    level = _choice(_text(rec.get("level")), _LEVEL_ALIASES, schema.ADMIN_LEVELS, "level")
    if level is None:
        level = inferred
    elif _ADMIN_LEN[level] != len(code):
        err(f"level {level} does not fit a {len(code)}-digit code (a {level} code has {_ADMIN_LEN[level]} digits)")
        return out
    out["level"] = level
    name = _text(rec.get("name"))
    if name is None:
        err("name is missing")
    out["name"] = name
    kind = _choice(_text(rec.get("kind")), _ADMIN_KIND_ALIASES, schema.ADMIN_KINDS[level], f"kind of a {level}")
    if kind is None:
        kind = _admin_kind_guess(level, code, name)
        if kind is None:
            err(f"kind is missing and cannot be told from the code or name; give one of "
                f"{', '.join(schema.ADMIN_KINDS[level])}")
    out["kind"] = kind
    parent = _code(rec.get("parent_code"), "parent_code")
    expected = _parent_from_code(code, level)
    if parent is None:
        parent = expected
    elif expected is not None and parent != expected and level in ("township", "village"):
        err(f"parent_code {parent} does not match the code (a {level} {code} belongs to {expected})")
    elif expected is not None and parent != expected:
        warn(f"parent_code {parent} is not the code's prefix parent {expected}")
    out["parent_code"] = parent
    households = _int(rec.get("households"), "households")
    if households is not None and households < 0:
        err(f"households must not be negative, got {households}")
    out["households"] = households
    return out


def _rules_grids(rec: _Rec, err: _Emit, warn: _Emit) -> _Rec:
    out: _Rec = {}
    code = _code(rec.get("code"), "code")
    if code is None:
        err("code is missing")
        return out
    if len(code) != 15:
        err(f"grid code {code!r} has {len(code)} digits, a grid code has 15 (12-digit village code + 3)")
    out["code"] = code
    name = _text(rec.get("name"))
    if name is None:
        err("name is missing")
    out["name"] = name
    unit = _code(rec.get("unit_code"), "unit_code")
    if unit is None and len(code) == 15:
        unit = code[:12]
    elif unit is not None:
        if len(unit) != 12:
            err(f"unit_code {unit!r} has {len(unit)} digits, a village/community code has 12")
        elif len(code) == 15 and code[:12] != unit:
            err(f"grid code {code} does not start with its unit_code {unit}")
    out["unit_code"] = unit
    kind = _choice(_text(rec.get("kind")), _GRID_KIND_ALIASES, schema.GRID_KINDS, "kind") or "base"
    out["kind"] = kind
    purpose = _choice(_text(rec.get("purpose")), _PURPOSE_ALIASES, schema.DEDICATED_PURPOSES, "purpose")
    if kind == "dedicated" and purpose is None:
        err(f"a dedicated grid needs a purpose: one of {', '.join(schema.DEDICATED_PURPOSES)}")
    if kind == "base" and purpose is not None:
        warn(f"a base grid has purpose {purpose}: kept, but only dedicated grids use it")
    out["purpose"] = purpose
    for col in ("band_min", "band_max", "households"):
        value = _int(rec.get(col), col)
        if value is not None and value < 0:
            err(f"{col} must not be negative, got {value}")
        out[col] = value
    if out["band_min"] is not None and out["band_max"] is not None and out["band_min"] > out["band_max"]:
        err(f"band_min {out['band_min']} is more than band_max {out['band_max']}")
    return out


def _positive_id(value: object, what: str, err: _Emit) -> int | None:
    ident = _int(value, what)
    if ident is None:
        err(f"{what} is missing")
    elif ident <= 0:
        err(f"{what} must be a positive whole number, got {ident}")
    elif ident >= 2**63:
        err(f"{what} {ident} is too large")
    return ident


def _admin_code(value: object, what: str, err: _Emit, lengths: tuple[int, ...] = (6, 9, 12)) -> str | None:
    code = _code(value, what)
    if code is not None and len(code) not in lengths:
        err(f"{what} {code!r} has {len(code)} digits; expected {' or '.join(map(str, lengths))}")
    return code


def _rules_buildings(rec: _Rec, err: _Emit, warn: _Emit) -> _Rec:
    out: _Rec = {"id": _positive_id(rec.get("id"), "id", err)}
    households = _int(rec.get("households"), "households")
    if households is None:
        err("households is missing")
    elif households <= 0:
        err(f"households must be a positive whole number, got {households}")
    out["households"] = households
    kind = _text(rec.get("kind"))
    if kind is not None:
        kind = _BUILDING_KIND_ALIASES.get(kind, kind)
    out["kind"] = kind
    out["name"] = _text(rec.get("name"))
    for col in ("floors", "units"):
        value = _int(rec.get(col), col)
        if value is not None and value <= 0:
            err(f"{col} must be a positive whole number, got {value}")
        out[col] = value
    unit = _admin_code(rec.get("unit_code"), "unit_code", err, (12,))
    grid = _admin_code(rec.get("grid_code"), "grid_code", err, (15,))
    if unit is None and grid is not None and len(grid) == 15:
        unit = grid[:12]
    elif unit is not None and grid is not None and len(grid) == 15 and grid[:12] != unit:
        err(f"grid_code {grid} does not belong to unit_code {unit}")
    out["unit_code"] = unit
    out["grid_code"] = grid
    return out


_PHONE = re.compile(r"^\+?[0-9][0-9\- ()]{4,19}$")


def _rules_staff(rec: _Rec, err: _Emit, warn: _Emit) -> _Rec:
    out: _Rec = {"id": _positive_id(rec.get("id"), "id", err)}
    name = _text(rec.get("name"))
    if name is None:
        err("name is missing")
    out["name"] = name
    role = _choice(_text(rec.get("role")), _ROLE_ALIASES, schema.STAFF_ROLES, "role")
    if role is None:
        err(f"role is missing: one of {', '.join(schema.STAFF_ROLES)}")
    out["role"] = role
    phone = _text(rec.get("phone"))
    if phone is not None and not _PHONE.match(phone):
        warn(f"phone {phone!r} does not look like a phone number")
    out["phone"] = phone
    out["unit_code"] = _admin_code(rec.get("unit_code"), "unit_code", err)
    out["device_id"] = _text(rec.get("device_id"))
    out["on_duty"] = _bool(rec.get("on_duty"), "on_duty")
    return out


def _rules_cameras(rec: _Rec, err: _Emit, warn: _Emit) -> _Rec:
    out: _Rec = {}
    raw_id = rec.get("id")
    if isinstance(raw_id, int | float | np.integer | np.floating) and not _blank(raw_id):
        err(f"camera id {raw_id!r} was stored as a number: a 20-digit GB/T 28181 id must be a text column")
        ident = None
    else:
        ident = _text(raw_id)
        if ident is None:
            err("camera id is missing")
        elif not (len(ident) == 20 and ident.isascii() and ident.isdigit()):
            err(f"camera id {ident!r} is not a 20-digit GB/T 28181 device id ({len(ident)} characters)")
    out["id"] = ident
    name = _text(rec.get("name"))
    if name is None:
        err("name is missing")
    out["name"] = name
    out["unit_code"] = _admin_code(rec.get("unit_code"), "unit_code", err)
    for col in ("direction", "fov"):
        value = _real(rec.get(col), col)
        if value is not None and not 0 <= value <= 360:
            err(f"{col} must be between 0 and 360 degrees, got {value:g}")
        out[col] = value
    rng = _real(rec.get("range_m"), "range_m")
    if rng is not None and rng <= 0:
        err(f"range_m must be more than 0 metres, got {rng:g}")
    out["range_m"] = rng
    out["cam_class"] = _choice(_text(rec.get("cam_class")), _CAM_CLASS_ALIASES, ("class1", "other"), "cam_class")
    out["online"] = _bool(rec.get("online"), "online")
    url = _text(rec.get("stream_url"))
    if url is not None and not url.lower().startswith(_URL_SCHEMES):
        warn(f"stream_url {url[:60]!r} is not an http(s)/rtsp/rtmp/ws(s) address")
    out["stream_url"] = url
    return out


_RULES: dict[str, Callable[[_Rec, _Emit, _Emit], _Rec]] = {
    "boundaries": _rules_boundaries,
    "grids": _rules_grids,
    "buildings": _rules_buildings,
    "staff": _rules_staff,
    "cameras": _rules_cameras,
}


# --------------------------------------------------------------------------- geometry


def _fit_geometry(geom: BaseGeometry | None, target: str) -> tuple[BaseGeometry | None, str | None]:
    """Shape a (valid, WGS84) geometry for the table's geometry column. Returns (geometry, error)."""
    if geom is None or geom.is_empty:
        return geom, None
    gtype = geom.geom_type
    if target in ("MULTIPOLYGON", "POLYGON"):
        if gtype == "GeometryCollection":
            parts = [g for g in getattr(geom, "geoms", []) if g.geom_type in ("Polygon", "MultiPolygon")]
            polys: list[Polygon] = []
            for part in parts:
                polys.extend(list(part.geoms) if isinstance(part, MultiPolygon) else [part])
            geom = MultiPolygon(polys) if polys else geom
            gtype = geom.geom_type
        if gtype not in ("Polygon", "MultiPolygon"):
            return None, f"geometry is a {gtype}, expected a polygon"
        if target == "MULTIPOLYGON":
            return (MultiPolygon([geom]) if isinstance(geom, Polygon) else geom), None
        if isinstance(geom, MultiPolygon):
            if len(geom.geoms) == 1:
                return geom.geoms[0], None
            return None, f"the building outline has {len(geom.geoms)} separate parts: draw each building on its own"
        return geom, None
    if target == "POINT":
        if gtype == "MultiPoint" and len(getattr(geom, "geoms", [])) == 1:
            return geom.geoms[0], None  # type: ignore[attr-defined]
        if gtype != "Point":
            return None, f"geometry is a {gtype}, expected a point"
    return geom, None


_GEOM_TYPES = {"polygon": ("Polygon", "MultiPolygon"), "point": ("Point", "MultiPoint")}


def _issue_parts(issue: Any) -> tuple[int | None, str]:
    row = getattr(issue, "row", None)
    message = getattr(issue, "message", None) or str(issue)
    if row is not None:
        try:
            row = int(row)
        except (TypeError, ValueError):
            row = None
    return row, str(message)


def _repaired_count(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    try:
        return len(value)
    except TypeError:
        return int(value)


# --------------------------------------------------------------------------- import


def _kind(kind: str) -> _Kind:
    try:
        return KINDS[kind]
    except KeyError:
        raise ValueError(f"unknown kind {kind!r}; known: {', '.join(KINDS)}") from None


def _existing_keys(store: Store, table: str, key: str) -> set[str]:
    frame = store.read(table, columns=[key])
    return {str(v) for v in frame[key].tolist() if not _blank(v)}


def _rejection(report: ImportReport, problems: _Problems) -> ImportRejected:
    report.errors = problems.render_errors()
    report.warnings = problems.render_warnings()
    return ImportRejected(report)


def _read_rows(
    path: Path, spec: _Kind, layer: str | None, max_bytes: int, report: ImportReport, problems: _Problems
) -> _Raw:
    """Read a file for an import or a planning layer; record what the reading found. Raises
    ImportRejected when the file cannot be read or has no rows."""
    try:
        raw = _read(path, spec, layer, max_bytes)
    except _Unreadable as exc:
        problems.error(None, str(exc))
        raise _rejection(report, problems) from None
    except OSError as exc:
        problems.error(None, f"could not read {path.name}: {exc.strerror or exc}")
        raise _rejection(report, problems) from None
    report.rows_read = len(raw.frame)
    if len(raw.frame) == 0:
        problems.error(None, f"{path.name} has no rows")
        raise _rejection(report, problems)
    for row, message in raw.row_errors:
        problems.error(row, message)
    for note in raw.notes:
        problems.warn(None, note)
    return raw


def _checked_geometry(
    raw: _Raw,
    attrs: pd.DataFrame,
    *,
    crs: str | None,
    region: tuple[float, float, float, float] | None,
    geometry_types: tuple[str, ...] | None,
    report: ImportReport,
    problems: _Problems,
) -> tuple[gpd.GeoDataFrame, Any]:
    """``attrs`` (RangeIndex, plus a ``_row`` column) with the file's geometry in WGS84, checked and
    repaired by :func:`validate_frame`, by the CRS rule of the module docstring: ``(frame,
    validation report)``. Raises ImportRejected when the CRS or the conversion fails."""
    source = _decide_crs(raw, crs, problems)
    if source is None:
        raise _rejection(report, problems)
    report.crs_used = _crs_label(source)
    gdf = gpd.GeoDataFrame(
        attrs,
        geometry=gpd.GeoSeries(raw.geometry, index=pd.RangeIndex(len(attrs))),
        crs=source if isinstance(source, CRS) else "EPSG:4326",
    )
    try:
        gdf = to_wgs84(gdf, source=source)
    except (CRSError, ValueError, RuntimeError) as exc:  # pyproj's ProjError is a RuntimeError
        problems.error(None, f"could not convert the coordinates from {report.crs_used} to WGS84: {exc}")
        raise _rejection(report, problems) from None
    try:
        checked, vreport = validate_frame(gdf, region=region, geometry_types=geometry_types, repair=True)
    except (CRSError, ValueError) as exc:
        problems.error(None, f"could not check the geometries: {exc}")
        raise _rejection(report, problems) from None
    for issue in vreport.errors:
        problems.error(*_issue_parts(issue))
    for issue in vreport.warnings:
        problems.warn(*_issue_parts(issue))
    report.repaired = _repaired_count(getattr(vreport, "repaired", 0))
    return checked, vreport


def import_file(
    store: Store,
    kind: str,
    path: str | Path,
    *,
    crs: str | None = None,
    region: tuple[float, float, float, float] | None = None,
    mode: WriteMode = "upsert",
    layer: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    partial: bool = False,
) -> ImportReport:
    """Read ``path`` as ``kind``, check every row and write all of them in one transaction.

    Raises :class:`ImportRejected` (nothing written) when the file is unreadable or any row has an
    error; returns the report otherwise. Warnings (repaired geometry, guessed values) do not stop
    an import. ``region`` (min lon, min lat, max lon, max lat) makes rows outside it errors.
    ``partial``: rows with errors are reported and left out, the others written (a camera registry
    with a few bad rows); problems with the file as a whole still reject it."""
    spec = _kind(kind)
    if mode not in ("append", "replace", "upsert"):
        raise ValueError(f"mode must be append, replace or upsert, not {mode!r}")
    path = Path(path)
    report = ImportReport(kind=kind, path=str(path))
    problems = _Problems(spec.key)

    def reject() -> ImportRejected:
        return _rejection(report, problems)

    raw = _read_rows(path, spec, layer, max_bytes, report, problems)
    n = len(raw.frame)

    rename, ignored, notes = _map_columns(raw.frame.columns, spec)
    for note in notes:
        problems.warn(None, note)
    if ignored:
        problems.warn(None, f"columns not used: {', '.join(ignored)}")
    frame = raw.frame[list(rename)].rename(columns=rename)
    if spec.key not in frame.columns:
        problems.error(
            None,
            f"no {spec.key} column: {path.name} has {', '.join(map(str, raw.frame.columns)) or 'no columns'}",
        )
        raise reject()
    records: list[_Rec] = frame.to_dict("records")  # type: ignore[assignment]
    for i, rec in enumerate(records):
        key = rec.get(spec.key)
        if not _blank(key):
            problems.labels[i] = _text(key) or ""

    # geometry: CRS, conversion, validation
    geoms: list[BaseGeometry | None] = [None] * n
    if spec.geometry is not None:
        if raw.geometry is None or all(g is None for g in raw.geometry):
            problems.error(None, f"{path.name} has no geometry: {kind} need {spec.geometry}s")
            raise reject()
        checked, vreport = _checked_geometry(
            raw, pd.DataFrame({"_row": np.arange(n)}), crs=crs, region=region,
            geometry_types=_GEOM_TYPES[spec.geometry], report=report, problems=problems,
        )
        target = schema.table(spec.table).geometry_column
        target_kind = target.geometry_kind if target is not None else "GEOMETRY"
        rows = checked["_row"].tolist() if "_row" in checked.columns else list(range(len(checked)))
        flagged = {r for r, _ in map(_issue_parts, vreport.errors)}
        for row, geom in zip(rows, checked.geometry.array, strict=True):
            if int(row) in flagged:
                continue  # already reported by the validator
            fitted, error = _fit_geometry(geom, target_kind)
            if error:
                problems.error(int(row), error)
            geoms[int(row)] = fitted

    # attributes
    rule = _RULES[spec.name]
    out_rows: list[_Rec] = []
    missing_kind: list[int] = []
    for i, rec in enumerate(records):
        def err(message: str, _i: int = i) -> None:
            problems.error(_i, message)

        def warn(message: str, _i: int = i) -> None:
            problems.warn(_i, message)

        try:
            out = rule(rec, err, warn)
        except _Bad as exc:
            err(str(exc))
            out = {}
        if spec.name == "buildings" and out.get("kind") is None and "id" in out:
            out["kind"] = "apartment"
            missing_kind.append(i)
        if out.get(spec.key) is not None:
            problems.labels[i] = str(out[spec.key])
        out_rows.append(out)
    if missing_kind:
        problems.warn(
            None,
            f"{len(missing_kind)} building(s) without a kind (first: row {missing_kind[0] + 1}): set to apartment",
        )

    # duplicates within the file and, for append, against the store
    keys = [out.get(spec.key) for out in out_rows]
    seen: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        if key is not None:
            seen.setdefault(str(key), []).append(i)
    for key, rows in seen.items():
        if len(rows) > 1:
            where = ", ".join(str(r + 1) for r in rows[:10]) + (" ..." if len(rows) > 10 else "")
            problems.error(None, f"{spec.key} {key} appears {len(rows)} times in the file (rows {where})")
    if mode == "append" and seen:
        existing = _existing_keys(store, spec.table, spec.key)
        clashes = [k for k in seen if k in existing]
        for key in clashes:
            problems.error(
                seen[key][0],
                f"{spec.key} {key} already exists in the store: use mode upsert to update it or replace to start over",
            )
    _reference_warnings(store, spec, out_rows, problems)

    bad_rows = {row for _, row, _ in problems.errors if row is not None}
    if problems.errors and (not partial or any(row is None for _, row, _ in problems.errors)):
        raise reject()
    if bad_rows:
        keep = [i for i in range(len(out_rows)) if i not in bad_rows]
        out_rows = [out_rows[i] for i in keep]
        geoms = [geoms[i] for i in keep]
        report.rows_skipped = len(bad_rows)

    # write
    table = schema.table(spec.table)
    data: dict[str, pd.Series] = {}
    for col in spec.columns:
        data[col] = pd.Series([out.get(col) for out in out_rows], dtype=object)
    if spec.geometry is not None:
        result: pd.DataFrame = gpd.GeoDataFrame(data, geometry=gpd.GeoSeries(geoms), crs="EPSG:4326")
    else:
        result = pd.DataFrame(data)
    assert set(spec.columns) <= set(table.column_names)
    try:
        with store.transaction():
            written = store.write(spec.table, result, mode=mode)
    except StoreError as exc:
        problems.error(None, f"the store refused the rows: {exc}")
        raise reject() from exc
    report.rows_written = int(written)
    report.errors = problems.render_errors()
    report.warnings = problems.render_warnings()
    return report


def _reference_warnings(store: Store, spec: _Kind, rows: list[_Rec], problems: _Problems) -> None:
    """Warn (never fail: files may come in any order) about codes that point at nothing known."""
    checks: list[tuple[str, str, str]] = []
    if spec.name == "grids":
        checks.append(("unit_code", "admin_units", "code"))
    elif spec.name == "buildings":
        checks.append(("grid_code", "grids", "code"))
    elif spec.name == "boundaries":
        checks.append(("parent_code", "admin_units", "code"))
    for column, table, key in checks:
        wanted = {str(r[column]) for r in rows if r.get(column) is not None}
        if not wanted:
            continue
        known = _existing_keys(store, table, key)
        if spec.table == table:
            known |= {str(r[key]) for r in rows if r.get(key) is not None}
        if not known and spec.name != "boundaries":
            continue  # nothing imported yet: nothing to compare with
        unknown = sorted(wanted - known)
        if unknown and not (spec.name == "boundaries" and all(len(u) == 6 for u in unknown)):
            sample = ", ".join(unknown[:5]) + (" ..." if len(unknown) > 5 else "")
            problems.warn(None, f"{len(unknown)} {column} value(s) not found in {table}: {sample}")


# --------------------------------------------------------------------------- export


def _export_format(path: Path) -> str:
    fmt = _FORMAT_BY_EXT.get(path.suffix.lower())
    if fmt is None:
        raise ValueError(
            f"cannot export to {path.name}: use .geojson, .gpkg, .zip (zipped Shapefile), .shp or .csv"
        )
    return fmt


def _typed_column(values: pd.Series, type_: str) -> pd.Series:
    if type_ == "text":
        return pd.Series([_text(v) if not isinstance(v, str) else v for v in values], index=values.index,
                         dtype=object)
    if type_ in ("int", "bigint"):
        return pd.Series([None if _blank(v) else int(v) for v in values], index=values.index, dtype="Int64")
    if type_ == "real":
        return pd.Series([None if _blank(v) else float(v) for v in values], index=values.index, dtype="Float64")
    if type_ == "bool":
        return pd.Series([None if _blank(v) else bool(v) for v in values], index=values.index, dtype="boolean")
    return values


def export_file(
    store: Store,
    kind: str,
    path: str | Path,
    *,
    crs: str | None = None,
    where: Where | None = None,
) -> int:
    """Write the rows of ``kind`` (filtered by ``where``) to ``path``; the format follows the
    extension (.geojson/.json, .gpkg, .zip = zipped Shapefile, .shp, .csv). ``crs`` converts the
    coordinates (e.g. "gcj02", "bd09", "EPSG:4490"); default WGS84. Returns the rows written."""
    spec = _kind(kind)
    path = Path(path)
    fmt = _export_format(path)
    if spec.geometry is None and fmt in ("shp", "zip"):
        raise ValueError(f"{kind} has no geometry: export it to .csv, .gpkg or .geojson, not a Shapefile")
    target: object | None = parse_crs(crs) if crs is not None else None
    table = schema.table(spec.table)
    frame = store.read(spec.table, where=where)
    columns: dict[str, pd.Series] = {}
    for col in spec.columns:
        series = frame[col] if col in frame.columns else pd.Series([None] * len(frame), index=frame.index)
        columns[col] = _typed_column(series, table.column(col).type)
    attrs = pd.DataFrame(columns, index=frame.index)
    if spec.geometry is not None:
        gdf = gpd.GeoDataFrame(
            attrs, geometry=gpd.GeoSeries(frame.geometry.array, index=frame.index), crs="EPSG:4326"
        )
        if isinstance(target, str):  # gcj02 / bd09: shifted lon/lat, labelled EPSG:4326
            gdf = from_wgs84(gdf, target=target)
        elif isinstance(target, CRS) and not _is_wgs84(target):
            gdf = gdf.to_crs(target)
        result: pd.DataFrame = gdf
    else:
        result = attrs
    result = result.reset_index(drop=True)
    _write(result, path, fmt, spec)
    return len(result)


def _write(frame: pd.DataFrame, path: Path, fmt: str, spec: _Kind) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "csv":
        out = pd.DataFrame(frame.drop(columns="geometry")) if "geometry" in frame.columns else frame.copy()
        if isinstance(frame, gpd.GeoDataFrame):
            geom = frame.geometry
            if spec.geometry == "point":
                out["lon"] = [None if g is None or g.is_empty else repr(g.x) for g in geom]
                out["lat"] = [None if g is None or g.is_empty else repr(g.y) for g in geom]
            else:
                out["wkt"] = [
                    None if g is None else shapely.to_wkt(g, rounding_precision=-1) for g in geom
                ]
        out.to_csv(path, index=False, encoding="utf-8-sig")
        return
    if fmt in ("shp", "zip"):
        frame = frame.rename(columns=_SHP_NAMES)
        frame = frame.astype({c: object for c in frame.columns if str(frame[c].dtype) == "boolean"})
        frame = frame.astype({c: "Int64" for c in frame.columns if c in ("on_duty", "online")})
    if fmt == "geojson":
        path.unlink(missing_ok=True)
        pyogrio.write_dataframe(frame, str(path), driver="GeoJSON", layer=spec.name)
    elif fmt == "gpkg":
        pyogrio.write_dataframe(frame, str(path), driver="GPKG", layer=spec.name)
    elif fmt == "shp":
        pyogrio.write_dataframe(frame, str(path), driver="ESRI Shapefile", encoding="UTF-8")
    elif fmt == "zip":
        with tempfile.TemporaryDirectory() as tmp:
            shp = Path(tmp) / f"{path.stem}.shp"
            pyogrio.write_dataframe(frame, str(shp), driver="ESRI Shapefile", encoding="UTF-8")
            path.unlink(missing_ok=True)
            with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
                for part in sorted(Path(tmp).iterdir()):
                    zf.write(part, arcname=part.name)



# --------------------------------------------------------------------------- any layer (planning files)


def read_layer(
    path: str | Path,
    *,
    crs: str | None = None,
    layer: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    what: str = "layer",
    geometry: Literal["polygon", "point", "line"] | None = None,
) -> tuple[gpd.GeoDataFrame, ImportReport]:
    """Read any GIS file (GeoJSON, GeoPackage, zipped Shapefile, CSV with wkt/lon/lat) into a WGS84
    GeoDataFrame that keeps every attribute column, by the same CRS rule and geometry checks as
    :func:`import_file` (repairing what can be repaired), without writing anywhere. Used for planning
    inputs that are not rows of a table: a boundary, OpenStreetMap building extracts, road
    networks, other departments' grid layers. Raises :class:`ImportRejected` listing every problem."""
    path = Path(path)
    spec = _Kind(what, "", "", "point" if geometry == "point" else "polygon", ())
    report = ImportReport(kind=what, path=str(path))
    problems = _Problems("")

    raw = _read_rows(path, spec, layer, max_bytes, report, problems)
    if raw.geometry is None or all(g is None for g in raw.geometry):
        problems.error(None, f"{path.name} has no geometry")
        raise _rejection(report, problems)
    attrs = raw.frame.copy()
    attrs.columns = [str(c) for c in attrs.columns]
    attrs = attrs.drop(columns=[c for c in attrs.columns if c.lower() in ("wkt", "geometry")], errors="ignore")
    types = {"polygon": ("Polygon", "MultiPolygon"), "point": ("Point",), "line": ("LineString", "MultiLineString")}
    checked, _vreport = _checked_geometry(
        raw, attrs.assign(_row=np.arange(len(attrs))), crs=crs, region=None,
        geometry_types=types[geometry] if geometry else None, report=report, problems=problems,
    )
    if problems.errors:
        raise _rejection(report, problems)
    out = checked.drop(columns="_row").reset_index(drop=True)
    report.rows_written = len(out)
    report.errors = problems.render_errors()
    report.warnings = problems.render_warnings()
    return out, report


def write_layer(frame: gpd.GeoDataFrame, path: str | Path, *, name: str = "grids", crs: str | None = None) -> int:
    """Write a GeoDataFrame to ``path`` (format by extension, as :func:`export_file`), keeping every
    column; ``crs`` converts the coordinates (e.g. "gcj02", "EPSG:4490"). Returns rows written."""
    path = Path(path)
    fmt = _export_format(path)
    gdf = to_wgs84(frame) if frame.crs is not None and not _is_wgs84(CRS.from_user_input(frame.crs)) else frame
    target: object | None = parse_crs(crs) if crs is not None else None
    if isinstance(target, str):
        gdf = from_wgs84(gdf, target=target)
    elif isinstance(target, CRS) and not _is_wgs84(target):
        gdf = gdf.to_crs(target)
    points = bool(len(gdf)) and bool(gdf.geom_type.isin(["Point"]).all())
    spec = _Kind(name, "", "", "point" if points else "polygon", tuple(c for c in gdf.columns if c != gdf.geometry.name))
    _write(gdf.reset_index(drop=True), path, fmt, spec)
    return len(gdf)
