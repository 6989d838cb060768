"""Read-only access to the orders database for any engineer, with one approval.

The requester's database login is the local part of their email (alice@example.com → alice);
accessbot GRANTs the `orders_readonly` group role to it and REVOKEs it at expiry. The admin
connection comes from the ORDERS_DB_ADMIN_URL environment variable, never from this file.
"""

from datetime import timedelta

from app.workflows import PostgresRole, Resource, Workflow

workflow = Workflow(
    name="databases",
    approvers_channel="C0123DBAPPROVALS",
    approvers=["S0DBOWNERS"],  # the @db-owners user group; one of them approves
    durations=[timedelta(hours=1), timedelta(hours=4), timedelta(hours=8)],
    max_duration=timedelta(hours=8),
    resources=[
        Resource(
            id="orders-db-readonly",
            name="Orders DB (read-only)",
            grant=PostgresRole(
                role="orders_readonly", dsn_env="ORDERS_DB_ADMIN_URL", login="{email_local}"
            ),
        ),
    ],
)
