"""real_labs domain: real recordings of ../shared/data/real through the generic OpenSim chain,
checked in physical units (body weights, N·m/kg, metres) on one trial of each kind."""

import time

import numpy as np
import pytest

from hdys_rt import representations as reps
from hdys_rt.data.build import write_job
from hdys_rt.data.corpus import read_sequence
from hdys_rt.data.labs import chain
from hdys_rt.data.labs import plates as pl
from hdys_rt.data.labs.catalog import C3D_GRF
from hdys_rt.errors import HdysError

TQ = reps.RAJAGOPAL_TORQUE_JOINTS


# --- plates (no OpenSim, no data) ------------------------------------------------------------


def test_find_plates_reads_the_three_naming_schemes():
    labels = ["ground_force_1_vx", "ground_force_1_vy", "ground_force_1_vz", "ground_force_1_px",
              "ground_force_1_py", "ground_force_1_pz", "ground_force_1_mx", "ground_force_1_my",
              "ground_force_1_mz", "R_ground_force_vx", "R_ground_force_vy", "R_ground_force_vz",
              "R_ground_force_px", "R_ground_force_py", "R_ground_force_pz", "R_ground_torque_x",
              "R_ground_torque_y", "R_ground_torque_z", "1_ground_force_vx", "1_ground_force_vy",
              "1_ground_force_vz", "1_ground_force_px", "1_ground_force_py", "1_ground_force_pz"]
    found = pl.find_plates(labels)
    assert [p.force for p in found] == [(0, 1, 2), (9, 10, 11), (18, 19, 20)]
    assert [p.torque for p in found] == [(6, 7, 8), (15, 16, 17), None]
    with pytest.raises(HdysError, match="no force plate columns"):
        pl.find_plates(["time", "pelvis_tx"])


def test_foot_loads_recover_the_centre_of_pressure_after_summing_plates():
    T = 5
    F = np.zeros((2, T, 3))
    P = np.zeros((2, T, 3))
    Tq = np.zeros((2, T, 3))
    F[0, :, 1], F[1, :, 1] = 300.0, 100.0  # two plates under one foot
    F[0, :, 0] = 40.0
    P[0, :, :] = [1.0, 0.01, 0.2]
    P[1, :, :] = [1.4, 0.01, 0.2]
    Tq[0, :, 1] = 3.0  # free moment
    mask = np.zeros((2, T, 2), dtype=bool)
    mask[:, :, 0] = True
    loads = pl.foot_loads(F, P, Tq, mask)
    assert np.allclose(loads[:, 0, 1], 400.0) and np.allclose(loads[:, 1], 0.0)
    cop = pl.centre_of_pressure(loads, 0.01, 20.0)
    assert np.allclose(cop[:, 0, 0], (1.0 * 300 + 1.4 * 100) / 400)  # force-weighted CoP
    assert np.allclose(cop[:, 0, 2], 0.2)
    assert np.isnan(cop[:, 1]).all()  # the unloaded foot has no CoP


def test_stances_extend_to_where_the_force_vanishes():
    fy = np.array([0, 0.5, 5, 30, 80, 30, 10, 0.2, 0, 50, 60, 0.0])
    assert pl.stances(fy) == [(2, 7), (9, 11)]


# --- the chain on real data -------------------------------------------------------------------

osim = pytest.importorskip("opensim", reason="real_labs needs the opensim package")
real_labs = pytest.importorskip("hdys_rt.data.domains.real_labs")
try:
    REAL = real_labs.real_root()
except HdysError as exc:  # pragma: no cover - depends on the checkout
    pytest.skip(f"shared data not found ({exc})", allow_module_level=True)


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    """The quick plan built into a fresh corpus folder with a fresh cache."""
    out = tmp_path_factory.mktemp("real_labs")
    cache = tmp_path_factory.mktemp("real_labs_cache")
    seqs = {}
    for job in real_labs.plan(0, quick=True):
        job["cache_dir"] = str(cache)
        for name in write_job(real_labs, job, out):
            seqs[name] = read_sequence(out / f"{name}.json")
    return seqs, cache


def _tq(seq, joint):
    return seq.data["torques_rajagopal"][:, seq.names["torques_rajagopal"].index(joint)]


def _grf(seq, ch):
    return seq.data["grf"][:, reps.GRF_CHANNELS.index(ch)]


def _gates_hold(seq):
    q = seq.meta["quality"]
    g = q["gates"]
    assert 0 < q["marker_rmse_m"] <= g["marker_rmse_m"]
    assert 0 < q["residual_force_pct_bw"] <= g["residual_force_pct_bw"]
    assert 0 < q["residual_moment_pct_bwh"] <= g["residual_moment_pct_bwh"]


def test_plan_covers_every_folder_with_a_model_and_shares_the_opencap_person():
    full = real_labs.plan(0, quick=False)
    assert real_labs.plan(0, quick=False) == full
    grf_only = [j for j in full if "c3d" in j]
    assert {j["c3d"]["name"] for j in grf_only} == {f"c3d__{k}" for k in C3D_GRF}
    full = [j for j in full if "trial" in j]
    folders = {j["trial"]["folder"] for j in full}
    assert folders == {"opencap_subject4", "opencap_unfiltered", "camargo_levelground",
                       "hamner_subject01", "hamner_subject02", "hamner_subject04",
                       "dorn_sprint_ja1"}
    person = {j["trial"]["folder"]: j["trial"]["person"] for j in full}
    assert person["opencap_subject4"] == person["opencap_unfiltered"] == "opencap_s4"
    assert len(set(person.values())) == 6
    tasks = {j["trial"]["task"] for j in full}
    assert tasks == {"walk", "run", "jump", "sit_to_stand", "squat"}
    quick = [j for j in real_labs.plan(0, quick=True) if "trial" in j]
    assert sorted(j["trial"]["task"] for j in quick) == sorted(
        ["walk", "jump", "sit_to_stand", "squat", "run"])


def test_quick_plan_keeps_every_trial_and_meta_names_task_person_lab(quick):
    seqs, _ = quick
    assert set(seqs) == set(real_labs.QUICK)
    for seq in seqs.values():
        assert seq.meta["task"] in ("walk", "run", "jump", "sit_to_stand", "squat")
        assert seq.meta["lab"] and seq.meta["person"] == seq.subject.id
        if seq.meta.get("grf_only"):
            continue
        _gates_hold(seq)
        assert seq.names["torques_rajagopal"] == TQ
        assert seq.data["markers"].shape[2] == 3 and seq.frames > 50
    assert seqs["opencap_unfiltered__DJ1"].meta["person"] == \
        seqs["opencap_subject4__walking1"].meta["person"]


def test_walking_opencap(quick):
    seq = quick[0]["opencap_subject4__walking1"]
    assert seq.rate == 100.0 and seq.meta["task"] == "walk"
    fy = _grf(seq, "r_fy") + _grf(seq, "l_fy")
    assert 1.1 <= fy.max() <= 1.4  # BW: walking's double-hump peak
    assert abs(fy.mean() - 1.0) < 0.06  # the plates weigh the model's mass
    assert seq.meta["torques_masked"] == []  # the LaiArnold model has every Rajagopal joint
    assert np.isfinite(seq.data["torques_rajagopal"]).all()
    assert -1.8 <= _tq(seq, "ankle_angle_r").min() <= -1.0  # push-off plantarflexion, N·m/kg
    assert 0.5 <= _tq(seq, "hip_flexion_r").max() <= 1.2
    # sides: the right foot's CoP is to the right (+z in OpenSim's ground) of the left one
    assert np.nanmean(_grf(seq, "r_copz")) > np.nanmean(_grf(seq, "l_copz")) + 0.05
    # markers in metres, Y up: the pelvis markers about 1 m above the floor
    names = seq.names["markers"]
    asis = seq.data["markers"][:, names.index("r.ASIS")]
    assert 0.8 < np.nanmean(asis[:, 1]) < 1.2


def test_running_hamner(quick):
    seq = quick[0]["hamner_subject01__run200"]
    assert seq.meta["task"] == "run" and seq.meta["knee_sign_flipped"]
    assert seq.meta["quality"]["plate_delay_s"] == 0.0075  # the plates' clock, fitted in flight
    fy = _grf(seq, "r_fy") + _grf(seq, "l_fy")
    assert 2.0 <= fy.max() <= 3.0  # BW
    flight = (_grf(seq, "r_fy") < 0.03) & (_grf(seq, "l_fy") < 0.03)
    assert flight.mean() > 0.05 and np.abs(fy[flight]).max() < 0.05  # a 2 m/s jog still flies
    stance = _grf(seq, "r_fy") > 1.0
    knee = _tq(seq, "knee_angle_r")  # Rajagopal sign: extension moment < 0
    assert -3.5 <= knee[stance].min() <= -1.5
    assert -3.5 <= _tq(seq, "ankle_angle_r")[stance].min() <= -2.0
    # the Hamner model locks subtalar and mtp: masked with NaN, the rest present
    assert set(seq.meta["torques_masked"]) == {"subtalar_angle_r", "mtp_angle_r",
                                               "subtalar_angle_l", "mtp_angle_l"}
    assert np.isnan(_tq(seq, "mtp_angle_r")).all()
    assert np.isnan(seq.data["joint_angles"][:, reps.RAJAGOPAL_COORDINATES.index("mtp_angle_r")]
                    ).all()
    assert np.isfinite(_tq(seq, "hip_flexion_l")).all()


def test_drop_jump_and_sit_to_stand_opencap(quick):
    dj = quick[0]["opencap_unfiltered__DJ1"]
    fy = _grf(dj, "r_fy") + _grf(dj, "l_fy")
    assert 2.0 <= fy.max() <= 4.0  # landing peak, BW
    assert dj.meta["cutoff_hz"] == 12.0
    sts = quick[0]["opencap_subject4__STS1"]
    fy = _grf(sts, "r_fy") + _grf(sts, "l_fy")
    assert 0.8 <= fy.max() <= 1.5
    knee = 0.5 * (_tq(sts, "knee_angle_r") + _tq(sts, "knee_angle_l"))
    assert -1.3 <= knee.min() <= -0.5  # knee extension moment rising from the chair


def test_rebuild_reads_the_cache(quick):
    seqs, cache = quick
    job = next(j for j in real_labs.plan(0, quick=True)
               if j["trial"]["trial"] == "walking1")
    job["cache_dir"] = str(cache)
    t0 = time.perf_counter()
    (seq,) = list(real_labs.sequences(job))
    assert time.perf_counter() - t0 < 0.5 * seqs["opencap_subject4__walking1"].meta[
        "build_seconds"] + 0.2
    assert np.array_equal(seq.data["grf"], seqs["opencap_subject4__walking1"].data["grf"],
                          equal_nan=True)


def test_plate_delay_recovers_a_shift_only_where_the_trial_flies():
    t = np.arange(300) / 100.0
    fy = np.clip(np.sin(2 * np.pi * 2.8 * t), 0, None) * 1800.0  # N: stance humps and flight
    need = np.interp(t + 0.012, t, fy)  # the kinematics need the force 12 ms later
    d, before, after = chain.plate_delay(t, fy, need - fy, np.ones(t.size, bool))
    assert d == 0.0125 and after < 0.3 * before  # quarter-frame steps
    walk = 700.0 + 100.0 * np.sin(2 * np.pi * t)  # never leaves the ground: not fitted
    assert chain.plate_delay(t, walk, np.interp(t + 0.012, t, walk) - walk,
                             np.ones(t.size, bool))[0] == 0.0


def test_zero_coded_markers_are_missing():
    xyz = np.ones((4, 2, 3))
    xyz[:, 1] = 0.0
    out = chain.missing_as_nan(xyz)
    assert np.isnan(out[:, 1]).all() and np.isfinite(out[:, 0]).all()


def _one(name, tmp_path):
    from hdys_rt.data.labs.catalog import trials

    (t,) = [t for t in trials(REAL) if t.name == name]
    try:
        return chain.process(t, REAL, tmp_path, "real_labs")
    except chain.Dropped as exc:
        pytest.fail(f"{name} dropped: {exc.reason}")


@pytest.mark.slow
def test_hamner_subject02_markers_fit_once_zeros_are_missing(tmp_path):
    seq, rep = _one("hamner_subject02__running", tmp_path)
    assert rep["marker_rmse_m"] < 0.03  # was 0.25 m with L.Bicep's zeros read as positions
    assert seq.meta["cutoff_hz"] == 8.0 and rep["residual_force_pct_bw"] < 25.0
    fy = _grf(seq, "r_fy") + _grf(seq, "l_fy")
    assert 2.0 <= fy.max() <= 3.0  # running at ~4 m/s, 8 Hz


@pytest.mark.slow
def test_hamner_subject04_scaled_per_segment_from_the_dynamic_trial(tmp_path):
    seq, rep = _one("hamner_subject04__run200", tmp_path)
    assert rep["marker_rmse_m"] < 0.02  # uniform scaling gave 5.2 cm
    assert "scaled per segment" in seq.meta["processing"]
    assert abs(seq.subject.mass_kg - 80.47) < 0.05
    stance = _grf(seq, "r_fy") > 1.0
    assert -3.5 <= _tq(seq, "knee_angle_r")[stance].min() <= -1.0


def test_grf_only_c3d(quick):
    seq = quick[0]["c3d__btk_PiG_Motion3_FF"]
    assert seq.meta["grf_only"] and seq.subject.mass_kg == 74.0  # PROCESSING:Bodymass
    assert np.isnan(seq.data["torques_rajagopal"]).all()
    fy = _grf(seq, "r_fy") + _grf(seq, "l_fy")
    assert 1.0 <= fy.max() <= 1.4  # walking peak, BW
    assert {a["side"] for a in seq.meta["plate_assignment"]} == {"r", "l"}
    names = seq.names["markers"]
    heel = seq.data["markers"][:, names.index("R.Heel"), 1]
    assert 0.0 < np.nanmedian(heel) < 0.15  # metres, Y up
    # the right foot's load is applied where its heel and toe are (the CoP lies under it)
    r = _grf(seq, "r_fy") > 0.5
    assert r.any()


def test_missing_raw_folder_fails_in_one_line(tmp_path, monkeypatch):
    from hdys_rt.data.shared import use_raw_dir

    with pytest.raises(HdysError, match="--raw .*no such folder"):
        use_raw_dir(tmp_path / "absent")
    monkeypatch.setenv("HDYS_SHARED_DATA", str(tmp_path))
    with pytest.raises(HdysError, match="real/ comes from .*nimblephysics"):
        real_labs.check_inputs()
