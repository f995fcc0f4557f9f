"""Case layers render to compact, escaped HTML: cases by state with deadline rings and a selected
case, the candidates for one case, clusters of similar cases and open cases per unit; clicks map
back to a case, a candidate or a unit."""

from __future__ import annotations

import json
import re
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import MultiPolygon, Point, Polygon, box

from layers.cases import (
    CANDIDATE_COLOR,
    CANDIDATE_LABEL_KEYS,
    CASE_COUNTS_LABEL_KEYS,
    CASE_LABEL_KEYS,
    CLICK_RETURNED_OBJECTS,
    CLUSTER_COLOR,
    CLUSTER_LABEL_KEYS,
    DUE_SOON_COLOR,
    LABEL_KEYS,
    OTHER_STATE_COLOR,
    OVERDUE_COLOR,
    SELECTED_COLOR,
    STATE_COLORS,
    build_candidates_layer,
    build_case_counts_layer,
    build_cases_layer,
    build_clusters_layer,
    candidate_from_click,
    case_from_click,
    clicked_latlng,
    distance_text,
    unit_from_click,
)
from store.schema import CASE_STATES
from tests.layers.rendering import payload as _payload
from tests.layers.rendering import raw as _raw
from tests.layers.rendering import render as _render
from tests.layers.rendering import urls as _urls

HOSTILE_IMG = "<img src=x onerror=alert(1)>"
HOSTILE_SCRIPT = "<script>alert(1)</script>"
HOSTILE_END = "</script><script>alert(1)</script>"
ESCAPED_IMG = "&lt;img src=x onerror=alert(1)&gt;"
ESCAPED_SCRIPT = "&lt;script&gt;alert(1)&lt;/script&gt;"
NOW = pd.Timestamp("2024-06-01 02:00", tz="UTC")  # 10:00 in Asia/Shanghai

LABELS = {k: k for k in LABEL_KEYS} | {
    "dur.s": "{n} s",
    "dur.min": "{n} min",
    "dur.h": "{n} h",
    "dur.d": "{n} d",
    "case.overdue_by": "overdue by {span}",
    "case.due_in": "due in {span}",
    "case.escalated_to": "escalated to {level}",
    "dist.m": "{n} m",
    "dist.km": "{n} km",
    "cluster.similar": "{n} similar cases",
}






def _features(html: str, with_key: str) -> list[dict]:
    """Every GeoJSON feature in the page whose properties have ``with_key``."""
    found = []
    for m in re.finditer(r"_add\(", html):
        value, _ = json.JSONDecoder().raw_decode(html, m.end())
        if isinstance(value, dict):
            found += [f for f in value.get("features", []) if with_key in f.get("properties", {})]
    return found



def _assert_no_raw_html(raw: str) -> None:
    """Nothing hostile survives as markup, neither in HTML nor inside a script's JSON."""
    assert "<img src=x" not in raw
    assert "<script>alert" not in raw
    assert "</script><script>alert" not in raw
    # what JavaScript sees once the JSON is parsed is escaped text too
    unescaped = raw
    for esc, ch in (("\\u003c", "<"), ("\\u003e", ">"), ("\\u0026", "&"), ("\\u0027", "'")):
        unescaped = unescaped.replace(esc, ch)
    assert HOSTILE_IMG not in unescaped and HOSTILE_SCRIPT not in unescaped


def _cases(**overrides: Any) -> gpd.GeoDataFrame:
    data: dict[str, Any] = {
        "id": [12, 3, 7, 5],
        "category": ["road_occupation", "noise", "road_occupation", "garbage"],
        "category_name": ["占道经营", "噪音扰民", "占道经营", "垃圾堆放"],
        "state": ["reported", "dispatched", "in_progress", "filed"],
        "urgency": [1, 3, 2, 1],
        "kind": ["deadline", "immediate", "deadline", "multi_department"],
        "description": ["摊位占用人行道" * 20, "夜间施工噪音", None, "楼下垃圾\n三天没人清理"],
        "address": ["银河路1号", "龙山街7号", None, "北苑小区3栋"],
        "reported_at": [NOW - pd.Timedelta(hours=h) for h in (1, 5, 3, 26)],
        "deadline_at": [
            NOW + pd.Timedelta(minutes=40),
            NOW - pd.Timedelta(hours=2),
            pd.NaT,
            NOW + pd.Timedelta(days=2),
        ],
        "overdue": [False, True, False, False],
        "due_soon": [True, False, False, False],
        "escalation_level": [0, 2, 0, 0],
        "assignee_name": ["王芳", None, "李强", "王芳"],
        "cluster": pd.array([1, pd.NA, 1, pd.NA], dtype="Int64"),
    }
    data.update(overrides)
    return gpd.GeoDataFrame(
        data,
        geometry=[
            Point(123.841234567, 42.291234567),
            Point(123.842, 42.292),
            Point(123.843, 42.293),
            Point(123.844, 42.294),
        ],
        crs="EPSG:4326",
    )


def _hostile_cases() -> gpd.GeoDataFrame:
    return _cases(
        category=[HOSTILE_SCRIPT, HOSTILE_IMG, "c", "d"],
        category_name=[HOSTILE_IMG, None, HOSTILE_SCRIPT, HOSTILE_END],
        description=[HOSTILE_IMG, HOSTILE_SCRIPT, HOSTILE_END, "ok"],
        address=[HOSTILE_SCRIPT, HOSTILE_IMG, HOSTILE_END, "ok"],
        assignee_name=[HOSTILE_IMG, HOSTILE_SCRIPT, None, HOSTILE_END],
        state=["reported", HOSTILE_IMG, "in_progress", HOSTILE_SCRIPT],
    )


def _id_order(data: dict) -> list[int]:
    return np.cumsum(data["id"]).tolist()


# --------------------------------------------------------------------------- keys and colours


def test_label_keys_and_state_colours() -> None:
    assert tuple(STATE_COLORS) == CASE_STATES
    assert len(set(STATE_COLORS.values())) == len(CASE_STATES)
    for ring in (OVERDUE_COLOR, DUE_SOON_COLOR, OTHER_STATE_COLOR):
        assert ring not in STATE_COLORS.values()
    for state in CASE_STATES:
        assert f"cstate.{state}" in CASE_LABEL_KEYS
    for u in (1, 2, 3):
        assert f"urgency.{u}" in CASE_LABEL_KEYS
    for level in ("community", "street", "district"):
        assert f"level.{level}" in CASE_LABEL_KEYS
    for keys in (CASE_LABEL_KEYS, CANDIDATE_LABEL_KEYS, CLUSTER_LABEL_KEYS, CASE_COUNTS_LABEL_KEYS):
        assert set(keys) <= set(LABEL_KEYS)
    assert len(LABEL_KEYS) == len(set(LABEL_KEYS))
    assert set(CLICK_RETURNED_OBJECTS) >= {"last_object_clicked", "last_object_clicked_tooltip"}


# --------------------------------------------------------------------------- cases


def test_cases_layer_colours_by_state_and_rings_by_deadline() -> None:
    html = _render(build_cases_layer(_cases(), labels=LABELS, now=NOW))
    data = _payload(html)
    assert _id_order(data) == [3, 5, 7, 12]  # sorted by id, sent as differences
    assert [data["sl"][s] for s in data["s"]] == [
        "cstate.dispatched",
        "cstate.filed",
        "cstate.in_progress",
        "cstate.reported",
    ]
    assert data["sc"][: len(CASE_STATES)] == [STATE_COLORS[s] for s in CASE_STATES]
    # ring: 2 overdue (case 3), 1 due soon (case 12), 0 otherwise
    assert data["g"] == [2, 0, 0, 1]
    assert data["rg"][2]["color"] == OVERDUE_COLOR and data["rg"][2]["weight"] >= 3.5
    assert data["rg"][1]["color"] == DUE_SOON_COLOR
    # immediate urgency is larger; every radius ≤ 10 px so Leaflet reports the marker's position
    assert data["u"] == [2, 0, 1, 0]
    assert data["rs"][2] > data["rs"][1] > data["rs"][0]
    assert max(data["rs"]) <= 10 and data["rsel"] <= 10
    assert data["sel"] is None and "gc-case-halo" in html  # the halo code is there, not used
    # legend: the states present, overdue, due soon, immediate; no "selected" without a selection
    assert "gc-case-legend" in html
    for s in ("dispatched", "filed", "in_progress", "reported"):
        assert f"cstate.{s}" in html and STATE_COLORS[s] in html
    assert "cstate.closed" not in html.split("gc-case-legend")[1]
    assert "case.overdue" in html and "case.due_soon" in html and "urgency.3" in html
    assert "case.selected" not in html
    assert _urls(html) == _urls(_raw())


def test_cases_layer_tooltip_data_in_local_time() -> None:
    data = _payload(_render(build_cases_layer(_cases(), labels=LABELS, now=NOW)))
    assert data["now"] == int(NOW.timestamp()) and data["off"] == 8 * 3600
    ids = _id_order(data)
    i12, i3, i7, i5 = (ids.index(k) for k in (12, 3, 7, 5))
    assert data["cn"][data["c"][i12]] == "占道经营" and data["c"][i12] == data["c"][i7]  # stored once
    assert data["a"][i12] == 3600 and data["d"][i12] == 2400  # reported 1 h ago, due in 40 min
    assert data["d"][i3] == -7200 and data["e"][i3] == 2  # overdue by 2 h, escalated to street
    assert data["el"] == [
        "",
        "escalated to level.community",
        "escalated to level.street",
        "escalated to level.district",
    ]
    assert data["d"][i7] is None and data["ad"][i7] == "—" and data["ds"][i7] == "—"
    assert data["an"][data["w"][i3]] == "—" and data["an"][data["w"][i12]] == "王芳"
    assert data["w"][i12] == data["w"][i5]  # assignee names stored once
    # descriptions: white space collapsed, cut to 80 characters with an ellipsis
    assert data["ds"][i5] == "楼下垃圾 三天没人清理"
    assert len(data["ds"][i12]) == 80 and data["ds"][i12].endswith("…")
    assert data["L"]["over"] == "overdue by {span}" and data["L"]["due"] == "due in {span}"
    assert data["du"] == ["{n} s", "{n} min", "{n} h", "{n} d"]
    assert data["ul"] == ["urgency.1", "urgency.2", "urgency.3"]
    # another zone moves the offset; another 'now' moves the relative times
    utc = _payload(_render(build_cases_layer(_cases(), labels=LABELS, tz="UTC", now=NOW)))
    assert utc["off"] == 0
    later = _payload(_render(build_cases_layer(_cases(), labels=LABELS, now=NOW + pd.Timedelta(hours=1))))
    assert later["d"][i12] == 2400 - 3600


def test_cases_layer_marks_the_selected_case_and_draws_it_last() -> None:
    html = _render(build_cases_layer(_cases(), labels=LABELS, selected=7, now=NOW))
    data = _payload(html)
    assert _id_order(data) == [3, 5, 12, 7]  # the selected one last: on top
    assert data["sel"] == 3
    assert data["rsel"] > max(data["rs"])
    assert "gc-case-halo" in html and "gc-case-pulse" in html and SELECTED_COLOR in html
    assert "case.selected" in html  # in the legend
    # an id not in the frame selects nothing
    none = _payload(_render(build_cases_layer(_cases(), labels=LABELS, selected=999, now=NOW)))
    assert none["sel"] is None and _id_order(none) == [3, 5, 7, 12]


def test_cases_layer_markers_carry_gc_case_and_report_their_position() -> None:
    html = _render(build_cases_layer(_cases(), labels=LABELS, now=NOW))
    assert "m.gcCase = id" in html
    # the marker's own click listener fixes e.latlng before streamlit-folium reads it, and the
    # tooltip becomes a string streamlit-folium can read
    assert 'm.on("mouseover click", lazy)' in html
    assert "e.latlng = this.getLatLng()" in html and "setTooltipContent" in html
    # the map's own renderer (one shared canvas in the console), not a private L.canvas
    assert "L.canvas" not in html
    data = _payload(html)
    assert data["x"][_id_order(data).index(12)] == 123.841235
    assert "123.8412345" not in html and "42.2912345" not in html


def test_cases_layer_escapes_every_text_field() -> None:
    group = build_cases_layer(_hostile_cases(), labels=LABELS, selected=3, now=NOW)
    raw = _raw(group)
    _assert_no_raw_html(raw)
    data = _payload(_render(group))
    assert ESCAPED_IMG in data["cn"] and ESCAPED_SCRIPT in data["cn"]
    assert ESCAPED_IMG in data["ad"] and ESCAPED_SCRIPT in data["ad"]
    assert ESCAPED_IMG in data["ds"] and ESCAPED_SCRIPT in data["ds"]
    assert ESCAPED_IMG in data["an"] and ESCAPED_SCRIPT in data["an"]
    assert ESCAPED_IMG in data["sl"] and ESCAPED_SCRIPT in data["sl"]  # unknown states show their code
    assert "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in data["ds"]
    # a category without a localised name falls back to its (escaped) code
    assert data["cn"][data["c"][_id_order(data).index(3)]] == ESCAPED_IMG


def test_cases_layer_escapes_labels() -> None:
    labels = LABELS | {
        "cstate.reported": HOSTILE_IMG,
        "case.address": HOSTILE_SCRIPT,
        "case.overdue": HOSTILE_END,
        "case.overdue_by": HOSTILE_IMG + "{span}",
        "case.escalated_to": HOSTILE_SCRIPT + "{level}",
        "level.street": HOSTILE_IMG,
        "urgency.3": HOSTILE_SCRIPT,
        "case.selected": HOSTILE_IMG,
        "dur.h": HOSTILE_IMG,
    }
    _assert_no_raw_html(_raw(build_cases_layer(_cases(), labels=labels, selected=3, now=NOW)))


@pytest.mark.filterwarnings("ignore:GeoSeries.notna:UserWarning")  # empty geometries on purpose
def test_cases_layer_skips_rows_without_geometry_and_tolerates_missing_values() -> None:
    odd = _cases(
        state=["reported", "archived", "filed", "closed"],
        urgency=[None, 9, 0, 3],
        overdue=[None, True, np.nan, False],
        due_soon=[None, None, True, False],
        escalation_level=[None, 1, 0, 0],
        reported_at=[pd.NaT, NOW, NOW, NOW],
        category_name=[None, None, "x", "y"],
    )
    odd = odd.set_geometry([None, Point(123.84, 42.29), Polygon(), Point(123.85, 42.3)])
    data = _payload(_render(build_cases_layer(odd, labels=LABELS, now=NOW)))
    assert _id_order(data) == [3, 5]  # 12 has no geometry, 7 an empty one
    assert data["sl"][data["s"][0]] == "archived" and data["sc"][data["s"][0]] == OTHER_STATE_COLOR
    assert data["u"] == [2, 2]  # out of range clamped to immediate
    assert data["g"] == [2, 0]
    assert data["cn"][data["c"][0]] == "noise"  # the code when the name is missing


def test_cases_layer_empty_is_an_empty_group() -> None:
    empty = gpd.GeoDataFrame({"id": [], "state": []}, geometry=[], crs="EPSG:4326")
    group = build_cases_layer(empty, labels=LABELS, name="Cases", selected=1)
    assert isinstance(group, folium.FeatureGroup) and len(group._children) == 0
    assert group.layer_name == "Cases"
    _raw(group)
    no_geometry = _cases().set_geometry([None] * 4)
    assert len(build_cases_layer(no_geometry, labels=LABELS)._children) == 0


def test_cases_layer_without_legend() -> None:
    html = _render(build_cases_layer(_cases(), labels=LABELS, legend=False, now=NOW))
    assert "gc-case-legend" not in html and "L.control" not in html


def _many_cases(n: int, *, text: bool, seed: int = 11) -> gpd.GeoDataFrame:
    """A city's open cases: realistic categories, states, times and (optionally) texts."""
    rng = np.random.default_rng(seed)
    categories = [f"类别{i}" for i in range(40)]
    open_states = ["reported", "filed", "dispatched", "accepted", "in_progress", "resolved"]
    reported = NOW - pd.to_timedelta(rng.uniform(0, 7 * 86400, n), unit="s")
    due = reported + pd.to_timedelta(rng.uniform(3600, 5 * 86400, n), unit="s")
    deadline = pd.Series(due).where(rng.random(n) > 0.2)
    return gpd.GeoDataFrame(
        {
            "id": rng.permutation(np.arange(200_000, 200_000 + n)),
            "category": rng.choice(categories, n),
            "category_name": rng.choice(categories, n),
            "state": rng.choice(open_states, n),
            "urgency": rng.integers(1, 4, n),
            "kind": "deadline",
            "description": ["夜间施工噪音扰民，已多次反映，请尽快处理" * 3 if text else "" for _ in range(n)],
            "address": [f"银河街道第{i}社区{i % 30}号楼" if text else "" for i in range(n)],
            "reported_at": reported,
            "deadline_at": deadline,
            "overdue": deadline < NOW,
            "due_soon": rng.random(n) < 0.1,
            "escalation_level": rng.integers(0, 4, n),
            "assignee_name": rng.choice([f"网格员{i}" for i in range(300)] + [None], n),
            "cluster": pd.array([pd.NA] * n, dtype="Int64"),
        },
        geometry=gpd.points_from_xy(rng.uniform(123.2, 124.6, n), rng.uniform(41.9, 43.0, n)),
        crs="EPSG:4326",
    )


def test_cases_layer_payload_stays_small_for_2000_cases() -> None:
    base = len(_raw().encode("utf-8"))
    n = 2000
    bare = len(_raw(build_cases_layer(_many_cases(n, text=False), labels=LABELS, now=NOW)).encode()) - base
    assert bare / n < 200, bare / n  # everything but the typed texts: < 200 bytes per case
    full_cases = _many_cases(n, text=True)
    full = len(_raw(build_cases_layer(full_cases, labels=LABELS, now=NOW)).encode()) - base
    texts = sum(len(a.encode()) for a in full_cases["address"]) + n * len(("夜" * 79 + "…").encode())
    assert full - bare <= texts * 1.05  # the texts travel once, cut, and nothing per case besides
    data = _payload(_render(build_cases_layer(full_cases, labels=LABELS, now=NOW)))
    assert len(data["y"]) == n and sorted(_id_order(data)) == sorted(full_cases["id"].tolist())
    assert len(data["cn"]) <= 40 and len(data["an"]) <= 301


# --------------------------------------------------------------------------- candidates


@pytest.fixture
def candidates() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "rank": [2, 1, 3, 4],
            "staff_id": [17, 8, 9, 21],
            "name": ["李强", "王芳", "无位置", "赵敏"],
            "role_label": ["专职网格员", "网格警", "志愿者", "调解员"],
            "distance_m": [850.0, 1234.0, np.nan, 15400.0],
            "distance_kind": ["road", "straight", "none", "road"],
            "eta_s": [240.0, 600.0, np.nan, np.nan],
            "workload": [3, 1.5, 0, 2],
            "reason_text": ["最近", "责任网格", None, ""],
            "lon": [123.845, 123.8381234567, np.nan, 123.9],
            "lat": [42.292, 42.288, np.nan, 42.3],
        }
    )


def test_candidates_layer_numbers_lines_and_labels(candidates: pd.DataFrame) -> None:
    html = _render(build_candidates_layer(candidates, case_point=(123.84, 42.29), labels=LABELS))
    data = _payload(html)
    assert data["r"] == [1, 2, 4] and data["id"] == [8, 17, 21]  # by rank; no position: not drawn
    assert data["c"] == [42.29, 123.84]
    assert data["y"][0] == 42.288 and data["x"][0] == 123.838123
    assert data["k"] == [1, 0, 0]  # straight (dashed), road, road
    assert data["b"] == ["王芳 · ≈1.2 km · 10 min", "李强 · 850 m · 4 min", "赵敏 · 15 km"]
    assert data["t"][1].startswith('<div class="gc-cand-tip"><b>2. 李强</b> · 专职网格员')
    assert "cand.distance: 850 m (cand.road)" in data["t"][1] and "cand.eta: 4 min" in data["t"][1]
    assert "cand.workload: 3<br>最近" in data["t"][1]
    assert "(cand.straight)" in data["t"][0] and "cand.workload: 1.5" in data["t"][0]
    assert "m.gcStaff = D.id[i]" in html and '"6 6"' in html and CANDIDATE_COLOR in html
    assert "interactive: false" in html  # lines never take a click meant for a case
    assert _urls(html) == _urls(_raw())


def test_candidates_layer_escapes_every_text_field(candidates: pd.DataFrame) -> None:
    hostile = candidates.assign(
        name=[HOSTILE_IMG, HOSTILE_SCRIPT, HOSTILE_END, "x"],
        role_label=[HOSTILE_SCRIPT, HOSTILE_IMG, "r", HOSTILE_END],
        reason_text=[HOSTILE_END, HOSTILE_IMG, HOSTILE_SCRIPT, HOSTILE_SCRIPT],
        distance_kind=[HOSTILE_IMG, "road", "none", "straight"],
    )
    labels = LABELS | {"cand.road": HOSTILE_IMG, "dist.m": HOSTILE_SCRIPT + "{n}", "dur.min": HOSTILE_IMG}
    group = build_candidates_layer(hostile, case_point=(123.84, 42.29), labels=labels)
    _assert_no_raw_html(_raw(group))
    data = _payload(_render(group))
    assert data["b"][0].startswith(ESCAPED_SCRIPT) and data["b"][1].startswith(ESCAPED_IMG)
    assert ESCAPED_IMG in data["t"][0] and ESCAPED_SCRIPT in data["t"][1]
    assert data["k"][1] == 2  # an unknown distance kind draws no line


def test_candidates_layer_empty_and_without_positions(candidates: pd.DataFrame) -> None:
    empty = build_candidates_layer(candidates.iloc[:0], case_point=(123.84, 42.29), labels=LABELS)
    assert len(empty._children) == 0
    _raw(empty)
    nowhere = candidates.assign(lon=np.nan)
    assert len(build_candidates_layer(nowhere, case_point=(123.84, 42.29), labels=LABELS)._children) == 0


def test_distance_text() -> None:
    assert [distance_text(m, LABELS) for m in (0, 849.6, 1234, 9960, 15400)] == [
        "0 m",
        "850 m",
        "1.2 km",
        "10.0 km",
        "15 km",
    ]
    assert distance_text(float("nan"), LABELS) == "—" and distance_text(None, LABELS) == "—"
    assert distance_text(5, LABELS | {"dist.m": "<{n}>"}) == "&lt;5&gt;"


# --------------------------------------------------------------------------- clusters


@pytest.mark.filterwarnings("ignore:GeoSeries.notna:UserWarning")  # empty geometries on purpose
def test_clusters_layer_outlines_dashed_purple_with_a_summary() -> None:
    outlines = gpd.GeoDataFrame(
        {
            "cluster": [1, 2],
            "category_name": ["占道经营", HOSTILE_IMG],
            "n": [4, 3],
            "first": [NOW - pd.Timedelta(days=2), NOW - pd.Timedelta(hours=3)],
            "last": [NOW, NOW - pd.Timedelta(hours=1)],
        },
        geometry=[
            box(123.839, 42.289, 123.8421234567, 42.292),
            MultiPolygon([box(123.85, 42.3, 123.851, 42.301), box(123.86, 42.3, 123.861, 42.301)]),
        ],
        crs="EPSG:4326",
    )
    group = build_clusters_layer(outlines, labels=LABELS | {"cluster.similar": HOSTILE_SCRIPT + "{n}"})
    _assert_no_raw_html(_raw(group))
    html = _render(build_clusters_layer(outlines, labels=LABELS))
    props = [f["properties"] for f in _features(html, "t")]
    assert props[0] == {"cluster": 1, "t": "4 similar cases: 占道经营, 2024-05-30 10:00 – 2024-06-01 10:00"}
    assert props[1]["t"] == f"3 similar cases: {ESCAPED_IMG}, 2024-06-01 07:00 – 09:00"
    assert CLUSTER_COLOR in html and '"dashArray": "6 5"' in html and '"fill": false' in html
    assert "123.842123," in html and "123.8421234567" not in html
    empty = build_clusters_layer(
        gpd.GeoDataFrame({"cluster": []}, geometry=[], crs="EPSG:4326"), labels=LABELS
    )
    assert len(empty._children) == 0
    _raw(empty)
    skipped = build_clusters_layer(outlines.set_geometry([None, Polygon()]), labels=LABELS)
    assert len(skipped._children) == 0


# --------------------------------------------------------------------------- counts per unit


def test_case_counts_layer_sizes_by_open_and_shows_overdue_share() -> None:
    counts = gpd.GeoDataFrame(
        {
            "code": ["211202001", "211202002", "211202003"],
            "name": [HOSTILE_IMG, "龙山镇", "空村"],
            "open": [400, 25, 0],
            "overdue": [100, 0, 0],
        },
        geometry=[Point(123.8, 42.2), box(123.9, 42.3, 123.91, 42.31), Point(124.0, 42.4)],
        crs="EPSG:4326",
    )
    group = build_case_counts_layer(counts, labels=LABELS | {"case.open": HOSTILE_SCRIPT})
    _assert_no_raw_html(_raw(group))
    html = _render(build_case_counts_layer(counts, labels=LABELS))
    data = _payload(html)
    assert data["n"][0] == ESCAPED_IMG and data["k"] == ["211202001", "211202002", "211202003"]
    assert data["t"] == [400, 25, 0] and data["p"] == [100, 0, 0]
    r_big, r_mid, r_empty = data["r"]
    assert r_big == 30.0 and r_empty == 10.0
    assert r_mid == pytest.approx(10 + 20 * (25 / 400) ** 0.5, abs=0.05)
    assert data["y"][1] == pytest.approx(42.305) and 123.9 <= data["x"][1] <= 123.91  # polygon: inside
    assert data["pc"] == OVERDUE_COLOR and "conic-gradient" in html and "m.gcUnit = D.k[i]" in html
    assert data["L"] == {"total": "case.open", "part": "case.overdue"} and data["cls"] == "gc-case-count"
    assert _urls(html) == _urls(_raw())
    empty = build_case_counts_layer(
        gpd.GeoDataFrame({"code": []}, geometry=[], crs="EPSG:4326"), labels=LABELS
    )
    assert len(empty._children) == 0
    _raw(empty)


# --------------------------------------------------------------------------- clicks


def _click(lat: float, lng: float, tooltip: str | None = None) -> dict:
    """What st_folium returns after a click (returned_objects=CLICK_RETURNED_OBJECTS)."""
    return {
        "last_object_clicked": {"lat": lat, "lng": lng},
        "last_object_clicked_tooltip": tooltip,
        "last_object_clicked_count": 1,
    }


def test_case_from_click_maps_the_reported_position_back_to_the_case() -> None:
    cases = _cases()
    data = _payload(_render(build_cases_layer(cases, labels=LABELS, now=NOW)))
    for i, case_id in enumerate(_id_order(data)):  # the positions as drawn, as Leaflet reports them
        assert case_from_click(_click(data["y"][i], data["x"][i]), cases) == case_id
    assert case_from_click(_click(42.291235, 123.841235, "#12 · 占道经营状态: ..."), cases) == 12
    # not on a case: the map, a cluster outline, a candidate badge
    assert case_from_click(_click(42.2912, 123.8412), cases) is None
    assert case_from_click(_click(42.0, 123.0, "#12 · stale tooltip"), cases) is None
    assert case_from_click({"last_object_clicked": None}, cases) is None
    assert case_from_click(None, cases) is None
    assert case_from_click({"last_object_clicked": {"lat": "x", "lng": 1}}, cases) is None
    assert case_from_click(_click(42.292, 123.842), cases.iloc[:0]) is None
    assert clicked_latlng(_click(42.292, 123.842)) == (42.292, 123.842)


def test_case_from_click_with_cases_at_one_place() -> None:
    same = Point(123.842, 42.292)
    cases = _cases().set_geometry([same, same, same, Point(123.844, 42.294)])  # 12, 3, 7 together
    at = _click(42.292, 123.842)
    assert case_from_click(at, cases) == 12  # the one drawn on top: highest id
    assert case_from_click(at, cases, selected=3) == 3  # the selected one is drawn last
    assert (
        case_from_click(_click(42.292, 123.842, "#7 · 占道经营"), cases, selected=3) == 7
    )  # the tooltip names it
    assert case_from_click(_click(42.292, 123.842, "#5 · 垃圾堆放"), cases) == 12  # not there: ignored


def test_candidate_and_unit_from_click(candidates: pd.DataFrame) -> None:
    assert candidate_from_click(_click(42.288, 123.838123), candidates) == 8
    assert candidate_from_click(_click(42.292, 123.845), candidates) == 17
    assert candidate_from_click(_click(42.29, 123.84), candidates) is None
    assert candidate_from_click(None, candidates) is None
    counts = gpd.GeoDataFrame(
        {"code": ["211202001", "211202002"], "name": ["a", "b"], "open": [3, 4], "overdue": [0, 1]},
        geometry=[Point(123.8, 42.2), box(123.9, 42.3, 123.91, 42.31)],
        crs="EPSG:4326",
    )
    data = _payload(_render(build_case_counts_layer(counts, labels=LABELS)))
    assert unit_from_click(_click(data["y"][1], data["x"][1]), counts) == "211202002"
    assert unit_from_click(_click(42.2, 123.8), counts) == "211202001"
    assert unit_from_click(_click(42.25, 123.85), counts) is None
