"""Layers of the planning page: a draft's grids with live household counts, its buildings, the
validator's findings, a before/after diff of two versions, and the drawing tools.

Every text a person typed (grid names, building names, finding messages that quote them) is
HTML-escaped here: folium puts tooltips into the page as raw HTML.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field

import folium
import geopandas as gpd
from folium.plugins import Draw

from layers._html import band_text, esc, field_tooltip
from layers.grids import DEFAULT_STYLE, STATUSES, GridStyle

DIFF_COLORS = {"unchanged": "#9aa3ad", "changed": "#e0a800", "added": "#2e9e5b", "removed": "#d64545"}
SEVERITY_COLORS = {"error": "#c62828", "warning": "#ef6c00"}
SELECTED_COLOR = "#1a237e"

LABEL_KEYS = (
    "plan.grid",
    "plan.name",
    "plan.households",
    "plan.buildings",
    "plan.band",
    "plan.status",
    "plan.building",
    "plan.finding",
    "plan.diff",
    *(f"grid.status.{s}" for s in STATUSES),
    *(f"plan.diff.{s}" for s in DIFF_COLORS),
)


@dataclass(frozen=True)
class DraftStyle:
    grid: GridStyle = DEFAULT_STYLE
    selected_color: str = SELECTED_COLOR
    building: Mapping[str, str] = field(
        default_factory=lambda: {"color": "#6b7480", "fillColor": "#c3c9d1", "selected": "#1a237e"}
    )


DEFAULT_DRAFT_STYLE = DraftStyle()



def build_draft_layer(
    grids: gpd.GeoDataFrame,
    *,
    labels: Mapping[str, str],
    selected: Collection[int] = (),
    style: DraftStyle = DEFAULT_DRAFT_STYLE,
    name: str = "draft",
) -> folium.FeatureGroup:
    """Draft grids (lon/lat; columns key, ref, name, kind, households, band_min, band_max, status)
    coloured by band status, the selected ones outlined, each labelled with its household count."""
    group = folium.FeatureGroup(name=name)
    if len(grids) == 0:
        return group
    chosen = {int(k) for k in selected}
    fields = {
        "r": ("plan.grid", [esc(v) for v in grids["ref"]]),
        "n": ("plan.name", [esc(v) for v in grids["name"]]),
        "h": ("plan.households", [esc(int(v)) for v in grids["households"]]),
        "b": ("plan.band", [band_text(lo, hi) for lo, hi in zip(grids["band_min"], grids["band_max"], strict=True)]),
        "s": ("plan.status", [esc(labels[f"grid.status.{s}"]) for s in grids["status"]]),
    }
    frame = gpd.GeoDataFrame(
        {
            "k": grids["key"].astype(int).to_numpy(),
            "status": grids["status"].astype(str).to_numpy(),
            "sel": [int(k) in chosen for k in grids["key"]],
            **{k: v for k, (_, v) in fields.items()},
        },
        geometry=grids.geometry.to_numpy(),
        crs=grids.crs,
    )
    colors = style.grid.colors

    def _style(feature: dict) -> dict:
        p = feature["properties"]
        c = colors.get(p["status"], "#666666")
        dedicated = p["status"] == "dedicated"
        return {
            "color": style.selected_color if p["sel"] else c,
            "weight": 4 if p["sel"] else style.grid.weight * (1.6 if dedicated else 1.0),
            "fillColor": c,
            "fillOpacity": 0.12 if dedicated else style.grid.fill_opacity,
            "dashArray": "4 3" if dedicated else None,
        }

    folium.GeoJson(
        frame,
        name=name,
        style_function=_style,
        highlight_function=lambda f: {"weight": 3, "fillOpacity": 0.5},
        tooltip=field_tooltip(fields, labels),
        zoom_on_click=False,
    ).add_to(group)
    # Household counts on the map, the way redistricting tools show population while you paint.
    points = grids.geometry.representative_point()
    for pt, ref, hh, status in zip(points, grids["ref"], grids["households"], grids["status"], strict=True):
        if status == "dedicated":
            continue
        folium.Marker(
            location=(pt.y, pt.x),
            icon=folium.DivIcon(
                html=f'<div class="gc-count" data-ref="{esc(ref)}" style="font:600 11px sans-serif;'
                f'color:#1f2933;text-shadow:0 0 3px #fff;white-space:nowrap;pointer-events:none">'
                f"{esc(int(hh))}</div>",
                icon_size=(40, 14),
                icon_anchor=(20, 7),
            ),
            interactive=False,
        ).add_to(group)
    return group


def build_buildings_layer(
    buildings: gpd.GeoDataFrame,
    *,
    labels: Mapping[str, str],
    selected: Collection[int] = (),
    style: DraftStyle = DEFAULT_DRAFT_STYLE,
    name: str = "buildings",
) -> folium.FeatureGroup:
    """Building footprints (lon/lat; id, households, name) a planner clicks to move between grids."""
    group = folium.FeatureGroup(name=name)
    if len(buildings) == 0:
        return group
    chosen = {int(i) for i in selected}
    fields = {
        "i": ("plan.building", [esc(v) for v in buildings["id"]]),
        "n": ("plan.name", [esc(v) for v in buildings["name"]]),
        "h": ("plan.households", [esc(v) for v in buildings["households"]]),
    }
    frame = gpd.GeoDataFrame(
        {"sel": [int(i) in chosen for i in buildings["id"]], **{k: v for k, (_, v) in fields.items()}},
        geometry=buildings.geometry.to_numpy(),
        crs=buildings.crs,
    )
    colors = style.building

    def _style(feature: dict) -> dict:
        sel = feature["properties"]["sel"]
        return {
            "color": colors["selected"] if sel else colors["color"],
            "weight": 2.5 if sel else 0.7,
            "fillColor": colors["selected"] if sel else colors["fillColor"],
            "fillOpacity": 0.8,
        }

    folium.GeoJson(
        frame, name=name, style_function=_style, tooltip=field_tooltip(fields, labels), zoom_on_click=False
    ).add_to(group)
    return group


def build_findings_layer(
    findings: gpd.GeoDataFrame, *, labels: Mapping[str, str], name: str = "findings"
) -> folium.FeatureGroup:
    """Where the validator found problems (lon/lat; code, severity, message, geometry)."""
    group = folium.FeatureGroup(name=name)
    rows = findings[findings.geometry.notna() & ~findings.geometry.is_empty] if len(findings) else findings
    if len(rows) == 0:
        return group
    fields = {"m": ("plan.finding", [esc(f"[{c}] {m}") for c, m in zip(rows["code"], rows["message"], strict=True)])}
    frame = gpd.GeoDataFrame(
        {"sev": rows["severity"].astype(str).to_numpy(), **{k: v for k, (_, v) in fields.items()}},
        geometry=rows.geometry.to_numpy(),
        crs=rows.crs,
    )

    def _style(feature: dict) -> dict:
        c = SEVERITY_COLORS.get(feature["properties"]["sev"], "#c62828")
        return {"color": c, "weight": 3, "fillColor": c, "fillOpacity": 0.45, "dashArray": "2 4"}

    folium.GeoJson(
        frame,
        name=name,
        style_function=_style,
        marker=folium.CircleMarker(radius=7),
        tooltip=field_tooltip(fields, labels),
        zoom_on_click=False,
    ).add_to(group)
    return group


def build_diff_layer(diff: gpd.GeoDataFrame, *, labels: Mapping[str, str], name: str = "diff") -> folium.FeatureGroup:
    """Before/after of two versions (lon/lat; key, status unchanged|changed|added|removed)."""
    group = folium.FeatureGroup(name=name)
    if len(diff) == 0:
        return group
    fields = {
        "k": ("plan.grid", [esc(v) for v in diff["key"]]),
        "d": ("plan.diff", [esc(labels[f"plan.diff.{s}"]) for s in diff["status"]]),
    }
    frame = gpd.GeoDataFrame(
        {"st": diff["status"].astype(str).to_numpy(), **{k: v for k, (_, v) in fields.items()}},
        geometry=diff.geometry.to_numpy(),
        crs=diff.crs,
    )

    def _style(feature: dict) -> dict:
        st = feature["properties"]["st"]
        c = DIFF_COLORS.get(st, "#666666")
        return {
            "color": c,
            "weight": 2.5 if st != "unchanged" else 0.8,
            "fillColor": c,
            "fillOpacity": 0.05 if st == "removed" else 0.3,
            "dashArray": "6 4" if st == "removed" else None,
        }

    folium.GeoJson(frame, name=name, style_function=_style, tooltip=field_tooltip(fields, labels)).add_to(group)
    return group


def add_draw_tools(m: folium.Map) -> folium.Map:
    """Leaflet.draw with the two tools a planner needs: a line (split a grid) and a polygon (a
    grid's new outline). Part of the base map, so it stays identical across reruns."""
    Draw(
        export=False,
        position="topleft",
        draw_options={
            "polyline": {"shapeOptions": {"color": "#1a237e", "weight": 3}},
            "polygon": {"allowIntersection": False, "shapeOptions": {"color": "#1a237e"}},
            "rectangle": False,
            "circle": False,
            "marker": False,
            "circlemarker": False,
        },
        edit_options={"edit": False, "remove": True},
    ).add_to(m)
    return m
