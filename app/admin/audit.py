"""`accessbot audit export`: the append-only audit log as JSON Lines or CSV, streamed."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from typing import Any, Literal, Protocol, TextIO

from sqlalchemy import Row, Select, select
from sqlalchemy.orm import Session

from app.admin import iso_z
from app.core.models import AccessRequest, AuditEvent

Format = Literal["jsonl", "csv"]
FORMATS: tuple[Format, ...] = ("jsonl", "csv")
CSV_COLUMNS = (
    "id",
    "at",
    "event",
    "actor",
    "request_id",
    "grant_id",
    "detail",
    "ticket",  # the request's ticket reference (Workflow(ticket=...)), on each of its rows
    "ticket_url",
)
BATCH = 1000  # rows fetched per round trip from the server-side cursor


class _RowWriter(Protocol):
    def writerow(self, row: Iterable[Any], /) -> Any: ...


_RELATIVE = re.compile(r"(\d+)([dhm])")
_UNITS = {"d": "days", "h": "hours", "m": "minutes"}
SINCE_FORMS = "YYYY-MM-DD, an ISO 8601 timestamp, or a relative age such as 7d, 12h or 30m"


def parse_since(text: str, *, now: datetime | None = None) -> datetime:
    """`2026-01-31` (midnight UTC), an ISO 8601 timestamp (naive means UTC), or `7d`/`12h`/`30m`
    before `now`. Always returns an aware UTC datetime; raises ValueError otherwise."""
    value = text.strip()
    relative = _RELATIVE.fullmatch(value)
    if relative:
        try:
            amount = timedelta(**{_UNITS[relative[2]]: int(relative[1])})
            return (now or datetime.now(UTC)).astimezone(UTC) - amount
        except OverflowError:
            raise ValueError(f"cannot read {text!r}: that is too far back") from None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"cannot read {text!r}: expected {SINCE_FORMS}") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def export_audit(
    session: Session,
    out: TextIO,
    *,
    since: datetime | None = None,
    fmt: Format = "jsonl",
) -> int:
    """Write audit events (at >= since) to `out` in id order; return how many were written.

    Rows come through a server-side cursor `BATCH` at a time, so the table is never held in
    memory whole."""
    write = _writer(fmt, out)
    count = 0
    for row in session.execute(_audit_query(since).execution_options(yield_per=BATCH)):
        write(row)
        count += 1
    return count


def _audit_query(since: datetime | None) -> Select[Any]:
    query = select(
        AuditEvent.id,
        AuditEvent.at,
        AuditEvent.event,
        AuditEvent.actor,
        AuditEvent.request_id,
        AuditEvent.grant_id,
        AuditEvent.detail,
        AccessRequest.ticket,
        AccessRequest.ticket_url,
    ).outerjoin(AccessRequest, AccessRequest.id == AuditEvent.request_id)
    query = query.order_by(AuditEvent.id)
    if since is not None:
        query = query.where(AuditEvent.at >= since)
    return query


def _record(row: Row[Any]) -> dict[str, Any]:
    """One event; `ticket`/`ticket_url` only on the rows of a request that has a ticket."""
    record = {
        "id": row.id,
        "at": iso_z(row.at),
        "event": row.event,
        "actor": row.actor,
        "request_id": None if row.request_id is None else str(row.request_id),
        "grant_id": None if row.grant_id is None else str(row.grant_id),
        "detail": row.detail,
    }
    if row.ticket:
        record.update(ticket=row.ticket, ticket_url=row.ticket_url)
    return record


def _writer(fmt: Format, out: TextIO) -> Callable[[Row[Any]], None]:
    if fmt == "jsonl":
        return lambda row: _write_jsonl(out, row)
    if fmt == "csv":
        writer = csv.writer(out)
        writer.writerow(CSV_COLUMNS)
        return lambda row: _write_csv(writer, row)
    raise ValueError(f"unknown format {fmt!r}: expected one of {', '.join(FORMATS)}")


def _write_jsonl(out: TextIO, row: Row[Any]) -> None:
    out.write(json.dumps(_record(row)) + "\n")


def _write_csv(writer: _RowWriter, row: Row[Any]) -> None:
    record = _record(row)
    record["detail"] = json.dumps(record["detail"], separators=(",", ":"))
    writer.writerow(
        ["" if record.get(column) is None else record[column] for column in CSV_COLUMNS]
    )
