"""Socket Mode: Slack delivers over a WebSocket the app opens (no public URL needed)."""

from __future__ import annotations

import logging

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler

log = logging.getLogger(__name__)


def connect_socket_mode(bolt: App, app_token: str) -> SocketModeHandler:
    """Connect (apps.connections.open, then the WebSocket); the SDK's client reconnects by
    itself when Slack asks it to (`disconnect`) or the connection drops. Returns the handler;
    `close()` it to stop receiving."""
    handler = SocketModeHandler(bolt, app_token)
    handler.connect()
    log.info("connected to Slack in Socket Mode")
    return handler
