"""Time on the hub: one injectable clock, timestamps as fixed-width UTC ISO text."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

Clock = Callable[[], dt.datetime]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(value: dt.datetime) -> str:
    """The journal's format: sorts as text on SQLite and PostgreSQL alike."""
    if value.tzinfo is None:
        raise ValueError("hub timestamps are timezone-aware")
    return value.astimezone(dt.UTC).isoformat(timespec="microseconds")


def parse(text: str | None) -> dt.datetime | None:
    return None if text is None else dt.datetime.fromisoformat(text)


def later(clock: Clock, seconds: float) -> str:
    return iso(clock() + dt.timedelta(seconds=seconds))
