"""Staff on the map: latest positions, per-place counts, one person's track, the buildings a patrol
passed and the grids nobody patrolled.

Every text a person typed (staff, unit, building and grid names) is HTML-escaped here: Leaflet puts
tooltips into the page as HTML. Labels come translated from the caller (``*_LABEL_KEYS``); the
duration keys ``dur.*`` are formats in which ``{n}`` stands for the number ("{n} min", "{n} 分钟").

Size: a whole city's staff (15,000 positions) must fit a ≤ 1 MB screen, which a GeoJSON
FeatureCollection cannot (its per-feature envelope alone is ~100 bytes). Latest positions and the
per-place counts are therefore embedded as compact column arrays (coordinates rounded to 6
decimals, repeated texts such as unit names stored once) and turned into canvas circle markers by
a few lines of plain Leaflet; tooltips are built only when hovered. Tracks, stops, coverage and
unpatrolled grids are small and use ``folium.GeoJson`` like the other layers.

Times are UTC instants shown in local time (``tz``, default Asia/Shanghai) as 'YYYY-MM-DD HH:MM';
where JavaScript formats them the zone's offset is passed in seconds (fixed for DST-free zones such
as Asia/Shanghai; otherwise the offset at the data's first instant).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

import folium
import geopandas as gpd
import numpy as np
import pandas as pd
import shapely
from branca.element import MacroElement
from folium.template import Template

from layers._html import esc, field_tooltip
from store.schema import STAFF_ROLES

__all__ = [
    "COUNTS_LABEL_KEYS",
    "COVERAGE_COLORS",
    "COVERAGE_LABEL_KEYS",
    "FRESHNESS",
    "FRESHNESS_STYLES",
    "GAP_COLOR",
    "LABEL_KEYS",
    "OFFLINE_COLOR",
    "ROLE_COLORS",
    "STALE_COLOR",
    "STAFF_LABEL_KEYS",
    "TRACK_LABEL_KEYS",
    "TRACK_PALETTE",
    "TRACK_STEPS",
    "UNPATROLLED_COLOR",
    "UNPATROLLED_LABEL_KEYS",
    "build_coverage_layer",
    "build_staff_counts_layer",
    "build_staff_layer",
    "build_track_layer",
    "build_unpatrolled_layer",
    "duration_text",
    "epoch_seconds",
    "local_time",
    "palette_color",
    "script_json",
    "tz_offset_seconds",
]

FRESHNESS = ("online", "stale", "offline")

# One distinct hue per role (none amber or grey: those mean "stale" and "offline").
ROLE_COLORS: dict[str, str] = {
    "grid_worker_full": "#1f77b4",  # blue
    "grid_worker_part": "#17becf",  # cyan
    "police": "#d62728",  # red
    "mediator": "#9467bd",  # purple
    "legal_adviser": "#8c564b",  # brown
    "volunteer": "#2ca02c",  # green
}
OTHER_ROLE_COLOR = "#607d8b"

STALE_COLOR = "#f0a202"  # amber dashed border
OFFLINE_COLOR = "#8a8f96"  # grey hollow circle
# Leaflet path options per freshness; "fillColor": None means the role's colour.
FRESHNESS_STYLES: dict[str, dict[str, Any]] = {
    "online": {"color": "#ffffff", "weight": 1.5, "opacity": 1.0, "fillColor": None, "fillOpacity": 0.95},
    "stale": {
        "color": STALE_COLOR,
        "weight": 2,
        "opacity": 1.0,
        "dashArray": "3 2",
        "fillColor": None,
        "fillOpacity": 0.4,
    },
    "offline": {
        "color": OFFLINE_COLOR,
        "weight": 1.5,
        "opacity": 0.9,
        "fillColor": OFFLINE_COLOR,
        "fillOpacity": 0.0,
    },
}

DURATION_KEYS = ("dur.s", "dur.min", "dur.h", "dur.d")

# Latest positions (build_staff_layer) and their legend.
STAFF_LABEL_KEYS = (
    "staff.role",  # tooltip field names
    "staff.unit",
    "staff.last_seen",
    "staff.freshness",
    "staff.battery",
    "staff.speed",
    *(f"role.{r}" for r in STAFF_ROLES),  # role names
    *(f"fresh.{s}" for s in FRESHNESS),  # freshness names
    *DURATION_KEYS,  # age formats: "{n} s", "{n} min", "{n} h", "{n} d"
)
# Per-place counts (build_staff_counts_layer): the freshness names and a "total" field name.
COUNTS_LABEL_KEYS = ("counts.total", *(f"fresh.{s}" for s in FRESHNESS))
# A track (build_track_layer): point kinds, tooltip field names, the stop duration format.
TRACK_LABEL_KEYS = (
    "track.start",
    "track.end",
    "track.stop",
    "track.gap",
    "track.time",
    "track.duration",
    "dur.min",
)
COVERAGE_LABEL_KEYS = (
    "cov.name",
    "cov.households",
    "cov.status",
    "cov.passed",
    "cov.not_passed",
    "cov.passed_at",
)
UNPATROLLED_LABEL_KEYS = ("unp.code", "unp.name", "unp.households")
LABEL_KEYS = tuple(
    dict.fromkeys(
        (
            *STAFF_LABEL_KEYS,
            *COUNTS_LABEL_KEYS,
            *TRACK_LABEL_KEYS,
            *COVERAGE_LABEL_KEYS,
            *UNPATROLLED_LABEL_KEYS,
        )
    )
)

# Track colour by time: blue → purple → red, interpolated in RGB and cut into TRACK_STEPS shades.
TRACK_PALETTE = ("#2166ac", "#7b3294", "#d7301f")
TRACK_STEPS = 32
GAP_COLOR = "#9e9e9e"
GAP_DASH = "6 6"
COVERAGE_COLORS = {"passed": "#2e9e5b", "not_passed": "#d64545"}
UNPATROLLED_COLOR = "#c62828"

TIME_FORMAT = "%Y-%m-%d %H:%M"
_EPOCH = pd.Timestamp(0, tz="UTC")


# ---------------------------------------------------------------------------
# Shared helpers (also used by layers.replay)
# ---------------------------------------------------------------------------


def script_json(value: Any) -> str:
    """Compact JSON that is safe inside an HTML ``<script>``: ``<``, ``>``, ``&`` and ``'`` as
    ``\\u`` escapes (so no ``</script>`` or ``<!--``), and U+2028/U+2029 escaped too (line breaks
    for pre-2019 JavaScript). Non-ASCII text stays UTF-8 (half the size of ``\\uXXXX`` for CJK)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    for ch, rep in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("'", "\\u0027")):
        text = text.replace(ch, rep)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def _utc(values: Any) -> pd.Series:
    """Timestamps as a UTC series (naive values are taken as UTC; unparseable ones become NaT)."""
    return pd.Series(pd.to_datetime(pd.Series(values), utc=True, errors="coerce"))


def epoch_seconds(values: Any) -> pd.Series:
    """Seconds since 1970 (float; NaN where the timestamp is missing)."""
    return (_utc(values) - _EPOCH).dt.total_seconds()


def local_time(value: Any, tz: str = "Asia/Shanghai") -> str:
    """One UTC instant as local 'YYYY-MM-DD HH:MM' (an em dash when missing)."""
    ts = _utc([value]).iloc[0]
    if pd.isna(ts):
        return "—"
    return str(ts.tz_convert(tz).strftime(TIME_FORMAT))


def tz_offset_seconds(tz: str, at: Any = None) -> int:
    """The zone's UTC offset in seconds at ``at`` (a UTC instant; now when missing)."""
    ts = _utc([at]).iloc[0] if at is not None else pd.NaT
    moment = datetime.now(UTC) if pd.isna(ts) else ts.floor("s").to_pydatetime()
    offset = moment.astimezone(ZoneInfo(tz)).utcoffset()
    return int(offset.total_seconds()) if offset is not None else 0


def duration_text(seconds: float, labels: Mapping[str, str]) -> str:
    """'45 s', '3 min', '2 h', '4 d' from the ``dur.*`` formats (escaped; em dash when missing)."""
    if seconds is None or not math.isfinite(seconds):
        return "—"
    s = max(0, int(seconds))
    if s < 60:
        n, key = s, "dur.s"
    elif s < 3600:
        n, key = s // 60, "dur.min"
    elif s < 86400:
        n, key = s // 3600, "dur.h"
    else:
        n, key = s // 86400, "dur.d"
    return esc(labels[key]).replace("{n}", str(n))


def _round6(geoms: Any) -> np.ndarray:
    """Geometries with every coordinate rounded to 6 decimals (~0.1 m)."""
    return np.asarray(shapely.transform(np.asarray(geoms, dtype=object), lambda c: np.round(c, 6)))


def _valid(frame: gpd.GeoDataFrame) -> gpd.GeoDataFrame:
    """Rows with a non-empty geometry, in lon/lat."""
    if len(frame) == 0:
        return frame
    if frame.crs is not None and not frame.crs.equals("EPSG:4326"):
        frame = frame.to_crs("EPSG:4326")
    return frame[frame.geometry.notna() & ~frame.geometry.is_empty]


def _num(value: Any, digits: int) -> float | int | None:
    """A JSON number rounded to ``digits`` (an int when 0); None for NaN/None."""
    if value is None or pd.isna(value):
        return None
    v = float(value)
    if not math.isfinite(v):
        return None
    return int(round(v)) if digits == 0 else round(v, digits)


def _hex_to_rgb(color: str) -> tuple[int, int, int]:
    c = color.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


def palette_color(fraction: float, palette: Sequence[str] = TRACK_PALETTE) -> str:
    """The colour at ``fraction`` (0..1) along ``palette``, linear in RGB, as '#rrggbb'."""
    f = min(1.0, max(0.0, float(fraction))) if math.isfinite(fraction) else 0.0
    pos = f * (len(palette) - 1)
    i = min(int(pos), len(palette) - 2)
    t = pos - i
    a, b = _hex_to_rgb(palette[i]), _hex_to_rgb(palette[i + 1])
    return "#" + "".join(f"{round(x + (y - x) * t):02x}" for x, y in zip(a, b, strict=True))


class _GroupScript(MacroElement):
    """Plain-Leaflet code run with the parent FeatureGroup as ``fg`` and data as ``D``.

    Only a ``script`` macro (streamlit-folium renders feature groups' children from their scripts
    alone). A legend is a Leaflet control that comes and goes with the group, so a rerun that
    replaces the group never leaves a stale legend behind.
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function () {
            var fg = {{ this._parent.get_name() }};
            var D = {{ this.payload }};
            {{ this.code }}
            {%- if this.legend %}
            var legend = L.control({position: {{ this.position|tojson }}});
            legend.onAdd = function () {
                var div = L.DomUtil.create("div", {{ this.legend_class|tojson }});
                div.style.cssText = "background:rgba(255,255,255,.92);padding:4px 8px;border-radius:4px;"
                    + "font:12px/1.5 sans-serif;color:#1f2933;box-shadow:0 1px 4px rgba(0,0,0,.3)";
                div.innerHTML = {{ this.legend }};
                L.DomEvent.disableClickPropagation(div);
                return div;
            };
            fg.on("add", function () { if (fg._map) { legend.addTo(fg._map); } });
            fg.on("remove", function () { legend.remove(); });
            if (fg._map) { legend.addTo(fg._map); }
            {%- endif %}
        })();
        {% endmacro %}
        """
    )

    def __init__(
        self,
        payload: Any,
        code: str,
        *,
        legend: str | None = None,
        legend_class: str = "gc-legend",
        position: str = "bottomright",
    ) -> None:
        super().__init__()
        self._name = "GroupScript"
        self.payload = script_json(payload)
        self.code = code
        self.legend = script_json(legend) if legend else None
        self.legend_class = legend_class
        self.position = position


def _swatch(style: str) -> str:
    return f'<span style="display:inline-block;vertical-align:middle;margin-right:4px;{style}"></span>'


# ---------------------------------------------------------------------------
# Latest positions
# ---------------------------------------------------------------------------

# D: r role names, rc role colours, fs freshness styles, fl freshness names, u unit names,
# du duration formats, L field labels, now (epoch s; a row's time is now - a), off (tz offset s),
# and per staff the columns
# id staff_id (the first, then differences: rows are sorted by it),
# y lat, x lon, k role index, f freshness index, n name, w unit index, a age (s), b battery, v km/h.
_STAFF_JS = """
var R = L.canvas({padding: 0.5}), pad = function (n) { return (n < 10 ? "0" : "") + n; };
function fmt(t) {
    var d = new Date((t + D.off) * 1000);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " "
        + pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes());
}
function age(s) {
    var u = s < 60 ? [s, 0] : s < 3600 ? [s / 60, 1] : s < 86400 ? [s / 3600, 2] : [s / 86400, 3];
    return D.du[u[1]].replace("{n}", Math.floor(u[0]));
}
function tip(i) {
    var a = D.a[i], b = D.b[i], v = D.v[i], row = function (k, val) { return k + ": " + val + "<br>"; };
    return '<div class="gc-staff-tip"><b>' + D.n[i] + "</b><br>"
        + row(D.L.role, D.r[D.k[i]]) + row(D.L.unit, D.u[D.w[i]])
        + row(D.L.seen, a === null ? "—" : fmt(D.now - a) + " (" + age(a) + ")")
        + row(D.L.fresh, D.fl[D.f[i]])
        + row(D.L.battery, b === null ? "—" : b + "%")
        + D.L.speed + ": " + (v === null ? "—" : v + " km/h") + "</div>";
}
var markers = [], sid = 0;
for (var i = 0; i < D.y.length; i++) {
    var st = Object.assign({radius: 6, renderer: R, fill: true}, D.fs[D.f[i]]);
    if (!st.fillColor) { st.fillColor = D.rc[D.k[i]]; }
    var m = L.circleMarker([D.y[i], D.x[i]], st);
    m.bindTooltip((function (j) { return function () { return tip(j); }; })(i), {sticky: true});
    sid += D.id[i];
    m.gcStaff = sid;
    markers.push(m);
}
fg.addLayer(L.layerGroup(markers));
"""


def build_staff_layer(
    latest: gpd.GeoDataFrame,
    *,
    labels: Mapping[str, str],
    tz: str = "Asia/Shanghai",
    name: str | None = None,
    show: bool = True,
    legend: bool = True,
) -> folium.FeatureGroup:
    """Latest staff positions as circle markers: fill by role (ROLE_COLORS); online solid with a
    white border, stale paler with a dashed amber border, offline a grey hollow circle.

    ``latest`` (lon/lat points) needs columns staff_id, name, role (STAFF_ROLES), unit_name,
    ts (UTC), age_s, freshness (FRESHNESS), battery (0–100 or NaN), speed (m/s or NaN), accuracy.
    Tooltip (built when hovered): name, role, unit, last seen in local time with the age
    ('3 min'), freshness, battery %, speed km/h. Labels: STAFF_LABEL_KEYS. ``legend`` adds a
    small role/freshness legend while the layer is on the map. Each marker carries its
    ``staff_id`` as ``gcStaff`` for browser code.
    """
    group = folium.FeatureGroup(name=name if name is not None else "staff", show=show)
    rows = _valid(latest)
    if len(rows) == 0:
        return group
    rows = rows.sort_values("staff_id", kind="stable")  # ids go out as small deltas
    roles = list(STAFF_ROLES)
    for r in dict.fromkeys(rows["role"].astype(str)):
        if r not in ROLE_COLORS:
            roles.append(r)
    role_index = {r: i for i, r in enumerate(roles)}
    unit_texts = [esc(v) for v in rows["unit_name"]]
    units = list(dict.fromkeys(unit_texts))
    unit_index = {u: i for i, u in enumerate(units)}
    fresh_index = {s: i for i, s in enumerate(FRESHNESS)}

    ts = epoch_seconds(rows["ts"]).to_numpy()
    given_age = pd.to_numeric(rows["age_s"], errors="coerce").to_numpy(dtype=float)
    refs = ts + given_age
    refs = refs[np.isfinite(refs)]
    finite_ts = ts[np.isfinite(ts)]
    now = float(np.median(refs)) if len(refs) else (float(finite_ts.max()) if len(finite_ts) else 0.0)
    ages = [None if not math.isfinite(t) else max(0, int(round(now - t))) for t in ts]

    geoms = _round6(rows.geometry.to_numpy())
    points = [g if g.geom_type == "Point" else g.representative_point() for g in geoms]
    speeds = pd.to_numeric(rows["speed"], errors="coerce") * 3.6
    role_names = [esc(labels[f"role.{r}"] if r in ROLE_COLORS else labels.get(f"role.{r}", r)) for r in roles]
    payload = {
        "r": role_names,
        "rc": [ROLE_COLORS.get(r, OTHER_ROLE_COLOR) for r in roles],
        "fs": [FRESHNESS_STYLES[s] for s in FRESHNESS],
        "fl": [esc(labels[f"fresh.{s}"]) for s in FRESHNESS],
        "u": units,
        "du": [esc(labels[k]) for k in DURATION_KEYS],
        "L": {
            "role": esc(labels["staff.role"]),
            "unit": esc(labels["staff.unit"]),
            "seen": esc(labels["staff.last_seen"]),
            "fresh": esc(labels["staff.freshness"]),
            "battery": esc(labels["staff.battery"]),
            "speed": esc(labels["staff.speed"]),
        },
        "now": int(round(now)),
        "off": tz_offset_seconds(tz, pd.Timestamp(now, unit="s", tz="UTC")),
        "id": np.diff(rows["staff_id"].astype("int64").to_numpy(), prepend=0).tolist(),
        "y": [round(p.y, 6) for p in points],
        "x": [round(p.x, 6) for p in points],
        "k": [role_index[str(r)] for r in rows["role"]],
        "f": [fresh_index.get(str(s), 2) for s in rows["freshness"]],
        "n": [esc(v) for v in rows["name"]],
        "w": [unit_index[u] for u in unit_texts],
        "a": ages,
        "b": [_num(v, 0) for v in rows["battery"]],
        "v": [_num(v, 1) for v in speeds],
    }
    legend_html = None
    if legend:
        present = [r for r in roles if r in set(rows["role"].astype(str))]
        parts = [
            _swatch(
                f"width:10px;height:10px;border-radius:50%;background:{ROLE_COLORS.get(r, OTHER_ROLE_COLOR)}"
            )
            + role_names[role_index[r]]
            for r in present
        ]
        fresh_swatch = {
            "online": f"background:{ROLE_COLORS['grid_worker_full']};border:1.5px solid #fff;outline:1px solid #ccc",
            "stale": f"background:{ROLE_COLORS['grid_worker_full']}66;border:2px dashed {STALE_COLOR}",
            "offline": f"border:1.5px solid {OFFLINE_COLOR}",
        }
        parts += [
            _swatch(f"width:9px;height:9px;border-radius:50%;box-sizing:border-box;{fresh_swatch[s]}")
            + esc(labels[f"fresh.{s}"])
            for s in FRESHNESS
        ]
        legend_html = "<br>".join(parts)
    _GroupScript(payload, _STAFF_JS, legend=legend_html, legend_class="gc-legend gc-staff-legend").add_to(
        group
    )
    return group


# ---------------------------------------------------------------------------
# Counts per place (city view)
# ---------------------------------------------------------------------------

COUNT_COLORS = ((0.8, "#2e9e5b"), (0.5, "#e0a800"), (0.0, "#d64545"))  # share online → fill
EMPTY_COUNT_COLOR = "#9aa3ad"

# D: L labels, per place y, x, n name, c [online, stale, offline], r radius (px), c colour.
_COUNTS_JS = """
function tip(i) {
    var c = D.c[i];
    return '<div class="gc-count-tip"><b>' + D.n[i] + "</b><br>"
        + D.L.online + ": " + c[0] + "<br>" + D.L.stale + ": " + c[1] + "<br>"
        + D.L.offline + ": " + c[2] + "<br>" + D.L.total + ": " + (c[0] + c[1] + c[2]) + "</div>";
}
for (var i = 0; i < D.y.length; i++) {
    var total = D.c[i][0] + D.c[i][1] + D.c[i][2], r = D.r[i];
    var circle = L.circleMarker([D.y[i], D.x[i]], {radius: r, color: "#ffffff", weight: 1.5,
        fillColor: D.k[i], fillOpacity: 0.75});
    circle.bindTooltip((function (j) { return function () { return tip(j); }; })(i), {sticky: true});
    fg.addLayer(circle);
    fg.addLayer(L.marker([D.y[i], D.x[i]], {interactive: false, keyboard: false, icon: L.divIcon({
        className: "gc-staff-count", iconSize: [2 * r, 16], iconAnchor: [r, 8],
        html: '<div style="font:600 11px/16px sans-serif;color:#fff;text-align:center;'
            + 'text-shadow:0 0 2px #000;pointer-events:none">' + total + "</div>"})}));
}
"""


def build_staff_counts_layer(
    counts: gpd.GeoDataFrame,
    *,
    labels: Mapping[str, str],
    name: str | None = None,
    min_radius: float = 8.0,
    max_radius: float = 30.0,
) -> folium.FeatureGroup:
    """Staff per township/village for the zoomed-out city view: one circle per place, its area
    proportional to the total (radius ∝ sqrt(total), ``min_radius``..``max_radius`` px), filled by
    the share online (green ≥ 80 %, amber ≥ 50 %, red below, grey when nobody), the total as a
    label, a tooltip with the online/stale/offline counts.

    ``counts`` (lon/lat points) needs columns name, online, stale, offline. Labels:
    COUNTS_LABEL_KEYS.
    """
    group = folium.FeatureGroup(name=name if name is not None else "staff_counts")
    rows = _valid(counts)
    if len(rows) == 0:
        return group
    triples = [
        [int(_num(v, 0) or 0) for v in row]
        for row in zip(rows["online"], rows["stale"], rows["offline"], strict=True)
    ]
    totals = [sum(t) for t in triples]
    biggest = max(max(totals), 1)
    geoms = _round6(rows.geometry.to_numpy())
    points = [g if g.geom_type == "Point" else g.representative_point() for g in geoms]

    def _fill(t: list[int]) -> str:
        total = sum(t)
        if total == 0:
            return EMPTY_COUNT_COLOR
        share = t[0] / total
        return next(c for limit, c in COUNT_COLORS if share >= limit)

    payload = {
        "L": {
            "online": esc(labels["fresh.online"]),
            "stale": esc(labels["fresh.stale"]),
            "offline": esc(labels["fresh.offline"]),
            "total": esc(labels["counts.total"]),
        },
        "y": [round(p.y, 6) for p in points],
        "x": [round(p.x, 6) for p in points],
        "n": [esc(v) for v in rows["name"]],
        "c": triples,
        "r": [round(min_radius + (max_radius - min_radius) * math.sqrt(t / biggest), 1) for t in totals],
        "k": [_fill(t) for t in triples],
    }
    _GroupScript(payload, _COUNTS_JS).add_to(group)
    return group


# ---------------------------------------------------------------------------
# Track, stops
# ---------------------------------------------------------------------------


def _time_span(t0: Any, t1: Any, tz: str) -> str:
    """'2024-06-01 08:10 – 08:25' (the second date only when it differs)."""
    a, b = local_time(t0, tz), local_time(t1, tz)
    if a[:10] == b[:10] and a != "—":
        b = b[11:]
    return f"{a} – {b}"


def build_track_layer(
    segments: gpd.GeoDataFrame,
    *,
    stops: gpd.GeoDataFrame | None = None,
    labels: Mapping[str, str],
    tz: str = "Asia/Shanghai",
    name: str | None = None,
) -> folium.FeatureGroup:
    """A track coloured by time (TRACK_PALETTE from the first t0 to the last t1, in TRACK_STEPS
    shades), gaps dashed grey, start and end markers, stop markers and a legend with the first
    and last local time beside the two end colours.

    ``segments`` (lon/lat LineStrings) needs staff_id, t0, t1, gap (duration_s, distance_m,
    speed_mps are not shown). Consecutive segments of one shade are joined into one line, so a
    day of fixes stays a few dozen features. ``stops`` (points) needs start, end, duration_s.
    Labels: TRACK_LABEL_KEYS.
    """
    group = folium.FeatureGroup(name=name if name is not None else "track")
    segs = _valid(segments)
    if len(segs) == 0:
        return group
    segs = segs.assign(_t0=epoch_seconds(segs["t0"]).to_numpy(), _t1=epoch_seconds(segs["t1"]).to_numpy())
    segs = segs.sort_values(["staff_id", "_t0"], kind="stable")
    first, last = float(np.nanmin(segs["_t0"])), float(np.nanmax(segs["_t1"]))
    if not (math.isfinite(first) and math.isfinite(last)):
        first = last = 0.0
    span = max(last - first, 1e-9)

    def _shade(t: float) -> int:
        return min(TRACK_STEPS - 1, max(0, int((t - first) / span * TRACK_STEPS))) if math.isfinite(t) else 0

    shades = [palette_color(i / (TRACK_STEPS - 1)) for i in range(TRACK_STEPS)]
    lines: list[dict[str, Any]] = []  # runs: coords, colour, gap, t0, t1, staff
    geoms = _round6(segs.geometry.to_numpy())
    for geom, staff, gap, t0, t1, raw0, raw1 in zip(
        geoms, segs["staff_id"], segs["gap"], segs["_t0"], segs["_t1"], segs["t0"], segs["t1"], strict=True
    ):
        parts = list(geom.geoms) if geom.geom_type == "MultiLineString" else [geom]
        coords = [tuple(c) for part in parts for c in part.coords]
        is_gap = bool(gap) if not pd.isna(gap) else False
        color = GAP_COLOR if is_gap else shades[_shade((t0 + t1) / 2 if math.isfinite(t1) else t0)]
        run = lines[-1] if lines else None
        if (
            run is not None
            and not is_gap
            and not run["gap"]
            and run["staff"] == staff
            and run["color"] == color
            and run["coords"][-1] == coords[0]
        ):
            run["coords"].extend(coords[1:])
            run["t1"] = raw1
        else:
            lines.append(
                {"coords": coords, "color": color, "gap": is_gap, "t0": raw0, "t1": raw1, "staff": staff}
            )

    lines = [r for r in lines if len(set(r["coords"])) > 1]  # a run standing still draws nothing
    gap_label = esc(labels["track.gap"])
    fields = {
        "t": (
            "track.time",
            [(f"{gap_label}: " if r["gap"] else "") + esc(_time_span(r["t0"], r["t1"], tz)) for r in lines],
        ),
    }
    frame = gpd.GeoDataFrame(
        {"c": [r["color"] for r in lines], "g": [r["gap"] for r in lines], "t": fields["t"][1]},
        geometry=[shapely.LineString(r["coords"]) for r in lines],
        crs="EPSG:4326",
    )

    def _style(feature: dict) -> dict:
        p = feature["properties"]
        if p["g"]:
            return {"color": GAP_COLOR, "weight": 2, "opacity": 0.9, "dashArray": GAP_DASH}
        return {"color": p["c"], "weight": 4, "opacity": 0.9, "lineCap": "round", "lineJoin": "round"}

    if len(frame):
        folium.GeoJson(
            frame,
            name="track_lines",
            style_function=_style,
            tooltip=field_tooltip(fields, labels),
            zoom_on_click=False,
        ).add_to(group)

    if stops is not None:
        stop_rows = _valid(stops)
        if len(stop_rows):
            stop_fields = {
                "t": (
                    "track.stop",
                    [
                        esc(_time_span(a, b, tz))
                        for a, b in zip(stop_rows["start"], stop_rows["end"], strict=True)
                    ],
                ),
                "d": (
                    "track.duration",
                    [
                        "—"
                        if pd.isna(d)
                        else esc(labels["dur.min"]).replace("{n}", str(int(round(float(d) / 60))))
                        for d in stop_rows["duration_s"]
                    ],
                ),
            }
            stop_geoms = _round6(stop_rows.geometry.to_numpy())
            stop_frame = gpd.GeoDataFrame(
                {k: v for k, (_, v) in stop_fields.items()},
                geometry=[g if g.geom_type == "Point" else g.representative_point() for g in stop_geoms],
                crs="EPSG:4326",
            )
            folium.GeoJson(
                stop_frame,
                name="track_stops",
                marker=folium.CircleMarker(
                    radius=6, color="#37474f", weight=2, fill=True, fill_color="#ffd54f", fill_opacity=0.95
                ),
                tooltip=field_tooltip(stop_fields, labels),
                zoom_on_click=False,
            ).add_to(group)

    # Start and end: the first point of the earliest segment, the last point of the latest one.
    by_start = segs["_t0"].fillna(np.inf).to_numpy()
    by_end = segs["_t1"].fillna(-np.inf).to_numpy()
    i_first, i_last = int(np.argmin(by_start)), int(np.argmax(by_end))
    start_xy, end_xy = geoms[i_first].coords[0], list(_last_coords(geoms[i_last]))[-1]
    first_text = esc(local_time(segs["t0"].iloc[i_first], tz))
    last_text = esc(local_time(segs["t1"].iloc[i_last], tz))
    end_frame = gpd.GeoDataFrame(
        {
            "k": [esc(labels["track.start"]), esc(labels["track.end"])],
            "t": [first_text, last_text],
            "c": [shades[0], shades[-1]],
        },
        geometry=[shapely.Point(start_xy), shapely.Point(end_xy)],
        crs="EPSG:4326",
    )
    folium.GeoJson(
        end_frame,
        name="track_ends",
        marker=folium.CircleMarker(radius=8, weight=3, fill=True, fill_opacity=1.0),
        style_function=lambda f: {"color": "#ffffff", "fillColor": f["properties"]["c"]},
        tooltip=folium.GeoJsonTooltip(fields=["k", "t"], labels=False, sticky=True),
        zoom_on_click=False,
    ).add_to(group)

    gradient = ",".join(shades[:: max(1, TRACK_STEPS // 8)] + [shades[-1]])
    legend = (
        f"<b>{esc(labels['track.time'])}</b><br>"
        + _swatch(f"width:10px;height:10px;border-radius:50%;background:{shades[0]}")
        + f'<span class="gc-track-first">{first_text}</span><br>'
        + _swatch(f"width:10px;height:34px;margin-left:0;background:linear-gradient({gradient})")
        + "<br>"
        + _swatch(f"width:10px;height:10px;border-radius:50%;background:{shades[-1]}")
        + f'<span class="gc-track-last">{last_text}</span><br>'
        + _swatch(f"width:18px;height:0;border-top:2px dashed {GAP_COLOR}")
        + gap_label
    )
    _GroupScript(None, "", legend=legend, legend_class="gc-legend gc-track-legend").add_to(group)
    return group


def _last_coords(geom: Any) -> list[tuple[float, ...]]:
    if geom.geom_type == "MultiLineString":
        return list(geom.geoms[-1].coords)
    return list(geom.coords)


# ---------------------------------------------------------------------------
# Coverage, unpatrolled grids
# ---------------------------------------------------------------------------


def build_coverage_layer(
    buildings: gpd.GeoDataFrame,
    *,
    labels: Mapping[str, str],
    tz: str = "Asia/Shanghai",
    name: str | None = None,
) -> folium.FeatureGroup:
    """Buildings a patrol passed (green) or not (red).

    ``buildings`` (lon/lat polygons) needs name, households, passed (bool), passed_at (UTC or
    NaT). Tooltip: name, households, status, passed at (local time). Labels: COVERAGE_LABEL_KEYS.
    """
    group = folium.FeatureGroup(name=name if name is not None else "coverage")
    rows = _valid(buildings)
    if len(rows) == 0:
        return group
    passed = [bool(p) if not pd.isna(p) else False for p in rows["passed"]]
    fields = {
        "n": ("cov.name", [esc(v) for v in rows["name"]]),
        "h": ("cov.households", [esc(_num(v, 0)) for v in rows["households"]]),
        "s": ("cov.status", [esc(labels["cov.passed" if p else "cov.not_passed"]) for p in passed]),
        "a": ("cov.passed_at", [esc(local_time(v, tz)) for v in rows["passed_at"]]),
    }
    frame = gpd.GeoDataFrame(
        {"p": passed, **{k: v for k, (_, v) in fields.items()}},
        geometry=_round6(rows.geometry.to_numpy()),
        crs="EPSG:4326",
    )

    def _style(feature: dict) -> dict:
        c = COVERAGE_COLORS["passed" if feature["properties"]["p"] else "not_passed"]
        return {"color": c, "weight": 1, "fillColor": c, "fillOpacity": 0.55}

    folium.GeoJson(
        frame,
        name=name if name is not None else "coverage",
        style_function=_style,
        highlight_function=lambda f: {"weight": 2.5, "fillOpacity": 0.75},
        tooltip=field_tooltip(fields, labels),
        zoom_on_click=False,
    ).add_to(group)
    return group


def build_unpatrolled_layer(
    grids: gpd.GeoDataFrame, *, labels: Mapping[str, str], name: str | None = None
) -> folium.FeatureGroup:
    """Grids nobody patrolled: a dashed red outline over a light red wash.

    ``grids`` (lon/lat (multi)polygons) needs code, name, households. Labels:
    UNPATROLLED_LABEL_KEYS.
    """
    group = folium.FeatureGroup(name=name if name is not None else "unpatrolled")
    rows = _valid(grids)
    if len(rows) == 0:
        return group
    fields = {
        "c": ("unp.code", [esc(v) for v in rows["code"]]),
        "n": ("unp.name", [esc(v) for v in rows["name"]]),
        "h": ("unp.households", [esc(_num(v, 0)) for v in rows["households"]]),
    }
    frame = gpd.GeoDataFrame(
        {k: v for k, (_, v) in fields.items()}, geometry=_round6(rows.geometry.to_numpy()), crs="EPSG:4326"
    )
    folium.GeoJson(
        frame,
        name=name if name is not None else "unpatrolled",
        style_function=lambda f: {
            "color": UNPATROLLED_COLOR,
            "weight": 2.5,
            "dashArray": "6 4",
            "fillColor": UNPATROLLED_COLOR,
            "fillOpacity": 0.12,
        },
        highlight_function=lambda f: {"weight": 4, "fillOpacity": 0.3},
        tooltip=field_tooltip(fields, labels),
        zoom_on_click=False,
    ).add_to(group)
    return group
