"""sEMG envelopes from raw C3D analog channels (hdys_rt.data.labs.emg) on the real C3D files of
``../shared/data/real/c3d`` that the real_labs domain keeps (GRF-only sequences)."""

import os
from pathlib import Path

import numpy as np
import pytest

from hdys_rt import representations as reps
from hdys_rt.data.labs import emg

C3D = Path(os.environ.get("HDYS_SHARED_DATA",
                          Path(__file__).resolve().parents[2] / "shared" / "data")) / "real" / "c3d"


@pytest.mark.parametrize("label, channel", [
    ("Voltage.EMG2_vast_lat_r", "vaslat_r"),  # nimble_Return11
    ("Voltage.EMG13_add_mag_l", "addmagMid_l"),
    ("R_TA", "tibant_r"), ("L_GL", "gaslat_l"), ("R_PE", "perlong_r"),  # Plug-in Gait clinic
    ("LVAS", "vaslat_l"), ("RSOL", "soleus_r"),  # side glued to the muscle (btk_Gait)
    ("Voltage.EMG11_lat_dor_l", None), ("Voltage.EMG15_free", None),  # not a leg muscle
    ("EMG3", None), ("SOL", None),  # no muscle / no side: skipped
])
def test_labels_map_to_muscle_channels(label, channel):
    assert emg.identify(label) == channel
    if channel:
        assert channel in reps.MUSCLES


def test_mapping_table_names_only_known_muscles():
    assert {f"{m}_r" for m in emg.MUSCLE_TOKENS.values()} <= set(reps.MUSCLES)


def test_envelope_of_a_burst_follows_its_amplitude():
    rate = 1000.0
    t = np.arange(0, 2, 1 / rate)
    rng = np.random.default_rng(0)
    amp = np.where((t > 0.8) & (t < 1.2), 1.0, 0.05)
    x = (amp * rng.standard_normal(t.size))[:, None] + 0.3  # + DC offset, removed by the band
    env = emg.envelope(x, rate)[:, 0]
    assert env.shape == t.shape and env.min() >= 0.0
    assert env[t.searchsorted(1.0)] > 8 * env[t.searchsorted(0.3)]  # burst vs noise floor
    # mean rectified value of unit Gaussian noise is sqrt(2/pi) ~ 0.80, less the band's cut
    assert 0.55 < env[t.searchsorted(1.0)] < 0.85


real_labs = pytest.importorskip("hdys_rt.data.domains.real_labs")
pytest.importorskip("ezc3d", reason="C3D files need ezc3d (the data extra)")
needs_files = pytest.mark.skipif(not (C3D / "btk_PiG_Motion-FlatFoot-Full.c3d").exists(),
                                 reason=f"real C3D files not found under {C3D}")


def _sequence(stem):
    job = next(j for j in real_labs.plan(0, quick=False) if j.get("c3d", {}).get("name")
               == f"c3d__{stem}")
    return next(real_labs.sequences(job))


@needs_files
def test_plug_in_gait_emg_envelopes_on_the_sequence_frames():
    seq = _sequence("btk_PiG_Motion-FlatFoot-Full")
    env, names = seq.data["semg"], seq.names["semg"]
    assert names == ("recfem_r", "semiten_r", "tibant_r", "gaslat_r", "perlong_r",
                     "recfem_l", "semiten_l", "tibant_l", "gaslat_l", "perlong_l")
    assert set(names) <= set(reps.MUSCLES)
    assert env.shape == (seq.frames, 10) and seq.rate == 100.0  # at the marker frames
    assert np.isfinite(env).all()
    assert env.min() >= 0.0 and np.allclose(env.max(axis=0), 1.0)  # 0..1, peak over the trial
    rep = seq.meta["semg"]
    assert rep["unmapped"] == [] and rep["flat"] == [] and rep["band_hz"] == [20.0, 450.0]
    # tibialis anterior works in swing and at heel strike, not in loaded mid-stance
    g = reps.GRF_CHANNELS
    for side in "rl":
        loaded = seq.data["grf"][:, g.index(f"{side}_fy")] > 0.3
        ta = env[:, names.index(f"tibant_{side}")]
        assert loaded.sum() > 40 and ta[loaded].mean() < 0.75 * ta[~loaded].mean()


@needs_files
def test_flat_and_unnamed_channels_are_skipped_and_counted():
    seq = _sequence("nimble_Return11_c3dfile1")
    rep = seq.meta["semg"]
    assert len(rep["mapping"]) == 12  # 16 EMG channels: 2 latissimus + 2 "free" unmapped
    assert len(rep["unmapped"]) == 4
    assert len(rep["flat"]) == 10  # noise-floor channels (peak/median 1.2-1.4)
    assert seq.names["semg"] == ("gasmed_l", "gasmed_r")
    assert seq.data["semg"].shape == (seq.frames, 2) and seq.rate == 200.0
    assert 0.0 <= np.nanmin(seq.data["semg"]) and np.nanmax(seq.data["semg"]) == 1.0
    walk = _sequence("btk_FunctionalWalk")  # EMG1..EMG16: no muscle named
    assert "semg" not in walk.data and len(walk.meta["semg"]["unmapped"]) == 16
