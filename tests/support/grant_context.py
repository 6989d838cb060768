"""A GrantContext for calling a strategy directly, as a grant worker would."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from app.grants.base import GrantContext, GrantUser


def revoke_context(n: int = 1) -> GrantContext:
    """The revoke of user `n`'s grant of prod-db, with an event id of its own."""
    return GrantContext(
        event="revoke",
        request_id=uuid.uuid4(),
        grant_id=uuid.uuid4(),
        workflow="default",
        resource="prod-db",
        resource_name="Production database",
        user=GrantUser(slack_id=f"U{n:05d}", email=f"u{n}@example.com"),
        expires_at=datetime(2030, 1, 1, tzinfo=UTC),
        approved_by="UAPPROVER",
        event_id=str(uuid.uuid4()),
    )
