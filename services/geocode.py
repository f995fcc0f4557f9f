"""Addresses to places, for reports that come without coordinates (12345 exports, Open311's
``address_string``/``address_id``).

A gazetteer of the city's named places -- villages/communities (narrowed by the street named in the
address), buildings (full names and, within a community, numbered short names such as "3号楼"),
facilities, and roads as a last resort -- built once per store and kept until those tables change. Text is compared after
NFKC normalisation (full-width → half-width), without whitespace, with "3#", "3栋", "3幢", "3号"
and "3号楼" alike; a number never matches inside another number ("3号楼" is not in "13号楼").
"""

from __future__ import annotations

import math
import re
import threading
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from store.base import Store

__all__ = ["Gazetteer", "building_point", "gazetteer", "norm", "norm_place"]

_NUMBERED = re.compile(r"(\d+)(?:#|号|栋|幢|座)楼?")
_SHORT_KEY = re.compile(r"\d+号楼?$|\d+单元$")


def norm(text: Any) -> str:
    """Text for comparing names: NFKC (full-width → half-width), lower case, no whitespace."""
    return re.sub(r"\s+", "", unicodedata.normalize("NFKC", str(text))).lower()


def norm_place(text: Any) -> str:
    """An address or a name for matching: _norm, then "3#", "3栋", "3幢", "3号" and "3号楼" alike."""
    return _NUMBERED.sub(r"\1号", norm(text))


def _find(text: str, names: Mapping[str, Any], lengths: tuple[int, int]) -> list[str]:
    """The names contained in ``text``, longest first; a name beginning (ending) with a digit does
    not match right after (before) another digit, so "3号" is not found in "13号"."""
    lo, hi = lengths
    hits: set[str] = set()
    n = len(text)
    for i in range(n):
        for length in range(lo, min(hi, n - i) + 1):
            s = text[i : i + length]
            if s not in names:
                continue
            if s[0].isdigit() and i > 0 and text[i - 1].isdigit():
                continue
            if s[-1].isdigit() and i + length < n and text[i + length].isdigit():
                continue
            hits.add(s)
    return sorted(hits, key=lambda s: (-len(s), s))


@dataclass
class Gazetteer:
    """Name → [(unit_code, lon, lat)] for villages/communities, townships, buildings (full names and,
    per village, the numbered tail such as "3号") and facilities."""

    villages: dict[str, list[tuple[str, float, float]]]
    townships: dict[str, list[str]]
    buildings: dict[str, list[tuple[str, float, float]]]
    short: dict[str, dict[str, list[tuple[float, float]]]]  # unit_code → tail → points
    facilities: dict[str, list[tuple[str, float, float]]]
    roads: dict[str, tuple[float, float]]  # name → the middle of its longest stretch

    @staticmethod
    def _lengths(d: Mapping[str, Any]) -> tuple[int, int]:
        sizes = [len(k) for k in d] or [1]
        return min(sizes), max(sizes)

    @classmethod
    def load(cls, store: Store) -> Gazetteer:
        def points(frame: Any) -> list[tuple[float, float]]:
            pts = frame.geometry.representative_point()
            return [(float(p.x), float(p.y)) if p is not None and not p.is_empty else (math.nan, math.nan) for p in pts]

        units = store.read("admin_units", where={"level": ["village", "township"]}, columns=["code", "name", "level"])
        villages: dict[str, list[tuple[str, float, float]]] = {}
        townships: dict[str, list[str]] = {}
        for r, (x, y) in zip(units.itertuples(index=False), points(units), strict=True):
            key = norm_place(r.name)
            if not key:
                continue
            if r.level == "village" and math.isfinite(x):
                villages.setdefault(key, []).append((str(r.code), x, y))
            elif r.level == "township":
                townships.setdefault(key, []).append(str(r.code))
        b = store.read("buildings", columns=["name", "unit_code"])
        buildings: dict[str, list[tuple[str, float, float]]] = {}
        short: dict[str, dict[str, list[tuple[float, float]]]] = {}
        for r, (x, y) in zip(b.itertuples(index=False), points(b), strict=True):
            if not isinstance(r.name, str) or not math.isfinite(x):
                continue
            key = norm_place(r.name)
            unit = str(r.unit_code)
            buildings.setdefault(key, []).append((unit, x, y))
            tail = _SHORT_KEY.search(key)
            if tail and tail.group(0) != key:
                short.setdefault(unit, {}).setdefault(tail.group(0), []).append((x, y))
        f = store.read("facilities", columns=["name", "unit_code"])
        facilities: dict[str, list[tuple[str, float, float]]] = {}
        for r, (x, y) in zip(f.itertuples(index=False), points(f), strict=True):
            if isinstance(r.name, str) and math.isfinite(x):
                facilities.setdefault(norm_place(r.name), []).append((str(r.unit_code or ""), x, y))
        road_rows = store.read("roads", columns=["name"])
        roads: dict[str, tuple[float, float, float]] = {}
        for name, geom in zip(road_rows["name"], list(road_rows.geometry), strict=True):
            if not isinstance(name, str) or geom is None or geom.is_empty:
                continue
            key, length = norm_place(name), float(geom.length)
            if len(key) >= 2 and (key not in roads or length > roads[key][2]):
                mid = geom.interpolate(0.5, normalized=True)
                roads[key] = (float(mid.x), float(mid.y), length)
        return cls(villages, townships, buildings, short, facilities, {k: (x, y) for k, (x, y, _) in roads.items()})

    def locate(self, address: str) -> tuple[float, float, str] | None:
        """(lon, lat, how) for an address: how is building | facility | village | road (a road named
        without any community: the middle of its longest stretch); None if nothing
        named in it is known (or what is named is ambiguous)."""
        a = norm_place(address)
        if not a:
            return None
        town_codes = {c for name in _find(a, self.townships, self._lengths(self.townships)) for c in self.townships[name]}
        village: tuple[str, float, float] | None = None
        for name in _find(a, self.villages, self._lengths(self.villages)):  # the longest name that is unique
            cands = self.villages[name]
            if town_codes:
                cands = [c for c in cands if c[0][:9] in town_codes] or cands
            if len(cands) == 1:
                village = cands[0]
                break
        unit = village[0] if village else None
        for name in _find(a, self.buildings, self._lengths(self.buildings)):
            cands = self.buildings[name]
            if unit is not None:
                cands = [c for c in cands if c[0] == unit]
            if len(cands) == 1:
                return cands[0][1], cands[0][2], "building"
        if unit is not None:
            tails = self.short.get(unit, {})
            for name in _find(a, tails, self._lengths(tails)) if tails else []:
                if len(tails[name]) == 1:
                    return tails[name][0][0], tails[name][0][1], "building"
        for name in _find(a, self.facilities, self._lengths(self.facilities)):
            cands = self.facilities[name]
            if unit is not None and len(cands) > 1:
                cands = [c for c in cands if c[0].startswith(unit[:9])] or cands
            if len(cands) == 1:
                return cands[0][1], cands[0][2], "facility"
        if village is not None:
            return village[1], village[2], "village"
        for name in _find(a, self.roads, self._lengths(self.roads)) if self.roads else []:
            return self.roads[name][0], self.roads[name][1], "road"
        return None


_CACHE: dict[str, tuple[tuple[int, int, int, int], Gazetteer]] = {}
_LOCK = threading.Lock()


def gazetteer(store: Store) -> Gazetteer:
    """The store's gazetteer, rebuilt when buildings, facilities or admin units are added or removed."""
    sig = (store.count("buildings"), store.count("facilities"), store.count("admin_units"), store.count("roads"))
    with _LOCK:
        hit = _CACHE.get(store.url)
        if hit is not None and hit[0] == sig:
            return hit[1]
    got = Gazetteer.load(store)
    with _LOCK:
        _CACHE[store.url] = (sig, got)
    return got


def building_point(store: Store, building_id: int) -> tuple[float, float] | None:
    """(lon, lat) of a building's representative point, None if there is no such building."""
    rows = store.read("buildings", where={"id": int(building_id)})
    if not len(rows) or rows.geometry.iloc[0] is None or rows.geometry.iloc[0].is_empty:
        return None
    p = rows.geometry.iloc[0].representative_point()
    return float(p.x), float(p.y)
