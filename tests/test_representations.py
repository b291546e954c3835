"""The physical facts in hdys_rt.representations: gravity, length units, channel predicates."""

import pytest

from hdys_rt import representations as reps


def test_gravity_is_standard_gravity():
    assert reps.G == 9.80665  # m/s², CGPM 1901: the body-weight unit of the corpus and serve


@pytest.mark.parametrize("spelling, unit", [
    ("m", "m"), ("", "m"), (None, "m"), ("Metres", "m"), (" mm ", "mm"), ("millimeters", "mm"),
    ("CM", "cm"), ("centimetre", "cm"), ("inch", None), ("km", None),
])
def test_length_unit_spellings(spelling, unit):
    assert reps.length_unit(spelling) == unit


def test_length_units_in_metres():
    assert reps.LENGTH_UNITS == {"m": 1.0, "cm": 0.01, "mm": 0.001}


def test_force_channels_are_the_grf_forces():
    forces = [c for c in reps.GRF_CHANNELS if reps.is_force(c)]
    assert forces == ["r_fx", "r_fy", "r_fz", "l_fx", "l_fy", "l_fz"]
    assert not reps.is_force("left_foot_rx")  # an SMPL pose channel, not a force


def test_torque_keys_and_point_sets():
    torques = [k for k in reps.REPRESENTATIONS if reps.is_torque(k)]
    assert torques == ["torques_rajagopal", "torques_smpl"]
    assert all(reps.get(k).unit == "N·m/kg" for k in torques)
    assert reps.is_torque("torques_rajagopal_Nm")  # derived absolute output
    assert reps.POINT_SETS == ("markers", "keypoints")
    assert reps.is_point_set("keypoints") and not reps.is_point_set("joint_angles")
