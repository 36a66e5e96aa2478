"""saturate, proven with SBY for every input value: the result is the exact value clipped to
the range of the target shape (never wrapped), and for inputs of up to 9 bits it equals
``golden.fixed.saturate`` bit for bit. Each mutation below makes the proof fail."""

import pytest
from amaranth.asserts import AnySeq
from amaranth.hdl import Array, Assert, Const, Elaboratable, Module, Signal, signed, unsigned

from spikegate.golden.fixed import saturate as golden_saturate
from spikegate.hdl.saturate import saturate
from spikegate.sim.formal import run_sby

GOLDEN_TABLE_BITS = 9     # inputs this narrow are also checked against golden, value by value


def _range(shape):
    if shape.signed:
        return -(1 << (shape.width - 1)), (1 << (shape.width - 1)) - 1
    return 0, (1 << shape.width) - 1


class SaturateSpec(Elaboratable):
    """``clip(value, shape)`` for every value of ``in_shape``.

    ``weight_update=True`` proves the learning rule's use instead: the value is
    ``w + (delta << shift)`` for every ``w: signed(8)``, ``delta: signed(2)`` and
    ``shift: unsigned(3)`` (hdl/ttfs_layer.py's weight update), and the exact value the
    result is compared with is computed as ``w + delta * 2**shift`` by the spec.

    ``props``: ``in_range`` (a value in range is kept), ``above`` / ``below`` (a value out
    of range becomes the nearest bound) and, for narrow inputs, ``golden`` (equal to
    ``golden.fixed.saturate``).
    """

    def __init__(self, in_shape, shape, *, fn=saturate, weight_update=False):
        self.in_shape, self.shape, self.fn, self.weight_update = in_shape, shape, fn, weight_update
        self.props = {}

    def elaborate(self, platform):
        m = Module()
        if self.weight_update:
            w, delta, shift = Signal(signed(8)), Signal(signed(2)), Signal(unsigned(3))
            m.d.comb += [w.eq(AnySeq(signed(8))), delta.eq(AnySeq(signed(2))),
                         shift.eq(AnySeq(unsigned(3)))]
            given = w + (delta << shift)
            exact = Signal(signed(16))
            m.d.comb += exact.eq(w + delta * Array(Const(1 << k, 8) for k in range(8))[shift])
        else:
            given = exact = Signal(self.in_shape)
            m.d.comb += exact.eq(AnySeq(self.in_shape))
        result = Signal(self.shape)
        m.d.comb += result.eq(self.fn(given, self.shape))

        lo, hi = _range(self.shape)
        self.props = {
            "in_range": Assert((exact < lo) | (exact > hi) | (result == exact),
                               "a value in range changed"),
            "above": Assert((exact <= hi) | (result == hi), "a value above the range wrapped"),
            "below": Assert((exact >= lo) | (result == lo), "a value below the range wrapped"),
        }
        if not self.weight_update and self.in_shape.width <= GOLDEN_TABLE_BITS:
            n = self.in_shape.width
            values = [u - (1 << n) if self.in_shape.signed and u >> (n - 1) else u
                      for u in range(1 << n)]
            clipped = golden_saturate(values, self.shape.width, signed=self.shape.signed)
            table = Array(Const(int(v), self.shape) for v in clipped)
            self.props["golden"] = Assert(result == table[exact.as_unsigned()],
                                          "differs from golden.fixed.saturate")
        m.d.comb += list(self.props.values())
        return m


# (input shape, target shape): the learning rule's full-width sum to a weight, one bit
# wider, unsigned to narrower unsigned, signed to unsigned (negatives clip to 0), unsigned
# to signed of the same width (the top half clips), narrower than the target (nothing to
# clip), and the narrowest target.
CASES = [
    (signed(17), signed(8)),
    (signed(9), signed(8)),
    (unsigned(10), unsigned(8)),
    (signed(9), unsigned(8)),
    (unsigned(8), signed(8)),
    (signed(4), signed(8)),
    (signed(6), signed(1)),
]


@pytest.mark.formal
@pytest.mark.parametrize("in_shape, shape", CASES, ids=lambda s: repr(s).replace(" ", ""))
def test_saturate_proof(in_shape, shape, tmp_path):
    name = f"saturate_{'s' if in_shape.signed else 'u'}{in_shape.width}" \
           f"_{'s' if shape.signed else 'u'}{shape.width}"
    spec = SaturateSpec(in_shape, shape)
    result = run_sby(spec, name, mode="prove", depth=1, build_dir=tmp_path)
    assert result.passed, result.summary()


@pytest.mark.formal
def test_saturate_weight_update_proof(tmp_path):
    result = run_sby(SaturateSpec(None, signed(8), weight_update=True), "saturate_weight_update",
                     mode="prove", depth=1, build_dir=tmp_path)
    assert result.passed, result.summary()


def _wraps(value, shape):
    """The bug saturate exists for: keep the low bits (what a plain assignment does)."""
    low = value[:shape.width]
    return low.as_signed() if shape.signed else low


def _unsigned_compare(value, shape):
    """Signedness lost before the comparison: a negative value clips to the top."""
    return saturate(value.as_unsigned(), shape)


def _one_bit_short(value, shape):
    """Clips to the range of one bit less."""
    return saturate(value, signed(shape.width - 1) if shape.signed else unsigned(shape.width - 1))


# mutation: (broken function, input shape, the properties a counterexample may break: the
# solver picks the value, e.g. a wrapped value from above or from below the range)
MUTATIONS = {
    "wraps": (_wraps, signed(17), ("above", "below")),
    "unsigned_compare": (_unsigned_compare, signed(17), ("in_range", "below")),
    "one_bit_short": (_one_bit_short, signed(9), ("in_range", "above", "below")),
}


@pytest.mark.formal
@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_saturate_proof_catches(mutation, tmp_path):
    fn, in_shape, breaks = MUTATIONS[mutation]
    spec = SaturateSpec(in_shape, signed(8), fn=fn)
    result = run_sby(spec, f"saturate_{mutation}", mode="prove", depth=1, build_dir=tmp_path)
    assert result.status == "FAIL", result.summary()
    assert result.failed_at(*(spec.props[k] for k in breaks)), result.summary()


@pytest.mark.formal
def test_saturate_weight_update_proof_catches_wrapping(tmp_path):
    spec = SaturateSpec(None, signed(8), fn=_wraps, weight_update=True)
    result = run_sby(spec, "saturate_weight_update_wraps", mode="prove", depth=1,
                     build_dir=tmp_path)
    assert result.status == "FAIL", result.summary()
    assert result.failed_at(spec.props["above"], spec.props["below"]), result.summary()


@pytest.mark.parametrize("in_shape, shape", CASES, ids=lambda s: repr(s).replace(" ", ""))
def test_saturate_shape(in_shape, shape):
    assert saturate(Signal(in_shape), shape).shape() == shape


def test_saturate_checks_parameters():
    with pytest.raises(TypeError, match=r"Shape such as signed\(8\), not 8"):
        saturate(Signal(9), 8)
    with pytest.raises(TypeError, match="must be an Amaranth value, not 3"):
        saturate(3, signed(8))
    with pytest.raises(ValueError, match="1 to 62 bits wide, not 63"):
        saturate(Signal(70), signed(63))
    with pytest.raises(ValueError, match="1 to 62 bits wide, not 0"):
        saturate(Signal(4), unsigned(0))
