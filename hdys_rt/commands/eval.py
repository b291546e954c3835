"""``hdys-rt eval``: a model on held-out persons, per task and big joint beside two baselines
(zero and the training mean curve); the per-domain mPJE figures too (``--per-domain``)."""

from __future__ import annotations

import json
from pathlib import Path

NAME = "eval"
HELP = ("evaluate a model on held-out persons: per task and joint MAE/RMSE/r/lag (N·m/kg, ms) "
        "and vertical GRF (%BW), beside zero and training-mean-curve baselines")


def add_arguments(p):
    p.add_argument("--model", default=None, help="model (.safetensors or folder); default: bundled")
    p.add_argument("--data", required=True, help="corpus folder")
    p.add_argument("--json", default=None, help="write the full report here")
    p.add_argument("--split", default="test", choices=["test", "train", "all"],
                   help="held-out persons (test), training ones, or all")
    p.add_argument("--holdout-lab", action="append", metavar="LAB",
                   help="leave-one-lab-out instead of the person split: LAB's persons are "
                   "tested, every other lab is the training side (mean curves); repeat for "
                   "several folds, pooled; 'each' = every lab in turn")
    p.add_argument("--holdout-person", action="append", metavar="PERSON",
                   help="these persons are tested (meta.person, else the subject id; repeat "
                   "for several), every other person is the training side (mean curves)")
    p.add_argument("--input", default="markers",
                   help="kinematic input of the per-task table (default: markers)")
    p.add_argument("--per-domain", action="store_true",
                   help="also print the per-domain mPJE / RMSE table (always in --json)")
    p.add_argument("--inputs", nargs="+", default=None,
                   help="kinematic inputs of the per-domain figures (default: all the model "
                   "takes)")
    p.add_argument("--domains", nargs="+", default=None, help="only these domains")
    p.add_argument("--plot", default=None, metavar="DIR",
                   help="also write per-joint estimate vs reference PNGs of recorded trials here "
                   "(needs matplotlib: the plot extra)")
    p.add_argument("--trial", action="append", metavar="NAME",
                   help="with --plot: only these trials (sequence names; default: the first "
                   "of each domain)")
    p.add_argument("--no-mirror", action="store_true",
                   help="do not average with the estimates of the mirror image, even when the "
                        "model's metadata asks for it (an ablation; README)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bars on stderr (evaluation and plots)")


def _progress(items, desc):
    """A tqdm bar on stderr over one domain's sequences (``--no-progress``: none)."""
    import sys

    from tqdm import tqdm

    return tqdm(items, desc=desc, unit="trial", leave=False, file=sys.stderr)


def run(args) -> int:
    import torch

    from hdys_rt.evaluation import evaluate, evaluate_tasks, format_report, format_task_report
    from hdys_rt.errors import HdysError
    from hdys_rt.model.io import load_model
    from hdys_rt.model.mirror import averages

    torch.set_num_threads(2)
    model, meta = load_model(args.model)
    mirror = averages(meta, False if args.no_mirror else None)
    split = None if args.split == "all" else args.split
    rate = meta.get("rate", 100.0)
    labs = args.holdout_lab
    if labs and "each" in labs and len(labs) > 1:
        raise HdysError("--holdout-lab each holds out every lab in turn: give it alone")
    bar = None if args.no_progress else _progress
    tasks = evaluate_tasks(model, args.data, split=split, domains=args.domains, rate=rate,
                           input_key=args.input, holdout_labs=labs,
                           holdout_persons=args.holdout_person, progress=bar, mirror=mirror)
    tasks["scope"]["model"] = str(args.model or "bundled")
    tasks["scope"]["model_training_domains"] = (meta.get("corpus") or {}).get("domains")
    if tasks["tasks"]:
        print(format_task_report(tasks))
    else:
        print("hdys-rt eval: no trial with a task (walk, run, jump, sit_to_stand, squat) in "
              f"split {args.split!r} of this corpus; see --per-domain")
    domains = {}
    if args.per_domain or args.json:
        for lab in [f["holdout_lab"] for f in tasks["scope"]["folds"]]:
            try:
                rep = evaluate(model, args.data, split=split, inputs=args.inputs,
                               domains=args.domains, rate=rate, holdout_lab=lab,
                               holdout_persons=args.holdout_person, progress=bar,
                               mirror=mirror)
            except HdysError:  # a fold with nothing on this side
                continue
            domains[lab or ("holdout_persons" if args.holdout_person else "person_split")] = rep
        if args.per_domain:
            for fold, rep in domains.items():
                print(f"\nPer domain ({fold}; mPJE = mean absolute error over all 17 joints):")
                print(format_report(rep))
    if args.plot:
        _plot(args, model, meta, mirror)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps({**tasks, "domains": domains}, indent=1,
                                              ensure_ascii=False))
    return 0


def _plot(args, model, meta, mirror: bool) -> None:
    """PNGs of the chosen trials of the split (see :mod:`hdys_rt.bridges.plots`)."""
    import sys

    from hdys_rt.bridges.plots import _pyplot, plot_trial
    from hdys_rt.errors import HdysError
    from hdys_rt.training.data import CorpusData

    _pyplot()  # fails early, in one line, without matplotlib
    rate = meta.get("rate", 100.0)
    labs = [lab for lab in (args.holdout_lab or []) if lab != "each"]
    data = CorpusData(args.data, rate=rate, split=None if args.split == "all" else args.split,
                      domains=args.domains, max_points=model.cfg.max_points,
                      holdout_lab=labs[0] if len(labs) == 1 else None,
                      holdout_persons=args.holdout_person)
    items = [s for seqs in data.seqs.values() for s in seqs]
    if args.trial:
        chosen = [s for s in items if s.name in set(args.trial)]
        unknown = sorted(set(args.trial) - {s.name for s in chosen})
        if unknown:
            raise HdysError(f"--trial {unknown[0]!r} is not in split {args.split!r} of "
                            f"{args.data} (e.g. {[s.name for s in items[:3]]})")
    else:
        chosen = [seqs[0] for seqs in data.seqs.values()]
    bar = None
    if not args.no_progress and sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=len(chosen), desc="plots", unit="trial", leave=False)
    n = 0
    for s in chosen:
        n += len(plot_trial(model, f"{s.domain}_{s.name}", rate, s.data, args.plot,
                            args.inputs, mirror))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    print(f"hdys-rt eval: {n} plots of {len(chosen)} trial(s) in {args.plot}")
