"""Coverage layers: grids filled by the share of road seen, blind spots, suggested cameras; every
text escaped."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import LineString, Point, box

from layers.coverage import (
    BLIND_COLOR,
    LABEL_KEYS,
    NO_DATA_COLOR,
    RAMP,
    build_blind_spots_layer,
    build_coverage_layer,
    build_suggestions_layer,
    share_color,
)
from tests.layers.rendering import render

HOSTILE = "<script>alert('x')</script><img src=x onerror=alert(1)>"
LABELS = {k: f"L[{k}]<b>" for k in LABEL_KEYS}


@pytest.fixture
def areas() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {
            "code": ["211202001001001", "211202001001002"],
            "name": [HOSTILE, "二网格"],
            "road_km": [1.25, 0.0],
            "road_share": [0.05, np.nan],
            "open_share": [0.01, np.nan],
            "cameras": [2, 0],
            "online_share": [1.0, np.nan],
        },
        geometry=[box(123.83, 42.28, 123.84, 42.29), box(123.84, 42.28, 123.85, 42.29)],
        crs=4326,
    )


def test_share_colours() -> None:
    assert share_color(0.0) == RAMP[0][1] and share_color(0.99) == RAMP[-1][1] and share_color(1.0) == RAMP[-1][1]
    assert share_color(np.nan) == NO_DATA_COLOR and share_color(None) == NO_DATA_COLOR
    assert share_color(0.3) == "#e0a800"


def test_coverage_layer_fills_and_escapes(areas) -> None:
    html = render(build_coverage_layer(areas, labels=LABELS))
    assert HOSTILE not in html and "&lt;script&gt;alert(&#x27;x&#x27;)" in html
    assert "L[camcov.road_share]&lt;b&gt;" in html and "L[camcov.road_share]<b>" not in html
    assert RAMP[0][1] in html and NO_DATA_COLOR in html
    assert "5.0%" in html and "1.25" in html


def test_blind_spots_layer(areas) -> None:
    spots = gpd.GeoDataFrame(
        {"code": [HOSTILE, "211202001001002"], "length_m": [85.0, 21.4]},
        geometry=[LineString([(123.835, 42.285), (123.836, 42.285)]), None],
        crs=4326,
    )
    html = render(build_blind_spots_layer(spots, labels=LABELS))
    assert BLIND_COLOR in html and "85 m" in html and "21 m" not in html  # the row with no line is left out
    assert HOSTILE not in html
    assert len(build_blind_spots_layer(spots.iloc[:0], labels=LABELS)._children) == 0


def test_suggestions_layer() -> None:
    picks = gpd.GeoDataFrame(
        {"order": [1, 2], "gain_m": [111.2, 53.4]},
        geometry=[Point(123.835, 42.285), Point(123.837, 42.286)],
        crs=4326,
    )
    html = render(build_suggestions_layer(picks, labels=LABELS, range_m=60))
    assert "L[camcov.pick]&lt;b&gt; 1" in html and "111 m" in html and "53 m" in html
    assert html.count("L.circle(") == 2 and '"radius": 60.0' in html
