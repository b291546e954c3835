"""Per-subject scaling: the model's outputs per kg body mass to absolute units.

The model estimates torques in N·m/kg and GRF in body weights (N/BW). With a subject's mass
(kg) and height (m):

* ``torques_*`` (N·m/kg) -> ``torques_*_Nm`` (N·m) = value x mass;
* ``grf`` force channels (N/BW) -> ``grf_N`` (N) = value x mass x g; centre of pressure stays m;
* with the height too, ``torques_*_pct_bwht`` (%BW·Ht) = 100 x value / (g x height).

A low-level module (numpy only) so the runtime and the bridges both import it downward; where
the subject comes from (flags, an LSL stream's ``desc``) is :mod:`hdys_rt.bridges.subject`.
"""

from __future__ import annotations

import numpy as np

from hdys_rt import representations as reps
from hdys_rt.representations import G  # re-exported: one BW = mass x G newtons


__all__ = ["G", "absolute_channels", "absolute_outputs"]


def absolute_channels(channels: dict[str, tuple[str, ...]], height_m: float | None = None
                      ) -> tuple[dict[str, tuple[str, ...]], dict[str, str]]:
    """Channel names and units of the derived absolute outputs (see the module doc) of a model
    whose outputs are named ``channels``."""
    chans, units = {}, {}
    for k, names in channels.items():
        if reps.is_torque(k):
            chans[f"{k}_Nm"], units[f"{k}_Nm"] = names, "N·m"
            if height_m:
                chans[f"{k}_pct_bwht"], units[f"{k}_pct_bwht"] = names, "%BW·Ht"
        elif k == "grf":
            chans["grf_N"], units["grf_N"] = names, "N | m"
    return chans, units


def absolute_outputs(outputs: dict[str, np.ndarray], channels: dict[str, tuple[str, ...]],
                     mass_kg: float, height_m: float | None = None
                     ) -> tuple[dict[str, np.ndarray], dict[str, tuple[str, ...]], dict[str, str]]:
    """Derived absolute outputs of one estimate: ``(values, channels, units)`` of the new keys
    (see the module doc). ``outputs[k]`` is ``(C,)``; ``channels[k]`` names its channels."""
    chans, units = absolute_channels({k: channels[k] for k in outputs}, height_m)
    vals = {}
    for k, v in outputs.items():
        if reps.is_torque(k):
            vals[f"{k}_Nm"] = np.asarray(v, np.float32) * np.float32(mass_kg)
            if height_m:
                vals[f"{k}_pct_bwht"] = np.asarray(v, np.float32) * np.float32(
                    100.0 / (G * height_m))
        elif k == "grf":
            force = np.array([reps.is_force(c) for c in channels[k]])
            out = np.asarray(v, np.float32).copy()
            out[force] *= np.float32(mass_kg * G)
            vals["grf_N"] = out
    return vals, chans, units
