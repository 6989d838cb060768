"""The PagerDuty on-call check, through the real `pagerduty` client, against the HTTPS fake.

Run with `-p tests.support.pagerduty_fixtures` until the main conftest registers the plugin.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pagerduty
import pytest
from pagerduty import RestApiV2Client

from app.oncall import OnCallEvidence, OnCallResult
from app.oncall.pagerduty import PagerDutyOnCall, make_pagerduty_client
from app.workflows.model import OnCall
from tests.support.fake_pagerduty import FakePagerDuty

BOB = "PBOB001"
BOB_EMAIL = "bob@example.com"
PAYMENTS = "PEPPAY1"
PAYMENTS_WEEKLY = "PSCHPAY"
SEARCH = "PEPSRCH"
SEARCH_ROTA = "PSCHSRC"


class FakeClock:
    """Starts at the real time (the fake's shifts are around it); moves only when told."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, by: timedelta) -> None:
        self.now += by


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def fake(fake_pagerduty: FakePagerDuty) -> FakePagerDuty:
    fake_pagerduty.add_user(BOB, BOB_EMAIL, "Bob Oncall")
    return fake_pagerduty


@pytest.fixture
def checker(pagerduty_client: RestApiV2Client, clock: FakeClock) -> Iterator[PagerDutyOnCall]:
    checker = PagerDutyOnCall(pagerduty_client, clock=clock)
    yield checker
    checker.close()


@pytest.fixture
def checker_for(clock: FakeClock) -> Iterator[Callable[[str, str], PagerDutyOnCall]]:
    """Checkers with their own client (token, base URL); closed after the test."""
    made: list[tuple[PagerDutyOnCall, RestApiV2Client]] = []

    def make(token: str, base_url: str) -> PagerDutyOnCall:
        client = make_pagerduty_client(token, base_url)
        made.append((PagerDutyOnCall(client, clock=clock), client))
        return made[-1][0]

    yield make
    for checker, client in made:
        checker.close()
        client.close()


def on_payments(fake: FakePagerDuty, level: int = 1, user_id: str = BOB) -> None:
    fake.add_oncall(user_id, PAYMENTS, "Payments", level, PAYMENTS_WEEKLY, "Payments Weekly")


def timed_check(checker: PagerDutyOnCall, email: str, rule: OnCall) -> tuple[OnCallResult, float]:
    started = time.monotonic()
    result = checker.check(email, rule)
    return result, time.monotonic() - started


# -- deciding -------------------------------------------------------------------------------------


def test_on_call_at_level_1_with_a_level_1_rule_is_on_call(
    fake: FakePagerDuty, checker: PagerDutyOnCall
) -> None:
    on_payments(fake, level=1)

    result = checker.check(BOB_EMAIL, OnCall(escalation_level=1))

    assert result.on_call is True
    assert result.reason == "on call: Payments (level 1, schedule Payments Weekly)"
    assert result.pagerduty_user_id == BOB
    [evidence] = result.evidence
    assert evidence == OnCallEvidence(
        escalation_policy_id=PAYMENTS,
        escalation_policy_name="Payments",
        escalation_level=1,
        schedule_id=PAYMENTS_WEEKLY,
        schedule_name="Payments Weekly",
        start=evidence.start,
        end=evidence.end,
    )
    assert evidence.start is not None and evidence.start.endswith("Z")
    assert evidence.end is not None and evidence.end.endswith("Z")


def test_level_2_with_a_level_1_rule_is_not_on_call(
    fake: FakePagerDuty, checker: PagerDutyOnCall
) -> None:
    on_payments(fake, level=2)

    result = checker.check(BOB_EMAIL, OnCall(escalation_level=1))

    assert result == OnCallResult(
        on_call=False,
        reason="not on call at escalation level 1 or nearer",
        pagerduty_user_id=BOB,
    )


def test_a_nearer_level_than_the_rule_asks_counts(
    fake: FakePagerDuty, checker: PagerDutyOnCall
) -> None:
    on_payments(fake, level=1)

    assert checker.check(BOB_EMAIL, OnCall(escalation_level=2)).on_call is True


def test_off_shift_is_not_on_call(fake: FakePagerDuty, checker: PagerDutyOnCall) -> None:
    result = checker.check(BOB_EMAIL, OnCall())

    assert result.on_call is False
    assert result.reason == "not on call at escalation level 1 or nearer"
    assert result.evidence == ()


def test_directly_on_a_policy_counts_as_permanent_on_call(
    fake: FakePagerDuty, checker: PagerDutyOnCall
) -> None:
    fake.add_oncall(BOB, SEARCH, "Search", 1)

    result = checker.check(BOB_EMAIL, OnCall())

    assert result.on_call is True
    assert result.reason == "on call: Search (level 1, directly on the escalation policy)"
    assert (result.evidence[0].start, result.evidence[0].end) == (None, None)


def test_a_shift_that_ended_since_pagerduty_answered_does_not_count(
    fake: FakePagerDuty, checker: PagerDutyOnCall, clock: FakeClock
) -> None:
    now = datetime.now(UTC)
    fake.add_oncall(
        BOB, PAYMENTS, "Payments", 1, PAYMENTS_WEEKLY, "Payments Weekly",
        start=now - timedelta(hours=8), end=now + timedelta(seconds=10),
    )  # fmt: skip
    assert checker.check(BOB_EMAIL, OnCall()).on_call is True

    clock.advance(timedelta(seconds=20))  # still within the on-call cache TTL

    assert checker.check(BOB_EMAIL, OnCall()).on_call is False
    assert len(fake.requests_to("/oncalls")) == 1


# -- matching the Slack email to a PagerDuty user -------------------------------------------------


def test_unknown_email_is_not_on_call(fake: FakePagerDuty, checker: PagerDutyOnCall) -> None:
    result = checker.check("nobody@example.com", OnCall())

    assert result == OnCallResult(False, "no PagerDuty user has the email nobody@example.com")
    assert fake.requests_to("/oncalls") == []


def test_an_email_that_is_only_part_of_another_users_email_is_not_matched(
    fake_pagerduty: FakePagerDuty, checker: PagerDutyOnCall
) -> None:
    fake_pagerduty.add_user("PAU", "bob@example.com.au", "Bob Down Under")
    fake_pagerduty.add_user("PJIM", "jimbob@example.com", "Jim Bob")
    on_payments(fake_pagerduty, user_id="PAU")
    on_payments(fake_pagerduty, user_id="PJIM")

    result = checker.check(BOB_EMAIL, OnCall())

    assert [r.params["query"] for r in fake_pagerduty.requests_to("/users")] == [[BOB_EMAIL]]
    assert result == OnCallResult(False, "no PagerDuty user has the email bob@example.com")


def test_the_exact_user_is_picked_among_partial_matches(
    fake: FakePagerDuty, checker: PagerDutyOnCall
) -> None:
    fake.add_user("PAU", "bob@example.com.au", "Bob Down Under")
    fake.add_user("PJIM", "jimbob@example.com", "Jim Bob")
    on_payments(fake, user_id="PJIM")

    result = checker.check(BOB_EMAIL, OnCall())

    assert (result.on_call, result.pagerduty_user_id) == (False, BOB)


def test_the_email_match_ignores_case(fake: FakePagerDuty, checker: PagerDutyOnCall) -> None:
    fake.add_user("PCASE", "Carol.Case@Example.COM", "Carol Case")
    on_payments(fake, user_id="PCASE")

    result = checker.check("carol.case@example.com", OnCall())

    assert (result.on_call, result.pagerduty_user_id) == (True, "PCASE")


def test_users_are_paginated_until_the_match_on_a_later_page(
    fake_pagerduty: FakePagerDuty, checker: PagerDutyOnCall
) -> None:
    for n in range(150):  # `query` matches these too: the target's email is part of theirs
        fake_pagerduty.add_user(f"PT{n:03}", f"team{n:03}-ops@corp.example.com", f"Team {n}")
    fake_pagerduty.add_user("POPS", "ops@corp.example.com", "Ops")
    on_payments(fake_pagerduty, user_id="POPS")

    result = checker.check("ops@corp.example.com", OnCall())

    assert (result.on_call, result.pagerduty_user_id) == (True, "POPS")
    pages = [(r.params["offset"], r.params["limit"]) for r in fake_pagerduty.requests_to("/users")]
    assert pages == [(["0"], ["100"]), (["100"], ["100"])]


def test_no_email_is_not_on_call_without_asking(
    fake: FakePagerDuty, checker: PagerDutyOnCall
) -> None:
    assert checker.check("  ", OnCall()).on_call is False
    assert fake.requests == []


# -- filters --------------------------------------------------------------------------------------


def test_policy_and_schedule_filters_go_on_the_wire_and_are_honoured(
    fake: FakePagerDuty, checker: PagerDutyOnCall, clock: FakeClock
) -> None:
    fake.add_oncall(BOB, SEARCH, "Search", 1, SEARCH_ROTA, "Search Rota")
    rule = OnCall(escalation_policy_ids=[PAYMENTS], schedule_ids=[PAYMENTS_WEEKLY])

    assert checker.check(BOB_EMAIL, rule).on_call is False
    [request] = fake.requests_to("/oncalls")
    assert request.params["user_ids[]"] == [BOB]
    assert request.params["escalation_policy_ids[]"] == [PAYMENTS]
    assert request.params["schedule_ids[]"] == [PAYMENTS_WEEKLY]

    on_payments(fake)
    clock.advance(timedelta(seconds=31))
    result = checker.check(BOB_EMAIL, rule)
    assert result.on_call is True
    assert [e.escalation_policy_id for e in result.evidence] == [PAYMENTS]


def test_without_filters_only_the_user_filter_is_sent(
    fake: FakePagerDuty, checker: PagerDutyOnCall
) -> None:
    checker.check(BOB_EMAIL, OnCall())

    [request] = fake.requests_to("/oncalls")
    assert request.params["user_ids[]"] == [BOB]
    assert "escalation_policy_ids[]" not in request.params
    assert "schedule_ids[]" not in request.params


def test_filters_hold_even_if_pagerduty_ignored_them(
    fake: FakePagerDuty, checker: PagerDutyOnCall
) -> None:
    fake.add_user("PEVE", "eve@example.com", "Eve")
    fake.honour_filters = False
    on_payments(fake, user_id="PEVE")  # someone else
    fake.add_oncall(BOB, SEARCH, "Search", 1, SEARCH_ROTA, "Search Rota")  # other policy
    fake.add_oncall(BOB, PAYMENTS, "Payments", 1)  # on the policy, not on the schedule
    on_payments(fake, level=3)  # too far
    rule = OnCall(escalation_policy_ids=[PAYMENTS], schedule_ids=[PAYMENTS_WEEKLY])

    result = checker.check(BOB_EMAIL, rule)

    assert result.on_call is False


def test_on_the_policy_without_a_schedule_counts_only_without_a_schedule_filter(
    fake: FakePagerDuty, checker: PagerDutyOnCall
) -> None:
    fake.honour_filters = False
    fake.add_oncall(BOB, PAYMENTS, "Payments", 1)

    assert checker.check(BOB_EMAIL, OnCall(escalation_policy_ids=[PAYMENTS])).on_call is True
    assert checker.check(BOB_EMAIL, OnCall(schedule_ids=[PAYMENTS_WEEKLY])).on_call is False


# -- failing closed -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 503])
def test_a_server_error_is_undecided(
    fake: FakePagerDuty, checker: PagerDutyOnCall, status: int
) -> None:
    on_payments(fake)
    fake.forced_statuses.extend([status, status])  # the client retries once

    result = checker.check(BOB_EMAIL, OnCall())

    assert result == OnCallResult(None, f"PagerDuty answered {status}")


def test_a_single_server_error_is_retried_once(
    fake: FakePagerDuty, checker: PagerDutyOnCall
) -> None:
    on_payments(fake)
    fake.forced_statuses.append(503)

    assert checker.check(BOB_EMAIL, OnCall()).on_call is True
    assert len(fake.requests_to("/users")) == 2


def test_an_error_on_the_oncalls_request_is_undecided(
    fake: FakePagerDuty, checker: PagerDutyOnCall
) -> None:
    on_payments(fake)
    assert checker.check(BOB_EMAIL, OnCall(schedule_ids=[SEARCH_ROTA])).on_call is False
    fake.forced_statuses.extend([502, 502])

    result = checker.check(BOB_EMAIL, OnCall())  # the user is cached: this asks /oncalls

    assert result == OnCallResult(None, "PagerDuty answered 502")


def test_pagerduty_too_slow_is_undecided_at_the_deadline(
    fake: FakePagerDuty, checker: PagerDutyOnCall
) -> None:
    on_payments(fake)
    fake.delay = 5

    result, elapsed = timed_check(checker, BOB_EMAIL, OnCall())

    assert result == OnCallResult(None, "PagerDuty did not answer within 2 s")
    assert elapsed < 2.5


def test_an_endless_429_is_undecided_quickly(fake: FakePagerDuty, checker: PagerDutyOnCall) -> None:
    fake.always_429 = True

    result, elapsed = timed_check(checker, BOB_EMAIL, OnCall())

    assert result.on_call is None
    assert "rate limit" in result.reason
    assert elapsed < 2.5
    assert len(fake.requests) == 2  # one retry, then give up


@pytest.mark.parametrize(
    "body",
    [
        b"<html>gateway hiccup</html>",
        b"",
        b"[]",
        b'{"users": null, "limit": 100, "offset": 0, "more": false}',
        b'{"users": [{"id": "PBOB001"}], "limit": 100, "offset": 0, "more": false}',
        b'{"users": [], "limit": 100, "offset": 0, "more": true}',  # would page forever
    ],
)
def test_an_unreadable_page_is_undecided(
    fake: FakePagerDuty, checker: PagerDutyOnCall, body: bytes
) -> None:
    fake.forced_bodies.append(body)

    result = checker.check(BOB_EMAIL, OnCall())

    assert result == OnCallResult(None, "PagerDuty sent an answer that could not be read")
    assert len(fake.requests) == 1


def test_an_oncall_entry_of_the_wrong_shape_is_undecided(
    fake: FakePagerDuty, checker: PagerDutyOnCall
) -> None:
    assert checker.check(BOB_EMAIL, OnCall(schedule_ids=[SEARCH_ROTA])).on_call is False
    fake.forced_bodies.append(
        b'{"oncalls": [{"escalation_level": "1"}], "limit": 100, "offset": 0, "more": false}'
    )

    assert checker.check(BOB_EMAIL, OnCall()).on_call is None


def test_a_wrong_token_is_undecided(
    fake_pagerduty: FakePagerDuty, checker_for: Callable[[str, str], PagerDutyOnCall]
) -> None:
    checker = checker_for("wrong-token", fake_pagerduty.base_url)

    result = checker.check(BOB_EMAIL, OnCall())

    assert result == OnCallResult(None, "PagerDuty rejected the API token (401)")


def test_an_unreachable_pagerduty_is_undecided(
    checker_for: Callable[[str, str], PagerDutyOnCall],
) -> None:
    with socket.socket() as bound_not_listening:  # connecting to it is refused
        bound_not_listening.bind(("127.0.0.1", 0))
        port = bound_not_listening.getsockname()[1]
        checker = checker_for("token", f"https://127.0.0.1:{port}")

        result, elapsed = timed_check(checker, BOB_EMAIL, OnCall())

    assert result == OnCallResult(None, "could not reach PagerDuty (ConnectError)")
    assert elapsed < 2.5


def test_an_undecided_answer_is_not_cached(fake: FakePagerDuty, checker: PagerDutyOnCall) -> None:
    on_payments(fake)
    fake.forced_statuses.extend([500, 500])
    assert checker.check(BOB_EMAIL, OnCall()).on_call is None

    assert checker.check(BOB_EMAIL, OnCall()).on_call is True


# -- caching --------------------------------------------------------------------------------------


def test_the_user_mapping_is_cached(
    fake: FakePagerDuty, checker: PagerDutyOnCall, clock: FakeClock
) -> None:
    checker.check(BOB_EMAIL, OnCall())
    clock.advance(timedelta(minutes=5))  # past the on-call TTL, well within the user TTL

    checker.check(BOB_EMAIL.upper(), OnCall())

    assert len(fake.requests_to("/users")) == 1
    assert len(fake.requests_to("/oncalls")) == 2


def test_no_such_user_is_cached_too(fake: FakePagerDuty, checker: PagerDutyOnCall) -> None:
    checker.check("nobody@example.com", OnCall())
    checker.check("nobody@example.com", OnCall())

    assert len(fake.requests_to("/users")) == 1


def test_the_user_mapping_expires(
    fake: FakePagerDuty, checker: PagerDutyOnCall, clock: FakeClock
) -> None:
    checker.check(BOB_EMAIL, OnCall())
    clock.advance(timedelta(hours=6, seconds=1))

    checker.check(BOB_EMAIL, OnCall())

    assert len(fake.requests_to("/users")) == 2


def test_the_oncall_answer_is_cached_within_the_ttl_and_refetched_after(
    fake: FakePagerDuty, checker: PagerDutyOnCall, clock: FakeClock
) -> None:
    on_payments(fake)
    assert checker.check(BOB_EMAIL, OnCall()).on_call is True
    fake.clear_oncalls()  # the shift is over in PagerDuty

    clock.advance(timedelta(seconds=29))
    assert checker.check(BOB_EMAIL, OnCall()).on_call is True  # still the cached answer
    assert len(fake.requests_to("/oncalls")) == 1

    clock.advance(timedelta(seconds=2))
    assert checker.check(BOB_EMAIL, OnCall()).on_call is False
    assert len(fake.requests_to("/oncalls")) == 2


def test_answers_for_different_filters_are_cached_apart(
    fake: FakePagerDuty, checker: PagerDutyOnCall
) -> None:
    on_payments(fake)

    assert checker.check(BOB_EMAIL, OnCall(schedule_ids=[SEARCH_ROTA])).on_call is False
    assert checker.check(BOB_EMAIL, OnCall()).on_call is True
    assert len(fake.requests_to("/oncalls")) == 2


@pytest.mark.parametrize("ttl", [timedelta(seconds=61), timedelta(hours=1), timedelta(seconds=-1)])
def test_an_oncall_cache_ttl_outside_a_minute_is_refused(
    pagerduty_client: RestApiV2Client, ttl: timedelta
) -> None:
    with pytest.raises(ValueError, match="oncall_cache_ttl"):
        PagerDutyOnCall(pagerduty_client, oncall_cache_ttl=ttl)


# -- the client -----------------------------------------------------------------------------------


def test_requests_carry_the_token_and_the_v2_accept_header(
    fake: FakePagerDuty, checker: PagerDutyOnCall
) -> None:
    checker.check(BOB_EMAIL, OnCall())

    assert fake.requests
    for request in fake.requests:
        assert request.headers["authorization"] == f"Token token={fake.token}"
        assert request.headers["accept"] == "application/vnd.pagerduty+json;version=2"


def test_the_client_is_bounded(pagerduty_client: RestApiV2Client) -> None:
    assert pagerduty_client.retry == {429: 1, 500: 1, 502: 1, 503: 1, 504: 1}
    assert pagerduty_client.max_http_attempts == 0
    assert pagerduty_client.max_network_attempts == 1
    assert pagerduty_client.sleep_timer == 0.1
    assert pagerduty_client.timeout == 1.5


def test_the_client_refuses_a_plain_http_url() -> None:
    with pytest.raises(pagerduty.UrlError, match=r"https://.*'http://127\.0\.0\.1:8080'"):
        make_pagerduty_client("token", "http://127.0.0.1:8080")
