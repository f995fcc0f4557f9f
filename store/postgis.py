"""The production store: PostgreSQL + PostGIS through psycopg2.

Geometry columns are ``geometry(KIND, 4326)`` with GiST indexes; writes go through COPY (geometry
as hex EWKB with SRID 4326), upserts through a staging temp table and INSERT ... ON CONFLICT.
Bounding-box and nearest-neighbour queries run in the database.

One connection per store, shared by all threads under an RLock. Between calls the server may
drop the connection (restart, idle timeout): the next call reconnects and retries once, unless it
is inside ``transaction()``, where retrying could lose earlier writes, so it fails with StoreError.
"""

from __future__ import annotations

import io
import math
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from functools import partial
from typing import Any, TypeVar

import numpy as np
import pandas as pd

from store import migrations as mig
from store import schema
from store._common import (
    Dialect,
    build_frame,
    check_lonlat,
    empty_frame,
    get_columns,
    get_table,
    q,
    require_geometry,
)
from store._sqlbase import SQLStoreBase, _fetchall
from store.base import BBox, ConflictError, StoreError, Where, WriteMode

try:
    import psycopg2
    import psycopg2.errors
    import psycopg2.extensions
except ImportError:  # pragma: no cover - psycopg2-binary is a runtime requirement
    psycopg2 = None

T = TypeVar("T")

COPY_CHUNK_ROWS = 200_000
BULK_MIN_ROWS = 20_000
_MIGRATION_LOCK_KEY = 7_042_113_001  # pg_advisory_xact_lock key serialising concurrent migrate()
_PARTITION_LOCK_KEY = 7_042_113_002  # ... serialising the creation of day partitions
_EARTH_POLAR_RADIUS_M = 6_356_752.0
_COPY_ESCAPES = str.maketrans({"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"})


def redact(url: str) -> str:
    """The url without its password, for messages."""
    return re.sub(r"(://[^:/@]+:)[^@]*@", r"\1***@", url)


def _copy_column(values: list[Any], col: schema.Column) -> list[str]:
    """Values (already encoded for postgis) -> COPY text-format fields."""
    typ = col.type
    if col.is_geometry or typ == "timestamp":
        return ["\\N" if v is None else v for v in values]
    if typ == "text":
        out = []
        for v in values:
            if v is None:
                out.append("\\N")
            elif "\\" in v or "\n" in v or "\r" in v or "\t" in v:
                out.append(v.translate(_COPY_ESCAPES))
            else:
                out.append(v)
        return out
    if typ == "bool":
        return ["\\N" if v is None else ("t" if v else "f") for v in values]
    if typ == "real":
        return ["\\N" if v is None else repr(v) for v in values]
    return ["\\N" if v is None else str(v) for v in values]


class PostGISStore(SQLStoreBase):
    dialect: Dialect = "postgis"

    def __init__(self, url: str, *, migrate: bool = True, connect_timeout: int = 10) -> None:
        if psycopg2 is None:  # pragma: no cover
            raise StoreError("psycopg2 is not installed; `pip install psycopg2-binary` to use PostGIS")
        self.url = url
        self._connect_timeout = connect_timeout
        self._lock = threading.RLock()
        self._depth = 0
        self._closed = False
        self._conn: Any = None
        self._partitions: set[str] = set()  # day partitions known to exist (committed)
        self._connect()
        self._ensure_postgis()
        if migrate:
            self.migrate()

    # ------------------------------------------------------------------ connection

    def _connect(self) -> Any:
        try:
            conn = psycopg2.connect(self.url, connect_timeout=self._connect_timeout, application_name="gridconsole")
        except psycopg2.Error as e:
            raise StoreError(f"cannot connect to PostgreSQL at {redact(self.url)}: {str(e).strip()}") from e
        ts_text = psycopg2.extensions.new_type((1184, 1114), "GC_TIMESTAMP_TEXT", lambda v, cur: v)
        psycopg2.extensions.register_type(ts_text, conn)
        with conn.cursor() as cur:
            cur.execute("SET TIME ZONE 'UTC'")
        conn.commit()
        self._conn = conn
        return conn

    def _ensure_postgis(self) -> None:
        conn = self._conn
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT 1 FROM pg_extension WHERE extname = 'postgis'")
                if cur.fetchone() is None:
                    cur.execute("CREATE EXTENSION IF NOT EXISTS postgis")
            conn.commit()
        except psycopg2.Error as e:
            conn.rollback()
            raise StoreError(
                f"the PostGIS extension is not available in {redact(self.url)}: {str(e).strip()}. "
                "Install it on the server (Debian/Ubuntu: apt-get install postgresql-<major>-postgis-3) "
                "and make sure the user may CREATE EXTENSION postgis (or create it as a superuser)."
            ) from e

    @property
    def conn(self) -> Any:
        if self._conn is None:
            raise StoreError(f"the store {redact(self.url)} is closed")
        return self._conn

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None
            self._closed = True

    def __repr__(self) -> str:
        return f"<PostGISStore {redact(self.url)}>"

    def _map_error(self, e: Exception) -> StoreError:
        msg = str(e).strip()
        pgcode = getattr(e, "pgcode", None)
        if pgcode == "23505" or pgcode == "21000":  # unique_violation, cardinality_violation
            return ConflictError(f"{msg} (nothing was written)")
        if pgcode in ("40001", "40P01", "55P03"):  # serialization failure, deadlock, lock not available
            return ConflictError(f"the write lost a race with another one ({msg}); nothing was written, try again")
        return StoreError(f"PostgreSQL error: {msg}")

    @staticmethod
    def _is_disconnect(e: Exception, conn: Any) -> bool:
        return isinstance(e, psycopg2.OperationalError | psycopg2.InterfaceError) and bool(conn.closed)

    # ------------------------------------------------------------------ transactions

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        """Outermost: the connection's transaction, committed at the end; nested: a SAVEPOINT."""
        with self._lock:
            if self._closed:
                raise StoreError(f"the store {redact(self.url)} is closed")
            depth = self._depth
            if depth == 0:
                self._ping()
            conn = self.conn
            cur = conn.cursor()
            try:
                if depth > 0:
                    cur.execute(f"SAVEPOINT gc_sp{depth}")
            except psycopg2.Error as e:
                raise self._map_error(e) from e
            self._depth = depth + 1
            try:
                yield cur
            except BaseException as exc:
                self._depth = depth
                try:
                    if depth == 0:
                        conn.rollback()
                    else:
                        cur.execute(f"ROLLBACK TO SAVEPOINT gc_sp{depth}")
                        cur.execute(f"RELEASE SAVEPOINT gc_sp{depth}")
                except psycopg2.Error:
                    pass
                if isinstance(exc, psycopg2.Error):
                    if self._is_disconnect(exc, conn):
                        self._conn = None
                        raise StoreError(
                            f"lost the connection to {redact(self.url)} inside a transaction; nothing was written"
                        ) from exc
                    raise self._map_error(exc) from exc
                raise
            else:
                self._depth = depth
                try:
                    if depth == 0:
                        conn.commit()
                    else:
                        cur.execute(f"RELEASE SAVEPOINT gc_sp{depth}")
                except psycopg2.Error as e:
                    if depth == 0 and not conn.closed:
                        conn.rollback()
                    if self._is_disconnect(e, conn):
                        self._conn = None
                    raise self._map_error(e) from e
            finally:
                if not cur.closed:
                    try:
                        cur.close()
                    except psycopg2.Error:  # pragma: no cover
                        pass

    def _ping(self) -> None:
        """Before an outermost transaction: reconnect if the server dropped us since the last call."""
        if self._conn is None or self._conn.closed:
            self._connect()
            return
        try:
            with self._conn.cursor() as cur:
                cur.execute("SELECT 1")
            self._conn.rollback()
        except (psycopg2.OperationalError, psycopg2.InterfaceError):
            if not self._conn.closed:
                raise
            self._connect()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes in the block commit together at its end, or none if an exception escapes.
        Nested blocks join the outer transaction (as savepoints: a nested block that fails undoes
        only its own writes if the exception is caught inside the outer block)."""
        with self._tx():
            yield

    def _run(self, fn: Callable[[Any], T], *, write: bool) -> T:
        with self._lock:
            if self._depth > 0:
                with self._tx() as cur:
                    return fn(cur)
            for attempt in (0, 1):
                if self._closed:
                    raise StoreError(f"the store {redact(self.url)} is closed")
                if self._conn is None or self._conn.closed:
                    self._connect()
                conn = self._conn
                cur = conn.cursor()
                try:
                    result = fn(cur)
                except psycopg2.Error as e:
                    if self._is_disconnect(e, conn):
                        self._conn = None
                        if attempt == 0:
                            continue  # the server dropped the connection: reconnect and retry once
                        raise StoreError(f"lost the connection to {redact(self.url)}: {str(e).strip()}") from e
                    conn.rollback()
                    raise self._map_error(e) from e
                except BaseException:
                    if not conn.closed:
                        conn.rollback()
                    raise
                finally:
                    if not cur.closed:
                        cur.close()
                try:
                    conn.commit()
                except psycopg2.Error as e:
                    if self._is_disconnect(e, conn):
                        self._conn = None
                    # whether a write committed is unknown when the commit itself fails: no retry
                    raise self._map_error(e) from e
                return result
            raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ migrations

    def migrate(self) -> list[int]:
        mig.check_migrations()
        applied: list[int] = []

        def ensure_table(cur: Any) -> None:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK_KEY,))
            cur.execute(mig.MIGRATIONS_TABLE_SQL["postgis"])

        self._run(ensure_table, write=True)
        for m in mig.MIGRATIONS:

            def apply(cur: Any, m: mig.Migration = m) -> bool:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK_KEY,))
                cur.execute("SELECT 1 FROM schema_migrations WHERE version = %s", (m.version,))
                if cur.fetchone():
                    return False
                for stmt in m.sql("postgis"):
                    cur.execute(stmt)
                cur.execute("INSERT INTO schema_migrations (version, applied_at) VALUES (%s, now())", (m.version,))
                return True

            if self._run(apply, write=True):
                applied.append(m.version)
        return applied

    def schema_version(self) -> int:
        rows = self._run(lambda cur: _fetchall(cur, "SELECT max(version) FROM schema_migrations", []), write=False)
        return int(rows[0][0] or 0)

    # ------------------------------------------------------------------ SQL pieces

    def _geometry_sql(self, value_ph: str) -> str:
        return f"ST_GeomFromEWKB(decode({value_ph}, 'hex'))"

    def _bbox_condition(self, t: schema.Table, bbox: BBox) -> tuple[str, list[Any]]:
        g = require_geometry(t, "bbox")
        minx, miny, maxx, maxy = bbox
        ref = f"t.{q(g.name)}"
        # && compares float4 boxes (rounded outwards); the ST_XMin... tests make the answer exact
        cond = (
            f"{ref} && ST_MakeEnvelope(%s, %s, %s, %s, {schema.SRID})"
            f" AND ST_XMin({ref}) <= %s AND ST_XMax({ref}) >= %s AND ST_YMin({ref}) <= %s AND ST_YMax({ref}) >= %s"
        )
        return cond, [minx, miny, maxx, maxy, maxx, minx, maxy, miny]

    # ------------------------------------------------------------------ write

    def write(self, table: str, frame: pd.DataFrame, *, mode: WriteMode = "append", newest: str | None = None) -> int:
        p = self._prepare_write(table, frame, mode, newest)
        if p is None:
            return 0
        t = p.table
        if t.partition_by and p.n:
            self.ensure_partitions(table, p.values[t.partition_by])
        enc = p.encoded("postgis")
        fields = [_copy_column(enc[c.name], c) for c in p.columns]
        names = ", ".join(q(n) for n in p.names)
        explicit_ids = any(c.autoincrement for c in p.columns)

        def copy_into(cur: Any, target: str) -> None:
            for start in range(0, p.n, COPY_CHUNK_ROWS):
                stop = min(start + COPY_CHUNK_ROWS, p.n)
                lines = ["\t".join(row) for row in zip(*(f[start:stop] for f in fields), strict=True)]
                buf = io.StringIO("\n".join(lines) + "\n")
                cur.copy_expert(f"COPY {target} ({names}) FROM STDIN", buf)

        def run(cur: Any) -> int:
            existing: int | None = None
            if mode == "replace" or p.n >= BULK_MIN_ROWS:
                cur.execute(
                    f"SELECT count(*) FROM (SELECT 1 FROM {q(t.name)} LIMIT %s) AS s", (max(p.n, BULK_MIN_ROWS) + 1,)  # noqa: S608
                )
                existing = int(cur.fetchone()[0])
            if mode == "replace":
                # TRUNCATE leaves no dead rows behind but locks out readers until commit: only for big tables
                # (never on append-only tables: their rows may not be deleted, and the DELETE's row
                # triggers refuse only when there are rows, as on SQLite)
                big = not t.append_only and existing is not None and (existing > BULK_MIN_ROWS or p.n >= BULK_MIN_ROWS)
                cur.execute(f"{'TRUNCATE' if big else 'DELETE FROM'} {q(t.name)}")
                existing = 0
            # a load that dominates the table: build the secondary indexes once, afterwards
            rebuild = existing is not None and p.n >= BULK_MIN_ROWS and p.n >= existing
            if rebuild:
                for name in self._index_names(t):
                    cur.execute(f"DROP INDEX IF EXISTS {q(name)}")
            written = p.n
            if p.n:
                if mode in ("upsert", "ignore"):
                    cur.execute("DROP TABLE IF EXISTS gc_stage")
                    cur.execute(
                        f"CREATE TEMP TABLE gc_stage ON COMMIT DROP AS SELECT {names} FROM {q(t.name)} WITH NO DATA"  # noqa: S608
                    )
                    copy_into(cur, "gc_stage")
                    conflict = self._conflict_sql(t, [q(n) for n in p.names], mode, newest)
                    cur.execute(f"INSERT INTO {q(t.name)} ({names}) SELECT {names} FROM gc_stage{conflict}")  # noqa: S608
                    if mode == "ignore":
                        written = cur.rowcount
                    cur.execute("DROP TABLE gc_stage")
                else:
                    copy_into(cur, q(t.name))
            if rebuild:
                for stmt in mig.indexes_sql(t, "postgis", set(t.column_names)):
                    cur.execute(stmt)
                if t.geometry_column is not None:
                    for stmt in mig.spatial_index_sql(t, "postgis"):
                        cur.execute(stmt)
                cur.execute(f"ANALYZE {q(t.name)}")
            if explicit_ids or mode == "replace":
                self._sync_identity(cur, t)
            return written

        return self._run(run, write=True)

    def ensure_partitions(self, table: str, instants: Any) -> list[str]:
        """Create the day partitions of a partitioned table that rows at ``instants`` (datetime64
        or timestamps, UTC) fall into; return the names created or confirmed. Runs in its own
        short transaction unless called inside one (then it commits with it)."""
        t = get_table(table)
        if not t.partition_by:
            return []
        stamps = pd.to_datetime(pd.Series(np.asarray(instants)), utc=True).dropna()
        days = sorted({d.date() for d in stamps.dt.floor("D")})
        todo = [d for d in days if mig.partition_name(t, d) not in self._partitions]
        if not todo:
            return []

        def run(cur: Any) -> None:
            # serialise creators: two sessions creating the same partition would collide
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_PARTITION_LOCK_KEY,))
            for d in todo:
                cur.execute(mig.create_partition_sql(t, d))

        nested = self._depth > 0
        self._run(run, write=True)
        names = [mig.partition_name(t, d) for d in todo]
        if not nested:  # inside a transaction the partitions exist only once it commits
            self._partitions.update(names)
        return names

    def drop_partitions_before(self, table: str, before: Any) -> dict[str, int]:
        """Drop the day partitions of ``table`` whose whole day lies before ``before`` (UTC), one
        short transaction each (serialised with partition creators by the advisory lock); return
        ``{partition name: rows it held}``. Only partitions named as this store names them
        (``<table>_pYYYYMMDD``) are considered."""
        t = get_table(table)
        if not t.partition_by:
            return {}
        cutoff = pd.Timestamp(before)
        cutoff = cutoff.tz_localize("UTC") if cutoff.tzinfo is None else cutoff.tz_convert("UTC")
        pattern = re.compile(rf"{re.escape(t.name)}_p(\d{{8}})")
        sql = (
            "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid"
            " JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace"
            " WHERE p.relname = %s AND n.nspname = current_schema() ORDER BY c.relname"
        )
        names = [r[0] for r in self._run(lambda cur: _fetchall(cur, sql, [t.name]), write=False)]
        dropped: dict[str, int] = {}
        for name in names:
            m = pattern.fullmatch(name)
            if m is None:
                continue
            end = pd.Timestamp(m.group(1), tz="UTC") + pd.Timedelta(days=1)
            if end > cutoff:
                continue

            def run(cur: Any, name: str = name) -> int:
                cur.execute("SELECT pg_advisory_xact_lock(%s)", (_PARTITION_LOCK_KEY,))
                cur.execute(f"SELECT count(*) FROM {q(name)}")  # noqa: S608 - a name read from the catalogue
                n = int(cur.fetchone()[0])
                cur.execute(f"DROP TABLE IF EXISTS {q(name)}")
                return n

            dropped[name] = self._run(run, write=True)
            self._partitions.discard(name)
        return dropped

    def purge(self, tables: Sequence[str]) -> None:
        """Empty whole tables in one transaction, append-only history included (an administrative
        wipe, e.g. before regenerating the demo city; never used by ordinary writes)."""
        ts = [get_table(n) for n in tables]

        def run(cur: Any) -> None:
            for t in ts:
                if t.append_only:
                    cur.execute(f"ALTER TABLE {q(t.name)} DISABLE TRIGGER {q(t.name + '_no_truncate')}")
                cur.execute(f"TRUNCATE {q(t.name)} RESTART IDENTITY")
                if t.append_only:
                    cur.execute(f"ALTER TABLE {q(t.name)} ENABLE TRIGGER {q(t.name + '_no_truncate')}")

        self._run(run, write=True)

    @staticmethod
    def _index_names(t: schema.Table) -> list[str]:
        names = [mig.index_name(t, cols) for cols in t.indexes]
        if t.geometry_column is not None:
            names.append(mig.gist_index_name(t))
        return names

    def _sync_identity(self, cur: Any, t: schema.Table) -> None:
        """After explicit ids were written, move the identity sequence past the largest one."""
        for c in t.columns:
            if c.autoincrement:
                cur.execute(
                    f"SELECT setval(pg_get_serial_sequence(%s, %s), "  # noqa: S608
                    f"COALESCE((SELECT max({q(c.name)}) FROM {q(t.name)}), 0) + 1, false)",
                    (q(t.name), c.name),
                )

    def _after_insert(self, t: schema.Table, given: Mapping[str, Any]) -> None:
        if any(c.autoincrement and given.get(c.name) is not None for c in t.columns):
            self._run(lambda cur: self._sync_identity(cur, t), write=True)

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
        extra = [("distance_m", "real")]
        if k == 0:
            return empty_frame(cols, extra=extra)
        ref = f"t.{q(g.name)}"
        pt = f"ST_SetSRID(ST_MakePoint(%s, %s), {schema.SRID})"
        frm, wparams = self._from_where(t, None, where, extra=[f"{ref} IS NOT NULL"])
        # The index orders by planar distance in degrees; geodesic order can differ, so fetch more
        # candidates than asked and widen until no row left out can be nearer (see below).
        m = max(4 * k, k + 16)
        while True:
            sql = (
                f"SELECT {self._select_list(cols)}, ST_Distance({ref}::geography, {pt}::geography) AS distance_m,"
                f" {ref} <-> {pt} AS planar{frm} ORDER BY {ref} <-> {pt} LIMIT %s"
            )
            params = [x, y, x, y, *wparams, x, y, m]
            rows = self._run(partial(_fetchall, sql=sql, params=params), write=False)
            rows.sort(key=lambda r: r[-2])
            if len(rows) < m:
                break
            planar_max = max(r[-1] for r in rows)
            # a row not fetched is >= planar_max degrees away; in metres at least:
            lat_far = min(abs(y) + planar_max, 90.0)
            bound = 0.99 * _EARTH_POLAR_RADIUS_M * math.radians(planar_max) * math.cos(math.radians(lat_far))
            if rows[k - 1][-2] <= bound:
                break
            m *= 4
        picked = [r[:-1] for r in rows[:k]]
        return build_frame(cols, picked, extra=extra)
