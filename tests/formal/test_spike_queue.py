# amaranth: UnusedElaboratable=no
"""StreamRegister and SpikeQueue, checked with SBY: with an input stream that obeys the
stream rules and any back-pressure on the output, the output stream obeys them too and no
beat is lost, duplicated or reordered; the queue never overflows and its ``level`` counts
the beats it holds. Each mutation below makes its check fail."""

import pytest
from amaranth.asserts import AnySeq
from amaranth.hdl import Assert, Assume, Elaboratable, Module, Signal, Value

from spikegate.hdl.layouts import SpikeEventLayout
from spikegate.hdl.spike_queue import SpikeQueue, StreamRegister
from spikegate.sim.formal import (internal_signals, mutant, run_sby, scoreboard, stream_rules,
                                  transferred)

pytestmark = pytest.mark.formal

# Any payload does: the blocks never look at it. Three bits keep the solver quick while
# still letting a counterexample tell beats apart.
LAYOUT = SpikeEventLayout(2, 1)


def _drive(m, dut):
    """Inputs from the solver: any payload and valid on i_stream (the rules assumed), any
    ready on o_stream."""
    i, o = dut.i_stream, dut.o_stream
    m.d.comb += [i.payload.eq(AnySeq(LAYOUT.size)), i.valid.eq(AnySeq(1)),
                 o.ready.eq(AnySeq(1))]
    stream_rules(m, i, Assume, name="i")


class StreamRegisterSpec(Elaboratable):
    """``contract``: the output stream rules; a reference queue of two beats (nothing
    lost, duplicated or reordered, never more than two held); ``o_stream.valid`` whenever a
    beat is held and ``i_stream.ready`` whenever there is room (one beat per cycle through
    it, stalls or not).

    With ``lemmas`` the spec also asserts what the design's skid register holds (the
    reference's second beat), which makes the contract inductive.
    """

    def __init__(self, *, dut_class=StreamRegister, lemmas=True):
        self.dut_class, self.lemmas = dut_class, lemmas
        self.contract = {}

    def elaborate(self, platform):
        m = Module()
        dut = self.dut_class(LAYOUT)
        fragment, internal = internal_signals(dut, platform)
        m.submodules.dut = fragment
        _drive(m, dut)
        i, o = dut.i_stream, dut.o_stream
        valid_held, payload_held = stream_rules(m, o, Assert, name="o")
        count, entries, reference = scoreboard(m, i, o, 2, name="ref")
        self.contract = {
            "valid_held": valid_held, "payload_held": payload_held, **reference,
            "offered": Assert(o.valid == (count != 0), "a beat held but not offered"),
            "ready": Assert(i.ready == (count != 2), "room for a beat but not ready"),
        }
        m.d.comb += [self.contract["offered"], self.contract["ready"]]
        if self.lemmas:
            skid, skid_valid = Value.cast(internal["skid"]), internal["skid_valid"]
            m.d.comb += [Assert(skid_valid == (count == 2)),
                         Assert(~skid_valid | (skid == entries[1]))]
        return m


def test_stream_register_proof(tmp_path):
    result = run_sby(StreamRegisterSpec(), "stream_register", mode="prove", depth=2,
                     build_dir=tmp_path)
    assert result.passed, result.summary()


# mutation: (old, new, the contract's properties a counterexample breaks)
STREAM_REGISTER_MUTATIONS = {
    # Ready while the skid register is full: the skid is overwritten, a beat lost.
    "ready_when_full": ("self.i_stream.ready.eq(~skid_valid)", "self.i_stream.ready.eq(1)",
                        ("no_room", "ready")),
    # A beat arriving during a stall is not kept aside: lost.
    "no_skid": ("with m.Elif(self.i_stream.valid & ~skid_valid):", "with m.Elif(0):",
                ("ready", "offered", "not_oldest")),
    # The output register is refilled during a stall: the waiting beat is overwritten.
    "output_ignores_stall": ("with m.If(self.o_stream.ready | ~self.o_stream.valid):",
                             "with m.If(1):", ("valid_held", "payload_held")),
}


@pytest.mark.parametrize("mutation", sorted(STREAM_REGISTER_MUTATIONS))
def test_stream_register_proof_catches(mutation, tmp_path):
    old, new, breaks = STREAM_REGISTER_MUTATIONS[mutation]
    spec = StreamRegisterSpec(dut_class=mutant(StreamRegister, old, new), lemmas=False)
    result = run_sby(spec, f"stream_register_{mutation}", mode="bmc", depth=6,
                     build_dir=tmp_path)
    assert result.status == "FAIL", result.summary()
    assert result.failed_at(*(spec.contract[k] for k in breaks)), result.summary()


class SpikeQueueSpec(Elaboratable):
    """``contract``: the output stream rules; a beat is taken only while fewer than
    ``depth`` are held (the queue never overflows); ``level`` equals the beats taken minus
    the beats delivered (none lost or duplicated); a beat is offered only while one is held.

    With ``order`` the spec keeps a reference queue of the beats themselves and asserts
    that each beat delivered is the oldest one held (:func:`scoreboard`). This depends on
    the contents of the queue's memory, which no invariant here reaches, so it is checked by
    BMC to a depth; the rest is proven by induction.
    """

    def __init__(self, depth, *, dut_class=SpikeQueue, order=False):
        self.depth, self.dut_class, self.order = depth, dut_class, order
        self.contract = {}

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut_class(LAYOUT, self.depth)
        _drive(m, dut)
        i, o = dut.i_stream, dut.o_stream
        valid_held, payload_held = stream_rules(m, o, Assert, name="o")
        self.contract = {"valid_held": valid_held, "payload_held": payload_held}
        if self.order:
            count, _, reference = scoreboard(m, i, o, self.depth, name="ref")
            self.contract.update(reference)
        else:
            count = Signal(range(self.depth + 1))
            m.d.sync += count.eq(count + transferred(i) - transferred(o))
            self.contract.update(
                no_room=Assert(~transferred(i) | (count < self.depth), "a beat taken when full"),
                no_beat=Assert(~o.valid | (count != 0), "a beat offered that never went in"),
                bounded=Assert(count <= self.depth, "more beats held than the depth"))
            m.d.comb += [self.contract[k] for k in ("no_room", "no_beat", "bounded")]
        self.contract["level"] = Assert(dut.level == count,
                                        "level is not the beats taken minus delivered")
        m.d.comb += self.contract["level"]
        return m


# Depth 2: the shortest queue (one memory entry behind the output register); depth 4: the
# memory's three entries make the pointers wrap at a non-power of two.
@pytest.mark.parametrize("depth", [2, 4])
def test_spike_queue_proof(depth, tmp_path):
    result = run_sby(SpikeQueueSpec(depth), f"spike_queue_d{depth}", mode="prove", depth=4,
                     build_dir=tmp_path)
    assert result.passed, result.summary()


# 12 cycles from reset fill the depth-4 queue, stall it full, drain it and wrap the memory
# pointers more than once (every order of pushes, pops and stalls of that length).
ORDER_BMC_DEPTH = 12


def test_spike_queue_order_bmc(tmp_path):
    result = run_sby(SpikeQueueSpec(4, order=True), "spike_queue_order", mode="bmc",
                     depth=ORDER_BMC_DEPTH, build_dir=tmp_path)
    assert result.passed, result.summary()


# mutation: (old, new, with the reference queue?, the contract's properties a counterexample
# breaks); each checked by BMC from reset to ORDER_BMC_DEPTH (a full queue takes 5 cycles)
SPIKE_QUEUE_MUTATIONS = {
    # The FIFO is read whether or not the output is taken: the offered beat changes or
    # disappears before its transfer.
    "reads_while_stalled": ("f.r_en.eq(self.o_stream.ready)", "f.r_en.eq(1)", False,
                            ("valid_held", "payload_held")),
    # Ready when full: the beat is taken but the FIFO drops it.
    "ignores_full": ("self.i_stream.ready.eq(f.w_rdy)", "self.i_stream.ready.eq(1)", False,
                     ("level", "no_room")),
    # Payload bits crossed on the way in: the beats come out, but not as they went in.
    "payload_scrambled": ("f.w_data.eq(self.i_stream.payload)",
                          "f.w_data.eq(self.i_stream.payload.as_value().rotate_left(1))", True,
                          ("not_oldest",)),
}


@pytest.mark.parametrize("mutation", sorted(SPIKE_QUEUE_MUTATIONS))
def test_spike_queue_proof_catches(mutation, tmp_path):
    old, new, order, breaks = SPIKE_QUEUE_MUTATIONS[mutation]
    spec = SpikeQueueSpec(4, dut_class=mutant(SpikeQueue, old, new), order=order)
    result = run_sby(spec, f"spike_queue_{mutation}", mode="bmc", depth=ORDER_BMC_DEPTH,
                     build_dir=tmp_path)
    assert result.status == "FAIL", result.summary()
    assert result.failed_at(*(spec.contract[k] for k in breaks)), result.summary()
