"""Micro-grid polygons coloured by whether their household count is inside the band."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import folium
import geopandas as gpd

from layers._html import table_html

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
    frame = gpd.GeoDataFrame(
        {
            "code": grids["code"].astype(str),
            "status": grids["status"].astype(str),
            "tip": [
                table_html(
                    [
                        (labels["grid.code"], r.code),
                        (labels["grid.unit"], r.unit_name),
                        (labels["grid.households"], r.households),
                        (labels["grid.band"], _band(r.band_min, r.band_max)),
                        (labels["grid.worker"], r.worker),
                        (labels["grid.status"], labels[f"grid.status.{r.status}"]),
                    ],
                    title=r.name,
                )
                for r in grids.itertuples()
            ],
        },
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
        tooltip=folium.GeoJsonTooltip(fields=["tip"], labels=False, sticky=True),
        zoom_on_click=False,
    ).add_to(group)
    return group


def _band(lo: object, hi: object) -> str:
    if lo is None or hi is None or lo != lo or hi != hi:
        return "—"
    return f"{int(lo)}–{int(hi)}"  # type: ignore[call-overload]
