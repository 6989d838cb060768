"""PagerDuty: the token works; every escalation policy and schedule an OnCall rule names exists."""

from __future__ import annotations

import httpx2
import pagerduty
from pagerduty import RestApiV2Client

from app.doctor import Check, failed, passed
from app.workflows.loader import Registry


def _why(exc: Exception) -> str:
    if isinstance(exc, pagerduty.HttpError):
        return f"HTTP {exc.response.status_code}"
    return (exc.__cause__ or exc).__class__.__name__


def checks(client: RestApiV2Client | None, registry: Registry) -> list[Check]:
    rules = [(w, w.auto_approve) for w in registry.workflows if w.auto_approve is not None]
    if not rules:
        return []
    if client is None:
        names = ", ".join(w.name for w, _ in rules)
        return [
            failed(
                f"PAGERDUTY_API_TOKEN is not set: on-call auto-approval is off for {names}",
                "set a PagerDuty REST API token (read-only is enough)",
            )
        ]
    try:
        client.jget("/users", params={"limit": 1})
    except (pagerduty.Error, httpx2.HTTPError) as exc:
        return [
            failed(
                f"the PagerDuty token does not work ({_why(exc)})",
                "check PAGERDUTY_API_TOKEN and PAGERDUTY_API_URL (EU: https://api.eu.pagerduty.com)",
            )
        ]
    found = [passed("PagerDuty token works")]
    for workflow, rule in rules:
        assert rule is not None
        named = [
            ("escalation policy", "escalation_policies", i) for i in rule.escalation_policy_ids
        ]
        named += [("schedule", "schedules", i) for i in rule.schedule_ids]
        for kind, collection, ident in named:
            where = f"workflow {workflow.name!r}: PagerDuty {kind} {ident}"
            try:
                client.jget(f"/{collection}/{ident}")
            except (pagerduty.Error, httpx2.HTTPError) as exc:
                found.append(
                    failed(f"{where} cannot be read ({_why(exc)})", f"check the {kind} id")
                )
                continue
            found.append(passed(f"{where} exists"))
    return found
