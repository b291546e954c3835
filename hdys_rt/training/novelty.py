"""Calibrating a saved model's novelty score from a corpus (``hdys-rt calibrate``): the
training-side frames (the split ``hdys-rt train`` trains on) through
:func:`hdys_rt.model.novelty.calibrate_model`, written back into the model's files."""

from __future__ import annotations

import os

from hdys_rt.errors import HdysError
from hdys_rt.evaluation import task_of
from hdys_rt.model.io import _stem, load_model, save_model
from hdys_rt.model.novelty import MIN_FRAMES_PER_DIM, calibrate_model, metadata
from hdys_rt.training.data import CorpusData


def calibration_sequences(data_dir, rate: float, max_points: int, tasks=None,
                          holdout_lab=None, domains=None, holdout_persons=None) -> list:
    """The training-side sequences of a corpus (the split ``hdys-rt train`` trains on), only
    those of ``tasks`` when given (:func:`hdys_rt.evaluation.task_of`)."""
    data = CorpusData(data_dir, rate=rate, split="train", domains=domains,
                      max_points=max_points, holdout_lab=holdout_lab,
                      holdout_persons=holdout_persons)
    seqs = [s for items in data.seqs.values() for s in items
            if not tasks or task_of(s) in tasks]
    if not seqs:
        raise HdysError(f"corpus {data_dir}: no training-side sequences of tasks {list(tasks)}")
    return seqs


def calibrate(model_path: str | os.PathLike, data_dir, tasks=None, percentile: float = 99.0,
              ridge: float = 1e-3, shrinkage: float | None = None, holdout_lab=None,
              domains=None, holdout_persons=None) -> dict:
    """Calibrate a saved model from a corpus and rewrite its files (weights with ``mu``/``W``,
    JSON with the thresholds); returns the reports (:func:`calibrate_model`)."""
    if not 0.0 < percentile < 100.0:
        raise HdysError(f"--percentile must be in (0, 100), got {percentile}")
    if ridge < 0 or (shrinkage is not None and not 0.0 <= shrinkage <= 1.0):
        raise HdysError(f"--ridge must be >= 0 and --shrinkage in 0..1, got {ridge}, "
                        f"{shrinkage}")
    model, meta = load_model(model_path)
    seqs = calibration_sequences(data_dir, float(meta["rate"]), model.cfg.max_points, tasks,
                                 holdout_lab, domains, holdout_persons)
    reports = calibrate_model(model, seqs, percentile, ridge, shrinkage)
    if not reports:
        raise HdysError(f"corpus {data_dir}: no input has the {MIN_FRAMES_PER_DIM * model.cfg.latent}"
                        " frames needed to calibrate the novelty score")
    keep = {k: v for k, v in meta.items() if k not in (
        "format", "version", "config", "rate", "outputs", "units", "inputs", "weights_sha256",
        "novelty_threshold", "novelty_calibration")}
    save_model(model, _stem(model_path), rate=float(meta["rate"]),
               extra={**keep, **metadata(reports, tasks)})
    return reports


__all__ = ["calibrate", "calibration_sequences"]
