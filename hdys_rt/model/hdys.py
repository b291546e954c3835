"""The HDyS model: encoders into one latent space, a temporal decoder with one head per dynamic
output (the inverse-dynamics autoencoder), the forward-dynamics autoencoder and the alignment.

Shapes: B batch, T frames, P points, C channels, D latent size, H heads.

Streaming design: the temporal decoder is a Transformer whose attention is limited to a band of
``window`` frames and whose only positional information is a learned bias per head and per
relative frame offset. Because nothing depends on absolute positions, the keys/values computed
for a frame stay valid while the window slides, so the live runtime computes each new frame by
encoding that frame alone and attending over cached keys/values (see :mod:`.streaming`). The
offline forward over a whole sequence with the same band mask gives the same numbers.
"""

from __future__ import annotations


import torch
import torch.nn as nn
import torch.nn.functional as F

from hdys_rt import representations as reps
from hdys_rt.model.config import ModelConfig

# vector channels that carry absolute horizontal position (or heading): zeroed so the model is
# translation-invariant on the floor (the point-set encoder subtracts the horizontal centroid instead)
_DROP = {
    "joint_angles": ("pelvis_tx", "pelvis_tz", "pelvis_rotation"),  # + heading (yaw)
    "smpl_pose": ("transl_x", "transl_z"),
}


def mlp(d_in: int, d_hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.GELU(), nn.Linear(d_hidden, d_hidden),
                         nn.GELU(), nn.Linear(d_hidden, d_out))


class Block(nn.Module):
    """Pre-LayerNorm Transformer block; attention through ``scaled_dot_product_attention``."""

    def __init__(self, d: int, heads: int, ff: int):
        super().__init__()
        self.h, self.dh = heads, d // heads
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ff = nn.Sequential(nn.Linear(d, ff), nn.GELU(), nn.Linear(ff, d))

    def qkv_heads(self, x: torch.Tensor):
        N, L, d = x.shape
        qkv = self.qkv(self.ln1(x)).view(N, L, 3, self.h, self.dh)  # (N, L, 3, H, dh)
        q, k, v = qkv.permute(2, 0, 3, 1, 4)  # each (N, H, L, dh)
        return q, k, v

    def finish(self, x: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
        N, H, L, dh = a.shape
        x = x + self.proj(a.transpose(1, 2).reshape(N, L, H * dh))
        return x + self.ff(self.ln2(x))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None,
                attend=F.scaled_dot_product_attention) -> torch.Tensor:
        """x (N, L, d); attn_mask (bool: allowed, or additive float) broadcastable to
        (N, H, L, L); ``attend(q, k, v, attn_mask)`` -> (N, H, L, dh) (the export step passes
        a plain-matmul one)."""
        q, k, v = self.qkv_heads(x)
        return self.finish(x, attend(q, k, v, attn_mask))


def canonical_points(pts: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Subtract the horizontal (x, z) centroid of the valid points of each frame; keep height.

    pts: (N, P, 3) metres Y up (NaN allowed where ``mask`` is False); mask: (N, P) bool.
    Returns (N, P, 3) with invalid points zeroed.
    """
    m = mask.unsqueeze(-1).to(pts.dtype)  # (N, P, 1)
    pts = torch.where(mask.unsqueeze(-1), pts, torch.zeros_like(pts))
    centroid = (pts * m).sum(1, keepdim=True) / m.sum(1, keepdim=True).clamp(min=1.0)  # (N,1,3)
    # keep the height: zero the centroid's y by slicing (no constant tensor: a host-to-device
    # copy is not allowed inside a captured CUDA graph)
    centroid = torch.cat([centroid[..., :1], torch.zeros_like(centroid[..., 1:2]),
                          centroid[..., 2:]], -1)
    return (pts - centroid) * m


#: previous frames the motion features read (frames t-1 .. t-HISTORY); differences at lag 2
HISTORY = 4
MOTION_FEATURES = 8
G = reps.G  # m/s^2


def history_of(pts: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The motion history of every frame of a sequence, as the live step receives it.

    pts (B, T, P, 3) metres, mask (B, T, P) bool -> (B, T, HISTORY, P, 4): for frame t, row k
    holds frame t-1-k as (x, y, z, valid); frames before the sequence are invalid (zeros)."""
    B, T, P, _ = pts.shape
    cur = torch.cat([torch.where(mask.unsqueeze(-1), pts, torch.zeros_like(pts)),
                     mask.unsqueeze(-1).to(pts.dtype)], -1)  # (B, T, P, 4)
    pad = torch.cat([torch.zeros_like(cur[:, :1]).expand(B, HISTORY, P, 4), cur], 1)
    rows = [pad[:, HISTORY - 1 - k:HISTORY - 1 - k + T] for k in range(HISTORY)]
    return torch.stack(rows, 2)  # (B, T, K, P, 4)


def motion_features(pts: torch.Tensor, mask: torch.Tensor, history: torch.Tensor,
                    rate: float) -> torch.Tensor:
    """Whole-body motion of one frame from it and its previous frames, heading- and
    size-normalised; causal (the same numbers offline and live).

    pts (N, P, 3) metres Y up, mask (N, P) bool, history (N, HISTORY, P, 4) (see
    :func:`history_of`), ``rate`` Hz -> (N, MOTION_FEATURES):

    ``[speed, v_y, a_fwd, a_lat, |a_h|, a_y, has_v, has_a]``: the mean velocity and
    acceleration of the points valid in all frames used (a marker-set-independent stand-in for
    the centroid's, robust to dropout), by differences at lag 2 (frames t, t-2, t-4): velocities
    in units of sqrt(g L) (L = the frame's height extent of valid points, >= 0.5 m: Froude
    scaling), accelerations in g (so ``a_y`` is vertical GRF / body weight - 1 for the CoM),
    horizontal acceleration split along and across the horizontal velocity (soft heading: the
    direction fades out below 0.5 m/s), so that the features do not depend on heading; the
    across component keeps its sign (left/right). Missing differences give zeros and flags 0.
    """
    m0 = mask.unsqueeze(-1).to(pts.dtype)  # (N, P, 1)
    p0 = torch.where(mask.unsqueeze(-1), pts, torch.zeros_like(pts))
    p2, v2 = history[:, 1, :, :3], history[:, 1, :, 3:]  # frame t-2
    p4, v4 = history[:, 3, :, :3], history[:, 3, :, 3:]  # frame t-4
    m1 = m0 * v2  # valid at t and t-2
    m2 = m1 * v4
    n1, n2 = m1.sum(1), m2.sum(1)  # (N, 1)
    h = 2.0 / rate  # seconds between frames t and t-2
    v = ((p0 - p2) * m1).sum(1) / n1.clamp(min=1.0) / h  # (N, 3) m/s
    a = ((p0 - 2 * p2 + p4) * m2).sum(1) / n2.clamp(min=1.0) / (h * h)  # (N, 3) m/s^2
    y = p0[..., 1]
    big = torch.full_like(y, 1e4)
    top = torch.where(mask, y, -big).amax(1, keepdim=True)
    bottom = torch.where(mask, y, big).amin(1, keepdim=True)
    L = (top - bottom).clamp(min=0.5)  # (N, 1) metres
    vs = torch.sqrt(G * L)
    speed = torch.sqrt(v[:, :1] ** 2 + v[:, 2:] ** 2 + 1e-8)  # (N, 1)
    ux, uz = v[:, :1] / speed.clamp(min=0.5), v[:, 2:] / speed.clamp(min=0.5)
    ax, ay, az = a[:, :1], a[:, 1:2], a[:, 2:]
    has_v, has_a = (n1 > 0).to(pts.dtype), (n2 > 0).to(pts.dtype)
    feats = torch.cat([speed / vs, v[:, 1:2] / vs, (ax * ux + az * uz) / G,
                       (ux * az - uz * ax) / G, torch.sqrt(ax * ax + az * az + 1e-8) / G,
                       ay / G], -1)  # (N, 6)
    feats = feats.clamp(-10.0, 10.0) * torch.cat([has_v, has_v, has_a, has_a, has_a, has_a], -1)
    return torch.cat([feats, has_v, has_a], -1)


class PointSetEncoder(nn.Module):
    """Transformer over the points of ONE frame, no positional encoding: any number and order
    of points; masked mean+max pooling to the latent."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        dp = cfg.point_dim
        self.embed = nn.Sequential(nn.Linear(3, dp), nn.GELU(), nn.Linear(dp, dp))
        self.blocks = nn.ModuleList(
            Block(dp, cfg.point_heads, 2 * dp) for _ in range(cfg.point_layers))
        self.ln = nn.LayerNorm(dp)
        self.out = nn.Linear(2 * dp, cfg.latent)
        self.rate = float(cfg.rate)
        # whole-body motion (see motion_features), added to the pooled latent
        self.motion = nn.Sequential(nn.Linear(MOTION_FEATURES, dp), nn.GELU(),
                                    nn.Linear(dp, cfg.latent)) if cfg.motion else None

    def features(self, pts: torch.Tensor, mask: torch.Tensor,
                 attend=F.scaled_dot_product_attention) -> torch.Tensor:
        """pts (N, P, 3) metres, mask (N, P) bool -> point features (N, P, dp); ``attend``: see
        :meth:`Block.forward`."""
        empty = ~mask.any(1, keepdim=True)  # (N, 1): frames with no valid point
        safe = mask | empty  # attend to zeros rather than to nothing (avoids NaN)
        x = self.embed(canonical_points(pts, mask))  # (N, P, dp)
        attn = safe[:, None, None, :]  # (N, 1, 1, P) keys allowed
        for blk in self.blocks:
            x = blk(x, attn, attend)
        return self.ln(x)

    @staticmethod
    def pool(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Masked mean and max over the points: x (N, P, dp), mask (N, P) bool -> (N, 2 dp);
        a frame with no valid point pools to zeros."""
        empty = ~mask.any(1, keepdim=True)  # (N, 1)
        m = mask.unsqueeze(-1).to(x.dtype)
        mean = (x * m).sum(1) / m.sum(1).clamp(min=1.0)  # (N, dp)
        mx = x.masked_fill(~mask.unsqueeze(-1), -1e4).amax(1)
        mx = torch.where(empty, torch.zeros_like(mx), mx)
        return torch.cat([mean, mx], -1)

    def latent(self, x: torch.Tensor, pts: torch.Tensor, mask: torch.Tensor,
               history: torch.Tensor | None) -> torch.Tensor:
        """Point features x (N, P, dp) (+ the motion features of pts (N, P, 3), mask (N, P),
        history (N, HISTORY, P, 4) when the model has them) -> latent (N, D)."""
        z = self.out(self.pool(x, mask))
        if self.motion is not None:
            z = z + self.motion(motion_features(pts, mask, history, self.rate))
        return z

    def forward(self, pts: torch.Tensor, mask: torch.Tensor,
                history: torch.Tensor | None = None):
        """pts (N, P, 3) metres, mask (N, P) bool, history (N, HISTORY, P, 4) (needed when the
        model sees motion) -> latent (N, D), point features (N, P, dp)."""
        x = self.features(pts, mask)
        return self.latent(x, pts, mask, history), x


class VectorEncoder(nn.Module):
    """MLP encoder of a normalised vector representation with a per-channel validity mask."""

    def __init__(self, channels: int, cfg: ModelConfig):
        super().__init__()
        self.net = mlp(2 * channels, cfg.vec_hidden, cfg.latent)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """x (..., C) normalised (any value where masked), mask (..., C) bool -> (..., D)."""
        m = mask.to(x.dtype)
        return self.net(torch.cat([torch.where(mask, x, torch.zeros_like(x)), m], -1))


class TemporalDecoder(nn.Module):
    """Transformer over per-frame latents, attention limited to ``window`` frames, relative
    position bias only; causal (streaming) or bidirectional (offline)."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        d = cfg.latent
        self.inp = nn.Linear(d, d)
        self.blocks = nn.ModuleList(Block(d, cfg.dec_heads, cfg.dec_ff)
                                    for _ in range(cfg.dec_layers))
        self.ln = nn.LayerNorm(d)
        span = cfg.window if cfg.causal else 2 * cfg.window - 1
        # rel_bias[l, h, o]: causal o = t - s in 0..W-1; bidirectional o = t - s + W - 1
        self.rel_bias = nn.Parameter(torch.zeros(cfg.dec_layers, cfg.dec_heads, span))

    def band_bias(self, T: int, layer: int, device, dtype) -> torch.Tensor:
        """Additive attention bias (H, T, T): relative bias inside the band, -inf outside."""
        W = self.cfg.window
        t = torch.arange(T, device=device)
        off = t[:, None] - t[None, :]  # (T, T) query minus key
        if self.cfg.causal:
            allowed = (off >= 0) & (off < W)
            idx = off.clamp(0, W - 1)
        else:
            allowed = off.abs() < W
            idx = (off + W - 1).clamp(0, 2 * W - 2)
        bias = self.rel_bias[layer][:, idx].to(dtype)  # (H, T, T)
        return bias.masked_fill(~allowed, float("-inf"))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (B, T, D) per-frame latents -> (B, T, D) features for the heads."""
        B, T, D = z.shape
        x = self.inp(z)
        for i, blk in enumerate(self.blocks):
            x = blk(x, self.band_bias(T, i, z.device, x.dtype).unsqueeze(0))
        return self.ln(x)


class NoveltyScore(nn.Module):
    """How far a frame's encoder latent is from the latents of the training frames: the squared
    Mahalanobis distance per latent dimension, ``|W (z - mu)|^2 / D`` (about 1 for a typical
    training frame; :mod:`hdys_rt.model.novelty` fits ``mu`` (D,) and the whitening ``w``
    (D, D)). Buffers of NaN = not calibrated: the score is NaN."""

    def __init__(self, latent: int):
        super().__init__()
        self.register_buffer("mu", torch.full((latent,), float("nan")))
        self.register_buffer("w", torch.full((latent, latent), float("nan")))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """z (..., D) latents -> (...) scores."""
        y = torch.matmul(z - self.mu, self.w.t())  # (..., D) whitened
        return (y * y).mean(-1)


#: outputs documented as 0..1 (every channel)
UNIT_INTERVAL = ("activations", "semg")


class OutputTransform(nn.Module):
    """A head's NORMALISED output (..., C) -> physical units (..., C), bounded by construction:
    channels of :data:`UNIT_INTERVAL` outputs in 0..1, vertical GRF (``*_fy``, BW) >= 0.

    ``smooth`` (models trained so): ``sigmoid(h + logit(mean))`` (the training mean at h = 0)
    and ``softplus(x, beta=50)`` of the denormalised value (0.014 BW at x = 0); otherwise (models
    trained without bounds) a hard clamp of the denormalised value. ``mean``/``std`` are the
    model's own normalisation tensors (shared, not copied: non-persistent here)."""

    def __init__(self, key: str, mean: torch.Tensor, std: torch.Tensor, smooth: bool):
        super().__init__()
        rep = reps.get(key)
        unit = torch.full((rep.size,), key in UNIT_INTERVAL)
        pos = torch.tensor([key == "grf" and c.endswith("_fy") for c in rep.channels])
        self.smooth = smooth
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)
        self.register_buffer("unit", unit, persistent=False)
        self.register_buffer("pos", pos, persistent=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        x = h * self.std + self.mean
        if self.smooth:
            m = self.mean.clamp(0.02, 0.98)
            bounded = torch.sigmoid(h + torch.log(m / (1 - m)))
            x = torch.where(self.unit, bounded, torch.where(self.pos, F.softplus(x, beta=50.0), x))
        else:
            x = torch.where(self.unit, x.clamp(0.0, 1.0), torch.where(self.pos, x.clamp(min=0.0), x))
        return x


class HDyS(nn.Module):
    """All encoders, the shared decoder and heads, and the FDAE, with normalisation buffers."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.kin_enc = nn.ModuleDict()
        for k in cfg.kin_inputs:
            rep = reps.get(k)
            self.kin_enc[k] = PointSetEncoder(cfg) if rep.point_set else VectorEncoder(rep.size, cfg)
        self.decoder = TemporalDecoder(cfg)
        self.heads = nn.ModuleDict(
            {k: mlp(cfg.latent, cfg.vec_hidden, reps.get(k).size) for k in cfg.dyn_outputs})
        self.dyn_enc = nn.ModuleDict(
            {k: VectorEncoder(reps.get(k).size, cfg) for k in cfg.dyn_outputs})
        if cfg.fdae:
            self.composer = mlp(2 * cfg.latent, cfg.vec_hidden, cfg.latent)
            self.acc_heads = nn.ModuleDict()
            for k in cfg.kin_inputs:
                rep = reps.get(k)
                if rep.point_set:  # per-point acceleration from composer + point features
                    self.acc_heads[k] = mlp(cfg.latent + cfg.point_dim, 2 * cfg.point_dim, 3)
                else:
                    self.acc_heads[k] = mlp(cfg.latent, cfg.vec_hidden, rep.size)
        # normalisation (channel mean/std of vector representations), saved with the weights
        for k in list(cfg.kin_inputs) + list(cfg.dyn_outputs):
            rep = reps.get(k)
            if not rep.point_set:
                self.register_buffer(f"mean_{k}", torch.zeros(rep.size))
                self.register_buffer(f"std_{k}", torch.ones(rep.size))
                keep = torch.tensor([c not in _DROP.get(k, ()) for c in rep.channels])
                self.register_buffer(f"keep_{k}", keep, persistent=False)
        self.finish = nn.ModuleDict({k: OutputTransform(k, *self.stats(k), cfg.bounded_heads)
                                     for k in cfg.dyn_outputs})
        # per kinematic input: the novelty of a frame's latent (NaN until calibrated)
        self.novelty = nn.ModuleDict({k: NoveltyScore(cfg.latent) for k in cfg.kin_inputs})

    def _link_finish(self) -> None:
        """Point every output transform at the model's own mean/std tensors again (moves and
        loads may replace them)."""
        for k, f in self.finish.items():
            f.mean, f.std = self.stats(k)

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        self._link_finish()
        return out

    def load_state_dict(self, *args, **kwargs):
        res = super().load_state_dict(*args, **kwargs)
        self._link_finish()
        return res

    # --- normalisation --------------------------------------------------------------------
    def set_normalisation(self, stats: dict[str, tuple]):
        """stats: key -> (mean (C,), std (C,)) in physical units."""
        for k, (mean, std) in stats.items():
            if hasattr(self, f"mean_{k}"):
                getattr(self, f"mean_{k}").copy_(torch.as_tensor(mean, dtype=torch.float32))
                getattr(self, f"std_{k}").copy_(
                    torch.as_tensor(std, dtype=torch.float32).clamp(min=1e-3))
        self._link_finish()

    def stats(self, key: str) -> tuple[torch.Tensor, torch.Tensor]:
        """The normalisation buffers (mean (C,), std (C,)) of vector representation ``key``,
        physical units (the tensors themselves, not copies)."""
        return getattr(self, f"mean_{key}"), getattr(self, f"std_{key}")

    def normalise(self, key: str, x: torch.Tensor) -> torch.Tensor:
        mean, std = self.stats(key)
        return (x - mean) / std

    def denormalise(self, key: str, x: torch.Tensor) -> torch.Tensor:
        mean, std = self.stats(key)
        return x * std + mean

    def to_physical(self, key: str, h: torch.Tensor) -> torch.Tensor:
        """Head ``key``'s normalised output -> physical units, bounded (:class:`OutputTransform`)."""
        return self.finish[key](h)

    # --- encoders ---------------------------------------------------------------------------
    def encode_kin(self, key: str, x: torch.Tensor, mask: torch.Tensor):
        """Kinematic input in physical units -> (latent (..., D), point features or None).

        Point sets: x (B, T, P, 3) metres, mask (B, T, P). Vectors: x (B, T, C), mask (B, T, C).
        """
        enc = self.kin_enc[key]
        if reps.get(key).point_set:
            B, T, P, _ = x.shape
            hist = history_of(x, mask).reshape(B * T, HISTORY, P, 4) if self.cfg.motion else None
            z, feats = enc(x.reshape(B * T, P, 3), mask.reshape(B * T, P), hist)
            return z.view(B, T, -1), feats.view(B, T, P, -1)
        mask = mask & getattr(self, f"keep_{key}")
        return enc(self.normalise(key, x), mask), None

    def encode_dyn(self, key: str, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Dynamic values in physical units (B, T, C) with mask -> latent (B, T, D)."""
        return self.dyn_enc[key](self.normalise(key, y), mask)

    def decode(self, z: torch.Tensor) -> dict[str, torch.Tensor]:
        """Latents (B, T, D) -> every head's NORMALISED prediction (B, T, C)."""
        h = self.decoder(z)
        return {k: head(h) for k, head in self.heads.items()}

    @torch.no_grad()
    def predict(self, key: str, x: torch.Tensor, mask: torch.Tensor) -> dict[str, torch.Tensor]:
        """Offline inference: kinematics (B, T, ...) -> outputs in physical units (B, T, C)."""
        z, _ = self.encode_kin(key, x, mask)
        return {k: self.to_physical(k, y) for k, y in self.decode(z).items()}

    def fdae(self, z_kin: torch.Tensor, z_dyn: torch.Tensor, key: str,
             feats: torch.Tensor | None) -> torch.Tensor:
        """State latent + force latent -> predicted acceleration of kinematic input ``key``.

        Point sets return (B, T, P, 3) m/s^2; vectors (B, T, C) in normalised units / s^2.
        """
        c = self.composer(torch.cat([z_kin, z_dyn], -1))  # (B, T, D)
        head = self.acc_heads[key]
        if feats is not None:
            P = feats.shape[2]
            return head(torch.cat([c.unsqueeze(2).expand(-1, -1, P, -1), feats], -1))
        return head(c)


def info_nce(za: torch.Tensor, zb: torch.Tensor, tau: float = 0.1) -> torch.Tensor:
    """Symmetric InfoNCE between two sets of latents of the SAME frames (N, D) each: row i of
    ``za`` and ``zb`` are positives, every other row a negative."""
    za, zb = F.normalize(za, dim=-1), F.normalize(zb, dim=-1)
    logits = za @ zb.t() / tau  # (N, N)
    target = torch.arange(za.shape[0], device=za.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


__all__ = ["HDyS", "OutputTransform", "NoveltyScore", "history_of", "motion_features", "HISTORY", "ModelConfig", "info_nce", "canonical_points", "count_parameters"]
