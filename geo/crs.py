"""Coordinate reference systems: checks, metric projections and the Chinese datum shifts.

Conventions
-----------
* Coordinates are always ``(lon, lat)`` / ``(x, y)`` order, as in shapely and geopandas.
* Official data is CGCS2000 (EPSG:4490), which is within centimetres of WGS84 (EPSG:4326);
  the two are treated as equivalent and a 4490 frame is simply relabelled.
* Chinese web basemaps use GCJ-02 (AMap, Tencent) or BD-09 (Baidu). Neither is an EPSG CRS:
  they are obfuscated lon/lat offsets of a few hundred metres. :func:`parse_crs` returns the
  marker strings ``"gcj02"`` / ``"bd09"`` for them and :func:`to_wgs84` / :func:`from_wgs84`
  shift the coordinates.
* A frame produced by :func:`from_wgs84` is labelled EPSG:4326 (so mapping libraries accept it)
  but holds shifted coordinates; ``frame.attrs["datum_shift"]`` records ``"gcj02"``/``"bd09"`` and
  :func:`to_wgs84` honours it.

The GCJ-02 and BD-09 formulas are the widely published reverse-engineered ones (as in the
eviltransform and coordtransform projects); the GCJ-02 inverse here is iterative (fixed point),
accurate to well under a centimetre, not the one-step approximation those projects ship.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any, Literal, TypeVar, overload

import geopandas as gpd
import numpy as np
import numpy.typing as npt
import pyproj
import shapely
from pyproj.exceptions import CRSError as _PyprojCRSError

from geo._types import FloatArray
from geo.errors import CRSError

__all__ = [
    "BD09",
    "CGCS2000",
    "GCJ02",
    "WGS84",
    "bd09_to_gcj02",
    "bd09_to_wgs84",
    "from_wgs84",
    "gcj02_to_bd09",
    "gcj02_to_wgs84",
    "metric_crs",
    "out_of_china",
    "parse_crs",
    "require_crs",
    "shift_geometries",
    "to_lonlat",
    "to_metric",
    "to_wgs84",
    "utm_crs",
    "wgs84_to_bd09",
    "wgs84_to_gcj02",
]

WGS84 = "EPSG:4326"
CGCS2000 = "EPSG:4490"
GCJ02 = "gcj02"
BD09 = "bd09"

LonLatFunc = Callable[..., tuple[Any, Any]]
G = TypeVar("G")

_WGS84_CRS = pyproj.CRS.from_epsg(4326)
_CGCS2000_CRS = pyproj.CRS.from_epsg(4490)
_DATUM_SHIFT_ATTR = "datum_shift"


# --------------------------------------------------------------------------------------------
# CRS checks and metric projections
# --------------------------------------------------------------------------------------------


def require_crs(frame: Any) -> None:
    """Raise :class:`CRSError` if ``frame`` (a GeoDataFrame or GeoSeries) has no CRS."""
    if getattr(frame, "crs", None) is None:
        kind = type(frame).__name__
        raise CRSError(
            f"the {kind} has no coordinate reference system (crs is None); "
            "set one with .set_crs(...) — e.g. 'EPSG:4490' for CGCS2000 or 'EPSG:4326' for GPS data"
        )


def utm_crs(lon: float, lat: float) -> pyproj.CRS:
    """The WGS84 / UTM zone CRS (EPSG:326xx north, 327xx south) containing ``(lon, lat)``.

    Tieling (lon 123.84) is in zone 51N, EPSG:32651.
    """
    lon_f, lat_f = float(lon), float(lat)
    if not (math.isfinite(lon_f) and math.isfinite(lat_f)):
        raise CRSError(f"cannot choose a UTM zone for a non-finite position ({lon!r}, {lat!r})")
    if not (-180.0 <= lon_f <= 180.0 and -90.0 <= lat_f <= 90.0):
        raise CRSError(f"({lon_f}, {lat_f}) is not a longitude/latitude position")
    zone = min(int((lon_f + 180.0) // 6.0) + 1, 60)
    return pyproj.CRS.from_epsg((32600 if lat_f >= 0 else 32700) + zone)


def _centre_lonlat(frame: Any) -> tuple[float, float]:
    """Centre of the frame's total bounds, as (lon, lat)."""
    minx, miny, maxx, maxy = (float(v) for v in frame.total_bounds)
    if not all(math.isfinite(v) for v in (minx, miny, maxx, maxy)):
        raise CRSError(
            "cannot choose a metric CRS: the frame has no finite coordinates (empty, null or NaN geometries)"
        )
    cx, cy = (minx + maxx) / 2.0, (miny + maxy) / 2.0
    crs = pyproj.CRS.from_user_input(frame.crs)
    if crs.is_geographic:
        return cx, cy
    transformer = pyproj.Transformer.from_crs(crs, _WGS84_CRS, always_xy=True)
    lon, lat = transformer.transform(cx, cy)
    return float(lon), float(lat)


def metric_crs(frame: Any) -> pyproj.CRS:
    """The UTM zone CRS :func:`to_metric` would use for ``frame`` (centre of its bounds)."""
    require_crs(frame)
    return utm_crs(*_centre_lonlat(frame))


def to_metric(frame: G, *, crs: pyproj.CRS | str | None = None) -> G:
    """Project a GeoDataFrame/GeoSeries to metres.

    By default to the UTM zone of the frame's centre (:func:`metric_crs`); pass ``crs`` to force a
    given metric CRS (e.g. to put two frames in the same zone). Raises :class:`CRSError` if the
    frame has no CRS. Returns a new object.
    """
    require_crs(frame)
    target = metric_crs(frame) if crs is None else pyproj.CRS.from_user_input(crs)
    return frame.to_crs(target)  # type: ignore[attr-defined,no-any-return]


def to_lonlat(frame: G) -> G:
    """Reproject a GeoDataFrame/GeoSeries to WGS84 lon/lat (EPSG:4326). Returns a new object."""
    require_crs(frame)
    return frame.to_crs(WGS84)  # type: ignore[attr-defined,no-any-return]


# --------------------------------------------------------------------------------------------
# GCJ-02 / BD-09 datum shifts (vectorised)
# --------------------------------------------------------------------------------------------

# Krasovsky 1940 semi-major axis and eccentricity squared, as used by the GCJ-02 algorithm.
_GCJ_A = 6378245.0
_GCJ_EE = 0.00669342162296594323
_BD_X_PI = math.pi * 3000.0 / 180.0
# The rough "mainland China" box used by coordtransform (lon 73.66–135.05, lat 3.86–53.55).
_CHINA_BOX = (73.66, 3.86, 135.05, 53.55)
_GCJ_INVERSE_TOL = 1e-12  # degrees, ~0.1 micrometre
_GCJ_INVERSE_MAX_ITER = 30


def out_of_china(lon: npt.ArrayLike, lat: npt.ArrayLike) -> npt.NDArray[np.bool_]:
    """True where a point is outside the rough mainland-China box (or is NaN)."""
    lon_a = np.asarray(lon, dtype=np.float64)
    lat_a = np.asarray(lat, dtype=np.float64)
    minx, miny, maxx, maxy = _CHINA_BOX
    inside = (lon_a > minx) & (lon_a < maxx) & (lat_a > miny) & (lat_a < maxy)
    return np.asarray(~inside)


def _gcj_delta(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    """GCJ-02 offset (dlon, dlat) in degrees at WGS84 position (lon, lat), no China test."""
    x = lon - 105.0
    y = lat - 35.0
    sqrt_abs_x = np.sqrt(np.abs(x))
    common = (20.0 * np.sin(6.0 * x * math.pi) + 20.0 * np.sin(2.0 * x * math.pi)) * 2.0 / 3.0
    dlat = -100.0 + 2.0 * x + 3.0 * y + 0.2 * y * y + 0.1 * x * y + 0.2 * sqrt_abs_x
    dlat = dlat + common
    dlat = dlat + (20.0 * np.sin(y * math.pi) + 40.0 * np.sin(y / 3.0 * math.pi)) * 2.0 / 3.0
    dlat = dlat + (160.0 * np.sin(y / 12.0 * math.pi) + 320.0 * np.sin(y * math.pi / 30.0)) * 2.0 / 3.0
    dlon = 300.0 + x + 2.0 * y + 0.1 * x * x + 0.1 * x * y + 0.1 * sqrt_abs_x
    dlon = dlon + common
    dlon = dlon + (20.0 * np.sin(x * math.pi) + 40.0 * np.sin(x / 3.0 * math.pi)) * 2.0 / 3.0
    dlon = dlon + (150.0 * np.sin(x / 12.0 * math.pi) + 300.0 * np.sin(x / 30.0 * math.pi)) * 2.0 / 3.0
    rad_lat = lat / 180.0 * math.pi
    magic = 1.0 - _GCJ_EE * np.sin(rad_lat) ** 2
    sqrt_magic = np.sqrt(magic)
    dlat = (dlat * 180.0) / ((_GCJ_A * (1.0 - _GCJ_EE)) / (magic * sqrt_magic) * math.pi)
    dlon = (dlon * 180.0) / (_GCJ_A / sqrt_magic * np.cos(rad_lat) * math.pi)
    return dlon, dlat


def _as_arrays(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    lon_a, lat_a = np.broadcast_arrays(np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64))
    return np.array(lon_a, dtype=np.float64), np.array(lat_a, dtype=np.float64)


def _wgs84_to_gcj02(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    inside = ~out_of_china(lon, lat)
    out_lon, out_lat = lon.copy(), lat.copy()
    if inside.any():
        dlon, dlat = _gcj_delta(lon[inside], lat[inside])
        out_lon[inside] += dlon
        out_lat[inside] += dlat
    return out_lon, out_lat


def _gcj02_to_wgs84(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    inside = ~out_of_china(lon, lat)
    out_lon, out_lat = lon.copy(), lat.copy()
    if not inside.any():
        return out_lon, out_lat
    g_lon, g_lat = lon[inside], lat[inside]
    # Solve w + delta(w) = g by fixed-point iteration; delta varies slowly (|d delta / dw| << 1),
    # so each step gains several digits. Converges to ~1e-12 degrees in 3–5 steps.
    w_lon, w_lat = g_lon.copy(), g_lat.copy()
    for _ in range(_GCJ_INVERSE_MAX_ITER):
        dlon, dlat = _gcj_delta(w_lon, w_lat)
        err_lon = w_lon + dlon - g_lon
        err_lat = w_lat + dlat - g_lat
        w_lon -= err_lon
        w_lat -= err_lat
        if max(float(np.max(np.abs(err_lon))), float(np.max(np.abs(err_lat)))) < _GCJ_INVERSE_TOL:
            break
    out_lon[inside] = w_lon
    out_lat[inside] = w_lat
    return out_lon, out_lat


def _bd09_forward(x: FloatArray, y: FloatArray) -> tuple[FloatArray, FloatArray]:
    """GCJ-02 → BD-09 without the China test."""
    z = np.hypot(x, y) + 0.00002 * np.sin(y * _BD_X_PI)
    theta = np.arctan2(y, x) + 0.000003 * np.cos(x * _BD_X_PI)
    return z * np.cos(theta) + 0.0065, z * np.sin(theta) + 0.006


def _gcj02_to_bd09(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    inside = ~out_of_china(lon, lat)
    out_lon, out_lat = lon.copy(), lat.copy()
    out_lon[inside], out_lat[inside] = _bd09_forward(lon[inside], lat[inside])
    return out_lon, out_lat


def _bd09_to_gcj02(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    inside = ~out_of_china(lon, lat)
    out_lon, out_lat = lon.copy(), lat.copy()
    if not inside.any():
        return out_lon, out_lat
    b_lon, b_lat = lon[inside], lat[inside]
    # The published closed-form inverse is only good to ~0.2 m; refine it by fixed-point
    # iteration on the forward formula so that a BD-09 round trip is exact to ~1e-12 degrees.
    x, y = b_lon - 0.0065, b_lat - 0.006
    z = np.hypot(x, y) - 0.00002 * np.sin(y * _BD_X_PI)
    theta = np.arctan2(y, x) - 0.000003 * np.cos(x * _BD_X_PI)
    g_lon, g_lat = z * np.cos(theta), z * np.sin(theta)
    for _ in range(_GCJ_INVERSE_MAX_ITER):
        f_lon, f_lat = _bd09_forward(g_lon, g_lat)
        err_lon, err_lat = f_lon - b_lon, f_lat - b_lat
        g_lon, g_lat = g_lon - err_lon, g_lat - err_lat
        if max(float(np.max(np.abs(err_lon))), float(np.max(np.abs(err_lat)))) < _GCJ_INVERSE_TOL:
            break
    out_lon[inside], out_lat[inside] = g_lon, g_lat
    return out_lon, out_lat


def _wgs84_to_bd09(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    return _gcj02_to_bd09(*_wgs84_to_gcj02(lon, lat))


def _bd09_to_wgs84(lon: FloatArray, lat: FloatArray) -> tuple[FloatArray, FloatArray]:
    return _gcj02_to_wgs84(*_bd09_to_gcj02(lon, lat))


def _public(
    impl: Callable[[FloatArray, FloatArray], tuple[FloatArray, FloatArray]],
    lon: npt.ArrayLike,
    lat: npt.ArrayLike,
) -> tuple[Any, Any]:
    lon_a, lat_a = _as_arrays(lon, lat)
    out_lon, out_lat = impl(lon_a, lat_a)
    if out_lon.ndim == 0:
        return float(out_lon), float(out_lat)
    return out_lon, out_lat


@overload
def wgs84_to_gcj02(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def wgs84_to_gcj02(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]: ...
def wgs84_to_gcj02(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[Any, Any]:
    """WGS84 → GCJ-02 (AMap/Tencent). Scalars give floats, arrays give arrays; outside China unchanged."""
    return _public(_wgs84_to_gcj02, lon, lat)


@overload
def gcj02_to_wgs84(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def gcj02_to_wgs84(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]: ...
def gcj02_to_wgs84(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[Any, Any]:
    """GCJ-02 → WGS84 by iterating the forward formula (error far below 1 cm)."""
    return _public(_gcj02_to_wgs84, lon, lat)


@overload
def gcj02_to_bd09(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def gcj02_to_bd09(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]: ...
def gcj02_to_bd09(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[Any, Any]:
    """GCJ-02 → BD-09 (Baidu)."""
    return _public(_gcj02_to_bd09, lon, lat)


@overload
def bd09_to_gcj02(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def bd09_to_gcj02(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]: ...
def bd09_to_gcj02(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[Any, Any]:
    """BD-09 → GCJ-02: the published closed form refined iteratively (exact inverse of gcj02_to_bd09)."""
    return _public(_bd09_to_gcj02, lon, lat)


@overload
def wgs84_to_bd09(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def wgs84_to_bd09(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]: ...
def wgs84_to_bd09(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[Any, Any]:
    """WGS84 → BD-09 (via GCJ-02)."""
    return _public(_wgs84_to_bd09, lon, lat)


@overload
def bd09_to_wgs84(lon: float, lat: float) -> tuple[float, float]: ...
@overload
def bd09_to_wgs84(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[FloatArray, FloatArray]: ...
def bd09_to_wgs84(lon: npt.ArrayLike, lat: npt.ArrayLike) -> tuple[Any, Any]:
    """BD-09 → WGS84 (via GCJ-02, iterative inverse)."""
    return _public(_bd09_to_wgs84, lon, lat)


_SHIFTS: dict[tuple[str, str], LonLatFunc] = {
    (GCJ02, "wgs84"): gcj02_to_wgs84,
    (BD09, "wgs84"): bd09_to_wgs84,
    ("wgs84", GCJ02): wgs84_to_gcj02,
    ("wgs84", BD09): wgs84_to_bd09,
}


def shift_geometries(geoms: G, func: LonLatFunc) -> G:
    """Apply a vectorised ``(lon, lat) -> (lon, lat)`` function to every coordinate.

    ``geoms`` may be a GeoSeries (index, name and CRS label are kept — relabel the CRS yourself if the
    shift changes its meaning), a numpy array of shapely geometries, or a single geometry; the same
    type is returned. Z values are passed through unchanged. Inputs are not modified.
    """

    def _apply(x: FloatArray, y: FloatArray, z: FloatArray | None = None) -> Any:
        new_x, new_y = func(x, y)
        new_x = np.asarray(new_x, dtype=np.float64)
        new_y = np.asarray(new_y, dtype=np.float64)
        return (new_x, new_y) if z is None else (new_x, new_y, z)

    # shapely's stubs only describe the interleaved single-argument form of `transform`.
    transform: Any = shapely.transform
    if isinstance(geoms, gpd.GeoSeries):
        values = np.asarray(geoms.values, dtype=object)
        shifted = transform(values, _apply, include_z=None, interleaved=False)
        return gpd.GeoSeries(shifted, index=geoms.index, crs=geoms.crs, name=geoms.name)  # type: ignore[no-any-return]
    if isinstance(geoms, shapely.Geometry):
        return transform(geoms, _apply, include_z=None, interleaved=False)  # type: ignore[no-any-return]
    return transform(np.asarray(geoms, dtype=object), _apply, include_z=None, interleaved=False)  # type: ignore[no-any-return]


# --------------------------------------------------------------------------------------------
# Parsing CRS names and converting frames
# --------------------------------------------------------------------------------------------

_MARKER_ALIASES = {
    "gcj02": GCJ02,
    "gcj": GCJ02,
    "mars": GCJ02,
    "amap": GCJ02,
    "bd09": BD09,
    "bd09ll": BD09,
    "baidu": BD09,
}
_NAMED_CRS = {"wgs84": _WGS84_CRS, "cgcs2000": _CGCS2000_CRS}


def parse_crs(text: str | int | pyproj.CRS) -> str | pyproj.CRS:
    """Parse a CRS name as a person would type it.

    ``"gcj02"``, ``"GCJ-02"`` → the marker ``"gcj02"``; ``"bd09"``, ``"BD-09"`` → ``"bd09"``;
    ``"wgs84"`` → EPSG:4326; ``"cgcs2000"`` → EPSG:4490; anything else pyproj understands
    (``"EPSG:4490"``, ``4547``, a WKT or PROJ string) → ``pyproj.CRS``. Raises :class:`CRSError`.
    """
    if isinstance(text, pyproj.CRS):
        return text
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise CRSError(f"expected a CRS name such as 'EPSG:4490' or 'gcj02', got {type(text).__name__}")
    if isinstance(text, str):
        stripped = text.strip()
        if not stripped:
            raise CRSError("empty CRS name; expected e.g. 'EPSG:4490', 'wgs84', 'gcj02' or 'bd09'")
        key = re.sub(r"[\s_\-]", "", stripped.lower())
        if key in _MARKER_ALIASES:
            return _MARKER_ALIASES[key]
        if key in _NAMED_CRS:
            return _NAMED_CRS[key]
        user_input: str | int = stripped
    else:
        user_input = text
    try:
        return pyproj.CRS.from_user_input(user_input)
    except _PyprojCRSError as exc:
        raise CRSError(
            f"unknown coordinate reference system {text!r}; expected e.g. 'EPSG:4490' (CGCS2000), "
            "'EPSG:4326' (WGS84), 'gcj02' (AMap/Tencent) or 'bd09' (Baidu)"
        ) from exc


def _is_lonlat_equivalent(crs: pyproj.CRS) -> bool:
    """EPSG:4326 or EPSG:4490 (CGCS2000, within centimetres of WGS84)."""
    epsg = crs.to_epsg()
    return epsg in (4326, 4490)


def _shift_frame(frame: Any, func: LonLatFunc, marker: str | None) -> Any:
    out = frame.copy()
    geometry_name = out.geometry.name if isinstance(out, gpd.GeoDataFrame) else None
    shifted = shift_geometries(out.geometry if geometry_name else out, func)
    if geometry_name is not None:
        out[geometry_name] = gpd.GeoSeries(shifted, index=out.index, crs=None)
        out = out.set_crs(WGS84, allow_override=True)
    else:
        out = shifted.set_crs(WGS84, allow_override=True)
    out.attrs = dict(frame.attrs)
    if marker is None:
        out.attrs.pop(_DATUM_SHIFT_ATTR, None)
    else:
        out.attrs[_DATUM_SHIFT_ATTR] = marker
    return out


def to_wgs84(frame: G, *, source: str | pyproj.CRS | None = None) -> G:
    """Return a copy of ``frame`` in WGS84 lon/lat (EPSG:4326).

    ``source`` says what the coordinates really are, overriding ``frame.crs``:
    ``None`` uses ``frame.crs`` (error if none; a frame made by :func:`from_wgs84` is shifted back);
    ``"gcj02"``/``"bd09"`` shifts the coordinates; EPSG:4490 (CGCS2000) is just relabelled;
    any other CRS is reprojected.
    """
    if source is None:
        require_crs(frame)
        marker = getattr(frame, "attrs", {}).get(_DATUM_SHIFT_ATTR)
        if marker in (GCJ02, BD09):
            return _shift_frame(frame, _SHIFTS[(marker, "wgs84")], None)  # type: ignore[no-any-return]
        parsed: str | pyproj.CRS = pyproj.CRS.from_user_input(frame.crs)  # type: ignore[attr-defined]
    else:
        parsed = parse_crs(source)
    if isinstance(parsed, str):  # gcj02 / bd09 marker
        current = getattr(frame, "crs", None)
        if current is not None and not pyproj.CRS.from_user_input(current).is_geographic:
            raise CRSError(
                f"source {parsed!r} means longitude/latitude coordinates, but the frame's CRS "
                f"({pyproj.CRS.from_user_input(current).name}) is projected"
            )
        return _shift_frame(frame, _SHIFTS[(parsed, "wgs84")], None)  # type: ignore[no-any-return]
    if _is_lonlat_equivalent(parsed):
        out = frame.copy()  # type: ignore[attr-defined]
        out = out.set_crs(WGS84, allow_override=True)
        out.attrs.pop(_DATUM_SHIFT_ATTR, None)
        return out  # type: ignore[no-any-return]
    target: Any = frame.set_crs(parsed, allow_override=True) if source is not None else frame  # type: ignore[attr-defined]
    return target.to_crs(WGS84)  # type: ignore[no-any-return]


def from_wgs84(frame: G, *, target: Literal["gcj02", "bd09"] | str) -> G:
    """Shift a frame to GCJ-02 or BD-09 for display on Chinese web basemaps.

    The frame is first brought to WGS84 (:func:`to_wgs84`). The result is labelled EPSG:4326 so that
    mapping libraries accept it, with ``attrs["datum_shift"]`` set to the target; do not use it for
    analysis.
    """
    parsed = parse_crs(target)
    if parsed not in (GCJ02, BD09):
        raise CRSError(f"target must be 'gcj02' or 'bd09', got {target!r}")
    assert isinstance(parsed, str)
    wgs = to_wgs84(frame)
    return _shift_frame(wgs, _SHIFTS[("wgs84", parsed)], parsed)  # type: ignore[no-any-return]
