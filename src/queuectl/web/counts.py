"""Jobs per queue and state for the overview, /api/status and /metrics.

A count reads one index entry per job: a few milliseconds for thousands of jobs, but a
quarter of a second for a million on PostgreSQL (about half that on SQLite). Once a
count has taken longer than SLOW, answers come from the latest count while the next one
runs on a thread of its own (one at a time), so a page answers at once, the database
counts at most once per REFRESH however many dashboards look, and what is shown is at
most a refresh old. A count older than MAX_AGE (nobody looked for a while) is not used.
A small store is counted afresh for every answer.
"""

from __future__ import annotations

import threading
import time

from ..queue import Queue

SLOW = 0.05
REFRESH = 1.0
MAX_AGE = 10.0


class JobCounts:
    def __init__(self, location: str):
        self.location = location
        self.lock = threading.Lock()
        self.value: dict[str, dict[str, int]] | None = None
        self.taken_at = 0.0  # time.monotonic() when the latest count started
        self.took = 0.0
        self.counting = False
        self.queue: Queue | None = None  # the background count's own connection

    def get(self, queue: Queue) -> dict[str, dict[str, int]]:
        """Jobs per state of each queue (see Queue.queue_counts)."""
        with self.lock:
            age = time.monotonic() - self.taken_at
            if self.value is not None and self.took > SLOW and age < MAX_AGE:
                if age > REFRESH and not self.counting:
                    self.counting = True
                    threading.Thread(target=self._count_in_background, daemon=True).start()
                return self.value
        return self._count(queue)

    def _count(self, queue: Queue) -> dict[str, dict[str, int]]:
        started = time.monotonic()
        value = queue.queue_counts()
        with self.lock:
            if started >= self.taken_at:  # a later count may have finished first
                self.value, self.taken_at = value, started
                self.took = time.monotonic() - started
        return value

    def _count_in_background(self) -> None:
        try:
            if self.queue is not None and self.queue.outdated():
                self.queue.close()  # opened before the database was created
                self.queue = None
            if self.queue is None:
                self.queue = Queue(self.location, create=False)
            self._count(self.queue)
        except Exception:
            pass  # the next answer counts in the foreground once this one is too old
        finally:
            with self.lock:
                self.counting = False

    def close(self) -> None:
        with self.lock:
            if self.queue is not None:
                self.queue.close()
                self.queue = None
