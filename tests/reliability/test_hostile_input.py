"""Hostile input: the wire format's hard limits and wrong types (decoder and real sockets),
non-finite / absurd / missing coordinates, and a channel layout that changes mid-stream."""

from __future__ import annotations

import time

import msgpack
import numpy as np
import pytest
from relhelpers import assert_accounted

from hdys_rt import wire
from hdys_rt.client import MarkerSender
from hdys_rt.streams.zmq import ZmqSource

GOOD = {"v": 1, "type": "markers", "seq": 0, "t": 1.0, "names": ["a"], "xyz": b"\0" * 12}


def _pack(**changes) -> bytes:
    msg = dict(GOOD)
    for k, v in changes.items():
        if v is KeyError:
            msg.pop(k)
        else:
            msg[k] = v
    return msgpack.packb(msg, use_bin_type=True)


# --- the decoder's hard limits ---------------------------------------------------------------
def test_message_size_limit_is_exact():
    frame = _pack()
    pad = wire.MAX_MESSAGE_BYTES - len(_pack(pad=b"")) - 2  # bin16/32 header grows with size
    while len(_pack(pad=b"x" * pad)) < wire.MAX_MESSAGE_BYTES:
        pad += 1
    at_limit = _pack(pad=b"x" * pad)
    assert len(at_limit) == wire.MAX_MESSAGE_BYTES
    assert wire.decode_markers(at_limit).names == ("a",)  # unknown keys are ignored
    with pytest.raises(wire.WireError, match="exceeds the limit of 65536") as exc:
        wire.decode_markers(at_limit + b"\0")
    assert exc.value.oversized
    assert wire.decode_markers(frame).seq == 0


def test_marker_count_and_name_length_limits():
    names = [f"m{i}" for i in range(wire.MAX_MARKERS)]
    ok = wire.encode_markers(np.zeros((wire.MAX_MARKERS, 3), np.float32), names, 1.0, 0)
    assert len(wire.decode_markers(ok).names) == wire.MAX_MARKERS
    with pytest.raises(wire.WireError, match="513 markers exceed the limit of 512") as exc:
        wire.decode_markers(_pack(names=names + ["x"], xyz=b"\0" * 12 * 513))
    assert exc.value.oversized
    assert wire.decode_markers(_pack(names=["n" * wire.MAX_NAME_LEN])).names[0] == "n" * 64
    for bad in ("n" * (wire.MAX_NAME_LEN + 1), ""):
        with pytest.raises(wire.WireError, match="1..64 characters"):
            wire.decode_markers(_pack(names=[bad]))


BAD = [  # (message bytes, what the error says)
    (_pack(seq=1.0), "seq must be an integer"),
    (_pack(seq=True), "seq must be an integer"),
    (_pack(seq=2 ** 63), "seq must be an integer >= 0 and < 2"),
    (_pack(seq=-1), "seq must be an integer >= 0 and < 2"),
    (_pack(t=float("nan")), "t must be a finite number"),
    (_pack(t=float("inf")), "t must be a finite number"),
    (_pack(t=False), "t must be a finite number"),
    (_pack(t=KeyError), "t must be a finite number"),
    (_pack(names={"a": 1}), "names must be a list"),
    (_pack(names="abc"), "names must be a list"),
    (_pack(names=[None]), "names: every name must be a string"),
    (_pack(xyz="\0" * 12), "xyz must be msgpack bin"),
    (_pack(xyz=KeyError), "xyz must be msgpack bin"),
    (_pack(rate=0), "rate must be a number in"),
    (_pack(rate=True), "rate must be a number in"),
    (_pack(rate=float("inf")), "rate must be a number in"),
    (_pack(rate="100"), "rate must be a number in"),
    (_pack(src=""), "src must be a string"),
    (_pack(src="s" * 65), "src must be a string"),
    (_pack(src=7), "src must be a string"),
    (_pack(type="est"), "expected type 'markers'"),
    (_pack(v=KeyError), "unsupported wire version"),
    (_pack(v="1"), "unsupported wire version"),
    (msgpack.packb({1: 2}), "not a valid msgpack"),                            # non-str key
    (msgpack.packb(msgpack.ExtType(5, b"abc")), "not a valid msgpack"),        # ext type
    (msgpack.packb(None), "must be a msgpack map"),
    (msgpack.packb(3.5), "must be a msgpack map"),
    (msgpack.packb({f"k{i}": i for i in range(65)}), "not a valid msgpack"),   # map too long
    (b"\xdd\xff\xff\xff\xff", "not a valid msgpack"),        # array header claiming 4 G items
    (b"\xdb\x7f\xff\xff\xff", "not a valid msgpack"),        # str header claiming 2 GiB
    (b"\x81\xa1v\xc4\x03\xff\xfe\xfd", "unsupported wire version"),  # bin where int expected
    (b"\x81\xa2\xff\xfe\x01", "not a valid msgpack"),        # invalid UTF-8 key
    (_pack()[:-3], "not a valid msgpack"),                   # truncated
    (_pack() + b"\x00", "not a valid msgpack"),              # trailing data
    (b"", "not a valid msgpack"),
]


@pytest.mark.parametrize("data,match", BAD, ids=range(len(BAD)))
def test_wrong_types_are_rejected_with_a_clear_message(data, match):
    with pytest.raises(wire.WireError, match=match):
        wire.decode_markers(data)


def test_wrong_types_over_zeromq_are_counted_and_service_continues(running, gait, endpoint):
    ep = endpoint()
    good = lambda i: wire.encode_markers(gait.xyz[i], gait.names, time.monotonic(), i)  # noqa
    with MarkerSender(gait.names, 100.0, ep) as sender:
        with running([ZmqSource(ep)]) as r:
            assert sender.wait_for_subscriber(20)
            sender.send_raw(good(0))
            for data, _ in BAD:
                sender.send_raw(data)
                sender.send_raw(data, topic=None)                       # one-part form
            sender.send_raw(good(1), topic=b"hdys.other")                 # wrong topic
            sender._sock.send_multipart([wire.TOPIC_MARKERS])             # topic only
            for i in range(2, 12):
                sender.send_raw(good(i))
                time.sleep(0.003)
            n = 1 + 2 * len(BAD) + 2 + 10
            acc = assert_accounted(r.server, arrived=n)
            assert r.wait_for(lambda: len(r.got) >= 11)
    assert [e.seq for e in r.got] == [0] + list(range(2, 12))
    assert r.src.counters["malformed"] == 2 * len(BAD) + 2
    assert acc["rejected"] == 2 * len(BAD) + 2 and acc["processed"] == 11


# --- values ----------------------------------------------------------------------------------
def test_nan_inf_huge_and_all_missing_values(running, gait, endpoint):
    ep = endpoint()
    P = len(gait.names)
    f32max = np.finfo(np.float32).max
    frames, expect = [], {}
    for i in range(70):
        f = gait.xyz[i].copy()
        if i == 2:
            f[0] = [f32max, 0, 0]; f[1] = [-np.inf, 1, 1]; f[2] = [0, np.nan, 0]  # noqa: E702
            expect[i] = ("invalid", [0, 1, 2])
        elif i == 3:
            f[4] = [100.0, -100.0, 100.0]   # on the limit: still a marker
            f[5] = [100.01, 0.0, 0.0]       # beyond it: absurd
            expect[i] = ("invalid", [5])
        elif i == 4:
            f[:] = np.inf                   # every marker non-finite
            expect[i] = ("too_few", list(range(P)))
        elif 10 <= i < 60:
            f[:] = np.nan                   # every marker missing for half a second
            expect[i] = ("too_few", list(range(P)))
        elif i == 61:
            f[:] = 1e30                     # every marker absurd
            expect[i] = ("too_few", list(range(P)))
        frames.append(f)
    with MarkerSender(gait.names, 100.0, ep) as sender:
        with running([ZmqSource(ep)]) as r:
            assert sender.wait_for_subscriber(20)
            for f in frames:
                sender.send(f)
                time.sleep(0.002)
            assert r.wait_for(lambda: len(r.got) >= len(frames))
            acc = assert_accounted(r.server, arrived=len(frames))
    got = {e.seq: e for e in r.got}
    assert sorted(got) == list(range(len(frames)))
    for i, e in got.items():
        finite = all(np.isfinite(v).all() for v in e.outputs.values())
        if i in expect:
            flag, missing = expect[i]
            assert flag in e.flag_names and e.missing == missing, (i, e.flag_names, e.missing)
            assert finite == (flag != "too_few"), i
        else:
            assert finite and e.missing == [], (i, e.flag_names)
    assert r.pipe.counters["too_few"] == 52 and acc["flagged"] >= 54


def test_channel_layout_changes_mid_stream(running, gait, endpoint):
    ep = endpoint()
    sub20 = tuple(gait.names[:20])
    wide = tuple(f"w{i}" for i in range(65))  # more than the model's 64 points: refused
    t = [100.0]

    def send(sender, names, xyz, seq):
        t[0] += 0.01
        sender.send_raw(wire.encode_markers(xyz, names, t[0], seq, 100.0))

    with MarkerSender(gait.names, 100.0, ep) as sender:
        with running([ZmqSource(ep)]) as r:
            assert sender.wait_for_subscriber(20)
            for i in range(5):
                send(sender, gait.names, gait.xyz[i], i)
            assert r.wait_for(lambda: len(r.got) >= 5)
            for i in range(5, 10):
                send(sender, sub20, gait.xyz[i, :20], i)
            assert r.wait_for(lambda: len(r.got) >= 10)
            for i in range(10, 13):
                send(sender, wide, np.zeros((65, 3), np.float32), i)
            for i in range(13, 18):
                send(sender, gait.names, gait.xyz[i], i)
            assert r.wait_for(lambda: len(r.got) >= 15)
            for i in range(18, 40):   # back-to-back switches: unread frames of a replaced
                names = gait.names if i % 3 else sub20          # layout are counted dropped
                send(sender, names, gait.xyz[i, :len(names)], i)
            acc = assert_accounted(r.server, arrived=40)
            assert r.wait_for(lambda: r.got[-1].seq == 39)
    assert [e.seq for e in r.got[:15]] == list(range(10)) + list(range(13, 18))
    assert r.src.counters["rejected"] == 3 and acc["rejected"] == 3
    metas = [e.meta["meta"] for e in r.got[:15]]
    assert metas[0] < metas[5] < metas[10]      # a new metadata message per layout
    assert r.got[5].meta["input"]["names"] == list(sub20)
    assert all("reset" in r.got[i].flag_names for i in (0, 5, 10))
    for e in r.got:
        assert all(np.isfinite(v).all() for v in e.outputs.values())
    assert acc["processed"] + acc["dropped"] == 37
