"""Position ingest over real HTTP (uvicorn on a loopback port, httpx as the phone), on both stores:
Traccar Client's requests as it sends them, batches, every kind of bad input, duplicates, jumps."""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import httpx
import pandas as pd
import pytest

from api.app import MAX_BATCH, create_app
from demo import SIZES, generate, load_demo
from tests.fixtures.api import api_token, bearer, serve_in_thread

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def city():  # type: ignore[no-untyped-def]
    return generate(SIZES["small"], seed=11, now=NOW)


@pytest.fixture
def api(store: Any, city: Any) -> Iterator[tuple[str, Any]]:
    load_demo(store, city)
    with serve_in_thread(create_app(store)) as base:
        yield base, store


@pytest.fixture
def relay(api: tuple[str, Any]) -> dict[str, str]:
    """The headers of a gateway's token (an administrator's: positions.relay for the whole city)."""
    return bearer(api_token(api[1]))


def _worker(store: Any) -> tuple[str, int, Any]:
    """(device id, staff id, a point inside one of the worker's grids)."""
    links = store.read("staff_grids")
    staff = store.read("staff", where={"id": links["staff_id"].tolist()})
    row = staff.sort_values("id").iloc[0]
    code = links[links["staff_id"] == row["id"]]["grid_code"].iloc[0]
    grid = store.read("grids", where={"code": code})
    return str(row["device_id"]), int(row["id"]), grid.geometry.iloc[0].representative_point()


def _now() -> int:
    return int(time.time())


def test_traccar_client_requests_are_committed(relay: dict[str, str], api: tuple[str, Any]) -> None:
    base, store = api
    device, sid, p = _worker(store)
    t0 = _now() - 600
    q = {
        "id": device,
        "timestamp": str(t0),
        "lat": f"{p.y:.6f}",
        "lon": f"{p.x:.6f}",
        "speed": "1.943844",  # knots = 1 m/s
        "bearing": "90.5",
        "altitude": "61.0",
        "accuracy": "8.0",
        "batt": "76.0",
        "charge": "false",
    }
    with httpx.Client(base_url=base, timeout=10, headers=relay) as c:
        assert c.get("/osmand", params=q).status_code == 200  # Traccar Client (old): GET
        r = c.post("/osmand", params={**q, "timestamp": str(t0 + 30)})  # ... and POST, empty body
        assert r.status_code == 200 and r.json() == {"status": "accepted"}
        r = c.post("/osmand", data={**q, "deviceid": device, "id": "", "timestamp": str(t0 + 60)})  # form
        assert r.status_code == 200
        body = {  # Traccar Client (new): JSON
            "device_id": device,
            "location": {
                "timestamp": pd.Timestamp(t0 + 90, unit="s", tz="UTC").isoformat().replace("+00:00", "Z"),
                "coords": {"latitude": p.y, "longitude": p.x, "speed": 1.25, "heading": 10, "altitude": 60, "accuracy": 5},
                "battery": {"level": 0.75, "is_charging": True},
                "is_moving": True,
                "odometer": 10.0,
            },
        }
        assert c.post("/osmand", json=body).status_code == 200
    got = store.read("positions", where={"staff_id": sid}, order_by=["ts"])
    got = got[got["ts"] >= pd.Timestamp(t0, unit="s", tz="UTC")]
    assert len(got) == 4
    first = got.iloc[0]
    assert math.isclose(first["speed"], 1.0, rel_tol=1e-5) and first["bearing"] == 90.5 and first["battery"] == 76.0
    assert not first["charging"] and not first["jump"]
    assert first.geometry.distance(p) < 1e-6
    assert got["grid_code"].notna().all()
    assert got["received_at"].notna().all()
    last = got.iloc[-1]
    assert last["speed"] == 1.25 and last["battery"] == 75.0 and last["charging"]
    latest = store.read("latest_positions", where={"staff_id": sid}).iloc[0]
    assert latest["ts"] == pd.Timestamp(t0 + 90, unit="s", tz="UTC")
    assert latest["grid_code"] == got["grid_code"].iloc[-1]
    today = pd.Timestamp(t0, unit="s", tz="UTC").tz_convert("Asia/Shanghai").strftime("%Y-%m-%d")
    assert store.count("grid_presence", where={"staff_id": sid, "day": today}) >= 1


def test_duplicates_are_acknowledged_once_stored(relay: dict[str, str], api: tuple[str, Any]) -> None:
    base, store = api
    device, sid, p = _worker(store)
    q = {"id": device, "timestamp": str(_now() - 60), "lat": p.y, "lon": p.x}
    before = store.count("positions")
    with httpx.Client(base_url=base, timeout=10, headers=relay) as c:
        assert c.get("/osmand", params=q).json() == {"status": "accepted"}
        r = c.get("/osmand", params=q)
        assert r.status_code == 200 and r.json() == {"status": "duplicate"}
    assert store.count("positions") == before + 1


def test_batch_of_buffered_positions(relay: dict[str, str], api: tuple[str, Any]) -> None:
    base, store = api
    device, sid, p = _worker(store)
    t0 = _now() - 3600
    items: list[dict[str, Any]] = [
        {"device_id": device, "timestamp": t0 + 30 * i, "lat": p.y + i * 1e-5, "lon": p.x, "speed": 1.1, "battery": 50}
        for i in range(5)
    ]
    items.insert(2, {"device_id": device, "timestamp": t0, "lat": "NaN", "lon": p.x})
    with httpx.Client(base_url=base, timeout=10, headers=relay) as c:
        r = c.post("/api/positions", json={"positions": items})
        assert r.status_code == 200
        out = r.json()
        assert out["accepted"] == 5 and out["duplicates"] == 0
        assert [x["index"] for x in out["rejected"]] == [2] and out["rejected"][0]["status"] == 422
        again = c.post("/api/positions", json={"positions": items}).json()
        assert again["accepted"] == 0 and again["duplicates"] == 5
    assert store.count("positions", where={"staff_id": sid}) >= 5


def _osmand(device: str, p: Any, **over: Any) -> dict[str, Any]:
    q: dict[str, Any] = {"id": device, "timestamp": str(_now() - 5), "lat": f"{p.y:.6f}", "lon": f"{p.x:.6f}"}
    q.update(over)
    return {k: v for k, v in q.items() if v is not None}


BAD_QUERIES = {
    "missing device id": ({"id": None}, 400, "device id"),
    "unknown device": ({"id": "869999999999"}, 403, "not bound"),
    "hostile device id": ({"id": "<script>alert(1)</script>"}, 403, "not bound"),
    "missing lat": ({"lat": None}, 400, "lat"),
    "lat not a number": ({"lat": "forty-two"}, 400, "number"),
    "lat NaN": ({"lat": "NaN"}, 422, "finite"),
    "lon infinite": ({"lon": "inf"}, 422, "finite"),
    "lat out of range": ({"lat": "95.0", "lon": "200"}, 422, "out of range"),
    "lat and lon swapped": ({"swap": True}, 422, "swapped"),
    "far outside the region": ({"lat": "39.9", "lon": "116.4"}, 422, "outside"),
    "null island": ({"lat": "0", "lon": "0"}, 422, "0, 0"),
    "missing timestamp": ({"timestamp": None}, 400, "timestamp"),
    "bad timestamp": ({"timestamp": "yesterday-ish"}, 400, "timestamp"),
    "timestamp far in the future": ({"future": True}, 422, "future"),
    "timestamp too old": ({"timestamp": "946684800"}, 422, "older"),
    "device id too long": ({"id": "8" * 65}, 400, "64"),
}


@pytest.mark.parametrize("case", list(BAD_QUERIES), ids=list(BAD_QUERIES))
def test_bad_single_positions_are_refused_and_the_service_stays_up(relay: dict[str, str], api: tuple[str, Any], case: str) -> None:
    base, store = api
    device, _, p = _worker(store)
    over, status, words = BAD_QUERIES[case]
    over = dict(over)
    if over.pop("swap", False):
        over.update(lat=f"{p.x:.6f}", lon=f"{p.y:.6f}")
    if over.pop("future", False):
        over["timestamp"] = str(_now() + 3 * 3600)
    before = store.count("positions")
    with httpx.Client(base_url=base, timeout=10, headers=relay) as c:
        r = c.get("/osmand", params=_osmand(device, p, **over))
        assert r.status_code == status, r.text
        assert words in r.json()["detail"]
        assert c.get("/api/health").json()["status"] == "ok"
        status_page = c.get("/api/status").json()
        assert status_page["refused_by_status"][str(status)] >= 1
        assert status_page["recent_refusals"][-1]["status"] == status
        # and the next good fix still goes in
        assert c.get("/osmand", params=_osmand(device, p, timestamp=str(_now() - 1))).status_code == 200
    assert store.count("positions") == before + 1


def test_malformed_and_oversized_bodies(relay: dict[str, str], api: tuple[str, Any]) -> None:
    base, store = api
    device, _, p = _worker(store)
    before = store.count("positions")
    headers = {"content-type": "application/json"}
    with httpx.Client(base_url=base, timeout=10, headers=relay) as c:
        for path in ("/osmand", "/api/positions"):
            r = c.post(path, content=b'{"device_id": "x", "location": {', headers=headers)
            assert r.status_code == 400 and "JSON" in r.json()["detail"]
        assert c.post("/api/positions", json={"positions": "all of them"}).status_code == 400
        assert c.post("/api/positions", json=[1, 2]).status_code == 400
        assert c.post("/osmand", json={"device_id": device}).status_code == 400  # no location
        r = c.post("/osmand", json={"device_id": device, "location": {"coords": {"latitude": p.y}}})
        assert r.status_code == 400
        big = {"positions": [_osmand(device, p)] * (MAX_BATCH + 1)}
        assert c.post("/api/positions", json=big).status_code == 413
        huge = b'{"positions": [' + b" " * (2 * 1024 * 1024) + b"]}"
        r = c.post("/api/positions", content=huge, headers=headers)
        assert r.status_code == 413 and "larger" in r.json()["detail"]

        def chunks() -> Iterator[bytes]:  # no Content-Length: counted while streaming
            yield b'{"device_id": "'
            for _ in range(64):
                yield b"x" * 1024
            yield b'"}'

        assert c.post("/osmand", content=chunks(), headers=headers).status_code == 413
        assert c.get("/api/health").status_code == 200
    assert store.count("positions") == before


def test_optional_fields_with_impossible_values_are_dropped_not_the_fix(relay: dict[str, str], api: tuple[str, Any]) -> None:
    base, store = api
    device, sid, p = _worker(store)
    ts = _now() - 30
    q = _osmand(device, p, timestamp=str(ts), speed="-1", batt="140", accuracy="nan", bearing="720", charge="maybe")
    with httpx.Client(base_url=base, timeout=10, headers=relay) as c:
        assert c.get("/osmand", params=q).status_code == 200
    row = store.read("positions", where={"staff_id": sid, "ts": pd.Timestamp(ts, unit="s", tz="UTC")}).iloc[0]
    assert all(pd.isna(row[c]) for c in ("speed", "battery", "accuracy", "bearing", "charging"))


def test_gps_jumps_are_kept_flagged_and_do_not_move_the_latest_position(relay: dict[str, str], api: tuple[str, Any]) -> None:
    base, store = api
    device, sid, p = _worker(store)
    t0 = _now() - 300
    with httpx.Client(base_url=base, timeout=10, headers=relay) as c:
        for i in range(3):
            q = _osmand(device, p, timestamp=str(t0 + 30 * i))
            assert c.get("/osmand", params=q).status_code == 200
        far = _osmand(device, p, timestamp=str(t0 + 100), lat=f"{p.y + 0.05:.6f}")  # 5.5 km in 10 s
        assert c.get("/osmand", params=far).json() == {"status": "accepted"}
    got = store.read("positions", where={"staff_id": sid}, order_by=["ts"])
    assert bool(got.iloc[-1]["jump"]) and not got.iloc[-2]["jump"]
    latest = store.read("latest_positions", where={"staff_id": sid}).iloc[0]
    assert latest["ts"] == pd.Timestamp(t0 + 60, unit="s", tz="UTC")
    assert latest.geometry.distance(p) < 1e-6


def test_late_arrivals_never_move_the_latest_position_back(relay: dict[str, str], api: tuple[str, Any]) -> None:
    base, store = api
    device, sid, p = _worker(store)
    t0 = _now() - 1000
    with httpx.Client(base_url=base, timeout=10, headers=relay) as c:
        assert c.get("/osmand", params=_osmand(device, p, timestamp=str(t0 + 600))).status_code == 200
        late = [{"device_id": device, "timestamp": t0 + 30 * i, "lat": p.y, "lon": p.x} for i in range(5)]
        assert c.post("/api/positions", json={"positions": late}).json()["accepted"] == 5
    latest = store.read("latest_positions", where={"staff_id": sid}).iloc[0]
    assert latest["ts"] == pd.Timestamp(t0 + 600, unit="s", tz="UTC")


def test_many_phones_at_once_share_transactions(relay: dict[str, str], api: tuple[str, Any]) -> None:
    base, store = api
    staff = store.read("staff", columns=["id", "device_id"]).head(20)
    _, _, p = _worker(store)
    t0 = _now() - 900
    codes: list[int] = []
    lock = threading.Lock()

    def phone(device: str) -> None:
        with httpx.Client(base_url=base, timeout=30, headers=relay) as c:
            for i in range(10):
                r = c.post("/osmand", params=_osmand(device, p, timestamp=str(t0 + 30 * i)))
                with lock:
                    codes.append(r.status_code)

    before = store.count("positions")
    with httpx.Client(base_url=base, headers=relay) as c:
        tx_before = c.get("/api/status").json()["transactions"]
    threads = [threading.Thread(target=phone, args=(str(d),)) for d in staff["device_id"]]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert codes == [200] * 200
    assert store.count("positions") == before + 200
    with httpx.Client(base_url=base, headers=relay) as c:
        status = c.get("/api/status").json()
    assert status["transactions"] - tx_before < 200  # group commit: fewer transactions than requests
    assert status["commit_failures"] == 0


def test_docs_and_schema_are_served(api: tuple[str, Any]) -> None:
    base, _ = api
    with httpx.Client(base_url=base, timeout=10) as c:  # public: no token
        assert c.get("/docs").status_code == 200
        paths = c.get("/openapi.json").json()["paths"]
    assert {"/osmand", "/api/positions", "/api/health", "/api/status"} <= set(paths)
    assert set(paths["/osmand"]) == {"get", "post"}


def test_store_failure_is_a_503_and_nothing_is_acknowledged(relay: dict[str, str], api: tuple[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    base, store = api
    device, _, p = _worker(store)
    real = store.write

    def broken(table: str, *a: Any, **k: Any) -> int:
        if table == "positions":
            raise RuntimeError("disk full")
        return int(real(table, *a, **k))

    monkeypatch.setattr(store, "write", broken)
    with httpx.Client(base_url=base, timeout=10, headers=relay) as c:
        r = c.get("/osmand", params=_osmand(device, p))
        assert r.status_code == 503 and "retry" in r.json()["detail"]
        monkeypatch.setattr(store, "write", real)
        assert c.get("/osmand", params=_osmand(device, p)).status_code == 200  # the writer goes on
    assert json.dumps(r.json())  # a JSON body either way
