"""File replay: a recording played as a live stream with a drift-compensated clock.

:class:`Player` schedules frame ``i`` at ``t0 + i / rate`` (absolute, so sleep overshoot never
accumulates) and serves both the product (``hdys-rt demo``, ``serve --source replay``,
``hdys-rt replay``) and the tests (a real stream with a unique name per test).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from hdys_rt.errors import HdysError
from hdys_rt.streams.base import Source

log = logging.getLogger(__name__)

#: Bundled demo clip: a real gait trial (opensim-models, Rajagopal pipeline); see
#: assets/motion_capture_walk.NOTICE.
DEMO_CLIP = "motion_capture_walk.trc"

#: A late player re-anchors its clock instead of bursting more than this many seconds of frames.
MAX_CATCH_UP_S = 0.5


def demo_clip_path() -> Path:
    return Path(str(resources.files("hdys_rt") / "assets" / DEMO_CLIP))


@dataclass
class Recording:
    """Markers of a recording: ``xyz`` (T, P, 3) float32 metres Y up, NaN = missing."""

    names: tuple[str, ...]
    rate: float
    xyz: np.ndarray
    source: str = ""

    @property
    def frames(self) -> int:
        return self.xyz.shape[0]

    def resampled(self, rate: float) -> "Recording":
        """Linear interpolation to ``rate`` Hz (a marker missing at either neighbour stays NaN)."""
        if not rate > 0:
            raise HdysError(f"rate must be > 0 Hz, got {rate}")
        if rate == self.rate:
            return self
        T = self.frames
        duration = (T - 1) / self.rate
        n = int(np.floor(duration * rate + 1e-9)) + 1
        pos = np.arange(n) * (self.rate / rate)  # fractional source frame of each output frame
        i0 = np.minimum(np.floor(pos).astype(int), T - 1)
        i1 = np.minimum(i0 + 1, T - 1)
        w = (pos - i0).astype(np.float32)[:, None, None]
        xyz = (1.0 - w) * self.xyz[i0] + w * self.xyz[i1]  # (frames, points, 3)
        return Recording(self.names, float(rate), xyz.astype(np.float32), self.source)


def load_recording(path: str | os.PathLike) -> Recording:
    """Markers from a .trc / .c3d file or a corpus sequence sidecar (.json)."""
    p = Path(path)
    if not p.exists():
        raise HdysError(f"recording {p} does not exist")
    if p.suffix.lower() == ".json":
        from hdys_rt.data.corpus import read_sequence

        seq = read_sequence(p)
        if "markers" not in seq.data:
            raise HdysError(f"{p}: the sequence has no markers (it has {sorted(seq.data)})")
        return Recording(tuple(seq.names["markers"]), float(seq.rate),
                         np.asarray(seq.data["markers"], np.float32), str(p))
    if p.suffix.lower() not in (".trc", ".c3d"):
        raise HdysError(f"recording {p}: unsupported file type {p.suffix!r}; expected .trc, "
                        ".c3d or a corpus sequence .json")
    from hdys_rt.data.formats import load_markers

    md = load_markers(p)
    return Recording(tuple(md.names), float(md.rate), np.asarray(md.xyz, np.float32), str(p))


class Player:
    """Yields a recording's frames in real time: ``(seq, xyz, t)`` with ``t`` the monotonic
    (= LSL local_clock) time of emission, or ``None`` while waiting (at most every 0.1 s) so the
    caller can react to a stop request."""

    def __init__(self, rec: Recording, rate: float | None = None, speed: float = 1.0,
                 loop: bool = False, seconds: float | None = None):
        if not speed > 0:
            raise HdysError(f"speed must be > 0, got {speed}")
        if seconds is not None and not seconds > 0:
            raise HdysError(f"seconds must be > 0, got {seconds}")
        self.rec = rec.resampled(rate) if rate else rec
        self.rate = self.rec.rate
        self.speed, self.loop, self.seconds = speed, loop, seconds
        self.emitted = 0

    def frames(self, stop: threading.Event):
        period = 1.0 / (self.rate * self.speed)
        T = self.rec.frames
        limit = None if self.seconds is None else int(round(self.seconds * self.rate * self.speed))
        t0 = time.monotonic()
        i = 0
        while not stop.is_set():
            if limit is not None and i >= limit:
                return
            if i >= T and not self.loop:
                return
            due = t0 + i * period
            now = time.monotonic()
            if due > now:
                stop.wait(min(due - now, 0.1))
                if time.monotonic() < due:
                    yield None
                    continue
            elif now - due > MAX_CATCH_UP_S:
                log.warning("replay fell %.2f s behind; re-anchoring its clock", now - due)
                t0 = now - i * period
            self.emitted += 1
            yield i, self.rec.xyz[i % T], time.monotonic()
            i += 1


class ReplaySource(Source):
    """A recording played into the ring in real time (in-process, no network)."""

    kind = "replay"

    def __init__(self, path: str | os.PathLike | Recording, rate: float | None = None,
                 speed: float = 1.0, loop: bool = False, seconds: float | None = None,
                 name: str | None = None, **kw):
        rec = path if isinstance(path, Recording) else load_recording(path)
        super().__init__(name or Path(rec.source or "replay").stem, **kw)
        self.player = Player(rec, rate=rate, speed=speed, loop=loop, seconds=seconds)
        self._frames = None

    def describe(self) -> str:
        return f"replay {self.name!r}"

    def _connect(self) -> bool:
        self._set_layout(self.player.rec.names, self.player.rate)
        self._frames = self.player.frames(self._stop)
        return True

    def _acquire(self) -> None:
        item = next(self._frames, StopIteration)
        if item is StopIteration:
            log.info("%s: end of recording after %d frames", self.describe(),
                     self.player.emitted)
            self.finished.set()
        elif item is not None:
            seq, xyz, t = item
            self._push(xyz, t, seq, t)

    def _close(self) -> None:
        self._frames = None
