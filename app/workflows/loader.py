"""Load every workflow file in a directory and validate the whole policy, or refuse it whole."""

from __future__ import annotations

import importlib.util
import sys
import traceback
from pathlib import Path
from types import ModuleType

from app.workflows.checks import Problem, check_policy

__all__ = ["Problem", "Registry", "WorkflowError", "check_policy", "load_file", "load_workflows"]
from app.workflows.model import Location, Resource, Workflow


class WorkflowError(Exception):
    """The policy is invalid; `problems` says where and why. Nothing of it is used."""

    def __init__(self, problems: list[Problem], warnings: list[Problem] | None = None) -> None:
        self.problems = problems
        self.warnings = warnings or []
        super().__init__("\n".join(str(p) for p in problems))


class Registry:
    """The loaded policy: workflows by name, resources by id (unique across all workflows)."""

    def __init__(self, workflows: list[Workflow], warnings: list[Problem] | None = None) -> None:
        self.workflows = workflows
        self.warnings = warnings or []
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


def load_workflows(directory: Path, *, environment: bool = True) -> Registry:
    """Load and validate every workflow file; raise WorkflowError listing every problem.

    With `environment=False`, environment variables the grant strategies need may be unset
    (for simulating and testing a policy away from production)."""
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
    problems.extend(p for p in check_policy(workflows) if environment or not p.environment)
    errors = [p for p in problems if not p.warning]
    if errors:
        raise WorkflowError(errors, warnings=[p for p in problems if p.warning])
    return Registry(workflows, warnings=problems)
