"""Python client of a running ``hdys-rt serve``: a subscriber yielding decoded estimates and a
ready-made ZeroMQ marker sender (the input side). Both speak :mod:`hdys_rt.wire`.

    from hdys_rt.client import Subscriber
    with Subscriber("tcp://127.0.0.1:5560") as sub:
        for est in sub.frames(timeout=5.0):
            print(est.seq, est.channels("torques_rajagopal"), est.outputs["torques_rajagopal"])
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import zmq

from hdys_rt import wire
from hdys_rt.errors import HdysError
from hdys_rt.security import ClientKeys, apply_client, client_keys
from hdys_rt.streams.zmq import check_endpoint, warn_if_public

log = logging.getLogger(__name__)

__all__ = ["Estimate", "Subscriber", "MarkerSender", "ClientKeys"]


def _number(v) -> float:
    """A float from a message field (NaN when absent or not a number)."""
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else float("nan")


@dataclass
class Estimate:
    """One decoded estimate. ``outputs``: name -> (C,) float32; ``meta``: the stream's metadata
    message (channel names, units, input layout) when already received, else None."""

    stream: str
    seq: int
    t_src: float
    t_recv: float
    t_pub: float
    t_client: float                 # when this client received it (monotonic clock)
    outputs: dict[str, np.ndarray]
    flags: int
    n_valid: int
    missing: list[int]
    dropped: int
    out_of_order: int
    lat: dict[str, float]
    meta: dict | None = field(default=None, repr=False)
    stale: int = 0                  # estimates left unpublished as too old so far (cumulative)
    t_est: float | None = None      # the time the outputs describe (see hdys_rt.wire)
    novelty: float = float("nan")   # how far the motion is from the training data (q.novelty)

    @property
    def flag_names(self) -> list[str]:
        return wire.flag_names(self.flags)

    @property
    def latency(self) -> float:
        """End-to-end latency, s: source sample time to receipt here (same machine clocks)."""
        return self.t_client - self.t_src

    def channels(self, output: str) -> tuple[str, ...] | None:
        if self.meta is None:
            return None
        return tuple(self.meta["outputs"][output]["names"])

    def unit(self, output: str) -> str | None:
        return None if self.meta is None else self.meta["outputs"][output]["unit"]

    def named(self, output: str) -> dict[str, float]:
        """``{channel: value}`` of one output (needs the metadata)."""
        names = self.channels(output)
        if names is None:
            raise HdysError(f"no metadata received yet for stream {self.stream!r}")
        return dict(zip(names, self.outputs[output].tolist()))


class Subscriber:
    """SUB socket on a serve's publish endpoint; yields :class:`Estimate` objects.

    ``streams``: only these stream names (None = all). Malformed messages are counted in
    ``malformed`` and skipped. ``curve``: a key folder (``NAME.key_secret`` + ``server.key``,
    see :mod:`hdys_rt.security`) or :class:`~hdys_rt.security.ClientKeys`, for a serve run
    with ``--curve-keys``.
    """

    def __init__(self, endpoint: str = "tcp://127.0.0.1:5560", streams=None,
                 rcvhwm: int = 1000, context: zmq.Context | None = None, curve=None):
        check_endpoint(endpoint, "endpoint")
        self.endpoint = endpoint
        self.streams = None if streams is None else set(streams)
        self.metas: dict[str, dict] = {}
        self.malformed = 0
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.SUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.RCVHWM, rcvhwm)
        self._sock.setsockopt(zmq.MAXMSGSIZE, wire.MAX_OUTPUT_MESSAGE_BYTES)
        self._sock.setsockopt(zmq.SUBSCRIBE, wire.TOPIC_META)
        self._sock.setsockopt(zmq.SUBSCRIBE, wire.TOPIC_EST)
        keys = client_keys(curve)
        if keys is not None:
            apply_client(self._sock, keys)
        # watch the handshake from before the connect, so wait_connected never misses it
        self._mon = self._sock.get_monitor_socket(zmq.EVENT_HANDSHAKE_SUCCEEDED)
        self._handshake = False
        self._sock.connect(endpoint)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self) -> None:
        if not self._sock.closed:
            self._close_monitor()
            self._sock.close(0)

    def wait_connected(self, timeout: float = 10.0) -> bool:
        """Wait until the connection to serve is up (handshake done, so the subscription is on
        its way and no estimate published from now on is missed); True if it is."""
        from zmq.utils.monitor import recv_monitor_message

        mon = self._mon
        deadline = time.monotonic() + timeout
        while not self._handshake and mon is not None \
                and (left := deadline - time.monotonic()) > 0:
            if mon.poll(int(1000 * min(left, 0.1))):
                if recv_monitor_message(mon)["event"] == zmq.EVENT_HANDSHAKE_SUCCEEDED:
                    self._handshake = True
        if self._handshake and mon is not None:  # seen: the monitor is no longer needed
            self._close_monitor()
        return self._handshake

    def _close_monitor(self) -> None:
        mon, self._mon = self._mon, None
        if mon is not None:
            try:
                self._sock.disable_monitor()
            except zmq.ZMQError:
                pass
            mon.close(0)

    def recv(self, timeout: float | None = None) -> Estimate | None:
        """The next estimate, or None after ``timeout`` seconds (None = wait forever)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = -1 if deadline is None else max(0, int(1000 * (deadline - time.monotonic())))
            if not self._sock.poll(wait):
                return None
            parts = self._sock.recv_multipart()
            t_client = time.monotonic()
            est = self._decode(parts, t_client)
            if est is not None:
                return est
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def _decode(self, parts, t_client: float) -> Estimate | None:
        try:
            if len(parts) != 2:
                raise wire.WireError(f"expected [topic, payload], got {len(parts)} parts")
            msg = wire.decode_output(parts[1])
        except wire.WireError as exc:
            self.malformed += 1
            log.debug("malformed message skipped: %s", exc)
            return None
        stream = msg.get("stream")
        if self.streams is not None and stream not in self.streams:
            return None
        if msg["type"] == "meta":
            self.metas[stream] = msg
            return None
        q = msg.get("q", {})
        meta = self.metas.get(stream)
        if meta is not None and meta.get("meta") != msg.get("meta"):
            meta = None  # estimates from a newer layout than the metadata we hold
        return Estimate(stream, msg["seq"], msg["t_src"], msg["t_recv"], msg["t_pub"], t_client,
                        msg["outputs"], q.get("flags", 0), q.get("n_valid", 0),
                        q.get("missing", []), q.get("dropped", 0), q.get("ooo", 0),
                        msg.get("lat", {}), meta, q.get("stale", 0), msg.get("t_est"),
                        _number(q.get("novelty")))

    def frames(self, timeout: float | None = None, count: int | None = None):
        """Yield estimates until ``timeout`` seconds pass without one, or ``count`` were yielded."""
        n = 0
        while count is None or n < count:
            est = self.recv(timeout)
            if est is None:
                return
            n += 1
            yield est

    def __iter__(self):
        return self.frames()


class MarkerSender:
    """Sends marker frames to ``hdys-rt serve --source zmq`` (XPUB; binds by default).

    ``send(xyz)`` takes (P, 3) metres, Y up, NaN rows for missing markers, in the order of
    ``names``; the timestamp defaults to now on the monotonic clock (= LSL local_clock).
    ``curve``: client keys (a key folder or :class:`~hdys_rt.security.ClientKeys`) for a serve
    run with ``--curve-keys``: the frames are encrypted and only that serve accepts them.
    """

    def __init__(self, names, rate: float | None = None, endpoint: str = "tcp://127.0.0.1:5559",
                 bind: bool = True, src: str | None = None, context: zmq.Context | None = None,
                 curve=None):
        check_endpoint(endpoint, "endpoint")
        self.names = wire.check_names(list(names), "marker names")
        self.rate, self.src = rate, src
        self.seq = 0
        self.subscribers = 0
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.XPUB)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.SNDHWM, 1000)
        self._sock.setsockopt(zmq.XPUB_VERBOSE, 1)
        keys = client_keys(curve)
        if keys is not None:
            apply_client(self._sock, keys)
        try:
            if bind:
                warn_if_public(endpoint, "marker endpoint", keys is not None)
                self._sock.bind(endpoint)
            else:
                self._sock.connect(endpoint)
        except zmq.ZMQError as exc:
            self._sock.close(0)
            raise HdysError(f"cannot {'bind' if bind else 'connect'} {endpoint}: {exc}") from None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self, linger_s: float = 2.0) -> None:
        """Close, first giving frames still queued up to ``linger_s`` seconds to leave (a
        replay's last frames must not be lost because the sender closed right after them)."""
        if not self._sock.closed:
            self._sock.close(linger=int(max(0.0, linger_s) * 1000))

    def wait_for_subscriber(self, timeout: float = 10.0) -> bool:
        """Wait until a server subscribed (avoids ZeroMQ's slow-joiner loss); True if one did."""
        deadline = time.monotonic() + timeout
        while self.subscribers == 0 and time.monotonic() < deadline:
            if self._sock.poll(50):
                self._drain()
        return self.subscribers > 0

    def _drain(self) -> None:
        while True:
            try:
                ev = self._sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return
            if ev[:1] == b"\x01":
                self.subscribers += 1

    def send(self, xyz: np.ndarray, t: float | None = None, seq: int | None = None) -> None:
        xyz = np.asarray(xyz, dtype=np.float32)
        if xyz.shape != (len(self.names), 3):
            raise HdysError(f"xyz must be ({len(self.names)}, 3), got {xyz.shape}")
        self.send_raw(wire.encode_markers(xyz, self.names, time.monotonic() if t is None else t,
                                          self.seq if seq is None else seq, self.rate, self.src))
        self.seq += 1

    def send_raw(self, payload: bytes, topic: bytes | None = wire.TOPIC_MARKERS) -> None:
        """Send bytes as they are (``topic=None``: a one-part message)."""
        parts = [payload] if topic is None else [topic, payload]
        self._sock.send_multipart(parts, zmq.NOBLOCK)
        self._drain()
