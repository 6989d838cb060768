"""On-call checks, counted: by result (on_call, not_on_call, undecided) and latency."""

from __future__ import annotations

import time

from app.metrics import Metrics
from app.oncall import OnCallChecker, OnCallResult
from app.workflows.model import OnCall


class MeteredOnCall:
    def __init__(self, checker: OnCallChecker, metrics: Metrics) -> None:
        self.checker = checker
        self.metrics = metrics

    def check(self, email: str, rule: OnCall) -> OnCallResult:
        started = time.perf_counter()
        result = "undecided"  # raised: the router sends the request to people
        try:
            answer = self.checker.check(email, rule)
            if answer.on_call is not None:
                result = "on_call" if answer.on_call else "not_on_call"
            return answer
        finally:
            self.metrics.pagerduty_check(result, time.perf_counter() - started)
