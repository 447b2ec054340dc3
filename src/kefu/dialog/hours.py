"""When human agents work: ``KEFU_HANDOFF_HOURS`` ("09:00-21:00", or overnight "21:00-06:00"),
``KEFU_HANDOFF_DAYS`` ("Mon-Sun", "Mon-Fri", "Mon,Wed,Sat") in ``KEFU_HANDOFF_TIMEZONE``.
Empty hours mean agents are always available. Outside the hours a handoff becomes a ticket."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_HOURS = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True)
class WorkingHours:
    start: time | None  # None: always open
    end: time | None
    days: frozenset[int]  # Monday = 0
    zone: ZoneInfo
    text: str  # as configured, for the customer ("09:00-21:00")

    @classmethod
    def parse(cls, hours: str, days: str = "Mon-Sun", timezone: str = "Asia/Shanghai") -> WorkingHours:
        """Raise ``ValueError`` naming the variable and the expected form."""
        try:
            zone = ZoneInfo(timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"KEFU_HANDOFF_TIMEZONE={timezone!r} is not an IANA time zone; use e.g. Asia/Shanghai"
            ) from None
        weekdays = parse_days(days)
        if not hours.strip():
            return cls(None, None, weekdays, zone, "")
        found = _HOURS.match(hours)
        if found is None:
            raise ValueError(f"KEFU_HANDOFF_HOURS={hours!r} is not HH:MM-HH:MM; use e.g. 09:00-21:00")
        h1, m1, h2, m2 = (int(g) for g in found.groups())
        try:
            start, end = time(h1, m1), time(h2, m2)
        except ValueError:
            raise ValueError(
                f"KEFU_HANDOFF_HOURS={hours!r} has an impossible time; use 00:00-23:59"
            ) from None
        if start == end:
            raise ValueError(f"KEFU_HANDOFF_HOURS={hours!r} is empty; leave it empty for always open")
        return cls(start, end, weekdays, zone, f"{start:%H:%M}-{end:%H:%M}")

    def is_open(self, now: datetime) -> bool:
        """Whether agents work at ``now`` (timezone-aware). An overnight range belongs to the day it
        starts on: "21:00-06:00" with Mon-Fri is open on Friday 23:00 and Saturday 02:00."""
        if self.start is None or self.end is None:
            return True
        local = now.astimezone(self.zone)
        clock, day = local.time(), local.weekday()
        if self.start < self.end:
            return day in self.days and self.start <= clock < self.end
        if clock >= self.start:
            return day in self.days
        return clock < self.end and (day - 1) % 7 in self.days


def parse_days(days: str) -> frozenset[int]:
    """ "Mon-Fri", "Sat,Sun", "Mon-Wed,Fri" → weekday numbers (Monday = 0)."""
    chosen: set[int] = set()
    for part in days.lower().replace(" ", "").split(","):
        if not part:
            continue
        first, _, last = part.partition("-")
        if first[:3] not in DAYS or (last and last[:3] not in DAYS):
            raise ValueError(
                f"KEFU_HANDOFF_DAYS={days!r}: {part!r} is not a day or range; use e.g. Mon-Fri or Mon,Wed,Sat"
            )
        a = DAYS.index(first[:3])
        b = DAYS.index(last[:3]) if last else a
        chosen.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    if not chosen:
        raise ValueError("KEFU_HANDOFF_DAYS is empty; use e.g. Mon-Sun")
    return frozenset(chosen)
