"""Map payload per screen: what the grid map sends at city zoom and at street zoom.

Measures the bytes of the overlay JavaScript that streamlit-folium ships to the browser for one
render (the feature groups, built exactly as the console builds them) and the server time to compute
it, against a baseline measured in the same run: every micro-grid of the database drawn at once in
one folium map (the naive approach; ANCHORS.md: 19.3 MB for 12,000 grids).

    .venv/bin/python bench/map_payload.py --db sqlite:///var/gridconsole.sqlite

Prints a table and writes bench/results/map_payload.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import folium
import geopandas as gpd
from streamlit_folium import _get_feature_group_string  # the exact string st_folium sends

from console.mapui import overlay_groups
from geo.lod import view_bbox
from layers.basemap import BasemapConfig, build_base_map
from layers.grids import build_grids_layer
from services.mapview import View, map_data, unit_stats
from services.overview import city_summary
from store import open_store

LABELS = {k: k for k in ("grid.code", "grid.name", "grid.unit", "grid.households", "grid.band", "grid.worker", "grid.status")}


def overlay_bytes(groups: list[folium.FeatureGroup]) -> int:
    m = build_base_map(config=BasemapConfig(kind="none"), center=(42.29, 123.84), zoom=12)
    return sum(len(_get_feature_group_string(g, map=m, idx=i).encode()) for i, g in enumerate(groups))


def screen(center_lat: float, center_lon: float, zoom: int, width: int = 1920, height: int = 1080) -> View:
    return View(bbox=view_bbox(center_lat, center_lon, zoom, width_px=width, height_px=height), zoom=zoom)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default=None)
    ap.add_argument("--out", default="bench/results/map_payload.json")
    args = ap.parse_args()
    store = open_store(args.db)
    t0 = time.perf_counter()
    stats = unit_stats(store)
    t_stats = time.perf_counter() - t0
    summary = city_summary(store, stats=stats)
    assert summary is not None, "empty database: run gridconsole demo first"
    lat, lon = summary.center
    # The densest place: the first county's seat (the urban core of the demo).
    seat = store.read("admin_units", where={"level": "township", "kind": "street"}, columns=["code"], limit=1)
    slat, slon = (seat.geometry.iloc[0].centroid.y, seat.geometry.iloc[0].centroid.x) if len(seat) else (lat, lon)
    views = {
        "city zoom": screen(lat, lon, summary.zoom),
        "township zoom 12": screen(slat, slon, 12),
        "community zoom 14": screen(slat, slon, 14),
        "street zoom 16 (densest)": screen(slat, slon, 16),
        "street zoom 17": screen(slat, slon, 17),
    }
    rows = []
    for name, view in views.items():
        t0 = time.perf_counter()
        data = map_data(store, view, stats=stats)
        groups = overlay_groups(data, "zh")
        n = overlay_bytes(groups)
        dt = time.perf_counter() - t0
        rows.append({"view": name, "zoom": view.zoom, "level": data.level, "features": len(data.features), "bytes": n, "seconds": round(dt, 3)})

    # Baseline in the same run: every grid at once, unsimplified, in one folium layer.
    t0 = time.perf_counter()
    grids = store.read("grids", columns=["code", "name", "unit_code", "kind", "households", "band_min", "band_max"])
    grids = gpd.GeoDataFrame(grids.assign(unit_name="", worker="", status="in_band"), geometry="geometry", crs=grids.crs)
    base_bytes = overlay_bytes([build_grids_layer(grids, labels=LABELS | {f"grid.status.{s}": s for s in ("in_band", "under", "over", "empty", "dedicated")})])
    base_dt = time.perf_counter() - t0
    result = {
        "database": store.dialect,
        "grids": int(len(grids)),
        "unit_stats_seconds": round(t_stats, 3),
        "baseline_all_grids": {"bytes": base_bytes, "seconds": round(base_dt, 3)},
        "views": [r | {"ratio_to_baseline": round(r["bytes"] / base_bytes, 4)} for r in rows],
    }
    print(f"{store.dialect}: {len(grids):,} grids; baseline (all grids, one layer): {base_bytes / 1e6:.2f} MB in {base_dt:.1f} s")
    print(f"{'view':28} {'zoom':>4} {'level':9} {'features':>8} {'KB':>8} {'ratio':>7} {'s':>6}")
    for r in result["views"]:
        print(f"{r['view']:28} {r['zoom']:>4} {r['level']:9} {r['features']:>8} {r['bytes'] / 1024:>8.0f} {r['ratio_to_baseline']:>7.4f} {r['seconds']:>6.2f}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
