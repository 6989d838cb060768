"""Slack Web API calls, counted: by method and final result, with latency, and each 429."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from slack_bolt import App, BoltRequest, BoltResponse
from slack_bolt.middleware import Middleware
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web import SlackResponse

from app.metrics import Metrics

MAX_CLIENTS = 64


class CountRateLimits(RetryHandler):
    """Retries nothing; counts every HTTP 429, including those another handler then retries.
    Put it first in `retry_handlers`."""

    def __init__(self, metrics: Metrics) -> None:
        super().__init__(max_retry_count=0)
        self.metrics = metrics

    def can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is not None and response.status_code == 429:
            self.metrics.slack_429(urlsplit(request.url).path.rsplit("/", 1)[-1])
        return False


class MeteredWebClient(WebClient):
    """A WebClient whose every call is counted in `metrics`."""

    def __init__(self, *args: Any, metrics: Metrics, **kwargs: Any) -> None:
        handlers = list(kwargs.pop("retry_handlers", None) or [])
        if not any(isinstance(h, CountRateLimits) for h in handlers):
            handlers.insert(0, CountRateLimits(metrics))
        super().__init__(*args, retry_handlers=handlers, **kwargs)
        self.metrics = metrics

    def api_call(self, api_method: str, **kwargs: Any) -> SlackResponse:  # type: ignore[override]
        started = time.perf_counter()
        result = "failed"  # no answer: a connection error, a timeout
        try:
            response = super().api_call(api_method, **kwargs)
            result = "ok"
            assert isinstance(response, SlackResponse)
            return response
        except SlackApiError as exc:
            result = "ratelimited" if exc.response.status_code == 429 else "error"
            raise
        finally:
            self.metrics.slack_call(api_method, result, time.perf_counter() - started)

    def copy(self, **changes: Any) -> MeteredWebClient:
        """The same client with `changes` (Bolt's per-request client: another team id)."""
        settings: dict[str, Any] = {
            "token": self.token,
            "base_url": self.base_url,
            "timeout": self.timeout,
            "ssl": self.ssl,
            "proxy": self.proxy,
            "headers": self.headers,
            "team_id": self.default_params.get("team_id"),
            "logger": self.logger,
            "retry_handlers": list(self.retry_handlers),
        }
        return MeteredWebClient(metrics=self.metrics, **{**settings, **changes})


class MeterListenerClients(Middleware):
    """Bolt hands listeners a plain WebClient of its own per request; give them a metered one.
    One per token and team (the bot has one), made once: not a new client for every request."""

    def __init__(self, client: MeteredWebClient) -> None:
        self.client = client
        self._clients: dict[tuple[str | None, str | None], MeteredWebClient] = {}
        self._lock = threading.Lock()

    def process(
        self, *, req: BoltRequest, resp: BoltResponse, next: Callable[[], BoltResponse]
    ) -> BoltResponse | None:
        given = req.context.get("client")
        key = (getattr(given, "token", None) or self.client.token, getattr(given, "team_id", None))
        metered = self._clients.get(key)
        if metered is None:
            with self._lock:
                if len(self._clients) >= MAX_CLIENTS:  # tokens come and go: keep a few
                    self._clients.clear()
                metered = self._clients.setdefault(
                    key, self.client.copy(token=key[0], team_id=key[1])
                )
        req.context["client"] = metered
        return next()


def meter_listener_clients(app: App, client: MeteredWebClient) -> None:
    app.use(MeterListenerClients(client))
