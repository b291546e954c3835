"""The answer does not depend on load: under CPU stress (busy processes on both cores) every
frame enters the model and every published estimate equals the offline estimate of its frame;
only stale estimates are left unpublished, and counted."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from relhelpers import assert_accounted

from hdys_rt.client import MarkerSender
from hdys_rt.model.streaming import StreamingEstimator
from hdys_rt.runtime.pipeline import PipelineOptions
from hdys_rt.streams.zmq import ZmqSource


@pytest.fixture
def cpu_stress():
    """Two busy-loop processes (one per core of the test machine), killed afterwards."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    yield procs
    for p in procs:
        p.kill()
        p.wait()


def test_estimates_unchanged_under_stress(running, gait, endpoint, model_path, cpu_stress):
    ep = endpoint()
    bursts, size = 12, 30
    n = bursts * size
    frames = [gait.xyz[i % gait.frames] for i in range(n)]
    # a 2 ms age limit and bursts of 30 frames: many estimates are stale whatever the load
    opts = PipelineOptions(max_age_s=0.002)
    with MarkerSender(gait.names, 100.0, ep, src="stressed") as sender:
        with running([ZmqSource(ep)], options=opts) as r:
            assert sender.wait_for_subscriber(60)
            for b in range(bursts):
                for i in range(b * size, (b + 1) * size):
                    sender.send(frames[i], t=100.0 + i * 0.01, seq=i)
                # the next burst once this one is in (the last frame of a burst is published)
                assert r.wait_for(lambda: any(e.seq == (b + 1) * size - 1 for e in r.got[-5:]))
            acc = assert_accounted(r.server, arrived=n)
    assert acc["processed"] == n and acc["dropped"] == 0, acc
    assert acc["stale_unpublished"] > 0, acc  # the load path was exercised
    published = {e.seq: e for e in r.got}
    assert len(published) == n - acc["stale_unpublished"]
    assert all(s in published for s in range(size - 1, n, size))
    est = StreamingEstimator.load(model_path)
    est.set_stream_rate(100.0)
    stale_seen = False
    for i, f in enumerate(frames):
        ref = est.step(f)
        if i in published:
            e = published[i]
            stale_seen |= "stale" in e.flag_names
            for k, v in ref.items():
                np.testing.assert_allclose(e.outputs[k], v, rtol=1e-4, atol=1e-4)
    assert stale_seen and r.got[-1].stale == acc["stale_unpublished"]
