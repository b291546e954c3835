"""Coordinate-frame conversions into the project's convention (Y up, metres)."""

from __future__ import annotations

import numpy as np


def zup_to_yup(xyz: np.ndarray) -> np.ndarray:
    """Rotate points from a Z-up frame (MuJoCo, most C3D) to Y up: (x, y, z) -> (x, z, -y).

    Works on any array whose last axis is 3; returns a new float32 array.
    """
    xyz = np.asarray(xyz, dtype=np.float32)
    return np.stack([xyz[..., 0], xyz[..., 2], -xyz[..., 1]], axis=-1)


def yup_to_zup(xyz: np.ndarray) -> np.ndarray:
    """Inverse of :func:`zup_to_yup`: (x, y, z) -> (x, -z, y)."""
    xyz = np.asarray(xyz, dtype=np.float32)
    return np.stack([xyz[..., 0], -xyz[..., 2], xyz[..., 1]], axis=-1)
