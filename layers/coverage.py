"""Camera coverage on the map: grids or communities filled by the share of their road some camera
sees, the blind spots (stretches of road no camera sees) and suggested places for new cameras.

All inputs are lon/lat GeoDataFrames; every text that reaches a tooltip is escaped here (folium
tooltips are raw HTML). Labels come translated from the caller (``LABEL_KEYS``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import folium
import geopandas as gpd
import pandas as pd

from layers._html import esc, field_tooltip

__all__ = [
    "BLIND_COLOR",
    "LABEL_KEYS",
    "RAMP",
    "SUGGEST_COLOR",
    "build_blind_spots_layer",
    "build_coverage_layer",
    "build_suggestions_layer",
    "share_color",
]

# Share of road seen → fill colour (worst first); no road at all is grey.
RAMP = ((0.10, "#d64545"), (0.25, "#e07b39"), (0.50, "#e0a800"), (0.75, "#8cc63f"), (1.01, "#2e9e5b"))
NO_DATA_COLOR = "#9aa3ad"
BLIND_COLOR = "#c62828"
SUGGEST_COLOR = "#1565c0"
LABEL_KEYS = ("camcov.name", "camcov.code", "camcov.road_km", "camcov.road_share", "camcov.open_share", "camcov.cameras",
              "camcov.online_share", "camcov.blind_m", "camcov.pick", "camcov.gain_m")  # fmt: skip


def share_color(share: float | None) -> str:
    """The fill for a share of road seen (0..1); grey when there is no road."""
    if share is None or pd.isna(share):
        return NO_DATA_COLOR
    for limit, color in RAMP:
        if float(share) < limit:
            return color
    return RAMP[-1][1]


def _pct(v: Any) -> str:
    return "—" if v is None or pd.isna(v) else f"{100 * float(v):.1f}%"


def build_coverage_layer(
    areas: gpd.GeoDataFrame, *, labels: Mapping[str, str], name: str = "coverage"
) -> folium.FeatureGroup:
    """Areas filled by ``road_share``; ``areas`` needs code, name, road_km, road_share,
    open_share, cameras, online_share (as ``services.cameras.coverage_table`` returns) and
    polygon geometry."""
    group = folium.FeatureGroup(name=name)
    rows = areas[areas.geometry.notna() & ~areas.geometry.is_empty] if len(areas) else areas
    if len(rows) == 0:
        return group
    fields = {
        "n": ("camcov.name", [esc(v) for v in rows["name"]]),
        "c": ("camcov.code", [esc(v) for v in rows["code"]]),
        "r": ("camcov.road_km", [f"{float(v):,.2f}" for v in rows["road_km"]]),
        "rs": ("camcov.road_share", [_pct(v) for v in rows["road_share"]]),
        "os": ("camcov.open_share", [_pct(v) for v in rows["open_share"]]),
        "k": ("camcov.cameras", [f"{int(v):,}" for v in rows["cameras"]]),
        "on": ("camcov.online_share", [_pct(v) for v in rows["online_share"]]),
    }
    frame = gpd.GeoDataFrame(
        {"fill": [share_color(s) for s in rows["road_share"]], **{k: v for k, (_, v) in fields.items()}},
        geometry=rows.geometry.to_numpy(),
        crs=rows.crs,
    )
    folium.GeoJson(
        frame,
        name=name,
        style_function=lambda f: {
            "color": "#3d4a5c",
            "weight": 1.0,
            "fillColor": f["properties"]["fill"],
            "fillOpacity": 0.35,
        },
        highlight_function=lambda f: {"weight": 3, "fillOpacity": 0.55},
        tooltip=field_tooltip(fields, labels),
    ).add_to(group)
    return group


def build_blind_spots_layer(
    spots: gpd.GeoDataFrame, *, labels: Mapping[str, str], name: str = "blind_spots"
) -> folium.FeatureGroup:
    """Blind spots as thick red lines; ``spots`` needs code, length_m and line geometry."""
    group = folium.FeatureGroup(name=name)
    rows = spots[spots.geometry.notna() & ~spots.geometry.is_empty] if len(spots) else spots
    if len(rows) == 0:
        return group
    fields = {
        "b": ("camcov.blind_m", [f"{float(v):,.0f} m" for v in rows["length_m"]]),
        "c": ("camcov.code", [esc(v) for v in rows["code"]]),
    }
    frame = gpd.GeoDataFrame(
        {k: v for k, (_, v) in fields.items()}, geometry=rows.geometry.to_numpy(), crs=rows.crs
    )
    folium.GeoJson(
        frame,
        name=name,
        style_function=lambda f: {"color": BLIND_COLOR, "weight": 5, "opacity": 0.85},
        highlight_function=lambda f: {"weight": 8},
        tooltip=field_tooltip(fields, labels),
    ).add_to(group)
    return group


def build_suggestions_layer(
    points: gpd.GeoDataFrame, *, labels: Mapping[str, str], range_m: float = 60.0, name: str = "suggestions"
) -> folium.FeatureGroup:
    """Suggested camera places: a numbered marker (``order``) and the ``range_m`` circle it would
    see; the tooltip gives the road it would add (``gain_m``)."""
    group = folium.FeatureGroup(name=name)
    if len(points) == 0:
        return group
    for row in points.itertuples():
        geom = row.geometry
        if geom is None or geom.is_empty:
            continue
        order = int(getattr(row, "order", 0) or 0)
        gain = getattr(row, "gain_m", float("nan"))
        tip = (
            f"<b>{esc(labels['camcov.pick'])} {order}</b><br>"
            f"{esc(labels['camcov.gain_m'])}: {'—' if pd.isna(gain) else f'{float(gain):,.0f} m'}"
        )
        folium.Circle(
            location=(float(geom.y), float(geom.x)),
            radius=float(range_m),
            color=SUGGEST_COLOR,
            weight=1,
            fill=True,
            fill_opacity=0.12,
            interactive=False,
        ).add_to(group)
        folium.Marker(
            location=(float(geom.y), float(geom.x)),
            icon=folium.DivIcon(
                html=(
                    f'<div style="background:{SUGGEST_COLOR};color:#fff;border-radius:50%;width:22px;height:22px;'
                    f'line-height:22px;text-align:center;font:bold 13px sans-serif">{order}</div>'
                ),
                icon_size=(22, 22),
                icon_anchor=(11, 11),
            ),
            tooltip=folium.Tooltip(tip),
        ).add_to(group)
    return group
