"""A dispatcher works the /dispatch page in a real browser (Debian's chromium, no internet): clicks a
case on the map, sees who is near, assigns in one more click and watches the case's history change;
clicks an empty spot to open a case there; hostile text posted through Open311 shows as text and
never runs; two dispatchers race for one case: one wins and the other is told who did.

One stack per module: a copy of the small demo whose latest positions are moved to "now" (the
console ranks candidates with the real clock), the API (for Open311) and the console on it. Each
test picks its cases from the database as it finds it, so the tests do not depend on their order.
Clicks are real mouse clicks at the marker's pixel (Leaflet's ``latLngToContainerPoint`` plus the
iframe's box), so they go through Leaflet's canvas hit test and streamlit-folium like a person's.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from tests.browser.test_map import FIND_MAP, _browser, _poll
from tests.fixtures.api import api_process, api_token_for
from tests.fixtures.demo_db import copy_demo, run_console

pytestmark = pytest.mark.browser
KEYS: dict[str, str] = {}  # API base URL -> an Open311 api_key for it

HOSTILE_SCRIPT = "<script>window.__xss=1</script>"
HOSTILE_IMG = '<img src=x onerror="window.__xss=2">'

# Every case marker on the map: its id and its container pixel; the map's size.
CASE_PIXELS = """(key) => {
  const m = window[key]; const out = [];
  m.eachLayer(l => {
    if (l.gcCase === undefined) return;
    const p = m.latLngToContainerPoint(l.getLatLng());
    out.push([l.gcCase, p.x, p.y]);
  });
  const s = m.getSize();
  return {w: s.x, h: s.y, pts: out};
}"""
# Staff ids of the candidate badges on the map.
STAFF_IDS = """(key) => {
  const out = [];
  window[key].eachLayer(l => { if (l.gcStaff !== undefined) out.push(l.gcStaff); });
  return out;
}"""
# Container pixel boxes of every other drawn thing with bounds (cluster outlines, lines), so an
# "empty" spot keeps clear of them; and the position under a container pixel.
PATH_BOXES = """(key) => {
  const m = window[key]; const out = [];
  m.eachLayer(l => {
    if (!(l instanceof L.Polyline)) return;
    const b = l.getBounds(); if (!b.isValid()) return;
    const a = m.latLngToContainerPoint(b.getNorthWest()), c = m.latLngToContainerPoint(b.getSouthEast());
    out.push([a.x, a.y, c.x, c.y]);
  });
  return out;
}"""
LATLNG_AT = (
    "([key, x, y]) => { const ll = window[key].containerPointToLatLng([x, y]); return [ll.lat, ll.lng]; }"
)
XSS = "() => window.__xss === undefined ? null : String(window.__xss)"
# The rows of every st.dataframe (glide-data-grid draws on a canvas; its accessible table holds
# the cells as text), as lists of cell texts, header row first.
TABLES = """() => [...document.querySelectorAll("[data-testid='stDataFrame']")].map(d =>
  [...d.querySelectorAll('tr')].map(r => [...r.children].map(c => c.textContent)))"""


# ----------------------------------------------------------------------------- the stack


@pytest.fixture(scope="module")
def stack(small_demo_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """A copy of the small demo with fresh positions, the API and the console running on it."""
    from store import open_store

    folder = Path(tmp_path_factory.mktemp("dispatch"))
    url = copy_demo(small_demo_url, folder / "dispatch.sqlite")
    store = open_store(url)
    now = pd.Timestamp.now(tz="UTC").floor("s")
    for sid in store.read("latest_positions", geometry=False, columns=["staff_id"])["staff_id"]:
        store.update("latest_positions", {"staff_id": int(sid)}, {"ts": now, "received_at": now})
    store.close()
    key = api_token_for(url, role="department")  # an Open311 client's api_key (may report)
    with api_process(url, log=folder / "api.log") as (api, _proc):
        KEYS[api] = key
        for base in run_console(url, log=folder / "streamlit.log"):
            yield {"api": api, "console": base, "url": url}


def _read(url: str, table: str, **kw: Any) -> pd.DataFrame:
    from store import open_store

    store = open_store(url)
    try:
        return store.read(table, **kw)
    finally:
        store.close()


def _case(url: str, cid: int) -> pd.Series:
    return _read(url, "cases", where={"id": int(cid)}).iloc[0]


def _case_ids(url: str) -> set[int]:
    return set(_read(url, "cases", columns=["id"], geometry=False)["id"].astype(int))


def _events(url: str, cid: int) -> pd.DataFrame:
    return _read(url, "case_events", where={"case_id": int(cid)}, order_by=["id"])


def _staff_name(url: str, staff_id: int) -> str:
    return str(_read(url, "staff", where={"id": int(staff_id)})["name"].iloc[0])


def _wait_db(url: str, cid: int, ok: Callable[[pd.Series], bool], tries: int = 80) -> pd.Series:
    row = _case(url, cid)
    for _ in range(tries):
        if ok(row):
            break
        time.sleep(0.25)
        row = _case(url, cid)
    return row


def _center(url: str) -> tuple[float, float]:
    """(lat, lon) the dispatch map starts on: the city's centre (services.overview.city_summary)."""
    from services.mapview import unit_stats
    from services.overview import city_summary
    from store import open_store

    store = open_store(url)
    try:
        summary = city_summary(store, stats=unit_stats(store))
        assert summary is not None
        return float(summary.center[0]), float(summary.center[1])
    finally:
        store.close()


def _unassigned_near(url: str, center: tuple[float, float]) -> list[int]:
    """Unassigned open cases (reported or filed), nearest to ``center`` (lat, lon) first."""
    c = _read(url, "cases", where={"state": ["reported", "filed"]})
    k = math.cos(math.radians(center[0]))
    d = (c.geometry.y - center[0]) ** 2 + ((c.geometry.x - center[1]) * k) ** 2
    return [int(i) for i in c.assign(d=d).sort_values("d")["id"]]


# ----------------------------------------------------------------------------- browser helpers


def _dispatch_map(pg, ids: set[int] | None = None):  # type: ignore[no-untyped-def]
    """The st_folium frame and the map's key once case markers are drawn (all of ``ids`` if given)."""
    pg.wait_for_selector("iframe[title*='st_folium']", timeout=60_000)
    for _ in range(240):
        for frame in pg.frames:
            try:
                key = frame.evaluate(FIND_MAP)
                if not key:
                    continue
                drawn = {int(p[0]) for p in frame.evaluate(CASE_PIXELS, key)["pts"]}
            except Exception:  # a frame being replaced
                continue
            if drawn and (ids is None or ids <= drawn):
                return frame, key
        pg.wait_for_timeout(250)
    raise AssertionError(f"the dispatch map never showed the cases {sorted(ids or [])}")


def _map_box(pg, frame) -> dict[str, float]:  # type: ignore[no-untyped-def]
    """The map's box in page pixels, with the map scrolled into view."""
    pg.locator("iframe[title*='st_folium']").first.scroll_into_view_if_needed()
    box = frame.locator(".leaflet-container").bounding_box()
    assert box
    return box


def _on_free_map(x: float, y: float, w: float, h: float) -> bool:
    """A container pixel clear of the map's edges and controls (zoom, legend, scale, attribution)."""
    if not (20 <= x <= w - 20 and 20 <= y <= h - 20):
        return False
    return not ((x < 60 and y < 90) or (x > w - 110 and y > h - 220) or (x < 110 and y > h - 60))


def _clickable_marker(pg, frame, key: str, wanted: list[int]) -> tuple[int, float, float]:  # type: ignore[no-untyped-def]
    """Of the ``wanted`` cases (best first), the first whose marker is on screen, clear of the map's
    controls, and whose centre no marker drawn after it covers (markers are drawn in id order and
    the last one under the pointer takes the click): (id, page x, page y)."""
    box = _map_box(pg, frame)
    height = pg.viewport_size["height"]
    info = frame.evaluate(CASE_PIXELS, key)
    pts = {int(i): (x, y) for i, x, y in info["pts"]}
    for cid in wanted:
        if cid not in pts:
            continue
        x, y = pts[cid]
        if not _on_free_map(x, y, info["w"], info["h"]) or not (0 < box["y"] + y < height - 10):
            continue
        if all((x - ox) ** 2 + (y - oy) ** 2 >= 14**2 for j, (ox, oy) in pts.items() if j > cid):
            return cid, box["x"] + x, box["y"] + y
    raise AssertionError(f"none of the cases {wanted[:10]} has a marker that can be clicked")


def _empty_spot(pg, frame, key: str) -> tuple[float, float, float, float]:  # type: ignore[no-untyped-def]
    """A pixel near the map's centre at least 40 px from every case marker and 12 px clear of every
    outline: (page x, page y, lat, lon)."""
    box = _map_box(pg, frame)
    height = pg.viewport_size["height"]
    info = frame.evaluate(CASE_PIXELS, key)
    boxes = frame.evaluate(PATH_BOXES, key)
    w, h = info["w"], info["h"]
    spots = sorted(((x, y) for x in range(30, int(w), 15) for y in range(30, int(h), 15)),
                   key=lambda p: (p[0] - w / 2) ** 2 + (p[1] - h / 2) ** 2)  # fmt: skip
    for x, y in spots:
        if not _on_free_map(x, y, w, h) or not (0 < box["y"] + y < height - 10):
            continue
        if any((x - ox) ** 2 + (y - oy) ** 2 < 40**2 for _i, ox, oy in info["pts"]):
            continue
        if any(a - 12 <= x <= c + 12 and b - 12 <= y <= d + 12 for a, b, c, d in boxes):
            continue
        lat, lon = frame.evaluate(LATLNG_AT, [key, x, y])
        return box["x"] + x, box["y"] + y, lat, lon
    raise AssertionError("no empty spot on the map")


def _open_case(pg, frame, key: str, wanted: list[int]) -> int:  # type: ignore[no-untyped-def]
    """Click (one real click) the first clickable of ``wanted`` on the map; return its id once the
    panel shows it."""
    cid, x, y = _clickable_marker(pg, frame, key, wanted)
    pg.mouse.move(x, y)
    pg.mouse.click(x, y)
    _heading(pg, cid).wait_for(state="visible", timeout=30_000)
    return cid


def _heading(pg, cid: int):  # type: ignore[no-untyped-def]
    return pg.get_by_role("heading", name=re.compile(rf"#{cid}\b")).first


def _badge(panel, text: str):  # type: ignore[no-untyped-def]
    """The state badge ``text`` in the case panel (Markdown, not the tables' hidden cells)."""
    return panel.get_by_test_id("stMarkdownContainer").get_by_text(text, exact=True).first


def _assign_buttons(pg):  # type: ignore[no-untyped-def]
    return pg.get_by_role("button", name="派单", exact=True)


def _candidate_row(button) -> str:  # type: ignore[no-untyped-def]
    """The text of the candidate row holding ``button`` (the innermost columns block around it)."""
    return str(button.locator("xpath=ancestor::div[@data-testid='stHorizontalBlock'][1]").inner_text())


def _table(pg, first_header: str) -> list[list[str]]:  # type: ignore[no-untyped-def]
    """The rows (header first) of the st.dataframe whose first column is ``first_header``."""
    for rows in pg.evaluate(TABLES):
        if rows and rows[0] and rows[0][0] == first_header:
            return [[str(c) for c in r] for r in rows]
    return []


def _timeline_actions(pg) -> list[str]:  # type: ignore[no-untyped-def]
    """The 操作 column of the case's timeline (办理记录)."""
    rows = _table(pg, "时间")
    if not rows:
        return []
    col = rows[0].index("操作")
    return [r[col] for r in rows[1:]]


def _wait(pg, fn: Callable[..., Any], ok: Callable[[Any], bool], *args: Any, tries: int = 120) -> Any:  # type: ignore[no-untyped-def]
    """``fn(pg, *args)`` every 250 ms until ``ok`` of it (at most ``tries`` times); the last value."""
    value = fn(pg, *args)
    for _ in range(tries):
        if ok(value):
            break
        pg.wait_for_timeout(250)
        value = fn(pg, *args)
    return value


def _shown_text(pg, text: str):  # type: ignore[no-untyped-def]
    """The st.text element showing ``text`` (a case's description)."""
    return pg.get_by_test_id("stText").filter(has_text=text).first


def _no_xss(pg) -> None:  # type: ignore[no-untyped-def]
    """``window.__xss`` is unset in the page and in every frame."""
    for f in pg.frames:
        try:
            v = f.evaluate(XSS)
        except Exception:  # a frame that went away meanwhile
            continue
        assert v is None, f"hostile text ran in {f.url}: window.__xss = {v!r}"


def _clean(blocked: list[str], failed: list[str]) -> None:
    assert blocked == [], f"requests left the machine: {blocked[:5]}"
    bad = [f for f in failed if "/_stcore/" not in f and "ERR_ABORTED" not in f]
    assert bad == [], bad[:5]


# ----------------------------------------------------------------------------- tests


def test_click_a_case_see_candidates_assign_and_the_history_changes(
    stack: dict[str, Any], chromium_path: str
) -> None:
    """Click 1 on an unassigned case's marker shows it with ranked candidates (distances, badges on
    the map); click 2 on the first 派单 dispatches it: database, state, assignee and timeline agree."""
    url = stack["url"]
    wanted = _unassigned_near(url, _center(url))
    assert wanted, "the demo has no unassigned case"
    for pg, blocked, failed, base in _browser(stack["console"], chromium_path):
        pg.goto(base + "/dispatch", wait_until="domcontentloaded")
        frame, key = _dispatch_map(pg)
        pg.get_by_text("请在地图或列表中选择一个事件").first.wait_for(state="visible", timeout=20_000)

        cid = _open_case(pg, frame, key, wanted)  # click 1
        state = {"reported": "已上报", "filed": "已立案"}[_case(url, cid)["state"]]
        panel = _heading(pg, cid).locator("xpath=ancestor::div[@data-testid='stColumn'][1]")
        _badge(panel, state).wait_for(state="visible", timeout=20_000)
        pg.get_by_text("推荐处置人员").first.wait_for(state="visible", timeout=20_000)
        buttons = _assign_buttons(pg)
        buttons.first.wait_for(state="visible", timeout=20_000)
        assert buttons.count() >= 1
        first = _candidate_row(buttons.first)
        assert re.match(r"\s*1\b", first), first  # ranked: the first row is number 1
        assert re.search(r"\d+(\.\d+)? (m|km)\b", first), f"no distance in the first candidate row: {first!r}"
        before = _wait(pg, _timeline_actions, bool)
        assert before and before[0] == "上报" and "派遣" not in before, before
        # the candidates' badges are on the map too (the same frame: the map was not remounted)
        staff_on_map = _poll(pg, frame, STAFF_IDS, key, ok=bool, tries=80)
        assert staff_on_map, "no candidate badge appeared on the map"

        frame.evaluate("() => { window.__gc_probe = 7; }")  # survives only if the map is not remounted
        buttons.first.click()  # click 2: assign to the first-ranked candidate
        after = _wait_db(url, cid, lambda r: r["state"] == "dispatched")
        assert after["state"] == "dispatched", after["state"]
        assignee = int(after["assignee_id"])
        name = _staff_name(url, assignee)
        assert name in first, f"assigned to {name}, but the first candidate was {first!r}"
        assert assignee in staff_on_map
        ev = _events(url, cid)
        assert ev["action"].tolist()[-1] == "dispatch" and int(ev["staff_id"].iloc[-1]) == assignee
        # the page: the new state, the assignee, a 派遣 row in the timeline naming the assignee
        panel = _heading(pg, cid).locator("xpath=ancestor::div[@data-testid='stColumn'][1]")
        _badge(panel, "已派遣").wait_for(state="visible", timeout=20_000)
        assert _badge(panel, state).count() == 0
        after_rows = _wait(pg, _timeline_actions, lambda a: "派遣" in a)
        assert after_rows[: len(before)] == before and after_rows.count("派遣") == 1, after_rows
        rows = _table(pg, "时间")
        dispatch_row = next(r for r in rows[1:] if r[rows[0].index("操作")] == "派遣")
        assert dispatch_row[rows[0].index("人员")] == name, dispatch_row
        assert dispatch_row[rows[0].index("状态变化")].endswith("已派遣"), dispatch_row
        facts = {
            r[0]: r[1] for r in _wait(pg, _table, lambda rows, n=name: any(n in r for r in rows), "项目")[1:]
        }
        assert facts.get("处置人") == name, facts
        assert pg.get_by_role("button", name="改派").count() >= 1  # the page now offers reassigning
        # the outcome is shown, and showing it did not remount the map (which would go back to the
        # initial view and, once loaded, rerun the page and drop the message)
        assert frame.evaluate("() => window.__gc_probe") == 7, "the map was remounted by the assignment"
        assert pg.get_by_test_id("stAlert").filter(has_text="已办理").first.is_visible()
        _no_xss(pg)
        _clean(blocked, failed)


def test_clicking_an_empty_spot_offers_a_new_case_there(stack: dict[str, Any], chromium_path: str) -> None:
    """A click on the empty map opens 在此位置新建事件 for that spot; the form makes a case there
    (source dispatcher) and the page selects it."""
    url = stack["url"]
    known = _case_ids(url)
    text = "浏览器测试：井盖缺失"
    for pg, blocked, failed, base in _browser(stack["console"], chromium_path):
        pg.goto(base + "/dispatch", wait_until="domcontentloaded")
        frame, key = _dispatch_map(pg)
        x, y, lat, lon = _empty_spot(pg, frame, key)
        pg.mouse.move(x, y)
        pg.mouse.click(x, y)
        pg.get_by_role("heading", name="在此位置新建事件").wait_for(state="visible", timeout=30_000)
        shown = pg.get_by_text(re.compile(r"^\d+\.\d{6}, \d+\.\d{6}$")).first.inner_text()
        s_lat, s_lon = (float(v) for v in shown.split(","))
        assert abs(s_lat - lat) < 1e-4 and abs(s_lon - lon) < 1e-4, (shown, lat, lon)

        form = pg.get_by_test_id("stForm")
        form.locator("textarea").fill(text)
        form.get_by_role("button", name="创建事件").click()
        new = _wait(pg, lambda _pg: _case_ids(url) - known, bool)
        assert len(new) == 1, new
        cid = new.pop()
        case = _case(url, cid)
        assert case["source"] == "dispatcher" and case["description"] == text
        # where the click was: the map's own pixel -> position (a pixel is ~20 m at this zoom)
        assert abs(case.geometry.y - lat) < 1e-4 and abs(case.geometry.x - lon) < 1e-4, (
            case.geometry,
            lat,
            lon,
        )
        _heading(pg, cid).wait_for(state="visible", timeout=30_000)  # the page selected it
        _shown_text(pg, text).wait_for(state="visible", timeout=20_000)  # its description
        frame, key = _dispatch_map(pg, {cid})  # and it is on the map
        _no_xss(pg)
        _clean(blocked, failed)


def _free_places(url: str, center: tuple[float, float], n: int) -> list[tuple[float, float]]:
    """``n`` (lat, lon) near ``center``, inside the city, at least 600 m from every open case and
    from each other (so no marker hides them and Open311 does not merge them into a case)."""
    from services import cases as cs
    from store import open_store

    open_ = _read(url, "cases", where={"state": list(cs.OPEN_STATES)})
    k = math.cos(math.radians(center[0]))
    store = open_store(url)
    out: list[tuple[float, float]] = []
    try:
        steps = [(i * 0.004, j * 0.004) for i in range(-6, 7) for j in range(-8, 9)]
        for dy, dx in sorted(steps, key=lambda s: s[0] ** 2 + (s[1] * k) ** 2):
            lat, lon = center[0] + dy, center[1] + dx
            ys = pd.concat([open_.geometry.y, pd.Series([p[0] for p in out], dtype=float)])
            xs = pd.concat([open_.geometry.x, pd.Series([p[1] for p in out], dtype=float)])
            if ((((ys - lat) * 111_000) ** 2 + ((xs - lon) * 111_000 * k) ** 2) < 600**2).any():
                continue
            try:
                cs.attribute(store, lon, lat)
            except cs.CaseError:
                continue
            out.append((round(lat, 6), round(lon, 6)))
            if len(out) == n:
                return out
    finally:
        store.close()
    raise AssertionError("no free places near the centre")


def _post_open311(api: str, fields: dict[str, Any]) -> httpx.Response:
    """POST a request; while the endpoint is not there yet (someone is finishing it), retry for a
    few minutes."""
    deadline = time.monotonic() + 300
    while True:
        r = httpx.post(f"{api}/open311/v2/requests.json", data={**fields, "api_key": KEYS[api]}, timeout=20)
        if (
            r.status_code == 200
            or time.monotonic() > deadline
            or r.status_code not in (404, 405, 500, 501, 503)
        ):
            return r
        time.sleep(10)


def test_hostile_open311_reports_do_not_run_in_the_console(stack: dict[str, Any], chromium_path: str) -> None:
    """Reports whose description, address and name are HTML/JS, posted through Open311: their map
    tooltips, the panel (description, reporter, timeline) and the /cases page show the text; no
    script runs anywhere, in the page or the map's frame."""
    url = stack["url"]
    center = _center(url)
    codes = _read(url, "case_categories", geometry=False)["code"].astype(str).tolist()
    ids = []
    for i, (lat, lon) in enumerate(_free_places(url, center, 2)):
        hostile = HOSTILE_SCRIPT if i == 0 else HOSTILE_IMG
        r = _post_open311(stack["api"], {"service_code": codes[i], "lat": lat, "long": lon, "description": hostile,
                                         "address_string": hostile, "first_name": hostile})  # fmt: skip
        assert r.status_code == 200, r.text
        ids.append(int(r.json()[0]["service_request_id"]))
    for cid in ids:
        assert _case(url, cid)["source"] == "open311"

    for pg, blocked, failed, base in _browser(stack["console"], chromium_path):
        pg.goto(base + "/dispatch", wait_until="domcontentloaded")
        frame, key = _dispatch_map(pg, set(ids))
        # hover both markers: their tooltips are built from the payload and show the text
        for cid, hostile in zip(ids, (HOSTILE_SCRIPT, HOSTILE_IMG), strict=True):
            _cid, x, y = _clickable_marker(pg, frame, key, [cid])
            tip = frame.locator(".leaflet-tooltip", has_text=f"#{cid}").first
            for dx in (-30, 0, 1):  # Leaflet's canvas looks at the pointer at most every 32 ms
                pg.mouse.move(x + dx, y + dx)
                pg.wait_for_timeout(80)
            tip.wait_for(state="visible", timeout=10_000)
            text = tip.inner_text()
            assert hostile in text, text  # shown as text, not parsed
            assert tip.locator("img, script").count() == 0
            _no_xss(pg)

        # open the second (the <img onerror>) one: description, reporter and timeline in the panel
        cid = _open_case(pg, frame, key, [ids[1]])
        _shown_text(pg, "<img src=x").wait_for(state="visible", timeout=20_000)  # the description, as text
        facts = {r[0]: r[1] for r in _wait(pg, _table, bool, "项目")[1:]}
        assert facts.get("地址") == HOSTILE_IMG and HOSTILE_IMG in facts.get("上报人", ""), facts
        assert _wait(pg, _timeline_actions, bool)[0] == "上报"
        pg.mouse.move(10, 10)
        pg.wait_for_timeout(500)  # give an onerror a moment to fire, were there an <img>
        _no_xss(pg)
        assert pg.locator("img[src='x']").count() == 0

        # the /cases page: find it by its text, select it, see it; nothing runs there either
        pg.goto(base + "/cases", wait_until="domcontentloaded")
        search = pg.get_by_label("描述或地址包含")
        search.wait_for(state="visible", timeout=30_000)
        search.fill("__xss")
        search.press("Enter")
        listing = _wait(pg, _table, lambda rows: {r[0] for r in rows[1:]} == {str(i) for i in ids}, "id")
        assert sorted(int(r[0]) for r in listing[1:]) == sorted(ids), listing  # found by its text
        grid = pg.locator("[data-testid='stDataFrame']").first
        grid.scroll_into_view_if_needed()
        gbox = grid.bounding_box()
        assert gbox
        row = [int(r[0]) for r in listing[1:]].index(ids[0])
        pg.mouse.click(gbox["x"] + 16, gbox["y"] + 35 + 35 * row + 17)  # the row's selection box
        _heading(pg, ids[0]).wait_for(state="visible", timeout=30_000)
        _shown_text(pg, HOSTILE_SCRIPT).wait_for(state="visible", timeout=20_000)
        assert _wait(pg, _timeline_actions, bool)[0] == "上报"
        pg.wait_for_timeout(500)
        _no_xss(pg)
        assert pg.locator("img[src='x']").count() == 0
        _clean(blocked, failed)


def test_two_dispatchers_one_wins_in_the_browser(stack: dict[str, Any], chromium_path: str) -> None:
    """Two dispatchers (two sessions) have the same unassigned case open; A assigns it; B, still
    looking at the old page, assigns it to someone else: B is told it is taken and by whom, and
    the case has exactly one dispatch."""
    url = stack["url"]
    wanted = _unassigned_near(url, _center(url))
    for pa, blocked, failed, base in _browser(stack["console"], chromium_path):
        pb = pa.context.new_page()  # another tab: another Streamlit session
        pa.goto(base + "/dispatch", wait_until="domcontentloaded")
        pb.goto(base + "/dispatch", wait_until="domcontentloaded")
        fa, ka = _dispatch_map(pa)
        cid = _open_case(pa, fa, ka, wanted)
        fb, kb = _dispatch_map(pb)
        assert _open_case(pb, fb, kb, [cid]) == cid
        for pg in (pa, pb):
            _assign_buttons(pg).first.wait_for(state="visible", timeout=20_000)
        assert _assign_buttons(pb).count() >= 2, "the test needs two candidates"
        other = _candidate_row(_assign_buttons(pb).nth(1))

        _assign_buttons(pa).first.click()
        won = _wait_db(url, cid, lambda r: r["state"] == "dispatched")
        assert won["state"] == "dispatched"
        winner = _staff_name(url, int(won["assignee_id"]))
        assert winner not in other
        pa.get_by_text("已办理").first.wait_for(state="visible", timeout=20_000)

        fb.evaluate("() => { window.__gc_probe = 8; }")
        _assign_buttons(pb).nth(1).click()  # B's page still offers 派单: it has not rerun since
        alerts = _wait(
            pb,
            lambda p: [a for a in p.get_by_test_id("stAlert").all_inner_texts() if "操作未生效" in a],
            bool,
        )
        assert alerts, "B was not told that the case is taken"
        assert winner in alerts[0], alerts[0]  # ... and by whom
        after = _case(url, cid)
        assert after["state"] == "dispatched" and int(after["assignee_id"]) == int(won["assignee_id"])
        ev = _events(url, cid)
        assert ev["action"].isin(["dispatch", "reassign"]).sum() == 1, ev[["action", "staff_id"]]
        # B's page now shows the winner's state and assignee
        facts = {
            r[0]: r[1]
            for r in _wait(pb, _table, lambda rows, w=winner: any(w in r for r in rows), "项目")[1:]
        }
        assert facts.get("处置人") == winner, facts
        assert fb.evaluate("() => window.__gc_probe") == 8, "B's map was remounted"
        assert pb.get_by_test_id("stAlert").filter(has_text=winner).first.is_visible()  # still there to read
        _clean(blocked, failed)
