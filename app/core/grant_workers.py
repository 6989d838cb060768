"""A bounded pool of workers that carries out due grant work, with per-target in-flight limits.

Targets are named by the strategy's `in_flight_key` (the strategy object itself when it names
none). Each has a limit (`max_in_flight` on the strategy, else the default): a target that
hangs holds at most that many workers and calls, and its grants are not even claimed while it
is full, so the other targets' grants go on being revoked on time. A call that outlives its
deadline frees its worker at the deadline but keeps its target's slot until it really ends.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Hashable
from datetime import timedelta

from app.core.lifecycle import Claim, GrantLifecycle
from app.core.work import WorkLoop
from app.workflows.loader import Registry

log = logging.getLogger(__name__)


class GrantWorkers:
    def __init__(
        self,
        *,
        lifecycle: GrantLifecycle,
        registry: Registry,
        workers: int,
        max_in_flight: int,
        idle_wait: timedelta,
    ) -> None:
        self.lifecycle = lifecycle
        self.default_limit = max_in_flight
        self._targets: dict[str, Hashable] = {}  # resource id -> target key
        self._limits: dict[Hashable, int] = {}
        for workflow in registry.workflows:
            for resource in workflow.resources:
                key = _target_key(resource.grant)
                self._targets[resource.id] = key
                limit = getattr(resource.grant, "max_in_flight", None)
                if isinstance(limit, int) and limit > 0:
                    self._limits[key] = min(limit, self._limits.get(key, limit))
        self._in_flight: Counter[Hashable] = Counter()
        self._lock = threading.Lock()
        self._looked_past_full = time.monotonic()  # every target full: when last looked past
        self.loop: WorkLoop[Claim] = WorkLoop(
            name="grant-worker",
            threads=workers,
            claim=self._claim,
            handle=self._handle,
            next_due=lambda: self.lifecycle.next_due(skip_resources=self._full_resources()),
            idle_wait=idle_wait.total_seconds(),
            clock=lifecycle.clock,
            room=self._room,
            capacity=self._capacity(),
        )
        lifecycle.on_due = self.loop.kick

    def start(self) -> None:
        self.loop.start()

    def stop(self, grace: float) -> None:
        self.loop.stop(grace)

    def kick(self) -> None:
        self.loop.kick()

    def backlogged(self) -> bool:
        """Half the calls the targets can take at once are in progress: revocations are
        queueing, and other work (Slack messages) should wait for them."""
        capacity = min(self.loop.threads, self._capacity() or self.loop.threads)
        return self.loop.busy >= max(1, capacity // 2)

    def in_flight(self) -> dict[Hashable, int]:
        with self._lock:
            return {k: v for k, v in self._in_flight.items() if v}

    # -- the loop's callbacks ---------------------------------------------------------------

    def _limit(self, key: Hashable) -> int:
        return self._limits.get(key, self.default_limit)

    def _capacity(self) -> int | None:
        keys = set(self._targets.values())
        return sum(self._limit(k) for k in keys) if keys else None

    def _room(self) -> int:
        """Free slots across the known targets. With every target full, nothing is claimed
        (nor looked for: a call that ends kicks the loop), except once per `idle_wait`: a grant
        of a resource no workflow defines any more belongs to no target, and must not wait for
        one that stays full (a strategy that hangs for good)."""
        keys = set(self._targets.values())
        if not keys:
            return self.loop.threads
        with self._lock:
            room = sum(max(0, self._limit(k) - self._in_flight[k]) for k in keys)
        now = time.monotonic()
        if room == 0 and now - self._looked_past_full >= self.loop.idle_wait:
            self._looked_past_full = now
            return 1
        return room

    def _full_resources(self) -> list[str]:
        with self._lock:
            full = {k for k, n in self._in_flight.items() if n >= self._limit(k)}
        return [resource for resource, key in self._targets.items() if key in full]

    def _claim(self, free: int) -> list[Claim]:
        claims = self.lifecycle.claim_due(free, skip_resources=self._full_resources())
        taken: list[Claim] = []
        with self._lock:
            for claim in claims:
                key = self._targets.get(claim.resource_id, ("resource", claim.resource_id))
                if self._in_flight[key] >= self._limit(key):
                    continue  # this batch filled its target: the lease runs out, then retried
                self._in_flight[key] += 1
                taken.append(claim)
        if len(taken) < len(claims):
            kept = {c.grant_id for c in taken}
            self.lifecycle.release([c.grant_id for c in claims if c.grant_id not in kept])
        return taken

    def _handle(self, claim: Claim) -> None:
        key = self._targets.get(claim.resource_id, ("resource", claim.resource_id))
        released: list[bool] = []

        def call_done() -> None:  # once, whichever thread gets here first
            with self._lock:
                if released:
                    return
                released.append(True)
                self._in_flight[key] -= 1
            self.loop.kick()  # the target has room again

        try:
            self.lifecycle.attempt(claim, call_done=call_done)
        except Exception:
            call_done()  # the call never started (the database failed around it)
            raise


def _target_key(strategy: object) -> Hashable:
    key = getattr(strategy, "in_flight_key", None)
    return key if isinstance(key, str) and key else ("strategy", id(strategy))
