"""File replay: a recording played as a live stream with a drift-compensated clock.

:class:`Player` schedules frame ``i`` at ``t0 + i / rate`` (absolute, so sleep overshoot never
accumulates) and serves both the product (``hdys-rt demo``, ``serve --source replay``,
``hdys-rt replay``, ``hdys-rt bridge file``) and the tests (a real stream with a unique name per
test). It plays a :class:`~hdys_rt.data.recording.Recording`; files become one through the one
loader, :func:`hdys_rt.data.loader.load_file` (marker names mapped, units checked).
"""

from __future__ import annotations

import logging
import threading
import time
from importlib import resources
from pathlib import Path

from hdys_rt.data.recording import Recording
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


class Player:
    """Yields a recording's frames in real time: ``(seq, xyz, t)`` with ``t`` the monotonic
    (= LSL local_clock) time it was scheduled for (emitted then, or just after), or ``None`` while waiting (at most every 0.1 s) so the
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
            # stamped with its scheduled time: the recording's own clock, without the jitter of
            # this thread's wake-ups (the runtime resamples by these times)
            yield i, self.rec.data[i % T], due
            i += 1

    def play(self, push, stop: threading.Event, count: int | None = None,
             progress=None) -> int:
        """Play into ``push(values, t, seq)`` (values ``(P, 3)`` metres or ``(C,)``) until the
        end, ``stop`` or ``count`` frames; ``progress(n)`` after each frame. Returns the frames
        emitted."""
        for item in self.frames(stop):
            if item is None:
                continue
            seq, values, t = item
            push(values, t, seq)
            if progress is not None:
                progress(1)
            if count is not None and self.emitted >= count:
                break
        return self.emitted


class ReplaySource(Source):
    """A point recording (:func:`hdys_rt.data.loader.load_file`) played into the ring in real
    time (in-process, no network)."""

    kind = "replay"

    def __init__(self, rec: Recording, rate: float | None = None, speed: float = 1.0,
                 loop: bool = False, seconds: float | None = None, name: str | None = None,
                 **kw):
        if not isinstance(rec, Recording) or not rec.points:
            raise HdysError(f"a replay source plays markers or keypoints, got "
                            f"{getattr(rec, 'kind', type(rec).__name__)}")
        super().__init__(name or Path(rec.source or "replay").stem, **kw)
        self.player = Player(rec, rate=rate, speed=speed, loop=loop, seconds=seconds)
        self._frames = None
        self.upright = rec.upright  # the loader's orientation check (it warned already)

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
