"""Command-center big screen (指挥大屏): a full-screen, dark, live overview of the city for the wall.

One fixed URL (``/bigscreen``; options ``?refresh=10&tour=60&district=211202&lang=en``). The
figures, the map and the ticker refresh every ``refresh`` seconds inside fragments (no page
reload, no map remount: the base map never changes, overlays travel through
``feature_group_to_add``); the charts every minute. Click a district to drill down, the button to
go back; ``tour`` rotates through the city and its districts for unattended walls.
"""

from __future__ import annotations

import time

import pandas as pd
import streamlit as st
from streamlit_folium import st_folium

from console import access, state
from console import bigscreenui as ui
from console.i18n import labels, t
from layers.basemap import build_base_map, with_release
from layers.bigscreen import build_districts_layer, build_flash_layer, build_staff_dots_layer
from layers.cameras import build_camera_counts_layer, build_cameras_layer
from layers.cases import CLICK_RETURNED_OBJECTS, build_case_counts_layer
from layers.staff import build_staff_layer
from services import bigscreen as bs
from services.overview import zoom_to_fit
from services.settings import city_tz

MAP_KEY = "big_map"
DISTRICT = "big_district"
MAP_HEIGHT = 700
LAYER_PREFIXES = ("big.", "case.", "cstate.", "cam.", "camstat.", "dur.", "dist.", "staff.", "role.", "fresh.", "unit.")

lang = state.lang()
who = access.require("bigscreen.view", lang)
store, summary = state.store_and_city()
state.local_assets(state.static_prefix())
opts = ui.options(st.query_params)
tz = city_tz(store)
L = labels(LAYER_PREFIXES, lang)
st.markdown(ui.CSS, unsafe_allow_html=True)
units = bs.districts(store)
# Below the city, a user's big screen is pinned to their own district (its aggregate figures; a
# street's or community's user sees the district they belong to, with no personal data on it).
PINNED = None if state.area(who) is None else who.unit_code[:6]
if PINNED is not None:
    units = units[units["code"].astype(str) == PINNED]
names = dict(zip(units["code"].astype(str), units["name"].astype(str), strict=True))
codes = list(names)
if DISTRICT not in st.session_state or PINNED is not None:
    st.session_state[DISTRICT] = PINNED or (opts.district if opts.district in names else None)
    st.session_state.setdefault("_big_tour_at", time.monotonic())
# the base map is the same on every run (dark background, the city's view): never remounted
dark = state.basemap().model_copy(update={"background": ui.BG}) if state.basemap().kind == "none" else state.basemap()


@st.cache_data(ttl=55, max_entries=64, show_spinner=False)
def _charts(url: str, county: str | None, lang: str) -> bs.Charts:
    """The charts' data, shared by both chart panels and every wall showing the same view."""
    return bs.charts(state.get_store(), county=county, lang=lang)


# Every wall (and every user) showing the same view at the same refresh shares one computation: the
# figures, the map's data and the ticker are cached per view and per refresh period ("tick"), so 35
# walls cost what one does (the load test, bench/load.py, measured the alternative).
TICK_S = max(2, opts.refresh_s)


def _tick() -> int:
    return int(time.time() // TICK_S)


@st.cache_data(ttl=2 * TICK_S + 1, max_entries=64, show_spinner=False)
def _kpis(url: str, county: str | None, tick: int) -> bs.Kpis:
    return bs.kpis(state.get_store(), county=county)


@st.cache_data(ttl=2 * TICK_S + 1, max_entries=64, show_spinner=False)
def _map_data(url: str, county: str | None, lang: str, tick: int) -> bs.BigMap:
    return bs.map_data(state.get_store(), county=county, lang=lang)


@st.cache_data(ttl=2 * TICK_S + 1, max_entries=64, show_spinner=False)
def _ticker(url: str, county: str | None, lang: str, tick: int) -> pd.DataFrame:
    return bs.ticker(state.get_store(), county=county, lang=lang)


def _where(county: str | None) -> str:
    return names.get(county, county) if county else t("big.city", lang)


@st.fragment(run_every=opts.refresh_s)
@state.guarded
def headline() -> None:
    county = st.session_state.get(DISTRICT)
    now = pd.Timestamp.now(tz="UTC")
    k = _kpis(store.url, county, _tick())
    clock = now.tz_convert(tz).strftime("%Y-%m-%d %H:%M:%S")
    st.markdown(ui.header_html(t("big.title", lang), _where(county), clock), unsafe_allow_html=True)
    st.markdown(ui.kpi_html(k, L), unsafe_allow_html=True)


@st.fragment(run_every=opts.refresh_s)
@state.guarded
def live_map() -> None:
    county = st.session_state.get(DISTRICT)
    if opts.tour_s and PINNED is None and time.monotonic() - st.session_state.get("_big_tour_at", 0.0) >= opts.tour_s:
        county = st.session_state[DISTRICT] = bs.tour_next(codes, county)
        st.session_state["_big_tour_at"] = time.monotonic()
    m = _map_data(store.url, county, lang, _tick())
    groups = [build_districts_layer(m.outlines, labels=L, selected=county, names=county is None),
              build_case_counts_layer(m.case_counts, labels=L)]  # fmt: skip
    if county is None:
        groups.append(build_staff_dots_layer(m.staff))
    else:
        groups.append(build_staff_layer(m.staff, labels=L, tz=tz, legend=False))
    if m.camera_counts is not None:
        # beside each street's case bubble, not on it
        groups.append(build_camera_counts_layer(m.camera_counts, labels=L, min_radius=9, max_radius=18, offset_px=(40, 0)))
    else:
        groups.append(build_cameras_layer(m.cameras, labels=L))
    groups.append(build_flash_layer(m.new_cases, labels=L, tz=tz))
    zoom = zoom_to_fit(m.bounds, width_px=1150, height_px=MAP_HEIGHT)
    centre = ((m.bounds[1] + m.bounds[3]) / 2, (m.bounds[0] + m.bounds[2]) / 2)
    base = build_base_map(config=dark, center=summary.center, zoom=summary.zoom)
    result = st_folium(base, key=MAP_KEY, height=MAP_HEIGHT, use_container_width=True, feature_group_to_add=with_release(groups),
                       center=centre, zoom=zoom, returned_objects=list(CLICK_RETURNED_OBJECTS)) or {}  # fmt: skip
    count = int(result.get("last_object_clicked_count") or 0)
    seen = st.session_state.setdefault("_big_clicks", count)
    if count != seen:
        st.session_state["_big_clicks"] = count
        clicked = result.get("last_object_clicked") or {}
        if county is None and PINNED is None and "lat" in clicked and "lng" in clicked:
            hit = bs.district_at(store, lon=float(clicked["lng"]), lat=float(clicked["lat"]))
            if hit is not None:
                st.session_state[DISTRICT] = hit
                st.session_state["_big_tour_at"] = time.monotonic()
                st.rerun()
    if county is not None and PINNED is None and st.button(t("big.back", lang), key="big_back"):
        st.session_state[DISTRICT] = None
        st.session_state["_big_tour_at"] = time.monotonic()
        st.rerun()


@st.fragment(run_every=opts.refresh_s)
@state.guarded
def live_ticker() -> None:
    county = st.session_state.get(DISTRICT)
    st.markdown(f'<div class="gc-panel-title">{t("big.ticker", lang)}</div>', unsafe_allow_html=True)
    rows = _ticker(store.url, county, lang, _tick())
    st.markdown(ui.ticker_html(rows, L, tz=tz), unsafe_allow_html=True)


@st.fragment(run_every=60)
@state.guarded
def side_charts() -> None:
    c = _charts(store.url, st.session_state.get(DISTRICT), lang)
    st.altair_chart(ui.bar_chart(c.by_category.head(8), label="name", value="n", title=t("big.by_category", lang),
                                 height=230), use_container_width=True, theme=None)  # fmt: skip
    a, b = st.columns(2)
    a.altair_chart(ui.bar_chart(c.top_streets.head(6), label="name", value="open", title=t("big.top_streets", lang),
                                color=ui.WARN, height=215), use_container_width=True, theme=None)  # fmt: skip
    b.altair_chart(ui.bar_chart(c.top_grids.head(6), label="name", value="open", title=t("big.top_grids", lang),
                                color=ui.WARN, height=215), use_container_width=True, theme=None)  # fmt: skip


@st.fragment(run_every=60)
@state.guarded
def bottom_charts() -> None:
    c = _charts(store.url, st.session_state.get(DISTRICT), lang)
    a, b, d = st.columns([2, 3, 3])
    a.altair_chart(ui.daily_chart(c.daily, title=t("big.last7", lang), days=7, height=180),
                   use_container_width=True, theme=None)  # fmt: skip
    b.altair_chart(ui.daily_chart(c.daily, title=t("big.last30", lang), days=30, height=180),
                   use_container_width=True, theme=None)  # fmt: skip
    d.altair_chart(ui.bar_chart(c.closure_hours.head(6), label="name", value="median_h", title=t("big.closure", lang),
                                color=ui.GOOD, height=180, fmt=".1f"), use_container_width=True, theme=None)  # fmt: skip


headline()
left, right = st.columns([5, 3])
with left:
    live_map()
    bottom_charts()
with right:
    live_ticker()
    side_charts()
