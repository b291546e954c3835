"""Estimate-vs-reference plots of recorded trials (``hdys-rt eval --plot DIR``).

One PNG per (trial, kinematic input, dynamic output): a grid with one panel per joint or
channel, the reference (the trial's own dynamics) in black and the model's offline causal
estimate in colour, in physical units (N·m/kg, %BW, 0..1), with the per-channel error in the
panel title. matplotlib (the ``plot`` extra) is imported lazily, with the Agg backend.
"""

from __future__ import annotations

import logging
import math
import re
from pathlib import Path

import numpy as np

from hdys_rt import representations as reps
from hdys_rt.errors import HdysError

log = logging.getLogger(__name__)

__all__ = ["plot_trial", "MAX_PANELS"]

MAX_PANELS = 24  # channels per figure (muscle outputs have 80: the most active are shown)


def _pyplot():
    try:
        import matplotlib
    except ImportError:
        raise HdysError("plots need matplotlib: pip install 'hdys-rt[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


def plot_trial(model, name: str, rate: float, data: dict[str, np.ndarray], out_dir,
               inputs: list[str] | None = None, mirror: bool = False) -> list[Path]:
    """Plot one trial; ``data``: representation -> (T, P, 3) points or canonical (T, C) vector
    at ``rate`` Hz (as :class:`hdys_rt.training.data.SeqArrays` holds them); ``mirror``: as
    :func:`hdys_rt.evaluation.predict_sequence`. Returns the PNGs."""
    from hdys_rt.evaluation import predict_sequence

    plt = _pyplot()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    targets = [k for k in model.cfg.dyn_outputs if k in data]
    for key in inputs or model.cfg.kin_inputs:
        if key not in data or key not in model.cfg.kin_inputs or not targets:
            continue
        pred = predict_sequence(model, key, data[key], mirror)
        t = np.arange(data[key].shape[0]) / rate
        for out in targets:
            ref, est = data[out], pred[out]
            chans = reps.get(out).channels
            have = [i for i in range(len(chans)) if np.isfinite(ref[:, i]).any()]
            scale = 100.0 if out == "grf" else 1.0  # GRF forces in %BW
            if len(have) > MAX_PANELS:  # the most active channels
                have = sorted(sorted(have, key=lambda i: -np.nanstd(ref[:, i]))[:MAX_PANELS])
            if not have:
                continue
            cols = min(4, len(have))
            rows = math.ceil(len(have) / cols)
            fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.2 * rows),
                                     sharex=True, squeeze=False)
            unit = reps.get(out).unit
            for ax, i in zip(axes.flat, have):
                s = scale if (out == "grf" and reps.is_force(chans[i])) else 1.0
                r, e = ref[:, i] * s, est[:, i] * s
                ok = np.isfinite(r) & np.isfinite(e)
                err = float(np.mean(np.abs(r[ok] - e[ok]))) if ok.any() else float("nan")
                ax.plot(t, r, color="black", lw=1.2, label="reference")
                ax.plot(t, e, color="tab:red", lw=1.0, label="estimate")
                ax.set_title(f"{chans[i]}  MAE {err:.3g}", fontsize=8)
                ax.tick_params(labelsize=7)
            for ax in list(axes.flat)[len(have):]:
                ax.axis("off")
            axes.flat[0].legend(fontsize=7, loc="best")
            fig.suptitle(f"{name}: {out} ({'%BW | m' if out == 'grf' else unit}) from {key}",
                         fontsize=10)
            fig.supxlabel("time (s)", fontsize=8)
            fig.tight_layout()
            path = out_dir / f"{_safe(name)}__{key}__{out}.png"
            fig.savefig(path, dpi=80)
            plt.close(fig)
            written.append(path)
    return written
