"""The base map: no overlays, deterministic, safe for MarkerCluster without tiles, local assets."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import folium
import folium.plugins
import pytest
from pydantic import ValidationError

import console.assets as assets
from layers import offline
from layers.basemap import BasemapConfig, build_base_map, needs_gcj02_shift

CENTER = (30.2741, 120.1551)
TIANDITU = "http://t{s}.tianditu.gov.cn/vec_w/wmts?SERVICE=WMTS&TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk=KEY"
AMAP = "http://webrd0{s}.is.autonavi.com/appmaptile?lang=zh_cn&size=1&scale=1&style=8&x={x}&y={y}&z={z}"
LINK_TAG = re.compile(r"""<(script|link)\b[^>]*\b(src|href)=["']([^"']+)["']""", re.IGNORECASE)
FOLIUM_ID = re.compile(r"_[0-9a-f]{32}")


@pytest.fixture
def local_assets() -> Iterator[None]:
    offline.use_local_assets()
    yield
    offline.reset_local_assets()


def _script(m: folium.Map) -> str:
    html = m.get_root().render()
    return FOLIUM_ID.sub("_ID", html)


# --------------------------------------------------------------------------- config


def test_default_config_is_no_tiles() -> None:
    cfg = BasemapConfig()
    assert cfg.kind == "none" and cfg.url is None and cfg.max_zoom == 19
    assert hash(cfg) == hash(BasemapConfig())  # frozen: usable as a cache key


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"kind": "xyz"}, "needs a tile url"),
        ({"kind": "xyz", "url": "http://tiles.intra/tile.png", "attribution": "x"}, "must contain"),
        ({"kind": "wms", "url": TIANDITU, "attribution": "x"}, "kind"),
        ({"max_zoom": 30}, "max_zoom"),
        ({"background": "red; } body { display:none"}, "CSS colour"),
    ],
)
def test_invalid_configs_are_rejected(kwargs: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        BasemapConfig(**kwargs)


def test_gcj02_shift_only_for_gcj02_tiles() -> None:
    assert not needs_gcj02_shift(BasemapConfig())
    assert not needs_gcj02_shift(BasemapConfig(kind="xyz", url=TIANDITU, attribution="天地图"))
    assert needs_gcj02_shift(BasemapConfig(kind="gcj02", url=AMAP, attribution="高德", subdomains="1234"))


# --------------------------------------------------------------------------- build


def test_no_tiles_map() -> None:
    m = build_base_map(config=BasemapConfig(), center=CENTER, zoom=13)
    assert not any(isinstance(c, folium.TileLayer) for c in m._children.values())
    assert m.options["maxZoom"] == 19 and m.options["minZoom"] == 5
    assert m.options["prefer_canvas"] is True and m.control_scale is True
    assert m.location == list(CENTER)
    html = m.get_root().render()
    assert "L.tileLayer" not in html
    assert "L.control.scale()" in html
    assert ".leaflet-container { background: #f2f1ec; }" in html


def test_no_overlays_only_helpers() -> None:
    cfg = BasemapConfig(kind="xyz", url=TIANDITU, attribution="天地图", subdomains=tuple("01234567"))
    m = build_base_map(config=cfg, center=CENTER, zoom=12)
    kinds = sorted(type(c).__name__ for c in m._children.values())
    assert kinds == ["LeafletIconImagePath", "TileLayer", "_MapBackground"]


def test_xyz_tile_layer() -> None:
    cfg = BasemapConfig(kind="xyz", url=TIANDITU, attribution="天地图", subdomains=tuple("01234567"), max_zoom=18)
    m = build_base_map(config=cfg, center=CENTER, zoom=25, min_zoom=6)
    (tile,) = [c for c in m._children.values() if isinstance(c, folium.TileLayer)]
    assert tile.tiles == TIANDITU
    assert tile.options["max_zoom"] == 18 and tile.options["min_zoom"] == 6
    assert tile.options["subdomains"] == tuple("01234567")
    assert m.options["zoom"] == 18  # clamped to max_zoom
    html = m.get_root().render()
    assert '"subdomains": ["0", "1", "2", "3", "4", "5", "6", "7"]' in html


def test_gcj02_tile_layer() -> None:
    cfg = BasemapConfig(kind="gcj02", url=AMAP, attribution="高德地图", subdomains="1234", max_native_zoom=18)
    m = build_base_map(config=cfg, center=CENTER, zoom=12)
    (tile,) = [c for c in m._children.values() if isinstance(c, folium.TileLayer)]
    assert tile.options["subdomains"] == "1234" and tile.options["max_native_zoom"] == 18
    assert tile.options["max_zoom"] == 19


def test_missing_attribution_falls_back_to_the_tile_host() -> None:
    m = build_base_map(config=BasemapConfig(kind="xyz", url="http://tiles.intra:8080/{z}/{x}/{y}.png"), center=CENTER, zoom=12)
    (tile,) = [c for c in m._children.values() if isinstance(c, folium.TileLayer)]
    assert tile.options["attribution"] == "tiles.intra"


def test_bad_center_or_zoom_range() -> None:
    with pytest.raises(ValueError, match="lat, lon"):
        build_base_map(config=BasemapConfig(), center=(120.15, 30.27), zoom=10)
    with pytest.raises(ValueError, match="min_zoom"):
        build_base_map(config=BasemapConfig(max_zoom=10), center=CENTER, zoom=10, min_zoom=11)


def test_marker_cluster_without_tiles_has_max_zoom() -> None:
    """L.markerClusterGroup throws "Map has no maxZoom specified" otherwise, blanking the map."""
    m = build_base_map(config=BasemapConfig(), center=CENTER, zoom=13)
    folium.plugins.MarkerCluster().add_to(m)
    html = m.get_root().render()
    map_options = html[html.index("L.map(") : html.index("L.markerClusterGroup")]
    assert '"maxZoom": 19' in map_options


# --------------------------------------------------------------------------- determinism (no st_folium remounts)


@pytest.mark.parametrize(
    "cfg",
    [
        BasemapConfig(),
        BasemapConfig(kind="xyz", url=TIANDITU, attribution="天地图", subdomains=tuple("01234567")),
        BasemapConfig(kind="gcj02", url=AMAP, attribution="高德地图", subdomains="1234"),
    ],
)
def test_same_config_same_map(cfg: BasemapConfig) -> None:
    a = build_base_map(config=cfg, center=CENTER, zoom=13)
    b = build_base_map(config=cfg, center=CENTER, zoom=13)
    assert _script(a) == _script(b)


def test_same_config_same_st_folium_key() -> None:
    from streamlit_folium import _get_map_string, generate_js_hash

    def key(cfg: BasemapConfig) -> str:
        m = build_base_map(config=cfg, center=CENTER, zoom=13)
        m.get_root().render()
        return generate_js_hash(_get_map_string(m), "map", False)

    cfg = BasemapConfig(kind="xyz", url=TIANDITU, attribution="天地图")
    assert key(cfg) == key(BasemapConfig(kind="xyz", url=TIANDITU, attribution="天地图"))
    assert key(cfg) != key(BasemapConfig())


# --------------------------------------------------------------------------- local assets


def test_base_map_with_plugins_loads_nothing_external(local_assets: None) -> None:
    if not assets.assets_ready(assets.DEFAULT_DEST) and shutil.which("npm") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("npm is missing in CI: the map assets cannot be installed")
        pytest.skip("npm is not installed and console/static/vendor is not ready")
    vendor: Path = assets.install_assets()

    m = build_base_map(config=BasemapConfig(kind="xyz", url=TIANDITU, attribution="天地图"), center=CENTER, zoom=13)
    folium.plugins.Draw().add_to(m)
    folium.plugins.Fullscreen().add_to(m)
    folium.plugins.HeatMap([[CENTER[0], CENTER[1], 1.0]]).add_to(m)
    cluster = folium.plugins.MarkerCluster().add_to(m)
    folium.Marker(CENTER).add_to(cluster)
    point = {"type": "Point", "coordinates": [CENTER[1], CENTER[0]]}
    # a FeatureCollection: GeoJsonTooltip on a bare Feature raises KeyError('features') in folium 0.20
    folium.GeoJson(
        {"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {"n": "a"}, "geometry": point}]},
        tooltip=folium.GeoJsonTooltip(fields=["n"]),
    ).add_to(m)
    html = m.get_root().render()
    urls = [u for _, _, u in LINK_TAG.findall(html)]
    assert len(urls) >= 15
    for url in urls:
        assert url.startswith(offline.DEFAULT_BASE_URL + "/"), f"not local: {url}"
        assert (vendor / url[len(offline.DEFAULT_BASE_URL) + 1 :]).is_file(), url
    # the image path is set before any marker is created
    assert html.index("L.Icon.Default.imagePath") < html.index("L.marker(")


def test_release_previous_overlays_comes_first_and_empties_the_list() -> None:
    import folium
    from streamlit_folium import _get_feature_group_string

    from layers.basemap import BasemapConfig, build_base_map, release_previous_overlays, with_release

    overlay = folium.FeatureGroup(name="cases")
    groups = with_release([overlay])
    assert groups[1] is overlay and len(groups) == 2
    m = build_base_map(config=BasemapConfig(), center=(42.29, 123.84), zoom=12)
    js = _get_feature_group_string(release_previous_overlays(), m, 0)
    # the list is emptied before this group (and every later one) is pushed onto it
    assert js.index("window.feature_group = [];") < js.index("window.feature_group.push(")
    assert "__gcThemeDedup" in js and "--primary-color" in js
