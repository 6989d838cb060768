"""The public workflow API: `from app.workflows import OnCall, Resource, Webhook, Workflow`."""

from app.grants.aws import IdentityCenterAssignment, IdentityCenterGroup
from app.grants.base import Env, GrantContext, Granted, GrantError, GrantUser, Retry
from app.grants.github import GitHubApp, GitHubTeam
from app.grants.okta import OktaGroup
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
    "GitHubApp",
    "GitHubTeam",
    "GrantContext",
    "GrantError",
    "GrantUser",
    "Granted",
    "IdentityCenterAssignment",
    "IdentityCenterGroup",
    "OktaGroup",
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
