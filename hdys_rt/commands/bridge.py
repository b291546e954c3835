"""``hdys-rt bridge``: adapters from what labs hold to live hdys-rt streams.

* ``bridge file FILE``: a C3D / TRC / MOT / corpus / XDF recording replayed in real time to LSL
  or ZeroMQ with full metadata, marker names mapped to the trained ones (report with
  ``--check``), units checked, subject mass/height attached.
* ``bridge keypoints [FILE|-]`` or ``--listen ENDPOINT``: pose-estimator keypoints (JSON lines
  or msgpack over ZeroMQ; COCO-17, H36M-17, MediaPipe-33) forwarded as a keypoint stream for
  ``hdys-rt serve --input keypoints``.

The implementation lives in :mod:`hdys_rt.bridges`; this module only parses arguments.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from hdys_rt.commands._live import endpoint, positive_float, positive_int, stop_on_signals
from hdys_rt.errors import HdysError

log = logging.getLogger(__name__)

NAME = "bridge"
HELP = ("replay lab files (C3D, TRC, MOT, corpus, XDF) or forward pose-estimator keypoints "
        "as live LSL / ZeroMQ streams for serve")


def _common_out(p, default_to="lsl") -> None:
    p.add_argument("--to", choices=("lsl", "zmq"), default=default_to, help="transport")
    p.add_argument("--name", help="LSL stream name / ZeroMQ src (default: the file's stem)")
    p.add_argument("--type", default="MoCap", help="LSL stream type")
    p.add_argument("--endpoint", type=endpoint, default="tcp://127.0.0.1:5559",
                   help="ZeroMQ endpoint to bind (PUB) with --to zmq")
    p.add_argument("--curve-keys", metavar="DIR",
                   help="ZeroMQ: CURVE client keys for a serve run with --curve-keys (DIR "
                   "holds client.key_secret and server.key)")
    p.add_argument("--wait", type=float, default=10.0, metavar="S",
                   help="wait up to S seconds for a consumer before sending (0: do not wait)")
    p.add_argument("--seconds", type=positive_float, help="stop after this many seconds")
    p.add_argument("--json", action="store_true", help="print the final summary as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="what", metavar="WHAT", parser_class=type(p))
    sub.required = True
    f = sub.add_parser("file", help="replay a recording as a live stream",
                       description="replay a recording (.c3d .trc .mot .sto corpus .json "
                       ".xdf) in real time to LSL or ZeroMQ")
    f.add_argument("file", metavar="FILE")
    _common_out(f)
    f.add_argument("--stream", metavar="NAME", help="XDF: the stream to replay (default: the "
                   "first MoCap stream)")
    f.add_argument("--up", choices=("y", "z"), help="the file's vertical axis (default: the "
                   "format's: TRC y, C3D z, XDF its desc/up or y)")
    f.add_argument("--no-markerset", action="store_true",
                   help="send markers under their own names (no mapping to trained names)")
    f.add_argument("--keep-unknown", action="store_true",
                   help="also send markers the model was not trained on")
    f.add_argument("--mass", type=positive_float, metavar="KG", help="subject body mass")
    f.add_argument("--height", type=positive_float, metavar="M", help="subject height")
    f.add_argument("--rate", type=positive_float, metavar="HZ", help="resample to this rate")
    f.add_argument("--speed", type=positive_float, default=1.0, help="playback speed factor")
    f.add_argument("--loop", action="store_true", help="loop the recording")
    f.add_argument("--check", action="store_true",
                   help="only read the file and report markers, units, subject; send nothing")
    f.set_defaults(_bridge=run_file)

    k = sub.add_parser("keypoints", help="forward pose-estimator keypoints as a keypoint stream",
                       description="forward 3D keypoints (JSON lines or msgpack over ZeroMQ) "
                       "as a keypoint stream for `hdys-rt serve --input keypoints`")
    k.add_argument("file", nargs="?", metavar="FILE",
                   help="JSON-lines file replayed in real time, or - for stdin (live)")
    k.add_argument("--listen", type=endpoint, metavar="ENDPOINT",
                   help="receive frames on this ZeroMQ SUB endpoint instead of a file")
    k.add_argument("--bind", action="store_true", help="bind --listen instead of connecting")
    k.add_argument("--layout", choices=("coco17", "h36m17", "mediapipe33"),
                   help="input layout when frames do not state it")
    k.add_argument("--up", choices=("y", "ydown", "z"), default="y",
                   help="the input's vertical axis (ydown: Y down, the camera / MediaPipe convention)")
    k.add_argument("--units", choices=("auto", "m", "cm", "mm"), default="auto",
                   help="input length unit (auto: from the body's size)")
    k.add_argument("--min-score", type=float, default=0.0,
                   help="keypoints with a lower score are sent as missing")
    k.add_argument("--rate", type=positive_float, metavar="HZ",
                   help="file: replay rate; live: the stream's nominal rate (default: a file's "
                   "from its frames' t, else 30)")
    k.add_argument("--count", type=positive_int, help="stop after forwarding this many frames")
    k.add_argument("--loop", action="store_true", help="loop a file")
    _common_out(k, default_to="zmq")
    k.set_defaults(_bridge=run_keypoints)


def run(args) -> int:
    if args.wait < 0:
        raise HdysError(f"--wait must be >= 0 s, got {args.wait}")
    return args._bridge(args)


def _progress(args, total: int | None, desc: str):
    if args.no_progress or args.json or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="frame", dynamic_ncols=True, leave=False)


def _open(sink, args) -> None:
    if args.wait > 0 and not sink.wait(args.wait):
        log.warning("no consumer after %.1f s; sending anyway", args.wait)


def _play(rec, sink, args, stop, bar) -> int:
    """Real-time replay through :class:`hdys_rt.streams.replay.Player`; returns frames sent."""
    from hdys_rt.streams.replay import Player

    player = Player(rec, rate=getattr(args, "rate", None), speed=getattr(args, "speed", 1.0),
                    loop=args.loop, seconds=args.seconds)
    try:
        player.play(sink.push, stop, getattr(args, "count", None),
                    None if bar is None else bar.update)
    finally:
        sink.close()
        if bar is not None:
            bar.close()
    return player.emitted, player.rate


def _finish(args, summary: dict, line: str) -> int:
    if args.json:
        print(json.dumps(summary, default=str), flush=True)
    else:
        print(line, flush=True)
    return 0


def run_file(args) -> int:
    from hdys_rt.data.loader import load_file
    from hdys_rt.bridges.sinks import make_sink
    from hdys_rt.bridges.subject import make_subject

    path = Path(args.file)
    fr = load_file(path, up=args.up, stream=args.stream, markerset=not args.no_markerset,
                   keep_unknown=args.keep_unknown)
    subject = make_subject(args.mass, args.height, path.stem) or fr.subject
    if args.height is not None and args.mass is None:
        raise HdysError("--height needs --mass too")
    summary = {"file": str(path), "kind": fr.kind, "frames": fr.frames, "rate": fr.rate,
               "unit_in_file": fr.units_in_file, "layout": fr.layout, "notes": list(fr.notes),
               "subject": None if subject is None else
               {"id": subject.id, "mass_kg": subject.mass_kg, "height_m": subject.height_m}}
    names = fr.names
    if fr.markerset is not None:
        summary["markers"] = fr.markerset.as_dict()
        if not args.json:
            print(fr.markerset.report(), file=sys.stderr)
    if fr.upright is not None:
        summary["orientation"] = fr.upright.as_dict()
    if args.check:
        return _finish(args, summary, f"hdys-rt bridge: {path.name}: {fr.kind}, "
                       f"{len(names)} channels{'' if fr.kind == 'table' else ' (points)'}, "
                       f"{fr.frames} frames at {fr.rate:g} Hz, unit in file "
                       f"{fr.units_in_file}, subject "
                       f"{'unknown' if subject is None else f'{subject.mass_kg:g} kg'}"
                       + (f"; {fr.upright.short()}" if fr.upright is not None
                          and fr.upright.suspicious else ""))
    if fr.kind == "table" and args.to == "zmq":
        raise HdysError(f"{path.name} holds a table ({', '.join(names[:3])}...), not markers: "
                        "serve takes point sets; replay it with --to lsl (for LabRecorder)")
    name = args.name or path.stem
    stype = args.type if fr.kind != "table" or args.type != "MoCap" else "Table"
    sink = make_sink(args.to, name, names, fr.rate if not args.rate else args.rate, fr.kind,
                     args.endpoint, stype, fr.units, subject, fr.layout, str(path),
                     args.curve_keys)
    _open(sink, args)
    stop = stop_on_signals()
    bar = _progress(args, None if args.loop else fr.frames, path.name)
    t0 = time.monotonic()
    sent, rate = _play(fr, sink, args, stop, bar)
    summary.update(sent=sent, seconds=round(time.monotonic() - t0, 3), to=sink.where,
                   stream_rate=rate, stream_names=list(names))
    return _finish(args, summary, f"hdys-rt bridge: {sent} frames of {len(names)} "
                   f"{'points' if fr.kind != 'table' else 'channels'} at {rate:g} Hz to "
                   f"{sink.where}")


def _warn_upright(upright, what: str, stats: dict) -> None:
    """Keep the orientation check of the forwarded keypoints; warn when it looks wrong."""
    if upright is None:
        return
    stats["orientation"] = upright.as_dict()
    if upright.suspicious:
        log.warning("%s: %s", what, upright.message)


def run_keypoints(args) -> int:
    from hdys_rt.bridges import keypoints as kp
    from hdys_rt.bridges.sinks import make_sink
    from hdys_rt.data.markersets import UprightWatch, check_upright, first_second

    if (args.file is None) == (args.listen is None):
        raise HdysError("give a JSON-lines FILE (or - for stdin) or --listen ENDPOINT")
    conv = kp.KeypointConverter(args.layout, args.up, args.units, args.min_score)
    stop = stop_on_signals()
    name = args.name or (Path(args.file).stem if args.file not in (None, "-") else "keypoints")
    stats = {"received": 0, "sent": 0, "malformed": 0}

    if args.file not in (None, "-"):  # a file: parse it all, replay in real time
        from hdys_rt.data.recording import Recording

        path = Path(args.file)
        if not path.exists():
            raise HdysError(f"{path} does not exist")
        with open(path, "rb") as fh:
            frames = list(kp.read_jsonl(fh, args.layout, args.min_score))
        if not frames:
            raise HdysError(f"{path}: no keypoint frames")
        xyz = np.stack([conv.convert(f) for f in frames])  # (T, P, 3) metres, Y up
        rate = kp.rate_from_times([f.t for f in frames], 30.0)
        stats["received"] = len(frames)
        rec = Recording(conv.names, rate, None, xyz, source=str(path), kind="keypoints",
                        layout=conv.out_layout)
        _warn_upright(check_upright(first_second(xyz, rate), conv.names, args.up), path.name,
                      stats)
        sink = make_sink(args.to, name, conv.names, args.rate or rate, "keypoints",
                         args.endpoint, args.type, layout=conv.out_layout, source=str(path),
                         curve=args.curve_keys)
        _open(sink, args)
        sent, rate = _play(rec, sink, args, stop, _progress(args, len(frames), path.name))
        stats["sent"] = sent
    else:  # live: stdin lines or ZeroMQ messages, forwarded as they arrive
        rate = args.rate or 30.0
        if args.file == "-":
            def source():
                for f in kp.read_jsonl(sys.stdin.buffer, args.layout, args.min_score):
                    yield f, time.monotonic()
        else:
            def bad(exc):
                stats["malformed"] += 1
                log.warning("malformed keypoint message dropped: %s", exc)

            def source():
                yield from kp.zmq_frames(args.listen, args.bind, stop, args.layout,
                                         args.min_score, on_error=bad)
        sink, watch = None, None
        end = None if args.seconds is None else time.monotonic() + args.seconds
        try:
            for item in source():
                if stop.is_set() or (end is not None and time.monotonic() > end):
                    break
                if item is None:
                    continue
                frame, t = item
                stats["received"] += 1
                xyz = conv.convert(frame)
                if sink is None:  # the layout is known from the first frame
                    sink = make_sink(args.to, name, conv.names, rate, "keypoints",
                                     args.endpoint, args.type, layout=conv.out_layout,
                                     curve=args.curve_keys)
                    _open(sink, args)
                    watch = UprightWatch(conv.names, args.up)
                if not watch.done and np.isfinite(xyz).all(1).sum() >= 3:
                    _warn_upright(watch.add(xyz, t), name, stats)
                sink.push(xyz, t, stats["sent"])
                stats["sent"] += 1
                if args.count is not None and stats["sent"] >= args.count:
                    break
        finally:
            if sink is not None:
                sink.close()
                _warn_upright(watch.finish(), name, stats)  # input shorter than 1 s
    where = f"{'LSL' if args.to == 'lsl' else 'ZeroMQ ' + args.endpoint}"
    summary = {"input": args.file or args.listen, "layout_out": conv.out_layout,
               "points": len(conv.names), "rate": rate, "to": where, **stats}
    return _finish(args, summary, f"hdys-rt bridge: {stats['sent']} keypoint frames "
                   f"({conv.out_layout}, {len(conv.names)} points) to {where}")
