"""The composition root: builds every part from settings, with vendor clients passed in."""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

from slack_bolt import App
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.core.approvers import Approvers
from app.core.hooks import AfterHooks
from app.core.lifecycle import GrantLifecycle
from app.core.ports import Clock, utcnow
from app.core.requests import AccessRequests
from app.core.routing import Router
from app.db.session import make_engine, make_session_factory
from app.oncall.pagerduty import PagerDutyOnCall, make_pagerduty_client
from app.scheduler import GrantScheduler
from app.slack.directory import SlackDirectory
from app.slack.listeners import register
from app.slack.notifier import SlackNotifier
from app.workflows.loader import Registry, load_workflows

log = logging.getLogger(__name__)


class _QuietTokenWarning(logging.Filter):
    """Bolt warns that SLACK_BOT_TOKEN goes unused when a client is given; it is the client's."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "`token` will be unused" not in record.getMessage()


logging.getLogger("slack_bolt.App").addFilter(_QuietTokenWarning())


def make_slack_client(settings: Settings) -> WebClient:
    return WebClient(
        token=settings.bot_token,
        base_url=settings.slack_api_url,
        timeout=10,
        retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=2)],
    )


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
    scheduler: GrantScheduler
    bolt: App
    oncall: PagerDutyOnCall | None
    _started: bool = field(default=False, init=False)

    def sweep(self) -> int:
        """Everything that is due: grants to retry or revoke, requests to expire, reminders."""
        return (
            self.lifecycle.process_due()
            + self.requests.expire_pending()
            + self.requests.post_unposted()
            + self.lifecycle.announce_missed()
            + self.lifecycle.send_reminders()
        )

    def start(self) -> None:
        """Start the scheduler; its first sweep revokes whatever expired while we were down."""
        self.scheduler.start(self.sweep)
        self._started = True

    def stop(self) -> None:
        if self._started:
            self.scheduler.shutdown()
        if self.oncall is not None:
            self.oncall.close()
        self.engine.dispose()


def build_runtime(
    settings: Settings,
    *,
    database_url: str,
    registry: Registry | None = None,
    slack: WebClient | None = None,
    clock: Clock = utcnow,
) -> Runtime:
    registry = registry or load_workflows(settings.workflows_dir)
    slack = slack or make_slack_client(settings)
    engine = make_engine(database_url)
    sessions = make_session_factory(engine)
    notifier = SlackNotifier(slack)
    scheduler = GrantScheduler(sweep_interval=timedelta(seconds=settings.sweep_interval_seconds))
    oncall = make_oncall_checker(settings, registry)
    hooks = AfterHooks(registry=registry, sessions=sessions, notifier=notifier, clock=clock)
    lifecycle = GrantLifecycle(
        sessions=sessions,
        registry=registry,
        notifier=notifier,
        clock=clock,
        wakeups=scheduler,
        hooks=hooks,
        reminder=timedelta(minutes=settings.reminder_minutes),
        reminder_min_grant=timedelta(minutes=settings.reminder_min_grant_minutes),
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
        router=Router(oncall=oncall, sessions=sessions, clock=clock),
        clock=clock,
    )
    bolt = App(
        client=slack,
        signing_secret=settings.slack_signing_secret,
        listener_executor=ThreadPoolExecutor(
            max_workers=settings.worker_threads, thread_name_prefix="listener"
        ),
    )
    register(bolt, requests=requests, registry=registry, clock=clock)
    return Runtime(
        settings=settings,
        engine=engine,
        sessions=sessions,
        registry=registry,
        slack=slack,
        lifecycle=lifecycle,
        requests=requests,
        scheduler=scheduler,
        bolt=bolt,
        oncall=oncall,
    )
