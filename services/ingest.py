"""Position ingest: phones' GPS fixes in, checked, stamped and committed.

What arrives (parsed here, served over HTTP by ``api/``):

- the **OsmAnd protocol** as Traccar Client sends it: one fix per request, as query-string or
  form fields ``id``/``deviceid``, ``timestamp`` (Unix seconds, milliseconds or ISO 8601),
  ``lat``, ``lon`` (or ``location=lat,lon``), ``speed`` (knots), ``bearing``, ``altitude``,
  ``accuracy``, ``batt`` (percent), ``charge``;
- the **newer Traccar Client JSON body**: ``{"device_id": ..., "location": {"timestamp": ISO,
  "coords": {"latitude", "longitude", "speed" (m/s), "heading", "altitude", "accuracy"},
  "battery": {"level": 0..1, "is_charging"}}}``;
- **batches** buffered offline by an app: ``{"positions": [{"device_id", "timestamp", "lat", "lon",
  "speed" (m/s), "bearing", "altitude", "accuracy", "battery" (percent), "charging"}, ...]}``.

A fix is refused with a :class:`Rejected` (an HTTP 4xx status and a sentence) when its device is
unknown, a required field is missing or not a number, the coordinates are out of range, NaN, swapped
or far outside the service region, or its time is far in the future or too old. Optional fields
with impossible values (negative speed, battery 140 %) are dropped, not the fix.

:class:`Ingestor` commits accepted fixes in one transaction per call: the history (``positions``;
a fix already stored -- same staff member and time -- is a duplicate and is acknowledged without a
second copy), the latest position per staff member (never moved back in time by late arrivals),
and grid presence per local day. GPS jumps (impossible speed, ``geo.tracks.flag_jumps``) are
stored flagged and kept out of the latest position, tracks and statistics. Each fix gets the grid it
lies in.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import geopandas as gpd
import numpy as np
import pandas as pd
import shapely

from geo.locate import PolygonIndex
from geo.tracks import flag_jumps
from services.settings import city_tz
from store import Range
from store.base import BBox, Store

log = logging.getLogger("gridconsole.ingest")

KNOT_MPS = 1852.0 / 3600.0


class Rejected(ValueError):
    """A fix refused: ``status`` is the HTTP status (400 malformed, 403 unknown device, 422
    impossible values), the message a sentence for the phone's operator and the log."""

    def __init__(self, message: str, *, status: int = 422, device_id: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.device_id = device_id


@dataclass(frozen=True)
class Fix:
    """One parsed GPS fix (WGS84; speed in m/s; ts in UTC)."""

    device_id: str
    ts: pd.Timestamp
    lon: float
    lat: float
    speed: float | None = None
    bearing: float | None = None
    altitude: float | None = None
    accuracy: float | None = None
    battery: float | None = None
    charging: bool | None = None


@dataclass(frozen=True)
class IngestConfig:
    """Limits of the ingest. ``region`` (lon/lat bbox) is where fixes may lie; None derives it
    from the city's admin units plus ``region_margin_deg``."""

    region: BBox | None = None
    region_margin_deg: float = 0.2
    max_future_s: float = 300.0  # a phone clock this far ahead is wrong
    max_age_days: float = 30.0  # older buffered fixes are refused
    max_speed_mps: float = 40.0  # faster moves are GPS jumps (kept, flagged)
    tz: str | None = None  # the city's time zone (days of grid presence); None: the setting ``tz``
    device_refresh_s: float = 60.0
    grid_refresh_s: float = 300.0


@dataclass
class IngestResult:
    """Per fix, in the order given: "accepted" or "duplicate"."""

    outcomes: list[str]
    jumps: int = 0

    @property
    def accepted(self) -> int:
        return self.outcomes.count("accepted")

    @property
    def duplicates(self) -> int:
        return self.outcomes.count("duplicate")


# --------------------------------------------------------------------------- parsing


def _text(v: Any) -> str | None:
    if v is None:
        return None
    s = str(v).strip()
    return s or None


def _number(v: Any, name: str, *, required: bool = False) -> float | None:
    """A finite float; None when absent (or refused when required); Rejected when not a number."""
    if v is None or (isinstance(v, str) and not v.strip()):
        if required:
            raise Rejected(f"the field {name!r} is missing", status=400)
        return None
    if isinstance(v, bool):
        raise Rejected(f"the field {name!r} must be a number, got a boolean", status=400)
    try:
        x = float(v)
    except OverflowError:  # an integer beyond float range (JSON allows any number of digits)
        x = math.inf
    except (TypeError, ValueError):
        raise Rejected(f"the field {name!r} must be a number, got {str(v)[:40]!r}", status=400) from None
    if not math.isfinite(x):
        if required:
            raise Rejected(f"the field {name!r} is {x} (not a finite number)", status=422)
        return None
    return x


def _optional(v: Any, name: str, lo: float, hi: float) -> float | None:
    """An optional measurement: dropped (None) when absent, unparsable or out of [lo, hi]."""
    try:
        x = _number(v, name)
    except Rejected:
        return None
    if x is None or not lo <= x <= hi:
        return None
    return x


def _flag(v: Any) -> bool | None:
    if isinstance(v, bool):
        return v
    s = _text(v)
    if s is None:
        return None
    return {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}.get(s.lower())


def parse_time(v: Any) -> pd.Timestamp:
    """Unix seconds (or milliseconds, as some apps send), or ISO 8601 (a time without a zone is
    UTC) -> a UTC Timestamp; Rejected (400) otherwise."""
    if v is None or (isinstance(v, str) and not v.strip()):
        raise Rejected("the field 'timestamp' is missing", status=400)
    if isinstance(v, bool):
        raise Rejected("the field 'timestamp' must be Unix seconds or ISO 8601", status=400)
    num: float | None
    try:
        num = float(v)
    except OverflowError:  # an integer beyond float range (JSON allows any number of digits)
        raise Rejected("the timestamp is not a time (a number beyond any date)", status=422) from None
    except (TypeError, ValueError):
        num = None
    try:
        if num is not None:
            if not math.isfinite(num) or num < 0:
                raise Rejected(f"the timestamp {str(v)[:40]!r} is not a time", status=422)
            ts = pd.Timestamp(num / 1000.0 if num > 1e11 else num, unit="s", tz="UTC")
        else:
            ts = pd.Timestamp(str(v).strip())
            ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    except Rejected:
        raise
    except (ValueError, OverflowError, TypeError):
        raise Rejected(f"the timestamp {str(v)[:40]!r} is neither Unix seconds nor ISO 8601", status=400) from None
    if pd.isna(ts):
        raise Rejected("the field 'timestamp' is missing", status=400)
    return ts.floor("s")


def _fix(
    device: Any,
    ts: Any,
    lat: Any,
    lon: Any,
    *,
    speed_mps: float | None,
    bearing: Any,
    altitude: Any,
    accuracy: Any,
    battery_pct: float | None,
    charging: Any,
) -> Fix:
    device_id = _text(device)
    if device_id is None:
        raise Rejected("the device id ('id' or 'deviceid') is missing", status=400)
    if len(device_id) > 64:
        raise Rejected("the device id is longer than 64 characters", status=400)
    la = _number(lat, "lat", required=True)
    lo = _number(lon, "lon", required=True)
    assert la is not None and lo is not None
    if abs(la) > 90.0 and abs(lo) <= 90.0 and abs(la) <= 180.0:
        raise Rejected(f"lat={la}, lon={lo} look swapped (latitude and longitude)", status=422, device_id=device_id)
    if not (-90.0 <= la <= 90.0 and -180.0 <= lo <= 180.0):
        raise Rejected(f"the coordinates lat={la}, lon={lo} are out of range", status=422, device_id=device_id)
    return Fix(
        device_id=device_id,
        ts=parse_time(ts),
        lon=lo,
        lat=la,
        speed=None if speed_mps is None or not 0.0 <= speed_mps <= 500.0 else speed_mps,
        bearing=_optional(bearing, "bearing", 0.0, 360.0),
        altitude=_optional(altitude, "altitude", -1000.0, 10000.0),
        accuracy=_optional(accuracy, "accuracy", 0.0, 100000.0),
        battery=None if battery_pct is None or not 0.0 <= battery_pct <= 100.0 else battery_pct,
        charging=_flag(charging),
    )


def parse_osmand(fields: Mapping[str, Any]) -> Fix:
    """A fix from OsmAnd-protocol fields (query string or form). Speed arrives in knots."""
    f = {str(k).lower(): v for k, v in fields.items()}
    lat, lon = f.get("lat"), f.get("lon")
    if (lat is None or lon is None) and f.get("location"):
        parts = str(f["location"]).split(",")
        if len(parts) != 2:
            raise Rejected("the field 'location' must be 'lat,lon'", status=400)
        lat, lon = parts
    knots = _optional(f.get("speed"), "speed", 0.0, 1000.0)
    return _fix(
        f.get("id") or f.get("deviceid"),
        f.get("timestamp"),
        lat,
        lon,
        speed_mps=None if knots is None else knots * KNOT_MPS,
        bearing=f.get("bearing") if f.get("bearing") is not None else f.get("heading"),
        altitude=f.get("altitude"),
        accuracy=f.get("accuracy"),
        battery_pct=_optional(f.get("batt"), "batt", 0.0, 100.0),
        charging=f.get("charge"),
    )


def parse_traccar_json(body: Any) -> Fix:
    """A fix from the newer Traccar Client JSON body (speed m/s, battery level 0..1)."""
    if not isinstance(body, Mapping):
        raise Rejected("the body must be a JSON object", status=400)
    loc = body.get("location")
    if not isinstance(loc, Mapping):
        raise Rejected("the body has no 'location' object", status=400)
    coords = loc.get("coords")
    if not isinstance(coords, Mapping):
        raise Rejected("the location has no 'coords' object", status=400)
    raw_batt = loc.get("battery")
    batt: Mapping[str, Any] = raw_batt if isinstance(raw_batt, Mapping) else {}
    level = _optional(batt.get("level"), "battery.level", 0.0, 1.0)
    return _fix(
        body.get("device_id") or body.get("id"),
        loc.get("timestamp"),
        coords.get("latitude"),
        coords.get("longitude"),
        speed_mps=_optional(coords.get("speed"), "speed", 0.0, 500.0),
        bearing=coords.get("heading"),
        altitude=coords.get("altitude"),
        accuracy=coords.get("accuracy"),
        battery_pct=None if level is None else level * 100.0,
        charging=batt.get("is_charging"),
    )


def parse_batch_item(item: Any) -> Fix:
    """A fix of the batch endpoint (speed m/s, battery percent)."""
    if not isinstance(item, Mapping):
        raise Rejected("each position must be a JSON object", status=400)
    if "location" in item:
        return parse_traccar_json(item)
    return _fix(
        item.get("device_id") or item.get("id"),
        item.get("timestamp"),
        item.get("lat"),
        item.get("lon"),
        speed_mps=_optional(item.get("speed"), "speed", 0.0, 500.0),
        bearing=item.get("bearing"),
        altitude=item.get("altitude"),
        accuracy=item.get("accuracy"),
        battery_pct=_optional(item.get("battery"), "battery", 0.0, 100.0),
        charging=item.get("charging"),
    )


# --------------------------------------------------------------------------- the ingestor


@dataclass(frozen=True)
class RejectLog:
    ts: datetime
    device_id: str | None
    status: int
    reason: str
    remote: str | None


@dataclass
class _Cache:
    value: Any = None
    loaded_at: float = -math.inf
    signature: Any = None


@dataclass
class Ingestor:
    """Checks fixes against devices, region and clock, and commits them (see the module doc).
    Thread-safe; one per process (it caches the device table and the grid index)."""

    store: Store
    config: IngestConfig = field(default_factory=IngestConfig)
    clock: Callable[[], float] = time.time
    recent_rejects: deque[RejectLog] = field(default_factory=lambda: deque(maxlen=200))
    reject_counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._lock = threading.RLock()
        self._devices = _Cache()
        self._grids = _Cache()
        self._region: BBox | None = self.config.region
        self.tz = self.config.tz or city_tz(self.store)

    # ---------------------------------------------------------------- reference data

    def devices(self, *, force: bool = False) -> Mapping[str, int]:
        """device_id -> staff_id, re-read every ``device_refresh_s`` (or on demand). A device id
        bound to two staff members is ambiguous and left out (logged)."""
        with self._lock:
            now = time.monotonic()
            if force or now - self._devices.loaded_at > self.config.device_refresh_s:
                staff = self.store.read("staff", columns=["id", "device_id"])
                staff = staff[staff["device_id"].notna()]
                staff = staff.assign(device_id=staff["device_id"].astype(str).str.strip())
                dup = staff["device_id"].duplicated(keep=False)
                if dup.any():
                    log.warning("device ids bound to more than one staff member, refused: %s",
                                sorted(set(staff.loc[dup, "device_id"]))[:20])
                ok = staff[~dup]
                self._devices.value = dict(zip(ok["device_id"], ok["id"].astype(int), strict=True))
                self._devices.loaded_at = now
            return self._devices.value  # type: ignore[no-any-return]  # replaced, never mutated

    def _staff_of(self, device_id: str) -> int | None:
        sid = self.devices().get(device_id)
        if sid is None and time.monotonic() - self._devices.loaded_at > 5.0:
            sid = self.devices(force=True).get(device_id)  # a phone bound a minute ago
        return sid

    def region(self) -> BBox | None:
        """Where fixes may lie: the configured bbox, or the city's extent plus a margin."""
        with self._lock:
            if self._region is None:
                units = self.store.read("admin_units", where={"level": ["city", "county"]}, columns=["code"])
                if not len(units):
                    units = self.store.read("admin_units", columns=["code"])
                if len(units):
                    b = units.total_bounds
                    m = self.config.region_margin_deg
                    if np.isfinite(b).all():
                        self._region = (b[0] - m, b[1] - m, b[2] + m, b[3] + m)
            return self._region

    def grid_index(self) -> PolygonIndex | None:
        """The grids now in force, re-read when a unit's grid version changes."""
        with self._lock:
            now = time.monotonic()
            if self._grids.value is not None and now - self._grids.loaded_at < self.config.grid_refresh_s:
                return self._grids.value  # type: ignore[no-any-return]
            versions = self.store.group_sum("admin_units", ["level"], "grid_version")
            sig = (self.store.count("grids"), tuple(versions.get("total", pd.Series(dtype=int)).tolist()))
            if self._grids.value is None or sig != self._grids.signature:
                grids = self.store.read("grids", columns=["code"])
                self._grids.value = PolygonIndex(grids, key="code") if len(grids) else None
                self._grids.signature = sig
            self._grids.loaded_at = now
            return self._grids.value  # type: ignore[no-any-return]

    # ---------------------------------------------------------------- checks

    def reject(self, err: Rejected, *, remote: str | None = None) -> None:
        """Log a refusal (application log, recent list, counts per reason)."""
        reason = str(err)
        entry = RejectLog(datetime.now(UTC), err.device_id, err.status, reason, remote)
        with self._lock:
            self.recent_rejects.append(entry)
            key = f"{err.status}"
            self.reject_counts[key] = self.reject_counts.get(key, 0) + 1
        log.warning("position refused (%s) device=%s remote=%s: %s", err.status, err.device_id, remote, reason)

    def check(self, fix: Fix) -> int:
        """The staff id of an acceptable fix; Rejected otherwise."""
        sid = self._staff_of(fix.device_id)
        if sid is None:
            raise Rejected(f"the device {fix.device_id!r} is not bound to any staff member", status=403,
                           device_id=fix.device_id)
        now = pd.Timestamp(self.clock(), unit="s", tz="UTC")
        ahead = (fix.ts - now).total_seconds()
        if ahead > self.config.max_future_s:
            raise Rejected(f"the fix's time {fix.ts.isoformat()} is {ahead / 60:.0f} min in the future "
                           "(is the phone's clock right?)", device_id=fix.device_id)
        if (now - fix.ts).total_seconds() > self.config.max_age_days * 86400:
            raise Rejected(f"the fix's time {fix.ts.isoformat()} is older than {self.config.max_age_days:g} days",
                           device_id=fix.device_id)
        if fix.lat == 0.0 and fix.lon == 0.0:
            raise Rejected("the coordinates are 0, 0 (no GPS fix)", device_id=fix.device_id)
        region = self.region()
        if region is not None:
            x0, y0, x1, y1 = region
            inside = x0 <= fix.lon <= x1 and y0 <= fix.lat <= y1
            if not inside:
                if x0 <= fix.lat <= x1 and y0 <= fix.lon <= y1:
                    raise Rejected(f"lat={fix.lat}, lon={fix.lon} look swapped (latitude and longitude)",
                                   device_id=fix.device_id)
                raise Rejected(f"lat={fix.lat}, lon={fix.lon} is far outside the service area", device_id=fix.device_id)
        return sid

    # ---------------------------------------------------------------- commit

    def commit(self, fixes: Sequence[Fix], staff_ids: Sequence[int]) -> IngestResult:
        """Store checked fixes (one transaction); per fix "accepted" or "duplicate"."""
        n = len(fixes)
        if n == 0:
            return IngestResult([])
        received = pd.Timestamp(self.clock(), unit="s", tz="UTC").floor("s")
        frame = gpd.GeoDataFrame(
            {
                "staff_id": np.asarray(staff_ids, dtype="int64"),
                "ts": pd.DatetimeIndex([f.ts for f in fixes]),
                "received_at": received,
                "speed": [f.speed for f in fixes],
                "bearing": [f.bearing for f in fixes],
                "altitude": [f.altitude for f in fixes],
                "accuracy": [f.accuracy for f in fixes],
                "battery": [f.battery for f in fixes],
                "charging": pd.array([f.charging for f in fixes], dtype="boolean"),
            },
            geometry=shapely.points([f.lon for f in fixes], [f.lat for f in fixes]),
            crs=4326,
        )
        for c in ("speed", "bearing", "altitude", "accuracy", "battery"):
            frame[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
        outcomes = np.array(["accepted"] * n, dtype=object)
        # repeats inside the call, then fixes already stored: duplicates (acknowledged, not stored twice)
        outcomes[frame.duplicated(["staff_id", "ts"]).to_numpy()] = "duplicate"
        stored = self.store.read(
            "positions",
            where={
                "staff_id": sorted(set(frame["staff_id"].tolist())),
                "ts": Range(frame["ts"].min(), frame["ts"].max() + pd.Timedelta(seconds=1)),
            },
            columns=["staff_id", "ts"],
            geometry=False,
        )
        if len(stored):
            keys = set(zip(stored["staff_id"].astype(int), stored["ts"], strict=True))
            seen = np.array([(s, t) in keys for s, t in zip(frame["staff_id"], frame["ts"], strict=True)])
            outcomes[seen] = "duplicate"
        new = frame[outcomes == "accepted"].copy()
        jumps = 0
        if len(new):
            previous = self.store.read(
                "latest_positions", where={"staff_id": sorted(set(new["staff_id"].tolist()))}, columns=["staff_id", "ts"]
            )
            new = flag_jumps(new, previous=previous if len(previous) else None, max_speed_mps=self.config.max_speed_mps)
            new["jump"] = new["jump"].astype(bool)
            jumps = int(new["jump"].sum())
            index = self.grid_index()
            new["grid_code"] = (
                index.lookup(new.geometry.x.to_numpy(), new.geometry.y.to_numpy()) if index is not None else None
            )
            good = new[~new["jump"]]
            latest = good.sort_values("ts").drop_duplicates("staff_id", keep="last")
            presence = good[good["grid_code"].notna()].assign(
                day=good["ts"].dt.tz_convert(self.tz).dt.strftime("%Y-%m-%d")
            )
            presence = (
                presence.groupby(["day", "grid_code", "staff_id"], as_index=False)["ts"].min().rename(columns={"ts": "first_ts"})
            )
            with self.store.transaction():
                self.store.write("positions", new, mode="ignore")
                if len(latest):
                    self.store.write(
                        "latest_positions",
                        latest[["staff_id", "ts", "speed", "accuracy", "battery", "bearing", "charging", "grid_code",
                                "received_at", "geometry"]],
                        mode="upsert",
                        newest="ts",
                    )
                if len(presence):
                    self.store.write("grid_presence", presence, mode="ignore")
        return IngestResult(outcomes.tolist(), jumps)

    def screen(
        self, fixes: Iterable[Fix | Rejected], *, remote: str | None = None
    ) -> tuple[list[Fix], list[int], list[Rejected | None]]:
        """Check each fix (a Rejected from parsing passes through as refused): (the acceptable
        fixes, their staff ids, per input its refusal or None). Refusals are logged."""
        ok: list[Fix] = []
        sids: list[int] = []
        errors: list[Rejected | None] = []
        for fix in fixes:
            try:
                if isinstance(fix, Rejected):
                    raise fix
                sids.append(self.check(fix))
                ok.append(fix)
                errors.append(None)
            except Rejected as e:
                self.reject(e, remote=remote)
                errors.append(e)
        return ok, sids, errors

    def ingest(self, fixes: Iterable[Fix], *, remote: str | None = None) -> tuple[IngestResult, list[Rejected | None]]:
        """Check and commit: (result over the accepted fixes, per input fix its Rejected or None)."""
        ok, sids, errors = self.screen(fixes, remote=remote)
        return self.commit(ok, sids), errors
