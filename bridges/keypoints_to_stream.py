"""Thin entry point: `python bridges/keypoints_to_stream.py ARGS` = `hdys-rt bridge keypoints ARGS`
(implementation: hdys_rt/bridges/)."""

import sys

from hdys_rt.cli import main

if __name__ == "__main__":
    sys.exit(main(["bridge", "keypoints", *sys.argv[1:]]))
