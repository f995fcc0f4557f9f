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

from tests.browser.test_dispatch import (
    _center,
    _dispatch_map,
    _heading,
    _on_free_map,
    _open_case,
    _unassigned_near,
)
from tests.browser.test_map import FIND_MAP, _browser
from tests.fixtures.demo_db import copy_demo, run_console
from tests.fixtures.media import make_hls, serve_media

pytestmark = pytest.mark.browser

NEAR_CASES = 80  # cameras go next to this many cases nearest the map's centre (some are hidden by others)
CAMERA_IDS = """(key) => {
  const out = [];
  window[key].eachLayer(l => { if (l.gcCamera !== undefined) out.push(String(l.gcCamera)); });
  return out;
}"""
# Every camera marker on the map: its id and container pixel; the map's size.
CAMERA_PIXELS = """(key) => {
  const m = window[key]; const out = [];
  m.eachLayer(l => {
    if (l.gcCamera === undefined || !l.getLatLng) return;
    const p = m.latLngToContainerPoint(l.getLatLng());
    out.push([String(l.gcCamera), p.x, p.y]);
  });
  const s = m.getSize();
  return {w: s.x, h: s.y, pts: out};
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
            # the demo's own cameras stream too (from the same local gateway)
            ours = {r["id"] for r in rows}
            for cam_id in store.read("cameras", columns=["id"], geometry=False)["id"]:
                if cam_id not in ours:
                    store.update("cameras", {"id": cam_id}, {"stream_url": f"{media}/live/dome.m3u8"})
        finally:
            store.close()
        for base in run_console(url, log=folder / "streamlit.log"):
            yield {"console": base, "url": url, "wanted": wanted}


def _assert_plays(player) -> None:  # type: ignore[no-untyped-def]
    player.wait_for_function(f"() => ({STATE})() === 'playing'", timeout=30_000)
    first = player.evaluate(VIDEO)
    assert first["ready"] >= 2 and first["w"] > 0 and not first["hidden"], first
    player.wait_for_function(
        f"() => document.getElementById('gc-video').currentTime > {first['t'] + 0.3}", timeout=15_000
    )


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
        _assert_plays(_player_frame(pg, dome))
        # the RTSP camera: a clear notice, no player
        rows = pg.get_by_test_id("stHorizontalBlock").filter(has_text=gun)
        rows.last.get_by_role("button", name="调阅").click()
        pg.get_by_text("无可播放的视频流").first.wait_for(state="visible", timeout=30_000)
        assert blocked == [], f"requests left the machine: {blocked[:5]}"
        bad = [f for f in failed if "/_stcore/" not in f and "ERR_ABORTED" not in f]
        assert bad == [], bad[:5]


def test_click_a_camera_on_the_cameras_page_see_its_details_and_its_stream(
    stack: dict[str, Any], chromium_path: str
) -> None:
    from store import open_store

    for pg, blocked, failed, base in _browser(stack["console"], chromium_path):
        pg.goto(base + "/cameras", wait_until="domcontentloaded")
        pg.wait_for_selector("iframe[title*='st_folium']", timeout=60_000)
        frame = key = None
        for _ in range(240):
            for f in pg.frames:
                try:
                    k = f.evaluate(FIND_MAP)
                    if k and f.evaluate(CAMERA_PIXELS, k)["pts"]:
                        frame, key = f, k
                except Exception:  # a frame being replaced
                    continue
            if frame is not None:
                break
            pg.wait_for_timeout(250)
        assert frame is not None and key is not None, "the cameras map never showed a camera"
        pg.locator("iframe[title*='st_folium']").first.scroll_into_view_if_needed()
        box = frame.locator(".leaflet-container").bounding_box()
        assert box
        info = frame.evaluate(CAMERA_PIXELS, key)
        pts = info["pts"]
        # a camera well clear of every other marker, away from the map's controls
        alone = [(cid, x, y) for cid, x, y in pts if _on_free_map(x, y, info["w"], info["h"])
                 and 0 < box["y"] + y < pg.viewport_size["height"] - 10
                 and all((x - ox) ** 2 + (y - oy) ** 2 >= 20**2 for other, ox, oy in pts if other != cid)]  # fmt: skip
        assert alone, "no camera marker stands alone on the map"
        cid, x, y = alone[0]
        pg.mouse.move(box["x"] + x, box["y"] + y)
        pg.mouse.click(box["x"] + x, box["y"] + y)
        store = open_store(stack["url"])
        try:
            name = str(store.read("cameras", where={"id": cid})["name"].iloc[0])
        finally:
            store.close()
        pg.get_by_role("heading", name=name).first.wait_for(state="visible", timeout=30_000)
        pg.get_by_text(cid).first.wait_for(state="visible", timeout=30_000)
        _assert_plays(_player_frame(pg, name))
        assert blocked == [], f"requests left the machine: {blocked[:5]}"
        bad = [f for f in failed if "/_stcore/" not in f and "ERR_ABORTED" not in f]
        assert bad == [], bad[:5]
