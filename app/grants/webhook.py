"""The Webhook strategy: POST a signed JSON event; any 2xx answer means done."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import json
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from app.core.text import redact_url
from app.grants.base import Env, GrantContext, GrantError, Retry, Secret, resolve_secret
from app.grants.poster import Poster, PostFailed, PostTimeout

TIMESTAMP_HEADER = "X-Accessbot-Timestamp"
SIGNATURE_HEADER = "X-Accessbot-Signature"
MAX_ANSWER = 4096  # bytes of a target's answer read
MAX_SHOWN_ANSWER = 200  # bytes of it kept for the audit log


def sign(secret: str, timestamp: str, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return "v1=" + digest.hexdigest()


def payload(ctx: GrantContext) -> dict[str, Any]:
    return {
        "event": ctx.event,
        "event_id": ctx.event_id,
        "request_id": str(ctx.request_id),
        "resource": ctx.resource,
        "workflow": ctx.workflow,
        "user": {"slack_id": ctx.user.slack_id, "email": ctx.user.email},
        "expires_at": ctx.expires_at.isoformat().replace("+00:00", "Z"),
        "approved_by": ctx.approved_by,
    }


@dataclass
class Webhook:
    url: str
    secret: Secret = field(repr=False)
    timeout: float = 10.0
    retry: Retry = field(default_factory=Retry)
    # One connection pool per webhook, shared by the workers' threads.
    _poster: Poster = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self._poster = Poster(self.url, timeout=self.timeout)

    def grant(self, ctx: GrantContext) -> None:
        self._post(ctx)

    def revoke(self, ctx: GrantContext) -> None:
        self._post(ctx)

    def check(self) -> None:
        """For `accessbot doctor`: a signed `ping` event must be answered with a 2xx."""
        self._send({"event": "ping", "event_id": f"ping-{uuid.uuid4()}"})

    def describe(self) -> str:
        return f"webhook POST {redact_url(self.url)}"

    @property
    def deadline(self) -> float:
        """The whole call, connect to last byte: `timeout` bounds it, not each read."""
        return float(self.timeout)

    @property
    def in_flight_key(self) -> str:
        """Webhooks to one host share its in-flight limit: a hung host holds only its own."""
        parts = urlsplit(self.url)
        return f"webhook:{parts.scheme}://{parts.netloc.rpartition('@')[2]}"

    def required_env(self) -> list[str]:
        return [self.secret.name] if isinstance(self.secret, Env) else []

    def problems(self) -> list[str]:
        found = []
        if not isinstance(self.url, str) or not _https_or_loopback(self.url):
            shown = redact_url(self.url) if isinstance(self.url, str) else repr(self.url)
            found.append(
                f"webhook url {shown!r} must start with https:// "
                "(http:// only to a loopback address: 127.0.0.1, ::1, localhost)"
            )
        if not isinstance(self.secret, Env | str) or not self.secret:
            found.append('webhook secret must be Env("NAME") or a non-empty string')
        if not isinstance(self.timeout, int | float) or self.timeout <= 0:
            found.append(
                f"webhook timeout must be a positive number of seconds (got {self.timeout!r})"
            )
        return found

    def warnings(self) -> list[str]:
        if isinstance(self.secret, str):
            return ['the webhook secret is written in the workflow file; prefer Env("NAME")']
        return []

    def _post(self, ctx: GrantContext) -> None:
        self._send(payload(ctx))

    def _send(self, event: dict[str, Any]) -> None:
        body = json.dumps(event, separators=(",", ":")).encode()
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "User-Agent": "accessbot",
            TIMESTAMP_HEADER: timestamp,
            SIGNATURE_HEADER: sign(resolve_secret(self.secret), timestamp, body),
        }
        try:
            answer = self._poster.post(body, headers, limit=MAX_ANSWER)
        except PostTimeout as exc:
            raise GrantError(f"{self._shown} did not answer within {self.timeout:g}s") from exc
        except PostFailed as exc:
            # urllib3's messages name the host, never the user-info, path or query; clean()
            # redacts any URL wherever it appears all the same
            raise GrantError(f"{self._shown}: {exc}") from exc
        if not answer.ok:
            raise GrantError(
                f"{self._shown} answered {answer.status}",
                answer=answer.body[:MAX_SHOWN_ANSWER].decode("utf-8", "replace"),
            )

    @property
    def _shown(self) -> str:
        return redact_url(self.url)


def _https_or_loopback(url: str) -> bool:
    """https://, or http:// to this machine (a sidecar, a test receiver), nothing else."""
    if url.startswith("https://"):
        return True
    if not url.startswith("http://"):
        return False
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
