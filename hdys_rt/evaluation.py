"""Evaluation on held-out PERSONS: per task and big joint beside two baselines (the headline),
and the older per-domain mPJE figures.

Per task x joint (:func:`evaluate_tasks`; the split comes from
:func:`hdys_rt.training.data.assign_splits`, the one place that decides splits):

* torques of the big sagittal joints (:data:`BIG_JOINTS`), N·m/kg: MAE, RMSE, Pearson r (pooled
  over the task's frames) and the lag at the peaks, ms (:func:`xcorr_lag_ms`: the shift that
  maximises the cross-correlation, median over trials; positive = the estimate is late);
* total vertical GRF (sum of both feet): RMSE in %BW, peak error in % of the reference peak
  (mean |error| over trials) and, over the flight frames (reference total < :data:`FLIGHT_BW`),
  the fraction where the estimate is under :data:`FLIGHT_BW` too;
* each beside two baselines on the same frames: zero (torque 0 N·m/kg, force 0 BW) and the
  training mean curve (:func:`mean_curve`: the mean over the TRAINING trials of the same task,
  each time-normalised over the whole trial, stretched to the test trial's length), and
  skill = 1 - MAE / MAE(zero); the GRF also beside Newton on the markers (``motion``:
  :func:`motion_load`, 1 + a_y/g of their centroid, causal, as the model's motion features
  see it).

Per domain (:func:`evaluate`, pooled over every valid value of the split's frames):

* joint torques (``torques_*``): mPJE, the mean absolute per-joint error, N·m/kg; per joint too;
* ``activations``, ``semg``: RMSE (0..1 units); per channel too;
* ``grf``: RMSE of the force components in %BW (``value``), and of the centre of pressure in m
  (``cop_rmse_m``); per channel too.
"""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from hdys_rt import representations as reps
from hdys_rt.model.hdys import HDyS, history_of, motion_features
from hdys_rt.model.mirror import OutputMirror, mirror_input
from hdys_rt.errors import HdysError
from hdys_rt.training.data import CorpusData, SeqArrays, scan

log = logging.getLogger(__name__)

CHUNK = 1024  # frames per offline forward (attention is banded; chunks overlap by the field)


def metric_name(key: str) -> str:
    if reps.is_torque(key):
        return "mPJE"
    if key == "grf":
        return "RMSE_%BW"
    return "RMSE"


class Accumulator:
    """Sums of |error| and error^2 per channel for one output."""

    def __init__(self, key: str):
        self.key = key
        C = reps.get(key).size
        self.abs, self.sq, self.n = np.zeros(C), np.zeros(C), np.zeros(C)

    def add(self, pred: np.ndarray, true: np.ndarray):
        ok = np.isfinite(true) & np.isfinite(pred)
        err = np.where(ok, pred - true, 0.0)
        self.abs += np.abs(err).sum(0)
        self.sq += (err ** 2).sum(0)
        self.n += ok.sum(0)

    def result(self) -> dict:
        chans = reps.get(self.key).channels
        have = self.n > 0
        per = {}
        for i, c in enumerate(chans):
            if have[i]:
                per[c] = (self.abs[i] / self.n[i]) if reps.is_torque(self.key) else \
                    float(np.sqrt(self.sq[i] / self.n[i]))
        out = {"metric": metric_name(self.key), "values": int(self.n.sum()), "per_channel": {}}
        if reps.is_torque(self.key):
            out["value"] = float(self.abs[have].sum() / self.n[have].sum()) if have.any() else None
            out["unit"] = "N·m/kg"
        elif self.key == "grf":
            force = np.array([reps.is_force(c) for c in chans]) & have
            cop = np.array(["_cop" in c for c in chans]) & have
            out["value"] = (float(100 * np.sqrt(self.sq[force].sum() / self.n[force].sum()))
                            if force.any() else None)
            out["unit"] = "%BW"
            out["cop_rmse_m"] = (float(np.sqrt(self.sq[cop].sum() / self.n[cop].sum()))
                                 if cop.any() else None)
            per = {c: (100 * v if reps.is_force(c) else v) for c, v in per.items()}
        else:
            out["value"] = (float(np.sqrt(self.sq[have].sum() / self.n[have].sum()))
                            if have.any() else None)
            out["unit"] = "1"
        out["per_channel"] = {c: round(float(v), 5) for c, v in per.items()}
        return out


def predict_sequence(model: HDyS, key: str, x: np.ndarray,
                     mirror: bool = False) -> dict[str, np.ndarray]:
    """Offline causal (or bidirectional) prediction over a whole sequence.

    x: (T, P, 3) points or (T, C) canonical vector, NaN = missing -> output name -> (T, C).
    ``mirror``: average with the estimates of the mirror image (:mod:`hdys_rt.model.mirror`;
    the model's metadata says whether it should: ``mirror.averages(meta)``).
    """
    own = _forward_sequence(model, key, x)
    image = mirror_input(key, x) if mirror else None
    if image is None:
        return own
    return OutputMirror(model.cfg.dyn_outputs).named(own, _forward_sequence(model, key, image))


@torch.no_grad()
def _forward_sequence(model: HDyS, key: str, x: np.ndarray) -> dict[str, np.ndarray]:
    cfg = model.cfg
    field = cfg.dec_layers * (cfg.window - 1)  # frames that influence an output frame
    T = x.shape[0]
    point = reps.get(key).point_set
    mask = np.isfinite(x).all(-1) if point else np.isfinite(x)
    xv = np.where(mask[..., None] if point else mask, x, 0.0).astype(np.float32)
    outs = {k: np.zeros((T, reps.get(k).size), np.float32) for k in cfg.dyn_outputs}
    dev = next(model.parameters()).device
    for start in range(0, T, CHUNK):
        lo = max(0, start - field)
        hi = min(T, start + CHUNK + (0 if cfg.causal else field))
        xt = torch.from_numpy(xv[lo:hi]).unsqueeze(0).to(dev)
        mt = torch.from_numpy(mask[lo:hi]).unsqueeze(0).to(dev)
        pred = model.predict(key, xt, mt)
        keep = slice(start - lo, start - lo + min(CHUNK, T - start))
        for k, v in pred.items():
            outs[k][start:start + min(CHUNK, T - start)] = v[0, keep].cpu().numpy()
    return outs


def evaluate(model: HDyS, data_dir: str | Path, split: str | None = "test",
             inputs: list[str] | None = None, domains: list[str] | None = None,
             rate: float = 100.0, holdout_lab: str | None = None,
             holdout_persons: list[str] | None = None, progress=None,
             mirror: bool = False) -> dict:
    """Evaluate ``model`` on a corpus split (the person split, or leave ``holdout_lab`` and
    ``holdout_persons`` out);
    returns {domain: {input: {output: result}}}. ``progress(iterable, desc)`` wraps each
    domain's sequences (a progress bar; None: none); ``mirror``: see :func:`predict_sequence`."""
    data = CorpusData(data_dir, rate=rate, split=split, domains=domains,
                      max_points=model.cfg.max_points, holdout_lab=holdout_lab,
                      holdout_persons=holdout_persons)
    inputs = list(inputs or model.cfg.kin_inputs)
    report: dict = {}
    for dom, items in data.seqs.items():
        acc: dict[str, dict[str, Accumulator]] = {}
        frames: dict[str, int] = {}
        for s in (progress or _no_progress)(items, dom):
            for key in inputs:
                if key not in s.data or key not in model.cfg.kin_inputs:
                    continue
                targets = [k for k in model.cfg.dyn_outputs if k in s.data]
                if not targets:
                    continue
                pred = predict_sequence(model, key, s.data[key], mirror)
                frames[key] = frames.get(key, 0) + s.frames
                for k in targets:
                    acc.setdefault(key, {}).setdefault(k, Accumulator(k)).add(pred[k], s.data[k])
        if acc:
            report[dom] = {key: {"frames": frames[key],
                                 **{k: a.result() for k, a in outs.items()}}
                           for key, outs in acc.items()}
    return report


def _no_progress(items, desc):
    return items


def format_report(report: dict) -> str:
    """Markdown table of a report: domain | input | output | metric | value."""
    lines = ["| domain | input | output | metric | value | frames |", "|---|---|---|---|---|---|"]
    for dom, by_in in report.items():
        for key, outs in by_in.items():
            for k, r in outs.items():
                if k == "frames":
                    continue
                v = r.get("value")
                lines.append(f"| {dom} | {key} | {k} | {r['metric']} | "
                             f"{'-' if v is None else f'{v:.4f}'} | {outs['frames']} |")
    return "\n".join(lines)


# --- per task and big joint, beside baselines -------------------------------------------------

#: Tasks reported, in this order (``meta["task"]`` of the real-lab sequences).
TASKS = ("walk", "run", "jump", "sit_to_stand", "squat")
#: The sagittal joints a controller needs, torques_rajagopal channel names.
BIG_JOINTS = ("hip_flexion_r", "hip_flexion_l", "knee_angle_r", "knee_angle_l",
              "ankle_angle_r", "ankle_angle_l")
#: Total vertical GRF below this (body weights) is flight.
FLIGHT_BW = 0.1
#: Largest lag searched by :func:`xcorr_lag_ms`, s.
MAX_LAG_S = 0.25
#: Samples of a time-normalised trial (0..100 % of the trial).
CURVE_POINTS = 101
#: The task of every trial of a domain whose sequences carry no ``meta["task"]``.
DOMAIN_TASKS = {"lab_real": "walk"}
#: The baselines, in table order.
PREDICTORS = ("model", "zero", "mean_curve")
#: the vertical GRF has one more: Newton on the input's points (:func:`motion_load`)
GRF_PREDICTORS = PREDICTORS + ("motion",)


def task_of(seq: SeqArrays) -> str | None:
    """The sequence's task: ``meta["task"]``, else its domain's (:data:`DOMAIN_TASKS`)."""
    return seq.task or DOMAIN_TASKS.get(seq.domain)


def mae(pred: np.ndarray, ref: np.ndarray) -> float:
    """Mean absolute error over paired values (same unit as the inputs)."""
    return float(np.mean(np.abs(pred - ref)))


def rmse(pred: np.ndarray, ref: np.ndarray) -> float:
    """Root-mean-square error over paired values (same unit as the inputs)."""
    return float(np.sqrt(np.mean((pred - ref) ** 2)))


def pearson_r(pred: np.ndarray, ref: np.ndarray) -> float | None:
    """Pearson correlation of two (T,) signals; None when either is constant (e.g. zero)."""
    a, b = pred - pred.mean(), ref - ref.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 1e-12 else None


def xcorr_lag_ms(pred: np.ndarray, ref: np.ndarray, rate: float,
                 max_lag_s: float = MAX_LAG_S) -> float | None:
    """Lag of ``pred`` behind ``ref`` in ms: the shift k (frames, |k| <= max_lag_s * rate) that
    maximises the Pearson correlation of ``pred[t + k]`` with ``ref[t]`` (positive: the
    estimate's peaks come late). None when no shift leaves a non-constant overlap of >= 8
    frames. Inputs: (T,) finite values at ``rate`` Hz."""
    T = len(ref)
    K = min(int(round(max_lag_s * rate)), T - 8)
    best, lag = -np.inf, None
    for k in range(-K, K + 1) if K >= 0 else ():
        r = pearson_r(pred[max(k, 0):T + min(k, 0)], ref[max(-k, 0):T - max(k, 0)])
        if r is not None and r > best:
            best, lag = r, k
    return None if lag is None else 1000.0 * lag / rate


def total_vertical_grf(grf: np.ndarray) -> np.ndarray:
    """(T, 10) canonical GRF (GRF_CHANNELS, forces in BW) -> (T,) r_fy + l_fy in BW. A foot's
    NaN counts as 0 BW (the corpora store NaN below ~20 N) when that foot carries a value
    somewhere in the trial; a trial with neither foot is all NaN."""
    chans = reps.get("grf").channels
    out = np.zeros(grf.shape[0])
    have = False
    for c in ("r_fy", "l_fy"):
        v = grf[:, chans.index(c)].astype(np.float64)
        if np.isfinite(v).any():
            out += np.nan_to_num(v, nan=0.0)
            have = True
    return out if have else np.full(grf.shape[0], np.nan)


def motion_load(points: np.ndarray, rate: float) -> np.ndarray:
    """Newton on the markers: the total vertical GRF (body weights) that the vertical
    acceleration of their centroid implies, 1 + a_y/g, causal: the model's own motion feature
    (:func:`~hdys_rt.model.hdys.motion_features`, frames t, t-2, t-4). points (T, P, 3) metres,
    NaN = missing -> (T,); one body weight where it cannot be computed (the first 4 frames)."""
    mask = torch.from_numpy(np.isfinite(points).all(-1))[None]
    pts = torch.from_numpy(np.nan_to_num(points).astype(np.float32))[None]
    f = motion_features(pts[0], mask[0], history_of(pts, mask)[0], rate).numpy()
    return np.where(f[:, 7] > 0, 1.0 + f[:, 5], 1.0).astype(np.float64)


def peak_error_pct(pred: np.ndarray, ref: np.ndarray) -> float | None:
    """100 * (max pred - max ref) / max ref, % of the reference peak (None if it is <= 0)."""
    top = float(np.max(ref))
    return 100.0 * (float(np.max(pred)) - top) / top if top > 0 else None


def flight_under(pred: np.ndarray, ref: np.ndarray, bw: float = FLIGHT_BW) -> tuple[int, int]:
    """(flight frames, those where the estimate is under ``bw`` too): flight is the reference
    total vertical force (BW) under ``bw``."""
    fl = ref < bw
    return int(fl.sum()), int((fl & (pred < bw)).sum())


def time_normalise(x: np.ndarray, points: int = CURVE_POINTS) -> np.ndarray:
    """(T, C) -> (points, C) linear interpolation over 0..100 % of the trial (NaN kept)."""
    T = x.shape[0]
    pos = np.linspace(0.0, T - 1, points)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, T - 1)
    w = (pos - i0)[:, None]
    return (1 - w) * x[i0] + w * x[i1]


def mean_curve(trials: list[np.ndarray], points: int = CURVE_POINTS) -> np.ndarray:
    """The mean of time-normalised trials: list of (T_i, C) -> (points, C); NaN where no trial
    has a value."""
    stack = np.stack([time_normalise(np.asarray(t, np.float64), points) for t in trials])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(stack, 0)


def stretch(curve: np.ndarray, T: int) -> np.ndarray:
    """(points, C) time-normalised curve -> (T, C) over a trial of T frames."""
    return time_normalise(curve, T)


def skill(mae_model: float, mae_zero: float) -> float | None:
    """1 - MAE / MAE(zero baseline): 0 = no better than zero, 1 = perfect."""
    return 1.0 - mae_model / mae_zero if mae_zero > 0 else None


class _Pool:
    """Per-trial (estimate, reference) pairs of one signal for each predictor."""

    def __init__(self, predictors: tuple[str, ...] = PREDICTORS):
        self.predictors = predictors
        self.pairs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {p: [] for p in predictors}

    def add(self, predictor: str, pred: np.ndarray, ref: np.ndarray) -> None:
        self.pairs[predictor].append((pred, ref))

    def _cat(self, predictor):
        pp = self.pairs[predictor]
        return (np.concatenate([a for a, _ in pp]), np.concatenate([b for _, b in pp])) \
            if pp else (None, None)

    def torque(self, rate: float) -> dict:
        """{predictor: {mae, rmse, r, lag_ms, frames} | None}, skill and skill of the mean
        curve; N·m/kg and ms."""
        out = {}
        for p in self.predictors:
            a, b = self._cat(p)
            if a is None:
                out[p] = None
                continue
            lags = [x for x in (xcorr_lag_ms(u, v, rate) for u, v in self.pairs[p])
                    if x is not None]
            out[p] = {"mae": mae(a, b), "rmse": rmse(a, b), "r": pearson_r(a, b),
                      "lag_ms": float(np.median(lags)) if lags else None, "frames": len(a)}
        if out["model"] and out["zero"]:
            out["skill"] = skill(out["model"]["mae"], out["zero"]["mae"])
            out["skill_mean_curve"] = (skill(out["mean_curve"]["mae"], out["zero"]["mae"])
                                       if out["mean_curve"] else None)
        return out

    def grf(self) -> dict:
        """{predictor: {rmse_pct_bw, peak_err_pct, flight_frames, flight_under_pct}}."""
        out = {}
        for p in self.predictors:
            a, b = self._cat(p)
            if a is None:
                out[p] = None
                continue
            peaks = [x for x in (peak_error_pct(u, v) for u, v in self.pairs[p])
                     if x is not None]
            n, under = flight_under(a, b)
            out[p] = {"rmse_pct_bw": 100.0 * rmse(a, b),
                      "peak_err_pct": float(np.mean(np.abs(peaks))) if peaks else None,
                      "flight_frames": n, "flight_under_pct": 100.0 * under / n if n else None,
                      "frames": len(a)}
        return out


def _mean_curves(train: CorpusData | None) -> dict[str, dict]:
    """task -> {"torques": (points, 17), "grf": (points,) total vertical BW, "trials": n} from
    the training side's trials (time-normalised per trial)."""
    out: dict[str, dict] = {}
    if train is None:
        return out
    by_task: dict[str, list[SeqArrays]] = {}
    for items in train.seqs.values():
        for s in items:
            t = task_of(s)
            if t is not None:
                by_task.setdefault(t, []).append(s)
    for t, seqs in by_task.items():
        entry = {"trials": len(seqs), "persons": sorted({s.person for s in seqs})}
        tq = [s.data["torques_rajagopal"] for s in seqs if "torques_rajagopal" in s.data]
        if tq:
            entry["torques"] = mean_curve(tq)
        g = [total_vertical_grf(s.data["grf"])[:, None] for s in seqs if "grf" in s.data]
        g = [x for x in g if np.isfinite(x).any()]
        if g:
            entry["grf"] = mean_curve(g)[:, 0]
        out[t] = entry
    return out


def _folds(data_dir, domains, holdout_labs) -> list[str | None]:
    """None (the person split) or the labs held out in turn (``["each"]``: every lab)."""
    if not holdout_labs:
        return [None]
    if list(holdout_labs) == ["each"]:
        return sorted({i.lab for i in scan(data_dir, domains)})
    return list(holdout_labs)


def evaluate_tasks(model: HDyS, data_dir: str | Path, split: str | None = "test",
                   domains: list[str] | None = None, rate: float = 100.0,
                   input_key: str = "markers", holdout_labs: list[str] | None = None,
                   holdout_persons: list[str] | None = None, progress=None,
                   mirror: bool = False) -> dict:
    """The per task x big joint report (see the module doc) of ``model`` on ``data_dir``.

    ``split``: 'test' (held-out persons), 'train' or None (all); ``holdout_labs``: leave-one-
    lab-out folds (their test sides pooled; ``["each"]`` = every lab in turn) and/or
    ``holdout_persons`` (these persons test, in every fold) instead of the person split. Mean
    curves always come from the fold's TRAINING side. Sequences with no task (:func:`task_of`)
    are left out. Returns ``{"scope": {...}, "tasks": {task: {...}}}``.
    ``progress(iterable, desc)`` wraps each domain's sequences (a progress bar; None: none);
    ``mirror``: see :func:`predict_sequence`.
    """
    if input_key not in model.cfg.kin_inputs:
        raise HdysError(f"input {input_key!r} is not one this model takes "
                        f"({list(model.cfg.kin_inputs)})")
    pools: dict[str, dict] = {}
    scope = {"split": split or "all", "holdout_labs": list(holdout_labs or []) or None,
             "holdout_persons": list(holdout_persons or []) or None, "mirror_average": mirror,
             "input": input_key, "rate_hz": rate, "folds": []}
    keys = (input_key, "torques_rajagopal", "grf")
    for lab in _folds(data_dir, domains, holdout_labs):
        test = CorpusData(data_dir, rate=rate, split=split, domains=domains, keys=keys,
                          max_points=model.cfg.max_points, holdout_lab=lab,
                          holdout_persons=holdout_persons)
        try:
            train = CorpusData(data_dir, rate=rate, split="train", domains=domains,
                               keys=("torques_rajagopal", "grf"), holdout_lab=lab,
                               holdout_persons=holdout_persons)
        except HdysError:  # nothing on the training side (e.g. one lab only)
            train = None
        curves = _mean_curves(train)
        fold = {"holdout_lab": lab, "test_persons": set(), "train_persons": sorted(
            {s.person for items in (train.seqs.values() if train else ()) for s in items})}
        for dom, items in test.seqs.items():
            for s in (progress or _no_progress)(items, f"{lab or 'tasks'} {dom}"):
                task = task_of(s)
                if task is None or input_key not in s.data:
                    continue
                have = [k for k in ("torques_rajagopal", "grf") if k in s.data]
                if not have:
                    continue
                fold["test_persons"].add(s.person)
                x = s.data[input_key]
                _add_trial(pools.setdefault(task, _new_task()), s, task, curves,
                           predict_sequence(model, input_key, x, mirror),
                           motion_load(x, rate) if reps.get(input_key).point_set else None)
        fold["test_persons"] = sorted(fold["test_persons"])
        shared = set(fold["test_persons"]) & set(fold["train_persons"])
        if shared:  # only with split train / all: the mean curves saw the evaluated persons
            fold["note"] = (f"persons {sorted(shared)} are evaluated AND in the mean curves "
                            f"(split {split or 'all'}): the baseline is optimistic")
        scope["folds"].append(fold)
    tasks = {}
    for task in sorted(pools, key=lambda t: (TASKS.index(t) if t in TASKS else len(TASKS), t)):
        p = pools[task]
        tasks[task] = {
            "trials": p["trials"], "frames": p["frames"], "persons": sorted(p["persons"]),
            "labs": sorted(p["labs"]), "mean_curve_trials": p["mean_curve_trials"],
            "torques": {j: p["joints"][j].torque(rate) for j in BIG_JOINTS
                        if p["joints"][j].pairs["model"]},
            "grf_vertical": p["grf"].grf() if p["grf"].pairs["model"] else None,
        }
    return {"scope": scope, "tasks": tasks}


def _new_task() -> dict:
    return {"trials": 0, "frames": 0, "persons": set(), "labs": set(), "mean_curve_trials": 0,
            "joints": {j: _Pool() for j in BIG_JOINTS}, "grf": _Pool(GRF_PREDICTORS)}


def _add_trial(pool: dict, s: SeqArrays, task: str, curves: dict, pred: dict,
               load: np.ndarray | None = None) -> None:
    """Pairs of one test trial for the model and the baselines, on the same valid frames;
    ``load``: :func:`motion_load` of the trial's input (point inputs)."""
    T = s.frames
    curve = curves.get(task, {})
    pool["trials"] += 1
    pool["frames"] += T
    pool["persons"].add(s.person)
    pool["labs"].add(s.lab)
    if curve:
        pool["mean_curve_trials"] = max(pool["mean_curve_trials"], curve["trials"])
    chans = reps.get("torques_rajagopal").channels
    if "torques_rajagopal" in s.data and "torques_rajagopal" in pred:
        mc = stretch(curve["torques"], T) if "torques" in curve else None
        for j in BIG_JOINTS:
            c = chans.index(j)
            ref, est = s.data["torques_rajagopal"][:, c], pred["torques_rajagopal"][:, c]
            ok = np.isfinite(ref) & np.isfinite(est)
            if ok.sum() < 2:
                continue
            jp = pool["joints"][j]
            jp.add("model", est[ok].astype(np.float64), ref[ok].astype(np.float64))
            jp.add("zero", np.zeros(int(ok.sum())), ref[ok].astype(np.float64))
            if mc is not None and np.isfinite(mc[ok, c]).all():
                jp.add("mean_curve", mc[ok, c], ref[ok].astype(np.float64))
    if "grf" in s.data and "grf" in pred:
        ref, est = total_vertical_grf(s.data["grf"]), total_vertical_grf(pred["grf"])
        ok = np.isfinite(ref) & np.isfinite(est)
        if ok.sum() >= 2:
            pool["grf"].add("model", est[ok], ref[ok])
            pool["grf"].add("zero", np.zeros(int(ok.sum())), ref[ok])
            if "grf" in curve:
                pool["grf"].add("mean_curve", stretch(curve["grf"][:, None], T)[ok, 0], ref[ok])
        if load is not None:
            pool["grf"].add("motion", load[ok], ref[ok])


def _f(v, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def format_task_report(rep: dict) -> str:
    """Markdown tables of :func:`evaluate_tasks`: torques (task x joint rows; model / zero /
    mean-curve columns) and total vertical GRF (task rows)."""
    lines = ["Joint torques (N·m/kg; lag: cross-correlation, ms, + = late; skill = 1 - MAE/MAE(zero))",
             "",
             "| task | joint | MAE model | MAE zero | MAE mean-curve | RMSE model | RMSE zero | "
             "RMSE mean-curve | r model | r mean-curve | lag model | lag mean-curve | skill | "
             "skill mean-curve |",
             "|---" * 14 + "|"]
    for task, t in rep["tasks"].items():
        for j, m in t["torques"].items():
            mo, ze, mc = m["model"], m["zero"], m["mean_curve"] or {}
            lines.append(
                f"| {task} | {j} | {_f(mo['mae'])} | {_f(ze['mae'])} | {_f(mc.get('mae'))} | "
                f"{_f(mo['rmse'])} | {_f(ze['rmse'])} | {_f(mc.get('rmse'))} | {_f(mo['r'], '.2f')} | "
                f"{_f(mc.get('r'), '.2f')} | {_f(mo['lag_ms'], '.0f')} | "
                f"{_f(mc.get('lag_ms'), '.0f')} | {_f(m.get('skill'), '.2f')} | "
                f"{_f(m.get('skill_mean_curve'), '.2f')} |")
    lines += ["", f"Total vertical GRF (both feet; flight: reference < {FLIGHT_BW} BW)", "",
              "| task | RMSE %BW model | zero | mean-curve | motion | peak err % model | "
              "mean-curve | motion | flight frames | under 0.1 BW % model | mean-curve | motion |",
              "|---" * 12 + "|"]
    for task, t in rep["tasks"].items():
        g = t["grf_vertical"]
        if not g:
            continue
        mo, ze = g["model"], g["zero"]
        mc, nw = g["mean_curve"] or {}, g.get("motion") or {}
        lines.append(f"| {task} | {_f(mo['rmse_pct_bw'], '.1f')} | {_f(ze['rmse_pct_bw'], '.1f')}"
                     f" | {_f(mc.get('rmse_pct_bw'), '.1f')} | {_f(nw.get('rmse_pct_bw'), '.1f')} | "
                     f"{_f(mo['peak_err_pct'], '.1f')} | {_f(mc.get('peak_err_pct'), '.1f')} | "
                     f"{_f(nw.get('peak_err_pct'), '.1f')} | {mo['flight_frames']} | "
                     f"{_f(mo['flight_under_pct'], '.0f')} | {_f(mc.get('flight_under_pct'), '.0f')} | "
                     f"{_f(nw.get('flight_under_pct'), '.0f')} |")
    lines += ["", "| task | trials | frames | persons | labs | mean-curve from (training trials) |",
              "|---" * 6 + "|"]
    for task, t in rep["tasks"].items():
        lines.append(f"| {task} | {t['trials']} | {t['frames']} | {', '.join(t['persons'])} | "
                     f"{', '.join(t['labs'])} | {t['mean_curve_trials'] or 'none of this task'} |")
    return "\n".join(lines)
