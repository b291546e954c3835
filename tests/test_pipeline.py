"""End to end on the project's own commands: data build --quick -> train -> eval."""

import json
import os
from pathlib import Path

import pytest

from hdys_rt.cli import main

SHARED = Path(os.environ.get("HDYS_SHARED_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
pytestmark = pytest.mark.skipif(not (SHARED / "opensim-models").is_dir(),
                                reason=f"shared data not found at {SHARED} (set HDYS_SHARED_DATA)")


@pytest.fixture(scope="module")
def quick_corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    assert main(["data", "build", "--quick", "--out", str(out), "--seed", "0"]) == 0
    return out


def test_quick_corpus_has_every_domain_and_representation(quick_corpus, capsys):
    capsys.readouterr()
    assert main(["data", "info", str(quick_corpus), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert set(info) == {"lab_real", "real_labs", "addbiomechanics", "myolegs", "semg_synth",
                         "humanoid", "kinematics_only"}
    have = {k for d in info.values() for k in d["representations"]}
    assert have >= {"markers", "keypoints", "joint_angles", "smpl_pose", "torques_rajagopal",
                    "torques_smpl", "activations", "semg", "grf"}
    assert "torques_rajagopal" not in info["kinematics_only"]["representations"]
    meta = json.loads((quick_corpus / "corpus.json").read_text())
    assert meta["quick"] is True and meta["seed"] == 0


def test_rebuilding_one_domain_keeps_the_others_described(quick_corpus, tmp_path):
    import shutil

    corpus = tmp_path / "corpus"
    shutil.copytree(quick_corpus, corpus)
    before = json.loads((corpus / "corpus.json").read_text())
    assert main(["data", "build", "--quick", "--out", str(corpus), "--seed", "0",
                 "--domains", "humanoid", "--workers", "1"]) == 0
    after = json.loads((corpus / "corpus.json").read_text())
    assert after["domains"] == before["domains"] and len(after["domains"]) == 7
    assert after["summary"]["lab_real"] == before["summary"]["lab_real"]
    assert after["summary"]["humanoid"]["sequences"] == before["summary"]["humanoid"]["sequences"]
    # another seed is another corpus: the folder then describes the last build only
    assert main(["data", "build", "--quick", "--out", str(corpus), "--seed", "1",
                 "--domains", "humanoid", "--workers", "1"]) == 0
    assert json.loads((corpus / "corpus.json").read_text())["domains"] == ["humanoid"]


@pytest.mark.slow
def test_train_small_and_eval_end_to_end(quick_corpus, tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--preset", "tiny", "--epochs", "1", "--data", str(quick_corpus),
                 "--out", str(run), "--no-progress"]) == 0
    meta = json.loads((run / "model.json").read_text())
    assert meta["training"]["command"].startswith("hdys-rt train --preset tiny")
    assert meta["corpus"]["seed"] == 0
    # train calibrates the novelty score on the frames it trained on
    assert {"markers", "keypoints"} <= set(meta["novelty_threshold"])
    assert all(0.0 < t < 1e6 for t in meta["novelty_threshold"].values())
    assert main(["eval", "--model", str(run / "model.safetensors"), "--data", str(quick_corpus),
                 "--json", str(tmp_path / "eval.json")]) == 0
    rep = json.loads((tmp_path / "eval.json").read_text())
    # the held-out real subject is evaluated with markers in, torques out, per joint
    lab = rep["domains"]["person_split"]["lab_real"]["markers"]["torques_rajagopal"]
    assert lab["metric"] == "mPJE" and lab["unit"] == "N·m/kg"
    assert {"knee_angle_r", "ankle_angle_r", "hip_flexion_r"} <= set(lab["per_channel"])
    assert 0.0 < lab["value"] < 5.0
