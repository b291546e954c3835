"""``hdys-rt replay``: publish a recording as a live marker stream (LSL outlet or ZeroMQ).

The file goes through the one loader (:func:`hdys_rt.data.loader.load_file`: marker names
mapped to the trained ones, units checked) and the same senders as ``hdys-rt bridge file``."""

from __future__ import annotations

import logging
from pathlib import Path

from hdys_rt.commands._live import endpoint, positive_float, stop_on_signals
from hdys_rt.errors import HdysError

log = logging.getLogger(__name__)

NAME = "replay"
HELP = ("publish a recording (.trc, .c3d, corpus .json, .xdf) as a live marker stream on LSL "
        "or ZeroMQ, in real time with a drift-compensated clock")


def add_arguments(p) -> None:
    p.add_argument("file", nargs="?", metavar="FILE",
                   help="recording to play (default: the bundled gait clip)")
    p.add_argument("--to", choices=("lsl", "zmq"), default="lsl", help="transport")
    p.add_argument("--rate", type=positive_float, metavar="HZ",
                   help="resample to this rate (default: the file's rate)")
    p.add_argument("--speed", type=positive_float, default=1.0, help="playback speed factor")
    p.add_argument("--loop", action="store_true", help="loop the recording")
    p.add_argument("--seconds", type=positive_float, help="stop after this many seconds")
    p.add_argument("--name", help="LSL stream name / ZeroMQ src (default: the file's stem)")
    p.add_argument("--type", default="MoCap", help="LSL stream type")
    p.add_argument("--endpoint", type=endpoint, default="tcp://127.0.0.1:5559",
                   help="ZeroMQ endpoint to bind (PUB)")
    p.add_argument("--curve-keys", metavar="DIR",
                   help="ZeroMQ: CURVE client keys for a serve run with --curve-keys (DIR "
                   "holds client.key_secret and server.key)")
    p.add_argument("--wait", type=float, default=10.0, metavar="S",
                   help="wait up to S seconds for a consumer before playing (0: do not wait)")
    p.add_argument("--up", choices=("y", "z"), help="the file's vertical axis (default: the "
                   "format's: TRC y, C3D z)")
    p.add_argument("--no-markerset", action="store_true",
                   help="send markers under their own names (no mapping to trained names)")
    p.add_argument("--keep-unknown", action="store_true",
                   help="also send markers the model was not trained on")


def run(args) -> int:
    from hdys_rt.data.loader import load_file
    from hdys_rt.bridges.sinks import make_sink
    from hdys_rt.streams.replay import Player, demo_clip_path

    path = Path(args.file) if args.file else demo_clip_path()
    if args.wait < 0:
        raise HdysError(f"--wait must be >= 0 s, got {args.wait}")
    rec = load_file(path, up=args.up, markerset=not args.no_markerset,
                    keep_unknown=args.keep_unknown)
    player = Player(rec, rate=args.rate, speed=args.speed, loop=args.loop, seconds=args.seconds)
    name = args.name or path.stem
    sink = make_sink(args.to, name, rec.names, player.rate, rec.kind, args.endpoint, args.type,
                     rec.units, rec.subject, rec.layout, str(path), args.curve_keys)
    if args.wait > 0 and not sink.wait(args.wait):
        log.warning("no consumer after %.1f s; playing anyway", args.wait)
    log.info("replaying %s (%d %s, %d frames at %g Hz) to %s", path, len(rec.names),
             "columns" if rec.kind == "table" else rec.kind, player.rec.frames, player.rate,
             sink.where)
    stop = stop_on_signals()
    try:
        player.play(sink.push, stop)
    finally:
        sink.close()
    why = f"stopped by {stop.signum}: " if stop.signum else ""
    print(f"hdys-rt replay: {why}{player.emitted} frames at {player.rate:g} Hz to {sink.where}",
          flush=True)
    return 0
