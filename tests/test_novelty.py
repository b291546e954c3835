"""The per-frame novelty score: calibration (whitening, threshold on held-out persons), models
saved before it, a motion outside training, the wire field and flag, and the estimate files."""

import json

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from hdys_rt import wire
from hdys_rt.bridges.estimate import estimate_recording, write_estimates
from hdys_rt.cli import main
from hdys_rt.client import Subscriber
from hdys_rt.data.corpus import Sequence, Subject, write_domain_info, write_sequence
from hdys_rt.data.recording import Recording
from hdys_rt.model.config import ModelConfig
from hdys_rt.model.hdys import HDyS
from hdys_rt.model.io import load_model, read_metadata, save_model, sha256
from hdys_rt.model.novelty import (MIN_FRAMES_PER_DIM, calibrate_model, fit, sequence_latents,
                                   threshold_of)
from hdys_rt.model.streaming import StreamingEstimator
from hdys_rt.training.data import SeqArrays

TINY = ModelConfig(latent=32, point_dim=32, point_layers=1, point_heads=2, vec_hidden=64,
                   dec_layers=1, dec_heads=2, dec_ff=64, window=8, max_points=64)
WALKS = ("walk0", "walk1", "walk2", "walk3")


def _seqs(motions, names=WALKS):
    return [SeqArrays(k, "test", k, 70.0, {"markers": motions[k]}, len(motions[k]), person=k,
                      task="walk") for k in names]


def _live_scores(model_path, xyz):
    """Novelty of every frame through the streaming estimator (the live path)."""
    est = StreamingEstimator.load(model_path)
    out = []
    for f in xyz:
        est.step(f)
        out.append(est.novelty)
    return np.array(out)


def test_calibration_whitens_the_calibration_latents(motions):
    """Without shrinkage or ridge the whitened calibration latents have covariance I (score
    mean 1); with the chosen shrinkage no whitened direction has variance above 1."""
    torch.manual_seed(0)
    model = HDyS(TINY).eval()
    seqs = _seqs(motions)
    calibrate_model(model, seqs, shrinkage=0.0, ridge=0.0)
    z = np.concatenate([sequence_latents(model, "markers", s.data["markers"]) for s in seqs])
    nov = model.novelty["markers"]
    y = (z - nov.mu.double().numpy()) @ nov.w.double().numpy().T
    np.testing.assert_allclose(y.mean(0), 0.0, atol=1e-4)
    np.testing.assert_allclose(np.cov(y.T, bias=True), np.eye(TINY.latent), atol=1e-3)
    rep = calibrate_model(model, seqs)["markers"]
    assert 0.0 <= rep["shrinkage"] <= 1.0 and rep["groups"] == 4 and rep["folds"] == 4
    nov = model.novelty["markers"]
    y = (z - nov.mu.double().numpy()) @ nov.w.double().numpy().T
    assert np.linalg.eigvalsh(np.cov(y.T, bias=True)).max() <= 1.0 + 1e-3


def test_threshold_is_set_on_held_out_persons_not_in_sample():
    """Persons offset from each other: the sample covariance fits the calibration frames
    tightly, unseen persons score far higher. The threshold comes from held-out persons, so a
    new person of the same population is rarely flagged; the in-sample percentile would flag
    most of them."""
    rng = np.random.default_rng(0)
    D, persons = 16, 8
    def person():  # correlated frames around a person-specific offset
        off = rng.normal(0, 1.0, D)
        walk = np.cumsum(rng.normal(0, 0.3, (200, D)), 0) * 0.1
        return off + walk + rng.normal(0, 0.2, (200, D))
    z = np.concatenate([person() for _ in range(persons)])
    groups = np.repeat(np.arange(persons), 200)
    f, rep = fit(z, groups, percentile=99.0)
    new = np.concatenate([person() for _ in range(6)])
    y = (new - f.mu) @ f.w.T
    flagged = np.mean((y * y).mean(1) > rep["threshold"])
    assert rep["threshold"] > rep["in_sample_p"]
    assert flagged < 0.1
    f0, rep0 = fit(z, groups, shrinkage=0.0)
    y0 = (new - f0.mu) @ f0.w.T
    assert np.mean((y0 * y0).mean(1) > rep0["in_sample_p"]) > 0.3  # what this design avoids


def test_motion_outside_training_scores_higher_than_unseen_walking(calibrated_model_path,
                                                                   motions):
    thr = threshold_of(read_metadata(calibrated_model_path), "markers")
    assert np.isfinite(thr)
    walk = _live_scores(calibrated_model_path, motions["walk_unseen"])
    jump = _live_scores(calibrated_model_path, motions["jump"])
    assert np.isfinite(walk).all() and np.isfinite(jump).all()
    assert np.median(jump) > 5 * np.median(walk)
    assert np.mean(walk > thr) < 0.05  # an unseen person's walking: hardly ever flagged
    assert np.mean(jump > thr) > 0.9   # a motion never calibrated on: flagged


def test_uncalibrated_and_old_model_files_give_nan_and_no_flag(model_path, gait, tmp_path):
    """A model without calibration (NaN buffers), and one saved before novelty existed (no
    novelty tensors at all), load and score NaN, never 'novel'."""
    old = tmp_path / "old"
    save_model(load_model(model_path)[0], old, rate=100.0)
    weights = old.with_suffix(".safetensors")
    state = {k: v for k, v in load_file(str(weights)).items() if not k.startswith("novelty.")}
    save_file(state, str(weights))
    meta = json.loads(old.with_suffix(".json").read_text())
    meta["weights_sha256"] = sha256(weights)
    old.with_suffix(".json").write_text(json.dumps(meta))
    for path in (model_path, old):
        m, meta = load_model(path)
        assert torch.isnan(m.novelty["markers"].mu).all()
        assert np.isnan(threshold_of(meta, "markers"))
        rec = Recording(gait.names, gait.rate, None, gait.xyz[:20])
        est = estimate_recording(rec, model=path)
        assert np.isnan(est.novelty).all() and not est.novel.any()
        doc = json.loads(write_estimates(tmp_path / "e.json", est).read_text())
        assert doc["novelty"] == [None] * 20 and doc["novel"] == [False] * 20
        assert doc["novelty_threshold"] is None


def test_estimate_files_carry_the_novelty(calibrated_model_path, motions, gait, tmp_path):
    xyz = np.concatenate([motions["walk_unseen"][:40], motions["jump"][40:80]])
    rec = Recording(gait.names, gait.rate, None, xyz)
    est = estimate_recording(rec, model=calibrated_model_path)
    np.testing.assert_allclose(est.novelty, _live_scores(calibrated_model_path, xyz), rtol=1e-5)
    assert est.novel.sum() > 20 and not est.novel[:40].any()
    lines = write_estimates(tmp_path / "e.csv", est).read_text().splitlines()
    head = lines[0].split(",")
    assert head[-2:] == ["novelty", "novel"]
    rows = [r.split(",") for r in lines[1:]]
    np.testing.assert_allclose([float(r[-2]) for r in rows], est.novelty, rtol=1e-6)
    assert [r[-1] == "1" for r in rows] == est.novel.tolist()


def test_wire_round_trip_of_novelty_and_flag():
    payload = wire.encode_estimate("s", 1, 7, 1.0, 1.1, 1.2, {"grf": np.zeros(2)},
                                   wire.FLAGS["novel"], 41, [], 0, 0, {}, novelty=3.25)
    msg = wire.decode_output(payload)
    assert msg["q"]["novelty"] == 3.25 and wire.flag_names(msg["q"]["flags"]) == ["novel"]
    assert len(set(wire.FLAGS.values())) == len(wire.FLAGS)  # one bit each
    sub = Subscriber.__new__(Subscriber)  # its decoder only (no socket)
    sub.streams, sub.metas = None, {}
    est = sub._decode([wire.TOPIC_EST, payload], 2.0)
    assert est.novelty == 3.25 and est.flag_names == ["novel"]
    plain = wire.encode_estimate("s", 1, 8, 1.0, 1.1, 1.2, {}, 0, 41, [], 0, 0, {})
    assert np.isnan(wire.decode_output(plain)["q"]["novelty"])
    assert np.isnan(sub._decode([wire.TOPIC_EST, plain], 2.0).novelty)


def test_calibrate_command_rewrites_the_model(model_path, motions, gait, tmp_path, capsys):
    """``hdys-rt calibrate`` on a corpus' training side, walking only: thresholds and buffers
    written, the model still loads (hash updated); too few frames: a warning, not an error."""
    root = tmp_path / "corpus"
    names = {"markers": tuple(gait.names)}
    for k in (*WALKS, "jump"):
        task = "jump" if k == "jump" else "walk"
        write_domain_info(root / "lab", "lab", "real", "test")
        write_sequence(root / "lab", Sequence(
            k, "lab", 100.0, Subject(k, 70.0, 1.7), "test", {"markers": motions[k]}, names,
            {"person": k, "task": task, "split": "train"}))
    stem = tmp_path / "m"
    save_model(load_model(model_path)[0], stem, rate=100.0, extra={"eval": {"kept": 1}})
    assert main(["calibrate", "--model", str(stem), "--data", str(root), "--tasks", "walk",
                 "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert set(rep) == {"markers"} and rep["markers"]["frames"] == 4 * len(motions["walk0"])
    m, meta = load_model(stem)
    assert meta["eval"] == {"kept": 1} and meta["novelty_calibration"]["tasks"] == ["walk"]
    assert meta["novelty_threshold"]["markers"] == rep["markers"]["threshold"]
    assert torch.isfinite(m.novelty["markers"].w).all()
    assert main(["calibrate", "--model", str(stem), "--data", str(root), "--tasks", "run"]) == 1
    assert "no training-side sequences" in capsys.readouterr().err
    assert main(["calibrate", "--model", str(stem), "--data", str(root),
                 "--percentile", "100"]) == 1
    assert "--percentile must be in (0, 100)" in capsys.readouterr().err


def test_too_few_frames_leave_an_input_uncalibrated(motions, caplog):
    torch.manual_seed(0)
    model = HDyS(TINY).eval()
    short = [SeqArrays("w", "test", "w", 70.0, {"markers": motions["walk0"][:100]}, 100,
                       person="w")]
    assert 100 < MIN_FRAMES_PER_DIM * TINY.latent
    assert calibrate_model(model, short) == {}
    assert "left uncalibrated" in caplog.text
    assert torch.isnan(model.novelty["markers"].mu).all()
