"""Marker-set mapping, reports, unit and vertical-axis detection."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from hdys_rt.bridges.markersets import (CORE_MARKERS, TRAINED_MARKERS, detect_units,
                                        detect_vertical, map_markers)
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
