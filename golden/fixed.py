"""Fixed-point primitives shared by every golden model and test bench.

Each function is the NumPy specification of one hardware step. They work element-wise on
integer arrays (``int64``; Python ints are accepted) and never overflow internally for
operands below 2**62.

Conventions, as in the RTL:

* ``asr`` is an arithmetic shift right: it floors (towards -inf), like Amaranth's signed ``>>``.
* ``round_shift`` rounds half up: ``(x + 2**(n-1)) >> n``.
* ``saturate`` clips to the range of a ``bits``-wide two's-complement (or unsigned) value;
  ``wrap`` keeps the low ``bits`` bits and reinterprets them (two's-complement overflow).
"""

import numpy as np

__all__ = ["signed_range", "unsigned_range", "saturate", "wrap", "asr", "round_shift",
           "signed_bits", "unsigned_bits", "WEIGHT_BITS"]

#: Width of a stored weight (signed), the same for every algorithm: the weight memories
#: and the shared weight-lookup datapath (:mod:`spikegate.hdl.lookup`) are built for it.
WEIGHT_BITS = 8


def _check_bits(bits):
    if not isinstance(bits, (int, np.integer)) or bits < 1 or bits > 62:
        raise ValueError(f"bits must be an integer from 1 to 62, not {bits!r}")


def signed_range(bits):
    """``(min, max)`` of a ``bits``-wide two's-complement value."""
    _check_bits(bits)
    return -(1 << (bits - 1)), (1 << (bits - 1)) - 1


def unsigned_range(bits):
    """``(0, max)`` of a ``bits``-wide unsigned value."""
    _check_bits(bits)
    return 0, (1 << bits) - 1


def saturate(x, bits, signed=True):
    """Clip ``x`` to the range of a ``bits``-wide value (saturating overflow policy)."""
    lo, hi = signed_range(bits) if signed else unsigned_range(bits)
    return np.clip(np.asarray(x, dtype=np.int64), lo, hi)


def wrap(x, bits, signed=True):
    """Keep the low ``bits`` bits of ``x`` (wrapping overflow policy)."""
    _check_bits(bits)
    x = np.asarray(x, dtype=np.int64)
    mask = (1 << bits) - 1
    u = x & mask
    if signed:
        u = np.where(u >= (1 << (bits - 1)), u - (1 << bits), u)
    return u


def asr(x, n):
    """Arithmetic shift right by ``n >= 0`` bits: ``floor(x / 2**n)``."""
    if n < 0:
        raise ValueError(f"shift must be >= 0, not {n!r}")
    return np.right_shift(np.asarray(x, dtype=np.int64), n)


def round_shift(x, n):
    """Shift right by ``n >= 0`` bits rounding half up: ``floor(x / 2**n + 1/2)``."""
    if n < 0:
        raise ValueError(f"shift must be >= 0, not {n!r}")
    x = np.asarray(x, dtype=np.int64)
    if n == 0:
        return x
    return np.right_shift(x + (1 << (n - 1)), n)


def signed_bits(lo, hi):
    """The smallest two's-complement width holding every integer in ``[lo, hi]``."""
    lo, hi = int(lo), int(hi)
    if lo > hi:
        raise ValueError(f"empty range [{lo}, {hi}]")
    bits = 1
    while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
        bits += 1
    return bits


def unsigned_bits(hi):
    """The smallest unsigned width holding every integer in ``[0, hi]`` (at least 1)."""
    hi = int(hi)
    if hi < 0:
        raise ValueError(f"an unsigned range needs hi >= 0, not {hi}")
    return max(1, hi.bit_length())
