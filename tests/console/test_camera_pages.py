"""The cameras page and the dispatch page's "cameras that see it" panel, driven through their
widgets (AppTest): a camera's details and its player or its clear "no stream" state, coverage
before and after `gridconsole coverage`, a community's blind spots and suggestions. Clicks inside
the map itself are tested in the browser (tests/browser/test_cameras.py)."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import pytest
from shapely.geometry import Point
from streamlit.testing.v1 import AppTest

from services import cameras as cams
from services import cases as cs
from store import open_store
from tests.fixtures.apptest import open_page
from tests.fixtures.demo_db import copy_demo

HLS_ID = "21120200001329900001"
RTSP_ID = "21120200001329900002"


@pytest.fixture
def db(small_demo_url: str, tmp_path: Path) -> str:
    """A copy of the small demo with two cameras 20 m either side of an open case: one with an HLS
    stream, one offline with an RTSP address a browser cannot play."""
    url = copy_demo(small_demo_url, tmp_path / "cams.sqlite")
    store = open_store(url)
    try:
        case = cs.open_cases(store, states=("reported", "filed")).iloc[0]
        x, y = float(case.geometry.x), float(case.geometry.y)
        d = 20 / 111_000
        store.write(
            "cameras",
            gpd.GeoDataFrame(
                {
                    "id": [HLS_ID, RTSP_ID],
                    "name": ["测试球机<b>甲</b>", "测试枪机乙"],
                    "unit_code": [None, None],
                    "direction": [None, 0.0],
                    "fov": [None, 90.0],
                    "range_m": [60.0, 60.0],
                    "cam_class": ["class1", "other"],
                    "online": [True, False],
                    "stream_url": ["http://127.0.0.1:9/live/a.m3u8", "rtsp://10.1.1.2/ch1"],
                },
                geometry=[Point(x - d, y), Point(x, y - d)],
                crs=4326,
            ),
            mode="upsert",
        )
    finally:
        store.close()
    return url




def _case_id(db: str) -> int:
    store = open_store(db)
    try:
        return int(cs.open_cases(store, states=("reported", "filed"))["id"].iloc[0])
    finally:
        store.close()


def _infos(at: AppTest) -> list[str]:
    return [str(i.value) for i in at.info]


def test_cameras_page_shows_counts_and_a_cameras_details(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(db, "cameras", monkeypatch)
    labels = {m.label: m.value for m in at.metric}
    assert int(str(labels["视野内点位"]).replace(",", "")) >= 2 and "在线" in labels
    assert any("请在地图上点击一个摄像头" in i for i in _infos(at))
    # a camera picked on the map (the click itself is a browser test): its facts and a clear
    # "no stream" for an RTSP address, never a broken player
    at = open_page(db, "cameras", monkeypatch, camera_sel=RTSP_ID)
    facts = at.dataframe[0].value
    assert RTSP_ID in facts["v"].tolist() and "90°" in facts["v"].tolist()
    assert any("无可播放的视频流" in i and "rtsp" in i for i in _infos(at))
    # one with an HLS stream: the player is in the page, no "no stream" notice
    at = open_page(db, "cameras", monkeypatch, camera_sel=HLS_ID)
    assert not any("无可播放的视频流" in i for i in _infos(at))
    assert any("测试球机" in str(c.value) for c in at.caption)
    assert "<b>" not in "".join(str(c.value) for c in at.caption)  # the name is shown as text


def test_coverage_before_and_after_it_is_computed(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(db, "cameras", monkeypatch)
    assert any("gridconsole coverage" in i for i in _infos(at))
    store = open_store(db)
    try:
        run = cams.compute_coverage(store)
        first = cams.coverage_table(store, level="village")
    finally:
        store.close()
    assert run.grids > 0 and run.cameras >= 2
    at = open_page(db, "cameras", monkeypatch)
    table = at.dataframe[0].value
    assert len(table) == len(first) and "道路覆盖率" in table.columns
    # the community with the least road seen, picked in the list: its map, blind spots, suggestions
    at = open_page(db, "cameras", monkeypatch, cov_list={"selection": {"rows": [0], "columns": []}})
    code = str(first["code"].iloc[0])
    assert any(code in str(s.value) for s in at.subheader)
    assert any("盲区路段" in str(c.value) for c in at.caption)
    at.button(key="cov_suggest").click().run()
    assert not at.exception, at.exception
    done = [str(s.value) for s in at.success]
    assert any("建议" in s and "上界" in s for s in done), done


def test_dispatch_panel_lists_the_cameras_that_see_the_case(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cid = _case_id(db)
    at = open_page(db, "dispatch", monkeypatch, dispatch_case=cid)
    assert any("能看到此处的摄像头" in str(m.value) for m in at.markdown)
    opens = [b for b in at.button if b.key == f"dsp_cam_{cid}_{HLS_ID}"]
    assert opens and any(b.key == f"dsp_cam_{cid}_{RTSP_ID}" for b in at.button)
    # the online dome ranks first; its name is escaped Markdown, not HTML
    rows = [str(m.value) for m in at.markdown if "测试" in str(m.value)]
    assert rows and "测试球机" in rows[0]
    opens[0].click().run()
    assert not at.exception, at.exception
    assert [b for b in at.button if b.key == f"dsp_cam_{cid}_{HLS_ID}"][0].disabled  # already open
    assert not any("无可播放的视频流" in i for i in _infos(at))
    at.button(key=f"dsp_cam_{cid}_{RTSP_ID}").click().run()
    assert any("无可播放的视频流" in i for i in _infos(at))
