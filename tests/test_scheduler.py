"""The clock scales: one timer however many grants and requests there are."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

from app.scheduler import Scheduler


def test_ten_thousand_wake_ups_keep_one_timer_at_the_earliest() -> None:
    scheduler = Scheduler(sweep_interval=timedelta(hours=1))
    swept = threading.Event()
    scheduler.start(lambda: swept.set() or 0, lambda: None)
    try:
        assert swept.wait(5)  # the sweep at start
        now = datetime.now(UTC)
        for i in range(10_000, 0, -1):  # latest first: each moves the one timer earlier
            scheduler.wake_at(now + timedelta(minutes=10, seconds=i))
        for i in range(10_000):  # later than the timer: nothing changes
            scheduler.wake_at(now + timedelta(hours=1, seconds=i))

        assert scheduler.jobs() == 2  # the periodic sweep and the one wake-up
        wake = next(job for job in scheduler._scheduler.get_jobs() if job.id == "wake")
        assert abs(wake.next_run_time - (now + timedelta(minutes=10, seconds=1))) < timedelta(
            seconds=1
        )
    finally:
        scheduler.shutdown()


def test_after_a_sweep_the_timer_is_set_from_what_the_database_says_is_next() -> None:
    scheduler = Scheduler(sweep_interval=timedelta(hours=1))
    sweeps: list[datetime] = []
    soon = datetime.now(UTC) + timedelta(milliseconds=400)

    def next_wakeup() -> datetime | None:
        return soon if len(sweeps) == 1 else None

    scheduler.start(lambda: sweeps.append(datetime.now(UTC)) or 0, next_wakeup)
    try:
        deadline = datetime.now(UTC) + timedelta(seconds=5)
        while len(sweeps) < 2 and datetime.now(UTC) < deadline:
            threading.Event().wait(0.02)
        assert len(sweeps) == 2
        assert soon <= sweeps[1] < soon + timedelta(milliseconds=300)
        assert scheduler.jobs() == 1  # the wake-up ran; only the periodic sweep is left
    finally:
        scheduler.shutdown()
