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


# ------------------------------------------------------------------------------ track retention

RETENTION_KEY = "tracks.retention_days"
RETENTION_DEFAULT_DAYS = 180
RETENTION_MAX_DAYS = 3650


def parse_retention_days(value: object) -> int:
    """``tracks.retention_days`` from a form field or the settings table: a whole number of days
    0..3650 (0, or an empty value, keeps tracks forever); ValueError otherwise."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return 0
    if isinstance(value, bool):
        raise ValueError("the retention is a whole number of days")
    try:
        days = int(str(value).strip()) if not isinstance(value, int) else value
    except ValueError:
        raise ValueError(f"the retention is a whole number of days, not {value!r}") from None
    if not 0 <= days <= RETENTION_MAX_DAYS:
        raise ValueError(f"the retention is 0 (keep forever) to {RETENTION_MAX_DAYS} days, not {days}")
    return days


def retention_days(store: Store) -> int:
    """How many days of GPS tracks are kept (setting ``tracks.retention_days``, default 180; 0:
    forever). A stored value no longer valid counts as the default, never as "delete everything"."""
    raw = store.get_setting(RETENTION_KEY)
    if raw is None:
        return RETENTION_DEFAULT_DAYS
    try:
        return parse_retention_days(raw)
    except ValueError:
        return RETENTION_DEFAULT_DAYS


def set_retention_days(store: Store, days: object) -> int:
    """Validate (``parse_retention_days``) and save the track retention; the days saved. ValueError
    and nothing saved if bad."""
    value = parse_retention_days(days)
    store.set_setting(RETENTION_KEY, str(value))
    return value
