"""The planning page's map: what the planner clicked or drew since the last run.

streamlit-folium returns the last click and the last drawing on every rerun, also reruns caused by
other widgets; these helpers hand each one to the page only once.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import shapely
import streamlit as st
from shapely.geometry.base import BaseGeometry


@dataclass(frozen=True)
class Click:
    lon: float
    lat: float


def new_click(result: Any, *, key: str) -> Click | None:
    """A click on a map object (or the map) not handled before, or None."""
    if not isinstance(result, dict):
        return None
    value = result.get("last_object_clicked") or result.get("last_clicked")
    if not isinstance(value, dict):
        return None
    try:
        lat, lon = float(value["lat"]), float(value["lng"])
    except (KeyError, TypeError, ValueError):
        return None
    marker = f"{lat:.8f},{lon:.8f}"
    seen = f"_{key}_click"
    if st.session_state.get(seen) == marker:
        return None
    st.session_state[seen] = marker
    return Click(lon=lon, lat=lat)


def new_drawing(result: Any, *, key: str) -> BaseGeometry | None:
    """The geometry of a line or polygon drawn since the last run (lon/lat), or None."""
    if not isinstance(result, dict):
        return None
    feature = result.get("last_active_drawing")
    if not isinstance(feature, dict) or not isinstance(feature.get("geometry"), dict):
        return None
    marker = json.dumps(feature["geometry"], sort_keys=True)
    seen = f"_{key}_drawing"
    if st.session_state.get(seen) == marker:
        return None
    st.session_state[seen] = marker
    try:
        geom = shapely.geometry.shape(feature["geometry"])
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    return None if geom.is_empty else geom


def forget(key: str) -> None:
    """Start afresh (a new draft): clicks and drawings of the previous map are not replayed."""
    for suffix in ("click", "drawing"):
        st.session_state.pop(f"_{key}_{suffix}", None)
