"""Grid planning: pick a village/community, edit a draft of its grids, validate, publish."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, time
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st
from streamlit_folium import st_folium

from console import access, mapui, planui, state
from console.i18n import labels, t
from layers.basemap import build_base_map, with_release
from layers.context import build_context_layer
from layers.planning import (
    add_draw_tools,
    build_buildings_layer,
    build_diff_layer,
    build_draft_layer,
    build_findings_layer,
)
from services import planning
from services.files import ImportRejected

lang = state.lang()
who = access.require("plan.view", lang)
L = labels(("plan.", "grid.status."), lang)
st.title(t("page.planning", lang))
try:
    store = state.get_store()
    towns, villages = state.unit_choices()
    if state.area(who) is not None:  # a district's or street's planner plans inside it only
        towns = towns[[who.covers(c) or str(who.unit_code).startswith(str(c)) for c in towns["code"]]]
        villages = villages[[who.covers(c) for c in villages["code"]]]
        towns = towns[towns["code"].isin(villages["parent_code"])]
except Exception as exc:  # the database is down: say so, do not crash
    st.error(t("app.db_error", lang, error=exc))
    st.stop()
if len(villages) == 0:
    st.warning(t("app.no_data", lang))
    st.stop()


def _flash(kind: str, text: str) -> None:
    st.session_state["plan_flash"] = (kind, text)


flash = st.session_state.pop("plan_flash", None)
if flash:
    getattr(st, flash[0])(flash[1])

# ---- which unit -------------------------------------------------------------------------------
names = dict(zip(villages["code"], villages["name"], strict=True)) | dict(zip(towns["code"], towns["name"], strict=True))
wanted = st.query_params.get("unit")
if wanted in names and wanted in set(villages["code"]) and "plan_unit" not in st.session_state:
    st.session_state["plan_town"] = villages.loc[villages["code"] == wanted, "parent_code"].iloc[0]
    st.session_state["plan_unit"] = wanted
c1, c2 = st.columns(2)
town: str = c1.selectbox(t("plan.township", lang), towns["code"], format_func=lambda c: f"{names[c]} ({c})", key="plan_town")
choices = villages.loc[villages["parent_code"] == town, "code"].tolist()
if not choices:
    st.info(t("plan.no_units", lang))
    st.stop()
if st.session_state.get("plan_unit") not in choices:
    st.session_state["plan_unit"] = choices[0]
unit_code = c2.selectbox(t("plan.unit", lang), choices, format_func=lambda c: f"{names[c]} ({c})", key="plan_unit")
st.query_params["unit"] = unit_code

tab_edit, tab_versions, tab_unify = st.tabs([t("plan.tab.edit", lang), t("plan.tab.versions", lang),
                                             t("plan.tab.unify", lang)])

# ---- drafts ---------------------------------------------------------------------------------------
with tab_edit:
    open_drafts = planning.drafts(store, unit_code)
    pending = st.session_state.pop("plan_pending_draft", None)
    if pending is not None:  # a draft made on the last run: show it (set before the widget exists)
        st.session_state[f"plan_draft_{unit_code}"] = pending
    d1, d2, d3 = st.columns([3, 1, 1])
    draft_ids = open_drafts["id"].astype(int).tolist()
    draft_names = dict(zip(draft_ids, open_drafts["name"].fillna(""), strict=True))
    draft_id = d1.selectbox(
        t("plan.draft", lang), draft_ids, format_func=lambda i: f"#{i} {draft_names[i]}", key=f"plan_draft_{unit_code}",
        placeholder=t("plan.no_draft", lang),
        index=0 if draft_ids and f"plan_draft_{unit_code}" not in st.session_state else None,
    )
    if d2.button(t("plan.new_current", lang), key="plan_new_current", use_container_width=True):
        try:
            new_id = planning.create_draft(store, unit_code, method="current", author=who.name)
            access.audit(store, who, "plan.draft_create", target=new_id, detail=f"unit={unit_code} method=current")
            st.session_state["plan_pending_draft"] = new_id
            _flash("success", t("plan.created", lang, draft=new_id))
        except (planning.PlanningError, ValueError) as exc:
            _flash("error", str(exc))
        st.rerun()
    if d3.button(t("plan.new_partition", lang), key="plan_new_partition", use_container_width=True):
        try:
            with st.spinner(t("plan.partitioning", lang)):
                new_id = planning.create_draft(store, unit_code, method="partition", author=who.name)
            access.audit(store, who, "plan.draft_create", target=new_id, detail=f"unit={unit_code} method=partition")
            st.session_state["plan_pending_draft"] = new_id
            _flash("success", t("plan.created", lang, draft=new_id))
        except (planning.PlanningError, ValueError) as exc:
            _flash("error", str(exc))
        st.rerun()
    band = planning.unit_band(store, unit_code)
    with st.expander(t("plan.band", lang, lo=band[0], hi=band[1])):
        b1, b2, b3 = st.columns([1, 1, 1])
        lo = b1.number_input(t("plan.band_min", lang), 1, 10_000, band[0], key=f"plan_lo_{unit_code}")
        hi = b2.number_input(t("plan.band_max", lang), 1, 10_000, band[1], key=f"plan_hi_{unit_code}")
        if b3.button(t("plan.band_save", lang), key="plan_band_save"):
            try:
                planning.set_unit_band(store, unit_code, (int(lo), int(hi)))
                _flash("success", t("plan.band_saved", lang, lo=int(lo), hi=int(hi)))
            except planning.PlanningError as exc:
                _flash("error", str(exc))
            st.rerun()

    if draft_id is None:
        st.info(t("plan.start_hint", lang))
    else:
        view = state.draft_state(int(draft_id))
        d = view.draft
        sel_key = f"plan_sel_{d.id}"
        selected: list[int] = [k for k in st.session_state.get(sel_key, []) if k in set(view.grids["key"])]
        chosen_buildings: list[int] = st.session_state.get(f"plan_bsel_{d.id}", [])
        modes = ["select", "move", "split", "reshape"]
        mode = st.radio(t("plan.mode", lang), modes, horizontal=True, key=f"plan_mode_{d.id}",
                        format_func=lambda m: t(f"plan.mode.{m}", lang))
        st.caption(t(f"plan.mode.{mode}.hint", lang))

        left, right = st.columns([3, 2])
        with left:
            state.local_assets(state.static_prefix())
            centre, zoom = planning.map_view(view.unit.boundary, width_px=900, height_px=620)
            base = add_draw_tools(build_base_map(config=state.basemap(), center=centre, zoom=zoom))
            unit_outline = planning.unit_outline(view)
            overlays = [
                build_context_layer(boundaries=unit_outline),
                build_draft_layer(view.grids, labels=L, selected=selected),
                build_buildings_layer(view.buildings, labels=L, selected=chosen_buildings),
                build_findings_layer(view.report.to_frame().to_crs("EPSG:4326"), labels=L),
            ]
            map_key = f"plan_map_{d.id}"
            result = st_folium(
                base, key=map_key, height=620, use_container_width=True, feature_group_to_add=with_release(overlays),
                returned_objects=["last_object_clicked", "last_clicked", "last_active_drawing"],
            )
        click = planui.new_click(result, key=map_key)
        drawing = planui.new_drawing(result, key=map_key)

        def _apply(action: str, **params: Any) -> None:
            try:
                rev = planning.edit(store, d.id, action, actor=who.name, **params)
                access.audit(store, who, f"plan.{action}", target=f"draft {d.id} rev {rev}", detail=str(params)[:2000])
                _flash("success", t("plan.edited", lang, action=t(f"plan.action.{action}", lang), revision=rev))
                st.session_state[sel_key] = []
            except (planning.EditError, planning.PlanningError, planning.ConflictError) as exc:
                _flash("error", t("plan.edit_failed", lang, error=exc))
            st.rerun()

        if click is not None:
            if mode == "select":
                key = planning.grid_at(view.grids, click.lon, click.lat)
                if key is not None:
                    st.session_state[sel_key] = [k for k in selected if k != key] if key in selected else [*selected, key]
                    st.rerun()
            elif mode == "move":
                bid = planning.building_at(view.buildings, click.lon, click.lat)
                if bid is not None:
                    if not selected:
                        _flash("warning", t("plan.move_pick_target", lang))
                        st.rerun()
                    _apply("move", ids=[bid], to=selected[0])
        if drawing is not None:
            if mode == "split" and drawing.geom_type == "LineString":
                target = selected[0] if len(selected) == 1 else planning.grid_crossed(view.grids, drawing)
                if target is None:
                    _flash("warning", t("plan.split_no_grid", lang))
                    st.rerun()
                _apply("split", key=target, line=drawing)
            elif mode == "reshape" and drawing.geom_type == "Polygon":
                if len(selected) != 1:
                    _flash("warning", t("plan.reshape_pick", lang))
                    st.rerun()
                _apply("reshape", key=selected[0], outline=drawing)
            else:
                _flash("warning", t("plan.wrong_tool", lang))
                st.rerun()

        with right:
            report = view.report
            m = st.columns(4)
            base_grids = view.grids[view.grids["kind"] == "base"]
            m[0].metric(t("plan.m.grids", lang), len(base_grids))
            m[1].metric(t("plan.m.households", lang), f"{view.households:,}")
            m[2].metric(t("plan.m.in_band", lang), f"{100 * view.in_band_share:.0f}%")
            m[3].metric(t("plan.m.problems", lang), f"{len(report.errors)} / {len(report.warnings)}",
                        help=t("plan.m.problems.help", lang))
            st.caption(t("plan.revision", lang, revision=d.revision, head=d.head, note=d.note or "—"))
            b = st.columns(3)
            if b[0].button(t("plan.undo", lang), disabled=not d.can_undo, key="plan_undo", use_container_width=True):
                planning.undo(store, d.id)
                access.audit(store, who, "plan.undo", target=f"draft {d.id}")
                st.rerun()
            if b[1].button(t("plan.redo", lang), disabled=not d.can_redo, key="plan_redo", use_container_width=True):
                planning.redo(store, d.id)
                access.audit(store, who, "plan.redo", target=f"draft {d.id}")
                st.rerun()
            if b[2].button(t("plan.clear", lang), disabled=not selected, key="plan_clear", use_container_width=True):
                st.session_state[sel_key] = []
                st.rerun()
            ops = st.columns(2)
            if ops[0].button(t("plan.merge", lang, n=len(selected)), disabled=len(selected) < 2, key="plan_merge",
                           use_container_width=True):
                _apply("merge", keys=selected)
            if ops[1].button(t("plan.repartition", lang, n=len(selected)), disabled=not selected, key="plan_repart",
                           use_container_width=True):
                _apply("repartition", keys=selected)
            table = view.grids.loc[:, ["ref", "name", "households", "buildings", "status"]].copy()
            table["status"] = [L[f"grid.status.{s}"] for s in table["status"]]
            table.insert(0, "✓", [k in selected for k in view.grids["key"]])
            st.dataframe(
                table.rename(columns={"ref": L["plan.grid"], "name": L["plan.name"], "households": L["plan.households"],
                                      "buildings": L["plan.buildings"], "status": L["plan.status"]}),
                hide_index=True, use_container_width=True, height=240, key="plan_table",
            )
            if report.findings:
                findings = pd.DataFrame(
                    {
                        t("plan.severity", lang): [t(f"plan.severity.{f.severity}", lang) for f in report.findings],
                        t("plan.code", lang): [f.code for f in report.findings],
                        t("plan.where", lang): [", ".join(map(str, f.grids)) for f in report.findings],
                        t("plan.message", lang): [f.message for f in report.findings],
                    }
                )
                st.dataframe(findings, hide_index=True, use_container_width=True, height=200, key="plan_findings")
            else:
                st.success(t("plan.valid", lang))

            with st.form("plan_publish"):
                st.markdown(f"**{t('plan.publish', lang)}**")
                eff = st.date_input(t("plan.effective", lang), value=datetime.now(UTC).date(), key="plan_effective")
                reason = st.text_input(t("plan.reason", lang), key="plan_reason", max_chars=500,
                                       disabled=not report.warnings)
                submitted = st.form_submit_button(t("plan.publish_button", lang), disabled=bool(report.errors),
                                                  type="primary")
            if submitted:
                try:
                    res = planning.publish(store, d.id, author=who.name, accept_warnings=reason or None,
                                           effective_at=datetime.combine(eff, time(0), tzinfo=UTC))
                    access.audit(store, who, "plan.publish", target=f"{unit_code} v{res.version}",
                                 detail=f"draft {d.id}; {len(res.codes)} grids; warnings accepted: {reason or '-'}")
                    _flash("success", t("plan.published", lang, version=res.version, grids=len(res.codes),
                                        cases=res.cases_moved, staff=res.staff_links))
                    state.unit_stats.clear()
                    mapui.forget_map_data()
                except planning.PublishRefused as exc:
                    _flash("error", str(exc))
                except planning.ConflictError as exc:
                    _flash("error", t("plan.conflict", lang, error=exc))
                st.rerun()
            o2 = st.columns(2)
            if o2[0].button(t("plan.rebase", lang), key="plan_rebase", use_container_width=True,
                           help=t("plan.rebase.help", lang)):
                v = planning.rebase(store, d.id)
                access.audit(store, who, "plan.rebase", target=f"draft {d.id}", detail=f"onto v{v}")
                _flash("info", t("plan.rebased", lang, version=v))
                st.rerun()
            if o2[1].button(t("plan.discard", lang), key="plan_discard", use_container_width=True):
                planning.discard(store, d.id)
                access.audit(store, who, "plan.discard", target=f"draft {d.id}")
                _flash("info", t("plan.discarded", lang, draft=d.id))
                st.rerun()

# ---- versions -------------------------------------------------------------------------------------
with tab_versions:
    vers = planning.versions(store, unit_code)
    shown = vers[["version", "effective_at", "published_at", "published_by", "grids", "households", "note",
                  "accepted_warnings", "in_force"]]
    st.dataframe(shown, hide_index=True, use_container_width=True, key="plan_versions")
    numbers = vers["version"].astype(int).tolist()
    v1, v2, v3 = st.columns(3)
    old = v1.selectbox(t("plan.before", lang), numbers, index=max(0, len(numbers) - 2), key="plan_v_old")
    new = v2.selectbox(t("plan.after", lang), numbers, index=len(numbers) - 1, key="plan_v_new")
    fmt = v3.selectbox(t("plan.export_format", lang), [".gpkg", ".geojson", ".zip"], key="plan_v_fmt")
    if old is not None and new is not None:
        diff = planning.version_diff(store, unit_code, int(old), int(new))
        counts = diff["status"].value_counts()
        st.caption(" · ".join(f"{L['plan.diff.' + s]}: {int(counts.get(s, 0))}" for s in
                              ("unchanged", "changed", "added", "removed")))
        if len(diff):
            state.local_assets(state.static_prefix())
            centre, zoom = planning.map_view(diff.geometry.union_all(), width_px=1100, height_px=420)
            dmap = build_base_map(config=state.basemap(), center=centre, zoom=zoom)
            st_folium(dmap, key=f"plan_diff_{unit_code}", height=420, use_container_width=True,
                      feature_group_to_add=with_release([build_diff_layer(diff, labels=L)]), returned_objects=[])
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / f"grids-{unit_code}-v{int(new)}{fmt}"
            planning.export_version(store, unit_code, int(new), path)
            st.download_button(t("plan.export", lang, version=int(new)), path.read_bytes(), file_name=path.name,
                               key="plan_export")

# ---- unified grids --------------------------------------------------------------------------------
with tab_unify:
    st.caption(t("plan.unify.hint", lang))
    u1, u2, u3 = st.columns([2, 1, 1])
    upload = u1.file_uploader(t("plan.unify.file", lang), type=["geojson", "json", "gpkg", "zip"], key="plan_legacy")
    layer_name = u2.text_input(t("plan.unify.layer", lang), key="plan_legacy_name", max_chars=60)
    code_field = u3.text_input(t("plan.unify.code_field", lang), value="code", key="plan_legacy_code", max_chars=60)
    if upload is not None and st.button(t("plan.unify.import", lang), key="plan_legacy_import"):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(upload.name).name
            path.write_bytes(upload.getvalue())
            try:
                n = planning.import_legacy(store, layer_name, path, code_field=code_field)
                access.audit(store, who, "plan.legacy_import", target=layer_name, detail=f"{n} features from {upload.name}")
                _flash("success", t("plan.unify.imported", lang, n=n, layer=layer_name))
            except ImportRejected as exc:
                _flash("error", str(exc))
            except planning.PlanningError as exc:
                _flash("error", str(exc))
        st.rerun()
    known = planning.legacy_layers(store)
    if len(known):
        st.dataframe(known, hide_index=True, key="plan_legacy_layers")
        picked = st.multiselect(t("plan.unify.layers", lang), known["layer"].tolist(), default=known["layer"].tolist(),
                                key="plan_legacy_pick")
        if st.button(t("plan.unify.propose", lang), disabled=not picked, key="plan_unify"):
            try:
                new_id, unified = planning.propose_unified(store, unit_code, layers=picked, author=who.name)
                access.audit(store, who, "plan.unify", target=new_id, detail=f"unit={unit_code} layers={picked}"[:2000])
                st.session_state["plan_pending_draft"] = new_id
                _flash("success", t("plan.unify.done", lang, draft=new_id, grids=len(unified.grids),
                                    agreement=unified.agreement, disagreements=len(unified.disagreements)))
            except (planning.PlanningError, ValueError) as exc:
                _flash("error", str(exc))
            st.rerun()
        crosswalk = planning.crosswalk(store, unit_code)
        if len(crosswalk):
            st.dataframe(crosswalk, hide_index=True, use_container_width=True, key="plan_crosswalk")
