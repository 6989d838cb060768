"""Durable after-ack jobs: what a listener acknowledged is stored before the ack, and done by a
process that runs the job loop, this one or another (`accessbot serve --role web|worker`)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, text

from app.core.models import AfterAckJob, RequestState
from app.core.ports import utcnow
from app.slack.ids import Ids
from tests.support.bot import APPROVER, REQUESTER, Bot
from tests.support.wait import wait_until


def jobs(bot: Bot) -> list[AfterAckJob]:
    with bot.sessions() as session:
        return list(session.scalars(select(AfterAckJob).order_by(AfterAckJob.id)))


def test_a_web_process_stores_the_work_and_a_worker_process_does_it(
    bot_factory: Callable[..., Bot],
) -> None:
    web = bot_factory(process_role="web")
    assert httpx.get(f"{web.url}/readyz").status_code == 200  # it never sweeps: not needed

    response = web.sender.submit_request(
        REQUESTER, resource="orders-db", justification="INC-1: stuck orders", duration_seconds=900
    )

    assert response.status_code == 200 and response.content == b""
    (job,) = jobs(web)  # stored before the ack went out
    assert job.kind == "store_request" and job.args[0] == REQUESTER
    time.sleep(0.5)
    assert web.requests() == [], "a web process does none of the work itself"
    assert jobs(web)[0].lease_owner is None
    metrics = httpx.get(f"{web.url}/metrics").text  # what an alert on "no worker" reads
    assert 'accessbot_after_ack_jobs{state="waiting"} 1.0' in metrics
    (age,) = [line for line in metrics.splitlines() if line.startswith("accessbot_after_ack_job_")]
    assert float(age.split()[-1]) >= 0.5

    worker = bot_factory(process_role="worker")
    request = wait_until(lambda: web.requests() and web.requests()[0].approvers_message_ts)
    assert request
    assert jobs(web) == []  # done, and gone
    (stored,) = web.requests()
    assert stored.justification == "INC-1: stuck orders"

    # The worker is idle now, and would not look again for an hour: only the web process's
    # NOTIFY can wake it.
    worker.runtime.jobs.idle_wait = 3600.0
    worker.runtime.jobs.kick()
    time.sleep(0.2)
    clicked_at = time.monotonic()
    web.click(APPROVER, Ids.APPROVE, stored)

    (click,) = jobs(web)
    assert click.kind == "decide"
    # What the job keeps of the click: who, where and which button; not Slack's legacy
    # verification token, nor the message the button was on.
    assert "legacy" not in json.dumps(click.args) and "message" not in click.args[0]
    wait_until(lambda: web.requests()[0].state == RequestState.APPROVED, timeout=5)
    assert time.monotonic() - clicked_at < 3
    wait_until(lambda: web.webhook.events_of("grant"), timeout=10)  # by the worker


def test_nothing_is_acknowledged_that_could_not_be_stored(bot: Bot) -> None:
    with bot.sessions.begin() as session:
        session.execute(text("ALTER TABLE after_ack_jobs RENAME TO after_ack_jobs_away"))
    try:
        response = bot.sender.submit_request(
            REQUESTER, resource="orders-db", justification="INC-2", duration_seconds=900
        )
    finally:
        with bot.sessions.begin() as session:
            session.execute(text("ALTER TABLE after_ack_jobs_away RENAME TO after_ack_jobs"))

    # Slack shows the person an error instead of closing the modal as if all were well.
    assert response.status_code != 200
    time.sleep(0.5)
    assert bot.requests() == [] and jobs(bot) == []
    assert not bot.slack.calls_to("chat.postMessage")


def test_a_failing_job_is_tried_again_then_kept_and_harms_no_other(
    bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    queue = bot.runtime.after_ack.jobs
    assert queue is not None
    queue.retry_after = timedelta(milliseconds=100)
    tries: list[float] = []

    def explode(secret: str) -> None:
        tries.append(time.monotonic())
        raise ValueError("boom")

    bot.runtime.after_ack.define("explode", explode)
    with caplog.at_level(logging.ERROR, logger="app.core.jobs"):
        bot.runtime.after_ack.later("explode", "xoxb-not-to-be-logged")
        request, _post = bot.request_access()  # ordinary work goes on meanwhile

        failed = wait_until(lambda: [j for j in jobs(bot) if j.failed_at is not None])

    assert request.state == RequestState.PENDING
    assert len(tries) == queue.max_attempts == 3
    assert tries[2] - tries[1] >= tries[1] - tries[0] >= 0.09  # later each time
    (job,) = failed
    assert job.kind == "explode" and job.attempts == 3
    assert job.last_error == "ValueError: boom" and job.lease_owner is None
    assert "giving up" in caplog.text and "explode" in caplog.text
    assert "xoxb-not-to-be-logged" not in caplog.text
    assert queue.pending() == 0  # kept for an admin, not tried again


def test_a_job_leased_by_a_process_that_died_is_done_once_its_lease_runs_out(bot: Bot) -> None:
    form: dict[str, Any] = {
        "resource_id": "orders-db",
        "duration_seconds": "900",
        "justification": "INC-3: left by a dead process",
        "ticket": None,
    }
    lease_until = utcnow() + timedelta(seconds=1.5)
    with bot.sessions.begin() as session:
        session.add(
            AfterAckJob(
                kind="store_request",
                args=[REQUESTER, "V-DEAD", form],
                lease_owner="dead-host:1:abc",
                lease_until=lease_until,
            )
        )
    bot.runtime.jobs.kick()

    time.sleep(0.7)
    assert bot.requests() == [], "taken over before the lease ran out"
    request = wait_until(lambda: bot.requests() and bot.requests()[0].approvers_message_ts)
    assert request
    (stored,) = bot.requests()
    assert stored.created_at >= lease_until
    assert stored.justification == "INC-3: left by a dead process"
    assert jobs(bot) == []


def test_jobs_are_stored_after_the_server_closed_the_writers_connection(bot: Bot) -> None:
    """Jobs are written on a connection of their own, kept open: one the server has closed (a
    restart, a failover, a terminated backend) is replaced before the next ack's write."""
    bot.request_access()  # the writer's connection is open now
    with bot.sessions.begin() as session:
        ended = session.scalar(
            text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    assert ended
    time.sleep(0.3)  # the server's closing reaches the bot's sockets

    request, _post = bot.request_access(justification="INC-4: after the restart")

    assert request.justification == "INC-4: after the restart"
