"""Real labs domain: every recording of ``real/`` with a model, processed as AddBiomechanics does.

One job per trial (see :func:`hdys_rt.data.labs.catalog.trials`): ~35 trials of 7 people from
5 labs (walking variants, running 2-5 m/s, a sprint, drop jumps, sit-to-stand, squats). Each trial
goes through :func:`hdys_rt.data.labs.chain.process` (scaled model or uniform scaling, given or
computed IK, OpenSim ID with the plates assigned to feet by proximity, equal low-pass on
kinematics and loads) and its quality gates; a dropped trial is logged with its reason and yields
no sequence.

Each sequence carries markers (m, Y up), joint_angles (rad | m, NaN where the model lacks or
locks a coordinate), torques_rajagopal (N·m/kg, the 17 channels, NaN likewise), grf (per foot,
N/BW and CoP m) and keypoints (joint centres); ``meta`` holds ``task``, ``person`` (the split
group), ``lab`` and ``quality`` (marker RMSE m, residual force %BW, residual moment %BW·height).

Results are cached under ``<cache>/real_labs/<key>/`` (key: the input files' contents and
:data:`PIPELINE_VERSION`), so a rebuild with unchanged inputs reads them back.
C3D files without a model (``c3d/``, see :data:`hdys_rt.data.labs.catalog.C3D_GRF`) give
GRF-only sequences (markers + per-foot GRF, torques NaN, sEMG envelopes where the analog
channels name muscles: :mod:`hdys_rt.data.labs.c3d_grf`, :mod:`hdys_rt.data.labs.emg`).
Not covered yet: ``fukuchi_rbds001/`` (its C3D plate reads 159 N peaks in running: the treadmill
calibration is not in the file); ``.b3d`` files are the ``addbiomechanics`` domain's.

Measured (2026-12, 2 workers on the 2-core VM, ``--domains real_labs``): 38 trials + 4 C3D
files, 22 sequences (18 through ID, 4 GRF-only) of 8 people, 20 trials dropped by the gates,
85 s from scratch (hamner_subject04's scaling and IK: ~11 s a trial).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from hdys_rt.data.corpus import Sequence, read_sequence, write_sequence
from hdys_rt.data.domains.lab_real import cache_root
from hdys_rt.data.labs import chain
from hdys_rt.data.labs import c3d_grf
from hdys_rt.data.labs.catalog import Trial, c3d_trials, trials
from hdys_rt.data.shared import shared_data_dir
from hdys_rt.errors import HdysError

log = logging.getLogger(__name__)

DOMAIN = "real_labs"
KIND = "real"
DESCRIPTION = (
    "Real recordings of ../shared/data/real (OpenCap lab validation, Camargo level ground, "
    "Hamner running, Dorn sprint): markers + force plates through OpenSim ID as AddBiomechanics "
    "processes them (plates assigned to feet by proximity, equal low-pass on kinematics and "
    "loads), quality-gated on marker RMSE and pelvis residuals; meta: task, person, lab."
)
PIPELINE_VERSION = 1  # bump to invalidate cached results

#: The quick plan: one trial per task (and per model family) that passes the gates, small
#: enough for tests; the drop jump comes from the second OpenCap folder (same person id).
QUICK = ("opencap_subject4__walking1", "opencap_unfiltered__DJ1", "opencap_subject4__STS1",
         "opencap_subject4__squats1", "hamner_subject01__run200", "c3d__btk_PiG_Motion3_FF")


def real_root(explicit: str | os.PathLike | None = None) -> Path:
    """The ``real/`` folder: ``explicit`` (a data root holding ``real/``), else
    ``$HDYS_SHARED_DATA``, else ``../shared/data`` (see :mod:`hdys_rt.data.shared`)."""
    return shared_data_dir("real", explicit) / "real"


def plan(seed: int, quick: bool) -> list[dict]:
    """One job per trial (quick: :data:`QUICK`); ``seed`` is unused (no augmentation)."""
    del seed
    found = trials(real_root())
    grf_only = c3d_trials(real_root())
    if quick:
        found = [t for t in found if t.name in QUICK]
        grf_only = [c for c in grf_only if c["name"] in QUICK]
    return ([{"domain": DOMAIN, "trial": t.as_job(), "data_root": None, "cache_dir": None}
             for t in found]
            + [{"domain": DOMAIN, "c3d": c, "data_root": None} for c in grf_only])


def check_inputs() -> None:
    """Fail in one line, naming the folder and its public source, when ``real/`` is absent."""
    real_root()


def _cache_key(trial: Trial, real: Path) -> str:
    h = hashlib.sha1(f"v{PIPELINE_VERSION}|{json.dumps(trial.as_job(), sort_keys=True)}".encode())
    for rel in (trial.model, trial.trc, trial.grf, trial.ik):
        if rel:
            h.update((real / rel).read_bytes())
    src = Path(chain.__file__).read_bytes() + Path(chain.pl.__file__).read_bytes()
    h.update(src)  # the chain's code is part of the result
    return h.hexdigest()[:16]


def sequences(job: dict) -> Iterator[Sequence]:
    """The job's sequence (none when a quality gate drops the trial), cached."""
    if "c3d" in job:  # GRF-only, fast: not cached
        c = job["c3d"]
        try:
            yield c3d_grf.process(real_root(job.get("data_root")) / c["file"], c["name"],
                                  c["person"], c["lab"], c["task"], c["cutoff_hz"],
                                  c["source"], DOMAIN)
        except c3d_grf.Skipped as exc:
            log.warning("real_labs %s skipped: %s", c["name"], exc)
        return
    try:
        trial = Trial(**job["trial"])
    except (KeyError, TypeError) as exc:
        raise HdysError(f"real_labs job: bad trial description ({exc})") from None
    real = real_root(job.get("data_root"))
    cache = Path(cache_root(job.get("cache_dir"))) / DOMAIN / _cache_key(trial, real)
    dropped = cache / "dropped.json"
    if dropped.exists():
        info = json.loads(dropped.read_text())
        log.warning("real_labs %s dropped (cached): %s", trial.name, info["reason"])
        return
    if (cache / f"{trial.name}.json").exists():
        yield read_sequence(cache / f"{trial.name}.json")
        return
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="hdys_real_labs_") as tmp:
        try:
            seq, report = chain.process(trial, real, Path(tmp), DOMAIN)
        except chain.Dropped as exc:
            report = dict(exc.report, reason=exc.reason)
            log.warning("real_labs %s dropped: %s", trial.name, exc.reason)
            _store(cache, lambda d: (d / "dropped.json").write_text(json.dumps(report, indent=1)))
            return
    seq.meta["build_seconds"] = round(time.perf_counter() - t0, 2)
    log.info("real_labs %s: %d frames, marker RMSE %.1f cm, residual %.1f %%BW / %.2f %%BW·h "
             "(%.1f s)", trial.name, seq.frames, report["marker_rmse_m"] * 100,
             report["residual_force_pct_bw"], report["residual_moment_pct_bwh"],
             seq.meta["build_seconds"])
    _store(cache, lambda d: write_sequence(d, seq))
    yield seq


def _store(cache: Path, write) -> None:
    """Write into a temporary sibling folder, then rename (concurrent builds never see halves)."""
    cache.parent.mkdir(parents=True, exist_ok=True)
    part = Path(tempfile.mkdtemp(prefix=cache.name + ".", dir=cache.parent))
    try:
        write(part)
        os.replace(part, cache)
    except OSError:  # another process stored it first
        shutil.rmtree(part, ignore_errors=True)
