"""Shared fixtures for the geo tests: synthetic communities and the awkward-geometry catalogue."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import geopandas as gpd
import numpy as np
import pytest
import shapely

# Make `geo` and `tests.fixtures` importable however pytest was started.
_ROOT = str(Path(__file__).resolve().parents[2])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

UTM51N = "EPSG:32651"  # Tieling's UTM zone
# Roughly Tieling (lon 123.84, lat 42.29) in UTM 51N.
ORIGIN = (569_250.0, 4_682_317.0)

CommunityFactory = Callable[..., gpd.GeoDataFrame]


def make_community(
    n: int,
    *,
    max_households: int = 60,
    households: int | None = None,
    layout: str = "rows",
    seed: int = 0,
    crs: str = UTM51N,
) -> gpd.GeoDataFrame:
    """``n`` rectangular buildings near Tieling with random household counts 1..max_households
    (or a constant ``households``). ``layout``: "rows" (blocks in rows 30 m apart, jittered) or
    "random" (uniform scatter at about one building per 1,600 m²)."""
    rng = np.random.default_rng(seed)
    if layout == "rows":
        side = int(np.ceil(np.sqrt(n)))
        grid = np.stack(np.meshgrid(np.arange(side), np.arange(side)), axis=-1).reshape(-1, 2)[:n]
        xy = grid * np.array([30.0, 30.0]) + rng.normal(0.0, 3.0, (n, 2))
    elif layout == "random":
        xy = rng.uniform(0.0, 1.0, (n, 2)) * np.sqrt(n) * 40.0
    else:
        raise ValueError(layout)
    xy = xy + np.array(ORIGIN)
    half_w = rng.uniform(4.0, 8.0, n)
    half_d = rng.uniform(3.0, 6.0, n)
    boxes = shapely.box(xy[:, 0] - half_w, xy[:, 1] - half_d, xy[:, 0] + half_w, xy[:, 1] + half_d)
    hh = np.full(n, households) if households is not None else rng.integers(1, max_households + 1, n)
    frame = gpd.GeoDataFrame({"households": hh.astype(np.int64)}, geometry=boxes, crs=UTM51N)
    frame.index = frame.index + 1000  # a non-default index, to catch positional/label mix-ups
    return frame if crs == UTM51N else frame.to_crs(crs)


@pytest.fixture
def community() -> CommunityFactory:
    return make_community


@pytest.fixture
def tieling_boundary_utm() -> Callable[[gpd.GeoDataFrame], shapely.Polygon]:
    """A concave boundary comfortably around a frame's buildings (in the frame's CRS units)."""

    def build(frame: gpd.GeoDataFrame) -> shapely.Polygon:
        x0, y0, x1, y1 = frame.total_bounds
        w, h = x1 - x0, y1 - y0
        return shapely.Polygon(
            [
                (x0 - 0.05 * w, y0 - 0.05 * h),
                (x1 + 0.06 * w, y0 - 0.02 * h),
                (x1 + 0.03 * w, y1 + 0.07 * h),
                ((x0 + x1) / 2, y1 - 0.1 * h),  # a notch in the north edge
                (x0 - 0.04 * w, y1 + 0.04 * h),
            ]
        )

    return build
