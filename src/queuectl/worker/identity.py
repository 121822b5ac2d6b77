"""A pool's identity and voice: its worker id, and the log line it writes to stderr."""

from __future__ import annotations

import os
import socket
import sys
import time


def new_worker_id() -> str:
    """Fresh for every pool start, so a restarted pool never finishes its past life's jobs."""
    return f"{socket.gethostname()}-{os.getpid()}-{os.urandom(3).hex()}"


def stderr_log(message: str) -> None:
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"{stamp} {message}", file=sys.stderr, flush=True)
