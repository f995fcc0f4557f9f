"""Demo-city generation and loading time, city size against the small size in the same run.

    .venv/bin/python bench/demo_generation.py [--db URL] [--sizes small city]

Without --db each size is loaded into a fresh SQLite file under a temporary folder. Prints a table
(seconds for generation and loading, rows, rows/s, peak memory) and writes
bench/results/demo_generation.json.
"""

from __future__ import annotations

import argparse
import json
import resource
import tempfile
import time
from pathlib import Path

from demo import SIZES, generate, load_demo
from store import open_store


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", default=None, help="database URL to load into (default: a fresh SQLite file per size)")
    ap.add_argument("--sizes", nargs="+", default=["small", "city"])
    ap.add_argument("--out", default="bench/results/demo_generation.json")
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            url = args.db or f"sqlite:///{Path(tmp) / (size + '.sqlite')}"
            t0 = time.perf_counter()
            city = generate(SIZES[size])
            t_gen = time.perf_counter() - t0
            store = open_store(url)
            t0 = time.perf_counter()
            written = load_demo(store, city)
            t_load = time.perf_counter() - t0
            store.close()
            rows = sum(written.values())
            summary = city.summary()
            results.append(
                {
                    "size": size,
                    "database": url.split(":", 1)[0],
                    "generate_s": round(t_gen, 1),
                    "load_s": round(t_load, 1),
                    "rows": rows,
                    "load_rows_per_s": round(rows / t_load),
                    "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                    "summary": summary,
                }
            )
            print(
                f"{size:6} gen {t_gen:7.1f} s  load {t_load:7.1f} s  {rows:>11,} rows "
                f"({rows / t_load:,.0f}/s)  grids {summary['grids']:,}  households {summary['households']:,}"
            )
    if len(results) > 1:
        a, b = results[0], results[-1]
        print(
            f"{b['size']}/{a['size']}: generation ×{b['generate_s'] / max(a['generate_s'], 0.1):.0f}, "
            f"rows ×{b['rows'] / a['rows']:.0f}"
        )
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
