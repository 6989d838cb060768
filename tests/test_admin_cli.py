"""`accessbot grants list` and `accessbot audit export` against the real PostgreSQL."""

from __future__ import annotations

import argparse
import csv
import io
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from app.admin.audit import parse_since
from app.admin.cli import register
from app.admin.grants import GrantRow, format_table
from app.core.audit import Event, record
from app.core.models import AccessRequest, AuditEvent, Grant, GrantState, RequestState
from app.core.ports import utcnow
from app.db.session import make_engine, make_session_factory
from tests.support.bot import (
    APPROVER,
    APPROVER_2,
    APPROVERS_CHANNEL,
    REQUESTER,
    insert_active_grant,
)

GRANT_KEYS = {
    "request_id",
    "grant_id",
    "resource",
    "workflow",
    "user",
    "state",
    "granted_at",
    "expires_at",
    "ended_at",
    "approved_by",
}
DETAIL = {"note": 'said "hi", then left', "nested": {"n": 1, "items": [1, "two", None]}, "é": "ü"}


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    engine = make_engine(database_url, pool_size=2)
    yield make_session_factory(engine)
    engine.dispose()


def run(sessions: sessionmaker[Session], *argv: str) -> None:
    parser = argparse.ArgumentParser(prog="accessbot")
    commands = parser.add_subparsers(dest="command", required=True)
    register(commands, database=lambda: sessions)
    args = parser.parse_args(argv)
    args.func(args)


def insert_grant(
    sessions: sessionmaker[Session],
    *,
    state: GrantState,
    email: str | None,
    slack_id: str = REQUESTER,
    resource: str = "orders-db",
    approved_by: str | None = APPROVER_2,
    age: timedelta = timedelta(hours=1),
) -> Grant:
    """A grant created `age` ago: ended an hour later when REVOKED, never granted when FAILED."""
    created = utcnow() - age
    ended = state in (GrantState.REVOKED, GrantState.FAILED)
    granted = state is not GrantState.FAILED
    with sessions.begin() as session:
        request = AccessRequest(
            id=uuid.uuid4(),
            workflow="staging",
            resource_id=resource,
            requester_slack_id=slack_id,
            requester_email=email,
            justification="earlier",
            duration=timedelta(hours=1),
            state=RequestState.APPROVED,
            created_at=created,
            decided_by=approved_by,
            decided_at=created,
            approvers_channel=APPROVERS_CHANNEL,
        )
        grant = Grant(
            id=uuid.uuid4(),
            request=request,
            state=state,
            created_at=created,
            granted_at=created if granted else None,
            expires_at=created + timedelta(hours=1) if granted else None,
            ended_at=created + timedelta(hours=1) if ended else None,
        )
        session.add_all([request, grant])
    return grant


def insert_event(
    sessions: sessionmaker[Session], at: datetime, event: str = "granted", **detail: Any
) -> None:
    with sessions.begin() as session:
        session.add(
            AuditEvent(
                at=at,
                event=event,
                actor=APPROVER,
                request_id=uuid.uuid4(),
                grant_id=None,
                detail=detail or DETAIL,
            )
        )


def table_lines(output: str) -> list[str]:
    return output.rstrip("\n").splitlines()


# -- grants list ---------------------------------------------------------------------------


def test_table_lists_active_grants_with_time_left_and_approver(
    sessions: sessionmaker[Session], capsys: pytest.CaptureFixture[str]
) -> None:
    grant = insert_active_grant(sessions, expires_in=timedelta(hours=2, minutes=5, seconds=30))

    run(sessions, "grants", "list")

    header, row, total = table_lines(capsys.readouterr().out)
    assert header.split() == [
        "REQUEST", "RESOURCE", "USER", "STATE", "GRANTED", "EXPIRES", "LEFT", "APPROVED", "BY"
    ]  # fmt: skip
    assert row.split() == [
        str(grant.request_id)[:8],
        "orders-db",
        "alice@example.com",
        "active",
        *f"{grant.granted_at:%Y-%m-%d %H:%M}".split(),
        *f"{grant.expires_at:%Y-%m-%d %H:%M}".split(),
        "2h05m",
        APPROVER,
    ]
    assert header.index("LEFT") == row.index("2h05m")  # the columns line up
    assert total == "1 grant"


def test_active_excludes_revoked_and_failed_but_keeps_revoking(
    sessions: sessionmaker[Session], capsys: pytest.CaptureFixture[str]
) -> None:
    active = insert_active_grant(sessions, expires_in=timedelta(minutes=14, seconds=30))
    revoking = insert_grant(sessions, state=GrantState.REVOKING, email="dan@example.com")
    insert_grant(sessions, state=GrantState.REVOKED, email="erin@example.com")
    insert_grant(sessions, state=GrantState.FAILED, email="frank@example.com")

    run(sessions, "grants", "list")
    assert table_lines(capsys.readouterr().out)[-1] == "4 grants"

    run(sessions, "grants", "list", "--active")
    lines = table_lines(capsys.readouterr().out)
    assert (
        [line.split()[0] for line in lines[1:-1]]
        == [
            str(active.request_id)[:8],  # newest first
            str(revoking.request_id)[:8],
        ]
    )
    assert lines[1].split()[-2:] == ["14m", APPROVER]
    # Revoking since its expiry (an hour after it was created, just now): overdue, not "left".
    assert lines[2].split()[-2:] == ["overdue", APPROVER_2]
    assert lines[-1] == "2 grants"


def test_overdue_lists_only_live_grants_past_their_expiry(
    sessions: sessionmaker[Session], capsys: pytest.CaptureFixture[str]
) -> None:
    insert_active_grant(sessions, expires_in=timedelta(minutes=10))  # live, not yet due
    stuck = insert_grant(  # its revoke keeps failing: expired 2 hours ago, still revoking
        sessions, state=GrantState.REVOKING, email="dan@example.com", age=timedelta(hours=3)
    )
    late = insert_active_grant(sessions, expires_in=timedelta(minutes=-20))  # not picked up yet
    insert_grant(
        sessions, state=GrantState.REVOKED, email="erin@example.com", age=timedelta(days=1)
    )

    run(sessions, "grants", "list", "--overdue")

    lines = table_lines(capsys.readouterr().out)
    assert [line.split()[0] for line in lines[1:-1]] == [
        str(late.request_id)[:8],
        str(stuck.request_id)[:8],
    ]
    assert "overdue 20m" in lines[1] and "overdue 2h00m" in lines[2]
    assert lines[-1] == "2 grants"
    run(sessions, "grants", "list", "--overdue", "--json")
    assert {row["state"] for row in json.loads(capsys.readouterr().out)} == {
        "active",
        "revoking",
    }


def test_user_filter_matches_email_case_insensitively(
    sessions: sessionmaker[Session], capsys: pytest.CaptureFixture[str]
) -> None:
    insert_active_grant(sessions, expires_in=timedelta(minutes=30))  # alice@example.com
    dan = insert_grant(sessions, state=GrantState.REVOKED, email="Dan.Ops@Example.com")
    insert_grant(sessions, state=GrantState.ACTIVE, email=None, slack_id="UNOEMAIL")

    run(sessions, "grants", "list", "--user", "dan.ops@EXAMPLE.COM")

    lines = table_lines(capsys.readouterr().out)
    assert [line.split()[:3] for line in lines[1:-1]] == [
        [str(dan.request_id)[:8], "orders-db", "Dan.Ops@Example.com"]
    ]
    assert lines[-1] == "1 grant"


def test_user_column_falls_back_to_the_slack_id(
    sessions: sessionmaker[Session], capsys: pytest.CaptureFixture[str]
) -> None:
    insert_grant(sessions, state=GrantState.REVOKED, email=None, slack_id="UNOEMAIL")

    run(sessions, "grants", "list")

    assert table_lines(capsys.readouterr().out)[1].split()[2] == "UNOEMAIL"


def test_no_grants(sessions: sessionmaker[Session], capsys: pytest.CaptureFixture[str]) -> None:
    run(sessions, "grants", "list")
    assert capsys.readouterr().out == "no grants\n"

    insert_grant(sessions, state=GrantState.REVOKED, email="erin@example.com")
    run(sessions, "grants", "list", "--active")
    assert capsys.readouterr().out == "no grants\n"


def test_limit_keeps_the_newest(
    sessions: sessionmaker[Session], capsys: pytest.CaptureFixture[str]
) -> None:
    older = insert_grant(sessions, state=GrantState.REVOKED, email="a@x.io", age=timedelta(days=2))
    newer = insert_grant(sessions, state=GrantState.REVOKED, email="b@x.io", age=timedelta(days=1))
    insert_grant(sessions, state=GrantState.REVOKED, email="c@x.io", age=timedelta(days=3))

    run(sessions, "grants", "list", "--json", "--limit", "2")

    assert [g["grant_id"] for g in json.loads(capsys.readouterr().out)] == [
        str(newer.id),
        str(older.id),
    ]


def test_limit_must_be_positive(
    sessions: sessionmaker[Session], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        run(sessions, "grants", "list", "--limit", "0")
    assert exit_info.value.code == 2
    assert "--limit: expected a positive whole number, got '0'" in capsys.readouterr().err


def test_json_output_has_every_key_with_its_value(
    sessions: sessionmaker[Session], capsys: pytest.CaptureFixture[str]
) -> None:
    active = insert_active_grant(sessions, expires_in=timedelta(minutes=10))
    revoked = insert_grant(
        sessions, state=GrantState.REVOKED, email=None, slack_id="UOTHER", approved_by=None
    )

    run(sessions, "grants", "list", "--json")

    first, second = json.loads(capsys.readouterr().out)
    assert set(first) == set(second) == GRANT_KEYS
    assert first == {
        "request_id": str(active.request_id),
        "grant_id": str(active.id),
        "resource": "orders-db",
        "workflow": "production",
        "user": {"email": "alice@example.com", "slack_id": REQUESTER},
        "state": "active",
        "granted_at": iso(active.granted_at),
        "expires_at": iso(active.expires_at),
        "ended_at": None,
        "approved_by": APPROVER,
    }
    assert second == {
        "request_id": str(revoked.request_id),
        "grant_id": str(revoked.id),
        "resource": "orders-db",
        "workflow": "staging",
        "user": {"email": None, "slack_id": "UOTHER"},
        "state": "revoked",
        "granted_at": iso(revoked.granted_at),
        "expires_at": iso(revoked.expires_at),
        "ended_at": iso(revoked.ended_at),
        "approved_by": None,
    }
    assert first["granted_at"].endswith("Z")
    assert datetime.fromisoformat(first["expires_at"]) == active.expires_at


def test_json_output_is_an_empty_array_when_there_are_no_grants(
    sessions: sessionmaker[Session], capsys: pytest.CaptureFixture[str]
) -> None:
    run(sessions, "grants", "list", "--json")
    assert json.loads(capsys.readouterr().out) == []


def iso(moment: datetime | None) -> str:
    assert moment is not None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ").replace(".000000Z", "Z")


def test_format_table_time_left() -> None:
    now = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)

    def left(state: GrantState, expires_in: timedelta) -> str:
        row = GrantRow(
            request_id="0123456789abcdef",
            grant_id="g",
            resource="orders-db",
            workflow="production",
            user_email=None,
            user_slack_id="U1",
            state=state,
            granted_at=now - timedelta(minutes=5),
            expires_at=now + expires_in,
            ended_at=None,
            approved_by=None,
        )
        header, line = format_table([row], now=now).splitlines()[:2]
        return line[header.index("LEFT") : header.index("APPROVED BY")].strip()

    assert left(GrantState.ACTIVE, timedelta(minutes=14, seconds=59)) == "14m"
    assert left(GrantState.ACTIVE, timedelta(hours=2, minutes=5)) == "2h05m"
    assert left(GrantState.ACTIVE, timedelta(days=1, hours=3, minutes=7)) == "1d03h"
    assert left(GrantState.ACTIVE, timedelta(seconds=20)) == "<1m"
    assert left(GrantState.ACTIVE, timedelta(seconds=-1)) == "overdue"
    assert left(GrantState.REVOKING, timedelta(minutes=-12, seconds=-5)) == "overdue 12m"
    assert left(GrantState.ACTIVE, timedelta(hours=-3)) == "overdue 3h00m"
    assert left(GrantState.REVOKING, timedelta(minutes=5)) == "-"
    assert left(GrantState.REVOKED, timedelta(minutes=5)) == "-"


# -- audit export --------------------------------------------------------------------------


@pytest.fixture
def audit_rows(sessions: sessionmaker[Session]) -> list[AuditEvent]:
    """Five events in id order: two fixed days in 2024, then 2h and 10m ago."""
    now = utcnow()
    insert_event(sessions, datetime(2024, 3, 31, 23, 59, 59, 999999, tzinfo=UTC), "requested")
    insert_event(sessions, datetime(2024, 4, 1, tzinfo=UTC), "approved")
    insert_event(sessions, datetime(2024, 4, 2, 12, tzinfo=UTC), "granted", reason="x,y\n")
    insert_event(sessions, now - timedelta(hours=2), "expired")
    with sessions.begin() as session:  # through the code path the bot itself uses
        record(session, Event.REVOKED, actor="accessbot", request_id=None, ok=True)
    return all_events(sessions)


def all_events(sessions: sessionmaker[Session]) -> list[AuditEvent]:
    with sessions() as session:
        return list(session.scalars(select(AuditEvent).order_by(AuditEvent.id)))


def as_record(event: AuditEvent) -> dict[str, Any]:
    return {
        "id": event.id,
        "at": iso(event.at),
        "event": event.event,
        "actor": event.actor,
        "request_id": None if event.request_id is None else str(event.request_id),
        "grant_id": None if event.grant_id is None else str(event.grant_id),
        "detail": event.detail,
    }


def export(sessions: sessionmaker[Session], capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    run(sessions, "audit", "export", *argv)
    return capsys.readouterr().out


def test_export_jsonl_round_trips_every_row(
    sessions: sessionmaker[Session],
    audit_rows: list[AuditEvent],
    capsys: pytest.CaptureFixture[str],
) -> None:
    output = export(sessions, capsys)

    assert output.endswith("\n")
    records = [json.loads(line) for line in output.splitlines()]
    assert records == [as_record(event) for event in audit_rows]
    assert records[0]["detail"] == DETAIL
    assert records[0]["at"] == "2024-03-31T23:59:59.999999Z"
    assert records[1]["at"] == "2024-04-01T00:00:00Z"
    assert records[-1]["detail"] == {"ok": True} and records[-1]["request_id"] is None


def test_export_csv_round_trips_every_row(
    sessions: sessionmaker[Session],
    audit_rows: list[AuditEvent],
    capsys: pytest.CaptureFixture[str],
) -> None:
    output = export(sessions, capsys, "--format", "csv")

    reader = csv.DictReader(io.StringIO(output, newline=""))
    assert reader.fieldnames == [
        "id",
        "at",
        "event",
        "actor",
        "request_id",
        "grant_id",
        "detail",
        "ticket",
        "ticket_url",
    ]
    rows = list(reader)
    assert [json.loads(row["detail"]) for row in rows] == [e.detail for e in audit_rows]
    assert [row["id"] for row in rows] == [str(e.id) for e in audit_rows]
    assert [row["at"] for row in rows] == [iso(e.at) for e in audit_rows]
    assert [row["event"] for row in rows] == [e.event for e in audit_rows]
    assert rows[0]["request_id"] == str(audit_rows[0].request_id)
    assert rows[-1]["request_id"] == rows[-1]["grant_id"] == ""  # NULL is an empty field
    assert " " not in rows[-1]["detail"]  # compact JSON


@pytest.mark.parametrize(
    ("since", "expected_events"),
    [
        ("2024-04-01", ["approved", "granted", "expired", "revoked"]),
        ("2024-04-02T11:59:59", ["granted", "expired", "revoked"]),  # naive means UTC
        ("2024-04-02T14:00:00+02:00", ["granted", "expired", "revoked"]),
        ("2024-04-02T12:00:00.000001Z", ["expired", "revoked"]),
        ("3h", ["expired", "revoked"]),
        ("90m", ["revoked"]),
        ("1d", ["expired", "revoked"]),
        ("4000d", ["requested", "approved", "granted", "expired", "revoked"]),
    ],
)
def test_export_since_filters(
    sessions: sessionmaker[Session],
    audit_rows: list[AuditEvent],
    capsys: pytest.CaptureFixture[str],
    since: str,
    expected_events: list[str],
) -> None:
    output = export(sessions, capsys, "--since", since)

    assert [json.loads(line)["event"] for line in output.splitlines()] == expected_events


def test_bad_since_exits_2_without_touching_the_database(
    capsys: pytest.CaptureFixture[str],
) -> None:
    def no_database() -> sessionmaker[Session]:
        raise AssertionError("the database must not be opened")

    parser = argparse.ArgumentParser(prog="accessbot")
    register(parser.add_subparsers(dest="command", required=True), database=no_database)
    args = parser.parse_args(["audit", "export", "--since", "last tuesday"])

    with pytest.raises(SystemExit) as exit_info:
        args.func(args)

    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == (
        "accessbot: --since: cannot read 'last tuesday': expected YYYY-MM-DD, an ISO 8601 "
        "timestamp, or a relative age such as 7d, 12h or 30m\n"
    )


@pytest.mark.parametrize("text_value", ["", "7w", "d7", "-7d", "2024-13-01", "2024-04-01 25:00"])
def test_parse_since_rejects(text_value: str) -> None:
    with pytest.raises(ValueError, match="expected YYYY-MM-DD"):
        parse_since(text_value)


def test_parse_since_rejects_an_age_beyond_the_calendar() -> None:
    with pytest.raises(ValueError, match="too far back"):
        parse_since("1000000d")


def test_parse_since_accepts() -> None:
    now = datetime(2026, 1, 10, 8, 30, tzinfo=UTC)
    assert parse_since("2026-01-03") == datetime(2026, 1, 3, tzinfo=UTC)
    assert parse_since("2026-01-03T04:05:06") == datetime(2026, 1, 3, 4, 5, 6, tzinfo=UTC)
    assert parse_since("2026-01-03T04:05:06Z") == datetime(2026, 1, 3, 4, 5, 6, tzinfo=UTC)
    assert parse_since("2026-01-03T06:05:06+02:00") == datetime(2026, 1, 3, 4, 5, 6, tzinfo=UTC)
    assert parse_since("7d", now=now) == now - timedelta(days=7)
    assert parse_since("12h", now=now) == now - timedelta(hours=12)
    assert parse_since("30m", now=now) == now - timedelta(minutes=30)
    assert parse_since("2026-01-03").tzinfo is UTC


def test_output_writes_a_file(
    sessions: sessionmaker[Session],
    audit_rows: list[AuditEvent],
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    target = tmp_path / "audit.csv"

    output = export(sessions, capsys, "--format", "csv", "--output", str(target))

    assert output == f"wrote 5 audit events to {target}\n"
    with target.open(newline="", encoding="utf-8") as written:
        rows = list(csv.DictReader(written))
    assert [json.loads(row["detail"]) for row in rows] == [e.detail for e in audit_rows]


def test_output_to_an_unwritable_place_fails_cleanly(
    sessions: sessionmaker[Session], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    target = tmp_path / "missing" / "audit.jsonl"

    with pytest.raises(SystemExit) as exit_info:
        export(sessions, capsys, "--output", str(target))

    assert exit_info.value.code == 1
    assert capsys.readouterr().err == (
        f"accessbot: --output: cannot write {target}: No such file or directory\n"
    )


def test_export_of_an_empty_log(
    sessions: sessionmaker[Session], capsys: pytest.CaptureFixture[str]
) -> None:
    assert export(sessions, capsys) == ""
    assert export(sessions, capsys, "--format", "csv").splitlines() == [
        "id,at,event,actor,request_id,grant_id,detail,ticket,ticket_url"
    ]


def test_register_opens_no_connection() -> None:
    calls: list[str] = []

    def database() -> sessionmaker[Session]:
        calls.append("opened")
        raise AssertionError("opened")

    parser = argparse.ArgumentParser(prog="accessbot")
    register(parser.add_subparsers(dest="command", required=True), database=database)
    parser.parse_args(["grants", "list", "--active"])
    parser.parse_args(["audit", "export", "--since", "7d"])

    assert calls == []


# -- the audit table is append-only --------------------------------------------------------


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_events SET actor = 'mallory'",
        "UPDATE audit_events SET detail = '{}' WHERE id = (SELECT min(id) FROM audit_events)",
        "DELETE FROM audit_events",
        "DELETE FROM audit_events WHERE event = 'granted'",
        "TRUNCATE audit_events",
    ],
)
def test_the_audit_table_is_append_only(
    sessions: sessionmaker[Session], audit_rows: list[AuditEvent], statement: str
) -> None:
    with pytest.raises(DBAPIError, match="append-only"), sessions.begin() as session:
        session.execute(text(statement))

    assert [as_record(e) for e in all_events(sessions)] == [as_record(e) for e in audit_rows]
