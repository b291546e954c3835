"""``hdys-rt train``: train HDyS on a corpus (presets small | paper | tiny)."""

from __future__ import annotations

import os
import shlex

from hdys_rt.devices import check_device
from hdys_rt.errors import HdysError

NAME = "train"
HELP = "train an HDyS model on a corpus (multi-GPU: launch with torchrun)"


def add_arguments(p):
    p.add_argument("--preset", default="small", choices=["small", "paper", "tiny"],
                   help="training settings: small = useful model on 2 CPU cores in <= 20 min; "
                        "paper = the paper's settings")
    p.add_argument("--data", required=True, help="corpus folder (hdys-rt data build --out)")
    p.add_argument("--out", required=True, help="output folder (checkpoint + model)")
    p.add_argument("--resume", action="store_true", help="continue from --out's checkpoint")
    p.add_argument("--seed", type=int, default=None, help="override the preset's seed")
    p.add_argument("--epochs", type=int, default=None, help="override the preset's epochs")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop after this wall time (0 = no limit)")
    p.add_argument("--latent", type=int, default=None, help="latent size (default 128)")
    p.add_argument("--lr", type=float, default=None, help="override the preset's peak learning "
                   "rate")
    p.add_argument("--init", default=None, metavar="MODEL",
                   help="fine-tune: start from this model (its architecture, weights and "
                   "normalisation; 'bundled' = the bundled default); the preset gives the "
                   "training settings")
    p.add_argument("--add-motion", action="store_true",
                   help="with --init: give a model saved without motion features (velocities "
                   "and accelerations of the body, config 'motion') those features; it starts "
                   "from the same outputs")
    p.add_argument("--domains", nargs="+", default=None, help="train on these domains only")
    p.add_argument("--holdout-lab", action="append", default=None, metavar="LAB",
                   help="leave-one-lab-out: train on every lab but LAB (meta.lab, else the "
                   "domain; repeat to hold out several); default: the person split (about one "
                   "person in five held out)")
    p.add_argument("--holdout-person", action="append", default=None, metavar="PERSON",
                   help="train on every person but PERSON (meta.person, else the subject id; "
                   "the folders of one person share it; repeat for several)")
    p.add_argument("--fraction", nargs="+", default=None, metavar="DOMAIN=F",
                   help="keep only fraction F (0..1] of a domain's training frames")
    p.add_argument("--no-align", action="store_true", help="ablation: no InfoNCE alignment")
    p.add_argument("--no-fdae", action="store_true", help="ablation: no forward-dynamics AE")
    p.add_argument("--bidirectional", action="store_true",
                   help="offline bidirectional decoder (cannot stream)")
    p.add_argument("--device", default="auto", help="cpu, cuda, or auto")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    from hdys_rt.training.loop import preset, train

    for name in ("epochs", "latent", "lr"):
        v = getattr(args, name)
        if v is not None and v <= 0:
            raise HdysError(f"--{name} must be > 0, got {v}")
    if args.init and (args.latent or args.bidirectional):
        raise HdysError("--init takes its model's architecture: drop --latent / --bidirectional")
    if args.add_motion and not args.init:
        raise HdysError("--add-motion grows the model of --init: give --init MODEL (or bundled)")
    device = check_device(args.device)
    over = {"seed": args.seed, "epochs": args.epochs, "max_minutes": args.max_minutes,
            "lr": args.lr}
    if args.no_align:
        over["use_align"] = False
    if args.no_fdae:
        over["use_fdae"] = False
    if args.latent:
        over["model_latent"] = args.latent
    if args.bidirectional:
        over["model_causal"] = False
    fraction = {}
    for item in args.fraction or []:
        dom, _, val = item.partition("=")
        try:
            f = float(val)
        except ValueError:
            f = -1.0
        if not dom or not (0.0 < f <= 1.0):
            raise HdysError(f"--fraction {item!r}: expected DOMAIN=F with 0 < F <= 1")
        fraction[dom] = f
    cfg = preset(args.preset, **over)
    stem = train(cfg, args.data, args.out, resume=args.resume, domains=args.domains,
                 progress=not args.no_progress, device=device, fraction=fraction or None,
                 holdout_lab=args.holdout_lab, holdout_persons=args.holdout_person,
                 init=args.init, add_motion=args.add_motion,
                 command="hdys-rt " + " ".join(shlex.quote(a) for a in args._argv))
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"model written to {stem}.safetensors (+ .json)")
    return 0
