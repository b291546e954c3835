"""Humanoid (MuJoCo, SMPL-like) and kinematics-only domains: physical values, format, determinism."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("mujoco")
pytest.importorskip("scipy")

from hdys_rt import representations as reps  # noqa: E402
from hdys_rt.data.build import write_job  # noqa: E402
from hdys_rt.data.corpus import read_sequence  # noqa: E402
from hdys_rt.data.domains import humanoid as hum  # noqa: E402
from hdys_rt.data.domains import kinematics_only as kin  # noqa: E402
from hdys_rt.errors import HdysError  # noqa: E402

JOB = {"index": 7, "seed": 1234, "height_m": 1.75, "mass_kg": 70.0,
       "sequences": [{"kind": "stand", "duration": 2.0}, {"kind": "walk", "duration": 4.0},
                     {"kind": "squat", "duration": 4.0}]}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("humanoid")
    names = write_job(hum, JOB, out)
    return out, {n.split("_")[-1]: read_sequence(out / f"{n}.json") for n in names}


def _joint(seq, joint):
    """(T, 3) torque of one SMPL joint (N·m/kg)."""
    i = reps.SMPL_JOINTS[1:].index(joint)
    return seq.data["torques_smpl"][:, 3 * i:3 * i + 3]


def _vgrf(seq):
    g = seq.canonical("grf")
    ch = reps.GRF_CHANNELS
    return g[:, ch.index("r_fy")] + g[:, ch.index("l_fy")]


def test_layout_shapes_and_names(built):
    _, seqs = built
    seq = seqs["walk"]
    assert seq.domain == "humanoid" and seq.rate == 100.0
    assert seq.frames == 400
    assert seq.data["keypoints"].shape == (400, 24, 3)
    assert seq.names["keypoints"] == reps.SMPL_JOINTS
    assert seq.meta["keypoint_layout"] == "smpl24"
    assert seq.names["smpl_pose"] == reps.SMPL_POSE_CHANNELS
    assert seq.names["torques_smpl"] == reps.SMPL_TORQUE_CHANNELS
    assert seq.names["grf"] == reps.GRF_CHANNELS
    assert seq.subject.height_m == pytest.approx(1.75) and seq.subject.mass_kg == pytest.approx(70.0)
    kp = seq.data["keypoints"]
    # Y up: head above pelvis above ankles; pelvis transl matches the pelvis keypoint
    assert np.all(kp[:, reps.SMPL_JOINTS.index("head"), 1] > kp[:, 0, 1] + 0.4)
    assert np.all(kp[:, 0, 1] > kp[:, reps.SMPL_JOINTS.index("left_ankle"), 1] + 0.6)
    np.testing.assert_allclose(seq.data["smpl_pose"][:, :3], kp[:, 0], atol=1e-5)
    assert np.all(np.isfinite(seq.data["torques_smpl"]))
    assert "root_residual_force_N" in seq.meta["quality"]


def test_standing_carries_body_weight(built):
    _, seqs = built
    vz = _vgrf(seqs["stand"])
    assert np.all(np.abs(vz - 1.0) < 0.02), (vz.min(), vz.max())
    q = seqs["stand"].meta["quality"]
    assert q["root_residual_force_N"]["max"] < 5.0
    # knees and hips nearly unloaded, ankles hold the forward lean
    assert np.abs(_joint(seqs["stand"], "left_knee")).max() < 0.5
    assert np.abs(_joint(seqs["stand"], "left_ankle")[:, 0]).max() < 1.0


def test_walking_forces_and_torques(built):
    _, seqs = built
    seq = seqs["walk"]
    vz = _vgrf(seq)
    assert 0.9 <= vz.max() <= 1.6, vz.max()
    assert vz.min() > 0.3
    for side in ("left", "right"):
        assert np.abs(_joint(seq, f"{side}_knee")).max() < 3.0
        assert np.abs(_joint(seq, f"{side}_ankle")).max() < 3.0
        assert np.abs(_joint(seq, f"{side}_ankle")[:, 0]).max() > 0.5  # push-off
    q = seq.meta["quality"]
    assert q["root_residual_force_bw"] < 0.05
    # CoP is NaN exactly when that foot carries no vertical force
    g = seq.canonical("grf")
    ch = reps.GRF_CHANNELS
    for s in ("r", "l"):
        fy, cop = g[:, ch.index(f"{s}_fy")], g[:, ch.index(f"{s}_copx")]
        assert np.all(np.isnan(cop) == (fy < 1e-3))
        assert np.any(np.isnan(cop)) and np.any(np.isfinite(cop))  # swing and stance
        on = np.isfinite(cop)
        assert np.all(np.abs(g[on, ch.index(f"{s}_copz")]) < 0.6)


def test_squat_needs_more_knee_torque_than_standing(built):
    _, seqs = built
    squat = max(np.abs(_joint(seqs["squat"], k)[:, 0]).max() for k in ("left_knee", "right_knee"))
    stand = max(np.abs(_joint(seqs["stand"], k)[:, 0]).max() for k in ("left_knee", "right_knee"))
    assert squat > 0.5 and squat > 3 * stand, (squat, stand)
    vz = _vgrf(seqs["squat"])
    assert 0.5 < vz.min() and vz.max() < 1.6


def test_virtual_markers_sit_on_their_bodies(built):
    _, seqs = built
    seq = seqs["walk"]
    names, m, kp = list(seq.names["markers"]), seq.data["markers"], seq.data["keypoints"]
    assert m.shape == (400, 40, 3) and len(set(names)) == 40 and np.all(np.isfinite(m))

    def gap(marker, joint):
        d = m[:, names.index(marker)] - kp[:, reps.SMPL_JOINTS.index(joint)]
        return np.linalg.norm(d, axis=-1)

    for s, side in (("L", "left"), ("R", "right")):
        # epicondyles and malleoli within a few cm of their joint centre, all through the motion
        for mk, joint in (("KNE", "knee"), ("KNM", "knee"), ("ANK", "ankle"), ("MED", "ankle")):
            assert gap(s + mk, f"{side}_{joint}").max() < 0.07, (s + mk, gap(s + mk, f"{side}_{joint}").max())
        # the lateral knee marker is on its own side: farther from the other knee
        assert np.all(gap(s + "KNE", f"{side}_knee")
                      < gap(s + "KNE", f"{'right' if side == 'left' else 'left'}_knee"))
        # heel behind and toe in front of the ankle along the walking direction (+z here)
        heel = m[:, names.index(s + "HEE")] - kp[:, reps.SMPL_JOINTS.index(f"{side}_ankle")]
        toe = m[:, names.index(s + "TOE")] - kp[:, reps.SMPL_JOINTS.index(f"{side}_ankle")]
        fwd = kp[-1, 0] - kp[0, 0]
        fwd = fwd / np.linalg.norm(fwd)
        assert np.median(heel @ fwd) < -0.02 < 0.08 < np.median(toe @ fwd)


def test_rajagopal_moments_of_a_squat_have_opensim_signs(built):
    _, seqs = built
    seq = seqs["squat"]
    tr = seq.canonical("torques_rajagopal")
    ch = list(reps.RAJAGOPAL_TORQUE_JOINTS)
    # the same numbers as the ball joint's flexion axis, with OpenSim's sign per coordinate
    np.testing.assert_allclose(tr[:, ch.index("knee_angle_l")], _joint(seq, "left_knee")[:, 0])
    np.testing.assert_allclose(tr[:, ch.index("hip_flexion_r")], -_joint(seq, "right_hip")[:, 0])
    # physics: at the bottom of a squat the knees and hips hold the body with extensor moments,
    # negative in OpenSim's convention (+ = flexor), and the trunk leans on its extensors (+)
    bottom = int(np.argmin(seq.data["keypoints"][:, 0, 1]))
    for c in ("knee_angle_r", "knee_angle_l", "hip_flexion_r", "hip_flexion_l"):
        assert tr[bottom, ch.index(c)] < -0.2, (c, tr[bottom, ch.index(c)])
    assert tr[bottom, ch.index("lumbar_extension")] > 0.1
    # deeper knee flexion needs more knee extensor moment than standing upright
    assert tr[bottom, ch.index("knee_angle_r")] < tr[0, ch.index("knee_angle_r")] - 0.3
    # frontal and transverse channels are not mapped
    assert np.all(np.isnan(tr[:, ch.index("hip_adduction_r")]))
    # walking has real OpenSim moments elsewhere; the simulator's are not given for it
    assert "torques_rajagopal" not in seqs["walk"].data


def test_same_job_gives_identical_bytes(built, tmp_path):
    out, _ = built
    job = dict(JOB, sequences=JOB["sequences"][:1])
    names = write_job(hum, job, tmp_path)
    for n in names:
        for ext in (".f32", ".json"):
            assert (tmp_path / f"{n}{ext}").read_bytes() == (out / f"{n}{ext}").read_bytes()


def test_model_matches_numpy_kinematics():
    import mujoco

    sk = hum.make_skeleton(np.random.default_rng(3))
    model = hum._Model(sk)
    assert model.mass == pytest.approx(sk.mass, rel=1e-6)
    mo = hum.make_motion("reach", 5, 2.0, sk, model)
    q = hum.to_qpos(model, mo)
    d = mujoco.MjData(model.m)
    for i in (0, len(q) // 2, len(q) - 1):
        d.qpos[:] = q[i]
        mujoco.mj_kinematics(model.m, d)
        xyz = (hum.C_ZY @ d.xpos[model.body].T).T
        np.testing.assert_allclose(xyz, mo.joints[i], atol=1e-5)


@pytest.mark.parametrize("kind", ["run", "jump", "sit_stand", "turn", "side_step", "perturbation"])
def test_other_motions_are_physical(kind):
    sk = hum.make_skeleton(np.random.default_rng(11), 1.75, 72.0)
    model = hum._Model(sk)
    mo = hum.make_motion(kind, 21, 3.0, sk, model)
    sim = hum.simulate(model, sk, mo)
    assert np.all(np.isfinite(sim.torques))
    vz = sim.grf[:, 1] + sim.grf[:, 6]
    assert vz.min() >= 0.0 and vz.max() < 6.0
    assert np.percentile(np.abs(sim.torques), 99) < 8.0
    if kind == "sit_stand":
        assert sim.seat_force.max() > 0.2 * model.mass * hum.G  # the chair carries weight


def test_errors_name_the_fix(tmp_path):
    sk = hum.make_skeleton(np.random.default_rng(0))
    with pytest.raises(HdysError, match="unknown motion 'fly'"):
        hum.make_motion("fly", 0, 2.0, sk)
    with pytest.raises(HdysError, match="too short"):
        hum.make_motion("walk", 0, 0.5, sk)
    with pytest.raises(HdysError, match="malformed"):
        write_job(hum, {"seed": 1}, tmp_path)


def test_plans_are_deterministic_and_sized():
    for mod, lo, hi in ((hum, 40_000, 60_000), (kin, 25_000, 35_000)):
        full = mod.plan(5, quick=False)
        assert full == mod.plan(5, quick=False)
        frames = sum(s["duration"] for j in full for s in j["sequences"]) * hum.RATE
        assert lo <= frames <= hi
        quick = mod.plan(5, quick=True)
        assert sum(s["duration"] for j in quick for s in j["sequences"]) <= 5.0


def test_kinematics_only_layouts(tmp_path):
    job = kin.plan(0, quick=True)[0]
    names = write_job(kin, job, tmp_path)
    seen = set()
    for n in names:
        seq = read_sequence(tmp_path / f"{n}.json")
        layout = seq.meta["keypoint_layout"]
        seen.add(layout)
        assert seq.names["keypoints"] == reps.KEYPOINT_LAYOUTS[layout]
        assert seq.data["keypoints"].shape == (seq.frames, 17, 3)
        assert set(seq.data) == {"keypoints", "smpl_pose"}  # no dynamics at all
        kp = seq.data["keypoints"]
        names_ = seq.names["keypoints"]
        top = names_.index("nose" if layout == "coco17" else "head")
        ank = names_.index("left_ankle")
        height = kp[:, top, 1] - kp[:, ank, 1]
        assert np.all((height > 1.0) & (height < 2.0))
        if layout == "coco17":  # eyes above the nose, shoulders below it
            assert np.all(kp[:, names_.index("left_eye"), 1] > kp[:, top, 1])
            assert np.all(kp[:, names_.index("left_shoulder"), 1] < kp[:, top, 1])
    assert seen == {"coco17", "h36m17"}
