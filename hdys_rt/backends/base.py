"""The one backend interface every inference engine sits behind (after Polygraphy's runners).

A backend runs the functional streaming step (:mod:`hdys_rt.model.step`) over buffers it
allocates ONCE::

    with OnnxRuntimeBackend(path, io) as be:
        be.inputs["points"][0, :n] = ...      # fill the preallocated inputs in place
        out = be.infer()                      # -> be.outputs, the same tensors every call
        out["out"]                            # (B, C) physical units: read or copy it now

``inputs`` and ``outputs`` are dicts of torch tensors on the backend's device with the shapes
of the engine's ``engine.json``. The output tensors are REUSED: every ``infer`` overwrites them,
so copy what must outlive the next call. ``infer(feed)`` also accepts a dict of tensors/arrays
that are copied into ``inputs`` first (convenient, one copy per input).

Backends load their artefact in ``activate()`` (called by ``__enter__``) and release it in
``deactivate()``; heavy modules (onnxruntime, tensorrt) are imported there, never at import of
this package.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from hdys_rt.errors import HdysError
from hdys_rt.model.step import INPUT_NAMES, OUTPUT_NAMES

log = logging.getLogger(__name__)

_DTYPES = {"float32": torch.float32, "float16": torch.float16, "int64": torch.int64}


@dataclass(frozen=True)
class TensorSpec:
    """Name, static shape and dtype (a numpy-style name) of one engine input or output."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"

    def to_dict(self) -> dict:
        return {"shape": list(self.shape), "dtype": self.dtype}

    @property
    def torch_dtype(self) -> torch.dtype:
        return _DTYPES[self.dtype]


@dataclass(frozen=True)
class IOSpec:
    """The inputs and outputs of a step engine, in call order."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]

    @classmethod
    def from_shapes(cls, shapes: dict[str, tuple]) -> "IOSpec":
        """From :meth:`StreamingStep.io_shapes` (all float32)."""
        return cls(tuple(TensorSpec(n, tuple(shapes[n])) for n in INPUT_NAMES if n in shapes),
                   tuple(TensorSpec(n, tuple(shapes[n])) for n in OUTPUT_NAMES))

    @classmethod
    def from_dict(cls, d: dict) -> "IOSpec":
        try:
            return cls(tuple(TensorSpec(n, tuple(v["shape"]), v["dtype"])
                             for n, v in d["inputs"].items()),
                       tuple(TensorSpec(n, tuple(v["shape"]), v["dtype"])
                             for n, v in d["outputs"].items()))
        except (KeyError, TypeError) as exc:
            raise HdysError(f"engine inputs/outputs malformed ({exc})") from None

    def to_dict(self) -> dict:
        return {"inputs": {t.name: t.to_dict() for t in self.inputs},
                "outputs": {t.name: t.to_dict() for t in self.outputs}}

    @property
    def batch(self) -> int:
        return self.inputs[0].shape[0]

    @property
    def max_points(self) -> int:
        return self.inputs[0].shape[1]

    def allocate(self, device, which: str = "inputs") -> dict[str, torch.Tensor]:
        """Zero tensors for every input (or output) on ``device``."""
        return {t.name: torch.zeros(t.shape, dtype=t.torch_dtype, device=device)
                for t in getattr(self, which)}


class Backend:
    """Base class: preallocated ``inputs``/``outputs``, ``infer``, context manager.

    Subclasses set ``name`` and implement ``_load`` (build the runner; may replace buffers) and
    ``_run`` (one step from ``self.inputs`` into ``self.outputs``), and ``clone`` (a second,
    independent instance over the same artefact, for another stream).
    """

    name = "base"
    #: runs any number of rows up to ``io.batch`` (:meth:`use_batch`); False: always all rows
    dynamic_batch = False

    def __init__(self, io: IOSpec, device: str | torch.device = "cpu"):
        self.io = io
        self.device = torch.device(device)
        self.inputs: dict[str, torch.Tensor] = {}
        self.outputs: dict[str, torch.Tensor] = {}
        self.active = False
        self.batch = io.batch  # rows run per step (see use_batch)

    # --- lifecycle ------------------------------------------------------------------------------
    def activate(self) -> "Backend":
        if not self.active:
            self._precheck()
            if self.device.type == "cuda" and not torch.cuda.is_available():
                raise HdysError(f"{self.name} backend on {self.device}: torch reports no CUDA "
                                "device here; use --device cpu")
            self.inputs = self.io.allocate(self.device, "inputs")
            self.outputs = self.io.allocate(self.device, "outputs")
            self._load()
            self.active = True
            log.debug("%s backend active on %s", self.name, self.device)
        return self

    def deactivate(self) -> None:
        self._release()
        self.inputs, self.outputs = {}, {}
        self.active = False

    def __enter__(self) -> "Backend":
        return self.activate()

    def __exit__(self, *exc) -> None:
        self.deactivate()

    # --- running --------------------------------------------------------------------------------
    def infer(self, feed: dict | None = None) -> dict[str, torch.Tensor]:
        """One step. ``feed`` (optional): name -> tensor/array copied into ``inputs`` first.

        Returns ``self.outputs``: the same tensors on every call, overwritten by the next one.
        """
        if not self.active:
            raise HdysError(f"{self.name} backend is not active: use it as a context manager "
                            "or call activate() first")
        if feed:
            for k, v in feed.items():
                if k not in self.inputs:
                    raise HdysError(f"{self.name}: unknown input {k!r} "
                                    f"(inputs: {list(self.inputs)})")
                dst = self.inputs[k]
                src = torch.from_numpy(np.ascontiguousarray(v)) if isinstance(v, np.ndarray) else v
                if tuple(src.shape) != tuple(dst.shape):
                    raise HdysError(f"{self.name}: input {k!r} must have shape "
                                    f"{tuple(dst.shape)}, got {tuple(src.shape)}")
                dst.copy_(src)
        self._run()
        return self.outputs

    def clone(self) -> "Backend":
        raise NotImplementedError

    def use_points(self, n: int) -> None:
        """The next frames fill only the first ``n`` marker rows of ``points``/``mask`` (the
        rest is zero padding, masked out). Static-shape backends run the padding anyway; the
        eager torch backend, and onnxruntime over a symbolic marker axis, run only those rows.
        The result is the same either way."""

    def use_batch(self, n: int) -> None:
        """The next steps run only the first ``n`` rows (streams) of every input and output:
        fill ``inputs[k][:n]``, read ``outputs[k][:n]``. Only for backends with
        ``dynamic_batch`` (onnxruntime over a symbolic batch axis, eager torch); a static one
        always runs its ``io.batch`` rows."""
        if not self.dynamic_batch and n != self.io.batch:
            raise HdysError(f"the {self.name} engine runs {self.io.batch} rows, not {n}")
        self.batch = max(1, min(int(n), self.io.batch))

    # --- construction (see hdys_rt.backends.registry) -------------------------------------------
    @classmethod
    def from_step(cls, step, io: IOSpec, device) -> "Backend":
        """Built now from a :class:`~hdys_rt.model.step.StreamingStep` (engines built on the
        fly)."""
        raise HdysError(f"the {cls.name} backend is not built on the fly; export an engine")

    @classmethod
    def from_artefact(cls, path, io: IOSpec, device, threads: int = 1) -> "Backend":
        """Over an exported artefact file."""
        raise HdysError(f"the {cls.name} backend has no artefact to load")

    # --- for subclasses -------------------------------------------------------------------------
    def _precheck(self) -> None:
        """Fail early (before allocating anything) when a dependency is missing."""

    def _load(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        pass

    def __repr__(self) -> str:
        return (f"{type(self).__name__}(batch={self.io.batch}, max_points={self.io.max_points}, "
                f"device={self.device})")
