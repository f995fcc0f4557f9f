"""The big screen's non-Streamlit pieces: URL options, headline cards and ticker HTML (escaped), the
dark charts."""

from __future__ import annotations

import json

import pandas as pd

from console import bigscreenui as ui
from console.i18n import labels
from services.bigscreen import Kpis

L = labels(("big.",), "zh")
HOSTILE = "<script>window.__xss=1</script><img src=x onerror=alert(1)>"


def _kpis(**kw: object) -> Kpis:
    base = dict(as_of="2026-11-18T02:00:00+00:00", county=None, cases_today=1234, open=567, overdue=0, reported_30d=9000,
                closed_30d=8100, closed_rate=0.9, rated_30d=100, satisfaction=4.56, satisfied_share=0.95,
                staff_online=11000, staff_on_duty=15000, staff_total=15092, cameras_online=4034, cameras_total=4205)  # fmt: skip
    base.update(kw)
    return Kpis(**base)  # type: ignore[arg-type]


def test_options_from_the_url() -> None:
    assert ui.options({}) == ui.Options(10, 0, None)
    assert ui.options({"refresh": "3", "tour": "30", "district": "211202"}) == ui.Options(3, 30, "211202")
    assert ui.options({"refresh": "0"}).refresh_s == ui.MIN_REFRESH_S
    assert ui.options({"refresh": "x"}).refresh_s == ui.DEFAULT_REFRESH_S
    assert ui.options({"refresh": "20", "tour": "5"}).tour_s == 20  # never faster than the refresh
    assert ui.options({"district": "<b>"}).district is None


def test_headline_cards() -> None:
    out = ui.kpi_html(_kpis(), L)
    assert out.count('class="gc-kpi ') == 8
    assert 'data-kpi="cases_today">1,234<' in out and 'data-kpi="closed_rate">90.0%<' in out
    assert "11,000<small> / 15,000</small>" in out and "4,034<small> / 4,205</small>" in out
    assert 'gc-kpi good"><div class="v" data-kpi="overdue">0<' in out
    assert 'gc-kpi alert"' in ui.kpi_html(_kpis(overdue=3), L)
    assert 'data-kpi="satisfaction">—' in ui.kpi_html(_kpis(satisfaction=None, satisfied_share=None), L)
    assert ui.header_html(HOSTILE, HOSTILE, "10:00").count("&lt;script&gt;") == 2


def test_ticker_escapes_every_text() -> None:
    rows = pd.DataFrame(
        {
            "kind": ["new", "escalated"],
            "ts": [pd.Timestamp("2026-11-18 01:58", tz="UTC"), pd.Timestamp("2026-11-18 01:30", tz="UTC")],
            "case_id": [9, 2],
            "category": [HOSTILE, "暴露垃圾"],
            "place": [None, HOSTILE],
            "level": [0, 1],
            "text": [HOSTILE, "路口垃圾"],
        }
    )
    out = ui.ticker_html(rows, L, tz="Asia/Shanghai")
    assert "<script>" not in out and "<img" not in out and out.count("&lt;script&gt;") == 3
    assert out.index("#9") < out.index("#2") and "09:58" in out and 'tag escalated' in out
    assert L["big.ticker.none"] in ui.ticker_html(rows.iloc[:0], L, tz="Asia/Shanghai")


def test_dark_charts() -> None:
    daily = pd.DataFrame({"day": pd.date_range("2026-10-20", periods=30).date, "n": range(30)})
    spec = ui.daily_chart(daily, title="近7天", days=7).to_dict()
    values = next(iter(spec["datasets"].values()))
    assert len(values) == 7 and values[-1]["today"] is True and spec["background"] == ui.PANEL
    bars = ui.bar_chart(pd.DataFrame({"name": [HOSTILE], "n": [3]}), label="name", value="n", title="t").to_dict()
    assert json.dumps(bars).count("script") >= 1  # the data travels as data: Vega draws it as text
    assert bars["config"]["axis"]["labelColor"] == ui.TEXT
