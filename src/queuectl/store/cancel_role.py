"""The store contract's part about canceling (`ControlStore` includes it; store/cancel.py
implements it for both SQL stores).

What every backend guarantees: a cancel is one transaction, its jobs locked before they
change; with `with_dependents`, the jobs that wait for the canceled ones are found by
one recursive query in that transaction, so none that waits at the commit is left out.
"""

from __future__ import annotations

from typing import Protocol

from ..records import Selector


class CancelStore(Protocol):
    def cancel(
        self, target: list[str] | Selector, dry_run: bool = False, with_dependents: bool = False
    ) -> list[tuple[str, str]]:
        """Cancel jobs (each pending, failed or processing; a Target as in base.py):
        waiting ones become canceled at once; running ones are marked and killed by their
        pool. With `with_dependents`, also every unfinished job that waits for one of
        them, transitively, through either kind of dependency. Returns (id, 'canceled' or
        'canceling'), the jobs taken first, then their dependents in insertion order."""
        ...

    def stranded(self, job_ids: list[str]) -> int:
        """How many unfinished jobs wait for one of these through `--after` (depends_on),
        transitively: they never run while it stays canceled. Those that wait for it
        through `--after-any` run, and are not counted."""
        ...
