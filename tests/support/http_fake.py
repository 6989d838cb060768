"""A tiny threaded HTTP server on 127.0.0.1 for fakes; subclasses answer requests."""

from __future__ import annotations

import contextlib
import json
import ssl
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

Answer = tuple[int, dict[str, str], bytes]


class _Server(ThreadingHTTPServer):
    # socketserver's default listen backlog is 5: a burst of parallel calls (the bot's worker
    # pool) would see dropped SYNs and one-second retransmits that no real server causes.
    request_queue_size = 256

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.connections_opened = 0  # connections accepted
        self.connections_ended = 0  # connections the client closed (or that broke)
        self._count_lock = threading.Lock()

    def verify_request(self, request: Any, client_address: Any) -> bool:
        with self._count_lock:
            self.connections_opened += 1
        return True

    def connection_ended(self) -> None:
        with self._count_lock:
            self.connections_ended += 1

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gave up (the bot's deadline passed while a fake hung), or refused an
        # HTTPS fake's certificate (what a TLS test checks), is no error.
        if isinstance(sys.exc_info()[1], ConnectionError | ssl.SSLError):
            return
        super().handle_error(request, client_address)


class FakeServer:
    """Start with `start()`, stop with `stop()`; `handle` returns (status, headers, body)."""

    scheme = "http"

    def __init__(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # no delayed-ACK stalls on keep-alive connections

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                try:
                    status, headers, payload = owner.handle(
                        self.command, self.path, dict(self.headers.items()), body
                    )
                except BrokenPipeError:
                    return
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(payload)

            do_GET = do_POST = do_PUT = do_DELETE = _serve

            def handle(self) -> None:  # one connection, request after request
                try:
                    super().handle()
                finally:
                    owner.httpd.connection_ended()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.httpd = _Server(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        # stop() waits for the serving loop to notice, up to one poll interval (0.5 s by default)
        self._thread = threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self.wrap_socket: Callable[[Any], Any] | None = None

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        raise NotImplementedError  # each fake answers in its own way


def json_answer(payload: Any, status: int = 200, **headers: str) -> Answer:
    """A JSON answer; pass dashed header names unpacked: `**{"Retry-After": "1"}`."""
    return status, {"Content-Type": "application/json", **headers}, json.dumps(payload).encode()


def parse_body(path: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """Arguments of a Web API call, whether sent as JSON, a form, or a query string."""
    args: dict[str, Any] = {k: v[0] for k, v in parse_qs(urlsplit(path).query).items()}
    content_type = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    if body and "json" in content_type:
        args.update(json.loads(body))
    elif body:
        args.update({k: v[0] for k, v in parse_qs(body.decode()).items()})
    return args
