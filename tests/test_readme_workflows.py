"""The complete workflow files the README shows for each grant target load and pass the checks
`accessbot workflows check` runs (except for environment variables: CI has none)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app.testing import load_workflow

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"```python\n(# workflows/(\w+)\.py\n.*?)```", re.DOTALL)


def examples() -> list[tuple[str, str]]:
    return [(name, code) for code, name in BLOCK.findall(README.read_text())]


def test_the_readme_shows_a_workflow_file_for_each_target() -> None:
    assert {name for name, _ in examples()} >= {"aws", "okta", "github"}


@pytest.mark.parametrize(("name", "code"), examples(), ids=[n for n, _ in examples()])
def test_readme_workflow_file_loads_and_checks(name: str, code: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.py"
    path.write_text(code)
    workflow = load_workflow(path)
    assert workflow.name == name and workflow.resources
