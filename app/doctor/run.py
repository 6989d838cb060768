"""Runs every check in order; later ones are skipped when what they need is missing."""

from __future__ import annotations

from slack_sdk import WebClient

from app.config import Settings
from app.db.migrate import head_revision
from app.doctor import Check, pagerduty_checks, setup_checks, slack_checks
from app.oncall.pagerduty import make_pagerduty_client


def run(settings: Settings) -> list[Check]:
    checks, registry = setup_checks.workflows(settings.workflows_dir)
    checks += setup_checks.database(settings.database_url, head_revision())
    slack = WebClient(token=settings.bot_token, base_url=settings.slack_api_url, timeout=10)
    token_checks, bot_user = slack_checks.token(slack)
    checks += token_checks
    if registry is None:
        return checks
    if bot_user is not None:
        checks += slack_checks.channels(slack, registry)
        checks += slack_checks.approvers(slack, registry, bot_user)
    pagerduty = None
    if settings.pagerduty_api_token:
        pagerduty = make_pagerduty_client(
            settings.pagerduty_api_token, settings.pagerduty_api_url, timeout=5
        )
    try:
        checks += pagerduty_checks.checks(pagerduty, registry)
    finally:
        if pagerduty is not None:
            pagerduty.close()
    checks += setup_checks.strategies(registry)
    return checks
