"""Big-screen layers: clickable district outlines, flashing new cases, staff dots; every text
escaped; small payloads."""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
from shapely.geometry import MultiPolygon, Point, Polygon, box

from layers.bigscreen import (
    DOT_COLORS,
    FLASH_LABEL_KEYS,
    OUTLINE_LABEL_KEYS,
    build_districts_layer,
    build_flash_layer,
    build_staff_dots_layer,
)
from tests.layers.rendering import payload, raw, render

HOSTILE = "<script>alert('x')</script><img src=x onerror=alert(1)>"
LABELS = {k: f"L[{k}]<i>" for k in (*OUTLINE_LABEL_KEYS, *FLASH_LABEL_KEYS)}


def _districts() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"code": ["211202", "211204", "211221"], "name": ["银州区", HOSTILE, "铁岭县"]},
        geometry=[
            box(123.70, 42.20, 123.85, 42.35),
            MultiPolygon([box(123.85, 42.20, 123.95, 42.30), box(123.96, 42.20, 124.0, 42.25)]),
            Polygon(),
        ],
        crs=4326,
    )


def test_districts_layer_payload_and_escaping() -> None:
    fg = build_districts_layer(_districts(), labels=LABELS, selected="211202")
    html = render(fg)
    assert HOSTILE not in html and "&lt;script&gt;" in html
    data = payload(raw(fg))
    assert [r[0] for r in data["p"]] == ["211202", "211204"]  # the empty one is left out
    assert len(data["p"][1][1]) == 2  # both parts of the multipolygon
    assert data["s"] == "211202" and data["hint"] == "L[big.drill]&lt;i&gt;"
    assert "poly.gcUnit" in html and "gc-big-css" in html


def test_flash_layer() -> None:
    cases = gpd.GeoDataFrame(
        {"id": [7, 8], "category_name": [HOSTILE, "暴露垃圾"], "place": ["红旗街道", None],
         "reported_at": [pd.Timestamp("2026-11-18 01:55", tz="UTC"), pd.Timestamp("2026-11-18 01:58", tz="UTC")]},  # fmt: skip
        geometry=[Point(123.84, 42.29), Point(123.85, 42.29)],
        crs=4326,
    )
    fg = build_flash_layer(cases, labels=LABELS, tz="Asia/Shanghai")
    html = render(fg)
    assert HOSTILE not in html and "@keyframes gc-flash" in html
    data = payload(raw(fg))
    assert [r[2] for r in data["p"]] == [7, 8]
    assert "09:55" in data["p"][0][3] and "&lt;script&gt;" in data["p"][0][3] and "—" in data["p"][1][3]
    assert len(build_flash_layer(cases.iloc[:0], labels=LABELS)._children) == 0


def test_staff_dots_are_compact() -> None:
    n = 15_000
    staff = gpd.GeoDataFrame(
        {"freshness": (["online", "stale", "offline"] * n)[:n]},
        geometry=gpd.points_from_xy([123.8 + i * 1e-5 for i in range(n)], [42.3] * n),
        crs=4326,
    )
    fg = build_staff_dots_layer(staff)
    data = payload(raw(fg))
    assert len(data["p"]) == 3 * n and data["c"] == list(DOT_COLORS)
    assert data["p"][2] == 0 and data["p"][5] == 1 and data["p"][8] == 2
    assert len(raw(fg).encode()) < 400_000  # ~20 bytes a person: 15,000 people well within 1 MB


def test_every_label_key_is_translated() -> None:
    from console.i18n import TEXT

    assert set(OUTLINE_LABEL_KEYS) | set(FLASH_LABEL_KEYS) <= set(TEXT)
