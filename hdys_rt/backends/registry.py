"""The inference engines, in one table: name -> backend, exporter, artefact, availability.

Every place that names an engine asks here: ``hdys-rt serve --engine``, ``hdys-rt export
--engine``, the streaming estimator (:class:`~hdys_rt.model.streaming.StreamingEstimator`) and
``benchmarks/engines.py``. One spelling per engine:

============  ==========================================  ============  =====================
engine        runs the streaming step (model/step.py) in  devices       artefact (export)
============  ==========================================  ============  =====================
torch         torch eager mode                            cpu, cuda     (none: built on load)
cudagraph     torch, captured once as a CUDA graph        cuda          (none: built on load)
onnxruntime   ONNX Runtime (1 thread on CPU; CUDA EP)     cpu, cuda     ``step.onnx``
aoti          AOTInductor (compiled C++/CUDA)             cpu, cuda     ``step.pt2``
tensorrt      TensorRT (``hdys-rt[tensorrt]``)            cuda          ``step.plan``
============  ==========================================  ============  =====================

``auto`` means one thing everywhere: the first engine of :data:`PREFERENCE` for the device
that is available here and fits (:func:`resolve_auto`). The old spellings ``eager`` and ``onnx``
still work (and old ``engine.json`` files still open): :data:`ALIASES` maps them, with a
deprecation warning.

Backend classes are named as ``"module:Class"`` and imported only when used, so listing the
engines imports neither onnxruntime nor tensorrt.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

import torch

from hdys_rt.errors import HdysError

if TYPE_CHECKING:
    from hdys_rt.backends.base import Backend

log = logging.getLogger(__name__)

AUTO = "auto"
ON_THE_FLY_POINTS = 128  # marker slots of ONNX engines built when the estimator loads (the
#                          bundled model's bound; a frame runs only its own rows, so slots cost
#                          nothing unused); the torch engines take up to the model's bound


# --- availability checks: None = usable here, else the reason (one line, says what to do) ------

def _no_cuda(dev: torch.device) -> str | None:
    if dev.type == "cuda" and not torch.cuda.is_available():
        return f"torch {torch.__version__} reports no CUDA device here"
    return None


def _onnxruntime(dev: torch.device) -> str | None:
    try:
        import onnxruntime as ort
    except ImportError:
        return "onnxruntime is not installed: pip install 'hdys-rt[onnx]'"
    if dev.type == "cuda" and "CUDAExecutionProvider" not in ort.get_available_providers():
        return "onnxruntime has no CUDA execution provider here (install onnxruntime-gpu)"
    return None


def _cxx(dev: torch.device) -> str | None:
    if shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++"):
        return None
    return "AOTInductor needs a C++ compiler (g++ or $CXX) on PATH"


def _tensorrt(dev: torch.device) -> str | None:
    from hdys_rt.backends.tensorrt_backend import EXTRA_HINT, tensorrt_version

    return None if tensorrt_version() else EXTRA_HINT


def library_version(name: str) -> str | None:
    """Version of the library a compiled artefact is pinned to (None: not installed)."""
    if name == "torch":
        return torch.__version__
    try:
        return importlib.import_module(name).__version__
    except ImportError:
        return None


@dataclass(frozen=True)
class Engine:
    """One inference engine. ``backend`` and ``exporter`` are ``"module:attribute"`` names."""

    name: str
    runs: str                         # what runs the step, for help texts
    devices: tuple[str, ...]          # device types it runs on
    backend: str                      # the Backend class
    checks: tuple[Callable[[torch.device], str | None], ...] = ()
    artefact: str | None = None       # file `hdys-rt export` writes (None: nothing to export)
    exporter: str | None = None       # (step, path, io, device, fp16, folder) -> builder facts
    on_the_fly: bool = False          # built from the model when the estimator loads
    max_points: int | None = None     # marker slots when built on the fly (None: model's bound)
    fp16: bool = False                # can be built in FP16
    pinned_to: str | None = None      # its artefact runs only with the library version it was
    #                                   built with (and on the device type it was built for)

    def unavailable(self, device: str | torch.device = "cpu") -> str | None:
        """Why this engine cannot run on ``device`` here (None: it can)."""
        dev = torch.device(device)
        if dev.type not in self.devices:
            return f"the {self.name} engine runs on {'/'.join(self.devices)}, not {dev.type}"
        for check in self.checks + (_no_cuda,):  # a missing extra first: the root cause
            why = check(dev)
            if why:
                return why
        return None

    def require(self, device: str | torch.device = "cpu") -> "Engine":
        """This engine, or a one-line HdysError saying why it cannot run on ``device``."""
        why = self.unavailable(device)
        if why:
            raise HdysError(f"engine {self.name} on {torch.device(device)}: {why}")
        return self

    def backend_class(self):
        return _load(self.backend)

    def from_step(self, step, io, device) -> Backend:
        """A backend built now from a :class:`~hdys_rt.model.step.StreamingStep`."""
        if not self.on_the_fly:
            raise HdysError(f"the {self.name} engine is not built on the fly: build it with "
                            f"`hdys-rt export --engine {self.name} --out DIR` and pass DIR")
        return self.backend_class().from_step(step, io, device)

    def from_artefact(self, path, io, device, threads: int = 1) -> Backend:
        """A backend over an exported artefact (not yet active)."""
        return self.backend_class().from_artefact(path, io, device, threads=threads)

    def export(self, step, path, io, device: str, fp16: bool, folder) -> dict:
        """Write the artefact to ``path``; returns builder facts (``exporter``, ``precision``,
        ...) for ``engine.json``."""
        if self.exporter is None:
            raise HdysError(f"the {self.name} engine has nothing to export (it is built when "
                            f"the estimator loads); export one of {names(exported=True)}")
        return _load(self.exporter)(step, path, io, device, fp16, folder)


def _load(ref: str):
    module, attr = ref.split(":")
    return getattr(importlib.import_module(module), attr)


_B = "hdys_rt.backends."
ENGINES: dict[str, Engine] = {e.name: e for e in (
    Engine("torch", "torch eager mode", ("cpu", "cuda"), _B + "torch_backends:TorchBackend",
           on_the_fly=True),
    Engine("cudagraph", "torch, captured once as a CUDA graph", ("cuda",),
           _B + "torch_backends:CudaGraphBackend", on_the_fly=True),
    Engine("onnxruntime", "ONNX Runtime", ("cpu", "cuda"),
           _B + "onnxruntime_backend:OnnxRuntimeBackend", (_onnxruntime,), artefact="step.onnx",
           exporter=_B + "engine:export_onnxruntime", on_the_fly=True,
           max_points=ON_THE_FLY_POINTS),
    Engine("aoti", "AOTInductor", ("cpu", "cuda"), _B + "aoti_backend:AotiBackend", (_cxx,),
           artefact="step.pt2", exporter=_B + "engine:export_aoti_artefact", pinned_to="torch"),
    Engine("tensorrt", "TensorRT", ("cuda",), _B + "tensorrt_backend:TensorRTBackend",
           (_tensorrt,), artefact="step.plan", exporter=_B + "engine:export_tensorrt",
           fp16=True, pinned_to="tensorrt"),
)}

ALIASES = {"eager": "torch", "onnx": "onnxruntime"}  # deprecated spellings -> the engine
PORTABLE = "torch"  # runs on every device, any marker count: the estimator's default engine

# what ``auto`` tries, fastest first (benchmarks/RESULTS.md), per device type
PREFERENCE = {"cpu": ("onnxruntime", "aoti", "torch"),
              "cuda": ("cudagraph", "tensorrt", "aoti", "onnxruntime", "torch")}


def names(exported: bool = False, on_the_fly: bool = False) -> tuple[str, ...]:
    """Every engine name (``exported``: only those `hdys-rt export` builds; ``on_the_fly``:
    only those built when the estimator loads)."""
    return tuple(n for n, e in ENGINES.items()
                 if (e.artefact or not exported) and (e.on_the_fly or not on_the_fly))


def get(name: str, warn: bool = True) -> Engine:
    """The engine called ``name`` (a deprecated alias is accepted, with a warning)."""
    if name in ALIASES:
        if warn:
            log.warning("engine name %r is deprecated: use %r", name, ALIASES[name])
        name = ALIASES[name]
    if name not in ENGINES:
        raise HdysError(f"unknown engine {name!r}: choose one of {names() + (AUTO,)}")
    return ENGINES[name]


def available(device: str | torch.device = "cpu", exported: bool = False) -> list[Engine]:
    """Engines that can run (``exported``: be exported and run) on ``device`` here."""
    return [e for e in ENGINES.values()
            if (e.artefact or not exported) and e.unavailable(device) is None]


def resolve_auto(device: str | torch.device = "cpu", n_points: int | None = None,
                 exported: bool = False) -> tuple[Engine, str]:
    """What ``auto`` means: the first engine of :data:`PREFERENCE` for ``device`` that runs
    here, that is built on the fly (or, ``exported``, that `hdys-rt export` builds) and whose
    marker slots hold ``n_points`` (None: unknown, assume they fit). Returns (engine, why)."""
    dev = torch.device(device)
    skipped = []
    for name in PREFERENCE.get(dev.type, (PORTABLE,)):
        e = ENGINES[name]
        why = e.unavailable(dev)
        if why is None and not (e.artefact if exported else e.on_the_fly):
            why = "not exported" if exported else "not built on the fly"
        if why is None and not exported and n_points and e.max_points \
                and n_points > e.max_points:
            why = f"takes at most {e.max_points} markers, the stream has {n_points}"
        if why is None:
            return e, (f"auto on {dev.type}: " + "; ".join(skipped) if skipped else
                       f"auto on {dev.type}: the first choice")
        skipped.append(f"{name}: {why}")
    raise HdysError(f"no engine can run on {dev}: " + "; ".join(skipped))


def resolve(name: str, device: str | torch.device = "cpu",
            n_points: int | None = None) -> tuple[Engine, str]:
    """``name`` (an engine, an alias or ``auto``) -> (the engine, checked for ``device``,
    why it was chosen)."""
    if name == AUTO:
        return resolve_auto(device, n_points)
    return get(name).require(device), "asked for"


__all__ = ["Engine", "ENGINES", "ALIASES", "AUTO", "PORTABLE", "PREFERENCE", "ON_THE_FLY_POINTS",
           "names", "get", "available", "resolve", "resolve_auto", "library_version"]
