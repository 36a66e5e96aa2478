"""Small pieces of arithmetic the hardware blocks share: a minimum tree, the lowest set bit,
a product by a constant without a multiplier, and the split of an index over lanes."""

from amaranth.hdl import Cat, Const, Mux, Signal

__all__ = ["min_tree", "lowest_set_bit", "times_const", "lane_split"]


def min_tree(m, values, name):
    """The minimum of unsigned ``values`` as a tree of comparisons, each level's results
    signals named ``{name}{width}_{i}`` (a nested ``Mux`` expression would be re-emitted for
    every use: exponential in the number of values)."""
    level = list(values)
    while len(level) > 1:
        nxt = []
        for i in range(0, len(level) - 1, 2):
            a, b = level[i], level[i + 1]
            mn = Signal.like(a, name=f"{name}{len(level)}_{i}")
            m.d.comb += mn.eq(Mux(b < a, b, a))
            nxt.append(mn)
        level = nxt + level[len(level) - len(level) % 2:]
    return level[0]


def lowest_set_bit(m, bits, name):
    """A signal holding the index of the lowest set bit of ``bits`` (0 when none is set), a
    priority encoder: a chain of up to 8 bits, above that a tree over halves of a power of
    two (``log2(n)`` levels of one multiplexer each, for the 64 lanes of a fire mask or the
    groups of a masked walk)."""
    n = len(bits)
    low = Signal(range(max(n, 2)), name=name)
    if n <= 8:
        for i in reversed(range(n)):
            with m.If(bits[i]):
                m.d.comb += low.eq(i)
        return low
    _, idx = _lowest_tree(m, bits, name)
    m.d.comb += low.eq(idx)
    return low


def _lowest_tree(m, bits, name):
    """``(any, index)`` of the lowest set bit of ``bits`` (index 0 when none)."""
    n = len(bits)
    if n == 1:
        return bits[0], Const(0, 1)
    half = 1 << ((n - 1).bit_length() - 1)          # a power of two, n / 2 <= half < n
    a_lo, i_lo = _lowest_tree(m, bits[:half], f"{name}_l")
    a_hi, i_hi = _lowest_tree(m, bits[half:], f"{name}_h")
    k = half.bit_length() - 1                       # index bits of the low half
    idx = Signal(k + 1, name=f"{name}_i")
    any_ = Signal(name=f"{name}_a")
    # half + i_hi (i_hi < half): i_hi in k bits, then the bit of ``half``.
    hi = Cat(Cat(i_hi, Const(0, k))[:k], Const(1, 1))
    m.d.comb += [idx.eq(Mux(a_lo | ~a_hi, i_lo, hi)),
                 any_.eq(a_lo | a_hi)]
    return any_, idx


def times_const(x, c):
    """``x * c`` for a constant ``c >= 1`` as shifts and adds: Yosys would put a product by a
    constant on an iCE40 DSP, which the lanes' multipliers need (same value, same width
    rules as ``*``: the result is wide enough for every ``x``)."""
    terms = [x << k for k in range(c.bit_length()) if c >> k & 1]
    return sum(terms[1:], terms[0])


def lane_split(index, lanes):
    """``(index // lanes, index % lanes)`` of a destination index: its lane group (the word
    of a banked memory) and its lane (no divider for one lane)."""
    if lanes == 1:
        return index, 0
    return index // lanes, index % lanes
