"""Replay of one person's track: a Leaflet control with play/pause, a time slider, a speed select
and the current local time, moving a marker along the fixes with a faded trail behind it.

Plain Leaflet, nothing loaded from a CDN. The fixes go into the page as one JSON array of
``[lat, lon, epoch_seconds]`` (coordinates rounded to 6 decimals), made safe inside ``<script>``;
every label is HTML-escaped. Between two fixes the marker moves linearly in time, so at ×60 one
real second is one minute of track.

DOM (stable hooks for browser tests):

* ``div.gc-replay`` — the control; ``data-epoch`` the current track time (whole seconds since
  1970, UTC), ``data-start`` / ``data-end`` the track's span, ``data-playing`` "1" or "0";
* ``button.gc-replay-play`` — play/pause (its ``title`` is the translated action);
* ``input.gc-replay-slider`` — ``type=range`` from start to end, step 1 s;
* ``select.gc-replay-speed`` — one ``option`` per speed, value the factor, text '×60';
* ``span.gc-replay-time`` — the current local time, 'YYYY-MM-DD HH:MM';
* ``span.gc-replay-empty`` — instead of all the above when there are fewer than two fixes.

The marker and the trail are SVG paths with the classes ``gc-replay-marker`` and
``gc-replay-trail``. Added to a ``folium.Map`` the control is on the map at once; added to a
``folium.FeatureGroup`` (streamlit-folium's ``feature_group_to_add``) it comes and goes with the
group.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import geopandas as gpd
import pandas as pd
from branca.element import MacroElement
from folium.template import Template

from layers._html import esc
from layers.staff import epoch_seconds, script_json, tz_offset_seconds

__all__ = ["REPLAY_LABEL_KEYS", "ReplayControl", "build_replay_control", "replay_points"]

# Label keys the caller supplies (already translated).
REPLAY_LABEL_KEYS = (
    "replay.play",  # play button title
    "replay.pause",  # pause button title
    "replay.speed",  # speed select title
    "replay.time",  # slider title
    "replay.no_track",  # shown instead of the controls when there are fewer than two fixes
)

DEFAULT_SPEEDS = (1, 10, 60, 300, 1800)


def replay_points(fixes: gpd.GeoDataFrame) -> list[list[float | int]]:
    """``[lat, lon, epoch_seconds]`` per fix with a time and a geometry, sorted by time;
    coordinates rounded to 6 decimals, times to whole seconds."""
    if len(fixes) == 0:
        return []
    rows = fixes
    if rows.crs is not None and not rows.crs.equals("EPSG:4326"):
        rows = rows.to_crs("EPSG:4326")
    rows = rows[rows.geometry.notna() & ~rows.geometry.is_empty]
    if len(rows) == 0:
        return []
    times = epoch_seconds(rows["ts"]).to_numpy()
    out: list[list[float | int]] = []
    for geom, t in zip(rows.geometry, times, strict=True):
        if not math.isfinite(t):
            continue
        p = geom if geom.geom_type == "Point" else geom.representative_point()
        out.append([round(p.y, 6), round(p.x, 6), int(round(t))])
    out.sort(key=lambda row: row[2])  # stable: fixes of the same second keep their order
    return out


class ReplayControl(MacroElement):
    """The replay control; build it with :func:`build_replay_control`."""

    _template = Template(
        """
        {% macro script(this, kwargs) %}
        (function () {
            var host = {{ this._parent.get_name() }};
            var P = {{ this.points }};
            var C = {{ this.config }};
            var dec = function (html) {  // escaped label → plain text for title/aria-label
                var e = document.createElement("textarea");
                e.innerHTML = html;
                return e.value;
            };
            var pad = function (n) { return (n < 10 ? "0" : "") + n; };
            function fmt(t) {
                var d = new Date((Math.floor(t) + C.off) * 1000);
                return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate())
                    + " " + pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes());
            }
            var ctl = L.control({position: C.position});
            ctl.onAdd = function (map) {
                var div = L.DomUtil.create("div", "gc-replay leaflet-bar");
                div.style.cssText = "background:rgba(255,255,255,.95);padding:6px 8px;"
                    + "font:12px/1.4 sans-serif;color:#1f2933;display:flex;align-items:center;gap:6px";
                L.DomEvent.disableClickPropagation(div);
                L.DomEvent.disableScrollPropagation(div);
                if (P.length < 2) {
                    if (P.length === 1) { div.setAttribute("data-epoch", String(P[0][2])); }
                    var empty = L.DomUtil.create("span", "gc-replay-empty", div);
                    empty.innerHTML = C.L.noTrack;
                    return div;
                }
                var t0 = P[0][2], t1 = P[P.length - 1][2], t = t0, speed = C.speed;
                var playing = false, last = null, raf = null, upto = 0, done = [[P[0][0], P[0][1]]];
                div.setAttribute("data-start", String(t0));
                div.setAttribute("data-end", String(t1));
                var btn = L.DomUtil.create("button", "gc-replay-play", div);
                btn.type = "button";
                btn.style.cssText = "width:28px;height:24px;cursor:pointer;border:1px solid #aab;"
                    + "border-radius:3px;background:#fff;font-size:12px;padding:0";
                var slider = L.DomUtil.create("input", "gc-replay-slider", div);
                slider.type = "range";
                slider.min = String(t0);
                slider.max = String(t1);
                slider.step = "1";
                slider.value = String(t0);
                slider.title = dec(C.L.time);
                slider.setAttribute("aria-label", slider.title);
                slider.style.width = "180px";
                var select = L.DomUtil.create("select", "gc-replay-speed", div);
                select.title = dec(C.L.speed);
                select.setAttribute("aria-label", select.title);
                C.speeds.forEach(function (s) {
                    var o = L.DomUtil.create("option", "", select);
                    o.value = String(s);
                    o.textContent = "\\u00d7" + s;
                    if (s === speed) { o.selected = true; }
                });
                var label = L.DomUtil.create("span", "gc-replay-time", div);
                label.style.cssText = "font-variant-numeric:tabular-nums;white-space:nowrap";
                var trail = L.polyline([], {color: "#1565c0", weight: 5, opacity: 0.35,
                    interactive: false, className: "gc-replay-trail"});
                var marker = L.circleMarker([P[0][0], P[0][1]], {radius: 7, color: "#ffffff", weight: 2,
                    fillColor: "#e65100", fillOpacity: 1, interactive: false, className: "gc-replay-marker"});
                var layers = L.layerGroup([trail, marker]).addTo(map);
                ctl._gcLayers = layers;

                function at(time) {  // index of the last fix at or before time
                    var lo = 0, hi = P.length - 1;
                    if (time >= P[hi][2]) { return hi; }
                    while (hi - lo > 1) {
                        var mid = (lo + hi) >> 1;
                        if (P[mid][2] <= time) { lo = mid; } else { hi = mid; }
                    }
                    return lo;
                }
                function show(time) {
                    t = Math.max(t0, Math.min(t1, time));
                    var i = at(t), a = P[i], b = P[Math.min(i + 1, P.length - 1)];
                    var f = b[2] > a[2] ? (t - a[2]) / (b[2] - a[2]) : 0;
                    var here = [a[0] + (b[0] - a[0]) * f, a[1] + (b[1] - a[1]) * f];
                    if (i < upto) { done.length = i + 1; }
                    for (var k = upto + 1; k <= i; k++) { done.push([P[k][0], P[k][1]]); }
                    upto = i;
                    marker.setLatLng(here);
                    trail.setLatLngs(done.concat([here]));
                    slider.value = String(Math.round(t));
                    label.textContent = fmt(t);
                    div.setAttribute("data-epoch", String(Math.round(t)));
                }
                function frame(now) {
                    if (!playing) { return; }
                    if (last !== null) { show(t + (now - last) / 1000 * speed); }
                    last = now;
                    if (t >= t1) { setPlaying(false); return; }
                    raf = requestAnimationFrame(frame);
                }
                function setPlaying(on) {
                    playing = on;
                    btn.innerHTML = on ? "&#10074;&#10074;" : "&#9654;";
                    btn.title = dec(on ? C.L.pause : C.L.play);
                    btn.setAttribute("aria-label", btn.title);
                    div.setAttribute("data-playing", on ? "1" : "0");
                    if (raf !== null) { cancelAnimationFrame(raf); raf = null; }
                    if (on) {
                        if (t >= t1) { show(t0); }
                        last = null;
                        raf = requestAnimationFrame(frame);
                    }
                }
                L.DomEvent.on(btn, "click", function () { setPlaying(!playing); });
                L.DomEvent.on(slider, "input", function () { show(Number(slider.value)); last = null; });
                L.DomEvent.on(select, "change", function () { speed = Number(select.value); last = null; });
                ctl._gcStop = function () { setPlaying(false); };
                setPlaying(false);
                show(t0);
                return div;
            };
            ctl.onRemove = function (map) {
                if (ctl._gcStop) { ctl._gcStop(); }
                if (ctl._gcLayers) { map.removeLayer(ctl._gcLayers); }
            };
            if (host instanceof L.Map) {
                ctl.addTo(host);
            } else {
                host.on("add", function () { if (host._map) { ctl.addTo(host._map); } });
                host.on("remove", function () { ctl.remove(); });
                if (host._map) { ctl.addTo(host._map); }
            }
        })();
        {% endmacro %}
        """
    )

    def __init__(self, points: list[list[float | int]], config: dict) -> None:
        super().__init__()
        self._name = "ReplayControl"
        self.point_list = points
        self.points = script_json(points)
        self.config = script_json(config)


def build_replay_control(
    fixes: gpd.GeoDataFrame,
    *,
    labels: Mapping[str, str],
    tz: str = "Asia/Shanghai",
    speeds: Sequence[float] = DEFAULT_SPEEDS,
    position: str = "bottomleft",
) -> MacroElement:
    """A replay control for ``fixes`` (lon/lat points with ts (UTC) and speed; GPS jumps already
    removed). Add it to a ``folium.Map`` (or a FeatureGroup). Speeds are factors of real time;
    ×60 is preselected when offered, else the first. Labels: REPLAY_LABEL_KEYS. With fewer than
    two fixes the control only says ``replay.no_track``.
    """
    factors = [int(s) if float(s).is_integer() else float(s) for s in speeds]
    if not factors or any(not math.isfinite(s) or s <= 0 for s in factors):
        raise ValueError(f"speeds must be positive numbers, got {list(speeds)!r}")
    points = replay_points(fixes)
    config = {
        "off": tz_offset_seconds(tz, pd.Timestamp(points[0][2], unit="s", tz="UTC") if points else None),
        "speeds": factors,
        "speed": 60 if 60 in factors else factors[0],
        "position": position,
        "L": {
            "play": esc(labels["replay.play"]),
            "pause": esc(labels["replay.pause"]),
            "speed": esc(labels["replay.speed"]),
            "time": esc(labels["replay.time"]),
            "noTrack": esc(labels["replay.no_track"]),
        },
    }
    return ReplayControl(points, config)
