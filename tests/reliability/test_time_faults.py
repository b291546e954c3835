"""Time faults on real loopback sockets: clock jumps, duplicated and out-of-order timestamps
(ZeroMQ and LSL), bursts after a stall. Every test ends with the frame accounting."""

from __future__ import annotations

import time

import numpy as np
from relhelpers import assert_accounted

from hdys_rt.client import MarkerSender
from hdys_rt.runtime.pipeline import PipelineOptions
from hdys_rt.streams.lsl import LslSource, marker_outlet
from hdys_rt.streams.lslconf import pylsl_module
from hdys_rt.streams.zmq import ZmqSource


def _send(sender, gait, times, pause=0.004):
    for i, t in enumerate(times):
        sender.send(gait.xyz[i % gait.frames], t=t, seq=i)
        time.sleep(pause)


def test_clock_jumps_forward_and_back(running, gait, endpoint):
    ep = endpoint()
    t0 = 1000.0
    times = ([t0 + 0.01 * i for i in range(5)]            # steady
             + [t0 + 100.0 + 0.01 * i for i in range(5)]  # clock jumps 100 s forward
             + [t0 + 0.01 * i for i in range(5)])         # and back again (NTP step, reboot)
    with MarkerSender(gait.names, 100.0, ep) as sender:
        with running([ZmqSource(ep)]) as r:
            assert sender.wait_for_subscriber(20)
            _send(sender, gait, times)
            assert r.wait_for(lambda: len(r.got) >= len(times))
            acc = assert_accounted(r.server, arrived=len(times))
    assert [e.seq for e in r.got] == list(range(15))  # nothing lost to either jump
    assert r.src.counters["resyncs"] == 1 and r.src.counters["out_of_order"] == 0
    assert {"gap", "reset"} <= set(r.got[5].flag_names)   # forward: a gap, state reset
    assert "reset" in r.got[10].flag_names                 # backward: state reset
    for e in r.got[6:10] + r.got[11:]:
        assert not set(e.flag_names) & {"gap", "reset", "dropped"}, e.flag_names
        assert all(np.isfinite(v).all() for v in e.outputs.values())
    assert acc["processed"] == 15 and acc["dropped"] == 0


def test_duplicates_and_reordering_are_dropped_and_counted(running, gait, endpoint):
    ep = endpoint()
    rng = np.random.default_rng(3)
    base = 50.0 + 0.01 * np.arange(60)
    times = list(base)
    for i in rng.choice(np.arange(2, 58), 12, replace=False):   # swap neighbours
        times[i], times[i + 1] = times[i + 1], times[i]
    for i in sorted(rng.choice(np.arange(60), 8, replace=False), reverse=True):
        times.insert(i + 1, times[i])                           # exact duplicates
    accepted, last = [], -np.inf  # the rule: a sample must be later than the last accepted
    for i, t in enumerate(times):
        if t > last:
            accepted.append(i)
            last = t
    with MarkerSender(gait.names, 100.0, ep) as sender:
        with running([ZmqSource(ep)]) as r:
            assert sender.wait_for_subscriber(20)
            _send(sender, gait, times, pause=0.003)
            assert r.wait_for(lambda: len(r.got) >= len(accepted))
            acc = assert_accounted(r.server, arrived=len(times))
    assert [e.seq for e in r.got] == accepted
    assert acc["out_of_order"] == len(times) - len(accepted) >= 8
    assert r.got[-1].out_of_order == acc["out_of_order"]
    assert r.src.counters["resyncs"] == 0


def test_lsl_duplicated_and_out_of_order_timestamps(running, gait, lsl_name):
    pylsl = pylsl_module()
    outlet = marker_outlet(lsl_name, gait.names, 100.0)
    src = LslSource(name=lsl_name)
    with running([src]) as r:
        assert outlet.wait_for_consumers(20)
        t0 = pylsl.local_clock()
        offsets = [0.00, 0.01, 0.005, 0.01, 0.02, 0.02, 0.03]   # 3 late or repeated
        for i, dt in enumerate(offsets):
            outlet.push_sample(gait.xyz[i].reshape(-1), t0 + dt)
            time.sleep(0.005)
        assert r.wait_for(lambda: len(r.got) >= 4)
        acc = assert_accounted(r.server, arrived=len(offsets))
    assert len(r.got) == 4 and acc["out_of_order"] == 3
    np.testing.assert_allclose([e.t_src for e in r.got], [t0 + d for d in (0, .01, .02, .03)],
                               atol=2e-3)


def test_burst_after_stall_skips_stale_estimates_and_keeps_serving(running, gait, endpoint):
    ep = endpoint()
    src = ZmqSource(ep, stall_s=0.3)  # default options: stale estimates (> 25 ms) unpublished
    with MarkerSender(gait.names, 200.0, ep) as sender:
        with running([src], options=PipelineOptions()) as r:
            assert sender.wait_for_subscriber(20)
            for i in range(10):
                sender.send(gait.xyz[i])
                time.sleep(0.005)
            assert r.wait_for(lambda: r.got and r.got[-1].seq == 9)
            time.sleep(0.8)                            # the source stalls ...
            now = time.monotonic()
            for i in range(10, 310):                   # ... then bursts 1.5 s of buffered data
                sender.send(gait.xyz[i % gait.frames], t=now - (310 - i) * 0.005)
            for i in range(310, 320):                  # and goes on at its rate
                time.sleep(0.005)
                sender.send(gait.xyz[i % gait.frames])
            assert r.wait_for(lambda: r.got and r.got[-1].seq == 319)
            acc = assert_accounted(r.server, arrived=320)
    # the burst enters the model (only a full ring loses frames); its stale estimates are
    # not published
    assert acc["received"] == 320 and acc["stale_unpublished"] > 0
    assert acc["processed"] == 320 - acc["dropped"]
    assert len(r.got) == acc["processed"] - acc["stale_unpublished"]
    seqs = [e.seq for e in r.got]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    skipped = [e for a, e in zip(r.got, r.got[1:]) if e.seq > a.seq + 1]
    assert skipped and all({"dropped", "stale"} & set(e.flag_names) for e in skipped)
    assert r.got[-1].dropped == acc["dropped"]
    assert r.got[-1].stale == acc["stale_unpublished"]
