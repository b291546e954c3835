"""Inference backends behind one interface (:class:`~hdys_rt.backends.base.Backend`), the
engines that pick them (:mod:`hdys_rt.backends.registry`: names, artefacts, availability, what
``auto`` means) and the engine artefacts they run (:mod:`hdys_rt.backends.engine`)."""

from hdys_rt.backends.base import Backend, IOSpec, TensorSpec

__all__ = ["Backend", "IOSpec", "TensorSpec"]
