"""Engine artefacts: export the streaming step to ONNX / AOTInductor / TensorRT, write and check
``engine.json``, and open an engine folder as a :class:`~hdys_rt.backends.base.Backend`.

An engine folder (``engines/NAME/``) holds the artefact (``step.onnx``, ``step.pt2`` or
``step.plan`` + the ``step.onnx`` it was built from and the TensorRT timing cache) and
``engine.json``::

    {"format": "hdys-engine", "version": 1, "engine": "onnxruntime", "artefact": "step.onnx",
     "artefact_sha256": "...", "device": "cpu", "precision": "fp32",
     "inputs": {"points": {"shape": [1, 64, 3], "dtype": "float32"}, ...},
     "outputs": {"out": {...}, "k_new": {...}, "v_new": {...}},
     "batch": 1, "max_points": 64, "window": 32, "rate": 100.0, "input_kind": "markers",
     "outputs_order": [...], "output_channels": {...}, "units": {...},
     "normalisation": "...", "builder": {"torch": ..., "onnx": ..., ...},
     "model": {"path": ..., "weights_sha256": ..., "config": {...}},
     "rebuild": "hdys-rt export ..."}

Loading checks the format, the artefact's hash, the source model's hash, and for compiled
artefacts the torch / TensorRT version and the GPU, and says exactly what to rebuild. Which
engines exist, their artefact names and exporters: :mod:`hdys_rt.backends.registry`.
"""

from __future__ import annotations

import copy
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
from hdys_rt.backends import registry
from hdys_rt.backends.base import Backend, IOSpec
from hdys_rt.errors import HdysError
from hdys_rt.model.io import load_model, sha256
from hdys_rt.model.step import OUTPUT_NAMES, StreamingStep

log = logging.getLogger(__name__)

FORMAT, VERSION = "hdys-engine", 1
OPSET = 17  # pinned: LayerNormalization is native from 17; onnxruntime >= 1.17 and TRT 10 run it
FASTEST = "fastest"  # export only: build every exportable engine here, time each, keep the best
NORMALISATION = ("folded into the engine: inputs are marker positions in metres (Y up; the "
                 "horizontal centroid is removed inside), outputs are physical units (each "
                 "head's last layer is scaled by the model's std and shifted by its mean)")


# --- exporting --------------------------------------------------------------------------------

def _frozen_copy(step: StreamingStep, device="cpu", dtype=torch.float32) -> StreamingStep:
    """A copy of the step (and of the model modules it references) to trace: exporting never
    moves or converts the caller's model."""
    return copy.deepcopy(step).to(device=device, dtype=dtype).requires_grad_(False).eval()


def export_onnx(step: StreamingStep, path, batch: int = 1, max_points: int = 64,
                dynamic_points: bool = False, dynamic_batch: bool = False) -> None:
    """Write the step as ONNX (opset :data:`OPSET`, legacy TorchScript exporter: no onnxscript
    needed) to ``path`` (a file name or a binary file object). ``dynamic_points`` leaves the
    marker axis symbolic (up to ``max_points``: onnxruntime then runs only the rows in use, and
    TensorRT's optimisation profile spans it), ``dynamic_batch`` the batch axis of every input
    and output (onnxruntime runs only the streams in use); otherwise every shape is static."""
    step = _frozen_copy(step)
    ex = step.example_inputs(batch, max_points)
    axes: dict[str, dict[int, str]] = {}
    if dynamic_points:
        axes.update({"points": {1: "points"}, "mask": {1: "points"}})
        if "history" in step.input_names:
            axes["history"] = {2: "points"}
    if dynamic_batch:
        for name in (*step.input_names, *OUTPUT_NAMES):
            axes.setdefault(name, {})[0] = "batch"
    axes = axes or None
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(step, ex, path if hasattr(path, "write") else str(path),
                          input_names=list(step.input_names), output_names=list(OUTPUT_NAMES),
                          opset_version=OPSET, dynamic_axes=axes, do_constant_folding=True,
                          dynamo=False)
    try:
        import onnx  # the onnx extra: check what was written
    except ImportError:
        log.warning("onnx is not installed: %s written unchecked", path)
        return
    if hasattr(path, "getvalue"):
        onnx.checker.check_model(onnx.load_from_string(path.getvalue()))
    else:
        onnx.checker.check_model(str(path))


def export_aoti(step: StreamingStep, path: str | Path, batch: int = 1, max_points: int = 64,
                device: str = "cpu") -> None:
    """Compile the step ahead of time with AOTInductor into a ``.pt2`` package for ``device``."""
    step = _frozen_copy(step, device)
    ex = step.example_inputs(batch, max_points, device=device)
    with torch.inference_mode(False), torch.no_grad():
        ep = torch.export.export(step, ex)
    torch._inductor.aoti_compile_and_package(ep, package_path=str(path))


# exporters named by the registry: (step, artefact path, io, device, fp16, folder) -> facts

def export_onnxruntime(step, path, io: IOSpec, device, fp16, folder) -> dict:
    export_onnx(step, path, io.batch, io.max_points, dynamic_points=True)
    return {"exporter": f"torch.onnx.export (TorchScript), opset {OPSET}", "precision": "fp32"}


def export_aoti_artefact(step, path, io: IOSpec, device, fp16, folder) -> dict:
    export_aoti(step, path, io.batch, io.max_points, device)
    return {"exporter": "torch.export + torch._inductor.aoti_compile_and_package",
            "precision": "fp32"}


def export_tensorrt(step, path, io: IOSpec, device, fp16, folder) -> dict:
    from hdys_rt.backends.tensorrt_backend import build_plan

    src = Path(folder) / "step.onnx"
    export_onnx(step, src, io.batch, io.max_points, dynamic_points=True)
    facts = build_plan(src, path, io, fp16=fp16, timing_cache=Path(folder) / "timing.cache")
    return {"exporter": f"torch.onnx.export opset {OPSET} -> tensorrt.Builder",
            "tensorrt": facts["tensorrt"], "profile": facts["profile"],
            "precision": facts["precision"]}


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
    ``engine.json`` it wrote. ``engine="auto"``: the registry's choice for ``device``
    (:func:`~hdys_rt.backends.registry.resolve_auto`); ``"fastest"``: build every exportable
    engine available for ``device``, time each and keep the fastest."""
    out = Path(out)
    dev = torch.device(device)
    if engine == FASTEST:
        return _export_fastest(model, out, batch, max_points, device, fp16, input_kind)
    if engine == registry.AUTO:
        spec, why = registry.resolve_auto(device, exported=True)
        log.info("export: engine %s (%s)", spec.name, why)
    else:
        spec = registry.get(engine)
        if not spec.artefact:
            raise HdysError(f"the {spec.name} engine has nothing to export (it is built when "
                            f"the estimator loads); export one of "
                            f"{registry.names(exported=True) + (registry.AUTO, FASTEST)}")
    if batch < 1:
        raise HdysError(f"batch must be >= 1, got {batch}")
    if fp16 and not spec.fp16:
        raise HdysError(f"--fp16 is for --engine tensorrt (got {spec.name}); the others are "
                        "fp32")
    spec.require(dev)  # one-line error (a missing extra, no CUDA) before any work
    mdl, meta = load_model(model, device="cpu")
    step = StreamingStep(mdl, input_kind)
    P = max_points or mdl.cfg.max_points
    if not 1 <= P <= mdl.cfg.max_points:
        raise HdysError(f"max_points must be in 1..{mdl.cfg.max_points} (the model's bound), "
                        f"got {P}")
    io = IOSpec.from_shapes(step.io_shapes(batch, P))
    out.mkdir(parents=True, exist_ok=True)
    art = out / spec.artefact
    t0 = time.perf_counter()
    builder = spec.export(step, art, io, device, fp16, out)
    precision = builder.pop("precision")
    engine = spec.name
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


def _export_fastest(model, out, batch, max_points, device, fp16, input_kind) -> dict:
    names = [e.name for e in registry.available(device, exported=True)]
    if not names:
        raise HdysError(f"no engine can be built for {device} here (install 'hdys-rt[onnx]' or "
                        "a C++ compiler for AOTInductor)")
    tmp = Path(out) / ".candidates"
    times = {}
    for name in names:
        d = tmp / name
        export_engine(name, model, d, batch, max_points, device,
                      fp16 and registry.get(name).fp16, input_kind)
        with open_engine(d, device=device) as be:
            times[name] = time_backend(be)
        log.info("fastest: %s step %.3f ms", name, times[name] * 1e3)
    best = min(times, key=times.get)
    for f in (tmp / best).iterdir():
        shutil.move(str(f), Path(out) / f.name)
    shutil.rmtree(tmp)
    info = read_engine(out)
    info["rebuild"] = info["rebuild"].replace(shlex.quote(str(tmp / best)), shlex.quote(str(out)))
    info["fastest"] = {"candidates_ms": {k: round(v * 1e3, 4) for k, v in times.items()},
                       "picked": best}
    (Path(out) / "engine.json").write_text(json.dumps(info, indent=1, ensure_ascii=False))
    return info


# --- loading and checking ---------------------------------------------------------------------

# keys every engine.json must carry, with their JSON types: the artefact's hash is required
# (an engine whose hash was removed does not load)
REQUIRED = (("engine", str), ("artefact", str), ("artefact_sha256", str), ("inputs", dict),
            ("outputs", dict))

def read_engine(folder: str | Path) -> dict:
    """The folder's ``engine.json``, format-checked."""
    js = Path(folder) / "engine.json"
    if not js.exists():
        raise HdysError(f"{folder}: no engine.json (not an engine folder); build one with "
                        f"`hdys-rt export --engine {'|'.join(registry.names(exported=True))} "
                        "--out DIR`")
    try:
        info = json.loads(js.read_text())
    except ValueError as exc:
        raise HdysError(f"{js}: not valid JSON ({exc})") from None
    if not isinstance(info, dict):
        raise HdysError(f"{js}: not an {FORMAT} v{VERSION} file (a JSON "
                        f"{type(info).__name__}, not an object); rebuild the engine with "
                        "`hdys-rt export`")
    if info.get("format") != FORMAT or info.get("version") != VERSION:
        raise HdysError(f"{js}: not an {FORMAT} v{VERSION} file (format {info.get('format')!r} "
                        f"v{info.get('version')!r}); rebuild the engine with this hdys-rt")
    rebuild = info.get("rebuild", "hdys-rt export ...")
    for key, kind in REQUIRED:
        if not isinstance(info.get(key), kind) or info.get(key) in ("", None):
            raise HdysError(f"{js}: {key!r} is missing or not a {kind.__name__} (an engine must "
                            f"name its artefact and the artefact's hash); rebuild: {rebuild}")
    art = info["artefact"]
    if art in (".", "..") or "/" in art or "\\" in art or Path(art).is_absolute():
        raise HdysError(f"{js}: artefact {art!r} must be a plain file name inside the engine "
                        f"folder (no path); rebuild: {rebuild}")
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
    elif sha256(art) != info["artefact_sha256"]:  # required: read_engine checked it is there
        why.append(f"artefact {art} changed since it was built (hash mismatch)")
    if model_sha256 and info.get("model", {}).get("weights_sha256") != model_sha256:
        why.append(f"model changed: the engine was built from weights "
                   f"{str(info.get('model', {}).get('weights_sha256'))[:12]}, this model is "
                   f"{model_sha256[:12]}")
    dev = torch.device(device or info.get("device", "cpu"))
    try:
        spec = registry.get(info.get("engine", "?"), warn=False)  # old files: "onnx"
    except HdysError as exc:
        return [f"{exc}; rebuild: {rebuild}"]
    built = info.get("builder", {})
    if spec.pinned_to:
        if dev.type != info.get("device"):
            why.append(f"built for {info.get('device')}, asked to run on {dev.type}")
        have = registry.library_version(spec.pinned_to)
        if have is None:
            return [spec.unavailable(info.get("device", dev.type)) or
                    f"{spec.pinned_to} is not installed"]
        if have != built.get(spec.pinned_to):
            why.append(f"{spec.name} artefact built with {spec.pinned_to} "
                       f"{built.get(spec.pinned_to)}, this is {spec.pinned_to} {have}")
        if dev.type == "cuda":
            if not torch.cuda.is_available():
                why.append("no CUDA device here")
            else:
                here = _gpu(dev)
                gpu = info.get("gpu") or {}
                if gpu.get("compute_capability") != here["compute_capability"]:
                    why.append(f"built on {gpu.get('name')} (sm "
                               f"{gpu.get('compute_capability')}), this GPU is {here['name']} "
                               f"(sm {here['compute_capability']})")
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
    return registry.get(info["engine"], warn=False).from_artefact(art, io, dev, threads=threads)
