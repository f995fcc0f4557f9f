"""Video cameras on the map: cameras coloured by status (with their field-of-view sectors at street
zoom), cameras per unit for the zoomed-out city view, and the cameras that see one place (the
dispatch map's "cameras that see this case").

Built exactly like ``layers.cases`` (read its module docstring for the details): every text is
HTML-escaped here (``esc``), the data travels as a compact JSON payload ``D`` (``script_json``)
that a few lines of plain Leaflet turn into markers, tooltips are built only when hovered, and
markers are drawn on the map's own renderer (the console's base map has ``preferCanvas``; no
private ``L.canvas``, which would swallow the mouse events of the layers below it).

Clicks. Each camera marker carries ``gcCamera`` (the camera id, 20-digit text), each count bubble
``gcUnit`` (the unit code) and each rank badge of the seeing layer ``gcCamera`` too. The marker's
own click listener (bound before streamlit-folium's) sets ``e.latlng`` to the marker's position
(6 decimals, as in the payload) and turns the lazy tooltip into its HTML string, so
``st_folium(..., returned_objects=[*CLICK_RETURNED_OBJECTS, ...])`` reports the exact position and
the tooltip text, which names the camera id. ``camera_from_click(result, cameras)`` turns that
into the camera id (the cameras at exactly that position; on a tie the one whose id the tooltip
names, else the one drawn on top); ``unit_from_click(result, counts)`` gives the unit of a count
bubble. Field-of-view sectors are not interactive (they never take a click meant for a camera)
and are drawn before (below) the markers.

Camera ids are 20-digit texts (national standard GB/T 28181 codes): more than a JavaScript number
holds exactly, so they stay strings everywhere.

Labels come translated from the caller (``*_LABEL_KEYS``): ``dist.m``/``dist.km`` are formats
in which ``{n}`` stands for a number ("{n} m").
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import pandas as pd

from layers._html import esc
from layers.cases import (
    _LAZY_JS,
    CLICK_RETURNED_OBJECTS,
    SELECTED_COLOR,
    _at,
    _clip,
    _col,
    _finite_xy,
    _flag,
    _index,
    _int,
    _points,
    clicked_latlng,
    distance_text,
    share_bubbles,
    unit_from_click,
)
from layers.staff import _GroupScript, _num, _round6, _swatch, _valid

__all__ = [
    "CAMERA_CLASSES",
    "CAMERA_COUNTS_LABEL_KEYS",
    "CAMERA_LABEL_KEYS",
    "CLASS_RADII",
    "CLICK_RETURNED_OBJECTS",
    "LABEL_KEYS",
    "NAME_CHARS",
    "OFFLINE_COLOR",
    "ONLINE_COLOR",
    "SEEING_COLOR",
    "SEEING_LABEL_KEYS",
    "SELECTED_COLOR",
    "build_camera_counts_layer",
    "build_cameras_layer",
    "build_seeing_layer",
    "camera_from_click",
    "clicked_latlng",
    "unit_from_click",
]

ONLINE_COLOR = "#2e9e5b"  # green (the staff layer's "online")
OFFLINE_COLOR = "#8a8f96"  # grey (the staff layer's "offline")
SEEING_COLOR = "#6a1b9a"  # purple lines and rank badges from a case to the cameras that see it
COUNT_EMPTY_COLOR = "#9aa3ad"
CAMERA_CLASSES = ("class1", "other")  # cam_class values; class one (key cameras) drawn bigger
CLASS_RADII = (8.0, 5.5)  # px by class; all ≤ 10 so Leaflet reports the marker's position
SELECTED_RADIUS = 10.0
SECTOR_STYLE: dict[str, Any] = {"weight": 1, "opacity": 0.6, "fillOpacity": 0.15}
NAME_CHARS = 60

CAMERA_LABEL_KEYS = (
    "cam.id",  # tooltip field names
    "cam.status",
    "cam.class",
    "cam.direction",
    "cam.fov",
    "cam.range",
    "cam.unit",
    "cam.stream",
    "cam.online",  # status names (also the legend)
    "cam.offline",
    "cam.class1",  # class names (class1 also in the legend: "bigger dot")
    "cam.class_other",
    "cam.has_stream",  # stream values
    "cam.stream_none",
    "cam.selected",  # legend
    "dist.m",  # "{n} m"
    "dist.km",  # "{n} km"
)
CAMERA_COUNTS_LABEL_KEYS = ("cam.cameras", "cam.online")
SEEING_LABEL_KEYS = ("cam.id", "cam.distance", "dist.m", "dist.km")
LABEL_KEYS = tuple(dict.fromkeys((*CAMERA_LABEL_KEYS, *CAMERA_COUNTS_LABEL_KEYS, *SEEING_LABEL_KEYS)))


def _text_id(value: Any) -> str | None:
    """A camera id as text (None when missing). Integers are written without '.0'."""
    if value is None or value is pd.NA or (isinstance(value, float) and not math.isfinite(value)):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = str(value).strip()
    return text or None


def _has_geometry(frame: pd.DataFrame) -> bool:
    """True for a GeoDataFrame with an active geometry column."""
    if not isinstance(frame, gpd.GeoDataFrame):
        return False
    try:
        return frame.geometry.name in frame.columns
    except AttributeError:  # no active geometry column
        return False


def _has_stream(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())


# ---------------------------------------------------------------------------
# Cameras
# ---------------------------------------------------------------------------

# D: L field labels, st status names [online, offline], sc status colours, cl class names,
# rs radius by class, rsel selected radius, sv stream texts [no, yes], dm/dk distance formats,
# un unit names, sel (index of the selected camera or null), ps sector style,
# per camera: id (text), y lat, x lon, o online (1/0), c class index, n name, d direction (deg),
# f field of view (deg), r range (m), s has stream (1/0), w unit index;
# per sector part: sp rings [exterior, holes...] of [lat, lon], si the camera's index (-1: not among
# the cameras), sk status index (0 online, 1 offline: the camera's, else the sector row's own).
_CAMERAS_JS = (
    """
function deg(v) { return v === null ? "—" : v + "°"; }
function dist(m) {
    if (m === null) { return "—"; }
    return m < 1000 ? D.dm.split("{n}").join(Math.round(m))
        : D.dk.split("{n}").join(m < 10000 ? (m / 1000).toFixed(1) : Math.round(m / 1000));
}
function row(k, v) { return "<br>" + k + ": " + v; }
function tip(m) {
    var i = m.gcI;
    return '<div class="gc-cam-tip"><b>' + D.n[i] + "</b>"
        + row(D.L.id, D.id[i])
        + row(D.L.status, D.st[D.o[i] ? 0 : 1])
        + row(D.L.cls, D.cl[D.c[i]])
        + row(D.L.dir, deg(D.d[i]))
        + row(D.L.fov, deg(D.f[i]))
        + row(D.L.range, dist(D.r[i]))
        + row(D.L.unit, D.un[D.w[i]])
        + row(D.L.stream, D.sv[D.s[i]]) + "</div>";
}
"""
    + _LAZY_JS
    + """
var sectors = [];
for (var j = 0; j < D.sp.length; j++) {
    var col = D.sc[D.sk[j]];
    sectors.push(L.polygon(D.sp[j], Object.assign({color: col, fillColor: col, interactive: false}, D.ps)));
}
fg.addLayer(L.layerGroup(sectors));
var markers = [];
for (var i = 0; i < D.y.length; i++) {
    var sel = i === D.sel;
    var m = L.circleMarker([D.y[i], D.x[i]], {radius: sel ? D.rsel : D.rs[D.c[i]], fill: true,
        fillColor: D.sc[D.o[i] ? 0 : 1], fillOpacity: 0.95, opacity: 1,
        color: sel ? "__SELECTED__" : "#ffffff", weight: sel ? 3 : 1.5});
    m.gcCamera = D.id[i];
    m.gcI = i;
    m.on("mouseover click", lazy);
    m.bindTooltip(tip, {sticky: true});
    markers.push(m);
}
fg.addLayer(L.layerGroup(markers));
"""
).replace("__SELECTED__", SELECTED_COLOR)


def _camera_rows(cameras: gpd.GeoDataFrame, selected: str | None) -> tuple[gpd.GeoDataFrame, int | None]:
    """Drawable cameras in drawing order (by id, the selected one last) and the selected index."""
    rows = _valid(cameras)
    if len(rows) == 0:
        return rows, None
    ids = [_text_id(v) for v in _col(rows, "id")]
    rows = rows.assign(_id=ids)
    rows = rows[rows["_id"].notna()]
    if len(rows) == 0:
        return rows, None
    rows = rows.sort_values("_id", kind="stable")
    want = _text_id(selected)
    is_selected = (rows["_id"] == want).to_numpy() if want is not None else np.zeros(len(rows), bool)
    if is_selected.any():  # drawn last, so on top
        first = int(np.flatnonzero(is_selected)[0])
        keep = np.ones(len(rows), bool)
        keep[first] = False
        rows = pd.concat([rows[keep], rows.iloc[[first]]])
        return rows, len(rows) - 1
    return rows, None


def _ring(coords: Any) -> list[list[float]]:
    return [[float(y), float(x)] for x, y, *_ in coords]


def _sector_parts(
    sectors: gpd.GeoDataFrame | None, where: Mapping[str, int], online: list[int]
) -> tuple[list[list[list[list[float]]]], list[int], list[int]]:
    """Each polygon part's rings (exterior, then holes) as [[lat, lon], ...] (6 decimals), its
    camera's index (-1 when the camera is not drawn) and its status index (0 online, 1 offline):
    the camera's status, else the sector row's own ``online`` (offline when missing)."""
    parts_out: list[list[list[list[float]]]] = []
    owners: list[int] = []
    status: list[int] = []
    if sectors is None or len(sectors) == 0:
        return parts_out, owners, status
    rows = _valid(sectors)
    if len(rows) == 0:
        return parts_out, owners, status
    for cam_id, own_online, geom in zip(
        _col(rows, "id"), _col(rows, "online", False), _round6(rows.geometry.to_numpy()), strict=True
    ):
        key = _text_id(cam_id)
        owner = where.get(key, -1) if key is not None else -1
        on = online[owner] if owner >= 0 else (1 if _flag(own_online) else 0)
        for part in getattr(geom, "geoms", [geom]):
            if part.geom_type != "Polygon" or part.is_empty:
                continue
            parts_out.append([_ring(part.exterior.coords), *(_ring(r.coords) for r in part.interiors)])
            owners.append(owner)
            status.append(0 if on else 1)
    return parts_out, owners, status


def build_cameras_layer(
    cameras: gpd.GeoDataFrame,
    *,
    labels: Mapping[str, str],
    sectors: gpd.GeoDataFrame | None = None,
    selected: str | None = None,
    name: str | None = None,
    legend: bool = True,
) -> folium.FeatureGroup:
    """Cameras as circle markers filled by status (online green, offline grey), class-one cameras
    bigger, the ``selected`` camera largest, outlined in navy and drawn last (on top); with
    ``sectors`` (columns id, polygon geometry; pass them only at street zoom) each camera's field
    of view as a translucent polygon in its status colour, not interactive, below the markers.

    ``cameras`` (lon/lat points) needs columns id (text), name, online, cam_class (CAMERA_CLASSES;
    anything else counts as 'other'), direction, fov, range_m, stream_url, unit_name. Rows without
    a geometry or an id are left out. Tooltip (built when hovered): name, id, status, class,
    direction, field of view, range, unit, whether it has a stream URL. Labels: CAMERA_LABEL_KEYS.
    Each marker carries ``gcCamera``; ``camera_from_click`` maps a click back to the id.
    """
    group = folium.FeatureGroup(name=name if name is not None else "cameras")
    rows, sel_index = _camera_rows(cameras, selected)
    ids = [str(v) for v in rows["_id"]] if len(rows) else []
    where = {v: i for i, v in enumerate(ids)}
    online = [1 if _flag(v) else 0 for v in _col(rows, "online", False)] if ids else []
    rings, owners, sector_status = _sector_parts(sectors, where, online)
    if not ids and not rings:
        return group

    classes = (
        [0 if str(v).strip().lower() == CAMERA_CLASSES[0] else 1 for v in _col(rows, "cam_class")]
        if ids
        else []
    )
    unit_names, unit_index = _index([esc(v) for v in _col(rows, "unit_name")]) if ids else ([], [])
    ys, xs = _points(rows) if ids else ([], [])

    def _nums(column: str, digits: int, lo: float | None = None) -> list[Any]:
        out: list[Any] = []
        for v in _col(rows, column):
            n = _num(v, digits) if not isinstance(v, str) else _num(pd.to_numeric(v, errors="coerce"), digits)
            out.append(None if n is None or (lo is not None and n < lo) else n)
        return out

    status_names = [esc(labels["cam.online"]), esc(labels["cam.offline"])]
    class_names = [esc(labels["cam.class1"]), esc(labels["cam.class_other"])]
    payload = {
        "L": {
            "id": esc(labels["cam.id"]),
            "status": esc(labels["cam.status"]),
            "cls": esc(labels["cam.class"]),
            "dir": esc(labels["cam.direction"]),
            "fov": esc(labels["cam.fov"]),
            "range": esc(labels["cam.range"]),
            "unit": esc(labels["cam.unit"]),
            "stream": esc(labels["cam.stream"]),
        },
        "st": status_names,
        "sc": [ONLINE_COLOR, OFFLINE_COLOR],
        "cl": class_names,
        "rs": list(CLASS_RADII),
        "rsel": SELECTED_RADIUS,
        "sv": [esc(labels["cam.stream_none"]), esc(labels["cam.has_stream"])],
        "dm": esc(labels["dist.m"]),
        "dk": esc(labels["dist.km"]),
        "ps": SECTOR_STYLE,
        "un": unit_names,
        "sel": sel_index,
        "id": [esc(v) for v in ids],
        "y": ys,
        "x": xs,
        "o": online,
        "c": classes,
        "n": [esc(_clip(v, NAME_CHARS)) for v in _col(rows, "name")] if ids else [],
        "d": [None if v is None else v % 360 for v in _nums("direction", 0)] if ids else [],
        "f": _nums("fov", 0, 0) if ids else [],
        "r": _nums("range_m", 0, 0) if ids else [],
        "s": [1 if _has_stream(v) else 0 for v in _col(rows, "stream_url")] if ids else [],
        "w": unit_index,
        "sp": rings,
        "si": owners,
        "sk": sector_status,
    }

    legend_html = None
    if legend and ids:
        dot = "border-radius:50%;box-sizing:border-box;border:1.5px solid #fff;"
        parts = []
        if any(online):
            parts.append(_swatch(f"{dot}width:11px;height:11px;background:{ONLINE_COLOR}") + status_names[0])
        if not all(online):
            parts.append(_swatch(f"{dot}width:11px;height:11px;background:{OFFLINE_COLOR}") + status_names[1])
        if 0 in classes:
            parts.append(_swatch(f"{dot}width:16px;height:16px;background:#90a4ae") + class_names[0])
        if sel_index is not None:
            parts.append(
                _swatch(
                    f"width:14px;height:14px;border-radius:50%;background:#cfd8dc;border:3px solid {SELECTED_COLOR}"
                )
                + esc(labels["cam.selected"])
            )
        legend_html = "<br>".join(parts)
    _GroupScript(payload, _CAMERAS_JS, legend=legend_html, legend_class="gc-legend gc-cam-legend").add_to(
        group
    )
    return group


# ---------------------------------------------------------------------------
# Cameras per unit (zoomed-out view)
# ---------------------------------------------------------------------------

def build_camera_counts_layer(
    counts: gpd.GeoDataFrame,
    *,
    labels: Mapping[str, str],
    name: str | None = None,
    min_radius: float = 10.0,
    max_radius: float = 30.0,
    offset_px: tuple[int, int] = (0, 0),
) -> folium.FeatureGroup:
    """Cameras per unit for the city zoom (``layers.cases.share_bubbles``): sized by the camera
    count, a green slice for the online share over grey, the count inside, a tooltip with name,
    cameras and online. ``offset_px`` (right, down) moves the bubbles off the point, so they sit
    beside another layer's bubble for the same unit.

    ``counts`` needs code, name, cameras, online. Labels: CAMERA_COUNTS_LABEL_KEYS. Each bubble
    carries ``gcUnit`` (the code); ``unit_from_click`` maps a click back to it.
    """
    return share_bubbles(
        counts,
        group=folium.FeatureGroup(name=name if name is not None else "camera_counts"),
        total="cameras",
        part="online",
        labels=(labels["cam.cameras"], labels["cam.online"]),
        colors=(ONLINE_COLOR, OFFLINE_COLOR),
        css_class="gc-cam-count",
        min_radius=min_radius,
        max_radius=max_radius,
        offset_px=offset_px,
    )


# ---------------------------------------------------------------------------
# Cameras that see one place
# ---------------------------------------------------------------------------

# D: c target [lat, lon] (null when not finite: no lines), lc colour, per camera id (text), r rank, y, x, t tooltip HTML.
_SEEING_JS = (
    """
function tip(m) { return D.t[m.gcI]; }
"""
    + _LAZY_JS
    + """
var lines = [], badges = [];
for (var i = 0; i < D.y.length; i++) {
    var ll = [D.y[i], D.x[i]];
    if (D.c) {
        lines.push(L.polyline([D.c, ll], {color: D.lc, weight: 2.5, opacity: 0.8, dashArray: "4 5",
            interactive: false}));
    }
    var m = L.marker(ll, {keyboard: false, zIndexOffset: 1000 - D.r[i], icon: L.divIcon({
        className: "gc-seeing", iconSize: [20, 20], iconAnchor: [10, 10],
        html: '<div style="box-sizing:border-box;width:20px;height:20px;border-radius:50%;'
            + "background:" + D.lc + ";border:2px solid #fff;box-shadow:0 1px 3px rgba(0,0,0,.45);"
            + 'color:#fff;font:700 11px/16px sans-serif;text-align:center">' + D.r[i] + "</div>"})});
    m.gcCamera = D.id[i];
    m.gcI = i;
    m.on("mouseover click", lazy);
    m.bindTooltip(tip, {sticky: true});
    badges.push(m);
}
fg.addLayer(L.layerGroup(lines));
fg.addLayer(L.layerGroup(badges));
"""
)


def build_seeing_layer(
    seeing: pd.DataFrame,
    *,
    target: tuple[float, float],
    labels: Mapping[str, str],
    name: str | None = None,
) -> folium.FeatureGroup:
    """The cameras that see one place (``target`` = (lon, lat), e.g. a case): a dashed purple line
    from the target to each camera (not interactive) and a numbered badge (the rank) on the
    camera, tooltip 'rank. name', id and distance.

    ``seeing`` needs id, rank, distance_m, lon, lat (name optional); rows without a position are
    not drawn. Labels: SEEING_LABEL_KEYS. Each badge carries ``gcCamera``;
    ``camera_from_click(result, seeing)`` maps a click back to the id.
    """
    group = folium.FeatureGroup(name=name if name is not None else "seeing")
    if len(seeing) == 0:
        return group
    rows = seeing[_finite_xy(seeing)]
    rows = rows.assign(_id=pd.Series([_text_id(v) for v in _col(rows, "id")], index=rows.index, dtype=object))
    rows = rows[rows["_id"].notna()]
    if len(rows) == 0:
        return group
    ranks = [_int(r, i + 1) for i, r in enumerate(_col(rows, "rank"))]
    rows = rows.assign(_rank=ranks).sort_values("_rank", kind="stable")
    tips = []
    for rank, cam_id, cam_name, dist in zip(
        rows["_rank"], rows["_id"], _col(rows, "name"), _col(rows, "distance_m"), strict=True
    ):
        title = f"{int(rank)}." + (
            f" {esc(_clip(cam_name, NAME_CHARS))}" if _clip(cam_name) is not None else ""
        )
        tips.append(
            f'<div class="gc-seeing-tip"><b>{title}</b>'
            f"<br>{esc(labels['cam.id'])}: {esc(cam_id)}"
            f"<br>{esc(labels['cam.distance'])}: {distance_text(dist, labels)}</div>"
        )
    lon, lat = _num(target[0], 6), _num(target[1], 6)
    payload = {
        "c": [lat, lon] if lon is not None and lat is not None else None,
        "lc": SEEING_COLOR,
        "id": [esc(v) for v in rows["_id"]],
        "r": [int(r) for r in rows["_rank"]],
        "y": [round(float(v), 6) for v in rows["lat"]],
        "x": [round(float(v), 6) for v in rows["lon"]],
        "t": tips,
    }
    _GroupScript(payload, _SEEING_JS).add_to(group)
    return group


# ---------------------------------------------------------------------------
# Clicks
# ---------------------------------------------------------------------------


def camera_from_click(result: Any, cameras: pd.DataFrame, *, selected: str | None = None) -> str | None:
    """The id of the camera clicked, from ``st_folium``'s return value (called with
    ``returned_objects`` including CLICK_RETURNED_OBJECTS) and the same frame the layer was built
    from: the cameras GeoDataFrame of ``build_cameras_layer`` or the lon/lat frame of
    ``build_seeing_layer``. None when the click was not on one of them.

    The camera at exactly ``last_object_clicked`` (6 decimals, as drawn). When several share the
    position: the one whose id the clicked tooltip's text names, else the one drawn on top
    (``selected`` if among them, else the greatest id; for the seeing layer the best rank).
    """
    clicked = clicked_latlng(result)
    if clicked is None or len(cameras) == 0:
        return None
    seeing = "rank" in cameras.columns and "lon" in cameras.columns and "lat" in cameras.columns
    if not seeing and _has_geometry(cameras):  # build_cameras_layer draws the geometry
        rows = _valid(cameras)
        if len(rows) == 0:
            return None
        ys, xs = _points(rows)
    else:
        rows = cameras[_finite_xy(cameras)]
        ys = [round(float(v), 6) for v in rows["lat"]]
        xs = [round(float(v), 6) for v in rows["lon"]]
    ids = [_text_id(v) for v in _col(rows, "id")]
    hit = _at(*clicked, ys, xs)
    if seeing:
        # As build_seeing_layer draws them: rows with an id, by rank (a missing rank counts as the
        # row's place), the best rank on top and, among equal ranks, the one drawn last.
        with_id = [
            (cam, r, h) for cam, r, h in zip(ids, _col(rows, "rank"), hit, strict=True) if cam is not None
        ]
        kept = [cam for cam, _, _ in with_id]
        ranks = [_int(r, i + 1) for i, (_, r, _) in enumerate(with_id)]
        hits = [bool(h) for _, _, h in with_id]
        drawn = sorted(range(len(kept)), key=lambda i: ranks[i])
        found = [kept[i] for i in drawn if hits[i]]
        if found:
            best = min(ranks[i] for i in drawn if hits[i])
            top = [kept[i] for i in drawn if hits[i] and ranks[i] == best][-1]
            found = [*(cam for cam in found if cam != top), top]  # the top one last
    else:
        found = [cam for cam, h in zip(ids, hit, strict=True) if h and cam is not None]
    if not found:
        return None
    tooltip = result.get("last_object_clicked_tooltip") if isinstance(result, Mapping) else None
    if isinstance(tooltip, str):
        # The tooltip's text has the id row "<label>: <id>" (a name may mention other ids); the
        # longest match wins when one id starts another ("…: 12" also matches in "…: 123").
        named = [cam for cam in found if f": {cam}" in tooltip] or [cam for cam in found if cam in tooltip]
        if named:
            return max(named, key=len)
    want = _text_id(selected)
    if want is not None and want in found:
        return want
    return found[-1] if seeing else max(found)
