"""The dispatch and cases pages driven through their widgets (AppTest): what the map click leads to
(a selected case's panel, its candidates and buttons), bulk and surge assignment, the time-limit
table, the escalation button. Clicks inside the map itself are tested in the browser."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from services import cases as cs
from store import open_store
from tests.fixtures.apptest import APP, open_page
from tests.fixtures.demo_db import copy_demo
from tests.fixtures.users import signed_in_state


@pytest.fixture
def db(small_demo_url: str, tmp_path: Path) -> str:
    """A copy of the small demo whose staff positions are fresh (the pages use the real clock)."""
    url = copy_demo(small_demo_url, tmp_path / "cases.sqlite")
    store = open_store(url)
    try:
        latest = store.read("latest_positions")
        store.write("latest_positions", latest.assign(ts=pd.Timestamp.now(tz="UTC")), mode="upsert")
    finally:
        store.close()
    return url




def _unassigned(db: str) -> int:
    store = open_store(db)
    try:
        return int(cs.open_cases(store, states=("reported", "filed"))["id"].iloc[0])
    finally:
        store.close()


def _case(db: str, cid: int) -> dict[str, Any]:
    store = open_store(db)
    try:
        return cs.get_case(store, cid)
    finally:
        store.close()


def _dispatched(db: str) -> int:
    store = open_store(db)
    try:
        return store.count("cases", where={"state": "dispatched"})
    finally:
        store.close()


def test_a_selected_case_shows_candidates_and_one_click_assigns(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cid = _unassigned(db)
    at = open_page(db, "dispatch", monkeypatch, dispatch_case=cid)
    assert any(f"#{cid}" in h.value for h in at.subheader)
    buttons = [b for b in at.button if b.label == "派单"]
    assert buttons, "no candidate to assign"
    buttons[0].click().run()
    assert not at.exception, at.exception
    case = _case(db, cid)
    assert case["state"] == "dispatched" and case["assignee_id"] is not None
    assert any("已办理" in s.value for s in at.success)
    assert [b for b in at.button if b.label == "改派"]  # now offered as a reassignment


def test_loop_actions_from_the_panel(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cid = _unassigned(db)
    at = open_page(db, "dispatch", monkeypatch, dispatch_case=cid)
    next(b for b in at.button if b.label == "派单").click().run()
    for label in ("接单", "开始处置", "处置完成"):
        next(b for b in at.button if b.label == label).click().run()
        assert not at.exception, at.exception
    assert _case(db, cid)["state"] == "resolved"
    store = open_store(db)
    try:
        assert cs.timeline(store, cid)["action"].tolist()[-3:] == ["accept", "start", "resolve"]
    finally:
        store.close()


def test_surge_plan_is_proposed_then_confirmed(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(db, "dispatch", monkeypatch)
    before = _dispatched(db)
    next(b for b in at.button if b.label == "生成方案").click().run()
    assert not at.exception, at.exception
    confirm = [b for b in at.button if b.label.startswith("确认派单")]
    assert confirm
    assert _dispatched(db) == before  # a proposal: nothing assigned yet
    confirm[0].click().run()
    assert not at.exception, at.exception
    assert _dispatched(db) > before


def test_cases_page_shows_a_case_edits_limits_and_escalates(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    cid = _unassigned(db)
    at = open_page(db, "cases", monkeypatch, cases_sel=cid)
    assert any(f"#{cid}" in h.value for h in at.subheader)
    next(b for b in at.button if b.label == "立即检查升级").click().run()
    assert not at.exception, at.exception
    assert any("已升级" in s.value for s in at.success)
    next(b for b in at.button if b.label == "保存").click().run()  # unchanged table: saves nothing, says so
    assert not at.exception, at.exception


def test_english_dispatch_page(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", db)
    at = AppTest.from_file(APP, default_timeout=90)
    at.session_state["_auth"] = signed_in_state(db, "dispatcher")
    at.query_params["lang"] = "en"
    at.run()
    at.switch_page("views/dispatch.py")
    at.session_state["dispatch_case"] = _unassigned(db)
    at.run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Dispatch"]
    assert [b for b in at.button if b.label == "Assign"]
