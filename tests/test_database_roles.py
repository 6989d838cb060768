"""The bot may run under a role that does not own its tables (MIGRATION_DATABASE_URL): it
works, and it cannot UPDATE, DELETE or TRUNCATE the audit log, nor switch its trigger off."""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy.engine import make_url

from app.core.models import GrantState
from app.db.migrate import migrate, owns_audit_log
from app.slack.ids import Ids
from tests.support.bot import APPROVER, start_bot
from tests.support.fake_slack import FakeSlack
from tests.support.wait import wait_until
from tests.support.webhook_receiver import WebhookReceiver


@pytest.fixture
def app_role(database_url: str) -> Iterator[str]:
    """A login role that owns nothing, and its URL to the test database."""
    owner = make_url(database_url)
    role = f"accessbot_app_{uuid.uuid4().hex[:8]}"
    password = secrets.token_urlsafe(16)
    admin = owner.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(
            psycopg.sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                psycopg.sql.Identifier(role), psycopg.sql.Literal(password)
            )
        )
    yield owner.set(username=role, password=password).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as connection:
        name = psycopg.sql.Identifier(role)
        connection.execute(psycopg.sql.SQL("DROP OWNED BY {}").format(name))
        connection.execute(psycopg.sql.SQL("DROP ROLE {}").format(name))


def plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def test_the_bot_runs_under_a_role_that_owns_nothing(
    database_url: str, app_role: str, fake_slack: FakeSlack, webhook: WebhookReceiver
) -> None:
    migrate(app_role, database_url)  # the owner migrates, then grants the bot's role
    assert owns_audit_log(database_url) and not owns_audit_log(app_role)
    bot = start_bot(database_url=app_role, slack=fake_slack, webhook=webhook)
    try:
        request, _ = bot.request_access()
        bot.click(APPROVER, Ids.APPROVE, request)
        wait_until(
            lambda: (g := bot.grant_of(request)) and g.state == GrantState.ACTIVE,
            what="the grant, written by the bot's own role",
        )
        assert bot.audit_events(request.id)[:3] == ["requested", "approved", "granted"]
    finally:
        bot.stop()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET actor = 'UADMIN'",
        "DELETE FROM audit_events",
        "TRUNCATE audit_events",
        "ALTER TABLE audit_events DISABLE TRIGGER ALL",
        "ALTER TABLE audit_events DISABLE TRIGGER audit_events_no_update_or_delete",
        "DROP TRIGGER audit_events_no_update_or_delete ON audit_events",
        "DROP TABLE audit_events",
        "UPDATE alembic_version SET version_num = '0001'",
    ],
)
def test_the_bots_role_cannot_silence_the_audit_log(
    database_url: str, app_role: str, statement: str
) -> None:
    migrate(app_role, database_url)
    with psycopg.connect(plain(app_role)) as connection:
        connection.execute(
            "INSERT INTO audit_events (event, actor, detail) VALUES ('test', 'UBOT', '{}')"
        )
        connection.commit()
        # refused for want of the privilege, not by the trigger (which a table's owner can drop)
        with pytest.raises(
            psycopg.errors.InsufficientPrivilege, match=r"permission denied|must be owner"
        ):
            connection.execute(statement)
