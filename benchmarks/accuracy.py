"""Accuracy benchmark: the paper's findings reproduced on our corpus.

Trains every variant with the project's own ``hdys-rt train`` (same preset and step budget for
all) and evaluates each with ``hdys-rt eval`` on HELD-OUT persons (the person split, or
leave-one-lab-out with ``--holdout-lab LAB``, the same split for training and evaluation).
Writes ``accuracy.md`` + ``accuracy.json``: the headline per variant is the per-task skill
(1 - MAE/MAE(zero torque), mean over the six big sagittal joints) and total vertical GRF RMSE
(%BW); each variant's full per task x joint table beside the zero and training-mean-curve
baselines follows; the older per-domain mPJE columns come last.

``--model PATH`` (or ``bundled``) evaluates one trained model instead of training variants:

    python benchmarks/accuracy.py --data corpus --model bundled --holdout-lab each --out runs/acc

Variants: aggregated (all domains) vs single-domain training; without alignment; without FDAE;
without the kinematics-only domain; a 32-d latent; the bidirectional (offline) decoder instead of
the causal one; 50% of a target domain alone vs that 50% plus all other domains.

    python benchmarks/accuracy.py --data corpus --out runs/accuracy --epochs 40 --jobs 4
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

TASKS = ("walk", "run", "jump", "sit_to_stand", "squat")

# (column name, domain, input, output) — the per-domain figures (person split), after the tasks
COLUMNS = [
    ("lab_real torques (mPJE N·m/kg)", "lab_real", "markers", "torques_rajagopal"),
    ("myolegs torques (mPJE)", "myolegs", "markers", "torques_rajagopal"),
    ("myolegs activations (RMSE)", "myolegs", "markers", "activations"),
    ("humanoid SMPL torques (mPJE)", "humanoid", "keypoints", "torques_smpl"),
    ("semg_synth sEMG (RMSE)", "semg_synth", "keypoints", "semg"),
]


def variants(domains: list[str]) -> dict[str, list[str]]:
    """Variant name -> extra ``hdys-rt train`` arguments."""
    out = {"aggregated (HDyS)": []}
    for d in ("lab_real", "myolegs", "humanoid", "semg_synth"):
        if d in domains:
            out[f"single domain: {d}"] = ["--domains", d]
    out["without alignment"] = ["--no-align"]
    out["without FDAE"] = ["--no-fdae"]
    if "kinematics_only" in domains:
        out["without kinematics-only"] = ["--domains", *[d for d in domains
                                                         if d != "kinematics_only"]]
    out["32-d latent"] = ["--latent", "32"]
    out["bidirectional decoder (offline)"] = ["--bidirectional"]
    for d in ("lab_real", "semg_synth"):
        if d in domains:
            out[f"50% {d}"] = ["--domains", d, "--fraction", f"{d}=0.5"]
            out[f"50% {d} + other domains"] = ["--fraction", f"{d}=0.5"]
    return out


def _split_args(args) -> list[str]:
    return [a for lab in (args.holdout_lab or []) for a in ("--holdout-lab", lab)]


def run_variant(name: str, extra: list[str], args) -> dict:
    slug = "".join(c if c.isalnum() else "_" for c in name).strip("_")
    out = Path(args.out) / slug
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    t0 = time.time()
    if args.model is None:
        if args.holdout_lab and (len(args.holdout_lab) > 1 or "each" in args.holdout_lab):
            raise SystemExit("training variants takes one --holdout-lab (a model per fold is "
                             "not trained here); --model evaluates one model on every fold")
        cmd = [sys.executable, "-m", "hdys_rt.cli", "train", "--preset", args.preset, "--data",
               args.data, "--out", str(out), "--epochs", str(args.epochs), "--max-minutes", "0",
               "--seed", str(args.seed), "--device", args.device, "--no-progress",
               *_split_args(args), *extra]
        with open(out / "train.log", "w") as log:
            subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, env=env)
        model = str(out / "model.safetensors")
    else:
        model = args.model
    ev = out / "eval.json"
    cmd = [sys.executable, "-m", "hdys_rt.cli", "eval", "--data", args.data, "--json", str(ev),
           *_split_args(args), *(["--domains", *args.domains] if args.domains else [])]
    if model != "bundled":
        cmd += ["--model", model]
    with open(out / "eval.log", "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, env=env)
    report = json.loads(ev.read_text())
    row = {"variant": name, "args": extra, "minutes": round((time.time() - t0) / 60, 2),
           "tasks": report["tasks"], "scope": report["scope"]}
    per_domain = next(iter(report["domains"].values()), {})
    for col, dom, inp, outp in COLUMNS:
        row[col] = per_domain.get(dom, {}).get(inp, {}).get(outp, {}).get("value")
    print(f"done: {name} ({row['minutes']} min)", file=sys.stderr, flush=True)
    return row


def _task_cells(r: dict, task: str) -> list[str]:
    t = r["tasks"].get(task)
    if not t:
        return ["-", "-"]
    sk = [m["skill"] for m in t["torques"].values() if m.get("skill") is not None]
    g = (t.get("grf_vertical") or {}).get("model") or {}
    return [f"{sum(sk) / len(sk):.2f}" if sk else "-",
            "-" if g.get("rmse_pct_bw") is None else f"{g['rmse_pct_bw']:.1f}"]


def table(rows: list[dict]) -> str:
    """Headline: per task, mean skill over the big joints and vertical GRF RMSE (%BW); then
    the per-domain mPJE columns; then each variant's per task x joint table."""
    from hdys_rt.evaluation import format_task_report

    tasks = [t for t in TASKS if any(t in r["tasks"] for r in rows)]
    cols = [c for c, *_ in COLUMNS if any(r[c] is not None for r in rows)]
    head = [f"{t} skill | {t} GRF RMSE %BW" for t in tasks] + cols
    lines = ["| variant | " + " | ".join(head) + " |",
             "|---" * (1 + 2 * len(tasks) + len(cols)) + "|"]
    for r in rows:
        cells = [c for t in tasks for c in _task_cells(r, t)]
        cells += ["-" if r[c] is None else f"{r[c]:.4f}" for c in cols]
        lines.append(f"| {r['variant']} | " + " | ".join(cells) + " |")
    lines += ["", "skill = 1 - MAE/MAE(zero torque), mean over hip_flexion, knee_angle and "
              "ankle_angle (r and l); held-out persons only."]
    for r in rows:
        if r["tasks"]:
            lines += ["", f"## {r['variant']}", "", format_task_report(r)]
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="corpus folder")
    p.add_argument("--out", default="runs/accuracy")
    p.add_argument("--preset", default="small")
    p.add_argument("--epochs", type=int, default=40, help="same step budget for every variant")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--jobs", type=int, default=1, help="variants trained in parallel")
    p.add_argument("--threads", type=int, default=1, help="torch threads per variant")
    p.add_argument("--device", default="cpu")
    p.add_argument("--only", nargs="*", default=None, help="run only these variant names")
    p.add_argument("--model", default=None, metavar="PATH|bundled",
                   help="evaluate this trained model only (no variants trained)")
    p.add_argument("--holdout-lab", action="append", metavar="LAB",
                   help="leave LAB out (training and evaluation); with --model, repeat or "
                   "'each' for several folds")
    p.add_argument("--domains", nargs="+", default=None, help="evaluate these domains only")
    args = p.parse_args(argv)
    domains = sorted(d.parent.name for d in Path(args.data).glob("*/domain.json"))
    if args.model is not None:
        todo = {f"model {args.model}": []}
    else:
        todo = variants(domains)
    if args.only:
        todo = {k: v for k, v in todo.items() if k in args.only}
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        rows = list(pool.map(lambda kv: run_variant(kv[0], kv[1], args), todo.items()))
    md = table(rows)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "accuracy.md").write_text(md + "\n")
    (Path(args.out) / "accuracy.json").write_text(json.dumps(
        {"preset": args.preset, "epochs": args.epochs, "seed": args.seed, "device": args.device,
         "data": args.data, "model": args.model, "holdout_lab": args.holdout_lab,
         "rows": rows}, indent=1, ensure_ascii=False))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
