"""Offline estimates of a recording (``hdys-rt estimate``), through the LIVE path.

A file is read by the one loader (:func:`hdys_rt.data.loader.load_file`: marker mapping,
units, Y up) and every frame goes through the streaming estimator
(:class:`hdys_rt.model.streaming.StreamingEstimator`, its public ``load`` / ``step`` only), with
the pipeline's rule for frames with too few valid points (NaN out, state not stepped): the
numbers equal what ``hdys-rt serve --source replay`` publishes for the same file (tested).

Writers, chosen by the output's extension:

* ``.sto``: joint moments as OpenSim inverse dynamics writes them (``hip_flexion_r_moment``...),
  N·m with a mass, else N·m/kg; signs follow the OpenSim coordinates (see "Torque signs" in
  :mod:`hdys_rt.representations`);
* ``.mot``: GRF per foot in OpenSim external-loads columns (``ground_force_r_vx`` ..
  ``ground_torque_l_z``), N with a mass, else body weights. The centre of pressure is relative
  to the pelvis' horizontal position (what the model estimates), not the lab origin; the free
  moment is not estimated (0);
* ``.csv``: ``time``, every output channel, ``KEY.CHANNEL [UNIT]``, then ``novelty`` and
  ``novel`` (0/1: above the model's threshold) per frame (:mod:`hdys_rt.model.novelty`);
* ``.json``: ``{"format": "hdys-estimate", ...}`` with every output (NaN as null), ``novelty``,
  ``novel`` and ``novelty_threshold``.
"""

from __future__ import annotations

import json
import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from hdys_rt.errors import HdysError
from hdys_rt.subject import G, absolute_outputs

log = logging.getLogger(__name__)

__all__ = ["Estimates", "estimate_file", "estimate_recording", "write_estimates", "OUT_TYPES",
           "SIGN_NOTE"]

OUT_TYPES = (".sto", ".mot", ".csv", ".json")
SIGN_NOTE = ("torque signs: OpenSim coordinate convention (positive = the generalized force "
             "that increases the coordinate), see 'Torque signs' in hdys_rt/representations.py")


@dataclass
class Estimates:
    """Per-frame estimates of one recording.

    Attributes:
        time: ``(T,)`` seconds (the recording's timestamps).
        outputs: name -> ``(T, C)`` float32 in the model's units (N·m/kg, N/BW | m, 0..1), NaN
            on frames with too few valid points; with ``mass_kg`` also the absolute outputs
            (``torques_*_Nm`` N·m, ``grf_N`` N | m) as ``hdys-rt serve --mass`` publishes them.
        channels: name -> channel names; ``units``: name -> unit.
        rate: Hz; ``source``: the file; ``mass_kg``: the subject mass used, or None;
        ``skipped``: frames with too few valid points; ``notes``: the loader's warnings;
        ``upright``: its orientation check (:class:`~hdys_rt.data.markersets.Upright`).
        novelty: ``(T,)`` each frame's novelty score (NaN: not estimated, or the model is not
            calibrated); ``novelty_threshold``: the model's threshold for the input (NaN: none).
    """

    time: np.ndarray
    outputs: dict[str, np.ndarray]
    channels: dict[str, tuple[str, ...]]
    units: dict[str, str]
    rate: float
    source: str = ""
    mass_kg: float | None = None
    skipped: int = 0
    model: str = ""
    notes: list[str] = field(default_factory=list)
    upright: object | None = None
    novelty: np.ndarray | None = None
    novelty_threshold: float = math.nan

    @property
    def novel(self) -> np.ndarray:
        """(T,) bool: frames above the novelty threshold (the wire format's ``novel`` flag)."""
        with np.errstate(invalid="ignore"):
            return _novelty(self) > self.novelty_threshold


def estimate_recording(rec, model: str | os.PathLike | None = None,
                       mass_kg: float | None = None, min_markers: int | None = None,
                       mirror: bool | None = None) -> Estimates:
    """Run a point :class:`~hdys_rt.data.recording.Recording` frame by frame through the
    streaming estimator (``model``: a saved model, None = bundled; ``mirror``: average with
    the mirror image, None: as the model says, as ``serve`` does)."""
    from hdys_rt.model.streaming import StreamingEstimator
    from hdys_rt.runtime.pipeline import PipelineOptions

    if not rec.points:
        raise HdysError(f"{rec.source or 'the recording'} holds a table, not markers or "
                        "keypoints: estimate takes point recordings (.trc, .c3d, corpus .json)")
    opt = PipelineOptions(min_markers=min_markers, mass_kg=mass_kg)
    est = StreamingEstimator.load(model, input_kind=rec.kind, stream_rate=rec.rate,
                                  mirror=mirror)
    if rec.xyz.shape[1] > est.max_points:
        raise HdysError(f"{rec.source}: {rec.xyz.shape[1]} points, the model takes at most "
                        f"{est.max_points}")
    need = opt.min_valid(rec.xyz.shape[1])
    channels, units = dict(est.outputs), dict(est.units)
    T = rec.frames
    outs = {k: np.full((T, len(v)), np.nan, np.float32) for k, v in channels.items()}
    novelty = np.full(T, np.nan, np.float32)
    skipped = 0
    for i in range(T):
        pts = rec.xyz[i]
        if int(np.isfinite(pts).all(1).sum()) < need:
            skipped += 1
            continue
        res = est.step(pts)
        novelty[i] = est.novelty
        for k, v in res.items():
            outs[k][i] = v
    if mass_kg is not None:
        first = {k: v[0] for k, v in outs.items()}
        _, chans, aunits = absolute_outputs(first, channels, mass_kg)
        for k in chans:
            outs[k] = np.full((T, len(chans[k])), np.nan, np.float32)
        for i in range(T):
            vals, _, _ = absolute_outputs({k: outs[k][i] for k in channels}, channels, mass_kg)
            for k, v in vals.items():
                outs[k][i] = v
        channels.update(chans)
        units.update(aunits)
    if hasattr(est, "close"):
        est.close()
    if skipped:
        log.warning("%s: %d of %d frames had fewer than %d valid points: no estimate (NaN)",
                    rec.source, skipped, T, need)
    return Estimates(np.asarray(rec.time, np.float64), outs, channels, units, float(rec.rate),
                     str(rec.source), mass_kg, skipped, str(model or "bundled"),
                     list(rec.notes), rec.upright, novelty, est.novelty_threshold)


def estimate_file(path: str | os.PathLike, model=None, mass_kg: float | None = None,
                  up: str | None = None, mirror: bool | None = None) -> Estimates:
    """:func:`estimate_recording` of a file read by the one loader (:func:`load_file`); without
    ``mass_kg``, the subject mass the file carries (C3D ``PROCESSING:Bodymass``, corpus JSON)."""
    from hdys_rt.data.loader import load_file

    rec = load_file(path, up=up)
    if mass_kg is None and rec.subject is not None:
        mass_kg = rec.subject.mass_kg
    return estimate_recording(rec, model, mass_kg, mirror=mirror)


# --- writers ---------------------------------------------------------------------------------

def _torques(est: Estimates) -> tuple[np.ndarray, tuple[str, ...], str]:
    key = "torques_rajagopal_Nm" if est.mass_kg is not None else "torques_rajagopal"
    if key not in est.outputs:
        raise HdysError("this model estimates no torques_rajagopal: a .sto of joint moments "
                        "needs them (write .csv or .json)")
    return est.outputs[key], est.channels[key], est.units[key]


def write_sto(path: Path, est: Estimates) -> Path:
    """Joint moments, OpenSim ID style: ``COORD_moment`` columns (N·m, or N·m/kg)."""
    from hdys_rt.data.formats import Table, write_storage

    vals, chans, unit = _torques(est)
    ascii_unit = unit.replace("·", "*")
    header = {"units": ascii_unit, "source": Path(est.source).name, "model": est.model,
              "sign_convention": SIGN_NOTE}
    if est.mass_kg is not None:
        header["mass_kg"] = f"{est.mass_kg:g}"
    table = Table(tuple(f"{c}_moment" for c in chans), est.time, vals.astype(np.float64),
                  header=header)
    return write_storage(path, table, in_degrees=False, name="hdys-rt estimate: joint moments")


MOT_COLUMNS = tuple(f"ground_{q}_{s}_{a}" for s in ("r", "l") for q, a in
                    [("force", "vx"), ("force", "vy"), ("force", "vz"), ("force", "px"),
                     ("force", "py"), ("force", "pz"), ("torque", "x"), ("torque", "y"),
                     ("torque", "z")])


def write_mot(path: Path, est: Estimates) -> Path:
    """GRF per foot in OpenSim external-loads columns (``ground_force_r_vx`` ...): forces in N
    with a mass, else body weights; centre of pressure (m) relative to the pelvis' horizontal
    position, py = 0; free moment not estimated (0)."""
    from hdys_rt.data.formats import Table, write_storage

    key = "grf_N" if est.mass_kg is not None else "grf"
    if key not in est.outputs:
        raise HdysError("this model estimates no GRF: a .mot needs it (write .csv or .json)")
    g = dict(zip(est.channels[key], est.outputs[key].T))
    T = len(est.time)
    cols = []
    for s in ("r", "l"):
        zero = np.zeros(T)
        cols += [g[f"{s}_fx"], g[f"{s}_fy"], g[f"{s}_fz"], g[f"{s}_copx"], zero,
                 g[f"{s}_copz"], zero, zero, zero]
    header = {"units": "N" if est.mass_kg is not None else "BW (body weights)",
              "cop": "relative to the pelvis' horizontal position (m), not the lab origin",
              "free_moment": "not estimated (0)", "source": Path(est.source).name,
              "model": est.model}
    if est.mass_kg is not None:
        header["mass_kg"] = f"{est.mass_kg:g} (g = {G})"
    table = Table(MOT_COLUMNS, est.time, np.stack(cols, 1).astype(np.float64), header=header)
    return write_storage(path, table, in_degrees=False, name="hdys-rt estimate: GRF")


def _novelty(est: Estimates) -> np.ndarray:
    """(T,) float64 novelty scores (NaN where there are none)."""
    if est.novelty is None:
        return np.full(len(est.time), np.nan)
    return est.novelty.astype(np.float64)


def write_csv(path: Path, est: Estimates) -> Path:
    """``time`` then every output channel as ``KEY.CHANNEL [UNIT]``; NaN as empty cells."""
    names = ["time [s]"] + [f"{k}.{c} [{est.units[k]}]" for k in est.outputs
                            for c in est.channels[k]] + ["novelty", "novel"]
    data = np.concatenate([est.time[:, None]] + [est.outputs[k].astype(np.float64)
                                                 for k in est.outputs]
                          + [_novelty(est)[:, None], est.novel[:, None]], 1)
    lines = [",".join(names)]
    lines += [",".join("" if not math.isfinite(v) else f"{v:.7g}" for v in row) for row in data]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_json(path: Path, est: Estimates) -> Path:
    """Every output (NaN as null) with its channels and units."""
    def rows(a):
        return [[None if not math.isfinite(v) else round(float(v), 7) for v in r] for r in a]

    doc = {"format": "hdys-estimate", "version": 1, "source": est.source, "model": est.model,
           "rate": est.rate, "mass_kg": est.mass_kg, "frames": len(est.time),
           "skipped_frames": est.skipped, "sign_convention": SIGN_NOTE,
           "time": [round(float(t), 7) for t in est.time],
           "outputs": {k: {"unit": est.units[k], "channels": list(est.channels[k]),
                           "values": rows(v)} for k, v in est.outputs.items()},
           "novelty": [r[0] for r in rows(_novelty(est)[:, None])],
           "novel": est.novel.tolist(),
           "novelty_threshold": rows([[est.novelty_threshold]])[0][0]}
    path.write_text(json.dumps(doc, ensure_ascii=False), encoding="utf-8")
    return path


WRITERS = {".sto": write_sto, ".mot": write_mot, ".csv": write_csv, ".json": write_json}


def write_estimates(path: str | os.PathLike, est: Estimates) -> Path:
    """Write ``est`` in the format named by ``path``'s extension (:data:`OUT_TYPES`)."""
    p = Path(path)
    ext = p.suffix.lower()
    if ext not in WRITERS:
        raise HdysError(f"--out {p.name}: unsupported extension {ext or '(none)'!r}; expected "
                        f"one of {', '.join(OUT_TYPES)}")
    p.parent.mkdir(parents=True, exist_ok=True)
    return WRITERS[ext](p, est)


def plot_estimates(est: Estimates, out_dir: str | os.PathLike) -> list[Path]:
    """PNGs of the big joints' torques and the total vertical GRF over time (matplotlib)."""
    from hdys_rt.bridges.plots import _pyplot, _safe

    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    stem = _safe(Path(est.source).stem or "estimate")
    written = []
    tq = "torques_rajagopal_Nm" if est.mass_kg is not None else "torques_rajagopal"
    if tq in est.outputs:
        fig, axes = plt.subplots(3, 1, figsize=(8, 7), sharex=True)
        for ax, joint in zip(axes, ("hip_flexion", "knee_angle", "ankle_angle")):
            for side, colour in (("r", "tab:red"), ("l", "tab:blue")):
                c = est.channels[tq].index(f"{joint}_{side}")
                ax.plot(est.time, est.outputs[tq][:, c], color=colour, label=side)
            ax.set_ylabel(f"{joint} ({est.units[tq]})", fontsize=8)
            ax.legend(fontsize=7)
        axes[-1].set_xlabel("time (s)")
        fig.suptitle(f"{stem}: joint moments (OpenSim signs)", fontsize=10)
        fig.tight_layout()
        written.append(out / f"{stem}__torques.png")
        fig.savefig(written[-1], dpi=80)
        plt.close(fig)
    if "grf" in est.outputs:
        chans = est.channels["grf"]
        fy = est.outputs["grf"][:, [chans.index("r_fy"), chans.index("l_fy")]]
        fig, ax = plt.subplots(figsize=(8, 3))
        ax.plot(est.time, fy[:, 0], color="tab:red", label="right")
        ax.plot(est.time, fy[:, 1], color="tab:blue", label="left")
        ax.plot(est.time, fy.sum(1), color="black", label="total")
        ax.set_ylabel("vertical GRF (BW)")
        ax.set_xlabel("time (s)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        written.append(out / f"{stem}__grf.png")
        fig.savefig(written[-1], dpi=80)
        plt.close(fig)
    return written

