"""Retention of GPS tracks, and the scheduler of the maintenance jobs that enforce it.

What is deleted (``purge_tracks``), for the setting ``tracks.retention_days`` = N (default 180;
0 or empty: keep forever; see ``services.settings.retention_days``):

- the **cutoff** is the start (00:00 in the city's time zone, setting ``tz``) of the local day N
  days before today: the last N whole days and today are kept;
- ``positions``: every fix before the cutoff. On PostGIS the day partitions lying wholly before
  the cutoff are dropped (``Store.drop_partitions_before``, far cheaper than DELETE) as long as
  they are also older than ``PARTITION_MARGIN_DAYS`` (35 days: beyond the 30 days of offline buffer
  the ingest accepts, so no API process ever writes into a dropped day again -- each process
  remembers which partitions exist). Whatever is left before the cutoff is deleted in bounded
  batches (per staff member, at most ``BATCH_ROWS`` rows each, each its own short transaction;
  the store's primary key (staff_id, ts) answers each batch from its index);
- ``grid_presence`` (who was in which grid on which day: personal movement data): the days
  before the cutoff's day, one day per batch;
- ``latest_positions``: only a last fix that is itself older than the cutoff (someone who has not
  reported for N days); a newer one is never touched;
- ``staff_days`` is **kept**: the daily KPI rollups (points, distance, time moving, stops,
  households visited, first and last fix time) hold no positions and are what monthly and yearly
  assessments are computed from.

Every run with a retention is audited: ``system:retention`` ``tracks.purge`` "<n> fixes before <cutoff>".

The scheduler (``Scheduler``, run by ``gridconsole jobs``) runs each ``Job`` once a day at its local
time (retention: 03:00 in the city's time zone), and at start when a run was missed (the last
successful run, kept in the setting ``jobs.<name>.last_run``, is before the latest 03:00 -- so
at least whenever it is older than a day). A job that fails is logged and tried again at the next
tick; it never ends the loop.
"""

from __future__ import annotations

import logging
import math
import threading
import time as _time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import time, timedelta
from typing import Any

import pandas as pd

from services.auth import audit
from services.settings import city_tz
from services.settings import retention_days as retention_setting
from store.base import Range, Store

__all__ = [
    "BATCH_ROWS",
    "PARTITION_MARGIN_DAYS",
    "Job",
    "PurgeReport",
    "Scheduler",
    "is_due",
    "last_run",
    "mark_run",
    "next_run_at",
    "purge_tracks",
    "retention_cutoff",
    "retention_job",
]

log = logging.getLogger("gridconsole.jobs")

ACTOR = "system:retention"
BATCH_ROWS = 50_000
PARTITION_MARGIN_DAYS = 35  # more than services.ingest.IngestConfig.max_age_days (30)


def _utc(value: Any = None) -> pd.Timestamp:
    ts = pd.Timestamp.now(tz="UTC") if value is None else pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


@dataclass
class PurgeReport:
    """What one ``purge_tracks`` run deleted."""

    retention_days: int
    cutoff: pd.Timestamp | None  # None: retention off, nothing deleted
    positions: int = 0  # fixes deleted, those in dropped partitions included
    partitions: dict[str, int] = field(default_factory=dict)  # PostGIS partitions dropped -> their rows
    grid_presence: int = 0
    latest_positions: int = 0
    batches: int = 0
    seconds: float = 0.0
    complete: bool = True  # False: stopped (SIGTERM) between batches; the next run goes on

    def summary(self) -> str:
        if self.cutoff is None:
            return "retention off (tracks.retention_days = 0): nothing deleted"
        text = (
            f"{self.positions:,} fixes before {self.cutoff.isoformat()} deleted "
            f"({len(self.partitions)} day partitions dropped, {self.batches} batches), "
            f"{self.grid_presence:,} grid presence rows, {self.latest_positions:,} last positions; "
            f"{self.seconds:.1f} s"
        )
        return text if self.complete else text + " (interrupted; the next run continues)"


def retention_cutoff(store: Store, retention_days: int, now: Any = None) -> pd.Timestamp | None:
    """The instant (UTC) before which tracks go: 00:00 local time of the day ``retention_days``
    before today in the city's time zone; None when ``retention_days`` is 0 (keep forever)."""
    if retention_days <= 0:
        return None
    tz = city_tz(store)
    local = _utc(now).tz_convert(tz)
    day = (local - pd.Timedelta(days=retention_days)).date()
    return pd.Timestamp(day).tz_localize(tz).tz_convert("UTC")


def purge_tracks(
    store: Store,
    *,
    retention_days: int | None = None,
    now: Any = None,
    batch_rows: int = BATCH_ROWS,
    stop: Callable[[], bool] | None = None,
) -> PurgeReport:
    """Delete the tracks older than the retention (see the module docstring); ``retention_days``
    None reads the setting. ``stop`` is asked between batches (a SIGTERM ends a long first run
    cleanly; the next run continues). Idempotent: a second run at once deletes nothing."""
    started = _time.perf_counter()
    days = retention_setting(store) if retention_days is None else int(retention_days)
    if days < 0:
        raise ValueError(f"the retention is 0 (keep forever) or a number of days, not {days}")
    ts = _utc(now)
    cutoff = retention_cutoff(store, days, ts)
    report = PurgeReport(retention_days=days, cutoff=cutoff)
    if cutoff is None:
        return report
    stopped = stop or (lambda: False)

    # 1. whole day partitions (PostGIS), only those no ingest can write into any more
    drop_before = min(cutoff, ts - pd.Timedelta(days=PARTITION_MARGIN_DAYS))
    report.partitions = store.drop_partitions_before("positions", drop_before)
    report.positions += sum(report.partitions.values())

    # 2. the rest, per staff member, in batches of at most ~batch_rows rows
    old = {"ts": Range(None, cutoff)}
    counts = store.group_count("positions", ["staff_id"], where=old)
    for sid, n in zip(counts["staff_id"].tolist(), counts["n"].tolist(), strict=True):
        if stopped():
            report.complete = False
            break
        key = {"staff_id": int(sid)}
        pieces = max(1, math.ceil(int(n) / max(1, batch_rows)))
        bounds = [cutoff]
        if pieces > 1:
            first = store.read("positions", where={**key, **old}, columns=["ts"], order_by=["ts"], limit=1,
                               geometry=False)["ts"]  # fmt: skip
            if len(first):
                start = _utc(first.iloc[0])
                step = (cutoff - start) / pieces
                bounds = [start + step * k for k in range(1, pieces)] + [cutoff]
        for hi in bounds:
            report.positions += store.delete("positions", {**key, "ts": Range(None, hi)})
            report.batches += 1

    # 3. grid presence: one local day per batch
    cutoff_day = cutoff.tz_convert(city_tz(store)).date().isoformat()
    if report.complete:
        per_day = store.group_count("grid_presence", ["day"], where={"day": Range(None, cutoff_day)})
        for day in sorted(per_day["day"].tolist()):
            if stopped():
                report.complete = False
                break
            report.grid_presence += store.delete("grid_presence", {"day": str(day)})
            report.batches += 1

    # 4. last positions that are themselves older than the cutoff (a small table: one statement)
    if report.complete:
        report.latest_positions = store.delete("latest_positions", {"ts": Range(None, cutoff)})

    report.seconds = _time.perf_counter() - started
    detail = (
        f"{report.positions} fixes before {cutoff.isoformat()} "
        f"(retention {days} days; {len(report.partitions)} partitions dropped, "
        f"{report.grid_presence} grid presence rows, {report.latest_positions} last positions"
        f"{'' if report.complete else '; interrupted'})"
    )
    audit(store, ACTOR, "tracks.purge", detail=detail, now=ts)
    log.debug("retention: %s", report.summary())
    return report


# ------------------------------------------------------------------------------ the scheduler


@dataclass(frozen=True)
class Job:
    """A maintenance job run once a day at ``at`` (local time of the city's time zone).
    ``run(store, now, stop)`` does the work and returns a one-line summary for the log."""

    name: str
    run: Callable[[Store, pd.Timestamp, Callable[[], bool]], str]
    at: time = time(3, 0)


def _retention_run(store: Store, now: pd.Timestamp, stop: Callable[[], bool]) -> str:
    return purge_tracks(store, now=now, stop=stop).summary()


def retention_job() -> Job:
    """The track retention, daily at 03:00 local time."""
    return Job("retention", _retention_run, time(3, 0))


def _last_run_key(name: str) -> str:
    return f"jobs.{name}.last_run"


def last_run(store: Store, name: str) -> pd.Timestamp | None:
    """When the job ``name`` last finished successfully (setting ``jobs.<name>.last_run``), or None."""
    raw = store.get_setting(_last_run_key(name))
    if not raw:
        return None
    try:
        return _utc(raw)
    except ValueError:
        return None


def mark_run(store: Store, name: str, now: Any = None) -> None:
    """Remember that the job ``name`` finished successfully at ``now``."""
    store.set_setting(_last_run_key(name), _utc(now).isoformat())


def _slot(now: pd.Timestamp, at: time, tz: str, *, after: bool) -> pd.Timestamp:
    """The latest occurrence of local time ``at`` at or before ``now`` (after=False), or the first
    one after it (after=True), in UTC."""
    local = now.tz_convert(tz)
    base = local.date()
    for _ in range(3):
        slot = pd.Timestamp.combine(base, at).tz_localize(tz, nonexistent="shift_forward", ambiguous=False)
        if after and slot > local:
            return slot.tz_convert("UTC")
        if not after and slot <= local:
            return slot.tz_convert("UTC")
        base = base + (timedelta(days=1) if after else timedelta(days=-1))
    raise AssertionError("unreachable")  # pragma: no cover


def is_due(last: pd.Timestamp | None, now: Any, *, at: time = time(3, 0), tz: str = "Asia/Shanghai") -> bool:
    """Whether a daily job last run at ``last`` should run at ``now``: never run, or the daily time
    ``at`` has passed since (which includes every last run older than a day)."""
    if last is None:
        return True
    ts = _utc(now)
    return _utc(last) < _slot(ts, at, tz, after=False) or ts - _utc(last) >= pd.Timedelta(days=1)


def next_run_at(now: Any, *, at: time = time(3, 0), tz: str = "Asia/Shanghai") -> pd.Timestamp:
    """The next occurrence of the local time ``at`` after ``now`` (UTC)."""
    return _slot(_utc(now), at, tz, after=True)


class Scheduler:
    """Runs due jobs (``tick``) and loops until stopped (``run_forever``).

    ``open_store`` opens the database for one tick (closed afterwards, so a database that was down
    is simply tried again next time); ``clock`` gives the current instant (tests inject one)."""

    def __init__(
        self,
        open_store: Callable[[], Store],
        jobs: Sequence[Job],
        *,
        clock: Callable[[], Any] | None = None,
    ) -> None:
        self.open_store = open_store
        self.jobs = list(jobs)
        self.clock = clock or (lambda: pd.Timestamp.now(tz="UTC"))
        self.stop_event = threading.Event()
        self.tz = "Asia/Shanghai"
        self.failures: dict[str, int] = {}

    def tick(self) -> dict[str, str]:
        """Run every due job once; {job name: "ok: summary" | "failed: error"} for those run."""
        out: dict[str, str] = {}
        try:
            store = self.open_store()
        except Exception as exc:  # the database is down: try again at the next tick
            log.error("jobs: cannot open the database: %s", exc)
            return {"*": f"failed: {exc}"}
        try:
            self.tz = city_tz(store)
            for job in self.jobs:
                if self.stop_event.is_set():
                    break
                now = _utc(self.clock())
                if not is_due(last_run(store, job.name), now, at=job.at, tz=self.tz):
                    continue
                log.info("jobs: %s starting", job.name)
                try:
                    summary = job.run(store, now, self.stop_event.is_set)
                    mark_run(store, job.name, now)
                except Exception as exc:
                    self.failures[job.name] = self.failures.get(job.name, 0) + 1
                    log.exception("jobs: %s failed (tried again at the next tick): %s", job.name, exc)
                    out[job.name] = f"failed: {exc}"
                else:
                    self.failures.pop(job.name, None)
                    log.info("jobs: %s done: %s", job.name, summary)
                    out[job.name] = f"ok: {summary}"
        finally:
            try:
                store.close()
            except Exception:  # pragma: no cover - closing a broken connection
                pass
        return out

    def seconds_until_next(self, every: float) -> float:
        """How long to wait before the next tick: ``every`` seconds, or less when a job's daily time
        comes sooner (so 03:00 is kept to the minute whatever ``every`` is)."""
        now = _utc(self.clock())
        wait = float(every)
        for job in self.jobs:
            wait = min(wait, (next_run_at(now, at=job.at, tz=self.tz) - now).total_seconds() + 1.0)
        return max(1.0, wait)

    def run_forever(self, *, every: float = 3600.0, wait: Callable[[float], Any] | None = None) -> None:
        """Tick, wait, tick… until ``stop_event`` is set (by SIGTERM in ``gridconsole jobs``).
        ``wait(seconds)`` defaults to waiting on the stop event (tests inject one that advances a clock)."""
        waiter = wait or self.stop_event.wait
        log.info("jobs: started (%s; a tick at most every %.0f s)", ", ".join(j.name for j in self.jobs), every)
        while not self.stop_event.is_set():
            try:
                self.tick()
            except Exception:  # pragma: no cover - tick catches its own; belt and braces
                log.exception("jobs: tick failed")
            if self.stop_event.is_set():
                break
            waiter(self.seconds_until_next(every))
        log.info("jobs: stopped")

    def stop(self) -> None:
        self.stop_event.set()
