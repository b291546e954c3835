"""The live chain on real LSL outlets/inlets and real ZeroMQ sockets on loopback.

Every test uses a unique LSL name / TCP port; assertions are on counts and values (never on
latency), with generous timeouts.
"""

from __future__ import annotations

import time

import msgpack
import numpy as np
import pytest
import zmq

from hdys_rt import representations as reps
from hdys_rt import wire
from hdys_rt.client import MarkerSender
from hdys_rt.errors import HdysError
from hdys_rt.model.streaming import StreamingEstimator
from hdys_rt.runtime.pipeline import PipelineOptions
from hdys_rt.model.resample import offline_estimates
from hdys_rt.streams.lsl import LslEstimateSink, LslSource, marker_outlet
from hdys_rt.streams.lslconf import pylsl_module
from hdys_rt.streams.replay import ReplaySource
from hdys_rt.streams.zmq import ZmqSource

#: tests count every frame: nothing may be dropped as stale however loaded the machine is
KEEP_ALL = PipelineOptions(max_age_s=60.0)


def offline(model_path, frames, rate, stamps=None):
    """The same frames through a fresh estimator: what every live estimate must equal
    (``stamps``: their times, when not exactly 1 / rate apart: resampled as live)."""
    est = StreamingEstimator.load(model_path)
    if stamps is not None:
        return offline_estimates(est, np.asarray(frames), np.asarray(stamps), rate)
    est.set_stream_rate(rate)
    return [est.step(f) for f in frames]


def assert_same_estimates(got, expected):
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        for k, v in e.items():
            np.testing.assert_allclose(g.outputs[k], v, rtol=1e-4, atol=1e-5)


def test_lsl_in_zmq_out(running, gait, lsl_name, model_path):
    pylsl = pylsl_module()
    rec = gait.resampled(200.0)
    n = 60
    outlet = marker_outlet(lsl_name, gait.names, 200.0)
    src = LslSource(name=lsl_name)
    with running([src], options=KEEP_ALL) as r:
        assert outlet.wait_for_consumers(20)
        stamps = []
        for i in range(n):
            stamps.append(pylsl.local_clock())
            outlet.push_sample(rec.xyz[i].reshape(-1), stamps[-1])
            time.sleep(0.005)
        assert r.wait_for(lambda: len(r.got) >= n)
    got = r.got
    assert [e.seq for e in got] == list(range(n))
    assert "reset" in got[0].flag_names
    # (gap flags depend on how regularly this loaded machine pushed; not asserted)
    assert not any(set(e.flag_names) & {"missing", "too_few", "dropped", "error"} for e in got)
    # source timestamps travel through (same machine: LSL clock sync adds ~0)
    np.testing.assert_allclose([e.t_src for e in got], stamps, atol=2e-3)
    assert got[-1].channels("torques_rajagopal") == reps.RAJAGOPAL_TORQUE_JOINTS
    assert got[-1].unit("torques_rajagopal") == "N·m/kg"
    assert got[-1].meta["input"]["names"] == list(gait.names)
    assert got[-1].meta["model"]["phases"] == 2  # 200 Hz stream, 100 Hz model
    assert_same_estimates(got, offline(model_path, rec.xyz[:n], 200.0, stamps))
    assert src.counters["received"] == n and r.pipe.counters["dropped"] == 0


def test_zmq_in_zmq_out(running, gait, make_port, model_path):
    ep = f"tcp://127.0.0.1:{make_port()}"
    n = 50
    with MarkerSender(gait.names, 100.0, ep, src="zmq-walk") as sender:
        src = ZmqSource(ep)
        with running([src], options=KEEP_ALL) as r:
            assert sender.wait_for_subscriber(20)
            for i in range(n):
                sender.send(gait.xyz[i], t=50.0 + i * 0.01)  # a 100 Hz clock, sent faster
                time.sleep(0.002)
            assert r.wait_for(lambda: len(r.got) >= n)
    assert [e.seq for e in r.got] == list(range(n))
    assert {e.stream for e in r.got} == {"zmq-walk"}
    assert_same_estimates(r.got, offline(model_path, gait.xyz[:n], 100.0))


def test_replay_to_zmq(running, gait, model_path):
    src = ReplaySource(gait, rate=200.0, seconds=0.4, name="replayed")
    with running([src], options=KEEP_ALL) as r:
        assert r.wait_for(lambda: len(r.got) >= 80 and r.pipe.done)
    assert [e.seq for e in r.got] == list(range(80))
    assert_same_estimates(r.got, offline(model_path, gait.resampled(200.0).xyz[:80], 200.0))


def test_lsl_out(running, gait, make_port):
    pylsl = pylsl_module()
    ep = f"tcp://127.0.0.1:{make_port()}"
    stream = f"lslout-{make_port()}"
    n = 30
    with MarkerSender(gait.names, 100.0, ep, src=stream) as sender:
        src = ZmqSource(ep, name=stream)
        opts = PipelineOptions(max_age_s=60.0)
        lsl_sink = LslEstimateSink()
        with running([src], options=opts, sinks=[lsl_sink]) as r:
            assert sender.wait_for_subscriber(20)
            sender.send(gait.xyz[0])  # the outlet appears with the first frame's layout
            found = pylsl.resolve_byprop("name", f"{stream}-hdys", 1, 20.0)
            assert found, "estimates outlet not found"
            inlet = pylsl.StreamInlet(found[0], max_buflen=10, recover=False)
            info = inlet.info(5.0)
            inlet.open_stream(5.0)
            assert r.wait_for(lambda: lsl_sink.have_consumers(stream))  # inlet connected
            for i in range(1, n):
                sender.send(gait.xyz[i])
                time.sleep(0.005)
            assert r.wait_for(lambda: len(r.got) >= n)
            samples = []
            deadline = time.monotonic() + 20
            while len(samples) < n - 1 and time.monotonic() < deadline or inlet.samples_available():
                s, ts = inlet.pull_sample(0.2)
                if s is not None:
                    samples.append((np.asarray(s, np.float32), ts))
            inlet.close_stream()
    assert info.type() == "Estimates"
    ch = info.desc().child("channels").child("channel")
    assert ch.child_value("label") == f"torques_rajagopal/{reps.RAJAGOPAL_TORQUE_JOINTS[0]}"
    assert n - 1 <= len(samples) <= n
    by_t = {round(e.t_src, 6): e for e in r.got}
    for s, ts in samples:  # each LSL sample is the estimate of the input sample at ts
        e = by_t[round(ts, 6)]
        np.testing.assert_allclose(s, np.concatenate(list(e.outputs.values())), rtol=1e-6)


def test_occluded_markers(running, gait, make_port):
    ep = f"tcp://127.0.0.1:{make_port()}"
    P = len(gait.names)
    frames = []
    for i in range(12):
        f = gait.xyz[i].copy()
        if i in (3, 4):
            f[[0, 5, 7]] = np.nan                      # occluded markers
        if i == 6:
            f[3:] = np.nan                             # only 3 left: too few
        if i == 8:
            f[2] = [np.inf, 0, 0]                      # non-finite
            f[9] = [1e6, 1.0, 0.0]                     # absurd (1000 km)
        if i == 10:
            f[:] = np.nan                              # every marker missing
        frames.append(f)
    with MarkerSender(gait.names, 100.0, ep) as sender:
        with running([ZmqSource(ep)], options=KEEP_ALL) as r:
            assert sender.wait_for_subscriber(20)
            for f in frames:
                sender.send(f)
                time.sleep(0.005)
            assert r.wait_for(lambda: len(r.got) >= len(frames))
    got = {e.seq: e for e in r.got}
    assert len(got) == len(frames)
    assert got[3].missing == [0, 5, 7] and "missing" in got[3].flag_names
    assert got[3].n_valid == P - 3
    assert all(np.isfinite(v).all() for v in got[3].outputs.values())
    for i in (6, 10):
        assert "too_few" in got[i].flag_names
        assert all(np.isnan(v).all() for v in got[i].outputs.values())
    assert "invalid" in got[8].flag_names and got[8].missing == [2, 9]
    assert all(np.isfinite(v).all() for v in got[8].outputs.values())
    assert got[11].missing == [] and all(np.isfinite(v).all() for v in got[11].outputs.values())
    assert r.pipe.counters["too_few"] == 2


def test_lsl_source_vanishes_and_returns(running, gait, lsl_name):
    pylsl = pylsl_module()
    src = LslSource(name=lsl_name, stall_s=0.3)
    with running([src], options=KEEP_ALL) as r:
        for round_ in range(2):
            outlet = marker_outlet(lsl_name, gait.names, 100.0)
            assert outlet.wait_for_consumers(20), f"round {round_}: not reconnected"
            for i in range(20):
                outlet.push_sample(gait.xyz[i].reshape(-1), pylsl.local_clock())
                time.sleep(0.005)
            assert r.wait_for(lambda: len(r.got) >= 20 * (round_ + 1))
            del outlet  # the source vanishes
            assert r.wait_for(lambda: src.counters["lost"] >= round_ + 1)
            time.sleep(0.6)  # the source stays away longer than the reset gap (0.5 s)
    assert len(r.got) == 40
    assert src.counters["reconnects"] == 1
    assert "reset" in r.got[20].flag_names and "gap" in r.got[20].flag_names


def test_zmq_sender_vanishes_and_returns(running, gait, make_port):
    ep = f"tcp://127.0.0.1:{make_port()}"
    src = ZmqSource(ep, stall_s=0.3)
    with running([src], options=KEEP_ALL) as r:
        for round_ in range(2):
            with MarkerSender(gait.names, 100.0, ep) as sender:
                assert sender.wait_for_subscriber(20)
                for i in range(15):
                    sender.send(gait.xyz[i])
                    time.sleep(0.005)
                assert r.wait_for(lambda: len(r.got) >= 15 * (round_ + 1))
            time.sleep(0.7)  # gone for longer than the stall and reset times
    assert len(r.got) == 30
    assert "reset" in r.got[15].flag_names
    assert r.got[15].seq == 0  # the returning sender starts again; nothing was dropped


def test_malformed_and_oversized_messages(running, gait, make_port):
    ep = f"tcp://127.0.0.1:{make_port()}"
    good = lambda i: wire.encode_markers(gait.xyz[i], gait.names, time.monotonic(), i)  # noqa
    bad_maps = [
        {"v": 2, "type": "markers"},                                     # future version
        {"v": 1, "type": "markers", "seq": -1, "t": 0.0, "names": ["a"], "xyz": b"\0" * 12},
        {"v": 1, "type": "markers", "seq": 0, "t": "now", "names": ["a"], "xyz": b"\0" * 12},
        {"v": 1, "type": "markers", "seq": 0, "t": 1.0, "names": ["a"], "xyz": b"\0" * 11},
        {"v": 1, "type": "markers", "seq": 0, "t": 1.0, "names": ["a", "a"], "xyz": b"\0" * 24},
        {"v": 1, "type": "markers", "seq": 0, "t": 1.0, "names": [3], "xyz": b"\0" * 12},
        {"v": 1, "type": "markers", "seq": 0, "t": 1.0, "names": ["x" * 65], "xyz": b"\0" * 12},
        {"v": 1, "type": "markers", "seq": 0, "t": 1.0, "names": ["a"], "xyz": [0, 0, 0]},
    ]
    many = [f"m{i}" for i in range(wire.MAX_MARKERS + 1)]
    with MarkerSender(gait.names, 100.0, ep) as sender:
        with running([ZmqSource(ep)], options=KEEP_ALL) as r:
            assert sender.wait_for_subscriber(20)
            sender.send_raw(good(0))
            assert r.wait_for(lambda: len(r.got) >= 1)
            sender.send_raw(b"\xc1 not msgpack")
            sender.send_raw(msgpack.packb([1, 2, 3]))
            for m in bad_maps:
                sender.send_raw(msgpack.packb(m, use_bin_type=True))
            sender._sock.send_multipart([wire.TOPIC_MARKERS, b"x", b"y"])    # 3 parts
            sender.send_raw(b"\0" * (wire.MAX_MESSAGE_BYTES + 1000))          # oversized
            sender.send_raw(msgpack.packb({"v": 1, "type": "markers", "seq": 0, "t": 1.0,
                                           "names": many, "xyz": b""}))       # too many markers
            for i in range(1, 11):
                sender.send_raw(good(i))
                time.sleep(0.005)
            assert r.wait_for(lambda: len(r.got) >= 11)
            src = r.server.sources[0]
            assert r.wait_for(lambda: src.counters["malformed"] == 2 + len(bad_maps) + 1)
    assert src.counters["oversized"] == 2
    assert [e.seq for e in r.got] == list(range(11))


def test_out_of_order_and_duplicates(running, gait, make_port):
    ep = f"tcp://127.0.0.1:{make_port()}"
    times = [10.00, 10.01, 10.005, 10.01, 10.02, 10.03]
    with MarkerSender(gait.names, 100.0, ep) as sender:
        with running([ZmqSource(ep)], options=KEEP_ALL) as r:
            assert sender.wait_for_subscriber(20)
            for i, t in enumerate(times):
                sender.send(gait.xyz[i], t=t, seq=i)
                time.sleep(0.005)
            assert r.wait_for(lambda: len(r.got) >= 4)
            # every message accounted for (4 processed, 2 out of order): nothing more will come
            assert r.wait_for(lambda: r.server.accounting()["arrived"] == 6
                              and r.server.accounting()["pending"] == 0)
    assert [e.seq for e in r.got] == [0, 1, 4, 5]
    assert r.server.sources[0].counters["out_of_order"] == 2
    assert r.got[-1].out_of_order == 2


def test_subscriber_that_never_reads(running, gait, make_port):
    ep = f"tcp://127.0.0.1:{make_port()}"
    n = 1500
    src = ZmqSource(ep, capacity=4096)
    with MarkerSender(gait.names, 100.0, ep) as sender:
        with running([src], options=KEEP_ALL, sndhwm=2000) as r:
            lazy = zmq.Context.instance().socket(zmq.SUB)
            lazy.setsockopt(zmq.RCVHWM, 1)
            lazy.setsockopt(zmq.RCVBUF, 4096)
            lazy.setsockopt(zmq.SUBSCRIBE, b"")
            lazy.connect(r.endpoint)
            # the collecting subscriber made 2 subscriptions (meta, est); the lazy one a third
            assert r.wait_for(lambda: (r.publisher.service(), r.publisher.subscriptions)[1] >= 3)
            assert sender.wait_for_subscriber(20)
            for i in range(n):
                sender.send(gait.xyz[i % gait.frames])
                if i % 5 == 4:
                    time.sleep(0.005)
            assert r.wait_for(lambda: len(r.got) >= n, timeout=60)
            lazy.close(0)
    assert len(r.got) == n
    assert r.pipe.counters["published"] == n and r.pipe.counters["dropped"] == 0


def test_inference_error_is_contained(running, gait, make_port):
    ep = f"tcp://127.0.0.1:{make_port()}"
    with MarkerSender(gait.names, 100.0, ep) as sender:
        with running([ZmqSource(ep)], options=KEEP_ALL) as r:
            est = r.pipe.est
            real_step = est.step

            def flaky(slots, points, **kw):  # the batched step of every stream
                if any(np.array_equal(p, gait.xyz[2]) for p in points):
                    raise RuntimeError("boom")
                return real_step(slots, points, **kw)

            assert sender.wait_for_subscriber(20)
            est.step = flaky
            for i in range(6):
                sender.send(gait.xyz[i], t=50.0 + i * 0.01)  # frames on the model's grid
                time.sleep(0.01)
            assert r.wait_for(lambda: len(r.got) >= 6)
    flags = [e.flag_names for e in r.got]
    errs = [i for i, f in enumerate(flags) if "error" in f]
    assert errs == [2] and r.pipe.counters["errors"] == 1
    assert all(np.isnan(v).all() for v in r.got[errs[0]].outputs.values())
    assert all(np.isfinite(v).all() for v in r.got[-1].outputs.values())


@pytest.mark.parametrize("n_streams", [2])
def test_several_streams(running, gait, make_port, n_streams):
    eps = [f"tcp://127.0.0.1:{make_port()}" for _ in range(n_streams)]
    senders = [MarkerSender(gait.names, 100.0, ep, src=f"s{i}") for i, ep in enumerate(eps)]
    try:
        with running([ZmqSource(ep) for ep in eps], options=KEEP_ALL) as r:
            for s in senders:
                assert s.wait_for_subscriber(20)
            for i in range(20):
                for s in senders:
                    s.send(gait.xyz[i])
                time.sleep(0.005)
            assert r.wait_for(lambda: len(r.got) >= 20 * n_streams)
    finally:
        for s in senders:
            s.close()
    for i in range(n_streams):
        assert [e.seq for e in r.got if e.stream == f"s{i}"] == list(range(20))


def test_subject_mass_adds_absolute_outputs(running, gait, model_path):
    """serve --mass / --height: torques also in N·m and %BW·Ht, GRF forces also in N."""
    src = ReplaySource(gait, rate=100.0, seconds=0.2, name="subject")
    opts = PipelineOptions(max_age_s=60.0, mass_kg=80.0, height_m=1.8)
    with running([src], options=opts) as r:
        assert r.wait_for(lambda: len(r.got) >= 20 and r.pipe.done)
    e = r.got[-1]
    assert e.unit("torques_rajagopal_Nm") == "N·m" and e.unit("grf_N") == "N | m"
    tq = np.asarray(e.outputs["torques_rajagopal"])
    np.testing.assert_allclose(e.outputs["torques_rajagopal_Nm"], tq * 80.0, rtol=1e-6)
    np.testing.assert_allclose(e.outputs["torques_rajagopal_pct_bwht"],
                               tq * 100.0 / (reps.G * 1.8), rtol=1e-5)
    names = e.channels("grf")
    force = [i for i, c in enumerate(names) if reps.is_force(c)]
    cop = [i for i, c in enumerate(names) if "_cop" in c]
    g, gn = np.asarray(e.outputs["grf"]), np.asarray(e.outputs["grf_N"])
    np.testing.assert_allclose(gn[force], g[force] * 80.0 * reps.G, rtol=1e-6)
    np.testing.assert_array_equal(gn[cop], g[cop])
    with pytest.raises(HdysError, match="needs --mass"):
        PipelineOptions(height_m=1.8)
