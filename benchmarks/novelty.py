"""Novelty benchmark: does the per-frame novelty score tell motions outside training apart from
ordinary motion of UNSEEN persons?

A model's novelty score is calibrated (:func:`hdys_rt.model.novelty.fit`, what ``hdys-rt
calibrate`` does) on the training-side frames of ``--calibrate-tasks`` (default: walking only).
Scored: the calibrated tasks' frames of the TEST side (persons the calibration never saw: the
corpus' person split, or ``--holdout-lab``), and every frame of the other tasks (both sides:
the calibration saw none of them). Per task it prints:

* ``flagged``: the fraction of frames above the threshold (the wire format's ``novel`` flag):
  small on the calibrated tasks of unseen persons, large on the others;
* ``AUC``: how well the score separates the task's frames from the unseen persons' frames of the
  calibrated tasks (1 = always higher, 0.5 = chance); by the Mann-Whitney statistic;
* ``median``: the median score.

Three thresholds are compared: ``calibrated`` (this design, what ``hdys-rt calibrate``
writes: covariance shrinkage chosen on held-out persons, threshold = percentile of the
out-of-person scores), ``median_of_persons`` (the same fit, threshold = median over persons of
the percentile of each one's out-of-person scores) and ``naive`` (sample covariance + the ridge, threshold = in-sample percentile; the design this
replaces). The model itself is not changed.

    python benchmarks/novelty.py --data /tmp/nov_corpus --model bundled

writes ``benchmarks/results/novelty.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # run from a checkout without installing
    sys.path.insert(0, str(ROOT))

from hdys_rt.evaluation import task_of  # noqa: E402
from hdys_rt.model.io import load_model  # noqa: E402
from hdys_rt.model.novelty import fit, sequence_latents  # noqa: E402
from hdys_rt.training.data import CorpusData  # noqa: E402


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    """P(score of a ``pos`` frame > score of a ``neg`` frame), ties half (Mann-Whitney U)."""
    from scipy.stats import rankdata

    ranks = rankdata(np.concatenate([pos, neg]))
    u = ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2
    return float(u / (len(pos) * len(neg)))


def latents(model, data: CorpusData, key: str):
    """[(task, person, latents (T, D))] of every sequence of ``data`` holding ``key``."""
    return [(task_of(s) or f"({s.domain})", s.person or s.name, sequence_latents(model, key,
                                                                              s.data[key]))
            for items in data.seqs.values() for s in items if key in s.data]


def scores(f, z: np.ndarray) -> np.ndarray:
    y = (z - f.mu) @ f.w.T
    return (y * y).mean(1)


def table(f, threshold: float, test, calib_tasks) -> dict:
    per = {}
    for task, _, z in test:
        per.setdefault(task, []).append(scores(f, z))
    per = {t: np.concatenate(v) for t, v in per.items()}
    ref = np.concatenate([per[t] for t in calib_tasks if t in per]) if any(
        t in per for t in calib_tasks) else None
    out = {}
    for t in sorted(per):
        s = per[t]
        out[t] = {"frames": int(len(s)), "flagged": float(np.mean(s > threshold)),
                  "median": float(np.median(s)),
                  "auc_vs_unseen_calibrated_tasks": None if ref is None or t in calib_tasks
                  else auc(s, ref)}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", required=True, help="corpus folder")
    p.add_argument("--model", default="bundled", help="model stem, or 'bundled'")
    p.add_argument("--input", default="markers", help="kinematic input (markers, keypoints)")
    p.add_argument("--calibrate-tasks", nargs="+", default=["walk"], metavar="TASK")
    p.add_argument("--domains", nargs="+", default=None)
    p.add_argument("--holdout-lab", action="append", default=None, metavar="LAB")
    p.add_argument("--percentile", type=float, default=99.0)
    p.add_argument("--ridge", type=float, default=1e-3)
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "novelty.json"))
    args = p.parse_args(argv)

    t0 = time.monotonic()
    model, meta = load_model(None if args.model == "bundled" else args.model)
    rate, P = float(meta["rate"]), model.cfg.max_points
    common = dict(rate=rate, domains=args.domains, keys=(args.input,), max_points=P,
                  holdout_lab=args.holdout_lab)
    train = latents(model, CorpusData(args.data, split="train", **common), args.input)
    test = latents(model, CorpusData(args.data, split="test", **common), args.input)
    calib = [(person, z) for task, person, z in train if task in args.calibrate_tasks]
    scored = [r for r in test + train if r[0] not in args.calibrate_tasks] + [
        r for r in test if r[0] in args.calibrate_tasks]
    if not calib:
        sys.exit(f"no training-side {args.input} frames of {args.calibrate_tasks}")
    z = np.concatenate([z for _, z in calib])
    groups = np.concatenate([[person] * len(z) for person, z in calib])
    result = {"model": args.model, "data": args.data, "input": args.input,
              "calibrate_tasks": args.calibrate_tasks, "holdout_lab": args.holdout_lab,
              "percentile": args.percentile, "command": "python benchmarks/novelty.py "
              + " ".join(argv if argv is not None else sys.argv[1:]),
              "calibration": {"frames": int(len(z)), "persons": int(len(set(groups))),
                              "latent": int(z.shape[1])},
              "unseen_persons": sorted({p for t, p, _ in test if t in args.calibrate_tasks})}
    f, rep = fit(z, groups, args.percentile, args.ridge)
    result["calibrated"] = {"fit": rep, "tasks": table(f, rep["threshold"], scored,
                                                       args.calibrate_tasks)}
    result["median_of_persons"] = {
        "fit": {**rep, "threshold": rep["threshold_median_of_groups"]},
        "tasks": table(f, rep["threshold_median_of_groups"], scored, args.calibrate_tasks)}
    f0, rep0 = fit(z, groups, args.percentile, args.ridge, shrinkage=0.0)
    result["naive"] = {"fit": {**rep0, "threshold": rep0["in_sample_p"]},
                       "tasks": table(f0, rep0["in_sample_p"], scored, args.calibrate_tasks)}
    result["seconds"] = round(time.monotonic() - t0, 1)

    print(f"{args.input}: calibrated on {len(z)} training-side frames of "
          f"{args.calibrate_tasks} ({len(set(groups))} persons); unseen persons of these "
          f"tasks: {result['unseen_persons']}")
    for name in ("calibrated", "median_of_persons", "naive"):
        r = result[name]
        print(f"\n{name}: shrinkage {r['fit']['shrinkage']:g}, threshold "
              f"{r['fit']['threshold']:.3g}")
        print(f"  {'task':28s} {'frames':>7s} {'flagged':>8s} {'AUC':>6s} {'median':>8s}")
        for t, row in r["tasks"].items():
            a = row["auc_vs_unseen_calibrated_tasks"]
            name = t + (" (unseen persons)" if t in args.calibrate_tasks else " (all)")
            print(f"  {name:28s} {row['frames']:7d} {100 * row['flagged']:7.1f}% "
                  f"{'' if a is None else f'{a:.3f}':>6s} {row['median']:8.3g}")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"\nwritten {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
