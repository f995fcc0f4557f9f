"""The map's scripts and stylesheets are served locally: nothing may point at a CDN.

Installs the vendor folder with ``console.assets.install_assets`` (npm, once; later
runs reuse it). Skips only when npm is missing outside CI.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path

import branca.colormap
import folium
import folium.plugins
import pytest

import console.assets as assets
from layers import offline
from layers.basemap import BasemapConfig, build_base_map

BASE = offline.DEFAULT_BASE_URL
EXTERNAL = re.compile(r"^(https?:)?//", re.IGNORECASE)
CSS_URL = re.compile(r"url\(\s*(['\"]?)(.*?)\1\s*\)")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def vendor_dir() -> Path:
    if not assets.assets_ready(assets.DEFAULT_DEST) and shutil.which("npm") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("npm is missing in CI: the map assets cannot be installed")
        pytest.skip("npm is not installed and console/static/vendor is not ready")
    return assets.install_assets()


@pytest.fixture
def local_assets() -> Iterator[None]:
    offline.use_local_assets()
    yield
    offline.reset_local_assets()


# --------------------------------------------------------------------------- helpers


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.scripts: list[str] = []
        self.styles: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.scripts.append(a["src"] or "")
        if tag == "link" and a.get("href"):
            self.styles.append(a["href"] or "")


def _links(html: str) -> tuple[list[str], list[str]]:
    parser = _Links()
    parser.feed(html)
    return parser.scripts, parser.styles


def _vendor_file(vendor: Path, url: str) -> Path:
    assert url.startswith(BASE + "/"), url
    return vendor / url[len(BASE) + 1 :]


def _full_map() -> folium.Map:
    """A base map with every plugin the console uses, plus a colormap and icons."""
    m = build_base_map(config=BasemapConfig(), center=(30.27, 120.15), zoom=13)
    folium.plugins.Draw(export=False).add_to(m)
    folium.plugins.Fullscreen().add_to(m)
    folium.plugins.HeatMap([[30.27, 120.15, 0.5], [30.28, 120.16, 1.0]]).add_to(m)
    cluster = folium.plugins.MarkerCluster().add_to(m)
    folium.Marker((30.27, 120.15), tooltip="default icon").add_to(cluster)
    folium.Marker((30.271, 120.151), icon=folium.Icon(icon="flag", prefix="fa", angle=45)).add_to(cluster)
    folium.Marker((30.272, 120.152), icon=folium.Icon(icon="home", prefix="glyphicon")).add_to(m)
    geojson = {
        "type": "FeatureCollection",
        "features": [
            {
                "type": "Feature",
                "properties": {"name": "网格 A", "cases": 3},
                "geometry": {
                    "type": "Polygon",
                    "coordinates": [[[120.14, 30.26], [120.16, 30.26], [120.16, 30.28], [120.14, 30.28], [120.14, 30.26]]],
                },
            }
        ],
    }
    folium.GeoJson(geojson, tooltip=folium.GeoJsonTooltip(fields=["name", "cases"])).add_to(m)
    branca.colormap.LinearColormap(["#fee8c8", "#e34a33"], vmin=0, vmax=10, caption="cases").add_to(m)
    return m


def _css_refs(css_file: Path) -> list[str]:
    refs = []
    for _, ref in CSS_URL.findall(css_file.read_text(encoding="utf-8", errors="replace")):
        if ref.startswith(("data:", "#")):
            continue
        refs.append(ref)
    return refs


# --------------------------------------------------------------------------- manifest


def test_package_json_pins_exactly_the_manifest() -> None:
    data = json.loads(assets.PACKAGE_JSON.read_text(encoding="utf-8"))
    assert data["private"] is True
    assert data["dependencies"] == offline.npm_dependencies()
    assert data["dependencies"]["d3v3"] == "npm:d3@3.5.5"
    for spec in data["dependencies"].values():
        assert re.fullmatch(r"(npm:[@\w./-]+@)?\d+\.\d+\.\d+", spec), f"not an exact pin: {spec}"
    assert not (assets.PACKAGE_JSON.parent / "package-lock.json").exists()
    assert not (assets.PACKAGE_JSON.parent / "node_modules").exists()


def test_every_cdn_url_of_the_plugins_we_use_has_a_local_copy() -> None:
    offline.reset_local_assets()
    known = {link.cdn_url for link in offline.ASSET_LINKS}
    for cls in (folium.Map, folium.plugins.Draw, folium.plugins.MarkerCluster, folium.plugins.Fullscreen, folium.plugins.HeatMap):
        for _, url in [*cls.default_js, *cls.default_css]:
            assert url in known, f"{cls.__name__}: no local copy for {url}"


def test_awesome_rotate_css_covers_every_angle() -> None:
    css = offline.awesome_rotate_css()
    for n in (0, 1, 45, 359, 360):
        assert f".fa-rotate-{n}{{" in css
        assert f"transform:rotate({n}deg)" in css
    assert ".fa-rotate-361" not in css


# --------------------------------------------------------------------------- installed vendor folder


def test_vendor_folder_holds_only_the_referenced_files(vendor_dir: Path) -> None:
    manifest = assets.read_manifest(vendor_dir)
    assert manifest is not None
    assert {k: v["version"] for k, v in manifest["packages"].items()} == assets.expected_versions()
    files = {str(p.relative_to(vendor_dir)) for p in vendor_dir.rglob("*") if p.is_file()}
    assert files == set(manifest["files"]) | {assets.MANIFEST_NAME}
    for rel in offline.vendor_relative_files():
        assert (vendor_dir / rel).is_file(), rel
    total = sum((vendor_dir / f).stat().st_size for f in files)
    assert total < 5 * 1024 * 1024, f"vendor folder is {total} bytes; only referenced files belong there"
    assert not any("node_modules" in f or f.endswith((".map", ".scss", ".less")) for f in files)


def test_every_stylesheet_reference_is_relative_and_exists(vendor_dir: Path) -> None:
    css_files = sorted(vendor_dir.rglob("*.css"))
    assert len(css_files) >= 10
    for css in css_files:
        for ref in _css_refs(css):
            assert not EXTERNAL.match(ref) and not ref.startswith("/"), f"{css.name}: non-relative url({ref})"
            target = (css.parent / ref.split("?")[0].split("#")[0]).resolve()
            assert target.is_file(), f"{css.relative_to(vendor_dir)}: url({ref}) -> missing {target}"
            assert vendor_dir.resolve() in target.parents, f"{css.name}: url({ref}) leaves the vendor folder"


def test_leaflet_default_icon_images_exist(vendor_dir: Path) -> None:
    path = offline.icon_image_path(BASE)
    assert path.endswith("/dist/images/")
    for name in ("marker-icon.png", "marker-icon-2x.png", "marker-shadow.png"):
        assert _vendor_file(vendor_dir, path + name).is_file()


def test_generated_and_folium_files_are_installed(vendor_dir: Path) -> None:
    folder = vendor_dir / offline.folium_folder()
    assert (folder / "leaflet.awesome.rotate.min.css").read_text(encoding="utf-8") == offline.awesome_rotate_css()
    heat = folder / "templates" / "leaflet_heat.min.js"
    assert heat.read_bytes() == (offline.folium_package_dir() / "templates" / "leaflet_heat.min.js").read_bytes()


# --------------------------------------------------------------------------- folium rendering


def test_rendered_map_uses_only_local_files(vendor_dir: Path, local_assets: None) -> None:
    html = _full_map().get_root().render()
    scripts, styles = _links(html)
    assert scripts and styles
    for url in scripts + styles:
        assert not EXTERNAL.match(url), f"external URL left in the page: {url}"
        assert _vendor_file(vendor_dir, url).is_file(), f"{url} is not in the vendor folder"
    # the plugins' and colormap's files are all there
    joined = "\n".join(scripts + styles)
    for part in ("leaflet.draw.js", "Control.FullScreen.js", "leaflet_heat.min.js", "leaflet.markercluster.js",
                 "MarkerCluster.Default.css", "d3-3.5.5/d3.min.js", "leaflet.awesome.rotate.min.css"):
        assert part in joined, part
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "external script/link in the page"
    assert f'L.Icon.Default.imagePath = "{offline.icon_image_path(BASE)}"' in html


def test_use_local_assets_is_idempotent_and_reversible(local_assets: None) -> None:
    first = (list(folium.Map.default_js), list(folium.plugins.Draw.default_css))
    offline.use_local_assets()
    assert (list(folium.Map.default_js), list(folium.plugins.Draw.default_css)) == first
    assert all(url.startswith(BASE + "/") for _, url in folium.Map.default_js + folium.Map.default_css)

    offline.use_local_assets("/console/app/static/vendor/")  # server.baseUrlPath = "console"
    assert folium.Map.default_js[0][1] == "/console/app/static/vendor/leaflet-1.9.3/dist/leaflet.js"
    assert offline.icon_image_path() == "/console/app/static/vendor/leaflet-1.9.3/dist/images/"

    offline.reset_local_assets()
    assert folium.Map.default_js[0][1].startswith("https://")
    assert offline.localize_url("https://d3js.org/d3.v4.min.js") == "https://d3js.org/d3.v4.min.js"
    offline.use_local_assets()
    assert list(folium.Map.default_js) == first[0]


def test_unknown_urls_are_left_alone(local_assets: None) -> None:
    url = "https://example.invalid/some-plugin.js"
    assert offline.localize_url(url) == url


def test_icon_image_path_is_added_once() -> None:
    m = folium.Map(tiles=None)
    offline.add_icon_image_path(m, "/a")
    offline.add_icon_image_path(m, "/b")
    setters = [c for c in m._children.values() if isinstance(c, offline.LeafletIconImagePath)]
    assert len(setters) == 1
    assert setters[0].image_path == "/b/leaflet-1.9.3/dist/images/"


# --------------------------------------------------------------------------- streamlit-folium


def _st_folium_args(monkeypatch: pytest.MonkeyPatch, m: folium.Map) -> dict:
    """Call st_folium as the app does and return what it sends to the browser."""
    import streamlit_folium

    sent: dict = {}

    def fake_component(**kwargs: object) -> object:
        sent.update(kwargs)
        return kwargs.get("default")

    monkeypatch.setattr(streamlit_folium, "_component_func", fake_component)
    offline.use_local_assets()  # wraps the (fake) component function
    streamlit_folium.st_folium(m, key="offline-test", height=400, returned_objects=[])
    return sent


def test_streamlit_folium_sends_only_local_links(vendor_dir: Path, local_assets: None, monkeypatch: pytest.MonkeyPatch) -> None:
    sent = _st_folium_args(monkeypatch, _full_map())
    js, css = sent["js_links"], sent["css_links"]
    # streamlit-folium hard-codes these two for maps with a branca colormap
    assert js[:2] == [f"{BASE}/d3-4.13.0/build/d3.min.js", f"{BASE}/d3-3.5.5/d3.min.js"]
    for url in js + css:
        assert not EXTERNAL.match(url), f"st_folium would load {url}"
        assert _vendor_file(vendor_dir, url).is_file(), url
    assert len(js) == len(set(js)) and len(css) == len(set(css))
    # the header keeps no script/link tags; the script sets the marker image path
    scripts, styles = _links(sent["header"])
    assert scripts == [] and styles == []
    assert "L.Icon.Default.imagePath" in sent["script"]


def test_streamlit_folium_patch_is_idempotent_and_reversible(monkeypatch: pytest.MonkeyPatch) -> None:
    import streamlit_folium

    original = streamlit_folium._component_func
    try:
        offline.use_local_assets()
        wrapped = streamlit_folium._component_func
        assert wrapped is not original
        assert offline.patch_streamlit_folium(streamlit_folium)
        offline.use_local_assets()
        assert streamlit_folium._component_func is wrapped
    finally:
        offline.reset_local_assets()
    assert streamlit_folium._component_func is original


# --------------------------------------------------------------------------- install_assets


def test_install_into_another_folder_and_repair(vendor_dir: Path, tmp_path: Path) -> None:
    dest = tmp_path / "vendor"
    assert not assets.assets_ready(dest)
    assert assets.install_assets(dest=dest) == dest  # npm cache already filled by vendor_dir
    assert assets.assets_ready(dest)
    (dest / "leaflet-1.9.3" / "dist" / "images" / "marker-icon.png").unlink()
    assert not assets.assets_ready(dest)
    assets.install_assets(dest=dest)
    assert assets.assets_ready(dest)
    assert not list(tmp_path.glob(".vendor.*")), "temporary folders left behind"


def test_missing_npm_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(assets.shutil, "which", lambda name: None)
    with pytest.raises(assets.AssetInstallError, match="npm was not found"):
        assets.install_assets(dest=tmp_path / "vendor", cache=tmp_path / "cache")


def test_failed_npm_install_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "npm"
    fake.write_text("#!/bin/sh\necho 'npm error code E404' >&2\nexit 1\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    with pytest.raises(assets.AssetInstallError, match=r"npm install failed \(exit 1\)[\s\S]*E404"):
        assets.install_assets(dest=tmp_path / "vendor", cache=tmp_path / "cache")
    assert not (tmp_path / "vendor").exists()
