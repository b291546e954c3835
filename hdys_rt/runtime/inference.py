"""The one inference loop of a server: every stream's pending frames, ONE batched step.

Acquisition stays per source (a thread each, filling its ring); this loop wakes when any source
has a frame, gathers every stream's pending frames (:meth:`StreamPipeline.gather`: quality,
causal resampling onto the model's grid), runs the grid points they commit through the shared
:class:`~hdys_rt.model.streaming.BatchedEstimator` (round ``r`` steps the ``r``-th pending
grid point of every slot at once: one batched call for all streams; a stream catching up or a
low-rate stream with several grid points per frame takes several rounds), then publishes each
frame's estimate (:meth:`StreamPipeline.finish`). Streams join (:meth:`add`) and leave
(:meth:`remove`) at any time; a leaving stream is served until its source is drained.

Overload (:class:`Overload`, policy ``coarse`` of :class:`PipelineOptions`): when a frame has
waited too long for the loop, the loop serves coarse: without the mirror image's rows (a model
that averages with it) and streams above the model rate on their first grid only (see
:mod:`hdys_rt.runtime.pipeline`), until the loop's measured busy time says full service fits
again.
"""

from __future__ import annotations

import logging
import threading
import time

from hdys_rt.runtime.pipeline import COARSE_MODES, StreamPipeline
from hdys_rt.streams.base import RateLimitedLog

log = logging.getLogger(__name__)


class Overload:
    """When to serve coarse (first grid only, no mirror image) and when full service fits
    again.

    ``mode``: ``"auto"``, ``"never"`` or ``"always"`` (see :class:`PipelineOptions`). In
    ``auto``, :meth:`waited` with the longest wait of a frame in a pass and the wait that
    means overload turns coarse service on, and so does :meth:`stale` when more than
    :data:`STALE_SHARE` of a window's estimates were too old to publish (the loop keeps a lag
    just over the age limit); :meth:`busy` with the loop's busy fraction over a
    window (time not spent waiting for frames) and the ratio of the rows of full service to
    those of coarse service turns it off when full service would keep the loop under
    :data:`ROOM` busy for :data:`CALM_WINDOWS` windows in a row."""

    ROOM = 0.7          # busy fraction every grid may take when coarse service ends
    CALM_WINDOWS = 2    # consecutive windows with that room before it ends
    WINDOW_S = 1.0      # busy fraction measured over this long
    STALE_SHARE = 0.05  # estimates of a window left stale that mean overload

    def __init__(self, mode: str = "auto"):
        if mode not in COARSE_MODES:
            raise ValueError(f"coarse mode must be one of {COARSE_MODES}, got {mode!r}")
        self.mode = mode
        self.coarse = mode == "always"
        self.episodes = 0  # times coarse service began (auto)
        self._calm = 0

    def waited(self, wait_s: float, limit_s: float) -> bool:
        """A frame waited ``wait_s`` for the loop; True when coarse service begins now."""
        return wait_s > limit_s and self._begin()

    def stale(self, stale: int, processed: int) -> bool:
        """Of ``processed`` frames in the last window, ``stale`` estimates were too old to
        publish; True when coarse service begins now."""
        return processed > 0 and stale > self.STALE_SHARE * processed and self._begin()

    def _begin(self) -> bool:
        """Coarse service begins now (auto, not yet coarse): True; else False."""
        if self.mode != "auto" or self.coarse:
            return False
        self.coarse, self._calm = True, 0
        self.episodes += 1
        return True

    def busy(self, fraction: float, ratio: float) -> bool:
        """The loop was busy ``fraction`` of the last window, serving coarse; every grid takes
        ``ratio`` times the steps. True when coarse service ends now."""
        if self.mode != "auto" or not self.coarse:
            return False
        self._calm = self._calm + 1 if fraction * ratio < self.ROOM else 0
        if self._calm < self.CALM_WINDOWS:
            return False
        self.coarse = False
        return True


class InferenceLoop:
    """One thread stepping all streams of ``estimator`` (a BatchedEstimator) together;
    ``coarse``: the overload policy (:class:`Overload`)."""

    def __init__(self, estimator, sinks=(), max_frames: int = 64, coarse: str = "auto"):
        self.est = estimator
        self.sinks = list(sinks)
        self.max_frames = max_frames  # frames taken from one stream per pass
        self.wake = threading.Event()  # set by every source on a new frame or layout
        self._pipes: list[StreamPipeline] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._rlog = RateLimitedLog(log)
        self.passes = 0  # batched passes run (each: one or more rounds)
        self.overload = Overload(coarse)

    def add(self, pipe: StreamPipeline) -> None:
        """Serve ``pipe`` from the next pass on (its source wakes this loop)."""
        pipe.source.wake = self.wake
        with self._lock:
            self._pipes.append(pipe)
        self.wake.set()

    def remove(self, pipe: StreamPipeline) -> None:
        """Stop serving ``pipe`` once its source is stopped and drained (slots released)."""
        pipe.leaving = True
        self.wake.set()

    def serving(self, pipe: StreamPipeline) -> bool:
        with self._lock:
            return pipe in self._pipes

    def start(self) -> "InferenceLoop":
        self._thread = threading.Thread(target=self._run, name="inference", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self.wake.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        t_win, idle = time.monotonic(), 0.0  # the busy fraction's window, and its idle time
        done0 = stale0 = 0  # frames processed and estimates left stale, at the window's start
        while not self._stop.is_set():
            self.wake.clear()
            with self._lock:
                pipes = list(self._pipes)
            coarse = self.overload.coarse
            for p in pipes:
                p.coarse = coarse
            work = [(p, p.gather(self.max_frames)) for p in pipes]
            for p, jobs in work:  # a stream that left and is drained gives its slots back
                if not jobs and p.leaving and p.source.stopped and p.pending() == 0:
                    p.release()
                    p.finished.set()
                    with self._lock:
                        self._pipes.remove(p)
            work = [(p, jobs) for p, jobs in work if jobs]
            now = time.monotonic()
            if now - t_win >= Overload.WINDOW_S:
                busy = 1.0 - idle / (now - t_win)
                t_win, idle = now, 0.0
                done = sum(p.counters["processed"] for p in pipes)
                stale = sum(p.counters["stale_unpublished"] for p in pipes)
                if self.overload.busy(busy, self._grid_ratio(pipes)):
                    log.warning("serve keeps up again: full service (every grid of every "
                                "stream%s)", "; mirror average"
                                if getattr(self.est, "mirror", False) else "")
                elif self._sheddable(pipes) and \
                        self.overload.stale(stale - stale0, done - done0):
                    self._coarse_begins(f"{stale - stale0} of {done - done0} estimates in the "
                                        f"last {Overload.WINDOW_S:.0f} s too old to publish",
                                        len(pipes))
                done0, stale0 = done, stale
            if not work:
                for sink in self.sinks:
                    sink.service()
                t0 = time.monotonic()
                self.wake.wait(0.1)
                idle += time.monotonic() - t0
                continue
            if self._sheddable([p for p, _ in work]):
                waited, limit = max(((now - jobs[0].info[1], p.opt.overload_after_s)
                                     for p, jobs in work), key=lambda w: w[0] - w[1])
                if self.overload.waited(waited, limit):
                    self._coarse_begins(f"a frame waited {1e3 * waited:.0f} ms for the model",
                                        len(pipes))
            self._step(work)

    def _sheddable(self, pipes) -> bool:
        """Coarse service would run fewer rows for ``pipes``: the model averages with the
        mirror image, or a stream has more than one grid."""
        return getattr(self.est, "mirror", False) or any(getattr(p, "phases", 1) > 1 for p in pipes)

    def _coarse_begins(self, why: str, streams: int) -> None:
        self._rlog.warning("overload", "serve cannot keep up (%s, %d stream(s)): serving coarse "
                           "(%sstreams above the model rate on their first grid only; "
                           "estimates flagged coarse) until full service fits again", why,
                           streams, "no mirror average, " if getattr(self.est, "mirror", False) else "")

    def _grid_ratio(self, pipes) -> float:
        """Rows of full service / rows of coarse service (first grid only, no mirror image),
        over ``pipes``."""
        full = sum(getattr(p, "phases", 1) for p in pipes) * (2 if getattr(self.est, "mirror", False) else 1)
        return full / max(1, len(pipes))

    def _step(self, work) -> None:
        """Run every queued grid point in rounds of one batched call, then publish."""
        t0 = time.monotonic()
        queues: dict[int, list] = {}  # slot -> its commits, in order
        for _, jobs in work:
            for job in jobs:
                for commit in job.commits:
                    queues.setdefault(commit[0], []).append((commit, job))
        r = 0
        while True:
            rows = [q[r] for q in queues.values() if len(q) > r]
            if not rows:
                break
            try:
                outs = self.est.step([c[0] for c, _ in rows], [c[2] for c, _ in rows],
                                     mirror=not self.overload.coarse)
                for (commit, _), out, novelty, shed in zip(rows, outs, self.est.novelty,
                                                           self.est.unaveraged):
                    commit[3], commit[4], commit[6] = out, float(novelty), bool(shed)
            except Exception as exc:  # one bad batch must not stop the service
                for _, job in rows:
                    job.error = exc
            r += 1
        t1 = time.monotonic()
        self.passes += 1
        for pipe, jobs in work:
            for job in jobs:
                pipe.finish(job, t0, t1)
