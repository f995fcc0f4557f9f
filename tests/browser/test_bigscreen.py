"""The big screen in headless chromium with no internet, at 1920×1080 and 3840×2160: the whole screen
renders with Streamlit's chrome hidden; the headline figures are the store's; a case posted through
the API appears in the ticker and the figures within one refresh, while the map is never remounted;
click a district to drill down and the button to come back.

``GC_SCREENSHOT_DIR=docs`` also writes docs/screenshot-bigscreen.png (the README's picture).
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.browser.test_map import FIND_MAP, _browser
from tests.fixtures.api import api_process, api_token_for
from tests.fixtures.demo_db import copy_demo, run_console

pytestmark = pytest.mark.browser
KEYS: dict[str, str] = {}  # API base URL -> an Open311 api_key for it

REFRESH_S = 3
KPI_VALUES = """() => Object.fromEntries([...document.querySelectorAll('[data-kpi]')].map(e => [e.dataset.kpi, e.textContent]))"""
TICKER_IDS = """() => [...document.querySelectorAll('.gc-ticker li')].map(e => Number(e.dataset.case))"""
CHROME = """() => ['[data-testid="stSidebar"]', 'header[data-testid="stHeader"]', '[data-testid="stToolbar"]']
  .map(s => document.querySelector(s)).filter(e => e && getComputedStyle(e).display !== 'none').length"""
# The container pixel of each district outline's label point (where its click reports).
DISTRICT_PIXELS = """(key) => {
  const m = window[key]; const out = [];
  m.eachLayer(l => { if (l.gcUnit === undefined || !l.getBounds) return;
    const c = l.getCenter(); const p = m.latLngToContainerPoint(c); out.push([l.gcUnit, p.x, p.y]); });
  return out;
}"""


@pytest.fixture(scope="module")
def stack(small_demo_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = Path(tmp_path_factory.mktemp("bigscreen"))
    url = copy_demo(small_demo_url, folder / "big.sqlite")
    key = api_token_for(url, role="department")  # an Open311 client's api_key (may report)
    with api_process(url, log=folder / "api.log") as (api, _proc):
        KEYS[api] = key
        for base in run_console(url, log=folder / "streamlit.log"):
            yield {"api": api, "console": base, "url": url}


def _store_kpis(url: str) -> dict[str, Any]:
    from services import bigscreen as bs
    from store import open_store

    store = open_store(url)
    try:
        return bs.kpis(store).as_dict()
    finally:
        store.close()


def _number(text: str) -> int:
    return int(re.sub(r"[^\d]", "", text.split("/")[0]) or 0)


def _map_frame(pg):  # type: ignore[no-untyped-def]
    pg.wait_for_selector("iframe[title*='st_folium']", timeout=60_000)
    for _ in range(240):
        for frame in pg.frames:
            try:
                key = frame.evaluate(FIND_MAP)
                if key and frame.evaluate(DISTRICT_PIXELS, key):
                    return frame, key
            except Exception:  # a frame being replaced
                continue
        pg.wait_for_timeout(250)
    raise AssertionError("the big screen's map never showed the districts")


def _wait_for(pg, script: str, ok, timeout_s: float):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    value = pg.evaluate(script)
    while not ok(value) and time.monotonic() < deadline:
        pg.wait_for_timeout(200)
        value = pg.evaluate(script)
    return value


def _post_case(api: str, url: str) -> int:
    """A citizen's report through Open311, in the city (where the demo's first case is)."""
    from store import open_store

    store = open_store(url)
    try:
        code = str(store.read("case_categories", columns=["code"], geometry=False, limit=1)["code"].iloc[0])
        g = store.read("grids", columns=["code"], limit=1).geometry.iloc[0].representative_point()
    finally:
        store.close()
    r = httpx.post(f"{api}/open311/v2/requests.json", timeout=20,
                   data={"service_code": code, "lat": g.y, "long": g.x, "description": "<b>大屏测试</b> 井盖缺失",
                         "api_key": KEYS[api]})  # fmt: skip
    assert r.status_code == 200, r.text
    return int(r.json()[0]["service_request_id"])


def test_the_whole_screen_at_1920x1080_live_without_remount(stack: dict[str, Any], chromium_path: str) -> None:
    for pg, blocked, failed, base in _browser(stack["console"], chromium_path, viewport=(1920, 1080)):
        pg.goto(f"{base}/bigscreen?refresh={REFRESH_S}", wait_until="domcontentloaded")
        pg.wait_for_selector("[data-kpi='open']", timeout=60_000)
        frame, key = _map_frame(pg)
        assert pg.evaluate(CHROME) == 0  # no sidebar, header or toolbar
        assert pg.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
        # the figures are the store's
        want = _store_kpis(stack["url"])
        shown = _wait_for(pg, KPI_VALUES, lambda v, w=want: _number(v.get("open", "")) == w["open"], 20)
        assert _number(shown["open"]) == want["open"] and _number(shown["overdue"]) == want["overdue"]
        assert _number(shown["reported_30d"]) == want["reported_30d"]
        assert _number(shown["cameras_online"]) == want["cameras_online"]
        assert shown["cameras_online"].replace(",", "").endswith(f"/ {want['cameras_total']}")
        # charts drawn (Vega renders into canvas or svg)
        pg.wait_for_selector("[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg", timeout=60_000)
        assert pg.locator("[data-testid='stVegaLiteChart']").count() >= 5
        shots = os.environ.get("GC_SCREENSHOT_DIR")
        if shots:
            pg.wait_for_timeout(1500)
            pg.screenshot(path=str(Path(shots) / "screenshot-bigscreen.png"))
        # mark the map: a remount would make a new Leaflet map (and lose the mark)
        frame.evaluate("(k) => { window[k].__gcMark = 42; }", key)
        before = _number(shown["cases_today"])
        cid = _post_case(stack["api"], stack["url"])
        t0 = time.monotonic()
        ids = _wait_for(pg, TICKER_IDS, lambda v, c=cid: c in v, 4 * REFRESH_S + 10)
        took = time.monotonic() - t0
        assert cid in ids, ids
        assert took <= 2 * REFRESH_S + 5, took  # within one refresh (plus the server's work)
        assert pg.locator(".gc-ticker b").count() == 0  # the description is text
        now = _wait_for(pg, KPI_VALUES, lambda v, b=before: _number(v.get("cases_today", "")) == b + 1, 2 * REFRESH_S + 5)
        assert _number(now["cases_today"]) == before + 1
        # a few more refreshes: the same map object all along
        pg.wait_for_timeout(3 * REFRESH_S * 1000)
        assert frame.evaluate("(k) => window[k] && window[k].__gcMark", key) == 42
        # the overlays of earlier refreshes are released, not kept (streamlit-folium keeps every
        # one in window.feature_group unless layers.basemap.release_previous_overlays empties it)
        held = frame.evaluate("() => window.feature_group.length")
        on_map = frame.evaluate("(k) => window.feature_group.filter(g => window[k].hasLayer(g)).length", key)
        assert held == on_map, (held, on_map)
        # nor do the theme stylesheets Streamlit adds to the map's frame on every render pile up
        themes = frame.evaluate("() => [...document.querySelectorAll('style')].filter(e => e.textContent.includes('--primary-color')).length")
        assert themes <= 1, themes
        assert blocked == [], f"requests left the machine: {blocked[:5]}"
        bad = [f for f in failed if "/_stcore/" not in f and "ERR_ABORTED" not in f]
        assert bad == [], bad[:5]


def test_drill_into_a_district_and_back(stack: dict[str, Any], chromium_path: str) -> None:
    for pg, blocked, _failed, base in _browser(stack["console"], chromium_path, viewport=(1920, 1080)):
        pg.goto(f"{base}/bigscreen?refresh=30", wait_until="domcontentloaded")
        frame, key = _map_frame(pg)
        where = pg.locator(".gc-where")
        city = where.inner_text()
        code, x, y = frame.evaluate(DISTRICT_PIXELS, key)[0]
        pg.locator("iframe[title*='st_folium']").first.scroll_into_view_if_needed()
        box = frame.locator(".leaflet-container").bounding_box()
        assert box
        pg.mouse.click(box["x"] + x, box["y"] + y)
        pg.wait_for_function(f"() => document.querySelector('.gc-where').textContent !== {city!r}", timeout=30_000)
        from services import bigscreen as bs
        from store import open_store

        store = open_store(stack["url"])
        try:
            name = str(bs.districts(store).set_index("code").loc[code, "name"])
            want = bs.kpis(store, county=code).as_dict()
        finally:
            store.close()
        assert where.inner_text() == name
        shown = pg.evaluate(KPI_VALUES)
        assert _number(shown["open"]) == want["open"]
        pg.get_by_role("button", name=re.compile("返回全市")).click()
        pg.wait_for_function(f"() => document.querySelector('.gc-where').textContent === {city!r}", timeout=30_000)
        assert blocked == []


def test_the_screen_at_3840x2160(stack: dict[str, Any], chromium_path: str) -> None:
    for pg, blocked, _failed, base in _browser(stack["console"], chromium_path, viewport=(3840, 2160)):
        pg.goto(f"{base}/bigscreen?refresh=30", wait_until="domcontentloaded")
        pg.wait_for_selector("[data-kpi='open']", timeout=60_000)
        _map_frame(pg)
        size = pg.evaluate("() => parseFloat(getComputedStyle(document.querySelector('.gc-kpi .v')).fontSize)")
        zoom = pg.evaluate("() => getComputedStyle(document.querySelector('.block-container, .stMainBlockContainer')).zoom")
        assert float(zoom) == 2 and size >= 40  # doubled for the 4K wall
        assert pg.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
        assert blocked == []


def test_tour_mode_rotates_through_the_districts_and_back(stack: dict[str, Any], chromium_path: str) -> None:
    from services import bigscreen as bs
    from store import open_store

    store = open_store(stack["url"])
    try:
        names = bs.districts(store)["name"].astype(str).tolist()
    finally:
        store.close()
    for pg, blocked, _failed, base in _browser(stack["console"], chromium_path, viewport=(1920, 1080)):
        pg.goto(f"{base}/bigscreen?refresh=2&tour=3", wait_until="domcontentloaded")
        pg.wait_for_selector(".gc-where", timeout=60_000)
        city = pg.locator(".gc-where").inner_text()
        seen = [city]
        deadline = time.monotonic() + 8 * len(names) + 30
        while time.monotonic() < deadline and (len(seen) < len(names) + 2 or seen[-1] != city):
            now = pg.locator(".gc-where").inner_text()
            if now != seen[-1]:
                seen.append(now)
            pg.wait_for_timeout(300)
        assert seen[1 : 1 + len(names)] == names and seen[-1] == city, seen  # every district, then the city
        assert blocked == []
