"""A deterministic demo city at Tieling's real location.

``generate(spec, seed=..., now=...)`` builds, in a metric CRS (UTM 51N) and converted to lon/lat at the
end, everything the console shows:

- the admin hierarchy city → county → street/town/township → community/village with GB/T-style codes,
  nested exactly (counties are Voronoi cells of their seats, urban cores are street blocks, rural
  townships and villages are Voronoi cells inside what is left);
- roads (urban block grid, rural trees linking villages to township and county seats) and a river;
- buildings: apartment slabs in urban blocks (households = floors × stairwells × 2 per landing) and
  single-family houses in village clusters (1 household each), schools, hospitals and markets;
- micro-grids drawn by a real partition of the buildings (``geo.partition``), coded west→east,
  north→south (``geo.codes``), plus dedicated grids over campuses;
- staff with responsibilities and latest positions, cameras at intersections and facilities facing
  along the street, facilities (mediation rooms, talk-it-out points, risk points);
- years of cases with categories, hot spots, seasons, time limits, states and their event history.

Same spec + seed + now → the same city.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from shapely.geometry import LineString, MultiPoint, Point, Polygon
from shapely.geometry.base import BaseGeometry

from demo.cases import DEPARTMENTS, categories_frame, generate_cases
from demo.names import COUNTY_NAMES, PlaceNamer, person_names, phones
from demo.specs import CitySpec, CountySpec
from geo.codes import grid_codes
from geo.partition import partition

METRIC = "EPSG:32651"  # UTM zone 51N covers Tieling (120°E–126°E)
LONLAT = "EPSG:4326"
URBAN_BAND = (80, 120)
RURAL_BAND = (30, 50)
BLOCK_PITCH = (260.0, 210.0)  # metres, street centre to street centre
ROAD_HALF = 10.0

Progress = Callable[[str, int], None]


def _no_progress(stage: str, n: int) -> None:
    return None


@dataclass
class DemoCity:
    """All tables of a generated city, in lon/lat, ready for ``Store.write``."""

    spec: CitySpec
    seed: int
    now: datetime
    frames: dict[str, pd.DataFrame] = field(default_factory=dict)

    def tables(self) -> Iterator[tuple[str, pd.DataFrame]]:
        order = (
            "admin_units",
            "grids",
            "buildings",
            "roads",
            "water",
            "facilities",
            "staff",
            "staff_grids",
            "latest_positions",
            "cameras",
            "case_categories",
            "departments",
            "cases",
            "case_events",
        )
        for name in order:
            if name in self.frames:
                yield name, self.frames[name]

    def summary(self) -> dict[str, int]:
        out = {name: len(df) for name, df in self.tables()}
        out["households"] = int(self.frames["buildings"]["households"].sum())
        return out


# --------------------------------------------------------------------------------------------
# small geometric helpers (metric CRS)


def _to_metric(points: list[tuple[float, float]]) -> np.ndarray:
    s = gpd.GeoSeries([Point(p) for p in points], crs=LONLAT).to_crs(METRIC)
    return np.column_stack([s.x.to_numpy(), s.y.to_numpy()])


def _dart_throw(
    rng: np.random.Generator, region: BaseGeometry, n: int, *, avoid: np.ndarray | None = None
) -> np.ndarray:
    """n well-spread random points inside region (min-distance rejection sampling)."""
    if n <= 0:
        return np.empty((0, 2))
    minx, miny, maxx, maxy = region.bounds
    cand = rng.uniform([minx, miny], [maxx, maxy], size=(max(400, n * 60), 2))
    cand = cand[shapely.contains_xy(region, cand[:, 0], cand[:, 1])]
    if len(cand) == 0:
        p = region.representative_point()
        return np.array([[p.x, p.y]] * n) + rng.normal(0, 1, (n, 2))
    spacing = math.sqrt(region.area / n) * 0.75
    for _ in range(8):
        chosen: list[np.ndarray] = []
        fixed = avoid if avoid is not None and len(avoid) else np.empty((0, 2))
        for c in cand:
            pts = np.vstack([fixed, *chosen]) if chosen else fixed
            if len(pts) == 0 or np.min(np.hypot(*(pts - c).T)) >= spacing:
                chosen.append(c)
                if len(chosen) == n:
                    return np.array(chosen)
        spacing *= 0.7
    # Not enough room: fill with the remaining candidates.
    extra = cand[: n - len(chosen)]
    return np.vstack([np.array(chosen).reshape(-1, 2), extra])[:n]


def _voronoi_cells(seeds: np.ndarray, region: BaseGeometry) -> list[BaseGeometry]:
    """One cell per seed (same order), clipped to region."""
    if len(seeds) == 1:
        return [region]
    mp = MultiPoint([tuple(p) for p in seeds])
    cells = shapely.voronoi_polygons(mp, extend_to=region.envelope.buffer(1000), ordered=True)
    out = [shapely.intersection(c, region) for c in shapely.get_parts(cells)]
    return [shapely.make_valid(c) for c in out]


def _polygonal(geom: BaseGeometry) -> BaseGeometry:
    """Keep only the polygon parts (intersections can leave stray lines)."""
    parts = [g for g in shapely.get_parts(geom) if g.geom_type in ("Polygon", "MultiPolygon")]
    if not parts:
        return shapely.Polygon()
    return shapely.union_all(parts)


def _multi(geom: BaseGeometry) -> BaseGeometry:
    geom = _polygonal(geom)
    if geom.geom_type == "Polygon":
        return shapely.MultiPolygon([geom])  # type: ignore[list-item]
    return geom


# --------------------------------------------------------------------------------------------


class _Builder:
    def __init__(self, spec: CitySpec, seed: int, progress: Progress) -> None:
        self.spec = spec
        self.rng = np.random.default_rng(seed)
        self.names = PlaceNamer(np.random.default_rng(seed + 1))
        self.progress = progress
        self.units: list[dict] = []  # admin units (metric geometry)
        self.buildings: list[dict] = []
        self.roads: list[dict] = []
        self.campuses: list[dict] = []  # dedicated-grid sites
        self.intersections: list[tuple[float, float, float, str]] = []  # x, y, street angle, county
        self.village_entrances: list[tuple[float, float, float, str]] = []

    # -- hierarchy -----------------------------------------------------------------------------
    def build_admin(self) -> None:
        spec = self.spec
        outline = Polygon(_to_metric(list(spec.outline)))
        seats = _to_metric([c.seat for c in spec.counties])
        county_cells = _voronoi_cells(seats, outline)
        self.units.append(
            dict(code=spec.code, name=spec.name, level="city", kind="city", parent_code=None, geom=outline)
        )
        self.water = self._river(outline, seats[0])
        for cspec, cell, seat in zip(spec.counties, county_cells, seats, strict=True):
            name, kind = COUNTY_NAMES.get(cspec.code, (f"县{cspec.code}", "county"))
            self.units.append(
                dict(code=cspec.code, name=name, level="county", kind=kind, parent_code=spec.code, geom=cell)
            )
            core = self._urban_core(cspec, cell, seat)
            self._rural(cspec, shapely.difference(cell, core) if core is not None else cell, seat)
            self.progress("admin", 1)

    def _river(self, outline: BaseGeometry, anchor: np.ndarray) -> BaseGeometry:
        minx, miny, maxx, maxy = outline.bounds
        xs = np.linspace(minx - 2000, maxx + 2000, 400)
        rel = xs - anchor[0]
        ys = anchor[1] - 2600 + 700 * np.sin(rel / 3100.0) + 0.12 * rel + 300 * np.sin(rel / 900.0)
        line = LineString(np.column_stack([xs, ys]))
        return shapely.intersection(line.buffer(70, quad_segs=4), outline)

    def _urban_core(self, cspec: CountySpec, cell: BaseGeometry, seat: np.ndarray) -> BaseGeometry | None:
        spec = self.spec
        n = cspec.communities
        if n == 0:
            return None
        bc, br = spec.blocks_per_community
        cw, ch = bc * BLOCK_PITCH[0], br * BLOCK_PITCH[1]
        cols = max(1, math.ceil(math.sqrt(n * ch / cw)))
        rows = math.ceil(n / cols)
        x0 = seat[0] - cols * cw / 2
        y1 = seat[1] + rows * ch / 2  # north edge; row 0 is the northernmost
        sc, sr = spec.communities_per_street
        streets: dict[tuple[int, int], list[tuple[int, int]]] = {}
        for i in range(n):
            r, c = divmod(i, cols)
            streets.setdefault((r // sr, c // sc), []).append((r, c))
        rects: dict[tuple[int, int], BaseGeometry] = {}
        for r in range(rows):
            for c in range(cols):
                rects[(r, c)] = shapely.box(x0 + c * cw, y1 - (r + 1) * ch, x0 + (c + 1) * cw, y1 - r * ch)
        core_parts = []
        for s_idx, key in enumerate(sorted(streets)):
            members = streets[key]
            street_geom = shapely.intersection(shapely.union_all([rects[m] for m in members]), cell)
            if street_geom.is_empty:
                continue
            scode = f"{cspec.code}{s_idx + 1:03d}"
            self.units.append(
                dict(
                    code=scode,
                    name=f"{self.names.stem()}街道",
                    level="township",
                    kind="street",
                    parent_code=cspec.code,
                    geom=street_geom,
                )
            )
            core_parts.append(street_geom)
            for k, m in enumerate(members):
                geom = shapely.intersection(rects[m], cell)
                if geom.is_empty:
                    continue
                ccode = f"{scode}{k + 1:03d}"
                cname = f"{self.names.stem()}社区"
                self.units.append(
                    dict(code=ccode, name=cname, level="village", kind="community", parent_code=scode, geom=geom)
                )
                r, c = m
                self._urban_blocks(
                    ccode, cname, cspec.code, x0 + c * cw, y1 - (r + 1) * ch, bc, br, geom
                )
        core = shapely.union_all(core_parts)
        # The block street grid over the whole core.
        for c in range(cols * bc + 1):
            x = x0 + c * BLOCK_PITCH[0]
            kind = "arterial" if c % 4 == 0 else "street"
            line = shapely.intersection(LineString([(x, y1), (x, y1 - rows * ch)]), core.buffer(1))
            if not line.is_empty:
                self.roads.append(dict(kind=kind, name=f"{self.names.stem()}路", geom=line))
        for r in range(rows * br + 1):
            y = y1 - r * BLOCK_PITCH[1]
            kind = "arterial" if r % 4 == 0 else "street"
            line = shapely.intersection(LineString([(x0, y), (x0 + cols * cw, y)]), core.buffer(1))
            if not line.is_empty:
                self.roads.append(dict(kind=kind, name=f"{self.names.stem()}街", geom=line))
        for c in range(cols * bc + 1):
            for r in range(rows * br + 1):
                x, y = x0 + c * BLOCK_PITCH[0], y1 - r * BLOCK_PITCH[1]
                if shapely.contains_xy(core.buffer(1), x, y):
                    angle = float(self.rng.choice([0.0, 90.0, 180.0, 270.0]))
                    self.intersections.append((x, y, angle, cspec.code))
        return core

    def _urban_blocks(
        self,
        ccode: str,
        cname: str,
        county: str,
        x0: float,
        y0: float,
        bc: int,
        br: int,
        community: BaseGeometry,
    ) -> None:
        rng = self.rng
        estate = cname.removesuffix("社区")
        number = 0
        for bx in range(bc):
            for by in range(br):
                ix0 = x0 + bx * BLOCK_PITCH[0] + ROAD_HALF + 8
                iy0 = y0 + by * BLOCK_PITCH[1] + ROAD_HALF + 8
                ix1 = x0 + (bx + 1) * BLOCK_PITCH[0] - ROAD_HALF - 8
                iy1 = y0 + (by + 1) * BLOCK_PITCH[1] - ROAD_HALF - 8
                interior = shapely.box(ix0, iy0, ix1, iy1)
                if not community.contains(interior.centroid) or interior.intersects(self.water):
                    continue
                roll = rng.random()
                if roll < 0.045:
                    self._campus(ccode, county, interior, "school")
                    continue
                if roll < 0.06:
                    self._campus(ccode, county, interior, "market")
                    continue
                if roll < 0.068:
                    self._campus(ccode, county, interior, "hospital")
                    continue
                slab_w, slab_d, gap_x, gap_y = 60.0, 12.0, 12.0, 18.0
                ncols = int((ix1 - ix0 + gap_x) // (slab_w + gap_x))
                nrows = int((iy1 - iy0 + gap_y) // (slab_d + gap_y))
                for sx in range(ncols):
                    for sy in range(nrows):
                        if rng.random() < 0.07:
                            continue  # green space
                        fx = ix0 + sx * (slab_w + gap_x)
                        fy = iy0 + sy * (slab_d + gap_y)
                        # Walk-ups of 5-7 floors (20-56 households), 11-floor slabs with two
                        # stairwells (44), and 18-floor towers (108: a grid of their own).
                        fl = int(rng.choice([6, 6, 6, 6, 7, 5, 5, 11, 18]))
                        units = int(rng.choice([2, 3, 3, 4])) if fl < 11 else 2
                        per_landing = 2
                        hh = fl * units * per_landing
                        if fl >= 18:  # a tower of 3 stairwells is a grid of its own (~108 households)
                            units = 3
                            hh = fl * units * per_landing
                        number += 1
                        self.buildings.append(
                            dict(
                                unit_code=ccode,
                                kind="apartment",
                                name=f"{estate}小区{number}号楼",
                                floors=fl,
                                units=units,
                                households=hh,
                                geom=shapely.box(fx, fy, fx + slab_w, fy + slab_d),
                            )
                        )

    def _campus(self, unit: str, county: str, interior: BaseGeometry, purpose: str) -> None:
        label = {"school": "小学", "market": "农贸市场", "hospital": "医院"}[purpose]
        name = f"{self.names.stem()}{label}"
        c = interior.centroid
        w = {"school": 70.0, "market": 80.0, "hospital": 60.0}[purpose]
        self.buildings.append(
            dict(
                unit_code=unit,
                kind=purpose,
                name=name,
                floors=int(self.rng.integers(2, 6)),
                units=1,
                households=0,
                geom=shapely.box(c.x - w / 2, c.y - 15, c.x + w / 2, c.y + 15),
            )
        )
        self.campuses.append(dict(unit_code=unit, county=county, purpose=purpose, name=name, geom=interior))

    def _rural(self, cspec: CountySpec, area: BaseGeometry, seat: np.ndarray) -> None:
        spec = self.spec
        rng = self.rng
        if cspec.townships == 0 or area.is_empty:
            return
        area = _polygonal(area)
        tseeds = _dart_throw(rng, area, cspec.townships)
        tcells = _voronoi_cells(tseeds, area)
        n_towns = max(1, round(cspec.townships * 0.55))
        county_nodes = [tuple(seat)]
        for t_idx, (tseed, tcell) in enumerate(zip(tseeds, tcells, strict=True)):
            tcell = _polygonal(tcell)
            if tcell.is_empty:
                continue
            is_town = t_idx < n_towns
            tcode = f"{cspec.code}{(101 + t_idx) if is_town else (201 + t_idx - n_towns):03d}"
            self.units.append(
                dict(
                    code=tcode,
                    name=f"{self.names.stem()}{'镇' if is_town else '乡'}",
                    level="township",
                    kind="town" if is_town else "township",
                    parent_code=cspec.code,
                    geom=tcell,
                )
            )
            self._link(tuple(tseed), county_nodes, "rural")
            county_nodes.append(tuple(tseed))
            nv = int(rng.integers(spec.villages_per_township[0], spec.villages_per_township[1] + 1))
            vseeds = _dart_throw(rng, tcell.buffer(-150) if tcell.area > 4e6 else tcell, nv)
            vcells = _voronoi_cells(vseeds, tcell)
            # Number villages in reading order (north→south, west→east), as codes are assigned.
            order = np.lexsort((vseeds[:, 0], -np.round(vseeds[:, 1] / 1500.0)))
            nodes = [tuple(tseed)]
            for v_rank, v in enumerate(order):
                vcell = _polygonal(vcells[v])
                if vcell.is_empty:
                    continue
                vcode = f"{tcode}{201 + v_rank:03d}"
                vname = f"{self.names.stem()}村"
                self.units.append(
                    dict(code=vcode, name=vname, level="village", kind="village", parent_code=tcode, geom=vcell)
                )
                self._village_houses(vcode, vname, vseeds[v], vcell)
                self._link(tuple(vseeds[v]), nodes, "rural")
                nodes.append(tuple(vseeds[v]))
            self.progress("admin", 0)

    def _link(self, node: tuple[float, float], nodes: list[tuple[float, float]], kind: str) -> None:
        """Connect node to the nearest already-connected node (a greedy spanning tree)."""
        if not nodes:
            return
        arr = np.array(nodes)
        j = int(np.argmin(np.hypot(arr[:, 0] - node[0], arr[:, 1] - node[1])))
        self.roads.append(dict(kind=kind, name=None, geom=LineString([nodes[j], node])))
        dx, dy = nodes[j][0] - node[0], nodes[j][1] - node[1]
        angle = (math.degrees(math.atan2(dx, dy)) + 360) % 360
        self.village_entrances.append((node[0], node[1], angle, ""))

    def _village_houses(self, vcode: str, vname: str, centre: np.ndarray, cell: BaseGeometry) -> None:
        rng = self.rng
        lo, hi = self.spec.village_households
        n = int(rng.integers(lo, hi + 1))
        side = math.ceil(math.sqrt(n * 1.6))
        gx, gy = np.meshgrid(np.arange(side) - side / 2, np.arange(side) - side / 2)
        pts = np.column_stack([gx.ravel() * 34.0, gy.ravel() * 30.0])
        pts = pts[np.argsort(np.hypot(pts[:, 0], pts[:, 1] * 1.2))]
        theta = rng.uniform(0, math.pi / 2)
        rot = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
        pts = pts @ rot.T + centre + rng.normal(0, 3.0, pts.shape)
        inside = shapely.contains_xy(cell.buffer(-12), pts[:, 0], pts[:, 1])
        inside &= ~shapely.contains_xy(self.water.buffer(15), pts[:, 0], pts[:, 1])
        pts = pts[inside][:n]
        if len(pts) == 0:
            return
        hw, hd = 7.0, 5.0
        boxes = shapely.box(pts[:, 0] - hw, pts[:, 1] - hd, pts[:, 0] + hw, pts[:, 1] + hd)
        for i, b in enumerate(boxes):
            self.buildings.append(
                dict(
                    unit_code=vcode,
                    kind="house",
                    name=f"{vname.removesuffix('村')}村{i + 1}号",
                    floors=1,
                    units=1,
                    households=1,
                    geom=b,
                )
            )
        # a lane through the village
        d = np.array([math.cos(theta), math.sin(theta)]) * side * 17
        lane = shapely.intersection(LineString([centre - d, centre + d]), cell)
        if not lane.is_empty:
            self.roads.append(dict(kind="lane", name=None, geom=lane))


def _frame(rows: list[dict], crs: str = METRIC) -> gpd.GeoDataFrame:
    df = pd.DataFrame(rows)
    return gpd.GeoDataFrame(df.drop(columns="geom"), geometry=list(df["geom"]), crs=crs)


def _partition_units(
    units: gpd.GeoDataFrame,
    buildings: gpd.GeoDataFrame,
    progress: Progress,
    *,
    roads: list[Any] | None = None,
    water: Any = None,
) -> tuple[gpd.GeoDataFrame, pd.Series]:
    """Micro-grids for every village/community, following its roads and the river; returns grids
    (metric) and each building's grid code."""
    grid_rows: list[gpd.GeoDataFrame] = []
    road_geoms = np.asarray([g for g in (roads or []) if g is not None and not g.is_empty], dtype=object)
    road_index = shapely.STRtree(road_geoms) if len(road_geoms) else None
    assignment = pd.Series(pd.NA, index=buildings.index, dtype="object")
    residential = buildings[buildings["households"] > 0]
    by_unit = dict(tuple(residential.groupby("unit_code")))
    leaves = units[units["level"] == "village"]
    for row in leaves.itertuples():
        code = str(row.code)
        members = by_unit.get(code)
        boundary = row.geometry
        band = URBAN_BAND if row.kind == "community" else RURAL_BAND
        if members is None or len(members) == 0:
            grids = gpd.GeoDataFrame(
                {"label": [0], "households": [0], "buildings": [0], "in_band": [False]},
                geometry=[boundary],
                crs=units.crs,
            )
            labels = pd.Series(dtype="int64")
        else:
            near = road_geoms[road_index.query(boundary)] if road_index is not None else road_geoms
            river = [water] if water is not None and water.intersects(boundary) else None
            grids, labels = partition(members, boundary=boundary, band=band, roads=list(near), water=river)
        codes = grid_codes(grids, village_code=code)
        grids = grids.assign(code=codes.to_numpy(), unit_code=code, band_min=band[0], band_max=band[1])
        label_to_code = dict(zip(grids["label"], grids["code"], strict=True))
        if len(labels):
            assignment.loc[labels.index] = labels.map(label_to_code).to_numpy()
        grid_rows.append(grids)
        progress("partition", 1)
    grids_all = pd.concat(grid_rows, ignore_index=True)
    return gpd.GeoDataFrame(grids_all, geometry="geometry", crs=units.crs), assignment


def generate(
    spec: CitySpec,
    *,
    seed: int = 20261123,
    now: datetime | None = None,
    progress: Progress = _no_progress,
) -> DemoCity:
    """Build the demo city described by ``spec``; deterministic for a given seed and ``now``."""
    if now is None:
        now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware (UTC)")
    b = _Builder(spec, seed, progress)
    b.build_admin()
    units = _frame(b.units)
    units["geometry"] = [_multi(g) for g in units.geometry]
    buildings = _frame(b.buildings)
    buildings["id"] = np.arange(1, len(buildings) + 1, dtype="int64")

    grids, assignment = _partition_units(
        units, buildings, progress, roads=[r["geom"] for r in b.roads], water=b.water
    )
    buildings["grid_code"] = assignment
    grids["kind"] = "base"
    grids["purpose"] = None
    # Non-residential buildings (schools, markets...) go to the base grid under them.
    missing = buildings["grid_code"].isna()
    if missing.any():
        cent = buildings.loc[missing].geometry.centroid
        hit = grids.sindex.query(cent, predicate="within")
        codes = pd.Series(pd.NA, index=cent.index, dtype="object")
        codes.iloc[hit[0]] = grids["code"].to_numpy()[hit[1]]
        buildings.loc[missing, "grid_code"] = codes
    # Dedicated grids over campuses, numbered 901.. within their community.
    ded_rows = []
    seq: dict[str, int] = {}
    for c in b.campuses:
        seq[c["unit_code"]] = seq.get(c["unit_code"], 900) + 1
        ded_rows.append(
            dict(
                code=f"{c['unit_code']}{seq[c['unit_code']]:03d}",
                unit_code=c["unit_code"],
                label=-1,
                households=0,
                buildings=1,
                in_band=True,
                band_min=None,
                band_max=None,
                kind="dedicated",
                purpose=c["purpose"],
                name=c["name"],
                geometry=c["geom"],
            )
        )
    unit_names = dict(zip(units["code"], units["name"], strict=True))
    grids["name"] = [f"{unit_names[u]}第{int(c[-3:])}网格" for u, c in zip(grids["unit_code"], grids["code"], strict=True)]
    if ded_rows:
        ded = gpd.GeoDataFrame(ded_rows, geometry="geometry", crs=METRIC)
        ded["name"] = [f"{n}专属网格" for n in ded["name"]]
        grids = gpd.GeoDataFrame(pd.concat([grids, ded], ignore_index=True), geometry="geometry", crs=METRIC)
    grids["geometry"] = [_multi(g) for g in grids.geometry]
    grids["version"] = 1

    # Households up the hierarchy.
    hh = buildings.groupby("unit_code")["households"].sum()
    units["households"] = units["code"].map(hh).fillna(0).astype("int64")
    for level in ("township", "county", "city"):
        child = units[units["parent_code"].notna()].groupby("parent_code")["households"].sum()
        mask = units["level"] == level
        units.loc[mask, "households"] = units.loc[mask, "code"].map(child).fillna(0).astype("int64")

    # Villages/communities carry their grids' band and the version of their grids in force.
    village = units["level"] == "village"
    community = village & (units["kind"] == "community")
    units["band_min"] = pd.Series(pd.NA, index=units.index, dtype="Int64")
    units["band_max"] = pd.Series(pd.NA, index=units.index, dtype="Int64")
    units.loc[community, "band_min"], units.loc[community, "band_max"] = URBAN_BAND
    units.loc[village & ~community, "band_min"], units.loc[village & ~community, "band_max"] = RURAL_BAND
    units["grid_version"] = pd.Series(pd.NA, index=units.index, dtype="Int64")
    units.loc[village, "grid_version"] = 1

    frames: dict[str, pd.DataFrame] = {}
    frames["admin_units"] = units.to_crs(LONLAT)
    frames["grids"] = grids[
        ["code", "name", "unit_code", "kind", "purpose", "band_min", "band_max", "households", "buildings", "version", "geometry"]
    ].to_crs(LONLAT)
    frames["buildings"] = buildings[
        ["id", "unit_code", "grid_code", "kind", "name", "floors", "units", "households", "geometry"]
    ].to_crs(LONLAT)
    roads = _frame(b.roads)
    roads = roads[~roads.geometry.is_empty]
    roads = roads.explode(index_parts=False)
    roads = roads[roads.geometry.geom_type == "LineString"].reset_index(drop=True)
    roads["id"] = np.arange(1, len(roads) + 1)
    frames["roads"] = roads[["id", "kind", "name", "geometry"]].to_crs(LONLAT)
    water = gpd.GeoDataFrame(
        {"id": [1], "kind": ["river"], "name": ["凡河"]}, geometry=[_multi(b.water)], crs=METRIC
    )
    frames["water"] = water.to_crs(LONLAT)
    progress("context", 1)

    rng = np.random.default_rng(seed + 2)
    facilities = _facilities(rng, units, grids, b, spec)
    frames["facilities"] = facilities.to_crs(LONLAT)
    staff, staff_grids = _staff(rng, units, grids, spec)
    frames["staff"] = staff
    frames["staff_grids"] = staff_grids
    frames["latest_positions"] = _latest_positions(rng, staff, staff_grids, buildings, grids, now).to_crs(LONLAT)
    frames["cameras"] = _cameras(rng, b, facilities, spec).to_crs(LONLAT)
    progress("staff", 1)

    frames["case_categories"] = categories_frame()
    frames["departments"] = pd.DataFrame(DEPARTMENTS)
    cases, events = generate_cases(
        np.random.default_rng(seed + 3),
        buildings=buildings,
        units=units,
        staff=staff,
        staff_grids=staff_grids,
        now=now,
        per_household_year=spec.cases_per_household_year,
        years=spec.case_years,
        progress=progress,
    )
    frames["cases"] = cases.to_crs(LONLAT)
    frames["case_events"] = events
    return DemoCity(spec=spec, seed=seed, now=now, frames=frames)


def _facilities(
    rng: np.random.Generator, units: gpd.GeoDataFrame, grids: gpd.GeoDataFrame, b: _Builder, spec: CitySpec
) -> gpd.GeoDataFrame:
    rows: list[dict] = []
    for c in b.campuses:
        rows.append(dict(kind=c["purpose"], name=c["name"], unit_code=c["unit_code"], geom=c["geom"].centroid))
    townships = units[units["level"] == "township"]
    for t in townships.itertuples():
        p = t.geometry.representative_point()
        rows.append(dict(kind="mediation_room", name=f"{t.name}人民调解室", unit_code=t.code, geom=p))
    villages = units[units["level"] == "village"]
    for i, v in enumerate(villages.itertuples()):
        if i % 3 == 0:
            p = v.geometry.representative_point()
            rows.append(dict(kind="talk_point", name=f"{v.name}评理说事点", unit_code=v.code, geom=p))
    base = grids[grids["kind"] == "base"]
    pick = rng.choice(len(base), size=min(spec.risk_points, len(base)), replace=False)
    kinds = ["危化品仓库", "老旧楼房", "河道险段", "人员密集场所", "燃气站", "在建工地"]
    for j, gi in enumerate(pick):
        g = base.iloc[int(gi)]
        rows.append(
            dict(
                kind="risk_point",
                name=f"重点风险点{j + 1:02d}·{kinds[j % len(kinds)]}",
                unit_code=g["unit_code"],
                geom=g.geometry.representative_point(),
            )
        )
    df = _frame(rows)
    df["id"] = np.arange(1, len(df) + 1)
    return df[["id", "kind", "name", "unit_code", "geometry"]]


def _staff(
    rng: np.random.Generator, units: gpd.GeoDataFrame, grids: gpd.GeoDataFrame, spec: CitySpec
) -> tuple[pd.DataFrame, pd.DataFrame]:
    roles: list[str] = []
    unit_codes: list[str] = []
    resp: list[list[str]] = []
    base = grids[grids["kind"] == "base"]
    grids_by_unit = base.groupby("unit_code")["code"].apply(list).to_dict()
    for g in base.itertuples():  # one full-time worker per grid
        roles.append("grid_worker_full")
        unit_codes.append(str(g.unit_code))
        resp.append([str(g.code)])
    part = base.sample(frac=0.05, random_state=int(rng.integers(1 << 31)))
    for g in part.itertuples():
        roles.append("grid_worker_part")
        unit_codes.append(str(g.unit_code))
        resp.append([str(g.code)])
    villages = units[units["level"] == "village"]
    for v in villages.itertuples():
        members = grids_by_unit.get(v.code, [])
        if v.kind == "community":
            # 一格一警 in the city is shared: one officer for every ~8 grids of a community
            for k in range(0, max(1, len(members)), 8):
                roles.append("police")
                unit_codes.append(str(v.code))
                resp.append(members[k : k + 8])
        roles.append("legal_adviser")  # 一村(社区)一法律顾问
        unit_codes.append(str(v.code))
        resp.append(members)
    townships = units[units["level"] == "township"]
    for t in townships.itertuples():
        for _ in range(2):
            roles.append("mediator")
            unit_codes.append(str(t.code))
            resp.append([])
        roles.append("volunteer")
        unit_codes.append(str(t.code))
        resp.append([])
        if t.kind != "street":
            roles.append("police")  # the township police station's officer for its villages
            unit_codes.append(str(t.code))
            resp.append([])
    n = len(roles)
    ids = np.arange(1, n + 1, dtype="int64")
    staff = pd.DataFrame(
        {
            "id": ids,
            "name": person_names(rng, n),
            "role": roles,
            "phone": phones(rng, n),
            "unit_code": unit_codes,
            "device_id": [f"86{i:010d}" for i in ids],
            "on_duty": rng.random(n) < spec.staff_on_duty_share,
        }
    )
    sg = pd.DataFrame(
        [(int(i), code) for i, codes in zip(ids, resp, strict=True) for code in codes],
        columns=["staff_id", "grid_code"],
    ).drop_duplicates()
    return staff, sg


def _latest_positions(
    rng: np.random.Generator,
    staff: pd.DataFrame,
    staff_grids: pd.DataFrame,
    buildings: gpd.GeoDataFrame,
    grids: gpd.GeoDataFrame,
    now: datetime,
) -> gpd.GeoDataFrame:
    on = staff[staff["on_duty"]]
    first_grid = staff_grids.drop_duplicates("staff_id").set_index("staff_id")["grid_code"]
    grid_pts = grids.set_index("code").geometry.representative_point()
    unit_grid = grids[grids["kind"] == "base"].drop_duplicates("unit_code").set_index("unit_code")["code"]
    xs, ys = [], []
    for sid, unit in zip(on["id"], on["unit_code"], strict=True):
        gcode = first_grid.get(sid)
        if gcode is None:
            gcode = unit_grid.get(unit)
        if gcode is None:  # a township-level officer: somewhere in one of its villages
            prefix = str(unit)
            cand = grids["code"][grids["code"].str.startswith(prefix)]
            gcode = cand.iloc[int(rng.integers(len(cand)))] if len(cand) else grids["code"].iloc[0]
        p = grid_pts[gcode]
        xs.append(p.x)
        ys.append(p.y)
    n = len(on)
    x = np.array(xs) + rng.normal(0, 60, n)
    y = np.array(ys) + rng.normal(0, 60, n)
    age_min = np.where(rng.random(n) < 0.88, rng.exponential(4, n), rng.uniform(20, 240, n))
    ts = pd.Timestamp(now) - pd.to_timedelta(age_min, unit="min")
    return gpd.GeoDataFrame(
        {
            "staff_id": on["id"].to_numpy(),
            "ts": ts.floor("s"),
            "speed": np.round(np.abs(rng.normal(1.0, 0.8, n)), 2),
            "accuracy": np.round(rng.uniform(3, 25, n), 1),
            "battery": np.round(rng.uniform(15, 100, n), 0),
        },
        geometry=shapely.points(x, y),
        crs=METRIC,
    )


def _camera_id(county: str, serial: int) -> str:
    # GB/T 28181: 8-digit centre code + 2-digit industry + 3-digit type (132 = IP camera)
    # + 1-digit network + 6-digit serial = 20 digits.
    return f"{county}00" + "00" + "132" + "0" + f"{serial:06d}"


def _cameras(rng: np.random.Generator, b: _Builder, facilities: gpd.GeoDataFrame, spec: CitySpec) -> gpd.GeoDataFrame:
    sites: list[tuple[float, float, float, str, str]] = []
    for x, y, angle, county in b.intersections:
        sites.append((x, y, angle, county, "路口"))
    fac = facilities[facilities["kind"].isin(["school", "market", "hospital"])]
    for f in fac.itertuples():
        sites.append((f.geometry.x, f.geometry.y - 20, 180.0, str(f.unit_code)[:6], str(f.name)))
    for x, y, angle, _ in b.village_entrances:
        sites.append((x, y, angle, "", "村口"))
    target = spec.cameras_target
    idx = np.arange(len(sites))
    if len(sites) > target:
        # Keep facility cameras, sample intersections and village entrances.
        idx = np.sort(rng.choice(len(sites), target, replace=False))
    elif len(sites) < target:
        extra = rng.choice(len(sites), target - len(sites), replace=True)
        idx = np.concatenate([idx, extra])
    county_default = b.spec.counties[0].code
    rows = []
    serial: dict[str, int] = {}
    for k, i in enumerate(idx):
        x, y, angle, county, label = sites[int(i)]
        county = county or county_default
        # a second camera at a crossing looks the other way along the other street
        dup = k >= len(sites) or (k > 0 and idx[k - 1] == i)
        ang = (angle + (90 if dup else 0) + rng.normal(0, 8)) % 360
        serial[county] = serial.get(county, 0) + 1
        rows.append(
            dict(
                id=_camera_id(county, serial[county]),
                name=f"{label}监控{serial[county]:04d}",
                direction=round(float(ang), 1),
                fov=float(rng.choice([60.0, 75.0, 90.0])),
                range_m=float(rng.choice([60.0, 80.0, 100.0, 120.0])),
                cam_class="class1" if rng.random() < 0.9 else "other",
                online=bool(rng.random() < 0.96),
                stream_url=None,
                geom=Point(x + rng.normal(0, 4), y + rng.normal(0, 4)),
            )
        )
    df = _frame(rows)
    return df


__all__ = ["DemoCity", "generate"]
