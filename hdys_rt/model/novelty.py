"""Per-frame novelty: how far a frame's encoder latent is from the training frames' latents, so
that a controller can tell "I have not seen this motion".

The score of a frame of input ``k`` (markers, keypoints, ...) is the squared Mahalanobis distance
of its encoder latent ``z`` (D,) per latent dimension, ``|W (z - mu)|^2 / D``
(:class:`~hdys_rt.model.hdys.NoveltyScore`, computed inside every engine's step). A frame is
*novel* when its score exceeds the input's threshold (``novelty_threshold`` in the model's
JSON); the wire format flags it (``novel``, :data:`hdys_rt.wire.FLAGS`).

Calibration (:func:`calibrate_model`; from a corpus, rewriting a model's files:
:func:`hdys_rt.training.novelty.calibrate`, ``hdys-rt calibrate``; ``hdys-rt train`` runs it at
the end) fits ``mu``, ``W`` and the threshold from the latents of the training-side frames:

* the covariance is shrunk toward a scaled identity, ``(1 - a) S + a (tr S / D) I`` plus a small
  ridge (``ridge * tr S / D``); ``a`` is chosen by cross-validation over groups of frames
  (persons, else sequences, else contiguous blocks): the value of :data:`SHRINKAGE_GRID` whose
  fits give the held-out groups the highest Gaussian likelihood. Consecutive frames are
  correlated and D is not small against the frames of a few persons, so the sample covariance
  alone overfits: unseen persons' ordinary frames then score far above the training frames;
* the threshold is the ``percentile`` of the OUT-OF-GROUP scores (each group scored by the fit
  on the other groups), not of the in-sample ones, for the same reason. (The report also gives
  ``threshold_median_of_groups``, the median over the groups of each group's percentile: lower
  when one unusual person or a fit on few frames inflates the pooled one, but on a population
  of similar persons it flags 9-40 % of a new person's frames where the pooled one flags 0-2 %
  (synthetic persons, tests/test_novelty.py); hence not the default);
* ``W`` is the eigen-whitening of the shrunk covariance fitted on all frames.

An input with fewer than ``MIN_FRAMES_PER_DIM * D`` frames is left uncalibrated (a warning).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

log = logging.getLogger(__name__)

#: an input needs at least this many frames per latent dimension to be calibrated
MIN_FRAMES_PER_DIM = 10
#: shrinkage values tried by the cross-validation
SHRINKAGE_GRID = (0.0, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95)
FOLDS = 5         # at most this many cross-validation folds (groups of frames)
BLOCKS = 5        # contiguous blocks a single group of frames is cut into
CHUNK = 512       # frames encoded at once


def threshold_of(meta: dict, input_kind: str) -> float:
    """The novelty threshold of ``input_kind`` in a model's metadata (NaN: none)."""
    v = (meta.get("novelty_threshold") or {}).get(input_kind)
    return float(v) if isinstance(v, (int, float)) else float("nan")


def is_novel(score: float, threshold: float) -> bool:
    """Whether a score is above the threshold (False when either is NaN)."""
    return bool(score > threshold)


# --- the statistics ------------------------------------------------------------------------

@dataclass(frozen=True)
class Fit:
    """A fitted whitening: ``mu`` (D,), ``w`` (D, D) and what was chosen."""

    mu: np.ndarray
    w: np.ndarray
    shrinkage: float
    ridge: float


def _moments(z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """z (N, D) -> mean (D,), eigenvalues (D,) and eigenvectors (D, D) of the covariance, and
    its mean variance tr S / D."""
    mu = z.mean(0)
    c = z - mu
    S = c.T @ c / len(z)
    lam, V = np.linalg.eigh(S)
    return mu, np.clip(lam, 0.0, None), V, float(np.trace(S)) / z.shape[1]


def _eig(lam: np.ndarray, m: float, a: float, ridge: float) -> np.ndarray:
    """Eigenvalues of the shrunk covariance (same eigenvectors as S)."""
    return (1.0 - a) * lam + (a + ridge) * max(m, 1e-12)


def _scores(z, mu, V, e) -> np.ndarray:
    y = (z - mu) @ V  # (N, D) in the eigenbasis
    return (y * y / e).mean(1)


def _folds(groups: np.ndarray) -> list[np.ndarray]:
    """Boolean held-out masks: the distinct groups dealt into at most :data:`FOLDS` folds
    (largest first, each to the fold with the fewest frames); a single group is cut into
    :data:`BLOCKS` contiguous blocks."""
    names, counts = np.unique(groups, return_counts=True)
    if len(names) < 2:
        idx = np.arange(len(groups)) * BLOCKS // len(groups)
        return [idx == b for b in range(BLOCKS)]
    k = min(FOLDS, len(names))
    load, member = [0] * k, {}
    for i in np.argsort(-counts, kind="stable"):
        f = int(np.argmin(load))
        member[names[i]] = f
        load[f] += counts[i]
    fold = np.array([member[g] for g in groups])
    return [fold == f for f in range(k)]


def fit(z: np.ndarray, groups: np.ndarray | None = None, percentile: float = 99.0,
        ridge: float = 1e-3, shrinkage: float | None = None) -> tuple[Fit, dict]:
    """Fit the whitening of latents ``z`` (N, D) and the threshold.

    ``groups`` (N,): the group of every frame (person or sequence), frames of a group in time
    order; ``shrinkage`` None: chosen by cross-validation over the groups (see the module doc),
    else that value. Returns the fit and a report: the threshold (``percentile`` of the
    out-of-group scores), the shrinkage, the median and percentile of the in-sample and
    out-of-group scores, frames and groups."""
    z = np.asarray(z, np.float64)
    N, D = z.shape
    groups = np.zeros(N, np.int64) if groups is None else np.asarray(groups)
    folds = _folds(groups)
    held = []  # per fold: (held-out latents, fold mean, eigenvectors, eigenvalues, mean var)
    for ho in folds:
        if ho.all() or not ho.any():
            continue
        mu_f, lam_f, V_f, m_f = _moments(z[~ho])
        held.append((z[ho], mu_f, V_f, lam_f, m_f, groups[ho]))
    grid = SHRINKAGE_GRID if shrinkage is None else (float(shrinkage),)
    best, best_ll = grid[0], -np.inf
    for a in grid:
        ll = 0.0
        for zh, mu_f, V_f, lam_f, m_f, _ in held:
            e = _eig(lam_f, m_f, a, ridge)
            ll += float(-0.5 * (len(zh) * np.log(e).sum()
                                + D * _scores(zh, mu_f, V_f, e).sum()))
        if ll > best_ll:
            best, best_ll = a, ll
    oof = np.concatenate([_scores(zh, mu_f, V_f, _eig(lam_f, m_f, best, ridge))
                          for zh, mu_f, V_f, lam_f, m_f, _ in held])
    oof_groups = np.concatenate([gh for *_, gh in held])
    if len(np.unique(oof_groups)) < 2:  # one group cut into blocks: the blocks count
        oof_groups = np.concatenate([np.full(len(h[0]), i) for i, h in enumerate(held)])
    per_group = [float(np.percentile(oof[oof_groups == g], percentile))
                 for g in np.unique(oof_groups)]
    mu, lam, V, m = _moments(z)
    e = _eig(lam, m, best, ridge)
    w = (V / np.sqrt(e)).T  # (D, D): rows = eigenvectors / sqrt(eigenvalue)
    ins = _scores(z, mu, V, e)
    report = {"threshold": float(np.percentile(oof, percentile)), "percentile": percentile,
              "threshold_median_of_groups": float(np.median(per_group)),
              "shrinkage": best, "ridge": ridge, "frames": int(N),
              "groups": int(len(np.unique(groups))), "folds": len(held),
              "in_sample_median": float(np.median(ins)),
              "in_sample_p": float(np.percentile(ins, percentile)),
              "held_out_median": float(np.median(oof))}
    return Fit(mu, w, best, ridge), report


# --- a model's latents ---------------------------------------------------------------------

@torch.no_grad()
def sequence_latents(model, key: str, x: np.ndarray) -> np.ndarray:
    """The encoder latents of one sequence of input ``key`` as the live step computes them:
    x (T, P, 3) points or (T, C) vector, NaN = missing -> (T, D)."""
    from hdys_rt import representations as reps
    from hdys_rt.model.hdys import HISTORY

    point = reps.get(key).point_set
    mask = np.isfinite(x).all(-1) if point else np.isfinite(x)
    xv = np.where(mask[..., None] if point else mask, x, 0.0).astype(np.float32)
    dev = next(model.parameters()).device
    out, T = [], x.shape[0]
    for start in range(0, T, CHUNK):
        lo = max(0, start - HISTORY)  # the motion features' previous frames
        hi = min(T, start + CHUNK)
        z, _ = model.encode_kin(key, torch.from_numpy(xv[lo:hi])[None].to(dev),
                                torch.from_numpy(mask[lo:hi])[None].to(dev))
        out.append(z[0, start - lo:].double().cpu().numpy())
    return np.concatenate(out)


def score_sequence(model, key: str, x: np.ndarray) -> np.ndarray:
    """Novelty scores (T,) of one sequence (NaN where the model is not calibrated)."""
    z = torch.from_numpy(sequence_latents(model, key, x)).float()
    return model.novelty[key].to("cpu")(z).numpy()


def calibrate_model(model, seqs, percentile: float = 99.0, ridge: float = 1e-3,
                    shrinkage: float | None = None) -> dict:
    """Calibrate ``model``'s novelty scores in place from sequences (``SeqArrays`` with
    ``data`` at the model rate, ``person``): every kinematic input with enough frames.
    Returns input -> report (:func:`fit`); inputs skipped are absent (a warning says why)."""
    model.eval()
    D = model.cfg.latent
    reports = {}
    for key in model.cfg.kin_inputs:
        zs, groups = [], []
        for s in seqs:
            if key in s.data:
                zs.append(sequence_latents(model, key, s.data[key]))
                groups += [s.person or s.name] * s.frames
        n = sum(len(z) for z in zs)
        if n < MIN_FRAMES_PER_DIM * D:
            if n:
                log.warning("novelty: %s has %d calibration frames, fewer than %d (%d per latent "
                            "dimension): left uncalibrated", key, n, MIN_FRAMES_PER_DIM * D,
                            MIN_FRAMES_PER_DIM)
            continue
        if len(set(groups)) < 2:
            log.warning("novelty: %s frames come from one person: the threshold is set on "
                        "held-out blocks of time, not on unseen persons", key)
        f, rep = fit(np.concatenate(zs), np.asarray(groups), percentile, ridge, shrinkage)
        nov = model.novelty[key]
        nov.mu.copy_(torch.from_numpy(f.mu).to(nov.mu))
        nov.w.copy_(torch.from_numpy(f.w).to(nov.w))
        reports[key] = rep
        log.info("novelty: %s calibrated on %d frames of %d groups: shrinkage %g, threshold "
                 "%.3g (held-out median %.3g)", key, n, rep["groups"], rep["shrinkage"],
                 rep["threshold"], rep["held_out_median"])
    return reports


def metadata(reports: dict, tasks=None) -> dict:
    """The model-JSON entries of a calibration: ``novelty_threshold`` (input -> threshold) and
    ``novelty_calibration`` (input -> report, and the tasks used)."""
    return {"novelty_threshold": {k: r["threshold"] for k, r in reports.items()},
            "novelty_calibration": {"tasks": list(tasks) if tasks else None, **reports}}


__all__ = ["threshold_of", "is_novel", "fit", "Fit", "sequence_latents",
           "score_sequence", "calibrate_model", "metadata"]
