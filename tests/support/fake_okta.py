"""A fake Okta API over HTTPS speaking Okta's wire format: users found by id or login, a user's
groups paginated with `Link: <...>; rel="next"` (cursor `after`), group membership PUT/DELETE
answering 204, `Authorization: SSWS <token>`, and 429 with `X-Rate-Limit-*` headers on demand."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.support.http_fake import Answer, json_answer
from tests.support.tls_fake import TlsFakeServer

TOKEN = "okta-test-token-00aB"


def _error(status: int, code: str, summary: str, **headers: str) -> Answer:
    body = {
        "errorCode": code,
        "errorSummary": summary,
        "errorLink": code,
        "errorId": "oae-fake",
        "errorCauses": [],
    }
    return json_answer(body, status, **headers)


@dataclass
class FakeOkta(TlsFakeServer):
    token: str = TOKEN
    page_size_cap: int = 2  # small pages, so the pagination is exercised
    requests: list[tuple[str, str]] = field(default_factory=list)
    rate_limited: int = 0  # answer the next N requests 429
    reset_in: float = 1.0  # X-Rate-Limit-Reset is now + this

    def __post_init__(self) -> None:
        super().__init__()
        self.users: dict[str, dict[str, Any]] = {}  # id -> user
        self.groups: dict[str, set[str]] = {}  # group id -> member user ids
        self._lock = threading.Lock()

    def add_user(self, user_id: str, login: str, email: str | None = None) -> None:
        self.users[user_id] = {
            "id": user_id,
            "status": "ACTIVE",
            "profile": {"login": login, "email": email or login},
        }

    def add_group(self, group_id: str, *members: str) -> None:
        self.groups[group_id] = set(members)

    def members(self, group_id: str) -> set[str]:
        with self._lock:
            return set(self.groups[group_id])

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        with self._lock:
            self.requests.append((method, path))
            lower = {k.lower(): v for k, v in headers.items()}
            if self.rate_limited > 0:
                self.rate_limited -= 1
                return _error(
                    429,
                    "E0000047",
                    "API call exceeded rate limit due to too many requests.",
                    **{
                        "X-Rate-Limit-Limit": "600",
                        "X-Rate-Limit-Remaining": "0",
                        "X-Rate-Limit-Reset": str(int(time.time() + self.reset_in)),
                    },
                )
            if lower.get("authorization") != f"SSWS {self.token}":
                return _error(401, "E0000011", "Invalid token provided")
            parts = urlsplit(path)
            segments = [unquote(s) for s in parts.path.split("/") if s]
            query = parse_qs(parts.query)
            match (method, segments):
                case ("GET", ["api", "v1", "users", key]):
                    user = self._user(key)
                    if user is None:
                        return self._not_found(key, "User")
                    return json_answer(user)
                case ("GET", ["api", "v1", "users", key, "groups"]):
                    user = self._user(key)
                    if user is None:
                        return self._not_found(key, "User")
                    return self._groups_page(user["id"], parts.path, query)
                case ("PUT" | "DELETE", ["api", "v1", "groups", group_id, "users", user_id]):
                    if group_id not in self.groups:
                        return self._not_found(group_id, "UserGroup")
                    if user_id not in self.users:
                        return self._not_found(user_id, "User")
                    if method == "PUT":
                        self.groups[group_id].add(user_id)
                    else:
                        self.groups[group_id].discard(user_id)
                    return 204, {}, b""
            return _error(404, "E0000022", "The endpoint does not support the provided HTTP method")

    def _user(self, key: str) -> dict[str, Any] | None:
        if key in self.users:
            return self.users[key]
        return next((u for u in self.users.values() if u["profile"]["login"] == key), None)

    def _not_found(self, key: str, kind: str) -> Answer:
        return _error(404, "E0000007", f"Not found: Resource not found: {key} ({kind})")

    def _groups_page(self, user_id: str, path: str, query: dict[str, list[str]]) -> Answer:
        limit = min(int(query.get("limit", ["200"])[0]), self.page_size_cap)
        after = query.get("after", [None])[0]
        ids = sorted(g for g, members in self.groups.items() if user_id in members)
        if after is not None:
            ids = [g for g in ids if g > after]
        page = ids[:limit]
        base = f"{self.base_url}{path}"
        links = [f'<{base}?limit={limit}>; rel="self"']
        if len(ids) > limit:
            links.append(f'<{base}?after={page[-1]}&limit={limit}>; rel="next"')
        groups = [
            {"id": g, "type": "OKTA_GROUP", "profile": {"name": g, "description": None}}
            for g in page
        ]
        return (
            200,
            {"Content-Type": "application/json", "Link": ", ".join(links)},
            json.dumps(groups).encode(),
        )
