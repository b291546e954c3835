"""CLI sub-commands: one module each, exposing ``NAME``, ``HELP``, ``add_arguments(parser)`` and
``run(args) -> int``. The CLI (:mod:`hdys_rt.cli`) registers the modules listed here."""

COMMANDS: tuple[str, ...] = (
    "hdys_rt.commands.data",
    "hdys_rt.commands.train",
    "hdys_rt.commands.eval",
    "hdys_rt.commands.estimate",
    "hdys_rt.commands.serve",
    "hdys_rt.commands.replay",
    "hdys_rt.commands.listen",
    "hdys_rt.commands.demo",
    "hdys_rt.commands.export",
    "hdys_rt.commands.keys",
    "hdys_rt.commands.bridge",
    "hdys_rt.commands.view",
)
