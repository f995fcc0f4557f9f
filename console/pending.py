"""A page whose capability has not landed yet says so, plainly, instead of showing a stub."""

from __future__ import annotations

import streamlit as st

from console import state
from console.i18n import t


def pending_page(page: str, issue: int) -> None:
    lang = state.lang()
    st.title(t(f"page.{page}", lang))
    st.write(t(f"page.{page}.desc", lang))
    st.info(t("app.pending", lang, issue=issue))
