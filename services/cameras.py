"""CCTV cameras: the registry's status, the map view, which cameras see a point or a case (video
dispatch), coverage of roads and open space per grid and community, blind spots, where to add
cameras.

Geometry is ``geo.cameras``' (fields of view occluded by building footprints); this module reads
what it needs from the store and keeps the results: coverage for a whole city takes minutes, so
``compute_coverage`` (``gridconsole coverage``) stores it in ``camera_coverage`` and
``camera_blind_spots`` and the pages read those.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import MultiLineString, Point

from geo.cameras import blind_spots, cameras_seeing, coverage, suggest_cameras, view_sectors, visible_areas
from geo.crs import metric_crs
from geo.locate import PolygonIndex
from services.cases import CaseError, _read_case, utc
from store.base import BBox, Store

SEE_PAD_M = 400.0  # cameras farther than this never see a point (the longest range we expect)
DEFAULT_RANGE_M = 50.0
SECTORS_FROM_ZOOM = 16  # fields of view drawn from this zoom on; below, points only
MAX_CAMERAS_DRAWN = 3000  # more in view: counts per street
SUGGEST_RANGE_M = 60.0  # a suggested camera: a dome seeing this far all round


class CameraError(ValueError):
    """A request about cameras that cannot be carried out; ``code`` is not_found or invalid."""

    def __init__(self, message: str, *, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


def _box(lon: float, lat: float, radius_m: float) -> BBox:
    dlat = radius_m / 111_000.0
    dlon = dlat / max(0.05, math.cos(math.radians(lat)))
    return (lon - dlon, lat - dlat, lon + dlon, lat + dlat)


def seeing(store: Store, *, lon: float, lat: float, limit: int = 10) -> pd.DataFrame:
    """Cameras whose view contains (lon, lat) within range and with a line of sight not blocked by
    a building, nearest and most head-on first: id, name, online, distance_m, bearing_deg,
    off_axis_deg, rank, stream_url, lon, lat."""
    if not (math.isfinite(lon) and math.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
        raise CameraError("lon and lat must be finite WGS84 coordinates")
    if not 1 <= limit <= 100:
        raise CameraError("limit is 1 to 100")
    box = _box(lon, lat, SEE_PAD_M)
    cams = store.read("cameras", bbox=box)
    cols = [
        "rank",
        "id",
        "name",
        "online",
        "distance_m",
        "bearing_deg",
        "off_axis_deg",
        "stream_url",
        "lon",
        "lat",
    ]
    if not len(cams):
        return pd.DataFrame({c: [] for c in cols})
    buildings = store.read("buildings", bbox=box, columns=["id"])
    got = cameras_seeing(
        cams, at=Point(lon, lat), crs=4326, buildings=buildings, default_range_m=DEFAULT_RANGE_M
    )
    got = got.head(limit)
    extra = cams.set_index("id")
    return got.assign(
        stream_url=got["id"].map(extra["stream_url"]),
        lon=got["id"].map(extra.geometry.x),
        lat=got["id"].map(extra.geometry.y),
    )[cols].reset_index(drop=True)


def seeing_case(store: Store, case_id: int, *, limit: int = 10) -> tuple[tuple[float, float], pd.DataFrame]:
    """The case's (lon, lat) and the cameras that see it."""
    try:
        cur = _read_case(store, case_id, ["id", "geometry"])
    except CaseError as e:
        raise CameraError(str(e), code="not_found") from None
    g = cur["geometry"]
    if g is None or g.is_empty:
        raise CameraError(f"case {case_id} has no location")
    return (float(g.x), float(g.y)), seeing(store, lon=float(g.x), lat=float(g.y), limit=limit)


def set_status(store: Store, updates: Iterable[tuple[str, bool]]) -> dict[str, list[str]]:
    """Online/offline pushed by the media gateway: {"updated": [...], "unchanged": [...],
    "unknown": [...]} — an unknown id changes nothing and is listed."""
    out: dict[str, list[str]] = {"updated": [], "unchanged": [], "unknown": []}
    pairs = [(str(i), bool(o)) for i, o in updates]
    if not pairs:
        return out
    known = store.read(
        "cameras", where={"id": [i for i, _ in pairs]}, columns=["id", "online"], geometry=False
    )
    now_online = dict(zip(known["id"].astype(str), known["online"], strict=True))
    with store.transaction():
        for cid, online in pairs:
            if cid not in now_online:
                out["unknown"].append(cid)
            elif (
                now_online[cid] is not None
                and not pd.isna(now_online[cid])
                and bool(now_online[cid]) == online
            ):
                out["unchanged"].append(cid)
            else:
                store.update("cameras", {"id": cid}, {"online": online})
                now_online[cid] = online
                out["updated"].append(cid)
    return out


def street_of(store: Store, points: gpd.GeoDataFrame, *, name: bool = False) -> pd.Series:
    """The township/street each point stands in (its code, or its name), None outside."""
    streets = store.read("admin_units", where={"level": "township"}, columns=["code", "name"])
    if not len(points) or not len(streets):
        return pd.Series([None] * len(points), index=points.index, dtype=object)
    codes = PolygonIndex(streets, key="code").lookup(points.geometry.x.to_numpy(), points.geometry.y.to_numpy())
    out = pd.Series(codes, index=points.index, dtype=object)
    return out.map(dict(zip(streets["code"], streets["name"], strict=True))) if name else out


def counts_per_street(store: Store, cams: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Cameras per township/street by where they stand (point in polygon: a registry's unit codes
    are often missing or coarse): code, name, cameras, online, at the street's label point."""
    streets = store.read("admin_units", where={"level": "township"}, columns=["code", "name"])
    cols: dict[str, list[Any]] = {"code": [], "name": [], "cameras": [], "online": []}
    if not len(cams) or not len(streets):
        return gpd.GeoDataFrame(cols, geometry=gpd.GeoSeries([], crs=4326), crs=4326)
    idx = PolygonIndex(streets, key="code")
    where = idx.lookup(cams.geometry.x.to_numpy(), cams.geometry.y.to_numpy())
    online = cams["online"].astype("boolean").fillna(False).astype(int).to_numpy()
    agg = (
        pd.DataFrame({"code": where, "online": online})
        .dropna(subset=["code"])
        .groupby("code")
        .agg(cameras=("online", "size"), online=("online", "sum"))
    )
    shapes = streets.merge(agg, left_on="code", right_index=True)
    pts = gpd.GeoSeries(shapes.geometry.representative_point(), crs=4326)
    return gpd.GeoDataFrame(shapes[["code", "name", "cameras", "online"]].reset_index(drop=True),
                            geometry=pts.to_numpy(), crs=4326)  # fmt: skip


@dataclass(frozen=True)
class CameraView:
    cameras: gpd.GeoDataFrame  # in view (empty when counted instead)
    sectors: gpd.GeoDataFrame | None  # fields of view at street zoom
    counts: gpd.GeoDataFrame | None  # code, name, cameras, online, geometry (too many to draw)
    stats: dict[str, int]


def camera_view(
    store: Store, *, bbox: BBox | None, zoom: int, max_drawn: int = MAX_CAMERAS_DRAWN
) -> CameraView:
    """What the cameras layer shows for a view: points (and, from SECTORS_FROM_ZOOM, their fields
    of view), or counts per street when more than ``max_drawn`` are in view."""
    cams = store.read("cameras", bbox=bbox)
    online = cams["online"].fillna(False).astype(bool)
    stats = {
        "cameras": len(cams),
        "online": int(online.sum()),
        "class1": int((cams["cam_class"] == "class1").sum()),
    }
    if len(cams) > max_drawn:
        counts = counts_per_street(store, cams)
        return CameraView(cams.head(0), None, counts, stats)
    cams = cams.assign(unit_name=street_of(store, cams, name=True))
    sectors = (
        view_sectors(cams, default_range_m=DEFAULT_RANGE_M)
        if zoom >= SECTORS_FROM_ZOOM and len(cams)
        else None
    )
    return CameraView(cams, sectors, None, stats)


@dataclass(frozen=True)
class CoverageRun:
    grids: int
    villages: int
    cameras: int
    blind_spots: int
    seconds: float


def compute_coverage(
    store: Store,
    *,
    progress: Callable[[str, int, int], None] | None = None,
    now: Any = None,
) -> CoverageRun:
    """Coverage of roads and open space for every grid and community, and the blind spots, for
    the whole city; replaces what ``camera_coverage``/``camera_blind_spots`` held. ``progress``
    gets (stage, done, total)."""
    t0 = time.perf_counter()
    stamp = utc(now)

    def say(stage: str, done: int, total: int) -> None:
        if progress:
            progress(stage, done, total)

    cams = store.read("cameras")
    buildings = store.read("buildings", columns=["id"])
    roads = store.read("roads", columns=["id"])
    grids = store.read("grids", columns=["code", "unit_code"])
    say("views", 0, len(cams))
    visible = visible_areas(
        cams,
        buildings,
        default_range_m=DEFAULT_RANGE_M,
        progress=lambda done, total: say("views", done, total),
    )
    table = coverage(
        grids, key="code", roads=roads, buildings=buildings, visible=visible, cameras=cams,
        progress=lambda done, total: say("grids", done, total),
    )  # fmt: skip
    table = table.reset_index() if "code" not in table.columns else table
    per_grid = table.assign(level="grid")
    unit_of = dict(zip(grids["code"], grids["unit_code"], strict=True))
    sums = ["road_m", "road_covered_m", "open_m2", "open_covered_m2", "cameras", "cameras_online"]
    per_village = (
        table.assign(code=table["code"].map(unit_of))
        .dropna(subset=["code"])
        .groupby("code", as_index=False)[sums]
        .sum()
    ).assign(level="village")
    cols = ["level", "code", *sums]
    rows = pd.concat([per_grid[cols], per_village[cols]], ignore_index=True).assign(computed_at=stamp)
    say("blind spots", 0, 1)
    spots = blind_spots(roads, visible=visible)
    if len(spots):
        idx = PolygonIndex(grids, key="code")
        mids = spots.geometry.interpolate(0.5, normalized=True)
        spots = spots.assign(code=idx.lookup_points(gpd.GeoSeries(mids, crs=spots.crs)))
        spots = spots.dropna(subset=["code"])
    say("blind spots", 1, 1)
    with store.transaction():
        store.write("camera_coverage", rows, mode="replace")
        store.write("camera_blind_spots", _spots_frame(spots, stamp), mode="replace")
    return CoverageRun(len(per_grid), len(per_village), len(cams), len(spots), time.perf_counter() - t0)


def _spots_frame(spots: gpd.GeoDataFrame, stamp: pd.Timestamp) -> gpd.GeoDataFrame:
    def multi(g: Any) -> Any:
        if g is None or g.is_empty:
            return None
        if g.geom_type == "LineString":
            return MultiLineString([g])
        if g.geom_type == "MultiLineString":
            return g
        lines = [p for p in getattr(g, "geoms", []) if p.geom_type == "LineString"]
        return MultiLineString(lines) if lines else None

    if not len(spots):
        return gpd.GeoDataFrame(
            {"code": [], "length_m": [], "computed_at": []}, geometry=gpd.GeoSeries([], crs=4326), crs=4326
        )
    geoms = gpd.GeoSeries([multi(g) for g in spots.to_crs(4326).geometry], crs=4326)
    out = gpd.GeoDataFrame({"code": spots["code"].astype(str).to_numpy(), "length_m": spots["length_m"].to_numpy(),
                            "computed_at": stamp}, geometry=geoms.to_numpy(), crs=4326)  # fmt: skip
    return out[out.geometry.notna()]


def coverage_table(store: Store, *, level: str = "village", unit_prefix: str | None = None) -> pd.DataFrame:
    """The stored coverage with names and shares: code, name, road_km, road_share, open_share,
    cameras, cameras_online, online_share, computed_at (empty before the first run)."""
    if level not in ("grid", "village"):
        raise CameraError("level is grid or village")
    rows = store.read("camera_coverage", where={"level": level})
    if unit_prefix:
        rows = rows[rows["code"].astype(str).str.startswith(unit_prefix)]
    table = "grids" if level == "grid" else "admin_units"
    names = (
        store.read(table, where={"code": list(rows["code"])}, columns=["code", "name"], geometry=False)
        if len(rows)
        else None
    )
    name_of = dict(zip(names["code"], names["name"], strict=True)) if names is not None else {}

    def share(a: pd.Series, b: pd.Series) -> pd.Series:
        return (a / b.where(b > 0)).round(4)

    return (
        pd.DataFrame(
            {
                "code": rows["code"],
                "name": rows["code"].map(name_of),
                "road_km": (rows["road_m"] / 1000).round(2),
                "road_share": share(rows["road_covered_m"], rows["road_m"]),
                "open_share": share(rows["open_covered_m2"], rows["open_m2"]),
                "cameras": rows["cameras"].fillna(0).astype(int),
                "cameras_online": rows["cameras_online"].fillna(0).astype(int),
                "online_share": share(rows["cameras_online"], rows["cameras"]),
                "computed_at": rows["computed_at"],
            }
        )
        .sort_values("road_share", na_position="first")
        .reset_index(drop=True)
    )


def coverage_map(store: Store, *, unit_code: str) -> tuple[gpd.GeoDataFrame, gpd.GeoDataFrame]:
    """For one community (12-digit code) or grid (15-digit): its grids with their stored
    coverage (code, name, road_km, road_share, open_share, cameras, cameras_online,
    online_share) and the blind spots in them, longest first (id, code, length_m, lon, lat of the
    middle; line geometry). Empty frames before the first ``compute_coverage``."""
    if len(unit_code) == 15:
        grids = store.read("grids", where={"code": unit_code}, columns=["code", "name"])
    else:
        grids = store.read("grids", where={"unit_code": unit_code}, columns=["code", "name"])
    if not len(grids):
        raise CameraError(f"there is no grid or community {unit_code}", code="not_found")
    table = coverage_table(store, level="grid", unit_prefix=unit_code[:12]).drop(columns=["name"])
    areas = grids.merge(table, on="code", how="left")
    areas = gpd.GeoDataFrame(areas, geometry="geometry", crs=grids.crs)
    spots = store.read("camera_blind_spots", where={"code": list(grids["code"])}, order_by=["-length_m"])
    if len(spots):
        # the middle of each line, for the list (degrees are fine for finding it on the map)
        mids = shapely.line_interpolate_point(np.asarray(spots.geometry.array, dtype=object), 0.5, normalized=True)
        spots = spots.assign(lon=np.round(shapely.get_x(mids), 6), lat=np.round(shapely.get_y(mids), 6))
    else:
        spots = spots.assign(lon=pd.Series(dtype=float), lat=pd.Series(dtype=float))
    return areas, spots


def blind_spots_in(store: Store, *, bbox: BBox | None, limit: int = 2000) -> gpd.GeoDataFrame:
    """Stored blind spots in view, longest first."""
    return store.read("camera_blind_spots", bbox=bbox, order_by=["-length_m"], limit=limit)


def suggest(store: Store, *, unit_code: str, k: int = 5) -> tuple[gpd.GeoDataFrame, dict[str, float]]:
    """Where to add ``k`` cameras in one grid or community to cover the most uncovered road
    (greedy; the dict says how good it is against an upper bound)."""
    if not 1 <= k <= 50:
        raise CameraError("k is 1 to 50")
    table = "grids" if len(unit_code) == 15 else "admin_units"
    area = store.read(table, where={"code": unit_code})
    if not len(area):
        raise CameraError(f"there is no grid or community {unit_code}", code="not_found")
    b = area.total_bounds
    box = (float(b[0]), float(b[1]), float(b[2]), float(b[3]))
    shape = area.geometry.iloc[0]
    roads = store.read("roads", bbox=box, columns=["id"])
    roads = gpd.GeoDataFrame(roads, geometry=roads.geometry.intersection(shape), crs=4326)
    roads = roads[~roads.geometry.is_empty]
    pad = _box(float(b[0]), float(b[1]), SEE_PAD_M)
    wide = (pad[0], pad[1], float(b[2]) + (b[0] - pad[0]), float(b[3]) + (b[1] - pad[1]))
    cams = store.read("cameras", bbox=wide)
    buildings = store.read("buildings", bbox=wide, columns=["id"])
    visible = visible_areas(cams, buildings, default_range_m=DEFAULT_RANGE_M, crs=metric_crs(area))
    points, stats = suggest_cameras(roads, visible=visible, buildings=buildings, k=k, range_m=SUGGEST_RANGE_M)
    return points.to_crs(4326) if len(points) else points, stats
