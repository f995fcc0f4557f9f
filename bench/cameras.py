"""Cameras at city scale, as ratios against baselines measured in the same run.

On the ``city`` demo (4,205 cameras, 208k building footprints, 2,163 roads, 11,941 grids):

City-wide coverage (``services.cameras.compute_coverage``: views occluded by buildings, coverage of
road and open space per grid and community, blind spots, stored), against
- baseline 1: reading its inputs from the store (cameras, buildings, roads, grids) and nothing else;
- baseline 2: the same coverage on bare sectors (no buildings: no occlusion).

Video dispatch (``services.cameras.seeing``: cameras that see a place, line of sight checked
against building footprints) per place, p50/p95 over random case positions, against
- baseline: the store's bounding-box read of the cameras around the place, alone.

    .venv/bin/python bench/cameras.py [--db sqlite:///var/city.sqlite] [--queries 200]

Without ``--db`` the city demo is generated into a temporary SQLite file first (about 3 minutes).
Prints a table and writes bench/results/cameras.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geo.cameras import coverage, visible_areas  # noqa: E402
from services import cameras as cams  # noqa: E402
from store import open_store  # noqa: E402


def _pcts(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples) * 1000
    return {"p50_ms": round(float(np.percentile(a, 50)), 2), "p95_ms": round(float(np.percentile(a, 95)), 2)}


def run(db: str, queries: int) -> dict[str, Any]:
    store = open_store(db)
    try:
        t0 = time.perf_counter()
        camera_rows = store.read("cameras")
        buildings = store.read("buildings", columns=["id"])
        roads = store.read("roads", columns=["id"])
        grids = store.read("grids", columns=["code", "unit_code"])
        t_read = time.perf_counter() - t0

        t0 = time.perf_counter()
        bare = visible_areas(camera_rows, buildings.iloc[:0], default_range_m=cams.DEFAULT_RANGE_M)
        coverage(grids, key="code", roads=roads, buildings=buildings, visible=bare, cameras=camera_rows)
        t_bare = time.perf_counter() - t0

        run_ = cams.compute_coverage(store)
        stored = store.read("camera_coverage", where={"level": "grid"}, geometry=False)
        road_share = float(stored["road_covered_m"].sum() / stored["road_m"].sum())

        cases = store.read("cases", columns=["id"], limit=50_000)
        rng = np.random.default_rng(7)
        pick = cases.iloc[rng.choice(len(cases), size=min(queries, len(cases)), replace=False)]
        t_see, t_box, found = [], [], []
        for g in pick.geometry:
            lon, lat = float(g.x), float(g.y)
            t0 = time.perf_counter()
            store.read("cameras", bbox=cams._box(lon, lat, cams.SEE_PAD_M))
            t_box.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            seen = cams.seeing(store, lon=lon, lat=lat)
            t_see.append(time.perf_counter() - t0)
            found.append(len(seen))
        return {
            "db": db.split("://")[0],
            "cameras": len(camera_rows),
            "buildings": len(buildings),
            "roads": len(roads),
            "grids": len(grids),
            "coverage": {
                "seconds": round(run_.seconds, 1),
                "read_inputs_s": round(t_read, 1),
                "bare_sectors_s": round(t_bare, 1),
                "x_read": round(run_.seconds / t_read, 1),
                "x_bare": round(run_.seconds / t_bare, 2),
                "blind_spots": run_.blind_spots,
                "road_share_city": round(road_share, 4),
            },
            "seeing": {
                "queries": len(t_see),
                "seeing": _pcts(t_see),
                "bbox_read": _pcts(t_box),
                "x_bbox_p50": round(float(np.median(t_see) / np.median(t_box)), 1),
                "cameras_found_mean": round(float(np.mean(found)), 2),
                "places_seen_share": round(float(np.mean(np.asarray(found) > 0)), 3),
            },
        }
    finally:
        store.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--db", help="database URL of a city demo (default: generate one)")
    ap.add_argument("--queries", type=int, default=200)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        db = args.db
        if not db:
            db = f"sqlite:///{tmp}/city.sqlite"
            subprocess.run([sys.executable, "-m", "console", "demo", "--size", "city", "--db", db, "--quiet"],  # noqa: S603
                           check=True, cwd=ROOT)  # fmt: skip
        result = run(db, args.queries)
    c, s = result["coverage"], result["seeing"]
    print(f"{result['cameras']:,} cameras, {result['buildings']:,} buildings, {result['roads']:,} roads, {result['grids']:,} grids")
    print(f"city-wide coverage          {c['seconds']:>8.1f} s   (x{c['x_read']} reading its inputs, "
          f"x{c['x_bare']} bare sectors without occlusion)")  # fmt: skip
    print(f"  read inputs (baseline 1)  {c['read_inputs_s']:>8.1f} s")
    print(f"  bare sectors (baseline 2) {c['bare_sectors_s']:>8.1f} s")
    print(f"  road seen city-wide {100 * c['road_share_city']:.1f} %, {c['blind_spots']:,} blind spots")
    print(f"cameras seeing a place      p50 {s['seeing']['p50_ms']} ms  p95 {s['seeing']['p95_ms']} ms"
          f"   (x{s['x_bbox_p50']} the bbox read: p50 {s['bbox_read']['p50_ms']} ms)")  # fmt: skip
    print(f"  {s['places_seen_share']:.0%} of places seen by some camera, {s['cameras_found_mean']} cameras on average")
    out = ROOT / "bench" / "results" / "cameras.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"written {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
