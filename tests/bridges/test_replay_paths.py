"""Every replay path reads a file through the one loader: a real Plug-in Gait C3D (193 labels,
more than the model takes) served by ``serve --source replay`` works and gives the same
estimates as ``bridge file`` -> ``serve --source zmq``, both equal to the file's mapped markers
run offline through the model. Real sockets on loopback, the tiny model."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import numpy as np
import pytest

from hdys_rt import wire
from hdys_rt.data.loader import load_file
from hdys_rt.cli import main
from hdys_rt.model.streaming import StreamingEstimator
from hdys_rt.streams.sinks import Sink


def _shared_data() -> Path:
    env = os.environ.get("HDYS_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2].parent / "shared" / "data"


PIG = _shared_data() / "real" / "c3d" / "btk_PiG_Motion-FlatFoot-Full.c3d"
needs_pig = pytest.mark.skipif(not PIG.exists(), reason=f"{PIG} not found: set "
                               "HDYS_SHARED_DATA or place the shared data at <repo>/../shared/data")


class Recorder(Sink):
    """A sink keeping every estimate (decoded); ``full`` is set once ``n`` arrived."""

    def __init__(self, n: int):
        self.got: list[dict] = []
        self.n = n
        self.full = threading.Event()

    def publish(self, stream, payload, outputs=None, t_src=None):
        self.got.append(wire.decode_output(payload))
        if len(self.got) >= self.n:
            self.full.set()


def _offline(model_path, xyz, rate):
    est = StreamingEstimator.load(model_path)
    est.set_stream_rate(rate)
    return [est.step(f) for f in xyz]


def _assert_same(outputs, expected):
    for k, v in expected.items():
        np.testing.assert_allclose(outputs[k], v, rtol=1e-4, atol=1e-5)


@needs_pig
def test_pig_c3d_serve_replay_matches_bridge_file(model_path, make_endpoint, capsys):
    from hdys_rt.client import Subscriber
    from hdys_rt.runtime.pipeline import PipelineOptions
    from hdys_rt.runtime.server import Server, load_estimators
    from hdys_rt.streams.zmq import ZmqSource

    rec = load_file(PIG)  # what every path must serve: 193 labels -> the trained body markers
    assert len(rec.markerset.source) == 193 and 3 <= len(rec.names) <= 64
    assert set(rec.markerset.missing) == set() and rec.rate == 100.0 and rec.frames == 315
    expected = _offline(model_path, rec.xyz, rec.rate)

    # 1. hdys-rt serve --source replay --file PIG (it failed before: "193 markers; the model
    # takes at most 64"); a subscriber thread collects what it publishes
    ep = make_endpoint()
    sub = Subscriber(ep)
    served: list = []
    stop = threading.Event()

    def read():
        while not stop.is_set():
            est = sub.recv(0.1)
            if est is not None:
                served.append(est)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        rc = main(["serve", "--source", "replay", "--file", str(PIG), "--model", model_path,
                   "--publish", ep, "--max-age-ms", "60000", "--connect-timeout", "60"])
    finally:
        stop.set()
        reader.join(10)
        sub.close()
    assert rc == 0, capsys.readouterr().err
    assert f"{rec.frames} frames in" in capsys.readouterr().out
    # estimates published before the subscription reached serve are lost to this subscriber
    # (ZeroMQ's slow joiner); every one that arrived is the estimate of its frame
    assert len(served) >= rec.frames // 2
    assert sub.metas[PIG.stem]["input"]["names"] == list(rec.names)
    for est in served:
        _assert_same(est.outputs, expected[est.seq])

    # 2. hdys-rt bridge file PIG --to zmq -> an in-process serve --source zmq, into a recorder
    # sink beside nothing else
    ep = make_endpoint()
    recorder = Recorder(rec.frames)
    src = ZmqSource(ep)
    server = Server([src], load_estimators(1, model_path), [recorder],
                    PipelineOptions(max_age_s=60.0)).start()
    try:
        rc = main(["bridge", "file", str(PIG), "--to", "zmq", "--endpoint", ep, "--wait", "30",
                   "--json"])  # real time: the runtime serves by timestamps
        assert rc == 0
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert out["sent"] == rec.frames and out["markers"]["markers_out"] == len(rec.names)
        assert recorder.full.wait(60), f"{len(recorder.got)} of {rec.frames} estimates"
    finally:
        server.stop()
    assert src.names == rec.names
    bridged = {m["seq"]: m["outputs"] for m in recorder.got}
    assert sorted(bridged) == list(range(rec.frames))
    for seq, outputs in bridged.items():
        _assert_same(outputs, expected[seq])
    for est in served:  # the two paths agree frame by frame
        _assert_same(est.outputs, bridged[est.seq])
