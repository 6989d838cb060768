"""Admin access to the orders database: two approvals, and only for whoever is on call or
during business hours (09:00-18:00 UTC, Monday to Friday). Never more than an hour.
"""

from datetime import timedelta

from app.workflows import (
    AccessRequestInfo,
    Decision,
    OnCall,
    PostgresRole,
    Resource,
    Workflow,
)

BUSINESS_HOURS = range(9, 18)  # hours of the day, UTC
WORKDAYS = range(0, 5)  # Monday to Friday


def is_business_hours(request: AccessRequestInfo) -> bool:
    return request.now.weekday() in WORKDAYS and request.now.hour in BUSINESS_HOURS


def on_request(request: AccessRequestInfo) -> Decision | None:
    if request.is_on_call:
        return Decision.route("on call: admin access still needs two approvals")
    if is_business_hours(request):
        return Decision.route("business hours: admin access needs two approvals")
    return Decision.deny(
        "outside business hours (09:00-18:00 UTC, Monday to Friday), admin access is only "
        "for whoever PagerDuty shows on call"
    )


workflow = Workflow(
    name="admin",
    approvers_channel="C0123APPROVERS",
    approvers=["U0AAA", "U0BBB", "U0CCC"],
    required_approvals=2,
    durations=[timedelta(minutes=15), timedelta(minutes=30), timedelta(hours=1)],
    max_duration=timedelta(hours=1),
    # Checks PagerDuty so that on_request knows; on_request always decides, so being on call
    # never approves admin access by itself.
    auto_approve=OnCall(escalation_level=1),
    on_request=on_request,
    resources=[
        Resource(
            id="orders-db-admin",
            name="Orders DB (admin)",
            grant=PostgresRole(
                role="orders_admin", dsn_env="ORDERS_DB_ADMIN_URL", login="{email_local}"
            ),
        ),
    ],
)
