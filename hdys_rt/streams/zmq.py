"""ZeroMQ transport: a SUB source of marker frames and the XPUB publisher of estimates (a
:class:`~hdys_rt.streams.sinks.Sink`).

Both speak :mod:`hdys_rt.wire`. Sockets never block the pipeline: the publisher drops messages
for a subscriber whose queue (``SNDHWM``) is full, and the source bounds what it accepts
(``MAXMSGSIZE``, ``RCVHWM``, the wire limits) and counts what it rejects.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import threading
import time

import zmq

from hdys_rt import wire
from hdys_rt.errors import HdysError
from hdys_rt.streams.base import LayoutRejected, Source, SourceLost
from hdys_rt.streams.sinks import Sink

log = logging.getLogger(__name__)

_ENDPOINT = re.compile(r"^(tcp://(\[[0-9a-fA-F:.]+\]|[A-Za-z0-9_.\-*]+):(\d{1,5}|\*)"
                       r"|ipc://.+|inproc://.+)$")

#: libzmq drops (and disconnects) a peer sending a message above this; below it, messages above
#: wire.MAX_MESSAGE_BYTES are read, counted as oversized and discarded.
ZMQ_MAXMSGSIZE = 1 << 20


def check_endpoint(endpoint: str, what: str = "endpoint") -> str:
    """Validate a ZeroMQ endpoint (tcp://HOST:PORT, ipc://PATH, inproc://NAME)."""
    if not isinstance(endpoint, str) or not _ENDPOINT.match(endpoint):
        raise HdysError(f"{what} must look like tcp://127.0.0.1:5560, ipc://PATH or "
                        f"inproc://NAME, got {endpoint!r}")
    if endpoint.startswith("tcp://"):
        port = endpoint.rsplit(":", 1)[1]
        if port != "*" and not (1 <= int(port) <= 65535):
            raise HdysError(f"{what}: port must be 1..65535, got {port}")
    return endpoint


def is_loopback(endpoint: str) -> bool:
    """True for ipc/inproc endpoints and tcp on 127.0.0.0/8, ::1 or localhost."""
    if not endpoint.startswith("tcp://"):
        return True
    host = endpoint[6:].rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # an interface name or '*'


def warn_if_public(endpoint: str, what: str, authenticated: bool = False) -> None:
    """Warn when a bound endpoint is reachable from the network without CURVE."""
    if not is_loopback(endpoint) and not authenticated:
        log.warning("%s %s is reachable from the network and not authenticated (use CURVE: "
                    "--curve-keys DIR)", what, endpoint)


class ZmqSource(Source):
    """SUB socket receiving :data:`wire.TOPIC_MARKERS` frames; connects to the sender's endpoint
    (or binds it with ``bind=True``). ZeroMQ reconnects by itself when the sender returns."""

    kind = "zmq"
    counts_seq = True

    def __init__(self, endpoint: str = "tcp://127.0.0.1:5559", bind: bool = False,
                 name: str | None = None, default_rate: float = 100.0,
                 context: zmq.Context | None = None, curve=None, **kw):
        check_endpoint(endpoint, "source endpoint")
        super().__init__(name or endpoint, **kw)
        self.endpoint, self.bind = endpoint, bind
        self.curve = curve  # a hdys_rt.security.CurveServer: senders must be authorised
        self.default_rate = float(default_rate)
        self._ctx = context or zmq.Context.instance()
        self._sock: zmq.Socket | None = None
        self._mon: zmq.Socket | None = None

    def describe(self) -> str:
        return f"ZeroMQ source {self.endpoint}"

    def _connect(self) -> bool:
        s = self._ctx.socket(zmq.SUB)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.RCVHWM, 1000)
        s.setsockopt(zmq.MAXMSGSIZE, ZMQ_MAXMSGSIZE)
        s.setsockopt(zmq.SUBSCRIBE, b"")
        if self.curve is not None:
            self.curve.apply(s)
        try:
            if self.bind:
                warn_if_public(self.endpoint, "source endpoint", self.curve is not None)
                s.bind(self.endpoint)
            else:
                # libzmq drops a connection on a protocol error (a message over MAXMSGSIZE)
                # and a connecting socket then never reconnects: watch for it
                self._mon = s.get_monitor_socket(zmq.EVENT_DISCONNECTED)
                s.connect(self.endpoint)
        except zmq.ZMQError as exc:
            self._close_monitor(s)
            s.close(0)
            raise HdysError(f"cannot {'bind' if self.bind else 'connect'} "
                            f"{self.endpoint}: {exc}") from None
        self._sock = s
        return True

    def _check_connection(self) -> None:
        """Raise :class:`SourceLost` when the connection to the sender dropped (the base then
        counts it ``lost``, opens a new socket, and the gap is flagged on the next frame)."""
        mon = self._mon
        if mon is None or not mon.poll(0):
            return
        from zmq.utils.monitor import recv_monitor_message

        while mon.poll(0):
            if recv_monitor_message(mon)["event"] == zmq.EVENT_DISCONNECTED:
                raise SourceLost("the connection to the sender dropped (the sender went away, "
                                 f"or sent a message over {ZMQ_MAXMSGSIZE} bytes)")

    def _acquire(self) -> None:
        s = self._sock
        self._check_connection()
        if not s.poll(100):
            self._check_connection()
            return
        for _ in range(1000):  # drain what is there, bounded
            try:
                parts = s.recv_multipart(zmq.NOBLOCK, copy=True)
            except zmq.Again:
                return
            t_recv = time.monotonic()
            self._handle(parts, t_recv)

    def _close_monitor(self, s: zmq.Socket) -> None:
        mon, self._mon = self._mon, None
        if mon is not None:
            try:
                s.disable_monitor()
            except zmq.ZMQError:
                pass
            mon.close(0)

    def _handle(self, parts: list[bytes], t_recv: float) -> None:
        try:
            if len(parts) == 2 and parts[0] == wire.TOPIC_MARKERS:
                payload = parts[1]
            elif len(parts) == 1:
                payload = parts[0]
            else:
                raise wire.WireError(f"expected [topic, payload], got {len(parts)} parts")
            frame = wire.decode_markers(payload, self.names or None)
        except wire.WireError as exc:
            key = "oversized" if exc.oversized else "malformed"
            self.counters[key] += 1
            self._rlog.warning(key, "%s: %s message dropped: %s", self.describe(), key, exc)
            return
        if frame.src and frame.src != self.name and self.counters["received"] == 0:
            self.name = frame.src  # before the layout: the estimator loop reads it then
        if (self.ring is None or frame.names is not self.names
                or (frame.rate and frame.rate != self.rate)):
            try:
                self._set_layout(frame.names, frame.rate or self.rate or self.default_rate)
            except LayoutRejected as exc:
                self._reject(1, str(exc), frame.seq)
                return
        self._push(frame.xyz, frame.t, frame.seq, t_recv)

    def _close(self) -> None:
        s, self._sock = self._sock, None
        if s is not None:
            self._close_monitor(s)
            s.close(0)


class Publisher(Sink):
    """XPUB socket publishing estimates and metadata; thread-safe (a :class:`Sink`).

    Metadata is re-sent whenever a subscriber joins (XPUB_VERBOSE reports every subscription),
    when it changes, and every :data:`wire.META_PERIOD_S`. ``SNDHWM`` bounds the queue per
    subscriber: a subscriber that never reads loses messages, nobody else does.
    """

    def __init__(self, endpoint: str = "tcp://127.0.0.1:5560", context: zmq.Context | None = None,
                 sndhwm: int = 1000, curve=None):
        check_endpoint(endpoint, "publish endpoint")
        warn_if_public(endpoint, "publish endpoint", curve is not None)
        self.endpoint = endpoint
        self._ctx = context or zmq.Context.instance()
        self._sock = self._ctx.socket(zmq.XPUB)
        if curve is not None:  # a hdys_rt.security.CurveServer: only authorised subscribers
            curve.apply(self._sock)
        self._sock.setsockopt(zmq.LINGER, 0)
        self._sock.setsockopt(zmq.SNDHWM, sndhwm)
        self._sock.setsockopt(zmq.XPUB_VERBOSE, 1)
        try:
            self._sock.bind(endpoint)
        except zmq.ZMQError as exc:
            self._sock.close(0)
            raise HdysError(f"cannot bind publish endpoint {endpoint}: {exc}") from None
        self._lock = threading.Lock()
        self._meta: dict[str, bytes] = {}
        self._last_meta = time.monotonic()
        self.subscriptions = 0
        self.sent = 0
        self.closed = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def set_meta(self, stream: str, payload: bytes) -> None:
        with self._lock:
            self._meta[stream] = payload
            self._send_locked(wire.TOPIC_META, payload)

    def publish(self, stream: str, payload: bytes, outputs=None, t_src=None) -> None:
        """Send one estimate of ``stream`` (never blocks); first serves subscription events
        (a new subscriber gets the metadata before this estimate) and meta timing.
        ``outputs`` / ``t_src`` are not needed: ``payload`` carries them."""
        with self._lock:
            if self.closed:
                return
            self._service_locked()
            self._send_locked(wire.TOPIC_EST, payload)
            self.sent += 1

    def service(self) -> None:
        """Handle pending subscriptions and the periodic metadata (call when idle)."""
        with self._lock:
            if not self.closed:
                self._service_locked()

    def _send_locked(self, topic: bytes, payload: bytes) -> None:
        try:  # two plain sends: ~4 us against ~10 us for send_multipart
            self._sock.send(topic, zmq.SNDMORE | zmq.NOBLOCK)
            self._sock.send(payload, zmq.NOBLOCK)
        except zmq.Again:  # no subscriber or all queues full: dropped by design
            pass

    def _service_locked(self) -> None:
        joined = False
        while self._sock.getsockopt(zmq.EVENTS) & zmq.POLLIN:  # cheaper than a failing recv
            ev = self._sock.recv(zmq.NOBLOCK)
            if ev[:1] == b"\x01":
                self.subscriptions += 1
                joined = True
        now = time.monotonic()
        if joined or now - self._last_meta >= wire.META_PERIOD_S:
            self._last_meta = now
            for payload in self._meta.values():
                self._send_locked(wire.TOPIC_META, payload)

    def close(self) -> None:
        with self._lock:
            if not self.closed:
                self.closed = True
                self._sock.close(linger=500)  # let the last estimates leave (bounded)
