"""The bot under test: the real runtime and HTTP server, wired to fakes on 127.0.0.1."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.config import Settings
from app.core.models import AccessRequest, AuditEvent, Grant
from app.db.session import make_engine, make_session_factory
from app.grants.base import Retry
from app.grants.webhook import Webhook
from app.runtime import Runtime, build_runtime
from app.server import AccessbotWsgi, make_server
from app.slack.http import SlackHttp
from app.slack.socket_mode import connect_socket_mode
from app.workflows.loader import Registry
from app.workflows.model import Resource, Workflow
from tests.support.fake_slack import APP_TOKEN, BOT_TOKEN, Call, FakeSlack
from tests.support.fake_socket_mode import FakeSocketMode, SocketModeSender
from tests.support.slack_requests import SIGNING_SECRET, SlackSender
from tests.support.wait import wait_until
from tests.support.webhook_receiver import WebhookReceiver

REQUESTER = "UREQUESTER"
APPROVER = "UAPPROVER1"
APPROVER_2 = "UAPPROVER2"
OUTSIDER = "UOUTSIDER"
APPROVERS_CHANNEL = "CAPPROVALS"
WEBHOOK_SECRET = "webhook-secret"
FAST_RETRY = Retry(
    attempts=3, backoff=timedelta(milliseconds=200), max_backoff=timedelta(seconds=1)
)


def default_workflows(webhook_url: str) -> list[Workflow]:
    return [
        Workflow(
            name="production",
            approvers_channel=APPROVERS_CHANNEL,
            approvers=[APPROVER, APPROVER_2, REQUESTER],  # a requester who is also an approver
            durations=[timedelta(seconds=1), timedelta(minutes=15), timedelta(hours=1)],
            resources=[
                Resource(
                    id="orders-db",
                    name="Orders DB (read-only)",
                    grant=Webhook(
                        url=webhook_url, secret=WEBHOOK_SECRET, timeout=1.0, retry=FAST_RETRY
                    ),
                )
            ],
        )
    ]


@dataclass
class Bot:
    runtime: Runtime
    slack: FakeSlack
    webhook: WebhookReceiver
    sender: SlackSender
    url: str
    sessions: sessionmaker[Session]
    _server: Any = field(repr=False)
    _thread: threading.Thread = field(repr=False)
    socket_mode: Any = field(default=None, repr=False)  # its SocketModeHandler, in Socket Mode

    def stop(self) -> None:
        if not self._thread.is_alive():
            return
        self.sender.http.close()
        if self.socket_mode is not None:
            self.socket_mode.close()
        self._server.stop()
        self._thread.join(timeout=5)
        assert not self._thread.is_alive(), "the HTTP server did not stop"
        self.runtime.stop()
        bind = self.sessions.kw["bind"]
        bind.dispose()

    # -- what the database holds -----------------------------------------------------------

    def requests(self) -> list[AccessRequest]:
        with self.sessions() as session:
            return list(session.scalars(select(AccessRequest).order_by(AccessRequest.created_at)))

    def grants(self) -> list[Grant]:
        with self.sessions() as session:
            return list(session.scalars(select(Grant).order_by(Grant.created_at)))

    def audit(self, request_id: Any = None) -> list[AuditEvent]:
        with self.sessions() as session:
            query = select(AuditEvent).order_by(AuditEvent.id)
            if request_id is not None:
                query = query.where(AuditEvent.request_id == request_id)
            return list(session.scalars(query))

    def audit_events(self, request_id: Any = None) -> list[str]:
        return [e.event for e in self.audit(request_id)]

    # -- what people do --------------------------------------------------------------------

    def request_access(
        self,
        user: str = REQUESTER,
        *,
        resource: str = "orders-db",
        duration: timedelta = timedelta(minutes=15),
        justification: str = "INC-1234: checking stuck orders",
    ) -> tuple[AccessRequest, Call]:
        """Submit the modal; wait until the approvers' post exists. Returns the row and the post."""
        before = len(self.requests())
        response = self.sender.submit_request(
            user,
            resource=resource,
            justification=justification,
            duration_seconds=int(duration.total_seconds()),
        )
        assert response.status_code == 200, response.text
        assert response.content == b"", response.text  # a plain ack closes the modal
        request = wait_until(
            lambda: len(self.requests()) > before and self.requests()[-1].approvers_message_ts,
            what="the request to be stored and posted",
        )
        stored = self.requests()[-1]
        assert request
        post = self.slack.wait_for(
            "chat.postMessage",
            channel=stored.approvers_channel,
            where=lambda c: str(stored.id) in c.text(),
        )[0]
        return stored, post

    def click(self, user: str, action_id: str, request: AccessRequest) -> Any:
        response = self.sender.click(
            user,
            action_id,
            str(request.id),
            channel_id=request.approvers_channel,
            message_ts=request.approvers_message_ts,
        )
        assert response.status_code == 200, response.text
        return response

    def grant_of(self, request: AccessRequest) -> Grant | None:
        return next((g for g in self.grants() if g.request_id == request.id), None)


def start_bot(
    *,
    database_url: str,
    slack: FakeSlack,
    webhook: WebhookReceiver,
    workflows: list[Workflow] | None = None,
    socket: FakeSocketMode | None = None,
    **settings: Any,
) -> Bot:
    """Over HTTP; or, given `socket`, in Socket Mode (Slack's side is `socket`, and the HTTP
    server answers only health and metrics)."""
    if socket is not None:
        slack.socket_mode_url = lambda: socket.url
        settings = {"slack_app_token": APP_TOKEN, **settings}
    config = Settings(
        slack_bot_token=BOT_TOKEN,
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=slack.api_url,
        database_url=database_url,
        **{"sweep_interval_seconds": 30.0, **settings},
    )
    registry = Registry(workflows or default_workflows(webhook.url))
    runtime = build_runtime(config, database_url=database_url, registry=registry)
    runtime.start()
    handler = None
    if socket is not None:
        handler = connect_socket_mode(
            runtime.bolt, APP_TOKEN, ping_interval=config.socket_mode_ping_seconds
        )
    server = make_server(
        AccessbotWsgi(
            slack=None
            if socket is not None
            else SlackHttp(
                runtime.bolt, signing_secret=SIGNING_SECRET, max_body=config.max_body_bytes
            ),
            engine=runtime.engine,
            traffic=runtime.after_ack.traffic,
            readiness=runtime.readiness,
            metrics=runtime.metrics.render,
        ),
        host="127.0.0.1",
        port=0,
        max_body=config.max_body_bytes,
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.port}"
    return Bot(
        runtime=runtime,
        slack=slack,
        webhook=webhook,
        sender=SocketModeSender(socket) if socket is not None else SlackSender(url),
        url=url,
        sessions=make_session_factory(make_engine(database_url, pool_size=2)),
        _server=server,
        _thread=thread,
        socket_mode=handler,
    )


def insert_active_grant(
    sessions: sessionmaker[Session],
    *,
    expires_in: timedelta,
    requester: str = REQUESTER,
    resource: str = "orders-db",
) -> Grant:
    """A request approved and granted earlier, as a previous process would have left it."""
    import uuid

    from app.core.models import GrantState, RequestState
    from app.core.ports import utcnow

    now = utcnow()
    with sessions.begin() as session:
        request = AccessRequest(
            id=uuid.uuid4(),
            workflow="production",
            resource_id=resource,
            requester_slack_id=requester,
            requester_email="alice@example.com",
            justification="earlier",
            duration=timedelta(minutes=15),
            state=RequestState.APPROVED,
            decided_by=APPROVER,
            decided_at=now - timedelta(minutes=20),
            approvers_channel=APPROVERS_CHANNEL,
            approvers_message_ts="1690000000.000100",
        )
        grant = Grant(
            id=uuid.uuid4(),
            request=request,
            state=GrantState.ACTIVE,
            granted_at=now - timedelta(minutes=15),
            expires_at=now + expires_in,
            due_at=now + expires_in,  # the workers' queue: revoke at expiry
        )
        session.add_all([request, grant])
    return grant
