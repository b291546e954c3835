"""Helpers of the reliability tests (a module with a unique name: test files import it)."""

from __future__ import annotations

import time

from hdys_rt.runtime.pipeline import PipelineOptions
from hdys_rt.runtime.server import Server

#: the tiny architecture of tests/runtime (max 64 points: a 65-marker layout is refused)

#: nothing is dropped as stale however loaded the machine is (tests that count every frame)
KEEP_ALL = PipelineOptions(max_age_s=60.0)

#: how long a test waits for an event before it fails (it returns as soon as the event happens;
#: generous, since the suite must pass on a busy 2-core machine)
PATIENCE_S = 60.0


def wait_for(predicate, timeout=PATIENCE_S, step=0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return bool(predicate())


def assert_accounted(server: Server, arrived: int | None = None,
                     timeout: float = PATIENCE_S) -> dict:
    """Every frame that reached serve is processed, dropped or still pending (and, given
    ``arrived``, every message sent reached serve's counters)."""
    def settled():
        a = server.accounting()
        return a["pending"] == 0 and (arrived is None or a["arrived"] == arrived)
    wait_for(settled, timeout)
    acc = server.accounting()
    assert acc["unaccounted"] == 0, acc
    if arrived is not None:
        assert acc["arrived"] == arrived, acc
        assert acc["arrived"] == (acc["processed"] + acc["dropped"] + acc["pending"]
                                  + acc["out_of_order"] + acc["rejected"]), acc
    return acc
