"""SQLite-only details: the R*Tree bulk packing, its integrity after mixed writes, pragmas."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely

from store.sqlite import SQLiteStore, pack_rtree
from tests.store.sample import LAT, LON, gdf


def _rtree_db(rows: list[tuple[int, float, float, float, float]]) -> sqlite3.Connection:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE VIRTUAL TABLE r USING rtree(id, minx, maxx, miny, maxy)")
    node_size = conn.execute("SELECT length(data) FROM r_node WHERE nodeno = 1").fetchone()[0]
    nodes, rowids, parents = pack_rtree(rows, node_size)
    for shadow in ("r_node", "r_rowid", "r_parent"):
        conn.execute(f"DELETE FROM {shadow}")  # noqa: S608 - fixed names
    conn.executemany("INSERT INTO r_node VALUES (?, ?)", nodes)
    conn.executemany("INSERT INTO r_rowid VALUES (?, ?)", rowids)
    conn.executemany("INSERT INTO r_parent VALUES (?, ?)", parents)
    return conn


@pytest.mark.parametrize("n", [0, 1, 2, 45, 46, 47, 500, 3000, 40_000])
def test_pack_rtree_is_a_valid_rtree(n: int) -> None:
    rng = np.random.default_rng(n)
    x = rng.uniform(123.0, 125.0, n)
    y = rng.uniform(41.0, 43.0, n)
    w = rng.uniform(0, 0.01, n) * (rng.random(n) < 0.5)
    rows = [(int(i) * 3 + 1, float(a), float(a + d), float(b), float(b + d)) for i, a, b, d in zip(range(n), x, y, w, strict=True)]
    conn = _rtree_db(rows)
    assert conn.execute("SELECT rtreecheck('r')").fetchone()[0] == "ok"
    assert conn.execute("SELECT count(*) FROM r").fetchone()[0] == n
    # queries find what a brute force finds (the R*Tree boxes are float32 rounded outwards,
    # so they may only find more, never less)
    for q in [(123.5, 41.5, 123.7, 41.6), (123.0, 41.0, 125.0, 43.0), (124.2, 42.2, 124.2001, 42.2001)]:
        found = {r[0] for r in conn.execute(
            "SELECT id FROM r WHERE minx <= ? AND maxx >= ? AND miny <= ? AND maxy >= ?", (q[2], q[0], q[3], q[1])
        )}
        exact = {r[0] for r in rows if r[1] <= q[2] and r[2] >= q[0] and r[3] <= q[3] and r[4] >= q[1]}
        assert exact <= found
    # and it keeps working as an ordinary R*Tree afterwards
    conn.executemany("INSERT INTO r VALUES (?, ?, ?, ?, ?)", [(10**9 + i, 124.0, 124.0, 42.0, 42.0) for i in range(300)])
    conn.execute("DELETE FROM r WHERE id % 2 = 1 AND id < 100000")
    assert conn.execute("SELECT rtreecheck('r')").fetchone()[0] == "ok"


def test_rtree_stays_consistent_through_mixed_writes(sqlite_store: SQLiteStore) -> None:
    rng = np.random.default_rng(1)

    def frame(start: int, n: int) -> Any:
        xs, ys = LON + rng.uniform(-0.1, 0.1, n), LAT + rng.uniform(-0.1, 0.1, n)
        return gdf({"id": list(range(start, start + n)), "kind": ["school"] * n, "name": ["x"] * n},
                   list(shapely.points(xs, ys)))

    s = sqlite_store
    s.write("facilities", frame(1, 6000))  # bulk: R*Tree packed
    s.write("facilities", frame(10_000, 100))  # triggers
    s.write("facilities", frame(20_000, 8000))  # bulk again (large relative to the table)
    s.write("facilities", frame(1, 3000), mode="upsert")  # triggers on update
    s.delete("facilities", {"id": list(range(10_000, 10_050))})
    s.update("facilities", {"id": 20_001}, {"geom": None})
    assert s.integrity_check() == ["ok"]
    n_rtree = s.conn.execute("SELECT count(*) FROM rtree_facilities").fetchone()[0]
    assert n_rtree == s.count("facilities") - 1  # the NULL geometry has no entry
    everything = (LON - 1, LAT - 1, LON + 1, LAT + 1)
    assert s.count("facilities", bbox=everything) == s.count("facilities") - 1
    s.rebuild_spatial_index("facilities")
    assert s.integrity_check() == ["ok"]
    assert s.count("facilities", bbox=everything) == s.count("facilities") - 1


def test_pragmas(sqlite_store: SQLiteStore) -> None:
    assert sqlite_store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_second_connection_sees_committed_writes(tmp_path: Path) -> None:
    path = str(tmp_path / "two.sqlite")
    a, b = SQLiteStore(path), SQLiteStore(path)
    try:
        assert b.migrate() == []
        a.set_setting("k", "v")
        assert b.get_setting("k") == "v"
    finally:
        a.close()
        b.close()
