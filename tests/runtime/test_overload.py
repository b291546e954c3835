"""Overload: when serve cannot run every grid point of every stream, streams above the model
rate are served on their first grid only (``coarse``). The first grid's estimates stay exactly
the offline ones; the other frames carry the estimate of the grid point before them, flagged
``coarse`` and counted; when every grid is served again, the skipped grid restarts and, once it
holds the decoder's receptive field, its estimates equal the uninterrupted ones again.

The policy (when coarse service begins and ends) is :class:`Overload`, tested on its inputs;
the live tests drive the mode directly, so they do not depend on the machine's speed."""

from __future__ import annotations

import numpy as np
import pytest

from hdys_rt import wire
from hdys_rt.client import MarkerSender
from hdys_rt.errors import HdysError
from hdys_rt.model.resample import offline_estimates
from hdys_rt.model.streaming import StreamingEstimator
from hdys_rt.runtime.inference import Overload, StepCost
from hdys_rt.runtime.pipeline import PipelineOptions
from hdys_rt.streams.zmq import ZmqSource

RATE = 200.0  # two grids at the model's 100 Hz
T0 = 50.0


def test_overload_policy_begins_on_a_long_wait_and_ends_with_room_to_spare():
    auto = Overload("auto")
    assert not auto.coarse
    assert not auto.waited(0.10, 0.25)            # a wait within the limit
    assert auto.waited(0.30, 0.25) and auto.coarse and auto.episodes == 1
    assert not auto.waited(0.50, 0.25)            # already coarse: not a new episode
    # full service would have kept the loop busy 100 % of the window: stays coarse
    assert not auto.busy(1.0) and auto.coarse
    assert not auto.busy(0.6)                     # room, but one calm window only
    assert not auto.busy(1.0)                     # the calm run is broken
    assert not auto.busy(0.6) and auto.busy(0.6) and not auto.coarse
    assert auto.waited(1.0, 0.25) and auto.episodes == 2
    late = Overload("auto")  # a lag just over the age limit: most estimates left stale
    assert not late.stale(5, 100) and not late.stale(0, 0) and not late.coarse
    assert late.stale(6, 100) and late.coarse and late.episodes == 1
    assert not late.stale(50, 100)                # already coarse
    never, always = Overload("never"), Overload("always")
    assert not never.waited(10.0, 0.25) and not never.stale(100, 100) and not never.coarse
    assert always.coarse and not always.busy(0.0) and always.coarse
    with pytest.raises(ValueError):
        Overload("sometimes")
    with pytest.raises(HdysError, match="coarse must be one of"):
        PipelineOptions(coarse="sometimes")
    assert PipelineOptions().overload_after_s == 0.25
    assert PipelineOptions(max_age_s=0.1).overload_after_s == pytest.approx(0.4)


def _send(sender, r, frames, first):
    for i in range(first, first + len(frames)):
        sender.send(frames[i - first], t=T0 + i / RATE, seq=i)
        if i % 100 == 99:  # never more than the ring holds in flight
            assert r.wait_for(lambda: r.pipe.counters["processed"] >= i - 50)
    assert r.wait_for(lambda: len(r.got) >= first + len(frames))


def test_coarse_service_keeps_the_first_grid_exact_and_the_other_rejoins(
        running, gait, make_port, model_path):
    n1, n2 = 80, 200
    n = n1 + n2
    frames = np.stack([gait.xyz[i % gait.frames] for i in range(n)])
    ep = f"tcp://127.0.0.1:{make_port()}"
    opts = PipelineOptions(max_age_s=60.0, coarse="always")
    with MarkerSender(gait.names, RATE, ep, src="overloaded") as sender:
        with running([ZmqSource(ep)], options=opts) as r:
            assert sender.wait_for_subscriber(60)
            _send(sender, r, frames[:n1], 0)
            r.server.loop.overload = Overload("never")  # room again: every grid
            _send(sender, r, frames[n1:], n1)
            summary = r.server.summary()
    got = r.got
    assert [e.seq for e in got] == list(range(n))
    est = StreamingEstimator.load(model_path)
    ref = offline_estimates(est, frames, T0 + np.arange(n) / RATE, RATE)
    receptive = r.server.est.receptive
    # frames of grid 1 after the switch that are still coarse: the grid's first points
    rejoin = n1 + 1 + 2 * (receptive - 1)  # (the first grid-1 frame after n1 is n1 + 1)
    coarse = [e.seq for e in got if "coarse" in e.flag_names]
    assert coarse == [i for i in range(n) if i % 2 and i < rejoin + 2], coarse[:5]
    assert rejoin + 2 < n  # the rejoined grid was checked below
    assert summary["totals"]["coarse"] == len(coarse)
    assert summary["overload"] == {"coarse_mode": "never", "coarse_now": False,
                                   "coarse_episodes": 0}  # the policy swapped in
    for e in got:
        i = e.seq
        if i % 2 and i < rejoin + 2:  # the estimate of the grid point before: frame i - 1
            assert e.t_est == pytest.approx(T0 + (i - 1) / RATE, abs=1e-9)
            want = got[i - 1].outputs
        else:
            assert e.t_est == pytest.approx(T0 + i / RATE, abs=1e-9)
            want = ref[i]
        for k, v in want.items():
            np.testing.assert_allclose(e.outputs[k], v, rtol=1e-4, atol=1e-4,
                                       err_msg=f"frame {i} {k}")


def test_step_cost_projects_coarse_service_to_full_service():
    """A batched call costs a fixed part plus a part per row: fitted from the calls seen, the
    projection to more rows is that line, not the rows' ratio (the fixed part is paid per call
    either way); calls that all had the same rows give the proportional (larger) figure."""
    cost = StepCost()
    assert cost.predict(10, 40) == 0.0           # nothing seen yet
    for rows in (1, 2, 3, 4, 8, 2, 5):
        cost.add(rows, 0.5e-3 + 0.1e-3 * rows)
    assert cost.predict(10, 80) == pytest.approx(10 * 0.5e-3 + 80 * 0.1e-3)
    cost.age()                                   # older calls weigh less: the line stays
    cost.add(6, 0.5e-3 + 0.1e-3 * 6)
    assert cost.predict(3, 12) == pytest.approx(3 * 0.5e-3 + 12 * 0.1e-3)
    same = StepCost()
    for _ in range(5):
        same.add(4, 0.9e-3)
    assert same.predict(10, 80) == pytest.approx(80 * 0.9e-3 / 4)


def test_wire_flag_coarse_is_documented():
    assert wire.FLAGS["coarse"] == 512 and wire.flag_names(512) == ["coarse"]


def test_a_backlog_too_old_while_coarse_is_skipped_and_the_model_restarts(
        running, gait, make_port, model_path):
    """Even the first grid falls behind (here: an overload limit of microseconds and a burst):
    the backlog is skipped, counted ``dropped`` and ``overload_skipped``, every frame is
    accounted for, and each restart frame is published with flags reset and dropped and the
    estimate of a fresh model state on that frame."""
    n = 200
    frames = np.stack([gait.xyz[i % gait.frames] for i in range(n)])
    ep = f"tcp://127.0.0.1:{make_port()}"
    opts = PipelineOptions(max_age_s=1e-6, overload_s=1e-6, coarse="always")
    with MarkerSender(gait.names, RATE, ep, src="behind") as sender:
        with running([ZmqSource(ep)], options=opts) as r:
            assert sender.wait_for_subscriber(60)
            for i in range(n):  # a burst: the loop cannot keep up with it
                sender.send(frames[i], t=T0 + i / RATE, seq=i)
            assert r.wait_for(lambda: r.pipe.source.counters["received"] == n
                              and r.pipe.pending() == 0)
            acc = r.server.accounting()
            assert r.wait_for(lambda: len(r.got) >= r.pipe.counters["published"])
    c = r.pipe.counters
    assert acc["received"] == n and acc["unaccounted"] == 0, acc
    assert c["overload_skipped"] > 0 and c["dropped"] == c["overload_skipped"], c
    assert r.server.totals()["overload_skipped"] == c["overload_skipped"]
    restarts = [e for e in r.got if "dropped" in e.flag_names]
    assert restarts and all("reset" in e.flag_names for e in restarts)
    assert restarts[-1].dropped == c["dropped"]
    for e in restarts:  # the model restarted at this frame: a fresh state's first step
        est = StreamingEstimator.load(model_path)
        want = est.step(frames[e.seq])
        for k, v in want.items():
            np.testing.assert_allclose(e.outputs[k], v, rtol=1e-4, atol=1e-4,
                                       err_msg=f"frame {e.seq} {k}")


def test_coarse_service_leaves_the_mirror_image_out_and_brings_it_back(
        running, gait, make_port, model_path, tmp_path):
    """A model that averages with its mirror image, a stream at the model rate (one grid):
    coarse service steps the frames only, every estimate is the model's own (flagged coarse,
    equal to the offline estimate without the average); with room again the image's state
    restarts and, after the receptive field, every estimate is the averaged offline one,
    unflagged."""
    from hdys_rt.model.io import load_model, save_model

    m, meta = load_model(model_path)
    mirrored = str(save_model(m, tmp_path / "mirrored", rate=100.0,
                              extra={"mirror_average": True}))
    rate = 100.0
    n1, n2 = 40, 120
    n = n1 + n2
    frames = np.stack([gait.xyz[i % gait.frames] for i in range(n)])
    ep = f"tcp://127.0.0.1:{make_port()}"
    opts = PipelineOptions(max_age_s=60.0, coarse="always")
    with MarkerSender(gait.names, rate, ep, src="mirrored") as sender:
        with running([ZmqSource(ep)], model=mirrored, options=opts) as r:
            assert r.server.est.mirror
            assert sender.wait_for_subscriber(60)
            for i in range(n1):
                sender.send(frames[i], t=T0 + i / rate, seq=i)
            assert r.wait_for(lambda: len(r.got) >= n1)
            r.server.loop.overload = Overload("never")  # room again: full service
            for i in range(n1, n):
                sender.send(frames[i], t=T0 + i / rate, seq=i)
                if i % 100 == 99:
                    assert r.wait_for(lambda: r.pipe.counters["processed"] >= i - 50)
            assert r.wait_for(lambda: len(r.got) >= n)
    got = r.got
    assert [e.seq for e in got] == list(range(n))
    stamps = T0 + np.arange(n) / rate
    avg = offline_estimates(StreamingEstimator.load(mirrored), frames, stamps, rate)
    own = offline_estimates(StreamingEstimator.load(mirrored, mirror=False), frames, stamps,
                            rate)
    rejoin = n1 + r.server.est.receptive  # the first frame averaged again
    assert rejoin < n
    for e in got:
        i = e.seq
        assert ("coarse" in e.flag_names) == (i < rejoin), i
        want = own[i] if i < rejoin else avg[i]
        for k, v in want.items():
            np.testing.assert_allclose(e.outputs[k], v, rtol=1e-4, atol=1e-4,
                                       err_msg=f"frame {i} {k}")
    assert r.server.summary()["totals"]["coarse"] == rejoin
