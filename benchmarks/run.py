"""Speed and memory targets of accessbot, measured on the real bot against lean fakes.

    scripts/benchmark                      # every scenario (about 15 minutes)
    scripts/benchmark revocation-lag       # one or more by name
    scripts/benchmark --list
    scripts/benchmark --scale 0.1          # smaller counts, to try the harness (targets unchanged)
    scripts/benchmark --bot-env GRANT_WORKERS=64 overdue
    scripts/benchmark --py-spy /tmp/profiles overdue   # profiles of the bot (pip install py-spy)

The bot runs as `accessbot serve` in its own process (the checkout's code), on a PostgreSQL of
its own (tests.support.postgres), talking to a fake Slack Web API (80 ms a call) and fake
webhook grant targets (100 ms a call) that each run in a process of their own
(benchmarks/fakes.py). Not part of the test suite. Prints a table; exits 1 when a target is
missed or a scenario fails.

Scenarios and targets:
- revocation-lag: 1,000 grants expiring evenly over 60 s; revoke lag p99 ≤ 2 s, max ≤ 5 s,
  none before expiry.
- overdue: 10,000 grants overdue at start; one process revokes them all within 60 s; two
  processes on one database revoke each exactly once, at least 1.7x faster (each run twice,
  alternating, compared by mean time).
- hung-target: a target that never answers holds 100 due grants; 100 grants on a healthy target
  expiring over 20 s keep lag p99 ≤ 2 s.
- slack-429: Slack answers every third call 429 (Retry-After: 1); every DM and approvers'
  message update is delivered, none twice.
- ack-latency: ack of `/access` and of the modal submission, sequential and at 20 concurrent
  clients, next to a bare Bolt app on the same server stack; at 20 concurrent submissions
  accessbot's p99 ≤ 1.5x the bare app's; sequential p95 < 100 ms.
- every scenario: peak RSS of each bot process < 300 MB.
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from benchmarks import botproc
from benchmarks.botproc import BOT_ENV, REPO
from benchmarks.scenarios import ack_latency, hung_target, overdue, revocation_lag, slack_ratelimit
from benchmarks.scenarios.common import Bench, Row

SCENARIOS: dict[str, Callable[[Bench], list[Row]]] = {
    revocation_lag.NAME: revocation_lag.run,
    overdue.NAME: overdue.run,
    hung_target.NAME: hung_target.run,
    slack_ratelimit.NAME: slack_ratelimit.run,
    ack_latency.NAME: ack_latency.run,
}


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import os

        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = 0
    return f"{cores} cores, {cpu}, Python {platform.python_version()}"


def revision() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return head + (" + uncommitted changes" if dirty else "")


def table(rows: list[Row]) -> str:
    header = ("scenario", "metric", "value", "target", "")
    cells = [header] + [(r.scenario, r.metric, r.value, r.target, r.status) for r in rows]
    widths = [max(len(c[i]) for c in cells) for i in range(len(header))]
    lines = []
    for n, cell in enumerate(cells):
        lines.append("  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)).rstrip())
        if n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/benchmark",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "scenarios", nargs="*", metavar="SCENARIO", help=f"any of: {', '.join(SCENARIOS)}"
    )
    parser.add_argument("--list", action="store_true", help="list the scenarios and exit")
    parser.add_argument(
        "--scale", type=float, default=1.0, help="multiply grant and request counts (default 1)"
    )
    parser.add_argument(
        "--bot-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting for the bot processes (repeatable), e.g. GRANT_WORKERS=64",
    )
    parser.add_argument(
        "--py-spy",
        type=Path,
        metavar="DIR",
        help="record each bot process with py-spy (collapsed stacks) into DIR",
    )
    args = parser.parse_args(argv)
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    for item in args.bot_env:
        if "=" not in item:
            parser.error(f"--bot-env takes NAME=VALUE, not {item!r}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        print("\n".join(SCENARIOS))
        return 0
    names = args.scenarios or list(SCENARIOS)
    bot_env = dict(item.split("=", 1) for item in args.bot_env)
    if args.py_spy:
        botproc.PROFILE_DIR = args.py_spy.absolute()
    print(f"machine: {machine()}")
    print(f"code: {revision()}")
    settings = {**BOT_ENV, **bot_env}
    print(f"bot settings: {' '.join(f'{k}={v}' for k, v in settings.items())}")
    if args.scale != 1.0:
        print(f"scale: {args.scale} (counts differ from the targets' scenarios)")
    from tests.support.postgres import SuitePostgres

    postgres = SuitePostgres()
    bench = Bench(postgres=postgres, scale=args.scale, bot_env=bot_env)
    rows: list[Row] = []
    try:
        for name in names:
            print(f"\n== {name}", flush=True)
            started = time.monotonic()
            try:
                found = SCENARIOS[name](bench)
            except Exception as exc:  # report it, go on with the next scenario
                traceback.print_exc()
                why = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
                found = [Row(name, "scenario failed", why, "runs", False)]
            rows += found
            print(table(found))
            print(f"({name}: {time.monotonic() - started:.0f} s)", flush=True)
    finally:
        postgres.stop()
    print("\n== results\n" + table(rows))
    missed = [r for r in rows if r.ok is False]
    if missed:
        print(f"\n{len(missed)} target(s) missed")
        return 1
    print("\nevery target met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
