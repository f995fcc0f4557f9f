"""Headline figures and the initial view for the whole territory in the store."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd

from store.base import Store
from store.schema import TABLES


@dataclass(frozen=True)
class CitySummary:
    name: str
    grids: int
    households: int
    in_band_share: float
    staff: int
    open_cases: int
    center: tuple[float, float]  # lat, lon
    zoom: int


def city_summary(store: Store, *, stats: pd.DataFrame, unit_code: str | None = None) -> CitySummary | None:
    """Figures for the top unit in the store (or for ``unit_code``, a jurisdiction below it, when
    given and known), or None when there are no grids yet."""
    if len(stats) == 0 or stats["grids"].sum() == 0:
        return None
    top_level = "city" if (stats["level"] == "city").any() else "county"
    top = stats[stats["level"] == top_level]
    if unit_code is not None and str(unit_code) in stats.index:  # one user's jurisdiction
        top = stats.loc[[str(unit_code)]]
    units = store.read("admin_units", where={"code": list(top.index)}, columns=["code"])
    minx, miny, maxx, maxy = units.total_bounds
    return CitySummary(
        name=str(top["name"].iloc[0]),
        grids=int(top["grids"].sum()),
        households=int(top["households"].sum()),
        in_band_share=float(top["in_band"].sum() / max(1, top["grids"].sum())),
        staff=int(top["staff"].sum()),
        open_cases=int(top["open_cases"].sum()),
        center=((miny + maxy) / 2, (minx + maxx) / 2),
        zoom=zoom_to_fit((minx, miny, maxx, maxy)),
    )


def zoom_to_fit(bbox: tuple[float, float, float, float], *, width_px: int = 1200, height_px: int = 650) -> int:
    """The largest web-map zoom at which bbox fits a screen of the given size."""
    minx, miny, maxx, maxy = bbox
    lat = math.radians((miny + maxy) / 2)
    span_x = max(maxx - minx, 1e-6)
    span_y = max((maxy - miny) / max(math.cos(lat), 1e-6), 1e-6)
    zx = math.log2(width_px * 360 / (256 * span_x))
    zy = math.log2(height_px * 360 / (256 * span_y))
    return int(max(3, min(18, math.floor(min(zx, zy)))))


def table_counts(store: Store) -> pd.DataFrame:
    """Rows per table, for the settings page and `gridconsole info`."""
    return pd.DataFrame([{"table": name, "rows": store.count(name)} for name in TABLES])
