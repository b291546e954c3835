"""One batched inference loop serves every stream: 16 ZeroMQ streams join and leave while
served, every frame is accounted for, and every estimate equals the offline estimate of its
frame; the model ran in batched calls (fewer calls than grid steps)."""

from __future__ import annotations

import time

import numpy as np

from hdys_rt.client import MarkerSender
from hdys_rt.model.streaming import StreamingEstimator
from hdys_rt.runtime.pipeline import PipelineOptions
from hdys_rt.model.resample import offline_estimates
from hdys_rt.runtime.server import Server, load_estimator
from hdys_rt.streams.zmq import Publisher, ZmqSource

KEEP_ALL = PipelineOptions(max_age_s=60.0)


PATIENCE_S = 60.0  # as tests/runtime/conftest.py: bounds a failure only


def wait_for(predicate, timeout=PATIENCE_S):
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:
        time.sleep(0.01)
    return predicate()


def test_sixteen_streams_join_and_leave(gait, make_port, model_path):
    from hdys_rt.client import Subscriber

    n_streams, n_frames = 16, 60
    frames = lambda k: [gait.xyz[(i + 7 * k) % gait.frames] for i in range(n_frames)]  # noqa
    stamps = 10.0 + np.arange(n_frames) * 0.01
    est = load_estimator(model_path)
    pub_ep = f"tcp://127.0.0.1:{make_port()}"
    server = Server([], est, Publisher(pub_ep), KEEP_ALL).start()
    sub = Subscriber(pub_ep, rcvhwm=100_000)
    got: dict[str, list] = {}
    senders, pipes, sent = {}, {}, {}
    try:
        assert sub.wait_connected(PATIENCE_S)

        def join(k):
            ep = f"tcp://127.0.0.1:{make_port()}"
            senders[k] = MarkerSender(gait.names, 100.0, ep, src=f"s{k}")
            pipes[k] = server.add_source(ZmqSource(ep))
            assert senders[k].wait_for_subscriber(PATIENCE_S)
            sent[k] = 0

        def tick():
            for k, s in senders.items():
                if sent[k] < n_frames:
                    s.send(frames(k)[sent[k]], t=stamps[sent[k]], seq=sent[k])
                    sent[k] += 1
            while (e := sub.recv(0)) is not None:
                got.setdefault(e.stream, []).append(e)

        for k in range(8):                      # 8 streams at first
            join(k)
        for _ in range(20):
            tick()
            time.sleep(0.005)
        for k in range(8, 16):                  # 8 more join while the first are served
            join(k)
        for _ in range(25):
            tick()
            time.sleep(0.005)
        for k in range(4):                      # 4 leave (their sender stops first)
            senders.pop(k).close()
            assert wait_for(lambda: pipes[k].pending() == 0)
            server.remove_source(pipes[k])
            assert pipes[k].done and not server.loop.serving(pipes[k])
        while any(sent[k] < n_frames for k in senders):
            tick()
            time.sleep(0.005)
        assert wait_for(lambda: server.accounting()["pending"] == 0
                        and server.accounting()["received"] == sum(sent.values()))
        assert wait_for(lambda: (tick(), sum(map(len, got.values())))[1]
                        == server.accounting()["processed"])
    finally:
        server.stop()
        sub.close()
        for s in senders.values():
            s.close()
    acc = server.accounting()
    assert acc["unaccounted"] == 0 and acc["dropped"] == 0 and acc["stale_unpublished"] == 0
    assert {f"s{k}" for k in range(n_streams)} == set(got)
    for k in range(n_streams):
        ests = got[f"s{k}"]
        assert [e.seq for e in ests] == list(range(sent[k]))
        ref = offline_estimates(StreamingEstimator.load(model_path), np.asarray(frames(k)),
                                stamps, 100.0)
        for e in ests:
            for name, v in ref[e.seq].items():
                np.testing.assert_allclose(e.outputs[name], v, rtol=1e-4, atol=1e-4)
    assert est.calls < acc["processed"]         # batched: many streams per call
    assert len(est._free) >= 4                  # the streams that left gave their slots back


def test_batched_step_same_and_mixed_marker_counts_agree(model_path):
    """The one-array path (every stream with the same marker count) and the per-stream path
    (mixed counts) give the same estimates; NaN markers are masked the same way."""
    rng = np.random.default_rng(1)
    frames = (rng.standard_normal((6, 2, 12, 3)) * 0.3 + [0, 1, 0]).astype(np.float32)
    frames[2, 1, 4] = np.nan  # an occluded marker
    same = load_estimator(model_path, engine="torch")
    mixed = load_estimator(model_path, engine="torch")
    a, b = same.alloc(2), mixed.alloc(2)
    for f in frames:
        out_same = same.step(a, [f[0], f[1]])
        # stream 1 sends two more markers, both missing: masked, so the estimate is unchanged
        pad = np.concatenate([f[1], np.full((2, 3), np.nan, np.float32)])
        out_mixed = mixed.step(b, [f[0], pad])
        for o1, o2 in zip(out_same, out_mixed):
            for name in o1:
                np.testing.assert_allclose(o1[name], o2[name], atol=1e-5)
    assert np.isfinite(out_same[1]["grf"]).all()


def test_batched_mirror_average_equals_the_single_stream_estimator(model_path):
    """With mirror averaging every slot has a twin stepping the frame's image in the same
    batched call: each stream's estimates equal the single-stream estimator's, also for a
    stream that joins into slots another stream gave back (its twins reset with it)."""
    from hdys_rt.model.streaming import BatchedEstimator

    rng = np.random.default_rng(2)
    frames = (rng.standard_normal((12, 3, 12, 3)) * 0.3 + [0, 1, 0]).astype(np.float32)
    frames[3, 1, 5] = np.nan
    est = BatchedEstimator.load(model_path, engine="auto", mirror=True)
    refs = [StreamingEstimator.load(model_path, engine="torch", mirror=True) for _ in range(3)]
    assert est.mirror and not BatchedEstimator.load(model_path, engine="torch").mirror
    slots = est.alloc(2)
    for t in range(12):
        if t == 6:  # stream 1 leaves, stream 2 joins and may take its slots
            est.release(slots[1:])
            slots = slots[:1] + est.alloc(1)
        streams = [0, 1] if t < 6 else [0, 2]
        outs = est.step(slots, [frames[t, k] for k in streams])
        for k, out in zip(streams, outs):
            ref = refs[k].step(frames[t, k])
            for name in out:
                np.testing.assert_allclose(out[name], ref[name], rtol=1e-4, atol=1e-4)
    assert est.novelty.shape == (2,)


def test_any_number_of_streams_is_one_call(model_path):
    """7 streams (and, with the mirror average, their 7 twins) are stepped in ONE engine call,
    not 4 + 2 + 1 calls of engines built for those sizes, on the default engine (onnxruntime
    here, its batch axis symbolic) and on eager torch; each stream's estimate equals its own
    single-stream estimator's."""
    from hdys_rt.model.streaming import BatchedEstimator

    rng = np.random.default_rng(3)
    frames = (rng.standard_normal((5, 7, 12, 3)) * 0.3 + [0, 1, 0]).astype(np.float32)
    for engine, mirror in (("auto", False), ("auto", True), ("torch", False)):
        est = BatchedEstimator.load(model_path, engine=engine, mirror=mirror)
        refs = [StreamingEstimator.load(model_path, engine="torch", mirror=mirror)
                for _ in range(7)]
        est.prepare(8)
        slots = est.alloc(7)
        for f in frames:
            calls = est.calls
            outs = est.step(slots, list(f))
            assert est.calls == calls + 1, (engine, mirror)
            for ref, p, out in zip(refs, f, outs):
                for name, v in ref.step(p).items():
                    np.testing.assert_allclose(out[name], v, rtol=1e-4, atol=1e-4)


def test_mirror_left_out_under_overload_then_averaged_in_again(model_path):
    """A step without the mirror image (serve overloaded) gives the model's own estimate,
    flagged unaveraged; the twin that missed those frames restarts when the image is stepped
    again and is averaged in after the receptive field, from then on equal to the estimator
    that never left it out; a reset stream is averaged at once."""
    from hdys_rt.model.streaming import BatchedEstimator

    rng = np.random.default_rng(4)
    est = BatchedEstimator.load(model_path, engine="auto", mirror=True)
    R = est.receptive
    n = 10 + 5 + R + 5
    frames = (np.cumsum(rng.standard_normal((n, 12, 3)) * 0.01, 0)
              + rng.standard_normal((12, 3)) * 0.3 + [0, 1, 0]).astype(np.float32)
    averaged = StreamingEstimator.load(model_path, engine="torch", mirror=True)
    own = StreamingEstimator.load(model_path, engine="torch", mirror=False)
    slot = est.alloc(1)
    for t, f in enumerate(frames):
        shed = 10 <= t < 15
        out = est.step(slot, [f], mirror=not shed)[0]
        want_avg, want_own = averaged.step(f), own.step(f)
        warming = 15 <= t < 15 + R
        assert bool(est.unaveraged[0]) == (shed or warming), t
        want = want_own if shed or warming else want_avg
        for name, v in want.items():
            np.testing.assert_allclose(out[name], v, rtol=1e-4, atol=1e-4, err_msg=f"{t} {name}")
    est.step(slot, [frames[0]], mirror=False)
    est.reset(slot)  # a reset stream starts both states afresh: averaged at once
    est.step(slot, [frames[0]])
    assert not est.unaveraged[0]
