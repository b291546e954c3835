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

import numpy as np

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
    window, projected to full service (:class:`StepCost`), turns it off when full service
    would keep the loop under :data:`ROOM` busy for :data:`CALM_WINDOWS` windows in a row."""

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

    def busy(self, projected: float) -> bool:
        """Serving coarse, the loop would have been busy ``projected`` of the last window with
        full service. True when coarse service ends now."""
        if self.mode != "auto" or not self.coarse:
            return False
        self._calm = self._calm + 1 if projected < self.ROOM else 0
        if self._calm < self.CALM_WINDOWS:
            return False
        self.coarse = False
        return True


class StepCost:
    """What one batched call of the model costs: ``a + c * rows`` seconds, fitted by least
    squares over the calls seen (each :meth:`age` halves the weight of what came before, so
    the fit follows the machine). Where the calls seen do not tell ``a`` from ``c`` (always the
    same rows), the cost is taken as proportional to the rows, which overestimates it."""

    DECAY = 0.5

    def __init__(self):
        self._sums = np.zeros(5)  # weight, sum of rows, of seconds, of rows^2, of rows*seconds

    def add(self, rows: int, seconds: float) -> None:
        self._sums += (1.0, rows, seconds, rows * rows, rows * seconds)

    def age(self) -> None:
        self._sums *= self.DECAY

    def predict(self, calls: float, rows: float) -> float:
        """Seconds for ``calls`` calls of ``rows`` rows in all (0 before any call was seen)."""
        n, r, t, rr, rt = self._sums
        if n <= 0 or r <= 0:
            return 0.0
        spread = n * rr - r * r
        if spread > 1e-6 * n * n:
            c = (n * rt - r * t) / spread
            a = (t - c * r) / n
            if c > 0 and a >= 0:
                return calls * a + rows * c
        return rows * t / r


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
        self.cost = StepCost()  # what a batched call costs: projects coarse to full service
        self._window = [0, 0, 0.0]  # calls, rows and seconds of model calls this window

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
                projected = self._projected(pipes, now - t_win, idle)
                t_win, idle = now, 0.0
                done = sum(p.counters["processed"] for p in pipes)
                stale = sum(p.counters["stale_unpublished"] for p in pipes)
                if self.overload.busy(projected):
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

    def _projected(self, pipes, window_s: float, idle_s: float) -> float:
        """The busy fraction of the window just ended (``window_s`` long, ``idle_s`` of it
        waiting for frames) had every stream been served in full: the model calls' time
        replaced by :attr:`cost`'s prediction for the rows of full service (coarse: every
        grid of every stream, twice with the mirror image; the same calls). Starts the next
        window."""
        calls, rows, model_s = self._window
        self._window = [0, 0, 0.0]
        self.cost.age()
        if self.overload.coarse:
            full = sum(getattr(p, "phases", 1) for p in pipes) * \
                (2 if getattr(self.est, "mirror", False) else 1)
            model_s_full = self.cost.predict(calls, rows * full / max(1, len(pipes)))
        else:
            model_s_full = model_s
        return (window_s - idle_s - model_s + model_s_full) / window_s

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
                mirror = not self.overload.coarse
                t_call = time.monotonic()
                outs = self.est.step([c[0] for c, _ in rows], [c[2] for c, _ in rows],
                                     mirror=mirror)
                n_rows = len(rows) * (2 if mirror and getattr(self.est, "mirror", False) else 1)
                dt = time.monotonic() - t_call
                self.cost.add(n_rows, dt)
                w = self._window
                w[0], w[1], w[2] = w[0] + 1, w[1] + n_rows, w[2] + dt
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
