"""Lab Streaming Layer transport: a marker inlet source, a marker outlet (replay) and the
estimates sink (one outlet per stream, so LabRecorder records estimates beside the mocap in one
XDF).

Channel layout of a marker stream (read from the stream's ``desc/channels``): 3 channels per
marker labelled ``NAME_X, NAME_Y, NAME_Z`` (separator ``_ . : - /`` or none, case-free), each with a
``unit`` of ``m`` / ``cm`` / ``mm`` (or ``meters``, ``millimeters``...). Without labels markers are
named ``M001, M002, ...``. Coordinates are Y up unless the source says ``up="z"``.
"""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

from hdys_rt.data.frames import zup_to_yup
from hdys_rt.data.markersets import parse_marker_channels
from hdys_rt.errors import HdysError
from hdys_rt.streams.base import Source, SourceLost
from hdys_rt.streams.lslconf import pylsl_module
from hdys_rt.streams.sinks import Sink
from hdys_rt.wire import decode_output

log = logging.getLogger(__name__)

try:
    from pylsl.util import LostError as _LostError
except ImportError:  # older pylsl
    from pylsl import LostError as _LostError

#: One continuous resolver per process, shared by every LSL source. A one-shot
#: ``resolve_bypred(pred, 1, 0.5)`` per source and retry could block forever in liblsl 1.18 once
#: several inlets were open (seen with 16 sources in one serve: a resolve sat in ``epoll_wait``
#: with no timeout long after its 0.5 s limit, serialised or not, so some streams never
#: connected and their senders, waiting for consumers, never sent).
#: while an outlet's layout is refused, look this often (s) for a newer outlet of the stream
REJECTED_LOOK_S = 1.0

_RESOLVER_LOCK = threading.Lock()
_RESOLVER = None


def _resolver():
    """The process's ``pylsl.ContinuousResolver`` (every stream; sources filter its results)."""
    global _RESOLVER
    with _RESOLVER_LOCK:
        if _RESOLVER is None:
            _RESOLVER = pylsl_module().ContinuousResolver(forget_after=2.0)
        return _RESOLVER

def _subject(info) -> dict | None:
    """``{"mass_kg", "height_m"}`` from the stream's ``desc/subject`` (written by
    :func:`hdys_rt.bridges.sinks.add_subject`), None when absent or unreadable."""
    sub = info.desc().child("subject")
    if sub.empty():
        return None
    out = {}
    for key in ("mass_kg", "height_m"):
        try:
            out[key] = float(sub.child_value(key))
        except ValueError:
            pass
    return out or None


def _channel_fields(info, field: str) -> list[str]:
    out = []
    ch = info.desc().child("channels").child("channel")
    while not ch.empty():
        out.append(ch.child_value(field))
        ch = ch.next_sibling()
    return out


class LslSource(Source):
    """Resolve an LSL marker stream by name and/or type, pull it, reconnect when it vanishes."""

    kind = "lsl"

    def __init__(self, name: str | None = None, stype: str = "MoCap", up: str = "y",
                 default_rate: float = 100.0, **kw):
        if up not in ("y", "z"):
            raise HdysError(f"up must be 'y' or 'z', got {up!r}")
        if not name and not stype:
            raise HdysError("an LSL source needs a stream name or type")
        super().__init__(name or stype, **kw)
        self.query_name, self.stype, self.up = name, stype, up
        self.default_rate = default_rate
        self._inlet = None
        self._scale = 1.0
        self._buf = np.zeros((0, 0), np.float32)
        self._rejecting: str | None = None  # the open stream's layout was refused: why
        self._created = 0.0                  # created_at of the open stream's outlet
        self._next_look = 0.0                # while rejecting: when to look for a newer outlet

    def describe(self) -> str:
        return f"LSL stream {self.name!r}"

    def _connect(self) -> bool:
        pylsl = pylsl_module()
        found = [i for i in _resolver().results()
                 if (not self.query_name or i.name() == self.query_name)
                 and (not self.stype or i.type() == self.stype)]
        if not found:
            return False
        found.sort(key=lambda i: -i.created_at())  # a stream that returned: its newest outlet
        inlet = pylsl.StreamInlet(found[0], max_buflen=1, recover=False,
                                  processing_flags=pylsl.proc_clocksync, as_numpy=True)
        self._rejecting = None
        try:
            info = inlet.info(1.0)
            n = info.channel_count()
            try:
                if info.channel_format() not in (pylsl.cf_float32, pylsl.cf_double64):
                    raise HdysError(f"LSL stream {info.name()!r} carries channel format "
                                    f"{info.channel_format()}; markers must be float32 or "
                                    "double")
                names, self._scale = parse_marker_channels(
                    _channel_fields(info, "label"), _channel_fields(info, "unit"), n,
                    info.name())
                self.subject = _subject(info)  # before the layout: the consumer reads it then
                self._set_layout(names, info.nominal_srate() or self.default_rate)
            except HdysError as exc:  # this outlet's layout is refused: count its samples as
                self._rejecting = str(exc)  # rejected and wait for a usable one; never fatal
                self._reject(0, self._rejecting)
            # prime clock sync (~0.6 s) before the data connection opens, so no samples wait
            inlet.time_correction(1.0)
            inlet.open_stream(1.0)
        except Exception:
            inlet.close_stream()
            raise
        if not self.query_name and self._rejecting is None:
            self.name = info.name()
        numeric = info.channel_format() in (pylsl.cf_float32, pylsl.cf_double64)
        self._buf = np.zeros((64, n), dtype=np.float32 if info.channel_format()
                             == pylsl.cf_float32 or not numeric else np.float64)
        self._created = found[0].created_at()
        self._next_look = time.monotonic() + REJECTED_LOOK_S
        self._inlet = inlet
        return True

    def _accepting(self) -> bool:
        return self._rejecting is None

    def _newer_outlet(self) -> bool:
        """While rejecting: has an outlet of this query appeared since (a usable one, maybe)?"""
        return any(i.created_at() > self._created for i in _resolver().results()
                   if (not self.query_name or i.name() == self.query_name)
                   and (not self.stype or i.type() == self.stype))

    def _acquire(self) -> None:
        try:
            data, ts = self._inlet.pull_chunk(timeout=0.1, max_samples=self._buf.shape[0],
                                              dest_obj=self._buf, min_samples=1)
        except _LostError as exc:
            raise SourceLost(str(exc)) from None
        if self._rejecting is not None:
            if len(ts):
                self._reject(len(ts), self._rejecting)
            now = time.monotonic()
            if now >= self._next_look:
                self._next_look = now + REJECTED_LOOK_S
                if self._newer_outlet():
                    raise SourceLost("a newer outlet appeared; trying its layout")
            return
        if len(ts) == 0:
            return
        n = len(self.names)
        for i, t in enumerate(ts):
            xyz = self._buf[i].reshape(n, 3)  # (markers, xyz)
            if self._scale != 1.0 or self._buf.dtype != np.float32:
                xyz = (xyz * self._scale).astype(np.float32)
            if self.up == "z":
                xyz = zup_to_yup(xyz)
            self._push(xyz, float(t), self.counters["received"])

    def _close(self) -> None:
        inlet, self._inlet = self._inlet, None
        if inlet is not None:
            try:
                inlet.close_stream()
            except Exception:  # already gone
                pass


def marker_outlet(name: str, names, rate: float, stype: str = "MoCap",
                  source_id: str | None = None):
    """An LSL outlet for markers: 3 float32 channels per marker, labelled NAME_X/Y/Z, metres."""
    pylsl = pylsl_module()
    info = pylsl.StreamInfo(name, stype, 3 * len(names), float(rate), pylsl.cf_float32,
                            source_id or f"hdys-{name}")
    describe_points(info.desc(), names)
    return pylsl.StreamOutlet(info, chunk_size=1, max_buffered=2)


def describe_points(desc, names) -> None:
    """Write the channel description of a point stream into an LSL ``desc``: channels
    NAME_X/_Y/_Z in metres (type PositionX/Y/Z) and ``up = y``."""
    chans = desc.append_child("channels")
    for n in names:
        for axis in "XYZ":
            c = chans.append_child("channel")
            c.append_child_value("label", f"{n}_{axis}")
            c.append_child_value("unit", "m")
            c.append_child_value("type", f"Position{axis}")
    desc.append_child_value("up", "y")


class LslEstimateOutlet:
    """Publishes one stream's estimates as an LSL outlet (float32, one channel per output
    channel, labels ``OUTPUT/CHANNEL`` with units), timestamps = the input samples' times."""

    def __init__(self, stream: str, outputs: dict[str, tuple[str, ...]],
                 units: dict[str, str], rate: float):
        pylsl = pylsl_module()
        self.order = tuple(outputs)
        n = sum(len(v) for v in outputs.values())
        self.name = f"{stream}-hdys"
        info = pylsl.StreamInfo(self.name, "Estimates", n, float(rate), pylsl.cf_float32,
                                f"hdys-est-{stream}")
        chans = info.desc().append_child("channels")
        for key in self.order:
            for ch in outputs[key]:
                c = chans.append_child("channel")
                c.append_child_value("label", f"{key}/{ch}")
                c.append_child_value("unit", units.get(key, ""))
                c.append_child_value("type", key)
        self._sample = np.zeros(n, dtype=np.float32)
        self._slices = []
        i = 0
        for key in self.order:
            self._slices.append((key, slice(i, i + len(outputs[key]))))
            i += len(outputs[key])
        self._outlet = pylsl.StreamOutlet(info, chunk_size=1, max_buffered=10)

    def push(self, outputs: dict[str, np.ndarray], t_src: float) -> None:
        for key, sl in self._slices:
            self._sample[sl] = outputs[key]
        self._outlet.push_sample(self._sample, t_src)

    def close(self) -> None:
        self._outlet = None


class LslEstimateSink(Sink):
    """The LSL output of a server (``serve --lsl-out``): one :class:`LslEstimateOutlet`
    ``NAME-hdys`` per stream, made from the stream's metadata and made anew when its outputs or
    rate change."""

    def __init__(self):
        self._lock = threading.Lock()
        self._outlets: dict[str, tuple[tuple, LslEstimateOutlet]] = {}

    def set_meta(self, stream: str, meta: bytes) -> None:
        m = decode_output(meta)
        outputs = {k: tuple(v["names"]) for k, v in m["outputs"].items()}
        units = {k: v["unit"] for k, v in m["outputs"].items()}
        rate = float(m["input"]["rate"])
        key = (tuple(outputs.items()), tuple(units.items()), rate)
        with self._lock:
            have = self._outlets.get(stream)
            if have is not None and have[0] == key:
                return
            if have is not None:
                have[1].close()
            self._outlets[stream] = (key, LslEstimateOutlet(stream, outputs, units, rate))

    def have_consumers(self, stream: str) -> bool:
        """Whether an LSL inlet is connected to ``stream``'s outlet."""
        have = self._outlets.get(stream)
        return have is not None and have[1]._outlet.have_consumers()

    def publish(self, stream: str, payload: bytes, outputs=None, t_src=None) -> None:
        have = self._outlets.get(stream)
        if have is not None and outputs is not None:
            have[1].push(outputs, t_src)

    def close(self) -> None:
        with self._lock:
            for _, outlet in self._outlets.values():
                outlet.close()
            self._outlets.clear()
