"""The light vector context drawn from our own data when there is no basemap: water, roads, boundaries."""

from __future__ import annotations

import folium
import geopandas as gpd

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
    if water is not None and len(water):
        folium.GeoJson(
            water[[water.geometry.name]],
            name="water",
            style_function=lambda f: {"color": "#9cc3e6", "weight": 0.5, "fillColor": "#b9d7f0", "fillOpacity": 0.9},
            interactive=False,
        ).add_to(group)
    if roads is not None and len(roads):
        folium.GeoJson(
            roads[["kind", roads.geometry.name]],
            name="roads",
            style_function=lambda f: ROAD_STYLE.get(f["properties"]["kind"], ROAD_STYLE["street"]),
            interactive=False,
        ).add_to(group)
    if buildings is not None and len(buildings):
        folium.GeoJson(
            buildings[[buildings.geometry.name]],
            name="buildings",
            style_function=lambda f: {"color": "#8d96a3", "weight": 0.6, "fillColor": "#c3c9d1", "fillOpacity": 0.9},
            interactive=False,
        ).add_to(group)
    if boundaries is not None and len(boundaries):
        folium.GeoJson(
            boundaries[[boundaries.geometry.name]],
            name="boundaries",
            style_function=lambda f: {"color": "#5b6b80", "weight": 1.6, "fill": False, "dashArray": "6 4"},
            interactive=False,
        ).add_to(group)
    return group
