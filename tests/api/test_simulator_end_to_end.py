"""`gridconsole simulate` drives workers through the real API: their fixes land in the store,
along the roads of their grids, and the live layer shows them online."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from demo import SIZES, generate, load_demo
from services import tracks
from store import open_store
from tests.fixtures.api import api_process, api_token
from tests.fixtures.demo_db import ROOT


def test_simulated_phones_go_through_the_api(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'sim.sqlite'}"
    store = open_store(url)
    load_demo(store, generate(SIZES["small"], seed=11, now=datetime.now(UTC)))
    token = api_token(store)  # a gateway's token (positions.relay over the city)
    store.close()
    # the simulator takes its token from GRIDCONSOLE_API_TOKEN (demo/simulate.py)
    env = {**os.environ, "GRIDCONSOLE_API_TOKEN": token}
    with api_process(url, log=tmp_path / "api.log") as (base, _):
        cmd = [sys.executable, "-m", "console", "simulate", "--db", url, "--url", base, "--staff", "12",
               "--speedup", "120", "--duration", "6", "--backfill", "1", "--lang", "en"]  # fmt: skip
        out = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
        assert out.returncode == 0, out.stdout + out.stderr
        assert "Routes for 12 workers" in out.stdout
        assert " 0 refused" in out.stdout.splitlines()[-1]
    store = open_store(url)
    try:
        moved = store.read("positions", columns=["staff_id"], geometry=False)["staff_id"].nunique()
        assert moved >= 10  # a couple may have been offline at the end, their buffers uploaded or pending
        assert store.count("positions") > 12 * 100  # an hour's backfill at 30 s and the live run
        live = tracks.live_staff(store)
        assert (live["freshness"] == "online").sum() >= 10
        # fixes fall inside (or next to) the grids of their workers
        assert store.count("positions", where={"grid_code": None}) < 0.2 * store.count("positions")
    finally:
        store.close()
