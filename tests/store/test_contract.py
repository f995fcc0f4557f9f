"""The Store contract: one suite, run against SQLiteStore and PostGISStore (fixture ``store``)."""

from __future__ import annotations

import math
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import pytest
import shapely
from shapely.geometry import MultiPolygon, Point, Polygon, box

from store import ConflictError, Range, StoreError, schema
from store.migrations import latest_version
from tests.store.sample import (
    HOSTILE,
    LAT,
    LON,
    T0,
    assert_rows_equal,
    at,
    by_key,
    gdf,
    pt,
    samples,
    square,
)

# --------------------------------------------------------------------------- helpers


def points_frame(coords: list[tuple[float, float]], start_id: int = 1, kind: str = "risk_point") -> gpd.GeoDataFrame:
    n = len(coords)
    return gdf(
        {
            "id": list(range(start_id, start_id + n)),
            "kind": [kind] * n,
            "name": [f"p{i}" for i in range(start_id, start_id + n)],
        },
        [Point(x, y) for x, y in coords],
    )


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    r = 6_371_008.8
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * r * math.asin(math.sqrt(a))


def ids(frame: pd.DataFrame, col: str = "id") -> list[Any]:
    return sorted(frame[col].tolist())


def write_all(store: Any) -> dict[str, pd.DataFrame]:
    frames = samples()
    with store.transaction():
        for name, frame in frames.items():
            assert store.write(name, frame) == len(frame)
    return frames


# --------------------------------------------------------------------------- migrations


def test_migrations_idempotent_and_recorded(store: Any) -> None:
    assert store.schema_version() == latest_version()
    assert store.migrate() == []
    assert store.migrate() == []
    applied = store.migrations_applied()
    assert applied["version"].tolist() == list(range(1, latest_version() + 1))
    assert str(applied["applied_at"].dtype) == "datetime64[ns, UTC]"
    assert (applied["applied_at"] <= pd.Timestamp.now(tz="UTC") + pd.Timedelta(seconds=5)).all()
    # every declared table exists and is empty
    for name in schema.TABLES:
        assert store.count(name) == 0, name


def test_dialect_and_url(store: Any) -> None:
    assert store.dialect in ("sqlite", "postgis")
    assert isinstance(store.url, str) and store.url


# --------------------------------------------------------------------------- round trip


def test_roundtrip_every_table(store: Any) -> None:
    frames = samples()
    assert set(frames) == set(schema.TABLES), "sample rows must cover every table"
    write_all(store)
    for name, written in frames.items():
        got = store.read(name)
        t = schema.table(name)
        auto = [c.name for c in t.columns if c.autoincrement]
        if auto:
            got = got.sort_values(auto).reset_index(drop=True)
            assert got[auto[0]].is_unique and got[auto[0]].is_monotonic_increasing
        else:
            got = by_key(got, name)
            written = by_key(written, name)
        assert_rows_equal(name, written, got)
        # shape of what comes back
        if t.geometry_column is not None:
            assert isinstance(got, gpd.GeoDataFrame)
            assert got.geometry.name == "geometry"
            assert got.crs is not None and got.crs.to_epsg() == 4326
            assert list(got.columns) == [c.name for c in t.columns if not c.is_geometry] + ["geometry"]
        else:
            assert not isinstance(got, gpd.GeoDataFrame)
            assert list(got.columns) == list(t.column_names)


def test_dtypes(store: Any) -> None:
    write_all(store)
    pos = store.read("positions", order_by=["staff_id", "ts"])
    assert str(pos["ts"].dtype) == "datetime64[ns, UTC]"
    assert pos["staff_id"].dtype == "int64"
    assert pos["speed"].dtype == "float64"
    assert pd.isna(pos["speed"].iloc[1])
    assert str(pos["jump"].dtype) == "boolean"  # has a NULL
    staff = store.read("staff", where={"id": [101, 102]}, order_by=["id"])
    assert staff["on_duty"].dtype == bool  # no NULL: plain bool
    assert staff["on_duty"].tolist() == [True, False]
    units = store.read("admin_units", order_by=["code"])
    assert str(units["households"].dtype) == "Int64"  # has a NULL
    assert units["households"].isna().tolist() == [False, False, True]
    cases = store.read("cases", order_by=["id"])
    assert cases["closed_at"].isna().tolist() == [True, True, False]
    assert cases.geometry.isna().tolist() == [False, False, True]


def test_hostile_and_unicode_text_verbatim(store: Any) -> None:
    names = [*HOSTILE, "铁岭市银州区红旗街道", "emoji 😀", "", " leading and trailing "]
    frame = pd.DataFrame({"key": [f"k{i}" for i in range(len(names))], "value": names})
    store.write("settings", frame)
    got = store.read("settings", order_by=["key"])
    assert got["value"].tolist() == names
    for name in names:
        assert store.count("settings", where={"value": name}) == 1
    # the tables are all still there
    assert store.count("grids") == 0
    assert store.get_setting("k1") == "'; DROP TABLE grids; --"


def test_timestamps_are_utc_instants(store: Any) -> None:
    shanghai = pd.Timestamp("2026-11-20 17:30:15.750", tz="Asia/Shanghai")
    naive = pd.Timestamp("2026-11-20 09:30:15")  # taken as UTC
    text = "2026-11-20T09:30:15+00:00"
    frame = pd.DataFrame(
        {
            "case_id": [1, 2, 3],
            "ts": pd.Series([shanghai, naive, text], dtype=object),
            "action": ["a", "b", "c"],
        }
    )
    store.write("case_events", frame)
    got = store.read("case_events", order_by=["case_id"])
    expected = pd.Timestamp("2026-11-20 09:30:15", tz="UTC")
    assert got["ts"].tolist() == [expected] * 3
    # where on a timestamp, given in any zone
    assert store.count("case_events", where={"ts": expected.tz_convert("Asia/Shanghai")}) == 3
    assert store.count("case_events", where={"ts": datetime(2026, 11, 20, 9, 30, 15, tzinfo=UTC)}) == 3
    assert store.count("case_events", where={"ts": [expected, expected + pd.Timedelta(hours=1)]}) == 3


def test_timestamp_order_and_limit(store: Any) -> None:
    write_all(store)
    got = store.read("positions", order_by=["-ts"], limit=2)
    assert got["ts"].tolist() == sorted(got["ts"].tolist(), reverse=True)
    assert got["ts"].iloc[0] == pd.Timestamp(T0 + timedelta(hours=1))
    assert len(store.read("positions", limit=0)) == 0
    # NULLs last, both directions
    got = store.read("cases", order_by=["closed_at", "id"])
    assert got["closed_at"].isna().tolist() == [False, True, True]
    got = store.read("cases", order_by=["-closed_at", "id"])
    assert got["closed_at"].isna().tolist() == [False, True, True]


def test_geometry_kinds(store: Any) -> None:
    # a Polygon goes into a MULTIPOLYGON column as a one-part MultiPolygon
    store.write("water", gdf({"id": [1], "kind": ["lake"]}, [square(0, 0, 50)]))
    got = store.read("water")
    assert got.geometry.iloc[0].geom_type == "MultiPolygon"
    # a Point into a MULTIPOLYGON column is refused
    with pytest.raises(StoreError, match="MULTIPOLYGON"):
        store.write("water", gdf({"id": [2], "kind": ["lake"]}, [pt(0, 0)]))
    # Z is dropped, empty geometry is NULL
    store.write(
        "facilities",
        gdf({"id": [1, 2], "kind": ["school", "school"], "name": ["z", "empty"]}, [Point(LON, LAT, 55.0), Point()]),
    )
    got = store.read("facilities", order_by=["id"])
    assert not got.geometry.iloc[0].has_z and got.geometry.iloc[0].equals(Point(LON, LAT))
    assert got.geometry.iloc[1] is None
    assert store.count("facilities", where={"geom": None}) == 1


def test_empty_write_and_read(store: Any) -> None:
    assert store.write("grids", samples()["grids"].iloc[0:0]) == 0
    got = store.read("grids")
    assert isinstance(got, gpd.GeoDataFrame) and len(got) == 0
    assert list(got.columns)[-1] == "geometry"
    assert len(store.read("staff")) == 0
    assert store.count("grids", bbox=(0, 0, 1, 1)) == 0


# --------------------------------------------------------------------------- bbox


def test_bbox_exact_on_edges(store: Any) -> None:
    minx, miny, maxx, maxy = 123.80, 42.28, 123.82, 42.30
    eps = 1e-9  # far below float32 precision (~1e-5 degrees here)
    coords = [
        (123.81, 42.29),  # 1 inside
        (minx, 42.29),  # 2 on the west edge
        (maxx, maxy),  # 3 on the north-east corner
        (minx - eps, 42.29),  # 4 just west
        (123.81, maxy + eps),  # 5 just north
        (maxx + eps, miny - eps),  # 6 just outside the south-east corner
        (124.5, 43.0),  # 7 far away
    ]
    store.write("facilities", points_frame(coords))
    got = store.read("facilities", bbox=(minx, miny, maxx, maxy))
    assert ids(got) == [1, 2, 3]
    assert store.count("facilities", bbox=(minx, miny, maxx, maxy)) == 3
    # a box that is a single point still finds the point on it
    assert ids(store.read("facilities", bbox=(maxx, maxy, maxx, maxy))) == [3]


def test_bbox_is_bounding_box_intersection(store: Any) -> None:
    # an L-shaped polygon whose bounding box covers the query box though the polygon does not
    ell = Polygon([at(0, 0), at(1000, 0), at(1000, 100), at(100, 100), at(100, 1000), at(0, 1000)])
    far = square(5000, 5000, 100)
    store.write("buildings", gdf({"id": [1, 2], "kind": ["house"] * 2, "households": [1, 1]}, [ell, far]))
    q = (*at(500, 500), *at(600, 600))
    assert ids(store.read("buildings", bbox=q)) == [1]
    x0, y0, x1, y1 = far.bounds
    assert ids(store.read("buildings", bbox=(x1, y1, x1 + 1, y1 + 1))) == [2]  # touching the corner
    assert ids(store.read("buildings", bbox=(x1 + 1e-9, y0, x1 + 1, y1))) == []


def test_bbox_matches_brute_force(store: Any) -> None:
    rng = np.random.default_rng(42)
    n = 400
    xs = LON + rng.uniform(-0.05, 0.05, n)
    ys = LAT + rng.uniform(-0.05, 0.05, n)
    sizes = rng.uniform(1e-5, 0.004, n)
    geoms = [box(x, y, x + s, y + s) for x, y, s in zip(xs, ys, sizes, strict=True)]
    store.write("buildings", gdf({"id": list(range(1, n + 1)), "kind": ["house"] * n, "households": [1] * n}, geoms))
    got_all = store.read("buildings")
    bounds = shapely.bounds(np.asarray(got_all.geometry))
    for _ in range(25):
        x0, y0 = LON + rng.uniform(-0.06, 0.05), LAT + rng.uniform(-0.06, 0.05)
        w, h = rng.uniform(0, 0.03, 2)
        q = (x0, y0, x0 + w, y0 + h)
        expect = got_all["id"][
            (bounds[:, 0] <= q[2]) & (bounds[:, 2] >= q[0]) & (bounds[:, 1] <= q[3]) & (bounds[:, 3] >= q[1])
        ]
        assert ids(store.read("buildings", bbox=q, columns=["id"])) == sorted(expect.tolist())
        assert store.count("buildings", bbox=q) == len(expect)


def test_bbox_with_where_and_bad_bbox(store: Any) -> None:
    write_all(store)
    everything = (LON - 1, LAT - 1, LON + 1, LAT + 1)
    assert store.count("grids", bbox=everything) == 3
    assert store.count("grids", bbox=everything, where={"kind": "dedicated"}) == 1
    for bad in [(1, 2, 3), (LON + 1, LAT, LON, LAT + 1), (float("nan"), 0, 1, 1), "abc"]:
        with pytest.raises(StoreError):
            store.read("grids", bbox=bad)
    with pytest.raises(StoreError, match="no geometry"):
        store.read("staff", bbox=everything)


def test_bulk_write_keeps_spatial_index_right(store: Any) -> None:
    """Large writes take the bulk path (index rebuild); the bbox answers must not change."""
    rng = np.random.default_rng(7)
    n = 25_000
    xs = LON + rng.uniform(-0.2, 0.2, n)
    ys = LAT + rng.uniform(-0.2, 0.2, n)
    frame = gdf(
        {  # one fix per staff member and second: (staff_id, ts) is the key
            "staff_id": np.arange(n) % 49 + 1,
            "ts": pd.Timestamp(T0) + pd.to_timedelta(np.arange(n) // 49 + 1, unit="s"),
            "speed": rng.uniform(0, 10, n),
        },
        list(shapely.points(xs, ys)),
    )
    assert store.write("positions", frame) == n
    # and a small append afterwards goes through the row-by-row path
    store.write("positions", gdf({"staff_id": [1], "ts": [T0]}, [Point(LON, LAT)]))
    q = (LON - 0.01, LAT - 0.01, LON + 0.013, LAT + 0.007)
    expect = int(((xs >= q[0]) & (xs <= q[2]) & (ys >= q[1]) & (ys <= q[3])).sum()) + 1
    assert store.count("positions", bbox=q) == expect
    assert len(store.read("positions", bbox=q)) == expect
    assert store.count("positions", where={"staff_id": list(range(1, 50))}) == n + 1
    # replace with a bigger frame, then a bbox query again
    store.write("positions", frame, mode="replace")
    assert store.count("positions") == n
    assert store.count("positions", bbox=q) == expect - 1
    if store.dialect == "sqlite":
        assert store.integrity_check() == ["ok"]


# --------------------------------------------------------------------------- where


def test_where_scalars_lists_and_null(store: Any) -> None:
    write_all(store)
    assert ids(store.read("cases", where={"state": "reported"})) == [1]
    assert ids(store.read("cases", where={"state": ["reported", "closed"]})) == [1, 3]
    assert ids(store.read("cases", where={"state": ("dispatched",)})) == [2]
    assert ids(store.read("cases", where={"state": []})) == []
    assert ids(store.read("cases", where={"grid_code": None})) == [3]
    assert ids(store.read("cases", where={"grid_code": ["211202001001002", None]})) == [2, 3]
    assert ids(store.read("cases", where={"urgency": 3})) == [2]
    assert ids(store.read("cases", where={"urgency": np.int64(3)})) == [2]
    assert ids(store.read("cases", where={"urgency": np.array([1, 3])})) == [1, 2]
    assert ids(store.read("cases", where={"category": "env.garbage", "state": "closed"})) == [3]
    assert ids(store.read("staff", where={"on_duty": True})) == [101]
    assert ids(store.read("staff", where={"on_duty": False})) == [102]
    assert ids(store.read("staff", where={"on_duty": None})) == [103]
    assert ids(store.read("positions", where={"speed": 0.0}), "staff_id") == [102]
    assert ids(store.read("cases", where={"description": "'; DROP TABLE grids; --"})) == [2]
    assert store.count("cases", where={"state": [f"s{i}" for i in range(600)] + ["closed"]}) == 1  # long IN list
    assert ids(store.read("staff", where={"id": pd.Series([101, 103])})) == [101, 103]


def test_read_columns(store: Any) -> None:
    write_all(store)
    got = store.read("grids", columns=["code", "households"], order_by=["code"])
    assert list(got.columns) == ["code", "households", "geometry"]  # geometry always comes along
    assert isinstance(got, gpd.GeoDataFrame)
    plain = store.read("grids", columns=["code"], geometry=False)
    assert list(plain.columns) == ["code"] and not isinstance(plain, gpd.GeoDataFrame)
    got = store.read("grids", columns=["geom", "code"])
    assert list(got.columns) == ["geometry", "code"]
    staff = store.read("staff", columns=["name"], order_by=["id"])
    assert staff["name"].tolist() == ["张伟", "李娜", "王芳"]


# --------------------------------------------------------------------------- names are checked


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.read("nope"),
        lambda s: s.read("grids; DROP TABLE grids"),
        lambda s: s.count("Grids"),
        lambda s: s.write("nope", pd.DataFrame({"a": [1]})),
        lambda s: s.read("grids", columns=["code", "nope"]),
        lambda s: s.read("grids", columns=['code" FROM grids; --']),
        lambda s: s.read("grids", where={"nope": 1}),
        lambda s: s.read("grids", where={"code = code OR 1=1 --": 1}),
        lambda s: s.read("grids", order_by=["nope"]),
        lambda s: s.read("grids", order_by=["code; DROP TABLE grids"]),
        lambda s: s.count("grids", where={"nope": None}),
        lambda s: s.write("grids", pd.DataFrame({"code": ["1"], "name": ["n"], "nope": [1]})),
        lambda s: s.update("grids", {"code": "1"}, {"nope": 1}),
        lambda s: s.update("grids", {"nope": "1"}, {"name": "x"}),
        lambda s: s.delete("grids", {"nope": 1}),
        lambda s: s.group_count("grids", ["nope"]),
        lambda s: s.group_sum("grids", ["kind"], "nope"),
        lambda s: s.group_sum("grids", ["kind"], "name"),  # not a number
        lambda s: s.nearest("nope", LON, LAT),
        lambda s: s.nearest("staff", LON, LAT),  # no geometry
        lambda s: list(s.iter_batches("nope")),
        lambda s: list(s.iter_batches("grids", columns=["nope"])),
        lambda s: s.write("grids", pd.DataFrame({"code": ["1"]}), mode="merge"),
    ],
)
def test_unknown_names_rejected(store: Any, call: Any) -> None:
    with pytest.raises(StoreError):
        call(store)
    assert store.count("grids") == 0


def test_delete_and_update_need_a_filter(store: Any) -> None:
    write_all(store)
    with pytest.raises(StoreError):
        store.delete("grids", {})
    with pytest.raises(StoreError):
        store.update("grids", {}, {"name": "x"})
    with pytest.raises(StoreError):
        store.update("grids", {"code": "211202001001001"}, {})
    assert store.count("grids") == 3


# --------------------------------------------------------------------------- CRS


@pytest.mark.parametrize("crs", [None, "EPSG:3857", "EPSG:4490", "EPSG:32651"])
def test_frame_without_4326_refused(store: Any, crs: str | None) -> None:
    frame = samples()["grids"]
    if crs is None:
        frame = gpd.GeoDataFrame(pd.DataFrame(frame.drop(columns="geometry")), geometry=list(frame.geometry))
        assert frame.crs is None
    else:
        frame = frame.set_crs(crs, allow_override=True)
    for mode in ("append", "replace", "upsert"):
        with pytest.raises(StoreError, match="CRS|EPSG:4326"):
            store.write("grids", frame, mode=mode)
    assert store.count("grids") == 0


def test_projected_coordinates_labelled_4326_refused(store: Any) -> None:
    frame = samples()["grids"].to_crs(32651).set_crs(4326, allow_override=True)
    with pytest.raises(StoreError, match="lon/lat"):
        store.write("grids", frame)
    assert store.count("grids") == 0


def test_plain_frame_with_geometries_refused(store: Any) -> None:
    frame = pd.DataFrame({"id": [1], "kind": ["school"], "name": ["x"], "geom": [Point(LON, LAT)]})
    with pytest.raises(StoreError, match="GeoDataFrame"):
        store.write("facilities", frame)
    # without geometry a plain frame is fine; geom stays NULL
    store.write("facilities", frame.drop(columns="geom"))
    assert store.read("facilities").geometry.iloc[0] is None


def test_bad_values_refused(store: Any) -> None:
    base = {"id": [1], "name": ["n"], "role": ["police"]}
    for col, bad in [("id", "abc"), ("on_duty", "yes"), ("id", 1.5)]:
        frame = pd.DataFrame({**base, col: [bad]})
        with pytest.raises(StoreError, match=col):
            store.write("staff", frame)
    with pytest.raises(StoreError, match="timestamp"):
        store.write("case_events", pd.DataFrame({"case_id": [1], "ts": ["not a time"], "action": ["x"]}))
    with pytest.raises(StoreError):
        store.write("staff", pd.DataFrame({"id": [1], "role": ["police"]}))  # name NOT NULL
    with pytest.raises(StoreError):
        store.write("staff", pd.DataFrame({"name": ["x"], "role": ["police"]}))  # no primary key
    with pytest.raises(StoreError):
        store.write("grids", pd.DataFrame({"code": ["1"], "name": ["n"], "unit_code": ["u"], "kind": ["base"], "households": [2**40]}))
    assert store.count("staff") == 0 and store.count("case_events") == 0 and store.count("grids") == 0


# --------------------------------------------------------------------------- write modes


def test_append_conflict_writes_nothing(store: Any) -> None:
    write_all(store)
    frame = pd.DataFrame({"id": [201, 101], "name": ["new", "dup"], "role": ["volunteer", "volunteer"]})
    with pytest.raises(ConflictError):
        store.write("staff", frame)
    assert ids(store.read("staff")) == [101, 102, 103]
    with pytest.raises(ConflictError):
        store.write("staff", pd.DataFrame({"id": [301, 301], "name": ["a", "b"], "role": ["police", "police"]}))
    assert store.count("staff") == 3


def test_replace(store: Any) -> None:
    write_all(store)
    frame = pd.DataFrame({"id": [7], "name": ["唯一"], "role": ["mediator"]})
    assert store.write("staff", frame, mode="replace") == 1
    got = store.read("staff")
    assert got["id"].tolist() == [7] and got["name"].tolist() == ["唯一"]
    assert pd.isna(got["phone"].iloc[0])
    # replace with an empty frame empties the table
    assert store.write("grids", samples()["grids"].iloc[0:0], mode="replace") == 0
    assert store.count("grids") == 0
    assert store.count("grids", bbox=(LON - 1, LAT - 1, LON + 1, LAT + 1)) == 0
    # replacing a spatial table keeps bbox queries right
    store.write("facilities", points_frame([(LON, LAT), (LON + 0.5, LAT)]), mode="replace")
    assert ids(store.read("facilities", bbox=(LON - 0.1, LAT - 0.1, LON + 0.1, LAT + 0.1))) == [1]


def test_upsert(store: Any) -> None:
    write_all(store)
    frame = pd.DataFrame({"id": [102, 104], "name": ["李娜(改)", "赵六"], "role": ["police", "mediator"]})
    assert store.write("staff", frame, mode="upsert") == 2
    got = store.read("staff", order_by=["id"])
    assert got["id"].tolist() == [101, 102, 103, 104]
    assert got["name"].tolist() == ["张伟", "李娜(改)", "王芳", "赵六"]
    # columns not in the frame keep their values on updated rows
    assert got.loc[got["id"] == 102, "phone"].iloc[0] == "'; DROP TABLE grids; --"
    assert bool(got.loc[got["id"] == 102, "on_duty"].iloc[0]) is False
    # geometry upsert moves a row for bbox queries
    moved = gdf({"id": [1], "kind": ["mediation_room"], "name": ["moved"]}, [Point(LON + 0.5, LAT + 0.5)])
    store.write("facilities", moved, mode="upsert")
    near = (LON - 0.01, LAT - 0.01, LON + 0.01, LAT + 0.01)
    assert ids(store.read("facilities", bbox=near)) == []
    assert ids(store.read("facilities", bbox=(LON + 0.49, LAT + 0.49, LON + 0.51, LAT + 0.51))) == [1]
    # composite keys, primary-key-only frames
    store.write("staff_grids", pd.DataFrame({"staff_id": [101, 103], "grid_code": ["211202001001001", "x"]}), mode="upsert")
    assert store.count("staff_grids") == 4
    # duplicate keys in one upsert, missing keys
    with pytest.raises(ConflictError):
        store.write("staff", pd.DataFrame({"id": [1, 1], "name": ["a", "b"], "role": ["x", "x"]}), mode="upsert")
    with pytest.raises(StoreError):
        store.write("staff", pd.DataFrame({"name": ["a"], "role": ["x"]}), mode="upsert")
    assert store.count("staff") == 4


def test_settings(store: Any) -> None:
    assert store.get_setting("basemap.kind") is None
    assert store.get_setting("basemap.kind", "none") == "none"
    store.set_setting("basemap.kind", "xyz")
    store.set_setting("basemap.kind", "tianditu")
    store.set_setting("ui.title", "铁岭市 <b>网格</b>")
    assert store.get_setting("basemap.kind") == "tianditu"
    assert store.get_setting("ui.title") == "铁岭市 <b>网格</b>"
    assert store.count("settings") == 2
    with store.transaction():
        store.set_setting("a", "1")
        store.set_setting("b", "2")
    assert store.get_setting("b") == "2"


# --------------------------------------------------------------------------- transactions


def test_transaction_rollback_leaves_nothing(store: Any) -> None:
    frames = samples()
    with pytest.raises(RuntimeError, match="boom"):
        with store.transaction():
            for name, frame in frames.items():
                store.write(name, frame)
            store.set_setting("x", "y")
            store.update("grids", {"code": "211202001001001"}, {"name": "changed"})
            store.insert("staff", {"id": 999, "name": "n", "role": "police"})
            assert store.count("grids") == 3  # visible inside the transaction
            raise RuntimeError("boom")
    for name in schema.TABLES:
        assert store.count(name) == 0, name
    assert store.count("grids", bbox=(LON - 1, LAT - 1, LON + 1, LAT + 1)) == 0
    # and the store still works
    write_all(store)
    assert store.count("grids") == 3


def test_transaction_commit_and_nesting(store: Any) -> None:
    with store.transaction():
        store.set_setting("outer", "1")
        with store.transaction():  # joins the outer one
            store.set_setting("inner", "1")
        try:
            with store.transaction():
                store.set_setting("failed", "1")
                raise ValueError("inner block fails")
        except ValueError:
            pass
        # a refused write inside a transaction does not poison it
        store.write("staff", pd.DataFrame({"id": [1], "name": ["a"], "role": ["x"]}))
        with pytest.raises(ConflictError):
            store.write("staff", pd.DataFrame({"id": [2, 1], "name": ["b", "a"], "role": ["x", "x"]}))
        store.write("staff", pd.DataFrame({"id": [3], "name": ["c"], "role": ["x"]}))
    assert store.get_setting("outer") == "1"
    assert store.get_setting("inner") == "1"
    assert store.get_setting("failed") is None
    assert ids(store.read("staff")) == [1, 3]


def test_nested_failure_escaping_rolls_back_all(store: Any) -> None:
    with pytest.raises(ValueError):
        with store.transaction():
            store.set_setting("outer", "1")
            with store.transaction():
                store.set_setting("inner", "1")
                raise ValueError("escapes both")
    assert store.count("settings") == 0


# --------------------------------------------------------------------------- append-only


def test_case_events_are_append_only(store: Any) -> None:
    write_all(store)
    before = store.read("case_events", order_by=["id"])
    with pytest.raises(StoreError, match="append-only"):
        store.update("case_events", {"id": 1}, {"note": "rewritten"})
    with pytest.raises(StoreError, match="append-only"):
        store.delete("case_events", {"id": 1})
    with pytest.raises(StoreError, match="append-only"):
        store.write("case_events", samples()["case_events"], mode="replace")
    with pytest.raises(StoreError, match="append-only"):
        store.write("case_events", before.iloc[:1], mode="upsert")
    # appending is fine
    store.write("case_events", pd.DataFrame({"case_id": [3], "ts": [T0], "action": ["close"], "rev": [3]}))
    after = store.read("case_events", order_by=["id"])
    assert len(after) == len(before) + 1
    pd.testing.assert_frame_equal(after.iloc[: len(before)], before)


def test_append_only_enforced_by_the_database(store: Any) -> None:
    """The refusal is a trigger in the database, not only a check in Python."""
    write_all(store)
    if store.dialect == "sqlite":
        import sqlite3

        for sql in ("UPDATE case_events SET note = 'x'", "DELETE FROM case_events"):
            with pytest.raises(sqlite3.DatabaseError, match="append-only"):
                store.conn.execute(sql)
    else:
        import psycopg2

        conn = psycopg2.connect(store.url)
        try:
            for sql in ("UPDATE case_events SET note = 'x'", "DELETE FROM case_events", "TRUNCATE case_events"):
                with pytest.raises(psycopg2.Error, match="append-only"):
                    with conn.cursor() as cur:
                        cur.execute(sql)
                conn.rollback()
        finally:
            conn.close()
    assert store.count("case_events") == 3


# --------------------------------------------------------------------------- update / delete / insert


def test_update_and_delete(store: Any) -> None:
    write_all(store)
    assert store.update("cases", {"id": 1}, {"state": "filed", "dispatched_at": T0 + timedelta(hours=1)}) == 1
    got = store.read("cases", where={"id": 1})
    assert got["state"].iloc[0] == "filed"
    assert got["dispatched_at"].iloc[0] == pd.Timestamp(T0 + timedelta(hours=1))
    assert store.update("cases", {"category": "env.garbage"}, {"urgency": None}) == 2
    assert store.count("cases", where={"urgency": None}) == 2
    assert store.update("cases", {"id": 999}, {"state": "x"}) == 0
    # moving a geometry moves it for bbox queries; NULLing it removes it
    here = (LON - 0.001, LAT - 0.001, LON + 0.002, LAT + 0.002)
    assert ids(store.read("facilities", bbox=here)) == [1]
    store.update("facilities", {"id": 2}, {"geometry": Point(LON + 0.0005, LAT + 0.0005)})
    assert ids(store.read("facilities", bbox=here)) == [1, 2]
    store.update("facilities", {"id": 1}, {"geom": None})
    assert ids(store.read("facilities", bbox=here)) == [2]
    store.update("facilities", {"id": 2}, {"id": 20})  # a new key keeps the row findable
    assert ids(store.read("facilities", bbox=here)) == [20]
    assert store.delete("facilities", {"id": [20, 1]}) == 2
    assert store.count("facilities") == 0
    assert store.count("facilities", bbox=here) == 0
    assert store.delete("staff", {"on_duty": None}) == 1
    assert ids(store.read("staff")) == [101, 102]


def test_insert_returns_key(store: Any) -> None:
    first = store.insert("cases", {"category": "env.garbage", "source": "app", "state": "reported", "reported_at": T0,
                                   "geometry": Point(LON, LAT)})
    second = store.insert("cases", {"category": "env.garbage", "source": "app", "state": "reported", "reported_at": T0})
    assert isinstance(first, int) and second == first + 1
    ev = store.insert("case_events", {"case_id": first, "ts": T0, "action": "report"})
    assert isinstance(ev, int)
    assert store.insert("staff_grids", {"staff_id": 1, "grid_code": "g"}) == (1, "g")
    assert ids(store.read("cases", bbox=(LON - 0.001, LAT - 0.001, LON + 0.001, LAT + 0.001))) == [first]


def test_autoincrement_after_explicit_ids(store: Any) -> None:
    store.write("case_events", pd.DataFrame({"id": [10, 11], "case_id": [1, 1], "ts": [T0, T0], "action": ["a", "b"]}))
    store.write("case_events", pd.DataFrame({"case_id": [2], "ts": [T0], "action": ["c"]}))
    got = store.read("case_events", order_by=["id"])
    assert got["id"].tolist()[:2] == [10, 11] and got["id"].iloc[2] > 11
    new = store.insert("case_events", {"case_id": 3, "ts": T0, "action": "d"})
    assert new > got["id"].iloc[2]
    with pytest.raises(StoreError):
        store.write("case_events", pd.DataFrame({"id": [None, 50], "case_id": [1, 1], "ts": [T0, T0], "action": ["a", "b"]}))


# --------------------------------------------------------------------------- nearest


def test_nearest_points(store: Any) -> None:
    offsets = [(0, 100), (250, 0), (-300, -400), (1000, 1000), (5, 0)]
    coords = [at(dx, dy) for dx, dy in offsets]
    store.write("facilities", points_frame(coords))
    got = store.nearest("facilities", LON, LAT, k=3)
    assert got["id"].tolist() == [5, 1, 2]
    assert isinstance(got, gpd.GeoDataFrame) and "distance_m" in got.columns
    assert got["distance_m"].is_monotonic_increasing
    for _, row in got.iterrows():
        x, y = coords[int(row["id"]) - 1]
        hand = haversine_m(LON, LAT, x, y)
        assert row["distance_m"] == pytest.approx(hand, rel=5e-3), (row["id"], row["distance_m"], hand)
    # the offsets were laid out in metres: the distances are those metres, give or take
    assert got["distance_m"].tolist() == pytest.approx([5, 100, 250], rel=1e-2)
    # k larger than the table, where
    assert len(store.nearest("facilities", LON, LAT, k=50)) == 5
    assert store.nearest("facilities", LON, LAT, k=2, where={"id": [3, 4]})["id"].tolist() == [3, 4]
    assert len(store.nearest("facilities", LON, LAT, k=0)) == 0
    assert len(store.nearest("facilities", LON, LAT, k=2, where={"kind": "none"})) == 0


def test_nearest_is_geodesic_not_planar(store: Any) -> None:
    # At lat 42 a degree of longitude is ~25 % shorter than a degree of latitude: the point 0.0011
    # degrees east is nearer (about 91 m) than the one 0.001 degrees north (about 111 m).
    store.write("facilities", points_frame([(LON, LAT + 0.001), (LON + 0.0011, LAT)]))
    got = store.nearest("facilities", LON, LAT, k=1)
    assert got["id"].tolist() == [2]
    assert got["distance_m"].iloc[0] == pytest.approx(haversine_m(LON, LAT, LON + 0.0011, LAT), rel=5e-3)


def test_nearest_far_and_sparse(store: Any) -> None:
    # candidates thousands of kilometres away still come back, in order
    store.write("facilities", points_frame([(LON + 20, LAT), (LON, LAT - 30), (LON - 0.5, LAT)]))
    got = store.nearest("facilities", LON, LAT, k=3)
    assert got["id"].tolist() == [3, 1, 2]
    assert got["distance_m"].iloc[2] == pytest.approx(haversine_m(LON, LAT, LON, LAT - 30), rel=5e-3)


def test_nearest_polygons(store: Any) -> None:
    inside = square(-50, -50, 100)  # contains the query point
    east = square(200, -10, 20)  # its west edge is 200 m east
    store.write("buildings", gdf({"id": [1, 2], "kind": ["house"] * 2, "households": [1, 1]}, [inside, east]))
    got = store.nearest("buildings", LON, LAT, k=2)
    assert got["id"].tolist() == [1, 2]
    assert got["distance_m"].iloc[0] == pytest.approx(0.0, abs=1e-6)
    assert got["distance_m"].iloc[1] == pytest.approx(200.0, rel=1e-2)


def test_nearest_many_points(store: Any) -> None:
    rng = np.random.default_rng(3)
    n = 3000
    xs = LON + rng.uniform(-0.1, 0.1, n)
    ys = LAT + rng.uniform(-0.1, 0.1, n)
    store.write("facilities", points_frame(list(zip(xs, ys, strict=True))))
    qx, qy = LON + 0.013, LAT - 0.007
    d = np.array([haversine_m(qx, qy, x, y) for x, y in zip(xs, ys, strict=True)])
    expect = (np.argsort(d)[:10] + 1).tolist()
    got = store.nearest("facilities", qx, qy, k=10)
    assert got["id"].tolist() == expect
    assert got["distance_m"].to_numpy() == pytest.approx(np.sort(d)[:10], rel=5e-3)


def test_nearest_bad_input(store: Any) -> None:
    for args in [(200.0, LAT), (LON, 95.0), (float("nan"), LAT)]:
        with pytest.raises(StoreError):
            store.nearest("facilities", *args)
    with pytest.raises(StoreError):
        store.nearest("facilities", LON, LAT, k=-1)


# --------------------------------------------------------------------------- aggregates


def test_group_count(store: Any) -> None:
    write_all(store)
    got = store.group_count("cases", ["category"])
    assert got.to_dict("records") == [{"category": "env.garbage", "n": 2}, {"category": "safety.fire", "n": 1}]
    got = store.group_count("cases", ["category", "state"], where={"state": ["reported", "closed"]})
    assert sorted(map(tuple, got[["category", "state", "n"]].itertuples(index=False))) == [
        ("env.garbage", "closed", 1),
        ("env.garbage", "reported", 1),
    ]
    got = store.group_count("cases", ["grid_code"])  # NULL is a group of its own, last
    assert got["n"].tolist() == [1, 1, 1] and pd.isna(got["grid_code"].iloc[-1])
    near = (LON - 0.001, LAT - 0.001, LON + 0.001, LAT + 0.001)
    got = store.group_count("cases", ["state"], bbox=near)
    assert got.to_dict("records") == [{"state": "reported", "n": 1}]
    assert got["n"].dtype == "int64"
    assert store.group_count("staff", ["on_duty"])["n"].sum() == 3
    empty = store.group_count("cases", ["state"], where={"state": "nope"})
    assert len(empty) == 0 and list(empty.columns) == ["state", "n"]


def test_group_sum(store: Any) -> None:
    write_all(store)
    got = store.group_sum("grids", ["unit_code"], "households")
    assert got.to_dict("records") == [{"unit_code": "211202001001", "total": 447}]
    assert got["total"].dtype == "int64"
    got = store.group_sum("grids", ["kind"], "households", where={"kind": "base"})
    assert got.to_dict("records") == [{"kind": "base", "total": 412}]
    got = store.group_sum("positions", ["staff_id"], "accuracy")
    assert got.set_index("staff_id")["total"].to_dict() == {101: 13.0, 102: 12.5, 103: 3.0}
    got = store.group_sum("cases", ["category"], "urgency")
    assert got.set_index("category")["total"].to_dict() == {"env.garbage": 1, "safety.fire": 3}
    got = store.group_sum("buildings", ["kind"], "floors")  # a group of NULLs sums to 0
    assert got.set_index("kind")["total"].to_dict() == {"apartment": 18, "house": 0, "school": 4}


# --------------------------------------------------------------------------- batches


def test_iter_batches_covers_all_rows(store: Any) -> None:
    n = 53
    store.write("facilities", points_frame([at(i * 10, 0) for i in range(n)]))
    batches = list(store.iter_batches("facilities", batch_size=7))
    assert [len(b) for b in batches] == [7] * 7 + [4]
    seen = pd.concat(batches, ignore_index=True)
    assert sorted(seen["id"].tolist()) == list(range(1, n + 1))
    assert all(isinstance(b, gpd.GeoDataFrame) for b in batches)
    # exact multiple of the batch size, column choice, composite keys
    assert sum(len(b) for b in store.iter_batches("facilities", batch_size=53)) == n
    cols = list(store.iter_batches("facilities", batch_size=50, columns=["name"], geometry=False))
    assert [list(b.columns) for b in cols] == [["name"], ["name"]]
    links = pd.DataFrame({"staff_id": [i // 3 for i in range(20)], "grid_code": [f"g{i % 3}" for i in range(20)]})
    store.write("staff_grids", links)
    got = pd.concat(store.iter_batches("staff_grids", batch_size=3), ignore_index=True)
    assert sorted(map(tuple, got.itertuples(index=False))) == sorted(map(tuple, links.itertuples(index=False)))
    assert list(store.iter_batches("cameras")) == []


# --------------------------------------------------------------------------- threads


def test_threads_share_a_store(store: Any) -> None:
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for i in range(20):
                key = k * 100 + i
                store.write("facilities", points_frame([at(key, key)], start_id=key))
                store.count("facilities", bbox=(LON - 1, LAT - 1, LON + 1, LAT + 1))
                with store.transaction():
                    store.set_setting(f"t{k}", str(i))
                    store.read("facilities", where={"id": key})
        except BaseException as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(1, 5)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    assert store.count("facilities") == 80
    assert [store.get_setting(f"t{k}") for k in range(1, 5)] == ["19"] * 4


def test_closed_store_refuses(store: Any) -> None:
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.count("grids")
    store.close()  # twice is fine


def test_multipolygon_parts_kept(store: Any) -> None:
    parts = MultiPolygon([square(0, 0, 10), square(20, 0, 10), square(40, 0, 10)])
    store.write("water", gdf({"id": [1], "kind": ["lake"]}, [parts]))
    got = store.read("water").geometry.iloc[0]
    assert len(got.geoms) == 3 and got.equals(parts)


# --------------------------------------------------------------------------- ranges, idempotent writes


def test_where_range_is_half_open(store: Any) -> None:
    write_all(store)
    t0 = pd.Timestamp(T0)
    assert store.count("positions", where={"ts": Range(t0, t0 + pd.Timedelta(minutes=5))}) == 2
    assert store.count("positions", where={"ts": Range(t0 + pd.Timedelta(seconds=30), None)}) == 3
    assert store.count("positions", where={"ts": Range(None, t0)}) == 0
    assert store.count("positions", where={"ts": Range(t0.tz_convert("Asia/Shanghai"), None)}) == 4  # any zone
    assert store.count("positions", where={"staff_id": 101, "ts": Range(t0, t0 + pd.Timedelta(hours=2))}) == 2
    assert store.count("cases", where={"urgency": Range(2, None)}) == 1
    assert store.count("grid_presence", where={"day": Range("2026-11-20", "2026-11-21")}) == 2
    with pytest.raises(StoreError, match="geometry"):
        store.count("positions", where={"geom": Range(1, 2)})


def test_ignore_mode_skips_existing_keys_and_counts_inserted(store: Any) -> None:
    frame = samples()["positions"]
    assert store.write("positions", frame, mode="ignore") == 4
    assert store.write("positions", frame, mode="ignore") == 0  # a re-send: nothing new
    again = frame.copy()
    again["speed"] = 99.0
    more = gdf({"staff_id": [101], "ts": [T0 + timedelta(days=2)]}, [Point(LON, LAT)])
    assert store.write("positions", pd.concat([again, more], ignore_index=True), mode="ignore") == 1
    assert 99.0 not in store.read("positions")["speed"].tolist()  # existing rows untouched
    assert store.count("positions") == 5


def test_upsert_newest_never_moves_a_row_back_in_time(store: Any) -> None:
    def latest(ts: datetime, x: float) -> Any:
        return gdf({"staff_id": [1], "ts": [ts], "speed": [x]}, [Point(LON + x / 1000, LAT)])

    store.write("latest_positions", latest(T0, 1.0), mode="upsert", newest="ts")
    store.write("latest_positions", latest(T0 + timedelta(minutes=1), 2.0), mode="upsert", newest="ts")
    store.write("latest_positions", latest(T0 + timedelta(seconds=30), 3.0), mode="upsert", newest="ts")  # late
    got = store.read("latest_positions")
    assert got["speed"].tolist() == [2.0] and got["ts"].iloc[0] == pd.Timestamp(T0 + timedelta(minutes=1))
    with pytest.raises(StoreError, match="newest"):
        store.write("latest_positions", latest(T0, 1.0), mode="append", newest="ts")
    with pytest.raises(StoreError, match="newest"):
        store.write("latest_positions", latest(T0, 1.0), mode="upsert", newest="staff_id")


def test_partitioned_table_takes_any_day(store: Any) -> None:
    """Fixes of days never seen before (a new day, a phone's old buffer) go in: PostGIS creates
    the day partitions; insert() too."""
    days = [T0 - timedelta(days=400), T0, T0 + timedelta(days=1), T0 + timedelta(days=30)]
    frame = gdf({"staff_id": [1, 1, 1, 1], "ts": days}, [Point(LON, LAT)] * 4)
    assert store.write("positions", frame) == 4
    store.insert("positions", {"staff_id": 2, "ts": T0 + timedelta(days=60), "geom": Point(LON, LAT)})
    with store.transaction():
        store.write("positions", gdf({"staff_id": [3], "ts": [T0 + timedelta(days=90)]}, [Point(LON, LAT)]))
    assert store.count("positions") == 6
    assert store.count("positions", where={"ts": Range(T0, T0 + timedelta(days=2))}) == 2


# --------------------------------------------------------------------------- dropping old partitions


def test_drop_partitions_before_drops_whole_old_days_only(store: Any) -> None:
    day = pd.Timestamp("2026-06-01", tz="UTC")
    stamps = [day + pd.Timedelta(hours=h) for h in (1, 23, 25, 47, 49, 50)]  # 2 fixes on each of 3 UTC days
    store.write("positions", gdf({"staff_id": [1] * 6, "ts": stamps}, [Point(LON, LAT)] * 6))
    before = day + pd.Timedelta(days=2, hours=1)  # inside the third day: only days 1 and 2 lie wholly before
    with pytest.raises(StoreError, match="unknown table"):
        store.drop_partitions_before("spaceships", before)
    assert store.drop_partitions_before("grids", before) == {}  # not partitioned
    dropped = store.drop_partitions_before("positions", before)
    if store.dialect == "postgis":
        assert dropped == {"positions_p20260601": 2, "positions_p20260602": 2}
        assert store.count("positions") == 2
    else:  # no partitions: nothing dropped, the caller deletes
        assert dropped == {}
        assert store.count("positions") == 6
    assert store.drop_partitions_before("positions", before) == {}  # idempotent
    # a fix for a dropped day can be written again (its partition is made anew)
    store.write("positions", gdf({"staff_id": [2], "ts": [day + pd.Timedelta(hours=3)]}, [Point(LON, LAT)]))
    store.insert("positions", {"staff_id": 3, "ts": day + pd.Timedelta(hours=4), "geom": Point(LON, LAT)})
    assert store.count("positions", where={"staff_id": [2, 3]}) == 2
