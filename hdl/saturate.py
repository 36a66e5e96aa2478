"""Saturation: a value clipped to the range of a narrower shape, never wrapped.

The hardware twin of :func:`spikegate.golden.fixed.saturate` (same ranges, from
:func:`~spikegate.golden.fixed.signed_range` / :func:`~spikegate.golden.fixed.unsigned_range`).
A plain assignment to a narrower signal keeps the low bits (wraps); ``saturate`` clips first.
``tests/formal/test_saturate.py`` proves it for every input value of several shapes.
"""

from amaranth.hdl import Mux, Shape, Value, ValueCastable

from spikegate.golden.fixed import signed_range, unsigned_range

__all__ = ["saturate"]


def saturate(value, shape):
    """``value`` clipped to the range of ``shape``: an expression of exactly that shape.

    ``value`` is compared as the integer it is (signed or unsigned, any width), so the
    result is ``hi`` when ``value > hi``, ``lo`` when ``value < lo`` and ``value`` itself
    otherwise, where ``(lo, hi)`` is the range of ``shape``: ``[-2**(n-1), 2**(n-1) - 1]``
    for ``signed(n)``, ``[0, 2**n - 1]`` for ``unsigned(n)``. Combinational: no latency.

    Parameters
    ----------
    value : Value
        Any value, e.g. the full-width sum ``w + (delta << shift)``.
    shape : Shape
        ``signed(n)`` or ``unsigned(n)``, ``1 <= n <= 62`` (the widths of
        :mod:`spikegate.golden.fixed`). A bare integer is refused: the golden function's
        ``saturate(x, bits)`` means signed, Amaranth's ``Shape.cast(bits)`` unsigned.

    Raises
    ------
    TypeError
        If ``value`` is not an Amaranth value or ``shape`` not a ``Shape``.
    ValueError
        If the width of ``shape`` is not in ``1 .. 62``.
    """
    if not isinstance(value, (Value, ValueCastable)):
        raise TypeError(f"value must be an Amaranth value, not {value!r}")
    if not isinstance(shape, Shape):
        raise TypeError(f"shape must be an Amaranth Shape such as signed(8), not {shape!r}")
    if not 1 <= shape.width <= 62:
        raise ValueError(f"shape must be 1 to 62 bits wide, not {shape.width}")
    value = Value.cast(value)
    lo, hi = (signed_range if shape.signed else unsigned_range)(shape.width)
    # Mux takes the union of its operands' shapes, at least shape.width bits (lo and hi need
    # them), so the clipped value is exact; its low bits then are the result.
    clipped = Mux(value > hi, hi, Mux(value < lo, lo, value))
    low = clipped[:shape.width]
    return low.as_signed() if shape.signed else low
