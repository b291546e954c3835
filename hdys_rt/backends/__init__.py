"""Inference backends behind one interface (:class:`~hdys_rt.backends.base.Backend`) and the
engine artefacts they run (:mod:`hdys_rt.backends.engine`).

==============  ====================================================  ==================
backend         runs                                                  devices
==============  ====================================================  ==================
eager           :class:`~hdys_rt.model.step.StreamingStep` in torch   cpu, cuda
cudagraph       the same, captured once as a CUDA graph               cuda
onnxruntime     ``step.onnx`` (IO binding, 1 thread on CPU)           cpu, cuda (EP)
aoti            ``step.pt2`` (AOTInductor)                            cpu, cuda
tensorrt        ``step.plan`` (``hdys-rt[tensorrt]`` extra)           cuda
==============  ====================================================  ==================
"""

from hdys_rt.backends.base import Backend, IOSpec, TensorSpec

BACKENDS = ("eager", "cudagraph", "onnxruntime", "aoti", "tensorrt")

__all__ = ["Backend", "IOSpec", "TensorSpec", "BACKENDS"]
