"""Camera layers render to compact, escaped HTML: cameras by status and class with their fields of
view, cameras per unit, the cameras that see one place; clicks map back to a camera id (20-digit
text, never a JavaScript number)."""

from __future__ import annotations

import re
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
from shapely.geometry import MultiPolygon, Point, Polygon, box

from console.i18n import TEXT
from layers.cameras import (
    CAMERA_COUNTS_LABEL_KEYS,
    CAMERA_LABEL_KEYS,
    CLASS_RADII,
    CLICK_RETURNED_OBJECTS,
    LABEL_KEYS,
    NAME_CHARS,
    OFFLINE_COLOR,
    ONLINE_COLOR,
    SEEING_COLOR,
    SEEING_LABEL_KEYS,
    SELECTED_COLOR,
    build_camera_counts_layer,
    build_cameras_layer,
    build_seeing_layer,
    camera_from_click,
    unit_from_click,
)
from tests.layers.rendering import payload as _payload
from tests.layers.rendering import raw as _raw
from tests.layers.rendering import render as _render
from tests.layers.rendering import urls as _urls

HOSTILE_IMG = "<img src=x onerror=alert(1)>"
HOSTILE_SCRIPT = "<script>alert(1)</script>"
HOSTILE_END = "</script><script>alert(1)</script>"
ESCAPED_IMG = "&lt;img src=x onerror=alert(1)&gt;"
ESCAPED_SCRIPT = "&lt;script&gt;alert(1)&lt;/script&gt;"

LABELS = {k: k for k in LABEL_KEYS} | {"dist.m": "{n} m", "dist.km": "{n} km"}

# Drawn in id order: C9 (class one, north), C1, C2, C3.
C3, C1, C2, C9 = (
    "34020000001320000003",
    "34020000001320000001",
    "34020000001320000002",
    "34020000001310000009",
)


def _cameras(**overrides: Any) -> gpd.GeoDataFrame:
    data: dict[str, Any] = {
        "id": [C3, C1, C2, C9],
        "name": ["东门", "北街路口", None, "实验小学  南门\n东侧"],
        "online": [True, False, True, None],
        "cam_class": ["class1", "other", "CLASS1 ", None],
        "direction": [90.0, -90.0, np.nan, 450.0],
        "fov": [60.0, 90.0, np.nan, -5.0],
        "range_m": [80.0, 1500.0, None, "120"],
        "stream_url": ["http://10.0.0.5/c3.m3u8", None, "  ", "rtsp://10.0.0.5/c9"],
        "unit_name": ["银州街道", "银州街道", None, "柴河街道"],
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


def _sector(lon: float, lat: float, size: float = 0.0005) -> Polygon:
    return Polygon([(lon, lat), (lon + size, lat + size), (lon + size, lat - size)])


def _sectors() -> gpd.GeoDataFrame:
    holed = Polygon(
        box(123.8420, 42.2920, 123.8430, 42.2930).exterior.coords,
        [box(123.8424, 42.2924, 123.8426, 42.2926).exterior.coords],
    )
    return gpd.GeoDataFrame(
        {
            "id": [C3, C1, "34020000001320000099", C2],
            "online": [False, False, True, None],  # the cameras' own status wins for C3 and C2
            "name": [HOSTILE_IMG] * 4,
        },
        geometry=[
            _sector(123.841234567, 42.291234567),
            holed,
            _sector(123.85, 42.30),  # a camera not drawn: its own status
            MultiPolygon([_sector(123.843, 42.293), _sector(123.8432, 42.2932, 0.0001)]),
        ],
        crs="EPSG:4326",
    )


def _assert_no_raw_html(raw: str) -> None:
    """Nothing hostile survives as markup, neither in HTML nor inside a script's JSON."""
    assert "<img src=x" not in raw
    assert "<script>alert" not in raw
    assert "</script><script>alert" not in raw
    unescaped = raw
    for esc, ch in (("\\u003c", "<"), ("\\u003e", ">"), ("\\u0026", "&"), ("\\u0027", "'")):
        unescaped = unescaped.replace(esc, ch)
    assert HOSTILE_IMG not in unescaped and HOSTILE_SCRIPT not in unescaped


# --------------------------------------------------------------------------- keys


def test_label_keys_are_translated_in_both_languages() -> None:
    for keys in (CAMERA_LABEL_KEYS, CAMERA_COUNTS_LABEL_KEYS, SEEING_LABEL_KEYS):
        assert set(keys) <= set(LABEL_KEYS)
    assert len(LABEL_KEYS) == len(set(LABEL_KEYS))
    for key in LABEL_KEYS:
        assert key in TEXT, key
        zh, en = TEXT[key]
        assert zh.strip() and en.strip(), key
        # only the distance formats carry a placeholder ({n}); a label with another one (such as
        # cam.no_stream's {reason}) would show its braces in a tooltip
        want = {"n"} if key.startswith("dist.") else set()
        assert set(re.findall(r"{(\w*)", zh)) == want == set(re.findall(r"{(\w*)", en)), key
    assert set(CLICK_RETURNED_OBJECTS) >= {"last_object_clicked", "last_object_clicked_tooltip"}


# --------------------------------------------------------------------------- cameras


def test_cameras_layer_colours_by_status_and_sizes_by_class() -> None:
    html = _render(build_cameras_layer(_cameras(), labels=LABELS))
    data = _payload(html)
    assert data["id"] == [C9, C1, C2, C3]  # by id
    assert data["o"] == [0, 0, 1, 1]  # missing status counts as offline
    assert data["sc"] == [ONLINE_COLOR, OFFLINE_COLOR] and data["st"] == ["cam.online", "cam.offline"]
    assert data["c"] == [1, 1, 0, 0]  # class one (any case, trimmed) is index 0
    assert data["rs"] == list(CLASS_RADII) and data["rs"][0] > data["rs"][1]
    assert max(data["rs"]) <= 10 and data["rsel"] <= 10  # Leaflet reports a marker's own position
    assert data["cl"] == ["cam.class1", "cam.class_other"]
    assert data["sel"] is None and data["sp"] == [] and data["si"] == [] and data["sk"] == []
    # legend: both statuses present, the class-one size; no "selected" without a selection
    legend = html.split("gc-cam-legend")[1]
    assert "cam.online" in legend and "cam.offline" in legend and "cam.class1" in legend
    assert ONLINE_COLOR in legend and OFFLINE_COLOR in legend and "cam.selected" not in legend
    # the map's own renderer, the lazy tooltip and the click fix of layers.cases
    assert "L.canvas" not in html and "L.circleMarker" in html
    assert 'm.on("mouseover click", lazy)' in html and "e.latlng = this.getLatLng()" in html
    assert _urls(html) == _urls(_raw())


def test_cameras_layer_legend_shows_only_what_is_there() -> None:
    online_only = _cameras(online=[True] * 4, cam_class=["other"] * 4)
    legend = _render(build_cameras_layer(online_only, labels=LABELS)).split("gc-cam-legend")[1]
    assert "cam.online" in legend and "cam.offline" not in legend and "cam.class1" not in legend
    html = _render(build_cameras_layer(_cameras(), labels=LABELS, legend=False))
    assert "gc-cam-legend" not in html and "L.control" not in html


def test_cameras_layer_tooltip_data() -> None:
    data = _payload(_render(build_cameras_layer(_cameras(), labels=LABELS)))
    assert data["n"] == ["实验小学 南门 东侧", "北街路口", "—", "东门"]  # white space collapsed
    assert data["d"] == [90, 270, None, 90]  # degrees clockwise from north, 0..359
    assert data["f"] == [None, 90, None, 60]  # a negative field of view is no value
    assert data["r"] == [120, 1500, None, 80]  # text numbers read
    assert data["s"] == [1, 0, 0, 1]  # a stream URL is there (playable or not: the player says)
    assert data["sv"] == ["cam.stream_none", "cam.has_stream"]
    assert data["un"] == ["柴河街道", "银州街道", "—"] and data["w"] == [0, 1, 2, 1]  # stored once
    assert data["y"][3] == 42.291235 and data["x"][3] == 123.841235  # 6 decimals, as drawn
    assert data["dm"] == "{n} m" and data["dk"] == "{n} km"
    assert data["L"] == {
        "id": "cam.id",
        "status": "cam.status",
        "cls": "cam.class",
        "dir": "cam.direction",
        "fov": "cam.fov",
        "range": "cam.range",
        "unit": "cam.unit",
        "stream": "cam.stream",
    }
    long = _payload(_render(build_cameras_layer(_cameras(name=["名" * 200] * 4), labels=LABELS)))
    assert len(long["n"][0]) == NAME_CHARS and long["n"][0].endswith("…")


def test_cameras_layer_marks_the_selected_camera_and_draws_it_last() -> None:
    html = _render(build_cameras_layer(_cameras(), labels=LABELS, selected=C1))
    data = _payload(html)
    assert data["id"] == [C9, C2, C3, C1] and data["sel"] == 3
    assert data["rsel"] > max(data["rs"])
    assert SELECTED_COLOR in html and "cam.selected" in html.split("gc-cam-legend")[1]
    # a selection given as a (big) integer is the same camera; an unknown one selects nothing
    assert _payload(_render(build_cameras_layer(_cameras(), labels=LABELS, selected=int(C1))))["sel"] == 3
    none = _payload(_render(build_cameras_layer(_cameras(), labels=LABELS, selected="nope")))
    assert none["sel"] is None and none["id"] == [C9, C1, C2, C3]


def test_cameras_layer_keeps_ids_as_20_digit_text() -> None:
    # 20 digits do not fit a JavaScript number (nor int64): ids travel as JSON strings
    as_int = _cameras(id=pd.Series([int(v) for v in (C3, C1, C2, C9)], dtype=object))
    for frame in (_cameras(), as_int):
        html = _render(build_cameras_layer(frame, labels=LABELS))
        data = _payload(html)
        assert data["id"] == [C9, C1, C2, C3]
        assert all(isinstance(v, str) and len(v) == 20 for v in data["id"])
        assert f'"{C1}"' in html and "m.gcCamera = D.id[i]" in html
        assert f"{C1}." not in html  # never a float


def test_cameras_layer_draws_sectors_only_when_given() -> None:
    assert "L.polygon" in _render(build_cameras_layer(_cameras(), labels=LABELS))  # the code, unused
    assert _payload(_render(build_cameras_layer(_cameras(), labels=LABELS, sectors=None)))["sp"] == []
    html = _render(build_cameras_layer(_cameras(), labels=LABELS, sectors=_sectors()))
    data = _payload(html)
    # one entry per polygon part: C3, C1 (with its hole), the unknown camera, C2's two parts
    assert len(data["sp"]) == 5
    assert data["si"] == [3, 1, -1, 2, 2]
    assert data["sk"] == [0, 1, 0, 0, 0]  # the drawn camera's status, else the sector's own
    c3 = data["sp"][0]
    assert len(c3) == 1 and c3[0][0] == [42.291235, 123.841235]  # [lat, lon], 6 decimals
    assert len(data["sp"][1]) == 2  # exterior and hole
    assert data["ps"]["fillOpacity"] < 0.5
    # sectors are never interactive and are added before (below) the markers
    code = html.split("var D = ", 1)[1]
    assert "interactive: false}, D.ps)" in code
    assert code.index("L.layerGroup(sectors)") < code.index("L.layerGroup(markers)")
    assert HOSTILE_IMG not in html  # the sectors' other columns never travel


def test_cameras_layer_sectors_in_another_crs_and_without_cameras() -> None:
    utm = _sectors().to_crs(32651)
    data = _payload(_render(build_cameras_layer(_cameras(), labels=LABELS, sectors=utm)))
    assert data["sp"][0][0][0] == pytest.approx([42.291235, 123.841235], abs=2e-6)
    alone = build_cameras_layer(_cameras().iloc[:0], labels=LABELS, sectors=_sectors())
    data = _payload(_render(alone))
    assert data["id"] == [] and len(data["sp"]) == 5 and set(data["si"]) == {-1}
    assert data["sk"] == [1, 1, 0, 1, 1]  # their own status (missing: offline)
    assert "gc-cam-legend" not in _render(alone)


def test_cameras_layer_escapes_every_text_field() -> None:
    hostile = _cameras(
        name=[HOSTILE_IMG, HOSTILE_SCRIPT, HOSTILE_END, "ok"],
        unit_name=[HOSTILE_SCRIPT, HOSTILE_IMG, HOSTILE_END, None],
        cam_class=[HOSTILE_IMG, "class1", None, "other"],
        direction=[HOSTILE_IMG, 1, 2, 3],
        stream_url=[HOSTILE_END, None, None, None],
        id=[C3, C1, C2, "9<img src=x onerror=alert(1)>"],
    )
    labels = LABELS | {
        "cam.online": HOSTILE_IMG,
        "cam.offline": HOSTILE_SCRIPT,
        "cam.id": HOSTILE_END,
        "cam.class1": HOSTILE_IMG,
        "cam.selected": HOSTILE_SCRIPT,
        "cam.has_stream": HOSTILE_IMG,
        "dist.m": HOSTILE_IMG + "{n}",
    }
    group = build_cameras_layer(hostile, labels=labels, selected=C1, sectors=_sectors())
    raw = _raw(group)
    _assert_no_raw_html(raw)
    data = _payload(_render(group))
    assert ESCAPED_IMG in data["n"] and ESCAPED_SCRIPT in data["n"]
    assert ESCAPED_SCRIPT in data["un"] and ESCAPED_IMG in data["un"]
    assert (
        data["st"][0] == ESCAPED_IMG
        and data["L"]["id"] == "&lt;/script&gt;&lt;script&gt;alert(1)&lt;/script&gt;"
    )
    assert data["d"][data["id"].index(C3)] is None  # not a number
    assert "9" + ESCAPED_IMG in data["id"]


@pytest.mark.filterwarnings("ignore:GeoSeries.notna:UserWarning")  # empty geometries on purpose
def test_cameras_layer_skips_rows_without_geometry_or_id_and_empty_is_empty() -> None:
    odd = _cameras(id=[C3, None, "  ", C9]).set_geometry([Point(123.84, 42.29), Point(1, 1), None, Polygon()])
    data = _payload(_render(build_cameras_layer(odd, labels=LABELS)))
    assert data["id"] == [C3]
    empty = gpd.GeoDataFrame({"id": []}, geometry=[], crs="EPSG:4326")
    group = build_cameras_layer(empty, labels=LABELS, name="Cameras", selected=C1)
    assert isinstance(group, folium.FeatureGroup) and len(group._children) == 0
    assert group.layer_name == "Cameras"
    _raw(group)
    assert len(build_cameras_layer(_cameras().set_geometry([None] * 4), labels=LABELS)._children) == 0
    # an empty sectors frame draws nothing either
    no_sectors = _sectors().iloc[:0]
    assert len(build_cameras_layer(empty, labels=LABELS, sectors=no_sectors)._children) == 0


# --------------------------------------------------------------------------- cameras per unit


def test_camera_counts_layer_sizes_by_cameras_and_shows_the_online_share() -> None:
    counts = gpd.GeoDataFrame(
        {
            "code": ["211202001", "211202002", "211202003"],
            "name": [HOSTILE_IMG, "龙山街道", "空镇"],
            "cameras": [400, 25, 0],
            "online": [300, 40, 0],  # more online than cameras: clamped
        },
        geometry=[Point(123.8, 42.2), box(123.9, 42.3, 123.91, 42.31), Point(124.0, 42.4)],
        crs="EPSG:4326",
    )
    group = build_camera_counts_layer(counts, labels=LABELS | {"cam.cameras": HOSTILE_SCRIPT})
    _assert_no_raw_html(_raw(group))
    html = _render(build_camera_counts_layer(counts, labels=LABELS))
    data = _payload(html)
    assert data["n"][0] == ESCAPED_IMG and data["k"] == ["211202001", "211202002", "211202003"]
    assert data["t"] == [400, 25, 0] and data["p"] == [300, 25, 0]
    r_big, r_mid, r_empty = data["r"]
    assert r_big == 30.0 and r_empty == 10.0
    assert r_mid == pytest.approx(10 + 20 * (25 / 400) ** 0.5, abs=0.05)
    assert data["y"][1] == pytest.approx(42.305) and 123.9 <= data["x"][1] <= 123.91  # polygon: inside
    assert data["pc"] == ONLINE_COLOR and data["rc"] == OFFLINE_COLOR and data["cls"] == "gc-cam-count"
    assert "conic-gradient" in html and "m.gcUnit = D.k[i]" in html
    assert data["L"] == {"total": "cam.cameras", "part": "cam.online"}
    assert _urls(html) == _urls(_raw())
    assert unit_from_click(_click(data["y"][1], data["x"][1]), counts) == "211202002"
    empty = build_camera_counts_layer(
        gpd.GeoDataFrame({"code": []}, geometry=[], crs="EPSG:4326"), labels=LABELS
    )
    assert len(empty._children) == 0
    _raw(empty)


# --------------------------------------------------------------------------- cameras that see a place


@pytest.fixture
def seeing() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "rank": [2, 1, 3, 4, 5],
            "id": [C1, C3, C2, None, C9],
            "name": ["北街路口", HOSTILE_IMG, None, "无编码", "无位置"],
            "online": [True, True, False, True, True],
            "distance_m": [850.0, 42.4, 1234.0, 10.0, 5.0],
            "off_axis_deg": [10.0, 2.0, 30.0, 0.0, 0.0],
            "lon": [123.845, 123.8381234567, 123.85, 123.84, np.nan],
            "lat": [42.292, 42.288, 42.3, 42.29, np.nan],
        }
    )


def test_seeing_layer_rank_badges_and_lines_to_the_target(seeing: pd.DataFrame) -> None:
    html = _render(build_seeing_layer(seeing, target=(123.84, 42.29), labels=LABELS))
    data = _payload(html)
    # by rank; no id or no position: not drawn
    assert data["r"] == [1, 2, 3] and data["id"] == [C3, C1, C2]
    assert data["c"] == [42.29, 123.84]
    assert data["y"][0] == 42.288 and data["x"][0] == 123.838123
    assert data["lc"] == SEEING_COLOR
    assert data["t"][0] == (
        f'<div class="gc-seeing-tip"><b>1. {ESCAPED_IMG}</b><br>cam.id: {C3}<br>cam.distance: 42 m</div>'
    )
    assert data["t"][1].startswith('<div class="gc-seeing-tip"><b>2. 北街路口</b>')
    assert "cam.distance: 850 m" in data["t"][1] and "cam.distance: 1.2 km" in data["t"][2]
    assert "<b>3.</b>" in data["t"][2]  # no name: the rank alone
    assert "L.polyline([D.c, ll]" in html and "interactive: false" in html and '"4 5"' in html
    assert "m.gcCamera = D.id[i]" in html and "zIndexOffset: 1000 - D.r[i]" in html
    assert _urls(html) == _urls(_raw())
    _assert_no_raw_html(_raw(build_seeing_layer(seeing, target=(123.84, 42.29), labels=LABELS)))


def test_seeing_layer_escapes_labels_and_tolerates_odd_input(seeing: pd.DataFrame) -> None:
    labels = LABELS | {"cam.id": HOSTILE_IMG, "cam.distance": HOSTILE_END, "dist.m": HOSTILE_SCRIPT + "{n}"}
    _assert_no_raw_html(_raw(build_seeing_layer(seeing, target=(123.84, 42.29), labels=labels)))
    # a missing rank counts as the row's place; a target that is no place draws no lines
    odd = seeing.assign(rank=[np.nan, 1, 3, 4, 5])
    data = _payload(_render(build_seeing_layer(odd, target=(float("nan"), 42.29), labels=LABELS)))
    assert data["r"] == [1, 1, 3] and data["id"] == [C1, C3, C2] and data["c"] is None
    for empty in (seeing.iloc[:0], seeing.assign(lon=np.nan), seeing.assign(id=None)):
        group = build_seeing_layer(empty, target=(123.84, 42.29), labels=LABELS)
        assert len(group._children) == 0
        _raw(group)


# --------------------------------------------------------------------------- clicks


def _click(lat: float, lng: float, tooltip: str | None = None) -> dict:
    """What st_folium returns after a click (returned_objects=CLICK_RETURNED_OBJECTS)."""
    return {
        "last_object_clicked": {"lat": lat, "lng": lng},
        "last_object_clicked_tooltip": tooltip,
        "last_object_clicked_count": 1,
    }


def test_camera_from_click_maps_the_reported_position_back_to_the_camera() -> None:
    cameras = _cameras()
    data = _payload(_render(build_cameras_layer(cameras, labels=LABELS)))
    for y, x, cam in zip(data["y"], data["x"], data["id"], strict=True):  # as Leaflet reports them
        got = camera_from_click(_click(y, x), cameras)
        assert got == cam and isinstance(got, str)
    assert camera_from_click(_click(42.291235, 123.841235), cameras) == C3
    # not on a camera: the map, a sector, a stale tooltip somewhere else
    assert camera_from_click(_click(42.2912, 123.8412), cameras) is None
    assert camera_from_click(_click(42.0, 123.0, f"东门cam.id: {C3}"), cameras) is None
    assert camera_from_click({"last_object_clicked": None}, cameras) is None
    assert camera_from_click(None, cameras) is None
    assert camera_from_click({"last_object_clicked": {"lat": "x", "lng": 1}}, cameras) is None
    assert camera_from_click(_click(42.292, 123.842), cameras.iloc[:0]) is None
    # ids read as integers come back as the same 20-digit text
    as_int = cameras.assign(id=pd.Series([int(v) for v in cameras["id"]], dtype=object))
    assert camera_from_click(_click(42.292, 123.842), as_int) == C1


def test_camera_from_click_with_cameras_on_one_pole() -> None:
    pole = Point(123.842, 42.292)
    cameras = _cameras().set_geometry([pole, pole, pole, Point(123.844, 42.294)])  # C3, C1, C2 together
    at = _click(42.292, 123.842)
    assert camera_from_click(at, cameras) == C3  # the one drawn on top: the greatest id
    assert camera_from_click(at, cameras, selected=C1) == C1  # the selected one is drawn last
    assert camera_from_click(at, cameras, selected=C9) == C3  # selected elsewhere: no say here
    # the clicked tooltip's text names the camera (st_folium gives the tooltip's textContent)
    tip = f"广场cam.id: {C2}cam.status: cam.online"
    assert camera_from_click(_click(42.292, 123.842, tip), cameras, selected=C1) == C2
    # a name that mentions another camera's id does not mislead: the id row decides
    tip = f"北街路口 (旧 {C3})cam.id: {C1}cam.status: cam.offline"
    assert camera_from_click(_click(42.292, 123.842, tip), cameras) == C1
    # a tooltip naming no camera at this place is ignored
    assert camera_from_click(_click(42.292, 123.842, f"cam.id: {C9}"), cameras) == C3


def test_camera_from_click_on_the_seeing_layer(seeing: pd.DataFrame) -> None:
    assert camera_from_click(_click(42.288, 123.838123), seeing) == C3
    assert camera_from_click(_click(42.292, 123.845), seeing) == C1
    assert camera_from_click(_click(42.29, 123.84), seeing) is None  # the camera without an id
    assert camera_from_click(_click(42.29, 123.8), seeing) is None
    same = seeing.assign(lon=123.845, lat=42.292)
    assert camera_from_click(_click(42.292, 123.845), same) == C3  # the best rank is on top
    assert camera_from_click(_click(42.292, 123.845, f"2. 北街路口cam.id: {C1}"), same) == C1
    # a GeoDataFrame of the seeing table still uses the lon/lat it was drawn from
    geo = gpd.GeoDataFrame(seeing, geometry=[Point(0, 0)] * len(seeing), crs="EPSG:4326")
    assert camera_from_click(_click(42.288, 123.838123), geo) == C3
    assert camera_from_click(_click(0, 0), geo) is None
