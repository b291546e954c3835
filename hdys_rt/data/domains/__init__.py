"""Corpus domains. Each module builds one domain folder of the corpus.

Contract of a domain module (used by :mod:`hdys_rt.data.build`):

* ``DOMAIN``: folder name; ``KIND``: "real" | "sim" | "semg" | "kinematics"; ``DESCRIPTION``.
* ``plan(seed: int, quick: bool) -> list[dict]``: deterministic list of picklable jobs (each
  carries its own seed); the quick plan builds in a few seconds, the full one gives tens of
  thousands of frames.
* ``sequences(job: dict) -> Iterator[hdys_rt.data.corpus.Sequence]``: builds the job's sequences
  and yields them one at a time; it writes nothing (:func:`hdys_rt.data.build.write_job` writes
  each into the domain folder). Runs in a worker process: no shared state, deterministic.
"""

DOMAINS: tuple[str, ...] = (
    "hdys_rt.data.domains.lab_real",
    "hdys_rt.data.domains.real_labs",
    "hdys_rt.data.domains.addbiomechanics",
    "hdys_rt.data.domains.myolegs",
    "hdys_rt.data.domains.semg_synth",
    "hdys_rt.data.domains.humanoid",
    "hdys_rt.data.domains.kinematics_only",
)
