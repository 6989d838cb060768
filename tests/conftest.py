from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

from tests.support.bot import (
    APPROVER,
    APPROVER_2,
    OUTSIDER,
    REQUESTER,
    WEBHOOK_SECRET,
    Bot,
    default_workflows,
    start_bot,
)
from tests.support.fake_slack import FakeSlack
from tests.support.postgres import SuitePostgres
from tests.support.webhook_receiver import WebhookReceiver

pytest_plugins = ["tests.support.pagerduty_fixtures"]


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """A command run in-process configures logging for the process (its own handler, its
    level): put the root logger back afterwards, so that later tests still capture logs."""
    from app.logs import NOISY_LOGGERS

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    noisy = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    for handler in handlers:
        if handler not in root.handlers:
            root.addHandler(handler)
    root.setLevel(level)
    for name, saved in noisy.items():
        logging.getLogger(name).setLevel(saved)


@pytest.fixture(scope="session")
def postgres() -> Iterator[SuitePostgres]:
    server = SuitePostgres()
    yield server
    server.stop()


@pytest.fixture
def database_url(postgres: SuitePostgres) -> Iterator[str]:
    name = postgres.new_database()
    yield postgres.url(name)
    postgres.drop_database(name)


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    slack = FakeSlack()
    slack.add_user(REQUESTER, "alice@example.com", "Alice Requester")
    slack.add_user(APPROVER, "bob@example.com", "Bob Approver")
    slack.add_user(APPROVER_2, "carol@example.com", "Carol Approver")
    slack.add_user(OUTSIDER, "mallory@example.com", "Mallory Outsider")
    slack.start()
    yield slack
    slack.stop()


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver(WEBHOOK_SECRET)
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture
def bot_factory(
    database_url: str, fake_slack: FakeSlack, webhook: WebhookReceiver
) -> Iterator[Callable[..., Bot]]:
    bots: list[Bot] = []

    def start(**kwargs: Any) -> Bot:
        bot = start_bot(database_url=database_url, slack=fake_slack, webhook=webhook, **kwargs)
        bots.append(bot)
        return bot

    yield start
    for bot in bots:
        bot.stop()


@pytest.fixture
def bot(bot_factory: Callable[..., Bot]) -> Bot:
    return bot_factory()


@pytest.fixture
def bot_with(bot_factory: Callable[..., Bot], webhook: WebhookReceiver) -> Callable[..., Bot]:
    """A bot whose one workflow is the default with `changes`, and with `settings` set."""

    def start(settings: dict[str, Any] | None = None, **changes: Any) -> Bot:
        (workflow,) = default_workflows(webhook.url)
        return bot_factory(workflows=[replace(workflow, **changes)], **(settings or {}))

    return start
