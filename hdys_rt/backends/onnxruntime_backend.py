"""ONNX Runtime backend: CPU (1 thread by default: lowest latency for this small step) or the
CUDA execution provider when present. Inputs and outputs are bound once with IO binding to the
preallocated torch tensors' memory, so a step allocates nothing."""

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

    @classmethod
    def from_step(cls, step, io: IOSpec, device) -> "OnnxRuntimeBackend":
        """Exported now, in memory (no file): static shapes of ``io``."""
        import io as _io

        from hdys_rt.backends.engine import export_onnx

        import_onnxruntime()
        buf = _io.BytesIO()
        export_onnx(step, buf, io.batch, io.max_points)
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
        self.binding = self.session.io_binding()
        for spec in self.io.inputs:
            self._bind(self.binding.bind_input, spec.name, self.inputs[spec.name], dev, dev_id)
        for spec in self.io.outputs:
            self._bind(self.binding.bind_output, spec.name, self.outputs[spec.name], dev, dev_id)

    @staticmethod
    def _bind(fn, name, t: torch.Tensor, dev, dev_id):
        fn(name, dev, dev_id, np.float32 if t.dtype == torch.float32 else np.float16,
           list(t.shape), t.data_ptr())

    def _run(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.current_stream(self.device).synchronize()  # inputs written by torch
        self.session.run_with_iobinding(self.binding)

    def _what(self) -> str:
        return "the ONNX model built in memory" if isinstance(self.path, bytes) else str(self.path)

    def _release(self) -> None:
        self.session = self.binding = None

    def clone(self) -> "OnnxRuntimeBackend":
        return type(self)(self.path, self.io, self.device, self.threads)
