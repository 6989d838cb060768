"""A batch of changed grants written in one UPDATE, not one per grant.

A claim or a group of outcomes changes a handful of columns on each of its grants (the lease,
the state, the due time). The ORM's flush writes them one statement per grant and spends
more of the interpreter on it (its unit of work, each grant's history) than the statement
costs: a fifth of a claim's time, in a backlog of revocations. `write` sends every changed
grant of the batch in one statement (`app.db.rows.update_from_arrays`) and takes them out of
the session, so the flush at commit has nothing left to do for them. Call it last in the
transaction, once nothing more will change on the grants; the row locks the transaction took
on them (`FOR UPDATE`) keep anyone else from writing them in between.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from sqlalchemy import Update, inspect
from sqlalchemy.orm import Session

from app.core.models import Grant
from app.db.rows import as_update_arrays, update_from_arrays

# The columns written this way: plain values an array can carry. A grant with any other
# change (`undo`, a JSON document) is left to the flush.
_COLUMNS = frozenset(
    {
        "state",
        "granted_at",
        "expires_at",
        "ended_at",
        "end_reason",
        "ended_by",
        "end_note",
        "attempts",
        "next_attempt_at",
        "last_error",
        "reminded_at",
        "due_at",
        "lease_owner",
        "lease_until",
        "extension_request_id",
        "held_before",
        "kept",
    }
)


@cache
def _statement(columns: tuple[str, ...]) -> Update:
    return update_from_arrays(Grant.__table__, "id", columns)  # type: ignore[arg-type]


def write(session: Session, grants: Iterable[Grant]) -> None:
    """Write the changes of `grants` in one statement, and take them out of the session."""
    written: list[Grant] = []
    columns: set[str] = set()
    for grant in grants:
        state = inspect(grant)
        if state.session is not session or not state.modified:
            continue
        changed = {key for key in state.manager if key not in state.unmodified}
        if not changed <= _COLUMNS:
            continue
        written.append(grant)
        columns |= changed
    if not written:
        return
    names = tuple(sorted(columns))
    rows: list[dict[str, Any]] = [
        {name: getattr(grant, name) for name in ("id", *names)} for grant in written
    ]
    session.connection().execute(_statement(names), as_update_arrays(rows, ("id", *names)))
    for grant in written:
        session.expunge(grant)
