"""Install the map's JS/CSS for local serving (the intranet has no CDN).

``install_assets()`` runs ``npm install`` of ``console/assets/package.json`` (exact pins)
into a cache folder, then copies only the files that ``layers.offline`` lists (plus the
sibling folders their stylesheets point at, and two files taken from / generated for
folium) into ``console/static/vendor``, which Streamlit serves at ``/app/static/vendor``
with ``server.enableStaticServing = true``. Nothing installed here goes into git.

Besides the map's packages (``layers.offline.PACKAGES``, pinned in package.json), the console
serves the video player's hls.js (``PLAYER_PACKAGES``, only ``dist/hls.min.js`` and its licence;
``console.player`` loads it from :data:`HLS_JS_RELATIVE`). npm installs from package.json plus
these pins (written to the cache folder's package.json), so package.json itself stays exactly the
map's manifest.

    python -m console.assets            # install if needed, print a summary
    python -m console.assets --force    # reinstall from scratch
    python -m console.assets --check    # exit 1 unless the vendor folder is complete
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from layers import offline

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGE_JSON = REPO_ROOT / "console" / "assets" / "package.json"
DEFAULT_DEST = REPO_ROOT / "console" / "static" / "vendor"
DEFAULT_CACHE = REPO_ROOT / ".cache" / "npm"
MANIFEST_NAME = "manifest.json"
MANIFEST_FORMAT = 1
NPM_INSTALL_ARGS = (
    "install",
    "--no-package-lock",
    "--no-audit",
    "--no-fund",
    "--legacy-peer-deps",
    # Nothing we serve needs an install script (Font Awesome's only prints attribution).
    "--ignore-scripts",
)
NPM_TIMEOUT_S = 900

__all__ = [
    "DEFAULT_CACHE",
    "DEFAULT_DEST",
    "HLS_JS_RELATIVE",
    "PACKAGE_JSON",
    "PLAYER_PACKAGES",
    "AssetInstallError",
    "all_packages",
    "assets_ready",
    "cache_ready",
    "expected_versions",
    "hls_js_url",
    "install_assets",
    "main",
    "read_manifest",
]


PLAYER_PACKAGES: tuple[offline.VendorPackage, ...] = (
    # The camera player (console.player): HLS in browsers without native HLS (Chrome, Firefox).
    offline.VendorPackage("hls.js", "1.6.15", ("dist/hls.min.js",)),
)
HLS_JS_RELATIVE = f"{PLAYER_PACKAGES[0].folder}/dist/hls.min.js"
"""hls.min.js relative to the vendor folder (served at ``/app/static/vendor/<this>``)."""


def all_packages() -> tuple[offline.VendorPackage, ...]:
    """Every npm package installed and served: the map's, then the player's."""
    return (*offline.PACKAGES, *PLAYER_PACKAGES)


def hls_js_url(base_url: str = offline.DEFAULT_BASE_URL) -> str:
    """The URL the browser loads hls.js from (``/app/static/vendor/hls.js-<v>/dist/hls.min.js``)."""
    return offline.local_url(HLS_JS_RELATIVE, base_url)


def _npm_package_json() -> bytes:
    """What npm installs from: package.json with the player's pins added."""
    data = _check_package_json()
    deps = dict(data.get("dependencies", {}))
    deps.update({p.dep: p.spec for p in PLAYER_PACKAGES})
    data = {**data, "dependencies": dict(sorted(deps.items()))}
    return (json.dumps(data, indent=2) + "\n").encode("utf-8")


class AssetInstallError(RuntimeError):
    """npm is missing, the install failed, or what it installed is not what is pinned."""


def expected_versions() -> dict[str, str]:
    """Vendor sub-folder -> version, as the manifest must record it."""
    versions = {p.folder: p.version for p in all_packages()}
    import folium

    versions[offline.folium_folder()] = folium.__version__
    return versions


def _check_package_json() -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads(PACKAGE_JSON.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise AssetInstallError(f"cannot read {PACKAGE_JSON}: {exc}") from exc
    want = offline.npm_dependencies()
    got = data.get("dependencies", {})
    if got != want:
        raise AssetInstallError(
            f"{PACKAGE_JSON} dependencies do not match layers/offline.py PACKAGES:\n"
            f"  package.json: {json.dumps(got, sort_keys=True)}\n  manifest:     {json.dumps(want, sort_keys=True)}"
        )
    return data


def _installed_version(cache: Path, dep: str) -> str | None:
    try:
        meta = json.loads((cache / "node_modules" / dep / "package.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    version = meta.get("version")
    return version if isinstance(version, str) else None


def cache_ready(cache: Path = DEFAULT_CACHE) -> bool:
    """True when ``cache`` holds an npm install of the current package.json at the pinned versions."""
    try:
        if (cache / "package.json").read_bytes() != _npm_package_json():
            return False
    except (OSError, AssetInstallError):
        return False
    return all(_installed_version(cache, p.dep) == p.version for p in all_packages())


@contextlib.contextmanager
def _lock(folder: Path) -> Iterator[None]:
    """Serialise installs (the app and a test run may start one at the same time)."""
    folder.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not on Linux
        yield
        return
    with open(folder / ".install.lock", "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _npm_install(cache: Path, *, clean: bool) -> None:
    npm = shutil.which("npm")
    if npm is None:
        raise AssetInstallError(
            "npm was not found on PATH; it is needed once to install the map assets "
            "(Debian: apt-get install npm). Then run: python -m console.assets"
        )
    cache.mkdir(parents=True, exist_ok=True)
    if clean:
        shutil.rmtree(cache / "node_modules", ignore_errors=True)
    (cache / "package.json").write_bytes(_npm_package_json())
    env = dict(os.environ)
    env.setdefault("npm_config_update_notifier", "false")
    cmd = [npm, *NPM_INSTALL_ARGS]
    try:
        proc = subprocess.run(  # noqa: S603 - fixed argv, no shell
            cmd, cwd=cache, env=env, capture_output=True, text=True, timeout=NPM_TIMEOUT_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise AssetInstallError(f"npm install timed out after {NPM_TIMEOUT_S}s in {cache}") from exc
    except OSError as exc:
        raise AssetInstallError(f"could not run npm ({npm}): {exc}") from exc
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout or "").strip().splitlines()[-25:])
        raise AssetInstallError(
            f"npm install failed (exit {proc.returncode}) in {cache}; is the npm registry reachable?\n{tail}"
        )
    wrong = [
        f"{p.dep}: want {p.version}, got {_installed_version(cache, p.dep)}"
        for p in all_packages()
        if _installed_version(cache, p.dep) != p.version
    ]
    if wrong:
        raise AssetInstallError("npm installed unexpected versions: " + "; ".join(wrong))


def _copy_into(tmp: Path, cache: Path) -> dict[str, Any]:
    """Copy the referenced files into ``tmp``; return the manifest dict."""
    import folium

    modules = cache / "node_modules"
    packages: dict[str, Any] = {}
    for pkg in all_packages():
        src_root = modules / pkg.dep
        out_root = tmp / pkg.folder
        for rel in pkg.files:
            src = src_root / rel
            if not src.is_file():
                raise AssetInstallError(f"{pkg.name}@{pkg.version} has no file {rel} (looked in {src})")
            (out_root / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, out_root / rel)
        for rel in pkg.dirs:
            src = src_root / rel
            if not src.is_dir():
                raise AssetInstallError(f"{pkg.name}@{pkg.version} has no folder {rel} (looked in {src})")
            shutil.copytree(src, out_root / rel, dirs_exist_ok=True)
        # Licence texts travel with the files (MIT/BSD/OFL ask for it); optional.
        licences = sorted(
            f.name for f in src_root.iterdir() if f.is_file() and f.name.upper().startswith(("LICEN", "MIT-LICEN"))
        )
        for name in licences:
            shutil.copy2(src_root / name, out_root / name)
        packages[pkg.folder] = {
            "npm": f"{pkg.name}@{pkg.version}",
            "dependency": pkg.dep,
            "version": pkg.version,
            "files": list(pkg.files),
            "dirs": list(pkg.dirs),
            "licenses": licences,
        }

    folium_out = tmp / offline.folium_folder()
    folium_src = offline.folium_package_dir()
    for rel in offline.FOLIUM_FILES:
        src = folium_src / rel
        if not src.is_file():
            raise AssetInstallError(f"folium {folium.__version__} has no {rel} (looked in {src})")
        (folium_out / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, folium_out / rel)
    for name, make in offline.GENERATED_FILES.items():
        (folium_out / name).parent.mkdir(parents=True, exist_ok=True)
        (folium_out / name).write_text(make(), encoding="utf-8")
    packages[offline.folium_folder()] = {
        "python": f"folium=={folium.__version__}",
        "version": folium.__version__,
        "files": list(offline.FOLIUM_FILES),
        "generated": sorted(offline.GENERATED_FILES),
    }

    files = sorted(str(p.relative_to(tmp)) for p in tmp.rglob("*") if p.is_file())
    return {
        "format": MANIFEST_FORMAT,
        "generated_by": "python -m console.assets",
        "packages": packages,
        "files": files,
        "total_bytes": sum((tmp / f).stat().st_size for f in files),
    }


def read_manifest(dest: Path = DEFAULT_DEST) -> dict[str, Any] | None:
    try:
        data = json.loads((dest / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def assets_ready(dest: Path = DEFAULT_DEST) -> bool:
    """True when ``dest`` holds every referenced file at the pinned versions."""
    manifest = read_manifest(dest)
    if manifest is None or manifest.get("format") != MANIFEST_FORMAT:
        return False
    packages = manifest.get("packages") or {}
    if {k: (v or {}).get("version") for k, v in packages.items()} != expected_versions():
        return False
    needed = set(offline.vendor_relative_files()) | set(manifest.get("files") or [])
    needed |= {f"{p.folder}/{f}" for p in PLAYER_PACKAGES for f in p.files}
    return all((dest / rel).is_file() for rel in needed)


def install_assets(*, dest: Path = DEFAULT_DEST, cache: Path = DEFAULT_CACHE, force: bool = False) -> Path:
    """Make ``dest`` hold the vendored map assets; return ``dest``.

    Does nothing when ``dest`` is already complete (see :func:`assets_ready`) unless
    ``force``. npm runs only when ``cache`` lacks the pinned versions (always with
    ``force``). The new folder is built beside ``dest`` and swapped in, so a running
    server never sees a half-copied one.
    """
    dest = Path(dest)
    cache = Path(cache)
    _check_package_json()
    if not force and assets_ready(dest):
        return dest
    with _lock(cache):
        if not force and assets_ready(dest):  # another process finished meanwhile
            return dest
        if force or not cache_ready(cache):
            _npm_install(cache, clean=force)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.parent / f".{dest.name}.tmp-{os.getpid()}"
        old = dest.parent / f".{dest.name}.old-{os.getpid()}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        try:
            manifest = _copy_into(tmp, cache)
            (tmp / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n", encoding="utf-8")
            if dest.exists():
                dest.rename(old)
            tmp.rename(dest)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
            shutil.rmtree(old, ignore_errors=True)
    if not assets_ready(dest):  # pragma: no cover - would be a bug in the manifest
        raise AssetInstallError(f"installed {dest} but it is still incomplete")
    return dest


def _summary(dest: Path) -> str:
    manifest = read_manifest(dest) or {}
    lines = [f"map assets in {dest}:"]
    for folder, info in sorted((manifest.get("packages") or {}).items()):
        size = sum(f.stat().st_size for f in (dest / folder).rglob("*") if f.is_file())
        source = info.get("npm") or info.get("python") or "?"
        lines.append(f"  {folder:<38} {source:<46} {size / 1024:8.0f} KiB")
    total = int(manifest.get("total_bytes") or 0)
    lines.append(f"  {len(manifest.get('files') or [])} files, {total / 1024 / 1024:.2f} MiB in total")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m console.assets", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="served vendor folder (%(default)s)")
    parser.add_argument("--cache", type=Path, default=DEFAULT_CACHE, help="npm install folder (%(default)s)")
    parser.add_argument("--force", action="store_true", help="reinstall with npm and recopy")
    parser.add_argument("--check", action="store_true", help="only check; exit 1 if not ready")
    args = parser.parse_args(argv)
    if args.check:
        ready = assets_ready(args.dest)
        print(f"map assets {'ready' if ready else 'MISSING or outdated'} in {args.dest}")
        return 0 if ready else 1
    try:
        install_assets(dest=args.dest, cache=args.cache, force=args.force)
    except AssetInstallError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(_summary(args.dest))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
