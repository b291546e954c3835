"""hdys_rt.data.formats on real OpenSim files and on small generated TRC / C3D / npz files."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

from hdys_rt import representations as reps
from hdys_rt.data import corpus, formats
from hdys_rt.data.formats import Limits, MarkerData
from hdys_rt.errors import HdysError


def _shared_data() -> Path | None:
    env = os.environ.get("HDYS_SHARED_DATA")
    root = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return root if (root / "opensim-models").is_dir() else None


DATA = _shared_data()
needs_data = pytest.mark.skipif(
    DATA is None, reason="shared data (opensim-models) not found: set HDYS_SHARED_DATA or "
    "place it at <repo>/../shared/data"
)
PIPE = (DATA / "opensim-models" / "Pipelines") if DATA else Path("/nonexistent")
RAJ_TRC = PIPE / "Rajagopal" / "ExpData" / "motion_capture_walk.trc"
G2354 = PIPE / "Gait2354_Simbody"


# --- TRC -------------------------------------------------------------------------------------


@needs_data
def test_read_trc_rajagopal_walk_real_values():
    m = formats.read_trc(RAJ_TRC)
    assert m.rate == 100.0 and m.units_in_file == "mm"
    assert m.xyz.shape == (238, 41, 3) and m.xyz.dtype == np.float32
    assert m.names[:3] == ("R.Shoulder", "L.Shoulder", "R.Clavicle")
    # frame 1, R.Shoulder: -652.630 1529.542 -94.520 mm
    np.testing.assert_allclose(m.xyz[0, 0], [-0.652630, 1.529542, -0.094520], atol=1e-6)
    np.testing.assert_allclose(m.time[:3], [0.0, 0.01, 0.02])
    assert not np.isnan(m.xyz).any()
    # standing subject, Y up: shoulders ~1.5 m above the heels
    assert 1.2 < np.nanmean(m.xyz[:, 0, 1]) - np.nanmean(m.xyz[:, m.names.index("R.Heel"), 1])


@needs_data
def test_read_trc_gait2354_trailing_tab_and_vertical_z():
    m = formats.read_trc(G2354 / "subject01_walk1.trc")
    assert (m.rate, m.xyz.shape, m.names[0]) == (60.0, (151, 41, 3), "R.ASIS")
    np.testing.assert_allclose(m.xyz[0, 0], [0.61724762, 1.05527502, 0.17078198], atol=1e-6)
    z = formats.read_trc(G2354 / "subject01_walk1.trc", vertical="z")
    np.testing.assert_allclose(z.xyz[0, 0], [0.61724762, 0.17078198, -1.05527502], atol=1e-6)


@needs_data
def test_trc_write_read_round_trip_units_and_blanks(tmp_path):
    m = formats.read_trc(RAJ_TRC)
    xyz = m.xyz.copy()
    xyz[5, 3] = np.nan  # one occluded marker sample -> blank cells
    m2 = MarkerData(m.names, m.rate, m.time, xyz, "mm")
    for units in ("mm", "m"):
        p = formats.write_trc(tmp_path / f"w_{units}.trc", m2, units=units, precision=6)
        back = formats.read_trc(p)
        assert back.names == m.names and back.rate == 100.0 and back.units_in_file == units
        assert np.isnan(back.xyz[5, 3]).all() and np.isnan(back.xyz).sum() == 3
        np.testing.assert_allclose(back.xyz, xyz, atol=1e-6, equal_nan=True)
    assert "\t\t\t" in (tmp_path / "w_mm.trc").read_text().splitlines()[11]


def _trc_text(n_rows=3, units="mm") -> str:
    head = (
        "PathFileType\t4\t(X/Y/Z)\tx.trc\n"
        "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\tOrigDataStartFrame\t"
        "OrigNumFrames\n"
        f"50\t50\t{n_rows}\t2\t{units}\t50\t1\t{n_rows}\n"
        "Frame#\tTime\tA\t\t\tB\t\t\n"
        "\t\tX1\tY1\tZ1\tX2\tY2\tZ2\n\n"
    )
    rows = [f"{i + 1}\t{i / 50:.3f}\t1\t2\t3\t\t\t\n" for i in range(n_rows)]
    return head + "".join(rows)


def test_trc_blank_cells_are_nan(tmp_path):
    p = tmp_path / "blank.trc"
    p.write_text(_trc_text())
    m = formats.read_trc(p)
    np.testing.assert_allclose(m.xyz[:, 0], [[0.001, 0.002, 0.003]] * 3)
    assert np.isnan(m.xyz[:, 1]).all() and m.rate == 50.0 and m.names == ("A", "B")


@needs_data
def test_trc_truncated_and_malformed_raise(tmp_path):
    text = RAJ_TRC.read_text()
    p = tmp_path / "trunc.trc"
    p.write_text(text[: len(text) // 2])  # cut mid-row
    with pytest.raises(HdysError, match=r"trunc\.trc: line \d+: \d+ columns, expected 125"):
        formats.read_trc(p)
    lines = text.splitlines()
    p.write_text("\n".join(lines[:100]) + "\n")  # cut on a row boundary
    with pytest.raises(HdysError, match=r"NumFrames=238 but found 94 data rows"):
        formats.read_trc(p)
    bad = list(lines)
    bad[10] = bad[10] + "\t1.0"  # one value too many
    p.write_text("\n".join(bad))
    with pytest.raises(HdysError, match=r"line 11: 126 columns, expected 125"):
        formats.read_trc(p)
    p.write_text("\n".join(lines[:6] + ["1\t0.0\t" + "\t".join(["abc"] * 123)] + lines[7:]))
    with pytest.raises(HdysError, match=r"line 7, column 3: 'abc' is not a number"):
        formats.read_trc(p)


def test_trc_bad_headers_raise(tmp_path):
    p = tmp_path / "h.trc"
    p.write_text("hello\nworld\n")
    with pytest.raises(HdysError, match=r"h\.trc: not a TRC file"):
        formats.read_trc(p)
    p.write_text(_trc_text(units="furlong"))
    with pytest.raises(HdysError, match=r"unknown length units 'furlong'"):
        formats.read_trc(p)
    p.write_text(_trc_text().replace("50\t50\t3\t2", "50\t50\t3\t3", 1))
    with pytest.raises(HdysError, match=r"NumMarkers=3 but line 4 names 2 markers"):
        formats.read_trc(p)
    p.write_text(_trc_text().replace("50\t50\t3", "-5\t50\t3", 1))
    with pytest.raises(HdysError, match=r"DataRate must be > 0"):
        formats.read_trc(p)


@needs_data
def test_limits_refuse_large_files():
    with pytest.raises(HdysError, match=r"41 markers, over the limit of 10.*max_markers"):
        formats.read_trc(RAJ_TRC, limits=Limits(max_markers=10))
    with pytest.raises(HdysError, match=r"238 frames, over the limit of 100"):
        formats.read_trc(RAJ_TRC, limits=Limits(max_frames=100))
    with pytest.raises(HdysError, match=r"motion_capture_walk\.trc: file is \d+ bytes, over"):
        formats.read_trc(RAJ_TRC, limits=Limits(max_bytes=1000))
    with pytest.raises(HdysError, match=r"19 columns, over the limit of 5"):
        formats.read_storage(G2354 / "subject01_walk1_grf.mot", limits=Limits(max_columns=5))
    with pytest.raises(HdysError, match=r"max_frames must be > 0"):
        Limits(max_frames=0)


# --- MOT / STO -------------------------------------------------------------------------------


@needs_data
def test_read_ik_mot_degrees_to_radians_translations_kept():
    t = formats.read_storage(G2354 / "OutputReference" / "subject01_walk1_ik.mot")
    assert t.in_degrees_file and t.values.shape == (73, 23) and t.header["name"] == "Coordinates"
    assert t.names[:4] == ("pelvis_tilt", "pelvis_list", "pelvis_rotation", "pelvis_tx")
    assert t.time[0] == pytest.approx(0.4)
    assert t.column("knee_angle_r")[0] == pytest.approx(np.deg2rad(-54.91982332), abs=1e-12)
    assert t.column("pelvis_tilt")[0] == pytest.approx(np.deg2rad(4.84455933), abs=1e-12)
    assert t.column("pelvis_tx")[0] == pytest.approx(0.60102028)  # metres, untouched
    assert t.column("pelvis_ty")[0] == pytest.approx(1.04559875)
    assert set(t.angular) == set(t.names) - {"pelvis_tx", "pelvis_ty", "pelvis_tz"}
    assert "Angles are in degrees." in t.header["description"]


@needs_data
def test_read_grf_mot_forces_not_converted_despite_in_degrees():
    t = formats.read_storage(G2354 / "subject01_walk1_grf.mot")
    assert t.in_degrees_file and t.angular == () and t.values.shape == (1501, 18)
    assert t.column("ground_force_vy")[0] == pytest.approx(745.4661142)
    assert t.column("1_ground_torque_z")[0] == pytest.approx(6.88030347)
    r = formats.read_storage(PIPE / "Rajagopal" / "ExpData" / "grf_walk.mot")
    assert not r.in_degrees_file and r.values.shape == (4778, 18)
    assert r.column("ground_force_r_px")[0] == pytest.approx(346.097838)


@needs_data
def test_storage_round_trip_degrees_and_radians(tmp_path):
    t = formats.read_storage(G2354 / "OutputReference" / "subject01_walk1_ik.mot")
    p = formats.write_storage(tmp_path / "ik.mot", t)
    text = p.read_text()
    assert "inDegrees=yes" in text and "-54.91982332" in text
    back = formats.read_storage(p)
    assert back.names == t.names and back.angular == t.angular
    np.testing.assert_allclose(back.values, t.values, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(back.time, t.time, rtol=1e-10)
    p2 = formats.write_storage(tmp_path / "ik.sto", t, in_degrees=False)
    back2 = formats.read_storage(p2)
    assert not back2.in_degrees_file and back2.angular == ()
    np.testing.assert_allclose(back2.values, t.values, rtol=1e-10, atol=1e-12)


def test_storage_malformed_raise(tmp_path):
    p = tmp_path / "bad.mot"
    p.write_text("x\nversion=1\ntime\ta\n0\t1\n")
    with pytest.raises(HdysError, match=r"bad\.mot: no 'endheader' line"):
        formats.read_storage(p)
    p.write_text("x\ninDegrees=yes\nendheader\ntime\ta\tb\n0\t1\t2\n0.1\t1\n")
    with pytest.raises(HdysError, match=r"line 6: 2 values, expected 3"):
        formats.read_storage(p)
    p.write_text("x\nnRows=3\nendheader\ntime\ta\n0\t1\n0.1\t2\n")
    with pytest.raises(HdysError, match=r"nRows=3 but found 2 data rows"):
        formats.read_storage(p)
    p.write_text("x\nendheader\nframe\ta\n0\t1\n")
    with pytest.raises(HdysError, match=r"first column label must be 'time'"):
        formats.read_storage(p)
    p.write_text("x\ninDegrees=maybe\nendheader\ntime\ta\n0\t1\n")
    with pytest.raises(HdysError, match=r"inDegrees must be yes or no"):
        formats.read_storage(p)
    p.write_text("x\nendheader\ntime\ta\n0\tNaNa\n")
    with pytest.raises(HdysError, match=r"line 4, column 2: 'NaNa' is not a number"):
        formats.read_storage(p)


# --- C3D -------------------------------------------------------------------------------------


@needs_data
def test_c3d_round_trip_from_real_trc_zup(tmp_path):
    ezc3d = pytest.importorskip("ezc3d")
    m = formats.read_trc(RAJ_TRC)
    xyz = m.xyz.copy()
    xyz[10, 2] = np.nan  # occluded
    m = MarkerData(m.names, m.rate, m.time, xyz, "mm")
    p = formats.write_c3d(tmp_path / "walk.c3d", m)  # Z up, mm
    raw = ezc3d.c3d(str(p))
    pts = raw["data"]["points"]  # (4, points, frames), lab Z up, mm
    assert raw["parameters"]["POINT"]["UNITS"]["value"][0] == "mm"
    np.testing.assert_allclose(pts[2, 0, 0], 1529.542, atol=1e-3)  # lab z = TRC y
    np.testing.assert_allclose(pts[1, 0, 0], 94.520, atol=1e-3)  # lab y = -TRC z
    np.testing.assert_allclose(pts[0, 0, 0], -652.630, atol=1e-3)

    back = formats.read_c3d(p)
    assert back.names == m.names and back.rate == 100.0 and back.units_in_file == "mm"
    np.testing.assert_allclose(back.xyz[0, 0], [-0.652630, 1.529542, -0.094520], atol=1e-6)
    np.testing.assert_allclose(back.xyz, xyz, rtol=1e-6, atol=1e-6, equal_nan=True)
    assert np.isnan(back.xyz[10, 2]).all() and np.isnan(back.xyz).sum() == 3
    np.testing.assert_allclose(back.time, m.time, atol=1e-9)
    same = formats.load_markers(p)
    np.testing.assert_array_equal(same.xyz, back.xyz)


def test_c3d_units_zero_markers_and_y_up(tmp_path):
    pytest.importorskip("ezc3d")
    xyz = np.array([[[0.1, 1.0, 0.3], [0.0, 0.0, 0.0]], [[0.2, 1.1, 0.4], [0.5, 0.5, 0.5]]],
                   np.float32)
    m = MarkerData(("a", "b"), 50.0, np.array([0.0, 0.02]), xyz)
    p = formats.write_c3d(tmp_path / "m.c3d", m, units="m", vertical="y")
    back = formats.read_c3d(p, vertical="y")
    assert back.units_in_file == "m" and back.rate == 50.0
    assert np.isnan(back.xyz[0, 1]).all()  # exact zeros mean occluded in C3D
    np.testing.assert_allclose(back.xyz[1], xyz[1], atol=1e-7)
    np.testing.assert_allclose(back.xyz[0, 0], xyz[0, 0], atol=1e-7)


def test_c3d_malformed_raise_without_hanging(tmp_path):
    pytest.importorskip("ezc3d")
    xyz = np.random.default_rng(0).normal(size=(50, 3, 3)).astype(np.float32)
    p = formats.write_c3d(tmp_path / "ok.c3d", MarkerData(("a", "b", "c"), 100.0,
                                                         np.arange(50) / 100, xyz))
    raw = p.read_bytes()
    t = tmp_path / "trunc.c3d"
    t.write_bytes(raw[: len(raw) - 1024])
    with pytest.raises(HdysError, match=r"trunc\.c3d: truncated C3D file"):
        formats.read_c3d(t)
    t.write_bytes(raw[:700])
    with pytest.raises(HdysError, match=r"truncated C3D file"):
        formats.read_c3d(t)
    t.write_bytes(b"hello world" * 100)
    with pytest.raises(HdysError, match=r"not a C3D file"):
        formats.read_c3d(t)
    with pytest.raises(HdysError, match=r"3 markers, over the limit of 2"):
        formats.read_c3d(p, limits=Limits(max_markers=2))


# --- AMASS npz -------------------------------------------------------------------------------


def _rotvec(seq: str, deg) -> np.ndarray:
    from scipy.spatial.transform import Rotation

    return Rotation.from_euler(seq, deg, degrees=True).as_rotvec()


def test_amass_npz_zup_to_yup_exact(tmp_path):
    pytest.importorskip("scipy")
    T = 4
    rng = np.random.default_rng(1)
    poses = rng.normal(scale=0.3, size=(T, 156))
    # frame 0: AMASS's standing root, +90 deg about X (SMPL Y-up body stood up in a Z-up world)
    poses[0, :3] = _rotvec("x", 90)
    # frame k: the standing body turned by theta about the vertical (Z up): Rz(theta) Rx(90)
    thetas = [30.0, -45.0, 120.0]
    for k, th in enumerate(thetas, start=1):
        poses[k, :3] = _rotvec("xz", [90, th])  # extrinsic: Rx(90) first, then Rz(theta)
    trans = np.array([[1.0, 2.0, 3.0], [0.0, 0.0, 0.9], [-1.0, 0.5, 0.95], [0.2, -0.3, 1.0]])
    p = tmp_path / "amass.npz"
    np.savez(p, poses=poses, trans=trans, mocap_framerate=np.array(120.0),
             betas=np.arange(16, dtype=np.float64), gender=np.array("female"))
    s = formats.read_amass(p)
    assert s.rate == 120.0 and s.gender == "female" and s.pose.shape == (T, 75)
    np.testing.assert_allclose(s.time, np.arange(T) / 120.0)
    np.testing.assert_array_equal(s.betas, np.arange(16))
    # translation: (x, y, z) Z up -> (x, z, -y) Y up
    np.testing.assert_allclose(s.transl[0], [1.0, 3.0, -2.0], atol=1e-6)
    np.testing.assert_allclose(s.transl[1], [0.0, 0.9, 0.0], atol=1e-6)
    # root: standing -> identity; turned by theta about Z -> theta about Y
    np.testing.assert_allclose(s.rotations[0, 0], [0.0, 0.0, 0.0], atol=1e-6)
    for k, th in enumerate(thetas, start=1):
        np.testing.assert_allclose(s.rotations[k, 0], [0.0, np.deg2rad(th), 0.0], atol=1e-6)
    # body joints are local rotations: unchanged; hand joints (SMPL-H) dropped
    np.testing.assert_allclose(s.pose[:, 6:], poses[:, 3:72], atol=1e-6)
    assert reps.SMPL_POSE_CHANNELS[3:6] == ("pelvis_rx", "pelvis_ry", "pelvis_rz")

    # root offset: the pelvis J0 is carried through the rotation exactly
    j0 = np.array([0.0, -0.2, 0.03])
    s2 = formats.read_amass(p, root_offset=j0)
    np.testing.assert_allclose(s2.transl[0], [1.0, 3.23, -1.83], atol=1e-6)

    # write back (Z up) and re-read: same values
    q = formats.write_amass(tmp_path / "back.npz", s)
    s3 = formats.read_amass(q)
    np.testing.assert_allclose(s3.pose, s.pose, atol=1e-6)
    with np.load(q, allow_pickle=False) as z:
        np.testing.assert_allclose(z["trans"], trans, atol=1e-6)


def test_amass_smpl72_and_frame_rate_key(tmp_path):
    pytest.importorskip("scipy")
    p = tmp_path / "s.npz"
    np.savez(p, poses=np.zeros((3, 72)), trans=np.zeros((3, 3)),
             mocap_frame_rate=np.float64(60.0))
    s = formats.read_amass(p)
    assert s.rate == 60.0 and s.gender == "neutral" and s.betas.size == 0
    want = np.zeros((3, 75))
    want[:, 3] = -np.pi / 2  # identity root in the Z-up world is -90 deg about X in Y up
    np.testing.assert_allclose(s.pose, want, atol=1e-6)
    s_raw = formats.read_amass(p, zup=False)
    np.testing.assert_array_equal(s_raw.pose, 0.0)


def test_amass_refuses_pickles_and_bad_arrays(tmp_path):
    p = tmp_path / "evil.npz"
    np.savez(p, poses=np.array([{"x": 1}, None], dtype=object), trans=np.zeros((2, 3)),
             mocap_framerate=np.float64(30.0))
    with pytest.raises(HdysError, match=r"evil\.npz: member 'poses' is an object \(pickled\)"):
        formats.read_amass(p)
    np.savez(p, poses=np.zeros((2, 72)), trans=np.zeros((2, 3)), mocap_framerate=30.0,
             gender=np.array(["m", None], dtype=object))
    with pytest.raises(HdysError, match=r"member 'gender' is an object"):
        formats.read_amass(p)
    np.savez(p, poses=np.zeros((2, 70)), trans=np.zeros((2, 3)), mocap_framerate=30.0)
    with pytest.raises(HdysError, match=r"'poses' must be \(T, 72\) or \(T, 156\)"):
        formats.read_amass(p)
    np.savez(p, poses=np.zeros((2, 72)), trans=np.zeros((3, 3)), mocap_framerate=30.0)
    with pytest.raises(HdysError, match=r"'trans' must be \(2, 3\)"):
        formats.read_amass(p)
    np.savez(p, poses=np.zeros((2, 72)), trans=np.zeros((2, 3)))
    with pytest.raises(HdysError, match=r"no frame rate"):
        formats.read_amass(p)
    p.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(HdysError, match=r"not a readable \.npz"):
        formats.read_amass(p)
    # a zip bomb-ish member: declared uncompressed size over the limit
    with zipfile.ZipFile(p, "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("poses.npy", b"\0" * 200_000)
    with pytest.raises(HdysError, match=r"unpack to 200000 bytes, over the limit"):
        formats.read_amass(p, limits=Limits(max_bytes=100_000))


# --- dispatch --------------------------------------------------------------------------------


@needs_data
def test_load_sequence_file_all_formats(tmp_path):
    seq = formats.load_sequence_file(RAJ_TRC)
    assert isinstance(seq, corpus.Sequence) and seq.rate == 100.0 and seq.frames == 238
    assert seq.data["markers"].shape == (238, 41, 3) and seq.meta["subject_known"] is False
    np.testing.assert_allclose(seq.data["markers"][0, 0], [-0.652630, 1.529542, -0.094520],
                               atol=1e-6)
    side = corpus.write_sequence(tmp_path, seq)
    again = formats.load_sequence_file(side)
    np.testing.assert_array_equal(again.data["markers"], seq.data["markers"])
    assert again.names["markers"] == seq.names["markers"]

    ik = formats.load_sequence_file(G2354 / "OutputReference" / "subject01_walk1_ik.mot",
                                    subject=corpus.Subject("s01", 72.6, 1.8))
    assert ik.rate == pytest.approx(60.0, rel=1e-4) and ik.data["joint_angles"].shape == (73, 23)
    assert ik.meta["t0"] == pytest.approx(0.4) and ik.subject.id == "s01"
    knee = ik.canonical("joint_angles")[0, reps.RAJAGOPAL_COORDINATES.index("knee_angle_r")]
    assert knee == pytest.approx(np.deg2rad(-54.91982332), abs=1e-6)

    with pytest.raises(HdysError, match=r"no joint-angle columns"):
        formats.load_sequence_file(G2354 / "subject01_walk1_grf.mot")


def test_load_sequence_file_npz_and_unknown_extension(tmp_path):
    pytest.importorskip("scipy")
    p = tmp_path / "clip.npz"
    np.savez(p, poses=np.zeros((5, 72)), trans=np.ones((5, 3)), mocap_framerate=30.0)
    seq = formats.load_sequence_file(p)
    assert seq.names["smpl_pose"] == reps.SMPL_POSE_CHANNELS and seq.rate == 30.0
    np.testing.assert_allclose(seq.data["smpl_pose"][0, :3], [1.0, 1.0, -1.0], atol=1e-6)
    for bad in ("x.bvh", "x"):
        with pytest.raises(HdysError, match=r"unsupported file type .*supported: \.trc, \.c3d"):
            formats.load_sequence_file(tmp_path / bad)
    with pytest.raises(HdysError, match=r"supported: \.trc, \.c3d$"):
        formats.load_markers(tmp_path / "x.mot")
    with pytest.raises(HdysError, match=r"missing\.trc: cannot read file"):
        formats.load_markers(tmp_path / "missing.trc")
