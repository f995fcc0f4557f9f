"""The overview map: an identical base map, overlays sent with ``feature_group_to_add``.

The base map's JS never changes for a given basemap setting, so streamlit-folium keeps the same
Leaflet map across reruns (no remount, no flicker). The view the user pans to comes back in
``st.session_state[key]`` (bounds and zoom only — ``returned_objects`` keeps hovering and clicking
from rerunning the app); on the next run the overlays for that view are computed and sent.
"""

from __future__ import annotations

import math
from typing import Any, Literal

import folium
import streamlit as st
from streamlit_folium import st_folium

from console import state
from console.i18n import labels, t
from geo.crs import from_wgs84, gcj02_to_wgs84
from geo.lod import view_bbox
from layers.basemap import BasemapConfig, build_base_map, needs_gcj02_shift, with_release
from layers.context import build_context_layer
from layers.grids import build_grids_layer
from layers.units import build_units_layer
from services.mapview import MapData, View, map_data
from store import Store

VIEWPORT_PX = (1400, 720)  # assumed size before the browser reports the real bounds


def initial_view(center: tuple[float, float], zoom: int) -> View:
    """The bbox a VIEWPORT_PX screen shows around center (lat, lon) at zoom (web mercator)."""
    bbox = view_bbox(*center, zoom, width_px=VIEWPORT_PX[0], height_px=VIEWPORT_PX[1])
    return View(bbox=bbox, zoom=zoom)


def view_from_state(value: Any, *, fallback: View, shifted: bool) -> View:
    """The view reported by the map component, converted back to WGS84 when tiles are GCJ-02."""
    try:
        b = value["bounds"]
        south, west = float(b["_southWest"]["lat"]), float(b["_southWest"]["lng"])
        north, east = float(b["_northEast"]["lat"]), float(b["_northEast"]["lng"])
        zoom = int(value["zoom"])
    except (KeyError, TypeError, ValueError):
        return fallback
    if not all(math.isfinite(v) for v in (south, west, north, east)) or north <= south:
        return fallback
    if shifted:
        west, south = (float(v) for v in gcj02_to_wgs84(west, south))
        east, north = (float(v) for v in gcj02_to_wgs84(east, north))
    return View(bbox=(west, south, east, north), zoom=zoom)


def view_from_query(
    params: Any, *, default: tuple[tuple[float, float], int]
) -> tuple[tuple[float, float], int]:
    """Centre (lat, lon) and zoom from ``?lat=&lon=&z=``; anything missing or implausible → default."""
    try:
        lat, lon, z = float(params["lat"]), float(params["lon"]), int(params["z"])
    except (KeyError, TypeError, ValueError):
        return default
    if not (-90 <= lat <= 90 and -180 <= lon <= 180 and 3 <= z <= 20):
        return default
    return (lat, lon), z


def overlay_groups(data: MapData, lang: str) -> list[folium.FeatureGroup]:
    context = build_context_layer(
        roads=data.roads, water=data.water, boundaries=data.boundaries, buildings=data.buildings
    )
    if data.level == "grid":
        top = build_grids_layer(data.features, labels=labels(("grid.",), lang))
    else:
        top = build_units_layer(data.features, labels=labels(("unit.",), lang))
    return [context, top]


def payload_bytes(data: MapData) -> int:
    """Bytes of GeoJSON this screen sends (features, roads, water, boundaries)."""
    frames = [data.features, data.roads, data.water]
    frames += [f for f in (data.boundaries, data.buildings) if f is not None]
    return sum(len(f.to_json(drop_id=True).encode()) for f in frames if len(f))


@st.cache_data(ttl=60, max_entries=256, show_spinner=False)
def cached_map_data(url: str, bbox: tuple[float, float, float, float], zoom: int,
                    shift: Literal["gcj02"] | None) -> tuple[MapData, int]:
    """One screen's map data and its size, shared by every session showing that view (grids
    change only when a version is published: ``forget_map_data`` then)."""
    data = map_data(state.get_store(), View(bbox=bbox, zoom=zoom), stats=state.stats(), shift=shift)
    return data, payload_bytes(data)


def forget_map_data() -> None:
    cached_map_data.clear()


def show_overview_map(
    store: Store,
    *,
    key: str,
    center: tuple[float, float],
    zoom: int,
    height: int = 680,
    config: BasemapConfig | None = None,
) -> MapData:
    lang = state.lang()
    config = config or state.basemap()
    state.local_assets(state.static_prefix())
    shift: Literal["gcj02"] | None = "gcj02" if needs_gcj02_shift(config) else None
    view = view_from_state(st.session_state.get(key), fallback=initial_view(center, zoom), shifted=bool(shift))
    b = view.bbox
    data, size = cached_map_data(store.url, (round(b[0], 5), round(b[1], 5), round(b[2], 5), round(b[3], 5)), view.zoom, shift)
    base = build_base_map(config=config, center=center, zoom=zoom)
    st_folium(
        base,
        key=key,
        height=height,
        use_container_width=True,
        feature_group_to_add=with_release(overlay_groups(data, lang)),
        returned_objects=["bounds", "zoom"],
    )
    cols = st.columns(3)
    cols[0].caption(f"{t('map.level', lang)}: **{t('map.level.' + data.level, lang)}**")
    cols[1].caption(f"{t('map.features', lang)}: {len(data.features):,}")
    cols[2].caption(f"{t('map.payload', lang)}: {size / 1024:,.0f} KB")
    return data


def display_frame(frame: Any, shifted: bool) -> Any:
    """A lon/lat frame as drawn: shifted to GCJ-02 when the tiles are GCJ-02, else unchanged."""
    if not shifted or frame is None or not len(frame):
        return frame
    return from_wgs84(frame, target="gcj02")


def unshift_click(lon: float, lat: float, shifted: bool) -> tuple[float, float]:
    """A map click in WGS84 (clicks on GCJ-02 tiles come in GCJ-02)."""
    if not shifted:
        return lon, lat
    x, y = gcj02_to_wgs84(lon, lat)
    return float(x), float(y)
