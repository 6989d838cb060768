"""A fake Slack Web API: answers like Slack, records every call the app's WebClient makes.

Like real Slack it answers an unknown method with HTTP 200 and `unknown_method`, and, when a test
asks it to, rate-limits with HTTP 429, a `Retry-After` header and `ratelimited`.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from tests.support.http_fake import Answer, FakeServer, json_answer, parse_body

BOT_TOKEN = "xoxb-test-token"
APP_TOKEN = "xapp-1-test-token"  # an app-level token with connections:write (Socket Mode)

# Every Web API method the fake knows; any other answers `unknown_method`, as Slack does.
KNOWN_METHODS = frozenset(
    {
        "auth.test",
        "apps.connections.open",
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


@dataclass
class Call:
    method: str
    args: dict[str, Any]

    def text(self) -> str:
        """Everything a person would read in the message: text and block texts."""
        parts = [str(self.args.get("text") or "")]
        blocks = self.args.get("blocks") or []
        if isinstance(blocks, str):
            blocks = json.loads(blocks)
        parts.append(json.dumps(blocks, ensure_ascii=False))
        return "\n".join(parts)

    @property
    def blocks(self) -> list[dict[str, Any]]:
        blocks = self.args.get("blocks") or []
        return json.loads(blocks) if isinstance(blocks, str) else blocks

    def buttons(self) -> list[str]:
        return [
            element["text"]["text"]
            for block in self.blocks
            if block.get("type") == "actions"
            for element in block.get("elements", [])
            if element.get("type") == "button"
        ]


@dataclass
class _RateLimit:
    every: int  # every Nth call answers 429
    retry_after: int
    seen: int = 0


class FakeSlack(FakeServer):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[Call] = []  # calls Slack accepted (answered 200), in arrival order
        self.rate_limited: list[Call] = []  # calls answered 429; not in `calls`
        self.unknown: list[Call] = []  # calls to methods Slack does not have; not in `calls`
        self.users: dict[str, dict[str, Any]] = {}
        self.channel_members: dict[str, list[str]] = {}
        # conversations.info fields by channel id, over a private, unshared channel's
        self.channel_info: dict[str, dict[str, Any]] = {}
        self.usergroups: dict[str, list[str]] = {}
        # where apps.connections.open sends the app (a FakeSocketMode's `url`, a fresh ticket)
        self.socket_mode_url: Callable[[], str] | None = None
        # what auth.test's `x-oauth-scopes` header says the token carries (as Slack does)
        self.scopes: list[str] = [
            "commands",
            "chat:write",
            "im:write",
            "users:read",
            "users:read.email",
            "usergroups:read",
            "channels:read",
            "groups:read",
        ]
        self.errors: dict[str, list[str]] = {}
        self.delays: dict[str, float] = {}
        self._rate_limits: dict[str | None, _RateLimit] = {}  # None: any method
        self._rate_limit_next: dict[str, list[int]] = {}  # method -> Retry-After of each 429
        self._ts = itertools.count(1)
        self._lock = threading.Lock()

    @property
    def api_url(self) -> str:
        return self.base_url + "/api/"

    # -- set-up ----------------------------------------------------------------------------

    def add_user(self, slack_id: str, email: str | None, name: str = "") -> None:
        profile = {"real_name": name or slack_id, "display_name": name or slack_id}
        if email:
            profile["email"] = email
        self.users[slack_id] = {"id": slack_id, "name": name or slack_id, "profile": profile}

    def fail_next(self, method: str, error: str = "internal_error", times: int = 1) -> None:
        self.errors.setdefault(method, []).extend([error] * times)

    def rate_limit(self, method: str | None = None, every: int = 3, retry_after: int = 1) -> None:
        """Answer every `every`th call to `method` (to any method when None) with HTTP 429.

        Calls are counted from now, the rate-limited ones included; `every=1` limits them all.
        """
        if every < 1:
            raise ValueError("every must be at least 1")
        with self._lock:
            self._rate_limits[method] = _RateLimit(every=every, retry_after=retry_after)

    def rate_limit_next(self, method: str, times: int = 1, retry_after: int = 1) -> None:
        """Answer the next `times` calls to `method` with HTTP 429."""
        with self._lock:
            self._rate_limit_next.setdefault(method, []).extend([retry_after] * times)

    def stop_rate_limiting(self) -> None:
        with self._lock:
            self._rate_limits.clear()
            self._rate_limit_next.clear()

    # -- assertions ------------------------------------------------------------------------

    def calls_to(self, method: str, **match: Any) -> list[Call]:
        with self._lock:
            calls = list(self.calls)
        return [
            c
            for c in calls
            if c.method == method and all(c.args.get(k) == v for k, v in match.items())
        ]

    def wait_for(
        self,
        method: str,
        *,
        count: int = 1,
        where: Callable[[Call], bool] = lambda call: True,
        timeout: float = 10,
        **match: Any,
    ) -> list[Call]:
        deadline = time.monotonic() + timeout
        while True:
            found = [c for c in self.calls_to(method, **match) if where(c)]
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                seen = "\n".join(f"  {c.method} {c.args}" for c in self.calls)
                refused = "".join(
                    f"\n{label}: " + ", ".join(c.method for c in refused_calls)
                    for label, refused_calls in (
                        ("answered 429", self.rate_limited),
                        ("unknown methods", self.unknown),
                    )
                    if refused_calls
                )
                raise AssertionError(
                    f"expected {count} {method} call(s) matching {match}, found {len(found)}; "
                    f"calls so far:\n{seen}{refused}"
                )
            time.sleep(0.02)

    def dms_to(self, slack_id: str) -> list[Call]:
        return self.calls_to("chat.postMessage", channel=slack_id)

    # -- the API ---------------------------------------------------------------------------

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        api_method = urlsplit(path).path.removeprefix("/api/")
        args = parse_body(path, headers, body)
        auth = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
        if api_method not in KNOWN_METHODS:
            with self._lock:
                self.unknown.append(Call(api_method, args))
            return json_answer({"ok": False, "error": "unknown_method"})
        if api_method == "apps.connections.open":  # the one method an app-level token calls
            if auth != f"Bearer {APP_TOKEN}" or self.socket_mode_url is None:
                return json_answer({"ok": False, "error": "invalid_auth"})
            with self._lock:
                self.calls.append(Call(api_method, args))
            return json_answer({"ok": True, "url": self.socket_mode_url()})
        if auth != f"Bearer {BOT_TOKEN}":
            return json_answer({"ok": False, "error": "invalid_auth"})
        with self._lock:
            retry_after = self._take_rate_limit(api_method)
            if retry_after is not None:
                self.rate_limited.append(Call(api_method, args))
                return json_answer(
                    {"ok": False, "error": "ratelimited"},
                    429,
                    **{"Retry-After": str(retry_after)},
                )
            self.calls.append(Call(api_method, args))
            queued = self.errors.get(api_method)
            error = queued.pop(0) if queued else None
        if self.delays.get(api_method):
            time.sleep(self.delays[api_method])
        if error:
            return json_answer({"ok": False, "error": error})
        if api_method == "auth.test":
            return json_answer(
                self.answer(api_method, args), **{"x-oauth-scopes": ",".join(self.scopes)}
            )
        return json_answer(self.answer(api_method, args))

    def _take_rate_limit(self, method: str) -> int | None:
        """The Retry-After of a 429 for this call, or None to let it through. Under the lock."""
        retry_after: int | None = None
        queued = self._rate_limit_next.get(method)
        if queued:
            retry_after = queued.pop(0)
        for key in (method, None):  # each rule counts every call it covers
            rule = self._rate_limits.get(key)
            if rule is not None:
                rule.seen += 1
                if rule.seen % rule.every == 0 and retry_after is None:
                    retry_after = rule.retry_after
        return retry_after

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
        if method == "chat.update":
            return {"ok": True, "channel": args.get("channel"), "ts": args.get("ts")}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": f"{1700000000 + next(self._ts)}.000200"}
        if method in ("views.open", "views.update", "views.publish", "views.push"):
            view = args.get("view")
            view = json.loads(view) if isinstance(view, str) else view
            return {
                "ok": True,
                "view": {"id": args.get("view_id") or "V0VIEW", "hash": "h1", **(view or {})},
            }
        if method == "users.info":
            user = self.users.get(str(args.get("user")))
            return {"ok": True, "user": user} if user else {"ok": False, "error": "user_not_found"}
        if method == "users.lookupByEmail":
            email = str(args.get("email", "")).lower()
            for user in self.users.values():
                if str(user["profile"].get("email", "")).lower() == email:
                    return {"ok": True, "user": user}
            return {"ok": False, "error": "users_not_found"}
        if method == "conversations.members":
            members = self.channel_members.get(str(args.get("channel")))
            if members is None:
                return {"ok": False, "error": "channel_not_found"}
            return {"ok": True, "members": members, "response_metadata": {"next_cursor": ""}}
        if method == "usergroups.users.list":
            users = self.usergroups.get(str(args.get("usergroup")))
            if users is None:
                return {"ok": False, "error": "no_such_subteam"}
            return {"ok": True, "users": users}
        if method == "conversations.info":
            channel = str(args.get("channel"))
            info = {
                "id": channel,
                "name": channel.lower(),
                "is_channel": True,
                "is_private": True,
                "is_shared": False,
                "is_ext_shared": False,
                "is_org_shared": False,
                "is_pending_ext_shared": False,
                "is_member": True,
                **self.channel_info.get(channel, {}),
            }
            if info.get("error"):
                return {"ok": False, "error": info["error"]}
            return {"ok": True, "channel": info}
        if method == "chat.delete":
            return {"ok": True, "channel": args.get("channel"), "ts": args.get("ts")}
        return {"ok": True}
