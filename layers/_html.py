"""Safe HTML for tooltips and popups: folium puts them into the page as raw HTML."""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

import pandas as pd


def esc(value: Any) -> str:
    """Text for HTML: None/NaN shown as an em dash, everything else escaped (quotes too)."""
    if value is None or (isinstance(value, float) and value != value) or value is pd.NA:
        return "—"
    return html.escape(str(value), quote=True)


def table_html(rows: Iterable[tuple[str, Any]], *, title: Any = None) -> str:
    """A small two-column table; every label and value is escaped."""
    head = f"<div class='gc-tip-title'><b>{esc(title)}</b></div>" if title is not None else ""
    body = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in rows)
    return f"{head}<table class='gc-tip'>{body}</table>"
