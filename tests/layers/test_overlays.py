"""Grid, unit and context layers render to HTML with escaped text and the right styles."""

from __future__ import annotations

import folium
import geopandas as gpd
import pandas as pd
import pytest
from shapely.geometry import LineString, box

from layers.context import build_context_layer
from layers.grids import LABEL_KEYS as GRID_KEYS
from layers.grids import build_grids_layer
from layers.units import LABEL_KEYS as UNIT_KEYS
from layers.units import build_units_layer

HOSTILE = "<script>alert('x')</script><img src=x onerror=alert(1)>"


def _render(*groups: folium.FeatureGroup) -> str:
    """The page's HTML with folium's JSON escapes of < > & ' undone: what the browser's JS sees."""
    m = folium.Map(location=(42.29, 123.84), zoom_start=15, tiles=None)
    for g in groups:
        g.add_to(m)
    html = m.get_root().render()
    for esc, ch in (("\\u003c", "<"), ("\\u003e", ">"), ("\\u0026", "&"), ("\\u0027", "'")):
        html = html.replace(esc, ch)
    return html


@pytest.fixture
def grids() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "code": ["211202001001001", "211202001001002", "211202001001901"],
            "name": ["第1网格", HOSTILE, "小学专属网格"],
            "unit_name": ["银河社区", "银河社区", "银河社区"],
            "households": [96, 131, 0],
            "band_min": pd.array([80, 80, None], dtype="Int64"),  # as the stores return them
            "band_max": pd.array([120, 120, None], dtype="Int64"),
            "worker": ["王芳", HOSTILE, None],
            "status": ["in_band", "over", "dedicated"],
        },
        geometry=[box(123.84, 42.29, 123.842, 42.292), box(123.842, 42.29, 123.844, 42.292), box(123.8405, 42.2905, 123.841, 42.291)],
        crs="EPSG:4326",
    )


def test_grids_layer_escapes_text_and_shows_household_counts(grids: gpd.GeoDataFrame) -> None:
    labels = {k: k for k in GRID_KEYS}
    html = _render(build_grids_layer(grids, labels=labels))
    assert HOSTILE not in html
    assert "onerror=alert(1)>" not in html
    assert "&lt;script&gt;" in html
    # each grid's tooltip fields carry its household count, band and code, under translated labels
    assert '"h": "96"' in html and '"h": "131"' in html
    assert '"b": "80\\u2013120"' in html  # 80–120, as folium's JSON writes it
    assert '"c": "211202001001002"' in html
    assert "grid.households" in html  # the alias (here the key itself as label)
    # colours by band status
    assert "#2e9e5b" in html and "#d64545" in html and "#3b6fd8" in html


def test_grids_layer_empty_frame_is_an_empty_group() -> None:
    empty = gpd.GeoDataFrame({"code": []}, geometry=[], crs="EPSG:4326")
    group = build_grids_layer(empty, labels={k: k for k in GRID_KEYS})
    assert isinstance(group, folium.FeatureGroup)
    assert len(group._children) == 0


def test_units_layer_colours_by_band_share_and_escapes() -> None:
    units = gpd.GeoDataFrame(
        {
            "code": ["211202001", "211202101"],
            "name": [HOSTILE, "龙山镇"],
            "grids": [40, 12],
            "households": [4000, 480],
            "in_band_share": [0.975, 0.5],
            "staff": [48, 15],
            "open_cases": [12, 3],
        },
        geometry=[box(123.8, 42.2, 123.9, 42.3), box(123.9, 42.2, 124.0, 42.3)],
        crs="EPSG:4326",
    )
    html = _render(build_units_layer(units, labels={k: k for k in UNIT_KEYS}))
    assert HOSTILE not in html
    assert '"b": "97.5%"' in html and '"b": "50.0%"' in html
    assert '"h": "4,000"' in html
    assert "#2e9e5b" in html and "#d64545" in html


def test_context_layer_is_not_interactive() -> None:
    roads = gpd.GeoDataFrame({"kind": ["arterial"]}, geometry=[LineString([(123.8, 42.2), (123.9, 42.3)])], crs="EPSG:4326")
    water = gpd.GeoDataFrame({"kind": ["river"]}, geometry=[box(123.8, 42.25, 123.9, 42.251)], crs="EPSG:4326")
    html = _render(build_context_layer(roads=roads, water=water))
    assert '"interactive": false' in html
    assert "#b9d7f0" in html
