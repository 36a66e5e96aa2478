"""The boards' timing presets: one :class:`~spikegate.hdl.timing.Timing` per board, used alike
by the board top, by synthesis and by simulation (``simulate_hardware(timing=...)``)."""

from spikegate.golden.ttfs_discrete import QUIET_FACTORS_COARSE
from spikegate.hdl.timing import Timing

__all__ = ["ICEBREAKER", "ULX3S", "BOARD_NAMES", "board_timing"]

#: iCEBreaker (iCE40UP5K) builds: level 5 (the four cuts in the neuron arithmetic, the late
#: weight terms and the quiet-test cut, a register slice on each layer's command stream, a
#: step's start in a cycle of its own and registered head/wake tests in the scheduler), the
#: coarse quiet factors (2, 4, 8: shifts only) and the read-back registered at each layer and
#: in the protocol engine; lanes (2, 1). Logic cells are the UP5K's scarce resource: the
#: digits 64-64-10 network with lanes (3, 1) needs 5399 of the 5280 at level 4 (at level 0
#: it fits, 4866 LCs, but clocks at 16.4 MHz: the one-cycle neuron update is the critical
#: path). The network of ``spikegate synth``'s default: 4515 LCs, 30.56 MHz at nextpnr seed 1
#: (29.65 / 29.87 at seeds 2 / 3). Per-group quiet horizons are off: they do not combine with
#: the quiet-test cut (and at level 0 they needed 5834 LCs).
ICEBREAKER = Timing.preset(5, quiet_factors=QUIET_FACTORS_COARSE, rb_register=True)

#: ULX3S (ECP5) builds: level 4 with the coarse quiet factors and the read-back registered.
#: 85F, lanes 8, digits network: 78.8 / 82.3 / 78.8 MHz at nextpnr seeds 1 / 2 / 3 (57.6 MHz
#: at level 3 on older code), for about 3.5 % more cycles per classification; the coarse
#: factors clocked at 57.8 MHz against 43.0 MHz with the fine set (level 3, older code), for
#: about 10 % more cycles. The critical path: layer 0's ``z`` fanning out to the MULT18s.
#: Per-group quiet horizons (behind the quiet-test cut, issue 22): scans visit only the groups
#: that are due. MNIST 784-500-10 at 8 lanes (63 groups in layer 0), first 30 test images,
#: Verilator = golden: scan cycles per image 787 -> 65, cycles 6673 -> 6005 (1.17x -> 1.05x
#: the lookup bound of 5707). The ECP5 has the logic: a wake register and a comparator per
#: group.
ULX3S = Timing.preset(4, quiet_factors=QUIET_FACTORS_COARSE, rb_register=True, group_wake=True)

#: The boards :func:`board_timing` knows.
BOARD_NAMES = ("icebreaker", "ulx3s")


def board_timing(board):
    """The :class:`~spikegate.hdl.timing.Timing` of ``board`` (``"icebreaker"`` or
    ``"ulx3s"``, or a name starting with one of them, e.g. ``"ulx3s-85F"``)."""
    for name, timing in (("icebreaker", ICEBREAKER), ("ulx3s", ULX3S)):
        if isinstance(board, str) and board.startswith(name):
            return timing
    raise ValueError(f"board must be one of {', '.join(BOARD_NAMES)}, not {board!r}")
