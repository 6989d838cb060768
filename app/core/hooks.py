"""Running the policy author's after-event hooks: their failures are reported, never fatal."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Literal

from sqlalchemy.orm import Session, sessionmaker

from app.core import audit
from app.core.audit import SYSTEM_ACTOR, Event
from app.core.deadline import call_with_deadline
from app.core.ports import Notifier
from app.core.text import clean
from app.core.views import RequestView
from app.workflows.loader import Registry
from app.workflows.model import AccessRequestInfo, Requester

log = logging.getLogger(__name__)

DEFAULT_HOOK_DEADLINE = 10.0  # seconds a policy hook may run

AfterHook = Literal["after_grant", "after_revoke", "after_deny"]


def request_info(view: RequestView, registry: Registry, now: datetime) -> AccessRequestInfo | None:
    found = registry.find(view.resource_id)
    if found is None:
        return None
    return AccessRequestInfo(
        workflow=view.workflow,
        resource=found[1],
        requester=Requester(view.requester_slack_id, view.requester_email, view.requester_name),
        duration=view.duration,
        justification=view.justification,
        now=now,
        request_id=str(view.id),
        approved_by=view.approvals or ((view.decided_by,) if view.decided_by else ()),
        expires_at=view.expires_at,
        reason=view.end_reason if view.end_reason else view.decision_note,
        ticket=view.ticket,
    )


class AfterHooks:
    def __init__(
        self,
        *,
        registry: Registry,
        sessions: sessionmaker[Session],
        notifier: Notifier,
        clock: Callable[[], datetime],
        deadline: float = DEFAULT_HOOK_DEADLINE,
    ) -> None:
        self.deadline = deadline
        self.registry = registry
        self.sessions = sessions
        self.notifier = notifier
        self.clock = clock

    def run(self, hook: AfterHook, view: RequestView) -> None:
        workflow = self.registry.workflow(view.workflow)
        function = getattr(workflow, hook, None) if workflow else None
        if function is None:
            return
        info = request_info(view, self.registry, self.clock())
        if info is None:
            return
        try:
            call_with_deadline(lambda: function(info), self.deadline, name=hook)
        except Exception as exc:  # the policy author's code: report it, carry on
            log.warning("%s of %s raised %r", hook, view.workflow, exc)
            message = clean(f"{hook} hook failed: {exc.__class__.__name__}: {exc}", 500)
            with self.sessions.begin() as session:
                audit.record(
                    session,
                    Event.HOOK_FAILED,
                    actor=SYSTEM_ACTOR,
                    request_id=view.id,
                    hook=hook,
                    error=clean(repr(exc), 2000),
                )
                self.notifier.note(session, view, f"⚠️ The workflow's {message}")
