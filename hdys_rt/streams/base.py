"""The one abstract stream base: it owns the ring buffer, timestamps, the new-sample counter and
the lock; each transport (LSL, ZeroMQ, file replay) adds only connect / acquire / close.

An acquisition thread per source connects, pulls samples into the ring and reconnects when the
source vanishes; consumers wait on :meth:`Source.wait` and copy frames out with
:meth:`Source.read`. Samples whose timestamp is not after the previous one are dropped and
counted (out of order / duplicates); after a silence, or a long run of them, the clock is taken
to have jumped and the stream resynchronises instead.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from abc import ABC, abstractmethod
from typing import Callable

import numpy as np

from hdys_rt.errors import HdysError
from hdys_rt.streams.ring import FrameRing

log = logging.getLogger(__name__)

#: A run of this many out-of-order samples means the source clock jumped back: resynchronise.
OOO_RESYNC = 50
#: A timestamp this many seconds before the previous one is a clock jump, not a late sample:
#: resynchronise at once (samples reordered in transport are late by milliseconds).
JUMP_BACK_S = 1.0
#: A forward jump of the sender's counter beyond this is a new counter, not lost frames.
MAX_SEQ_GAP = 100_000


class SourceLost(Exception):
    """Raised by ``_acquire`` when the transport lost its source; the base reconnects."""


class LayoutRejected(HdysError):
    """A stream's channel layout that the consumer cannot take (too many markers, none, a
    channel count that is no marker set): its frames are counted ``rejected``, serving goes on
    and the source keeps waiting for a usable layout. Never fatal."""


class RateLimitedLog:
    """Log a recurring problem at most once per ``period`` seconds per key, with a repeat count."""

    def __init__(self, logger: logging.Logger, period: float = 5.0):
        self._log, self._period = logger, period
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def warning(self, key: str, msg: str, *args) -> None:
        now = time.monotonic()
        if now - self._last.get(key, -math.inf) >= self._period:
            n = self._suppressed.pop(key, 0)
            self._log.warning(msg + (" (%d more since last report)" if n else ""),
                              *args, *((n,) if n else ()))
            self._last[key] = now
        else:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1


class Source(ABC):
    """A live marker stream feeding a :class:`~hdys_rt.streams.ring.FrameRing`.

    Attributes:
        name: stream name, used as the estimate stream id.
        names / rate: the current channel layout (marker names, nominal Hz); ``layout_id``
            increases whenever they change (the ring is then reallocated).
        counters: received, out_of_order, malformed, oversized, rejected, reconnects, lost,
            resyncs, and skipped (frames the sender numbered but that never arrived: forward
            jumps of the sender's ``seq``; ZeroMQ only, LSL has no sender counter).
        check_layout: optional callable ``(names, rate)`` raising :class:`HdysError` when the
            consumer cannot accept a layout (set by the pipeline before :meth:`start`).
    """

    kind = "abstract"
    #: the transport carries the sender's frame counter (gaps in it are counted as skipped)
    counts_seq = False

    def __init__(self, name: str, capacity: int = 256, stall_s: float = 1.0):
        if capacity < 2:
            raise HdysError(f"capacity must be >= 2 frames, got {capacity}")
        if not stall_s > 0:
            raise HdysError(f"stall_s must be > 0 s, got {stall_s}")
        self.name = name
        self.capacity = int(capacity)
        self.stall_s = float(stall_s)
        self.names: tuple[str, ...] = ()
        self.rate = 0.0
        self.layout_id = 0
        self.ring: FrameRing | None = None
        self.counters = {"received": 0, "out_of_order": 0, "malformed": 0, "oversized": 0,
                         "rejected": 0, "reconnects": 0, "lost": 0, "resyncs": 0, "skipped": 0}
        self.layout_base = 0  # frames received before the current layout began
        self.check_layout: Callable[[tuple[str, ...], float], None] | None = None
        self.error: HdysError | None = None       # a fatal error that stopped acquisition
        self.rejection: str | None = None         # why the last rejected layout was refused
        self.connected = threading.Event()
        self.ever_connected = threading.Event()
        self.finished = threading.Event()          # a finite source (replay) reached its end
        self.wake: threading.Event | None = None   # set on every frame / layout (a consumer's)
        self.subject: dict | None = None           # {"mass_kg", "height_m"} from the stream
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last_t = -math.inf
        self._last_seq: int | None = None
        self._ooo_run = 0
        self._last_data = time.monotonic()
        self._silent = False
        self._rlog = RateLimitedLog(log)

    # --- what a transport implements ---------------------------------------------------------
    @abstractmethod
    def _connect(self) -> bool:
        """Try to connect once (a short wait at most); call :meth:`_set_layout`. Return success.
        Raise :class:`HdysError` for a fatal, user-fixable problem."""

    @abstractmethod
    def _acquire(self) -> None:
        """Wait up to ~0.1 s for samples and :meth:`_push` each; raise :class:`SourceLost`."""

    @abstractmethod
    def _close(self) -> None:
        """Release the transport (safe to call when not connected)."""

    def _accepting(self) -> bool:
        """False while connected to a sender whose layout was refused (its frames are counted
        ``rejected``); the source then does not count as connected."""
        return True

    def describe(self) -> str:
        return f"{self.kind} stream {self.name!r}"

    # --- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "Source":
        self._thread = threading.Thread(target=self._run, name=f"src-{self.name}", daemon=True)
        self._thread.start()
        return self

    def request_stop(self) -> None:
        """Ask the acquisition thread to end (returns at once; :meth:`stop` joins)."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self.wake is not None:
            self.wake.set()

    def stop(self, timeout: float = 3.0) -> None:
        self.request_stop()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():  # inside a blocking transport call; it is a daemon
                log.debug("%s: acquisition thread did not stop within %.1f s",
                            self.describe(), timeout)
        self._close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        while not self._stop.is_set() and not self.finished.is_set():
            if not self.connected.is_set():
                try:
                    ok = self._connect()
                except HdysError as exc:
                    self.error = exc
                    log.error("%s: %s", self.describe(), exc)
                    break
                except Exception as exc:  # transport hiccup: log and retry
                    self._rlog.warning("connect", "%s: connect failed: %s", self.describe(), exc)
                    ok = False
                if not ok:
                    self._stop.wait(0.1)
                    continue
                if not self._accepting():
                    pass  # counted and logged as rejected; waits for a usable layout
                elif self.ever_connected.is_set():
                    self.counters["reconnects"] += 1
                    log.warning("%s: reconnected", self.describe())
                else:
                    log.info("%s: connected (%d markers at %g Hz)", self.describe(),
                             len(self.names), self.rate)
                if self._accepting():
                    self.ever_connected.set()
                self.connected.set()
                self._last_data = time.monotonic()
            try:
                self._acquire()
            except SourceLost as exc:
                self.counters["lost"] += 1
                log.warning("%s: source lost (%s); reconnecting", self.describe(), exc)
                self._close()
                self.connected.clear()
                self._silent = True
                continue
            except HdysError as exc:
                self.error = exc
                log.error("%s: %s", self.describe(), exc)
                break
            except Exception as exc:  # never let one bad sample kill acquisition
                self._rlog.warning("acquire", "%s: acquisition error: %s", self.describe(), exc)
                self._stop.wait(0.01)
            if (self.connected.is_set() and not self._silent
                    and time.monotonic() - self._last_data > self.stall_s):
                self._silent = True
                log.warning("%s: no data for %.1f s", self.describe(), self.stall_s)
        self.connected.clear()
        self.finished.set()
        with self._cond:
            self._cond.notify_all()
        if self.wake is not None:
            self.wake.set()

    # --- for transports ----------------------------------------------------------------------
    def _set_layout(self, names: tuple[str, ...], rate: float) -> None:
        """Adopt a channel layout; a change reallocates the ring and bumps ``layout_id``."""
        names = tuple(names)
        if names == self.names and rate == self.rate and self.ring is not None:
            return
        if not names:
            raise LayoutRejected("a frame with no markers")
        if self.check_layout is not None:
            try:
                self.check_layout(names, rate)
            except HdysError as exc:
                raise LayoutRejected(str(exc)) from None
        ring = FrameRing(self.capacity, len(names))
        with self._cond:
            if self.ring is not None:  # churn must not flood the log: at most one line per 5 s
                self._rlog.warning("layout", "%s: channel layout changed (%d -> %d markers, "
                                   "%g -> %g Hz)", self.describe(), len(self.names), len(names),
                                   self.rate, rate)
            self.names, self.rate, self.ring = names, float(rate), ring
            self.layout_id += 1
            self.layout_base = self.counters["received"]
            self._last_t = -math.inf
            self._cond.notify_all()
        if self.wake is not None:
            self.wake.set()

    def _reject(self, n: int, reason: str, seq: int | None = None) -> None:
        """Count ``n`` frames ``rejected`` (a layout the consumer cannot take); the sender's
        ``seq`` moves on, so they are not also counted ``skipped``."""
        with self._cond:
            self.counters["rejected"] += n
            self.rejection = reason
            if seq is not None:
                self._last_seq = seq
        self._rlog.warning("rejected", "%s: frame rejected: %s", self.describe(), reason)

    def _push(self, xyz: np.ndarray, t: float, seq: int, t_recv: float | None = None) -> bool:
        """Store one sample (already in metres, Y up); False when dropped as out of order."""
        now = time.monotonic() if t_recv is None else t_recv
        with self._cond:
            if t <= self._last_t:
                if (self._silent or self._ooo_run >= OOO_RESYNC
                        or self._last_t - t > JUMP_BACK_S):
                    self.counters["resyncs"] += 1
                    log.warning("%s: source clock jumped back by %.3f s; resynchronising",
                                self.describe(), self._last_t - t)
                else:
                    self.counters["out_of_order"] += 1
                    self._ooo_run += 1
                    self._rlog.warning("ooo", "%s: out-of-order sample dropped (t %.6f <= %.6f)",
                                       self.describe(), t, self._last_t)
                    return False
            self._ooo_run = 0
            self._last_t = t
            if (self.counts_seq and self._last_seq is not None
                    and self._last_seq + 1 < seq <= self._last_seq + MAX_SEQ_GAP):
                self.counters["skipped"] += seq - self._last_seq - 1
            self._last_seq = seq
            self.ring.push(xyz, t, now, seq)
            self.counters["received"] += 1
            self._cond.notify_all()
        if self.wake is not None:
            self.wake.set()
        self._last_data = now
        if self._silent:
            self._silent = False
            log.info("%s: data flowing again", self.describe())
        return True

    # --- for consumers -----------------------------------------------------------------------
    def wait(self, after: int, layout_id: int, timeout: float) -> tuple[int, int]:
        """Wait until the ring holds more than ``after`` frames or the layout changed; return
        ``(count, layout_id)`` (the current values, also after a timeout)."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._stop.is_set() or self.finished.is_set()
                or self.layout_id != layout_id or (self.ring is not None
                                                   and self.ring.count > after),
                timeout)
            return (0 if self.ring is None else self.ring.count), self.layout_id

    def layout_info(self) -> tuple[int, int, int]:
        """``(layout_id, layout_base, ring count)`` read together: frame ``i`` of the current
        layout is the ``layout_base + i``-th frame received."""
        with self._cond:
            return self.layout_id, self.layout_base, (0 if self.ring is None else self.ring.count)

    def counters_snapshot(self) -> dict:
        """A copy of :attr:`counters` taken under the lock (``received`` and the ring agree)."""
        with self._cond:
            return dict(self.counters)

    def peek_t_recv(self, index: int, layout_id: int) -> float:
        """Receive time of frame ``index`` of layout ``layout_id`` (``-inf`` if it is no longer
        in the ring, ``nan`` if the layout changed)."""
        with self._cond:
            if self.layout_id != layout_id:
                return math.nan
            r = self.ring
            if r is None or not (r.count - r.capacity <= index < r.count):
                return -math.inf
            return float(r.t_recv[index % r.capacity])

    def read(self, index: int, layout_id: int, out: np.ndarray):
        """Copy frame ``index`` of layout ``layout_id`` into ``out``; return (t, t_recv, seq,
        n_valid, n_invalid), or None when it was overwritten or the layout changed."""
        with self._cond:
            if self.layout_id != layout_id or self.ring is None:
                return None
            try:
                return self.ring.read(index, out)
            except IndexError:
                return None
