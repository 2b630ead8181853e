"""One module per `solireward` subcommand, named like it ('-' -> '_') and like its Snakemake rule.

Each module's docstring opens with the one-line summary shown by ``solireward --help``, and the
module exposes ``configure_parser(parser)`` (the flags) and ``run(args) -> int`` (the exit status).
The library modules they call know nothing of argparse; :mod:`solireward.commands._options` turns
option dataclasses into flags and layers defaults < YAML file (``--config``) < flags.
"""
