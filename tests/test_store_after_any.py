"""The store contract for issue 14's life-cycle items, run unchanged against every
backend: dependencies met by any outcome (`after_any`), mixed with `depends_on`;
canceling a job with every job that waits for it (`cancel(with_dependents=True)`) and
counting the jobs a cancel strands (`stranded`); exit codes that end retries
(`no_retry_on`, the `no-retry-on` setting) as the pool's outcome decides them."""

from __future__ import annotations

import re

import pytest

from conftest import add, row, wait_for
from queuectl.errors import InvalidInput, UnknownDependency
from queuectl.jobs import build_row
from queuectl.records import GatedClaim, Selector
from queuectl.settings import Config, lookup
from queuectl.store.base import Outcome


def claim_ids(store, limit=10, worker="w"):
    return [job.id for job in store.claim(worker, None, limit, 30)]


def end(store, job_id, state, worker="w"):
    """Claim `job_id` (it must be the one claimable job) and record `state` for it."""
    assert claim_ids(store, 1, worker) == [job_id]
    code = {"completed": 0, "dead": 1, "failed": 1}.get(state)
    assert store.finish(worker, [Outcome(job_id, state, code, None, retry_delay=3600)]) == [job_id]


def states(store):
    return {job.id: job.state for job in store.jobs()}


# ---------------------------------------------------------------- after any outcome


@pytest.mark.parametrize("outcome", ["completed", "dead", "canceled"])
def test_after_any_is_met_by_every_outcome(store, outcome):
    store.add([row(store, "a"), row(store, "b", after_any=["a"])])
    assert store.get("b").waiting_for == [("a", "pending", "after_any")]
    if outcome == "canceled":
        store.cancel(["a"])
    else:
        end(store, "a", outcome)
    assert claim_ids(store) == ["b"]
    assert store.get("b").waiting_for is None


def test_a_failed_run_with_retries_left_does_not_meet_after_any(store):
    store.add([row(store, "a"), row(store, "b", after_any=["a"])])
    end(store, "a", "failed")  # a retry in an hour: a has not finished
    assert claim_ids(store) == []
    assert store.get("b").waiting_for == [("a", "failed", "after_any")]


def test_after_of_a_dead_job_waits_while_after_any_of_it_runs(store):
    store.add([row(store, "a", max_retries=0), row(store, "needs", depends_on=["a"]),
               row(store, "cleanup", after_any=["a"])])  # fmt: skip
    end(store, "a", "dead")
    assert claim_ids(store) == ["cleanup"]
    needs = store.get("needs")
    assert (needs.state, needs.waiting_for) == ("pending", [("a", "dead", "after")])
    assert needs.waiting_reason() == "waiting for job a (dead)"


def test_mixed_after_and_after_any_wait_for_both(store):
    store.add([row(store, "build"), row(store, "flaky", max_retries=0),
               row(store, "report", depends_on=["build"], after_any=["flaky"])])  # fmt: skip
    job = store.get("report")
    assert job.waiting_for == [("build", "pending", "after"), ("flaky", "pending", "after_any")]
    assert job.waiting_reason() == (
        "waiting for job build (pending), job flaky (pending, any outcome)"
    )
    assert job.to_dict()["waiting_for"] == [
        {"id": "build", "state": "pending", "kind": "after"},
        {"id": "flaky", "state": "pending", "kind": "after_any"},
    ]
    assert [j.id for j in store.claim("w", None, 1, 30)] == ["build"]
    assert [j.id for j in store.claim("w", None, 1, 30)] == ["flaky"]
    store.finish("w", [Outcome("flaky", "dead", 1, "exit code 1")])
    assert claim_ids(store) == []  # build still runs
    assert store.get("report").waiting_for == [("build", "processing", "after")]
    store.finish("w", [Outcome("build", "completed", 0)])
    assert claim_ids(store) == ["report"]


def test_a_dependency_finished_before_the_add_is_met_by_kind(store):
    add(store, "ok", "dead", "gone")
    store.cancel(["gone"])
    end(store, "ok", "completed")
    end(store, "dead", "dead")
    store.add([row(store, "any-ok", after_any=["ok"]), row(store, "any-dead", after_any=["dead"]),
               row(store, "any-gone", after_any=["gone"]),
               row(store, "after-dead", depends_on=["dead"]),
               row(store, "after-gone", depends_on=["gone"]),
               row(store, "after-ok", depends_on=["ok"])])  # fmt: skip
    assert sorted(claim_ids(store)) == ["after-ok", "any-dead", "any-gone", "any-ok"]
    assert store.get("after-dead").waiting_for == [("dead", "dead", "after")]
    assert store.get("after-gone").waiting_for == [("gone", "canceled", "after")]


def test_an_expired_lease_that_ends_dead_meets_after_any(store):
    store.add([row(store, "a", max_retries=0), row(store, "b", after_any=["a"])])
    (job,) = store.claim("w", None, 1, 0.01)
    wait_for(lambda: store.now() > job.lease_until, timeout=5, message="the lease to expire")
    assert store.reap() == ["a"]
    assert store.get("a").state == "dead"
    assert claim_ids(store) == ["b"]


def test_a_job_released_after_any_outcome_goes_through_the_gates(store):
    """The trigger's `ready` is migration 0007's: gated where a gate applies, paused in a
    paused queue."""
    store.add(
        [
            row(store, "a", max_retries=0),
            row(store, "keyed", after_any=["a"], concurrency_key="k"),
            row(store, "parked", after_any=["a"], queue="slow"),
        ]
    )
    store.pause(["slow"])
    end(store, "a", "dead")
    assert claim_ids(store) == []  # the plain claim takes no gated job, nor a paused one
    turn = store.finish_and_claim_gated("w", [], None, GatedClaim(free=2, want=2, slots=2), 30)
    assert [j.id for j in turn.claimed] == ["keyed"]
    store.resume(["slow"])
    assert claim_ids(store) == ["parked"]


def test_an_unknown_after_any_rejects_the_whole_batch(store):
    add(store, "a")
    with pytest.raises(UnknownDependency, match="'nope'"):
        store.add([row(store, "b", after_any=["a"]), row(store, "c", after_any=["nope"])])
    assert sorted(states(store)) == ["a"]


@pytest.mark.parametrize(
    ("spec", "phrase"),
    [
        ({"depends_on": ["x"], "after_any": ["x"]}, "both depends_on (--after) and after_any"),
        ({"after_any": "x"}, "after_any must be a non-empty list"),
        ({"after_any": []}, "after_any must be a non-empty list"),
        ({"after_any": ["me"]}, "cannot depend on itself"),
        ({"after_any": [""]}, "after_any: id must be"),
        ({"depends_on": [f"a{i}" for i in range(60)], "after_any": [f"b{i}" for i in range(41)]},
         "at most 100"),
        ({"no_retry_on": [0]}, "exit codes are 1-255"),
        ({"no_retry_on": [256]}, "exit codes are 1-255"),
        ({"no_retry_on": [True]}, "exit codes are 1-255"),
        ({"no_retry_on": ["2"]}, "exit codes are 1-255"),
        ({"no_retry_on": "2,64"}, "no_retry_on must be a list"),
    ],
)  # fmt: skip
def test_bad_specs_are_refused(spec, phrase):
    with pytest.raises(InvalidInput, match=re.escape(phrase)):
        build_row({"id": "me", "command": "true", **spec}, now=0.0, cwd="/", max_retries=3)


# ---------------------------------------------------------------- the claims' hints


def test_a_turn_that_ends_a_job_dead_lets_its_after_any_dependent_run_at_once(store, monkeypatch):
    """On PostgreSQL a dependent made ready by a dead outcome is behind the claims' hint:
    the turn that recorded it forgets the hint (as for a completion), so the next claim
    takes it without waiting for the once-a-second scan from the head."""
    from queuectl.store import claim_hint

    monkeypatch.setattr(claim_hint, "RESCAN_EVERY", 3600.0)
    store.add([row(store, "a", max_retries=0), row(store, "b", after_any=["a"]),
               row(store, "c"), row(store, "d")])  # fmt: skip
    assert claim_ids(store, 1) == ["a"]
    turn = store.finish_and_claim("w", [Outcome("a", "dead", 1, "exit code 1")], None, 1, 30)
    # (SQLite's turn takes b at once; PostgreSQL's trigger runs after its claim, which
    # takes c: its hint is then at c, and b behind it)
    assert sorted([j.id for j in turn.claimed] + claim_ids(store, 1)) == ["b", "c"]


def test_a_cancel_lets_after_any_dependents_run_at_once(store, monkeypatch):
    from queuectl.store import claim_hint

    monkeypatch.setattr(claim_hint, "RESCAN_EVERY", 3600.0)
    store.add([row(store, "a", run_at=store.now() + 3600), row(store, "b", after_any=["a"]),
               row(store, "c"), row(store, "d")])  # fmt: skip
    assert claim_ids(store, 1) == ["c"]
    store.cancel(["a"])
    assert claim_ids(store, 1) == ["b"]


# ---------------------------------------------------------------- cancel with dependents


def later(store, job_id, **spec):
    """A job not due for an hour (it waits, and nothing claims it)."""
    return row(store, job_id, run_at=store.now() + 3600, **spec)


def test_cancel_with_dependents_takes_a_chain_and_a_diamond_and_nothing_else(store):
    store.add([
        later(store, "c1"), later(store, "c2", depends_on=["c1"]),
        later(store, "c3", after_any=["c2"]), later(store, "c4", depends_on=["c3"]),
        later(store, "top"), later(store, "left", depends_on=["top"]),
        later(store, "right", after_any=["top"]),
        later(store, "bottom", depends_on=["left"], after_any=["right"]),
        later(store, "other"), later(store, "beside", depends_on=["other"]),
        later(store, "both", depends_on=["other"], after_any=["c4"]),
    ])  # fmt: skip
    before = {job.id: job.to_dict() for job in store.jobs()}
    expected = [("top", "canceled"), ("left", "canceled"), ("right", "canceled"),
                ("bottom", "canceled")]  # fmt: skip
    assert store.cancel(["top"], dry_run=True, with_dependents=True) == expected
    assert {job.id: job.to_dict() for job in store.jobs()} == before
    assert store.cancel(["top"], with_dependents=True) == expected
    assert [i for i, _ in store.cancel(["c1"], with_dependents=True)] == [
        "c1", "c2", "c3", "c4", "both"]  # fmt: skip
    assert states(store) == {**{i: "canceled" for i in before}, "other": "pending",
                             "beside": "pending"}  # fmt: skip
    beside = store.get("beside")
    assert beside.to_dict() == before["beside"]


def test_cancel_with_dependents_of_a_running_job_stops_it_and_cancels_its_waiters(store):
    store.add([row(store, "run"), later(store, "next", depends_on=["run"])])
    store.register_worker("w", "host", 1, 1, None)
    assert claim_ids(store) == ["run"]
    assert store.cancel(["run"], with_dependents=True) == [
        ("run", "canceling"), ("next", "canceled")]  # fmt: skip
    assert store.heartbeat("w", 30).canceled == {"run"}
    store.finish("w", [Outcome("run", "failed", -15, "killed", retry_delay=1)])
    assert states(store) == {"run": "canceled", "next": "canceled"}


def test_cancel_with_dependents_of_a_selection(store):
    store.add([later(store, "a", queue="batch"), later(store, "b", depends_on=["a"]),
               later(store, "c")])  # fmt: skip
    selector = Selector((), ("batch",), ())
    assert store.cancel(selector, with_dependents=True) == [("a", "canceled"), ("b", "canceled")]
    assert states(store)["c"] == "pending"


def test_jobs_already_met_or_finished_are_not_taken(store):
    """A dependent that an after-any outcome let go no longer waits: not taken; nor a
    finished one."""
    store.add([row(store, "a", max_retries=0), row(store, "freed", after_any=["a"]),
               later(store, "waits", depends_on=["a"])])  # fmt: skip
    end(store, "a", "dead")
    store.revive(["a"])
    assert store.cancel(["a"], with_dependents=True) == [("a", "canceled"), ("waits", "canceled")]
    assert states(store)["freed"] == "pending"
    assert claim_ids(store) == ["freed"]


def test_stranded_counts_what_waits_through_after_transitively(store):
    store.add([
        later(store, "top"), later(store, "left", depends_on=["top"]),
        later(store, "right", after_any=["top"]),
        later(store, "bottom", depends_on=["right"], after_any=["left"]),
        later(store, "below", after_any=["bottom"]), later(store, "free", after_any=["right"]),
    ])  # fmt: skip
    # left never runs: bottom (after any outcome of left, which never comes) and below
    # neither; right and free run
    assert store.stranded(["top"]) == 3
    store.cancel(["top"])
    assert store.stranded(["top"]) == 3
    assert store.stranded(["free"]) == 0  # nothing waits for it
    assert store.stranded([]) == 0
    # left canceled too: bottom has had left's outcome, and runs after right
    store.cancel(["left"])
    assert store.stranded(["top"]) == 0


# ---------------------------------------------------------------- no retry on


def test_no_retry_on_is_kept_and_edited(store):
    store.add([row(store, "a", no_retry_on=[2, 64, 2]), row(store, "b"),
               row(store, "c", no_retry_on=[])])  # fmt: skip
    assert [store.get(i).no_retry_on for i in "abc"] == [[2, 64], None, []]
    store.edit("b", {"no_retry_on": [126]})
    store.edit("a", {"no_retry_on": []})
    assert [store.get(i).no_retry_on for i in "ab"] == [[], [126]]
    assert store.get("b").to_dict()["no_retry_on"] == [126]


def decide(job, code, stored_config=None, stop_reason=None):
    """The pool's decision for a claimed job (its attempt counted) that exited `code`."""
    from queuectl.worker.outcomes import outcome_of
    from queuectl.worker.process import Run

    run = Run(job, timeout=5.0, output_limit=100)
    run.stop_reason = stop_reason
    return outcome_of(run, code, None, b"", 0.1, Config(stored_config), lambda line: None)


def claimed(store) -> dict:
    return {job.id: job for job in store.claim("w", None, 10, 30)}


def test_an_exit_code_of_no_retry_on_ends_the_retries(store):
    store.add([row(store, "two", no_retry_on=[2, 64]), row(store, "three", no_retry_on=[2]),
               row(store, "timed", no_retry_on=[143])])  # fmt: skip
    jobs = claimed(store)
    two = decide(jobs["two"], 2)
    assert (two.state, two.exit_code) == ("dead", 2)
    assert two.error == "exit code 2; not retried (no-retry-on)"
    three = decide(jobs["three"], 3)
    assert (three.state, three.exit_code, three.retry_delay) == ("failed", 3, 2.0)
    assert decide(jobs["timed"], 143, stop_reason="timeout").state == "failed"


def test_the_config_default_applies_unless_the_job_has_its_own_list(store):
    setting = lookup("no_retry_on")
    assert setting.parse("2, 126") == [2, 126]
    assert setting.parse("") == []
    stored = {"no-retry-on": setting.parse("2,126")}
    store.add([row(store, "default"), row(store, "own", no_retry_on=[64]),
               row(store, "none", no_retry_on=[]), row(store, "no-config")])  # fmt: skip
    jobs = claimed(store)
    assert decide(jobs["default"], 126, stored).state == "dead"
    assert decide(jobs["own"], 2, stored).state == "failed"  # its own list replaces it
    assert decide(jobs["own"], 64, stored).state == "dead"
    assert decide(jobs["none"], 2, stored).state == "failed"
    assert decide(jobs["no-config"], 2).state == "failed"  # the default default: none


@pytest.mark.parametrize("raw", ["0", "256", "2,,3", "-1", "two", "2;3", "\uff11"])
def test_bad_config_values_are_refused(raw):  # (\uff11: a fullwidth digit one)
    with pytest.raises(InvalidInput, match="no-retry-on"):
        lookup("no-retry-on").parse(raw)
