"""Group commit: one writer thread commits whatever fixes have queued, in one transaction.

Each HTTP request hands its checked fixes to :class:`CommitQueue` and waits; the writer takes
everything queued (up to ``max_rows``), commits it with ``Ingestor.commit`` and only then wakes the
requests with their outcomes. A phone is therefore acknowledged only after its fix is durable,
and 500 phones a second cost a few dozen transactions a second instead of 500.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass

from services.ingest import Fix, Ingestor, IngestResult

log = logging.getLogger("gridconsole.api")


@dataclass
class _Job:
    fixes: Sequence[Fix]
    staff_ids: Sequence[int]
    future: Future[IngestResult]


class CommitQueue:
    def __init__(self, ingestor: Ingestor, *, max_rows: int = 5000, max_wait_s: float = 0.005) -> None:
        self.ingestor = ingestor
        self.max_rows = max_rows
        self.max_wait_s = max_wait_s
        self._q: queue.Queue[_Job | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        self.committed = 0  # fixes committed (accepted + duplicates acknowledged)
        self.transactions = 0
        self.failures = 0
        self.commit_seconds = 0.0  # time spent committing (the writer's load)

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="gridconsole-commit", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Commit what is queued, then stop the writer."""
        if self._thread is not None:
            self._q.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    @property
    def depth(self) -> int:
        return self._q.qsize()

    def submit(self, fixes: Sequence[Fix], staff_ids: Sequence[int]) -> Future[IngestResult]:
        fut: Future[IngestResult] = Future()
        if self._thread is None:
            fut.set_exception(RuntimeError("the commit queue is not running"))
            return fut
        self._q.put(_Job(fixes, staff_ids, fut))
        return fut

    def _loop(self) -> None:
        stopping = False
        while not stopping:
            job = self._q.get()
            if job is None:
                break
            jobs = [job]
            rows = len(job.fixes)
            while rows < self.max_rows:
                try:
                    nxt = self._q.get(timeout=self.max_wait_s) if rows < 2 else self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                jobs.append(nxt)
                rows += len(nxt.fixes)
            self._commit(jobs)

    def _commit(self, jobs: list[_Job]) -> None:
        fixes = [f for j in jobs for f in j.fixes]
        sids = [s for j in jobs for s in j.staff_ids]
        started = time.perf_counter()
        try:
            result = self.ingestor.commit(fixes, sids)
        except BaseException as e:  # every waiting request learns of it; the writer goes on
            self.failures += 1
            log.exception("commit of %d fixes failed", len(fixes))
            for j in jobs:
                j.future.set_exception(e)
            return
        self.transactions += 1
        self.committed += len(fixes)
        self.commit_seconds += time.perf_counter() - started
        at = 0
        for j in jobs:
            n = len(j.fixes)
            j.future.set_result(IngestResult(result.outcomes[at : at + n]))
            at += n
