"""Open311 GeoReport v2 over real HTTP (uvicorn on a loopback port) on the small demo city.

An existing Open311 client library, civicbot's ``Open311Client`` (pinned in requirements-dev.txt),
is used unchanged: it lists the services, posts a request (form-encoded, as the spec says), reads
it back and filters requests. httpx covers every route, filter and error in detail: status codes
and the spec's error list, XML, duplicates merged into an earlier request, api keys, the body
limit, and hostile text that must come back byte-identical. Posting needs a token with
``cases.report`` (the ``api_key``, or an ``Authorization: Bearer`` header, which the ``http``
client carries); reading is public.

The demo database is built once for the module. Tests that post requests each take their own
places (buildings at least 150 m apart), so no report is merged into another test's by accident.
"""

from __future__ import annotations

import json
import math
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import geopandas as gpd
import httpx
import pandas as pd
import pytest
from shapely.geometry import Point

from api.app import create_app
from services import cases as cs
from services import open311 as o3
from services import sla
from store import open_store
from tests.fixtures.api import api_token, bearer, serve_in_thread
from tests.fixtures.demo_db import FIXED_NOW, build_small_demo

TZ = "Asia/Shanghai"
LAT, LON = "42.3013", "123.8363"  # inside the small demo city (a building of 福马小区)
ERROR_STATUSES = {400, 403, 404, 409, 413}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Any]]:
    url = build_small_demo(tmp_path_factory.mktemp("open311") / "small.sqlite")
    store = open_store(url)
    try:
        with serve_in_thread(create_app(store)) as base:
            yield base + "/open311/v2", store
    finally:
        store.close()


@pytest.fixture(scope="module")
def token(api: tuple[str, Any]) -> str:
    """A token that may report cases (a department's app, say)."""
    return api_token(api[1], role="department")


@pytest.fixture(scope="module")
def places(api: tuple[str, Any]) -> Iterator[tuple[float, float]]:
    """(lon, lat) inside buildings of the city, each at least 150 m (the duplicate radius is 100 m) from every other one handed out."""
    _, store = api
    b = store.read("buildings", columns=["id"]).sort_values("id")
    pts = b.geometry.representative_point()
    metric = gpd.GeoSeries(pts, crs=4326).to_crs(32651)
    chosen: list[int] = []
    for i, p in enumerate(metric):
        if all(p.distance(metric.iloc[j]) >= 150 for j in chosen):
            chosen.append(i)
    assert len(chosen) >= 25, "the demo city should have room for the tests' places"
    return iter([(float(pts.iloc[i].x), float(pts.iloc[i].y)) for i in chosen])


@pytest.fixture
def http(api: tuple[str, Any], token: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api[0], timeout=30, headers=bearer(token)) as c:
        yield c


def _errors(r: httpx.Response, status: int, *needles: str) -> str:
    """The response is the spec's error list with that status; returns its description."""
    assert r.status_code == status, r.text
    body = r.json()
    assert isinstance(body, list) and len(body) == 1 and set(body[0]) == {"code", "description"}, body
    assert body[0]["code"] == status
    text = str(body[0]["description"])
    for n in needles:
        assert n.lower() in text.lower(), text
    return text


def _post(http: httpx.Client, **fields: Any) -> httpx.Response:
    return http.post("/requests.json", data={k: str(v) for k, v in fields.items()})


def _created(r: httpx.Response) -> str:
    assert r.status_code == 200, r.text
    body = r.json()
    assert isinstance(body, list) and len(body) == 1
    assert set(body[0]) == {"service_request_id", "service_notice", "account_id"}
    assert body[0]["account_id"] is None and body[0]["service_notice"]
    rid = body[0]["service_request_id"]
    assert isinstance(rid, str) and rid.isdigit()
    return rid


def _ts(text: str) -> pd.Timestamp:
    ts = pd.Timestamp(text)
    assert ts.tzinfo is not None, text
    return ts.tz_convert("UTC")


def _iso_utc(ts: Any) -> str:
    return pd.Timestamp(ts).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ")


# ----------------------------------------------------------------------------- an unchanged client


def test_an_existing_open311_client_lists_posts_reads_and_filters(
    api: tuple[str, Any], places: Iterator[tuple[float, float]], token: str
) -> None:
    from civicbot import Endpoint, HttpTransport, Open311Client
    from civicbot.http import HttpError, RateLimiter

    base, store = api
    endpoint = Endpoint(id="gridconsole", name="Demo city", base_url=base, write=True, api_key_required_for_write=True)
    client = Open311Client(endpoint, transport=HttpTransport(rate_limiter=RateLimiter(min_interval=0)))

    services = client.list_services()
    codes = {s["service_code"] for s in services}
    assert codes == set(cs.categories(store, active_only=True)["code"])
    assert client.get_service_definition("flooding") == {"service_code": "flooding", "attributes": []}

    lon, lat = next(places)
    sent = client.create_request(
        "flooding", dry_run=False, confirm="SEND", validate_remote=True, lat=lat, lng=lon, api_key=token,
        description="雨后道路积水，老人出行困难", first_name="Li", last_name="Wang", email="wang.li@example.cn",
        phone="13800000000", media_url="https://photos.example.cn/flood.jpg",
    )  # fmt: skip
    assert sent.form["service_code"] == "flooding" and sent.form["long"] == lon  # what it posted, as a form
    rid = sent.response[0]["service_request_id"]
    assert rid.isdigit() and sent.response[0]["account_id"] is None

    got = client.get_request(rid)
    assert got is not None
    assert got["service_request_id"] == rid and got["service_code"] == "flooding" and got["status"] == "open"
    assert got["description"] == "雨后道路积水，老人出行困难"
    assert got["media_url"] == "https://photos.example.cn/flood.jpg"
    assert math.isclose(got["lat"], lat) and math.isclose(got["long"], lon)
    case = cs.get_case(store, int(rid))
    assert case["source"] == "open311" and case["reporter_name"] == "Li Wang"
    assert case["reporter_email"] == "wang.li@example.cn" and case["reporter_phone"] == "13800000000"
    events = cs.timeline(store, int(rid))
    assert events["actor"].iloc[0] == "open311:wang.li@example.cn"

    mine = client.list_requests(status="open", service_code="flooding")  # default window: the last 90 days
    assert rid in {r["service_request_id"] for r in mine}
    assert all(r["status"] == "open" and r["service_code"] == "flooding" for r in mine)
    assert rid not in {r["service_request_id"] for r in client.list_requests(status="closed", service_code="flooding")}

    start, end = FIXED_NOW - timedelta(days=14), FIXED_NOW
    demo = client.list_requests(start_date=_iso_utc(start), end_date=_iso_utc(end), service_code="noise,heating")
    rows = store.read("cases", where={"category": ["noise", "heating"]}, columns=["id", "reported_at"], geometry=False)
    rows = rows[(rows["reported_at"] >= pd.Timestamp(start)) & (rows["reported_at"] <= pd.Timestamp(end))]
    assert len(demo) == len(rows) > 0
    assert [r["service_request_id"] for r in demo] == [
        str(i) for i in rows.sort_values(["reported_at", "id"], ascending=False)["id"]
    ]
    assert {r["service_request_id"] for r in client.list_requests(service_request_ids=[rid, "1"])} == {rid, "1"}

    with pytest.raises(HttpError) as e:
        client.get_request("99999999")
    assert e.value.status == 404 and json.loads(e.value.body)[0]["code"] == 404
    with pytest.raises(HttpError) as e:
        client.create_request("flooding", dry_run=False, confirm="SEND", lat=40.0, lng=116.4, description="北京",
                              api_key=token)  # fmt: skip
    assert e.value.status == 400 and "out of region" in json.loads(e.value.body)[0]["description"]


# ----------------------------------------------------------------------------- services, discovery


def test_services_list_definition_and_discovery(http: httpx.Client, api: tuple[str, Any]) -> None:
    _, store = api
    r = http.get("/services.json")
    assert r.status_code == 200 and r.headers["content-type"].startswith("application/json")
    services = r.json()
    cats = cs.categories(store, active_only=True).set_index("code")
    assert [s["service_code"] for s in services] == sorted(cats.index)
    for s in services:
        assert set(s) == {"service_code", "service_name", "description", "metadata", "type", "keywords", "group"}
        cat = cats.loc[s["service_code"]]
        assert s["service_name"] == cat["name_zh"] and s["metadata"] is False and s["type"] == "realtime"
        assert sla.limit_text(cat["time_limit"], cat["limit_unit"], "zh") in s["description"]
        assert sla.limit_text(cat["time_limit"], cat["limit_unit"], "en") in s["description"]
        assert s["group"] and s["service_code"] in s["keywords"]
    en = {s["service_code"]: s["service_name"] for s in http.get("/services.json", params={"lang": "en"}).json()}
    assert en["noise"] == cats.loc["noise", "name_en"]
    assert http.get("/services.json", headers={"Accept-Language": "en-GB,en;q=0.8"}).json()[0]["service_name"] == en[
        services[0]["service_code"]
    ]

    assert http.get("/services/noise.json").json() == {"service_code": "noise", "attributes": []}
    _errors(http.get("/services/no_such_thing.json"), 404, "no_such_thing", "not found")
    _errors(http.get("/services/%3Cscript%3E.json"), 404, "<script>")

    root = ET.fromstring(http.get("/services.xml").content)
    assert root.tag == "services" and len(root.findall("service")) == len(services)
    first = root.find("service")
    assert first is not None and first.findtext("service_code") == services[0]["service_code"]
    assert first.findtext("metadata") == "false" and first.findtext("description") == services[0]["description"]
    d = ET.fromstring(http.get("/services/noise.xml").content)
    assert d.tag == "service_definition" and d.findtext("service_code") == "noise"

    disc = http.get("/discovery.json").json()
    assert disc["endpoints"][0]["url"].endswith("/open311/v2")
    assert disc["endpoints"][0]["specification"] == "http://wiki.open311.org/GeoReport_v2"
    assert "application/json" in disc["endpoints"][0]["formats"]
    x = ET.fromstring(http.get("/discovery.xml").content)
    assert x.tag == "discovery" and x.findtext("endpoints/endpoint/type") == "production"


# ----------------------------------------------------------------------------- posting


def test_post_form_then_read_back_every_field(
    http: httpx.Client, api: tuple[str, Any], places: Iterator[tuple[float, float]]
) -> None:
    _, store = api
    lon, lat = next(places)
    before = cs.utc()
    r = _post(
        http, service_code="animal", lat=f"{lat:.7f}", long=f"{lon:.7f}", description="院内发现蛇，请求处置",
        address_string="福马小区1号楼", first_name="丽琳", last_name="董", device_id="phone-42",
        media_url="https://img.example.cn/snake.jpg",
    )  # fmt: skip
    rid = _created(r)
    assert r.headers["content-type"].startswith("application/json")
    assert "2 小时" in r.json()[0]["service_notice"] and rid in r.json()[0]["service_notice"]
    after = cs.utc()

    one = http.get(f"/requests/{rid}.json")
    assert one.status_code == 200 and isinstance(one.json(), list) and len(one.json()) == 1
    req = one.json()[0]
    assert list(req) == ["service_request_id", "status", "status_notes", "service_name", "service_code",
                         "description", "agency_responsible", "service_notice", "requested_datetime",
                         "updated_datetime", "expected_datetime", "address", "address_id", "zipcode", "lat", "long",
                         "media_url"]  # fmt: skip
    assert req["service_request_id"] == rid and req["status"] == "open" and req["service_code"] == "animal"
    assert req["service_name"] == "动物侵扰" and req["status_notes"]
    assert req["address"] == "福马小区1号楼" and req["media_url"] == "https://img.example.cn/snake.jpg"
    assert abs(req["lat"] - lat) < 1e-6 and abs(req["long"] - lon) < 1e-6
    case = cs.get_case(store, int(rid))
    assert case["reporter_name"] == "董丽琳" and case["state"] == "reported"
    assert cs.timeline(store, int(rid))["actor"].iloc[0] == "open311:phone-42"
    township = store.read("admin_units", where={"code": case["township_code"]}, columns=["name"], geometry=False)
    assert req["agency_responsible"] == township["name"].iloc[0]
    for key in ("requested_datetime", "updated_datetime", "expected_datetime"):
        assert req[key].endswith("+08:00"), req[key]  # the city's offset
    requested = _ts(req["requested_datetime"])
    assert before.floor("s") <= requested <= after
    # not dispatched yet: the category's limit (2 hours) counted from now
    expected = _ts(req["expected_datetime"])
    assert requested + pd.Timedelta(hours=2) <= expected <= cs.utc() + pd.Timedelta(hours=2)

    en = http.get(f"/requests/{rid}.json", params={"lang": "en"}).json()[0]
    assert en["service_name"] == "Animal in residence" and en["status_notes"] == "received, waiting to be filed"

    x = ET.fromstring(http.get(f"/requests/{rid}.xml").content)
    assert x.tag == "service_requests" and len(x.findall("request")) == 1
    assert x.findtext("request/service_request_id") == rid and x.findtext("request/description") == "院内发现蛇，请求处置"


def test_post_json_multipart_and_query_string_bodies(
    http: httpx.Client, api: tuple[str, Any], places: Iterator[tuple[float, float]]
) -> None:
    _, store = api
    lon, lat = next(places)
    r = http.post("/requests.json", json={"service_code": "noise", "lat": lat, "long": lon, "description": "夜间装修噪声",
                                          "media_url": ["https://a.example.cn/1.jpg", "https://a.example.cn/2.jpg"]})  # fmt: skip
    rid = _created(r)
    assert cs.get_case(store, int(rid))["photo_urls"] == ["https://a.example.cn/1.jpg", "https://a.example.cn/2.jpg"]
    lon, lat = next(places)
    r = http.post("/requests.json", files={"photo": ("x.jpg", b"\xff\xd8", "image/jpeg")},
                  data={"service_code": "noise", "lat": str(lat), "long": str(lon), "description": "multipart"})  # fmt: skip
    assert cs.get_case(store, int(_created(r)))["description"] == "multipart"
    lon, lat = next(places)  # the old open311 wrapper puts some fields in the query string
    r = http.post("/requests.json", params={"api_key": "", "jurisdiction_id": ""},
                  data={"service_code": "noise", "lat": str(lat), "long": str(lon), "description": "query"})  # fmt: skip
    _created(r)
    lon, lat = next(places)
    r = http.post("/requests.xml", data={"service_code": "noise", "lat": str(lat), "long": str(lon), "description": "xml"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/xml")
    x = ET.fromstring(r.content)
    assert x.tag == "service_requests" and x.findtext("request/service_request_id", "").isdigit()
    assert x.find("request/account_id") is not None

    _errors(http.post("/requests.json", content=b"{not json", headers={"content-type": "application/json"}), 400, "JSON")
    _errors(http.post("/requests.json", json=[1, 2]), 400, "object")
    _errors(http.post("/requests.json", json={"service_code": {"a": 1}, "lat": lat, "long": lon}), 400, "service_code")
    bad_utf8 = b"service_code=noise&description=%FF%FE&lat=1&long=2"
    _errors(http.post("/requests.json", content=bad_utf8, headers={"content-type": "application/x-www-form-urlencoded"}),
            400, "UTF-8")  # fmt: skip
    _errors(http.post("/requests.json", content=b"\xff\xfe", headers={"content-type": "application/x-www-form-urlencoded"}),
            400, "UTF-8")  # fmt: skip


def test_a_duplicate_report_is_merged_into_the_earlier_request(
    http: httpx.Client, api: tuple[str, Any], places: Iterator[tuple[float, float]]
) -> None:
    _, store = api
    lon, lat = next(places)
    first = _created(_post(http, service_code="illegal_building", lat=lat, long=lon, description="院内新建彩钢房"))
    near_lat = lat + 20 / 111_000  # 20 m north
    r = _post(http, service_code="illegal_building", lat=near_lat, long=lon, description="又有人在搭彩钢房", email="b@x.cn")
    assert r.status_code == 200
    body = r.json()[0]
    assert body["service_request_id"] == first
    assert "merged" in body["service_notice"].lower() and "合并" in body["service_notice"]
    case = cs.get_case(store, int(first))
    assert case["reports"] == 2 and case["description"] == "院内新建彩钢房"
    assert "duplicate_report" in set(cs.timeline(store, int(first))["action"])
    req = http.get(f"/requests/{first}.json").json()[0]
    assert req["service_notice"] and "2" in req["service_notice"]
    # another category at the same place is another request
    other = _created(_post(http, service_code="safety_hazard", lat=lat, long=lon, description="楼道电动车充电"))
    assert other != first


def test_a_request_located_by_address_only(
    http: httpx.Client, api: tuple[str, Any], places: Iterator[tuple[float, float]]
) -> None:
    _, store = api
    b = store.read("buildings", where={"id": 123})
    name = str(b["name"].iloc[0])
    inside = b.geometry.iloc[0]
    rid = _created(_post(http, service_code="heating", address_string=f"{name}3单元502室", description="室温偏低"))
    req = http.get(f"/requests/{rid}.json").json()[0]
    assert req["address"] == f"{name}3单元502室" and inside.contains(Point(req["long"], req["lat"]))

    b2 = store.read("buildings", where={"id": 456})
    rid2 = _created(_post(http, service_code="family_dispute", address_id="456", description="赡养纠纷"))
    req2 = http.get(f"/requests/{rid2}.json").json()[0]
    assert b2.geometry.iloc[0].contains(Point(req2["long"], req2["lat"]))

    road = store.read("roads", columns=["name"], geometry=False)["name"].dropna().iloc[0]
    rid3 = _created(_post(http, service_code="dirty_road", address_string=str(road), description="门前道路泥土较多"))
    assert http.get(f"/requests/{rid3}.json").json()[0]["lat"] is not None

    _errors(_post(http, service_code="heating", address_string="火星基地1号楼", description="x"), 400, "location not found")
    _errors(_post(http, service_code="heating", address_id="99999999", description="x"), 400, "location not found")
    _errors(_post(http, service_code="heating", description="no place"), 400, "location")


# ----------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("fields", "status", "needles"),
    [
        ({"lat": LAT, "long": LON, "description": "x"}, 400, ("service_code",)),
        ({"service_code": "", "lat": LAT, "long": LON}, 400, ("service_code",)),
        ({"service_code": "no_such_code", "lat": LAT, "long": LON}, 400, ("no_such_code", "not found")),
        ({"service_code": "noise", "description": "x"}, 400, ("location",)),
        ({"service_code": "noise", "lat": "", "long": "", "description": "x"}, 400, ("location",)),
        ({"service_code": "noise", "lat": LAT, "description": "x"}, 400, ("lat", "long")),
        ({"service_code": "noise", "lat": "NaN", "long": LON}, 400, ("lat", "finite")),
        ({"service_code": "noise", "lat": LAT, "long": "inf"}, 400, ("long", "finite")),
        ({"service_code": "noise", "lat": "abc", "long": LON}, 400, ("lat", "number")),
        ({"service_code": "noise", "lat": "1e400", "long": LON}, 400, ("finite",)),
        ({"service_code": "noise", "lat": "99999999999999999999", "long": LON}, 400, ("lat",)),
        ({"service_code": "noise", "lat": "123.8", "long": "42.3"}, 400, ("swapped",)),
        ({"service_code": "noise", "lat": "-95", "long": "200"}, 400, ("longitude",)),
        ({"service_code": "noise", "lat": "39.9", "long": "116.4", "description": "x"}, 400, ("out of region",)),
        ({"service_code": "noise", "lat": "0", "long": "0", "description": "x"}, 400, ("out of region",)),
        ({"service_code": "noise", "lat": LAT, "long": LON, "description": "x" * 4001}, 400, ("4000",)),
        ({"service_code": "noise", "lat": LAT, "long": LON, "media_url": "javascript:alert(1)"}, 400,
         ("media_url",)),
        ({"service_code": "noise", "lat": LAT, "long": LON, "media_url": "http://x/<script>"}, 400,
         ("media_url",)),
        ({"service_code": "noise", "lat": LAT, "long": LON, "media_url": "not a url"}, 400, ("media_url",)),
        ({"service_code": "noise", "lat": LAT, "long": LON, "phone": "1" * 50}, 400, ("phone",)),
        ({"service_code": "noise", "lat": LAT, "long": LON, "address_string": "路" * 201}, 400,
         ("address_string", "200")),
        ({"service_code": "' OR 1=1 --", "lat": LAT, "long": LON}, 400, ("not found",)),
    ],
)
def test_bad_posts_get_the_spec_error_list(
    http: httpx.Client, api: tuple[str, Any], fields: dict[str, str], status: int, needles: tuple[str, ...]
) -> None:
    _, store = api
    n = store.count("cases")
    r = http.post("/requests.json", data=fields)
    _errors(r, status, *needles)
    assert store.count("cases") == n  # nothing was written
    x = http.post("/requests.xml", data=fields)
    assert x.status_code == status and x.headers["content-type"].startswith("text/xml")
    root = ET.fromstring(x.content)
    assert root.tag == "errors" and root.findtext("error/code") == str(status)


def test_never_a_500_for_junk(http: httpx.Client, api: tuple[str, Any]) -> None:
    junk = ["", " ", "NaN", "-nan", "Infinity", "1e309", "-1e309", "0x1F", "١٢٣", "1,5", "42.3.1", "\x00", "%00",
            "'; DROP TABLE cases; --", "<script>alert(1)</script>", "🐍" * 300, "9" * 5000, "null", "[]", "{}",
            "\u202e", "true"]  # fmt: skip
    text_junk = ["", "\x00", "'; DROP TABLE cases; --", "<script>alert(1)</script>", "🐍" * 300, "9" * 5000, "\u202e"]
    parsed = ("service_code", "lat", "long", "address_string", "address_id", "media_url")
    for key in (*parsed, "email", "first_name", "last_name", "phone", "device_id", "jurisdiction_id"):
        for value in junk if key in parsed else text_junk:
            fields = {"service_code": "land_lease_dispute", "lat": LAT, "long": LON, key: value}
            if key in ("address_string", "address_id"):
                fields.pop("lat"), fields.pop("long")
            r = http.post("/requests.json", data=fields)
            assert r.status_code < 500, (key, value, r.text)
            if r.status_code >= 400:
                _errors(r, r.status_code)
    day = _window(FIXED_NOW - timedelta(days=1), FIXED_NOW)  # keeps the answers that succeed small
    for key in ("service_request_id", "service_code", "start_date", "end_date", "status", "jurisdiction_id"):
        for value in junk:
            r = http.get("/requests.json", params={**day, key: value})
            assert r.status_code in (200, 400, 404), (key, value, r.text)
            if r.status_code != 200:
                _errors(r, r.status_code)
    for value in ["abc", "0", "-1", "1.5", "99999999999999999999999", "%27%20OR%201=1", "🐍", "1;2"]:
        _errors(http.get(f"/requests/{value}.json"), 404, "not found")
    _errors(http.get("/services.csv"), 400, "format")
    _errors(http.get("/requests/1.yaml"), 400, "format")
    _errors(http.get("/tokens/abc.json"), 404)
    _errors(http.get("/no/such/thing"), 404)
    _errors(http.delete("/requests.json"), 404)


def test_hostile_text_is_stored_as_given_and_comes_back_byte_identical(
    http: httpx.Client, api: tuple[str, Any], places: Iterator[tuple[float, float]]
) -> None:
    _, store = api
    texts = [
        "'; DROP TABLE cases; --",
        '<script>alert("x")</script><img src=x onerror=alert(1)>',
        "Robert'); DELETE FROM cases WHERE ('1'='1",
        "蛇🐍🔥 עברית \u202eRTL\u202c zero\u200bwidth Ω≈ç√ &amp; &lt;b&gt; ]]> <![CDATA[x]]>",
        "line one\nline two\ttabbed \\ backslash \" quote %s {0} ${x} %00",
    ]
    for i, text in enumerate(texts):
        lon, lat = next(places)
        fields = {"service_code": "fraud_lead", "lat": str(lat), "long": str(lon), "description": text,
                  "address_string": text[:200], "first_name": text[:60], "last_name": "X"}  # fmt: skip
        r = http.post("/requests.json", data=fields) if i % 2 else http.post("/requests.json", json=fields)
        rid = _created(r)
        req = http.get(f"/requests/{rid}.json")
        assert req.json()[0]["description"] == text and req.json()[0]["address"] == text[:200]
        assert json.dumps(text, ensure_ascii=False)[1:-1].encode() in req.content  # the very bytes, not \u-escaped
        case = cs.get_case(store, int(rid))
        assert case["description"] == text and case["reporter_name"] == f"{text[:60].strip()} X"
        x = http.get(f"/requests/{rid}.xml")
        assert b"<script>" not in x.content  # escaped in XML ...
        assert ET.fromstring(x.content).findtext("request/description") == text  # ... and the same text
    assert store.count("cases") > 5000  # the table is still there
    lon, lat = next(places)
    rid = _created(_post(http, service_code="fraud_lead", lat=lat, long=lon, description="a\x00b\x07c"))
    assert http.get(f"/requests/{rid}.json").json()[0]["description"] == "abc"  # control characters are dropped
    assert b"\x07" not in http.get(f"/requests/{rid}.xml").content


def test_description_limit_and_body_limit(
    http: httpx.Client, api: tuple[str, Any], places: Iterator[tuple[float, float]]
) -> None:
    lon, lat = next(places)
    _errors(_post(http, service_code="flooding", lat=lat, long=lon, description="水" * (cs.MAX_DESCRIPTION + 1)), 400,
            str(cs.MAX_DESCRIPTION))  # fmt: skip
    rid = _created(_post(http, service_code="flooding", lat=lat, long=lon, description="水" * cs.MAX_DESCRIPTION))
    assert len(http.get(f"/requests/{rid}.json").json()[0]["description"]) == cs.MAX_DESCRIPTION
    r = http.post("/requests.json", data={"service_code": "flooding", "description": "x" * 100_000})
    _errors(r, 413, "bytes")
    chunks = iter([b"service_code=flooding&description=", b"x" * 50_000, b"x" * 50_000])  # no Content-Length
    r = http.post("/requests.json", content=chunks, headers={"content-type": "application/x-www-form-urlencoded"})
    _errors(r, 413, "bytes")


def test_api_keys_guard_posting_only(
    api: tuple[str, Any], places: Iterator[tuple[float, float]], token: str
) -> None:
    """The api_key is an API token that may report cases; reading needs none."""
    base, store = api
    lon, lat = next(places)
    fields = {"service_code": "public_order", "lat": lat, "long": lon, "description": "夜间有人聚集"}
    viewer = api_token(store, role="viewer")  # a valid token whose role may not report
    with httpx.Client(base_url=base, timeout=30) as bare:  # no Authorization header
        r = _post(bare, **fields)
        _errors(r, 401, "api_key")
        assert r.headers["www-authenticate"].startswith("Bearer")
        _errors(_post(bare, **fields, api_key="wrong"), 401, "api_key")
        _errors(_post(bare, api_key="wrong"), 401, "api_key")  # the key is checked before anything else
        _errors(_post(bare, **fields, api_key=viewer), 403, "api_key")
        x = bare.post("/requests.xml", data={"api_key": "wrong"})
        assert x.status_code == 401 and x.text.startswith("<?xml") and "<errors>" in x.text
        assert bare.get("/services.json").status_code == 200  # reading stays open
        assert bare.get("/requests.json").status_code == 200
        assert bare.get("/discovery.json").json()["key_service"] == ""
        rid = _created(_post(bare, **fields, api_key=token))
        r = bare.post("/requests.json", params={"api_key": token}, data={k: str(v) for k, v in fields.items()})
        assert _created(r) == rid  # the same report again: merged
        r = bare.post("/requests.json", json={**fields, "api_key": token})
        assert _created(r) == rid
        # the legacy allow-list from before tokens, when still set, applies on top of the token
        store.set_setting(o3.SETTING_API_KEYS, f"key-one, {token}")
        try:
            assert "api_key" in bare.get("/discovery.json").json()["key_service"]
            other = api_token(store, role="department")
            _errors(_post(bare, **fields, api_key=other), 403, "api_key")
            _errors(_post(bare, **fields, api_key="key-one"), 401, "api_key")  # not a token
            assert _created(_post(bare, **fields, api_key=token)) == rid
        finally:
            store.set_setting(o3.SETTING_API_KEYS, "")


def test_jurisdiction_id_is_ignored_unless_configured(http: httpx.Client, api: tuple[str, Any]) -> None:
    _, store = api
    assert http.get("/services.json", params={"jurisdiction_id": "anything"}).status_code == 200
    store.set_setting(o3.SETTING_JURISDICTION, "tieling.example.cn")
    try:
        assert http.get("/services.json", params={"jurisdiction_id": "tieling.example.cn"}).status_code == 200
        assert http.get("/services.json").status_code == 200
        _errors(http.get("/services.json", params={"jurisdiction_id": "other.example"}), 404, "jurisdiction_id")
        _errors(http.get("/requests.json", params={"jurisdiction_id": "other.example"}), 404, "jurisdiction_id")
        _errors(http.get("/requests/1.json", params={"jurisdiction_id": "other.example"}), 404, "jurisdiction_id")
        _errors(http.get("/services/noise.json", params={"jurisdiction_id": "x"}), 404, "jurisdiction_id")
        _errors(_post(http, service_code="noise", lat=LAT, long=LON, jurisdiction_id="x"), 404, "jurisdiction_id")
    finally:
        store.set_setting(o3.SETTING_JURISDICTION, "")


# ----------------------------------------------------------------------------- reading requests


def _window(start: Any, end: Any) -> dict[str, str]:
    return {"start_date": _iso_utc(start), "end_date": _iso_utc(end)}


def test_request_filters(http: httpx.Client, api: tuple[str, Any]) -> None:
    _, store = api
    start, end = FIXED_NOW - timedelta(days=30), FIXED_NOW
    cases = store.read("cases", columns=["id", "category", "state", "reported_at"], geometry=False)
    inside = cases[(cases["reported_at"] >= pd.Timestamp(start)) & (cases["reported_at"] <= pd.Timestamp(end))]

    def ids(params: dict[str, str]) -> list[str]:
        r = http.get("/requests.json", params=params)
        assert r.status_code == 200, r.text
        return [x["service_request_id"] for x in r.json()]

    def expect(frame: pd.DataFrame) -> list[str]:
        return [str(i) for i in frame.sort_values(["reported_at", "id"], ascending=False)["id"]]

    assert ids(_window(start, end)) == expect(inside)
    closed = inside[inside["state"].isin(cs.FINAL_STATES)]
    opened = inside[inside["state"].isin(cs.OPEN_STATES)]
    assert len(closed) and len(opened)
    assert ids({**_window(start, end), "status": "closed"}) == expect(closed)
    assert ids({**_window(start, end), "status": "open"}) == expect(opened)
    assert ids({**_window(start, end), "status": "open,closed"}) == expect(inside)
    assert ids({**_window(start, end), "status": "OPEN"}) == expect(opened)
    noise = inside[inside["category"] == "noise"]
    assert ids({**_window(start, end), "service_code": "noise"}) == expect(noise)
    two = inside[inside["category"].isin(["noise", "heating"])]
    assert ids({**_window(start, end), "service_code": "noise,heating"}) == expect(two)
    r = http.get("/requests.json", params=[*_window(start, end).items(), ("service_code", "noise"),
                                           ("service_code", "heating")])  # declared twice  # fmt: skip
    assert [x["service_request_id"] for x in r.json()] == expect(two)
    both = noise[noise["state"].isin(cs.OPEN_STATES)]
    assert ids({**_window(start, end), "service_code": "noise", "status": "open"}) == expect(both)

    # end_date is inclusive; a start_date alone covers the 90 days after it; an end_date alone the 90 before
    last = inside.sort_values("reported_at").iloc[-1]
    assert str(int(last["id"])) in ids(_window(last["reported_at"], last["reported_at"]))
    assert ids({"start_date": _iso_utc(start)}) == expect(
        cases[(cases["reported_at"] >= pd.Timestamp(start)) & (cases["reported_at"] <= pd.Timestamp(start) + pd.Timedelta(days=90))]
    )  # fmt: skip
    assert ids({"end_date": _iso_utc(end)}) == expect(
        cases[(cases["reported_at"] >= pd.Timestamp(end) - pd.Timedelta(days=90)) & (cases["reported_at"] <= pd.Timestamp(end))]
    )  # fmt: skip
    # offsets and local dates: the same instant written three ways
    local = pd.Timestamp(end).tz_convert(TZ)
    assert ids({"start_date": _iso_utc(start), "end_date": local.isoformat()}) == expect(inside)
    assert ids({"start_date": _iso_utc(start), "end_date": local.isoformat().replace("+", " ")}) == expect(inside)
    assert ids({"start_date": _iso_utc(start), "end_date": local.strftime("%Y-%m-%dT%H:%M:%S")}) == expect(inside)

    # service_request_id overrides every other filter
    some = [str(i) for i in cases["id"].iloc[[0, 5, 100]]]  # years old, of any category
    got = ids({"service_request_id": ",".join([*some, "99999999", "abc"]), "service_code": "noise", "status": "open",
               **_window(start, end)})  # fmt: skip
    assert sorted(got) == sorted(some)

    for params, needle in [
        ({"status": "pending"}, "status"),
        ({"service_code": "no_such_code"}, "no_such_code"),
        ({"start_date": "yesterday"}, "start_date"),
        ({"start_date": "now"}, "start_date"),
        ({"start_date": "2026-13-45T00:00:00Z"}, "start_date"),
        ({"end_date": "0001-01-01T00:00:00Z"}, "end_date"),
        ({"start_date": "2026-01-01T00:00:00Z", "end_date": "2025-01-01T00:00:00Z"}, "before"),
        ({"start_date": "2025-01-01T00:00:00Z", "end_date": "2026-01-01T00:00:00Z"}, "90 days"),
        ({"service_request_id": ",".join(str(i) for i in range(1, 1100))}, "1000"),
    ]:
        _errors(http.get("/requests.json", params=params), 400, needle)
    x = http.get("/requests.xml", params={"start_date": "nope"})
    assert x.status_code == 400 and ET.fromstring(x.content).tag == "errors"


def test_default_window_is_the_last_90_days_and_at_most_1000_newest_first(
    http: httpx.Client, api: tuple[str, Any]
) -> None:
    _, store = api
    base = pd.Timestamp("2021-03-01T00:00:00Z")  # before the demo city's first case
    n = 1100
    rows = gpd.GeoDataFrame(
        {
            "category": ["noise"] * n,
            "description": [f"批量 {i}" for i in range(n)],
            "source": ["walk_in"] * n,
            "state": ["closed"] * n,
            "reported_at": [base + pd.Timedelta(minutes=i) for i in range(n)],
        },
        geometry=[Point(123.84, 42.30)] * n,
        crs=4326,
    )
    store.write("cases", rows)
    got = http.get("/requests.json", params=_window(base, base + pd.Timedelta(days=2))).json()
    assert len(got) == o3.MAX_RESULTS
    assert [r["description"] for r in got[:2]] == [f"批量 {n - 1}", f"批量 {n - 2}"]  # newest first
    times = [_ts(r["requested_datetime"]) for r in got]
    assert times == sorted(times, reverse=True)

    default = http.get("/requests.json").json()  # the last 90 days from now
    now = cs.utc()
    assert default and all(now - pd.Timedelta(days=90, seconds=5) <= _ts(r["requested_datetime"]) <= now for r in default)
    assert not any(r["description"].startswith("批量") for r in default if r["description"])


def test_status_expected_and_agency_of_demo_cases(http: httpx.Client, api: tuple[str, Any]) -> None:
    _, store = api
    cases = store.read("cases", geometry=False)
    cases = cases[cases["township_code"].notna() & (cases["source"] != "open311")]  # the demo's own
    picks = {state: cases[cases["state"] == state].sort_values("id").iloc[-1] for state in cs.OPEN_STATES + cs.FINAL_STATES
             if (cases["state"] == state).any()}  # fmt: skip
    assert {"dispatched", "resolved", "verified", "closed", "rejected", "reported"} <= set(picks)
    got = {r["service_request_id"]: r for r in http.get(
        "/requests.json", params={"service_request_id": ",".join(str(int(p["id"])) for p in picks.values())}).json()}  # fmt: skip
    units = store.read("admin_units", columns=["code", "name"], geometry=False).set_index("code")["name"]
    for state, row in picks.items():
        req = got[str(int(row["id"]))]
        assert req["status"] == ("closed" if state in cs.FINAL_STATES else "open"), state
        if not pd.isna(row["deadline_at"]):
            assert _ts(req["expected_datetime"]) == row["deadline_at"], state
        if not pd.isna(row["assignee_id"]):
            unit = store.read("staff", where={"id": int(row["assignee_id"])}, columns=["unit_code"])["unit_code"].iloc[0]
            assert req["agency_responsible"] == units[unit], state
        else:
            assert req["agency_responsible"] == units[row["township_code"]], state
    assert got[str(int(picks["rejected"]["id"]))]["expected_datetime"] is None
    assert got[str(int(picks["resolved"]["id"]))]["status"] == "open"  # open until closed
    assert got[str(int(picks["verified"]["id"]))]["status"] == "open"
    waiting = got[str(int(picks["reported"]["id"]))]
    cat = cs.category(store, str(picks["reported"]["category"]))
    later = sla.deadline(cs.utc(), float(cat["time_limit"]), str(cat["limit_unit"]), sla.calendar(store))
    assert cs.utc() < _ts(waiting["expected_datetime"]) <= later  # not dispatched: the limit counted from now

    # a status note written by the center is what the public sees
    cid = int(picks["dispatched"]["id"])
    store.update("cases", {"id": cid}, {"status_notes": "已派网格员前往 <现场>"})
    assert http.get(f"/requests/{cid}.json").json()[0]["status_notes"] == "已派网格员前往 <现场>"


def test_every_case_error_code_has_an_open311_status() -> None:
    seen = {}
    for code in ("invalid", "out_of_region", "unknown_category", "not_found", "bad_state", "conflict"):
        err = o3.from_case_error(cs.CaseError("x", code=code, field="lat"))
        seen[code] = err.status
        assert err.description
    assert seen == {"invalid": 400, "out_of_region": 400, "unknown_category": 400, "not_found": 404,
                    "bad_state": 409, "conflict": 409}  # fmt: skip
    assert o3.from_case_error(cs.CaseConflict("lost")).status == 409
    assert o3.from_case_error(cs.CaseNotFound("gone")).status == 404
