"""``hdys-rt demo``: the main job with nothing else running: the bundled real gait clip is
replayed as a live stream, served by the bundled model, and shown in a live terminal view."""

from __future__ import annotations

import logging
import sys
import time

import numpy as np

from hdys_rt.backends.registry import AUTO
from hdys_rt.commands._live import positive_float, render
from hdys_rt.errors import HdysError

log = logging.getLogger(__name__)

NAME = "demo"
HELP = ("replay the bundled real gait clip as a live stream through the bundled model and show "
        "per-joint torques, muscles, GRF, latency and dropped frames live")


def add_arguments(p) -> None:
    p.add_argument("--seconds", type=positive_float, default=10.0, help="how long to run")
    p.add_argument("--rate", type=positive_float, default=100.0, metavar="HZ",
                   help="stream rate (the 100 Hz clip is resampled)")
    p.add_argument("--publish", default="tcp://127.0.0.1:5560",
                   help="also publish estimates here for `hdys-rt listen` ('none': do not)")
    p.add_argument("--model", metavar="PATH", help="model to use (default: the bundled model)")
    p.add_argument("--engine", default=AUTO, metavar="NAME|DIR",
                   help="inference engine (see `hdys-rt serve --help`); auto = fastest here")
    p.add_argument("--plain", action="store_true",
                   help="print a status line per second instead of the live view")


def run(args) -> int:
    from hdys_rt.data.loader import load_file
    from hdys_rt.runtime.server import Server, load_estimators
    from hdys_rt.streams.replay import ReplaySource, demo_clip_path
    from hdys_rt.streams.zmq import Publisher, check_endpoint

    publisher = None
    if args.publish != "none":
        check_endpoint(args.publish, "--publish")
        try:
            publisher = Publisher(args.publish)
        except HdysError as exc:
            log.warning("%s; the demo runs without publishing", exc)
    source = ReplaySource(load_file(demo_clip_path()), rate=args.rate, loop=True,
                          name="demo-walk")
    server = Server([source], load_estimators(1, args.model, engine=args.engine), publisher)
    server.install_signal_handlers()
    pipe = server.pipelines[0]
    live = sys.stdout.isatty() and not args.plain
    last = [0.0]

    def tick(srv) -> None:
        now = time.monotonic()
        if not live and now - last[0] < 1.0:
            return
        last[0] = now
        latest = pipe.latest
        if latest is None:
            return
        total = pipe.times.values("total")
        p50, p99 = (1e3 * np.percentile(total, [50, 99])) if total.size else (np.nan, np.nan)
        c = pipe.counters
        status = (f"frame {latest['seq']}  latency p50 {p50:.2f} ms  p99 {p99:.2f} ms  "
                  f"dropped {c['dropped']}  flagged too_few {c['too_few']}")
        if live:
            title = (f"hdys-rt demo: real gait ({len(source.names)} markers @ {source.rate:g} "
                     f"Hz) -> bundled model{'  -> ' + args.publish if publisher else ''}")
            sys.stdout.write("\x1b[H\x1b[J" + render(
                title, latest["outputs"], pipe.est.outputs, pipe.est.units, status,
                latest["flags"]) + "\n")
        else:
            print(f"hdys-rt demo: {status}")
        sys.stdout.flush()

    try:
        server.start()
        server.run(seconds=args.seconds, connect_timeout=10.0, tick=tick, tick_period=0.1)
    finally:
        server.stop()
    why = f"stopped by {server.signal}" if server.signal else "done"
    print(f"hdys-rt demo: {why}: {server.summary_line()}", flush=True)
    return 0
