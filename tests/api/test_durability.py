"""A kill of the API process in the middle of a stream of positions loses no acknowledged fix."""

from __future__ import annotations

import signal
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from demo import SIZES, generate, load_demo
from store import open_store
from tests.fixtures.api import api_process, api_token, assert_acknowledged_stored, bearer

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.fixture(params=["sqlite", pytest.param("postgis", marks=pytest.mark.postgis)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'kill.sqlite'}"
    else:
        server = request.getfixturevalue("postgres_server")
        url = server.url(server.create_database(template=server.template))
    store = open_store(url)
    try:
        load_demo(store, generate(SIZES["small"], seed=11, now=NOW))
    finally:
        store.close()
    return url


def test_kill_mid_stream_loses_no_acknowledged_position(db_url: str, tmp_path: Path) -> None:
    store = open_store(db_url)
    try:
        staff = store.read("staff", columns=["id", "device_id"]).head(8)
        grid = store.read("grids").geometry.iloc[0].representative_point()
        token = api_token(store)  # a gateway's token (positions.relay)
    finally:
        store.close()
    acked: list[tuple[int, int]] = []  # (staff id, unix ts) answered 200
    lock = threading.Lock()
    stop = threading.Event()
    t0 = int(time.time()) - 6 * 3600

    def phone(sid: int, device: str) -> None:
        with httpx.Client(timeout=5, headers=bearer(token)) as c:
            i = 0
            while not stop.is_set():
                ts = t0 + i
                q = {"id": device, "timestamp": ts, "lat": grid.y + i * 1e-6, "lon": grid.x}
                try:
                    r = c.post(f"{base}/osmand", params=q)
                except httpx.HTTPError:
                    return  # the server is gone: what was not acknowledged may be lost, nothing else
                if r.status_code == 200:
                    with lock:
                        acked.append((sid, ts))
                i += 1

    with api_process(db_url, log=tmp_path / "api.log") as (base, proc):
        threads = [threading.Thread(target=phone, args=(int(s), str(d))) for s, d in zip(staff["id"], staff["device_id"], strict=True)]
        for th in threads:
            th.start()
        deadline = time.monotonic() + 60
        while len(acked) < 400 and time.monotonic() < deadline:
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)  # no shutdown, no flush: as a power cut of the process
        proc.wait(timeout=10)
        stop.set()
        for th in threads:
            th.join(timeout=10)
    assert len(acked) >= 400, "the stream did not get going"
    assert_acknowledged_stored(db_url, staff["id"].astype(int).tolist(), acked)
