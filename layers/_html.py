"""Safe HTML for tooltips and popups: folium puts them into the page as raw HTML."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

import folium
import pandas as pd


def esc(value: Any) -> str:
    """Text for HTML: None/NaN shown as an em dash, everything else escaped (quotes too)."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return "—"
    return html.escape(str(value), quote=True)


def field_tooltip(fields: Mapping[str, tuple[str, Any]], labels: Mapping[str, str]) -> folium.GeoJsonTooltip:
    """A tooltip table over feature properties: ``fields`` maps a property name to (label key,
    values); Leaflet renders labels and values as HTML, so the labels are escaped here and the
    values must already be (``esc``)."""
    return folium.GeoJsonTooltip(
        fields=list(fields), aliases=[esc(labels[key]) for key, _ in fields.values()], sticky=True
    )


def band_text(lo: Any, hi: Any) -> str:
    """'80–120', or an em dash when there is no band (dedicated grids; None, NaN or pd.NA)."""
    if pd.isna(lo) or pd.isna(hi):
        return "—"
    return f"{int(lo)}–{int(hi)}"
