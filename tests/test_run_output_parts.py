"""The merged tail's map of streams: kept in step with the tail when output-limit cuts
its front (a real child writing to both pipes), and the parts cut from it."""

from __future__ import annotations

import selectors

import pytest

from queuectl.errors import InvalidInput
from queuectl.jobs import Job
from queuectl.runoutput import RunOutput, check_streams
from queuectl.worker.process import Run


def _run(command: str, limit: int) -> tuple[bytes, str]:
    fields = dict.fromkeys(("no_retry_on", "timeout", "cwd", "env", "started_at", "finished_at",
                            "exit_code", "last_error", "worker_id", "depends_on", "after_any",
                            "unique_key"))  # fmt: skip
    job = Job(id="j", command=command, state="processing", attempts=1, max_retries=0,
              priority=0, queue="default", run_at=0.0, created_at=0.0, updated_at=0.0,
              **fields)  # fmt: skip
    run = Run(job, timeout=None, output_limit=limit)
    run.start({"PATH": "/usr/bin:/bin"})
    assert run.out_fd is not None and run.err_fd is not None
    with selectors.DefaultSelector() as sel:
        sel.register(run.out_fd, selectors.EVENT_READ)
        sel.register(run.err_fd, selectors.EVENT_READ)
        while sel.get_map():
            for key, _ in sel.select(5):
                if not run.read_output(key.fd):
                    sel.unregister(key.fd)
    while run.poll() is None:
        pass
    output = run.close()
    return output, run.streams() if output else ""


def test_streams_follow_the_tail_when_its_front_is_cut():
    output, streams = _run("printf 1234567890; sleep 0.1; printf abc >&2; sleep 0.1; printf XY", 8)
    assert output == b"[... 7 bytes of earlier output dropped]\n890abcXY"
    assert streams == "o3e3o2"
    got = RunOutput(output, streams)
    assert got.part("stdout") == b"[... 7 bytes of earlier output dropped]\n890XY"
    assert got.part("stderr") == b"[... 7 bytes of earlier output dropped]\nabc"
    assert got.part(None) == output


def test_a_stream_that_filled_the_tail_leaves_the_other_short():
    output, streams = _run("echo out; sleep 0.1; head -c 100 /dev/zero >&2", 50)
    assert streams == "e50"
    assert RunOutput(output, streams).part("stdout").endswith(b"dropped]\n")


@pytest.mark.parametrize("streams", ["x3", "o3e", "o2e2", "3o"])
def test_a_bad_map_of_streams_is_refused(streams):
    with pytest.raises(InvalidInput):
        check_streams(streams, 3)
    check_streams("o1e2", 3)
