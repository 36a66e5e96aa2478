# amaranth: UnusedElaboratable=no
"""The UART's streams, proven with SBY. UARTRx, whatever arrives on ``rx`` and whatever the
back-pressure: its byte stream obeys the stream rules, and a byte is dropped (``overrun``)
only while the previous one waits. UARTTx, whatever bytes arrive when: each byte it takes
goes out on ``tx`` as one 8N1 frame starting the next cycle, and it takes no byte during a
frame (none lost). Each mutation below makes its proof fail."""

import pytest
from amaranth.asserts import AnySeq
from amaranth.hdl import Assert, Assume, Cat, Const, Elaboratable, Module, Signal

from spikegate.hdl.uart import UARTRx, UARTTx
from spikegate.sim.formal import mutant, run_sby, stream_rules, transferred

pytestmark = pytest.mark.formal

# The shortest bit period the blocks accept: the proofs' depths grow with it.
DIVISOR = 4


class UARTRxSpec(Elaboratable):
    """``contract``: the output stream rules, and ``overrun`` only while ``o_stream`` holds
    a byte that is not taken this cycle."""

    def __init__(self, *, dut_class=UARTRx):
        self.dut_class = dut_class
        self.contract = {}

    def elaborate(self, platform):
        m = Module()
        m.submodules.dut = dut = self.dut_class(DIVISOR)
        o = dut.o_stream
        m.d.comb += [dut.rx.eq(AnySeq(1)), o.ready.eq(AnySeq(1))]
        valid_held, payload_held = stream_rules(m, o, Assert, name="o")
        self.contract = {
            "valid_held": valid_held, "payload_held": payload_held,
            "overrun": Assert(~dut.overrun | (o.valid & ~o.ready),
                              "a byte dropped while the output was free"),
        }
        m.d.comb += self.contract["overrun"]
        return m


def test_uart_rx_proof(tmp_path):
    result = run_sby(UARTRxSpec(), "uart_rx", mode="prove", depth=2, build_dir=tmp_path)
    assert result.passed, result.summary()


# The first byte is offered about 9.5 bit periods after reset at the earliest (start bit
# seen through the synchronizer, half a bit, 8 data bits, stop bit): BMC past that.
RX_MUTANT_DEPTH = 10 * DIVISOR + 4


def test_uart_rx_proof_catches_valid_dropped(tmp_path):
    # The byte is withdrawn after one cycle whether or not it was taken.
    drop = "m.d.sync += self.o_stream.valid.eq(0)"
    dut_class = mutant(UARTRx, f"with m.If(self.o_stream.ready):\n        {drop}",
                       f"with m.If(1):\n        {drop}")
    spec = UARTRxSpec(dut_class=dut_class)
    result = run_sby(spec, "uart_rx_valid_dropped", mode="bmc", depth=RX_MUTANT_DEPTH,
                     build_dir=tmp_path)
    assert result.status == "FAIL", result.summary()
    assert result.failed_at(spec.contract["valid_held"]), result.summary()


class UARTTxSpec(Elaboratable):
    """The reference: the cycles since the last byte taken (``c``, from 1 in the cycle after
    the transfer) and that byte. ``contract``: ``tx`` is the frame's bit for ``c`` (start 0
    in cycles ``1 .. d``, data bit ``k`` LSB first in ``(k + 1) * d + 1 .. (k + 2) * d``,
    stop 1 in ``9 * d + 1 .. 10 * d``) and 1 (idle) once the frame is over, and
    ``i_stream.ready`` is high exactly when no frame is going out (``c > 10 * d``)."""

    def __init__(self, *, dut_class=UARTTx):
        self.dut_class = dut_class
        self.contract = {}

    def elaborate(self, platform):
        m = Module()
        d = DIVISOR
        m.submodules.dut = dut = self.dut_class(d)
        i = dut.i_stream
        m.d.comb += [i.payload.eq(AnySeq(8)), i.valid.eq(AnySeq(1))]
        stream_rules(m, i, Assume, name="i")

        frame = 10 * d
        c = Signal(range(frame + 2), init=frame + 1)
        byte = Signal(8)
        with m.If(transferred(i)):
            m.d.sync += [c.eq(1), byte.eq(i.payload)]
        with m.Elif(c <= frame):
            m.d.sync += c.eq(c + 1)
        bits = Cat(Const(0, 1), byte, Const(1, 1))
        expected = Signal(init=1)
        for k in range(10):
            with m.If((c > k * d) & (c <= (k + 1) * d)):
                m.d.comb += expected.eq(bits[k])
        self.contract = {
            "tx": Assert(dut.tx == expected, "tx is not the frame's bit"),
            "ready": Assert(i.ready == (c > frame), "ready during a frame, or idle and not ready"),
        }
        m.d.comb += list(self.contract.values())
        return m


# A frame is 10 * DIVISOR + 1 cycles from the transfer to ready again; any k-cycle window
# of a run that long already shows a wrong state of the transmitter.
TX_PROOF_DEPTH = 10 * DIVISOR + 1


def test_uart_tx_proof(tmp_path):
    result = run_sby(UARTTxSpec(), "uart_tx", mode="prove", depth=TX_PROOF_DEPTH,
                     build_dir=tmp_path)
    assert result.passed, result.summary()


# mutation: (old, new, the contract's property a counterexample breaks)
UART_TX_MUTATIONS = {
    # Ready during a frame: a byte taken then is lost.
    "ready_while_busy": ("self.i_stream.ready.eq(~busy)", "self.i_stream.ready.eq(1)",
                         "ready"),
    # No stop bit: the line stays at the last data bit.
    "no_stop_bit": ("shift.eq(self.i_stream.payload | (1 << 8))",
                    "shift.eq(self.i_stream.payload)", "tx"),
}


@pytest.mark.parametrize("mutation", sorted(UART_TX_MUTATIONS))
def test_uart_tx_proof_catches(mutation, tmp_path):
    old, new, breaks = UART_TX_MUTATIONS[mutation]
    spec = UARTTxSpec(dut_class=mutant(UARTTx, old, new))
    result = run_sby(spec, f"uart_tx_{mutation}", mode="bmc", depth=TX_PROOF_DEPTH + 1,
                     build_dir=tmp_path)
    assert result.status == "FAIL", result.summary()
    assert result.failed_at(spec.contract[breaks]), result.summary()
