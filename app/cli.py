"""accessbot: just-in-time access from Slack. `accessbot serve` runs the bot; the other
commands migrate the database, check and try out the policy, and inspect grants and audit."""

from __future__ import annotations

import argparse
import atexit
import gc
import logging
import re
import signal
import sys
import threading
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from dotenv import load_dotenv
from slack_bolt.error import BoltError
from slack_sdk.errors import SlackApiError
from sqlalchemy.orm import Session, sessionmaker

from app.admin.cli import register as register_admin
from app.config import (
    DatabaseSettings,
    S,
    Settings,
    SettingsError,
    WorkflowSettings,
    load_settings,
)
from app.core.durations import describe_duration
from app.logs import configure_logging
from app.workflows.loader import Registry, WorkflowError, load_workflows

if TYPE_CHECKING:
    from app.runtime import Runtime
    from app.server import HttpServer
    from app.slack.http import SlackHttp

log = logging.getLogger("accessbot")
DURATION = re.compile(r"(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")


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


def _migrate(settings: DatabaseSettings, database_url: str) -> None:
    """Migrate as MIGRATION_DATABASE_URL's role when set (the embedded server has one role)."""
    from app.core.text import redact_url
    from app.db.migrate import current_revision, migrate

    owner_url = settings.migration_database_url if settings.database_url else None
    before = current_revision(database_url)
    migrate(database_url, owner_url)
    after = current_revision(database_url)
    change = f"migrated {before or 'an empty database'} -> {after}" if before != after else after
    log.info("database %s: schema at %s", redact_url(database_url), change)


def cmd_serve(args: argparse.Namespace) -> None:
    settings = _settings(Settings)
    if args.role:
        settings = settings.model_copy(update={"process_role": args.role})
    configure_logging(settings.log_level, settings.log_format)
    try:
        registry = load_workflows(settings.workflows_dir)
    except WorkflowError as exc:
        print(exc, file=sys.stderr)
        _fail("refusing to start: the workflows above are invalid", 1)
    for warning in registry.warnings:
        log.warning("%s", warning)

    from app.db.migrate import owns_audit_log
    from app.runtime import build_runtime

    database_url = _database_url(settings)
    _migrate(settings, database_url)
    if owns_audit_log(database_url):
        log.warning(
            "the bot's database role owns audit_events, so it could disable the audit log's "
            "append-only trigger; run it under a role that does not (MIGRATION_DATABASE_URL)"
        )
    try:
        runtime = build_runtime(settings, database_url=database_url, registry=registry)
    except (BoltError, SlackApiError, OSError) as exc:  # Bolt checks the token with auth.test
        _fail(f"could not verify SLACK_BOT_TOKEN with Slack at {settings.slack_api_url}: {exc}", 1)
    from app.slack.channels import open_approvers_channels

    problems = open_approvers_channels(registry, runtime.slack)
    if problems:
        for problem in problems:
            print(problem, file=sys.stderr)
        runtime.stop(timeout=0)
        _fail("refusing to start: approvers' channels above are open to anyone who joins", 1)
    slack_handler = None
    socket_mode = None
    if settings.process_role == "worker":
        log.info("role worker: no Slack traffic here; web processes store it for this one")
    elif settings.socket_mode:
        from app.slack.socket_mode import connect_socket_mode

        assert settings.slack_app_token
        socket_mode = connect_socket_mode(
            runtime.bolt,
            settings.slack_app_token,
            ping_interval=settings.socket_mode_ping_seconds,
        )
    else:
        from app.slack.http import SlackHttp

        assert settings.slack_signing_secret, "required without SLACK_APP_TOKEN"
        slack_handler = SlackHttp(
            runtime.bolt,
            signing_secret=settings.slack_signing_secret,
            max_body=settings.max_body_bytes,
        )
    servers = _http_servers(settings, runtime, slack_handler)

    def drain() -> None:
        """Refuse new Slack requests (503: Slack tries again, elsewhere), take no new work,
        let work in flight finish within SHUTDOWN_GRACE_SECONDS, hand back the rest."""
        log.info(
            "SIGTERM: finishing work in flight (at most %g s), then exiting",
            settings.shutdown_grace_seconds,
        )
        if socket_mode is not None:
            socket_mode.close()  # no new events; Slack delivers them to another connection
        runtime.stop()
        for server in servers:
            server.stop()

    drainer = threading.Thread(target=drain, name="shutdown")

    def on_sigterm(*_: object) -> None:
        if not runtime.readiness.draining.is_set():
            runtime.readiness.draining.set()
            drainer.start()

    signal.signal(signal.SIGTERM, on_sigterm)
    runtime.start()
    _say_where(settings, servers, registry)
    # What start-up built (modules, the workflows, the clients: about 130,000 objects) lives
    # as long as the process: keep it out of the collector's full passes, each of which held
    # every thread, acks included, for 30 to 60 ms.
    gc.freeze()
    server, *others = servers
    for other in others:
        threading.Thread(target=other.run, name="metrics-http", daemon=True).start()
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        if drainer.is_alive():
            drainer.join()
        elif not runtime.readiness.draining.is_set():
            runtime.stop()
    log.info("stopped")
    if runtime.readiness.draining.is_set():
        _exit_now()


def _say_where(settings: Settings, servers: list[HttpServer], registry: Registry) -> None:
    """One line per fact a person starting the bot needs."""
    for workflow in registry.workflows:
        log.info(
            "workflow %s: %s (approvers' channel %s)",
            workflow.name,
            ", ".join(r.id for r in workflow.resources),
            workflow.approvers_channel,
        )
    first = servers[0]
    base = f"http://{settings.host}:{first.port}"
    if settings.process_role == "web":
        log.info(
            "role web: the work is stored for worker processes (accessbot serve --role worker)"
        )
    if settings.process_role == "worker":
        log.info("health and metrics on %s (GET /healthz, /readyz, /metrics)", base)
    elif settings.socket_mode:
        log.info("Slack: Socket Mode (SLACK_APP_TOKEN is set); no public URL is needed")
        log.info("health and metrics on %s (GET /healthz, /readyz, /metrics)", base)
    else:
        log.info(
            "Slack must call https://<this host's public name>/slack/events; listening on %s "
            "(POST /slack/events, GET /healthz, /readyz%s)",
            base,
            "" if len(servers) > 1 else ", /metrics",
        )
        if len(servers) > 1:
            log.info("metrics on http://%s:%s/metrics", settings.host, servers[1].port)
    log.info("accessbot serving %d resource(s) from %s", len(registry), settings.workflows_dir)


def _http_servers(
    settings: Settings, runtime: Runtime, slack: SlackHttp | None
) -> list[HttpServer]:
    """Over HTTP: Slack, health and metrics on PORT, or metrics on METRICS_PORT when set (so
    they need not face the internet). In Socket Mode: health and metrics on METRICS_PORT (PORT
    when unset)."""
    from app.server import AccessbotWsgi, make_server

    def listener(port: int, *, slack: SlackHttp | None, metrics: bool) -> HttpServer:
        app = AccessbotWsgi(
            slack=slack,
            engine=runtime.engine,
            traffic=runtime.after_ack.traffic,
            readiness=runtime.readiness,
            metrics=runtime.metrics.render if metrics else None,
        )
        return make_server(
            app,
            host=settings.host,
            port=port,
            threads=settings.worker_threads,
            max_body=settings.max_body_bytes,
        )

    if slack is None:
        return [listener(settings.metrics_port or settings.port, slack=None, metrics=True)]
    if settings.metrics_port is None:
        return [listener(settings.port, slack=slack, metrics=True)]
    return [
        listener(settings.port, slack=slack, metrics=False),
        listener(settings.metrics_port, slack=None, metrics=True),
    ]


def _exit_now() -> NoReturn:
    """Exit 0 without waiting for calls still running past the grace period (their leases
    were handed back; Python would otherwise join their threads at exit, however long)."""
    import atexit
    import os

    atexit._run_exitfuncs()  # the embedded PostgreSQL, if any, stops cleanly
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def cmd_doctor(args: argparse.Namespace) -> None:
    """Check the whole setup; one line per check; exit 1 on any ✗."""
    from app.doctor.run import run

    configure_logging(logging.ERROR)
    try:
        settings = load_settings(Settings)
    except SettingsError as exc:
        print(f"✗ {exc}")
        raise SystemExit(1) from None
    checks = run(settings)
    for check in checks:
        print(check.line())
    failures = sum(not check.ok for check in checks)
    if failures:
        print(f"{failures} problem(s): fix them, then run `accessbot doctor` again")
        raise SystemExit(1)
    print("everything checks out")


def cmd_db_upgrade(args: argparse.Namespace) -> None:
    configure_logging(logging.INFO)
    settings = _settings(DatabaseSettings)
    _migrate(settings, _database_url(settings))
    print("database is at the latest revision")


def cmd_workflows_check(args: argparse.Namespace) -> None:
    directory = args.dir or load_settings(WorkflowSettings).workflows_dir
    try:
        registry = load_workflows(directory)
    except WorkflowError as exc:
        for problem in [*exc.problems, *exc.warnings]:
            print(problem)
        print(f"{len(exc.problems)} problem(s) in {directory}", file=sys.stderr)
        raise SystemExit(1) from None
    for warning in registry.warnings:
        print(warning)
    settings = load_settings(WorkflowSettings)
    if settings.slack_bot_token:
        from slack_sdk import WebClient

        from app.slack.channels import open_approvers_channels

        client = WebClient(token=settings.slack_bot_token, base_url=settings.slack_api_url)
        problems = open_approvers_channels(registry, client)
        if problems:
            for problem in problems:
                print(problem)
            print(f"{len(problems)} problem(s) in {directory}", file=sys.stderr)
            raise SystemExit(1)
    else:
        print(
            "note: approvers' channels were not checked for public or Slack Connect access "
            "(set SLACK_BOT_TOKEN to check them)"
        )
    print(f"{directory}: {len(registry.workflows)} workflow(s), {len(registry)} resource(s), OK")


def cmd_workflows_simulate(args: argparse.Namespace) -> None:
    from app.workflows.simulate import report, request_info, simulate

    directory = args.dir or load_settings(WorkflowSettings).workflows_dir
    try:
        registry = load_workflows(directory, environment=False)
    except WorkflowError as exc:
        print(exc, file=sys.stderr)
        _fail("the workflows above are invalid", 1)
    found = registry.find(args.resource)
    if found is None:  # as `/access <word>` matches: the id or the name, ignoring case
        from app.core.intake import find_resource

        resource, _ = find_resource(registry, args.resource.split())
        found = registry.find(resource.id) if resource else None
    if found is None:
        known = ", ".join(sorted(r.id for w in registry.workflows for r in w.resources))
        _fail(f"unknown resource {args.resource!r}; known: {known}", 1)
    workflow, resource = found
    allowed = workflow.durations_for(resource)
    if args.duration not in allowed:
        choices = ", ".join(describe_duration(d) for d in allowed)
        _fail(f"{resource.name} can be requested for: {choices}", 1)
    info = request_info(
        workflow,
        resource,
        email=args.user,
        duration=args.duration,
        justification=args.justification,
        now=args.at,
        on_call=args.on_call,
        shift_ends=args.shift_ends,
        ticket=args.ticket,
    )
    outcome = simulate(workflow, info)
    print(report(outcome, info))
    if outcome.ticket_problem:
        _fail(f"the modal would refuse this request: {outcome.ticket_problem}", 1)


def parse_duration(text: str) -> timedelta:
    """`90s`, `15m`, `1h`, `1h30m`, `2d`."""
    match = DURATION.fullmatch(text.strip().lower())
    if not match or not any(match.groups()):
        raise argparse.ArgumentTypeError(f"{text!r} is not a duration like 15m, 1h or 1h30m")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def parse_moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def cmd_grants_revoke(args: argparse.Namespace) -> None:
    """Revoke now through the grant's strategy, and tell the user (so Slack settings are needed)."""
    import getpass

    from app.admin.grants import find_grant_id
    from app.core.errors import AccessError
    from app.core.models import GrantState
    from app.runtime import build_runtime

    settings = _settings(Settings)
    configure_logging(logging.WARNING, settings.log_format)
    try:
        registry = load_workflows(settings.workflows_dir)
    except WorkflowError as exc:
        print(exc, file=sys.stderr)
        _fail("the workflows above are invalid", 1)
    url = _database_url(settings)
    _migrate(settings, url)
    runtime = build_runtime(settings, database_url=url, registry=registry)
    runtime.start()  # its workers carry the revoke out, its sender tells the user
    try:
        with runtime.sessions.begin() as session:
            grant_id = find_grant_id(session, args.id)
        view = runtime.requests.revoke_early(
            grant_id=str(grant_id),
            actor=f"cli:{getpass.getuser()}"[:64],
            reason=args.reason,
            as_admin=True,
        )
        view = runtime.settle(view.id)
    except (LookupError, AccessError) as exc:
        _fail(str(exc), 1)
    finally:
        runtime.stop()
    who = view.requester_email or view.requester_slack_id
    if view.grant_state != GrantState.REVOKED:
        _fail(
            f"the revoke call for {view.resource_name} ({who}) failed: {view.grant_error}; "
            "accessbot keeps retrying it",
            1,
        )
    print(f"revoked {view.resource_name} from {who} (request {view.id}); they have been told")


def _admin_sessions() -> sessionmaker[Session]:
    """The database for the admin commands: DATABASE_URL, or the embedded server, migrated."""
    from app.db.session import make_engine, make_session_factory

    settings = _settings(DatabaseSettings)
    url = _database_url(settings)
    _migrate(settings, url)
    return make_session_factory(make_engine(url, pool_size=2))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="accessbot", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser(
        "serve", help="run the bot (HTTP, or Socket Mode with SLACK_APP_TOKEN)"
    )
    serve.add_argument(
        "--role",
        choices=["all", "web", "worker"],
        help="all (the default, PROCESS_ROLE): answer Slack and do the work; web: answer "
        "Slack, store the work; worker: do the stored work, grants, revokes and messages",
    )
    serve.set_defaults(func=cmd_serve)
    commands.add_parser(
        "doctor", help="check the setup (Slack, PagerDuty, database, workflows, targets)"
    ).set_defaults(func=cmd_doctor)
    db = commands.add_parser("db", help="database maintenance")
    db_commands = db.add_subparsers(dest="db_command", required=True)
    db_commands.add_parser(
        "upgrade", help="migrate the database to the latest revision"
    ).set_defaults(func=cmd_db_upgrade)
    register_admin(commands, database=_admin_sessions, revoke=cmd_grants_revoke)
    workflows = commands.add_parser("workflows", help="check or try out the access policy")
    workflow_commands = workflows.add_subparsers(dest="workflows_command", required=True)
    check = workflow_commands.add_parser(
        "check", help="validate every workflow; exit 1 with file:line: message for each problem"
    )
    check.add_argument("--dir", type=Path, help="workflows directory (default: WORKFLOWS_DIR)")
    check.set_defaults(func=cmd_workflows_check)
    simulate = workflow_commands.add_parser(
        "simulate", help="print what would happen to a request, touching neither Slack nor targets"
    )
    simulate.add_argument("--user", required=True, help="the requester's email")
    simulate.add_argument("--resource", required=True, help="a resource id or name")
    simulate.add_argument("--duration", required=True, type=parse_duration, help="e.g. 15m, 1h")
    simulate.add_argument(
        "--on-call", action="store_true", help="as if PagerDuty showed them on call"
    )
    simulate.add_argument("--at", type=parse_moment, help="the time of the request (ISO 8601)")
    simulate.add_argument("--ticket", help="the ticket reference given (Workflow(ticket=...))")
    simulate.add_argument(
        "--shift-ends",
        type=parse_moment,
        help="with --on-call: when the on-call entry ends (ISO 8601; default: permanent)",
    )
    simulate.add_argument("--justification", default="simulated request")
    simulate.add_argument("--dir", type=Path, help="workflows directory (default: WORKFLOWS_DIR)")
    simulate.set_defaults(func=cmd_workflows_simulate)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    # `.env` feeds the settings and also the variables workflows read (Env("..."), dsn_env);
    # what the environment already holds wins.
    load_dotenv(".env", override=False)
    args = build_parser().parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
