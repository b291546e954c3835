"""Torch backends: the ``torch`` engine (eager, CPU/CUDA) and ``cudagraph`` (the step captured
once as a CUDA graph, CUDA only)."""

from __future__ import annotations

import logging

import torch

from hdys_rt.backends.base import Backend, IOSpec
from hdys_rt.errors import HdysError
from hdys_rt.model.step import OUTPUT_NAMES, StreamingStep

log = logging.getLogger(__name__)


class TorchBackend(Backend):
    """The step in torch eager mode. ``step`` is shared (read-only) between clones."""

    name = "torch"
    dynamic_batch = True

    def __init__(self, step: StreamingStep, io: IOSpec, device="cpu"):
        super().__init__(io, device)
        self.step = step
        self.points = io.max_points  # marker rows run per step (see use_points)

    @classmethod
    def from_step(cls, step: StreamingStep, io: IOSpec, device) -> "TorchBackend":
        return cls(step, io, device)

    def use_points(self, n: int) -> None:
        self.points = max(1, min(int(n), self.io.max_points))

    def _load(self) -> None:
        self.step = self.step.to(self.device)

    @torch.inference_mode()
    def _run(self) -> None:
        inp, n, b = self.inputs, self.points, self.batch
        hist = (inp["history"][:b, :, :n],) if "history" in inp else ()
        res = self.step(inp["points"][:b, :n], inp["mask"][:b, :n], inp["k_cache"][:b],
                        inp["v_cache"][:b], inp["attn_bias"][:b], *hist)
        for name, t in zip(OUTPUT_NAMES, res):
            self.outputs[name][:b].copy_(t)

    def clone(self) -> "TorchBackend":
        return type(self)(self.step, self.io, self.device)


class CudaGraphBackend(TorchBackend):
    """The step captured once as a CUDA graph over static input/output tensors, then replayed:
    one launch per step, no Python op dispatch. Inputs must be written in place (they are the
    graph's static inputs); ``outputs`` are the graph's static outputs."""

    name = "cudagraph"
    dynamic_batch = False  # the graph was captured for its static shapes

    def __init__(self, step: StreamingStep, io: IOSpec, device="cuda"):
        super().__init__(step, io, device)
        if self.device.type != "cuda":
            raise HdysError(f"the cudagraph backend needs a CUDA device, got {self.device}")
        if not torch.cuda.is_available():
            raise HdysError("the cudagraph backend needs CUDA; torch reports none available")
        self.graph = None

    def _load(self) -> None:
        super()._load()
        with torch.inference_mode():
            for name, t in self.inputs.items():  # valid warm-up values (first-step bias)
                t.zero_()
            self.inputs["mask"].fill_(1.0)
            self.inputs["attn_bias"].fill_(float("-inf"))
            side = torch.cuda.Stream(self.device)
            side.wait_stream(torch.cuda.current_stream(self.device))
            with torch.cuda.stream(side):
                for _ in range(3):  # warm-up on a side stream before capture (documented need)
                    self.step(*self.inputs.values())
            torch.cuda.current_stream(self.device).wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                res = self.step(*self.inputs.values())
            self.outputs = dict(zip(OUTPUT_NAMES, res))
        torch.cuda.synchronize(self.device)
        log.info("captured the step as a CUDA graph (%s)", self.io.inputs[0].shape)

    def use_points(self, n: int) -> None:
        """The graph was captured at ``max_points``: padding is run."""

    def _run(self) -> None:
        self.graph.replay()

    def _release(self) -> None:
        self.graph = None
