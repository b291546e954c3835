"""``hdys-rt listen``: subscribe to a serve and print its estimates live."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections import deque

import numpy as np

from hdys_rt.commands._live import endpoint, positive_float, positive_int, render, stop_on_signals

log = logging.getLogger(__name__)

NAME = "listen"
SILENT_S = 3.0  # say on stderr when no estimate came within this many seconds
HELP = "subscribe to a running serve and print its estimates live (a view, text or JSON lines)"


def add_arguments(p) -> None:
    p.add_argument("--endpoint", type=endpoint, default="tcp://127.0.0.1:5560",
                   help="the serve's publish endpoint")
    p.add_argument("--stream", action="append", help="only this stream (repeatable)")
    p.add_argument("--format", choices=("view", "text", "json"),
                   help="view: live table; text: one line per estimate; json: one JSON object "
                   "per estimate (default: view on a terminal, else text)")
    p.add_argument("--count", type=positive_int, help="stop after this many estimates")
    p.add_argument("--seconds", type=positive_float, help="stop after this many seconds")
    p.add_argument("--timeout", type=positive_float,
                   help="stop when no estimate arrived for this many seconds")
    p.add_argument("--curve-keys", metavar="DIR",
                   help="CURVE client keys for a serve run with --curve-keys: DIR holds "
                   "client.key_secret and server.key (`hdys-rt keys generate`)")


def _text(est) -> str:
    parts = [f"{est.stream} seq {est.seq} lat {1e3 * est.latency:.2f} ms"]
    if est.flags:
        parts.append("flags " + ",".join(est.flag_names))
    if np.isfinite(est.novelty):
        parts.append(f"novelty {est.novelty:.2f}")
    for k, v in est.outputs.items():
        fin = v[np.isfinite(v)]
        mean = float(np.abs(fin).mean()) if fin.size else np.nan
        parts.append(f"{k}[{len(v)}] mean|x| {mean:.3f}")
    return "  ".join(parts)


def _json(est) -> str:
    out = {"stream": est.stream, "seq": est.seq, "t_src": est.t_src, "t_pub": est.t_pub,
           "latency_ms": 1e3 * est.latency, "flags": est.flag_names, "n_valid": est.n_valid,
           "missing": est.missing, "dropped": est.dropped, "stale": est.stale,
           "novelty": round(est.novelty, 6) if np.isfinite(est.novelty) else None}
    outs = {}
    for k, v in est.outputs.items():
        names = est.channels(k)
        vals = [None if not np.isfinite(x) else round(float(x), 6) for x in v]
        outs[k] = dict(zip(names, vals)) if names else vals
    out["outputs"] = outs
    return json.dumps(out)


def run(args) -> int:
    from hdys_rt.client import Subscriber

    fmt = args.format or ("view" if sys.stdout.isatty() else "text")
    stop = stop_on_signals()
    end = None if args.seconds is None else time.monotonic() + args.seconds
    n, lats, last_draw, last_rx = 0, deque(maxlen=20_000), 0.0, time.monotonic()
    streams = set()
    t_start, told = time.monotonic(), False
    with Subscriber(args.endpoint, streams=args.stream, curve=args.curve_keys) as sub:
        while not stop.is_set():
            now = time.monotonic()
            if end is not None and now >= end:
                break
            if args.timeout is not None and now - last_rx > args.timeout:
                break
            if not told and n == 0 and now - t_start > SILENT_S:
                told = True  # say so once, on stderr (stdout stays data)
                print(f"hdys-rt listen: nothing is publishing on {args.endpoint} yet"
                      + (" (connected, no estimates: is a stream being served?)"
                         if sub.wait_connected(0) else " (is `hdys-rt serve` running there? "
                         "check --endpoint)") + "; waiting", file=sys.stderr, flush=True)
            est = sub.recv(0.1)
            if est is None or est.meta is None:  # names first: every line has one shape
                continue
            last_rx = est.t_client
            n += 1
            streams.add(est.stream)
            lats.append(est.latency)
            if fmt == "json":
                print(_json(est), flush=True)
            elif fmt == "text":
                print(_text(est), flush=True)
            elif est.meta is not None and est.t_client - last_draw > 0.1:
                last_draw = est.t_client
                recent = np.asarray(lats)
                chans = {k: tuple(v["names"]) for k, v in est.meta["outputs"].items()}
                units = {k: v["unit"] for k, v in est.meta["outputs"].items()}
                status = (f"latency p50 {1e3 * np.percentile(recent, 50):.2f} ms  p99 "
                          f"{1e3 * np.percentile(recent, 99):.2f} ms   dropped {est.dropped}"
                          + (f"   novelty {est.novelty:.2f}" if np.isfinite(est.novelty)
                             else ""))
                sys.stdout.write("\x1b[H\x1b[J" + render(
                    f"hdys-rt listen {args.endpoint}  stream {est.stream}  seq {est.seq}",
                    est.outputs, chans, units, status, est.flags) + "\n")
                sys.stdout.flush()
            if args.count is not None and n >= args.count:
                break
    if fmt != "json":
        msg = f"hdys-rt listen: {n} estimates from {len(streams)} stream(s)"
        if lats:
            a = np.asarray(lats)
            msg += (f", end-to-end latency p50 {1e3 * np.percentile(a, 50):.2f} ms p99 "
                    f"{1e3 * np.percentile(a, 99):.2f} ms")
        print(msg, flush=True)
    return 0
