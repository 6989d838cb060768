"""The HTTP face: Bolt at POST /slack/events, a health check at GET /healthz, served by waitress."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from typing import Any

from slack_bolt.adapter.wsgi import SlackRequestHandler
from sqlalchemy import Engine
from waitress.server import create_server

from app.db.session import database_is_reachable

log = logging.getLogger(__name__)

StartResponse = Callable[..., Any]


class AccessbotWsgi:
    def __init__(self, *, slack: SlackRequestHandler | None, engine: Engine) -> None:
        self.slack = slack
        self.engine = engine

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz" and environ.get("REQUEST_METHOD") in ("GET", "HEAD"):
            if database_is_reachable(self.engine):
                return _plain(start_response, "200 OK", b"ok\n")
            return _plain(start_response, "503 Service Unavailable", b"database unreachable\n")
        if self.slack is not None and path == "/slack/events":
            return self.slack(environ, start_response)
        return _plain(start_response, "404 Not Found", b"not found\n")


def _plain(start_response: StartResponse, status: str, body: bytes) -> list[bytes]:
    start_response(
        status, [("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", str(len(body)))]
    )
    return [body]


def make_server(app: AccessbotWsgi, *, host: str, port: int, threads: int = 8) -> Any:
    """A waitress server; `.run()` serves until `.close()`, `.effective_port` is the real port."""
    return create_server(app, host=host, port=port, threads=threads, ident="accessbot")
