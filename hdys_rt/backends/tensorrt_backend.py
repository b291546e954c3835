"""TensorRT: build a serialized plan from the step's ONNX, and run it.

``tensorrt`` is an optional extra (``pip install 'hdys-rt[tensorrt]'``), imported lazily inside
this module's functions only. The runtime binds the plan's IO tensors ONCE to preallocated torch
CUDA tensors (``set_tensor_address`` with their ``data_ptr``) and enqueues every step on one CUDA
stream with ``execute_async_v3``: nothing is allocated per call. Written against the TensorRT 10
Python API (name-based tensors).
"""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from hdys_rt.backends.base import Backend, IOSpec
from hdys_rt.errors import HdysError

log = logging.getLogger(__name__)

EXTRA_HINT = "TensorRT is not installed: pip install 'hdys-rt[tensorrt]' (needs an NVIDIA GPU)"


def import_tensorrt():
    """The ``tensorrt`` module, or a one-line HdysError naming the extra."""
    try:
        import tensorrt
    except ImportError:
        raise HdysError(EXTRA_HINT) from None
    return tensorrt


def tensorrt_version() -> str | None:
    try:
        import tensorrt
    except ImportError:
        return None
    return tensorrt.__version__


def build_plan(onnx_path: str | Path, plan_path: str | Path, io: IOSpec, fp16: bool = False,
               timing_cache: str | Path | None = None, min_points: int = 1,
               workspace_mb: int = 1024) -> dict:
    """Build and serialize a TensorRT plan from ``onnx_path`` (points axis dynamic).

    One optimisation profile covers marker counts ``min_points``..``io.max_points`` (optimum at
    the max: the runtime pads to it). The timing cache at ``timing_cache`` is read when present
    and written back, so rebuilds on the same GPU are fast. Returns builder facts for
    ``engine.json``.
    """
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # explicit batch is the only mode in TensorRT 10
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errs = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise HdysError(f"TensorRT cannot parse {onnx_path}: {errs}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if fp16:
        if not getattr(builder, "platform_has_fast_fp16", True):  # deprecated in newer TRT
            log.warning("this GPU has no fast FP16; building FP16 anyway")
        config.set_flag(trt.BuilderFlag.FP16)
    cache_bytes = Path(timing_cache).read_bytes() if timing_cache and Path(timing_cache).exists() \
        else b""
    cache = config.create_timing_cache(cache_bytes)
    config.set_timing_cache(cache, ignore_mismatch=False)
    profile = builder.create_optimization_profile()
    for spec in io.inputs:
        shape = tuple(spec.shape)
        if spec.name in ("points", "mask"):
            lo = (shape[0], min_points) + shape[2:]
            profile.set_shape(spec.name, lo, shape, shape)
        elif spec.name == "history":  # (B, K, P, 4): the marker axis is 2
            lo = shape[:2] + (min_points,) + shape[3:]
            profile.set_shape(spec.name, lo, shape, shape)
        else:
            profile.set_shape(spec.name, shape, shape, shape)
    config.add_optimization_profile(profile)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise HdysError(f"TensorRT failed to build a plan from {onnx_path} (see its log above)")
    Path(plan_path).write_bytes(bytes(plan))
    if timing_cache:
        Path(timing_cache).write_bytes(bytes(config.get_timing_cache().serialize()))
    props = torch.cuda.get_device_properties(torch.cuda.current_device())
    return {"tensorrt": trt.__version__, "precision": "fp16" if fp16 else "fp32",
            "gpu": {"name": props.name, "compute_capability": f"{props.major}.{props.minor}"},
            "profile": {"points": [min_points, io.max_points, io.max_points]}}


class TensorRTBackend(Backend):
    """Runs a serialized plan. Buffers: the preallocated torch CUDA ``inputs``/``outputs``."""

    name = "tensorrt"

    def __init__(self, plan_path: str | Path, io: IOSpec, device="cuda"):
        super().__init__(io, device)
        if self.device.type != "cuda":
            raise HdysError(f"TensorRT runs on a CUDA device, got {self.device}")
        self.plan_path = Path(plan_path)
        self.engine = self.context = self.stream = None

    @classmethod
    def from_artefact(cls, path, io: IOSpec, device, threads: int = 1) -> "TensorRTBackend":
        return cls(path, io, device)

    def _precheck(self) -> None:
        import_tensorrt()

    def _load(self) -> None:
        trt = import_tensorrt()
        if not self.plan_path.exists():
            raise HdysError(f"TensorRT plan {self.plan_path} not found; rebuild the engine")
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(self.plan_path.read_bytes())
        if self.engine is None:
            raise HdysError(f"TensorRT cannot deserialize {self.plan_path} (built with another "
                            f"TensorRT version or GPU?); rebuild it on this machine with "
                            f"TensorRT {trt.__version__}")
        self.context = self.engine.create_execution_context()
        self.stream = torch.cuda.Stream(self.device)
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        want = [t.name for t in self.io.inputs] + [t.name for t in self.io.outputs]
        if sorted(names) != sorted(want):
            raise HdysError(f"{self.plan_path}: IO tensors {names} do not match engine.json "
                            f"{want}; rebuild the engine")
        for spec in self.io.inputs:
            if self.engine.get_tensor_mode(spec.name) != trt.TensorIOMode.INPUT:
                raise HdysError(f"{self.plan_path}: {spec.name} is not an input; rebuild")
            self.context.set_input_shape(spec.name, tuple(spec.shape))
        for name, t in list(self.inputs.items()) + list(self.outputs.items()):
            self.context.set_tensor_address(name, t.data_ptr())
        missing = self.context.infer_shapes()
        if missing:
            raise HdysError(f"{self.plan_path}: input shapes not set for {missing}")

    def _run(self) -> None:
        cur = torch.cuda.current_stream(self.device)
        self.stream.wait_stream(cur)  # inputs written on the current stream
        if not self.context.execute_async_v3(self.stream.cuda_stream):
            raise HdysError("TensorRT execution failed")
        cur.wait_stream(self.stream)  # outputs ready for whoever reads them next

    def _release(self) -> None:
        self.context = self.engine = self.stream = None

    def clone(self) -> "TensorRTBackend":
        return type(self)(self.plan_path, self.io, self.device)
