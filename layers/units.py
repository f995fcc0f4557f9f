"""Aggregated admin units (county, township/street, village/community) with their counts."""

from __future__ import annotations

from collections.abc import Mapping

import folium
import geopandas as gpd

from layers._html import esc, field_tooltip

# Share of grids inside their band → fill colour (a sequential ramp, worst first).
RAMP = ((0.80, "#d64545"), (0.90, "#e0a800"), (0.95, "#8cc63f"), (1.01, "#2e9e5b"))
LABEL_KEYS = ("unit.name", "unit.code", "unit.grids", "unit.households", "unit.in_band", "unit.staff", "unit.open_cases")


def _color(share: float) -> str:
    for limit, color in RAMP:
        if share < limit:
            return color
    return RAMP[-1][1]


def build_units_layer(
    units: gpd.GeoDataFrame, *, labels: Mapping[str, str], name: str = "units"
) -> folium.FeatureGroup:
    """Unit polygons filled by the share of their grids inside the band, with escaped tooltips.

    ``units`` (lon/lat) needs columns code, name, grids, households, in_band_share (0..1),
    staff, open_cases.
    """
    group = folium.FeatureGroup(name=name)
    if len(units) == 0:
        return group
    fields = {
        "n": ("unit.name", [esc(v) for v in units["name"]]),
        "c": ("unit.code", [esc(v) for v in units["code"]]),
        "g": ("unit.grids", [f"{int(v):,}" for v in units["grids"]]),
        "h": ("unit.households", [f"{int(v):,}" for v in units["households"]]),
        "b": ("unit.in_band", [f"{100 * float(v):.1f}%" for v in units["in_band_share"]]),
        "st": ("unit.staff", [f"{int(v):,}" for v in units["staff"]]),
        "oc": ("unit.open_cases", [f"{int(v):,}" for v in units["open_cases"]]),
    }
    frame = gpd.GeoDataFrame(
        {"fill": [_color(float(s)) for s in units["in_band_share"]], **{k: v for k, (_, v) in fields.items()}},
        geometry=units.geometry.to_numpy(),
        crs=units.crs,
    )
    folium.GeoJson(
        frame,
        name=name,
        style_function=lambda f: {
            "color": "#3d4a5c",
            "weight": 1.2,
            "fillColor": f["properties"]["fill"],
            "fillOpacity": 0.30,
        },
        highlight_function=lambda f: {"weight": 3, "fillOpacity": 0.5},
        tooltip=field_tooltip(fields, labels),
        zoom_on_click=True,
    ).add_to(group)
    return group
