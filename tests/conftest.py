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
