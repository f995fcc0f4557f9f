"""Site settings kept in the store: the basemap (none / XYZ / GCJ-02 tiles)."""

from __future__ import annotations

import re

from layers.basemap import BasemapConfig
from store.base import Store

_TEMPLATE = re.compile(r"^https?://[^\s<>\"']+$")


def basemap(store: Store) -> BasemapConfig:
    kind = store.get_setting("basemap.kind", "none") or "none"
    if kind not in ("none", "xyz", "gcj02"):
        kind = "none"
    url = store.get_setting("basemap.url") or None
    attribution = store.get_setting("basemap.attribution", "") or ""
    subdomains = store.get_setting("basemap.subdomains", "abc") or "abc"
    if kind != "none" and not url:
        kind = "none"
    try:
        return BasemapConfig(kind=kind, url=url, attribution=attribution, subdomains=subdomains)  # type: ignore[arg-type]
    except ValueError:  # a stored value no longer valid: fall back to no basemap rather than no map
        return BasemapConfig(kind="none")


def validate_tile_url(url: str) -> bool:
    """An http(s) XYZ template with {z}, {x} and {y} (and nothing that could break out of a string)."""
    return bool(_TEMPLATE.match(url)) and all(p in url for p in ("{z}", "{x}", "{y}"))


def set_basemap(
    store: Store, *, kind: str, url: str | None, attribution: str = "", subdomains: str = "abc"
) -> None:
    """Validate and save the basemap; raises ValueError (nothing saved) on a bad value."""
    if kind not in ("none", "xyz", "gcj02"):
        raise ValueError(f"unknown basemap kind {kind!r}")
    if kind != "none" and not (url and validate_tile_url(url)):
        raise ValueError("the tile URL must be an http(s) template containing {z}, {x} and {y}")
    BasemapConfig(kind=kind, url=url, attribution=attribution, subdomains=subdomains or "abc")  # type: ignore[arg-type]
    with store.transaction():
        store.set_setting("basemap.subdomains", subdomains or "abc")
        store.set_setting("basemap.kind", kind)
        store.set_setting("basemap.url", url or "")
        store.set_setting("basemap.attribution", attribution)
