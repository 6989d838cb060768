"""Production access: read-only database access for incident responders and engineers.

Approvers decide in #access-approvals; whoever PagerDuty shows on call (level 1) is granted at
once. Replace the channel, approver ids and webhook URL with your own.
"""

from datetime import timedelta

from app.workflows import Env, OnCall, Resource, Webhook, Workflow

workflow = Workflow(
    name="production",
    approvers_channel="C0123APPROVERS",
    approvers=["U0AAA", "U0BBB"],
    durations=[timedelta(minutes=15), timedelta(hours=1), timedelta(hours=4)],
    auto_approve=OnCall(escalation_level=1),
    resources=[
        Resource(
            id="orders-db",
            name="Orders DB (read-only)",
            grant=Webhook(url="https://hooks.internal/access", secret=Env("ACCESS_WEBHOOK_SECRET")),
        ),
    ],
)
