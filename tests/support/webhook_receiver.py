"""A grant target that receives accessbot's webhooks, checks their signatures, and can misbehave."""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from typing import Any

from app.grants.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign
from tests.support.http_fake import Answer, FakeServer, json_answer


class WebhookReceiver(FakeServer):
    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret
        self.events: list[dict[str, Any]] = []  # accepted, in arrival order
        self.attempts: list[dict[str, Any]] = []  # every correctly signed delivery
        self.unsigned = 0
        self.latency = 0.0  # seconds every delivery takes
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
        lowered = {k.lower(): v for k, v in headers.items()}
        timestamp = lowered.get(TIMESTAMP_HEADER.lower(), "")
        signature = lowered.get(SIGNATURE_HEADER.lower(), "")
        if (
            signature != sign(self.secret, timestamp, body)
            or abs(time.time() - int(timestamp or 0)) > 300
        ):
            self.unsigned += 1
            return json_answer({"error": "bad signature"}, 401)
        event = json.loads(body)
        with self._lock:
            self.attempts.append(event)
            status, delay = self._script.popleft() if self._script else (200, 0.0)
        if delay or self.latency:
            time.sleep(delay or self.latency)
        if 200 <= status < 300 and not delay:  # a hung delivery's caller has given up on it
            with self._lock:
                self.events.append(event)
        return json_answer({"status": status}, status)
