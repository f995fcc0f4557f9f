"""A person opens the console in a real browser with no internet and looks at the grid map.

Debian's chromium driven by Playwright; every request to anything but 127.0.0.1/localhost is
blocked and recorded, so a CDN reference anywhere makes the test fail.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlparse

import pytest

from tests.fixtures.users import session_cookie

pytestmark = pytest.mark.browser

LOCAL = {"127.0.0.1", "localhost", "[::1]", "::1"}
FIND_MAP = """() => {
  const k = Object.keys(window).find(k => k.startsWith('map_') && window[k] && window[k].eachLayer);
  return k || null;
}"""
COUNT_POLYGONS = """(key) => {
  const m = window[key]; let n = 0;
  m.eachLayer(l => { if (l instanceof L.Polygon && l.feature) n++; });
  return n;
}"""
# Container pixel of the polygon nearest to the map centre whose feature has a household count.
POLYGON_POINT = """(key) => {
  const m = window[key]; const c = m.getSize().divideBy(2); let best = null;
  m.eachLayer(l => {
    if (!(l instanceof L.Polygon) || !l.feature || l.feature.properties.h === undefined) return;
    const p = m.latLngToContainerPoint(l.getBounds().getCenter());
    const d = p.distanceTo(c);
    if (best === null || d < best.d) best = {x: p.x, y: p.y, d: d};
  });
  return best;
}"""


@pytest.fixture
def page(console_url: str, chromium_path: str) -> Iterator[tuple[object, list[str], list[str], str]]:
    yield from _browser(console_url, chromium_path)


def _browser(
    console_url: str,
    chromium_path: str,
    *,
    viewport: tuple[int, int] = (1600, 1000),
    role: str | None = "admin",
    unit_code: str = "211200",
) -> Iterator[tuple[object, list[str], list[str], str]]:
    """A Chromium page signed in to the test console as a user of ``role`` over ``unit_code``
    (None: not signed in), every non-local request blocked."""
    from playwright.sync_api import sync_playwright

    blocked: list[str] = []
    failed: list[str] = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium_path,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]}, locale="zh-CN")
        if role is not None:
            context.add_cookies([session_cookie(console_url, role, unit_code)])  # type: ignore[list-item]

        def guard(route, request) -> None:  # type: ignore[no-untyped-def]
            host = urlparse(request.url).hostname or ""
            if request.url.startswith(("data:", "blob:", "about:")) or host in LOCAL:
                route.continue_()
            else:
                blocked.append(request.url)
                route.abort()

        context.route("**/*", guard)
        pg = context.new_page()
        pg.on("requestfailed", lambda r: failed.append(f"{r.url} {r.failure}"))
        pg.on("response", lambda r: failed.append(f"{r.url} HTTP {r.status}") if r.status >= 400 else None)
        yield pg, blocked, failed, console_url
        context.close()
        browser.close()


def _map_frame(pg):  # type: ignore[no-untyped-def]
    pg.wait_for_selector("iframe[title*='st_folium']", timeout=60_000)
    for _ in range(200):
        for frame in pg.frames:
            try:
                if frame.evaluate(FIND_MAP):
                    return frame
            except Exception:
                continue
        pg.wait_for_timeout(250)
    raise AssertionError("no Leaflet map appeared in the page")


def _poll(pg, frame, script: str, arg: object, *, ok, tries: int = 60):  # type: ignore[no-untyped-def]
    """Evaluate ``script(arg)`` in the map's frame every 250 ms until ``ok(result)``; return the last result."""
    result = None
    for _ in range(tries):
        result = frame.evaluate(script, arg)
        if ok(result):
            break
        pg.wait_for_timeout(250)
    return result


def _hover_tooltip(pg, frame, point: dict):  # type: ignore[no-untyped-def]
    """Move the mouse onto a container pixel of the map; return the visible tooltip."""
    box = frame.locator(".leaflet-container").bounding_box()
    assert box
    pg.mouse.move(box["x"] + point["x"], box["y"] + point["y"])
    pg.mouse.move(box["x"] + point["x"] + 2, box["y"] + point["y"] + 1)
    tip = frame.locator(".leaflet-tooltip").first
    tip.wait_for(state="visible", timeout=10_000)
    return tip


def test_map_draws_micro_grids_with_household_tooltips(page, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pg, blocked, failed, base = page
    pg.goto(base + "/", wait_until="domcontentloaded")
    frame = _map_frame(pg)
    key = frame.evaluate(FIND_MAP)
    # A mark on the map's page: it survives only if overlay updates do not remount the map.
    frame.evaluate("() => { window.__gc_probe = 42; }")
    # At the city's initial zoom the map shows aggregated units; zoom in until grids are drawn.
    level_text = ""
    for _ in range(6):
        pg.wait_for_timeout(1500)
        level_text = pg.locator("text=/显示层级/").first.inner_text()
        if "微网格" in level_text:
            break
        frame.locator(".leaflet-control-zoom-in").click()
    assert "微网格" in level_text, level_text
    frame = _map_frame(pg)
    key = frame.evaluate(FIND_MAP)
    n = _poll(pg, frame, COUNT_POLYGONS, key, ok=lambda n: n >= 3, tries=40)
    assert n >= 3, f"only {n} grid polygons drawn"
    assert frame.evaluate("() => window.__gc_probe") == 42, "the map was remounted when its overlays changed"

    target = frame.evaluate(POLYGON_POINT, key)
    assert target is not None
    text = _hover_tooltip(pg, frame, target).inner_text()
    assert "户数" in text, text
    assert re.search(r"户数\s*\d+", text), text
    assert re.search(r"\d{15}", text), text  # the 15-digit grid code
    pg.screenshot(path=str(tmp_path / "map.png"))
    assert not blocked, f"requests to the internet: {blocked[:5]}"
    assert not failed, f"failed requests: {failed[:5]}"


def test_shared_link_opens_on_urban_grids_in_english(page, small_demo_url: str) -> None:  # type: ignore[no-untyped-def]
    """A link with ?lat&lon&z opens the map on that view; ?lang=en switches the language."""
    import os

    from store import open_store

    pg, blocked, failed, base = page
    store = open_store(small_demo_url)
    community = store.read("admin_units", where={"level": "village", "kind": "community"}, limit=1)
    c = community.geometry.iloc[0].centroid
    store.close()
    pg.goto(f"{base}/?lat={c.y:.5f}&lon={c.x:.5f}&z=16&lang=en", wait_until="domcontentloaded")
    frame = _map_frame(pg)
    key = frame.evaluate(FIND_MAP)
    assert _poll(pg, frame, COUNT_POLYGONS, key, ok=lambda n: n >= 5) >= 5
    assert "micro-grids" in pg.locator("text=/Showing/").first.inner_text()
    assert frame.evaluate("(k) => window[k].getZoom()", key) == 16
    pg.wait_for_timeout(500)
    shots = os.environ.get("GC_SCREENSHOT_DIR")
    if shots:  # used to refresh the README's screenshot
        pg.screenshot(path=str(Path(shots) / "screenshot-map.png"))
    assert not blocked, blocked[:5]
    assert not failed, failed[:5]


def test_hostile_text_in_data_is_shown_as_text(hostile_console, chromium_path: str) -> None:  # type: ignore[no-untyped-def]
    """A grid name and a worker name holding HTML/JS show up literally in the tooltip; nothing runs."""
    from tests.browser.conftest import HOSTILE_NAME, HOSTILE_WORKER

    base, code, lat, lon = hostile_console
    for pg, blocked, failed, _ in _browser(base, chromium_path):
        pg.goto(f"{base}/?lat={lat:.6f}&lon={lon:.6f}&z=17", wait_until="domcontentloaded")
        frame = _map_frame(pg)
        key = frame.evaluate(FIND_MAP)
        target = _poll(pg, frame, GRID_POINT, [key, code], ok=bool, tries=80)
        assert target, "the hostile grid was not drawn"
        tip = _hover_tooltip(pg, frame, target)
        text = tip.inner_text()
        assert HOSTILE_NAME in text, text  # shown as text, not parsed as HTML
        assert HOSTILE_WORKER in text, text
        assert tip.locator("img, script").count() == 0
        assert frame.evaluate("() => window.__xss") is None
        assert pg.evaluate("() => window.__xss") is None
        assert not blocked, blocked[:5]
        assert not failed, failed[:5]


# Container pixel of the centre of the polygon whose grid code is args[1].
GRID_POINT = """([key, code]) => {
  const m = window[key]; let out = null;
  m.eachLayer(l => {
    if (out || !(l instanceof L.Polygon) || !l.feature || l.feature.properties.c !== code) return;
    const p = m.latLngToContainerPoint(l.getBounds().getCenter());
    out = {x: p.x, y: p.y};
  });
  return out;
}"""
