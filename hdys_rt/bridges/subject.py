"""Where a subject's mass and height come from, for the per-kg -> absolute scaling of
:mod:`hdys_rt.subject` (re-exported here: ``G``, ``absolute_channels``, ``absolute_outputs``).

The subject comes from the flags, else from the stream's metadata (an LSL ``desc`` with
``subject/mass_kg`` and ``subject/height_m``, written by the file bridges from corpus and XDF
files), else it is unknown and only the per-kg outputs exist.
"""

from __future__ import annotations

import logging

from hdys_rt.data.corpus import Subject
from hdys_rt.errors import HdysError
from hdys_rt.subject import G, absolute_channels, absolute_outputs

log = logging.getLogger(__name__)

__all__ = ["G", "make_subject", "absolute_channels", "absolute_outputs", "lsl_subject"]


def make_subject(mass: float | None, height: float | None, sid: str = "subject") -> Subject | None:
    """A :class:`~hdys_rt.data.corpus.Subject` from ``--mass`` / ``--height`` (None if no mass).
    A height without a mass is an error (it alone scales nothing)."""
    if mass is None:
        if height is not None:
            raise HdysError("--height needs --mass too (torques in N·m scale with mass)")
        return None
    return Subject(sid, float(mass), float(height) if height is not None else 1.70)


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
