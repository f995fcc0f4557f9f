"""Signing in to the console in a real browser: the form, a reload that keeps the session, signing
out, a disabled user thrown out, the big screen's kiosk link (headless Chromium, no internet)."""

from __future__ import annotations

import re

import pytest

from services import auth
from store import open_store
from tests.browser.test_map import _browser
from tests.fixtures.demo_db import CONSOLE_DBS
from tests.fixtures.users import TEST_PASSWORD, ensure_user

pytestmark = pytest.mark.browser


def _db(console_url: str) -> str:
    return CONSOLE_DBS[console_url.rstrip("/")]


def _sign_in(pg, username: str, password: str) -> None:  # type: ignore[no-untyped-def]
    pg.get_by_label("用户名").fill(username)
    pg.get_by_label("密码").fill(password)
    pg.get_by_role("button", name="登录").click()


def test_sign_in_reload_and_sign_out(console_url: str, chromium_path: str) -> None:
    store = open_store(_db(console_url))
    name = ensure_user(store, "dispatcher", username="browser-dispatcher")
    store.close()
    for pg, blocked, _failed, base in _browser(console_url, chromium_path, role=None):
        pg.goto(f"{base}/dispatch")
        pg.get_by_role("button", name="登录").wait_for(timeout=60_000)
        assert pg.get_by_text("事件派遣").count() == 0  # nothing of the console before sign-in
        _sign_in(pg, name, "wrong-password-123")
        pg.get_by_text("用户名或密码错误").wait_for(timeout=30_000)
        _sign_in(pg, name, TEST_PASSWORD)
        pg.get_by_text("browser-dispatcher", exact=False).first.wait_for(timeout=60_000)
        # the dispatcher's pages are in the navigation; the administrator's are not
        nav = pg.locator('[data-testid="stSidebarNav"]')
        nav.get_by_text("事件派遣").wait_for(timeout=90_000)
        assert nav.get_by_text("用户与审计").count() == 0 and nav.get_by_text("系统设置").count() == 0
        # a reload (a new Streamlit session) keeps the sign-in: the session cookie
        pg.reload()
        nav.get_by_text("事件派遣").wait_for(timeout=90_000)
        assert pg.get_by_role("button", name="登录").count() == 0
        cookie = next(c for c in pg.context.cookies() if c["name"] == "gridconsole_session")
        assert cookie["sameSite"] == "Strict"
        pg.get_by_role("button", name="退出登录").click()
        pg.get_by_role("button", name="登录").wait_for(timeout=30_000)
        for _ in range(300):  # the page deletes the cookie once it is drawn
            if not [c for c in pg.context.cookies() if c["name"] == "gridconsole_session" and c["value"]]:
                break
            pg.wait_for_timeout(100)
        pg.reload()
        pg.get_by_role("button", name="登录").wait_for(timeout=60_000)
        assert not [c for c in pg.context.cookies() if c["name"] == "gridconsole_session" and c["value"]]
        # the session is gone on the server too: the old token no longer opens anything
        store = open_store(_db(console_url))
        assert auth.session_principal(store, cookie["value"]) is None
        store.close()
        assert not blocked


def test_a_disabled_user_is_signed_out_everywhere(console_url: str, chromium_path: str) -> None:
    store = open_store(_db(console_url))
    name = ensure_user(store, "planner", username="browser-planner")
    store.close()
    for pg, _blocked, _failed, base in _browser(console_url, chromium_path, role=None):
        pg.goto(f"{base}/map")
        _sign_in(pg, name, TEST_PASSWORD)
        pg.locator('[data-testid="stSidebarNav"]').get_by_text("网格规划").wait_for(timeout=60_000)
        store = open_store(_db(console_url))
        auth.set_active(store, auth.Principal("tests", "admin", "211200", kind="token"), username=name, active=False)
        store.close()
        pg.reload()  # the next page load checks the session again
        pg.get_by_role("button", name="登录").wait_for(timeout=60_000)


def test_the_big_screen_kiosk_link(console_url: str, chromium_path: str) -> None:
    store = open_store(_db(console_url))
    token = auth.create_api_token(store, auth.Principal("tests", "admin", "211200", kind="token"),
                                  name="browser-wall", role="viewer", unit_code="211200")  # fmt: skip
    store.close()
    for pg, blocked, _failed, base in _browser(console_url, chromium_path, role=None, viewport=(1920, 1080)):
        pg.goto(f"{base}/bigscreen?kiosk={token}")
        pg.get_by_text(re.compile("指挥")).first.wait_for(timeout=90_000)
        assert pg.get_by_role("button", name="登录").count() == 0
        assert pg.get_by_role("button", name="退出登录").count() == 0
        # the kiosk opens the big screen and nothing else
        pg.goto(f"{base}/dispatch?kiosk={token}")
        pg.wait_for_timeout(3000)
        assert pg.locator('[data-testid="stSidebarNav"]').get_by_text("事件派遣").count() == 0
        assert not blocked


def test_an_export_is_audited_with_who_downloaded_it(console_url: str, chromium_path: str) -> None:
    """The case list's CSV: the file arrives in the browser and the audit log names the user."""
    db = _db(console_url)
    store = open_store(db)
    last = store.read("audit_log", columns=["id"], order_by=["-id"], limit=1, geometry=False)
    before = int(last["id"].iloc[0]) if len(last) else 0
    store.close()
    for pg, blocked, _failed, base in _browser(console_url, chromium_path, role="dispatcher"):
        pg.goto(f"{base}/cases")
        button = pg.get_by_role("button", name="下载CSV")
        button.wait_for(timeout=90_000)
        with pg.expect_download(timeout=30_000) as got:
            button.click()
        assert got.value.suggested_filename == "cases.csv"
        for _ in range(50):
            store = open_store(db)
            rows = store.read("audit_log", where={"action": "export.cases"}, geometry=False)
            store.close()
            rows = rows[rows["id"] > before]
            if len(rows):
                break
            pg.wait_for_timeout(200)
        assert len(rows) == 1, "the export was not audited"
        assert rows["actor"].iloc[0] == "test-dispatcher-211200" and rows["client"].iloc[0]
        assert not blocked
