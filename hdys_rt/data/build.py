"""``hdys-rt data build``: run every domain's jobs (in worker processes) into a corpus folder.

Domains only yield :class:`~hdys_rt.data.corpus.Sequence` objects (see
:mod:`hdys_rt.data.domains` for the contract); :func:`write_job` is the one place that writes
them.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from hdys_rt.data.corpus import write_domain_info, write_sequence
from hdys_rt.data.domains import DOMAINS
from hdys_rt.errors import HdysError

log = logging.getLogger(__name__)


def domain_modules(names: list[str] | None = None):
    """Import the domain modules (all, or those named); a module's last name is its DOMAIN."""
    known = {m.rsplit(".", 1)[1]: m for m in DOMAINS}
    names = list(names or known)
    bad = [n for n in names if n not in known]
    if bad:
        raise HdysError(f"unknown domain(s) {bad}; choose from {sorted(known)}")
    mods = []
    for n in names:
        try:
            mods.append(importlib.import_module(known[n]))
        except ImportError as exc:
            raise HdysError(f"domain {n} needs a package that is not installed ({exc.name}); "
                            "install the data extra: pip install 'hdys-rt[data]'") from None
        lacks = [a for a in ("DOMAIN", "KIND", "DESCRIPTION", "plan", "sequences")
                 if not hasattr(mods[-1], a)]
        if lacks:
            raise HdysError(f"domain module {known[n]} lacks {lacks}; see hdys_rt.data.domains")
    return mods


def write_job(mod, job: dict, out_dir: str | os.PathLike) -> list[str]:
    """Build one job of the domain module ``mod``: write every sequence ``mod.sequences(job)``
    yields into ``out_dir`` (the domain folder); returns the sequence names in order."""
    names = []
    t0 = time.perf_counter()
    for seq in mod.sequences(job):
        write_sequence(out_dir, seq)
        names.append(seq.name)
        log.info("%s %s: %d frames in %.1f s", mod.DOMAIN, seq.name, seq.frames,
                 time.perf_counter() - t0)
        t0 = time.perf_counter()
    return names


def _run_job(modname: str, job: dict, out_dir: str) -> tuple[str, list[str], float]:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    t0 = time.perf_counter()
    mod = importlib.import_module(modname)
    names = write_job(mod, job, Path(out_dir))
    return mod.DOMAIN, list(names), time.perf_counter() - t0


def build_corpus(out: str | Path, seed: int = 0, quick: bool = False, workers: int | None = None,
                 domains: list[str] | None = None, progress: bool = True) -> dict:
    """Build the corpus; returns a summary {domain: {"sequences": n, "seconds": s}}."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise HdysError(f"--out {out} exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    mods = domain_modules(domains)
    for mod in mods:  # missing raw data fails here, in one line, before any work starts
        check = getattr(mod, "check_inputs", None)
        if check is not None:
            check()
    jobs = []
    for mod in mods:
        write_domain_info(out / mod.DOMAIN, mod.DOMAIN, mod.KIND, mod.DESCRIPTION)
        for job in mod.plan(seed, quick):
            jobs.append((mod.__name__, mod.DOMAIN, job))
    workers = workers or max(1, min(os.cpu_count() or 1, len(jobs)))
    summary = {m.DOMAIN: {"sequences": 0, "seconds": 0.0} for m in mods}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), desc="data build", unit="job", dynamic_ncols=True,
                   file=sys.stderr)
    t0 = time.perf_counter()
    if workers == 1:
        results = (_run_job(mn, job, str(out / dom)) for mn, dom, job in jobs)
        for dom, names, secs in results:
            summary[dom]["sequences"] += len(names)
            summary[dom]["seconds"] += secs
            if bar:
                bar.update(1)
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futs = [pool.submit(_run_job, mn, job, str(out / dom)) for mn, dom, job in jobs]
            for fut in as_completed(futs):
                dom, names, secs = fut.result()
                summary[dom]["sequences"] += len(names)
                summary[dom]["seconds"] += secs
                if bar:
                    bar.update(1)
    if bar:
        bar.close()
    info = {"format": "hdys-corpus", "version": 1, "seed": seed, "quick": quick,
            "domains": [m.DOMAIN for m in mods], "summary": summary,
            "wall_seconds": round(time.perf_counter() - t0, 1)}
    (out / "corpus.json").write_text(json.dumps(_merged(out / "corpus.json", info), indent=1))
    return summary


def _merged(path: Path, info: dict) -> dict:
    """``info`` of a build, merged with the folder's earlier ``corpus.json`` when that one was
    built with the same seed and size: rebuilding some domains keeps the others described."""
    try:
        prev = json.loads(path.read_text())
    except (OSError, ValueError):
        return info
    if (prev.get("format"), prev.get("seed"), prev.get("quick")) != (
            "hdys-corpus", info["seed"], info["quick"]):
        return info
    domains = list(dict.fromkeys(list(prev.get("domains", [])) + info["domains"]))
    summary = {**prev.get("summary", {}), **info["summary"]}
    wall = round(float(prev.get("wall_seconds", 0.0)) + info["wall_seconds"], 1)
    return {**info, "domains": domains, "summary": summary, "wall_seconds": wall}
