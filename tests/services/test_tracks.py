"""The staff services on both stores: ingest checks and commits, live freshness, a track, patrol
coverage, grids nobody patrolled, the day rollup and KPIs (cases reported and handled included)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
import pytest

from demo import SIZES, generate, load_demo
from services import tracks
from services.ingest import Fix, IngestConfig, Ingestor, Rejected

GEN_NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
NOW = pd.Timestamp("2026-11-23 04:00:00", tz="UTC")  # 12:00 in Tieling


@pytest.fixture(scope="module")
def city():  # type: ignore[no-untyped-def]
    return generate(SIZES["small"], seed=11, now=GEN_NOW)


@pytest.fixture
def loaded(store: Any, city: Any) -> Any:
    load_demo(store, city)
    return store


def _worker(store: Any) -> tuple[int, str, Any, Any]:
    links = store.read("staff_grids")
    sid = int(links["staff_id"].min())
    device = str(store.read("staff", where={"id": sid})["device_id"].iloc[0])
    grids = store.read("grids", where={"code": links[links["staff_id"] == sid]["grid_code"].tolist()})
    buildings = store.read("buildings", where={"grid_code": grids["code"].tolist()})
    return sid, device, grids, buildings


def _ingestor(store: Any) -> Ingestor:
    return Ingestor(store, IngestConfig(), clock=lambda: NOW.timestamp())


def _walk_past_buildings(store: Any, device: str, buildings: Any, *, start: pd.Timestamp) -> list[Fix]:
    """Walk from building to building (centroids), one fix per 30 s, dwelling 6 min at the first."""
    pts = [g.centroid for g in buildings.geometry.head(6)]
    fixes: list[Fix] = []
    t = start
    for k, p in enumerate(pts):
        for _ in range(13 if k == 0 else 2):  # 6 minutes at the first building
            fixes.append(Fix(device, t, p.x, p.y, 0.0, accuracy=5.0))
            t += pd.Timedelta(seconds=30)
    return fixes


def test_ingest_checks_and_commits(loaded: Any) -> None:
    store = loaded
    sid, device, grids, buildings = _worker(store)
    ing = _ingestor(store)
    p = grids.geometry.iloc[0].representative_point()
    good = Fix(device, NOW - pd.Timedelta(minutes=1), p.x, p.y, 1.0)
    result, errors = ing.ingest(
        [
            good,
            good,  # the same fix twice in one call
            Fix("nope", NOW, p.x, p.y),
            Fix(device, NOW + pd.Timedelta(hours=1), p.x, p.y),
            Fix(device, NOW - pd.Timedelta(days=40), p.x, p.y),
            Fix(device, NOW, p.y, p.x),  # swapped
            Fix(device, NOW, 116.4, 39.9),  # Beijing: outside the region
        ]
    )
    assert result.outcomes == ["accepted", "duplicate"]
    assert [e.status if e else None for e in errors] == [None, None, 403, 422, 422, 422, 422]
    assert "swapped" in str(errors[5]) and "outside" in str(errors[6])
    again, _ = ing.ingest([good])
    assert again.outcomes == ["duplicate"]
    row = store.read("positions", where={"staff_id": sid}).iloc[0]
    assert row["grid_code"] == grids["code"].iloc[0]
    latest = store.read("latest_positions", where={"staff_id": sid}).iloc[0]
    assert latest["ts"] == good.ts and latest["grid_code"] == grids["code"].iloc[0]
    assert store.count("grid_presence", where={"day": "2026-11-23", "staff_id": sid}) == 1
    assert ing.reject_counts == {"403": 1, "422": 4}


def test_a_newly_bound_phone_is_accepted_without_a_restart(loaded: Any) -> None:
    store = loaded
    sid, device, grids, _ = _worker(store)
    ing = _ingestor(store)
    p = grids.geometry.iloc[0].representative_point()
    with pytest.raises(Rejected):
        ing.check(Fix("861234567890", NOW, p.x, p.y))
    store.update("staff", {"id": sid}, {"device_id": "861234567890"})
    ing._devices.loaded_at -= 10  # the refusal above was more than 5 s ago
    assert ing.check(Fix("861234567890", NOW, p.x, p.y)) == sid


def test_live_freshness(loaded: Any) -> None:
    store = loaded
    sid, device, grids, _ = _worker(store)
    p = grids.geometry.iloc[0].representative_point()
    _ingestor(store).ingest([Fix(device, NOW - pd.Timedelta(minutes=2), p.x, p.y)])
    live = tracks.live_staff(store, now=NOW)
    me = live[live["staff_id"] == sid].iloc[0]
    assert me["freshness"] == "online" and 110 <= me["age_s"] <= 130
    assert me["unit_name"] and me["name"]
    assert set(live["freshness"]) <= {"online", "stale", "offline"}
    later = tracks.live_staff(store, now=NOW + pd.Timedelta(minutes=20))
    assert later[later["staff_id"] == sid]["freshness"].iloc[0] == "stale"
    counts = tracks.staff_counts(live, store)
    assert int(counts[["online", "stale", "offline"]].to_numpy().sum()) == len(live)
    assert tracks.live_staff(store, now=NOW, roles=["volunteer"])["role"].eq("volunteer").all()


def test_track_coverage_unpatrolled_rollup_and_kpis(loaded: Any) -> None:
    store = loaded
    sid, device, grids, buildings = _worker(store)
    start = pd.Timestamp("2026-11-22 01:00:00", tz="UTC")  # 09:00 the day before, local
    fixes = _walk_past_buildings(store, device, buildings, start=start)
    result, errors = _ingestor(store).ingest(fixes)
    assert result.accepted == len(fixes) and not any(errors)
    tr = tracks.track(store, sid, start=start, end=start + pd.Timedelta(hours=2))
    assert tr.stats.points == len(fixes) and tr.stats.distance_m > 0
    assert len(tr.stops) == 1 and tr.stops["duration_s"].iloc[0] >= 360
    assert set(tr.visits["grid"]) <= set(grids["code"])
    with pytest.raises(ValueError):
        tracks.track(store, sid, start=start, end=start)
    cov, mine = tracks.coverage(store, sid, start=start, end=start + pd.Timedelta(hours=2), radius_m=30)
    assert len(mine) == len(grids)
    assert cov.buildings_passed >= min(6, len(buildings)) and 0 < cov.share_households <= 1
    day = datetime(2026, 11, 22).date()
    summary = tracks.patrol_summary(store, day=day)
    assert summary["patrolled"] >= 1 and summary["patrolled"] + summary["unpatrolled"] == summary["grids"]
    unp = tracks.unpatrolled_grids(store, day=day)
    assert not set(unp["code"]) & set(tr.visits["grid"]) and len(unp) == summary["unpatrolled"]
    # the day is over: roll it up (twice: the second replaces the first)
    assert tracks.rollup(store, day=day, now=NOW) == 1
    assert tracks.rollup(store, day=day, now=NOW) == 1
    row = store.read("staff_days").iloc[0]
    assert int(row["staff_id"]) == sid and row["day"] == "2026-11-22" and row["households_visited"] >= 1
    with pytest.raises(ValueError, match="not over"):
        tracks.rollup(store, day=NOW.tz_convert("Asia/Shanghai").date(), now=NOW)
    # today's fixes are summarised fresh in the KPIs
    _ingestor(store).ingest(_walk_past_buildings(store, device, buildings, start=NOW - pd.Timedelta(hours=1)))
    k = tracks.kpis(store, start=day, end=day + timedelta(days=1), period="day", staff_ids=[sid], now=NOW)
    assert k["period"].tolist() == ["2026-11-22", "2026-11-23"]
    assert (k["distance_km"] > 0).all() and k["name"].notna().all()
    week = tracks.kpis(store, start=day, end=day + timedelta(days=1), period="week", staff_ids=[sid], now=NOW)
    assert week["period"].tolist() == ["2026-11-16", "2026-11-23"]  # a Sunday and a Monday: weeks start Monday
    month = tracks.kpis(store, start=day, end=day + timedelta(days=1), period="month", staff_ids=[sid], now=NOW)
    assert month["period"].tolist() == ["2026-11-01"] and month["days_on_duty"].iloc[0] == 2
    assert month["distance_km"].iloc[0] == pytest.approx(k["distance_km"].sum(), abs=0.011)


def test_kpis_count_cases_reported_and_handled(loaded: Any) -> None:
    store = loaded
    events = store.read("case_events", where={"action": ["report", "resolve"]})
    by_staff = events[events["actor"].str.startswith("staff:")]
    assert len(by_staff[by_staff["action"] == "report"]) > 0, "the demo's app reports name their worker"
    first, last = by_staff["ts"].min(), by_staff["ts"].max()
    tz = "Asia/Shanghai"
    k = tracks.kpis(store, start=first.tz_convert(tz).date(), end=last.tz_convert(tz).date(), period="month", now=NOW)
    reported = int(k["cases_reported"].sum())
    handled = int(k["cases_handled"].sum())
    assert reported == int((by_staff["action"] == "report").sum())
    assert handled == int((by_staff["action"] == "resolve").sum())
