"""The estimator loop of one stream: ring -> quality -> model step -> encode -> publish.

One input frame in, one estimate out to every sink (:class:`~hdys_rt.streams.sinks.Sink`), computed incrementally by the streaming estimator (only
the new frame is encoded; cached keys/values serve the temporal context). EVERY received frame
enters the model's temporal context, however loaded the machine is, so the answer never depends
on load: when inference falls behind, the loop catches up frame by frame and only skips
*publishing* an estimate whose frame is older than ``max_age_s`` while a newer frame waits
(counted ``stale_unpublished``). Frames are ``dropped`` only when truly lost (a full ring
overwrote them, or a layout change discarded them). A slow or dead subscriber never blocks:
publishing never waits.

Streams at any rate are resampled causally onto the model's rate
(:class:`~hdys_rt.model.resample.GridResampler`: ``phases`` interleaved grids at the model
rate, each with its own decoder state), so every frame gets an estimate whose temporal context
is the one the model was trained at; ``t_est`` says which grid time it describes.

Overload (:attr:`PipelineOptions.coarse`): when the machine cannot run every grid point of
every stream, the inference loop serves coarse: a model that averages every estimate with its
mirror image's steps the frames only (half the rows; estimates not averaged, flag ``coarse``),
and streams above the model rate are served on their first grid only: the other grids' points
are skipped, and their frames get the estimate of the grid point before them (flag
``coarse``; counted). The first grid keeps its whole temporal context, so without the mirror
average its estimates stay exactly the offline ones, unless even that falls behind: a
backlog older than the overload limit while coarse is skipped (counted ``dropped`` and
``overload_skipped``; the model restarts at the newest frame, flags dropped and reset), so
latency never keeps growing. When the loop has room again, each
skipped grid (and each mirror image's state) restarts from a reset state and rejoins once it
holds the decoder's whole receptive field
(:attr:`~hdys_rt.model.streaming.BatchedEstimator.receptive` grid points): from then on its
estimates equal the uninterrupted ones again; until then its frames stay coarse.

After each (re)configure, the first second of frames with enough valid points (by ``t_src``) is
kept and checked once (:func:`~hdys_rt.data.markersets.check_upright`): an upside-down or lying
skeleton logs one warning naming the ``--up`` that fixes it, and ``summary()["orientation"]``
says what was found. Nothing is kept or checked after that second.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

import numpy as np

from hdys_rt import representations as reps, wire
from hdys_rt.data.markersets import Upright, UprightWatch
from hdys_rt.subject import absolute_channels, absolute_outputs
from hdys_rt.errors import HdysError
from hdys_rt.model.novelty import is_novel
from hdys_rt.model.resample import GridResampler
from hdys_rt.runtime.stats import StageTimes
from hdys_rt.streams.base import RateLimitedLog, Source
from hdys_rt.streams.sinks import Sink, as_sinks

log = logging.getLogger(__name__)

F = wire.FLAGS


#: the overload policies of :attr:`PipelineOptions.coarse`
COARSE_MODES = ("auto", "never", "always")


@dataclass(frozen=True)
class PipelineOptions:
    """How one stream is served (times in seconds)."""

    min_markers: int | None = None  # fewer valid markers -> flagged too_few; None: half, >= 3
    max_age_s: float = 0.025        # an estimate older than this is not published (but its
    #                                 frame still enters the model) when a newer frame waits
    gap_factor: float = 1.5         # a time step above gap_factor / rate is flagged as a gap
    reset_gap_s: float = 0.5        # a gap longer than this resets the model's temporal state
    mass_kg: float | None = None    # subject mass: also publish torques in N·m and GRF in N
    height_m: float | None = None   # subject height: also publish torques in %BW·Ht
    # overload: a stream above the model rate is served on several interleaved grids (2 at
    # 200 Hz), each a model step per grid point. "auto": when a frame has waited longer than
    # overload_s (and 4 x max_age_s), or over 5 % of a second's estimates were too old to
    # publish, serve cannot keep up: the mirror image is not stepped (a model that averages
    # with it) and such streams run their first grid only (half the steps at 200 Hz; the
    # other frames get the estimate of the grid point before them), those estimates flagged
    # coarse, until the loop has room for full service again; "never": full service always
    # (answers never depend on load; overload then leaves estimates stale and, once a ring
    # is full, frames dropped); "always": coarse always
    coarse: str = "auto"
    overload_s: float = 0.25

    def __post_init__(self):
        if self.min_markers is not None and self.min_markers < 1:
            raise HdysError(f"min_markers must be >= 1, got {self.min_markers}")
        if not self.max_age_s > 0:
            raise HdysError(f"max_age_s must be > 0 s, got {self.max_age_s}")
        if not self.gap_factor > 1:
            raise HdysError(f"gap_factor must be > 1, got {self.gap_factor}")
        if not self.reset_gap_s > 0:
            raise HdysError(f"reset_gap_s must be > 0 s, got {self.reset_gap_s}")
        if self.mass_kg is not None and not (20.0 <= self.mass_kg <= 250.0):
            raise HdysError(f"--mass must be within 20..250 kg, got {self.mass_kg}")
        if self.coarse not in COARSE_MODES:
            raise HdysError(f"coarse must be one of {COARSE_MODES}, got {self.coarse!r}")
        if not self.overload_s > 0:
            raise HdysError(f"overload_s must be > 0 s, got {self.overload_s}")
        if self.height_m is not None and (self.mass_kg is None or not 0.5 <= self.height_m <= 2.5):
            raise HdysError(f"--height must be within 0.5..2.5 m and needs --mass, got "
                            f"{self.height_m}")

    @property
    def overload_after_s(self) -> float:
        """How long a frame may wait for the loop before serve counts as overloaded."""
        return max(self.overload_s, 4.0 * self.max_age_s)

    def min_valid(self, n_points: int) -> int:
        """Fewest valid points a frame of ``n_points`` needs to be estimated (else too_few)."""
        return self.min_markers or max(3, (n_points + 1) // 2)


def check_estimator_layout(estimator, names: tuple[str, ...], rate: float) -> None:
    """Raise :class:`HdysError` when ``estimator`` cannot serve markers ``names`` at ``rate``."""
    kind = getattr(estimator, "input_kind", "markers")
    if not reps.is_point_set(kind):  # keypoints: serve --input keypoints (bridges)
        raise HdysError(f"the model takes {kind!r} input; this stream carries points")
    if not names:
        raise HdysError("the stream has no markers")
    if len(names) > estimator.max_points:
        raise HdysError(f"the stream has {len(names)} markers; the model takes at most "
                        f"{estimator.max_points}")
    if not (rate > 0 and math.isfinite(rate)):
        raise HdysError(f"the stream's rate must be > 0 Hz, got {rate}")
    check = getattr(estimator, "marker_names_ok", None)
    if check is not None:
        report = check(names)
        ok = getattr(report, "ok", report)
        if not ok:
            raise HdysError(f"the model does not accept these markers: {report}")


def subject_of(options: PipelineOptions, source: Source) -> tuple[float | None, float | None]:
    """(mass kg, height m) of the stream's subject: the flags when given, else the stream's own
    metadata (an LSL ``desc/subject``) when plausible, else None."""
    if options.mass_kg is not None:
        return options.mass_kg, options.height_m
    sub = getattr(source, "subject", None) or {}
    mass, height = sub.get("mass_kg"), sub.get("height_m")
    if mass is None or not 20.0 <= mass <= 250.0:
        if mass is not None:
            log.warning("%s: subject mass %g kg in the stream's metadata is implausible; "
                        "ignored (pass --mass)", source.describe(), mass)
        return None, None
    if height is not None and not 0.5 <= height <= 2.5:
        height = None
    log.info("%s: subject from the stream's metadata: %g kg%s", source.describe(), mass,
             f", {height:g} m" if height else "")
    return mass, height


@dataclass
class FrameJob:
    """One frame on its way through the inference loop: its ring index and read-out, quality
    flags, and the grid points it commits (``[slot, t_grid, points, outputs, novelty, grid,
    unaveraged]``, outputs, novelty score and whether the estimate lacks the model's mirror
    average filled by the loop's batched step; ``None`` outputs with ``error`` set when that
    step failed)."""

    index: int
    info: tuple                       # (t_src, t_recv, seq, n_valid, n_invalid)
    flags: int
    missing: list
    commits: list                     # [[slot, t_grid, points (P, 3), outputs or None,
    #                                     novelty score, grid, unaveraged], ...]
    newer: bool                       # a newer frame of the stream was already received
    error: Exception | None = None


class StreamPipeline:
    """The per-stream part of serving one :class:`Source`: reading its ring, quality flags,
    causal resampling onto the model's grid, and publishing into ``sinks`` (a list of
    :class:`~hdys_rt.streams.sinks.Sink`, shared with the other streams; their owner closes
    them). The model step is NOT here: :class:`~hdys_rt.runtime.inference.InferenceLoop` runs
    one batched step for every stream's pending frames (:meth:`gather`, then :meth:`finish`
    per frame), over ``estimator`` (a
    :class:`~hdys_rt.model.streaming.BatchedEstimator` shared by all streams; this stream owns
    ``phases`` of its slots)."""

    def __init__(self, source: Source, estimator, sinks: Sink | list[Sink] | None = None,
                 options: PipelineOptions = PipelineOptions(), on_estimate=None):
        self.source = source
        self.est = estimator
        self.sinks = as_sinks(sinks)
        self.opt = options
        self.on_estimate = on_estimate  # callable(pipeline, outputs, flags) or None
        self.times = StageTimes()
        self.counters = {"processed": 0, "published": 0, "dropped": 0, "stale_unpublished": 0,
                         "too_few": 0,
                         "missing_frames": 0, "invalid_frames": 0, "gaps": 0, "resets": 0,
                         "errors": 0, "flagged": 0, "coarse": 0, "overload_skipped": 0}
        self._base, self._nxt = 0, 0  # current layout's first frame number; next frame to read
        # held while counters and (_base, _nxt) change together, so that accounting() never
        # sees a frame that is neither pending nor counted (it is read by other threads)
        self._acct = threading.Lock()
        self.meta_id = 0
        self.latest: dict | None = None    # last outputs (for live views)
        self.slots: list[int] = []         # this stream's state slots in the estimator
        self.finished = threading.Event()  # a finite source ended and every frame was served
        self.leaving = False               # being removed: served until its source is drained
        self.coarse = False                # set by the inference loop: run the first grid only
        self._cold: set[int] = set()       # grids that skipped points (coarse service)
        self._warming: dict[int, int] = {}  # grid -> points until it rejoins after a restart
        self._layout, self._pending_flags, self._carry = 0, 0, 0
        self.upright: Upright | None = None  # the orientation check (_configure restarts it)
        self._watch = UprightWatch(())       # ... over the first second of each layout
        self._rlog = RateLimitedLog(log)
        source.check_layout = lambda names, rate: check_estimator_layout(self.est, names, rate)

    @property
    def done(self) -> bool:
        return self.finished.is_set()

    def join(self, timeout: float | None = None) -> None:
        self.finished.wait(timeout)

    # --- layout ------------------------------------------------------------------------------
    def _configure(self, layout_id: int) -> None:
        src = self.source
        names, rate = src.names, src.rate
        self.names, self.rate = names, rate
        self.est.fit(len(names))
        self.resampler = GridResampler(self.est.rate, rate)
        self.phases = self.resampler.phases
        self.est.release(self.slots)
        self.slots = self.est.alloc(self.phases)  # fresh states, one per grid
        self._cold, self._warming = set(), {}
        self._est_out: dict | None = None  # the latest grid point's outputs, and its time
        self._coarse_out = False  # ... stepped without the mirror average (overload)
        self._novelty = math.nan  # and its novelty score
        self._t_est = None
        n = len(names)
        self.min_markers = self.opt.min_valid(n)
        self.buf = np.full((n, 3), np.nan, dtype=np.float32)  # (points, xyz)
        self.mass_kg, self.height_m = subject_of(self.opt, src)
        # what is published: the model's outputs, plus absolute ones when the subject is known
        self.out_names, self.out_units = dict(self.est.outputs), dict(self.est.units)
        if self.mass_kg is not None:
            chans, units = absolute_channels(self.est.outputs, self.height_m)
            self.out_names.update(chans)
            self.out_units.update(units)
        self.nan_out = {k: np.full(len(v), np.nan, np.float32) for k, v in self.out_names.items()}
        self.meta_id += 1
        model = {"rate": float(self.est.rate), "window": int(self.est.window),
                 "phases": self.phases,
                 "novelty_threshold": float(getattr(self.est, "novelty_threshold", math.nan))}
        self.meta = wire.encode_meta(src.name, self.meta_id, names, rate, self.out_names,
                                     self.out_units, model,
                                     getattr(self.est, "input_kind", "markers"))
        for sink in self.sinks:
            sink.set_meta(src.name, self.meta)
        self._last_t: float | None = None
        # the orientation check, once its second is in; a replayed file was checked (and
        # warned about) by the loader. An LSL source converts by serve's --up (y, z); the
        # others are taken Y up: their sender's --up fixes them (bridge keypoints: also ydown)
        self.upright = getattr(src, "upright", None)
        up = getattr(src, "up", None)
        self._watch = UprightWatch(names, up or "y", ("y", "ydown", "z") if up is None
                                   else ("y", "z"))
        if self.upright is not None:
            self._watch.finish()  # nothing to keep
        log.info("%s: serving %d markers at %g Hz (model %g Hz, %d grid%s, min %d markers)",
                 src.describe(), n, rate, self.est.rate, self.phases,
                 "s" if self.phases > 1 else "", self.min_markers)

    def _checked_upright(self, upright: Upright | None) -> None:
        """Keep the orientation check's result; warn once when it looks wrong."""
        if upright is None:
            return
        self.upright, src = upright, self.source
        if upright.suspicious:
            where = "" if hasattr(src, "up") else \
                " (on the program sending the stream: serve takes it Y up)"
            log.warning("%s: stream %s: %s%s", src.describe(), src.name, upright.message, where)

    def release(self) -> None:
        """Give this stream's state slots back (it left)."""
        self.est.release(self.slots)
        self.slots = []

    # --- for the inference loop --------------------------------------------------------------
    def gather(self, limit: int = 64) -> list[FrameJob]:
        """The stream's pending frames (at most ``limit``), read from the ring, flagged and
        resampled: the grid points each commits are queued in ``job.commits`` for the loop's
        batched step. Stops before a frame that resets the state when others precede it."""
        src, c = self.source, self.counters
        count, lid = src.wait(self._nxt, self._layout, 0)
        if lid != self._layout:
            lid, base, _ = src.layout_info()
            # frames of the previous layout(s) never read are lost with their ring: count them
            with self._acct:
                c["dropped"] += max(0, base - (self._base + self._nxt))
                self._layout, self._base, self._nxt = lid, base, 0
            self._configure(lid)
            self._pending_flags |= F["reset"]
            count, lid = src.wait(0, self._layout, 0)
            if lid != self._layout:
                return []
        if self._cold and not self.coarse:  # room again: the skipped grids restart
            self._restart_cold()
        if count <= self._nxt:
            if src.finished.is_set() and src.wait(self._nxt, self._layout, 0)[0] <= self._nxt:
                self._checked_upright(self._watch.finish())  # a stream shorter than 1 s
                self.finished.set()
            return []
        oldest = count - src.capacity
        if self._nxt < oldest:  # the ring lapped us: those frames are gone
            self._drop_to(oldest)
        if self.coarse and count - self._nxt > 1:  # overloaded: can the backlog be caught up?
            waited = time.monotonic() - src.peek_t_recv(self._nxt, self._layout)
            if math.isfinite(waited) and waited > self.opt.overload_after_s:
                self._skip_to(count - 1, waited)
        jobs: list[FrameJob] = []
        for idx in range(self._nxt, min(count, self._nxt + limit)):
            info = src.read(idx, self._layout, self.buf)
            if info is None:  # overwritten meanwhile, or a new layout: next pass counts it
                break
            t_src, t_recv, seq, n_valid, n_invalid = info
            flags, self._pending_flags = self._pending_flags, 0
            if self._last_t is not None:
                dt = t_src - self._last_t
                if dt > self.opt.reset_gap_s or dt <= 0:
                    if jobs:  # the reset must follow the frames already queued: next pass
                        self._pending_flags = flags
                        break
                    flags |= F["reset"]
                if dt > self.opt.gap_factor / self.rate:
                    flags |= F["gap"]
                    c["gaps"] += 1
            self._last_t = t_src
            missing: list[int] = []
            if n_valid < self.buf.shape[0]:
                flags |= F["missing"]
                c["missing_frames"] += 1
                missing = np.flatnonzero(np.isnan(self.buf[:, 0])).tolist()
            if n_invalid:
                flags |= F["invalid"]
                c["invalid_frames"] += 1
            if flags & F["reset"]:
                self.est.reset(self.slots)
                self.resampler.reset()
                self._est_out, self._coarse_out = None, False
                self._cold.clear()
                self._warming.clear()
                c["resets"] += 1
            commits = []
            if n_valid < self.min_markers:
                flags |= F["too_few"]
                c["too_few"] += 1
            else:  # the grid points up to this frame; its estimate is the latest one's
                if not self._watch.done:
                    self._checked_upright(self._watch.add(self.buf, t_src))
                for ph, t_grid, pts in self.resampler.push(t_src, self.buf):
                    if ph and self.coarse:  # overloaded: only the first grid runs
                        self._cold.add(ph)
                        flags |= F["coarse"]
                        continue
                    commits.append([self.slots[ph], t_grid, pts, None, math.nan, ph, False])
            jobs.append(FrameJob(idx, info, flags, missing, commits, idx < count - 1))
        return jobs

    def _drop_to(self, index: int, also: str | None = None) -> int:
        """The frames before ``index`` never enter the model: counted ``dropped`` (and
        ``also``), the next estimate flagged dropped. Returns how many."""
        n = index - self._nxt
        with self._acct:
            self.counters["dropped"] += n
            if also:
                self.counters[also] += n
            self._nxt = index
        self._pending_flags |= F["dropped"]
        return n

    def _skip_to(self, index: int, waited: float) -> None:
        """Overloaded with a backlog older than the overload limit: the frames before ``index``
        never enter the model (counted ``dropped``, ``overload_skipped``); the model restarts at
        frame ``index`` (flags dropped and reset), so latency stops growing."""
        skip = self._drop_to(index, "overload_skipped")
        self._pending_flags |= F["reset"]
        self._rlog.warning("skip", "%s: overloaded and %.0f ms behind: %d frame(s) skipped, the "
                           "model restarts at the newest frame", self.source.describe(),
                           1e3 * waited, skip)

    def _restart_cold(self) -> None:
        """Reset the grids that skipped points; each rejoins after the receptive field."""
        cold = sorted(self._cold)
        self.est.reset([self.slots[ph] for ph in cold])
        for ph in cold:
            self._warming[ph] = self.est.receptive
        self._cold.clear()
        log.info("%s: every grid served again (%d restarted; they rejoin after %d grid "
                 "points)", self.source.describe(), len(cold), self.est.receptive)

    def finish(self, job: FrameJob, t_inf0: float, t_inf1: float) -> None:
        """Publish the estimate of ``job`` (after the loop's step filled its commits), or
        count it stale; either way the frame becomes ``processed``."""
        t_src, t_recv, seq, n_valid, _ = job.info
        c, flags = self.counters, job.flags
        novelty = math.nan
        if job.error is not None:
            flags |= F["error"]
            c["errors"] += 1
            outputs = self.nan_out
            self._rlog.warning("infer", "%s: inference failed on frame %d: %s",
                               self.source.describe(), seq, job.error)
        elif flags & F["too_few"]:
            outputs = self.nan_out
        else:
            for _, t_grid, _, out, nov, ph, unaveraged in job.commits:
                left = self._warming.get(ph)
                if left:  # a restarted grid without its whole context yet: not its estimate
                    if left > 1:
                        self._warming[ph] = left - 1
                    else:
                        del self._warming[ph]
                    flags |= F["coarse"]
                    continue
                self._est_out, self._t_est, self._novelty = out, t_grid, nov
                self._coarse_out = unaveraged
            if self._coarse_out:  # the estimate lacks the mirror average (overload)
                flags |= F["coarse"]
            outputs = self._est_out if self._est_out is not None else self.nan_out
            if self._est_out is not None:
                novelty = self._novelty
                if is_novel(novelty, getattr(self.est, "novelty_threshold", math.nan)):
                    flags |= F["novel"]
            if self.mass_kg is not None and self._est_out is not None:
                outputs = {**outputs, **absolute_outputs(
                    outputs, self.est.outputs, self.mass_kg, self.height_m)[0]}
        if flags & F["coarse"]:
            c["coarse"] += 1
        stale = job.newer and time.monotonic() - t_recv > self.opt.max_age_s
        if stale:
            with self._acct:  # processed (in the model's context), its estimate not published
                c["processed"] += 1
                c["stale_unpublished"] += 1
                self._nxt += 1
            keep = F["reset"] | F["gap"] | F["dropped"]  # events, not this frame's quality
            self._carry |= (flags & keep) | F["stale"]
            return
        flags |= self._carry
        self._carry = 0
        payload = wire.encode_estimate(
            self.source.name, self.meta_id, seq, t_src, t_recv, t_inf1, outputs, flags,
            n_valid, job.missing, c["dropped"], self.source.counters["out_of_order"],
            {"receive": t_recv - t_src, "window": t_inf0 - t_recv,
             "inference": t_inf1 - t_inf0}, c["stale_unpublished"], self._t_est, novelty)
        t_enc = time.monotonic()
        name = self.source.name
        for sink in self.sinks:
            sink.publish(name, payload, outputs, t_src)
        if self.sinks:
            c["published"] += 1
        t_pub = time.monotonic()
        with self._acct:  # the frame leaves "pending" and becomes "processed" at once
            c["processed"] += 1
            self._nxt += 1
        if flags & ~F["reset"]:
            c["flagged"] += 1
        self.times.record(t_recv - t_src, t_inf0 - t_recv, t_inf1 - t_inf0, t_enc - t_inf1,
                          t_pub - t_enc, t_pub - t_recv)
        self.latest = {"seq": seq, "outputs": outputs, "flags": flags, "n_valid": n_valid,
                       "t_deq": t_inf0, "novelty": novelty}
        if self.on_estimate is not None:
            self.on_estimate(self, outputs, flags)

    def pending(self) -> int:
        """Frames received and not yet processed or dropped (frames of a layout the loop has
        not switched to yet included)."""
        with self._acct:
            return self._pending(self.source.counters_snapshot())

    def _pending(self, source_counters: dict) -> int:
        return max(0, source_counters["received"] - (self._base + self._nxt))

    def accounting(self) -> dict:
        """Where every frame that reached this stream went.

        ``arrived`` (every message or sample) = ``received`` + ``out_of_order`` + ``malformed`` +
        ``oversized`` + ``rejected``; ``received`` = ``processed`` + ``dropped`` + ``pending``
        (``balanced`` says whether it holds); ``stale_unpublished``: processed frames (in the
        model's context) whose estimate was too old to publish. ``skipped``: frames the sender numbered but that
        never arrived (lost before serve, e.g. by a full ZeroMQ queue).
        """
        with self._acct:  # one consistent snapshot of the source's and the loop's counters
            s, c = self.source.counters_snapshot(), dict(self.counters)
            pending = self._pending(s)
        rejected = s["malformed"] + s["oversized"] + s["rejected"]
        return {"arrived": s["received"] + s["out_of_order"] + rejected,
                "received": s["received"], "processed": c["processed"],
                "dropped": c["dropped"], "stale_unpublished": c["stale_unpublished"],
                "pending": pending, "out_of_order": s["out_of_order"],
                "rejected": rejected, "skipped": s["skipped"], "flagged": c["flagged"],
                "balanced": s["received"] == c["processed"] + c["dropped"] + pending}

    def orientation(self) -> dict:
        """The orientation check's :meth:`Upright.as_dict`, or ``{"orientation": "unchecked"}``
        before its first second is in."""
        return self.upright.as_dict() if self.upright is not None else \
            {"orientation": "unchecked"}

    def summary(self) -> dict:
        """Counters of the source and the loop, stage latencies (ms), the orientation check."""
        return {"stream": self.source.name, "source": dict(self.source.counters),
                "pipeline": dict(self.counters), "accounting": self.accounting(),
                "stages_ms": self.times.summary(), "orientation": self.orientation()}
