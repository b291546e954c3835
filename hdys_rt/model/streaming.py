"""Incremental (streaming) inference: one frame in, one estimate out, in constant time.

Each step encodes only the new frame's points, pushes the decoder's keys/values for that frame
into a preallocated ring of ``window`` slots per layer, and attends over the ring with the
relative-position bias of each slot's age. Nothing is recomputed for earlier frames, and the
result equals the offline causal forward over the same frames (tested).

Streams faster than the model rate (e.g. 200 Hz into a 100 Hz model) are served with
``stride = round(stream_rate / model_rate)`` interleaved decoder states: frame ``n`` uses state
``n % stride``, so every frame gets an estimate whose temporal context is at the model's rate.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import torch
import torch.nn.functional as F

from hdys_rt.errors import HdysError
from hdys_rt.model.hdys import HDyS
from hdys_rt.model.io import load_model

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


class StreamingEstimator:
    """Per-frame estimates from a live point stream (markers or keypoints).

    Attributes: ``input_kind``, ``outputs`` (name -> channel names), ``units``, ``rate`` (model
    Hz), ``window`` (frames of context), ``max_points``, ``metadata`` (the model's JSON).
    """

    def __init__(self, model: HDyS, meta: dict, input_kind: str = "markers",
                 device: str = "cpu", stream_rate: float | None = None):
        if input_kind not in model.cfg.kin_inputs or input_kind not in ("markers", "keypoints"):
            raise HdysError(f"input_kind {input_kind!r} not served by this model "
                            f"(point inputs: {[k for k in model.cfg.kin_inputs if k in ('markers', 'keypoints')]})")
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
        self.set_stream_rate(stream_rate or self.rate)

    @classmethod
    def load(cls, path: str | os.PathLike | None = None, device: str = "cpu",
             input_kind: str = "markers", stream_rate: float | None = None
             ) -> "StreamingEstimator":
        """Load a saved model (None = the bundled default)."""
        model, meta = load_model(path, device=device)
        return cls(model, meta, input_kind=input_kind, device=device, stream_rate=stream_rate)

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
        self._frame = 0

    def reset(self) -> None:
        """Forget the stream's history (new stream, or after a gap)."""
        for s in self._states:
            s.reset()
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
        t = torch.from_numpy(np.where(mask[:, None], pts, 0.0).astype(np.float32))
        outs = self.step_tensor(t.unsqueeze(0).to(self.device),
                                torch.from_numpy(mask).unsqueeze(0).to(self.device))
        return {k: o.float().cpu().numpy() for k, o in zip(self.outputs, outs)}
