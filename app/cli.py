"""The `accessbot` command."""

from __future__ import annotations

import argparse
import atexit
import logging
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

from slack_bolt.error import BoltError
from slack_sdk.errors import SlackApiError

from app.config import DatabaseSettings, S, Settings, SettingsError, load_settings
from app.workflows.loader import WorkflowError, load_workflows

log = logging.getLogger("accessbot")


def _fail(message: str, code: int = 2) -> NoReturn:
    print(f"accessbot: {message}", file=sys.stderr)
    raise SystemExit(code)


def _settings(cls: type[S]) -> S:
    try:
        return load_settings(cls)
    except SettingsError as exc:
        _fail(str(exc))


def _database_url(settings: DatabaseSettings) -> str:
    """DATABASE_URL, or a PostgreSQL of our own in a local data directory."""
    if settings.database_url:
        return settings.database_url
    from app.db.embedded import EmbeddedPostgres, EmbeddedPostgresError

    server = EmbeddedPostgres(settings.embedded_db_dir)
    try:
        server.start()
        url = server.create_database("accessbot")
    except EmbeddedPostgresError as exc:
        _fail(f"could not start the embedded PostgreSQL: {exc}")
    atexit.register(server.stop)
    log.info(
        "DATABASE_URL is not set: using an embedded PostgreSQL in %s on 127.0.0.1:%d "
        "(set DATABASE_URL in production)",
        server.data_dir,
        server.port,
    )
    return url


def cmd_serve(args: argparse.Namespace) -> None:
    settings = _settings(Settings)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        registry = load_workflows(settings.workflows_dir)
    except WorkflowError as exc:
        print(exc, file=sys.stderr)
        _fail("refusing to start: the workflows above are invalid", 1)

    from app.db.migrate import upgrade
    from app.runtime import build_runtime
    from app.server import AccessbotWsgi, make_server

    database_url = _database_url(settings)
    upgrade(database_url)
    try:
        runtime = build_runtime(settings, database_url=database_url, registry=registry)
    except (BoltError, SlackApiError, OSError) as exc:  # Bolt checks the token with auth.test
        _fail(f"could not verify SLACK_BOT_TOKEN with Slack at {settings.slack_api_url}: {exc}", 1)
    slack_handler = None
    if settings.socket_mode:
        from slack_bolt.adapter.socket_mode import SocketModeHandler

        SocketModeHandler(runtime.bolt, settings.slack_app_token).connect()
        log.info("connected to Slack in Socket Mode")
    else:
        from slack_bolt.adapter.wsgi import SlackRequestHandler

        slack_handler = SlackRequestHandler(runtime.bolt)
    server = make_server(
        AccessbotWsgi(slack=slack_handler, engine=runtime.engine),
        host=settings.host,
        port=settings.port,
        threads=settings.worker_threads,
    )
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    runtime.start()
    log.info(
        "accessbot serving %d resource(s) from %s on http://%s:%s "
        "(POST /slack/events, GET /healthz)",
        len(registry),
        settings.workflows_dir,
        settings.host,
        server.port,
    )
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        runtime.stop()


def cmd_db_upgrade(args: argparse.Namespace) -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = _settings(DatabaseSettings)
    from app.db.migrate import upgrade

    upgrade(_database_url(settings))
    print("database is at the latest revision")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="accessbot", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="run the bot (HTTP, or Socket Mode with SLACK_APP_TOKEN)"
    )
    serve.set_defaults(func=cmd_serve)
    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser(
        "upgrade", help="migrate the database to the latest revision"
    ).set_defaults(func=cmd_db_upgrade)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
