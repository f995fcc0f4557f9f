"""Serve every map script and stylesheet from the console itself (no CDN on the intranet).

Two halves:

* a **manifest** of the vendored assets: which npm package (pinned in
  ``console/assets/package.json``) or which file of the installed folium wheel
  provides each file, which files to copy and which sibling folders come along so
  that the stylesheets' relative ``url(...)`` references keep working.
  ``console.assets.install_assets`` copies exactly these into ``console/static/vendor``,
  which Streamlit serves at ``/app/static/vendor``;
* :func:`use_local_assets`, which points folium/branca (and streamlit-folium) at those
  local copies instead of the CDN URLs hard-coded in them.

Where the URLs come from (folium 0.20.0, branca 0.8.2, streamlit-folium 0.27.4):

* every ``JSCSSMixin`` element class (``folium.Map`` and the plugins) carries
  ``default_js`` / ``default_css`` class lists; folium renders them as ``<script>`` /
  ``<link>`` tags and streamlit-folium rebuilds its ``js_links`` / ``css_links`` from
  the same lists, so rewriting the class lists covers both;
* ``branca.colormap.ColorMap.render`` adds a d3 3.5.5 ``JavascriptLink`` to the page
  header directly (no list to rewrite): the name ``JavascriptLink`` in the
  ``branca.colormap`` module is swapped for a subclass that localises known URLs;
* ``streamlit_folium.st_folium`` inserts two hard-coded d3 URLs into ``js_links``
  when the map holds a branca colormap: its module-level ``_component_func`` (the
  call that sends the arguments to the browser) is wrapped so that every
  ``js_links`` / ``css_links`` entry goes through :func:`localize_url`.

Everything here is idempotent and reversible (:func:`reset_local_assets`); no
Streamlit import happens unless Streamlit is already loaded in the process.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import branca.colormap
import branca.element
import folium
import folium.plugins  # noqa: F401  -- imported so every plugin class exists before we rewrite them
from folium.elements import MacroElement
from folium.template import Template

__all__ = [
    "ASSET_LINKS",
    "DEFAULT_BASE_URL",
    "FOLIUM_FILES",
    "GENERATED_FILES",
    "PACKAGES",
    "AssetLink",
    "LeafletIconImagePath",
    "VendorPackage",
    "active_base_url",
    "add_icon_image_path",
    "awesome_rotate_css",
    "folium_folder",
    "folium_package_dir",
    "icon_image_path",
    "local_url",
    "localize_url",
    "npm_dependencies",
    "patch_streamlit_folium",
    "reset_local_assets",
    "use_local_assets",
    "vendor_relative_files",
]

DEFAULT_BASE_URL = "/app/static/vendor"
"""Where Streamlit serves ``console/static/vendor`` (``server.enableStaticServing``).

Root-absolute on purpose: the st_folium frame is a page under ``/component/...``, so a
relative URL would resolve against the component path. Prefix ``server.baseUrlPath``
when one is configured.
"""


# ---------------------------------------------------------------------------
# Manifest
# ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VendorPackage:
    """One npm package and the parts of it that are served.

    ``dependency`` is the key in ``console/assets/package.json`` (and so the folder under
    ``node_modules``); for an npm alias such as ``"d3v3": "npm:d3@3.5.5"`` it differs
    from ``name``. Files are copied keeping their path inside the package, under
    ``<name>-<version>/`` in the vendor folder (the version in the path also busts
    browser caches when a pin changes).
    """

    name: str
    version: str
    files: tuple[str, ...]
    dirs: tuple[str, ...] = ()
    dependency: str | None = None

    @property
    def dep(self) -> str:
        return self.dependency or self.name

    @property
    def spec(self) -> str:
        """The dependency specifier that goes into package.json."""
        if self.dependency and self.dependency != self.name:
            return f"npm:{self.name}@{self.version}"
        return self.version

    @property
    def folder(self) -> str:
        """Folder under the vendor dir: ``leaflet-1.9.3``, ``fontawesome-free-6.2.0``."""
        return f"{self.name.rsplit('/', 1)[-1]}-{self.version}"


PACKAGES: tuple[VendorPackage, ...] = (
    VendorPackage("leaflet", "1.9.3", ("dist/leaflet.js", "dist/leaflet.css"), ("dist/images",)),
    VendorPackage("jquery", "3.7.1", ("dist/jquery.min.js",)),
    VendorPackage("bootstrap", "5.2.2", ("dist/js/bootstrap.bundle.min.js", "dist/css/bootstrap.min.css")),
    # Bootstrap 3's glyphicons (used by awesome-markers' "glyphicon" prefix), without normalize.css.
    VendorPackage("glyphicons-only-bootstrap", "1.0.1", ("css/bootstrap.min.css",), ("fonts",)),
    VendorPackage("@fortawesome/fontawesome-free", "6.2.0", ("css/all.min.css",), ("webfonts",)),
    VendorPackage(
        "drmonty-leaflet-awesome-markers",
        "2.0.2",
        ("js/leaflet.awesome-markers.js", "css/leaflet.awesome-markers.css"),
        ("css/images",),
    ),
    VendorPackage("leaflet-draw", "1.0.2", ("dist/leaflet.draw.js", "dist/leaflet.draw.css"), ("dist/images",)),
    VendorPackage(
        "leaflet.markercluster",
        "1.1.0",
        ("dist/leaflet.markercluster.js", "dist/MarkerCluster.css", "dist/MarkerCluster.Default.css"),
    ),
    # No Control.FullScreen.min.js in the npm package: serve the plain one (+ the icon its css uses).
    VendorPackage(
        "leaflet.fullscreen", "3.0.0", ("Control.FullScreen.js", "Control.FullScreen.css", "icon-fullscreen.svg")
    ),
    VendorPackage("d3", "4.13.0", ("build/d3.min.js",)),
    VendorPackage("d3", "3.5.5", ("d3.min.js",), dependency="d3v3"),
)

FOLIUM_FILES: tuple[str, ...] = ("templates/leaflet_heat.min.js",)
"""Files copied from the installed folium package (paths inside ``folium/``)."""


def folium_folder() -> str:
    """Vendor sub-folder for files taken from (or generated for) the installed folium."""
    return f"folium-{folium.__version__}"


def awesome_rotate_css() -> str:
    """``leaflet.awesome.rotate.min.css``: only in folium's sdist, so generated.

    folium's ``Icon(angle=N)`` gives the awesome-marker's ``<i>`` the class
    ``fa-rotate-N`` (0..360); the stylesheet rotates it by N degrees.
    """
    rules = (
        f".fa-rotate-{n}{{-webkit-transform:rotate({n}deg);-ms-transform:rotate({n}deg);transform:rotate({n}deg)}}"
        for n in range(361)
    )
    return "\n".join(rules) + "\n"


GENERATED_FILES: dict[str, Callable[[], str]] = {
    "leaflet.awesome.rotate.min.css": awesome_rotate_css,
}
"""Files written by the installer into :func:`folium_folder` (name -> content factory)."""


@dataclass(frozen=True)
class AssetLink:
    """A CDN URL that folium/branca/streamlit-folium use, and the local file that replaces it."""

    cdn_url: str
    folder: str  # vendor sub-folder, e.g. "leaflet-1.9.3"; "" means folium_folder()
    path: str

    def relative(self) -> str:
        return f"{self.folder or folium_folder()}/{self.path}"


def _pkg(name: str, version: str) -> str:
    for p in PACKAGES:
        if p.name == name and p.version == version:
            return p.folder
    raise KeyError(f"{name}@{version} is not in PACKAGES")


_LEAFLET = _pkg("leaflet", "1.9.3")
_AWESOME = _pkg("drmonty-leaflet-awesome-markers", "2.0.2")
_CLUSTER = _pkg("leaflet.markercluster", "1.1.0")
_JQUERY = _pkg("jquery", "3.7.1")

ASSET_LINKS: tuple[AssetLink, ...] = (
    # folium.Map (every map)
    AssetLink("https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.js", _LEAFLET, "dist/leaflet.js"),
    AssetLink("https://cdn.jsdelivr.net/npm/leaflet@1.9.3/dist/leaflet.css", _LEAFLET, "dist/leaflet.css"),
    AssetLink("https://code.jquery.com/jquery-3.7.1.min.js", _JQUERY, "dist/jquery.min.js"),
    AssetLink(
        "https://cdn.jsdelivr.net/npm/bootstrap@5.2.2/dist/js/bootstrap.bundle.min.js",
        _pkg("bootstrap", "5.2.2"),
        "dist/js/bootstrap.bundle.min.js",
    ),
    AssetLink(
        "https://cdn.jsdelivr.net/npm/bootstrap@5.2.2/dist/css/bootstrap.min.css",
        _pkg("bootstrap", "5.2.2"),
        "dist/css/bootstrap.min.css",
    ),
    AssetLink(
        "https://netdna.bootstrapcdn.com/bootstrap/3.0.0/css/bootstrap-glyphicons.css",
        _pkg("glyphicons-only-bootstrap", "1.0.1"),
        "css/bootstrap.min.css",
    ),
    AssetLink(
        "https://cdn.jsdelivr.net/npm/@fortawesome/fontawesome-free@6.2.0/css/all.min.css",
        _pkg("@fortawesome/fontawesome-free", "6.2.0"),
        "css/all.min.css",
    ),
    AssetLink(
        "https://cdnjs.cloudflare.com/ajax/libs/Leaflet.awesome-markers/2.0.2/leaflet.awesome-markers.js",
        _AWESOME,
        "js/leaflet.awesome-markers.js",
    ),
    AssetLink(
        "https://cdnjs.cloudflare.com/ajax/libs/Leaflet.awesome-markers/2.0.2/leaflet.awesome-markers.css",
        _AWESOME,
        "css/leaflet.awesome-markers.css",
    ),
    AssetLink(
        "https://cdn.jsdelivr.net/gh/python-visualization/folium/folium/templates/leaflet.awesome.rotate.min.css",
        "",
        "leaflet.awesome.rotate.min.css",
    ),
    # plugins.Draw
    AssetLink(
        "https://cdnjs.cloudflare.com/ajax/libs/leaflet.draw/1.0.2/leaflet.draw.js",
        _pkg("leaflet-draw", "1.0.2"),
        "dist/leaflet.draw.js",
    ),
    AssetLink(
        "https://cdnjs.cloudflare.com/ajax/libs/leaflet.draw/1.0.2/leaflet.draw.css",
        _pkg("leaflet-draw", "1.0.2"),
        "dist/leaflet.draw.css",
    ),
    # plugins.MarkerCluster
    AssetLink(
        "https://cdnjs.cloudflare.com/ajax/libs/leaflet.markercluster/1.1.0/leaflet.markercluster.js",
        _CLUSTER,
        "dist/leaflet.markercluster.js",
    ),
    AssetLink(
        "https://cdnjs.cloudflare.com/ajax/libs/leaflet.markercluster/1.1.0/MarkerCluster.css",
        _CLUSTER,
        "dist/MarkerCluster.css",
    ),
    AssetLink(
        "https://cdnjs.cloudflare.com/ajax/libs/leaflet.markercluster/1.1.0/MarkerCluster.Default.css",
        _CLUSTER,
        "dist/MarkerCluster.Default.css",
    ),
    # plugins.Fullscreen
    AssetLink(
        "https://cdn.jsdelivr.net/npm/leaflet.fullscreen@3.0.0/Control.FullScreen.min.js",
        _pkg("leaflet.fullscreen", "3.0.0"),
        "Control.FullScreen.js",
    ),
    AssetLink(
        "https://cdn.jsdelivr.net/npm/leaflet.fullscreen@3.0.0/Control.FullScreen.css",
        _pkg("leaflet.fullscreen", "3.0.0"),
        "Control.FullScreen.css",
    ),
    # plugins.HeatMap (folium's own patched copy, shipped in the wheel)
    AssetLink(
        "https://cdn.jsdelivr.net/gh/python-visualization/folium@main/folium/templates/leaflet_heat.min.js",
        "",
        "templates/leaflet_heat.min.js",
    ),
    # branca colormaps (branca.colormap.ColorMap.render, streamlit-folium's st_folium)
    AssetLink("https://cdnjs.cloudflare.com/ajax/libs/d3/3.5.5/d3.min.js", _pkg("d3", "3.5.5"), "d3.min.js"),
    AssetLink("https://d3js.org/d3.v4.min.js", _pkg("d3", "4.13.0"), "build/d3.min.js"),
    # the same jQuery under another CDN (TimestampedGeoJson & co.)
    AssetLink("https://cdnjs.cloudflare.com/ajax/libs/jquery/3.7.1/jquery.min.js", _JQUERY, "dist/jquery.min.js"),
)

_BY_CDN_URL: dict[str, AssetLink] = {link.cdn_url: link for link in ASSET_LINKS}


def npm_dependencies() -> dict[str, str]:
    """The ``dependencies`` object that ``console/assets/package.json`` must contain."""
    return {p.dep: p.spec for p in sorted(PACKAGES, key=lambda p: p.dep)}


# ---------------------------------------------------------------------------
# URL rewriting
# ---------------------------------------------------------------------------

_state: dict[str, str | None] = {"base_url": None}


def _norm_base(base_url: str) -> str:
    base = base_url.strip()
    if not base:
        raise ValueError("base_url must not be empty (use '/app/static/vendor' for Streamlit)")
    return base.rstrip("/")


def active_base_url() -> str | None:
    """The base URL set by the last :func:`use_local_assets` call (None when not active)."""
    return _state["base_url"]


def local_url(relative: str, base_url: str | None = None) -> str:
    """``<base_url>/<relative>``; ``base_url`` defaults to the active (or the default) one."""
    base = _norm_base(base_url or active_base_url() or DEFAULT_BASE_URL)
    return f"{base}/{relative.lstrip('/')}"


def localize_url(url: str, base_url: str | None = None) -> str:
    """The local URL for a known CDN URL; any other URL comes back unchanged.

    Without ``base_url``, uses the active base URL; when local assets are not active
    (no :func:`use_local_assets` call yet, or after :func:`reset_local_assets`) the URL
    is returned unchanged.
    """
    base = base_url or active_base_url()
    link = _BY_CDN_URL.get(url)
    if base is None or link is None:
        return url
    return local_url(link.relative(), base)


def _element_classes() -> Iterator[type]:
    seen: set[type] = set()
    stack: list[type] = [branca.element.Element]
    while stack:
        cls = stack.pop()
        subclasses: list[type] = cls.__subclasses__()
        for sub in subclasses:
            if sub not in seen:
                seen.add(sub)
                stack.append(sub)
                yield sub


# (class, "default_js"/"default_css") -> the list as folium/branca defined it
_ORIGINAL_LISTS: dict[tuple[type, str], list[tuple[str, str]]] = {}


class _LocalJavascriptLink(branca.element.JavascriptLink):
    """Stands in for ``JavascriptLink`` inside ``branca.colormap`` (d3 for colormap legends)."""

    def __init__(self, url: str, download: bool = False) -> None:
        super().__init__(localize_url(url), download=download)


_ORIGINAL_COLORMAP_JSLINK = branca.colormap.JavascriptLink
_SF_MARK = "_gridconsole_local_assets"


def use_local_assets(base_url: str = DEFAULT_BASE_URL) -> None:
    """Point every known folium/branca/streamlit-folium asset URL at ``base_url``.

    Rewrites the ``default_js`` / ``default_css`` lists of every element class that
    defines them (``folium.Map``, ``plugins.Draw``, ``MarkerCluster``, ``Fullscreen``,
    ``HeatMap``, ...) from the original CDN lists, so calling it again (with the same
    or another base URL) is safe. URLs with no local copy are left alone. Classes
    defined after the call are picked up by the next call.

    Also localises branca colormaps' d3 link and, if Streamlit is loaded in this
    process, streamlit-folium's hard-coded d3 links (:func:`patch_streamlit_folium`).
    Set ``L.Icon.Default.imagePath`` per map with :func:`add_icon_image_path`
    (``layers.basemap.build_base_map`` does it).
    """
    base = _norm_base(base_url)
    _state["base_url"] = base
    for cls in _element_classes():
        for attr in ("default_js", "default_css"):
            if attr not in cls.__dict__:
                continue
            original = _ORIGINAL_LISTS.setdefault((cls, attr), list(cls.__dict__[attr]))
            setattr(cls, attr, [(name, localize_url(url, base)) for name, url in original])
    branca.colormap.JavascriptLink = _LocalJavascriptLink  # type: ignore[misc]
    patch_streamlit_folium()


def reset_local_assets() -> None:
    """Undo :func:`use_local_assets`: CDN lists back, branca and streamlit-folium unpatched."""
    for (cls, attr), original in _ORIGINAL_LISTS.items():
        setattr(cls, attr, list(original))
    _state["base_url"] = None
    branca.colormap.JavascriptLink = _ORIGINAL_COLORMAP_JSLINK  # type: ignore[misc]
    module = sys.modules.get("streamlit_folium")
    if module is not None:
        func = getattr(module, "_component_func", None)
        wrapped = getattr(func, "__wrapped__", None)
        if getattr(func, _SF_MARK, False) and wrapped is not None:
            module.__dict__["_component_func"] = wrapped


def patch_streamlit_folium(module: ModuleType | None = None) -> bool:
    """Make streamlit-folium send local URLs to the browser. Returns True when patched.

    ``st_folium`` builds ``js_links`` / ``css_links`` from the element classes' lists
    (already local after :func:`use_local_assets`) but, for maps holding a branca
    colormap, inserts two hard-coded d3 CDN URLs. The only place to catch those is
    the call that ships the arguments to the browser, the module-level
    ``_component_func`` (looked up at call time): it is wrapped once, and the wrapper
    passes every link through :func:`localize_url` (a no-op while local assets are
    not active).

    ``module`` defaults to ``streamlit_folium`` if it is already imported, or if
    Streamlit is loaded (then it is imported here); otherwise nothing happens, so
    this package stays importable without Streamlit. Idempotent.
    """
    if module is None:
        module = sys.modules.get("streamlit_folium")
        if module is None:
            if "streamlit" not in sys.modules or importlib.util.find_spec("streamlit_folium") is None:
                return False
            module = importlib.import_module("streamlit_folium")
    current = getattr(module, "_component_func", None)
    if current is None:
        return False
    if getattr(current, _SF_MARK, False):
        return True
    original: Callable[..., Any] = current

    def _component_func(*args: Any, **kwargs: Any) -> Any:
        for key in ("js_links", "css_links"):
            links = kwargs.get(key)
            if links:
                kwargs[key] = list(dict.fromkeys(localize_url(u) for u in links))
        return original(*args, **kwargs)

    _component_func.__wrapped__ = original  # type: ignore[attr-defined]
    setattr(_component_func, _SF_MARK, True)
    module.__dict__["_component_func"] = _component_func
    return True


# ---------------------------------------------------------------------------
# Default marker images
# ---------------------------------------------------------------------------


def icon_image_path(base_url: str | None = None) -> str:
    """URL of Leaflet's ``dist/images/`` folder (with the trailing slash Leaflet needs)."""
    return local_url(f"{_LEAFLET}/dist/images/", base_url)


class LeafletIconImagePath(MacroElement):
    """Sets ``L.Icon.Default.imagePath`` in the map script.

    Leaflet guesses the path from ``leaflet.css`` at the first default marker; inside
    the st_folium frame the stylesheet may not be applied yet (or resolves against the
    component URL), giving 404s on ``marker-icon.png``. It is a ``script`` macro, not a
    header ``<script>``: streamlit-folium inserts the header with ``innerHTML``, where
    scripts never run, but it does run every element's ``script`` macro.
    """

    _template = Template(
        """
        {% macro script(this, kwargs) %}
            L.Icon.Default.imagePath = {{ this.image_path|tojson }};
        {% endmacro %}
        """
    )

    def __init__(self, image_path: str) -> None:
        super().__init__()
        self._name = "LeafletIconImagePath"
        self.image_path = image_path


def add_icon_image_path(m: folium.Map, base_url: str | None = None) -> LeafletIconImagePath:
    """Add (or update, never duplicate) the ``L.Icon.Default.imagePath`` setter on ``m``.

    Add it before any marker: the path is read when a default icon is first created.
    """
    element = LeafletIconImagePath(icon_image_path(base_url))
    m.add_child(element, name="leaflet_icon_image_path")
    return element


def vendor_relative_files() -> list[str]:
    """Every single file (not folder) the manifest serves, relative to the vendor dir."""
    files = [f"{p.folder}/{f}" for p in PACKAGES for f in p.files]
    files += [f"{folium_folder()}/{f}" for f in FOLIUM_FILES]
    files += [f"{folium_folder()}/{name}" for name in GENERATED_FILES]
    return files


def folium_package_dir() -> Path:
    """The installed folium package (source of :data:`FOLIUM_FILES`)."""
    return Path(folium.__file__).resolve().parent
