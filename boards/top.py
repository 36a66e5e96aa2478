"""The board top: UART pins in and out, the protocol engine, the TTFS classifier.

Board wrappers (iCEBreaker, ULX3S) create the ``sync`` clock domain (PLL or oscillator) and
connect ``platform.request("uart")`` to ``rx`` / ``tx``; this Component is the same on every
board and is what the cocotb tests drive through its pins.
"""

import inspect

from amaranth.hdl import Module
from amaranth.lib import wiring
from amaranth.lib.wiring import In, Out

from spikegate.golden.ttfs_discrete import QUIET_FACTORS_COARSE, DiscreteNetwork
from spikegate.hdl.classifier import TTFSClassifier
from spikegate.hdl.params import checking
from spikegate.hdl.protocol import ProtocolEngine
from spikegate.hdl.uart import UARTRx, UARTTx, uart_divisor
from .protocol import FRAME_TIMEOUT_MS, MAX_CHUNK

__all__ = ["BoardTop", "BOARD_PIPELINE", "BOARD_QUIET_FACTORS", "BOARD_GROUP_WAKE",
           "connect_classifier", "default_top"]

#: Register stages in the neuron arithmetic of board builds
#: (:class:`~spikegate.hdl.ttfs_layer.TTFSLayer`): clock speed for a few cycles per timestep.
#: 4: ECP5 (85F, lanes 8) 82.3 MHz at nextpnr seed 2, 78.8 at seeds 1 and 3 (77.4-83.1 over
#: seeds and netlist changes; with the weight read-back registered at each layer and in the protocol engine;
#: 57.6 MHz with 3, measured on older code), for about 3.5 % more cycles per classification;
#: the iCEBreaker has its own setting (ICE40_OPTIONS).
BOARD_PIPELINE = 4
#: The scan scheduler's quiet factors of board builds: the coarse set (2, 4, 8), shifts only;
#: on the ECP5 it clocked at 57.8 MHz against 43.0 MHz with the fine set (pipeline 3, older
#: code), for about 10 % more cycles per classification.
BOARD_QUIET_FACTORS = QUIET_FACTORS_COARSE
#: Per-group quiet horizons in board builds (the classifier's ``group_wake``): scans visit only
#: the lane groups that may fire, for fewer cycles per classification and more logic. Off:
#: they do not combine with pipeline 4's quiet-test register yet, and the UP5K lacks the
#: logic cells.
BOARD_GROUP_WAKE = False


class BoardTop(wiring.Component):
    """A TTFS classifier behind the UART protocol of :mod:`spikegate.boards.protocol`.

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
        UART baud rate (default 115200); ``clk_freq_hz / baud`` must be at least 4.
    learning : bool
        Build the classifier with the on-chip learning unit (TRAIN command).
    timeout_cycles : int, optional
        Frame timeout in cycles (default :data:`~spikegate.boards.protocol.FRAME_TIMEOUT_MS`).
    max_chunk : int
        Largest weight chunk of LOAD_WEIGHTS / READ_WEIGHTS.
    pipeline : int
        Register stages in the neuron arithmetic (default :data:`BOARD_PIPELINE`); from 4,
        also two registers on the weight read-back: at each layer of the classifier and into
        the protocol engine (their ``rb_register``).
    quiet_factors : sequence of (n, d)
        The scan scheduler's quiet factors (default :data:`BOARD_QUIET_FACTORS`).
    group_wake : bool
        Per-group quiet horizons (default :data:`BOARD_GROUP_WAKE`).

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

    def __init__(self, net, lanes, *, clk_freq_hz, baud=115200, learning=False,
                 timeout_cycles=None, max_chunk=MAX_CHUNK, pipeline=BOARD_PIPELINE,
                 quiet_factors=BOARD_QUIET_FACTORS, group_wake=BOARD_GROUP_WAKE):
        with checking(self):
            if not isinstance(net, DiscreteNetwork):
                raise TypeError(f"net must be a DiscreteNetwork, not {net!r}")
            if not isinstance(clk_freq_hz, int) or clk_freq_hz <= 0:
                raise ValueError(f"clk_freq_hz must be a positive integer, not {clk_freq_hz!r}")
            self._divisor = uart_divisor(clk_freq_hz, baud)
            if timeout_cycles is None:
                timeout_cycles = clk_freq_hz * FRAME_TIMEOUT_MS // 1000
            rb_register = pipeline >= 4       # the weight read-back registered at each layer
            kwargs = {"pipeline": pipeline, "quiet_factors": quiet_factors,
                      "group_wake": group_wake, "rb_register": rb_register}
            if learning:
                if "learning" not in inspect.signature(TTFSClassifier).parameters:
                    raise ValueError("learning=True needs the classifier's learning unit, which "
                                     "this version of TTFSClassifier does not have")
                kwargs["learning"] = True
            # The engine first: its checks fail before any other part is built.
            n_w = len(net.sizes) - 1
            lanes_t = (lanes,) * n_w if isinstance(lanes, int) else tuple(lanes)
            self.engine = ProtocolEngine(
                net.sizes, lanes_t, net.config, clk_freq_hz=clk_freq_hz,
                timeout_cycles=timeout_cycles, learning=learning, max_chunk=max_chunk,
                rb_register=rb_register, rb_latency=1 + rb_register)
            try:
                self.classifier = TTFSClassifier(net.sizes, net.thetas, lanes, net.config,
                                                 net.weights, **kwargs)
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
        """What IDENTIFY reports (:class:`~spikegate.boards.protocol.DeviceInfo`)."""
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
    :class:`~spikegate.hdl.classifier.TTFSClassifier` in module ``m``."""
    wiring.connect(m, engine.ev_stream, classifier.i_stream)
    wiring.connect(m, classifier.o_stream, engine.res_stream)
    m.d.comb += [
        engine.idle.eq(classifier.idle), engine.rb_data.eq(classifier.rb_data),
        classifier.w_en.eq(engine.w_en), classifier.w_layer.eq(engine.w_layer),
        classifier.w_src.eq(engine.w_src), classifier.w_dst.eq(engine.w_dst),
        classifier.w_data.eq(engine.w_data), classifier.rb_en.eq(engine.rb_en),
        classifier.theta_en.eq(engine.theta_en), classifier.theta_data.eq(engine.theta_data),
    ]
    if getattr(classifier, "learning", False):
        m.d.comb += [classifier.learn_en.eq(engine.learn_en),
                     classifier.learn_label.eq(engine.learn_label),
                     classifier.learn_shift.eq(engine.learn_shift),
                     classifier.learn_k.eq(engine.learn_k),
                     classifier.learn_errors_only.eq(engine.learn_errors_only),
                     # A training run starts from a loaded model: the update LFSR restarts.
                     classifier.lfsr_seed.eq(engine.w_en)]


def default_top(net, lanes, *, clk_freq_hz, **options):
    """The board top the board wrappers build when given no other: :class:`BoardTop`
    (``options``: its keyword arguments, e.g. ``pipeline``)."""
    return BoardTop(net, lanes, clk_freq_hz=clk_freq_hz, **options)
