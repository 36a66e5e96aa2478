"""The ``spikegate`` command.

Each subcommand lives in its own module of :mod:`spikegate.scripts`, which exposes
``add_parser(subparsers)``: it adds its parser and sets ``func`` (called with the parsed
arguments; its return value is the exit code). ``spikegate train ALGORITHM`` is built the
same way from the ``train_*`` modules.
"""

import argparse
import importlib
import sys

__all__ = ["main", "build_parser"]

# Top-level subcommands, one module each.
_COMMANDS = (
    "board",
    "doctor",
    "eval_ttfs",
    "nir_io",
    "reproduce",
    "run",
    "sweep",
    "synth",
)
# ``spikegate train ALGORITHM``: one module per algorithm.
_TRAIN_COMMANDS = (
    "train_pdnn",
    "train_ssgd",
    "train_ssgd_fixed",
    "train_ttfs",
)


class UsageError(Exception):
    """A user error that the command line reports in one line, with exit code 2."""


def build_parser():
    parser = argparse.ArgumentParser(
        prog="spikegate",
        description="Spiking-network classifiers as verified FPGA gateware.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in _COMMANDS:
        importlib.import_module(f"spikegate.scripts.{name}").add_parser(sub)
    if _TRAIN_COMMANDS:
        train = sub.add_parser("train", help="train a network (golden model)")
        train_sub = train.add_subparsers(dest="algorithm", metavar="ALGORITHM")
        train_sub.required = True
        for name in _TRAIN_COMMANDS:
            importlib.import_module(f"spikegate.scripts.{name}").add_parser(train_sub)
    return parser


def main(argv=None):
    """Run ``spikegate`` with ``argv`` (default: ``sys.argv[1:]``); returns the exit code.

    Bad options are refused while parsing (:mod:`spikegate.scripts.args`; argparse prints the
    usage and the reason), a ``ValueError`` or ``FileNotFoundError`` of a command before or
    during its work as one line: both with exit code 2.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:            # argparse's refusals (2) and --help (0)
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    try:
        code = args.func(args)
    except (UsageError, ValueError, FileNotFoundError) as e:
        print(f"spikegate {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(code or 0)


if __name__ == "__main__":
    sys.exit(main())
