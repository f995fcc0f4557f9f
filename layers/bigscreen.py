"""Layers of the command center's big screen (dark map): the district outlines a person clicks to
drill down, and the new cases that flash.

Built like ``layers.staff``/``layers.cases``: the data travels as a compact JSON payload (``D``)
that a few lines of plain Leaflet turn into shapes; every text is HTML-escaped here (``esc``)
before it reaches a tooltip; tooltips are built when hovered. The flash is a CSS animation on a
``DivIcon``; its stylesheet is added to the map's frame once by the layer's own script (overlays
sent through ``feature_group_to_add`` carry no header), so a refresh never remounts the map.

Clicks: each outline carries ``gcUnit`` (the district code) and reports its click at the
polygon's label point (``e.latlng``), so ``unit_from_click(result, outlines_as_points)`` or a
point-in-polygon lookup of ``last_object_clicked`` gives the district.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import folium
import geopandas as gpd
import pandas as pd
import shapely

from layers._html import esc
from layers.staff import _GroupScript

__all__ = [
    "DISTRICT_COLOR",
    "FLASH_COLOR",
    "FLASH_LABEL_KEYS",
    "OUTLINE_LABEL_KEYS",
    "build_districts_layer",
    "build_flash_layer",
    "build_staff_dots_layer",
]

DISTRICT_COLOR = "#4fc3f7"
SELECTED_DISTRICT_COLOR = "#ffd54f"
FLASH_COLOR = "#ff5252"
OUTLINE_LABEL_KEYS = ("big.district", "big.drill")
FLASH_LABEL_KEYS = ("big.new_case", "case.category", "big.place", "case.reported")
SIMPLIFY_DEG = 0.0005  # ~50 m: outlines for a whole city stay small

_DISTRICTS_JS = """
D.p.forEach(function (r) {
    var ll = r[1].map(function (ring) { return ring.map(function (p) { return [p[1], p[0]]; }); });
    var sel = r[0] === D.s;
    var poly = L.polygon(ll, {color: sel ? D.cs : D.c, weight: sel ? 4 : 2, opacity: 0.9,
                              fillColor: D.c, fillOpacity: sel ? 0.02 : 0.06});
    poly.gcUnit = r[0];
    poly.bindTooltip(r[2] + (sel ? "" : "<br><small>" + D.hint + "</small>"), {sticky: true, className: "gc-big-tip"});
    poly.on("click", function (e) { e.latlng = L.latLng(r[3][1], r[3][0]); });
    poly.addTo(fg);
    if (D.names) {
        L.marker([r[3][1], r[3][0]], {interactive: false, icon: L.divIcon({className: "gc-big-label",
            html: r[2], iconSize: null})}).addTo(fg);
    }
});
if (!document.getElementById("gc-big-css")) {
    var st = document.createElement("style"); st.id = "gc-big-css";
    st.textContent = D.css; document.head.appendChild(st);
}
"""

_FLASH_JS = """
if (!document.getElementById("gc-flash-css")) {
    var st = document.createElement("style"); st.id = "gc-flash-css";
    st.textContent = D.css; document.head.appendChild(st);
}
D.p.forEach(function (r) {
    var m = L.marker([r[1], r[0]], {icon: L.divIcon({className: "gc-flash", iconSize: [22, 22],
        html: "<span></span>"}), keyboard: false});
    m.gcCase = r[2];
    m.bindTooltip(r[3], {className: "gc-big-tip"});
    m.addTo(fg);
});
"""

_DOTS_JS = """
var colors = D.c;
for (var i = 0; i < D.p.length; i += 3) {
    L.circleMarker([D.p[i + 1], D.p[i]], {radius: D.r, stroke: false, fillColor: colors[D.p[i + 2]],
        fillOpacity: 0.9, interactive: false}).addTo(fg);
}
"""

_CSS = (
    ".gc-big-label{color:#e3f2fd;font:600 15px/1.2 'Noto Sans CJK SC',sans-serif;white-space:nowrap;"
    "text-shadow:0 0 4px #000,0 0 2px #000;transform:translate(-50%,-50%)}"
    ".gc-big-tip{background:rgba(13,27,42,.95);color:#e3f2fd;border:1px solid #4fc3f7;font-size:15px}"
)
_FLASH_CSS = (
    ".gc-flash span{display:block;width:22px;height:22px;border-radius:50%;background:" + FLASH_COLOR + ";"
    "box-shadow:0 0 0 0 rgba(255,82,82,.8);animation:gc-flash 1.2s ease-out infinite}"
    "@keyframes gc-flash{0%{transform:scale(.6);box-shadow:0 0 0 0 rgba(255,82,82,.9)}"
    "70%{transform:scale(1);box-shadow:0 0 0 18px rgba(255,82,82,0)}100%{transform:scale(.6);"
    "box-shadow:0 0 0 0 rgba(255,82,82,0)}}"
)


def _drawable(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """The rows with a geometry to draw (not null, not empty)."""
    if len(frame) == 0:
        return frame
    arr = frame.geometry.array
    return frame[~(shapely.is_missing(arr) | shapely.is_empty(arr))]


def _rings(geom: Any) -> list[list[list[float]]]:
    """Exterior rings of a (Multi)Polygon as [[lon, lat], ...] lists (5 decimals)."""
    out = []
    for part in shapely.get_parts(geom):
        if part.geom_type != "Polygon" or part.is_empty:
            continue
        out.append([[round(x, 5), round(y, 5)] for x, y in part.exterior.coords])
    return out


def build_districts_layer(
    outlines: gpd.GeoDataFrame,
    *,
    labels: Mapping[str, str],
    selected: str | None = None,
    names: bool = True,
    name: str = "districts",
) -> folium.FeatureGroup:
    """District outlines (``code``, ``name``, polygon geometry, lon/lat), simplified to ~50 m,
    with their names written on the map; the ``selected`` one highlighted. Labels:
    OUTLINE_LABEL_KEYS."""
    group = folium.FeatureGroup(name=name)
    rows = _drawable(outlines)
    if len(rows) == 0:
        return group
    simple = rows.geometry.simplify(SIMPLIFY_DEG, preserve_topology=True)
    label_pts = rows.geometry.representative_point()
    payload = {
        "p": [
            [str(code), _rings(geom), esc(title), [round(pt.x, 5), round(pt.y, 5)]]
            for code, geom, title, pt in zip(rows["code"], simple, rows["name"], label_pts, strict=True)
        ],
        "s": selected,
        "c": DISTRICT_COLOR,
        "cs": SELECTED_DISTRICT_COLOR,
        "hint": esc(labels["big.drill"]),
        "names": bool(names),
        "css": _CSS,
    }
    group.add_child(_GroupScript(payload, _DISTRICTS_JS))
    return group


def build_flash_layer(
    cases: gpd.GeoDataFrame, *, labels: Mapping[str, str], tz: str = "Asia/Shanghai", name: str = "new_cases"
) -> folium.FeatureGroup:
    """New cases as pulsing red dots; ``cases`` (lon/lat points) needs id, category_name, place,
    reported_at (UTC). Each marker carries ``gcCase``. Labels: FLASH_LABEL_KEYS."""
    group = folium.FeatureGroup(name=name)
    rows = _drawable(cases)
    if len(rows) == 0:
        return group
    when = pd.to_datetime(rows["reported_at"], utc=True, errors="coerce").dt.tz_convert(tz).dt.strftime("%H:%M")
    tips = [
        f"<b>{esc(labels['big.new_case'])} #{int(i)}</b><br>{esc(labels['case.category'])}: {esc(c)}<br>"
        f"{esc(labels['big.place'])}: {esc(p)}<br>{esc(labels['case.reported'])}: {esc(w)}"
        for i, c, p, w in zip(rows["id"], rows["category_name"], rows["place"], when.fillna(""), strict=True)
    ]
    payload = {
        "p": [
            [round(float(g.x), 6), round(float(g.y), 6), int(i), tip]
            for g, i, tip in zip(rows.geometry, rows["id"], tips, strict=True)
        ],
        "css": _FLASH_CSS,
    }
    group.add_child(_GroupScript(payload, _FLASH_JS))
    return group


DOT_COLORS = ("#69f0ae", "#ffd740", "#78909c")  # online, stale, offline (the staff layer's meaning)


def build_staff_dots_layer(
    staff: gpd.GeoDataFrame, *, radius: float = 2.5, name: str = "staff_dots"
) -> folium.FeatureGroup:
    """Every live staff member as a small dot coloured by freshness (online / stale / offline), for
    the whole-city view: no tooltips, positions at 4 decimals (~10 m), about 20 bytes a person, so
    15,000 people fit the screen's budget. ``staff`` needs freshness and point geometry."""
    group = folium.FeatureGroup(name=name)
    rows = _drawable(staff)
    if len(rows) == 0:
        return group
    code = rows["freshness"].map({"online": 0, "stale": 1}).fillna(2).astype(int)
    flat: list[float] = []
    for g, c in zip(rows.geometry, code, strict=True):
        x, y = float(g.x), float(g.y)
        if x == x and y == y:
            flat += [round(x, 4), round(y, 4), int(c)]
    group.add_child(_GroupScript({"p": flat, "c": list(DOT_COLORS), "r": float(radius)}, _DOTS_JS))
    return group
