"""``hdys-rt replay``: publish a recording as a live marker stream (LSL outlet or ZeroMQ)."""

from __future__ import annotations

import logging
from pathlib import Path

from hdys_rt.commands._live import endpoint, positive_float, stop_on_signals
from hdys_rt.errors import HdysError

log = logging.getLogger(__name__)

NAME = "replay"
HELP = ("publish a recording (.trc, .c3d, corpus .json) as a live marker stream on LSL or "
        "ZeroMQ, in real time with a drift-compensated clock")


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


def run(args) -> int:
    from hdys_rt.streams.replay import Player, demo_clip_path, load_recording

    path = Path(args.file) if args.file else demo_clip_path()
    if args.wait < 0:
        raise HdysError(f"--wait must be >= 0 s, got {args.wait}")
    rec = load_recording(path)
    player = Player(rec, rate=args.rate, speed=args.speed, loop=args.loop, seconds=args.seconds)
    name = args.name or path.stem
    stop = stop_on_signals()
    if args.to == "lsl":
        from hdys_rt.streams.lsl import marker_outlet

        outlet = marker_outlet(name, rec.names, player.rate, args.type)
        if args.wait > 0 and not outlet.wait_for_consumers(args.wait):
            log.warning("no LSL consumer after %.1f s; playing anyway", args.wait)
        push = lambda xyz, t, seq: outlet.push_sample(xyz.reshape(-1), t)  # noqa: E731
        where = f"LSL stream {name!r} (type {args.type})"
        close = lambda: None  # noqa: E731
    else:
        from hdys_rt.client import MarkerSender

        sender = MarkerSender(rec.names, player.rate, args.endpoint, src=name,
                              curve=args.curve_keys)
        if args.wait > 0 and not sender.wait_for_subscriber(args.wait):
            log.warning("no ZeroMQ subscriber after %.1f s; playing anyway", args.wait)
        push = lambda xyz, t, seq: sender.send(xyz, t, seq)  # noqa: E731
        where = f"ZeroMQ {args.endpoint}"
        close = sender.close
    log.info("replaying %s (%d markers, %d frames at %g Hz) to %s", path, len(rec.names),
             player.rec.frames, player.rate, where)
    try:
        for item in player.frames(stop):
            if item is not None:
                seq, xyz, t = item
                push(xyz, t, seq)
    finally:
        close()
    why = f"stopped by {stop.signum}: " if stop.signum else ""
    print(f"hdys-rt replay: {why}{player.emitted} frames at {player.rate:g} Hz to {where}",
          flush=True)
    return 0
