"""The public workflow API: `from app.workflows import OnCall, Resource, Webhook, Workflow`."""

from app.grants.base import Env, GrantContext, GrantError, Retry
from app.grants.webhook import Webhook
from app.workflows.model import OnCall, Resource, Workflow

__all__ = [
    "Env",
    "GrantContext",
    "GrantError",
    "OnCall",
    "Resource",
    "Retry",
    "Webhook",
    "Workflow",
]
