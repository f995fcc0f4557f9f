"""Video dispatch in a real browser (Debian's chromium, no internet): a dispatcher clicks a case on
the /dispatch map, sees the cameras that see it (in the panel and as rank badges on the map), opens
one and its HLS stream plays in the page; a camera with only an RTSP address shows a clear "no
stream" notice instead of a player.

The stack: a copy of the small demo with, next to each of the cases the test may click, a dome
camera (HLS from a local "media gateway": ffmpeg's test pattern served with CORS from 127.0.0.1)
and an offline fixed camera with an RTSP address; the console on it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
from shapely.geometry import Point

from tests.browser.test_dispatch import _center, _dispatch_map, _heading, _open_case, _unassigned_near
from tests.browser.test_map import _browser
from tests.fixtures.demo_db import copy_demo, run_console
from tests.fixtures.media import make_hls, serve_media

pytestmark = pytest.mark.browser

NEAR_CASES = 80  # cameras go next to this many cases nearest the map's centre (some are hidden by others)
CAMERA_IDS = """(key) => {
  const out = [];
  window[key].eachLayer(l => { if (l.gcCamera !== undefined) out.push(String(l.gcCamera)); });
  return out;
}"""
STATE = "() => { const p = document.getElementById('gc-player'); return p ? p.getAttribute('data-state') : null; }"
VIDEO = """() => { const v = document.getElementById('gc-video');
  return {ready: v.readyState, t: v.currentTime, w: v.videoWidth, hidden: v.hidden || getComputedStyle(v).display === 'none'}; }"""


def dome_id(i: int) -> str:
    return f"211202000013299{i:05d}"


def gun_id(i: int) -> str:
    return f"211202000013298{i:05d}"


@pytest.fixture(scope="module")
def stack(small_demo_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    from store import open_store

    folder = Path(tmp_path_factory.mktemp("cameras"))
    make_hls(folder / "media" / "live", name="dome")
    url = copy_demo(small_demo_url, folder / "cameras.sqlite")
    wanted = _unassigned_near(url, _center(url))[:NEAR_CASES]
    with serve_media(folder / "media") as media:
        store = open_store(url)
        try:
            cases = store.read("cases", where={"id": wanted}).set_index("id")
            d = 12 / 111_000
            rows, geoms = [], []
            for i, cid in enumerate(wanted):
                x, y = float(cases.loc[cid].geometry.x), float(cases.loc[cid].geometry.y)
                rows.append(dict(id=dome_id(i), name=f"测试球机{cid}", direction=None, fov=None, range_m=20.0,
                                 cam_class="class1", online=True, stream_url=f"{media}/live/dome.m3u8"))  # fmt: skip
                geoms.append(Point(x - d, y))
                rows.append(dict(id=gun_id(i), name=f"测试枪机{cid}", direction=0.0, fov=60.0, range_m=30.0,
                                 cam_class="other", online=False, stream_url="rtsp://10.0.0.9/ch1"))  # fmt: skip
                geoms.append(Point(x, y - d))
            store.write("cameras", gpd.GeoDataFrame(rows, geometry=geoms, crs=4326), mode="upsert")
        finally:
            store.close()
        for base in run_console(url, log=folder / "streamlit.log"):
            yield {"console": base, "url": url, "wanted": wanted}


def _player_frame(pg, name: str):  # type: ignore[no-untyped-def]
    """The frame of the player whose camera is ``name``: components.html iframes hold the player."""
    for _ in range(120):
        for frame in pg.frames:
            try:
                if frame.evaluate(STATE) is not None and name in frame.evaluate("() => document.body.innerText"):
                    return frame
            except Exception:  # a frame being replaced
                continue
        pg.wait_for_timeout(250)
    raise AssertionError(f"no player for {name}")


def test_click_a_case_see_the_cameras_that_see_it_and_open_one(stack: dict[str, Any], chromium_path: str) -> None:
    for pg, blocked, failed, base in _browser(stack["console"], chromium_path):
        pg.goto(base + "/dispatch", wait_until="domcontentloaded")
        frame, key = _dispatch_map(pg)
        cid = _open_case(pg, frame, key, stack["wanted"])  # one real click on the case's marker
        i = stack["wanted"].index(cid)
        _heading(pg, cid).wait_for(state="visible", timeout=30_000)
        pg.get_by_text("能看到此处的摄像头").first.wait_for(state="visible", timeout=30_000)
        dome, gun = f"测试球机{cid}", f"测试枪机{cid}"
        pg.get_by_text(dome).first.wait_for(state="visible", timeout=30_000)
        pg.get_by_text(gun).first.wait_for(state="visible", timeout=30_000)
        # the map marks them too: rank badges carrying the camera ids
        for _ in range(80):
            on_map = set(frame.evaluate(CAMERA_IDS, key))
            if {dome_id(i), gun_id(i)} <= on_map:
                break
            pg.wait_for_timeout(250)
        assert {dome_id(i), gun_id(i)} <= on_map, on_map
        # the online dome ranks first; open it: its HLS stream plays in the page
        rows = pg.get_by_test_id("stHorizontalBlock").filter(has_text=dome)
        rows.last.get_by_role("button", name="调阅").click()
        player = _player_frame(pg, dome)
        player.wait_for_function(f"() => ({STATE})() === 'playing'", timeout=30_000)
        first = player.evaluate(VIDEO)
        assert first["ready"] >= 2 and first["w"] > 0 and not first["hidden"], first
        player.wait_for_function(
            f"() => document.getElementById('gc-video').currentTime > {first['t'] + 0.3}", timeout=15_000
        )
        # the RTSP camera: a clear notice, no player
        rows = pg.get_by_test_id("stHorizontalBlock").filter(has_text=gun)
        rows.last.get_by_role("button", name="调阅").click()
        pg.get_by_text("无可播放的视频流").first.wait_for(state="visible", timeout=30_000)
        assert blocked == [], f"requests left the machine: {blocked[:5]}"
        bad = [f for f in failed if "/_stcore/" not in f and "ERR_ABORTED" not in f]
        assert bad == [], bad[:5]
