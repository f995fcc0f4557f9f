"""The console's base map: a folium.Map with no overlays.

The intranet has no public tiles. A base map is either

* ``none``: no tiles at all, a light background; the vector context (districts,
  roads, grid cells) drawn by other layers is the map;
* ``xyz``: a WGS84/Web-Mercator XYZ tile server (an intranet tile server, or
  Tianditu ``..._w`` layers with a key);
* ``gcj02``: an XYZ server whose tiles are in GCJ-02 (AMap-style). WGS84 data drawn
  on it must be shifted to GCJ-02 first: see :func:`needs_gcj02_shift`.

:func:`build_base_map` is deterministic: the same config, centre and zoom give the same
map script (modulo folium's random element ids, which streamlit-folium normalises), so
``st_folium`` does not remount the map on every rerun. Overlays are added by the caller.
"""

from __future__ import annotations

import re
from typing import Literal
from urllib.parse import urlsplit

import folium
from folium.elements import MacroElement
from folium.template import Template
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from layers.offline import add_icon_image_path

__all__ = [
    "DEFAULT_BACKGROUND",
    "BasemapConfig",
    "BasemapKind",
    "build_base_map",
    "needs_gcj02_shift",
    "release_previous_overlays",
    "with_release",
]

BasemapKind = Literal["none", "xyz", "gcj02"]
DEFAULT_BACKGROUND = "#f2f1ec"
"""Map background when there are no tiles: light and warm, so thin grey/blue vector lines read well."""

_PLACEHOLDERS = re.compile(r"\{(x|y|-y|z)\}")
# An http(s) template with nothing that could break out of the JS string or HTML it ends up in.
_TILE_URL = re.compile(r"^https?://[^\s<>\"'`\\]+$")
_CSS_COLOUR = re.compile(r"^(#[0-9a-fA-F]{3,8}|[a-zA-Z]+|(rgb|rgba|hsl|hsla)\([0-9.,%\s/]+\))$")


class BasemapConfig(BaseModel):
    """What is under the vector layers. Immutable (hashable, safe to cache on)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: BasemapKind = "none"
    url: str | None = None
    """XYZ template, e.g. ``http://tiles.intra/{z}/{x}/{y}.png``,
    ``http://t{s}.tianditu.gov.cn/vec_w/wmts?...&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk=KEY``
    or ``http://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}``."""
    attribution: str = ""
    """Credit shown in the corner; when empty, the tile server's host name is shown."""
    max_zoom: int = Field(default=19, ge=1, le=24)
    max_native_zoom: int | None = Field(default=None, ge=0, le=24)
    """Highest zoom the tile server has; Leaflet scales those tiles up beyond it."""
    subdomains: str | tuple[str, ...] = "abc"
    """Values for ``{s}``: a string of single characters, or a tuple (``("0", "1", ...)``)."""
    background: str = DEFAULT_BACKGROUND
    """CSS colour behind the tiles (the whole map for kind ``none``)."""

    @field_validator("url")
    @classmethod
    def _strip_url(cls, v: str | None) -> str | None:
        v = v.strip() if v else None
        return v or None

    @field_validator("background")
    @classmethod
    def _check_background(cls, v: str) -> str:
        if not _CSS_COLOUR.match(v.strip()):
            raise ValueError(f"background must be a CSS colour, got {v!r}")
        return v.strip()

    @field_validator("subdomains")
    @classmethod
    def _check_subdomains(cls, v: str | tuple[str, ...]) -> str | tuple[str, ...]:
        if not v:
            raise ValueError("subdomains must not be empty")
        return v

    @model_validator(mode="after")
    def _check_tiles(self) -> BasemapConfig:
        if self.kind == "none":
            return self
        if not self.url:
            raise ValueError(f"basemap kind {self.kind!r} needs a tile url")
        if not _TILE_URL.match(self.url):
            raise ValueError(f"tile url must be an http(s) address without quotes, spaces or <>: {self.url!r}")
        found = set(_PLACEHOLDERS.findall(self.url))
        if "x" not in found or "z" not in found or not ({"y", "-y"} & found):
            raise ValueError(f"tile url must contain {{x}}, {{y}} (or {{-y}}) and {{z}}: {self.url!r}")
        if "{s}" in self.url and not self.subdomains:
            raise ValueError("tile url uses {s} but no subdomains are set")
        if self.max_native_zoom is not None and self.max_native_zoom > self.max_zoom:
            raise ValueError("max_native_zoom cannot exceed max_zoom")
        return self


def _host(url: str) -> str:
    """Fallback attribution: folium refuses a custom tile layer without one."""
    return urlsplit(url).hostname or "tiles"


def needs_gcj02_shift(config: BasemapConfig) -> bool:
    """True when WGS84 geometry must be shifted to GCJ-02 to line up with the tiles."""
    return config.kind == "gcj02"


class _MapBackground(MacroElement):
    """A header style giving the map container a background colour.

    A header ``<style>`` (not a script): streamlit-folium copies the header into its
    frame with ``innerHTML``, which applies styles, and renames the map id to
    ``map_div`` there.
    """

    _template = Template(
        """
        {% macro header(this, kwargs) %}
            <style>#{{ this._parent.get_name() }}.leaflet-container { background: {{ this.colour }}; }</style>
        {% endmacro %}
        """
    )

    def __init__(self, colour: str) -> None:
        super().__init__()
        self._name = "MapBackground"
        self.colour = colour


def build_base_map(
    *,
    config: BasemapConfig,
    center: tuple[float, float],
    zoom: int,
    min_zoom: int = 5,
) -> folium.Map:
    """A folium.Map for ``config``, centred on ``center`` = (lat, lon), with no overlays.

    Canvas renderer, scale control, ``maxZoom`` always set on the map itself (folium
    only passes ``max_zoom`` to the tile layer it creates, and MarkerCluster throws
    "Map has no maxZoom specified" on a map without it), and ``L.Icon.Default.imagePath``
    pointing at the locally served Leaflet images (:func:`layers.offline.add_icon_image_path`).
    Call :func:`layers.offline.use_local_assets` once at start-up so the scripts and
    stylesheets are local too.
    """
    lat, lon = float(center[0]), float(center[1])
    if not (-90.0 <= lat <= 90.0 and -180.0 <= lon <= 180.0):
        raise ValueError(f"center must be (lat, lon) in degrees, got {center!r}")
    if not 0 <= min_zoom <= config.max_zoom:
        raise ValueError(f"min_zoom {min_zoom} must be between 0 and max_zoom {config.max_zoom}")
    zoom = max(min_zoom, min(int(zoom), config.max_zoom))

    m = folium.Map(
        location=(lat, lon),
        tiles=None,
        zoom_start=zoom,
        control_scale=True,
        prefer_canvas=True,
        # Map options proper (camelised by folium): Map(min_zoom=, max_zoom=) would only
        # reach a tile layer, and there is none for kind "none".
        minZoom=min_zoom,
        maxZoom=config.max_zoom,
    )
    add_icon_image_path(m)
    m.add_child(_MapBackground(config.background), name="map_background")
    if config.kind != "none":
        assert config.url is not None  # guaranteed by the validator
        folium.TileLayer(
            tiles=config.url,
            attr=config.attribution.strip() or _host(config.url),
            name="basemap",
            min_zoom=min_zoom,
            max_zoom=config.max_zoom,
            max_native_zoom=config.max_native_zoom or config.max_zoom,
            subdomains=config.subdomains,  # type: ignore[arg-type]  # Leaflet takes a string or an array
            control=False,
        ).add_to(m)
    return m


class _ReleaseOverlays(MacroElement):
    """``window.feature_group = []`` before the new overlays are added (see
    :func:`release_previous_overlays`)."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        window.feature_group = [];
        if (!window.__gcThemeDedup) {
            // Streamlit adds one more theme <style> (":root { --primary-color … }") to the map's
            // frame on every render and never removes the older ones: keep only the newest.
            window.__gcThemeDedup = new MutationObserver(function () {
                var old = Array.prototype.filter.call(document.querySelectorAll("style"), function (e) {
                    return e.textContent.indexOf("--primary-color") >= 0;
                });
                old.slice(0, -1).forEach(function (e) { e.remove(); });
            });
            window.__gcThemeDedup.observe(document.head, {childList: true});
            window.__gcThemeDedup.observe(document.body, {childList: true});
        }
        {% endmacro %}
        """
    )

    def __init__(self) -> None:
        super().__init__()
        self._name = "ReleaseOverlays"


def release_previous_overlays() -> folium.FeatureGroup:
    """An empty overlay to send first in ``feature_group_to_add``: it lets the browser free the
    overlays of earlier reruns.

    streamlit-folium (0.27) removes the previous overlays from the map before adding the new ones
    but keeps every one of them in ``window.feature_group`` forever (its issue #247), so a map
    whose overlays are re-sent every few seconds (the big screen, the live staff layer) grows its
    JavaScript heap by the size of its overlays on every refresh. The old ones are already off the
    map when this runs, so emptying the list releases them. It also keeps only the newest of the
    theme stylesheets Streamlit adds to the map's frame on every render (a slow DOM growth the
    big screen's hour-long soak showed).
    """
    group = folium.FeatureGroup(name="release_previous_overlays", control=False)
    group.add_child(_ReleaseOverlays())
    return group


def with_release(groups: list[folium.FeatureGroup]) -> list[folium.FeatureGroup]:
    """``groups`` with :func:`release_previous_overlays` first: what every ``st_folium`` call
    passes as ``feature_group_to_add``."""
    return [release_previous_overlays(), *groups]
