"""What both SQL stores do the same way; each subclass supplies the dialect-specific pieces.

Subclasses implement ``_run(fn, write=...)`` (run ``fn(cursor)`` under the store lock, in a
transaction for writes, mapping driver errors to StoreError/ConflictError), ``_bbox_condition``,
``write``, ``nearest``, ``migrate``, ``schema_version``, ``transaction`` and ``close``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from functools import partial
from typing import Any, TypeVar

import pandas as pd

from store import schema
from store._common import (
    BBOX_COLUMNS,
    Dialect,
    Prepared,
    bbox_params,
    build_frame,
    check_bbox,
    check_limit,
    duplicate_keys,
    get_column,
    get_columns,
    get_table,
    normalize_value,
    order_sql,
    parse_order_by,
    prepare_frame,
    q,
    require_geometry,
    where_parts,
)
from store.base import BBox, ConflictError, StoreError, Where, WriteMode

T = TypeVar("T")


class SQLStoreBase:
    url: str
    dialect: Dialect

    # ------------------------------------------------------------------ hooks

    @property
    def _ph(self) -> str:
        return "?" if self.dialect == "sqlite" else "%s"

    def _run(self, fn: Callable[[Any], T], *, write: bool) -> T:  # pragma: no cover - abstract
        raise NotImplementedError

    def _bbox_condition(self, t: schema.Table, bbox: BBox) -> tuple[str, list[Any]]:  # pragma: no cover
        raise NotImplementedError

    def _geometry_sql(self, value_ph: str) -> str:
        """How a geometry parameter is written in SQL (UPDATE/INSERT of one value)."""
        return value_ph

    # ------------------------------------------------------------------ SQL building

    def _from_where(
        self, t: schema.Table, bbox: BBox | None, where: Where | None, extra: Sequence[str] = ()
    ) -> tuple[str, list[Any]]:
        conds: list[str] = []
        params: list[Any] = []
        if bbox is not None:
            require_geometry(t, "bbox")
            cond, p = self._bbox_condition(t, check_bbox(bbox))
            conds.append(cond)
            params += p
        w, wp = where_parts(t, where, self.dialect)
        conds += w
        params += wp
        conds += list(extra)
        sql = f" FROM {q(t.name)} AS t"
        if conds:
            sql += " WHERE " + " AND ".join(conds)
        return sql, params

    @staticmethod
    def _select_list(cols: Sequence[schema.Column]) -> str:
        return ", ".join(f"t.{q(c.name)}" for c in cols)

    # ------------------------------------------------------------------ reads

    def read(
        self,
        table: str,
        *,
        bbox: BBox | None = None,
        where: Where | None = None,
        columns: Sequence[str] | None = None,
        order_by: Sequence[str] | None = None,
        limit: int | None = None,
        geometry: bool = True,
    ) -> pd.DataFrame:
        """See ``Store.read``. For spatial tables the geometry always comes back (as ``geometry``,
        after the asked columns) unless ``geometry=False``, which returns a plain DataFrame."""
        t = get_table(table)
        cols = _with_geometry(t, get_columns(t, columns), geometry)
        order = parse_order_by(t, order_by)
        lim = check_limit(limit)
        frm, params = self._from_where(t, bbox, where)
        sql = f"SELECT {self._select_list(cols)}{frm}{order_sql(order)}"
        if lim is not None:
            sql += f" LIMIT {self._ph}"
            params.append(lim)
        rows = self._run(lambda cur: _fetchall(cur, sql, params), write=False)
        return build_frame(cols, rows)

    def count(self, table: str, *, bbox: BBox | None = None, where: Where | None = None) -> int:
        t = get_table(table)
        frm, params = self._from_where(t, bbox, where)
        sql = f"SELECT count(*){frm}"
        rows = self._run(lambda cur: _fetchall(cur, sql, params), write=False)
        return int(rows[0][0])

    def group_count(
        self, table: str, by: Sequence[str], *, where: Where | None = None, bbox: BBox | None = None
    ) -> pd.DataFrame:
        t = get_table(table)
        cols = self._group_columns(t, by)
        frm, params = self._from_where(t, bbox, where)
        sql = self._group_sql(cols, "count(*)", frm)
        rows = self._run(lambda cur: _fetchall(cur, sql, params), write=False)
        return build_frame(cols, rows, extra=[("n", "bigint")])

    def group_sum(
        self, table: str, by: Sequence[str], column: str, *, where: Where | None = None
    ) -> pd.DataFrame:
        t = get_table(table)
        cols = self._group_columns(t, by)
        col = get_column(t, column)
        if col.type not in ("int", "bigint", "real", "bool"):
            raise StoreError(f"cannot sum {t.name}.{col.name}: it is {col.type}, not a number")
        ref = f"t.{q(col.name)}"
        if col.type == "bool" and self.dialect == "postgis":
            ref = f"{ref}::integer"
        if col.type == "real":
            agg, typ = f"coalesce(sum({ref}), 0.0)", "real"
        else:
            cast = "::bigint" if self.dialect == "postgis" else ""
            agg, typ = f"coalesce(sum({ref}), 0){cast}", "bigint"
        frm, params = self._from_where(t, None, where)
        sql = self._group_sql(cols, agg, frm)
        rows = self._run(lambda cur: _fetchall(cur, sql, params), write=False)
        return build_frame(cols, rows, extra=[("total", typ)])

    @staticmethod
    def _group_columns(t: schema.Table, by: Sequence[str]) -> list[schema.Column]:
        if isinstance(by, str):
            by = [by]
        cols = get_columns(t, by) if by else []
        for c in cols:
            if c.is_geometry:
                raise StoreError(f"cannot group by the geometry column {c.name!r}")
        return cols

    def _group_sql(self, cols: Sequence[schema.Column], agg: str, frm: str) -> str:
        names = ", ".join(f"t.{q(c.name)}" for c in cols)
        if not cols:
            return f"SELECT {agg}{frm}"
        order = ", ".join(f"t.{q(c.name)} ASC NULLS LAST" for c in cols)
        return f"SELECT {names}, {agg}{frm} GROUP BY {names} ORDER BY {order}"

    def iter_batches(
        self,
        table: str,
        *,
        batch_size: int = 50_000,
        columns: Sequence[str] | None = None,
        geometry: bool = True,
    ) -> Iterator[pd.DataFrame]:
        """See ``Store.iter_batches``: pages through the table in primary-key order (keyset
        pagination, no lock or transaction held between batches). Geometry as in ``read``."""
        t = get_table(table)
        cols = _with_geometry(t, get_columns(t, columns), geometry)
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise StoreError(f"batch_size must be a positive integer, got {batch_size!r}")
        pk = [t.column(k) for k in t.primary_key]
        if not pk:  # pragma: no cover - every table has a primary key
            raise StoreError(f"table {t.name!r} has no primary key to page on")
        fetch = cols + [c for c in pk if c not in cols]
        pk_pos = [fetch.index(c) for c in pk]
        sel = self._select_list(fetch)
        keys = ", ".join(f"t.{q(c.name)}" for c in pk)
        order = " ORDER BY " + keys
        ph = self._ph
        last: tuple[Any, ...] | None = None
        while True:
            if last is None:
                sql = f"SELECT {sel} FROM {q(t.name)} AS t{order} LIMIT {ph}"  # noqa: S608
                params: list[Any] = [batch_size]
            else:
                cmp = f"({keys}) > ({', '.join([ph] * len(pk))})" if len(pk) > 1 else f"{keys} > {ph}"
                sql = f"SELECT {sel} FROM {q(t.name)} AS t WHERE {cmp}{order} LIMIT {ph}"  # noqa: S608
                params = [*last, batch_size]
            rows = self._run(partial(_fetchall, sql=sql, params=params), write=False)
            if not rows:
                return
            last = tuple(rows[-1][i] for i in pk_pos)
            if len(fetch) != len(cols):
                rows = [r[: len(cols)] for r in rows]
            yield build_frame(cols, rows)
            if len(rows) < batch_size:
                return

    # ------------------------------------------------------------------ small writes

    def _normalized(
        self, t: schema.Table, values: Mapping[str, Any], verb: str
    ) -> tuple[list[tuple[schema.Column, Any, str]], dict[str, Any]]:
        """Each given column checked against the schema, once, with its database value and
        placeholder; and the values as given (for the SQLite bbox columns and hooks)."""
        if not isinstance(values, Mapping) or not values:
            raise StoreError(f"{verb}() needs at least one column")
        out: list[tuple[schema.Column, Any, str]] = []
        given: dict[str, Any] = {}
        for name, value in values.items():
            col = get_column(t, name)
            if col.name in given:
                raise StoreError(f"column {col.name!r} given twice")
            given[col.name] = value
            v = normalize_value(col, value, self.dialect)
            ph = self._geometry_sql(self._ph) if col.is_geometry and v is not None else self._ph
            out.append((col, v, ph))
        return out, given

    def _set_list(self, t: schema.Table, values: Mapping[str, Any]) -> tuple[list[str], list[Any]]:
        cols, given = self._normalized(t, values, "update")
        sets = [f"{q(col.name)} = {ph}" for col, _, ph in cols]
        params = [v for _, v, _ in cols]
        if self.dialect == "sqlite":
            for b, v in bbox_params(t, given).items():
                sets.append(f"{q(b)} = ?")
                params.append(v)
        return sets, params

    def update(self, table: str, key: Mapping[str, Any], values: Mapping[str, Any]) -> int:
        t = get_table(table)
        if not key:
            raise StoreError("update() needs a key; refusing to update every row of the table")
        sets, params = self._set_list(t, values)
        conds, wparams = where_parts(t, key, self.dialect, alias="")
        sql = f"UPDATE {q(t.name)} SET {', '.join(sets)} WHERE {' AND '.join(conds)}"  # noqa: S608
        return self._run(lambda cur: _rowcount(cur, sql, params + wparams), write=True)

    def delete(self, table: str, where: Where) -> int:
        t = get_table(table)
        if not where:
            raise StoreError(
                "delete() needs a where; to empty a table write an empty frame with mode='replace'"
            )
        conds, params = where_parts(t, where, self.dialect, alias="")
        sql = f"DELETE FROM {q(t.name)} WHERE {' AND '.join(conds)}"  # noqa: S608
        return self._run(lambda cur: _rowcount(cur, sql, params), write=True)

    def insert(self, table: str, values: Mapping[str, Any]) -> Any:
        """Insert one row and return its primary key (the generated id for autoincrement tables;
        a tuple for composite keys). Not part of the Store protocol's original surface: an addition
        for services that need the id of what they just created."""
        t = get_table(table)
        cols, given = self._normalized(t, values, "insert")
        kept = [(col, v, ph) for col, v, ph in cols if not (col.autoincrement and v is None)]
        names = [q(col.name) for col, _, _ in kept]
        phs = [ph for _, _, ph in kept]
        params = [v for _, v, _ in kept]
        missing = [c.name for c in t.columns if c.primary_key and not c.autoincrement and c.name not in given]
        if missing:
            raise StoreError(f"insert into {t.name!r} needs the primary key column(s) {missing}")
        if self.dialect == "sqlite":
            for b, v in bbox_params(t, given).items():
                names.append(q(b))
                phs.append("?")
                params.append(v)
        if t.partition_by:
            self.ensure_partitions(t.name, [given.get(t.partition_by)])
        pk = ", ".join(q(k) for k in t.primary_key)
        sql = f"INSERT INTO {q(t.name)} ({', '.join(names)}) VALUES ({', '.join(phs)}) RETURNING {pk}"  # noqa: S608
        row = self._run(lambda cur: _fetchall(cur, sql, params), write=True)[0]
        self._after_insert(t, given)
        return row[0] if len(row) == 1 else tuple(row)

    def ensure_partitions(self, table: str, instants: Any) -> list[str]:
        """PostGIS creates day partitions before rows go into them; SQLite has none."""
        return []

    def _after_insert(self, t: schema.Table, given: Mapping[str, Any]) -> None:
        """Hook: PostGIS moves the identity sequence past explicit ids."""

    def migrations_applied(self) -> pd.DataFrame:
        """The ``schema_migrations`` table: version and applied_at (UTC), oldest first."""
        sql = "SELECT version, applied_at FROM schema_migrations ORDER BY version"
        rows = self._run(lambda cur: _fetchall(cur, sql, []), write=False)
        return build_frame([schema.Column("version", "int"), schema.Column("applied_at", "timestamp")], rows)

    # ------------------------------------------------------------------ settings

    def get_setting(self, key: str, default: str | None = None) -> str | None:
        if not isinstance(key, str):
            raise StoreError(f"setting keys are strings, got {key!r}")
        sql = f'SELECT "value" FROM settings WHERE "key" = {self._ph}'  # noqa: S608
        rows = self._run(lambda cur: _fetchall(cur, sql, [key]), write=False)
        if not rows or rows[0][0] is None:
            return default
        return str(rows[0][0])

    def set_setting(self, key: str, value: str) -> None:
        if not isinstance(key, str) or not key:
            raise StoreError(f"setting keys are non-empty strings, got {key!r}")
        if value is not None and not isinstance(value, str):
            raise StoreError(f"setting values are strings, got {type(value).__name__}")
        ph = self._ph
        sql = (
            f'INSERT INTO settings ("key", "value") VALUES ({ph}, {ph}) '  # noqa: S608
            'ON CONFLICT ("key") DO UPDATE SET "value" = excluded."value"'
        )
        self._run(lambda cur: _rowcount(cur, sql, [key, value]), write=True)

    # ------------------------------------------------------------------ helpers for subclasses

    @staticmethod
    def _prepare_write(table: str, frame: pd.DataFrame, mode: WriteMode, newest: str | None = None) -> Prepared | None:
        """Checks shared by both stores' write(): the frame against the schema, upsert keys unique,
        ``newest`` only with upsert and present in the frame. None when there is nothing to do (no
        rows, and not a replace)."""
        p = prepare_frame(table, frame, mode)
        if newest is not None:
            if mode != "upsert":
                raise StoreError(f"newest= goes with mode='upsert', not {mode!r}")
            col = get_column(p.table, newest)
            if col.name not in p.names or col.primary_key:
                raise StoreError(f"newest={newest!r} must be a non-key column of the frame")
        if mode == "upsert" and duplicate_keys(p):
            raise ConflictError(
                f"the frame has the same primary key more than once; nothing written to {p.table.name!r}"
            )
        if p.n == 0 and mode != "replace":
            return None
        return p

    @staticmethod
    def _conflict_sql(t: schema.Table, cols_sql: Sequence[str], mode: WriteMode, newest: str | None) -> str:
        """The ON CONFLICT clause of an upsert/ignore insert (``excluded`` works in both dialects)."""
        pk = ", ".join(q(k) for k in t.primary_key)
        updates = [c for c in cols_sql if c.strip('"') not in t.primary_key]
        if mode == "ignore" or not updates:
            return f" ON CONFLICT ({pk}) DO NOTHING"
        sql = f" ON CONFLICT ({pk}) DO UPDATE SET " + ", ".join(f"{c} = excluded.{c}" for c in updates)
        if newest is not None:
            sql += f" WHERE excluded.{q(newest)} > {q(t.name)}.{q(newest)} OR {q(t.name)}.{q(newest)} IS NULL"
        return sql

    def _columns_for_write(self, t: schema.Table, names: Sequence[str]) -> list[str]:
        out = [q(n) for n in names]
        if self.dialect == "sqlite" and t.geometry_column is not None and t.geometry_column.name in names:
            out += [q(b) for b in BBOX_COLUMNS]
        return out

    def __enter__(self) -> SQLStoreBase:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.url}>"


def _with_geometry(t: schema.Table, cols: list[schema.Column], geometry: bool) -> list[schema.Column]:
    g = t.geometry_column
    if g is None:
        return cols
    if not geometry:
        rest = [c for c in cols if not c.is_geometry]
        if not rest:
            raise StoreError(f"no columns asked of table {t.name!r}")
        return rest
    return cols if g in cols else [*cols, g]


def _fetchall(cur: Any, sql: str, params: Sequence[Any]) -> list[tuple[Any, ...]]:
    cur.execute(sql, list(params))
    return list(cur.fetchall())


def _rowcount(cur: Any, sql: str, params: Sequence[Any]) -> int:
    cur.execute(sql, list(params))
    return int(cur.rowcount)
