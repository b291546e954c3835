"""The live commands as real processes: clean shutdown on signals, one-line errors, replay,
listen and demo."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import uuid

import numpy as np
import pytest

from hdys_rt.client import Subscriber
from hdys_rt.runtime.pipeline import PipelineOptions
from hdys_rt.streams.replay import ReplaySource
from hdys_rt.streams.zmq import Publisher, ZmqSource

CLI = [sys.executable, "-m", "hdys_rt.cli"]


def hdys(*args, timeout=180):
    return subprocess.run(CLI + [str(a) for a in args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_serve_stops_cleanly_on_signal(model_path, port, sig):
    ep = f"tcp://127.0.0.1:{port}"
    proc = subprocess.Popen(CLI + ["serve", "--source", "replay", "--loop", "--model", model_path,
                                   "--publish", ep],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        with Subscriber(ep) as sub:
            got = list(sub.frames(timeout=60, count=20))
        assert len(got) == 20
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert f"hdys-rt serve: stopped by {sig.name}:" in out
    assert "estimates out" in out and "Traceback" not in err
    Publisher(ep).close()  # the endpoint was released


def _one_line_error(res, *fragments):
    assert res.returncode == 1, res.stderr
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
    assert "Traceback" not in res.stderr


def test_bad_arguments_give_one_line_errors(model_path, tmp_path, port):
    _one_line_error(hdys("serve", "--source", "lsl", "--name", f"none-{uuid.uuid4().hex[:8]}",
                         "--connect-timeout", "0.5", "--model", model_path, "--publish",
                         f"tcp://127.0.0.1:{port}"),
                    "hdys-rt serve: error:", "not found within 0.5 s")
    _one_line_error(hdys("replay", tmp_path / "missing.trc"), "missing.trc does not exist")
    bad = tmp_path / "bad.trc"
    bad.write_text("not a trc\n")
    _one_line_error(hdys("replay", bad), "bad.trc: not a TRC file")
    _one_line_error(hdys("serve", "--source", "zmq", "--file", "x.trc"),
                    "--file/--loop/--replay-rate are for --source replay")
    _one_line_error(hdys("serve", "--source", "replay", "--model", tmp_path / "nomodel"),
                    "nomodel.json not found")
    with Publisher(f"tcp://127.0.0.1:{port}"):
        _one_line_error(hdys("serve", "--source", "replay", "--model", model_path,
                             "--publish", f"tcp://127.0.0.1:{port}"),
                        "cannot bind publish endpoint")
    res = hdys("serve", "--max-age-ms", "-1")
    assert res.returncode == 2
    assert res.stderr.strip().splitlines()[-1] == \
        "hdys-rt: error: argument --max-age-ms: expected a number > 0, got '-1'"
    res = hdys("listen", "--endpoint", "localhost:5560")
    assert res.returncode == 2 and "expected tcp://HOST:PORT" in res.stderr


def test_replay_command_to_zmq(gait, port):
    ep = f"tcp://127.0.0.1:{port}"
    src = ZmqSource(ep, capacity=1024).start()
    try:
        res = hdys("replay", "--to", "zmq", "--endpoint", ep, "--rate", "200", "--seconds",
                   "0.5", "--name", "walk", "--wait", "20")
        assert res.returncode == 0, res.stderr
        assert "hdys-rt replay: 100 frames at 200 Hz to ZeroMQ" in res.stdout
        deadline = time.monotonic() + 10
        while src.counters["received"] < 100 and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        src.stop()
    assert src.counters["received"] == 100 and src.names == gait.names
    assert src.name == "walk" and src.rate == 200.0
    buf = np.empty((len(gait.names), 3), np.float32)
    info = src.read(99, src.layout_id, buf)
    np.testing.assert_allclose(buf, gait.resampled(200.0).xyz[99], atol=1e-6)
    assert info[2] == 99  # seq


def test_listen_prints_json_lines(running, gait):
    # a looping stream: listen gets its 5 estimates however long its start takes on a busy machine
    # every estimate published (no stale skipping on a busy machine), so the seqs are consecutive
    src = ReplaySource(gait, loop=True, name="listened")
    with running([src], options=PipelineOptions(max_age_s=60.0)) as r:
        res = hdys("listen", "--endpoint", r.endpoint, "--count", "5", "--format", "json",
                   timeout=240)
    assert res.returncode == 0, res.stderr
    lines = [json.loads(ln) for ln in res.stdout.splitlines()]
    assert len(lines) == 5 and all(ln["stream"] == "listened" for ln in lines)
    assert lines[-1]["seq"] == lines[0]["seq"] + 4
    tq = lines[-1]["outputs"]["torques_rajagopal"]
    assert isinstance(tq, dict) and "knee_angle_r" in tq


def test_demo_runs(model_path):
    res = hdys("demo", "--seconds", "2", "--plain", "--model", model_path, "--publish", "none")
    assert res.returncode == 0, res.stderr
    assert "hdys-rt demo: done: 1 stream(s):" in res.stdout
    assert "latency p50" in res.stdout
