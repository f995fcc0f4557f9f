"""Small hand-made rows for every table, around Tieling (lon 123.84, lat 42.29), and helpers to
compare what a store gives back with what was written."""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import LineString, MultiLineString, MultiPolygon, Point, Polygon, box

from store import schema

LON, LAT = 123.84, 42.29
M_PER_DEG_LAT = 111_320.0
M_PER_DEG_LON = 111_320.0 * math.cos(math.radians(LAT))

HOSTILE = ["<script>alert(1)</script>", "'; DROP TABLE grids; --", 'quote " back\\slash', "tab\tnew\nline\rcr"]
CST = timezone(timedelta(hours=8))  # China Standard Time


def at(dx_m: float, dy_m: float, lon: float = LON, lat: float = LAT) -> tuple[float, float]:
    """The lon/lat dx_m metres east and dy_m metres north of (lon, lat) (local approximation)."""
    return lon + dx_m / M_PER_DEG_LON, lat + dy_m / M_PER_DEG_LAT


def square(dx_m: float, dy_m: float, size_m: float) -> Polygon:
    x0, y0 = at(dx_m, dy_m)
    x1, y1 = at(dx_m + size_m, dy_m + size_m)
    return box(x0, y0, x1, y1)


def pt(dx_m: float, dy_m: float) -> Point:
    return Point(*at(dx_m, dy_m))


def gdf(rows: dict[str, list[Any]], geom: list[Any]) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(rows, geometry=gpd.GeoSeries(geom, crs=4326), crs=4326)


T0 = datetime(2026, 11, 20, 9, 30, 15, tzinfo=UTC)


def samples() -> dict[str, pd.DataFrame]:
    """One small realistic frame per table (new frames each call)."""
    city_geom = MultiPolygon([square(-20_000, -20_000, 40_000)])
    return {
        "admin_units": gdf(
            {
                "code": ["211200000000", "211202000000", "211202001001"],
                "name": ["铁岭市", "银州区", "红旗社区<script>alert(1)</script>"],
                "level": ["city", "county", "village"],
                "kind": ["city", "district", "community"],
                "parent_code": [None, "211200000000", "211202001000"],
                "households": [120_000, 45_000, None],
            },
            [city_geom, square(-5_000, -5_000, 10_000), square(0, 0, 800)],
        ),
        "grids": gdf(
            {
                "code": ["211202001001001", "211202001001002", "211202001001003"],
                "name": ["红旗一网格", "'; DROP TABLE grids; --", "铁岭二中专属网格"],
                "unit_code": ["211202001001"] * 3,
                "kind": ["base", "base", "dedicated"],
                "purpose": [None, None, "school"],
                "band_min": [300, 300, None],
                "band_max": [500, 500, None],
                "households": [412, 0, 35],
                "buildings": [12, 0, 3],
                "version": [1, 2, 1],
            },
            [
                square(0, 0, 400),  # a Polygon: promoted to MULTIPOLYGON
                MultiPolygon([square(400, 0, 200), square(700, 0, 100)]),
                square(0, 400, 300),
            ],
        ),
        "buildings": gdf(
            {
                "id": [1, 2, 3],
                "unit_code": ["211202001001", "211202001001", None],
                "grid_code": ["211202001001001", "211202001001001", None],
                "kind": ["apartment", "school", "house"],
                "name": ["红旗小区1号楼", "<script>alert(1)</script>", None],
                "floors": [18, 4, None],
                "units": [3, None, 1],
                "households": [216, 0, 1],
            },
            [square(10, 10, 30), square(100, 100, 60), None],
        ),
        "staff": pd.DataFrame(
            {
                "id": [101, 102, 103],
                "name": ["张伟", "李娜", "王芳"],
                "role": ["grid_worker_full", "police", "volunteer"],
                "phone": ["13800000001", "'; DROP TABLE grids; --", None],
                "unit_code": ["211202001001", "211202001001", None],
                "device_id": ["dev-1", None, "dev-3"],
                "on_duty": [True, False, None],
            }
        ),
        "staff_grids": pd.DataFrame(
            {
                "staff_id": [101, 101, 102],
                "grid_code": ["211202001001001", "211202001001002", "211202001001001"],
            }
        ),
        "positions": gdf(
            {
                "staff_id": [101, 101, 102, 103],
                "ts": [T0, T0 + timedelta(seconds=30), T0 + timedelta(minutes=5), T0 + timedelta(hours=1)],
                "speed": [1.2, float("nan"), 0.0, 3.5],
                "bearing": [90.0, 180.5, None, 0.0],
                "altitude": [60.0, 61.5, 59.0, None],
                "accuracy": [5.0, 8.0, 12.5, 3.0],
                "battery": [0.9, 0.85, None, 0.1],
                "received_at": [T0 + timedelta(seconds=1), T0 + timedelta(hours=2), None, T0 + timedelta(hours=1)],
                "charging": [True, False, None, False],
                "jump": [False, True, None, False],
                "grid_code": ["211202001001001", None, "211202001001002", HOSTILE[0]],
            },
            [pt(10, 10), pt(20, 15), pt(300, 300), pt(-50, 20)],
        ),
        "latest_positions": gdf(
            {
                "staff_id": [101, 102],
                "ts": [T0 + timedelta(seconds=30), T0 + timedelta(minutes=5)],
                "speed": [None, 0.0],
                "accuracy": [8.0, 12.5],
                "battery": [0.85, None],
                "bearing": [90.0, None],
                "charging": [None, True],
                "grid_code": ["211202001001001", None],
                "received_at": [T0 + timedelta(seconds=31), None],
            },
            [pt(20, 15), pt(300, 300)],
        ),
        "grid_presence": pd.DataFrame(
            {
                "day": ["2026-11-20", "2026-11-20", "2026-11-21"],
                "grid_code": ["211202001001001", "211202001001001", "211202001001002"],
                "staff_id": [101, 102, 101],
                "first_ts": [T0, T0 + timedelta(minutes=5), T0 + timedelta(days=1)],
            }
        ),
        "staff_days": pd.DataFrame(
            {
                "staff_id": [101, 102],
                "day": ["2026-11-20", "2026-11-20"],
                "points": [960, 0],
                "jumps": [2, 0],
                "distance_m": [8_412.5, 0.0],
                "duration_s": [28_800.0, 0.0],
                "moving_s": [14_400.0, None],
                "stops": [6, 0],
                "buildings_visited": [11, 0],
                "households_visited": [74, 0],
                "first_ts": [T0, None],
                "last_ts": [T0 + timedelta(hours=8), None],
                "computed_at": [T0 + timedelta(days=1), T0 + timedelta(days=1)],
            }
        ),
        "cameras": gdf(
            {
                "id": ["21120200001320000001", "21120200001320000002"],
                "name": ["红旗路口东", "<script>alert(1)</script>"],
                "unit_code": ["211202001001", None],
                "direction": [45.0, 270.0],
                "fov": [60.0, None],
                "range_m": [80.0, 50.0],
                "cam_class": ["class1", "other"],
                "online": [True, False],
                "stream_url": ["rtsp://10.0.0.1/live?a=1&b=2", None],
            },
            [pt(150, 150), pt(-200, 50)],
        ),
        "case_categories": pd.DataFrame(
            {
                "code": ["env.garbage", "safety.fire"],
                "name_zh": ["垃圾堆放", "消防隐患"],
                "name_en": ["Garbage piled up", "Fire hazard"],
                "time_limit_hours": [72.0, 4.0],
                "handler_role": ["grid_worker_full", None],
                "time_limit": [1.0, 4.0],
                "limit_unit": ["working_days", "hours"],
                "accept_hours": [2.0, None],
                "kind": ["deadline", "immediate"],
                "department": ["urban_management", None],
                "urgency": [1, 3],
                "active": [True, False],
            }
        ),
        "cases": gdf(
            {
                "category": ["env.garbage", "safety.fire", "env.garbage"],
                "description": ["小区门口垃圾堆放三天无人清理", "'; DROP TABLE grids; --", None],
                "address": ["红旗街12号", "<script>alert(1)</script>", "tab\tnew\nline"],
                "reporter_name": ["刘强", None, "匿名"],
                "reporter_phone": ["13900000000", None, None],
                "source": ["app", "hotline_12345", "cctv"],
                "state": ["reported", "dispatched", "closed"],
                "urgency": [1, 3, None],
                "grid_code": ["211202001001001", "211202001001002", None],
                "village_code": ["211202001001", "211202001001", None],
                "township_code": ["211202001", "211202001", None],
                "county_code": ["211202", "211202", "211202"],
                "reported_at": [T0, T0 + timedelta(minutes=1), T0 - timedelta(days=3)],
                "dispatched_at": [None, T0 + timedelta(minutes=10), T0 - timedelta(days=3, hours=-1)],
                "deadline_at": [T0 + timedelta(hours=72), T0 + timedelta(hours=4), None],
                "closed_at": [None, None, T0 - timedelta(days=1)],
                "assignee_id": [101, 102, None],
                "satisfaction": [None, None, 5],
                "rev": [0, 3, None],
                "kind": ["deadline", "multi_department", None],
                "escalation_level": [0, 2, None],
                "escalated_at": [None, T0 + timedelta(hours=5), None],
                "accept_deadline_at": [None, T0 + timedelta(hours=1), None],
                "accepted_at": [None, None, T0 - timedelta(days=3, hours=-2)],
                "resolved_at": [None, None, T0 - timedelta(days=2)],
                "updated_at": [T0, T0 + timedelta(hours=5), None],
                "duplicate_of": [None, None, 1],
                "reports": [2, 1, None],
                "photo_urls": ['["https://example.org/a.jpg?x=1&y=2"]', None, "[]"],
                "external_id": [None, "12345-20261120-0001", None],
                "reporter_email": ["<img src=x onerror=alert(1)>@x.cn", None, None],
                "status_notes": [None, "已派遣", None],
            },
            [pt(50, 60), pt(450, 20), None],
        ),
        "case_events": pd.DataFrame(
            {
                "case_id": [1, 1, 2],
                "ts": [T0, T0 + timedelta(minutes=2), T0 + timedelta(minutes=10)],
                "actor": ["系统", "dispatcher:7", None],
                "action": ["report", "file", "dispatch"],
                "from_state": [None, "reported", "filed"],
                "to_state": ["reported", "filed", "dispatched"],
                "note": ["<script>alert(1)</script>", "'; DROP TABLE grids; --", "😀 emoji ok"],
                "staff_id": [None, None, 102],
                "rev": [0, 1, 2],
            }
        ),
        "camera_coverage": pd.DataFrame(
            {
                "level": ["grid", "village"],
                "code": ["211202001001001", "211202001001"],
                "road_m": [812.5, 5000.0],
                "road_covered_m": [400.25, 1200.0],
                "open_m2": [40_000.0, None],
                "open_covered_m2": [9_000.0, None],
                "cameras": [3, 25],
                "cameras_online": [2, 25],
                "computed_at": [T0, T0],
            }
        ),
        "camera_blind_spots": gdf(
            {"code": ["211202001001001"], "length_m": [120.0], "computed_at": [T0]},
            [MultiLineString([[at(0, 0), at(120, 0)]])],
        ),
        "users": pd.DataFrame(
            {
                "username": ["li.dispatch", "wang<b>"],
                "display_name": ["李调度", None],
                "role": ["dispatcher", "grid_worker"],
                "unit_code": ["211202", "211202001001"],
                "password_hash": ["scrypt$16384$8$1$c2FsdA$aGFzaA", None],
                "active": [True, False],
                "created_at": [T0, T0],
                "password_changed_at": [T0, None],
            }
        ),
        "user_sessions": pd.DataFrame(
            {
                "token_hash": ["a" * 64],
                "username": ["li.dispatch"],
                "created_at": [T0],
                "expires_at": [T0 + pd.Timedelta(hours=8)],
                "last_seen_at": [T0],
                "client": ["10.0.0.8"],
            }
        ),
        "api_tokens": pd.DataFrame(
            {
                "token_hash": ["b" * 64],
                "name": ["media-gateway"],
                "role": ["viewer"],
                "unit_code": ["211200"],
                "username": [None],
                "created_at": [T0],
                "expires_at": [None],
                "revoked_at": [None],
            }
        ),
        "audit_log": pd.DataFrame(
            {
                "ts": [T0, T0],
                "actor": ["root", "li.dispatch"],
                "role": ["admin", None],
                "unit_code": ["211200", None],
                "action": ["user.create", "signin.failed"],
                "target": ["li.dispatch", None],
                "detail": ["role=dispatcher unit=211202", "'; DROP TABLE users; --"],
                "client": [None, "10.9.9.9"],
            }
        ),
        "departments": pd.DataFrame(
            {
                "code": ["urban_management", "housing<b>"],
                "name_zh": ["城管局", "住建局"],
                "name_en": ["Urban management", "Housing & construction"],
                "phone": ["024-7000000", None],
            }
        ),
        "case_summons": pd.DataFrame(
            {
                "case_id": [2, 2],
                "department": ["urban_management", "housing<b>"],
                "summoned_at": [T0 + timedelta(hours=5), T0 + timedelta(hours=5)],
                "summoned_by": ["street:211202001", None],
                "due_at": [T0 + timedelta(hours=29), None],
                "accepted_at": [T0 + timedelta(hours=6), None],
                "accepted_by": ["张科长", None],
                "reported_back_at": [None, None],
                "note": ["'; DROP TABLE grids; --", None],
            }
        ),
        "hotline_queue": pd.DataFrame(
            {
                "batch": ["12345-2026-11-20.csv", "12345-2026-11-20.csv"],
                "row_no": [3, 7],
                "external_id": ["GD2026112000123", None],
                "received_at": [T0, None],
                "category": [None, "noise"],
                "address": ["银州区某小区<script>", None],
                "description": ["楼上漏水", "tab\tnew\nline"],
                "reporter_phone": ["13900000000", None],
                "raw": ['{"工单号": "GD2026112000123"}', "{}"],
                "reason": ["no_location", "unknown_category"],
                "status": ["open", "done"],
                "case_id": [None, 12],
                "created_at": [T0, T0],
            }
        ),
        "facilities": gdf(
            {
                "id": [1, 2],
                "kind": ["mediation_room", "risk_point"],
                "name": ["红旗社区调解室", "加油站"],
                "unit_code": ["211202001001", None],
            },
            [pt(30, 30), pt(900, -400)],
        ),
        "roads": gdf(
            {"id": [1, 2], "kind": ["arterial", "street"], "name": ["银州路", None]},
            [LineString([at(-500, 0), at(1500, 0)]), LineString([at(0, -500), at(0, 50), at(20, 900)])],
        ),
        "water": gdf(
            {"id": [1], "kind": ["river"], "name": ["柴河"]},
            [MultiPolygon([square(2000, 2000, 300), square(2400, 2000, 100)])],
        ),
        "settings": pd.DataFrame({"key": ["basemap.kind", "ui.title"], "value": ["none", "铁岭市网格化指挥平台"]}),
        "grid_drafts": pd.DataFrame(
            {
                "id": [1, 2],
                "unit_code": ["211202001001"] * 2,
                "base_version": [1, 1],
                "name": ["拆分红旗一网格", HOSTILE[0]],
                "author": ["规划员王", None],
                "status": ["open", "discarded"],
                "revision": [3, 0],
                "head": [4, 0],
                "band_min": [80, None],
                "band_max": [120, None],
                "created_at": [T0, T0],
                "updated_at": [T0 + timedelta(minutes=5), T0],
                "note": ["split", None],
            }
        ),
        "draft_grids": gdf(
            {
                "draft_id": [1, 1],
                "revision": [3, 3],
                "key": [1, 2],
                "code": ["211202001001001", None],
                "name": ["红旗一网格", HOSTILE[1]],
                "kind": ["base", "base"],
                "purpose": [None, None],
                "band_min": [80, 80],
                "band_max": [120, 120],
            },
            [square(0, 0, 200), MultiPolygon([square(200, 0, 200)])],
        ),
        "draft_edits": pd.DataFrame(
            {
                "draft_id": [1],
                "revision": [3],
                "ts": [T0],
                "actor": ["规划员王"],
                "action": ["split"],
                "detail": ['{"key": 1}'],
            }
        ),
        "grid_versions": pd.DataFrame(
            {
                "id": [1, 2],
                "unit_code": ["211202001001"] * 2,
                "version": [1, 2],
                "effective_at": [T0, T0 + timedelta(days=1)],
                "published_at": [T0, T0 + timedelta(hours=2)],
                "published_by": [None, "规划员王"],
                "draft_id": [None, 1],
                "grids": [3, 4],
                "households": [447, 447],
                "note": ["initial", HOSTILE[2]],
                "accepted_warnings": [None, "学校专属网格无人负责，下周补"],
            }
        ),
        "grid_archive": gdf(
            {
                "unit_code": ["211202001001"] * 2,
                "version": [1, 2],
                "code": ["211202001001001", "211202001001004"],
                "name": ["红旗一网格", "红旗四网格"],
                "kind": ["base", "base"],
                "purpose": [None, None],
                "band_min": [80, 80],
                "band_max": [120, 120],
                "households": [412, 96],
                "buildings": [12, 3],
            },
            [MultiPolygon([square(0, 0, 400)]), MultiPolygon([square(0, 0, 200)])],
        ),
        "grid_lineage": pd.DataFrame(
            {
                "unit_code": ["211202001001"] * 2,
                "version": [2, 2],
                "old_code": ["211202001001001"] * 2,
                "new_code": ["211202001001004", "211202001001005"],
                "households": [96, 316],
                "share_of_old": [96 / 412, 316 / 412],
                "share_of_new": [1.0, 1.0],
                "area_share": [0.25, 0.75],
            }
        ),
        "legacy_grids": gdf(
            {"layer": ["police", "urban_management"], "code": ["JW-01", "CG-7"], "name": ["警务网格一", HOSTILE[3]]},
            [MultiPolygon([square(0, 0, 300)]), MultiPolygon([square(0, 0, 310)])],
        ),
        "grid_crosswalk": pd.DataFrame(
            {
                "layer": ["police"],
                "legacy_code": ["JW-01"],
                "unified_code": ["211202001001004"],
                "area_m2": [90_000.0],
                "share_of_legacy": [1.0],
                "share_of_unified": [0.9],
                "households": [96],
            }
        ),
    }


# --------------------------------------------------------------------------- comparison


def _expected(col: schema.Column, values: list[Any]) -> list[Any]:
    out: list[Any] = []
    for v in values:
        if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NaT:
            out.append(None)
        elif col.type == "timestamp":
            ts = pd.Timestamp(v)
            ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
            out.append(ts.floor("s"))
        elif col.is_geometry:
            if col.geometry_kind == "MULTIPOLYGON" and v.geom_type == "Polygon":
                v = MultiPolygon([v])
            out.append(v)
        else:
            out.append(v)
    return out


def _actual(col: schema.Column, series: pd.Series) -> list[Any]:
    out: list[Any] = []
    for v in series.astype(object).tolist():
        if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, float) and math.isnan(v)):
            out.append(None)
        else:
            out.append(v)
    return out


def assert_rows_equal(table: str, written: pd.DataFrame, got: pd.DataFrame) -> None:
    """Every written column comes back with equal values, row for row (same order)."""
    t = schema.table(table)
    assert len(got) == len(written), f"{table}: {len(got)} rows back, {len(written)} written"
    for name in written.columns:
        is_geom = isinstance(written, gpd.GeoDataFrame) and name == written.geometry.name
        col = t.geometry_column if is_geom else t.column(name)
        assert col is not None
        exp = _expected(col, list(written[name]))
        act = _actual(col, got["geometry" if col.is_geometry else col.name])
        for i, (e, a) in enumerate(zip(exp, act, strict=True)):
            if col.is_geometry:
                if e is None:
                    assert a is None, f"{table}.{col.name}[{i}]: expected NULL, got {a}"
                else:
                    assert a is not None and a.geom_type == e.geom_type, f"{table}.{col.name}[{i}]: {a} != {e}"
                    assert shapely.equals_exact(a, e, tolerance=0), f"{table}.{col.name}[{i}]: {a.wkt} != {e.wkt}"
            elif col.type == "real" and e is not None:
                assert a is not None and float(a) == float(e), f"{table}.{col.name}[{i}]: {a!r} != {e!r}"
            else:
                assert a == e, f"{table}.{col.name}[{i}]: {a!r} != {e!r}"
                if e is not None and col.type == "text":
                    assert isinstance(a, str)
                if e is not None and col.type == "bool":
                    assert isinstance(a, bool | np.bool_)


def sort_key(table: str) -> list[str]:
    return list(schema.table(table).primary_key)


def by_key(frame: pd.DataFrame, table: str) -> pd.DataFrame:
    return frame.sort_values(sort_key(table)).reset_index(drop=True)


Factory = Callable[[], dict[str, pd.DataFrame]]
