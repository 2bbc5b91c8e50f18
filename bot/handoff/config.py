"""handoff.yml: triggers, working hours (with holidays), texts' hotline, staff limits.

Working days come from the official calendar (``calendar: cn``, the default): the State
Council's holiday and 调休 notices as maintained in the ``chinesecalendar`` package — official
holidays are closed, weekend days made working days (调休上班) are open, other days follow
``weekdays``. handoff.yml's ``holidays`` / ``extra_workdays`` only override it (local closures,
extra service days). For a year the package has no data for (chinesecalendar 1.11.0 knows
2004–2026), working days follow ``weekdays`` plus those overrides, and a warning is logged once
per year and process: upgrade the package when the next year's notice is out (usually
November). ``calendar: none`` ignores the official calendar.

The file is re-read when its modification time changes, so an operator can change working
hours or thresholds without restarting the servers.
"""
from __future__ import annotations

import datetime as dt
import logging
import os
import re
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, List, Optional, Sequence, Tuple
from zoneinfo import ZoneInfo

import yaml

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2]
CALENDARS = ("cn", "none")
_warned_years: set = set()


def official_day(day: dt.date) -> Optional[str]:
    """What the official calendar says about `day`: "holiday" (法定节假日, closed), "workday"
    for a weekend day made a working day (调休上班), None for an ordinary day — and None, with
    a warning once per year, for a year chinesecalendar has no data for."""
    import chinese_calendar

    try:
        on_holiday, name = chinese_calendar.get_holiday_detail(day)
    except NotImplementedError:
        if day.year not in _warned_years:
            _warned_years.add(day.year)
            logger.warning("chinesecalendar %s has no holiday data for %s: working days follow the "
                           "weekdays setting and handoff.yml's holidays/extra_workdays only; upgrade "
                           "chinesecalendar (requirements.in) once the year's notice is published",
                           getattr(chinese_calendar, "__version__", "?"), day.year)
        return None
    if on_holiday and name is not None:
        return "holiday"
    if not on_holiday and day.isoweekday() >= 6:
        return "workday"
    return None


def calendar_covers(year: int) -> bool:
    import chinese_calendar

    try:
        chinese_calendar.is_workday(dt.date(year, 6, 1))
        return True
    except NotImplementedError:
        return False
DEFAULT_PATH = ROOT / "handoff.yml"
WEEKDAY_NAMES = "一二三四五六日"


def config_path() -> Path:
    return Path(os.environ.get("ZWZX_HANDOFF_CONFIG") or DEFAULT_PATH)


def _hm(value) -> dt.time:
    if isinstance(value, int):  # YAML 1.1 reads an unquoted 08:30 as sexagesimal 510
        return dt.time.max if value >= 24 * 60 else dt.time(value // 60, value % 60)
    text = str(value).strip()
    if text in ("24:00", "24:00:00"):
        return dt.time.max
    return dt.datetime.strptime(text, "%H:%M").time()


def _date(value) -> dt.date:
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value).strip())


@dataclass
class WorkingHours:
    timezone: str = "Asia/Shanghai"
    weekdays: Sequence[int] = (1, 2, 3, 4, 5)
    periods: Sequence[Tuple[dt.time, dt.time]] = ((dt.time(8, 30), dt.time(12, 0)),
                                                   (dt.time(14, 30), dt.time(17, 30)))
    holidays: frozenset = frozenset()
    extra_workdays: frozenset = frozenset()
    calendar: str = "cn"

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local(self, when: dt.datetime) -> dt.datetime:
        if when.tzinfo is None:
            when = when.replace(tzinfo=self.tz)
        return when.astimezone(self.tz)

    def is_workday(self, day: dt.date) -> bool:
        if day in self.holidays:
            return False
        if day in self.extra_workdays:
            return True
        if self.calendar == "cn":
            official = official_day(day)
            if official is not None:
                return official == "workday"
        return day.isoweekday() in self.weekdays

    def is_open(self, when: dt.datetime) -> bool:
        local = self.local(when)
        if not self.is_workday(local.date()):
            return False
        t = local.time().replace(tzinfo=None)
        return any(start <= t < end for start, end in self.periods)

    def next_open(self, when: dt.datetime, horizon_days: int = 60) -> Optional[dt.datetime]:
        """The start of the next working period at or after `when` (local time)."""
        local = self.local(when)
        for offset in range(horizon_days + 1):
            day = local.date() + dt.timedelta(days=offset)
            if not self.is_workday(day):
                continue
            for start, end in sorted(self.periods):
                begin = dt.datetime.combine(day, start, tzinfo=self.tz)
                finish = dt.datetime.combine(day, end, tzinfo=self.tz)
                if local < finish:
                    return max(begin, local)
        return None

    def describe(self) -> str:
        """'周一至周五 08:30-12:00、14:30-17:30（法定节假日除外）'"""
        days = sorted(self.weekdays)
        if days and days == list(range(days[0], days[-1] + 1)) and len(days) > 1:
            day_text = f"周{WEEKDAY_NAMES[days[0] - 1]}至周{WEEKDAY_NAMES[days[-1] - 1]}"
        else:
            day_text = "、".join(f"周{WEEKDAY_NAMES[d - 1]}" for d in days) or "无"
        times = "、".join(f"{s.strftime('%H:%M')}-{'24:00' if e == dt.time.max else e.strftime('%H:%M')}"
                         for s, e in self.periods)
        return f"{day_text} {times}（法定节假日除外）"


def describe_moment(when: dt.datetime, now: dt.datetime) -> str:
    """'今天 14:30' / '明天 08:30' / '6月3日（周一）08:30' in `when`'s time zone (the service hours'),
    whatever zone `now` comes in: a server clock in UTC must not turn 08:30 Beijing time into 00:30."""
    if when.tzinfo and now.tzinfo:
        now = now.astimezone(when.tzinfo)
    days = (when.date() - now.date()).days
    hm = when.strftime("%H:%M")
    if days == 0:
        return f"今天 {hm}"
    if days == 1:
        return f"明天 {hm}"
    if days == 2:
        return f"后天 {hm}"
    return f"{when.month}月{when.day}日（周{WEEKDAY_NAMES[when.isoweekday() - 1]}）{hm}"


@dataclass
class HandoffConfig:
    hotline: str = "12345"
    hotline_name: str = "12345政务服务便民热线"
    failed_turns: int = 2
    negative_feedback: int = 2
    hours: WorkingHours = field(default_factory=WorkingHours)
    max_message_chars: int = 2000
    cancel_phrases: List[str] = field(default_factory=lambda: ["取消", "不用了"])

    @classmethod
    def from_dict(cls, data: dict) -> "HandoffConfig":
        data = data or {}
        triggers = data.get("triggers") or {}
        wh = data.get("working_hours") or {}
        hours = WorkingHours(
            timezone=str(wh.get("timezone", "Asia/Shanghai")),
            weekdays=tuple(int(d) for d in wh.get("weekdays", (1, 2, 3, 4, 5))),
            periods=tuple((_hm(s), _hm(e)) for s, e in (wh.get("periods") or [])) if "periods" in wh
            else WorkingHours.periods,
            holidays=frozenset(_date(d) for d in wh.get("holidays") or ()),
            extra_workdays=frozenset(_date(d) for d in wh.get("extra_workdays") or ()),
            calendar=str(wh.get("calendar", "cn")).strip().lower(),
        )
        ZoneInfo(hours.timezone)  # fail early on a bad zone name
        if hours.calendar not in CALENDARS:
            raise ValueError(f"working_hours.calendar {hours.calendar!r}: expected one of {CALENDARS}")
        return cls(
            hotline=str(data.get("hotline", "12345")),
            hotline_name=str(data.get("hotline_name", "12345政务服务便民热线")),
            failed_turns=max(1, int(triggers.get("failed_turns", 2))),
            negative_feedback=max(1, int(triggers.get("negative_feedback", 2))),
            hours=hours,
            max_message_chars=int((data.get("staff") or {}).get("max_message_chars", 2000)),
            cancel_phrases=[str(p) for p in data.get("cancel_phrases") or ["取消", "不用了"]],
        )

    def is_cancel_phrase(self, text: Optional[str]) -> bool:
        norm = normalize_short(text)
        return bool(norm) and norm in {normalize_short(p) for p in self.cancel_phrases}


_PUNCT = re.compile(r"[\s，。！？、,.!?~～…;；:：\"'“”‘’]+")


def normalize_short(text: Optional[str]) -> str:
    return _PUNCT.sub("", text or "").lower()


_lock = threading.Lock()
_cache: dict = {}


def load_config(path: Optional[Path] = None) -> HandoffConfig:
    """The configuration, re-read when the file changes; defaults when the file is missing."""
    p = Path(path) if path else config_path()
    try:
        mtime = p.stat().st_mtime_ns
    except FileNotFoundError:
        return HandoffConfig()
    with _lock:
        cached = _cache.get(str(p))
        if cached and cached[0] == mtime:
            return cached[1]
        with open(p, encoding="utf-8") as f:
            cfg = HandoffConfig.from_dict(yaml.safe_load(f) or {})
        _cache[str(p)] = (mtime, cfg)
        return cfg


def system_clock() -> dt.datetime:
    """Now, timezone-aware. ZWZX_NOW (ISO 8601) pins it, for demos and tests."""
    pinned = os.environ.get("ZWZX_NOW")
    if pinned:
        value = dt.datetime.fromisoformat(pinned)
        return value if value.tzinfo else value.replace(tzinfo=ZoneInfo("Asia/Shanghai"))
    return dt.datetime.now(dt.timezone.utc)


Clock = Callable[[], dt.datetime]
