"""AOTInductor backend: a package compiled ahead of time by
``torch._inductor.aoti_compile_and_package`` (CPU or CUDA), loaded with ``aoti_load_package``.
The compiled runner returns fresh output tensors; they are copied into the reused ``outputs``."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from hdys_rt.backends.base import Backend, IOSpec
from hdys_rt.errors import HdysError
from hdys_rt.model.step import OUTPUT_NAMES

log = logging.getLogger(__name__)


class AotiBackend(Backend):
    name = "aoti"

    def __init__(self, path: str | Path, io: IOSpec, device="cpu"):
        super().__init__(io, device)
        self.path = Path(path)
        self.runner = None

    @classmethod
    def from_artefact(cls, path, io: IOSpec, device, threads: int = 1) -> "AotiBackend":
        return cls(path, io, device)

    def _load(self) -> None:
        if not self.path.exists():
            raise HdysError(f"AOTInductor package {self.path} not found; re-export the engine")
        try:
            self.runner = torch._inductor.aoti_load_package(str(self.path))
        except Exception as exc:  # torch raises RuntimeError with a C++ trace
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise HdysError(f"cannot load AOTInductor package {self.path} ({first}); rebuild it "
                            f"with this torch ({torch.__version__})") from None

    @torch.inference_mode()
    def _run(self) -> None:
        res = self.runner(*self.inputs.values())
        for name, t in zip(OUTPUT_NAMES, res):
            self.outputs[name].copy_(t)

    def _release(self) -> None:
        self.runner = None

    def clone(self) -> "AotiBackend":
        return type(self)(self.path, self.io, self.device)
