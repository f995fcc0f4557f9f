"""Staff layers render to compact, escaped HTML: latest positions, per-place counts, a track with
stops, patrol coverage and unpatrolled grids."""

from __future__ import annotations

import json
import re

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import LineString, Point, box

from layers.staff import (
    COUNTS_LABEL_KEYS,
    COVERAGE_COLORS,
    COVERAGE_LABEL_KEYS,
    FRESHNESS,
    GAP_COLOR,
    LABEL_KEYS,
    OFFLINE_COLOR,
    ROLE_COLORS,
    STAFF_LABEL_KEYS,
    STALE_COLOR,
    TRACK_LABEL_KEYS,
    TRACK_PALETTE,
    TRACK_STEPS,
    UNPATROLLED_COLOR,
    UNPATROLLED_LABEL_KEYS,
    build_coverage_layer,
    build_staff_counts_layer,
    build_staff_layer,
    build_track_layer,
    build_unpatrolled_layer,
    duration_text,
    palette_color,
    script_json,
)
from store.schema import STAFF_ROLES
from tests.layers.rendering import payload as _payload
from tests.layers.rendering import raw as _raw
from tests.layers.rendering import render as _render
from tests.layers.rendering import urls as _urls

HOSTILE_IMG = "<img src=x onerror=alert(1)>"
HOSTILE_SCRIPT = "</script><script>alert(1)</script>"
NOW = pd.Timestamp("2024-06-01 02:00", tz="UTC")  # 10:00 in Asia/Shanghai

LABELS = {k: k for k in LABEL_KEYS} | {
    "dur.s": "{n} s",
    "dur.min": "{n} min",
    "dur.h": "{n} h",
    "dur.d": "{n} d",
}







@pytest.fixture
def latest() -> gpd.GeoDataFrame:
    ages = [30.0, 400.0, 7200.0, 90.0, 4000.0, 100000.0]
    return gpd.GeoDataFrame(
        {
            "staff_id": [17, 3, 11, 5, 8, 2],
            "name": ["王芳", HOSTILE_IMG, HOSTILE_SCRIPT, "李强", "赵敏", "刘洋"],
            "role": list(STAFF_ROLES),
            "unit_name": ["银河社区", HOSTILE_SCRIPT, "银河社区", "龙山镇", "银河社区", "龙山镇"],
            "ts": [NOW - pd.Timedelta(seconds=a) for a in ages],
            "age_s": ages,
            "freshness": ["online", "stale", "offline", "online", "stale", "offline"],
            "battery": [87.0, np.nan, 5.0, 100.0, 42.0, np.nan],
            "speed": [1.25, np.nan, 0.0, 3.0, 0.5, np.nan],
            "accuracy": [5.0, 8.0, np.nan, 5.0, 5.0, 5.0],
        },
        geometry=[Point(123.841234567, 42.291234567 + i * 0.001) for i in range(6)],
        crs="EPSG:4326",
    )


def _many_staff(n: int, seed: int = 7) -> gpd.GeoDataFrame:
    """A whole city's latest positions: realistic names, 400 units, ages up to a day."""
    rng = np.random.default_rng(seed)
    surnames = list("王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗")
    given = list("芳伟娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂")
    names = ["".join([rng.choice(surnames), *rng.choice(given, rng.integers(1, 3))]) for _ in range(n)]
    ages = rng.uniform(0, 86400, n)
    return gpd.GeoDataFrame(
        {
            "staff_id": rng.permutation(np.arange(100_000, 100_000 + n)),
            "name": names,
            "role": rng.choice(STAFF_ROLES, n),
            "unit_name": [f"银河街道第{i}社区" for i in rng.integers(0, 400, n)],
            "ts": NOW - pd.to_timedelta(ages, unit="s"),
            "age_s": ages,
            "freshness": rng.choice(FRESHNESS, n),
            "battery": np.where(rng.random(n) < 0.1, np.nan, rng.integers(0, 101, n)),
            "speed": np.where(rng.random(n) < 0.2, np.nan, rng.uniform(0, 15, n)),
            "accuracy": rng.uniform(3, 50, n),
        },
        geometry=gpd.points_from_xy(rng.uniform(123.2, 124.6, n), rng.uniform(41.9, 43.0, n)),
        crs="EPSG:4326",
    )


# --------------------------------------------------------------------------- latest positions


def test_label_keys_cover_roles_freshness_and_fields() -> None:
    assert tuple(ROLE_COLORS) == STAFF_ROLES
    assert len(set(ROLE_COLORS.values())) == len(STAFF_ROLES)
    assert STALE_COLOR not in ROLE_COLORS.values() and OFFLINE_COLOR not in ROLE_COLORS.values()
    for role in STAFF_ROLES:
        assert f"role.{role}" in STAFF_LABEL_KEYS
    for state in FRESHNESS:
        assert f"fresh.{state}" in STAFF_LABEL_KEYS and f"fresh.{state}" in COUNTS_LABEL_KEYS
    for keys in (
        STAFF_LABEL_KEYS,
        COUNTS_LABEL_KEYS,
        TRACK_LABEL_KEYS,
        COVERAGE_LABEL_KEYS,
        UNPATROLLED_LABEL_KEYS,
    ):
        assert set(keys) <= set(LABEL_KEYS)


def test_staff_layer_colours_by_role_and_styles_by_freshness(latest: gpd.GeoDataFrame) -> None:
    html = _render(build_staff_layer(latest, labels=LABELS))
    data = _payload(html)
    assert data["rc"][: len(STAFF_ROLES)] == [ROLE_COLORS[r] for r in STAFF_ROLES]
    online, stale, offline = data["fs"]
    assert online["color"] == "#ffffff" and online["fillOpacity"] > stale["fillOpacity"]
    assert stale["color"] == STALE_COLOR and stale["dashArray"]
    assert offline["color"] == OFFLINE_COLOR and offline["fillOpacity"] == 0
    # rows come sorted by staff_id (ids sent as differences), role and freshness as indexes
    assert np.cumsum(data["id"]).tolist() == [2, 3, 5, 8, 11, 17]
    assert [data["r"][k] for k in data["k"]] == [
        "role.volunteer",
        "role.grid_worker_part",
        "role.mediator",
        "role.legal_adviser",
        "role.police",
        "role.grid_worker_full",
    ]
    assert [FRESHNESS[f] for f in data["f"]] == ["offline", "stale", "online", "stale", "offline", "online"]
    # every role's colour appears (the legend uses them too)
    for color in ROLE_COLORS.values():
        assert color in html
    assert "gc-staff-legend" in html


def test_staff_layer_tooltip_data(latest: gpd.GeoDataFrame) -> None:
    data = _payload(_render(build_staff_layer(latest, labels=LABELS)))
    first = len(data["y"]) - 1  # rows are sorted by staff_id: the last one is staff 17
    assert data["n"][first] == "王芳"
    assert data["u"][data["w"][first]] == "银河社区"
    assert data["b"][first] == 87
    assert data["v"][first] == 4.5  # 1.25 m/s
    assert data["a"][first] == 30 and data["now"] == int(NOW.timestamp())
    assert data["off"] == 8 * 3600  # Asia/Shanghai
    assert data["du"] == ["{n} s", "{n} min", "{n} h", "{n} d"]
    assert data["L"]["battery"] == "staff.battery" and data["L"]["seen"] == "staff.last_seen"
    # missing battery / speed go out as null, shown as an em dash
    staff3 = 1  # sorted: 2, 3, ...
    assert data["b"][staff3] is None and data["v"][staff3] is None


def test_staff_layer_escapes_hostile_text(latest: gpd.GeoDataFrame) -> None:
    raw = _raw(build_staff_layer(latest, labels=LABELS))
    assert "<img src=x" not in raw
    assert "</script><script>alert(1)" not in raw
    html = _render(build_staff_layer(latest, labels=LABELS))
    assert HOSTILE_IMG not in html and HOSTILE_SCRIPT not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_staff_layer_escapes_labels(latest: gpd.GeoDataFrame) -> None:
    labels = LABELS | {"role.police": HOSTILE_IMG, "staff.unit": HOSTILE_SCRIPT, "fresh.stale": HOSTILE_IMG}
    raw = _raw(build_staff_layer(latest, labels=labels))
    assert "<img src=x" not in raw and "</script><script>alert(1)" not in raw


def test_staff_layer_rounds_coordinates_and_adds_no_urls(latest: gpd.GeoDataFrame) -> None:
    html = _render(build_staff_layer(latest, labels=LABELS))
    data = _payload(html)
    assert data["x"] == [123.841235] * 6
    assert min(data["y"]) == 42.291235
    assert "123.8412345" not in html and "42.2912345" not in html
    assert _urls(html) == _urls(_raw())


def test_staff_layer_for_a_whole_city_stays_under_one_megabyte() -> None:
    staff = _many_staff(15_000)
    group = build_staff_layer(staff, labels=LABELS)
    size = len(_raw(group).encode("utf-8")) - len(_raw().encode("utf-8"))
    assert size < 1_000_000, size
    data = _payload(_render(build_staff_layer(staff, labels=LABELS)))
    assert len(data["y"]) == len(data["x"]) == len(data["n"]) == 15_000
    assert len(data["u"]) <= 400  # unit names stored once
    assert sorted(np.cumsum(data["id"]).tolist()) == sorted(staff["staff_id"].tolist())


def test_staff_layer_unknown_role_and_missing_values() -> None:
    odd = gpd.GeoDataFrame(
        {
            "staff_id": [1, 2],
            "name": [None, "x"],
            "role": ["inspector", "police"],
            "unit_name": [None, "u"],
            "ts": [pd.NaT, NOW],
            "age_s": [np.nan, np.nan],
            "freshness": ["offline", "online"],
            "battery": [np.nan, np.nan],
            "speed": [np.nan, np.nan],
            "accuracy": [np.nan, np.nan],
        },
        geometry=[Point(123.84, 42.29), None],
        crs="EPSG:4326",
    )
    data = _payload(_render(build_staff_layer(odd, labels=LABELS)))
    assert len(data["y"]) == 1  # the row without a position is left out
    assert data["r"][data["k"][0]] == "inspector" and data["a"] == [None] and data["n"] == ["—"]


def test_staff_layer_empty_is_an_empty_group() -> None:
    empty = gpd.GeoDataFrame({"staff_id": [], "name": []}, geometry=[], crs="EPSG:4326")
    group = build_staff_layer(empty, labels=LABELS, name="Staff", show=False)
    assert isinstance(group, folium.FeatureGroup) and len(group._children) == 0
    assert group.layer_name == "Staff" and group.show is False
    _raw(group)  # renders


# --------------------------------------------------------------------------- counts per place


def test_counts_layer_sizes_by_sqrt_total_and_escapes() -> None:
    counts = gpd.GeoDataFrame(
        {
            "name": [HOSTILE_SCRIPT, "龙山镇", "空村"],
            "online": [300, 20, 0],
            "stale": [60, 5, 0],
            "offline": [40, 0, 0],
        },
        geometry=[Point(123.8, 42.2), Point(123.9, 42.3), Point(124.0, 42.4)],
        crs="EPSG:4326",
    )
    raw = _raw(build_staff_counts_layer(counts, labels=LABELS))
    assert "</script><script>alert(1)" not in raw
    html = _render(build_staff_counts_layer(counts, labels=LABELS))
    data = _payload(html)
    assert data["n"][0] == "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;"
    assert data["c"] == [[300, 60, 40], [20, 5, 0], [0, 0, 0]]
    r_big, r_small, r_empty = data["r"]
    assert r_big == 30.0 and r_empty == 8.0
    assert r_small == pytest.approx(8 + 22 * (25 / 400) ** 0.5, abs=0.05)
    assert data["L"] == {
        "online": "fresh.online",
        "stale": "fresh.stale",
        "offline": "fresh.offline",
        "total": "counts.total",
    }
    assert "gc-staff-count" in html and "L.divIcon" in html
    assert _urls(html) == _urls(_raw())


def test_counts_layer_empty() -> None:
    group = build_staff_counts_layer(
        gpd.GeoDataFrame({"name": []}, geometry=[], crs="EPSG:4326"), labels=LABELS
    )
    assert len(group._children) == 0
    _raw(group)


# --------------------------------------------------------------------------- track


@pytest.fixture
def track() -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    times = [NOW + pd.Timedelta(minutes=5 * i) for i in range(13)]
    xy = [(123.830000123 + 0.001 * i, 42.280000456 + 0.0005 * i) for i in range(13)]
    gap = [False] * 6 + [True] + [False] * 5
    segments = gpd.GeoDataFrame(
        {
            "staff_id": [7] * 12,
            "t0": times[:-1],
            "t1": times[1:],
            "duration_s": [300.0] * 12,
            "distance_m": [110.0] * 12,
            "speed_mps": [0.37] * 12,
            "gap": gap,
        },
        geometry=[LineString([xy[i], xy[i + 1]]) for i in range(12)],
        crs="EPSG:4326",
    ).iloc[::-1]  # order must not matter
    stops = gpd.GeoDataFrame(
        {"start": [times[2]], "end": [times[4]], "duration_s": [600.0], "points": [12]},
        geometry=[Point(xy[3])],
        crs="EPSG:4326",
    )
    return segments, stops


def _features(html: str, with_key: str) -> list[dict]:
    """Every GeoJSON feature in the page whose properties have ``with_key``."""
    found = []
    for m in re.finditer(r"_add\(", html):
        value, _ = json.JSONDecoder().raw_decode(html, m.end())
        if isinstance(value, dict):
            found += [f for f in value.get("features", []) if with_key in f.get("properties", {})]
    return found


def test_track_is_coloured_by_time_with_dashed_grey_gaps(
    track: tuple[gpd.GeoDataFrame, gpd.GeoDataFrame],
) -> None:
    segments, stops = track
    html = _render(build_track_layer(segments, stops=stops, labels=LABELS))
    lines = _features(html, "g")
    gaps = [f for f in lines if f["properties"]["g"]]
    assert len(gaps) == 1 and gaps[0]["properties"]["c"] == GAP_COLOR
    assert gaps[0]["properties"]["t"] == "track.gap: 2024-06-01 10:30 – 10:35"
    assert '"dashArray": "6 6"' in html and GAP_COLOR in html
    coloured = [f for f in lines if not f["properties"]["g"]]
    colors = [f["properties"]["c"] for f in coloured]
    shades = [palette_color(i / (TRACK_STEPS - 1)) for i in range(TRACK_STEPS)]
    steps = [shades.index(c) for c in colors]  # each line has the shade of its middle time
    assert steps == sorted(steps) and steps[0] < TRACK_STEPS // 8 and steps[-1] >= TRACK_STEPS * 7 // 8
    assert len(set(colors)) == len(colors) > 2  # one line per shade: neighbours of one shade are joined
    # coordinates rounded to 6 decimals
    assert coloured[0]["geometry"]["coordinates"][0] == [123.83, 42.28]
    assert "123.830000123" not in html and "42.280000456" not in html


def test_track_ends_stops_and_legend_in_local_time(track: tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]) -> None:
    segments, stops = track
    html = _render(build_track_layer(segments, stops=stops, labels=LABELS))
    stop = _features(html, "d")
    assert len(stop) == 1
    assert stop[0]["properties"] == {"t": "2024-06-01 10:10 – 10:20", "d": "10 min"}
    ends = _features(html, "k")
    assert [(f["properties"]["k"], f["properties"]["t"]) for f in ends] == [
        ("track.start", "2024-06-01 10:00"),
        ("track.end", "2024-06-01 11:00"),
    ]
    assert ends[0]["geometry"]["coordinates"] == [123.83, 42.28]
    assert "gc-track-legend" in html
    assert 'gc-track-first\\">2024-06-01 10:00<' in html and 'gc-track-last\\">2024-06-01 11:00<' in html
    assert TRACK_PALETTE[0] in html and TRACK_PALETTE[-1] in html
    # another zone moves every shown time
    utc = _render(build_track_layer(segments, stops=stops, labels=LABELS, tz="UTC"))
    assert 'gc-track-first\\">2024-06-01 02:00<' in utc
    assert _urls(html) == _urls(_raw())


def test_track_escapes_labels(track: tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]) -> None:
    segments, stops = track
    labels = LABELS | {"track.gap": HOSTILE_SCRIPT, "track.start": HOSTILE_IMG, "track.time": HOSTILE_IMG}
    raw = _raw(build_track_layer(segments, stops=stops, labels=labels))
    assert "<img src=x" not in raw and "</script><script>alert(1)" not in raw


def test_track_empty_and_without_stops() -> None:
    empty = gpd.GeoDataFrame({"staff_id": [], "t0": [], "t1": [], "gap": []}, geometry=[], crs="EPSG:4326")
    group = build_track_layer(empty, stops=empty, labels=LABELS)
    assert len(group._children) == 0
    _raw(group)
    one = gpd.GeoDataFrame(
        {"staff_id": [1], "t0": [NOW], "t1": [NOW], "gap": [False]},
        geometry=[LineString([(123.84, 42.29), (123.841, 42.29)])],
        crs="EPSG:4326",
    )
    html = _render(build_track_layer(one, labels=LABELS))
    assert 'gc-track-first\\">2024-06-01 10:00<' in html
    still = one.set_geometry(
        [LineString([(123.84, 42.29), (123.8400000001, 42.29)])]
    )  # one point once rounded
    html = _render(build_track_layer(still, labels=LABELS))
    assert _features(html, "g") == [] and 'gc-track-first\\">2024-06-01 10:00<' in html


def test_palette_and_durations() -> None:
    assert palette_color(0) == TRACK_PALETTE[0] and palette_color(1) == TRACK_PALETTE[-1]
    assert palette_color(0.5) == TRACK_PALETTE[1]
    assert palette_color(-3) == TRACK_PALETTE[0] and palette_color(float("nan")) == TRACK_PALETTE[0]
    assert [duration_text(s, LABELS) for s in (5, 180, 7300, 200000)] == ["5 s", "3 min", "2 h", "2 d"]
    assert duration_text(float("nan"), LABELS) == "—"
    assert duration_text(60, LABELS | {"dur.min": "<{n}>"}) == "&lt;1&gt;"


def test_script_json_is_safe_in_a_script_tag() -> None:
    text = script_json({"a": HOSTILE_SCRIPT + "\u2028\u2029'&", "b": 1.5})
    assert "<" not in text and ">" not in text and "&" not in text and "'" not in text
    assert "\u2028" not in text and "\u2029" not in text
    assert json.loads(text) == {"a": HOSTILE_SCRIPT + "\u2028\u2029'&", "b": 1.5}
    with pytest.raises(ValueError):
        script_json(float("nan"))


# --------------------------------------------------------------------------- coverage, unpatrolled


def test_coverage_layer_colours_and_tooltips() -> None:
    buildings = gpd.GeoDataFrame(
        {
            "name": [HOSTILE_IMG, "3号楼"],
            "households": [24, 36],
            "passed": [True, False],
            "passed_at": [NOW + pd.Timedelta(minutes=7), pd.NaT],
        },
        geometry=[box(123.84, 42.29, 123.8401234567, 42.2901), box(123.842, 42.29, 123.8421, 42.2901)],
        crs="EPSG:4326",
    )
    raw = _raw(build_coverage_layer(buildings, labels=LABELS))
    assert "<img src=x" not in raw
    html = _render(build_coverage_layer(buildings, labels=LABELS))
    props = [f["properties"] for f in _features(html, "a")]
    assert props[0] == {
        "p": True,
        "n": "&lt;img src=x onerror=alert(1)&gt;",
        "h": "24",
        "s": "cov.passed",
        "a": "2024-06-01 10:07",
    }
    assert props[1]["s"] == "cov.not_passed" and props[1]["a"] == "—"
    assert COVERAGE_COLORS["passed"] in html and COVERAGE_COLORS["not_passed"] in html
    assert "123.840123," in html and "123.8401234567" not in html
    assert "cov.passed_at" in html  # the tooltip's alias
    empty = build_coverage_layer(gpd.GeoDataFrame({"name": []}, geometry=[], crs="EPSG:4326"), labels=LABELS)
    assert len(empty._children) == 0


def test_unpatrolled_layer_outlines_red_and_escapes() -> None:
    grids = gpd.GeoDataFrame(
        {"code": ["211202001001003"], "name": [HOSTILE_SCRIPT], "households": [112]},
        geometry=[box(123.84, 42.29, 123.845, 42.295)],
        crs="EPSG:4326",
    )
    raw = _raw(build_unpatrolled_layer(grids, labels=LABELS))
    assert "</script><script>alert(1)" not in raw
    html = _render(build_unpatrolled_layer(grids, labels=LABELS))
    (feature,) = _features(html, "c")
    assert feature["properties"] == {
        "c": "211202001001003",
        "n": "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;",
        "h": "112",
    }
    assert UNPATROLLED_COLOR in html and '"dashArray": "6 4"' in html
    assert "unp.households" in html
    empty = build_unpatrolled_layer(
        gpd.GeoDataFrame({"code": []}, geometry=[], crs="EPSG:4326"), labels=LABELS
    )
    assert len(empty._children) == 0
    _raw(empty)
