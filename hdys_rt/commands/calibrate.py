"""``hdys-rt calibrate``: fit a model's per-frame novelty score (latent mean, whitening and
threshold per input) on the training side of a corpus and write it into the model's files
(:mod:`hdys_rt.model.novelty`, :mod:`hdys_rt.training.novelty`)."""

from __future__ import annotations

NAME = "calibrate"
HELP = ("calibrate a model's novelty score (how far a frame's motion is from the training "
        "data; wire flag 'novel') on a corpus' training split; rewrites the model's files")


def add_arguments(p) -> None:
    p.add_argument("--model", required=True, metavar="PATH",
                   help="model (NAME.safetensors + NAME.json), rewritten in place")
    p.add_argument("--data", required=True, help="corpus folder (hdys-rt data build --out)")
    p.add_argument("--tasks", nargs="+", default=None, metavar="TASK",
                   help="only frames of these tasks (walk, run, jump, squat, sit_to_stand); "
                   "default: every training frame")
    p.add_argument("--domains", nargs="+", default=None, help="only these domains")
    p.add_argument("--holdout-lab", action="append", default=None, metavar="LAB",
                   help="the training side of leave-one-lab-out (as hdys-rt train "
                   "--holdout-lab); default: the person split")
    p.add_argument("--holdout-person", action="append", default=None, metavar="PERSON",
                   help="the training side when these persons are held out (as hdys-rt train "
                   "--holdout-person)")
    p.add_argument("--percentile", type=float, default=99.0,
                   help="threshold: this percentile of the held-out persons' scores "
                   "(default 99)")
    p.add_argument("--ridge", type=float, default=1e-3,
                   help="added to the covariance's diagonal, as a fraction of its mean "
                   "variance (default 1e-3)")
    p.add_argument("--shrinkage", type=float, default=None, metavar="A",
                   help="covariance shrinkage toward a scaled identity, 0..1 (default: chosen "
                   "by the held-out persons' likelihood)")
    p.add_argument("--json", action="store_true", help="print the calibration report as JSON")


def run(args) -> int:
    import json

    from hdys_rt.training.novelty import calibrate

    reports = calibrate(args.model, args.data, tasks=args.tasks, percentile=args.percentile,
                        ridge=args.ridge, shrinkage=args.shrinkage,
                        holdout_lab=args.holdout_lab, domains=args.domains,
                        holdout_persons=args.holdout_person)
    if args.json:
        print(json.dumps(reports, indent=1))
        return 0
    for key, r in reports.items():
        print(f"{key}: {r['frames']} frames, {r['groups']} groups, shrinkage {r['shrinkage']:g}: "
              f"threshold {r['threshold']:.3g} (p{r['percentile']:g} of held-out scores; "
              f"held-out median {r['held_out_median']:.3g}, in-sample median "
              f"{r['in_sample_median']:.3g})")
    print(f"novelty calibrated: {args.model} rewritten")
    return 0
