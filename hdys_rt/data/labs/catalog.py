"""What each folder of ``real/`` holds: one :class:`Trial` per processable recording.

A trial names, relative to the ``real/`` folder, its subject model (the lab's or
AddBiomechanics' scaled model, or a generic one to scale), its markers (TRC), its plate table
(``.mot``) and, where the folder has one, its IK result. ``person`` is a split group: trials of
one person (or of folders that may hold one person) share it and must stay on one side of any
train/test split. Folders without an OpenSim model (``c3d/``, ``fukuchi_rbds001/``) and the
``.b3d`` fixture are not catalogued here.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from pathlib import Path

TASKS = ("walk", "run", "jump", "sit_to_stand", "squat", "other")

#: Low-pass cut-off (Hz) shared by kinematics (ID's coordinate filter) and plate loads, per task:
#: 6 Hz for walking and slow tasks as in the opensim-models pipelines; running and landing carry
#: real content up to ~10-15 Hz (impact transients), so a higher but *equal* cut-off on both
#: sides avoids the impact artefacts of filtering only one of them (Kristianslund et al. 2012).
CUTOFF_HZ = {"walk": 6.0, "sit_to_stand": 6.0, "squat": 6.0, "other": 6.0,
             "run": 12.0, "jump": 12.0}
SPRINT_CUTOFF_HZ = 15.0  # sprinting (dorn_sprint_ja1): faster impacts, 250 Hz markers
#: Running recorded at 60 Hz (hamner_subject02, markers and plates both): 12 Hz is 0.4 of the
#: Nyquist frequency and the twice-differentiated marker noise dominates the residual (measured
#: RMS residual force 35.8 / 29.2 / 21.5 / 19.9 %BW at 15 / 12 / 8 / 6 Hz); 8 Hz keeps most of
#: the impact (still equal on kinematics and loads).
LOW_RATE_RUN_CUTOFF_HZ = 8.0


@dataclass(frozen=True)
class Trial:
    """One recording to process. Paths are relative to the ``real/`` folder."""

    folder: str
    trial: str
    task: str
    person: str
    lab: str
    model: str  # scaled model, or the generic model when ``scale`` is set
    trc: str
    grf: str
    ik: str | None = None  # given IK (.mot); None: run IK
    mass_kg: float | None = None  # None: the model's total body mass
    height_m: float | None = None  # None: estimated from the model's markers
    height_note: str = ""
    cutoff_hz: float = 6.0
    scale: bool = False  # scale ``model`` from the dynamic trials (mass_kg, height_m given)
    source: str = ""

    @property
    def name(self) -> str:
        return f"{self.folder}__{self.trial}"

    def as_job(self) -> dict:
        return asdict(self)


def opencap_task(name: str) -> str:
    """Task of an OpenCap lab-validation trial from its file name."""
    if name.startswith("walking"):
        return "walk"
    if name.startswith("DJ"):
        return "jump"
    if name.startswith("STS"):
        return "sit_to_stand"
    if name.startswith("squats"):
        return "squat"
    return "other"


def _rescaling(folder: Path) -> tuple[float | None, float | None]:
    """(mass, height) from an AddBiomechanics ``Models/rescaling_setup.xml``."""
    p = folder / "Models" / "rescaling_setup.xml"
    if not p.exists():
        return None, None
    text = p.read_text()
    m = re.search(r"<mass>\s*([0-9.]+)", text)
    h = re.search(r"<height>\s*([0-9.]+)", text)
    return (float(m.group(1)) if m else None), (float(h.group(1)) if h else None)


def _addbiomechanics(real: Path, folder: str, person: str, lab: str, task_of, model: str,
                     source: str, cutoff=None) -> list[Trial]:
    """Trials of an AddBiomechanics export (MarkerData/, IK/, ID/, Models/)."""
    root = real / folder
    if not root.is_dir():
        return []
    _, height = _rescaling(root)
    out = []
    for trc in sorted((root / "MarkerData").glob("*.trc")):
        name = trc.stem
        grf = root / "ID" / f"{name}_grf.mot"
        ik = root / "IK" / f"{name}_ik.mot"
        if name.startswith("static") or not grf.exists():
            continue
        task = task_of(name)
        out.append(Trial(
            folder=folder, trial=name, task=task, person=person, lab=lab, model=model,
            trc=f"{folder}/MarkerData/{trc.name}", grf=f"{folder}/ID/{grf.name}",
            ik=f"{folder}/IK/{ik.name}" if ik.exists() else None,
            height_m=height, height_note="Models/rescaling_setup.xml <height>" if height else "",
            cutoff_hz=cutoff or CUTOFF_HZ[task], source=source))
    return out


def trials(real: Path) -> list[Trial]:
    """Every catalogued trial under ``real`` (the shared ``real/`` folder), in a fixed order."""
    real = Path(real)
    out: list[Trial] = []
    opencap = ("OpenCap lab-validation motion capture (Uhlrich et al. 2023, CC BY 4.0), processed "
               "by AddBiomechanics; via keenon/nimblephysics data/grf/")
    # The two OpenCap folders may hold the same person: one split group.
    out += _addbiomechanics(real, "opencap_subject4", "opencap_s4", "opencap_stanford",
                            opencap_task, "opencap_subject4/Models/optimized_scale_and_markers.osim",
                            opencap + "Subject4")
    out += _addbiomechanics(real, "opencap_unfiltered", "opencap_s4", "opencap_stanford",
                            opencap_task,
                            "opencap_unfiltered/Models/optimized_scale_and_markers.osim",
                            opencap + "OpenCapUnfiltered")
    out += _addbiomechanics(real, "camargo_levelground", "camargo_ab", "camargo_gatech",
                            lambda n: "walk", "camargo_levelground/Models/final.osim",
                            "Camargo et al. 2021 lower-limb data set (CC BY 4.0), processed by "
                            "AddBiomechanics; via keenon/nimblephysics data/grf/CarmagoTest")
    h01 = real / "hamner_subject01"
    for speed in ("run200", "run300"):
        if (h01 / f"{speed}.trc").exists():
            out.append(Trial(
                folder="hamner_subject01", trial=speed, task="run", person="hamner_s01",
                lab="hamner_stanford", model="hamner_subject01/final.osim",
                trc=f"hamner_subject01/{speed}.trc", grf=f"hamner_subject01/{speed}_grf.mot",
                ik=f"hamner_subject01/{speed}_ik.mot", cutoff_hz=CUTOFF_HZ["run"],
                source="Hamner & Delp 2013 running, processed by AddBiomechanics; via "
                       "keenon/nimblephysics data/osim/HamnerMultipleTrials"))
    h02 = real / "hamner_subject02"
    if (h02 / "subject02_running.trc").exists():
        out.append(Trial(
            folder="hamner_subject02", trial="running", task="run", person="hamner_s02",
            lab="hamner_stanford", model="hamner_subject02/outputReference/subject02_registered.osim",
            trc="hamner_subject02/subject02_running.trc",
            grf="hamner_subject02/subject02_running_grf.mot",
            ik="hamner_subject02/outputReference/ResultsIK/subject02_running_ik.mot",
            mass_kg=65.9, height_m=1.83, height_note="Setup_Scale.xml <mass>, <height>",
            cutoff_hz=LOW_RATE_RUN_CUTOFF_HZ,
            source="Hamner et al. 2010 running (opensim-models Pipelines/Hamner, Apache-2.0): "
                   "the pipeline's scaled + registered model and IK"))
    h04 = real / "hamner_subject04" / "subject04"
    if (h04 / "_subject.json").exists():
        sub = json.loads((h04 / "_subject.json").read_text())
        for d in sorted((h04 / "trials").glob("run*")):
            out.append(Trial(
                folder="hamner_subject04", trial=d.name, task="run", person="hamner_s04",
                lab="hamner_stanford", model="hamner_subject04/subject04/unscaled_generic.osim",
                trc=f"hamner_subject04/subject04/trials/{d.name}/markers.trc",
                grf=f"hamner_subject04/subject04/trials/{d.name}/grf.mot",
                mass_kg=float(sub["massKg"]), height_m=float(sub["heightM"]),
                height_note="_subject.json heightM", cutoff_hz=CUTOFF_HZ["run"], scale=True,
                source="Hamner & Delp 2013 running (via keenon/nimblephysics "
                       "data/osim/HamnerSubject04); scaled here from the dynamic trials"))
    dorn = real / "dorn_sprint_ja1"
    if (dorn / "JA1Gait35.trc").exists():
        out.append(Trial(
            folder="dorn_sprint_ja1", trial="JA1Gait35", task="run", person="dorn_ja1",
            lab="dorn_melbourne", model="dorn_sprint_ja1/rescaled.osim",
            trc="dorn_sprint_ja1/JA1Gait35.trc", grf="dorn_sprint_ja1/JA1Gait35_grf.mot",
            ik="dorn_sprint_ja1/JA1Gait35_ik.mot", cutoff_hz=SPRINT_CUTOFF_HZ,
            source="Dorn et al. 2012 sprinting, processed by AddBiomechanics; via "
                   "keenon/nimblephysics data/osim/JA1GaitResults"))
    return out


#: C3D files without a model (``real/c3d/``): GRF-only sequences (see :mod:`.c3d_grf`).
#: file stem -> (task, person, lab); one person per file (the BTKData samples come from
#: different users and labs). Files not listed are left out: btk_Eb015pr, nimble_welk007 (no
#: heel/toe markers the mapping knows), btk_Gait, nimble_UpsideDownData, opensimcore_* (no body
#: mass in the file and no quiet stance to weigh the person).
C3D_GRF = {
    "btk_FunctionalWalk": ("walk", "btk_functionalwalk", "btkdata_functionalwalk"),
    "btk_PiG_Motion-FlatFoot-Full": ("walk", "btk_pig_flatfoot", "btkdata_pig_flatfoot"),
    "btk_PiG_Motion3_FF": ("walk", "btk_pig_motion3", "btkdata_pig_motion3"),
    "nimble_Return11_c3dfile1": ("other", "nimble_return11", "nimble_return11"),
}
C3D_SOURCE = ("Biomechanical-ToolKit/BTKData and keenon/nimblephysics data/c3d sample files "
              "(see ../shared/data/README.md); GRF-only: markers + force plates, no model")


def c3d_trials(real: Path) -> list[dict]:
    """GRF-only jobs for the C3D files of :data:`C3D_GRF` present under ``real/c3d``."""
    out = []
    for stem, (task, person, lab) in C3D_GRF.items():
        if (Path(real) / "c3d" / f"{stem}.c3d").exists():
            out.append({"file": f"c3d/{stem}.c3d", "name": f"c3d__{stem}", "task": task,
                        "person": person, "lab": lab, "cutoff_hz": CUTOFF_HZ[task],
                        "source": C3D_SOURCE})
    return out
