"""ONNX Runtime backend: CPU (1 thread by default: lowest latency for this small step) or the
CUDA execution provider when present. Inputs and outputs are bound once with IO binding to the
preallocated torch tensors' memory, so a step allocates nothing.

A model whose marker axis is symbolic (built on the fly: :meth:`OnnxRuntimeBackend.from_step`)
runs only the marker rows in use (:meth:`~hdys_rt.backends.base.Backend.use_points`): the
point encoder's cost grows with the rows it runs, and a 41-marker stream in 64 slots paid for
the padding. Those rows are copied into a contiguous buffer of that many rows, bound once per
marker count; the result is the same as with the padding (masked rows add nothing).

Its batch axis is symbolic too (:meth:`~hdys_rt.backends.base.Backend.use_batch`): a batched
step over 7 streams runs 7 rows in one call, not 4 + 2 + 1 rows in three calls of engines built
for those sizes. The first rows of the preallocated buffers are bound (one IO binding per
(rows, markers) pair in use, made once), so a step still allocates nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from hdys_rt.backends.base import Backend, IOSpec
from hdys_rt.errors import HdysError

log = logging.getLogger(__name__)


def import_onnxruntime():
    try:
        import onnxruntime
    except ImportError:
        raise HdysError("onnxruntime is not installed: pip install 'hdys-rt[onnx]'") from None
    return onnxruntime


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"

    def __init__(self, path: str | Path | bytes, io: IOSpec, device="cpu", threads: int = 1):
        """``path``: the ``.onnx`` file, or the ONNX model itself as bytes."""
        super().__init__(io, device)
        self.path = path if isinstance(path, bytes) else Path(path)
        self.threads = threads
        self.session = None
        self.dynamic = False  # the marker axis is symbolic: run only the rows in use
        self.dynamic_batch = False  # the batch axis is symbolic: run only the streams in use
        self.points = io.max_points  # rows run per step (see use_points)
        self._small: dict[int, dict[str, torch.Tensor]] = {}  # markers -> contiguous inputs
        self._bindings: dict[tuple[int, int], object] = {}  # (batch, markers) -> IO binding

    @classmethod
    def from_step(cls, step, io: IOSpec, device) -> "OnnxRuntimeBackend":
        """Exported now, in memory (no file): static shapes of ``io``."""
        import io as _io

        from hdys_rt.backends.engine import export_onnx

        import_onnxruntime()
        buf = _io.BytesIO()
        export_onnx(step, buf, io.batch, io.max_points, dynamic_points=True, dynamic_batch=True)
        return cls(buf.getvalue(), io, device)

    @classmethod
    def from_artefact(cls, path, io: IOSpec, device, threads: int = 1) -> "OnnxRuntimeBackend":
        return cls(path, io, device, threads=threads)

    def _load(self) -> None:
        ort = import_onnxruntime()
        src = self.path if isinstance(self.path, bytes) else str(self.path)
        if not isinstance(self.path, bytes) and not self.path.exists():
            raise HdysError(f"ONNX model {self.path} not found; re-export the engine")
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        if self.device.type == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise HdysError("onnxruntime has no CUDA execution provider here "
                                "(install onnxruntime-gpu) ; use --device cpu")
            providers = [("CUDAExecutionProvider", {"device_id": self.device.index or 0}),
                         "CPUExecutionProvider"]
            dev, dev_id = "cuda", self.device.index or 0
        else:
            providers, dev, dev_id = ["CPUExecutionProvider"], "cpu", 0
        try:
            self.session = ort.InferenceSession(src, so, providers=providers)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise HdysError(f"onnxruntime cannot load {self._what()} ({exc}); re-export the "
                            "engine") from None
        names = [i.name for i in self.session.get_inputs()]
        if names != [t.name for t in self.io.inputs]:
            raise HdysError(f"{self._what()}: inputs {names} do not match engine.json; "
                            "re-export")
        shape = self.session.get_inputs()[0].shape
        self.dynamic = isinstance(shape[1], str)
        self.dynamic_batch = isinstance(shape[0], str)
        self._dev = (dev, dev_id)
        self.points, self.batch = self.io.max_points, self.io.batch
        self._small, self._bindings = {}, {}
        self._binding(self.batch, self.points)

    def use_points(self, n: int) -> None:
        """Run only the first ``n`` marker rows when the model's marker axis is symbolic."""
        if self.dynamic:
            self.points = max(1, min(int(n), self.io.max_points))

    def _binding(self, b: int, n: int):
        """The IO binding of the first ``b`` rows of every buffer, the per-marker inputs over
        ``n`` markers (their full buffers at max, else contiguous buffers of ``n`` rows)."""
        binding = self._bindings.get((b, n))
        if binding is None:
            bufs = dict(self.inputs)
            if n != self.io.max_points:
                if n not in self._small:
                    self._small[n] = {k: torch.zeros(self._narrow(self.inputs[k], n).shape,
                                                     dtype=self.inputs[k].dtype,
                                                     device=self.device)
                                      for k in self._POINT_INPUTS if k in self.inputs}
                bufs.update(self._small[n])
            binding = self.session.io_binding()
            for spec in self.io.inputs:
                self._bind(binding.bind_input, spec.name, bufs[spec.name][:b], *self._dev)
            for spec in self.io.outputs:
                self._bind(binding.bind_output, spec.name, self.outputs[spec.name][:b],
                           *self._dev)
            self._bindings[(b, n)] = binding
        return binding

    #: inputs with a marker axis (points, mask: axis 1; history: axis 2)
    _POINT_INPUTS = ("points", "mask", "history")

    @staticmethod
    def _narrow(t: torch.Tensor, n: int) -> torch.Tensor:
        return t[:, :, :n] if t.dim() == 4 else t[:, :n]

    @staticmethod
    def _bind(fn, name, t: torch.Tensor, dev, dev_id):
        fn(name, dev, dev_id, np.float32 if t.dtype == torch.float32 else np.float16,
           list(t.shape), t.data_ptr())

    def _run(self) -> None:
        b, n = self.batch, self.points
        binding = self._binding(b, n)
        if n != self.io.max_points:  # the rows in use, contiguous
            for k, t in self._small[n].items():
                t[:b].copy_(self._narrow(self.inputs[k][:b], n))
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()  # inputs written by torch
        self.session.run_with_iobinding(binding)

    def _what(self) -> str:
        return "the ONNX model built in memory" if isinstance(self.path, bytes) else str(self.path)

    def _release(self) -> None:
        self.session = None
        self._small, self._bindings = {}, {}

    def clone(self) -> "OnnxRuntimeBackend":
        return type(self)(self.path, self.io, self.device, self.threads)
