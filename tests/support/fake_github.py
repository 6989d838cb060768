"""A fake GitHub REST API over HTTPS with GitHub's wire format for team memberships:
`GET/PUT/DELETE /orgs/{org}/teams/{slug}/memberships/{username}` and `GET
/orgs/{org}/teams/{slug}`, `Authorization: token|Bearer <token>`, JSON error bodies with
`message` and `documentation_url`, and a *pending* membership (an invitation) for someone who
is not yet a member of the organization."""

from __future__ import annotations

import json
import threading
from typing import Any
from urllib.parse import unquote, urlsplit

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
        self._lock = threading.Lock()

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
            if auth not in (f"token {self.token}", f"Bearer {self.token}"):
                return json_answer(
                    {"message": "Bad credentials", "documentation_url": DOCS, "status": "401"},
                    401,
                )
            segments = [unquote(s) for s in urlsplit(path).path.split("/") if s]
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


def _not_found() -> Answer:
    return json_answer({"message": "Not Found", "documentation_url": DOCS, "status": "404"}, 404)
