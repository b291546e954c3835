"""Keypoint bridge: parsing and conversions, then generated COCO-17 keypoints (the project's
kinematics_only domain) as JSON lines and as msgpack over ZeroMQ, forwarded through real
sockets into an in-process serve taking keypoints."""

from __future__ import annotations

import json
import threading
import time

import msgpack
import numpy as np
import pytest
import zmq

from hdys_rt.bridges import keypoints as kp
from hdys_rt.cli import main
from hdys_rt.errors import HdysError


def _mediapipe_from_coco(coco: np.ndarray, fill: float) -> np.ndarray:
    """COCO-17 frames (T, 17, 3) placed into MediaPipe-33 frames; the other points ``fill``."""
    from hdys_rt import representations as reps

    mp = np.full((coco.shape[0], 33, 3), fill, np.float32)
    for i, n in enumerate(reps.KEYPOINT_LAYOUTS["coco17"]):
        mp[:, kp.MEDIAPIPE33.index(n)] = coco[:, i]
    return mp


def _pose_estimator(endpoint: str, stop: threading.Event, message) -> threading.Thread:
    """A pose estimator: a PUB connecting to ``endpoint`` sending ``message(i)`` (a dict) as
    msgpack on topic ``pose`` at about 100 Hz until ``stop``; started."""
    def run():
        s = zmq.Context.instance().socket(zmq.PUB)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(endpoint)
        i = 0
        while not stop.is_set():
            s.send_multipart([b"pose", msgpack.packb(message(i), use_bin_type=True)])
            i += 1
            stop.wait(0.01)
        s.close(0)

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th


def test_parse_and_convert():
    pts = [[0.0, float(i) / 10, 0.0] for i in range(17)]
    f = kp.parse_frame({"layout": "coco17", "keypoints": pts, "t": 1.5})
    assert f.xyz.shape == (17, 3) and f.t == 1.5
    f = kp.parse_frame({"keypoints": [p + [0.1] for p in pts]}, "coco17", min_score=0.5)
    assert np.isnan(f.xyz).all()  # every score below the threshold
    named = {n: [0.0, 1.0, 0.0] for n in kp.LAYOUTS["h36m17"][:5]}
    f = kp.parse_frame({"layout": "h36m17", "keypoints": named})
    assert np.isfinite(f.xyz[:5]).all() and np.isnan(f.xyz[5:]).all()
    raw = np.arange(51, dtype="<f4").tobytes()
    assert kp.parse_frame({"layout": "coco17", "keypoints": raw, "dims": 3}).xyz[16, 2] == 50

    # MediaPipe-33 in mm, Y down -> the COCO-17 subset in metres, Y up
    mp = np.zeros((33, 3))
    mp[:, 1] = np.linspace(0, 1700, 33)  # Y down: the head (index 0) is highest
    conv = kp.KeypointConverter(up="ydown")
    out = conv.convert(kp.parse_frame({"layout": "mediapipe33", "keypoints": mp.tolist()}))
    assert conv.out_layout == "coco17" and conv.names[0] == "nose" and conv.scale == 1e-3
    assert out.shape == (17, 3) and out[0, 1] == 0 and out[-1, 1] == pytest.approx(-1.7 * 28 / 32)


@pytest.mark.parametrize("msg, match", [
    ({"layout": "coco17", "keypoints": [[1, 2]] * 17}, "2D keypoints.*lift them to 3D"),
    ({"keypoints": [[1, 2, 3]] * 17}, "states no layout"),
    ({"layout": "body25", "keypoints": []}, "unknown keypoint layout 'body25'"),
    ({"layout": "coco17", "keypoints": [[1, 2, 3]] * 16}, "16 keypoints do not fit layout coco17"),
    ({"layout": "coco17", "keypoints": {"nose": [1, 2, 3], "tail": [0, 0, 0]}}, "'tail'"),
])
def test_errors_name_the_fix(msg, match):
    with pytest.raises(HdysError, match=match):
        kp.parse_frame(msg)


def test_2d_file_fails_in_one_line(tmp_path, capsys):
    p = tmp_path / "pose2d.jsonl"
    p.write_text(json.dumps({"layout": "coco17", "keypoints": [[320, 240]] * 17}) + "\n")
    assert main(["bridge", "keypoints", str(p), "--wait", "0"]) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "line 1: 2D keypoints" in err


class _Serve:
    """An in-process serve taking keypoints: ZmqSource -> tiny model -> Publisher -> Subscriber."""

    def __init__(self, model, src_ep, pub_ep):
        from hdys_rt.client import Subscriber
        from hdys_rt.runtime.server import Server, load_estimators
        from hdys_rt.streams.zmq import Publisher, ZmqSource

        self.source = ZmqSource(src_ep)
        est = load_estimators(1, model, input_kind="keypoints")
        self.server = Server([self.source], est, Publisher(pub_ep)).start()
        self.sub = Subscriber(pub_ep)
        self.got = []
        self._stop = threading.Event()
        self._th = threading.Thread(target=self._collect, daemon=True)
        self._th.start()

    def _collect(self):
        while not self._stop.is_set():
            est = self.sub.recv(0.1)
            if est is not None:
                self.got.append(est)

    def close(self):
        self._stop.set()
        self._th.join(2)
        self.sub.close()
        self.server.stop()


def _check(serve, n_min, names):
    end = time.monotonic() + 15
    while len(serve.got) < n_min and time.monotonic() < end:
        time.sleep(0.05)
    with_meta = [e for e in serve.got if e.meta is not None]
    assert len(serve.got) >= n_min and with_meta
    meta = with_meta[-1].meta
    assert meta["input"]["kind"] == "keypoints" and tuple(meta["input"]["names"]) == names
    tq = np.stack([e.outputs["torques_rajagopal"] for e in with_meta])
    assert np.isfinite(tq).all()
    assert not any(e.flags & 2 for e in with_meta)  # never too few points


def test_jsonl_file_to_serve(coco_walk, model_path, tmp_path, make_endpoint, capsys):
    """Generated keypoints written in mm with Y down (a camera convention) as JSON lines."""
    from hdys_rt import representations as reps

    xyz = coco_walk.data["keypoints"] * np.array([1000.0, -1000.0, -1000.0])  # mm, Y down
    path = tmp_path / "walk.jsonl"
    kp.frames_to_jsonl(path, xyz, "coco17", coco_walk.rate)
    src_ep, pub_ep = make_endpoint(), make_endpoint()
    serve = _Serve(model_path, src_ep, pub_ep)
    try:
        rc = main(["bridge", "keypoints", str(path), "--up", "ydown", "--to", "zmq", "--endpoint",
                   src_ep, "--wait", "10", "--count", "80", "--json"])
        assert rc == 0
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert out["sent"] == 80 and out["layout_out"] == "coco17" and out["rate"] == 100.0
        _check(serve, 40, reps.KEYPOINT_LAYOUTS["coco17"])
        assert serve.source.rate == 100.0
    finally:
        serve.close()


def test_zmq_msgpack_to_serve(coco_walk, model_path, make_endpoint, capsys):
    """A pose estimator publishing msgpack frames (MediaPipe-33 layout, metres, Y up) on
    ZeroMQ; the bridge binds --listen and forwards COCO-17."""
    from hdys_rt import representations as reps

    mp = _mediapipe_from_coco(coco_walk.data["keypoints"], 5.0)  # extra points: dropped anyway
    in_ep, src_ep, pub_ep = make_endpoint(), make_endpoint(), make_endpoint()
    serve = _Serve(model_path, src_ep, pub_ep)
    stop = threading.Event()
    th = _pose_estimator(in_ep, stop, lambda i: {
        "layout": "mediapipe33", "keypoints": mp[i % len(mp)].tobytes(), "dims": 3,
        "scores": [0.9] * 33})
    try:
        rc = main(["bridge", "keypoints", "--listen", in_ep, "--bind", "--endpoint", src_ep,
                   "--rate", "100", "--wait", "10", "--count", "60", "--seconds", "30",
                   "--json"])
        assert rc == 0
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert out["sent"] == 60 and out["layout_out"] == "coco17"
        _check(serve, 30, reps.KEYPOINT_LAYOUTS["coco17"])
    finally:
        stop.set()
        th.join(2)
        serve.close()


@pytest.mark.parametrize("up, warned", [("y", True), ("ydown", False)])
def test_y_down_file_forwarded_as_y_up_is_reported(coco_walk, tmp_path, make_endpoint, capsys,
                                                   caplog, up, warned):
    """The README's mistake: camera keypoints (Y down) replayed without --up ydown arrive
    upside down; the bridge says so in one line, naming --up ydown (and is quiet with it)."""
    xyz = coco_walk.data["keypoints"] * np.array([1.0, -1.0, -1.0])  # metres, Y down
    path = tmp_path / "walk_ydown.jsonl"
    kp.frames_to_jsonl(path, xyz, "coco17", coco_walk.rate)
    with caplog.at_level("WARNING"):
        assert main(["bridge", "keypoints", str(path), "--up", up, "--to", "zmq",
                     "--endpoint", make_endpoint(), "--wait", "0", "--count", "3",
                     "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    lines = [r.getMessage() for r in caplog.records if "skeleton" in r.getMessage()]
    if warned:
        assert out["orientation"]["orientation"] == "upside_down"
        assert out["orientation"]["flag"] == "ydown" and out["orientation"]["method"] == "names"
        assert len(lines) == 1 and lines[0].endswith("pass --up ydown"), lines
    else:
        assert out["orientation"]["orientation"] == "upright" and lines == []


def test_live_y_down_keypoints_are_reported_once(coco_walk, make_endpoint, capsys, caplog):
    """A pose estimator publishing Y-down MediaPipe-33 frames over ZeroMQ to a bridge left at
    --up y: after its first second of frames the bridge warns once, naming --up ydown."""
    mp = _mediapipe_from_coco(coco_walk.data["keypoints"] * np.array([1.0, -1.0, -1.0]),
                              np.nan)  # Y down
    in_ep = make_endpoint()
    stop = threading.Event()
    th = _pose_estimator(in_ep, stop, lambda i: {
        "layout": "mediapipe33",
        "keypoints": [None if np.isnan(p).any() else p.tolist() for p in mp[i % len(mp)]]})
    try:
        with caplog.at_level("WARNING"):
            rc = main(["bridge", "keypoints", "--listen", in_ep, "--bind", "--to", "zmq",
                       "--endpoint", make_endpoint(), "--rate", "100", "--wait", "0",
                       "--count", "150", "--seconds", "60", "--json"])
    finally:
        stop.set()
        th.join(2)
    assert rc == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["sent"] == 150 and out["orientation"]["orientation"] == "upside_down"
    lines = [r.getMessage() for r in caplog.records if "skeleton" in r.getMessage()]
    assert len(lines) == 1 and "pass --up ydown" in lines[0], lines
