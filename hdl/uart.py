"""UART receiver and transmitter (8N1, least significant bit first) with byte streams.

The bit period is ``divisor`` clock cycles (:func:`uart_divisor` computes it from the clock
and the baud rate).
"""

from amaranth.hdl import Module, Signal
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from .params import checking

__all__ = ["uart_divisor", "UARTRx", "UARTTx"]


def uart_divisor(clk_freq_hz, baud):
    """Clock cycles per bit: ``round(clk_freq_hz / baud)``.

    Raises
    ------
    ValueError
        If the divisor is below 4, or the baud rate it gives is off by more than 2 %
        (a frame of 10 bits then drifts by more than a fifth of a bit).
    """
    if not isinstance(clk_freq_hz, (int, float)) or not clk_freq_hz > 0:
        raise ValueError(f"clk_freq_hz must be a positive number, not {clk_freq_hz!r}")
    if not isinstance(baud, (int, float)) or not baud > 0:
        raise ValueError(f"baud must be a positive number, not {baud!r}")
    divisor = int(round(clk_freq_hz / baud))
    if divisor < 4:
        raise ValueError(f"a {clk_freq_hz} Hz clock is too slow for {baud} baud "
                         f"(needs at least 4 cycles per bit)")
    err = abs(clk_freq_hz / divisor - baud) / baud
    if err > 0.02:
        raise ValueError(f"{baud} baud from a {clk_freq_hz} Hz clock is off by {err:.1%} "
                         f"(divisor {divisor}); at most 2 % is allowed")
    return divisor


def _check_divisor(divisor):
    if not isinstance(divisor, int) or divisor < 4:
        raise ValueError(f"divisor must be an integer of at least 4, not {divisor!r}")


class UARTRx(wiring.Component):
    """UART receiver: ``rx`` pin in, bytes out.

    The pin passes a two-flip-flop synchronizer. A falling edge starts a frame; the start
    bit is sampled again half a bit later and a frame whose start bit is then high (a
    glitch) is abandoned. Data bits and the stop bit are sampled in the middle of their bit
    periods. A frame whose stop bit is low (framing error, or a break) is dropped, pulses
    ``error``, and the receiver waits for the line to go high before looking for the next
    start bit.

    Latency: the byte is valid 3 cycles after the middle of its stop bit. Throughput: one
    byte per frame. A byte completed while the previous one has not been taken is dropped
    (``overrun`` pulses); the stream's payload never changes before its transfer.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (>= 4).

    Members
    -------
    rx : In(1)
    o_stream : Out(stream.Signature(8))
    error : Out(1)
        One-cycle pulse per framing error.
    overrun : Out(1)
        One-cycle pulse per dropped byte.
    """

    rx: In(1, init=1)
    o_stream: Out(stream.Signature(8))
    error: Out(1)
    overrun: Out(1)

    def __init__(self, divisor):
        with checking(self):
            _check_divisor(divisor)
        self._divisor = divisor
        super().__init__()

    @property
    def divisor(self):
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        meta = Signal(init=1)
        line = Signal(init=1)
        m.d.sync += [meta.eq(self.rx), line.eq(meta)]

        timer = Signal(range(d))
        bits = Signal(range(8))
        shift = Signal(8)

        with m.If(self.o_stream.ready):
            m.d.sync += self.o_stream.valid.eq(0)

        with m.FSM():
            with m.State("IDLE"):
                with m.If(~line):
                    m.d.sync += timer.eq(d // 2 - 1)
                    m.next = "START"
            with m.State("START"):
                with m.If(timer == 0):
                    with m.If(~line):
                        m.d.sync += [timer.eq(d - 1), bits.eq(0)]
                        m.next = "DATA"
                    with m.Else():
                        m.next = "IDLE"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("DATA"):
                with m.If(timer == 0):
                    m.d.sync += [timer.eq(d - 1), shift.eq((shift >> 1) | (line << 7)),
                                 bits.eq(bits + 1)]
                    with m.If(bits == 7):
                        m.next = "STOP"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("STOP"):
                with m.If(timer == 0):
                    with m.If(line):
                        with m.If(self.o_stream.valid & ~self.o_stream.ready):
                            m.d.comb += self.overrun.eq(1)
                        with m.Else():
                            m.d.sync += [self.o_stream.payload.eq(shift),
                                         self.o_stream.valid.eq(1)]
                        m.next = "IDLE"
                    with m.Else():
                        m.d.comb += self.error.eq(1)
                        m.next = "BREAK"
                with m.Else():
                    m.d.sync += timer.eq(timer - 1)
            with m.State("BREAK"):
                with m.If(line):
                    m.next = "IDLE"
        return m


class UARTTx(wiring.Component):
    """UART transmitter: bytes in, ``tx`` pin out (idle high).

    Latency: the start bit begins the cycle after the transfer. Throughput: one byte per
    ``10 * divisor + 1`` cycles (start, 8 data bits, stop); ``i_stream.ready`` is high only
    while the line is idle.

    Parameters
    ----------
    divisor : int
        Clock cycles per bit (>= 4).

    Members
    -------
    i_stream : In(stream.Signature(8))
    tx : Out(1)
    """

    i_stream: In(stream.Signature(8))
    tx: Out(1, init=1)

    def __init__(self, divisor):
        with checking(self):
            _check_divisor(divisor)
        self._divisor = divisor
        super().__init__()

    @property
    def divisor(self):
        return self._divisor

    def elaborate(self, platform):
        m = Module()
        d = self._divisor
        timer = Signal(range(d))
        shift = Signal(9)      # data then stop bit; the start bit is sent from ``tx`` itself
        left = Signal(range(10))
        busy = Signal()
        m.d.comb += self.i_stream.ready.eq(~busy)
        with m.If(~busy):
            with m.If(self.i_stream.valid):
                m.d.sync += [self.tx.eq(0), shift.eq(self.i_stream.payload | (1 << 8)),
                             left.eq(9), timer.eq(d - 1), busy.eq(1)]
        with m.Elif(timer != 0):
            m.d.sync += timer.eq(timer - 1)
        with m.Elif(left != 0):
            m.d.sync += [self.tx.eq(shift[0]), shift.eq(shift >> 1), left.eq(left - 1),
                         timer.eq(d - 1)]
        with m.Else():
            m.d.sync += busy.eq(0)
        return m
