"""Cases: find any case and follow it through the loop; take in reports (by hand or a 12345
export, with the queue of rows that need a person); the time-limit table and the working calendar;
the escalation sweep."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import streamlit as st

from console import access, casesui, state
from console.i18n import t
from services import cases as cs
from services import hotline, sla
from services.settings import city_tz

lang = state.lang()
who = access.require("cases.view", lang)
st.title(t("page.cases", lang))
store, summary = state.store_and_city()
tz = city_tz(store)
casesui.flash()
cats = cs.categories(store)
cat_names, unit_names = casesui.pickers(store, lang)

tab_list, tab_new, tab_import, tab_limits, tab_esc = st.tabs(
    [t("cases.tab.list", lang), t("cases.tab.new", lang), t("cases.tab.import", lang), t("cases.tab.limits", lang),
     t("cases.tab.escalation", lang)]  # fmt: skip
)

# ----------------------------------------------------------------------------- find and follow
with tab_list:
    today = pd.Timestamp.now(tz=tz).date()
    c = st.columns([1.2, 2, 2, 2, 2])
    by_id = c[0].number_input(t("cases.by_id", lang), min_value=0, value=0, step=1, key="cases_id")
    states = c[1].multiselect(t("dispatch.states", lang), list(cs.OPEN_STATES + cs.FINAL_STATES),
                              format_func=lambda s: casesui.state_label(s, lang), key="cases_states")  # fmt: skip
    chosen = c[2].multiselect(t("dispatch.categories", lang), list(cat_names), format_func=lambda k: str(cat_names[k]),
                              key="cases_cats")  # fmt: skip
    unit = c[3].selectbox(t("staff.unit_filter", lang), [""] + sorted(unit_names), key="cases_unit",
                          format_func=lambda u: unit_names.get(u, t("staff.whole_city", lang)))  # fmt: skip
    rng = c[4].date_input(t("staff.range", lang), value=(today - timedelta(days=30), today), key="cases_range")
    text = st.text_input(t("cases.text", lang), key="cases_text", max_chars=200)
    since = until = None
    if isinstance(rng, tuple) and len(rng) == 2:
        since = pd.Timestamp(rng[0]).tz_localize(tz)
        until = pd.Timestamp(rng[1]).tz_localize(tz) + pd.Timedelta(days=1)
    found = cs.search(store, case_id=int(by_id) or None, states=states or None, categories_=chosen or None,
                      unit_prefix=state.area(who, unit or None), since=since, until=until, text=text or None, limit=1000)  # fmt: skip
    st.caption(t("cases.found", lang, n=len(found)))
    listing = pd.DataFrame(
        {
            "id": found["id"].astype(int),
            t("case.category", lang): found["category"].map(cat_names).fillna(found["category"]),
            t("case.state", lang): found["state"].map(lambda s: casesui.state_label(s, lang)),
            t("case.reported", lang): [casesui.local(v, tz) for v in found["reported_at"]],
            t("case.source", lang): found["source"].map(lambda s: t(f"source.{s}", lang) if s in cs.SOURCES else str(s)),
            t("case.address", lang): found["address"].fillna(""),
            t("case.description", lang): found["description"].fillna(""),
        }
    ) if len(found) else pd.DataFrame()
    if len(listing):
        picked = st.dataframe(listing, hide_index=True, use_container_width=True, on_select="rerun",
                              selection_mode="single-row", key="cases_list", height=320)  # fmt: skip
        rows = picked.selection.rows if picked is not None else []
        if rows:
            st.session_state["cases_sel"] = int(listing["id"].iloc[rows[0]])
        st.download_button(t("cases.download", lang), listing.to_csv(index=False).encode("utf-8-sig"),
                           file_name="cases.csv", mime="text/csv", key="cases_csv",
                           on_click=access.audit, args=(store, who, "export.cases"),
                           kwargs={"detail": f"{len(listing)} rows, no personal data"})  # fmt: skip
    sel = st.session_state.get("cases_sel")
    if sel is not None:
        try:
            case = casesui.visible_case(store, int(sel))
        except cs.CaseNotFound:
            st.session_state.pop("cases_sel", None)
        else:
            st.divider()
            left, right = st.columns([1, 1])
            with left:
                casesui.case_header(case, lang, tz)
                casesui.action_bar(store, case, lang, key="cl")
            with right:
                st.markdown(f"**{t('dispatch.timeline', lang)}**")
                casesui.timeline(store, int(case["id"]), lang, tz)

# ----------------------------------------------------------------------------- a report by hand
with tab_new:
    if not who.can("cases.report"):
        st.info(t("auth.denied", lang))
    else:
        st.caption(t("cases.new_hint", lang))
        with st.form("cases_new_form"):
            c = list(st.columns(2))
            code = c[0].selectbox(t("case.category", lang), list(cat_names), format_func=lambda k: str(cat_names[k]))
            source = c[1].selectbox(t("case.source", lang), ["walk_in", "hotline_12345", "referral", "dispatcher"],
                                    format_func=lambda s: t(f"source.{s}", lang))  # fmt: skip
            c = list(st.columns(2))
            lat = c[0].number_input(t("cases.lat", lang), value=float(summary.center[0]), format="%.6f")
            lon = c[1].number_input(t("cases.lon", lang), value=float(summary.center[1]), format="%.6f")
            desc = st.text_area(t("case.description", lang), max_chars=cs.MAX_DESCRIPTION)
            addr = st.text_input(t("case.address", lang), max_chars=cs.MAX_SHORT_TEXT)
            c = list(st.columns(3))
            reporter = c[0].text_input(t("cases.reporter_name", lang), max_chars=cs.MAX_SHORT_TEXT)
            phone = c[1].text_input(t("cases.reporter_phone", lang), max_chars=40)
            urg = c[2].select_slider(t("case.urgency", lang), options=[1, 2, 3], value=1, format_func=lambda u: t(f"urgency.{u}", lang))
            if st.form_submit_button(t("dispatch.create", lang)):
                try:
                    made = cs.create_case(store, cs.NewCase(category=code, lon=lon, lat=lat, description=desc, address=addr,
                                                            source=source, reporter_name=reporter, reporter_phone=phone,
                                                            urgency=int(urg), actor=casesui.actor()))  # fmt: skip
                except cs.CaseError as e:
                    st.error(casesui.md(str(e)))
                else:
                    st.session_state["cases_sel"] = made.case_id
                    access.audit(store, who, "case.create", target=made.case_id, detail=f"category={code} source={source}")
                    key = "dispatch.created" if made.created else "dispatch.linked"
                    st.success(t(key, lang, id=made.case_id))

# ----------------------------------------------------------------------------- 12345 exports
with tab_import:
    if not who.can("cases.assign"):
        st.info(t("auth.denied", lang))
    else:
        st.caption(t("cases.import_hint", lang))
        up = st.file_uploader(t("cases.import_file", lang), type=["csv", "txt", "xlsx"], key="hotline_file")
        coords = st.selectbox(t("cases.import_coords", lang), ["wgs84", "gcj02", "bd09"], key="hotline_coords")
        if up is not None and st.button(t("cases.import_go", lang), key="hotline_go"):
            try:
                mapping = hotline.mapping_with(hotline.mapping_from_settings(store), coords=coords)
                report = hotline.import_export(store, up.getvalue(), mapping=mapping, batch_name=up.name, actor=casesui.actor())
            except (ValueError, cs.CaseError) as e:
                st.error(casesui.md(str(e)))
            else:
                access.audit(store, who, "case.import_12345", target=up.name, detail=report.summary("en")[:2000])
                st.success(casesui.md(report.summary(lang)))
                if report.errors:
                    st.dataframe(pd.DataFrame(report.errors, columns=["row", "message"]), hide_index=True)
        queue = hotline.queued(store)
        st.markdown(f"**{t('cases.queue', lang, n=len(queue))}**")
        if len(queue):
            shown = queue[["id", "row_no", "external_id", "reason", "address", "description"]]
            picked = st.dataframe(shown, hide_index=True, use_container_width=True, on_select="rerun",
                                  selection_mode="single-row", key="queue_list")  # fmt: skip
            rows = picked.selection.rows if picked is not None else []
            if rows:
                q = queue.iloc[rows[0]]
                st.text(f"{q['address'] or ''}\n{q['description'] or ''}")
                with st.form("queue_resolve"):
                    c = list(st.columns(3))
                    qcat = c[0].selectbox(t("case.category", lang), list(cat_names), format_func=lambda k: str(cat_names[k]),
                                          index=list(cat_names).index(q["category"]) if q["category"] in cat_names else 0)  # fmt: skip
                    qlat = c[1].number_input(t("cases.lat", lang), value=float(summary.center[0]), format="%.6f")
                    qlon = c[2].number_input(t("cases.lon", lang), value=float(summary.center[1]), format="%.6f")
                    c = list(st.columns(2))
                    if c[0].form_submit_button(t("cases.queue_make", lang)):
                        try:
                            cid = hotline.resolve_queued(store, int(q["id"]), lon=qlon, lat=qlat, category=qcat, actor=casesui.actor())
                        except (ValueError, cs.CaseError) as e:
                            st.error(casesui.md(str(e)))
                        else:
                            access.audit(store, who, "case.create_from_queue", target=cid, detail=f"queue row {int(q['id'])}")
                            st.session_state["_case_flash"] = ("success", t("dispatch.created", lang, id=cid))
                            st.rerun()
                    if c[1].form_submit_button(t("cases.queue_discard", lang)):
                        hotline.discard_queued(store, int(q["id"]), actor=casesui.actor(), reason="discarded in the console")
                        access.audit(store, who, "case.queue_discard", target=int(q["id"]))
                        st.rerun()

# ----------------------------------------------------------------------------- time limits
with tab_limits:
    if not who.can("settings.edit"):
        st.info(t("auth.denied", lang))
    else:
        st.caption(t("cases.limits_hint", lang))
        table = cats[["code", "name_zh", "name_en", "time_limit", "limit_unit", "accept_hours", "kind", "urgency", "active"]]
        edited = st.data_editor(
            table,
            hide_index=True,
            use_container_width=True,
            disabled=["code", "name_zh", "name_en"],
            column_config={
                "time_limit": st.column_config.NumberColumn(t("limits.time_limit", lang), min_value=0.25, max_value=8760.0),
                "limit_unit": st.column_config.SelectboxColumn(t("limits.unit", lang), options=list(sla.LIMIT_UNITS)),
                "accept_hours": st.column_config.NumberColumn(t("limits.accept", lang), min_value=0.1, max_value=720.0),
                "kind": st.column_config.SelectboxColumn(t("limits.kind", lang), options=list(cs.KINDS)),
                "urgency": st.column_config.NumberColumn(t("case.urgency", lang), min_value=1, max_value=3, step=1),
                "active": st.column_config.CheckboxColumn(t("limits.active", lang)),
            },
            key="limits_editor",
        )
        if st.button(t("limits.save", lang), key="limits_save"):
            errors = []
            for before, after in zip(table.to_dict("records"), edited.to_dict("records"), strict=True):
                if before == after:
                    continue
                try:
                    cs.set_category_limit(store, str(after["code"]), time_limit=float(after["time_limit"]),
                                          limit_unit=str(after["limit_unit"]), accept_hours=float(after["accept_hours"]),
                                          kind=str(after["kind"]), urgency=int(after["urgency"]), active=bool(after["active"]))  # fmt: skip
                    access.audit(store, who, "settings.case_limit", target=after["code"],
                                 detail=", ".join(f"{k}={after[k]}" for k in after if after[k] != before[k]))
                except (cs.CaseError, ValueError, TypeError) as e:
                    errors.append(f"{after['code']}: {e}")
            if errors:
                st.error(casesui.md("; ".join(errors)))
            else:
                st.session_state["_case_flash"] = ("success", t("limits.saved", lang))
                st.rerun()
        st.markdown(f"**{t('limits.calendar', lang)}**")
        cal = sla.calendar(store)
        with st.form("calendar_form"):
            c = list(st.columns(2))
            start = c[0].text_input(t("limits.work_start", lang), cal.start.strftime("%H:%M"))
            end = c[1].text_input(t("limits.work_end", lang), cal.end.strftime("%H:%M"))
            hol = st.text_area(t("limits.holidays", lang), ", ".join(sorted(d.isoformat() for d in cal.holidays)))
            work = st.text_area(t("limits.workdays", lang), ", ".join(sorted(d.isoformat() for d in cal.workdays)))
            if st.form_submit_button(t("limits.save", lang)):
                try:
                    sla.set_calendar(store, work_start=start, work_end=end, holidays=hol.split(","), workdays=work.split(","))
                    access.audit(store, who, "settings.calendar", detail=f"{start}-{end}")
                except ValueError as e:
                    st.error(casesui.md(str(e)))
                else:
                    st.success(t("limits.saved", lang))

# ----------------------------------------------------------------------------- escalation
with tab_esc:
    if not who.can("cases.assign"):
        st.info(t("auth.denied", lang))
    else:
        st.caption(t("cases.esc_hint", lang))
        if st.button(t("cases.esc_run", lang), key="esc_run"):
            out = cs.escalate_due(store, actor=casesui.actor())
            access.audit(store, who, "case.escalation_sweep", detail=f"{sum(o.ok for o in out)} escalated")
            st.session_state["_case_flash"] = ("success", t("cases.esc_done", lang, n=sum(o.ok for o in out)))
            st.rerun()
        open_now = cs.open_cases(store, unit_prefix=state.area(who))
        esc = open_now[(open_now["escalation_level"] > 0) | open_now["overdue"]]
        st.caption(t("cases.esc_list", lang, n=len(esc)))
        if len(esc):
            st.dataframe(
                pd.DataFrame(
                    {
                        "id": esc["id"].astype(int),
                        t("case.category", lang): esc["category"].map(cat_names).fillna(esc["category"]),
                        t("case.state", lang): esc["state"].map(lambda s: casesui.state_label(s, lang)),
                        t("cases.level", lang): esc["escalation_level"].map(lambda v: t(f"level.{cs.ESCALATION_LEVELS[int(v)]}", lang)),
                        t("case.deadline", lang): [casesui.local(v, tz) for v in esc["deadline_at"]],
                        t("case.address", lang): esc["address"].fillna(""),
                    }
                ),
                hide_index=True,
                use_container_width=True,
            )
