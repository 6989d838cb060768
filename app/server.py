"""The HTTP face: Bolt at POST /slack/events, a health check at GET /healthz, served by waitress."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt.adapter.wsgi import SlackRequestHandler
from sqlalchemy import Engine
from waitress.server import create_server

from app.db.session import database_is_reachable
from app.slack.after_ack import AckTraffic

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]


class AccessbotWsgi:
    def __init__(
        self,
        *,
        slack: SlackRequestHandler | None,
        engine: Engine,
        traffic: AckTraffic | None = None,
    ) -> None:
        self.slack = slack
        self.engine = engine
        self.traffic = traffic  # after-ack work yields to the requests counted here

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz" and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            if database_is_reachable(self.engine):
                return _plain(start_response, "200 OK", b"ok\n")
            return _plain(start_response, "503 Service Unavailable", b"database unreachable\n")
        if self.slack is not None and path == "/slack/events":
            if self.traffic is None:
                return self.slack(environ, start_response)
            with self.traffic.answering():
                return self.slack(environ, start_response)
        return _plain(start_response, "404 Not Found", b"not found\n")


def _plain(start_response: StartResponse, status: str, body: bytes) -> list[bytes]:
    start_response(
        status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    )
    return [body]


class HttpServer:
    """waitress, with a stop() that is safe from another thread (tests, signal handlers)."""

    def __init__(self, app: AccessbotWsgi, *, host: str, port: int, threads: int) -> None:
        self._server = create_server(app, host=host, port=port, threads=threads, ident="accessbot")
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


def make_server(app: AccessbotWsgi, *, host: str, port: int, threads: int = 8) -> HttpServer:
    return HttpServer(app, host=host, port=port, threads=threads)
