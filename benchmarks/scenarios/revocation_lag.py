"""1,000 active grants expiring evenly over 60 s: how late does each revoke reach its target?

The grants are seeded (as an earlier process left them) to expire from now+10 s to now+70 s,
then the bot starts and must find them on its own (its start-up look and its timers). Lag is
the target's arrival time of the revoke minus the grant's `expires_at`.
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
    activity_row,
    errors_row,
    lag_rows,
    resource_rows,
    revoke_lags,
    wait_for,
)
from benchmarks.seed import database_activity, seed_active_grants, spread, utcnow

NAME = "revocation-lag"
GRANTS = 1000
FIRST, LAST = 10.0, 70.0  # seconds from seeding


def run(bench: Bench) -> list[Row]:
    count = bench.n(GRANTS)
    with ExitStack() as stack:
        slack = SlackApi(BOT_TOKEN, latency=SLACK_LATENCY)
        stack.callback(slack.stop)
        target = WebhookTarget(WEBHOOK_SECRET, latency=TARGET_LATENCY)
        stack.callback(target.stop)
        database_url = stack.enter_context(bench.database())
        workdir = stack.enter_context(bench.workdir(NAME))
        write_workflows(workdir / "workflows", [BenchResource("bench-db", target.url)])

        now = utcnow()
        seeded = seed_active_grants(
            database_url,
            expiries=spread(count, now + timedelta(seconds=FIRST), now + timedelta(seconds=LAST)),
            workflow=WORKFLOW,
            resource="bench-db",
        )
        bench.log(f"seeded {count} grants expiring over {LAST - FIRST:.0f} s")
        activity = database_activity(database_url)
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
        ready = bot.wait_ready()
        bench.log(f"bot ready in {ready:.1f} s")
        last_expiry = max(g.expires_at for g in seeded).timestamp()
        wait_for(
            lambda: target.stats().get("accepted_revoke", 0) >= count,
            timeout=max(last_expiry - time.time(), 0) + 30,
            bots=[bot],
        )
        lags = revoke_lags(seeded, target.events("revoke"))
        rows = lag_rows(NAME, f"{count} grants", lags, total=count)
        rows.append(Row(NAME, "duplicate revokes at the target", str(lags.duplicates)))
        rows += resource_rows(
            NAME,
            [bot],
            [slack, target],
            time.monotonic() - started,
            bench.postgres_cpu() - postgres_mark,
        )
        time.sleep(1.0)  # PostgreSQL publishes its counters about once a second
        rows.append(activity_row(NAME, activity, database_activity(database_url), count))
        rows.append(errors_row(NAME, [bot]))
        return rows
