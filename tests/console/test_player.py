"""The camera stream player: which URLs a browser can play, the escaped self-contained player
document, and (in Debian's chromium via Playwright, with no internet) that a playable stream
really plays while a broken one shows the "no stream" panel instead of a broken frame.

The browser tests embed the player exactly as ``streamlit.components.v1.html`` does (an iframe
``srcdoc`` with Streamlit's sandbox and ``allow`` lists) in a page served by a local
``http.server`` on 127.0.0.1, next to the installed vendor folder; every request to another host
is blocked and recorded.
"""

from __future__ import annotations

import base64
import html
import http.server
import json
import os
import re
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest

from console import assets
from console.i18n import TEXT, labels
from console.player import (
    DEFAULT_TEXTS,
    MAX_URL_CHARS,
    playable,
    player_html,
    stream_kind,
)
from tests.fixtures.media import make_hls

HOSTILE = "</script><script>window.__x=1</script>"
HOSTILE_IMG = "<img src=x onerror=alert(1)>"
STATIC = "/app/static"

# --------------------------------------------------------------------------- stream_kind / playable

GOOD = [
    ("http://10.0.0.5:8888/cam1/index.m3u8", "hls"),
    ("https://gateway.local/live/34020000001320000001.m3u8?token=abc&x=1", "hls"),
    ("https://gateway.local/live/CAM.M3U8", "hls"),
    ("/live/cam1/index.m3u8", "hls"),
    ("http://10.0.0.5:8889/cam1/whep", "webrtc"),
    ("http://10.0.0.5:8889/cam1/whep/", "webrtc"),
    ("https://srs.local/rtc/v1/whep/?app=live&stream=cam1", "webrtc"),
    ("https://media.local/whep/endpoint/abc", "webrtc"),
    ("http://10.0.0.5/clips/a.mp4", "file"),
    ("http://10.0.0.5/clips/a.webm#t=5", "file"),
    ("http://10.0.0.5/clips/a.ogg", "file"),
    ("http://[fd00::5]:8080/clips/视频.mp4", "file"),
]

BAD = [
    (None, "no stream URL"),
    ("", "no stream URL"),
    ("   ", "no stream URL"),
    (42, "not text"),
    (b"http://x/a.m3u8", "not text"),
    (
        "rtsp://10.0.0.5:554/Streaming/Channels/101",
        "rtsp is not playable in a browser; route it through the media gateway",
    ),
    ("RTSP://10.0.0.5/a.m3u8", "rtsp is not playable"),
    ("rtmp://10.0.0.5/live/cam1", "rtmp is not playable"),
    ("srt://10.0.0.5:9000", "srt is not playable"),
    ("ftp://10.0.0.5/a.mp4", "ftp: is not a protocol"),
    ("ws://10.0.0.5/a.m3u8", "ws: is not a protocol"),
    ("javascript:alert(1)//a.m3u8", "javascript: URLs are not allowed"),
    ("JaVaScRiPt:alert(1)", "javascript: URLs are not allowed"),
    ("data:video/mp4;base64,AAAA", "data: URLs are not allowed"),
    ("file:///etc/passwd.mp4", "file: URLs are not allowed"),
    ("blob:http://x/1234", "blob: URLs are not allowed"),
    ("http://10.0.0.5/cam1/stream", "unknown stream format"),
    ("http://10.0.0.5/cam1.flv", "unknown stream format"),
    ("http://10.0.0.5/whepish/a", "unknown stream format"),
    ("http://admin:12345@10.0.0.5/a.m3u8", "credentials"),
    ("http://admin@10.0.0.5/a.m3u8", "credentials"),
    ("http://10.0.0.5/a b.m3u8", "white space"),
    (" http://10.0.0.5/a.m3u8", "white space"),
    ("http://10.0.0.5/a.m3u8\n", "white space"),
    ("http://10.0.0.5/\x00a.m3u8", "control"),
    ("java\tscript:alert(1)", "white space"),
    ("http://10.0.0.5/a\u2028.m3u8", "white space"),
    ("http://10.0.0.5/a\u200b.m3u8", "control"),
    ('http://10.0.0.5/"><script>.m3u8', "markup"),
    ("http://10.0.0.5/" + HOSTILE + ".m3u8", "markup"),
    ("http:\\\\evil\\a.m3u8", "markup"),
    ("http://10.0.0.5/" + "a" * MAX_URL_CHARS + ".m3u8", "longer than 2048"),
    ("//cdn.example.com/a.m3u8", "must start with http://, https:// or /"),
    ("live/a.m3u8", "must start with"),
    ("http:///a.m3u8", "no host"),
    ("http://10.0.0.5:99999/a.m3u8", "malformed"),
    ("http://[::1/a.m3u8", "malformed"),
]


@pytest.mark.parametrize(("url", "kind"), GOOD)
def test_playable_urls(url: str, kind: str) -> None:
    assert stream_kind(url) == kind
    assert playable(url) == (True, "")


@pytest.mark.parametrize(("url", "reason"), BAD)
def test_unplayable_urls_say_why(url: Any, reason: str) -> None:
    ok, why = playable(url)
    assert not ok
    assert reason in why, why
    assert why == why.strip() and len(why) < 200 and why.isascii()


def test_stream_kind_reads_the_format_only() -> None:
    assert stream_kind("http://h/a.m3u8?x=.mp4") == "hls"
    assert stream_kind("http://h/a.mp4?format=m3u8") == "file"
    assert stream_kind("http://h/live/whep") == "webrtc"
    assert stream_kind("http://h/whep.m3u8") == "hls"
    for url in ("rtsp://h/a.m3u8", "webrtc://h/live/cam", "http://h/a", None, 3, "http://h/a.m3u8x"):
        assert stream_kind(url) is None, url
    assert playable("http://10.0.0.5/" + "a" * (MAX_URL_CHARS - 30) + ".m3u8")[0]


# --------------------------------------------------------------------------- player_html

TEXTS = labels(("player.",), "en")


def _config(doc: str) -> dict[str, Any]:
    """The JSON the player's script reads (``var C = {...};``)."""
    start = doc.index("var C = ") + len("var C = ")
    value, _ = json.JSONDecoder().raw_decode(doc, start)
    assert isinstance(value, dict)
    return value


def test_player_texts_are_translated() -> None:
    for key in DEFAULT_TEXTS:
        assert key in TEXT, key
    for key in (
        "player.loading",
        "player.no_stream",
        "player.failed",
        "player.timeout",
        "player.unsupported",
        "player.live",
    ):
        assert key in TEXT
    zh = player_html(
        "http://h/a.m3u8", static_prefix=STATIC, title="t", lang_texts=labels(("player.",), "zh")
    )
    assert TEXT["player.loading"][0] in zh and _config(zh)["t"]["player.timeout"] == TEXT["player.timeout"][0]
    # gaps are filled with the English defaults; other keys are left out
    doc = player_html("http://h/a.m3u8", static_prefix=STATIC, title="t", lang_texts={"cam.id": "x"})
    assert _config(doc)["t"] == DEFAULT_TEXTS


@pytest.mark.parametrize(
    ("url", "kind"),
    [
        ("http://10.0.0.5/a.m3u8", "hls"),
        ("http://10.0.0.5/cam/whep", "webrtc"),
        ("http://10.0.0.5/a.mp4", "file"),
    ],
)
def test_player_html_is_a_video_with_a_fallback_panel(url: str, kind: str) -> None:
    doc = player_html(url, static_prefix=STATIC, title="东门 1 号", lang_texts=TEXTS)
    assert doc.startswith("<!DOCTYPE html>") and doc.rstrip().endswith("</html>")
    video = re.search(r"<video [^>]*>", doc)
    assert video is not None
    for attr in ("muted", "autoplay", "playsinline", "controls"):
        assert f" {attr}" in video.group(0)
    assert 'id="gc-panel"' in doc and 'role="status" hidden' in doc  # hidden until a failure
    assert 'data-state="loading"' in doc and f'data-kind="{kind}"' in doc
    assert "东门 1 号" in doc and TEXTS["player.loading"] in doc
    cfg = _config(doc)
    assert cfg["url"] == url and cfg["kind"] == kind and cfg["ms"] == 10_000
    assert cfg["hls"] == f"{STATIC}/vendor/{assets.HLS_JS_RELATIVE}"
    assert "fail(" in doc and "setTimeout" in doc and 'addEventListener("error"' in doc
    if kind == "webrtc":
        assert "application/sdp" in doc and "recvonly" in doc
    # no CDN, no internet: the only URLs in the document are the stream's and the SVG namespace-free icon
    assert not re.findall(r"https?://(?!10\.0\.0\.5)[^\s\"'<>]+", doc)


def test_player_loads_hls_js_from_the_local_vendor_folder() -> None:
    doc = player_html("http://h/a.m3u8", static_prefix="/gc/app/static/", title="", lang_texts=TEXTS)
    src = _config(doc)["hls"]
    assert src == "/gc/app/static/vendor/hls.js-1.6.15/dist/hls.min.js"
    assert src == assets.hls_js_url("/gc/app/static/vendor")
    assert "cdn" not in doc.lower() and "jsdelivr" not in doc and "unpkg" not in doc
    for bad in ("https://cdn.jsdelivr.net/npm", "//cdn.example.com", "app/static"):
        with pytest.raises(ValueError):
            player_html("http://h/a.m3u8", static_prefix=bad, title="", lang_texts=TEXTS)


@pytest.mark.skipif(not assets.assets_ready(), reason="vendor assets not installed (run make assets)")
def test_the_hls_js_file_is_installed() -> None:
    path = assets.DEFAULT_DEST / assets.HLS_JS_RELATIVE
    assert path.is_file() and path.stat().st_size > 100_000
    assert "1.6.15" in path.read_text(encoding="utf-8", errors="replace")[:200_000]


def test_player_html_escapes_title_url_and_texts() -> None:
    url = "http://10.0.0.5/live/a.m3u8?n=" + "%3C%2Fscript%3E" + "&q='x'"
    hostile_texts = {k: HOSTILE + "\u2028" + HOSTILE_IMG for k in DEFAULT_TEXTS}
    doc = player_html(url, static_prefix=STATIC, title=HOSTILE + HOSTILE_IMG, lang_texts=hostile_texts)
    # exactly one script element: ours; nothing hostile is markup
    assert doc.count("<script") == 1 and doc.count("</script>") == 1
    assert "<img" not in doc and "window.__x=1</script>" not in doc
    assert "&lt;/script&gt;&lt;script&gt;window.__x=1&lt;/script&gt;" in doc  # the title, as text
    assert "\u2028" not in doc.split("<script>", 1)[1]
    cfg = _config(doc)
    assert cfg["url"] == url and cfg["t"]["player.failed"] == HOSTILE + "\u2028" + HOSTILE_IMG
    script = doc.split("<script>", 1)[1].split("</script>", 1)[0]
    assert "<" not in script.split(";", 1)[0]  # the JSON: < > & ' as \\u escapes
    assert "innerHTML" not in script  # texts are written with textContent only


def test_player_html_for_an_unplayable_url_is_the_panel_without_a_script() -> None:
    for url in ("rtsp://10.0.0.5/" + HOSTILE, "javascript:" + HOSTILE, HOSTILE_IMG, ""):
        doc = player_html(url, static_prefix=STATIC, title=HOSTILE, lang_texts=TEXTS)
        assert "<script" not in doc and "<video" not in doc and "<img" not in doc
        assert 'data-state="failed"' in doc and 'role="status">' in doc
        assert TEXTS["player.no_stream"] in doc
    doc = player_html("rtsp://10.0.0.5/ch1", static_prefix=STATIC, title="", lang_texts=TEXTS)
    assert "rtsp is not playable in a browser" in doc and "rtsp://10.0.0.5/ch1" in doc


# --------------------------------------------------------------------------- in a real browser

LOCAL = {"127.0.0.1", "localhost", "[::1]", "::1"}
# What Streamlit 1.67's components.html puts on its iframe (frontend IFrame.*.js).
SANDBOX = "allow-forms allow-modals allow-popups allow-popups-to-escape-sandbox allow-same-origin allow-scripts allow-downloads"
ALLOW = "autoplay; encrypted-media; fullscreen; picture-in-picture"
STATE = "document.getElementById('gc-player').getAttribute('data-state')"
VIDEO = """() => { const v = document.getElementById('gc-video');
  return {ready: v.readyState, t: v.currentTime, w: v.videoWidth, hidden: v.hidden,
          shown: v.getBoundingClientRect().height > 0 && getComputedStyle(v).display !== 'none'}; }"""
PANEL = """() => { const p = document.getElementById('gc-panel');
  return {shown: !p.hidden && p.getBoundingClientRect().height > 0,
          reason: document.getElementById('gc-reason').textContent,
          detail: document.getElementById('gc-detail').textContent}; }"""


def _chromium() -> str:
    path = "/usr/bin/chromium" if os.path.exists("/usr/bin/chromium") else shutil.which("chromium")
    if not path:
        if os.environ.get("CI") == "true":
            pytest.fail("Debian's chromium is required in CI (.ci/ensure-browser installs it)")
        pytest.skip("chromium is not installed (run .ci/ensure-browser)")
    return path


class _Server:
    """A local http.server over ``root`` (with ``/stall.mp4`` that never sends a byte)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.stop = threading.Event()
        stop = self.stop

        class Handler(http.server.SimpleHTTPRequestHandler):
            extensions_map = {
                **http.server.SimpleHTTPRequestHandler.extensions_map,
                ".m3u8": "application/vnd.apple.mpegurl",
                ".ts": "video/mp2t",
                ".webm": "video/webm",
                ".js": "text/javascript",
            }

            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=str(root), **kwargs)

            def do_GET(self) -> None:
                if self.path.startswith("/stall.mp4"):
                    self.send_response(200)
                    self.send_header("Content-Type", "video/mp4")
                    self.send_header("Content-Length", "1000000")
                    self.end_headers()
                    stop.wait(30)
                    return
                super().do_GET()

            def do_POST(self) -> None:  # no WHEP endpoint here
                self.send_error(404)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib's name
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.pages = 0

    def page(self, stream_url: str, *, static_prefix: str = "/static", timeout_s: float = 10.0) -> str:
        """A page embedding the player as Streamlit does; its URL."""
        doc = player_html(
            stream_url, static_prefix=static_prefix, title=HOSTILE, lang_texts=TEXTS, timeout_s=timeout_s
        )
        self.pages += 1
        name = f"page{self.pages}.html"
        (self.root / name).write_text(
            "<!DOCTYPE html><html><head><meta charset='utf-8'></head><body>"
            f'<iframe id="player" sandbox="{SANDBOX}" allow="{ALLOW}" '
            f'style="width:640px;height:300px;border:0" srcdoc="{html.escape(doc, quote=True)}"></iframe>'
            "</body></html>",
            encoding="utf-8",
        )
        return f"{self.base}/{name}"

    def close(self) -> None:
        self.stop.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[_Server]:
    if not assets.assets_ready():
        pytest.skip("vendor assets not installed (run make assets)")
    root = Path(tmp_path_factory.mktemp("player"))
    (root / "static").mkdir()
    (root / "static" / "vendor").symlink_to(assets.DEFAULT_DEST, target_is_directory=True)
    srv = _Server(root)
    yield srv
    srv.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    path = _chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(
            executable_path=path,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                # WebRTC between two pages of this browser: plain host candidates, loopback allowed
                "--disable-features=WebRtcHideLocalIpsWithMdns",
                "--allow-loopback-in-peer-connection",
            ],
        )
        yield b
        b.close()


class _Tab:
    def __init__(self, browser: Any) -> None:
        self.blocked: list[str] = []
        self.whep: Any = None  # route handler for WHEP requests (set by a test)
        self.context = browser.new_context(viewport={"width": 800, "height": 400})

        def guard(route: Any, request: Any) -> None:
            host = urlparse(request.url).hostname or ""
            if request.url.startswith(("data:", "blob:", "about:")):
                route.continue_()
            elif host not in LOCAL:
                self.blocked.append(request.url)
                route.abort()
            elif self.whep is not None and "/whep" in urlparse(request.url).path:
                self.whep(route, request)
            else:
                route.continue_()

        self.context.route("**/*", guard)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def open(self, url: str) -> Any:
        self.page.goto(url)
        handle = self.page.wait_for_selector("#player")
        frame = handle.content_frame()
        assert frame is not None
        frame.wait_for_selector("#gc-player", state="attached")
        return frame

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def tab(browser: Any) -> Iterator[_Tab]:
    t = _Tab(browser)
    yield t
    t.close()
    assert not t.blocked, t.blocked  # nothing tried to reach the internet


def _wait_state(frame: Any, want: str, timeout_s: float) -> None:
    frame.wait_for_function(f"() => {STATE} === '{want}'", timeout=timeout_s * 1000)


def _assert_plays(frame: Any) -> None:
    _wait_state(frame, "playing", 15)
    first = frame.evaluate(VIDEO)
    assert first["ready"] >= 2 and first["w"] > 0 and first["shown"] and not first["hidden"]
    frame.wait_for_function(
        f"() => document.getElementById('gc-video').currentTime > {first['t'] + 0.3}", timeout=8000
    )
    assert not frame.evaluate(PANEL)["shown"]
    assert frame.evaluate("() => window.__x") is None  # the hostile title stayed text


def _assert_no_stream(frame: Any, reason_key: str, timeout_s: float = 15) -> dict[str, Any]:
    _wait_state(frame, "failed", timeout_s)
    panel = frame.evaluate(PANEL)
    video = frame.evaluate(VIDEO)
    assert panel["shown"] and panel["reason"] == TEXTS[reason_key], panel
    assert video["hidden"] and not video["shown"]  # never a broken frame
    assert frame.evaluate("() => window.__x") is None
    return panel


@pytest.fixture(scope="module")
def hls_stream(server: _Server) -> str:
    """A 6-second H.264 test pattern as an HLS VOD stream on the local server (needs ffmpeg)."""
    make_hls(server.root / "hls")
    return f"{server.base}/hls/cam.m3u8"


@pytest.fixture(scope="module")
def webm_file(server: _Server, browser: Any) -> str:
    """A 3-second WebM, recorded by the browser itself from a canvas (no ffmpeg needed)."""
    ctx = browser.new_context()
    page = ctx.new_page()
    page.goto(f"{server.base}/static/vendor/manifest.json")  # any local page: a secure-enough origin
    data = page.evaluate(
        """async () => {
      const c = document.createElement('canvas'); c.width = 320; c.height = 180;
      document.body.appendChild(c);
      const g = c.getContext('2d'); let n = 0;
      const draw = () => { g.fillStyle = 'hsl(' + (n * 7 % 360) + ',70%,50%)'; g.fillRect(0, 0, 320, 180);
        g.fillStyle = '#fff'; g.font = '40px sans-serif'; g.fillText(String(n++), 20, 100); };
      const tick = setInterval(draw, 40); draw();
      const rec = new MediaRecorder(c.captureStream(25), {mimeType: 'video/webm;codecs=vp8'});
      const parts = []; rec.ondataavailable = e => parts.push(e.data);
      const done = new Promise(r => rec.onstop = r);
      rec.start(500); await new Promise(r => setTimeout(r, 3000)); rec.stop(); await done; clearInterval(tick);
      const buf = new Uint8Array(await new Blob(parts).arrayBuffer());
      let s = ''; for (let i = 0; i < buf.length; i++) s += String.fromCharCode(buf[i]);
      return btoa(s);
    }"""
    )
    ctx.close()
    (server.root / "clip.webm").write_bytes(base64.b64decode(data))
    return f"{server.base}/clip.webm"


@pytest.mark.browser
def test_browser_plays_an_hls_stream_with_the_local_hls_js(
    server: _Server, tab: _Tab, hls_stream: str
) -> None:
    frame = tab.open(server.page(hls_stream))
    _assert_plays(frame)
    assert frame.evaluate("() => typeof window.Hls") == "function"  # hls.js from the vendor folder
    assert frame.evaluate("() => !document.getElementById('gc-live').hidden")
    assert not tab.errors, tab.errors


@pytest.mark.browser
def test_browser_plays_a_webm_file(server: _Server, tab: _Tab, webm_file: str) -> None:
    frame = tab.open(server.page(webm_file))
    _assert_plays(frame)
    assert frame.evaluate("() => document.getElementById('gc-live').hidden")  # a file is not live
    assert not tab.errors, tab.errors


@pytest.mark.browser
def test_browser_shows_no_stream_for_a_missing_playlist(server: _Server, tab: _Tab) -> None:
    frame = tab.open(server.page(f"{server.base}/missing/cam.m3u8"))
    panel = _assert_no_stream(frame, "player.failed")
    assert "404" in panel["detail"], panel
    assert frame.evaluate("() => typeof window.Hls") == "function"
    assert not tab.errors, tab.errors


@pytest.mark.browser
def test_browser_shows_no_stream_for_a_missing_file(server: _Server, tab: _Tab) -> None:
    frame = tab.open(server.page(f"{server.base}/missing/clip.mp4"))
    _assert_no_stream(frame, "player.failed")


@pytest.mark.browser
def test_browser_shows_no_stream_when_no_frame_arrives_in_time(server: _Server, tab: _Tab) -> None:
    started = time.monotonic()
    frame = tab.open(server.page(f"{server.base}/stall.mp4", timeout_s=2))
    _assert_no_stream(frame, "player.timeout", timeout_s=10)
    assert time.monotonic() - started < 9


@pytest.mark.browser
def test_browser_shows_no_stream_when_hls_js_is_missing(server: _Server, tab: _Tab) -> None:
    frame = tab.open(server.page(f"{server.base}/missing/cam.m3u8", static_prefix="/nowhere"))
    native = frame.evaluate(
        "() => document.createElement('video').canPlayType('application/vnd.apple.mpegurl')"
    )
    # without hls.js the browser's own HLS is tried where it has one; the playlist is missing anyway
    _assert_no_stream(frame, "player.failed" if native else "player.missing")
    if not native:
        assert "/nowhere/vendor/hls.js-1.6.15/dist/hls.min.js" in frame.evaluate(PANEL)["detail"]


@pytest.mark.browser
def test_browser_shows_no_stream_for_a_failing_whep_endpoint(server: _Server, tab: _Tab) -> None:
    frame = tab.open(server.page(f"{server.base}/cam1/whep"))
    panel = _assert_no_stream(frame, "player.failed")
    assert "WHEP HTTP 404" in panel["detail"]


@pytest.mark.browser
def test_browser_plays_webrtc_over_whep(server: _Server, tab: _Tab, browser: Any) -> None:
    """A WHEP exchange with a sender page of the same browser (a canvas stream) standing in for the
    media gateway: the player POSTs its offer as application/sdp and plays the answer's stream."""
    sender_ctx = browser.new_context()
    sender = sender_ctx.new_page()
    sender.goto(f"{server.base}/static/vendor/manifest.json")
    seen: list[tuple[str, str]] = []

    def whep(route: Any, request: Any) -> None:
        seen.append((request.method, request.headers.get("content-type", "")))
        if request.method == "DELETE":
            route.fulfill(status=200)
            return
        answer = sender.evaluate(
            """async (offer) => {
          const c = document.createElement('canvas'); c.width = 320; c.height = 180;
          document.body.appendChild(c);
          const g = c.getContext('2d'); let n = 0;
          setInterval(() => { g.fillStyle = 'hsl(' + (n++ * 9 % 360) + ',70%,50%)'; g.fillRect(0, 0, 320, 180); }, 40);
          const pc = new RTCPeerConnection(); window.pc = pc;
          c.captureStream(25).getTracks().forEach(t => pc.addTrack(t));
          await pc.setRemoteDescription({type: 'offer', sdp: offer});
          await pc.setLocalDescription(await pc.createAnswer());
          if (pc.iceGatheringState !== 'complete') {
            await new Promise(r => { pc.onicegatheringstatechange = () => pc.iceGatheringState === 'complete' && r();
                                     setTimeout(r, 3000); });
          }
          return pc.localDescription.sdp;
        }""",
            request.post_data,
        )
        route.fulfill(
            status=201,
            headers={"Content-Type": "application/sdp", "Location": "/cam1/whep/session-1"},
            body=answer,
        )

    tab.whep = whep
    try:
        frame = tab.open(server.page(f"{server.base}/cam1/whep"))
        _assert_plays(frame)
        assert seen[0] == ("POST", "application/sdp")
        assert frame.evaluate("() => !document.getElementById('gc-live').hidden")
        assert not tab.errors, tab.errors
    finally:
        sender_ctx.close()
