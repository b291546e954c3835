"""Corpus domains. Each module builds one domain folder of the corpus.

Contract of a domain module (used by :mod:`hdys_rt.data.build`):

* ``DOMAIN``: folder name; ``KIND``: "real" | "sim" | "semg" | "kinematics"; ``DESCRIPTION``.
* ``plan(seed: int, quick: bool) -> list[dict]``: deterministic list of picklable jobs (each
  carries its own seed); the quick plan builds in a few seconds, the full one gives tens of
  thousands of frames.
* ``run(job: dict, out_dir: pathlib.Path) -> list[str]``: builds the job's sequences and writes
  them with :func:`hdys_rt.data.corpus.write_sequence` into ``out_dir`` (the domain folder);
  returns the sequence names. Runs in a worker process: no shared state, deterministic.
"""

DOMAINS: tuple[str, ...] = (
    "hdys_rt.data.domains.lab_real",
    "hdys_rt.data.domains.real_labs",
    "hdys_rt.data.domains.myolegs",
    "hdys_rt.data.domains.semg_synth",
    "hdys_rt.data.domains.humanoid",
    "hdys_rt.data.domains.kinematics_only",
)
