"""Cameras on both stores: who sees a point or a case, status from the gateway, the map view,
coverage stored for the pages, suggestions; and the same over HTTP."""

from __future__ import annotations

from typing import Any

import geopandas as gpd
import httpx
import pytest
from shapely.geometry import Point, Polygon

from api.app import create_app
from services import cameras as cams
from services import cases as cs
from tests.fixtures.api import api_token, bearer, serve_in_thread
from tests.fixtures.cases_world import NOW, build_world
from tests.store.sample import at

EAST = "21120200001310000001"  # looks east along the east-west street from x = -600
DOME = "21120200001310000002"  # a dome at the crossing of x = -500
NORTH = "21120200001310000003"  # looks north along x = 500, a building in the way


def _building(x0: float, y0: float, x1: float, y1: float) -> Polygon:
    return Polygon([at(x0, y0), at(x1, y0), at(x1, y1), at(x0, y1)])


@pytest.fixture
def world(store: Any) -> Any:
    build_world(store)
    cs.forget_locator(store)
    store.write(
        "cameras",
        gpd.GeoDataFrame(
            {
                "id": [EAST, DOME, NORTH],
                "name": ["红旗街东向", "十字路口球机", "<img src=x onerror=alert(1)>北向"],
                "unit_code": ["211202001001"] * 3,
                "direction": [90.0, None, 0.0],
                "fov": [60.0, None, 40.0],
                "range_m": [120.0, 40.0, 150.0],
                "cam_class": ["class1", "other", "class1"],
                "online": [True, True, False],
                "stream_url": ["http://gateway.local/live/1.m3u8", None, "rtsp://10.0.0.3/stream"],
            },
            geometry=[Point(*at(-600, 0)), Point(*at(-500, 0)), Point(*at(505, -100))],
            crs=4326,
        ),
    )  # fmt: skip
    store.write(
        "buildings",
        gpd.GeoDataFrame(
            {"id": [1], "kind": ["apartment"], "households": [20], "grid_code": ["211202001001002"]},
            geometry=[_building(495, -20, 515, 0)],  # across the north camera's view, 80 m ahead
            crs=4326,
        ),
    )
    return store


def test_cameras_that_see_a_point_ranked(world: Any) -> None:
    lon, lat = at(-535, 0)  # 65 m ahead of EAST, 35 m from the dome
    got = cams.seeing(world, lon=lon, lat=lat)
    assert got["id"].tolist() == [DOME, EAST]  # nearest first
    assert got["distance_m"].iloc[0] == pytest.approx(35, abs=1) and got["distance_m"].iloc[1] == pytest.approx(65, abs=1)
    assert got["rank"].tolist() == [1, 2] and got["stream_url"].iloc[1].endswith(".m3u8")
    # behind the building, within the north camera's range and angle: hidden
    hx, hy = at(505, 30)
    assert NORTH not in set(cams.seeing(world, lon=hx, lat=hy)["id"])
    # in front of the building: seen
    fx, fy = at(505, -50)
    assert NORTH in set(cams.seeing(world, lon=fx, lat=fy)["id"])
    with pytest.raises(cams.CameraError):
        cams.seeing(world, lon=float("nan"), lat=42.0)


def test_cameras_that_see_a_case(world: Any) -> None:
    lon, lat = at(-535, 0)
    cid = cs.create_case(world, cs.NewCase(category="exposed_garbage", lon=lon, lat=lat, description="路口垃圾"), now=NOW).case_id
    (x, y), table = cams.seeing_case(world, cid)
    assert (x, y) == pytest.approx((lon, lat)) and set(table["id"]) == {DOME, EAST}
    with pytest.raises(cams.CameraError) as e:
        cams.seeing_case(world, 999999)
    assert e.value.code == "not_found"


def test_status_from_the_gateway(world: Any) -> None:
    out = cams.set_status(world, [(NORTH, True), (EAST, True), ("nope", False)])
    assert out == {"updated": [NORTH], "unchanged": [EAST], "unknown": ["nope"]}
    assert bool(world.read("cameras", where={"id": NORTH})["online"].iloc[0])


def test_map_view_sectors_at_street_zoom_counts_when_crowded(world: Any) -> None:
    street = cams.camera_view(world, bbox=None, zoom=17)
    assert len(street.cameras) == 3 and street.sectors is not None and len(street.sectors) == 3
    assert street.stats == {"cameras": 3, "online": 2, "class1": 2}
    city = cams.camera_view(world, bbox=None, zoom=17, max_drawn=2)
    assert city.counts is not None and int(city.counts["cameras"].sum()) == 3 and len(city.cameras) == 0
    assert cams.camera_view(world, bbox=None, zoom=13).sectors is None


def test_coverage_is_computed_stored_and_read_back(world: Any) -> None:
    stages: list[str] = []
    run = cams.compute_coverage(world, progress=lambda stage, done, total: stages.append(stage), now=NOW)
    assert run.grids == 2 and run.villages == 1 and run.cameras == 3 and run.seconds >= 0
    assert {"views", "grids", "blind spots"} <= set(stages)
    table = cams.coverage_table(world, level="grid").set_index("code")
    west = table.loc["211202001001001"]
    assert 0 < west["road_share"] < 1 and west["cameras"] == 2 and west["online_share"] == 1.0
    village = cams.coverage_table(world, level="village")
    assert len(village) == 1 and village["cameras"].iloc[0] == 3
    spots = cams.blind_spots_in(world, bbox=None)
    assert len(spots) and (spots["length_m"] > 0).all()
    again = cams.compute_coverage(world, now=NOW)  # replaces, never duplicates
    assert world.count("camera_coverage") == 3 and world.count("camera_blind_spots") == again.blind_spots
    areas, on_map = cams.coverage_map(world, unit_code="211202001001")
    assert set(areas["code"]) == {"211202001001001", "211202001001002"} and areas["road_share"].notna().all()
    assert len(on_map) == again.blind_spots and on_map["lon"].notna().all() and areas.crs.to_epsg() == 4326
    one, _ = cams.coverage_map(world, unit_code="211202001001002")
    assert one["code"].tolist() == ["211202001001002"]
    with pytest.raises(cams.CameraError):
        cams.coverage_map(world, unit_code="000000000000")


def test_suggestions_cover_uncovered_road(world: Any) -> None:
    pts, stats = cams.suggest(world, unit_code="211202001001", k=2)
    assert 1 <= len(pts) <= 2 and stats["covered_m"] > 0 and 0 < stats["ratio"] <= 1
    with pytest.raises(cams.CameraError):
        cams.suggest(world, unit_code="000000000000", k=2)


def test_cameras_over_http(world: Any) -> None:
    lon, lat = at(-535, 0)
    cid = cs.create_case(world, cs.NewCase(category="exposed_garbage", lon=lon, lat=lat, description="路口垃圾"), now=NOW).case_id
    headers = bearer(api_token(world, role="admin", unit_code="211200"))  # the city's administrator
    with serve_in_thread(create_app(world, escalate_every_s=None)) as base, httpx.Client(base_url=base, timeout=30, headers=headers) as c:
        r = c.get("/api/cameras/seeing", params={"lon": lon, "lat": lat})
        assert r.status_code == 200 and [x["id"] for x in r.json()["cameras"]] == [DOME, EAST]
        assert [x["id"] for x in c.get(f"/api/cases/{cid}/cameras").json()["cameras"]] == [DOME, EAST]
        assert [x["id"] for x in c.get("/api/cameras/seeing", params={"case_id": cid}).json()["cameras"]] == [DOME, EAST]
        assert c.get("/api/cameras/seeing").status_code == 422
        assert c.get("/api/cases/999999/cameras").status_code == 404
        r = c.put(f"/api/cameras/{NORTH}/status", json={"online": True})
        assert r.status_code == 200 and r.json()["changed"] is True
        assert c.put("/api/cameras/nope/status", json={"online": True}).status_code == 404
        r = c.post("/api/cameras/status", json={"cameras": [{"id": EAST, "online": False}, {"id": "x", "online": True}]})
        assert r.json() == {"updated": [EAST], "unchanged": [], "unknown": ["x"]}
        assert c.put(f"/api/cameras/{EAST}/status", json={"online": "maybe"}).status_code == 422
        cams.compute_coverage(world, now=NOW)
        rows = c.get("/api/cameras/coverage", params={"level": "grid"}).json()["rows"]
        assert {r["code"] for r in rows} == {"211202001001001", "211202001001002"}
