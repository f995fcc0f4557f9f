"""Helpers shared by both stores: schema checks, frame -> values, values -> frame, WHERE building.

Rules kept here so both dialects behave the same:

- table and column names are only ever taken from ``schema.TABLES`` (unknown names are refused
  with StoreError before any SQL is built); values always travel as query parameters or COPY data;
- a GeoDataFrame must be in EPSG:4326; its active geometry goes to the table's geometry column;
  single polygons/linestrings are promoted to MULTI* for MULTI* columns, empty geometries are
  stored as NULL, Z is dropped;
- timestamps: tz-aware values are converted to UTC, naive values are taken as UTC, and both are
  truncated to whole seconds (the SQLite storage format is ``YYYY-MM-DD HH:MM:SS``, so PostGIS
  keeps the same precision to make the two stores interchangeable);
- NaN / None / NA / NaT are NULL.

SQL text in this package is composed only from schema identifiers (quoted with ``q``) and
placeholders; the lines doing so carry ``# noqa: S608`` because ruff cannot tell identifiers from
values. Values never reach SQL text.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from pyproj import CRS, Geod

from store import schema
from store.base import BBox, Range, StoreError

Dialect = Literal["sqlite", "postgis"]

# SQLite keeps the exact (double) bounds of each geometry next to it; the R*Tree (float32,
# rounded outwards) finds candidates and these columns make the bbox test exact.
BBOX_COLUMNS = ("_bbox_minx", "_bbox_miny", "_bbox_maxx", "_bbox_maxy")
GEOMETRY_OUT = "geometry"  # name of the geometry column in frames returned by read()

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1

_TYPE_IDS = {
    "POINT": (0,),
    "LINESTRING": (1,),
    "POLYGON": (3,),
    "MULTIPOINT": (4,),
    "MULTILINESTRING": (5,),
    "MULTIPOLYGON": (6,),
}
GEOD = Geod(ellps="WGS84")


# --------------------------------------------------------------------------- names


def pg_type(col: schema.Column) -> str:
    """The PostgreSQL type of a column."""
    if col.is_geometry:
        return f"geometry({col.geometry_kind}, {schema.SRID})"
    return {
        "text": "text",
        "int": "integer",
        "bigint": "bigint",
        "real": "double precision",
        "bool": "boolean",
        "timestamp": "timestamptz",
    }[col.type]


def q(name: str) -> str:
    """Quote an identifier. Only ever called with names that come from the schema."""
    if '"' in name or "\x00" in name:  # pragma: no cover - schema names are plain
        raise StoreError(f"bad identifier {name!r}")
    return f'"{name}"'


def get_table(name: str) -> schema.Table:
    if not isinstance(name, str) or name not in schema.TABLES:
        known = ", ".join(sorted(schema.TABLES))
        raise StoreError(f"unknown table {name!r}; known tables: {known}")
    return schema.TABLES[name]


def get_column(t: schema.Table, name: str) -> schema.Column:
    if isinstance(name, str):
        if name == GEOMETRY_OUT and t.geometry_column is not None:
            return t.geometry_column
        for c in t.columns:
            if c.name == name:
                return c
    raise StoreError(
        f"table {t.name!r} has no column {name!r}; its columns are: {', '.join(t.column_names)}"
    )


def get_columns(t: schema.Table, names: Iterable[str] | None) -> list[schema.Column]:
    if names is None:
        return list(t.columns)
    if isinstance(names, str):
        names = [names]
    cols = [get_column(t, n) for n in names]
    seen: set[str] = set()
    for c in cols:
        if c.name in seen:
            raise StoreError(f"column {c.name!r} of table {t.name!r} given twice")
        seen.add(c.name)
    if not cols:
        raise StoreError(f"no columns asked of table {t.name!r}")
    return cols


def require_geometry(t: schema.Table, what: str) -> schema.Column:
    g = t.geometry_column
    if g is None:
        raise StoreError(f"table {t.name!r} has no geometry column, so {what} cannot be used on it")
    return g


def parse_order_by(t: schema.Table, order_by: Sequence[str] | None) -> list[tuple[schema.Column, bool]]:
    """``["ts"]`` ascending, ``["-ts"]`` descending. Returns (column, descending) pairs."""
    if order_by is None:
        return []
    if isinstance(order_by, str):
        order_by = [order_by]
    out = []
    for item in order_by:
        if not isinstance(item, str):
            raise StoreError(f"order_by items must be column names, got {item!r}")
        desc = item.startswith("-")
        col = get_column(t, item[1:] if desc else item)
        if col.is_geometry:
            raise StoreError(f"cannot order by the geometry column {col.name!r}")
        out.append((col, desc))
    return out


def order_sql(order: list[tuple[schema.Column, bool]], alias: str = "t") -> str:
    if not order:
        return ""
    prefix = f"{alias}." if alias else ""
    parts = [f"{prefix}{q(c.name)} {'DESC' if d else 'ASC'} NULLS LAST" for c, d in order]
    return " ORDER BY " + ", ".join(parts)


def check_limit(limit: int | None) -> int | None:
    if limit is None:
        return None
    if isinstance(limit, bool) or not isinstance(limit, int | np.integer) or limit < 0:
        raise StoreError(f"limit must be a non-negative integer, got {limit!r}")
    return int(limit)


def check_bbox(bbox: BBox | Sequence[float]) -> BBox:
    try:
        minx, miny, maxx, maxy = (float(v) for v in bbox)
    except (TypeError, ValueError):
        raise StoreError(f"bbox must be (min lon, min lat, max lon, max lat), got {bbox!r}") from None
    if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)):
        raise StoreError(f"bbox has a non-finite coordinate: {bbox!r}")
    if minx > maxx or miny > maxy:
        raise StoreError(f"bbox min is greater than max: {bbox!r} (expected min lon, min lat, max lon, max lat)")
    return (minx, miny, maxx, maxy)


def check_lonlat(lon: float, lat: float) -> tuple[float, float]:
    try:
        x, y = float(lon), float(lat)
    except (TypeError, ValueError):
        raise StoreError(f"bad coordinates ({lon!r}, {lat!r})") from None
    if not (math.isfinite(x) and math.isfinite(y) and -180 <= x <= 180 and -90 <= y <= 90):
        raise StoreError(f"({lon!r}, {lat!r}) is not a lon/lat position in EPSG:4326")
    return x, y


# --------------------------------------------------------------------------- values in


def _isnull(v: Any) -> bool:
    if v is None or v is pd.NA or v is pd.NaT:
        return True
    if isinstance(v, float | np.floating):
        return bool(v != v)
    if isinstance(v, np.datetime64 | np.timedelta64):
        return bool(np.isnat(v))
    return False


def _text(col: schema.Column, s: pd.Series) -> list[Any]:
    out: list[Any] = []
    append = out.append
    for v in s.astype(object).tolist():
        if type(v) is str:
            if "\x00" in v:
                raise StoreError(f"column {col.name!r}: text contains a NUL character")
            append(v)
        elif _isnull(v):
            append(None)
        elif isinstance(v, str | int | float | np.integer | np.floating | np.str_):
            append(str(v))
        else:
            raise StoreError(f"column {col.name!r} is text; cannot store {type(v).__name__} value {v!r}")
    return out


def _integer(col: schema.Column, s: pd.Series) -> list[Any]:
    try:
        if s.dtype == bool:
            s = s.astype("int64")
        num = pd.to_numeric(s, errors="raise")
        if pd.api.types.is_float_dtype(num.dtype):
            arr = num.to_numpy(dtype="float64", na_value=np.nan)
            ok = np.isnan(arr) | (np.mod(arr, 1) == 0)
            if not ok.all():
                bad = arr[~ok][0]
                raise StoreError(f"column {col.name!r} is an integer column; got {bad!r}")
        ints = num.astype("Int64")
    except (TypeError, ValueError, OverflowError) as e:
        raise StoreError(f"column {col.name!r} is an integer column; cannot convert the values: {e}") from None
    if col.type == "int":
        vals = ints.dropna()
        if len(vals) and (vals.min() < INT32_MIN or vals.max() > INT32_MAX):
            raise StoreError(f"column {col.name!r}: value out of range for a 32-bit integer")
    lst = ints.tolist()
    if ints.hasnans:
        return [None if v is pd.NA else v for v in lst]
    return lst


def _real(col: schema.Column, s: pd.Series) -> list[Any]:
    try:
        if s.dtype == bool:
            s = s.astype("float64")
        arr = pd.to_numeric(s, errors="raise").to_numpy(dtype="float64", na_value=np.nan)
    except (TypeError, ValueError) as e:
        raise StoreError(f"column {col.name!r} is a real column; cannot convert the values: {e}") from None
    nan = np.isnan(arr)
    if nan.any():
        obj = arr.astype(object)
        obj[nan] = None
        return cast(list[Any], obj.tolist())
    return cast(list[Any], arr.tolist())


def _bool(col: schema.Column, s: pd.Series) -> list[Any]:
    if s.dtype == bool:
        return cast(list[Any], s.tolist())
    vals = s.astype(object).tolist()
    out: list[Any] = []
    for v in vals:
        if _isnull(v):
            out.append(None)
        elif isinstance(v, bool | np.bool_):
            out.append(bool(v))
        elif isinstance(v, int | np.integer | float | np.floating) and v in (0, 1):
            out.append(bool(v))
        else:
            raise StoreError(f"column {col.name!r} is boolean; cannot store {v!r}")
    return out


def _timestamp(col: schema.Column, s: pd.Series) -> np.ndarray:
    """-> numpy datetime64[s] (UTC, NaT for NULL)."""
    try:
        if isinstance(s.dtype, pd.DatetimeTZDtype):
            ts = s.dt.tz_convert("UTC")
        elif pd.api.types.is_datetime64_dtype(s.dtype):
            ts = s.dt.tz_localize("UTC")
        else:
            if pd.api.types.is_numeric_dtype(s.dtype) and not s.isna().all():
                raise StoreError(f"column {col.name!r} is a timestamp; got numbers (convert them with pd.to_datetime)")
            ts = pd.to_datetime(s, utc=True, format="mixed")
    except StoreError:
        raise
    except (TypeError, ValueError, OverflowError) as e:
        raise StoreError(f"column {col.name!r} is a timestamp; cannot convert the values: {e}") from None
    ts = ts.dt.floor("s")
    return ts.dt.tz_localize(None).to_numpy(dtype="datetime64[s]")


def timestamps_to_text(arr: np.ndarray, suffix: str = "") -> list[Any]:
    """datetime64[s] -> ``YYYY-MM-DD HH:MM:SS`` strings (+ suffix), None for NaT."""
    strs = np.datetime_as_string(arr, unit="s").tolist()
    return [None if x == "NaT" else x[:10] + " " + x[11:] + suffix for x in strs]


@dataclass
class Geoms:
    values: np.ndarray  # object array of shapely geometries / None
    bounds: np.ndarray  # (n, 4) minx, miny, maxx, maxy; NaN for NULL

    def wkb(self) -> list[Any]:
        return cast(list[Any], shapely.to_wkb(self.values, output_dimension=2).tolist())

    def ewkb_hex(self) -> list[Any]:
        with_srid = shapely.set_srid(self.values, schema.SRID)
        return cast(
            list[Any], shapely.to_wkb(with_srid, hex=True, include_srid=True, output_dimension=2).tolist()
        )


def _geometry(col: schema.Column, values: Any) -> Geoms:
    arr = np.asarray(values, dtype=object)
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    # anything that is not a geometry must be a null
    is_geom = shapely.is_geometry(arr)
    if not is_geom.all():
        for v in arr[~is_geom]:
            if not _isnull(v):
                raise StoreError(f"column {col.name!r} holds geometries; cannot store {type(v).__name__} {v!r}")
        arr = arr.copy()
        arr[~is_geom] = None
    empty = shapely.is_empty(arr) & is_geom
    if empty.any():
        arr = arr.copy()
        arr[empty] = None
    kind = col.geometry_kind
    if kind != "GEOMETRY":
        ids = shapely.get_type_id(arr)  # -1 for None
        allowed = _TYPE_IDS[kind]
        bad = (ids >= 0) & ~np.isin(ids, allowed)
        if bad.any():
            promote = {"MULTIPOLYGON": (3, shapely.MultiPolygon), "MULTILINESTRING": (1, shapely.MultiLineString),
                       "MULTIPOINT": (0, shapely.MultiPoint)}.get(kind)
            if promote is not None:
                single = bad & (ids == promote[0])
                if single.any():
                    arr = arr.copy()
                    make = cast(Any, promote[1])
                    arr[single] = [make([g]) for g in arr[single]]
                    bad = bad & ~single
            if bad.any():
                sample = arr[bad][0]
                raise StoreError(
                    f"column {col.name!r} holds {kind} geometries; got a {sample.geom_type} "
                    f"({int(bad.sum())} such rows)"
                )
    bounds = shapely.bounds(arr)
    with np.errstate(invalid="ignore"):
        finite = ~np.isnan(bounds[:, 0])
        b = bounds[finite]
        if len(b) and (
            not np.isfinite(b).all()
            or b[:, 0].min() < -180 or b[:, 2].max() > 180 or b[:, 1].min() < -90 or b[:, 3].max() > 90
        ):
            raise StoreError(
                f"column {col.name!r}: coordinates outside lon/lat range; the data does not look like "
                "EPSG:4326 (reproject with frame.to_crs(4326) if it is in another CRS)"
            )
    return Geoms(arr, bounds)


def check_crs(frame: gpd.GeoDataFrame) -> None:
    crs = frame.crs
    if crs is None:
        raise StoreError(
            "the GeoDataFrame has no CRS; the store keeps lon/lat in EPSG:4326: set it with "
            "frame.set_crs(4326) if the coordinates are lon/lat, or reproject with frame.to_crs(4326)"
        )
    try:
        epsg = CRS.from_user_input(crs).to_epsg()
    except Exception:  # any pyproj failure means "not 4326"
        epsg = None
    if epsg != schema.SRID:
        raise StoreError(
            f"the GeoDataFrame is in {crs.to_string() if hasattr(crs, 'to_string') else crs}, "
            "not EPSG:4326; reproject it first with frame.to_crs(4326)"
        )


@dataclass
class Prepared:
    """A frame checked against the schema and converted to canonical python values."""

    table: schema.Table
    columns: list[schema.Column]  # in table order
    values: dict[str, Any]  # column name -> list (or Geoms / datetime64 array)
    n: int

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def geoms(self) -> Geoms | None:
        g = self.table.geometry_column
        if g is None or g.name not in self.values:
            return None
        return cast(Geoms, self.values[g.name])

    def encoded(self, dialect: Dialect) -> dict[str, list[Any]]:
        """column -> list of DB-API parameter values for the dialect."""
        out: dict[str, list[Any]] = {}
        for c in self.columns:
            v = self.values[c.name]
            if c.is_geometry:
                out[c.name] = v.wkb() if dialect == "sqlite" else v.ewkb_hex()
            elif c.type == "timestamp":
                out[c.name] = timestamps_to_text(v, "" if dialect == "sqlite" else "+00")
            elif c.type == "bool" and dialect == "sqlite":
                out[c.name] = [None if x is None else int(x) for x in v]
            else:
                out[c.name] = v
        return out


def convert_series(col: schema.Column, s: pd.Series | Any) -> Any:
    if col.is_geometry:
        return _geometry(col, s)
    if not isinstance(s, pd.Series):
        s = pd.Series(s, dtype=object)
    if col.type == "text":
        return _text(col, s)
    if col.type in ("int", "bigint"):
        return _integer(col, s)
    if col.type == "real":
        return _real(col, s)
    if col.type == "bool":
        return _bool(col, s)
    if col.type == "timestamp":
        return _timestamp(col, s)
    raise StoreError(f"column {col.name!r} has an unknown type {col.type!r}")  # pragma: no cover


def _active_geometry_name(frame: pd.DataFrame) -> str | None:
    if not isinstance(frame, gpd.GeoDataFrame):
        return None
    try:
        name = frame.active_geometry_name
    except AttributeError:  # no active geometry column
        return None
    return str(name) if name is not None and name in frame.columns else None


def prepare_frame(table: str, frame: pd.DataFrame, mode: str) -> Prepared:
    if mode not in ("append", "replace", "upsert", "ignore"):
        raise StoreError(f"write mode must be 'append', 'replace', 'upsert' or 'ignore', got {mode!r}")
    t = get_table(table)
    if not isinstance(frame, pd.DataFrame):
        raise StoreError(f"write() takes a DataFrame, got {type(frame).__name__}")
    if frame.columns.has_duplicates:
        raise StoreError(f"the frame has duplicate column names: {list(frame.columns[frame.columns.duplicated()])}")
    gcol = t.geometry_column
    source: dict[str, Any] = {}
    geo_name: str | None = None
    active = _active_geometry_name(frame)
    if active is not None:
        geo_name = active
        if gcol is None:
            raise StoreError(f"table {t.name!r} has no geometry column; write a plain DataFrame to it")
        check_crs(frame)
        if geo_name != gcol.name and gcol.name in frame.columns:
            raise StoreError(
                f"the frame has both an active geometry {geo_name!r} and a column {gcol.name!r}; keep one"
            )
        source[gcol.name] = frame.geometry.to_numpy()
    for name in frame.columns:
        if name == geo_name:
            continue
        if not isinstance(name, str) or name not in t.column_names:
            raise StoreError(
                f"table {t.name!r} has no column {name!r}; its columns are: {', '.join(t.column_names)}"
            )
        col = t.column(name)
        if col.is_geometry:
            s = frame[name]
            if s.notna().any():
                raise StoreError(
                    f"geometries for {t.name}.{name} must come as the active geometry of a GeoDataFrame "
                    "in EPSG:4326 (gpd.GeoDataFrame(frame, geometry=..., crs=4326))"
                )
        source[name] = frame[name]
    columns = [c for c in t.columns if c.name in source]
    if mode == "upsert":
        missing = [k for k in t.primary_key if k not in source]
        if missing:
            raise StoreError(f"upsert into {t.name!r} needs the primary key column(s) {missing} in the frame")
    else:
        missing = [c.name for c in t.columns if c.primary_key and not c.autoincrement and c.name not in source]
        if missing and len(frame):
            raise StoreError(f"writing to {t.name!r} needs the primary key column(s) {missing} in the frame")
    values: dict[str, Any] = {}
    for c in columns:
        values[c.name] = convert_series(c, source[c.name])
        if c.primary_key and not c.is_geometry:
            v = values[c.name]
            if any(x is None for x in v):
                if c.autoincrement and mode != "upsert":
                    raise StoreError(
                        f"column {c.name!r} of {t.name!r} is generated by the store: give a value for every "
                        "row or leave the column out"
                    )
                raise StoreError(f"primary key column {c.name!r} of {t.name!r} has missing values")
    return Prepared(t, columns, values, len(frame))


def duplicate_keys(p: Prepared) -> bool:
    keys = [p.values[k] for k in p.table.primary_key]
    if not keys or p.n < 2:
        return False
    if len(keys) == 1:
        return len(set(keys[0])) != p.n
    return len(set(zip(*keys, strict=True))) != p.n


def normalize_value(col: schema.Column, value: Any, dialect: Dialect) -> Any:
    """One value (for WHERE/update parameters) -> DB-API parameter for the dialect."""
    if col.is_geometry:
        if _isnull(value):
            return None
        g = _geometry(col, [value])
        return g.wkb()[0] if dialect == "sqlite" else g.ewkb_hex()[0]
    if _isnull(value):
        return None
    if isinstance(value, list | tuple | set | dict | np.ndarray | pd.Series):
        raise StoreError(f"column {col.name!r}: expected a single value, got {type(value).__name__}")
    conv = convert_series(col, pd.Series([value], dtype=object))
    if col.type == "timestamp":
        return timestamps_to_text(conv, "" if dialect == "sqlite" else "+00")[0]
    v = conv[0]
    if col.type == "bool" and dialect == "sqlite" and v is not None:
        return int(v)
    return v


def normalize_values(col: schema.Column, values: list[Any], dialect: Dialect) -> list[Any]:
    """Many non-null values of one column -> DB-API parameters, converted in one pass (an IN list
    of thousands of ids must not cost a pandas Series per value)."""
    if not values:
        return []
    if col.is_geometry:
        return [normalize_value(col, v, dialect) for v in values]
    for v in values:
        if isinstance(v, list | tuple | set | dict | np.ndarray | pd.Series):
            raise StoreError(f"column {col.name!r}: expected a single value, got {type(v).__name__}")
    conv = convert_series(col, pd.Series(values, dtype=object))
    if col.type == "timestamp":
        return timestamps_to_text(conv, "" if dialect == "sqlite" else "+00")
    out = list(conv)
    if col.type == "bool" and dialect == "sqlite":
        return [None if v is None else int(v) for v in out]
    return out


def bbox_params(t: schema.Table, values: Mapping[str, Any]) -> dict[str, Any]:
    """For SQLite updates: the hidden bbox columns that go with a new geometry value."""
    g = t.geometry_column
    if g is None or g.name not in values:
        return {}
    v = values[g.name]
    if _isnull(v):
        return dict.fromkeys(BBOX_COLUMNS)
    geoms = _geometry(g, [v])
    b = geoms.bounds[0]
    if np.isnan(b[0]):
        return dict.fromkeys(BBOX_COLUMNS)
    return dict(zip(BBOX_COLUMNS, (float(x) for x in b), strict=True))


# --------------------------------------------------------------------------- where


def _is_list(v: Any) -> bool:
    return isinstance(v, list | tuple | set | frozenset | np.ndarray | pd.Series | pd.Index)


def where_parts(
    t: schema.Table, where: Mapping[str, Any] | None, dialect: Dialect, alias: str = "t"
) -> tuple[list[str], list[Any]]:
    """-> (SQL conditions, parameters). Placeholders: ``?`` for sqlite, ``%s`` for postgis."""
    if where is None:
        return [], []
    if not isinstance(where, Mapping):
        raise StoreError(f"where must be a mapping of column -> value, got {type(where).__name__}")
    ph = "?" if dialect == "sqlite" else "%s"
    conds: list[str] = []
    params: list[Any] = []
    for name, value in where.items():
        col = get_column(t, name)
        ref = f"{alias}.{q(col.name)}" if alias else q(col.name)
        if isinstance(value, Range):
            if col.is_geometry:
                raise StoreError(f"cannot test the geometry column {col.name!r} against a range")
            for bound, op in ((value.lo, ">="), (value.hi, "<")):
                if not _isnull(bound):
                    conds.append(f"{ref} {op} {ph}")
                    params.append(normalize_value(col, bound, dialect))
        elif _is_list(value):
            items = list(value)
            if col.is_geometry:
                raise StoreError(f"cannot test the geometry column {col.name!r} against a list")
            has_null = any(_isnull(v) for v in items)
            # keep order, drop duplicates
            vals = list(dict.fromkeys(normalize_values(col, [v for v in items if not _isnull(v)], dialect)))
            sub: list[str] = []
            if vals:
                if dialect == "sqlite":
                    if len(vals) <= 500:
                        sub.append(f"{ref} IN ({', '.join([ph] * len(vals))})")
                        params.extend(vals)
                    else:
                        sub.append(f"{ref} IN (SELECT value FROM json_each({ph}))")  # noqa: S608
                        params.append(json.dumps(vals))
                else:
                    sub.append(f"{ref} = ANY({ph}::{pg_type(col)}[])")
                    params.append(vals)
            if has_null:
                sub.append(f"{ref} IS NULL")
            conds.append("(" + " OR ".join(sub) + ")" if sub else "1 = 0")
        elif _isnull(value):
            conds.append(f"{ref} IS NULL")
        else:
            if col.is_geometry:
                raise StoreError(f"the geometry column {col.name!r} can only be tested against None")
            conds.append(f"{ref} = {ph}")
            params.append(normalize_value(col, value, dialect))
    return conds, params


# --------------------------------------------------------------------------- values out


def _series_out(col: schema.Column, vals: Sequence[Any]) -> pd.Series | gpd.GeoSeries:
    if col.is_geometry:
        arr = np.asarray(vals, dtype=object)
        if len(arr) and any(isinstance(v, memoryview) for v in arr[:1]):
            arr = np.array([None if v is None else bytes(v) for v in arr], dtype=object)
        geoms = shapely.from_wkb(arr) if len(arr) else np.array([], dtype=object)
        return gpd.GeoSeries(geoms, crs=schema.SRID, name=GEOMETRY_OUT)
    has_null = any(v is None for v in vals)
    if col.type == "text":
        return pd.Series(vals, dtype="str", name=col.name)
    if col.type in ("int", "bigint"):
        if has_null:
            return pd.Series(vals, dtype="Int64", name=col.name)
        return pd.Series(np.asarray(vals, dtype="int64"), name=col.name)
    if col.type == "real":
        return pd.Series(np.asarray([np.nan if v is None else v for v in vals], dtype="float64"), name=col.name)
    if col.type == "bool":
        if has_null:
            return pd.Series(vals, dtype="boolean", name=col.name)
        return pd.Series(np.asarray(vals, dtype=bool), name=col.name)
    if col.type == "timestamp":
        s = pd.to_datetime(pd.Series(vals, dtype=object), utc=True, format="ISO8601")
        return s.astype("datetime64[ns, UTC]").rename(col.name)
    raise StoreError(f"unknown type {col.type!r}")  # pragma: no cover


def build_frame(
    columns: Sequence[schema.Column],
    rows: Sequence[Sequence[Any]],
    extra: Sequence[tuple[str, str]] = (),
) -> pd.DataFrame:
    """Rows as returned by the driver -> DataFrame, GeoDataFrame when a geometry column is there.
    ``extra`` are trailing result columns (name, portable type) not in the table, e.g. distance_m."""
    ncols = len(columns) + len(extra)
    cols_data: list[Sequence[Any]] = list(zip(*rows, strict=True)) if rows else [() for _ in range(ncols)]
    data: dict[str, Any] = {}
    geo = False
    for i, c in enumerate(columns):
        s = _series_out(c, cols_data[i])
        if c.is_geometry:
            geo = True
            data[GEOMETRY_OUT] = s
        else:
            data[c.name] = s
    for j, (name, typ) in enumerate(extra):
        data[name] = _series_out(schema.Column(name, typ), cols_data[len(columns) + j])
    if geo:
        return gpd.GeoDataFrame(data, geometry=GEOMETRY_OUT, crs=schema.SRID)
    return pd.DataFrame(data)


def empty_frame(columns: Sequence[schema.Column], extra: Sequence[tuple[str, str]] = ()) -> pd.DataFrame:
    return build_frame(columns, [], extra)


# --------------------------------------------------------------------------- distances


def geodesic_distance_m(lon: float, lat: float, geoms: np.ndarray) -> np.ndarray:
    """Geodesic (WGS84) metres from (lon, lat) to each geometry: exact for points, for other
    geometries to the nearest point found in a local equirectangular frame (0 inside polygons)."""
    n = len(geoms)
    out = np.full(n, np.nan)
    if n == 0:
        return out
    ids = shapely.get_type_id(geoms)
    pts = ids == 0
    if pts.any():
        x = shapely.get_x(geoms[pts])
        y = shapely.get_y(geoms[pts])
        _, _, d = GEOD.inv(np.full(len(x), lon), np.full(len(x), lat), x, y)
        out[pts] = d
    other = (~pts) & (ids >= 0)
    if other.any():
        k = math.cos(math.radians(lat)) or 1e-9
        origin = shapely.Point(lon * k, lat)

        def scale(c: np.ndarray) -> np.ndarray:
            return c * np.array([k, 1.0])

        def unscale(c: np.ndarray) -> np.ndarray:
            return c / np.array([k, 1.0])

        scaled = shapely.transform(geoms[other], scale)
        lines = shapely.shortest_line(origin, scaled)
        ends = shapely.transform(shapely.get_point(lines, 1), unscale)
        x = shapely.get_x(ends)
        y = shapely.get_y(ends)
        _, _, d = GEOD.inv(np.full(len(x), lon), np.full(len(x), lat), x, y)
        out[other] = np.where(shapely.intersects(scaled, origin), 0.0, d)
    return out
