"""The embedded store: standard-library sqlite3, WAL, WKB geometry + an R*Tree per spatial table.

Spatial tables carry four hidden REAL columns (``_bbox_minx`` ...) with the exact bounds of the
geometry; the R*Tree ``rtree_<table>`` (keyed by rowid, float32 boxes rounded outwards) is kept in
sync by triggers for ordinary writes. Large writes switch the triggers off inside their transaction
and rebuild the R*Tree in bulk (Sort-Tile-Recursive packing written straight into the R*Tree's
node tables), which is an order of magnitude faster than one-by-one insertion.

Writes go through one connection shared by all threads (Streamlit runs scripts in several): every
write holds an RLock, and ``transaction()`` holds it for the whole block, so a thread reading inside
its own transaction reads through that connection and sees its own writes. Other reads take a
connection from a small pool of read-only connections (``READERS``) and hold no lock: in WAL mode
readers run beside the writer and beside each other (sqlite3 releases the GIL while a query runs),
instead of 35 page threads queueing behind one lock (the load test, bench/load.py, found that). An
in-memory database has no pool: its contents live in the one connection.
"""

from __future__ import annotations

import math
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import partial
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import shapely

from store import migrations as mig
from store import schema
from store._common import (
    BBOX_COLUMNS,
    Dialect,
    build_frame,
    check_lonlat,
    empty_frame,
    geodesic_distance_m,
    get_columns,
    get_table,
    q,
    require_geometry,
)
from store._sqlbase import SQLStoreBase, _fetchall
from store.base import BBox, ConflictError, StoreError, Where, WriteMode

T = TypeVar("T")
READERS = max(2, min(8, 2 * (os.cpu_count() or 1)))  # pooled read-only connections per store

# Above this many rows (and when the write is large compared with the table), the R*Tree is
# rebuilt in bulk instead of being fed row by row by the triggers.
BULK_MIN_ROWS = 5_000
_EARTH_POLAR_RADIUS_M = 6_356_752.0


class SQLiteStore(SQLStoreBase):
    dialect: Dialect = "sqlite"

    def __init__(self, path: str, *, url: str | None = None, migrate: bool = True) -> None:
        self.path = path
        self.url = url or f"sqlite:///{path}"
        self._lock = threading.RLock()
        self._owner: int | None = None  # the thread with a transaction open on the write connection
        self._pool: queue.LifoQueue[sqlite3.Connection] = queue.LifoQueue()
        self._pool_lock = threading.Lock()
        self._pool_all: list[sqlite3.Connection] = []
        self._pooled = path != ":memory:" and not path.startswith("file::memory:") and "mode=memory" not in path
        self._depth = 0
        self._poisoned = False  # a write inside the open transaction failed: it must roll back
        self._conn: sqlite3.Connection | None = None
        try:
            self._conn = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=30.0
            )
            c = self._conn
            if path != ":memory:" and not path.startswith("file::memory:"):
                c.execute("PRAGMA journal_mode = WAL")
            c.execute("PRAGMA synchronous = NORMAL")
            c.execute("PRAGMA busy_timeout = 30000")
            c.execute("PRAGMA cache_size = -65536")
            c.execute("PRAGMA temp_store = MEMORY")
        except sqlite3.Error as e:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            raise StoreError(f"cannot open the SQLite database {path!r}: {e}") from e
        if migrate:
            self.migrate()

    # ------------------------------------------------------------------ connection / transactions

    @property
    def conn(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"the store {self.url} is closed")
        return self._conn

    def _open_reader(self) -> sqlite3.Connection:
        c = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30.0)
        try:
            c.execute("PRAGMA busy_timeout = 30000")
            c.execute("PRAGMA cache_size = -32768")
            c.execute("PRAGMA temp_store = MEMORY")
            c.execute("PRAGMA query_only = ON")
        except sqlite3.Error:
            c.close()
            raise
        return c

    @contextmanager
    def _reader(self) -> Iterator[sqlite3.Connection]:
        """A pooled read-only connection (made on demand, at most READERS; waits when all are busy)."""
        try:
            c = self._pool.get_nowait()
        except queue.Empty:
            with self._pool_lock:
                fresh = None
                if len(self._pool_all) < READERS:
                    fresh = self._open_reader()
                    self._pool_all.append(fresh)
            c = fresh if fresh is not None else self._pool.get(timeout=60)
        try:
            yield c
        finally:
            if self._conn is None:  # closed meanwhile
                c.close()
            else:
                self._pool.put(c)

    def close(self) -> None:
        with self._pool_lock:
            for c in self._pool_all:
                try:
                    c.close()
                except sqlite3.Error:  # pragma: no cover - closing a broken connection
                    pass
            self._pool_all.clear()
            while not self._pool.empty():
                self._pool.get_nowait()
        with self._lock:
            if self._conn is not None:
                try:
                    if self._conn.in_transaction:
                        self._conn.execute("ROLLBACK")
                    self._conn.close()
                finally:
                    self._conn = None

    def _map_error(self, e: sqlite3.Error) -> StoreError:
        msg = str(e)
        if "append-only" in msg:
            return StoreError(msg)
        if isinstance(e, sqlite3.IntegrityError) and ("UNIQUE" in msg or "PRIMARY KEY" in msg):
            return ConflictError(f"{msg} (a row with that key already exists; nothing was written)")
        if isinstance(e, sqlite3.OperationalError) and ("locked" in msg or "busy" in msg):
            return ConflictError(f"the database is busy ({msg}); nothing was written, try again")
        return StoreError(f"SQLite error: {msg}")

    @contextmanager
    def _tx(self, *, savepoint: bool = True) -> Iterator[sqlite3.Connection]:
        """Outermost: BEGIN IMMEDIATE ... COMMIT/ROLLBACK; nested: a SAVEPOINT, so a failing inner
        block undoes only its own writes while still committing with the outer transaction.

        Bulk writes (``savepoint=False``, ``BULK_MIN_ROWS`` rows or more) join an open transaction
        without a savepoint: while a savepoint is open SQLite journals every statement, which made a
        large write after another large write in one transaction quadratic (257 s instead of 5.5 s
        for 136k + 193k rows). If such a write fails, the whole transaction is marked to roll back,
        so nothing partial is ever committed; small writes keep their savepoint, so a refused one
        does not spoil the transaction around it."""
        with self._lock:
            conn = self.conn
            depth = self._depth
            if depth > 0 and not savepoint:
                try:
                    yield conn
                except BaseException as exc:
                    self._poisoned = True
                    if isinstance(exc, sqlite3.Error):
                        raise self._map_error(exc) from exc
                    raise
                return
            if depth == 0:
                self._poisoned = False
            try:
                if depth == 0:
                    conn.execute("BEGIN IMMEDIATE")
                else:
                    conn.execute(f"SAVEPOINT gc_sp{depth}")
            except sqlite3.Error as e:
                raise self._map_error(e) from e
            self._depth = depth + 1
            if depth == 0:
                self._owner = threading.get_ident()
            try:
                yield conn
            except BaseException as exc:
                self._depth = depth
                if depth == 0:
                    self._owner = None
                try:
                    if depth == 0:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                    else:
                        conn.execute(f"ROLLBACK TO gc_sp{depth}")
                        conn.execute(f"RELEASE gc_sp{depth}")
                except sqlite3.Error:  # pragma: no cover - rollback of a broken connection
                    pass
                if isinstance(exc, sqlite3.Error):
                    raise self._map_error(exc) from exc
                raise
            else:
                self._depth = depth
                if depth == 0:
                    self._owner = None
                if depth == 0 and self._poisoned:
                    self._poisoned = False
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise StoreError("a write in this transaction failed; nothing was written")
                try:
                    if depth == 0:
                        conn.execute("COMMIT")
                    else:
                        conn.execute(f"RELEASE gc_sp{depth}")
                except sqlite3.Error as e:
                    if depth == 0 and conn.in_transaction:
                        conn.execute("ROLLBACK")
                    raise self._map_error(e) from e

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes in the block commit together at its end, or none if an exception escapes.
        Nested blocks join the outer transaction (as savepoints: a nested block that fails undoes
        only its own writes if the exception is caught inside the outer block)."""
        with self._tx():
            yield

    def _run(self, fn: Callable[[Any], T], *, write: bool, savepoint: bool = True) -> T:
        if not write and self._pooled and self._owner != threading.get_ident():
            if self._conn is None:
                raise StoreError(f"the store {self.url} is closed")
            try:
                with self._reader() as conn:
                    return self._read_on(conn, fn)
            except queue.Empty as e:
                raise StoreError("the database is busy: no read connection came free within 60 s") from e
        with self._lock:
            if write:
                with self._tx(savepoint=savepoint) as conn:
                    return fn(conn.cursor())
            return self._read_on(self.conn, fn)

    def _read_on(self, conn: sqlite3.Connection, fn: Callable[[Any], T]) -> T:
        try:
            cur = conn.cursor()
            try:
                return fn(cur)
            finally:
                cur.close()
        except sqlite3.Error as e:
            raise self._map_error(e) from e

    # ------------------------------------------------------------------ migrations

    def migrate(self) -> list[int]:
        mig.check_migrations()
        applied: list[int] = []
        with self._lock:
            try:
                self.conn.execute(mig.MIGRATIONS_TABLE_SQL["sqlite"])
            except sqlite3.Error as e:
                raise self._map_error(e) from e
            for m in mig.MIGRATIONS:
                with self._tx() as conn:
                    done = conn.execute("SELECT 1 FROM schema_migrations WHERE version = ?", (m.version,))
                    if done.fetchone():
                        continue
                    for stmt in m.sql("sqlite"):
                        conn.execute(stmt)
                    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S")
                    conn.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (?, ?)", (m.version, now))
                    applied.append(m.version)
        return applied

    def schema_version(self) -> int:
        rows = self._run(lambda cur: _fetchall(cur, "SELECT max(version) FROM schema_migrations", []), write=False)
        return int(rows[0][0] or 0)

    # ------------------------------------------------------------------ bbox

    def _bbox_condition(self, t: schema.Table, bbox: BBox) -> tuple[str, list[Any]]:
        minx, miny, maxx, maxy = bbox
        r = q(mig.rtree_name(t))
        bx0, by0, bx1, by1 = (f"t.{q(b)}" for b in BBOX_COLUMNS)
        cond = (
            f"t.rowid IN (SELECT id FROM {r} WHERE minx <= ? AND maxx >= ? AND miny <= ? AND maxy >= ?)"  # noqa: S608
            f" AND {bx0} <= ? AND {bx1} >= ? AND {by0} <= ? AND {by1} >= ?"
        )
        return cond, [maxx, minx, maxy, miny, maxx, minx, maxy, miny]

    # ------------------------------------------------------------------ write

    def write(self, table: str, frame: pd.DataFrame, *, mode: WriteMode = "append", newest: str | None = None) -> int:
        p = self._prepare_write(table, frame, mode, newest)
        if p is None:
            return 0
        t = p.table
        enc = p.encoded("sqlite")
        names = p.names
        data = [enc[n] for n in names]
        geoms = p.geoms
        if geoms is not None:
            b = geoms.bounds
            for i in range(4):
                col = b[:, i]
                nan = np.isnan(col)
                if nan.any():
                    obj = col.astype(object)
                    obj[nan] = None
                    data.append(obj.tolist())
                else:
                    data.append(col.tolist())
        cols_sql = self._columns_for_write(t, names)
        sql = f"INSERT INTO {q(t.name)} ({', '.join(cols_sql)}) VALUES ({', '.join(['?'] * len(cols_sql))})"  # noqa: S608
        if mode in ("upsert", "ignore"):
            sql += self._conflict_sql(t, cols_sql, mode, newest)
        spatial = t.geometry_column is not None

        def run(cur: sqlite3.Cursor) -> int:
            existing: int | None
            if mode == "replace":
                existing = 0
            elif p.n >= BULK_MIN_ROWS:
                existing = cur.execute(f"SELECT count(*) FROM {q(t.name)}").fetchone()[0]  # noqa: S608
            else:
                existing = None
            bulk = spatial and existing is not None and p.n * 6 >= existing
            # B-tree indexes are cheaper to build once, sorted, than to grow row by row
            rebuild_indexes = existing is not None and p.n >= BULK_MIN_ROWS and p.n >= existing
            if bulk:
                cur.execute(f"INSERT INTO {q(mig.RTREE_BULK_FLAG)} (tbl) VALUES (?)", (t.name,))  # noqa: S608
            if mode == "replace":
                cur.execute(f"DELETE FROM {q(t.name)}")  # noqa: S608
            if rebuild_indexes:
                for cols in t.indexes:
                    cur.execute(f"DROP INDEX IF EXISTS {q(mig.index_name(t, cols))}")
            written = p.n
            if p.n:
                cur.executemany(sql, zip(*data, strict=True))
                if mode == "ignore":  # rows inserted (sqlite3_changes: trigger writes not counted)
                    written = cur.rowcount
            if rebuild_indexes:
                for stmt in mig.indexes_sql(t, "sqlite", set(t.column_names)):
                    cur.execute(stmt)
            if bulk:
                self._rebuild_rtree(cur, t)
                cur.execute(f"DELETE FROM {q(mig.RTREE_BULK_FLAG)}")  # noqa: S608
            return written

        return self._run(run, write=True, savepoint=p.n < BULK_MIN_ROWS)

    def purge(self, tables: Sequence[str]) -> None:
        """Empty whole tables in one transaction, append-only history included (an administrative
        wipe, e.g. before regenerating the demo city; never used by ordinary writes)."""
        ts = [get_table(n) for n in tables]

        def run(cur: sqlite3.Cursor) -> None:
            for t in ts:
                if t.append_only:
                    cur.execute(f"DROP TRIGGER IF EXISTS {q(t.name + '_no_delete')}")
                if t.geometry_column is not None:
                    cur.execute(f"INSERT INTO {q(mig.RTREE_BULK_FLAG)} (tbl) VALUES (?)", (t.name,))  # noqa: S608
                    cur.execute(f"DELETE FROM {q(mig.rtree_name(t))}")  # noqa: S608
                cur.execute(f"DELETE FROM {q(t.name)}")  # noqa: S608
                if t.geometry_column is not None:
                    cur.execute(f"DELETE FROM {q(mig.RTREE_BULK_FLAG)}")  # noqa: S608
                if t.append_only:
                    for stmt in mig.append_only_sql(t, "sqlite"):
                        cur.execute(stmt)

        self._run(run, write=True)

    # ------------------------------------------------------------------ R*Tree bulk build

    def drop_partitions_before(self, table: str, before: Any) -> dict[str, int]:
        """SQLite has no partitions: nothing to drop (the caller deletes the rows)."""
        get_table(table)
        return {}

    def rebuild_spatial_index(self, table: str) -> None:
        """Rebuild a table's R*Tree from its rows (maintenance; writes keep it in sync)."""
        t = get_table(table)
        require_geometry(t, "a spatial index")
        self._run(lambda cur: self._rebuild_rtree(cur, t), write=True)

    def _rebuild_rtree(self, cur: sqlite3.Cursor, t: schema.Table) -> None:
        r = mig.rtree_name(t)
        row = cur.execute(f"SELECT length(data) FROM {q(r + '_node')} WHERE nodeno = 1").fetchone()  # noqa: S608
        node_size = int(row[0]) if row and row[0] else 1228
        for shadow in ("_node", "_rowid", "_parent"):
            cur.execute(f"DELETE FROM {q(r + shadow)}")  # noqa: S608
        bx0, by0, bx1, by1 = (q(b) for b in BBOX_COLUMNS)
        rows = cur.execute(
            f"SELECT rowid, {bx0}, {bx1}, {by0}, {by1} FROM {q(t.name)} WHERE {bx0} IS NOT NULL"  # noqa: S608
        ).fetchall()
        nodes, rowid_map, parent_map = pack_rtree(rows, node_size)
        rowid_map.sort()  # ascending keys append to the B-tree instead of splitting pages at random
        cur.executemany(f"INSERT INTO {q(r + '_node')} (nodeno, data) VALUES (?, ?)", nodes)  # noqa: S608
        cur.executemany(f"INSERT INTO {q(r + '_rowid')} (rowid, nodeno) VALUES (?, ?)", rowid_map)  # noqa: S608
        cur.executemany(f"INSERT INTO {q(r + '_parent')} (nodeno, parentnode) VALUES (?, ?)", parent_map)  # noqa: S608

    # ------------------------------------------------------------------ nearest

    def nearest(
        self, table: str, lon: float, lat: float, *, k: int = 5, where: Where | None = None
    ) -> pd.DataFrame:
        t = get_table(table)
        g = require_geometry(t, "nearest()")
        x, y = check_lonlat(lon, lat)
        if isinstance(k, bool) or not isinstance(k, int) or k < 0:
            raise StoreError(f"k must be a non-negative integer, got {k!r}")
        cols = get_columns(t, None)
        if k == 0:
            return empty_frame(cols, extra=[("distance_m", "real")])
        geom_pos = cols.index(g)
        not_null = f"t.{q(g.name)} IS NOT NULL"
        r = 0.002  # degrees of latitude, about 220 m
        while True:
            coslat = max(math.cos(math.radians(y)), 1e-6)
            dlon = min(r / coslat, 360.0)
            box = (max(x - dlon, -180.0), max(y - r, -90.0), min(x + dlon, 180.0), min(y + r, 90.0))
            whole = box == (-180.0, -90.0, 180.0, 90.0)
            frm, params = self._from_where(t, None if whole else box, where, extra=[not_null])
            n = self._count_sql(frm, params)
            if n >= k or whole:
                sql = f"SELECT {self._select_list(cols)}{frm}"
                rows = self._run(partial(_fetchall, sql=sql, params=params), write=False)
                wkb = np.array([row[geom_pos] for row in rows], dtype=object)
                geoms = shapely.from_wkb(wkb) if len(wkb) else np.array([], dtype=object)
                d = geodesic_distance_m(x, y, geoms)
                order = np.argsort(d, kind="stable")[:k]
                radius = _inscribed_radius_m(x, y, box, dlon, r)
                if whole or (len(order) >= k and d[order[-1]] <= radius):
                    picked = [(*rows[i], float(d[i])) for i in order]
                    return build_frame(cols, picked, extra=[("distance_m", "real")])
            r *= 4

    def _count_sql(self, frm: str, params: list[Any]) -> int:
        rows = self._run(lambda cur: _fetchall(cur, f"SELECT count(*){frm}", params), write=False)
        return int(rows[0][0])

    # ------------------------------------------------------------------ maintenance

    def integrity_check(self) -> list[str]:
        """``PRAGMA integrity_check`` plus ``rtreecheck`` on every R*Tree; ["ok"] when all is well."""
        out: list[str] = []
        with self._lock:
            for (msg,) in self.conn.execute("PRAGMA integrity_check"):
                if msg != "ok":
                    out.append(msg)
            for t in schema.TABLES.values():
                if t.geometry_column is None:
                    continue
                (msg,) = self.conn.execute("SELECT rtreecheck(?)", (mig.rtree_name(t),)).fetchone()
                if msg != "ok":
                    out.append(f"{mig.rtree_name(t)}: {msg}")
        return out or ["ok"]


def _inscribed_radius_m(lon: float, lat: float, box: BBox, dlon: float, dlat: float) -> float:
    """Radius (metres, conservative) of the largest circle around (lon, lat) inside ``box``;
    sides that lie on the edge of the world are no limit."""
    limits = [math.inf]
    if box[1] > -90.0 or box[3] < 90.0:
        limits.append(_EARTH_POLAR_RADIUS_M * math.radians(dlat))
    if box[0] > -180.0 or box[2] < 180.0:
        s = math.sin(math.radians(min(dlon, 90.0))) * math.cos(math.radians(min(abs(lat) + dlat, 90.0)))
        limits.append(_EARTH_POLAR_RADIUS_M * math.asin(min(1.0, s)))
    return 0.99 * min(limits)


# --------------------------------------------------------------------------- STR packing

_CELL = np.dtype([("id", ">i8"), ("minx", ">f4"), ("maxx", ">f4"), ("miny", ">f4"), ("maxy", ">f4")])


def _down(v: np.ndarray) -> np.ndarray:
    f = v.astype(np.float32)
    return np.where(f.astype(np.float64) > v, np.nextafter(f, np.float32(-np.inf)), f)


def _up(v: np.ndarray) -> np.ndarray:
    f = v.astype(np.float32)
    return np.where(f.astype(np.float64) < v, np.nextafter(f, np.float32(np.inf)), f)


def _str_groups(boxes: np.ndarray, fill: int) -> list[np.ndarray]:
    """Sort-Tile-Recursive: split entries (rows of minx, maxx, miny, maxy) into groups of <= fill."""
    n = len(boxes)
    if n <= fill:
        return [np.arange(n)]
    leaves = math.ceil(n / fill)
    slabs = math.ceil(math.sqrt(leaves))
    cx = (boxes[:, 0].astype(np.float64) + boxes[:, 1]) / 2
    cy = (boxes[:, 2].astype(np.float64) + boxes[:, 3]) / 2
    by_x = np.argsort(cx, kind="stable")
    groups: list[np.ndarray] = []
    for slab in np.array_split(by_x, slabs):
        if not len(slab):
            continue
        slab = slab[np.argsort(cy[slab], kind="stable")]
        groups.extend(np.array_split(slab, math.ceil(len(slab) / fill)))
    return groups


def pack_rtree(
    rows: list[tuple[Any, ...]], node_size: int
) -> tuple[list[tuple[int, bytes]], list[tuple[int, int]], list[tuple[int, int]]]:
    """Build the shadow-table contents of a 2-D SQLite R*Tree (``rtree(id, minx, maxx, miny, maxy)``)
    for the given (rowid, minx, maxx, miny, maxy) rows. Returns (node rows, rowid rows, parent rows)."""
    capacity = (node_size - 4) // _CELL.itemsize
    fill = max(2, capacity - capacity // 10)
    if not rows:
        return [(1, bytes(node_size))], [], []
    arr = np.asarray(rows, dtype=np.float64)
    ids = np.asarray([r[0] for r in rows], dtype=np.int64)
    boxes = np.empty((len(rows), 4), dtype=np.float32)
    boxes[:, 0] = _down(arr[:, 1])
    boxes[:, 1] = _up(arr[:, 2])
    boxes[:, 2] = _down(arr[:, 3])
    boxes[:, 3] = _up(arr[:, 4])

    # bottom-up: each level is a list of groups (index arrays into the level below)
    levels: list[list[np.ndarray]] = []
    level_boxes = [boxes]
    cur = boxes
    while True:
        groups = _str_groups(cur, fill)
        levels.append(groups)
        if len(groups) == 1:
            break
        nxt = np.empty((len(groups), 4), dtype=np.float32)
        for i, gidx in enumerate(groups):
            sub = cur[gidx]
            nxt[i] = (sub[:, 0].min(), sub[:, 1].max(), sub[:, 2].min(), sub[:, 3].max())
        level_boxes.append(nxt)
        cur = nxt
    depth = len(levels) - 1
    # number nodes top-down: root is 1
    nodenos: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * len(levels)
    next_no = 1
    for lvl in range(depth, -1, -1):
        count = len(levels[lvl])
        nodenos[lvl] = np.arange(next_no, next_no + count, dtype=np.int64)
        next_no += count
    node_rows: list[tuple[int, bytes]] = []
    rowid_rows: list[tuple[int, int]] = []
    parent_rows: list[tuple[int, int]] = []
    for lvl, groups in enumerate(levels):
        child_boxes = level_boxes[lvl]
        child_ids = ids if lvl == 0 else nodenos[lvl - 1]
        for i, gidx in enumerate(groups):
            nodeno = int(nodenos[lvl][i])
            cells = np.empty(len(gidx), dtype=_CELL)
            cells["id"] = child_ids[gidx]
            sub = child_boxes[gidx]
            cells["minx"], cells["maxx"], cells["miny"], cells["maxy"] = sub[:, 0], sub[:, 1], sub[:, 2], sub[:, 3]
            header = (depth if nodeno == 1 else 0).to_bytes(2, "big") + len(gidx).to_bytes(2, "big")
            body = header + cells.tobytes()
            node_rows.append((nodeno, body + bytes(node_size - len(body))))
            if lvl == 0:
                leaf = np.full(len(gidx), nodeno, dtype=np.int64)
                rowid_rows.extend(zip(ids[gidx].tolist(), leaf.tolist(), strict=True))
            else:
                parent_rows.extend((int(c), nodeno) for c in child_ids[gidx])
    return node_rows, rowid_rows, parent_rows


def sqlite_path_from_url(url: str) -> str:
    """``sqlite:///relative/path``, ``sqlite:////absolute/path``, ``sqlite:///:memory:`` or a bare path."""
    if url.startswith("sqlite://"):
        rest = url[len("sqlite://"):]
        if rest.startswith("/"):
            rest = rest[1:]
        path = rest or ":memory:"
    else:
        path = url
    if path != ":memory:" and not path.startswith("file:"):
        parent = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(parent, exist_ok=True)
        except OSError as e:
            raise StoreError(f"cannot create the folder for the SQLite database {path!r}: {e}") from e
    return path
