# amaranth: UnusedElaboratable=no
"""ProtocolEngine, checked with SBY (BMC) on a tiny engine: sizes (2, 2, 2), chunks of at
most 2 weights (a 9-byte buffer), 4 timesteps, a frame timeout of 4 cycles and a watchdog of
4 cycles. The bytes that arrive are anything, every cycle or not (the engine is always
ready); the classifier is abstract (``res_stream`` any stream that obeys the rules,
``ev_stream.ready``, ``model.idle`` and ``model.rb_data`` anything).

The spec follows the request frames itself, from the engine's ports only: a frame starts
with a ``SYNC`` taken while the engine hunts (``busy`` low); then come CMD, LEN0, LEN1,
LEN payload bytes and the two CRC bytes, and a frame is abandoned after
``timeout_cycles`` cycles without a byte (the protocol's framing, as
:mod:`spikegate.hdl.protocol_spec` defines it). The spec computes the CRC of the frame's
bytes with its own register (the XOR network of ``crc16_update``).

* ``crc_write``, ``crc_theta``: a weight write (``model.w_en``) or a threshold write
  (``model.theta_en``) only after a frame received whole whose two CRC bytes are the CRC
  of its bytes. BMC 10: the shortest frame that writes (LOAD_THETA) and its write; a
  LOAD_WEIGHTS frame writes in step 19 or later, beyond the depth a minute reaches.

With ``lemmas`` the spec also asserts that the engine's CRC register and verdict
(``crc``, ``crc_bad``) are its own, which spares the solver the CRC's XOR network in the
later steps (BMC assumes each step's assertions in the steps after it).

The reply's bound (a reply within a bound of cycles of any frame's end) is not checked
here: a CLASSIFY frame's reply may come some 50 cycles after it ends (the check pass, the
send pass, the watchdog), beyond the depth BMC reaches on this engine.

Each mutation below makes its check fail."""

import pytest
from amaranth.asserts import AnySeq
from amaranth.hdl import Assert, Assume, Elaboratable, Module, Mux, Signal

from spikegate.golden.ttfs_discrete import DiscreteConfig
from spikegate.hdl.protocol import ProtocolEngine, crc16_network
from spikegate.hdl.protocol_spec import CRC_INIT, SYNC
from spikegate.sim.formal import internal_signals, mutant, run_sby, stream_rules

pytestmark = pytest.mark.formal

SIZES = (2, 2, 2)
LANES = (1, 1)
MAX_CHUNK = 2
TIMEOUT = 4
RESULT_TIMEOUT = 4


def engine(dut_class=ProtocolEngine):
    return dut_class(SIZES, LANES, DiscreteConfig(timesteps=4), clk_freq_hz=1_000_000,
                     timeout_cycles=TIMEOUT, max_chunk=MAX_CHUNK,
                     result_timeout_cycles=RESULT_TIMEOUT)


class ProtocolEngineSpec(Elaboratable):
    """The properties above of ``engine(dut_class)`` (``o_stream`` always ready)."""

    def __init__(self, dut_class=ProtocolEngine, *, lemmas=True):
        self.dut_class, self.lemmas = dut_class, lemmas
        self.props = {}

    def elaborate(self, platform):
        m = Module()
        dut = engine(self.dut_class)
        fragment, internal = internal_signals(dut, platform)
        m.submodules.dut = fragment
        rx, byte = dut.i_stream.valid, dut.i_stream.payload
        m.d.comb += [rx.eq(AnySeq(1)), byte.eq(AnySeq(8)),
                     dut.o_stream.ready.eq(1),
                     dut.ev_stream.ready.eq(AnySeq(1)),
                     dut.res_stream.valid.eq(AnySeq(1)),
                     dut.res_stream.payload.eq(AnySeq(len(dut.res_stream.payload.as_value()))),
                     dut.model.idle.eq(AnySeq(1)),
                     dut.model.rb_data.eq(AnySeq(len(dut.model.rb_data)))]
        stream_rules(m, dut.res_stream, Assume, name="res")

        # The frame as the spec follows it. phase: 0 outside a frame, 1 CMD, 2 LEN0, 3 LEN1,
        # 4 payload, 5 CRC0, 6 CRC1.
        phase = Signal(range(7))
        length = Signal(16)
        count = Signal(16)
        crc = Signal(16)
        crc_lo = Signal(8)
        timer = Signal(range(TIMEOUT))
        good = Signal()         # the last frame received whole had its CRC right
        seen = Signal()         # a frame was received whole
        crc_next = crc16_network(crc, byte)
        with m.If(phase == 0):
            with m.If(rx & (byte == SYNC) & ~dut.busy):
                m.d.sync += [phase.eq(1), crc.eq(CRC_INIT), timer.eq(0)]
        with m.Elif(rx):
            m.d.sync += timer.eq(0)
            with m.Switch(phase):
                with m.Case(1):
                    m.d.sync += [crc.eq(crc_next), phase.eq(2)]
                with m.Case(2):
                    m.d.sync += [crc.eq(crc_next), length[:8].eq(byte), phase.eq(3)]
                with m.Case(3):
                    m.d.sync += [crc.eq(crc_next), length[8:].eq(byte), count.eq(0),
                                 phase.eq(Mux((length[:8] == 0) & (byte == 0), 5, 4))]
                with m.Case(4):
                    m.d.sync += [crc.eq(crc_next), count.eq(count + 1)]
                    with m.If(count + 1 == length):
                        m.d.sync += phase.eq(5)
                with m.Case(5):
                    m.d.sync += [crc_lo.eq(byte), phase.eq(6)]
                with m.Case(6):
                    m.d.sync += [good.eq((crc_lo == crc[:8]) & (byte == crc[8:])), seen.eq(1),
                                 phase.eq(0)]
        with m.Elif(timer == TIMEOUT - 1):
            m.d.sync += phase.eq(0)
        with m.Else():
            m.d.sync += timer.eq(timer + 1)

        ok = seen & good
        crc_w = Assert(~dut.model.w_en | ok, "a weight written from a frame whose CRC failed")
        crc_t = Assert(~dut.model.theta_en | ok,
                       "a threshold written from a frame whose CRC failed")
        m.d.comb += [crc_w, crc_t]
        self.props.update(crc_write=crc_w, crc_theta=crc_t)
        if self.lemmas:
            # The engine's CRC register and verdict are the spec's (BMC assumes each step's
            # assertions in the later steps: these spare the solver the CRC's XOR network).
            m.d.comb += [
                Assert((phase == 0) | (internal["crc"] == crc), "lemma: the running CRC"),
                Assert((phase != 6) | (internal["crc_bad"] == (crc_lo != crc[:8])),
                       "lemma: the first CRC byte's verdict"),
                Assert((phase == 6) | ~seen | (internal["crc_bad"] == ~good),
                       "lemma: the last frame's verdict"),
            ]
        return m


#: Cycles of the CRC BMC: the shortest frame that writes, a LOAD_THETA frame (SYNC, CMD,
#: LEN0, LEN1, 3 payload bytes, CRC0, CRC1) ends in step 8 and writes in step 9 (CHECK).
#: A LOAD_WEIGHTS frame writes in step 19 or later, beyond what the solver reaches in a
#: minute (step 14 takes it three).
CRC_DEPTH = 10


def test_crc_write_bmc():
    spec = ProtocolEngineSpec()
    result = run_sby(spec, "protocol_crc", mode="bmc", depth=CRC_DEPTH)
    assert result.passed, result.summary()


def test_crc_write_mutant_no_crc_check():
    """CHECK ignores ``crc_bad``: a frame with a wrong CRC writes."""
    broken = mutant(ProtocolEngine, "with m.If(v.crc_bad):", "with m.If(0):",
                    method="_check_state")
    spec = ProtocolEngineSpec(broken)
    result = run_sby(spec, "protocol_crc_mutant", mode="bmc", depth=CRC_DEPTH)
    assert result.status == "FAIL", result.summary()
    assert result.failed_at(spec.props["crc_write"], spec.props["crc_theta"]), result.summary()
