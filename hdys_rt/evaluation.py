"""Evaluation: per domain, per kinematic input and per dynamic output, on held-out subjects.

Metrics (physical units, pooled over every valid value of the split's frames):

* joint torques (``torques_*``): mPJE, the mean absolute per-joint error, N·m/kg; per joint too;
* ``activations``, ``semg``: RMSE (0..1 units); per channel too;
* ``grf``: RMSE of the force components in %BW (``value``), and of the centre of pressure in m
  (``cop_rmse_m``); per channel too.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from hdys_rt import representations as reps
from hdys_rt.model.hdys import HDyS
from hdys_rt.training.data import CorpusData

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


@torch.no_grad()
def predict_sequence(model: HDyS, key: str, x: np.ndarray) -> dict[str, np.ndarray]:
    """Offline causal (or bidirectional) prediction over a whole sequence.

    x: (T, P, 3) points or (T, C) canonical vector, NaN = missing -> output name -> (T, C).
    """
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


def evaluate(model: HDyS, data_dir: str | Path, split: str = "test",
             inputs: list[str] | None = None, domains: list[str] | None = None,
             rate: float = 100.0) -> dict:
    """Evaluate ``model`` on a corpus split; returns {domain: {input: {output: result}}}."""
    data = CorpusData(data_dir, rate=rate, split=split, domains=domains,
                      max_points=model.cfg.max_points)
    inputs = list(inputs or model.cfg.kin_inputs)
    report: dict = {}
    for dom, items in data.seqs.items():
        acc: dict[str, dict[str, Accumulator]] = {}
        frames: dict[str, int] = {}
        for s in items:
            for key in inputs:
                if key not in s.data or key not in model.cfg.kin_inputs:
                    continue
                targets = [k for k in model.cfg.dyn_outputs if k in s.data]
                if not targets:
                    continue
                pred = predict_sequence(model, key, s.data[key])
                frames[key] = frames.get(key, 0) + s.frames
                for k in targets:
                    acc.setdefault(key, {}).setdefault(k, Accumulator(k)).add(pred[k], s.data[k])
        if acc:
            report[dom] = {key: {"frames": frames[key],
                                 **{k: a.result() for k, a in outs.items()}}
                           for key, outs in acc.items()}
    return report


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
