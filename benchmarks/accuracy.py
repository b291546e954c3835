"""Accuracy benchmark: the paper's findings reproduced on our corpus.

Trains every variant with the project's own ``hdys-rt train`` (same preset and step budget for
all) and evaluates each with ``hdys-rt eval`` on HELD-OUT subjects (the test split: the real
Gait2354 subject, and the hashed-out subjects of the simulated domains). Writes a markdown
table and JSON.

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

# (column name, domain, input, output) — the figures the table reports
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


def run_variant(name: str, extra: list[str], args) -> dict:
    slug = "".join(c if c.isalnum() else "_" for c in name).strip("_")
    out = Path(args.out) / slug
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    cmd = [sys.executable, "-m", "hdys_rt.cli", "train", "--preset", args.preset, "--data",
           args.data, "--out", str(out), "--epochs", str(args.epochs), "--max-minutes", "0",
           "--seed", str(args.seed), "--device", args.device, "--no-progress", *extra]
    t0 = time.time()
    with open(out / "train.log", "w") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, env=env)
    ev = out / "eval.json"
    with open(out / "eval.log", "w") as log:
        subprocess.run([sys.executable, "-m", "hdys_rt.cli", "eval", "--model",
                        str(out / "model.safetensors"), "--data", args.data, "--json", str(ev)],
                       check=True, stdout=log, stderr=subprocess.STDOUT, env=env)
    report = json.loads(ev.read_text())
    row = {"variant": name, "args": extra, "minutes": round((time.time() - t0) / 60, 2)}
    for col, dom, inp, outp in COLUMNS:
        row[col] = report.get(dom, {}).get(inp, {}).get(outp, {}).get("value")
    print(f"done: {name} ({row['minutes']} min)", file=sys.stderr, flush=True)
    return row


def table(rows: list[dict]) -> str:
    cols = [c for c, *_ in COLUMNS]
    lines = ["| variant | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
    for r in rows:
        cells = ["-" if r[c] is None else f"{r[c]:.4f}" for c in cols]
        lines.append(f"| {r['variant']} | " + " | ".join(cells) + " |")
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
    args = p.parse_args(argv)
    domains = sorted(d.parent.name for d in Path(args.data).glob("*/domain.json"))
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
         "data": args.data, "rows": rows}, indent=1, ensure_ascii=False))
    print(md)
    return 0


if __name__ == "__main__":
    sys.exit(main())
