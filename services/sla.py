"""Time limits (SLA) of cases: calendar hours, working hours and working days.

DOMAIN.md's examples: exposed garbage 1 working day, dirty road 5 working hours, illegal building
15 working days, "1-2-20" (accept in 1 day, deliver in 2, finish in 20). The clock starts at
dispatch. A *working* limit only runs during office hours on working days in the city's time zone:

- office hours: settings ``sla.work_start`` / ``sla.work_end`` (default 08:30–17:30, so a working
  day has 9 working hours); a working day counts as that many working hours;
- working days: Monday to Friday, minus the dates in ``sla.holidays`` and plus the make-up working
  days (调休) in ``sla.workdays`` (comma-separated ISO dates, edited on the settings page).

``deadline(start, amount, unit, calendar)`` gives the instant a limit runs out;
``flags(...)`` says which open cases are overdue or about to be.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

from services.settings import city_tz
from store.base import Store

LimitUnit = Literal["hours", "working_hours", "working_days"]
LIMIT_UNITS: tuple[str, ...] = ("hours", "working_hours", "working_days")
DUE_SOON_SHARE = 0.25  # "about to be overdue": less than this share of the limit is left ...
DUE_SOON_MIN = pd.Timedelta(hours=1)  # ... or less than an hour, whichever is longer
DUE_SOON_MAX = pd.Timedelta(hours=24)  # but a warning never starts more than a day ahead


@dataclass(frozen=True)
class WorkCalendar:
    tz: str = "Asia/Shanghai"
    start: time = time(8, 30)
    end: time = time(17, 30)
    holidays: frozenset[date] = field(default_factory=frozenset)
    workdays: frozenset[date] = field(default_factory=frozenset)  # weekend days worked (调休)

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ValueError("office hours must end after they start")
        ZoneInfo(self.tz)  # unknown zone: ZoneInfoNotFoundError, a ValueError

    @property
    def day_hours(self) -> float:
        return (datetime.combine(date.min, self.end) - datetime.combine(date.min, self.start)).total_seconds() / 3600

    def is_workday(self, d: date) -> bool:
        if d in self.workdays:
            return True
        return d.weekday() < 5 and d not in self.holidays


def _dates(text: str | None) -> frozenset[date]:
    out = set()
    for part in (text or "").replace(";", ",").split(","):
        part = part.strip()
        if part:
            out.add(date.fromisoformat(part))
    return frozenset(out)


def _clock(text: str | None, default: time) -> time:
    try:
        return time.fromisoformat(text) if text else default
    except ValueError:
        return default


def calendar(store: Store) -> WorkCalendar:
    """The city's working calendar from the settings (bad values fall back to the defaults)."""
    try:
        holidays, workdays = _dates(store.get_setting("sla.holidays")), _dates(store.get_setting("sla.workdays"))
    except ValueError:
        holidays, workdays = frozenset(), frozenset()
    start = _clock(store.get_setting("sla.work_start"), time(8, 30))
    end = _clock(store.get_setting("sla.work_end"), time(17, 30))
    if end <= start:
        start, end = time(8, 30), time(17, 30)
    return WorkCalendar(tz=city_tz(store), start=start, end=end, holidays=holidays, workdays=workdays)


def set_calendar(
    store: Store, *, work_start: str, work_end: str, holidays: Iterable[str] = (), workdays: Iterable[str] = ()
) -> WorkCalendar:
    """Validate and save the office hours and holiday lists; ValueError and nothing saved if bad."""
    cal = WorkCalendar(
        tz=city_tz(store),
        start=time.fromisoformat(work_start),
        end=time.fromisoformat(work_end),
        holidays=_dates(",".join(holidays)),
        workdays=_dates(",".join(workdays)),
    )
    with store.transaction():
        store.set_setting("sla.work_start", cal.start.isoformat("minutes"))
        store.set_setting("sla.work_end", cal.end.isoformat("minutes"))
        store.set_setting("sla.holidays", ",".join(sorted(d.isoformat() for d in cal.holidays)))
        store.set_setting("sla.workdays", ",".join(sorted(d.isoformat() for d in cal.workdays)))
    return cal


def _utc(value: Any) -> pd.Timestamp:
    ts = pd.Timestamp(value)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def add_working_hours(start: Any, hours: float, cal: WorkCalendar) -> pd.Timestamp:
    """The instant ``hours`` working hours after ``start`` (UTC Timestamp)."""
    if not np.isfinite(hours) or hours < 0:
        raise ValueError(f"a time limit must be a non-negative number of hours, not {hours!r}")
    zone = ZoneInfo(cal.tz)
    local = _utc(start).tz_convert(zone).to_pydatetime()
    left = timedelta(hours=hours)
    day = local.date()
    cursor = local
    for _ in range(3660):  # ten years of days: a limit longer than that is a data error
        if cal.is_workday(day):
            open_ = datetime.combine(day, cal.start, tzinfo=zone)
            close = datetime.combine(day, cal.end, tzinfo=zone)
            begin = max(cursor, open_)
            if begin < close:
                span = close - begin
                if left <= span:
                    return pd.Timestamp(begin + left).tz_convert("UTC")
                left -= span
        day += timedelta(days=1)
        cursor = datetime.combine(day, time(0), tzinfo=zone)
    raise ValueError("the working calendar has no working hours in the next ten years")


def deadline(start: Any, amount: float, unit: str, cal: WorkCalendar) -> pd.Timestamp:
    """When a limit of ``amount`` ``unit`` started at ``start`` runs out (UTC)."""
    if unit not in LIMIT_UNITS:
        raise ValueError(f"unknown time-limit unit {unit!r}; use one of {', '.join(LIMIT_UNITS)}")
    if not np.isfinite(amount) or amount <= 0:
        raise ValueError(f"a time limit must be a positive number, not {amount!r}")
    if unit == "hours":
        return _utc(start) + pd.Timedelta(hours=float(amount))
    hours = float(amount) * (cal.day_hours if unit == "working_days" else 1.0)
    return add_working_hours(start, hours, cal)


def category_limit(row: Any) -> tuple[float, str]:
    """(amount, unit) of a case_categories row: time_limit/limit_unit, else time_limit_hours hours."""
    amount = row.get("time_limit") if hasattr(row, "get") else None
    unit = row.get("limit_unit") if hasattr(row, "get") else None
    if amount is None or pd.isna(amount) or float(amount) <= 0 or unit not in LIMIT_UNITS:
        return float(row["time_limit_hours"]), "hours"
    return float(amount), str(unit)


def limit_text(amount: float, unit: str, lang: str = "zh") -> str:
    """'5 工作小时' / '5 working hours' for tables and Open311 descriptions."""
    n = f"{amount:g}"
    words = {
        "zh": {"hours": "小时", "working_hours": "工作小时", "working_days": "个工作日"},
        "en": {"hours": "hours", "working_hours": "working hours", "working_days": "working days"},
    }[lang if lang in ("zh", "en") else "en"]
    return f"{n} {words.get(unit, unit)}"


def flags(
    deadline_at: pd.Series, started_at: pd.Series, *, now: Any, open_: pd.Series | None = None
) -> tuple[pd.Series, pd.Series]:
    """(overdue, due_soon) booleans per case: overdue once ``now`` is past the deadline; due soon
    when less than DUE_SOON_SHARE of the span started_at → deadline_at is left (at least
    DUE_SOON_MIN, at most DUE_SOON_MAX ahead). Cases without a deadline, or not open, are neither."""
    now_ts = _utc(now)
    dl = pd.to_datetime(deadline_at, utc=True)
    st = pd.to_datetime(started_at, utc=True)
    has = dl.notna()
    if open_ is not None:
        has &= open_.astype(bool).to_numpy()
    overdue = has & (dl < now_ts)
    span = (dl - st).fillna(pd.Timedelta(0))
    share = span * DUE_SOON_SHARE
    warn = share.where(share >= DUE_SOON_MIN, DUE_SOON_MIN).where(share <= DUE_SOON_MAX, DUE_SOON_MAX)
    due_soon = has & ~overdue & ((dl - now_ts) <= warn)
    return overdue.fillna(False).astype(bool), due_soon.fillna(False).astype(bool)
