"""Dates for the stand-in LLM: reading chat timestamps and resolving "next Friday".

Rules (deterministic, documented so tests can rely on them):

* ``today`` / ``tonight`` = the message date; ``tomorrow`` +1; ``the day after tomorrow`` +2;
  ``yesterday`` -1;
* ``next week`` +7 days, ``last week`` -7; ``next month`` / ``last month`` the same day of
  the next / previous month (clamped); ``next year`` / ``last year`` only the year;
* ``in N days|weeks|months|years`` and ``N ... ago`` count from the message date;
* ``this weekend`` = the coming Saturday (the message date if it is a Saturday);
  ``next weekend`` = a week later;
* ``on Friday`` / ``this Friday`` = the next Friday strictly after the message date;
  ``next Friday`` = Friday of the following calendar week (weeks start on Monday);
  ``last Friday`` = the latest Friday strictly before the message date;
* ``on March 3(rd)``, ``3 March``, ``March 3, 2026``, ``2026-03-03`` / ``2026/03/03`` are
  absolute (the message year when no year is given); ``in March (2026)`` gives ``YYYY/MM``.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable
from datetime import date, datetime, timedelta

__all__ = ["find_when", "format_date", "parse_stamp"]

_MONTHS = {
    name.lower(): i
    for i in range(1, 13)
    for name in (calendar.month_name[i], calendar.month_abbr[i])
}
_MONTHS["sept"] = 9
_WEEKDAYS = {calendar.day_name[i].lower(): i for i in range(7)}
NUMBER_WORDS = {
    "a": 1,
    "an": 1,
    "one": 1,
    "two": 2,
    "three": 3,
    "four": 4,
    "five": 5,
    "six": 6,
    "seven": 7,
    "eight": 8,
    "nine": 9,
    "ten": 10,
    "couple of": 2,
    "few": 3,
}
_MONTH_RE = "|".join(sorted(_MONTHS, key=len, reverse=True))
_WEEKDAY_RE = "|".join(_WEEKDAYS)
_NUM_RE = r"\d{1,3}|a|an|one|two|three|four|five|six|seven|eight|nine|ten|couple of|few"


def format_date(d: date) -> str:
    """Memobase's date style in annotations: ``2025/01/14``."""
    return f"{d.year:04d}/{d.month:02d}/{d.day:02d}"


def parse_stamp(stamp: str) -> date | None:
    """The date of a chat line's ``[timestamp]`` (``2025/01/14``, ISO 8601...), if readable."""
    text = stamp.strip()
    match = re.match(r"^(\d{4})[-/.](\d{1,2})[-/.](\d{1,2})", text)
    if match:
        try:
            return date(int(match.group(1)), int(match.group(2)), int(match.group(3)))
        except ValueError:
            return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).date()
    except ValueError:
        return None


def _shift_months(d: date, months: int) -> date:
    index = d.year * 12 + d.month - 1 + months
    year, month = divmod(index, 12)
    day = min(d.day, calendar.monthrange(year, month + 1)[1])
    return date(year, month + 1, day)


def _count(word: str) -> int:
    word = word.lower()
    return int(word) if word.isdigit() else NUMBER_WORDS.get(word, 1)


def _offset(today: date, n: int, unit: str) -> date | str:
    unit = unit.lower().rstrip("s")
    if unit == "day":
        return today + timedelta(days=n)
    if unit == "week":
        return today + timedelta(weeks=n)
    if unit == "month":
        return _shift_months(today, n)
    return f"{today.year + n:04d}"


def _absolute(year: str | None, month: str, day: str, today: date | None) -> date | None:
    y = int(year) if year else (today.year if today else None)
    if y is None:
        return None
    try:
        return date(y, _MONTHS[month.lower()], int(day))
    except ValueError:
        return None


Resolver = Callable[[re.Match[str], date | None], date | str | None]


def _rel(fn: Callable[[re.Match[str], date], date | str]) -> Resolver:
    return lambda m, today: fn(m, today) if today is not None else None


def _this_weekend(today: date) -> date:
    return today + timedelta(days=(5 - today.weekday()) % 7)


_RULES: tuple[tuple[re.Pattern[str], Resolver], ...] = tuple(
    (re.compile(pattern, re.IGNORECASE), resolver)
    for pattern, resolver in (
        (
            r"\b(?:on\s+)?(\d{4})[-/](\d{1,2})[-/](\d{1,2})\b",
            lambda m, _t: _safe_date(int(m.group(1)), int(m.group(2)), int(m.group(3))),
        ),
        (
            rf"\b(?:on\s+)?(?:the\s+)?(\d{{1,2}})(?:st|nd|rd|th)?(?:\s+of)?\s+({_MONTH_RE})\.?(?:,?\s+(\d{{4}}))?\b",
            lambda m, t: _absolute(m.group(3), m.group(2), m.group(1), t),
        ),
        (
            rf"\b(?:on\s+)?({_MONTH_RE})\.?\s+(\d{{1,2}})(?:st|nd|rd|th)?(?:,?\s+(\d{{4}}))?\b",
            lambda m, t: _absolute(m.group(3), m.group(1), m.group(2), t),
        ),
        (
            rf"\bin\s+({_MONTH_RE})(?:\s+(\d{{4}}))?\b",
            lambda m, t: (
                f"{int(m.group(2)) if m.group(2) else t.year:04d}/{_MONTHS[m.group(1).lower()]:02d}"
                if (m.group(2) or t is not None)
                else None
            ),
        ),
        (r"\bthe\s+day\s+after\s+tomorrow\b", _rel(lambda _m, t: t + timedelta(days=2))),
        (r"\btomorrow\b", _rel(lambda _m, t: t + timedelta(days=1))),
        (
            r"\b(?:today|tonight|this\s+(?:morning|afternoon|evening))\b",
            _rel(lambda _m, t: t),
        ),
        (r"\byesterday\b", _rel(lambda _m, t: t - timedelta(days=1))),
        (r"\bthis\s+weekend\b", _rel(lambda _m, t: _this_weekend(t))),
        (r"\bnext\s+weekend\b", _rel(lambda _m, t: _this_weekend(t) + timedelta(days=7))),
        (r"\bnext\s+week\b", _rel(lambda _m, t: t + timedelta(days=7))),
        (r"\blast\s+week\b", _rel(lambda _m, t: t - timedelta(days=7))),
        (r"\bnext\s+month\b", _rel(lambda _m, t: _shift_months(t, 1))),
        (r"\blast\s+month\b", _rel(lambda _m, t: _shift_months(t, -1))),
        (r"\bnext\s+year\b", _rel(lambda _m, t: f"{t.year + 1:04d}")),
        (r"\blast\s+year\b", _rel(lambda _m, t: f"{t.year - 1:04d}")),
        (
            rf"\bin\s+(?:a\s+)?({_NUM_RE})\s+(day|week|month|year)s?\b",
            _rel(lambda m, t: _offset(t, _count(m.group(1)), m.group(2))),
        ),
        (
            rf"\b({_NUM_RE})\s+(day|week|month|year)s?\s+ago\b",
            _rel(lambda m, t: _offset(t, -_count(m.group(1)), m.group(2))),
        ),
        (
            rf"\bnext\s+({_WEEKDAY_RE})\b",
            _rel(lambda m, t: t + timedelta(days=7 - t.weekday() + _WEEKDAYS[m.group(1).lower()])),
        ),
        (
            rf"\blast\s+({_WEEKDAY_RE})\b",
            _rel(
                lambda m, t: (
                    t - timedelta(days=((t.weekday() - _WEEKDAYS[m.group(1).lower()]) % 7) or 7)
                )
            ),
        ),
        (
            rf"\b(?:on\s+|this\s+)?({_WEEKDAY_RE})\b",
            _rel(
                lambda m, t: (
                    t + timedelta(days=((_WEEKDAYS[m.group(1).lower()] - t.weekday()) % 7) or 7)
                )
            ),
        ),
    )
)


def _safe_date(y: int, m: int, d: int) -> date | None:
    try:
        return date(y, m, d)
    except ValueError:
        return None


def find_when(text: str, today: date | None) -> tuple[str | None, str]:
    """The first time expression in ``text`` as ``YYYY/MM/DD`` (or ``YYYY/MM``, ``YYYY``), and
    ``text`` with that expression removed. ``(None, text)`` when there is none (or it is
    relative and ``today`` is unknown)."""
    for pattern, resolve in _RULES:
        match = pattern.search(text)
        if not match:
            continue
        value = resolve(match, today)
        rest = " ".join((text[: match.start()] + " " + text[match.end() :]).split())
        if value is None:
            return None, rest
        return (format_date(value) if isinstance(value, date) else value), rest
    return None, text
