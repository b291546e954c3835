"""The AddBiomechanics ``.b3d`` input (domain ``addbiomechanics``) on the real fixture
``../shared/data/real/addbiomechanics_b3d/results.b3d``: one person (68 kg, 1.70 m), two
walking segments, a KINEMATICS pass only (so no torques), two raw force plates."""

import importlib.util
import os
from pathlib import Path

import numpy as np
import pytest

from hdys_rt import representations as reps
from hdys_rt.cli import main
from hdys_rt.errors import HdysError

SHARED = Path(os.environ.get("HDYS_SHARED_DATA",
                             Path(__file__).resolve().parents[2] / "shared" / "data"))
FIXTURE = SHARED / "real" / "addbiomechanics_b3d" / "results.b3d"
HAVE_NIMBLE = importlib.util.find_spec("nimblephysics") is not None
needs_fixture = pytest.mark.skipif(not FIXTURE.exists(), reason=f"{FIXTURE} not found")
needs_nimble = pytest.mark.skipif(
    not HAVE_NIMBLE, reason="nimblephysics is not installed (pip install 'hdys-rt[b3d]')")


def test_task_from_trial_name():
    from hdys_rt.data.labs.b3d import task_of

    assert task_of("walking2_segment_0") == "walk"
    assert task_of("run300_segment_1") == "run"
    assert task_of("DJ1_segment_0") == "jump"
    assert task_of("STS2") == "sit_to_stand"
    assert task_of("squats1") == "squat"
    assert task_of("static") == "other"
    assert task_of("adjust") == "other"  # "dj" counts only as a whole token


def test_split_group_keeps_split_files_of_one_subject_together(tmp_path):
    from hdys_rt.data.domains.addbiomechanics import split_group

    root = tmp_path / "AddB"
    a = root / "train" / "Carter2023_Formatted_No_Arm" / "P020_split0" / "P020_split0.b3d"
    b = root / "train" / "Carter2023_Formatted_No_Arm" / "P020_split1" / "P020_split1.b3d"
    assert split_group(root, a) == split_group(root, b) == (
        "Carter2023_Formatted_No_Arm__P020", "Carter2023_Formatted_No_Arm")


def test_b3d_dir_errors_name_the_fix(tmp_path, monkeypatch):
    from hdys_rt.data.domains import addbiomechanics as dom

    with pytest.raises(HdysError, match="--b3d .*no such folder"):
        dom.use_b3d_dir(tmp_path / "absent")
    monkeypatch.setenv(dom.ENV_B3D, str(tmp_path))
    with pytest.raises(HdysError, match="no .b3d file below it"):
        dom.check_inputs()


@pytest.mark.skipif(HAVE_NIMBLE, reason="checks the message shown without nimblephysics")
def test_missing_nimblephysics_names_the_extra(tmp_path, monkeypatch):
    from hdys_rt.data.domains import addbiomechanics as dom

    (tmp_path / "x.b3d").write_bytes(b"")
    monkeypatch.setenv(dom.ENV_B3D, str(tmp_path))
    with pytest.raises(HdysError, match=r"nimblephysics: pip install 'hdys-rt\[b3d\]'"):
        dom.check_inputs()
    assert dom.plan(0, quick=False) == []  # plan() only logs it: the domain is optional


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """The fixture through ``hdys-rt data build --domains addbiomechanics --b3d DIR``."""
    from hdys_rt.data.corpus import list_sequences, read_sequence

    out = tmp_path_factory.mktemp("b3d_corpus")
    old = os.environ.get("HDYS_B3D_DIR")
    try:
        assert main(["data", "build", "--out", str(out), "--domains", "addbiomechanics",
                     "--b3d", str(FIXTURE.parent), "--workers", "1"]) == 0
    finally:
        if old is None:
            os.environ.pop("HDYS_B3D_DIR", None)
        else:
            os.environ["HDYS_B3D_DIR"] = old
    return {p.stem: read_sequence(p) for p in list_sequences(out, "addbiomechanics")}


@needs_fixture
@needs_nimble
def test_subject_and_trials(built):
    assert sorted(built) == ["addbiomechanics_b3d__results__walking1_segment_0",
                             "addbiomechanics_b3d__results__walking2_segment_0"]
    for seq in built.values():
        assert seq.subject.mass_kg == 68.0 and seq.subject.height_m == 1.7
        assert seq.subject.id == "addbiomechanics_b3d__results"
        assert seq.rate == 100.0 and seq.frames in (131, 132)
        assert seq.meta["task"] == "walk" and seq.meta["person"] == seq.subject.id
        assert seq.meta["passes"] == ["KINEMATICS"]


@needs_fixture
@needs_nimble
def test_walking_grf_in_body_weights(built):
    g = reps.GRF_CHANNELS
    for seq in built.values():
        grf = seq.data["grf"]
        r, l = grf[:, g.index("r_fy")], grf[:, g.index("l_fy")]
        assert 1.0 <= r.max() <= 1.4 and 1.0 <= l.max() <= 1.4  # walking: ~1.1 BW peaks
        total = r + l
        assert 1.1 <= total.max() <= 1.4 and total.min() > 0.2  # double support, no flight
        assert r.min() > -0.03 and l.min() > -0.03  # low-pass ringing at stance edges
        sides = {a["side"] for a in seq.meta["plate_assignment"]}
        assert sides == {"r", "l"}  # both plates are stepped on, by different feet
        assert all(a["dist_m"] < 0.1 < a["other_m"] for a in seq.meta["plate_assignment"])
        cop = grf[:, g.index("r_copx")]
        assert np.nanmax(np.abs(cop)) < 0.5  # within a stride of the pelvis


@needs_fixture
@needs_nimble
def test_joint_angles_plausible_torques_nan_without_dynamics_pass(built):
    c = reps.RAJAGOPAL_COORDINATES
    for seq in built.values():
        q = np.degrees(seq.data["joint_angles"])
        for side in "rl":
            hip, knee = q[:, c.index(f"hip_flexion_{side}")], q[:, c.index(f"knee_angle_{side}")]
            ankle = q[:, c.index(f"ankle_angle_{side}")]
            assert -35 < hip.min() < -10 and 25 < hip.max() < 40  # walking hip: ~-25..+33
            assert 0 < knee.min() < 25 and 55 < knee.max() < 95  # flexion positive
            assert -40 < ankle.min() < -5 and 10 < ankle.max() < 40  # within the joint range
        pelvis_y = seq.data["joint_angles"][:, c.index("pelvis_ty")]
        assert 0.85 < pelvis_y.mean() < 1.05  # metres, Y up
        assert np.isnan(seq.data["torques_rajagopal"]).all()
        assert len(seq.meta["torques_masked"]) == 17
        q_ = seq.meta["quality"]
        assert q_["kinematics_pass_gate"] and q_["pelvis_marker_drift_m"] < 0.005
        assert "residual_force_pct_bw" not in q_  # no DYNAMICS pass: no residuals to report


@needs_fixture
@needs_nimble
def test_markers_mapped_metres_y_up(built):
    for seq in built.values():
        names = seq.names["markers"]
        assert {"R.ASIS", "L.ASIS", "R.Knee", "L.Ankle", "R.Toe"} <= set(names)
        xyz = seq.data["markers"]
        asis = xyz[:, names.index("R.ASIS")]
        assert 0.85 < np.nanmean(asis[:, 1]) < 1.1  # ASIS height, m
        toe = xyz[:, names.index("R.Toe")]
        assert -0.05 < np.nanmin(toe[:, 1]) < 0.08  # toe reaches the floor
