"""The GitHubTeam strategy: team membership for the grant's lifetime, through githubkit.

`PUT` / `DELETE /orgs/{org}/teams/{team_slug}/memberships/{username}`. Someone who is not yet
a member of the organization gets an invitation and a *pending* membership: that is reported
as a failure (they have no access until they accept), never as success.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal, TypeVar

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

if TYPE_CHECKING:  # githubkit is imported when first used: it takes a while to import
    from githubkit import GitHub
    from githubkit.exception import RequestFailed

T = TypeVar("T")


@dataclass(frozen=True)
class GitHubApp:
    """GitHub App authentication: the app's id, its private key (PEM, from the environment) and
    the id of its installation on the organization. Installation tokens are fetched and renewed
    by githubkit."""

    app_id: int
    installation_id: int
    private_key: Secret = field(default=Env("GITHUB_APP_PRIVATE_KEY"), repr=False)


@dataclass
class GitHubTeam:
    org: str
    team: str  # the team's slug, as in github.com/orgs/ORG/teams/SLUG
    # The GitHub login of a Slack user: a dict keyed by Slack ID or email, or a function.
    # Required: GitHub does not reliably expose emails.
    logins: IdentityMap
    token: Secret = field(default=Env("GITHUB_TOKEN"), repr=False)
    app: GitHubApp | None = None  # GitHub App authentication instead of `token`
    role: Literal["member", "maintainer"] = "member"
    base_url: str = "https://api.github.com"  # GitHub Enterprise Server: https://HOST/api/v3
    timeout: float = 10.0
    retry: Retry = field(default_factory=Retry)
    _client: GitHub[Any] | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def deadline(self) -> float:
        return float(self.timeout)

    @property
    def in_flight_key(self) -> str:
        return f"github:{self.base_url}/{self.org}"

    def describe(self) -> str:
        return f"GitHub: {self.role} of team {self.org}/{self.team}"

    def required_env(self) -> list[str]:
        secret = self.app.private_key if self.app is not None else self.token
        return [secret.name] if isinstance(secret, Env) else []

    def problems(self) -> list[str]:
        found: list[str] = []
        for name in ("org", "team"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value or "/" in value:
                found.append(f"GitHub {name} {value!r} is not a name (no slashes)")
        if self.role not in ("member", "maintainer"):
            found.append(f"GitHub team role {self.role!r} must be 'member' or 'maintainer'")
        if self.logins is None:
            found.append("logins is required: GitHub logins are not email addresses")
        elif problem := identity_map_problem("logins", self.logins):
            found.append(problem)
        if not isinstance(self.timeout, int | float) or self.timeout <= 0:
            found.append(f"timeout must be a positive number of seconds (got {self.timeout!r})")
        return found

    def warnings(self) -> list[str]:
        if self.app is not None and isinstance(self.app.private_key, str):
            return ['the GitHub App private key is written in the workflow file; use Env("NAME")']
        if self.app is None and isinstance(self.token, str):
            return ['the GitHub token is written in the workflow file; prefer Env("NAME")']
        return []

    # -- the strategy ----------------------------------------------------------------------

    def grant(self, ctx: GrantContext) -> Granted:
        login = map_identity(self.logins, ctx.user, "GitHub login")
        teams = self._github().rest.teams
        state = self._state(login)
        had = state == "active"
        if not had:
            answer = self._call(
                f"add {login} to {self.org}/{self.team}",
                lambda: teams.add_or_update_membership_for_user_in_org(
                    self.org, self.team, login, role=self.role
                ),
            )
            state = answer.parsed_data.state
        if state != "active":
            raise GrantError(
                f"{login}'s membership of {self.org}/{self.team} is {state}: they have been "
                f"invited to the {self.org} organization and get access only once they accept"
            )
        return Granted(undo={"login": login, "org": self.org, "team": self.team}, already_had=had)

    def revoke(self, ctx: GrantContext) -> None:
        login = ctx.undo.get("login") or map_identity(self.logins, ctx.user, "GitHub login")
        org, team = ctx.undo.get("org", self.org), ctx.undo.get("team", self.team)
        teams = self._github().rest.teams
        try:
            self._call(
                f"remove {login} from {org}/{team}",
                lambda: teams.remove_membership_for_user_in_org(org, team, login),
            )
        except _NotFound:
            # Not a member (any more): done. Or a team the token cannot see: tell them apart.
            try:
                self._call(f"find team {org}/{team}", lambda: teams.get_by_name(org, team))
            except _NotFound:
                raise GrantError(
                    f"GitHub team {org}/{team} was not found (or the token cannot see it): "
                    f"remove {login} from it by hand if it still exists"
                ) from None

    # -- GitHub calls ----------------------------------------------------------------------

    def _state(self, login: str) -> str | None:
        """'active' or 'pending' for a member of the team, None for someone who is not."""
        teams = self._github().rest.teams
        try:
            answer = self._call(
                f"read {login}'s membership of {self.org}/{self.team}",
                lambda: teams.get_membership_for_user_in_org(self.org, self.team, login),
            )
        except _NotFound:
            return None
        return str(answer.parsed_data.state)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        from githubkit.exception import (
            GitHubException,
            RateLimitExceeded,
            RequestFailed,
            RequestTimeout,
        )

        try:
            return fn()
        except RateLimitExceeded as exc:
            raise GrantError(
                f"GitHub {what}: rate limited; retry after {exc.retry_after.total_seconds():g}s"
            ) from exc
        except RequestFailed as exc:
            status = exc.response.status_code
            if status == 404:
                raise _NotFound(f"GitHub {what}: 404 Not Found") from exc
            raise GrantError(f"GitHub {what}: {status}: {_message(exc)}") from exc
        except RequestTimeout as exc:
            raise GrantError(f"GitHub {what}: no answer within {self.timeout:g}s") from exc
        except GitHubException as exc:
            raise GrantError(f"GitHub {what}: {type(exc).__name__}: {exc}") from exc

    def _github(self) -> GitHub[Any]:
        if self._client is None:
            from githubkit import AppInstallationAuthStrategy, GitHub
            from githubkit.cache import MemCacheStrategy

            auth: Any = resolve_secret(self.token) if self.app is None else None
            if self.app is not None:
                auth = AppInstallationAuthStrategy(
                    app_id=self.app.app_id,
                    private_key=resolve_secret(self.app.private_key),
                    installation_id=self.app.installation_id,
                )
            self._client = GitHub(
                auth,
                base_url=self.base_url,
                timeout=self.timeout,
                # ssl.create_default_context() honours SSL_CERT_FILE / SSL_CERT_DIR.
                ssl_verify=ssl.create_default_context(),
                auto_retry=False,  # the engine retries, within its deadlines
                http_cache=False,
                user_agent="accessbot",
                # Its own cache of app JWTs and installation tokens: githubkit's default is
                # shared by every client in the process, keyed by app id alone.
                cache_strategy=MemCacheStrategy(),
            )
        return self._client


class _NotFound(GrantError):
    """GitHub answered 404: no such user, team or membership (or one the token cannot see)."""


def _message(exc: RequestFailed) -> str:
    try:
        body = exc.response.json()
    except ValueError:
        return exc.response.text[:200]
    if isinstance(body, dict):
        return str(body.get("message") or body)[:300]
    return str(body)[:200]
