"""Training: presets, the loop, checkpoints and resume, and DDP under ``torchrun``.

Checkpoints are safetensors (weights, AdamW moments, torch RNG) + JSON (step, epoch, sampler
RNG, config): resuming never unpickles anything.
"""

from __future__ import annotations

import json
import logging
import math
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from hdys_rt.errors import HdysError
from hdys_rt.model.config import ModelConfig
from hdys_rt.model.hdys import HDyS, count_parameters
from hdys_rt.model.io import load_model, save_model
from hdys_rt.model.novelty import calibrate_model, metadata as novelty_metadata
from hdys_rt.training.data import CorpusData, WindowSampler
from hdys_rt.training.losses import compute_losses

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    window_batch: int = 64          # windows per batch (frames = window_batch * model.window)
    epochs: int = 60
    windows_per_domain: int = 128   # windows drawn from every domain per epoch (balanced)
    lr: float = 1e-3                # AdamW (paper)
    weight_decay: float = 0.01
    w_recon: float = 0.01           # paper: 0.01 * L1
    w_align: float = 0.05           # paper: 0.05 * InfoNCE
    use_align: bool = True
    use_fdae: bool = True
    rate: float = 100.0             # model rate, Hz (corpus is resampled to it)
    seed: int = 0
    threads: int = 2
    max_minutes: float = 0.0        # stop early after this wall time (0 = no limit)
    model: ModelConfig = field(default_factory=ModelConfig)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["model"] = self.model.to_dict()
        return d


PRESETS: dict[str, TrainConfig] = {
    # a useful model on 2 CPU cores in <= 20 minutes
    "small": TrainConfig(
        window_batch=48, epochs=100, windows_per_domain=96, max_minutes=19.0,
        model=ModelConfig(point_dim=48, point_layers=2, vec_hidden=192, dec_layers=2,
                          dec_ff=256, window=32, max_points=128)),
    # the paper's settings: batch 9600 frames (300 windows x 32), 1000 epochs,
    # 3000 sequences per data set per epoch, 3-layer point Transformer
    "paper": TrainConfig(window_batch=300, epochs=1000, windows_per_domain=3000,
                         model=ModelConfig()),
    # seconds, for tests
    "tiny": TrainConfig(
        window_batch=8, epochs=2, windows_per_domain=8, threads=1,
        model=ModelConfig(latent=32, point_dim=16, point_layers=1, point_heads=2,
                          vec_hidden=32, dec_layers=1, dec_heads=2, dec_ff=32, window=8)),
}


def preset(name: str, **overrides) -> TrainConfig:
    if name not in PRESETS:
        raise HdysError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    cfg = PRESETS[name]
    model_over = {k[6:]: v for k, v in overrides.items() if k.startswith("model_")}
    rest = {k: v for k, v in overrides.items() if not k.startswith("model_") and v is not None}
    if model_over:
        cfg = replace(cfg, model=replace(cfg.model, **model_over))
    return replace(cfg, **rest)


# --- distributed (torchrun) ---------------------------------------------------------------------

def _dist_init() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as dist

    backend = "nccl" if torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return dist.get_rank(), world


# --- checkpoints ------------------------------------------------------------------------------

def save_checkpoint(path: Path, model: HDyS, opt: torch.optim.Optimizer, state: dict):
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    names = {id(p): n for n, p in model.named_parameters()}
    for group in opt.param_groups:
        for p in group["params"]:
            st = opt.state.get(p)
            if not st:
                continue
            n = names[id(p)]
            tensors[f"opt.{n}.exp_avg"] = st["exp_avg"].detach().cpu().contiguous()
            tensors[f"opt.{n}.exp_avg_sq"] = st["exp_avg_sq"].detach().cpu().contiguous()
            tensors[f"opt.{n}.step"] = torch.as_tensor(st["step"], dtype=torch.float32).reshape(1)
    tensors["rng.torch"] = torch.get_rng_state()
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp))
    os.replace(tmp, path.with_suffix(".safetensors"))
    path.with_suffix(".json").write_text(json.dumps(state, indent=1))


def load_checkpoint(path: Path, model: HDyS, opt: torch.optim.Optimizer) -> dict:
    tensors = load_file(str(path.with_suffix(".safetensors")))
    state = json.loads(path.with_suffix(".json").read_text())
    missing, unexpected = model.load_state_dict(
        {k[6:]: v for k, v in tensors.items() if k.startswith("model.")}, strict=False)
    missing = [k for k in missing if not k.startswith("novelty.")]  # older checkpoints
    if missing or unexpected:
        raise HdysError(f"{path}: checkpoint does not fit the model (missing {missing[:3]}, "
                        f"unexpected {unexpected[:3]})")
    params = dict(model.named_parameters())
    for n, p in params.items():
        if f"opt.{n}.exp_avg" in tensors:
            opt.state[p] = {
                "exp_avg": tensors[f"opt.{n}.exp_avg"].to(p.device),
                "exp_avg_sq": tensors[f"opt.{n}.exp_avg_sq"].to(p.device),
                "step": torch.tensor(float(tensors[f"opt.{n}.step"][0])),
            }
    torch.set_rng_state(tensors["rng.torch"])
    return state


def _resumable(cfg: dict | None) -> dict | None:
    """The config fields that must match to resume (epochs and time limit may change)."""
    return None if cfg is None else {k: v for k, v in cfg.items()
                                     if k not in ("epochs", "max_minutes")}


class LossStep(torch.nn.Module):
    """The model with its loss as ``forward(batch)``, so DDP can wrap it."""

    def __init__(self, model: HDyS, cfg: TrainConfig):
        super().__init__()
        self.model, self.cfg = model, cfg

    def forward(self, batch: dict):
        c = self.cfg
        return compute_losses(self.model, batch, c.w_recon, c.w_align, c.use_align, c.use_fdae)


def _warm_start(init: str, add_motion: bool = False) -> tuple[HDyS, dict]:
    """The model ``init`` ('bundled' or a path) in training mode; returns (model, {"model",
    "weights_sha256"[, "added"]}) for the metadata.

    ``add_motion``: a model without motion features gets them (``cfg.motion``): its weights are
    copied into the larger architecture and each point encoder's motion branch ends in a zeroed
    layer, so the start computes exactly what ``init`` computed and training adds the motion."""
    model, meta = load_model(None if init == "bundled" else init)
    info = {"model": init, "weights_sha256": meta.get("weights_sha256")}
    if add_motion and not model.cfg.motion:
        grown = HDyS(replace(model.cfg, motion=True))
        missing, unexpected = grown.load_state_dict(model.state_dict(), strict=False)
        if unexpected or not all(".motion." in k for k in missing):  # only the new branch
            raise HdysError(f"--add-motion: {init} does not fit its own architecture grown by "
                            f"the motion branch (missing {missing[:3]}, unexpected "
                            f"{unexpected[:3]})")
        with torch.no_grad():
            for enc in grown.kin_enc.values():
                if getattr(enc, "motion", None) is not None:
                    enc.motion[-1].weight.zero_()
                    enc.motion[-1].bias.zero_()
        model, info["added"] = grown, "motion features (zero-initialised branch)"
    model.train()
    return model, info


# --- the loop -----------------------------------------------------------------------------------

def train(cfg: TrainConfig, data_dir: str | Path, out_dir: str | Path, resume: bool = False,
          domains: list[str] | None = None, progress: bool = True, device: str = "cpu",
          command: str | None = None, fraction: dict[str, float] | None = None,
          holdout_lab: str | list[str] | None = None,
          holdout_persons: list[str] | None = None, init: str | None = None,
          add_motion: bool = False) -> Path:
    """Train on the corpus' training split (persons, or every lab but ``holdout_lab`` and
    every person but ``holdout_persons``: see
    :func:`hdys_rt.training.data.assign_splits`); writes checkpoints and
    ``out/model.safetensors`` + ``model.json``. Returns the model stem path.

    ``init``: start from this saved model ('bundled': the bundled default): its architecture
    (``cfg.model`` is replaced by its config), weights AND normalisation, instead of a fresh
    model; ``cfg``'s training settings apply. ``add_motion``: see :func:`_warm_start`."""
    rank, world = _dist_init()
    init_model, init_meta = _warm_start(init, add_motion) if init else (None, None)
    if init_model is not None:
        cfg = replace(cfg, model=init_model.cfg)
    cfg = replace(cfg, model=replace(cfg.model, rate=cfg.rate))  # the motion features' rate
    torch.manual_seed(cfg.seed + rank)
    if device == "cpu":
        torch.set_num_threads(max(1, cfg.threads))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    # fraction: keep only part of chosen domains' frames (scale-vs-heterogeneity ablation)
    data = CorpusData(data_dir, rate=cfg.rate, split="train", domains=domains,
                      max_points=cfg.model.max_points, fraction=fraction,
                      fraction_seed=cfg.seed, holdout_lab=holdout_lab,
                      holdout_persons=holdout_persons)
    keys = tuple(k for k in cfg.model.kin_inputs + cfg.model.dyn_outputs if k in data.keys())
    if init_model is not None:
        if abs(init_model.cfg.rate - cfg.rate) > 1e-6:
            raise HdysError(f"--init {init}: the model runs at {init_model.cfg.rate} Hz, the "
                            f"preset at {cfg.rate} Hz")
        model = init_model.to(device)
    else:
        model = HDyS(cfg.model).to(device)
        model.set_normalisation(data.normalisation())
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, math.ceil(len(data.domains) * cfg.windows_per_domain
                                       / (cfg.window_batch * world)))
    total_steps = steps_per_epoch * cfg.epochs
    ckpt = out / "checkpoint"
    state = {"epoch": 0, "step": 0, "sampler": None, "history": []}
    sampler = WindowSampler(data, cfg.model.window, seed=cfg.seed, rank=rank)
    if resume:
        if not ckpt.with_suffix(".json").exists():
            raise HdysError(f"--resume: no checkpoint in {out} (checkpoint.json missing)")
        state = load_checkpoint(ckpt, model, opt)
        if _resumable(state.get("config")) != _resumable(cfg.to_dict()):
            raise HdysError(f"--resume: {out}'s checkpoint was made with another config; "
                            "use the same preset/options or a new --out")
        sampler.rng.bit_generator.state = state["sampler"]
        log.info("resumed at epoch %d step %d", state["epoch"], state["step"])
    step_module = LossStep(model, cfg)
    if world > 1:  # gradient averaging by PyTorch DDP (launch with torchrun)
        from torch.nn.parallel import DistributedDataParallel as DDP

        step_module = DDP(step_module, find_unused_parameters=True)
    def lr_at(step: int) -> float:  # linear warm-up (50 steps), then cosine decay
        return cfg.lr * min(1.0, (step + 1) / 50) * 0.5 * (
            1 + math.cos(math.pi * min(step, total_steps) / total_steps))

    t_start = time.monotonic()
    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=total_steps, initial=state["step"], desc="train", unit="step",
                   dynamic_ncols=True, file=sys.stderr)
    log.info("training: %d params, %d domains %s, %d train frames, %d steps",
             count_parameters(model), len(data.domains), data.domains, data.frames(), total_steps)
    stopped_early = False
    model.train()
    while state["epoch"] < cfg.epochs:
        sums = {}
        for _ in range(steps_per_epoch):
            batch = sampler.batch(cfg.window_batch, keys)
            loss, parts = step_module(batch)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            for g in opt.param_groups:
                g["lr"] = lr_at(state["step"])
            opt.step()
            state["step"] += 1
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + v
            if bar is not None:
                bar.update(1)
                bar.set_postfix({k: f"{v:.3f}" for k, v in parts.items()})
        state["epoch"] += 1
        state["history"].append({k: v / steps_per_epoch for k, v in sums.items()})
        state["sampler"] = sampler.rng.bit_generator.state
        state["config"] = cfg.to_dict()
        if rank == 0:
            save_checkpoint(ckpt, model, opt, state)
        if cfg.max_minutes and (time.monotonic() - t_start) / 60 > cfg.max_minutes:
            log.warning("stopping after %.1f min (max_minutes) at epoch %d/%d",
                        (time.monotonic() - t_start) / 60, state["epoch"], cfg.epochs)
            stopped_early = True
            break
    if bar is not None:
        bar.close()
    model.eval()
    stem = out / "model"
    if rank == 0:
        # the novelty score, on the frames it trained on (hdys-rt calibrate redoes it)
        novelty = calibrate_model(model, [s for items in data.seqs.values() for s in items])
        corpus_meta = {}
        cj = Path(data_dir) / "corpus.json"
        if cj.exists():
            corpus_meta = json.loads(cj.read_text())
        save_model(model, stem, rate=cfg.rate, extra={
            "training": {
                "command": command or " ".join(shlex.quote(a) for a in sys.argv),
                "config": cfg.to_dict(), "steps": state["step"], "epochs": state["epoch"],
                "stopped_early": stopped_early, "domains": data.domains, "world_size": world,
                "init": init_meta,
                "train_frames": data.frames(),
                "minutes": round((time.monotonic() - t_start) / 60, 2),
                "final_losses": state["history"][-1] if state["history"] else {},
            },
            "corpus": {"seed": corpus_meta.get("seed"), "quick": corpus_meta.get("quick"),
                       "domains": corpus_meta.get("domains")},
            **novelty_metadata(novelty),
            # trained on mirror images half the time (Augment): estimates are averaged with
            # their image's (hdys_rt.model.mirror)
            "mirror_average": True,
        })
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()
    return stem
