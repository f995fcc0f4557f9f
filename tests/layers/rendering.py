"""Rendering folium layers the way the browser receives them, for the layer tests."""

from __future__ import annotations

import json
import re
from typing import Any

import folium


def map_with(*items: folium.FeatureGroup) -> folium.Map:
    m = folium.Map(location=(42.29, 123.84), zoom_start=15, tiles=None)
    for item in items:
        item.add_to(m)
    return m


def raw(*groups: folium.FeatureGroup) -> str:
    """The page exactly as the browser receives it."""
    return map_with(*groups).get_root().render()


def render(*groups: folium.FeatureGroup) -> str:
    """The page with the JSON escapes of < > & ' undone: what the browser's JS sees."""
    html = raw(*groups)
    for esc, ch in (("\\u003c", "<"), ("\\u003e", ">"), ("\\u0026", "&"), ("\\u0027", "'")):
        html = html.replace(esc, ch)
    return html


def payload(html: str, var: str = "D") -> Any:
    """The JSON data of the first compact group script in the page."""
    start = html.index(f"var {var} = ") + len(f"var {var} = ")
    value, _ = json.JSONDecoder().raw_decode(html, start)
    return value


def urls(html: str) -> set[str]:
    return set(re.findall(r"https?://[^\s\"'<>)]+", html))
