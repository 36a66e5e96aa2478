"""The board top: UART pins in and out, the protocol engine, the TTFS classifier.

Board wrappers (iCEBreaker, ULX3S) create the ``sync`` clock domain (PLL or oscillator) and
connect ``platform.request("uart")`` to ``rx`` / ``tx``; this Component is the same on every
board and is what the cocotb tests drive through its pins.
"""

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikegate.golden.ttfs_discrete import DiscreteNetwork
from spikegate.hdl.classifier import TTFSClassifier
from spikegate.hdl.params import checking
from spikegate.hdl.protocol import ProtocolEngine
from spikegate.hdl.protocol_spec import DEFAULT_BAUD, FRAME_TIMEOUT_MS, MAX_CHUNK
from spikegate.hdl.timing import Timing
from spikegate.hdl.uart import UARTRx, UARTTx, uart_divisor
from .timing import ULX3S

__all__ = ["BoardTop", "connect_classifier", "default_top"]


class BoardTop(wiring.Component):
    """A TTFS classifier behind the UART protocol of :mod:`spikegate.hdl.protocol_spec`.

    Parameters
    ----------
    net : DiscreteNetwork
        The network the bitstream is built for: its shape and time grid are fixed, its
        weights and thresholds are the initial contents (LOAD_WEIGHTS / LOAD_THETA replace
        them at run time).
    lanes : int or sequence of int
        Lanes per weight layer (see :class:`~spikegate.hdl.classifier.TTFSClassifier`).
    clk_freq_hz : int
        Frequency of the ``sync`` domain.
    baud : int
        UART baud rate (default :data:`~spikegate.hdl.protocol_spec.DEFAULT_BAUD`, 1 Mbaud);
        ``clk_freq_hz / baud`` must be at least 4 and its rounding off by at most 2 %.
    learning : bool
        Build the classifier with the on-chip learning unit (TRAIN command).
    timeout_cycles : int, optional
        Frame timeout in cycles (default :data:`~spikegate.hdl.protocol_spec.FRAME_TIMEOUT_MS`).
    max_chunk : int
        Largest weight chunk of LOAD_WEIGHTS / READ_WEIGHTS.
    buffer_bytes : int, optional
        The protocol engine's payload buffer (see
        :class:`~spikegate.hdl.protocol.ProtocolEngine`; default the least it needs).
    timing : Timing
        Register cuts and options of the classifier and the protocol engine (default
        :data:`spikegate.boards.timing.ULX3S`; the iCEBreaker's is
        :data:`spikegate.boards.timing.ICEBREAKER`).

    Members
    -------
    rx : In(1)
        UART receive pin (idle high).
    tx : Out(1)
        UART transmit pin.
    leds : Out(2)
        ``leds[0]``: a request is being carried out; ``leds[1]``: the last reply was an error.
    """

    rx: In(1, init=1)
    tx: Out(1, init=1)
    leds: Out(2)

    def __init__(self, net, lanes, *, clk_freq_hz, baud=DEFAULT_BAUD, learning=False,
                 timeout_cycles=None, max_chunk=MAX_CHUNK, timing=ULX3S, buffer_bytes=None,
                 binary_input=False):
        with checking(self):
            if not isinstance(net, DiscreteNetwork):
                raise TypeError(f"net must be a DiscreteNetwork, not {net!r}")
            if not isinstance(clk_freq_hz, int) or clk_freq_hz <= 0:
                raise ValueError(f"clk_freq_hz must be a positive integer, not {clk_freq_hz!r}")
            self._divisor = uart_divisor(clk_freq_hz, baud)
            if timeout_cycles is None:
                timeout_cycles = clk_freq_hz * FRAME_TIMEOUT_MS // 1000
            if not isinstance(timing, Timing):
                raise TypeError(f"timing must be a Timing, not {timing!r}")
            # The engine first: its checks fail before any other part is built.
            n_w = len(net.sizes) - 1
            lanes_t = (lanes,) * n_w if isinstance(lanes, int) else tuple(lanes)
            self.engine = ProtocolEngine(
                net.sizes, lanes_t, net.config, clk_freq_hz=clk_freq_hz,
                timeout_cycles=timeout_cycles, learning=learning, max_chunk=max_chunk,
                timing=timing, buffer_bytes=buffer_bytes)
            try:
                self.classifier = TTFSClassifier(net.sizes, net.thetas, lanes, net.config,
                                                 net.weights, learning=learning, timing=timing,
                                                 binary_input=binary_input)
            except (TypeError, ValueError):
                self.engine._MustUse__silence = True    # not an unused design: an error
                raise
        self._net = net
        self._clk = clk_freq_hz
        self._baud = baud
        super().__init__()

    @property
    def divisor(self):
        """Clock cycles per UART bit."""
        return self._divisor

    @property
    def info(self):
        """What IDENTIFY reports (:class:`~spikegate.hdl.protocol_spec.DeviceInfo`)."""
        return self.engine.info

    def elaborate(self, platform):
        m = Module()
        m.submodules.uart_rx = urx = UARTRx(self._divisor)
        m.submodules.uart_tx = utx = UARTTx(self._divisor)
        m.submodules.engine = eng = self.engine
        m.submodules.classifier = clf = self.classifier
        m.d.comb += [urx.rx.eq(self.rx), self.tx.eq(utx.tx),
                     self.leds.eq(eng.busy | (eng.error << 1))]
        wiring.connect(m, urx.o_stream, eng.i_stream)
        wiring.connect(m, eng.o_stream, utx.i_stream)
        connect_classifier(m, eng, clf)
        return m


def connect_classifier(m, engine, classifier):
    """Connect a :class:`~spikegate.hdl.protocol.ProtocolEngine` to a
    :class:`~spikegate.hdl.classifier.TTFSClassifier` in module ``m``: events, results, the
    model port and (with learning) the learning control."""
    wiring.connect(m, engine.ev_stream, classifier.i_stream)
    wiring.connect(m, classifier.o_stream, engine.res_stream)
    wiring.connect(m, engine.model, classifier.model)
    if classifier.learning:
        wiring.connect(m, engine.learn, classifier.learn)


def default_top(net, lanes, *, clk_freq_hz, **options):
    """The board top the board wrappers build when given no other: :class:`BoardTop`
    (``options``: its keyword arguments, e.g. ``timing``)."""
    return BoardTop(net, lanes, clk_freq_hz=clk_freq_hz, **options)
