"""ONNX Runtime backend: CPU (1 thread by default: lowest latency for this small step) or the
CUDA execution provider when present. Inputs and outputs are bound once with IO binding to the
preallocated torch tensors' memory, so a step allocates nothing.

A model whose marker axis is symbolic (built on the fly: :meth:`OnnxRuntimeBackend.from_step`)
runs only the marker rows in use (:meth:`~hdys_rt.backends.base.Backend.use_points`): the
point encoder's cost grows with the rows it runs, and a 41-marker stream in 64 slots paid for
the padding. Those rows are copied into a contiguous buffer of that many rows, bound once per
marker count; the result is the same as with the padding (masked rows add nothing).
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
        self.points = io.max_points  # rows run per step (see use_points)
        self._bound = io.max_points  # rows the points/mask(/history) inputs are bound with
        self._small: dict[int, dict[str, torch.Tensor]] = {}  # rows -> contiguous inputs

    @classmethod
    def from_step(cls, step, io: IOSpec, device) -> "OnnxRuntimeBackend":
        """Exported now, in memory (no file): static shapes of ``io``."""
        import io as _io

        from hdys_rt.backends.engine import export_onnx

        import_onnxruntime()
        buf = _io.BytesIO()
        export_onnx(step, buf, io.batch, io.max_points, dynamic_points=True)
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
        self.dynamic = isinstance(self.session.get_inputs()[0].shape[1], str)
        self._dev = (dev, dev_id)
        self.binding = self.session.io_binding()
        for spec in self.io.inputs:
            self._bind(self.binding.bind_input, spec.name, self.inputs[spec.name], dev, dev_id)
        for spec in self.io.outputs:
            self._bind(self.binding.bind_output, spec.name, self.outputs[spec.name], dev, dev_id)
        self.points = self._bound = self.io.max_points
        self._small = {}

    def use_points(self, n: int) -> None:
        """Run only the first ``n`` marker rows when the model's marker axis is symbolic."""
        if self.dynamic:
            self.points = max(1, min(int(n), self.io.max_points))

    def _bind_points(self, n: int) -> None:
        """Bind the per-marker inputs to buffers of ``n`` rows (the full inputs at max)."""
        if n == self.io.max_points:
            bufs = {k: self.inputs[k] for k in self._POINT_INPUTS if k in self.inputs}
        else:
            bufs = self._small.get(n)
            if bufs is None:
                bufs = {k: torch.zeros(self._narrow(self.inputs[k], n).shape,
                                       dtype=self.inputs[k].dtype, device=self.device)
                        for k in self._POINT_INPUTS if k in self.inputs}
                self._small[n] = bufs
        for k, t in bufs.items():
            self._bind(self.binding.bind_input, k, t, *self._dev)
        self._bound = n

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
        n = self.points
        if n != self._bound:
            self._bind_points(n)
        if n != self.io.max_points:  # the rows in use, contiguous
            for k, t in self._small[n].items():
                t.copy_(self._narrow(self.inputs[k], n))
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()  # inputs written by torch
        self.session.run_with_iobinding(self.binding)

    def _what(self) -> str:
        return "the ONNX model built in memory" if isinstance(self.path, bytes) else str(self.path)

    def _release(self) -> None:
        self.session = self.binding = None
        self._small = {}

    def clone(self) -> "OnnxRuntimeBackend":
        return type(self)(self.path, self.io, self.device, self.threads)
