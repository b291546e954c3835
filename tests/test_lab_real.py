"""lab_real domain: the real OpenSim gait pipelines, checked in physical units.

Builds the quick plan (both real trials, no static optimisation) and one augmented copy into a
temporary folder and checks the values against biomechanics and against OpenSim's own reference
inverse dynamics of the held-out subject.
"""

import numpy as np
import pytest

from hdys_rt import representations as reps
from hdys_rt.data.build import write_job
from hdys_rt.data.corpus import read_sequence
from hdys_rt.errors import HdysError

osim = pytest.importorskip("opensim", reason="lab_real needs the opensim package")
lab_real = pytest.importorskip("hdys_rt.data.domains.lab_real")

try:
    DATA = lab_real.shared_data_root()
except HdysError as exc:  # pragma: no cover - depends on the checkout
    pytest.skip(f"shared data not found ({exc})", allow_module_level=True)

REFERENCE_ID = (DATA / "opensim-models" / lab_real.SUBJECTS["gait2354_s01"].reference_id)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("lab_real")
    names = []
    for job in lab_real.plan(0, quick=True):
        names += write_job(lab_real, job, out)
    return {n: read_sequence(out / f"{n}.json") for n in names}


@pytest.fixture(scope="module")
def augmented(tmp_path_factory):
    """rajagopal_s1 mirrored and re-scaled by 1.05 (speed 1: time x sqrt(1.05))."""
    out = tmp_path_factory.mktemp("lab_real_aug")
    job = lab_real._job("rajagopal_s1", "aug_test", 0, speed=1.0, scale=1.05, mirror=True)
    (name,) = write_job(lab_real, job, out)
    return read_sequence(out / f"{name}.json")


def _chan(seq, key, name):
    return seq.data[key][:, seq.names[key].index(name)]


def test_plan_is_deterministic_and_keeps_test_subject_pristine():
    assert lab_real.plan(3, True) == lab_real.plan(3, True)
    assert lab_real.plan(3, False) == lab_real.plan(3, False)
    quick = lab_real.plan(0, True)
    assert [j["subject"] for j in quick] == ["rajagopal_s1", "gait2354_s01"]
    assert not any(j["static_optimization"] for j in quick)
    full = lab_real.plan(0, False)
    assert len(full) > 50
    assert full[0]["static_optimization"]
    test_jobs = [j for j in full if j["subject"] == "gait2354_s01"]
    assert len(test_jobs) == 1
    assert (test_jobs[0]["speed"], test_jobs[0]["scale"], test_jobs[0]["mirror"]) == (1, 1, False)
    speeds = [j["speed"] for j in full]
    scales = [j["scale"] for j in full]
    assert 0.8 <= min(speeds) and max(speeds) <= 1.2 and 0.9 <= min(scales) and max(scales) <= 1.1


def test_sequences_have_splits_and_representations(quick):
    raj, g = quick["rajagopal_s1_walk"], quick["gait2354_s01_walk1"]
    assert raj.meta["split"] == "train" and g.meta["split"] == "test"
    for seq in (raj, g):
        assert {"markers", "joint_angles", "torques_rajagopal", "grf", "keypoints"} <= set(seq.data)
        assert seq.meta["keypoint_layout"] == "opensim"
        assert seq.names["keypoints"] == reps.KEYPOINT_LAYOUTS["opensim"]
        assert seq.meta["ik_marker_rms_m"]["mean"] < 0.03  # IK fits the real markers to < 3 cm
        assert seq.frames > 100
        assert np.isfinite(seq.data["torques_rajagopal"]).all()
        assert np.isfinite(seq.data["joint_angles"]).all()
    assert raj.rate == 100.0 and g.rate == 60.0
    assert "activations" not in raj.data  # static optimisation only in the full plan
    assert "semg" in raj.data and "semg" not in g.data


def test_units_are_metres_y_up(quick):
    for seq in quick.values():
        m = seq.data["markers"]
        for name in ("R.ASIS", "L.ASIS"):
            y = m[:, seq.names["markers"].index(name), 1]
            assert 0.8 < np.nanmean(y) < 1.15, (seq.name, name, np.nanmean(y))
        kp = seq.data["keypoints"]
        names = seq.names["keypoints"]
        assert 0.75 < np.mean(kp[:, names.index("hip_r"), 1]) < 1.05
        assert 0.4 < np.mean(kp[:, names.index("knee_r"), 1]) < 0.6
        assert np.mean(kp[:, names.index("ankle_r"), 1]) < 0.2
        pelvis_y = _chan(seq, "joint_angles", "pelvis_ty")
        assert 0.8 < pelvis_y.mean() < 1.15


def test_torques_are_physiological(quick):
    for seq in quick.values():
        for side in ("r", "l"):
            plantar = -_chan(seq, "torques_rajagopal", f"ankle_angle_{side}").min()
            assert 1.0 < plantar < 2.0, (seq.name, side, plantar)  # N·m/kg, gait
            knee = np.abs(_chan(seq, "torques_rajagopal", f"knee_angle_{side}")).max()
            assert 0.3 < knee < 1.5, (seq.name, side, knee)
            hip = np.abs(_chan(seq, "torques_rajagopal", f"hip_flexion_{side}")).max()
            assert 0.4 < hip < 2.0, (seq.name, side, hip)
        # Rajagopal's convention: knee flexion positive (gait2354's own is negative: flipped)
        assert _chan(seq, "joint_angles", "knee_angle_r").max() > 1.0


def test_grf_is_body_weight_normalised(quick):
    for seq in quick.values():
        for side in ("r", "l"):
            fy = _chan(seq, "grf", f"{side}_fy")
            assert 0.9 < fy.max() < 1.4, (seq.name, side, fy.max())
            copx = _chan(seq, "grf", f"{side}_copx")
            loaded = fy > 0.1
            assert np.isfinite(copx[loaded]).all()
            assert np.isnan(copx[fy * seq.subject.mass_kg * reps.G < 20.0]).all()
            assert np.nanmax(np.abs(copx)) < 0.6  # CoP within a step of the pelvis


def test_gait2354_matches_opensim_reference_id(quick):
    seq = quick["gait2354_s01_walk1"]
    table = osim.TimeSeriesTable(str(REFERENCE_ID))
    labels = list(table.getColumnLabels())
    ref = table.getMatrix().to_numpy()
    ref_t = np.asarray(table.getIndependentColumn())
    t = seq.meta["t0_s"] + np.arange(seq.frames) / seq.rate
    sel = (t >= ref_t[0]) & (t <= ref_t[-1])
    assert sel.sum() > 60
    flip = lab_real.SUBJECTS["gait2354_s01"].flip_sign
    for joint in ("hip_flexion", "knee_angle", "ankle_angle"):
        for side in ("r", "l"):
            name = f"{joint}_{side}"
            sign = -1.0 if name in flip else 1.0
            expect = sign * np.interp(t[sel], ref_t, ref[:, labels.index(f"{name}_moment")])
            got = _chan(seq, "torques_rajagopal", name)[sel] * seq.subject.mass_kg
            r = np.corrcoef(expect, got)[0, 1]
            assert r > 0.9, (name, r)
            rmse = np.sqrt(np.mean((expect - got) ** 2)) / seq.subject.mass_kg
            assert rmse < 0.1, (name, rmse)  # N·m/kg


def test_semg_is_real_and_peak_normalised(quick):
    seq = quick["rajagopal_s1_walk"]
    semg = seq.data["semg"]
    assert set(seq.names["semg"]) <= set(reps.MUSCLES)
    assert "soleus_r" in seq.names["semg"] and len(seq.names["semg"]) == 10
    assert semg.min() >= 0.0 and semg.max() <= 1.0 + 1e-6
    # soleus fires in late right stance: its envelope peaks while the right foot is loaded
    peak = np.argmax(_chan(seq, "semg", "soleus_r"))
    assert _chan(seq, "grf", "r_fy")[peak] > 0.3


def test_augmented_copy_is_consistent(quick, augmented):
    orig, aug = quick["rajagopal_s1_walk"], augmented
    k = 1.05
    assert aug.meta["split"] == "train"
    base = lab_real.SUBJECTS["rajagopal_s1"].mass_kg
    assert aug.subject.mass_kg == pytest.approx(base * k**3, rel=1e-3)
    assert aug.meta["ik_marker_rms_m"]["mean"] < 0.03
    assert "IK re-run" in aug.meta["markers_source"]
    # mirror: the left leg of the copy does what the right leg of the original did; Froude
    # scaling multiplies torque per kg by k
    for a, b in (("ankle_angle_l", "ankle_angle_r"), ("knee_angle_l", "knee_angle_r")):
        peak_aug = np.abs(_chan(aug, "torques_rajagopal", a)).max()
        peak_orig = np.abs(_chan(orig, "torques_rajagopal", b)).max()
        assert peak_aug == pytest.approx(k * peak_orig, rel=0.1), (a, peak_aug, peak_orig)
    # lateral coordinates change sign under the mirror
    assert np.sign(_chan(aug, "joint_angles", "pelvis_tz").mean()) == -np.sign(
        _chan(orig, "joint_angles", "pelvis_tz").mean())
    assert all(n.endswith("_l") for n in aug.names["semg"])


def test_bad_inputs_raise(monkeypatch, tmp_path):
    with pytest.raises(HdysError, match="unknown subject"):
        write_job(lab_real, {"subject": "nobody", "name": "x"}, tmp_path)
    with pytest.raises(HdysError, match="held-out test data"):
        write_job(lab_real, lab_real._job("gait2354_s01", "x", 0, mirror=True), tmp_path)
    with pytest.raises(HdysError, match="speed"):
        write_job(lab_real, lab_real._job("rajagopal_s1", "x", 0, speed=3.0), tmp_path)
    monkeypatch.setenv(lab_real.ENV_DATA, str(tmp_path / "missing"))
    with pytest.raises(HdysError, match=lab_real.ENV_DATA):
        lab_real.shared_data_root()


@pytest.mark.slow
def test_static_optimization_is_cached(monkeypatch, tmp_path):
    """Static optimisation on a 0.1 s window: activations in 0..1, a rebuild loads the cache."""
    import dataclasses

    spec = dataclasses.replace(lab_real.SUBJECTS["rajagopal_s1"], window=(0.50, 0.60))
    monkeypatch.setitem(lab_real.SUBJECTS, "rajagopal_s1", spec)
    job = lab_real._job("rajagopal_s1", "so_test", 0, static_optimization=True)
    job["cache_dir"] = str(tmp_path / "cache")
    write_job(lab_real, job, tmp_path / "a")
    cached = list((tmp_path / "cache" / lab_real.DOMAIN).glob("so_*.npz"))
    assert len(cached) == 1
    first = read_sequence(tmp_path / "a" / "so_test.json")
    write_job(lab_real, job, tmp_path / "b")
    second = read_sequence(tmp_path / "b" / "so_test.json")
    assert second.meta["build_seconds"] < first.meta["build_seconds"]
    act = first.data["activations"]
    assert first.names["activations"] == reps.MUSCLES
    assert act.shape == (11, 80) and np.isfinite(act).all()
    assert act.min() >= 0.0 and act.max() <= 1.0 + 1e-6
    np.testing.assert_array_equal(act, second.data["activations"])
    # mid-stance of the right leg: gluteus medius works, the swing-phase tibialis anterior rests
    assert _chan(first, "activations", "glmed1_r").mean() > _chan(first, "activations",
                                                                  "tibant_r").mean()
