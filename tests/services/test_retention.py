"""Retention of tracks (services.retention.purge_tracks) on both stores, the setting, and the
scheduler of maintenance jobs driven by an injected clock (no sleeping)."""

from __future__ import annotations

import subprocess
import sys
from datetime import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from shapely.geometry import Point

from services import retention as rt
from services import settings
from store import Range, open_store
from tests.store.sample import LAT, LON, gdf

ROOT = Path(__file__).resolve().parents[2]
NOW = pd.Timestamp("2026-11-23 12:00", tz="UTC")  # 20:00 in Tieling
# retention 10 days -> the cutoff is 2026-11-13 00:00 Asia/Shanghai = 2026-11-12 16:00 UTC
CUTOFF = pd.Timestamp("2026-11-12 16:00", tz="UTC")


def _fixes(store: Any) -> None:
    stamps = {
        1: [NOW - pd.Timedelta(days=60), NOW - pd.Timedelta(days=59, hours=1), NOW - pd.Timedelta(days=20),
            NOW - pd.Timedelta(days=19), CUTOFF - pd.Timedelta(seconds=1), CUTOFF, NOW - pd.Timedelta(hours=1)],
        2: [NOW - pd.Timedelta(days=45), CUTOFF - pd.Timedelta(hours=5), CUTOFF + pd.Timedelta(hours=1)],
        3: [NOW - pd.Timedelta(days=90)],
    }  # fmt: skip
    ids = [sid for sid, ts in stamps.items() for _ in ts]
    ts = [t for v in stamps.values() for t in v]
    store.write("positions", gdf({"staff_id": ids, "ts": ts}, [Point(LON, LAT)] * len(ts)))
    latest = {1: NOW - pd.Timedelta(hours=1), 2: CUTOFF + pd.Timedelta(hours=1), 3: NOW - pd.Timedelta(days=90)}
    store.write("latest_positions", gdf({"staff_id": list(latest), "ts": list(latest.values())},
                                        [Point(LON, LAT)] * 3))  # fmt: skip
    days = ["2026-09-01", "2026-11-12", "2026-11-13", "2026-11-23"]
    store.write("grid_presence", pd.DataFrame({"day": days, "grid_code": ["211202001001001"] * 4,
                                               "staff_id": [1] * 4, "first_ts": [NOW] * 4}))  # fmt: skip
    store.write("staff_days", pd.DataFrame({"staff_id": [1, 1], "day": ["2026-09-01", "2026-11-20"],
                                            "points": [10, 20], "computed_at": [NOW, NOW]}))  # fmt: skip


def test_purge_deletes_before_the_cutoff_and_keeps_the_rest(store: Any) -> None:
    _fixes(store)
    assert rt.retention_cutoff(store, 10, NOW) == CUTOFF
    report = rt.purge_tracks(store, retention_days=10, now=NOW, batch_rows=2)
    assert report.cutoff == CUTOFF and report.complete
    left = store.read("positions", geometry=False)
    assert (left["ts"] >= CUTOFF).all()
    assert len(left) == 3  # staff 1: CUTOFF, an hour ago; staff 2: after the cutoff
    assert report.positions == 8
    if store.dialect == "postgis":  # the 45-, 59-, 60- and 90-day-old days go as whole partitions
        assert len(report.partitions) == 4 and sum(report.partitions.values()) == 4
    else:
        assert report.partitions == {}
    # latest positions newer than the cutoff untouched; an ancient one goes
    latest = store.read("latest_positions", geometry=False).sort_values("staff_id")
    assert latest["staff_id"].tolist() == [1, 2] and report.latest_positions == 1
    # grid presence: personal movement data, trimmed to the cutoff's local day
    assert sorted(store.read("grid_presence")["day"]) == ["2026-11-13", "2026-11-23"]
    assert report.grid_presence == 2
    # the daily KPI rollups are kept
    assert store.count("staff_days") == 2
    rows = store.read("audit_log", where={"action": "tracks.purge"}, geometry=False)
    assert len(rows) == 1 and rows["actor"].iloc[0] == "system:retention"
    assert rows["detail"].iloc[0].startswith(f"8 fixes before {CUTOFF.isoformat()}")
    # idempotent: a second run deletes nothing (and is audited too)
    again = rt.purge_tracks(store, retention_days=10, now=NOW)
    assert (again.positions, again.grid_presence, again.latest_positions, again.partitions) == (0, 0, 0, {})
    assert store.count("positions") == 3
    assert store.count("audit_log", where={"action": "tracks.purge"}) == 2


def test_purge_large_batches_and_the_setting(store: Any) -> None:
    _fixes(store)
    settings.set_retention_days(store, "30")
    report = rt.purge_tracks(store, now=NOW)  # the setting: 30 days
    assert report.retention_days == 30
    cutoff = pd.Timestamp("2026-10-23 16:00", tz="UTC")
    assert report.cutoff == cutoff
    assert store.count("positions", where={"ts": Range(None, cutoff)}) == 0
    assert store.count("positions") == 7  # the 45-, 59-, 60- and 90-day-old fixes went


def test_retention_zero_keeps_everything(store: Any) -> None:
    _fixes(store)
    settings.set_retention_days(store, 0)
    report = rt.purge_tracks(store, now=NOW)
    assert report.cutoff is None and report.positions == 0
    assert "retention off" in report.summary()
    assert store.count("positions") == 11 and store.count("grid_presence") == 4
    assert store.count("latest_positions") == 3
    assert store.count("audit_log", where={"action": "tracks.purge"}) == 0


def test_purge_stops_between_batches_when_asked(sqlite_store: Any) -> None:
    _fixes(sqlite_store)
    report = rt.purge_tracks(sqlite_store, retention_days=10, now=NOW, stop=lambda: True)
    assert not report.complete and "interrupted" in report.summary()
    assert sqlite_store.count("positions") == 11  # nothing done on SQLite (no partitions), nothing broken
    assert rt.purge_tracks(sqlite_store, retention_days=10, now=NOW).positions == 8  # the next run goes on


def test_retention_setting_is_validated(sqlite_store: Any) -> None:
    assert settings.retention_days(sqlite_store) == 180  # default
    for ok, want in ((0, 0), ("", 0), (" 365 ", 365), (3650, 3650), (None, 0)):
        assert settings.set_retention_days(sqlite_store, ok) == want
        assert settings.retention_days(sqlite_store) == want
    for bad in (-1, 3651, "abc", "1.5", True):
        with pytest.raises(ValueError):
            settings.set_retention_days(sqlite_store, bad)
    assert settings.retention_days(sqlite_store) == 0  # nothing saved by a refused value
    sqlite_store.set_setting("tracks.retention_days", "-5")  # written around the check: default, not "all"
    assert settings.retention_days(sqlite_store) == 180


# ------------------------------------------------------------------------------ the scheduler


class Clock:
    def __init__(self, now: pd.Timestamp) -> None:
        self.now = now

    def __call__(self) -> pd.Timestamp:
        return self.now


def _scheduler(store: Any, clock: Clock, calls: list[pd.Timestamp], *, fail: bool = False) -> rt.Scheduler:
    def run(s: Any, now: pd.Timestamp, stop: Any) -> str:
        calls.append(now)
        if fail:
            raise RuntimeError("disk full")
        return "done"

    class Unclosable:  # the test's store outlives each tick
        def __getattr__(self, name: str) -> Any:
            return (lambda: None) if name == "close" else getattr(store, name)

    return rt.Scheduler(lambda: Unclosable(), [rt.Job("retention", run, time(3, 0))], clock=clock)  # type: ignore[arg-type]


def local(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="Asia/Shanghai").tz_convert("UTC")


def test_is_due_daily_at_three_local() -> None:
    assert rt.is_due(None, local("2026-11-23 10:00"))
    last = local("2026-11-23 03:00")
    assert not rt.is_due(last, local("2026-11-23 23:59"))
    assert not rt.is_due(last, local("2026-11-24 02:59"))
    assert rt.is_due(last, local("2026-11-24 03:00"))
    assert rt.is_due(local("2026-11-20 15:00"), local("2026-11-23 01:00"))  # older than a day: at start
    assert rt.next_run_at(local("2026-11-23 02:00")) == local("2026-11-23 03:00")
    assert rt.next_run_at(local("2026-11-23 03:00")) == local("2026-11-24 03:00")


def test_scheduler_runs_when_due_and_not_when_not(sqlite_store: Any) -> None:
    clock = Clock(local("2026-11-23 10:00"))
    calls: list[pd.Timestamp] = []
    sched = _scheduler(sqlite_store, clock, calls)
    assert sched.tick() == {"retention": "ok: done"}  # never run: at start
    assert rt.last_run(sqlite_store, "retention") == clock.now
    clock.now = local("2026-11-23 22:00")
    assert sched.tick() == {} and len(calls) == 1  # not due
    clock.now = local("2026-11-24 02:59")
    assert sched.tick() == {}
    assert sched.seconds_until_next(3600) == pytest.approx(61.0)  # wakes for 03:00, not an hour later
    clock.now = local("2026-11-24 03:00")
    assert sched.tick() == {"retention": "ok: done"} and len(calls) == 2
    assert sched.tick() == {}


def test_scheduler_survives_a_failing_job_and_retries(sqlite_store: Any) -> None:
    clock = Clock(local("2026-11-23 10:00"))
    calls: list[pd.Timestamp] = []
    sched = _scheduler(sqlite_store, clock, calls, fail=True)
    assert sched.tick()["retention"] == "failed: disk full"
    assert rt.last_run(sqlite_store, "retention") is None  # not remembered: tried again next tick
    clock.now += pd.Timedelta(hours=1)
    assert sched.tick()["retention"].startswith("failed") and len(calls) == 2


def test_run_forever_ticks_until_stopped_without_sleeping(sqlite_store: Any) -> None:
    clock = Clock(local("2026-11-23 10:00"))
    calls: list[pd.Timestamp] = []
    sched = _scheduler(sqlite_store, clock, calls)
    waits: list[float] = []

    def wait(seconds: float) -> None:
        waits.append(seconds)
        clock.now += pd.Timedelta(seconds=seconds)
        if clock.now > local("2026-11-26 12:00"):
            sched.stop()

    sched.run_forever(every=3600, wait=wait)
    # at start, then at 03:00 on the 24th, 25th and 26th
    assert [c.tz_convert("Asia/Shanghai").strftime("%d %H:%M") for c in calls] == [
        "23 10:00", "24 03:00", "25 03:00", "26 03:00",
    ]  # fmt: skip
    assert max(waits) <= 3600


def test_scheduler_with_a_database_that_is_down() -> None:
    def broken() -> Any:
        raise OSError("connection refused")

    sched = rt.Scheduler(broken, [rt.retention_job()], clock=lambda: NOW)
    assert sched.tick() == {"*": "failed: connection refused"}


def test_retention_job_purges(sqlite_store: Any) -> None:
    _fixes(sqlite_store)
    settings.set_retention_days(sqlite_store, 10)
    summary = rt.retention_job().run(sqlite_store, NOW, lambda: False)
    assert summary.startswith("8 fixes before")


def test_cli_retention_run(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'ret.sqlite'}"
    store = open_store(db)
    try:
        _fixes(store)
        settings.set_retention_days(store, 10)
    finally:
        store.close()
    # the fixes are dated around NOW; with the real clock later, more of them may go: compare with the cutoff
    r = subprocess.run([sys.executable, "-m", "console", "retention", "run", "--lang", "en", "--db", db],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "fixes before" in r.stdout
    store = open_store(db)
    try:
        cutoff = rt.retention_cutoff(store, 10)
        assert cutoff is not None
        assert store.count("positions", where={"ts": Range(None, cutoff)}) == 0
        assert rt.last_run(store, "retention") is not None
        assert store.count("audit_log", where={"action": "tracks.purge", "actor": "system:retention"}) == 1
    finally:
        store.close()
    off = subprocess.run([sys.executable, "-m", "console", "retention", "run", "--days", "0", "--lang", "en",
                          "--db", db], cwd=ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert off.returncode == 0 and "retention off" in off.stdout
