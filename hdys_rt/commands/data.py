"""``hdys-rt data build``: build the multi-domain training corpus."""

from __future__ import annotations

import json

from hdys_rt.data.corpus import list_domains, list_sequences, read_sequence
from hdys_rt.errors import HdysError

NAME = "data"
HELP = "build or inspect the multi-domain corpus"


def add_arguments(p):
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    b = sub.add_parser("build", help="build the corpus (real lab, simulated, sEMG, kinematics-only)",
                       description="build the multi-domain corpus (real lab recordings, "
                       "simulated OpenSim / MuJoCo motion with its dynamics, synthetic sEMG, "
                       "kinematics-only sets) from the raw data sets into --out")
    b.add_argument("--out", required=True, help="output folder")
    b.add_argument("--raw", default=None, metavar="DIR",
                   help="raw-data folder holding opensim-models/, myo_sim/, real/ (default: "
                        "$HDYS_SHARED_DATA, else ../shared/data); see the README for its sources")
    b.add_argument("--b3d", default=None, metavar="DIR",
                   help="AddBiomechanics .b3d files (any sub-folders) for the addbiomechanics "
                        "domain (default: addbiomechanics*/ of the raw-data folder); needs "
                        "pip install 'hdys-rt[b3d]'")
    b.add_argument("--quick", action="store_true", help="small corpus for tests (< 1 minute)")
    b.add_argument("--seed", type=int, default=0, help="seed: the build is deterministic given it")
    b.add_argument("--workers", type=int, default=None, help="worker processes (default: cores)")
    b.add_argument("--domains", nargs="+", default=None, help="only these domains")
    b.add_argument("--json", action="store_true", help="print the summary as JSON")
    i = sub.add_parser("info", help="summarise a corpus folder",
                       description="summarise a corpus folder: sequences, hours, subjects and "
                       "labels per domain")
    i.add_argument("corpus", help="a folder written by `hdys-rt data build`")
    i.add_argument("--json", action="store_true", help="print the summary as JSON")


def run(args) -> int:
    if args.action == "build":
        from hdys_rt.data.build import build_corpus

        if args.raw is not None:
            from hdys_rt.data.shared import use_raw_dir

            use_raw_dir(args.raw)
        if args.b3d is not None:
            from hdys_rt.data.domains.addbiomechanics import use_b3d_dir

            use_b3d_dir(args.b3d)
        if args.workers is not None and args.workers < 1:
            raise HdysError(f"--workers must be >= 1, got {args.workers}")
        summary = build_corpus(args.out, seed=args.seed, quick=args.quick, workers=args.workers,
                               domains=args.domains)
        _report(args.out, args.json)
        return 0 if summary else 1
    return _report(args.corpus, args.json)


def _report(corpus, as_json) -> int:
    rows = {}
    for d in list_domains(corpus):
        paths = list_sequences(corpus, d)
        frames, keys, subjects = 0, set(), set()
        for p in paths:
            s = read_sequence(p, mmap=True)
            frames += s.frames
            keys |= set(s.data)
            subjects.add(s.subject.id)
        rows[d] = {"sequences": len(paths), "frames": frames, "subjects": len(subjects),
                   "representations": sorted(keys)}
    if as_json:
        print(json.dumps(rows, indent=1))
    else:
        print(f"{'domain':18s} {'seqs':>5s} {'frames':>8s} {'subj':>5s}  representations")
        for d, r in rows.items():
            print(f"{d:18s} {r['sequences']:5d} {r['frames']:8d} {r['subjects']:5d}  "
                  f"{', '.join(r['representations'])}")
    return 0
