"""Shared pieces of the live commands (serve, replay, listen, demo): argument types whose
errors name the value received, signal handling, and the terminal view of estimates."""

from __future__ import annotations

import argparse
import math
import signal
import threading

import numpy as np

from hdys_rt import representations as reps, wire

#: Muscles shown in live views when the model estimates activations.
VIEW_MUSCLES = ("glmax1_r", "recfem_r", "vaslat_r", "bflh_r", "gasmed_r", "soleus_r",
                "tibant_r", "soleus_l", "tibant_l")


def positive_float(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (v > 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return v


def positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return v


def endpoint(text: str) -> str:
    from hdys_rt.streams.zmq import _ENDPOINT

    if not _ENDPOINT.match(text):
        raise argparse.ArgumentTypeError(
            f"expected tcp://HOST:PORT, ipc://PATH or inproc://NAME, got {text!r}")
    return text


def stop_on_signals() -> threading.Event:
    """An event set by SIGINT / SIGTERM (handlers installed from the main thread)."""
    ev = threading.Event()

    def handler(signum, _frame):
        ev.signum = signal.Signals(signum).name
        ev.set()

    ev.signum = None
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGTERM, handler)
    return ev


def _bar(v: float, scale: float, width: int = 12, signed: bool = True) -> str:
    if not math.isfinite(v):
        return " " * (2 * width + 1 if signed else width)
    n = int(round(min(1.0, abs(v) / scale) * width))
    if not signed:
        return ("█" * n).ljust(width)
    left = ("█" * n).rjust(width) if v < 0 else " " * width
    right = ("█" * n).ljust(width) if v >= 0 else " " * width
    return f"{left}|{right}"


def render(title: str, outputs: dict[str, np.ndarray], channels: dict[str, tuple[str, ...]],
           units: dict[str, str], status: str, flags: int = 0) -> str:
    """A compact text view of one estimate: joint torques, a few muscles, GRF, and status."""
    lines = [title, status + (f"   flags: {','.join(wire.flag_names(flags))}" if flags else ""),
             ""]
    tq = "torques_rajagopal" if "torques_rajagopal" in outputs else next(
        (k for k in outputs if reps.is_torque(k)), None)
    if tq is not None:
        lines.append(f"Joint torques ({units.get(tq, '')})")
        for name, v in list(zip(channels[tq], outputs[tq]))[:23]:
            lines.append(f"  {name:<18}{v:+7.2f} {_bar(float(v), 2.0)}")
    for key, label in (("activations", "Muscle activations"), ("semg", "sEMG envelopes")):
        if key in outputs:
            lines.append(f"{label} ({units.get(key, '')})")
            chan = channels[key]
            for m in VIEW_MUSCLES:
                if m in chan:
                    v = float(outputs[key][chan.index(m)])
                    lines.append(f"  {m:<18}{v:7.2f} {_bar(v, 1.0, 20, signed=False)}")
            break
    if "grf" in outputs:
        g = dict(zip(channels["grf"], outputs["grf"].tolist()))
        lines.append(f"GRF ({units.get('grf', '')})  " + "  ".join(
            f"{k} {g[k]:+.2f}" for k in ("r_fy", "l_fy", "r_fx", "l_fx") if k in g))
    return "\n".join(lines)
