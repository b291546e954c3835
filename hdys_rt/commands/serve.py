"""``hdys-rt serve``: live markers in (LSL, ZeroMQ or a file replay), estimates out on ZeroMQ."""

from __future__ import annotations

import logging

from hdys_rt import representations as reps
from hdys_rt.commands._live import endpoint, positive_float, positive_int
from hdys_rt.devices import check_device
from hdys_rt.errors import HdysError

log = logging.getLogger(__name__)

NAME = "serve"
HELP = ("serve live estimates (torques, activations, sEMG, GRF): markers in from LSL, ZeroMQ "
        "or a replayed file, one estimate per frame out on ZeroMQ (and LSL with --lsl-out)")


def add_arguments(p) -> None:
    p.add_argument("--source", choices=("lsl", "zmq", "replay"), default="lsl",
                   help="where markers come from")
    g = p.add_argument_group("LSL source")
    g.add_argument("--name", action="append", metavar="NAME",
                   help="LSL stream name; repeat to serve several streams (default: the first "
                   "stream of --type)")
    g.add_argument("--type", default="MoCap", help="LSL stream type")
    g.add_argument("--up", choices=("y", "z"), default=None,
                   help="vertical axis of the LSL stream's coordinates (z is rotated to y up; "
                   "default y), or of the replayed --file (else its format's usual one)")
    g = p.add_argument_group("ZeroMQ source")
    g.add_argument("--endpoint", action="append", type=endpoint, metavar="ENDPOINT",
                   help="endpoint of a marker sender (hdys_rt.wire MARKERS frames); repeat for "
                   "several streams (default: tcp://127.0.0.1:5559)")
    g.add_argument("--bind-source", action="store_true",
                   help="bind the source endpoint instead of connecting to it")
    g = p.add_argument_group("replay source")
    g.add_argument("--file", action="append", metavar="FILE",
                   help="recording (.trc, .c3d, corpus .json, .xdf) played at its real rate, "
                   "read as `hdys-rt bridge file` reads it (marker names mapped to the trained "
                   "ones, units checked); repeat for several streams (default: the bundled gait "
                   "clip)")
    g.add_argument("--keep-unknown", action="store_true",
                   help="also replay markers the model was not trained on")
    g.add_argument("--replay-rate", type=positive_float, metavar="HZ",
                   help="resample the recording to this rate")
    g.add_argument("--loop", action="store_true", help="loop the recording")
    g = p.add_argument_group("output")
    g.add_argument("--publish", type=endpoint, metavar="ENDPOINT",
                   help="ZeroMQ endpoint the estimates are published on (bound; default: "
                   "tcp://BIND:5560)")
    g.add_argument("--lsl-out", action="store_true",
                   help="also publish each stream's estimates as an LSL outlet NAME-hdys")
    g.add_argument("--stats-json", metavar="PATH", help="write counters and stage latencies here "
                   "on exit")
    g = p.add_argument_group("security")
    g.add_argument("--bind", default="127.0.0.1", metavar="ADDR",
                   help="address the bound ZeroMQ endpoints may listen on; a non-loopback one "
                   "(e.g. 0.0.0.0) must be given here, and warns unless --curve-keys is set")
    g.add_argument("--curve-keys", metavar="DIR",
                   help="ZeroMQ CURVE encryption and authentication: the server key pair and "
                   "the allowed client keys in DIR/authorized/ (`hdys-rt keys generate DIR`)")
    g = p.add_argument_group("model and runtime")
    g.add_argument("--model", metavar="PATH", help="model (NAME.safetensors + NAME.json); "
                   "default: the bundled model")
    g.add_argument("--device", default="cpu", help="torch device")
    from hdys_rt.backends import registry
    from hdys_rt.runtime.pipeline import COARSE_MODES

    live = registry.names(on_the_fly=True)
    folder_only = [n for n in registry.names() if n not in live]
    g.add_argument("--engine", default=registry.AUTO, metavar="NAME|DIR",
                   help=f"inference engine: {', '.join(live)}, {registry.AUTO} (default: the "
                   "fastest here that fits the markers), or an engine folder from `hdys-rt "
                   f"export` (needed for {', '.join(folder_only)})")
    g.add_argument("--threads", type=positive_int, default=1, help="torch intra-op threads")
    g.add_argument("--no-mirror", action="store_true",
                   help="do not average each estimate with its mirror image's (the bundled "
                        "model asks for it: about 10 %% lower torque error beyond walking, one "
                        "more model row per frame; README)")
    g.add_argument("--input", choices=reps.POINT_SETS, default="markers",
                   help="what the streams' points are: optical markers, or skeletal keypoints "
                   "(COCO-17, H36M-17, ...; e.g. from `hdys-rt bridge keypoints`)")
    g.add_argument("--rate", type=positive_float, default=100.0, metavar="HZ",
                   help="stream rate when the stream does not state one")
    g.add_argument("--mass", type=positive_float, metavar="KG",
                   help="subject mass: also publish torques in N·m (torques_*_Nm) and GRF in N "
                        "(grf_N) beside the per-kg outputs")
    g.add_argument("--height", type=positive_float, metavar="M",
                   help="subject height (with --mass): also publish torques in %%BW·Ht")
    g.add_argument("--min-markers", type=positive_int, metavar="N",
                   help="fewer valid markers in a frame flag it too_few (default: half)")
    g.add_argument("--max-age-ms", type=positive_float, default=25.0,
                   help="do not publish an estimate this old when a newer frame waits (its "
                        "frame still enters the model; counted stale)")
    g.add_argument("--coarse", choices=COARSE_MODES, default="auto",
                   help="streams above the model rate run one model step per frame on "
                        "interleaved grids (2 at 200 Hz), each frame also on its mirror image "
                        "(a model that averages with it); when serve cannot keep up (auto) or "
                        "always, the image is not stepped and such streams run their first "
                        "grid only (the other frames get the estimate of the grid point before "
                        "them); those estimates are flagged coarse; never: full service, "
                        "whatever the load (default: auto)")
    g.add_argument("--connect-timeout", type=positive_float, default=10.0, metavar="S",
                   help="give up when a source is not found within this time")
    g.add_argument("--seconds", type=positive_float, help="stop after this many seconds")


def build_sources(args) -> list:
    """The sources named by ``args`` (validated; nothing is connected yet)."""
    if args.source == "lsl":
        from hdys_rt.streams.lsl import LslSource

        return [LslSource(name=n, stype=args.type, up=args.up or "y", default_rate=args.rate)
                for n in (args.name or [None])]
    if args.name:
        raise HdysError(f"--name is for --source lsl (got --source {args.source})")
    if args.source == "zmq":
        from hdys_rt.streams.zmq import ZmqSource

        eps = args.endpoint or ["tcp://127.0.0.1:5559"]
        return [ZmqSource(ep, bind=args.bind_source, default_rate=args.rate,
                          curve=getattr(args, "_curve", None)) for ep in eps]
    from hdys_rt.data.loader import load_file
    from hdys_rt.streams.replay import ReplaySource, demo_clip_path

    srcs = []
    for f in args.file or [demo_clip_path()]:
        rec = load_file(f, up=args.up, keep_unknown=args.keep_unknown)
        if not rec.points:
            raise HdysError(f"{f} holds a table ({', '.join(rec.names[:3])}...), not markers: "
                            "serve takes point sets (replay it with `hdys-rt bridge file` for "
                            "LabRecorder)")
        srcs.append(ReplaySource(rec, rate=args.replay_rate, loop=args.loop))
    seen = set()
    for i, s in enumerate(srcs):  # stream ids must be unique
        if s.name in seen:
            s.name = f"{s.name}-{i}"
        seen.add(s.name)
    return srcs


def _host(ep: str) -> str | None:
    return ep[6:].rsplit(":", 1)[0].strip("[]") if ep.startswith("tcp://") else None


def check_bind(args) -> str:
    """The publish endpoint; every endpoint serve binds must be loopback or on ``--bind``."""
    from hdys_rt.streams.zmq import is_loopback

    bind = args.bind.strip("[]")
    publish = args.publish or (f"tcp://[{bind}]:5560" if ":" in bind else f"tcp://{bind}:5560")
    bound = [("--publish", publish)]
    if args.source == "zmq" and args.bind_source:
        bound += [("--endpoint", ep) for ep in (args.endpoint or ["tcp://127.0.0.1:5559"])]
    for opt, ep in bound:
        host = _host(ep)
        if host is not None and not is_loopback(ep) and host != bind:
            raise HdysError(f"{opt} {ep} would listen on {host}, but --bind is {args.bind}: "
                            f"pass --bind {host} to expose it to the network")
    return publish


def start_line(server, publish: str, curve: bool) -> str:
    """One line: what is served (streams, rates, subject), where, with which engine."""
    streams = []
    for p in server.pipelines:
        src, sub = p.source, ""
        mass, height = getattr(p, "mass_kg", None), getattr(p, "height_m", None)
        if mass is None and src.subject:  # not configured yet: what it will use
            from hdys_rt.runtime.pipeline import subject_of

            mass, height = subject_of(server.options, src)
        if mass is not None:
            sub = f", subject {mass:g} kg" + (f" {height:g} m" if height else "") + (
                " (--mass)" if server.options.mass_kg is not None else " (stream metadata)")
        streams.append(f"{src.describe()} ({len(src.names)} markers at {src.rate:g} Hz{sub})")
    est = server.est
    return (f"serving {', '.join(streams)} -> {publish}{' (CURVE)' if curve else ''}; model "
            f"{est.rate:g} Hz, engine {est.engine}"
            + (", averaged with the mirror image" if est.mirror else ""))


def run(args) -> int:
    from hdys_rt.runtime.pipeline import PipelineOptions
    from hdys_rt.runtime.server import Server, load_estimators
    from hdys_rt.streams.zmq import Publisher

    if args.source != "zmq" and (args.endpoint or args.bind_source):
        raise HdysError(f"--endpoint/--bind-source are for --source zmq (got {args.source})")
    if args.source != "replay" and (args.file or args.loop or args.replay_rate):
        raise HdysError(f"--file/--loop/--replay-rate are for --source replay "
                        f"(got {args.source})")
    if args.source != "replay" and args.keep_unknown:
        raise HdysError(f"--keep-unknown is for --source replay (got {args.source}); the "
                        "markers of a live stream are served as they come")
    options = PipelineOptions(min_markers=args.min_markers, max_age_s=args.max_age_ms / 1e3,
                              mass_kg=args.mass, height_m=args.height, coarse=args.coarse)
    publish = check_bind(args)
    if args.lsl_out:
        log.warning("--lsl-out: LSL outlets listen on every network interface without "
                    "authentication (liblsl has neither); keep this machine behind a firewall")
    curve = None
    if args.curve_keys:
        from hdys_rt.security import CurveServer

        curve = args._curve = CurveServer(args.curve_keys)
    try:
        sources = build_sources(args)
        estimators = load_estimators(len(sources), args.model, check_device(args.device),
                                     args.threads, engine=args.engine, input_kind=args.input,
                                     mirror=False if args.no_mirror else None)
        log.info("engine %s (%s)", estimators[0].engine, estimators[0].engine_reason)
        sinks = [Publisher(publish, curve=curve)]
        if args.lsl_out:
            from hdys_rt.streams.lsl import LslEstimateSink

            sinks.append(LslEstimateSink())
        server = Server(sources, estimators, sinks, options)
        server.install_signal_handlers()
        log.info("publishing on %s%s", publish, " (CURVE)" if curve else "")
        try:
            server.start()
            server.wait_connected(args.connect_timeout)
            print(f"hdys-rt serve: {start_line(server, publish, curve is not None)}", flush=True)
            server.run(seconds=args.seconds)
        finally:
            server.stop()
            if args.stats_json:
                server.write_json(args.stats_json)
    finally:
        if curve is not None:
            curve.stop()
    why = f"stopped by {server.signal}" if server.signal else "done"
    print(f"hdys-rt serve: {why}: {server.summary_line()}", flush=True)
    return 0
