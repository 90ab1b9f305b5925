"""``tnn`` — the command line. Each subcommand is a module of :mod:`tnn.cli` listed in :data:`COMMANDS`.

A command module exposes ``add_parser(subparsers) -> argparse.ArgumentParser`` and
``run(args) -> int``; adding a command (``tnn experiment``, ``tnn export``, ...) means adding its
module name to :data:`COMMANDS`. User errors (``CLIError``, ``ValueError``, ``TypeError``,
``FileNotFoundError``) print one line ``tnn: error: ...`` on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from tnn import __version__
from tnn.cli.errors import USER_ERRORS

#: Subcommand modules (``tnn.cli.<name>``), in the order ``tnn --help`` lists them.
COMMANDS: list[str] = ["train", "compress", "evaluate", "info", "demo"]

#: Optional subcommands owned by other parts of the project, added when their module exists.
OPTIONAL_COMMANDS: list[str] = ["experiment", "export"]

DESCRIPTION = """\
Tensorial Neural Networks (Su et al., arXiv 1805.10352): compress pretrained CNNs into TNNs
(formats svd cp tk tt tr rcp rtk rtt rtr), recover accuracy by sequential (data-reconstruction)
training and end-to-end fine-tuning, and evaluate them."""

EPILOG = """\
examples:
  tnn demo --out runs/demo
  tnn info --model resnet32 --format rtt --rate 0.1
  tnn evaluate --model resnet32 --weights resnet32.th --dataset cifar10 --data-dir data --json
  tnn compress --model resnet32 --weights resnet32.th --format rtt --rate 0.1 --out runs/rtt
  tnn train --model resnet32 --weights resnet32.th --format rtt --rate 0.1 \\
            --dataset cifar10 --data-dir data --steps 500 --out runs/rtt-seq
Run 'tnn <command> --help' for the flags and examples of each command."""


def _command_modules() -> list[object]:
    modules = [importlib.import_module(f"tnn.cli.{name}") for name in COMMANDS]
    for name in OPTIONAL_COMMANDS:
        try:
            modules.append(importlib.import_module(f"tnn.cli.{name}"))
        except ModuleNotFoundError as exc:
            if exc.name != f"tnn.cli.{name}":
                raise
    return modules


def build_parser() -> argparse.ArgumentParser:
    """The top-level parser with one subparser per command module."""
    parser = argparse.ArgumentParser(
        prog="tnn", description=DESCRIPTION, epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"tnn {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for module in _command_modules():
        p = module.add_parser(sub)  # type: ignore[attr-defined]
        p.set_defaults(_run=module.run)  # type: ignore[attr-defined]
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``tnn`` command with ``argv`` (default ``sys.argv[1:]``); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        return int(exc.code) if isinstance(exc.code, int) else 2
    if getattr(args, "_run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(args._run(args) or 0)
    except USER_ERRORS as exc:
        message = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, FileNotFoundError) and exc.filename and str(exc.filename) not in message:
            message = f"{message}: {exc.filename}"
        print(f"tnn: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("tnn: interrupted", file=sys.stderr)
        return 130
