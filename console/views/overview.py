"""Grid map: the city's micro-grids coloured by household band, aggregated at city zoom."""

from __future__ import annotations

import streamlit as st

from console import access, state
from console.i18n import t
from console.mapui import show_overview_map, view_from_query

lang = state.lang()
who = access.require("map.view", lang)
st.title(t("page.map", lang))
store, summary = state.store_and_city()

c = st.columns(5)
c[0].metric(t("metric.grids", lang), f"{summary.grids:,}")
c[1].metric(t("metric.households", lang), f"{summary.households:,}")
c[2].metric(t("metric.in_band", lang), f"{100 * summary.in_band_share:.1f}%")
c[3].metric(t("metric.staff", lang), f"{summary.staff:,}")
c[4].metric(t("metric.open_cases", lang), f"{summary.open_cases:,}")
st.caption(t("map.zoom_hint", lang))
# A shared link can open the map on a view: ?lat=42.30&lon=123.84&z=16
center, zoom = view_from_query(st.query_params, default=(summary.center, summary.zoom))
show_overview_map(store, key="overview_map", center=center, zoom=zoom)
