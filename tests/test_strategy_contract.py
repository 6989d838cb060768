"""app.testing.check_strategy: it passes a strategy that keeps the contract and names each way
one can break it (so strategy authors can trust a green run)."""

from __future__ import annotations

from collections.abc import Callable

from app.grants.base import GrantContext, Granted, GrantError
from app.testing import check_strategy, grant_context
from app.workflows import Python


class Group:
    """An in-memory target: a set of members."""

    def __init__(self, *members: str) -> None:
        self.members = set(members)

    def has(self, who: str = "alice@example.com") -> Callable[[], bool]:
        return lambda: who in self.members


def good(group: Group) -> Python:
    def grant(ctx: GrantContext) -> Granted:
        had = ctx.user.email in group.members
        group.members.add(str(ctx.user.email))
        return Granted(undo={"member": str(ctx.user.email)}, already_had=had)

    def revoke(ctx: GrantContext) -> None:
        group.members.discard(ctx.undo.get("member", str(ctx.user.email)))

    return Python(grant=grant, revoke=revoke, name="good")


def test_a_strategy_that_keeps_the_contract_passes() -> None:
    group = Group()
    assert check_strategy(good(group), grant_context(), has_access=group.has()) == []
    held = Group("alice@example.com")
    assert check_strategy(good(held), grant_context(), has_access=held.has()) == []
    assert held.members == {"alice@example.com"}


def test_each_broken_rule_is_named() -> None:
    group = Group()

    def toggles(ctx: GrantContext) -> None:  # not idempotent: a second grant takes it away
        group.members.symmetric_difference_update({str(ctx.user.email)})

    problems = check_strategy(
        Python(grant=toggles, revoke=lambda ctx: None), grant_context(), has_access=group.has()
    )
    assert problems == [
        "after a second grant the target shows no access",
    ]

    group = Group()
    sticky = Python(grant=lambda ctx: group.members.add("alice@example.com"), revoke=lambda c: None)
    assert check_strategy(sticky, grant_context(), has_access=group.has()) == [
        "grant then revoke did not leave the target as it was (access before: False, after: True)"
    ]

    held = Group("alice@example.com")
    silent = Python(grant=lambda ctx: None, revoke=lambda ctx: held.members.clear())
    assert check_strategy(silent, grant_context(), has_access=held.has())[0].startswith(
        "the access existed before the grant, but grant did not return Granted(already_had=True)"
    )

    group = Group()

    def twice_fails(ctx: GrantContext) -> None:
        if ctx.event == "revoke" and not group.members:
            raise RuntimeError("already gone")
        group.members.discard("alice@example.com")

    class Raw:  # not wrapped by Python(): its errors reach the kit as they are
        retry = None

        def grant(self, ctx: GrantContext) -> None:
            group.members.add("alice@example.com")

        def revoke(self, ctx: GrantContext) -> None:
            twice_fails(ctx)

        def describe(self) -> str:
            return "raw"

    assert check_strategy(Raw(), grant_context(), has_access=group.has()) == [  # type: ignore[arg-type]
        "a second revoke raised RuntimeError, not GrantError: already gone"
    ]


def test_failing_calls_must_be_grant_errors() -> None:
    group = Group()

    class Unknown:
        retry = None

        def grant(self, ctx: GrantContext) -> None:
            raise KeyError(ctx.user.slack_id)

        def revoke(self, ctx: GrantContext) -> None:
            raise GrantError("no such user")

        def describe(self) -> str:
            return "unknown-user target"

    problems = check_strategy(
        good(group),
        grant_context(),
        has_access=group.has(),
        failing=[(Unknown(), grant_context()), (good(group), grant_context())],  # type: ignore[list-item]
    )
    assert problems == [
        "unknown-user target: grant raised KeyError, not GrantError",
        "Python 'good': grant() / revoke(): grant was expected to fail but succeeded",
    ]
