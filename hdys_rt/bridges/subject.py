"""Per-subject scaling: the model's outputs per kg body mass to absolute units.

The model estimates torques in N·m/kg and GRF in body weights (N/BW). With a subject's mass
(``--mass`` kg) and height (``--height`` m):

* ``torques_*`` (N·m/kg) -> ``torques_*_Nm`` (N·m) = value x mass;
* ``grf`` force channels (N/BW) -> ``grf_N`` (N) = value x mass x G; centre of pressure stays m;
* with the height too, ``torques_*_pct_bwht`` (%BW·Ht) = 100 x value / (g x height).

The subject comes from the flags, else from the stream's metadata (an LSL ``desc`` with
``subject/mass_kg`` and ``subject/height_m``, written by the file bridges from corpus and XDF
files), else it is unknown and only the per-kg outputs exist.
"""

from __future__ import annotations

import logging

import numpy as np

from hdys_rt import representations as reps
from hdys_rt.data.corpus import Subject
from hdys_rt.errors import HdysError

log = logging.getLogger(__name__)

__all__ = ["make_subject", "absolute_channels", "absolute_outputs", "lsl_subject"]


def make_subject(mass: float | None, height: float | None, sid: str = "subject") -> Subject | None:
    """A :class:`~hdys_rt.data.corpus.Subject` from ``--mass`` / ``--height`` (None if no mass).
    A height without a mass is an error (it alone scales nothing)."""
    if mass is None:
        if height is not None:
            raise HdysError("--height needs --mass too (torques in N·m scale with mass)")
        return None
    return Subject(sid, float(mass), float(height) if height is not None else 1.70)


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
                    100.0 / (reps.G * height_m))
        elif k == "grf":
            force = np.array([reps.is_force(c) for c in channels[k]])
            out = np.asarray(v, np.float32).copy()
            out[force] *= np.float32(mass_kg * reps.G)
            vals["grf_N"] = out
    return vals, chans, units


def lsl_subject(name: str, timeout: float = 1.0) -> Subject | None:
    """The subject in the ``desc`` of the LSL stream called ``name`` (None when the stream is
    not found or states no mass)."""
    from hdys_rt.streams.lslconf import pylsl_module

    pylsl = pylsl_module()
    if "'" in name:
        return None
    found = pylsl.resolve_bypred(f"name='{name}'", 1, timeout)
    if not found:
        return None
    inlet = pylsl.StreamInlet(found[0])
    try:
        subj = inlet.info(timeout).desc().child("subject")
        if subj.empty() or not subj.child_value("mass_kg"):
            return None
        return Subject(subj.child_value("id") or name, float(subj.child_value("mass_kg")),
                       float(subj.child_value("height_m") or 1.70))
    except (ValueError, HdysError) as exc:
        log.warning("LSL stream %r: unreadable subject metadata (%s)", name, exc)
        return None
    finally:
        inlet.close_stream()
