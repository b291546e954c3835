"""Torch device names as users type them (``cpu``, ``cuda``, ``cuda:N``, ``auto``), checked
against what this machine has, with an error that says what to type instead."""

from __future__ import annotations

import re

from hdys_rt.errors import HdysError

_DEVICE = re.compile(r"^(cpu|cuda(:\d+)?|auto)$")


def check_device(name: str, allow_auto: bool = True, require_present: bool = True) -> str:
    """``name`` resolved to a device this machine has (``auto``: cuda if present, else cpu);
    raises :class:`HdysError` for an unknown name or (``require_present``) a GPU that is not
    there (export leaves that to the engine registry, which names every missing piece)."""
    import torch

    text = str(name).strip().lower()
    if not _DEVICE.match(text) or (text == "auto" and not allow_auto):
        choices = "cpu, cuda, cuda:N" + (" or auto" if allow_auto else "")
        raise HdysError(f"--device must be {choices}, got {name!r}")
    if text == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if text.startswith("cuda") and require_present:
        if not torch.cuda.is_available():
            why = ("this torch is a CPU-only build" if torch.version.cuda is None
                   else "no NVIDIA GPU is visible")
            raise HdysError(f"--device {name}: CUDA is not available here ({why}); use "
                            "--device cpu")
        idx = int(text.split(":")[1]) if ":" in text else 0
        if idx >= torch.cuda.device_count():
            raise HdysError(f"--device {name}: this machine has {torch.cuda.device_count()} "
                            "CUDA device(s)")
    return text
