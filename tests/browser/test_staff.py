"""A phone posts Traccar-Client-style positions to the running API; a person opens the staff page in
a real browser and sees the worker on the live layer, then replays the track."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.test_map import FIND_MAP, _browser, _poll
from tests.fixtures.api import api_process, api_token
from tests.fixtures.demo_db import copy_demo, run_console

pytestmark = pytest.mark.browser
HOSTILE = '<img src=x onerror="window.__xss=3">'

FIND_STAFF = """([sid]) => {
  for (const k of Object.keys(window)) {
    const m = window[k];
    if (!k.startsWith('map_') || !m || !m.eachLayer) continue;
    let found = null;
    m.eachLayer(l => { if (l.gcStaff === sid) found = l.getLatLng(); });
    if (found) return [found.lat, found.lng];
  }
  return null;
}"""
REPLAY = """() => {
  const c = document.querySelector('.gc-replay');
  if (!c) return null;
  return {start: +c.dataset.start, end: +c.dataset.end, epoch: +c.dataset.epoch, playing: c.dataset.playing,
          time: (c.querySelector('.gc-replay-time') || {}).textContent || ''};
}"""


@pytest.fixture
def live_stack(small_demo_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A copy of the small demo with the API and the console running on it; one on-duty worker
    (with a hostile name) has a phone."""
    from store import open_store

    url = copy_demo(small_demo_url, tmp_path / "live.sqlite")
    store = open_store(url)
    links = store.read("staff_grids")
    sid = int(links["staff_id"].min())
    device = str(store.read("staff", where={"id": sid})["device_id"].iloc[0])
    store.update("staff", {"id": sid}, {"name": HOSTILE, "on_duty": True})
    phone_token = api_token(store, role="grid_worker", name=f"device:{device}")  # the phone's own token
    grid = store.read("grids", where={"code": links[links["staff_id"] == sid]["grid_code"].iloc[0]})
    p = grid.geometry.iloc[0].representative_point()
    store.close()
    with api_process(url, log=tmp_path / "api.log") as (api, _proc):
        for base in run_console(url, log=tmp_path / "streamlit.log"):
            yield {"api": api, "console": base, "sid": sid, "device": device, "lon": p.x, "lat": p.y, "token": phone_token}


def test_posted_positions_show_on_the_live_layer_and_in_the_replay(live_stack: dict[str, Any], chromium_path: str) -> None:
    s = live_stack
    now = int(time.time())
    t0 = now - 20 * 60
    # a 20-minute walk northwards, one fix per 30 s, sent the way Traccar Client sends them
    with httpx.Client(base_url=s["api"], timeout=10) as c:
        for i in range(41):
            q = {
                "id": s["device"],
                "timestamp": t0 + 30 * i,
                "lat": round(s["lat"] + i * 0.00012, 6),
                "lon": round(s["lon"], 6),
                "speed": 0.8,
                "bearing": 0,
                "altitude": 60,
                "accuracy": 6,
                "batt": 80,
                "charge": "false",
                "token": s["token"],  # Traccar Client cannot set headers: the server URL carries it
            }
            assert c.post("/osmand", params=q).status_code == 200
    last_lat = round(s["lat"] + 40 * 0.00012, 6)

    for pg, blocked, failed, base in _browser(s["console"], chromium_path):
        pg.goto(base + "/staff", wait_until="domcontentloaded")
        pg.wait_for_selector("iframe[title*='st_folium']", timeout=60_000)
        frame = None
        for _ in range(120):
            for f in pg.frames:
                try:
                    if f.evaluate(FIND_MAP) and f.evaluate(FIND_STAFF, [s["sid"]]):
                        frame = f
                        break
                except Exception:
                    continue
            if frame:
                break
            pg.wait_for_timeout(250)
        assert frame is not None, "the worker never appeared on the live layer"
        lat, lon = frame.evaluate(FIND_STAFF, [s["sid"]])
        assert abs(lat - last_lat) < 1e-5 and abs(lon - s["lon"]) < 1e-5  # at the latest fix
        assert pg.get_by_text("在线").first.is_visible()
        assert pg.evaluate("window.__xss") is None and frame.evaluate("window.__xss") is None

        # the track tab: this worker (the newest fix) is preselected; the replay covers the walk
        pg.get_by_role("tab", name="轨迹回放").click()
        replay_frame = None
        for _ in range(160):
            for f in pg.frames:
                try:
                    if f.evaluate(REPLAY):
                        replay_frame = f
                        break
                except Exception:
                    continue
            if replay_frame:
                break
            pg.wait_for_timeout(250)
        assert replay_frame is not None, "no replay control appeared"
        info = replay_frame.evaluate(REPLAY)
        assert info["start"] == t0 and info["end"] == t0 + 1200
        assert "里程" in pg.content() and "km" in pg.content()
        # play it at x60 and watch the time move
        replay_frame.select_option(".gc-replay-speed", "300")
        replay_frame.click(".gc-replay-play")
        moved = _poll(pg, replay_frame, REPLAY, None, ok=lambda r, e=info["epoch"]: r and r["epoch"] > e + 30)
        assert moved["epoch"] > info["epoch"] + 30 and moved["playing"] == "1"
        # drag the slider to the end: the marker is at the last fix
        replay_frame.evaluate(
            "() => { const s = document.querySelector('.gc-replay-slider'); s.value = s.max;"
            " s.dispatchEvent(new Event('input', {bubbles: true})); }"
        )
        end = _poll(pg, replay_frame, REPLAY, None, ok=lambda r: r and r["epoch"] >= t0 + 1200)
        assert end["epoch"] == t0 + 1200
        assert replay_frame.evaluate("window.__xss") is None
        assert blocked == [], f"requests left the machine: {blocked[:5]}"
        bad = [f for f in failed if "/_stcore/" not in f and "ERR_ABORTED" not in f]
        assert bad == [], bad[:5]
