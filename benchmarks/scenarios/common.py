"""What the scenarios share: result rows, the run's settings, waiting, statistics, lags."""

from __future__ import annotations

import math
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from benchmarks.botproc import BotProcess
from benchmarks.fakes import FakeProcess, process_cpu_seconds
from benchmarks.seed import SeededGrant
from tests.support.postgres import SuitePostgres

RSS_TARGET_MB = 300.0
SLACK_LATENCY = 0.08  # seconds each fake Slack call takes
TARGET_LATENCY = 0.1  # seconds each fake webhook call takes


@dataclass
class Row:
    scenario: str
    metric: str
    value: str
    target: str = ""
    ok: bool | None = None  # None: reported, no target

    @property
    def status(self) -> str:
        return {None: "", True: "ok", False: "MISS"}[self.ok]


@dataclass
class Bench:
    """One benchmark run: the PostgreSQL server, the scale, settings passed to the bots."""

    postgres: SuitePostgres
    scale: float = 1.0
    bot_env: dict[str, str] = field(default_factory=dict)
    verbose: bool = False

    def n(self, count: int) -> int:
        return max(1, round(count * self.scale))

    @contextmanager
    def database(self) -> Iterator[str]:
        name = self.postgres.new_database()
        try:
            yield self.postgres.url(name)
        finally:
            self.postgres.drop_database(name)

    @contextmanager
    def workdir(self, name: str) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix=f"accessbot-bench-{name}-") as directory:
            yield Path(directory)

    def log(self, message: str) -> None:
        print(f"  · {message}", flush=True)

    def postgres_cpu(self) -> float:
        """CPU seconds used so far by our PostgreSQL server and its backends (live or ended);
        0 when the server is not ours (TEST_DATABASE_URL)."""
        embedded = getattr(self.postgres, "_embedded", None)
        if embedded is None:
            return 0.0
        try:
            pid = int((embedded.data_dir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return 0.0
        total = process_cpu_seconds(pid, children=True)
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, ValueError, IndexError):
                    continue
                if parent == pid:
                    total += process_cpu_seconds(int(entry.name), children=True)
        return total


class BotDied(RuntimeError):
    pass


def wait_for(
    condition: Callable[[], bool],
    *,
    timeout: float,
    bots: Sequence[BotProcess] = (),
    interval: float = 0.2,
) -> bool:
    """Poll `condition` until true or `timeout`; meanwhile sample the bots (RSS) and check they
    live. Returns whether the condition held."""
    deadline = time.monotonic() + timeout
    while True:
        for bot in bots:
            if not bot.alive():
                raise BotDied(f"{bot.name} exited with {bot.process.returncode}:\n{bot.log_tail()}")
            bot.sample()
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def percentile(samples: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100)."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


@dataclass
class Lags:
    lags: list[float]  # seconds from expires_at to the target's first revoke, per grant
    early: int  # revokes that reached the target before the grant's expiry
    missing: int  # seeded grants never revoked at the target
    duplicates: int  # revoke events beyond the first, per grant
    strangers: int  # revoke events for grants that were not seeded here

    def p(self, q: float) -> float:
        return percentile(self.lags, q)


def revoke_lags(
    seeded: Sequence[SeededGrant], events: Sequence[tuple[float, dict[str, Any]]]
) -> Lags:
    by_request = {str(g.request_id): g for g in seeded}
    first: dict[str, float] = {}
    counts: Counter[str] = Counter()
    strangers = 0
    for arrived, event in events:
        if event.get("event") != "revoke":
            continue
        key = str(event.get("request_id"))
        if key not in by_request:
            strangers += 1
            continue
        counts[key] += 1
        first[key] = min(arrived, first.get(key, arrived))
    lags = [first[k] - by_request[k].expires_at.timestamp() for k in first]
    return Lags(
        lags=lags,
        early=sum(1 for lag in lags if lag < 0),
        missing=len(by_request) - len(first),
        duplicates=sum(c - 1 for c in counts.values()),
        strangers=strangers,
    )


def lag_rows(scenario: str, label: str, lags: Lags, *, total: int) -> list[Row]:
    p99, worst = lags.p(99), max(lags.lags, default=math.nan)
    return [
        Row(
            scenario,
            f"{label}: revoked",
            f"{total - lags.missing}/{total}",
            "all",
            lags.missing == 0,
        ),
        Row(scenario, f"{label}: lag p50", f"{lags.p(50):.2f} s"),
        Row(scenario, f"{label}: lag p99", f"{p99:.2f} s", "≤ 2 s", p99 <= 2.0),
        Row(scenario, f"{label}: lag max", f"{worst:.2f} s", "≤ 5 s", worst <= 5.0),
        Row(scenario, f"{label}: revoked before expiry", str(lags.early), "0", lags.early == 0),
    ]


def resource_rows(
    scenario: str,
    bots: Sequence[BotProcess],
    fakes: Sequence[FakeProcess],
    seconds: float,
    postgres_cpu: float = 0.0,
) -> list[Row]:
    """Peak RSS per bot (with its target) and CPU used, to show where the time went."""
    rows = []
    for bot in bots:
        bot.sample()
        rows.append(
            Row(
                scenario,
                f"peak RSS ({bot.name})",
                f"{bot.peak_rss_mb:.0f} MB",
                f"< {RSS_TARGET_MB:.0f} MB",
                bot.peak_rss_mb < RSS_TARGET_MB,
            )
        )
    cpu = ", ".join(
        f"{bot.name} {bot.cpu_seconds:.1f} (sys {bot.system_seconds:.1f})" for bot in bots
    )
    fake_cpu = sum(f.cpu_seconds() for f in fakes)
    rows.append(
        Row(
            scenario,
            "CPU seconds",
            f"{cpu}, postgres {postgres_cpu:.1f}, fakes {fake_cpu:.1f} (over {seconds:.0f} s)",
        )
    )
    return rows


def errors_row(scenario: str, bots: Sequence[BotProcess]) -> Row:
    errors = sum(bot.errors_logged() for bot in bots)
    logs = ", ".join(str(bot.log_path) for bot in bots if bot.errors_logged())
    return Row(scenario, "errors logged by the bot", f"{errors} (kept: {logs})" if logs else "0")


def activity_row(
    scenario: str, before: dict[str, int], after: dict[str, int], count: int, unit: str = "revoke"
) -> Row:
    """Database work per unit (see seed.database_activity): transactions, rows read (in all,
    and the tables that read the most), rows written."""
    per = {k: (after.get(k, 0) - before.get(k, 0)) / max(count, 1) for k in after}
    read = sorted(
        ((k.removesuffix(" rows read"), per.pop(k)) for k in list(per) if k.endswith(" rows read")),
        key=lambda item: -item[1],
    )
    parts = [
        f"{per.pop('transactions', 0):.1f} transactions",
        f"{per.pop('rows read', 0):.0f} rows read"
        + "".join(f" ({name} {value:.0f})" for name, value in read[:2] if value >= 1),
    ]
    parts += [
        f"{value:.1f} {name.removesuffix(' rows written')}"
        for name, value in sorted(per.items(), key=lambda item: -item[1])
        if value >= 0.05
    ]
    return Row(scenario, f"database work per {unit} (rows written)", ", ".join(parts))
