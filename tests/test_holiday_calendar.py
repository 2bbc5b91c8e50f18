"""Handoff working days from the official calendar (chinesecalendar): 法定节假日 closed, 调休
makeup workdays on weekends open, handoff.yml's lists only override, years the package does not
know fall back to the weekdays rule with a warning."""
import datetime as dt
import logging
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.handoff import config as handoff_config
from bot.handoff.config import HandoffConfig, calendar_covers, load_config, official_day

ROOT = Path(__file__).resolve().parents[1]
CST = ZoneInfo("Asia/Shanghai")


def at(y, m, d, hh, mm=0):
    return dt.datetime(y, m, d, hh, mm, tzinfo=CST)


@pytest.fixture(scope="module")
def hours():
    return load_config(ROOT / "handoff.yml").hours


def test_the_project_file_uses_the_official_calendar_and_types_no_holidays(hours):
    assert hours.calendar == "cn"
    assert not hours.holidays and not hours.extra_workdays


@pytest.mark.parametrize("when,open_,why", [
    (at(2026, 10, 10, 10), True, "Saturday 调休 workday for National Day"),
    (at(2026, 9, 20, 10), True, "Sunday 调休 workday"),
    (at(2026, 2, 14, 9), True, "Saturday 调休 workday for the Spring Festival"),
    (at(2026, 2, 28, 15), True, "Saturday 调休 workday after the Spring Festival"),
    (at(2026, 10, 1, 10), False, "National Day, a Thursday"),
    (at(2026, 10, 2, 10), False, "National Day holiday, a Friday"),
    (at(2026, 10, 7, 10), False, "National Day holiday, a Wednesday"),
    (at(2026, 9, 25, 10), False, "Mid-autumn Festival, a Friday"),
    (at(2026, 2, 17, 10), False, "Spring Festival, a Tuesday"),
    (at(2026, 10, 8, 10), True, "first working day after National Day"),
    (at(2026, 11, 28, 10), False, "ordinary Saturday"),
    (at(2026, 11, 30, 10), True, "ordinary Monday"),
    (at(2025, 9, 28, 10), True, "2025: Sunday 调休 workday"),
    (at(2025, 10, 8, 10), False, "2025: National Day + Mid-autumn holiday, a Wednesday"),
])
def test_official_days(hours, when, open_, why):
    assert hours.is_open(when) is open_, why


def test_next_open_skips_the_spring_festival_and_uses_the_makeup_saturday(hours):
    assert hours.next_open(at(2026, 2, 13, 18)) == at(2026, 2, 14, 8, 30)   # Fri evening → 调休 Saturday
    assert hours.next_open(at(2026, 2, 14, 18)) == at(2026, 2, 24, 8, 30)   # over the whole holiday
    assert hours.next_open(at(2026, 9, 30, 18)) == at(2026, 10, 8, 8, 30)


def test_local_overrides_win_over_the_official_calendar():
    cfg = HandoffConfig.from_dict({"working_hours": {"holidays": ["2026-11-30", "2026-10-10"],
                                                     "extra_workdays": ["2026-10-01", "2026-11-29"]}})
    h = cfg.hours
    assert not h.is_open(at(2026, 11, 30, 10))   # local closure on a Monday
    assert not h.is_open(at(2026, 10, 10, 10))   # closed even though officially a workday
    assert h.is_open(at(2026, 10, 1, 10))        # extra service on National Day
    assert h.is_open(at(2026, 11, 29, 10))       # and on a Sunday


def test_seven_day_service_still_closes_on_official_holidays_unless_calendar_none():
    week = {"weekdays": [1, 2, 3, 4, 5, 6, 7], "periods": [["00:00", "24:00"]]}
    h = HandoffConfig.from_dict({"working_hours": week}).hours
    assert h.is_open(at(2026, 11, 28, 10)) and not h.is_open(at(2026, 10, 1, 10))
    h = HandoffConfig.from_dict({"working_hours": dict(week, calendar="none")}).hours
    assert h.is_open(at(2026, 10, 1, 10))
    with pytest.raises(ValueError):
        HandoffConfig.from_dict({"working_hours": {"calendar": "us"}})


def test_a_year_the_package_does_not_know_follows_the_weekdays_with_one_warning(hours, caplog, monkeypatch):
    import chinese_calendar

    year = next(y for y in range(2026, 2100) if not calendar_covers(y))
    assert calendar_covers(2026)
    monkeypatch.setattr(handoff_config, "_warned_years", set())
    monday = dt.date(year, 1, 1) + dt.timedelta(days=(7 - dt.date(year, 1, 1).weekday()) % 7)
    with pytest.raises(NotImplementedError):
        chinese_calendar.is_workday(monday)            # what the package itself does
    with caplog.at_level(logging.WARNING, logger="bot.handoff.config"):
        assert official_day(monday) is None
        assert hours.is_open(at(monday.year, monday.month, monday.day, 10))              # weekday: open
        saturday = monday + dt.timedelta(days=5)
        assert not hours.is_open(at(saturday.year, saturday.month, saturday.day, 10))  # weekend: closed
    warnings = [r for r in caplog.records if "no holiday data" in r.getMessage()]
    assert len(warnings) == 1 and str(year) in warnings[0].getMessage()
