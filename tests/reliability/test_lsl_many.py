"""Many LSL streams in one serve: every source connects and receives every sample.

Regression test: with one-shot resolves per source, 16 sources in one process could leave some
stuck forever inside liblsl's resolve (never connected; a sender waiting for consumers then never
sent, and serve saw only a first sample or nothing). Sources now share one continuous resolver.
"""

from __future__ import annotations

import time
import uuid

from hdys_rt.streams.lsl import LslSource, marker_outlet
from hdys_rt.streams.lslconf import pylsl_module


def test_sixteen_lsl_streams(running, gait):
    pylsl = pylsl_module()
    tag = uuid.uuid4().hex[:8]
    names = [f"hdys-rel-many-{tag}-{i}" for i in range(16)]
    n = 30
    outlets = [marker_outlet(nm, gait.names, 100.0) for nm in names]
    sources = [LslSource(name=nm) for nm in names]
    with running(sources) as r:
        for nm, o in zip(names, outlets):
            assert o.wait_for_consumers(30), f"{nm} never got a consumer"
        for i in range(n):
            t = pylsl.local_clock()
            for o in outlets:
                o.push_sample(gait.xyz[i].reshape(-1), t)
            time.sleep(0.01)
        assert r.wait_for(lambda: len(r.got) >= 16 * n, timeout=60)
        acc = r.server.accounting()
    assert acc["received"] == 16 * n and acc["unaccounted"] == 0
    for nm in names:
        assert [e.seq for e in r.got if e.stream == nm] == list(range(n))
