"""Engines and backends: the functional step, parity of every engine of the registry against
float64 torch over a sequence longer than the window (ring wrap-around, masked and missing
markers), the registry (names, availability, auto), engine.json checks, the export command, and
the estimator's engine choice.

Tolerances (max |engine - float64| divided by the largest |float64| value of the same output,
over every step): fp32 engines 1e-5 (onnxruntime on CUDA 1e-4: cuDNN/TF32 paths; TensorRT fp32
1e-4), TensorRT fp16 1e-2. An engine that cannot run here is skipped with the registry's reason.
"""

import copy
import json
import logging
import shutil

import numpy as np
import pytest
import torch

from hdys_rt import representations as reps
from hdys_rt.backends import registry
from hdys_rt.backends.base import Backend, IOSpec
from hdys_rt.backends.engine import check_engine, export_engine, export_onnx, open_engine
from hdys_rt.backends.torch_backends import CudaGraphBackend, TorchBackend
from hdys_rt.cli import main
from hdys_rt.errors import HdysError
from hdys_rt.model.config import ModelConfig
from hdys_rt.model.hdys import HDyS
from hdys_rt.model.io import load_model, save_model
from hdys_rt.model.step import BiasTable, StreamingStep, output_slices, push_history
from hdys_rt.model.streaming import StreamingEstimator

SMALL = ModelConfig(latent=32, point_dim=16, point_layers=2, point_heads=2, vec_hidden=32,
                    dec_layers=2, dec_heads=2, dec_ff=32, window=8, max_points=32)
PMAX = 16          # engine marker slots
P = 12             # markers in the test stream (the rest is padding)
T = 2 * SMALL.window + 5  # steps: the ring wraps around twice
FP32_TOL, FP16_TOL = 1e-5, 1e-2

try:
    import onnxruntime as ort
except ImportError:  # the onnx extra is not installed
    ort = None

HAVE_TRT = registry.library_version("tensorrt") is not None
need_ort = pytest.mark.skipif(ort is None, reason="onnxruntime not installed (hdys-rt[onnx])")


def _model(seed=0):
    torch.manual_seed(seed)
    m = HDyS(SMALL).eval()
    with torch.no_grad():  # non-trivial position bias and normalisation
        m.decoder.rel_bias.normal_()
        for k in SMALL.dyn_outputs:
            getattr(m, f"mean_{k}").normal_()
            getattr(m, f"std_{k}").uniform_(0.5, 2.0)
        for nov in m.novelty.values():  # a calibrated novelty score (every engine outputs it)
            nov.mu.normal_()
            nov.w.copy_(torch.randn_like(nov.w) / SMALL.latent ** 0.5)
    return m


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    """A freshly initialised small model saved with save_model (never the bundled one)."""
    return save_model(_model(), tmp_path_factory.mktemp("model") / "m", rate=100.0)


@pytest.fixture(scope="module")
def stream():
    """Points (T, P, 3) with NaN rows for missing markers; frame 5 has no valid marker."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(T, P, 3, generator=g) * 0.3 + torch.tensor([0.5, 1.0, -0.2])
    mask = torch.rand(T, P, generator=g) > 0.25
    mask[5] = False
    return x, mask


@pytest.fixture(scope="module")
def reference(model_path, stream):
    """Float64 offline causal forward of the same frames: (T, C + 1) concatenated outputs, then
    the novelty score of the offline encoder latent."""
    m, _ = load_model(model_path)
    x, mask = stream
    m = m.double()
    out = m.predict("markers", x[None].double(), mask[None])
    with torch.no_grad():
        z, _ = m.encode_kin("markers", x[None].double(), mask[None])
        novelty = m.novelty["markers"](z[0])  # (T,)
    return torch.cat([out[k][0] for k in SMALL.dyn_outputs] + [novelty[:, None]], -1).numpy()


def run_sequence(backend, stream, streams=1) -> np.ndarray:
    """Drive an active backend over the stream, managing the rings outside it as the estimator
    does; all ``streams`` batch rows get the same frames. Returns (T, B, C + 1): the outputs,
    then the novelty score."""
    x, mask = stream
    inp = backend.inputs
    bias = BiasTable(_model().decoder.rel_bias)
    W = SMALL.window
    outs = []
    for t in range(T):
        pts = torch.where(mask[t, :, None], x[t], torch.zeros(()))
        inp["points"].zero_()
        inp["mask"].zero_()
        inp["points"][:, :P] = pts
        inp["mask"][:, :P] = mask[t].float()
        inp["attn_bias"][:] = bias(t)
        backend.use_points(P)  # the torch engine runs only these rows; the others the padding
        out = backend.infer()
        inp["k_cache"][:, :, :, t % W] = out["k_new"]
        inp["v_cache"][:, :, :, t % W] = out["v_new"]
        if "history" in inp:  # the motion history: this frame becomes the previous one
            for b in range(inp["history"].shape[0]):
                push_history(inp["history"][b], inp["points"][b], inp["mask"][b])
        outs.append(torch.cat([out["out"], out["novelty"][:, None]], -1).float().cpu().numpy())
    return np.stack(outs)


def assert_parity(got, ref, tol):
    """Per output (and the novelty score, the last column): max error over every step and
    stream, relative to the output's range."""
    C = ref.shape[-1] - 1
    for name, sl in {**output_slices(SMALL.dyn_outputs), "novelty": slice(C, C + 1)}.items():
        scale = np.abs(ref[:, sl]).max()
        want = ref[:, None, sl] if got.ndim == 3 else ref[:, sl]  # (T, [B,] C)
        err = np.abs(got[..., sl] - want).max()
        assert err <= tol * scale, f"{name}: max error {err:.3g} > {tol} x {scale:.3g}"


def _io(batch=1):
    return IOSpec.from_shapes(StreamingStep(_model()).io_shapes(batch, PMAX))


# --- the functional step -----------------------------------------------------------------------

def test_bias_table_ages_and_unfilled_slots():
    rel = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 4)  # (L, H, W): bias = age
    bt = BiasTable(rel)
    b0 = bt(0)
    assert torch.isinf(b0).all()  # first frame: nothing cached
    b2 = bt(2)  # slots 0, 1 hold frames of age 2, 1; slot 2 (new) and 3 unfilled
    torch.testing.assert_close(b2[0, 0, :2], rel[0, 0, [2, 1]])
    assert torch.isinf(b2[..., 2:]).all()
    b9 = bt(9)  # full ring, new frame goes to slot 1, which drops out of the window
    assert torch.isinf(b9[..., 1]).all() and torch.isfinite(b9[..., [0, 2, 3]]).all()
    torch.testing.assert_close(b9[1, 2, [0, 2, 3]], rel[1, 2, [1, 3, 2]])
    assert bt.index(9) == bt.index(13)


def test_step_io_shapes_and_outputs():
    st = StreamingStep(_model())
    sh = st.io_shapes(3, PMAX)
    C = sum(reps.get(k).size for k in SMALL.dyn_outputs)
    assert sh["points"] == (3, PMAX, 3) and sh["out"] == (3, C)
    assert sh["k_cache"] == (3, 2, 2, 8, 16) and sh["k_new"] == (3, 2, 2, 16)
    assert sh["history"] == (3, 4, PMAX, 4) and st.input_names[-1] == "history"
    assert sh["novelty"] == (3,)
    out, k, v, novelty = st(*st.example_inputs(3, PMAX))
    assert out.shape == (3, C) and k.shape == v.shape == (3, 2, 2, 16)
    assert novelty.shape == (3,) and torch.isfinite(novelty).all() and (novelty >= 0).all()
    assert torch.isfinite(out).all()


def test_step_refuses_a_bidirectional_model():
    m = HDyS(ModelConfig(**{**SMALL.to_dict(), "causal": False}))
    with pytest.raises(HdysError, match="bidirectional"):
        StreamingStep(m)


# --- backend interface --------------------------------------------------------------------------

def test_backend_buffers_are_preallocated_and_reused():
    be = TorchBackend(StreamingStep(_model()), _io())
    with pytest.raises(HdysError, match="not active"):
        be.infer()
    with be:
        out1 = be.infer()
        ptr = out1["out"].data_ptr()
        out2 = be.infer({"mask": np.ones((1, PMAX), np.float32)})
        assert out2 is out1 and out2["out"].data_ptr() == ptr  # the same tensors, overwritten
        with pytest.raises(HdysError, match=r"input 'points' must have shape \(1, 16, 3\)"):
            be.infer({"points": np.zeros((1, 4, 3), np.float32)})
        with pytest.raises(HdysError, match="unknown input 'pts'"):
            be.infer({"pts": np.zeros(3)})
    assert not be.active and be.inputs == {}


def test_cudagraph_needs_cuda():
    with pytest.raises(HdysError, match="needs a CUDA device"):
        CudaGraphBackend(StreamingStep(_model()), _io(), "cpu")


# --- parity: every engine of the registry vs float64 torch -------------------------------------

ENGINE_CASES = [pytest.param(name, dev, fp16, id=f"{name}-{dev}" + ("-fp16" if fp16 else ""),
                             marks=[pytest.mark.gpu] if dev == "cuda" else [])
                for name, e in registry.ENGINES.items() for dev in e.devices
                for fp16 in ((False, True) if e.fp16 else (False,))]
TOLERANCES = {("onnxruntime", "cuda"): 1e-4, ("tensorrt", "cuda"): FP32_TOL * 10}


def test_parity_covers_every_engine_of_the_registry():
    assert {c.values[0] for c in ENGINE_CASES} == set(registry.names())


@pytest.mark.parametrize("name,device,fp16", ENGINE_CASES)
def test_engine_parity(name, device, fp16, model_path, stream, reference, tmp_path, request):
    """Every engine through the registry: built on the fly (batch 1 and 3) or exported (batch 1),
    the same frames in, the float64 offline forward's outputs out."""
    e = registry.get(name)
    why = e.unavailable(device)
    if why:
        pytest.skip(f"{name} on {device}: {why}")
    torch.backends.cuda.matmul.allow_tf32 = False
    tol = FP16_TOL if fp16 else TOLERANCES.get((name, device), FP32_TOL)
    m, _ = load_model(model_path, device=device)
    step = StreamingStep(m)
    if e.on_the_fly:
        for B in (1, 3):
            with e.from_step(step, _io(B), device) as be:
                assert be.name == name
                got = run_sequence(be, stream)
            assert got.shape[1] == B
            assert_parity(got, reference, tol)
        return
    if name == "aoti" and device == "cpu":
        folder = request.getfixturevalue("aoti_engine")  # the one shared AOTInductor compile
    else:
        folder = tmp_path / "e"
        info = export_engine(name, str(model_path), folder, max_points=PMAX, device=device,
                             fp16=fp16)
        assert info["precision"] == ("fp16" if fp16 else "fp32")
        if name == "tensorrt":
            assert (folder / "timing.cache").stat().st_size > 0
    with open_engine(folder, device=device) as be:
        assert be.name == name
        assert_parity(run_sequence(be, stream)[:, 0], reference, tol)


def test_step_shares_the_model_weights(model_path, stream, reference):
    """The step holds the model's modules: a change to the model's weights is a change to the
    step (nothing copied by key)."""
    m, _ = load_model(model_path)
    step = StreamingStep(m)
    assert step.heads[0] is m.heads[SMALL.dyn_outputs[0]] and step.decoder is m.decoder
    with torch.no_grad():
        m.decoder.ln.bias.add_(1.0)
    with registry.get("torch").from_step(step, _io(), "cpu") as be:
        got = run_sequence(be, stream)[:, 0]
    assert np.abs(got - reference).max() > 1e-2


def test_onnxruntime_runs_only_the_markers_in_use(model_path, stream, reference, tmp_path):
    """onnxruntime (built on the fly, or exported) has a symbolic marker axis: a frame of P
    markers runs P rows, not the engine's PMAX slots, with the same outputs as the offline
    forward; a full frame goes back to the full buffers."""
    m, _ = load_model(model_path)
    export_engine("onnxruntime", str(model_path), tmp_path / "e", batch=1, max_points=PMAX)
    for make in (lambda: registry.get("onnxruntime").from_step(StreamingStep(m), _io(2), "cpu"),
                 lambda: open_engine(tmp_path / "e")):
        with make() as be:
            assert be.dynamic and be.session.get_inputs()[0].shape[1] == "points"
            got = run_sequence(be, stream)
            B = be.io.batch
            assert (B, P) in be._bindings and be._small[P]["points"].shape == (B, P, 3)
            assert_parity(got if B > 1 else got[:, 0], reference, FP32_TOL)
            be.use_points(PMAX)
            be.infer()
            assert (B, PMAX) in be._bindings


def test_onnxruntime_built_on_the_fly_runs_only_the_streams_in_use(model_path, stream,
                                                                   reference):
    """onnxruntime built on the fly has a symbolic batch axis: an engine of 4 rows told to
    run 3 (use_batch) runs those 3 in one call, each equal to the offline forward, and leaves
    the 4th row's outputs untouched; static engines refuse a row count they were not built
    for."""
    m, _ = load_model(model_path)
    with registry.get("onnxruntime").from_step(StreamingStep(m), _io(4), "cpu") as be:
        assert be.dynamic_batch and be.session.get_inputs()[0].shape[0] == "batch"
        for t in be.outputs.values():
            t.fill_(7.0)
        be.use_batch(3)
        got = run_sequence(be, stream)
        assert (3, P) in be._bindings
        assert_parity(got[:, :3], reference, FP32_TOL)
        assert (be.outputs["out"][3] == 7.0).all()
    with pytest.raises(HdysError, match="runs 4 rows, not 3"):
        Backend(_io(4)).use_batch(3)  # the base class: static shapes


@pytest.fixture(scope="module")
def aoti_engine(model_path, tmp_path_factory):
    """One AOTInductor compile (~100 s) shared by every test that needs a CPU aoti engine."""
    why = registry.get("aoti").unavailable("cpu")
    if why:
        pytest.skip(f"aoti on cpu: {why}")
    out = tmp_path_factory.mktemp("engines") / "aoti"
    export_engine("aoti", str(model_path), out, batch=1, max_points=PMAX)
    return out


@need_ort
def test_tensorrt_source_onnx_has_a_dynamic_marker_axis(model_path, tmp_path):
    """The ONNX TensorRT builds from (points axis symbolic, for its optimisation profile) gives
    the same step at the full and at a smaller marker count."""
    m, _ = load_model(model_path)
    st = StreamingStep(m)
    path = tmp_path / "dyn.onnx"
    export_onnx(st, path, batch=1, max_points=PMAX, dynamic_points=True)
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert sess.get_inputs()[0].shape == [1, "points", 3]
    for n in (PMAX, 5):
        ex = st.example_inputs(1, n)
        ex[0].normal_()
        ex[4].zero_()
        with torch.no_grad():
            want = st(*ex)[0].numpy()
        got = sess.run(["out"], dict(zip(st.input_names, (t.numpy() for t in ex))))[0]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


# --- the registry --------------------------------------------------------------------------------

def test_registry_one_spelling_and_deprecated_aliases(caplog):
    assert registry.names() == ("torch", "cudagraph", "onnxruntime", "aoti", "tensorrt")
    assert registry.names(exported=True) == ("onnxruntime", "aoti", "tensorrt")
    assert registry.names(on_the_fly=True) == ("torch", "cudagraph", "onnxruntime")
    with caplog.at_level(logging.WARNING, logger="hdys_rt.backends.registry"):
        assert registry.get("eager").name == "torch" and registry.get("onnx").name == \
            "onnxruntime"
    assert "'eager' is deprecated: use 'torch'" in caplog.text
    with pytest.raises(HdysError, match=r"unknown engine 'tvm': choose one of \('torch'"):
        registry.get("tvm")
    for e in registry.ENGINES.values():  # every backend class answers to its registry name
        assert e.backend_class().name == e.name


def test_registry_availability_reasons():
    assert registry.get("torch").unavailable("cpu") is None
    assert "runs on cuda, not cpu" in registry.get("cudagraph").unavailable("cpu")
    assert "runs on cuda, not cpu" in registry.get("tensorrt").unavailable("cpu")
    if not HAVE_TRT:
        assert "pip install 'hdys-rt[tensorrt]'" in registry.get("tensorrt").unavailable("cuda")
    if not torch.cuda.is_available():
        assert "no CUDA device" in registry.get("torch").unavailable("cuda")
        with pytest.raises(HdysError, match="no engine can run on cuda"):
            registry.resolve_auto("cuda")
    with pytest.raises(HdysError, match="engine cudagraph on cpu: the cudagraph engine runs on "
                       "cuda, not cpu"):
        registry.resolve("cudagraph", "cpu")


def test_resolve_auto_decides_once():
    e, why = registry.resolve_auto("cpu")
    if ort is None:
        assert e.name == "torch" and "onnxruntime is not installed" in why
        return
    assert e.name == "onnxruntime"
    assert registry.resolve_auto("cpu", n_points=128)[0].name == "onnxruntime"
    e, why = registry.resolve_auto("cpu", n_points=129)  # more markers than the slots built
    assert e.name == "torch" and "takes at most 128 markers" in why
    assert registry.resolve_auto("cpu", n_points=100, exported=True)[0].name == "onnxruntime"


# --- TensorRT where it is not installed ---------------------------------------------------------

@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed here")
def test_tensorrt_missing_is_one_line_naming_the_extra(model_path, tmp_path, capsys):
    with pytest.raises(HdysError, match=r"pip install 'hdys-rt\[tensorrt\]'"):
        export_engine("tensorrt", str(model_path), tmp_path / "t", device="cuda")
    assert main(["export", "--engine", "tensorrt", "--model", str(model_path), "--out",
                 str(tmp_path / "t"), "--device", "cuda"]) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "hdys-rt[tensorrt]" in err
    assert not (tmp_path / "t").exists()  # nothing half-built
    from hdys_rt.backends.tensorrt_backend import TensorRTBackend

    with pytest.raises(HdysError, match=r"hdys-rt\[tensorrt\]"):
        TensorRTBackend(tmp_path / "x.plan", _io(), "cuda").activate()


# --- export command and engine.json -------------------------------------------------------------

@need_ort
def test_export_onnx_cli_writes_engine_json(model_path, tmp_path, capsys):
    out = tmp_path / "engines" / "cpu-onnx"
    assert main(["export", "--engine", "onnxruntime", "--model", str(model_path), "--out",
                 str(out), "--max-points", str(PMAX)]) == 0
    assert "onnxruntime engine" in capsys.readouterr().out
    info = json.loads((out / "engine.json").read_text())
    meta = json.loads(model_path.with_suffix(".json").read_text())
    assert info["engine"] == "onnxruntime" and (out / info["artefact"]).is_file()
    assert info["inputs"]["points"] == {"shape": [1, PMAX, 3], "dtype": "float32"}
    assert info["inputs"]["k_cache"]["shape"] == [1, 2, 2, 8, 16]
    assert info["outputs"]["out"]["shape"] == [1, sum(reps.get(k).size
                                                       for k in SMALL.dyn_outputs)]
    assert info["window"] == 8 and info["rate"] == 100.0 and info["precision"] == "fp32"
    assert info["model"]["weights_sha256"] == meta["weights_sha256"]
    assert info["builder"]["torch"] == torch.__version__ and "onnxruntime" in info["builder"]
    assert "physical units" in info["normalisation"]
    assert info["rebuild"].startswith("hdys-rt export --engine onnxruntime ")
    assert check_engine(info, out) == []
    # the old spelling still builds the same engine; an old engine.json ("onnx") still opens
    assert main(["export", "--engine", "onnx", "--model", str(model_path), "--out",
                 str(tmp_path / "old"), "--max-points", str(PMAX)]) == 0
    old = json.loads((tmp_path / "old" / "engine.json").read_text())
    assert old["engine"] == "onnxruntime"
    (tmp_path / "old" / "engine.json").write_text(json.dumps(dict(old, engine="onnx")))
    with open_engine(tmp_path / "old") as be:
        assert be.name == "onnxruntime"


@need_ort
def test_engine_checks_say_what_to_rebuild(model_path, tmp_path):
    out = tmp_path / "e"
    export_engine("onnxruntime", str(model_path), out, max_points=PMAX)
    # the model changed
    with pytest.raises(HdysError, match=r"model changed.*rebuild: hdys-rt export --engine "
                       "onnxruntime"):
        open_engine(out, model_sha256="0" * 64)
    # a compiled artefact from another torch
    info = json.loads((out / "engine.json").read_text())
    aoti = dict(info, engine="aoti", builder=dict(info["builder"], torch="2.0.0"))
    assert any("built with torch 2.0.0" in w for w in check_engine(aoti, out))
    # the artefact was modified
    with open(out / "step.onnx", "ab") as f:
        f.write(b"x")
    with pytest.raises(HdysError, match="changed since it was built"):
        open_engine(out)
    # not an engine folder / wrong format
    with pytest.raises(HdysError, match="no engine.json"):
        open_engine(tmp_path)
    (out / "engine.json").write_text(json.dumps(dict(info, version=99)))
    with pytest.raises(HdysError, match="rebuild the engine"):
        open_engine(out)


def test_export_refuses_bad_arguments(model_path, tmp_path):
    if ort is not None:
        with pytest.raises(HdysError, match="max_points must be in 1..32"):
            export_engine("onnxruntime", str(model_path), tmp_path / "e", max_points=33)
    with pytest.raises(HdysError, match="--fp16 is for --engine tensorrt"):
        export_engine("onnxruntime", str(model_path), tmp_path / "e", fp16=True)
    with pytest.raises(HdysError, match="unknown engine 'tvm'"):
        export_engine("tvm", str(model_path), tmp_path / "e")
    with pytest.raises(HdysError, match="the torch engine has nothing to export"):
        export_engine("torch", str(model_path), tmp_path / "e")


# --- the estimator's engine choice --------------------------------------------------------------

def _stream_steps(est, stream):
    x, mask = stream
    outs = []
    for t in range(T):
        pts = x[t].numpy().copy()
        pts[~mask[t].numpy()] = np.nan
        y = est.step(pts)
        outs.append(np.concatenate([y[k] for k in SMALL.dyn_outputs] + [[est.novelty]]))
    return np.stack(outs)


@pytest.mark.parametrize("engine", ["torch", "eager", "onnxruntime", "auto", "folder-onnx",
                                    "folder-aoti"])
def test_estimator_engines_match_torch(engine, model_path, stream, reference, tmp_path,
                                       request):
    if engine in ("onnxruntime", "folder-onnx") and ort is None:
        pytest.skip("onnxruntime not installed (hdys-rt[onnx])")
    if engine == "folder-onnx":
        export_engine("onnxruntime", str(model_path), tmp_path / "e", max_points=PMAX)
        engine = str(tmp_path / "e")
    elif engine == "folder-aoti":
        engine = str(request.getfixturevalue("aoti_engine"))
    est = StreamingEstimator.load(model_path, engine=engine)
    assert est.max_points == (PMAX if "folder" in request.node.name else SMALL.max_points)
    got = _stream_steps(est, stream)
    assert_parity(got, reference, FP32_TOL)
    # reset, and a deep copy for a second stream runs independently
    est.reset()
    twin = copy.deepcopy(est)
    a = est.step(stream[0][0].numpy())["grf"]
    b = twin.step(stream[0][0].numpy())["grf"]
    np.testing.assert_array_equal(a, b)
    est.close()
    twin.close()


def test_estimator_engine_interleaved_stream_rate(model_path):
    """200 Hz into a 100 Hz model: the engine keeps one ring per interleaved state."""
    m, meta = load_model(model_path)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(24, 8, 3, generator=g)
    ref = StreamingEstimator(m, meta, stream_rate=200.0)
    if ort is None:
        pytest.skip("onnxruntime not installed (hdys-rt[onnx])")
    est = StreamingEstimator(m, meta, stream_rate=200.0, engine="onnxruntime")
    assert est.stride == 2 and ref.engine == "torch"
    for t in range(24):
        a, b = ref.step(x[t].numpy()), est.step(x[t].numpy())
        np.testing.assert_allclose(b["grf"], a["grf"], rtol=1e-4, atol=1e-5)


def test_estimator_engine_errors(model_path, tmp_path):
    with pytest.raises(HdysError, match="engine must be one of"):
        StreamingEstimator.load(model_path, engine="tvm")
    with pytest.raises(HdysError, match="the aoti engine is not built on the fly: build it "
                       "with `hdys-rt export --engine aoti"):
        StreamingEstimator.load(model_path, engine="aoti")
    est = StreamingEstimator.load(model_path, engine="torch")
    with pytest.raises(HdysError, match="33 points exceed"):
        est.step(np.zeros((SMALL.max_points + 1, 3), np.float32))
    if ort is not None:
        export_engine("onnxruntime", str(model_path), tmp_path / "b2", batch=2, max_points=PMAX)
        with pytest.raises(HdysError, match="export it with --batch 1"):
            StreamingEstimator.load(model_path, engine=str(tmp_path / "b2"))
        other = save_model(_model(seed=5), tmp_path / "other", rate=100.0)
        export_engine("onnxruntime", str(other), tmp_path / "o", max_points=PMAX)
        with pytest.raises(HdysError, match="model changed"):
            StreamingEstimator.load(model_path, engine=str(tmp_path / "o"))
    shutil.rmtree(tmp_path, ignore_errors=True)


@need_ort
def test_estimator_auto_switches_engine_for_more_markers_than_its_slots(tmp_path, caplog):
    """auto on CPU: onnxruntime with 128 slots; a 140-marker frame moves the stream to the
    registry's choice for 140 markers (torch), which then equals the offline forward."""
    torch.manual_seed(0)
    m = HDyS(ModelConfig(**{**SMALL.to_dict(), "max_points": 160})).eval()
    est = StreamingEstimator.load(save_model(m, tmp_path / "m160", rate=100.0), engine="auto")
    assert est.engine == "onnxruntime" and est.max_points == 160
    x = torch.randn(1, 3, 140, 3)
    with caplog.at_level(logging.WARNING, logger="hdys_rt.model.streaming"):
        got = np.stack([est.step(x[0, t].numpy())["grf"] for t in range(3)])
    assert est.engine == "torch" and "takes at most 128 markers" in est.engine_reason
    assert "140 markers do not fit the 128 slots" in caplog.text
    want = m.predict("markers", x, torch.ones(1, 3, 140, dtype=torch.bool))["grf"][0].numpy()
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
    est.close()


@need_ort
def test_export_auto_is_the_registry_choice(model_path, tmp_path):
    info = export_engine("auto", str(model_path), tmp_path / "a", max_points=PMAX)
    assert info["engine"] == registry.resolve_auto("cpu", exported=True)[0].name
    assert info["rebuild"].startswith(f"hdys-rt export --engine {info['engine']} ")


@need_ort
def test_export_fastest_keeps_the_fastest(model_path, tmp_path):
    out = tmp_path / "fastest"
    info = export_engine("fastest", str(model_path), out, max_points=PMAX)
    times = info["fastest"]["candidates_ms"]
    assert set(times) == {e.name for e in registry.available("cpu", exported=True)}
    assert info["fastest"]["picked"] == min(times, key=times.get)
    assert info["engine"] == info["fastest"]["picked"] and not (out / ".candidates").exists()
    assert f"--out {out} " in info["rebuild"]
    assert check_engine(json.loads((out / "engine.json").read_text()), out) == []


@need_ort
def test_serve_runs_with_an_engine_folder(tmp_path, capsys):
    from loopback import free_port

    torch.manual_seed(0)  # room for the 41 markers of the bundled gait clip
    model_path = save_model(HDyS(ModelConfig(**{**SMALL.to_dict(), "max_points": 64})).eval(),
                            tmp_path / "m64", rate=100.0)
    export_engine("onnxruntime", str(model_path), tmp_path / "e", max_points=48)
    port = free_port()  # for the publisher
    assert main(["serve", "--source", "replay", "--model", str(model_path), "--engine",
                 str(tmp_path / "e"), "--seconds", "1", "--publish",
                 f"tcp://127.0.0.1:{port}"]) == 0
    out = capsys.readouterr().out
    assert "estimates out" in out and "errors 0" in out


@need_ort
def test_exported_engine_serves_the_mirror_average(model_path, stream, tmp_path):
    """An engine folder (one batch size) under the batched estimator with the mirror average:
    each frame and its image run as batch-1 calls, and the estimates equal the single-stream
    eager estimator's average."""
    from hdys_rt.model.streaming import BatchedEstimator

    export_engine("onnxruntime", str(model_path), tmp_path / "e", batch=1, max_points=PMAX)
    est = BatchedEstimator.load(model_path, engine=str(tmp_path / "e"), mirror=True)
    ref = StreamingEstimator.load(model_path, engine="torch", mirror=True)
    plain = StreamingEstimator.load(model_path, engine="torch", mirror=False)
    slot = est.alloc(1)
    x, mask = stream
    moved = 0.0
    for t in range(x.shape[0]):
        pts = x[t].numpy().copy()
        pts[~mask[t].numpy()] = np.nan
        out, want = est.step(slot, [pts])[0], ref.step(pts)
        for name in want:
            np.testing.assert_allclose(out[name], want[name], rtol=1e-4, atol=1e-4)
        moved = max(moved, float(np.abs(want["torques_rajagopal"]
                                        - plain.step(pts)["torques_rajagopal"]).max()))
    assert est.calls == 2 * x.shape[0] and moved > 1e-3
