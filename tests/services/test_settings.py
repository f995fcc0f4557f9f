"""Basemap settings: validated before saving, read back as a config — on both stores."""

from __future__ import annotations

import pytest

from services.settings import basemap, set_basemap, validate_tile_url


def test_default_is_no_basemap(store) -> None:  # type: ignore[no-untyped-def]
    assert basemap(store).kind == "none"


def test_intranet_xyz_roundtrip(store) -> None:  # type: ignore[no-untyped-def]
    url = "http://t{s}.tianditu.gov.cn/vec_w/wmts?TILEMATRIX={z}&TILEROW={y}&TILECOL={x}&tk=KEY"
    set_basemap(store, kind="xyz", url=url, attribution="天地图", subdomains="01234567")
    cfg = basemap(store)
    assert (cfg.kind, cfg.url, cfg.attribution, cfg.subdomains) == ("xyz", url, "天地图", "01234567")


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)//{z}/{x}/{y}",
        "http://tiles/{z}/{x}.png",
        "http://tiles/{z}/{x}/{y}.png'><script>",
        "ftp://tiles/{z}/{x}/{y}.png",
        "",
    ],
)
def test_bad_tile_urls_are_refused_and_nothing_changes(store, url: str) -> None:  # type: ignore[no-untyped-def]
    assert not validate_tile_url(url)
    with pytest.raises(ValueError):
        set_basemap(store, kind="gcj02", url=url)
    assert basemap(store).kind == "none"
