"""Staff: live positions, a worker's track with replay, patrol coverage and KPIs."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import altair as alt
import pandas as pd
import streamlit as st
from streamlit_folium import st_folium

from console import access, state
from console.i18n import labels, t
from console.mapui import initial_view, view_from_state
from layers.basemap import build_base_map, with_release
from layers.replay import build_replay_control
from layers.staff import (
    build_coverage_layer,
    build_staff_counts_layer,
    build_staff_layer,
    build_track_layer,
    build_unpatrolled_layer,
)
from services import tracks
from services.settings import city_tz

REFRESH_S = 15
MAX_UNPATROLLED_DRAWN = 1500
LAYER_PREFIXES = ("staff.", "role.", "fresh.", "dur.", "counts.", "track.", "cov.", "unp.", "replay.")

lang = state.lang()
who = access.require("staff.view", lang)
st.title(t("page.staff", lang))
store, summary = state.store_and_city()
state.local_assets(state.static_prefix())
CENTER, ZOOM = summary.center, summary.zoom
L = labels(LAYER_PREFIXES, lang)
tz = city_tz(store)
roles_all = ["grid_worker_full", "grid_worker_part", "police", "mediator", "legal_adviser", "volunteer"]


def _role(r: Any) -> str:
    return t(f"role.{r}", lang) if f"role.{r}" in L else str(r)


tab_live, tab_track, tab_patrol, tab_kpi = st.tabs(
    [t("staff.tab.live", lang), t("staff.tab.track", lang), t("staff.tab.patrol", lang), t("staff.tab.kpi", lang)]
)

# ----------------------------------------------------------------------------- live
with tab_live:
    roles = st.multiselect(t("staff.roles", lang), roles_all, default=roles_all, format_func=_role, key="live_roles")
    auto = st.toggle(t("staff.auto", lang, s=REFRESH_S), value=True, key="live_auto")
    api_url = store.get_setting("api.public_url") or "http://<server>:8502/osmand"
    st.caption(t("staff.phone_url", lang, url=api_url))

    @st.fragment(run_every=REFRESH_S if auto else None)
    @state.guarded
    def live_map() -> None:
        view = view_from_state(
            st.session_state.get("staff_live_map"),
            fallback=initial_view(CENTER, ZOOM),
            shifted=False,
        )
        live = tracks.live_staff(store, bbox=view.bbox, roles=roles, unit_prefix=state.area(who))
        counts = live["freshness"].value_counts()
        c = st.columns(4)
        c[0].metric(t("staff.on_duty", lang), f"{len(live):,}")
        for col, key in zip(c[1:], ("online", "stale", "offline"), strict=True):
            col.metric(t(f"fresh.{key}", lang), f"{int(counts.get(key, 0)):,}")
        if len(live) > tracks.MAX_POINTS:
            layer = build_staff_counts_layer(tracks.staff_counts(live, store), labels=L)
            st.caption(t("staff.counts_hint", lang))
        else:
            layer = build_staff_layer(live, labels=L, tz=tz)
        base = build_base_map(config=state.basemap(), center=CENTER, zoom=ZOOM)
        st_folium(
            base,
            key="staff_live_map",
            height=600,
            use_container_width=True,
            feature_group_to_add=with_release([layer]),
            returned_objects=["bounds", "zoom"],
        )
        now = pd.Timestamp.now(tz="UTC").tz_convert(tz).strftime("%H:%M:%S")
        st.caption(t("staff.updated", lang, time=now))

    live_map()

# ----------------------------------------------------------------------------- track
with tab_track:
    if not who.can("staff.tracks"):  # workers' movements: only the roles that need them
        st.info(t("auth.denied", lang))
    else:
        staff = state.staff_choices()
        if state.area(who) is not None:
            staff = staff[[who.covers(u) for u in staff["unit_code"]]]
        unit_label = staff["unit_name"].fillna(staff["unit_code"]).astype(str)
        names = {
            int(i): f"{n} · {_role(r)} · {u}"
            for i, n, r, u in zip(staff["id"], staff["name"], staff["role"], unit_label, strict=True)
        }
        latest = store.read("latest_positions", columns=["staff_id", "ts"], order_by=["-ts"], limit=1, geometry=False)
        default_id = int(str(latest["staff_id"].iloc[0])) if len(latest) else (next(iter(names)) if names else None)
        if default_id is None:
            st.info(t("staff.no_positions", lang))
        else:
            ids = list(names)
            c = st.columns([3, 1.2, 1.6, 1])
            sid = c[0].selectbox(
                t("staff.pick", lang), ids, index=ids.index(default_id), format_func=lambda i: names[int(i)], key="track_staff"
            )
            day = c[1].date_input(t("staff.day", lang), value=tracks.local_today(store), key="track_day")
            hours = c[2].slider(t("staff.hours", lang), 0, 24, (0, 24), key="track_hours")
            dwell = c[3].number_input(t("staff.min_dwell", lang), 1, 120, 5, key="track_dwell")
            start = pd.Timestamp(day).tz_localize(tz) + pd.Timedelta(hours=hours[0])
            end = pd.Timestamp(day).tz_localize(tz) + pd.Timedelta(hours=hours[1])
            if end <= start:
                end = start + pd.Timedelta(hours=1)
            tr = tracks.track(store, int(sid), start=start, end=end, min_dwell_s=float(dwell) * 60)
            stats = tr.stats
            m = st.columns(6)
            m[0].metric(t("staff.distance", lang), f"{stats.distance_m / 1000:.2f} km")
            m[1].metric(t("staff.duration", lang), f"{stats.duration_s / 3600:.1f} h")
            m[2].metric(t("staff.moving", lang), f"{stats.moving_s / 3600:.1f} h")
            m[3].metric(t("staff.points", lang), f"{stats.points:,}")
            m[4].metric(t("staff.jumps", lang), f"{int(tr.fixes['jump'].sum()):,}")
            m[5].metric(t("staff.stops", lang), f"{len(tr.stops):,}")
            if tr.empty:
                st.info(t("staff.no_track", lang))
            else:
                radius = st.slider(t("staff.radius", lang), 10, 100, 30, step=5, key="track_radius")
                cov, grids = tracks.coverage(store, int(sid), start=start, end=end, radius_m=float(radius), fixes=tr.fixes)
                show_cov = st.checkbox(t("staff.show_coverage", lang), value=True, key="track_show_cov")
                b = tr.accepted.total_bounds
                centre = ((b[1] + b[3]) / 2, (b[0] + b[2]) / 2)
                fmap = build_base_map(config=state.basemap(), center=centre, zoom=16)
                if show_cov and len(cov.buildings):
                    build_coverage_layer(cov.buildings, labels=L, tz=tz).add_to(fmap)
                build_track_layer(tr.segments, stops=tr.stops, labels=L, tz=tz).add_to(fmap)
                build_replay_control(tr.accepted, labels=L, tz=tz).add_to(fmap)
                fmap.fit_bounds([[b[1], b[0]], [b[3], b[2]]])
                st_folium(
                    fmap,
                    key=f"track_map_{sid}_{start.value}_{end.value}_{dwell}_{radius}_{show_cov}",
                    height=560,
                    use_container_width=True,
                    returned_objects=[],
                )
                st.subheader(t("staff.coverage", lang))
                if not len(grids):
                    st.caption(t("staff.no_grids", lang))
                else:
                    k = st.columns(2)
                    k[0].metric(t("staff.cov_buildings", lang), f"{cov.share_buildings:.0%}",
                                f"{cov.buildings_passed}/{cov.buildings_total}", delta_color="off")
                    k[1].metric(t("staff.cov_households", lang), f"{cov.share_households:.0%}",
                                f"{int(cov.households_passed)}/{int(cov.households_total)}", delta_color="off")
                left, right = st.columns(2)
                with left:
                    st.caption(t("staff.visits", lang))
                    v = tr.visits.copy()
                    for col in ("entered_at", "exited_at"):
                        v[col] = pd.to_datetime(v[col], utc=True).dt.tz_convert(tz).dt.strftime("%H:%M")
                    v["duration_s"] = (pd.to_numeric(v["duration_s"]) / 60).round(0).astype("Int64")
                    v = v[["grid", "entered_at", "exited_at", "duration_s"]]
                    st.dataframe(v.rename(columns={c: t(f"visit.{c}", lang) for c in v.columns}), hide_index=True)
                with right:
                    st.caption(t("staff.stop_list", lang))
                    s = pd.DataFrame(
                        {
                            t("track.start", lang): pd.to_datetime(tr.stops["start"], utc=True).dt.tz_convert(tz).dt.strftime("%H:%M"),
                            t("track.end", lang): pd.to_datetime(tr.stops["end"], utc=True).dt.tz_convert(tz).dt.strftime("%H:%M"),
                            t("track.duration", lang): (pd.to_numeric(tr.stops["duration_s"]) / 60).round(0).astype("Int64"),
                        }
                    )
                    st.dataframe(s, hide_index=True)

# ----------------------------------------------------------------------------- patrol coverage
with tab_patrol:
    units = state.townships()
    units = units[[who.covers(c) for c in units["code"]]]
    unit_opts = [""] + units.sort_values("code")["code"].tolist()
    unit_names = dict(zip(units["code"], units["name"], strict=True))
    c = st.columns([2, 1])
    unit = c[0].selectbox(
        t("staff.unit_filter", lang), unit_opts, format_func=lambda u: unit_names.get(u, t("staff.whole_city", lang)),
        key="patrol_unit",
    )
    pday = c[1].date_input(t("staff.day", lang), value=tracks.local_today(store), key="patrol_day")
    summ = tracks.patrol_summary(store, day=pday, unit_prefix=state.area(who, unit or None))
    k = st.columns(2)
    k[0].metric(t("staff.patrolled", lang), f"{summ['patrolled']:,} / {summ['grids']:,}")
    k[1].metric(t("staff.unpatrolled", lang), f"{summ['unpatrolled']:,}")
    unp = tracks.unpatrolled_grids(store, day=pday, unit_prefix=state.area(who, unit or None))
    if len(unp):
        drawn = unp.head(MAX_UNPATROLLED_DRAWN)
        if len(unp) > MAX_UNPATROLLED_DRAWN:
            st.caption(t("staff.too_many_grids", lang, n=MAX_UNPATROLLED_DRAWN))
        b = drawn.total_bounds
        pmap = build_base_map(config=state.basemap(), center=((b[1] + b[3]) / 2, (b[0] + b[2]) / 2), zoom=13)
        build_unpatrolled_layer(drawn, labels=L).add_to(pmap)
        pmap.fit_bounds([[b[1], b[0]], [b[3], b[2]]])
        st_folium(pmap, key=f"patrol_map_{unit}_{pday}", height=480, use_container_width=True, returned_objects=[])
        table = unp[["code", "name", "households"]]
        st.caption(t("staff.unpatrolled_list", lang))
        st.dataframe(table.rename(columns={c: t(f"unp.{c}", lang) for c in table.columns}), hide_index=True)

# ----------------------------------------------------------------------------- KPIs
with tab_kpi:
    today = tracks.local_today(store)
    c = st.columns([1, 2, 2])
    period = c[0].selectbox(
        t("staff.period", lang), ["day", "week", "month"], format_func=lambda p: t(f"staff.period.{p}", lang), key="kpi_period"
    )
    rng = c[1].date_input(t("staff.range", lang), value=(today - timedelta(days=6), today), key="kpi_range")
    kunit = c[2].selectbox(
        t("staff.unit_filter", lang), unit_opts, format_func=lambda u: unit_names.get(u, t("staff.whole_city", lang)),
        key="kpi_unit",
    )
    if st.button(t("staff.rollup", lang), key="kpi_rollup"):
        st.success(t("staff.rolled", lang, n=len(tracks.rollup_missing(store, days=31))))
    if isinstance(rng, tuple) and len(rng) == 2:
        table = tracks.kpis(store, start=rng[0], end=rng[1], period=period, unit_prefix=state.area(who, kunit or None))  # type: ignore[arg-type]
        if not len(table):
            st.info(t("staff.no_kpis", lang))
        else:
            shown = table.assign(role=table["role"].map(_role))
            shown = shown.rename(columns={c: t(f"kpi.{c}", lang) for c in shown.columns})
            st.dataframe(shown, hide_index=True)
            top = (
                table.groupby(["staff_id", "name"], as_index=False)
                .agg(distance_km=("distance_km", "sum"))
                .nlargest(30, "distance_km")
            )
            chart = (
                alt.Chart(top)
                .mark_bar()
                .encode(
                    x=alt.X("distance_km:Q", title=t("staff.kpi_chart", lang)),
                    y=alt.Y("name:N", sort="-x", title=None),
                    tooltip=["name", "distance_km"],
                )
            )
            st.altair_chart(chart, use_container_width=True)
            st.download_button(
                t("staff.download", lang),
                shown.to_csv(index=False).encode("utf-8-sig"),
                file_name=f"staff-kpis-{rng[0]}-{rng[1]}-{period}.csv",
                mime="text/csv",
                key="kpi_csv",
                on_click=access.audit,
                args=(store, who, "export.staff_kpis"),
                kwargs={"detail": f"{len(shown)} rows: workers' names and daily movement figures"},
            )
