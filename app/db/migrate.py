"""Alembic, driven from code: `accessbot db upgrade`, `accessbot serve` and the tests share it."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from alembic import command
from alembic.config import Config
from psycopg import sql
from sqlalchemy import create_engine, pool, text
from sqlalchemy.engine import make_url

# Any constant will do: it keeps two instances starting at once from migrating together.
MIGRATION_LOCK = 0x616363657373


def script_location() -> str:
    """`migrations/` beside `app/` in a checkout; `app.migrations` once installed with pip."""
    source_tree = Path(__file__).resolve().parents[2] / "migrations"
    if (source_tree / "env.py").is_file():
        return str(source_tree)
    return str(files("app.migrations"))


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", script_location())
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Upgrade under an advisory lock, so concurrent starts migrate once."""
    config = alembic_config(database_url)
    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK})
            connection.commit()
            try:
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
                connection.commit()
            finally:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK})
                connection.commit()
    finally:
        engine.dispose()


# What the bot's own role may do when it does not own the tables (MIGRATION_DATABASE_URL):
# read and write its working tables, append to the audit log, read the schema version.
APPEND_ONLY = ("audit_events",)
READ_ONLY = ("alembic_version",)


def role_of(database_url: str) -> str | None:
    return make_url(database_url).username


def grant_app_role(migration_url: str, role: str) -> None:
    """Give `role` what the bot needs and no more: no UPDATE, DELETE or TRUNCATE on the audit
    log, no ownership (so no ALTER TABLE … DISABLE TRIGGER, no DROP TRIGGER)."""
    engine = create_engine(migration_url, poolclass=pool.NullPool)
    who = sql.Identifier(role)
    try:
        with engine.begin() as connection:
            tables = connection.execute(
                text("SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")
            ).scalars()
            statements = [sql.SQL("GRANT USAGE ON SCHEMA public TO {}").format(who)]
            for table in tables:
                name = sql.Identifier(table)
                statements.append(sql.SQL("REVOKE ALL ON {} FROM {}").format(name, who))
                if table in APPEND_ONLY:
                    rights = "SELECT, INSERT"
                elif table in READ_ONLY:
                    rights = "SELECT"
                else:
                    rights = "SELECT, INSERT, UPDATE, DELETE"
                statements.append(sql.SQL("GRANT " + rights + " ON {} TO {}").format(name, who))
            statements.append(
                sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(who)
            )
            raw = connection.connection.dbapi_connection
            assert raw is not None
            for statement in statements:
                connection.exec_driver_sql(statement.as_string(raw))  # type: ignore[arg-type]
    finally:
        engine.dispose()


def migrate(database_url: str, migration_url: str | None) -> None:
    """Upgrade as the owner (`migration_url`, else the bot's own URL); when the two are
    different roles, grant the bot's role its rights on what the migrations made."""
    if not migration_url:
        upgrade(database_url)
        return
    upgrade(migration_url)
    role = role_of(database_url)
    if role and role != role_of(migration_url):
        grant_app_role(migration_url, role)


def owns_audit_log(database_url: str) -> bool:
    """Does the bot's role own audit_events (and so could drop its append-only trigger)?"""
    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            owner = connection.execute(
                text(
                    "SELECT pg_has_role(current_user, tableowner, 'USAGE') FROM pg_tables "
                    "WHERE schemaname = current_schema() AND tablename = 'audit_events'"
                )
            ).scalar()
        return bool(owner)
    finally:
        engine.dispose()


def head_revision() -> str:
    """The latest migration this code ships."""
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", script_location())
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None, "the migrations have one head"
    return head


def current_revision(database_url: str) -> str | None:
    """The schema's migration, or None when the database has none yet."""
    engine = create_engine(database_url, poolclass=pool.NullPool)
    try:
        with engine.connect() as connection:
            if not connection.execute(text("SELECT to_regclass('alembic_version')")).scalar():
                return None
            return connection.execute(text("SELECT version_num FROM alembic_version")).scalar()
    finally:
        engine.dispose()
