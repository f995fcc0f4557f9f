"""Property-based tests (hypothesis) for the parsing code: GPS fix ingest, hotline cell parsing,
stream URL checks and HTML escaping.

Every test has bounded, derandomized settings so CI runs the same examples every time.
"""

from __future__ import annotations

import html
import math
from typing import Any
from urllib.parse import urlsplit

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console.player import MAX_URL_CHARS, playable
from layers._html import esc
from services import hotline
from services.ingest import Fix, Rejected, parse_batch_item, parse_osmand, parse_time, parse_traccar_json


def _settings(n: int) -> settings:
    """Bounded and reproducible: ``n`` examples, no per-example deadline, fixed example order."""
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


# --------------------------------------------------------------------------------------------
# services.ingest
# --------------------------------------------------------------------------------------------

FIELD_NAMES = [
    "id", "deviceid", "device_id", "lat", "lon", "location", "timestamp", "speed", "bearing", "heading",
    "altitude", "accuracy", "batt", "battery", "charge", "charging", "coords", "latitude", "longitude",
    "level", "is_charging", "LAT", "Lon",
]  # fmt: skip

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(10**400), max_value=10**400),  # beyond float range, as JSON allows
    st.floats(),
    st.text(max_size=30),
    st.floats(-200.0, 200.0).map(repr),  # numbers as query strings carry them
    st.tuples(st.floats(-200.0, 200.0), st.floats(-200.0, 200.0)).map(lambda p: f"{p[0]!r},{p[1]!r}"),
    st.sampled_from(
        ["nan", "inf", "-inf", "1e400", "now", "today", "2024-02-30", "1700000000", "true", "  "]
    ),
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=5), inner, max_size=6)
    ),
    max_leaves=8,
)
field_dicts = st.dictionaries(st.sampled_from(FIELD_NAMES) | st.text(max_size=8), json_values, max_size=10)


def _check_fix(fix: Fix) -> None:
    """What every accepted fix guarantees."""
    assert (
        isinstance(fix.device_id, str)
        and 0 < len(fix.device_id) <= 64
        and fix.device_id == fix.device_id.strip()
    )
    assert math.isfinite(fix.lat) and -90.0 <= fix.lat <= 90.0
    assert math.isfinite(fix.lon) and -180.0 <= fix.lon <= 180.0
    assert isinstance(fix.ts, pd.Timestamp) and str(fix.ts.tz) == "UTC" and fix.ts == fix.ts.floor("s")
    for value, lo, hi in [
        (fix.speed, 0.0, 500.0),
        (fix.bearing, 0.0, 360.0),
        (fix.altitude, -1000.0, 10000.0),
        (fix.accuracy, 0.0, 100000.0),
        (fix.battery, 0.0, 100.0),
    ]:
        assert value is None or (math.isfinite(value) and lo <= value <= hi)
    assert fix.charging in (None, True, False)


@_settings(100)
@given(field_dicts)
def test_parse_osmand_only_rejects(fields: dict[str, Any]) -> None:
    try:
        fix = parse_osmand(fields)
    except Rejected as exc:
        assert exc.status in (400, 403, 422) and str(exc)
    else:
        _check_fix(fix)


@_settings(100)
@given(
    st.one_of(
        json_values,
        st.fixed_dictionaries(
            {
                "device_id": json_values,
                "location": st.fixed_dictionaries(
                    {"timestamp": json_values, "coords": json_values, "battery": json_values}
                ),
            }
        ),
        st.fixed_dictionaries(
            {
                "id": json_values,
                "location": st.fixed_dictionaries(
                    {"timestamp": json_values, "coords": field_dicts, "battery": field_dicts}
                ),
            }
        ),
    )
)
def test_parse_traccar_json_only_rejects(body: Any) -> None:
    try:
        fix = parse_traccar_json(body)
    except Rejected as exc:
        assert exc.status in (400, 403, 422) and str(exc)
    else:
        _check_fix(fix)


@_settings(100)
@given(st.one_of(json_values, field_dicts))
def test_parse_batch_item_only_rejects(item: Any) -> None:
    try:
        fix = parse_batch_item(item)
    except Rejected as exc:
        assert exc.status in (400, 403, 422) and str(exc)
    else:
        _check_fix(fix)


@_settings(100)
@given(json_values)
def test_parse_time_only_rejects(value: Any) -> None:
    try:
        ts = parse_time(value)
    except Rejected as exc:
        assert exc.status in (400, 422)
    else:
        assert str(ts.tz) == "UTC" and not pd.isna(ts)


device_ids = st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=64).filter(
    lambda s: bool(s.strip())
)
lats = st.floats(-90.0, 90.0)
lons = st.floats(-180.0, 180.0)
unix_seconds = st.integers(0, 4_102_444_800)  # up to 2100


@st.composite
def valid_fixes(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "device": draw(device_ids),
        "lat": draw(lats),
        "lon": draw(lons),
        "ts": draw(unix_seconds),
        "speed": draw(st.none() | st.floats(0.0, 500.0)),
        "bearing": draw(st.none() | st.floats(0.0, 360.0)),
        "battery": draw(st.none() | st.floats(0.0, 100.0)),
        "charging": draw(st.none() | st.booleans()),
    }


def _expect(fix: Fix, v: dict[str, Any]) -> None:
    _check_fix(fix)
    assert fix.device_id == v["device"].strip()
    assert fix.lat == v["lat"] and fix.lon == v["lon"]
    assert fix.ts == pd.Timestamp(v["ts"], unit="s", tz="UTC")
    assert fix.bearing == v["bearing"]
    assert fix.charging == v["charging"]


@_settings(120)
@given(valid_fixes())
def test_valid_batch_items_parse_to_the_same_values(v: dict[str, Any]) -> None:
    item = {
        "device_id": v["device"], "lat": v["lat"], "lon": v["lon"], "timestamp": v["ts"],
        "speed": v["speed"], "bearing": v["bearing"], "battery": v["battery"], "charging": v["charging"],
    }  # fmt: skip
    fix = parse_batch_item(item)
    _expect(fix, v)
    assert fix.speed == v["speed"] and fix.battery == v["battery"]


@_settings(120)
@given(valid_fixes())
def test_valid_traccar_bodies_parse_to_the_same_values(v: dict[str, Any]) -> None:
    body = {
        "device_id": v["device"],
        "location": {
            "timestamp": pd.Timestamp(v["ts"], unit="s", tz="UTC").isoformat(),
            "coords": {
                "latitude": v["lat"],
                "longitude": v["lon"],
                "speed": v["speed"],
                "heading": v["bearing"],
            },
            "battery": {
                "level": None if v["battery"] is None else v["battery"] / 100.0,
                "is_charging": v["charging"],
            },
        },
    }
    fix = parse_traccar_json(body)
    _expect(fix, v)
    assert fix.speed == v["speed"]
    if v["battery"] is not None:
        assert fix.battery is not None and math.isclose(fix.battery, v["battery"], abs_tol=1e-9)
    assert parse_batch_item(body) == fix  # the batch endpoint takes Traccar bodies too


@_settings(120)
@given(valid_fixes(), st.booleans())
def test_valid_osmand_query_strings_parse_to_the_same_values(v: dict[str, Any], as_location: bool) -> None:
    # A query string carries text only; repr() of a float parses back to the same float.
    fields: dict[str, Any] = {"id": v["device"], "timestamp": str(v["ts"])}
    if as_location:
        fields["location"] = f"{v['lat']!r},{v['lon']!r}"
    else:
        fields["lat"], fields["lon"] = repr(v["lat"]), repr(v["lon"])
    if v["bearing"] is not None:
        fields["bearing"] = repr(v["bearing"])
    if v["charging"] is not None:
        fields["charge"] = "true" if v["charging"] else "false"
    _expect(parse_osmand(fields), v)


# --------------------------------------------------------------------------------------------
# services.hotline cell parsing
# --------------------------------------------------------------------------------------------

cell_texts = st.one_of(
    st.text(max_size=30),
    st.from_regex(
        r"[0-9]{4}[年/.\-][0-9]{1,2}[月/.\-][0-9]{1,2}日?( [0-9]{1,2}[:时点][0-9]{1,2}分?)?", fullmatch=True
    ),
    st.from_regex(r"[0-9]{5}(\.[0-9]{1,6})?|[0-9]{14}", fullmatch=True),
    st.from_regex(r"-?[0-9]{1,3}(\.[0-9]{1,8})?°?[,;，； ]+-?[0-9]{1,3}(\.[0-9]{1,8})?°?", fullmatch=True),
)


@_settings(150)
@given(cell_texts)
def test_hotline_time_returns_utc_or_value_error(text: str) -> None:
    try:
        ts = hotline._time(text, "Asia/Shanghai")
    except ValueError:
        return
    assert ts is None or (str(ts.tz) == "UTC" and not pd.isna(ts))
    assert (ts is None) == (not text)


@_settings(150)
@given(cell_texts)
def test_hotline_number_is_finite_or_none(text: str) -> None:
    value = hotline._number(text)
    assert value is None or math.isfinite(value)


@_settings(100)
@given(cell_texts, cell_texts, cell_texts)
def test_hotline_lonlat_never_raises(lon: str, lat: str, lonlat: str) -> None:
    got = hotline._lonlat({"lon": lon, "lat": lat, "lonlat": lonlat})
    assert got == (None, None) or all(isinstance(v, float) and math.isfinite(v) for v in got)
    assert got != (0.0, 0.0)


@_settings(200)
@given(st.floats(-180.0, 180.0), st.floats(-90.0, 90.0), st.sampled_from([",", ", ", ";", " ", "，"]))
def test_hotline_lonlat_reads_what_was_written(lon: float, lat: float, sep: str) -> None:
    if lon == 0 and lat == 0:
        return
    assert hotline._lonlat({"lon": repr(lon), "lat": repr(lat), "lonlat": ""}) == (lon, lat)
    assert hotline._lonlat({"lon": "", "lat": "", "lonlat": f"{lon!r}{sep}{lat!r}"}) == (lon, lat)


# --------------------------------------------------------------------------------------------
# console.player.playable
# --------------------------------------------------------------------------------------------

url_like = st.builds(
    lambda scheme, sep, host, port, path, suffix, query: f"{scheme}{sep}{host}{port}{path}{suffix}{query}",
    st.sampled_from(
        ["http", "https", "HTTP", "HtTpS", "rtsp", "rtmp", "javascript", "data", "ftp", "file", "", "/"]
    ),
    st.sampled_from(["://", ":", "//", "", ":///"]),
    st.sampled_from(["cam.local", "10.0.0.5", "[::1]", "user:pw@cam", "", "exa mple", "a<b", "%00"]),
    st.sampled_from(["", ":8080", ":0", ":99999", ":x"]),
    st.sampled_from(["", "/", "/live/cam1", "/cam/whep", "/whep/", "/a b", "/x\u2028y"]),
    st.sampled_from(["", ".m3u8", ".mp4", ".webm", ".ogv", ".flv", ".M3U8"]),
    st.sampled_from(["", "?token=1", "#frag", '?q="x"']),
)


@_settings(300)
@given(st.one_of(st.text(max_size=60), url_like, st.none(), st.integers(), st.binary(max_size=10)))
def test_playable_never_raises_and_accepts_only_http_urls_or_local_paths(url: Any) -> None:
    ok, reason = playable(url)
    assert isinstance(ok, bool) and isinstance(reason, str)
    assert ok == (reason == "")
    if ok:
        assert isinstance(url, str) and len(url) <= MAX_URL_CHARS
        scheme = urlsplit(url).scheme.lower()
        assert scheme in ("http", "https") or (
            scheme == "" and url.startswith("/") and not url.startswith("//")
        )
        assert not any(ch in url for ch in '<>"`\\') and not any(ch.isspace() for ch in url)
        assert "@" not in urlsplit(url).netloc


# --------------------------------------------------------------------------------------------
# layers._html.esc
# --------------------------------------------------------------------------------------------


@_settings(300)
@given(st.one_of(st.text(), st.integers(), st.floats(), st.none(), st.lists(st.text(max_size=5), max_size=3)))
def test_esc_output_is_markup_free(value: Any) -> None:
    out = esc(value)
    assert "<" not in out and ">" not in out and '"' not in out and "'" not in out
    if isinstance(value, str):
        assert html.unescape(out) == value  # escaping loses nothing
