"""Saving and loading models: safetensors weights + a JSON of metadata. Never unpickles.

A model is two files side by side: ``NAME.safetensors`` (weights and normalisation buffers) and
``NAME.json``::

    {"format": "hdys-model", "version": 1, "config": {...ModelConfig...},
     "rate": 100.0, "outputs": {"torques_rajagopal": [channel, ...], ...},
     "units": {"torques_rajagopal": "N·m/kg", ...},
     "weights_sha256": "...", "training": {...}, "corpus": {...}, "eval": {...}}
"""

from __future__ import annotations

import hashlib
import json
import os
from importlib import resources
from pathlib import Path

from safetensors.torch import load_file, save_file

from hdys_rt import representations as reps
from hdys_rt.errors import HdysError
from hdys_rt.model.config import ModelConfig
from hdys_rt.model.hdys import HDyS

FORMAT_VERSION = 1
DEFAULT_MODEL_NAME = "hdys_default"


def bundled_model_path() -> Path:
    """Path (without suffix) of the default model shipped inside the package."""
    return Path(str(resources.files("hdys_rt") / "assets" / "model" / DEFAULT_MODEL_NAME))


def _stem(path: str | os.PathLike) -> Path:
    p = Path(path)
    if p.is_dir():
        cands = sorted(p.glob("*.safetensors"))
        if len(cands) != 1:
            raise HdysError(f"{p}: expected exactly one .safetensors model in the folder, "
                            f"found {len(cands)}")
        p = cands[0]
    return p.with_suffix("") if p.suffix in (".safetensors", ".json") else p


def sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_model(model: HDyS, path: str | os.PathLike, rate: float, extra: dict | None = None
               ) -> Path:
    """Write ``path.safetensors`` and ``path.json``; returns the stem path."""
    stem = _stem(path)
    stem.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    weights = stem.with_suffix(".safetensors")
    save_file(state, str(weights))
    meta = {
        "format": "hdys-model",
        "version": FORMAT_VERSION,
        "config": model.cfg.to_dict(),
        "rate": float(rate),
        "outputs": {k: list(reps.get(k).channels) for k in model.cfg.dyn_outputs},
        "units": {k: reps.get(k).unit for k in model.cfg.dyn_outputs},
        "inputs": list(model.cfg.kin_inputs),
        "weights_sha256": sha256(weights),
    }
    meta.update(extra or {})
    stem.with_suffix(".json").write_text(json.dumps(meta, indent=1, ensure_ascii=False))
    return stem


def read_metadata(path: str | os.PathLike | None = None) -> dict:
    stem = bundled_model_path() if path is None else _stem(path)
    js = stem.with_suffix(".json")
    if not js.exists():
        raise HdysError(f"model metadata {js} not found (a model is NAME.safetensors + NAME.json)")
    try:
        meta = json.loads(js.read_text())
    except ValueError as exc:
        raise HdysError(f"{js}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != "hdys-model" \
            or meta.get("version") != FORMAT_VERSION:
        raise HdysError(f"{js}: not an hdys-model v{FORMAT_VERSION} metadata file")
    for key, kind in (("config", dict), ("weights_sha256", str), ("rate", (int, float))):
        if not isinstance(meta.get(key), kind) or meta.get(key) in ("", None):
            raise HdysError(f"{js}: {key!r} is missing or not a {getattr(kind, '__name__', 'number')}"
                            "; a model's JSON must name its weights' hash (re-save the model with "
                            "hdys-rt train / save_model)")
    return meta


def load_model(path: str | os.PathLike | None = None, device: str = "cpu",
               check_hash: bool = True) -> tuple[HDyS, dict]:
    """Load a model (None = the bundled default) in eval mode; returns (model, metadata)."""
    stem = bundled_model_path() if path is None else _stem(path)
    meta = read_metadata(stem)
    weights = stem.with_suffix(".safetensors")
    if not weights.exists():
        raise HdysError(f"model weights {weights} not found")
    if check_hash and sha256(weights) != meta["weights_sha256"]:  # the hash is required
        raise HdysError(f"{weights}: weights do not match the hash in {stem.with_suffix('.json')}"
                        "; re-export the model")
    try:
        cfg = ModelConfig.from_dict(meta["config"])
    except (TypeError, ValueError, KeyError) as exc:
        raise HdysError(f"{stem.with_suffix('.json')}: bad 'config' ({exc})") from None
    model = HDyS(cfg)
    try:
        state = load_file(str(weights), device="cpu")  # safetensors: no pickle involved
    except Exception as exc:  # truncated or not a safetensors file (SafetensorError, OSError)
        raise HdysError(f"{weights}: not a readable safetensors file ({exc})") from None
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shape mismatches
        raise HdysError(f"{weights}: weights do not fit the config in "
                        f"{stem.with_suffix('.json')} ({str(exc).splitlines()[-1].strip()})"
                        ) from None
    # models saved before novelty scores were calibrated: NaN scores (see hdys.NoveltyScore)
    missing = [k for k in missing if not k.startswith("novelty.")]
    if missing or unexpected:
        raise HdysError(f"{weights}: weights do not fit the config (missing {missing[:3]}, "
                        f"unexpected {unexpected[:3]})")
    return model.to(device).eval(), meta


__all__ = ["save_model", "load_model", "read_metadata", "bundled_model_path"]
