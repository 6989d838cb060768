"""PostgresRole against the suite's real PostgreSQL: access really appears, then really goes."""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import psycopg
import pytest
from psycopg import sql
from sqlalchemy.engine import URL, make_url

from app.grants.base import GrantContext, GrantError, GrantUser, Retry
from app.grants.postgres_role import PostgresRole

if TYPE_CHECKING:  # imported at run time, pytest would try to collect it as a test class
    from tests.support.postgres import SuitePostgres

DSN_ENV = "ACCESSBOT_TEST_ORDERS_DB_ADMIN_URL"
PASSWORD = "alice-pw"


@dataclass
class Cluster:
    url: URL  # admin, on the test database
    suffix: str
    group: str
    login: str
    roles: list[str] = field(default_factory=list)  # dropped at teardown: roles are cluster-wide

    def admin(self) -> psycopg.Connection:
        return psycopg.connect(**self._params(), autocommit=True)

    def _params(self, **override: object) -> dict[str, object]:
        return {
            "host": self.url.host or "127.0.0.1",
            "port": self.url.port or 5432,
            "dbname": self.url.database,
            "user": self.url.username,
            "password": self.url.password,
            "connect_timeout": 5,
        } | override

    def select_as(self, login: str) -> str:
        """'ok' if `login` can read the table, 'denied' if PostgreSQL says permission denied."""
        params = self._params(user=login, password=PASSWORD)
        with psycopg.connect(**params, autocommit=True) as conn:
            try:
                conn.execute("SELECT item FROM orders").fetchall()
            except psycopg.errors.InsufficientPrivilege:
                return "denied"
        return "ok"

    def create_role(self, name: str, *, login: bool = False) -> None:
        statement = (
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(name), sql.Literal(PASSWORD)
            )
            if login
            else sql.SQL("CREATE ROLE {} NOLOGIN").format(sql.Identifier(name))
        )
        self.roles.append(name)
        with self.admin() as conn:
            conn.execute(statement)
            if not login:
                conn.execute(sql.SQL("GRANT SELECT ON orders TO {}").format(sql.Identifier(name)))

    def table_exists(self) -> bool:
        with self.admin() as conn:
            return conn.execute("SELECT to_regclass('orders')").fetchone() != (None,)


@pytest.fixture
def cluster(postgres: SuitePostgres, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cluster]:
    suffix = uuid.uuid4().hex[:10]
    database = postgres.new_database()
    url = make_url(postgres.url(database))
    env = Cluster(url, suffix, group=f"orders_ro_{suffix}", login=f"alice_{suffix}")
    try:
        with env.admin() as conn:
            conn.execute("CREATE TABLE orders (id int PRIMARY KEY, item text NOT NULL)")
            conn.execute("INSERT INTO orders VALUES (1, 'widget')")
        env.create_role(env.group)
        env.create_role(env.login, login=True)
        monkeypatch.setenv(DSN_ENV, url.render_as_string(hide_password=False))
        yield env
    finally:
        postgres.drop_database(database)
        with psycopg.connect(**env._params(dbname="postgres"), autocommit=True) as conn:
            for role in reversed(env.roles):
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def context(email: str | None, event: str = "grant") -> GrantContext:
    return GrantContext(
        event=event,  # type: ignore[arg-type]
        request_id=uuid.uuid4(),
        grant_id=uuid.uuid4(),
        workflow="orders-db",
        resource="orders-db",
        resource_name="Orders DB (read-only)",
        user=GrantUser(slack_id="U0ALICE", email=email, name="Alice"),
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        approved_by="U0BOB",
    )


def alice(env: Cluster) -> GrantContext:
    return context(f"{env.login.capitalize()}@Example.com")


def strategy(role: str, **kwargs: object) -> PostgresRole:
    return PostgresRole(role=role, dsn_env=DSN_ENV, **kwargs)  # type: ignore[arg-type]


def test_grant_gives_access_and_revoke_takes_it_back(cluster: Cluster) -> None:
    grant = strategy(cluster.group)
    assert cluster.select_as(cluster.login) == "denied"

    grant.grant(alice(cluster))
    assert cluster.select_as(cluster.login) == "ok"
    grant.grant(alice(cluster))  # idempotent
    assert cluster.select_as(cluster.login) == "ok"

    grant.revoke(alice(cluster))
    assert cluster.select_as(cluster.login) == "denied"
    grant.revoke(alice(cluster))  # idempotent
    assert cluster.select_as(cluster.login) == "denied"


def test_revoking_what_was_never_granted_succeeds(cluster: Cluster) -> None:
    strategy(cluster.group).revoke(alice(cluster))
    assert cluster.select_as(cluster.login) == "denied"


@pytest.mark.parametrize("form", ["sqlalchemy", "url", "postgres-scheme", "keywords"])
def test_connection_string_formats(
    cluster: Cluster, form: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = cluster.url
    dsns = {
        "sqlalchemy": url.render_as_string(hide_password=False),
        "url": url.set(drivername="postgresql").render_as_string(hide_password=False),
        "postgres-scheme": url.set(drivername="postgres").render_as_string(hide_password=False),
        "keywords": f"host={url.host} port={url.port} dbname={url.database} user={url.username}",
    }
    if url.password:
        dsns["keywords"] += f" password='{url.password}'"
    assert dsns["sqlalchemy"].startswith("postgresql+psycopg://")
    monkeypatch.setenv(DSN_ENV, dsns[form])

    strategy(cluster.group).grant(alice(cluster))
    assert cluster.select_as(cluster.login) == "ok"


def test_missing_login_is_a_grant_error(cluster: Cluster) -> None:
    nobody = context(f"nobody_{cluster.suffix}@example.com")
    with pytest.raises(GrantError, match=f"no database login 'nobody_{cluster.suffix}'"):
        strategy(cluster.group).grant(nobody)
    # A revoke that must guess the login (none recorded) and finds none is not "done".
    with pytest.raises(GrantError, match="did not record which login"):
        strategy(cluster.group).revoke(replace(nobody, event="revoke"))
    # The recorded login is gone: so is the access.
    gone = replace(nobody, event="revoke", undo={"login": f"nobody_{cluster.suffix}"})
    strategy(cluster.group).revoke(gone)


def test_keeps_the_strategy_contract(cluster: Cluster) -> None:
    from app.testing import check_strategy

    member = lambda: cluster.select_as(cluster.login) == "ok"  # noqa: E731
    nobody = context(f"nobody_{cluster.suffix}@example.com")
    assert (
        check_strategy(
            strategy(cluster.group),
            alice(cluster),
            has_access=member,
            failing=[(strategy(cluster.group), nobody)],
        )
        == []
    )
    with cluster.admin() as conn:  # a membership she had before: reported, and kept
        conn.execute(
            sql.SQL("GRANT {} TO {}").format(
                sql.Identifier(cluster.group), sql.Identifier(cluster.login)
            )
        )
    assert strategy(cluster.group).grant(alice(cluster)).already_had
    assert check_strategy(strategy(cluster.group), alice(cluster), has_access=member) == []


def test_revoke_takes_back_the_recorded_login_after_the_mapping_changed(cluster: Cluster) -> None:
    context_ = alice(cluster)
    granted = strategy(cluster.group).grant(context_)
    assert granted.undo == {"login": cluster.login, "role": cluster.group}
    edited = strategy(cluster.group, login="{slack_id}")  # the workflow file was edited
    edited.revoke(replace(context_, event="revoke", undo=dict(granted.undo)))
    assert cluster.select_as(cluster.login) == "denied"


def test_missing_group_role_is_a_grant_error(cluster: Cluster) -> None:
    with pytest.raises(GrantError, match=f'role "no_such_{cluster.suffix}" does not exist'):
        strategy(f"no_such_{cluster.suffix}").grant(alice(cluster))


def test_missing_email_is_a_grant_error(cluster: Cluster) -> None:
    with pytest.raises(GrantError, match="U0ALICE has no email address"):
        strategy(cluster.group).grant(context(None))


def test_unknown_placeholder_is_a_grant_error_at_call_time(cluster: Cluster) -> None:
    with pytest.raises(GrantError, match=r"unknown placeholder \{username\}"):
        strategy(cluster.group, login="{username}").grant(alice(cluster))


def test_missing_env_var_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DSN_ENV, raising=False)
    with pytest.raises(GrantError, match=f"environment variable {DSN_ENV} is not set"):
        strategy("orders_readonly").grant(context("alice@example.com"))
    with pytest.raises(GrantError, match=DSN_ENV):
        strategy("orders_readonly").revoke(context("alice@example.com"))


def test_unreachable_server_fails_quickly(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed when the block ends: nobody listens there
    monkeypatch.setenv(DSN_ENV, f"postgresql://admin:s3cret@127.0.0.1:{port}/orders")
    started = time.monotonic()
    with pytest.raises(GrantError, match="could not connect to PostgreSQL") as raised:
        strategy("orders_readonly", timeout=2).grant(context("alice@example.com"))
    assert time.monotonic() - started < 5
    assert DSN_ENV in str(raised.value) and "s3cret" not in str(raised.value)


def test_malformed_connection_string_is_not_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DSN_ENV, "host=db password=s3cret garbage")
    with pytest.raises(GrantError, match="not hold a valid PostgreSQL connection") as raised:
        strategy("orders_readonly").grant(context("alice@example.com"))
    assert "s3cret" not in str(raised.value)
    assert strategy("orders_readonly").problems() == [
        f"environment variable {DSN_ENV} does not hold a valid PostgreSQL connection string"
    ]


def test_admin_without_privilege_is_a_grant_error(
    cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    as_alice = cluster.url.set(username=cluster.login, password=PASSWORD)
    monkeypatch.setenv(DSN_ENV, as_alice.render_as_string(hide_password=False))
    with pytest.raises(GrantError, match="may not do this"):
        strategy(cluster.group).grant(alice(cluster))
    assert cluster.select_as(cluster.login) == "denied"


def test_blocked_statement_times_out(cluster: Cluster) -> None:
    with cluster.admin() as other:  # an uncommitted concurrent GRANT of the same membership
        other.autocommit = False
        other.execute(
            sql.SQL("GRANT {} TO {}").format(
                sql.Identifier(cluster.group), sql.Identifier(cluster.login)
            )
        )
        started = time.monotonic()
        with pytest.raises(GrantError, match="not done within 1s"):
            strategy(cluster.group, timeout=1).grant(alice(cluster))
        assert time.monotonic() - started < 4
        other.rollback()


@pytest.mark.parametrize("name", ['weird"role', "weird role; DROP TABLE orders"])
def test_role_names_are_quoted_as_identifiers(cluster: Cluster, name: str) -> None:
    role = f"{name} {cluster.suffix}"
    cluster.create_role(role)

    strategy(role).grant(alice(cluster))
    assert cluster.select_as(cluster.login) == "ok"
    strategy(role).revoke(alice(cluster))
    assert cluster.select_as(cluster.login) == "denied"
    assert cluster.table_exists()


def test_login_from_a_mapping_function(cluster: Cluster) -> None:
    logins = {"U0ALICE": cluster.login}
    grant = strategy(cluster.group, login=lambda user: logins[user.slack_id])

    grant.grant(context(None))  # no email needed: the function decides
    assert cluster.select_as(cluster.login) == "ok"
    grant.revoke(context(None))
    assert cluster.select_as(cluster.login) == "denied"


def test_injected_login_is_only_an_identifier(cluster: Cluster) -> None:
    grant = strategy(cluster.group, login=lambda user: "alice; DROP TABLE orders")

    with pytest.raises(GrantError, match="no database login 'alice; DROP TABLE orders'"):
        grant.grant(alice(cluster))
    with pytest.raises(GrantError, match="no database login 'alice; DROP TABLE orders'"):
        grant.revoke(alice(cluster))
    assert cluster.table_exists()


def test_failing_mapping_function_is_a_grant_error(cluster: Cluster) -> None:
    grant = strategy(cluster.group, login=lambda user: {}[user.slack_id])
    with pytest.raises(GrantError, match="<lambda>: KeyError: 'U0ALICE'"):
        grant.grant(alice(cluster))


def test_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(DSN_ENV, "postgresql+psycopg://admin@db.internal/orders")
    assert strategy("orders_readonly").problems() == []
    assert strategy("orders_readonly", login=lambda user: "x").problems() == []
    assert strategy("orders_readonly", login="{slack_id}_{email}").problems() == []

    assert strategy("orders_readonly", login="{username}").problems() == [
        "login template '{username}': unknown placeholder {username}; "
        "known: {email_local}, {email}, {slack_id}"
    ]
    assert (
        strategy("orders_readonly", login="{email.upper}")
        .problems()[0]
        .startswith("login template '{email.upper}': unknown placeholder")
    )
    assert (
        strategy("orders_readonly", login="{email_local")
        .problems()[0]
        .startswith("login template '{email_local' is invalid")
    )
    assert strategy("orders_readonly", login="shared").problems() == [
        "login template 'shared' has no placeholder: every user would get the same login"
    ]
    assert strategy("").problems() == ["role '' is not a valid PostgreSQL role name"]
    assert strategy("r" * 64).problems() == [f"role '{'r' * 64}' is longer than 63 bytes"]
    assert strategy("orders_readonly", timeout=0).problems() == ["timeout must be positive, not 0"]

    monkeypatch.delenv(DSN_ENV)
    assert strategy("orders_readonly", login="{nope}").problems() == [
        "login template '{nope}': unknown placeholder {nope}; "
        "known: {email_local}, {email}, {slack_id}",
    ]
    assert strategy("orders_readonly").required_env() == [DSN_ENV]


def test_describe_and_retry() -> None:
    assert strategy("orders_readonly").describe() == (
        f"PostgreSQL: GRANT orders_readonly TO {{email_local}} (connection from ${DSN_ENV})"
    )

    def db_login(user: GrantUser) -> str:
        return user.slack_id

    assert strategy("r", login=db_login).describe() == (
        f"PostgreSQL: GRANT r TO db_login(user) (connection from ${DSN_ENV})"
    )
    assert strategy("r").retry == Retry()
    assert strategy("r", retry=Retry(attempts=2)).retry.attempts == 2


def test_through_the_bot_a_login_reads_while_granted_and_not_after_expiry(
    cluster: Cluster, bot_factory, fake_slack, webhook
) -> None:
    """The whole loop with a real database target: request, approve, read, expire, denied."""
    from app.core.models import GrantState
    from app.slack.ids import Ids
    from app.workflows import Resource, Workflow
    from tests.support.bot import APPROVER, APPROVERS_CHANNEL, REQUESTER
    from tests.support.wait import wait_until

    fake_slack.add_user(REQUESTER, f"{cluster.login}@example.com", "Alice")
    workflow = Workflow(
        name="databases",
        approvers_channel=APPROVERS_CHANNEL,
        approvers=[APPROVER],
        durations=[timedelta(seconds=2)],
        resources=[
            Resource(
                id="orders-db-readonly", name="Orders DB (read-only)", grant=strategy(cluster.group)
            )
        ],
    )
    bot = bot_factory(workflows=[workflow])
    assert cluster.select_as(cluster.login) == "denied"
    request, _ = bot.request_access(resource="orders-db-readonly", duration=timedelta(seconds=2))

    bot.click(APPROVER, Ids.APPROVE, request)

    wait_until(lambda: bot.grants() and bot.grants()[0].state == GrantState.ACTIVE, what="grant")
    assert cluster.select_as(cluster.login) == "ok"
    wait_until(lambda: bot.grants()[0].state == GrantState.REVOKED, what="revocation at expiry")
    assert cluster.select_as(cluster.login) == "denied"
