"""The Python strategy: the policy author's own functions give and take back access."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field

from app.grants.base import GrantContext, Granted, GrantError, Retry

GrantFunction = Callable[[GrantContext], Granted | None]


def function_name(fn: object) -> str:
    name = getattr(fn, "__name__", None)
    return str(name) if name else type(fn).__name__


def signature_problem(what: str, fn: object, argument: str = "the GrantContext") -> str | None:
    """Why `fn` cannot be called with one argument, or None when it can."""
    if not callable(fn):
        return f"{what} is not callable (got {type(fn).__name__})"
    if inspect.iscoroutinefunction(fn):
        return f"{what} {function_name(fn)} is async; give a plain function"
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return None  # some builtins have no signature to check
    try:
        signature.bind(None)
    except TypeError:
        parameters = signature.replace(return_annotation=inspect.Signature.empty)
        return f"{what} {function_name(fn)}{parameters} must accept one argument ({argument})"
    return None


@dataclass(init=False)
class Python:
    """`Python(grant=f, revoke=g)`: `.grant(ctx)` calls `f(ctx)`, `.revoke(ctx)` calls `g(ctx)`."""

    grant_fn: GrantFunction
    revoke_fn: GrantFunction
    name: str = ""
    retry: Retry = field(default_factory=Retry)

    def __init__(
        self,
        grant: GrantFunction,
        revoke: GrantFunction,
        *,
        name: str = "",
        retry: Retry | None = None,
    ) -> None:
        self.grant_fn = grant
        self.revoke_fn = revoke
        self.name = name
        self.retry = retry if retry is not None else Retry()

    def grant(self, ctx: GrantContext) -> Granted | None:
        """What `f` returned when it is a `Granted` (what undoes it, access held before)."""
        result = self._call(self.grant_fn, ctx)
        return result if isinstance(result, Granted) else None

    def revoke(self, ctx: GrantContext) -> None:
        self._call(self.revoke_fn, ctx)

    def describe(self) -> str:
        functions = f"{function_name(self.grant_fn)}() / {function_name(self.revoke_fn)}()"
        return f"Python {self.name!r}: {functions}" if self.name else f"Python: {functions}"

    def problems(self) -> list[str]:
        found = [
            signature_problem("grant", self.grant_fn),
            signature_problem("revoke", self.revoke_fn),
        ]
        return [problem for problem in found if problem]

    def _call(self, fn: GrantFunction, ctx: GrantContext) -> object:
        label = self.name or function_name(fn)
        try:
            result: object = fn(ctx)
        except Exception as exc:  # the boundary with the policy author's code
            raise GrantError(f"{label}: {type(exc).__name__}: {exc}") from exc
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()  # never run: no "coroutine was never awaited" warning
            raise GrantError(f"{label}: returned an awaitable; async functions are not supported")
        return result
