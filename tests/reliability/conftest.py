"""Fixtures of the reliability tests: a small real model, unique ports and LSL names, an
in-process server on real loopback sockets, and the accounting check every test ends with.

Like tests/runtime, assertions are on counts and values with generous timeouts, never on
latency, so they hold on a loaded 2-core machine.
"""

from __future__ import annotations

import threading
import uuid

import pytest

from loopback import free_port
from relhelpers import KEEP_ALL, PATIENCE_S, wait_for

from hdys_rt.client import Subscriber
from hdys_rt.runtime.server import Server, load_estimators
from hdys_rt.streams.zmq import Publisher

@pytest.fixture
def endpoint():
    """A factory of fresh tcp://127.0.0.1:PORT endpoints."""
    return lambda: f"tcp://127.0.0.1:{free_port()}"


@pytest.fixture
def lsl_name(request):
    return f"hdys-rel-{request.node.name[:30]}-{uuid.uuid4().hex[:8]}"


class Running:
    """An in-process server plus a subscriber collecting every estimate in a thread."""

    def __init__(self, sources, model_path, endpoint, options=KEEP_ALL, curve=None):
        self.endpoint = endpoint
        self.publisher = Publisher(endpoint, curve=curve)
        self.server = Server(sources, load_estimators(len(sources), model_path), self.publisher,
                             options)
        self.sub = Subscriber(endpoint, rcvhwm=100_000) if curve is None else None
        self.got = []
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)

    def _read(self):
        while not self._stop.is_set() and self.sub is not None:
            est = self.sub.recv(0.1)
            if est is not None:
                self.got.append(est)

    def __enter__(self):
        if self.sub is not None:
            self._reader.start()
            assert wait_for(lambda: (self.publisher.service(),
                                     self.publisher.subscriptions)[1] > 0)
        self.server.start()
        return self

    def __exit__(self, *exc):
        self.server.stop()
        self._stop.set()
        if self.sub is not None:
            self._reader.join(5)
            self.sub.close()

    def wait_for(self, predicate, timeout=PATIENCE_S):
        return wait_for(predicate, timeout)

    @property
    def pipe(self):
        return self.server.pipelines[0]

    @property
    def src(self):
        return self.server.sources[0]


@pytest.fixture
def running(model_path, endpoint):
    def make(sources, **kw):
        return Running(sources, model_path, endpoint(), **kw)
    return make
