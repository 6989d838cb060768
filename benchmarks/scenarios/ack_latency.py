"""How fast Slack gets its ack for `/access` and for the modal submission, next to a bare Bolt
app that only acks on the same server stack (benchmarks/bare_app.py), against the same fakes.

The bot runs as it is deployed for load: a web process (`PROCESS_ROLE=web`) answers Slack and
stores the work before each ack, and a worker process (`PROCESS_ROLE=worker`) does it; the
scenario checks that every stored job was done. Both apps run side by side, each on a
database of its own, and take turns: each phase
(sequential: one client, one request at a time; 20 concurrent clients on keep-alive
connections) runs in ROUNDS rounds, bare app then bot, each measurement started once both
apps are idle (under a tenth of a core: the bot's work after earlier acks is done, bar its
paced Slack backlog), and each app's samples are pooled, so that the machine's drift falls on
both alike and neither app is measured while the other works.
Latency is the client's: from writing the signed request to reading the whole response. The
load generator is asyncio on raw sockets, so it costs next to nothing; requests are built and
signed before the clock starts.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import time
import uuid
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass

import psycopg
from slack_sdk.signature import SignatureVerifier

from benchmarks.botproc import (
    BOT_TOKEN,
    SIGNING_SECRET,
    WEBHOOK_SECRET,
    BenchResource,
    BotProcess,
    start_bare_app,
    start_bot,
    write_workflows,
)
from benchmarks.fakes import SlackApi, WebhookTarget, process_cpu_seconds
from benchmarks.scenarios.common import (
    SLACK_LATENCY,
    TARGET_LATENCY,
    Bench,
    Row,
    activity_row,
    errors_row,
    percentile,
    resource_rows,
    wait_for,
)
from benchmarks.seed import conninfo, database_activity
from tests.support.slack_requests import SlackSender

NAME = "ack-latency"
SEQUENTIAL = 200
CLIENTS, PER_CLIENT = 20, 20
WARMUP = 20
ROUNDS = 10  # each phase measured in turns: bare app, bot, bare app, ...
RATIO_TARGET = 1.5
SEQUENTIAL_P95_TARGET_MS = 100.0  # README: Slack acknowledgement p95 under 100 ms


class _Capture(SlackSender):
    """Builds the exact bodies the test suite's sender would post, without sending them."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:9", SIGNING_SECRET)
        self.http.close()
        self.captured: tuple[str, str] | None = None

    def post(  # type: ignore[override]
        self,
        body: str,
        *,
        content_type: str = "application/x-www-form-urlencoded",
        timestamp: int | None = None,
        secret: str | None = None,
    ) -> None:
        self.captured = (body, content_type)


def _raw(port: int, body: str, content_type: str) -> bytes:
    """A signed POST /slack/events, as Slack sends it."""
    timestamp = str(int(time.time()))
    signature = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=timestamp, body=body)
    data = body.encode()
    head = (
        f"POST /slack/events HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        f"Content-Type: {content_type}\r\nX-Slack-Request-Timestamp: {timestamp}\r\n"
        f"X-Slack-Signature: {signature}\r\nContent-Length: {len(data)}\r\n\r\n"
    )
    return head.encode() + data


@functools.cache
def _capture() -> _Capture:
    """One, reused: building a sender makes an HTTP client (an SSL context: 25 ms each)."""
    return _Capture()


def command(port: int, user: str) -> bytes:
    capture = _capture()
    capture.command(user)
    assert capture.captured
    return _raw(port, *capture.captured)


def submission(port: int, user: str) -> bytes:
    capture = _capture()
    capture.submit_request(
        user,
        resource="bench-db",
        justification=f"benchmark {uuid.uuid4().hex[:8]}",
        duration_seconds=900,
    )
    assert capture.captured
    return _raw(port, *capture.captured)


@dataclass
class Samples:
    latencies: list[float]  # ms
    failures: int


async def _client(port: int, requests: list[bytes], out: Samples) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        for request in requests:
            started = time.perf_counter()
            writer.write(request)
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            lines = head.decode("latin-1").split("\r\n")
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:] if line)
            }
            if headers.get("transfer-encoding", "").lower() == "chunked":
                while True:
                    size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                    await reader.readexactly(size + 2)
                    if size == 0:
                        break
                body = b""
            else:
                body = await reader.readexactly(int(headers.get("content-length") or 0))
            out.latencies.append((time.perf_counter() - started) * 1000)
            status = int(lines[0].split()[1])
            if status != 200 or body.strip() not in (b"", b"{}"):
                out.failures += 1
            if headers.get("connection", "").lower() == "close":
                writer.close()
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
    finally:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()


def measure(port: int, build: Callable[[int, str], bytes], clients: int, each: int) -> Samples:
    # One person per request: the per-person caps (MAX_OPEN_REQUESTS) hold a person to a few
    # open requests, and a burst of submissions comes from many people.
    batches = [[build(port, f"UACK{c:04d}{n:03d}") for n in range(each)] for c in range(clients)]
    samples = Samples([], 0)

    async def main() -> None:
        await asyncio.gather(*(_client(port, batch, samples) for batch in batches))

    asyncio.run(main())
    return samples


IDLE_WINDOW = 0.5  # seconds
IDLE_SHARE = 0.1  # of one core: a bot delivering its paced Slack backlog uses a few percent
SETTLE_TIMEOUT = 60.0


def _settle(apps: list[BotProcess]) -> bool:
    """Until every app has used under IDLE_SHARE of a core over IDLE_WINDOW: what the last
    phase set off is done (a bot's after-ack work included), so that neither app is measured
    while the other, or its own backlog, takes the CPU."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    used = [process_cpu_seconds(app.process.pid) for app in apps]
    while time.monotonic() < deadline:
        time.sleep(IDLE_WINDOW)
        wait_for(lambda: True, timeout=0, bots=apps)  # sample RSS; raise if an app died
        now = [process_cpu_seconds(app.process.pid) for app in apps]
        busy = max(after - before for before, after in zip(used, now, strict=True))
        if busy < IDLE_SHARE * IDLE_WINDOW:
            return True
        used = now
    return False


PHASES: list[tuple[str, Callable[[int, str], bytes], int, int]] = [
    ("/access, sequential", command, 1, SEQUENTIAL),
    ("submission, sequential", submission, 1, SEQUENTIAL),
    (f"/access, {CLIENTS} concurrent", command, CLIENTS, PER_CLIENT),
    (f"submission, {CLIENTS} concurrent", submission, CLIENTS, PER_CLIENT),
]


def _warm(app: BotProcess) -> None:
    app.wait_ready()
    measure(app.port, command, 1, WARMUP)
    measure(app.port, submission, 1, WARMUP)


def _measure_apps(
    bench: Bench, apps: list[BotProcess], scale: float, others: list[BotProcess]
) -> dict[str, dict[str, Samples]]:
    """Each phase in ROUNDS rounds, the apps taking turns within each round, each measurement
    started with both apps (and `others`: the bot's worker) idle, the samples of every round
    pooled per app: drift of the machine between two measurements a minute apart falls on
    both apps alike."""
    results: dict[str, dict[str, Samples]] = {app.name: {} for app in apps}
    for label, build, clients, each in PHASES:
        each = max(1, round(each * scale))
        for _ in range(ROUNDS):
            for app in apps:
                if not _settle(apps + others):
                    bench.log(f"{label}: an app was still busy after {SETTLE_TIMEOUT:.0f} s")
                samples = measure(app.port, build, clients, each)
                pooled = results[app.name].setdefault(label, Samples([], 0))
                pooled.latencies += samples.latencies
                pooled.failures += samples.failures
                app.sample()
        for app in apps:
            samples = results[app.name][label]
            bench.log(
                f"{app.name}: {label}: p50 {percentile(samples.latencies, 50):.1f} ms, "
                f"p99 {percentile(samples.latencies, 99):.1f} ms"
            )
    return results


def _jobs_left(database_url: str) -> tuple[int, int]:
    """After-ack jobs the web process stored that are not done yet, and those given up."""
    with psycopg.connect(conninfo(database_url)) as connection:
        row = connection.execute(
            "SELECT count(*) FILTER (WHERE failed_at IS NULL),"
            " count(*) FILTER (WHERE failed_at IS NOT NULL) FROM after_ack_jobs"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def run(bench: Bench) -> list[Row]:
    rows: list[Row] = []
    with ExitStack() as stack:
        slack = SlackApi(BOT_TOKEN, latency=SLACK_LATENCY)
        stack.callback(slack.stop)
        target = WebhookTarget(WEBHOOK_SECRET, latency=TARGET_LATENCY)
        stack.callback(target.stop)
        database_url = stack.enter_context(bench.database())
        workdir = stack.enter_context(bench.workdir(NAME))
        write_workflows(workdir / "workflows", [BenchResource("bench-db", target.url)])
        started = time.monotonic()
        postgres_mark = bench.postgres_cpu()
        settings = {
            "database_url": database_url,
            "slack_api_url": slack.api_url,
            "workflows_dir": workdir / "workflows",
            "overrides": bench.bot_env,
        }
        bare_database = stack.enter_context(bench.database())
        bare = start_bare_app(**{**settings, "database_url": bare_database})  # type: ignore[arg-type]
        stack.callback(bare.stop)
        activity = database_activity(database_url)
        # The bot as it is deployed for load: a web process answers Slack and stores the work,
        # a worker process does it (`accessbot serve --role web|worker`).
        role = {**bench.bot_env, "PROCESS_ROLE": "web"}
        bot = start_bot("bot", **{**settings, "overrides": role})  # type: ignore[arg-type]
        stack.callback(bot.stop)
        role = {**bench.bot_env, "PROCESS_ROLE": "worker"}
        worker = start_bot("bot-worker", **{**settings, "overrides": role})  # type: ignore[arg-type]
        stack.callback(worker.stop)
        worker.wait_ready()
        _warm(bare)
        _warm(bot)
        results = _measure_apps(bench, [bare, bot], bench.scale, [worker])
        baseline, measured = results[bare.name], results[bot.name]
        submissions = WARMUP + sum(
            len(samples.latencies) for label, samples in measured.items() if "submission" in label
        )
        wait_for(lambda: _jobs_left(database_url) == (0, 0), timeout=60, bots=[bot, worker])
        left, failed = _jobs_left(database_url)
        work = activity_row(
            NAME, activity, database_activity(database_url), submissions, "submission"
        )
        rows.append(
            Row(
                NAME,
                "after-ack jobs left undone / failed (the worker's)",
                f"{left} / {failed}",
                "0 / 0",
                left == failed == 0,
            )
        )
        for label, *_ in PHASES:
            ours, base = measured[label], baseline[label]
            p99, base_p99 = percentile(ours.latencies, 99), percentile(base.latencies, 99)
            ratio = p99 / base_p99
            gated = label.startswith("submission") and "concurrent" in label
            rows.append(
                Row(
                    NAME,
                    f"{label}: p50 / p99 (bare app)",
                    f"{percentile(ours.latencies, 50):.1f} / {p99:.1f} ms "
                    f"({percentile(base.latencies, 50):.1f} / {base_p99:.1f})",
                )
            )
            rows.append(
                Row(
                    NAME,
                    f"{label}: p99 ratio to bare",
                    f"{ratio:.2f}x",
                    f"≤ {RATIO_TARGET}x" if gated else "",
                    ratio <= RATIO_TARGET if gated else None,
                )
            )
            if "sequential" in label:
                p95 = percentile(ours.latencies, 95)
                rows.append(
                    Row(
                        NAME,
                        f"{label}: p95",
                        f"{p95:.1f} ms",
                        f"< {SEQUENTIAL_P95_TARGET_MS:.0f} ms",
                        p95 < SEQUENTIAL_P95_TARGET_MS,
                    )
                )
            failures = ours.failures + base.failures
            if failures:
                rows.append(
                    Row(NAME, f"{label}: non-empty or non-200 acks", str(failures), "0", False)
                )
        rows += resource_rows(
            NAME,
            [bare, bot, worker],
            [slack, target],
            time.monotonic() - started,
            bench.postgres_cpu() - postgres_mark,
        )
        rows.append(work)
        rows.append(errors_row(NAME, [bot, worker]))
        return rows
