"""`accessbot grants list` and `accessbot audit export`, registered onto the main parser."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn, TextIO

from sqlalchemy.orm import Session, sessionmaker

from app.admin.audit import FORMATS, export_audit, parse_since
from app.admin.grants import format_table, list_grants, rows_to_json
from app.core.ports import utcnow

Database = Callable[[], sessionmaker[Session]]


def register(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    *,
    database: Database,
    revoke: Callable[[argparse.Namespace], None] | None = None,
) -> None:
    """Add `grants` and `audit` to `commands`. Opens nothing: `database()` is called only
    when one of these commands runs. `revoke` runs `grants revoke` (it needs Slack too)."""
    grants = _register_grants(commands, database)
    if revoke is not None:
        parser = grants.add_parser(
            "revoke",
            help="revoke a grant now, through its strategy; the user is told",
            description="Revoke a grant now through its grant strategy, and tell the user why.",
        )
        parser.add_argument("id", help="the grant's or its request's id (or a unique prefix)")
        parser.add_argument("--reason", required=True, help="shown to the user and audited")
        parser.set_defaults(func=revoke)
    _register_audit(commands, database)


# -- grants list ---------------------------------------------------------------------------


def _register_grants(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], database: Database
) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    grants = commands.add_parser(
        "grants", help="inspect and revoke grants", description="Inspect and revoke grants."
    )
    actions = grants.add_subparsers(dest="grants_command", required=True)
    parser = actions.add_parser(
        "list",
        help="list grants, newest first",
        description="List grants with their requests, newest first.",
    )
    parser.add_argument(
        "--active",
        action="store_true",
        help="only grants whose access may still be live: state 'active', and 'revoking' "
        "(due for revocation, but the revoke call has not succeeded yet)",
    )
    parser.add_argument(
        "--overdue",
        action="store_true",
        help="only grants past their expiry whose access may still be live (the revoke has "
        "not succeeded yet): what to check by hand when a target keeps failing",
    )
    parser.add_argument(
        "--user", metavar="EMAIL", help="only grants requested by EMAIL (case-insensitive)"
    )
    parser.add_argument("--json", action="store_true", help="print a JSON array, not a table")
    parser.add_argument(
        "--limit", metavar="N", type=_positive_int, help="show at most the N newest grants"
    )
    parser.set_defaults(func=lambda args: _grants_list(args, database))
    return actions


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive whole number, got {text!r}")
    return value


def _grants_list(args: argparse.Namespace, database: Database) -> None:
    with database()() as session:
        rows = list_grants(
            session,
            active_only=args.active,
            overdue_at=utcnow() if args.overdue else None,
            user_email=args.user,
            limit=args.limit,
        )
    print(rows_to_json(rows) if args.json else format_table(rows, now=utcnow()))


# -- audit export --------------------------------------------------------------------------


def _register_audit(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], database: Database
) -> None:
    audit = commands.add_parser(
        "audit",
        help="the append-only audit log",
        description="The append-only audit log (read-only).",
    )
    actions = audit.add_subparsers(dest="audit_command", required=True)
    parser = actions.add_parser(
        "export",
        help="write audit events as JSON Lines or CSV",
        description="Write audit events in the order they were recorded, as JSON Lines (one "
        "object a line) or CSV (detail as a compact JSON string). Rows are streamed, so a large "
        "log is never held in memory.",
    )
    parser.add_argument(
        "--since",
        metavar="DATE",
        help="only events at or after DATE: YYYY-MM-DD (midnight UTC), an ISO 8601 timestamp "
        "(UTC unless it has an offset), or a relative age such as 7d, 12h or 30m",
    )
    parser.add_argument(
        "--format", choices=FORMATS, default="jsonl", help="output format (default: jsonl)"
    )
    parser.add_argument(
        "--output", metavar="FILE", type=Path, help="write to FILE instead of standard output"
    )
    parser.set_defaults(func=lambda args: _audit_export(args, database))


def _audit_export(args: argparse.Namespace, database: Database) -> None:
    try:
        since = None if args.since is None else parse_since(args.since)
    except ValueError as exc:
        _fail(f"--since: {exc}")
    with _output(args.output) as out, database()() as session:
        count = export_audit(session, out, since=since, fmt=args.format)
    if args.output is not None:
        print(f"wrote {count} audit event{'' if count == 1 else 's'} to {args.output}")


@contextmanager
def _output(path: Path | None) -> Iterator[TextIO]:
    if path is None:
        yield sys.stdout
        return
    try:
        out = path.open("w", encoding="utf-8", newline="")
    except OSError as exc:
        _fail(f"--output: cannot write {path}: {exc.strerror}", 1)
    with out:
        yield out


def _fail(message: str, code: int = 2) -> NoReturn:
    print(f"accessbot: {message}", file=sys.stderr)
    raise SystemExit(code)
