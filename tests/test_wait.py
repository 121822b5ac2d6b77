"""Queue.wait and the waits for pools, on both backends: they end as soon as the
condition holds (checked again when woken or at the poll), never by a fixed sleep."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from queuectl import waiting
from queuectl.errors import InvalidInput, JobNotFound
from queuectl.queue import Queue
from queuectl.records import Outcome, WaitResult


@pytest.fixture
def queue(store, location):
    return Queue(location, store=store)


def run_to(queue: Queue, job_id: str, state: str) -> None:
    """Claim the job as pool `w` and record `state` as its outcome."""
    (claimed,) = queue.store.claim("w", None, 1, 60)
    assert claimed.id == job_id
    queue.store.finish("w", [Outcome(job_id, state, 0 if state == "completed" else 1)])


def test_finished_jobs_are_reported_with_their_states_at_once(queue):
    for job_id in ("ok", "bad", "gone"):
        queue.enqueue({"id": job_id, "command": "true"})
    run_to(queue, "ok", "completed")
    run_to(queue, "bad", "dead")
    queue.cancel(["gone"])
    checks = []
    result = queue.wait(["gone", "ok", "bad", "ok"], timeout=30, on_check=checks.append)
    assert result == WaitResult({"gone": "canceled", "ok": "completed", "bad": "dead"}, {})
    assert result.done and not result.completed
    assert len(checks) == 1  # it held at the first check: no sleep
    assert result.to_dict() == {"finished": dict(result.finished), "unfinished": {}}


def test_a_job_that_finishes_meanwhile_ends_the_wait(queue):
    queue.enqueue({"id": "a", "command": "true"})
    queue.enqueue({"id": "b", "command": "true"})
    run_to(queue, "a", "completed")
    seen: list[WaitResult] = []

    def finish_b(result: WaitResult) -> None:
        seen.append(result)
        if len(seen) == 1:
            run_to(queue, "b", "completed")  # after the first check: found by the next

    result = queue.wait(["a", "b"], timeout=30, on_check=finish_b)
    assert result.completed and result.finished == {"a": "completed", "b": "completed"}
    assert seen[0] == WaitResult({"a": "completed"}, {"b": "pending"})
    assert len(seen) == 2


def test_a_timeout_names_the_jobs_not_finished(queue):
    queue.enqueue({"id": "done", "command": "true"})
    queue.enqueue({"id": "later", "command": "true", "delay": "1h"})
    run_to(queue, "done", "completed")
    for timeout in (0, 0.3):
        result = queue.wait(["done", "later"], timeout=timeout)
        assert result == WaitResult({"done": "completed"}, {"later": "pending"})
        assert not result.done and not result.completed


def test_a_cancel_wakes_the_wait(queue, monkeypatch):
    # With a poll as long as the timeout, only the wake-up can end this wait early.
    monkeypatch.setattr(waiting, "POLL", 60)
    queue.enqueue({"id": "a", "command": "true", "delay": "1h"})
    other = Queue(queue.location)  # another client cancels

    def cancel_once(result: WaitResult) -> None:
        if result.unfinished:
            other.cancel(["a"])

    started = time.monotonic()
    try:
        result = queue.wait(["a"], timeout=30, on_check=cancel_once)
    finally:
        other.close()
    assert result == WaitResult({"a": "canceled"}, {})
    assert time.monotonic() - started < 15  # woken, not at the end of the timeout


def test_wake_ups_from_a_busy_queue_do_not_make_the_wait_busy(queue):
    queue.enqueue({"id": "a", "command": "true", "delay": "1h"})
    checks: list[WaitResult] = []

    def enqueue_more(result: WaitResult) -> None:
        checks.append(result)
        queue.enqueue({"command": "true"})  # wakes the waiter at once

    started = time.monotonic()
    result = queue.wait(["a"], timeout=0.5, on_check=enqueue_more)
    took = time.monotonic() - started
    assert not result.done
    assert len(checks) <= took / waiting.GAP + 2, (len(checks), took)


def test_unknown_ids_and_bad_input(queue):
    queue.enqueue({"id": "a", "command": "true"})
    with pytest.raises(JobNotFound, match="nope"):
        queue.wait(["a", "nope"], timeout=5)
    with pytest.raises(JobNotFound):
        queue.wait(["a\x00"], timeout=5)  # no job can have it
    with pytest.raises(InvalidInput, match="at least one job id"):
        queue.wait([], timeout=5)
    with pytest.raises(InvalidInput, match="timeout"):
        queue.wait(["a"], timeout=-1)


def test_a_job_deleted_meanwhile_is_not_found(queue):
    queue.enqueue({"id": "a", "command": "true", "delay": "1h"})
    with pytest.raises(JobNotFound, match="a"):
        queue.wait(["a"], timeout=30, on_check=lambda result: queue.delete(["a"]))


def test_waits_for_pools_to_register_and_to_go(queue):
    store = queue.store
    assert queue.wait_for_worker(4242, 0) is None
    assert queue.wait_for_worker(4242, 30, exited=lambda: True) is None  # gone: no wait
    store.register_worker("w1", "host-a", 4242, 2, None)
    store.register_worker("w2", "host-a", 4243, 1, None)
    found = queue.wait_for_worker(4242, 30)
    assert found is not None and found.id == "w1"
    assert queue.wait_workers_gone(["w2", "w1"], 0.3) == ["w1", "w2"]
    store.unregister_worker("w1")
    assert queue.wait_workers_gone(["w1", "w2"], 0) == ["w2"]
    store.unregister_worker("w2")
    assert queue.wait_workers_gone(["w1", "w2"], 30) == []


def test_the_exit_of_a_process_ends_the_wait_for_its_registration(queue, monkeypatch):
    # With a poll as long as the timeout, only the process's exit (its pidfd) wakes the
    # wait early.
    monkeypatch.setattr(waiting, "POLL", 60)
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                             stdin=subprocess.PIPE)  # fmt: skip
    checks = []

    def exited() -> bool:
        checks.append(1)
        if len(checks) == 1:
            child.stdin.close()  # the child exits now
            return False
        return child.poll() is not None

    started = time.monotonic()
    try:
        assert queue.wait_for_worker(child.pid, 30, exited=exited) is None
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 0 and len(checks) >= 2
    if hasattr(os, "pidfd_open"):
        assert time.monotonic() - started < 15  # woken, not at the end of the timeout


def test_wait_queues_counts_what_waits_or_runs_not_what_is_scheduled(queue):
    queue.enqueue({"id": "a", "command": "true", "queue": "q"})
    queue.enqueue({"id": "later", "command": "true", "queue": "q", "delay": "1h"})
    queue.enqueue({"id": "other", "command": "true", "queue": "r"})
    left = queue.wait_queues(["q", "q", "empty"], timeout=0)
    assert left == {"q": {"pending": 1, "processing": 0, "failed": 0},
                    "empty": {"pending": 0, "processing": 0, "failed": 0}}  # fmt: skip
    assert [j.id for j in queue.store.claim("w", ["q"], 1, 60)] == ["a"]
    assert queue.wait_queues(["q"], timeout=0)["q"]["processing"] == 1
    queue.store.finish("w", [Outcome("a", "failed", 1, "exit code 1", retry_delay=3600)])
    assert queue.wait_queues(["q"], timeout=0)["q"]["failed"] == 1  # its retry is to come
    queue.cancel(["a"])
    assert queue.wait_queues(["q"], timeout=30) == {"q": {"pending": 0, "processing": 0,
                                                          "failed": 0}}  # fmt: skip
    with pytest.raises(InvalidInput, match="at least one queue"):
        queue.wait_queues([], timeout=5)
    with pytest.raises(InvalidInput, match="queue"):
        queue.wait_queues(["a b"], timeout=5)


def test_a_tail_hands_out_only_new_bytes_and_counts_what_was_lost():
    from queuectl.tail import Tail, split_dropped

    tail = Tail()
    assert tail.new(b"") == (b"", 0)
    assert tail.new(b"one\n") == (b"one\n", 0)
    assert tail.new(b"one\ntwo\n") == (b"two\n", 0)
    assert tail.new(b"one\ntwo\n") == (b"", 0)
    # the kept tail moved on (8 bytes dropped): what is past offset 8 is new
    assert tail.new(b"[... 4 bytes of earlier output dropped]\ntwo\nsix\n") == (b"six\n", 0)
    # 12 bytes more, of which only the last 8 are still kept: 4 lost
    assert tail.new(b"[... 16 bytes of earlier output dropped]\nten\nend\n") == (b"ten\nend\n", 4)
    assert split_dropped(b"[... 3 bytes of earlier output dropped]\nx") == (3, b"x")
    assert split_dropped(b"plain") == (0, b"plain")
