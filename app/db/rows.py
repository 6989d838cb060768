"""Rows inserted (or updated) from one array parameter per column: one statement however many
rows.

Sent as a list of rows (`executemany`), an INSERT is one statement per row, which psycopg pipelines
but PostgreSQL still parses, plans and runs one at a time; rendered as a multi-row `VALUES`
(SQLAlchemy's insertmanyvalues), it is a statement of its own for every number of rows, planned
afresh each time (as `IN` lists were: see `app.db.sets`). `INSERT ... SELECT FROM unnest($1,
$2, ...) WITH ORDINALITY ORDER BY ordinality` is one statement for any number of rows, prepared
once per connection, and it inserts the rows in the order given (ids from a sequence follow it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import String, Table, Update, bindparam, func, select, update
from sqlalchemy.dialects.postgresql import ARRAY, Insert, insert
from sqlalchemy.types import TypeEngine


def insert_from_arrays(table: Table, columns: Sequence[str]) -> Insert:
    """`INSERT INTO table (columns) SELECT ... FROM unnest(:columns...)`, in the given order.
    Execute it with `as_arrays(rows, columns)`; build it once (building costs more than a row)."""
    arrays = [bindparam(name, type_=ARRAY(_unbounded(table.c[name].type))) for name in columns]
    rows = (
        func.unnest(*arrays).table_valued(*columns, with_ordinality="ordinality").render_derived()
    )
    ordered = select(*(rows.c[name] for name in columns)).order_by(rows.c.ordinality)
    return insert(table).from_select(list(columns), ordered)


def _unbounded(column_type: TypeEngine[Any]) -> TypeEngine[Any]:
    """A string column's type without its length: the array is cast to `VARCHAR[]`, not
    `VARCHAR(20)[]`, because a cast to `varchar(n)` cuts a longer value short without a word,
    where the insert into the column refuses it ("value too long")."""
    return String() if isinstance(column_type, String) else column_type


def as_arrays(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> dict[str, list[Any]]:
    """The parameters of `insert_from_arrays` for `rows`: one list per column."""
    return {name: [row.get(name) for row in rows] for name in columns}


def update_from_arrays(table: Table, key: str, columns: Sequence[str]) -> Update:
    """`UPDATE table SET columns FROM unnest(:key, :columns...) WHERE table.key = key`: each
    row's own values, for any number of rows, in one statement (an ORM flush sends one UPDATE
    per row). Execute it with `as_update_arrays(rows, [key, *columns])`; build it once per set
    of columns."""
    names = [key, *columns]
    arrays = [
        bindparam(_UPDATE_PREFIX + name, type_=ARRAY(_unbounded(table.c[name].type)))
        for name in names
    ]
    rows = func.unnest(*arrays).table_valued(*names).render_derived(name="given")
    return (
        update(table)
        .where(table.c[key] == rows.c[key])
        .values({name: rows.c[name] for name in columns})
    )


# An UPDATE's parameters may not be named as its table's columns (SQLAlchemy keeps those names
# for the SET clause's own).
_UPDATE_PREFIX = "given_"


def as_update_arrays(
    rows: Sequence[Mapping[str, Any]], columns: Sequence[str]
) -> dict[str, list[Any]]:
    """The parameters of `update_from_arrays` for `rows`: one list per column."""
    return {_UPDATE_PREFIX + name: [row.get(name) for row in rows] for name in columns}
