"""Where replayed points go (``hdys-rt replay``, ``hdys-rt bridge``): an LSL outlet with full
metadata, or the ZeroMQ marker sender (CURVE with client keys). Estimates leave a server through
the other kind of sink, :class:`hdys_rt.streams.sinks.Sink`.

LSL point streams (markers or keypoints) follow the layout ``hdys-rt serve`` reads
(:mod:`hdys_rt.streams.lsl`): float32, 3 channels per point labelled ``NAME_X, NAME_Y, NAME_Z``,
``unit`` ``m``, ``type`` ``PositionX/Y/Z``, the nominal rate, and in ``desc``: ``up`` = ``y``,
``hdys/kind`` (``markers`` / ``keypoints``), ``hdys/layout`` (keypoints), ``subject/mass_kg``,
``subject/height_m`` when known, and ``acquisition`` naming the source file. Tables get one
channel per column with its label and unit.
"""

from __future__ import annotations

import logging

import numpy as np

from hdys_rt import representations as reps
from hdys_rt.data.corpus import Subject
from hdys_rt.errors import HdysError

log = logging.getLogger(__name__)

__all__ = ["PointSink", "LslSink", "ZmqSink", "make_sink", "add_subject"]


def add_subject(desc, subject: Subject | None) -> None:
    """Append ``subject/{id, mass_kg, height_m}`` to an LSL ``desc`` element (when known)."""
    if subject is None:
        return
    s = desc.append_child("subject")
    s.append_child_value("id", str(subject.id))
    s.append_child_value("mass_kg", f"{subject.mass_kg:g}")
    s.append_child_value("height_m", f"{subject.height_m:g}")


class PointSink:
    """Sends frames: ``push(values, t, seq)`` with values ``(P, 3)`` metres or ``(C,)``."""

    where = ""

    def wait(self, timeout: float) -> bool:
        return True

    def push(self, values: np.ndarray, t: float, seq: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class LslSink(PointSink):
    """An LSL outlet (see the module doc for its metadata)."""

    def __init__(self, name: str, names, rate: float, kind: str = "markers",
                 stype: str = "MoCap", units=None, subject: Subject | None = None,
                 layout: str | None = None, source: str = ""):
        from hdys_rt.streams.lsl import describe_points
        from hdys_rt.streams.lslconf import pylsl_module

        pylsl = pylsl_module()
        self.kind = kind
        points = reps.is_point_set(kind)
        n = 3 * len(names) if points else len(names)
        info = pylsl.StreamInfo(name, stype, n, float(rate), pylsl.cf_float32, f"hdys-{name}")
        desc = info.desc()
        if points:
            describe_points(desc, names)
        else:
            chans = desc.append_child("channels")
            for nm, u in zip(names, units or [""] * len(names)):
                c = chans.append_child("channel")
                c.append_child_value("label", nm)
                c.append_child_value("unit", u)
        h = desc.append_child("hdys")
        h.append_child_value("kind", kind)
        if layout:
            h.append_child_value("layout", layout)
        add_subject(desc, subject)
        acq = desc.append_child("acquisition")
        acq.append_child_value("manufacturer", "hdys-rt bridge")
        if source:
            acq.append_child_value("source", str(source))
        self._outlet = pylsl.StreamOutlet(info, chunk_size=1, max_buffered=2)
        self.where = f"LSL stream {name!r} (type {stype})"

    def wait(self, timeout: float) -> bool:
        return self._outlet.wait_for_consumers(timeout)

    def push(self, values, t, seq) -> None:
        self._outlet.push_sample(np.asarray(values, np.float32).reshape(-1), t)

    def close(self) -> None:
        self._outlet = None


class ZmqSink(PointSink):
    """The ZeroMQ marker sender (:class:`hdys_rt.client.MarkerSender`), points only. ``curve``:
    client keys (a key folder or :class:`~hdys_rt.security.ClientKeys`) for a serve run with
    ``--curve-keys``."""

    def __init__(self, name: str, names, rate: float, endpoint: str, kind: str = "markers",
                 curve=None):
        from hdys_rt.client import MarkerSender

        if not reps.is_point_set(kind):
            raise HdysError(f"ZeroMQ carries point sets (markers, keypoints), not a {kind}; "
                            "use --to lsl")
        self._sender = MarkerSender(names, rate, endpoint, src=name, curve=curve)
        self.where = f"ZeroMQ {endpoint}"

    def wait(self, timeout: float) -> bool:
        return self._sender.wait_for_subscriber(timeout)

    def push(self, values, t, seq) -> None:
        self._sender.send(values, t, seq)

    def close(self) -> None:
        self._sender.close()


def make_sink(to: str, name: str, names, rate: float, kind: str = "markers",
              endpoint: str = "tcp://127.0.0.1:5559", stype: str = "MoCap", units=None,
              subject: Subject | None = None, layout: str | None = None,
              source: str = "", curve=None) -> PointSink:
    """An :class:`LslSink` (``to="lsl"``) or :class:`ZmqSink` (``to="zmq"``; ``curve``: its
    client keys)."""
    if to == "lsl":
        if curve is not None:
            raise HdysError("--curve-keys is for --to zmq (LSL has no encryption)")
        return LslSink(name, names, rate, kind, stype, units, subject, layout, source)
    if to == "zmq":
        return ZmqSink(name, names, rate, endpoint, kind, curve)
    raise HdysError(f"to must be 'lsl' or 'zmq', got {to!r}")
