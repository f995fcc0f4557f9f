"""The big screen's figures on both stores: each headline number is exactly what a query on the
store gives (hand-made cases with known answers, and the same definitions recomputed from the
whole table); the ticker, the charts, the map's data, the tour; ``GET /api/kpis`` over HTTP."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import geopandas as gpd
import httpx
import pandas as pd
import pytest
from shapely.geometry import Point

from api.app import create_app
from services import bigscreen as bs
from services.cases import OPEN_STATES, WORKING_STATES
from tests.fixtures.api import api_token, bearer, serve_in_thread
from tests.fixtures.cases_world import COUNTY, GRID_W, NOW, STREET, VILLAGE, build_world
from tests.store.sample import at

OTHER = "211299"  # a second district with one case
H = timedelta(hours=1)
D = timedelta(days=1)

# id: (state, reported_at, deadline_at, closed_at, satisfaction, county, escalated_at)
CASES: dict[int, tuple[str, Any, Any, Any, Any, str, Any]] = {
    1: ("reported", NOW - H, None, None, None, COUNTY, None),  # 09:00 local today
    2: ("dispatched", NOW - 11 * H, NOW - H, None, None, COUNTY, NOW - 2 * H),  # 23:00 yesterday, overdue
    3: ("in_progress", NOW - D, NOW + H, None, None, COUNTY, None),
    4: ("closed", NOW - 5 * D, None, NOW - 4 * D, 5, COUNTY, None),
    5: ("evaluated", NOW - 10 * D, None, NOW - 9 * D, 3, COUNTY, None),
    6: ("rejected", NOW - 2 * D, None, NOW - 2 * D, None, COUNTY, None),
    7: ("closed", NOW - 40 * D, None, NOW - 35 * D, 1, COUNTY, None),  # outside the 30 days
    8: ("resolved", NOW - 3 * D, NOW - 2 * H, None, None, COUNTY, None),  # past its deadline, but resolved
    9: ("reported", NOW - timedelta(minutes=5), None, None, None, OTHER, None),
}


@pytest.fixture
def world(store: Any) -> Any:
    build_world(store)
    ids = sorted(CASES)
    rows = [CASES[i] for i in ids]
    store.write(
        "cases",
        gpd.GeoDataFrame(
            {
                "id": ids,
                "category": ["exposed_garbage"] * len(ids),
                "description": [f"<b>案件{i}</b>" for i in ids],
                "source": ["app"] * len(ids),
                "state": [r[0] for r in rows],
                "urgency": [1] * len(ids),
                "grid_code": [GRID_W if r[5] == COUNTY else None for r in rows],
                "village_code": [VILLAGE if r[5] == COUNTY else None for r in rows],
                "township_code": [STREET if r[5] == COUNTY else None for r in rows],
                "county_code": [r[5] for r in rows],
                "reported_at": [pd.Timestamp(r[1]) for r in rows],
                "deadline_at": [pd.Timestamp(r[2]) if r[2] is not None else pd.NaT for r in rows],
                "closed_at": [pd.Timestamp(r[3]) if r[3] is not None else pd.NaT for r in rows],
                "satisfaction": pd.array([r[4] for r in rows], dtype="Int64"),
                "escalated_at": [pd.Timestamp(r[6]) if r[6] is not None else pd.NaT for r in rows],
                "escalation_level": [1 if r[6] is not None else 0 for r in rows],
            },
            geometry=[Point(*at(-400 + 10 * i, 0)) for i in ids],
            crs=4326,
        ),
    )
    store.write(
        "cameras",
        gpd.GeoDataFrame(
            {"id": ["21120200001310000001", "21120200001310000002"], "name": ["甲", "乙"],
             "unit_code": [VILLAGE, VILLAGE], "online": [True, False]},  # fmt: skip
            geometry=[Point(*at(-500, 0)), Point(*at(500, 0))],
            crs=4326,
        ),
    )
    return store


def test_headline_figures_by_hand(world: Any) -> None:
    k = bs.kpis(world, now=NOW)
    assert k.cases_today == 2  # 1 and 9; case 2 came in at 23:00 local yesterday
    assert k.open == 5  # 1, 2, 3, 8, 9
    assert k.overdue == 1  # 2 (8 is past its deadline but resolved: nobody is late on it)
    assert (k.reported_30d, k.closed_30d, k.closed_rate) == (7, 2, round(2 / 7, 4))  # 6 rejected, 7 too old
    assert (k.rated_30d, k.satisfaction, k.satisfied_share) == (2, 4.0, 0.5)
    assert (k.staff_online, k.staff_on_duty, k.staff_total) == (4, 5, 6)  # fixes 1–3 minutes old; one off duty
    assert (k.cameras_online, k.cameras_total) == (1, 2)
    d = bs.kpis(world, now=NOW, county=OTHER)
    assert (d.cases_today, d.open, d.overdue, d.reported_30d, d.staff_total, d.cameras_total) == (1, 1, 0, 1, 0, 0)
    assert d.closed_rate == 0.0 and d.satisfaction is None


def test_headline_figures_are_the_store_recomputed(world: Any) -> None:
    """The same definitions applied to the whole table read into pandas."""
    cases = world.read("cases", geometry=False)
    tz = "Asia/Shanghai"
    now = pd.Timestamp(NOW)
    midnight = now.tz_convert(tz).normalize().tz_convert("UTC")
    recent = cases[cases["reported_at"] >= now - pd.Timedelta(days=30)]
    rated = cases[(cases["closed_at"] >= now - pd.Timedelta(days=30)) & cases["satisfaction"].notna()]
    k = bs.kpis(world, now=NOW).as_dict()
    assert k["cases_today"] == int((cases["reported_at"] >= midnight).sum())
    assert k["open"] == int(cases["state"].isin(OPEN_STATES).sum())
    assert k["overdue"] == int((cases["state"].isin(WORKING_STATES) & (cases["deadline_at"] < now)).sum())
    assert k["reported_30d"] == int((recent["state"] != "rejected").sum())
    assert k["closed_30d"] == int(recent["state"].isin(bs.CLOSED_STATES).sum())
    assert k["satisfaction"] == pytest.approx(rated["satisfaction"].astype(float).mean())
    assert k["as_of"].startswith("2026-11-18T02:00")


def test_ticker_charts_and_map(world: Any) -> None:
    tick = bs.ticker(world, now=NOW, hours=24)
    assert tick["case_id"].tolist()[:2] == [9, 1] and set(tick["kind"]) == {"new", "escalated"}
    assert tick.loc[tick["kind"] == "escalated", "case_id"].tolist() == [2]
    assert tick["text"].iloc[0] == "<b>案件9</b>"  # raw here; the page escapes it
    c = bs.charts(world, now=NOW)
    assert c.by_category["n"].sum() == 8  # reported in the last 30 local days, rejected included
    assert len(c.daily) == 30 and c.daily["n"].sum() == 8 and c.daily["n"].iloc[-1] == 2
    assert c.top_streets.iloc[0].to_dict() == {"code": STREET, "name": "红旗街道", "open": 4}
    assert c.top_grids.iloc[0]["open"] == 4
    assert c.closure_hours["n"].sum() == 3  # 4, 5 and the rejected 6 closed in the window
    city = bs.map_data(world, now=NOW)
    assert city.county is None and city.staff_counts is not None and city.camera_counts is not None
    assert int(city.case_counts["open"].sum()) == 4  # case 9 has no street
    assert set(city.new_cases["id"]) == {9}  # reported in the last 10 minutes
    one = bs.map_data(world, now=NOW, county=COUNTY)
    assert one.outlines["code"].tolist() == [COUNTY] and len(one.cameras) == 2 and len(one.staff) >= 4
    assert one.case_counts["code"].tolist() == [VILLAGE]
    with pytest.raises(ValueError):
        bs.map_data(world, now=NOW, county="999999")
    lon, lat = at(0, 0)
    assert bs.district_at(world, lon=lon, lat=lat) == COUNTY
    assert bs.district_at(world, lon=0.0, lat=0.0) is None


def test_tour_goes_through_every_district_and_back() -> None:
    codes = ["211202", "211204", "211221"]
    seen, cur = [], None
    for _ in range(4):
        cur = bs.tour_next(codes, cur)
        seen.append(cur)
    assert seen == ["211202", "211204", "211221", None]
    assert bs.tour_next(codes, "gone") == "211202" and bs.tour_next([], None) is None


def test_kpis_over_http(world: Any) -> None:
    headers = bearer(api_token(world, role="admin", unit_code="211200"))  # the city's administrator
    with serve_in_thread(create_app(world, escalate_every_s=None)) as base, httpx.Client(base_url=base, timeout=30, headers=headers) as c:
        r = c.get("/api/kpis")
        assert r.status_code == 200
        body = r.json()
        want = bs.kpis(world).as_dict()
        for key in ("cases_today", "open", "overdue", "closed_rate", "satisfaction", "staff_on_duty",
                    "staff_total", "cameras_online", "cameras_total"):  # fmt: skip
            assert body[key] == want[key], key
        assert c.get("/api/kpis", params={"county": OTHER}).json()["open"] == 1
        assert c.get("/api/kpis", params={"county": "x'; drop table cases;--"}).status_code == 422
