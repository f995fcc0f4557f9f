"""The console's entry point: ``streamlit run console/app.py`` (``gridconsole serve`` does it for you)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

# `streamlit run` puts console/ on sys.path, not the repository root the packages live in.
ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from console import access, state  # noqa: E402
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
# (file, url path, icon, the action that opens it): a page is listed only for roles that may open it,
# and each page checks again (console.access.require) before it reads anything.
PAGE_TABLE = (
    ("overview.py", "map", ":material/map:", "map.view"),
    ("bigscreen.py", "bigscreen", ":material/tv:", "bigscreen.view"),
    ("dispatch.py", "dispatch", ":material/campaign:", "cases.assign"),
    ("planning.py", "planning", ":material/edit_location_alt:", "plan.view"),
    ("cases.py", "cases", ":material/assignment:", "cases.view"),
    ("staff.py", "staff", ":material/groups:", "staff.view"),
    ("cameras.py", "cameras", ":material/videocam:", "cameras.view"),
    ("users.py", "users", ":material/admin_panel_settings:", "users.manage"),
    ("settings.py", "settings", ":material/settings:", "settings.edit"),
)

def _stand_in(url: str, page: Callable[[], None]) -> st.Page:
    """A hidden page at ``url`` that runs ``page`` instead: a link to /dispatch opened before
    sign-in shows the sign-in form there (and the dispatch page once signed in), a page the role
    may not open says so, instead of Streamlit's "page not found"."""

    def run() -> None:
        page()

    run.__name__ = run.__qualname__ = f"stand_in_{url}"
    return st.Page(run, title=t(f"page.{url}", lang), url_path=url, visibility="hidden")


try:
    who = state.principal()
except StoreError as exc:  # the database is down: nobody can be checked, so nothing is shown but the
    # banner -- at the address asked for, so the page comes back there when the database does
    error = exc

    def _down() -> None:
        state.database_down(error, lang)

    _down.__name__ = _down.__qualname__ = "database_down"
    down = st.Page(_down, title=t("app.title", lang), url_path="unavailable", default=True)
    st.navigation([down, *(_stand_in(url, _down) for _f, url, _i, _a in PAGE_TABLE)], position="hidden").run()
    st.stop()

if who is None:
    signin = st.Page(state.sign_in_page, title=t("auth.signin", lang), icon=":material/login:", url_path="signin", default=True)
    nav = st.navigation([signin, *(_stand_in(url, state.sign_in_page) for _f, url, _i, _a in PAGE_TABLE)])
    access.flush_cookie()
else:
    allowed = [row for row in PAGE_TABLE if who.can(row[3])]
    if access.is_kiosk():  # a kiosk token opens the big screen and nothing else
        allowed = [row for row in allowed if row[1] == "bigscreen"]
    pages = [
        st.Page(PAGES / f, title=t(f"page.{url}", lang), icon=icon, url_path=url, default=(i == 0))
        for i, (f, url, icon, _) in enumerate(allowed)
    ]
    refused = [_stand_in(url, state.refused_page) for _f, url, _i, _a in PAGE_TABLE if (_f, url, _i, _a) not in allowed]
    nav = st.navigation([*pages, *refused])
    with st.sidebar:
        access.user_box(state.get_store(), who, lang, state.unit_name(who.unit_code))
    access.flush_cookie()
try:
    nav.run()
except StoreError as exc:  # the database went away while the page ran: a banner, not a traceback
    state.database_down(exc, lang)
