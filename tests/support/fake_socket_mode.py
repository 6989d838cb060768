"""Slack's Socket Mode end on 127.0.0.1: a WebSocket server (RFC 6455, written from the RFC:
handshake, framing, masking, ping/pong, close) speaking Slack's protocol: `hello` on connect,
envelopes `{"envelope_id", "type", "payload", "accepts_response_payload"}`, acks
`{"envelope_id", "payload"?}` from the app, and `{"type": "disconnect", "reason": ...}`.

`apps.connections.open` (served by FakeSlack) hands out `url`; each connection is one ticket.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import struct
import threading
import time
import uuid
from typing import Any
from urllib.parse import parse_qs

import httpx

from tests.support.slack_requests import SlackSender

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"  # RFC 6455, section 1.3
TEXT, CLOSE, PING, PONG = 0x1, 0x8, 0x9, 0xA


class _Connection:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.send_lock = threading.Lock()
        self.closed = threading.Event()

    def send(self, opcode: int, payload: bytes) -> None:
        """A server frame: FIN set, never masked (section 5.1)."""
        header = bytes([0x80 | opcode])
        length = len(payload)
        if length < 126:
            header += bytes([length])
        elif length < 1 << 16:
            header += bytes([126]) + struct.pack("!H", length)
        else:
            header += bytes([127]) + struct.pack("!Q", length)
        with self.send_lock:
            self.sock.sendall(header + payload)

    def send_json(self, message: dict[str, Any]) -> None:
        self.send(TEXT, json.dumps(message).encode())

    def read_exactly(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.sock.recv(n - len(data))
            if not chunk:
                raise ConnectionError("closed")
            data += chunk
        return data

    def read_frame(self) -> tuple[int, bytes]:
        """One whole message (fragments joined). Client frames must be masked (section 5.3)."""
        message = b""
        first_opcode = None
        while True:
            b0, b1 = self.read_exactly(2)
            fin, opcode = b0 & 0x80, b0 & 0x0F
            assert b1 & 0x80, "a client frame must be masked"
            length = b1 & 0x7F
            if length == 126:
                (length,) = struct.unpack("!H", self.read_exactly(2))
            elif length == 127:
                (length,) = struct.unpack("!Q", self.read_exactly(8))
            mask = self.read_exactly(4)
            data = bytes(b ^ mask[i % 4] for i, b in enumerate(self.read_exactly(length)))
            if opcode >= 0x8:  # control frames are never fragmented
                return opcode, data
            first_opcode = first_opcode if first_opcode is not None else opcode
            message += data
            if fin:
                return first_opcode, message

    def close(self) -> None:
        self.closed.set()
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


class FakeSocketMode:
    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self.connections: list[_Connection] = []
        self.acks: dict[str, dict[str, Any]] = {}
        self.pings = 0
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/link/?ticket={uuid.uuid4()}&app_id=A0APP"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._listener.close()
        for connection in list(self.connections):
            connection.close()

    # -- what Slack does --------------------------------------------------------------------

    def current(self, timeout: float = 10) -> _Connection:
        """The newest open connection (the one Slack would deliver to)."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                open_ = [c for c in self.connections if not c.closed.is_set()]
                if open_:
                    return open_[-1]
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("no Socket Mode connection is open")
                self._changed.wait(left)

    def deliver(self, kind: str, payload: dict[str, Any], timeout: float = 10) -> dict[str, Any]:
        """Send an envelope and wait for its ack, as Slack does (it expects one within 3 s)."""
        envelope_id = str(uuid.uuid4())
        self.current(timeout).send_json(
            {
                "envelope_id": envelope_id,
                "type": kind,
                "payload": payload,
                "accepts_response_payload": kind != "events_api",
                "retry_attempt": 0,
                "retry_reason": "",
            }
        )
        deadline = time.monotonic() + timeout
        with self._changed:
            while envelope_id not in self.acks:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"envelope {envelope_id} ({kind}) was never acked")
                self._changed.wait(left)
            return self.acks[envelope_id]

    def ask_to_reconnect(self) -> None:
        """What Slack sends before it rotates a connection."""
        self.current().send_json(
            {"type": "disconnect", "reason": "refresh_requested", "debug_info": {"host": "fake"}}
        )

    def drop(self) -> None:
        """The connection dies without a word (a network blip): no close frame, and it no
        longer answers pings."""
        self.current().close()

    def close_current(self, code: int = 1001) -> None:
        """Slack closes the connection (a close frame, 1001: going away), then the socket."""
        connection = self.current()
        with contextlib.suppress(OSError):
            connection.send(CLOSE, struct.pack("!H", code) + b"going away")
        connection.close()

    def wait_for_connections(self, count: int, timeout: float = 30) -> None:
        """Until the `count`th connection is the only one open."""
        deadline = time.monotonic() + timeout
        with self._changed:
            # ... and the client has let the old ones go (it swaps connections in a moment)
            while (
                len(self.connections) < count
                or self.connections[-1].closed.is_set()
                or any(not c.closed.is_set() for c in self.connections[:-1])
            ):
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"expected {count} connections, saw {len(self.connections)}"
                    )
                self._changed.wait(left)

    # -- the server -------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(sock,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        connection = _Connection(sock)
        try:
            self._handshake(connection)
            with self._changed:
                self.connections.append(connection)
                self._changed.notify_all()
            connection.send_json(
                {
                    "type": "hello",
                    "num_connections": 1,
                    "debug_info": {"host": "fake", "approximate_connection_time": 18060},
                    "connection_info": {"app_id": "A0APP"},
                }
            )
            while not connection.closed.is_set():
                opcode, data = connection.read_frame()
                if opcode == PING:
                    with self._lock:
                        self.pings += 1
                    connection.send(PONG, data)
                elif opcode == CLOSE:
                    connection.send(CLOSE, data[:2])
                    break
                elif opcode == TEXT:
                    ack = json.loads(data)
                    with self._changed:
                        self.acks[ack["envelope_id"]] = ack
                        self._changed.notify_all()
        except (ConnectionError, OSError, ValueError):
            pass
        finally:
            connection.close()
            with self._changed:
                self._changed.notify_all()

    def _handshake(self, connection: _Connection) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            chunk = connection.sock.recv(4096)
            if not chunk:
                raise ConnectionError("closed during the handshake")
            request += chunk
        lines = request.decode("latin-1").split("\r\n")
        assert lines[0].startswith("GET /link/"), lines[0]
        headers = {
            name.strip().lower(): value.strip()
            for name, _, value in (line.partition(":") for line in lines[1:] if line)
        }
        assert headers.get("upgrade", "").lower() == "websocket", headers
        accept = base64.b64encode(
            hashlib.sha1((headers["sec-websocket-key"] + GUID).encode()).digest()
        ).decode()
        connection.sock.sendall(
            (
                "HTTP/1.1 101 Switching Protocols\r\n"
                "Upgrade: websocket\r\n"
                "Connection: Upgrade\r\n"
                f"Sec-WebSocket-Accept: {accept}\r\n\r\n"
            ).encode()
        )


class SocketModeSender(SlackSender):
    """The same people's actions as SlackSender, delivered as Socket Mode envelopes instead
    of signed HTTP requests. Answers like an HTTP ack would: 200, and the ack's payload."""

    def __init__(self, socket: FakeSocketMode) -> None:
        super().__init__("http://unused.invalid")
        self.socket = socket
        self.ack_seconds: list[float] = []

    def post(
        self,
        body: str,
        *,
        content_type: str = "application/x-www-form-urlencoded",
        timestamp: int | None = None,
        secret: str | None = None,
    ) -> httpx.Response:
        if "json" in content_type:
            kind, payload = "events_api", json.loads(body)
        else:
            fields = {k: v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}
            if "payload" in fields:
                kind, payload = "interactive", json.loads(fields["payload"])
            else:
                kind, payload = "slash_commands", fields
        started = time.monotonic()
        ack = self.socket.deliver(kind, payload)
        self.ack_seconds.append(time.monotonic() - started)
        answer = ack.get("payload")
        return httpx.Response(200, content=json.dumps(answer).encode() if answer else b"")
