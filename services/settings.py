"""Site settings kept in the store: the basemap (none / XYZ / GCJ-02 tiles), the city's time zone."""

from __future__ import annotations

from layers.basemap import BasemapConfig
from store.base import Store


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
    """An http(s) XYZ template with {z}, {x} and {y}, by the rules of BasemapConfig."""
    try:
        BasemapConfig(kind="xyz", url=url)
    except ValueError:
        return False
    return True


def set_basemap(
    store: Store, *, kind: str, url: str | None, attribution: str = "", subdomains: str = "abc"
) -> None:
    """Validate (BasemapConfig's rules) and save the basemap; ValueError and nothing saved if bad."""
    if kind not in ("none", "xyz", "gcj02"):
        raise ValueError(f"unknown basemap kind {kind!r}")
    BasemapConfig(kind=kind, url=url, attribution=attribution, subdomains=subdomains or "abc")  # type: ignore[arg-type]
    with store.transaction():
        store.set_setting("basemap.subdomains", subdomains or "abc")
        store.set_setting("basemap.kind", kind)
        store.set_setting("basemap.url", url or "")
        store.set_setting("basemap.attribution", attribution)


DEFAULT_TZ = "Asia/Shanghai"


def city_tz(store: Store) -> str:
    """The city's time zone (setting ``tz``): what a "day" means for patrols, presence and KPIs."""
    return store.get_setting("tz", DEFAULT_TZ) or DEFAULT_TZ
