"""`accessbot workflows check` and `simulate`, run as a policy repository's CI would."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

from tests.test_server_and_cli import REPO, run_cli
from tests.test_workflow_loader import SHIPPED_ENV

GOOD = """\
from datetime import timedelta
from app.workflows import Env, Resource, Webhook, Workflow

workflow = Workflow(
    name="{name}",
    approvers_channel="C0123APPROVERS",
    approvers=["U0AAA", "U0BBB"],
    durations=[timedelta(minutes=15)],
    resources=[
        Resource(
            id="{rid}", name="Thing", grant=Webhook(url="https://x", secret=Env("HOOK_SECRET"))
        )
    ],
)
"""


def check(directory: Path, **env: str):
    return run_cli("workflows", "check", "--dir", str(directory), env=env, cwd=directory)


def test_check_passes_on_the_shipped_workflows(tmp_path: Path) -> None:
    result = run_cli(
        "workflows", "check", "--dir", str(REPO / "workflows"), env=SHIPPED_ENV, cwd=tmp_path
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 workflow(s), 3 resource(s), OK" in result.stdout


def test_check_reads_workflows_dir_from_the_environment(tmp_path: Path) -> None:
    env = {**SHIPPED_ENV, "WORKFLOWS_DIR": str(REPO / "workflows")}

    result = run_cli("workflows", "check", env=env, cwd=tmp_path)

    assert result.returncode == 0 and "OK" in result.stdout


def test_check_reports_each_class_of_mistake_with_its_file(tmp_path: Path) -> None:
    (tmp_path / "syntax.py").write_text("workflow = Workflow(\n")
    (tmp_path / "wrongtypes.py").write_text(
        GOOD.format(name="types", rid="types-thing").replace(
            "durations=[timedelta(minutes=15)]", 'durations="1h"'
        )
    )
    (tmp_path / "dup_a.py").write_text(GOOD.format(name="a", rid="shared"))
    (tmp_path / "dup_b.py").write_text(GOOD.format(name="b", rid="shared"))
    (tmp_path / "limits.py").write_text(
        GOOD.format(name="limits", rid="limits-thing").replace(
            "durations=[timedelta(minutes=15)],",
            "durations=[timedelta(hours=2), timedelta(0)], max_duration=timedelta(hours=1),",
        )
    )
    (tmp_path / "ids.py").write_text(
        GOOD.format(name="ids", rid="ids-thing")
        .replace('"C0123APPROVERS"', '"approvals"')
        .replace('["U0AAA", "U0BBB"]', '["U0AAA", "bob"]')
    )
    (tmp_path / "quorum.py").write_text(
        GOOD.format(name="quorum", rid="quorum-thing").replace(
            '["U0AAA", "U0BBB"]', '["U0AAA", "U0BBB"], required_approvals=3'
        )
    )
    (tmp_path / "hooks.py").write_text(
        GOOD.format(name="hooks", rid="hooks-thing").replace(
            'approvers=["U0AAA", "U0BBB"],', 'approvers=["U0AAA"], on_request=lambda: None,'
        )
    )

    result = check(tmp_path)

    assert result.returncode == 1, result.stderr
    out = result.stdout
    assert f"{tmp_path / 'syntax.py'}:1: syntax error" in out
    assert f"{tmp_path / 'wrongtypes.py'}:4: durations must be a non-empty list of timedelta" in out
    assert (
        f"{tmp_path / 'dup_b.py'}:10: resource id 'shared' is already used at "
        f"{tmp_path / 'dup_a.py'}:10" in out
    )
    assert (
        f"{tmp_path / 'limits.py'}:4: duration 2:00:00 is longer than max_duration 1:00:00" in out
    )
    assert f"{tmp_path / 'limits.py'}:4: duration 0:00:00 is not positive" in out
    assert (
        f"{tmp_path / 'ids.py'}:4: approvers_channel 'approvals' is not a Slack channel id" in out
    )
    assert f"{tmp_path / 'ids.py'}:4: approver 'bob' is not a Slack user id" in out
    assert f"{tmp_path / 'quorum.py'}:4: required_approvals is 3 but only 2 approver(s)" in out
    assert f"{tmp_path / 'hooks.py'}:4: on_request <lambda>() must accept one argument" in out
    assert f"{tmp_path / 'hooks.py'}:10: environment variable HOOK_SECRET is not set" in out


def test_check_passes_once_the_secret_is_set_and_warns_about_literal_secrets(
    tmp_path: Path,
) -> None:
    (tmp_path / "one.py").write_text(GOOD.format(name="one", rid="thing"))
    (tmp_path / "two.py").write_text(
        GOOD.format(name="two", rid="other").replace(
            'secret=Env("HOOK_SECRET")', 'secret="hunter2"'
        )
    )

    result = check(tmp_path, HOOK_SECRET="s")

    assert result.returncode == 0, result.stdout
    assert (
        f"{tmp_path / 'two.py'}:10: warning: the webhook secret is written in the workflow file"
        in result.stdout
    )


def simulate(*args: str, cwd: Path):
    return run_cli(
        "workflows", "simulate", "--dir", str(REPO / "workflows"), *args, env={}, cwd=cwd
    )


def test_simulate_an_on_call_engineer_on_the_support_console(tmp_path: Path) -> None:
    result = simulate(
        "--user",
        "alice@example.com",
        "--resource",
        "support-console",
        "--duration",
        "1h",
        "--on-call",
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    assert "decision: approve at once (on call)" in result.stdout
    assert "grant:    webhook POST https://hooks.internal/access" in result.stdout


def test_simulate_admin_access_at_night_without_on_call_is_denied(tmp_path: Path) -> None:
    result = simulate(
        "--user",
        "alice@example.com",
        "--resource",
        "orders-db-admin",
        "--duration",
        "30m",
        "--at",
        "2026-11-24T23:00:00",
        cwd=tmp_path,
    )

    assert result.returncode == 0, result.stderr
    assert "decision: deny at once" in result.stdout and "grant:" not in result.stdout


def test_simulate_admin_access_in_business_hours_needs_two_approvals(tmp_path: Path) -> None:
    result = simulate(
        "--user",
        "alice@example.com",
        "--resource",
        "orders-db-admin",
        "--duration",
        "15m",
        "--at",
        "2026-11-24T10:00:00+00:00",
        cwd=tmp_path,
    )

    assert "needs 2 approvals from U0AAA, U0BBB, U0CCC" in result.stdout
    assert "why:      business hours: admin access needs two approvals" in result.stdout


def test_simulate_refuses_unknown_resources_and_durations(tmp_path: Path) -> None:
    unknown = simulate("--user", "a@b.c", "--resource", "nope", "--duration", "1h", cwd=tmp_path)
    too_long = simulate(
        "--user", "a@b.c", "--resource", "orders-db-admin", "--duration", "4h", cwd=tmp_path
    )
    garbled = simulate(
        "--user", "a@b.c", "--resource", "orders-db-admin", "--duration", "soon", cwd=tmp_path
    )

    assert (
        unknown.returncode == 1
        and "unknown resource 'nope'; known: orders-db-admin" in unknown.stderr
    )
    assert too_long.returncode == 1
    assert (
        "Orders DB (admin) can be requested for: 15 minutes, 30 minutes, 1 hour" in too_long.stderr
    )
    assert garbled.returncode == 2 and "is not a duration like 15m" in garbled.stderr


def test_app_testing_loads_a_workflow_and_decides(tmp_path: Path) -> None:
    from app.testing import decide, load_workflow, make_request

    path = tmp_path / "policy.py"
    path.write_text(dedent(GOOD.format(name="p", rid="thing")))

    workflow = load_workflow(path)  # HOOK_SECRET is unset: a test machine need not have it
    outcome = decide(workflow, make_request(workflow, "thing"))

    assert outcome.routed and outcome.approvers == ["U0AAA", "U0BBB"]
