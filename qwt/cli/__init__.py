"""The ``qwt`` command line (console script ``qwt = "qwt.cli:main"``; also ``python -m qwt.cli``).

Subcommands: ``finetune``, ``eval``, ``generate``, ``compare`` (see ``qwt --help``).

Example:
    >>> from qwt.cli import build_parser
    >>> build_parser().parse_args(["compare", "--quick"]).quick
    True
"""

from qwt.cli.main import build_parser, main

__all__ = ["main", "build_parser"]
