"""Fixtures of the live-runtime tests: a small real model, unique ports and LSL names, and an
in-process server on real sockets.

Tests assert on counts and values with generous timeouts, never on latency figures, so they hold
on a loaded 2-core machine.
"""

from __future__ import annotations

import threading
import time
import uuid

import pytest

from loopback import free_port

from hdys_rt.client import Subscriber
from hdys_rt.runtime.pipeline import PipelineOptions
from hdys_rt.runtime.server import Server, load_estimators
from hdys_rt.streams.zmq import Publisher



@pytest.fixture
def port():
    """A free TCP port on loopback."""
    return free_port()


@pytest.fixture
def make_port():
    return free_port


@pytest.fixture
def lsl_name(request):
    return f"hdys-test-{request.node.name[:30]}-{uuid.uuid4().hex[:8]}"


#: how long a test waits for an event before it fails: it returns as soon as the event happens,
#: so this only bounds a failure; generous, since the suite must pass on a busy 2-core machine
PATIENCE_S = 60.0


class Running:
    """An in-process server plus a subscriber collecting every estimate in a thread."""

    def __init__(self, sources, model_path, port, options=PipelineOptions(), sndhwm=1000,
                 sinks=()):
        self.endpoint = f"tcp://127.0.0.1:{port}"
        self.publisher = Publisher(self.endpoint, sndhwm=sndhwm)
        self.server = Server(sources, load_estimators(len(sources), model_path),
                             [self.publisher, *sinks], options)
        self.sub = Subscriber(self.endpoint)
        self.got = []
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)

    def _read(self):
        while not self._stop.is_set():
            est = self.sub.recv(0.1)
            if est is not None:
                self.got.append(est)

    def __enter__(self):
        self._reader.start()
        # wait until the subscription reached the publisher (no slow-joiner loss)
        deadline = time.monotonic() + PATIENCE_S
        while self.publisher.subscriptions == 0 and time.monotonic() < deadline:
            self.publisher.service()
            time.sleep(0.01)
        assert self.publisher.subscriptions > 0, "the test subscriber never reached the publisher"
        self.server.start()
        return self

    def __exit__(self, *exc):
        self.server.stop()
        self._stop.set()
        self._reader.join(5)
        self.sub.close()

    def wait_for(self, predicate, timeout=PATIENCE_S):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.02)
        return predicate()

    @property
    def pipe(self):
        return self.server.pipelines[0]


@pytest.fixture
def running(model_path, port):
    """``running(sources, model=None, **options)``: a :class:`Running` server (``model``: a
    model path, default the tiny model)."""
    def make(sources, model=None, **kw):
        return Running(sources, model or model_path, port, **kw)
    return make

