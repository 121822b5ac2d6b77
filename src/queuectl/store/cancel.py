"""Canceling jobs, written once for both SQL stores: the jobs named or selected and,
with `with_dependents`, every unfinished job that waits for one of them, transitively
(through `--after` and `--after-any` dependencies alike), in one transaction; and how
many jobs a cancel strands (`stranded`). The queries are in queries.sql.

A canceled job meets the after-any dependencies of the jobs that wait for it (the
trigger `jobs_unblock`, migration 0008): those may run now. Its `--after` ones stay,
so those jobs, and every job that waits for them in turn, never run while it stays
canceled (`requeue` runs it again): they are what `stranded` counts.
"""

from __future__ import annotations

from ..jobs import UNFINISHED, State
from .control import ControlWrites

TYPE_CHECKING = False  # records are not on the enqueue path (see record.py)
if TYPE_CHECKING:
    from .control import Target

_WAITING, _RUNNING = (State.PENDING, State.FAILED), State.PROCESSING


class CancelWrites(ControlWrites):
    def cancel(self, target: Target, dry_run: bool = False,
               with_dependents: bool = False) -> list[tuple[str, str]]:  # fmt: skip
        with self._tx() as conn:
            states = self._targets(conn, target, (*_WAITING, _RUNNING), "canceled")
            if with_dependents and states:
                # one recursive query, its rows locked (as _targets locks the first ones)
                params = {"ids": list(states), "unfinished": list(UNFINISHED)}
                for job_id, state in self._run(conn, "dependents", params).fetchall():
                    states.setdefault(job_id, state)
            if not dry_run:
                self._update(
                    conn, "cancel_waiting", [i for i, s in states.items() if s != _RUNNING]
                )
                self._update(
                    conn, "cancel_running", [i for i, s in states.items() if s == _RUNNING]
                )
        if states and not dry_run:
            # The pools holding running ones heartbeat at once; jobs that run after any
            # outcome of a canceled one may be ready now, behind the claims' hints.
            self._wake(behind=True)
        return [(i, "canceling" if s == _RUNNING else "canceled") for i, s in states.items()]

    def stranded(self, job_ids: list[str]) -> int:
        if not job_ids:
            return 0
        params = {"ids": list(job_ids), "unfinished": list(UNFINISHED)}
        return int(self._fetch("stranded", params)[0][0])
