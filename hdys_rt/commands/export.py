"""``hdys-rt export``: compile the streaming step of a model into an engine folder."""

from __future__ import annotations

import logging
from pathlib import Path

from hdys_rt import representations as reps
from hdys_rt.commands._live import positive_int
from hdys_rt.errors import HdysError

log = logging.getLogger(__name__)

NAME = "export"
HELP = ("compile a model's streaming step to an inference engine (ONNX Runtime, AOTInductor, "
        "TensorRT) in a folder with its engine.json")


def add_arguments(p) -> None:
    from hdys_rt.backends import registry
    from hdys_rt.backends.engine import FASTEST

    built = registry.names(exported=True)
    old = tuple(a for a, e in registry.ALIASES.items() if e in built)  # deprecated spellings
    p.add_argument("--engine", choices=built + (registry.AUTO, FASTEST) + old, required=True,
                   metavar="{" + ",".join(built + (registry.AUTO, FASTEST)) + "}",
                   help=f"engine to build; {registry.AUTO}: the registry's choice for --device; "
                   f"{FASTEST}: build every available one, time each, keep the fastest")
    p.add_argument("--model", metavar="PATH",
                   help="model (NAME.safetensors + NAME.json); default: the bundled model")
    p.add_argument("--out", required=True, metavar="DIR", help="engine folder, e.g. engines/NAME/")
    p.add_argument("--device", default="cpu", help="device the engine runs on (cpu, cuda)")
    p.add_argument("--batch", type=positive_int, default=1,
                   help="streams per step (1 for the streaming estimator)")
    p.add_argument("--max-points", type=positive_int, default=64, metavar="N",
                   help="marker slots (frames are padded to this and masked)")
    p.add_argument("--fp16", action="store_true", help="TensorRT: build in FP16")
    p.add_argument("--input-kind", default="markers", choices=reps.POINT_SETS)


def run(args) -> int:
    from hdys_rt.backends.engine import export_engine
    from hdys_rt.devices import check_device

    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise HdysError(f"--out {out} is a file; give a folder for the engine")
    info = export_engine(args.engine, args.model, args.out, batch=args.batch,
                         max_points=args.max_points, device=check_device(
                             args.device, allow_auto=False, require_present=False),
                         fp16=args.fp16,
                         input_kind=args.input_kind)
    extra = ""
    if "fastest" in info:
        extra = " (fastest of: " + ", ".join(f"{k} {v:.3f} ms" for k, v in
                                             info["fastest"]["candidates_ms"].items()) + ")"
    print(f"hdys-rt export: {info['engine']} engine in {args.out}: {info['artefact']}, batch "
          f"{info['batch']}, {info['max_points']} points, {info['precision']}{extra}",
          flush=True)
    return 0
