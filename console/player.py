"""A camera stream player that never shows a broken frame.

``playable(url)`` says whether a browser can play a camera's stream URL and, when not, why (a
short English reason: RTSP/RTMP must go through the media gateway, unknown formats, credentials
in the URL, hostile text...). ``player_html(url, ...)`` returns a self-contained HTML document for
``streamlit.components.v1.html`` (an iframe ``srcdoc``):

- HLS (``.m3u8``): hls.js, served locally from ``<static_prefix>/vendor/<HLS_JS_RELATIVE>``
  (installed by ``make assets``; no CDN), in every browser with Media Source Extensions; the
  browser's own HLS (``video.canPlayType('application/vnd.apple.mpegurl')``) where there is no MSE
  (iPhone Safari) or when hls.js cannot be loaded. This is the order hls.js recommends: some
  browsers answer "maybe" for native HLS but play it worse than hls.js.
- WebRTC (WHEP, e.g. MediaMTX ``http://gateway:8889/<cam>/whep``): an ``RTCPeerConnection`` with
  receive-only video and audio, the SDP offer POSTed as ``application/sdp`` once ICE gathering is
  done (no STUN/TURN server: nothing leaves the intranet), the answer set as the remote
  description; the WHEP session is deleted when the frame goes away.
- Files (``.mp4``, ``.m4v``, ``.webm``, ``.ogg``, ``.ogv``): the video's ``src``.

The ``<video>`` is muted (so autoplay is allowed), plays inline and has controls. Until the first
frame a "connecting" cover hides it; on any failure (hls.js fatal error, WHEP request or
connection failure, the video's ``error`` event, hls.js missing, no frame within ``timeout_s``)
the player is torn down, the video hidden and a "no stream" panel with the reason shown instead.

Every text (title, URL, translations) is HTML-escaped in the markup and travels to the script as
JSON safe inside ``<script>`` (``layers.staff.script_json``: ``<``, ``>``, ``&``, ``'`` and
U+2028/2029 escaped); the script writes texts with ``textContent`` only.
"""

from __future__ import annotations

import html
import unicodedata
from collections.abc import Mapping
from typing import Literal
from urllib.parse import urlsplit

from console.assets import HLS_JS_RELATIVE, hls_js_url
from layers.staff import script_json

__all__ = [
    "DEFAULT_TEXTS",
    "FILE_SUFFIXES",
    "HLS_JS_RELATIVE",
    "MAX_URL_CHARS",
    "TIMEOUT_S",
    "StreamKind",
    "playable",
    "player_html",
    "stream_kind",
]

StreamKind = Literal["hls", "webrtc", "file"]

MAX_URL_CHARS = 2048
TIMEOUT_S = 10.0
TITLE_CHARS = 120
FILE_SUFFIXES = (".mp4", ".m4v", ".webm", ".ogg", ".ogv")
BROWSER_SCHEMES = ("http", "https")
# Streaming protocols a browser cannot speak: the media gateway repackages them as HLS or WebRTC.
GATEWAY_SCHEMES = frozenset({"rtsp", "rtsps", "rtspu", "rtmp", "rtmps", "rtmpt", "rtp", "srt", "udp", "mms"})
# Schemes that run or embed content instead of naming a stream.
FORBIDDEN_SCHEMES = frozenset({"javascript", "vbscript", "data", "blob", "file", "about", "filesystem"})
# Never needed raw in a real URL; their presence means pasted markup.
_BAD_CHARS = frozenset('<>"`\\')

UNKNOWN_FORMAT = (
    "unknown stream format: expected HLS (.m3u8), WebRTC (WHEP) or a video file (.mp4, .webm, .ogg)"
)

DEFAULT_TEXTS: dict[str, str] = {
    "player.loading": "Connecting to the stream…",
    "player.no_stream": "No stream",
    "player.failed": "The stream could not be played",
    "player.timeout": "No picture arrived in time",
    "player.unsupported": "This browser cannot play this stream",
    "player.missing": "The player script is missing (run make assets)",
    "player.live": "LIVE",
    "player.retry": "Retry",
}
"""English fallbacks for the ``player.*`` texts (``console.i18n`` holds the translations)."""


def stream_kind(url: object) -> StreamKind | None:
    """The stream's format from its URL's path: 'hls' (ends .m3u8, a query allowed), 'webrtc' (a
    WHEP endpoint: a path segment 'whep'), 'file' (FILE_SUFFIXES) or None. Only http(s) URLs and
    root-absolute paths have a kind; this does not validate the URL (``playable`` does)."""
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("", *BROWSER_SCHEMES):
        return None
    path = parts.path.lower()
    if path.endswith(".m3u8"):
        return "hls"
    if "whep" in path.split("/"):
        return "webrtc"
    if path.endswith(FILE_SUFFIXES):
        return "file"
    return None


def _bad_char(ch: str) -> bool:
    return (
        ch in _BAD_CHARS or ch.isspace() or unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Zs", "Zl", "Zp")
    )


def playable(url: object) -> tuple[bool, str]:
    """(True, "") when a browser can play ``url`` with ``player_html``; else (False, a short
    English reason). Accepted: http(s) URLs with a host, or paths on the console's own server
    ('/live/cam1.m3u8'), of a known kind (``stream_kind``), at most MAX_URL_CHARS long, without
    credentials, white space, control characters or markup characters."""
    if url is None:
        return False, "no stream URL"
    if not isinstance(url, str):
        return False, "the stream URL is not text"
    if not url.strip():
        return False, "no stream URL"
    if len(url) > MAX_URL_CHARS:
        return False, f"the stream URL is longer than {MAX_URL_CHARS} characters"
    if any(_bad_char(ch) for ch in url):
        return False, "the stream URL contains white space, control or markup characters"
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False, "the stream URL is malformed"
    scheme = parts.scheme.lower()
    if scheme in FORBIDDEN_SCHEMES:
        return False, f"{scheme}: URLs are not allowed"
    if scheme in GATEWAY_SCHEMES:
        return (
            False,
            f"{scheme} is not playable in a browser; route it through the media gateway as HLS or WebRTC",
        )
    if scheme and scheme not in BROWSER_SCHEMES:
        return False, f"{scheme}: is not a protocol a browser can play; use HLS or WebRTC over http(s)"
    if not scheme and (not url.startswith("/") or url.startswith("//")):
        return False, "the stream URL must start with http://, https:// or /"
    if "@" in parts.netloc:
        return False, "the stream URL carries credentials; let the media gateway authenticate instead"
    if scheme and not parts.hostname:
        return False, "the stream URL has no host"
    if port == 0:
        return False, "the stream URL has no valid port"
    if stream_kind(url) is None:
        return False, UNKNOWN_FORMAT
    return True, ""


def _texts(lang_texts: Mapping[str, str]) -> dict[str, str]:
    texts = dict(DEFAULT_TEXTS)
    for key, value in lang_texts.items():
        if isinstance(key, str) and key.startswith("player.") and isinstance(value, str) and value.strip():
            texts[key] = value
    return texts


def _hls_src(static_prefix: str) -> str:
    prefix = str(static_prefix).strip().rstrip("/")
    if "://" in prefix or prefix.startswith("//") or (prefix and not prefix.startswith("/")):
        raise ValueError(
            f"static_prefix must be a root-absolute path such as '/app/static', not {static_prefix!r}"
        )
    return hls_js_url(f"{prefix}/vendor")


_CSS = """
html,body{margin:0;height:100%;background:transparent;overflow:hidden}
body{font:13px/1.45 system-ui,-apple-system,"Segoe UI","PingFang SC","Noto Sans CJK SC","Microsoft YaHei",sans-serif}
[hidden]{display:none!important}
.gc-player{display:flex;flex-direction:column;height:100%;box-sizing:border-box;background:#1c2127;color:#e8eaed;
  border:1px solid #323a44;border-radius:6px;overflow:hidden}
.gc-bar{display:flex;align-items:center;gap:8px;padding:4px 10px;background:#14181d;min-height:20px}
.gc-title{flex:1;min-width:0;white-space:nowrap;overflow:hidden;text-overflow:ellipsis;font-weight:600}
.gc-kind{color:#9aa4af;font-size:11px;text-transform:uppercase;letter-spacing:.05em}
.gc-live{background:#d93025;color:#fff;border-radius:3px;padding:0 6px;font-size:11px;font-weight:700}
.gc-stage{position:relative;flex:1;min-height:0;background:#000}
.gc-stage video{display:block;width:100%;height:100%;object-fit:contain;background:#000}
.gc-cover,.gc-panel{position:absolute;inset:0;display:flex;flex-direction:column;align-items:center;
  justify-content:center;gap:6px;padding:12px;box-sizing:border-box;text-align:center;background:#1c2127}
.gc-cover{color:#c3cad2}
.gc-spin{width:22px;height:22px;border:3px solid #3d4650;border-top-color:#8ab4f8;border-radius:50%;
  animation:gc-spin 1s linear infinite}
@keyframes gc-spin{to{transform:rotate(360deg)}}
@media (prefers-reduced-motion:reduce){.gc-spin{animation:none}}
.gc-panel b{font-size:15px}
.gc-panel small{color:#9aa4af;max-width:100%;overflow:hidden;text-overflow:ellipsis;white-space:nowrap}
.gc-panel button{margin-top:4px;background:#2b323b;color:#e8eaed;border:1px solid #45505c;border-radius:4px;
  padding:3px 12px;font:inherit;cursor:pointer}
.gc-panel button:hover{background:#36404b}
"""

_ICON = (
    '<svg width="34" height="34" viewBox="0 0 24 24" fill="none" stroke="#9aa4af" stroke-width="1.6" '
    'stroke-linecap="round" stroke-linejoin="round" aria-hidden="true">'
    '<rect x="2.5" y="6.5" width="13" height="11" rx="2"/><path d="M15.5 10.5l6-3.5v10l-6-3.5"/>'
    '<path d="M3 3l18 18"/></svg>'
)

# C: url, kind (hls | webrtc | file), hls (hls.min.js URL), ms (timeout), t (texts).
_SCRIPT = """
(function () {
  "use strict";
  var T = C.t, box = document.getElementById("gc-player"), video = document.getElementById("gc-video");
  var cover = document.getElementById("gc-cover"), panel = document.getElementById("gc-panel");
  var live = document.getElementById("gc-live");
  var state = "loading", hls = null, pc = null, whep = null, recovered = false, timer = null;
  var url = C.url;
  try { url = new URL(C.url, document.baseURI).href; } catch (e) { /* keep as given */ }

  function teardown() {
    try { if (hls) { hls.destroy(); } } catch (e) { /* already gone */ }
    hls = null;
    try { if (pc) { pc.close(); } } catch (e) { /* already closed */ }
    pc = null;
    if (whep) {
      try { fetch(whep, {method: "DELETE", keepalive: true}).catch(function () {}); } catch (e) { /* ignore */ }
      whep = null;
    }
    try { video.pause(); video.removeAttribute("src"); video.srcObject = null; video.load(); } catch (e) { /* ignore */ }
  }
  function fail(key, detail) {
    if (state === "failed") { return; }
    state = "failed";
    clearTimeout(timer);
    teardown();
    video.hidden = true;
    cover.hidden = true;
    live.hidden = true;
    document.getElementById("gc-reason").textContent = T[key] || T["player.failed"];
    document.getElementById("gc-detail").textContent = detail ? String(detail).slice(0, 300) : "";
    panel.hidden = false;
    box.setAttribute("data-state", "failed");
  }
  function frame() {
    if (state !== "loading" || video.readyState < 2 || !(video.videoWidth > 0)) { return; }
    state = "playing";
    clearTimeout(timer);
    cover.hidden = true;
    live.hidden = C.kind === "file";
    box.setAttribute("data-state", "playing");
  }
  function play() {
    video.muted = true;
    try { var p = video.play(); if (p && p.catch) { p.catch(function () {}); } } catch (e) { /* controls stay */ }
  }
  ["loadeddata", "canplay", "playing", "timeupdate", "resize"].forEach(function (name) {
    video.addEventListener(name, frame);
  });
  video.addEventListener("error", function () {
    var e = video.error;
    fail("player.failed", e ? "media error " + e.code + (e.message ? ": " + e.message : "") : "media error");
  });
  document.getElementById("gc-retry").addEventListener("click", function () { location.reload(); });
  window.addEventListener("pagehide", teardown);
  timer = setTimeout(function () { fail("player.timeout"); }, C.ms);

  function startSrc() { video.src = url; play(); }
  function startHls() {
    var mse = window.MediaSource || window.ManagedMediaSource;
    var native = video.canPlayType("application/vnd.apple.mpegurl") !== "";
    if (!mse) { if (native) { startSrc(); } else { fail("player.unsupported"); } return; }
    var s = document.createElement("script");
    s.src = C.hls;
    s.onerror = function () { if (native) { startSrc(); } else { fail("player.missing", C.hls); } };
    s.onload = function () {
      var H = window.Hls;
      if (!H || !H.isSupported()) { if (native) { startSrc(); } else { fail("player.unsupported"); } return; }
      if (state !== "loading") { return; }
      hls = new H({lowLatencyMode: true, backBufferLength: 30});
      hls.on(H.Events.ERROR, function (ev, d) {
        if (!d || !d.fatal) { return; }
        if (d.type === H.ErrorTypes.MEDIA_ERROR && !recovered && hls) { recovered = true; hls.recoverMediaError(); return; }
        var code = d.response && d.response.code ? " (HTTP " + d.response.code + ")" : "";
        fail("player.failed", "HLS " + d.type + ": " + d.details + code);
      });
      hls.on(H.Events.MANIFEST_PARSED, play);
      hls.loadSource(url);
      hls.attachMedia(video);
    };
    document.head.appendChild(s);
  }
  function gathered(conn, ms) {
    return new Promise(function (done) {
      if (conn.iceGatheringState === "complete") { done(); return; }
      var t = setTimeout(done, ms);
      conn.addEventListener("icegatheringstatechange", function () {
        if (conn.iceGatheringState === "complete") { clearTimeout(t); done(); }
      });
    });
  }
  function startWhep() {
    if (!window.RTCPeerConnection || !window.fetch) { fail("player.unsupported"); return; }
    var conn = pc = new RTCPeerConnection({bundlePolicy: "max-bundle"});
    var stream = new MediaStream();
    conn.addTransceiver("video", {direction: "recvonly"});
    conn.addTransceiver("audio", {direction: "recvonly"});
    conn.ontrack = function (e) {
      stream.addTrack(e.track);
      if (video.srcObject !== stream) { video.srcObject = stream; play(); }
    };
    conn.onconnectionstatechange = function () {
      if (conn.connectionState === "failed") { fail("player.failed", "WebRTC connection failed"); }
    };
    conn.createOffer()
      .then(function (offer) { return conn.setLocalDescription(offer); })
      .then(function () { return gathered(conn, 2000); })
      .then(function () {
        if (pc !== conn) { throw new Error("stopped"); }
        return fetch(url, {method: "POST", headers: {"Content-Type": "application/sdp"},
          body: conn.localDescription.sdp});
      })
      .then(function (r) {
        if (!r.ok) { throw new Error("WHEP HTTP " + r.status); }
        var loc = r.headers.get("Location");
        if (loc) { try { whep = new URL(loc, url).href; } catch (e) { /* no session to delete */ } }
        return r.text();
      })
      .then(function (sdp) {
        if (pc !== conn) { throw new Error("stopped"); }
        return conn.setRemoteDescription({type: "answer", sdp: sdp});
      })
      .catch(function (e) { fail("player.failed", e && e.message ? e.message : String(e)); });
  }
  try {
    if (C.kind === "hls") { startHls(); } else if (C.kind === "webrtc") { startWhep(); } else { startSrc(); }
  } catch (e) {
    fail("player.failed", e && e.message ? e.message : String(e));
  }
})();
"""


def player_html(
    url: str,
    *,
    static_prefix: str,
    title: str,
    lang_texts: Mapping[str, str],
    timeout_s: float = TIMEOUT_S,
) -> str:
    """A self-contained HTML document playing ``url`` (see the module docstring), for
    ``streamlit.components.v1.html``. ``static_prefix`` is the root-absolute URL of Streamlit's
    static folder ('/app/static', with ``server.baseUrlPath`` in front when set); hls.js is
    loaded from ``<static_prefix>/vendor/<HLS_JS_RELATIVE>``. ``lang_texts`` holds the ``player.*``
    translations (DEFAULT_TEXTS fill any gap). A URL that is not ``playable`` gives the "no
    stream" panel with the reason and no script at all. ValueError when ``static_prefix`` is not
    a path on the console's own server."""
    hls_src = _hls_src(static_prefix)
    texts = _texts(lang_texts)
    ok, reason = playable(url)
    kind = stream_kind(url) if ok else None
    name = " ".join(str(title or "").split())
    if len(name) > TITLE_CHARS:
        name = name[: TITLE_CHARS - 1].rstrip() + "…"

    def e(value: object) -> str:
        return html.escape(str(value), quote=True)

    failed = kind is None
    shown_url = url if isinstance(url, str) else ""
    if len(shown_url) > 300:
        shown_url = shown_url[:299] + "…"
    parts = [
        "<!DOCTYPE html>",
        '<html><head><meta charset="utf-8">',
        '<meta name="referrer" content="no-referrer">',
        '<meta name="viewport" content="width=device-width,initial-scale=1">',
        f"<title>{e(name)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f'<div id="gc-player" class="gc-player" data-kind="{e(kind or "none")}" '
        f'data-state="{"failed" if failed else "loading"}">',
        '<div class="gc-bar">',
        f'<span class="gc-title" title="{e(name)}">{e(name)}</span>',
        f'<span id="gc-live" class="gc-live" hidden>{e(texts["player.live"])}</span>',
        f'<span class="gc-kind">{e(kind or "")}</span>',
        "</div>",
        '<div class="gc-stage">',
    ]
    if not failed:
        parts += [
            '<video id="gc-video" muted autoplay playsinline controls preload="auto"></video>',
            '<div id="gc-cover" class="gc-cover"><div class="gc-spin"></div>',
            f"<span>{e(texts['player.loading'])}</span></div>",
        ]
    parts += [
        f'<div id="gc-panel" class="gc-panel" role="status"{"" if failed else " hidden"}>',
        _ICON,
        f"<b>{e(texts['player.no_stream'])}</b>",
        f'<span id="gc-reason">{e(texts["player.unsupported"]) if failed else ""}</span>',
        f'<small id="gc-detail">{e(reason) if failed else ""}</small>',
        f'<small class="gc-url" title="{e(shown_url)}">{e(shown_url)}</small>',
        "" if failed else f'<button type="button" id="gc-retry">{e(texts["player.retry"])}</button>',
        "</div></div></div>",
    ]
    if not failed:
        config = {
            "url": url,
            "kind": kind,
            "hls": hls_src,
            "ms": int(max(1.0, float(timeout_s)) * 1000),
            "t": texts,
        }
        parts.append(f"<script>var C = {script_json(config)};{_SCRIPT}</script>")
    parts.append("</body></html>")
    return "\n".join(p for p in parts if p)
