"""Years of demo cases (事件) with categories, hot spots, seasons, time limits, states and history.

Vectorised with numpy: the ``city`` size makes over a million cases and several million events.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from demo.names import person_names, phones

# Per-category time limits (hours from dispatch) after DOMAIN.md: exposed garbage 1 working day,
# dirty road 5 working hours, illegal building 15 working days, "1-2-20" for general matters.
CATEGORIES: list[dict[str, object]] = [
    dict(code="neighbour_dispute", name_zh="邻里纠纷", name_en="Neighbour dispute", time_limit_hours=72.0, handler_role="mediator"),
    dict(code="family_dispute", name_zh="家庭纠纷", name_en="Family dispute", time_limit_hours=72.0, handler_role="mediator"),
    dict(code="land_lease_dispute", name_zh="土地流转纠纷", name_en="Land-lease dispute", time_limit_hours=480.0, handler_role="legal_adviser"),
    dict(code="facility_repair", name_zh="设施损坏维修", name_en="Broken facility", time_limit_hours=48.0, handler_role="grid_worker_full"),
    dict(code="exposed_garbage", name_zh="暴露垃圾", name_en="Exposed garbage", time_limit_hours=24.0, handler_role="grid_worker_full"),
    dict(code="dirty_road", name_zh="道路不洁", name_en="Dirty road", time_limit_hours=5.0, handler_role="grid_worker_full"),
    dict(code="illegal_building", name_zh="违法建设", name_en="Illegal building", time_limit_hours=360.0, handler_role="grid_worker_full"),
    dict(code="safety_hazard", name_zh="安全隐患", name_en="Safety hazard", time_limit_hours=24.0, handler_role="police"),
    dict(code="fraud_lead", name_zh="涉诈线索", name_en="Suspected fraud", time_limit_hours=12.0, handler_role="police"),
    dict(code="public_order", name_zh="治安问题", name_en="Public order", time_limit_hours=2.0, handler_role="police"),
    dict(code="heating", name_zh="供暖问题", name_en="Heating problem", time_limit_hours=48.0, handler_role="grid_worker_full"),
    dict(code="flooding", name_zh="道路积水", name_en="Flooded path", time_limit_hours=12.0, handler_role="grid_worker_full"),
    dict(code="animal", name_zh="动物侵扰", name_en="Animal in residence", time_limit_hours=2.0, handler_role="grid_worker_full"),
    dict(code="noise", name_zh="噪声扰民", name_en="Noise", time_limit_hours=24.0, handler_role="grid_worker_full"),
]
# The admin-editable limits (issue 5): (time limit, unit, hours to accept, kind, department, urgency).
# DOMAIN.md: garbage 1 working day, dirty road 5 working hours, illegal building 15 working days,
# "1-2-20" (accept in a day, finish in 20 days) for land-lease disputes.
LIMITS: dict[str, tuple[float, str, float, str, str | None, int]] = {
    "neighbour_dispute": (72.0, "hours", 4.0, "deadline", "justice", 1),
    "family_dispute": (72.0, "hours", 4.0, "deadline", "civil_affairs", 1),
    "land_lease_dispute": (20.0, "working_days", 24.0, "multi_department", "agriculture", 1),
    "facility_repair": (48.0, "hours", 4.0, "deadline", "housing", 2),
    "exposed_garbage": (1.0, "working_days", 2.0, "deadline", "urban_management", 1),
    "dirty_road": (5.0, "working_hours", 1.0, "deadline", "urban_management", 1),
    "illegal_building": (15.0, "working_days", 24.0, "multi_department", "urban_management", 1),
    "safety_hazard": (24.0, "hours", 1.0, "immediate", "emergency", 3),
    "fraud_lead": (12.0, "hours", 1.0, "immediate", "public_security", 2),
    "public_order": (2.0, "hours", 0.25, "immediate", "public_security", 3),
    "heating": (48.0, "hours", 4.0, "deadline", "heating_company", 2),
    "flooding": (12.0, "hours", 1.0, "immediate", "water_affairs", 2),
    "animal": (2.0, "hours", 0.5, "immediate", "emergency", 3),
    "noise": (24.0, "hours", 2.0, "deadline", "ecology_environment", 1),
}
DEPARTMENTS: list[dict[str, object]] = [
    dict(code="urban_management", name_zh="城市管理综合行政执法局", name_en="Urban management", phone="024-12319"),
    dict(code="housing", name_zh="住房和城乡建设局", name_en="Housing and construction", phone=None),
    dict(code="public_security", name_zh="公安分局", name_en="Public security bureau", phone="110"),
    dict(code="civil_affairs", name_zh="民政局", name_en="Civil affairs", phone=None),
    dict(code="justice", name_zh="司法局", name_en="Justice bureau", phone=None),
    dict(code="agriculture", name_zh="农业农村局", name_en="Agriculture and rural affairs", phone=None),
    dict(code="emergency", name_zh="应急管理局", name_en="Emergency management", phone="119"),
    dict(code="heating_company", name_zh="供热公司", name_en="Heating company", phone=None),
    dict(code="water_affairs", name_zh="水务局", name_en="Water affairs", phone=None),
    dict(code="ecology_environment", name_zh="生态环境局", name_en="Ecology and environment", phone="12369"),
    dict(code="market_regulation", name_zh="市场监督管理局", name_en="Market regulation", phone="12315"),
]


def categories_frame() -> pd.DataFrame:
    """CATEGORIES with their limits (LIMITS) as the case_categories table."""
    rows = []
    for c in CATEGORIES:
        limit, unit, accept, kind, dept, urgency = LIMITS[str(c["code"])]
        rows.append({**c, "time_limit": limit, "limit_unit": unit, "accept_hours": accept, "kind": kind,
                     "department": dept, "urgency": urgency, "active": True})  # fmt: skip
    return pd.DataFrame(rows)


_CODES = [str(c["code"]) for c in CATEGORIES]
_LIMITS = np.array([float(c["time_limit_hours"]) for c in CATEGORIES])  # type: ignore[arg-type]
# Relative frequency of each category in urban communities and in villages.
_URBAN_W = np.array([14, 6, 0, 12, 12, 8, 3, 6, 3, 4, 9, 4, 2, 9], dtype=float)
_RURAL_W = np.array([12, 8, 14, 6, 8, 3, 6, 6, 4, 3, 0, 6, 4, 2], dtype=float)
_TEMPLATES = {
    "neighbour_dispute": "{a}楼上阳台漏水，与邻居协商未果",
    "family_dispute": "{a}家庭成员因赡养问题发生争吵",
    "land_lease_dispute": "{a}村民反映土地流转合同租金未按期支付",
    "facility_repair": "{a}楼道扶手损坏，残疾居民出行不便",
    "exposed_garbage": "{a}附近有暴露垃圾未清运",
    "dirty_road": "{a}门前道路泥土较多",
    "illegal_building": "{a}院内新建彩钢房疑似违建",
    "safety_hazard": "{a}电动车楼道内充电，存在消防隐患",
    "fraud_lead": "{a}有人向老年人推销“保健品”，疑似诈骗",
    "public_order": "{a}夜间有人聚集酗酒滋事",
    "heating": "{a}供暖季室温偏低并有异味",
    "flooding": "{a}雨后道路积水，出行困难",
    "animal": "{a}院内发现蛇，请求处置",
    "noise": "{a}夜间装修噪声扰民",
}
SOURCES = np.array(["app", "hotline_12345", "cctv", "walk_in", "referral"])
SOURCE_P = np.array([0.46, 0.38, 0.06, 0.07, 0.03])
# The closed loop, in order; 'rejected' is a side exit after 'reported'.
STAGES = ["reported", "filed", "dispatched", "accepted", "in_progress", "resolved", "verified", "closed", "evaluated"]
ACTIONS = ["report", "file", "dispatch", "accept", "start", "resolve", "verify", "close", "evaluate"]

Progress = Callable[[str, int], None]


def generate_cases(
    rng: np.random.Generator,
    *,
    buildings: gpd.GeoDataFrame,
    units: gpd.GeoDataFrame,
    staff: pd.DataFrame,
    staff_grids: pd.DataFrame,
    now: datetime,
    per_household_year: float,
    years: float,
    progress: Progress,
) -> tuple[gpd.GeoDataFrame, pd.DataFrame]:
    """Cases (metric CRS of ``buildings``) and their events, ids ordered by report time."""
    res = buildings[buildings["households"] > 0]
    hh = res["households"].to_numpy(dtype=float)
    n = int(round(hh.sum() * per_household_year * years))
    if n == 0:
        raise ValueError("no households to generate cases for")

    # Hot spots: a tenth of the villages/communities report three times as much.
    unit_codes = res["unit_code"].to_numpy()
    uniq = np.unique(unit_codes)
    hot = set(rng.choice(uniq, size=max(1, len(uniq) // 10), replace=False))
    weight = hh * np.where(np.isin(unit_codes, list(hot)), 3.0, 1.0)
    b_idx = rng.choice(len(res), size=n, p=weight / weight.sum())

    rural = (res["kind"].to_numpy() == "house")[b_idx]
    cat = np.empty(n, dtype=np.int64)
    for mask, w in ((rural, _RURAL_W), (~rural, _URBAN_W)):
        cat[mask] = rng.choice(len(w), size=int(mask.sum()), p=w / w.sum())

    # Report times: growing volume over the years, daytime peaks, seasons for heating/flooding.
    now_ts = pd.Timestamp(now)
    span_s = years * 365.25 * 86400
    u = rng.random(n)
    age_s = span_s * (1 - np.sqrt(u))  # density rising linearly towards now
    t = now_ts.value // 10**9 - age_s
    day = np.floor(t / 86400) * 86400
    hour = rng.choice(24, size=n, p=_hour_weights())
    t = day + hour * 3600 + rng.integers(0, 3600, n).astype(float)
    month = pd.to_datetime(t, unit="s").month.to_numpy()
    heat = (np.array(_CODES)[cat] == "heating") & ~np.isin(month, [11, 12, 1, 2, 3])
    t[heat] = _move_to_months(rng, t[heat], [11, 12, 1, 2])
    flood = (np.array(_CODES)[cat] == "flooding") & ~np.isin(month, [6, 7, 8])
    t[flood] = _move_to_months(rng, t[flood], [6, 7, 8])
    t = np.minimum(t, now_ts.value // 10**9 - 60)
    order = np.argsort(t, kind="stable")
    t, cat, b_idx, rural = t[order], cat[order], b_idx[order], rural[order]
    progress("cases", 0)

    # How far along the loop each case is: old cases are finished, recent ones spread out.
    limit_s = _LIMITS[cat] * 3600
    age = now_ts.value // 10**9 - t
    final = np.full(n, STAGES.index("evaluated"))
    final[rng.random(n) < 0.25] = STAGES.index("closed")
    rejected = rng.random(n) < 0.04
    recent = age < 3 * limit_s + 2 * 86400
    progress_frac = np.clip(age / (limit_s + 86400), 0, 1.2)
    stage_recent = np.minimum(
        (progress_frac * rng.uniform(2.0, 9.0, n)).astype(np.int64), STAGES.index("evaluated")
    )
    final = np.where(recent, stage_recent, final)

    # Stage times (seconds): cumulative delays after the report.
    d = np.zeros((n, len(STAGES)))
    d[:, 1] = rng.uniform(300, 7200, n)  # filed
    d[:, 2] = d[:, 1] + rng.uniform(600, 10800, n)  # dispatched: the clock starts
    d[:, 3] = d[:, 2] + rng.uniform(300, 7200, n)  # accepted
    d[:, 4] = d[:, 3] + rng.uniform(60, 3600, n)  # in progress
    overdue = rng.random(n) < 0.07
    work = limit_s * np.where(overdue, rng.uniform(1.05, 2.5, n), rng.uniform(0.2, 0.95, n))
    d[:, 5] = d[:, 2] + np.maximum(work, d[:, 4] - d[:, 2] + 60)  # resolved
    d[:, 6] = d[:, 5] + rng.uniform(3600, 86400, n)  # verified on site
    d[:, 7] = d[:, 6] + rng.uniform(60, 14400, n)  # closed (销号)
    d[:, 8] = d[:, 7] + rng.uniform(3600, 172800, n)  # evaluated
    stage_t = t[:, None] + d
    # A case cannot be further along than time allows.
    reached = stage_t <= (now_ts.value // 10**9)
    max_reached = reached.sum(axis=1) - 1
    final = np.minimum(final, max_reached)
    state = np.array(STAGES, dtype=object)[final]
    state[rejected & (final >= 1)] = "rejected"
    is_rej = state == "rejected"
    progress("cases", 0)

    # Who handles it: the building's grid worker, the community police for security matters.
    grid = res["grid_code"].to_numpy()[b_idx]
    unit = unit_codes[b_idx]
    worker_of = (
        staff_grids.merge(staff[["id", "role"]], left_on="staff_id", right_on="id")
        .query("role == 'grid_worker_full'")
        .drop_duplicates("grid_code")
        .set_index("grid_code")["staff_id"]
    )
    police_of = (
        staff_grids.merge(staff[["id", "role"]], left_on="staff_id", right_on="id")
        .query("role == 'police'")
        .drop_duplicates("grid_code")
        .set_index("grid_code")["staff_id"]
    )
    is_police = np.isin(np.array(_CODES)[cat], ["safety_hazard", "fraud_lead", "public_order"])
    assignee = pd.Series(grid).map(worker_of).to_numpy(dtype=float)
    pol = pd.Series(grid).map(police_of).to_numpy(dtype=float)
    assignee = np.where(is_police & ~np.isnan(pol), pol, assignee)
    dispatched = (final >= 2) & ~is_rej
    assignee = np.where(dispatched, assignee, np.nan)

    # Location: at the building, a few metres off.
    cent = shapely.centroid(res.geometry.to_numpy()[b_idx])
    x = shapely.get_x(cent) + rng.normal(0, 6, n)
    y = shapely.get_y(cent) + rng.normal(0, 6, n)
    parent = units.set_index("code")["parent_code"]
    township = pd.Series(unit).map(parent).to_numpy()
    county = pd.Series(township).map(parent).to_numpy()
    bnames = res["name"].to_numpy()[b_idx]
    codes = np.array(_CODES, dtype=object)[cat]
    desc = [_TEMPLATES[c].format(a=a) for c, a in zip(codes, bnames, strict=True)]
    src = rng.choice(SOURCES, size=n, p=SOURCE_P)
    satisfaction = np.where(rng.random(n) < 0.95, rng.choice([4, 5], n, p=[0.3, 0.7]), rng.choice([1, 2, 3], n))
    urgency = np.where(np.isin(codes, ["public_order", "animal"]), 3, np.where(rng.random(n) < 0.1, 2, 1))
    progress("cases", 0)

    def ts(col: np.ndarray, mask: np.ndarray) -> pd.Series:
        out = pd.to_datetime(np.where(mask, col, np.nan), unit="s", utc=True)
        return pd.Series(out).dt.floor("s")

    ids = np.arange(1, n + 1, dtype=np.int64)
    cases = gpd.GeoDataFrame(
        {
            "id": ids,
            "category": codes,
            "description": desc,
            "address": bnames,
            "reporter_name": person_names(rng, n),
            "reporter_phone": phones(rng, n),
            "source": src,
            "state": state,
            "urgency": urgency,
            "grid_code": grid,
            "village_code": unit,
            "township_code": township,
            "county_code": county,
            "reported_at": ts(t, np.ones(n, bool)),
            "dispatched_at": ts(stage_t[:, 2], dispatched),
            "deadline_at": ts(stage_t[:, 2] + limit_s, dispatched),
            "closed_at": ts(stage_t[:, 7], (final >= 7) & ~is_rej),
            "assignee_id": pd.Series(assignee).round().astype("Int64"),
            "satisfaction": pd.Series(satisfaction, dtype="Int64").where((final >= 8) & ~is_rej),
        },
        geometry=shapely.points(x, y),
        crs=buildings.crs,
    )
    progress("cases", 1)

    # Events: one per stage reached (a rejected case: report + reject).
    ev_case, ev_stage = [], []
    for s in range(len(STAGES)):
        m = (final >= s) & (~is_rej if s >= 1 else np.ones(n, bool))
        ev_case.append(ids[m])
        ev_stage.append(np.full(int(m.sum()), s))
    rej_ids = ids[is_rej & (final >= 1)]
    case_arr = np.concatenate(ev_case + [rej_ids])
    stage_arr = np.concatenate(ev_stage + [np.full(len(rej_ids), 1)])
    is_reject_ev = np.concatenate([np.zeros(sum(len(e) for e in ev_case), bool), np.ones(len(rej_ids), bool)])
    row = case_arr - 1
    ev_t = stage_t[row, stage_arr]
    order = np.lexsort((stage_arr, case_arr))
    case_arr, stage_arr, is_reject_ev, ev_t, row = (
        case_arr[order],
        stage_arr[order],
        is_reject_ev[order],
        ev_t[order],
        row[order],
    )
    actions = np.array(ACTIONS, dtype=object)[stage_arr]
    actions[is_reject_ev] = "reject"
    to_state = np.array(STAGES, dtype=object)[stage_arr]
    to_state[is_reject_ev] = "rejected"
    from_state = np.where(stage_arr > 0, np.array([None] + STAGES[:-1], dtype=object)[stage_arr], None)
    handler = np.array([f"staff:{int(a)}" if not np.isnan(a) else "staff" for a in assignee], dtype=object)
    # A case from the grid workers' app is reported by the worker of its grid (their KPI).
    grid_worker = pd.Series(grid).map(worker_of).to_numpy(dtype=float)
    reporter = np.array(
        [f"staff:{int(w)}" if s == "app" and not np.isnan(w) else s for s, w in zip(src, grid_worker, strict=True)],
        dtype=object,
    )
    actor = np.where(
        np.isin(stage_arr, [3, 4, 5]),
        handler[row],
        np.where(stage_arr == 0, reporter[row], np.where(stage_arr == 8, "resident", "dispatcher")),
    )
    events = pd.DataFrame(
        {
            "case_id": case_arr,
            "ts": pd.Series(pd.to_datetime(ev_t, unit="s", utc=True)).dt.floor("s"),
            "actor": actor,
            "action": actions,
            "from_state": from_state,
            "to_state": to_state,
            "note": None,
        }
    )
    events.insert(0, "id", np.arange(1, len(events) + 1, dtype=np.int64))
    progress("cases", 1)
    return cases, events


def _hour_weights() -> np.ndarray:
    w = np.array([1, 0.6, 0.4, 0.3, 0.3, 0.6, 1.5, 3, 5, 6, 6, 5.5, 4, 5, 6, 6, 5.5, 5, 4, 3.5, 3, 2.5, 2, 1.5])
    return w / w.sum()


def _move_to_months(rng: np.random.Generator, t: np.ndarray, months: list[int]) -> np.ndarray:
    """Move each instant into one of the given months of the same year, keeping the time of day."""
    if len(t) == 0:
        return t
    dt = pd.to_datetime(t, unit="s")
    m = rng.choice(months, size=len(t))
    days = rng.integers(1, 29, size=len(t))
    target = pd.to_datetime(
        {"year": dt.year.to_numpy(), "month": m, "day": days}
    ) + pd.to_timedelta(t % 86400, unit="s")
    return target.to_numpy().astype("datetime64[s]").astype(np.int64).astype(float)
