"""Grid planning: drafts of a unit's micro-grids, edits with undo/redo, validation, publishing
versions with lineage, and the legacy layers of other departments.

The flow a planner follows (the planning page and the ``gridconsole partition/validate/publish``
verbs both call these functions):

1. :func:`create_draft` copies the unit's grids in force (or an automatic partition of its
   buildings) into a *draft*. Drafts live in ``grid_drafts``/``draft_grids``; every edit writes a
   new *revision* of the draft's grids, so :func:`undo`/:func:`redo` move between revisions and
   nothing is lost when a browser closes. Live grids are not touched.
2. :func:`edit` applies one edit (split, merge, move buildings, reshape, re-partition a selection)
   with the pure functions of :mod:`geo.edit` in the unit's metric CRS.
3. :func:`evaluate` recounts households per grid from the buildings and runs
   :func:`geo.audit.audit_grids`: gaps, overlaps, parts outside the unit, bands, contiguity,
   buildings in no grid or two, grids without a responsible worker, dedicated grids.
4. :func:`publish` (one transaction) refuses a draft with errors, or with warnings and no reason;
   refuses with :class:`ConflictError` when the unit's grids changed since the draft began (another
   planner published first: the draft stays, :func:`rebase` lets its planner go on); otherwise
   archives the version in force, assigns codes (unchanged grids keep theirs, new ones are numbered
   in reading order after every code ever used), replaces the live grids, records lineage with
   household shares, re-attributes buildings, open cases and staff responsibilities by location,
   and records the new version with its effective date.

Geometry is stored in WGS84 lon/lat; all measuring and editing happens in the unit's UTM zone.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pyproj
import shapely
from shapely.geometry.base import BaseGeometry

from geo.audit import AuditReport, audit_grids, recount
from geo.crs import utm_crs
from geo.edit import EditError, merge_grids, move_buildings, replace_grids, reshape_grid, split_grid
from geo.lineage import assign_codes, diff, lineage
from geo.partition import partition
from services.mapview import OPEN_STATES, grid_status
from store.base import ConflictError, Store, StoreError

__all__ = [
    "DEFAULT_BANDS",
    "ConflictError",
    "Draft",
    "DraftState",
    "EditError",
    "PlanningError",
    "PublishRefused",
    "PublishResult",
    "UnitContext",
    "building_at",
    "context",
    "create_draft",
    "discard",
    "draft",
    "draft_grids",
    "drafts",
    "edit",
    "evaluate",
    "grid_at",
    "grid_crossed",
    "partition_unit",
    "publish",
    "rebase",
    "redo",
    "set_unit_band",
    "undo",
    "unit_band",
    "version_diff",
    "version_grids",
    "versions",
]

DEFAULT_BANDS: dict[str, tuple[int, int]] = {"community": (80, 120), "village": (30, 50)}
LONLAT = "EPSG:4326"
GRID_COLUMNS = ["key", "code", "name", "kind", "purpose", "band_min", "band_max"]
EDIT_ACTIONS = ("split", "merge", "move", "reshape", "repartition")


class PlanningError(Exception):
    """A planning request cannot be carried out; the message is for a person. Nothing was written."""


class PublishRefused(PlanningError):
    """The draft has errors (or warnings without a reason); ``report`` lists them."""

    def __init__(self, message: str, report: AuditReport) -> None:
        super().__init__(message)
        self.report = report


def _geo(frame: pd.DataFrame) -> gpd.GeoDataFrame:
    """A store read of a spatial table (always a GeoDataFrame; typed as DataFrame by the protocol)."""
    assert isinstance(frame, gpd.GeoDataFrame)
    return frame


def _now(now: datetime | None = None) -> datetime:
    return (now or datetime.now(UTC)).replace(microsecond=0)


# --------------------------------------------------------------------------- units


@dataclass(frozen=True)
class Unit:
    code: str
    name: str
    kind: str  # community | village
    parent_code: str | None
    band: tuple[int, int]
    version: int
    boundary: BaseGeometry  # lon/lat

    @property
    def crs(self) -> pyproj.CRS:
        c = self.boundary.representative_point()
        return utm_crs(c.x, c.y)


def _unit(store: Store, code: str) -> Unit:
    rows = store.read("admin_units", where={"code": code})
    if len(rows) == 0:
        raise PlanningError(f"no village or community with code {code}")
    row = rows.iloc[0]
    if row["level"] != "village":
        raise PlanningError(f"{code} ({row['name']}) is a {row['level']}: grids are planned per village or community")
    geom = row.geometry
    if geom is None or geom.is_empty:
        raise PlanningError(f"{code} ({row['name']}) has no boundary: import its boundary first")
    default = DEFAULT_BANDS.get(str(row["kind"]), DEFAULT_BANDS["community"])
    lo, hi = row.get("band_min"), row.get("band_max")
    band = (int(lo), int(hi)) if pd.notna(lo) and pd.notna(hi) else default
    version = row.get("grid_version")
    return Unit(
        code=str(row["code"]),
        name=str(row["name"]),
        kind=str(row["kind"]),
        parent_code=None if pd.isna(row["parent_code"]) else str(row["parent_code"]),
        band=band,
        version=int(version) if pd.notna(version) else 1,
        boundary=geom,
    )


def unit_band(store: Store, code: str) -> tuple[int, int]:
    return _unit(store, code).band


def set_unit_band(store: Store, code: str, band: tuple[int, int]) -> None:
    """Configure the household band of a unit's grids (e.g. 80–120, 30–50)."""
    lo, hi = _check_band(band)
    _unit(store, code)
    store.update("admin_units", {"code": code}, {"band_min": lo, "band_max": hi})


def _check_band(band: Sequence[Any]) -> tuple[int, int]:
    try:
        lo, hi = (int(band[0]), int(band[1]))
    except (TypeError, ValueError, IndexError):
        raise PlanningError(f"a band is two whole numbers, min and max households, not {band!r}") from None
    if lo < 1 or hi < lo:
        raise PlanningError(f"band {lo}-{hi} is impossible: need 1 <= min <= max")
    return lo, hi


@dataclass
class UnitContext:
    """A unit with what its grids are drawn from, in the unit's metric CRS."""

    unit: Unit
    crs: pyproj.CRS
    boundary: BaseGeometry  # metric
    buildings: gpd.GeoDataFrame  # id, households, kind, name, grid_code, geometry (metric)
    roads: gpd.GeoDataFrame
    water: gpd.GeoDataFrame
    live: gpd.GeoDataFrame  # grids in force (metric)
    staffed: frozenset[str]  # live grid codes with a responsible worker


def context(store: Store, code: str) -> UnitContext:
    unit = _unit(store, code)
    crs = unit.crs
    boundary = gpd.GeoSeries([unit.boundary], crs=LONLAT).to_crs(crs).iloc[0]
    bbox = tuple(float(v) for v in unit.boundary.bounds)
    buildings = _geo(store.read("buildings", bbox=bbox))  # type: ignore[arg-type]
    if len(buildings):
        inside = buildings.geometry.representative_point().within(unit.boundary)
        buildings = buildings[inside.to_numpy() | (buildings["unit_code"] == code).to_numpy()]
    buildings = buildings.to_crs(crs).reset_index(drop=True)
    roads = _geo(store.read("roads", bbox=bbox)).to_crs(crs)  # type: ignore[arg-type]
    water = _geo(store.read("water", bbox=bbox)).to_crs(crs)  # type: ignore[arg-type]
    clip = boundary.buffer(1.0)
    roads = roads[roads.intersects(clip)].reset_index(drop=True)
    water = water[water.intersects(clip)].reset_index(drop=True)
    live = _geo(store.read("grids", where={"unit_code": code}, order_by=["code"])).to_crs(crs)
    staffed: frozenset[str] = frozenset()
    if len(live):
        sg = store.read("staff_grids", where={"grid_code": live["code"].tolist()})
        staffed = frozenset(sg["grid_code"].astype(str))
    return UnitContext(unit, crs, boundary, buildings, roads, water, live, staffed)


# --------------------------------------------------------------------------- partition


def partition_unit(ctx: UnitContext, *, band: tuple[int, int] | None = None) -> gpd.GeoDataFrame:
    """Automatic partition of the unit's buildings into base grids following roads and rivers
    (:func:`geo.partition.partition`), in the unit's metric CRS: columns label, households,
    buildings, in_band, oversized, geometry."""
    lo, hi = _check_band(band or ctx.unit.band)
    residential = ctx.buildings[ctx.buildings["households"].fillna(0) > 0]
    if len(residential) == 0:
        raise PlanningError(f"{ctx.unit.name} has no buildings with households to partition")
    if residential["households"].sum() < lo:
        raise PlanningError(
            f"{ctx.unit.name} holds {int(residential['households'].sum())} households, fewer than the band's "
            f"minimum {lo}: no partition can meet band {lo}-{hi}; lower the band or merge units"
        )
    grids, _labels = partition(
        residential, boundary=ctx.boundary, band=(lo, hi), roads=ctx.roads, water=ctx.water  # type: ignore[arg-type]
    )
    return grids


# --------------------------------------------------------------------------- drafts


@dataclass(frozen=True)
class Draft:
    id: int
    unit_code: str
    base_version: int
    name: str | None
    author: str | None
    status: str
    revision: int
    head: int
    band: tuple[int, int] | None
    created_at: pd.Timestamp
    updated_at: pd.Timestamp
    note: str | None

    @property
    def can_undo(self) -> bool:
        return self.revision > 0

    @property
    def can_redo(self) -> bool:
        return self.revision < self.head


def draft(store: Store, draft_id: int) -> Draft:
    rows = store.read("grid_drafts", where={"id": int(draft_id)})
    if len(rows) == 0:
        raise PlanningError(f"no draft {draft_id}")
    r = rows.iloc[0]
    band = (int(r["band_min"]), int(r["band_max"])) if pd.notna(r["band_min"]) and pd.notna(r["band_max"]) else None
    return Draft(
        id=int(r["id"]),
        unit_code=str(r["unit_code"]),
        base_version=int(r["base_version"]),
        name=None if pd.isna(r["name"]) else str(r["name"]),
        author=None if pd.isna(r["author"]) else str(r["author"]),
        status=str(r["status"]),
        revision=int(r["revision"]),
        head=int(r["head"]),
        band=band,
        created_at=r["created_at"],
        updated_at=r["updated_at"],
        note=None if pd.isna(r["note"]) else str(r["note"]),
    )


def drafts(store: Store, unit_code: str | None = None, *, status: str | None = "open") -> pd.DataFrame:
    where: dict[str, Any] = {}
    if unit_code is not None:
        where["unit_code"] = unit_code
    if status is not None:
        where["status"] = status
    return store.read("grid_drafts", where=where or None, order_by=["-updated_at", "-id"])


def _frame_for_draft(grids: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    out = grids.copy()
    for col in GRID_COLUMNS:
        if col not in out.columns:
            out[col] = None
    out["kind"] = out["kind"].fillna("base")
    out = gpd.GeoDataFrame(out[[*GRID_COLUMNS, out.geometry.name]], geometry=out.geometry.name, crs=grids.crs)
    return out.rename_geometry("geometry") if out.geometry.name != "geometry" else out


def _multi(geom: BaseGeometry) -> BaseGeometry:
    if geom is None or geom.is_empty:
        return shapely.MultiPolygon()
    if geom.geom_type == "Polygon":
        return shapely.MultiPolygon([geom])  # type: ignore[list-item]
    if geom.geom_type == "MultiPolygon":
        return geom
    parts = [p for p in shapely.get_parts(geom) if p.geom_type == "Polygon" and p.area > 0]
    return shapely.MultiPolygon(parts)


def _write_revision(store: Store, draft_id: int, revision: int, grids: gpd.GeoDataFrame) -> None:
    frame = _frame_for_draft(grids).to_crs(LONLAT)
    frame["geometry"] = [_multi(g) for g in frame.geometry]
    frame = frame.assign(draft_id=int(draft_id), revision=int(revision))
    frame["key"] = frame["key"].astype("int64")
    store.write("draft_grids", frame)


def create_draft(
    store: Store,
    unit_code: str,
    *,
    method: str = "current",
    author: str | None = None,
    name: str | None = None,
    band: tuple[int, int] | None = None,
    grids: gpd.GeoDataFrame | None = None,
    now: datetime | None = None,
) -> int:
    """Start a draft for a unit and return its id.

    ``method``: ``"current"`` copies the grids in force; ``"partition"`` partitions the unit's
    buildings automatically (dedicated grids in force are kept); ``"frame"`` takes ``grids`` (any
    CRS; columns code, name, kind, purpose optional) — a file a planner edited in QGIS, or a
    unified proposal."""
    rows = store.read("admin_units", where={"code": unit_code}, columns=["grid_version", "level"])
    if len(rows) and rows["level"].iloc[0] == "village" and pd.isna(rows["grid_version"].iloc[0]):
        store.update("admin_units", {"code": unit_code}, {"grid_version": 1})  # imported units start at 1
    ctx = context(store, unit_code)
    lo_hi = _check_band(band) if band is not None else ctx.unit.band
    if method == "current":
        base = ctx.live.copy()
        if len(base) == 0:
            raise PlanningError(f"{ctx.unit.name} has no grids yet: start from an automatic partition")
    elif method == "partition":
        parts = partition_unit(ctx, band=lo_hi)
        base = gpd.GeoDataFrame({"code": [None] * len(parts), "kind": "base"}, geometry=parts.geometry.values, crs=ctx.crs)
        dedicated = ctx.live[ctx.live["kind"] == "dedicated"]
        base = gpd.GeoDataFrame(pd.concat([base, dedicated], ignore_index=True), geometry="geometry", crs=ctx.crs)
    elif method == "frame":
        if grids is None or len(grids) == 0:
            raise PlanningError("no grids given")
        if grids.crs is None:
            raise PlanningError("the grids have no CRS")
        base = grids.to_crs(ctx.crs).reset_index(drop=True)
        if base.geometry.name != "geometry":
            base = base.rename_geometry("geometry")
        if "code" in base.columns:
            known = set(ctx.live["code"]) | _used_codes(store, unit_code)
            base["code"] = [c if isinstance(c, str) and c in known else None for c in base["code"]]
    else:
        raise PlanningError(f"unknown draft method {method!r}: current, partition or frame")
    base = base.reset_index(drop=True)
    base["key"] = np.arange(1, len(base) + 1)
    base["band_min"], base["band_max"] = lo_hi
    if "kind" in base.columns:
        ded = base["kind"] == "dedicated"
        base.loc[ded, ["band_min", "band_max"]] = None
    ts = _now(now)
    with store.transaction():
        draft_id = int(
            store.insert(
                "grid_drafts",
                {
                    "unit_code": unit_code,
                    "base_version": ctx.unit.version,
                    "name": name or f"{ctx.unit.name} {ts:%Y-%m-%d %H:%M}",
                    "author": author,
                    "status": "open",
                    "revision": 0,
                    "head": 0,
                    "band_min": lo_hi[0],
                    "band_max": lo_hi[1],
                    "created_at": ts,
                    "updated_at": ts,
                    "note": method,
                },
            )
        )
        _write_revision(store, draft_id, 0, base)
        store.insert(
            "draft_edits",
            {"draft_id": draft_id, "revision": 0, "ts": ts, "actor": author, "action": "create", "detail": method},
        )
    return draft_id


def draft_grids(store: Store, draft_id: int, *, revision: int | None = None, crs: Any = LONLAT) -> gpd.GeoDataFrame:
    rev = draft(store, draft_id).revision if revision is None else int(revision)
    rows = store.read("draft_grids", where={"draft_id": int(draft_id), "revision": rev}, order_by=["key"])
    rows = _geo(rows.drop(columns=["draft_id", "revision"]))
    return rows.to_crs(crs) if crs != LONLAT else rows


def _open(store: Store, draft_id: int) -> Draft:
    d = draft(store, draft_id)
    if d.status != "open":
        raise PlanningError(f"draft {d.id} is {d.status}: open a new draft to make changes")
    return d


def edit(store: Store, draft_id: int, action: str, *, actor: str | None = None, now: datetime | None = None,
         **params: Any) -> int:
    """Apply one edit to a draft and return the new revision. Geometries in ``params`` (``line``,
    ``outline``) are lon/lat. Raises :class:`EditError`/:class:`PlanningError` (nothing written).

    * ``split``: ``key``, ``line``  · ``merge``: ``keys``  · ``move``: ``ids`` (buildings), ``to``
    * ``reshape``: ``key``, ``outline``  · ``repartition``: ``keys`` (band from the draft)
    """
    d = _open(store, draft_id)
    ctx = context(store, d.unit_code)
    grids = draft_grids(store, d.id, revision=d.revision, crs=ctx.crs)
    metric = _to_metric_geom(params, ctx.crs)
    if action == "split":
        new = split_grid(grids, int(params["key"]), metric["line"], buildings=ctx.buildings)
        detail: dict[str, Any] = {"key": int(params["key"])}
    elif action == "merge":
        keys = [int(k) for k in params["keys"]]
        new = merge_grids(grids, keys)
        detail = {"keys": keys}
    elif action == "move":
        ids = [int(i) for i in params["ids"]]
        new = move_buildings(grids, ctx.buildings, ids, to=int(params["to"]))
        detail = {"ids": ids, "to": int(params["to"])}
    elif action == "reshape":
        new = reshape_grid(grids, int(params["key"]), metric["outline"], parent=ctx.boundary)
        detail = {"key": int(params["key"])}
    elif action == "repartition":
        keys = [int(k) for k in params["keys"]]
        new = _repartition(ctx, grids, keys, d.band or ctx.unit.band)
        detail = {"keys": keys}
    else:
        raise PlanningError(f"unknown edit {action!r}: one of {', '.join(EDIT_ACTIONS)}")
    return _save(store, d, new, action, detail, actor, now)


def _to_metric_geom(params: Mapping[str, Any], crs: pyproj.CRS) -> dict[str, BaseGeometry]:
    out: dict[str, BaseGeometry] = {}
    for name in ("line", "outline"):
        geom = params.get(name)
        if geom is None:
            continue
        if isinstance(geom, Mapping):
            geom = shapely.geometry.shape(dict(geom))
        if not isinstance(geom, BaseGeometry) or geom.is_empty:
            raise PlanningError(f"the drawn {name} is empty")
        out[name] = gpd.GeoSeries([geom], crs=LONLAT).to_crs(crs).iloc[0]
    return out


def _repartition(ctx: UnitContext, grids: gpd.GeoDataFrame, keys: list[int], band: tuple[int, int]) -> gpd.GeoDataFrame:
    chosen = grids[grids["key"].isin(keys) & (grids["kind"] == "base")]
    if len(chosen) == 0:
        raise PlanningError("select one or more base grids to re-partition")
    area = shapely.union_all(chosen.geometry.to_numpy())
    inside = ctx.buildings.geometry.representative_point().within(area.buffer(0.01))
    b = ctx.buildings[inside.to_numpy() & (ctx.buildings["households"].fillna(0) > 0).to_numpy()]
    if len(b) == 0:
        raise PlanningError("the selected grids hold no households to partition")
    roads = ctx.roads[ctx.roads.intersects(area)]
    water = ctx.water[ctx.water.intersects(area)]
    parts, _ = partition(b, boundary=area, band=band, roads=roads, water=water)  # type: ignore[arg-type]
    return replace_grids(grids, keys, parts.geometry.to_numpy())


def _save(store: Store, d: Draft, grids: gpd.GeoDataFrame, action: str, detail: Mapping[str, Any],
          actor: str | None, now: datetime | None) -> int:
    rev = d.revision + 1
    ts = _now(now)
    with store.transaction():
        changed = store.update(
            "grid_drafts",
            {"id": d.id, "revision": d.revision, "status": "open"},
            {"revision": rev, "head": rev, "updated_at": ts, "note": action},
        )
        if changed != 1:
            raise ConflictError(f"draft {d.id} was changed by someone else meanwhile: reload it and edit again")
        # an edit after undo drops the undone revisions (as every editor's redo stack does)
        for table in ("draft_grids", "draft_edits"):
            for r in range(rev, d.head + 1):
                store.delete(table, {"draft_id": d.id, "revision": r})
        _write_revision(store, d.id, rev, grids)
        store.insert(
            "draft_edits",
            {"draft_id": d.id, "revision": rev, "ts": ts, "actor": actor, "action": action,
             "detail": json.dumps(dict(detail), ensure_ascii=False)},
        )
    return rev


def undo(store: Store, draft_id: int) -> int:
    d = _open(store, draft_id)
    if not d.can_undo:
        raise PlanningError("nothing to undo")
    store.update("grid_drafts", {"id": d.id}, {"revision": d.revision - 1})
    return d.revision - 1


def redo(store: Store, draft_id: int) -> int:
    d = _open(store, draft_id)
    if not d.can_redo:
        raise PlanningError("nothing to redo")
    store.update("grid_drafts", {"id": d.id}, {"revision": d.revision + 1})
    return d.revision + 1


def history(store: Store, draft_id: int) -> pd.DataFrame:
    return store.read("draft_edits", where={"draft_id": int(draft_id)}, order_by=["revision"])


def discard(store: Store, draft_id: int) -> None:
    d = _open(store, draft_id)
    store.update("grid_drafts", {"id": d.id}, {"status": "discarded", "updated_at": _now()})


def rebase(store: Store, draft_id: int) -> int:
    """Move a draft onto the version now in force (after another planner published): its grids
    are kept as they are; validation against the new state shows what to fix."""
    d = _open(store, draft_id)
    current = _unit(store, d.unit_code).version
    store.update("grid_drafts", {"id": d.id}, {"base_version": current, "updated_at": _now()})
    return current


# --------------------------------------------------------------------------- evaluation


@dataclass
class DraftState:
    """A draft as the planner sees it after every edit."""

    draft: Draft
    unit: Unit
    grids: gpd.GeoDataFrame  # lon/lat: key, code, ref, name, kind, households, buildings, band, status
    buildings: gpd.GeoDataFrame  # lon/lat: id, households, grid (key) — footprints
    report: AuditReport
    metric: gpd.GeoDataFrame = field(repr=False)  # the grids in the unit's metric CRS

    @property
    def households(self) -> int:
        return int(self.buildings["households"].fillna(0).sum())

    @property
    def in_band_share(self) -> float:
        base = self.grids[self.grids["kind"] == "base"]
        return float((base["status"] == "in_band").mean()) if len(base) else 0.0


def _refs(grids: pd.DataFrame) -> list[str]:
    return [c if isinstance(c, str) and c else f"+{int(k)}" for c, k in zip(grids["code"], grids["key"], strict=True)]


def evaluate(store: Store, draft_id: int, *, revision: int | None = None, ctx: UnitContext | None = None) -> DraftState:
    d = draft(store, draft_id)
    ctx = ctx or context(store, d.unit_code)
    grids = draft_grids(store, d.id, revision=d.revision if revision is None else revision, crs=ctx.crs)
    grids["ref"] = _refs(grids)
    band = d.band or ctx.unit.band
    counted, assignment = recount(grids, ctx.buildings, key="ref")
    staffed = _staffed_refs(grids, ctx)
    report = audit_grids(grids, parent=ctx.boundary, buildings=ctx.buildings, band=band, key="ref", staffed=staffed)
    counted["status"] = grid_status(counted["households"], counted["band_min"], counted["band_max"], counted["kind"])
    ref_to_key = dict(zip(grids["ref"], grids["key"], strict=True))
    b = ctx.buildings[["id", "households", "kind", "name", "geometry"]].copy()
    b["grid"] = [ref_to_key.get(r) if isinstance(r, str) else None for r in assignment.reindex(b.index)]
    return DraftState(
        draft=d,
        unit=ctx.unit,
        grids=counted.to_crs(LONLAT),
        buildings=gpd.GeoDataFrame(b, geometry="geometry", crs=ctx.crs).to_crs(LONLAT),
        report=report,
        metric=counted,
    )


def _staffed_refs(grids: gpd.GeoDataFrame, ctx: UnitContext) -> set[str]:
    """Refs of draft grids that will have a responsible worker after publishing: grids keeping a
    staffed code, and new grids that take households or area from a staffed grid."""
    out = {r for r, c in zip(grids["ref"], grids["code"], strict=True) if isinstance(c, str) and c in ctx.staffed}
    if len(ctx.live) and ctx.staffed:
        pairs = lineage(ctx.live[ctx.live["kind"] == "base"], grids[grids["kind"] == "base"], buildings=ctx.buildings,
                        old_key="code", new_key="ref")
        out |= set(pairs.loc[pairs["old"].isin(ctx.staffed), "new"].astype(str))
    return out


# --------------------------------------------------------------------------- publishing


@dataclass(frozen=True)
class PublishResult:
    unit_code: str
    version: int
    codes: dict[int, str]  # draft key -> code
    lineage: pd.DataFrame
    buildings_moved: int
    cases_moved: int
    staff_links: int
    warnings_accepted: tuple[str, ...]


def _used_codes(store: Store, unit_code: str) -> set[str]:
    archived = store.read("grid_archive", where={"unit_code": unit_code}, columns=["code"])
    return set(archived["code"].astype(str))


def publish(
    store: Store,
    draft_id: int,
    *,
    author: str | None = None,
    effective_at: datetime | None = None,
    accept_warnings: str | None = None,
    now: datetime | None = None,
) -> PublishResult:
    """Publish a draft as the unit's next grid version (see the module docstring)."""
    d = _open(store, draft_id)
    ctx = context(store, d.unit_code)
    state = evaluate(store, d.id, ctx=ctx)
    report = state.report
    if report.errors:
        n = len(report.errors)
        raise PublishRefused(f"draft {d.id} has {n} error{'s' if n != 1 else ''}: fix them before publishing", report)
    reason = (accept_warnings or "").strip()
    if report.warnings and not reason:
        n = len(report.warnings)
        raise PublishRefused(
            f"draft {d.id} has {n} warning{'s' if n != 1 else ''}: give a reason to accept them", report
        )
    if d.base_version != ctx.unit.version:
        raise ConflictError(
            f"the grids of {ctx.unit.name} were published as version {ctx.unit.version} after this draft began "
            f"from version {d.base_version}: nothing was published; rebase the draft, check it and publish again"
        )
    ts = _now(now)
    effective = (effective_at or ts).replace(microsecond=0)
    if effective.tzinfo is None:
        effective = effective.replace(tzinfo=UTC)
    new_version = ctx.unit.version + 1
    grids = state.metric.copy()
    used = _used_codes(store, d.unit_code) | set(ctx.live["code"].astype(str))
    codes = assign_codes(grids, previous=ctx.live, unit_code=d.unit_code, used=used)
    grids["code"] = codes.to_numpy()
    key_to_code = {int(k): str(c) for k, c in zip(grids["key"], grids["code"], strict=True)}
    names = _names(grids, ctx)
    pairs = lineage(ctx.live, grids, buildings=ctx.buildings, old_key="code", new_key="code")
    with store.transaction():
        claimed = store.update(
            "admin_units", {"code": d.unit_code, "grid_version": ctx.unit.version}, {"grid_version": new_version}
        )
        if claimed != 1:
            raise ConflictError(
                f"another planner published the grids of {ctx.unit.name} a moment ago: nothing was published; "
                "rebase the draft, check it and publish again"
            )
        if store.update("grid_drafts", {"id": d.id, "status": "open"}, {"status": "published", "updated_at": ts}) != 1:
            raise ConflictError(f"draft {d.id} was published or discarded meanwhile")
        _archive_current(store, ctx, ts)
        live = gpd.GeoDataFrame(
            {
                "code": grids["code"],
                "name": names,
                "unit_code": d.unit_code,
                "kind": grids["kind"],
                "purpose": grids["purpose"],
                "band_min": grids["band_min"],
                "band_max": grids["band_max"],
                "households": grids["households"].astype("int64"),
                "buildings": grids["buildings"].astype("int64"),
                "version": new_version,
            },
            geometry=[_multi(g) for g in grids.geometry],
            crs=ctx.crs,
        ).to_crs(LONLAT)
        store.delete("grids", {"unit_code": d.unit_code})
        store.write("grids", live)
        archive = live.drop(columns=["version"]).assign(version=new_version)
        store.write("grid_archive", archive)
        store.insert(
            "grid_versions",
            {
                "unit_code": d.unit_code,
                "version": new_version,
                "effective_at": effective,
                "published_at": ts,
                "published_by": author,
                "draft_id": d.id,
                "grids": len(live),
                "households": int(live.loc[live["kind"] == "base", "households"].sum()),
                "note": d.name,
                "accepted_warnings": reason or None,
            },
        )
        if len(pairs):
            lin = pairs.rename(columns={"old": "old_code", "new": "new_code", "area_share_of_old": "area_share"})
            lin = lin.assign(unit_code=d.unit_code, version=new_version)
            lin["households"] = lin["households"].fillna(0).round().astype("int64")
            store.write("grid_lineage", lin[["unit_code", "version", "old_code", "new_code", "households",
                                             "share_of_old", "share_of_new", "area_share"]])
        _finalize_crosswalk(store, d.id, key_to_code)
        moved = _reattribute_buildings(store, ctx, grids)
        cases = _reattribute_cases(store, ctx, live)
        staff = _reattribute_staff(store, ctx, pairs, set(live["code"]))
    return PublishResult(
        unit_code=d.unit_code,
        version=new_version,
        codes=key_to_code,
        lineage=pairs,
        buildings_moved=moved,
        cases_moved=cases,
        staff_links=staff,
        warnings_accepted=tuple(f.message for f in report.warnings) if reason else (),
    )


def _finalize_crosswalk(store: Store, draft_id: int, key_to_code: Mapping[int, str]) -> None:
    """Crosswalk rows written for a unified proposal name the draft's grids ``D<draft>+<key>``;
    publishing gives them their codes."""
    refs = [f"D{draft_id}+{k}" for k in key_to_code]
    rows = store.read("grid_crosswalk", where={"unified_code": refs})
    if len(rows) == 0:
        return
    store.delete("grid_crosswalk", {"unified_code": refs})
    rows["unified_code"] = [key_to_code[int(r.split("+", 1)[1])] for r in rows["unified_code"]]
    store.write("grid_crosswalk", rows, mode="upsert")


def _names(grids: gpd.GeoDataFrame, ctx: UnitContext) -> list[str]:
    out = []
    for name, code, kind in zip(grids["name"], grids["code"], grids["kind"], strict=True):
        seq = int(str(code)[-3:])
        default = f"{ctx.unit.name}第{seq}网格" if kind == "base" else f"{ctx.unit.name}专属网格{seq}"
        keep = isinstance(name, str) and name and code in set(ctx.live["code"])
        out.append(name if keep else default)
    return out


def _archive_current(store: Store, ctx: UnitContext, ts: datetime) -> None:
    """Keep the version in force readable: archive it unless it already is (the demo's and imported
    grids start unarchived at version 1)."""
    v = ctx.unit.version
    if store.count("grid_archive", where={"unit_code": ctx.unit.code, "version": v}) or len(ctx.live) == 0:
        return
    live = ctx.live.to_crs(LONLAT)
    cols = ["code", "name", "kind", "purpose", "band_min", "band_max", "households", "buildings"]
    archive = gpd.GeoDataFrame(live[cols].assign(unit_code=ctx.unit.code, version=v), geometry=live.geometry.values,
                               crs=LONLAT)
    store.write("grid_archive", archive)
    if not store.count("grid_versions", where={"unit_code": ctx.unit.code, "version": v}):
        store.insert(
            "grid_versions",
            {
                "unit_code": ctx.unit.code,
                "version": v,
                "effective_at": ts,
                "published_at": ts,
                "grids": len(live),
                "households": int(live.loc[live["kind"] == "base", "households"].fillna(0).sum()),
                "note": "grids in force before the first published plan",
            },
        )


def _point_to_code(points: gpd.GeoSeries, grids: gpd.GeoDataFrame) -> pd.Series:
    base = grids[grids["kind"] == "base"]
    out = pd.Series([None] * len(points), index=points.index, dtype=object)
    if len(base) == 0 or len(points) == 0:
        return out
    hit_pts, hit_grids = base.sindex.query(points, predicate="intersects")
    out.iloc[hit_pts[::-1]] = base["code"].to_numpy()[hit_grids[::-1]]
    return out


def _reattribute_buildings(store: Store, ctx: UnitContext, grids: gpd.GeoDataFrame) -> int:
    if len(ctx.buildings) == 0:
        return 0
    codes = _point_to_code(ctx.buildings.geometry.representative_point(), grids)
    changed = codes.to_numpy() != ctx.buildings["grid_code"].to_numpy()
    _set_grid_codes(store, "buildings", ctx.buildings["id"][changed], codes[changed], unit_code=ctx.unit.code)
    return int(changed.sum())


def _set_grid_codes(store: Store, table: str, ids: pd.Series, codes: pd.Series, **extra: Any) -> None:
    """``grid_code`` of the rows ``ids``: one UPDATE per new code (ids as an IN list)."""
    frame = pd.DataFrame({"id": ids.astype("int64").to_numpy(), "code": codes.to_numpy()})
    for code, group in frame.groupby("code", dropna=False):
        value = None if pd.isna(code) else str(code)
        ids_list = [int(i) for i in group["id"]]
        for start in range(0, len(ids_list), 500):
            store.update(table, {"id": ids_list[start:start + 500]}, {"grid_code": value, **extra})


def _reattribute_cases(store: Store, ctx: UnitContext, live: gpd.GeoDataFrame) -> int:
    cases = store.read("cases", where={"village_code": ctx.unit.code, "state": list(OPEN_STATES)},
                       columns=["id", "grid_code", "geom"])
    if len(cases) == 0:
        return 0
    codes = _point_to_code(cases.geometry, live)
    changed = codes.to_numpy() != cases["grid_code"].to_numpy()
    _set_grid_codes(store, "cases", cases["id"][changed], codes[changed])
    return int(changed.sum())


def _reattribute_staff(store: Store, ctx: UnitContext, pairs: pd.DataFrame, new_codes: set[str]) -> int:
    """A worker responsible for an old grid becomes responsible for the new grids that took its
    households (or area); links to grids that no longer exist are removed."""
    old_codes = list(ctx.live["code"].astype(str))
    if not old_codes:
        return 0
    links = store.read("staff_grids", where={"grid_code": old_codes})
    if len(links) == 0:
        return 0
    keep = links[links["grid_code"].isin(new_codes)]
    rows = set(zip(keep["staff_id"].astype("int64"), keep["grid_code"], strict=True))
    for staff_id, old in zip(links["staff_id"].astype("int64"), links["grid_code"], strict=True):
        for new in pairs.loc[pairs["old"] == old, "new"]:
            rows.add((int(staff_id), str(new)))
    store.delete("staff_grids", {"grid_code": old_codes})
    frame = pd.DataFrame(sorted(rows), columns=["staff_id", "grid_code"])
    if len(frame):
        store.write("staff_grids", frame, mode="upsert")
    return len(frame)


# --------------------------------------------------------------------------- versions


def versions(store: Store, unit_code: str) -> pd.DataFrame:
    """Every version of a unit's grids, oldest first (the one in force included even if it was
    never published through a draft)."""
    unit = _unit(store, unit_code)
    rows = store.read("grid_versions", where={"unit_code": unit_code}, order_by=["version"])
    if unit.version not in set(rows["version"].astype(int)):
        live = store.read("grids", where={"unit_code": unit_code}, columns=["households", "kind"])
        extra = pd.DataFrame(
            {"unit_code": [unit_code], "version": [unit.version], "grids": [len(live)],
             "households": [int(live.loc[live["kind"] == "base", "households"].fillna(0).sum())],
             "note": ["grids in force"]}
        )
        rows = pd.concat([rows, extra], ignore_index=True) if len(rows) else extra.reindex(
            columns=list(dict.fromkeys([*rows.columns, *extra.columns]))
        )
    rows["in_force"] = rows["version"].astype(int) == unit.version
    return rows


def version_grids(store: Store, unit_code: str, version: int) -> gpd.GeoDataFrame:
    rows = store.read("grid_archive", where={"unit_code": unit_code, "version": int(version)}, order_by=["code"])
    if len(rows):
        return rows
    unit = _unit(store, unit_code)
    if int(version) == unit.version:
        return store.read("grids", where={"unit_code": unit_code}, order_by=["code"])
    raise PlanningError(f"{unit.name} has no grid version {version}")


def version_diff(store: Store, unit_code: str, old: int, new: int) -> gpd.GeoDataFrame:
    """Before/after of two versions: key, status (unchanged|changed|added|removed), geometry (lon/lat)."""
    a, b = version_grids(store, unit_code, old), version_grids(store, unit_code, new)
    crs = _unit(store, unit_code).crs
    out = diff(a.to_crs(crs), b.to_crs(crs), old_key="code", new_key="code")
    return out.to_crs(LONLAT)


# --------------------------------------------------------------------------- map lookups


def grid_at(grids: gpd.GeoDataFrame, lon: float, lat: float, *, kinds: Collection[str] = ("base", "dedicated")) -> int | None:
    """The key of the grid under a clicked point (dedicated grids first: they lie on top)."""
    p = shapely.Point(lon, lat)
    hits = grids[grids.geometry.intersects(p) & grids["kind"].isin(list(kinds))]
    if len(hits) == 0:
        return None
    hits = hits.sort_values("kind", key=lambda s: s != "dedicated")
    return int(hits["key"].iloc[0])


def building_at(buildings: gpd.GeoDataFrame, lon: float, lat: float, *, tolerance_m: float = 3.0) -> int | None:
    """The id of the building under (or within a few metres of) a clicked point."""
    if len(buildings) == 0:
        return None
    p = gpd.GeoSeries([shapely.Point(lon, lat)], crs=LONLAT)
    crs = utm_crs(lon, lat)
    pm = p.to_crs(crs).iloc[0]
    near = buildings.iloc[buildings.sindex.query(p.iloc[0].buffer(tolerance_m / 80_000.0))]
    if len(near) == 0:
        return None
    dist = near.to_crs(crs).distance(pm)
    best = dist.idxmin()
    return int(near.loc[best, "id"]) if dist[best] <= tolerance_m else None


def grid_crossed(grids: gpd.GeoDataFrame, line: BaseGeometry) -> int | None:
    """The base grid a drawn split line crosses the longest (lon/lat in, key out)."""
    base = grids[grids["kind"] == "base"]
    if len(base) == 0:
        return None
    # only compared with each other, so degrees are fine here
    lengths = pd.Series(shapely.length(shapely.intersection(base.geometry.to_numpy(), line)), index=base.index)
    if lengths.max() <= 0:
        return None
    return int(base.loc[lengths.idxmax(), "key"])


# --------------------------------------------------------------------------- many units


def partition_units(
    store: Store,
    *,
    codes: Sequence[str] | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Partition every village/community (or ``codes``) from the store without writing: returns
    all proposed base grids (lon/lat; unit_code, label, households, buildings, in_band, oversized)
    and one row of figures per unit (grids, households, in_band share, seconds, error)."""
    import time

    if codes is None:
        units = store.read("admin_units", where={"level": "village"}, columns=["code"], order_by=["code"])
        codes = units["code"].astype(str).tolist()
    frames: list[gpd.GeoDataFrame] = []
    stats: list[dict[str, Any]] = []
    for code in codes:
        t0 = time.perf_counter()
        try:
            ctx = context(store, code)
            grids = partition_unit(ctx)
            grids = grids.to_crs(LONLAT).assign(unit_code=code)
            frames.append(grids)
            stats.append({"unit_code": code, "grids": len(grids), "households": int(grids["households"].sum()),
                          "in_band": float(grids["in_band"].mean()) if len(grids) else 0.0,
                          "seconds": time.perf_counter() - t0, "error": None})
        except (PlanningError, ValueError, StoreError) as exc:
            stats.append({"unit_code": code, "grids": 0, "households": 0, "in_band": 0.0,
                          "seconds": time.perf_counter() - t0, "error": str(exc)})
        if progress is not None:
            progress(1)
    if frames:
        out = gpd.GeoDataFrame(pd.concat(frames, ignore_index=True), geometry="geometry", crs=LONLAT)
    else:
        out = gpd.GeoDataFrame({"unit_code": []}, geometry=[], crs=LONLAT)
    return out, pd.DataFrame(stats)


def export_version(store: Store, unit_code: str, version: int, path: str | Path, *, crs: str | None = None) -> int:
    from services.files import write_layer

    return write_layer(version_grids(store, unit_code, version), path, name="grids", crs=crs)


# --------------------------------------------------------------------------- pickers


def unit_choices(store: Store) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(townships, villages) for the planner's pickers: code, name, parent_code, kind; by code."""
    cols = ["code", "name", "parent_code", "kind"]
    towns = store.read("admin_units", where={"level": "township"}, columns=cols, order_by=["code"])
    villages = store.read("admin_units", where={"level": "village"}, columns=cols, order_by=["code"])
    return pd.DataFrame(towns), pd.DataFrame(villages)


# --------------------------------------------------------------------------- legacy layers, unified grids


def import_legacy(store: Store, layer: str, path: str | Path, *, code_field: str = "code", crs: str | None = None,
                  name_field: str | None = "name") -> int:
    """Import one department's legacy grid layer (any GIS file) into ``legacy_grids`` under
    ``layer``, replacing that layer's previous rows. Raises ImportRejected/PlanningError."""
    from services.files import read_layer

    label = (layer or "").strip()
    if not label or len(label) > 60:
        raise PlanningError("give the legacy layer a name (1–60 characters), e.g. police or urban_management")
    frame, _report = read_layer(path, crs=crs, what=f"legacy layer {label}", geometry="polygon")
    if code_field not in frame.columns:
        raise PlanningError(f"the file has no {code_field!r} column; its columns: {', '.join(map(str, frame.columns))}")
    codes = frame[code_field].astype(str).str.strip()
    if (codes == "").any() or frame[code_field].isna().any():
        raise PlanningError(f"{int((codes == '').sum() + frame[code_field].isna().sum())} grid(s) have no {code_field}")
    dup = codes[codes.duplicated()].unique()
    if len(dup):
        raise PlanningError(f"{code_field} repeats in the file: {', '.join(map(str, dup[:5]))}")
    names = frame[name_field].astype(str) if name_field and name_field in frame.columns else None
    rows = gpd.GeoDataFrame(
        {"layer": label, "code": codes.to_numpy(), "name": None if names is None else names.to_numpy()},
        geometry=[_multi(g) for g in frame.geometry],
        crs=LONLAT,
    )
    with store.transaction():
        store.delete("legacy_grids", {"layer": label})
        store.write("legacy_grids", rows)
    return len(rows)


def legacy_layers(store: Store) -> pd.DataFrame:
    return store.group_count("legacy_grids", ["layer"])


def propose_unified(store: Store, unit_code: str, *, layers: Sequence[str] | None = None,
                    author: str | None = None) -> tuple[int, Any]:
    """Unify the legacy layers over a unit: a new draft holding the proposed unified grids, the
    crosswalk written to ``grid_crosswalk`` (unified codes are the draft's refs ``D<draft>+<key>``
    until publishing gives them real codes), and the :class:`geo.unify.Unified` result."""
    from geo.unify import unify

    ctx = context(store, unit_code)
    bbox = tuple(float(v) for v in ctx.unit.boundary.bounds)
    legacy = store.read("legacy_grids", bbox=bbox)  # type: ignore[arg-type]
    if layers:
        legacy = legacy[legacy["layer"].isin(list(layers))]
    if legacy["layer"].nunique() < 1:
        raise PlanningError(f"no legacy grid layer covers {ctx.unit.name}: import the departments' layers first")
    frames = {str(name): _geo(g.drop(columns=["layer"])).to_crs(ctx.crs) for name, g in legacy.groupby("layer")}
    result = unify(frames, boundary=ctx.boundary, buildings=ctx.buildings, band=ctx.unit.band)
    grids = result.grids.assign(kind="base", code=None)
    draft_id = create_draft(store, unit_code, method="frame", grids=grids, author=author,
                            name=f"{ctx.unit.name} unified from {', '.join(frames)}")
    cw = result.crosswalk.copy()
    position = {int(k): i + 1 for i, k in enumerate(result.grids["key"])}  # create_draft numbers rows 1..n
    cw["unified_code"] = [f"D{draft_id}+{position[int(k)]}" for k in cw["unified_key"]]
    cw = cw.groupby(["layer", "legacy_code", "unified_code"], as_index=False).agg(
        area_m2=("area_m2", "sum"), share_of_legacy=("share_of_legacy", "sum"),
        share_of_unified=("share_of_unified", "sum"))
    store.write("grid_crosswalk", cw, mode="upsert")
    return draft_id, result


def crosswalk(store: Store, unit_code: str) -> pd.DataFrame:
    """Crosswalk rows from legacy grids to the unit's unified grids (published codes, or draft refs)."""
    rows = store.read("grid_crosswalk", order_by=["layer", "legacy_code"])
    ids = {f"D{int(i)}+" for i in drafts(store, unit_code, status=None)["id"]}
    mine = [str(c).startswith(unit_code) or any(str(c).startswith(p) for p in ids) for c in rows["unified_code"]]
    return rows[mine].reset_index(drop=True)


def unit_outline(state: DraftState) -> gpd.GeoDataFrame:
    """The unit's boundary as a frame for the map (lon/lat)."""
    return gpd.GeoDataFrame({"code": [state.unit.code]}, geometry=gpd.GeoSeries([state.unit.boundary]), crs=LONLAT)


def map_view(geom: BaseGeometry, *, width_px: int, height_px: int) -> tuple[tuple[float, float], int]:
    """Centre (lat, lon) and zoom showing a lon/lat geometry whole on a map of the given size."""
    from services.overview import zoom_to_fit

    minx, miny, maxx, maxy = (float(v) for v in geom.bounds)
    zoom = zoom_to_fit((minx, miny, maxx, maxy), width_px=width_px, height_px=height_px)
    return ((miny + maxy) / 2.0, (minx + maxx) / 2.0), zoom
