"""The replay control embeds the fixes as safe JSON with escaped labels and stable DOM hooks."""

from __future__ import annotations

import json
import re

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from branca.element import MacroElement
from shapely.geometry import Point

from layers.replay import REPLAY_LABEL_KEYS, build_replay_control, replay_points

HOSTILE_IMG = "<img src=x onerror=alert(1)>"
HOSTILE_SCRIPT = "</script><script>alert(1)</script>"
T0 = pd.Timestamp("2024-06-01 00:30", tz="UTC")  # 08:30 in Asia/Shanghai
LABELS = {k: k for k in REPLAY_LABEL_KEYS}
HOOKS = ("gc-replay", "gc-replay-play", "gc-replay-slider", "gc-replay-speed", "gc-replay-time", "data-epoch")


def _raw(control: MacroElement, *, in_group: bool = False) -> str:
    m = folium.Map(location=(42.29, 123.84), zoom_start=15, tiles=None)
    if in_group:
        group = folium.FeatureGroup(name="replay").add_to(m)
        control.add_to(group)
    else:
        control.add_to(m)
    return m.get_root().render()


def _var(html: str, name: str) -> object:
    start = html.index(f"var {name} = ") + len(f"var {name} = ")
    value, _ = json.JSONDecoder().raw_decode(html, start)
    return value


@pytest.fixture
def fixes() -> gpd.GeoDataFrame:
    seconds = [600, 0, 60, 180, 240.4]  # unsorted, one with a fraction of a second
    return gpd.GeoDataFrame(
        {"ts": [T0 + pd.Timedelta(seconds=s) for s in seconds], "speed": [1.0, np.nan, 2.5, 0.0, 1.2]},
        geometry=[Point(123.84 + s / 100_000, 42.29 + s / 200_000 + 1.23e-9) for s in seconds],
        crs="EPSG:4326",
    )


def test_points_are_sorted_rounded_lat_lon_epoch(fixes: gpd.GeoDataFrame) -> None:
    start = int(T0.timestamp())
    assert replay_points(fixes) == [
        [42.29, 123.84, start],
        [42.2903, 123.8406, start + 60],
        [42.2909, 123.8418, start + 180],
        [42.291202, 123.842404, start + 240],
        [42.293, 123.846, start + 600],
    ]


def test_control_embeds_points_speeds_and_local_offset(fixes: gpd.GeoDataFrame) -> None:
    control = build_replay_control(fixes, labels=LABELS)
    assert isinstance(control, MacroElement)
    html = _raw(control)
    assert _var(html, "P") == replay_points(fixes)
    config = _var(html, "C")
    assert isinstance(config, dict)
    assert config["speeds"] == [1, 10, 60, 300, 1800] and config["speed"] == 60
    assert config["off"] == 8 * 3600 and config["position"] == "bottomleft"
    assert config["L"] == {
        "play": "replay.play",
        "pause": "replay.pause",
        "speed": "replay.speed",
        "time": "replay.time",
        "noTrack": "replay.no_track",
    }
    for hook in HOOKS:
        assert hook in html
    # the control is attached to this map's variable, and no asset URL is added
    map_name = re.search(r"var (map_[0-9a-f]+) = L\.map", html)
    assert map_name and f"var host = {map_name.group(1)};" in html
    plain = folium.Map(location=(42.29, 123.84), zoom_start=15, tiles=None).get_root().render()
    assert set(re.findall(r"https?://[^\s\"'<>)]+", html)) == set(re.findall(r"https?://[^\s\"'<>)]+", plain))


def test_custom_speeds_zone_and_position(fixes: gpd.GeoDataFrame) -> None:
    html = _raw(
        build_replay_control(fixes, labels=LABELS, tz="UTC", speeds=(2, 30.0, 0.5), position="topright")
    )
    config = _var(html, "C")
    assert isinstance(config, dict)
    assert config["speeds"] == [2, 30, 0.5] and config["speed"] == 2
    assert config["off"] == 0 and config["position"] == "topright"
    with pytest.raises(ValueError):
        build_replay_control(fixes, labels=LABELS, speeds=())
    with pytest.raises(ValueError):
        build_replay_control(fixes, labels=LABELS, speeds=(10, -1))


def test_labels_are_escaped_and_json_is_script_safe(fixes: gpd.GeoDataFrame) -> None:
    labels = LABELS | {
        "replay.play": HOSTILE_SCRIPT,
        "replay.no_track": HOSTILE_IMG,
        "replay.time": "line\u2028break\u2029",
    }
    html = _raw(build_replay_control(fixes, labels=labels))
    assert "</script><script>alert(1)" not in html
    assert "<img src=x" not in html
    assert "\u2028" not in html and "\u2029" not in html
    config = _var(html, "C")
    assert isinstance(config, dict)
    assert config["L"]["play"] == "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;"
    assert config["L"]["noTrack"] == "&lt;img src=x onerror=alert(1)&gt;"
    assert config["L"]["time"] == "line\u2028break\u2029"  # decoded by JSON, never raw in the page


@pytest.mark.parametrize("count", [0, 1])
def test_no_track_with_fewer_than_two_fixes(fixes: gpd.GeoDataFrame, count: int) -> None:
    few = fixes.iloc[:count]
    html = _raw(build_replay_control(few, labels=LABELS))
    points = _var(html, "P")
    assert isinstance(points, list) and len(points) == count
    assert "gc-replay-empty" in html and "P.length < 2" in html


def test_fixes_without_time_or_position_are_left_out(fixes: gpd.GeoDataFrame) -> None:
    broken = gpd.GeoDataFrame(
        {"ts": [T0, pd.NaT, T0 + pd.Timedelta(seconds=30)], "speed": [np.nan] * 3},
        geometry=[Point(123.84, 42.29), Point(123.85, 42.3), None],
        crs="EPSG:4326",
    )
    assert replay_points(broken) == [[42.29, 123.84, int(T0.timestamp())]]
    empty = gpd.GeoDataFrame({"ts": [], "speed": []}, geometry=[], crs="EPSG:4326")
    assert replay_points(empty) == []


def test_control_inside_a_feature_group_follows_the_group(fixes: gpd.GeoDataFrame) -> None:
    html = _raw(build_replay_control(fixes, labels=LABELS), in_group=True)
    group = re.search(r"var (feature_group_[0-9a-f]+) = L\.featureGroup", html)
    assert group and f"var host = {group.group(1)};" in html
    assert 'host.on("add"' in html and 'host.on("remove"' in html
