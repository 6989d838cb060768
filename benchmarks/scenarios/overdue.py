"""10,000 grants already overdue at start: how long until all are revoked, by one process and by
two on one database (each grant revoked exactly once), and how much faster two are.

Time runs from the launch of the process(es) (start-up included: a deploy is when a backlog
builds) until the database shows every grant revoked.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterable
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta

from benchmarks.botproc import (
    BOT_TOKEN,
    WEBHOOK_SECRET,
    WORKFLOW,
    BenchResource,
    BotProcess,
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
    audit_trails,
    database_activity,
    grant_states,
    seed_active_grants,
    spread,
    utcnow,
)

NAME = "overdue"
GRANTS = 10_000
TARGET_SECONDS = 60.0
SPEEDUP_TARGET = 1.7
TIMEOUT = 300.0
REPEATS = 2  # runs of each configuration, alternating


@dataclass
class Outcome:
    processes: int
    count: int
    seconds: float  # launch to all revoked (or to the timeout)
    revoked: int
    once: int
    duplicates: int
    missing: int
    rate: float  # revokes a second at the target, first to last
    first: float  # launch to the first revoke at the target (start-up)
    rows: list[Row]

    @property
    def done(self) -> bool:
        return self.revoked == self.count


def _run(bench: Bench, processes: int, run: int | None = None) -> Outcome:
    count = bench.n(GRANTS)
    label = _label(processes, run)
    with ExitStack() as stack:
        slack = SlackApi(BOT_TOKEN, latency=SLACK_LATENCY)
        stack.callback(slack.stop)
        target = WebhookTarget(WEBHOOK_SECRET, latency=TARGET_LATENCY)
        stack.callback(target.stop)
        database_url = stack.enter_context(bench.database())
        workdir = stack.enter_context(bench.workdir(NAME))
        write_workflows(workdir / "workflows", [BenchResource("bench-db", target.url)])
        now = utcnow()
        seeding = time.monotonic()
        seeded = seed_active_grants(
            database_url,
            expiries=spread(count, now - timedelta(minutes=10), now - timedelta(seconds=1)),
            workflow=WORKFLOW,
            resource="bench-db",
        )
        bench.log(f"{label}: seeded {count} overdue grants in {time.monotonic() - seeding:.1f} s")
        time.sleep(1.0)  # PostgreSQL publishes its counters about once a second
        activity = database_activity(database_url)
        launched, launched_wall = time.monotonic(), time.time()
        postgres_mark = bench.postgres_cpu()
        bots: list[BotProcess] = []
        for n in range(processes):
            bot = start_bot(
                f"bot{n + 1}" if processes > 1 else "bot",
                database_url=database_url,
                slack_api_url=slack.api_url,
                workflows_dir=workdir / "workflows",
                overrides=bench.bot_env,
            )
            stack.callback(bot.stop)
            bots.append(bot)
        revoked = 0

        def all_revoked() -> bool:
            # Counting grant states reads every grant: ask the database only once the target
            # has received as many revokes (a count it keeps), so that the measuring costs the
            # database, and the machine the bots share, next to nothing.
            nonlocal revoked
            if target.stats().get("accepted_revoke", 0) < count:
                return False
            revoked = grant_states(database_url).get("revoked", 0)
            return revoked >= count

        if not wait_for(all_revoked, timeout=TIMEOUT, bots=bots, interval=0.1):
            revoked = grant_states(database_url).get("revoked", 0)
        seconds = time.monotonic() - launched
        bench.log(f"{label}: {revoked}/{count} revoked after {seconds:.1f} s")
        time.sleep(1.0)  # a late duplicate would arrive now
        events = target.events("revoke")
        per_request = Counter(str(e.get("request_id")) for _, e in events)
        expected = {str(g.request_id) for g in seeded}
        _explain_duplicates(bench, database_url, bots, events, per_request, expected)
        arrivals = sorted(t for t, _ in events)
        rate = (len(arrivals) - 1) / (arrivals[-1] - arrivals[0]) if len(arrivals) > 1 else 0.0
        postgres_cpu = bench.postgres_cpu() - postgres_mark
        rows = resource_rows(f"{NAME} ({label})", bots, [slack, target], seconds, postgres_cpu)
        per_revoke = (sum(b.cpu_seconds for b in bots) + postgres_cpu) / max(revoked, 1) * 1000
        rows.append(
            Row(f"{NAME} ({label})", "CPU per revoke (bots + postgres)", f"{per_revoke:.1f} ms")
        )
        rows.append(
            activity_row(f"{NAME} ({label})", activity, database_activity(database_url), revoked)
        )
        rows.append(errors_row(f"{NAME} ({label})", bots))
        return Outcome(
            processes=processes,
            count=count,
            seconds=seconds,
            revoked=revoked,
            once=sum(1 for k in expected if per_request[k] == 1),
            duplicates=sum(per_request[k] - 1 for k in expected if per_request[k] > 1),
            missing=sum(1 for k in expected if per_request[k] == 0),
            rate=rate,
            first=arrivals[0] - launched_wall if arrivals else seconds,
            rows=rows,
        )


def _explain_duplicates(
    bench: Bench,
    database_url: str,
    bots: list[BotProcess],
    events: list[tuple[float, dict[str, object]]],
    per_request: Counter[str],
    expected: set[str],
) -> None:
    """A grant revoked more than once: print when each revoke arrived, the grant's audit trail
    and what the bots logged about it, before the database and the logs are gone."""
    twice = sorted(k for k in expected if per_request[k] > 1)[:5]
    if not twice:
        return
    trails = audit_trails(database_url, twice)
    for request_id in twice:
        bench.log(f"revoked {per_request[request_id]} times: request {request_id}")
        for arrived, event in events:
            if str(event.get("request_id")) == request_id:
                bench.log(f"  revoke arrived at {arrived:.3f}: event_id {event.get('event_id')}")
        for line in trails.get(request_id, []):
            bench.log(f"  audit: {line}")
        for bot in bots:
            logged = bot.log_path.read_text(errors="replace").splitlines()
            grant_ids = set(
                re.findall(r"grant=([0-9a-f-]{36})", " ".join(trails.get(request_id, [])))
            )
            for line in logged:
                if any(g in line for g in grant_ids) or request_id in line:
                    bench.log(f"  {bot.name}: {line}")


def _label(processes: int, run: int | None) -> str:
    label = f"{processes} process{'es' if processes > 1 else ''}"
    return label if run is None else f"{label}, run {run}"


def _rows(outcome: Outcome, *, target: bool, run: int | None = None) -> list[Row]:
    scenario = f"{NAME} ({_label(outcome.processes, run)})"
    if outcome.done:
        took = f"{outcome.seconds:.1f} s"
    else:
        took = f"timeout at {outcome.seconds:.0f} s: {outcome.revoked}/{outcome.count} revoked"
    rows = [
        Row(
            scenario,
            f"all {outcome.count} revoked in",
            took,
            f"≤ {TARGET_SECONDS:.0f} s" if target else "",
            (outcome.done and outcome.seconds <= TARGET_SECONDS) if target else None,
        ),
        Row(scenario, "first revoke after launch", f"{outcome.first:.1f} s"),
        Row(scenario, "revoke rate at the target", f"{outcome.rate:.0f} /s"),
        Row(
            scenario,
            "revoked exactly once (at the target)",
            f"{outcome.once}/{outcome.count} (dup {outcome.duplicates}, missing {outcome.missing})",
            "all once",
            outcome.once == outcome.count,
        ),
    ]
    return rows + outcome.rows


def run(bench: Bench) -> list[Row]:
    # Each configuration REPEATS times, alternating (1, 2, 1, 2): the speed-up compares their
    # mean times, so that one run caught by the machine's drift (identical runs differ by up
    # to a tenth here) does not decide it alone; every run's own rows are shown.
    runs: dict[int, list[Outcome]] = {1: [], 2: []}
    for n in range(1, REPEATS + 1):
        for processes in (1, 2):
            runs[processes].append(_run(bench, processes, n if REPEATS > 1 else None))
    rows: list[Row] = []
    for processes, outcomes in runs.items():
        for n, outcome in enumerate(outcomes, 1):
            rows += _rows(outcome, target=processes == 1, run=n if REPEATS > 1 else None)
    ones, twos = runs[1], runs[2]
    if all(o.done for o in ones + twos):
        one, two = _mean(o.seconds for o in ones), _mean(o.seconds for o in twos)
        speedup = one / two
        each = ", ".join(f"{a.seconds / b.seconds:.2f}x" for a, b in zip(ones, twos, strict=True))
        how = f"{speedup:.2f}x (mean {one:.1f} s → {two:.1f} s; run by run {each})"
    else:  # compare rates when a run did not finish
        one, two = _mean(o.rate for o in ones), _mean(o.rate for o in twos)
        speedup = two / one if one else 0.0
        how = f"{speedup:.2f}x by revoke rate ({one:.0f}/s → {two:.0f}/s)"
    rows.append(
        Row(
            NAME,
            "speed-up of 2 processes over 1",
            how,
            f"≥ {SPEEDUP_TARGET}x",
            speedup >= SPEEDUP_TARGET,
        )
    )
    return rows


def _mean(values: Iterable[float]) -> float:
    listed = list(values)
    return sum(listed) / len(listed)
