"""AddBiomechanics domain: every ``.b3d`` file (the AddBiomechanics data set's format).

Where the files come from, first that exists:

1. ``--b3d DIR`` of ``hdys-rt data build`` (``$HDYS_B3D_DIR``): every ``*.b3d`` below ``DIR``, e.g.
   the whole AddBiomechanics data set (Werling et al. 2023; 273 people in the HDyS paper), so
   ``hdys-rt data build --out CORPUS --b3d DIR`` builds the paper-scale corpus in one command;
2. else the raw-data folder (``--raw`` / ``$HDYS_SHARED_DATA`` / ``../shared/data``):
   every ``*.b3d`` below ``addbiomechanics*/`` or ``real/addbiomechanics*/`` (the pack's fixture
   ``real/addbiomechanics_b3d/results.b3d``: one person, 2 walking segments).

One job per file (one subject); each trial becomes a sequence (:mod:`hdys_rt.data.labs.b3d`:
markers, joint angles, torques from a DYNAMICS pass only, GRF per foot, quality in meta).
``person`` is ``<data set folder>__<file stem>`` with AddBiomechanics' ``_splitN`` suffix
removed (the split files of one subject stay one split group); ``lab`` is the data set folder
(the first folder named ``*Formatted*`` on the path, else the first folder, else the root's
name).

Reading needs nimblephysics (the optional extra ``hdys-rt[b3d]``). Without it the domain plans
no job and logs one line naming the extra; with ``--b3d`` given it is an error. The quick plan
holds the first file when nimblephysics is present and that file is small (< 5 MB: ~1 s).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

from hdys_rt.data.corpus import Sequence
from hdys_rt.data.labs import b3d
from hdys_rt.data.shared import default_shared_dir, ENV_VAR
from hdys_rt.errors import HdysError

log = logging.getLogger(__name__)

DOMAIN = "addbiomechanics"
KIND = "real"
DESCRIPTION = (
    "AddBiomechanics .b3d files (--b3d DIR, else addbiomechanics*/ of the raw-data folder) read "
    "with nimblephysics: markers, joint angles, torques from DYNAMICS passes, GRF per foot; "
    "meta: task, person, lab, quality (marker RMS, residuals)."
)
ENV_B3D = "HDYS_B3D_DIR"
QUICK_MAX_BYTES = 5_000_000
SOURCE = ("AddBiomechanics (Werling et al. 2023) .b3d file {rel}; read with nimblephysics "
          "SubjectOnDisk")


def use_b3d_dir(path: str | os.PathLike) -> Path:
    """Make ``path`` the ``.b3d`` folder of this process and its workers (``--b3d DIR``)."""
    root = Path(path).expanduser().resolve()
    if not root.is_dir():
        raise HdysError(f"--b3d {path}: no such folder (it should hold AddBiomechanics .b3d "
                        "files, in any sub-folders)")
    os.environ[ENV_B3D] = str(root)
    return root


def roots() -> list[Path]:
    """The folders searched for ``.b3d`` files (see the module doc)."""
    if os.environ.get(ENV_B3D):
        return [Path(os.environ[ENV_B3D])]
    raw = Path(os.environ.get(ENV_VAR) or default_shared_dir())
    return sorted(p for pat in ("addbiomechanics*", "real/addbiomechanics*")
                  for p in raw.glob(pat) if p.is_dir())


def files() -> list[tuple[Path, Path]]:
    """``(root, file)`` for every ``.b3d`` below :func:`roots`, sorted."""
    return [(r, f) for r in roots() for f in sorted(r.rglob("*.b3d"))]


def split_group(root: Path, path: Path) -> tuple[str, str]:
    """``(person, lab)`` of a ``.b3d`` file (see the module doc)."""
    parts = path.relative_to(root).parts[:-1]
    lab = next((p for p in parts if "formatted" in p.lower()), parts[0] if parts else root.name)
    stem = re.sub(r"_split\d+$", "", path.stem)
    return f"{lab}__{stem}", lab


def check_inputs() -> None:
    """With ``--b3d`` given: fail in one line when it holds no ``.b3d`` or nimblephysics is
    missing. Otherwise the domain is optional (:func:`plan` says why it is empty)."""
    if not os.environ.get(ENV_B3D):
        return
    if not files():
        raise HdysError(f"--b3d {os.environ[ENV_B3D]}: no .b3d file below it")
    b3d.import_nimble()


def plan(seed: int, quick: bool) -> list[dict]:
    """One job per ``.b3d`` file (quick: the first, if small); ``seed`` is unused."""
    del seed
    found = files()
    if not found:
        return []
    if not b3d.nimble_available():
        log.warning("addbiomechanics: %d .b3d file(s) skipped: nimblephysics is not installed "
                    "(%s)", len(found), b3d.EXTRA)
        return []
    if quick:
        found = [rf for rf in found[:1] if rf[1].stat().st_size < QUICK_MAX_BYTES]
    jobs = []
    for root, path in found:
        person, lab = split_group(root, path)
        jobs.append({"domain": DOMAIN, "file": str(path), "person": person, "lab": lab,
                     "rel": str(path.relative_to(root.parent))})
    return jobs


def sequences(job: dict) -> Iterator[Sequence]:
    """Every trial of the job's file (see :func:`hdys_rt.data.labs.b3d.sequences`)."""
    yield from b3d.sequences(Path(job["file"]), job["person"], job["lab"],
                             SOURCE.format(rel=job["rel"]), DOMAIN)
