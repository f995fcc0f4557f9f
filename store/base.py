"""The seam between the application and its database.

Everything above this package (services, the console, the CLI) talks to a ``Store``; nothing above
it writes SQL. Two implementations pass the same contract tests (``tests/store/test_contract.py``):

- ``store.sqlite.SQLiteStore``: the embedded default (standard-library ``sqlite3``), geometry as WKB
  with an R*Tree per spatial table for bounding-box queries; exact predicates are left to shapely.
- ``store.postgis.PostGISStore``: production (psycopg2), ``geometry(…, 4326)`` columns with GiST
  indexes; bounding-box and nearest queries are pushed into the database.

A store is opened with ``store.open_store(url)`` and passed in to whatever needs it.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import pandas as pd

BBox = tuple[float, float, float, float]  # (min lon, min lat, max lon, max lat) in EPSG:4326
WriteMode = Literal["append", "replace", "upsert", "ignore"]
Where = Mapping[str, Any]  # column -> value, list/tuple of values (IN), or Range


@dataclass(frozen=True)
class Range:
    """A ``where`` value: ``lo <= column < hi`` (half-open; a None bound is open). Timestamps,
    numbers or text, compared in the column's type: ``where={"ts": Range(start, end)}``."""

    lo: Any = None
    hi: Any = None


class StoreError(Exception):
    """A store operation failed; the message is meant for a person."""


class ConflictError(StoreError):
    """A write lost a race or broke a uniqueness rule; nothing was written."""


class Store(Protocol):
    url: str
    dialect: Literal["sqlite", "postgis"]

    def close(self) -> None: ...

    def migrate(self) -> list[int]:
        """Apply pending migrations; return the versions applied (empty when up to date)."""
        ...

    def schema_version(self) -> int: ...

    def transaction(self) -> AbstractContextManager[None]:
        """Group writes: all of them are committed at the end, or none if an exception escapes.
        Nested use joins the outer transaction (as a savepoint). A refused small write caught inside
        the block leaves the rest of the transaction intact; on SQLite a failed *bulk* write (5,000
        rows or more) makes the whole transaction roll back at its end with StoreError, because
        savepoints around bulk writes make SQLite quadratic."""
        ...

    def write(self, table: str, frame: pd.DataFrame, *, mode: WriteMode = "append", newest: str | None = None) -> int:
        """Write rows. ``frame`` columns must be a subset of the table's columns; a GeoDataFrame's
        active geometry goes to the table's geometry column and must be in EPSG:4326 (a frame with
        no CRS, or another CRS, is refused with StoreError). ``replace`` deletes every row of the
        table first (same transaction); ``upsert`` updates rows whose primary key exists -- with
        ``newest="ts"`` only when the incoming row's ``ts`` is greater (late arrivals never move a
        row back in time); ``ignore`` appends and skips rows whose primary key exists (idempotent
        re-sends). Autoincrement keys absent from the frame are generated. Returns the number of
        rows written (for ``ignore``, the rows actually inserted)."""
        ...

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
        """Rows of a table. Spatial tables come back as a GeoDataFrame in EPSG:4326 with its
        geometry column named ``geometry``; ``bbox`` keeps rows whose geometry's bounding box
        intersects it (index-assisted). ``where`` values are equality tests, lists/tuples are IN,
        ``None`` is IS NULL. Column names are checked against the schema. timestamps are
        ``datetime64[ns, UTC]``, bools are bool. ``geometry=False`` leaves a spatial table's geometry
        out (a plain DataFrame: cheaper when only attributes are needed)."""
        ...

    def count(self, table: str, *, bbox: BBox | None = None, where: Where | None = None) -> int: ...

    def update(self, table: str, key: Mapping[str, Any], values: Mapping[str, Any]) -> int:
        """Update the row(s) matching ``key`` (equality) with ``values``; return rows changed."""
        ...

    def delete(self, table: str, where: Where) -> int: ...

    def group_count(
        self, table: str, by: Sequence[str], *, where: Where | None = None, bbox: BBox | None = None
    ) -> pd.DataFrame:
        """``SELECT by..., count(*) AS n ... GROUP BY by...`` as a frame."""
        ...

    def group_sum(
        self, table: str, by: Sequence[str], column: str, *, where: Where | None = None
    ) -> pd.DataFrame:
        """``SELECT by..., sum(column) AS total ... GROUP BY by...`` as a frame."""
        ...

    def nearest(
        self, table: str, lon: float, lat: float, *, k: int = 5, where: Where | None = None
    ) -> pd.DataFrame:
        """The k rows whose geometry is nearest to (lon, lat), nearest first, with a
        ``distance_m`` column (geodesic metres)."""
        ...

    def purge(self, tables: Sequence[str]) -> None:
        """Empty whole tables in one transaction, append-only history included. An administrative
        wipe (regenerating the demo city); ordinary code never deletes history."""
        ...

    def insert(self, table: str, values: Mapping[str, Any]) -> Any:
        """Insert one row; return its primary key (the generated id for autoincrement tables)."""
        ...

    def drop_partitions_before(self, table: str, before: Any) -> dict[str, int]:
        """Drop the day partitions of a partitioned table (``positions`` on PostGIS) that lie
        entirely before the UTC instant ``before``, one short transaction each; return the rows each
        held, ``{partition name: rows}``. Far cheaper than deleting the same rows; the rows of the
        partition that straddles ``before`` are the caller's to delete. SQLite (no partitions) and
        tables that are not partitioned: nothing dropped, ``{}``. A row later written into a
        dropped day gets a new partition (in this process; see services.retention for why others
        never write that far back)."""
        ...

    def get_setting(self, key: str, default: str | None = None) -> str | None: ...

    def set_setting(self, key: str, value: str) -> None: ...

    def iter_batches(
        self, table: str, *, batch_size: int = 50_000, columns: Sequence[str] | None = None
    ) -> Iterator[pd.DataFrame]:
        """Read a whole table in batches (for exports and rebuilds) without loading it at once."""
        ...
