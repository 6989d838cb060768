"""Operator commands that read the database: grants and the audit log. Never writes."""

from __future__ import annotations

from datetime import UTC, datetime


def iso_z(moment: datetime | None) -> str | None:
    """An aware datetime as ISO 8601 in UTC ending with "Z"; None stays None."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
