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
    ->
    out       (B, C)         float32, every head in physical units, concatenated in the order
                             of the model's outputs (see :func:`output_slices`)
    k_new     (B, L, H, dh)  keys of the new frame (write to ring slot ``pos % W``)
    v_new     (B, L, H, dh)  values of the new frame

The new frame attends to itself with the age-0 bias, a constant of the step. Work shrunk
relative to the training graph: the point encoder's output projection is folded into the
decoder's input projection, the denormalisation into each head's last layer, and the heads run
as one batched MLP.
"""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from hdys_rt import representations as reps
from hdys_rt.errors import HdysError
from hdys_rt.model.hdys import HDyS, PointSetEncoder

INPUT_NAMES = ("points", "mask", "k_cache", "v_cache", "attn_bias")
OUTPUT_NAMES = ("out", "k_new", "v_new")


def _attend(q, k, v, bias):
    """Plain attention: q (N, H, Lq, dh), k/v (N, H, Lk, dh), bias broadcastable to
    (N, H, Lq, Lk) -> (N, H, Lq, dh)."""
    s = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(q.shape[-1])) + bias
    return torch.matmul(torch.softmax(s, -1), v)


class StreamingStep(nn.Module):
    """The export-friendly step of an :class:`HDyS` for one point input (markers/keypoints).

    Holds copies of the weights it needs (float32); the source model is left untouched.
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
        with torch.no_grad():
            f = {k: v.detach().float().clone() for k, v in model.state_dict().items()}
            pe, dec = f"kin_enc.{input_kind}.", "decoder."
            # point encoder (per point)
            self.embed = nn.Sequential(nn.Linear(3, cfg.point_dim), nn.GELU(),
                                       nn.Linear(cfg.point_dim, cfg.point_dim))
            self.embed.load_state_dict({k[len(pe) + 6:]: v for k, v in f.items()
                                        if k.startswith(pe + "embed.")})
            self.pblocks = nn.ModuleList(_copy_block(b) for b in enc.blocks)
            self.pln = _copy_ln(enc.ln)
            # pooled features -> decoder input: enc.out then decoder.inp, both linear: fold
            w_out, b_out = f[pe + "out.weight"], f[pe + "out.bias"]
            w_inp, b_inp = f[dec + "inp.weight"], f[dec + "inp.bias"]
            self.to_dec = nn.Linear(2 * cfg.point_dim, cfg.latent)
            self.to_dec.weight.copy_((w_inp.double() @ w_out.double()).float())
            self.to_dec.bias.copy_((w_inp.double() @ b_out.double() + b_inp.double()).float())
            self.dblocks = nn.ModuleList(_copy_block(b) for b in model.decoder.blocks)
            self.dln = _copy_ln(model.decoder.ln)
            # bias of the new frame to itself (age 0), per layer and head: (L, H)
            # horizontal axes (x, z): the centroid removed from every frame (a buffer, so no
            # host-to-device copy happens inside a captured CUDA graph)
            self.register_buffer("xz", torch.tensor([[[1.0, 0.0, 1.0]]]))
            self.register_buffer("bias_new", f[dec + "rel_bias"][:, :, 0].contiguous())
            # heads: one batched 3-layer MLP; denormalisation folded into the last layer
            hid = cfg.vec_hidden
            sizes = [reps.get(k).size for k in self.outputs]
            cmax = max(sizes)
            n = len(sizes)
            w1 = torch.cat([f[f"heads.{k}.0.weight"] for k in self.outputs], 0)  # (n*hid, D)
            b1 = torch.cat([f[f"heads.{k}.0.bias"] for k in self.outputs], 0)
            w2 = torch.stack([f[f"heads.{k}.2.weight"].t() for k in self.outputs])  # (n,hid,hid)
            b2 = torch.stack([f[f"heads.{k}.2.bias"] for k in self.outputs])[:, None]  # (n,1,hid)
            w3 = torch.zeros(n, hid, cmax)
            b3 = torch.zeros(n, 1, cmax)
            cols = []
            for i, (k, c) in enumerate(zip(self.outputs, sizes)):
                std, mean = f[f"std_{k}"], f[f"mean_{k}"]
                w3[i, :, :c] = f[f"heads.{k}.4.weight"].t() * std
                b3[i, 0, :c] = f[f"heads.{k}.4.bias"] * std + mean
                cols += range(i * cmax, i * cmax + c)
            self.head1 = nn.Linear(cfg.latent, n * hid)
            self.head1.weight.copy_(w1)
            self.head1.bias.copy_(b1)
            self.w2, self.b2 = nn.Parameter(w2), nn.Parameter(b2)
            self.w3, self.b3 = nn.Parameter(w3), nn.Parameter(b3)
            self.register_buffer("cols", torch.tensor(cols, dtype=torch.long))
        self.n_heads_out, self.hid, self.cmax = n, hid, cmax
        self.requires_grad_(False)
        self.eval()

    # --- shapes -------------------------------------------------------------------------------
    def io_shapes(self, batch: int = 1, max_points: int | None = None) -> dict[str, tuple]:
        """name -> shape of every input and output for ``batch`` streams."""
        c = self.cfg
        P = max_points or c.max_points
        L, H, W, dh = c.dec_layers, c.dec_heads, c.window, c.latent // c.dec_heads
        C = sum(reps.get(k).size for k in self.outputs)
        return {"points": (batch, P, 3), "mask": (batch, P), "k_cache": (batch, L, H, W, dh),
                "v_cache": (batch, L, H, W, dh), "attn_bias": (batch, L, H, W),
                "out": (batch, C), "k_new": (batch, L, H, dh), "v_new": (batch, L, H, dh)}

    def example_inputs(self, batch: int = 1, max_points: int | None = None,
                       device="cpu", dtype=torch.float32) -> tuple[torch.Tensor, ...]:
        """Zero ring, all markers valid, bias of the first step: valid inputs for tracing."""
        sh = self.io_shapes(batch, max_points)
        pts = torch.zeros(sh["points"], device=device, dtype=dtype)
        mask = torch.ones(sh["mask"], device=device, dtype=dtype)
        k = torch.zeros(sh["k_cache"], device=device, dtype=dtype)
        bias = torch.full(sh["attn_bias"], float("-inf"), device=device, dtype=dtype)
        return pts, mask, k, k.clone(), bias

    # --- the step -----------------------------------------------------------------------------
    def encode(self, points: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """points (B, P, 3), mask (B, P) float -> decoder input (B, D)."""
        valid = mask > 0.5  # (B, P)
        empty = ~valid.any(1, keepdim=True)  # (B, 1): no valid point -> attend to zeros
        keys = valid | empty
        key_bias = torch.where(keys, 0.0, float("-inf")).to(points.dtype)[:, None, None, :]
        m = valid.unsqueeze(-1).to(points.dtype)  # (B, P, 1)
        pts = torch.where(valid.unsqueeze(-1), points, torch.zeros_like(points))
        centroid = (pts * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp(min=1.0)
        x = self.embed((pts - centroid * self.xz) * m)  # (B, P, dp), as canonical_points
        for blk in self.pblocks:
            q, k, v = blk.qkv_heads(x)  # (B, H, P, dh)
            x = blk.finish(x, _attend(q, k, v, key_bias))
        x = self.pln(x)
        mean = (x * m).sum(1) / m.sum(1).clamp(min=1.0)  # (B, dp)
        mx = x.masked_fill(~valid.unsqueeze(-1), -1e4).amax(1)  # (B, dp)
        mx = torch.where(empty, torch.zeros_like(mx), mx)
        return self.to_dec(torch.cat([mean, mx], -1))  # (B, D)

    def forward(self, points, mask, k_cache, v_cache, attn_bias):
        B = points.shape[0]
        x = self.encode(points, mask).unsqueeze(1)  # (B, 1, D)
        ks, vs = [], []
        for i, blk in enumerate(self.dblocks):
            q, k, v = blk.qkv_heads(x)  # (B, H, 1, dh)
            scale = 1.0 / math.sqrt(q.shape[-1])
            s_ring = torch.matmul(q, k_cache[:, i].transpose(-1, -2)) * scale  # (B, H, 1, W)
            s_ring = s_ring + attn_bias[:, i].unsqueeze(2)
            s_new = (q * k).sum(-1, keepdim=True) * scale + self.bias_new[i][None, :, None, None]
            p = torch.softmax(torch.cat([s_ring, s_new], -1), -1)  # (B, H, 1, W+1)
            W = s_ring.shape[-1]
            a = torch.matmul(p[..., :W], v_cache[:, i]) + p[..., W:] * v  # (B, H, 1, dh)
            x = blk.finish(x, a)
            ks.append(k[:, :, 0])
            vs.append(v[:, :, 0])
        h = self.dln(x[:, 0])  # (B, D)
        y = F.gelu(self.head1(h)).view(B, self.n_heads_out, self.hid).transpose(0, 1)  # (n,B,hid)
        y = F.gelu(torch.matmul(y, self.w2) + self.b2)
        y = torch.matmul(y, self.w3) + self.b3  # (n, B, cmax)
        out = y.transpose(0, 1).reshape(B, self.n_heads_out * self.cmax)
        return out.index_select(1, self.cols), torch.stack(ks, 1), torch.stack(vs, 1)


def _copy_block(blk):
    import copy

    b = copy.deepcopy(blk).float()
    b.requires_grad_(False)
    return b


def _copy_ln(ln):
    import copy

    return copy.deepcopy(ln).float().requires_grad_(False)


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


__all__ = ["StreamingStep", "BiasTable", "output_slices", "INPUT_NAMES", "OUTPUT_NAMES"]
