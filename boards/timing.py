"""The boards' timing presets: one :class:`~spikegate.hdl.timing.Timing` per board, used alike
by the board top, by synthesis and by simulation (``simulate_hardware(timing=...)``)."""

from spikegate.golden.ttfs_discrete import QUIET_FACTORS_COARSE
from spikegate.hdl.timing import Timing

__all__ = ["ICEBREAKER", "ULX3S", "ULX3S_BANKED", "BOARD_NAMES", "board_timing", "spans_banks"]

#: iCEBreaker (iCE40UP5K) builds: level 5 (the four cuts in the neuron arithmetic, the late
#: weight terms and the quiet-test cut, a register slice on each layer's command stream, a
#: step's start in a cycle of its own and registered head/wake tests in the scheduler), the
#: coarse quiet factors (2, 4, 8: shifts only) and the read-back registered at each layer and
#: in the protocol engine; lanes (2, 1). Logic cells are the UP5K's scarce resource: the
#: digits 64-64-10 network with lanes (3, 1) needs 5399 of the 5280 at level 4 (at level 0
#: it fits, 4866 LCs, but clocks at 16.4 MHz: the one-cycle neuron update is the critical
#: path). The network of ``spikegate synth``'s default: 4515 LCs, 30.56 MHz at nextpnr seed 1
#: (29.65 / 29.87 at seeds 2 / 3). Per-group quiet horizons are off: they do not combine with
#: the quiet-test cut (and at level 0 they needed 5834 LCs). Without the lazy clear and the
#: issue from the fire-mask FIFO's head (issue 22): with both, the digits build's Fmax fell
#: from 31.08 / 29.40 / 30.56 to 28.53 / 27.64 / 29.53 MHz at nextpnr seeds 1-3.
ICEBREAKER = Timing.preset(5, quiet_factors=QUIET_FACTORS_COARSE, rb_register=True,
                           lazy_clear=False, head_issue=False)

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
#: They cost the digits build its clock, so they are off (issue 22): at 2f3ab60 (group wakes
#: on) 55.29 / 55.20 / 56.73 MHz at seeds 1-3, the critical path (33 nets) from layer 0's group
#: wakes through their minimum and the scheduler's jump into its next-step register; with
#: that minimum registered (``cut_wake``, ce439f1) 69.60 / 65.66 / 66.34 MHz, the path from
#: the step through a compare into the neuron-state memory; without group wakes (with the
#: lazy clear and the FIFO-head issue) 82.43 / 78.48 / 76.93 MHz.
ULX3S = Timing.preset(4, quiet_factors=QUIET_FACTORS_COARSE, rb_register=True)

#: ULX3S builds of networks whose weights spread over many block RAMs (the MNIST builds; see
#: :func:`board_timing`): :data:`ULX3S` with registered weight banks of 4096 words, each bank
#: 4-bit memories side by side (the DP16KD's 4096 x 4 shape), as the PD build's
#: (:data:`~spikegate.boards.synth.PD_WEIGHT_BANKS`, issue 20). The DP16KD's 5.8 ns
#: clock-to-out and the ~7 ns of routing from the blocks spread over the die to the lanes are
#: separate paths; one cycle more per layer pass, and the weight read-back comes two cycles
#: later (:attr:`~spikegate.hdl.timing.Timing.rb_latency` 4). Without per-group quiet
#: horizons: with them (57 groups in layer 0 of 784-456-10 at 8 lanes) the MNIST board top
#: at d671641 reached 32.2 MHz at nextpnr seed 1, its critical path (31 ns) from layer 0's
#: group wakes through a chain of comparators and the scheduler's jump into the lookup's
#: command register; they save about 10 % of the cycles (scans) on MNIST. With a register
#: between the fire compare and the neuron-state write (``cut_before_write``, issue 22): at
#: 8d93801 the critical path (14.3 ns) was layer 0's ``prod >= acc_wz`` into the state block
#: RAM's write data (seed 2: into the fire-mask FIFO); the write and the fire masks now come
#: from a register, for +0.5 cycles per MNIST image (5825.9 -> 5826.4, first 20 test images).
#: The critical path then (16.6 ns at nextpnr seed 1, 46a091a) went from the scheduler's input
#: head through its wake test and decisions into layer 0's lookup command registers: a
#: register slice on each layer's command stream (``command_slice``) separates them, for
#: +12.4 cycles per image (5826.4 -> 5838.8).
ULX3S_BANKED = ULX3S.replace(weight_out_register=True, weight_bank_depth=4096,
                             weight_bank_width=4, cut_before_write=True, command_slice=True,
                             lazy_clear=False, head_issue=False)

#: The boards :func:`board_timing` knows.
BOARD_NAMES = ("icebreaker", "ulx3s")


def spans_banks(sizes, lanes, bank_depth):
    """Whether a weight memory of the network ``sizes`` at ``lanes`` (an int or one per
    weight layer) is deeper than ``bank_depth`` words (``n_src * ceil(n_dst / lanes)``,
    :class:`~spikegate.hdl.lookup.WeightLookup`)."""
    from .fit import _memories
    n_w = len(sizes) - 1
    if not isinstance(lanes, int) and len(lanes) != n_w:
        raise ValueError(f"lanes must be an integer or {n_w} of them, not {lanes!r}")
    return any(depth > bank_depth for depth, _ in _memories(sizes, lanes))


def board_timing(board, sizes=None, lanes=None):
    """The :class:`~spikegate.hdl.timing.Timing` of ``board`` (``"icebreaker"`` or
    ``"ulx3s"``, or a name starting with one of them, e.g. ``"ulx3s-85F"``).

    With the network's ``sizes`` and ``lanes`` (both or neither), the ULX3S gives
    :data:`ULX3S_BANKED` when a weight memory is deeper than one of its banks (the MNIST
    networks: 784-456-10 at lanes 8 is 44,688 words in layer 0), else :data:`ULX3S` (the
    digits 64-64-10: 512 words)."""
    if (sizes is None) != (lanes is None):
        raise ValueError(f"board_timing needs both sizes and lanes or neither, not "
                         f"sizes={sizes!r}, lanes={lanes!r}")
    for name, timing in (("icebreaker", ICEBREAKER), ("ulx3s", ULX3S)):
        if isinstance(board, str) and board.startswith(name):
            if (name == "ulx3s" and sizes is not None
                    and spans_banks(sizes, lanes, ULX3S_BANKED.weight_bank_depth)):
                return ULX3S_BANKED
            return timing
    raise ValueError(f"board must be one of {', '.join(BOARD_NAMES)}, not {board!r}")
