"""Dispatch at city scale, as ratios against baselines measured in the same run, on both stores.

A synthetic Tieling-sized field: 15,000 staff with fresh positions over a 36 × 36 km area, 12,100
grids (each with a responsible worker), a street lattice every 400 m, 5,000 open cases.

Candidate ranking (``services.dispatch.candidates``: reads positions around the case, the roster,
grid responsibility and workloads from the store, then ranks; straight-line and road distance)
per case, p50/p95 over random cases, against:
- baseline 1: a bare shapely ``STRtree.query_nearest`` (the one nearest) over the 15,000 points in memory;
- baseline 2: the store's own k-nearest (``Store.nearest``, PostGIS ``<->`` on the GiST index).

Map payload of the dispatch page (``services.dispatch.board`` + ``layers.cases``, exactly as the page
builds them): the whole city (counts per street) and a 1920 × 1080 screen at zoom 15 (markers),
against the 1 MB per screen budget.

    .venv/bin/python bench/dispatch_candidates.py [--queries 200] [--stores sqlite,postgis]

Prints a table and writes bench/results/dispatch_candidates.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import LineString, MultiPolygon, box
from streamlit_folium import _get_feature_group_string

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from console import i18n  # noqa: E402
from geo.locate import PolygonIndex  # noqa: E402
from geo.lod import view_bbox  # noqa: E402
from layers.basemap import BasemapConfig, build_base_map  # noqa: E402
from layers.cases import build_case_counts_layer, build_cases_layer, build_clusters_layer  # noqa: E402
from services import dispatch  # noqa: E402
from store import open_store  # noqa: E402

ADMIN = os.environ.get("TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
LON, LAT = 123.84, 42.29
NOW = datetime(2026, 11, 18, 2, 0, tzinfo=UTC)
N_STAFF, SIDE, N_CASES = 15_000, 110, 5_000  # SIDE x SIDE grids
EXTENT_M = 36_000.0
M_LAT = 111_320.0
M_LON = M_LAT * np.cos(np.radians(LAT))


def lonlat(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return LON + x / M_LON, LAT + y / M_LAT


def field(rng: np.random.Generator) -> dict[str, pd.DataFrame]:
    half = EXTENT_M / 2
    a = lonlat(np.array([-half]), np.array([-half]))
    b = lonlat(np.array([half]), np.array([half]))
    whole = MultiPolygon([box(a[0][0], a[1][0], b[0][0], b[1][0])])
    units = gpd.GeoDataFrame(
        {"code": ["211202", "211202001", "211202001001"], "name": ["银州区", "红旗街道", "红旗社区"],
         "level": ["county", "township", "village"], "kind": ["district", "street", "community"],
         "parent_code": ["211200", "211202", "211202001"]},
        geometry=[whole, whole, whole], crs=4326,
    )  # fmt: skip
    step = EXTENT_M / SIDE
    xs = -half + step * np.arange(SIDE)
    cells, codes = [], []
    for i, x0 in enumerate(xs):
        for j, y0 in enumerate(xs):
            p0 = lonlat(np.array([x0]), np.array([y0]))
            p1 = lonlat(np.array([x0 + step]), np.array([y0 + step]))
            cells.append(MultiPolygon([box(p0[0][0], p0[1][0], p1[0][0], p1[1][0])]))
            codes.append(f"211202001001{i * SIDE + j:05d}")
    grids = gpd.GeoDataFrame({"code": codes, "name": codes, "unit_code": "211202001001", "kind": "base",
                              "households": 100}, geometry=cells, crs=4326)  # fmt: skip
    roles = rng.choice(["grid_worker_full", "grid_worker_part", "police", "mediator", "legal_adviser"], N_STAFF,
                       p=[0.6, 0.2, 0.1, 0.05, 0.05])  # fmt: skip
    ids = np.arange(1, N_STAFF + 1)
    staff = pd.DataFrame({"id": ids, "name": [f"员工{i}" for i in ids], "role": roles, "on_duty": rng.random(N_STAFF) < 0.9,
                          "unit_code": "211202001001", "device_id": [f"d{i}" for i in ids]})  # fmt: skip
    sx, sy = lonlat(rng.uniform(-half, half, N_STAFF), rng.uniform(-half, half, N_STAFF))
    ages = rng.exponential(120, N_STAFF)
    latest = gpd.GeoDataFrame({"staff_id": ids, "ts": [pd.Timestamp(NOW) - pd.Timedelta(seconds=float(a)) for a in ages]},
                              geometry=gpd.points_from_xy(sx, sy), crs=4326)  # fmt: skip
    links = pd.DataFrame({"staff_id": ids[: len(codes)], "grid_code": codes[:N_STAFF]})
    lines = []
    for v in np.arange(-half, half + 1, 400.0):
        x0, y0 = lonlat(np.array([v, -half]), np.array([-half, v]))
        x1, y1 = lonlat(np.array([v, half]), np.array([half, v]))
        lines.append(LineString([(x0[0], y0[0]), (x1[0], y1[0])]))
        lines.append(LineString([(x0[1], y0[1]), (x1[1], y1[1])]))
    roads = gpd.GeoDataFrame({"id": np.arange(len(lines)), "kind": "street"}, geometry=lines, crs=4326)
    cats = pd.DataFrame({"code": ["exposed_garbage", "public_order", "neighbour_dispute"],
                         "name_zh": ["暴露垃圾", "治安问题", "邻里纠纷"], "name_en": ["Garbage", "Public order", "Dispute"],
                         "time_limit_hours": [24.0, 2.0, 72.0], "handler_role": ["grid_worker_full", "police", "mediator"],
                         "time_limit": [1.0, 2.0, 72.0], "limit_unit": ["working_days", "hours", "hours"],
                         "accept_hours": [2.0, 0.25, 4.0], "kind": ["deadline", "immediate", "deadline"],
                         "urgency": [1, 3, 1], "active": [True, True, True]})  # fmt: skip
    cx, cy = lonlat(rng.uniform(-half, half, N_CASES), rng.uniform(-half, half, N_CASES))
    pts = gpd.GeoSeries(gpd.points_from_xy(cx, cy), crs=4326)
    grid_of = PolygonIndex(grids, key="code").lookup(cx, cy)
    states = rng.choice(["reported", "filed", "dispatched", "accepted", "in_progress"], N_CASES)
    assignee = np.where(np.isin(states, ["dispatched", "accepted", "in_progress"]), rng.integers(1, N_STAFF, N_CASES), -1)
    reported = [pd.Timestamp(NOW) - pd.Timedelta(minutes=float(m)) for m in rng.uniform(0, 4000, N_CASES)]
    cases = gpd.GeoDataFrame(
        {"category": rng.choice(cats["code"], N_CASES), "description": "描述", "address": "地址", "source": "app",
         "state": states, "urgency": 1, "grid_code": grid_of, "village_code": "211202001001",
         "township_code": "211202001", "county_code": "211202", "reported_at": reported,
         "assignee_id": pd.array([None if a < 0 else int(a) for a in assignee], dtype="Int64"), "rev": 0},
        geometry=pts, crs=4326,
    )  # fmt: skip
    return {"admin_units": units, "grids": grids, "staff": staff, "latest_positions": latest, "staff_grids": links,
            "roads": roads, "case_categories": cats, "cases": cases}  # fmt: skip


def overlay_bytes(groups: list[folium.FeatureGroup]) -> int:
    m = build_base_map(config=BasemapConfig(kind="none"), center=(LAT, LON), zoom=12)
    return sum(len(_get_feature_group_string(g, map=m, idx=i).encode()) for i, g in enumerate(groups))


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values) * 1000, q))


def run_store(url: str, frames: dict[str, pd.DataFrame], queries: int, rng: np.random.Generator) -> dict[str, Any]:
    store = open_store(url)
    try:
        t0 = time.perf_counter()
        with store.transaction():
            for name, frame in frames.items():
                store.write(name, frame)
        load_s = time.perf_counter() - t0
        ids = store.read("cases", where={"state": ["reported", "filed"]}, columns=["id"], geometry=False)["id"].to_numpy()
        sample = rng.choice(ids, size=min(queries, len(ids)), replace=False)
        latest = store.read("latest_positions")
        tree = shapely.STRtree(np.asarray(latest.geometry.values))
        case_pts = store.read("cases", where={"id": [int(i) for i in sample]}, columns=["id"]).set_index("id").geometry
        dispatch.road_network(store)  # built once per process, as in the console and the API
        out: dict[str, Any] = {"dialect": store.dialect, "load_s": round(load_s, 1)}
        timings: dict[str, list[float]] = {"candidates_straight": [], "candidates_road": [], "strtree_nearest": [], "store_nearest": []}
        for cid in sample:
            p = case_pts.loc[int(cid)]
            t = time.perf_counter()
            tree.query_nearest(p, return_distance=False, all_matches=False)
            timings["strtree_nearest"].append(time.perf_counter() - t)
            t = time.perf_counter()
            store.nearest("latest_positions", p.x, p.y, k=10)
            timings["store_nearest"].append(time.perf_counter() - t)
            t = time.perf_counter()
            dispatch.candidates(store, int(cid), roads=False, now=NOW)
            timings["candidates_straight"].append(time.perf_counter() - t)
            t = time.perf_counter()
            dispatch.candidates(store, int(cid), roads=True, now=NOW)
            timings["candidates_road"].append(time.perf_counter() - t)
        for k, v in timings.items():
            out[k] = {"p50_ms": round(pct(v, 50), 3), "p95_ms": round(pct(v, 95), 3)}
        for k in ("candidates_straight", "candidates_road"):
            for base in ("strtree_nearest", "store_nearest"):
                out[f"{k}_vs_{base}_p50"] = round(out[k]["p50_ms"] / out[base]["p50_ms"], 1)
        # the dispatch page's payload: whole city, and one screen at zoom 15
        labels = i18n.labels(("case.", "cstate.", "urgency.", "level.", "dur.", "cand.", "dist.", "cluster."), "zh")
        views = {"city (zoom 11)": view_bbox(LAT, LON, 11, width_px=1920, height_px=1080),
                 "screen (zoom 15)": view_bbox(LAT, LON, 15, width_px=1920, height_px=1080)}  # fmt: skip
        out["payload"] = []
        for name, bbox in views.items():
            t = time.perf_counter()
            b = dispatch.board(store, bbox=bbox, now=NOW)
            groups = []
            if b.counts is not None:
                groups.append(build_case_counts_layer(b.counts, labels=labels))
            else:
                if len(b.outlines):
                    groups.append(build_clusters_layer(b.outlines, labels=labels))
                groups.append(build_cases_layer(b.cases, labels=labels, now=NOW))
            n = overlay_bytes(groups)
            out["payload"].append({"view": name, "cases_in_view": b.stats["open"], "drawn": len(b.cases),
                                   "bubbles": 0 if b.counts is None else len(b.counts), "bytes": n,
                                   "share_of_1MB": round(n / 1_000_000, 4), "seconds": round(time.perf_counter() - t, 3)})  # fmt: skip
        return out
    finally:
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--stores", default="sqlite,postgis")
    ap.add_argument("--out", default="bench/results/dispatch_candidates.json")
    args = ap.parse_args()
    rng = np.random.default_rng(5)
    frames = field(rng)
    results = []
    for kind in args.stores.split(","):
        if kind == "sqlite":
            with tempfile.TemporaryDirectory() as tmp:
                results.append(run_store(f"sqlite:///{tmp}/bench.sqlite", frames, args.queries, rng))
        else:
            import psycopg2

            name = f"gc_bench_{uuid.uuid4().hex[:8]}"
            conn = psycopg2.connect(ADMIN)
            conn.autocommit = True
            conn.cursor().execute(f'CREATE DATABASE "{name}"')
            try:
                results.append(run_store(ADMIN.rsplit("/", 1)[0] + "/" + name, frames, args.queries, rng))
            finally:
                conn.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                conn.close()
    print(f"{N_STAFF:,} staff, {SIDE * SIDE:,} grids, {N_CASES:,} open cases, {args.queries} queries per store")
    for r in results:
        print(f"\n{r['dialect']}: loaded in {r['load_s']} s")
        for k in ("strtree_nearest", "store_nearest", "candidates_straight", "candidates_road"):
            print(f"  {k:22} p50 {r[k]['p50_ms']:8.3f} ms   p95 {r[k]['p95_ms']:8.3f} ms")
        for k in ("candidates_straight", "candidates_road"):
            print(f"  {k} / STRtree p50: x{r[f'{k}_vs_strtree_nearest_p50']}, / store nearest p50: x{r[f'{k}_vs_store_nearest_p50']}")
        for p in r["payload"]:
            print(f"  payload {p['view']:18} {p['cases_in_view']:>6} cases, {p['drawn']:>5} drawn, {p['bubbles']:>3} bubbles:"
                  f" {p['bytes'] / 1024:8.1f} KB ({p['share_of_1MB']:.1%} of 1 MB) in {p['seconds']} s")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"staff": N_STAFF, "grids": SIDE * SIDE, "cases": N_CASES, "results": results}, indent=2))


if __name__ == "__main__":
    main()
