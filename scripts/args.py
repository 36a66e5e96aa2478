"""Argument types of the ``spikegate`` commands and the ``bench_*`` scripts.

Each type turns one command-line string into a value or refuses it, naming the value and
what was expected, while argparse parses the command line: before any data set is loaded,
any model trained or any file written. Use them as ``type=``; argparse puts the option in
front of the message::

    spikegate train: error: argument --epochs: must be a positive integer, not '0'

A refusal is a :class:`BadArgument`: an ``argparse.ArgumentTypeError`` (so argparse reports
it as above) that is also a ``ValueError`` (so the same check, called on a value that did not
come from the command line, ends a command with exit code 2 as well, see
:func:`spikegate.scripts.cli.main`). Checks that need several options at once (lanes against
the network's layers, say) belong to each command, before its first stage.
"""

import argparse
import math
import os
from pathlib import Path

from spikegate.hdl.lookup import MAX_LANES

__all__ = ["BadArgument", "MAX_LANES", "at_least", "int_range", "positive_int",
           "non_negative_int", "positive_float", "non_negative_float", "number_in", "int_list",
           "positive_ints", "lanes", "existing_file", "existing_dir", "output_dir",
           "output_file", "check"]

# MAX_LANES, the most lanes (weights read per cycle) a layer of the classifier has, is the
# weight lookup's (``spikegate.hdl.lookup.MAX_LANES``), imported above.


class BadArgument(argparse.ArgumentTypeError, ValueError):
    """A command-line value out of range or of the wrong form; the message names both."""


def _int(text, expected):
    try:
        return int(str(text).strip())
    except ValueError:
        raise BadArgument(f"must be {expected}, not {text!r}") from None


def at_least(lo):
    """A type: an integer ``>= lo``."""
    expected = {0: "a non-negative integer", 1: "a positive integer"}.get(lo, f"an integer >= {lo}")

    def parse(text):
        v = _int(text, expected)
        if v < lo:
            raise BadArgument(f"must be {expected}, not {text!r}")
        return v
    return parse


def int_range(lo, hi):
    """A type: an integer from ``lo`` to ``hi`` (both included)."""
    expected = f"an integer from {lo} to {hi}"

    def parse(text):
        v = _int(text, expected)
        if not lo <= v <= hi:
            raise BadArgument(f"must be {expected}, not {text!r}")
        return v
    return parse


positive_int = at_least(1)
non_negative_int = at_least(0)


def _float(text, expected):
    try:
        v = float(str(text).strip())
    except ValueError:
        raise BadArgument(f"must be {expected}, not {text!r}") from None
    if not math.isfinite(v):
        raise BadArgument(f"must be {expected}, not {text!r}")
    return v


def number_in(interval):
    """A type: a finite number in ``interval``, written as in mathematics: ``"[0, 1)"``,
    ``"(0, 1]"``, ``"(0, inf)"``."""
    if interval[0] not in "([" or interval[-1] not in ")]" or interval.count(",") != 1:
        raise ValueError(f"interval must look like '[0, 1)', not {interval!r}")
    lo, hi = (float(s) for s in interval[1:-1].split(","))
    lo_open, hi_open = interval[0] == "(", interval[-1] == ")"
    if (lo, hi, lo_open, hi_open) == (0.0, math.inf, True, True):
        expected = "a positive number"
    elif (lo, hi, lo_open, hi_open) == (0.0, math.inf, False, True):
        expected = "a non-negative number"
    else:
        expected = f"a number in {interval}"

    def parse(text):
        v = _float(text, expected)
        if v < lo or v > hi or (lo_open and v == lo) or (hi_open and v == hi):
            raise BadArgument(f"must be {expected}, not {text!r}")
        return v
    return parse


positive_float = number_in("(0, inf)")
non_negative_float = number_in("[0, inf)")


def int_list(lo=1, hi=None, *, allow_empty=False):
    """A type: integers separated by commas (``"600"``, ``"128,64"``), each ``>= lo`` (and
    ``<= hi`` when given), as a list; an empty string gives ``[]`` when ``allow_empty``."""
    if hi is not None:
        expected = f"integers from {lo} to {hi}, separated by commas"
    elif lo in (0, 1):
        expected = f"{('non-negative', 'positive')[lo]} integers separated by commas"
    else:
        expected = f"integers >= {lo}, separated by commas"

    def parse(text):
        parts = [p.strip() for p in str(text).split(",")]
        if parts == [""] and allow_empty:
            return []
        try:
            vals = [int(p) for p in parts]
        except ValueError:
            raise BadArgument(f"must be {expected}, not {text!r}") from None
        if any(v < lo or (hi is not None and v > hi) for v in vals):
            raise BadArgument(f"must be {expected}, not {text!r}")
        return vals
    return parse


#: Hidden layer sizes: ``"64"`` -> ``[64]``, ``"128,64"`` -> ``[128, 64]``.
positive_ints = int_list(1)


def lanes(text):
    """Weights read per cycle: ``"8"`` -> ``8`` (every layer), ``"2,1"`` -> ``(2, 1)`` (one
    per weight layer), each from 1 to :data:`MAX_LANES`."""
    try:
        vals = int_list(1, MAX_LANES)(text)
    except BadArgument:
        raise BadArgument(f"must be an integer from 1 to {MAX_LANES}, or one per weight layer "
                          f"separated by commas (e.g. 2,1), not {text!r}") from None
    return vals[0] if len(vals) == 1 else tuple(vals)


def existing_file(text):
    """A type: the path of an existing file (returned as given)."""
    p = Path(text)
    if p.is_dir():
        raise BadArgument(f"{text!r} is a directory, not a file")
    if not p.is_file():
        raise BadArgument(f"file {text!r} does not exist")
    return text


def existing_dir(text):
    """A type: the path of an existing directory (returned as given)."""
    p = Path(text)
    if not p.exists():
        raise BadArgument(f"directory {text!r} does not exist")
    if not p.is_dir():
        raise BadArgument(f"{text!r} is not a directory")
    return text


def output_dir(text):
    """A type: a directory to write into, existing or not: not an existing file, and its
    closest existing ancestor a writable directory (so it can be created at the end of a
    long run)."""
    p = Path(text)
    if p.exists() and not p.is_dir():
        raise BadArgument(f"{text!r} is a file, not a directory")
    q = p.absolute()
    while not q.exists():
        q = q.parent
    if not q.is_dir():
        raise BadArgument(f"directory {text!r} cannot be created: {str(q)!r} is a file")
    if not os.access(q, os.W_OK | os.X_OK):
        raise BadArgument(f"directory {text!r} cannot be written: {str(q)!r} is not writable")
    return text


def output_file(text):
    """A type: a file to write: its directory exists and is writable, and it is not itself a
    directory."""
    p = Path(text)
    if p.is_dir():
        raise BadArgument(f"{text!r} is a directory, not a file")
    parent = p.parent if str(p.parent) else Path(".")
    if not parent.is_dir():
        raise BadArgument(f"output directory {str(parent)!r} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BadArgument(f"output directory {str(parent)!r} is not writable")
    return text


def check(option, type_, value):
    """``type_(value)`` for a value that does not come through argparse (a default that
    depends on other options, say), with ``option`` named in the refusal."""
    try:
        return type_(value)
    except BadArgument as e:
        raise BadArgument(f"{option}: {e}") from None
