"""Where estimates go: the one protocol every output of a server implements.

A :class:`Sink` serves every stream of a server (each stream's estimator loop calls it from its
own thread, so implementations are thread-safe) and never blocks the loop. The server takes a
list of them; the implementations live with their transports:

* :class:`hdys_rt.streams.zmq.Publisher`: the ZeroMQ XPUB publisher (``--publish``; CURVE with
  ``--curve-keys``);
* :class:`hdys_rt.streams.lsl.LslEstimateSink`: one LSL outlet ``NAME-hdys`` per stream
  (``--lsl-out``), so LabRecorder records the estimates beside the mocap.

A recorder is one more subclass: keep ``payload`` in :meth:`Sink.publish`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Iterable

import numpy as np

__all__ = ["Sink", "as_sinks"]


class Sink(ABC):
    """An output of estimates (see the module doc).

    The estimator loop of stream ``stream`` calls :meth:`set_meta` whenever the stream's layout is
    (re)configured, :meth:`publish` once per estimate and :meth:`service` when idle; whoever made
    the sink calls :meth:`close` once, after the loops stopped.
    """

    def set_meta(self, stream: str, meta: bytes) -> None:
        """``meta``: the stream's metadata message (:func:`hdys_rt.wire.encode_meta`: input
        names and rate, output names and units, model window)."""

    @abstractmethod
    def publish(self, stream: str, payload: bytes, outputs: dict[str, np.ndarray] | None = None,
                t_src: float | None = None) -> None:
        """One estimate: ``payload`` the encoded message (:func:`hdys_rt.wire.encode_estimate`),
        ``outputs`` name -> ``(C,)`` float32 in the metadata's order and units, ``t_src`` the
        input sample's time (s, monotonic clock = LSL ``local_clock``)."""

    def service(self) -> None:
        """Housekeeping while no estimate is due (subscriptions, periodic metadata)."""

    def close(self) -> None:
        """Release the transport; later calls do nothing."""


def as_sinks(sinks: Sink | Iterable[Sink] | None) -> list[Sink]:
    """A list of sinks from a list, a single sink or None (no output)."""
    if sinks is None:
        return []
    if isinstance(sinks, Sink):
        return [sinks]
    return list(sinks)
