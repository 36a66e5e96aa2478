"""Population count: the reference for :class:`spikegate.hdl.popcount.Popcount`.

The hardware is a radix-4 adder tree with one register level per reduction level:
level 1 counts the ones in each group of :data:`FAN_IN` input bits, every further level
adds up to :data:`FAN_IN` partial counts, until one count is left. The latency in clock
cycles is therefore a pure function of the width, defined here once
(:func:`pipeline_latency`) and used by the RTL, its tests and its users.

Nothing here is fixed-point: counts are exact non-negative integers, never saturated.
"""

import numpy as np

__all__ = ["FAN_IN", "MAX_WIDTH", "popcount", "pipeline_latency", "count_width"]

#: Operands summed by one pipeline level (4 bits in, 3 bits out fits one iCE40 LUT4 per bit).
FAN_IN = 4
#: Widest input the hardware block accepts.
MAX_WIDTH = 1024


def _check_width(width):
    if isinstance(width, bool) or not isinstance(width, (int, np.integer)):
        raise TypeError(f"width must be an integer, not {width!r}")
    if not 1 <= width <= MAX_WIDTH:
        raise ValueError(f"width must be between 1 and {MAX_WIDTH}, not {width!r}")
    return int(width)


def popcount(bits, axis=-1):
    """Number of set bits along ``axis``.

    Parameters
    ----------
    bits : array_like of bool or integers in {0, 1}
        The bit vectors; any shape. Values other than 0 and 1 are rejected (a popcount of
        packed words is a different function).
    axis : int
        The axis that holds one vector's bits (default: the last).

    Returns
    -------
    numpy.ndarray of int64
        ``bits.shape`` without ``axis``; each element in ``0 .. bits.shape[axis]``.

    Raises
    ------
    ValueError
        If ``bits`` holds a value other than 0, 1, False or True.
    """
    bits = np.asarray(bits)
    if bits.dtype != np.bool_:
        if not (np.issubdtype(bits.dtype, np.integer) or np.issubdtype(bits.dtype, np.floating)):
            raise TypeError(f"bits must be bool or integer, not dtype {bits.dtype}")
        bad = (bits != 0) & (bits != 1)
        if np.any(bad):
            raise ValueError(f"bits must be 0 or 1, found {bits[bad].flat[0]!r}")
    return np.count_nonzero(bits, axis=axis).astype(np.int64)


def pipeline_latency(width):
    """Clock cycles from an accepted input to its count at the output of the hardware.

    One register level per radix-:data:`FAN_IN` reduction level, at least one:
    ``max(1, ceil(log4(width)))``. Widths 1 -> 1, 7 -> 2, 64 -> 3, 600 -> 5, 1024 -> 5.

    Raises
    ------
    TypeError, ValueError
        If ``width`` is not an integer in ``1 .. MAX_WIDTH``.
    """
    width = _check_width(width)
    levels, n = 1, -(-width // FAN_IN)
    while n > 1:
        n = -(-n // FAN_IN)
        levels += 1
    return levels


def count_width(width):
    """Bits of the count for a ``width``-bit input: enough for ``0 .. width``."""
    width = _check_width(width)
    return width.bit_length()
