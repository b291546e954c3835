"""The orientation check live: a real ``hdys-rt serve`` process fed a real gait stream over
ZeroMQ on loopback, sent upside down (Y negated) or as it is, reports what it saw in its log,
its final summary line and its stats JSON."""

from __future__ import annotations

import json
import signal
import subprocess
import sys

import numpy as np
import pytest

from hdys_rt.client import MarkerSender, Subscriber

CLI = [sys.executable, "-m", "hdys_rt.cli"]
PATIENCE_S = 60.0  # as tests/runtime/conftest.py: bounds a failure only


def _serve_one_stream(model_path, make_port, tmp_path, xyz, names, stream):
    """Run serve on one ZeroMQ stream of ``xyz`` (T, P, 3) at 100 Hz until its last frame's
    estimate is out, stop it with SIGINT; (stdout, stderr, stats JSON)."""
    ep, pub = (f"tcp://127.0.0.1:{make_port()}" for _ in range(2))
    stats = tmp_path / f"{stream}.json"
    proc = subprocess.Popen(CLI + ["serve", "--source", "zmq", "--endpoint", ep, "--model",
                                   model_path, "--publish", pub, "--stats-json", stats],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with Subscriber(pub) as sub, MarkerSender(names, 100.0, ep, src=stream) as sender:
            assert sub.wait_connected(PATIENCE_S), "serve's publisher never came up"
            assert sender.wait_for_subscriber(PATIENCE_S), "serve never subscribed"
            last = len(xyz) - 1
            for i, frame in enumerate(xyz):
                sender.send(frame, t=50.0 + i * 0.01)
            # the last frame's estimate is always published (no newer frame waits behind it)
            got = next((e for e in sub.frames(timeout=PATIENCE_S) if e.seq == last), None)
            assert got is not None, "no estimate of the last frame"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=PATIENCE_S)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    return out, err, json.loads(stats.read_text())


@pytest.mark.parametrize("flip", [True, False], ids=["upside_down", "upright"])
def test_serve_reports_an_upside_down_stream(model_path, make_port, tmp_path, gait, flip):
    xyz = gait.xyz * np.array([1.0, -1.0, 1.0], np.float32) if flip else gait.xyz
    stream = "walk-flipped" if flip else "walk"
    out, err, stats = _serve_one_stream(model_path, make_port, tmp_path, xyz, gait.names,
                                        stream)
    orient = stats["streams"][0]["orientation"]
    warnings = [ln for ln in err.splitlines() if "WARNING" in ln and "skeleton" in ln]
    summary = [ln for ln in out.splitlines() if ln.startswith("hdys-rt serve: stopped by")]
    assert len(summary) == 1, out
    if flip:
        assert orient["orientation"] == "upside_down" and orient["flag"] == "ydown"
        assert orient["method"] == "names" and orient["up"] == "-y"
        assert len(warnings) == 1, err  # ONE line per stream, not one per frame
        assert "upside down" in warnings[0] and "pass --up ydown" in warnings[0]
        assert stream in warnings[0]
        assert f"{stream} looks upside down (pass --up ydown)" in summary[0]
        assert stats["totals"]["orientation_suspicious"] == 1
    else:
        assert orient["orientation"] == "upright" and orient["up"] == "+y"
        assert warnings == [], err
        assert "looks" not in summary[0]
        assert stats["totals"]["orientation_suspicious"] == 0


def test_serve_replay_takes_up_for_its_file(model_path, make_port, tmp_path, gait):
    """serve --source replay reads --file as the loader does: a Z-up TRC (read as TRC's usual
    Y up) is reported lying once, with the --up that serve itself takes for it; with --up z
    it is upright."""
    from hdys_rt.data import formats
    from hdys_rt.data.frames import yup_to_zup

    n = 120
    zup = tmp_path / "walk_zup.trc"
    formats.write_trc(zup, formats.MarkerData(gait.names, 100.0, np.arange(n) / 100.0,
                                              yup_to_zup(gait.xyz[:n]), "m"))
    for up, expect in ((None, "lying"), ("z", "upright")):
        stats = tmp_path / f"stats_{up}.json"
        res = subprocess.run(CLI + ["serve", "--source", "replay", "--file", zup, "--model",
                                    model_path, "--publish", f"tcp://127.0.0.1:{make_port()}",
                                    "--stats-json", stats] + (["--up", up] if up else []),
                             capture_output=True, text=True, timeout=10 * PATIENCE_S)
        assert res.returncode == 0, res.stderr
        orient = json.loads(stats.read_text())["streams"][0]["orientation"]
        warnings = [ln for ln in res.stderr.splitlines() if "skeleton" in ln]
        if expect == "lying":
            assert (orient["orientation"], orient["flag"]) == ("lying", "z")
            assert len(warnings) == 1 and warnings[0].endswith("pass --up z"), res.stderr
            assert "walk_zup looks lying (pass --up z)" in res.stdout
        else:
            assert orient["orientation"] == "upright" and warnings == [], res.stderr
