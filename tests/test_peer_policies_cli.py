"""The policies of issue 11 as a policy repository's CI meets them: `accessbot workflows check`
refuses their invalid forms with file:line, `workflows simulate` shows their effect, and
`app.testing` decides with them."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from tests.test_server_and_cli import run_cli

HEAD = """\
from datetime import timedelta
from app.workflows import ON_CALL_APPROVERS, BreakGlass, OnCall, Resource, Ticket, Webhook, Workflow

hook = Webhook(url="https://hooks.internal/access", secret="s")
"""


def write(directory: Path, body: str) -> Path:
    path = directory / "policy.py"
    path.write_text(HEAD + dedent(body))
    return path


def check(directory: Path) -> tuple[int, str]:
    result = run_cli("workflows", "check", "--dir", str(directory), env={}, cwd=directory)
    return result.returncode, result.stdout + result.stderr


def simulate(directory: Path, *args: str) -> str:
    result = run_cli(
        "workflows", "simulate", "--dir", str(directory), "--user", "a@example.com", *args,
        env={}, cwd=directory,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


# Each invalid form, and the line its problem is reported on (HEAD is 4 lines long).
INVALID = [
    pytest.param(
        """\
        workflow = Workflow(
            name="p",
            approvers_channel="C0APPROVERS",
            resources=[
                Resource(id="help", name="Help desk", grant=hook),
            ],
        )
        """,
        9,
        "resource id or name 'help' is taken by `/access help`",
        id="intake-reserved-word",
    ),
    pytest.param(
        """\
        workflow = Workflow(
            name="p",
            approvers_channel="C0APPROVERS",
            resources=[
                Resource(id="orders", name="Orders", grant=hook),
                Resource(id="orders-ro", name="ORDERS", grant=hook),
            ],
        )
        """,
        10,
        "warning: `/access orders` is ambiguous: resource 'orders' at",
        id="intake-ambiguous-name",
    ),
]
INVALID.append(
    pytest.param(
        """\
        workflow = Workflow(
            name="p",
            approvers_channel="C0APPROVERS",
            auto_approve=OnCall(
                announce="no",
            ),
            resources=[Resource(id="orders-db", name="Orders DB", grant=hook)],
        )
        """,
        8,
        "announce must be True or False (got 'no')",
        id="quiet-announce-not-bool",
    )
)
INVALID += [
    pytest.param(
        """\
        workflow = Workflow(
            name="p",
            approvers_channel="C0APPROVERS",
            allow_self_approval="yes",
            resources=[Resource(id="wiki", name="Wiki", grant=hook)],
        )
        """,
        5,
        "allow_self_approval must be True or False (got 'yes')",
        id="self-approval-workflow",
    ),
    pytest.param(
        """\
        workflow = Workflow(
            name="p",
            approvers_channel="C0APPROVERS",
            resources=[
                Resource(id="wiki", name="Wiki", grant=hook, allow_self_approval=1),
            ],
        )
        """,
        9,
        "allow_self_approval must be True, False or None (got 1)",
        id="self-approval-resource",
    ),
]
INVALID.append(
    pytest.param(
        """\
        workflow = Workflow(
            name="p",
            approvers_channel="C0APPROVERS",
            auto_approve=OnCall(end_with_shift="yes"),
            resources=[Resource(id="orders-db", name="Orders DB", grant=hook)],
        )
        """,
        8,
        "end_with_shift must be True or False (got 'yes')",
        id="end-with-shift-not-bool",
    )
)
INVALID.append(
    pytest.param(
        """\
        workflow = Workflow(
            name="p",
            approvers_channel="C0APPROVERS",
            approve_for_less=None,
            resources=[Resource(id="orders-db", name="Orders DB", grant=hook)],
        )
        """,
        5,
        "approve_for_less must be True or False (got None)",
        id="approve-for-less-not-bool",
    )
)
for ticket, message, case in [
    ('pattern="[A-Z+-"', "ticket pattern '[A-Z+-' is not a regular expression", "bad-regex"),
    ('pattern=r"\\d*"', "ticket pattern '\\\\d*' matches an empty reference", "empty-match"),
    ('url="jira/{}"', "ticket url 'jira/{}' must be an http(s) URL with one {}", "relative"),
    (
        'url="https://jira/browse"',
        "ticket url 'https://jira/browse' must be an http(s) URL",
        "no-placeholder",
    ),
    ('url="https://j/{}", required="yes"', "ticket required must be True or False", "req"),
]:
    url = "" if "url=" in ticket else ', url="https://jira.example.com/browse/{}"'
    INVALID.append(
        pytest.param(
            f"""\
            workflow = Workflow(
                name="p",
                approvers_channel="C0APPROVERS",
                ticket=Ticket({ticket}{url}),
                resources=[Resource(id="orders-db", name="Orders DB", grant=hook)],
            )
            """,
            8,
            message,
            id=f"ticket-{case}",
        )
    )
for settings, message, case in [
    ("escalate_after=timedelta(minutes=15)", "escalate_after and escalate_to go together", "half"),
    (
        'escalate_after=timedelta(minutes=-1), escalate_to="C0BACKUP"',
        "escalate_after must be a positive timedelta",
        "negative",
    ),
    (
        'escalate_after=timedelta(days=2), escalate_to="C0BACKUP"',
        "escalate_after 2 days, 0:00:00 is not shorter than request_ttl 1 day, 0:00:00",
        "after-ttl",
    ),
    (
        'escalate_after=timedelta(minutes=15), escalate_to="#backup"',
        "escalate_to '#backup' must be a Slack channel id (C0123ABCD), a user group id",
        "not-an-id",
    ),
    (
        'escalate_after=timedelta(minutes=15), escalate_to="C0APPROVERS"',
        "escalate_to is the approvers' channel itself",
        "same-channel",
    ),
]:
    INVALID.append(
        pytest.param(
            f"""\
            workflow = Workflow(
                name="p",
                approvers_channel="C0APPROVERS",
                {settings},
                resources=[Resource(id="orders-db", name="Orders DB", grant=hook)],
            )
            """,
            5,
            message,
            id=f"escalation-{case}",
        )
    )
for settings, message, case in [
    ("max_duration=timedelta(0), who=['U0AAA']", "break-glass max_duration must be", "max"),
    ("max_duration=timedelta(hours=1), who=[]", "break-glass who must name at least one", "who"),
    (
        "max_duration=timedelta(hours=1), who=['bob']",
        "approver 'bob' is not a Slack user id",
        "who-bad",
    ),
    (
        "max_duration=timedelta(hours=1), who=['U0AAA'], notify='@sre'",
        "break-glass notify '@sre' must be",
        "notify",
    ),
    (
        "max_duration=timedelta(hours=1), who=['U0AAA'], review_after=timedelta(0)",
        "break-glass review_after must be a positive timedelta",
        "review",
    ),
]:
    INVALID.append(
        pytest.param(
            f"""\
            workflow = Workflow(
                name="p",
                approvers_channel="C0APPROVERS",
                break_glass=BreakGlass({settings}),
                resources=[Resource(id="orders-db", name="Orders DB", grant=hook)],
            )
            """,
            8,
            message,
            id=f"break-glass-{case}",
        )
    )
WARNINGS = {"intake-ambiguous-name"}


@pytest.mark.parametrize(("body", "line", "message"), INVALID)
def test_check_refuses_invalid_forms_with_file_and_line(
    request: pytest.FixtureRequest, tmp_path: Path, body: str, line: int, message: str
) -> None:
    path = write(tmp_path, body)

    code, output = check(tmp_path)

    warning = request.node.callspec.id in WARNINGS
    assert code == (0 if warning else 1), output
    assert f"{path}:{line}: {message}" in output


def test_simulate_finds_a_resource_by_its_name_as_slash_access_does(tmp_path: Path) -> None:
    write(
        tmp_path,
        """\
        workflow = Workflow(
            name="p",
            approvers_channel="C0APPROVERS",
            durations=[timedelta(hours=1)],
            resources=[Resource(id="orders-db", name="Orders DB", grant=hook)],
        )
        """,
    )

    output = simulate(tmp_path, "--resource", "orders db", "--duration", "1h")

    assert "asks for Orders DB (orders-db) for 1 hour" in output


QUIET = """\
workflow = Workflow(
    name="p",
    approvers_channel="C0APPROVERS",
    durations=[timedelta(hours=1)],
    auto_approve=OnCall(announce=False),
    resources=[Resource(id="orders-db", name="Orders DB", grant=hook)],
)
"""


def test_simulate_and_app_testing_show_a_quiet_on_call_approval(tmp_path: Path) -> None:
    from app.testing import decide, load_workflow, make_request

    path = write(tmp_path, QUIET)

    output = simulate(tmp_path, "--resource", "orders-db", "--duration", "1h", "--on-call")

    assert "decision: approve at once (on call; no FYI in the approvers' channel)" in output
    workflow = load_workflow(path)
    outcome = decide(workflow, make_request(workflow, "orders-db", on_call=True))
    assert outcome.approved and outcome.announced is False
    loud = load_workflow(write(tmp_path, QUIET.replace("announce=False", "announce=True")))
    assert decide(loud, make_request(loud, "orders-db", on_call=True)).announced is True


def test_simulate_and_app_testing_show_self_approval(tmp_path: Path) -> None:
    from app.testing import decide, load_workflow, make_request

    path = write(
        tmp_path,
        """\
        workflow = Workflow(
            name="p",
            approvers_channel="C0APPROVERS",
            approvers=["U0AAA", "U0BBB"],
            durations=[timedelta(hours=1)],
            resources=[
                Resource(id="wiki", name="Wiki", grant=hook, allow_self_approval=True),
                Resource(id="orders-db", name="Orders DB", grant=hook),
            ],
        )
        """,
    )

    wiki = simulate(tmp_path, "--resource", "wiki", "--duration", "1h")
    orders = simulate(tmp_path, "--resource", "orders-db", "--duration", "1h")

    assert "from U0AAA, U0BBB; the requester's own approval counts" in wiki
    assert "own approval" not in orders
    workflow = load_workflow(path)
    assert decide(workflow, make_request(workflow, "wiki")).self_approval is True
    assert decide(workflow, make_request(workflow, "orders-db")).self_approval is False


SHIFT = QUIET.replace("announce=False", "end_with_shift=True")


def test_simulate_and_app_testing_show_access_ending_with_the_shift(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from app.testing import decide, load_workflow, make_request

    path = write(tmp_path, SHIFT)
    at, ends = "2026-11-27T10:00:00+00:00", "2026-11-27T10:20:00+00:00"

    soon = simulate(
        tmp_path, "--resource", "orders-db", "--duration", "1h", "--on-call",
        "--at", at, "--shift-ends", ends,
    )  # fmt: skip
    late = simulate(
        tmp_path, "--resource", "orders-db", "--duration", "1h", "--on-call",
        "--at", at, "--shift-ends", "2026-11-27T18:00:00+00:00",
    )  # fmt: skip

    assert "ends:     with the on-call shift at 2026-11-27 10:20 UTC, sooner than" in soon
    assert "ends:     after the 1 hour asked (the on-call shift ends later)" in late
    workflow = load_workflow(path)
    end = datetime(2026, 11, 27, 10, 20, tzinfo=UTC)
    request = make_request(workflow, "orders-db", on_call=True, shift_ends=end)
    assert decide(workflow, request).not_after == end
    permanent = make_request(workflow, "orders-db", on_call=True)
    assert decide(workflow, permanent).not_after is None


def test_simulate_and_app_testing_show_what_approvers_may_approve_instead(
    tmp_path: Path,
) -> None:
    from datetime import timedelta

    from app.testing import decide, load_workflow, make_request

    body = """\
        workflow = Workflow(
            name="p",
            approvers_channel="C0APPROVERS",
            approvers=["U0AAA"],
            durations=[timedelta(minutes=15), timedelta(hours=1), timedelta(hours=4)],
            resources=[Resource(id="orders-db", name="Orders DB", grant=hook)],
        )
        """
    path = write(tmp_path, body)

    output = simulate(tmp_path, "--resource", "orders-db", "--duration", "4h")

    assert "from U0AAA; they may approve less: 15 minutes, 1 hour" in output
    workflow = load_workflow(path)
    request = make_request(workflow, "orders-db", duration=timedelta(hours=1))
    assert decide(workflow, request).shorter == (timedelta(minutes=15),)
    off = load_workflow(
        write(tmp_path, body.replace('name="p",', 'name="p", approve_for_less=False,'))
    )
    assert decide(off, make_request(off, "orders-db", duration=timedelta(hours=4))).shorter == ()


def test_simulate_and_app_testing_check_and_link_the_ticket(tmp_path: Path) -> None:
    from app.testing import decide, load_workflow, make_request

    path = write(
        tmp_path,
        """\
        workflow = Workflow(
            name="p",
            approvers_channel="C0APPROVERS",
            durations=[timedelta(hours=1)],
            ticket=Ticket(pattern=r"[A-Z]+-\\d+", url="https://jira.example.com/browse/{}",
                          required=True),
            resources=[Resource(id="orders-db", name="Orders DB", grant=hook)],
        )
        """,
    )
    args = ("--resource", "orders-db", "--duration", "1h")

    good = simulate(tmp_path, *args, "--ticket", "INC-1234")
    refused = run_cli(
        "workflows", "simulate", "--dir", str(tmp_path), "--user", "a@example.com", *args,
        env={}, cwd=tmp_path,
    )  # fmt: skip

    assert "ticket:   INC-1234 (https://jira.example.com/browse/INC-1234)" in good
    assert refused.returncode == 1
    assert "ticket:   refused: Give a ticket reference." in refused.stdout
    workflow = load_workflow(path)
    outcome = decide(workflow, make_request(workflow, "orders-db", ticket="OPS-7"))
    assert outcome.ticket_problem is None
    assert outcome.ticket_url == "https://jira.example.com/browse/OPS-7"
    bad = decide(workflow, make_request(workflow, "orders-db", ticket="ops 7"))
    assert bad.ticket_problem == "“ops 7” is not a ticket reference (like INC-1234)."


def test_simulate_and_app_testing_show_the_escalation(tmp_path: Path) -> None:
    from app.testing import decide, load_workflow, make_request

    dedent_body = """\
        workflow = Workflow(
            name="p",
            approvers_channel="C0APPROVERS",
            approvers=["U0AAA"],
            durations=[timedelta(hours=1)],
            escalate_after=timedelta(minutes=15),
            escalate_to="S0BACKUPS",
            resources=[Resource(id="orders-db", name="Orders DB", grant=hook)],
        )
        """
    path = write(tmp_path, dedent_body)

    output = simulate(tmp_path, "--resource", "orders-db", "--duration", "1h")

    assert "from U0AAA; undecided after 15 minutes, escalated to S0BACKUPS" in output
    workflow = load_workflow(path)
    outcome = decide(workflow, make_request(workflow, "orders-db"))
    assert outcome.escalate_to == "S0BACKUPS"
    write(tmp_path, dedent_body.replace('"S0BACKUPS"', "ON_CALL_APPROVERS"))
    on_call = simulate(tmp_path, "--resource", "orders-db", "--duration", "1h")
    assert "escalated to the approvers PagerDuty shows on call then" in on_call


def test_simulate_and_app_testing_show_break_glass(tmp_path: Path) -> None:
    from app.testing import decide, load_workflow, make_request

    path = write(
        tmp_path,
        """\
        workflow = Workflow(
            name="p",
            approvers_channel="C0APPROVERS",
            durations=[timedelta(hours=1)],
            break_glass=BreakGlass(max_duration=timedelta(hours=1), who=["a@example.com"],
                                   notify="S0SRE"),
            resources=[Resource(id="orders-db", name="Orders DB", grant=hook)],
        )
        """,
    )

    output = simulate(tmp_path, "--resource", "orders-db", "--duration", "1h")

    assert (
        "breakglass: `/access break-glass` grants at once (listed: a@example.com) for at most "
        "1 hour, alerting <!subteam^S0SRE> in C0APPROVERS; announced again if unreviewed "
        "after 30 minutes" in output
    )
    workflow = load_workflow(path)
    outcome = decide(workflow, make_request(workflow, "orders-db"))
    assert outcome.break_glass is not None and outcome.break_glass.notify == "S0SRE"
