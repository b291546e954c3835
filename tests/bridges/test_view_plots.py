"""The web view (server-sent events, and a headless-Chromium screenshot of live traces), subject
scaling, and eval --plot PNGs."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import threading
import time
import urllib.request

import numpy as np
import pytest

from hdys_rt import representations as reps
from hdys_rt import wire
from hdys_rt.bridges.subject import absolute_outputs, make_subject
from hdys_rt.representations import G
from hdys_rt.errors import HdysError

CHROMIUM = "/usr/bin/chromium"
OUTS = {"torques_rajagopal": reps.RAJAGOPAL_TORQUE_JOINTS, "activations": reps.MUSCLES,
        "grf": reps.GRF_CHANNELS}
UNITS = {"torques_rajagopal": "N·m/kg", "activations": "1", "grf": "N/BW | m"}


def _publish(endpoint: str, stop: threading.Event) -> None:
    """A serve-like publisher of sine-wave estimates at ~100 Hz (real ZeroMQ Publisher)."""
    from hdys_rt.streams.zmq import Publisher

    with Publisher(endpoint) as pub:
        pub.set_meta("walk", wire.encode_meta("walk", 1, ["a"], 100.0, OUTS, UNITS,
                                              {"rate": 100.0, "window": 32, "phases": 1}))
        i = 0
        while not stop.is_set():
            t = time.monotonic()
            o = {k: np.sin(2 * np.pi * i / 100 + 0.4 * np.arange(len(v))).astype(np.float32)
                 for k, v in OUTS.items()}
            pub.publish("walk", wire.encode_estimate("walk", 1, i, t - 0.003, t, t, o, 0, 41, [],
                                                     0, 0, {}))
            i += 1
            stop.wait(0.01)


@pytest.fixture
def view(make_endpoint):
    from hdys_rt.bridges.view import ViewOptions, ViewServer

    ep = make_endpoint()
    stop = threading.Event()
    th = threading.Thread(target=_publish, args=(ep, stop), daemon=True)
    th.start()
    with ViewServer(ep, port=0, options=ViewOptions(mass_kg=70.0, window_s=5.0)) as v:
        end = time.monotonic() + 15
        while v.counters["samples"] < 60 and time.monotonic() < end:
            time.sleep(0.05)
        yield v
    stop.set()
    th.join(2)


def test_events_and_status(view):
    status = json.loads(urllib.request.urlopen(view.url + "status.json", timeout=30).read())
    assert status["stream"] == "walk" and status["samples"] >= 60
    with urllib.request.urlopen(view.url + "events", timeout=30) as r:
        assert r.headers["Content-Type"] == "text/event-stream"
        lines = []
        while len([x for x in lines if x.startswith("data: {\"t\"")]) < 3:
            lines.append(r.readline().decode().strip())
    meta = json.loads(next(x for x in lines if x.startswith("data: {\"stream\"")).split(
        "data: ", 1)[1])
    titles = [(g["title"], g["unit"]) for g in meta["groups"]]
    assert titles == [("Joint torques", "N·m"), ("Muscle activations", "1"),
                      ("Ground reaction force", "N"), ("Latency", "ms")]
    assert len(meta["history"]) >= 30
    sample = json.loads(lines[-1].split("data: ", 1)[1])
    assert len(sample["v"]) == 6 + 6 + 2 + 1
    assert max(abs(v) for v in sample["v"][:6]) <= 70.0 + 1e-3  # sin x 70 kg
    page = urllib.request.urlopen(view.url, timeout=30).read().decode()
    assert "EventSource" in page and "<script src" not in page and "http" not in page.split(
        "<script>")[1]


@pytest.mark.skipif(not os.path.exists(CHROMIUM),
                    reason="needs Debian's chromium at /usr/bin/chromium (apt-get install -y "
                    "chromium; .ci/run installs it)")
def test_headless_chromium_draws_live_traces(view, tmp_path, png):
    shot = tmp_path / "view.png"
    with tempfile.TemporaryDirectory(prefix="hdys-chromium-") as profile:
        proc = subprocess.run(
            [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={profile}", "--window-size=900,640",
             f"--screenshot={shot}", "--timeout=4000", view.url],
            capture_output=True, timeout=90)
    assert shot.exists(), proc.stderr.decode()[-2000:]
    img = png(shot)[..., :3].astype(int)
    plot = img[40:, 60:-150]  # the plot panels (left: axis labels, right: legends)
    saturated = (plot.max(-1) - plot.min(-1)) > 90  # trace colours; background/grid are grey
    assert saturated.sum() > 3000, f"only {saturated.sum()} trace pixels"
    # traces in each of the four panels (torques, muscles, GRF, latency)
    for band in np.array_split(saturated, 4, axis=0):
        assert band.sum() > 100


def test_subject_scaling():
    ch = {"torques_rajagopal": ("knee_angle_r",), "grf": ("r_fy", "r_copx")}
    vals, chans, units = absolute_outputs(
        {"torques_rajagopal": np.array([1.0], np.float32),
         "grf": np.array([1.0, 0.1], np.float32)}, ch, 80.0, 1.8)
    assert vals["torques_rajagopal_Nm"][0] == pytest.approx(80.0)
    assert units["torques_rajagopal_Nm"] == "N·m"
    assert vals["torques_rajagopal_pct_bwht"][0] == pytest.approx(100 / (G * 1.8))
    assert vals["grf_N"].tolist() == pytest.approx([80 * G, 0.1])
    assert make_subject(None, None) is None
    with pytest.raises(HdysError, match="--height needs --mass"):
        make_subject(None, 1.8)
    with pytest.raises(HdysError, match="mass_kg=500.0 is outside 20..250 kg"):
        make_subject(500, None)


def test_eval_plot_pngs(coco_walk, model_path, tmp_path, capsys, png):
    pytest.importorskip("matplotlib")
    from hdys_rt.cli import main
    from hdys_rt.data.corpus import Sequence, write_domain_info, write_sequence

    # a recorded trial: the generated keypoints with a reference torque trace
    T = coco_walk.frames
    tq = np.full((T, len(reps.RAJAGOPAL_TORQUE_JOINTS)), np.nan, np.float32)
    tq[:, :3] = np.sin(np.arange(T)[:, None] / 20 + np.arange(3))
    seq = Sequence("trial1", "lab", coco_walk.rate, coco_walk.subject, "test",
                   {"keypoints": coco_walk.data["keypoints"], "torques_rajagopal": tq},
                   {"keypoints": coco_walk.names["keypoints"],
                    "torques_rajagopal": reps.RAJAGOPAL_TORQUE_JOINTS})
    corpus = tmp_path / "corpus"
    write_domain_info(corpus / "lab", "lab", "real", "test")
    write_sequence(corpus / "lab", seq)
    rc = main(["eval", "--model", model_path, "--data", str(corpus), "--split", "all",
               "--plot", str(tmp_path / "plots"), "--trial", "trial1",
               "--json", str(tmp_path / "eval.json")])
    assert rc == 0
    assert "1 plots of 1 trial(s)" in capsys.readouterr().out
    path = tmp_path / "plots" / "lab_trial1__keypoints__torques_rajagopal.png"
    img = png(path)[..., :3].astype(int)
    red = (img[..., 0] > 150) & (img[..., 1] < 120)  # the estimate traces
    black = img.max(-1) < 60                          # the reference traces
    assert red.sum() > 200 and black.sum() > 200
    rep = json.loads((tmp_path / "eval.json").read_text())
    assert rep["domains"]["person_split"]["lab"]["keypoints"]["frames"] == T
    assert main(["eval", "--model", model_path, "--data", str(corpus), "--split", "all",
                 "--plot", str(tmp_path / "p2"), "--trial", "nope"]) == 1
