"""A fake GitHub REST API over HTTPS with GitHub's wire format for team memberships:
`GET/PUT/DELETE /orgs/{org}/teams/{slug}/memberships/{username}` and `GET
/orgs/{org}/teams/{slug}`, `Authorization: token|Bearer <token>`, JSON error bodies with
`message` and `documentation_url`, and a *pending* membership (an invitation) for someone who
is not yet a member of the organization. A GitHub App (`add_app`) trades a JWT signed with its
private key (RS256, `iss` the app id, at most 10 minutes long) for an installation token at
`POST /app/installations/{id}/access_tokens`."""

from __future__ import annotations

import json
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

import jwt

from tests.support.http_fake import Answer, json_answer
from tests.support.tls_fake import TlsFakeServer

TOKEN = "ghp_fakeTestToken0123456789"
DOCS = "https://docs.github.com/rest/teams/members"


class FakeGitHub(TlsFakeServer):
    def __init__(self, org: str, token: str = TOKEN) -> None:
        super().__init__()
        self.org = org
        self.token = token
        self.users: set[str] = set()  # every GitHub account
        self.org_members: set[str] = set()
        self.teams: dict[str, dict[str, dict[str, str]]] = {}  # slug -> login -> membership
        self.requests: list[tuple[str, str, dict[str, Any]]] = []
        self.apps: dict[int, tuple[str, str]] = {}  # installation id -> (app id, public key PEM)
        self.installation_tokens: set[str] = set()
        self._lock = threading.Lock()

    def add_app(self, app_id: int, installation_id: int, public_key_pem: str) -> None:
        self.apps[installation_id] = (str(app_id), public_key_pem)

    def add_team(self, slug: str) -> None:
        self.teams[slug] = {}

    def add_user(self, login: str, *, org_member: bool = True) -> None:
        self.users.add(login)
        if org_member:
            self.org_members.add(login)

    def state(self, slug: str, login: str) -> str | None:
        with self._lock:
            membership = self.teams[slug].get(login)
            return membership["state"] if membership else None

    def handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> Answer:
        with self._lock:
            payload = json.loads(body) if body else {}
            self.requests.append((method, path, payload))
            auth = {k.lower(): v for k, v in headers.items()}.get("authorization", "")
            segments = [unquote(s) for s in urlsplit(path).path.split("/") if s]
            if method == "POST" and segments[:2] == ["app", "installations"]:
                return self._installation_token(segments, auth)
            tokens = {self.token, *self.installation_tokens}
            if auth.partition(" ")[2] not in tokens or auth.partition(" ")[0] not in (
                "token",
                "Bearer",
            ):
                return json_answer(
                    {"message": "Bad credentials", "documentation_url": DOCS, "status": "401"},
                    401,
                )
            match (method, segments):
                case ("GET", ["orgs", org, "teams", slug]) if org == self.org:
                    if slug not in self.teams:
                        return _not_found()
                    return json_answer({"id": 1, "slug": slug, "name": slug})
                case (_, ["orgs", org, "teams", slug, "memberships", login]) if org == self.org:
                    if slug not in self.teams:
                        return _not_found()
                    return self._membership(method, slug, login, payload)
            return _not_found()

    def _membership(self, method: str, slug: str, login: str, payload: dict[str, Any]) -> Answer:
        team = self.teams[slug]
        url = f"{self.base_url}/orgs/{self.org}/teams/{slug}/memberships/{login}"
        if method == "GET":
            if login not in team:
                return _not_found()
            return json_answer({"url": url, **team[login]})
        if method == "PUT":
            if login not in self.users:
                return _not_found()
            role = payload.get("role", "member")
            if role not in ("member", "maintainer"):
                return json_answer({"message": "Validation Failed", "status": "422"}, 422)
            state = "active" if login in self.org_members else "pending"
            team[login] = {"role": role, "state": state}
            return json_answer({"url": url, **team[login]})
        if method == "DELETE":
            team.pop(login, None)
            return 204, {}, b""
        return _not_found()

    def _installation_token(self, segments: list[str], auth: str) -> Answer:
        if len(segments) != 4 or segments[3] != "access_tokens" or not segments[2].isdigit():
            return _not_found()
        app = self.apps.get(int(segments[2]))
        scheme, _, token = auth.partition(" ")
        if app is None or scheme != "Bearer":
            return _not_found()
        app_id, public_key = app
        try:
            claims = jwt.decode(token, public_key, algorithms=["RS256"], leeway=60)
        except jwt.PyJWTError as exc:
            message = f"A JSON web token could not be decoded: {exc}"
            return json_answer({"message": message, "status": "401"}, 401)
        if str(claims.get("iss")) != app_id or claims["exp"] - claims["iat"] > 660:
            return json_answer(
                {"message": "'Issuer' or 'Expiration time' claim", "status": "401"}, 401
            )
        issued = f"ghs_installation{len(self.installation_tokens):04d}{int(time.time())}"
        self.installation_tokens.add(issued)
        expires = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
        body = {
            "token": issued,
            "expires_at": expires,
            "permissions": {"members": "write"},
            "repository_selection": "all",
        }
        return json_answer(body, 201)


def _not_found() -> Answer:
    return json_answer({"message": "Not Found", "documentation_url": DOCS, "status": "404"}, 404)
