"""The server behind ``hdys-rt serve`` and ``hdys-rt demo``: sources (an acquisition thread
each), ONE inference loop stepping every stream in one batched call
(:mod:`hdys_rt.runtime.inference`), a list of sinks (ZeroMQ publisher, LSL outlets...); streams
join and leave at any time (:meth:`Server.add_source`, :meth:`Server.remove_source`); clean
shutdown on SIGINT/SIGTERM with a final summary."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from pathlib import Path

import numpy as np

from hdys_rt.errors import HdysError
from hdys_rt.runtime.inference import InferenceLoop
from hdys_rt.runtime.pipeline import PipelineOptions, StreamPipeline
from hdys_rt.streams.ring import warm_up as warm_up_ring
from hdys_rt.runtime.stats import percentiles_ms
from hdys_rt.streams.base import Source
from hdys_rt.streams.sinks import Sink, as_sinks

log = logging.getLogger(__name__)


def load_estimator(model: str | None = None, device: str = "cpu", threads: int | None = 1,
                   engine: str | None = None, input_kind: str = "markers",
                   mirror: bool | None = None):
    """The batched streaming estimator serving every stream of a server
    (:class:`~hdys_rt.model.streaming.BatchedEstimator`; ``mirror``: average with the mirror
    image, None: as the model says), warmed up so the first live frame does not pay for lazy
    initialisation."""
    from hdys_rt.model.streaming import BatchedEstimator

    if threads:
        import torch

        torch.set_num_threads(int(threads))
    est = BatchedEstimator.load(model, device=device, engine=engine, input_kind=input_kind,
                                mirror=mirror)
    rng = np.random.default_rng(0)
    pts = (rng.standard_normal((min(40, est.max_points), 3)) * 0.3
           + [0.0, 1.0, 0.0]).astype(np.float32)
    slots = est.alloc(1)
    for _ in range(3):
        est.step(slots, [pts])
    est.release(slots)
    warm_up_ring()
    return est


def load_estimators(n: int, model: str | None = None, device: str = "cpu",
                    threads: int | None = 1, engine: str | None = None,
                    input_kind: str = "markers", mirror: bool | None = None) -> list:
    """(Kept for callers that pass one estimator per source.) ``n`` times the ONE batched
    estimator of :func:`load_estimator`: every stream holds its state in its slots."""
    return [load_estimator(model, device, threads, engine, input_kind, mirror)] * n


class Server:
    """Runs ``sources`` through their estimators into ``sinks`` until stopped; :meth:`stop`
    closes the sinks. ``sinks``: a list of :class:`~hdys_rt.streams.sinks.Sink` (a single one
    is taken as a list of one; None: no output but ``on_estimate``)."""

    def __init__(self, sources: list[Source], estimator,
                 sinks: Sink | list[Sink] | None = None,
                 options: PipelineOptions = PipelineOptions(), on_estimate=None):
        if isinstance(estimator, (list, tuple)):  # load_estimators(n): the same one n times
            if len({id(e) for e in estimator}) > 1:
                raise HdysError("a server runs ONE batched estimator (load_estimator) for all "
                                "its streams")
            estimator = estimator[0]
        self.est = estimator
        self.sources = list(sources)
        self.sinks = as_sinks(sinks)
        self.options, self.on_estimate = options, on_estimate
        self.loop = InferenceLoop(estimator, self.sinks, coarse=options.coarse)
        self.pipelines = [StreamPipeline(s, estimator, self.sinks, options, on_estimate)
                          for s in self.sources]
        self._started = False
        self.stop_event = threading.Event()
        self.signal: str | None = None
        self._t0 = time.monotonic()
        self._cpu0 = os.times()

    def start(self) -> "Server":
        self._t0 = time.monotonic()
        self._cpu0 = os.times()
        self.est.prepare(2 * len(self.sources))  # batch buckets for every stream at 200 Hz
        for p in self.pipelines:
            self.loop.add(p)
        self.loop.start()
        for s in self.sources:
            s.start()
        self._started = True
        return self

    def add_source(self, source: Source) -> StreamPipeline:
        """Serve one more stream from now on (the batched loop takes it on its next pass)."""
        pipe = StreamPipeline(source, self.est, self.sinks, self.options, self.on_estimate)
        self.sources.append(source)
        self.pipelines.append(pipe)
        self.loop.add(pipe)
        if self._started:
            source.start()
        return pipe

    def remove_source(self, pipe: StreamPipeline, timeout: float = 10.0) -> None:
        """Stop a stream: its source stops, its frames already received are still served,
        then its state slots are released (its counters stay in the summary)."""
        pipe.source.request_stop()
        self.loop.remove(pipe)
        pipe.source.stop()
        pipe.join(timeout)

    def install_signal_handlers(self) -> None:
        """SIGINT / SIGTERM request a clean stop (main thread only)."""
        def handler(signum, _frame):
            self.signal = signal.Signals(signum).name
            self.stop_event.set()

        signal.signal(signal.SIGINT, handler)
        signal.signal(signal.SIGTERM, handler)

    def wait_connected(self, timeout: float) -> None:
        """Wait until every source has connected once; raise :class:`HdysError` otherwise."""
        deadline = time.monotonic() + timeout
        for s in self.sources:
            while not s.ever_connected.wait(0.05):
                if s.error is not None:
                    raise HdysError(f"{s.describe()}: {s.error}")
                if self.stop_event.is_set():
                    return
                if time.monotonic() > deadline:
                    if s.rejection is not None:
                        raise HdysError(f"{s.describe()}: its layout was refused: "
                                        f"{s.rejection}")
                    raise HdysError(f"{s.describe()}: not found within {timeout:g} s "
                                    "(is the stream running? check its name/type/endpoint)")

    def run(self, seconds: float | None = None, connect_timeout: float | None = None,
            tick=None, tick_period: float = 0.25) -> None:
        """Block until stopped (signal, ``seconds`` elapsed, or every finite source done)."""
        end = None if seconds is None else time.monotonic() + seconds
        if connect_timeout is not None:
            self.wait_connected(connect_timeout)
        next_log = time.monotonic() + 10.0
        marks = [p.times.count for p in self.pipelines]
        while not self.stop_event.is_set():
            if end is not None and time.monotonic() >= end:
                break
            for s in self.sources:
                if s.error is not None:
                    raise HdysError(f"{s.describe()}: {s.error}")
            if all(p.done for p in self.pipelines):
                break
            self.stop_event.wait(tick_period if tick else 0.1)
            if tick is not None:
                tick(self)
            if time.monotonic() >= next_log:
                next_log += 10.0  # the latency of the last 10 s only: cheap beside serving
                log.info("%s", self.summary_line(since=marks))
                marks = [p.times.count for p in self.pipelines]

    def stop(self) -> None:
        for s in self.sources:
            s.request_stop()
        self.loop.stop()
        for s in self.sources:
            s.stop()
        for sink in self.sinks:
            sink.close()

    # --- reporting ---------------------------------------------------------------------------
    def totals(self) -> dict:
        keys_src = ("received", "out_of_order", "malformed", "oversized", "rejected",
                    "reconnects", "lost", "resyncs", "skipped")
        keys_pipe = ("processed", "published", "dropped", "stale_unpublished", "too_few", "gaps",
                     "errors", "flagged", "coarse", "overload_skipped")
        tot = {k: 0 for k in keys_src + keys_pipe}
        tot["orientation_suspicious"] = 0  # streams that look upside down or lying
        for p in self.pipelines:
            for k in keys_src:
                tot[k] += p.source.counters[k]
            for k in keys_pipe:
                tot[k] += p.counters[k]
            tot["orientation_suspicious"] += p.upright is not None and p.upright.suspicious
        return tot

    def accounting(self) -> dict:
        """The streams' :meth:`StreamPipeline.accounting` summed; ``unaccounted`` is
        ``received - processed - dropped - pending`` (0 when every frame is accounted for)."""
        acc = [p.accounting() for p in self.pipelines]
        keys = ("arrived", "received", "processed", "dropped", "stale_unpublished", "pending",
                "out_of_order", "rejected", "skipped", "flagged")
        tot = {k: sum(a[k] for a in acc) for k in keys}
        tot["unaccounted"] = tot["received"] - tot["processed"] - tot["dropped"] - tot["pending"]
        return tot

    def cpu(self) -> dict:
        t = os.times()
        wall = max(1e-9, time.monotonic() - self._t0)
        user, system = t.user - self._cpu0.user, t.system - self._cpu0.system
        return {"wall_s": wall, "user_s": user, "system_s": system,
                "cpu_percent": 100.0 * (user + system) / wall}

    def summary(self) -> dict:
        total = np.concatenate([p.times.values("total") for p in self.pipelines]) \
            if self.pipelines else np.zeros(0)
        return {"streams": [p.summary() for p in self.pipelines], "totals": self.totals(),
                "accounting": self.accounting(),
                "server_latency_ms": percentiles_ms(total), "cpu": self.cpu(),
                "overload": {"coarse_mode": self.loop.overload.mode,
                             "coarse_now": self.loop.overload.coarse,
                             "coarse_episodes": self.loop.overload.episodes},
                "signal": self.signal}

    def summary_line(self, since: list[int] | None = None) -> str:
        """One line of totals; the latency over every retained frame, or over the frames each
        pipeline recorded after ``since`` (its :attr:`StageTimes.count` then)."""
        t, acc = self.totals(), self.accounting()
        marks = since if since is not None and len(since) == len(self.pipelines) \
            else [0] * len(self.pipelines)
        lat = percentiles_ms(np.concatenate(
            [p.times.values("total", m) for p, m in zip(self.pipelines, marks)])
            if self.pipelines else np.zeros(0))
        return (f"{len(self.pipelines)} stream(s): {t['received']} frames in, "
                f"{t['published'] or t['processed']} estimates out, dropped {t['dropped']}, "
                f"stale (in the model, not published) {t['stale_unpublished']}, "
                + (f"coarse (overloaded: an earlier grid point's estimate) {t['coarse']}, "
                   if t["coarse"] else "")
                + (f"skipped while overloaded (in dropped) {t['overload_skipped']}, "
                   if t["overload_skipped"] else "") +
                f"out-of-order {t['out_of_order']}, malformed {t['malformed']}, oversized "
                f"{t['oversized']}, rejected {t['rejected']}, too few markers {t['too_few']}, "
                f"gaps {t['gaps']}, reconnects {t['reconnects']}, errors {t['errors']}; "
                f"server latency p50 {lat['p50']:.2f} ms p99 {lat['p99']:.2f} ms; "
                + ("every frame accounted for" if acc["unaccounted"] == 0
                   else f"{acc['unaccounted']} frames unaccounted")
                + "".join(f"; {p.source.name} {p.upright.short()}" for p in self.pipelines
                          if p.upright is not None and p.upright.suspicious))

    def write_json(self, path: str | os.PathLike) -> None:
        Path(path).write_text(json.dumps(self.summary(), indent=1, default=float))
