"""The iCEBreaker board: iCE40 UP5K, 12 MHz oscillator, UART over its FTDI.

:class:`ICEBreakerDesign` wraps a board top (default :class:`spikegate.boards.top.BoardTop`):
an ``SB_PLL40_PAD`` makes the ``sync`` clock from the 12 MHz pin when a faster clock is asked
for, a power-on counter holds ``sync`` in reset until the PLL has locked and the block RAMs
are readable (iCE40 BRAMs read as zero for ~3 us after configuration), and the FTDI UART's
``rx``/``tx`` pins are wired to the top's ``rx``/``tx``.

Weights: a weight layer whose memory holds more than half the UP5K's block RAM goes to the
four SPRAMs (128 kB; :func:`spikegate.boards.fit.weight_memory_plan`), the others stay in
block RAM. SPRAM has no initial contents, so a design with SPRAM weights starts with zero
weights in those layers and needs ``spikegate board load MODEL`` (the protocol's
``LOAD_WEIGHTS``) after configuration; block RAM layers start with the model's weights.
Designs with the on-chip learning unit keep every weight in block RAM.
"""

from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Instance, Module, ResetSignal, Signal
from amaranth.lib import io

from spikegate.hdl.params import checking

from .fit import DEVICES, ResourceError, check_fit
from .timing import ICEBREAKER
from .top import default_top

__all__ = ["ICEBreakerDesign", "ice40_pll", "ice40_top", "OSC_HZ",
           "DEFAULT_CLK_HZ", "DEFAULT_LANES", "LANE_CHOICES", "BINARY_LANE_CHOICES",
           "default_lanes",
           "set_weight_memories", "platform"]

def ice40_top(net, lanes, *, clk_freq_hz, **options):
    """The iCEBreaker's board top: :func:`~spikegate.boards.top.default_top` with the
    board's timing, :data:`spikegate.boards.timing.ICEBREAKER` (``options``: more keyword
    arguments, e.g. ``binary_input``)."""
    return default_top(net, lanes, clk_freq_hz=clk_freq_hz, timing=ICEBREAKER, **options)

#: The board's oscillator (pin 35).
OSC_HZ = 12_000_000
#: The ``sync`` clock by default: the Fmax target of the digits network on the UP5K.
DEFAULT_CLK_HZ = 30_000_000
#: Lanes per weight layer of the digits 64-64-10 network: (3, 1) fits the UP5K's 8 DSPs (two
#: multipliers per lane) and 30 block RAMs but, with the register stages of its timing
#: (:data:`spikegate.boards.timing.ICEBREAKER`),
#: not its logic cells; (2, 1) fits (6 DSPs).
DEFAULT_LANES = (2, 1)
#: Lanes tried in order for a two-weight-layer network when none are given: the first that
#: fits (:func:`~spikegate.boards.fit.check_fit`). ``(2, 1)`` also suits the MNIST networks
#: whose first layer is in SPRAM (16-bit words: one SPRAM column), ``(1, 1)`` the last resort.
LANE_CHOICES = (DEFAULT_LANES, (1, 1))
#: Lanes tried first for a network of binary inputs (``binary_input``: layer 0 needs no
#: multiplier): four layer-0 lanes (32-bit words over the SPRAMs, 784-h-10 up to h = 164).
#: Measured (issue 22): 784-160-10 at (4, 1), 5147 of 5280 LCs, 2 DSPs, 29.60 MHz at the best
#: of nextpnr seeds 1-3; (8, 1) needs 6392 LCs.
BINARY_LANE_CHOICES = ((4, 1),) + LANE_CHOICES
#: Largest relative error of the PLL's output accepted (the UART's baud divisor is computed
#: from the achieved frequency, so this only bounds how far from the request we land).
PLL_TOLERANCE = 0.01


def ice40_pll(f_in_hz, f_out_hz):
    """Parameters of an iCE40 ``SB_PLL40`` (SIMPLE feedback) for ``f_out_hz`` from ``f_in_hz``.

    The search of ``icepll``: ``f_pfd = f_in / (DIVR + 1)`` in 10..133 MHz, ``f_vco = f_pfd *
    (DIVF + 1)`` in 533..1066 MHz, ``f_out = f_vco / 2**DIVQ`` (DIVQ 1..6) in 16..275 MHz; the
    closest output wins.

    Returns
    -------
    dict
        ``DIVR``, ``DIVF``, ``DIVQ``, ``FILTER_RANGE`` and ``f_out_hz`` (achieved, float).

    Raises
    ------
    ValueError
        If no setting lands within :data:`PLL_TOLERANCE` of ``f_out_hz``.
    """
    if not 16e6 <= f_out_hz <= 275e6:
        raise ValueError(f"iCE40 PLL output must be 16 to 275 MHz, not {f_out_hz / 1e6:g} MHz")
    best = None
    for divr in range(16):
        f_pfd = f_in_hz / (divr + 1)
        if not 10e6 <= f_pfd <= 133e6:
            continue
        for divf in range(128):
            f_vco = f_pfd * (divf + 1)
            if not 533e6 <= f_vco <= 1066e6:
                continue
            for divq in range(1, 7):
                f = f_vco / (1 << divq)
                if best is None or abs(f - f_out_hz) < abs(best[0] - f_out_hz):
                    best = (f, divr, divf, divq, f_pfd)
    if best is None or abs(best[0] - f_out_hz) > PLL_TOLERANCE * f_out_hz:
        got = "none" if best is None else f"{best[0] / 1e6:.3f} MHz"
        raise ValueError(f"no iCE40 PLL setting makes {f_out_hz / 1e6:g} MHz from "
                         f"{f_in_hz / 1e6:g} MHz within {PLL_TOLERANCE:.0%} (closest: {got})")
    f, divr, divf, divq, f_pfd = best
    filter_range = next(i for i, lim in enumerate((17e6, 26e6, 44e6, 66e6, 101e6, float("inf")),
                                                  start=1) if f_pfd < lim)
    return {"DIVR": divr, "DIVF": divf, "DIVQ": divq, "FILTER_RANGE": filter_range,
            "f_out_hz": f}


def default_lanes(sizes, weight_memory="auto", device="iCE40UP5K", config=None, *,
                  binary_input=False):
    """Lanes for ``sizes`` (time grid ``config``) on the UP5K: the first of
    :data:`LANE_CHOICES` (:data:`BINARY_LANE_CHOICES` with ``binary_input``) that fits for a
    network with two weight layers (the first choice when none does, so that
    :func:`~spikegate.boards.fit.check_fit` names the resource), else 1."""
    if len(sizes) != 3:
        return 1
    for lanes in BINARY_LANE_CHOICES if binary_input else LANE_CHOICES:
        try:
            check_fit(sizes, lanes, device, weight_memory, config=config,
                      binary_input=binary_input)
            return lanes
        except ResourceError:
            pass
    return LANE_CHOICES[0]


def set_weight_memories(top, plan):
    """Set each weight layer's :attr:`~spikegate.hdl.lookup.WeightLookup.weight_memory` of the
    classifier of ``top`` (its ``classifier`` attribute) to ``plan``.

    Raises
    ------
    TypeError
        ``plan`` has SPRAM layers and ``top`` has no ``classifier`` with ``layers``.
    """
    clf = getattr(top, "classifier", None)
    layers = getattr(clf, "layers", None)
    if layers is None:
        if "spram" in plan:
            raise TypeError(f"weights in SPRAM need a top with a TTFS classifier (``classifier``"
                            f" with ``layers``), not {top!r}")
        return
    for layer, kind in zip(layers, plan):
        layer.lookup.weight_memory = kind


def platform():
    """A fresh :class:`amaranth_boards.icebreaker.ICEBreakerPlatform`."""
    from amaranth_boards.icebreaker import ICEBreakerPlatform
    return ICEBreakerPlatform()


class ICEBreakerDesign(Elaboratable):
    """A board top on the iCEBreaker.

    Parameters
    ----------
    net : DiscreteNetwork
        The network; its size must fit the UP5K (checked before building, see
        :func:`spikegate.boards.fit.check_fit`).
    lanes : int or sequence of int, optional
        Lanes per weight layer (default :data:`DEFAULT_LANES`, sized for digits 64-64-10).
    clk_freq_hz : int, optional
        The ``sync`` clock: :data:`OSC_HZ` uses the oscillator directly, anything else goes
        through the PLL (16 to 275 MHz; default :data:`DEFAULT_CLK_HZ`).
    make_top : callable, optional
        ``make_top(net, lanes, clk_freq_hz=...)`` returns the Component with ``rx: In(1)``,
        ``tx: Out(1)`` (default :class:`spikegate.boards.top.BoardTop`).
    weight_memory : {"auto", "ebr", "spram"} or tuple, optional
        Where the weights go (:func:`spikegate.boards.fit.weight_memory_plan`; default
        ``"auto"``: SPRAM for a layer of more than half the block RAM). The plan is in
        :attr:`weight_memories`.

    Raises
    ------
    ResourceError
        The weights or multipliers alone exceed the UP5K.
    ValueError
        No PLL setting reaches ``clk_freq_hz``; SPRAM asked for a top with on-chip learning.
    """

    board = "icebreaker"
    device = DEVICES["iCE40UP5K"]

    def __init__(self, net, lanes=None, *, clk_freq_hz=DEFAULT_CLK_HZ, make_top=None,
                 weight_memory="auto", binary_input=False):
        with checking(self):     # a refused design is not reported as unused
            if not isinstance(binary_input, bool):
                raise TypeError(f"binary_input must be a bool, not {binary_input!r}")
            if lanes is None:
                lanes = default_lanes(net.sizes, weight_memory, self.device, net.config,
                                      binary_input=binary_input)
            plan = check_fit(net.sizes, lanes, self.device, weight_memory, config=net.config,
                             binary_input=binary_input)
            if clk_freq_hz == OSC_HZ:
                self.pll = None
                self.clk_freq_hz = float(OSC_HZ)
            else:
                self.pll = ice40_pll(OSC_HZ, clk_freq_hz)
                self.clk_freq_hz = self.pll["f_out_hz"]
        self.net, self.lanes = net, lanes
        self.top = (make_top or ice40_top)(net, lanes, clk_freq_hz=int(round(self.clk_freq_hz)),
                                           **({"binary_input": True} if binary_input else {}))
        with checking(self):
            if getattr(getattr(self.top, "classifier", None), "learning", False):
                # Learning writes back the word it read: two ports, block RAM only.
                try:
                    plan = check_fit(net.sizes, lanes, self.device, weight_memory,
                                     learning=True, config=net.config)
                except (TypeError, ValueError):
                    self.top._MustUse__silence = True
                    raise
            set_weight_memories(self.top, plan)
        #: ``"ebr"`` / ``"spram"`` per weight layer.
        self.weight_memories = plan

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        clk_io = platform.request("clk12", dir="-")
        locked = Signal()
        clk = Signal()  # the sync clock, named so that it can carry the clock constraint
        m.d.comb += ClockSignal("sync").eq(clk)
        if self.pll is None:
            m.submodules.clk_buf = clk_buf = io.Buffer("i", clk_io)
            m.d.comb += [clk.eq(clk_buf.i), locked.eq(1)]
        else:
            p = self.pll
            m.submodules.pll = Instance(
                "SB_PLL40_PAD",
                p_FEEDBACK_PATH="SIMPLE",
                p_DIVR=p["DIVR"], p_DIVF=p["DIVF"], p_DIVQ=p["DIVQ"],
                p_FILTER_RANGE=p["FILTER_RANGE"],
                i_PACKAGEPIN=clk_io.io,
                i_RESETB=1, i_BYPASS=0,
                o_PLLOUTGLOBAL=clk,
                o_LOCK=locked)
        if self.pll is not None:
            platform.add_clock_constraint(clk, self.clk_freq_hz)
        # Power-on reset: counts on the sync clock once locked, from 0 (the iCE40 loads every
        # flip-flop as 0), and releases the reset 15 us later (BRAMs read 0 for ~3 us).
        m.domains.por = ClockDomain("por", reset_less=True, local=True)
        m.d.comb += ClockSignal("por").eq(clk)
        delay = int(15e-6 * self.clk_freq_hz)
        timer = Signal(range(delay + 1))
        with m.If(~locked):
            m.d.por += timer.eq(0)
        with m.Elif(timer != delay):
            m.d.por += timer.eq(timer + 1)
        m.d.comb += ResetSignal("sync").eq(timer != delay)

        m.submodules.top = self.top
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx_buf = io.Buffer("o", uart.tx)
        m.d.comb += [self.top.rx.eq(rx_buf.i), tx_buf.o.eq(self.top.tx)]
        if hasattr(self.top, "leds"):
            for i in range(len(self.top.leds)):
                m.submodules[f"led{i}"] = led = io.Buffer("o", platform.request("led", i, dir="-"))
                m.d.comb += led.o.eq(self.top.leds[i])
        return m
