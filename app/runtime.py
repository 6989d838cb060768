"""The composition root: builds every part from settings, with vendor clients passed in."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.core.approvers import Approvers
from app.core.break_glass import BreakGlassAccess
from app.core.escalation import Escalations
from app.core.grant_workers import GrantWorkers
from app.core.hooks import AfterHooks
from app.core.jobs import CHANNEL as JOBS_CHANNEL
from app.core.jobs import Job, JobQueue, run_job
from app.core.leases import release_leases
from app.core.lifecycle import GrantLifecycle
from app.core.limits import RequesterLimits
from app.core.models import GrantState
from app.core.outbox import Delivery, Outbox, OutboxQueue
from app.core.ports import Clock, utcnow
from app.core.requests import AccessRequests
from app.core.routing import Router
from app.core.views import RequestView
from app.core.work import WorkLoop
from app.db.migrate import head_revision
from app.db.notify import NotifyListener
from app.db.session import make_engine, make_session_factory
from app.metrics import Metrics
from app.oncall.metered import MeteredOnCall
from app.oncall.pagerduty import PagerDutyOnCall, make_pagerduty_client
from app.readiness import Readiness
from app.scheduler import Scheduler
from app.slack.after_ack import AckTraffic, AfterAck, shutdown_within
from app.slack.directory import SlackDirectory
from app.slack.listeners import register
from app.slack.metered import MeteredWebClient, meter_listener_clients
from app.slack.notifier import SlackNotifier
from app.slack.sender import SlackPacer, SlackSender
from app.workflows.loader import Registry, load_workflows

log = logging.getLogger(__name__)


class _QuietTokenWarning(logging.Filter):
    """Bolt warns that SLACK_BOT_TOKEN goes unused when a client is given; it is the client's."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


logging.getLogger("slack_bolt.App").addFilter(_QuietTokenWarning())


def make_slack_client(settings: Settings, metrics: Metrics | None = None) -> WebClient:
    return MeteredWebClient(
        token=settings.bot_token,
        base_url=settings.slack_api_url,
        timeout=10,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)],
        metrics=metrics or Metrics(),
    )


def make_sender_client(slack: WebClient, metrics: Metrics) -> WebClient:
    """The outbox sender's client: the same server and token, but no retry on 429 of its own;
    the sender honours Retry-After itself, for every thread, and never sleeps holding a lease."""
    return MeteredWebClient(token=slack.token, base_url=slack.base_url, timeout=10, metrics=metrics)


def make_oncall_checker(settings: Settings, registry: Registry) -> PagerDutyOnCall | None:
    """PagerDuty when PAGERDUTY_API_TOKEN is set; otherwise OnCall rules are off, and we say so."""
    if settings.pagerduty_api_token:
        client = make_pagerduty_client(settings.pagerduty_api_token, settings.pagerduty_api_url)
        return PagerDutyOnCall(
            client, oncall_cache_ttl=timedelta(seconds=settings.pagerduty_oncall_cache_seconds)
        )
    with_rules = [w.name for w in registry.workflows if w.auto_approve is not None]
    if with_rules:
        log.warning(
            "PAGERDUTY_API_TOKEN is not set: on-call auto-approval is off for %s; "
            "their requests go to the approvers",
            ", ".join(with_rules),
        )
    return None


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    registry: Registry
    slack: WebClient
    lifecycle: GrantLifecycle
    requests: AccessRequests
    escalations: Escalations
    break_glass: BreakGlassAccess
    scheduler: Scheduler
    grant_workers: GrantWorkers
    outbox: OutboxQueue
    sender: WorkLoop[Delivery]  # delivers the outbox to Slack
    slack_sender: SlackSender  # what one of its threads does with a delivery
    bolt: App
    oncall: PagerDutyOnCall | None
    listener_executor: ThreadPoolExecutor  # Bolt's: listeners validate and ack on it, no more
    after_ack: AfterAck  # what listeners do after the ack
    jobs: WorkLoop[Job]  # runs the after-ack jobs listeners stored (any process's)
    job_wakeups: NotifyListener  # another process stored one
    metrics: Metrics
    readiness: Readiness
    owner: str  # who holds this process's leases
    _started: bool = field(default=False, init=False)

    def sweep(self) -> int:
        """Timed work that is not a grant's: requests to expire or to route, reminders. Grants
        have their workers; the sweep only nudges them (another process may have left some)."""
        self.grant_workers.kick()
        self.sender.kick()
        return (
            self.requests.expire_pending()
            + self.requests.reroute_stuck()
            + self.escalations.escalate_stale()
            + self.break_glass.reannounce_unreviewed()
            + self.lifecycle.send_reminders()
        )

    def next_wakeup(self) -> datetime | None:
        """The earliest time the sweep has something to do, read from the database."""
        times = [
            self.requests.next_pending_expiry(),
            self.lifecycle.next_reminder(),
            self.escalations.next_escalation(),
            self.break_glass.next_reannouncement(),
        ]
        return min((t for t in times if t is not None), default=None)

    def settle(self, request_id: uuid.UUID, timeout: float = 30.0) -> RequestView:
        """Wait (at most `timeout` seconds) until the request's grant is not waiting for a first
        attempt and its messages have left the outbox; its view then. For one-shot commands."""
        deadline = time.monotonic() + timeout
        while True:
            view = self.requests.view(request_id)
            attempted = view.grant_state not in (GrantState.GRANTING, GrantState.REVOKING)
            if (attempted or view.grant_attempts) and not self.outbox.pending(request_id):
                return view
            if time.monotonic() > deadline:
                return view
            time.sleep(0.05)

    @property
    def works(self) -> bool:
        """Whether this process does the background work (every role but `web`)."""
        return self.settings.process_role != "web"

    def start(self) -> None:
        """Start the workers, the after-ack job loop, the outbox sender and the scheduler;
        whatever came due while we were down is done at once. In the `web` role, none of
        them: this process answers Slack, and worker processes do the rest."""
        if self.works:
            self.grant_workers.start()
            self.jobs.start()
            self.job_wakeups.start()
            self.sender.start()
            self.scheduler.start(self.sweep, self.next_wakeup)
        self._started = True

    def stop(self, timeout: float | None = None) -> None:
        """Take no new work; let work in hand finish for at most `timeout` seconds in all
        (SHUTDOWN_GRACE_SECONDS by default), then close. What is still unfinished keeps its
        lease until it runs out; then another instance, or the next start, completes it.
        Listeners first: the ones still running hand their work to after_ack, which takes it;
        the outbox last, so the messages the others wrote still go out."""
        grace = self.settings.shutdown_grace_seconds if timeout is None else timeout
        deadline = time.monotonic() + grace

        def left() -> float:
            return max(0.0, deadline - time.monotonic())

        working = self._started and self.works
        if working:
            self.scheduler.shutdown()
        shutdown_within(self.listener_executor, left(), what="Slack listeners")
        self.after_ack.shutdown(wait=True, timeout=left())
        if working:
            self.job_wakeups.stop(min(left(), 2.0))
            self.jobs.stop(left())
            self.grant_workers.stop(left())
            self.sender.stop(left())
            self.hand_back()
        if self.after_ack.jobs is not None:
            self.after_ack.jobs.close()
        if self.oncall is not None:
            self.oncall.close()
        self.engine.dispose()

    def hand_back(self) -> None:
        """Give up the leases this process still holds (calls past the grace, unsent
        messages): another instance, or the next start, takes them over at once instead of
        waiting for them to run out. Grant and revoke calls are idempotent, so a call of ours
        that did reach its target is only repeated."""
        try:
            grants, messages, jobs = release_leases(self.sessions, self.owner)
        except Exception as exc:  # the database is gone: the leases run out on their own
            log.warning("could not hand back leases: %s", exc.__class__.__name__)
            return
        if grants or messages or jobs:
            log.info(
                "handed back %d unfinished grant(s), %d message(s) and %d after-ack job(s) "
                "to the next instance",
                grants,
                messages,
                jobs,
            )


def make_owner() -> str:
    """Who holds this process's leases, in logs and in the database."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def build_runtime(
    settings: Settings,
    *,
    database_url: str,
    registry: Registry | None = None,
    slack: WebClient | None = None,
    clock: Clock = utcnow,
    metrics: Metrics | None = None,
) -> Runtime:
    metrics = metrics or Metrics()
    registry = registry or load_workflows(settings.workflows_dir)
    slack = slack or make_slack_client(settings, metrics)
    # Grant workers touch the database only to claim (the loop's thread) and to record outcomes
    # (one group commit at a time), so the pool follows the threads that hold sessions longer.
    engine = make_engine(
        database_url,
        pool_size=settings.after_ack_threads
        + settings.slack_sender_threads
        + settings.worker_threads
        + 4,
    )
    sessions = make_session_factory(engine)
    owner = make_owner()
    outbox = Outbox(sessions)
    notifier = SlackNotifier(outbox)
    scheduler = Scheduler(sweep_interval=timedelta(seconds=settings.sweep_interval_seconds))
    oncall = make_oncall_checker(settings, registry)
    metrics.watch_database(sessions, clock)
    hooks = AfterHooks(
        registry=registry,
        sessions=sessions,
        notifier=notifier,
        clock=clock,
        deadline=settings.hook_deadline_seconds,
    )
    lifecycle = GrantLifecycle(
        sessions=sessions,
        registry=registry,
        notifier=notifier,
        clock=clock,
        wakeups=scheduler,
        hooks=hooks,
        owner=owner,
        reminder=timedelta(minutes=settings.reminder_minutes),
        reminder_min_grant=timedelta(minutes=settings.reminder_min_grant_minutes),
        lease_margin=timedelta(seconds=settings.lease_margin_seconds),
        metrics=metrics,
    )
    grant_workers = GrantWorkers(
        lifecycle=lifecycle,
        registry=registry,
        workers=settings.grant_workers,
        max_in_flight=settings.grant_target_max_in_flight or max(1, settings.grant_workers // 2),
        idle_wait=timedelta(seconds=settings.sweep_interval_seconds),
    )
    directory = SlackDirectory(slack)
    requests = AccessRequests(
        sessions=sessions,
        registry=registry,
        directory=directory,
        approvers=Approvers(
            directory, clock=clock, ttl=timedelta(seconds=settings.approvers_cache_seconds)
        ),
        notifier=notifier,
        lifecycle=lifecycle,
        hooks=hooks,
        wakeups=scheduler,
        router=Router(
            oncall=MeteredOnCall(oncall, metrics) if oncall else None,
            clock=clock,
            hook_deadline=settings.hook_deadline_seconds,
        ),
        clock=clock,
        limits=RequesterLimits(
            max_open=settings.max_open_requests, per_hour=settings.max_requests_per_hour
        ),
    )
    queue = OutboxQueue(sessions=sessions, owner=owner, clock=clock)
    slack_sender = SlackSender(
        client=make_sender_client(slack, metrics),
        queue=queue,
        view_of=requests.find_view,
        record_post=requests.posted,
        pacer=SlackPacer(settings.slack_rate_scale),
    )
    traffic = AckTraffic()

    def revoking_backlog() -> bool:
        return grant_workers.backlogged()

    def deliver(delivery: Delivery) -> None:
        # Acks come first, and so does a backlog of revocations: messages wait, access doesn't.
        with traffic.background("slack-sender", behind=revoking_backlog):
            slack_sender.deliver(delivery)

    def sender_room() -> int:
        # Behind a backlog of revocations messages go one at a time (`deliver`): claim one
        # at a time too, rather than hold a batch whose threads poll while they wait and
        # whose claims read the outbox again and again, taking CPU from the revocations.
        if revoking_backlog():
            return max(0, 1 - sender.busy)
        return settings.slack_sender_threads

    sender: WorkLoop[Delivery] = WorkLoop(
        name="slack-sender",
        threads=settings.slack_sender_threads,
        claim=queue.claim,
        handle=deliver,
        next_due=queue.next_due,
        idle_wait=min(settings.sweep_interval_seconds, 5.0),
        clock=clock,
        room=sender_room,
    )
    outbox.on_commit = sender.kick
    # Background work (every thread but those answering Slack) steps aside for acks at each
    # database transaction it starts.
    event.listen(engine, "begin", lambda _connection: traffic.yield_to_answers())
    listener_executor = ThreadPoolExecutor(
        max_workers=settings.worker_threads,
        thread_name_prefix="listener",
        initializer=traffic.mark_foreground,
    )
    job_queue = JobQueue(
        engine=engine,
        sessions=sessions,
        owner=owner,
        clock=clock,
        # Longer than a job can take: routing waits for PagerDuty and for hooks (each bounded).
        lease=timedelta(seconds=2 * settings.hook_deadline_seconds + 60),
    )
    after_ack = AfterAck(settings.after_ack_threads, traffic, job_queue)

    def run_after_ack(job: Job) -> None:
        with traffic.background("after-ack"):
            run_job(job_queue, after_ack.handlers, job)

    jobs: WorkLoop[Job] = WorkLoop(
        name="after-ack",
        threads=settings.after_ack_threads,
        claim=job_queue.claim,
        handle=run_after_ack,
        next_due=job_queue.next_due,
        idle_wait=min(settings.sweep_interval_seconds, 5.0),
        clock=clock,
    )
    job_queue.on_added = jobs.kick

    def heard_of_job() -> None:
        # A job stored means a Slack request being answered, maybe by another process: run
        # the job once requests pause, as if this process had answered it.
        traffic.answered_elsewhere()
        jobs.kick()

    bolt = App(
        client=slack,
        signing_secret=settings.slack_signing_secret,
        listener_executor=listener_executor,
        # Listeners only validate, ack and hand the rest to `after_ack`, so they run in the
        # thread that answers Slack and the answer goes out as they return. (Otherwise Bolt
        # runs each on its executor and looks for its ack every 10 ms: 10 ms or more per ack.)
        process_before_response=True,
    )
    break_glass = BreakGlassAccess(
        sessions=sessions,
        registry=registry,
        requests=requests,
        approvers=requests.approvers,
        directory=directory,
        notifier=notifier,
        wakeups=scheduler,
        clock=clock,
    )
    if isinstance(slack, MeteredWebClient):
        meter_listener_clients(bolt, slack)
    register(
        bolt,
        requests=requests,
        break_glass=break_glass,
        registry=registry,
        clock=clock,
        after_ack=after_ack,
    )
    readiness = Readiness(
        engine=engine,
        head=head_revision(),
        # A web process does not sweep: its readiness is the database's.
        last_sweep=(lambda: scheduler.last_sweep) if settings.process_role != "web" else None,
        sweep_interval=scheduler.sweep_interval,
        clock=utcnow,
    )
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=sessions,
        registry=registry,
        slack=slack,
        lifecycle=lifecycle,
        requests=requests,
        break_glass=break_glass,
        escalations=Escalations(
            sessions=sessions,
            registry=registry,
            notifier=notifier,
            clock=clock,
            approvers=requests.approvers,
            directory=directory,
            oncall=oncall,
        ),
        scheduler=scheduler,
        grant_workers=grant_workers,
        outbox=queue,
        sender=sender,
        slack_sender=slack_sender,
        bolt=bolt,
        oncall=oncall,
        listener_executor=listener_executor,
        after_ack=after_ack,
        jobs=jobs,
        job_wakeups=NotifyListener(engine, JOBS_CHANNEL, heard_of_job, on_listen=jobs.kick),
        metrics=metrics,
        readiness=readiness,
        owner=owner,
    )
