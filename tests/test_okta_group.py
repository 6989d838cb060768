"""OktaGroup against a fake Okta over HTTPS that speaks Okta's wire format."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from app.grants.base import Env, GrantError, Retry
from app.testing import check_strategy, grant_context
from app.workflows import OktaGroup
from tests.support.fake_okta import TOKEN, FakeOkta
from tests.support.through_slack import approve, target_bot, wait_ended

GROUP = "00gprod0admins"
ALICE = "00ualice0001"


@pytest.fixture
def okta(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOkta]:
    fake = FakeOkta()
    fake.trust(monkeypatch)
    monkeypatch.setenv("OKTA_API_TOKEN", TOKEN)
    fake.add_user(ALICE, "alice@example.com")
    fake.add_group(GROUP)
    for n in range(5):  # other groups she is in, sorted before and after: several pages
        fake.add_group(f"00g{n:02d}other", ALICE)
    fake.start()
    yield fake
    fake.stop()


def strategy(okta: FakeOkta, **kwargs: object) -> OktaGroup:
    return OktaGroup(org_url=okta.base_url, group_id=GROUP, **kwargs)  # type: ignore[arg-type]


def test_keeps_the_strategy_contract(okta: FakeOkta) -> None:
    problems = check_strategy(
        strategy(okta),
        grant_context(email="alice@example.com"),
        has_access=lambda: ALICE in okta.members(GROUP),
        failing=[
            (strategy(okta), grant_context(email="nobody@example.com")),
            (OktaGroup(org_url=okta.base_url, group_id="00gmissing"), grant_context()),
            (strategy(okta, token="wrong-token"), grant_context()),
        ],
    )
    assert problems == []


def test_membership_held_before_is_reported_and_found_past_the_first_page(okta: FakeOkta) -> None:
    okta.add_group(GROUP, ALICE)  # sorted after the other five: on the third page of two
    granted = strategy(okta).grant(grant_context(email="alice@example.com"))
    assert granted.already_had
    assert granted.undo == {"user_id": ALICE, "group_id": GROUP}
    pages = [p for m, p in okta.requests if p.startswith(f"/api/v1/users/{ALICE}/groups")]
    assert len(pages) == 3 and "after=" in pages[-1]
    assert not [m for m, _ in okta.requests if m == "PUT"]  # nothing changed
    assert (
        check_strategy(
            strategy(okta),
            grant_context(email="alice@example.com"),
            has_access=lambda: ALICE in okta.members(GROUP),
        )
        == []
    )


def test_revoke_uses_what_the_grant_recorded_not_the_mapping(okta: FakeOkta) -> None:
    context = grant_context(email="alice@example.com")
    granted = strategy(okta).grant(context)
    assert ALICE in okta.members(GROUP)
    # The workflow's mapping changed since: revoke still removes the member it added.
    edited = strategy(okta, users={"U0TESTUSER": "someone.else@example.com"})
    from dataclasses import replace

    edited.revoke(replace(context, event="revoke", undo=dict(granted.undo)))
    assert ALICE not in okta.members(GROUP)


def test_429_waits_for_the_reset_time_then_succeeds(okta: FakeOkta) -> None:
    okta.rate_limited, okta.reset_in = 1, 2.0  # the reset header is whole seconds: 1 to 2 s
    started = time.monotonic()
    strategy(okta).grant(grant_context(email="alice@example.com"))
    assert ALICE in okta.members(GROUP)
    assert time.monotonic() - started >= 1.0  # waited for X-Rate-Limit-Reset, not hammered


def test_429_beyond_the_deadline_is_a_grant_error_at_once(okta: FakeOkta) -> None:
    okta.rate_limited, okta.reset_in = 1, 60.0
    started = time.monotonic()
    with pytest.raises(GrantError, match="rate limited by Okta"):
        strategy(okta, timeout=5).grant(grant_context(email="alice@example.com"))
    assert time.monotonic() - started < 2
    assert ALICE not in okta.members(GROUP)


def test_errors_name_the_problem_never_the_token(okta: FakeOkta) -> None:
    with pytest.raises(GrantError, match=r"no Okta user with login 'bob@example\.com'"):
        strategy(okta).grant(grant_context(email="bob@example.com"))
    with pytest.raises(GrantError, match="401: Invalid token provided") as raised:
        strategy(okta, token="s3cret-wrong").grant(grant_context(email="alice@example.com"))
    assert "s3cret" not in str(raised.value) and TOKEN not in str(raised.value)
    with pytest.raises(GrantError, match="no Okta login for U0NOMAIL: no email address"):
        strategy(okta).grant(grant_context(email=None, slack_id="U0NOMAIL"))


def test_problems_and_env() -> None:
    assert OktaGroup(org_url="https://x.okta.com", group_id="00g1").problems() == []
    assert OktaGroup(org_url="https://x.okta.com", group_id="00g1").required_env() == [
        "OKTA_API_TOKEN"
    ]
    assert OktaGroup(
        org_url="http://x",
        group_id="a/b",
        token=Env("T"),
        users=["alice"],  # type: ignore[arg-type]
    ).problems() == [
        "Okta org_url 'http://x' must start with https://",
        "Okta group_id 'a/b' is not a group id (00g...)",
        "users must be a dict (Slack user ID or email -> name) or a function of the user",
    ]


def test_through_slack_member_while_granted_and_removed_at_expiry(
    okta: FakeOkta, bot_factory
) -> None:
    grant = strategy(okta, retry=Retry(attempts=2, backoff=timedelta(milliseconds=200)))
    bot = target_bot(bot_factory, grant, durations=[timedelta(seconds=2)])
    request = approve(bot, timedelta(seconds=2))
    assert ALICE in okta.members(GROUP)
    ended = wait_ended(bot, request)
    assert ALICE not in okta.members(GROUP)
    assert ended.undo == {"user_id": ALICE, "group_id": GROUP}
