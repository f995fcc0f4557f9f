"""The console's entry point: ``streamlit run console/app.py`` (``gridconsole serve`` does it for you)."""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run` puts console/ on sys.path, not the repository root the packages live in.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from console import state  # noqa: E402
from console.i18n import LANGS, t  # noqa: E402
from store.base import StoreError  # noqa: E402

# A local favicon: a material-icon favicon would be fetched from the internet.
st.set_page_config(page_title="网格化服务管理指挥平台", page_icon=str(Path(__file__).parent / "favicon.svg"), layout="wide")

lang = state.lang()
with st.sidebar:
    choice = st.selectbox(
        t("app.language", lang),
        LANGS,
        index=LANGS.index(lang),
        format_func=lambda code: {"zh": "中文", "en": "English"}[code],
        key="lang_select",
    )
    if choice != lang:
        st.session_state["lang"] = choice
        st.rerun()

PAGES = Path(__file__).parent / "views"  # not "pages/": Streamlit would also serve that folder as v1 pages
nav = st.navigation(
    [
        st.Page(PAGES / "overview.py", title=t("page.map", lang), icon=":material/map:", url_path="map", default=True),
        st.Page(PAGES / "bigscreen.py", title=t("page.bigscreen", lang), icon=":material/tv:", url_path="bigscreen"),
        st.Page(PAGES / "dispatch.py", title=t("page.dispatch", lang), icon=":material/campaign:", url_path="dispatch"),
        st.Page(PAGES / "planning.py", title=t("page.planning", lang), icon=":material/edit_location_alt:", url_path="planning"),
        st.Page(PAGES / "cases.py", title=t("page.cases", lang), icon=":material/assignment:", url_path="cases"),
        st.Page(PAGES / "staff.py", title=t("page.staff", lang), icon=":material/groups:", url_path="staff"),
        st.Page(PAGES / "cameras.py", title=t("page.cameras", lang), icon=":material/videocam:", url_path="cameras"),
        st.Page(PAGES / "settings.py", title=t("page.settings", lang), icon=":material/settings:", url_path="settings"),
    ]
)
try:
    nav.run()
except StoreError as exc:  # the database went away while the page ran: a banner, not a traceback
    state.database_down(exc, lang)
