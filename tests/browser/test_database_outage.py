"""The console with its PostGIS database stopped and started (a private server, so no other test is
touched): every page says plainly that the database is unavailable instead of showing a stack
trace, and once the database is back the page recovers by itself, with nobody clicking."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from demo import SIZES, generate, load_demo
from store import open_store
from tests.browser.test_map import _browser
from tests.fixtures.demo_db import run_console
from tests.fixtures.pg_cluster import private_cluster

pytestmark = [pytest.mark.browser, pytest.mark.postgis]

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
BANNER = "数据库暂时不可用"


def test_console_says_the_database_is_down_and_recovers_by_itself(chromium_path: str, tmp_path) -> None:  # type: ignore[no-untyped-def]
    with private_cluster() as pg:
        store = open_store(pg.url)
        try:
            load_demo(store, generate(SIZES["small"], seed=11, now=NOW))
        finally:
            store.close()
        for base in run_console(pg.url, log=tmp_path / "streamlit.log"):
            for page, _blocked, _failed, _ in _browser(base, chromium_path):
                page.goto(f"{base}/cases", wait_until="domcontentloaded")
                page.get_by_role("heading", name="事件管理").first.wait_for(state="visible", timeout=60_000)
                pg.stop("fast")
                # the next thing a person does reads the database: a banner, no traceback
                page.goto(f"{base}/dispatch", wait_until="domcontentloaded")
                page.get_by_text(BANNER).first.wait_for(state="visible", timeout=60_000)
                assert page.locator("[data-testid='stException']").count() == 0
                pg.start()
                # nobody touches the page: it notices the database is back and shows itself again
                page.get_by_role("heading", name="事件派遣").first.wait_for(state="visible", timeout=60_000)
                page.wait_for_function(f"() => !document.body.innerText.includes({BANNER!r})", timeout=30_000)
                assert page.locator("[data-testid='stException']").count() == 0
