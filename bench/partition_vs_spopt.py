"""Our partition against PySAL spopt's regionalisation on the same communities.

Six synthetic communities near Tieling (UTM 51N), made here so the run needs no data: three urban
ones (a grid of streets, apartment slabs of 20-56 households and towers of 108, band 80-120,
~800-1,500 households) and three villages (houses of 1-2 households, a river and lanes, band
30-50, ~200-400 households). Methods:

* ``ours``        geo.partition.partition, straight cuts (no roads);
* ``ours+roads``  the same with the roads and the river (grids follow them);
* ``maxp``        spopt MaxPHeuristic: max-p regionalisation of the buildings' Voronoi cells
                  (clipped to the boundary; rook contiguity), floor = band minimum households,
                  similarity on the cells' centroid coordinates (km); its iterations are capped
                  (construction and simulated annealing, see MAXP_* below) to stay within minutes;
* ``skater``      spopt Skater with as many regions as ``ours`` made; its floor counts cells,
                  not households, so it is set to band minimum / mean households per building;
* ``regionkmeans`` spopt RegionKMeansHeuristic with as many regions as ``ours`` (no floor);
* ``azp``         spopt AZP (automatic zoning) with as many regions as ``ours`` (no floor).

MaxP with spopt's defaults took minutes per village of 170-300 cells on this 2-core machine
(~2 s per simulated-annealing round at 170 cells, 999 construction passes): capped, the whole run
takes a few minutes.

Per method and community: grids, share of grids inside the band, mean Polsby-Popper compactness
(geo.partition.compactness), the share of internal grid edges on roads or river banks
(geo.partition.edge_alignment) and wall time (for spopt including the Voronoi cells and weights
it needs). Summary: per method the means, time / time of ``ours`` and band share - ``ours``'.

    make bench        # installs requirements-bench.txt into .venv, then runs this
    .venv/bin/python bench/partition_vs_spopt.py [--quick]

Prints a table and writes bench/results/partition_vs_spopt.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from geo.partition import compactness, edge_alignment, partition, tessellate  # noqa: E402

UTM = "EPSG:32651"
URBAN_BAND = (80, 120)
VILLAGE_BAND = (30, 50)
MAXP_CONSTRUCTION = 5  # spopt default 999: construction passes (each builds a full solution)
MAXP_SA = 1  # spopt default 10: simulated-annealing rounds per kept solution (0 returns no labels)
MAXP_TOP_N = 2

Community = dict[str, Any]


# --------------------------------------------------------------------------------------------
# Communities
# --------------------------------------------------------------------------------------------


def urban(seed: int, columns: tuple[float, ...], rows: tuple[float, ...], park: tuple[int, int] | None) -> Community:
    """Streets at the given spacings (the outer ones are the boundary), slabs 12 m back from the
    street centre lines, 12 m apart along a row and 18 m between rows; one block may be a park."""
    rng = np.random.default_rng(seed)
    x0, y0 = 569_000.0 + 2_000.0 * seed, 4_682_000.0
    xs = x0 + np.concatenate([[0.0], np.cumsum(columns)])
    ys = y0 + np.concatenate([[0.0], np.cumsum(rows)])
    roads = [shapely.LineString([(x, ys[0] - 30), (x, ys[-1] + 30)]) for x in xs[1:-1]]
    roads += [shapely.LineString([(xs[0] - 30, y), (xs[-1] + 30, y)]) for y in ys[1:-1]]
    boxes, households = [], []
    for i in range(len(xs) - 1):
        for j in range(len(ys) - 1):
            if (i, j) == park:
                continue
            bx0, bx1, by0, by1 = xs[i] + 12, xs[i + 1] - 12, ys[j] + 12, ys[j + 1] - 12
            length = min(60.0, bx1 - bx0)
            for a in range(max(1, int((bx1 - bx0 + 12) // (length + 12)))):
                for b in range(max(1, int((by1 - by0 + 18) // 30))):
                    if rng.random() < 0.07:
                        continue
                    floors = int(rng.choice([6, 6, 6, 6, 7, 5, 5, 11, 18]))
                    stairwells = int(rng.choice([2, 3, 3, 4])) if floors < 11 else 2 if floors < 18 else 3
                    fx, fy = bx0 + a * (length + 12), by0 + b * 30
                    boxes.append(shapely.box(fx, fy, fx + length, fy + 12))
                    households.append(floors * stairwells * 2)
    return {
        "name": f"urban-{seed}",
        "kind": "urban",
        "band": URBAN_BAND,
        "buildings": gpd.GeoDataFrame({"households": households}, geometry=boxes, crs=UTM),
        "boundary": shapely.box(xs[0], ys[0], xs[-1], ys[-1]),
        "roads": gpd.GeoDataFrame(geometry=roads, crs=UTM),
        "water": gpd.GeoDataFrame(geometry=[], crs=UTM),
    }


def village(seed: int, houses: int) -> Community:
    """Houses (80 % of 1 household, 20 % of 2) in a five-sided boundary with a meandering river
    24 m wide, a main road with a bridge, two cross roads and two lanes (one a dead end)."""
    rng = np.random.default_rng(100 + seed)
    x0, y0 = 571_000.0 + 2_000.0 * seed, 4_690_000.0
    scale = float(np.sqrt(houses / 300.0))
    sx, sy = 720.0 * scale, 600.0 * scale
    boundary = shapely.Polygon(
        [(x0, y0), (x0 + 0.97 * sx, y0 + 20), (x0 + sx, y0 + 0.87 * sy), (x0 + 0.49 * sx, y0 + sy), (x0 - 20, y0 + 0.8 * sy)]
    )
    xs = np.linspace(x0 - 50, x0 + sx + 50, 80)
    river = shapely.LineString(np.column_stack([xs, y0 + 0.43 * sy + 40 * np.sin((xs - x0) / 120.0)])).buffer(
        12.0, cap_style="flat"
    )
    roads = [
        shapely.LineString([(x0 + 0.46 * sx, y0 - 20), (x0 + 0.5 * sx, y0 + sy + 20)]),
        shapely.LineString([(x0 - 30, y0 + 0.22 * sy), (x0 + sx + 20, y0 + 0.25 * sy)]),
        shapely.LineString([(x0 - 30, y0 + 0.7 * sy), (x0 + sx + 20, y0 + 0.67 * sy)]),
        shapely.LineString([(x0 + 0.22 * sx, y0 + 0.25 * sy), (x0 + 0.21 * sx, y0 + 0.38 * sy)]),
        shapely.LineString([(x0 + 0.75 * sx, y0 + 0.67 * sy), (x0 + 0.78 * sx, y0 + sy)]),
    ]
    clear = shapely.union_all([river.buffer(8), *[r.buffer(7) for r in roads]])
    shapely.prepare(boundary)
    shapely.prepare(clear)
    points: list[tuple[float, float]] = []
    while len(points) < houses:
        x, y = rng.uniform(x0, x0 + sx), rng.uniform(y0, y0 + sy)
        spot = shapely.Point(x, y)
        if (
            boundary.contains(spot.buffer(10))
            and not clear.intersects(spot.buffer(7))
            and all((x - a) ** 2 + (y - b) ** 2 > 17**2 for a, b in points[-400:])
        ):
            points.append((x, y))
    xy = np.asarray(points)
    households = np.where(rng.random(houses) < 0.2, 2, 1)
    return {
        "name": f"village-{seed}",
        "kind": "village",
        "band": VILLAGE_BAND,
        "buildings": gpd.GeoDataFrame(
            {"households": households}, geometry=shapely.box(xy[:, 0] - 6, xy[:, 1] - 5, xy[:, 0] + 6, xy[:, 1] + 5), crs=UTM
        ),
        "boundary": boundary,
        "roads": gpd.GeoDataFrame(geometry=roads, crs=UTM),
        "water": gpd.GeoDataFrame({"kind": ["river"]}, geometry=[river], crs=UTM),
    }


def communities(quick: bool) -> list[Community]:
    out = [
        urban(0, (120, 150, 100), (90, 120, 100), park=(1, 1)),
        urban(1, (140, 110), (100, 130, 110, 90), park=None),
        urban(2, (130, 150, 120, 100), (110, 90, 100), park=(3, 0)),
        village(0, 170),
        village(1, 240),
        village(2, 300),
    ]
    return [out[0], out[3]] if quick else out


# --------------------------------------------------------------------------------------------
# Methods
# --------------------------------------------------------------------------------------------


def ours(c: Community, *, roads: bool) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    kw: dict[str, Any] = {"roads": c["roads"], "water": c["water"]} if roads else {}
    grids, _ = partition(c["buildings"], boundary=c["boundary"], band=c["band"], **kw)
    return grids, {}


def cells_and_weights(c: Community) -> tuple[gpd.GeoDataFrame, Any]:
    """Each building's Voronoi cell (of its representative point, clipped to the boundary) and
    rook contiguity between the cells: the areal units spopt regionalises."""
    from libpysal.weights import Rook

    b = c["buildings"].reset_index(drop=True)
    cells = tessellate(b, pd.Series(np.arange(len(b)), index=b.index), boundary=c["boundary"])
    cells["households"] = b["households"].to_numpy()
    centre = cells.geometry.centroid
    cells["x"] = (centre.x - centre.x.mean()) / 1000.0
    cells["y"] = (centre.y - centre.y.mean()) / 1000.0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        w = Rook.from_dataframe(cells, use_index=False, silence_warnings=True)
    return cells, w


def dissolve(cells: gpd.GeoDataFrame, labels: Any) -> gpd.GeoDataFrame:
    frame = cells[["households", "geometry"]].assign(label=np.asarray(labels))
    grids = frame.dissolve(by="label", aggfunc={"households": "sum"}).reset_index()
    return gpd.GeoDataFrame(grids, geometry="geometry", crs=cells.crs)


def maxp(c: Community, k: int) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    from spopt.region import MaxPHeuristic

    cells, w = cells_and_weights(c)
    model = MaxPHeuristic(
        cells,
        w,
        ["x", "y"],
        "households",
        c["band"][0],
        top_n=MAXP_TOP_N,
        max_iterations_construction=MAXP_CONSTRUCTION,
        max_iterations_sa=MAXP_SA,
    )
    np.random.seed(0)  # spopt's max-p draws from numpy's global generator: make runs repeatable
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.solve()
    return dissolve(cells, model.labels_), {"p": int(model.p)}


def skater(c: Community, k: int) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    from spopt.region import Skater

    cells, w = cells_and_weights(c)
    floor = max(1, int(round(c["band"][0] / float(cells["households"].mean()))))
    model = Skater(cells, w, ["x", "y"], n_clusters=k, floor=floor, trace=False, islands="increase")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.solve()
    return dissolve(cells, model.labels_), {"floor_cells": floor}


def region_kmeans(c: Community, k: int) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    from spopt.region import RegionKMeansHeuristic

    cells, w = cells_and_weights(c)
    model = RegionKMeansHeuristic(cells[["x", "y"]].to_numpy(), k, w, seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.solve()
    return dissolve(cells, model.labels_), {}


def azp(c: Community, k: int) -> tuple[gpd.GeoDataFrame, dict[str, Any]]:
    from spopt.region import AZP

    cells, w = cells_and_weights(c)
    model = AZP(cells, w, ["x", "y"], n_clusters=k, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.solve()
    return dissolve(cells, model.labels_), {}


Method = Callable[[Community, int], tuple[gpd.GeoDataFrame, dict[str, Any]]]
METHODS: list[tuple[str, Method]] = [
    ("ours", lambda c, k: ours(c, roads=False)),
    ("ours+roads", lambda c, k: ours(c, roads=True)),
    ("maxp", maxp),
    ("skater", skater),
    ("regionkmeans", region_kmeans),
    ("azp", azp),
]


def measure(c: Community, grids: gpd.GeoDataFrame) -> dict[str, Any]:
    lo, hi = c["band"]
    hh = grids["households"].to_numpy()
    pp = compactness(grids)
    align = edge_alignment(grids, roads=c["roads"], water=c["water"] if len(c["water"]) else None)
    covered = abs(float(grids.area.sum()) - c["boundary"].area) / c["boundary"].area
    return {
        "grids": len(grids),
        "in_band": float(((hh >= lo) & (hh <= hi)).mean()) if len(hh) else 0.0,
        "compactness": float(np.nanmean(pp)) if len(pp) else float("nan"),
        "edge_alignment": float(align),
        "multipart": int((grids.geom_type == "MultiPolygon").sum()),
        "households_min": int(hh.min()) if len(hh) else 0,
        "households_max": int(hh.max()) if len(hh) else 0,
        "cover_error": covered,
    }


# --------------------------------------------------------------------------------------------
# Run
# --------------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one urban community and one village")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results" / "partition_vs_spopt.json"))
    args = parser.parse_args()

    import spopt

    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    for c in communities(args.quick):
        b = c["buildings"]
        print(
            f"{c['name']}: {len(b)} buildings, {int(b['households'].sum())} households, band {c['band']}",
            flush=True,
        )
        k = 0
        for name, method in METHODS:
            t0 = time.perf_counter()
            grids, extra = method(c, k)
            seconds = time.perf_counter() - t0
            if name == "ours":
                k = len(grids)
            row = {"community": c["name"], "kind": c["kind"], "method": name, "seconds": seconds, **measure(c, grids)}
            row.update(extra)
            rows.append(row)
            print(
                f"  {name:<13} grids {row['grids']:>3}  in band {row['in_band']:6.1%}  PP {row['compactness']:.3f}"
                f"  on roads {row['edge_alignment']:6.1%}  {seconds:8.3f} s",
                flush=True,
            )
    total = time.perf_counter() - started

    frame = pd.DataFrame(rows)
    base = frame[frame["method"] == "ours"].set_index("community")
    frame["time_ratio_vs_ours"] = frame["seconds"] / frame["community"].map(base["seconds"])
    frame["band_diff_vs_ours"] = frame["in_band"] - frame["community"].map(base["in_band"])
    summary = (
        frame.groupby(["kind", "method"], sort=False)
        .agg(
            grids=("grids", "sum"),
            in_band=("in_band", "mean"),
            compactness=("compactness", "mean"),
            edge_alignment=("edge_alignment", "mean"),
            seconds=("seconds", "sum"),
            time_ratio_vs_ours=("time_ratio_vs_ours", "mean"),
            band_diff_vs_ours=("band_diff_vs_ours", "mean"),
            multipart=("multipart", "sum"),
        )
        .reset_index()
    )
    print()
    print("Summary (means over communities; seconds summed; ratios are per community, then averaged):")
    header = f"{'kind':<8} {'method':<13} {'grids':>5} {'in band':>8} {'PP':>6} {'on roads':>9} {'seconds':>9} {'t/t_ours':>9} {'band-ours':>10}"
    print(header)
    print("-" * len(header))
    for r in summary.itertuples():
        print(
            f"{r.kind:<8} {r.method:<13} {r.grids:>5} {r.in_band:>8.1%} {r.compactness:>6.3f} {r.edge_alignment:>9.1%}"
            f" {r.seconds:>9.3f} {r.time_ratio_vs_ours:>9.1f} {r.band_diff_vs_ours:>+10.1%}"
        )
    print(
        f"\nspopt {spopt.__version__}; MaxPHeuristic capped at max_iterations_construction={MAXP_CONSTRUCTION} "
        f"(default 999) and max_iterations_sa={MAXP_SA} (default 10), top_n={MAXP_TOP_N}. Total {total:.1f} s."
    )

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "python": platform.python_version(),
        "spopt": spopt.__version__,
        "maxp": {"max_iterations_construction": MAXP_CONSTRUCTION, "max_iterations_sa": MAXP_SA, "top_n": MAXP_TOP_N},
        "total_seconds": total,
        "runs": json.loads(frame.to_json(orient="records")),
        "summary": json.loads(summary.to_json(orient="records")),
    }
    out.write_text(json.dumps(payload, indent=2, ensure_ascii=False))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
