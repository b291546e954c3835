"""Incremental (streaming) inference: one frame in, one estimate out, in constant time.

Each step encodes only the new frame's points, pushes the decoder's keys/values for that frame
into a preallocated ring of ``window`` slots per layer, and attends over the ring with the
relative-position bias of each slot's age. Nothing is recomputed for earlier frames, and the
result equals the offline causal forward over the same frames (tested).

Streams faster than the model rate (e.g. 200 Hz into a 100 Hz model) are served with
``stride = round(stream_rate / model_rate)`` interleaved decoder states: frame ``n`` uses state
``n % stride``, so every frame gets an estimate whose temporal context is at the model's rate.

Engines: ``engine="torch"`` (default) runs the code below in torch eager mode with any number of
points. Any other engine runs the functional step (:mod:`hdys_rt.model.step`) through a backend
(:mod:`hdys_rt.backends`): ``"eager"``, ``"cudagraph"``, ``"onnxruntime"`` (exported on the fly),
``"auto"`` (cudagraph on CUDA, else onnxruntime when installed, else torch) or the path of an
engine folder written by ``hdys-rt export`` (checked against the model's hash). Those pad every
frame to the engine's ``max_points`` and keep the rings outside the engine
(:class:`EngineStepper`).
"""

from __future__ import annotations

import copy
import logging
import os
import tempfile
from pathlib import Path

from typing import TYPE_CHECKING

import numpy as np
import torch
import torch.nn.functional as F

from hdys_rt import representations as reps
from hdys_rt.errors import HdysError
from hdys_rt.model.hdys import HDyS
from hdys_rt.model.io import load_model

if TYPE_CHECKING:
    from hdys_rt.model.step import BiasTable

log = logging.getLogger(__name__)


class DecoderState:
    """Cached keys/values of one causal decoder stream: (layers, heads, window, head_dim)."""

    def __init__(self, layers: int, heads: int, window: int, dh: int, device, dtype):
        self.k = torch.zeros(layers, heads, window, dh, device=device, dtype=dtype)
        self.v = torch.zeros_like(self.k)
        self.pos = 0  # frames pushed so far

    def reset(self):
        self.k.zero_()
        self.v.zero_()
        self.pos = 0


class StreamingDecoder(torch.nn.Module):
    """The causal temporal decoder + heads of an :class:`HDyS`, stepped one frame at a time."""

    def __init__(self, model: HDyS):
        super().__init__()
        if not model.cfg.causal:
            raise HdysError("streaming needs a causal decoder; this model is bidirectional "
                            "(offline only)")
        self.model = model
        dec = model.decoder
        W = model.cfg.window
        slots = torch.arange(W)
        # bias_tab[l, r, h, j]: bias of slot j when the newest frame sits in slot r
        ages = (slots[:, None] - slots[None, :]) % W  # (r, j)
        tab = dec.rel_bias.detach()[:, :, ages]  # (L, H, r, j)
        self.register_buffer("bias_tab", tab.permute(0, 2, 1, 3).contiguous(), persistent=False)
        # slot j is filled after pos+1 pushes iff j <= pos (while pos < W)
        fill = torch.where(slots[None, :] <= slots[:, None], 0.0, float("-inf"))  # (pos, j)
        self.register_buffer("fill_mask", fill, persistent=False)

    def new_state(self) -> DecoderState:
        cfg = self.model.cfg
        p = next(self.model.parameters())
        return DecoderState(cfg.dec_layers, cfg.dec_heads, cfg.window, cfg.latent // cfg.dec_heads,
                            p.device, p.dtype)

    def step(self, z: torch.Tensor, state: DecoderState) -> torch.Tensor:
        """z (1, D) latent of the new frame -> decoder features (1, D); updates ``state``."""
        dec = self.model.decoder
        W = self.model.cfg.window
        r = state.pos % W
        x = dec.inp(z).view(1, 1, -1)  # (1, 1, D)
        for i, blk in enumerate(dec.blocks):
            q, k, v = blk.qkv_heads(x)  # (1, H, 1, dh)
            state.k[i, :, r] = k[0, :, 0]
            state.v[i, :, r] = v[0, :, 0]
            bias = self.bias_tab[i, r]  # (H, W)
            if state.pos < W:
                bias = bias + self.fill_mask[state.pos]
            a = F.scaled_dot_product_attention(
                q, state.k[i].unsqueeze(0), state.v[i].unsqueeze(0),
                attn_mask=bias[None, :, None, :].to(q.dtype))
            x = blk.finish(x, a)
        state.pos += 1
        return dec.ln(x).view(1, -1)


ENGINE_CHOICES = ("torch", "eager", "cudagraph", "onnxruntime", "auto")
DEFAULT_ENGINE_POINTS = 64  # marker slots of engines built on the fly (41 in the demo clip)


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
        self.set_stride(1)

    def set_stride(self, stride: int) -> None:
        inp = self.backend.inputs
        if stride == 1:
            self.rings = [(inp["k_cache"][0], inp["v_cache"][0])]
        else:
            self.rings = [(torch.zeros_like(inp["k_cache"][0]), torch.zeros_like(inp["v_cache"][0]))
                          for _ in range(stride)]
        self.pos = [0] * stride
        self.reset()

    def reset(self) -> None:
        for k, v in self.rings:
            k.zero_()
            v.zero_()
        self.pos = [0] * len(self.rings)

    def step(self, state: int, pts: np.ndarray, mask: np.ndarray) -> dict[str, np.ndarray]:
        """pts (P, 3) float32 with missing rows zeroed, mask (P,) bool -> name -> (C,)."""
        be, W = self.backend, self.window
        inp = be.inputs
        P = pts.shape[0]
        inp["points"][0, :P].copy_(torch.from_numpy(pts))
        inp["points"][0, P:].zero_()
        inp["mask"][0, :P].copy_(torch.from_numpy(mask))
        inp["mask"][0, P:].zero_()
        k, v = self.rings[state]
        if len(self.rings) > 1:
            inp["k_cache"][0].copy_(k)
            inp["v_cache"][0].copy_(v)
        pos = self.pos[state]
        inp["attn_bias"][0].copy_(self.bias[pos if pos < W else W + pos % W])
        out = be.infer()
        r = pos % W
        k[:, :, r].copy_(out["k_new"][0])
        v[:, :, r].copy_(out["v_new"][0])
        self.pos[state] = pos + 1
        y = out["out"][0].float().cpu().numpy()
        return {name: y[sl].copy() for name, sl in self.slices}

    def __deepcopy__(self, memo):
        """A copy for another stream: a fresh backend over the same artefact, same state."""
        new = EngineStepper.__new__(EngineStepper)
        new.backend = self.backend.clone().activate()
        new.bias, new.window, new.slices = self.bias, self.window, self.slices
        new.max_points = self.max_points
        new.set_stride(len(self.rings))
        for (k, v), (k2, v2) in zip(self.rings, new.rings):
            k2.copy_(k)
            v2.copy_(v)
        new.pos = list(self.pos)
        return new

    def close(self) -> None:
        self.backend.deactivate()


class StreamingEstimator:
    """Per-frame estimates from a live point stream (markers or keypoints).

    Attributes: ``input_kind``, ``outputs`` (name -> channel names), ``units``, ``rate`` (model
    Hz), ``window`` (frames of context), ``max_points`` (the engine's marker slots),
    ``metadata`` (the model's JSON), ``engine`` (the backend's name, "torch" by default).
    """

    def __init__(self, model: HDyS, meta: dict, input_kind: str = "markers",
                 device: str = "cpu", stream_rate: float | None = None,
                 engine: str | os.PathLike | None = None):
        if input_kind not in model.cfg.kin_inputs or not reps.is_point_set(input_kind):
            raise HdysError(f"input_kind {input_kind!r} not served by this model "
                            f"(point inputs: {[k for k in model.cfg.kin_inputs if reps.is_point_set(k)]})")
        self.model = model.eval()
        self.metadata = meta
        self.input_kind = input_kind
        self.device = torch.device(device)
        self.rate = float(meta.get("rate", 100.0))
        self.window = model.cfg.window
        self.max_points = model.cfg.max_points
        self.outputs = {k: tuple(v) for k, v in meta["outputs"].items()}
        self.units = dict(meta["units"])
        self.decoder = StreamingDecoder(model).to(self.device)
        self._stats = [(getattr(model, f"mean_{k}"), getattr(model, f"std_{k}"))
                       for k in self.outputs]
        self._frame = 0
        self._engine = None
        self._tmp = None
        self.engine = self._open_engine(engine)
        self.set_stream_rate(stream_rate or self.rate)

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, device: str = "cpu",
             input_kind: str = "markers", stream_rate: float | None = None,
             engine: str | os.PathLike | None = None) -> "StreamingEstimator":
        """Load a saved model (None = the bundled default); ``engine``: see the module doc."""
        model, meta = load_model(path, device=device)
        return cls(model, meta, input_kind=input_kind, device=device, stream_rate=stream_rate,
                   engine=engine)

    def _open_engine(self, engine) -> str:
        """Set up the backend named by ``engine``; returns the backend's name."""
        from hdys_rt.backends.base import IOSpec
        from hdys_rt.model.step import BiasTable, StreamingStep

        name = str(engine) if engine is not None else "torch"
        if name == "auto":
            if self.device.type == "cuda":
                name = "cudagraph"
            else:
                try:
                    import onnxruntime  # noqa: F401
                    name = "onnxruntime"
                except ImportError:
                    name = "torch"
        if name == "torch":
            return "torch"
        bias = BiasTable(self.model.decoder.rel_bias)
        if name in ENGINE_CHOICES:
            step = StreamingStep(self.model, self.input_kind)
            P = min(DEFAULT_ENGINE_POINTS, self.max_points)
            io = IOSpec.from_shapes(step.io_shapes(1, P))
            if name == "eager":
                from hdys_rt.backends.torch_backends import TorchBackend

                backend = TorchBackend(step, io, self.device)
            elif name == "cudagraph":
                from hdys_rt.backends.torch_backends import CudaGraphBackend

                backend = CudaGraphBackend(step, io, self.device)
            else:
                from hdys_rt.backends.engine import export_onnx
                from hdys_rt.backends.onnxruntime_backend import (OnnxRuntimeBackend,
                                                                  import_onnxruntime)

                import_onnxruntime()
                self._tmp = tempfile.TemporaryDirectory(prefix="hdys-onnx-")
                path = Path(self._tmp.name) / "step.onnx"
                export_onnx(step, path, 1, P)
                backend = OnnxRuntimeBackend(path, io, self.device)
        elif Path(name).is_dir():
            from hdys_rt.backends.engine import open_engine, read_engine

            info = read_engine(name)
            if info.get("input_kind", "markers") != self.input_kind:
                raise HdysError(f"engine {name} takes {info.get('input_kind')!r}, not "
                                f"{self.input_kind!r}")
            backend = open_engine(name, device=str(self.device),
                                  model_sha256=self.metadata.get("weights_sha256"))
            name = backend.name
        else:
            raise HdysError(f"engine must be one of {ENGINE_CHOICES} or an engine folder, "
                            f"got {name!r}")
        self._engine = EngineStepper(backend, bias, tuple(self.outputs))
        self.max_points = self._engine.max_points
        log.info("streaming estimator on the %s backend (%s)", name, backend)
        return name

    def close(self) -> None:
        """Release the engine's resources (the torch engine holds none)."""
        if self._engine is not None:
            self._engine.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __deepcopy__(self, memo):
        """An independent estimator for another stream (engines: a fresh backend instance)."""
        new = copy.copy(self)
        new.model = self.model  # weights are read-only here: share them
        new.decoder = self.decoder
        new._states = copy.deepcopy(self._states, memo)
        new._engine = copy.deepcopy(self._engine, memo)
        new._tmp = None  # the temporary ONNX file stays owned by the original
        return new

    @property
    def stride(self) -> int:
        return len(self._states)

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
        self._states = [self.decoder.new_state() for _ in range(stride)]
        if self._engine is not None:
            self._engine.set_stride(stride)
        self._frame = 0

    def reset(self) -> None:
        """Forget the stream's history (new stream, or after a gap)."""
        for s in self._states:
            s.reset()
        if self._engine is not None:
            self._engine.reset()
        self._frame = 0

    @torch.inference_mode()
    def step_tensor(self, pts: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """pts (1, P, 3) metres, mask (1, P) bool -> list of (C,) outputs (physical units), in
        the order of ``outputs``."""
        z, _ = self.model.kin_enc[self.input_kind](pts, mask)  # (1, D)
        state = self._states[self._frame % len(self._states)]
        self._frame += 1
        h = self.decoder.step(z, state)
        return [head(h)[0] * std + mean
                for head, (mean, std) in zip(self.model.heads.values(), self._stats)]

    def step(self, points: np.ndarray) -> dict[str, np.ndarray]:
        """One frame: points (P, 3) float32 metres Y up, NaN rows = missing -> name -> (C,)."""
        pts = np.asarray(points, dtype=np.float32)
        if pts.ndim != 2 or pts.shape[1] != 3:
            raise HdysError(f"points must be (P, 3), got shape {pts.shape}")
        if pts.shape[0] > self.max_points:
            raise HdysError(f"{pts.shape[0]} points exceed the model's bound of "
                            f"{self.max_points}")
        mask = np.isfinite(pts).all(1)
        if self._engine is not None:
            state = self._frame % len(self._states)
            self._frame += 1
            return self._engine.step(state, np.where(mask[:, None], pts, np.float32(0.0)),
                                     mask.astype(np.float32))
        t = torch.from_numpy(np.where(mask[:, None], pts, 0.0).astype(np.float32))
        outs = self.step_tensor(t.unsqueeze(0).to(self.device),
                                torch.from_numpy(mask).unsqueeze(0).to(self.device))
        return {k: o.float().cpu().numpy() for k, o in zip(self.outputs, outs)}
