"""Settings: the basemap (none / intranet XYZ / GCJ-02 tiles) and what the database holds."""

from __future__ import annotations

import streamlit as st

from console import access, state
from console.i18n import t
from services import retention, settings
from services.overview import table_counts

lang = state.lang()
who = access.require("settings.edit", lang)
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
            access.audit(store, who, "settings.basemap", detail=f"kind={kind} url={url.strip()[:300]}")
            state.forget_basemap()
            st.success(t("settings.saved", lang))

st.subheader(t("settings.retention", lang))
st.caption(t("settings.retention_hint", lang))
with st.form("retention"):
    days = st.number_input(t("settings.retention_days", lang), min_value=0, max_value=settings.RETENTION_MAX_DAYS,
                           value=settings.retention_days(store), step=30)  # fmt: skip
    if st.form_submit_button(t("settings.save", lang)):
        before = settings.retention_days(store)
        saved = settings.set_retention_days(store, int(days))
        access.audit(store, who, "settings.retention", detail=f"{before} -> {saved} days")
        st.success(t("settings.saved", lang))
last = retention.last_run(store, "retention")
st.caption(t("settings.retention_last", lang, when=last.tz_convert(settings.city_tz(store)).strftime("%Y-%m-%d %H:%M") if last is not None else "—"))
if st.button(t("settings.retention_now", lang), key="retention_now"):
    with st.spinner(t("settings.retention_running", lang)):
        report = retention.purge_tracks(store)
    access.audit(store, who, "tracks.purge_now", detail=report.summary())
    st.success(report.summary())

st.subheader(t("settings.summary", lang))
st.caption(f"{t('app.database', lang)}: {store.dialect}")
st.dataframe(
    table_counts(store).rename(columns={"table": t("settings.table", lang), "rows": t("settings.rows", lang)}),
    hide_index=True,
)
