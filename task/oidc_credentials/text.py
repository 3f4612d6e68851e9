"""Small text helpers shared by every module: ISO-UTC times, truncation, environment-safe names."""

from __future__ import annotations

import datetime as dt
import re

_NOT_ENV = re.compile(r"[^A-Za-z0-9_]")


def iso_utc(seconds: float) -> str:
    """A POSIX time as ISO 8601 UTC to the second: ``2026-01-02T03:04:05Z``."""
    return dt.datetime.fromtimestamp(int(seconds), dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso_utc(text: str) -> float:
    """POSIX time of an ISO 8601 time (``Z`` or an offset, with or without fractions); 0.0 when unreadable."""
    value = text.strip()
    if value.endswith(("Z", "z")):
        value = value[:-1] + "+00:00"
    if "." in value:  # Python 3.9 and 3.10 read at most 6 fraction digits
        head, _, tail = value.partition(".")
        digits = len(tail) - len(tail.lstrip("0123456789"))
        value = head + "." + (tail[:digits] + "000000")[:6] + tail[digits:]
    try:
        when = dt.datetime.fromisoformat(value)
    except ValueError:
        return 0.0
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


def truncate(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters, with "…" when something was cut."""
    return text if len(text) <= limit else text[:limit] + "…"


def one_line(text: str, limit: int) -> str:
    """``text`` with every run of white space made one space, then truncated to ``limit``."""
    return truncate(" ".join(text.split()), limit)


def env_name(name: str) -> str:
    """The environment-variable form of a name: ``my-db.password`` -> ``MY_DB_PASSWORD``; ``1st`` -> ``_1ST``."""
    alias = _NOT_ENV.sub("_", name).upper()
    return "_" + alias if alias[:1].isdigit() else alias
