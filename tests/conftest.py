"""Fixtures shared by every test folder: a small real model (saved and loaded through the real
model I/O, same architecture and streaming code as the default, fewer/narrower layers, so every
step is fast on a loaded CPU) and the bundled real gait clip."""

import os

import pytest
import torch

from hdys_rt.data.shared import ENV_VAR, default_shared_dir
from hdys_rt.model.config import ModelConfig
from hdys_rt.model.hdys import HDyS
from hdys_rt.model.io import save_model
from hdys_rt.data.loader import load_file
from hdys_rt.streams.replay import demo_clip_path

def _shared_data_line() -> tuple[bool, str]:
    root = os.environ.get(ENV_VAR) or str(default_shared_dir())
    if os.path.isdir(os.path.join(root, "opensim-models")):
        return True, f"shared data: {root} (found)"
    return False, (f"shared data: {root} NOT FOUND: the data-building tests were skipped; see "
                   "the README, 'Training data'")


def pytest_report_header(config):
    """Say whether the shared raw data is there: without it the data tests skip."""
    return _shared_data_line()[1]


def pytest_terminal_summary(terminalreporter):
    found, line = _shared_data_line()
    if not found:  # also under -q, where the header is not shown
        terminalreporter.write_line(line, yellow=True)


TINY = ModelConfig(latent=32, point_dim=32, point_layers=1, point_heads=2, vec_hidden=64,
                   dec_layers=1, dec_heads=2, dec_ff=64, window=8, max_points=64)


@pytest.fixture(scope="session")
def model_path(tmp_path_factory):
    """Path stem of a tiny HDyS saved as safetensors + JSON."""
    torch.manual_seed(0)
    stem = tmp_path_factory.mktemp("model") / "tiny"
    save_model(HDyS(TINY), stem, rate=100.0)
    return str(stem)


@pytest.fixture(scope="session")
def gait():
    """The bundled real gait clip: 41 markers, 238 frames at 100 Hz, metres, Y up."""
    return load_file(demo_clip_path())


# --- novelty: walking of several synthetic persons, and motions far from it --------------------

def _person(xyz, scale, seed):
    """The clip as walked by another (synthetic) person: scaled about its mean horizontal
    position, with 5 mm marker noise."""
    import numpy as np

    c = np.nanmean(xyz, axis=(0, 1))
    c[1] = 0.0
    r = np.random.default_rng(seed)
    return ((xyz - c) * scale + c + r.normal(0, 0.005, xyz.shape)).astype(np.float32)


@pytest.fixture(scope="session")
def motions(gait):
    """name -> (T, 41, 3) metres: ``walk0..walk3`` (calibration persons), ``walk_unseen`` (a
    person between them, never calibrated on), ``jump`` (the clip bouncing 25 cm at 1.2 Hz)."""
    import numpy as np

    x = gait.xyz.astype(np.float32)
    out = {f"walk{i}": _person(x, 0.9 + 0.05 * i, i) for i in range(4)}
    out["walk_unseen"] = _person(x, 0.975, 99)
    t = np.arange(x.shape[0]) / gait.rate
    jump = x.copy()
    jump[..., 1] += (0.25 * np.abs(np.sin(2 * np.pi * 1.2 * t)))[:, None]
    out["jump"] = jump
    return out


@pytest.fixture(scope="session")
def calibrated_model_path(tmp_path_factory, motions):
    """The tiny model with its novelty score calibrated on ``walk0..walk3`` (four persons)."""
    import numpy as np

    from hdys_rt.model.novelty import calibrate_model, metadata
    from hdys_rt.training.data import SeqArrays

    torch.manual_seed(0)
    model = HDyS(TINY).eval()
    seqs = [SeqArrays(k, "test", k, 70.0, {"markers": v}, len(v), person=k, task="walk")
            for k, v in motions.items() if k.startswith("walk") and k[-1].isdigit()]
    reports = calibrate_model(model, seqs)
    assert set(reports) == {"markers"} and np.isfinite(reports["markers"]["threshold"])
    stem = tmp_path_factory.mktemp("calibrated") / "tiny"
    save_model(model, stem, rate=100.0, extra=metadata(reports, ["walk"]))
    return str(stem)
