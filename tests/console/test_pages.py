"""Every page of the console runs against the small demo city without an exception (AppTest)."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.fixtures.users import signed_in_state

APP = str(Path(__file__).resolve().parents[2] / "console" / "app.py")
PAGES = {
    "overview": "网格地图",
    "bigscreen": "指挥大屏",
    "dispatch": "事件派遣",
    "planning": "网格规划",
    "cases": "事件管理",
    "staff": "网格力量",
    "cameras": "视频监控",
    "settings": "系统设置",
}


@pytest.fixture
def app(small_demo_url: str, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setenv("DATABASE_URL", small_demo_url)
    at = AppTest.from_file(APP, default_timeout=60)
    at.session_state["_auth"] = signed_in_state(small_demo_url, "admin")
    return at


@pytest.mark.parametrize("page", sorted(PAGES))
def test_page_renders_in_chinese(app: AppTest, page: str) -> None:
    app.run()
    if page != "overview":
        app.switch_page(f"views/{page}.py")
        app.run()
    assert not app.exception, app.exception
    if page == "bigscreen":  # full screen: its own dark header instead of a Streamlit title
        assert any(PAGES[page] in str(m.value) for m in app.markdown)
    else:
        assert [t.value for t in app.title] == [PAGES[page]]


def test_map_page_shows_city_figures(app: AppTest) -> None:
    app.run()
    assert not app.exception
    metrics = {m.label: m.value for m in app.metric}
    assert int(metrics["网格数"].replace(",", "")) > 20
    assert int(metrics["户数"].replace(",", "")) > 2000
    share = float(metrics["户数达标率"].rstrip("%"))
    assert share >= 95.0


def test_english_on_request(app: AppTest) -> None:
    app.query_params["lang"] = "en"
    app.run()
    assert not app.exception
    assert [t.value for t in app.title] == ["Grid map"]
    assert "Grids" in {m.label for m in app.metric}


def test_settings_rejects_a_hostile_tile_url(app: AppTest) -> None:
    app.run()
    app.switch_page("views/settings.py")
    app.run()
    app.radio[0].set_value("xyz")
    app.text_input[0].input("javascript:alert(1)//{z}/{x}/{y}")
    app.button[0].click()
    app.run()
    assert app.error, "a bad tile URL must be refused"


def test_map_view_from_query_parameters() -> None:
    from console.mapui import view_from_query

    default = ((42.0, 123.0), 11)
    assert view_from_query({"lat": "42.3", "lon": "123.84", "z": "16"}, default=default) == ((42.3, 123.84), 16)
    for bad in ({}, {"lat": "x", "lon": "1", "z": "3"}, {"lat": "91", "lon": "1", "z": "5"}, {"lat": "1", "lon": "1", "z": "99"}):
        assert view_from_query(bad, default=default) == default
