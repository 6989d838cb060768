"""The on-call check against PagerDuty's REST API v2, bounded in time and failing closed.

Two look-ups: the requester's Slack email to a PagerDuty user (`GET /users?query=`, exact
case-insensitive match on `email`), then that user's current on-call entries (`GET /oncalls`).
Any vendor trouble (HTTP error, rate limit, bad JSON, network, slowness) gives
`on_call=None`, never an exception and never a grant.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Generic, TypeVar

import httpx2
import pagerduty
from pagerduty import RestApiV2Client

from app.oncall import OnCallEvidence, OnCallResult
from app.workflows.model import OnCall

log = logging.getLogger(__name__)

MAX_ONCALL_CACHE_TTL = timedelta(seconds=60)
_RETRIED_STATUSES = (429, 500, 502, 503, 504)
_WORKERS = 8
_PAGE_SIZE = 100  # PagerDuty's largest `limit`

_OnCallKey = tuple[str, frozenset[str], frozenset[str]]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


def make_pagerduty_client(
    api_token: str, base_url: str, *, timeout: float = 1.5
) -> RestApiV2Client:
    """A REST API v2 client whose every request is bounded: few retries, short sleeps.

    Out of the box the client retries a 429 without end (sleeping 3 s, 6 s, 12 s, ...), lets
    each request wait 60 s and makes three more attempts after a network error. Here a request
    makes at most one retry after an HTTP 429/5xx and at most one after a network error,
    sleeping 0.2 s then 0.4 s, and each network wait is capped at `timeout` seconds. The
    checker's `deadline` bounds the whole check on top of this.
    """
    try:
        client = RestApiV2Client(api_token, base_url=base_url)
    except pagerduty.UrlError as error:
        raise pagerduty.UrlError(
            f"the PagerDuty base URL must start with https:// (got {base_url!r})"
        ) from error
    # A status missing from `retry` (value 0) means "retry 429 forever", so name every one.
    client.retry = dict.fromkeys(_RETRIED_STATUSES, 1)
    # The library checks `sum(retries so far) > max_http_attempts` before retrying, so 0 allows
    # exactly one HTTP retry per request in total, whatever the mix of statuses.
    client.max_http_attempts = 0
    # Counts retries, not attempts: one retry after a network error (e.g. a stale connection).
    client.max_network_attempts = 1
    client.sleep_timer = 0.1  # doubled before each sleep: 0.2 s, then 0.4 s
    client.stagger_cooldown = 0
    client.timeout = timeout  # sent with each request as httpx2's connect/read/write/pool timeout
    return client


def _utc_now() -> datetime:
    return datetime.now(UTC)


class _Undecided(Exception):
    """The check cannot be decided; `reason` says why, in one human sentence."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class _UserMatch:
    user_id: str | None  # None: no PagerDuty user has this email


@dataclass(frozen=True)
class _Shift:
    """One entry of `GET /oncalls`, parsed."""

    user_id: str
    evidence: OnCallEvidence
    ends_at: datetime | None


@dataclass(frozen=True)
class _Expiring(Generic[V]):
    value: V
    expires_at: datetime


class _TtlCache(Generic[K, V]):
    """A thread-safe map whose entries expire `ttl` after they were stored, by `clock`."""

    _PRUNE_ABOVE = 1024

    def __init__(self, ttl: timedelta, clock: Callable[[], datetime]) -> None:
        self._ttl = ttl
        self._clock = clock
        self._entries: dict[K, _Expiring[V]] = {}
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or now >= entry.expires_at:
                self._entries.pop(key, None)
                return None
            return entry.value

    def put(self, key: K, value: V) -> None:
        now = self._clock()
        with self._lock:
            if len(self._entries) >= self._PRUNE_ABOVE:
                self._prune(now)
            self._entries[key] = _Expiring(value, now + self._ttl)

    def _prune(self, now: datetime) -> None:
        for key in [k for k, entry in self._entries.items() if now >= entry.expires_at]:
            del self._entries[key]


class PagerDutyOnCall:
    """`OnCallChecker` asking PagerDuty, with caches and an overall deadline per check."""

    def __init__(
        self,
        client: RestApiV2Client,
        *,
        clock: Callable[[], datetime] = _utc_now,
        user_cache_ttl: timedelta = timedelta(hours=6),
        oncall_cache_ttl: timedelta = timedelta(seconds=30),
        deadline: float = 2.0,
    ) -> None:
        if not timedelta(0) <= oncall_cache_ttl <= MAX_ONCALL_CACHE_TTL:
            raise ValueError(
                f"oncall_cache_ttl must be between 0 and {MAX_ONCALL_CACHE_TTL.seconds} s so an "
                f"ended shift stops counting within a minute (got {oncall_cache_ttl})"
            )
        if user_cache_ttl < timedelta(0):
            raise ValueError(f"user_cache_ttl must not be negative (got {user_cache_ttl})")
        if deadline <= 0:
            raise ValueError(f"deadline must be positive (got {deadline})")
        self._client = client
        self._clock = clock
        self._deadline = deadline
        self._users: _TtlCache[str, _UserMatch] = _TtlCache(user_cache_ttl, clock)
        self._oncalls: _TtlCache[_OnCallKey, tuple[_Shift, ...]] = _TtlCache(
            oncall_cache_ttl, clock
        )
        self._pool = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="pagerduty")

    def check(self, email: str, rule: OnCall) -> OnCallResult:
        address = email.strip()
        if not address:
            return OnCallResult(False, "no email address to look up in PagerDuty")
        result = self._cached_result(address, rule)
        if result is None:
            result = self._fetched_result(address, rule)
        _log_result(address, result)
        return result

    def close(self) -> None:
        """Stop the worker threads; a check still waiting on PagerDuty is abandoned."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    # -- answers from the caches only, in the caller's thread ---------------------------------

    def _cached_result(self, address: str, rule: OnCall) -> OnCallResult | None:
        match = self._users.get(address.lower())
        if match is None:
            return None
        if match.user_id is None:
            return _no_such_user(address)
        shifts = self._oncalls.get(_oncall_key(match.user_id, rule))
        if shifts is None:
            return None
        return _decide(match.user_id, shifts, rule, self._clock())

    # -- answers that need PagerDuty, in a worker thread under the deadline -------------------

    def _fetched_result(self, address: str, rule: OnCall) -> OnCallResult:
        give_up_at = time.monotonic() + self._deadline
        future = self._pool.submit(self._ask_pagerduty, address, rule, give_up_at)
        try:
            return future.result(timeout=self._deadline)
        except FutureTimeout:
            future.cancel()
            return OnCallResult(None, self._too_slow_reason())

    def _ask_pagerduty(self, address: str, rule: OnCall, give_up_at: float) -> OnCallResult:
        try:
            user_id = self._user_id(address, give_up_at)
            if user_id is None:
                return _no_such_user(address)
            shifts = self._shifts(user_id, rule, give_up_at)
        except _Undecided as undecided:
            return OnCallResult(None, undecided.reason)
        return _decide(user_id, shifts, rule, self._clock())

    def _user_id(self, address: str, give_up_at: float) -> str | None:
        key = address.lower()
        match = self._users.get(key)
        if match is None:
            users = self._list_all("users", {"query": address}, give_up_at)
            match = _UserMatch(_exact_email_match(users, address))
            self._users.put(key, match)
        return match.user_id

    def _shifts(self, user_id: str, rule: OnCall, give_up_at: float) -> tuple[_Shift, ...]:
        key = _oncall_key(user_id, rule)
        shifts = self._oncalls.get(key)
        if shifts is None:
            entries = self._list_all("oncalls", _oncall_params(user_id, rule), give_up_at)
            shifts = tuple(_parse_shift(entry) for entry in entries)
            self._oncalls.put(key, shifts)
        return shifts

    def _list_all(self, collection: str, params: dict[str, Any], give_up_at: float) -> list[Any]:
        """Every item of an index with classic pagination (`limit`, `offset`, `more`).

        Not `iter_all`: this checks the deadline before each page, so an abandoned check stops
        asking, and a page that says `more` but is empty cannot make it ask forever.
        """
        items: list[Any] = []
        while True:
            if time.monotonic() > give_up_at:
                raise _Undecided(self._too_slow_reason())
            page_params = {**params, "limit": _PAGE_SIZE, "offset": len(items)}
            page = self._get(f"/{collection}", page_params)
            found = _field(page, collection, list)
            items.extend(found)
            if page.get("more") is not True:
                return items
            if not found:
                raise _Undecided(_MALFORMED)

    def _get(self, path: str, params: dict[str, Any]) -> Any:
        """The vendor boundary: every PagerDuty or transport failure becomes `_Undecided`."""
        try:
            return self._client.jget(path, params=params)
        except pagerduty.HttpError as error:
            raise _Undecided(_http_error_reason(error.response)) from error
        except pagerduty.Error as error:
            cause = error.__cause__ or error
            raise _Undecided(f"could not reach PagerDuty ({type(cause).__name__})") from error
        except httpx2.HTTPError as error:
            raise _Undecided(f"could not reach PagerDuty ({type(error).__name__})") from error

    def _too_slow_reason(self) -> str:
        return f"PagerDuty did not answer within {self._deadline:g} s"


# -- the PagerDuty wire format ------------------------------------------------------------------

_MALFORMED = "PagerDuty sent an answer that could not be read"


def _oncall_params(user_id: str, rule: OnCall) -> dict[str, Any]:
    """Query parameters for `GET /oncalls`; the client turns `user_ids` into `user_ids[]`."""
    params: dict[str, Any] = {"user_ids": [user_id]}
    if rule.escalation_policy_ids:
        params["escalation_policy_ids"] = list(rule.escalation_policy_ids)
    if rule.schedule_ids:
        params["schedule_ids"] = list(rule.schedule_ids)
    return params


def _oncall_key(user_id: str, rule: OnCall) -> _OnCallKey:
    """What the answer of `GET /oncalls` depends on; the level is applied afterwards."""
    return (user_id, frozenset(rule.escalation_policy_ids), frozenset(rule.schedule_ids))


def _http_error_reason(response: httpx2.Response) -> str:
    status = response.status_code
    if status == 429:
        return "PagerDuty rate limited the check (429)"
    if status == 401:
        return "PagerDuty rejected the API token (401)"
    if response.is_success:
        return _MALFORMED
    return f"PagerDuty answered {status}"


def _exact_email_match(users: Iterable[Any], address: str) -> str | None:
    """The id of the user whose email is `address`, ignoring case; `query` also finds others."""
    wanted = address.lower()  # not casefold(): "ß" must not match "ss"
    for user in users:
        email = _field(user, "email", str)
        if email.lower() == wanted:
            return _field(user, "id", str)
    return None


def _parse_shift(entry: Any) -> _Shift:
    policy = _field(entry, "escalation_policy", dict)
    schedule = _optional_field(entry, "schedule", dict)
    start = _optional_field(entry, "start", str)
    end = _optional_field(entry, "end", str)
    evidence = OnCallEvidence(
        escalation_policy_id=_field(policy, "id", str),
        escalation_policy_name=_summary(policy),
        escalation_level=_level(entry),
        schedule_id=None if schedule is None else _field(schedule, "id", str),
        schedule_name=None if schedule is None else _summary(schedule),
        start=start,
        end=end,
    )
    user_id = _field(_field(entry, "user", dict), "id", str)
    return _Shift(user_id, evidence, None if end is None else _parse_time(end))


def _level(entry: Any) -> int:
    level = _field(entry, "escalation_level", int)
    if isinstance(level, bool):
        raise _Undecided(_MALFORMED)
    return level


def _summary(reference: dict[str, Any]) -> str:
    summary = reference.get("summary")
    return summary if isinstance(summary, str) else _field(reference, "id", str)


T = TypeVar("T")


def _field(mapping: Any, key: str, kind: type[T]) -> T:
    value = mapping.get(key) if isinstance(mapping, dict) else None
    if not isinstance(value, kind):
        raise _Undecided(_MALFORMED)
    return value


def _optional_field(mapping: Any, key: str, kind: type[T]) -> T | None:
    if not isinstance(mapping, dict):
        raise _Undecided(_MALFORMED)
    return None if mapping.get(key) is None else _field(mapping, key, kind)


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as error:
        raise _Undecided(_MALFORMED) from error
    if moment.tzinfo is None:
        raise _Undecided(_MALFORMED)
    return moment


# -- the decision -------------------------------------------------------------------------------


def _decide(user_id: str, shifts: Sequence[_Shift], rule: OnCall, now: datetime) -> OnCallResult:
    qualifying = dict.fromkeys(s.evidence for s in shifts if _counts(s, user_id, rule, now))
    if not qualifying:
        reason = f"not on call at escalation level {rule.escalation_level} or nearer"
        return OnCallResult(False, reason, pagerduty_user_id=user_id)
    evidence = tuple(
        sorted(qualifying, key=lambda e: (e.escalation_level, e.escalation_policy_name))
    )
    return OnCallResult(True, _on_call_reason(evidence[0]), evidence, user_id)


def _counts(shift: _Shift, user_id: str, rule: OnCall, now: datetime) -> bool:
    """Every filter again, here: PagerDuty might have ignored a query parameter."""
    found = shift.evidence
    return (
        shift.user_id == user_id
        and 1 <= found.escalation_level <= rule.escalation_level
        and (
            not rule.escalation_policy_ids
            or found.escalation_policy_id in rule.escalation_policy_ids
        )
        # An entry with no schedule (directly on the policy) never matches a schedule filter.
        and (not rule.schedule_ids or found.schedule_id in rule.schedule_ids)
        # A cached answer may hold a shift that has ended since PagerDuty gave it.
        and (shift.ends_at is None or now < shift.ends_at)
    )


def _on_call_reason(evidence: OnCallEvidence) -> str:
    via = (
        f"schedule {evidence.schedule_name}"
        if evidence.schedule_name is not None
        else "directly on the escalation policy"
    )
    return f"on call: {evidence.escalation_policy_name} (level {evidence.escalation_level}, {via})"


def _no_such_user(address: str) -> OnCallResult:
    return OnCallResult(False, f"no PagerDuty user has the email {address}")


def _log_result(address: str, result: OnCallResult) -> None:
    if result.on_call is None:
        log.warning("on-call check for %s undecided: %s", address, result.reason)
    else:
        log.info("on-call check for %s: %s", address, result.reason)
