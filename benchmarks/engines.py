"""Step latency of every available backend, for 1 and N concurrent streams (batched).

For each backend and batch size: warm-up, then ``--steps`` timed steps (p50/p99/mean, with a
device sync per step on CUDA), next to the work of one step (FLOPs counted by torch's
FlopCounterMode on the step graph; bytes = weights + K/V rings + inputs/outputs) and the floor
those imply on this machine: max(FLOPs / measured matmul peak, bytes / measured copy bandwidth).
Inputs are those of a full ring (wrapped), 41 valid markers padded to ``--max-points``.

    nice -n 10 python benchmarks/engines.py                       # CPU, small preset model
    python benchmarks/engines.py --device cuda --streams 1 256    # GPU
    python benchmarks/engines.py --model path/to/model --json out.json

Without ``--model`` a freshly initialised model of the small preset (the shipped model's size)
is used: latency does not depend on the weights' values.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from hdys_rt.backends import registry
from hdys_rt.backends.base import IOSpec
from hdys_rt.errors import HdysError
from hdys_rt.model.hdys import HDyS
from hdys_rt.model.io import load_model
from hdys_rt.model.step import BiasTable, StreamingStep
from hdys_rt.training.loop import PRESETS

log = logging.getLogger("benchmarks.engines")

FP16 = "-fp16"  # suffix: the FP16 build of an engine that has one (tensorrt-fp16)


def default_backends(device: torch.device) -> list[str]:
    """Every registry engine for the device type, plus the FP16 build of those that have one
    (unavailable ones are listed and reported as skipped, with the registry's reason)."""
    out = []
    for e in registry.ENGINES.values():
        if device.type in e.devices:
            out += [e.name] + ([e.name + FP16] if e.fp16 and device.type == "cuda" else [])
    return out


def step_cost(step: StreamingStep, batch: int, max_points: int) -> tuple[float, float]:
    """(FLOPs, bytes) of one step for ``batch`` streams."""
    from torch.utils.flop_counter import FlopCounterMode

    ex = step.example_inputs(batch, max_points)
    with FlopCounterMode(display=False) as fc, torch.no_grad():
        step(*ex)
    flops = float(fc.get_total_flops())
    weights = sum(t.numel() * t.element_size() for t in list(step.parameters()) +
                  list(step.buffers()))
    io = step.io_shapes(batch, max_points)
    io_bytes = sum(4 * int(np.prod(s)) for s in io.values())
    return flops, float(weights + io_bytes)


def machine_peaks(device: torch.device) -> tuple[float, float]:
    """(matmul FLOP/s, copy bytes/s) measured here: the roofline of the floor."""
    n = 2048 if device.type == "cuda" else 512
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    big = torch.empty(64 << 20 >> 2, device=device)
    dst = torch.empty_like(big)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def best(fn, reps):
        fn()
        sync()
        ts = []
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            sync()
            ts.append(time.perf_counter() - t)
        return min(ts)

    flops = 2 * n ** 3 / best(lambda: torch.mm(a, b), 10)
    bw = 2 * big.numel() * 4 / best(lambda: dst.copy_(big), 10)
    return flops, bw


def make_backend(name: str, step: StreamingStep, batch: int, P: int, device: str, tmp: Path):
    """The backend of engine ``name`` (optionally ``NAME-fp16``) for ``batch`` streams: built
    from the step, or exported into ``tmp`` first; the registry says which and whether it can
    run here."""
    fp16 = name.endswith(FP16)
    e = registry.get(name[:-len(FP16)] if fp16 else name).require(device)
    io = IOSpec.from_shapes(step.io_shapes(batch, P))
    if e.on_the_fly and not fp16:
        return e.from_step(step, io, device)
    if fp16 and not e.fp16:
        raise HdysError(f"the {e.name} engine has no FP16 build")
    folder = tmp / f"{name}-b{batch}-{torch.device(device).type}"
    folder.mkdir(parents=True, exist_ok=True)
    e.export(step, folder / e.artefact, io, device, fp16, folder)
    return e.from_artefact(folder / e.artefact, io, device)


def fill_inputs(be, step: StreamingStep, valid: int, seed: int = 0) -> None:
    """Realistic inputs: ``valid`` markers, a wrapped (full) ring, random cached keys/values."""
    g = torch.Generator().manual_seed(seed)
    inp = be.inputs
    B, P = inp["mask"].shape
    inp["points"].copy_(torch.randn(B, P, 3, generator=g) * 0.3 + torch.tensor([0., 1., 0.]))
    mask = torch.zeros(B, P)
    mask[:, :valid] = 1.0
    inp["mask"].copy_(mask)
    inp["k_cache"].copy_(torch.randn(inp["k_cache"].shape, generator=g))
    inp["v_cache"].copy_(torch.randn(inp["v_cache"].shape, generator=g))
    if "history" in inp:  # motion models: the previous frames are the same markers
        inp["history"][..., :3].copy_(inp["points"][:, None])
        inp["history"][..., 3].copy_(mask[:, None])
    bias = BiasTable(step.decoder.rel_bias)
    inp["attn_bias"].copy_(bias(3 * step.cfg.window + 1).expand_as(inp["attn_bias"]))


def time_steps(be, steps: int, warmup: int) -> np.ndarray:
    cuda = be.device.type == "cuda"
    for _ in range(warmup):
        be.infer()
    if cuda:
        torch.cuda.synchronize(be.device)
    ts = np.empty(steps)
    pc = time.perf_counter
    for i in range(steps):
        t = pc()
        be.infer()
        if cuda:
            torch.cuda.synchronize(be.device)
        ts[i] = pc() - t
    return ts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", help="saved model (default: fresh small-preset model)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--backends", nargs="+", help="engines of hdys_rt.backends.registry (NAME or "
                    "NAME-fp16); default: every one for the device type")
    ap.add_argument("--streams", nargs="+", type=int, help="batch sizes (default cpu: 1 8; "
                    "cuda: 1 256)")
    ap.add_argument("--steps", type=int, default=10000)
    ap.add_argument("--warmup", type=int, default=500)
    ap.add_argument("--max-points", type=int, default=64)
    ap.add_argument("--markers", type=int, default=41, help="valid markers per frame")
    ap.add_argument("--threads", type=int, default=1, help="CPU threads (torch, onnxruntime)")
    ap.add_argument("--json", help="write the results here")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    torch.set_num_threads(args.threads)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    dev = torch.device(args.device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        print(f"engines benchmark: --device {args.device}: torch {torch.__version__} sees no CUDA "
              "device", file=sys.stderr)
        return 1
    if dev.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True  # what a deployment would run
    if args.model:
        model, _ = load_model(args.model)
    else:
        torch.manual_seed(0)
        model = HDyS(PRESETS["small"].model).eval()
    step = StreamingStep(model)
    streams = args.streams or ([1, 256] if dev.type == "cuda" else [1, 8])
    names = args.backends or default_backends(dev)
    flop_peak, bw_peak = machine_peaks(dev)
    cpu_name = platform.processor() or platform.machine()
    where = (torch.cuda.get_device_name(dev) if dev.type == "cuda" else
             f"{cpu_name}, {os.cpu_count()} cores, {args.threads} thread(s)")
    print(f"# engines benchmark on {where}; torch {torch.__version__}; "
          f"matmul peak {flop_peak / 1e9:.1f} GFLOP/s, copy {bw_peak / 1e9:.1f} GB/s; "
          f"{args.steps} steps after {args.warmup} warm-up; {args.markers}/{args.max_points} "
          f"markers valid; model {'small preset' if not args.model else args.model} "
          f"({sum(p.numel() for p in model.parameters()) / 1e6:.2f} M params)")
    hdr = (f"{'backend':<14} {'streams':>7} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} "
           f"{'us/stream':>9} {'MFLOP':>8} {'MB':>7} {'floor ms':>9} {'p50/floor':>9}")
    print(hdr)
    rows = []
    with tempfile.TemporaryDirectory(prefix="hdys-bench-") as tmp:
        for name in names:
            for B in streams:
                try:
                    be = make_backend(name, step, B, args.max_points, args.device, Path(tmp))
                    with be:
                        fill_inputs(be, step, min(args.markers, args.max_points))
                        ts = time_steps(be, args.steps, args.warmup)
                except (HdysError, ImportError) as exc:
                    print(f"{name:<14} {B:>7} skipped: {str(exc).splitlines()[0]}")
                    rows.append({"backend": name, "streams": B, "skipped": str(exc)})
                    continue
                flops, nbytes = step_cost(step.to("cpu"), B, args.max_points)
                floor = max(flops / flop_peak, nbytes / bw_peak)
                r = {"backend": name, "device": str(dev), "streams": B,
                     "p50_ms": float(np.percentile(ts, 50) * 1e3),
                     "p99_ms": float(np.percentile(ts, 99) * 1e3),
                     "mean_ms": float(ts.mean() * 1e3), "steps": args.steps,
                     "flops": flops, "bytes": nbytes, "floor_ms": floor * 1e3}
                r["us_per_stream"] = r["p50_ms"] * 1e3 / B
                rows.append(r)
                print(f"{name:<14} {B:>7} {r['p50_ms']:>8.3f} {r['p99_ms']:>8.3f} "
                      f"{r['mean_ms']:>8.3f} {r['us_per_stream']:>9.1f} {flops / 1e6:>8.2f} "
                      f"{nbytes / 1e6:>7.2f} {r['floor_ms']:>9.4f} "
                      f"{r['p50_ms'] / r['floor_ms']:>9.1f}", flush=True)
                if args.json:  # after every row: a run cut short keeps what it measured
                    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
                    Path(args.json).write_text(json.dumps({
                        "machine": where, "torch": torch.__version__, "device": str(dev),
                        "matmul_flops_per_s": flop_peak, "copy_bytes_per_s": bw_peak,
                        "command": " ".join(["python"] + sys.argv),
                        "max_points": args.max_points, "markers": args.markers,
                        "results": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
