"""Output safe from the first frame, on real processes and sockets: every JSON line of
``listen`` has one shape from the first, ``listen`` says when nothing publishes, ``serve``
prints one line at start, and the subject's mass comes from the stream's metadata."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import numpy as np

from hdys_rt.streams.lsl import LslSource, describe_points
from hdys_rt.streams.lslconf import pylsl_module
from hdys_rt.runtime.pipeline import PipelineOptions

CLI = [sys.executable, "-m", "hdys_rt.cli"]


def test_listen_json_lines_have_one_shape_and_serve_says_what_it_serves(model_path, port):
    ep = f"tcp://127.0.0.1:{port}"
    listen = subprocess.Popen(CLI + ["listen", "--endpoint", ep, "--format", "json",
                                     "--count", "30"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    serve = subprocess.Popen(CLI + ["serve", "--source", "replay", "--loop", "--model",
                                    model_path, "--publish", ep, "--replay-rate", "200"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = serve.stdout.readline()  # printed once serving starts, without -v
        out, err = listen.communicate(timeout=120)
    finally:
        serve.terminate()
        serve.communicate(timeout=60)
        if listen.poll() is None:
            listen.kill()
    assert first.startswith("hdys-rt serve: serving replay "), first
    assert "200 Hz" in first and ep in first and "engine onnxruntime" in first, first
    lines = [json.loads(x) for x in out.splitlines()]
    assert len(lines) == 30, err[-2000:]
    shapes = {json.dumps({k: sorted(v) for k, v in x["outputs"].items()}) for x in lines}
    assert len(shapes) == 1  # names from the very first line: no bare list first
    assert all(isinstance(v, dict) for v in lines[0]["outputs"].values())


def test_listen_says_when_nothing_publishes(port):
    listen = subprocess.Popen(CLI + ["listen", "--endpoint", f"tcp://127.0.0.1:{port}",
                                     "--format", "json"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True)
    try:
        line = listen.stderr.readline()  # returns as soon as listen says it
    finally:
        listen.kill()
        listen.communicate()
    assert "nothing is publishing on" in line and "hdys-rt serve" in line, line


def test_subject_mass_from_lsl_metadata(running, gait, lsl_name):
    from hdys_rt.bridges.sinks import add_subject
    pylsl = pylsl_module()
    info = pylsl.StreamInfo(lsl_name, "MoCap", 3 * len(gait.names), 100.0, pylsl.cf_float32,
                            lsl_name)
    describe_points(info.desc(), gait.names)
    sub = type("Subject", (), {"id": "p01", "mass_kg": 72.5, "height_m": 1.78})()
    add_subject(info.desc(), sub)
    outlet = pylsl.StreamOutlet(info, chunk_size=1, max_buffered=2)
    src = LslSource(name=lsl_name)
    with running([src], options=PipelineOptions(max_age_s=60.0)) as r:
        assert outlet.wait_for_consumers(20)
        for i in range(5):
            outlet.push_sample(gait.xyz[i].reshape(-1), pylsl.local_clock())
            time.sleep(0.01)
        assert r.wait_for(lambda: len(r.got) >= 5)
    assert src.subject == {"mass_kg": 72.5, "height_m": 1.78}
    assert (r.pipe.mass_kg, r.pipe.height_m) == (72.5, 1.78)
    e = r.got[-1]
    nm = [k for k in e.outputs if k.endswith("_Nm")]
    assert nm, list(e.outputs)
    base = nm[0][: -len("_Nm")]
    np.testing.assert_allclose(e.outputs[nm[0]], e.outputs[base] * 72.5, rtol=1e-5)
