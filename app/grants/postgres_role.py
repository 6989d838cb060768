"""The PostgresRole strategy: GRANT an existing group role to the requester's database login."""

from __future__ import annotations

import math
import os
import re
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, LiteralString

import psycopg
from psycopg import errors, sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from app.grants.base import GrantContext, Granted, GrantError, GrantUser, Retry

PLACEHOLDERS = ("email_local", "email", "slack_id")
MAX_IDENTIFIER_BYTES = 63  # NAMEDATALEN - 1: PostgreSQL silently truncates longer names
_DRIVER_SUFFIX = re.compile(r"^(postgres(?:ql)?)\+[A-Za-z0-9_]+://")

LoginMapper = Callable[[GrantUser], str]

_ROLE_EXISTS = "SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = %s"
_DIRECT_MEMBERSHIP = """
    SELECT 1 FROM pg_catalog.pg_auth_members m
    JOIN pg_catalog.pg_roles r ON r.oid = m.roleid
    JOIN pg_catalog.pg_roles u ON u.oid = m.member
    WHERE r.rolname = %s AND u.rolname = %s
"""


def template_problems(template: str) -> list[str]:
    """What is wrong with a login template: bad syntax, unknown or decorated placeholders."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        return [f"login template {template!r} is invalid: {exc}"]
    problems = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            problems.append(
                f"login template {template!r}: unknown placeholder {{{name}}}; known: {known}"
            )
        elif spec or conversion:
            problems.append(f"login template {template!r}: write {{{name}}} without ! or :")
    if not any(name is not None for _, name, _, _ in parsed):
        problems.append(
            f"login template {template!r} has no placeholder: every user would get the same login"
        )
    return problems


def render_login(template: str, user: GrantUser) -> str:
    problems = template_problems(template)
    if problems:
        raise GrantError(problems[0])
    needed = {name for _, name, _, _ in string.Formatter().parse(template) if name}
    values = {"slack_id": user.slack_id, "email": user.email or ""}
    if needed & {"email", "email_local"}:
        if not user.email:
            raise GrantError(
                f"user {user.slack_id} has no email address, "
                f"which the login template {template!r} needs"
            )
        values["email_local"] = user.email.rsplit("@", 1)[0].lower()
    return template.format_map(values)


def _callable_name(fn: object) -> str:
    name = getattr(fn, "__name__", None)
    return str(name) if name else type(fn).__name__


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:300]


@dataclass
class PostgresRole:
    role: str
    dsn_env: str
    login: str | LoginMapper = "{email_local}"
    timeout: float = 5.0
    retry: Retry = field(default_factory=Retry)

    def grant(self, ctx: GrantContext) -> Granted:
        login = self._login_for(ctx.user)
        with self._connect() as conn:
            if not self._exists(conn, login):
                raise GrantError(
                    f"no database login {login!r} for {self._who(ctx.user)}: "
                    "create it (CREATE ROLE ... LOGIN) or fix the login mapping"
                )
            had = self._query(conn, _DIRECT_MEMBERSHIP, (self.role, login))
            if not had:
                self._execute(
                    conn,
                    sql.SQL("GRANT {} TO {}").format(
                        sql.Identifier(self.role), sql.Identifier(login)
                    ),
                    f"GRANT {self.role} TO {login}",
                )
        return Granted(undo={"login": login, "role": self.role}, already_had=had)

    def revoke(self, ctx: GrantContext) -> None:
        # The login and role the grant recorded: a later edit of the workflow's mapping cannot
        # point the revoke at someone else, or at nobody.
        recorded = "login" in ctx.undo
        login = ctx.undo["login"] if recorded else self._login_for(ctx.user)
        role = ctx.undo.get("role", self.role)
        with self._connect() as conn:
            if not self._exists(conn, role):
                return  # the role is gone, and the access with it
            if not self._exists(conn, login):
                if recorded:
                    return  # the login that was granted is gone, and the access with it
                raise GrantError(
                    f"no database login {login!r} for {self._who(ctx.user)}, and the grant did "
                    f"not record which login it gave {role!r} to: check by hand"
                )
            self._execute(
                conn,
                sql.SQL("REVOKE {} FROM {}").format(sql.Identifier(role), sql.Identifier(login)),
                f"REVOKE {role} FROM {login}",
            )
            # Since PostgreSQL 16, REVOKE only removes the memberships granted by the current
            # role (all superusers count as one); a membership someone else granted survives.
            if self._query(conn, _DIRECT_MEMBERSHIP, (role, login)):
                raise GrantError(
                    f"{login!r} is still a member of {role!r} after REVOKE: the membership "
                    "was granted by another role, which must revoke it"
                )

    def check(self) -> None:
        """For `accessbot doctor`: the admin connection works and the role exists."""
        with self._connect() as conn:
            if not self._exists(conn, self.role):
                raise GrantError(f"role {self.role!r} does not exist: create it (CREATE ROLE)")

    def describe(self) -> str:
        login = self.login if isinstance(self.login, str) else f"{_callable_name(self.login)}(user)"
        return f"PostgreSQL: GRANT {self.role} TO {login} (connection from ${self.dsn_env})"

    def required_env(self) -> list[str]:
        """Environment variables this strategy reads when it runs."""
        return [self.dsn_env]

    def problems(self) -> list[str]:
        problems = []
        if not self.role or "\x00" in self.role:
            problems.append(f"role {self.role!r} is not a valid PostgreSQL role name")
        elif len(self.role.encode()) > MAX_IDENTIFIER_BYTES:
            problems.append(f"role {self.role!r} is longer than {MAX_IDENTIFIER_BYTES} bytes")
        if isinstance(self.login, str):
            problems += template_problems(self.login)
        elif not callable(self.login):
            problems.append(f"login must be a template string or a function, not {self.login!r}")
        if not self.timeout > 0:
            problems.append(f"timeout must be positive, not {self.timeout!r}")
        dsn = os.environ.get(self.dsn_env)
        if dsn is not None:  # whether it is set at all: required_env(), checked by the policy
            try:
                conninfo_to_dict(_normalize(dsn))
            except psycopg.Error:
                problems.append(_bad_dsn(self.dsn_env))
        return problems

    # -- helpers ---------------------------------------------------------------------------

    def _who(self, user: GrantUser) -> str:
        return user.email or user.slack_id

    def _login_for(self, user: GrantUser) -> str:
        if isinstance(self.login, str):
            login = render_login(self.login, user)
        else:
            try:
                login = self.login(user)
            except Exception as exc:  # the policy author's code
                name = _callable_name(self.login)
                raise GrantError(f"{name}: {type(exc).__name__}: {exc}") from exc
        if not isinstance(login, str) or not login:
            raise GrantError(f"no database login could be derived for {self._who(user)}")
        return login

    def _connect(self) -> psycopg.Connection[Any]:
        dsn = os.environ.get(self.dsn_env)
        if dsn is None:
            raise GrantError(f"environment variable {self.dsn_env} is not set")
        try:
            params = conninfo_to_dict(_normalize(dsn))
        except psycopg.Error:
            raise GrantError(_bad_dsn(self.dsn_env)) from None  # the message would echo it
        params["connect_timeout"] = max(1, math.ceil(self.timeout))
        params.setdefault("application_name", "accessbot")
        try:
            conn = psycopg.connect(make_conninfo(**params), autocommit=True)
        except psycopg.Error as exc:
            raise GrantError(
                f"could not connect to PostgreSQL (${self.dsn_env}): {_one_line(exc)}"
            ) from exc
        try:
            millis = f"{math.ceil(self.timeout * 1000)}ms"
            conn.execute("SELECT set_config('statement_timeout', %s, false)", (millis,))
            conn.execute("SELECT set_config('lock_timeout', %s, false)", (millis,))
        except psycopg.Error as exc:
            conn.close()
            raise GrantError(f"PostgreSQL (${self.dsn_env}): {_one_line(exc)}") from exc
        return conn

    def _exists(self, conn: psycopg.Connection[Any], name: str) -> bool:
        return self._query(conn, _ROLE_EXISTS, (name,))

    def _query(
        self, conn: psycopg.Connection[Any], query: LiteralString, args: tuple[str, ...]
    ) -> bool:
        try:
            return conn.execute(query, args).fetchone() is not None
        except psycopg.Error as exc:
            raise GrantError(f"PostgreSQL (${self.dsn_env}): {_one_line(exc)}") from exc

    def _execute(self, conn: psycopg.Connection[Any], statement: sql.Composed, what: str) -> None:
        try:
            conn.execute(statement)
        except errors.UndefinedObject as exc:
            raise GrantError(f"{what}: {_one_line(exc)}") from exc
        except errors.InsufficientPrivilege as exc:
            raise GrantError(
                f"{what}: the ${self.dsn_env} user may not do this "
                f"(it needs ADMIN OPTION on {self.role!r}, or CREATEROLE before PostgreSQL 16): "
                f"{_one_line(exc)}"
            ) from exc
        except (errors.QueryCanceled, errors.LockNotAvailable) as exc:
            raise GrantError(
                f"{what}: not done within {self.timeout:g}s: {_one_line(exc)}"
            ) from exc
        except psycopg.Error as exc:
            raise GrantError(f"{what}: {type(exc).__name__}: {_one_line(exc)}") from exc


def _normalize(dsn: str) -> str:
    """Accept SQLAlchemy's postgresql+driver:// URLs as well as libpq's own formats."""
    return _DRIVER_SUFFIX.sub("postgresql://", dsn.strip(), count=1)


def _bad_dsn(env: str) -> str:
    return f"environment variable {env} does not hold a valid PostgreSQL connection string"
