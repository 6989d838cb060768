"""Workflow files load whole or not at all, and every problem names its file and line."""

from __future__ import annotations

from pathlib import Path
from textwrap import dedent

import pytest

from app.workflows.loader import WorkflowError, load_workflows

REPO = Path(__file__).resolve().parents[1]

GOOD = """\
from datetime import timedelta
from app.workflows import OnCall, Resource, Webhook, Workflow

workflow = Workflow(
    name="{name}",
    approvers_channel="C0123APPROVERS",
    approvers=["U0AAA", "U0BBB"],
    durations=[timedelta(minutes=15), timedelta(hours=1), timedelta(hours=4)],
    auto_approve=OnCall(escalation_level=1),
    resources=[Resource(id="{rid}", name="Orders DB (read-only)",
                        grant=Webhook(url="https://hooks.internal/access", secret="s"))],
)
"""


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.write_text(dedent(text))
    return path


def problems(directory: Path) -> list[str]:
    with pytest.raises(WorkflowError) as caught:
        load_workflows(directory)
    return [str(p) for p in caught.value.problems]


def test_the_minimal_form_from_the_docs_loads(tmp_path: Path) -> None:
    write(tmp_path, "production.py", GOOD.format(name="production", rid="orders-db"))

    registry = load_workflows(tmp_path)

    workflow, resource = registry.find("orders-db")  # type: ignore[misc]
    assert workflow.name == "production" and resource.name == "Orders DB (read-only)"
    assert workflow.auto_approve is not None and workflow.auto_approve.escalation_level == 1


SHIPPED_ENV = {
    "ACCESS_WEBHOOK_SECRET": "s3cret",
    "ORDERS_DB_ADMIN_URL": "postgresql://admin@db.internal/orders",
}


def test_the_shipped_example_workflows_load_as_they_are(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in SHIPPED_ENV.items():
        monkeypatch.setenv(name, value)

    registry = load_workflows(REPO / "workflows")

    assert {w.name for w in registry.workflows} == {"production", "databases", "admin"}
    assert registry.warnings == []


def test_secrets_missing_from_the_environment_are_problems(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in SHIPPED_ENV:
        monkeypatch.delenv(name, raising=False)

    with pytest.raises(WorkflowError) as caught:
        load_workflows(REPO / "workflows")

    messages = [p.message for p in caught.value.problems]
    assert messages.count("environment variable ORDERS_DB_ADMIN_URL is not set") == 2
    assert messages.count("environment variable ACCESS_WEBHOOK_SECRET is not set") == 1
    assert len(load_workflows(REPO / "workflows", environment=False)) == 3


def test_test_files_and_private_modules_are_not_workflows(tmp_path: Path) -> None:
    write(tmp_path, "production.py", GOOD.format(name="production", rid="orders-db"))
    write(tmp_path, "test_production.py", "raise RuntimeError('not a workflow')\n")
    write(tmp_path, "_helpers.py", "raise RuntimeError('not a workflow')\n")

    assert len(load_workflows(tmp_path)) == 1


def test_syntax_error_is_reported_with_file_and_line(tmp_path: Path) -> None:
    path = write(
        tmp_path, "broken.py", "from app.workflows import Workflow\n\nworkflow = Workflow(\n"
    )

    (problem,) = problems(tmp_path)

    assert problem.startswith(f"{path}:3: syntax error")


def test_exception_while_loading_is_reported_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.py", "import os\n\nx = 1 / 0\n")

    (problem,) = problems(tmp_path)

    assert problem == f"{path}:3: error while loading: ZeroDivisionError: division by zero"


def test_a_broken_file_refuses_the_whole_policy(tmp_path: Path) -> None:
    write(tmp_path, "good.py", GOOD.format(name="production", rid="orders-db"))
    write(tmp_path, "bad.py", "workflow = 42\n")

    assert problems(tmp_path) == [f"{tmp_path / 'bad.py'}:1: `workflow` must be a Workflow(...)"]


def test_resource_ids_are_unique_across_files(tmp_path: Path) -> None:
    write(tmp_path, "a.py", GOOD.format(name="a", rid="orders-db"))
    b = write(tmp_path, "b.py", GOOD.format(name="b", rid="orders-db"))

    (problem,) = problems(tmp_path)

    assert problem.startswith(
        f"{b}:10: resource id 'orders-db' is already used at {tmp_path / 'a.py'}:10"
    )


def test_policy_mistakes_are_each_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "production.py",
        """\
        from datetime import timedelta
        from app.workflows import Resource, Webhook, Workflow

        workflow = Workflow(
            name="production",
            approvers_channel="#approvals",
            approvers=["bob"],
            durations=[timedelta(minutes=-15), timedelta(hours=1)],
            resources=[
                Resource(id="orders db", name="", grant=Webhook(url="https://x", secret="s")),
                Resource(id="billing", name="Billing", grant="curl https://x"),
            ],
        )
        """,
    )

    found = problems(tmp_path)

    assert (
        f"{path}:4: approvers_channel '#approvals' is not a Slack channel id (like C0123ABCD)"
        in found
    )
    assert (
        f"{path}:4: approver 'bob' is not a Slack user id (U0123ABCD), an email or a user group "
        "id (S0123ABCD)" in found
    )
    assert f"{path}:4: duration -1 day, 23:45:00 is not positive" in found
    assert any(p.startswith(f"{path}:10: resource id 'orders db' must be") for p in found)
    assert f"{path}:10: resource name must be a non-empty string" in found
    assert any(p.startswith(f"{path}:11: grant must be a grant strategy") for p in found)
    assert len(found) == 6


def test_missing_directory_and_empty_directory(tmp_path: Path) -> None:
    assert problems(tmp_path / "nope") == [
        f"{tmp_path / 'nope'}:0: workflows directory does not exist"
    ]
    assert problems(tmp_path) == [f"{tmp_path}:0: no workflow files (*.py) found"]
