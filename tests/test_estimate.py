"""``hdys-rt estimate``: a recording in, per-frame estimates out, the SAME numbers as the live
path (``serve --source replay`` on real loopback sockets into a real subscriber), written as
OpenSim .sto / .mot that the project's own readers parse back, .csv and .json. Tiny model."""

from __future__ import annotations

import csv
import json
import threading

import numpy as np
import pytest
from loopback import free_endpoint

from hdys_rt.bridges.estimate import MOT_COLUMNS, estimate_file
from hdys_rt.cli import main
from hdys_rt.data.corpus import Sequence, Subject, write_sequence
from hdys_rt.data.formats import read_storage
from hdys_rt.representations import RAJAGOPAL_TORQUE_JOINTS
from hdys_rt.streams.replay import demo_clip_path
from hdys_rt.subject import G

MASS = 70.0


def test_estimate_equals_the_live_serve_path(model_path, tmp_path, capsys):
    from hdys_rt.client import Subscriber

    clip = demo_clip_path()
    out = tmp_path / "walk.json"
    assert main(["estimate", str(clip), "--out", str(out), "--model", model_path,
                 "--mass", str(MASS)]) == 0
    assert "238 frames at 100 Hz" in capsys.readouterr().out
    doc = json.loads(out.read_text())
    assert doc["format"] == "hdys-estimate" and doc["frames"] == 238
    offline = {k: np.array(v["values"], np.float32) for k, v in doc["outputs"].items()}
    assert {"torques_rajagopal", "grf", "torques_rajagopal_Nm", "grf_N"} <= set(offline)
    assert np.isfinite(offline["torques_rajagopal"]).all()

    ep = free_endpoint()
    sub = Subscriber(ep)
    served, stop = [], threading.Event()

    def read():
        while not stop.is_set():
            est = sub.recv(0.1)
            if est is not None:
                served.append(est)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        rc = main(["serve", "--source", "replay", "--file", str(clip), "--model", model_path,
                   "--publish", ep, "--mass", str(MASS), "--max-age-ms", "60000",
                   "--connect-timeout", "60"])
    finally:
        stop.set()
        reader.join(10)
        sub.close()
    assert rc == 0, capsys.readouterr().err
    # estimates published before the subscription reached serve are lost (ZeroMQ's slow
    # joiner); every one that arrived equals the offline estimate of its frame
    assert len(served) >= 238 // 2
    for est in served:
        for k in ("torques_rajagopal", "grf", "activations", "torques_rajagopal_Nm", "grf_N"):
            np.testing.assert_allclose(est.outputs[k], offline[k][est.seq], rtol=1e-4,
                                       atol=1e-5, err_msg=f"{k} frame {est.seq}")


def test_sto_and_mot_parse_back_with_the_projects_readers(model_path, tmp_path):
    clip = demo_clip_path()
    est = estimate_file(clip, model=model_path)  # per kg / body weights
    tq = est.outputs["torques_rajagopal"]
    assert main(["estimate", str(clip), "--out", str(tmp_path / "m.sto"), "--model",
                 model_path]) == 0
    sto = read_storage(tmp_path / "m.sto")
    assert sto.names == tuple(f"{c}_moment" for c in RAJAGOPAL_TORQUE_JOINTS)
    assert sto.header["units"] == "N*m/kg" and "representations.py" in sto.header[
        "sign_convention"]
    np.testing.assert_allclose(sto.time, est.time, atol=1e-9)
    np.testing.assert_allclose(sto.values, tq, rtol=1e-6, atol=1e-6)

    # with a mass: N·m and N, the same frames scaled
    assert main(["estimate", str(clip), "--out", str(tmp_path / "kg.sto"), "--model",
                 model_path, "--mass", str(MASS)]) == 0
    sto = read_storage(tmp_path / "kg.sto")
    assert sto.header["units"] == "N*m" and sto.header["mass_kg"] == "70"
    np.testing.assert_allclose(sto.values, tq * MASS, rtol=1e-5, atol=1e-5)
    assert main(["estimate", str(clip), "--out", str(tmp_path / "g.mot"), "--model",
                 model_path, "--mass", str(MASS)]) == 0
    mot = read_storage(tmp_path / "g.mot")
    assert mot.names == MOT_COLUMNS and mot.header["units"] == "N"
    g = dict(zip(est.channels["grf"], est.outputs["grf"].T))
    np.testing.assert_allclose(mot.column("ground_force_r_vy"), g["r_fy"] * MASS * G,
                               rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(mot.column("ground_force_l_px"), g["l_copx"], atol=1e-6)
    assert (mot.column("ground_torque_r_y") == 0).all()

    # csv: a header row and one row per frame
    assert main(["estimate", str(clip), "--out", str(tmp_path / "e.csv"), "--model",
                 model_path]) == 0
    rows = list(csv.reader(open(tmp_path / "e.csv", encoding="utf-8")))
    assert rows[0][0] == "time [s]" and "torques_rajagopal.knee_angle_r [N·m/kg]" in rows[0]
    assert len(rows) == 1 + len(est.time)
    c = rows[0].index("torques_rajagopal.knee_angle_r [N·m/kg]")
    k = est.channels["torques_rajagopal"].index("knee_angle_r")
    np.testing.assert_allclose([float(r[c]) for r in rows[1:]], tq[:, k], rtol=1e-6)


def test_a_corpus_sequence_gives_the_same_estimates_as_its_markers(model_path, tmp_path, gait):
    seq = Sequence("walk", "lab", gait.rate, Subject("s1", MASS, 1.75), "test",
                   {"markers": gait.xyz}, {"markers": gait.names})
    side = write_sequence(tmp_path, seq)
    a = estimate_file(side, model=model_path)
    b = estimate_file(demo_clip_path(), model=model_path)
    np.testing.assert_allclose(a.outputs["torques_rajagopal"], b.outputs["torques_rajagopal"],
                               rtol=1e-5, atol=1e-6)


def test_estimate_user_errors(model_path, tmp_path, capsys):
    clip = str(demo_clip_path())
    assert main(["estimate", clip, "--out", str(tmp_path / "x.txt"), "--model",
                 model_path]) == 1
    assert "unsupported extension; expected one of .sto, .mot, .csv, .json" in \
        capsys.readouterr().err
    assert main(["estimate", str(tmp_path / "m.sto"), "--out", str(tmp_path / "y.json")]) == 1
    assert "does not exist" in capsys.readouterr().err
    # a table (angles) is no point recording
    assert main(["estimate", clip, "--out", str(tmp_path / "m.sto"), "--model",
                 model_path]) == 0
    assert main(["estimate", str(tmp_path / "m.sto"), "--out", str(tmp_path / "y.json"),
                 "--model", model_path]) == 1
    assert "holds a table, not markers or keypoints" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["estimate", clip, "--out", str(tmp_path / "z.json"), "--mass", "-3"])


def test_estimate_says_when_the_skeleton_lies(model_path, tmp_path, capsys, gait, caplog):
    """A Z-up TRC read as TRC's usual Y up lies on its side: estimate's line says so and names
    --up z; with --up z it is quiet and gives the estimates of the upright recording."""
    from hdys_rt.data import formats
    from hdys_rt.data.frames import yup_to_zup

    n = 120  # 1.2 s: the check looks at the first second
    for name, xyz in (("walk_zup.trc", yup_to_zup(gait.xyz[:n])), ("walk.trc", gait.xyz[:n])):
        formats.write_trc(tmp_path / name, formats.MarkerData(
            gait.names, 100.0, np.arange(n) / 100.0, xyz, "m"))
    zup = tmp_path / "walk_zup.trc"
    assert main(["estimate", str(zup), "--out", str(tmp_path / "lying.csv"), "--model",
                 model_path]) == 0
    out = capsys.readouterr().out
    assert out.strip().endswith("; the skeleton looks lying (pass --up z)"), out
    assert "the skeleton looks lying" in caplog.text and "pass --up z" in caplog.text
    caplog.clear()
    fixed = estimate_file(zup, model=model_path, up="z")
    assert fixed.upright.orientation == "upright" and "skeleton" not in caplog.text
    upright = estimate_file(tmp_path / "walk.trc", model=model_path)
    np.testing.assert_allclose(fixed.outputs["torques_rajagopal"],
                               upright.outputs["torques_rajagopal"], atol=1e-4)
