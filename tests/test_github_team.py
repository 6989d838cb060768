"""GitHubTeam (through githubkit) against a fake GitHub REST API over HTTPS."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest

from app.grants.base import GrantError, GrantUser, Retry
from app.testing import check_strategy, grant_context
from app.workflows import Env, GitHubApp, GitHubTeam
from tests.support.fake_github import TOKEN, FakeGitHub
from tests.support.through_slack import approve, target_bot, wait_ended

ORG, TEAM = "acme", "prod-deployers"
LOGINS = {"U0TESTUSER": "alice-gh", "alice@example.com": "alice-gh", "UREQUESTER": "alice-gh"}


@pytest.fixture
def github(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGitHub]:
    fake = FakeGitHub(ORG)
    fake.trust(monkeypatch)
    monkeypatch.setenv("GITHUB_TOKEN", TOKEN)
    fake.add_team(TEAM)
    fake.add_user("alice-gh")
    fake.start()
    yield fake
    fake.stop()


def strategy(github: FakeGitHub, **kwargs: object) -> GitHubTeam:
    options: dict[str, object] = {
        "org": ORG,
        "team": TEAM,
        "logins": LOGINS,
        "base_url": github.base_url,
        **kwargs,
    }
    return GitHubTeam(**options)  # type: ignore[arg-type]


def test_keeps_the_strategy_contract(github: FakeGitHub) -> None:
    problems = check_strategy(
        strategy(github),
        grant_context(),
        has_access=lambda: github.state(TEAM, "alice-gh") == "active",
        failing=[
            (strategy(github, logins={"U0TESTUSER": "no-such-user"}), grant_context()),
            (strategy(github, team="no-such-team"), grant_context()),
            (strategy(github, token="wrong"), grant_context()),
            (strategy(github, logins={}), grant_context()),
        ],
    )
    assert problems == []


def test_membership_held_before_is_reported_and_left_alone(github: FakeGitHub) -> None:
    github.teams[TEAM]["alice-gh"] = {"role": "maintainer", "state": "active"}
    granted = strategy(github).grant(grant_context())
    assert granted.already_had
    assert [m for m, _, _ in github.requests] == ["GET"]  # no PUT: her maintainer role stays
    assert github.teams[TEAM]["alice-gh"]["role"] == "maintainer"


def test_pending_invitation_is_reported_not_success(github: FakeGitHub) -> None:
    github.add_user("newcomer", org_member=False)
    grant = strategy(github, logins=lambda user: "newcomer")
    with pytest.raises(GrantError, match="is pending: they have been invited to the acme"):
        grant.grant(grant_context())
    assert github.state(TEAM, "newcomer") == "pending"
    grant.revoke(replace(grant_context(), event="revoke"))  # the compensating revoke
    assert github.state(TEAM, "newcomer") is None


def test_revoke_uses_the_recorded_login(github: FakeGitHub) -> None:
    context = grant_context()
    granted = strategy(github).grant(context)
    edited = strategy(github, logins={"U0TESTUSER": "someone-else"})
    edited.revoke(replace(context, event="revoke", undo=dict(granted.undo)))
    assert github.state(TEAM, "alice-gh") is None


def test_errors_are_specific_and_never_show_the_token(github: FakeGitHub) -> None:
    with pytest.raises(GrantError, match="401: Bad credentials") as raised:
        strategy(github, token="ghp_s3cret").grant(grant_context())
    assert "s3cret" not in str(raised.value)
    with pytest.raises(GrantError, match=r"no GitHub login for alice@example\.com: no entry"):
        strategy(github, logins={}).grant(grant_context())
    with pytest.raises(GrantError, match="acme/no-such-team was not found"):
        strategy(github, team="no-such-team").revoke(replace(grant_context(), event="revoke"))

    def broken(user: GrantUser) -> str:
        raise KeyError(user.slack_id)

    with pytest.raises(GrantError, match="broken: KeyError"):
        strategy(github, logins=broken).grant(grant_context())


def test_github_app_authentication(github: FakeGitHub, monkeypatch: pytest.MonkeyPatch) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    github.add_app(app_id=4242, installation_id=77, public_key_pem=public)
    monkeypatch.setenv("GITHUB_APP_PRIVATE_KEY", private)
    monkeypatch.delenv("GITHUB_TOKEN")
    app = GitHubApp(app_id=4242, installation_id=77)
    grant = strategy(github, app=app)
    assert grant.required_env() == ["GITHUB_APP_PRIVATE_KEY"]

    assert (
        check_strategy(
            grant, grant_context(), has_access=lambda: github.state(TEAM, "alice-gh") == "active"
        )
        == []
    )
    assert [p for m, p, _ in github.requests if m == "POST"] == [
        "/app/installations/77/access_tokens"  # one token, reused
    ]

    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    wrong = other_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    monkeypatch.setenv("WRONG_KEY", wrong)
    forged = strategy(github, app=GitHubApp(4242, 77, private_key=Env("WRONG_KEY")))
    with pytest.raises(GrantError, match="401"):
        forged.grant(grant_context())


def test_problems() -> None:
    assert GitHubTeam(org=ORG, team=TEAM, logins={}).problems() == []
    assert GitHubTeam(org="a/b", team="", logins={}, role="owner").problems() == [  # type: ignore[arg-type]
        "GitHub org 'a/b' is not a name (no slashes)",
        "GitHub team '' is not a name (no slashes)",
        "GitHub team role 'owner' must be 'member' or 'maintainer'",
    ]


def test_through_slack_team_member_while_granted_and_removed_at_expiry(
    github: FakeGitHub, bot_factory
) -> None:
    grant = strategy(github, retry=Retry(attempts=2, backoff=timedelta(milliseconds=200)))
    bot = target_bot(bot_factory, grant, durations=[timedelta(seconds=2)])
    request = approve(bot, timedelta(seconds=2))
    assert github.state(TEAM, "alice-gh") == "active"
    ended = wait_ended(bot, request)
    assert github.state(TEAM, "alice-gh") is None
    assert ended.undo == {"login": "alice-gh", "org": ORG, "team": TEAM}
