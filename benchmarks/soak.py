"""Soak: ``hdys-rt serve`` for minutes at 200 Hz with faults injected on a schedule.

    sender (a thread here) : ZeroMQ MarkerSender pushing the bundled real gait clip at --rate Hz
                             on a drift-compensated clock, and injecting one fault every
                             --fault-every seconds, in this cycle:
                             vanish (sender closed 1.5 s, then back), malformed + oversized burst,
                             NaN/inf frames (all markers missing, then some invalid), clock jump
                             (+30 s), stall + burst (0.5 s of buffered frames at once),
                             subscriber churn (12 subscribers join and leave), clock jump back
    serve (a process)      : ``hdys-rt serve --source zmq`` with the bundled model
    subscriber (here)      : times every estimate (sample sent -> estimate decoded)

Reports serve's RSS (after warm-up and at the end), end-to-end latency p99 per window (a minute,
or 10 s for runs under 3 minutes), frames in / out / dropped / flagged, and whether every input
frame is accounted for; prints PASS/FAIL per criterion and writes JSON.

    python benchmarks/soak.py                 # 10 minutes
    python benchmarks/soak.py --minutes 1     # CI-sized
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import msgpack
import numpy as np

FAULTS = ("vanish", "malformed", "nan", "jump_forward", "burst", "churn", "jump_back")
RING = 1 << 18  # send times by seq (longer than any soak at 200 Hz... modulo)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return float("nan")


class Sender(threading.Thread):
    """200 Hz markers with faults; owns its ZeroMQ socket (sockets are not thread-safe)."""

    def __init__(self, args, endpoint: str, pub: str, log):
        super().__init__(daemon=True)
        from hdys_rt.data.loader import load_file
        from hdys_rt.streams.replay import demo_clip_path

        self.args, self.endpoint, self.pub, self.log = args, endpoint, pub, log
        self.rec = load_file(demo_clip_path()).resampled(args.rate)
        self.sent_at = np.full(RING, np.nan)  # true send time (monotonic) of seq % RING
        self.c = {"valid": 0, "malformed": 0, "oversized": 0, "nan_frames": 0,
                  "invalid_frames": 0, "burst_frames": 0, "vanished_s": 0.0, "faults": 0}
        self.fault_log: list[tuple[float, str]] = []
        self.churn = {"visitors": 0, "served": 0}
        self.done = threading.Event()
        self.stop = threading.Event()
        self.sender = None
        self.last_t = -np.inf

    def _open(self):
        from hdys_rt.client import MarkerSender

        self.sender = MarkerSender(self.rec.names, self.args.rate, self.endpoint, src="soak")
        if not self.sender.wait_for_subscriber(60):
            raise SystemExit("serve did not subscribe to the marker endpoint within 60 s")

    def _send(self, seq: int, t_src: float, xyz) -> None:
        if 0.0 <= self.last_t - t_src < 1.0:  # re-anchored after a stall: keep time increasing
            t_src = self.last_t + 1e-4
        self.last_t = t_src
        self.sender.send(xyz, t=t_src, seq=seq)
        self.sent_at[seq % RING] = time.monotonic()
        self.c["valid"] += 1

    def _churn(self) -> None:
        from hdys_rt.client import Subscriber

        def visit():
            with Subscriber(self.pub) as sub:
                n = sum(1 for _ in sub.frames(timeout=5, count=5))
            self.churn["visitors"] += 1
            self.churn["served"] += n == 5

        ts = [threading.Thread(target=visit, daemon=True) for _ in range(12)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(20)

    def run(self) -> None:
        try:
            self._run()
        finally:
            if self.sender is not None:
                self.sender.close()
            self.done.set()

    def _run(self) -> None:
        a = self.args
        self._open()
        rate, P = a.rate, len(self.rec.names)
        t_start = time.monotonic()
        end = t_start + 60.0 * a.minutes
        period = 1.0 / rate
        k, seq, offset = 0, 0, 0.0     # schedule index, frame counter, source-clock offset
        next_fault, fault_i, nan_left = t_start + a.fault_every, 0, 0
        while not self.stop.is_set():
            now = time.monotonic()
            if now >= end:
                break
            due = t_start + k * period
            if due > now:
                time.sleep(min(due - now, 0.01))
                continue
            if now - due > 0.5:  # far behind (machine stalled): re-anchor, do not burst
                k = int((now - t_start) / period)
                continue
            if now >= next_fault:
                fault = FAULTS[fault_i % len(FAULTS)]
                fault_i += 1
                next_fault += a.fault_every
                self.c["faults"] += 1
                self.fault_log.append((round(now - t_start, 2), fault))
                self.log(f"{now - t_start:6.1f} s  fault: {fault}")
                if fault == "vanish":
                    self.sender.close()
                    time.sleep(1.5)
                    self._open()
                    self.c["vanished_s"] += time.monotonic() - now
                    k = int((time.monotonic() - t_start) / period)
                    continue
                if fault == "malformed":
                    for i in range(50):
                        self.sender.send_raw(msgpack.packb({"v": 1, "type": "markers",
                                                            "seq": "x", "t": i}))
                        self.c["malformed"] += 1
                    for _ in range(5):
                        self.sender.send_raw(b"\0" * (70 * 1024))
                        self.c["oversized"] += 1
                elif fault == "nan":
                    nan_left = 80
                elif fault == "jump_forward":
                    offset += 30.0
                elif fault == "jump_back":
                    offset -= 30.0
                elif fault == "burst":
                    time.sleep(0.5)                       # the source stalls, then flushes
                    n_burst = int(0.5 * rate)
                    t_last = self.last_t
                    for j in range(n_burst):  # the stalled frames, with their own times
                        self._send(seq, t_last + (j + 1) * period,
                                   self.rec.xyz[seq % self.rec.frames])
                        seq += 1
                    self.c["burst_frames"] += n_burst
                    k = int((time.monotonic() - t_start) / period)
                    continue
                elif fault == "churn":
                    threading.Thread(target=self._churn, daemon=True).start()
            xyz = self.rec.xyz[seq % self.rec.frames]
            if nan_left:
                xyz = xyz.copy()
                if nan_left > 40:
                    xyz[:] = np.nan                        # every marker missing
                    self.c["nan_frames"] += 1
                else:
                    xyz[: P // 4] = np.inf                 # a quarter invalid
                    self.c["invalid_frames"] += 1
                nan_left -= 1
            self._send(seq, due + offset, xyz)
            seq += 1
            k += 1


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10.0, help="soak duration")
    p.add_argument("--rate", type=float, default=200.0, help="stream rate, Hz")
    p.add_argument("--fault-every", type=float, default=5.0, metavar="S",
                   help="seconds between injected faults (cycle: " + ", ".join(FAULTS) + ")")
    p.add_argument("--warmup", type=float, metavar="S",
                   help="seconds before the RSS baseline (default: 20, or 15 under 3 minutes)")
    p.add_argument("--rss-limit-mb", type=float, default=5.0,
                   help="PASS when serve's RSS grows at most this much after warm-up")
    p.add_argument("--model", help="model path (default: bundled)")
    p.add_argument("--engine", default="auto", help="serve --engine")
    p.add_argument("--json", default="soak.json", help="write results here")
    args = p.parse_args(argv)
    warmup = args.warmup if args.warmup is not None else (15.0 if args.minutes < 3 else 20.0)
    window = 60.0 if args.minutes >= 3 else 10.0

    ep, pub = f"tcp://127.0.0.1:{_free_port()}", f"tcp://127.0.0.1:{_free_port()}"
    tmp = Path(tempfile.mkdtemp(prefix="hdys-soak-"))
    stats_path = tmp / "serve.json"
    serve = [sys.executable, "-m", "hdys_rt.cli", "serve", "--source", "zmq", "--endpoint", ep,
             "--publish", pub, "--stats-json", str(stats_path), "--engine", args.engine,
             "--connect-timeout", "120"]
    if args.model:
        serve += ["--model", args.model]
    log = lambda msg: print(msg, file=sys.stderr, flush=True)  # noqa: E731
    log(f"soak: {args.minutes:g} min at {args.rate:g} Hz, a fault every {args.fault_every:g} s; "
        f"serve logs in {tmp}")

    from hdys_rt.client import Subscriber

    sub = Subscriber(pub, rcvhwm=1_000_000)
    serve_log = open(tmp / "serve.log", "w")
    proc = subprocess.Popen(serve, stdout=serve_log, stderr=subprocess.STDOUT)
    sender = Sender(args, ep, pub, log)
    if not sub.wait_connected(180):
        proc.kill()
        raise SystemExit(f"could not connect to serve's {pub} within 180 s; see {tmp}")
    time.sleep(0.2)  # the subscription reaches serve
    recs = []   # (t_client - t0, e2e latency s, flags)
    rss = []    # (t - t0, MB)
    seqs_seen = 0
    try:
        sender.start()
        t0 = time.monotonic()
        next_rss = t0
        while True:
            now = time.monotonic()
            if now >= next_rss:
                rss.append((now - t0, rss_mb(proc.pid)))
                next_rss += 1.0
            if sender.done.is_set():
                break
            if proc.poll() is not None:
                raise SystemExit(f"serve exited early (code {proc.returncode}); see {tmp}")
            est = sub.recv(0.1)
            if est is not None:
                sent = sender.sent_at[est.seq % RING]
                recs.append((est.t_client - t0, est.t_client - sent, est.flags))
                seqs_seen += 1
        while (est := sub.recv(2.0)) is not None:  # drain
            sent = sender.sent_at[est.seq % RING]
            recs.append((est.t_client - t0, est.t_client - sent, est.flags))
        rss.append((time.monotonic() - t0, rss_mb(proc.pid)))
    finally:
        sender.stop.set()
        sender.join(10)
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
        sub.close()
        serve_log.close()
    if not stats_path.exists():
        raise SystemExit(f"serve wrote no stats; log: {tmp / 'serve.log'}")
    stats = json.loads(stats_path.read_text())
    acc = stats["accounting"]
    src = stats["streams"][0]["source"]
    c = sender.c

    # latency per window (after warm-up); "steady" leaves out the second after each stall+burst
    # fault, whose frames wait in a deliberate backlog (bounded by serve's --max-age-ms)
    arr = np.array(recs, dtype=np.float64) if recs else np.zeros((0, 3))
    bursts = [t for t, f in sender.fault_log if f == "burst"]
    steady = np.ones(len(arr), bool)
    for tb in bursts:
        steady &= ~((arr[:, 0] >= tb) & (arr[:, 0] < tb + 1.5))
    windows = []
    t_end = arr[-1, 0] if len(arr) else 0.0
    w0 = warmup
    while w0 < t_end - 0.5 * window:
        m = (arr[:, 0] >= w0) & (arr[:, 0] < w0 + window)
        lat, st = arr[m, 1] * 1e3, arr[m & steady, 1] * 1e3
        lat, st = lat[np.isfinite(lat)], st[np.isfinite(st)]
        if st.size:
            windows.append({"from_s": round(w0, 1), "n": int(lat.size),
                            "p50_ms": float(np.percentile(st, 50)),
                            "p99_ms": float(np.percentile(st, 99)),
                            "p99_all_ms": float(np.percentile(lat, 99)),
                            "max_ms": float(lat.max())})
        w0 += window
    rss_arr = np.array(rss)
    after = rss_arr[rss_arr[:, 0] >= warmup, 1]
    rss_base = float(np.median(after[:5])) if after.size else float("nan")
    rss_end = float(np.median(after[-5:])) if after.size else float("nan")
    flagged = int(sum(1 for r in recs if int(r[2]) & ~16))
    out_sub = len(recs)

    sent_total = c["valid"] + c["malformed"] + c["oversized"]
    crit = {}
    crit["rss"] = (rss_end - rss_base <= args.rss_limit_mb,
                   f"serve RSS {rss_base:.1f} MB after warm-up -> {rss_end:.1f} MB at the end "
                   f"(growth {rss_end - rss_base:+.1f} MB, limit {args.rss_limit_mb:g})")
    p99s = [w["p99_ms"] for w in windows]
    stable = bool(p99s) and max(p99s) <= 2.0 * float(np.median(p99s)) + 2.0 \
        and p99s[-1] <= 2.0 * p99s[0] + 2.0
    crit["p99_stable"] = (stable, "steady p99 per window (ms): " + ", ".join(f"{x:.2f}" for x in p99s)
                          + " (stable: max <= 2 x median + 2 ms, last <= 2 x first + 2 ms)")
    frames_ok = (c["valid"] == acc["received"] + acc["skipped"] + acc["out_of_order"]
                 and src["malformed"] == c["malformed"] and src["oversized"] == c["oversized"]
                 and acc["unaccounted"] == 0 and acc["pending"] == 0
                 and out_sub == acc["processed"])
    crit["accounted"] = (frames_ok,
                         f"sent {sent_total} messages ({c['valid']} frames, {c['malformed']} "
                         f"malformed, {c['oversized']} oversized); serve: {acc['received']} "
                         f"received + {acc['skipped']} skipped + {acc['out_of_order']} "
                         f"out-of-order = {acc['received'] + acc['skipped'] + acc['out_of_order']}"
                         f", {src['malformed']} malformed, {src['oversized']} oversized; "
                         f"received = {acc['processed']} out + {acc['dropped']} dropped + "
                         f"{acc['pending']} pending; subscriber got {out_sub}")
    crit["served_after_faults"] = (out_sub > 0 and proc.returncode == 0
                                   and sender.churn["served"] == sender.churn["visitors"],
                                   f"{sender.churn['served']}/{sender.churn['visitors']} churned "
                                   f"subscribers served; serve exit code {proc.returncode}")
    ok = all(v[0] for v in crit.values()) and proc.returncode == 0

    print(f"hdys-rt soak: {args.minutes:g} min at {args.rate:g} Hz, {c['faults']} faults "
          f"({', '.join(f'{t:g}s {f}' for t, f in sender.fault_log[:len(FAULTS)])}"
          f"{', ...' if len(sender.fault_log) > len(FAULTS) else ''})")
    print(f"frames: in {acc['received']} (arrived {acc['arrived']}), out {acc['processed']}, "
          f"dropped {acc['dropped']}, flagged {flagged}, out-of-order {acc['out_of_order']}, "
          f"rejected {acc['rejected']}, skipped {acc['skipped']}, resyncs {src['resyncs']}")
    print("end-to-end latency (sample sent -> estimate decoded); p50/p99 steady = without the "
          "1.5 s after each stall+burst")
    print(f"{'window':>8} {'n':>6} {'p50 ms':>8} {'p99 ms':>8} {'p99 all':>8} {'max ms':>8}")
    for w in windows:
        print(f"{w['from_s']:>7.0f}s {w['n']:>6} {w['p50_ms']:>8.2f} {w['p99_ms']:>8.2f} "
              f"{w['p99_all_ms']:>8.2f} {w['max_ms']:>8.2f}")
    for name, (passed, text) in crit.items():
        print(f"{'PASS' if passed else 'FAIL'}  {name}: {text}")
    print(f"{'PASS' if ok else 'FAIL'}: soak")
    machine = {"host": platform.node(), "cpu": platform.processor() or platform.machine(),
               "cores": os.cpu_count(), "python": platform.python_version()}
    Path(args.json).write_text(json.dumps({
        "machine": machine, "args": vars(args), "pass": ok,
        "criteria": {k: {"pass": v[0], "detail": v[1]} for k, v in crit.items()},
        "sent": c, "faults": sender.fault_log, "churn": sender.churn,
        "rss_mb": {"after_warmup": rss_base, "end": rss_end, "samples": rss},
        "latency_windows": windows, "window_s": window, "warmup_s": warmup,
        "serve": {"accounting": acc, "totals": stats["totals"], "source": src,
                  "server_latency_ms": stats["server_latency_ms"], "cpu": stats["cpu"]},
        "subscriber": {"estimates": out_sub, "flagged": flagged},
    }, indent=1, default=float))
    print(f"wrote {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
