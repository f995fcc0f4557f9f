"""The case loop on both stores: intake and attribution, duplicates, every step with its events,
compare-and-set (one winner of two dispatchers, across connections), escalation and summons."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import pandas as pd
import pytest

from services import cases as cs
from services import dispatch
from tests.fixtures.cases_world import GRID_E, GRID_W, NOW, STREET, VILLAGE, build_world
from tests.store.sample import HOSTILE, at


@pytest.fixture
def world(store: Any) -> Any:
    build_world(store)
    cs.forget_locator(store)
    return store


def report(store: Any, dx: float = -400, dy: float = 200, *, category: str = "exposed_garbage", when: Any = NOW,
           **kw: Any) -> cs.Created:  # fmt: skip
    lon, lat = at(dx, dy)
    dedupe = kw.pop("dedupe", True)
    fields: dict[str, Any] = {"description": "小区门口垃圾堆放", "actor": "resident"} | kw
    new = cs.NewCase(category=category, lon=lon, lat=lat, reported_at=when, **fields)
    return cs.create_case(store, new, now=when, dedupe=dedupe)


def test_a_report_is_attributed_to_grid_village_street_and_county(world: Any) -> None:
    made = report(world, -400, 200)
    assert made.created and made.duplicate_of is None
    case = cs.get_case(world, made.case_id, now=NOW)
    assert (case["grid_code"], case["village_code"], case["township_code"], case["county_code"]) == (
        GRID_W, VILLAGE, STREET, "211202")  # fmt: skip
    assert case["state"] == "reported" and case["rev"] == 0 and case["reports"] == 1
    assert case["deadline_at"] is None  # the clock starts at dispatch
    east = report(world, 400, 200, category="dirty_road")
    assert cs.get_case(world, east.case_id)["grid_code"] == GRID_E
    ev = cs.timeline(world, made.case_id)
    assert ev["action"].tolist() == ["report"] and ev["actor"].tolist() == ["resident"]


@pytest.mark.parametrize(
    ("lon", "lat", "code", "match"),
    [
        (None, None, "invalid", "numbers"),
        (float("nan"), 42.29, "invalid", "finite"),
        (42.29, 123.84, "invalid", "swapped"),
        (123.84, 95.0, "invalid", "latitude"),
        (116.39, 39.90, "out_of_region", "outside"),  # Beijing: not this city
    ],
)
def test_bad_locations_are_refused_and_nothing_is_written(world: Any, lon: Any, lat: Any, code: str, match: str) -> None:
    with pytest.raises(cs.CaseError, match=match) as e:
        cs.create_case(world, cs.NewCase(category="exposed_garbage", lon=lon, lat=lat, description="x"), now=NOW)
    assert e.value.code == code
    assert world.count("cases") == 0 and world.count("case_events") == 0


def test_bad_fields_are_refused(world: Any) -> None:
    with pytest.raises(cs.CaseError) as e:
        report(world, category="no_such_thing")
    assert e.value.code == "unknown_category"
    with pytest.raises(cs.CaseError, match="at most 4000"):
        report(world, description="长" * (cs.MAX_DESCRIPTION + 1))
    with pytest.raises(cs.CaseError, match="photo URL"):
        report(world, photo_urls=["javascript:alert(1)"])
    lon, lat = at(0, 0)
    tomorrow = pd.Timestamp(NOW) + pd.Timedelta(days=1)
    with pytest.raises(cs.CaseError, match="future"):
        cs.create_case(world, cs.NewCase(category="exposed_garbage", lon=lon, lat=lat, description="x",
                                         reported_at=tomorrow), now=NOW)  # fmt: skip
    assert world.count("cases") == 0


def test_hostile_text_is_stored_as_given(world: Any) -> None:
    text = " | ".join(HOSTILE[:3]) + " <img src=x onerror=alert(1)>"
    made = report(world, description=text, address=HOSTILE[0], reporter_name=HOSTILE[1],
                  photo_urls=["https://example.org/a.jpg?x=1&y=2"])  # fmt: skip
    case = cs.get_case(world, made.case_id)
    assert case["description"] == text and case["address"] == HOSTILE[0] and case["reporter_name"] == HOSTILE[1]
    assert case["photo_urls"] == ["https://example.org/a.jpg?x=1&y=2"]
    # control characters are dropped, newlines kept
    made2 = report(world, 300, 300, category="dirty_road", description="a\x00b\x1bc\r\nd")
    assert cs.get_case(world, made2.case_id)["description"] == "abc\nd"


def test_a_likely_duplicate_is_linked_not_created_twice(world: Any) -> None:
    first = report(world, -400, 200)
    again = report(world, -380, 230, when=pd.Timestamp(NOW) + pd.Timedelta(hours=3), description="又有人反映垃圾")
    assert not again.created and again.duplicate_of == first.case_id and again.reason == "duplicate"
    assert world.count("cases") == 1
    case = cs.get_case(world, first.case_id)
    assert case["reports"] == 2 and case["rev"] == 1
    ev = cs.timeline(world, first.case_id)
    assert ev["action"].tolist() == ["report", "duplicate_report"]
    assert json.loads(ev["note"].iloc[1])["description"] == "又有人反映垃圾"
    # another category, far away, or much later: new cases
    assert report(world, -380, 230, category="dirty_road").created
    assert report(world, 600, -600).created
    assert report(world, -400, 200, when=pd.Timestamp(NOW) + pd.Timedelta(days=3)).created
    # a finished case is not a duplicate target: only open ones are
    cs.act(world, first.case_id, "reject", actor="d", now=NOW)
    assert report(world, -390, 210, when=pd.Timestamp(NOW) + pd.Timedelta(hours=4)).created


def test_the_same_external_id_is_imported_once(world: Any) -> None:
    a = report(world, source="hotline_12345", external_id="GD001")
    b = report(world, 300, 300, category="dirty_road", source="hotline_12345", external_id="GD001")
    assert a.created and not b.created and b.case_id == a.case_id and b.reason == "already_imported"


def test_the_whole_loop_with_its_events_and_the_clock(world: Any) -> None:
    cid = report(world).case_id  # exposed garbage: 1 working day
    t = pd.Timestamp(NOW)
    case = cs.assign(world, cid, 1, actor="dispatcher:7", now=t)
    assert case["state"] == "dispatched" and case["assignee_id"] == 1 and case["assignee_name"] == "王网格"
    # Wednesday 10:00 local + 9 working hours = Thursday 10:00 local = Thursday 02:00 UTC
    assert pd.Timestamp(case["deadline_at"]) == t + pd.Timedelta(days=1)
    assert pd.Timestamp(case["accept_deadline_at"]) == t + pd.Timedelta(hours=2)
    steps = [("accept", {}), ("start", {}), ("resolve", {"note": "已清运"}), ("verify", {}), ("close", {}),
             ("evaluate", {"satisfaction": 5})]  # fmt: skip
    for i, (action, kw) in enumerate(steps, 1):
        case = cs.act(world, cid, action, actor="staff:1", expected_rev=case["rev"], now=t + pd.Timedelta(minutes=10 * i), **kw)
    assert case["state"] == "evaluated" and case["satisfaction"] == 5 and case["closed_at"] is not None
    ev = cs.timeline(world, cid)
    assert ev["action"].tolist() == ["report", "file", "dispatch", "accept", "start", "resolve", "verify", "close", "evaluate"]
    assert ev["to_state"].tolist()[-1] == "evaluated" and ev["staff_name"].tolist()[2] == "王网格"
    assert ev["rev"].tolist()[1:] == [1, 1, 2, 3, 4, 5, 6, 7]
    # history cannot be rewritten
    with pytest.raises(Exception, match="append-only"):
        world.update("case_events", {"case_id": cid}, {"note": "rewritten"})
    # reopen: back to filed, the clock reset for the next dispatch
    case = cs.act(world, cid, "reopen", actor="dispatcher:7", note="居民反映又有垃圾", now=t + pd.Timedelta(days=2))
    assert case["state"] == "filed" and case["assignee_id"] is None and case["deadline_at"] is None


def test_an_action_from_the_wrong_state_is_refused(world: Any) -> None:
    cid = report(world).case_id
    with pytest.raises(cs.CaseError) as e:
        cs.act(world, cid, "close", actor="x", now=NOW)
    assert e.value.code == "bad_state"
    with pytest.raises(cs.CaseError, match="only from closed"):
        cs.act(world, cid, "evaluate", actor="x", now=NOW)
    with pytest.raises(cs.CaseError, match="no staff member 999"):
        cs.assign(world, cid, 999, actor="x", now=NOW)
    with pytest.raises(cs.CaseNotFound):
        cs.act(world, 424242, "file", actor="x", now=NOW)
    assert cs.timeline(world, cid)["action"].tolist() == ["report"]


def test_a_stale_view_cannot_overwrite_a_newer_change(world: Any) -> None:
    cid = report(world).case_id
    seen = cs.get_case(world, cid)["rev"]
    cs.assign(world, cid, 1, actor="dispatcher:a", now=NOW)
    with pytest.raises(cs.CaseConflict) as e:
        cs.assign(world, cid, 2, actor="dispatcher:b", expected_rev=seen, now=NOW)
    assert "王网格" in str(e.value) and e.value.current["assignee_id"] == 1
    # with the current rev, a reassignment goes through and is an event of its own
    case = cs.assign(world, cid, 2, actor="dispatcher:b", expected_rev=cs.get_case(world, cid)["rev"], now=NOW)
    assert case["assignee_id"] == 2
    assert cs.timeline(world, cid)["action"].tolist()[-1] == "reassign"
    case = cs.act(world, cid, "unassign", actor="dispatcher:b", expected_rev=case["rev"], now=NOW)
    assert case["state"] == "filed" and case["assignee_id"] is None


def _second_connection(store: Any) -> Any:
    from store import open_store

    return open_store(store.url)


def test_two_dispatchers_on_two_connections_one_wins(world: Any) -> None:
    """The race on the database itself: two connections (as two console or API processes have),
    each dispatcher assigning the same unassigned case to someone else at the same moment."""
    other = _second_connection(world)
    try:
        for round_ in range(5):
            cid = report(world, -400 + 10 * round_, 200, category="dirty_road", dedupe=False).case_id
            barrier = threading.Barrier(2)
            results: dict[str, Any] = {}

            def go(name: str, st: Any, staff: int, cid: int = cid, barrier: threading.Barrier = barrier,
                   results: dict[str, Any] = results) -> None:  # fmt: skip
                barrier.wait()
                try:
                    results[name] = cs.assign(st, cid, staff, actor=name, now=NOW)["assignee_id"]
                except cs.CaseConflict as e:
                    results[name] = e

            threads = [threading.Thread(target=go, args=("a", world, 1)), threading.Thread(target=go, args=("b", other, 3))]
            for th in threads:
                th.start()
            for th in threads:
                th.join(30)
            wins = [k for k, v in results.items() if not isinstance(v, Exception)]
            assert len(wins) == 1, results
            loser = "b" if wins[0] == "a" else "a"
            winner_name = "王网格" if wins[0] == "a" else "赵机动"
            assert winner_name in str(results[loser])
            ev = cs.timeline(world, cid)
            assert ev["action"].tolist().count("dispatch") == 1
    finally:
        other.close()


def test_escalation_goes_up_one_level_per_missed_window(world: Any) -> None:
    cid = report(world).case_id
    t = pd.Timestamp(NOW)
    cs.assign(world, cid, 1, actor="d", now=t)  # accept within 2 h
    assert cs.escalate_due(world, now=t + pd.Timedelta(hours=1)) == []
    out = cs.escalate_due(world, now=t + pd.Timedelta(hours=2, minutes=1))
    assert [o.case_id for o in out if o.ok] == [cid]
    assert cs.get_case(world, cid)["escalation_level"] == 1
    # not again before another window has passed; then to the street
    assert cs.escalate_due(world, now=t + pd.Timedelta(hours=3)) == []
    cs.escalate_due(world, now=t + pd.Timedelta(hours=4, minutes=2))
    assert cs.get_case(world, cid)["escalation_level"] == 2
    ev = cs.timeline(world, cid)
    assert ev["action"].tolist()[-2:] == ["escalate", "escalate"] and "not accepted" in ev["note"].iloc[-1]
    # accepted but past its deadline: escalates for that reason, and never past the district
    case = cs.act(world, cid, "accept", actor="staff:1", now=t + pd.Timedelta(hours=5))
    late = pd.Timestamp(case["deadline_at"]) + pd.Timedelta(minutes=1)
    cs.escalate_due(world, now=late)
    case = cs.get_case(world, cid, now=late)
    assert case["escalation_level"] == 3 and case["overdue"]
    assert cs.escalate_due(world, now=late + pd.Timedelta(days=3)) == []
    assert "not resolved" in cs.timeline(world, cid)["note"].iloc[-1]


def test_summoned_departments_each_accept_and_report(world: Any) -> None:
    cid = report(world).case_id
    case = cs.summon(world, cid, ["urban_management", "housing"], actor="street:211202001", due_hours=12, now=NOW)
    assert case["kind"] == "multi_department" and len(case["summons"]) == 2
    cs.department_responds(world, cid, "housing", actor="住建局张科长", now=NOW)
    cs.department_responds(world, cid, "urban_management", actor="城管", step="report", note="已处理", now=NOW)
    rows = cs.get_case(world, cid)["summons"].set_index("department")
    assert pd.notna(rows.loc["housing", "accepted_at"]) and pd.isna(rows.loc["housing", "reported_back_at"])
    assert pd.notna(rows.loc["urban_management", "reported_back_at"])
    with pytest.raises(cs.CaseError, match="already"):
        cs.department_responds(world, cid, "housing", actor="x", now=NOW)
    with pytest.raises(cs.CaseError, match="unknown department"):
        cs.summon(world, cid, ["nobody"], actor="x", now=NOW)
    actions = cs.timeline(world, cid)["action"].tolist()
    assert actions == ["report", "summon", "department_accept", "department_report"]


def test_category_limits_are_editable_and_used_at_the_next_dispatch(world: Any) -> None:
    cs.set_category_limit(world, "exposed_garbage", time_limit=3, limit_unit="hours", accept_hours=0.5)
    cat = cs.category(world, "exposed_garbage")
    assert (cat["time_limit"], cat["limit_unit"], cat["accept_hours"]) == (3.0, "hours", 0.5)
    cid = report(world).case_id
    case = cs.assign(world, cid, 1, actor="d", now=NOW)
    assert pd.Timestamp(case["deadline_at"]) == pd.Timestamp(NOW) + pd.Timedelta(hours=3)
    with pytest.raises(cs.CaseError):
        cs.set_category_limit(world, "exposed_garbage", time_limit=-1, limit_unit="hours")
    with pytest.raises(cs.CaseError):
        cs.set_category_limit(world, "exposed_garbage", time_limit=1, limit_unit="fortnights")


def test_candidates_rank_fresh_nearby_staff_and_fall_back_to_the_grid(world: Any) -> None:
    cid = report(world, -450, 50).case_id  # west grid, beside 王网格 (fresh, responsible)
    got = dispatch.candidates(world, cid, now=NOW)
    table = got.table
    assert table["staff_id"].iloc[0] == 1 and "grid_responsible" in table["reasons"].iloc[0]
    assert 6 not in set(table["staff_id"])  # off duty, not responsible
    assert (table["distance_m"].dropna() > 0).all() and set(table["distance_kind"]) <= {"road", "straight", "none"}
    # everyone's positions go stale: the grid's own staff are still offered
    later = pd.Timestamp(NOW) + pd.Timedelta(hours=6)
    stale = dispatch.candidates(world, cid, now=later).table
    assert {1, 4} <= set(stale["staff_id"]) and not stale["fresh"].any()
    # workload counts: give 赵机动 (3) work and see it reported
    for k in range(3):
        other = report(world, 100 + 40 * k, -500, category="dirty_road", dedupe=False).case_id
        cs.assign(world, other, 3, actor="d", now=NOW)
    again = dispatch.candidates(world, cid, now=NOW).table.set_index("staff_id")
    assert again.loc[3, "workload"] == 3


def test_surge_plan_respects_capacity_and_assigns_only_when_confirmed(world: Any) -> None:
    ids = [report(world, -600 + 150 * k, 300 - 100 * k, category="dirty_road", dedupe=False).case_id for k in range(6)]
    plan = dispatch.surge_plan(world, capacity=1, now=NOW)
    assigned = plan.dropna(subset=["staff_id"])
    assert set(plan["case_id"]) == set(ids)
    assert assigned["staff_id"].value_counts().max() == 1
    assert world.count("cases", where={"state": "dispatched"}) == 0  # a proposal only
    out = cs.bulk(world, [(int(a), int(b)) for a, b in zip(assigned["case_id"], assigned["staff_id"], strict=True)], actor="d", now=NOW)
    assert all(o.ok for o in out)
    assert world.count("cases", where={"state": "dispatched"}) == len(assigned)


def test_board_lists_flags_and_falls_back_to_counts_when_crowded(world: Any) -> None:
    for k in range(4):
        report(world, -700 + 30 * k, 600, category="exposed_garbage", dedupe=False, when=pd.Timestamp(NOW) - timedelta(hours=k))
    b = dispatch.board(world, bbox=None, now=NOW)
    assert b.stats["open"] == 4 and b.stats["unassigned"] == 4 and len(b.cases) == 4
    assert b.cases["cluster"].notna().all() and len(b.outlines) == 1  # four alike, close together: one group
    crowded = dispatch.board(world, bbox=None, now=NOW, max_drawn=2)
    assert crowded.counts is not None and len(crowded.cases) == 0
    assert crowded.counts["open"].sum() == 4


def test_search_finds_cases_in_any_state(world: Any) -> None:
    a = report(world, description="楼道堆放杂物").case_id
    b = report(world, 300, 300, category="dirty_road", description="门前泥土").case_id
    cs.act(world, b, "reject", actor="d", note="不属实", now=NOW)
    assert set(cs.search(world, since=pd.Timestamp(NOW) - pd.Timedelta(days=1))["id"]) == {a, b}
    assert cs.search(world, states=["rejected"])["id"].tolist() == [b]
    assert cs.search(world, text="杂物", since=pd.Timestamp(NOW) - pd.Timedelta(days=1))["id"].tolist() == [a]
    assert cs.search(world, case_id=a)["id"].tolist() == [a]


def test_the_search_widens_until_nobody_outside_could_rank_higher(world: Any) -> None:
    """A police case: grid workers are close, the only free police officer is 2 km away, outside
    the first box searched; the officer's role fit outweighs the distance and must be found."""
    import geopandas as gpd
    from shapely.geometry import Point

    world.write("staff", pd.DataFrame({"id": [7], "name": ["吴警官"], "role": ["police"], "on_duty": [True]}))
    world.write("latest_positions", gpd.GeoDataFrame({"staff_id": [7], "ts": [NOW]}, geometry=[Point(*at(2300, 0))], crs=4326))
    cid = report(world, 300, 0, category="public_order", description="夜间有人聚集").case_id
    table = dispatch.candidates(world, cid, limit=3, roads=False, now=NOW).table
    assert 7 in set(table["staff_id"]), table[["staff_id", "score", "reasons"]]
    assert table.set_index("staff_id").loc[7, "distance_m"] > dispatch.START_RADIUS_M
