"""Who may approve: resolved at decision time from user ids, emails, user groups or a channel.

Answers are cached briefly, so removing someone from a group or channel takes their right
away within `ttl`. A directory failure means "may not approve" (fail closed).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from datetime import datetime, timedelta

from app.core.ports import Clock, Directory, DirectoryError
from app.workflows.model import Resource, Workflow

USER_PREFIXES = ("U", "W")
GROUP_PREFIX = "S"


class Approvers:
    def __init__(self, directory: Directory, *, clock: Clock, ttl: timedelta) -> None:
        self.directory = directory
        self.clock = clock
        self.ttl = ttl
        self._cache: dict[str, tuple[datetime, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def resolve(self, workflow: Workflow, resource: Resource) -> frozenset[str]:
        """Slack user ids of everyone who may approve requests for `resource`."""
        specs = workflow.approvers_for(resource)
        if not specs:
            return self._cached(f"channel:{workflow.approvers_channel}", workflow.approvers_channel)
        members: set[str] = set()
        for spec in specs:
            members |= self._cached(spec, spec)
        return frozenset(members)

    def may_approve(self, workflow: Workflow, resource: Resource, slack_id: str) -> bool:
        return slack_id in self.resolve(workflow, resource)

    def is_listed(self, specs: Sequence[str], slack_id: str) -> bool:
        """Does one of `specs` (user ids, emails, user groups) name `slack_id`? User ids are
        checked first, without asking Slack; a lookup that fails only matters when no other
        spec names them (then it raises DirectoryError: fail closed, and say why)."""
        failure: DirectoryError | None = None
        for spec in sorted(specs, key=lambda s: not s.startswith(USER_PREFIXES)):
            try:
                if slack_id in self._cached(spec, spec):
                    return True
            except DirectoryError as exc:
                failure = exc
        if failure is not None:
            raise failure
        return False

    def _cached(self, key: str, spec: str) -> frozenset[str]:
        now = self.clock()
        with self._lock:
            hit = self._cache.get(key)
            if hit and hit[0] > now:
                return hit[1]
        members = self._lookup(key, spec)
        with self._lock:
            self._cache[key] = (now + self.ttl, members)
        return members

    def _lookup(self, key: str, spec: str) -> frozenset[str]:
        if key.startswith("channel:"):
            return frozenset(self.directory.channel_members(spec))
        if "@" in spec:
            found = self.directory.user_id_by_email(spec)
            return frozenset([found] if found else [])
        if spec.startswith(GROUP_PREFIX):
            return frozenset(self.directory.usergroup_members(spec))
        if spec.startswith(USER_PREFIXES):
            return frozenset([spec])
        raise DirectoryError(f"approver {spec!r} is not a user id, an email or a user group")
