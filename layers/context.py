"""The light vector context drawn from our own data when there is no basemap: water, roads, boundaries."""

from __future__ import annotations

import folium
import geopandas as gpd

WATER_STYLE = {"color": "#9cc3e6", "weight": 0.5, "fillColor": "#b9d7f0", "fillOpacity": 0.9}
BUILDING_STYLE = {"color": "#8d96a3", "weight": 0.6, "fillColor": "#c3c9d1", "fillOpacity": 0.9}
BOUNDARY_STYLE = {"color": "#5b6b80", "weight": 1.6, "fill": False, "dashArray": "6 4"}
ROAD_STYLE = {
    "arterial": {"color": "#b8bec7", "weight": 3.0},
    "street": {"color": "#cfd4da", "weight": 1.6},
    "rural": {"color": "#c9c2b4", "weight": 1.4},
    "lane": {"color": "#ddd8cf", "weight": 1.0},
}


def build_context_layer(
    *,
    roads: gpd.GeoDataFrame | None = None,
    water: gpd.GeoDataFrame | None = None,
    boundaries: gpd.GeoDataFrame | None = None,
    buildings: gpd.GeoDataFrame | None = None,
    name: str = "context",
) -> folium.FeatureGroup:
    """Non-interactive background features (no tooltips, clicks pass through to the layers above)."""
    group = folium.FeatureGroup(name=name, control=False)
    # Drawn in this order, bottom to top; only roads keep a property (their kind, for the style).
    layers = (
        ("water", water, (), lambda f: WATER_STYLE),
        ("roads", roads, ("kind",), lambda f: ROAD_STYLE.get(f["properties"]["kind"], ROAD_STYLE["street"])),
        ("buildings", buildings, (), lambda f: BUILDING_STYLE),
        ("boundaries", boundaries, (), lambda f: BOUNDARY_STYLE),
    )
    for layer_name, frame, columns, style in layers:
        if frame is None or not len(frame):
            continue
        folium.GeoJson(
            frame[[*columns, frame.geometry.name]], name=layer_name, style_function=style, interactive=False
        ).add_to(group)
    return group
