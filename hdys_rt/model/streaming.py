"""Incremental (streaming) inference: one frame in, one estimate out, in constant time.

Each step encodes only the new frame's points, pushes the decoder's keys/values for that frame
into a preallocated ring of ``window`` slots per layer, and attends over the ring with the
relative-position bias of each slot's age. Nothing is recomputed for earlier frames, and the
result equals the offline causal forward over the same frames (tested).

Streams faster than the model rate (e.g. 200 Hz into a 100 Hz model) are served with
``stride = round(stream_rate / model_rate)`` interleaved decoder states: by default frame ``n``
uses state ``n % stride``; the live runtime names the state of each frame it commits
(:mod:`hdys_rt.model.resample` resamples any rate onto these states).

Every engine runs the functional step (:mod:`hdys_rt.model.step`) through a backend
(:mod:`hdys_rt.backends`); :class:`EngineStepper` keeps the rings outside it. ``engine`` is a
name of :mod:`hdys_rt.backends.registry` (``"torch"`` by default: eager torch, up to the model's
marker bound), ``"auto"`` (the registry's choice for the device) or the path of an engine folder
written by ``hdys-rt export`` (checked against the model's hash). Engines with static shapes pad
every frame to their ``max_points``.

A step returns ``name -> (C,)`` for every output of the model; the estimator's ``novelty`` then
holds the novelty score of the frame(s) just stepped (:mod:`hdys_rt.model.novelty`; NaN when the
model is not calibrated, or the engine was exported before the step computed it) and
``novelty_threshold`` is the model's threshold for the input (NaN: none).

A model whose metadata asks for it (``mirror_average``: every model ``hdys-rt train`` writes) is
stepped on each frame and on its mirror image, each in its own decoder state, and the two
estimates are averaged (:mod:`hdys_rt.model.mirror`); ``mirror=False`` turns that off.
"""

from __future__ import annotations

import copy
import logging
import os
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np
import torch

from hdys_rt import representations as reps
from hdys_rt.errors import HdysError
from hdys_rt.model.hdys import HDyS
from hdys_rt.model.io import load_model
from hdys_rt.model.mirror import OutputMirror, averages, mirror_points
from hdys_rt.model.novelty import threshold_of
from hdys_rt.model.step import push_history

if TYPE_CHECKING:
    from hdys_rt.model.step import BiasTable

log = logging.getLogger(__name__)


class EngineStepper:
    """Runs the functional step through a backend for ``stride`` interleaved states of ONE
    stream: owns each state's key/value ring (L, H, W, dh) and position, writes the per-step
    attention bias (:class:`~hdys_rt.model.step.BiasTable`) and the new frame's keys/values.
    With one state the ring IS the backend's input buffer (no copy per step). ``mirror``: each
    state has a twin that steps the frame's mirror image, and the estimates are averaged
    (:mod:`hdys_rt.model.mirror`)."""

    def __init__(self, backend, bias: "BiasTable", outputs: tuple[str, ...],
                 mirror: bool = False):
        from hdys_rt.model.step import output_slices

        self.backend = backend.activate()
        if backend.io.batch != 1:
            raise HdysError(f"the streaming estimator runs one stream per engine; this engine "
                            f"has batch {backend.io.batch} (export it with --batch 1)")
        self.bias = bias.table.to(backend.device)  # (2W, L, H, W)
        self.window = bias.window
        self.slices = list(output_slices(outputs).items())
        self.max_points = backend.io.max_points
        self.motion = "history" in backend.inputs  # the model sees motion (previous frames)
        self.novelty = float("nan")  # the novelty score of the frame last stepped
        self.mirror = OutputMirror(outputs) if mirror else None
        self.set_stride(1)

    def set_stride(self, stride: int) -> None:
        """``stride`` interleaved states (and as many mirror twins after them)."""
        inp = self.backend.inputs
        self.stride = stride
        stride *= 1 if self.mirror is None else 2
        if stride == 1:
            self.rings = [(inp["k_cache"][0], inp["v_cache"][0])]
            self.histories = [inp["history"][0]] if self.motion else []
        else:
            self.rings = [(torch.zeros_like(inp["k_cache"][0]), torch.zeros_like(inp["v_cache"][0]))
                          for _ in range(stride)]
            self.histories = [torch.zeros_like(inp["history"][0]) for _ in range(stride)] \
                if self.motion else []
        self.pos = [0] * stride
        self.reset()

    def reset(self) -> None:
        for k, v in self.rings:
            k.zero_()
            v.zero_()
        for h in self.histories:
            h.zero_()
        self.pos = [0] * len(self.rings)

    def step(self, state: int, pts: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        """pts (P, 3) float32 with missing rows zeroed, mask (P,) bool -> name -> (C,); the
        frame's novelty score in ``self.novelty``."""
        y = self._run(state, pts, mask)
        if self.mirror is not None:
            novelty = self.novelty  # of the frame itself, not of its image
            y = self.mirror.flat(y, self._run(state + self.stride, mirror_points(pts), mask))
            self.novelty = novelty
        return {name: y[sl] for name, sl in self.slices}

    def _run(self, state: int, pts: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Advance one state by one frame -> the flat output row (C,)."""
        be, W = self.backend, self.window
        inp = be.inputs
        P = pts.shape[0]
        be.use_points(P)
        inp["points"][0, :P].copy_(torch.from_numpy(pts))
        inp["points"][0, P:].zero_()
        inp["mask"][0, :P].copy_(torch.from_numpy(mask))
        inp["mask"][0, P:].zero_()
        k, v = self.rings[state]
        if len(self.rings) > 1:
            inp["k_cache"][0].copy_(k)
            inp["v_cache"][0].copy_(v)
            if self.motion:
                inp["history"][0].copy_(self.histories[state])
        pos = self.pos[state]
        inp["attn_bias"][0].copy_(self.bias[pos if pos < W else W + pos % W])
        out = be.infer()
        r = pos % W
        k[:, :, r].copy_(out["k_new"][0])
        v[:, :, r].copy_(out["v_new"][0])
        self.pos[state] = pos + 1
        if self.motion:  # this frame becomes the state's previous frame
            push_history(self.histories[state], inp["points"][0], inp["mask"][0])
        nov = out.get("novelty")  # absent from engines exported before it existed
        self.novelty = float("nan") if nov is None else float(nov[0])
        return out["out"][0].float().cpu().numpy().copy()  # the buffer is the next run's

    def __deepcopy__(self, memo):
        """A copy for another stream: a fresh backend over the same artefact, same state."""
        new = EngineStepper.__new__(EngineStepper)
        new.backend = self.backend.clone().activate()
        new.bias, new.window, new.slices = self.bias, self.window, self.slices
        new.max_points, new.motion, new.mirror = self.max_points, self.motion, self.mirror
        new.set_stride(self.stride)
        for (k, v), (k2, v2) in zip(self.rings, new.rings):
            k2.copy_(k)
            v2.copy_(v)
        for h, h2 in zip(self.histories, new.histories):
            h2.copy_(h)
        new.pos = list(self.pos)
        return new

    def close(self) -> None:
        self.backend.deactivate()


class StreamingEstimator:
    """Per-frame estimates from a live point stream (markers or keypoints).

    Attributes: ``input_kind``, ``outputs`` (name -> channel names), ``units``, ``rate`` (model
    Hz), ``window`` (frames of context), ``max_points`` (the engine's marker slots),
    ``metadata`` (the model's JSON), ``engine`` (the engine's registry name),
    ``engine_reason`` (why that engine: asked for, or what ``auto`` skipped).
    """

    def __init__(self, model: HDyS, meta: dict, input_kind: str = "markers",
                 device: str = "cpu", stream_rate: float | None = None,
                 engine: str | os.PathLike | None = None, n_points: int | None = None,
                 mirror: bool | None = None):
        if input_kind not in model.cfg.kin_inputs or not reps.is_point_set(input_kind):
            raise HdysError(f"input_kind {input_kind!r} not served by this model (point inputs: "
                            f"{[k for k in model.cfg.kin_inputs if reps.is_point_set(k)]})")
        if not model.cfg.causal:
            raise HdysError("streaming needs a causal decoder; this model is bidirectional "
                            "(offline only)")
        self.model = model.eval()
        self.metadata = meta
        self.input_kind = input_kind
        self.device = torch.device(device)
        self.rate = float(meta.get("rate", 100.0))
        self.window = model.cfg.window
        self.max_points = model.cfg.max_points
        self.outputs = {k: tuple(v) for k, v in meta["outputs"].items()}
        self.units = dict(meta["units"])
        self.novelty_threshold = threshold_of(meta, input_kind)
        self.novelty = float("nan")  # the novelty score of the frame last stepped
        self.mirror = averages(meta, mirror)
        self._frame = 0
        self._engine = None
        # auto may pick an engine with fewer marker slots than the model takes: a larger frame
        # then switches to the registry's choice for that many markers (see _fit)
        self._auto = str(engine) == "auto"
        self.engine, self.engine_reason = self._open_engine(engine, n_points)
        if not self._auto:
            self.max_points = self._engine.max_points
        self.set_stream_rate(stream_rate or self.rate)

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, device: str = "cpu",
             input_kind: str = "markers", stream_rate: float | None = None,
             engine: str | os.PathLike | None = None,
             n_points: int | None = None, mirror: bool | None = None) -> "StreamingEstimator":
        """Load a saved model (None = the bundled default); ``engine``: see the module doc;
        ``n_points``: markers per frame when known (helps ``auto`` choose); ``mirror``: average
        with the mirror image's estimates (None: as the model's metadata says)."""
        model, meta = load_model(path, device=device)
        return cls(model, meta, input_kind=input_kind, device=device, stream_rate=stream_rate,
                   engine=engine, n_points=n_points, mirror=mirror)

    def _open_engine(self, engine, n_points) -> tuple[str, str]:
        """Set up the backend named by ``engine``; returns (its registry name, why)."""
        from hdys_rt.backends import registry
        from hdys_rt.backends.base import IOSpec
        from hdys_rt.model.step import BiasTable, StreamingStep

        name = str(engine) if engine is not None else registry.PORTABLE
        if name == registry.AUTO or name in registry.ENGINES or name in registry.ALIASES:
            spec, why = registry.resolve(name, self.device, n_points)
            step = StreamingStep(self.model, self.input_kind)
            P = min(spec.max_points or self.max_points, self.max_points)
            backend = spec.from_step(step, IOSpec.from_shapes(step.io_shapes(1, P)), self.device)
        elif Path(name).is_dir():
            from hdys_rt.backends.engine import open_engine, read_engine

            info = read_engine(name)
            if info.get("input_kind", "markers") != self.input_kind:
                raise HdysError(f"engine {name} takes {info.get('input_kind')!r}, not "
                                f"{self.input_kind!r}")
            backend = open_engine(name, device=str(self.device),
                                  model_sha256=self.metadata.get("weights_sha256"))
            spec, why = registry.get(info["engine"], warn=False), f"engine folder {name}"
        else:
            raise HdysError(f"engine must be one of {registry.names() + (registry.AUTO,)} or an "
                            f"engine folder, got {name!r}")
        self._engine = EngineStepper(backend, BiasTable(self.model.decoder.rel_bias),
                                     tuple(self.outputs), self.mirror)
        log.info("streaming estimator on the %s engine (%s; %s)", spec.name, why, backend)
        return spec.name, why

    def close(self) -> None:
        """Release the engine's resources."""
        if self._engine is not None:
            self._engine.close()

    def __deepcopy__(self, memo):
        """An independent estimator for another stream (a fresh backend instance)."""
        new = copy.copy(self)
        new.model = self.model  # weights are read-only here: share them
        new._engine = copy.deepcopy(self._engine, memo)
        return new

    @property
    def stride(self) -> int:
        return self._engine.stride

    def set_stream_rate(self, stream_rate: float) -> None:
        """Adapt to a stream's nominal rate (Hz) and reset the cached state."""
        if not (stream_rate > 0):
            raise HdysError(f"stream_rate must be > 0 Hz, got {stream_rate}")
        from hdys_rt.model.resample import phases_for

        stride = phases_for(stream_rate, self.rate)
        self.stream_rate = float(stream_rate)
        self._engine.set_stride(stride)
        self._frame = 0

    def reset(self) -> None:
        """Forget the stream's history (new stream, or after a gap)."""
        self._engine.reset()
        self._frame = 0

    def _fit(self, n_points: int) -> None:
        """(auto only) Reopen the engine for frames of ``n_points`` markers; the stream's
        history restarts."""
        old, stride = self._engine, self.stride
        self.engine, self.engine_reason = self._open_engine("auto", n_points)
        old.close()
        log.warning("%d markers do not fit the %d slots of the engine auto chose: now on the "
                    "%s engine (%s)", n_points, old.max_points, self.engine, self.engine_reason)
        self._engine.set_stride(stride)
        self._frame = 0

    def step(self, points: np.ndarray, state: int | None = None) -> dict[str, np.ndarray]:
        """One frame: points (P, 3) float32 metres Y up, NaN rows = missing -> name -> (C,)
        (its novelty score: ``self.novelty``).
        ``state``: the interleaved decoder state it advances (None: the next in turn; frames
        must then be exactly ``1 / stream_rate`` apart)."""
        pts = np.asarray(points, dtype=np.float32)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise HdysError(f"points must be (P, 3), got shape {pts.shape}")
        if pts.shape[0] > self.max_points:
            raise HdysError(f"{pts.shape[0]} points exceed the model's bound of "
                            f"{self.max_points}")
        if pts.shape[0] > self._engine.max_points:
            self._fit(pts.shape[0])
        mask = np.isfinite(pts).all(1)
        if state is None:
            state = self._frame % self.stride
        self._frame += 1
        out = self._engine.step(state, np.where(mask[:, None], pts, np.float32(0.0)),
                                mask.astype(np.float32))
        self.novelty = self._engine.novelty
        return out


class BatchedEstimator:
    """One engine serving many streams: a per-slot decoder state (key/value rings of
    (S, L, H, W, dh) and a frame position per slot) and ONE batched step over any set of slots.

    A stream takes one slot per interleaved state (:meth:`alloc`, :meth:`release`); a step
    (:meth:`step`) advances the given slots by one frame each, in one backend call per batch
    bucket (static-shape engines are built for batch 1, 2, 4, ... slots, on first need; a call
    runs as few buckets as cover it). The rings live here, not in the backends, so buckets and
    engines can change (more markers than the engine's slots: re-chosen by ``auto``) without
    losing any stream's history.

    With ``mirror`` (see the module doc), every slot has a twin slot stepping the mirror image
    in the same batched call. A step may leave the twins out (``step(..., mirror=False)``: half
    the rows, for a server that cannot keep up): those estimates are not averaged, and a twin
    that missed frames restarts when next stepped and is averaged in again once it holds the
    decoder's receptive field (:attr:`receptive` steps); ``unaveraged`` says, per slot of the
    last step, whether its estimate lacks the average the model asks for.

    Attributes as :class:`StreamingEstimator`: ``input_kind``, ``outputs``, ``units``, ``rate``,
    ``window``, ``max_points``, ``metadata``, ``engine``, ``engine_reason``, ``mirror``.
    """

    def __init__(self, model: HDyS, meta: dict, input_kind: str = "markers",
                 device: str = "cpu", engine: str | os.PathLike | None = None,
                 mirror: bool | None = None):
        from hdys_rt.model.step import BiasTable, StreamingStep, output_slices

        single = StreamingEstimator(model, meta, input_kind, device, engine=engine,
                                    mirror=False)
        self.mirror = averages(meta, mirror)
        self._mirror = OutputMirror(tuple(single.outputs)) if self.mirror else None
        self._twin: dict[int, int] = {}  # slot -> the slot stepping its mirror image
        self._twin_cold: set[int] = set()  # twins that missed frames (stepped without them)
        self._twin_warming: dict[int, int] = {}  # restarted twin -> steps until averaged in
        self.unaveraged = np.zeros(0, bool)  # the last step's slots not averaged (see above)
        self.model, self.metadata, self.input_kind = model, meta, input_kind
        self.device, self.rate, self.window = single.device, single.rate, single.window
        self.max_points, self.outputs, self.units = single.max_points, single.outputs, single.units
        self.novelty_threshold = single.novelty_threshold
        self.novelty = np.zeros(0, np.float32)  # the last step's novelty score per slot
        self.engine, self.engine_reason = single.engine, single.engine_reason
        self._auto = single._auto
        self._requested = "auto" if self._auto else (str(engine) if engine is not None else None)
        self._step = StreamingStep(model, input_kind)
        self._slices = list(output_slices(tuple(self.outputs)).items())
        self._bias = BiasTable(model.decoder.rel_bias).table.to(self.device)  # (2W, L, H, W)
        first = single._engine.backend
        self._folder = str(engine) if engine is not None and Path(str(engine)).is_dir() else None
        self._spec = None
        self._buckets: dict[int, object] = {1: first}
        self._slots_P = first.io.max_points  # marker slots of the engine
        sh = first.inputs["k_cache"].shape[1:]  # (L, H, W, dh)
        self._kv_shape = tuple(sh)
        self.k = torch.zeros((0, *sh), device=self.device)
        self.v = torch.zeros((0, *sh), device=self.device)
        self.pos = np.zeros(0, np.int64)
        # models that see motion: each slot's previous frames (S, K, P, 4) (see step.py)
        self.motion = "history" in first.inputs
        self._hist_shape = tuple(first.inputs["history"].shape[1:]) if self.motion else None
        self.hist = torch.zeros((0, *(self._hist_shape or (0,))), device=self.device)
        self._free: list[int] = []
        self.calls = 0  # backend calls (one per bucket run)

    @property
    def receptive(self) -> int:
        """Steps after which a reset slot equals one that never stopped: the causal decoder's
        receptive field, layers x (window - 1) + 1 frames, plus the encoder's history of
        previous frames for models that see motion."""
        return self.model.cfg.dec_layers * (self.window - 1) + 1 + \
            (self._hist_shape[0] if self.motion else 0)

    @classmethod
    def load(cls, path=None, device: str = "cpu", input_kind: str = "markers",
             engine=None, mirror: bool | None = None) -> "BatchedEstimator":
        model, meta = load_model(path, device=device)
        return cls(model, meta, input_kind=input_kind, device=device, engine=engine,
                   mirror=mirror)

    # --- slots -------------------------------------------------------------------------------
    def alloc(self, n: int = 1) -> list[int]:
        """``n`` fresh (reset) slots for a stream's states (and their twins, with mirror)."""
        slots = self._take(n)
        if self.mirror:
            self._twin.update(zip(slots, self._take(n)))
        return slots

    def _take(self, n: int) -> list[int]:
        while len(self._free) < n:
            S = self.k.shape[0]
            grow = max(4, S)
            z = torch.zeros((grow, *self._kv_shape), device=self.device)
            self.k, self.v = torch.cat([self.k, z]), torch.cat([self.v, z.clone()])
            self.pos = np.concatenate([self.pos, np.zeros(grow, np.int64)])
            if self.motion:
                self.hist = torch.cat([self.hist, torch.zeros(
                    (grow, *self._hist_shape), device=self.device)])
            self._free.extend(range(S, S + grow))
        slots = sorted(self._free)[:n]
        for s in slots:
            self._free.remove(s)
        self._reset(slots)
        return slots

    def release(self, slots) -> None:
        slots = list(slots) + [self._twin.pop(s) for s in slots if s in self._twin]
        self._free.extend(s for s in slots if s not in self._free)

    def reset(self, slots) -> None:
        """Forget the history of ``slots``."""
        self._reset(list(slots) + [self._twin[s] for s in slots if s in self._twin])

    def _reset(self, slots) -> None:
        for s in slots:
            self._twin_cold.discard(s)
            self._twin_warming.pop(s, None)
            self.pos[s] = 0
            self.k[s].zero_()
            self.v[s].zero_()
            if self.motion:
                self.hist[s].zero_()

    def prepare(self, rows: int) -> None:
        """Build the batch buckets for ``rows`` slots stepped at once (twice as many rows with
        mirror) now, not on first need while serving (an engine that runs any number of rows
        up to its batch needs only the largest)."""
        rows *= 2 if self.mirror else 1
        if rows > 1 and self._buckets[1].dynamic_batch:
            self._bucket(1 << (rows - 1).bit_length())
            return
        b = 1
        while b < rows:
            b *= 2
            self._bucket(b)

    # --- engines -----------------------------------------------------------------------------
    def _bucket(self, b: int):
        be = self._buckets.get(b)
        if be is None:
            from hdys_rt.backends import registry
            from hdys_rt.backends.base import IOSpec

            if self._folder is not None:  # an exported engine has one batch size: run it
                return None
            name = self._requested or registry.PORTABLE
            spec, _ = registry.resolve(name, self.device, self._slots_P)
            io = IOSpec.from_shapes(self._step.io_shapes(b, self._slots_P))
            be = spec.from_step(self._step, io, self.device).activate()
            self._buckets[b] = be
            log.debug("batch-%d %s engine built", b, spec.name)
        return be

    def fit(self, n_points: int) -> None:
        """Make the engine hold frames of ``n_points`` markers (``auto``: re-chosen; the
        streams' histories are kept)."""
        if n_points <= self._slots_P:
            return
        if n_points > self.max_points:
            raise HdysError(f"{n_points} points exceed the model's bound of {self.max_points}")
        if not self._auto:
            raise HdysError(f"{n_points} markers exceed the {self._slots_P} slots of the "
                            f"{self.engine} engine")
        from hdys_rt.backends import registry

        spec, why = registry.resolve("auto", self.device, n_points)
        for be in self._buckets.values():
            be.deactivate()
        P = min(spec.max_points or self.max_points, self.max_points)
        if self.motion and P != self._hist_shape[1]:  # the slots' history grows with them
            K, P0 = self._hist_shape[0], self._hist_shape[1]
            grown = torch.zeros((self.hist.shape[0], K, P, 4), device=self.device)
            grown[:, :, :min(P, P0)] = self.hist[:, :, :min(P, P0)]
            self.hist, self._hist_shape = grown, (K, P, 4)
        self._slots_P, self._buckets = P, {}
        self.engine, self.engine_reason = spec.name, why
        self._bucket(1)
        log.warning("%d markers do not fit the engine's slots: now on the %s engine (%s)",
                    n_points, spec.name, why)

    # --- the step ----------------------------------------------------------------------------
    def step(self, slots: list[int], points: list[np.ndarray], mirror: bool = True
             ) -> list[dict[str, np.ndarray]]:
        """Advance each slot by one frame: ``points[i]`` (P_i, 3) float32 metres Y up, NaN rows
        missing, for ``slots[i]`` (distinct) -> one ``name -> (C,)`` per slot (their novelty
        scores: ``self.novelty``, (n,); ``self.unaveraged``, (n,): estimates without the
        mirror average the model asks for). ``mirror=False``: the twins are left out (see the
        class doc)."""
        n = len(slots)
        if not self.mirror or not mirror:
            if self.mirror:
                self._twin_cold.update(self._twin[s] for s in slots)
            out, self.novelty = self._step_rows(slots, points)
            self.unaveraged = np.full(n, self.mirror)
            return self._named(out)
        twins = [self._twin[s] for s in slots]
        cold = [t for t in twins if t in self._twin_cold]
        if cold:  # they missed frames: restart, averaged in after the receptive field
            self._reset(cold)
            self._twin_warming.update((t, self.receptive) for t in cold)
        out, nov = self._step_rows(list(slots) + twins,
                                   list(points) + [mirror_points(p) for p in points])
        self.novelty = nov[:n]  # of the frames themselves, not of their images
        self.unaveraged = np.zeros(n, bool)
        for i, t in enumerate(twins):
            left = self._twin_warming.get(t)
            if left:
                self.unaveraged[i] = True
                if left > 1:
                    self._twin_warming[t] = left - 1
                else:
                    del self._twin_warming[t]
        own = out[:n]
        if self.unaveraged.any():
            ok = ~self.unaveraged
            own[ok] = self._mirror.flat(own[ok], out[n:][ok])
        else:
            self._mirror.flat(own, out[n:])
        return self._named(own)

    def _step_rows(self, slots: list[int], points: list[np.ndarray]
                   ) -> tuple[np.ndarray, np.ndarray]:
        """One frame for each of ``slots`` -> output rows (n, C) and novelty scores (n,)."""
        n = len(slots)
        P = max(p.shape[0] for p in points)
        self.fit(P)
        if all(p.shape[0] == P for p in points):  # the usual case: one array op per batch
            pts = np.stack(points).astype(np.float32, copy=False)
            ok = np.isfinite(pts).all(2)
            pts = np.where(ok[..., None], pts, np.float32(0))
            mask = ok.astype(np.float32)
        else:
            pts = np.zeros((n, P, 3), np.float32)
            mask = np.zeros((n, P), np.float32)
            for i, p in enumerate(points):
                ok = np.isfinite(p).all(1)
                pts[i, : p.shape[0]][ok] = p[ok]
                mask[i, : p.shape[0]] = ok
        out = np.empty((n, sum(sl.stop - sl.start for _, sl in self._slices)), np.float32)
        nov = np.full(n, np.nan, np.float32)
        i = 0
        while i < n:
            be = self._engine_for(n - i)
            b = min(be.io.batch, n - i)
            self._run(be, slots[i:i + b], pts[i:i + b], mask[i:i + b], out[i:i + b],
                      nov[i:i + b])
            i += b
        return out, nov

    def _engine_for(self, n: int):
        """The engine for the next ``n`` rows: one that runs any number of rows runs them all
        in one call (the smallest built that holds them, else one of the next power of two);
        static ones run the largest power of two that fits, so as few calls as cover ``n``."""
        first = self._buckets[1]
        if first.dynamic_batch:
            fits = [b for b in self._buckets if b >= n]
            return self._buckets[min(fits)] if fits else \
                self._bucket(1 << (n - 1).bit_length()) or first
        return self._bucket(1 << (n.bit_length() - 1)) or first

    def _named(self, rows: np.ndarray) -> list[dict[str, np.ndarray]]:
        """(n, C) output rows -> one ``name -> (C,)`` per row (views of ``rows``)."""
        cols = [(name, rows[:, sl]) for name, sl in self._slices]
        return [{name: c[i] for name, c in cols} for i in range(len(rows))]

    def _run(self, be, slots, pts, mask, out, nov) -> None:
        b, W = len(slots), self.window
        if be.dynamic_batch:
            be.use_batch(b)
        inp = {k: t[:b] for k, t in be.inputs.items()}
        P = pts.shape[1]
        be.use_points(P)
        inp["points"][:, :P].copy_(torch.from_numpy(pts))
        inp["points"][:, P:].zero_()
        inp["mask"][:, :P].copy_(torch.from_numpy(mask))
        inp["mask"][:, P:].zero_()
        idx = torch.as_tensor(slots, device=self.device)
        torch.index_select(self.k, 0, idx, out=inp["k_cache"])
        torch.index_select(self.v, 0, idx, out=inp["v_cache"])
        pos = self.pos[slots]
        bidx = torch.as_tensor(np.where(pos < W, pos, W + pos % W), device=self.device)
        torch.index_select(self._bias, 0, bidx, out=inp["attn_bias"])
        if self.motion:
            torch.index_select(self.hist, 0, idx, out=inp["history"])
        res = {k: t[:b] for k, t in be.infer().items()}
        self.calls += 1
        r = torch.as_tensor(pos % W, device=self.device)
        self.k[idx, :, :, r] = res["k_new"].to(self.k.dtype)
        self.v[idx, :, :, r] = res["v_new"].to(self.v.dtype)
        if self.motion:  # the frame just run becomes each slot's previous frame
            h = inp["history"]  # (b, K, P, 4), this call's copy of the slots' history
            h[:, 1:] = h[:, :-1].clone()
            h[:, 0, :, :3] = inp["points"]
            h[:, 0, :, 3] = inp["mask"]
            self.hist[idx] = h
        self.pos[slots] = pos + 1
        out[:] = res["out"].float().cpu().numpy()
        if "novelty" in res:  # absent from engines exported before it existed
            nov[:] = res["novelty"].float().cpu().numpy()

    def close(self) -> None:
        for be in self._buckets.values():
            be.deactivate()
