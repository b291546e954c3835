"""The novelty score live: ``serve`` over real ZeroMQ on loopback publishes, for every frame,
the novelty score the offline path (``hdys-rt estimate``'s streaming estimator) computes, and
flags ``novel`` exactly where it is above the model's threshold."""

from __future__ import annotations

import numpy as np

from hdys_rt.bridges.estimate import estimate_recording
from hdys_rt.client import MarkerSender
from hdys_rt.data.recording import Recording
from hdys_rt.model.io import read_metadata
from hdys_rt.model.novelty import threshold_of
from hdys_rt.runtime.pipeline import PipelineOptions
from hdys_rt.streams.zmq import ZmqSource

KEEP_ALL = PipelineOptions(max_age_s=60.0)  # every frame published, however loaded the machine


def test_live_novelty_equals_offline(running, calibrated_model_path, motions, gait, make_port):
    xyz = np.concatenate([motions["walk_unseen"][:40], motions["jump"][40:80]])  # (80, 41, 3)
    n = len(xyz)
    offline = estimate_recording(Recording(gait.names, 100.0, None, xyz),
                                 model=calibrated_model_path)
    thr = threshold_of(read_metadata(calibrated_model_path), "markers")
    ep = f"tcp://127.0.0.1:{make_port()}"
    with MarkerSender(gait.names, 100.0, ep, src="novel") as sender:
        with running([ZmqSource(ep)], model=calibrated_model_path, options=KEEP_ALL) as r:
            assert sender.wait_for_subscriber(20)
            for start in range(0, n, 10):  # ten frames at a time, each batch served first
                for i in range(start, start + 10):
                    sender.send(xyz[i], t=50.0 + i * 0.01)
                assert r.wait_for(lambda: len(r.got) >= start + 10)
    got = r.got
    assert [e.seq for e in got] == list(range(n))
    live = np.array([e.novelty for e in got])
    np.testing.assert_allclose(live, offline.novelty, rtol=1e-4)
    novel = np.array(["novel" in e.flag_names for e in got])
    assert novel.tolist() == (offline.novelty > thr).tolist()
    assert not novel[:40].any() and novel[40:].sum() > 30
