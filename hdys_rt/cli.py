"""The ``hdys-rt`` command line. User errors print one line and exit 1, never a traceback."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from hdys_rt import __version__
from hdys_rt.commands import COMMANDS, EXAMPLES
from hdys_rt.errors import HdysError

log = logging.getLogger("hdys_rt")


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """The one way defaults are shown: ``(default: X)`` appended to an option's help unless the
    default is None / False (nothing to show) or the help already says its default in words
    (a computed one: "default: the file's stem"). Examples keep their line breaks."""

    def _get_help_string(self, action):
        help = action.help or ""
        if "default" in help or action.default in (None, False, argparse.SUPPRESS) or \
                action.default == []:
            return help
        return super()._get_help_string(action)

    def _fill_text(self, text, width, indent):
        if text.startswith("examples:"):
            return "".join(indent + line for line in text.splitlines(keepends=True))
        return super()._fill_text(text, width, indent)


class _Parser(argparse.ArgumentParser):
    """Every (sub-)command's parser: the one help formatter, the example epilog from
    :data:`~hdys_rt.commands.EXAMPLES`."""

    def __init__(self, *args, **kwargs):
        kwargs["formatter_class"] = _HelpFormatter
        super().__init__(*args, **kwargs)
        if self.epilog is None:
            ex = EXAMPLES.get(self.prog.removeprefix("hdys-rt").strip())
            self.epilog = "examples:\n" + "\n".join(f"  {e}" for e in ex) if ex else None

    def error(self, message):  # argparse's default exits 2 with usage; keep it short and clear
        self.print_usage(sys.stderr)
        self.exit(2, f"hdys-rt: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="hdys-rt", description=__doc__)
    parser.add_argument("--version", action="version", version=f"hdys-rt {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more logging (-v info, -vv debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True
    for modname in COMMANDS:
        mod = importlib.import_module(modname)
        p = sub.add_parser(mod.NAME, help=mod.HELP.replace("%", "%%"), description=mod.HELP)
        mod.add_arguments(p)
        p.set_defaults(_run=mod.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    args._argv = argv  # the command line as given (recorded in model metadata)
    level = (logging.WARNING, logging.INFO, logging.DEBUG)[min(args.verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(args._run(args) or 0)
    except HdysError as exc:
        print(f"hdys-rt {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"hdys-rt {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
