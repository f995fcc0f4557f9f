"""Cameras: the registry on the map (fields of view at street zoom, counts at city zoom), a camera's
details and its stream, coverage of roads and open space per community and grid with blind spots
and where to add cameras, the registry import."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pandas as pd
import streamlit as st
from streamlit_folium import st_folium

from console import access, camerasui, casesui, state
from console.i18n import labels, t
from console.mapui import display_frame, initial_view, view_from_state
from layers.basemap import build_base_map, needs_gcj02_shift, with_release
from layers.cameras import build_camera_counts_layer, build_cameras_layer, camera_from_click
from layers.cases import CLICK_RETURNED_OBJECTS
from layers.coverage import build_blind_spots_layer, build_coverage_layer, build_suggestions_layer
from services import cameras as cams
from services import planning
from services.files import ImportRejected, import_file

MAP_KEY = "cameras_map"
SEL = "camera_sel"
LAYER_PREFIXES = ("cam.", "camstat.", "dur.", "dist.")

lang = state.lang()
who = access.require("cameras.view", lang)
st.title(t("page.cameras", lang))
store, summary = state.store_and_city()
state.local_assets(state.static_prefix())
L = labels(LAYER_PREFIXES, lang)
config = state.basemap()
shifted = needs_gcj02_shift(config)


tab_map, tab_cov, tab_reg = st.tabs(
    [t("cam.tab.map", lang), t("cam.tab.coverage", lang), t("cam.tab.registry", lang)]
)

with tab_map:
    view = view_from_state(
        st.session_state.get(MAP_KEY), fallback=initial_view(summary.center, summary.zoom), shifted=shifted
    )
    cv = cams.camera_view(store, bbox=view.bbox, zoom=view.zoom)
    m = st.columns(3)
    m[0].metric(t("cam.in_view", lang), f"{cv.stats['cameras']:,}")
    m[1].metric(t("cam.online", lang), f"{cv.stats['online']:,}")
    m[2].metric(t("cam.class1", lang), f"{cv.stats['class1']:,}")
    left, right = st.columns([3, 2])
    selected = st.session_state.get(SEL)
    with left:
        shown = display_frame(cv.cameras, shifted)
        if cv.counts is not None:
            groups = [build_camera_counts_layer(display_frame(cv.counts, shifted), labels=L)]
            st.caption(t("cam.too_many", lang, n=cams.MAX_CAMERAS_DRAWN))
        else:
            sectors = display_frame(cv.sectors, shifted) if cv.sectors is not None else None
            groups = [build_cameras_layer(shown, labels=L, sectors=sectors, selected=selected)]
        base = build_base_map(config=config, center=summary.center, zoom=summary.zoom)
        result = st_folium(base, key=MAP_KEY, height=600, use_container_width=True, feature_group_to_add=with_release(groups),
                           returned_objects=[*CLICK_RETURNED_OBJECTS, "bounds", "zoom"]) or {}  # fmt: skip
        seen = st.session_state.setdefault("_cameras_seen", 0)
        count = int(result.get("last_object_clicked_count") or 0)
        if count < seen:
            st.session_state["_cameras_seen"] = count
        elif count != seen and cv.counts is None:
            st.session_state["_cameras_seen"] = count
            hit = camera_from_click(result, shown)
            if hit is not None:
                st.session_state[SEL] = hit
                st.rerun()
        st.caption(t("cam.click_hint", lang, zoom=cams.SECTORS_FROM_ZOOM))
    with right:
        if selected is None:
            st.info(t("cam.pick", lang))
        else:
            rows = store.read("cameras", where={"id": str(selected)})
            if not len(rows):
                st.session_state.pop(SEL, None)
            else:
                cam = rows.iloc[0]
                st.subheader(casesui.md(cam["name"]))
                facts = {
                    t("cam.id", lang): cam["id"],
                    t("cam.status", lang): t(
                        "camstat.online" if bool(cam["online"]) else "camstat.offline", lang
                    ),
                    t("cam.class", lang): t(f"cam.class.{cam['cam_class']}", lang)
                    if cam["cam_class"] in ("class1", "other")
                    else "—",
                    t("cam.direction", lang): "—"
                    if pd.isna(cam["direction"])
                    else f"{cam['direction']:.0f}°",
                    t("cam.fov", lang): "—" if pd.isna(cam["fov"]) else f"{cam['fov']:.0f}°",
                    t("cam.range", lang): "—" if pd.isna(cam["range_m"]) else f"{cam['range_m']:.0f} m",
                }
                st.dataframe(pd.DataFrame({"k": list(facts), "v": [str(v) for v in facts.values()]}), hide_index=True,
                             use_container_width=True, column_config={"k": t("case.field", lang), "v": t("case.value", lang)})  # fmt: skip
                camerasui.show_player(cam.to_dict(), lang)

with tab_cov:
    st.caption(t("cam.cov_hint", lang))
    level = st.radio(t("cam.level", lang), ["village", "grid"], horizontal=True,
                     format_func=lambda v: t(f"cam.level.{v}", lang), key="cov_level")  # fmt: skip
    table = cams.coverage_table(store, level=level, unit_prefix=state.area(who))
    if not len(table):
        st.info(t("cam.no_coverage", lang))
    else:
        st.caption(
            t(
                "cam.computed",
                lang,
                at=casesui.local(table["computed_at"].max(), "Asia/Shanghai", "%Y-%m-%d %H:%M"),
            )
        )
        shown_t = table.drop(columns=["computed_at"])
        picked = st.dataframe(shown_t.rename(columns={c: t(f"camcov.{c}", lang) for c in shown_t.columns}), hide_index=True,
                              use_container_width=True, on_select="rerun", selection_mode="single-row", key="cov_list",
                              column_config={t(f"camcov.{c}", lang): st.column_config.ProgressColumn(t(f"camcov.{c}", lang), min_value=0, max_value=1, format="percent")
                                             for c in ("road_share", "open_share", "online_share")})  # fmt: skip
        st.download_button(t("cases.download", lang), shown_t.to_csv(index=False).encode("utf-8-sig"),
                           file_name=f"camera-coverage-{level}.csv", mime="text/csv", key="cov_csv")  # fmt: skip
        chosen = picked.selection.rows if picked is not None else []
        if chosen:
            code = str(table["code"].iloc[chosen[0]])
            st.subheader(casesui.md(f"{table['name'].iloc[chosen[0]] or code} · {code}"))
            try:
                areas, spots = cams.coverage_map(store, unit_code=code)
            except cams.CameraError as e:
                st.error(casesui.md(str(e)))
                st.stop()
            c = st.columns([1, 1, 2])
            k = c[0].number_input(t("cam.k", lang), 1, 20, 3, key="cov_k")
            picks_key = f"_cov_picks_{code}"
            if c[1].button(t("cam.suggest", lang), key="cov_suggest"):
                try:
                    st.session_state[picks_key] = cams.suggest(store, unit_code=code, k=int(k))
                except cams.CameraError as e:
                    st.error(casesui.md(str(e)))
            picks, pstats = st.session_state.get(picks_key, (None, None))
            if pstats is not None:
                c[2].success(t("cam.suggested", lang, n=len(picks), m=pstats.get("covered_m", 0.0),
                               bound=pstats.get("upper_bound_m", 0.0), ratio=pstats.get("ratio", 0.0)))  # fmt: skip
            CL = labels(("camcov.",), lang)
            groups = [build_coverage_layer(display_frame(areas, shifted), labels=CL),
                      build_blind_spots_layer(display_frame(spots, shifted), labels=CL)]  # fmt: skip
            if picks is not None and len(picks):
                groups.append(
                    build_suggestions_layer(
                        display_frame(picks, shifted), labels=CL, range_m=cams.SUGGEST_RANGE_M
                    )
                )
            centre, zoom = planning.map_view(
                display_frame(areas, shifted).union_all(), width_px=1100, height_px=480
            )
            cov_base = build_base_map(config=config, center=centre, zoom=zoom)
            st_folium(cov_base, key=f"cov_map_{code}", height=480, use_container_width=True, feature_group_to_add=with_release(groups),
                      returned_objects=[])  # fmt: skip
            st.caption(
                t(
                    "cam.blind_spots",
                    lang,
                    n=len(spots),
                    km=float(spots["length_m"].sum()) / 1000 if len(spots) else 0.0,
                )
            )
            if len(spots):
                listing = pd.DataFrame({t("camcov.code", lang): spots["code"], t("camcov.blind_m", lang): spots["length_m"].round(0),
                                        "lon": spots["lon"], "lat": spots["lat"]})  # fmt: skip
                st.dataframe(listing, hide_index=True, use_container_width=True, height=240)
            if picks is not None and len(picks):
                st.dataframe(pd.DataFrame({t("camcov.pick", lang): picks["order"], "lon": picks.geometry.x.round(6),
                                           "lat": picks.geometry.y.round(6), t("camcov.gain_m", lang): picks["gain_m"].round(0)}),
                             hide_index=True)  # fmt: skip

with tab_reg:
    st.caption(t("cam.reg_hint", lang))
    up = st.file_uploader(
        t("cam.reg_file", lang), type=["csv", "geojson", "json", "gpkg", "zip"], key="cam_file"
    )
    if not who.can("cameras.manage"):
        st.info(t("auth.denied", lang))
    elif up is not None and st.button(t("cam.reg_go", lang), key="cam_import"):
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / Path(up.name).name
            path.write_bytes(up.getvalue())
            try:
                report = import_file(store, "cameras", path, partial=True)
            except ImportRejected as e:
                st.error(casesui.md(str(e)))
            except (OSError, ValueError) as e:
                st.error(casesui.md(str(e)))
            else:
                access.audit(store, who, "cameras.import", target=up.name, detail=report.summary()[:2000])
                st.success(casesui.md(report.summary()))
                if report.errors:
                    st.dataframe(pd.DataFrame({t("cam.reg_problem", lang): report.errors}), hide_index=True)
