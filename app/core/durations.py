"""Durations in words, as people read them."""

from __future__ import annotations

from datetime import timedelta


def describe_duration(duration: timedelta) -> str:
    """`timedelta(hours=1)` -> "1 hour"; `timedelta(minutes=90)` -> "1 hour 30 minutes"."""
    seconds = int(duration.total_seconds())
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'' if count == 1 else 's'}")
    return " ".join(parts) or "0 seconds"
