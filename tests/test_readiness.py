"""GET /readyz: 200 only when the database answers, is migrated, and the scheduler sweeps."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import timedelta

import httpx
from sqlalchemy import create_engine, text

from app.core.ports import utcnow
from app.readiness import Readiness
from app.server import AccessbotWsgi, make_server
from tests.support.bot import Bot


def readyz(url: str) -> httpx.Response:
    return httpx.get(url + "/readyz", timeout=10)


def test_ready_when_migrated_and_sweeping(bot: Bot) -> None:
    response = readyz(bot.url)
    assert (response.status_code, response.text) == (200, "ready\n")


def test_not_ready_when_the_schema_is_behind(bot: Bot) -> None:
    with bot.sessions.begin() as session:
        session.execute(text("UPDATE alembic_version SET version_num = '0007'"))

    response = readyz(bot.url)

    assert response.status_code == 503
    assert response.text.startswith("database schema is at 0007, this code needs 0")
    assert httpx.get(bot.url + "/healthz").status_code == 200, "liveness stays cheap"


def test_not_ready_when_the_scheduler_stops_sweeping(bot_factory: Callable[..., Bot]) -> None:
    bot = bot_factory(sweep_interval_seconds=0.2)
    assert readyz(bot.url).status_code == 200
    bot.runtime.scheduler.shutdown()  # a wedged scheduler: no more sweeps
    time.sleep(0.8)

    response = readyz(bot.url)

    assert response.status_code == 503
    assert "the scheduler last swept" in response.text and "every 0.2 s expected" in response.text


def test_not_ready_when_the_database_is_unreachable() -> None:
    engine = create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=1")
    readiness = Readiness(
        engine=engine,
        head="0008",
        last_sweep=utcnow,
        sweep_interval=timedelta(seconds=30),
        clock=utcnow,
    )
    server = make_server(
        AccessbotWsgi(slack=None, engine=engine, readiness=readiness), host="127.0.0.1", port=0
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        response = readyz(f"http://127.0.0.1:{server.port}")
    finally:
        server.stop()
        thread.join(timeout=5)
    assert response.status_code == 503
    assert response.text == "database unreachable or not migrated (OperationalError)\n"
