"""The HDyS model: representations, masking, shapes, causal streaming == offline, training step,
checkpoint/resume, safetensors I/O, and evaluation figures on a known case."""

import json

import numpy as np
import pytest
import torch

from hdys_rt import representations as reps
from hdys_rt.data.corpus import Sequence, Subject, read_sequence, write_domain_info, write_sequence
from hdys_rt.errors import HdysError
from hdys_rt.evaluation import evaluate
from hdys_rt.model.config import ModelConfig
from hdys_rt.model.hdys import HDyS, canonical_points
from hdys_rt.model.io import load_model, save_model
from hdys_rt.model.streaming import StreamingEstimator
from hdys_rt.training.data import CorpusData, WindowSampler
from hdys_rt.training.loop import preset
from hdys_rt.training.losses import compute_losses

SMALL = ModelConfig(latent=32, point_dim=16, point_layers=2, point_heads=2, vec_hidden=32,
                    dec_layers=2, dec_heads=2, dec_ff=32, window=8, max_points=64)


def _model(cfg=SMALL, seed=0):
    torch.manual_seed(seed)
    m = HDyS(cfg).eval()
    with torch.no_grad():
        m.decoder.rel_bias.normal_()  # non-trivial position bias for the equivalence tests
    return m


def _meta(m):
    return {"rate": 100.0, "outputs": {k: list(reps.get(k).channels) for k in m.cfg.dyn_outputs},
            "units": {k: reps.get(k).unit for k in m.cfg.dyn_outputs}}


# --- representations --------------------------------------------------------------------------

def test_every_representation_has_units_and_shapes():
    assert set(reps.KINEMATIC) == {"markers", "keypoints", "joint_angles", "smpl_pose"}
    assert set(reps.DYNAMIC) == {"torques_rajagopal", "torques_smpl", "activations", "semg",
                                 "grf"}
    assert len(reps.RAJAGOPAL_COORDINATES) == 23 and len(reps.RAJAGOPAL_TORQUE_JOINTS) == 17
    assert reps.get("smpl_pose").size == 3 + 24 * 3
    assert reps.get("torques_smpl").size == 23 * 3
    assert reps.get("activations").size == 80 and len(set(reps.MUSCLES)) == 80
    assert reps.get("grf").size == 10
    for r in reps.REPRESENTATIONS.values():
        assert r.unit and r.description
        assert r.point_set == (r.size == 0)
    assert len(reps.KEYPOINT_LAYOUTS["coco17"]) == 17 and len(reps.KEYPOINT_LAYOUTS["h36m17"]) == 17


def test_unknown_representation_is_refused():
    with pytest.raises(ValueError, match="unknown representation 'torque'"):
        reps.get("torque")


def test_sequence_round_trip_and_canonical_channels(tmp_path):
    T = 5
    seq = Sequence("s", "d", 100.0, Subject("a", 70.0, 1.7), "test",
                   data={"markers": np.arange(T * 2 * 3, dtype=np.float32).reshape(T, 2, 3),
                         "torques_rajagopal": np.ones((T, 2), np.float32)},
                   names={"markers": ("A", "B"), "torques_rajagopal": ("knee_angle_r",
                                                                        "hip_flexion_r")})
    write_sequence(tmp_path, seq)
    back = read_sequence(tmp_path / "s.json")
    np.testing.assert_array_equal(back.data["markers"], seq.data["markers"])
    can = back.canonical("torques_rajagopal")
    assert can.shape == (T, 17)
    j = reps.RAJAGOPAL_TORQUE_JOINTS
    assert np.all(can[:, j.index("knee_angle_r")] == 1) and np.all(can[:, j.index("hip_flexion_r")] == 1)
    assert np.isnan(can[:, j.index("ankle_angle_r")]).all()


def test_bad_sequence_files_fail_with_a_message(tmp_path):
    with pytest.raises(HdysError, match="unknown channels"):
        Sequence("s", "d", 100.0, Subject("a", 70.0, 1.7), "t",
                 data={"grf": np.zeros((3, 1), np.float32)}, names={"grf": ("r_zz",)})
    with pytest.raises(HdysError, match="mass_kg"):
        Subject("a", 2.0, 1.7)
    (tmp_path / "x.json").write_text(json.dumps({"format": "hdys-seq", "version": 1,
                                                 "frames": 3, "columns": 2}))
    with pytest.raises(HdysError, match="expected 24 bytes"):
        read_sequence(tmp_path / "x.json")


# --- model shapes and masking ------------------------------------------------------------------

@pytest.mark.parametrize("P", [1, 7, 41, 64])
def test_point_encoder_takes_any_number_of_points(P):
    m = _model()
    x = torch.randn(2, 5, P, 3)
    mask = torch.ones(2, 5, P, dtype=torch.bool)
    z, feats = m.encode_kin("markers", x, mask)
    assert z.shape == (2, 5, 32) and feats.shape == (2, 5, P, 16)
    out = m.predict("markers", x, mask)
    assert out["torques_rajagopal"].shape == (2, 5, 17)
    assert out["activations"].shape == (2, 5, 80)
    assert out["grf"].shape == (2, 5, 10)


def test_point_order_does_not_matter_and_masked_points_are_ignored():
    m = _model()
    x = torch.randn(1, 3, 10, 3)
    mask = torch.ones(1, 3, 10, dtype=torch.bool)
    perm = torch.randperm(10)
    a = m.predict("markers", x, mask)["torques_rajagopal"]
    b = m.predict("markers", x[:, :, perm], mask[:, :, perm])["torques_rajagopal"]
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
    # masked points: any garbage values there change nothing
    x2, mask2 = x.clone(), mask.clone()
    x2[:, :, 3] = 1e6
    mask2[:, :, 3] = False
    c = m.predict("markers", x2, mask2)["torques_rajagopal"]
    d = m.predict("markers", torch.cat([x[:, :, :3], x[:, :, 4:]], 2),
                  torch.ones(1, 3, 9, dtype=torch.bool))["torques_rajagopal"]
    torch.testing.assert_close(c, d, rtol=1e-5, atol=1e-5)


def test_frames_with_no_valid_point_give_finite_output():
    m = _model()
    x = torch.randn(1, 4, 6, 3)
    mask = torch.zeros(1, 4, 6, dtype=torch.bool)
    out = m.predict("markers", x, mask)
    assert all(torch.isfinite(v).all() for v in out.values())


def test_canonical_points_removes_horizontal_position_only():
    pts = torch.tensor([[[1.0, 0.5, 2.0], [3.0, 1.5, 4.0]]])
    out = canonical_points(pts, torch.ones(1, 2, dtype=torch.bool))
    torch.testing.assert_close(out, torch.tensor([[[-1.0, 0.5, -1.0], [1.0, 1.5, 1.0]]]))


def test_vector_encoder_masks_missing_channels():
    m = _model()
    x = torch.randn(1, 3, 23)
    mask = torch.ones(1, 3, 23, dtype=torch.bool)
    mask[..., 10] = False
    x2 = x.clone()
    x2[..., 10] = 99.0
    a = m.predict("joint_angles", x, mask)["torques_rajagopal"]
    b = m.predict("joint_angles", x2, mask)["torques_rajagopal"]
    torch.testing.assert_close(a, b)
    # the absolute horizontal pelvis position and heading are not used
    x3 = x.clone()
    x3[..., reps.RAJAGOPAL_COORDINATES.index("pelvis_tx")] += 5.0
    c = m.predict("joint_angles", x3, torch.ones_like(mask))["torques_rajagopal"]
    d = m.predict("joint_angles", x, torch.ones_like(mask))["torques_rajagopal"]
    torch.testing.assert_close(c, d)


# --- bounded outputs -------------------------------------------------------------------------

@pytest.mark.parametrize("bounded_heads", [True, False])
def test_outputs_are_bounded_by_construction(bounded_heads):
    """Activations and sEMG in 0..1, vertical GRF >= 0, however far out the heads are driven
    (offline and streaming); models saved before the bounds existed are clamped."""
    cfg = ModelConfig(**{**SMALL.to_dict(), "bounded_heads": bounded_heads})
    m = _model(cfg)
    with torch.no_grad():
        for head in m.heads.values():
            head[-1].bias.normal_(0.0, 20.0)  # drive every channel far from its mean
            head[-1].weight.mul_(30.0)
    x = torch.randn(2, 12, 10, 3) * 3
    out = m.predict("markers", x, torch.ones(2, 12, 10, dtype=torch.bool))
    est = StreamingEstimator(m, _meta(m))
    live = [est.step(x[0, t].numpy()) for t in range(12)]
    fy = [reps.get("grf").channels.index(c) for c in ("r_fy", "l_fy")]
    for k in ("activations", "semg"):
        assert out[k].min() >= 0.0 and out[k].max() <= 1.0
        assert (out[k] < 0.05).any() and (out[k] > 0.95).any()  # the whole range is reachable
        assert all(0.0 <= o[k].min() and o[k].max() <= 1.0 for o in live)
    assert out["grf"][..., fy].min() >= 0.0 and min(o["grf"][fy].min() for o in live) >= 0.0
    assert out["grf"].min() < 0.0  # horizontal forces keep their sign


def test_models_saved_before_bounds_load_clamped(tmp_path):
    m = _model()
    stem = save_model(m, tmp_path / "m", rate=100.0)
    meta = json.loads(stem.with_suffix(".json").read_text())
    del meta["config"]["bounded_heads"]  # as written before the field existed
    stem.with_suffix(".json").write_text(json.dumps(meta))
    assert load_model(stem)[0].cfg.bounded_heads is False


# --- whole-body motion features --------------------------------------------------------------

def _walker(T=40, P=10, rate=100.0, v=(1.2, 0.0, 0.5), ay=0.0, turn=0.0, seed=0):
    """A rigid point cloud (height extent 1.6 m) moving at ``v`` m/s, vertical acceleration
    ``ay`` m/s^2, its velocity turning at ``turn`` rad/s: (1, T, P, 3)."""
    g = torch.Generator().manual_seed(seed)
    body = torch.rand(P, 3, generator=g) * torch.tensor([0.4, 1.6, 0.3])
    body[0, 1], body[1, 1] = 0.0, 1.6  # feet to head: a height extent of 1.6 m
    t = torch.arange(T, dtype=torch.float64) / rate
    th = turn * t
    vx, vz = v[0] * torch.cos(th) - v[2] * torch.sin(th), v[0] * torch.sin(th) + v[2] * torch.cos(th)
    x, z = torch.cumsum(vx, 0) / rate, torch.cumsum(vz, 0) / rate
    y = v[1] * t + 0.5 * ay * t ** 2
    path = torch.stack([x, y, z], -1)  # (T, 3)
    return (body[None] + path[:, None]).float()[None]


def test_motion_features_measure_velocity_and_acceleration():
    from hdys_rt.model.hdys import G, history_of, motion_features

    x = _walker(v=(1.2, 0.0, 0.5), ay=-G)  # moving on the floor while falling freely
    B, T, P, _ = x.shape
    mask = torch.ones(B, T, P, dtype=torch.bool)
    f = motion_features(x[0], mask[0], history_of(x, mask)[0], 100.0)  # (T, 8)
    vs = (G * 1.6) ** 0.5
    np.testing.assert_allclose(f[10:, 0], 1.3 / vs, rtol=1e-3)  # |(1.2, 0.5)| = 1.3 m/s
    np.testing.assert_allclose(f[10:, 5], -1.0, atol=2e-3)  # a_y = -g: weightless (GRF 0)
    np.testing.assert_allclose(f[10:, 2:5], 0.0, atol=2e-3)  # no horizontal acceleration
    assert (f[:2, 7] == 0).all() and (f[:4, 7] == 0).all() and (f[4:, 7] == 1).all()
    assert (f[:2, 6] == 0).all() and (f[2:, 6] == 1).all()
    # heading: a yawed copy of the motion gives the same features; a mirror flips a_lat only
    turning = _walker(v=(1.5, 0.0, 0.0), turn=1.0)  # centripetal acceleration to the left
    yaw = torch.tensor([[0.6, 0.0, 0.8], [0.0, 1.0, 0.0], [-0.8, 0.0, 0.6]])
    mirror = torch.diag(torch.tensor([-1.0, 1.0, 1.0]))
    fs = [motion_features(y[0], mask[0], history_of(y, mask)[0], 100.0)
          for y in (turning, turning @ yaw.T, turning @ mirror.T)]
    np.testing.assert_allclose(fs[1], fs[0], atol=1e-3)
    np.testing.assert_allclose(fs[0][10:, 3], 1.5 * 1.0 / G, rtol=2e-2)  # v w / g
    np.testing.assert_allclose(fs[2][:, 3], -fs[0][:, 3], atol=1e-3)
    np.testing.assert_allclose(fs[2][:, [0, 1, 2, 4, 5]], fs[0][:, [0, 1, 2, 4, 5]], atol=1e-3)


def test_motion_features_use_only_points_valid_in_every_frame():
    """A marker dropping out does not fake a jump of the centroid."""
    from hdys_rt.model.hdys import history_of, motion_features

    x = _walker(v=(1.0, 0.0, 0.0))
    mask = torch.ones(x.shape[:3], dtype=torch.bool)
    mask[0, 20:, 5] = False  # one marker lost for good
    x[0, 20:, 5] = float("nan")
    f = motion_features(x[0], mask[0], history_of(x, mask)[0], 100.0)
    np.testing.assert_allclose(f[5:, :6], f[5:6, :6].expand(35, 6), atol=2e-3)


@pytest.mark.parametrize("stride", [1, 2])
def test_streaming_equals_offline_with_motion(stride):
    """Offline (whole window) and live (frame by frame, history in the engine's state) see the
    same motion features: a moving body with dropouts, at the model rate and at twice it."""
    m = _model()
    assert m.cfg.motion
    x = _walker(T=60, P=12, v=(1.3, 0.1, -0.4), turn=0.8, seed=3)
    x = x + 0.003 * torch.randn(x.shape, generator=torch.Generator().manual_seed(4))
    mask = torch.rand(x.shape[:3], generator=torch.Generator().manual_seed(5)) > 0.2
    est = StreamingEstimator(m, _meta(m), stream_rate=100.0 * stride)
    outs = []
    for t in range(x.shape[1]):
        pts = x[0, t].numpy().copy()
        pts[~mask[0, t].numpy()] = np.nan
        outs.append(est.step(pts))
    for s in range(stride):
        offline = m.predict("markers", x[:, s::stride], mask[:, s::stride])
        for k in m.cfg.dyn_outputs:
            live = np.stack([o[k] for o in outs[s::stride]])
            np.testing.assert_allclose(live, offline[k][0].numpy(), rtol=1e-4, atol=1e-4)


def _mirror_meta(m):
    return {**_meta(m), "mirror_average": True}


@pytest.mark.parametrize("stride", [1, 2])
def test_mirror_average_live_equals_offline(stride):
    """A model whose metadata asks for it is averaged with its mirror image's estimates: live
    (each frame and its image in their own decoder states, several interleaved grids) equals the
    offline average; GRF and SMPL torques stay the frame's own estimate; with it off, the plain
    forward."""
    from hdys_rt.evaluation import predict_sequence

    m = _model()
    x = _walker(T=40, P=12, v=(1.3, 0.1, -0.4), turn=0.8, seed=3).numpy()[0]
    x[np.random.default_rng(5).random(x.shape[:2]) < 0.2] = np.nan
    est = StreamingEstimator(m, _mirror_meta(m), stream_rate=100.0 * stride)
    assert est.mirror and not StreamingEstimator(m, _mirror_meta(m), mirror=False).mirror
    outs = [est.step(x[t]) for t in range(len(x))]
    for s in range(stride):
        avg = predict_sequence(m, "markers", x[s::stride], mirror=True)
        own = predict_sequence(m, "markers", x[s::stride])
        for k in m.cfg.dyn_outputs:
            live = np.stack([o[k] for o in outs[s::stride]])
            np.testing.assert_allclose(live, avg[k], rtol=1e-4, atol=1e-4)
            if k in ("grf", "torques_smpl"):
                np.testing.assert_array_equal(avg[k], own[k])
        assert np.abs(avg["torques_rajagopal"] - own["torques_rajagopal"]).max() > 1e-3


def test_mirror_average_is_exactly_symmetric():
    """The averaged estimate of a motion's mirror image is the mirror image of its estimate:
    the right hip of the image is the left hip of the motion, trunk bending changes sign. The
    plain forward is not (an untrained model: not at all)."""
    from hdys_rt.evaluation import predict_sequence
    from hdys_rt.model.mirror import mirror_plan, mirror_points

    m = _model()
    x = _walker(T=30, P=12, v=(1.3, 0.1, -0.4), turn=0.8, seed=3).numpy()[0]
    ch = list(reps.get("torques_rajagopal").channels)
    src, sign = mirror_plan("torques_rajagopal")
    for mirror in (True, False):
        a = predict_sequence(m, "markers", x, mirror)["torques_rajagopal"]
        b = predict_sequence(m, "markers", mirror_points(x), mirror)["torques_rajagopal"]
        assert np.allclose(b, a[:, src] * sign, atol=1e-5) == mirror
        if mirror:
            np.testing.assert_allclose(b[:, ch.index("hip_flexion_r")],
                                       a[:, ch.index("hip_flexion_l")], atol=1e-5)
            np.testing.assert_allclose(b[:, ch.index("lumbar_bending")],
                                       -a[:, ch.index("lumbar_bending")], atol=1e-5)


# --- augmentation -----------------------------------------------------------------------------

def test_mirroring_keeps_left_and_right_identifiable():
    """A body facing +z with its right foot at x < 0 (Y up, z forward: right = -x) whose RIGHT
    plate reads 0.9 BW: in the mirror image the foot that carried 0.9 BW is at x > 0, which is
    now its LEFT side (same forward), so the LEFT channels carry 0.9 and RIGHT the old left."""
    from hdys_rt.training.data import SeqArrays, collate

    T = 6
    pts = np.zeros((T, 2, 3), np.float32)
    pts[:, 0] = [-0.1, 0.05, 0.0]  # right foot
    pts[:, 1] = [0.1, 0.05, 0.0]  # left foot
    grf = np.zeros((T, 10), np.float32)
    grf[:, 1], grf[:, 6] = 0.9, 0.1  # r_fy, l_fy
    grf[:, 0], grf[:, 3] = 0.2, -0.1  # r_fx, r_copx
    tau = np.zeros((T, 17), np.float32)
    ch = list(reps.get("torques_rajagopal").channels)
    tau[:, ch.index("hip_flexion_r")], tau[:, ch.index("lumbar_bending")] = 1.0, 0.3
    s = SeqArrays("s", "d", "p", 70.0, {"markers": pts, "grf": grf, "torques_rajagopal": tau}, T)
    keys = ("markers", "grf", "torques_rajagopal")
    plain, mirrored = collate([(s, 0, 0.0, False)], T, keys), collate([(s, 0, 0.0, True)], T, keys)
    x = mirrored["markers"][0][0, 0]
    assert x[0, 0] > 0 and x[1, 0] < 0  # the old right foot is on the +x (now left) side
    g = mirrored["grf"][0][0, 0].numpy()
    gc = list(reps.get("grf").channels)
    assert g[gc.index("l_fy")] == pytest.approx(0.9) and g[gc.index("r_fy")] == pytest.approx(0.1)
    assert g[gc.index("l_fx")] == pytest.approx(-0.2) and g[gc.index("l_copx")] == pytest.approx(0.1)
    t = mirrored["torques_rajagopal"][0][0, 0].numpy()
    assert t[ch.index("hip_flexion_l")] == 1.0 and t[ch.index("hip_flexion_r")] == 0.0
    assert t[ch.index("lumbar_bending")] == pytest.approx(-0.3)
    assert plain["grf"][0][0, 0, gc.index("r_fy")] == pytest.approx(0.9)


def test_augmentation_sparse_sets_noise_and_low_rates(tmp_path):
    from hdys_rt.training.data import Augment

    _tiny_corpus(tmp_path, P=16)
    data = CorpusData(tmp_path, split=None)
    aug = Augment(sparse=1.0, low_rate=1.0, point_dropout=0.0, occlusion=0.0, noise_m=0.002)
    sampler = WindowSampler(data, SMALL.window, seed=0, augment=aug)
    x, m, _ = sampler.batch(8, ("markers", "torques_rajagopal"))["markers"]
    n = m.any(1).sum(-1)  # points present per window
    assert ((n >= 6) & (n <= 10)).all()
    assert torch.isfinite(x).all()


# --- physical consistency of GRF ---------------------------------------------------------------

def test_com_load_is_one_standing_and_zero_in_flight():
    from hdys_rt.model.hdys import G
    from hdys_rt.training.data import com_load

    x = _walker(T=60, v=(1.0, 0.0, 0.0))[0].numpy()
    np.testing.assert_allclose(com_load(x, 100.0)[6:-6], 1.0, atol=1e-3)
    fall = _walker(T=60, v=(1.0, 2.0, 0.0), ay=-G)[0].numpy()
    fall[30:, 4] = np.nan  # a marker lost in flight does not matter
    load = com_load(fall, 100.0)
    np.testing.assert_allclose(load[6:-6], 0.0, atol=1e-3)
    assert np.isnan(load[:3]).all() and np.isnan(load[-3:]).all()


def test_grf_no_plate_saw_is_unknown_not_zero(tmp_path):
    """A walk over one plate: the frames where the plates carry nothing while the body is
    carried load as NaN; a flight's zeros stay zeros."""
    from hdys_rt.training.data import mask_unseen_support

    T = 60
    walk = _walker(T=T, v=(1.2, 0.0, 0.0))[0].numpy()
    grf = np.zeros((T, 10), np.float32)
    grf[:30, 1] = 1.0  # the right foot on the plate, then off it: the plates see nothing
    out = mask_unseen_support(grf, walk, 100.0)
    assert np.isfinite(out[:30]).all() and (out[:30, 1] == 1.0).all()
    assert np.isnan(out[36:-6]).all()  # com_load's edges (3 frames each way) stay as they are
    fall = _walker(T=T, v=(1.0, 2.0, 0.0), ay=-reps.G)[0].numpy()
    zeros = np.zeros((T, 10), np.float32)
    np.testing.assert_array_equal(mask_unseen_support(zeros, fall, 100.0), zeros)  # flight
    # through the loader
    write_domain_info(tmp_path / "lab", "lab", "real", "a walkway with one plate")
    write_sequence(tmp_path / "lab", Sequence(
        "w", "lab", 100.0, Subject("s", 70.0, 1.75), "test",
        data={"markers": walk, "grf": grf[:, [1, 6]]},
        names={"markers": tuple(f"m{j}" for j in range(walk.shape[1])),
               "grf": ("r_fy", "l_fy")}, meta={"split": "train"}))
    seq = CorpusData(tmp_path, split="train").seqs["lab"][0]
    assert np.isnan(seq.data["grf"][40:50]).all() and (seq.data["grf"][:30, 1] == 1.0).all()


def test_physical_consistency_loss_term(tmp_path):
    _tiny_corpus(tmp_path)
    data = CorpusData(tmp_path, split="train")
    m = HDyS(SMALL)
    m.set_normalisation(data.normalisation())
    batch = WindowSampler(data, SMALL.window, seed=0).batch(4, ("markers", "grf"))
    assert batch["com_load"][1].any()  # no GRF in this corpus: the motion still constrains it
    _, parts = compute_losses(m, batch)
    assert parts["phys"] > 0
    _, none = compute_losses(m, batch, w_phys=0.0)
    assert none["phys"] == 0.0


# --- causal streaming == offline --------------------------------------------------------------

@pytest.mark.parametrize("stream_T", [5, 30])
def test_streaming_equals_offline_causal(stream_T):
    m = _model()
    T, P = stream_T, 12
    x = torch.randn(1, T, P, 3)
    mask = torch.rand(1, T, P) > 0.25
    offline = m.predict("markers", x, mask)
    est = StreamingEstimator(m, _meta(m))
    for t in range(T):
        pts = x[0, t].numpy().copy()
        pts[~mask[0, t].numpy()] = np.nan
        out = est.step(pts)
        for k in m.cfg.dyn_outputs:
            np.testing.assert_allclose(out[k], offline[k][0, t].numpy(), rtol=1e-4, atol=1e-5)


def test_stream_rate_multiple_uses_interleaved_states():
    m = _model()
    T, P = 24, 8
    x = torch.randn(1, T, P, 3)
    mask = torch.ones(1, T, P, dtype=torch.bool)
    est = StreamingEstimator(m, _meta(m), stream_rate=200.0)
    assert est.stride == 2
    outs = np.stack([est.step(x[0, t].numpy())["grf"] for t in range(T)])
    # frames 1, 3, 5, ... form a 100 Hz stream of their own
    odd = m.predict("markers", x[:, 1::2], mask[:, 1::2])["grf"][0].numpy()
    np.testing.assert_allclose(outs[1::2], odd, rtol=1e-4, atol=1e-5)


def test_bidirectional_model_differs_and_refuses_streaming():
    cfg = ModelConfig(**{**SMALL.to_dict(), "causal": False})
    m = _model(cfg)
    x = torch.randn(1, 10, 5, 3)
    mask = torch.ones(1, 10, 5, dtype=torch.bool)
    full = m.predict("markers", x, mask)["torques_rajagopal"]
    head = m.predict("markers", x[:, :6], mask[:, :6])["torques_rajagopal"]
    assert not torch.allclose(full[:, :6], head)  # the future changes the past: not causal
    with pytest.raises(HdysError, match="bidirectional"):
        StreamingEstimator(m, _meta(m))


def test_streaming_input_checks():
    m = _model()
    est = StreamingEstimator(m, _meta(m))
    with pytest.raises(HdysError, match=r"points must be \(P, 3\)"):
        est.step(np.zeros((4, 2), np.float32))
    with pytest.raises(HdysError, match="exceed the model's bound of 64"):
        est.step(np.zeros((65, 3), np.float32))


# --- weights I/O ------------------------------------------------------------------------------

def test_save_load_safetensors_round_trip(tmp_path):
    m = _model()
    stem = save_model(m, tmp_path / "m", rate=100.0, extra={"eval": {"x": 1}})
    m2, meta = load_model(stem)
    assert meta["eval"] == {"x": 1} and meta["rate"] == 100.0
    for (k, a), (_, b) in zip(m.state_dict().items(), m2.state_dict().items()):
        assert torch.equal(a.nan_to_num(), b.nan_to_num()), k  # uncalibrated novelty: NaN
        assert torch.equal(a.isnan(), b.isnan()), k
    # a tampered weights file is refused by its hash
    w = stem.with_suffix(".safetensors")
    raw = bytearray(w.read_bytes())
    raw[-1] ^= 0xFF
    w.write_bytes(bytes(raw))
    with pytest.raises(HdysError, match="do not match the hash"):
        load_model(stem)


# --- training ---------------------------------------------------------------------------------

def _tiny_corpus(root, n=6, T=60, P=10):
    rng = np.random.default_rng(0)
    write_domain_info(root / "sim", "sim", "sim", "test domain")
    t = np.arange(T) / 100.0
    for i in range(n):
        ph = rng.uniform(0, 6)
        walk = np.sin(2 * np.pi * t + ph)
        pts = rng.normal(size=(1, P, 3)) * 0.2 + walk[:, None, None] * np.array([0.1, 0.0, 0.0])
        tq = np.stack([walk, 0.5 * walk ** 2], 1)
        write_sequence(root / "sim", Sequence(
            f"s{i}", "sim", 100.0, Subject(f"subj{i}", 70.0, 1.75), "test",
            data={"markers": pts.astype(np.float32) + np.array([0, 1, 0], np.float32),
                  "torques_rajagopal": tq.astype(np.float32)},
            names={"markers": tuple(f"m{j}" for j in range(P)),
                   "torques_rajagopal": ("hip_flexion_r", "knee_angle_r")},
            meta={"split": "train"}))


def test_one_training_step_decreases_the_loss(tmp_path):
    _tiny_corpus(tmp_path)
    data = CorpusData(tmp_path, split="train")
    m = HDyS(SMALL)
    m.set_normalisation(data.normalisation())
    batch = WindowSampler(data, SMALL.window, seed=0).batch(8, ("markers", "torques_rajagopal"))
    opt = torch.optim.AdamW(m.parameters(), lr=1e-3)
    torch.manual_seed(0)
    before, parts = compute_losses(m, batch, generator=torch.Generator().manual_seed(0))
    assert parts["id"] > 0 and parts["align"] > 0 and parts["fd"] > 0
    opt.zero_grad()
    before.backward()
    opt.step()
    after, _ = compute_losses(m, batch, generator=torch.Generator().manual_seed(0))
    assert float(after.detach()) < float(before.detach())


def test_train_resume_and_eval_commands(tmp_path):
    from hdys_rt.cli import main

    _tiny_corpus(tmp_path / "corpus")
    out = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--data", str(tmp_path / "corpus"), "--out",
                 str(out), "--epochs", "1", "--no-progress"]) == 0
    assert main(["train", "--preset", "tiny", "--data", str(tmp_path / "corpus"), "--out",
                 str(out), "--epochs", "2", "--resume", "--no-progress"]) == 0
    meta = json.loads((out / "model.json").read_text())
    assert meta["training"]["epochs"] == 2 and meta["training"]["steps"] == 2  # 1 domain x 8 windows / 8 per batch = 1 step per epoch
    assert main(["eval", "--model", str(out / "model.safetensors"), "--data",
                 str(tmp_path / "corpus"), "--split", "all", "--json", str(tmp_path / "e.json")]) == 0
    rep = json.loads((tmp_path / "e.json").read_text())
    assert rep["domains"]["person_split"]["sim"]["markers"]["torques_rajagopal"]["metric"] == "mPJE"


def test_train_init_fine_tunes_a_saved_model_keeping_its_normalisation(tmp_path, capsys):
    from hdys_rt.cli import main
    from hdys_rt.model.io import load_model

    _tiny_corpus(tmp_path / "corpus")
    _tiny_corpus(tmp_path / "corpus2", T=90)  # other data, other statistics
    base = tmp_path / "base"
    assert main(["train", "--preset", "tiny", "--data", str(tmp_path / "corpus"), "--out",
                 str(base), "--epochs", "1", "--no-progress"]) == 0
    ft = tmp_path / "ft"
    assert main(["train", "--preset", "tiny", "--data", str(tmp_path / "corpus2"), "--out",
                 str(ft), "--epochs", "1", "--lr", "1e-4", "--init",
                 str(base / "model.safetensors"), "--no-progress"]) == 0
    m0, meta0 = load_model(base / "model.safetensors")
    m1, meta1 = load_model(ft / "model.safetensors")
    assert meta1["training"]["init"] == {"model": str(base / "model.safetensors"),
                                         "weights_sha256": meta0["weights_sha256"]}
    assert meta1["training"]["config"]["lr"] == 1e-4
    assert meta1["config"] == meta0["config"]  # the architecture is the init model's
    for a0, a1 in zip(m0.stats("torques_rajagopal"), m1.stats("torques_rajagopal")):
        assert torch.equal(a0, a1)  # the normalisation the weights were trained with
    assert not torch.equal(m0.heads["torques_rajagopal"][0].weight,
                           m1.heads["torques_rajagopal"][0].weight)  # and it trained
    capsys.readouterr()
    assert main(["train", "--preset", "tiny", "--data", str(tmp_path / "corpus2"), "--out",
                 str(tmp_path / "bad"), "--latent", "16", "--init",
                 str(base / "model.safetensors"), "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "--init takes its model's architecture: drop --latent" in err
    assert "Traceback" not in err


def test_add_motion_grows_a_model_that_starts_from_the_same_outputs(tmp_path, capsys):
    from dataclasses import replace

    from hdys_rt.cli import main
    from hdys_rt.model.io import load_model, save_model
    from hdys_rt.training.loop import _warm_start

    torch.manual_seed(0)  # a model saved before the motion features (as stages 1-4 were)
    cfg = replace(ModelConfig(latent=32, point_dim=32, point_layers=1, point_heads=2,
                              vec_hidden=64, dec_layers=1, dec_heads=2, dec_ff=64, window=8),
                  motion=False)
    old = str(save_model(HDyS(cfg), tmp_path / "old", rate=100.0))
    base, _ = load_model(old)
    grown, info = _warm_start(old, add_motion=True)
    assert grown.cfg.motion and info["added"].startswith("motion features")
    assert grown.cfg == replace(base.cfg, motion=True)  # nothing else of the architecture
    grown.eval()
    rng = np.random.default_rng(3)
    t = np.arange(40)[:, None, None] / 100.0
    pts = rng.uniform(-0.3, 0.3, (1, 1, 30, 3)) + np.array([0.0, 1.0, 0.0]) + 1.2 * t * [1, 0, 0]
    x = torch.tensor(pts, dtype=torch.float32)  # walking forward at 1.2 m/s
    mask = torch.ones(x.shape[:-1], dtype=torch.bool)
    a, b = base.predict("markers", x, mask), grown.predict("markers", x, mask)
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)  # exactly the same start
    # the motion branch sees this motion; only its zeroed last layer hides it
    enc = grown.kin_enc["markers"]
    assert enc.motion[0].weight.abs().sum() > 0 and enc.motion[-1].weight.abs().sum() == 0
    # without the flag, or for a model that has the features already, nothing is grown
    assert _warm_start(old)[0].cfg.motion is False
    assert "added" not in _warm_start("bundled", add_motion=True)[1]  # stage 5 has them
    # no --init: one-line error
    _tiny_corpus(tmp_path / "corpus")
    capsys.readouterr()
    assert main(["train", "--preset", "tiny", "--data", str(tmp_path / "corpus"), "--out",
                 str(tmp_path / "o"), "--add-motion", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "--add-motion grows the model of --init" in err and "Traceback" not in err


def test_bad_training_arguments_fail_in_one_line(tmp_path, capsys):
    from hdys_rt.cli import main

    assert main(["train", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert "does not exist" in err and "Traceback" not in err
    assert main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                 "--epochs", "0"]) == 1
    assert "--epochs must be > 0" in capsys.readouterr().err
    _tiny_corpus(tmp_path / "corpus")
    assert main(["train", "--preset", "tiny", "--data", str(tmp_path / "corpus"), "--out",
                 str(tmp_path / "o"), "--holdout-person", "nobody", "--no-progress"]) == 1
    err = capsys.readouterr().err
    assert "--holdout-person 'nobody' is no person of these sequences" in err
    assert "Traceback" not in err


def test_preset_paper_is_the_papers_settings():
    p = preset("paper")
    assert p.window_batch * p.model.window >= 9600 and p.epochs == 1000
    assert p.windows_per_domain == 3000 and p.lr == 1e-3
    assert (p.w_recon, p.w_align) == (0.01, 0.05) and p.model.latent == 128
    assert p.model.point_layers == 3


# --- evaluation on a known case ---------------------------------------------------------------

def test_eval_exact_figures_on_a_known_case(tmp_path):
    """A model whose heads output exactly zero predicts the normalisation mean: the errors
    are then known in closed form."""
    T = 40
    write_domain_info(tmp_path / "lab", "lab", "real", "known")
    write_sequence(tmp_path / "lab", Sequence(
        "k", "lab", 100.0, Subject("s", 70.0, 1.7), "known",
        data={"markers": np.tile(np.array([[0, 1, 0], [0.2, 0.5, 0.1]], np.float32), (T, 1, 1)),
              "torques_rajagopal": np.tile(np.array([0.0, 1.5], np.float32), (T, 1)),
              "grf": np.tile(np.array([1.0], np.float32), (T, 1))},
        names={"markers": ("a", "b"), "torques_rajagopal": ("hip_flexion_r", "knee_angle_r"),
               "grf": ("r_fy",)},
        meta={"split": "test"}))
    m = _model()
    with torch.no_grad():
        for head in m.heads.values():
            head[-1].weight.zero_()
            head[-1].bias.zero_()
    m.mean_torques_rajagopal.fill_(0.5)
    m.mean_grf.fill_(0.5)
    rep = evaluate(m, tmp_path, split="test", inputs=["markers"])
    tq = rep["lab"]["markers"]["torques_rajagopal"]
    assert tq["value"] == pytest.approx(0.75, abs=1e-6)  # (|0 - 0.5| + |1.5 - 0.5|) / 2
    assert tq["per_channel"] == {"hip_flexion_r": 0.5, "knee_angle_r": 1.0}
    assert tq["values"] == 2 * T
    assert rep["lab"]["markers"]["grf"]["value"] == pytest.approx(50.0, abs=1e-4)  # %BW


@pytest.mark.slow
def test_torchrun_ddp_two_processes(tmp_path):
    """Multi-process training through torchrun + PyTorch DDP (gloo on CPU)."""
    import subprocess
    import sys

    from loopback import free_port

    _tiny_corpus(tmp_path / "corpus")
    port = free_port()
    out = tmp_path / "ddp"
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
         f"--master_port={port}", "--master_addr=127.0.0.1", "-m", "hdys_rt.cli", "train",
         "--preset", "tiny", "--data", str(tmp_path / "corpus"), "--out", str(out),
         "--epochs", "2", "--no-progress"],
        capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, proc.stderr[-2000:]
    meta = json.loads((out / "model.json").read_text())
    assert meta["training"]["world_size"] == 2 and meta["training"]["epochs"] == 2
    assert proc.stdout.count("model written") == 1  # rank 0 only
