"""The one inference loop of a server: every stream's pending frames, ONE batched step.

Acquisition stays per source (a thread each, filling its ring); this loop wakes when any source
has a frame, gathers every stream's pending frames (:meth:`StreamPipeline.gather`: quality,
causal resampling onto the model's grid), runs the grid points they commit through the shared
:class:`~hdys_rt.model.streaming.BatchedEstimator` (round ``r`` steps the ``r``-th pending
grid point of every slot at once: one batched call for all streams; a stream catching up or a
low-rate stream with several grid points per frame takes several rounds), then publishes each
frame's estimate (:meth:`StreamPipeline.finish`). Streams join (:meth:`add`) and leave
(:meth:`remove`) at any time; a leaving stream is served until its source is drained.
"""

from __future__ import annotations

import logging
import threading
import time

from hdys_rt.runtime.pipeline import StreamPipeline
from hdys_rt.streams.base import RateLimitedLog

log = logging.getLogger(__name__)


class InferenceLoop:
    """One thread stepping all streams of ``estimator`` (a BatchedEstimator) together."""

    def __init__(self, estimator, sinks=(), max_frames: int = 64):
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
        while not self._stop.is_set():
            self.wake.clear()
            with self._lock:
                pipes = list(self._pipes)
            work = [(p, p.gather(self.max_frames)) for p in pipes]
            for p, jobs in work:  # a stream that left and is drained gives its slots back
                if not jobs and p.leaving and p.source.stopped and p.pending() == 0:
                    p.release()
                    p.finished.set()
                    with self._lock:
                        self._pipes.remove(p)
            work = [(p, jobs) for p, jobs in work if jobs]
            if not work:
                for sink in self.sinks:
                    sink.service()
                self.wake.wait(0.1)
                continue
            self._step(work)

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
                outs = self.est.step([c[0] for c, _ in rows], [c[2] for c, _ in rows])
                for (commit, _), out, novelty in zip(rows, outs, self.est.novelty):
                    commit[3], commit[4] = out, float(novelty)
            except Exception as exc:  # one bad batch must not stop the service
                for _, job in rows:
                    job.error = exc
            r += 1
        t1 = time.monotonic()
        self.passes += 1
        for pipe, jobs in work:
            for job in jobs:
                pipe.finish(job, t0, t1)
