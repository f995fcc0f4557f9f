"""Position ingest and reads on PostGIS, as ratios against baselines measured in the same run.

Ingest (rows per second; baseline: a raw ``COPY`` of the same rows into a plain table):
- through the real HTTP endpoint: ``/osmand`` one fix per request (64 phones at once), and the
  batch endpoint (1,000 per request), served by ``gridconsole api`` in its own process;
- through the store directly: ``Ingestor.commit`` in chunks of 1,000 (what the group-commit
  writer does), and ``Store.write(mode="ignore")`` alone.
Reads (seconds; baseline: the raw SQL of the same rows with psycopg2):
- the live layer's latest positions for 15,000 staff (``services.tracks.live_staff``);
- one staff member's day of track (2,880 fixes among 600 staff-days) with segments, stops, stats.

Needs PostgreSQL + PostGIS (env ``TEST_POSTGRES_URL``, default postgresql://postgres@127.0.0.1:5432/postgres);
creates and drops a throwaway database.

    .venv/bin/python bench/position_ingest.py [--requests 4000]

Prints a table and writes bench/results/position_ingest.json.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import httpx
import numpy as np
import pandas as pd
import psycopg2
import shapely

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from demo import SIZES, generate, load_demo  # noqa: E402
from services import auth, tracks  # noqa: E402
from services.ingest import Fix, IngestConfig, Ingestor  # noqa: E402
from store.postgis import PostGISStore  # noqa: E402
from tests.fixtures.api import api_process  # noqa: E402

HEADERS: dict[str, str] = {}  # the gateway token, set in main()
ADMIN = os.environ.get("TEST_POSTGRES_URL") or "postgresql://postgres@127.0.0.1:5432/postgres"
N_STAFF = 15_000
LON, LAT = 123.84, 42.29


def _db_url(name: str) -> str:
    return ADMIN.rsplit("/", 1)[0] + "/" + name


def _admin(sql: str) -> None:
    conn = psycopg2.connect(ADMIN)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(sql)
    conn.close()


def _fixes(n: int, t0: float, *, staff: int = N_STAFF, seed: int = 1) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    sid = np.arange(n) % staff
    return pd.DataFrame(
        {
            "device": [f"87{int(i):010d}" for i in sid],
            "staff_id": sid + 100_001,
            "ts": t0 + (np.arange(n) // staff) * 30 + rng.integers(0, 29, n),
            "lon": LON + rng.uniform(-0.05, 0.05, n),
            "lat": LAT + rng.uniform(-0.03, 0.03, n),
            "speed": rng.uniform(0, 2, n).round(2),
        }
    )


def _rate(n: int, seconds: float) -> float:
    return n / seconds if seconds > 0 else float("inf")


def copy_baseline(url: str, rows: pd.DataFrame) -> float:
    conn = psycopg2.connect(url)
    with conn.cursor() as cur:
        cur.execute("CREATE TABLE bench_copy (staff_id bigint, ts timestamptz, speed double precision, geom geometry(POINT, 4326))")
        conn.commit()
        hexes = shapely.to_wkb(shapely.set_srid(shapely.points(rows["lon"], rows["lat"]), 4326), hex=True, include_srid=True)
        ts = pd.to_datetime(rows["ts"], unit="s", utc=True).dt.strftime("%Y-%m-%d %H:%M:%S+00")
        text = "\n".join(f"{s}\t{t}\t{v}\t{g}" for s, t, v, g in zip(rows["staff_id"], ts, rows["speed"], hexes, strict=True)) + "\n"
        t = time.perf_counter()
        cur.copy_expert("COPY bench_copy (staff_id, ts, speed, geom) FROM STDIN", io.StringIO(text))
        conn.commit()
        elapsed = time.perf_counter() - t
        cur.execute("DROP TABLE bench_copy")
        conn.commit()
    conn.close()
    return _rate(len(rows), elapsed)


def store_direct(store: PostGISStore, rows: pd.DataFrame) -> tuple[float, float]:
    ing = Ingestor(store, IngestConfig(region=(LON - 1, LAT - 1, LON + 1, LAT + 1)))
    fixes = [
        Fix(d, pd.Timestamp(t, unit="s", tz="UTC"), x, y, v)
        for d, t, x, y, v in zip(rows["device"], rows["ts"], rows["lon"], rows["lat"], rows["speed"], strict=True)
    ]
    sids = rows["staff_id"].tolist()
    t = time.perf_counter()
    for i in range(0, len(fixes), 1000):
        ing.commit(fixes[i : i + 1000], sids[i : i + 1000])
    commit_rate = _rate(len(fixes), time.perf_counter() - t)
    frame = gpd.GeoDataFrame(
        {"staff_id": rows["staff_id"], "ts": pd.to_datetime(rows["ts"] + 7 * 86400, unit="s", utc=True), "speed": rows["speed"]},
        geometry=shapely.points(rows["lon"], rows["lat"]),
        crs=4326,
    )
    t = time.perf_counter()
    for i in range(0, len(frame), 1000):
        store.write("positions", frame.iloc[i : i + 1000], mode="ignore")
    return commit_rate, _rate(len(frame), time.perf_counter() - t)


async def _send_single(base: str, rows: pd.DataFrame, concurrency: int = 64) -> tuple[float, int]:
    """64 phones at once, over 16 small connection pools (one 64-connection httpx pool costs the
    client about 4 ms of CPU per request and would measure the client, not the server)."""
    ok = 0
    retries = 0
    pools = max(1, concurrency // 4)
    clients = [
        httpx.AsyncClient(base_url=base, timeout=60, headers=HEADERS,
                          limits=httpx.Limits(max_connections=4, max_keepalive_connections=4))
        for _ in range(pools)
    ]
    queue: asyncio.Queue[tuple[str, int, float, float, float]] = asyncio.Queue()
    for d, ts, x, y, v in zip(rows["device"], rows["ts"], rows["lon"], rows["lat"], rows["speed"], strict=True):
        queue.put_nowait((d, int(ts), x, y, v))

    async def phone(c: httpx.AsyncClient) -> None:
        nonlocal ok, retries
        while not queue.empty():
            d, ts, x, y, v = queue.get_nowait()
            for _ in range(5):  # a phone resends what was not acknowledged
                try:
                    r = await c.post("/osmand", params={"id": d, "timestamp": ts, "lat": y, "lon": x, "speed": v})
                except httpx.TransportError:
                    retries += 1
                    continue
                ok += r.status_code == 200
                break

    t = time.perf_counter()
    await asyncio.gather(*(phone(clients[i % pools]) for i in range(concurrency)))
    elapsed = time.perf_counter() - t
    for c in clients:
        await c.aclose()
    if retries:
        print(f"  ({retries} requests resent after a dropped connection)")
    return _rate(len(rows), elapsed), ok


def _send_batches(base: str, rows: pd.DataFrame) -> tuple[float, int]:
    ok = 0
    with httpx.Client(base_url=base, timeout=120, headers=HEADERS) as c:
        t = time.perf_counter()
        for i in range(0, len(rows), 1000):
            part = rows.iloc[i : i + 1000]
            body = {"positions": [
                {"device_id": d, "timestamp": int(ts), "lat": y, "lon": x, "speed": v}
                for d, ts, x, y, v in zip(part["device"], part["ts"], part["lon"], part["lat"], part["speed"], strict=True)
            ]}  # fmt: skip
            ok += c.post("/api/positions", json=body).json()["accepted"]
        return _rate(len(rows), time.perf_counter() - t), ok


def best_of(fn: Any, repeat: int = 5) -> float:
    fn()
    out = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return min(out)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--requests", type=int, default=4000)
    ap.add_argument("--workers", type=int, default=1, help="API worker processes")
    args = ap.parse_args()
    name = f"gc_bench_{uuid.uuid4().hex[:8]}"
    _admin(f"CREATE DATABASE {name}")
    url = _db_url(name)
    results: dict[str, Any] = {
        "when": datetime.now(UTC).isoformat(),
        "requests": args.requests,
        "api_workers": args.workers,
        "cpus": os.cpu_count(),
    }
    try:
        store = PostGISStore(url)
        load_demo(store, generate(SIZES["small"], seed=3, now=datetime.now(UTC)))
        staff = pd.DataFrame(
            {"id": np.arange(100_001, 100_001 + N_STAFF), "name": "bench", "role": "grid_worker_full", "unit_code": "211202",
             "device_id": [f"87{i:010d}" for i in range(N_STAFF)], "on_duty": True}
        )  # fmt: skip
        store.write("staff", staff)
        # the phones' gateway: an administrator's token relays every device of the city (issue 8)
        HEADERS["Authorization"] = "Bearer " + auth.create_api_token(
            store, auth.Principal("bench", "admin", "211200", kind="token"), name="bench-gateway", role="admin", unit_code="211200"
        )
        now = time.time()
        n = 30_000
        rows = _fixes(n, now - 3 * 3600)
        copy_rate = copy_baseline(url, rows)
        commit_rate, write_rate = store_direct(store, rows)
        single = _fixes(args.requests, now - 2 * 3600, seed=2)
        batch = _fixes(n, now - 1 * 3600, seed=3)
        log_dir = Path(tempfile.mkdtemp(prefix="gc_bench_api_"))
        with api_process(
            url, log=log_dir / "api.log", extra=("--region", f"{LON - 1},{LAT - 1},{LON + 1},{LAT + 1}", "--workers", str(args.workers))
        ) as (base, _):
            print(f"API log: {log_dir / 'api.log'}")
            single_rate, single_ok = asyncio.run(_send_single(base, single))
            batch_rate, batch_ok = _send_batches(base, batch)
        results["ingest"] = {
            "copy_rows_per_s": copy_rate,
            "endpoint_single_rows_per_s": single_rate,
            "endpoint_single_acked": single_ok,
            "endpoint_batch_rows_per_s": batch_rate,
            "endpoint_batch_accepted": batch_ok,
            "store_commit_rows_per_s": commit_rate,
            "store_write_rows_per_s": write_rate,
        }
        # latest positions of 15,000 staff
        live = tracks.live_staff(store)
        conn = psycopg2.connect(url)

        def raw_latest() -> None:
            with conn.cursor() as cur:
                cur.execute("SELECT staff_id, ts, speed, accuracy, battery, ST_AsBinary(geom) FROM latest_positions")
                cur.fetchall()

        results["latest"] = {
            "staff": len(live),
            "raw_s": best_of(raw_latest),
            "live_staff_s": best_of(lambda: tracks.live_staff(store)),
        }
        # one staff member's day among 600 staff-days
        day0 = pd.Timestamp(now, unit="s", tz="UTC").floor("D") - pd.Timedelta(days=2)
        k = 600
        ts = day0 + pd.to_timedelta(np.tile(np.arange(2880) * 30, k), unit="s")
        sid = np.repeat(np.arange(100_001, 100_001 + k), 2880)
        rng = np.random.default_rng(5)
        walk = np.cumsum(rng.normal(0, 8e-5, (k, 2880, 2)), axis=1).reshape(-1, 2)
        day = gpd.GeoDataFrame(
            {"staff_id": sid, "ts": ts, "speed": 1.0, "jump": False},
            geometry=shapely.points(LON + walk[:, 0], LAT + walk[:, 1]),
            crs=4326,
        )
        t = time.perf_counter()
        store.write("positions", day)
        load_s = time.perf_counter() - t

        def raw_day() -> None:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT ts, speed, ST_AsBinary(geom) FROM positions WHERE staff_id = %s AND ts >= %s AND ts < %s ORDER BY ts",
                    (100_301, day0.isoformat(), (day0 + pd.Timedelta(days=1)).isoformat()),
                )
                cur.fetchall()

        results["track_day"] = {
            "fixes_loaded": len(day),
            "load_rows_per_s": _rate(len(day), load_s),
            "raw_s": best_of(raw_day),
            "track_s": best_of(lambda: tracks.track(store, 100_301, start=day0, end=day0 + pd.Timedelta(days=1)), 3),
        }
        conn.close()
        store.close()
    finally:
        _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    ing = results["ingest"]
    base_rate = ing["copy_rows_per_s"]
    print(f"{'ingest (rows/s)':<46}{'rate':>12}{'× COPY':>10}")
    for label, key in (
        ("raw COPY (baseline)", "copy_rows_per_s"),
        (f"HTTP /osmand, one fix per request, 64 phones, {args.workers} API process(es)", "endpoint_single_rows_per_s"),
        ("HTTP /api/positions, 1,000 per request", "endpoint_batch_rows_per_s"),
        ("store: Ingestor.commit, 1,000 per call", "store_commit_rows_per_s"),
        ("store: write(mode='ignore'), 1,000 per call", "store_write_rows_per_s"),
    ):
        print(f"{label:<46}{ing[key]:>12,.0f}{ing[key] / base_rate:>10.3f}")
    lat = results["latest"]
    print(f"latest positions of {lat['staff']:,} staff: raw {lat['raw_s']:.3f} s, live_staff {lat['live_staff_s']:.3f} s"
          f" ({lat['live_staff_s'] / lat['raw_s']:.1f}× raw)")
    td = results["track_day"]
    print(f"one staff day (2,880 fixes of {td['fixes_loaded']:,}): raw {td['raw_s'] * 1000:.1f} ms,"
          f" track with segments/stops/stats {td['track_s'] * 1000:.0f} ms ({td['track_s'] / td['raw_s']:.0f}× raw)")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "position_ingest.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
