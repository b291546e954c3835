"""``hdys-rt eval``: per-domain, per-output errors of a model on held-out subjects."""

from __future__ import annotations

import json
from pathlib import Path

NAME = "eval"
HELP = "evaluate a model on a corpus split (mPJE N·m/kg, RMSE, GRF in percent of body weight)"


def add_arguments(p):
    p.add_argument("--model", default=None, help="model (.safetensors or folder); default: bundled")
    p.add_argument("--data", required=True, help="corpus folder")
    p.add_argument("--json", default=None, help="write the full report (per joint) here")
    p.add_argument("--split", default="test", choices=["test", "train", "all"],
                   help="held-out subjects (test), training ones, or all")
    p.add_argument("--inputs", nargs="+", default=None,
                   help="kinematic inputs to evaluate (default: all the model takes)")
    p.add_argument("--domains", nargs="+", default=None, help="only these domains")
    p.add_argument("--plot", default=None, metavar="DIR",
                   help="also write per-joint estimate vs reference PNGs of recorded trials here "
                   "(needs matplotlib: the plot extra)")
    p.add_argument("--trial", action="append", metavar="NAME",
                   help="with --plot: only these trials (sequence names; default: the first "
                   "of each domain)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def run(args) -> int:
    import torch

    from hdys_rt.evaluation import evaluate, format_report
    from hdys_rt.model.io import load_model

    torch.set_num_threads(2)
    model, meta = load_model(args.model)
    report = evaluate(model, args.data, split=None if args.split == "all" else args.split,
                      inputs=args.inputs, domains=args.domains, rate=meta.get("rate", 100.0))
    print(format_report(report))
    if args.plot:
        _plot(args, model, meta)
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1, ensure_ascii=False))
    return 0


def _plot(args, model, meta) -> None:
    """PNGs of the chosen trials of the split (see :mod:`hdys_rt.bridges.plots`)."""
    import sys

    from hdys_rt.bridges.plots import _pyplot, plot_trial
    from hdys_rt.errors import HdysError
    from hdys_rt.training.data import CorpusData

    _pyplot()  # fails early, in one line, without matplotlib
    rate = meta.get("rate", 100.0)
    data = CorpusData(args.data, rate=rate, split=None if args.split == "all" else args.split,
                      domains=args.domains, max_points=model.cfg.max_points)
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
                            args.inputs))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    print(f"hdys-rt eval: {n} plots of {len(chosen)} trial(s) in {args.plot}")
