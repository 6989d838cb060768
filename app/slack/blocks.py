"""Block Kit builders. Every message is rendered whole from state, so updating one is idempotent."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from app.core.durations import describe_duration
from app.core.intake import Intake, search_resources
from app.core.models import GrantState, RequestKind, RequestState
from app.core.requests import MAX_JUSTIFICATION
from app.core.views import RequestView
from app.slack import format as fmt
from app.slack.ids import Ids
from app.workflows.loader import Registry
from app.workflows.model import MAX_TICKET, Ticket

Block = dict[str, Any]
SECTION_LIMIT = 3000
MAX_OPTIONS = 100


def _text(text: str) -> dict[str, Any]:
    return {"type": "plain_text", "text": text, "emoji": True}


def _option(label: str, value: str) -> dict[str, Any]:
    return {"text": _text(fmt.clip(label, 75)), "value": value}


# -- the request modal -------------------------------------------------------------------------


EXTERNAL_SELECT_ABOVE = 100  # more resources than this: a type-ahead served by the registry


def resource_select(registry: Registry) -> dict[str, Any]:
    if len(registry) > EXTERNAL_SELECT_ABOVE:
        return {
            "type": "external_select",
            "action_id": Ids.RESOURCE_SELECT,
            "placeholder": _text("Type part of a resource's name"),
            "min_query_length": 1,
        }
    element: dict[str, Any] = {
        "type": "static_select",
        "action_id": Ids.RESOURCE_SELECT,
        "placeholder": _text("Choose a resource"),
    }
    groups = []
    for workflow in registry.workflows:
        options = [_option(r.name, r.id) for r in workflow.resources]
        chunks = [options[i : i + MAX_OPTIONS] for i in range(0, len(options), MAX_OPTIONS)]
        for n, chunk in enumerate(chunks, start=1):
            label = workflow.name if len(chunks) == 1 else f"{workflow.name} ({n}/{len(chunks)})"
            groups.append({"label": _text(fmt.clip(label, 75)), "options": chunk})
    if len(groups) == 1:
        element["options"] = groups[0]["options"]
    else:
        element["option_groups"] = groups[:MAX_OPTIONS]
    return element


def resource_options(registry: Registry, query: str) -> list[dict[str, Any]]:
    """The type-ahead's answer: at most 100 resources matching what was typed."""
    return [_option(r.name, r.id) for r in search_resources(registry, query, limit=MAX_OPTIONS)]


def durations_vary(registry: Registry) -> bool:
    """Do resources offer different durations or tickets? Then choosing one re-renders the
    modal."""
    choices = {
        (tuple(w.durations_for(r)), _ticket_key(w.ticket))
        for w in registry.workflows
        for r in w.resources
    }
    return len(choices) > 1


def _ticket_key(rule: Ticket | None) -> tuple[str, str, bool, str] | None:
    return (rule.pattern, rule.url, rule.required, rule.label) if rule else None


def ticket_rule(registry: Registry, resource_id: str | None) -> Ticket | None:
    """The ticket the modal asks for: the chosen resource's workflow's, or before a resource
    is chosen, the first workflow's that asks for one."""
    found = registry.find(resource_id) if resource_id else None
    if found:
        return found[0].ticket
    return next((w.ticket for w in registry.workflows if w.ticket is not None), None)


def ticket_input(rule: Ticket, initial: str | None) -> Block:
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": Ids.VALUE,
        "max_length": MAX_TICKET,
    }
    if rule.example:
        element["placeholder"] = _text(rule.example)
    if initial:
        element["initial_value"] = initial[:MAX_TICKET]
    return {
        "type": "input",
        "block_id": Ids.TICKET_BLOCK,
        "label": _text(fmt.clip(rule.label, 30)),
        "optional": not rule.required,
        "element": element,
    }


def durations_for(registry: Registry, resource_id: str | None) -> list[timedelta]:
    found = registry.find(resource_id) if resource_id else None
    if found:
        return found[0].durations_for(found[1])
    first = registry.workflows[0]
    return first.durations_for(first.resources[0])


def request_modal(
    registry: Registry,
    *,
    channel_id: str | None,
    resource_id: str | None = None,
    intake: Intake | None = None,
    errors: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The /access modal. `resource_id` (once chosen) decides which durations are offered.

    `intake` prefills it from `/access <resource> [<duration> <why>]`; `errors` (by field) are
    shown under the fields they are about, as Slack shows a refused submission's."""
    intake = intake or Intake()
    errors = errors or {}
    resource_id = resource_id or intake.resource_id
    resource_element = resource_select(registry)
    if resource_id and registry.find(resource_id):
        found = registry.find(resource_id)
        assert found
        resource_element["initial_option"] = _option(found[1].name, resource_id)
    durations = durations_for(registry, resource_id)
    duration_element: dict[str, Any] = {
        "type": "static_select",
        "action_id": Ids.VALUE,
        "placeholder": _text("How long?"),
        "options": [_option(describe_duration(d), str(int(d.total_seconds()))) for d in durations],
    }
    chosen = [o for o in duration_element["options"] if o["value"] == intake.duration_seconds]
    if chosen:
        duration_element["initial_option"] = chosen[0]
    resource_block: Block = {
        "type": "input",
        "block_id": Ids.RESOURCE_BLOCK,
        "label": _text("Resource"),
        "dispatch_action": durations_vary(registry),
        "element": resource_element,
    }
    if intake.unknown:
        resource_block["hint"] = _text(
            fmt.clip(
                f"No resource is called “{fmt.visible(intake.unknown)}”: choose one here.", 2000
            )
        )
    justification = justification_input("What are you doing, and why does it need this access?")
    if intake.justification:
        justification["element"]["initial_value"] = intake.justification[:MAX_JUSTIFICATION]
    duration_block: Block = {
        "type": "input",
        "block_id": Ids.DURATION_BLOCK,
        "label": _text("Duration"),
        "element": duration_element,
    }
    fields = [
        ("resource", resource_block),
        ("justification", justification),
        ("duration", duration_block),
    ]
    rule = ticket_rule(registry, resource_id)
    if rule is not None:
        fields.append(("ticket", ticket_input(rule, intake.ticket)))
    for field, block in fields:
        if field in errors:
            block["hint"] = _text(fmt.clip(f"⚠️ {errors[field]}", 2000))
    return {
        "type": "modal",
        "callback_id": Ids.REQUEST_MODAL,
        "title": _text("Request access"),
        "submit": _text("Request"),
        "close": _text("Cancel"),
        "private_metadata": json.dumps({"channel": channel_id}),
        "blocks": [block for _, block in fields],
    }


def submitting(registry: Registry, intake: Intake) -> str:
    """The ephemeral answer to a one-line `/access` that is complete and valid."""
    found = registry.find(intake.resource_id or "")
    name = fmt.escape(found[1].name) if found else "it"
    seconds = int(intake.duration_seconds or 0)
    return (
        f"📨 Asking for *{name}* for {describe_duration(timedelta(seconds=seconds))}. "
        "I'll message you at each step."
    )


def break_glass_refused(errors: dict[str, str]) -> str:
    problems = "\n".join(f"• {fmt.escape(message)}" for message in errors.values())
    return f"🚨 Break-glass needs `/access break-glass <resource> <duration> <reason>`:\n{problems}"


def justification_input(placeholder: str) -> Block:
    return {
        "type": "input",
        "block_id": Ids.JUSTIFICATION_BLOCK,
        "label": _text("Justification"),
        "element": {
            "type": "plain_text_input",
            "action_id": Ids.VALUE,
            "multiline": True,
            "max_length": MAX_JUSTIFICATION,
            "placeholder": _text(placeholder),
        },
    }


def read_request_form(view: dict[str, Any]) -> dict[str, str | None]:
    """The submitted values, whatever shape a (possibly forged) payload has."""
    values = view.get("state", {}).get("values", {}) if isinstance(view, dict) else {}

    def selected(block: str, action: str) -> str | None:
        element = (values.get(block) or {}).get(action) or {}
        option = element.get("selected_option") or {}
        value = option.get("value") if isinstance(option, dict) else None
        return value if isinstance(value, str) else None

    justification = ((values.get(Ids.JUSTIFICATION_BLOCK) or {}).get(Ids.VALUE) or {}).get("value")
    ticket = ((values.get(Ids.TICKET_BLOCK) or {}).get(Ids.VALUE) or {}).get("value")
    return {
        "resource_id": selected(Ids.RESOURCE_BLOCK, Ids.RESOURCE_SELECT),
        "duration_seconds": selected(Ids.DURATION_BLOCK, Ids.VALUE),
        "justification": justification if isinstance(justification, str) else None,
        "ticket": ticket if isinstance(ticket, str) else None,
    }


# -- the approvers' message -----------------------------------------------------------------


def _people(slack_ids: tuple[str, ...]) -> str:
    return ", ".join(fmt.user(s) for s in slack_ids)


def _approvers(view: RequestView) -> str:
    """Who approved; the requester's own approval (`allow_self_approval`) said as such."""
    names = [
        f"{fmt.user(s)} (their own approval)" if s == view.requester_slack_id else fmt.user(s)
        for s in view.approvals
    ]
    return ", ".join(names) or fmt.user(view.decided_by)


def approved_by(view: RequestView) -> str:
    if view.decided_via == "break_glass":
        return f"🚨 Break-glass: {fmt.user(view.requester_slack_id)} granted it to themself"
    if view.decided_via == "on_call":
        return "✅ Approved automatically (on call)"
    if view.decided_via == "policy":
        return "✅ Approved automatically by the workflow's policy"
    return f"✅ Approved by {_approvers(view)}{_less(view)}"


def status_line(view: RequestView) -> str:
    if view.state == RequestState.PENDING:
        if view.required_approvals > 1:
            tally = f"⏳ {len(view.approvals)} of {view.required_approvals} approvals"
            return f"{tally}: {_approvers(view)}{_less(view)}." if view.approvals else f"{tally}."
        return "⏳ Waiting for an approver."
    if view.state == RequestState.DENIED:
        if view.decided_via == "policy":
            return "❌ Denied by the workflow's policy."
        return f"❌ Denied by {fmt.user(view.decided_by)}."
    if view.state == RequestState.CANCELLED:
        return f"↩️ Withdrawn by {fmt.user(view.requester_slack_id)}."
    if view.state == RequestState.EXPIRED:
        return "⌛ Expired: nobody decided in time."
    approved = approved_by(view)
    if view.kind == RequestKind.EXTENSION:
        return f"{approved}: the extension is applied to the access it extends."
    if view.grant_state == GrantState.GRANTING:
        if view.grant_attempts:
            return (
                f"{approved}. ⏳ Granting: attempt {view.grant_attempts} failed "
                f"({fmt.escape(fmt.clip(view.grant_error or '', 300))}); retrying."
            )
        return f"{approved}. ⏳ Granting…"
    if view.grant_state == GrantState.ACTIVE and view.expires_at:
        extended = " (extended)" if view.extended else ""
        if ends_with_shift(view):
            extended += " (the end of the on-call shift)"
        return f"{approved}. 🔓 Access granted until {fmt.date(view.expires_at)}{extended}."
    if view.grant_state == GrantState.FAILED:
        return (
            f"{approved}, but ⚠️ the grant failed after {view.grant_attempts} attempts: "
            f"{fmt.escape(fmt.clip(view.grant_error or 'unknown error', 500))}"
        )
    if view.grant_state == GrantState.REVOKING and view.end_reason == "grant_failed":
        return (
            f"{approved}, but ⚠️ the grant failed "
            f"({fmt.escape(fmt.clip(view.end_note or '', 300))}); revoking it in case the "
            "target applied it."
        )
    if view.grant_state == GrantState.REVOKING and not view.grant_attempts:
        return f"{approved}. ⏳ Revoking ({view.end_reason})…"
    if view.grant_state == GrantState.REVOKING:
        return (
            f"{approved}. ⚠️ Revoking ({view.end_reason}) has failed {view.grant_attempts} "
            f"times: {fmt.escape(fmt.clip(view.grant_error or '', 300))}. Still retrying."
        )
    if view.grant_state == GrantState.REVOKED and view.ended_at and view.kept:
        why = KEPT.get(view.kept, view.kept)
        return f"{approved}. 🔒 The grant ended {fmt.date(view.ended_at)}; the access stays: {why}."
    if view.grant_state == GrantState.REVOKED and view.ended_at:
        if view.end_reason == "expired":
            return f"{approved}. 🔒 Access expired and was revoked {fmt.date(view.ended_at)}."
        return (
            f"{approved}. 🔒 Access revoked by {fmt.user(view.ended_by)} {fmt.date(view.ended_at)}."
        )
    return approved + "."


KEPT = {
    "held_before": "they had it before this grant",
    "another_grant": "another of their grants still covers it",
}


def button(text: str, action_id: str, value: str, style: str | None = None) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": _text(text),
        "value": value,
    }
    if style:
        element["style"] = style
    return element


def actions(*elements: dict[str, Any], block_id: str | None = None) -> Block:
    block: Block = {"type": "actions", "elements": list(elements)}
    if block_id:
        block["block_id"] = block_id
    return block


def summary_of(view: RequestView) -> str:
    who = fmt.user(view.requester_slack_id)
    what = fmt.escape(view.resource_name)
    asked = describe_duration(view.asked_duration or view.duration)
    ticket = ticket_ref(view)
    if view.kind == RequestKind.EXTENSION:
        return f"{who} asks for {asked} more on {what}{ticket}"
    return f"{who} requests access to {what} for {asked}{ticket}"


def _less(view: RequestView) -> str:
    """ " for 15 minutes (asked 1 hour)" when an approver approved less than asked."""
    if view.asked_duration is None:
        return ""
    return (
        f" for {describe_duration(view.duration)} (asked {describe_duration(view.asked_duration)})"
    )


def duration_field(view: RequestView) -> str:
    if view.asked_duration is None:
        return describe_duration(view.duration)
    return f"{describe_duration(view.duration)} (asked {describe_duration(view.asked_duration)})"


def approvers_message(view: RequestView) -> tuple[str, list[Block]]:
    summary = summary_of(view)
    if view.decided_via == "break_glass":
        summary = f"🚨 {view.alert or ''} BREAK-GLASS: {summary}".replace("  ", " ")
    blocks: list[Block] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": f"*{summary}*"}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Requester:*\n{fmt.user(view.requester_slack_id)}"},
                {
                    "type": "mrkdwn",
                    "text": f"*Resource:*\n{fmt.escape(view.resource_name)} (`{view.resource_id}`)",
                },
                {"type": "mrkdwn", "text": f"*Duration:*\n{duration_field(view)}"},
                {"type": "mrkdwn", "text": f"*Workflow:*\n{fmt.escape(view.workflow)}"},
            ],
        },
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "*Justification:*\n" + fmt.quote(view.justification, SECTION_LIMIT - 20),
            },
        },
    ]
    if view.decision_note:
        note = fmt.escape(view.decision_note)
        if view.decided_via == "on_call":
            note = f"🤖 PagerDuty shows {fmt.user(view.requester_slack_id)} {note}."
        elif view.decided_via == "policy":
            note = f"🤖 Policy: {note}"
        elif view.decided_via == "break_glass":
            note = f"🚨 {note}"
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": fmt.clip(note, 2000)}]}
        )
    blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": status_line(view)}})
    if view.decided_via == "break_glass":
        blocks.extend(review_blocks(view))
    if view.state == RequestState.PENDING:
        blocks.append(decision_buttons(view))
    elif view.grant_state == GrantState.ACTIVE and view.grant_id:
        elements = [button("Revoke", Ids.GIVE_BACK, str(view.grant_id), "danger")]
        if view.decided_via == "break_glass" and not view.reviewed_by:
            elements.insert(0, button("Reviewed", Ids.REVIEW, str(view.id), "primary"))
        blocks.append(actions(*elements))
    return f"{summary}. {status_line(view)}", blocks


def review_blocks(view: RequestView) -> list[Block]:
    """Where a break-glass grant's review stands."""
    if view.reviewed_by:
        text = f"👀 Reviewed by {fmt.user(view.reviewed_by)}."
    else:
        text = "👀 Not reviewed yet: an approver checks it, then clicks *Reviewed* (or *Revoke*)."
    return [{"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}]


def break_glass_unreviewed(view: RequestView, waited: timedelta) -> str:
    """A break-glass grant nobody reviewed in time, announced again with the workflow's alert."""
    alert = f"{view.alert} " if view.alert else ""
    return (
        f"🚨 {alert}{fmt.user(view.requester_slack_id)}'s break-glass access is still "
        f"unreviewed after {describe_duration(waited)}. An approver: check it, then click "
        "*Reviewed* (or *Revoke*)."
    )


def escalation_message(view: RequestView, waited: timedelta) -> tuple[str, list[Block]]:
    """A stale request re-posted to the workflow's `escalate_to` channel."""
    head = (
        f"⏫ *Waiting {describe_duration(waited)} for a decision* in "
        f"<#{view.approvers_channel}>: {summary_of(view)}"
    )
    message_blocks: list[Block] = [
        section(head),
        section("*Justification:*\n" + fmt.quote(view.justification, SECTION_LIMIT - 20)),
        decision_buttons(view),
    ]
    return f"⏫ Waiting {describe_duration(waited)} for a decision: {summary_of(view)}", (
        message_blocks
    )


def escalation_nobody(view: RequestView, waited: timedelta, why: str | None) -> str:
    """Escalating to the on-call approvers found none of them on call."""
    reason = f" ({fmt.escape(why)})" if why else ""
    return (
        f"⏫ {summary_of(view)}: it has waited {describe_duration(waited)} for a decision, and "
        f"no approver is on call in PagerDuty to escalate to{reason}."
    )


def escalation_call(view: RequestView, group: str, waited: timedelta) -> str:
    """The line that calls a user group to a stale request, in the approvers' thread."""
    return (
        f"⏫ <!subteam^{group}> {summary_of(view)}: it has waited "
        f"{describe_duration(waited)} for a decision."
    )


# -- direct messages to the requester ---------------------------------------------------------


def decision_buttons(view: RequestView) -> Block:
    elements = [
        button("Approve", Ids.APPROVE, str(view.id), "primary"),
        button("Deny", Ids.DENY, str(view.id), "danger"),
    ]
    if view.shorter:
        elements.append(approve_for_less(view))
    return actions(*elements, block_id=Ids.DECISION_BLOCK)


def approve_for_less(view: RequestView) -> dict[str, Any]:
    """A menu beside Approve: approve one of the policy's durations shorter than asked."""
    return {
        "type": "static_select",
        "action_id": Ids.APPROVE_FOR,
        "placeholder": _text("Approve for less…"),
        "options": [
            _option(f"Approve for {describe_duration(d)}", f"{view.id}|{int(d.total_seconds())}")
            for d in view.shorter[:MAX_OPTIONS]
        ],
    }


def read_approve_for(value: str) -> tuple[str, timedelta | None]:
    """The request id and duration an "Approve for less…" choice carries."""
    request_id, _, seconds = value.partition("|")
    try:
        duration = timedelta(seconds=int(seconds))
    except ValueError:
        return request_id, None
    return request_id, duration if duration > timedelta(0) else None


def section(text: str, accessory: dict[str, Any] | None = None) -> Block:
    block: Block = {"type": "section", "text": {"type": "mrkdwn", "text": fmt.clip(text, 3000)}}
    if accessory:
        block["accessory"] = accessory
    return block


def dm_granted_blocks(view: RequestView) -> list[Block]:
    assert view.grant_id
    return [
        section(dm_granted(view)),
        actions(
            button("Extend", Ids.EXTEND, str(view.grant_id)),
            button("Give back access", Ids.GIVE_BACK, str(view.grant_id), "danger"),
        ),
    ]


def dm_submitted_blocks(view: RequestView) -> list[Block]:
    return [
        section(dm_submitted(view)),
        actions(button("Cancel request", Ids.CANCEL, str(view.id))),
    ]


def dm_reminder(view: RequestView) -> str:
    assert view.expires_at
    return f"⏰ Your access to {_what(view)} ends {fmt.date(view.expires_at)}."


def dm_reminder_blocks(view: RequestView) -> list[Block]:
    assert view.grant_id
    return [
        section(dm_reminder(view) + " Need longer? Ask for an extension."),
        actions(button("Extend", Ids.EXTEND, str(view.grant_id), "primary")),
    ]


def dm_closed(view: RequestView) -> str:
    what = "extension" if view.kind == RequestKind.EXTENSION else "request"
    if view.state == RequestState.CANCELLED:
        return f"↩️ You withdrew your {what} for {_what(view)}."
    return f"⌛ Your {what} for {_what(view)} expired: nobody decided in time."


def dm_extended(view: RequestView, extension: RequestView) -> str:
    assert view.expires_at
    return (
        f"🔓 Your access to {_what(view)} now lasts until {fmt.date(view.expires_at)} "
        f"(extended by {describe_duration(extension.duration)})."
    )


def dm_extension_failed(view: RequestView, why: str) -> str:
    return f"⚠️ Your access to {_what(view)} could not be extended: {fmt.escape(why)}."


def extension_modal(grant: RequestView, choices: list[timedelta]) -> dict[str, Any]:
    assert grant.expires_at and grant.grant_id
    return {
        "type": "modal",
        "callback_id": Ids.EXTENSION_MODAL,
        "title": _text("Extend access"),
        "submit": _text("Ask"),
        "close": _text("Cancel"),
        "private_metadata": json.dumps({"grant": str(grant.grant_id)}),
        "blocks": [
            section(f"{_what(grant)} is yours until {fmt.date(grant.expires_at)}."),
            {
                "type": "input",
                "block_id": Ids.DURATION_BLOCK,
                "label": _text("How much longer"),
                "element": {
                    "type": "static_select",
                    "action_id": Ids.VALUE,
                    "options": [
                        _option(describe_duration(d), str(int(d.total_seconds()))) for d in choices
                    ],
                },
            },
            justification_input("Why do you need more time?"),
        ],
    }


def read_extension_form(view: dict[str, Any]) -> dict[str, str | None]:
    values = view.get("state", {}).get("values", {}) if isinstance(view, dict) else {}
    duration = ((values.get(Ids.DURATION_BLOCK) or {}).get(Ids.VALUE) or {}).get("selected_option")
    text = ((values.get(Ids.JUSTIFICATION_BLOCK) or {}).get(Ids.VALUE) or {}).get("value")
    metadata = json.loads(view.get("private_metadata") or "{}") if isinstance(view, dict) else {}
    return {
        "grant_id": str(metadata.get("grant") or ""),
        "duration_seconds": duration.get("value") if isinstance(duration, dict) else None,
        "justification": text if isinstance(text, str) else None,
    }


def _what(view: RequestView) -> str:
    return f"*{fmt.escape(view.resource_name)}*{ticket_ref(view)}"


def ticket_link(view: RequestView) -> str:
    """The ticket as a mrkdwn link (the reference escaped; the URL quoted when stored)."""
    if not view.ticket:
        return ""
    text = fmt.escape(view.ticket).replace("|", "¦")
    if not view.ticket_url:
        return text
    url = view.ticket_url.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")
    return f"<{url}|{text}>"


def ticket_ref(view: RequestView) -> str:
    return f" ({ticket_link(view)})" if view.ticket else ""


def dm_submitted(view: RequestView) -> str:
    needs = f" It needs {view.required_approvals} approvals." if view.required_approvals > 1 else ""
    why = f"\n> {fmt.escape(view.decision_note)}" if view.decision_note else ""
    return (
        f"📨 Your request for {_what(view)} ({describe_duration(view.duration)}) was sent to the "
        f"approvers in <#{view.approvers_channel}>.{needs} I'll message you when they decide."
        f"{why}"
    )


def dm_denied(view: RequestView) -> str:
    if view.decided_via == "policy":
        return (
            f"❌ Your request for {_what(view)} was denied by the workflow's policy: "
            f"{fmt.escape(view.decision_note or '')}"
        )
    return f"❌ {fmt.user(view.decided_by)} denied your request for {_what(view)}."


def dm_granted(view: RequestView) -> str:
    assert view.expires_at
    if view.decided_via == "break_glass":
        why = "break-glass: the approvers have been alerted and will review it"
    elif view.decided_via == "on_call":
        evidence = fmt.escape(view.decision_note or "on call")
        why = f"approved automatically because PagerDuty shows you {evidence}"
    elif view.decided_via == "policy":
        why = f"approved automatically by policy: {fmt.escape(view.decision_note or '')}"
    elif view.requester_slack_id in view.approvals and len(view.approvals) == 1:
        why = "you approved it yourself, as the policy allows"
    else:
        why = f"approved by {_approvers(view)}"
    granted = (
        f"🔓 Access to {_what(view)} is granted until {fmt.date(view.expires_at)} ({why})."
        f"{shift_note(view)}{less_note(view)}"
    )
    if view.held_before:
        granted += (
            " You already had this access before this grant; it stays in place when the grant ends."
        )
    return granted


def less_note(view: RequestView) -> str:
    if view.asked_duration is None:
        return ""
    return (
        f" It was approved for {describe_duration(view.duration)}, less than the "
        f"{describe_duration(view.asked_duration)} you asked for."
    )


def ends_with_shift(view: RequestView) -> bool:
    """The grant ends when the on-call shift does, sooner than the duration chosen."""
    if view.not_after is None or view.expires_at is None:
        return False
    return view.expires_at >= view.not_after - timedelta(seconds=1)


def shift_note(view: RequestView) -> str:
    """Which end applies to an `OnCall(end_with_shift=True)` grant: the shift's or the chosen."""
    if view.not_after is None:
        return ""
    chosen = describe_duration(view.duration)
    if ends_with_shift(view):
        return f" It ends with your on-call shift, sooner than the {chosen} you chose."
    return (
        f" It lasts the {chosen} you chose; your on-call shift ends later "
        f"({fmt.date(view.not_after)})."
    )


def dm_grant_failed(view: RequestView) -> str:
    who = "automatically" if view.auto_approved else f"by {_people(view.approvals)}"
    return (
        f"⚠️ Your request for {_what(view)} was approved {who}, but "
        f"granting it failed: {fmt.escape(fmt.clip(view.grant_error or 'unknown error', 500))}. "
        "The approvers have been told."
    )


def dm_ended(view: RequestView) -> str:
    if view.kept == "held_before":
        return (
            f"🔒 Your grant of {_what(view)} has ended. You had this access before accessbot "
            "granted it, so it was left in place."
        )
    if view.kept == "another_grant":
        return (
            f"🔒 One of your grants of {_what(view)} has ended; your access goes on under "
            "your other grant, which ends later."
        )
    if view.end_reason == "expired":
        return f"🔒 Your access to {_what(view)} has ended: it expired and was revoked."
    if view.ended_by == view.requester_slack_id:
        return f"🔒 You gave back your access to {_what(view)}; it is revoked."
    why = f" Reason: {fmt.escape(view.end_note)}" if view.end_note else ""
    return f"🔒 Your access to {_what(view)} was revoked by {fmt.user(view.ended_by)}.{why}"


def note_revoked_early(view: RequestView) -> str:
    if view.ended_by == view.requester_slack_id:
        return f"🔒 {fmt.user(view.ended_by)} gave back their access to {_what(view)}."
    why = f" Reason: {fmt.escape(view.end_note)}" if view.end_note else ""
    return (
        f"🔒 {fmt.user(view.ended_by)} revoked {fmt.user(view.requester_slack_id)}'s access "
        f"early.{why}"
    )


def alert_grant_failed(view: RequestView) -> str:
    return (
        f"⚠️ Granting {_what(view)} to {fmt.user(view.requester_slack_id)} failed after "
        f"{view.grant_attempts} attempts: {fmt.escape(fmt.clip(view.grant_error or '', 500))}. "
        "Nothing was granted."
    )


def alert_revoke_failing(view: RequestView, overdue: timedelta) -> str:
    late = (
        f" It has outlived its expiry by {describe_duration(overdue)}."
        if overdue >= timedelta(seconds=1)
        else ""
    )
    return (
        f"🚨 Revoking {_what(view)} from {fmt.user(view.requester_slack_id)} has failed "
        f"{view.grant_attempts} times: {fmt.escape(fmt.clip(view.grant_error or '', 500))}."
        f"{late} The access may still be live; accessbot keeps retrying. Check the target by hand."
    )
