"""The ULX3S board: ECP5 (25F, 45F or 85F), 25 MHz oscillator, UART over its FTDI.

:class:`ULX3SDesign` wraps a board top (default :class:`spikegate.boards.top.BoardTop`): an
``EHXPLLL`` makes the ``sync`` clock from the 25 MHz pin when a faster clock is asked for, the
``sync`` reset is held until the PLL has locked, and the FTDI UART's ``rx``/``tx`` pins are
wired to the top's ``rx``/``tx`` (the board's ``uart_tx_enable`` is driven high).
"""

from amaranth.hdl import ClockDomain, ClockSignal, Elaboratable, Instance, Module, Mux, ResetSignal, Signal
from amaranth.lib import io

from spikegate.hdl.params import checking

from .fit import DEVICES, check_fit
from .top import default_top

__all__ = ["ULX3SDesign", "ecp5_pll", "OSC_HZ", "DEFAULT_CLK_HZ", "DEFAULT_LANES", "VARIANTS",
           "platform"]

#: The board's oscillator (pin G2).
OSC_HZ = 25_000_000
#: The ``sync`` clock by default: the ECP5 Fmax target.
DEFAULT_CLK_HZ = 80_000_000
#: Lanes per weight layer of the digits 64-64-10 network by variant (two MULT18X18D per
#: lane: the 25F has 28, the 45F 72, the 85F 156).
DEFAULT_LANES = {"25F": (8, 4), "45F": 8, "85F": 8}
#: Variant -> ECP5 device.
VARIANTS = {"25F": "LFE5U-25F", "45F": "LFE5U-45F", "85F": "LFE5U-85F"}
#: Largest relative error of the PLL's output accepted.
PLL_TOLERANCE = 0.01


def ecp5_pll(f_in_hz, f_out_hz):
    """Parameters of an ECP5 ``EHXPLLL`` (feedback from CLKOP) for ``f_out_hz``.

    The search of ``ecppll``: ``f_pfd = f_in / CLKI_DIV`` in 3.125..400 MHz, ``f_out = f_pfd *
    CLKFB_DIV`` in 3.125..400 MHz, ``f_vco = f_out * CLKOP_DIV`` in 400..800 MHz; the
    closest output wins, then the VCO nearest 600 MHz.

    Returns
    -------
    dict
        ``CLKI_DIV``, ``CLKFB_DIV``, ``CLKOP_DIV``, ``f_vco_hz`` and ``f_out_hz`` (achieved).

    Raises
    ------
    ValueError
        If no setting lands within :data:`PLL_TOLERANCE` of ``f_out_hz``.
    """
    if not 3.125e6 <= f_out_hz <= 400e6:
        raise ValueError(f"ECP5 PLL output must be 3.125 to 400 MHz, not {f_out_hz / 1e6:g} MHz")
    best = None
    for clki in range(1, 129):
        f_pfd = f_in_hz / clki
        if not 3.125e6 <= f_pfd <= 400e6:
            continue
        for clkfb in range(1, 81):
            f = f_pfd * clkfb
            if not 3.125e6 <= f <= 400e6:
                continue
            for clkop in range(1, 129):
                f_vco = f * clkop
                if not 400e6 <= f_vco <= 800e6:
                    continue
                key = (abs(f - f_out_hz), abs(f_vco - 600e6))
                if best is None or key < best[0]:
                    best = (key, f, clki, clkfb, clkop, f_vco)
    if best is None or abs(best[1] - f_out_hz) > PLL_TOLERANCE * f_out_hz:
        got = "none" if best is None else f"{best[1] / 1e6:.3f} MHz"
        raise ValueError(f"no ECP5 PLL setting makes {f_out_hz / 1e6:g} MHz from "
                         f"{f_in_hz / 1e6:g} MHz within {PLL_TOLERANCE:.0%} (closest: {got})")
    _, f, clki, clkfb, clkop, f_vco = best
    return {"CLKI_DIV": clki, "CLKFB_DIV": clkfb, "CLKOP_DIV": clkop, "f_vco_hz": f_vco,
            "f_out_hz": f}


def platform(variant="85F"):
    """A fresh amaranth-boards ULX3S platform of ``variant`` (``"25F"``, ``"45F"``, ``"85F"``),
    buildable without ``openFPGALoader`` (only programming needs it)."""
    if variant not in VARIANTS:
        raise ValueError(f"ULX3S variant must be one of {', '.join(VARIANTS)}, not {variant!r}")
    import amaranth_boards.ulx3s as u
    base = getattr(u, f"ULX3S_{variant}_Platform")

    class Platform(base):
        # openFPGALoader is needed to program the board, not to build the bitstream.
        @property
        def required_tools(self):
            return [t for t in super().required_tools if t != "openFPGALoader"]

    Platform.__name__ = Platform.__qualname__ = base.__name__
    return Platform()


class ULX3SDesign(Elaboratable):
    """A board top on the ULX3S.

    Parameters
    ----------
    net : DiscreteNetwork
        The network; must fit the variant's ECP5 (checked before building).
    lanes : int or sequence of int, optional
        Lanes per weight layer (default :data:`DEFAULT_LANES`).
    variant : str
        ``"25F"``, ``"45F"`` or ``"85F"``.
    clk_freq_hz : int, optional
        The ``sync`` clock: :data:`OSC_HZ` uses the oscillator directly, anything else goes
        through the PLL (default :data:`DEFAULT_CLK_HZ`).
    make_top : callable, optional
        ``make_top(net, lanes, clk_freq_hz=...)`` returns the Component with ``rx: In(1)``,
        ``tx: Out(1)`` (default :class:`spikegate.boards.top.BoardTop`).

    Raises
    ------
    ResourceError
        The weights or multipliers alone exceed the device.
    ValueError
        Unknown variant, or no PLL setting reaches ``clk_freq_hz``.
    """

    board = "ulx3s"

    def __init__(self, net, lanes=None, *, variant="85F", clk_freq_hz=DEFAULT_CLK_HZ,
                 make_top=None, binary_input=False):
        with checking(self):     # a refused design is not reported as unused
            if variant not in VARIANTS:
                raise ValueError(f"ULX3S variant must be one of {', '.join(VARIANTS)}, not {variant!r}")
            if not isinstance(binary_input, bool):
                raise TypeError(f"binary_input must be a bool, not {binary_input!r}")
            self.variant = variant
            self.device = DEVICES[VARIANTS[variant]]
            if lanes is None:
                lanes = DEFAULT_LANES[variant] if len(net.sizes) == 3 else 4
            check_fit(net.sizes, lanes, self.device, binary_input=binary_input)
            if clk_freq_hz == OSC_HZ:
                self.pll = None
                self.clk_freq_hz = float(OSC_HZ)
            else:
                self.pll = ecp5_pll(OSC_HZ, clk_freq_hz)
                self.clk_freq_hz = self.pll["f_out_hz"]
        self.net, self.lanes = net, lanes
        self.top = (make_top or default_top)(net, lanes, clk_freq_hz=int(round(self.clk_freq_hz)),
                                             **({"binary_input": True} if binary_input else {}))

    def platform(self):
        return platform(self.variant)

    def elaborate(self, platform):
        m = Module()
        m.domains.sync = ClockDomain("sync")
        clk_io = platform.request("clk25", dir="-")
        m.submodules.clk_buf = clk_buf = io.Buffer("i", clk_io)
        locked = Signal()
        clk = Signal()
        m.d.comb += ClockSignal("sync").eq(clk)
        if self.pll is None:
            m.d.comb += [clk.eq(clk_buf.i), locked.eq(1)]
        else:
            p = self.pll
            m.submodules.pll = Instance(
                "EHXPLLL",
                a_FREQUENCY_PIN_CLKI=f"{OSC_HZ / 1e6:g}",
                a_FREQUENCY_PIN_CLKOP=f"{p['f_out_hz'] / 1e6:.6g}",
                a_ICP_CURRENT="12", a_LPF_RESISTOR="8",
                a_MFG_ENABLE_FILTEROPAMP="1", a_MFG_GMCREF_SEL="2",
                p_PLLRST_ENA="DISABLED", p_INTFB_WAKE="DISABLED", p_STDBY_ENABLE="DISABLED",
                p_DPHASE_SOURCE="DISABLED", p_OUTDIVIDER_MUXA="DIVA",
                p_CLKOP_ENABLE="ENABLED", p_FEEDBK_PATH="CLKOP",
                p_CLKI_DIV=p["CLKI_DIV"], p_CLKFB_DIV=p["CLKFB_DIV"],
                p_CLKOP_DIV=p["CLKOP_DIV"], p_CLKOP_CPHASE=p["CLKOP_DIV"] - 1, p_CLKOP_FPHASE=0,
                i_RST=0, i_STDBY=0, i_CLKI=clk_buf.i, i_CLKFB=clk,
                i_PHASESEL0=0, i_PHASESEL1=0, i_PHASEDIR=1, i_PHASESTEP=1, i_PHASELOADREG=1,
                i_PLLWAKESYNC=0, i_ENCLKOP=0,
                o_CLKOP=clk, o_LOCK=locked)
        # nextpnr derives the PLL output's constraint from the 25 MHz pin's (the platform's
        # Clock resource) and the divider parameters.
        # Reset: held until the PLL is locked, released through a two-stage synchronizer.
        m.domains.por = ClockDomain("por", reset_less=True, local=True)
        m.d.comb += ClockSignal("por").eq(clk)
        sync_rst = Signal(2, init=0b11)
        m.d.por += sync_rst.eq(Mux(locked, sync_rst >> 1, 0b11))
        m.d.comb += ResetSignal("sync").eq(sync_rst[0])

        m.submodules.top = self.top
        uart = platform.request("uart", 0, dir="-")
        m.submodules.uart_rx = rx_buf = io.Buffer("i", uart.rx)
        m.submodules.uart_tx = tx_buf = io.Buffer("o", uart.tx)
        m.d.comb += [self.top.rx.eq(rx_buf.i), tx_buf.o.eq(self.top.tx)]
        if hasattr(self.top, "leds"):
            for i in range(len(self.top.leds)):
                m.submodules[f"led{i}"] = led = io.Buffer("o", platform.request("led", i, dir="-"))
                m.d.comb += led.o.eq(self.top.leds[i])
        m.submodules.uart_tx_en = tx_en = io.Buffer("o", platform.request("uart_tx_enable", 0, dir="-"))
        m.d.comb += tx_en.o.eq(1)
        return m
