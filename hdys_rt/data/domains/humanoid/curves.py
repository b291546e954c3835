"""Rotation matrices about the Y-up axes and the smooth curves the motion generators draw with."""

from __future__ import annotations

import numpy as np


# --- rotations and curves ----------------------------------------------------------------------

def _rot(axis: int, a) -> np.ndarray:
    a = np.asarray(a, dtype=float)
    c, s = np.cos(a), np.sin(a)
    R = np.zeros(a.shape + (3, 3))
    i, j = [(1, 2), (2, 0), (0, 1)][axis]
    R[..., axis, axis] = 1.0
    R[..., i, i] = c
    R[..., j, j] = c
    R[..., i, j] = -s
    R[..., j, i] = s
    return R


def rx(a):
    return _rot(0, a)


def ry(a):
    return _rot(1, a)


def rz(a):
    return _rot(2, a)


def _ss(x):
    """Quintic smoothstep (minimum jerk) on [0, 1], clipped outside."""
    x = np.clip(x, 0.0, 1.0)
    return x * x * x * (x * (x * 6.0 - 15.0) + 10.0)


def _bump(t, t0, rise, hold, fall):
    """0 -> 1 over ``rise`` from ``t0``, hold, 1 -> 0 over ``fall`` (min-jerk edges)."""
    return _ss((t - t0) / max(rise, 1e-3)) * (1.0 - _ss((t - t0 - rise - hold) / max(fall, 1e-3)))


def _noise(rng, t, amp, fmax=0.6, n=3):
    """Smooth random curve: sum of ``n`` sinusoids below ``fmax`` Hz, peak ~amp."""
    out = np.zeros_like(t)
    for _ in range(n):
        f = rng.uniform(0.05, fmax)
        out += np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) * rng.uniform(0.3, 1.0)
    return amp * out / n


def _keys(t, kt, kv):
    """Shape-preserving (PCHIP) interpolation through keyframes, held outside."""
    from scipy.interpolate import PchipInterpolator

    kt, kv = np.asarray(kt, float), np.asarray(kv, float)
    order = np.argsort(kt, kind="stable")
    kt, kv = kt[order], kv[order]
    keep = np.concatenate([[True], np.diff(kt) > 1e-4])
    kt, kv = kt[keep], kv[keep]
    if len(kt) == 1:
        return np.full_like(t, kv[0])
    return PchipInterpolator(kt, kv)(np.clip(t, kt[0], kt[-1]))


def _quintic(t, t0, t1, a, b):
    """Quintic from (pos, vel, acc) ``a`` at t0 to ``b`` at t1, evaluated on t in [t0, t1]."""
    D = t1 - t0
    p0, v0, a0 = a
    p1, v1, a1 = b
    c0, c1, c2 = p0, v0 * D, 0.5 * a0 * D * D
    m = np.array([[1, 1, 1], [3, 4, 5], [6, 12, 20]], dtype=float)
    rhs = np.array([p1 - c0 - c1 - c2, v1 * D - c1 - 2 * c2, a1 * D * D - 2 * c2])
    c3, c4, c5 = np.linalg.solve(m, rhs)
    s = (t - t0) / D
    return c0 + s * (c1 + s * (c2 + s * (c3 + s * (c4 + s * c5))))


def _gauss(x, sigma):
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(x, sigma, axis=0, mode="nearest") if sigma > 0 else x
