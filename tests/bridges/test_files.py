"""File bridges: real files (TRC, C3D, MOT, corpus, XDF) read and replayed over real LSL and
ZeroMQ sockets to the runtime's own sources."""

from __future__ import annotations

import json
import logging
import time

import numpy as np
import pytest

from hdys_rt.data.loader import load_file
from hdys_rt.bridges.xdf import write_xdf
from hdys_rt.cli import main
from hdys_rt.data import formats
from hdys_rt.data.corpus import Sequence, Subject, write_sequence
from hdys_rt.data.frames import yup_to_zup
from hdys_rt.errors import HdysError


def _wait(pred, timeout=60.0):
    end = time.monotonic() + timeout
    while not pred() and time.monotonic() < end:
        time.sleep(0.02)
    return pred()


def _pig_names(names):
    """The gait clip's names respelled Plug-in-Gait style with a Vicon subject prefix."""
    return [f"Sub01:{n.replace('R.', 'R').replace('L.', 'L').upper()}" for n in names]


def test_trc_to_zmq_reaches_the_zmq_source(gait, make_endpoint, capsys):
    from hdys_rt.streams.zmq import ZmqSource

    ep = make_endpoint()
    src = ZmqSource(ep).start()
    try:
        rc = main(["bridge", "file", "hdys_rt/assets/motion_capture_walk.trc", "--to", "zmq",
                   "--endpoint", ep, "--wait", "10", "--speed", "4", "--json",
                   "--name", "walk"])
        assert rc == 0
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert out["sent"] == gait.frames and out["markers"]["markers_out"] == 41
        assert _wait(lambda: src.counters["received"] >= gait.frames - 5)
        assert src.names == gait.names and src.rate == 100.0 and src.name == "walk"
    finally:
        src.stop()


def test_xdf_mm_zup_to_lsl_with_metadata(gait, tmp_path, lsl_name, capsys):
    """A LabRecorder-like XDF (mm, Z up, Vicon names, subject in desc, a second EEG stream)
    replayed to LSL: the runtime's LSL source reads it back in metres, Y up, trained names."""
    from hdys_rt.streams.lsl import LslSource

    names = _pig_names(gait.names)
    labels = [f"{n}_{a}" for n in names for a in "XYZ"]
    xyz_mm = yup_to_zup(gait.xyz) * 1000.0
    path = tmp_path / "session.xdf"
    write_xdf(path, [
        {"name": "EEG", "type": "EEG", "rate": 250.0, "data": np.zeros((20, 4)),
         "timestamps": 50 + np.arange(20) / 250.0},
        {"name": "Vicon", "type": "MoCap", "rate": 100.0,
         "data": xyz_mm.reshape(gait.frames, -1), "timestamps": 50 + np.arange(gait.frames) / 100,
         "labels": labels, "units": ["mm"] * len(labels),
         "desc_xml": "<up>z</up><subject><id>s7</id><mass_kg>72.6</mass_kg>"
                     "<height_m>1.81</height_m></subject>"}])
    fr = load_file(path)
    assert fr.kind == "markers" and fr.units_in_file == "mm" and fr.rate == 100.0
    assert fr.subject == Subject("s7", 72.6, 1.81)
    np.testing.assert_allclose(fr.data, gait.xyz, atol=2e-5)

    src = LslSource(name=lsl_name).start()
    try:
        rc = main(["bridge", "file", str(path), "--to", "lsl", "--name", lsl_name,
                   "--wait", "10", "--seconds", "1.0", "--json"])
        assert rc == 0
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert out["subject"]["mass_kg"] == 72.6 and out["sent"] >= 90
        assert _wait(lambda: src.counters["received"] >= 20)
        assert src.names[:3] == ("R.Shoulder", "L.Shoulder", "R.Clavicle")
        assert src.rate == 100.0
    finally:
        src.stop()


def test_lsl_outlet_metadata(gait, lsl_name):
    from hdys_rt.bridges.sinks import LslSink
    from hdys_rt.bridges.subject import lsl_subject
    from hdys_rt.streams.lslconf import pylsl_module

    pylsl = pylsl_module()
    sink = LslSink(lsl_name, gait.names[:2], 100.0, subject=Subject("s1", 80.0, 1.9),
                   source="x.c3d")
    try:
        info = pylsl.resolve_bypred(f"name='{lsl_name}'", 1, 5.0)[0]
        inlet = pylsl.StreamInlet(info)
        full = inlet.info(5.0)
        assert full.type() == "MoCap" and full.nominal_srate() == 100.0
        assert full.channel_count() == 6
        ch = full.desc().child("channels").child("channel")
        assert ch.child_value("label") == "R.Shoulder_X" and ch.child_value("unit") == "m"
        assert full.desc().child_value("up") == "y"
        assert full.desc().child("hdys").child_value("kind") == "markers"
        inlet.close_stream()
        assert lsl_subject(lsl_name, 5.0) == Subject("s1", 80.0, 1.9)
    finally:
        sink.close()


def test_c3d_corpus_and_trc_files(gait, tmp_path, capsys, caplog):
    pytest.importorskip("ezc3d")
    md = formats.MarkerData(_pig_names(gait.names), 100.0, np.arange(gait.frames) / 100.0,
                            gait.xyz, "m")
    formats.write_c3d(tmp_path / "walk.c3d", md)
    assert main(["bridge", "file", str(tmp_path / "walk.c3d"), "--check", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["frames"] == gait.frames and out["markers"]["exact"]["Sub01:RASIS"] == "R.ASIS"
    np.testing.assert_allclose(load_file(tmp_path / "walk.c3d").data, gait.xyz, atol=1e-4)

    seq = Sequence("walk", "lab", 100.0, Subject("s2", 65.0, 1.7), "test",
                   {"markers": gait.xyz}, {"markers": gait.names})
    side = write_sequence(tmp_path / "corpus", seq)
    assert main(["bridge", "file", str(side), "--check", "--json", "--mass", "70"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["subject"]["mass_kg"] == 70.0  # --mass wins over the file's subject
    assert load_file(side).subject.mass_kg == 65.0

    # a TRC whose header says m although its numbers are mm: detected, rescaled, warned
    formats.write_trc(tmp_path / "mm.trc", formats.MarkerData(
        gait.names, 100.0, np.arange(gait.frames) / 100.0, gait.xyz * 1000.0, "m"))
    with caplog.at_level(logging.WARNING):
        fr = load_file(tmp_path / "mm.trc")
    assert fr.units_in_file == "mm" and "looks like mm" in caplog.text
    np.testing.assert_allclose(fr.data, gait.xyz, atol=1e-4)


def test_check_reports_a_lying_or_upside_down_recording(gait, tmp_path, capsys, caplog):
    """--check says in its line (and --json in "orientation") when the skeleton lies or stands
    on its head, with the --up that fixes it when bridge file takes one."""
    zup = tmp_path / "walk_zup.trc"  # Z up, read as TRC's usual Y up: lying
    formats.write_trc(zup, formats.MarkerData(gait.names, 100.0, np.arange(gait.frames) / 100.0,
                                              yup_to_zup(gait.xyz), "m"))
    assert main(["bridge", "file", str(zup), "--check"]) == 0
    out, err = capsys.readouterr()
    assert out.strip().endswith("; looks lying (pass --up z)"), out
    assert "the skeleton looks lying" in caplog.text and "pass --up z" in caplog.text
    assert main(["bridge", "file", str(zup), "--check", "--json", "--up", "z"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["orientation"]["orientation"] == "upright" and doc["notes"] == []

    down = tmp_path / "walk_ydown.trc"  # Y negated: upside down; --up y/z cannot fix that
    formats.write_trc(down, formats.MarkerData(gait.names, 100.0, np.arange(gait.frames) / 100.0,
                                               gait.xyz * np.float32([1, -1, 1]), "m"))
    assert main(["bridge", "file", str(down), "--check", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["orientation"]["orientation"] == "upside_down"
    assert doc["orientation"]["flag"] is None
    assert "which --up y/z cannot express" in doc["orientation"]["message"]
    assert doc["notes"] == [doc["orientation"]["message"]]


def test_mot_table_and_errors(tmp_path, lsl_name, capsys):
    t = formats.Table(("knee_angle_r", "hip_flexion_r"), np.arange(50) / 100.0,
                      np.zeros((50, 2)), angular=("knee_angle_r", "hip_flexion_r"))
    formats.write_storage(tmp_path / "ik.mot", t)
    fr = load_file(tmp_path / "ik.mot")
    assert fr.kind == "table" and fr.units == ("rad", "rad") and fr.rate == pytest.approx(100)
    assert main(["bridge", "file", str(tmp_path / "ik.mot"), "--to", "lsl", "--name", lsl_name,
                 "--wait", "0", "--seconds", "0.2", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["sent"] >= 10
    assert main(["bridge", "file", str(tmp_path / "ik.mot"), "--to", "zmq"]) == 1
    assert "holds a table" in capsys.readouterr().err
    with pytest.raises(HdysError, match="unsupported file type '.bvh'"):
        (tmp_path / "a.bvh").write_text("x")
        load_file(tmp_path / "a.bvh")
    write_xdf(tmp_path / "eeg.xdf", [{"name": "EEG", "type": "EEG", "rate": 10.0,
                                      "data": np.zeros((5, 2)), "timestamps": np.arange(5.0)}])
    with pytest.raises(HdysError, match=r"no MoCap stream; streams: EEG \(EEG\)"):
        load_file(tmp_path / "eeg.xdf")
    with pytest.raises(HdysError, match="--stream is for .xdf files"):
        load_file(tmp_path / "ik.mot", stream="x")
