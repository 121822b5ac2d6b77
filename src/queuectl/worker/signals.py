"""A pool's signals: SIGTERM and SIGINT handled in its loop, not at any point of it.

The handler only counts and sets flags (`Pool.on_signal`); the signal's arrival also
writes a byte to a pipe the pool's selector watches (`signal.set_wakeup_fd`), so a pool
asleep in `select` wakes at once.
"""

from __future__ import annotations

import os
import selectors
import signal
from collections.abc import Callable


def install_signal_handlers(
    selector: selectors.BaseSelector, handler: Callable[[int, object], None]
) -> Callable[[], None]:
    """Route SIGTERM and SIGINT to `handler` and wake `selector` (data "signal") when
    one arrives. Returns the function that restores what was there before."""
    import threading

    if threading.current_thread() is not threading.main_thread():
        return lambda: None  # embedded in a thread (tests, the Python API): no signals
    read_fd, write_fd = os.pipe()
    os.set_blocking(read_fd, False)
    os.set_blocking(write_fd, False)
    selector.register(read_fd, selectors.EVENT_READ, "signal")
    old_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for signum, previous in old.items():
            signal.signal(signum, previous)
        signal.set_wakeup_fd(old_fd)
        selector.unregister(read_fd)
        os.close(read_fd)
        os.close(write_fd)

    return restore
