"""Speed of the planning core on fixed synthetic inputs, as ratios against a baseline measured in
the same run (the tests do not assert wall-clock times).

Baseline: ``shapely.voronoi_polygons`` of the same buildings' centroids — the simplest geometry
step any partition of those buildings would take. Cases: the bisection of a 5,000-house village,
the partition of a ~7,000-household slab estate, the road-following partition of a street
community, and the audit of a village draft of 100 grids and 3,000 buildings.

    .venv/bin/python bench/planning_speed.py

Prints a table and writes bench/results/planning_speed.json.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from geo.audit import audit_grids  # noqa: E402
from geo.partition import partition, partition_households  # noqa: E402
from tests.geo.conftest import make_community  # noqa: E402
from tests.geo.test_audit import big_village  # noqa: E402
from tests.geo.test_partition import slab_estate, street_community  # noqa: E402


def best_of(fn: Callable[[], Any], repeat: int = 3) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    village = make_community(5000)
    estate, estate_boundary = slab_estate(7, (4, 3))
    streets, street_boundary, roads = street_community(0)
    grids, parent, buildings = big_village()
    cases: list[tuple[str, Any, Callable[[], Any]]] = [
        ("partition_households 5,000 houses", village, lambda: partition_households(village)),
        ("partition slab estate (~7,000 households)", estate, lambda: partition(estate, boundary=estate_boundary)),
        ("partition street community with roads", streets,
         lambda: partition(streets, boundary=street_boundary, roads=roads)),
        ("audit 100 grids, 3,000 buildings", buildings,
         lambda: audit_grids(grids, parent=parent, buildings=buildings, band=(80, 120))),
    ]
    rows = []
    for name, frame, fn in cases:
        points = shapely.MultiPoint(list(frame.geometry.centroid))
        baseline = best_of(lambda p=points: shapely.voronoi_polygons(p))
        seconds = best_of(fn)
        rows.append({"case": name, "buildings": len(frame), "seconds": seconds, "baseline_seconds": baseline,
                     "ratio_to_voronoi": seconds / baseline})
    print(f"{'case':45} {'buildings':>9} {'seconds':>8} {'× voronoi':>10}")
    for r in rows:
        print(f"{r['case']:45} {r['buildings']:9,} {r['seconds']:8.3f} {r['ratio_to_voronoi']:10.1f}")
    out = ROOT / "bench" / "results" / "planning_speed.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
