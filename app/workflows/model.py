"""The workflow API that policy files in `workflows/` are written in."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from app.grants.base import GrantStrategy


@dataclass(frozen=True)
class Location:
    """Where in a workflow file something was written, for `file:line: message` reports."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"


def _caller_location() -> Location:
    """The first frame outside this package and dataclass-generated code (`<string>`): the line
    of the policy file that built the object."""
    frame = sys._getframe(1)
    here = str(Path(__file__).parent)
    while frame is not None and frame.f_code.co_filename.startswith((here, "<")):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is None:
        return Location("<unknown>", 0)
    return Location(frame.f_code.co_filename, frame.f_lineno)


EmailMap = Mapping[str, str] | Callable[[str], str | None]


@dataclass
class OnCall:
    """Grant at once when PagerDuty shows the requester on call at `escalation_level` or nearer.

    - `escalation_policy_ids` / `schedule_ids`: only these on-call shifts count (default: any).
    - `pagerduty_email`: Slack email → PagerDuty email, for people whose addresses differ
      (a dict, or a function returning None to keep the Slack email).
    - `max_auto_approvals` per requester per rolling `interval`: past it, humans decide.
    """

    escalation_level: int = 1
    escalation_policy_ids: Sequence[str] = ()
    schedule_ids: Sequence[str] = ()
    pagerduty_email: EmailMap | None = None
    max_auto_approvals: int | None = None
    interval: timedelta = timedelta(hours=24)
    location: Location = field(default_factory=_caller_location, compare=False, repr=False)


@dataclass
class Resource:
    id: str
    name: str
    grant: GrantStrategy
    description: str = ""
    location: Location = field(default_factory=_caller_location, compare=False, repr=False)


@dataclass
class Workflow:
    name: str
    approvers_channel: str
    resources: Sequence[Resource]
    approvers: Sequence[str] = ()
    durations: Sequence[timedelta] = (timedelta(hours=1),)
    auto_approve: OnCall | None = None
    location: Location = field(default_factory=_caller_location, compare=False, repr=False)

    def resource(self, resource_id: str) -> Resource | None:
        return next((r for r in self.resources if r.id == resource_id), None)

    def durations_for(self, resource: Resource) -> list[timedelta]:
        return list(self.durations)

    def may_approve(self, slack_id: str) -> bool:
        return slack_id in self.approvers
