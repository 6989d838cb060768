"""LISTEN on a PostgreSQL channel, on a connection of its own, and call back on each NOTIFY.

How a process learns at once of work another process committed (a job the web process wrote
before its ack). The connection is taken from the engine and detached from its pool: pooled
connections never LISTEN (a notification waiting on one would look like a closed socket to
`app/db/session.py`'s check). If the connection breaks, a new one is made, and the callback
runs once as it is: what was notified meanwhile was missed, so look now.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable
from typing import Any

from sqlalchemy import Engine, text

log = logging.getLogger(__name__)

POLL = 1.0  # seconds between looks at the stop flag while no notification comes
RECONNECT_AFTER = (0.5, 1.0, 2.0, 5.0)  # seconds, one after another, then the last again


class NotifyListener:
    def __init__(
        self,
        engine: Engine,
        channel: str,
        on_notify: Callable[[], None],
        on_listen: Callable[[], None] | None = None,
    ) -> None:
        """`on_notify` runs on each notification; `on_listen` (`on_notify` if not given) each
        time a LISTEN is in place: what was notified before it was missed."""
        if not channel.isidentifier():
            raise ValueError(f"not a channel name: {channel!r}")
        self.engine = engine
        self.channel = channel
        self.on_notify = on_notify
        self.on_listen = on_listen or on_notify
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._connection: Any = None
        self.listening = threading.Event()  # set while a LISTEN is in place (tests wait on it)

    def start(self) -> None:
        self._thread = threading.Thread(
            target=self._run, name=f"listen-{self.channel}", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stopping.set()
        if self._thread is not None and self.listening.is_set():
            # Wake the listening thread now rather than at its next look (every POLL seconds).
            # (If the database is gone, the thread finds out at its next look.)
            with contextlib.suppress(Exception), self.engine.connect() as connection:
                connection.execute(
                    text("SELECT pg_notify(:channel, '')"), {"channel": self.channel}
                )
                connection.commit()
        if self._thread is not None:
            self._thread.join(timeout)
        self._close()

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            try:
                self._listen()
                failures = 0
            except Exception as exc:  # the database restarted or is down: connect again
                self.listening.clear()
                self._close()
                if self._stopping.is_set():
                    return
                pause = RECONNECT_AFTER[min(failures, len(RECONNECT_AFTER) - 1)]
                failures += 1
                log.warning(
                    "LISTEN %s: %s; connecting again in %g s",
                    self.channel,
                    exc.__class__.__name__,
                    pause,
                )
                self._stopping.wait(pause)

    def _listen(self) -> None:
        pooled = self.engine.raw_connection()
        connection = pooled.driver_connection
        pooled.detach()  # ours alone from now on; closing it does not return it to the pool
        if connection is None:
            raise RuntimeError("the pool gave no connection")
        self._connection = connection
        connection.autocommit = True
        connection.execute(f"LISTEN {self.channel}")
        self.listening.set()
        self.on_listen()  # whatever was notified before this LISTEN
        while not self._stopping.is_set():
            if any(True for _ in connection.notifies(timeout=POLL, stop_after=1)):
                self.on_notify()

    def _close(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(Exception):  # it may be broken already
                connection.close()
