"""A planner redraws a community's grids in a real browser: starts a draft, draws a split line
across a grid, sees the counts change, selects and merges, undoes, and publishes a new version."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.test_map import FIND_MAP, _browser, _map_frame, _poll
from tests.fixtures.demo_db import copy_demo, run_console

pytestmark = pytest.mark.browser

# Container pixels of a vertical line across the base grid with the most households (overshooting
# its bounds by 25 px), and the grid's household count.
SPLIT_LINE = """(key) => {
  const m = window[key]; let best = null;
  m.eachLayer(l => {
    if (!(l instanceof L.Polygon) || !l.feature || l.feature.properties.h === undefined) return;
    if (l.feature.properties.s === undefined || l.feature.properties.k === undefined) return;
    const h = parseInt(l.feature.properties.h);
    if (best === null || h > best.h) best = {h: h, layer: l};
  });
  if (best === null) return null;
  const b = best.layer.getBounds();
  const c = m.latLngToContainerPoint(b.getCenter());
  const top = m.latLngToContainerPoint(b.getNorthWest()).y - 25;
  const bottom = m.latLngToContainerPoint(b.getSouthEast()).y + 25;
  return {h: best.h, x: c.x, top: top, bottom: bottom, ref: best.layer.feature.properties.r};
}"""
COUNT_LABELS = "() => document.querySelectorAll('.gc-count').length"
GRID_POINTS = """(key) => {
  const m = window[key]; const out = [];
  m.eachLayer(l => {
    if (!(l instanceof L.Polygon) || !l.feature || l.feature.properties.k === undefined) return;
    if (l.feature.properties.s === undefined) return;
    const p = m.latLngToContainerPoint(l.getBounds().getCenter());
    out.push({k: l.feature.properties.k, r: l.feature.properties.r, x: p.x, y: p.y, sel: l.feature.properties.sel});
  });
  return out;
}"""


@pytest.fixture(scope="module")
def planning_console(small_demo_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """A console on a private copy of the small demo (publishing changes it); yields (URL, unit)."""
    from store import open_store

    folder = Path(tmp_path_factory.mktemp("planning"))
    url = copy_demo(small_demo_url, folder / "planning.sqlite")
    store = open_store(url)
    grids = store.read("grids", where={"kind": "base"}, columns=["unit_code", "code"])
    communities = store.read("admin_units", where={"level": "village", "kind": "community"}, columns=["code"])
    counts = grids.groupby("unit_code").size()
    unit = str(counts[counts.index.isin(communities["code"]) & (counts >= 4)].sort_values().index[0])
    store.close()
    for base in run_console(url, log=folder / "streamlit.log"):
        yield base, unit


def _metric(pg, label: str) -> int:  # type: ignore[no-untyped-def]
    text = pg.locator("[data-testid='stMetric']").filter(has_text=label).first.inner_text()
    m = re.search(r"(\d[\d,]*)\s*$", text.strip())
    assert m, text
    return int(m.group(1).replace(",", ""))


def _wait_metric(pg, label: str, ok, tries: int = 80) -> int:  # type: ignore[no-untyped-def]
    value = -1
    for _ in range(tries):
        try:
            value = _metric(pg, label)
        except Exception:
            value = -1
        if ok(value):
            return value
        pg.wait_for_timeout(250)
    return value


def _button(pg, name):  # type: ignore[no-untyped-def]
    """The one enabled button called ``name`` once a rerun has settled (while Streamlit swaps the
    page, the old and the new render can both be there)."""
    loc = pg.get_by_role("button", name=name, exact=isinstance(name, str))
    for _ in range(80):
        loc = pg.get_by_role("button", name=name, exact=isinstance(name, str))
        if loc.count() == 1 and loc.is_enabled():
            return loc
        pg.wait_for_timeout(250)
    return loc.first


def _grid_point(pg, ref: str):  # type: ignore[no-untyped-def]
    """(frame, the grid's container point with its selection state), tolerating a map frame that
    Streamlit swaps during a rerun."""
    try:
        frame, key = _draft_map(pg)
        return frame, next((p for p in frame.evaluate(GRID_POINTS, key) if p["r"] == ref), None)
    except Exception:
        return None, None


def _select(pg, ref: str) -> bool:  # type: ignore[no-untyped-def]
    """Click grid ``ref`` on the map until the page shows it selected."""
    for _ in range(4):
        frame, point = _grid_point(pg, ref)
        if point is not None and point["sel"]:
            return True
        if frame is None or point is None:
            pg.wait_for_timeout(500)
            continue
        box = frame.locator(".leaflet-container").bounding_box()
        if box:
            pg.mouse.click(box["x"] + point["x"], box["y"] + point["y"])
        for _ in range(24):
            pg.wait_for_timeout(250)
            frame, point = _grid_point(pg, ref)
            if point is not None and point["sel"]:
                return True
    return False


def _draft_map(pg):  # type: ignore[no-untyped-def]
    """The planning map's frame once its draft grids are drawn."""
    for _ in range(80):
        frame = _map_frame(pg)
        try:
            key = frame.evaluate(FIND_MAP)
            if frame.evaluate(GRID_POINTS, key):
                return frame, key
        except Exception:  # the map of the page's previous run, replaced as we looked (a slow machine)
            pass
        pg.wait_for_timeout(250)
    raise AssertionError("the draft's grids were not drawn")


def test_planner_splits_merges_undoes_and_publishes(planning_console, chromium_path: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    base_url, unit = planning_console
    session = _browser(base_url, chromium_path)
    pg, blocked, failed, _ = next(session)
    try:
        _plan(pg, base_url, unit, tmp_path)
        assert not blocked, f"requests to the internet: {blocked[:5]}"
        # Opening a page's URL directly, Streamlit's frontend first probes /<page>/_stcore/ as a base
        # path (404) before falling back to /_stcore/: not a failure of ours.
        failed = [f for f in failed if not re.search(r"/planning/_stcore/(health|host-config) HTTP 404$", f)]
        # A map iframe replaced by a rerun (after a publish the page swaps its maps) aborts the
        # local files it was still loading; a missing file would show as an HTTP 404 above.
        failed = [f for f in failed if not f.endswith("net::ERR_ABORTED")]
        assert not failed, f"failed requests: {failed[:5]}"
    finally:
        session.close()


def _plan(pg, base_url: str, unit: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pg.goto(f"{base_url}/planning?unit={unit}", wait_until="domcontentloaded")
    _button(pg, "从现行网格新建草稿").click()
    pg.get_by_text(re.compile("已新建草稿")).wait_for(timeout=30_000)
    frame, key = _draft_map(pg)
    grids_before = _wait_metric(pg, "基础网格", lambda v: v > 0)
    households = _metric(pg, "户数")
    assert _poll(pg, frame, COUNT_LABELS, None, ok=lambda n: n >= grids_before) >= grids_before

    # Split: choose the tool, draw a line across the fullest grid, finish it.
    pg.get_by_text("画线拆分", exact=True).click()
    pg.get_by_text(re.compile("用左上角的画线工具")).wait_for(timeout=15_000)
    frame, key = _draft_map(pg)
    line = frame.evaluate(SPLIT_LINE, key)
    assert line is not None
    box = frame.locator(".leaflet-container").bounding_box()
    assert box
    frame.locator(".leaflet-draw-draw-polyline").click()
    pg.mouse.click(box["x"] + line["x"] + 3, box["y"] + line["top"])
    pg.wait_for_timeout(300)
    pg.mouse.click(box["x"] + line["x"], box["y"] + line["bottom"])
    pg.wait_for_timeout(300)
    frame.locator(".leaflet-draw-actions a", has_text=re.compile("Finish|完成")).first.click()
    pg.get_by_text(re.compile("已拆分")).wait_for(timeout=30_000)
    grids_after = _wait_metric(pg, "基础网格", lambda v: v == grids_before + 1)
    assert grids_after == grids_before + 1
    assert _metric(pg, "户数") == households  # households move between grids, none are lost
    frame, key = _draft_map(pg)
    points = frame.evaluate(GRID_POINTS, key)
    new_refs = [p for p in points if str(p["r"]).startswith("+")]
    assert len(new_refs) == 2, points

    # Undo brings the grid back, redo splits it again.
    _button(pg, "撤销").click()
    assert _wait_metric(pg, "基础网格", lambda v: v == grids_before) == grids_before
    _button(pg, "重做").click()
    assert _wait_metric(pg, "基础网格", lambda v: v == grids_before + 1) == grids_before + 1

    # Select the two new pieces on the map and merge them.
    pg.get_by_text("选择网格", exact=True).click()
    pg.wait_for_timeout(1000)
    for ref in [p["r"] for p in new_refs]:
        assert _select(pg, ref), f"grid {ref} could not be selected by clicking it"
    _button(pg, re.compile(r"合并所选（2）")).click()
    assert _wait_metric(pg, "基础网格", lambda v: v == grids_before) == grids_before
    # ...and split again to have something to publish.
    _button(pg, "撤销").click()
    assert _wait_metric(pg, "基础网格", lambda v: v == grids_before + 1) == grids_before + 1

    # Publish (with a reason when the validator warns).
    reason = pg.get_by_label("接受警告的理由")
    for _ in range(80):
        if reason.count() == 1:
            break
        pg.wait_for_timeout(250)
    if reason.is_enabled():
        reason.fill("拆分后待新楼入住，户数暂不足")
    _button(pg, "发布").click()
    pg.get_by_text(re.compile("已发布第 2 版")).wait_for(timeout=30_000)
    pg.screenshot(path=str(tmp_path / "planning.png"), full_page=True)
