"""A fake PagerDuty REST API v2 over HTTPS, speaking the real wire format, for the on-call check.

It serves `GET /users` and `GET /oncalls` with classic `limit`/`offset`/`more` pagination, checks
`Authorization: Token token=...`, records every request, and misbehaves on demand: forced error
statuses, an endless 429, a delay before answering, bodies that are not JSON, ignored filters.
Its certificate comes from a throwaway `trustme` CA whose PEM is at `ca_bundle_path`.
"""

from __future__ import annotations

import ssl
import tempfile
import threading
from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import trustme

from tests.support.http_fake import Answer, FakeServer, json_answer

TOKEN = "pd-test-token-5f1c9a"
DEFAULT_PAGE_SIZE = 25  # PagerDuty's default `limit`
MAX_PAGE_SIZE = 100  # PagerDuty's largest `limit`


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: dict[str, list[str]]  # every value of every query parameter, in order
    headers: dict[str, str]  # names lower-cased


class FakePagerDuty(FakeServer):
    scheme = "https"

    def __init__(self, token: str = TOKEN) -> None:
        super().__init__()
        self.token = token
        self.requests: list[Request] = []
        self.forced_statuses: deque[int] = deque()  # answered in turn, before anything else
        self.forced_bodies: deque[bytes] = deque()  # answered as 200 with this raw body
        self.always_429 = False
        self.delay = 0.0  # seconds to wait before answering
        self.honour_filters = True  # False: answer /oncalls as if the filters were unknown
        self._users: list[dict[str, Any]] = []
        self._oncalls: list[dict[str, Any]] = []
        self.escalation_policies: set[str] = set()  # ids GET /escalation_policies/{id} knows
        self.schedules: set[str] = set()  # ids GET /schedules/{id} knows; add_oncall adds both
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ca = trustme.CA()
        self._tls_dir = tempfile.TemporaryDirectory(prefix="fake-pagerduty-")
        self.ca_bundle_path = Path(self._tls_dir.name) / "ca.pem"
        self._ca.cert_pem.write_to_path(str(self.ca_bundle_path))
        self._serve_tls()

    def _serve_tls(self) -> None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self._ca.issue_cert("127.0.0.1").configure_cert(context)
        # The handshake then happens in each connection's own thread, not in the accept loop.
        self.httpd.socket = context.wrap_socket(
            self.httpd.socket, server_side=True, do_handshake_on_connect=False
        )

    def start(self) -> None:
        # `serve_forever` notices `shutdown()` only between polls: poll often so `stop()` is quick.
        threading.Thread(
            target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        ).start()

    def stop(self) -> None:
        self._stopping.set()  # wakes answers still waiting out `delay`
        super().stop()
        self._tls_dir.cleanup()

    # -- data ---------------------------------------------------------------------------------

    def add_user(self, id: str, email: str, name: str) -> None:
        with self._lock:
            self._users.append(
                {
                    "id": id,
                    "type": "user",
                    "summary": name,
                    "name": name,
                    "email": email,
                    "self": f"{self.base_url}/users/{id}",
                    "html_url": f"https://example.pagerduty.com/users/{id}",
                }
            )

    def add_oncall(
        self,
        user_id: str,
        policy_id: str,
        policy_name: str,
        level: int,
        schedule_id: str | None = None,
        schedule_name: str | None = None,
        *,
        start: datetime | None = None,
        end: datetime | None = None,
    ) -> None:
        """A current on-call entry. A scheduled one defaults to a shift from an hour ago to an
        hour from now; one directly on the policy (no schedule) is permanent: null start/end."""
        if schedule_id is not None:
            now = datetime.now(UTC)
            start = start or now - timedelta(hours=1)
            end = end or now + timedelta(hours=1)
        with self._lock:
            self.escalation_policies.add(policy_id)
            if schedule_id is not None:
                self.schedules.add(schedule_id)
            self._oncalls.append(
                {
                    "escalation_policy": _reference(policy_id, "escalation_policy", policy_name),
                    "escalation_level": level,
                    "schedule": None
                    if schedule_id is None
                    else _reference(schedule_id, "schedule", schedule_name or schedule_id),
                    "user": _reference(user_id, "user", self._user_name(user_id)),
                    "start": _iso(start),
                    "end": _iso(end),
                }
            )

    def clear_oncalls(self) -> None:
        with self._lock:
            self._oncalls.clear()

    def requests_to(self, path: str) -> list[Request]:
        with self._lock:
            return [request for request in self.requests if request.path == path]

    def _user_name(self, user_id: str) -> str:
        return next((u["name"] for u in self._users if u["id"] == user_id), user_id)

    # -- answering ----------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        request = self._record(method, path, headers)
        if self.delay:
            self._stopping.wait(self.delay)
        misbehaviour = self._misbehaviour()
        if misbehaviour is not None:
            return misbehaviour
        if request.headers.get("authorization") != f"Token token={self.token}":
            return _error(401, 2006, "Authentication failed")
        if method == "GET" and request.path == "/users":
            return self._list_users(request.params)
        if method == "GET" and request.path == "/oncalls":
            return self._list_oncalls(request.params)
        collection, _, ident = request.path.strip("/").partition("/")
        singular = {"escalation_policies": "escalation_policy", "schedules": "schedule"}
        known = {"escalation_policies": self.escalation_policies, "schedules": self.schedules}
        if method == "GET" and ident and ident in known.get(collection, set()):
            kind = singular[collection]
            return json_answer({kind: {"id": ident, "type": kind, "summary": ident}})
        return _error(404, 2100, "Not Found")

    def _record(self, method: str, path: str, headers: dict[str, str]) -> Request:
        url = urlsplit(path)
        request = Request(
            method=method,
            path=url.path,
            params=parse_qs(url.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in headers.items()},
        )
        with self._lock:
            self.requests.append(request)
        return request

    def _misbehaviour(self) -> Answer | None:
        if self.always_429:
            return _error(429, 2020, "Rate Limit Exceeded", **{"Retry-After": "1"})
        with self._lock:
            if self.forced_statuses:
                status = self.forced_statuses.popleft()
                return _error(status, 2000, HTTPStatus(status).phrase)
            if self.forced_bodies:
                return 200, {"Content-Type": "application/json"}, self.forced_bodies.popleft()
        return None

    def _list_users(self, params: dict[str, list[str]]) -> Answer:
        query = _first(params, "query", "").lower()
        with self._lock:
            found = [
                user
                for user in self._users
                if query in user["email"].lower() or query in user["name"].lower()
            ]
        return _page("users", found, params)

    def _list_oncalls(self, params: dict[str, list[str]]) -> Answer:
        with self._lock:
            entries = list(self._oncalls)
        if self.honour_filters:
            entries = [entry for entry in entries if _matches_filters(entry, params)]
        return _page("oncalls", entries, params)


def _matches_filters(entry: dict[str, Any], params: dict[str, list[str]]) -> bool:
    """PagerDuty's set filters: each one given must contain the entry's id."""
    schedule = entry["schedule"] or {}
    wanted = {
        "user_ids[]": entry["user"]["id"],
        "escalation_policy_ids[]": entry["escalation_policy"]["id"],
        "schedule_ids[]": schedule.get("id"),
    }
    return all(param not in params or value in params[param] for param, value in wanted.items())


def _page(key: str, items: list[dict[str, Any]], params: dict[str, list[str]]) -> Answer:
    limit = min(int(_first(params, "limit", str(DEFAULT_PAGE_SIZE))), MAX_PAGE_SIZE)
    offset = int(_first(params, "offset", "0"))
    total = len(items) if _first(params, "total", "false") == "true" else None
    return json_answer(
        {
            key: items[offset : offset + limit],
            "limit": limit,
            "offset": offset,
            "more": offset + limit < len(items),
            "total": total,
        }
    )


def _first(params: dict[str, list[str]], name: str, default: str) -> str:
    return params.get(name, [default])[0]


def _reference(id: str, kind: str, summary: str) -> dict[str, Any]:
    return {"id": id, "type": f"{kind}_reference", "summary": summary}


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error(status: int, code: int, message: str, **headers: str) -> Answer:
    return json_answer({"error": {"message": message, "code": code}}, status, **headers)
