"""Faults that used to stop serving silently or kill the server (issue 12 B): a ZeroMQ message
over libzmq's size limit, an LSL stream that returns with a layout the model cannot take, a
first frame without markers, rejected frames miscounted as skipped, and log floods under layout
churn. Real sockets and LSL outlets on loopback, the tiny real model."""

from __future__ import annotations

import logging
import time

import msgpack
import numpy as np
from relhelpers import PATIENCE_S, assert_accounted, wait_for

from hdys_rt import wire
from hdys_rt.client import MarkerSender
from hdys_rt.streams.lsl import LslSource, marker_outlet
from hdys_rt.streams.lslconf import pylsl_module
from hdys_rt.streams.zmq import ZMQ_MAXMSGSIZE, ZmqSource


def test_zmq_message_over_the_socket_limit_reconnects_and_flags_the_gap(running, gait,
                                                                          endpoint):
    ep = endpoint()
    t0 = 100.0
    with MarkerSender(gait.names, 100.0, ep) as sender:
        with running([ZmqSource(ep)]) as r:
            assert sender.wait_for_subscriber(PATIENCE_S)
            for i in range(5):
                sender.send(gait.xyz[i], t=t0 + i * 0.01, seq=i)
            assert r.wait_for(lambda: len(r.got) >= 5)
            sender.send_raw(b"x" * (2 * ZMQ_MAXMSGSIZE))  # libzmq drops the connection
            assert r.wait_for(lambda: r.src.counters["lost"] >= 1), r.src.counters
            sender.subscribers = 0  # the source comes back with a new subscription
            assert sender.wait_for_subscriber(PATIENCE_S)
            for i in range(5, 10):
                sender.send(gait.xyz[i], t=t0 + (i + 50) * 0.01, seq=i + 50)
            assert r.wait_for(lambda: len(r.got) >= 10)
            acc = assert_accounted(r.server)
    assert r.src.counters["reconnects"] >= 1
    assert [e.seq for e in r.got] == list(range(5)) + list(range(55, 60))
    assert "gap" in r.got[5].flag_names  # the estimates say where the hole is
    assert acc["processed"] == 10


def test_lsl_stream_returning_with_unusable_layouts_is_rejected_and_others_keep_serving(
        running, gait, endpoint, lsl_name):
    pylsl = pylsl_module()
    ep = endpoint()
    lsl = LslSource(name=lsl_name, stall_s=0.3)
    zsrc = ZmqSource(ep, name="other")
    with MarkerSender(gait.names, 100.0, ep, src="other") as sender:
        with running([lsl, zsrc]) as r:
            assert sender.wait_for_subscriber(PATIENCE_S)

            def other_stream_served(k):
                sender.send(gait.xyz[k % gait.frames])
                return r.wait_for(lambda: r.server.pipelines[1].counters["processed"] > k)

            outlet = marker_outlet(lsl_name, gait.names, 100.0)
            assert outlet.wait_for_consumers(PATIENCE_S)
            for i in range(10):
                outlet.push_sample(gait.xyz[i].reshape(-1), pylsl.local_clock())
            assert r.wait_for(lambda: r.server.pipelines[0].counters["processed"] >= 10)
            del outlet  # the stream vanishes ...
            assert r.wait_for(lambda: lsl.counters["lost"] >= 1)
            k = 0
            # ... and returns as 10 channels (no marker set), then as 200 markers (too many)
            for make in (lambda: pylsl.StreamOutlet(pylsl.StreamInfo(
                             lsl_name, "MoCap", 10, 100.0, pylsl.cf_float32, "bad10")),
                         lambda: marker_outlet(lsl_name, [f"m{j}" for j in range(200)], 100.0)):
                out = make()
                before, zeros = lsl.counters["rejected"], np.zeros(out.channel_count, np.float32)
                assert wait_for(lambda: (out.push_sample(zeros, pylsl.local_clock()),
                                         lsl.counters["rejected"])[1] > before), lsl.counters
                assert other_stream_served(k)  # serving goes on meanwhile
                k += 1
                assert lsl.error is None and not r.server.pipelines[0].done
                out = None  # this outlet goes too
            assert "channels" in lsl.rejection or "markers" in lsl.rejection
            good = marker_outlet(lsl_name, gait.names, 100.0)  # a usable layout again
            assert r.wait_for(lambda: (good.push_sample(gait.xyz[0].reshape(-1),
                                                        pylsl.local_clock()),
                                       r.server.pipelines[0].counters["processed"])[1] > 10)
            assert other_stream_served(k)
            r.server.stop()
    assert lsl.counters["rejected"] >= 2 and lsl.error is None
    assert r.server.accounting()["unaccounted"] == 0


def test_frames_without_markers_and_refused_layouts_are_rejected_not_skipped(running, gait,
                                                                             endpoint, caplog):
    ep = endpoint()
    empty = msgpack.packb({"v": 1, "type": "markers", "seq": 0, "t": 1.0, "names": [],
                           "xyz": b""}, use_bin_type=True)
    wide = tuple(f"w{i}" for i in range(65))  # more than the tiny model's 64 points
    with MarkerSender(gait.names, 100.0, ep) as sender:
        with running([ZmqSource(ep)]) as r:
            assert sender.wait_for_subscriber(PATIENCE_S)
            sender.send_raw(empty)                            # seq 0: no markers, no rate
            for i in range(1, 4):                             # seq 1-3: refused layout
                sender.send_raw(wire.encode_markers(np.zeros((65, 3), np.float32), wide,
                                                    1.0 + i * 0.01, i, 100.0))
            for i in range(4, 9):                             # seq 4-8: served
                sender.send(gait.xyz[i], t=1.0 + i * 0.01, seq=i)
            acc = assert_accounted(r.server, arrived=9)
    assert r.src.counters["rejected"] == 4 and r.src.counters["skipped"] == 0
    assert acc["processed"] == 5 and acc["rejected"] == 4
    assert "NoneType" not in caplog.text


def test_layout_churn_logs_a_line_per_period_not_per_change(running, gait, endpoint, caplog):
    ep = endpoint()
    sub20 = tuple(gait.names[:20])
    caplog.set_level(logging.WARNING, logger="hdys_rt.streams.base")
    with MarkerSender(gait.names, 100.0, ep) as sender:
        with running([ZmqSource(ep)]) as r:
            assert sender.wait_for_subscriber(PATIENCE_S)
            t_start = time.monotonic()
            for i in range(200):  # the layout changes with every frame
                names = gait.names if i % 2 else sub20
                sender.send_raw(wire.encode_markers(gait.xyz[i, :len(names)], names,
                                                    1.0 + i * 0.01, i, 100.0))
            assert_accounted(r.server, arrived=200)
            elapsed = time.monotonic() - t_start
    lines = [m for m in caplog.messages if "channel layout changed" in m]
    assert r.src.layout_id >= 100  # the churn did reach the source
    assert 1 <= len(lines) <= 2 + elapsed / 5.0, len(lines)
