"""Wire format, frame ring, stage timing, recordings and the validation helpers."""

from __future__ import annotations

import threading

import msgpack
import numpy as np
import pytest

from hdys_rt import wire
from hdys_rt.errors import HdysError
from hdys_rt.runtime.pipeline import PipelineOptions, check_estimator_layout
from hdys_rt.streams.ring import FrameRing
from hdys_rt.runtime.stats import StageTimes, percentiles_ms
from hdys_rt.data.markersets import parse_marker_channels
from hdys_rt.data.loader import load_file
from hdys_rt.data.recording import Recording
from hdys_rt.streams.replay import Player
from hdys_rt.streams.zmq import check_endpoint, is_loopback


def test_markers_roundtrip():
    xyz = np.arange(6, dtype=np.float32).reshape(2, 3)
    xyz[1] = np.nan
    data = wire.encode_markers(xyz, ["a", "b"], 12.5, 7, rate=200.0, src="s")
    f = wire.decode_markers(data)
    assert (f.seq, f.t, f.names, f.rate, f.src) == (7, 12.5, ("a", "b"), 200.0, "s")
    np.testing.assert_array_equal(f.xyz[0], [0, 1, 2])
    assert np.isnan(f.xyz[1]).all()
    assert wire.decode_markers(data, known_names=f.names).names is f.names


def _msg(**kw):
    m = {"v": 1, "type": "markers", "seq": 0, "t": 1.0, "names": ["a"], "xyz": b"\0" * 12}
    m.update(kw)
    return msgpack.packb(m, use_bin_type=True)


@pytest.mark.parametrize("data, match, oversized", [
    (b"\xc1", "not a valid msgpack", False),
    (msgpack.packb([1]), "must be a msgpack map", False),
    (_msg(v=2), "unsupported wire version 2", False),
    (_msg(type="est"), "expected type 'markers'", False),
    (_msg(seq=-1), "seq must be an integer >= 0", False),
    (_msg(seq=True), "seq must be an integer >= 0", False),
    (_msg(t=float("nan")), "t must be a finite number", False),
    (_msg(names="a"), "names must be a list of strings", False),
    (_msg(names=["a" * 65]), "1..64 characters", False),
    (_msg(names=["a", "a"], xyz=b"\0" * 24), r"duplicate names \['a'\]", False),
    (_msg(xyz=[0, 0, 0]), "xyz must be msgpack bin", False),
    (_msg(xyz=b"\0" * 8), "xyz has 8 bytes; 1 markers need 12", False),
    (_msg(rate=0), r"rate must be a number in \(0, 10000\]", False),
    (_msg(src=""), "src must be a string", False),
    (b"\0" * (wire.MAX_MESSAGE_BYTES + 1), "exceeds the limit of 65536", True),
    (_msg(names=[f"m{i}" for i in range(513)]), "513 markers exceed the limit of 512", True),
])
def test_decode_rejects(data, match, oversized):
    with pytest.raises(wire.WireError, match=match) as exc:
        wire.decode_markers(data)
    assert exc.value.oversized is oversized


def test_estimate_and_meta_roundtrip():
    meta = wire.decode_output(wire.encode_meta("s", 3, ["a"], 100.0, {"grf": ("r_fy",)},
                                               {"grf": "N/BW | m"}, {"rate": 100.0}))
    assert meta["outputs"]["grf"] == {"names": ["r_fy"], "unit": "N/BW | m"}
    assert meta["flags"]["too_few"] == 2
    est = wire.decode_output(wire.encode_estimate(
        "s", 3, 9, 1.0, 1.001, 1.002, {"grf": np.array([0.5], np.float32)},
        wire.FLAGS["gap"] | wire.FLAGS["missing"], 40, [3], 0, 0, {"inference": 0.001}))
    assert est["seq"] == 9 and est["outputs"]["grf"].tolist() == [0.5]
    assert wire.flag_names(est["q"]["flags"]) == ["missing", "gap"]


def test_ring_push_read_and_overwrite():
    ring = FrameRing(4, 3)
    out = np.empty((3, 3), np.float32)
    for i in range(6):
        f = np.full((3, 3), i, np.float32)
        if i == 5:
            f[0] = [np.inf, 0, 0]
            f[1] = np.nan
            f[2, 1] = 1e5
        ring.push(f, t=10.0 + i, t_recv=20.0 + i, seq=i)
    assert ring.count == 6
    with pytest.raises(IndexError, match="frame 1 is not in the ring"):
        ring.read(1, out)
    t, tr, seq, n_valid, n_invalid = ring.read(4, out)
    assert (t, tr, seq, n_valid, n_invalid) == (14.0, 24.0, 4, 3, 0)
    assert (out == 4).all()
    t, tr, seq, n_valid, n_invalid = ring.read(5, out)
    assert (n_valid, n_invalid) == (0, 2)  # inf and absurd rows invalid, the NaN row missing
    assert np.isnan(out).all()
    with pytest.raises(ValueError, match=r"frame shape \(2, 3\) != \(3, 3\)"):
        ring.push(np.zeros((2, 3), np.float32), 0, 0, 0)
    with pytest.raises(ValueError, match="capacity must be >= 2, got 1"):
        FrameRing(1, 3)


def test_stage_times():
    st = StageTimes(capacity=8)
    for i in range(10):
        st.record(0.001 * i, 0, 0, 0, 0, 0.002 * i)
    s = st.summary()
    assert s["receive"]["n"] == 8 and s["receive"]["max"] == pytest.approx(9.0)
    assert np.isnan(percentiles_ms([])["p50"])
    # the samples since a mark (the periodic log line), oldest first, across the ring's wrap
    np.testing.assert_allclose(st.values("receive", since=7), [0.007, 0.008, 0.009])
    np.testing.assert_allclose(st.values("total", since=0), 0.002 * np.arange(2, 10))
    assert st.values("total", since=10).size == 0
    for i in range(10, 14):
        st.record(0.001 * i, 0, 0, 0, 0, 0)
    np.testing.assert_allclose(st.values("receive", since=9), 0.001 * np.arange(9, 14))


def test_recording_and_player(gait):
    assert gait.rate == 100.0 and gait.xyz.shape == (238, 41, 3) and gait.names[0] == "R.Shoulder"
    assert 0.5 < np.nanmedian(gait.xyz[..., 1]) < 1.5  # metres, Y up
    r200 = gait.resampled(200.0)
    assert r200.frames == 475
    np.testing.assert_allclose(r200.xyz[2], gait.xyz[1], atol=1e-6)
    np.testing.assert_allclose(r200.xyz[1], (gait.xyz[0] + gait.xyz[1]) / 2, atol=1e-5)
    p = Player(gait, rate=200.0, seconds=0.25)
    items = [x for x in p.frames(threading.Event()) if x is not None]
    assert [i for i, _, _ in items] == list(range(50))
    ts = np.array([t for _, _, t in items])
    assert ts[-1] - ts[0] >= 49 / 200.0 - 1e-3  # never faster than real time
    with pytest.raises(HdysError, match="speed must be > 0, got 0"):
        Player(gait, speed=0)
    with pytest.raises(HdysError, match="rate must be > 0 Hz, got -1"):
        gait.resampled(-1)


def test_load_file_errors(tmp_path):
    with pytest.raises(HdysError, match="does not exist"):
        load_file(tmp_path / "x.trc")
    (tmp_path / "x.csv").write_text("1")
    with pytest.raises(HdysError, match="unsupported file type '.csv'"):
        load_file(tmp_path / "x.csv")


def test_lsl_channel_layout():
    labels = ["A_X", "A_Y", "A_Z", "b.x", "b.y", "b.z"]
    assert parse_marker_channels(labels, ["mm"] * 6, 6) == (("A", "b"), 0.001)
    assert parse_marker_channels([""] * 3, [""] * 3, 3) == (("M001",), 1.0)
    with pytest.raises(HdysError, match="has 4 channels; a marker stream needs 3 per marker"):
        parse_marker_channels([""] * 4, [], 4)
    with pytest.raises(HdysError, match=r"channels 0..2 are labelled \['A_X', 'A_Z', 'A_Y'\]"):
        parse_marker_channels(["A_X", "A_Z", "A_Y"], [], 3)
    with pytest.raises(HdysError, match="mixes channel units"):
        parse_marker_channels(labels, ["mm", "m", "m", "m", "m", "m"], 6)
    with pytest.raises(HdysError, match="unknown channel unit 'furlong'"):
        parse_marker_channels(labels, ["furlong"] * 6, 6)


def test_endpoints_and_options():
    assert check_endpoint("tcp://127.0.0.1:5560") and check_endpoint("ipc:///tmp/x")
    with pytest.raises(HdysError, match="publish endpoint must look like .* got '127.0.0.1:5'"):
        check_endpoint("127.0.0.1:5", "publish endpoint")
    with pytest.raises(HdysError, match="port must be 1..65535, got 70000"):
        check_endpoint("tcp://127.0.0.1:70000")
    assert is_loopback("tcp://127.0.0.1:1") and is_loopback("tcp://localhost:1")
    assert not is_loopback("tcp://0.0.0.0:1") and not is_loopback("tcp://*:1")
    with pytest.raises(HdysError, match="max_age_s must be > 0 s, got 0"):
        PipelineOptions(max_age_s=0)
    with pytest.raises(HdysError, match="min_markers must be >= 1, got 0"):
        PipelineOptions(min_markers=0)


def test_layout_check(model_path):
    from hdys_rt.model.streaming import StreamingEstimator

    est = StreamingEstimator.load(model_path)
    check_estimator_layout(est, ("a", "b", "c"), 100.0)
    with pytest.raises(HdysError, match="the stream has 65 markers; the model takes at most 64"):
        check_estimator_layout(est, tuple(f"m{i}" for i in range(65)), 100.0)
    with pytest.raises(HdysError, match="rate must be > 0 Hz, got 0"):
        check_estimator_layout(est, ("a",), 0.0)
    assert isinstance(Recording(("a",), 1.0, None, np.zeros((1, 1, 3), np.float32)).frames, int)
