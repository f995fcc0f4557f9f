"""Which polygon a point lies in, for many points at once, against a fixed set of polygons.

``PolygonIndex`` is built once (an STRtree over, say, a city's 12,000 micro-grids) and answers
point lookups in bulk; the position ingest uses it to stamp every GPS fix with its grid. Points and
polygons must share a CRS; point-in-polygon is topological, so lon/lat works as well as metres.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pandas as pd
import shapely

from geo.crs import require_crs

__all__ = ["PolygonIndex"]


class PolygonIndex:
    """Point-in-polygon lookups against ``polygons`` (a GeoDataFrame with a CRS); the answer for
    a point is the ``key`` value of the polygon containing it (on a shared border: the smallest
    key), or None outside every polygon. Polygons with an empty or missing geometry or a null key
    are never found."""

    def __init__(self, polygons: gpd.GeoDataFrame, *, key: str) -> None:
        require_crs(polygons)
        if key not in polygons.columns:
            raise KeyError(f"the polygons have no column {key!r}")
        geoms = np.asarray(polygons.geometry.values, dtype=object)
        keys = polygons[key].to_numpy(dtype=object)
        keep = ~(shapely.is_missing(geoms) | shapely.is_empty(geoms) | np.asarray(pd.isna(keys), dtype=bool))
        order = np.argsort(keys[keep], kind="stable")
        self.crs = polygons.crs
        self._geoms = geoms[keep][order]
        self._keys = keys[keep][order]
        shapely.prepare(self._geoms)
        self._tree = shapely.STRtree(self._geoms)

    def __len__(self) -> int:
        return len(self._keys)

    def lookup(self, x: npt.ArrayLike, y: npt.ArrayLike) -> npt.NDArray[Any]:
        """Keys (object array, None outside) for points at ``x``, ``y`` in the index's CRS."""
        xs = np.asarray(x, dtype="float64")
        ys = np.asarray(y, dtype="float64")
        out = np.full(len(xs), None, dtype=object)
        ok = np.isfinite(xs) & np.isfinite(ys)
        if not ok.any() or not len(self._keys):
            return out
        pts = shapely.points(xs[ok], ys[ok])
        pi, gi = self._tree.query(pts, predicate="intersects")
        if len(pi):
            # keep the first hit per point: the smallest key, since the tree is built in key order
            order = np.lexsort((gi, pi))
            pi, gi = pi[order], gi[order]
            first = np.r_[True, pi[1:] != pi[:-1]]
            idx = np.flatnonzero(ok)
            out[idx[pi[first]]] = self._keys[gi[first]]
        return out

    def lookup_points(self, points: Sequence[Any] | gpd.GeoSeries) -> npt.NDArray[Any]:
        """Keys for shapely Points (a GeoSeries must be in the index's CRS)."""
        if isinstance(points, gpd.GeoSeries):
            require_crs(points)
            if points.crs != self.crs:
                points = points.to_crs(self.crs)
        arr = np.asarray(points, dtype=object)
        return self.lookup(shapely.get_x(arr), shapely.get_y(arr))
