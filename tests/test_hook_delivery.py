"""The pool's hook delivery thread (worker/hooks.py) on both backends, in process: a
drain (a burst pool's last act) asked while a look at the outbox is under way still
delivers what was recorded before it."""

from __future__ import annotations

import json
import threading
import time

from conftest import add
from queuectl.hook_spec import new_hook
from queuectl.settings import Config
from queuectl.worker.hooks import HookDelivery


class FirstLookLate(HookDelivery):
    """Its first look finds nothing and ends only once a drain is asked: a look begun
    before the pool's last outcome committed."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.looked = threading.Event()
        self.looks = 0

    def _turn(self, store) -> bool:
        self.looks += 1
        found = super()._turn(store)
        if self.looks == 1:
            self.looked.set()
            while not self._draining:
                time.sleep(0.01)
        return found


def test_a_drain_asked_during_a_look_delivers_what_was_recorded_before_it(store, tmp_path):
    got = tmp_path / "got.json"
    store.add_hook(new_hook("h", "canceled", command=f"cat > '{got}'"))
    add(store, "j")
    delivery = FirstLookLate(store, worker_id="w", log=lambda line: None)
    delivery.ensure(Config())
    assert delivery.looked.wait(10)
    store.cancel(["j"])  # recorded while the first look is still under way
    started = time.monotonic()
    delivery.drain(Config())
    assert json.loads(got.read_text())["id"] == "j"
    assert time.monotonic() - started < 5
    assert store.hooks()[0].pending == 0 and delivery.looks >= 2
