"""Every user-reachable failure of a bad file or argument is one line on stderr and exit 1,
never a traceback: a walk through them with the real command line (in this process, so an
escaping exception fails the test; one case also as its own process)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import pytest
import torch
from loopback import free_endpoint

from hdys_rt.cli import main
from hdys_rt.model.io import sha256

CLI = [sys.executable, "-m", "hdys_rt.cli"]


@pytest.fixture
def hdys(capsys):
    """Run the command line in this process: (exit code, stderr)."""
    def run(*args):
        capsys.readouterr()
        rc = main([str(a) for a in args])
        return rc, capsys.readouterr().err
    return run


def one_line_error(res, *fragments):
    rc, err = res
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 1 and len(lines) == 1, err
    for f in fragments:
        assert f in lines[0], lines[0]


@pytest.fixture
def model_copy(model_path, tmp_path):
    """A copy of the tiny model to damage: (stem, json path, weights path)."""
    stem = tmp_path / "m"
    for ext in (".json", ".safetensors"):
        shutil.copyfile(model_path + ext, str(stem) + ext)
    return stem, stem.with_suffix(".json"), stem.with_suffix(".safetensors")


def serve_once(hdys, stem, *extra):
    return hdys("serve", "--source", "replay", "--seconds", "1", "--model", stem,
                "--publish", free_endpoint(), *extra)


@pytest.mark.parametrize("damage, fragment", [
    (lambda meta: [meta], "not an hdys-model v1 metadata file"),
    (lambda meta: {k: v for k, v in meta.items() if k != "weights_sha256"},
     "'weights_sha256' is missing"),
    (lambda meta: {**meta, "weights_sha256": ""}, "'weights_sha256' is missing"),
    (lambda meta: {k: v for k, v in meta.items() if k != "config"}, "'config' is missing"),
])
def test_damaged_model_json(hdys, model_copy, damage, fragment):
    stem, js, _ = model_copy
    js.write_text(json.dumps(damage(json.loads(js.read_text()))))
    one_line_error(serve_once(hdys, stem), "hdys-rt serve: error:", fragment)


def test_modified_or_truncated_weights(hdys, model_copy):
    stem, _, weights = model_copy
    data = weights.read_bytes()
    weights.write_bytes(data[:-8] + b"\0" * 8)  # same size, other weights
    one_line_error(serve_once(hdys, stem), "weights do not match the hash")
    weights.write_bytes(data[: len(data) // 2])
    one_line_error(serve_once(hdys, stem), "weights do not match the hash")
    js = stem.with_suffix(".json")  # truncated, with a hash that matches what is left
    js.write_text(json.dumps({**json.loads(js.read_text()), "weights_sha256": sha256(weights)}))
    one_line_error(serve_once(hdys, stem), "not a readable safetensors file")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_device_on_a_cpu_machine(hdys, model_path):
    one_line_error(serve_once(hdys, model_path, "--device", "cuda"), "CUDA is not available here",
                   "use --device cpu")


def test_bad_device_export_and_keys_targets(hdys, model_path, tmp_path):
    one_line_error(serve_once(hdys, model_path, "--device", "bogus"),
                   "--device must be cpu, cuda, cuda:N or auto, got 'bogus'")
    afile = tmp_path / "taken"
    afile.write_text("x")
    one_line_error(hdys("export", "--engine", "onnx", "--model", model_path, "--out", afile),
                   "is a file; give a folder for the engine")
    one_line_error(hdys("keys", "generate", afile), "is a file; give a folder")
    res = subprocess.run(CLI + ["keys", "generate", str(afile)], capture_output=True, text=True,
                         timeout=300)  # the same as its own process: one line, exit 1
    one_line_error((res.returncode, res.stderr), "is a file; give a folder")


@pytest.fixture(scope="module")
def engine_dir(model_path, tmp_path_factory):
    """A real onnxruntime engine of the tiny model, exported once for this module."""
    pytest.importorskip("onnxruntime")
    from hdys_rt.backends.engine import export_engine

    out = tmp_path_factory.mktemp("engine") / "ort"
    export_engine("onnxruntime", model_path, out, max_points=64)
    return out


@pytest.fixture
def engine_copy(engine_dir, tmp_path):
    """A copy of the engine folder to damage: (folder, its engine.json as a dict)."""
    out = tmp_path / "eng"
    shutil.copytree(engine_dir, out)
    return out, json.loads((out / "engine.json").read_text())


def test_intact_engine_serves(hdys, model_path, engine_copy):
    folder, _ = engine_copy
    rc, err = serve_once(hdys, model_path, "--engine", folder)
    assert rc == 0, err


@pytest.mark.parametrize("damage, fragment", [
    (lambda info, folder: [info], "a JSON list, not an object"),
    (lambda info, folder: {k: v for k, v in info.items() if k != "artefact_sha256"},
     "'artefact_sha256' is missing"),
    (lambda info, folder: {**info, "artefact_sha256": ""}, "'artefact_sha256' is missing"),
    (lambda info, folder: {k: v for k, v in info.items() if k != "artefact"},
     "'artefact' is missing"),
    (lambda info, folder: {k: v for k, v in info.items() if k != "inputs"},
     "'inputs' is missing"),
    (lambda info, folder: {k: v for k, v in info.items() if k != "format"},
     "not an hdys-engine v1 file"),
    (lambda info, folder: {**info, "artefact": "../x.onnx"}, "must be a plain file name"),
    (lambda info, folder: {**info, "artefact": str(folder / info["artefact"])},
     "must be a plain file name"),
    (lambda info, folder: {**info, "artefact": ".."}, "must be a plain file name"),
])
def test_damaged_engine_json(hdys, model_path, engine_copy, damage, fragment):
    folder, info = engine_copy
    (folder / "engine.json").write_text(json.dumps(damage(info, folder)))
    one_line_error(serve_once(hdys, model_path, "--engine", folder), "hdys-rt serve: error:",
                   fragment)


def test_engine_artefact_outside_the_folder_is_not_loaded(hdys, model_path, engine_copy):
    """A valid artefact one folder up, named with its right hash: still refused."""
    folder, info = engine_copy
    outside = folder.parent / "x.onnx"
    shutil.copyfile(folder / info["artefact"], outside)
    (folder / info["artefact"]).unlink()
    (folder / "engine.json").write_text(json.dumps({**info, "artefact": "../x.onnx",
                                                    "artefact_sha256": sha256(outside)}))
    one_line_error(serve_once(hdys, model_path, "--engine", folder), "../x.onnx",
                   "must be a plain file name")


def test_modified_engine_artefact(hdys, model_path, engine_copy):
    folder, info = engine_copy
    art = folder / info["artefact"]
    data = art.read_bytes()
    art.write_bytes(data[:-4] + b"\0\0\0\0")
    one_line_error(serve_once(hdys, model_path, "--engine", folder), "hash mismatch")


def test_corrupt_c3d_is_one_line(hdys, tmp_path):
    """4 changed bytes in a real C3D's parameter section (ANALOG:OFFSET renamed, which made
    ezc3d segfault): one line, exit 1, from the file-reading commands."""
    pytest.importorskip("ezc3d")
    from pathlib import Path

    src = Path(__file__).resolve().parents[1].parent / "shared/data/real/c3d/btk_Eb015pr.c3d"
    if not src.is_file():
        pytest.skip(f"{src} not found (shared data)")
    raw = bytearray(src.read_bytes())
    i = raw.index(b"\x06\x02OFFSET", 512)
    raw[i + 2:i + 6] = b"XFFS"
    bad = tmp_path / "bad.c3d"
    bad.write_bytes(bytes(raw))
    one_line_error(hdys("estimate", bad, "--out", tmp_path / "o.csv"), "hdys-rt estimate: error:",
                   "ANALOG:OFFSET is missing")
