"""Micro-grid polygons coloured by whether their household count is inside the band."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import folium
import geopandas as gpd

from layers._html import band_text, esc, field_tooltip

STATUSES = ("in_band", "under", "over", "empty", "dedicated")


@dataclass(frozen=True)
class GridStyle:
    colors: Mapping[str, str] = field(
        default_factory=lambda: {
            "in_band": "#2e9e5b",
            "under": "#e0a800",
            "over": "#d64545",
            "empty": "#9aa3ad",
            "dedicated": "#3b6fd8",
        }
    )
    fill_opacity: float = 0.35
    weight: float = 1.2


DEFAULT_STYLE = GridStyle()

# Label keys the caller supplies (already translated): status names and tooltip field names.
LABEL_KEYS = (
    "grid.code",
    "grid.name",
    "grid.unit",
    "grid.households",
    "grid.band",
    "grid.worker",
    "grid.status",
    *(f"grid.status.{s}" for s in STATUSES),
)


def build_grids_layer(
    grids: gpd.GeoDataFrame,
    *,
    labels: Mapping[str, str],
    style: GridStyle = DEFAULT_STYLE,
    name: str = "grids",
) -> folium.FeatureGroup:
    """A FeatureGroup of grid polygons with escaped tooltips.

    ``grids`` (lon/lat) needs columns code, name, unit_name, households, band_min, band_max,
    worker, status (one of STATUSES).
    """
    group = folium.FeatureGroup(name=name)
    if len(grids) == 0:
        return group
    # Short property names and a client-side tooltip table keep the payload small; every text
    # value is HTML-escaped here because Leaflet puts tooltip fields into the page as HTML.
    fields = {
        "n": ("grid.name", [esc(v) for v in grids["name"]]),
        "c": ("grid.code", [esc(v) for v in grids["code"]]),
        "u": ("grid.unit", [esc(v) for v in grids["unit_name"]]),
        "h": ("grid.households", [esc(v) for v in grids["households"]]),
        "b": ("grid.band", [band_text(lo, hi) for lo, hi in zip(grids["band_min"], grids["band_max"], strict=True)]),
        "w": ("grid.worker", [esc(v) for v in grids["worker"]]),
        "s": ("grid.status", [esc(labels[f"grid.status.{s}"]) for s in grids["status"]]),
    }
    frame = gpd.GeoDataFrame(
        {"status": grids["status"].astype(str).to_numpy(), **{k: v for k, (_, v) in fields.items()}},
        geometry=grids.geometry.to_numpy(),
        crs=grids.crs,
    )
    colors = style.colors

    def _style(feature: dict) -> dict:
        c = colors.get(feature["properties"]["status"], "#666666")
        dedicated = feature["properties"]["status"] == "dedicated"
        return {
            "color": c,
            "weight": style.weight * (1.6 if dedicated else 1.0),
            "fillColor": c,
            "fillOpacity": 0.12 if dedicated else style.fill_opacity,
            "dashArray": "4 3" if dedicated else None,
        }

    folium.GeoJson(
        frame,
        name=name,
        style_function=_style,
        highlight_function=lambda f: {"weight": 3, "fillOpacity": 0.55},
        tooltip=field_tooltip(fields, labels),
        zoom_on_click=False,
    ).add_to(group)
    return group

