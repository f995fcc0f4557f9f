"""Cases and dispatch over real HTTP, on both stores: a phone's report, candidates, assignment and
the loop; and the race the dispatch desk cares about: many dispatchers, two API processes, one case
— exactly one assignment wins and the others are told who got it."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.app import create_app
from services import cases as cs
from tests.fixtures.api import api_process, api_token, bearer, serve_in_thread
from tests.fixtures.cases_world import NOW, build_world
from tests.store.sample import at


@pytest.fixture
def world(store: Any) -> Any:
    build_world(store)
    cs.forget_locator(store)
    return store


@pytest.fixture
def api(world: Any) -> Any:
    headers = bearer(api_token(world))  # an administrator of the city
    with (
        serve_in_thread(create_app(world, escalate_every_s=None)) as base,
        httpx.Client(base_url=base, timeout=30, headers=headers) as c,
    ):
        yield c


def phone_report(client: httpx.Client, dx: float = -400, dy: float = 200, **kw: Any) -> httpx.Response:
    lon, lat = at(dx, dy)
    body = {"device_id": "dev-1", "category": "exposed_garbage", "lat": lat, "lon": lon,
            "description": "楼下垃圾两天没人清运", "photo_urls": ["https://img.example.org/1.jpg"]} | kw  # fmt: skip
    return client.post("/api/cases", json=body)


def test_a_grid_workers_report_from_the_phone(api: httpx.Client) -> None:
    r = phone_report(api)
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    got = api.get(f"/api/cases/{cid}").json()
    assert got["case"]["source"] == "app" and got["case"]["reporter_name"] == "王网格"
    assert got["case"]["photo_urls"] == ["https://img.example.org/1.jpg"]
    assert [e["actor"] for e in got["timeline"]] == ["staff:1"]
    # the same thing reported again nearby: linked, 200, not a second case
    again = phone_report(api, -390, 210, device_id="dev-2")
    assert again.status_code == 200 and again.json() == {"id": cid, "created": False, "duplicate_of": cid, "reason": "duplicate"}
    assert api.get(f"/api/cases/{cid}").json()["case"]["reports"] == 2


@pytest.mark.parametrize(
    ("change", "status", "text"),
    [
        ({"device_id": "stolen"}, 403, "unknown device"),
        ({"lat": 123.84, "lon": 42.29}, 422, "swapped"),
        ({"lat": 39.9, "lon": 116.39}, 422, "outside"),
        ({"category": "nope"}, 422, "unknown category"),
        ({"description": "x" * 5000}, 422, "at most 4000"),
        ({"photo_urls": ["file:///etc/passwd"]}, 422, "photo URL"),
        ({"lat": "NaN"}, 422, "finite"),
        ({"unexpected": 1}, 422, ""),
    ],
)
def test_bad_reports_get_clear_errors(api: httpx.Client, change: dict[str, Any], status: int, text: str) -> None:
    r = phone_report(api, **change)
    assert r.status_code == status, r.text
    assert text in r.text
    assert api.get("/api/cases").json()["count"] == 0


def test_an_oversized_body_is_refused_before_it_is_read(api: httpx.Client) -> None:
    r = api.post("/api/cases", content=b"{" + b" " * 100_000 + b"}", headers={"content-type": "application/json"})
    assert r.status_code == 413


def test_candidates_assign_and_the_loop_over_http(api: httpx.Client) -> None:
    cid = phone_report(api, -450, 50).json()["id"]
    r = api.get(f"/api/cases/{cid}/candidates", params={"limit": 5})
    assert r.status_code == 200
    body = r.json()
    first = body["candidates"][0]
    assert first["staff_id"] == 1 and first["rank"] == 1 and first["distance_m"] > 0 and first["eta_s"] > 0
    assert {"reasons", "workload", "fresh", "role_fit", "responsible", "lon", "lat"} <= set(first)
    assert api.get("/api/cases/999999/candidates").status_code == 404
    r = api.post(f"/api/cases/{cid}/assign", json={"staff_id": 1, "expected_rev": body["rev"], "actor": "dispatcher:7"})
    assert r.status_code == 200 and r.json()["case"]["state"] == "dispatched"
    rev = r.json()["case"]["rev"]
    for action in ("accept", "start", "resolve"):
        r = api.post(f"/api/cases/{cid}/actions/{action}", json={"actor": "staff:1", "expected_rev": rev})
        assert r.status_code == 200, r.text
        rev = r.json()["case"]["rev"]
    r = api.post(f"/api/cases/{cid}/actions/close", json={"actor": "x"})
    assert r.status_code == 409 and "only from verified" in r.json()["detail"]
    assert api.post(f"/api/cases/{cid}/actions/fly", json={}).status_code == 404
    timeline = api.get(f"/api/cases/{cid}").json()["timeline"]
    assert [e["action"] for e in timeline] == ["report", "file", "dispatch", "accept", "start", "resolve"]


def test_summon_bulk_and_escalate_over_http(api: httpx.Client) -> None:
    a = phone_report(api, -450, 50).json()["id"]
    b = phone_report(api, 450, -300, category="dirty_road").json()["id"]
    r = api.post(f"/api/cases/{a}/summon", json={"departments": ["urban_management"], "actor": "street"})
    assert r.status_code == 200 and r.json()["case"]["kind"] == "multi_department"
    r = api.post(f"/api/cases/{a}/departments/urban_management/accept", json={"actor": "城管"})
    # a token (another system) acts as "<token name>/<the person it names>": it cannot pass as someone else
    assert r.status_code == 200 and r.json()["case"]["summons"][0]["accepted_by"].endswith("/城管")
    r = api.post("/api/cases/bulk", json={"pairs": [[a, 1], [b, 2], [999999, 1]]})
    assert r.status_code == 200 and r.json()["ok"] == 2
    assert [x["code"] for x in r.json()["results"]] == ["", "", "not_found"]
    assert api.post("/api/cases/escalate").json() == {"escalated": [], "skipped": []}


def test_hostile_text_comes_back_as_sent(api: httpx.Client) -> None:
    text = "<script>alert(1)</script><img src=x onerror=alert(1)> '; DROP TABLE cases; --"
    cid = phone_report(api, description=text, address=text).json()["id"]
    case = api.get(f"/api/cases/{cid}").json()["case"]
    assert case["description"] == text and case["address"] == text


def _race(urls: list[str], cid: int, staff: list[int], headers: dict[str, str]) -> list[httpx.Response]:
    """One POST per staff member, all released at once, spread over the API processes."""
    barrier = threading.Barrier(len(staff))
    out: list[httpx.Response | None] = [None] * len(staff)

    def go(i: int) -> None:
        with httpx.Client(base_url=urls[i % len(urls)], timeout=60, headers=headers) as c:
            barrier.wait()
            out[i] = c.post(f"/api/cases/{cid}/assign", json={"staff_id": staff[i], "actor": f"dispatcher:{i}"})

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(staff))]
    for th in threads:
        th.start()
    for th in threads:
        th.join(90)
    return [r for r in out if r is not None]


def test_simultaneous_assignments_through_two_api_processes_one_wins(world: Any, tmp_path: Path) -> None:
    lon, lat = at(-450, 50)
    ids = [
        cs.create_case(world, cs.NewCase(category="dirty_road", lon=lon + k * 1e-4, lat=lat, description=f"race {k}"),
                       now=NOW, dedupe=False).case_id
        for k in range(3)
    ]  # fmt: skip
    headers = bearer(api_token(world, role="dispatcher"))
    with api_process(world.url, log=tmp_path / "a.log") as (url_a, _), api_process(world.url, log=tmp_path / "b.log") as (url_b, _):
        for cid in ids:
            replies = _race([url_a, url_b], cid, [1, 2, 3, 4, 1, 2], headers)
            assert len(replies) == 6
            codes = sorted(r.status_code for r in replies)
            assert codes == [200, 409, 409, 409, 409, 409], [r.text for r in replies]
            winner = next(r for r in replies if r.status_code == 200).json()["case"]
            for r in replies:
                if r.status_code == 409:
                    assert r.json()["current"]["assignee_name"] == winner["assignee_name"]
                    assert winner["assignee_name"] in r.json()["detail"]
            timeline = httpx.get(f"{url_a}/api/cases/{cid}", timeout=30, headers=headers).json()["timeline"]
            assert [e["action"] for e in timeline].count("dispatch") == 1
