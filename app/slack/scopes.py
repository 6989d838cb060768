"""The bot scopes manifest.yml asks for; `accessbot doctor` checks the token carries them."""

from __future__ import annotations

BOT_SCOPES = (
    "commands",
    "chat:write",
    "im:write",
    "users:read",
    "users:read.email",
    "usergroups:read",
    "channels:read",
    "groups:read",
)
