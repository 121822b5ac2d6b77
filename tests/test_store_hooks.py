"""The store's part of hooks on both backends: the trigger records the events of every
path that changes a state (here the reaper and a cancel, besides a pool's finish), and
the outbox's lease keeps two holders from delivering one event at once (fencing)."""

from __future__ import annotations

import time

from conftest import add
from queuectl.hook_spec import new_hook
from queuectl.records import Outcome


def events(store, holder="w", lease=30.0):
    return [(e.hook, e.job_id, e.event) for e in store.claim_hook_events(holder, 10, lease)]


def test_no_events_without_hooks_and_every_path_records_its_own(store):
    add(store, "a", "b", "c")
    store.register_worker("w1", "h", 1, 3, None)
    store.claim("w1", None, 3, 60)
    store.finish("w1", [Outcome("a", "completed", 0)])
    assert events(store) == []  # no hook, no event
    store.add_hook(new_hook("all", "completed,failed,dead,canceled", command="true"))
    store.add_hook(new_hook("other", "completed", command="true", queue="other"))
    store.finish("w1", [Outcome("b", "completed", 0)])
    store.cancel(["c"])  # running: marked, then recorded canceled by its pool
    store.finish("w1", [Outcome("c", "canceled", None, "canceled")])
    add(store, "lost", max_retries=0)
    store.claim("w1", None, 1, 0.05)
    time.sleep(0.2)
    assert store.reap() == ["lost"]  # the reaper: dead, its attempts spent
    assert events(store) == [("all", "b", "completed"), ("all", "c", "canceled"),
                             ("all", "lost", "dead")]  # fmt: skip


def test_a_leased_event_is_not_claimed_twice_and_a_late_result_is_refused(store):
    store.add_hook(new_hook("h", "canceled", command="true"))
    add(store, "j")
    store.cancel(["j"])
    (event,) = store.claim_hook_events("first", 5, 0.2)
    assert store.claim_hook_events("second", 5, 30) == []  # held by first
    time.sleep(0.4)
    (again,) = store.claim_hook_events("second", 5, 30)  # first's lease ran out
    assert (again.id, again.attempts) == (event.id, 2)
    store.hook_delivered("first", event)  # too late: second holds it now
    assert store.hooks()[0].pending == 1 and store.hooks()[0].last_at is None
    store.hook_failed("second", again, "exit 1", None)  # given up
    (hook,) = store.hooks()
    assert (hook.pending, hook.given_up, hook.failures, hook.last_ok) == (0, 1, 1, False)
    assert store.claim_hook_events("third", 5, 30) == []
    assert store.remove_hook("h") and not store.remove_hook("h")


def test_events_are_recorded_while_any_hook_exists_and_only_then(store):
    """On PostgreSQL the trigger is switched on by the first hook and off by the last one
    removed (migration 0011: without hooks, no trigger function runs per outcome)."""

    def finish(job_id):
        add(store, job_id)
        store.claim("w1", None, 1, 60)
        store.finish("w1", [Outcome(job_id, "completed", 0)])

    store.register_worker("w1", "h", 1, 1, None)
    finish("before")
    store.add_hook(new_hook("one", "completed", command="true"))
    store.add_hook(new_hook("two", "completed", command="true"))
    finish("both")
    assert sorted(events(store)) == [("one", "both", "completed"), ("two", "both", "completed")]
    store.remove_hook("one")
    finish("left")  # one hook left: still recorded
    assert events(store) == [("two", "left", "completed")]
    store.remove_hook("two")
    finish("after")
    store.add_hook(new_hook("again", "completed", command="true"))
    finish("again")
    assert events(store) == [("again", "again", "completed")]  # none of "after"
