"""Level-of-detail simplification keeps coverages closed and bounds the coordinates' precision."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
import shapely
from shapely.geometry import Point, box

from geo.errors import CRSError
from geo.lod import decimals_for_zoom, degrees_per_pixel, metres_per_pixel, simplify_for_zoom


def test_pixel_sizes() -> None:
    assert degrees_per_pixel(0) == pytest.approx(360 / 256)
    assert metres_per_pixel(15, lat=0) == pytest.approx(4.777, rel=1e-3)
    assert decimals_for_zoom(10) < decimals_for_zoom(18)


def test_simplify_needs_lonlat() -> None:
    frame = gpd.GeoDataFrame(geometry=[box(0, 0, 1, 1)])
    with pytest.raises(CRSError):
        simplify_for_zoom(frame, zoom=10)
    with pytest.raises(CRSError):
        simplify_for_zoom(frame.set_crs("EPSG:32651"), zoom=10)


def test_coverage_stays_gapless_and_input_unchanged() -> None:
    # two wiggly neighbours sharing one edge
    edge = [(123.84 + i * 1e-4, 42.29 + (1e-5 if i % 2 else 0)) for i in range(30)]
    north = shapely.Polygon(edge + [(edge[-1][0], 42.30), (edge[0][0], 42.30)])
    south = shapely.Polygon(edge + [(edge[-1][0], 42.28), (edge[0][0], 42.28)])
    frame = gpd.GeoDataFrame({"code": ["a", "b"]}, geometry=[north, south.reverse()], crs="EPSG:4326")
    before = frame.copy()
    out = simplify_for_zoom(frame, zoom=12, coverage=True)
    assert frame.geometry.equals(before.geometry)  # not mutated
    assert sum(len(shapely.get_coordinates(g)) for g in out.geometry) < sum(len(shapely.get_coordinates(g)) for g in frame.geometry)
    # still no overlap and no gap along the shared edge
    a, b = out.geometry
    assert a.intersection(b).area == pytest.approx(0, abs=1e-12)
    assert shapely.union_all([a, b]).area == pytest.approx(shapely.union_all([north, south]).area, rel=1e-3)


def test_rounding_follows_zoom() -> None:
    frame = gpd.GeoDataFrame(geometry=[Point(123.123456789, 42.987654321)], crs="EPSG:4326")
    out = simplify_for_zoom(frame, zoom=10)
    x = out.geometry.iloc[0].x
    assert x == pytest.approx(123.123456789, abs=1e-3)
    assert np.round(x, decimals_for_zoom(10)) == x


def test_view_bbox_is_centred_and_scales_with_zoom() -> None:
    from geo.lod import view_bbox

    a = view_bbox(42.3, 123.84, 12, width_px=1000, height_px=500)
    b = view_bbox(42.3, 123.84, 13, width_px=1000, height_px=500)
    assert (a[0] + a[2]) / 2 == pytest.approx(123.84) and (a[1] + a[3]) / 2 == pytest.approx(42.3)
    assert (a[2] - a[0]) == pytest.approx(2 * (b[2] - b[0]))
    assert (a[2] - a[0]) == pytest.approx(1000 * degrees_per_pixel(12))
