"""Production support: the customer-data console, granted through its own access webhook.

Whoever PagerDuty shows on call (level 1) is granted at once; anyone else asks the approvers
in #access-approvals. Replace the channel, approver ids and URL with your own.
"""

from datetime import timedelta

from app.workflows import Env, OnCall, Resource, Webhook, Workflow

workflow = Workflow(
    name="production",
    approvers_channel="C0123APPROVERS",
    approvers=["U0AAA", "U0BBB"],
    durations=[timedelta(minutes=15), timedelta(hours=1), timedelta(hours=4)],
    auto_approve=OnCall(escalation_level=1, max_auto_approvals=10, interval=timedelta(days=1)),
    resources=[
        Resource(
            id="support-console",
            name="Support console (customer data)",
            grant=Webhook(url="https://hooks.internal/access", secret=Env("ACCESS_WEBHOOK_SECRET")),
        ),
    ],
)
