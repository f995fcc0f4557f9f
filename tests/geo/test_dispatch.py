"""geo.dispatch: ranking staff for a case, the surge plan, space-time clusters and duplicates.

Fixtures are built in metres around Tieling (UTM 51N) and often sent as lon/lat, since the
functions project internally.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from scipy.optimize import linear_sum_assignment
from shapely.geometry import Point

from geo.dispatch import (
    OUTLINE_COLUMNS,
    PLAN_COLUMNS,
    RANK_COLUMNS,
    REASONS,
    RankWeights,
    cluster_outlines,
    likely_duplicate,
    plan_assignment,
    rank_candidates,
    space_time_clusters,
)
from geo.errors import CRSError
from geo.network import RoadNetwork
from tests.geo.conftest import ORIGIN, UTM51N
from tests.geo.test_network import streets

X0, Y0 = ORIGIN
T0 = pd.Timestamp("2026-11-20 09:00", tz="Asia/Shanghai")


def P(dx: float, dy: float = 0.0) -> Point:
    return Point(X0 + dx, Y0 + dy)


def make_staff(rows: Sequence[dict[str, Any]], *, crs: str | None = UTM51N) -> gpd.GeoDataFrame:
    """Staff rows with defaults: on duty, fresh (60 s), no open case, grid worker, no grid.
    ``at`` is ``(dx, dy)`` metres from the origin, or None for no position."""
    defaults: dict[str, Any] = {
        "role": "grid_worker",
        "on_duty": True,
        "age_s": 60.0,
        "workload": 0,
        "grids": (),
    }
    records, geoms = [], []
    for i, row in enumerate(rows):
        rec = {**defaults, **row}
        at = rec.pop("at", None)
        rec.setdefault("staff_id", 100 + i)
        rec.setdefault("name", f"worker {rec['staff_id']}")
        records.append(rec)
        geoms.append(P(*at) if isinstance(at, tuple) else at)
    columns = ["staff_id", "name", *defaults]
    table = pd.DataFrame.from_records(records, columns=columns) if records else pd.DataFrame(columns=columns)
    frame = gpd.GeoDataFrame(table, geometry=geoms, crs=UTM51N)
    if crs is None:
        return frame.set_crs(None, allow_override=True)
    return frame if crs == UTM51N else frame.to_crs(crs)


def ids(frame: pd.DataFrame) -> list[Any]:
    return frame["staff_id"].tolist()


def reasons_of(frame: pd.DataFrame, staff_id: Any) -> tuple[str, ...]:
    return tuple(frame.loc[frame["staff_id"] == staff_id, "reasons"].iloc[0])


def lonlat(dx: float, dy: float = 0.0) -> Point:
    pt = gpd.GeoSeries([P(dx, dy)], crs=UTM51N).to_crs(4326).iloc[0]
    assert isinstance(pt, Point)
    return pt


# --------------------------------------------------------------------------------------------
# rank_candidates
# --------------------------------------------------------------------------------------------


def test_rank_orders_by_travel_time_and_explains() -> None:
    staff = make_staff([{"at": (900, 0)}, {"at": (100, 0)}, {"at": (0, 500)}], crs="EPSG:4326")
    got = rank_candidates(staff, at=lonlat(0, 0))
    assert list(got.columns) == RANK_COLUMNS
    assert ids(got) == [101, 102, 100]
    assert got["rank"].tolist() == [1, 2, 3]
    assert got["distance_m"].to_numpy() == pytest.approx([100, 500, 900], abs=0.05)
    assert got["eta_s"].to_numpy() == pytest.approx([25, 125, 225], abs=0.05)
    assert (got["distance_kind"] == "straight").all()
    assert got["reasons"].iloc[0] == ("nearest",)
    assert got["reasons"].iloc[1] == ()
    assert got["fresh"].all() and got["role_fit"].all() and not got["responsible"].any()
    # lon/lat of the positions
    expected = lonlat(100, 0)
    assert got["lon"].iloc[0] == pytest.approx(expected.x) and got["lat"].iloc[0] == pytest.approx(expected.y)


def test_workload_roles_and_responsibility_weigh_in() -> None:
    staff = make_staff(
        [
            {"staff_id": "busy", "at": (100, 0), "workload": 5},  # 25 s + 5 x 120 s
            {"staff_id": "free", "at": (1000, 0)},  # 250 s
            {"staff_id": "cop", "at": (1500, 0), "role": "police"},  # 375 s
            {"staff_id": "mine", "at": (1100, 0), "grids": ["G1", "G2"]},  # 275 s, responsible
        ]
    )
    plain = rank_candidates(staff, at=P(0, 0))
    assert ids(plain) == ["free", "mine", "cop", "busy"]
    assert reasons_of(plain, "busy") == ("nearest", "busy")
    by_grid = rank_candidates(staff, at=P(0, 0), grid_code="G2")
    assert ids(by_grid) == ["mine", "free", "cop", "busy"]  # the others pay not_responsible_s
    assert reasons_of(by_grid, "mine") == ("grid_responsible",)
    assert by_grid["responsible"].tolist() == [True, False, False, False]
    police = rank_candidates(staff, at=P(0, 0), preferred_roles=("police",))
    assert ids(police)[0] == "cop"
    assert reasons_of(police, "cop") == ("role_fit",)
    assert reasons_of(police, "free") == ("role_misfit",)
    assert police["role_fit"].tolist() == [True, False, False, False]
    # a single string is one role, not a sequence of letters
    assert ids(rank_candidates(staff, at=P(0, 0), preferred_roles="police"))[0] == "cop"
    # the weights are the caller's to change
    heavy = rank_candidates(staff, at=P(0, 0), weights=RankWeights(per_open_case_s=0.0))
    assert ids(heavy)[0] == "busy"
    score = plain.set_index("staff_id")["score"]
    assert score["busy"] == pytest.approx(25 + 5 * 120)


def test_over_limit_and_off_duty_come_last() -> None:
    staff = make_staff(
        [
            {"staff_id": "full", "at": (10, 0), "workload": 8},
            {"staff_id": "home", "at": (20, 0), "on_duty": False, "grids": ("G1",)},
            {"staff_id": "away", "at": (30, 0), "on_duty": False},  # off duty, not responsible
            {"staff_id": "ok", "at": (2000, 0)},
        ]
    )
    got = rank_candidates(staff, at=P(0, 0), grid_code="G1")
    assert ids(got) == ["ok", "full", "home"]
    assert reasons_of(got, "ok") == ("nearest",)
    assert reasons_of(got, "full") == ("over_workload_limit",)
    assert reasons_of(got, "home") == ("grid_responsible", "off_duty")
    assert not got.set_index("staff_id").loc["home", "on_duty"]


def test_fallback_to_the_grids_responsible_staff() -> None:
    staff = make_staff(
        [
            {"staff_id": "fresh", "at": (400, 0)},
            {"staff_id": "stale", "at": (50, 0), "age_s": 5000.0, "grids": ("G1",)},
            {"staff_id": "unknown age", "at": (60, 0), "age_s": np.nan, "grids": ("G1", "G9")},
            {"staff_id": "lost", "at": None, "age_s": np.nan, "grids": ("G1",)},
            {"staff_id": "far", "at": (9000, 0), "grids": ("G1",)},
            {"staff_id": "other grid", "at": (70, 0), "age_s": 5000.0, "grids": ("G2",)},
        ]
    )
    got = rank_candidates(staff, at=P(0, 0), grid_code="G1")
    assert ids(got) == ["fresh", "stale", "unknown age", "lost", "far"]
    assert reasons_of(got, "fresh") == ("nearest",)
    assert reasons_of(got, "stale") == ("grid_responsible", "stale_position")
    assert reasons_of(got, "unknown age") == ("grid_responsible", "stale_position")
    assert reasons_of(got, "lost") == ("grid_responsible", "no_position")
    assert reasons_of(got, "far") == ("grid_responsible", "beyond_radius")
    row = got.set_index("staff_id")
    assert row.loc["stale", "distance_m"] == pytest.approx(50.0)  # the last known distance is shown
    assert not row.loc["stale", "fresh"]
    assert np.isnan(row.loc["lost", "distance_m"]) and row.loc["lost", "distance_kind"] == "none"
    assert np.isnan(row.loc["lost", "eta_s"]) and np.isnan(row.loc["lost", "lon"])
    assert np.isfinite(got["score"]).all()
    # with enough fresh candidates the fallback is not needed
    many = make_staff([{"staff_id": f"w{i}", "at": (100 * i + 100, 0)} for i in range(3)])
    both = pd.concat([many, staff.iloc[1:2]], ignore_index=True)
    assert ids(rank_candidates(gpd.GeoDataFrame(both, crs=UTM51N), at=P(0, 0), grid_code="G1", limit=3)) == [
        "w0",
        "w1",
        "w2",
    ]
    # without a grid code nobody stale is listed
    assert ids(rank_candidates(staff, at=P(0, 0))) == ["fresh"]


def test_limit_radius_and_max_age() -> None:
    staff = make_staff([{"at": (100.0 * i, 0), "age_s": 10.0 * i} for i in range(1, 30)])
    assert len(rank_candidates(staff, at=P(0, 0))) == 10
    assert len(rank_candidates(staff, at=P(0, 0), limit=3)) == 3
    assert len(rank_candidates(staff, at=P(0, 0), radius_m=1000, limit=50)) == 10
    assert len(rank_candidates(staff, at=P(0, 0), max_age_s=50, limit=50)) == 5
    assert rank_candidates(staff, at=P(0, 0), radius_m=0).empty


def test_road_distances_rank_the_reachable_first() -> None:
    net = RoadNetwork.from_roads(streets())
    staff = make_staff(
        [
            {"staff_id": "behind the block", "at": (50, 280)},  # 280 m straight, ~409 m by road
            {"staff_id": "down the street", "at": (350, 0)},  # 300 m straight and by road
            {"staff_id": "across the river", "at": (650, 0)},  # no bridge
        ]
    )
    at = P(50, 0)
    straight = rank_candidates(staff, at=at)
    assert ids(straight) == ["behind the block", "down the street", "across the river"]
    road = rank_candidates(staff.to_crs(4326), at=lonlat(50, 0), network=net)
    assert ids(road) == ["down the street", "behind the block", "across the river"]
    assert road["distance_kind"].tolist() == ["road", "road", "straight"]
    assert reasons_of(road, "down the street") == ("nearest", "road_distance")
    assert reasons_of(road, "across the river") == ("no_road_path",)
    dist = road.set_index("staff_id")["distance_m"]
    assert dist["down the street"] == pytest.approx(300.0, abs=0.1)
    assert dist["behind the block"] > 380.0
    assert dist["across the river"] == pytest.approx(600.0, abs=0.1)


def test_awkward_staff_frames() -> None:
    with pytest.raises(CRSError):
        rank_candidates(make_staff([{"at": (1, 0)}], crs=None), at=P(0, 0))
    with pytest.raises(ValueError, match="duplicate staff_id"):
        rank_candidates(make_staff([{"staff_id": 7, "at": (1, 0)}, {"staff_id": 7, "at": (2, 0)}]), at=P(0, 0))
    with pytest.raises(ValueError, match="without a staff_id"):
        rank_candidates(make_staff([{"staff_id": None, "at": (1, 0)}]), at=P(0, 0))
    with pytest.raises(ValueError, match="'staff_id'"):
        rank_candidates(gpd.GeoDataFrame({"name": ["x"]}, geometry=[P(1, 0)], crs=UTM51N), at=P(0, 0))
    with pytest.raises(TypeError):
        rank_candidates(pd.DataFrame({"staff_id": [1]}), at=P(0, 0))  # type: ignore[arg-type]
    staff = make_staff([{"at": (10, 0)}])
    with pytest.raises(TypeError, match="Point"):
        rank_candidates(staff, at=shapely.box(0, 0, 1, 1))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="empty"):
        rank_candidates(staff, at=Point())
    for bad in ({"limit": 0}, {"speed_mps": 0}, {"radius_m": -1}, {"max_workload": -1}):
        with pytest.raises(ValueError):
            rank_candidates(staff, at=P(0, 0), **bad)
    with pytest.raises(ValueError, match="per_open_case_s"):
        RankWeights(per_open_case_s=-1)

    empty = rank_candidates(make_staff([]), at=P(0, 0))
    assert list(empty.columns) == RANK_COLUMNS and empty.empty

    odd = make_staff(
        [
            {"staff_id": "nan load", "at": (10, 0), "workload": np.nan},
            {"staff_id": "none", "at": None},
            {"staff_id": "empty", "at": Point()},
            {"staff_id": "nan", "at": Point(np.nan, np.nan)},
            {"staff_id": "null duty", "at": (20, 0), "on_duty": None},
            {"staff_id": "odd grids", "at": (30, 0), "grids": np.nan},
            {"staff_id": "one grid", "at": (40, 0), "grids": "G1"},
        ]
    )
    before = odd.copy()
    got = rank_candidates(odd, at=P(0, 0), grid_code="G1")
    assert ids(got) == ["one grid", "nan load", "odd grids"]
    assert got.set_index("staff_id").loc["nan load", "workload"] == 0
    assert reasons_of(got, "one grid") == ("grid_responsible",)
    assert odd.drop(columns="geometry").equals(before.drop(columns="geometry"))
    assert odd.geometry.equals(before.geometry)
    # without the optional columns: everybody on duty, fresh, free
    bare = gpd.GeoDataFrame({"staff_id": [1, 2]}, geometry=[P(30, 0), P(10, 0)], crs=UTM51N)
    got = rank_candidates(bare, at=P(0, 0))
    assert ids(got) == [2, 1] and got["name"].isna().all()


def test_at_in_another_crs() -> None:
    staff = make_staff([{"at": (300, 0)}, {"at": (200, 0)}], crs="EPSG:4326")
    got = rank_candidates(staff, at=P(0, 0), crs=UTM51N)
    assert ids(got) == [101, 100]
    assert got["distance_m"].to_numpy() == pytest.approx([200.0, 300.0], abs=0.05)


def test_every_reason_code_is_documented() -> None:
    staff = make_staff(
        [
            {"at": (10, 0), "workload": 9, "grids": ("G1",), "role": "police"},
            {"at": (20, 0), "workload": 4},
            {"at": (30, 0), "age_s": 9999.0, "grids": ("G1",)},
            {"at": None, "grids": ("G1",)},
            {"at": (9000, 0), "grids": ("G1",)},
            {"at": (40, 0), "on_duty": False, "grids": ("G1",)},
            {"at": (650, 0)},
        ]
    )
    seen = set()
    for network in (None, RoadNetwork.from_roads(streets())):
        got = rank_candidates(staff, at=P(0, 0), grid_code="G1", preferred_roles=("police",), network=network)
        seen |= set(itertools.chain.from_iterable(got["reasons"]))
    assert seen == set(REASONS)
    assert rank_candidates.__doc__ is not None
    for code in REASONS:
        assert f"``{code}``" in rank_candidates.__doc__


@pytest.fixture(scope="module")
def city_staff() -> gpd.GeoDataFrame:
    """15,000 staff scattered over 40 x 40 km around Tieling, in lon/lat."""
    rng = np.random.default_rng(42)
    n = 15_000
    xy = rng.uniform(-20_000, 20_000, (n, 2)) + [X0, Y0]
    frame = gpd.GeoDataFrame(
        {
            "staff_id": np.arange(n) * 3 + 1,
            "name": [f"w{i}" for i in range(n)],
            "role": rng.choice(["grid_worker", "police", "volunteer"], n),
            "on_duty": rng.random(n) < 0.9,
            "age_s": np.where(rng.random(n) < 0.05, np.nan, rng.uniform(0, 1800, n)),
            "workload": rng.integers(0, 10, n),
            "grids": [(f"G{i % 700}",) for i in range(n)],
        },
        geometry=shapely.points(xy),
        crs=UTM51N,
    )
    return frame.to_crs(4326)


def test_the_spatial_index_gives_the_brute_force_top_ten(city_staff: gpd.GeoDataFrame) -> None:
    metric = city_staff.to_crs(UTM51N)
    rng = np.random.default_rng(3)
    w = RankWeights()
    for dx, dy in rng.uniform(-15_000, 15_000, (5, 2)):
        at = P(dx, dy)
        got = rank_candidates(city_staff, at=at, crs=UTM51N, preferred_roles=("police",))
        d = metric.distance(at).to_numpy()
        ok = (
            metric["on_duty"].to_numpy()
            & (metric["age_s"].to_numpy() <= 900)
            & (d <= 5000)
            & (metric["workload"].to_numpy() < 8)
        )
        score = d / 4.0 + w.per_open_case_s * metric["workload"].to_numpy()
        score = score + np.where(metric["role"].to_numpy() == "police", 0.0, w.role_misfit_s)
        rows = np.flatnonzero(ok)
        best = rows[np.lexsort((rows, score[rows]))[:10]]
        assert ids(got) == metric["staff_id"].to_numpy()[best].tolist()
        assert got["distance_m"].to_numpy() == pytest.approx(d[best], abs=0.01)
    # and it is quick once the frame's spatial index exists
    start = time.perf_counter()
    for _ in range(5):
        rank_candidates(city_staff, at=P(0, 0), crs=UTM51N, grid_code="G5")
    assert (time.perf_counter() - start) / 5 < 0.1


# --------------------------------------------------------------------------------------------
# plan_assignment
# --------------------------------------------------------------------------------------------


def make_cases(points: Sequence[tuple[float, float] | None], *, crs: str | None = UTM51N) -> gpd.GeoDataFrame:
    geoms = [None if p is None else P(*p) for p in points]
    frame = gpd.GeoDataFrame({"id": [f"c{i}" for i in range(len(points))]}, geometry=geoms, crs=UTM51N)
    if crs is None:
        return frame.set_crs(None, allow_override=True)
    return frame if crs == UTM51N else frame.to_crs(crs)


def greedy(cases: gpd.GeoDataFrame, staff: gpd.GeoDataFrame) -> float:
    """Nearest free person first, cases in order (capacity 1)."""
    free = dict(zip(staff["staff_id"], staff.geometry, strict=True))
    total = 0.0
    for geom in cases.geometry:
        sid, pos = min(free.items(), key=lambda kv: kv[1].distance(geom))
        total += pos.distance(geom)
        del free[sid]
    return total


def test_plan_beats_greedy() -> None:
    staff = make_staff([{"staff_id": "P", "at": (0, 0)}, {"staff_id": "Q", "at": (10, 0)}])
    cases = make_cases([(4, 0), (-1, 0)])
    plan = plan_assignment(cases, staff)
    assert list(plan.columns) == PLAN_COLUMNS
    assert plan["case_id"].tolist() == ["c0", "c1"]
    assert plan["staff_id"].tolist() == ["Q", "P"]
    assert plan["distance_m"].sum() == pytest.approx(7.0)
    assert greedy(cases, staff) == pytest.approx(15.0)
    assert (plan["distance_kind"] == "straight").all()
    # lon/lat inputs give the same plan
    again = plan_assignment(cases.to_crs(4326), staff.to_crs(4326))
    assert again["staff_id"].tolist() == ["Q", "P"]
    assert again["distance_m"].sum() == pytest.approx(7.0, abs=0.01)


def test_plan_respects_capacity_workload_and_distance() -> None:
    staff = make_staff(
        [
            {"staff_id": "near", "at": (0, 0)},
            {"staff_id": "loaded", "at": (1, 0), "workload": 7},  # max_workload 8: room for 1
            {"staff_id": "far", "at": (3000, 0)},
            {"staff_id": "stale", "at": (0, 1), "age_s": 5000.0},
            {"staff_id": "off", "at": (0, 2), "on_duty": False},
        ]
    )
    cases = make_cases([(5, 0), (6, 0), (7, 0), (8, 0), (9, 0), (20_000, 0), None])
    plan = plan_assignment(cases, staff, capacity=2)
    counts = plan["staff_id"].value_counts()
    assert counts["near"] == 2 and counts["loaded"] == 1 and counts["far"] == 2
    assert "stale" not in counts and "off" not in counts
    assert plan["staff_id"].iloc[5] is None and np.isnan(plan["distance_m"].iloc[5])  # beyond 5 km
    assert plan["staff_id"].iloc[6] is None  # no position
    # more cases than slots
    one = plan_assignment(cases.iloc[:3], staff.iloc[:1])
    assert one["staff_id"].notna().sum() == 1 and one["staff_id"].iloc[0] == "near"
    # a mapping gives per-person capacity; people missing from it take nothing
    mapped = plan_assignment(cases.iloc[:3], staff, capacity={"far": 3})
    assert mapped["staff_id"].tolist() == ["far", "far", "far"]
    with pytest.raises(ValueError, match="capacity"):
        plan_assignment(cases, staff, capacity=-1)
    with pytest.raises(ValueError, match="capacity"):
        plan_assignment(cases, staff, capacity={"near": 1.5})  # type: ignore[dict-item]
    assert plan_assignment(cases, staff, capacity=0)["staff_id"].isna().all()


def test_plan_is_optimal_on_random_instances() -> None:
    rng = np.random.default_rng(11)
    for trial in range(4):
        n_cases, n_staff, cap, max_d = 25, 20, 1 + trial % 2, 900.0
        staff = make_staff(
            [{"at": tuple(xy), "workload": int(w)} for xy, w in zip(rng.uniform(0, 3000, (n_staff, 2)), rng.integers(5, 8, n_staff), strict=True)]
        )
        cases = make_cases([tuple(xy) for xy in rng.uniform(0, 3000, (n_cases, 2))])
        plan = plan_assignment(cases, staff, capacity=cap, max_distance_m=max_d)
        # the full dense problem: every slot of every person
        slots = np.minimum(cap, 8 - staff["workload"].to_numpy())
        owner = np.repeat(np.arange(n_staff), slots)
        d = np.array([[c.distance(s) for s in staff.geometry] for c in cases.geometry])[:, owner]
        big = 1e9
        cost = np.where(d <= max_d, d, big)
        r, c = linear_sum_assignment(cost)
        real = cost[r, c] < big
        assert plan["staff_id"].notna().sum() == real.sum()
        assert plan["distance_m"].sum() == pytest.approx(cost[r, c][real].sum())
        counts = plan["staff_id"].value_counts()
        for sid, k in counts.items():
            assert k <= slots[staff["staff_id"].tolist().index(sid)]


def test_plan_on_the_road_network() -> None:
    net = RoadNetwork.from_roads(streets())
    staff = make_staff([{"staff_id": "river", "at": (650, 0)}, {"staff_id": "street", "at": (300, 0)}])
    cases = make_cases([(0, 0), (700, 100)])
    plan = plan_assignment(cases, staff, network=net)
    assert plan["staff_id"].tolist() == ["street", "river"]
    assert plan["distance_kind"].tolist() == ["road", "road"]
    assert plan["distance_m"].to_numpy() == pytest.approx([300.0, 150.0])
    # a road path longer than max_distance_m rules the pair out; no path at all falls back to straight
    far = plan_assignment(make_cases([(0, 400)]), staff.iloc[1:], network=net, max_distance_m=600)
    assert far["staff_id"].iloc[0] is None  # 500 m straight, 700 m by road
    across = plan_assignment(make_cases([(450, 0)]), staff.iloc[:1], network=net)
    assert across["staff_id"].iloc[0] == "river" and across["distance_kind"].iloc[0] == "straight"


def test_plan_awkward_input() -> None:
    staff = make_staff([{"at": (0, 0)}])
    with pytest.raises(CRSError):
        plan_assignment(make_cases([(1, 0)], crs=None), staff)
    with pytest.raises(CRSError):
        plan_assignment(make_cases([(1, 0)]), make_staff([{"at": (0, 0)}], crs=None))
    with pytest.raises(ValueError, match="'id'"):
        plan_assignment(make_cases([(1, 0)]).drop(columns="id"), staff)
    with pytest.raises(ValueError, match="duplicate"):
        plan_assignment(make_cases([(1, 0)]), make_staff([{"staff_id": 1, "at": (0, 0)}, {"staff_id": 1}]))
    empty = plan_assignment(make_cases([]), staff)
    assert list(empty.columns) == PLAN_COLUMNS and empty.empty
    nobody = plan_assignment(make_cases([(1, 0), None]), make_staff([]))
    assert nobody["staff_id"].isna().all() and nobody["case_id"].tolist() == ["c0", "c1"]
    cases = make_cases([(1, 0), None])
    cases.index = pd.Index([10, 20])
    got = plan_assignment(cases, staff)
    assert got.index.tolist() == [10, 20] and got["staff_id"].tolist() == [100, None]


def test_plan_for_a_surge_in_a_city(city_staff: gpd.GeoDataFrame) -> None:
    rng = np.random.default_rng(5)
    cases = make_cases([tuple(xy) for xy in rng.uniform(-3000, 3000, (300, 2))], crs="EPSG:4326")
    start = time.perf_counter()
    plan = plan_assignment(cases, city_staff, capacity=1)
    elapsed = time.perf_counter() - start
    assert plan["staff_id"].notna().all()
    assert plan["staff_id"].is_unique
    assert elapsed < 1.0


# --------------------------------------------------------------------------------------------
# space_time_clusters, cluster_outlines
# --------------------------------------------------------------------------------------------


def make_reports(rows: Sequence[tuple[Any, ...]], *, crs: str | None = UTM51N) -> gpd.GeoDataFrame:
    """Rows of (dx, dy, hours after T0, category); dx None for no position."""
    geoms = [None if r[0] is None else P(r[0], r[1]) for r in rows]
    times = [pd.NaT if r[2] is None else T0 + pd.Timedelta(hours=r[2]) for r in rows]
    frame = gpd.GeoDataFrame(
        {
            "id": np.arange(1, len(rows) + 1),
            "category": [r[3] for r in rows],
            "reported_at": pd.Series(times, dtype="datetime64[ns, Asia/Shanghai]"),
        },
        geometry=geoms,
        crs=UTM51N,
    )
    frame.index = frame.index + 500
    if crs is None:
        return frame.set_crs(None, allow_override=True)
    return frame if crs == UTM51N else frame.to_crs(crs)


def test_clusters_link_near_similar_reports() -> None:
    reports = make_reports(
        [
            (0, 0, 5, "noise"),  # 500 ┐
            (100, 0, 6, "noise"),  # 501 ├ cluster 2 (starts at hour 5)
            (100, 100, 30, "noise"),  # 502 ┘
            (50, 50, 6, "garbage"),  # 503   other category
            (5000, 0, 1, "garbage"),  # 504 ┐ cluster 1 (hour 1)
            (5250, 0, 2, "garbage"),  # 505 │ single linkage: 504-505-506 in a chain,
            (5500, 0, 3, "garbage"),  # 506 ┘ 504-506 are 500 m apart
            (0, 0, 200, "noise"),  # 507   too late
            (9000, 0, 1, "noise"),  # 508   alone
        ]
    )
    got = space_time_clusters(reports)
    assert got.dtype == "Int64" and got.name == "cluster"
    assert got.index.equals(reports.index)
    assert got.tolist() == [2, 2, 2, pd.NA, 1, 1, 1, pd.NA, pd.NA]
    # by=None: categories mix, so the garbage report joins the noise cluster
    mixed = space_time_clusters(reports, by=None)
    assert mixed[503] == mixed[500]
    # a shorter window (seconds) splits off the report of hour 30
    short = space_time_clusters(reports, window=3600.0 * 2, min_size=2)
    assert short[500] == short[501] and pd.isna(short[502])
    assert space_time_clusters(reports, eps_m=50).isna().all()
    assert space_time_clusters(reports, min_size=4).isna().all()


def test_clusters_in_lon_lat_and_awkward_rows() -> None:
    reports = make_reports(
        [
            (0, 0, 0, "noise"),
            (200, 0, 1, "noise"),
            (400, 0, 2, "noise"),
            (None, None, 1, "noise"),
            (100, 0, None, "noise"),
            (100, 0, 1, None),
        ],
        crs="EPSG:4326",
    )
    got = space_time_clusters(reports, eps_m=250)
    assert got.tolist() == [1, 1, 1, pd.NA, pd.NA, pd.NA]
    assert space_time_clusters(reports, eps_m=150).isna().all()  # the metres are real metres
    with pytest.raises(CRSError):
        space_time_clusters(make_reports([(0, 0, 0, "x")], crs=None))
    with pytest.raises(ValueError, match="reported_at"):
        space_time_clusters(reports.drop(columns="reported_at"))
    with pytest.raises(ValueError, match="'kind'"):
        space_time_clusters(reports, by="kind")
    with pytest.raises(ValueError, match="min_size"):
        space_time_clusters(reports, min_size=0)
    with pytest.raises(ValueError, match="window"):
        space_time_clusters(reports, window=pd.Timedelta(hours=-1))
    empty = space_time_clusters(make_reports([]))
    assert empty.empty and empty.dtype == "Int64"
    # naive times work too
    naive = reports.assign(reported_at=reports["reported_at"].dt.tz_localize(None))
    assert space_time_clusters(naive, eps_m=250).tolist() == got.tolist()


def test_cluster_outlines() -> None:
    reports = make_reports(
        [(0, 0, 5, "noise"), (100, 0, 6, "noise"), (100, 100, 30, "noise"), (5000, 0, 1, "garbage")],
        crs="EPSG:4326",
    )
    labels = space_time_clusters(reports)
    shapes = cluster_outlines(reports, labels)
    assert list(shapes.columns) == OUTLINE_COLUMNS
    assert shapes.crs == reports.crs
    assert len(shapes) == 1
    row = shapes.iloc[0]
    assert row["cluster"] == 1 and row["category"] == "noise" and row["n"] == 3
    assert row["first"] == T0 + pd.Timedelta(hours=5) and row["last"] == T0 + pd.Timedelta(hours=30)
    assert shapes.geometry.iloc[0].contains(reports.geometry.iloc[:3].union_all())
    area = shapes.to_crs(UTM51N).area.iloc[0]
    assert 100 * 100 / 2 < area < 300 * 300  # hull (5,000 m²) grown by 60 m
    none = cluster_outlines(reports, space_time_clusters(reports, min_size=10))
    assert list(none.columns) == OUTLINE_COLUMNS and none.empty and none.crs == reports.crs
    with pytest.raises(ValueError, match="same index"):
        cluster_outlines(reports, labels.reset_index(drop=True))
    nocat = cluster_outlines(reports, space_time_clusters(reports, by=None), by=None)
    assert nocat["category"].tolist() == [None]


# --------------------------------------------------------------------------------------------
# likely_duplicate
# --------------------------------------------------------------------------------------------


def test_likely_duplicate() -> None:
    existing = make_reports(
        [
            (50, 0, 0, "noise"),  # id 1: 50 m, 10 h before
            (30, 0, 8, "noise"),  # id 2: 30 m, 2 h before -> the answer
            (10, 0, 9, "garbage"),  # id 3: other category
            (5, 0, 11, "noise"),  # id 4: after the new report
            (20, 0, -20, "noise"),  # id 5: 30 h before
            (200, 0, 9, "noise"),  # id 6: too far
        ],
        crs="EPSG:4326",
    )
    when = T0 + pd.Timedelta(hours=10)
    assert likely_duplicate(existing, at=P(0, 0), crs=UTM51N, category="noise", when=when) == 2
    assert likely_duplicate(existing, at=lonlat(0, 0), category="garbage", when=when) == 3
    assert likely_duplicate(existing, at=lonlat(0, 0), category="other", when=when) is None
    assert likely_duplicate(existing, at=lonlat(0, 0), category="noise", when=when, within_m=20) is None
    longer = pd.Timedelta(hours=48)
    assert likely_duplicate(existing, at=lonlat(0, 0), category="noise", when=when, within=longer) == 5
    # closed cases and merged reports are not matched
    closed = existing.assign(state=["filed", "closed", "filed", "filed", "filed", "filed"])
    assert likely_duplicate(closed, at=lonlat(0, 0), category="noise", when=when) == 1
    merged = existing.assign(duplicate_of=[None, 1, None, None, None, None])
    assert likely_duplicate(merged, at=lonlat(0, 0), category="noise", when=when) == 1
    assert isinstance(likely_duplicate(existing, at=lonlat(0, 0), category="noise", when=when), int)


def test_likely_duplicate_awkward_input() -> None:
    existing = make_reports([(None, None, 0, "noise"), (10, 0, None, "noise")])
    when = T0 + pd.Timedelta(hours=1)
    assert likely_duplicate(existing, at=P(0, 0), category="noise", when=when) is None
    assert likely_duplicate(make_reports([]), at=P(0, 0), category="noise", when=when) is None
    with pytest.raises(CRSError):
        likely_duplicate(make_reports([(0, 0, 0, "noise")], crs=None), at=P(0, 0), category="noise", when=when)
    with pytest.raises(TypeError, match="timezone"):
        likely_duplicate(existing, at=P(0, 0), category="noise", when=pd.Timestamp("2026-11-20 10:00"))
    with pytest.raises(ValueError, match="'category'"):
        likely_duplicate(existing.drop(columns="category"), at=P(0, 0), category="noise", when=when)
    with pytest.raises(ValueError, match="empty"):
        likely_duplicate(existing, at=Point(), category="noise", when=when)
