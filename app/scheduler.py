"""Wakes the process when grants are due. The database decides what is due; this only keeps time.

APScheduler runs with an in-memory job store: one date job per wake-up that was asked for
(an expiry, a retry), plus a periodic sweep that catches whatever another process or a crash
left behind. Several instances may run at once; the row locks in the lifecycle keep them apart.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger(__name__)


class GrantScheduler:
    def __init__(self, *, sweep_interval: timedelta) -> None:
        self.sweep_interval = sweep_interval
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._sweep_once: Callable[[], int] | None = None
        self._lock = threading.Lock()

    def start(self, sweep: Callable[[], int]) -> None:
        """Sweep at once (whatever came due while we were down), then every `sweep_interval`."""
        self._sweep_once = sweep
        self._scheduler.add_job(
            self._sweep,
            "interval",
            seconds=self.sweep_interval.total_seconds(),
            id="sweep",
            next_run_time=datetime.now(UTC),
        )
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)

    def wake_at(self, when: datetime) -> None:
        """Run a sweep at `when` (rounded up to the millisecond it is due)."""
        if not self._scheduler.running:
            return
        run_at = max(when, datetime.now(UTC)) + timedelta(milliseconds=5)
        job_id = f"wake-{run_at.timestamp():.3f}"
        self._scheduler.add_job(
            self._sweep, "date", run_date=run_at, id=job_id, replace_existing=True
        )

    def _sweep(self) -> None:
        assert self._sweep_once is not None
        # One sweep at a time in this process; other processes are kept apart by row locks.
        # A failing sweep (database down) is logged by APScheduler; the next one tries again.
        with self._lock:
            handled = self._sweep_once()
        if handled:
            log.info("sweep handled %d item(s)", handled)
