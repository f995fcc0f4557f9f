"""The big screen at city size, as ratios against the small demo measured in the same run.

1. Server time per refresh (in-process, what one refresh of the page computes: the headline
   figures, the ticker, the map's data and its overlays as streamlit-folium sends them), p50 over
   ``--refreshes`` runs, and the charts (once a minute); bytes of the map's overlays.
2. In headless Chromium (no internet, 1920×1080): first-load time until the figures, the map and
   the charts are drawn; bytes the browser receives over the websocket per refresh (every frame
   counted through the DevTools protocol while the page refreshes on its own).
3. ``--soak-minutes N``: the page left open on the city for N minutes of refreshes; the console's
   resident memory and the page's JavaScript heap and DOM nodes sampled every minute.

    .venv/bin/python bench/bigscreen.py --city-db sqlite:///var/city.sqlite [--refresh 5] [--refreshes 12]
    .venv/bin/python bench/bigscreen.py --city-db sqlite:///var/city.sqlite --soak-minutes 60 --refresh 5

Without ``--city-db`` the city demo is generated into a temporary file first (about 3 minutes).
Prints tables and writes bench/results/bigscreen.json (bigscreen_soak.json for a soak).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from streamlit_folium import _get_feature_group_string  # noqa: E402

from console.i18n import labels  # noqa: E402
from layers.basemap import BasemapConfig, build_base_map  # noqa: E402
from layers.bigscreen import build_districts_layer, build_flash_layer, build_staff_dots_layer  # noqa: E402
from layers.cameras import build_camera_counts_layer, build_cameras_layer  # noqa: E402
from layers.cases import build_case_counts_layer  # noqa: E402
from layers.staff import build_staff_layer  # noqa: E402
from services import bigscreen as bs  # noqa: E402
from store import open_store  # noqa: E402
from tests.fixtures.demo_db import build_small_demo, free_port, wait_until_healthy  # noqa: E402

PREFIXES = ("big.", "case.", "cstate.", "cam.", "camstat.", "dur.", "dist.", "staff.", "role.", "fresh.", "unit.")
CHROMIUM = "/usr/bin/chromium"


def _groups(m: bs.BigMap, L: dict[str, str]) -> list[Any]:
    groups = [build_districts_layer(m.outlines, labels=L, names=m.county is None), build_case_counts_layer(m.case_counts, labels=L)]
    groups.append(build_staff_dots_layer(m.staff) if m.county is None else build_staff_layer(m.staff, labels=L, legend=False))
    groups.append(build_camera_counts_layer(m.camera_counts, labels=L) if m.camera_counts is not None
                  else build_cameras_layer(m.cameras, labels=L))  # fmt: skip
    groups.append(build_flash_layer(m.new_cases, labels=L))
    return groups


def server_side(db: str, refreshes: int) -> dict[str, Any]:
    store = open_store(db)
    L = labels(PREFIXES, "zh")
    base = build_base_map(config=BasemapConfig(), center=(42.29, 123.84), zoom=9)
    times: dict[str, list[float]] = {"kpis": [], "ticker": [], "map_data": [], "layers": [], "total": []}
    size = 0
    try:
        for _ in range(refreshes):
            t0 = time.perf_counter()
            bs.kpis(store)
            t1 = time.perf_counter()
            bs.ticker(store)
            t2 = time.perf_counter()
            m = bs.map_data(store)
            t3 = time.perf_counter()
            size = sum(len(_get_feature_group_string(g, base).encode()) for g in _groups(m, L))
            t4 = time.perf_counter()
            for k, v in zip(times, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0), strict=True):
                times[k].append(v)
        t0 = time.perf_counter()
        bs.charts(store)
        charts_s = time.perf_counter() - t0
        first = bs.districts(store)["code"].iloc[0]
        t0 = time.perf_counter()
        md = bs.map_data(store, county=first)
        dsize = sum(len(_get_feature_group_string(g, base).encode()) for g in _groups(md, L))
        district_s = time.perf_counter() - t0
        counts = {"cases": store.count("cases"), "staff": store.count("staff"), "cameras": store.count("cameras")}
    finally:
        store.close()
    out = {k: round(statistics.median(v) * 1000, 1) for k, v in times.items()}
    return {"p50_ms": out, "overlay_bytes_city_view": size, "overlay_bytes_district_view": dsize,
            "district_refresh_ms": round(district_s * 1000, 1), "charts_ms": round(charts_s * 1000, 1), **counts}  # fmt: skip


@contextmanager
def console(db: str, log: Path) -> Iterator[tuple[str, int]]:
    port = free_port()
    cmd = [sys.executable, "-m", "streamlit", "run", str(ROOT / "console" / "app.py"), "--server.port", str(port),
           "--server.address", "127.0.0.1", "--server.headless", "true", "--server.enableStaticServing", "true",
           "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, env=dict(os.environ, DATABASE_URL=db), cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)  # noqa: S603
        try:
            base = f"http://127.0.0.1:{port}"
            wait_until_healthy(f"{base}/_stcore/health", proc, log, what="console")
            yield base, proc.pid
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def kiosk_token(db: str) -> str:
    """A big-screen viewer token for the wall's URL (``/bigscreen?kiosk=…``), as a site sets one up."""
    from services import auth

    store = open_store(db)
    try:
        return auth.create_api_token(store, auth.Principal("bench", "admin", "211200", kind="token"),
                                     name="bench-wall", role="viewer", unit_code="211200")  # fmt: skip
    finally:
        store.close()


@contextmanager
def page(base: str, refresh: int, kiosk: str) -> Iterator[tuple[Any, Any, dict[str, int], float]]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu",
                                    "--disable-background-timer-throttling", "--disable-renderer-backgrounding"])  # fmt: skip
        ctx = browser.new_context(viewport={"width": 1920, "height": 1080}, locale="zh-CN")
        ctx.route("**/*", lambda route, req: route.continue_() if "127.0.0.1" in req.url or req.url.startswith(("data:", "blob:", "about:")) else route.abort())  # fmt: skip
        pg = ctx.new_page()
        cdp = ctx.new_cdp_session(pg)
        cdp.send("Network.enable")
        got = {"bytes": 0, "frames": 0}

        def frame(ev: dict[str, Any]) -> None:
            got["bytes"] += len(ev["response"]["payloadData"])  # base64 for binary frames: ~4/3 of the bytes
            got["frames"] += 1

        cdp.on("Network.webSocketFrameReceived", frame)
        t0 = time.perf_counter()
        pg.goto(f"{base}/bigscreen?refresh={refresh}&kiosk={kiosk}", wait_until="domcontentloaded")
        pg.wait_for_selector("[data-kpi='open']", timeout=120_000)
        pg.wait_for_selector("iframe[title*='st_folium']", timeout=120_000)
        pg.wait_for_selector("[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg", timeout=120_000)
        for _ in range(480):
            if any(_map_drawn(f) for f in pg.frames):
                break
            pg.wait_for_timeout(250)
        load_s = time.perf_counter() - t0
        yield pg, cdp, got, load_s
        ctx.close()
        browser.close()


def _map_drawn(frame: Any) -> bool:
    try:
        return bool(frame.evaluate("() => { const k = Object.keys(window).find(k => k.startsWith('map_') && window[k].eachLayer);"
                                   " let n = 0; if (k) window[k].eachLayer(l => { if (l.gcUnit !== undefined) n++; }); return n > 0; }"))  # fmt: skip
    except Exception:
        return False


def browser_side(db: str, refresh: int, refreshes: int, log: Path) -> dict[str, Any]:
    with console(db, log) as (base, _pid), page(base, refresh, kiosk_token(db)) as (pg, _cdp, got, load_s):
        pg.wait_for_timeout(2000)
        b0, f0 = got["bytes"], got["frames"]
        pg.wait_for_timeout(refresh * refreshes * 1000)
        per = (got["bytes"] - b0) * 3 / 4 / refreshes  # frames are base64 in the protocol
        return {"first_load_s": round(load_s, 2), "bytes_per_refresh": round(per), "frames_per_refresh": round((got["frames"] - f0) / refreshes, 1)}


@contextmanager
def churn(db: str, every_s: float = 20.0) -> Iterator[dict[str, int]]:
    """While the page is open, the city lives: every ``every_s`` a new case somewhere and 500 staff
    report a fresh, slightly moved position (so every refresh has something new to send)."""
    import threading

    import numpy as np
    import pandas as pd

    from services import cases as cs

    stop = threading.Event()
    done = {"cases": 0, "positions": 0}

    def run() -> None:
        store = open_store(db)
        rng = np.random.default_rng(1)
        grids = store.read("grids", columns=["code"]).geometry.representative_point()
        cats = store.read("case_categories", columns=["code"], geometry=False)["code"].astype(str).tolist()
        try:
            while not stop.wait(every_s):
                g = grids.iloc[int(rng.integers(len(grids)))]
                cs.create_case(store, cs.NewCase(category=cats[int(rng.integers(len(cats)))], lon=g.x, lat=g.y,
                                                 description="大屏压力测试"))  # fmt: skip
                latest = store.read("latest_positions", limit=20_000)
                pick = latest.sample(n=min(500, len(latest)), random_state=int(rng.integers(1 << 30)))
                moved = pick.assign(ts=pd.Timestamp.now(tz="UTC"), received_at=pd.Timestamp.now(tz="UTC"))
                moved = moved.set_geometry(moved.geometry.translate(xoff=rng.normal(0, 1e-4), yoff=rng.normal(0, 1e-4)))
                store.write("latest_positions", moved, mode="upsert")
                done["cases"] += 1
                done["positions"] += len(moved)
        finally:
            store.close()

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield done
    finally:
        stop.set()
        t.join(timeout=60)


def soak(db: str, refresh: int, minutes: int, log: Path) -> dict[str, Any]:
    samples = []
    with console(db, log) as (base, pid), page(base, refresh, kiosk_token(db)) as (pg, cdp, got, _load), churn(db) as done:
        t0 = time.monotonic()
        for minute in range(minutes + 1):
            if minute:
                pg.wait_for_timeout(max(0.0, t0 + 60 * minute - time.monotonic()) * 1000)
            cdp.send("HeapProfiler.collectGarbage")  # live objects only, not garbage not yet collected
            heap = cdp.send("Runtime.getHeapUsage")
            dom = cdp.send("Memory.getDOMCounters")
            samples.append({"minute": minute, "server_rss_mb": round(_rss_mb(pid), 1),
                            "js_heap_mb": round(heap["usedSize"] / 2**20, 1), "dom_nodes": dom["nodes"],
                            "ws_mb": round(got["bytes"] * 3 / 4 / 2**20, 1), "cases_made": done["cases"],
                            "kpi_open": pg.evaluate("() => (document.querySelector('[data-kpi=open]') || {}).textContent")})  # fmt: skip
            print(samples[-1], flush=True)
    first = samples[1 : 11] or samples
    last = samples[-10:]

    def mean(rows: list[dict[str, Any]], key: str) -> float:
        return round(statistics.mean(r[key] for r in rows), 1)

    return {"refresh_s": refresh, "minutes": minutes, "refreshes": minutes * 60 // refresh, "samples": samples,
            "server_rss_mb_first10": mean(first, "server_rss_mb"), "server_rss_mb_last10": mean(last, "server_rss_mb"),
            "js_heap_mb_first10": mean(first, "js_heap_mb"), "js_heap_mb_last10": mean(last, "js_heap_mb"),
            "dom_nodes_first10": mean(first, "dom_nodes"), "dom_nodes_last10": mean(last, "dom_nodes")}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--city-db", help="database URL of a city demo (default: generate one)")
    ap.add_argument("--refresh", type=int, default=5)
    ap.add_argument("--refreshes", type=int, default=12)
    ap.add_argument("--soak-minutes", type=int, default=0)
    args = ap.parse_args()
    out_dir = ROOT / "bench" / "results"
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        city = args.city_db
        if not city:
            city = f"sqlite:///{tmp}/city.sqlite"
            subprocess.run([sys.executable, "-m", "console", "demo", "--size", "city", "--db", city, "--quiet"], check=True, cwd=ROOT)  # noqa: S603
        if args.soak_minutes:
            result = soak(city, args.refresh, args.soak_minutes, Path(tmp) / "soak.log")
            (out_dir / "bigscreen_soak.json").write_text(json.dumps(result, indent=2) + "\n")
            print({k: v for k, v in result.items() if k != "samples"})
            return
        small = build_small_demo(Path(tmp) / "small.sqlite")
        result: dict[str, Any] = {}
        for name, db in (("small", small), ("city", city)):
            result[name] = {"server": server_side(db, args.refreshes),
                            "browser": browser_side(db, args.refresh, args.refreshes, Path(tmp) / f"{name}.log")}  # fmt: skip
    s, c = result["small"], result["city"]
    result["ratios"] = {
        "server_total_p50": round(c["server"]["p50_ms"]["total"] / max(s["server"]["p50_ms"]["total"], 0.1), 1),
        "overlay_bytes": round(c["server"]["overlay_bytes_city_view"] / max(s["server"]["overlay_bytes_city_view"], 1), 1),
        "bytes_per_refresh": round(c["browser"]["bytes_per_refresh"] / max(s["browser"]["bytes_per_refresh"], 1), 1),
        "first_load": round(c["browser"]["first_load_s"] / max(s["browser"]["first_load_s"], 0.01), 2),
    }
    (out_dir / "bigscreen.json").write_text(json.dumps(result, indent=2) + "\n")
    print(f"{'':28}{'small':>12}{'city':>12}{'city/small':>12}")
    for label, key in (("server ms per refresh (p50)", "total"), ("  headline figures", "kpis"), ("  ticker", "ticker"),
                       ("  map data", "map_data"), ("  overlays", "layers")):  # fmt: skip
        a, b = s["server"]["p50_ms"][key], c["server"]["p50_ms"][key]
        print(f"{label:28}{a:>12}{b:>12}{b / max(a, 0.1):>12.1f}")
    for label, part, key in (("overlay bytes (city view)", "server", "overlay_bytes_city_view"),
                             ("overlay bytes (district)", "server", "overlay_bytes_district_view"),
                             ("charts ms (once a minute)", "server", "charts_ms"),
                             ("bytes per refresh (ws)", "browser", "bytes_per_refresh"),
                             ("first load s", "browser", "first_load_s")):  # fmt: skip
        a, b = s[part][key], c[part][key]
        print(f"{label:28}{a:>12}{b:>12}{b / max(a, 0.01):>12.1f}")
    print("written bench/results/bigscreen.json")


if __name__ == "__main__":
    main()
