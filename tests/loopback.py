"""Free TCP ports on loopback for the tests (one place).

A port is found by binding port 0 and closing the socket, so the OS may hand the same port out
again before its first taker binds it (a fixture's port, then a test's own): each call here
returns a port that no earlier call in this process returned.
"""

from __future__ import annotations

import socket

_given: set[int] = set()


def free_port() -> int:
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _given:
            _given.add(port)
            return port


def free_endpoint() -> str:
    return f"tcp://127.0.0.1:{free_port()}"
