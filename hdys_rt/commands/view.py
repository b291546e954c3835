"""``hdys-rt view``: a local web page with scrolling traces of a serve's live estimates."""

from __future__ import annotations

import json
import logging
import time

from hdys_rt.commands._live import endpoint, positive_float, stop_on_signals
from hdys_rt.errors import HdysError

log = logging.getLogger(__name__)

NAME = "view"
HELP = ("live web view on 127.0.0.1 (no desktop needed): scrolling traces of torques, muscles, "
        "GRF and latency from a running serve")


def _names(text: str) -> tuple[str, ...]:
    return tuple(n.strip() for n in text.split(",") if n.strip())


def add_arguments(p) -> None:
    from hdys_rt.bridges.view import DEFAULT_GRF, DEFAULT_MUSCLES, DEFAULT_TORQUES

    p.add_argument("--endpoint", type=endpoint, default="tcp://127.0.0.1:5560",
                   help="the serve's publish endpoint")
    p.add_argument("--stream", action="append", help="only this stream (repeatable)")
    p.add_argument("--port", type=int, default=8765, help="HTTP port on 127.0.0.1 (0: any)")
    p.add_argument("--torques", type=_names, default=DEFAULT_TORQUES, metavar="A,B,..",
                   help="torque channels to plot")
    p.add_argument("--muscles", type=_names, default=DEFAULT_MUSCLES, metavar="A,B,..",
                   help="muscles to plot")
    p.add_argument("--grf", type=_names, default=DEFAULT_GRF, metavar="A,B,..",
                   help="GRF channels to plot")
    p.add_argument("--mass", type=positive_float, metavar="KG",
                   help="subject mass: torques in N·m and GRF in N (default: per kg / BW, or "
                   "the mass in the LSL input stream's metadata when it has one)")
    p.add_argument("--window", type=positive_float, default=10.0, metavar="S",
                   help="seconds of history on screen")
    p.add_argument("--seconds", type=positive_float, help="stop after this many seconds")
    p.add_argument("--json", action="store_true", help="print the final counters as JSON")


def run(args) -> int:
    from hdys_rt.bridges.view import ViewOptions, ViewServer

    if not 0 <= args.port <= 65535:
        raise HdysError(f"--port must be 0..65535, got {args.port}")
    mass = args.mass
    if mass is None and args.stream:
        from hdys_rt.bridges.subject import lsl_subject

        subj = lsl_subject(args.stream[0], timeout=1.0)
        if subj is not None:
            mass = subj.mass_kg
            log.warning("subject mass %.1f kg from LSL stream %r", mass, args.stream[0])
    opt = ViewOptions(args.torques, args.muscles, args.grf, mass, args.window)
    stop = stop_on_signals()
    with ViewServer(args.endpoint, port=args.port, streams=args.stream, options=opt) as view:
        print(f"hdys-rt view: open {view.url}  (estimates from {args.endpoint}; Ctrl-C stops)",
              flush=True)
        end = None if args.seconds is None else time.monotonic() + args.seconds
        while not stop.is_set() and (end is None or time.monotonic() < end):
            stop.wait(0.2)
    c = view.counters
    if args.json:
        print(json.dumps({"url": view.url, "stream": view.stream, **c}), flush=True)
    else:
        print(f"hdys-rt view: {c['estimates']} estimates, {c['samples']} samples to "
              f"{c['clients']} page(s)", flush=True)
    return 0
