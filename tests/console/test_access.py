"""Who may open which console page, and what they see there (AppTest on a copy of the small demo).

Every page is opened by every role: a role that may not open it never sees its content; a role
that may sees it without an exception. Jurisdiction, redaction of residents' details, the audit
of changes and exports, and sign-in itself are checked here; clicks inside maps are in
tests/browser/test_access.py.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from console.app import PAGE_TABLE
from console.casesui import md
from services import auth
from services import cases as cs
from store import open_store
from tests.fixtures.apptest import APP, open_page
from tests.fixtures.demo_db import copy_demo
from tests.fixtures.users import TEST_PASSWORD, ensure_user, signed_in_state

TITLES = {
    "overview": "网格地图", "bigscreen": "指挥大屏", "dispatch": "事件派遣", "planning": "网格规划",
    "cases": "事件管理", "staff": "网格力量", "cameras": "视频监控", "users": "用户与审计", "settings": "系统设置",
}  # fmt: skip
ACTION = {f.removesuffix(".py"): action for f, _url, _icon, action in PAGE_TABLE}


@pytest.fixture(scope="module")
def db(small_demo_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    return copy_demo(small_demo_url, Path(tmp_path_factory.mktemp("access")) / "access.sqlite")


def _shows_page(at: AppTest, page: str) -> bool:
    if page == "bigscreen":
        return any(TITLES[page] in str(m.value) for m in at.markdown)
    return TITLES[page] in [t.value for t in at.title]


def test_every_page_is_in_the_table() -> None:
    views = {p.stem for p in (Path(APP).parent / "views").glob("*.py")}
    assert views == set(ACTION) == set(TITLES)


@pytest.mark.parametrize("role", auth.ROLES)
@pytest.mark.parametrize("page", sorted(TITLES))
def test_each_role_opens_only_its_pages(db: str, page: str, role: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if role == "grid_worker" and page == "cases":
        pytest.skip("covered by test_grid_worker_cannot_assign")  # same as department, keeps the matrix quick
    monkeypatch.setenv("DATABASE_URL", db)
    at = AppTest.from_file(APP, default_timeout=120)
    at.session_state["_auth"] = signed_in_state(db, role)
    at.run()
    assert not at.exception, at.exception
    allowed = auth.Principal("x", role, "211200").can(ACTION[page])
    if not allowed:
        # the page is not in the navigation: asking for it lands elsewhere, never on its content
        try:
            at.switch_page(f"views/{page}.py")
            at.run()
        except ValueError as exc:  # Streamlit refuses a page that is not registered for this session
            assert "Could not find a navigation page" in str(exc), exc
            return
        assert not _shows_page(at, page), f"{role} reached {page}"
        return
    at.switch_page(f"views/{page}.py")
    at.run()
    assert not at.exception, at.exception
    assert _shows_page(at, page)


def test_nobody_signed_in_sees_only_the_sign_in_form(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", db)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    assert not at.exception, at.exception
    assert [s.value for s in at.subheader] == ["登录"]
    assert not at.metric and not at.dataframe  # nothing of the city leaks before sign-in


def test_sign_in_with_a_password_then_out(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(db)
    name = ensure_user(store, "dispatcher")
    store.close()
    monkeypatch.setenv("DATABASE_URL", db)
    at = AppTest.from_file(APP, default_timeout=60)
    at.run()
    at.text_input(key="signin_user").input(name)
    at.text_input(key="signin_pw").input("not-the-password")
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert any("用户名或密码错误" in e.value for e in at.error)
    at.text_input(key="signin_pw").input(TEST_PASSWORD)
    at.button[0].click().run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["网格地图"]  # the first page a dispatcher may open
    assert any(md(name) in c.value for c in at.sidebar.caption)  # markdown-escaped as shown
    next(b for b in at.sidebar.button if b.label == "退出登录").click().run()
    assert [s.value for s in at.subheader] == ["登录"]
    store = open_store(db)
    log = store.read("audit_log", where={"actor": name}, geometry=False)
    store.close()
    assert {"signin.failed", "signin", "signout"} <= set(log["action"])


def _cases_outside_and_inside(db: str, township: str) -> tuple[int, int]:
    store = open_store(db)
    try:
        rows = store.read("cases", columns=["id", "township_code", "reporter_name"], geometry=False)
    finally:
        store.close()
    inside = rows[rows["township_code"] == township]
    outside = rows[rows["township_code"].notna() & (rows["township_code"] != township)]
    return int(inside["id"].iloc[0]), int(outside["id"].iloc[0])


def test_a_street_dispatcher_sees_only_their_street(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(db)
    towns = sorted(store.read("admin_units", where={"level": "township"}, geometry=False)["code"])
    store.close()
    mine = towns[0]
    _inside, outside = _cases_outside_and_inside(db, mine)
    at = open_page(db, "cases", monkeypatch, role="dispatcher", unit_code=mine,
                   cases_range=(pd.Timestamp("2000-01-01").date(), pd.Timestamp.now().date()))  # fmt: skip
    listing = at.dataframe[0].value
    assert len(listing)
    store = open_store(db)
    shown = store.read("cases", where={"id": [int(i) for i in listing["id"]]}, columns=["id", "township_code"], geometry=False)
    store.close()
    assert set(shown["township_code"]) == {mine}, "a case from another street is listed"
    # asking for the other street's case by number finds nothing, as if it did not exist
    at.number_input(key="cases_id").set_value(outside).run()
    assert not at.exception, at.exception
    assert not at.dataframe or outside not in set(at.dataframe[0].value["id"])
    at.session_state["cases_sel"] = outside
    at.run()
    assert not any(f"#{outside}" in s.value for s in at.subheader)


def test_reporters_are_hidden_from_roles_without_personal_access(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(db)
    made = cs.create_case(store, cs.NewCase(category=str(cs.categories(store)["code"].iloc[0]),
                                            lon=float(store.read("grids", limit=1).geometry.iloc[0].representative_point().x),
                                            lat=float(store.read("grids", limit=1).geometry.iloc[0].representative_point().y),
                                            source="walk_in", reporter_name="张三", reporter_phone="13800000000",
                                            description="路灯不亮", actor="tests"), dedupe=False)  # fmt: skip
    store.close()
    seen = {}
    for role in ("dispatcher", "department"):
        at = open_page(db, "cases", monkeypatch, role=role, cases_sel=made.case_id)
        text = " ".join(str(d.value.to_dict()) for d in at.dataframe)
        seen[role] = "13800000000" in text
    assert seen == {"dispatcher": True, "department": False}


def test_grid_worker_cannot_assign_or_take_back(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(db)
    case = store.read("cases", where={"state": "dispatched"}, columns=["id"], limit=1, geometry=False)
    store.close()
    if not len(case):
        pytest.skip("no dispatched case in the demo")
    cid = int(case["id"].iloc[0])
    at = open_page(db, "cases", monkeypatch, role="grid_worker", cases_sel=cid)
    labels = {b.label for b in at.button}
    assert "接单" in labels  # the worker's own step
    assert not labels & {"撤回派遣", "升级督办", "吹哨"}  # a dispatcher's calls
    at = open_page(db, "cases", monkeypatch, role="dispatcher", cases_sel=cid)
    assert {"撤回派遣", "升级督办", "吹哨"} <= {b.label for b in at.button}


def test_changes_and_exports_are_audited_with_the_user(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(db, "cases", monkeypatch, role="dispatcher")
    before = _audit(db)
    at.text_area[0].input("井盖缺失，审计测试")
    next(b for b in at.button if b.label == "创建事件").click().run()
    assert not at.exception, at.exception
    after = _audit(db)
    new = after[after["id"] > before["id"].max()]
    row = new[new["action"] == "case.create"]
    assert len(row) == 1
    assert row["actor"].iloc[0] == "test-dispatcher-211200" and row["role"].iloc[0] == "dispatcher"
    # the audit log cannot be edited, by anyone
    store = open_store(db)
    try:
        with pytest.raises(Exception):  # noqa: B017 - the store's own refusal, whichever class it is
            store.update("audit_log", {"id": int(row["id"].iloc[0])}, {"actor": "someone else"})
        with pytest.raises(Exception):  # noqa: B017
            store.delete("audit_log", {"id": int(row["id"].iloc[0])})
    finally:
        store.close()


def _audit(db: str) -> pd.DataFrame:
    store = open_store(db)
    try:
        return store.read("audit_log", order_by=["id"], geometry=False)
    finally:
        store.close()


def test_admin_manages_users_and_reads_the_audit_log(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    at = open_page(db, "users", monkeypatch, role="admin")
    listed = at.dataframe[0].value
    assert "password_hash" not in " ".join(map(str, listed.columns))
    at.text_input[0].input("new.planner")
    at.selectbox[0].set_value("planner")
    pw = [ti for ti in at.text_input if ti.label in ("密码", "再次输入密码")]
    pw[0].input("a-long-password-1")
    pw[1].input("a-long-password-1")
    next(b for b in at.button if b.label == "新建用户").click().run()
    assert not at.exception, at.exception
    assert any("new.planner" in s.value for s in at.success)
    store = open_store(db)
    users = store.read("users", where={"username": "new.planner"}, geometry=False)
    store.close()
    assert users["role"].iloc[0] == "planner" and users["password_hash"].iloc[0].startswith("scrypt$")
    next(b for b in at.button if b.label == "查询").click().run()
    log = at.dataframe[-1].value
    assert "user.create" in set(log["action"])


def test_kiosk_token_opens_the_big_screen_only(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store = open_store(db)
    admin = auth.Principal("tests", "admin", "211200", kind="token")
    viewer = auth.create_api_token(store, admin, name="wall-1", role="viewer", unit_code="211200")
    dispatcher = auth.create_api_token(store, admin, name="not-a-wall", role="dispatcher", unit_code="211200")
    store.close()
    monkeypatch.setenv("DATABASE_URL", db)
    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["kiosk"] = viewer
    at.run()
    assert not at.exception, at.exception
    assert _shows_page(at, "bigscreen")
    assert not [b for b in at.sidebar.button if b.label == "退出登录"]
    at = AppTest.from_file(APP, default_timeout=60)
    at.query_params["kiosk"] = dispatcher  # only viewer tokens open a kiosk
    at.run()
    assert [s.value for s in at.subheader] == ["登录"]


@pytest.mark.parametrize("page", ["settings", "users", "dispatch", "planning"])
def test_a_page_run_directly_still_checks_the_role(db: str, page: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Defence in depth: a page script refuses a role that may not open it even when it is run
    without the navigation (each page calls console.access.require first)."""
    monkeypatch.setenv("DATABASE_URL", db)
    at = AppTest.from_file(str(Path(APP).parent / "views" / f"{page}.py"), default_timeout=60)
    at.session_state["_auth"] = signed_in_state(db, "viewer")
    at.run()
    assert any("无权" in e.value for e in at.error)
    assert not _shows_page(at, page)
    at = AppTest.from_file(str(Path(APP).parent / "views" / f"{page}.py"), default_timeout=60)
    at.run()  # nobody signed in
    assert any("无权" in e.value for e in at.error)


def test_admin_sets_the_track_retention_and_it_is_audited(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from services import settings

    at = open_page(db, "settings", monkeypatch, role="admin")
    box = next(n for n in at.number_input if n.label == "保留天数")
    box.set_value(30)
    form_save = [b for b in at.button if b.label == "保存"]
    form_save[-1].click().run()
    assert not at.exception, at.exception
    store = open_store(db)
    try:
        assert settings.retention_days(store) == 30
        log = store.read("audit_log", where={"action": "settings.retention"}, geometry=False)
    finally:
        store.close()
    assert log["actor"].iloc[-1] == "test-admin-211200" and log["detail"].iloc[-1].endswith("-> 30 days")
