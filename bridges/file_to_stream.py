"""Thin entry point: `python bridges/file_to_stream.py ARGS` = `hdys-rt bridge file ARGS`
(implementation: hdys_rt/bridges/)."""

import sys

from hdys_rt.cli import main

if __name__ == "__main__":
    sys.exit(main(["bridge", "file", *sys.argv[1:]]))
