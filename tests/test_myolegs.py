"""MyoLegs domain: a tiny walking job, read back, checked in physical units."""

import numpy as np
import pytest

from hdys_rt import representations as reps
from hdys_rt.data.build import write_job
from hdys_rt.data.corpus import read_sequence
from hdys_rt.data.domains import myolegs
from hdys_rt.errors import HdysError

try:
    myolegs.shared_data_dir()
    HAVE_DATA = True
except HdysError:
    HAVE_DATA = False

needs_data = pytest.mark.skipif(not HAVE_DATA, reason="shared data (myo_sim) not found")

WALK = {"name": "walk_t", "motion": "walk", "seed": 11, "duration_s": 3.0,
        "subject": {"id": "myo00", "mass_scale": 1.0}}


@pytest.fixture(scope="module")
def walk(tmp_path_factory):
    out = tmp_path_factory.mktemp("myolegs")
    names = write_job(myolegs, {"domain": "myolegs", "sequences": [WALK]}, out)
    return out, read_sequence(out / f"{names[0]}.json")


def test_plan_is_deterministic_and_sized():
    assert myolegs.plan(3, True) == myolegs.plan(3, True)
    full = myolegs.plan(3, False)
    seconds = sum(s["duration_s"] for j in full for s in j["sequences"])
    assert 400 <= seconds <= 650  # 40-65k frames at 100 Hz
    assert {s["motion"] for j in full for s in j["sequences"]} == set(myolegs.MOTIONS)


def test_missing_data_names_the_variable(monkeypatch, tmp_path):
    monkeypatch.setenv("HDYS_SHARED_DATA", str(tmp_path))
    with pytest.raises(HdysError, match="HDYS_SHARED_DATA"):
        myolegs.shared_data_dir()


@needs_data
def test_walk_is_physical(walk):
    _, seq = walk
    assert seq.frames == 300 and seq.rate == 100.0
    grf = seq.canonical("grf")
    vy = grf[:, [reps.GRF_CHANNELS.index("r_fy"), reps.GRF_CHANNELS.index("l_fy")]]
    assert 0.9 <= vy.max() <= 1.6  # body weights
    assert np.all(vy >= 0)
    assert 0.85 <= vy.sum(axis=1).mean() <= 1.15  # mean support = body weight
    tau = seq.canonical("torques_rajagopal")
    ank = tau[:, [reps.RAJAGOPAL_TORQUE_JOINTS.index(j) for j in ("ankle_angle_r", "ankle_angle_l")]]
    assert -2.5 <= ank.min() and ank.max() <= 1.0  # N·m/kg
    assert ank.min() < -0.8  # push-off plantarflexor moment is there
    assert np.all(np.isnan(tau[:, -3:]))  # no lumbar joint in MyoLegs
    act = seq.data["activations"]
    assert act.min() >= 0.0 and act.max() <= 1.0 + 1e-6
    assert act.max() > 0.1
    # Y up: the pelvis is ~0.9 m above the floor, feet near it
    kp = dict(zip(seq.names["keypoints"], np.moveaxis(seq.data["keypoints"], 1, 0)))
    assert 0.8 < kp["pelvis"][:, 1].mean() < 1.05
    assert kp["ankle_r"][:, 1].min() < 0.15
    ja = seq.canonical("joint_angles")
    knee = ja[:, reps.RAJAGOPAL_COORDINATES.index("knee_angle_r")]
    assert np.rad2deg(knee.max()) > 40  # swing knee flexion
    assert set(seq.names["markers"]) <= {n for n, _, _ in myolegs._myo().markers}
    q = seq.meta["quality"]
    assert q["root_residual_force_N"]["max"] < 1.0
    assert seq.meta["keypoint_layout"] == "opensim"


@needs_data
def test_same_job_same_bytes(walk, tmp_path):
    out, seq = walk
    write_job(myolegs, {"domain": "myolegs", "sequences": [WALK]}, tmp_path)
    assert (tmp_path / "walk_t.f32").read_bytes() == (out / "walk_t.f32").read_bytes()
