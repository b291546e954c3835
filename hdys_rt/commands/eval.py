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


def run(args) -> int:
    import torch

    from hdys_rt.evaluation import evaluate, format_report
    from hdys_rt.model.io import load_model

    torch.set_num_threads(2)
    model, meta = load_model(args.model)
    report = evaluate(model, args.data, split=None if args.split == "all" else args.split,
                      inputs=args.inputs, domains=args.domains, rate=meta.get("rate", 100.0))
    print(format_report(report))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(report, indent=1, ensure_ascii=False))
    return 0
