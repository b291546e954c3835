"""Force plates -> per-foot loads, the way AddBiomechanics treats them.

A plate table (OpenSim ``.mot``) holds, per plate, force ``*_v{x,y,z}`` (N), point ``*_p{x,y,z}``
(m, ground) and torque ``*_m{x,y,z}`` or ``*_torque_{x,y,z}`` (N·m) columns, in the OpenSim
ground frame (Y up). The lab's own assignment of plates to bodies is ignored (AddBiomechanics
exports put every plate on ``talus_r``): each *stance* on a plate (a run of samples with vertical
force above :data:`CONTACT_N`) goes to the foot whose heel or toe is closest to the plate's centre
of pressure during that stance.

Each foot's load is then carried as its total force ``F`` (N) and its total moment about the
ground origin ``M = sum(p x F + T)`` (N·m): both are linear in the plate signals, so they can be
low-pass filtered (zero-phase Butterworth, at the kinematics' cut-off) without the centre of
pressure blowing up at heel strike and toe off. Applied at the ground origin, ``(F, M)`` is
mechanically the same load as the plates'; the centre of pressure on the floor plane is recovered
from it where the vertical force is large enough.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hdys_rt.errors import HdysError

CONTACT_N = 20.0  # a plate is in stance where its vertical force exceeds this (N)
EDGE_N = 1.0  # a stance extends to where the force falls below this (N): no step when masking
FILTER_ORDER = 4  # Butterworth order of the zero-phase (forward-backward) low-pass
MAX_ASSIGN_DIST_M = 0.35  # a stance farther than this from both feet is reported as suspicious


@dataclass(frozen=True)
class Plate:
    """Columns of one plate in a plate table: (x, y, z) indices; ``torque`` may be absent."""

    name: str
    force: tuple[int, int, int]
    point: tuple[int, int, int]
    torque: tuple[int, int, int] | None


def find_plates(labels: list[str]) -> list[Plate]:
    """The plates of a plate table from its column labels (``time`` excluded).

    Recognised: ``P_vx`` force with ``P_px`` point and ``P_mx`` or ``..._torque_x`` torque, e.g.
    ``ground_force_1_vx / _px / _mx``, ``R_ground_force_vx / _px / R_ground_torque_x``,
    ``1_ground_force_vx / _px / 1_ground_torque_x``.
    """
    idx = {lab: i for i, lab in enumerate(labels)}
    plates = []
    for lab in labels:
        if not lab.endswith("vx") or lab[:-1] + "y" not in idx or lab[:-1] + "z" not in idx:
            continue
        fp = lab[:-1]  # "ground_force_1_v"
        pp = fp[:-1] + "p"
        if not all(pp + a in idx for a in "xyz"):
            continue
        torque = None
        for tp in (fp[:-1] + "m", fp.replace("force_v", "torque_")):
            if all(tp + a in idx for a in "xyz"):
                torque = tuple(idx[tp + a] for a in "xyz")
                break
        plates.append(Plate(fp.rstrip("_v") or fp, tuple(idx[fp + a] for a in "xyz"),
                            tuple(idx[pp + a] for a in "xyz"), torque))
    if not plates:
        raise HdysError(f"no force plate columns (*_vx/_vy/_vz with *_px/_py/_pz) among "
                        f"{labels[:8]}...")
    return plates


def uniform(t: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """Sort by time, drop repeated times and resample linearly onto a uniform grid.

    Returns ``(t_uniform (N,), values (N, C), rate Hz)``."""
    order = np.argsort(t, kind="stable")
    t, values = t[order], values[order]
    keep = np.concatenate([[True], np.diff(t) > 1e-9])
    t, values = t[keep], values[keep]
    if t.size < 4:
        raise HdysError("plate table has fewer than 4 distinct time samples")
    dt = float(np.median(np.diff(t)))
    rate = round(1.0 / dt, 3)
    tu = t[0] + np.arange(int(round((t[-1] - t[0]) * rate)) + 1) / rate
    if np.max(np.abs(np.diff(t) - dt)) > 0.1 * dt:
        values = np.stack([np.interp(tu, t, values[:, c]) for c in range(values.shape[1])], 1)
    else:
        tu, values = t, values
    return tu, values, rate


def plate_signals(values: np.ndarray, plates: list[Plate]):
    """Per-plate force, point and torque: three arrays (n_plates, T, 3); NaN read as 0."""
    v = np.nan_to_num(values)
    F = np.stack([v[:, list(p.force)] for p in plates])
    P = np.stack([v[:, list(p.point)] for p in plates])
    T = np.stack([v[:, list(p.torque)] if p.torque else np.zeros_like(v[:, :3])
                  for p in plates])
    return F, P, T


def stances(fy: np.ndarray) -> list[tuple[int, int]]:
    """``[start, stop)`` sample ranges where ``fy`` exceeds :data:`CONTACT_N`, each extended
    while ``fy`` stays above :data:`EDGE_N`."""
    on = fy > CONTACT_N
    out = []
    i, n = 0, fy.size
    while i < n:
        if not on[i]:
            i += 1
            continue
        j = i
        while j < n and on[j]:
            j += 1
        a, b = i, j
        while a > 0 and fy[a - 1] > EDGE_N:
            a -= 1
        while b < n and fy[b] > EDGE_N:
            b += 1
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], b)
        else:
            out.append((a, b))
        i = j
    return out


@dataclass
class Assignment:
    plate: str
    start_s: float
    stop_s: float
    side: str  # "r" | "l"
    dist_m: float  # force-weighted mean horizontal distance of the CoP to that foot
    other_m: float  # the same to the other foot


def assign_feet(t: np.ndarray, F: np.ndarray, P: np.ndarray, plates: list[Plate],
                feet_t: np.ndarray, feet: dict[str, np.ndarray]):
    """Assign every stance on every plate to the nearer foot.

    ``feet[side]`` is ``(T_k, K, 3)``: points of that foot (e.g. heel and toe) in ground at times
    ``feet_t``. Returns a mask ``(n_plates, T, 2)`` (column 0 right, 1 left) and the list of
    :class:`Assignment`. Stances outside the kinematics' time range are dropped (mask 0).
    """
    mask = np.zeros(F.shape[:2] + (2,), dtype=bool)
    out = []
    for k, plate in enumerate(plates):
        for a, b in stances(F[k, :, 1]):
            sel = np.arange(a, b)
            sel = sel[(t[sel] >= feet_t[0]) & (t[sel] <= feet_t[-1])]
            w = np.clip(F[k, sel, 1], 0.0, None)
            if sel.size == 0 or w.sum() <= 0:
                continue
            cop = P[k, sel][:, [0, 2]]
            dists = {}
            for side, pts in feet.items():
                xz = np.stack([np.stack([np.interp(t[sel], feet_t, pts[:, j, c]) for c in (0, 2)],
                                        1) for j in range(pts.shape[1])])  # (K, n, 2)
                d = np.min(np.linalg.norm(xz - cop[None], axis=2), axis=0)
                dists[side] = float(np.sum(d * w) / w.sum())
            side = min(dists, key=dists.get)
            mask[k, a:b, 0 if side == "r" else 1] = True
            out.append(Assignment(plate.name, float(t[a]), float(t[b - 1]), side,
                                  round(dists[side], 3),
                                  round(dists["l" if side == "r" else "r"], 3)))
    return mask, out


def foot_loads(F: np.ndarray, P: np.ndarray, T: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Per-foot total force and moment about the ground origin: ``(T, 2, 6)`` as
    ``[Fx, Fy, Fz, Mx, My, Mz]`` for feet (right, left)."""
    M = np.cross(P, F) + T  # (n_plates, T, 3)
    out = np.zeros((F.shape[1], 2, 6))
    for s in range(2):
        m = mask[:, :, s][..., None]
        out[:, s, :3] = np.sum(F * m, axis=0)
        out[:, s, 3:] = np.sum(M * m, axis=0)
    return out


def lowpass(x: np.ndarray, cutoff_hz: float, rate_hz: float) -> np.ndarray:
    """Zero-phase Butterworth low-pass along axis 0 (no-op when the cut-off is above Nyquist)."""
    from scipy.signal import butter, sosfiltfilt

    if cutoff_hz <= 0 or cutoff_hz >= 0.5 * rate_hz or x.shape[0] < 16:
        return x
    sos = butter(FILTER_ORDER // 2, cutoff_hz, fs=rate_hz, output="sos")  # x2 by filtfilt
    return sosfiltfilt(sos, x, axis=0)


def centre_of_pressure(loads: np.ndarray, floor_y: float, min_fy: float) -> np.ndarray:
    """CoP ``(T, 2, 3)`` on the plane ``y = floor_y`` from ``foot_loads`` output; NaN where the
    vertical force is below ``min_fy`` N."""
    F, M = loads[..., :3], loads[..., 3:]
    fy = F[..., 1]
    ok = fy >= min_fy
    safe = np.where(ok, fy, 1.0)
    px = (M[..., 2] + floor_y * F[..., 0]) / safe
    pz = (floor_y * F[..., 2] - M[..., 0]) / safe
    cop = np.stack([px, np.full_like(px, floor_y), pz], -1)
    cop[~ok] = np.nan
    return cop


def floor_height(P: np.ndarray, F: np.ndarray) -> float:
    """Median height (m) of the plates' points where they carry load (0 when none do)."""
    on = F[..., 1] > CONTACT_N
    return float(np.median(P[..., 1][on])) if on.any() else 0.0
