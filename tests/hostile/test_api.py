"""Hostile requests against the real HTTP API (uvicorn on a loopback port), on both stores.

Every request of the catalogue must get a clear 4xx with a ``detail`` (Open311: the spec's list of
``{"code", "description"}``) or a safe 2xx; never a 5xx. A refused request writes nothing: the row
counts of the tables it could touch are the same before and after. Hostile text that is accepted is
read back and must be stored verbatim (control characters are removed by design, see
``services.cases.clean_text``). The client carries an administrator's token; the ``auth`` family
sends hostile Authorization headers instead, which must get a clean 401."""

from __future__ import annotations

import itertools
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from api.app import MAX_BATCH_BYTES, MAX_CASE_BYTES, MAX_SINGLE_BYTES, create_app
from services import cases as cs
from tests.fixtures.api import api_token, bearer, serve_in_thread
from tests.fixtures.cases_world import build_world
from tests.store.sample import at

TABLES = ("positions", "latest_positions", "cases", "case_events", "case_summons", "cameras")
SQL = "'; DROP TABLE cases; --"
XSS = "<script>alert(1)</script><img src=x onerror=alert(1)>"
LONG = "长" * 10_000
LONG_ASCII = "A" * 10_000  # in a query string (httpx caps URLs at 64 KB)
CONTROL = "a\x00b\x01c\x1bd\u202ee"  # NUL, SOH, ESC and a right-to-left override
DEEP = "[" * 10_000 + "]" * 10_000  # deeper than the JSON parser's recursion limit
CAMERA = "21120200001310000001"


@pytest.fixture
def world(store: Any) -> Any:
    build_world(store)
    cs.forget_locator(store)
    import geopandas as gpd
    from shapely.geometry import Point

    store.write(
        "cameras",
        gpd.GeoDataFrame(
            {"id": [CAMERA], "name": ["红旗街东向"], "unit_code": ["211202001001"], "direction": [90.0],
             "fov": [60.0], "range_m": [120.0], "cam_class": ["class1"], "online": [True],
             "stream_url": ["http://gateway.local/live/1.m3u8"]},
            geometry=[Point(*at(-600, 0))],
            crs=4326,
        ),
    )  # fmt: skip
    return store


@pytest.fixture
def api(world: Any) -> Iterator[tuple[httpx.Client, Any]]:
    with (
        serve_in_thread(create_app(world, escalate_every_s=None)) as base,
        httpx.Client(base_url=base, timeout=30, headers=bearer(api_token(world))) as c,
    ):
        yield c, world


def counts(store: Any) -> dict[str, int]:
    return {t: store.count(t) for t in TABLES}


def fix(dx: float = -400, dy: float = 200, **kw: Any) -> dict[str, Any]:
    lon, lat = at(dx, dy)
    return {
        "id": "dev-1",
        "timestamp": str(int(time.time()) - 60),
        "lat": f"{lat:.6f}",
        "lon": f"{lon:.6f}",
    } | kw


def report(dx: float = -400, dy: float = 200, **kw: Any) -> dict[str, Any]:
    lon, lat = at(dx, dy)
    return {
        "device_id": "dev-1",
        "category": "exposed_garbage",
        "lat": lat,
        "lon": lon,
        "description": "垃圾",
    } | kw


def o311(dx: float = 300, dy: float = -300, **kw: Any) -> dict[str, Any]:
    lon, lat = at(dx, dy)
    return {
        "service_code": "dirty_road",
        "lat": f"{lat:.6f}",
        "long": f"{lon:.6f}",
        "description": "路脏",
    } | kw


LAT, LON = at(-400, 200)[1], at(-400, 200)[0]


@dataclass
class Hostile:
    """One hostile request: what is sent and the statuses it may get."""

    id: str
    method: str
    path: str
    kw: dict[str, Any] = field(default_factory=dict)
    expect: tuple[int, ...] = (400, 404, 405, 413, 422)


def _raw(body: str | bytes, ctype: str = "application/json") -> dict[str, Any]:
    return {"content": body if isinstance(body, bytes) else body.encode(), "headers": {"content-type": ctype}}


CATALOGUE = [
    # ---- /osmand: query string, form, JSON
    Hostile("osmand-nan", "GET", "/osmand", {"params": fix(lat="NaN")}),
    Hostile("osmand-infinity", "GET", "/osmand", {"params": fix(lon="Infinity")}),
    Hostile("osmand-1e309", "GET", "/osmand", {"params": fix(lat="1e309")}),
    Hostile("osmand-out-of-range", "GET", "/osmand", {"params": fix(lat="91", lon="181")}),
    Hostile("osmand-swapped", "GET", "/osmand", {"params": fix(lat=f"{LON:.6f}", lon=f"{LAT:.6f}")}),
    Hostile("osmand-huge-timestamp", "GET", "/osmand", {"params": fix(timestamp="9" * 400)}),
    Hostile("osmand-negative-timestamp", "GET", "/osmand", {"params": fix(timestamp="-1")}),
    Hostile("osmand-sql-device", "GET", "/osmand", {"params": fix(id=SQL)}, (403,)),
    Hostile("osmand-xss-device", "POST", "/osmand", {"data": fix(id=XSS)}, (403,)),
    Hostile("osmand-control-device", "POST", "/osmand", {"data": fix(id=CONTROL)}, (400, 403, 422)),
    Hostile(
        "osmand-long-device", "GET", "/osmand", {"params": fix(id=LONG_ASCII)}, (400, 403, 413, 414, 422, 431)
    ),
    Hostile("osmand-malformed-json", "POST", "/osmand", _raw('{"location": {"coords": ')),
    Hostile("osmand-json-array", "POST", "/osmand", {"json": [1, 2, 3]}),
    Hostile(
        "osmand-json-wrong-types",
        "POST",
        "/osmand",
        {
            "json": {
                "device_id": "dev-1",
                "location": {"timestamp": [], "coords": {"latitude": "x", "longitude": {}}},
            }
        },
    ),
    Hostile(
        "osmand-json-nan-literal",
        "POST",
        "/osmand",
        _raw(
            '{"device_id": "dev-1", "location": {"timestamp": "2026-11-18T02:00:00Z", '
            '"coords": {"latitude": NaN, "longitude": Infinity}}}'
        ),
    ),  # fmt: skip
    Hostile("osmand-wrong-content-type", "POST", "/osmand", _raw(b"\xff\xfe\x00garbage", "application/xml")),
    Hostile("osmand-invalid-utf8-json", "POST", "/osmand", _raw(b'{"device_id": "\xff\xfe"}')),
    Hostile(
        "osmand-oversized",
        "POST",
        "/osmand",
        _raw("x" * (MAX_SINGLE_BYTES + 1), "application/x-www-form-urlencoded"),
        (413,),
    ),
    # ---- /api/positions: batches
    Hostile("batch-malformed-json", "POST", "/api/positions", _raw('{"positions": [')),
    Hostile("batch-not-an-object", "POST", "/api/positions", {"json": "positions"}),
    Hostile("batch-positions-not-a-list", "POST", "/api/positions", {"json": {"positions": {"a": 1}}}),
    Hostile("batch-too-many", "POST", "/api/positions", {"json": {"positions": [{}] * 1001}}),
    Hostile("batch-oversized", "POST", "/api/positions", _raw(b"[" + b" " * MAX_BATCH_BYTES + b"]"), (413,)),
    Hostile("batch-deep-nesting", "POST", "/api/positions", _raw(DEEP)),
    Hostile("osmand-deep-nesting", "POST", "/osmand", _raw(DEEP)),
    # ---- POST /api/cases
    Hostile("case-malformed-json", "POST", "/api/cases", _raw('{"device_id": "dev-1",')),
    Hostile("case-deep-nesting", "POST", "/api/cases", _raw(DEEP)),
    Hostile("case-form-instead-of-json", "POST", "/api/cases", {"data": {"device_id": "dev-1"}}),
    Hostile("case-nan-literal", "POST", "/api/cases", _raw(json.dumps(report(lat=float("nan"))))),
    Hostile("case-1e309", "POST", "/api/cases", _raw(json.dumps(report()).replace(f"{LAT}", "1e309"))),
    Hostile("case-out-of-range", "POST", "/api/cases", {"json": report(lat=-91.0, lon=200.0)}),
    Hostile("case-swapped", "POST", "/api/cases", {"json": report(lat=LON, lon=LAT)}),
    Hostile("case-huge-urgency", "POST", "/api/cases", {"json": report(urgency=10**30)}),
    Hostile("case-sql-device", "POST", "/api/cases", {"json": report(device_id=SQL)}, (403,)),
    Hostile("case-control-device", "POST", "/api/cases", {"json": report(device_id="dev-1\x00")}),
    Hostile("case-sql-category", "POST", "/api/cases", {"json": report(category=SQL)}),
    Hostile("case-xss-category", "POST", "/api/cases", {"json": report(category=XSS[:100])}),
    Hostile("case-long-description", "POST", "/api/cases", {"json": report(description=LONG)}),
    Hostile(
        "case-javascript-photo", "POST", "/api/cases", {"json": report(photo_urls=["javascript:alert(1)"])}
    ),
    Hostile("case-unknown-field", "POST", "/api/cases", {"json": report(is_admin=True)}),
    Hostile(
        "case-oversized", "POST", "/api/cases", {"json": report(description="x" * MAX_CASE_BYTES)}, (413,)
    ),
    # ---- /api/cases/... actions and path parameters
    Hostile("case-huge-id", "GET", f"/api/cases/{10**30}"),
    Hostile("case-negative-id", "GET", "/api/cases/-1"),
    Hostile("case-traversal-id", "GET", "/api/cases/..%2F..%2Fetc%2Fpasswd"),
    Hostile("case-sql-id", "GET", "/api/cases/1%20OR%201=1"),
    Hostile("assign-huge-staff", "POST", "/api/cases/1/assign", {"json": {"staff_id": 10**30}}),
    Hostile("assign-negative-case", "POST", "/api/cases/-5/assign", {"json": {"staff_id": 1}}),
    Hostile("action-unknown", "POST", "/api/cases/1/actions/..%2F..%2Fescalate", {"json": {}}),
    Hostile("action-huge-rev", "POST", "/api/cases/1/actions/accept", {"json": {"expected_rev": -(10**30)}}),
    Hostile("bulk-huge-pairs", "POST", "/api/cases/bulk", {"json": {"pairs": [[10**20, 1]]}}),
    Hostile("bulk-too-many", "POST", "/api/cases/bulk", {"json": {"pairs": [[1, 1]] * 501}}),
    Hostile("cases-bbox-nan", "GET", "/api/cases", {"params": {"bbox": "nan,0,inf,1"}}),
    Hostile("cases-sql-state", "GET", "/api/cases", {"params": {"state": SQL}}),
    Hostile(
        "department-traversal",
        "POST",
        "/api/cases/1/departments/..%2F..%2Fx/accept",
        {"json": {"actor": "x"}},
    ),
    # ---- Open311
    Hostile("o311-malformed-json", "POST", "/open311/v2/requests.json", _raw('{"service_code": ')),
    Hostile("o311-deep-nesting", "POST", "/open311/v2/requests.json", _raw(DEEP)),
    Hostile("o311-json-array", "POST", "/open311/v2/requests.json", {"json": [o311()]}),
    Hostile("o311-nested-values", "POST", "/open311/v2/requests.json", {"json": o311(description={"a": 1})}),
    Hostile("o311-nan", "POST", "/open311/v2/requests.json", {"data": o311(lat="NaN")}),
    Hostile("o311-1e309", "POST", "/open311/v2/requests.json", {"data": o311(long="1e309")}),
    Hostile("o311-swapped", "POST", "/open311/v2/requests.json", {"data": o311(lat=f"{LON}", long=f"{LAT}")}),
    Hostile("o311-sql-service", "POST", "/open311/v2/requests.json", {"data": o311(service_code=SQL)}),
    Hostile("o311-long-description", "POST", "/open311/v2/requests.json", {"data": o311(description=LONG)}),
    Hostile(
        "o311-bad-utf8-form",
        "POST",
        "/open311/v2/requests.json",
        _raw(b"service_code=\xff\xfe&lat=1", "application/x-www-form-urlencoded"),
    ),
    Hostile(
        "o311-too-many-fields",
        "POST",
        "/open311/v2/requests.json",
        _raw("&".join(f"f{i}=1" for i in range(300)), "application/x-www-form-urlencoded"),
    ),
    Hostile(
        "o311-oversized",
        "POST",
        "/open311/v2/requests.json",
        _raw("description=" + "x" * MAX_CASE_BYTES, "application/x-www-form-urlencoded"),
        (413,),
    ),
    Hostile("o311-bad-format", "POST", "/open311/v2/requests.php", {"data": o311()}),
    Hostile(
        "o311-get-bad-dates",
        "GET",
        "/open311/v2/requests.json",
        {"params": {"start_date": "9999999-99", "end_date": SQL}},
    ),
    Hostile(
        "o311-get-huge-id",
        "GET",
        "/open311/v2/requests.json",
        {"params": {"service_request_id": str(10**40)}},
        (200,),
    ),
    Hostile("o311-get-sql-status", "GET", "/open311/v2/requests.json", {"params": {"status": SQL}}),
    Hostile("o311-traversal", "GET", "/open311/v2/requests/..%2F..%2Fetc%2Fpasswd.json"),
    Hostile("o311-get-one-huge", "GET", f"/open311/v2/requests/{10**40}.json"),
    # ---- cameras
    Hostile("seeing-nan", "GET", "/api/cameras/seeing", {"params": {"lon": "nan", "lat": "nan"}}),
    Hostile("seeing-1e309", "GET", "/api/cameras/seeing", {"params": {"lon": "1e309", "lat": "42"}}),
    Hostile("seeing-out-of-range", "GET", "/api/cameras/seeing", {"params": {"lon": "500", "lat": "-100"}}),
    Hostile("seeing-huge-case", "GET", "/api/cameras/seeing", {"params": {"case_id": str(10**30)}}),
    Hostile("seeing-negative-case", "GET", "/api/cameras/seeing", {"params": {"case_id": "-1"}}),
    Hostile(
        "camera-status-traversal",
        "PUT",
        "/api/cameras/..%2F..%2Fetc%2Fpasswd/status",
        {"json": {"online": True}},
    ),
    Hostile("camera-status-sql", "PUT", f"/api/cameras/{SQL}/status", {"json": {"online": False}}),
    Hostile("camera-status-nul", "PUT", "/api/cameras/a%00b/status", {"json": {"online": False}}),
    Hostile("camera-status-not-bool", "PUT", f"/api/cameras/{CAMERA}/status", {"json": {"online": "maybe"}}),
    Hostile("camera-status-malformed", "PUT", f"/api/cameras/{CAMERA}/status", _raw("{online: true")),
    Hostile(
        "camera-batch-nul-id",
        "POST",
        "/api/cameras/status",
        {"json": {"cameras": [{"id": "x\x00", "online": True}]}},
    ),
    Hostile("camera-batch-deep-nesting", "POST", "/api/cameras/status", _raw(DEEP)),
    Hostile(
        "camera-batch-too-many",
        "POST",
        "/api/cameras/status",
        {"json": {"cameras": [{"id": f"c{i}", "online": True} for i in range(5001)]}},
    ),
    Hostile(
        "camera-batch-oversized", "POST", "/api/cameras/status", _raw(b" " * (MAX_BATCH_BYTES + 1)), (413,)
    ),
    # ---- hostile Authorization headers (in place of the client's good one): 401, never a 500
    *[
        Hostile(f"auth-{name}-{i}", method, path, {"headers": {"Authorization": value}}, (401,))
        for name, value in [
            ("long", "Bearer " + "A" * 8000),
            ("non-ascii", "Bearer 令牌".encode()),
            ("latin1", b"Bearer \xff\xfe\xfd"),
            ("empty-bearer", "Bearer"),
            ("upper-empty", "BEARER"),
            ("basic", "Basic dXNlcjpwYXNzd29yZA=="),
            ("two-tokens", "Bearer a b"),
            ("sql", f"Bearer {SQL}"),
            ("no-scheme", "x" * 43),
        ]
        for i, (method, path) in enumerate([("GET", "/api/cases"), ("POST", "/api/cases/escalate"),
                                            ("GET", "/osmand?" + "&".join(f"{k}={v}" for k, v in fix().items()))])
    ],  # fmt: skip
    # ---- /api/kpis
    Hostile("kpis-sql-county", "GET", "/api/kpis", {"params": {"county": SQL}}),
    Hostile("kpis-traversal-county", "GET", "/api/kpis", {"params": {"county": "../../etc"}}),
    Hostile(
        "kpis-long-county", "GET", "/api/kpis", {"params": {"county": "2" * 10_000}}, (400, 414, 422, 431)
    ),
]


FAMILIES = sorted({h.id.split("-")[0] for h in CATALOGUE})


def _problem(client: httpx.Client, store: Any, h: Hostile) -> str | None:
    """What is wrong with the answer to ``h`` (None: a clean refusal or a safe 2xx)."""
    before = counts(store)
    r = client.request(h.method, h.path, **h.kw)
    if r.status_code >= 500 or r.status_code not in h.expect:
        return f"{h.id}: {r.status_code} {r.text[:300]}"
    if r.status_code >= 400 and r.status_code not in (414, 431):  # (those two: uvicorn, before the app)
        body = r.json()
        if h.path.startswith("/open311/"):
            if not (isinstance(body, list) and body[0]["code"] == r.status_code and body[0]["description"]):
                return f"{h.id}: not an Open311 error list: {body}"
        elif not (isinstance(body, dict) and body.get("detail")):
            return f"{h.id}: no detail: {body}"
    if counts(store) != before:
        return f"{h.id}: a refused request wrote something: {before} -> {counts(store)}"
    return None


@pytest.mark.parametrize("family", FAMILIES)
def test_hostile_requests_are_refused_cleanly(api: tuple[httpx.Client, Any], family: str) -> None:
    """One server per family of endpoints (a server per request would take minutes on PostGIS)."""
    client, store = api
    cases = [h for h in CATALOGUE if h.id.split("-")[0] == family]
    problems = [p for p in (_problem(client, store, h) for h in cases) if p]
    assert not problems, "\n".join(problems)


def test_the_catalogue_is_large_and_unique() -> None:
    assert len(CATALOGUE) >= 30 and len({h.id for h in CATALOGUE}) == len(CATALOGUE)


# ----------------------------------------------------------------------------- accepted hostile text

HOSTILE_TEXTS = [
    SQL,
    XSS,
    "Robert'); DROP TABLE staff;--",
    '" OR ""="',
    "${jndi:ldap://x}",
    "{{7*7}}",
    "😀 \u200b ﷽",
]


def test_hostile_text_in_a_phone_report_is_stored_verbatim(api: tuple[httpx.Client, Any]) -> None:
    client, store = api
    spots = itertools.product(range(-900, 901, 300), range(-900, 901, 300))
    for text, (dx, dy) in zip(HOSTILE_TEXTS, spots, strict=False):
        r = client.post("/api/cases", json=report(dx, dy, description=text, address=text[:200]))
        assert r.status_code == 201, r.text
        case = client.get(f"/api/cases/{r.json()['id']}").json()["case"]
        assert case["description"] == text and case["address"] == text[:200]
    assert store.count("cases") == len(HOSTILE_TEXTS)


def test_control_characters_are_removed_and_the_rest_kept(api: tuple[httpx.Client, Any]) -> None:
    client, _ = api
    r = client.post("/api/cases", json=report(description=CONTROL + "\n" + XSS))
    assert r.status_code == 201, r.text
    got = client.get(f"/api/cases/{r.json()['id']}").json()["case"]["description"]
    assert got == "abcd\u202ee\n" + XSS  # C0 controls dropped (documented), everything else as sent


def test_hostile_text_in_actions_is_stored_verbatim(api: tuple[httpx.Client, Any]) -> None:
    client, store = api
    cid = client.post("/api/cases", json=report()).json()["id"]
    r = client.post(f"/api/cases/{cid}/assign", json={"staff_id": 1, "actor": XSS[:100]})
    assert r.status_code == 200, r.text
    r = client.post(f"/api/cases/{cid}/actions/accept", json={"actor": SQL, "note": XSS})
    assert r.status_code == 200, r.text
    timeline = client.get(f"/api/cases/{cid}").json()["timeline"]
    # a token acts as "<token name>/<the person it names>", the named part kept verbatim
    actors = [str(e["actor"]).split("/", 1)[-1] for e in timeline]
    assert XSS[:100] in actors and SQL in actors
    assert XSS in [e.get("note") for e in timeline]
    assert store.count("cases") == 1 and store.count("staff") == 6  # nothing dropped


def test_hostile_text_over_open311_is_stored_verbatim(api: tuple[httpx.Client, Any]) -> None:
    client, _ = api
    for i, text in enumerate([SQL, XSS]):
        r = client.post(
            "/open311/v2/requests.json", data=o311(300 - 400 * i, -300, description=text, address_string=text)
        )
        assert r.status_code == 200, r.text
        rid = r.json()[0]["service_request_id"]
        got = client.get(f"/open311/v2/requests/{rid}.json").json()[0]
        assert got["description"] == text and got["address"] == text
        found = client.get("/open311/v2/requests.json", params={"service_request_id": rid}).json()
        assert [x["service_request_id"] for x in found] == [rid]


def test_xml_rendering_escapes_hostile_text(api: tuple[httpx.Client, Any]) -> None:
    client, _ = api
    r = client.post("/open311/v2/requests.json", data=o311(description=XSS + "]]>&"))
    rid = r.json()[0]["service_request_id"]
    x = client.get(f"/open311/v2/requests/{rid}.xml")
    assert x.status_code == 200 and "<script>" not in x.text and "&lt;script&gt;" in x.text


# ----------------------------------------------------------------------------- duplicates


def test_duplicate_requests_are_stored_once(api: tuple[httpx.Client, Any]) -> None:
    client, store = api
    one = fix()
    assert [client.get("/osmand", params=one).status_code for _ in range(3)] == [200] * 3
    batch = {"positions": [{"device_id": "dev-1", "timestamp": int(one["timestamp"]), "lat": float(one["lat"]),
                            "lon": float(one["lon"])}] * 5}  # fmt: skip
    r = client.post("/api/positions", json=batch)
    assert r.status_code == 200 and r.json()["accepted"] == 0, r.text
    assert store.count("positions") == 1
    first = client.post("/api/cases", json=report(description=SQL))
    again = client.post("/api/cases", json=report(description=SQL))
    assert (
        first.status_code == 201
        and again.status_code == 200
        and again.json()["duplicate_of"] == first.json()["id"]
    )
    assert store.count("cases") == 1
    cam = [
        client.put(f"/api/cameras/{CAMERA}/status", json={"online": False}).json()["changed"]
        for _ in range(2)
    ]
    assert cam == [True, False]


def test_a_refused_batch_item_does_not_stop_the_others(api: tuple[httpx.Client, Any]) -> None:
    client, store = api
    good = fix()
    items = [
        {
            "device_id": "dev-1",
            "timestamp": int(good["timestamp"]),
            "lat": float(good["lat"]),
            "lon": float(good["lon"]),
        },
        {"device_id": "dev-1", "timestamp": int(good["timestamp"]) - 5, "lat": 1e308, "lon": -1e308},
        {"device_id": SQL, "timestamp": 0, "lat": "x", "lon": None},
        "not an object",
        None,
    ]
    r = client.post("/api/positions", json={"positions": items})
    assert r.status_code == 200, r.text
    assert r.json()["accepted"] == 1 and [x["index"] for x in r.json()["rejected"]] == [1, 2, 3, 4]
    assert store.count("positions") == 1
