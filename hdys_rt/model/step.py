"""The functional streaming step: one frame in, all heads out, as a pure function of tensors.

This is the form every inference engine compiles (ONNX, AOTInductor, TensorRT, CUDA graphs):
static shapes, no Python state, no in-place writes. The caller owns the decoder's key/value
ring and the per-step attention bias; the step returns the new frame's keys/values and the
caller writes them into the ring slot of the oldest frame, so an engine never grows.

Shapes (B streams, P = ``max_points`` of the engine, L decoder layers, H heads, W window,
dh = latent / H, C = the sum of the output channels)::

    points    (B, P, 3)      float32, metres Y up; rows of missing markers: any finite value
    mask      (B, P)         float32, 1 = valid marker, 0 = missing / padding
    k_cache   (B, L, H, W, dh) float32, cached keys of the previous frames (ring slots)
    v_cache   (B, L, H, W, dh) float32, cached values
    attn_bias (B, L, H, W)   float32, additive bias of every ring slot: the relative-position
                             bias of the slot's age, -inf for unfilled slots and for the slot
                             about to be overwritten (see :class:`BiasTable`)
    history   (B, K, P, 4)   float32, only for models that see motion (``cfg.motion``): the
                             K = HISTORY previous frames' points, row k = frame t-1-k, as
                             (x, y, z, valid), zeros before the stream; the caller shifts it
                             and writes the new frame in row 0 after the step (see
                             :func:`push_history`)
    ->
    out       (B, C)         float32, every head in physical units, concatenated in the order
                             of the model's outputs (see :func:`output_slices`)
    k_new     (B, L, H, dh)  keys of the new frame (write to ring slot ``pos % W``)
    v_new     (B, L, H, dh)  values of the new frame
    novelty   (B,)           the frame's novelty score (the model's
                             :class:`~hdys_rt.model.hdys.NoveltyScore` of its encoder latent;
                             NaN when the model is not calibrated, see
                             :mod:`hdys_rt.model.novelty`)

The new frame attends to itself with the age-0 bias, a constant of the step.

The step is built from the model's own submodules (it holds references to the point encoder,
the decoder and the heads and calls their methods; no weight is copied), so it always computes
what :class:`~hdys_rt.model.hdys.HDyS` computes. Two things differ from the offline forward, both
for the exporters: attention is plain matmul + softmax over an additive bias (:func:`_attend`),
and the decoder attends over the caller's key/value ring instead of the whole sequence.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn

from hdys_rt import representations as reps
from hdys_rt.errors import HdysError
from hdys_rt.model.hdys import HISTORY, HDyS, PointSetEncoder

INPUT_NAMES = ("points", "mask", "k_cache", "v_cache", "attn_bias", "history")
OUTPUT_NAMES = ("out", "k_new", "v_new", "novelty")


def _attend(q, k, v, attn_mask):
    """Plain attention: q (N, H, Lq, dh), k/v (N, H, Lk, dh), ``attn_mask`` broadcastable to
    (N, H, Lq, Lk), bool (True = allowed) or an additive float bias -> (N, H, Lq, dh)."""
    if attn_mask.dtype == torch.bool:
        attn_mask = torch.where(attn_mask, 0.0, float("-inf")).to(q.dtype)
    s = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1])) + attn_mask
    return torch.matmul(torch.softmax(s, -1), v)


class StreamingStep(nn.Module):
    """The export-friendly step of an :class:`HDyS` for one point input (markers/keypoints).

    Holds references to the model's point encoder for ``input_kind``, its decoder and its heads
    (and the outputs' normalisation buffers): the step shares the model's weights, device and
    dtype. Exporters copy it before moving it anywhere.
    """

    def __init__(self, model: HDyS, input_kind: str = "markers"):
        super().__init__()
        cfg = model.cfg
        if not cfg.causal:
            raise HdysError("streaming needs a causal decoder; this model is bidirectional")
        enc = model.kin_enc[input_kind] if input_kind in model.kin_enc else None
        if not isinstance(enc, PointSetEncoder):
            raise HdysError(f"input_kind {input_kind!r} is not a point input of this model")
        self.cfg = cfg
        self.input_kind = input_kind
        self.outputs = tuple(cfg.dyn_outputs)
        self.encoder = enc
        self.decoder = model.decoder
        self.heads = nn.ModuleList(model.heads[k] for k in self.outputs)
        self.denorm = nn.ModuleList(model.finish[k] for k in self.outputs)  # physical, bounded
        self.novelty = model.novelty[input_kind]
        self.input_names = INPUT_NAMES if cfg.motion else INPUT_NAMES[:-1]
        self.eval()

    # --- shapes -------------------------------------------------------------------------------
    def io_shapes(self, batch: int = 1, max_points: int | None = None) -> dict[str, tuple]:
        """name -> shape of every input and output for ``batch`` streams."""
        c = self.cfg
        P = max_points or c.max_points
        L, H, W, dh = c.dec_layers, c.dec_heads, c.window, c.latent // c.dec_heads
        C = sum(reps.get(k).size for k in self.outputs)
        sh = {"points": (batch, P, 3), "mask": (batch, P), "k_cache": (batch, L, H, W, dh),
              "v_cache": (batch, L, H, W, dh), "attn_bias": (batch, L, H, W),
              "out": (batch, C), "k_new": (batch, L, H, dh), "v_new": (batch, L, H, dh),
              "novelty": (batch,)}
        if self.cfg.motion:
            sh["history"] = (batch, HISTORY, P, 4)
        return sh

    def example_inputs(self, batch: int = 1, max_points: int | None = None,
                       device="cpu", dtype=torch.float32) -> tuple[torch.Tensor, ...]:
        """Zero ring, all markers valid, bias of the first step: valid inputs for tracing."""
        sh = self.io_shapes(batch, max_points)
        pts = torch.zeros(sh["points"], device=device, dtype=dtype)
        mask = torch.ones(sh["mask"], device=device, dtype=dtype)
        k = torch.zeros(sh["k_cache"], device=device, dtype=dtype)
        bias = torch.full(sh["attn_bias"], float("-inf"), device=device, dtype=dtype)
        if not self.cfg.motion:
            return pts, mask, k, k.clone(), bias
        return pts, mask, k, k.clone(), bias, torch.zeros(sh["history"], device=device,
                                                          dtype=dtype)

    # --- the step -----------------------------------------------------------------------------
    def encode(self, points: torch.Tensor, mask: torch.Tensor,
               history: torch.Tensor | None = None) -> torch.Tensor:
        """points (B, P, 3), mask (B, P) float, history (B, K, P, 4) or None -> the encoder
        latent (B, D)."""
        valid = mask > 0.5  # (B, P)
        x = self.encoder.features(points, valid, attend=_attend)  # (B, P, dp)
        return self.encoder.latent(x, points, valid, history)  # (B, D) latent

    def forward(self, points, mask, k_cache, v_cache, attn_bias, history=None):
        z = self.encode(points, mask, history)  # (B, D)
        novelty = self.novelty(z)  # (B,)
        x = self.decoder.inp(z).unsqueeze(1)  # (B, 1, D)
        ks, vs = [], []
        for i, blk in enumerate(self.decoder.blocks):
            q, k, v = blk.qkv_heads(x)  # (B, H, 1, dh)
            scale = 1.0 / math.sqrt(q.shape[-1])
            s_ring = torch.matmul(q, k_cache[:, i].transpose(-1, -2)) * scale  # (B, H, 1, W)
            s_ring = s_ring + attn_bias[:, i].unsqueeze(2)
            age0 = self.decoder.rel_bias[i, :, 0]  # (H,) bias of the new frame to itself
            s_new = (q * k).sum(-1, keepdim=True) * scale + age0[None, :, None, None]
            p = torch.softmax(torch.cat([s_ring, s_new], -1), -1)  # (B, H, 1, W+1)
            W = s_ring.shape[-1]
            a = torch.matmul(p[..., :W], v_cache[:, i]) + p[..., W:] * v  # (B, H, 1, dh)
            x = blk.finish(x, a)
            ks.append(k[:, :, 0])
            vs.append(v[:, :, 0])
        h = self.decoder.ln(x[:, 0])  # (B, D)
        out = [dn(head(h)) for head, dn in zip(self.heads, self.denorm)]  # (B, C_k) physical
        return torch.cat(out, -1), torch.stack(ks, 1), torch.stack(vs, 1), novelty


def push_history(history: torch.Tensor, points: torch.Tensor, mask: torch.Tensor) -> None:
    """After a step: shift ``history`` (K, P, 4) one frame older and write the frame just run
    (points (P, 3), mask (P,) float) in row 0, in place."""
    history[1:] = history[:-1].clone()
    history[0, :, :3] = points
    history[0, :, 3] = mask


def output_slices(outputs: tuple[str, ...]) -> dict[str, slice]:
    """name -> columns of ``out`` holding that head."""
    sl, c = {}, 0
    for k in outputs:
        n = reps.get(k).size
        sl[k] = slice(c, c + n)
        c += n
    return sl


class BiasTable:
    """Per-step attention bias of the ring slots, precomputed: ``table[index(pos)]`` is the
    (L, H, W) ``attn_bias`` for the step that pushes frame number ``pos`` (0-based).

    Before the step, ring slot ``j`` holds the frame of age ``(pos - j) mod W`` (1..W-1) when it
    was filled; slot ``pos % W`` holds the frame of age W, which leaves the window (-inf), and
    while ``pos < W`` the slots ``j >= pos`` are still empty (-inf).
    """

    def __init__(self, rel_bias: torch.Tensor):
        rel = rel_bias.detach().float().cpu()  # (L, H, W) causal bias per age
        L, H, W = rel.shape
        slots = torch.arange(W)
        tab = torch.empty(2 * W, L, H, W)
        for idx in range(2 * W):
            pos = idx if idx < W else W + (idx - W)  # any pos with that index
            r = pos % W
            age = (r - slots) % W  # (W,)
            b = rel[:, :, age].clone()  # (L, H, W)
            dead = (age == 0) | ((slots >= pos) if pos < W else torch.zeros(W, dtype=torch.bool))
            b[:, :, dead] = float("-inf")
            tab[idx] = b
        self.table = tab
        self.window = W

    def index(self, pos: int) -> int:
        return pos if pos < self.window else self.window + pos % self.window

    def __call__(self, pos: int) -> torch.Tensor:
        """(L, H, W) bias for the step pushing frame ``pos``."""
        return self.table[self.index(pos)]


__all__ = ["StreamingStep", "BiasTable", "push_history", "output_slices", "INPUT_NAMES", "OUTPUT_NAMES"]
