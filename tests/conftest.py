"""Fixtures shared by every test folder: a small real model (saved and loaded through the real
model I/O, same architecture and streaming code as the default, fewer/narrower layers, so every
step is fast on a loaded CPU) and the bundled real gait clip."""

import pytest
import torch

from hdys_rt.model.config import ModelConfig
from hdys_rt.model.hdys import HDyS
from hdys_rt.model.io import save_model
from hdys_rt.bridges.files import load_file
from hdys_rt.streams.replay import demo_clip_path

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
