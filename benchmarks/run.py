"""Speed and memory targets, measured on the real app with the test fakes on 127.0.0.1.

    scripts/benchmark          # or: .venv/bin/python -m benchmarks.run

Targets (2-core machine):
- Slack acknowledgement of `/access` and of a modal submission: p95 under 100 ms
  (Slack allows 3 s; the slow work happens after the ack).
- Revoking expired grants through a webhook: at least 25 grants a second per process (one at a
  time: each claims its row, waits for its webhook, then tells Slack).
- Peak memory (RSS) of the bot process with all of the above: under 300 MB.
Exits 1 when a target is missed.
"""

from __future__ import annotations

import resource
import statistics
import sys
import time
from collections.abc import Callable
from datetime import timedelta

from tests.support.bot import REQUESTER, insert_active_grant, start_bot
from tests.support.fake_slack import FakeSlack
from tests.support.postgres import SuitePostgres
from tests.support.webhook_receiver import WebhookReceiver

ROUNDS = 200
GRANTS = 500


def percentile(samples: list[float], p: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p))]


def timed(action: Callable[[], object], rounds: int) -> list[float]:
    samples = []
    for _ in range(rounds):
        started = time.perf_counter()
        action()
        samples.append((time.perf_counter() - started) * 1000)
    return samples


def main() -> int:
    postgres = SuitePostgres()
    slack, webhook = FakeSlack(), WebhookReceiver("webhook-secret")
    slack.add_user(REQUESTER, "alice@example.com", "Alice")
    slack.start()
    webhook.start()
    database = postgres.new_database()
    bot = start_bot(database_url=postgres.url(database), slack=slack, webhook=webhook)
    results: list[tuple[str, float, str, bool]] = []
    try:
        command = timed(lambda: bot.sender.command(REQUESTER), ROUNDS)
        results.append(
            ("/access ack p95", percentile(command, 0.95), "ms", percentile(command, 0.95) < 100)
        )
        submit = timed(
            lambda: bot.sender.submit_request(
                REQUESTER, resource="orders-db", justification="benchmark", duration_seconds=900
            ),
            ROUNDS,
        )
        results.append(
            ("submission ack p95", percentile(submit, 0.95), "ms", percentile(submit, 0.95) < 100)
        )
        print(
            f"/access ack: median {statistics.median(command):.1f} ms; "
            f"submission ack: median {statistics.median(submit):.1f} ms"
        )
        for _ in range(GRANTS):
            insert_active_grant(bot.sessions, expires_in=timedelta(seconds=-1))
        started = time.perf_counter()
        revoked = bot.runtime.lifecycle.process_due()
        rate = revoked / (time.perf_counter() - started)
        results.append(("revocations per second", rate, "/s", rate >= 25))
        rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        results.append(("peak RSS", rss_mb, "MB", rss_mb < 300))
    finally:
        bot.stop()
        slack.stop()
        webhook.stop()
        postgres.drop_database(database)
        postgres.stop()
    for name, value, unit, ok in results:
        print(f"{'ok  ' if ok else 'MISS'} {name}: {value:.1f} {unit}")
    return 0 if all(ok for *_, ok in results) else 1


if __name__ == "__main__":
    sys.exit(main())
