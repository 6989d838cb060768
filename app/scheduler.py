"""Wakes the process for timed work that is not a grant's: requests that expire undecided,
expiry reminders, routing that never finished. The database decides what is due; this only
keeps time. (Grant work has its own timer: the grant workers sleep until the next due grant.)

APScheduler runs with an in-memory job store and two jobs, however many requests and grants
there are: a periodic sweep, which also catches what another process or a crash left behind,
and one "wake" job set to the earliest time anything is known to fall due. Asking to be woken
earlier moves that one job; after each sweep it is set again from the database.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.schedulers.background import BackgroundScheduler

log = logging.getLogger(__name__)

WAKE = "wake"


class Scheduler:
    def __init__(self, *, sweep_interval: timedelta) -> None:
        self.sweep_interval = sweep_interval
        self._scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": None},
        )
        self._sweep_once: Callable[[], int] | None = None
        self._next_wakeup: Callable[[], datetime | None] = lambda: None
        self._lock = threading.Lock()  # one sweep at a time in this process
        self._wake_lock = threading.Lock()
        self._wake_at: datetime | None = None
        self.last_sweep: datetime | None = None

    def start(self, sweep: Callable[[], int], next_wakeup: Callable[[], datetime | None]) -> None:
        """Sweep at once (whatever came due while we were down), then every `sweep_interval`."""
        self._sweep_once = sweep
        self._next_wakeup = next_wakeup
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

    @property
    def running(self) -> bool:
        return self._scheduler.running

    def wake_at(self, when: datetime) -> None:
        """Sweep at `when`, unless a sweep is already set for no later than that."""
        if not self._scheduler.running:
            return
        with self._wake_lock:
            if self._wake_at is not None and self._wake_at <= when:
                return
            self._wake_at = when
            run_at = max(when, datetime.now(UTC)) + timedelta(milliseconds=5)
            self._scheduler.add_job(
                self._wake, "date", run_date=run_at, id=WAKE, replace_existing=True
            )

    def jobs(self) -> int:
        return len(self._scheduler.get_jobs())

    def _wake(self) -> None:
        with self._wake_lock:
            self._wake_at = None
        self._sweep()

    def _sweep(self) -> None:
        assert self._sweep_once is not None
        # A failing sweep (database down) is logged by APScheduler; the next one tries again.
        with self._lock:
            handled = self._sweep_once()
            self.last_sweep = datetime.now(UTC)
        if handled:
            log.info("sweep handled %d item(s)", handled)
        upcoming = self._next_wakeup()
        if upcoming is not None:
            self.wake_at(upcoming)
