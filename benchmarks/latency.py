"""End-to-end latency of the live chain, three processes on one machine.

    source process : N real LSL outlets (or ZeroMQ senders) pushing the bundled real gait clip,
                     resampled to --rate Hz, on a drift-compensated clock
    serve process  : ``hdys-rt serve --source lsl|zmq`` with the model (bundled by default)
    this process   : a ZeroMQ subscriber (hdys_rt.client.Subscriber) timing every estimate

Reports per-stage latency p50/p99/max (receive, window, inference, encode, publish), the
end-to-end latency (source sample time -> estimate decoded by the subscriber), dropped frames
and CPU use of each process, for ``--streams`` 1, 4 and 16 concurrent streams or any list.
Prints a table and writes JSON. The first ``--warmup`` seconds are not measured.

Each stream count is measured twice in the same run (``--baseline relay``, the default): once
through a BARE RELAY that has serve's layout without the model (the same source classes and
acquisition threads, one loop over all streams, the same publisher and wire format, empty
outputs), the transport floor, then through ``hdys-rt serve`` at its defaults. The table
reports serve's overhead over the relay (p50, p99) beside the absolute figures.

    python benchmarks/latency.py --seconds 60 --streams 1,4,16 --json latency.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import numpy as np

STAGES = ("receive", "window", "inference", "encode", "publish")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(x) -> dict:
    x = np.asarray(x, np.float64) * 1e3
    if x.size == 0:
        return {"n": 0, "p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    p50, p99 = np.percentile(x, [50, 99])
    return {"n": int(x.size), "p50": float(p50), "p99": float(p99), "max": float(x.max())}


# --- the source process ----------------------------------------------------------------------
def run_source(args) -> None:
    """N outlets/senders in one process, one loop, drift-compensated; prints a JSON line."""
    from hdys_rt.data.loader import load_file
    from hdys_rt.streams.replay import Player, demo_clip_path

    rec = load_file(demo_clip_path())
    player = Player(rec, rate=args.rate, loop=True, seconds=args.seconds)
    names = args.names.split(",")
    stop = threading.Event()
    if args.source == "lsl":
        from hdys_rt.streams.lsl import marker_outlet

        outs = [marker_outlet(n, rec.names, player.rate) for n in names]
        for o in outs:
            o.wait_for_consumers(60)
        pushes = [lambda xyz, t, seq, o=o: o.push_sample(xyz.reshape(-1), t) for o in outs]
    else:
        from hdys_rt.client import MarkerSender

        outs = [MarkerSender(rec.names, player.rate, ep, src=n)
                for n, ep in zip(names, args.endpoints.split(","))]
        for o in outs:
            o.wait_for_subscriber(60)
        pushes = [lambda xyz, t, seq, o=o: o.send(xyz, t, seq) for o in outs]
    print("ready", flush=True)
    t0, c0 = time.monotonic(), os.times()
    for item in player.frames(stop):
        if item is not None:
            seq, xyz, t = item
            for push in pushes:
                push(xyz, t, seq)
    c1, wall = os.times(), time.monotonic() - t0
    cpu = 100.0 * (c1.user - c0.user + c1.system - c0.system) / wall
    print(json.dumps({"frames": player.emitted, "cpu_percent": cpu}), flush=True)


# --- the bare relay (transport floor) -------------------------------------------------------
def run_relay(args) -> None:
    """serve's layout without the model: the project's own sources (acquisition thread each,
    ring), one loop over all streams woken by any frame, the project's publisher; every frame
    is published at once with empty outputs. Runs until SIGINT/SIGTERM or ``--seconds``."""
    import signal

    from hdys_rt import wire
    from hdys_rt.streams.zmq import Publisher

    names = args.names.split(",")
    if args.source == "lsl":
        from hdys_rt.streams.lsl import LslSource

        sources = [LslSource(name=n) for n in names]
    else:
        from hdys_rt.streams.zmq import ZmqSource

        sources = [ZmqSource(ep, name=n) for n, ep in zip(names, args.endpoints.split(","))]
    pub = Publisher(args.publish)
    wake, stop = threading.Event(), threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    state = [[0, 0, None] for _ in sources]  # layout id, next frame, buffer
    for src in sources:
        src.wake = wake
        src.start()
    t_start = time.monotonic()
    end = t_start + args.seconds
    while not stop.is_set() and time.monotonic() < end:
        wake.wait(0.1)
        wake.clear()
        for src, st in zip(sources, state):
            lid, base, count = src.layout_info()
            if lid != st[0]:
                st[0], st[1] = lid, 0
                st[2] = np.empty((len(src.names), 3), np.float32)
                pub.set_meta(src.name, wire.encode_meta(src.name, lid, src.names, src.rate,
                                                        {}, {}, {"relay": True}))
            while st[1] < count:
                info = src.read(st[1], lid, st[2])
                st[1] += 1
                if info is None:
                    continue
                t_src, t_recv, seq, n_valid, _ = info
                t = time.monotonic()
                pub.publish(src.name, wire.encode_estimate(
                    src.name, lid, seq, t_src, t_recv, t, {}, 0, n_valid, [], 0, 0,
                    {"receive": t_recv - t_src, "window": t - t_recv, "inference": 0.0}))
    for src in sources:
        src.stop()
    pub.close()
    c1 = os.times()
    print(json.dumps({"cpu_percent": 100.0 * (c1.user + c1.system) / max(1e-9, time.monotonic()
                                                                     - t_start)}), flush=True)


# --- one measurement -------------------------------------------------------------------------
def measure(args, n_streams: int, relay: bool = False) -> dict:
    from hdys_rt.client import Subscriber
    from hdys_rt.wire import FLAGS

    tag = uuid.uuid4().hex[:6]
    names = [f"bench-{tag}-{i}" for i in range(n_streams)]
    pub = f"tcp://127.0.0.1:{_free_port()}"
    total_s = args.warmup + args.seconds
    stats_path = Path(tempfile.mkdtemp()) / "serve.json"
    serve = [sys.executable, "-m", "hdys_rt.cli", "serve", "--source", args.source,
             "--publish", pub, "--stats-json", str(stats_path), "--threads", str(args.threads),
             "--device", args.device, "--seconds", str(total_s + 15), "--connect-timeout", "60"]
    relay_cmd = [sys.executable, __file__, "--_relay", "--source", args.source, "--publish",
                 pub, "--seconds", str(total_s + 15), "--names", ",".join(names)]
    src_cmd = [sys.executable, __file__, "--_source", "--source", args.source, "--rate",
               str(args.rate), "--seconds", str(total_s), "--names", ",".join(names)]
    if args.source == "lsl":
        for n in names:
            serve += ["--name", n]
    else:
        eps = [f"tcp://127.0.0.1:{_free_port()}" for _ in names]
        for ep in eps:
            serve += ["--endpoint", ep]
        src_cmd += ["--endpoints", ",".join(eps)]
        relay_cmd += ["--endpoints", ",".join(eps)]
    if args.model:
        serve += ["--model", args.model]
    if args.engine:
        serve += ["--engine", args.engine]
    if args.coarse:
        serve += ["--coarse", args.coarse]
    if args.no_mirror:
        serve += ["--no-mirror"]
    sub = Subscriber(pub, rcvhwm=100_000)
    # logs go to files: a pipe nobody reads during the run would block the process when full
    serve_log = open(stats_path.with_name("serve.log"), "w+")
    source_log = open(stats_path.with_name("source.log"), "w+")
    server = subprocess.Popen(relay_cmd if relay else serve, stdout=subprocess.PIPE,
                              stderr=serve_log, text=True)
    source = subprocess.Popen(src_cmd, stdout=subprocess.PIPE, stderr=source_log, text=True)
    recs = []  # (stream, seq, t_src, t_pub, t_client, receive, window, inference, flags)
    c0 = os.times()
    t_first = None
    try:
        while source.poll() is None:
            est = sub.recv(0.2)
            if est is None:
                continue
            if t_first is None:
                t_first = est.t_client
            if est.t_client - t_first < args.warmup:
                continue
            lat = est.lat
            recs.append((est.stream, est.seq, est.t_src, est.t_pub, est.t_client,
                         lat.get("receive", np.nan), lat.get("window", np.nan),
                         lat.get("inference", np.nan), est.flags, est.dropped))
        # drain what is still in flight
        while (est := sub.recv(1.0)) is not None:
            lat = est.lat
            recs.append((est.stream, est.seq, est.t_src, est.t_pub, est.t_client,
                         lat.get("receive", np.nan), lat.get("window", np.nan),
                         lat.get("inference", np.nan), est.flags, est.dropped))
    finally:
        c1 = os.times()
        server.send_signal(2)
        try:
            s_out, _ = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            s_out, _ = server.communicate()
        src_out, _ = source.communicate(timeout=30)
        sub.close()
        serve_log.seek(0)
        s_err = serve_log.read()
    if relay:
        if not recs:
            raise SystemExit(f"the relay published nothing:\n{s_err[-3000:]}")
        stats = None
        relay_cpu = json.loads(s_out.strip().splitlines()[-1])["cpu_percent"]
    elif not stats_path.exists():
        raise SystemExit(f"serve failed (logs in {stats_path.parent}):\n{s_err[-3000:]}")
    else:
        stats = json.loads(stats_path.read_text())
    src_info = json.loads(src_out.strip().splitlines()[-1]) if src_out.strip() else {}
    arr = np.array([r[2:] for r in recs], dtype=np.float64) if recs else np.zeros((0, 8))
    e2e = arr[:, 2] - arr[:, 0]
    out_hop = arr[:, 2] - arr[:, 1]
    # expected frames in the measured window: per stream, seq span of what arrived
    expected = 0
    for name in {r[0] for r in recs}:
        seqs = [r[1] for r in recs if r[0] == name]
        expected += max(seqs) - min(seqs) + 1
    srv_stages = {}
    for k in ("encode", "publish", "total"):
        if stats is None:
            srv_stages[k] = _pct([])
            continue
        vals = [s["stages_ms"][k] for s in stats["streams"]]
        srv_stages[k] = {"p50": float(np.mean([v["p50"] for v in vals])),
                         "p99": float(np.max([v["p99"] for v in vals])),
                         "max": float(np.max([v["max"] for v in vals]))}
    wall = max(1e-9, (arr[-1, 2] - arr[0, 2]) if len(arr) else 1e-9)
    result = {
        "what": "relay" if relay else "serve",
        "streams": n_streams, "rate_hz": args.rate, "source": args.source,
        "measured_s": args.seconds, "estimates": len(recs), "expected": expected,
        "missing_in_window": expected - len(recs),
        "server_dropped_total": stats["totals"]["dropped"] if stats else 0,
        "server_stale_unpublished": (stats["totals"].get("stale_unpublished", 0)
                                     if stats else 0),
        "server_received_total": stats["totals"]["received"] if stats else len(recs),
        # estimates of an earlier grid point, serve being overloaded (wire flag coarse)
        "coarse_in_window": int(sum(1 for r in recs if r[8] & FLAGS["coarse"])),
        "server_coarse_total": stats["totals"].get("coarse", 0) if stats else 0,
        "overload": stats.get("overload") if stats else None,
        "stages_ms": {"receive": _pct(arr[:, 3]), "window": _pct(arr[:, 4]),
                      "inference": _pct(arr[:, 5]),
                      "encode": srv_stages["encode"], "publish": srv_stages["publish"],
                      "out_hop": _pct(out_hop), "end_to_end": _pct(e2e)},
        "source_frames_per_stream": src_info.get("frames"),
        "cpu_percent": {"serve": stats["cpu"]["cpu_percent"] if stats else relay_cpu,
                        "source": src_info.get("cpu_percent", float("nan")),
                        "subscriber": 100.0 * (c1.user - c0.user + c1.system - c0.system)
                        / max(1e-9, wall + args.warmup)},
        "serve_summary": s_out.strip().splitlines()[-1] if s_out.strip() else s_err[-500:],
    }
    return result


def isolated_step(args, steps: int) -> dict:
    """The inference floor in this run: serve's own estimator (the batched estimator that
    ``serve`` loads, same engine choice, 1 thread) stepping the bundled clip in this process, no
    transport. Timed twice: back to back (caches and clock hot), and paced at the stream's rate
    (a step every 1/rate s, as serve sees frames: the core idles between steps); p50/p99 ms."""
    from hdys_rt.data.loader import load_file
    from hdys_rt.runtime.server import load_estimator
    from hdys_rt.streams.replay import demo_clip_path

    rec = load_file(demo_clip_path()).resampled(args.rate)
    est = load_estimator(args.model, device=args.device, threads=args.threads,
                         engine=args.engine or "auto", mirror=False if args.no_mirror else None)
    slots = est.alloc(1)
    for i in range(50):
        est.step(slots, [rec.xyz[i % rec.frames]])

    def timed(n: int, period: float) -> list[float]:
        times, t_next = [], time.perf_counter()
        for i in range(n):
            if period:
                t_next += period
                while (d := t_next - time.perf_counter()) > 0:
                    time.sleep(d)
            t0 = time.perf_counter()
            est.step(slots, [rec.xyz[i % rec.frames]])
            times.append(time.perf_counter() - t0)
        return times

    hot = timed(steps, 0.0)
    paced = timed(min(steps, int(5 * args.rate)), 1.0 / args.rate)
    return {"engine": str(est.engine), **_pct(hot), "paced": _pct(paced)}


def comparison(results: list[dict], step: dict | None) -> str:
    """serve against the relay of the same stream count, and inference against the step."""
    lines = []
    by = {(r["what"], r["streams"]): r for r in results}
    for n in sorted({r["streams"] for r in results}):
        srv, rel = by.get(("serve", n)), by.get(("relay", n))
        if srv is None:
            continue
        e = srv["stages_ms"]["end_to_end"]
        line = f"{n:>3} stream(s): serve e2e p50 {e['p50']:.3f} ms, p99 {e['p99']:.3f} ms"
        if rel is not None:
            r = rel["stages_ms"]["end_to_end"]
            line += (f"; relay p50 {r['p50']:.3f}, p99 {r['p99']:.3f}; serve adds "
                     f"{e['p50'] - r['p50']:+.3f} ms p50, {e['p99'] - r['p99']:+.3f} ms p99")
        if step is not None and step["n"]:
            inf = srv["stages_ms"]["inference"]
            pc = step["paced"]
            line += (f"; inference in serve p50 {inf['p50']:.3f} ms = "
                     f"{inf['p50'] / step['p50']:.2f}x the isolated step back to back "
                     f"({step['p50']:.3f}), {inf['p50'] / pc['p50']:.2f}x paced at the "
                     f"stream rate ({pc['p50']:.3f})")
        cpu = srv["cpu_percent"]["serve"]
        ov = srv.get("overload") or {}
        line += (f"; {srv['missing_in_window']} missing, server dropped "
                 f"{srv['server_dropped_total']}, stale unpublished "
                 f"{srv['server_stale_unpublished']}, coarse {srv.get('coarse_in_window', 0)} "
                 f"of {srv['estimates']} (overload episodes {ov.get('coarse_episodes', 0)}, "
                 f"--coarse {ov.get('coarse_mode', '?')}); serve CPU {cpu:.0f} % "
                 f"({cpu / n:.1f} % per stream)")
        lines.append(line)
    if step is not None:
        pc = step["paced"]
        lines.append(f"isolated step ({step['engine']}, serve's batched estimator, 1 thread): "
                     f"back to back p50 {step['p50']:.3f} ms, p99 {step['p99']:.3f} ms; paced "
                     f"at {args_rate(results)} Hz p50 {pc['p50']:.3f} ms, p99 {pc['p99']:.3f} ms")
    return "\n".join(lines)


def args_rate(results: list[dict]) -> str:
    return f"{results[0]['rate_hz']:g}" if results else "?"


def table(results: list[dict]) -> str:
    rows = ["receive", "window", "inference", "encode", "publish", "out_hop", "end_to_end"]
    head = f"{'stage (ms)':<12}" + "".join(
        f"| {r['what']:<5} {r['streams']:>2} str: p50    p99    max " for r in results)
    lines = [head, "-" * len(head)]
    for k in rows:
        line = f"{k:<12}"
        for r in results:
            s = r["stages_ms"][k]
            line += f"| {'':>11}{s['p50']:6.3f} {s['p99']:6.3f} {s['max']:7.2f} "
        lines.append(line)
    for label, fn in (("estimates", lambda r: f"{r['estimates']}/{r['expected']}"),
                      ("dropped", lambda r: f"{r['missing_in_window']} (server total "
                       f"{r['server_dropped_total']})"),
                      ("coarse", lambda r: f"{r.get('coarse_in_window', 0)}"),
                      ("cpu % serve", lambda r: f"{r['cpu_percent']['serve']:.0f}"),
                      ("cpu % src/sub", lambda r: f"{r['cpu_percent']['source']:.0f} / "
                       f"{r['cpu_percent']['subscriber']:.0f}")):
        lines.append(f"{label:<12}" + "".join(f"| {fn(r):>33} " for r in results))
    return "\n".join(lines)


def main(argv=None) -> int:
    from hdys_rt.runtime.pipeline import COARSE_MODES

    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seconds", type=float, default=60.0, help="measured duration per run")
    p.add_argument("--warmup", type=float, default=3.0, help="seconds not measured")
    p.add_argument("--rate", type=float, default=200.0, help="stream rate, Hz")
    p.add_argument("--streams", default="1", help="comma list of concurrent stream counts")
    p.add_argument("--source", choices=("lsl", "zmq"), default="lsl")
    p.add_argument("--model", help="model path (default: bundled)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--engine", help="serve --engine (default: serve's default)")
    p.add_argument("--threads", type=int, default=1, help="torch threads in serve")
    p.add_argument("--coarse", choices=COARSE_MODES,
                   help="serve --coarse (default: serve's default)")
    p.add_argument("--no-mirror", action="store_true",
                   help="serve --no-mirror (and the isolated step without the mirror image)")
    p.add_argument("--json", default="latency.json", help="write results here")
    p.add_argument("--baseline", choices=("relay", "none"), default="relay",
                   help="also measure the bare relay (transport floor) per stream count")
    p.add_argument("--step-steps", type=int, default=3000,
                   help="isolated-step timings in this run (0: skip)")
    p.add_argument("--_source", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--_relay", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--publish", help=argparse.SUPPRESS)
    p.add_argument("--names", help=argparse.SUPPRESS)
    p.add_argument("--endpoints", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._source:
        run_source(args)
        return 0
    if args._relay:
        run_relay(args)
        return 0
    results = []
    for n in [int(x) for x in args.streams.split(",")]:
        for relay in ((True, False) if args.baseline == "relay" else (False,)):
            print(f"measuring {'the relay' if relay else 'serve'} with {n} stream(s) at "
                  f"{args.rate:g} Hz for {args.seconds:g} s ...", file=sys.stderr, flush=True)
            results.append(measure(args, n, relay=relay))
    step = isolated_step(args, args.step_steps) if args.step_steps else None
    machine = {"host": platform.node(), "cpu": platform.processor() or platform.machine(),
               "cores": os.cpu_count(), "python": platform.python_version(),
               "device": args.device}
    print(f"hdys-rt latency: {args.source} in -> serve -> ZeroMQ subscriber, {args.rate:g} Hz, "
          f"{args.seconds:g} s each, machine {machine}")
    print(table(results))
    print(comparison(results, step))
    Path(args.json).write_text(json.dumps({"machine": machine, "args": vars(args),
                                           "isolated_step_ms": step, "results": results},
                                          indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
