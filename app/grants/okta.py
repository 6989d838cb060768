"""The OktaGroup strategy: add the requester to an Okta group for the grant's lifetime.

Okta's Users and Groups APIs: `GET /api/v1/users/{login}` finds the user, `GET
/api/v1/users/{id}/groups` (paginated by `Link: <...>; rel="next"`) tells whether they are a
member already, `PUT` / `DELETE /api/v1/groups/{groupId}/users/{userId}` add and remove them.
A 429 is waited out until `X-Rate-Limit-Reset` when that fits within the strategy's deadline.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urljoin, urlsplit

import httpx

from app.grants.base import (
    Env,
    GrantContext,
    Granted,
    GrantError,
    IdentityMap,
    Retry,
    Secret,
    identity_map_problem,
    map_identity,
    resolve_secret,
)
from app.grants.http_pool import SharedClient

PAGE_SIZE = 200  # Okta's largest page for a user's groups


@dataclass
class OktaGroup:
    org_url: str  # https://example.okta.com
    group_id: str  # 00g...: the group's id, not its name (names can be renamed and reused)
    token: Secret = field(default=Env("OKTA_API_TOKEN"), repr=False)
    # The Okta login of a Slack user: a dict keyed by Slack ID or email, or a function. By
    # default their Slack email address.
    users: IdentityMap | None = None
    timeout: float = 10.0
    retry: Retry = field(default_factory=Retry)
    # One connection pool, shared by the workers' threads.
    _http: SharedClient = field(
        default_factory=lambda: SharedClient(system_ca=True, follow_redirects=False),
        init=False,
        repr=False,
        compare=False,
    )

    @property
    def deadline(self) -> float:
        return float(self.timeout)

    @property
    def in_flight_key(self) -> str:
        return f"okta:{urlsplit(self.org_url).netloc}"

    def describe(self) -> str:
        return f"Okta: add to group {self.group_id} at {self.org_url}"

    def required_env(self) -> list[str]:
        return [self.token.name] if isinstance(self.token, Env) else []

    def problems(self) -> list[str]:
        found = []
        if not isinstance(self.org_url, str) or not self.org_url.startswith("https://"):
            found.append(f"Okta org_url {self.org_url!r} must start with https://")
        if not isinstance(self.group_id, str) or not self.group_id or "/" in self.group_id:
            found.append(f"Okta group_id {self.group_id!r} is not a group id (00g...)")
        if not isinstance(self.timeout, int | float) or self.timeout <= 0:
            found.append(f"timeout must be a positive number of seconds (got {self.timeout!r})")
        if problem := identity_map_problem("users", self.users):
            found.append(problem)
        return found

    def warnings(self) -> list[str]:
        if isinstance(self.token, str):
            return ['the Okta API token is written in the workflow file; prefer Env("NAME")']
        return []

    # -- the strategy ----------------------------------------------------------------------

    def grant(self, ctx: GrantContext) -> Granted:
        started = time.monotonic()
        user_id = self._user_id(map_identity(self.users, ctx.user, "Okta login"), started)
        had = self._is_member(user_id, self.group_id, started)
        if not had:
            self._call("PUT", self._membership(self.group_id, user_id), started, ok=(204, 200))
        return Granted(undo={"user_id": user_id, "group_id": self.group_id}, already_had=had)

    def revoke(self, ctx: GrantContext) -> None:
        started = time.monotonic()
        group_id = ctx.undo.get("group_id", self.group_id)
        user_id = ctx.undo.get("user_id")
        if user_id is None:
            user_id = self._user_id(map_identity(self.users, ctx.user, "Okta login"), started)
        # 404: the user or the group is gone, and the membership with it.
        self._call("DELETE", self._membership(group_id, user_id), started, ok=(204, 200, 404))

    # -- Okta calls ------------------------------------------------------------------------

    def _membership(self, group_id: str, user_id: str) -> str:
        return f"/api/v1/groups/{quote(group_id, safe='')}/users/{quote(user_id, safe='')}"

    def _user_id(self, login: str, started: float) -> str:
        response = self._call(
            "GET", f"/api/v1/users/{quote(login, safe='@')}", started, ok=(200, 404)
        )
        if response.status_code == 404:
            raise GrantError(f"no Okta user with login {login!r}")
        user_id = _json(response).get("id")
        if not isinstance(user_id, str) or not user_id:
            raise GrantError(f"Okta answered a user without an id for {login!r}")
        return user_id

    def _is_member(self, user_id: str, group_id: str, started: float) -> bool:
        url: str | None = f"/api/v1/users/{quote(user_id, safe='')}/groups?limit={PAGE_SIZE}"
        while url is not None:
            response = self._call("GET", url, started, ok=(200,))
            groups = response.json() if response.content else []
            if not isinstance(groups, list):
                raise GrantError("Okta answered the user's groups with something not a list")
            if any(isinstance(g, dict) and g.get("id") == group_id for g in groups):
                return True
            url = response.links.get("next", {}).get("url")
        return False

    def _call(
        self, method: str, path: str, started: float, *, ok: tuple[int, ...]
    ) -> httpx.Response:
        url = urljoin(self.org_url.rstrip("/") + "/", path.lstrip("/"))
        if urlsplit(url).netloc != urlsplit(self.org_url).netloc:
            raise GrantError(f"Okta sent a next link to another host: {urlsplit(url).netloc}")
        headers = {
            "Authorization": f"SSWS {resolve_secret(self.token)}",
            "Accept": "application/json",
            "User-Agent": "accessbot",
        }
        what = f"Okta {method} {urlsplit(url).path}"
        while True:
            left = self.timeout - (time.monotonic() - started)
            if left <= 0:
                raise GrantError(f"{what}: not done within {self.timeout:g}s")
            try:
                response = self._http.get().request(method, url, headers=headers, timeout=left)
            except httpx.TimeoutException as exc:
                raise GrantError(f"{what}: no answer within {self.timeout:g}s") from exc
            except httpx.HTTPError as exc:
                raise GrantError(f"{what}: {type(exc).__name__}: {exc}") from exc
            if response.status_code in ok:
                return response
            if response.status_code == 429:
                wait = _rate_limit_wait(response)
                if wait is None or wait > self.timeout - (time.monotonic() - started):
                    reset = response.headers.get("X-Rate-Limit-Reset", "unknown")
                    raise GrantError(
                        f"{what}: rate limited by Okta (X-Rate-Limit-Reset {reset}); retried later"
                    )
                time.sleep(wait)
                continue
            raise GrantError(f"{what} answered {response.status_code}: {_summary(response)}")


def _rate_limit_wait(response: httpx.Response) -> float | None:
    """Seconds until Okta's rate-limit window resets (`X-Rate-Limit-Reset`, epoch seconds)."""
    try:
        reset = float(response.headers["X-Rate-Limit-Reset"])
    except (KeyError, ValueError):
        return None
    return max(reset - time.time(), 0.0) + 0.05


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError as exc:
        raise GrantError(
            f"Okta answered {response.status_code} with a body that is not JSON"
        ) from exc
    if not isinstance(body, dict):
        raise GrantError(f"Okta answered {response.status_code} with an unexpected body")
    return body


def _summary(response: httpx.Response) -> str:
    """Okta's errorSummary (never the request: it carried the token)."""
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("errorSummary") or body.get("errorCode") or body)[:300]
    return str(body)[:200]
