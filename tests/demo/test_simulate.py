"""The patrol simulator: routes on the small demo city, the state model, and what goes over HTTP."""

from __future__ import annotations

import asyncio
import json
import math
from collections import defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import geopandas as gpd
import httpx
import numpy as np
import pandas as pd
import pytest
import shapely

from demo.roadnet import build_road_graph, path_from_predecessors, subgraph
from demo.simulate import (
    KNOTS_PER_MS,
    PatrolModel,
    Patrols,
    RunStats,
    abackfill,
    backfill,
    plan_patrols,
    run,
    simulate,
)
from geo.crs import metric_crs, to_metric
from store import open_store
from store.base import Store
from tests.fixtures.demo_db import build_small_demo

BASE = "http://sim.test"
# 09:00 local (UTC+8): everybody is on patrol, lunch is hours away
T0 = datetime(2026, 11, 20, 1, 0, tzinfo=UTC).timestamp()
OSMAND_KEYS = ["id", "timestamp", "lat", "lon", "speed", "bearing", "altitude", "accuracy", "batt", "charge"]
BATCH_KEYS = {
    "device_id",
    "timestamp",
    "lat",
    "lon",
    "speed",
    "bearing",
    "altitude",
    "accuracy",
    "battery",
    "charging",
}


@pytest.fixture(scope="module")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    url = build_small_demo(tmp_path_factory.mktemp("simulate") / "demo.db")
    s = open_store(url)
    try:
        yield s
    finally:
        s.close()


@pytest.fixture(scope="module")
def patrols(demo_store: Store) -> Patrols:
    return plan_patrols(demo_store, seed=3)


@dataclass
class City:
    crs: Any
    staff: pd.DataFrame
    areas: dict[int, Any]  # staff id -> grid union (or unit) in metres
    has_grid: dict[int, bool]
    roads: Any  # union of road lines, metres
    buildings: gpd.GeoDataFrame


@pytest.fixture(scope="module")
def city(demo_store: Store) -> City:
    grids = demo_store.read("grids")
    crs = metric_crs(grids)
    grids_m = to_metric(grids, crs=crs).set_index("code")
    units_m = to_metric(demo_store.read("admin_units"), crs=crs).set_index("code")
    sg = demo_store.read("staff_grids")
    staff = demo_store.read("staff")
    areas: dict[int, Any] = {}
    has_grid: dict[int, bool] = {}
    for row in staff.itertuples():
        codes = sg.loc[sg["staff_id"] == row.id, "grid_code"].tolist()
        has_grid[int(row.id)] = bool(codes)
        areas[int(row.id)] = (
            shapely.union_all(grids_m.loc[codes].geometry.to_numpy())
            if codes
            else units_m.loc[row.unit_code].geometry
        )
    roads = shapely.union_all(to_metric(demo_store.read("roads"), crs=crs).geometry.to_numpy())
    buildings = to_metric(demo_store.read("buildings"), crs=crs)
    return City(crs, staff, areas, has_grid, roads, buildings)


def _lines_m(patrols: Patrols, crs: Any) -> gpd.GeoDataFrame:
    return patrols.route_frame().to_crs(crs)


def _segments(line: Any) -> np.ndarray:
    """A loop's segments one by one (overlay operations would merge a path walked twice)."""
    xy = np.asarray(line.coords)
    seg = np.stack([xy[:-1], xy[1:]], axis=1)
    seg = seg[np.hypot(*(seg[:, 1] - seg[:, 0]).T) > 0]
    return np.asarray(shapely.linestrings(seg))


# --------------------------------------------------------------------------------------------
# the road graph


def test_road_graph_nodes_crossings_and_joins_ends_on_lines() -> None:
    lines = [
        shapely.LineString([(0, 0), (100, 0)]),
        shapely.LineString([(50, -50), (50, 50)]),  # crosses the first without a shared vertex
        shapely.LineString([(80, 0.5), (80, 60)]),  # stops 0.5 m short of the first (a T)
        shapely.LineString([(300, 0), (400, 0)]),  # apart
    ]
    g = build_road_graph(lines, max_edge_m=40.0)
    assert g.length.max() <= 40.0 + 1e-9
    assert g.total_length() == pytest.approx(100 + 100 + 59.5 + 100, abs=1.0)
    sub = subgraph(g, np.arange(g.n_edges))
    from scipy.sparse import csgraph

    n, labels = csgraph.connected_components(sub.matrix, directed=False)
    assert n == 2
    far = int(np.argmin(np.hypot(*(sub.xy - [80, 60]).T)))
    west = int(np.argmin(np.hypot(*(sub.xy - [0, 0]).T)))
    dist, pred = csgraph.dijkstra(sub.matrix, indices=west, return_predecessors=True)
    assert dist[far] == pytest.approx(80 + 59.5, abs=1.0)
    path = path_from_predecessors(pred, west, far)
    assert path[0] == west and path[-1] == far


# --------------------------------------------------------------------------------------------
# planning


def test_plans_every_on_duty_worker_with_its_device(demo_store: Store, patrols: Patrols) -> None:
    staff = demo_store.read("staff")
    on = staff[staff["on_duty"]]
    assert sorted(patrols.staff_id.tolist()) == sorted(on["id"].tolist())
    devices = dict(zip(staff["id"], staff["device_id"], strict=True))
    assert [devices[s] for s in patrols.staff_id] == patrols.device_id.tolist()
    assert set(patrols.mode) <= {"road", "buildings", "area", "still"}
    assert (patrols.mode == "road").mean() > 0.8


def test_selection_options(demo_store: Store, patrols: Patrols) -> None:
    every = plan_patrols(demo_store, seed=3, on_duty_only=False)
    assert len(every) == demo_store.count("staff")
    few = plan_patrols(demo_store, seed=3, limit=5)
    assert few.staff_id.tolist() == sorted(patrols.staff_id.tolist())[:5]
    some = plan_patrols(demo_store, seed=3, staff_ids=[int(patrols.staff_id[3]), 999_999])
    assert some.staff_id.tolist() == [int(patrols.staff_id[3])]


def test_loops_are_closed(patrols: Patrols) -> None:
    for i in range(len(patrols)):
        lon, lat, tau = patrols.route(i)
        assert len(lon) >= 2
        assert lon[0] == pytest.approx(lon[-1], abs=1e-9) and lat[0] == pytest.approx(lat[-1], abs=1e-9)
        assert tau[0] == 0 and np.all(np.diff(tau) > 0)
        assert patrols.period[i] == pytest.approx(tau[-1])


def test_routes_stay_within_100m_of_their_grids(patrols: Patrols, city: City) -> None:
    lines = _lines_m(patrols, city.crs)
    for row in lines.itertuples():
        area = city.areas[int(row.staff_id)].buffer(100.0)
        outside = shapely.length(shapely.difference(_segments(row.geometry), area)).sum()
        assert outside < 1.0, (row.staff_id, row.mode, outside)


def test_routes_run_mostly_on_roads(patrols: Patrols, city: City) -> None:
    """Grids with a road through or along them (within 20 m) are patrolled on the roads: at least
    80 % of the loop within 15 m of a road line. So is every loop planned in road mode."""
    lines = _lines_m(patrols, city.crs)
    near_road = city.roads.buffer(15.0)
    with_roads = 0
    for row in lines.itertuples():
        sid = int(row.staff_id)
        if city.has_grid[sid] and city.roads.distance(city.areas[sid]) <= 20.0:
            assert row.mode == "road", sid
            with_roads += 1
        if row.mode == "road":
            segs = _segments(row.geometry)
            share = shapely.length(shapely.intersection(segs, near_road)).sum() / shapely.length(segs).sum()
            assert share >= 0.8, (sid, share)
    assert with_roads >= 20


def test_visits_are_buildings_of_the_workers_area(patrols: Patrols, city: City) -> None:
    stops = patrols.stops
    assert len(stops) >= len(patrols)  # 2-5 visits per loop for most
    b = city.buildings.set_index("id")
    pts = gpd.GeoSeries(gpd.points_from_xy(stops["lon"], stops["lat"]), crs="EPSG:4326").to_crs(city.crs)
    for (sid, bid, dur), p in zip(
        zip(stops["staff_id"], stops["building_id"], stops["t_end"] - stops["t_start"], strict=True),
        pts,
        strict=True,
    ):
        assert 180.0 <= dur <= 600.0
        assert b.loc[bid].geometry.buffer(0.5).contains(p)
        assert city.areas[int(sid)].buffer(100.0).contains(p)


def test_same_seed_same_patrols_other_seed_others(demo_store: Store, patrols: Patrols) -> None:
    again = plan_patrols(demo_store, seed=3)
    for name in ("staff_id", "start", "lon", "lat", "tau"):
        np.testing.assert_array_equal(getattr(again, name), getattr(patrols, name))
    for t in (T0, T0 + 12_345.0):
        pd.testing.assert_frame_equal(again.positions_at(t), patrols.positions_at(t))
    other = plan_patrols(demo_store, seed=4)
    assert not np.array_equal(other.tau, patrols.tau)
    # a worker's loop and fixes do not depend on who else is planned
    k = 7
    alone = plan_patrols(demo_store, seed=3, staff_ids=[int(patrols.staff_id[k])])
    np.testing.assert_allclose(alone.route(0)[2], patrols.route(k)[2])
    a = alone.positions_at(T0 + 99.0).iloc[0]
    b = patrols.positions_at(T0 + 99.0).iloc[k]
    assert (a["lon"], a["lat"], a["battery"]) == pytest.approx((b["lon"], b["lat"], b["battery"]), abs=1e-5)


# --------------------------------------------------------------------------------------------
# the state model


def _day(patrols: Patrols, start: float, hours: float, step: float = 30.0) -> pd.DataFrame:
    frames = [patrols.positions_at(t) for t in np.arange(start, start + hours * 3600.0, step)]
    return pd.concat(frames, ignore_index=True)


def test_positions_frame(patrols: Patrols) -> None:
    df = patrols.positions_at(T0)
    assert list(df.columns) == [
        "device_id", "staff_id", "ts", "lon", "lat", "speed", "bearing", "altitude",
        "accuracy", "battery", "charging", "online", "state",
    ]  # fmt: skip
    assert len(df) == len(patrols)
    assert df["accuracy"].between(3.0, 25.0).all()
    assert df["battery"].between(15.0, 100.0).all()
    assert df["bearing"].between(0.0, 360.0).all()
    per_worker = patrols.positions_at(T0 + np.arange(len(patrols), dtype=float))
    assert per_worker["ts"].tolist() == (T0 + np.arange(len(patrols))).tolist()


def test_speeds_are_plausible(patrols: Patrols) -> None:
    df = _day(patrols, T0, 4.0)
    vehicle = dict(zip(patrols.staff_id, patrols.vehicle, strict=True))
    df["vehicle"] = df["staff_id"].map(vehicle)
    moving = df[df["state"] == "patrol"]
    walk = moving.loc[moving["vehicle"] == "walk", "speed"]
    ride = moving.loc[moving["vehicle"] == "ebike", "speed"]
    assert walk.between(0.5, 2.2).all() and 1.0 < walk.median() < 1.45
    assert ride.between(0.5, 7.0).all()  # e-bike riders walk from the road to a building
    if len(ride):
        assert ride.median() > 2.5
    assert (df.loc[df["state"] != "patrol", "speed"] == 0).all()
    # consecutive fixes 30 s apart never jump further than the speed (+ GPS noise) allows
    df = df.sort_values(["staff_id", "ts"])
    lat = np.radians(df["lat"].to_numpy())
    dx = np.diff(df["lon"].to_numpy()) * 111_320 * np.cos(lat[1:])
    dy = np.diff(df["lat"].to_numpy()) * 111_320
    same = np.diff(df["staff_id"].to_numpy()) == 0
    jump = np.hypot(dx, dy)[same]
    acc = (df["accuracy"].to_numpy()[1:] + df["accuracy"].to_numpy()[:-1])[same]
    assert np.all(jump <= 5.5 * 30 + 3 * acc)


def test_dwelling_at_a_building_gives_stationary_fixes(patrols: Patrols) -> None:
    df = _day(patrols, T0, 3.0)
    visits = df[df["state"] == "visit"]
    assert len(visits) > 100
    assert (visits["speed"] == 0).all() and (visits["bearing"] == 0).all()
    stops = patrols.stops
    for sid, fixes in visits.groupby("staff_id"):
        mine = stops[stops["staff_id"] == sid]
        d = np.hypot(
            (fixes["lon"].to_numpy()[:, None] - mine["lon"].to_numpy()[None, :])
            * 111_320
            * math.cos(math.radians(42.3)),
            (fixes["lat"].to_numpy()[:, None] - mine["lat"].to_numpy()[None, :]) * 111_320,
        ).min(axis=1)
        assert np.all(d <= 4.0 * fixes["accuracy"].to_numpy()), sid  # 6 sigma
    # the true position does not move during a dwell: same loop time → same route point
    i = int(np.flatnonzero(patrols.staff_id == stops["staff_id"].iloc[0])[0])
    s, _ = patrols.loop_time(T0, np.array([i]))
    t_mid = float(stops["t_start"].iloc[0] + stops["t_end"].iloc[0]) / 2
    t_abs = T0 + ((t_mid - s[0]) % patrols.period[i])
    a = patrols.fixes([t_abs - 60, t_abs + 60], np.array([i, i]))
    assert list(a["state"]) == [1, 1] and list(a["speed"]) == [0, 0]


def test_lunch_break_stands_still_and_resumes(patrols: Patrols) -> None:
    m = patrols.model
    midnight = datetime(2026, 11, 20, tzinfo=UTC).timestamp() - m.utc_offset_h * 3600  # local midnight
    ts = midnight + np.arange(11.0 * 3600, 14.5 * 3600, 60.0)
    for i in range(len(patrols)):
        s, brk = patrols.loop_time(ts, np.full(ts.size, i))
        assert 29 <= brk.sum() <= 61  # 30-60 min
        assert ts[brk][0] - midnight >= 11.5 * 3600 - 60 and ts[brk][0] - midnight <= 12.5 * 3600
        assert np.allclose(s[brk], s[brk][0])  # frozen during the break
        after = int(np.flatnonzero(brk)[-1]) + 1
        back = midnight + patrols.lunch_start[i] + patrols.lunch_len[i]
        resumed = (s[after] - s[brk][0]) % patrols.period[i]
        assert resumed == pytest.approx((ts[after] - back) % patrols.period[i], abs=1e-6)
        fx = patrols.fixes(ts[brk], np.full(int(brk.sum()), i))
        assert (fx["state"] == 2).all() and (fx["speed"] == 0).all()


def test_battery_and_offline_share(patrols: Patrols) -> None:
    df = _day(patrols, T0, 24.0, step=300.0)
    for _, g in df.groupby("staff_id"):
        b = g["battery"].to_numpy()
        d = np.diff(b)
        charging = g["charging"].to_numpy()[1:]
        assert np.all(d[~charging & ~g["charging"].to_numpy()[:-1]] <= 0)
    assert df["charging"].any()
    offline = df.groupby("staff_id")["online"].agg(lambda s: (~s).any())
    assert 0 < offline.mean() < 0.3  # ~8 % of phones drop out at times


# --------------------------------------------------------------------------------------------
# sending


class FakeTime:
    """A clock that only moves when the run sleeps: no wall-clock time in these tests."""

    def __init__(self, t0: float) -> None:
        self.now = t0
        self.sleeps = 0

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


@dataclass
class Server:
    """A MockTransport handler that records every request and decides its answer."""

    decide: Callable[[str, int, int], int] = lambda device, ts, attempt: 200  # status per position
    log: list[dict[str, Any]] = field(default_factory=list)
    attempts: dict[tuple[str, int], int] = field(default_factory=lambda: defaultdict(int))
    history: dict[tuple[str, int], list[int]] = field(default_factory=lambda: defaultdict(list))
    committed: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))

    def __call__(self, request: httpx.Request) -> httpx.Response:
        entry: dict[str, Any] = {"method": request.method, "path": request.url.path,
                                 "authorization": request.headers.get("authorization")}  # fmt: skip
        if request.url.path == "/osmand":
            items = httpx.QueryParams(request.url.query).multi_items()
            entry.update(query=items, body=request.content)
            q = dict(items)
            key = (q["id"], int(q["timestamp"]))
            self.attempts[key] += 1
            status = self.decide(*key, self.attempts[key])
            entry["status"] = status
            self.history[key].append(status)
            self.log.append(entry)
            if status == 200:
                self.committed[key[0]].append(key[1])
                return httpx.Response(200)
            return httpx.Response(status, json={"detail": f"status {status}"})
        assert request.url.path == "/api/positions"
        positions = json.loads(request.content)["positions"]
        entry.update(positions=positions)
        statuses = []
        for p in positions:
            key = (p["device_id"], int(p["timestamp"]))
            self.attempts[key] += 1
            statuses.append(self.decide(*key, self.attempts[key]))
        entry["status"] = 503 if any(s >= 500 for s in statuses) else 200
        self.log.append(entry)
        for p, s in zip(positions, statuses, strict=True):
            self.history[(p["device_id"], int(p["timestamp"]))].append(503 if entry["status"] == 503 else s)
        if entry["status"] == 503:
            return httpx.Response(503, json={"detail": "try later"})
        rejected = [{"index": i, "detail": "bad"} for i, s in enumerate(statuses) if s != 200]
        for p, s in zip(positions, statuses, strict=True):
            if s == 200:
                self.committed[p["device_id"]].append(int(p["timestamp"]))
        return httpx.Response(
            200, json={"accepted": len(positions) - len(rejected), "duplicates": 0, "rejected": rejected}
        )

    def client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.MockTransport(self))


def _run(patrols: Patrols, server: Server, hours: float, **kw: Any) -> RunStats:
    fake = FakeTime(1_000.0)

    async def go() -> RunStats:
        async with server.client() as client:
            return await run(
                BASE + "/", patrols, duration_s=hours * 3600, client=client, clock=fake.clock,
                sleep=fake.sleep, start=T0, concurrency=8, **kw,
            )  # fmt: skip

    return asyncio.run(go())


def _expected(patrols: Patrols, hours: float, interval: float = 30.0) -> dict[str, list[int]]:
    off = patrols.send_offsets(interval)
    n_ticks = int(hours * 3600 / interval)
    return {
        str(d): [int(T0 + k * interval + off[i]) for k in range(n_ticks)]
        for i, d in enumerate(patrols.device_id)
    }


@pytest.fixture(scope="module")
def steady(demo_store: Store) -> Patrols:
    """A few workers whose phones never drop out."""
    return plan_patrols(demo_store, seed=3, limit=12, model=PatrolModel(offline_share=0.0))


def test_run_sends_osmand_requests_as_traccar_client(steady: Patrols) -> None:
    server = Server()
    stats = _run(steady, server, 0.5)
    expected = _expected(steady, 0.5)
    assert {e["path"] for e in server.log} == {"/osmand"}
    assert stats.osmand_requests == len(server.log) == sum(len(v) for v in expected.values())
    assert (
        stats.acked == stats.sent == stats.positions and stats.pending == stats.rejected == stats.failed == 0
    )
    assert stats.ticks == 60
    for e in server.log:
        assert e["method"] == "POST" and e["body"] == b""
        assert [k for k, _ in e["query"]] == OSMAND_KEYS
        q = dict(e["query"])
        assert q["charge"] in ("true", "false")
        assert q["batt"].isdigit()
        int(q["timestamp"])
    assert dict(server.committed) == expected  # every fix, in order, per device
    # the values are the model's, speed in knots
    frames = {}
    for e in server.log[:: max(1, len(server.log) // 200)]:
        q = dict(e["query"])
        i = int(np.flatnonzero(steady.device_id == q["id"])[0])
        ts = int(q["timestamp"])
        if ts not in frames:
            frames[ts] = steady.positions_at(float(ts))
        row = frames[ts].iloc[i]
        assert float(q["speed"]) == pytest.approx(row["speed"] * KNOTS_PER_MS, abs=0.006)
        assert float(q["lat"]) == pytest.approx(row["lat"], abs=1e-7)
        assert float(q["lon"]) == pytest.approx(row["lon"], abs=1e-7)
        assert float(q["bearing"]) == pytest.approx(row["bearing"], abs=0.051)
        assert float(q["accuracy"]) == pytest.approx(row["accuracy"], abs=0.051)
        assert int(q["batt"]) == round(row["battery"])
        assert q["charge"] == ("true" if row["charging"] else "false")
    assert KNOTS_PER_MS == pytest.approx(1.943844, abs=1e-6)


def test_requests_spread_over_the_interval(steady: Patrols) -> None:
    server = Server()
    fake = FakeTime(0.0)
    sent_at: list[float] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent_at.append(fake.now)
        return server(request)

    async def go() -> None:
        async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
            await run(
                BASE, steady, duration_s=30, client=client, clock=fake.clock, sleep=fake.sleep, start=T0
            )

    asyncio.run(go())
    assert len(sent_at) == len(steady)
    assert max(sent_at) - min(sent_at) > 10  # not all at the same instant
    ts = [dict(e["query"])["timestamp"] for e in server.log]
    assert len(set(ts)) > 3


def test_5xx_is_retried_in_order_and_4xx_rejected_once(steady: Patrols) -> None:
    outage_device = str(steady.device_id[2])

    def decide(device: str, ts: int, attempt: int) -> int:
        h = (int(device) * 31 + ts) % 23
        if h == 0:
            return 400  # always refused
        if h in (1, 2, 3) and attempt == 1:
            return 503  # fails once
        if device == outage_device and T0 + 600 <= ts < T0 + 660 and attempt <= 8:
            return 502  # a longer outage: later fixes pile up behind these
        return 200

    server = Server(decide=decide)
    stats = _run(steady, server, 1.0)
    expected = _expected(steady, 1.0)
    refused = {(d, t) for d, ts in expected.items() for t in ts if decide(d, t, 1) == 400}
    assert refused
    for d, ts in expected.items():
        want = [t for t in ts if (d, t) not in refused]
        assert server.committed[d] == want, d  # nothing lost, nothing reordered
    for key in refused:
        assert server.history[key][-1] == 400 and server.history[key].count(400) == 1  # never retried
    assert stats.rejected == len(refused)
    failures = sum(1 for h in server.history.values() for s in h if s >= 500)
    assert stats.failed == failures > 0 and stats.retried == stats.failed
    assert stats.acked + stats.rejected == stats.positions and stats.pending == 0
    assert stats.sent == stats.acked + stats.rejected + stats.failed
    batches = [e for e in server.log if e["path"] == "/api/positions"]
    assert batches and {p["device_id"] for e in batches for p in e["positions"]} == {outage_device}


def test_offline_phones_buffer_and_upload_in_order_when_back(demo_store: Store) -> None:
    model = PatrolModel(offline_share=0.5, offline_every_h=(0.5, 1.0), offline_min=(5.0, 15.0))
    patrols = plan_patrols(demo_store, seed=3, limit=16, model=model)
    server = Server()
    stats = _run(patrols, server, 2.0)
    expected = _expected(patrols, 2.0)
    offline: set[tuple[str, int]] = set()
    for i, d in enumerate(patrols.device_id):
        ts = np.asarray(expected[str(d)], dtype=float)
        fx = patrols.fixes(ts, np.full(ts.size, i))
        offline |= {(str(d), int(t)) for t, on in zip(ts, fx["online"], strict=True) if not on}
    assert offline and stats.buffered == len(offline)
    via_osmand = {
        (dict(e["query"])["id"], int(dict(e["query"])["timestamp"]))
        for e in server.log
        if e["path"] == "/osmand"
    }
    via_batch = [
        (p["device_id"], int(p["timestamp"]))
        for e in server.log
        if e["path"] == "/api/positions"
        for p in e["positions"]
    ]
    assert not offline & via_osmand
    # buffered fixes of phones that came back went through the batch endpoint; the fixes of a
    # phone still offline at the end (its last run of offline fixes) are still buffered
    waiting: set[tuple[str, int]] = set()
    for d, ts in expected.items():
        for t in reversed(ts):
            if (d, t) not in offline:
                break
            waiting.add((d, t))
    assert stats.pending == len(waiting)
    assert set(via_batch) == offline - waiting
    for e in server.log:
        if e["path"] == "/api/positions":
            assert len(e["positions"]) <= 1000
            assert all(set(p) == BATCH_KEYS for p in e["positions"])
            assert all(isinstance(p["charging"], bool) for p in e["positions"])
    for d, ts in expected.items():
        got = server.committed[d]
        assert got == sorted(got)  # in order
        assert got == [t for t in ts if (d, t) not in waiting]
    # a batch upload happens once the phone is online again, before its next live fix
    for k, e in enumerate(server.log):
        if e["path"] != "/api/positions":
            continue
        d = e["positions"][0]["device_id"]
        nxt = [x for x in server.log[k + 1 :] if x["path"] == "/osmand" and dict(x["query"])["id"] == d]
        if nxt:
            assert int(dict(nxt[0]["query"])["timestamp"]) > max(int(p["timestamp"]) for p in e["positions"])


def test_simulate_is_the_synchronous_run(steady: Patrols) -> None:
    server = Server()
    ticks: list[int] = []
    fake = FakeTime(0.0)
    stats = simulate(
        BASE, steady, duration_s=90, client=server.client(), clock=fake.clock, start=T0,
        speedup=1e9, on_tick=lambda s: ticks.append(s.ticks),
    )  # fmt: skip
    assert ticks == [1, 2, 3]
    assert stats.acked == 3 * len(steady) == len(server.log)


def test_backfill_uploads_the_period_in_chunks(steady: Patrols) -> None:
    server = Server()
    start = datetime.fromtimestamp(T0, UTC)
    end = start + timedelta(hours=2, seconds=7)
    stats = backfill(BASE, steady, start=start, end=end, interval_s=30, client=server.client(), concurrency=2)
    assert {e["path"] for e in server.log} == {"/api/positions"}
    assert all(len(e["positions"]) <= 1000 for e in server.log)
    assert max(len(e["positions"]) for e in server.log) == 1000
    for d in steady.device_id:
        ts = np.asarray(server.committed[str(d)])
        assert np.all(np.diff(ts) == 30)
        assert T0 <= ts[0] < T0 + 30 and end.timestamp() - 30 <= ts[-1] < end.timestamp()
    assert stats.acked == stats.positions == sum(len(v) for v in server.committed.values())
    # the same fixes as the live model
    p = server.log[0]["positions"][5]
    i = int(np.flatnonzero(steady.device_id == p["device_id"])[0])
    row = steady.positions_at(float(p["timestamp"])).iloc[i]
    assert p["lat"] == pytest.approx(row["lat"], abs=1e-7) and p["speed"] == pytest.approx(
        row["speed"], abs=0.006
    )


def test_backfill_retries_server_errors(steady: Patrols) -> None:
    server = Server(decide=lambda d, ts, attempt: 503 if attempt == 1 and ts % 7 == 0 else 200)

    async def no_wait(_: float) -> None:
        return None

    async def go() -> RunStats:
        async with server.client() as client:
            return await abackfill(BASE, steady, start=T0, end=T0 + 1800, client=client, sleep=no_wait)

    stats = asyncio.run(go())
    assert stats.failed > 0 and stats.lost == 0
    assert stats.acked == stats.positions == len(steady) * 60
    for d in steady.device_id:
        ts = server.committed[str(d)]
        assert ts == sorted(set(ts)) and len(ts) == 60


def test_the_token_goes_as_bearer_on_both_endpoints(steady: Patrols, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRIDCONSOLE_API_TOKEN", raising=False)
    server = Server()
    _run(steady, server, 0.05, token="tok-123")
    start = datetime.fromtimestamp(T0, UTC)
    backfill(BASE, steady, start=start, end=start + timedelta(minutes=30), client=server.client(), token="tok-123")
    assert {e["path"] for e in server.log} == {"/osmand", "/api/positions"}
    assert {e["authorization"] for e in server.log} == {"Bearer tok-123"}
    # the token never goes into the URL (access logs)
    assert all("tok-123" not in str(e.get("query", "")) for e in server.log)
    # without one: no header; with env GRIDCONSOLE_API_TOKEN: that one
    bare = Server()
    _run(steady, bare, 0.02)
    assert {e["authorization"] for e in bare.log} == {None}
    monkeypatch.setenv("GRIDCONSOLE_API_TOKEN", "from-env")
    env = Server()
    _run(steady, env, 0.02)
    assert {e["authorization"] for e in env.log} == {"Bearer from-env"}
