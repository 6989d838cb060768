"""Readiness: may this instance take traffic? The database answers, its schema is at the
latest migration, and the scheduler has swept recently. None when ready, else the reason."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime, timedelta

from sqlalchemy import Engine, text

from app.core.ports import Clock


class Readiness:
    def __init__(
        self,
        *,
        engine: Engine,
        head: str,
        last_sweep: Callable[[], datetime | None] | None,  # None: this process does not sweep
        sweep_interval: timedelta,
        clock: Clock,
    ) -> None:
        self.engine = engine
        self.head = head  # the latest migration this code ships
        self.last_sweep = last_sweep
        self.sweep_interval = sweep_interval
        self.clock = clock
        self.draining = threading.Event()  # set on SIGTERM: take no new traffic

    def problem(self) -> str | None:
        if self.draining.is_set():
            return "shutting down"
        try:
            with self.engine.connect() as connection:
                version = connection.execute(
                    text("SELECT version_num FROM alembic_version")
                ).scalar()
        except Exception as exc:  # unreachable, or not migrated at all
            return f"database unreachable or not migrated ({exc.__class__.__name__})"
        if version != self.head:
            return f"database schema is at {version}, this code needs {self.head}"
        if self.last_sweep is None:
            return None
        swept = self.last_sweep()
        if swept is None:
            return "the scheduler has not swept yet"
        late = self.clock() - swept
        if late > 3 * self.sweep_interval:
            return (
                f"the scheduler last swept {int(late.total_seconds())} s ago "
                f"(every {self.sweep_interval.total_seconds():g} s expected)"
            )
        return None
