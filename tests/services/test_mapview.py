"""What the map shows for a view: level of detail, budgets, figures and the GCJ-02 shift — on both stores."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from demo import SIZES, generate, load_demo
from geo.crs import wgs84_to_gcj02
from services.mapview import MAX_GRIDS, OPEN_STATES, View, grid_status, level_for_zoom, map_data, unit_stats
from services.overview import city_summary, zoom_to_fit

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def city():  # type: ignore[no-untyped-def]
    return generate(SIZES["small"], seed=11, now=NOW)


@pytest.fixture
def loaded(store, city):  # type: ignore[no-untyped-def]
    load_demo(store, city)
    return store


def test_levels_by_zoom() -> None:
    assert [level_for_zoom(z) for z in (7, 9, 11, 13, 16)] == ["county", "township", "township", "village", "grid"]


def test_grid_status() -> None:
    import pandas as pd

    s = grid_status(
        pd.Series([90, 70, 130, 0, 0]),
        pd.Series([80, 80, 80, 80, None]),
        pd.Series([120, 120, 120, 120, None]),
        pd.Series(["base", "base", "base", "base", "dedicated"]),
    )
    assert list(s) == ["in_band", "under", "over", "empty", "dedicated"]


def test_unit_stats_match_the_tables(loaded, city) -> None:  # type: ignore[no-untyped-def]
    stats = unit_stats(loaded)
    grids = city.frames["grids"]
    base = grids[grids["kind"] == "base"]
    cases = city.frames["cases"]
    top = stats[stats["level"] == "city"].iloc[0]
    assert top["grids"] == len(base)
    assert top["households"] == int(city.frames["buildings"]["households"].sum())
    assert top["open_cases"] == int(cases["state"].isin(OPEN_STATES).sum())
    assert top["staff"] == len(city.frames["staff"])
    in_band = ((base["households"] >= base["band_min"]) & (base["households"] <= base["band_max"])).sum()
    assert top["in_band"] == in_band
    # every village's figures add up to its township's
    villages = stats[stats["level"] == "village"]
    for code, row in stats[stats["level"] == "township"].iterrows():
        kids = villages[villages.index.str.startswith(code)]
        assert row["grids"] == kids["grids"].sum()
        assert row["households"] == kids["households"].sum()


def test_city_zoom_shows_units_and_street_zoom_shows_grids(loaded) -> None:  # type: ignore[no-untyped-def]
    stats = unit_stats(loaded)
    summary = city_summary(loaded, stats=stats)
    assert summary is not None
    minx, miny, maxx, maxy = loaded.read("admin_units", where={"level": "county"}).total_bounds
    far = map_data(loaded, View(bbox=(minx, miny, maxx, maxy), zoom=8), stats=stats)
    assert far.level == "county" and len(far.features) == 1
    assert {"grids", "households", "in_band_share"} <= set(far.features.columns)
    # street zoom around the first community: grids with their worker and status
    community = loaded.read("admin_units", where={"level": "village", "kind": "community"}, limit=1)
    c = community.geometry.iloc[0].centroid
    near = map_data(loaded, View(bbox=(c.x - 0.004, c.y - 0.003, c.x + 0.004, c.y + 0.003), zoom=16), stats=stats)
    assert near.level == "grid"
    assert len(near.features) > 3
    assert near.features["worker"].notna().mean() > 0.9
    assert set(near.features["status"]) <= {"in_band", "under", "over", "empty", "dedicated"}
    assert near.features["code"].str.fullmatch(r"\d{15}").all()
    assert near.boundaries is not None and len(near.boundaries) >= 1
    assert summary.zoom == zoom_to_fit((minx, miny, maxx, maxy))


def test_too_many_grids_fall_back_to_units(loaded, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    import services.mapview as mv

    stats = unit_stats(loaded)
    minx, miny, maxx, maxy = loaded.read("admin_units", where={"level": "county"}).total_bounds
    monkeypatch.setattr(mv, "MAX_GRIDS", 5)
    data = mv.map_data(loaded, View(bbox=(minx, miny, maxx, maxy), zoom=16), stats=stats)
    assert data.level == "village"
    assert MAX_GRIDS > 5


def test_gcj02_display_shifts_every_overlay(loaded) -> None:  # type: ignore[no-untyped-def]
    stats = unit_stats(loaded)
    minx, miny, maxx, maxy = loaded.read("admin_units", where={"level": "county"}).total_bounds
    view = View(bbox=(minx, miny, maxx, maxy), zoom=13)
    plain = map_data(loaded, view, stats=stats)
    shifted = map_data(loaded, view, stats=stats, shift="gcj02")
    a = plain.features.geometry.iloc[0].representative_point()
    b = shifted.features.set_index("code").loc[plain.features["code"].iloc[0]].geometry
    ex, ey = wgs84_to_gcj02(a.x, a.y)
    # the shifted polygon contains the shifted point (offset of hundreds of metres, not zero)
    from shapely.geometry import Point

    assert b.buffer(1e-6).contains(Point(ex, ey))
    assert np.hypot(ex - a.x, ey - a.y) > 0.002
    sr = shifted.roads.geometry.iloc[0].coords[0]
    pr = plain.roads.geometry.iloc[0].coords[0]
    assert sr != pr


def test_empty_database_has_no_summary(store) -> None:  # type: ignore[no-untyped-def]
    stats = unit_stats(store)
    assert city_summary(store, stats=stats) is None


def test_buildings_only_at_street_zoom(loaded) -> None:  # type: ignore[no-untyped-def]
    stats = unit_stats(loaded)
    community = loaded.read("admin_units", where={"level": "village", "kind": "community"}, limit=1)
    c = community.geometry.iloc[0].centroid
    bbox = (c.x - 0.003, c.y - 0.002, c.x + 0.003, c.y + 0.002)
    assert map_data(loaded, View(bbox=bbox, zoom=15), stats=stats).buildings is None
    near = map_data(loaded, View(bbox=bbox, zoom=17), stats=stats)
    assert near.buildings is not None and len(near.buildings) > 5
