"""The HTTP face: Bolt at POST /slack/events, GET /healthz, /readyz and /metrics, by waitress."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import Engine
from waitress.channel import HTTPChannel
from waitress.server import create_server
from waitress.task import ErrorTask

from app.db.session import database_is_reachable
from app.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from app.readiness import Readiness
from app.slack.after_ack import AckTraffic
from app.slack.http import DEFAULT_MAX_BODY

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]
WsgiApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class AccessbotWsgi:
    """`/slack/events` (Bolt), `/healthz` (the process answers, the database too), `/readyz`
    (ready for traffic: `readiness` says why not), `/metrics` (Prometheus text)."""

    def __init__(
        self,
        *,
        slack: WsgiApp | None,
        engine: Engine,
        traffic: AckTraffic | None = None,
        readiness: Readiness | None = None,
        metrics: Callable[[], bytes] | None = None,
    ) -> None:
        self.slack = slack
        self.engine = engine
        self.traffic = traffic  # after-ack work yields to the requests counted here
        self.readiness = readiness
        self.metrics = metrics

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        reading = environ.get("REQUEST_METHOD") in ("GET", "HEAD")
        if path == "/healthz" and reading:
            if database_is_reachable(self.engine):
                return _plain(start_response, "200 OK", b"ok\n")
            return _plain(start_response, "503 Service Unavailable", b"database unreachable\n")
        if path == "/readyz" and reading and self.readiness is not None:
            problem = self.readiness.problem()
            if problem is None:
                return _plain(start_response, "200 OK", b"ready\n")
            return _plain(start_response, "503 Service Unavailable", f"{problem}\n".encode())
        if path == "/metrics" and reading and self.metrics is not None:
            return _plain(start_response, "200 OK", self.metrics(), METRICS_CONTENT_TYPE)
        if self.slack is not None and path == "/slack/events":
            if self.readiness is not None and self.readiness.draining.is_set():
                # Shutting down: Slack retries elsewhere; nothing of this request is started.
                return _plain(start_response, "503 Service Unavailable", b"shutting down\n")
            if self.traffic is None:
                return self.slack(environ, start_response)
            with self.traffic.answering():
                return self.slack(environ, start_response)
        return _plain(start_response, "404 Not Found", b"not found\n")


def _plain(
    start_response: StartResponse,
    status: str,
    body: bytes,
    content_type: str = "text/plain; charset=utf-8",
) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


class _LoggedErrorTask(ErrorTask):
    """waitress's own refusals (a body over the limit, a malformed request): one log line."""

    def execute(self) -> None:
        log.warning(
            "refused a request from %s: %s",
            self.channel.addr[0] if self.channel.addr else "?",
            type(self.request.error).__name__,
        )
        super().execute()


class _Channel(HTTPChannel):
    error_task_class = _LoggedErrorTask


class HttpServer:
    """waitress, with a stop() that is safe from another thread (tests, signal handlers).

    Bodies over `max_body` bytes are refused with 413 from their Content-Length (or, chunked,
    as soon as they grow past it), before they are read into memory."""

    def __init__(
        self, app: AccessbotWsgi, *, host: str, port: int, threads: int, max_body: int
    ) -> None:
        self._server = create_server(
            app,
            host=host,
            port=port,
            threads=threads,
            ident="accessbot",
            max_request_body_size=max_body + 1,  # waitress refuses at >=
        )
        self._server.channel_class = _Channel
        self._stopping = threading.Event()
        self._closing = threading.Lock()  # stop() must not pull a trigger that run() closed

    @property
    def port(self) -> int:
        return int(self._server.effective_port)

    def run(self) -> None:
        """Serve until stop() (or an exception in this thread, such as SystemExit)."""
        channels = self._server._map
        try:
            while not self._stopping.is_set():
                self._server.asyncore.loop(timeout=0.5, map=channels, count=1)
        finally:
            with self._closing:
                self._stopping.set()
                for channel in list(channels.values()):  # listener, trigger, connections
                    channel.close()
            self._server.task_dispatcher.shutdown()

    def stop(self) -> None:
        with self._closing:
            if self._stopping.is_set():
                return
            self._stopping.set()
            self._server.trigger.pull_trigger()  # wake the loop so it sees the flag


def make_server(
    app: AccessbotWsgi,
    *,
    host: str,
    port: int,
    threads: int = 8,
    max_body: int = DEFAULT_MAX_BODY,
) -> HttpServer:
    return HttpServer(app, host=host, port=port, threads=threads, max_body=max_body)
