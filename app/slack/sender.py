"""Delivers the outbox to Slack: in order per conversation, paced to Slack's rate limits.

Slack publishes its limits per method: chat.postMessage about one message a second per
channel (short bursts allowed), chat.update Tier 3 (about 50 a minute). The pacer keeps within
them; when Slack still answers 429, its `Retry-After` pauses that method for every thread here.
Transient failures are retried with backoff for up to a day; errors that cannot succeed by
retrying (a channel that does not exist, malformed blocks) are logged and given up at once.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from app.core.outbox import Delivery, OutboxQueue
from app.core.views import RequestView
from app.slack import blocks
from app.slack.notifier import POST, POST_REQUEST, REFRESH, THREAD

log = logging.getLogger(__name__)

GIVE_UP_AFTER = timedelta(days=1)
MAX_BACKOFF = timedelta(minutes=5)
PERMANENT_ERRORS = frozenset(
    {
        "channel_not_found",
        "not_in_channel",
        "is_archived",
        "invalid_blocks",
        "invalid_blocks_format",
        "msg_too_long",
        "no_text",
        "user_not_found",
        "cant_update_message",
        "message_not_found",
        "edit_window_closed",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "not_authed",
        "missing_scope",
        "restricted_action",
        "unknown_method",
    }
)


@dataclass
class _Bucket:
    rate: float  # tokens a second
    burst: float
    tokens: float
    at: float
    paused_until: float = 0.0


class SlackPacer:
    """Token buckets per method, and per channel for chat.postMessage. `scale` multiplies every
    rate (SLACK_RATE_SCALE; above 1 only against a server that allows it, such as a fake)."""

    LIMITS = {  # method: (per second, burst, per channel?)
        "chat.postMessage": (1.0, 5.0, True),
        "chat.update": (50 / 60, 20.0, False),
    }

    def __init__(self, scale: float = 1.0) -> None:
        self.scale = scale
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self._paused: dict[str, float] = {}
        self._lock = threading.Lock()

    def reserve(self, method: str, channel: str) -> float:
        """Take a token and return 0, or return how many seconds until one is free."""
        now = time.monotonic()
        with self._lock:
            paused = self._paused.get(method, 0.0) - now
            if paused > 0:
                return paused
            limit = self.LIMITS.get(method)
            if limit is None:
                return 0.0
            rate, burst, per_channel = limit
            rate *= self.scale
            key = (method, channel if per_channel else "")
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(rate, burst, burst, now)
            bucket.tokens = min(bucket.burst, bucket.tokens + (now - bucket.at) * bucket.rate)
            bucket.at = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / bucket.rate

    def pause(self, method: str, seconds: float) -> None:
        """Slack said 429: nobody here calls `method` for `seconds`."""
        with self._lock:
            until = time.monotonic() + seconds
            self._paused[method] = max(self._paused.get(method, 0.0), until)


class _Skip(Exception):
    """Nothing to deliver (the message it would update was never posted)."""


class SlackSender:
    def __init__(
        self,
        *,
        client: WebClient,
        queue: OutboxQueue,
        view_of: Callable[[uuid.UUID], RequestView | None],
        record_post: Callable[[uuid.UUID, str, str], None],
        pacer: SlackPacer,
    ) -> None:
        self.client = client
        self.queue = queue
        self.view_of = view_of
        self.record_post = record_post
        self.pacer = pacer

    def deliver(self, delivery: Delivery) -> None:
        method = "chat.update" if delivery.kind == REFRESH else "chat.postMessage"
        wait = self.pacer.reserve(method, delivery.conversation)
        if wait > 0:
            self.queue.retry(delivery, after=timedelta(seconds=wait), error="paced", count=False)
            return
        try:
            self._send(delivery)
        except _Skip as exc:
            self.queue.done(delivery, "skipped", str(exc))
        except SlackApiError as exc:
            self._failed(delivery, method, exc)
        except (SlackClientError, OSError) as exc:  # network: try again
            self._transient(delivery, f"{exc.__class__.__name__}: {exc}")
        else:
            self.queue.done(delivery)

    def _send(self, delivery: Delivery) -> None:
        if delivery.kind == POST:
            self.client.chat_postMessage(**delivery.payload)
            return
        view = self.view_of(delivery.request_id) if delivery.request_id else None
        if view is None:
            raise _Skip("the request no longer exists")
        if delivery.kind == POST_REQUEST:
            if view.approvers_message_ts:
                raise _Skip("already posted")
            text, message_blocks = blocks.approvers_message(view)
            response = self.client.chat_postMessage(
                channel=view.approvers_channel, text=text, blocks=message_blocks
            )
            self.record_post(view.id, str(response["channel"]), str(response["ts"]))
        elif delivery.kind == REFRESH:
            if not view.approvers_message_ts:
                raise _Skip("the approvers' message was never posted")
            text, message_blocks = blocks.approvers_message(view)
            self.client.chat_update(
                channel=view.approvers_channel,
                ts=view.approvers_message_ts,
                text=text,
                blocks=message_blocks,
            )
        elif delivery.kind == THREAD:
            thread = view.approvers_message_ts
            if not thread and not delivery.payload.get("broadcast"):
                raise _Skip("a thread note, and no approvers' message to put it under")
            self.client.chat_postMessage(
                channel=view.approvers_channel,
                text=str(delivery.payload.get("text", "")),
                thread_ts=thread,
                reply_broadcast=bool(delivery.payload.get("broadcast")) and bool(thread),
            )
        else:
            raise _Skip(f"unknown outbox kind {delivery.kind!r}")

    def _failed(self, delivery: Delivery, method: str, exc: SlackApiError) -> None:
        response = exc.response
        if response.status_code == 429:
            seconds = _retry_after(response.headers)
            self.pacer.pause(method, seconds)
            self.queue.retry(
                delivery, after=timedelta(seconds=seconds), error="ratelimited", count=False
            )
            return
        error = str(response.get("error") or f"HTTP {response.status_code}")
        if error in PERMANENT_ERRORS:
            log.error(
                "outbox message %s (%s to %s) refused by Slack: %s",
                delivery.id,
                delivery.kind,
                delivery.conversation,
                error,
            )
            self.queue.done(delivery, "failed", error)
            return
        self._transient(delivery, error)

    def _transient(self, delivery: Delivery, error: str) -> None:
        if self.queue.clock() - delivery.created_at > GIVE_UP_AFTER:
            log.error("outbox message %s given up after a day: %s", delivery.id, error)
            self.queue.done(delivery, "failed", error)
            return
        backoff = min(timedelta(seconds=2 ** min(delivery.attempts, 10)), MAX_BACKOFF)
        log.warning("outbox message %s not delivered (%s); retrying", delivery.id, error)
        self.queue.retry(delivery, after=backoff, error=error)


def _retry_after(headers: dict[str, object]) -> float:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list) and value else value
            try:
                return max(float(str(raw)), 0.0)
            except ValueError:
                break
    return 1.0
