"""A batch of changed grants written in one UPDATE, not one per grant.

A claim or a group of outcomes changes a handful of columns on each of its grants (the lease,
the state, the due time). The ORM's flush writes them one statement per grant and spends
more of the interpreter on it (its unit of work, each grant's history) than the statement
costs: a fifth of a claim's time, in a backlog of revocations. `write` sends every changed
grant of the batch in one statement (`app.db.rows.update_from_arrays`) and expires them in
the session: their changes are written, so the flush at commit has nothing left to do for
them; a change made after `write` is still tracked and flushed as usual, and a read reloads
the row (the transaction's own). Call it once the grants are done with; the row locks the
transaction took on them (`FOR UPDATE`) keep anyone else from writing them in between.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache
from typing import Any

from sqlalchemy import Update, inspect
from sqlalchemy.orm import Session

from app.core.models import Grant
from app.db.rows import as_update_arrays, update_from_arrays

# The columns written this way: all but the key. A grant with any other change (a
# relationship) is left to the flush.
_COLUMNS = frozenset(column.key for column in Grant.__table__.c if not column.primary_key)


@cache
def _statement(columns: tuple[str, ...]) -> Update:
    return update_from_arrays(Grant.__table__, "id", columns)  # type: ignore[arg-type]


def write(session: Session, grants: Iterable[Grant]) -> None:
    """Write the changes of `grants` in one statement; the flush then has none of them."""
    written: list[Grant] = []
    columns: set[str] = set()
    for grant in grants:
        state = inspect(grant)
        if state.session is not session or not state.persistent or not state.modified:
            continue  # another session's, new, deleted, or unchanged: the flush's business
        changed = set(state.manager).difference(state.unmodified)
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
        session.expire(grant)
