"""Prometheus metrics: every name starts with `accessbot_`, every label value is bounded.

Two kinds. Calls this process makes (grant strategies, Slack, PagerDuty) are counted as they
happen, in a `Metrics` object that the runtime passes to whoever makes them. What the database
holds (requests by outcome, time to decision, active and overdue grants, revocation lag,
outbox depth) is read from it at each scrape, so every instance reports the same numbers and
a restart loses none: alert on `max()` across instances, never `sum()`.

Each `Metrics` has its own registry (no global one), so tests and several runtimes in one
process never see each other's numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from app.core.models import (
    AccessRequest,
    AfterAckJob,
    Grant,
    GrantState,
    OutboxMessage,
    RequestState,
)
from app.core.ports import Clock

log = logging.getLogger(__name__)

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CALL_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# Seconds from a request to its decision: on-call approvals take a second, people minutes.
DECISION_BUCKETS = (1.0, 5.0, 30.0, 60.0, 300.0, 900.0, 1800.0, 3600.0, 4 * 3600.0, 86400.0)
# Seconds from a grant's expiry to its revocation.
LAG_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
OUTCOMES = ("auto_approved", "approved", "denied", "cancelled", "expired")


class Metrics:
    """The counters and histograms of calls this process makes."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry(auto_describe=True)
        r = self.registry
        self.strategy_calls = Counter(
            "accessbot_strategy_calls_total",
            "Grant strategy calls by strategy, operation (grant, revoke, extend) and result "
            "(ok, error, timeout).",
            ["strategy", "operation", "result"],
            registry=r,
        )
        self.strategy_seconds = Histogram(
            "accessbot_strategy_call_seconds",
            "Grant strategy call latency.",
            ["strategy", "operation"],
            buckets=CALL_BUCKETS,
            registry=r,
        )
        self.slack_calls = Counter(
            "accessbot_slack_api_calls_total",
            "Slack Web API calls by method and final result (ok, error, ratelimited, failed).",
            ["method", "result"],
            registry=r,
        )
        self.slack_seconds = Histogram(
            "accessbot_slack_api_call_seconds",
            "Slack Web API call latency, retries included.",
            ["method"],
            buckets=CALL_BUCKETS,
            registry=r,
        )
        self.slack_ratelimited = Counter(
            "accessbot_slack_ratelimited_total",
            "HTTP 429 answers from Slack by method, each one (retried or not).",
            ["method"],
            registry=r,
        )
        self.pagerduty_checks = Counter(
            "accessbot_pagerduty_checks_total",
            "PagerDuty on-call checks by result (on_call, not_on_call, undecided: an error, "
            "timeout or rate limit sent the request to people).",
            ["result"],
            registry=r,
        )
        self.pagerduty_seconds = Histogram(
            "accessbot_pagerduty_check_seconds",
            "PagerDuty on-call check latency (cached answers included).",
            buckets=CALL_BUCKETS,
            registry=r,
        )

    def strategy_call(self, strategy: str, operation: str, result: str, seconds: float) -> None:
        self.strategy_calls.labels(strategy, operation, result).inc()
        self.strategy_seconds.labels(strategy, operation).observe(seconds)

    def slack_call(self, method: str, result: str, seconds: float) -> None:
        self.slack_calls.labels(method, result).inc()
        self.slack_seconds.labels(method).observe(seconds)

    def slack_429(self, method: str) -> None:
        self.slack_ratelimited.labels(method).inc()

    def pagerduty_check(self, result: str, seconds: float) -> None:
        self.pagerduty_checks.labels(result).inc()
        self.pagerduty_seconds.observe(seconds)

    def watch_database(self, sessions: sessionmaker[Session], clock: Clock) -> None:
        """Report what the database holds at each scrape."""
        self.registry.register(DatabaseCollector(sessions, clock))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class DatabaseCollector(Collector):
    """Gauges and cumulative counts read from the database when Prometheus scrapes."""

    def __init__(self, sessions: sessionmaker[Session], clock: Clock) -> None:
        self.sessions = sessions
        self.clock = clock

    def describe(self) -> list[Metric]:
        return []  # unknown until read: no query at registration

    def collect(self) -> Iterator[Metric]:
        try:
            with self.sessions.begin() as session:
                metrics = list(self._read(session))
        except Exception as exc:  # the database is down: say so, do not fail the scrape
            log.warning("metrics: could not read the database: %s", exc.__class__.__name__)
            up = GaugeMetricFamily(
                "accessbot_database_up", "1 when the last scrape could read the database."
            )
            up.add_metric([], 0)
            yield up
            return
        yield from metrics

    def _read(self, session: Session) -> Iterator[Metric]:
        now = self.clock()
        up = GaugeMetricFamily(
            "accessbot_database_up", "1 when the last scrape could read the database."
        )
        up.add_metric([], 1)
        yield up

        requests = CounterMetricFamily(
            "accessbot_requests",
            "Requests decided or ended, by workflow and outcome (auto_approved, approved, "
            "denied, cancelled, expired); extensions included.",
            labels=["workflow", "outcome"],
        )
        pending = GaugeMetricFamily(
            "accessbot_requests_pending",
            "Requests waiting for a decision, by workflow.",
            labels=["workflow"],
        )
        rows = session.execute(
            select(
                AccessRequest.workflow,
                AccessRequest.state,
                AccessRequest.auto_approved,
                func.count(),
            ).group_by(AccessRequest.workflow, AccessRequest.state, AccessRequest.auto_approved)
        ).all()
        for workflow, state, auto, count in rows:
            if state == RequestState.PENDING:
                pending.add_metric([workflow], count)
                continue
            outcome = "auto_approved" if state == RequestState.APPROVED and auto else str(state)
            requests.add_metric([workflow, outcome], count)
        yield requests
        yield pending

        decided = AccessRequest.decided_at - AccessRequest.created_at
        yield self._histogram(
            session,
            "accessbot_request_decision_seconds",
            "Time from a request to its decision (approved or denied), by people or on call.",
            func.extract("epoch", decided),
            DECISION_BUCKETS,
            AccessRequest.decided_at.is_not(None),
            AccessRequest.state.in_([RequestState.APPROVED, RequestState.DENIED]),
        )

        active = GaugeMetricFamily(
            "accessbot_grants_active", "Grants in force, by workflow.", labels=["workflow"]
        )
        for workflow, count in session.execute(
            select(AccessRequest.workflow, func.count())
            .join(Grant, Grant.request_id == AccessRequest.id)
            .where(Grant.state == GrantState.ACTIVE)
            .group_by(AccessRequest.workflow)
        ):
            active.add_metric([workflow], count)
        yield active

        overdue = GaugeMetricFamily(
            "accessbot_grants_overdue",
            "Grants past their expiry and not yet revoked: access that outlives its approval.",
        )
        overdue.add_metric(
            [],
            session.scalar(
                select(func.count())
                .select_from(Grant)
                .where(
                    Grant.state.in_([GrantState.ACTIVE, GrantState.REVOKING]),
                    Grant.expires_at < now,
                )
            )
            or 0,
        )
        yield overdue

        yield self._histogram(
            session,
            "accessbot_revocation_lag_seconds",
            "Time from a grant's expiry to its successful revocation (grants that expired).",
            func.extract("epoch", Grant.ended_at - Grant.expires_at),
            LAG_BUCKETS,
            Grant.state == GrantState.REVOKED,
            Grant.end_reason == "expired",
            Grant.ended_at.is_not(None),
            Grant.expires_at.is_not(None),
        )

        depth = GaugeMetricFamily(
            "accessbot_outbox_depth", "Slack messages written but not yet delivered."
        )
        depth.add_metric(
            [],
            session.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.done_at.is_(None))
            )
            or 0,
        )
        yield depth

        waiting, failed, oldest = session.execute(
            select(
                func.count().filter(AfterAckJob.failed_at.is_(None)),
                func.count().filter(AfterAckJob.failed_at.is_not(None)),
                func.min(AfterAckJob.created_at).filter(AfterAckJob.failed_at.is_(None)),
            )
        ).one()
        jobs = GaugeMetricFamily(
            "accessbot_after_ack_jobs",
            "After-ack jobs stored and not done: waiting (or running), and failed for good.",
            labels=["state"],
        )
        jobs.add_metric(["waiting"], waiting)
        jobs.add_metric(["failed"], failed)
        yield jobs
        age = GaugeMetricFamily(
            "accessbot_after_ack_job_oldest_seconds",
            "Age of the oldest after-ack job not done (0: none). Growing: no worker runs.",
        )
        age.add_metric([], max(0.0, (now - oldest).total_seconds()) if oldest else 0.0)
        yield age

    @staticmethod
    def _histogram(
        session: Session,
        name: str,
        documentation: str,
        seconds: object,
        buckets: tuple[float, ...],
        *where: object,
    ) -> HistogramMetricFamily:
        """A cumulative histogram counted in one query: one FILTER per bucket."""
        value = func.greatest(seconds, 0)
        columns = [func.count().filter(value <= bound) for bound in buckets]
        row = session.execute(
            select(*columns, func.count(), func.coalesce(func.sum(value), 0)).where(*where)  # type: ignore[arg-type]
        ).one()
        *counts, total, total_sum = row
        family = HistogramMetricFamily(name, documentation)
        family.add_metric(
            [],
            [(_bound(b), c) for b, c in zip(buckets, counts, strict=True)] + [("+Inf", total)],
            sum_value=float(total_sum),
        )
        return family


def _bound(value: float) -> str:
    return str(float(value))
