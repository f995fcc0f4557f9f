"""Tests for geo.tracks: hand-built tracks near Tieling, built in metres (UTM 51N) and sent as lon/lat."""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from geopandas.testing import assert_geodataframe_equal

from geo.errors import CRSError
from geo.tracks import (
    DAILY_COLUMNS,
    SEGMENT_COLUMNS,
    STOP_COLUMNS,
    VISIT_COLUMNS,
    Coverage,
    TripStats,
    daily_summary,
    flag_jumps,
    grid_visits,
    locate,
    patrol_coverage,
    stops,
    track_segments,
    trip_stats,
)

UTM = "EPSG:32651"  # Tieling's UTM zone, the one geo.crs.metric_crs picks for these frames
LONLAT = "EPSG:4326"
X0, Y0 = 569_250.0, 4_682_317.0  # roughly Tieling (lon 123.84, lat 42.29) in UTM 51N
T0 = pd.Timestamp("2024-05-01 08:00:00", tz="UTC")


def make_fixes(
    xy: Sequence[tuple[float, float]],
    seconds: Sequence[float],
    *,
    staff: Sequence[int] | int | None = None,
    crs: str = LONLAT,
    t0: pd.Timestamp = T0,
    index: Sequence[Any] | None = None,
    **columns: Any,
) -> gpd.GeoDataFrame:
    """Fixes at ``xy`` metres east/north of the origin, ``seconds`` after ``t0``; built in UTM, sent in ``crs``."""
    data: dict[str, Any] = {"ts": [t0 + pd.Timedelta(seconds=float(s)) for s in seconds], **columns}
    if staff is not None:
        data["staff_id"] = [staff] * len(xy) if isinstance(staff, int) else list(staff)
    frame = gpd.GeoDataFrame(
        data,
        geometry=[shapely.Point(X0 + x, Y0 + y) for x, y in xy],
        crs=UTM,
        index=list(index) if index is not None else None,
    )
    frame["ts"] = pd.to_datetime(frame["ts"], utc=True)
    return frame if crs == UTM else frame.to_crs(crs)


def box(cx: float, cy: float, half: float = 5.0) -> shapely.Polygon:
    """A square building footprint (UTM metres from the origin)."""
    return shapely.box(X0 + cx - half, Y0 + cy - half, X0 + cx + half, Y0 + cy + half)


def buildings_frame(
    geoms: Sequence[shapely.Geometry], households: Sequence[int], *, crs: str = LONLAT
) -> gpd.GeoDataFrame:
    frame = gpd.GeoDataFrame(
        {"name": [f"b{i}" for i in range(len(geoms))], "households": list(households)},
        geometry=list(geoms),
        crs=UTM,
        index=[100 + i for i in range(len(geoms))],
    )
    return frame if crs == UTM else frame.to_crs(crs)


def walk(n: int = 10, *, step_m: float = 10.0, every_s: float = 10.0, **kwargs: Any) -> gpd.GeoDataFrame:
    """A straight walk east: ``n`` fixes ``step_m`` apart every ``every_s`` seconds."""
    return make_fixes([(step_m * i, 0.0) for i in range(n)], [every_s * i for i in range(n)], **kwargs)


def empty_fixes(*, with_staff: bool = True) -> gpd.GeoDataFrame:
    data: dict[str, Any] = {"ts": pd.Series([], dtype="datetime64[ns, UTC]")}
    if with_staff:
        data["staff_id"] = pd.Series([], dtype=np.int64)
    return gpd.GeoDataFrame(data, geometry=gpd.GeoSeries([], crs=LONLAT), crs=LONLAT)


def without_crs(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(frame.drop(columns="geometry"), geometry=list(frame.geometry), crs=None)


def utm_xy(frame: gpd.GeoDataFrame) -> np.ndarray:
    """Coordinates of a frame's (point) geometries in metres from the origin."""
    return shapely.get_coordinates(frame.to_crs(UTM).geometry.to_numpy()) - np.array([X0, Y0])


def dwell_track() -> gpd.GeoDataFrame:
    """Approach in 100 m steps every 60 s, dwell 6 minutes (13 fixes, 30 s apart, jitter ≤ 5 m), leave."""
    xy = [(-300.0, 0.0), (-200.0, 0.0), (-100.0, 0.0)]
    secs = [0.0, 60.0, 120.0]
    jitter_x = [0, 3, 0, -3, 0, 2, -2, 4, 0, -4, 0, 1, 0]
    jitter_y = [0, 0, 3, 0, -3, 2, -2, 0, 4, 0, -4, 1, 0]
    for k, (jx, jy) in enumerate(zip(jitter_x, jitter_y, strict=True)):
        xy.append((float(jx), float(jy)))
        secs.append(180.0 + 30.0 * k)
    xy += [(100.0, 0.0), (200.0, 0.0)]
    secs += [600.0, 660.0]
    return make_fixes(xy, secs, staff=7)


# --------------------------------------------------------------------------------------------
# Validation common to every function
# --------------------------------------------------------------------------------------------

GRIDS_UTM = gpd.GeoDataFrame(
    {"code": ["B", "A"]},
    geometry=[shapely.box(X0, Y0 - 50, X0 + 100, Y0 + 50), shapely.box(X0 - 100, Y0 - 50, X0, Y0 + 50)],
    crs=UTM,
)

CALLS: dict[str, Callable[[gpd.GeoDataFrame], Any]] = {
    "flag_jumps": lambda f: flag_jumps(f),
    "locate": lambda f: locate(f, GRIDS_UTM),
    "track_segments": lambda f: track_segments(f),
    "trip_stats": lambda f: trip_stats(f),
    "stops": lambda f: stops(f),
    "grid_visits": lambda f: grid_visits(f, GRIDS_UTM),
    "patrol_coverage": lambda f: patrol_coverage(f, buildings_frame([box(0, 0)], [3])),
    "daily_summary": lambda f: daily_summary(f),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_frame_without_crs_raises_crs_error(name: str) -> None:
    with pytest.raises(CRSError):
        CALLS[name](without_crs(walk(3, staff=1)))


@pytest.mark.parametrize("name", sorted(CALLS))
def test_inputs_are_not_mutated(name: str) -> None:
    fixes = flag_jumps(dwell_track())
    fixes.loc[fixes.index[5], "jump"] = True
    fixes = fixes.iloc[::-1]  # unsorted, non-default order
    before = fixes.copy()
    grids_before = GRIDS_UTM.copy()
    CALLS[name](fixes)
    assert_geodataframe_equal(fixes, before)
    assert_geodataframe_equal(GRIDS_UTM, grids_before)


def test_buildings_not_mutated_and_buildings_without_crs_raise() -> None:
    blds = buildings_frame([box(0, 10)], [4])
    before = blds.copy()
    patrol_coverage(walk(staff=1), blds)
    daily_summary(dwell_track(), buildings=blds)
    assert_geodataframe_equal(blds, before)
    with pytest.raises(CRSError):
        patrol_coverage(walk(), without_crs(blds))
    with pytest.raises(CRSError):
        daily_summary(walk(), buildings=without_crs(blds))
    with pytest.raises(CRSError):
        locate(walk(), without_crs(GRIDS_UTM))


def test_bad_inputs_raise() -> None:
    naive = walk(3)
    naive["ts"] = naive["ts"].dt.tz_localize(None)
    with pytest.raises(ValueError, match="timezone-aware"):
        track_segments(naive)
    lines = gpd.GeoDataFrame({"ts": [T0]}, geometry=[shapely.LineString([(0, 0), (1, 1)])], crs=LONLAT)
    with pytest.raises(ValueError, match="Point"):
        stops(lines)
    with pytest.raises(ValueError, match="previous"):
        flag_jumps(walk(3), previous=walk(1).drop(columns="ts"))
    with pytest.raises(ValueError, match="confirm"):
        flag_jumps(walk(3), confirm=1)
    with pytest.raises(ValueError, match="max_speed_mps"):
        flag_jumps(walk(3), max_speed_mps=0)
    with pytest.raises(ValueError, match="households"):
        patrol_coverage(walk(3), buildings_frame([box(0, 0)], [1]), households="hh")
    with pytest.raises(ValueError, match="code"):
        locate(walk(3), GRIDS_UTM.rename(columns={"code": "id"}))
    with pytest.raises(TypeError):
        trip_stats(pd.DataFrame({"ts": [T0]}))  # type: ignore[arg-type]


def test_empty_input_gives_empty_results_with_documented_columns() -> None:
    for fixes in (empty_fixes(), empty_fixes(with_staff=False)):
        flagged = flag_jumps(fixes)
        assert len(flagged) == 0 and flagged["jump"].dtype == bool
        assert len(locate(fixes, GRIDS_UTM)) == 0
        segs = track_segments(fixes)
        assert list(segs.columns) == SEGMENT_COLUMNS and len(segs) == 0 and segs.crs == LONLAT
        assert trip_stats(fixes) == TripStats(0, 0, 0.0, 0.0, 0.0, None, None)
        st = stops(fixes)
        assert list(st.columns) == STOP_COLUMNS and len(st) == 0 and st.crs == LONLAT
        visits = grid_visits(fixes, GRIDS_UTM)
        assert list(visits.columns) == VISIT_COLUMNS and len(visits) == 0
        cov = patrol_coverage(fixes, buildings_frame([box(0, 0), box(50, 0)], [3, 4]))
        counts = (cov.buildings_total, cov.buildings_passed, cov.households_total, cov.households_passed)
        assert counts == (2, 0, 7, 0)
        assert cov.share_buildings == 0.0 and cov.share_households == 0.0
        assert not cov.buildings["passed"].any() and cov.buildings["passed_at"].isna().all()
        daily = daily_summary(fixes, buildings=buildings_frame([box(0, 0)], [3]))
        assert list(daily.columns) == DAILY_COLUMNS and len(daily) == 0


def test_empty_buildings() -> None:
    empty_b = gpd.GeoDataFrame(
        {"households": pd.Series([], dtype=np.int64)}, geometry=gpd.GeoSeries([], crs=LONLAT), crs=LONLAT
    )
    cov = patrol_coverage(walk(), empty_b)
    counts = (cov.buildings_total, cov.buildings_passed, cov.share_buildings, cov.share_households)
    assert counts == (0, 0, 0.0, 0.0)
    assert list(cov.buildings.columns) == ["households", "geometry", "passed", "passed_at"]
    assert daily_summary(dwell_track(), buildings=empty_b)["buildings_visited"].tolist() == [0]


# --------------------------------------------------------------------------------------------
# flag_jumps
# --------------------------------------------------------------------------------------------


def test_straight_walk_has_no_jumps_and_keeps_rows() -> None:
    fixes = walk(staff=3, index=[f"r{i}" for i in range(10)])
    out = flag_jumps(fixes)
    assert out is not fixes and "jump" not in fixes.columns
    assert list(out.index) == list(fixes.index) and out.crs == fixes.crs
    assert out["jump"].dtype == bool and not out["jump"].any()
    assert_geodataframe_equal(out.drop(columns="jump"), fixes)


def test_one_big_jump_is_flagged_and_excluded_from_distance() -> None:
    xy = [(10.0 * i, 0.0) for i in range(5)] + [(3000.0, 2000.0)] + [(10.0 * i, 0.0) for i in range(5, 10)]
    fixes = make_fixes(xy, [10.0 * i for i in range(11)])
    flagged = flag_jumps(fixes)
    assert flagged["jump"].tolist() == [False] * 5 + [True] + [False] * 5
    stats = trip_stats(flagged)
    assert stats.points == 11 and stats.jumps == 1
    assert stats.distance_m == pytest.approx(90.0, abs=1e-6)
    assert stats.duration_s == 100.0
    assert stats.moving_s == pytest.approx(100.0)  # 50→60 m takes 20 s around the jump: still 0.5 m/s
    segs = track_segments(flagged)
    assert len(segs) == 9 and segs["distance_m"].sum() == pytest.approx(90.0, abs=1e-6)
    # without the flag the spike counts (a sanity check that the flag is what excludes it)
    assert trip_stats(fixes).distance_m > 7000


def test_three_consistent_jumps_after_a_wrong_reference_are_unflagged() -> None:
    # The worker's first fix is 5 km off (a bad cold-start fix). The real track then looks like jumps
    # relative to it; after `confirm` consistent ones they are accepted and become the reference.
    xy = [(5000.0, 0.0)] + [(10.0 * i, 0.0) for i in range(6)]
    fixes = make_fixes(xy, [10.0 * i for i in range(7)])
    assert flag_jumps(fixes)["jump"].tolist() == [False] * 7
    # with confirm=5 the first four real fixes stay flagged, the fifth confirms the chain
    assert flag_jumps(fixes, confirm=5)["jump"].tolist() == [False] * 7
    assert flag_jumps(fixes, confirm=10)["jump"].tolist() == [False] + [True] * 6
    # two spikes that agree with each other but are only two (< confirm) stay flagged
    xy2 = [(0.0, 0.0), (10.0, 0.0), (4000.0, 0.0), (4010.0, 0.0), (20.0, 0.0), (30.0, 0.0)]
    assert flag_jumps(make_fixes(xy2, [0, 10, 20, 30, 40, 50]))["jump"].tolist() == [
        False,
        False,
        True,
        True,
        False,
        False,
    ]


def test_inconsistent_flagged_fixes_do_not_confirm_each_other() -> None:
    # three spikes scattered far from each other: none is consistent with the previous one
    xy = [(0.0, 0.0), (4000.0, 0.0), (0.0, 4000.0), (-4000.0, 0.0), (10.0, 0.0)]
    flags = flag_jumps(make_fixes(xy, [0, 10, 20, 30, 40]))["jump"].tolist()
    assert flags == [False, True, True, True, False]


def test_jump_seeded_by_previous() -> None:
    previous = make_fixes([(0.0, 0.0)], [-10.0], staff=4)
    batch = make_fixes([(2000.0, 0.0), (10.0, 0.0), (20.0, 0.0)], [0, 10, 20], staff=4)
    assert flag_jumps(batch, previous=previous)["jump"].tolist() == [True, False, False]
    # without the seed the first fix is the reference and the real ones become "jumps" until confirmed
    assert flag_jumps(batch)["jump"].tolist() == [False, True, True]
    # another worker's previous position does not seed this one; previous may be in another CRS
    other = make_fixes([(0.0, 0.0)], [-10.0], staff=5, crs=UTM)
    assert flag_jumps(batch, previous=other)["jump"].tolist() == [False, True, True]
    both = pd.concat([other, previous.to_crs(UTM)])
    assert flag_jumps(batch, previous=both)["jump"].tolist() == [True, False, False]
    # the latest row per worker is the seed
    older = make_fixes([(2000.0, 0.0)], [-500.0], staff=4)
    assert flag_jumps(batch, previous=pd.concat([previous, older]))["jump"].tolist() == [True, False, False]
    # a wrong seed is overruled by `confirm` consistent fixes
    far_seed = make_fixes([(9000.0, 0.0)], [-10.0], staff=4)
    real = make_fixes([(10.0, 0.0), (20.0, 0.0), (30.0, 0.0), (40.0, 0.0)], [0, 10, 20, 30], staff=4)
    assert flag_jumps(real, previous=far_seed)["jump"].tolist() == [False] * 4
    # (in `batch` the 2 km fix breaks the chain: only two consistent fixes follow it)
    assert flag_jumps(batch, previous=far_seed)["jump"].tolist() == [True, True, True]


def test_previous_without_staff_id_for_several_workers_raises() -> None:
    previous = make_fixes([(0.0, 0.0)], [-10.0])
    with pytest.raises(ValueError, match="staff_id"):
        flag_jumps(walk(3, staff=1), previous=previous)
    # a single worker without staff_id is seeded by the latest row
    batch = make_fixes([(2000.0, 0.0), (10.0, 0.0)], [0, 10])
    assert flag_jumps(batch, previous=previous)["jump"].tolist() == [True, False]


def test_out_of_order_fixes_compare_with_the_reference_by_absolute_time() -> None:
    previous = make_fixes([(0.0, 0.0)], [100.0], staff=1)
    # arrives late: 10 s older than the reference but 3 km away → jump
    late_far = make_fixes([(3000.0, 0.0), (10.0, 0.0)], [90.0, 110.0], staff=1)
    assert flag_jumps(late_far, previous=previous)["jump"].tolist() == [True, False]
    # an old fix close by is accepted but does not replace the (newer) reference
    late_near = make_fixes([(20.0, 0.0), (500.0, 0.0)], [90.0, 110.0], staff=1)
    # 500 m in 10 s from the reference (the older accepted fix would give 480 m in 20 s, no jump)
    assert flag_jumps(late_near, previous=previous)["jump"].tolist() == [False, True]


def test_unsorted_input_gives_the_same_flags_by_index() -> None:
    xy = [(10.0 * i, 0.0) for i in range(5)] + [(3000.0, 2000.0)] + [(10.0 * i, 0.0) for i in range(5, 10)]
    fixes = make_fixes(xy, [10.0 * i for i in range(11)], index=list("abcdefghijk"))
    shuffled = fixes.sample(frac=1.0, random_state=3)
    out = flag_jumps(shuffled)
    assert list(out.index) == list(shuffled.index)
    assert out["jump"].sort_index().tolist() == flag_jumps(fixes)["jump"].tolist()
    assert out.loc["f", "jump"] and out["jump"].sum() == 1


def test_accuracy_and_slack_allowance() -> None:
    # 100 m in 1 s: a jump at 40 m/s with 30 m slack (70 m > 40 m) ...
    fixes = make_fixes([(0.0, 0.0), (100.0, 0.0), (0.0, 0.0)], [0, 1, 2], accuracy=[5.0, np.nan, 5.0])
    assert flag_jumps(fixes)["jump"].tolist() == [False, True, False]
    # ... but not when either fix reports 70 m accuracy or worse
    fixes["accuracy"] = [5.0, 70.0, 5.0]
    assert flag_jumps(fixes)["jump"].tolist() == [False, False, False]
    assert flag_jumps(fixes, slack_m=0.0)["jump"].tolist() == [False, False, False]
    # no elapsed time: beyond the allowance is a jump, within it is not
    # (the accepted 25 m fix becomes the reference: 60 m is 35 m from it)
    same_time = make_fixes([(0.0, 0.0), (25.0, 0.0), (60.0, 0.0), (40.0, 0.0)], [0, 0, 0, 0])
    assert flag_jumps(same_time)["jump"].tolist() == [False, False, True, False]


def test_flag_jumps_per_staff_and_unusable_rows() -> None:
    a = make_fixes([(0.0, 0.0), (5000.0, 0.0), (10.0, 0.0)], [0, 10, 20], staff=1)
    b = make_fixes([(5000.0, 0.0), (5010.0, 0.0)], [5, 15], staff=2)  # staff 2 works 5 km away: no jump
    fixes = pd.concat([a, b], ignore_index=True)
    fixes.loc[len(fixes)] = {"ts": T0, "staff_id": 1, "geometry": None}
    out = flag_jumps(fixes)
    assert out["jump"].tolist() == [False, True, False, False, False, False]


def _reference_flags(frame: gpd.GeoDataFrame, *, max_speed: float, slack: float, confirm: int) -> pd.Series:
    """flag_jumps by the book: one Python loop per worker over every fix (frame in UTM metres)."""
    work = frame.assign(_x=frame.geometry.x, _y=frame.geometry.y, _t=(frame["ts"] - T0).dt.total_seconds())
    work = work.sort_values(["staff_id", "ts"], kind="stable")
    result = pd.Series(False, index=frame.index)

    def is_jump(p: Any, q: Any) -> bool:
        allowance = max([slack] + [v for v in (p.accuracy, q.accuracy) if not math.isnan(v)])
        return math.hypot(p._x - q._x, p._y - q._y) - allowance > max_speed * abs(p._t - q._t)

    for _, group in work.groupby("staff_id", sort=False):
        ref: Any = None
        chain: list[Any] = []
        for label, row in group.iterrows():
            if ref is None:
                ref = row
                continue
            if is_jump(row, ref):
                result[label] = True
                chain = [*chain, (label, row)] if chain and not is_jump(row, chain[-1][1]) else [(label, row)]
                if len(chain) >= confirm:
                    for lab, _row in chain:
                        result[lab] = False
                    ref, chain = row, []
            else:
                chain = []
                if row._t >= ref._t:
                    ref = row
    return result


@pytest.mark.parametrize("seed", range(25))
def test_flag_jumps_matches_the_reference_loop_on_random_tracks(seed: int) -> None:
    rng = np.random.default_rng(seed)
    frames = []
    for staff in range(int(rng.integers(1, 4))):
        n = int(rng.integers(2, 80))
        steps = rng.normal(0.0, 60.0, (n, 2))
        xy = np.cumsum(steps, axis=0)
        spikes = rng.random(n) < 0.15
        xy[spikes] += rng.normal(0.0, 3000.0, (int(spikes.sum()), 2))
        teleport = rng.random(n) < 0.03  # the worker really moved (or the reference was off) from here on
        xy += np.cumsum(teleport[:, None] * rng.normal(0.0, 5000.0, (n, 2)), axis=0)
        secs = np.cumsum(rng.choice([0.0, 1.0, 5.0, 10.0, 30.0], size=n))
        accuracy = np.where(rng.random(n) < 0.5, np.nan, rng.uniform(5.0, 150.0, n))
        frames.append(
            make_fixes([tuple(p) for p in xy], list(secs), staff=staff + 10, crs=UTM, accuracy=list(accuracy))
        )
    fixes = pd.concat(frames, ignore_index=True).sample(frac=1.0, random_state=seed)
    confirm = int(rng.integers(2, 5))
    got = flag_jumps(fixes, confirm=confirm, max_speed_mps=20.0)["jump"]
    expected = _reference_flags(fixes, max_speed=20.0, slack=30.0, confirm=confirm)
    assert got.tolist() == expected.tolist()


# --------------------------------------------------------------------------------------------
# locate
# --------------------------------------------------------------------------------------------


def test_locate_grids_in_another_crs_border_ties_outside_and_jumps() -> None:
    xy = [(-50.0, 0.0), (50.0, 0.0), (0.0, 0.0), (500.0, 0.0), (-60.0, 10.0)]
    fixes = make_fixes(
        xy, [0, 10, 20, 30, 40], crs=UTM, index=[9, 8, 7, 6, 5], jump=[False, False, False, False, True]
    )
    got = locate(fixes, GRIDS_UTM.to_crs(LONLAT))
    assert list(got.index) == [9, 8, 7, 6, 5] and got.name == "code"
    assert got.tolist()[:2] == ["A", "B"]
    assert got.tolist()[3:] == [None, None]  # outside every grid; a jump


def test_locate_tie_on_a_shared_border_goes_to_the_smallest_key() -> None:
    grids = gpd.GeoDataFrame(
        {"code": ["G2", "G10", "G1"]},
        geometry=[shapely.box(0, 0, 1, 1), shapely.box(1, 0, 2, 1), shapely.box(0, 1, 2, 2)],
        crs=LONLAT,
    )
    fixes = gpd.GeoDataFrame(
        {"ts": [T0] * 4},
        geometry=[
            shapely.Point(1.0, 0.5),
            shapely.Point(1.0, 1.0),
            shapely.Point(0.5, 0.5),
            shapely.Point(5, 5),
        ],
        crs=LONLAT,
    )
    # string keys sort as strings: "G1" < "G10" < "G2"
    assert locate(fixes, grids).tolist() == ["G10", "G1", "G2", None]
    assert locate(fixes, grids.iloc[::-1]).tolist() == ["G10", "G1", "G2", None]
    numbered = grids.assign(n=[2, 10, 1])
    assert locate(fixes, numbered, key="n").tolist() == [2, 1, 2, None]


# --------------------------------------------------------------------------------------------
# track_segments and trip_stats
# --------------------------------------------------------------------------------------------


def test_straight_walk_segments() -> None:
    segs = track_segments(walk(staff=2))
    assert list(segs.columns) == SEGMENT_COLUMNS and segs.crs == LONLAT
    assert len(segs) == 9
    assert segs["staff_id"].tolist() == [2] * 9
    assert segs["duration_s"].tolist() == [10.0] * 9
    np.testing.assert_allclose(segs["distance_m"], 10.0, atol=1e-6)
    np.testing.assert_allclose(segs["speed_mps"], 1.0, atol=1e-7)
    assert not segs["gap"].any()
    assert segs["t0"].iloc[0] == T0 and segs["t1"].iloc[-1] == T0 + pd.Timedelta(seconds=90)
    assert str(segs["t0"].dtype) == "datetime64[ns, UTC]"
    ends = shapely.get_coordinates(segs.to_crs(UTM).geometry.to_numpy()) - np.array([X0, Y0])
    expected = np.array([[10.0 * i + d, 0.0] for i in range(9) for d in (0.0, 10.0)])
    np.testing.assert_allclose(ends, expected, atol=1e-6)


def test_segments_gaps_zero_duration_jumps_and_staff() -> None:
    a = make_fixes([(0.0, 0.0), (10.0, 0.0), (10.0, 0.0), (20.0, 0.0)], [0, 10, 10, 900], staff=1)
    b = make_fixes(
        [(0.0, 100.0), (5000.0, 100.0), (0.0, 110.0)], [0, 10, 20], staff=2, jump=[False, True, False]
    )
    a["jump"] = False
    fixes = pd.concat([b, a], ignore_index=True).iloc[[4, 0, 6, 2, 3, 1, 5]]
    segs = track_segments(fixes)
    assert segs["staff_id"].tolist() == [1, 1, 1, 2]
    assert segs["duration_s"].tolist() == [10.0, 0.0, 890.0, 20.0]
    np.testing.assert_allclose(segs["distance_m"], [10.0, 0.0, 10.0, 10.0], atol=1e-6)
    assert math.isnan(segs["speed_mps"].iloc[1])
    assert segs["gap"].tolist() == [False, False, True, False]
    assert track_segments(fixes, max_gap_s=900)["gap"].tolist() == [False] * 4


def test_trip_stats_of_a_straight_walk() -> None:
    stats = trip_stats(walk())
    assert stats.points == 10 and stats.jumps == 0
    assert stats.distance_m == pytest.approx(90.0, abs=1e-6)
    assert stats.duration_s == 90.0 and stats.moving_s == pytest.approx(90.0)
    assert stats.start == T0 and stats.end == T0 + pd.Timedelta(seconds=90)


def test_trip_stats_moving_time_gaps_and_one_worker_only() -> None:
    # 5 walking segments (1 m/s), then 5 standing ones, then a 20-minute silence and 2 more steps
    xy = [(10.0 * i, 0.0) for i in range(6)] + [(50.0, 0.0)] * 5 + [(300.0, 0.0), (310.0, 0.0), (320.0, 0.0)]
    secs = [10.0 * i for i in range(11)] + [1300.0, 1310.0, 1320.0]
    stats = trip_stats(make_fixes(xy, secs))
    assert stats.distance_m == pytest.approx(70.0, abs=1e-6)  # the 250 m across the silence do not count
    assert stats.moving_s == pytest.approx(70.0)
    assert stats.duration_s == 1320.0
    assert trip_stats(make_fixes(xy, secs), max_gap_s=3600).distance_m == pytest.approx(320.0, abs=1e-6)
    assert trip_stats(make_fixes(xy, secs), moving_speed_mps=2.0).moving_s == 0.0
    with pytest.raises(ValueError, match="one worker"):
        trip_stats(pd.concat([walk(staff=1), walk(staff=2)]))


def test_trip_stats_unsorted_equals_sorted() -> None:
    fixes = dwell_track()
    assert trip_stats(fixes.sample(frac=1.0, random_state=1)) == trip_stats(fixes)


# --------------------------------------------------------------------------------------------
# stops
# --------------------------------------------------------------------------------------------


def test_six_minute_dwell_is_one_stop() -> None:
    fixes = dwell_track()
    got = stops(fixes)
    assert list(got.columns) == STOP_COLUMNS and got.crs == LONLAT
    assert len(got) == 1
    row = got.iloc[0]
    assert row["staff_id"] == 7
    assert row["start"] == T0 + pd.Timedelta(seconds=180) and row["end"] == T0 + pd.Timedelta(seconds=540)
    assert row["duration_s"] == 360.0 and row["points"] == 13
    np.testing.assert_allclose(utm_xy(got)[0], [1 / 13, 1 / 13], atol=1e-6)  # the mean of the jitter
    # a longer minimum dwell, or a tighter radius than the jitter, finds nothing
    assert len(stops(fixes, min_dwell_s=361)) == 0
    assert len(stops(fixes, radius_m=2.0)) == 0
    assert stops(fixes.sample(frac=1.0, random_state=0)).equals(got)


def test_a_silence_ends_a_stop() -> None:
    # at the same spot 0..360 s, silent for 2 hours, then 0..120 s again
    secs = [30.0 * k for k in range(13)] + [7560.0 + 30.0 * k for k in range(5)]
    fixes = make_fixes([(0.0, 0.0)] * 18, secs)
    got = stops(fixes)
    assert got["points"].tolist() == [13] and got["duration_s"].tolist() == [360.0]
    merged = stops(fixes, max_gap_s=8000)
    assert merged["points"].tolist() == [18] and merged["duration_s"].tolist() == [7680.0]


def test_stops_anchor_semantics_and_jumps() -> None:
    # Drifting 20 m per minute: from each anchor the points stay within 50 m for only 2 minutes → no stop
    drift = make_fixes([(20.0 * k, 0.0) for k in range(20)], [60.0 * k for k in range(20)])
    assert len(stops(drift)) == 0
    # radius 110 m: from anchor k the points k..k+5 are within 100 m (5 minutes) → stops of 6 points at
    # anchors 0, 6 and 12; from 18 only 2 points (1 minute) remain
    wide = stops(drift, radius_m=110.0)
    assert wide["points"].tolist() == [6, 6, 6] and wide["duration_s"].tolist() == [300.0] * 3
    assert wide["start"].tolist() == [T0 + pd.Timedelta(minutes=m) for m in (0, 6, 12)]
    np.testing.assert_allclose(utm_xy(wide), [[50.0, 0.0], [170.0, 0.0], [290.0, 0.0]], atol=1e-6)
    # a jump in the middle of a dwell neither breaks nor joins it
    fixes = make_fixes([(0.0, 0.0)] * 6 + [(800.0, 0.0)] + [(0.0, 0.0)] * 6, [60.0 * k for k in range(13)])
    fixes["jump"] = [False] * 6 + [True] + [False] * 6
    got = stops(fixes)
    assert got["points"].tolist() == [12] and got["duration_s"].tolist() == [720.0]


def _reference_stops(
    frame: gpd.GeoDataFrame, *, dwell: float, radius: float, gap: float
) -> list[tuple[Any, int, int]]:
    """Li et al.'s loop by the book: (staff, start second, points) of each stop (frame in UTM)."""
    out = []
    for staff, group in frame.sort_values(["staff_id", "ts"], kind="stable").groupby("staff_id"):
        x, y = group.geometry.x.to_numpy(), group.geometry.y.to_numpy()
        t = (group["ts"] - T0).dt.total_seconds().to_numpy()
        i, n = 0, len(group)
        while i < n:
            j = i + 1
            while j < n and math.hypot(x[j] - x[i], y[j] - y[i]) <= radius and t[j] - t[j - 1] <= gap:
                j += 1
            if t[j - 1] - t[i] >= dwell:
                out.append((staff, int(t[i]), j - i))
                i = j
            else:
                i += 1
    return out


@pytest.mark.parametrize("seed", range(20))
def test_stops_match_the_reference_loop_on_random_tracks(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    frames = []
    for staff in range(int(rng.integers(1, 4))):
        n = int(rng.integers(5, 300))
        moving = rng.random(n) < np.repeat(rng.random(n // 10 + 1), 10)[:n]  # stretches of walking / dwelling
        steps = np.where(moving[:, None], rng.normal(0.0, 25.0, (n, 2)), rng.normal(0.0, 4.0, (n, 2)))
        xy = np.cumsum(steps, axis=0)
        secs = np.cumsum(rng.choice([10.0, 30.0, 60.0, 60.0, 900.0], size=n, p=[0.3, 0.3, 0.2, 0.17, 0.03]))
        frames.append(make_fixes([tuple(p) for p in xy], list(secs), staff=staff, crs=UTM))
    fixes = pd.concat(frames, ignore_index=True)
    dwell, radius, gap = float(rng.choice([120.0, 300.0])), float(rng.choice([20.0, 50.0])), 600.0
    got = stops(fixes, min_dwell_s=dwell, radius_m=radius, max_gap_s=gap)
    got_list = [
        (int(s), int((start - T0).total_seconds()), int(p))
        for s, start, p in zip(got["staff_id"], got["start"], got["points"], strict=True)
    ]
    assert got_list == _reference_stops(fixes, dwell=dwell, radius=radius, gap=gap)


# --------------------------------------------------------------------------------------------
# grid_visits
# --------------------------------------------------------------------------------------------


def test_grid_visits_entries_exits_outside_and_gaps() -> None:
    # A (x<0) → B (x>0) → outside → B again; then a 20-minute silence inside B splits the visit
    xy = [(-80.0, 0.0), (-40.0, 0.0), (20.0, 0.0), (60.0, 0.0), (200.0, 0.0), (80.0, 0.0), (80.0, 10.0)]
    secs = [0.0, 60.0, 120.0, 180.0, 240.0, 300.0, 1500.0]
    fixes = make_fixes(xy, secs, staff=3)
    visits = grid_visits(fixes, GRIDS_UTM)
    assert list(visits.columns) == VISIT_COLUMNS
    assert visits["grid"].tolist() == ["A", "B", "B", "B"]
    assert visits["points"].tolist() == [2, 2, 1, 1]
    assert visits["entered_at"].tolist() == [T0 + pd.Timedelta(seconds=s) for s in (0, 120, 300, 1500)]
    assert visits["exited_at"].tolist() == [T0 + pd.Timedelta(seconds=s) for s in (60, 180, 300, 1500)]
    assert visits["duration_s"].tolist() == [60.0, 60.0, 0.0, 0.0]
    assert visits["staff_id"].tolist() == [3] * 4
    assert grid_visits(fixes, GRIDS_UTM, max_gap_s=1800)["points"].tolist() == [2, 2, 2]


def test_grid_visits_multi_staff_jumps_and_unsorted() -> None:
    a = make_fixes(
        [(-80.0, 0.0), (-70.0, 0.0), (-60.0, 0.0)], [0, 10, 20], staff=1, jump=[False, False, False]
    )
    b = make_fixes([(50.0, 0.0), (-50.0, 0.0), (60.0, 0.0)], [0, 10, 20], staff=2, jump=[False, True, False])
    visits = grid_visits(pd.concat([b, a]).sample(frac=1.0, random_state=2), GRIDS_UTM.to_crs(LONLAT))
    rows = visits[["staff_id", "grid", "points", "duration_s"]].values.tolist()
    assert rows == [[1, "A", 3, 20.0], [2, "B", 2, 20.0]]


# --------------------------------------------------------------------------------------------
# patrol_coverage
# --------------------------------------------------------------------------------------------


def test_coverage_passes_a_building_by_a_segment_between_distant_fixes() -> None:
    # two fixes 400 m apart, a minute apart: the building 10 m off the line midway is passed
    fixes = make_fixes([(-200.0, 0.0), (200.0, 0.0)], [0, 60], staff=1)
    blds = buildings_frame(
        [box(0, 12, half=3), box(0, 100), shapely.Point(X0 + 190, Y0 + 25)], [10, 30, 5], crs=UTM
    )
    cov = patrol_coverage(fixes, blds)
    assert isinstance(cov, Coverage)
    assert cov.buildings["passed"].tolist() == [True, False, True]
    assert cov.buildings["passed_at"].iloc[0] == T0 and pd.isna(cov.buildings["passed_at"].iloc[1])
    assert cov.buildings["passed_at"].iloc[2] == T0
    assert (cov.buildings_total, cov.buildings_passed) == (3, 2)
    assert (cov.households_total, cov.households_passed) == (45, 15)
    assert cov.share_buildings == pytest.approx(2 / 3) and cov.share_households == pytest.approx(15 / 45)
    assert list(cov.buildings.index) == [100, 101, 102] and cov.buildings.crs == UTM
    assert list(cov.buildings.columns) == ["name", "households", "geometry", "passed", "passed_at"]
    # the fixes alone are too far: with the segment a gap (a 61 s limit), nothing is passed but b2
    # (25 m from the fix at 200 m)
    gap_cov = patrol_coverage(fixes, blds, max_gap_s=30)
    assert gap_cov.buildings["passed"].tolist() == [False, False, True]
    assert gap_cov.buildings["passed_at"].iloc[2] == T0 + pd.Timedelta(seconds=60)
    assert patrol_coverage(fixes, blds, radius_m=5.0).buildings["passed"].tolist() == [False, False, False]
    counted = patrol_coverage(fixes, blds, households=None)
    assert (counted.households_total, counted.households_passed, counted.share_households) == (0, 0, 0.0)


def test_coverage_first_pass_time_jumps_and_several_workers() -> None:
    a = make_fixes([(0.0, 0.0), (0.0, 10.0)], [300, 310], staff=1)
    b = make_fixes(
        [(-50.0, 0.0), (50.0, 0.0), (2000.0, 2000.0)], [100, 110, 120], staff=2, jump=[False, False, True]
    )
    blds = buildings_frame([box(0, 0, half=2), box(2000, 2000)], [1, 1])
    cov = patrol_coverage(pd.concat([a, b]), blds)
    assert cov.buildings["passed"].tolist() == [True, False]  # the jump near the second does not count
    assert cov.buildings["passed_at"].iloc[0] == T0 + pd.Timedelta(seconds=100)
    # a lone fix (no segment) passes a building too
    lone = patrol_coverage(make_fixes([(0.0, 20.0)], [0]), blds)
    assert lone.buildings["passed"].tolist() == [True, False]


# --------------------------------------------------------------------------------------------
# daily_summary
# --------------------------------------------------------------------------------------------


def visit_day_track() -> gpd.GeoDataFrame:
    """Staff 7: dwell 6 min at the origin, walk 200 m out and back in 200 m / 60 s steps, dwell 6 min again."""
    xy = [(0.0, 0.0)] * 13 + [(200.0, 0.0), (400.0, 0.0), (200.0, 0.0)] + [(0.0, 0.0)] * 13
    secs = [30.0 * k for k in range(13)] + [420.0, 480.0, 540.0] + [600.0 + 30.0 * k for k in range(13)]
    return make_fixes(xy, secs, staff=7)


def test_daily_summary_one_worker_with_visits() -> None:
    blds = buildings_frame([box(0, 20, half=4), box(400, 0), box(2000, 0)], [24, 50, 9])
    daily = daily_summary(visit_day_track(), buildings=blds)
    assert list(daily.columns) == DAILY_COLUMNS
    assert len(daily) == 1
    row = daily.iloc[0]
    assert row["staff_id"] == 7 and row["day"] == dt.date(2024, 5, 1) and isinstance(row["day"], dt.date)
    assert (row["points"], row["jumps"], row["stops"]) == (29, 0, 2)
    assert row["distance_m"] == pytest.approx(800.0, abs=1e-6)
    assert row["moving_s"] == pytest.approx(240.0) and row["duration_s"] == 960.0
    # b0 is near both stops but counted once; b1 was walked past (no stop); b2 is far away
    assert (row["buildings_visited"], row["households_visited"]) == (1, 24)
    assert row["first_ts"] == T0 and row["last_ts"] == T0 + pd.Timedelta(seconds=960)
    tight = daily_summary(visit_day_track(), buildings=blds, visit_radius_m=5.0)
    assert tight["buildings_visited"].tolist() == [0]
    no_buildings = daily_summary(visit_day_track())
    assert no_buildings[["buildings_visited", "households_visited"]].values.tolist() == [[0, 0]]


def test_daily_summary_midnight_split_in_shanghai() -> None:
    # 15:58–16:01 UTC = 23:58–00:01 in Shanghai; 20 m every 30 s (0.67 m/s, moving)
    t0 = pd.Timestamp("2024-05-01 15:58:00", tz="UTC")
    fixes = make_fixes([(20.0 * k, 0.0) for k in range(7)], [30.0 * k for k in range(7)], staff=5, t0=t0)
    daily = daily_summary(fixes)
    assert daily["day"].tolist() == [dt.date(2024, 5, 1), dt.date(2024, 5, 2)]
    assert daily["points"].tolist() == [4, 3]
    # segments starting 23:58:00, :30, 23:59:00, :30 (the last crosses midnight) belong to 1 May
    np.testing.assert_allclose(daily["distance_m"], [80.0, 40.0], atol=1e-6)
    np.testing.assert_allclose(daily["moving_s"], [120.0, 60.0])
    assert daily["duration_s"].tolist() == [120.0, 60.0]  # 90 s of fixes + the 30 s crossing segment
    assert daily["first_ts"].tolist() == [t0, t0 + pd.Timedelta(seconds=120)]
    assert daily["last_ts"].tolist() == [t0 + pd.Timedelta(seconds=90), t0 + pd.Timedelta(seconds=180)]
    # in UTC it is all one day
    utc = daily_summary(fixes, tz="UTC")
    assert utc["day"].tolist() == [dt.date(2024, 5, 1)] and utc["distance_m"].iloc[0] == pytest.approx(120.0)
    assert utc["duration_s"].iloc[0] == 180.0


def test_daily_summary_multi_staff_jumps_and_unsorted() -> None:
    a = visit_day_track()
    b = walk(staff=3)
    b["jump"] = False
    a["jump"] = False
    a.loc[a.index[14], "jump"] = True  # the fix at 400 m
    fixes = pd.concat([a, b], ignore_index=True).sample(frac=1.0, random_state=5)
    daily = daily_summary(fixes)
    assert daily["staff_id"].tolist() == [3, 7]
    assert daily["points"].tolist() == [10, 29] and daily["jumps"].tolist() == [0, 1]
    np.testing.assert_allclose(daily["distance_m"], [90.0, 400.0], atol=1e-6)
    # without the 400 m fix the walk is 200 m out, 0 m (200 → 200 in 120 s) and 200 m back
    np.testing.assert_allclose(daily["moving_s"], [90.0, 120.0])
    assert daily["stops"].tolist() == [0, 2]
    assert daily["duration_s"].tolist() == [90.0, 960.0]
    # the same figures as trip_stats per worker
    for staff, row in zip(daily["staff_id"], daily.itertuples(), strict=True):
        stats = trip_stats(fixes[fixes["staff_id"] == staff])
        assert (stats.points, stats.jumps, stats.duration_s) == (row.points, row.jumps, row.duration_s)
        assert stats.distance_m == pytest.approx(row.distance_m)
        assert stats.moving_s == pytest.approx(row.moving_s)


def test_daily_summary_without_staff_and_only_jumps_on_a_day() -> None:
    fixes = walk(3)
    late = make_fixes([(0.0, 0.0)], [0], t0=T0 + pd.Timedelta(days=1), jump=[True])
    fixes["jump"] = False
    daily = daily_summary(pd.concat([fixes, late], ignore_index=True))
    assert daily["staff_id"].tolist() == [0, 0]
    assert daily["points"].tolist() == [3, 1] and daily["jumps"].tolist() == [0, 1]
    assert pd.isna(daily["last_ts"].iloc[1]) and daily["duration_s"].iloc[1] == 0.0
