"""Importing 12345 hotline exports: encodings, header variants, coordinate systems, locating by
address, idempotent re-imports, the queue for a person, hostile text, files that cannot be read."""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from typer.testing import CliRunner

from geo.crs import wgs84_to_bd09
from services import hotline
from services.cases import CaseError
from store import open_store
from tests.fixtures.demo_db import FIXED_NOW, build_small_demo

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "hotline"
UTF8_BOM = FIXTURES / "utf8_bom.csv"
GB18030 = FIXTURES / "gb18030_gcj02.tsv"
HEADER = ["工单编号", "来电时间", "诉求分类", "诉求内容", "事发地址", "来电人", "来电号码", "经度", "纬度"]
# WGS84 points of the fixtures' GCJ-02 coordinates (villages of the small demo, seed 7)
GB_POINTS = {"GB-0001": (123.886594, 42.298454), "GB-0002": (123.83172, 42.254567), "GB-0003": (123.805256, 42.298454)}


@pytest.fixture(scope="module")
def demo_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("hotline") / "demo.sqlite"
    build_small_demo(path)
    return path


@pytest.fixture
def db(demo_file: Path, tmp_path: Path) -> Iterator[Any]:
    """A fresh copy of the small demo city for each test."""
    copy = tmp_path / "db.sqlite"
    shutil.copy(demo_file, copy)
    store = open_store(f"sqlite:///{copy}")
    try:
        yield store
    finally:
        store.close()


def _csv(rows: list[list[str]], *, header: list[str] = HEADER, delimiter: str = ",") -> bytes:
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator="\r\n").writerows([header, *rows])
    return buf.getvalue().encode("utf-8")


def _case(store: Any, external_id: str) -> pd.Series:
    rows = store.read("cases", where={"source": "hotline_12345", "external_id": external_id})
    assert len(rows) == 1, external_id
    return rows.iloc[0]


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    import math

    dx = (a[0] - b[0]) * 111_320 * math.cos(math.radians(a[1]))
    return math.hypot(dx, (a[1] - b[1]) * 110_540)


# ----------------------------------------------------------------------------- the fixture files


def test_utf8_file_creates_cases_and_queues_what_needs_a_person(db: Any) -> None:
    cases_before = db.count("cases")
    report = hotline.import_export(db, UTF8_BOM, now=FIXED_NOW, actor="tester")
    assert report.rows == 9
    assert report.created == 4 and report.duplicates == 0 and report.already_imported == 0
    assert report.located_by_address == 1
    assert report.queued == {"unknown_category": 1, "swapped_coordinates": 1, "out_of_region": 1, "invalid": 2}
    assert [r for r, _ in report.errors] == [5, 6, 7, 9, 10]  # spreadsheet rows (the header is row 1)
    assert db.count("cases") == cases_before + 4
    assert report.columns["description"] == "诉求内容" and report.columns["lon"] == "经度"

    first = _case(db, "HL-2026-0001")
    assert first["category"] == "exposed_garbage" and first["state"] == "reported"
    assert first["reporter_name"] == "张三" and first["reporter_phone"] == "13800000001"
    assert first["reported_at"] == pd.Timestamp("2026-11-19 00:30", tz="UTC")  # 08:30 in Asia/Shanghai
    assert _metres((first.geometry.x, first.geometry.y), (123.886594, 42.298454)) < 0.01
    assert _case(db, "HL-2026-0002")["category"] == "noise"  # the category code itself
    third = _case(db, "HL-2026-0003")
    assert third["category"] == "exposed_garbage"  # keyword 垃圾 in "市容环境-垃圾清运"
    assert third["description"] == "第一行：路边垃圾桶满溢\n第二行：已持续三天, 请尽快处理"  # quoted, multi-line
    # no coordinates ("NaN" and empty): located by the village named in the address
    seventh = _case(db, "HL-2026-0007")
    village = db.read("admin_units", where={"name": "林阳村"}).geometry.iloc[0].representative_point()
    assert seventh.geometry.distance(village) < 1e-9
    assert seventh["village_code"] == db.read("admin_units", where={"name": "林阳村"})["code"].iloc[0]

    queue = hotline.queued(db)
    assert len(queue) == 5
    by_id = queue.set_index("external_id")
    assert by_id.loc["HL-2026-0004", "reason"] == "unknown_category"
    assert by_id.loc["HL-2026-0005", "reason"] == "swapped_coordinates"
    assert by_id.loc["HL-2026-0005", "category"] == "heating"  # mapped, only the place is missing
    assert by_id.loc["HL-2026-0006", "reason"] == "out_of_region"
    assert "no description" in by_id.loc["HL-2026-0008", "problem"]
    assert "昨天上午" in by_id.loc["HL-2026-0009", "problem"]
    raw = json.loads(by_id.loc["HL-2026-0009", "raw"])
    assert raw["row"] == dict(zip(HEADER, ["HL-2026-0009", "昨天上午", "噪声扰民", "楼下广场舞声音太大", "秋盛镇乐兴村",
                                           "郑十一", "13800000009", "123.886594", "42.298454"], strict=True))  # fmt: skip
    assert "12345 import" in report.summary() and "4 cases created" in report.summary()
    assert "新建事件 4" in report.summary("zh")


def test_reimport_creates_nothing_twice(db: Any) -> None:
    hotline.import_export(db, UTF8_BOM, now=FIXED_NOW)
    cases, queue, events = db.count("cases"), db.count("hotline_queue"), db.count("case_events")
    again = hotline.import_export(db, UTF8_BOM.read_bytes(), batch_name="another name", now=FIXED_NOW)
    assert again.rows == 9 and again.created == 0 and again.duplicates == 0
    assert again.already_imported == 4 and again.already_queued == 5 and again.queued == {}
    assert (db.count("cases"), db.count("hotline_queue"), db.count("case_events")) == (cases, queue, events)


def test_gb18030_tab_file_with_title_line_and_gcj02_coordinates(db: Any) -> None:
    frame = hotline.read_export(GB18030)
    assert frame.attrs["columns"] == {
        "external_id": "工单号", "received_at": "受理时间", "category": "问题类型", "description": "问题描述",
        "address": "地址", "reporter_name": "联系人", "reporter_phone": "联系电话", "lon": "经度(GCJ02)",
        "lat": "纬度(GCJ02)",
    }  # fmt: skip
    assert frame["row_no"].tolist() == [3, 4, 5]  # a title line above the header
    assert frame["description"].iloc[2] == "楼上阳台漏水\t与邻居协商未果；\n请社区调解"
    report = hotline.import_export(db, GB18030, mapping=hotline.ColumnMapping(coords="gcj02"), now=FIXED_NOW)
    assert report.created == 3 and report.queued == {}, report.errors
    for ext, point in GB_POINTS.items():
        case = _case(db, ext)
        assert _metres((case.geometry.x, case.geometry.y), point) < 0.05, ext  # GCJ-02 → WGS84
    assert _case(db, "GB-0001")["category"] == "heating"  # keyword 供暖
    assert _case(db, "GB-0002")["category"] == "flooding"  # name_zh 道路积水
    assert _case(db, "GB-0003")["category"] == "neighbour_dispute"
    assert _case(db, "GB-0001")["reported_at"] == pd.Timestamp("2026-11-19 06:05", tz="UTC")  # 14时05分 local


def test_bd09_coordinates_and_missing_coordinate_placeholders(db: Any) -> None:
    x, y = GB_POINTS["GB-0002"]
    bx, by = wgs84_to_bd09(x, y)
    data = _csv([
        ["BD-1", "2026-11-19 09:00", "噪声扰民", "夜间噪声", "秋盛镇银林村", "", "", f"{bx:.7f}", f"{by:.7f}"],
        ["BD-2", "2026-11-19 09:00", "暴露垃圾", "垃圾未清运", "秋盛镇乐兴村", "", "", "0", "0"],  # 0,0 = none
    ])  # fmt: skip
    report = hotline.import_export(db, data, mapping=hotline.ColumnMapping(coords="baidu"), now=FIXED_NOW)
    assert report.created == 2 and report.located_by_address == 1
    case = _case(db, "BD-1")
    assert _metres((case.geometry.x, case.geometry.y), (x, y)) < 0.05
    assert _case(db, "BD-2")["village_code"] == db.read("admin_units", where={"name": "乐兴村"})["code"].iloc[0]


# ----------------------------------------------------------------------------- addresses


def _address_rows(store: Any) -> tuple[list[list[str]], dict[str, Any]]:
    """Rows without coordinates whose addresses name the demo's own places (read from the database,
    so the test follows the generator), with the point each should land on."""
    units = store.read("admin_units")
    names = dict(zip(units["code"], units["name"], strict=True))
    community = units[(units["level"] == "village") & (units["kind"] == "community")].iloc[0]
    village = units[(units["level"] == "village") & (units["kind"] == "village")].iloc[0]
    other_village = units[(units["level"] == "village") & (units["kind"] == "village")].iloc[1]
    town_c, town_v = names[community["parent_code"]], names[village["parent_code"]]
    county = names[str(community["code"])[:6]]
    b = store.read("buildings")
    b = b.assign(point=b.geometry.representative_point())
    in_c = b[b["unit_code"] == community["code"]].set_index("name")
    numbered = {int(m.group(1)): n for n in in_c.index if (m := re.search(r"(\d+)号楼$", n))}
    assert 3 in numbered and 13 in numbered, "the demo community needs buildings 3 and 13"
    estate = numbered[3][: -len("3号楼")]  # 福马小区
    house = b[b["unit_code"] == village["code"]].iloc[5]
    fac = store.read("facilities")
    fac = fac[fac["unit_code"].isin(units.loc[units["level"] == "village", "code"])].iloc[0]
    fac_unit = names[fac["unit_code"]]
    wide = numbered[15].translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    cases = {  # external id → (address, expected point or None)
        "AD-short": (f"{county}{town_c}{community['name']}3号楼", in_c.loc[numbered[3], "point"]),
        "AD-13": (f"{community['name']}13号楼2单元", in_c.loc[numbered[13], "point"]),
        "AD-full": (f"铁岭市{county} {wide} ", in_c.loc[numbered[15], "point"]),
        "AD-dong": (f"{town_c}{estate}7栋", in_c.loc[numbered[7], "point"]),
        "AD-house": (f"{town_v}{house['name']}院内", house["point"]),
        "AD-facility": (f"{fac_unit}{fac['name']}旁边", fac.geometry.representative_point()),
        "AD-village": (f"{names[other_village['parent_code']]}{other_village['name']}村委会东侧",
                       other_village.geometry.representative_point()),  # fmt: skip
        "AD-vague": (f"{town_c}3号楼", None),  # a street, no community: which 3号楼? a person decides
        "AD-nowhere": ("辽宁省沈阳市和平区中华路88号", None),
        "AD-empty": ("", None),
    }
    categories = ["noise", "heating", "flooding", "animal", "fraud_lead", "public_order", "dirty_road",
                  "noise", "noise", "noise"]  # fmt: skip
    rows = [[ext, "2026-09-01 10:00", cat, f"测试诉求 {ext}", address, "", "", "", ""]
            for (ext, (address, _)), cat in zip(cases.items(), categories, strict=True)]  # fmt: skip
    return rows, {ext: point for ext, (_, point) in cases.items()}


def test_rows_without_coordinates_are_located_by_address(db: Any) -> None:
    rows, expected = _address_rows(db)
    report = hotline.import_export(db, _csv(rows), now=FIXED_NOW)
    assert report.created == 7 and report.located_by_address == 7, report.errors
    assert report.queued == {"no_location": 3}
    for ext, point in expected.items():
        if point is None:
            continue
        case = _case(db, ext)
        assert case.geometry.distance(point) < 1e-9, ext
    queue = hotline.queued(db).set_index("external_id")
    assert set(queue.index) == {"AD-vague", "AD-nowhere", "AD-empty"}
    assert "no coordinates and no address" in queue.loc["AD-empty", "problem"]


# ----------------------------------------------------------------------------- duplicates


def test_a_report_of_an_open_case_is_linked_once(db: Any) -> None:
    from services.cases import OPEN_STATES

    open_cases = db.read("cases", where={"state": list(OPEN_STATES)}, order_by=["reported_at"])
    target = open_cases.iloc[-1]
    when = (target["reported_at"] + pd.Timedelta(minutes=30)).tz_convert("Asia/Shanghai")
    row = ["DUP-1", when.strftime("%Y-%m-%d %H:%M:%S"), target["category"], "同一问题再次来电", "",
           "", "", f"{target.geometry.x:.7f}", f"{target.geometry.y:.7f}"]  # fmt: skip
    now = max(FIXED_NOW, when + pd.Timedelta(hours=1))
    report = hotline.import_export(db, _csv([row]), now=now)
    assert report.duplicates == 1 and report.created == 0
    assert report.case_ids == [int(target["id"])]
    reports = int(db.read("cases", where={"id": int(target["id"])})["reports"].iloc[0])
    again = hotline.import_export(db, _csv([row]), now=now)
    assert again.already_imported == 1 and again.duplicates == 0
    assert int(db.read("cases", where={"id": int(target["id"])})["reports"].iloc[0]) == reports


# ----------------------------------------------------------------------------- the queue


def test_resolve_and_discard_queued_rows(db: Any) -> None:
    hotline.import_export(db, UTF8_BOM, now=FIXED_NOW)
    queue = hotline.queued(db).set_index("external_id")
    swapped = int(queue.loc["HL-2026-0005", "id"])
    # a place outside the city: refused, nothing written, the row stays open
    with pytest.raises(CaseError) as err:
        hotline.resolve_queued(db, swapped, lon=116.4, lat=39.9, category="heating", actor="调度员", now=FIXED_NOW)
    assert err.value.code == "out_of_region"
    assert db.count("cases", where={"external_id": "HL-2026-0005"}) == 0
    case_id = hotline.resolve_queued(db, swapped, lon=123.852575, lat=42.299054, category="heating", actor="调度员",
                                     now=FIXED_NOW)  # fmt: skip
    case = _case(db, "HL-2026-0005")
    assert int(case["id"]) == case_id and case["reporter_name"] == "钱七" and case["description"] == "暖气不热"
    assert case["reported_at"] == pd.Timestamp("2026-11-19 02:40", tz="UTC")
    done = hotline.queued(db, status="done")
    assert done["case_id"].tolist() == [case_id]
    assert json.loads(done["raw"].iloc[0])["resolution"]["by"] == "调度员"
    with pytest.raises(CaseError) as err:
        hotline.resolve_queued(db, swapped, lon=123.85, lat=42.29, category="heating", actor="x", now=FIXED_NOW)
    assert err.value.code == "bad_state"

    other = int(queue.loc["HL-2026-0004", "id"])
    with pytest.raises(CaseError):
        hotline.discard_queued(db, other, actor="调度员", reason="  ")
    hotline.discard_queued(db, other, actor="调度员", reason="政策咨询，非事件")
    gone = hotline.queued(db, status="discarded")
    assert gone["id"].tolist() == [other] and gone["problem"].notna().all()
    assert json.loads(gone["raw"].iloc[0])["resolution"]["note"] == "政策咨询，非事件"
    assert len(hotline.queued(db)) == 3 and len(hotline.queued(db, status=None)) == 5
    with pytest.raises(CaseError):
        hotline.discard_queued(db, 999_999, actor="x", reason="y")

    again = hotline.import_export(db, UTF8_BOM, now=FIXED_NOW)
    assert again.created == 0 and again.already_imported == 5 and again.already_queued == 4


def test_a_queued_row_that_imports_later_is_closed(db: Any) -> None:
    hotline.import_export(db, UTF8_BOM, now=FIXED_NOW)
    mapping = hotline.ColumnMapping(categories={"其他事项": "public_order"})
    report = hotline.import_export(db, UTF8_BOM, mapping=mapping, now=FIXED_NOW)
    assert report.created == 1
    row = hotline.queued(db, status="done").set_index("external_id").loc["HL-2026-0004"]
    assert int(row["case_id"]) == int(_case(db, "HL-2026-0004")["id"])


# ----------------------------------------------------------------------------- hostile text


def test_hostile_text_is_stored_safely_or_queued(db: Any) -> None:
    x, y = GB_POINTS["GB-0001"]
    hostile = [
        ["EV-1", "2026-11-19 09:00", "暴露垃圾", "<script>alert('x')</script>垃圾", "<b>乐兴村</b>", "Robert'); DROP TABLE cases;--", "", str(x), str(y)],
        ["EV-2", "2026-11-19 09:00", "'; DROP TABLE hotline_queue; --", "正常描述", "", "", "", str(x), str(y)],
        ["EV-3", "2026-11-19 09:00", "噪声扰民", "响铃\x07转义\x1b[31m红色\x00空", "", "", "", str(x), str(y)],
        ["EV-4", "2026-11-19 09:00", "供暖问题", "长" * 10_000, "", "", "", str(x), str(y)],
        ["EV-5", "2026-11-19 09:00", "道路积水", "积水", "地" * 500, "", "", "", ""],
        ["EV-6", "2026-11-19 09:00", "动物侵扰", "有蛇", "", "", "1" * 300, str(x), str(y)],
        ["EV-7\x00\x1b", "9999-99-99", "\u202e动物", "x", "", "", "", "inf", "-inf"],
    ]  # fmt: skip
    data = _csv(hostile)
    report = hotline.import_export(db, data, now=FIXED_NOW)
    assert report.rows == 7
    assert report.created == 2, report.errors
    assert report.queued == {"unknown_category": 1, "invalid": 4}
    first = _case(db, "EV-1")
    assert first["description"] == "<script>alert('x')</script>垃圾"  # stored as text; escaping is the display's job
    assert first["reporter_name"] == "Robert'); DROP TABLE cases;--"
    assert _case(db, "EV-3")["description"] == "响铃转义[31m红色空"  # control characters removed
    errors = dict(report.errors)
    assert "10000 characters" in errors[5]
    queue = hotline.queued(db).set_index("external_id")
    assert queue.loc["EV-4", "reason"] == "invalid" and len(queue.loc["EV-4", "description"]) == 10_000
    assert json.loads(queue.loc["EV-4", "raw"])["row"]["诉求内容"] == "长" * 10_000  # nothing lost
    assert queue.loc["EV-2", "reason"] == "unknown_category"
    assert db.count("hotline_queue") == 5 and db.count("cases") > 0  # the tables are still there


# ----------------------------------------------------------------------------- files that cannot be read


def test_oversized_and_overlong_files_are_refused(db: Any, tmp_path: Path) -> None:
    before = (db.count("cases"), db.count("hotline_queue"))
    big = tmp_path / "big.csv"
    with big.open("wb") as f:
        f.write(_csv([]))
        f.truncate(hotline.MAX_BYTES + 1)
    with pytest.raises(hotline.HotlineError, match="MB"):
        hotline.import_export(db, big, now=FIXED_NOW)
    with pytest.raises(hotline.HotlineError, match="MB"):
        hotline.import_export(db, b"x" * (hotline.MAX_BYTES + 1), now=FIXED_NOW)
    lines = "\r\n".join(f"R{i},2026-11-19 09:00,噪声扰民,d,a,,,," for i in range(hotline.MAX_ROWS + 1))
    many = ",".join(HEADER).encode() + b"\r\n" + lines.encode()
    assert len(many) < hotline.MAX_BYTES
    with pytest.raises(hotline.HotlineError, match="100,000"):
        hotline.import_export(db, many, now=FIXED_NOW)
    assert (db.count("cases"), db.count("hotline_queue")) == before


def test_a_file_without_the_needed_columns_says_what_it_found_and_expected(db: Any) -> None:
    data = "姓名,电话,备注\r\n张三,138,无\r\n".encode("gb18030")
    with pytest.raises(hotline.HotlineError) as err:
        hotline.import_export(db, data, now=FIXED_NOW)
    message = str(err.value)
    assert "'姓名'" in message and "'备注'" in message  # found
    assert "诉求内容" in message and "事发地址" in message and "经度" in message  # expected
    # a description but nowhere to put it: refused too
    with pytest.raises(hotline.HotlineError, match="address"):
        hotline.read_export("诉求内容,工单编号\r\n路灯坏了,1\r\n".encode())
    for bad, words in ((b"", "empty"), (b"\x00\x01\x02" * 100, "binary"), (b"\xd0\xcf\x11\xe0" + b"\x00" * 100, "xls"),
                       (b"<html><table><tr><td>1</td></tr></table></html>", "web page")):
        with pytest.raises(hotline.HotlineError, match=words):
            hotline.read_export(bad)
    with pytest.raises(hotline.HotlineError, match="cannot read"):
        hotline.read_export(Path("/nonexistent/export.csv"))


@pytest.mark.parametrize(
    ("encoding", "delimiter", "bom"),
    [("utf-8", ";", b""), ("utf-8", "\t", b"\xef\xbb\xbf"), ("gbk", ",", b""), ("gb18030", ";", b""),
     ("utf-16", "\t", b"")],  # fmt: skip
)
def test_encodings_and_delimiters(encoding: str, delimiter: str, bom: bytes) -> None:
    rows = [["T-1", "2026-11-19 09:00", "噪声扰民", "楼上装修，噪声大；\n晚上也不停", "福马社区", "张三", "138", "", ""]]
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter, lineterminator="\r\n").writerows([HEADER, *rows])
    frame = hotline.read_export(bom + buf.getvalue().encode(encoding))
    assert len(frame) == 1
    assert frame["description"].iloc[0] == "楼上装修，噪声大；\n晚上也不停"
    assert frame["address"].iloc[0] == "福马社区" and frame["external_id"].iloc[0] == "T-1"


def test_xlsx_is_read_when_openpyxl_is_installed(tmp_path: Path) -> None:
    try:
        import openpyxl
    except ImportError:
        path = tmp_path / "export.xlsx"
        path.write_bytes(b"PK\x03\x04" + b"\x00" * 100)
        with pytest.raises(hotline.HotlineError, match="openpyxl"):
            hotline.read_export(path)
        return
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(HEADER)
    ws.append(["X-1", "2026-11-19 09:00", "噪声扰民", "噪声", "福马社区", "", "", 123.84, 42.30])
    path = tmp_path / "export.xlsx"
    wb.save(path)
    frame = hotline.read_export(path)
    assert frame["external_id"].tolist() == ["X-1"] and float(frame["lon"].iloc[0]) == pytest.approx(123.84)


# ----------------------------------------------------------------------------- parts


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2026-11-19 08:30:00", "2026-11-19 00:30"),
        ("2026/11/19 8:30", "2026-11-19 00:30"),
        ("2026年11月19日 08时30分", "2026-11-19 00:30"),
        ("2026年11月19日8点30分15秒", "2026-11-19 00:30:15"),
        ("2026.11.19 08:30", "2026-11-19 00:30"),
        ("20261119083000", "2026-11-19 00:30"),
        ("2026-11-19T08:30:00+08:00", "2026-11-19 00:30"),
        ("2026-11-19T00:30:00Z", "2026-11-19 00:30"),
        ("46345.3541666667", "2026-11-19 00:30"),  # an Excel serial day
    ],
)
def test_received_times(text: str, utc: str) -> None:
    got = hotline._time(text, "Asia/Shanghai")
    assert got is not None and abs(got - pd.Timestamp(utc, tz="UTC")) < pd.Timedelta(seconds=1)


def test_bad_received_times() -> None:
    assert hotline._time("", "Asia/Shanghai") is None
    for bad in ("昨天上午", "2026-13-45", "9999-99-99 99:99"):
        with pytest.raises(ValueError):
            hotline._time(bad, "Asia/Shanghai")


def test_category_matching(db: Any) -> None:
    mapping = hotline.ColumnMapping(categories={"市容环境卫生": "exposed_garbage", "城管-占道": "dirty_road"})
    match = hotline._CategoryMatcher(db, mapping).match
    assert match("noise", "") == "noise"  # the code
    assert match("噪声扰民", "") == "noise"  # name_zh
    assert match(" Neighbour Dispute ", "") == "neighbour_dispute"  # name_en, any case and spacing
    assert match("市容环境卫生", "") == "exposed_garbage"  # the mapping's table
    assert match("城管-占道-其他", "") == "dirty_road"  # a table entry inside a longer text
    assert match("公共安全>楼道消防通道堵塞", "") == "safety_hazard"  # keyword
    assert match("邻里漏水", "") == "neighbour_dispute"
    assert match("违建", "") == "illegal_building" and match("疑似诈骗", "") == "fraud_lead"
    assert match("其他", "家里暖气不热") is None  # a category we do not know is not guessed over
    assert match("", "家里暖气不热") == "heating"  # an empty category: guessed from the description
    no_guess = hotline._CategoryMatcher(db, hotline.ColumnMapping(guess_from_description=False)).match
    assert no_guess("", "家里暖气不热") is None
    for words, code in hotline.KEYWORDS:
        assert all(match(w, "") in (code, *[c for ws, c in hotline.KEYWORDS if any(x in w for x in ws)]) for w in words)


def test_mapping_files_settings_and_explicit_headers(db: Any, tmp_path: Path) -> None:
    as_json = tmp_path / "mapping.json"
    as_json.write_text(json.dumps({"description": "市民诉求", "coords": "GCJ-02",
                                   "categories": {"环卫": "exposed_garbage"}}, ensure_ascii=False), encoding="utf-8")  # fmt: skip
    as_toml = tmp_path / "mapping.toml"
    as_toml.write_text('description = ["市民诉求"]\ncoords = "gcj02"\n[categories]\n"环卫" = "exposed_garbage"\n',
                       encoding="utf-8")  # fmt: skip
    m = hotline.load_mapping(as_json)
    assert m == hotline.load_mapping(as_toml)
    assert m.coords == "gcj02" and m.candidates("description")[0] == "市民诉求"
    data = "工单编号,市民诉求,诉求内容,事发地址\r\n1,真正的诉求,别的列,福马社区\r\n".encode()
    assert hotline.read_export(data, mapping=m)["description"].tolist() == ["真正的诉求"]
    assert hotline.read_export(data)["description"].tolist() == ["别的列"]

    bad = tmp_path / "bad.json"
    bad.write_text('{"coords": "mercator", "descripton": "x"}', encoding="utf-8")
    with pytest.raises(hotline.HotlineError, match="coords.*descripton|descripton.*coords"):
        hotline.load_mapping(bad)
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(hotline.HotlineError, match="not valid"):
        hotline.load_mapping(bad)

    assert hotline.mapping_from_settings(db) == hotline.DEFAULT_MAPPING
    hotline.save_mapping(db, m)
    assert hotline.mapping_from_settings(db) == m
    with pytest.raises(hotline.HotlineError, match="no_such_code"):
        hotline.save_mapping(db, hotline.ColumnMapping(categories={"x": "no_such_code"}))
    assert hotline.mapping_from_settings(db) == m
    # the saved mapping is what an import uses when none is given
    report = hotline.import_export(db, GB18030, now=FIXED_NOW)
    assert report.created == 3 and report.columns["description"] == "问题描述"
    case = _case(db, "GB-0001")
    assert _metres((case.geometry.x, case.geometry.y), GB_POINTS["GB-0001"]) < 0.05


# ----------------------------------------------------------------------------- the command line


def test_cli_import_12345(demo_file: Path, tmp_path: Path) -> None:
    from console.cli import app

    copy = tmp_path / "cli.sqlite"
    shutil.copy(demo_file, copy)
    url = f"sqlite:///{copy}"
    runner = CliRunner()
    r = runner.invoke(app, ["import-12345", str(GB18030), "--coords", "gcj02", "--database-url", url, "--lang", "en"])
    assert r.exit_code == 0, r.output
    assert "3 cases created" in r.output
    r = runner.invoke(app, ["import-12345", str(UTF8_BOM), "--db", url, "--batch", "first"])
    assert r.exit_code == 0, r.output
    assert "新建事件 4" in r.output and "! 5:" in r.output  # zh summary, then the rows that were queued
    store = open_store(url)
    try:
        assert store.count("hotline_queue", where={"batch": "first"}) == 5
        case = _case(store, "GB-0002")
        assert _metres((case.geometry.x, case.geometry.y), GB_POINTS["GB-0002"]) < 0.05
    finally:
        store.close()
    mapping = tmp_path / "m.json"
    mapping.write_text('{"coords": "bd09"}', encoding="utf-8")
    r = runner.invoke(app, ["import-12345", str(UTF8_BOM), "--mapping", str(mapping), "--db", url, "--lang", "en"])
    assert r.exit_code == 0 and "0 cases created" in r.output and "4 imported before" in r.output
    r = runner.invoke(app, ["import-12345", str(FIXTURES / "nope.csv"), "--db", url])
    assert r.exit_code == 2 and "nope.csv" in r.output
    r = runner.invoke(app, ["import-12345", str(UTF8_BOM), "--coords", "mercator", "--db", url])
    assert r.exit_code == 2 and "mercator" in r.output
