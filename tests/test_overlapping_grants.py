"""Overlapping grants and access held before, through Slack, against the fake Okta: a person
keeps access until their last grant ends, and never loses access they had before accessbot."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from app.core.models import GrantState
from app.grants.base import Retry
from app.workflows import OktaGroup
from tests.support.bot import REQUESTER
from tests.support.fake_okta import TOKEN, FakeOkta
from tests.support.through_slack import approve, dms, target_bot, wait_ended
from tests.support.wait import wait_until

GROUP = "00gprod0admins"
ALICE = "00ualice0001"
FAST = Retry(attempts=2, backoff=timedelta(milliseconds=200))


@pytest.fixture
def okta(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOkta]:
    fake = FakeOkta()
    fake.trust(monkeypatch)
    monkeypatch.setenv("OKTA_API_TOKEN", TOKEN)
    fake.add_user(ALICE, "alice@example.com")
    fake.add_group(GROUP)
    fake.start()
    yield fake
    fake.stop()


def okta_group(okta: FakeOkta) -> OktaGroup:
    return OktaGroup(org_url=okta.base_url, group_id=GROUP, retry=FAST)


def deletes(okta: FakeOkta) -> int:
    return len([1 for method, _ in okta.requests if method == "DELETE"])


def test_two_overlapping_grants_keep_access_until_the_later_one_ends(
    okta: FakeOkta, bot_factory
) -> None:
    bot = target_bot(
        bot_factory, okta_group(okta), durations=[timedelta(seconds=3), timedelta(seconds=8)]
    )
    short = approve(bot, timedelta(seconds=3))
    long = approve(bot, timedelta(seconds=8))
    assert ALICE in okta.members(GROUP)
    assert not bot.grant_of(long).held_before  # our own grant gave it: not "held before"

    first = wait_ended(bot, short)
    assert first.kept == "another_grant"
    assert ALICE in okta.members(GROUP) and deletes(okta) == 0
    skipped = [e for e in bot.audit(short.id) if e.event == "revoke_skipped"]
    assert [e.detail for e in skipped] == [
        {"reason": "another_grant", "covered_by": str(bot.grant_of(long).id)}
    ]
    wait_until(
        lambda: any("your access goes on under your other grant" in t for t in dms(bot)),
        what="the DM saying the access goes on",
    )
    assert bot.grant_of(long).state == GrantState.ACTIVE

    last = wait_ended(bot, long)
    assert last.kept is None
    assert ALICE not in okta.members(GROUP) and deletes(okta) == 1


def test_access_held_before_the_grant_survives_its_revoke(okta: FakeOkta, bot_factory) -> None:
    okta.add_group(GROUP, ALICE)  # she was in the group before anyone asked accessbot
    bot = target_bot(bot_factory, okta_group(okta), durations=[timedelta(seconds=2)])
    request = approve(bot, timedelta(seconds=2))
    assert bot.grant_of(request).held_before
    wait_until(
        lambda: any("You already had this access before this grant" in t for t in dms(bot)),
        what="the granted DM saying the access was there before",
    )

    ended = wait_ended(bot, request)
    assert ended.kept == "held_before"
    assert ALICE in okta.members(GROUP) and deletes(okta) == 0
    assert [e.detail for e in bot.audit(request.id) if e.event == "revoke_skipped"] == [
        {"reason": "held_before"}
    ]
    wait_until(
        lambda: any("so it was left in place" in t for t in dms(bot, REQUESTER)),
        what="the ended DM saying the access was left in place",
    )


def test_a_workflow_edit_after_the_grant_cannot_make_its_revoke_miss(
    okta: FakeOkta, bot_factory
) -> None:
    okta.add_user("00ubob000001", "bob@example.com")
    grant = okta_group(okta)
    bot = target_bot(bot_factory, grant, durations=[timedelta(seconds=2)])
    request = approve(bot, timedelta(seconds=2))
    assert ALICE in okta.members(GROUP)
    grant.users = {REQUESTER: "bob@example.com"}  # the mapping is edited while she holds it

    wait_ended(bot, request)
    assert ALICE not in okta.members(GROUP)
