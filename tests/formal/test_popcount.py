# amaranth: UnusedElaboratable=no
"""Popcount, proven with SBY for every input sequence: each count is the number of set bits
of its word, in order, none lost or duplicated, and the output stream obeys the stream
rules under any back-pressure. Each mutation below makes the proof fail."""

import pytest
from amaranth.asserts import AnySeq
from amaranth.hdl import Assert, Assume, Elaboratable, Module, Signal

from spikegate.golden.popcount import FAN_IN
from spikegate.hdl.popcount import Popcount
from spikegate.sim.formal import internal_signals, mutant, run_sby, stream_rules, transferred

pytestmark = pytest.mark.formal


def ones(bits):
    """The number of set bits of ``bits`` (exact width): sums of the counts of aligned
    slices of ``FAN_IN**k`` bits, which keeps the solver's work local to one level of the
    adder tree."""
    n = len(bits)
    if n <= FAN_IN:
        return sum((bits[k] for k in range(n)), 0)
    span = FAN_IN
    while span * FAN_IN < n:
        span *= FAN_IN
    return sum((ones(bits[j:j + span]) for j in range(0, n, span)), 0)


class PopcountSpec(Elaboratable):
    """The properties of ``dut_class(width)``, with its input stream obeying the rules and
    its output stream under arbitrary back-pressure.

    The reference is a pipeline of ``latency`` registers holding the words the design
    took, advancing when the design's documented back-pressure says it does (``moves =
    ~o_stream.valid | o_stream.ready``). Asserted (``contract``):

    * ``i_stream.ready == moves``: a word is taken exactly when the pipeline moves;
    * ``o_stream.valid`` is the reference's last valid bit, and the payload is ``ones`` of
      the reference's last word: every count is that of the word taken ``latency`` moves
      earlier, in order;
    * words taken minus counts delivered equals the valid stages of the reference (nothing
      lost or duplicated), at most ``latency``;
    * the output stream rules.

    With ``lemmas`` the spec also asserts that every register of the design's adder tree
    (``l<level>_sum<j>``, ``l<level>_valid``) holds what the reference says; these make the
    contract inductive at depth 1, a proof for runs of any length.
    """

    def __init__(self, width, *, dut_class=Popcount, lemmas=True):
        self.width, self.dut_class, self.lemmas = width, dut_class, lemmas
        self.contract = {}      # name: Assert, filled in by elaborate

    def elaborate(self, platform):
        m = Module()
        dut = self.dut_class(self.width)
        fragment, internal = internal_signals(dut, platform)
        m.submodules.dut = fragment
        i, o = dut.i_stream, dut.o_stream
        m.d.comb += [i.payload.eq(AnySeq(self.width)), i.valid.eq(AnySeq(1)),
                     o.ready.eq(AnySeq(1))]
        stream_rules(m, i, Assume, name="i")
        held, stable = stream_rules(m, o, Assert, name="o")

        moves = ~o.valid | o.ready
        words, valids = [i.payload], [i.valid]
        for level in range(1, dut.latency + 1):
            word = Signal(self.width, name=f"ref_word{level}")
            valid = Signal(name=f"ref_valid{level}")
            with m.If(moves):
                m.d.sync += [word.eq(words[-1]), valid.eq(valids[-1])]
            words.append(word)
            valids.append(valid)
            if self.lemmas:
                span = FAN_IN ** level
                m.d.comb += Assert(internal[f"l{level}_valid"] == valid)
                for j in range(0, -(-self.width // span)):
                    m.d.comb += Assert(internal[f"l{level}_sum{j}"]
                                       == ones(word[j * span:(j + 1) * span]))

        in_flight = Signal(range(dut.latency + 1))
        m.d.sync += in_flight.eq(in_flight + transferred(i) - transferred(o))
        self.contract = {
            "valid_held": held,
            "payload_stable": stable,
            "ready": Assert(i.ready == moves, "i_stream.ready is not ~o.valid | o.ready"),
            "valid": Assert(o.valid == valids[-1], "a count without a word, or a word lost"),
            "count": Assert(~o.valid | (o.payload == ones(words[-1])), "wrong count"),
            "in_flight": Assert(in_flight == sum(valids[1:]),
                                "words taken minus counts delivered is not the words held"),
        }
        m.d.comb += [self.contract[k] for k in ("ready", "valid", "count", "in_flight")]
        return m


# Widths: one bit (a single level), exactly FAN_IN, a non-power-of-two with a partial group
# (7: two levels), one more than a power of FAN_IN (17: a lone bit in the last group, three
# levels), 64 (three full levels) and 100 (four levels, partial groups at every level).
@pytest.mark.parametrize("width", [1, 4, 7, 17, 64, 100])
def test_popcount_proof(width, tmp_path):
    result = run_sby(PopcountSpec(width), f"popcount_w{width}", mode="prove", depth=1,
                     build_dir=tmp_path)
    assert result.passed, result.summary()


# Each mutation is checked against the contract alone (no lemmas on the design's registers),
# by BMC from reset, and must break the contract's property named beside it.
MUTATIONS = {
    # The counts advance while the output is stalled: a waiting count is overwritten.
    "counts_ignore_stall": ("with m.If(enable):\n                m.d.sync += partial",
                            "with m.If(1):\n                m.d.sync += partial",
                            "payload_stable"),
    # Every partial count one value too narrow: four set bits in a group wrap to 0.
    "narrow_partial": ("Signal(range(largest + 1)", "Signal(range(largest)", "count"),
    # The valid bits advance while the output is stalled: a waiting count is dropped.
    "valid_ignores_stall": ("with m.If(enable):\n            m.d.sync += stage_valid",
                            "with m.If(1):\n            m.d.sync += stage_valid",
                            "valid_held"),
    # The input is taken while the pipeline is stalled: that word is lost.
    "ready_ignores_stall": ("self.i_stream.ready.eq(enable)", "self.i_stream.ready.eq(1)",
                            "ready"),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_popcount_proof_catches(mutation, tmp_path):
    old, new, breaks = MUTATIONS[mutation]
    spec = PopcountSpec(7, dut_class=mutant(Popcount, old, new), lemmas=False)
    result = run_sby(spec, f"popcount_{mutation}", mode="bmc", depth=6, build_dir=tmp_path)
    assert result.status == "FAIL", result.summary()
    assert result.failed_at(spec.contract[breaks]), result.summary()
