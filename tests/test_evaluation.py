"""Evaluation a lab would trust: the metrics on signals with known answers, the person split
(never a person on both sides; leave-one-lab-out), and the per task x joint report beside its
baselines on a small real corpus written to disk, with the tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hdys_rt import representations as reps
from hdys_rt.cli import main
from hdys_rt.data.corpus import Sequence, Subject, write_domain_info, write_sequence
from hdys_rt.errors import HdysError
from hdys_rt.evaluation import (BIG_JOINTS, evaluate_tasks, flight_under, mae, mean_curve,
                                motion_load, pearson_r, peak_error_pct, rmse, skill, stretch,
                                total_vertical_grf, xcorr_lag_ms)
from hdys_rt.model.io import load_model
from hdys_rt.training.data import CorpusData, assign_splits, scan

RATE = 100.0


# --- metrics on known signals ------------------------------------------------------------------

def test_shifted_sine_has_its_lag_and_known_errors():
    t = np.arange(300) / RATE
    ref = np.sin(2 * np.pi * 1.0 * t)
    late = np.sin(2 * np.pi * 1.0 * (t - 0.05))  # the estimate peaks 50 ms late
    assert xcorr_lag_ms(late, ref, RATE) == pytest.approx(50.0)
    assert xcorr_lag_ms(ref, late, RATE) == pytest.approx(-50.0)
    assert xcorr_lag_ms(ref, ref, RATE) == 0.0
    assert xcorr_lag_ms(np.zeros(300), ref, RATE) is None  # a constant has no peaks
    off = ref + 0.3
    assert mae(off, ref) == pytest.approx(0.3) and rmse(off, ref) == pytest.approx(0.3)
    assert pearson_r(off, ref) == pytest.approx(1.0)
    assert pearson_r(-ref, ref) == pytest.approx(-1.0)
    assert pearson_r(np.zeros(300), ref) is None
    # zero torque: MAE is the mean |reference| (2/pi of a sine's amplitude), skill 0
    zero_mae = mae(np.zeros(300), ref)
    assert zero_mae == pytest.approx(2 / np.pi, abs=5e-3)
    assert skill(zero_mae, zero_mae) == 0.0
    assert skill(0.0, zero_mae) == 1.0
    assert skill(2 * zero_mae, zero_mae) == pytest.approx(-1.0)


def test_vertical_grf_peak_and_flight():
    g = np.full((6, 10), np.nan, np.float32)
    chans = reps.get("grf").channels
    g[:, chans.index("r_fy")] = [1.0, 2.0, np.nan, np.nan, 0.5, 1.0]  # NaN: foot off (< 20 N)
    g[:3, chans.index("l_fy")] = [0.5, 0.5, 0.0]
    tot = total_vertical_grf(g)
    np.testing.assert_allclose(tot, [1.5, 2.5, 0.0, 0.0, 0.5, 1.0])
    assert np.isnan(total_vertical_grf(np.full((4, 10), np.nan))).all()  # no GRF at all
    assert peak_error_pct(tot * 0.8, tot) == pytest.approx(-20.0)
    pred = np.array([1.4, 2.0, 0.05, 0.9, 0.5, 1.0])
    assert flight_under(pred, tot) == (2, 1)  # two flight frames, one estimated < 0.1 BW


def test_mean_curve_is_time_normalised_per_trial():
    shape = lambda T: np.sin(np.linspace(0, np.pi, T))[:, None]  # noqa: E731
    curve = mean_curve([shape(50), 3 * shape(200)])  # same shape, two lengths
    np.testing.assert_allclose(curve[:, 0], 2 * shape(101)[:, 0], atol=1e-3)
    np.testing.assert_allclose(stretch(curve, 80)[:, 0], 2 * shape(80)[:, 0], atol=2e-3)


# --- the split -------------------------------------------------------------------------------

def _seq(name, domain, subject, meta, T=60, torque=None, grf=None, markers=None):
    data, names = {}, {}
    if markers is not None:
        data["markers"], names["markers"] = markers, tuple(f"m{i}" for i in
                                                           range(markers.shape[1]))
    if torque is not None:
        data["torques_rajagopal"], names["torques_rajagopal"] = torque, reps.get(
            "torques_rajagopal").channels
    if grf is not None:
        data["grf"], names["grf"] = grf, ("r_fy", "l_fy")
    if not data:
        data["torques_rajagopal"] = np.zeros((T, 1), np.float32)
        names["torques_rajagopal"] = ("knee_angle_r",)
    return Sequence(name, domain, RATE, Subject(subject, 70.0, 1.7), "test", data, names, meta)


def _write(root, seqs):
    for s in seqs:
        write_domain_info(root / s.domain, s.domain, "real", "test")
        write_sequence(root / s.domain, s)


def test_split_never_puts_a_person_on_both_sides(tmp_path):
    seqs = []
    for p in range(30):  # 30 persons, 3 trials each, spread over two domains and 3 labs
        for k in range(3):
            dom = "a" if k < 2 else "b"
            seqs.append(_seq(f"p{p}_t{k}", dom, f"subj{p}_{k}",  # subject ids differ per trial
                             {"person": f"person{p}", "lab": f"lab{p % 3}", "task": "walk"}))
    _write(tmp_path, seqs)
    infos = scan(tmp_path)
    sides = assign_splits(infos)
    by_person = {}
    for i in infos:
        by_person.setdefault(i.person, set()).add(sides[i.path])
    assert all(len(s) == 1 for s in by_person.values())
    assert {"train", "test"} == set().union(*by_person.values())
    # training and evaluation load through the same function: disjoint persons
    train, test = CorpusData(tmp_path, split="train"), CorpusData(tmp_path, split="test")
    persons = lambda d: {s.person for v in d.seqs.values() for s in v}  # noqa: E731
    assert persons(train) and persons(test) and not persons(train) & persons(test)
    assert len(persons(train)) + len(persons(test)) == 30
    # leave-one-lab-out: exactly lab1's persons test
    sides = assign_splits(infos, holdout_lab="lab1")
    assert {i.lab for i in infos if sides[i.path] == "test"} == {"lab1"}
    assert {i.lab for i in infos if sides[i.path] == "train"} == {"lab0", "lab2"}
    with pytest.raises(HdysError, match="no lab of these sequences.*lab0"):
        assign_splits(infos, holdout_lab="nowhere")
    # several labs held out at once (hdys-rt train --holdout-lab A --holdout-lab B)
    sides = assign_splits(infos, holdout_lab=["lab1", "lab2"])
    assert {i.lab for i in infos if sides[i.path] == "test"} == {"lab1", "lab2"}
    assert {i.lab for i in infos if sides[i.path] == "train"} == {"lab0"}


def test_holdout_person_tests_exactly_the_persons_named(tmp_path):
    # person0 in two folders (domains a and b, other subject ids) of lab0, which others share;
    # explicit meta.split is ignored as with --holdout-lab
    seqs = [_seq("p0_a", "a", "s0a", {"person": "person0", "lab": "lab0", "split": "train"}),
            _seq("p0_b", "b", "s0b", {"person": "person0", "lab": "lab0"}),
            _seq("p1_a", "a", "s1", {"person": "person1", "lab": "lab0", "split": "test"}),
            _seq("p2_a", "a", "s2", {"person": "person2", "lab": "lab1"}),
            _seq("p3_a", "b", "s3", {"lab": "lab1"})]  # no meta.person: the subject id
    _write(tmp_path, seqs)
    infos = scan(tmp_path)
    side = lambda sides: {i.name: sides[i.path] for i in infos}  # noqa: E731
    assert side(assign_splits(infos, holdout_persons=["person0", "s3"])) == {
        "p0_a": "test", "p0_b": "test", "p1_a": "train", "p2_a": "train", "p3_a": "test"}
    # with a held-out lab: its persons and the persons named test
    assert side(assign_splits(infos, holdout_lab="lab1", holdout_persons=["person0"])) == {
        "p0_a": "test", "p0_b": "test", "p1_a": "train", "p2_a": "test", "p3_a": "test"}
    with pytest.raises(HdysError, match="--holdout-person 'nobody' is no person of these "
                       "sequences; persons: .*'person0'"):
        assign_splits(infos, holdout_persons=["nobody"])
    # training and evaluation load through the same function
    test = CorpusData(tmp_path, split="test", holdout_persons=["person0"])
    train = CorpusData(tmp_path, split="train", holdout_persons=["person0"])
    persons = lambda d: {s.person for v in d.seqs.values() for s in v}  # noqa: E731
    assert persons(test) == {"person0"} and persons(train) == {"person1", "person2", "s3"}


def test_split_refuses_what_would_leak_a_person(tmp_path):
    _write(tmp_path, [_seq("x1", "a", "s1", {"person": "p", "split": "train"}),
                      _seq("x2", "b", "s2", {"person": "p", "split": "test"})])
    with pytest.raises(HdysError, match="person 'p': sequences name different splits"):
        CorpusData(tmp_path, split="train")
    # no meta.person: the subject id groups; one explicit split carries the whole person
    _write(tmp_path / "c2", [_seq("y1", "a", "s9", {"split": "test"}),
                             _seq("y2", "a", "s9", {})])
    sides = assign_splits(scan(tmp_path / "c2"))
    assert set(sides.values()) == {"test"}
    _write(tmp_path / "c3", [_seq("z1", "a", "s1", {"person": "q", "lab": "L1"}),
                             _seq("z2", "a", "s2", {"person": "q", "lab": "L2"})])
    with pytest.raises(HdysError, match="person 'q' has sequences in labs"):
        assign_splits(scan(tmp_path / "c3"), holdout_lab="L1")


# --- the report --------------------------------------------------------------------------------

def _trial(T, phase=0.0, amp=1.0):
    """(markers (T, 6, 3), torques (T, 17), grf (T, 2)): a 1-Hz cycle; the GRF has flight."""
    t = np.arange(T) / RATE
    rng = np.random.default_rng(T)
    base = rng.uniform(-0.3, 0.3, (6, 3)).astype(np.float32) + np.array([0, 1, 0], np.float32)
    mk = base[None] + 0.05 * np.sin(2 * np.pi * t + phase)[:, None, None].astype(np.float32)
    tq = np.zeros((T, 17), np.float32)
    for i in range(17):
        tq[:, i] = amp * np.sin(2 * np.pi * (t / (T / RATE)) + i)
    fz = np.clip(1.5 * np.sin(2 * np.pi * 2 * t), 0, None).astype(np.float32)  # half flight
    return mk, tq, np.stack([fz, np.full(T, np.nan, np.float32)], 1)


def test_report_per_task_beside_baselines(tmp_path, model_path):
    seqs = []
    for lab, person in (("L1", "ann"), ("L2", "bob")):
        for k, T in enumerate((120, 150)):
            mk, tq, g = _trial(T, phase=k)
            seqs.append(_seq(f"{person}_run{k}", "labs", person,
                             {"person": person, "lab": lab, "task": "run"},
                             markers=mk, torque=tq, grf=g))
    _write(tmp_path, seqs)
    model, _ = load_model(model_path)
    rep = evaluate_tasks(model, tmp_path, holdout_labs=["each"])
    assert [f["holdout_lab"] for f in rep["scope"]["folds"]] == ["L1", "L2"]
    assert rep["scope"]["folds"][0]["test_persons"] == ["ann"]
    assert rep["scope"]["folds"][0]["train_persons"] == ["bob"]
    run = rep["tasks"]["run"]
    assert run["trials"] == 4 and run["frames"] == 540 and run["persons"] == ["ann", "bob"]
    for j in BIG_JOINTS:
        m = run["torques"][j]
        # the other person's trials have the same curve per trial: the mean curve is exact
        assert m["mean_curve"]["mae"] < 0.01 and m["mean_curve"]["r"] > 0.999
        assert m["mean_curve"]["lag_ms"] == 0.0
        assert m["skill_mean_curve"] > 0.98
        ref = np.concatenate([s.data["torques_rajagopal"][:, reps.get(
            "torques_rajagopal").channels.index(j)] for s in seqs])
        assert m["zero"]["mae"] == pytest.approx(float(np.mean(np.abs(ref))), rel=1e-5)
        assert m["zero"]["r"] is None and m["zero"]["lag_ms"] is None
        assert m["skill"] == pytest.approx(1 - m["model"]["mae"] / m["zero"]["mae"])
        assert m["model"]["frames"] == m["zero"]["frames"] == m["mean_curve"]["frames"] == 540
    g = run["grf_vertical"]
    assert g["zero"]["flight_under_pct"] == 100.0  # zero force is under 0.1 BW in flight
    assert g["zero"]["flight_frames"] == g["model"]["flight_frames"] > 100
    assert g["zero"]["peak_err_pct"] == pytest.approx(100.0)
    # Newton on the markers: they bob 5 cm at 1 Hz, so the load swings 1 +- 0.2 BW
    load = np.concatenate([motion_load(s.data["markers"], RATE) for s in seqs])
    assert g["motion"]["frames"] == 540 and load.min() == pytest.approx(0.8, abs=0.01)
    assert load.max() == pytest.approx(1.2, abs=0.01)


def test_eval_command_prints_and_writes_the_table(tmp_path, model_path, capsys):
    seqs = []
    for lab, person in (("L1", "ann"), ("L2", "bob")):
        mk, tq, g = _trial(100)
        seqs.append(_seq(f"{person}_walk", "labs", person,
                         {"person": person, "lab": lab, "task": "walk"},
                         markers=mk, torque=tq, grf=g))
    _write(tmp_path / "c", seqs)
    out = tmp_path / "ev.json"
    assert main(["eval", "--model", model_path, "--data", str(tmp_path / "c"),
                 "--holdout-lab", "L2", "--json", str(out), "--per-domain"]) == 0
    text = capsys.readouterr().out
    assert "| walk | knee_angle_r |" in text and "MAE zero" in text and "mPJE" in text
    rep = json.loads(out.read_text())
    assert rep["scope"]["folds"][0]["test_persons"] == ["bob"]
    assert rep["tasks"]["walk"]["mean_curve_trials"] == 1
    assert rep["domains"]["L2"]["labs"]["markers"]["torques_rajagopal"]["metric"] == "mPJE"
    assert main(["eval", "--model", model_path, "--data", str(tmp_path / "c"),
                 "--holdout-lab", "L9"]) == 1
    assert "--holdout-lab 'L9' is no lab of these sequences" in capsys.readouterr().err
    assert main(["eval", "--model", model_path, "--data", str(tmp_path / "c"),
                 "--holdout-person", "ann", "--json", str(out)]) == 0
    rep = json.loads(out.read_text())
    assert rep["scope"]["holdout_persons"] == ["ann"]
    assert rep["scope"]["folds"][0]["test_persons"] == ["ann"]
    assert rep["scope"]["folds"][0]["train_persons"] == ["bob"]
    assert main(["eval", "--model", model_path, "--data", str(tmp_path / "c"),
                 "--holdout-person", "eve"]) == 1
    assert "--holdout-person 'eve' is no person of these sequences" in capsys.readouterr().err


def test_eval_shows_a_progress_bar_on_stderr_unless_asked_not_to(tmp_path, model_path, capsys):
    seqs = []
    for lab, person in (("L1", "ann"), ("L2", "bob")):
        mk, tq, g = _trial(100)
        seqs.append(_seq(f"{person}_walk", "labs", person,
                         {"person": person, "lab": lab, "task": "walk"},
                         markers=mk, torque=tq, grf=g))
    _write(tmp_path / "c", seqs)
    args = ["eval", "--model", model_path, "--data", str(tmp_path / "c"), "--holdout-lab", "L2",
            "--per-domain"]
    assert main(args) == 0
    err = capsys.readouterr().err
    assert "L2 labs:" in err and "0/1" in err and "trial/s" in err  # tqdm: desc, total, unit
    assert main(args + ["--no-progress"]) == 0
    assert "trial" not in capsys.readouterr().err
