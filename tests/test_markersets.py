"""Marker-set mapping, reports, unit and vertical-axis detection, the orientation check."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from hdys_rt.data.markersets import (CORE_MARKERS, TRAINED_MARKERS, UprightWatch,
                                        check_upright, detect_units, detect_vertical,
                                        first_second, map_markers)
from hdys_rt.data.shared import ENV_VAR, default_shared_dir
from hdys_rt.errors import HdysError

PIG = ("LFHD RFHD C7 CLAV LSHO LELB LWRA RSHO RELB RWRA LASI RASI LPSI RPSI LTHI LKNE LTIB "
       "LANK LHEE LTOE RTHI RKNE RTIB RANK RHEE RTOE").split()
RAJAGOPAL = ("RASI LASI RPSI LPSI RTH1 RTH2 RTH3 RLFC RMFC RTB1 RTB2 RTB3 RLMAL RMMAL RCAL RTOE "
             "RMT5 LTH1 LTH2 LTH3 LLFC LMFC LTB1 LTB2 LTB3 LLMAL LMMAL LCAL LTOE LMT5").split()
CAST = ("RASI LASI RPSI LPSI RTH1 RTH2 RTH3 RTH4 RSK1 RSK2 RSK3 RSK4 RLE RME RLM RMM RCA RVM "
        "LLE LME LLM LMM LCA LVM LFM").split()


def test_trained_names_cover_the_training_data(gait):
    from hdys_rt.data.domains.myolegs import _MARKER_SITES

    assert set(gait.names) <= set(TRAINED_MARKERS)
    assert {n for n, _ in _MARKER_SITES} <= set(TRAINED_MARKERS)
    mm = map_markers(gait.names)
    assert mm.names == gait.names and not mm.unknown and not mm.missing


def test_plug_in_gait(caplog):
    with caplog.at_level(logging.WARNING):
        mm = map_markers(PIG)
    assert mm.exact["RASI"] == "R.ASIS" and mm.exact["LKNE"] == "L.Knee"
    assert mm.exact["RANK"] == "R.Ankle" and mm.exact["RHEE"] == "R.Heel"
    assert mm.approx == {"LTHI": "L.TH2", "LTIB": "L.SH2", "RTHI": "R.TH2", "RTIB": "R.SH2"}
    assert set(mm.unknown) == {"LFHD", "RFHD", "C7", "CLAV"}
    assert not mm.missing
    assert "LFHD" not in mm.names and len(mm.names) == len(PIG) - 4
    assert "unknown marker(s) dropped: LFHD" in caplog.text
    assert "unknown (not trained on): LFHD, RFHD, C7, CLAV" in mm.report()


def test_rajagopal_set_with_vicon_prefix():
    mm = map_markers([f"Sub01:{n}" for n in RAJAGOPAL])
    assert mm.exact["Sub01:RLFC"] == "R.Knee" and mm.exact["Sub01:RMFC"] == "R.MKnee"
    assert mm.exact["Sub01:RTB2"] == "R.SH2" and mm.exact["Sub01:LCAL"] == "L.Heel"
    assert not mm.unknown and not mm.missing and not mm.approx


def test_cast_cluster_set_reports_missing():
    mm = map_markers(CAST[:-1] + ["r_heel"])  # a second right heel, and no left toe
    assert mm.exact["RSK3"] == "R.SH3" and mm.exact["RVM"] == "R.MT5"
    assert mm.exact["LLE"] == "L.Knee" and mm.exact["RMM"] == "R.MAnkle"
    assert mm.duplicates == ("r_heel",)
    assert set(mm.missing) == {"R.Toe", "L.Toe"}
    assert "missing core markers: R.Toe, L.Toe" in mm.report()
    xyz = np.arange(len(mm.source) * 3, dtype=np.float32).reshape(1, -1, 3)
    assert mm.apply(xyz).shape == (1, len(mm.names), 3)


def test_other_spellings():
    mm = map_markers(["asis_r", "Left-ASIS", "RightKnee", "r_knee", "S2", "SACR"])
    assert mm.names[:3] == ("R.ASIS", "L.ASIS", "R.Knee")
    assert mm.duplicates == ("r_knee", "SACR")


def test_keep_unknown_and_disabled():
    mm = map_markers(["RASI", "FOO"], keep_unknown=True)
    assert mm.names == ("R.ASIS", "FOO")
    raw = map_markers(["RASI", "FOO"], enabled=False)
    assert raw.names == ("RASI", "FOO") and raw.exact == {"RASI": "R.ASIS"}


def test_errors_name_the_fix():
    with pytest.raises(HdysError, match="none of the 2 markers is known.*--keep-unknown"):
        map_markers(["FOO", "BAR"])
    with pytest.raises(HdysError, match="collide after mapping"):
        map_markers(["FOO", "FOO"], keep_unknown=True)  # duplicate input names


def test_units_and_vertical(gait, caplog):
    xyz = gait.xyz  # metres, Y up
    assert detect_units(xyz) == "m"
    assert detect_units(xyz * 100) == "cm"
    with caplog.at_level(logging.WARNING):
        assert detect_units(xyz * 1000, declared="m") == "mm"
    assert "looks like mm, not the declared m" in caplog.text
    assert detect_vertical(xyz) == "y"
    assert detect_vertical(xyz[..., [0, 2, 1]]) == "z"
    assert detect_units(np.full((3, 4, 3), np.nan), declared="mm") == "mm"
    assert set(CORE_MARKERS) <= set(TRAINED_MARKERS)


# --- the common lab sets (issue 12 D) ----------------------------------------------------------

QUALISYS = ("L_IAS L_IPS R_IAS R_IPS L_FTC L_FLE L_FME L_TTC L_FAL L_TAM L_FCC L_FM1 L_FM2 L_FM5 "
            "R_FTC R_FLE R_FME R_TTC R_FAL R_TAM R_FCC R_FM1 R_FM2 R_FM5 L_SAE R_SAE L_HLE R_HLE "
            "L_USP R_USP").split()
OPENCAP = ("r.ASIS_study L.ASIS_study r.PSIS_study L.PSIS_study r_knee_study r_mknee_study "
           "r_ankle_study r_mankle_study r_toe_study r_5meta_study r_calc_study L_knee_study "
           "L_mknee_study L_ankle_study L_mankle_study L_toe_study L_calc_study L_5meta_study "
           "r_shoulder_study L_shoulder_study r_lelbow_study L_lelbow_study r_lwrist_study "
           "L_lwrist_study r_thigh1_study r_thigh2_study r_thigh3_study r_sh1_study "
           "r_sh2_study r_sh3_study").split()
MOTIVE = ("WaistLFront WaistRFront WaistLBack WaistRBack LThigh LKneeOut LKneeIn LShin "
          "LAnkleOut LAnkleIn LHeel LToeOut LToeIn LToeTip RThigh RKneeOut RKneeIn RShin "
          "RAnkleOut RAnkleIn RHeel RToeOut RToeIn RToeTip LShoulderTop LElbowOut LWristOut "
          "RShoulderTop RElbowOut RWristOut").split()
CORTEX = ("R.ASIS L.ASIS R.PSIS L.PSIS V.Sacral R.Thigh.Upper R.Thigh.Front R.Thigh.Rear "
          "R.Knee R.Knee.Medial R.Shank.Upper R.Shank.Front R.Shank.Rear R.Ankle R.Ankle.Medial "
          "R.Heel R.Toe L.Knee L.Knee.Medial L.Ankle L.Ankle.Medial L.Heel L.Toe").split()
CAST_FULL = ("RASIS LASIS RPSIS LPSIS RGT RLE RME RTT RLM RMM RCA RVM RFM LGT LLE LME LTT LLM "
             "LMM LCA LVM LFM").split()
NOT_MARKERS = ("LKneeMoment LHipAngles LAnklePower RGroundReactionForce RNormalisedGRF "
               "LAbsAnkleAngleV CentreOfMass CentreOfMassFloor PELO LFEA RTOP HEDO LHJC "
               "LeftHipCenter RightHipCenterGamage L_HJC_reg *115 *2").split() + [
    "C_123", "Unlabeled 2001", "Subject:LKneeForce"]


@pytest.mark.parametrize("names, sent, core_missing", [
    # FM1/FM2 and ToeIn/ToeOut pairs: one of each is a dropped duplicate
    (QUALISYS, 28, 0), (OPENCAP, 30, 0), (MOTIVE, 28, 0), (CORTEX, 23, 0), (CAST_FULL, 22, 0),
    (("RLEK RMEK LLEK LMEK RGTRO LGTRO RASI LASI RPSI LPSI RANK LANK RHEE LHEE RTOE "
      "LTOE").split(), 16, 0),
])
def test_common_lab_sets_map(names, sent, core_missing, caplog):
    with caplog.at_level(logging.WARNING, logger="hdys_rt.data.markersets"):
        mm = map_markers(names)
    assert len(mm.keep) == sent and len(mm.missing) == core_missing, mm.report()
    assert not mm.unknown and "unknown" not in caplog.text, mm.report()


def test_specific_names_land_on_their_landmark():
    names = ["L_IAS", "L_IPS", "R_IAS", "R_IPS", "r_calc", "r_5meta", "r_toe", "r_knee",
             "r_mknee", "r_ankle", "r_mankle", "RLEK", "LMEK", "RGTRO", "WaistLFront",
             "R.Knee.Medial"]
    assert {n: map_markers([n]).target[0] for n in names} == {
        "L_IAS": "L.ASIS", "L_IPS": "L.PSIS", "R_IAS": "R.ASIS", "R_IPS": "R.PSIS",
        "r_calc": "R.Heel", "r_5meta": "R.MT5", "r_toe": "R.Toe", "r_knee": "R.Knee",
        "r_mknee": "R.MKnee", "r_ankle": "R.Ankle", "r_mankle": "R.MAnkle", "RLEK": "R.Knee",
        "LMEK": "L.MKnee", "RGTRO": "R.TH1", "WaistLFront": "L.ASIS", "R.Knee.Medial": "R.MKnee"}
    assert map_markers(["RGTRO"]).approx == {"RGTRO": "R.TH1"}  # near the thigh cluster's top
    assert map_markers(["r_knee_study"]).exact == {"r_knee_study": "R.Knee"}  # OpenCap suffix


def test_model_outputs_and_unlabelled_points_are_skipped_quietly(caplog):
    with caplog.at_level(logging.WARNING, logger="hdys_rt.data.markersets"):
        mm = map_markers(PIG + NOT_MARKERS)
    assert mm.skipped == tuple(NOT_MARKERS) and not (set(mm.unknown) & set(NOT_MARKERS))
    assert not any(n in caplog.text for n in ("LKneeMoment", "*115", "Unlabeled"))
    assert f"{len(NOT_MARKERS)} non-marker points skipped" in mm.report()
    assert mm.as_dict()["skipped"] == len(NOT_MARKERS)


def test_exact_landmark_wins_over_an_approximate_one():
    """A trochanter listed before the thigh cluster does not take the cluster's name."""
    mm = map_markers(["RGTRO", "RTH1", "RASI"])
    assert mm.exact == {"RTH1": "R.TH1", "RASI": "R.ASIS"} and mm.duplicates == ("RGTRO",)


SHARED = Path(os.environ.get(ENV_VAR) or default_shared_dir())  # the shared raw data
REAL = SHARED / "real"


@pytest.mark.parametrize("rel, n_in, sent, skipped, unknown", [
    ("c3d/btk_PiG_Motion-FlatFoot-Full.c3d", 193, 24, 156, 11),  # Vicon PiG + model outputs
    ("c3d/btk_PiG_Motion3_FF.c3d", 97, 16, 81, 0),               # *1.. unlabelled, outputs
    ("c3d/btk_FunctionalWalk.c3d", 146, 29, 81, 34),
    ("c3d/nimble_welk007_c3d_Trimmed_RHJC1.c3d", 48, 37, 0, 9),  # OpenCap-style names
    ("c3d/nimble_Return11_c3dfile1.c3d", 70, 28, 0, 40),         # LKNEL LMALM LM5 LWRR...
    ("opencap_subject4/MarkerData/DJ1.trc", 51, 37, 4, 8),
    ("camargo_levelground/MarkerData/levelground_ccw_fast_01_01.trc", 28, 26, 0, 0),
])
def test_real_lab_files_map(rel, n_in, sent, skipped, unknown):
    pytest.importorskip("ezc3d")
    path = REAL / rel
    if not path.is_file():
        pytest.skip(f"{path} not found (shared data)")
    from hdys_rt.data.formats import load_markers

    mm = map_markers(load_markers(path).names)
    assert (len(mm.source), len(mm.keep), len(mm.skipped), len(mm.unknown)) == \
        (n_in, sent, skipped, unknown), mm.report()


# --- orientation: upside down / lying (issue 12 D) ----------------------------------------------
UPRIGHT_FILES = ["opensim-models/Pipelines/Rajagopal/ExpData/motion_capture_walk.trc",
                 "real/opencap_subject4/MarkerData/DJ1.trc",         # a drop jump off a box
                 "real/c3d/btk_PiG_Motion-FlatFoot-Full.c3d",        # Plug-in Gait, Z up
                 "real/c3d/nimble_welk007_c3d_Trimmed_RHJC1.c3d"]


def _first_second(rel: str):
    """The first second (from the first frame with markers) of a real file, as the loader
    reads it (metres, Y up, trained names), and its names."""
    path = SHARED / rel
    if not path.is_file():
        pytest.skip(f"{path} not found (shared data)")
    if path.suffix == ".c3d":
        pytest.importorskip("ezc3d")
    from hdys_rt.data.loader import load_file

    rec = load_file(path)
    return first_second(rec.data, rec.rate), rec.names


def _rot90(xyz):
    """90 deg about X: what was up (+Y) points along +Z, a body lying down in the Y-up frame."""
    return np.stack([xyz[..., 0], -xyz[..., 2], xyz[..., 1]], axis=-1)


@pytest.mark.parametrize("with_names", [True, False], ids=["names", "geometry"])
@pytest.mark.parametrize("rel", UPRIGHT_FILES)
def test_upright_upside_down_and_lying_real_files(rel, with_names):
    xyz, names = _first_second(rel)
    names = names if with_names else None
    method = "names" if with_names else "geometry"

    up = check_upright(xyz, names)
    assert (up.orientation, up.up, up.method, up.suspicious) == ("upright", "+y", method, False)
    assert up.message == "" and up.as_dict()["orientation"] == "upright"

    down = check_upright(xyz * np.array([1, -1, 1], np.float32), names)  # Y negated
    assert (down.orientation, down.up, down.flag, down.method) == \
        ("upside_down", "-y", "ydown", method)
    assert down.suspicious and "upside down" in down.message
    assert down.message.endswith("pass --up ydown")

    lying = check_upright(_rot90(xyz), names)
    assert (lying.orientation, lying.up, lying.flag, lying.method) == ("lying", "+z", "z", method)
    assert lying.message.endswith("the input looks Z up; pass --up z")
    # the same data read with --up z already applied: its raw up was -Y, which a command taking
    # only y / z cannot express
    odd = check_upright(_rot90(xyz), names, up="z", choices=("y", "z"))
    assert odd.flag is None and "which --up y/z cannot express" in odd.message


def test_upright_is_conservative_without_a_floor_or_names():
    """Hip-centred points (a pose lifter's output) carry no floor: by geometry the sign of the
    long axis is unknown, so no verdict rather than a guess; the names still tell."""
    xyz, names = _first_second(UPRIGHT_FILES[0])
    centred = xyz - np.nanmean(xyz, axis=1, keepdims=True)
    assert check_upright(centred).orientation == "unknown"
    assert check_upright(-centred).orientation == "unknown"
    assert check_upright(centred, names).orientation == "upright"
    assert check_upright(-centred, names).orientation == "upside_down"
    assert check_upright(np.full((10, len(names), 3), np.nan), names).orientation == "unknown"
    assert not check_upright(np.full((10, 20, 3), np.nan)).suspicious


def test_keypoint_layout_names_tell_head_from_feet():
    """Every keypoint layout the bridges read names points above the pelvis and foot points:
    the names method applies to each (here on the real gait markers' matching landmarks)."""
    from hdys_rt.bridges.keypoints import LAYOUTS
    from hdys_rt.data.markersets import _body_part
    from hdys_rt.representations import KEYPOINT_LAYOUTS

    for layout, names in {**KEYPOINT_LAYOUTS, **LAYOUTS}.items():
        parts = {_body_part(n) for n in names}
        assert {"upper", "foot"} <= parts, layout
    assert _body_part("left_ankle") == "foot" and _body_part("nose") == "upper"
    assert _body_part("R.Forearm") is None and _body_part("RKNE") is None  # not "ear", "knee"


def _load_real_c3d(rel: str):
    """A real C3D of ../shared/data/real through the file loader: (path, Recording); skipped
    without the shared data or ezc3d."""
    path = REAL / rel
    if not path.is_file():
        pytest.skip(f"{path} not found (shared data)")
    pytest.importorskip("ezc3d")
    from hdys_rt.data.loader import load_file

    return path, load_file(path)


def test_c3d_read_z_up_but_y_up_in_the_file(caplog):
    """Fukuchi RBDS001's C3D stores Y up although C3D is usually Z up: read with the format's
    default (Z up) the runner lies along -Z; the loader says to pass --up y, which fixes it."""
    with caplog.at_level(logging.WARNING):
        path, rec = _load_real_c3d("fukuchi_rbds001/RBDS001runT35.c3d")
    up = rec.upright
    assert (up.orientation, up.up, up.flag, up.method) == ("lying", "-z", "y", "names")
    assert "pass --up y" in caplog.text and up.message in rec.notes
    from hdys_rt.data.loader import load_file

    assert load_file(path, up="y").upright.orientation == "upright"


def test_no_false_alarm_on_a_wide_z_up_file(caplog):
    """nimble Return11 (Z up, arms out wide, floor markers 2 m apart) is upright: its widest
    axis is not its vertical, so the names decide (the old long-axis check warned here)."""
    with caplog.at_level(logging.WARNING):
        _, rec = _load_real_c3d("c3d/nimble_Return11_c3dfile1.c3d")
    assert rec.upright.orientation == "upright" and "--up" not in caplog.text


def test_upright_watch_checks_the_first_second_once(gait):
    flipped = gait.xyz * np.array([1, -1, 1], np.float32)
    w = UprightWatch(gait.names, "y", ("y", "ydown", "z"))
    results = [w.add(f, i / gait.rate) for i, f in enumerate(flipped)]
    done = [i for i, r in enumerate(results) if r is not None]
    assert done == [100]  # once, at 1 s of frames (100 Hz), then nothing is kept
    assert w.done and w.result.orientation == "upside_down" and w.finish() is None
    short = UprightWatch(gait.names)
    assert all(short.add(f, i / gait.rate) is None for i, f in enumerate(gait.xyz[:30]))
    assert short.finish().orientation == "upright"  # a stream shorter than 1 s


def test_upright_errors_name_the_value():
    with pytest.raises(HdysError, match="up must be one of .*got 'x'"):
        check_upright(np.zeros((2, 3, 3)), up="x")
    with pytest.raises(HdysError, match="2 names for 3 points"):
        check_upright(np.zeros((2, 3, 3)), names=["a", "b"])
    with pytest.raises(HdysError, match=r"must be \(frames, points, 3\), got shape \(3, 3\)"):
        check_upright(np.zeros((3, 3)))
