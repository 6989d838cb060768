"""Socket Mode: Slack delivers over a WebSocket the app opens (no public URL needed)."""

from __future__ import annotations

import logging

from slack_bolt import App
from slack_bolt.adapter.socket_mode import SocketModeHandler

log = logging.getLogger(__name__)


def connect_socket_mode(
    bolt: App, app_token: str, *, ping_interval: float = 5.0
) -> SocketModeHandler:
    """Connect (apps.connections.open, then the WebSocket); the SDK's client reconnects by
    itself, with a new ticket, when Slack asks it to (`disconnect`), closes the connection, or
    stops answering pings (after about four `ping_interval`s). Returns the handler; `close()`
    it to stop receiving."""
    handler = SocketModeHandler(bolt, app_token, ping_interval=ping_interval)
    handler.connect()
    log.info("connected to Slack in Socket Mode")
    return handler
