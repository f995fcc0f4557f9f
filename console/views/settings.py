"""Settings: the basemap (none / intranet XYZ / GCJ-02 tiles) and what the database holds."""

from __future__ import annotations

import streamlit as st

from console import state
from console.i18n import t
from services import settings
from services.overview import table_counts

lang = state.lang()
st.title(t("page.settings", lang))
store = state.get_store()
current = state.basemap()

st.subheader(t("settings.basemap", lang))
kinds = ["none", "xyz", "gcj02"]
with st.form("basemap"):
    kind = st.radio(
        t("settings.basemap", lang),
        kinds,
        index=kinds.index(current.kind),
        format_func=lambda k: t(f"settings.basemap.{k}", lang),
        label_visibility="collapsed",
    )
    url = st.text_input(t("settings.basemap.url", lang), value=current.url or "", placeholder="http://tiles.intranet/{z}/{x}/{y}.png")
    attribution = st.text_input(t("settings.basemap.attribution", lang), value=current.attribution)
    subdomains = st.text_input(
        t("settings.basemap.subdomains", lang),
        value=current.subdomains if isinstance(current.subdomains, str) else "".join(current.subdomains),
    )
    if st.form_submit_button(t("settings.save", lang)):
        try:
            settings.set_basemap(
                store, kind=kind, url=url.strip() or None, attribution=attribution, subdomains=subdomains.strip()
            )
        except ValueError:
            st.error(t("settings.bad_url", lang))
        else:
            state.forget_basemap()
            st.success(t("settings.saved", lang))

st.subheader(t("settings.summary", lang))
st.caption(f"{t('app.database', lang)}: {store.dialect}")
st.dataframe(
    table_counts(store).rename(columns={"table": t("settings.table", lang), "rows": t("settings.rows", lang)}),
    hide_index=True,
)
