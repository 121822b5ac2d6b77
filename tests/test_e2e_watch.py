"""`status --watch`: a live view on a terminal (a real pseudo-terminal here)."""

from __future__ import annotations

import os
import pty
import re
import select
import signal
import subprocess
import time

from conftest import QUEUECTL, assert_one_error_line


def read_until(fd: int, pattern: str, timeout: float = 15.0) -> str:
    """Read the terminal until `pattern` (a regex) appears in what it showed."""
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([fd], [], [], 0.1)
        if ready:
            try:
                seen += os.read(fd, 65536)
            except OSError:  # the terminal closed
                break
            text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen.decode(errors="replace"))
            if re.search(pattern, text):
                return text
    raise AssertionError(f"{pattern!r} not shown; the terminal showed: {seen[-2000:]!r}")


def test_status_watch_redraws_until_ctrl_c(cli):
    main, tty = pty.openpty()
    env = {**cli.env, "COLUMNS": "120", "LINES": "40"}
    argv = [QUEUECTL, "status", "--watch", "--interval", "0.2"]
    proc = subprocess.Popen(argv, stdin=tty, stdout=tty, stderr=tty, env=env, cwd=cli.workdir)
    os.close(tty)
    try:
        read_until(main, r"pending\s+0")
        cli.enqueue(id="one", command="true")
        read_until(main, r"pending\s+1")  # redrawn without a restart
        cli.run("pause", "slow")
        read_until(main, r"Paused queues: slow")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0  # Ctrl-C is how one leaves it: not an error
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(main)


def test_status_watch_refuses_a_pipe_and_json(cli):
    for args in (["status", "--watch"], ["status", "--watch", "--json"]):
        assert_one_error_line(cli.run(*args, check=False), 2, "--watch")
