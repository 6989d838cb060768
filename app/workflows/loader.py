"""Load every workflow file in a directory and validate the whole policy, or refuse it whole."""

from __future__ import annotations

import importlib.util
import re
import sys
import traceback
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from types import ModuleType

from app.grants.base import GrantStrategy, Retry
from app.workflows.model import Location, Resource, Workflow

CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{2,}$")
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
RESOURCE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$")
MAX_RESOURCES_PER_SELECT = 100 * 100  # option groups x options per group


@dataclass(frozen=True)
class Problem:
    location: Location
    message: str

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class WorkflowError(Exception):
    """The policy is invalid; `problems` says where and why. Nothing of it is used."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class Registry:
    """The loaded policy: workflows by name, resources by id (unique across all workflows)."""

    def __init__(self, workflows: list[Workflow]) -> None:
        self.workflows = workflows
        self._by_name = {w.name: w for w in workflows}
        self._resources = {r.id: (w, r) for w in workflows for r in w.resources}

    def workflow(self, name: str) -> Workflow | None:
        return self._by_name.get(name)

    def find(self, resource_id: str) -> tuple[Workflow, Resource] | None:
        return self._resources.get(resource_id)

    def __len__(self) -> int:
        return len(self._resources)


def workflow_files(directory: Path) -> list[Path]:
    """Policy modules: every `*.py` except tests (`test_*.py`, `*_test.py`) and `_private.py`."""
    return sorted(
        p
        for p in directory.glob("*.py")
        if not p.name.startswith(("_", "test_")) and not p.stem.endswith("_test")
    )


def _import(path: Path) -> ModuleType:
    name = f"accessbot_workflow_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def _error_location(path: Path, exc: BaseException) -> Location:
    if isinstance(exc, SyntaxError) and exc.lineno:
        return Location(str(path), exc.lineno)
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if Path(frame.filename) == path:
            return Location(str(path), frame.lineno or 0)
    return Location(str(path), 0)


def load_file(path: Path) -> tuple[list[Workflow], list[Problem]]:
    try:
        module = _import(path)
    except SyntaxError as exc:
        return [], [Problem(_error_location(path, exc), f"syntax error: {exc.msg}")]
    except Exception as exc:
        message = f"{exc.__class__.__name__}: {exc}"
        return [], [Problem(_error_location(path, exc), f"error while loading: {message}")]
    found = getattr(module, "workflow", None)
    if found is None:
        return [], [Problem(Location(str(path), 1), "defines no `workflow`")]
    candidates = found if isinstance(found, list | tuple) else [found]
    workflows = [w for w in candidates if isinstance(w, Workflow)]
    if len(workflows) != len(candidates):
        return [], [Problem(Location(str(path), 1), "`workflow` must be a Workflow(...)")]
    return workflows, []


def _is_strategy(value: object) -> bool:
    return isinstance(value, GrantStrategy) and isinstance(getattr(value, "retry", None), Retry)


def _check_retry(retry: Retry, at: Location) -> Iterator[Problem]:
    if not isinstance(retry.attempts, int) or retry.attempts < 1:
        yield Problem(at, "retry attempts must be a whole number of at least 1")
    if not isinstance(retry.backoff, timedelta) or retry.backoff <= timedelta(0):
        yield Problem(at, "retry backoff must be a positive timedelta")
    if not isinstance(retry.max_backoff, timedelta) or retry.max_backoff < retry.backoff:
        yield Problem(at, "retry max_backoff must be a timedelta no shorter than backoff")


def check_workflow(workflow: Workflow) -> Iterator[Problem]:
    at = workflow.location
    if not isinstance(workflow.name, str) or not workflow.name.strip():
        yield Problem(at, "workflow name must be a non-empty string")
    if not isinstance(workflow.approvers_channel, str) or not CHANNEL_ID.match(
        workflow.approvers_channel
    ):
        yield Problem(
            at,
            f"approvers_channel {workflow.approvers_channel!r} is not a Slack channel id "
            "(like C0123ABCD)",
        )
    approvers = list(workflow.approvers) if isinstance(workflow.approvers, list | tuple) else None
    if approvers is None:
        yield Problem(at, "approvers must be a list of Slack user ids")
    else:
        if not approvers:
            yield Problem(at, "approvers is empty: nobody could approve a request")
        for approver in approvers:
            if not isinstance(approver, str) or not USER_ID.match(approver):
                yield Problem(at, f"approver {approver!r} is not a Slack user id (like U0123ABCD)")
    durations = list(workflow.durations) if isinstance(workflow.durations, list | tuple) else None
    if not durations:
        yield Problem(at, "durations must be a non-empty list of timedelta")
    else:
        for duration in durations:
            if not isinstance(duration, timedelta):
                yield Problem(at, f"duration {duration!r} is not a timedelta")
            elif duration <= timedelta(0):
                yield Problem(at, f"duration {duration} is not positive")
        if len(set(durations)) != len(durations):
            yield Problem(at, "durations lists the same duration twice")
    if not isinstance(workflow.resources, list | tuple) or not workflow.resources:
        yield Problem(at, "resources must be a non-empty list of Resource(...)")
        return
    for resource in workflow.resources:
        if not isinstance(resource, Resource):
            yield Problem(at, f"{resource!r} is not a Resource(...)")
            continue
        if not isinstance(resource.id, str) or not RESOURCE_ID.match(resource.id):
            yield Problem(
                resource.location,
                f"resource id {resource.id!r} must be 1-100 letters, digits or _.:/- characters",
            )
        if not isinstance(resource.name, str) or not resource.name.strip():
            yield Problem(resource.location, "resource name must be a non-empty string")
        elif len(resource.name) > 75:
            yield Problem(resource.location, "resource name must be at most 75 characters")
        if not _is_strategy(resource.grant):
            yield Problem(
                resource.location,
                "grant must be a grant strategy (Webhook(...), PostgresRole(...), Python(...))",
            )
        else:
            yield from _check_retry(resource.grant.retry, resource.location)


def check_policy(workflows: list[Workflow]) -> list[Problem]:
    problems: list[Problem] = []
    names: dict[str, Location] = {}
    resource_ids: dict[str, Location] = {}
    for workflow in workflows:
        problems.extend(check_workflow(workflow))
        if workflow.name in names:
            problems.append(
                Problem(
                    workflow.location,
                    f"workflow name {workflow.name!r} is already used at {names[workflow.name]}",
                )
            )
        names.setdefault(workflow.name, workflow.location)
        for resource in workflow.resources if isinstance(workflow.resources, list | tuple) else ():
            rid = getattr(resource, "id", None)
            if not isinstance(rid, str):
                continue
            if rid in resource_ids:
                problems.append(
                    Problem(
                        resource.location,
                        f"resource id {rid!r} is already used at {resource_ids[rid]}",
                    )
                )
            resource_ids.setdefault(rid, resource.location)
    return problems


def load_workflows(directory: Path) -> Registry:
    """Load and validate every workflow file; raise WorkflowError listing every problem."""
    directory = directory.expanduser()
    if not directory.is_dir():
        raise WorkflowError(
            [Problem(Location(str(directory), 0), "workflows directory does not exist")]
        )
    workflows: list[Workflow] = []
    problems: list[Problem] = []
    files = workflow_files(directory)
    for path in files:
        loaded, file_problems = load_file(path)
        workflows.extend(loaded)
        problems.extend(file_problems)
    if not files:
        problems.append(Problem(Location(str(directory), 0), "no workflow files (*.py) found"))
    problems.extend(check_policy(workflows))
    if problems:
        raise WorkflowError(problems)
    return Registry(workflows)
