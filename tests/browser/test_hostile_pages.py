"""Hostile text on every page: markup and script planted in every text field that reaches a map,
a table, a chart or a caption (unit, grid, worker, case, camera, category, user and audit text)
must be shown as text on every page of the console, never run (headless Chromium, no internet).

The payloads set ``window.__xss`` (in the page or in any frame: the maps live in iframes) or open
a dialog when they run; the test opens each page as an administrator, lets it draw, clicks the
tabs that list the planted rows, and checks neither happened.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest

from services import auth
from store import open_store
from tests.browser.test_map import _browser
from tests.fixtures.demo_db import copy_demo, run_console

pytestmark = pytest.mark.browser

PAYLOADS = [
    '<img src=x onerror="window.__xss=1">',
    "<script>window.__xss=2</script>",
    '"><svg onload="window.__xss=3">',
    "[click](javascript:window.__xss=4)",
    "<iframe srcdoc=\"<script>parent.__xss=5</script>\"></iframe>",
    "'); window.__xss=6; ('",
    "{{7*7}} ${window.__xss=7} </textarea><script>window.__xss=8</script>",
    "<style>*{display:none}</style><b onmouseover=window.__xss=9>hover</b>",
]
XSS = "() => window.__xss === undefined ? null : String(window.__xss)"


@pytest.fixture(scope="module")
def hostile_city(small_demo_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A console on a copy of the small demo with a payload in every kind of shown text."""
    folder = Path(tmp_path_factory.mktemp("hostile_pages"))
    url = copy_demo(small_demo_url, folder / "hostile.sqlite")
    store = open_store(url)
    p = itertools.cycle(PAYLOADS)
    for level in ("township", "village"):
        for code in store.read("admin_units", where={"level": level}, columns=["code"], geometry=False)["code"][:2]:
            store.update("admin_units", {"code": code}, {"name": next(p)})
    for code in store.read("grids", columns=["code"], order_by=["code"], limit=3, geometry=False)["code"]:
        store.update("grids", {"code": code}, {"name": next(p)})
    for sid in store.read("staff", columns=["id"], order_by=["id"], limit=40, geometry=False)["id"]:
        store.update("staff", {"id": int(sid)}, {"name": next(p)})
    open_ = store.read("cases", where={"state": ["reported", "dispatched", "filed"]}, columns=["id"], limit=30, geometry=False)
    for cid in open_["id"]:
        store.update("cases", {"id": int(cid)}, {"description": next(p), "address": next(p), "reporter_name": next(p)})
    for cam in store.read("cameras", columns=["id"], limit=10, geometry=False)["id"]:
        store.update("cameras", {"id": cam}, {"name": next(p)})
    cat = store.read("case_categories", columns=["code"], limit=1, geometry=False)["code"].iloc[0]
    store.update("case_categories", {"code": cat}, {"name_zh": next(p)})
    admin = auth.Principal("tests", "admin", "211200", kind="token")
    auth.create_user(store, admin, username="hostile.user", role="viewer", unit_code="211200",
                     password="a-long-password-1", display_name=next(p))  # fmt: skip
    auth.audit(store, "hostile.user", "note", detail=next(p), target=next(p))
    store.close()
    yield from run_console(url, log=folder / "streamlit.log")


def _no_script_ran(pg, dialogs: list[str], where: str) -> None:  # type: ignore[no-untyped-def]
    assert not dialogs, f"{where}: a dialog opened: {dialogs}"
    for f in pg.frames:
        try:
            v = f.evaluate(XSS)
        except Exception:  # a frame that went away while we looked
            continue
        assert v is None, f"{where}: hostile text ran in {f.url}: window.__xss = {v!r}"


@pytest.mark.parametrize(
    ("path", "tabs"),
    [
        ("map", []),
        ("bigscreen", []),
        ("dispatch", ["批量与高峰派单", "同类事件批量处置"]),
        ("cases", ["督办升级", "12345导入"]),
        ("staff", ["轨迹回放", "巡查覆盖", "考核统计"]),
        ("cameras", ["覆盖与盲区"]),
        ("planning", ["版本与对比", "多网合一"]),
        ("users", ["接口令牌", "审计日志"]),
        ("settings", []),
    ],
)
def test_hostile_text_is_shown_never_run(hostile_city: str, chromium_path: str, path: str, tabs: list[str]) -> None:
    dialogs: list[str] = []
    for pg, blocked, _failed, base in _browser(hostile_city, chromium_path):
        pg.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        pg.goto(f"{base}/{path}")
        pg.locator('[data-testid="stApp"][data-test-script-state="notRunning"]').wait_for(timeout=90_000)
        pg.wait_for_timeout(2500)  # maps and components draw after the script ends
        _no_script_ran(pg, dialogs, path)
        for name in tabs:
            tab = pg.get_by_role("tab", name=name)
            if tab.count():
                tab.first.click()
                pg.wait_for_timeout(1500)
        if path == "users":
            button = pg.get_by_role("button", name="查询")
            if button.count():
                button.first.click()
                pg.get_by_text("hostile.user").first.wait_for(state="attached", timeout=30_000)
        pg.mouse.move(400, 400)
        pg.wait_for_timeout(1000)
        _no_script_ran(pg, dialogs, f"{path} after its tabs")
        assert pg.locator('[data-testid="stException"]').count() == 0, f"{path}: a traceback on the page"
        assert not blocked
