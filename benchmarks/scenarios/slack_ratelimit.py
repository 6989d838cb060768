"""Slack answers every third call with 429 and `Retry-After: 1`: nothing lost, nothing twice.

Two kinds of traffic, once the bot is up and Slack is rate limiting:
- 100 seeded grants expire (over 10 s): each must give exactly one "ended" DM to its requester
  (every requester is a different user) and an update of its approvers' message;
- 20 full request flows over HTTP: submit the modal, wait for the approvers' post, Approve,
  granted, expire 20 s later, revoked. Each requester must get each of their DMs (submitted,
  granted, ended) exactly once, and each request exactly one post to the approvers.

Then the outbox is left to drain (the sender paces chat.update to ~50 a minute, so this takes
a while) and Slack's record is checked. Approvers' messages may get fewer updates than changes
(pending updates of one message collapse), so each needs at least one, the last showing the
final state (revoked).
"""

from __future__ import annotations

import time
from collections import Counter
from contextlib import ExitStack
from datetime import timedelta
from typing import Any

from app.slack.ids import Ids
from benchmarks.botproc import (
    APPROVERS,
    BOT_TOKEN,
    SIGNING_SECRET,
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
    resource_rows,
    wait_for,
)
from benchmarks.seed import (
    database_activity,
    grant_states,
    outbox_outcomes,
    outbox_pending,
    requests_of,
    seed_active_grants,
    spread,
    utcnow,
)
from tests.support.slack_requests import SlackSender

NAME = "slack-429"
SEEDED, FLOWS = 100, 20
FLOW_SECONDS = 20  # the flows' requested duration
FLOW_PREFIX = "UFLOW"
DRAIN_TIMEOUT = 600.0
# Today's texts: the "ended" DM and the approvers' final status start with a lock; the
# "submitted" DM with an envelope, the "granted" DM with an open lock (app/slack/blocks.py).
ENDED, SUBMITTED, GRANTED = "🔒", "📨", "🔓"


def run(bench: Bench) -> list[Row]:
    seeded_count, flow_count = bench.n(SEEDED), bench.n(FLOWS)
    with ExitStack() as stack:
        slack = SlackApi(BOT_TOKEN, latency=SLACK_LATENCY)
        stack.callback(slack.stop)
        target = WebhookTarget(WEBHOOK_SECRET, latency=TARGET_LATENCY)
        stack.callback(target.stop)
        database_url = stack.enter_context(bench.database())
        workdir = stack.enter_context(bench.workdir(NAME))
        write_workflows(
            workdir / "workflows",
            [BenchResource("bench-db", target.url)],
            durations=(FLOW_SECONDS, 900),
        )
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
        bench.log(f"bot ready in {bot.wait_ready():.1f} s")
        slack.rate_limit(every=3, retry_after=1)
        now = utcnow()
        seeded = seed_active_grants(
            database_url,
            expiries=spread(seeded_count, now + timedelta(seconds=5), now + timedelta(seconds=15)),
            workflow=WORKFLOW,
            resource="bench-db",
        )
        # The request flows, through Slack's front door.
        sender = SlackSender(bot.url, signing_secret=SIGNING_SECRET)
        stack.callback(sender.http.close)
        flow_users = [f"{FLOW_PREFIX}{n:06d}" for n in range(flow_count)]
        refused = 0
        for user in flow_users:
            response = sender.submit_request(
                user,
                resource="bench-db",
                justification="benchmark flow",
                duration_seconds=FLOW_SECONDS,
            )
            refused += response.status_code != 200 or bool(response.content)
        posted = wait_for(
            lambda: (
                sum(1 for r in requests_of(database_url, FLOW_PREFIX) if r.message_ts) >= flow_count
            ),
            timeout=180,
            bots=[bot],
        )
        bench.log(f"flows: {'all' if posted else 'not all'} posted to the approvers")
        for request in requests_of(database_url, FLOW_PREFIX):
            response = sender.click(
                APPROVERS[0],
                Ids.APPROVE,
                str(request.id),
                channel_id=request.approvers_channel,
                message_ts=request.message_ts,
            )
            refused += response.status_code != 200
        total = seeded_count + flow_count
        all_revoked = wait_for(
            lambda: grant_states(database_url).get("revoked", 0) >= total,
            timeout=180,
            bots=[bot],
        )
        bench.log(f"grants: {grant_states(database_url)}; waiting for the outbox to drain")
        draining = time.monotonic()
        pending: int | None = None

        def drained() -> bool:
            nonlocal pending
            pending = outbox_pending(database_url)
            return pending == 0

        drained_ok = wait_for(drained, timeout=DRAIN_TIMEOUT, bots=[bot], interval=1.0)
        drain_seconds = time.monotonic() - draining
        quiet_since = [time.monotonic(), slack.stats().get("accepted", 0)]

        def quiet() -> bool:  # nothing more reaches Slack for 3 s (retries after a 429)
            accepted = slack.stats().get("accepted", 0)
            if accepted != quiet_since[1]:
                quiet_since[:] = [time.monotonic(), accepted]
            return time.monotonic() - quiet_since[0] >= 3

        wait_for(quiet, timeout=30, bots=[bot], interval=0.5)
        records = [r for _, r in slack.records()]
        stats = slack.stats()
        flows = requests_of(database_url, FLOW_PREFIX)

        rows = [
            Row(NAME, "requests refused by the bot", str(refused), "0", refused == 0),
            Row(
                NAME,
                "grants revoked",
                f"{grant_states(database_url).get('revoked', 0)}/{total}",
                "all",
                all_revoked,
            ),
            Row(
                NAME,
                "outbox drained after revoking",
                f"{drain_seconds:.0f} s" if drained_ok else f"{pending} pending at timeout",
                f"≤ {DRAIN_TIMEOUT:.0f} s",
                drained_ok,
            ),
        ]
        rows += _check_messages(records, seeded, flows, flow_users)
        outcomes = outbox_outcomes(database_url)
        rows += [
            Row(
                NAME,
                "outbox rows given up (failed)",
                f"{outcomes.get('failed', 0)} of {sum(outcomes.values())} "
                f"({', '.join(f'{k} {v}' for k, v in sorted(outcomes.items()))})",
                "0",
                outcomes.get("failed", 0) == 0,
            ),
            Row(
                NAME,
                "Slack calls: accepted / answered 429",
                f"{stats.get('accepted', 0)} / {stats.get('429', 0)} "
                f"(postMessage {stats.get('chat.postMessage', 0)}, "
                f"update {stats.get('chat.update', 0)})",
            ),
        ]
        rows += resource_rows(
            NAME,
            [bot],
            [slack, target],
            time.monotonic() - started,
            bench.postgres_cpu() - postgres_mark,
        )
        rows.append(activity_row(NAME, activity, database_activity(database_url), total, "grant"))
        rows.append(errors_row(NAME, [bot]))
        return rows


def _check_messages(
    records: list[dict[str, Any]], seeded: list[Any], flows: list[Any], flow_users: list[str]
) -> list[Row]:
    posts = [r for r in records if r["method"] == "chat.postMessage"]
    updates = [r for r in records if r["method"] == "chat.update"]
    same = Counter((p.get("channel"), p.get("thread_ts"), p.get("text")) for p in posts)
    duplicates = sum(n - 1 for n in same.values() if n > 1)
    dms: dict[str, list[str]] = {}
    for post in posts:
        dms.setdefault(str(post.get("channel")), []).append(str(post.get("text") or ""))

    def count(user: str, prefix: str) -> int:
        return sum(1 for text in dms.get(user, []) if text.startswith(prefix))

    ended = Counter(count(g.requester, ENDED) for g in seeded)
    flow_dms = {
        kind: Counter(count(user, prefix) for user in flow_users)
        for kind, prefix in (("submitted", SUBMITTED), ("granted", GRANTED), ("ended", ENDED))
    }
    flows_complete = sum(
        1 for user in flow_users if all(count(user, p) == 1 for p in (SUBMITTED, GRANTED, ENDED))
    )

    # One top-level post to the approvers per request, and it is the one the bot recorded.
    by_ts = {p.get("posted_ts"): p for p in posts}
    top_level = Counter(
        str(p.get("text"))
        for p in posts
        if p.get("channel") == (flows[0].approvers_channel if flows else None)
        and not p.get("thread_ts")
    )
    one_post = sum(
        1
        for request in flows
        if sum(n for text, n in top_level.items() if request.requester in text) == 1
        and request.message_ts in by_ts
    )

    last_update: dict[tuple[str, str], str] = {}
    update_count: Counter[tuple[str, str]] = Counter()
    for update in updates:
        key = (str(update.get("channel")), str(update.get("ts")))
        update_count[key] += 1
        last_update[key] = str(update.get("text") or "")
    messages = [(g.approvers_channel, g.message_ts) for g in seeded] + [
        (r.approvers_channel, str(r.message_ts)) for r in flows
    ]
    final = sum(1 for key in messages if ENDED in last_update.get(key, ""))
    flow_total = len(flow_users)
    return [
        Row(
            NAME,
            "seeded grants: ended DM exactly once",
            f"{ended[1]}/{len(seeded)} (missing {ended[0]}, "
            f"twice+ {sum(n for k, n in ended.items() if k > 1)})",
            "all once",
            ended[1] == len(seeded),
        ),
        Row(
            NAME,
            "flows: submitted, granted, ended DMs once each",
            f"{flows_complete}/{flow_total} ("
            + ", ".join(f"{kind} once {c[1]}" for kind, c in flow_dms.items())
            + ")",
            "all",
            flows_complete == flow_total,
        ),
        Row(
            NAME,
            "flows: one approvers' post per request",
            f"{one_post}/{flow_total}",
            "all",
            one_post == flow_total,
        ),
        Row(
            NAME,
            "approvers' messages: last update shows revoked",
            f"{final}/{len(messages)} ({len(updates)} updates)",
            "all",
            final == len(messages),
        ),
        Row(
            NAME,
            "duplicate posts (same channel, thread, text)",
            str(duplicates),
            "0",
            duplicates == 0,
        ),
    ]
