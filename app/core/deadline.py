"""Run someone else's code (a grant strategy, a policy hook) with a hard wall-clock deadline.

Python cannot kill a thread, so the call runs on a thread of its own and the caller stops
waiting when the deadline passes. The call may go on in the background until it returns; the
`done` callback (which always runs, when it finally does) lets the caller keep counting it, so
a target that hangs is not sent more work than its in-flight limit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class DeadlineExceeded(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"did not finish within {seconds:g}s")
        self.seconds = seconds


def call_with_deadline(
    fn: Callable[[], T],
    seconds: float,
    *,
    name: str = "deadline-call",
    done: Callable[[], None] | None = None,
) -> T:
    """`fn()`'s result, or what it raised; DeadlineExceeded if it takes more than `seconds`."""
    outcome: list[object] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(fn())
        except BaseException as exc:  # handed to the caller, whatever it is
            failure.append(exc)
        finally:
            if done is not None:
                done()

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise DeadlineExceeded(seconds)
    if failure:
        raise failure[0]
    return outcome[0]  # type: ignore[return-value]
