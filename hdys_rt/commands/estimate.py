"""``hdys-rt estimate``: a recording in, per-frame estimates out (OpenSim .sto / .mot, .csv,
.json), the same numbers as the live path (:mod:`hdys_rt.bridges.estimate`)."""

from __future__ import annotations

from hdys_rt.commands._live import positive_float

NAME = "estimate"
HELP = ("estimate joint moments, GRF and muscle outputs of a recording (.trc, .c3d, corpus "
        ".json) into OpenSim .sto (moments) / .mot (GRF), .csv or .json")


def add_arguments(p) -> None:
    p.add_argument("file", help="recording: .trc, .c3d, corpus sequence .json (read as "
                   "`hdys-rt bridge file` reads it: markers mapped to the trained names, units "
                   "checked)")
    p.add_argument("--out", required=True, metavar="OUT",
                   help="output by extension: .sto (joint moments, OpenSim ID columns), .mot "
                   "(GRF, OpenSim external-loads columns), .csv or .json (every output)")
    p.add_argument("--mass", type=positive_float, metavar="KG",
                   help="subject mass: moments in N·m and forces in N (else N·m/kg and body "
                   "weights)")
    p.add_argument("--model", metavar="PATH", help="model (NAME.safetensors + NAME.json); "
                   "default: the bundled model")
    p.add_argument("--no-mirror", action="store_true",
                   help="do not average with the mirror image's estimates (as `serve "
                        "--no-mirror`)")
    p.add_argument("--up", choices=("y", "z"), default=None,
                   help="the file's vertical axis (default: the format's usual one)")
    p.add_argument("--plot", metavar="DIR",
                   help="also write PNGs of the big joints' moments and the vertical GRF here "
                   "(needs matplotlib: the plot extra)")


def run(args) -> int:
    from pathlib import Path

    from hdys_rt.bridges.estimate import OUT_TYPES, estimate_file, plot_estimates, write_estimates
    from hdys_rt.bridges.plots import _pyplot
    from hdys_rt.errors import HdysError

    if Path(args.out).suffix.lower() not in OUT_TYPES:
        raise HdysError(f"--out {args.out}: unsupported extension; expected one of "
                        f"{', '.join(OUT_TYPES)}")
    if args.plot:
        _pyplot()  # fails early, in one line, without matplotlib
    est = estimate_file(args.file, model=args.model, mass_kg=args.mass, up=args.up,
                        mirror=False if args.no_mirror else None)
    path = write_estimates(args.out, est)
    msg = (f"hdys-rt estimate: {len(est.time)} frames at {est.rate:g} Hz -> {path}"
           + (f" ({est.skipped} frames with too few markers left empty)" if est.skipped else "")
           + (f"; the skeleton {est.upright.short()}" if est.upright is not None
              and est.upright.suspicious else ""))
    if args.plot:
        pngs = plot_estimates(est, args.plot)
        msg += f"; {len(pngs)} plots in {args.plot}"
    print(msg)
    return 0
