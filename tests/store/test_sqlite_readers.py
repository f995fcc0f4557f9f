"""SQLite's pooled readers: a read does not queue behind another thread's open transaction, sees
only committed rows, and a thread reads its own uncommitted writes inside its transaction."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pandas as pd

from store import open_store
from store.sqlite import READERS, SQLiteStore


def _setting_rows(store: SQLiteStore) -> int:
    return store.count("settings")


def test_readers_run_beside_an_open_transaction(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'r.sqlite'}")
    assert isinstance(store, SQLiteStore)
    before = _setting_rows(store)
    inside = threading.Event()
    release = threading.Event()
    seen_inside: list[int] = []

    def writer() -> None:
        with store.transaction():
            store.set_setting("reader.test", "1")
            seen_inside.append(_setting_rows(store))  # its own write, not yet committed
            inside.set()
            release.wait(10)

    t = threading.Thread(target=writer)
    t.start()
    assert inside.wait(10)
    t0 = time.perf_counter()
    during = _setting_rows(store)  # another thread: a pooled reader, no lock to wait for
    waited = time.perf_counter() - t0
    release.set()
    t.join(10)
    assert seen_inside == [before + 1]
    assert during == before, "an uncommitted row was visible to another thread"
    assert waited < 5, f"the read waited {waited:.1f} s for the writer's transaction"
    assert _setting_rows(store) == before + 1
    store.close()


def test_many_threads_share_a_bounded_pool(tmp_path: Path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'p.sqlite'}")
    assert isinstance(store, SQLiteStore)
    errors: list[BaseException] = []

    def reader() -> None:
        try:
            for _ in range(20):
                assert isinstance(store.read("settings", geometry=False), pd.DataFrame)
        except BaseException as e:  # noqa: BLE001 - reported below
            errors.append(e)

    threads = [threading.Thread(target=reader) for _ in range(3 * READERS)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    assert not errors, errors
    assert len(store._pool_all) <= READERS
    store.close()
    assert store._pool_all == []
