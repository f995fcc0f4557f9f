"""Cases on the dispatcher's map (/dispatch): open cases coloured by state, the candidates
proposed for one case, clusters of similar cases and per-unit counts for the zoomed-out view.

Every text a person typed (descriptions, addresses, names, category names, reasons) and every
label is HTML-escaped here (``esc``): Leaflet puts tooltips and icons into the page as HTML. The
data travels as a compact JSON payload ``D`` (``script_json``: no ``</script>`` can end the
script early) that a few lines of plain Leaflet turn into markers; tooltips are built from it
only when hovered. Labels come translated from the caller (``*_LABEL_KEYS``): ``dur.*`` are
formats in which ``{n}`` stands for a number ("{n} min"), ``case.overdue_by`` and
``case.due_in`` formats in which ``{span}`` stands for a duration ("overdue by {span}"),
``case.escalated_to`` a format in which ``{level}`` stands for a ``level.*`` name,
``dist.m``/``dist.km`` formats for distances, ``cluster.similar`` a format with ``{n}``.

Rendering. Case markers, candidate lines and cluster outlines use the map's own renderer (the
console's base map has ``preferCanvas``, so one shared canvas). A layer-private ``L.canvas``
would be a second canvas stacked over the first, and the top canvas swallows every mouse event,
so grid and cluster tooltips under it would die. On the shared canvas Leaflet hit-tests all
paths together and the last drawn path under the pointer wins; case markers are drawn in id
order with the selected case last, so it is on top. Candidate lines are not interactive, and
cluster outlines are not filled (only the dashed outline is hoverable), so neither can take a
click meant for a case whatever order the page adds its groups in.

How a click on a case gets back to Python (streamlit-folium 0.27, ``frontend/src/index.tsx``):

1. ``st_folium(..., feature_group_to_add=[...])`` sends each group as JavaScript. On the first
   load ``initComponent`` binds its ``onLayerClick`` to every layer in ``map._layers``; when the
   groups change (our payload changed) it removes the old groups, ``eval``s the new code and
   walks ``map._layers`` again, calling ``layer.off("click", onLayerClick)`` and
   ``layer.on("click", onLayerClick)`` on each. Adding a FeatureGroup to the map adds its
   children, and their children, to the map, so every marker our script created synchronously
   is in ``map._layers`` at that moment and gets the handler; nothing has to fire the map's click
   handler by hand. (Layers created later, asynchronously, would not: we create none.)
2. ``onLayerClick(e)`` stores ``e.latlng`` as ``last_object_clicked`` and the text of the
   clicked layer's tooltip (``e.sourceTarget.getTooltip().getContent()``, HTML reduced to its
   ``textContent``) as ``last_object_clicked_tooltip``, bumps ``last_object_clicked_count`` and,
   debounced by 250 ms, sends them to Python (only the keys listed in ``returned_objects``).
3. Leaflet sets ``e.latlng`` to the marker's own position only for markers and circle markers
   of radius ≤ 10 px, otherwise to the mouse position. Case markers stay ≤ 10 px, and each
   marker's own click listener (bound before streamlit-folium's, so it runs first on the same
   event object) sets ``e.latlng = this.getLatLng()`` anyway: the reported position is exactly
   the payload's (6 decimals), for cases, candidates and count bubbles alike.
4. The same listener (also on ``mouseover``) replaces the lazy tooltip function by its HTML
   string before streamlit-folium reads it, so ``last_object_clicked_tooltip`` is the tooltip's
   text, which for a case starts with ``#<id>``.
5. ``case_from_click(result, cases, selected=...)`` turns ``st_folium``'s return value into the
   case id: the cases at exactly that position (coordinates rounded to 6 decimals as drawn); when
   several share it, the one whose ``#id`` the tooltip names, else the one drawn on top. Call
   ``st_folium`` with ``returned_objects`` including ``CLICK_RETURNED_OBJECTS`` and pass the same
   frame the layer was drawn from (display coordinates, if the page shifts them).

What the page sees (checked in Chromium against the real streamlit-folium bundle):
``last_object_clicked`` keeps its value after a click on the empty map, so a new object click is
told by ``last_object_clicked_count`` changing, not by the position. A click on a case marker
(canvas path) also fires the map's click, so ``last_clicked`` moves to the same position; a click
on a candidate badge or count bubble (DOM markers) does not; a click on the empty map changes
only ``last_clicked``.

Each case marker carries ``gcCase`` (the id), each candidate marker ``gcStaff`` (the staff id)
and each count bubble ``gcUnit`` (the unit code), for browser code.

Times are UTC instants shown in local time (``tz``) as 'YYYY-MM-DD HH:MM'. The relative texts
("overdue by 2 h", "due in 40 min") are counted from ``now`` (default: the time of the call),
the same instant the service used for the ``overdue``/``due_soon`` flags, so text and ring agree.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import folium
import geopandas as gpd
import numpy as np
import pandas as pd

from layers._html import esc
from layers.staff import (
    DURATION_KEYS,
    _GroupScript,
    _num,
    _round6,
    _swatch,
    _time_span,
    _valid,
    duration_text,
    epoch_seconds,
    tz_offset_seconds,
)
from store.schema import CASE_STATES

__all__ = [
    "CANDIDATE_COLOR",
    "CANDIDATE_LABEL_KEYS",
    "CASE_COUNTS_LABEL_KEYS",
    "CASE_LABEL_KEYS",
    "CLICK_RETURNED_OBJECTS",
    "CLUSTER_COLOR",
    "CLUSTER_LABEL_KEYS",
    "DESCRIPTION_CHARS",
    "DUE_SOON_COLOR",
    "LABEL_KEYS",
    "OTHER_STATE_COLOR",
    "OVERDUE_COLOR",
    "SELECTED_COLOR",
    "STATE_COLORS",
    "build_candidates_layer",
    "build_case_counts_layer",
    "build_cases_layer",
    "build_clusters_layer",
    "candidate_from_click",
    "case_from_click",
    "clicked_latlng",
    "distance_text",
    "unit_from_click",
]

# Fill by state: warm while waiting for someone (reported, filed), blues while being handled,
# greens once solved, greys when finished. No red or amber fill: those are the deadline rings.
STATE_COLORS: dict[str, str] = {
    "reported": "#c2185b",  # magenta: new, not yet filed
    "filed": "#7b1fa2",  # purple: filed, waiting for dispatch
    "rejected": "#8d6e63",  # brown
    "dispatched": "#1976d2",  # blue: sent, not yet accepted
    "accepted": "#0097a7",  # teal
    "in_progress": "#3949ab",  # indigo
    "resolved": "#43a047",  # green
    "verified": "#2e7d32",  # dark green
    "closed": "#78909c",  # blue grey
    "evaluated": "#546e7a",  # darker blue grey
}
OTHER_STATE_COLOR = "#9e9e9e"
OVERDUE_COLOR = "#d32f2f"  # thick red ring
DUE_SOON_COLOR = "#f0a202"  # amber ring (the staff layer's "stale" amber)
SELECTED_COLOR = "#1a237e"  # navy outline and pulsing halo
CANDIDATE_COLOR = "#00796b"
CLUSTER_COLOR = "#8e24aa"
COUNT_OPEN_COLOR = "#1976d2"
COUNT_EMPTY_COLOR = "#9aa3ad"

URGENCY_LEVELS = (1, 2, 3)  # normal, urgent, immediate
ESCALATION_LEVELS = ("grid", "community", "street", "district")  # escalation_level 0..3 (store.schema)
CASE_RADII = (6.0, 7.0, 8.5)  # px by urgency; all ≤ 10 so Leaflet reports the marker's position
SELECTED_RADIUS = 10.0
RING_STYLES: tuple[dict[str, Any], ...] = (
    {"color": "#ffffff", "weight": 1.5},  # on time
    {"color": DUE_SOON_COLOR, "weight": 3},  # due soon
    {"color": OVERDUE_COLOR, "weight": 4},  # overdue
)
DESCRIPTION_CHARS = 80

CASE_LABEL_KEYS = (
    "case.state",  # tooltip field names
    "case.reported",
    "case.deadline",
    "case.escalated_to",  # "escalated to {level}", {level} one of the level.* names
    "case.assignee",
    "case.address",
    "case.description",
    "case.overdue_by",  # "overdue by {span}"
    "case.due_in",  # "due in {span}"
    "case.overdue",  # legend
    "case.due_soon",
    "case.selected",
    *(f"urgency.{u}" for u in URGENCY_LEVELS),
    *(f"cstate.{s}" for s in CASE_STATES),
    *(f"level.{lv}" for lv in ESCALATION_LEVELS[1:]),
    *DURATION_KEYS,
)
CANDIDATE_LABEL_KEYS = (
    "cand.distance",
    "cand.eta",
    "cand.workload",
    "cand.road",
    "cand.straight",
    "dist.m",  # "{n} m"
    "dist.km",  # "{n} km"
    *DURATION_KEYS,
)
CLUSTER_LABEL_KEYS = ("cluster.similar",)  # "{n} similar cases"
CASE_COUNTS_LABEL_KEYS = ("case.open", "case.overdue")
LABEL_KEYS = tuple(
    dict.fromkeys((*CASE_LABEL_KEYS, *CANDIDATE_LABEL_KEYS, *CLUSTER_LABEL_KEYS, *CASE_COUNTS_LABEL_KEYS))
)

# What st_folium must return for the click helpers below (add "bounds", "zoom" as the page needs).
CLICK_RETURNED_OBJECTS = ("last_object_clicked", "last_object_clicked_tooltip", "last_object_clicked_count")

# Shared by every group script here: the tooltip is a function until the layer is first hovered
# or clicked; then it becomes its HTML string (streamlit-folium reads a string's text on click),
# and a click reports the layer's own position. Bound before bindTooltip and before
# streamlit-folium's handler, so it runs first.
_LAZY_JS = """
function lazy(e) {
    if (!this.gcTip) { this.gcTip = 1; this.setTooltipContent(tip(this)); }
    if (e.type === "click" && this.getLatLng) { e.latlng = this.getLatLng(); }
}
"""


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------


def _col(frame: pd.DataFrame, name: str, default: Any = None) -> pd.Series:
    """A column, or ``default`` for every row when the frame lacks it."""
    if name in frame.columns:
        return frame[name]
    return pd.Series([default] * len(frame), index=frame.index, dtype=object)


def _flag(value: Any) -> bool:
    return (
        False
        if value is None or value is pd.NA or (isinstance(value, float) and value != value)
        else bool(value)
    )


def _int(value: Any, default: int = 0) -> int:
    v = _num(value, 0) if not isinstance(value, str) else None
    return int(v) if v is not None else default


def _plain(value: Any) -> str:
    """A number as short text ('3', '2.5'; em dash when missing)."""
    v = _num(value, 1)
    if v is None:
        return "—"
    return str(int(v)) if float(v).is_integer() else str(v)


def _clip(value: Any, limit: int = DESCRIPTION_CHARS) -> Any:
    """Text with runs of white space made one space, cut to ``limit`` characters ('…' added);
    None stays None. Cut before escaping, so no entity is ever cut in half."""
    if value is None or value is pd.NA or (isinstance(value, float) and value != value):
        return None
    text = " ".join(str(value).split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _points(frame: gpd.GeoDataFrame) -> tuple[list[float], list[float]]:
    """Marker positions (lat list, lon list) exactly as drawn: 6 decimals, polygons at their
    representative point. ``case_from_click`` compares with these."""
    geoms = _round6(frame.geometry.to_numpy())
    pts = [g if g.geom_type == "Point" else g.representative_point() for g in geoms]
    return [round(p.y, 6) for p in pts], [round(p.x, 6) for p in pts]


def _index(values: list[str]) -> tuple[list[str], list[int]]:
    """Distinct texts (stored once) and each row's index into them."""
    distinct = list(dict.fromkeys(values))
    where = {v: i for i, v in enumerate(distinct)}
    return distinct, [where[v] for v in values]


def distance_text(metres: Any, labels: Mapping[str, str]) -> str:
    """'850 m', '1.2 km', '14 km' from the ``dist.*`` formats (escaped; em dash when missing)."""
    m = _num(metres, 1)
    if m is None:
        return "—"
    m = max(0.0, float(m))
    if m < 1000:
        return esc(labels["dist.m"]).replace("{n}", str(int(round(m))))
    km = m / 1000
    return esc(labels["dist.km"]).replace("{n}", f"{km:.1f}" if km < 10 else str(int(round(km))))


# ---------------------------------------------------------------------------
# Cases
# ---------------------------------------------------------------------------

# D: L field labels, sl state names, sc state colours, ul urgency names, el escalation texts by
# level ("" for 0), rs radius by urgency,
# rsel selected radius, rg ring styles, du duration formats, cn category names, an assignee
# names, now (epoch s), off (tz offset s), sel (index of the selected row or null), and per case
# id (the first, then differences), y lat, x lon, s state index, u urgency index (0..2),
# g ring (0 on time, 1 due soon, 2 overdue), c category index, a reported (s before now),
# d deadline (s after now; negative when past), e escalation level, w assignee index,
# ad address, ds description (cut to DESCRIPTION_CHARS).
_CASES_JS = (
    """
var pad = function (n) { return (n < 10 ? "0" : "") + n; };
function fmt(t) {
    var d = new Date((t + D.off) * 1000);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " "
        + pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes());
}
function dur(s) {
    var u = s < 60 ? [s, 0] : s < 3600 ? [s / 60, 1] : s < 86400 ? [s / 3600, 2] : [s / 86400, 3];
    return D.du[u[1]].split("{n}").join(Math.floor(u[0]));
}
function row(k, v) { return "<br>" + k + ": " + v; }
function tip(m) {
    var i = m.gcI, a = D.a[i], d = D.d[i], u = D.u[i];
    return '<div class="gc-case-tip"><b>#' + m.gcCase + " · " + D.cn[D.c[i]] + "</b>"
        + (u > 0 ? " [" + D.ul[u] + "]" : "")
        + row(D.L.state, D.sl[D.s[i]])
        + row(D.L.reported, a === null ? "—" : fmt(D.now - a))
        + row(D.L.deadline, d === null ? "—" : fmt(D.now + d) + " ("
            + (d < 0 ? D.L.over : D.L.due).split("{span}").join(dur(Math.abs(d))) + ")")
        + (D.e[i] > 0 ? "<br>" + D.el[Math.min(D.e[i], D.el.length - 1)] : "")
        + row(D.L.assignee, D.an[D.w[i]])
        + row(D.L.address, D.ad[i])
        + row(D.L.desc, D.ds[i]) + "</div>";
}
"""
    + _LAZY_JS
    + """
if (!document.getElementById("gc-case-css")) {
    var css = document.createElement("style");
    css.id = "gc-case-css";
    css.textContent = "@keyframes gc-case-pulse{0%{transform:scale(.5);opacity:1}"
        + "100%{transform:scale(1.4);opacity:0}}"
        + ".gc-case-halo{pointer-events:none!important}"
        + ".gc-case-halo>div{box-sizing:border-box;width:100%;height:100%;border-radius:50%;"
        + "border:3px solid __SELECTED__;animation:gc-case-pulse 1.6s ease-out infinite}"
        + "@media (prefers-reduced-motion:reduce){.gc-case-halo>div{animation:none}}";
    document.head.appendChild(css);
}
var markers = [], id = 0;
for (var i = 0; i < D.y.length; i++) {
    id += D.id[i];
    var sel = i === D.sel;
    var st = Object.assign({radius: sel ? D.rsel : D.rs[D.u[i]], fill: true, fillColor: D.sc[D.s[i]],
        fillOpacity: 0.9, opacity: 1}, D.rg[D.g[i]]);
    if (sel && D.g[i] === 0) { st.color = "__SELECTED__"; st.weight = 3; }
    var m = L.circleMarker([D.y[i], D.x[i]], st);
    m.gcCase = id;
    m.gcI = i;
    m.on("mouseover click", lazy);
    m.bindTooltip(tip, {sticky: true});
    markers.push(m);
}
fg.addLayer(L.layerGroup(markers));
if (D.sel !== null) {
    var h = 2 * D.rsel + 24;
    fg.addLayer(L.marker([D.y[D.sel], D.x[D.sel]], {interactive: false, keyboard: false,
        icon: L.divIcon({className: "gc-case-halo", iconSize: [h, h], html: "<div></div>"})}));
}
"""
).replace("__SELECTED__", SELECTED_COLOR)


def build_cases_layer(
    cases: gpd.GeoDataFrame,
    *,
    labels: Mapping[str, str],
    tz: str = "Asia/Shanghai",
    selected: int | None = None,
    name: str | None = None,
    legend: bool = True,
    now: Any = None,
) -> folium.FeatureGroup:
    """Cases as circle markers filled by state (STATE_COLORS); the ring tells the deadline (thick
    red when overdue, amber when due soon, thin white otherwise), immediate cases are larger, the
    ``selected`` case is the largest, outlined in navy (unless its ring is red/amber), drawn last
    and circled by a pulsing halo.

    ``cases`` (lon/lat points) needs columns id, category, category_name, state, urgency (1..3),
    description, address, reported_at (UTC), deadline_at (UTC or NaT), overdue, due_soon,
    escalation_level, assignee_name (kind and cluster are not shown). Rows without a geometry are
    left out. Tooltip (built when hovered): '#id · category [urgency]', state, reported, deadline
    with 'overdue by 2 h' / 'due in 40 min' (counted from ``now``, default the time of the call),
    'escalated to <level>' when escalation_level > 0, assignee, address, the description cut to
    DESCRIPTION_CHARS. Labels: CASE_LABEL_KEYS (unknown states show their code).
    ``legend`` adds the states present and the ring/size meanings while the layer is on the map.
    Each marker carries ``gcCase``; see the module docstring and ``case_from_click`` for clicks.
    """
    group = folium.FeatureGroup(name=name if name is not None else "cases")
    rows = _valid(cases)
    if len(rows) == 0:
        return group
    rows = rows.assign(_id=pd.to_numeric(rows["id"], errors="coerce")).dropna(subset=["_id"])
    if len(rows) == 0:
        return group
    rows = rows.assign(_id=rows["_id"].astype("int64")).sort_values("_id", kind="stable")
    is_selected = (rows["_id"] == selected).to_numpy() if selected is not None else np.zeros(len(rows), bool)
    if is_selected.any():  # drawn last, so on top
        rows = pd.concat([rows[~is_selected], rows[is_selected].iloc[:1]])
    sel_index = len(rows) - 1 if is_selected.any() else None

    now_ts = pd.Timestamp.now(tz="UTC") if now is None else pd.Timestamp(now)
    if now_ts.tzinfo is None:
        now_ts = now_ts.tz_localize("UTC")
    now_s = float(epoch_seconds([now_ts]).iloc[0])

    states = list(CASE_STATES)
    for s in dict.fromkeys(rows["state"].astype(str)):
        if s not in STATE_COLORS:
            states.append(s)
    state_index = {s: i for i, s in enumerate(states)}
    state_names = [
        esc(labels[f"cstate.{s}"] if s in STATE_COLORS else labels.get(f"cstate.{s}", s)) for s in states
    ]

    categories = [
        esc(n if not pd.isna(n) else c)
        for n, c in zip(_col(rows, "category_name"), _col(rows, "category"), strict=True)
    ]
    category_names, category_index = _index(categories)
    assignee_names, assignee_index = _index([esc(v) for v in _col(rows, "assignee_name")])

    reported = epoch_seconds(_col(rows, "reported_at")).to_numpy()
    deadline = epoch_seconds(_col(rows, "deadline_at")).to_numpy()
    overdue = [_flag(v) for v in _col(rows, "overdue", False)]
    due_soon = [_flag(v) for v in _col(rows, "due_soon", False)]
    urgency = [min(2, max(0, _int(v, 1) - 1)) for v in _col(rows, "urgency", 1)]
    ys, xs = _points(rows)

    payload = {
        "L": {
            "state": esc(labels["case.state"]),
            "reported": esc(labels["case.reported"]),
            "deadline": esc(labels["case.deadline"]),
            "over": esc(labels["case.overdue_by"]),
            "due": esc(labels["case.due_in"]),
            "assignee": esc(labels["case.assignee"]),
            "address": esc(labels["case.address"]),
            "desc": esc(labels["case.description"]),
        },
        "sl": state_names,
        "sc": [STATE_COLORS.get(s, OTHER_STATE_COLOR) for s in states],
        "ul": [esc(labels[f"urgency.{u}"]) for u in URGENCY_LEVELS],
        "el": [""]
        + [
            esc(labels["case.escalated_to"]).replace("{level}", esc(labels[f"level.{lv}"]))
            for lv in ESCALATION_LEVELS[1:]
        ],
        "rs": list(CASE_RADII),
        "rsel": SELECTED_RADIUS,
        "rg": list(RING_STYLES),
        "du": [esc(labels[k]) for k in DURATION_KEYS],
        "cn": category_names,
        "an": assignee_names,
        "now": int(round(now_s)),
        "off": tz_offset_seconds(tz, now_ts),
        "sel": sel_index,
        "id": np.diff(rows["_id"].to_numpy(), prepend=0).tolist(),
        "y": ys,
        "x": xs,
        "s": [state_index[str(s)] for s in rows["state"]],
        "u": urgency,
        "g": [2 if o else 1 if d else 0 for o, d in zip(overdue, due_soon, strict=True)],
        "c": category_index,
        "a": [None if not math.isfinite(t) else int(round(now_s - t)) for t in reported],
        "d": [None if not math.isfinite(t) else int(round(t - now_s)) for t in deadline],
        "e": [max(0, _int(v)) for v in _col(rows, "escalation_level", 0)],
        "w": assignee_index,
        "ad": [esc(v) for v in _col(rows, "address")],
        "ds": [esc(_clip(v)) for v in _col(rows, "description")],
    }

    legend_html = None
    if legend:
        present = set(rows["state"].astype(str))
        dot = "width:10px;height:10px;border-radius:50%;box-sizing:border-box;"
        parts = [
            _swatch(f"{dot}background:{STATE_COLORS.get(s, OTHER_STATE_COLOR)}") + state_names[state_index[s]]
            for s in states
            if s in present
        ]
        parts += [
            _swatch(f"{dot}background:#cfd8dc;border:3px solid {OVERDUE_COLOR}")
            + esc(labels["case.overdue"]),
            _swatch(f"{dot}background:#cfd8dc;border:2px solid {DUE_SOON_COLOR}")
            + esc(labels["case.due_soon"]),
            _swatch("width:15px;height:15px;border-radius:50%;background:#90a4ae") + esc(labels["urgency.3"]),
        ]
        if sel_index is not None:
            parts.append(
                _swatch(f"{dot}background:#cfd8dc;border:3px solid {SELECTED_COLOR}")
                + esc(labels["case.selected"])
            )
        legend_html = "<br>".join(parts)
    _GroupScript(payload, _CASES_JS, legend=legend_html, legend_class="gc-legend gc-case-legend").add_to(
        group
    )
    return group


# ---------------------------------------------------------------------------
# Candidates for one case
# ---------------------------------------------------------------------------

DISTANCE_KINDS = ("road", "straight", "none")

# D: c case [lat, lon], lc line colour, per candidate id staff_id, r rank, y, x, k distance kind
# (0 road: solid line, 1 straight: dashed, 2 none: no line), b short label, t tooltip HTML.
_CANDIDATES_JS = (
    """
function tip(m) { return D.t[m.gcI]; }
"""
    + _LAZY_JS
    + """
var lines = [], badges = [];
for (var i = 0; i < D.y.length; i++) {
    var ll = [D.y[i], D.x[i]];
    if (D.k[i] < 2) {
        lines.push(L.polyline([D.c, ll], {color: D.lc, weight: 3, opacity: 0.85, interactive: false,
            dashArray: D.k[i] === 1 ? "6 6" : null}));
    }
    var m = L.marker(ll, {keyboard: false, zIndexOffset: 1000 - D.r[i], icon: L.divIcon({
        className: "gc-cand", iconSize: [22, 22], iconAnchor: [11, 11],
        html: '<div class="gc-cand-n" style="box-sizing:border-box;width:22px;height:22px;border-radius:50%;'
            + "background:" + D.lc + ";border:2px solid #fff;box-shadow:0 1px 3px rgba(0,0,0,.45);"
            + 'color:#fff;font:700 12px/18px sans-serif;text-align:center">' + D.r[i] + "</div>"
            + '<div class="gc-cand-t" style="position:absolute;left:26px;top:2px;white-space:nowrap;'
            + "background:rgba(255,255,255,.92);border-radius:3px;padding:0 4px;color:#1f2933;"
            + 'font:12px/18px sans-serif;box-shadow:0 1px 2px rgba(0,0,0,.3)">' + D.b[i] + "</div>"})});
    m.gcStaff = D.id[i];
    m.gcI = i;
    m.on("mouseover click", lazy);
    m.bindTooltip(tip, {sticky: true});
    badges.push(m);
}
fg.addLayer(L.layerGroup(lines));
fg.addLayer(L.layerGroup(badges));
"""
)


def _finite_xy(frame: pd.DataFrame) -> np.ndarray:
    lon = pd.to_numeric(_col(frame, "lon"), errors="coerce").to_numpy(dtype=float)
    lat = pd.to_numeric(_col(frame, "lat"), errors="coerce").to_numpy(dtype=float)
    return np.isfinite(lon) & np.isfinite(lat) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180)


def build_candidates_layer(
    candidates: pd.DataFrame,
    *,
    case_point: tuple[float, float],
    labels: Mapping[str, str],
    name: str | None = None,
) -> folium.FeatureGroup:
    """The people proposed for one case: a numbered badge per candidate with a permanent label
    'name · 850 m · 4 min' ('≈' before a straight-line distance), a line from the case
    (``case_point`` = (lon, lat)) to the person, solid for a road distance and dashed for a
    straight-line one (none for distance_kind 'none'), and a tooltip with role, distance and its
    kind, ETA, workload and the reason.

    ``candidates`` needs rank, staff_id, name, role_label, distance_m, distance_kind
    (DISTANCE_KINDS), eta_s, workload, reason_text, lon, lat; rows without a position (NaN) are
    not drawn (the list beside the map shows them). Labels: CANDIDATE_LABEL_KEYS. Each badge
    carries ``gcStaff``; lines are not interactive, so they never take a click meant for a case.
    """
    group = folium.FeatureGroup(name=name if name is not None else "candidates")
    if len(candidates) == 0:
        return group
    rows = candidates[_finite_xy(candidates)]
    if len(rows) == 0:
        return group
    ranks = [_int(r, i + 1) for i, r in enumerate(_col(rows, "rank"))]
    rows = rows.assign(_rank=ranks).sort_values("_rank", kind="stable")
    kind_index = {k: i for i, k in enumerate(DISTANCE_KINDS)}

    short, tips, kinds = [], [], []
    for rank, staff_name, role, dist, kind, eta, work, reason in zip(
        rows["_rank"],
        _col(rows, "name"),
        _col(rows, "role_label"),
        _col(rows, "distance_m"),
        _col(rows, "distance_kind", "none"),
        _col(rows, "eta_s"),
        _col(rows, "workload"),
        _col(rows, "reason_text"),
        strict=True,
    ):
        k = kind_index.get(str(kind), 2)
        dist_text = distance_text(dist, labels) if k < 2 else "—"
        eta_value = _num(eta, 0)
        eta_text = duration_text(float(eta_value), labels) if eta_value is not None else "—"
        bits = [esc(staff_name)]
        if dist_text != "—":
            bits.append(("≈" if k == 1 else "") + dist_text)
        if eta_text != "—":
            bits.append(eta_text)
        short.append(" · ".join(bits))
        kind_text = esc(labels["cand.road"]) if k == 0 else esc(labels["cand.straight"]) if k == 1 else ""
        tips.append(
            f'<div class="gc-cand-tip"><b>{int(rank)}. {esc(staff_name)}</b> · {esc(role)}'
            f"<br>{esc(labels['cand.distance'])}: {dist_text}{f' ({kind_text})' if kind_text else ''}"
            f"<br>{esc(labels['cand.eta'])}: {eta_text}"
            f"<br>{esc(labels['cand.workload'])}: {_plain(work)}"
            + (f"<br>{esc(reason)}" if not pd.isna(reason) and str(reason).strip() else "")
            + "</div>"
        )
        kinds.append(k)

    lon, lat = float(case_point[0]), float(case_point[1])
    payload = {
        "c": [round(lat, 6), round(lon, 6)],
        "lc": CANDIDATE_COLOR,
        "id": [_int(v, -1) for v in _col(rows, "staff_id")],
        "r": [int(r) for r in rows["_rank"]],
        "y": [round(float(v), 6) for v in rows["lat"]],
        "x": [round(float(v), 6) for v in rows["lon"]],
        "k": kinds,
        "b": short,
        "t": tips,
    }
    _GroupScript(payload, _CANDIDATES_JS).add_to(group)
    return group


# ---------------------------------------------------------------------------
# Clusters of similar cases
# ---------------------------------------------------------------------------


def build_clusters_layer(
    outlines: gpd.GeoDataFrame,
    *,
    labels: Mapping[str, str],
    tz: str = "Asia/Shanghai",
    name: str | None = None,
) -> folium.FeatureGroup:
    """Clusters of similar cases as dashed purple outlines (not filled: only the outline is
    hoverable, so a cluster never takes a click meant for a case inside it), tooltip
    'N similar cases: category, first – last' (local time).

    ``outlines`` (lon/lat polygons) needs cluster, category_name, n, first, last (UTC). Labels:
    CLUSTER_LABEL_KEYS.
    """
    group = folium.FeatureGroup(name=name if name is not None else "clusters")
    rows = _valid(outlines)
    if len(rows) == 0:
        return group
    texts = [
        esc(labels["cluster.similar"]).replace("{n}", esc(_num(n, 0)))
        + f": {esc(cat)}, {esc(_time_span(a, b, tz))}"
        for n, cat, a, b in zip(
            _col(rows, "n"), _col(rows, "category_name"), _col(rows, "first"), _col(rows, "last"), strict=True
        )
    ]
    frame = gpd.GeoDataFrame(
        {"cluster": [_int(v, -1) for v in _col(rows, "cluster")], "t": texts},
        geometry=_round6(rows.geometry.to_numpy()),
        crs="EPSG:4326",
    )
    folium.GeoJson(
        frame,
        name=name if name is not None else "clusters",
        style_function=lambda f: {
            "color": CLUSTER_COLOR,
            "weight": 2.5,
            "opacity": 0.9,
            "dashArray": "6 5",
            "fill": False,
        },
        highlight_function=lambda f: {"weight": 4},
        tooltip=folium.GeoJsonTooltip(fields=["t"], labels=False, sticky=True),
        zoom_on_click=False,
    ).add_to(group)
    return group


# ---------------------------------------------------------------------------
# Open cases per unit (zoomed-out view)
# ---------------------------------------------------------------------------

# D: L labels, oc overdue colour, bc open colour, zc empty colour, per unit y, x, k code, n name,
# o open, v overdue, r radius (px).
# D: L {total, part} labels, pc part colour, rc rest colour, zc empty colour, cls CSS class, dx/dy
# offset (px), per unit y, x, k code, n name, t total, p part, r radius (px).
_BUBBLES_JS = (
    """
function tip(m) {
    var i = m.gcI;
    return '<div class="' + D.cls + '-tip"><b>' + D.n[i] + "</b><br>" + D.L.total + ": " + D.t[i]
        + "<br>" + D.L.part + ": " + D.p[i] + "</div>";
}
"""
    + _LAZY_JS
    + """
var bubbles = [];
for (var i = 0; i < D.y.length; i++) {
    var r = D.r[i], w = 2 * r, t = D.t[i], p = t > 0 ? Math.round(100 * Math.min(D.p[i], t) / t) : 0;
    var bg = t > 0 ? "conic-gradient(" + D.pc + " 0 " + p + "%," + D.rc + " " + p + "% 100%)" : D.zc;
    var m = L.marker([D.y[i], D.x[i]], {keyboard: false, icon: L.divIcon({
        className: D.cls, iconSize: [w, w], iconAnchor: [r - D.dx, r - D.dy],
        html: '<div style="box-sizing:border-box;width:' + w + "px;height:" + w + "px;border-radius:50%;"
            + "border:2px solid #fff;box-shadow:0 1px 3px rgba(0,0,0,.4);background:" + bg + ";"
            + "color:#fff;font:600 11px/" + (w - 4) + 'px sans-serif;text-align:center;text-shadow:0 0 2px #000">'
            + t + "</div>"})});
    m.gcUnit = D.k[i];
    m.gcI = i;
    m.on("mouseover click", lazy);
    m.bindTooltip(tip, {sticky: true});
    bubbles.push(m);
}
fg.addLayer(L.layerGroup(bubbles));
"""
)


def share_bubbles(
    counts: gpd.GeoDataFrame,
    *,
    group: folium.FeatureGroup,
    total: str,
    part: str,
    labels: tuple[str, str],
    colors: tuple[str, str],
    css_class: str,
    min_radius: float = 10.0,
    max_radius: float = 30.0,
    offset_px: tuple[int, int] = (0, 0),
) -> folium.FeatureGroup:
    """One bubble per unit at its point (polygons at their representative point), its area
    proportional to ``counts[total]`` (radius ∝ sqrt, ``min_radius``..``max_radius`` px), a slice
    in ``colors[0]`` for the share ``counts[part]`` over ``colors[1]``, the total inside, a tooltip
    with name, total and part (``labels``, already translated). ``offset_px`` (right, down) moves the
    bubbles off their point. Each carries ``gcUnit`` (the code). Shared by the counts layers of
    cases (open / overdue) and cameras (cameras / online)."""
    rows = _valid(counts)
    if len(rows) == 0:
        return group
    totals = [max(0, _int(v)) for v in _col(rows, total, 0)]
    parts = [min(max(0, _int(v)), t) for v, t in zip(_col(rows, part, 0), totals, strict=True)]
    biggest = max(max(totals), 1)
    ys, xs = _points(rows)
    payload = {
        "L": {"total": esc(labels[0]), "part": esc(labels[1])},
        "pc": colors[0],
        "rc": colors[1],
        "zc": COUNT_EMPTY_COLOR,
        "cls": css_class,
        "dx": int(offset_px[0]),
        "dy": int(offset_px[1]),
        "y": ys,
        "x": xs,
        "k": [esc(v) for v in _col(rows, "code")],
        "n": [esc(v) for v in _col(rows, "name")],
        "t": totals,
        "p": parts,
        "r": [round(min_radius + (max_radius - min_radius) * math.sqrt(t / biggest), 1) for t in totals],
    }
    _GroupScript(payload, _BUBBLES_JS).add_to(group)
    return group


def build_case_counts_layer(
    counts: gpd.GeoDataFrame,
    *,
    labels: Mapping[str, str],
    name: str | None = None,
    min_radius: float = 10.0,
    max_radius: float = 30.0,
) -> folium.FeatureGroup:
    """Open cases per unit for when too many are in view (:func:`share_bubbles`): sized by the
    open count, a red slice for the overdue share over blue, the open count inside, a tooltip with
    name, open and overdue.

    ``counts`` needs code, name, open, overdue. Labels: CASE_COUNTS_LABEL_KEYS. Each bubble
    carries ``gcUnit`` (the code); ``unit_from_click`` maps a click back to it.
    """
    return share_bubbles(
        counts,
        group=folium.FeatureGroup(name=name if name is not None else "case_counts"),
        total="open",
        part="overdue",
        labels=(labels["case.open"], labels["case.overdue"]),
        colors=(OVERDUE_COLOR, COUNT_OPEN_COLOR),
        css_class="gc-case-count",
        min_radius=min_radius,
        max_radius=max_radius,
    )


# ---------------------------------------------------------------------------
# Clicks: st_folium's return value → a case, a candidate, a unit
# ---------------------------------------------------------------------------

_CASE_TIP = re.compile(r"\s*#(\d+)")


def clicked_latlng(result: Any) -> tuple[float, float] | None:
    """(lat, lng) of ``last_object_clicked`` in st_folium's return value, or None."""
    if not isinstance(result, Mapping):
        return None
    value = result.get("last_object_clicked")
    if not isinstance(value, Mapping):
        return None
    try:
        lat, lng = float(value["lat"]), float(value["lng"])
    except (KeyError, TypeError, ValueError):
        return None
    return (lat, lng) if math.isfinite(lat) and math.isfinite(lng) else None


def _at(lat: float, lng: float, ys: list[float], xs: list[float]) -> np.ndarray:
    """Rows drawn exactly at (lat, lng) (within half the 6-decimal rounding step)."""
    return (np.abs(np.asarray(ys) - lat) < 5e-7) & (np.abs(np.asarray(xs) - lng) < 5e-7)


def case_from_click(result: Any, cases: gpd.GeoDataFrame, *, selected: int | None = None) -> int | None:
    """The id of the case the dispatcher clicked, from ``st_folium``'s return value (called with
    ``returned_objects`` including CLICK_RETURNED_OBJECTS) and the same ``cases`` frame the layer
    was built from; None when the click was not on a case marker.

    The case marker at exactly ``last_object_clicked`` (positions rounded to 6 decimals as
    drawn). When several cases share that position: the one whose '#id' starts
    ``last_object_clicked_tooltip`` (the text of the clicked marker's tooltip), else the one
    drawn on top (``selected`` if among them, else the highest id), which is the one Leaflet
    reports for a click there.
    """
    clicked = clicked_latlng(result)
    rows = _valid(cases)
    if clicked is None or len(rows) == 0:
        return None
    ys, xs = _points(rows)
    ids = pd.to_numeric(rows["id"], errors="coerce").to_numpy(dtype=float)
    hit = _at(*clicked, ys, xs) & np.isfinite(ids)
    found = sorted({int(v) for v in ids[hit]})
    if not found:
        return None
    tooltip = result.get("last_object_clicked_tooltip") if isinstance(result, Mapping) else None
    named = _CASE_TIP.match(tooltip) if isinstance(tooltip, str) else None
    if named is not None and int(named.group(1)) in found:
        return int(named.group(1))
    if selected is not None and selected in found:
        return int(selected)
    return found[-1]


def candidate_from_click(result: Any, candidates: pd.DataFrame) -> int | None:
    """The staff_id of the candidate badge clicked (exact position; on a tie the best rank, the
    badge on top), or None."""
    clicked = clicked_latlng(result)
    if clicked is None or len(candidates) == 0:
        return None
    rows = candidates[_finite_xy(candidates)]
    ys = [round(float(v), 6) for v in rows["lat"]]
    xs = [round(float(v), 6) for v in rows["lon"]]
    hit = rows[_at(*clicked, ys, xs)]
    if len(hit) == 0:
        return None
    best = hit.sort_values("rank", kind="stable") if "rank" in hit.columns else hit
    return _int(best["staff_id"].iloc[0], -1)


def unit_from_click(result: Any, counts: gpd.GeoDataFrame) -> str | None:
    """The code of the unit whose count bubble was clicked (exact position), or None."""
    clicked = clicked_latlng(result)
    rows = _valid(counts)
    if clicked is None or len(rows) == 0:
        return None
    ys, xs = _points(rows)
    hit = _at(*clicked, ys, xs)
    return str(rows["code"].to_numpy()[hit][0]) if hit.any() else None
