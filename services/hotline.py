"""Importing 12345 hotline exports (工单导出) as cases, and the queue of rows that need a person.

A 12345 system exports its work orders as a spreadsheet: CSV in UTF-8 (with or without BOM),
GB18030/GBK or UTF-16 (Excel's "Unicode text"), separated by commas, tabs or semicolons, sometimes
with a title line above the header; or .xlsx (read when openpyxl is installed). Column names vary
from city to city, so a ``ColumnMapping`` names the headers of each of our fields; by default the
common Chinese variants in ``DEFAULT_ALIASES`` are tried (``load_mapping`` reads a JSON or TOML
file, ``save_mapping``/``mapping_from_settings`` keep one in the store under ``hotline.mapping``).

Each row becomes a case through ``services.cases.create_case`` (source ``hotline_12345``, the
ticket number as external id, so importing the same file twice creates nothing twice; a likely
duplicate is linked to the earlier case). Coordinates are converted to WGS84 from the mapping's
``coords`` (AMap-based systems export GCJ-02, Baidu-based ones BD-09). A row without coordinates
is located by its address: a building named in it (within the village/community named in it, where
one is), else a facility, else the village/community itself (its representative point). A row that
cannot become a case goes to ``hotline_queue`` with a reason (``REASONS``) and the whole row as JSON,
nothing lost; a person resolves it with a location and category (``resolve_queued``) or discards it.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import re
import tomllib
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from geo.crs import bd09_to_wgs84, gcj02_to_wgs84, out_of_china
from services import settings
from services.cases import (
    MAX_DESCRIPTION,
    MAX_SHORT_TEXT,
    CaseConflict,
    CaseError,
    CaseNotFound,
    NewCase,
    categories,
    clean_text,
    create_case,
    utc,
)
from services.geocode import Gazetteer, gazetteer, norm
from store.base import Store

SOURCE = "hotline_12345"
SETTING_KEY = "hotline.mapping"
MAX_BYTES = 20 * 1024 * 1024
MAX_ROWS = 100_000
MAX_FIELD = 1_000_000  # characters in one cell; more is not a hotline export
MAX_EXTERNAL_ID = 100  # characters of a ticket number (as services.cases stores it)
HEADER_SEARCH_ROWS = 10  # a title line or two may sit above the header
REASONS = ("invalid", "unknown_category", "no_location", "swapped_coordinates", "out_of_region")

FIELDS = (
    "external_id",
    "received_at",
    "category",
    "description",
    "address",
    "reporter_name",
    "reporter_phone",
    "lon",
    "lat",
    "lonlat",
)

# Header variants seen in 12345 exports, most specific first. Headers are compared after NFKC
# (full-width → half-width), lower-casing and dropping spaces and bracketed notes ("经度(GCJ02)"
# is "经度"); an alias of three characters or more also matches a header that contains it.
DEFAULT_ALIASES: dict[str, tuple[str, ...]] = {
    "external_id": ("工单编号", "工单号", "工单编码", "受理编号", "诉求编号", "事件编号", "流水号", "编号",
                    "ticket_id", "external_id", "service_request_id"),  # fmt: skip
    "received_at": ("来电时间", "受理时间", "登记时间", "接听时间", "诉求时间", "上报时间", "创建时间",
                    "received_at", "requested_datetime", "时间"),  # fmt: skip
    "category": ("诉求分类", "问题类型", "问题分类", "诉求类型", "事项分类", "业务分类", "业务类型", "分类",
                 "类别", "category", "service_code"),  # fmt: skip
    "description": ("诉求内容", "问题描述", "来电内容", "诉求描述", "事件描述", "反映内容", "工单内容", "内容",
                    "description"),  # fmt: skip
    "address": ("事发地址", "事发地点", "问题地址", "诉求地址", "发生地址", "地址", "地点", "address",
                "address_string"),  # fmt: skip
    "reporter_name": ("来电人", "来电人姓名", "诉求人", "市民姓名", "联系人", "姓名", "reporter_name", "name"),
    "reporter_phone": ("来电号码", "联系电话", "来电人电话", "诉求人电话", "联系方式", "手机号码", "电话",
                       "reporter_phone", "phone"),  # fmt: skip
    "lon": ("经度", "lon", "lng", "long", "longitude"),
    "lat": ("纬度", "lat", "latitude"),
    "lonlat": ("经纬度", "坐标", "lonlat", "location"),
}

# The keyword fallback for category texts that are not a code, a name or in the mapping's table
# (and, when the category cell is empty, for the description). First hit wins, so specific words
# come before general ones; a target code the site does not have is skipped.
KEYWORDS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("诈骗", "涉诈", "骗子", "传销"), "fraud_lead"),
    (("土地流转", "土地承包", "承包地", "流转"), "land_lease_dispute"),
    (("家庭", "家暴", "赡养", "婚姻", "夫妻"), "family_dispute"),
    (("违建", "违法建设", "违章建筑", "私搭乱建", "乱搭乱建"), "illegal_building"),
    (("供暖", "暖气", "供热", "采暖"), "heating"),
    (("积水", "内涝", "淹水"), "flooding"),
    (("噪音", "噪声", "吵闹"), "noise"),
    (("垃圾",), "exposed_garbage"),
    (("道路不洁", "路面脏", "泥土", "扬尘"), "dirty_road"),
    (("蛇", "流浪狗", "流浪猫", "动物", "老鼠"), "animal"),
    (("隐患", "消防", "燃气", "煤气", "飞线"), "safety_hazard"),
    (("治安", "打架", "斗殴", "酗酒", "滋事", "盗窃"), "public_order"),
    (("漏水", "渗水", "邻里", "邻居"), "neighbour_dispute"),
    (("损坏", "破损", "维修", "扶手", "路灯", "井盖"), "facility_repair"),
    (("纠纷", "矛盾"), "neighbour_dispute"),
)

_COORDS = {
    "wgs84": "wgs84", "wgs-84": "wgs84", "epsg:4326": "wgs84", "4326": "wgs84", "cgcs2000": "wgs84",
    "epsg:4490": "wgs84", "4490": "wgs84", "gps": "wgs84",
    "gcj02": "gcj02", "gcj-02": "gcj02", "amap": "gcj02", "高德": "gcj02", "tencent": "gcj02", "腾讯": "gcj02",
    "bd09": "bd09", "bd-09": "bd09", "baidu": "bd09", "百度": "bd09",
}  # fmt: skip
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_BRACKETS = re.compile(r"[(\[【][^)\]】]*[)\]】]")


class HotlineError(ValueError):
    """The file (or mapping) cannot be imported at all; nothing was written. The message says why."""


# ----------------------------------------------------------------------------- the mapping


def _norm_header(text: Any) -> str:
    return _BRACKETS.sub("", norm(text)).strip(":：*")


class ColumnMapping(BaseModel):
    """Which header holds each field. A field's value is one header or a list of candidates, tried
    before the defaults (``DEFAULT_ALIASES``; ``use_default_aliases=False`` turns those off).
    ``coords``: the coordinate system of lon/lat (wgs84 | gcj02 | bd09; CGCS2000 counts as
    wgs84). ``timezone``: of times without an offset (default: the city's, setting ``tz``).
    ``categories``: the hotline's category text → our category code. ``guess_from_description``:
    when a row's category cell is empty, look for ``KEYWORDS`` in its description."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    external_id: tuple[str, ...] = ()
    received_at: tuple[str, ...] = ()
    category: tuple[str, ...] = ()
    description: tuple[str, ...] = ()
    address: tuple[str, ...] = ()
    reporter_name: tuple[str, ...] = ()
    reporter_phone: tuple[str, ...] = ()
    lon: tuple[str, ...] = ()
    lat: tuple[str, ...] = ()
    lonlat: tuple[str, ...] = ()
    coords: Literal["wgs84", "gcj02", "bd09"] = "wgs84"
    timezone: str | None = None
    categories: dict[str, str] = {}
    guess_from_description: bool = True
    use_default_aliases: bool = True

    @field_validator(*FIELDS, mode="before")
    @classmethod
    def _headers(cls, v: Any) -> Any:
        if v is None:
            return ()
        if isinstance(v, str):
            return (v,) if v.strip() else ()
        return v

    @field_validator("coords", mode="before")
    @classmethod
    def _coords(cls, v: Any) -> Any:
        if isinstance(v, str):
            key = v.strip().lower()
            if key not in _COORDS:
                raise ValueError(f"unknown coordinate system {v!r}: use wgs84, gcj02 or bd09")
            return _COORDS[key]
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str | None) -> str | None:
        if v:
            try:
                ZoneInfo(v)
            except (ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"unknown time zone {v!r}") from None
        return v or None

    def candidates(self, name: str) -> tuple[str, ...]:
        """Headers tried for field ``name``, the mapping's own first."""
        own: tuple[str, ...] = getattr(self, name)
        defaults = DEFAULT_ALIASES[name] if self.use_default_aliases else ()
        return tuple(dict.fromkeys([*own, *defaults]))


DEFAULT_MAPPING = ColumnMapping()


def _mapping_from(data: Any, where: str) -> ColumnMapping:
    try:
        return ColumnMapping.model_validate(data)
    except ValidationError as e:
        problems = "; ".join(f"{'.'.join(str(p) for p in err['loc']) or 'mapping'}: {err['msg']}" for err in e.errors())
        raise HotlineError(f"the column mapping in {where} is not valid: {problems}") from None


def mapping_with(mapping: ColumnMapping, **changes: Any) -> ColumnMapping:
    """A copy of ``mapping`` with some fields changed, validated (HotlineError if a value is bad):
    ``mapping_with(m, coords="gcj02")``."""
    return _mapping_from({**mapping.model_dump(), **changes}, "the options")


def load_mapping(path: Path | str) -> ColumnMapping:
    """A mapping from a JSON or TOML file (keys as in ``ColumnMapping``, e.g.
    ``{"external_id": "工单号", "coords": "gcj02", "categories": {"市容环境": "exposed_garbage"}}``)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise HotlineError(f"cannot read the mapping file {p.name}: {e}") from None
    try:
        data = tomllib.loads(text) if p.suffix.lower() == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as e:
        raise HotlineError(f"the mapping file {p.name} is not valid {p.suffix.lstrip('.') or 'JSON'}: {e}") from None
    return _mapping_from(data, p.name)


def mapping_from_settings(store: Store) -> ColumnMapping:
    """The mapping the admin saved (setting ``hotline.mapping``), else the default."""
    text = store.get_setting(SETTING_KEY)
    if not text:
        return DEFAULT_MAPPING
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise HotlineError(f"the saved 12345 column mapping is not valid JSON: {e}") from None
    return _mapping_from(data, "the settings")


def save_mapping(store: Store, mapping: ColumnMapping) -> None:
    """Save the mapping for later imports; ValueError (nothing saved) when its category table names
    codes the site does not have."""
    known = set(categories(store)["code"].astype(str))
    unknown = sorted({c for c in mapping.categories.values() if c not in known})
    if unknown:
        raise HotlineError(f"the category table names unknown codes: {', '.join(unknown)}")
    store.set_setting(SETTING_KEY, mapping.model_dump_json(exclude_defaults=True))


# ----------------------------------------------------------------------------- reading


def _decode(raw: bytes) -> str:
    if raw.startswith(b"\xef\xbb\xbf"):
        encodings: tuple[str, ...] = ("utf-8-sig",)
    elif raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        encodings = ("utf-16",)
    else:
        encodings = ("utf-8", "gb18030")
    for enc in encodings:
        try:
            text = raw.decode(enc)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise HotlineError("the file is neither UTF-8, GB18030/GBK nor UTF-16 text (is it a spreadsheet? save it as CSV)")
    if text.count("\x00") > max(10, len(text) // 100):
        raise HotlineError("the file looks binary, not like a CSV or text export")
    return text.replace("\x00", "")


def _delimiter(text: str) -> str:
    """Comma, tab or semicolon: the one that splits the first records into the most rows of one
    width (title lines and quoted multi-line cells do not fool it); csv.Sniffer breaks ties."""
    sample = text[:65536]
    try:
        sniffed: str | None = csv.Sniffer().sniff(sample, delimiters=",\t;").delimiter
    except csv.Error:
        sniffed = None
    scores: dict[str, tuple[int, int, int]] = {}
    for d in (",", "\t", ";"):
        widths: dict[int, int] = {}
        try:
            for k, rec in enumerate(csv.reader(io.StringIO(sample, newline=""), delimiter=d)):
                if k >= 4 * HEADER_SEARCH_ROWS:
                    break
                if len(rec) > 1:
                    widths[len(rec)] = widths.get(len(rec), 0) + 1
        except csv.Error:
            pass
        rows, width = max(((n, w) for w, n in widths.items()), default=(0, 0))
        scores[d] = (rows * min(width, 50), int(d == sniffed), int(d == ","))
    return max(scores, key=lambda d: scores[d])


def _records_from_text(text: str) -> list[list[str]]:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    old = csv.field_size_limit()
    csv.field_size_limit(MAX_FIELD)
    out: list[list[str]] = []
    try:
        for rec in reader:
            out.append(rec)
            if len(out) > MAX_ROWS + HEADER_SEARCH_ROWS + 1:
                raise HotlineError(f"the file has more than {MAX_ROWS:,} rows; split it and import the parts")
    except csv.Error as e:
        raise HotlineError(f"the file is not a readable CSV (line {reader.line_num}): {e}") from None
    finally:
        csv.field_size_limit(old)
    return out


def _records_from_xlsx(raw: bytes) -> list[list[str]]:
    try:
        import openpyxl  # noqa: F401
    except ImportError:
        raise HotlineError("reading .xlsx needs openpyxl (pip install openpyxl); or save the sheet as CSV") from None
    try:
        frame = pd.read_excel(io.BytesIO(raw), header=None, dtype=str, engine="openpyxl")
    except Exception as e:  # openpyxl raises many kinds on damaged files
        raise HotlineError(f"the spreadsheet cannot be read: {e}") from None
    if len(frame) > MAX_ROWS + HEADER_SEARCH_ROWS + 1:
        raise HotlineError(f"the file has more than {MAX_ROWS:,} rows; split it and import the parts")
    return [["" if pd.isna(v) else str(v) for v in row] for row in frame.itertuples(index=False)]


def _match_headers(headers: Sequence[str], mapping: ColumnMapping) -> dict[str, int]:
    """Field → column index: the mapping's headers first, then exact aliases, then aliases of three
    characters or more contained in a header; each header serves one field."""
    normed = [_norm_header(h) for h in headers]
    found: dict[str, int] = {}
    taken: set[int] = set()

    def take(name: str, index: int) -> None:
        found[name] = index
        taken.add(index)

    for name in FIELDS:  # the mapping's own headers, exactly
        for h in getattr(mapping, name):
            hn = _norm_header(h)
            hits = [i for i, n in enumerate(normed) if n == hn and i not in taken]
            if hits and name not in found:
                take(name, hits[0])
    for name in FIELDS:  # the aliases, exactly
        if name in found:
            continue
        for alias in mapping.candidates(name):
            an = _norm_header(alias)
            hits = [i for i, n in enumerate(normed) if n == an and i not in taken]
            if hits:
                take(name, hits[0])
                break
    for name in FIELDS:  # longer aliases contained in a header ("来电时间(北京时间)")
        if name in found:
            continue
        for alias in mapping.candidates(name):
            an = _norm_header(alias)
            if len(an) < 3:
                continue
            hits = [i for i, n in enumerate(normed) if an in n and i not in taken]
            if hits:
                take(name, hits[0])
                break
    return found


def _expected_text(mapping: ColumnMapping, names: Iterable[str]) -> str:
    return "; ".join(f"{n}: {' / '.join(mapping.candidates(n)[:6])}" for n in names)


def read_export(data: bytes | Path | str, *, mapping: ColumnMapping | None = None) -> pd.DataFrame:
    """The rows of an export, one per ticket: ``row_no`` (the spreadsheet row, header = its own row
    number), our fields as text ("" when the file has no such column or the cell is empty) and
    ``raw`` (the whole row, header → text). ``frame.attrs["columns"]`` says which header fed which
    field, ``attrs["headers"]`` lists all. HotlineError when the file is too big (> 20 MB or
    > 100,000 rows), unreadable, or lacks a description column or any location column (address,
    or lon and lat)."""
    mapping = mapping or DEFAULT_MAPPING
    is_xlsx = False
    if isinstance(data, bytes | bytearray):
        raw = bytes(data)
    else:
        p = Path(data)
        try:
            size = p.stat().st_size
        except OSError as e:
            raise HotlineError(f"cannot read {p.name}: {e.strerror or e}") from None
        if size > MAX_BYTES:
            raise HotlineError(f"{p.name} is {size / 1e6:.1f} MB; at most {MAX_BYTES // (1024 * 1024)} MB are accepted")
        raw = p.read_bytes()
        is_xlsx = p.suffix.lower() in (".xlsx", ".xlsm")
    if len(raw) > MAX_BYTES:
        raise HotlineError(f"the file is {len(raw) / 1e6:.1f} MB; at most {MAX_BYTES // (1024 * 1024)} MB are accepted")
    if not raw.strip():
        raise HotlineError("the file is empty")
    if raw[:4] == b"\xd0\xcf\x11\xe0":
        raise HotlineError("old .xls workbooks are not read: save the sheet as .xlsx or CSV")
    if re.match(rb"\s*<(!doctype|html|table|\?xml)", raw[:200].lstrip(b"\xef\xbb\xbf"), re.IGNORECASE):
        raise HotlineError("the file is a web page or XML, not a table (some systems save these as .xls): "
                           "open it in Excel and save it as .xlsx or CSV")  # fmt: skip
    records = _records_from_xlsx(raw) if is_xlsx or raw[:4] == b"PK\x03\x04" else _records_from_text(_decode(raw))
    # (spreadsheet row number - 1, cells) of the records that are not blank
    numbered = [(i, r) for i, r in enumerate(records) if any(c.strip() for c in r)]
    if not numbered:
        raise HotlineError("the file holds no rows")
    # the header: the record among the first few that names the most fields
    header_at, best_n = 0, -1
    for k, (_i, rec) in enumerate(numbered[:HEADER_SEARCH_ROWS]):
        n = len(_match_headers(rec, mapping))
        if n > best_n:
            header_at, best_n = k, n
    headers = [_CONTROL.sub("", h).strip() for h in numbered[header_at][1]]
    columns = _match_headers(headers, mapping)
    missing = []
    if "description" not in columns:
        missing.append("description")
    if "address" not in columns and "lonlat" not in columns and not ("lon" in columns and "lat" in columns):
        missing.append("address (or lon and lat)")
    if missing:
        shown = ", ".join(repr(h) for h in headers[:40]) or "none"
        raise HotlineError(
            f"the file lacks the column(s) needed for {' and '.join(missing)}. Headers found: {shown}. "
            f"Expected headers: {_expected_text(mapping, ['description', 'address', 'lon', 'lat'])} "
            "(a mapping file can name other headers)."
        )
    body = numbered[header_at + 1 :]
    if len(body) > MAX_ROWS:
        raise HotlineError(f"the file has {len(body):,} rows; at most {MAX_ROWS:,} are accepted, split it")
    keys = _unique_keys(headers)
    out_rows: list[dict[str, Any]] = []
    for index, rec in body:
        cells = list(rec) + [""] * (len(keys) - len(rec))
        row_raw = {key: cells[i] for i, key in enumerate(keys)}
        for j, extra in enumerate(cells[len(keys) :]):
            if extra.strip():
                row_raw[f"column_{len(keys) + j + 1}"] = extra
        item: dict[str, Any] = {"row_no": index + 1}
        for name in FIELDS:
            item[name] = cells[columns[name]].strip() if name in columns else ""
        item["raw"] = row_raw
        out_rows.append(item)
    frame = pd.DataFrame(out_rows, columns=["row_no", *FIELDS, "raw"])
    frame.attrs["columns"] = {name: headers[i] for name, i in columns.items()}
    frame.attrs["headers"] = headers
    return frame


def _unique_keys(headers: Sequence[str]) -> list[str]:
    keys: list[str] = []
    seen: dict[str, int] = {}
    for i, h in enumerate(headers):
        key = h or f"column_{i + 1}"
        if key in seen:
            seen[key] += 1
            key = f"{key}.{seen[key]}"
        else:
            seen[key] = 1
        keys.append(key)
    return keys


# ----------------------------------------------------------------------------- categories


class _CategoryMatcher:
    def __init__(self, store: Store, mapping: ColumnMapping) -> None:
        cats = categories(store)
        self.codes = set(cats["code"].astype(str))
        self.exact: dict[str, str] = {}
        for r in cats.itertuples(index=False):
            for key in (r.code, r.name_zh, r.name_en):
                if isinstance(key, str) and key.strip():
                    self.exact.setdefault(norm(key), str(r.code))
        self.table = {norm(k): v for k, v in mapping.categories.items() if norm(k) and v in self.codes}
        self.guess = mapping.guess_from_description

    def _keywords(self, text: str) -> str | None:
        for words, code in KEYWORDS:
            if code in self.codes and any(w in text for w in words):
                return code
        return None

    def match(self, text: str, description: str) -> str | None:
        t = norm(text)
        if t:
            if t in self.exact:
                return self.exact[t]
            if t in self.table:
                return self.table[t]
            contained = [k for k in self.table if k in t]
            if contained:
                return self.table[max(contained, key=len)]
            return self._keywords(t)
        if self.guess and description:
            return self._keywords(norm(description))
        return None


# ----------------------------------------------------------------------------- addresses


# ----------------------------------------------------------------------------- importing


@dataclass
class ImportReport:
    batch: str
    rows: int = 0
    created: int = 0
    duplicates: int = 0  # linked to an earlier open case as a repeated report
    already_imported: int = 0  # the ticket was imported before
    located_by_address: int = 0  # of the cases created or linked, those placed by their address
    queued: dict[str, int] = field(default_factory=dict)  # reason → rows sent to the queue now
    already_queued: int = 0  # rows already waiting in the queue from an earlier import
    errors: list[tuple[int, str]] = field(default_factory=list)  # (row_no, message)
    case_ids: list[int] = field(default_factory=list)
    columns: dict[str, str] = field(default_factory=dict)  # field → header used

    @property
    def queued_total(self) -> int:
        return sum(self.queued.values())

    def summary(self, lang: str = "en") -> str:
        reasons = ", ".join(f"{k} {v}" for k, v in sorted(self.queued.items())) or "-"
        if lang == "zh":
            text = (
                f"12345 导入 {self.batch}：共 {self.rows} 行，新建事件 {self.created}，并入已有事件 {self.duplicates}，"
                f"此前已导入 {self.already_imported}，按地址定位 {self.located_by_address}，"
                f"待人工处理 {self.queued_total}（{reasons}），已在待处理队列 {self.already_queued}。"
            )
        else:
            text = (
                f"12345 import {self.batch}: {self.rows} rows, {self.created} cases created, "
                f"{self.duplicates} linked to earlier cases, {self.already_imported} imported before, "
                f"{self.located_by_address} located by address, {self.queued_total} queued for a person "
                f"({reasons}), {self.already_queued} already queued."
            )
        return text


def _text(value: Any, limit: int = 10 * MAX_DESCRIPTION) -> str:
    """Cell text without control characters; cut only for the queue's columns (the row keeps all)."""
    t = clean_text(value, limit=10**9, name="text") or ""
    return t[:limit]


def _time(text: str, tz: str) -> pd.Timestamp | None:
    """A cell's time in UTC; None when empty; ValueError when it is not a time."""
    if not text:
        return None
    s = unicodedata.normalize("NFKC", text).strip()
    if re.fullmatch(r"\d{5}(\.\d+)?", s) and 20000 < float(s) < 80000:  # an Excel serial day
        ts = pd.Timestamp("1899-12-30") + pd.Timedelta(days=float(s))
    else:
        m = re.match(r"(\d{4})\s*[年/.\-]\s*(\d{1,2})\s*[月/.\-]\s*(\d{1,2})\s*日?(.*)$", s)
        if m:
            s = f"{m.group(1)}-{int(m.group(2)):02d}-{int(m.group(3)):02d} {m.group(4).strip()}"
        s = s.replace("日", " ").replace("时", ":").replace("点", ":").replace("分", ":").replace("秒", "")
        s = re.sub(r":\s*$", "", s.strip())
        if re.fullmatch(r"\d{14}", s):
            s = f"{s[:4]}-{s[4:6]}-{s[6:8]} {s[8:10]}:{s[10:12]}:{s[12:]}"
        try:
            ts = pd.Timestamp(s)
        except (ValueError, OverflowError):
            raise ValueError(f"received time {text[:40]!r} is not a date and time") from None
    if pd.isna(ts):
        raise ValueError(f"received time {text[:40]!r} is not a date and time")
    if ts.tzinfo is None:
        ts = ts.tz_localize(tz, ambiguous="NaT", nonexistent="shift_forward")
        if pd.isna(ts):
            raise ValueError(f"received time {text[:40]!r} is ambiguous in {tz}")
    return ts.tz_convert("UTC")


def _number(text: str) -> float | None:
    s = unicodedata.normalize("NFKC", text).strip().rstrip("°").strip()
    if not s:
        return None
    try:
        v = float(s)
    except ValueError:
        return None
    return v if math.isfinite(v) else None


def _lonlat(item: Mapping[Any, Any]) -> tuple[float | None, float | None]:
    lon, lat = _number(item["lon"]), _number(item["lat"])
    if (lon is None or lat is None) and item["lonlat"]:
        parts = re.split(r"[,;\s，；]+", unicodedata.normalize("NFKC", item["lonlat"]).strip())
        if len(parts) == 2:
            lon, lat = _number(parts[0]), _number(parts[1])
    if lon is None or lat is None or (lon == 0 and lat == 0):  # 0,0: the usual placeholder for "none"
        return None, None
    return lon, lat


def _swapped(lon: float, lat: float) -> bool:
    if abs(lat) > 90 and abs(lon) <= 90:
        return True
    inside = not bool(out_of_china(lon, lat))
    return not inside and abs(lat) <= 180 and abs(lon) <= 90 and not bool(out_of_china(lat, lon))


def _to_wgs84(lon: float, lat: float, coords: str) -> tuple[float, float]:
    if coords == "gcj02":
        return gcj02_to_wgs84(lon, lat)
    if coords == "bd09":
        return bd09_to_wgs84(lon, lat)
    return lon, lat


def _row_key(raw: Mapping[str, Any]) -> str:
    """An external id for a row that has none: a hash of its content (re-imports find it again)."""
    digest = hashlib.sha256(json.dumps(raw, ensure_ascii=False, sort_keys=True).encode("utf-8")).hexdigest()
    return f"row:{digest[:24]}"


def _linked_ids(store: Store) -> set[str]:
    """External ids of 12345 tickets linked to an earlier case as duplicate reports (they are
    recorded in the ``duplicate_report`` event's note, not as a case of their own)."""
    events = store.read("case_events", where={"action": "duplicate_report"}, columns=["note"])
    out: set[str] = set()
    for note in events["note"]:
        try:
            detail = json.loads(note) if isinstance(note, str) else None
        except json.JSONDecodeError:
            continue
        if isinstance(detail, dict) and detail.get("source") == SOURCE and detail.get("external_id"):
            out.add(str(detail["external_id"]))
    return out


def import_export(
    store: Store,
    data: bytes | Path | str,
    *,
    mapping: ColumnMapping | None = None,
    batch_name: str | None = None,
    actor: str = "hotline_import",
    now: Any = None,
) -> ImportReport:
    """Import a 12345 export: each row becomes a case, is linked to an earlier one, or waits in the
    queue with a reason. HotlineError (nothing imported) when the file as a whole is unusable.
    Importing the same file again creates nothing twice and queues nothing twice."""
    mapping = mapping or mapping_from_settings(store)
    now_ts = utc(now)
    frame = read_export(data, mapping=mapping)
    name = Path(data).name if isinstance(data, Path | str) else "upload"
    batch = (batch_name or f"{name}@{now_ts.tz_convert(settings.city_tz(store)):%Y-%m-%d %H:%M}")[:200]
    report = ImportReport(batch=batch, columns=dict(frame.attrs.get("columns", {})))
    tz = mapping.timezone or settings.city_tz(store)
    matcher = _CategoryMatcher(store, mapping)
    places: Gazetteer | None = None
    linked: set[str] | None = None  # loaded when first needed
    q = store.read("hotline_queue", columns=["id", "external_id", "batch", "row_no", "status"])
    queued_ids = {str(e): (int(i), str(s)) for i, e, s in zip(q["id"], q["external_id"], q["status"], strict=True)
                  if isinstance(e, str)}  # fmt: skip

    def to_queue(item: Mapping[Any, Any], ext: str, reason: str, message: str | None, *,
                 received: pd.Timestamp | None, category: str | None) -> None:  # fmt: skip
        if ext in queued_ids:
            report.already_queued += 1
            return
        raw = {"row": item["raw"], "row_no": int(item["row_no"]), "problem": message,
               "reporter_name": _text(item["reporter_name"], 200) or None}
        qid = store.insert(
            "hotline_queue",
            {
                "batch": batch,
                "row_no": int(item["row_no"]),
                "external_id": ext,
                "received_at": received,
                "category": category,
                "address": _text(item["address"], 1000) or None,
                "description": _text(item["description"]) or None,
                "reporter_phone": _text(item["reporter_phone"], 100) or None,
                "raw": json.dumps(raw, ensure_ascii=False),
                "reason": reason,
                "status": "open",
                "created_at": now_ts,
            },
        )
        queued_ids[ext] = (int(qid), "open")
        report.queued[reason] = report.queued.get(reason, 0) + 1
        if message:
            report.errors.append((int(item["row_no"]), message))

    for item in frame.to_dict("records"):
        report.rows += 1
        ext = _text(item["external_id"], 10**9)
        if not ext or len(ext) > MAX_EXTERNAL_ID:  # none, or not a ticket number: the row's content is its key
            ext = _row_key(item["raw"])
        if store.count("cases", where={"source": SOURCE, "external_id": ext}):
            report.already_imported += 1
            continue
        if linked is None:
            linked = _linked_ids(store)
        if ext in linked:
            report.already_imported += 1
            continue
        received: pd.Timestamp | None = None
        category: str | None = None
        try:
            received = _time(item["received_at"], tz)
        except ValueError as e:
            to_queue(item, ext, "invalid", str(e), received=None, category=None)
            continue
        description = _text(item["description"], 10**9)
        category = matcher.match(item["category"], description)
        if not description:
            to_queue(item, ext, "invalid", "the row has no description", received=received, category=category)
            continue
        try:
            for key, limit in (("description", MAX_DESCRIPTION), ("address", MAX_SHORT_TEXT),
                               ("reporter_name", MAX_SHORT_TEXT), ("reporter_phone", 40)):  # fmt: skip
                clean_text(item[key], limit=limit, name=key)
        except CaseError as e:
            to_queue(item, ext, "invalid", str(e), received=received, category=category)
            continue
        if category is None:
            text = _text(item["category"], 80)
            to_queue(item, ext, "unknown_category", f"category {text!r} is not known" if text else "no category",
                     received=received, category=None)  # fmt: skip
            continue
        lon, lat = _lonlat(item)
        by_address = False
        if lon is not None and lat is not None:
            if _swapped(lon, lat):
                to_queue(item, ext, "swapped_coordinates", f"longitude {lon} and latitude {lat} look swapped",
                         received=received, category=category)  # fmt: skip
                continue
            if not (-180 <= lon <= 180 and -90 <= lat <= 90):
                to_queue(item, ext, "invalid", f"({lon}, {lat}) is not a longitude/latitude",
                         received=received, category=category)  # fmt: skip
                continue
            lon, lat = _to_wgs84(lon, lat, mapping.coords)
        else:
            if places is None:
                places = gazetteer(store)
            hit = places.locate(item["address"])
            if hit is None:
                message = "no coordinates, and the address names no known building, facility or community"
                to_queue(item, ext, "no_location", message if item["address"] else "no coordinates and no address",
                         received=received, category=category)  # fmt: skip
                continue
            lon, lat, _how = hit
            by_address = True
        new = NewCase(
            category=category,
            lon=lon,
            lat=lat,
            description=description,
            address=item["address"] or None,
            source=SOURCE,
            reporter_name=item["reporter_name"] or None,
            reporter_phone=item["reporter_phone"] or None,
            external_id=ext,
            reported_at=received,
            actor=actor,
        )
        try:
            created = create_case(store, new, now=now_ts)
        except CaseError as e:
            reason = e.code if e.code in ("out_of_region", "unknown_category") else "invalid"
            to_queue(item, ext, reason, str(e), received=received, category=category)
            continue
        if created.reason == "already_imported":
            report.already_imported += 1
        elif created.reason == "duplicate":
            report.duplicates += 1
            linked.add(ext)
        else:
            report.created += 1
        report.located_by_address += int(by_address)
        report.case_ids.append(created.case_id)
        waiting = queued_ids.get(ext)
        if waiting and waiting[1] == "open":  # queued by an earlier import; now it went through
            _close_queue_row(store, waiting[0], "done", case_id=created.case_id, actor=actor, now=now_ts,
                             note="imported again")  # fmt: skip
            queued_ids[ext] = (waiting[0], "done")
    return report


# ----------------------------------------------------------------------------- the queue


def queued(store: Store, *, status: str | None = "open") -> pd.DataFrame:
    """The queue (``status`` open | done | discarded, None: all), oldest first, with the row's
    ``problem`` (the message) and ``reporter_name`` taken out of ``raw``."""
    where = {"status": status} if status else None
    rows = store.read("hotline_queue", where=where, order_by=["id"])
    problems, names = [], []
    for text in rows["raw"] if len(rows) else []:
        try:
            data = json.loads(text) if isinstance(text, str) else {}
        except json.JSONDecodeError:
            data = {}
        problems.append(data.get("problem"))
        names.append(data.get("reporter_name"))
    return rows.assign(problem=pd.Series(problems, index=rows.index, dtype=object),
                       reporter_name=pd.Series(names, index=rows.index, dtype=object))  # fmt: skip


def _queue_row(store: Store, queue_id: int) -> pd.Series:
    rows = store.read("hotline_queue", where={"id": int(queue_id)})
    if not len(rows):
        raise CaseNotFound(f"there is no queued 12345 row {queue_id}")
    row = rows.iloc[0]
    if row["status"] != "open":
        raise CaseError(f"queued row {queue_id} is already {row['status']}", code="bad_state")
    return row


def _raw(row: Any) -> dict[str, Any]:
    try:
        data = json.loads(row["raw"]) if isinstance(row["raw"], str) else {}
    except json.JSONDecodeError:
        data = {}
    return data if isinstance(data, dict) else {}


def _close_queue_row(store: Store, queue_id: int, status: str, *, case_id: int | None, actor: str,
                     now: pd.Timestamp, note: str | None) -> None:  # fmt: skip
    rows = store.read("hotline_queue", where={"id": int(queue_id)}, columns=["raw"])
    data = _raw(rows.iloc[0]) if len(rows) else {}
    data["resolution"] = {"status": status, "by": actor, "at": now.isoformat(), "note": note, "case_id": case_id}
    changed = store.update(
        "hotline_queue",
        {"id": int(queue_id), "status": "open"},
        {"status": status, "case_id": case_id, "raw": json.dumps(data, ensure_ascii=False)},
    )
    if not changed:
        raise CaseConflict(f"queued row {queue_id} was handled by someone else at the same moment")


def resolve_queued(
    store: Store,
    queue_id: int,
    *,
    lon: float,
    lat: float,
    category: str,
    actor: str,
    description: str | None = None,
    address: str | None = None,
    now: Any = None,
) -> int:
    """A person places a queued row (WGS84 ``lon``/``lat``, e.g. a click on the map) and gives its
    category (and, optionally, a shorter ``description`` or ``address``): the case is created (or the existing one
    found, as for any import) and the row marked done with its id, in one transaction. Returns the
    case id; CaseError (nothing written) when the case cannot be made."""
    now_ts = utc(now)
    row = _queue_row(store, queue_id)
    data = _raw(row)
    name = data.get("reporter_name") if isinstance(data.get("reporter_name"), str) else None
    received = row["received_at"]
    new = NewCase(
        category=category,
        lon=lon,
        lat=lat,
        description=description if description is not None else (row["description"] if isinstance(row["description"], str) else None),
        address=address if address is not None else (row["address"] if isinstance(row["address"], str) else None),
        source=SOURCE,
        reporter_name=name,
        reporter_phone=row["reporter_phone"] if isinstance(row["reporter_phone"], str) else None,
        external_id=row["external_id"] if isinstance(row["external_id"], str) else None,
        reported_at=None if received is None or pd.isna(received) else received,
        actor=actor,
    )
    with store.transaction():
        created = create_case(store, new, now=now_ts)
        _close_queue_row(store, int(queue_id), "done", case_id=created.case_id, actor=actor, now=now_ts,
                         note=created.reason)  # fmt: skip
    return created.case_id


def discard_queued(store: Store, queue_id: int, *, actor: str, reason: str, now: Any = None) -> None:
    """A person decides a queued row needs no case (a test call, a duplicate, not our city); who and
    why are kept in the row's ``raw``."""
    _queue_row(store, queue_id)
    why = clean_text(reason, limit=1000, name="reason")
    if not why:
        raise CaseError("say why the row is discarded", field="reason")
    _close_queue_row(store, int(queue_id), "discarded", case_id=None, actor=actor, now=utc(now), note=why)
