"""Membership tests written with one array parameter instead of one parameter per value.

`column.in_([a, b, c])` renders `IN ($1, $2, $3)`: a statement of its own for every length of
the list. PostgreSQL then parses and plans each one afresh (psycopg prepares a statement only
once it has run it five times on one connection, which a batch of 7 and a batch of 9 never
reach), and that planning cost more than running them. `column = ANY($1)` is one statement
whatever the length: prepared once per connection, its plan reused.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import all_, any_, bindparam
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.sql.elements import ColumnElement


def _array(column: ColumnElement[Any], values: Iterable[Any]) -> Any:
    return bindparam(None, list(values), type_=ARRAY(column.type))


def one_of(column: ColumnElement[Any], values: Iterable[Any]) -> ColumnElement[bool]:
    """`column = ANY(values)`: `column IN values` for a list of any length."""
    return column == any_(_array(column, values))


def none_of(column: ColumnElement[Any], values: Iterable[Any]) -> ColumnElement[bool]:
    """`column <> ALL(values)`: `column NOT IN values` for a list of any length (true when
    the list is empty)."""
    return column != all_(_array(column, values))
