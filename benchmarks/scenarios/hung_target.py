"""A grant target that never answers must not delay revocations on a healthy one.

100 grants on the hung target are overdue when the bot starts (their revokes hang until the
webhook's 10 s timeout, then are retried); meanwhile 100 grants on a healthy target expire,
spread over 20 s. The healthy target's lags must stay as they are with no hung target.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from datetime import timedelta

from benchmarks.botproc import (
    BOT_TOKEN,
    WEBHOOK_SECRET,
    WORKFLOW,
    BenchResource,
    start_bot,
    write_workflows,
)
from benchmarks.fakes import SlackApi, WebhookTarget
from benchmarks.scenarios.common import (
    SLACK_LATENCY,
    TARGET_LATENCY,
    Bench,
    Row,
    errors_row,
    lag_rows,
    resource_rows,
    revoke_lags,
    wait_for,
)
from benchmarks.seed import seed_active_grants, spread, utcnow

NAME = "hung-target"
HUNG, HEALTHY = 100, 100
FIRST, LAST = 10.0, 30.0  # the healthy grants' expiries, seconds from seeding


def run(bench: Bench) -> list[Row]:
    hung_count, healthy_count = bench.n(HUNG), bench.n(HEALTHY)
    with ExitStack() as stack:
        slack = SlackApi(BOT_TOKEN, latency=SLACK_LATENCY)
        stack.callback(slack.stop)
        healthy = WebhookTarget(WEBHOOK_SECRET, latency=TARGET_LATENCY)
        stack.callback(healthy.stop)
        hung = WebhookTarget(WEBHOOK_SECRET, latency=TARGET_LATENCY)
        stack.callback(hung.stop)
        hung.hang("hung-db")
        database_url = stack.enter_context(bench.database())
        workdir = stack.enter_context(bench.workdir(NAME))
        write_workflows(
            workdir / "workflows",
            [BenchResource("bench-db", healthy.url), BenchResource("hung-db", hung.url)],
        )
        now = utcnow()
        seed_active_grants(
            database_url,
            expiries=spread(hung_count, now - timedelta(seconds=30), now - timedelta(seconds=1)),
            workflow=WORKFLOW,
            resource="hung-db",
            requester_prefix="UHUNG",
        )
        seeded = seed_active_grants(
            database_url,
            expiries=spread(
                healthy_count, now + timedelta(seconds=FIRST), now + timedelta(seconds=LAST)
            ),
            workflow=WORKFLOW,
            resource="bench-db",
        )
        started = time.monotonic()
        postgres_mark = bench.postgres_cpu()
        bot = start_bot(
            "bot",
            database_url=database_url,
            slack_api_url=slack.api_url,
            workflows_dir=workdir / "workflows",
            overrides=bench.bot_env,
        )
        stack.callback(bot.stop)
        bench.log(f"bot ready in {bot.wait_ready():.1f} s")
        last_expiry = max(g.expires_at for g in seeded).timestamp()
        wait_for(
            lambda: healthy.stats().get("accepted_revoke", 0) >= healthy_count,
            timeout=max(last_expiry - time.time(), 0) + 30,
            bots=[bot],
        )
        lags = revoke_lags(seeded, healthy.events("revoke"))
        hung_stats = hung.stats()
        rows = lag_rows(NAME, f"{healthy_count} healthy-target grants", lags, total=healthy_count)
        rows += [
            Row(
                NAME,
                "hung target: revoke calls received",
                f"{hung_stats.get('hung', 0)} (max {hung_stats.get('max_inflight', 0)} at once)",
            ),
            Row(NAME, "healthy target: max calls at once", str(healthy.stats()["max_inflight"])),
        ]
        rows += resource_rows(
            NAME,
            [bot],
            [slack, healthy, hung],
            time.monotonic() - started,
            bench.postgres_cpu() - postgres_mark,
        )
        rows.append(errors_row(NAME, [bot]))
        return rows
