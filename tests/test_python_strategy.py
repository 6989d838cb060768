"""The Python strategy: the policy author's functions are called, and their failures contained."""

from __future__ import annotations

import functools
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from app.grants.base import GrantContext, GrantError, GrantStrategy, GrantUser, Retry
from app.grants.python import Python


def context(event: str = "grant") -> GrantContext:
    return GrantContext(
        event=event,  # type: ignore[arg-type]
        request_id=uuid.uuid4(),
        grant_id=uuid.uuid4(),
        workflow="vpn",
        resource="vpn",
        resource_name="Production VPN",
        user=GrantUser(slack_id="U0ALICE", email="alice@example.com"),
        expires_at=datetime.now(UTC) + timedelta(hours=1),
        approved_by="U0BOB",
    )


def test_grant_and_revoke_call_the_functions_with_the_context() -> None:
    calls: list[tuple[str, GrantContext]] = []
    strategy = Python(
        grant=lambda ctx: calls.append(("grant", ctx)),
        revoke=lambda ctx: calls.append(("revoke", ctx)),
    )
    granted, revoked = context("grant"), context("revoke")

    strategy.grant(granted)
    strategy.revoke(revoked)

    assert calls == [("grant", granted), ("revoke", revoked)]
    assert isinstance(strategy, GrantStrategy)
    assert strategy.grant_fn is not None and strategy.retry == Retry()


def test_retry_and_name_are_kept() -> None:
    strategy = Python(grant=print, revoke=print, name="vpn", retry=Retry(attempts=2))
    assert strategy.name == "vpn" and strategy.retry == Retry(attempts=2)


def test_exceptions_become_grant_errors_named_after_the_function() -> None:
    def add_to_vpn_group(ctx: GrantContext) -> None:
        raise ConnectionError("ldap.internal refused the connection")

    strategy = Python(grant=add_to_vpn_group, revoke=add_to_vpn_group)

    with pytest.raises(GrantError) as raised:
        strategy.grant(context())
    assert str(raised.value) == (
        "add_to_vpn_group: ConnectionError: ldap.internal refused the connection"
    )
    assert isinstance(raised.value.__cause__, ConnectionError)


def test_exceptions_become_grant_errors_named_after_the_strategy() -> None:
    def fail(ctx: GrantContext) -> None:
        raise KeyError(ctx.user.slack_id)

    strategy = Python(grant=fail, revoke=fail, name="vpn")

    with pytest.raises(GrantError, match=r"^vpn: KeyError: 'U0ALICE'$"):
        strategy.revoke(context("revoke"))


def test_async_functions_are_not_silently_skipped() -> None:
    async def open_vpn(ctx: GrantContext) -> None:
        raise AssertionError("never awaited")

    strategy = Python(grant=open_vpn, revoke=lambda ctx: None)

    with pytest.raises(GrantError, match="open_vpn: returned an awaitable"):
        strategy.grant(context())
    assert strategy.problems() == ["grant open_vpn is async; give a plain function"]


def test_problems_flag_non_callables_and_wrong_arity() -> None:
    def no_arguments() -> None: ...

    def two_arguments(ctx: GrantContext, extra: str) -> None: ...

    assert Python(grant="add_to_group", revoke=None).problems() == [  # type: ignore[arg-type]
        "grant is not callable (got str)",
        "revoke is not callable (got NoneType)",
    ]
    strategy = Python(grant=no_arguments, revoke=two_arguments)  # type: ignore[arg-type]
    no_args, two_args = strategy.problems()
    assert no_args == "grant no_arguments() must accept one argument (the GrantContext)"
    assert two_args.startswith("revoke two_arguments(ctx")
    assert two_args.endswith("extra: 'str') must accept one argument (the GrantContext)")


def test_problems_accept_any_one_argument_callable() -> None:
    class Revoker:
        def __call__(self, ctx: GrantContext) -> None: ...

    def flexible(ctx: GrantContext, dry_run: bool = False) -> None: ...

    def two(group: str, ctx: GrantContext) -> None: ...

    strategy = Python(grant=flexible, revoke=Revoker())
    assert strategy.problems() == []
    assert Python(grant=functools.partial(two, "vpn"), revoke=lambda *args: None).problems() == []
    assert Python(grant=print, revoke=len).problems() == []


def test_describe() -> None:
    def grant_vpn(ctx: GrantContext) -> None: ...

    def revoke_vpn(ctx: GrantContext) -> None: ...

    assert Python(grant=grant_vpn, revoke=revoke_vpn).describe() == (
        "Python: grant_vpn() / revoke_vpn()"
    )
    assert Python(grant=grant_vpn, revoke=revoke_vpn, name="vpn").describe() == (
        "Python 'vpn': grant_vpn() / revoke_vpn()"
    )
