"""HDyS training losses on one batch: inverse-dynamics reconstruction (L1), forward-dynamics
acceleration (L1), and InfoNCE alignment of every latent of the same frame.

Total = w_recon * (L_id + L_fd + L_phys) + w_align * L_align  (paper: 0.01 and 0.05); L_phys
(not in the paper): predicted total vertical GRF against 1 + a_y/g of the marker centroid.

L1 terms are over NORMALISED channels (per-channel mean/std of the training corpus), masked to
the values a domain actually has. Acceleration targets are second differences at the model rate
times 100 (metres for point sets, normalised units for vectors): order-one numbers.
"""

from __future__ import annotations

import torch

from hdys_rt import representations as reps
from hdys_rt.model.hdys import HDyS, info_nce

ALIGN_FRAMES = 256  # frames drawn per encoder pair for InfoNCE


def masked_l1(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
    m = mask.to(pred.dtype)
    n = m.sum()
    if n < 1:
        return None
    return ((pred - target).abs() * m).sum() / n


def second_diff(x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """100 x (x[t+1] - 2 x[t] + x[t-1]) along dim 1, zero at the ends, with its mask."""
    acc = torch.zeros_like(x)
    acc[:, 1:-1] = 100.0 * (x[:, 2:] - 2 * x[:, 1:-1] + x[:, :-2])
    m = torch.zeros_like(mask)
    m[:, 1:-1] = mask[:, 2:] & mask[:, 1:-1] & mask[:, :-2]
    return acc, m


PHYS_SCALE = 0.3  # body weights: the physical-consistency error counts as (error / 0.3) L1


def vertical_load(model: HDyS, grf_norm: torch.Tensor) -> torch.Tensor:
    """Total vertical GRF (both feet, body weights) of a GRF head's normalised output
    (..., 10) -> (..., 1)."""
    ch = reps.get("grf").channels
    fy = [ch.index("r_fy"), ch.index("l_fy")]
    return model.to_physical("grf", grf_norm)[..., fy].sum(-1, keepdim=True)


def compute_losses(model: HDyS, batch: dict, w_recon: float = 0.01, w_align: float = 0.05,
                   use_align: bool = True, use_fdae: bool = True, generator=None,
                   w_phys: float = 0.5) -> tuple[torch.Tensor, dict[str, float]]:
    """``w_phys``: weight (relative to one inverse-dynamics term) of the physical consistency
    of the predicted total vertical GRF with the motion's ``com_load`` (1 + a_y/g of the
    marker centroid), on every window with points, GRF target or not."""
    cfg = model.cfg
    dev = next(model.parameters()).device
    kin = {k: tuple(t.to(dev) for t in batch[k]) for k in cfg.kin_inputs if k in batch}
    dyn = {k: tuple(t.to(dev) for t in batch[k]) for k in cfg.dyn_outputs if k in batch}
    terms_id, terms_fd, terms_al, terms_ph = [], [], [], []
    frame_latents = []  # (name, z (B, W, D), frame mask (B, W))

    # dynamics: normalised targets, latents for alignment / FDAE
    dyn_norm, dyn_lat = {}, {}
    for d, (y, m, present) in dyn.items():
        yn = model.normalise(d, y)
        dyn_norm[d] = (yn, m)
        fm = m.any(-1) & present[:, None]
        if fm.any():
            z = model.dyn_enc[d](yn, m)
            dyn_lat[d] = (z, fm)
            frame_latents.append((d, z, fm))

    for k, (x, m, present) in kin.items():
        point = reps.get(k).point_set
        idx = present.nonzero().flatten()
        if idx.numel() == 0:
            continue
        xs, ms = x[idx], m[idx]
        z, feats = model.encode_kin(k, xs, ms)  # (b, W, D)
        fm = (ms.any(-1))  # frames with at least one valid point / channel
        full = torch.zeros(x.shape[0], x.shape[1], z.shape[-1], device=dev, dtype=z.dtype)
        full[idx] = z
        fmask = torch.zeros(x.shape[:2], dtype=torch.bool, device=dev)
        fmask[idx] = fm
        frame_latents.append((k, full, fmask))
        # inverse dynamics: decode every available output
        preds = model.decode(z)
        for d, (yn, ym) in dyn_norm.items():
            # through the output bounds, compared in normalised units
            pred = model.normalise(d, model.to_physical(d, preds[d]))
            l1 = masked_l1(pred, yn[idx], ym[idx] & fm.unsqueeze(-1))
            if l1 is not None:
                terms_id.append(l1)
        if point and w_phys > 0 and "grf" in preds and "com_load" in batch:
            load, lm, _ = (t.to(dev) for t in batch["com_load"])
            l1 = masked_l1(vertical_load(model, preds["grf"]) / PHYS_SCALE,
                           load[idx] / PHYS_SCALE, lm[idx] & fm.unsqueeze(-1))
            if l1 is not None:
                terms_ph.append(w_phys * l1)
        # forward dynamics: (state latent, force latent) -> acceleration of this input
        if use_fdae and cfg.fdae:
            xin = xs if point else torch.where(ms, model.normalise(k, xs), torch.zeros_like(xs))
            acc, am = second_diff(xin, ms)
            if dyn_lat:  # the force latent: mean of the frame's available dynamics latents
                zsum = sum(zd[idx] * dfm[idx].unsqueeze(-1) for zd, dfm in dyn_lat.values())
                cnt = sum(dfm[idx].unsqueeze(-1).float() for _, dfm in dyn_lat.values())
                both = (cnt[..., 0] > 0) & fm
                if both.any():
                    pred = model.fdae(z, zsum / cnt.clamp(min=1.0), k, feats)
                    amask = am & both.unsqueeze(-1)
                    if point:
                        amask = amask.unsqueeze(-1).expand_as(acc)
                    l1 = masked_l1(pred, acc, amask)
                    if l1 is not None:
                        terms_fd.append(l1)

    # alignment: every pair of encoders over frames they share
    if use_align:
        for i in range(len(frame_latents)):
            for j in range(i + 1, len(frame_latents)):
                _, za, ma = frame_latents[i]
                _, zb, mb = frame_latents[j]
                both = (ma & mb).flatten().nonzero().flatten()
                if both.numel() < 4:
                    continue
                if both.numel() > ALIGN_FRAMES:
                    pick = torch.randperm(both.numel(), generator=generator)[:ALIGN_FRAMES]
                    both = both[pick.to(both.device)]
                D = za.shape[-1]
                terms_al.append(info_nce(za.reshape(-1, D)[both], zb.reshape(-1, D)[both]))

    zero = torch.zeros((), device=dev)
    l_id = torch.stack(terms_id).mean() if terms_id else zero
    l_fd = torch.stack(terms_fd).mean() if terms_fd else zero
    l_al = torch.stack(terms_al).mean() if terms_al else zero
    l_ph = torch.stack(terms_ph).mean() if terms_ph else zero
    total = w_recon * (l_id + l_fd + l_ph) + w_align * l_al
    parts = {"loss": total, "id": l_id, "fd": l_fd, "align": l_al, "phys": l_ph}
    return total, {k: float(v.detach()) for k, v in parts.items()}
