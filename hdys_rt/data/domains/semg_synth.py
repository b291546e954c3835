"""sEMG domain: surface EMG envelopes synthesised from MyoLegs muscle activations.

Sequences carry what an sEMG data set like the paper's has: skeletal keypoints (``opensim``
layout, Y up, metres) and sEMG linear envelopes of surface muscles; no torques, no GRF.
Activations come from :mod:`hdys_rt.data.domains.myolegs` (own seeds, subjects and motion mix).

Forward model (standard; FACTS.md), per channel, at ``FS = 2000`` Hz:

1. Activation ``a`` (100 Hz, static optimisation) is interpolated to 2 kHz.
2. Excitation from first-order activation dynamics inverted:
   ``u = a + tau * da/dt`` with ``tau = 10 ms`` while ``da/dt > 0`` (activation) and 40 ms
   otherwise (deactivation), clipped to ``u >= 0``.
3. Raw sEMG ``e(t) = g * u(t) * n(t) + f * n0(t)``: ``n``, ``n0`` independent unit-variance
   Gaussian noises band-passed 20-450 Hz (4th-order Butterworth); ``g`` a random channel gain
   (electrode/tissue, 0.5-2 mV) and ``f`` a noise floor of 1-4 % of ``g``.
4. Full-wave rectification, 6 Hz 4th-order Butterworth low-pass (zero phase): the linear
   envelope; resampled to 100 Hz (the envelope has no content above 6 Hz).
5. Per channel normalisation to its peak over the sequence (0..1; the noise floor keeps a small
   offset, as real normalised envelopes do).
Channels: 8 commonly recorded surface muscles on both sides (16) plus, per sequence, a random
subset of 4 more per side.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

import numpy as np

from hdys_rt.data.corpus import Sequence
from hdys_rt.data.domains import myolegs

log = logging.getLogger(__name__)

DOMAIN = "semg_synth"
KIND = "semg"
DESCRIPTION = (
    "Synthetic sEMG envelopes (excitation x band-passed noise, rectified, 6 Hz envelope, peak "
    "normalised) from MyoLegs static-optimisation activations, with opensim keypoints."
)

RATE = myolegs.RATE
FS = 2000.0  # Hz, raw sEMG rate
TAU_UP, TAU_DOWN = 0.010, 0.040  # s
BAND = (20.0, 450.0)  # Hz
ENVELOPE_HZ = 6.0
CORE = ("recfem", "vaslat", "vasmed", "bflh", "semiten", "tibant", "gasmed", "soleus")
EXTRA = ("gaslat", "perlong", "glmax1", "glmed1")

_FULL_MIX = (
    ("walk", 10, (8, 14)), ("run", 3, (6, 10)), ("turn", 3, (8, 12)), ("squat", 3, (8, 12)),
    ("sit_to_stand", 2, (8, 12)), ("lunge", 2, (8, 12)), ("calf_raise", 2, (6, 10)),
    ("high_step", 2, (6, 10)), ("sway", 2, (8, 12)),
)
_QUICK_MIX = (("walk", 1, (2.0, 2.0)),)
check_inputs = myolegs.check_inputs  # its activations come from MyoLegs
_SEED_SALT = 424242  # different seeds/subjects from the myolegs domain


def synthesize(act: np.ndarray, rng: np.random.Generator, rate: float = RATE) -> np.ndarray:
    """sEMG envelopes (T, C) at ``rate`` from activations (T, C) in 0..1; see the module doc."""
    from scipy.signal import butter, sosfiltfilt

    act = np.asarray(act, dtype=np.float64)
    T, C = act.shape
    up = int(round(FS / rate))
    t_lo = np.arange(T) / rate
    t_hi = np.arange(T * up) / FS
    a = np.stack([np.interp(t_hi, t_lo, act[:, c]) for c in range(C)], axis=1)
    da = np.gradient(a, 1 / FS, axis=0)
    u = np.clip(a + np.where(da > 0, TAU_UP, TAU_DOWN) * da, 0.0, None)
    band = butter(4, BAND, btype="bandpass", fs=FS, output="sos")
    n = sosfiltfilt(band, rng.standard_normal((T * up, C)), axis=0)
    n0 = sosfiltfilt(band, rng.standard_normal((T * up, C)), axis=0)
    n /= n.std(axis=0, keepdims=True)
    n0 /= n0.std(axis=0, keepdims=True)
    gain = rng.uniform(0.5, 2.0, C)
    floor = gain * rng.uniform(0.01, 0.04, C)
    raw = gain * u * n + floor * n0
    env = sosfiltfilt(butter(4, ENVELOPE_HZ, fs=FS, output="sos"), np.abs(raw), axis=0)
    env = np.clip(env[::up], 0.0, None)[:T]
    return env / np.maximum(env.max(axis=0, keepdims=True), 1e-9)


def channels(rng: np.random.Generator) -> tuple[str, ...]:
    """Core 16 channels plus a random subset of the extras, in MUSCLES order."""
    from hdys_rt import representations as reps

    extra = [m for m in EXTRA if rng.random() < 0.5]
    want = {f"{m}_{s}" for m in CORE + tuple(extra) for s in ("r", "l")}
    return tuple(m for m in reps.MUSCLES if m in want)


def plan(seed: int, quick: bool) -> list[dict]:
    specs = myolegs.plan_specs(seed + _SEED_SALT, quick, _QUICK_MIX if quick else _FULL_MIX,
                               prefix="semg_")
    jobs, cur, dur = [], [], 0.0
    for s in specs:
        cur.append(s)
        dur += s["duration_s"]
        if quick or dur >= 20.0:
            jobs.append({"domain": DOMAIN, "sequences": cur})
            cur, dur = [], 0.0
    if cur:
        jobs.append({"domain": DOMAIN, "sequences": cur})
    return jobs


def build_sequence(spec: dict) -> Sequence:
    from hdys_rt import representations as reps

    mo, res = myolegs.simulate_spec(spec)
    rng = np.random.default_rng([spec["seed"], 977])
    names = channels(rng)
    act = myolegs.activations(res)[:, [reps.MUSCLES.index(n) for n in names]]
    semg = synthesize(act, rng)
    kp, kp_names = myolegs.keypoints_yup(res)
    return Sequence(
        name=spec["name"], domain=DOMAIN, rate=RATE,
        subject=myolegs._subject(spec, res),
        source=("synthetic sEMG: MyoLegs static-optimisation activations -> excitation -> "
                "band-passed noise (20-450 Hz, 2 kHz) -> rectified 6 Hz envelope"),
        data={"keypoints": kp, "semg": semg},
        names={"keypoints": kp_names, "semg": names},
        meta={"keypoint_layout": "opensim", "motion": spec["motion"], "seed": spec["seed"],
              "forward_model": {"fs_hz": FS, "tau_up_s": TAU_UP, "tau_down_s": TAU_DOWN,
                                "band_hz": list(BAND), "envelope_hz": ENVELOPE_HZ,
                                "normalisation": "per-channel peak"},
              "quality": res.quality},
    )


def sequences(job: dict) -> Iterator[Sequence]:
    """The job's sequences (one per spec), built one at a time."""
    for spec in job["sequences"]:
        yield build_sequence(spec)
