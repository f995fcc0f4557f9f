"""Who should take a case: candidate staff ranked by travel, workload, role and grid, and the surge
plan that assigns many cases at once with the least total travel.

Reads what ranking needs from the store (latest positions around the case, the roster, who is
responsible for the case's grid, everyone's open workload) and hands it to ``geo.dispatch``, which
does the ranking in metres. The road network for road distances is built once per store from the
``roads`` table and cached.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import pandas as pd

from geo.dispatch import RankWeights, cluster_outlines, plan_assignment, rank_candidates, space_time_clusters
from geo.network import RoadNetwork
from services.cases import (
    OPEN_STATES,
    WORKING_STATES,
    CaseError,
    _read_case,
    categories,
    category,
    open_cases,
    utc,
)
from store.base import Store

SEARCH_RADIUS_M = 5000.0
START_RADIUS_M = 1500.0  # the first box searched; widened while it could miss someone better
SPEED_MPS = 4.0  # travel speed for ETAs (a mix of walking and e-bikes)
FRESH_S = 900.0  # a position older than 15 minutes is stale for dispatch
MAX_WORKLOAD = 8
ROLE_FAMILIES = {  # a category's handler role, and who else can stand in
    "grid_worker_full": ("grid_worker_full", "grid_worker_part"),
    "police": ("police",),
    "mediator": ("mediator", "legal_adviser", "grid_worker_full"),
    "legal_adviser": ("legal_adviser", "mediator"),
}


def _deg_box(lon: float, lat: float, radius_m: float) -> tuple[float, float, float, float]:
    dlat = radius_m / 111_000.0
    dlon = dlat / max(0.05, math.cos(math.radians(lat)))
    return (lon - dlon, lat - dlat, lon + dlon, lat + dlat)


def workloads(store: Store, staff_ids: Sequence[int] | None = None) -> pd.Series:
    """Open cases (dispatched, accepted, in progress) per assignee."""
    where: dict[str, Any] = {"state": list(WORKING_STATES)}
    if staff_ids is not None:
        if not len(staff_ids):
            return pd.Series(dtype="int64")
        where["assignee_id"] = [int(i) for i in staff_ids]
    g = store.group_count("cases", ["assignee_id"], where=where)
    g = g.dropna(subset=["assignee_id"])
    return pd.Series(g["n"].to_numpy(int), index=g["assignee_id"].astype("int64").to_numpy())


def staff_frame(
    store: Store,
    *,
    bbox: tuple[float, float, float, float] | None,
    extra_ids: Sequence[int] = (),
    now: Any = None,
) -> gpd.GeoDataFrame:
    """Staff with a position in ``bbox`` plus ``extra_ids`` (with or without one), in the columns
    geo.dispatch.rank_candidates reads: staff_id, name, role, on_duty, age_s, workload, grids,
    unit_code, geometry (EPSG:4326; None without a position)."""
    now_ts = utc(now)
    near = store.read("latest_positions", bbox=bbox, columns=["staff_id", "ts"]) if bbox else None
    ids = set(int(i) for i in extra_ids)
    if near is not None:
        ids |= set(near["staff_id"].astype(int))
    cols = ["staff_id", "name", "role", "on_duty", "unit_code", "age_s", "workload", "grids"]
    if not ids:
        return gpd.GeoDataFrame({c: [] for c in cols}, geometry=gpd.GeoSeries([], crs=4326), crs=4326)
    id_list = sorted(ids)
    roster = store.read("staff", where={"id": id_list}, columns=["id", "name", "role", "on_duty", "unit_code"])
    roster = roster.rename(columns={"id": "staff_id"})
    pos = near if near is not None else store.read("latest_positions", where={"staff_id": id_list}, columns=["staff_id", "ts"])
    have = set(pos["staff_id"].astype(int))
    missing = [i for i in id_list if i not in have]  # responsible staff outside the box
    if missing:
        more = store.read("latest_positions", where={"staff_id": missing}, columns=["staff_id", "ts"])
        pos = pd.concat([pos, more], ignore_index=True) if len(more) else pos
    pos = pos.drop_duplicates("staff_id").set_index("staff_id")
    sids = roster["staff_id"].astype("int64").to_numpy()
    ts = pd.to_datetime(pos["ts"], utc=True).reindex(sids)
    geom = pd.Series(list(pos.geometry), index=pos.index, dtype=object).reindex(sids)
    load = workloads(store, id_list)
    sg = store.read("staff_grids", where={"staff_id": id_list})
    grids: dict[int, tuple[str, ...]] = {}
    for sid, code in zip(sg["staff_id"].astype(int), sg["grid_code"].astype(str), strict=True):
        grids[sid] = (*grids.get(sid, ()), code)
    frame = pd.DataFrame(
        {
            "staff_id": sids,
            "name": roster["name"].to_numpy(),
            "role": roster["role"].to_numpy(),
            "on_duty": roster["on_duty"].fillna(False).astype(bool).to_numpy(),
            "unit_code": roster["unit_code"].to_numpy(),
            "age_s": (now_ts - ts).dt.total_seconds().clip(lower=0).to_numpy(),
            "workload": load.reindex(sids).fillna(0).astype(int).to_numpy(),
            "grids": [grids.get(int(i), ()) for i in sids],
        }
    )
    return gpd.GeoDataFrame(frame, geometry=gpd.GeoSeries(geom.to_numpy(), crs=4326), crs=4326)


_NETWORKS: dict[str, tuple[int, RoadNetwork]] = {}
_NET_LOCK = threading.Lock()


def road_network(store: Store) -> RoadNetwork | None:
    """The city's road graph (built once per store and kept until the roads change); None when
    the city has no roads."""
    n = store.count("roads")
    with _NET_LOCK:
        hit = _NETWORKS.get(store.url)
        if hit and hit[0] == n:
            return hit[1]
    if not n:
        return None
    net = RoadNetwork.from_roads(store.read("roads", columns=["id", "kind"]))
    with _NET_LOCK:
        _NETWORKS[store.url] = (n, net)
    return net


def preferred_roles(handler_role: Any) -> tuple[str, ...]:
    if not isinstance(handler_role, str) or not handler_role:
        return ()
    return ROLE_FAMILIES.get(handler_role, (handler_role,))


@dataclass(frozen=True)
class Candidates:
    case_id: int
    lon: float
    lat: float
    grid_code: str | None
    rev: int
    state: str
    table: pd.DataFrame  # geo.dispatch.rank_candidates' columns + unit_code


def candidates(
    store: Store,
    case_id: int,
    *,
    limit: int = 10,
    roads: bool = True,
    radius_m: float = SEARCH_RADIUS_M,
    now: Any = None,
) -> Candidates:
    """The best ``limit`` people for a case (see geo.dispatch.rank_candidates for the score and
    the reason codes). Staff responsible for the case's grid are always considered, so a case in
    an area where positions are missing or stale still gets the grid's own workers."""
    if not (1 <= int(limit) <= 100):
        raise CaseError("limit is 1 to 100", field="limit")
    cur = _read_case(store, case_id, ["id", "category", "grid_code", "rev", "state", "geometry"])
    g = cur["geometry"]
    if g is None or g.is_empty:
        raise CaseError(f"case {case_id} has no location", field="lat")
    grid = None if pd.isna(cur["grid_code"]) else str(cur["grid_code"])
    responsible = (
        store.read("staff_grids", where={"grid_code": grid})["staff_id"].astype(int).tolist() if grid else []
    )
    try:
        roles = preferred_roles(category(store, str(cur["category"]))["handler_role"])
    except CaseError:
        roles = ()
    network = road_network(store) if roads else None
    # Search a small box first and widen it only while someone outside could still rank among the
    # first ``limit``: a person r metres away scores at least r / SPEED_MPS (travel time; a road
    # distance is never shorter than the straight one) plus the not-responsible penalty (everyone
    # responsible for the grid is read whatever the box), so once the limit-th score is below that,
    # the ranking inside the box is the ranking of the whole radius.
    floor = RankWeights().not_responsible_s if grid else 0.0
    search = min(START_RADIUS_M, radius_m)
    while True:
        staff = staff_frame(store, bbox=_deg_box(g.x, g.y, search), extra_ids=responsible, now=now)
        table = rank_candidates(
            staff,
            at=g,
            crs=4326,
            grid_code=grid,
            preferred_roles=roles,
            max_age_s=FRESH_S,
            max_workload=MAX_WORKLOAD,
            speed_mps=SPEED_MPS,
            network=network,
            radius_m=search,
            limit=int(limit),
        )
        near = table[table["fresh"] & table["on_duty"] & (table["distance_m"] <= search)]
        if search >= radius_m or (len(near) >= int(limit) and float(near["score"].max()) <= search / SPEED_MPS + floor):
            break
        search = min(search * 2, radius_m)
    units = dict(zip(staff["staff_id"], staff["unit_code"], strict=True))
    table = table.assign(unit_code=table["staff_id"].map(units))
    rev = 0 if pd.isna(cur["rev"]) else int(cur["rev"])
    return Candidates(int(case_id), float(g.x), float(g.y), grid, rev, str(cur["state"]), table.reset_index(drop=True))


def surge_plan(
    store: Store,
    *,
    case_ids: Sequence[int] | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    capacity: int = 2,
    max_distance_m: float = SEARCH_RADIUS_M,
    roads: bool = False,
    now: Any = None,
) -> pd.DataFrame:
    """A proposal for many unassigned cases at once (a storm, a surge of 12345 calls): the
    assignment with the least total travel in which nobody gets more than ``capacity`` new cases
    or goes over MAX_WORKLOAD. Columns: case_id, staff_id, name, distance_m (staff_id None when
    nobody fresh is within reach). Nothing is assigned until the dispatcher confirms it
    (services.cases.bulk)."""
    if not (1 <= capacity <= MAX_WORKLOAD):
        raise CaseError(f"capacity is 1 to {MAX_WORKLOAD}", field="capacity")
    cases = open_cases(store, bbox=bbox, states=("reported", "filed"), now=now)
    if case_ids is not None:
        cases = cases[cases["id"].isin([int(i) for i in case_ids])]
    cases = cases[cases.geometry.notna() & ~cases.geometry.is_empty]
    cols = ["case_id", "staff_id", "name", "distance_m"]
    if not len(cases):
        return pd.DataFrame({c: [] for c in cols})
    b = cases.total_bounds
    pad = _deg_box(float(b[0]), float(b[1]), max_distance_m)
    box = (pad[0], pad[1], float(b[2]) + (b[0] - pad[0]), float(b[3]) + (b[1] - pad[1]))
    staff = staff_frame(store, bbox=box, now=now)
    fresh = staff[(staff["age_s"] <= FRESH_S) & staff["on_duty"]]
    if not len(fresh):
        return pd.DataFrame({"case_id": cases["id"].astype(int), "staff_id": None, "name": None, "distance_m": math.nan})
    room = {int(s): max(0, min(capacity, MAX_WORKLOAD - int(w))) for s, w in zip(fresh["staff_id"], fresh["workload"], strict=True)}
    plan = plan_assignment(
        cases[["id", "geometry"]],
        fresh,
        capacity=room,
        max_distance_m=max_distance_m,
        network=road_network(store) if roads else None,
    )
    names = dict(zip(fresh["staff_id"].astype(int), fresh["name"], strict=True))
    plan = plan.assign(name=plan["staff_id"].map(lambda s: names.get(int(s)) if pd.notna(s) else None))
    return plan[cols].reset_index(drop=True)


MAX_CASES_DRAWN = 2000  # more open cases than this in view: one bubble per street instead


@dataclass(frozen=True)
class Board:
    """What the dispatch page shows for one view: the cases in it (or counts per street when there
    are too many to draw), the similar-case clusters and the headline numbers."""

    cases: gpd.GeoDataFrame  # open_cases' columns + category_name, assignee_name, cluster
    counts: gpd.GeoDataFrame | None  # code, name, open, overdue, geometry (when cases are too many)
    outlines: gpd.GeoDataFrame  # cluster outlines (geo.dispatch.cluster_outlines)
    stats: dict[str, int]


def board(
    store: Store,
    *,
    bbox: tuple[float, float, float, float] | None,
    lang: str = "zh",
    states: Sequence[str] | None = None,
    categories_: Sequence[str] | None = None,
    unit_prefix: str | None = None,
    overdue_only: bool = False,
    clusters: bool = True,
    max_drawn: int = MAX_CASES_DRAWN,
    now: Any = None,
) -> Board:
    cases = open_cases(store, bbox=bbox, states=states or OPEN_STATES, categories_=categories_,
                       unit_prefix=unit_prefix, now=now)  # fmt: skip
    if overdue_only:
        cases = cases[cases["overdue"] | cases["due_soon"]]
    stats = {
        "open": len(cases),
        "unassigned": int(cases["state"].isin(("reported", "filed")).sum()),
        "overdue": int(cases["overdue"].sum()),
        "due_soon": int(cases["due_soon"].sum()),
        "escalated": int((cases["escalation_level"] > 0).sum()),
    }
    cats = categories(store)
    name_col = "name_zh" if lang == "zh" else "name_en"
    names = dict(zip(cats["code"], cats[name_col], strict=True))
    counts = None
    empty_outlines = gpd.GeoDataFrame({"cluster": [], "category": [], "category_name": [], "n": [], "first": [],
                                       "last": []}, geometry=gpd.GeoSeries([], crs=4326), crs=4326)  # fmt: skip
    if len(cases) > max_drawn:
        counts = _counts_by_street(store, cases)
        cases = cases.head(0)
    ids = [int(i) for i in cases["assignee_id"].dropna().unique()]
    staff = store.read("staff", where={"id": ids}, columns=["id", "name"]) if ids else None
    who = dict(zip(staff["id"].astype(int), staff["name"], strict=True)) if staff is not None else {}
    cases = cases.assign(
        category_name=cases["category"].map(names).fillna(cases["category"]),
        assignee_name=cases["assignee_id"].map(lambda v: who.get(int(v)) if pd.notna(v) else None),
    )
    outlines = empty_outlines
    if clusters and len(cases):
        labels = space_time_clusters(cases, by="category")
        cases = cases.assign(cluster=labels)
        if labels.notna().any():
            outlines = cluster_outlines(cases, labels)
            outlines = outlines.assign(category_name=outlines["category"].map(names).fillna(outlines["category"]))
    else:
        cases = cases.assign(cluster=pd.Series([pd.NA] * len(cases), index=cases.index, dtype="Int64"))
    return Board(gpd.GeoDataFrame(cases, geometry="geometry", crs=4326), counts, outlines, stats)


def _counts_by_street(store: Store, cases: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    key = cases["township_code"].fillna(cases["village_code"].fillna("").astype(str).str[:9])
    agg = pd.DataFrame({"code": key, "overdue": cases["overdue"].astype(int)}).groupby("code").agg(
        open=("overdue", "size"), overdue=("overdue", "sum")
    )
    units = store.read("admin_units", where={"code": list(agg.index)}, columns=["code", "name"])
    merged = gpd.GeoDataFrame(units.merge(agg, left_on="code", right_index=True), geometry="geometry", crs=4326)
    points = gpd.GeoSeries(merged.geometry.representative_point(), crs=4326)
    return gpd.GeoDataFrame(merged[["code", "name", "open", "overdue"]], geometry=points, crs=4326)


def point_frame(lon: float, lat: float) -> gpd.GeoDataFrame:
    """One lon/lat point as a frame (for drawing the case a candidate line starts from)."""
    return gpd.GeoDataFrame({"id": [0]}, geometry=gpd.points_from_xy([lon], [lat]), crs=4326)


def lonlat_points(table: pd.DataFrame) -> gpd.GeoDataFrame:
    """A table's lon/lat columns (NaN where unknown) as a point frame in the same order: where
    candidates or cameras are drawn."""
    return gpd.GeoDataFrame(index=table.index, geometry=gpd.points_from_xy(table["lon"], table["lat"]), crs=4326)
