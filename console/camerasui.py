"""Camera pieces shared by the cameras and dispatch pages: a stream player that never shows a
broken frame, and the "cameras that see this case" panel (video dispatch)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import streamlit as st
import streamlit.components.v1 as components

from console import casesui, state
from console.i18n import labels, t
from console.player import playable, player_html
from services import cameras as cams

PLAYER_HEIGHT = 300


def show_player(camera: Mapping[Any, Any], lang: str) -> None:
    """The camera's stream in the page when it is HLS/WebRTC/a file the browser can reach, else a
    clear "no stream" state with the reason."""
    url = camera.get("stream_url")
    ok, reason = playable(url if isinstance(url, str) else None)
    st.caption(f"{casesui.md(camera.get('name'))} · {casesui.md(camera.get('id'))}")
    if not ok:
        st.info(t("cam.no_stream", lang, reason=reason))
        return
    html = player_html(str(url), static_prefix=state.static_prefix(), title=str(camera.get("name") or ""),
                       lang_texts=labels(("player.",), lang))  # fmt: skip
    components.html(html, height=PLAYER_HEIGHT)


def seeing(store: Any, case_id: int) -> pd.DataFrame | None:
    """The cameras that see a case (services.cameras.seeing_case), None when it has no location."""
    try:
        return cams.seeing_case(store, case_id)[1]
    except cams.CameraError:
        return None


def seeing_panel(table: pd.DataFrame | None, case_id: int, lang: str, *, key: str) -> None:
    """The cameras that see a case, nearest and most head-on first, each with a button that opens
    its stream below (several can be open at once)."""
    if table is None or not len(table):
        st.caption(t("cam.none_sees", lang))
        return
    open_key = f"_{key}_open_{case_id}"
    opened: list[str] = st.session_state.setdefault(open_key, [])
    for row in table.to_dict("records"):
        c = st.columns([0.4, 3, 1.6, 1.2])
        c[0].markdown(f"**{int(row['rank'])}**")
        status = t("camstat.online" if row["online"] else "camstat.offline", lang)
        c[1].markdown(f"{casesui.md(row['name'])}  \n:gray[{casesui.md(status)}]")
        c[2].markdown(f"{row['distance_m']:.0f} m  \n:gray[{t('cam.off_axis', lang, deg=round(row['off_axis_deg']))}]")
        cid = str(row["id"])
        if c[3].button(t("cam.open", lang), key=f"{key}_cam_{case_id}_{cid}", disabled=cid in opened, use_container_width=True):
            opened.append(cid)
            st.rerun()
    for cid in opened:
        hit = table[table["id"] == cid]
        if len(hit):
            show_player(hit.iloc[0].to_dict(), lang)
