"""The demo city: deterministic, nested exactly, grids from a real partition meeting the bands."""

from __future__ import annotations

from datetime import UTC, datetime

import geopandas as gpd
import pandas as pd
import pytest
import shapely

from demo import SIZES, generate
from demo.cases import STAGES
from geo.codes import is_valid_gbt28181_id, is_valid_grid_code
from store.schema import CASE_STATES, STAFF_ROLES, TABLES

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
METRIC = "EPSG:32651"


@pytest.fixture(scope="module", params=[1, 2, 3])
def city(request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    return generate(SIZES["small"], seed=request.param, now=NOW)


def test_same_seed_same_city() -> None:
    a = generate(SIZES["small"], seed=5, now=NOW)
    b = generate(SIZES["small"], seed=5, now=NOW)
    for name, frame in a.tables():
        other = b.frames[name]
        if isinstance(frame, gpd.GeoDataFrame):
            assert frame.geometry.geom_equals_exact(other.geometry, tolerance=0).all(), name
            frame, other = pd.DataFrame(frame.drop(columns="geometry")), pd.DataFrame(other.drop(columns="geometry"))
        pd.testing.assert_frame_equal(frame, other, obj=name)


def test_frames_fit_the_schema(city) -> None:  # type: ignore[no-untyped-def]
    for name, frame in city.tables():
        cols = set(frame.columns) - {"geometry"}
        assert cols <= set(TABLES[name].column_names), (name, cols - set(TABLES[name].column_names))
        if isinstance(frame, gpd.GeoDataFrame):
            assert frame.crs.equals("EPSG:4326"), name


def test_hierarchy_nests_exactly(city) -> None:  # type: ignore[no-untyped-def]
    units = city.frames["admin_units"].to_crs(METRIC).set_index("code")
    for level, n in (("county", 6), ("township", 9), ("village", 12)):
        kids = units[units["level"] == level]
        assert (kids.index.str.len() == n).all()
        assert kids["parent_code"].isin(units.index).all()
        for parent_code, group in kids.groupby("parent_code"):
            parent = units.loc[parent_code].geometry
            union = shapely.union_all(group.geometry.to_numpy())
            assert union.symmetric_difference(parent).area < 1e-6 * parent.area + 1.0, (level, parent_code)
    # GB/T 10114 ranges: streets 001-099, towns 100-199, townships 200-399; communities 001-199, villages 200-399
    for code, row in units.iterrows():
        if row["level"] == "township":
            seq = int(code[6:9])
            assert {"street": 1 <= seq <= 99, "town": 100 <= seq <= 199, "township": 200 <= seq <= 399}[row["kind"]]
        if row["level"] == "village":
            seq = int(code[9:12])
            assert {"community": 1 <= seq <= 199, "village": 200 <= seq <= 399}[row["kind"]]


def test_base_grids_cover_each_village_exactly_and_meet_the_band(city) -> None:  # type: ignore[no-untyped-def]
    grids = city.frames["grids"].to_crs(METRIC)
    units = city.frames["admin_units"].to_crs(METRIC).set_index("code")
    base = grids[grids["kind"] == "base"]
    assert not base.geometry.is_empty.any()
    assert base["code"].is_unique and base["code"].map(is_valid_grid_code).all()
    for unit_code, group in base.groupby("unit_code"):
        assert group["code"].str[:12].eq(unit_code).all()
        boundary = units.loc[unit_code].geometry
        union = shapely.union_all(group.geometry.to_numpy())
        assert union.symmetric_difference(boundary).area < 1e-6 * boundary.area + 1.0, unit_code
        overlap = group.geometry.area.sum() - union.area
        assert overlap < 1e-6 * boundary.area + 1.0, unit_code
    in_band = (base["households"] >= base["band_min"]) & (base["households"] <= base["band_max"])
    assert in_band.mean() >= 0.95, in_band.mean()
    # 30-50 in villages, 80-120 in urban communities
    kinds = units["kind"].reindex(base["unit_code"]).to_numpy()
    assert set(map(tuple, base.loc[kinds == "village", ["band_min", "band_max"]].to_numpy())) == {(30, 50)}
    assert set(map(tuple, base.loc[kinds == "community", ["band_min", "band_max"]].to_numpy())) == {(80, 120)}


def test_every_building_lies_in_its_grid(city) -> None:  # type: ignore[no-untyped-def]
    grids = city.frames["grids"].to_crs(METRIC).set_index("code")
    b = city.frames["buildings"].to_crs(METRIC)
    assert b["grid_code"].notna().all()
    res = b[b["households"] > 0]
    per_grid = res.groupby("grid_code")["households"].sum()
    base = grids[grids["kind"] == "base"]
    assert (per_grid.reindex(base.index).fillna(0) == base["households"]).all()
    inside = [grids.loc[g].geometry.buffer(0.5).contains(p) for g, p in zip(res["grid_code"], res.geometry.representative_point(), strict=True)]
    assert all(inside)


def test_staff_cameras_cases_are_plausible(city) -> None:  # type: ignore[no-untyped-def]
    staff = city.frames["staff"]
    assert set(staff["role"]) <= set(STAFF_ROLES)
    sg = city.frames["staff_grids"]
    base = city.frames["grids"].query("kind == 'base'")
    full = staff[staff["role"] == "grid_worker_full"]
    # one full-time grid worker per base grid
    assert len(full) == len(base)
    assert set(sg[sg["staff_id"].isin(full["id"])]["grid_code"]) == set(base["code"])
    assert staff["device_id"].is_unique and staff["phone"].str.fullmatch(r"1\d{10}").all()
    cams = city.frames["cameras"]
    assert cams["id"].map(is_valid_gbt28181_id).all() and cams["id"].is_unique
    assert cams["direction"].between(0, 360).all() and cams["fov"].between(1, 360).all()
    cases = city.frames["cases"]
    assert set(cases["state"]) <= set(CASE_STATES)
    assert cases["reported_at"].max() <= pd.Timestamp(NOW)
    assert cases["id"].is_monotonic_increasing
    done = cases[cases["state"].isin(["closed", "evaluated"])]
    assert (done["closed_at"] >= done["dispatched_at"]).all()
    assert (done["deadline_at"] > done["dispatched_at"]).all()
    # open cases exist, so the dispatcher has work
    assert cases["state"].isin(["reported", "filed", "dispatched", "accepted", "in_progress"]).sum() > 10


def test_case_history_follows_the_loop(city) -> None:  # type: ignore[no-untyped-def]
    cases = city.frames["cases"].set_index("id")
    ev = city.frames["case_events"]
    assert ev["id"].is_unique
    last = ev.sort_values(["case_id", "ts", "id"]).groupby("case_id").last()
    assert (last["to_state"] == cases.loc[last.index, "state"]).all()
    first = ev.sort_values(["case_id", "ts", "id"]).groupby("case_id").first()
    assert (first["action"] == "report").all()
    ok = ev[ev["action"] != "reject"]
    order = ok["to_state"].map({s: i for i, s in enumerate(STAGES)})
    assert order.groupby(ok["case_id"]).is_monotonic_increasing.all()
    assert (ev.groupby("case_id")["ts"].is_monotonic_increasing).all()
