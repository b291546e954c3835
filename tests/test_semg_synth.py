"""Synthetic sEMG domain: forward model and a tiny job."""

import numpy as np
import pytest

from hdys_rt.data.build import write_job
from hdys_rt.data.corpus import read_sequence
from hdys_rt.data.domains import myolegs, semg_synth
from hdys_rt.errors import HdysError

try:
    myolegs.shared_data_dir()
    HAVE_DATA = True
except HdysError:
    HAVE_DATA = False

needs_data = pytest.mark.skipif(not HAVE_DATA, reason="shared data (myo_sim) not found")


def test_envelope_recovers_activation():
    rng = np.random.default_rng(0)
    t = np.arange(400) / 100.0
    act = np.stack([0.5 + 0.4 * np.sin(2 * np.pi * f * t) for f in (0.5, 1.0, 1.5)], axis=1)
    act[:, 2] = np.clip(act[:, 2] - 0.4, 0, 1)  # bursts
    env = semg_synth.synthesize(act, rng)
    assert env.shape == act.shape
    assert env.min() >= 0 and np.allclose(env.max(axis=0), 1.0)
    for c in range(3):
        assert np.corrcoef(env[:, c], act[:, c])[0, 1] > 0.7


def test_plan_deterministic():
    assert semg_synth.plan(1, True) == semg_synth.plan(1, True)
    full = semg_synth.plan(1, False)
    assert sum(s["duration_s"] for j in full for s in j["sequences"]) >= 200  # >= 20k frames


@needs_data
def test_job_roundtrip(tmp_path):
    spec = {"name": "semg_t", "motion": "walk", "seed": 5, "duration_s": 3.0,
            "subject": {"id": "myo01", "mass_scale": 0.9}}
    names = write_job(semg_synth, {"domain": "semg_synth", "sequences": [spec]}, tmp_path)
    seq = read_sequence(tmp_path / f"{names[0]}.json")
    assert set(seq.data) == {"keypoints", "semg"}
    assert seq.data["semg"].shape[1] >= 16 and "soleus_r" in seq.names["semg"]
    assert seq.data["semg"].min() >= 0 and seq.data["semg"].max() <= 1.0 + 1e-6
    # the envelope follows the activation it came from
    _, res = myolegs.simulate_spec(spec)
    from hdys_rt import representations as reps

    act = myolegs.activations(res)[:, [reps.MUSCLES.index(n) for n in seq.names["semg"]]]
    active = act.std(axis=0) > 0.02
    r = [np.corrcoef(seq.data["semg"][:, c], act[:, c])[0, 1] for c in np.flatnonzero(active)]
    assert np.median(r) > 0.7
    again = tmp_path / "again"
    write_job(semg_synth, {"domain": "semg_synth", "sequences": [spec]}, again)
    assert (again / "semg_t.f32").read_bytes() == (tmp_path / "semg_t.f32").read_bytes()
