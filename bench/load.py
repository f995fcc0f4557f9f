"""Load test of issue #8: console sessions refreshing while phones send positions, on the city demo.

Starts the HTTP API (``gridconsole api``) and the console (``streamlit run console/app.py``) on free
loopback ports over a copy of the city demo, then for ``--minutes``:

- position senders (asyncio, a minimal keep-alive HTTP/1.1 client): ``--senders`` gateways each post a batch of ``--batch`` fixes
  to ``POST /api/positions`` on a fixed schedule, ``--rate`` fixes per second in total (open loop:
  a sender never has more than ``--max-inflight`` requests out; a tick it cannot send is counted
  as backlog, not silently dropped). ``--mode osmand`` sends one fix per ``GET /osmand`` instead.
  Real device ids of the ``staff`` table; each worker walks slowly around a point of their grid.
- console sessions: ``--sessions`` real Streamlit sessions over ``/_stcore/stream`` (the protobufs
  of the installed streamlit package), signed in by the ``gridconsole_session`` cookie, split by
  ``--mix`` (page:weight). The big screen refreshes as the browser does: its fragments rerun on the
  intervals the server asks for (``auto_rerun``; ``?refresh=--refresh``); other pages rerun the
  whole script every ``--refresh`` seconds. Latency: rerun request sent -> ``script_finished``.
  Errors: an exception element in the deltas, a disconnect, a rerun that never finishes, the
  sign-in page instead of the requested one.
- every ``--sample`` seconds: RSS and CPU of the API and the console (/proc), the ``positions``
  row count, the API's commit queue (``/api/status``), the machine's load.

It stops by itself after ``--minutes`` plus a drain of at most ``--drain`` seconds, kills what it
started, and binds nothing but 127.0.0.1. Prints a table and writes JSON to ``--out``. The method,
the results on the 2-core machine and where the time goes: docs/load.md.

    .venv/bin/python -m console demo --size city --db sqlite:////tmp/city/city.sqlite --quiet   # once
    .venv/bin/python bench/load.py --city-db sqlite:////tmp/city/city.sqlite [--minutes 10] [--rate 1000]
        [--sessions 50] [--mix bigscreen:35,dispatch:10,map:5] [--refresh 5] [--out /tmp/load-report.json]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import math
import os
import random
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from services import auth  # noqa: E402
from services.auth import Principal  # noqa: E402
from store import open_store  # noqa: E402
from tests.fixtures.demo_db import free_port, wait_until_healthy  # noqa: E402

COOKIE = "gridconsole_session"
USER = "loadtest"
PASSWORD = "load-test-password-8"  # noqa: S105 - a throwaway user of a throwaway copy
UNIT = "211200"
CLI = Principal("cli", "admin", UNIT, kind="token")
LOOPBACK = "127.0.0.1"
CLK_TCK = os.sysconf("SC_CLK_TCK")
# a text each page shows once rendered (in a markdown or heading of the first load), besides its map
# (a component): a harness that measures an empty page, or the sign-in page, is a defect
MARKERS = {"bigscreen": 'data-kpi="open"', "dispatch": "事件派遣", "map": "网格地图"}
DEFAULT_PAGE = "map"  # the console's first page is served at "/", its url path is "" for Streamlit
FINISHED = ForwardMsg.ScriptFinishedStatus


# ----------------------------------------------------------------------------- statistics


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = math.floor(k), math.ceil(k)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def summary_ms(values: list[float]) -> dict[str, Any]:
    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 1)

    return {"n": len(values), "p50_ms": ms(pct(values, 0.5)), "p95_ms": ms(pct(values, 0.95)),
            "p99_ms": ms(pct(values, 0.99)), "max_ms": ms(max(values) if values else None)}  # fmt: skip


@dataclass
class Kind:
    """One kind of request: latencies (s) of the successful ones, errors by class."""

    latencies: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    examples: list[str] = field(default_factory=list)

    def error(self, cls: str, example: str | None = None) -> None:
        self.errors[cls] += 1
        if example and len(self.examples) < 5:
            self.examples.append(f"{cls}: {example[:300]}")

    def report(self) -> dict[str, Any]:
        return {**summary_ms(self.latencies), "errors": dict(self.errors), "error_total": sum(self.errors.values()),
                "error_examples": self.examples}  # fmt: skip


@dataclass
class Results:
    kinds: dict[str, Kind] = field(default_factory=lambda: defaultdict(Kind))
    fixes_sent: int = 0
    fixes_accepted: int = 0
    fixes_duplicate: int = 0
    fixes_rejected: Counter[str] = field(default_factory=Counter)
    fixes_backlogged: int = 0  # ticks a sender could not send: its requests were still out
    send_lag: list[float] = field(default_factory=list)  # how late a tick was sent (client saturation)
    late_refreshes: int = 0
    superseded_fragment_runs: int = 0
    stale_retries: int = 0  # position requests resent once: the kept-alive connection was closed by the server
    session_info: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    measuring: bool = False  # only requests sent before the deadline count


# ----------------------------------------------------------------------------- set-up


def prepare_db(src: str, work: Path, copy: bool) -> str:
    """A copy of the city demo (sqlite; with its -wal, if any, checkpointed first) or ``src`` itself."""
    if not copy or not src.startswith("sqlite:///"):
        return src
    path = Path(src.removeprefix("sqlite:///"))
    if not path.exists():
        raise SystemExit(f"{path} does not exist: build it with `python -m console demo --size city --db {src}`")
    with contextlib.closing(sqlite3.connect(path)) as conn:  # fold the WAL in, so one file is the whole DB
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    dst = work / "city.sqlite"
    t = time.monotonic()
    shutil.copyfile(path, dst)
    print(f"copied {path} ({path.stat().st_size / 2**30:.2f} GB) in {time.monotonic() - t:.0f} s -> {dst}", flush=True)
    return f"sqlite:///{dst}"


@dataclass
class Setup:
    session_tokens: list[str]
    api_token: str
    devices: list[tuple[str, float, float]]  # device id, home lon, lat
    bbox: tuple[float, float, float, float]


def setup(db: str, sessions: int) -> Setup:
    """The load-test user, a session token per console session, an API token, and the phones."""
    store = open_store(db)
    try:
        if not store.count("users"):
            auth.bootstrap_admin(store, username=USER, password=PASSWORD, unit_code=UNIT)
        elif not store.count("users", where={"username": USER}):
            auth.create_user(store, CLI, username=USER, role="admin", unit_code=UNIT, password=PASSWORD)
        tokens = [auth.sign_in(store, username=USER, password=PASSWORD, client="loadtest")[0] for _ in range(sessions)]
        api_token = auth.create_api_token(store, CLI, name=f"loadtest-gateway-{int(time.time())}", role="admin", unit_code=UNIT)
        staff = store.read("staff", columns=["id", "device_id"], geometry=False)
        staff = staff[staff["device_id"].notna()]
        links = store.read("staff_grids", geometry=False)
        grids = store.read("grids", columns=["code"])
        pts = grids.geometry.representative_point()
        home = dict(zip(grids["code"].astype(str), zip(pts.x, pts.y, strict=True), strict=True))
        first = links.drop_duplicates("staff_id").set_index("staff_id")["grid_code"].astype(str).to_dict()
        codes = list(home)
        rng = random.Random(8)
        devices = []
        for sid, dev in zip(staff["id"].astype(int), staff["device_id"].astype(str), strict=True):
            lon, lat = home.get(first.get(sid, ""), home[codes[rng.randrange(len(codes))]])
            devices.append((dev.strip(), float(lon), float(lat)))
        b = grids.total_bounds
    finally:
        store.close()
    return Setup(tokens, api_token, devices, (float(b[0]), float(b[1]), float(b[2]), float(b[3])))


@contextlib.contextmanager
def process(cmd: list[str], health: str, log: Path, what: str, env: dict[str, str]) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)  # noqa: S603
        try:
            wait_until_healthy(health, proc, log, what=what, timeout_s=180)
            yield proc
        finally:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=10)


def api_cmd(db: str, port: int, workers: int) -> list[str]:
    return [sys.executable, "-m", "console", "api", "--port", str(port), "--address", LOOPBACK, "--db", db, "--workers", str(workers)]


def console_cmd(port: int) -> list[str]:
    return [sys.executable, "-m", "streamlit", "run", str(ROOT / "console" / "app.py"), "--server.port", str(port),
            "--server.address", LOOPBACK, "--server.headless", "true", "--server.enableStaticServing", "true",
            "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]  # fmt: skip


# ----------------------------------------------------------------------------- positions


class Walker:
    """A worker wandering around home at walking pace (about 1.4 m/s), never more than ~400 m away."""

    def __init__(self, device: str, lon: float, lat: float, rng: random.Random) -> None:
        self.device, self.home, self.rng = device, (lon, lat), rng
        self.lon, self.lat = lon + rng.uniform(-0.002, 0.002), lat + rng.uniform(-0.002, 0.002)
        self.heading = rng.uniform(0, 360)
        self.last = time.time() - rng.uniform(5, 20)
        self.sent_ts = 0

    def fix(self, now: float) -> dict[str, Any]:
        dt = max(0.0, min(60.0, now - self.last))
        self.last = now
        self.heading = (self.heading + self.rng.gauss(0, 25)) % 360
        if abs(self.lon - self.home[0]) > 0.005 or abs(self.lat - self.home[1]) > 0.004:  # turn back home
            self.heading = math.degrees(math.atan2(self.home[0] - self.lon, self.home[1] - self.lat)) % 360
        speed = max(0.0, self.rng.gauss(1.4, 0.3))
        d = speed * dt
        self.lat += d * math.cos(math.radians(self.heading)) / 111_320
        self.lon += d * math.sin(math.radians(self.heading)) / (111_320 * math.cos(math.radians(self.lat)))
        ts = max(int(now), self.sent_ts + 1)  # one fix per worker and second: never a duplicate by construction
        self.sent_ts = ts
        return {"device_id": self.device, "timestamp": ts, "lat": round(self.lat, 6), "lon": round(self.lon, 6),
                "speed": round(speed, 2), "bearing": round(self.heading, 1), "accuracy": round(self.rng.uniform(3, 15), 1),
                "battery": round(self.rng.uniform(20, 100), 0)}  # fmt: skip


class Http:
    """A minimal HTTP/1.1 keep-alive client for the position senders: httpx's connection pool costs
    the harness a core at a few hundred requests per second, on the same two cores as the servers.
    One request per connection at a time; a connection in an unknown state is closed."""

    KEEP_IDLE_S = 3.0  # uvicorn closes a connection idle for 5 s: never reuse one near that

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.head = "".join(f"{k}: {v}\r\n" for k, v in {"Host": f"{host}:{port}", **headers}.items())
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter, float]] = []
        self.stale_retries = 0

    async def request(self, method: str, target: str, body: bytes | None, timeout: float) -> tuple[int, bytes]:
        return await asyncio.wait_for(self._request(method, target, body), timeout)

    async def _request(self, method: str, target: str, body: bytes | None) -> tuple[int, bytes]:
        conn = None
        while self.idle:
            r, w, since = self.idle.pop()
            if time.monotonic() - since < self.KEEP_IDLE_S and not r.at_eof():
                conn = (r, w)
                break
            w.close()
        if conn is None:
            return await self._exchange(None, method, target, body)
        try:
            return await self._exchange(conn, method, target, body)
        except asyncio.IncompleteReadError as e:
            if e.partial:
                raise
        except ConnectionResetError:
            pass
        # a reused connection the server closed as the request went out: nothing was read, so the
        # request was not handled; send it again on a new connection, as HTTP clients do (counted)
        self.stale_retries += 1
        return await self._exchange(None, method, target, body)

    async def _exchange(self, conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None, method: str, target: str,
                        body: bytes | None) -> tuple[int, bytes]:  # fmt: skip
        if conn is None:
            conn = await asyncio.open_connection(self.host, self.port)
        reader, writer = conn
        keep = False
        try:
            extra = f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n" if body is not None else ""
            writer.write(f"{method} {target} HTTP/1.1\r\n{self.head}{extra}\r\n".encode() + (body or b""))
            head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            status = int(head[0].split(" ", 2)[1])
            fields = {k.strip().lower(): v.strip() for k, _, v in (h.partition(":") for h in head[1:] if h)}
            if fields.get("transfer-encoding", "").lower() == "chunked":
                data = b""
                while True:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    data += await reader.readexactly(size + 2)
                    if size == 0:
                        break
                data = data[:-2]
            else:
                data = await reader.readexactly(int(fields.get("content-length", "0")))
            keep = fields.get("connection", "").lower() != "close"
            return status, data
        finally:
            if keep:
                self.idle.append((reader, writer, time.monotonic()))
            else:
                writer.close()

    def close(self) -> None:
        for _, w, _ in self.idle:
            w.close()
        self.idle.clear()


def classify(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connect"
    if isinstance(exc, (ConnectionError, asyncio.IncompleteReadError)):
        return "disconnect"
    return type(exc).__name__


async def sender(i: int, walkers: list[Walker], http: Http, args: argparse.Namespace, t_start: float, deadline: float,
                 res: Results) -> None:  # fmt: skip
    """One gateway: every ``interval`` s a batch of ``--batch`` fixes of its workers (round robin)."""
    per_request = args.batch if args.mode == "batch" else 1
    interval = args.senders * per_request / args.rate
    inflight: set[asyncio.Task[None]] = set()
    kind = res.kinds["positions " + ("POST /api/positions" if args.mode == "batch" else "GET /osmand")]
    k, cursor = 0, 0

    async def one(batch: list[dict[str, Any]]) -> None:
        t = time.perf_counter()
        counted = res.measuring
        try:
            if args.mode == "batch":
                status, raw = await http.request("POST", "/api/positions", json.dumps({"positions": batch}).encode(), args.timeout)
            else:
                f = batch[0]
                q = {"id": f["device_id"], "timestamp": f["timestamp"], "lat": f["lat"], "lon": f["lon"],
                     "speed": round(f["speed"] / 0.514444, 2), "bearing": f["bearing"], "accuracy": f["accuracy"],
                     "batt": f["battery"], "token": args.api_token}  # fmt: skip
                status, raw = await http.request("GET", "/osmand?" + urlencode(q), None, args.timeout)
        except Exception as e:  # a timeout or a refused connection is an error of the request, not of the harness
            if counted:
                kind.error(classify(e), repr(e))
            return
        dt = time.perf_counter() - t
        if not counted:
            return
        if status != 200:
            kind.error(f"{status // 100}xx:{status}", raw.decode(errors="replace"))
            return
        kind.latencies.append(dt)
        body = json.loads(raw)
        if args.mode == "batch":
            res.fixes_accepted += int(body.get("accepted", 0))
            res.fixes_duplicate += int(body.get("duplicates", 0))
            for rej in body.get("rejected", []):
                res.fixes_rejected[str(rej.get("status"))] += 1
        elif body.get("status") == "duplicate":
            res.fixes_duplicate += 1
        else:
            res.fixes_accepted += 1

    phase = t_start + interval * i / args.senders  # senders spread evenly over the interval
    while True:
        due = phase + k * interval
        if due >= deadline:
            break
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        k += 1
        if res.measuring:
            res.send_lag.append(max(0.0, time.monotonic() - due))
        if len(inflight) >= args.max_inflight:
            if res.measuring:
                res.fixes_backlogged += per_request
            continue
        now = time.time()
        batch = []
        for _ in range(per_request):
            batch.append(walkers[cursor].fix(now))
            cursor = (cursor + 1) % len(walkers)
        if res.measuring:
            res.fixes_sent += len(batch)
        task = asyncio.create_task(one(batch))
        inflight.add(task)
        task.add_done_callback(inflight.discard)
    if inflight:
        await asyncio.wait(inflight, timeout=args.drain)
    http.close()
    res.stale_retries += http.stale_retries


# ----------------------------------------------------------------------------- console sessions


@dataclass
class Run:
    """What one rerun request produced."""

    deltas: int = 0
    bytes: int = 0
    exceptions: list[str] = field(default_factory=list)
    finished: int = 0
    components: int = 0  # the maps (streamlit-folium) and other components drawn
    superseded: int = 0  # fragment runs ended early because the next request came in
    text_hit: bool = False


class Session:
    """A browser tab of the console, minus the browser: speaks Streamlit's websocket protocol."""

    def __init__(self, n: int, page: str, token: str, base: str, args: argparse.Namespace, res: Results) -> None:
        self.n, self.page, self.token, self.args, self.res = n, page, token, args, res
        self.ws_url = base.replace("http://", "ws://") + "/_stcore/stream"
        self.query = f"refresh={args.refresh}" if page == "bigscreen" else ""
        self.page_hash = ""
        self.fragments: dict[str, float] = {}  # fragment id -> auto-rerun interval (s)
        self.nav_pages: list[str] = []
        self.waiting: tuple[str, float] | None = None  # a rerun sent and not finished: (what, since)
        self.ws: Any = None
        self.inbox: asyncio.Queue[tuple[ForwardMsg | None, int]] = asyncio.Queue()
        self.info: dict[str, Any] = {"session": n, "page": page, "reconnects": 0, "refreshes": 0, "first_load_ms": None,
                                     "first_load_deltas": 0, "first_load_bytes": 0, "marker_found": False,
                                     "deltas_per_refresh": [], "bytes_per_refresh": []}  # fmt: skip
        res.session_info.append(self.info)  # now, so a session still stuck at the end is reported too

    def _back(self, fragment: str | None = None) -> bytes:
        msg = BackMsg()
        cs = msg.rerun_script
        cs.query_string = self.query
        cs.page_script_hash = self.page_hash
        cs.page_name = "" if self.page_hash or self.page == DEFAULT_PAGE else self.page
        if fragment:
            cs.fragment_id = fragment
            cs.is_auto_rerun = True
        ci = cs.context_info
        ci.timezone, ci.timezone_offset, ci.locale = "Asia/Shanghai", -480, "zh-CN"
        ci.url = f"http://{LOOPBACK}/{self.page}" + (f"?{self.query}" if self.query else "")
        ci.is_embedded = False
        ci.color_scheme = "light"
        return msg.SerializeToString()

    async def connect(self) -> None:
        self.ws = await websockets.connect(self.ws_url, subprotocols=["streamlit"],  # type: ignore[list-item]
                                           additional_headers={"Cookie": f"{COOKIE}={self.token}"},
                                           max_size=None, open_timeout=30, ping_interval=20, ping_timeout=60,
                                           compression=None)  # fmt: skip
        self.page_hash = ""
        self.fragments.clear()

    async def reader(self) -> None:
        try:
            async for raw in self.ws:
                m = ForwardMsg()
                m.ParseFromString(raw)
                await self.inbox.put((m, len(raw)))
        except websockets.ConnectionClosed:
            pass
        finally:
            await self.inbox.put((None, 0))  # the connection is gone

    async def rerun(self, fragments: list[str] | None, timeout: float, marker: str | None = None) -> tuple[float, Run]:
        """Send a rerun (the whole page, or these fragments at once) and wait until it has finished:
        Streamlit may run several queued fragments in one run, whose script_finished names them all."""
        pending = set(fragments or [""])
        run = Run()
        t = time.perf_counter()
        self.waiting = ("first load" if not self.info["refreshes"] and not fragments else "refresh", time.monotonic())
        for f in fragments or [None]:  # type: ignore[list-item]
            await self.ws.send(self._back(f))
        end = t + timeout
        while pending:
            try:
                m, size = await asyncio.wait_for(self.inbox.get(), max(0.01, end - time.perf_counter()))
            except TimeoutError:
                raise RefreshError("timeout", f"{len(pending)} run(s) unfinished after {timeout:.0f} s") from None
            if m is None:
                raise RefreshError("disconnect", "the websocket closed")
            kind = m.WhichOneof("type")
            run.bytes += size
            if kind == "delta":
                run.deltas += 1
                if m.delta.WhichOneof("type") == "new_element":
                    el = m.delta.new_element
                    what = el.WhichOneof("type")
                    if what == "exception":
                        run.exceptions.append(f"{el.exception.type}: {el.exception.message}")
                    elif what == "component_instance":
                        run.components += 1
                    elif marker and what in ("markdown", "heading"):
                        run.text_hit = run.text_hit or marker in getattr(el, what).body
            elif kind == "new_session":
                self.page_hash = m.new_session.page_script_hash
            elif kind == "navigation":
                self.page_hash = m.navigation.page_script_hash or self.page_hash
                self.nav_pages = [p.url_pathname or DEFAULT_PAGE for p in m.navigation.app_pages]
            elif kind == "auto_rerun":
                self.fragments[m.auto_rerun.fragment_id] = m.auto_rerun.interval
            elif kind == "stop_auto_rerun":
                for f in m.stop_auto_rerun.fragment_ids:
                    self.fragments.pop(f, None)
            elif kind == "page_not_found":
                raise RefreshError("page_not_found", f"{self.page} (pages: {self.nav_pages})")
            elif kind == "script_finished":
                if m.script_finished == FINISHED.FINISHED_WITH_COMPILE_ERROR:
                    raise RefreshError("compile_error", self.page)
                ids = set(m.metadata.run.fragment_ids)
                if m.script_finished == FINISHED.FINISHED_EARLY_FOR_RERUN:
                    # a fragment run cut short by the next request: Streamlit does not run it again
                    # (the browser would see the same); it counts as ended, and is reported
                    if fragments and ids & pending:
                        run.superseded += len(ids & pending)
                        pending -= ids
                    continue
                run.finished += 1
                if not fragments:
                    pending.clear()
                elif ids:
                    pending -= ids
                else:  # a finish that does not say which run it ended (a failed request): count it as one
                    pending.pop()
        self.waiting = None
        return time.perf_counter() - t, run

    async def run(self, t_start: float, deadline: float) -> None:
        first = self.res.kinds[f"console first load: {self.page}"]
        kind = self.res.kinds[f"console refresh: {self.page}"]
        await asyncio.sleep(max(0.0, t_start - time.monotonic()))
        while time.monotonic() < deadline:
            try:
                await self.connect()
            except Exception as e:
                first.error("connect", repr(e))
                await asyncio.sleep(2)
                continue
            reader = asyncio.create_task(self.reader())
            try:
                await self._session(first, kind, deadline)
                break  # the time is up
            except RefreshError as e:
                (kind if self.info["refreshes"] else first).error(e.cls, e.detail)
                self.info["reconnects"] += 1
            finally:
                with contextlib.suppress(Exception):
                    await self.ws.close()
                reader.cancel()
                with contextlib.suppress(BaseException):
                    await reader
                self.inbox = asyncio.Queue()

    async def _session(self, first: Kind, kind: Kind, deadline: float) -> None:
        a = self.args
        dt, run = await self.rerun(None, a.load_timeout, MARKERS.get(self.page))
        if self.page not in self.nav_pages:
            raise RefreshError("not_signed_in", f"asked for {self.page}, the console offers {self.nav_pages}")
        if not (run.text_hit and run.components):
            raise RefreshError("empty_page", f"{self.page}: marker {run.text_hit}, components {run.components}, "
                                             f"{run.deltas} deltas")  # fmt: skip
        self._check(first, run)
        if self.info["first_load_ms"] is None:
            self.info.update(first_load_ms=round(dt * 1000), first_load_deltas=run.deltas, first_load_bytes=run.bytes, first_load_components=run.components,
                             marker_found=run.text_hit, fragments=dict(self.fragments))  # fmt: skip
        first.latencies.append(dt)  # warm-up included: every session's first load is part of the test
        due: dict[str, float] = {}
        next_full = time.monotonic() + a.refresh
        while True:
            now = time.monotonic()
            if self.page == "bigscreen" and self.fragments:  # what the browser does: each fragment on its interval
                for f, iv in self.fragments.items():
                    due.setdefault(f, now + iv)
                wake = min(due.values())
            else:
                wake = next_full
            if wake >= deadline:
                return
            await asyncio.sleep(max(0.0, wake - time.monotonic()))
            now = time.monotonic()
            if now - wake > 1.0:
                self.res.late_refreshes += 1  # the previous refresh overran this one's time
            if self.page == "bigscreen" and self.fragments:
                go = [f for f, t in due.items() if t <= now + 0.05]
                for f in go:
                    due[f] = max(due[f] + self.fragments.get(f, a.refresh), now)
                label = f"{len(go)} of {len(self.fragments)} fragments"
            else:
                go, label = [], "whole page"
                next_full = max(next_full + a.refresh, now)
            measuring = self.res.measuring
            try:
                dt, run = await self.rerun(go or None, a.refresh_timeout)
            except RefreshError:
                if measuring:
                    raise
                return
            self.info["refreshes"] += 1
            if measuring:
                self.res.superseded_fragment_runs += run.superseded
            self._check(kind, run)
            if measuring:
                kind.latencies.append(dt)
                self.res.kinds[f"console refresh: {self.page} ({label})"].latencies.append(dt)
                self.info["deltas_per_refresh"].append(run.deltas)
                self.info["bytes_per_refresh"].append(run.bytes)

    def _check(self, kind: Kind, run: Run) -> None:
        for e in run.exceptions:
            kind.error("exception", e)


class RefreshError(Exception):
    def __init__(self, cls: str, detail: str) -> None:
        super().__init__(f"{cls}: {detail}")
        self.cls, self.detail = cls, detail


def session_pages(mix: str, n: int) -> list[str]:
    """'bigscreen:35,dispatch:10,map:5' -> n page names in those proportions."""
    parts = [(p.split(":")[0].strip(), float(p.split(":")[1]) if ":" in p else 1.0) for p in mix.split(",") if p.strip()]
    total = sum(w for _, w in parts)
    counts = [int(n * w / total) for _, w in parts]
    for i in sorted(range(len(parts)), key=lambda i: -(n * parts[i][1] / total - counts[i]))[: n - sum(counts)]:
        counts[i] += 1
    return [p for (p, _), c in zip(parts, counts, strict=True) for _ in range(c)]


# ----------------------------------------------------------------------------- sampling


def proc_stat(pid: int) -> tuple[float, float]:
    """(CPU seconds, RSS MB) of the process itself; its children are summed by ``usage`` (uvicorn
    ``--workers`` forks)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / CLK_TCK
    rss = int(fields[21]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    return cpu, rss


def tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        with contextlib.suppress(OSError):
            for t in Path(f"/proc/{p}/task").iterdir():
                with contextlib.suppress(OSError):
                    todo.extend(int(c) for c in (t / "children").read_text().split())
    return out


def usage(pid: int) -> tuple[float, float]:
    cpu = rss = 0.0
    for p in tree(pid):
        with contextlib.suppress(OSError, IndexError, ValueError):
            c, r = proc_stat(p)
            cpu, rss = cpu + c, rss + r
    return cpu, rss


def machine_cpu() -> tuple[float, float]:
    v = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = v[3] + v[4]
    return sum(v) / CLK_TCK, idle / CLK_TCK


def position_count(db: str) -> int | None:
    if db.startswith("sqlite:///"):
        uri = "file:" + db.removeprefix("sqlite:///") + "?mode=ro"
        with contextlib.closing(sqlite3.connect(uri, uri=True, timeout=30)) as c:
            return int(c.execute("SELECT count(*) FROM positions").fetchone()[0])
    store = open_store(db)
    try:
        return store.count("positions")
    finally:
        store.close()


async def sampler(pids: dict[str, int], db: str, api: httpx.AsyncClient, every: float, t0: float, stop: asyncio.Event,
                  res: Results) -> None:  # fmt: skip
    me = os.getpid()
    prev = {name: (proc_stat(me) if pid == me else usage(pid))[0] for name, pid in {**pids, "harness": me}.items()}
    mprev = machine_cpu()
    tprev = time.monotonic()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), every)
        now = time.monotonic()
        row: dict[str, Any] = {"t_s": round(now - t0, 1), "measuring": res.measuring}
        for name, pid in {**pids, "harness": me}.items():
            cpu, rss = proc_stat(me) if pid == me else usage(pid)  # the servers are the harness's children
            row[f"{name}_cpu_pct"] = round((cpu - prev[name]) / (now - tprev) * 100, 1)
            row[f"{name}_rss_mb"] = round(rss, 1)
            prev[name] = cpu
        m = machine_cpu()
        row["machine_cpu_pct"] = round((1 - (m[1] - mprev[1]) / max(1e-9, m[0] - mprev[0])) * 100, 1)  # of all cores
        mprev, tprev = m, now
        row["loadavg_1m"] = float(Path("/proc/loadavg").read_text().split()[0])
        t = time.perf_counter()
        try:
            row["positions_rows"] = await asyncio.to_thread(position_count, db)
        except Exception as e:
            row["positions_rows"] = None
            row["positions_error"] = repr(e)[:200]
        row["count_ms"] = round((time.perf_counter() - t) * 1000)
        with contextlib.suppress(Exception):
            s = (await api.get("/api/status", timeout=10)).json()
            row.update(api_committed=s.get("committed"), api_queued=s.get("queued"), api_commit_s=s.get("commit_seconds"),
                       api_transactions=s.get("transactions"))  # fmt: skip
        res.samples.append(row)
        if row["t_s"] // 30 != (row["t_s"] - every) // 30:
            print("  " + " ".join(f"{k}={v}" for k, v in row.items() if k != "measuring"), flush=True)


# ----------------------------------------------------------------------------- the run


async def run_load(args: argparse.Namespace, s: Setup, api_base: str, console_base: str, pids: dict[str, int], db: str) -> tuple[Results, dict[str, Any]]:  # fmt: skip
    res = Results()
    headers = {"Authorization": f"Bearer {s.api_token}"}
    args.api_token = s.api_token
    rng = random.Random(1)
    devices = list(s.devices)
    rng.shuffle(devices)
    walkers = [Walker(d, x, y, random.Random(i)) for i, (d, x, y) in enumerate(devices)]
    groups = [walkers[i :: args.senders] for i in range(args.senders)]
    pages = session_pages(args.mix, args.sessions)
    host, port = api_base.removeprefix("http://").split(":")
    async with httpx.AsyncClient(base_url=api_base, timeout=10, headers=headers) as status_client:
        t0 = time.monotonic()
        warm = t0 + args.warmup
        deadline = warm + args.minutes * 60
        stop = asyncio.Event()
        samp = asyncio.create_task(sampler(pids, db, status_client, args.sample, t0, stop, res))
        sessions = [Session(i, p, s.session_tokens[i], console_base, args, res) for i, p in enumerate(pages)]
        # sessions open one after another over the first seconds (a wall of screens is not switched on in one ms)
        stagger = min(args.warmup, 20.0) / max(1, len(sessions))
        tasks = [asyncio.create_task(se.run(t0 + i * stagger, deadline)) for i, se in enumerate(sessions)]
        tasks += [asyncio.create_task(sender(i, g, Http(host, int(port), headers), args, t0, deadline, res))
                  for i, g in enumerate(groups)]  # fmt: skip
        await asyncio.sleep(max(0.0, warm - time.monotonic()))
        res.measuring = True
        measure_t0 = time.monotonic()
        print(f"measuring for {args.minutes} min from now ({time.strftime('%H:%M:%S')})", flush=True)
        await asyncio.sleep(max(0.0, deadline - time.monotonic()))
        res.measuring = False
        measured_s = time.monotonic() - measure_t0
        done, pending = await asyncio.wait(tasks, timeout=args.drain)
        ended = time.monotonic()
        stuck = [{"session": se.n, "page": se.page, "waiting_for": se.waiting[0], "waiting_s": round(ended - se.waiting[1], 1)}
                 for se in sessions if se.waiting is not None]  # fmt: skip
        for t in pending:
            t.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        for t in done:
            if t.exception() is not None:
                print(f"task failed: {t.exception()!r}", flush=True)
        stop.set()
        await samp
        status = {}
        with contextlib.suppress(Exception):
            status = (await status_client.get("/api/status")).json()
    return res, {"measured_s": measured_s, "pending_after_drain": len(pending), "api_status": status, "stuck": stuck}


def report(args: argparse.Namespace, res: Results, meta: dict[str, Any], env: dict[str, Any]) -> dict[str, Any]:
    secs = meta["measured_s"]
    m = [r for r in res.samples if r["measuring"]]
    minute = max(1, int(60 / args.sample))

    def mean(rows: list[dict[str, Any]], key: str) -> float | None:
        v = [r[key] for r in rows if r.get(key) is not None]
        return round(statistics.mean(v), 1) if v else None

    keys = [k for k in (m[0] if m else {}) if k.endswith(("_cpu_pct", "_rss_mb")) or k in ("machine_cpu_pct", "loadavg_1m")]
    rows = [r for r in m if r.get("positions_rows") is not None]
    growth = (rows[-1]["positions_rows"] - rows[0]["positions_rows"]) / max(1e-9, rows[-1]["t_s"] - rows[0]["t_s"]) if len(rows) > 1 else None
    sess = res.session_info
    out = {
        "config": {k: v for k, v in vars(args).items() if k != "api_token"},
        "environment": env,
        "measured_s": round(secs, 1),
        "kinds": {k: v.report() for k, v in sorted(res.kinds.items())},
        "positions": {
            "target_fixes_per_s": args.rate,
            "sent_fixes_per_s": round(res.fixes_sent / secs, 1),
            "accepted_fixes_per_s": round(res.fixes_accepted / secs, 1),
            "stored_rows_per_s": round(growth, 1) if growth is not None else None,
            "sent": res.fixes_sent, "accepted": res.fixes_accepted, "duplicates": res.fixes_duplicate,
            "rejected_by_status": dict(res.fixes_rejected), "backlogged_not_sent": res.fixes_backlogged,
            "send_lag_p95_ms": round((pct(res.send_lag, 0.95) or 0) * 1000, 1),
            "resent_on_closed_keepalive": res.stale_retries,
        },  # fmt: skip
        "console": {
            "sessions": len(sess), "late_refreshes": res.late_refreshes,
            "superseded_fragment_runs": res.superseded_fragment_runs,
            "reconnects": sum(s["reconnects"] for s in sess),
            "rendered": {p: {"sessions": sum(1 for s in sess if s["page"] == p),
                             "marker_found": sum(1 for s in sess if s["page"] == p and s["marker_found"]),
                             "first_load_deltas_median": statistics.median([s["first_load_deltas"] for s in sess if s["page"] == p] or [0]),
                             "first_load_kb_median": round(statistics.median([s["first_load_bytes"] for s in sess if s["page"] == p] or [0]) / 1024, 1),
                             "deltas_per_refresh_median": statistics.median([d for s in sess if s["page"] == p for d in s["deltas_per_refresh"]] or [0]),
                             "kb_per_refresh_median": round(statistics.median([b for s in sess if s["page"] == p for b in s["bytes_per_refresh"]] or [0]) / 1024, 1),
                             "refreshes": sum(s["refreshes"] for s in sess if s["page"] == p)}
                         for p in sorted({s["page"] for s in sess})},
        },  # fmt: skip
        "resources": {"first_minute_mean": {k: mean(m[:minute], k) for k in keys},
                      "last_minute_mean": {k: mean(m[-minute:], k) for k in keys},
                      "max": {k: max((r[k] for r in m if r.get(k) is not None), default=None) for k in keys}},  # fmt: skip
        "api_status_at_end": {k: v for k, v in meta["api_status"].items() if k != "recent_refusals"},
        "api_recent_refusals": meta["api_status"].get("recent_refusals", [])[-5:],
        "drain": {"tasks_still_pending_after_drain": meta["pending_after_drain"],
                  "sessions_waiting_at_end": len(meta["stuck"]),
                  "waiting_at_end_by_page": dict(Counter(f"{x['page']} {x['waiting_for']}" for x in meta["stuck"])),
                  "longest_wait_at_end_s": max((x["waiting_s"] for x in meta["stuck"]), default=None)},  # fmt: skip
        "samples": res.samples,
        "sessions": [{k: v for k, v in s.items() if k not in ("deltas_per_refresh", "bytes_per_refresh")} for s in sess],
    }
    return out


def print_report(r: dict[str, Any]) -> None:
    print()
    print(f"{'kind':62}{'n':>8}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}{'max ms':>10}  errors")
    for k, v in r["kinds"].items():
        def f(x: Any) -> str:
            return "-" if x is None else f"{x:,.0f}"
        print(f"{k[:62]:62}{v['n']:>8}{f(v['p50_ms']):>10}{f(v['p95_ms']):>10}{f(v['p99_ms']):>10}{f(v['max_ms']):>10}  "
              f"{v['errors'] or 0}")  # fmt: skip
    p = r["positions"]
    print(f"\nfixes/s: target {p['target_fixes_per_s']}, sent {p['sent_fixes_per_s']}, accepted (200) {p['accepted_fixes_per_s']}, "
          f"rows stored {p['stored_rows_per_s']}; backlogged {p['backlogged_not_sent']}, rejected {p['rejected_by_status']}, "
          f"send lag p95 {p['send_lag_p95_ms']} ms, resent on a closed keep-alive {p['resent_on_closed_keepalive']}")  # fmt: skip
    print(f"console: {json.dumps(r['console'], ensure_ascii=False)}")
    for k in ("first_minute_mean", "last_minute_mean", "max"):
        print(f"{k:18} {json.dumps(r['resources'][k])}")
    print(f"API at end: {json.dumps(r['api_status_at_end'])}")
    print(f"end: {json.dumps(r['drain'])}")


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()  # noqa: S607


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--city-db", default="sqlite:////tmp/city/city.sqlite", help="the city demo (copied first when sqlite)")
    ap.add_argument("--no-copy", action="store_true", help="run on --city-db itself (it gains a user, tokens and positions)")
    ap.add_argument("--work-dir", help="where the copy and the logs go (default: a temporary folder, removed after)")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--warmup", type=float, default=30.0, help="seconds of load before measuring starts")
    ap.add_argument("--drain", type=float, default=30.0, help="seconds to let requests in flight finish")
    ap.add_argument("--rate", type=float, default=1000.0, help="fixes per second in total")
    ap.add_argument("--mode", choices=("batch", "osmand"), default="batch")
    ap.add_argument("--senders", type=int, default=100, help="gateways/phones sending at once")
    ap.add_argument("--batch", type=int, default=10, help="fixes per POST /api/positions")
    ap.add_argument("--max-inflight", type=int, default=2, help="requests one sender may have out")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds before a position request is an error")
    ap.add_argument("--api-workers", type=int, default=1)
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--mix", default="bigscreen:35,dispatch:10,map:5", help="page:weight,...")
    ap.add_argument("--refresh", type=int, default=5, help="seconds between a session's refreshes")
    ap.add_argument("--load-timeout", type=float, default=300.0, help="a first load this late is an error")
    ap.add_argument("--refresh-timeout", type=float, default=300.0, help="a refresh this late is an error (then reconnect)")
    ap.add_argument("--sample", type=float, default=5.0)
    ap.add_argument("--out", default="/tmp/load-report.json")
    args = ap.parse_args()

    env_info = {"uptime_start": uptime(), "cpus": os.cpu_count(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
    print(env_info["uptime_start"], flush=True)
    with contextlib.ExitStack() as stack:
        work = Path(args.work_dir) if args.work_dir else Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="load-")))
        work.mkdir(parents=True, exist_ok=True)
        db = prepare_db(args.city_db, work, not args.no_copy)
        t = time.monotonic()
        s = setup(db, args.sessions)
        print(f"set up: user {USER!r}, {args.sessions} session tokens, an API token, {len(s.devices):,} devices "
              f"({time.monotonic() - t:.0f} s)", flush=True)  # fmt: skip
        gc.collect()
        gc.freeze()  # the imports and set-up frames stay put: the collector scans only what the run allocates
        env = dict(os.environ, DATABASE_URL=db)
        api_port, console_port = free_port(), free_port()
        api = stack.enter_context(process(api_cmd(db, api_port, args.api_workers), f"http://{LOOPBACK}:{api_port}/api/health",
                                          work / "api.log", "the API", env))  # fmt: skip
        con = stack.enter_context(process(console_cmd(console_port), f"http://{LOOPBACK}:{console_port}/_stcore/health",
                                          work / "console.log", "the console", env))  # fmt: skip
        print(f"API pid {api.pid} on :{api_port}, console pid {con.pid} on :{console_port}; logs in {work}", flush=True)
        res, meta = asyncio.run(run_load(args, s, f"http://{LOOPBACK}:{api_port}", f"http://{LOOPBACK}:{console_port}",
                                         {"api": api.pid, "console": con.pid}, db))  # fmt: skip
        env_info["uptime_end"] = uptime()
        for name in ("api", "console"):
            log = (work / f"{name}.log").read_text(errors="replace").splitlines()
            env_info[f"{name}_log_tracebacks"] = sum("Traceback" in line for line in log)
            env_info[f"{name}_log_warnings"] = sum("WARNING" in line for line in log)
        out = report(args, res, meta, env_info)
    print_report(out)
    print(env_info["uptime_end"])
    Path(args.out).write_text(json.dumps(out, indent=2, ensure_ascii=False, default=str) + "\n")
    print(f"written {args.out}")


if __name__ == "__main__":
    main()
