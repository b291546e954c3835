"""GRF-only sequences from C3D files without an OpenSim model (``real/c3d/``).

Markers come through the project's one file loader (:func:`hdys_rt.data.loader.load_file`:
metres, Y up, marker names mapped by :mod:`hdys_rt.data.markersets`); the plates through
ezc3d's force-platform extraction (``extract_forceplat_data=True``: calibration matrix, origin
and type 2/4 from the file's FORCE_PLATFORM group), turned into the same Y-up frame. Each stance
on a plate goes to the foot (heel/toe markers) nearest its centre of pressure
(:func:`hdys_rt.data.labs.plates.assign_feet`), forces are low-pass filtered at the task's
cut-off and sampled at the marker frames. Torques are all NaN: no model, no inverse dynamics.
sEMG envelopes where the file's analog channels name muscles (:mod:`hdys_rt.data.labs.emg`;
meta ``semg``: the label -> channel mapping, skipped channels, signal-to-noise per channel).

Body weight: ``PROCESSING:Bodymass`` (Vicon) when the file has it, else a quiet stance on the
plates (total vertical force steady within :data:`QUIET_CV` for :data:`QUIET_S`); a file with
neither yields no sequence (GRF in body weights would be a guess).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from hdys_rt import representations as reps
from hdys_rt.data.corpus import Sequence, Subject
from hdys_rt.data.labs import emg
from hdys_rt.data.labs import plates as pl
from hdys_rt.errors import HdysError

log = logging.getLogger(__name__)

G = reps.G
QUIET_S = 0.5  # a quiet stance lasts at least this long (s)
QUIET_CV = 0.02  # ... with the total vertical force within 2 % of its mean
QUIET_MIN_N = 250.0  # ... and above this (a person, not a foot's touch)
COP_MIN_FZ_N = 20.0
FEET = {"r": ("R.Heel", "R.Toe"), "l": ("L.Heel", "L.Toe")}
AXES = "xyz"


class Skipped(Exception):
    """The file cannot give a GRF-only sequence; the message says why."""


def _platforms(path: Path):
    import ezc3d

    c3d = ezc3d.c3d(str(path), extract_forceplat_data=True)
    head = c3d["header"]
    a_rate = float(head["analogs"]["frame_rate"])
    first = int(head["points"]["first_frame"])
    p_rate = float(head["points"]["frame_rate"])
    plats = c3d["data"]["platform"]
    if not plats:
        raise Skipped("no force platform in the file")
    F = np.stack([np.asarray(p["force"], float).T for p in plats])  # (n, N, 3) N
    cop = np.stack([np.asarray(p["center_of_pressure"], float).T for p in plats]) * 1e-3  # m
    tz = np.stack([np.asarray(p["Tz"], float).T for p in plats]) * 1e-3  # N·m, free moment
    if any(p.get("unit_position", "mm") != "mm" for p in plats):
        raise Skipped("force-platform positions not in mm")
    t = first / p_rate + np.arange(F.shape[1]) / a_rate
    mass = None
    proc = c3d["parameters"].get("PROCESSING", {})
    for key in ("Bodymass", "BodyMass", "Weight"):
        if key in proc:
            mass = float(np.ravel(proc[key]["value"])[0])
            break
    return t, a_rate, np.nan_to_num(F), np.nan_to_num(cop), np.nan_to_num(tz), mass


def _quiet_weight(fy: np.ndarray, rate: float) -> float | None:
    """Mean total vertical force (N) of the steadiest :data:`QUIET_S` window, if quiet."""
    n = int(QUIET_S * rate)
    if fy.size < n or n < 2:
        return None
    c = np.cumsum(np.insert(fy, 0, 0.0))
    c2 = np.cumsum(np.insert(fy**2, 0, 0.0))
    mean = (c[n:] - c[:-n]) / n
    sd = np.sqrt(np.maximum((c2[n:] - c2[:-n]) / n - mean**2, 0.0))
    ok = (mean > QUIET_MIN_N) & (sd < QUIET_CV * mean)
    return float(mean[ok][np.argmin(sd[ok] / mean[ok])]) if ok.any() else None


def process(path: Path, name: str, person: str, lab: str, task: str, cutoff_hz: float,
            source: str, domain: str) -> Sequence:
    """One C3D file -> a GRF-only :class:`Sequence` (markers, grf; torques NaN).

    Raises :class:`Skipped` (with the reason) when the file cannot give one."""
    from hdys_rt.data.loader import load_file
    from hdys_rt.data.frames import zup_to_yup

    t_a, a_rate, F, cop, tz, mass = _platforms(path)
    # the lab's vertical axis: the plates' dominant force axis (Y or Z)
    up = AXES[int(np.argmax(np.abs(F).sum(axis=(0, 1))))]
    if up not in ("y", "z"):
        raise Skipped(f"the plates' vertical force is along {up.upper()}: neither Y nor Z up")
    rec = load_file(path, up=up)
    if up == "z":
        F, cop = zup_to_yup(F).astype(float), zup_to_yup(cop).astype(float)
        tz = zup_to_yup(tz).astype(float)
    if np.median(F[..., 1][np.abs(F[..., 1]) > pl.CONTACT_N]) < 0:
        F = -F  # plates that report the action on the plate: the reaction on the body is up
        tz = -tz
    names = list(rec.names)
    missing = [m for ms in FEET.values() for m in ms if m not in names]
    if missing:
        raise Skipped(f"no foot markers {missing} after the marker-set mapping")
    m_t = np.asarray(rec.time if rec.time is not None else np.arange(len(rec.data)) / rec.rate)
    feet = {s: rec.data[:, [names.index(m) for m in ms]].astype(float) for s, ms in FEET.items()}
    for s in feet:  # fill short marker gaps so the assignment sees a foot everywhere
        for j in range(2):
            for c in range(3):
                v = feet[s][:, j, c]
                ok = np.isfinite(v)
                if ok.sum() < 2:
                    raise Skipped(f"foot marker {FEET[s][j]} is missing throughout")
                feet[s][:, j, c] = np.interp(m_t, m_t[ok], v[ok])
    fy_total = F[..., 1].sum(0)
    weight_note = "PROCESSING:Bodymass in the file"
    if mass is None:
        w = _quiet_weight(pl.lowpass(fy_total, 6.0, a_rate), a_rate)
        if w is None:
            raise Skipped("no body mass in the file (PROCESSING:Bodymass) and no quiet stance "
                          "on the plates to weigh the person")
        mass, weight_note = w / G, "quiet stance on the plates"
    if not 20.0 <= mass <= 250.0:
        raise Skipped(f"body mass {mass:.1f} kg is implausible")
    bw = mass * G
    plates = [pl.Plate(f"plate{k + 1}", (0, 1, 2), (0, 1, 2), None) for k in range(F.shape[0])]
    mask, assigned = pl.assign_feet(t_a, F, cop, plates, m_t, feet)
    T = np.zeros_like(F)
    T[..., 1] = tz[..., 1]  # the free moment is about the vertical
    loads = pl.foot_loads(F, cop, T, mask)
    loads = pl.lowpass(loads.reshape(len(t_a), -1), cutoff_hz, a_rate).reshape(loads.shape)
    loads_m = np.stack([np.interp(m_t, t_a, loads[:, s, c], left=0.0, right=0.0)
                        for s in range(2) for c in range(6)], 1).reshape(len(m_t), 2, 6)
    if not assigned:
        raise Skipped("no stance on any plate within the marker frames")
    floor_y = pl.floor_height(cop, F)
    cp = pl.centre_of_pressure(loads_m, floor_y, COP_MIN_FZ_N)
    pelvis = [n for n in ("L.ASIS", "R.ASIS", "L.PSIS", "R.PSIS") if n in names]
    centre = (np.nanmean(rec.data[:, [names.index(n) for n in pelvis]], axis=1) if pelvis
              else np.full((len(m_t), 3), np.nan))
    cols = []
    for s in range(2):
        cols += [loads_m[:, s, 0] / bw, loads_m[:, s, 1] / bw, loads_m[:, s, 2] / bw,
                 cp[:, s, 0] - centre[:, 0], cp[:, s, 2] - centre[:, 2]]
    grf = np.stack(cols, 1)
    tq = np.full((len(m_t), len(reps.RAJAGOPAL_TORQUE_JOINTS)), np.nan)
    height = _height(rec.data, names)
    data = {"markers": rec.data, "torques_rajagopal": tq, "grf": grf}
    chan = {"markers": tuple(names), "torques_rajagopal": reps.RAJAGOPAL_TORQUE_JOINTS,
            "grf": reps.GRF_CHANNELS}
    semg, semg_names, semg_report = emg.c3d_envelopes(path, m_t)
    if semg is not None:
        data["semg"], chan["semg"] = semg, semg_names
    meta = {
        "task": task, "person": person, "lab": lab, "folder": "c3d", "trial": name,
        "grf_only": True, "vertical_axis_in_file": up,
        "mass_note": weight_note, "height_note": "marker span / 0.75 (heel to shoulder, or "
                                                 "to ASIS / 0.53 when no shoulder marker)",
        "cutoff_hz": cutoff_hz, "plates": len(plates),
        "plate_assignment": [vars(a) for a in assigned],
        "markerset": getattr(rec.markerset, "scheme", None) if rec.markerset else None,
        "torques_masked": list(reps.RAJAGOPAL_TORQUE_JOINTS),
        "quality": {"stances": len(assigned),
                    "stances_far_from_feet": sum(a.dist_m > pl.MAX_ASSIGN_DIST_M
                                                 for a in assigned),
                    "max_total_fy_bw": round(float(np.max(grf[:, 1] + grf[:, 6])), 3)},
        "processing": ("ezc3d force-platform extraction (calibration and type from the file), "
                       f"{'Z-up lab turned Y up; ' if up == 'z' else ''}stances assigned to the "
                       f"nearer foot (heel/toe markers); force and moment low-pass {cutoff_hz} "
                       "Hz at the plate rate, sampled at the marker frames; no model: torques "
                       "NaN"),
        "semg": semg_report,
    }
    return Sequence(
        name=name, domain=domain, rate=float(rec.rate),
        subject=Subject(person, round(mass, 2), round(height, 3)), source=source,
        data=data, names=chan, meta=meta,
    )


def _height(xyz: np.ndarray, names: list[str]) -> float:
    """Rough standing height (m) from the markers' median heights (Y up)."""
    y = np.nanmedian(xyz[..., 1], axis=0)
    idx = {n: i for i, n in enumerate(names)}
    heel = np.nanmin([y[idx[n]] for n in ("R.Heel", "L.Heel") if n in idx])
    sh = [y[idx[n]] for n in ("R.Shoulder", "L.Shoulder") if n in idx]
    if sh and np.isfinite(np.nanmax(sh)):
        h = (np.nanmax(sh) - heel) / 0.818
    else:
        asis = [y[idx[n]] for n in ("R.ASIS", "L.ASIS") if n in idx]
        h = (np.nanmax(asis) - heel) / 0.53
    if not 1.0 <= h <= 2.3:
        raise HdysError(f"marker-based height {h:.2f} m is implausible")
    return float(h)
