"""Thin entry point: `python bridges/web_view.py ARGS` = `hdys-rt view ARGS`
(implementation: hdys_rt/bridges/)."""

import sys

from hdys_rt.cli import main

if __name__ == "__main__":
    sys.exit(main(["view", *sys.argv[1:]]))
