"""Engines and backends: the functional step, parity of every available backend against float64
torch over a sequence longer than the window (ring wrap-around, masked and missing markers),
engine.json checks, the export command, and the estimator's engine choice.

Tolerances (max |engine - float64| divided by the largest |float64| value of the same output,
over every step): fp32 engines 1e-5, TensorRT fp16 1e-2.
"""

import copy
import json
import shutil

import numpy as np
import pytest
import torch

from hdys_rt import representations as reps
from hdys_rt.backends.base import IOSpec
from hdys_rt.backends.engine import check_engine, export_engine, export_onnx, open_engine
from hdys_rt.backends.onnxruntime_backend import OnnxRuntimeBackend
from hdys_rt.backends.torch_backends import CudaGraphBackend, TorchBackend
from hdys_rt.cli import main
from hdys_rt.errors import HdysError
from hdys_rt.model.config import ModelConfig
from hdys_rt.model.hdys import HDyS
from hdys_rt.model.io import load_model, save_model
from hdys_rt.model.step import BiasTable, StreamingStep, output_slices
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
try:
    import tensorrt  # noqa: F401
    HAVE_TRT = True
except ImportError:
    HAVE_TRT = False

CUDA = torch.cuda.is_available()
need_ort = pytest.mark.skipif(ort is None, reason="onnxruntime not installed (hdys-rt[onnx])")
need_gpu = pytest.mark.skipif(not CUDA, reason="no CUDA GPU on this machine")
need_trt = pytest.mark.skipif(not HAVE_TRT, reason="TensorRT is not installed: pip install "
                              "'hdys-rt[tensorrt]' (not installable on this workplace's machines)")
need_ort_cuda = pytest.mark.skipif(
    ort is None or "CUDAExecutionProvider" not in ort.get_available_providers(),
    reason="onnxruntime has no CUDA execution provider here")


def _model(seed=0):
    torch.manual_seed(seed)
    m = HDyS(SMALL).eval()
    with torch.no_grad():  # non-trivial position bias and normalisation
        m.decoder.rel_bias.normal_()
        for k in SMALL.dyn_outputs:
            getattr(m, f"mean_{k}").normal_()
            getattr(m, f"std_{k}").uniform_(0.5, 2.0)
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
    """Float64 offline causal forward of the same frames: (T, C) concatenated outputs."""
    m, _ = load_model(model_path)
    x, mask = stream
    out = m.double().predict("markers", x[None].double(), mask[None])
    return torch.cat([out[k][0] for k in SMALL.dyn_outputs], -1).numpy()


def run_sequence(backend, stream, streams=1) -> np.ndarray:
    """Drive an active backend over the stream, managing the rings outside it as the estimator
    does; all ``streams`` batch rows get the same frames. Returns (T, B, C)."""
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
        out = backend.infer()
        inp["k_cache"][:, :, :, t % W] = out["k_new"]
        inp["v_cache"][:, :, :, t % W] = out["v_new"]
        outs.append(out["out"].float().cpu().numpy().copy())
    return np.stack(outs)


def assert_parity(got, ref, tol):
    """Per output: max error over every step and stream, relative to the output's range."""
    for name, sl in output_slices(SMALL.dyn_outputs).items():
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
    out, k, v = st(*st.example_inputs(3, PMAX))
    assert out.shape == (3, C) and k.shape == v.shape == (3, 2, 2, 16)
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


# --- parity: every available backend vs float64 torch -------------------------------------------

def test_parity_torch_eager_cpu(model_path, stream, reference):
    m, _ = load_model(model_path)
    with TorchBackend(StreamingStep(m), _io()) as be:
        assert_parity(run_sequence(be, stream)[:, 0], reference, FP32_TOL)


@need_ort
def test_parity_onnxruntime_cpu_and_batched(model_path, stream, reference, tmp_path):
    m, _ = load_model(model_path)
    for B in (1, 3):
        path = tmp_path / f"b{B}.onnx"
        export_onnx(StreamingStep(m), path, batch=B, max_points=PMAX)
        with OnnxRuntimeBackend(path, _io(B)) as be:
            got = run_sequence(be, stream)
        assert got.shape[1] == B
        assert_parity(got, reference, FP32_TOL)


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
        want = st(*ex)[0].numpy()
        got = sess.run(["out"], dict(zip(("points", "mask", "k_cache", "v_cache", "attn_bias"),
                                         (t.numpy() for t in ex))))[0]
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5 * np.abs(want).max())


@pytest.fixture(scope="module")
def aoti_engine(model_path, tmp_path_factory):
    out = tmp_path_factory.mktemp("engines") / "aoti"
    export_engine("aoti", str(model_path), out, batch=1, max_points=PMAX)
    return out


def test_parity_aoti_cpu(aoti_engine, stream, reference):
    with open_engine(aoti_engine) as be:
        assert be.name == "aoti"
        assert_parity(run_sequence(be, stream)[:, 0], reference, FP32_TOL)


@pytest.mark.gpu
@need_gpu
def test_parity_torch_eager_cuda(model_path, stream, reference):
    m, _ = load_model(model_path)
    with TorchBackend(StreamingStep(m), _io(), "cuda") as be:
        assert_parity(run_sequence(be, stream)[:, 0], reference, FP32_TOL)


@pytest.mark.gpu
@need_gpu
def test_parity_cudagraph(model_path, stream, reference):
    m, _ = load_model(model_path)
    torch.backends.cuda.matmul.allow_tf32 = False
    with CudaGraphBackend(StreamingStep(m), _io(4), "cuda") as be:
        assert_parity(run_sequence(be, stream), reference, FP32_TOL)


@pytest.mark.gpu
@need_gpu
@need_ort_cuda
def test_parity_onnxruntime_cuda(model_path, stream, reference, tmp_path):
    export_engine("onnx", str(model_path), tmp_path / "e", max_points=PMAX)
    with open_engine(tmp_path / "e", device="cuda") as be:
        assert_parity(run_sequence(be, stream)[:, 0], reference, 1e-4)  # cuDNN/TF32 paths


@pytest.mark.gpu
@need_gpu
def test_parity_aoti_cuda(model_path, stream, reference, tmp_path):
    export_engine("aoti", str(model_path), tmp_path / "e", max_points=PMAX, device="cuda")
    with open_engine(tmp_path / "e", device="cuda") as be:
        assert_parity(run_sequence(be, stream)[:, 0], reference, FP32_TOL)


@pytest.mark.gpu
@need_gpu
@need_trt
@pytest.mark.parametrize("fp16,tol", [(False, FP32_TOL * 10), (True, FP16_TOL)])
def test_parity_tensorrt(model_path, stream, reference, tmp_path, fp16, tol):
    info = export_engine("tensorrt", str(model_path), tmp_path / "e", max_points=PMAX,
                         device="cuda", fp16=fp16)
    assert info["precision"] == ("fp16" if fp16 else "fp32")
    assert (tmp_path / "e" / "timing.cache").stat().st_size > 0
    with open_engine(tmp_path / "e", device="cuda") as be:
        assert_parity(run_sequence(be, stream)[:, 0], reference, tol)


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
    assert main(["export", "--engine", "onnx", "--model", str(model_path), "--out", str(out),
                 "--max-points", str(PMAX)]) == 0
    assert "onnx engine" in capsys.readouterr().out
    info = json.loads((out / "engine.json").read_text())
    meta = json.loads(model_path.with_suffix(".json").read_text())
    assert info["engine"] == "onnx" and (out / info["artefact"]).is_file()
    assert info["inputs"]["points"] == {"shape": [1, PMAX, 3], "dtype": "float32"}
    assert info["inputs"]["k_cache"]["shape"] == [1, 2, 2, 8, 16]
    assert info["outputs"]["out"]["shape"] == [1, sum(reps.get(k).size
                                                       for k in SMALL.dyn_outputs)]
    assert info["window"] == 8 and info["rate"] == 100.0 and info["precision"] == "fp32"
    assert info["model"]["weights_sha256"] == meta["weights_sha256"]
    assert info["builder"]["torch"] == torch.__version__ and "onnxruntime" in info["builder"]
    assert "physical units" in info["normalisation"]
    assert info["rebuild"].startswith("hdys-rt export --engine onnx")
    assert check_engine(info, out) == []


@need_ort
def test_engine_checks_say_what_to_rebuild(model_path, tmp_path):
    out = tmp_path / "e"
    export_engine("onnx", str(model_path), out, max_points=PMAX)
    # the model changed
    with pytest.raises(HdysError, match=r"model changed.*rebuild: hdys-rt export --engine onnx"):
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
    with pytest.raises(HdysError, match="max_points must be in 1..32"):
        export_engine("onnx", str(model_path), tmp_path / "e", max_points=33)
    with pytest.raises(HdysError, match="--fp16 is for --engine tensorrt"):
        export_engine("onnx", str(model_path), tmp_path / "e", fp16=True)
    with pytest.raises(HdysError, match="unknown engine 'tvm'"):
        export_engine("tvm", str(model_path), tmp_path / "e")


# --- the estimator's engine choice --------------------------------------------------------------

def _stream_steps(est, stream):
    x, mask = stream
    outs = []
    for t in range(T):
        pts = x[t].numpy().copy()
        pts[~mask[t].numpy()] = np.nan
        y = est.step(pts)
        outs.append(np.concatenate([y[k] for k in SMALL.dyn_outputs]))
    return np.stack(outs)


@pytest.mark.parametrize("engine", ["eager", "onnxruntime", "folder-onnx", "folder-aoti"])
def test_estimator_engines_match_torch(engine, model_path, stream, reference, tmp_path,
                                       request):
    if "onnx" in engine and ort is None:
        pytest.skip("onnxruntime not installed (hdys-rt[onnx])")
    if engine == "folder-onnx":
        export_engine("onnx", str(model_path), tmp_path / "e", max_points=PMAX)
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
    est = StreamingEstimator(m, meta, stream_rate=200.0, engine="eager")
    assert est.stride == 2
    for t in range(24):
        a, b = ref.step(x[t].numpy()), est.step(x[t].numpy())
        np.testing.assert_allclose(b["grf"], a["grf"], rtol=1e-4, atol=1e-5)


def test_estimator_engine_errors(model_path, tmp_path):
    with pytest.raises(HdysError, match="engine must be one of"):
        StreamingEstimator.load(model_path, engine="tvm")
    est = StreamingEstimator.load(model_path, engine="eager")
    with pytest.raises(HdysError, match="33 points exceed"):
        est.step(np.zeros((SMALL.max_points + 1, 3), np.float32))
    if ort is not None:
        export_engine("onnx", str(model_path), tmp_path / "b2", batch=2, max_points=PMAX)
        with pytest.raises(HdysError, match="export it with --batch 1"):
            StreamingEstimator.load(model_path, engine=str(tmp_path / "b2"))
        other = save_model(_model(seed=5), tmp_path / "other", rate=100.0)
        export_engine("onnx", str(other), tmp_path / "o", max_points=PMAX)
        with pytest.raises(HdysError, match="model changed"):
            StreamingEstimator.load(model_path, engine=str(tmp_path / "o"))
    shutil.rmtree(tmp_path, ignore_errors=True)


@need_ort
def test_export_auto_keeps_the_fastest(model_path, tmp_path):
    out = tmp_path / "auto"
    info = export_engine("auto", str(model_path), out, max_points=PMAX)
    times = info["auto"]["candidates_ms"]
    assert set(times) >= {"onnx"} and info["auto"]["picked"] == min(times, key=times.get)
    assert info["engine"] == info["auto"]["picked"] and not (out / ".candidates").exists()
    assert f"--out {out} " in info["rebuild"]
    assert check_engine(json.loads((out / "engine.json").read_text()), out) == []


@need_ort
def test_serve_runs_with_an_engine_folder(tmp_path, capsys):
    import socket

    torch.manual_seed(0)  # room for the 41 markers of the bundled gait clip
    model_path = save_model(HDyS(ModelConfig(**{**SMALL.to_dict(), "max_points": 64})).eval(),
                            tmp_path / "m64", rate=100.0)
    export_engine("onnx", str(model_path), tmp_path / "e", max_points=48)
    with socket.socket() as s:  # a free port for the publisher
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    assert main(["serve", "--source", "replay", "--model", str(model_path), "--engine",
                 str(tmp_path / "e"), "--seconds", "1", "--publish",
                 f"tcp://127.0.0.1:{port}"]) == 0
    out = capsys.readouterr().out
    assert "estimates out" in out and "errors 0" in out
