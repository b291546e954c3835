"""Raw sEMG analog channels -> linear envelopes on the project's muscle channels.

Processing (standard; as :mod:`hdys_rt.data.domains.semg_synth` models it), per channel at the
analog rate: band-pass :data:`BAND` Hz (4th-order Butterworth, zero phase; the upper edge drops
to 0.45 x the analog rate where 450 Hz is above Nyquist), full-wave rectification, 6 Hz low-pass
(4th order, zero phase), sampled at the sequence's frame times, and divided by its peak over the
trial (0..1). The envelope has no content above 6 Hz, so sampling it at >= 50 Hz frames loses
nothing.

Which muscle a channel is: from its label (e.g. ``Voltage.EMG2_vast_lat_r``, ``R_TA``), by
:data:`MUSCLE_TOKENS` (the mapping table), with the side from an ``L``/``R`` token at either end
(or a leading ``L``/``R`` glued to the muscle token: ``LVAS``). One electrode stands for one
Rajagopal muscle: a gluteal electrode for the middle compartment (as ``lab_real``), an
unspecified gastrocnemius for the medial head, an adductor magnus for its middle part, an
unspecified adductor for adductor longus. Channels that look like EMG (``EMG`` in the label or
description) but name no muscle of the table, or no side, are skipped and counted; so are
flat channels (:data:`MIN_PEAK_TO_MEDIAN`).

Measured on ``real/c3d`` (the C3Ds kept by ``real_labs``): btk_PiG_Motion-FlatFoot-Full maps all
10 (R/L RF ST TA GL PE); nimble_Return11 maps 12 of 16 (lat_dor: upper body, and 2 "free"
skipped) of which 10 are flat; btk_FunctionalWalk and btk_PiG_Motion3_FF label theirs EMG1-16
(no muscle: 16 skipped each). dorn_sprint_ja1/original.c3d has EMG but the sprint trial is
built from its TRC, not the C3D (not read here).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from hdys_rt import representations as reps

BAND = (20.0, 450.0)  # Hz
ENVELOPE_HZ = 6.0
ORDER = 4
#: A channel whose envelope peak is under this many times its median over the trial is flat
#: (noise only: unconnected or silent) and skipped; normalised to its peak it would read as a
#: constant ~0.8 activation. Gait muscles measure 3-12 (btk_PiG_Motion-FlatFoot-Full); 12 of
#: nimble_Return11's 14 named channels measure 1.2-1.4 (noise floor).
MIN_PEAK_TO_MEDIAN = 2.0

#: label token (upper case, words joined by "_") -> Rajagopal muscle (without side)
MUSCLE_TOKENS: dict[str, str] = {}
for _muscle, _tokens in {
    "vaslat": ("VL", "VAS", "VAST_LAT", "VASLAT", "VASTUS_LAT", "VASTUS_LATERALIS"),
    "vasmed": ("VM", "VAST_MED", "VASMED", "VASTUS_MED", "VASTUS_MEDIALIS"),
    "recfem": ("RF", "REC", "RECT_FEM", "RECFEM", "RECTUS_FEM", "RECTUS_FEMORIS"),
    "bflh": ("BF", "BIC_FEM", "BFLH", "BICEPS_FEM", "BICEPS_FEMORIS"),
    "semiten": ("ST", "MH", "SEMITEN", "SEMITENDINOSUS", "SEMI_TEN", "MED_HAM"),
    "tibant": ("TA", "TIB", "TIB_ANT", "TIBANT", "TIBIALIS_ANT", "TIBIALIS_ANTERIOR"),
    "soleus": ("SOL", "SOLEUS"),
    "gasmed": ("MG", "GAS", "GAST", "GAST_MED", "GASMED", "GASTROC", "GASTROC_MED"),
    "gaslat": ("LG", "GL", "GAST_LAT", "GASLAT", "GASTROC_LAT"),
    "glmax2": ("GMAX", "GLUT_MAX", "GLMAX", "GLUTEUS_MAX", "GLUTEUS_MAXIMUS"),
    "glmed2": ("GMED", "GLUT_MED", "GLMED", "GLUTEUS_MED", "GLUTEUS_MEDIUS"),
    "perlong": ("PE", "PER", "PL", "PERLONG", "PERONEUS", "PERONEUS_LONGUS", "PER_LONG"),
    "addmagMid": ("ADD_MAG", "ADDMAG", "ADDUCTOR_MAGNUS"),
    "addlong": ("ADD", "ADD_LONG", "ADDLONG", "ADDUCTOR_LONGUS"),
}.items():
    for _t in _tokens:
        MUSCLE_TOKENS[_t] = _muscle

_SIDES = {"L": "l", "R": "r", "LEFT": "l", "RIGHT": "r"}


def identify(label: str) -> str | None:
    """The muscle channel (``"vaslat_r"``) a label names, or None (see the module doc)."""
    name = label.rsplit(".", 1)[-1].upper()  # "Voltage.EMG2_vast_lat_r" -> "EMG2_VAST_LAT_R"
    tokens = [t for t in re.split(r"[\s_\-:]+", name) if t and not re.fullmatch(r"EMG\d*", t)]
    side = None
    if len(tokens) > 1 and tokens[0] in _SIDES:
        side, tokens = _SIDES[tokens[0]], tokens[1:]
    elif len(tokens) > 1 and tokens[-1] in _SIDES:
        side, tokens = _SIDES[tokens[-1]], tokens[:-1]
    key = "_".join(tokens)
    if side is None and key[:1] in ("L", "R") and key[1:] in MUSCLE_TOKENS:
        side, key = _SIDES[key[0]], key[1:]
    muscle = MUSCLE_TOKENS.get(key)
    if muscle is None or side is None:
        return None
    return f"{muscle}_{side}"


def envelope(x: np.ndarray, rate: float) -> np.ndarray:
    """Linear envelope ``(N, C)`` (same units as ``x``, not normalised) of raw EMG ``(N, C)``
    sampled at ``rate`` Hz: band-pass, rectify, :data:`ENVELOPE_HZ` low-pass."""
    from scipy.signal import butter, sosfiltfilt

    hi = min(BAND[1], 0.45 * rate)
    x = np.nan_to_num(np.asarray(x, float))
    band = butter(ORDER, [BAND[0], hi], btype="bandpass", fs=rate, output="sos")
    rect = np.abs(sosfiltfilt(band, x, axis=0))
    env = sosfiltfilt(butter(ORDER, ENVELOPE_HZ, fs=rate, output="sos"), rect, axis=0)
    return np.clip(env, 0.0, None)


def c3d_envelopes(path: Path, frame_t: np.ndarray):
    """sEMG envelopes of a C3D file at the frame times ``frame_t`` (s, the file's clock).

    Returns ``(env (T, C) in 0..1, channel names (muscle_side), report)``, ``env`` None when no
    channel maps. ``report``: ``mapping`` {label: channel}, ``unmapped`` (EMG-looking labels
    skipped), ``duplicates``, ``band_hz``, ``analog_rate``, ``peak_to_median`` per channel (a
    flat channel is ~1.2-1.5, a gait muscle 3-12), ``flat`` (skipped by
    :data:`MIN_PEAK_TO_MEDIAN`)."""
    import ezc3d

    c3d = ezc3d.c3d(str(path))
    head = c3d["header"]
    a_rate = float(head["analogs"]["frame_rate"])
    first = int(head["points"]["first_frame"])
    p_rate = float(head["points"]["frame_rate"])
    group = c3d["parameters"].get("ANALOG", {})
    labels = list(group.get("LABELS", {}).get("value", []))
    desc = list(group.get("DESCRIPTIONS", {}).get("value", [])) + [""] * len(labels)
    analogs = np.asarray(c3d["data"]["analogs"], float)[0]  # (channels, N)
    t_a = first / p_rate + np.arange(analogs.shape[1]) / a_rate
    mapping, unmapped, dups, cols = {}, [], [], []
    for j, lab in enumerate(labels):
        ch = identify(lab)
        if ch is None:
            if "EMG" in lab.upper() or "EMG" in str(desc[j]).upper():
                unmapped.append(lab)
            continue
        if ch in mapping.values():
            dups.append(lab)
            continue
        mapping[lab] = ch
        cols.append(j)
    report = {"mapping": mapping, "unmapped": unmapped, "duplicates": dups,
              "analog_rate": a_rate, "band_hz": [BAND[0], min(BAND[1], 0.45 * a_rate)],
              "envelope_hz": ENVELOPE_HZ}
    unknown = set(mapping.values()) - set(reps.MUSCLES)
    if unknown:  # the table names a muscle the representation lacks: a bug in MUSCLE_TOKENS
        raise ValueError(f"MUSCLE_TOKENS maps to unknown muscles {sorted(unknown)}")
    if not cols:
        return None, (), report
    env = envelope(analogs[cols].T, a_rate)
    out = np.stack([np.interp(frame_t, t_a, env[:, k], left=np.nan, right=np.nan)
                    for k in range(len(cols))], 1)
    peak = np.nanmax(out, axis=0)
    med = np.nanmedian(out, axis=0)
    ratio = np.where(med > 0, peak / np.where(med > 0, med, 1.0), 0.0)
    names = tuple(mapping.values())
    report["peak_to_median"] = {ch: round(float(r), 1) for ch, r in zip(names, ratio)}
    keep = ratio >= MIN_PEAK_TO_MEDIAN
    report["flat"] = [ch for ch, k in zip(names, keep) if not k]
    if not keep.any():
        return None, (), report
    out = out[:, keep] / peak[keep]
    return out, tuple(ch for ch, k in zip(names, keep) if k), report
