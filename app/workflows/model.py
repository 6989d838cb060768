"""The workflow API that policy files in `workflows/` are written in."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import quote

from app.grants.base import GrantStrategy

if TYPE_CHECKING:
    from app.oncall import OnCallResult


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
    - `end_with_shift=True`: access granted because of a shift ends when that shift does
      (PagerDuty's `end` of the on-call entry), if that is sooner than the chosen duration.
    - `announce=False`: no FYI post in the approvers' channel for on-call grants (they still
      reach the audit log, App Home and `grants list`).
    """

    escalation_level: int = 1
    escalation_policy_ids: Sequence[str] = ()
    schedule_ids: Sequence[str] = ()
    pagerduty_email: EmailMap | None = None
    max_auto_approvals: int | None = None
    interval: timedelta = timedelta(hours=24)
    announce: bool = True
    end_with_shift: bool = False
    location: Location = field(default_factory=_caller_location, compare=False, repr=False)


@dataclass
class Ticket:
    """A ticket reference asked for in the modal: `pattern` (a regular expression the whole
    reference must match), `url` (with `{}` where the reference goes), `required`."""

    pattern: str = r"[A-Z][A-Z0-9]+-\d+"
    url: str = ""
    required: bool = False
    label: str = "Ticket"
    location: Location = field(default_factory=_caller_location, compare=False, repr=False)

    def problem(self, value: str | None) -> str | None:
        """Why `value` is not an acceptable ticket reference; None when it is (or may be empty)."""
        text = (value or "").strip()
        if not text:
            return f"Give a {self.label.lower()} reference." if self.required else None
        if len(text) > MAX_TICKET or not re.fullmatch(self.pattern, text):
            like = f"like {self.example}" if self.example else f"matching {self.pattern}"
            return f"“{text[:MAX_TICKET]}” is not a {self.label.lower()} reference ({like})."
        return None

    def link(self, value: str) -> str:
        """The ticket's URL, the reference quoted into it."""
        return self.url.format(quote(value, safe=""))

    def find(self, text: str) -> str | None:
        """The first reference in free text (the one-line `/access`), or None."""
        for word in text.split():
            word = word.strip(".,;:()[]")
            if word and self.problem(word) is None:
                return word
        return None

    @property
    def example(self) -> str:
        return "INC-1234" if re.fullmatch(self.pattern, "INC-1234") else ""


MAX_TICKET = 100
# `escalate_to=ON_CALL_APPROVERS`: DM the workflow's approvers PagerDuty shows on call now.
ON_CALL_APPROVERS = "oncall"


@dataclass
class BreakGlass:
    """Emergency access without waiting: `/access break-glass <resource> <duration> <reason>`.

    - `who`: who may (Slack user ids, emails, user group ids), resolved when they ask.
    - `max_duration`: at most this long (any duration up to it).
    - `notify`: who the approvers' channel alerts: "here", "channel", or a user group id (S…).
    - `review_after`: a grant no approver marked **Reviewed** by then is announced again, once.
    """

    max_duration: timedelta
    who: Sequence[str]
    notify: str = "here"
    review_after: timedelta = timedelta(minutes=30)
    location: Location = field(default_factory=_caller_location, compare=False, repr=False)

    def mention(self) -> str:
        if self.notify in ("here", "channel"):
            return f"<!{self.notify}>"
        return f"<!subteam^{self.notify}>"


@dataclass
class Resource:
    """Something access can be requested to. The optional fields override the workflow's."""

    id: str
    name: str
    grant: GrantStrategy
    description: str = ""
    durations: Sequence[timedelta] | None = None
    max_duration: timedelta | None = None
    approvers: Sequence[str] | None = None
    required_approvals: int | None = None
    allow_self_approval: bool | None = None  # None: as the workflow says
    location: Location = field(default_factory=_caller_location, compare=False, repr=False)


@dataclass
class Workflow:
    """A policy: who may approve what, for how long, and how access is granted.

    `approvers` holds Slack user ids (U…), emails, or user group ids (S…); when empty, the
    members of `approvers_channel` approve. `required_approvals` distinct approvers must
    approve (the requester never counts); one Deny ends the request. A channel whose members
    approve must be private and not shared with another organisation: anyone who can join it
    would become an approver. `allow_open_approvers_channel=True` accepts that, on purpose.

    Hooks take an `AccessRequestInfo`: `on_request` may return a `Decision` (approve, deny or
    route to humans, with a reason) or None for the default path; `after_grant`,
    `after_revoke` and `after_deny` run after those events.
    """

    name: str
    approvers_channel: str
    resources: Sequence[Resource]
    approvers: Sequence[str] = ()
    durations: Sequence[timedelta] = (timedelta(hours=1),)
    max_duration: timedelta | None = None
    required_approvals: int = 1
    # The requester's own Approve counts (when they are an approver): for low-risk resources.
    allow_self_approval: bool = False
    # Approvers may approve one of the policy's durations shorter than asked (beside Approve).
    approve_for_less: bool = True
    ticket: Ticket | None = None  # ask for a ticket reference, shown as a link everywhere
    # A request nobody decided within `escalate_after` is re-posted to `escalate_to` (a channel
    # id C…, a user group id S… called in the approvers' channel, or ON_CALL_APPROVERS), once.
    escalate_after: timedelta | None = None
    escalate_to: str | None = None
    break_glass: BreakGlass | None = None  # emergency self-granted access, reviewed afterwards
    request_ttl: timedelta = timedelta(hours=24)  # a request nobody decides expires after this
    auto_approve: OnCall | None = None
    on_request: Callable[[AccessRequestInfo], Decision | None] | None = None
    after_grant: Callable[[AccessRequestInfo], object] | None = None
    after_revoke: Callable[[AccessRequestInfo], object] | None = None
    after_deny: Callable[[AccessRequestInfo], object] | None = None
    allow_open_approvers_channel: bool = False
    location: Location = field(default_factory=_caller_location, compare=False, repr=False)

    def resource(self, resource_id: str) -> Resource | None:
        return next((r for r in self.resources if r.id == resource_id), None)

    def durations_for(self, resource: Resource) -> list[timedelta]:
        return list(resource.durations if resource.durations is not None else self.durations)

    def max_duration_for(self, resource: Resource) -> timedelta | None:
        limits = [d for d in (resource.max_duration, self.max_duration) if d is not None]
        return min(limits) if limits else None

    def approvers_for(self, resource: Resource) -> list[str]:
        return list(resource.approvers if resource.approvers is not None else self.approvers)

    def shorter_durations_for(self, resource: Resource, duration: timedelta) -> list[timedelta]:
        """What an approver may approve instead of `duration`: the policy's shorter durations
        (none when `approve_for_less=False`)."""
        if self.approve_for_less is not True:
            return []
        return sorted(d for d in self.durations_for(resource) if d < duration)

    def self_approval_for(self, resource: Resource) -> bool:
        if resource.allow_self_approval is not None:
            return resource.allow_self_approval
        return self.allow_self_approval

    def required_approvals_for(self, resource: Resource) -> int:
        if resource.required_approvals is not None:
            return resource.required_approvals
        return self.required_approvals


@dataclass(frozen=True)
class Requester:
    slack_id: str
    email: str | None
    name: str | None


@dataclass(frozen=True)
class AccessRequestInfo:
    """What a hook is told about a request."""

    workflow: str
    resource: Resource
    requester: Requester
    duration: timedelta
    justification: str
    now: datetime
    on_call: OnCallResult | None = None  # set when the workflow has an OnCall rule
    request_id: str | None = None
    is_extension: bool = False  # more time on an active grant, rather than new access
    approved_by: tuple[str, ...] = ()
    expires_at: datetime | None = None
    reason: str | None = None  # why it was denied or revoked
    ticket: str | None = None  # the ticket reference given, when the workflow asks for one

    @property
    def is_on_call(self) -> bool:
        """PagerDuty shows the requester on call (False when unknown or undecided)."""
        return self.on_call is not None and self.on_call.on_call is True


@dataclass(frozen=True)
class Decision:
    """What `on_request` decided. Build with Decision.approve / deny / route."""

    action: Literal["approve", "deny", "route"]
    reason: str

    @classmethod
    def approve(cls, reason: str) -> Decision:
        return cls("approve", reason)

    @classmethod
    def deny(cls, reason: str) -> Decision:
        return cls("deny", reason)

    @classmethod
    def route(cls, reason: str) -> Decision:
        """Send to the approvers, with this reason shown to them and the requester."""
        return cls("route", reason)
