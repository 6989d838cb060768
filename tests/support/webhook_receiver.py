"""A grant target that receives accessbot's webhooks, checks their signatures, and can misbehave.

The signature check is written from the README, not imported from the app, so a signature scheme
that drifted from the documented one fails the suite:

    X-Accessbot-Timestamp: <unix seconds>
    X-Accessbot-Signature: v1=<hex HMAC-SHA256(secret, "{timestamp}.{raw body}")>

and a timestamp more than five minutes away from now is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import deque
from typing import Any

from tests.support.http_fake import Answer, FakeServer, json_answer

TIMESTAMP_HEADER = "X-Accessbot-Timestamp"
SIGNATURE_HEADER = "X-Accessbot-Signature"
MAX_AGE_SECONDS = 300


def valid_signature(
    secret: str, timestamp: str, body: bytes, signature: str, *, now: float | None = None
) -> bool:
    """Does `signature` sign `body` at `timestamp` as the README says, and is it fresh?"""
    if not (timestamp.isascii() and timestamp.isdigit()):
        return False
    now = time.time() if now is None else now
    if abs(now - int(timestamp)) > MAX_AGE_SECONDS:
        return False
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return hmac.compare_digest(signature.encode(), b"v1=" + mac.hexdigest().encode())


class WebhookReceiver(FakeServer):
    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret
        self.events: list[dict[str, Any]] = []  # accepted, in arrival order
        self.attempts: list[dict[str, Any]] = []  # every correctly signed delivery
        self.received_at: list[tuple[float, dict[str, Any]]] = []  # (time.time(), event) of each
        self.unsigned = 0
        self.latency = 0.0  # seconds every delivery takes
        self.failure_body: bytes | None = None  # what a failing answer says, if not JSON
        self._script: deque[tuple[int, float]] = deque()
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return self.base_url + "/access"

    def fail_next(self, times: int, status: int = 500) -> None:
        self._script.extend([(status, 0.0)] * times)

    def hang_next(self, times: int, seconds: float) -> None:
        self._script.extend([(200, seconds)] * times)

    def events_of(self, kind: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e["event"] == kind]

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        arrived = time.time()
        lowered = {k.lower(): v for k, v in headers.items()}
        timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
        signature = lowered.get(SIGNATURE_HEADER.lower(), "")
        if not valid_signature(self.secret, timestamp, body, signature, now=arrived):
            with self._lock:
                self.unsigned += 1
            return json_answer({"error": "bad signature"}, 401)
        event = json.loads(body)  # extra fields (event_id, ...) are kept as they come
        with self._lock:
            self.attempts.append(event)
            self.received_at.append((arrived, event))
            status, delay = self._script.popleft() if self._script else (200, 0.0)
        if delay or self.latency:
            time.sleep(delay or self.latency)
        if 200 <= status < 300 and not delay:  # a hung delivery's caller has given up on it
            with self._lock:
                self.events.append(event)
        if self.failure_body is not None and not 200 <= status < 300:
            return status, {"Content-Type": "text/plain"}, self.failure_body
        return json_answer({"status": status}, status)
