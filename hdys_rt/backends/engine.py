"""Engine artefacts: export the streaming step to ONNX / AOTInductor / TensorRT, write and check
``engine.json``, and open an engine folder as a :class:`~hdys_rt.backends.base.Backend`.

An engine folder (``engines/NAME/``) holds the artefact (``step.onnx``, ``step.pt2`` or
``step.plan`` + the ``step.onnx`` it was built from and the TensorRT timing cache) and
``engine.json``::

    {"format": "hdys-engine", "version": 1, "engine": "onnx", "artefact": "step.onnx",
     "artefact_sha256": "...", "device": "cpu", "precision": "fp32",
     "inputs": {"points": {"shape": [1, 64, 3], "dtype": "float32"}, ...},
     "outputs": {"out": {...}, "k_new": {...}, "v_new": {...}},
     "batch": 1, "max_points": 64, "window": 32, "rate": 100.0, "input_kind": "markers",
     "outputs_order": [...], "output_channels": {...}, "units": {...},
     "normalisation": "...", "builder": {"torch": ..., "onnx": ..., ...},
     "model": {"path": ..., "weights_sha256": ..., "config": {...}},
     "rebuild": "hdys-rt export ..."}

Loading checks the format, the artefact's hash, the source model's hash, and for compiled
artefacts the torch / TensorRT version and the GPU, and says exactly what to rebuild.
"""

from __future__ import annotations

import json
import logging
import os
import shlex
import shutil
import time
import warnings
from datetime import datetime, timezone
from pathlib import Path

import torch

from hdys_rt import __version__
from hdys_rt.backends.base import Backend, IOSpec
from hdys_rt.errors import HdysError
from hdys_rt.model.io import load_model, sha256
from hdys_rt.model.step import INPUT_NAMES, OUTPUT_NAMES, StreamingStep

log = logging.getLogger(__name__)

FORMAT, VERSION = "hdys-engine", 1
OPSET = 17  # pinned: LayerNormalization is native from 17; onnxruntime >= 1.17 and TRT 10 run it
ENGINES = ("onnx", "aoti", "tensorrt")
ARTEFACTS = {"onnx": "step.onnx", "aoti": "step.pt2", "tensorrt": "step.plan"}
NORMALISATION = ("folded into the engine: inputs are marker positions in metres (Y up; the "
                 "horizontal centroid is removed inside), outputs are physical units (each "
                 "head's last layer is scaled by the model's std and shifted by its mean)")


# --- exporting --------------------------------------------------------------------------------

def export_onnx(step: StreamingStep, path: str | Path, batch: int = 1, max_points: int = 64,
                dynamic_points: bool = False) -> None:
    """Write the step as ONNX (opset :data:`OPSET`, legacy TorchScript exporter: no onnxscript
    needed). ``dynamic_points`` leaves the marker axis symbolic (the TensorRT source, whose
    optimisation profile spans it); otherwise every shape is static."""
    ex = step.example_inputs(batch, max_points)
    axes = {"points": {1: "points"}, "mask": {1: "points"}} if dynamic_points else None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(step.float().cpu(), ex, str(path), input_names=list(INPUT_NAMES),
                          output_names=list(OUTPUT_NAMES), opset_version=OPSET,
                          dynamic_axes=axes, do_constant_folding=True, dynamo=False)
    try:
        import onnx  # the onnx extra: check what was written
    except ImportError:
        log.warning("onnx is not installed: %s written unchecked", path)
        return
    onnx.checker.check_model(str(path))


def export_aoti(step: StreamingStep, path: str | Path, batch: int = 1, max_points: int = 64,
                device: str = "cpu") -> None:
    """Compile the step ahead of time with AOTInductor into a ``.pt2`` package for ``device``."""
    step = step.to(device)
    ex = step.example_inputs(batch, max_points, device=device)
    with torch.inference_mode(False), torch.no_grad():
        ep = torch.export.export(step, ex)
    torch._inductor.aoti_compile_and_package(ep, package_path=str(path))


def _versions() -> dict:
    v = {"hdys_rt": __version__, "torch": torch.__version__, "python": os.sys.version.split()[0]}
    for mod in ("onnx", "onnxruntime"):
        try:
            v[mod] = __import__(mod).__version__
        except ImportError:
            pass
    return v


def _gpu(device: torch.device) -> dict | None:
    if device.type != "cuda":
        return None
    p = torch.cuda.get_device_properties(device)
    return {"name": p.name, "compute_capability": f"{p.major}.{p.minor}"}


def export_engine(engine: str, model: str | None, out: str | Path, batch: int = 1,
                  max_points: int | None = 64, device: str = "cpu", fp16: bool = False,
                  input_kind: str = "markers") -> dict:
    """Export ``model`` (None = the bundled one) as ``engine`` into folder ``out``; returns the
    ``engine.json`` it wrote. ``engine="auto"`` builds every available engine for ``device``,
    times each and keeps the fastest."""
    out = Path(out)
    dev = torch.device(device)
    if engine == "auto":
        return _export_auto(model, out, batch, max_points, device, fp16, input_kind)
    if engine not in ENGINES:
        raise HdysError(f"unknown engine {engine!r}; choose one of {ENGINES + ('auto',)}")
    if batch < 1:
        raise HdysError(f"batch must be >= 1, got {batch}")
    if fp16 and engine != "tensorrt":
        raise HdysError(f"--fp16 is for --engine tensorrt (got {engine}); the others are fp32")
    if engine == "tensorrt":
        from hdys_rt.backends.tensorrt_backend import import_tensorrt

        import_tensorrt()  # one-line error naming the extra, before any work
        if dev.type != "cuda":
            raise HdysError("TensorRT engines are built on a CUDA device: add --device cuda")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise HdysError(f"--device {device}: torch reports no CUDA device here")
    mdl, meta = load_model(model, device="cpu")
    step = StreamingStep(mdl, input_kind)
    P = max_points or mdl.cfg.max_points
    if not 1 <= P <= mdl.cfg.max_points:
        raise HdysError(f"max_points must be in 1..{mdl.cfg.max_points} (the model's bound), "
                        f"got {P}")
    io = IOSpec.from_shapes(step.io_shapes(batch, P))
    out.mkdir(parents=True, exist_ok=True)
    art = out / ARTEFACTS[engine]
    t0 = time.perf_counter()
    builder = {"exporter": None}
    precision = "fp32"
    if engine == "onnx":
        export_onnx(step, art, batch, P)
        builder["exporter"] = f"torch.onnx.export (TorchScript), opset {OPSET}"
    elif engine == "aoti":
        export_aoti(step, art, batch, P, device)
        builder["exporter"] = "torch.export + torch._inductor.aoti_compile_and_package"
    else:
        from hdys_rt.backends.tensorrt_backend import build_plan

        src = out / "step.onnx"
        export_onnx(step, src, batch, P, dynamic_points=True)
        facts = build_plan(src, art, io, fp16=fp16, timing_cache=out / "timing.cache")
        builder.update(exporter=f"torch.onnx.export opset {OPSET} -> tensorrt.Builder",
                       tensorrt=facts["tensorrt"], profile=facts["profile"])
        precision = facts["precision"]
    builder["seconds"] = round(time.perf_counter() - t0, 1)
    rebuild = ["hdys-rt", "export", "--engine", engine, "--out", str(out), "--batch", str(batch),
               "--max-points", str(P), "--device", device]
    if model:
        rebuild += ["--model", str(model)]
    if fp16:
        rebuild.append("--fp16")
    if input_kind != "markers":
        rebuild += ["--input-kind", input_kind]
    info = {
        "format": FORMAT, "version": VERSION, "engine": engine, "artefact": art.name,
        "artefact_sha256": sha256(art), "device": dev.type, "gpu": _gpu(dev),
        "precision": precision, **io.to_dict(), "batch": batch, "max_points": P,
        "window": mdl.cfg.window, "rate": float(meta.get("rate", 100.0)),
        "input_kind": input_kind, "outputs_order": list(step.outputs),
        "output_channels": {k: list(meta["outputs"][k]) for k in step.outputs},
        "units": {k: meta["units"][k] for k in step.outputs}, "normalisation": NORMALISATION,
        "builder": {**builder, **_versions()},
        "model": {"path": str(model) if model else "(bundled)",
                  "weights_sha256": meta.get("weights_sha256"), "config": mdl.cfg.to_dict()},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "rebuild": shlex.join(rebuild),
    }
    (out / "engine.json").write_text(json.dumps(info, indent=1, ensure_ascii=False))
    log.info("exported %s engine to %s in %.1f s", engine, out, builder["seconds"])
    return info


def available_engines(device: str = "cpu") -> list[str]:
    """Engines that can be built and run here for ``device``."""
    dev = torch.device(device)
    names = []
    try:
        import onnx  # noqa: F401
        import onnxruntime as ort

        if dev.type == "cpu" or "CUDAExecutionProvider" in ort.get_available_providers():
            names.append("onnx")
    except ImportError:
        pass
    if shutil.which(os.environ.get("CXX", "g++")) or shutil.which("c++"):
        names.append("aoti")  # AOTInductor needs a C++ compiler
    if dev.type == "cuda":
        from hdys_rt.backends.tensorrt_backend import tensorrt_version

        if tensorrt_version():
            names.append("tensorrt")
    return names


def time_backend(backend: Backend, steps: int = 300, warmup: int = 50) -> float:
    """Median seconds per ``infer`` of an active backend (first-step inputs)."""
    import numpy as np

    backend.inputs["mask"].fill_(1.0)
    backend.inputs["attn_bias"].fill_(float("-inf"))
    sync = (lambda: torch.cuda.synchronize(backend.device)) if backend.device.type == "cuda" \
        else (lambda: None)
    for _ in range(warmup):
        backend.infer()
    sync()
    ts = np.empty(steps)
    for i in range(steps):
        t = time.perf_counter()
        backend.infer()
        sync()
        ts[i] = time.perf_counter() - t
    return float(np.median(ts))


def _export_auto(model, out, batch, max_points, device, fp16, input_kind) -> dict:
    names = available_engines(device)
    if not names:
        raise HdysError(f"no engine can be built for {device} here (install 'hdys-rt[onnx]' or "
                        "a C++ compiler for AOTInductor)")
    tmp = Path(out) / ".candidates"
    times = {}
    for name in names:
        d = tmp / name
        export_engine(name, model, d, batch, max_points, device, fp16 and name == "tensorrt",
                      input_kind)
        with open_engine(d, device=device) as be:
            times[name] = time_backend(be)
        log.info("auto: %s step %.3f ms", name, times[name] * 1e3)
    best = min(times, key=times.get)
    for f in (tmp / best).iterdir():
        shutil.move(str(f), Path(out) / f.name)
    shutil.rmtree(tmp)
    info = read_engine(out)
    info["rebuild"] = info["rebuild"].replace(shlex.quote(str(tmp / best)), shlex.quote(str(out)))
    info["auto"] = {"candidates_ms": {k: round(v * 1e3, 4) for k, v in times.items()},
                    "picked": best}
    (Path(out) / "engine.json").write_text(json.dumps(info, indent=1, ensure_ascii=False))
    return info


# --- loading and checking ---------------------------------------------------------------------

def read_engine(folder: str | Path) -> dict:
    """The folder's ``engine.json``, format-checked."""
    js = Path(folder) / "engine.json"
    if not js.exists():
        raise HdysError(f"{folder}: no engine.json (not an engine folder); build one with "
                        "`hdys-rt export --engine onnx|aoti|tensorrt --out DIR`")
    try:
        info = json.loads(js.read_text())
    except ValueError as exc:
        raise HdysError(f"{js}: not valid JSON ({exc})") from None
    if info.get("format") != FORMAT or info.get("version") != VERSION:
        raise HdysError(f"{js}: not an {FORMAT} v{VERSION} file (format {info.get('format')!r} "
                        f"v{info.get('version')!r}); rebuild the engine with this hdys-rt")
    return info


def check_engine(info: dict, folder: str | Path, device: str | None = None,
                 model_sha256: str | None = None) -> list[str]:
    """Every reason the engine cannot serve here, each saying what to rebuild ([] = fine)."""
    folder = Path(folder)
    rebuild = info.get("rebuild", "hdys-rt export ...")
    why = []
    art = folder / info.get("artefact", "")
    if not art.is_file():
        why.append(f"artefact {art} is missing")
    elif info.get("artefact_sha256") and sha256(art) != info["artefact_sha256"]:
        why.append(f"artefact {art} changed since it was built (hash mismatch)")
    if model_sha256 and info.get("model", {}).get("weights_sha256") != model_sha256:
        why.append(f"model changed: the engine was built from weights "
                   f"{str(info.get('model', {}).get('weights_sha256'))[:12]}, this model is "
                   f"{model_sha256[:12]}")
    dev = torch.device(device or info.get("device", "cpu"))
    kind = info.get("engine")
    built = info.get("builder", {})
    if kind in ("aoti", "tensorrt") and dev.type != info.get("device"):
        why.append(f"built for {info.get('device')}, asked to run on {dev.type}")
    if kind == "aoti" and built.get("torch") != torch.__version__:
        why.append(f"AOTInductor package built with torch {built.get('torch')}, this is "
                   f"torch {torch.__version__}")
    if kind == "tensorrt":
        from hdys_rt.backends.tensorrt_backend import tensorrt_version

        have = tensorrt_version()
        if have is None:
            from hdys_rt.backends.tensorrt_backend import EXTRA_HINT

            return [EXTRA_HINT]
        if have != built.get("tensorrt"):
            why.append(f"plan built with TensorRT {built.get('tensorrt')}, this is {have}")
    if kind in ("aoti", "tensorrt") and dev.type == "cuda":
        if not torch.cuda.is_available():
            why.append("no CUDA device here")
        else:
            here = _gpu(dev)
            gpu = info.get("gpu") or {}
            if gpu.get("compute_capability") != here["compute_capability"]:
                why.append(f"built on {gpu.get('name')} (sm {gpu.get('compute_capability')}), "
                           f"this GPU is {here['name']} (sm {here['compute_capability']})")
    return [f"{w}; rebuild: {rebuild}" for w in why]


def open_engine(folder: str | Path, device: str | None = None,
                model_sha256: str | None = None, threads: int = 1) -> Backend:
    """The backend for an engine folder (checked; not yet active)."""
    info = read_engine(folder)
    why = check_engine(info, folder, device, model_sha256)
    if why:
        raise HdysError(f"engine {folder}: " + " | ".join(why))
    io = IOSpec.from_dict(info)
    art = Path(folder) / info["artefact"]
    dev = device or info.get("device", "cpu")
    if info["engine"] == "onnx":
        from hdys_rt.backends.onnxruntime_backend import OnnxRuntimeBackend

        return OnnxRuntimeBackend(art, io, dev, threads=threads)
    if info["engine"] == "aoti":
        from hdys_rt.backends.aoti_backend import AotiBackend

        return AotiBackend(art, io, dev)
    if info["engine"] == "tensorrt":
        from hdys_rt.backends.tensorrt_backend import TensorRTBackend

        return TensorRTBackend(art, io, dev)
    raise HdysError(f"engine {folder}: unknown engine kind {info['engine']!r}; rebuild it")
