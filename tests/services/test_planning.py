"""Grid planning on both stores: drafts, edits with undo/redo, validation, publishing versions with
lineage and re-attribution, conflicts between two planners, files, legacy layers."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import geopandas as gpd
import pytest
import shapely

from demo import SIZES, generate, load_demo
from services import planning
from services.files import read_layer, write_layer
from services.mapview import OPEN_STATES

NOW = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def city():  # type: ignore[no-untyped-def]
    return generate(SIZES["small"], seed=11, now=NOW)


@pytest.fixture
def loaded(store, city):  # type: ignore[no-untyped-def]
    load_demo(store, city)
    return store


def _community(store: Any, *, min_grids: int = 4) -> str:
    """A community with few base grids (quick to edit) that has open cases and staff."""
    grids = store.read("grids", where={"kind": "base"}, columns=["unit_code", "code"])
    counts = grids.groupby("unit_code").size()
    units = store.read("admin_units", where={"level": "village", "kind": "community"}, columns=["code"])
    ok = counts[counts.index.isin(units["code"]) & (counts >= min_grids)].sort_values()
    return str(ok.index[0])


def _split_line(grid: Any) -> shapely.LineString:
    """A north–south line through the middle of a grid, overshooting its edges."""
    minx, miny, maxx, maxy = grid.bounds
    x = grid.representative_point().x
    return shapely.LineString([(x, miny - 0.0005), (x, maxy + 0.0005)])


def test_draft_from_current_grids_is_valid_and_leaves_live_grids_alone(loaded: Any) -> None:
    unit = _community(loaded)
    live_before = loaded.read("grids", where={"unit_code": unit}, order_by=["code"])
    draft_id = planning.create_draft(loaded, unit, author="王规划")
    state = planning.evaluate(loaded, draft_id)
    assert state.report.errors == (), [f.message for f in state.report.errors]
    assert set(state.grids["code"]) == set(live_before["code"])
    assert state.households == int(live_before.loc[live_before["kind"] == "base", "households"].sum())
    assert loaded.read("grids", where={"unit_code": unit}, order_by=["code"])["code"].tolist() == live_before["code"].tolist()


def test_split_merge_undo_redo_update_counts(loaded: Any) -> None:
    unit = _community(loaded)
    draft_id = planning.create_draft(loaded, unit)
    state = planning.evaluate(loaded, draft_id)
    base = state.grids[state.grids["kind"] == "base"]
    biggest = base.sort_values("households").iloc[-1]
    n0 = len(base)
    rev = planning.edit(loaded, draft_id, "split", key=int(biggest["key"]), line=_split_line(biggest.geometry))
    assert rev == 1
    after = planning.evaluate(loaded, draft_id)
    base1 = after.grids[after.grids["kind"] == "base"]
    assert len(base1) == n0 + 1
    assert after.households == state.households  # counts move, nothing is lost
    new = base1[base1["code"].isna()]
    assert len(new) == 2 and new["households"].sum() == biggest["households"]
    assert not after.report.errors, [f.message for f in after.report.errors]
    # merge the two pieces back
    rev = planning.edit(loaded, draft_id, "merge", keys=new["key"].astype(int).tolist())
    merged = planning.evaluate(loaded, draft_id)
    assert len(merged.grids[merged.grids["kind"] == "base"]) == n0
    # undo twice → the original; redo → the split
    planning.undo(loaded, draft_id)
    planning.undo(loaded, draft_id)
    assert planning.draft(loaded, draft_id).revision == 0
    with pytest.raises(planning.PlanningError, match="nothing to undo"):
        planning.undo(loaded, draft_id)
    planning.redo(loaded, draft_id)
    assert len(planning.draft_grids(loaded, draft_id)) == len(state.grids) + 1
    # an edit after undo drops the redo branch
    planning.edit(loaded, draft_id, "merge", keys=new["key"].astype(int).tolist())
    d = planning.draft(loaded, draft_id)
    assert d.revision == d.head == 2 and not d.can_redo
    assert len(planning.history(loaded, draft_id)) == 3  # create, split, merge


def test_bad_edits_change_nothing(loaded: Any) -> None:
    unit = _community(loaded)
    draft_id = planning.create_draft(loaded, unit)
    grids = planning.draft_grids(loaded, draft_id)
    far = shapely.LineString([(0.0, 0.0), (0.001, 0.001)])
    with pytest.raises(planning.EditError):
        planning.edit(loaded, draft_id, "split", key=int(grids["key"].iloc[0]), line=far)
    with pytest.raises(planning.PlanningError):
        planning.edit(loaded, draft_id, "explode", key=1)
    assert planning.draft(loaded, draft_id).revision == 0


def test_publish_creates_a_version_with_lineage_and_reattributes(loaded: Any) -> None:
    unit = _community(loaded)
    live = loaded.read("grids", where={"unit_code": unit, "kind": "base"})
    draft_id = planning.create_draft(loaded, unit)
    state = planning.evaluate(loaded, draft_id)
    base = state.grids[state.grids["kind"] == "base"]
    target = base.sort_values("households").iloc[-1]
    planning.edit(loaded, draft_id, "split", key=int(target["key"]), line=_split_line(target.geometry))
    state = planning.evaluate(loaded, draft_id)
    reason = "拆分后两格偏少，下月随新楼入住补足" if state.report.warnings else None
    result = planning.publish(loaded, draft_id, author="王规划", accept_warnings=reason, effective_at=NOW, now=NOW)
    assert result.version == 2
    now_live = loaded.read("grids", where={"unit_code": unit})
    assert len(now_live[now_live["kind"] == "base"]) == len(live) + 1
    assert set(now_live["version"]) == {2}
    old_code = str(target["code"])
    assert old_code not in set(now_live["code"])  # the split grid is retired...
    new_codes = sorted(set(now_live["code"]) - set(live["code"]) - set(now_live.loc[now_live["kind"] == "dedicated", "code"]))
    assert len(new_codes) == 2
    used = max(int(c[-3:]) for c in live["code"])
    assert all(int(c[-3:]) > used for c in new_codes)  # ...and its code is never reused
    # versions 1 and 2 are both readable
    v = planning.versions(loaded, unit)
    assert v["version"].tolist() == [1, 2] and v["in_force"].tolist() == [False, True]
    assert old_code in set(planning.version_grids(loaded, unit, 1)["code"])
    # lineage: the old grid's households went to the two new grids
    lin = loaded.read("grid_lineage", where={"unit_code": unit, "version": 2, "old_code": old_code})
    assert sorted(lin["new_code"]) == new_codes
    assert lin["share_of_old"].sum() == pytest.approx(1.0)
    assert lin["households"].sum() == int(target["households"])
    # buildings, open cases and staff follow the new grids
    b = loaded.read("buildings", where={"grid_code": new_codes})
    assert b["households"].sum() == int(target["households"])
    assert loaded.count("buildings", where={"grid_code": old_code}) == 0
    assert loaded.count("cases", where={"grid_code": old_code, "state": list(OPEN_STATES)}) == 0
    staff_links = loaded.read("staff_grids", where={"grid_code": new_codes})
    assert set(staff_links["grid_code"]) == set(new_codes)
    assert loaded.count("staff_grids", where={"grid_code": old_code}) == 0
    # the diff shows the change; the draft is closed
    d = planning.version_diff(loaded, unit, 1, 2)
    assert set(d["status"]) >= {"removed", "added", "unchanged"}
    assert planning.draft(loaded, draft_id).status == "published"
    with pytest.raises(planning.PlanningError, match="published"):
        planning.edit(loaded, draft_id, "merge", keys=[1, 2])


def test_second_planner_gets_a_conflict_and_loses_nothing(loaded: Any) -> None:
    unit = _community(loaded)
    a = planning.create_draft(loaded, unit, author="甲")
    b = planning.create_draft(loaded, unit, author="乙")
    for draft_id in (a, b):
        g = planning.evaluate(loaded, draft_id).grids
        target = g[g["kind"] == "base"].sort_values("households").iloc[-1]
        planning.edit(loaded, draft_id, "split", key=int(target["key"]), line=_split_line(target.geometry))
    reason = "test"
    planning.publish(loaded, a, accept_warnings=reason)
    live_after_a = loaded.read("grids", where={"unit_code": unit}, order_by=["code"])
    with pytest.raises(planning.ConflictError, match="version 2"):
        planning.publish(loaded, b, accept_warnings=reason)
    # nothing of b was written; b is still open with its edit
    assert loaded.read("grids", where={"unit_code": unit}, order_by=["code"])["code"].tolist() == live_after_a["code"].tolist()
    assert planning.draft(loaded, b).status == "open" and planning.draft(loaded, b).revision == 1
    assert planning.versions(loaded, unit)["version"].tolist() == [1, 2]
    # after a rebase the second planner can publish on top
    assert planning.rebase(loaded, b) == 2
    state = planning.evaluate(loaded, b)
    if not state.report.errors:
        assert planning.publish(loaded, b, accept_warnings=reason).version == 3


def test_publish_refuses_errors_and_unexplained_warnings(loaded: Any) -> None:
    unit = _community(loaded)
    live = loaded.read("grids", where={"unit_code": unit}, order_by=["code"])
    broken = live[live["code"] != live.loc[live["kind"] == "base", "code"].iloc[0]]  # drop one grid: a gap
    draft_id = planning.create_draft(loaded, unit, method="frame", grids=broken)
    with pytest.raises(planning.PublishRefused) as exc:
        planning.publish(loaded, draft_id)
    assert "gap" in {f.code for f in exc.value.report.errors}
    assert planning.versions(loaded, unit)["version"].tolist() == [1]
    assert loaded.read("grids", where={"unit_code": unit}, order_by=["code"])["code"].tolist() == live["code"].tolist()


def test_warnings_need_a_reason(loaded: Any) -> None:
    unit = _community(loaded)
    draft_id = planning.create_draft(loaded, unit)
    g = planning.evaluate(loaded, draft_id).grids
    base = g[g["kind"] == "base"].sort_values("households")
    planning.edit(loaded, draft_id, "merge", keys=planning_neighbours(g))
    state = planning.evaluate(loaded, draft_id)
    assert any(f.code == "out_of_band" for f in state.report.warnings)
    with pytest.raises(planning.PublishRefused, match="reason"):
        planning.publish(loaded, draft_id)
    result = planning.publish(loaded, draft_id, accept_warnings="两格合并，人口将外迁")
    v = planning.versions(loaded, unit)
    assert v.loc[v["version"] == result.version, "accepted_warnings"].iloc[0] == "两格合并，人口将外迁"
    assert len(base) == len(loaded.read("grids", where={"unit_code": unit, "kind": "base"})) + 1


def planning_neighbours(grids: gpd.GeoDataFrame) -> list[int]:
    """Keys of two base grids sharing an edge."""
    base = grids[grids["kind"] == "base"].reset_index(drop=True)
    for i, g in enumerate(base.geometry):
        for j in range(i + 1, len(base)):
            if g.intersection(base.geometry.iloc[j]).length > 0:
                return [int(base["key"].iloc[i]), int(base["key"].iloc[j])]
    raise AssertionError("no neighbours")


def test_automatic_partition_draft_is_publishable(loaded: Any) -> None:
    unit = _community(loaded)
    draft_id = planning.create_draft(loaded, unit, method="partition")
    state = planning.evaluate(loaded, draft_id)
    assert not state.report.errors, [f.message for f in state.report.errors]
    assert state.in_band_share >= 0.8
    assert state.households == int(
        loaded.read("buildings", where={"unit_code": unit})["households"].sum()
    )


def test_band_is_configurable_per_unit_and_checked(loaded: Any) -> None:
    unit = _community(loaded)
    planning.set_unit_band(loaded, unit, (60, 90))
    assert planning.unit_band(loaded, unit) == (60, 90)
    with pytest.raises(planning.PlanningError):
        planning.set_unit_band(loaded, unit, (90, 60))
    with pytest.raises(planning.PlanningError, match="no partition can meet"):
        planning.create_draft(loaded, unit, method="partition", band=(10**6, 2 * 10**6))
    assert planning.drafts(loaded, unit).empty  # nothing half-written


def test_export_any_version_round_trips_codes(loaded: Any, tmp_path: Path) -> None:
    unit = _community(loaded)
    for suffix in (".gpkg", ".geojson", ".zip"):
        path = tmp_path / f"v1{suffix}"
        n = planning.export_version(loaded, unit, 1, path)
        back, _ = read_layer(path)
        assert len(back) == n
        assert set(back["code"].astype(str)) == set(loaded.read("grids", where={"unit_code": unit})["code"])


def test_publish_a_file_edited_elsewhere(loaded: Any, tmp_path: Path) -> None:
    """A planner exports, edits in QGIS (here: nothing), imports back as a draft and publishes."""
    unit = _community(loaded)
    path = tmp_path / "grids.gpkg"
    planning.export_version(loaded, unit, 1, path)
    frame, _ = read_layer(path)
    draft_id = planning.create_draft(loaded, unit, method="frame", grids=frame)
    state = planning.evaluate(loaded, draft_id)
    assert not state.report.errors
    assert state.grids["code"].notna().all()  # known codes survive the round trip


def test_legacy_layers_unify_into_a_draft_with_crosswalk(loaded: Any, tmp_path: Path) -> None:
    unit = _community(loaded)
    live = loaded.read("grids", where={"unit_code": unit, "kind": "base"})
    police = live[["code", "geometry"]].assign(code=[f"JW-{i}" for i in range(len(live))])
    merged = gpd.GeoDataFrame(
        {"code": ["CG-1"]}, geometry=[shapely.union_all(live.geometry.to_numpy())], crs="EPSG:4326"
    )
    write_layer(police, tmp_path / "police.geojson")
    write_layer(merged, tmp_path / "cg.gpkg")
    assert planning.import_legacy(loaded, "police", tmp_path / "police.geojson") == len(live)
    assert planning.import_legacy(loaded, "urban_management", tmp_path / "cg.gpkg") == 1
    with pytest.raises(planning.PlanningError, match="name"):
        planning.import_legacy(loaded, "", tmp_path / "cg.gpkg")
    draft_id, unified = planning.propose_unified(loaded, unit)
    assert len(unified.grids) >= 1
    cw = planning.crosswalk(loaded, unit)
    assert set(cw["layer"]) == {"police", "urban_management"}
    assert cw.groupby(["layer", "legacy_code"])["share_of_legacy"].sum().between(0.95, 1.05).all()
    assert planning.draft(loaded, draft_id).status == "open"


def test_map_lookups(loaded: Any) -> None:
    unit = _community(loaded)
    draft_id = planning.create_draft(loaded, unit)
    state = planning.evaluate(loaded, draft_id)
    g = state.grids[state.grids["kind"] == "base"].iloc[0]
    p = g.geometry.representative_point()
    assert planning.grid_at(state.grids, p.x, p.y) == int(g["key"])
    assert planning.grid_at(state.grids, 0.0, 0.0) is None
    b = state.buildings.iloc[0]
    q = b.geometry.representative_point()
    assert planning.building_at(state.buildings, q.x, q.y) == int(b["id"])
    assert planning.grid_crossed(state.grids, _split_line(g.geometry)) is not None
