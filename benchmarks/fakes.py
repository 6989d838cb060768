"""Lean fakes for the benchmarks: a grant webhook target and the Slack Web API.

Each fake is one asyncio HTTP/1.1 server (keep-alive, TCP_NODELAY) in a process of its own, so
that hundreds of concurrent requests cost no threads and the fakes never share a GIL with the
harness. Latency is a timer (`loop.call_later`): a fake holds a request without holding a CPU.

    python -m benchmarks.fakes webhook --secret S --latency 0.1
    python -m benchmarks.fakes slack --token xoxb-... --latency 0.08

The process prints `PORT <n>` on its first line, then serves until SIGTERM or until its standard
input closes (the harness died). The harness drives and reads it over HTTP at `/_bench/...`:

- `GET /_bench/stats`   counters (accepted, refused, in flight, ...), cheap enough to poll
- `GET /_bench/records` what was accepted: `[[arrival time.time(), record], ...]`
- `POST /_bench/config` change behaviour (`latency`, `hang_resources`, `rate_limit_every`, ...)
- `POST /_bench/reset`  forget the records and counters

The webhook target checks signatures with its own implementation of the README's scheme
(never the app's): `X-Accessbot-Signature: v1=<hex HMAC-SHA256(secret, "{timestamp}.{body}")>`
over `X-Accessbot-Timestamp`, refusing timestamps more than five minutes from now.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import hmac
import http.client
import itertools
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

REPO = Path(__file__).resolve().parents[1]
CONTROL_PREFIX = "/_bench/"
MAX_SIGNATURE_AGE = 300

Headers = dict[str, str]
Response = tuple[int, Headers, bytes]


def json_response(payload: Any, status: int = 200, headers: Headers | None = None) -> Response:
    body = json.dumps(payload, separators=(",", ":")).encode()
    return status, {"Content-Type": "application/json", **(headers or {})}, body


REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}
REASONS |= {429: "Too Many Requests", 500: "Internal Server Error"}


# -- the server ------------------------------------------------------------------------------


class HangUp(Exception):
    """Raised by a handler to never answer: the connection is held until the client leaves."""


@dataclass(frozen=True)
class Later:
    """A handler's answer after `delay` seconds (the fake's latency): `answer()` is called
    then, and what it returns is sent."""

    delay: float
    answer: Callable[[], Response]


MAX_HEAD = 1 << 16
MAX_BODY = 1 << 20


class LeanHttpServer:
    """A minimal HTTP/1.1 server: requests answered in order on each keep-alive connection.

    Handlers are plain functions, not coroutines: one answers at once, or returns `Later` and
    the answer goes out from a timer (`loop.call_later`), so that a request costs no task, no
    stream reader and no coroutine; the fakes take a third less CPU than with asyncio streams
    (they share the machine with the bots they measure)."""

    def __init__(self) -> None:
        self.inflight = 0
        self.max_inflight = 0
        self.hung_open = 0
        self.connections = 0

    def handle(
        self, method: str, target: str, headers: Headers, body: bytes
    ) -> Response | Later:  # pragma: no cover - overridden
        raise NotImplementedError

    def control(self, method: str, path: str, body: bytes) -> Response:
        raise NotImplementedError

    def server_stats(self) -> dict[str, int]:
        return {
            "inflight": self.inflight,
            "max_inflight": self.max_inflight,
            "hung_open": self.hung_open,
            "connections": self.connections,
        }


class _Connection(asyncio.Protocol):
    """One client connection of a LeanHttpServer."""

    def __init__(self, server: LeanHttpServer) -> None:
        self.server = server
        self.buffer = bytearray()
        self.transport: asyncio.Transport | None = None
        self.answering = False  # a request's answer is due: the next ones wait for it
        self.hung = False  # held unanswered (and in flight) until the client leaves
        self.eof = False  # the client has sent all it will (it may still read the answer)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.connections += 1

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections -= 1
        if self.hung:
            self.hung = False
            self.server.hung_open -= 1
            self.server.inflight -= 1

    def eof_received(self) -> bool:
        """A client that half-closes after its request still gets the answer."""
        self.eof = True
        return self.answering  # True keeps the transport open to write it

    def data_received(self, data: bytes) -> None:
        if self.hung:
            return  # held until the client gives up
        self.buffer += data
        if not self.answering:
            self._next()

    def _next(self) -> None:
        """Answer the buffered requests, in order, until one's answer must wait."""
        while not self.answering and self.transport and not self.transport.is_closing():
            request = _parse(self.buffer)
            if request is None:
                if len(self.buffer) > MAX_HEAD + MAX_BODY:
                    self.transport.close()
                return
            if request is _MALFORMED:
                self.transport.close()
                return
            method, target, version, headers, body = request
            keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
            if target.startswith(CONTROL_PREFIX):
                path = urlsplit(target).path[len(CONTROL_PREFIX) :]
                self._send(self.server.control(method, path, body), keep_alive)
                continue
            server = self.server
            server.inflight += 1
            server.max_inflight = max(server.max_inflight, server.inflight)
            try:
                outcome = server.handle(method, target, headers, body)
            except HangUp:  # in flight until the client leaves: what a hung target holds
                server.hung_open += 1
                self.hung = True
                self.buffer.clear()
                return
            except BaseException:
                server.inflight -= 1
                raise
            if isinstance(outcome, Later):
                self.answering = True
                asyncio.get_running_loop().call_later(
                    outcome.delay, self._answer_later, outcome.answer, keep_alive
                )
                return
            server.inflight -= 1
            self._send(outcome, keep_alive)

    def _answer_later(self, answer: Callable[[], Response], keep_alive: bool) -> None:
        self.server.inflight -= 1
        self.answering = False
        try:
            response = answer()  # even if the client has left: what it records is what happened
        except Exception:
            if self.transport is not None:
                self.transport.close()  # as a server that failed: the client sees it at once
            raise
        self._send(response, keep_alive and not self.eof)
        if self.eof and self.transport is not None:
            self.transport.close()
            return
        self._next()

    def _send(self, response: Response, keep_alive: bool) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        status, extra, payload = response
        out = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"]
        out.append(f"Content-Length: {len(payload)}")
        out += [f"{name}: {value}" for name, value in extra.items()]
        if not keep_alive:
            out.append("Connection: close")
        transport.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + payload)
        if not keep_alive:
            transport.close()


_MALFORMED = object()
Request = tuple[str, str, str, Headers, bytes]


def _parse(buffer: bytearray) -> Request | object | None:
    """The first complete request in `buffer`, taken out of it; None while it is incomplete;
    `_MALFORMED` for what is not HTTP/1.1."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return _MALFORMED if len(buffer) > MAX_HEAD else None
    lines = buffer[:end].decode("latin-1").split("\r\n")
    try:
        method, target, version = lines[0].split(" ", 2)
    except ValueError:
        return _MALFORMED
    headers: Headers = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    start = end + 4
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunked = _parse_chunked(buffer, start)
        if chunked is None or chunked is _MALFORMED:
            return chunked
        body, stop = chunked  # type: ignore[misc]
    else:
        try:
            length = int(headers.get("content-length") or 0)
        except ValueError:
            return _MALFORMED
        if length < 0 or length > MAX_BODY:
            return _MALFORMED
        if len(buffer) < start + length:
            return None
        body, stop = bytes(buffer[start : start + length]), start + length
    del buffer[:stop]
    return method, target, version, headers, body


def _parse_chunked(buffer: bytearray, start: int) -> tuple[bytes, int] | object | None:
    parts = []
    at = start
    while True:
        line_end = buffer.find(b"\r\n", at)
        if line_end < 0:
            return None
        try:
            size = int(bytes(buffer[at:line_end]).split(b";")[0].strip(), 16)
        except ValueError:
            return _MALFORMED
        at = line_end + 2
        if size == 0:
            while True:  # trailers, up to the empty line
                line_end = buffer.find(b"\r\n", at)
                if line_end < 0:
                    return None
                empty = line_end == at
                at = line_end + 2
                if empty:
                    return b"".join(parts), at
        if len(buffer) < at + size + 2:
            return None
        parts.append(bytes(buffer[at : at + size]))
        at += size + 2


# -- the webhook target ----------------------------------------------------------------------


def signature_is_valid(secret: str, timestamp: str, body: bytes, signature: str) -> bool:
    """The README's scheme, written here from its description."""
    if not (timestamp.isascii() and timestamp.isdigit()):
        return False
    if abs(time.time() - int(timestamp)) > MAX_SIGNATURE_AGE:
        return False
    expected = (
        "v1="
        + hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    )
    return hmac.compare_digest(expected.encode(), signature.encode())


class WebhookTargetServer(LeanHttpServer):
    def __init__(self, secret: str, latency: float) -> None:
        super().__init__()
        self.secret = secret
        self.latency = latency
        self.hang_resources: set[str] = set()
        self.records: list[tuple[float, dict[str, Any]]] = []
        self.counts: Counter[str] = Counter()

    def handle(self, method: str, target: str, headers: Headers, body: bytes) -> Response | Later:
        arrived = time.time()
        if method != "POST":
            return json_response({"error": "POST only"}, 400)
        if not signature_is_valid(
            self.secret,
            headers.get("x-accessbot-timestamp", ""),
            body,
            headers.get("x-accessbot-signature", ""),
        ):
            self.counts["unsigned"] += 1
            return json_response({"error": "bad signature"}, 401)
        try:
            event = json.loads(body)
        except ValueError:
            self.counts["malformed"] += 1
            return json_response({"error": "not json"}, 400)
        if event.get("resource") in self.hang_resources:
            self.counts["hung"] += 1
            raise HangUp

        def accept() -> Response:
            self.records.append((arrived, event))
            self.counts["accepted"] += 1
            self.counts[f"accepted_{event.get('event')}"] += 1
            return json_response({"ok": True})

        return Later(self.latency, accept) if self.latency else accept()

    def control(self, method: str, path: str, body: bytes) -> Response:
        if path == "stats":
            return json_response({**self.counts, **self.server_stats()})
        if path == "records":
            return json_response(self.records)
        if path == "config":
            config = json.loads(body or b"{}")
            if "latency" in config:
                self.latency = float(config["latency"])
            if "hang_resources" in config:
                self.hang_resources = set(config["hang_resources"])
            return json_response({"ok": True})
        if path == "reset":
            self.records.clear()
            self.counts.clear()
            self.max_inflight = self.inflight
            return json_response({"ok": True})
        return json_response({"error": "unknown control"}, 404)


# -- the Slack Web API -----------------------------------------------------------------------

SLACK_METHODS = frozenset(
    {
        "auth.test",
        "chat.postMessage",
        "chat.update",
        "chat.postEphemeral",
        "chat.delete",
        "views.open",
        "views.update",
        "views.publish",
        "views.push",
        "users.info",
        "users.lookupByEmail",
        "conversations.members",
        "conversations.info",
        "usergroups.users.list",
    }
)
DEFAULT_MEMBERS = ["UAPPROVER1", "UAPPROVER2"]


def fake_user(user_id: str) -> dict[str, Any]:
    """Any user id exists: its email is derived from the id."""
    name = user_id.lower()
    return {
        "id": user_id,
        "name": name,
        "real_name": f"User {user_id}",
        "tz": "UTC",
        "deleted": False,
        "is_bot": False,
        "profile": {
            "real_name": f"User {user_id}",
            "display_name": name,
            "email": f"{name}@example.com",
        },
    }


class SlackServer(LeanHttpServer):
    def __init__(self, token: str, latency: float) -> None:
        super().__init__()
        self.token = token
        self.latency = latency
        self.rate_limit_every = 0  # 0: never; N: every Nth call answers 429
        self.retry_after = 1
        self.seen = 0  # calls counted for rate limiting (the limited ones included)
        self.records: list[tuple[float, dict[str, Any]]] = []
        self.counts: Counter[str] = Counter()
        self._ts = itertools.count(1)

    def handle(self, method: str, target: str, headers: Headers, body: bytes) -> Response | Later:
        arrived = time.time()
        if self.latency:
            return Later(self.latency, lambda: self.call(arrived, target, headers, body))
        return self.call(arrived, target, headers, body)

    def call(self, arrived: float, target: str, headers: Headers, body: bytes) -> Response:
        """A Web API call, answered after the latency."""
        url = urlsplit(target)
        api_method = url.path.removeprefix("/api/")
        if api_method not in SLACK_METHODS:
            self.counts[f"unknown:{api_method}"] += 1
            return json_response({"ok": False, "error": "unknown_method"})
        if headers.get("authorization") != f"Bearer {self.token}":
            self.counts["invalid_auth"] += 1
            return json_response({"ok": False, "error": "invalid_auth"})
        if self.rate_limit_every:
            self.seen += 1
            if self.seen % self.rate_limit_every == 0:
                self.counts[f"429:{api_method}"] += 1
                self.counts["429"] += 1
                return json_response(
                    {"ok": False, "error": "ratelimited"},
                    429,
                    {"Retry-After": str(self.retry_after)},
                )
        args = _args(url.query, headers, body)
        self.counts[api_method] += 1
        self.counts["accepted"] += 1
        answer = self.answer(api_method, args)
        record = _record(api_method, args)
        if api_method == "chat.postMessage":
            record["posted_ts"] = answer["ts"]
        self.records.append((arrived, record))
        return json_response(answer)

    def answer(self, method: str, args: dict[str, Any]) -> dict[str, Any]:
        if method == "auth.test":
            return {
                "ok": True,
                "url": "https://acme.slack.com/",
                "team": "Acme",
                "user": "accessbot",
                "team_id": "T0TEAM",
                "user_id": "UBOT",
                "bot_id": "BBOT",
            }
        if method == "chat.postMessage":
            channel = str(args.get("channel"))
            if channel[:1] in "UW":
                channel = "D" + channel[1:]
            ts = f"{1700000000 + next(self._ts)}.000100"
            return {
                "ok": True,
                "channel": channel,
                "ts": ts,
                "message": {"text": args.get("text"), "ts": ts},
            }
        if method in ("chat.update", "chat.delete"):
            return {"ok": True, "channel": args.get("channel"), "ts": args.get("ts")}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"{1700000000 + next(self._ts)}.000200"}
        if method.startswith("views."):
            view = args.get("view")
            view = json.loads(view) if isinstance(view, str) else (view or {})
            return {
                "ok": True,
                "view": {"id": args.get("view_id") or "V0VIEW", "hash": "h1", **view},
            }
        if method == "users.info":
            user = str(args.get("user") or "")
            if not user:
                return {"ok": False, "error": "user_not_found"}
            return {"ok": True, "user": fake_user(user)}
        if method == "users.lookupByEmail":
            local = str(args.get("email", "")).split("@")[0]
            return {"ok": True, "user": fake_user(local.upper())}
        if method == "conversations.members":
            return {
                "ok": True,
                "members": DEFAULT_MEMBERS,
                "response_metadata": {"next_cursor": ""},
            }
        if method == "usergroups.users.list":
            return {"ok": True, "users": DEFAULT_MEMBERS}
        if method == "conversations.info":
            channel = str(args.get("channel"))
            return {"ok": True, "channel": {"id": channel, "name": channel.lower()}}
        return {"ok": True}

    def control(self, method: str, path: str, body: bytes) -> Response:
        if path == "stats":
            return json_response({**self.counts, **self.server_stats()})
        if path == "records":
            return json_response(self.records)
        if path == "config":
            config = json.loads(body or b"{}")
            if "latency" in config:
                self.latency = float(config["latency"])
            if "rate_limit_every" in config:
                self.rate_limit_every = int(config["rate_limit_every"])
                self.seen = 0
            if "retry_after" in config:
                self.retry_after = int(config["retry_after"])
            return json_response({"ok": True})
        if path == "reset":
            self.records.clear()
            self.counts.clear()
            self.max_inflight = self.inflight
            return json_response({"ok": True})
        return json_response({"error": "unknown control"}, 404)


def _args(query: str, headers: Headers, body: bytes) -> dict[str, Any]:
    """A Web API call's arguments, sent as a query string, a form or JSON."""
    args: dict[str, Any] = dict(parse_qsl(query))
    if body:
        if "json" in headers.get("content-type", ""):
            args.update(json.loads(body))
        else:
            args.update(parse_qsl(body.decode()))
    return args


def _record(method: str, args: dict[str, Any]) -> dict[str, Any]:
    """What the benchmarks check, without the (large) blocks."""
    record: dict[str, Any] = {"method": method}
    for key in ("channel", "ts", "thread_ts", "text", "user", "user_id", "view_id", "trigger_id"):
        if args.get(key) is not None:
            record[key] = args[key]
    return record


# -- the process -----------------------------------------------------------------------------


async def _serve(server: LeanHttpServer, port: int) -> None:
    loop = asyncio.get_running_loop()
    listener = await loop.create_server(
        lambda: _Connection(server), "127.0.0.1", port, backlog=1024
    )
    print(f"PORT {listener.sockets[0].getsockname()[1]}", flush=True)
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    loop.add_reader(sys.stdin.fileno(), lambda: stop.set() if not os.read(0, 4096) else None)
    async with listener:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=["webhook", "slack"])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--secret", default="")
    parser.add_argument("--token", default="")
    args = parser.parse_args(argv)
    server: LeanHttpServer
    if args.kind == "webhook":
        server = WebhookTargetServer(args.secret, args.latency)
    else:
        server = SlackServer(args.token, args.latency)
    asyncio.run(_serve(server, args.port))


# -- the harness's side ----------------------------------------------------------------------


class FakeProcess:
    """A fake running in a process of its own; `control` talks to its /_bench/ endpoints."""

    def __init__(self, kind: str, *args: str) -> None:
        self.kind = kind
        self.process = subprocess.Popen(
            [sys.executable, "-m", "benchmarks.fakes", kind, *args],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.startswith("PORT "):
            self.process.kill()
            raise RuntimeError(f"the fake {kind} did not start: {line!r}")
        self.port = int(line.split()[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def control(self, path: str, payload: dict[str, Any] | None = None) -> Any:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            body = None if payload is None else json.dumps(payload).encode()
            connection.request(
                "GET" if payload is None else "POST",
                CONTROL_PREFIX + path,
                body=body,
                headers={"Content-Type": "application/json"},
            )
            response = connection.getresponse()
            data = response.read()
            if response.status != 200:
                raise RuntimeError(f"{self.kind} /_bench/{path}: {response.status} {data[:200]!r}")
            return json.loads(data)
        finally:
            connection.close()

    def stats(self) -> dict[str, int]:
        return dict(self.control("stats"))

    def records(self) -> list[tuple[float, dict[str, Any]]]:
        return [(float(t), record) for t, record in self.control("records")]

    def reset(self) -> None:
        self.control("reset", {})

    def cpu_seconds(self) -> float:
        return process_cpu_seconds(self.process.pid)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                stream.close()


class WebhookTarget(FakeProcess):
    def __init__(self, secret: str, *, latency: float = 0.1) -> None:
        super().__init__("webhook", "--secret", secret, "--latency", str(latency))

    @property
    def url(self) -> str:
        return self.base_url + "/access"

    def hang(self, *resources: str) -> None:
        """Never answer requests for these resources."""
        self.control("config", {"hang_resources": list(resources)})

    def events(self, kind: str | None = None) -> list[tuple[float, dict[str, Any]]]:
        return [(t, e) for t, e in self.records() if kind is None or e.get("event") == kind]


class SlackApi(FakeProcess):
    def __init__(self, token: str, *, latency: float = 0.08) -> None:
        super().__init__("slack", "--token", token, "--latency", str(latency))

    @property
    def api_url(self) -> str:
        return self.base_url + "/api/"

    def rate_limit(self, every: int, retry_after: int = 1) -> None:
        """Answer every `every`th call from now on with 429 and Retry-After (0: stop)."""
        self.control("config", {"rate_limit_every": every, "retry_after": retry_after})


def process_system_seconds(pid: int) -> float:
    """The kernel's share of a process's CPU time (system calls, lock wake-ups), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return int(fields[12]) / os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int, *, children: bool = False) -> float:
    """User + system CPU time of a process (its threads included), from /proc; with
    `children`, also that of the children it has waited for."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    used = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        used += int(fields[13]) + int(fields[14])  # cutime, cstime
    return used / ticks


if __name__ == "__main__":
    main()
