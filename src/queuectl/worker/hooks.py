"""Delivering hook events: a thread of the pool, on a store (connection) of its own.

The events are written by a trigger in the transaction that records an outcome
(migration 0009), so whatever happens to a pool afterwards, they are in the outbox.
`HookDelivery` runs only while hooks exist (the pool asks on each heartbeat:
`Housekeeping`), and never holds the pool's loop: the loop only starts it and, at the
end, asks it to stop. It takes one due event at a time under a lease long enough for
one delivery: a pool killed mid-delivery lets the lease run out and another pool
delivers it again (at-least-once: a hook may see an event twice, never zero times).
A failed delivery is tried again after 2, 4, 8 … 600 s, `hook-retries` times, then
given up (counted on the hook, shown by `hook list` and the dashboard).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable

from ..errors import QueueError
from ..hooks import backoff, job_document
from ..records import Hook, HookEvent
from ..settings import Config
from ..store.base import PoolStore, Store

IDLE_POLL = 0.5  # seconds between looks at the outbox when it had nothing due
URL_TIMEOUT = 10.0  # seconds a URL hook may take to answer
LEASE_SLACK = 3.0  # seconds a lease outlasts the longest delivery
NICE = 10  # how far below the pool's priority the delivery thread runs (nice)
HOOKS_EVERY = 1.0  # seconds a delivery thread keeps the hooks it read


class HookDelivery:
    """The delivery thread of one pool: `ensure` starts it (again) when hooks exist,
    `stop` ends it."""

    def __init__(self, store: PoolStore, *, worker_id: str, log: Callable[[str], None]):
        self.pool_store = store  # only reopened: the thread has a connection of its own
        self.holder = worker_id
        self.log = log
        # Hook commands run where the pool started: the pool changes its own directory
        # to each job's as it starts it (process.py), so the current one is any job's.
        self.cwd = os.getcwd()
        self.config = Config()
        self._stop = threading.Event()
        self._nudge = threading.Event()  # ends an idle wait early (a drain, a stop)
        self._draining = False  # deliver what is due, then end (drain)
        self._thread: threading.Thread | None = None
        self._hooks_read: dict[str, Hook] = {}
        self._hooks_at = -HOOKS_EVERY

    def ensure(self, config: Config) -> None:
        """Hooks exist: deliver (a thread already running takes the new config)."""
        self.config = config
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._serve, name="queuectl-hooks", daemon=True)
            self._thread.start()

    def drain(self, config: Config) -> None:
        """Deliver every event due now, then end (a burst pool's last act): the thread
        stops at the first look begun after this call that finds none due, or at an
        outage."""
        self._draining = True
        self._nudge.set()
        self.ensure(config)
        assert self._thread is not None
        while self._thread.is_alive():
            self._thread.join(0.2)

    def stop(self, timeout: float = 2.0) -> None:
        """End the thread, waiting a little for a delivery in progress. One still running
        after `timeout` is left to the process's exit: its lease runs out and another
        pool delivers that event again."""
        self._stop.set()
        self._nudge.set()
        if self._thread is not None:
            self._thread.join(timeout)

    # ------------------------------------------------------------ the thread

    def _serve(self) -> None:
        try:
            # Below the pool's loop (Linux: a thread's own nice value, which the hook
            # commands it starts inherit): deliveries take what CPU the jobs leave.
            thread = threading.get_native_id()
            below = min(19, os.getpriority(os.PRIO_PROCESS, thread) + NICE)
            os.setpriority(os.PRIO_PROCESS, thread, below)
        except (OSError, AttributeError):
            pass
        try:
            store = self.pool_store.reopened()
        except QueueError as exc:
            self.log(f"worker {self.holder}: hooks not delivered: {exc.message}")
            return
        said = None  # an outage is logged once, not at every try
        try:
            while not self._stop.is_set():
                # Read before the look: a drain asked while a look is under way (it may
                # have begun before the last outcomes committed) gets one more look.
                draining = self._draining
                try:
                    if not self._turn(store):
                        if draining or not store.hooks_exist():
                            return  # the next heartbeat that finds hooks starts it again
                        self._idle(IDLE_POLL)
                    said = None
                except QueueError as exc:
                    if exc.message != said:
                        self.log(f"worker {self.holder}: hook delivery paused: {exc.message}")
                        said = exc.message
                    if draining:
                        return
                    self._idle(IDLE_POLL * 4)
        except Exception as exc:  # a pool outlives a broken delivery; a heartbeat restarts it
            self.log(f"worker {self.holder}: hook delivery failed: {type(exc).__name__}: {exc}")
        finally:
            store.close()

    def _idle(self, seconds: float) -> None:
        self._nudge.wait(seconds)
        self._nudge.clear()

    def _hooks(self, store: Store, fresh: bool = False) -> dict[str, Hook]:
        """The hooks by name, read again at most every HOOKS_EVERY s (or when `fresh`):
        reading them counts their pending events, too dear for every delivery."""
        now = time.monotonic()
        if fresh or now >= self._hooks_at + HOOKS_EVERY:
            self._hooks_read = {h.name: h for h in store.hooks()}
            self._hooks_at = now
        return self._hooks_read

    def _turn(self, store: Store) -> bool:
        """Deliver one due event; False when none was due."""
        timeout = float(self.config["hook-timeout"])
        hooks = self._hooks(store)
        # A lease outlasts the longest delivery there can be: one claimed by a pool that
        # died is delivered again that much later.
        longest = max((timeout if h.command is not None else URL_TIMEOUT for h in hooks.values()),
                      default=timeout)  # fmt: skip
        events = store.claim_hook_events(self.holder, 1, longest + LEASE_SLACK)
        if not events:
            return False
        for event in events:
            hook = hooks.get(event.hook) or self._hooks(store, fresh=True).get(event.hook)
            if hook is None:  # removed since (its events went with it)
                continue
            document = job_document(store, event.job_id) or {"id": event.job_id, "deleted": True}
            # byte for byte what `queuectl show ID --json` prints
            body = (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode()
            error = deliver(hook, event, body, timeout, self.cwd)
            if error is None:
                store.hook_delivered(self.holder, event)
                continue
            retries = int(self.config["hook-retries"])
            retry_in = backoff(event.attempts) if event.attempts <= retries else None
            store.hook_failed(self.holder, event, error, retry_in)
            then = f"retried in {retry_in:g} s" if retry_in is not None else "given up"
            self.log(f"hook {hook.name}: job {event.job_id} {event.event}: {error} ({then})")
        return True


def deliver(hook: Hook, event: HookEvent, body: bytes, timeout: float, cwd: str) -> str | None:
    """Deliver one event; None when it worked, else why not (one line)."""
    if hook.command is not None:
        return _run_command(hook.command, event, body, timeout, cwd)
    assert hook.url is not None
    return _post(hook.url, body)


def _run_command(
    command: str, event: HookEvent, body: bytes, timeout: float, cwd: str
) -> str | None:
    code = "" if event.exit_code is None else str(event.exit_code)
    env = {**os.environ, "QUEUECTL_JOB_ID": event.job_id, "QUEUECTL_EVENT": event.event,
           "QUEUECTL_EXIT_CODE": code}  # fmt: skip
    try:
        # A session of its own, so a timeout kills everything it started.
        proc = subprocess.Popen(["/bin/sh", "-c", command], stdin=subprocess.PIPE,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
                                cwd=cwd, start_new_session=True)  # fmt: skip
    except OSError as exc:
        return f"cannot run the command: {exc.strerror}"
    try:
        _, stderr = proc.communicate(body, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.communicate()
        return f"timed out after {timeout:g} s"
    if proc.returncode:
        lines = stderr.decode(errors="replace").strip().splitlines()
        status = proc.returncode
        what = f"killed by signal {-status}" if status < 0 else f"exit {status}"
        return f"{what}: {lines[-1][:200]}" if lines else what
    return None


def _post(url: str, body: bytes) -> str | None:
    # Imported here: urllib.request brings ssl, http and email, a tenth of a pool's start,
    # and most pools never deliver to a URL.
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": "application/json"})  # fmt: skip
    try:
        # http(s) only (new_hook checks the scheme): no file:// or ftp://
        with urllib.request.urlopen(request, timeout=URL_TIMEOUT) as response:
            status = response.status
    except urllib.error.HTTPError as exc:
        return f"HTTP {exc.code}"
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"POST failed: {reason}"
    return None if 200 <= status < 300 else f"HTTP {status}"
