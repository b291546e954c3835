"""Incremental (streaming) inference: one frame in, one estimate out, in constant time.

Each step encodes only the new frame's points, pushes the decoder's keys/values for that frame
into a preallocated ring of ``window`` slots per layer, and attends over the ring with the
relative-position bias of each slot's age. Nothing is recomputed for earlier frames, and the
result equals the offline causal forward over the same frames (tested).

Streams faster than the model rate (e.g. 200 Hz into a 100 Hz model) are served with
``stride = round(stream_rate / model_rate)`` interleaved decoder states: frame ``n`` uses state
``n % stride``, so every frame gets an estimate whose temporal context is at the model's rate.

Every engine runs the functional step (:mod:`hdys_rt.model.step`) through a backend
(:mod:`hdys_rt.backends`); :class:`EngineStepper` keeps the rings outside it. ``engine`` is a
name of :mod:`hdys_rt.backends.registry` (``"torch"`` by default: eager torch, up to the model's
marker bound), ``"auto"`` (the registry's choice for the device) or the path of an engine folder
written by ``hdys-rt export`` (checked against the model's hash). Engines with static shapes pad
every frame to their ``max_points``.
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
from hdys_rt.model.step import push_history

if TYPE_CHECKING:
    from hdys_rt.model.step import BiasTable

log = logging.getLogger(__name__)


class EngineStepper:
    """Runs the functional step through a backend for ``stride`` interleaved states of ONE
    stream: owns each state's key/value ring (L, H, W, dh) and position, writes the per-step
    attention bias (:class:`~hdys_rt.model.step.BiasTable`) and the new frame's keys/values.
    With one state the ring IS the backend's input buffer (no copy per step)."""

    def __init__(self, backend, bias: "BiasTable", outputs: tuple[str, ...]):
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
        self.set_stride(1)

    def set_stride(self, stride: int) -> None:
        inp = self.backend.inputs
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
        """pts (P, 3) float32 with missing rows zeroed, mask (P,) bool -> name -> (C,)."""
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
        y = out["out"][0].float().cpu().numpy()
        return {name: y[sl].copy() for name, sl in self.slices}

    def __deepcopy__(self, memo):
        """A copy for another stream: a fresh backend over the same artefact, same state."""
        new = EngineStepper.__new__(EngineStepper)
        new.backend = self.backend.clone().activate()
        new.bias, new.window, new.slices = self.bias, self.window, self.slices
        new.max_points, new.motion = self.max_points, self.motion
        new.set_stride(len(self.rings))
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
                 engine: str | os.PathLike | None = None, n_points: int | None = None):
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
             n_points: int | None = None) -> "StreamingEstimator":
        """Load a saved model (None = the bundled default); ``engine``: see the module doc;
        ``n_points``: markers per frame when known (helps ``auto`` choose)."""
        model, meta = load_model(path, device=device)
        return cls(model, meta, input_kind=input_kind, device=device, stream_rate=stream_rate,
                   engine=engine, n_points=n_points)

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
                                     tuple(self.outputs))
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
        return len(self._engine.rings)

    def set_stream_rate(self, stream_rate: float) -> None:
        """Adapt to a stream's nominal rate (Hz) and reset the cached state."""
        if not (stream_rate > 0):
            raise HdysError(f"stream_rate must be > 0 Hz, got {stream_rate}")
        stride = max(1, int(round(stream_rate / self.rate)))
        if abs(stream_rate / stride - self.rate) > 0.25 * self.rate:
            log.warning("stream rate %.1f Hz is not a multiple of the model rate %.1f Hz; "
                        "temporal context is off by %.0f%%", stream_rate, self.rate,
                        100 * abs(stream_rate / stride / self.rate - 1))
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

    def step(self, points: np.ndarray) -> dict[str, np.ndarray]:
        """One frame: points (P, 3) float32 metres Y up, NaN rows = missing -> name -> (C,)."""
        pts = np.asarray(points, dtype=np.float32)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise HdysError(f"points must be (P, 3), got shape {pts.shape}")
        if pts.shape[0] > self.max_points:
            raise HdysError(f"{pts.shape[0]} points exceed the model's bound of "
                            f"{self.max_points}")
        if pts.shape[0] > self._engine.max_points:
            self._fit(pts.shape[0])
        mask = np.isfinite(pts).all(1)
        state = self._frame % self.stride
        self._frame += 1
        return self._engine.step(state, np.where(mask[:, None], pts, np.float32(0.0)),
                                 mask.astype(np.float32))
