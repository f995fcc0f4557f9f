"""Working-time arithmetic of the time limits (DOMAIN.md: 5 working hours, 1 and 15 working days)."""

from __future__ import annotations

from datetime import date, time

import pandas as pd
import pytest

from services import sla

CAL = sla.WorkCalendar(tz="Asia/Shanghai")  # 08:30-17:30, Monday to Friday


def local(text: str) -> pd.Timestamp:
    return pd.Timestamp(text, tz="Asia/Shanghai")


def test_calendar_hours_ignore_the_office() -> None:
    assert sla.deadline(local("2026-11-20 22:00"), 5, "hours", CAL) == local("2026-11-21 03:00")


def test_working_hours_skip_nights_and_weekends() -> None:
    # Friday 15:30 + 5 working hours: 2 h on Friday, 3 h from Monday 08:30
    assert sla.deadline(local("2026-11-20 15:30"), 5, "working_hours", CAL) == local("2026-11-23 11:30")
    # reported at night: the clock starts when the office opens
    assert sla.deadline(local("2026-11-18 23:00"), 1, "working_hours", CAL) == local("2026-11-19 09:30")
    # a Saturday report: Monday
    assert sla.deadline(local("2026-11-21 10:00"), 2, "working_hours", CAL) == local("2026-11-23 10:30")


def test_working_days_are_office_days() -> None:
    assert CAL.day_hours == 9
    assert sla.deadline(local("2026-11-18 10:00"), 1, "working_days", CAL) == local("2026-11-19 10:00")
    # 15 working days from a Monday morning: three weeks later
    assert sla.deadline(local("2026-11-02 08:30"), 15, "working_days", CAL) == local("2026-11-20 17:30")


def test_holidays_and_make_up_days() -> None:
    cal = sla.WorkCalendar(tz="Asia/Shanghai", holidays=frozenset({date(2026, 10, 1), date(2026, 10, 2)}),
                           workdays=frozenset({date(2026, 10, 10)}))  # fmt: skip
    # Wednesday 30 Sept 17:00 + 1 working hour: Thu/Fri are holidays → Monday 5 Oct 09:00
    assert sla.deadline(local("2026-09-30 17:00"), 1, "working_hours", cal) == local("2026-10-05 09:00")
    # Friday 9 Oct 17:00 + 1 working hour: Saturday 10 Oct is a make-up working day
    assert sla.deadline(local("2026-10-09 17:00"), 1, "working_hours", cal) == local("2026-10-10 09:00")


def test_bad_limits_are_errors() -> None:
    with pytest.raises(ValueError, match="unit"):
        sla.deadline(local("2026-11-18 10:00"), 1, "fortnights", CAL)
    for amount in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            sla.deadline(local("2026-11-18 10:00"), amount, "hours", CAL)
    with pytest.raises(ValueError):
        sla.WorkCalendar(start=time(18), end=time(9))


def test_calendar_settings_round_trip(sqlite_store: object) -> None:
    store = sqlite_store
    sla.set_calendar(store, work_start="09:00", work_end="17:00", holidays=["2026-10-01", " 2026-10-02"],  # type: ignore[arg-type]
                     workdays=["2026-10-10"])  # fmt: skip
    cal = sla.calendar(store)  # type: ignore[arg-type]
    assert (cal.start, cal.end, cal.day_hours) == (time(9), time(17), 8)
    assert cal.holidays == {date(2026, 10, 1), date(2026, 10, 2)} and cal.workdays == {date(2026, 10, 10)}
    with pytest.raises(ValueError):
        sla.set_calendar(store, work_start="nine", work_end="17:00")  # type: ignore[arg-type]
    assert sla.calendar(store).start == time(9)  # type: ignore[arg-type]  # nothing saved


def test_flags_overdue_and_due_soon() -> None:
    now = pd.Timestamp("2026-11-18 10:00", tz="UTC")
    deadline = pd.Series(pd.to_datetime(["2026-11-18 09:00", "2026-11-18 10:30", "2026-11-19 10:00", None], utc=True))
    started = pd.Series(pd.to_datetime(["2026-11-17 09:00", "2026-11-18 08:00", "2026-11-18 09:00", None], utc=True))
    overdue, soon = sla.flags(deadline, started, now=now)
    assert overdue.tolist() == [True, False, False, False]
    assert soon.tolist() == [False, True, False, False]
    overdue, soon = sla.flags(deadline, started, now=now, open_=pd.Series([False, True, True, True]))
    assert overdue.tolist() == [False, False, False, False]
