"""PolygonIndex: point-in-polygon lookups in bulk."""

from __future__ import annotations

import geopandas as gpd
import numpy as np
import pytest
from shapely.geometry import Point, Polygon, box

from geo.crs import CRSError
from geo.locate import PolygonIndex


def _grids() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"code": ["B", "A", None, "C"]},
        geometry=[box(1, 0, 2, 1), box(0, 0, 1, 1), box(0, 0, 2, 1), Polygon()],
        crs=32651,
    )


def test_lookup_inside_outside_border_and_nan() -> None:
    index = PolygonIndex(_grids(), key="code")
    assert len(index) == 2  # the null key and the empty polygon are left out
    got = index.lookup([0.5, 1.5, 1.0, 5.0, np.nan], [0.5, 0.5, 0.5, 5.0, 0.5])
    assert got.tolist() == ["A", "B", "A", None, None]  # the shared border goes to the smaller key


def test_lookup_points_reprojects_a_geoseries() -> None:
    index = PolygonIndex(_grids(), key="code")
    pts = gpd.GeoSeries([Point(1.5, 0.5)], crs=32651).to_crs(4326)
    assert index.lookup_points(pts).tolist() == ["B"]


def test_refuses_frames_without_crs_or_key() -> None:
    with pytest.raises(CRSError):
        PolygonIndex(gpd.GeoDataFrame({"code": ["A"]}, geometry=[box(0, 0, 1, 1)]), key="code")
    with pytest.raises(KeyError):
        PolygonIndex(_grids(), key="nope")
