"""The public workflow API: `from app.workflows import OnCall, Resource, Webhook, Workflow`."""

from app.grants.base import Env, GrantContext, GrantError, GrantUser, Retry
from app.grants.postgres_role import PostgresRole
from app.grants.python import Python
from app.grants.webhook import Webhook
from app.workflows.model import (
    ON_CALL_APPROVERS,
    AccessRequestInfo,
    BreakGlass,
    Decision,
    OnCall,
    Requester,
    Resource,
    Ticket,
    Workflow,
)

__all__ = [
    "ON_CALL_APPROVERS",
    "AccessRequestInfo",
    "BreakGlass",
    "Decision",
    "Env",
    "GrantContext",
    "GrantError",
    "GrantUser",
    "OnCall",
    "PostgresRole",
    "Python",
    "Requester",
    "Resource",
    "Retry",
    "Ticket",
    "Webhook",
    "Workflow",
]
