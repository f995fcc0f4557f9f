"""PostGIS stopped and started under a stream of phones and reports: while it is down the API answers
503 (never a 500, never a hang), phones keep what was not acknowledged and send it again, and once
it is back everything gets through and nothing acknowledged is lost.

A private PostgreSQL server (tests/fixtures/pg_cluster.py), so stopping it touches no other test.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from demo import SIZES, generate, load_demo
from store import open_store
from tests.fixtures.api import api_process, api_token, assert_acknowledged_stored, bearer
from tests.fixtures.pg_cluster import private_cluster

pytestmark = pytest.mark.postgis

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def test_postgis_down_then_up_loses_nothing_acknowledged(tmp_path: Path) -> None:
    with private_cluster() as pg:
        url = pg.url
        store = open_store(url)
        try:
            load_demo(store, generate(SIZES["small"], seed=11, now=NOW))
            staff = store.read("staff", columns=["id", "device_id"]).head(6)
            grid = store.read("grids").geometry.iloc[0].representative_point()
            category = str(store.read("case_categories", columns=["code"], geometry=False)["code"].iloc[0])
            token = api_token(store)  # a gateway's token (positions.relay), also allowed to report
        finally:
            store.close()
        acked: list[tuple[int, int]] = []
        statuses: Counter[int] = Counter()
        lock = threading.Lock()
        stop = threading.Event()
        t0 = int(time.time()) - 6 * 3600

        def phone(sid: int, device: str) -> None:
            """A phone: one fix a tick; what is not acknowledged stays in its buffer and is resent."""
            buffer: list[int] = []
            i = 0
            with httpx.Client(timeout=10, headers=bearer(token)) as c:
                while not stop.is_set() or buffer:
                    if not stop.is_set():
                        buffer.append(t0 + i)
                        i += 1
                    ts = buffer[0]
                    q = {"id": device, "timestamp": ts, "lat": grid.y + (ts - t0) * 1e-6, "lon": grid.x}
                    try:
                        r = c.post(f"{base}/osmand", params=q)
                        code = r.status_code
                    except httpx.HTTPError:
                        code = 0
                    with lock:
                        statuses[code] += 1
                        if code == 200:
                            acked.append((sid, ts))
                    if code == 200:
                        buffer.pop(0)
                    else:
                        time.sleep(0.2)  # the phone backs off and tries again
                    if stop.is_set() and time.monotonic() > drain_deadline:
                        return

        drain_deadline = float("inf")
        with api_process(url, log=tmp_path / "api.log") as (base, _proc):
            threads = [threading.Thread(target=phone, args=(int(s), str(d))) for s, d in zip(staff["id"], staff["device_id"], strict=True)]
            for th in threads:
                th.start()
            deadline = time.monotonic() + 60
            while len(acked) < 150 and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(acked) >= 150, "the stream did not get going"
            pg.stop("fast")  # the database goes away mid-stream
            down_since = time.monotonic()
            time.sleep(4)
            with httpx.Client(timeout=15) as c:
                t = time.monotonic()
                r = c.post(f"{base}/open311/v2/requests.json", data={"service_code": category, "lat": grid.y,
                                                                     "long": grid.x, "description": "停库期间的上报",
                                                                     "api_key": token})  # fmt: skip
                assert r.status_code == 503 and time.monotonic() - t < 12, (r.status_code, r.text)
                health = c.get(f"{base}/api/health")
            during = dict(statuses)
            pg.start()  # back
            up_at = time.monotonic()
            deadline = time.monotonic() + 60
            before = len(acked)
            while len(acked) < before + 100 and time.monotonic() < deadline:
                time.sleep(0.05)
            recovered_s = time.monotonic() - up_at
            drain_deadline = time.monotonic() + 60
            stop.set()
            for th in threads:
                th.join(timeout=90)
        assert during.get(503, 0) > 0, during  # refused, not crashed
        assert during.get(500, 0) == 0 and statuses.get(500, 0) == 0, statuses
        assert len(acked) >= before + 100, f"no recovery within 60 s of the restart ({recovered_s:.1f} s)"
        assert health.status_code in (200, 503)
        assert_acknowledged_stored(url, staff["id"].astype(int).tolist(), acked)
        assert time.monotonic() - down_since > 4
