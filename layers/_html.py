"""Safe HTML for tooltips and popups: folium puts them into the page as raw HTML."""

from __future__ import annotations

import html
from typing import Any

import pandas as pd


def esc(value: Any) -> str:
    """Text for HTML: None/NaN shown as an em dash, everything else escaped (quotes too)."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return "—"
    return html.escape(str(value), quote=True)
