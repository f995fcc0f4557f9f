"""Dispatch: click a case on the map, see who is near and fit, assign in one more click; follow the
loop and its time limits; assign many at once (surge plan) and handle similar cases together."""

from __future__ import annotations

import time
from typing import Any

import pandas as pd
import streamlit as st
from streamlit_folium import st_folium

from console import access, camerasui, casesui, state
from console.i18n import labels, t
from console.mapui import display_frame, initial_view, unshift_click, view_from_state
from layers.basemap import build_base_map, needs_gcj02_shift, with_release
from layers.cameras import build_seeing_layer
from layers.cases import (
    CLICK_RETURNED_OBJECTS,
    build_candidates_layer,
    build_case_counts_layer,
    build_cases_layer,
    build_clusters_layer,
    case_from_click,
)
from services import cases as cs
from services import dispatch
from services.settings import city_tz

MAP_KEY = "dispatch_map"
SEL = "dispatch_case"
NEW = "dispatch_new_at"
LAYER_PREFIXES = ("case.", "cstate.", "cand.", "cluster.", "reason.", "role.", "kind.", "urgency.", "level.", "dur.", "dist.", "cam.", "camstat.")

BOARD_TICK_S = 15  # overdue flags move with the clock: recomputed at least this often


@st.cache_data(ttl=2 * BOARD_TICK_S, max_entries=128, show_spinner=False)
def _board(url: str, bbox: tuple[float, float, float, float], lang: str, states: tuple[str, ...],
           cats: tuple[str, ...], prefix: str | None, overdue_only: bool, mark: int, tick: int) -> dispatch.Board:
    """The board of one view and filter, shared by every dispatcher looking at the same thing, and
    computed afresh after any change to any case (``mark``) or every BOARD_TICK_S."""
    return dispatch.board(state.get_store(), bbox=bbox, lang=lang, states=list(states) or None,
                          categories_=list(cats) or None, unit_prefix=prefix, overdue_only=overdue_only)  # fmt: skip


lang = state.lang()
who = access.require("cases.assign", lang)
st.title(t("page.dispatch", lang))
store, summary = state.store_and_city()
state.local_assets(state.static_prefix())
tz = city_tz(store)
L = labels(LAYER_PREFIXES, lang)
config = state.basemap()
shifted = needs_gcj02_shift(config)
casesui.flash()

# ----------------------------------------------------------------------------- filters
cat_names, unit_names = casesui.pickers(store, lang)
f = st.columns([2, 3, 3, 1.4])
unit = f[0].selectbox(t("staff.unit_filter", lang), [""] + sorted(unit_names), key="dispatch_unit",
                      format_func=lambda u: unit_names.get(u, t("staff.whole_city", lang)))  # fmt: skip
chosen_cats = f[1].multiselect(t("dispatch.categories", lang), list(cat_names), format_func=lambda c: str(cat_names[c]),
                               key="dispatch_cats")  # fmt: skip
states = f[2].multiselect(t("dispatch.states", lang), list(cs.OPEN_STATES), default=list(cs.OPEN_STATES),
                          format_func=lambda s: casesui.state_label(s, lang), key="dispatch_states")  # fmt: skip
overdue_only = f[3].toggle(t("dispatch.overdue_only", lang), key="dispatch_overdue")

view = view_from_state(st.session_state.get(MAP_KEY), fallback=initial_view(summary.center, summary.zoom), shifted=shifted)
b = view.bbox
board = _board(store.url, (round(b[0], 5), round(b[1], 5), round(b[2], 5), round(b[3], 5)), lang, tuple(states), tuple(chosen_cats),
               state.area(who, unit or None), overdue_only, cs.change_mark(store), int(time.time() // BOARD_TICK_S))
m = st.columns(5)
for col, k in zip(m, ("open", "unassigned", "overdue", "due_soon", "escalated"), strict=True):
    col.metric(t(f"dispatch.stat.{k}", lang), f"{board.stats[k]:,}")

tab_map, tab_bulk, tab_batch = st.tabs([t("dispatch.tab.map", lang), t("dispatch.tab.bulk", lang), t("dispatch.tab.batch", lang)])


def _role(r: Any) -> str:
    return L.get(f"role.{r}", str(r))


def _reasons(codes: Any) -> str:
    return "，".join(L.get(f"reason.{c}", str(c)) for c in (codes or ())) if lang == "zh" else ", ".join(
        L.get(f"reason.{c}", str(c)) for c in (codes or ())
    )


def _staff_picker(column: Any, key: str) -> int | None:
    """On-duty staff with a position in the current view, to hand cases to."""
    near = dispatch.staff_frame(store, bbox=view.bbox)
    near = near[near["on_duty"]].sort_values("name")
    names = {int(s): f"{n} · {_role(r)}" for s, n, r in zip(near["staff_id"], near["name"], near["role"], strict=True)}
    if not names:
        return None
    return int(column.selectbox(t("dispatch.bulk_staff", lang), list(names), format_func=lambda s: names[s], key=key))


def _select(case_id: int | None) -> None:
    st.session_state[SEL] = case_id
    st.session_state.pop(NEW, None)


with tab_map:
    left, right = st.columns([3, 2])
    selected = st.session_state.get(SEL)
    cand = None
    seen_by = None
    if selected is not None:
        try:
            cand = dispatch.candidates(store, int(selected))
        except cs.CaseError:
            cand = None
        seen_by = camerasui.seeing(store, int(selected))
    with left:
        groups = []
        shown = display_frame(board.cases, shifted)
        counts_shown = None
        if board.counts is not None:
            counts_shown = display_frame(board.counts, shifted)
            groups.append(build_case_counts_layer(counts_shown, labels=L))
            st.caption(t("dispatch.too_many", lang, n=dispatch.MAX_CASES_DRAWN))
        elif len(board.outlines):
            groups.append(build_clusters_layer(display_frame(board.outlines, shifted), labels=L, tz=tz))
        if cand is not None and len(cand.table):
            table = cand.table.assign(role_label=cand.table["role"].map(_role), reason_text=cand.table["reasons"].map(_reasons))
            pts = display_frame(dispatch.lonlat_points(table), shifted)
            case_pt = display_frame(dispatch.point_frame(cand.lon, cand.lat), shifted).geometry.iloc[0]
            table = table.assign(lon=pts.geometry.x.to_numpy(), lat=pts.geometry.y.to_numpy())
            groups.append(build_candidates_layer(table, case_point=(case_pt.x, case_pt.y), labels=L))
        if cand is not None and seen_by is not None and len(seen_by):
            cam_pts = display_frame(dispatch.lonlat_points(seen_by), shifted)
            target = display_frame(dispatch.point_frame(cand.lon, cand.lat), shifted).geometry.iloc[0]
            groups.append(build_seeing_layer(seen_by.assign(lon=cam_pts.geometry.x.to_numpy(), lat=cam_pts.geometry.y.to_numpy()),
                                             target=(target.x, target.y), labels=L))  # fmt: skip
        if board.counts is None:
            groups.append(build_cases_layer(shown, labels=L, tz=tz, selected=selected))
        base = build_base_map(config=config, center=summary.center, zoom=summary.zoom)
        result = st_folium(base, key=MAP_KEY, height=640, use_container_width=True, feature_group_to_add=with_release(groups),
                           returned_objects=[*CLICK_RETURNED_OBJECTS, "last_clicked", "bounds", "zoom"]) or {}  # fmt: skip
        # A click on a marker bumps last_object_clicked_count (and also moves last_clicked, which is
        # swallowed); a click on the empty map moves only last_clicked: "create a case here".
        seen = st.session_state.setdefault("_dispatch_seen", {"count": 0, "spot": None})
        count, spot = int(result.get("last_object_clicked_count") or 0), result.get("last_clicked")
        if count < seen["count"]:  # the component remounted: its counter restarted
            seen["count"] = count
        if count and count != seen["count"]:
            seen["count"], seen["spot"] = count, spot
            if counts_shown is None:
                hit = case_from_click(result, shown, selected=selected)
                if hit is not None:
                    _select(hit)
                    st.rerun()
        elif isinstance(spot, dict) and spot != seen["spot"]:
            seen["spot"] = spot
            try:
                lon, lat = unshift_click(float(spot["lng"]), float(spot["lat"]), shifted)
            except (KeyError, TypeError, ValueError):
                pass
            else:
                st.session_state[SEL] = None
                st.session_state[NEW] = (lon, lat)
                st.rerun()
        st.caption(t("dispatch.click_hint", lang))
        # the list: the same cases, a row click selects like a map click
        if len(board.cases):
            rows = board.cases.head(500)
            listing = pd.DataFrame(
                {
                    "id": rows["id"].astype(int),
                    t("case.category", lang): rows["category_name"],
                    t("case.state", lang): rows["state"].map(lambda s: casesui.state_label(s, lang)),
                    t("case.due", lang): [t("case.overdue", lang) if o else (t("case.due_soon", lang) if d else "")
                                          for o, d in zip(rows["overdue"], rows["due_soon"], strict=True)],  # fmt: skip
                    t("case.assignee", lang): rows["assignee_name"].fillna(""),
                    t("case.address", lang): rows["address"].fillna(""),
                }
            )
            picked = st.dataframe(listing, hide_index=True, use_container_width=True, on_select="rerun",
                                  selection_mode="single-row", key="dispatch_list", height=260)  # fmt: skip
            sel_rows = picked.selection.rows if picked is not None else []
            marker = tuple(sel_rows)
            if sel_rows and st.session_state.get("_dispatch_list_seen") != marker:
                st.session_state["_dispatch_list_seen"] = marker
                _select(int(listing["id"].iloc[sel_rows[0]]))
                st.rerun()

    with right:
        new_at = st.session_state.get(NEW)
        if selected is None and new_at is not None:
            st.subheader(t("dispatch.new_case", lang))
            st.caption(f"{new_at[1]:.6f}, {new_at[0]:.6f}")
            with st.form("dispatch_new_form"):
                code = st.selectbox(t("case.category", lang), list(cat_names), format_func=lambda c: str(cat_names[c]))
                desc = st.text_area(t("case.description", lang), max_chars=cs.MAX_DESCRIPTION)
                addr = st.text_input(t("case.address", lang), max_chars=cs.MAX_SHORT_TEXT)
                urg = st.select_slider(t("case.urgency", lang), options=[1, 2, 3], value=1,
                                       format_func=lambda u: t(f"urgency.{u}", lang))  # fmt: skip
                if st.form_submit_button(t("dispatch.create", lang)):
                    try:
                        made = cs.create_case(store, cs.NewCase(category=code, lon=new_at[0], lat=new_at[1], description=desc,
                                                                address=addr, source="dispatcher", urgency=int(urg),
                                                                actor=casesui.actor()))  # fmt: skip
                    except cs.CaseError as e:
                        st.error(casesui.md(str(e)))
                    else:
                        _select(made.case_id)
                        access.audit(store, who, "case.create", target=made.case_id, detail=f"category={code} source=dispatcher")
                        st.session_state["_case_flash"] = ("success", t("dispatch.created" if made.created else "dispatch.linked", lang, id=made.case_id))
                        st.rerun()
        elif selected is None:
            st.info(t("dispatch.pick", lang))
        else:
            try:
                case = casesui.visible_case(store, int(selected))
            except cs.CaseNotFound:
                _select(None)
                st.rerun()
            casesui.case_header(case, lang, tz)
            st.markdown(f"**{t('dispatch.candidates', lang)}**")
            if cand is None or not len(cand.table):
                st.warning(t("dispatch.no_candidates", lang))
            else:
                assigned = case.get("assignee_id")
                can_assign = case["state"] in cs.UNASSIGNED_STATES + cs.WORKING_STATES
                verb = t("dispatch.reassign" if case["state"] in cs.WORKING_STATES else "dispatch.assign", lang)
                # the rev on screen when the button was clicked: a stale 派单 must not become a
                # silent reassignment of someone else's dispatch (casesui.seen_rev)
                rev = casesui.seen_rev(case, "dsp_assign")
                for row in cand.table.to_dict("records"):
                    c = st.columns([0.4, 2.6, 1.7, 1.1])
                    c[0].markdown(f"**{int(row['rank'])}**")
                    c[1].markdown(f"{casesui.md(row['name'])} · {casesui.md(_role(row['role']))}  \n"
                                  f":gray[{casesui.md(_reasons(row['reasons']))}]")  # fmt: skip
                    dist = "—" if pd.isna(row["distance_m"]) else (f"{row['distance_m'] / 1000:.1f} km" if row["distance_m"] >= 1000 else f"{row['distance_m']:.0f} m")
                    eta = "" if pd.isna(row["eta_s"]) else f" · {max(1, round(row['eta_s'] / 60))} min"
                    c[2].markdown(f"{dist}{eta}  \n:gray[{t('dispatch.workload', lang, n=int(row['workload']))}]")
                    mine = assigned is not None and int(assigned) == int(row["staff_id"])
                    if c[3].button(verb, key=f"assign_{case['id']}_{row['staff_id']}", disabled=mine or not can_assign,
                                   use_container_width=True, type="primary" if int(row["rank"]) == 1 else "secondary"):  # fmt: skip
                        casesui.run(lambda s=int(row["staff_id"]): cs.assign(store, int(case["id"]), s, actor=casesui.actor(),
                                                                          expected_rev=rev), lang,
                                    what="case.assign", target=f"{case['id']} → staff {row['staff_id']}")  # fmt: skip
            st.markdown(f"**{t('dispatch.cameras', lang)}**")
            camerasui.seeing_panel(seen_by, int(case["id"]), lang, key="dsp")
            st.markdown(f"**{t('dispatch.actions', lang)}**")
            casesui.action_bar(store, case, lang, key="dsp")
            st.markdown(f"**{t('dispatch.timeline', lang)}**")
            casesui.timeline(store, int(case["id"]), lang, tz)

# ----------------------------------------------------------------------------- bulk and surge
with tab_bulk:
    open_rows = board.cases
    if not len(open_rows):
        st.info(t("dispatch.bulk_empty", lang))
    else:
        st.caption(t("dispatch.bulk_hint", lang))
        listing = pd.DataFrame(
            {
                "id": open_rows["id"].astype(int),
                t("case.category", lang): open_rows["category_name"],
                t("case.state", lang): open_rows["state"].map(lambda s: casesui.state_label(s, lang)),
                t("case.assignee", lang): open_rows["assignee_name"].fillna(""),
                t("case.address", lang): open_rows["address"].fillna(""),
            }
        )
        picked = st.dataframe(listing, hide_index=True, use_container_width=True, on_select="rerun",
                              selection_mode="multi-row", key="bulk_list", height=300)  # fmt: skip
        ids = [int(listing["id"].iloc[i]) for i in (picked.selection.rows if picked is not None else [])]
        c = st.columns([3, 1, 1])
        pick = _staff_picker(c[0], "bulk_staff")
        if c[1].button(t("dispatch.bulk_assign", lang, n=len(ids)), disabled=not ids or pick is None, key="bulk_assign"):
            out = cs.bulk(store, [(i, pick) for i in ids], actor=casesui.actor())
            access.audit(store, who, "case.bulk_assign", target=f"staff {pick}", detail=f"cases {ids}"[:2000])
            casesui.outcome(out, lang)
        if c[2].button(t("dispatch.bulk_unassign", lang, n=len(ids)), disabled=not ids, key="bulk_unassign"):
            out = cs.bulk(store, [(i, None) for i in ids], actor=casesui.actor(), action="unassign")
            access.audit(store, who, "case.bulk_unassign", detail=f"cases {ids}"[:2000])
            casesui.outcome(out, lang)

        st.divider()
        st.markdown(f"**{t('dispatch.surge', lang)}**")
        st.caption(t("dispatch.surge_hint", lang))
        c = st.columns([1, 1, 2])
        capacity = c[0].number_input(t("dispatch.capacity", lang), 1, dispatch.MAX_WORKLOAD, 2, key="surge_cap")
        roads = c[1].toggle(t("dispatch.road_distance", lang), value=False, key="surge_roads")
        if c[2].button(t("dispatch.propose", lang), key="surge_go"):
            st.session_state["surge_plan"] = dispatch.surge_plan(store, bbox=view.bbox, capacity=int(capacity), roads=roads)
        plan = st.session_state.get("surge_plan")
        if isinstance(plan, pd.DataFrame) and len(plan):
            ok = plan.dropna(subset=["staff_id"])
            st.metric(t("dispatch.surge_total", lang), f"{ok['distance_m'].sum() / 1000:,.1f} km",
                      t("dispatch.surge_covered", lang, ok=len(ok), n=len(plan)), delta_color="off")  # fmt: skip
            shown = plan.assign(distance_m=plan["distance_m"].round(0))
            st.dataframe(shown.rename(columns={c: t(f"surge.{c}", lang) for c in shown.columns}), hide_index=True)
            if st.button(t("dispatch.confirm", lang, n=len(ok)), type="primary", key="surge_confirm", disabled=not len(ok)):
                out = cs.bulk(store, [(int(a), int(b)) for a, b in zip(ok["case_id"], ok["staff_id"], strict=True)], actor=casesui.actor())
                access.audit(store, who, "case.surge_assign", detail=f"{len(ok)} assignments")
                st.session_state.pop("surge_plan", None)
                casesui.outcome(out, lang)

# ----------------------------------------------------------------------------- similar cases
with tab_batch:
    outlines = board.outlines
    if not len(outlines):
        st.info(t("dispatch.no_batches", lang))
    else:
        st.caption(t("dispatch.batch_hint", lang))
        groups_t = pd.DataFrame(
            {
                t("cluster.id", lang): outlines["cluster"].astype(int),
                t("case.category", lang): outlines["category_name"],
                t("cluster.n", lang): outlines["n"].astype(int),
                t("cluster.first", lang): [casesui.local(v, tz) for v in outlines["first"]],
                t("cluster.last", lang): [casesui.local(v, tz) for v in outlines["last"]],
            }
        )
        picked = st.dataframe(groups_t, hide_index=True, use_container_width=True, on_select="rerun",
                              selection_mode="single-row", key="batch_list")  # fmt: skip
        rows = picked.selection.rows if picked is not None else []
        if rows:
            cid = int(outlines["cluster"].iloc[rows[0]])
            members = board.cases[board.cases["cluster"] == cid]
            st.dataframe(pd.DataFrame({"id": members["id"].astype(int),
                                       t("case.state", lang): members["state"].map(lambda s: casesui.state_label(s, lang)),
                                       t("case.address", lang): members["address"].fillna(""),
                                       t("case.description", lang): members["description"].fillna("")}),
                         hide_index=True, use_container_width=True)  # fmt: skip
            ids = [int(i) for i in members["id"]]
            c = st.columns([3, 1, 1])
            pick = _staff_picker(c[0], "batch_staff")
            if c[1].button(t("dispatch.batch_assign", lang), disabled=pick is None, key="batch_assign"):
                out = cs.act_on_group(store, ids, "assign", actor=casesui.actor(), staff_id=pick)
                access.audit(store, who, "case.group_assign", target=f"staff {pick}", detail=f"cases {ids}"[:2000])
                casesui.outcome(out, lang)
            if c[2].button(t("dispatch.batch_resolve", lang), key="batch_resolve"):
                out = cs.act_on_group(store, ids, "resolve", actor=casesui.actor(), note=t("dispatch.batch_note", lang, n=len(ids)))
                access.audit(store, who, "case.group_resolve", detail=f"cases {ids}"[:2000])
                casesui.outcome(out, lang)
