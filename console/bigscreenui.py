"""Pieces of the big screen (``console/views/bigscreen.py``) that are not Streamlit calls: the
page's options from its URL, the dark full-screen stylesheet, the headline cards and the ticker
as HTML (every user text escaped), the dark Altair charts. Kept here so they can be tested
without a browser."""

from __future__ import annotations

import html
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import altair as alt
import pandas as pd

from services.bigscreen import Kpis

__all__ = [
    "CSS",
    "Options",
    "bar_chart",
    "daily_chart",
    "header_html",
    "kpi_html",
    "options",
    "ticker_html",
]

BG = "#0b1220"
PANEL = "#111c2e"
TEXT = "#e3f2fd"
MUTED = "#90a4ae"
ACCENT = "#4fc3f7"
ALERT = "#ff5252"
GOOD = "#69f0ae"
WARN = "#ffd740"

DEFAULT_REFRESH_S = 10
MIN_REFRESH_S = 2
MAX_REFRESH_S = 600


@dataclass(frozen=True)
class Options:
    refresh_s: int  # how often the figures, the map and the ticker refresh
    tour_s: int  # 0: no tour; else seconds per district
    district: str | None  # start on this district (6-digit code)


def _int_param(value: Any, default: int, lo: int, hi: int) -> int:
    try:
        v = int(str(value))
    except (TypeError, ValueError):
        return default
    return max(lo, min(hi, v))


def options(params: Mapping[str, Any]) -> Options:
    """``?refresh=10&tour=60&district=211202`` (all optional; bad values fall back to defaults)."""
    refresh = _int_param(params.get("refresh"), DEFAULT_REFRESH_S, MIN_REFRESH_S, MAX_REFRESH_S)
    tour = _int_param(params.get("tour"), 0, 0, 3600)
    if 0 < tour < refresh:
        tour = refresh
    d = str(params.get("district") or "")
    return Options(refresh, tour, d if len(d) == 6 and d.isdigit() else None)


# The whole page dark, Streamlit's chrome hidden, sized for 1920×1080 and doubled for 3840×2160.
CSS = f"""
<style>
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], header[data-testid="stHeader"],
[data-testid="stToolbar"], [data-testid="stDecoration"], [data-testid="stStatusWidget"], #MainMenu, footer
{{ display: none !important; }}
.stApp, [data-testid="stAppViewContainer"], [data-testid="stMain"] {{ background: {BG} !important; color: {TEXT}; }}
.stMainBlockContainer, .block-container {{ padding: 14px 16px 0 16px !important; max-width: 100% !important; }}
[data-testid="stVerticalBlock"] {{ gap: 8px; }}
.stApp p, .stApp span, .stApp label {{ color: {TEXT}; }}
.stApp .stButton button {{ background: {PANEL}; color: {TEXT}; border: 1px solid {ACCENT}; font-size: 18px; }}
@media (min-width: 2560px) {{ .stMainBlockContainer, .block-container {{ zoom: 2; }} }}
.gc-head {{ display: flex; align-items: center; justify-content: space-between; height: 52px; }}
.gc-head .gc-title {{ font: 700 32px/48px 'Noto Sans CJK SC', sans-serif; color: {TEXT}; letter-spacing: 2px; }}
.gc-head .gc-where {{ font: 500 24px/48px sans-serif; color: {ACCENT}; margin-left: 24px; }}
.gc-head .gc-clock {{ font: 600 26px/48px 'Noto Sans Mono', monospace; color: {TEXT}; }}
.gc-kpis {{ display: grid; grid-template-columns: repeat(8, 1fr); gap: 10px; }}
.gc-kpi {{ background: {PANEL}; border: 1px solid #1e3a5f; border-radius: 6px; padding: 8px 12px; }}
.gc-kpi .v {{ font: 700 40px/1.15 'Noto Sans Mono', monospace; color: {TEXT}; white-space: nowrap; }}
.gc-kpi .v small {{ font-size: 22px; color: {MUTED}; }}
.gc-kpi .k {{ font: 500 17px/1.3 sans-serif; color: {MUTED}; }}
.gc-kpi.alert .v {{ color: {ALERT}; }}
.gc-kpi.good .v {{ color: {GOOD}; }}
.gc-panel-title {{ font: 600 20px/1.4 sans-serif; color: {ACCENT}; margin: 2px 0 4px 0; }}
.gc-ticker {{ background: {PANEL}; border: 1px solid #1e3a5f; border-radius: 6px; height: 300px; overflow: hidden;
  position: relative; }}
.gc-ticker ul {{ list-style: none; margin: 0; padding: 6px 10px; }}
.gc-ticker li {{ font: 17px/1.55 sans-serif; color: {TEXT}; white-space: nowrap; overflow: hidden;
  text-overflow: ellipsis; border-bottom: 1px solid #1a2a40; }}
.gc-ticker li .t {{ color: {MUTED}; font-family: monospace; margin-right: 8px; }}
.gc-ticker li .tag {{ display: inline-block; min-width: 44px; text-align: center; border-radius: 3px; padding: 0 4px;
  margin-right: 8px; font-size: 14px; }}
.gc-ticker li .tag.new {{ background: #1565c0; }}
.gc-ticker li .tag.escalated {{ background: #c62828; }}
.gc-ticker .empty {{ color: {MUTED}; padding: 12px; font-size: 17px; }}
</style>
"""


def header_html(title: str, where: str, clock: str) -> str:
    return (
        f'<div class="gc-head"><div><span class="gc-title">{html.escape(title)}</span>'
        f'<span class="gc-where">{html.escape(where)}</span></div>'
        f'<div class="gc-clock" id="gc-clock">{html.escape(clock)}</div></div>'
    )


def _pct(v: float | None) -> str:
    return "—" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}%"


def kpi_html(k: Kpis, labels: Mapping[str, str]) -> str:
    """Eight cards: cases today, open, overdue, closed rate, satisfaction, staff online / on duty,
    cameras online / total. Each value carries ``data-kpi`` (its name in ``GET /api/kpis``)."""
    sat = "—" if k.satisfaction is None else f"{k.satisfaction:.2f}"
    cards = [
        ("cases_today", f"{k.cases_today:,}", "big.kpi.today", ""),
        ("open", f"{k.open:,}", "big.kpi.open", ""),
        ("overdue", f"{k.overdue:,}", "big.kpi.overdue", "alert" if k.overdue else "good"),
        ("closed_rate", _pct(k.closed_rate), "big.kpi.closed_rate", ""),
        ("satisfaction", f"{sat}<small> / 5 · {_pct(k.satisfied_share)}</small>", "big.kpi.satisfaction", ""),
        ("staff_online", f"{k.staff_online:,}<small> / {k.staff_on_duty:,}</small>", "big.kpi.staff", ""),
        ("cameras_online", f"{k.cameras_online:,}<small> / {k.cameras_total:,}</small>", "big.kpi.cameras", ""),
        ("reported_30d", f"{k.reported_30d:,}", "big.kpi.month", ""),
    ]
    out = ['<div class="gc-kpis">']
    for key, value, label, cls in cards:
        out.append(
            f'<div class="gc-kpi {cls}"><div class="v" data-kpi="{key}">{value}</div>'
            f'<div class="k">{html.escape(labels[label])}</div></div>'
        )
    out.append("</div>")
    return "".join(out)


def ticker_html(rows: pd.DataFrame, labels: Mapping[str, str], *, tz: str, limit: int = 9) -> str:
    """The newest ``limit`` new and escalated cases as a list; every text escaped."""
    if not len(rows):
        return f'<div class="gc-ticker"><div class="empty">{html.escape(labels["big.ticker.none"])}</div></div>'
    when = pd.to_datetime(rows["ts"], utc=True).dt.tz_convert(tz).dt.strftime("%H:%M")
    items = []
    for r, w in zip(rows.head(limit).to_dict("records"), when.head(limit), strict=True):
        kind = "escalated" if r["kind"] == "escalated" else "new"
        tag = labels["big.ticker.escalated"] if kind == "escalated" else labels["big.ticker.new"]
        place = "" if pd.isna(r["place"]) else f"{r['place']} · "
        cid = int(r["case_id"])
        items.append(
            f'<li data-case="{cid}"><span class="t">{html.escape(str(w))}</span>'
            f'<span class="tag {kind}">{html.escape(tag)}</span>#{cid} {html.escape(str(r["category"]))} · '
            f"{html.escape(place)}{html.escape(str(r['text']))}</li>"
        )
    return f'<div class="gc-ticker"><ul>{"".join(items)}</ul></div>'


def _dark(chart: alt.Chart, *, height: int) -> alt.Chart:
    return (
        chart.properties(height=height, width="container", background=PANEL)
        .configure_axis(labelColor=TEXT, titleColor=MUTED, gridColor="#1e3a5f", domainColor="#37474f",
                        labelFontSize=14, titleFontSize=14, labelLimit=140)  # fmt: skip
        .configure_view(stroke=None)
        .configure_title(color=ACCENT, fontSize=18, anchor="start")
    )


def daily_chart(daily: pd.DataFrame, *, title: str, days: int, height: int = 190) -> alt.Chart:
    """Cases reported per day, the last ``days`` days (bars, today highlighted)."""
    data = daily.tail(days).assign(day=lambda d: pd.to_datetime(d["day"]).dt.strftime("%m-%d"))
    data = data.assign(today=[False] * (len(data) - 1) + [True] if len(data) else [])
    chart = (
        alt.Chart(data, title=title)
        .mark_bar(cornerRadiusTopLeft=2, cornerRadiusTopRight=2)
        .encode(
            x=alt.X("day:N", title=None, sort=None, axis=alt.Axis(labelAngle=0, labelOverlap=True)),
            y=alt.Y("n:Q", title=None),
            color=alt.condition("datum.today", alt.value(WARN), alt.value(ACCENT)),
            tooltip=[alt.Tooltip("day:N"), alt.Tooltip("n:Q")],
        )
    )
    return _dark(chart, height=height)


def bar_chart(frame: pd.DataFrame, *, label: str, value: str, title: str, color: str = ACCENT, height: int = 200,
              fmt: str = ",d") -> alt.Chart:  # fmt: skip
    """A horizontal bar chart of ``value`` by ``label`` (largest on top)."""
    chart = (
        alt.Chart(frame, title=title)
        .mark_bar(color=color, cornerRadiusTopRight=2, cornerRadiusBottomRight=2)
        .encode(
            y=alt.Y(f"{label}:N", title=None, sort="-x"),
            x=alt.X(f"{value}:Q", title=None, axis=alt.Axis(format=fmt) if fmt != ",d" else alt.Axis()),
            tooltip=[alt.Tooltip(f"{label}:N"), alt.Tooltip(f"{value}:Q", format=fmt)],
        )
    )
    return _dark(chart, height=height)
