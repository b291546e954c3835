"""Load: a flood faster than real time into a real ``hdys-rt serve`` process (bounded memory,
counted drops, service continues) and many subscribers joining and leaving."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import zmq
from relhelpers import assert_accounted

from hdys_rt.client import MarkerSender, Subscriber
from hdys_rt.streams.zmq import ZMQ_MAXMSGSIZE, ZmqSource

CLI = [sys.executable, "-m", "hdys_rt.cli"]


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def test_source_socket_is_bounded(endpoint):
    src = ZmqSource(endpoint())
    assert src._connect()
    try:
        assert src._sock.getsockopt(zmq.RCVHWM) == 1000
        assert src._sock.getsockopt(zmq.MAXMSGSIZE) == ZMQ_MAXMSGSIZE
    finally:
        src._close()


def test_flood_faster_than_real_time(model_path, gait, endpoint, tmp_path):
    ep, pub = endpoint(), endpoint()
    stats = tmp_path / "stats.json"
    n_flood, n_tail = 40_000, 20
    with MarkerSender(gait.names, 200.0, ep) as sender:
        proc = subprocess.Popen(CLI + ["serve", "--source", "zmq", "--endpoint", ep, "--model",
                                       model_path, "--publish", pub, "--stats-json", str(stats),
                                       "--connect-timeout", "60"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            assert sender.wait_for_subscriber(60), "serve did not subscribe"
            t0, seq = 1000.0, 0

            def send(k, pause=0.0):
                nonlocal seq
                for _ in range(k):
                    sender.send(gait.xyz[seq % gait.frames], t=t0 + seq * 0.005, seq=seq)
                    seq += 1
                    if pause:
                        time.sleep(pause)

            send(200, 0.003)                    # warm up at about real time
            time.sleep(1.0)
            rss0 = rss_mb(proc.pid)
            send(n_flood)                       # ~20x real time and more, as fast as we can
            rss1 = rss_mb(proc.pid)
            with Subscriber(pub) as sub:        # service continues: a new subscriber is served
                assert sub.wait_connected(60)
                send(n_tail, 0.02)
                last = next((e.seq for e in sub.frames(timeout=60) if e.seq == seq - 1), None)
            rss2 = rss_mb(proc.pid)
            proc.send_signal(signal.SIGTERM)
            out, err = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    assert last == seq - 1
    summary = json.loads(stats.read_text())
    acc, src = summary["accounting"], summary["streams"][0]["source"]
    total = 200 + n_flood + n_tail
    assert acc["unaccounted"] == 0 and acc["pending"] == 0, acc
    # every frame sent reached serve, or is counted as skipped (lost in a full ZeroMQ queue)
    assert acc["received"] + acc["skipped"] == total, (acc, src)
    assert acc["arrived"] == acc["received"] and src["malformed"] == 0
    assert acc["dropped"] > 0 and acc["processed"] + acc["dropped"] == acc["received"]
    assert "every frame accounted for" in out
    # bounded queues: the flood (~25 MB of frames) leaves no trace in serve's memory
    print(f"flood: {acc}; serve RSS {rss0:.1f} -> {rss1:.1f} -> {rss2:.1f} MB")
    assert rss1 - rss0 < 20 and rss2 - rss0 < 20, (rss0, rss1, rss2)


def test_many_subscribers_joining_and_leaving(running, gait, endpoint):
    ep = endpoint()
    n_frames = 600
    done = threading.Event()
    with MarkerSender(gait.names, 200.0, ep) as sender:
        with running([ZmqSource(ep)]) as r:
            assert sender.wait_for_subscriber(20)

            def produce():
                for i in range(n_frames):
                    sender.send(gait.xyz[i % gait.frames], t=500.0 + i * 0.005, seq=i)
                    time.sleep(0.005)
                done.set()

            joins0 = r.publisher.subscriptions
            threading.Thread(target=produce, daemon=True).start()
            results = []

            def visitor(k):
                with Subscriber(r.endpoint) as sub:
                    got = list(sub.frames(timeout=30, count=3 + k % 5))
                results.append((len(got) == 3 + k % 5, any(e.meta is not None for e in got)))

            k = 0
            while not done.is_set() and k < 60:
                batch = [threading.Thread(target=visitor, args=(k + j,)) for j in range(6)]
                for t in batch:
                    t.start()
                for t in batch:
                    t.join(30)
                k += 6
            assert done.wait(60)
            assert r.wait_for(lambda: len(r.got) >= n_frames)
            acc = assert_accounted(r.server, arrived=n_frames)
    assert len(results) == k >= 12
    assert all(ok for ok, _ in results)                 # every visitor was served
    assert sum(meta for _, meta in results) >= k // 2   # metadata is re-sent as they join
    assert r.publisher.subscriptions - joins0 >= 2 * k  # each visitor subscribes meta + est
    assert [e.seq for e in r.got] == list(range(n_frames))  # the steady one lost nothing
    assert acc["processed"] == n_frames and acc["dropped"] == 0
    assert np.isfinite(r.got[-1].outputs["torques_rajagopal"]).all()
