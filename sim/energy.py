"""Synaptic operations and an energy-per-inference *estimate* from a simulation's activity
counts. Nothing here is measured on a board: it is a model, written down below, with the
published figures it rests on and the ones that do not exist.

Synaptic operations (:func:`synaptic_ops`)
-------------------------------------------
A TTFS neuron keeps two sums over its causal set, ``A = sum w`` and ``B = sum w z``
(:mod:`spikegate.golden.ttfs`): every weight the hardware reads is one accumulate (AC, into
``A``) and one multiply-accumulate (MAC, ``w z`` into ``B``). The dense equivalent is the
same network without sparsity: every weight of every layer read once, ``sum n_in n_out``
ACs and MACs. A PD layer (:mod:`spikegate.golden.pdnn_fixed`) adds ``s`` times a weight row
per event, one MAC per weight read; its dense equivalent is the MLP's ``sum n_in n_out``.
An SSGD (LIF) layer (:mod:`spikegate.golden.ssgd_train_fixed`) adds the weight row of every
input spike into the membranes: one AC per weight read of the forward, no multiply (the
training's backward is not counted: this is one inference); its dense equivalent is the
MLP's ``sum n_in n_out`` MACs, as for PD.

Energy model (:func:`estimate`)
--------------------------------
``E = N_reads e_read + N_mac e_mac + N_cycles (e_clk + N_LC e_lc) + (P_static + P_pll) t``,
``t = N_cycles / f_clk``, with ``N_cycles`` the classifier's cycles per image (the clock is
never gated), ``N_reads`` the weights read (an upper bound on memory port accesses: a beat
reads ``lanes`` weights from one word), ``N_mac`` the MACs and ``N_LC`` the design's logic
cells (LUTs).

Figures, per board (label: VENDOR = the vendor's data sheet; MEASURED = a third party's
bench measurement; DERIVED = arithmetic on those, E = I V / f; NONE = no published figure:
a value chosen by us, varied over x0.25 .. x4 in the low / high bounds):

=============  ========================================  ======================================
term           iCEBreaker (iCE40 UP5K, 1.2 V)            ULX3S (ECP5 LFE5U-85F, 1.1 V)
=============  ========================================  ======================================
P_static       90 uW: 75 uA x 1.2 V (VENDOR [1] Table    298 mW: 212 mA x 1.1 V + 26 mA x 2.5 V
               4.6, 25 C)                                (VENDOR [3] Table 3.8, at Tj = 85 C:
                                                         an upper bound at room temperature)
P_pll          0.85 mW (DERIVED from MEASURED [2])       0 (NONE: small beside P_static)
e_clk          52 pJ per cycle (DERIVED from MEASURED    44 pJ: the iCE40 figure x (1.1/1.2)^2
               [2]: 42.75 uA/MHz at 1.219 V)             (NONE)
e_lc           0.0144 pJ per LC per cycle (DERIVED from  0.012 pJ (NONE: scaled as e_clk)
               MEASURED [2]; a lower bound: counters)
e_mac          24 pJ per 8x8 multiply on SB_MAC16        20 pJ (NONE: scaled as e_clk)
               (DERIVED from MEASURED [2])
e_read         20 pJ per SPRAM / block-RAM read (NONE)   15 pJ per DP16KD read (NONE)
=============  ========================================  ======================================

[1] Lattice, iCE40 UltraPlus Family Data Sheet, FPGA-DS-02008 v1.9, section 4.10, Table 4.6.
[2] tinyvision.ai, ``ice40_power`` (github.com/tinyvision-ai-inc/ice40_power): UP5K core
    current measured with a Joulescope at 6-48 MHz, counters of 28-228 logic cells, an 8x8
    multiply in LUTs and in SB_MAC16, the PLL at 16-48 MHz.
[3] Lattice, ECP5 and ECP5-5G Family Data Sheet, FPGA-DS-02012 v1.9, Table 3.8.

Lattice publishes no per-operation energy for block RAM, SPRAM, DSP or logic on either device
(only its Power Calculator has them); so every term marked NONE is our choice, and the
estimate's ``low_uj`` / ``high_uj`` take those terms at x0.25 and x4. On the ECP5 the static
power (at 85 C) dominates; on the iCE40 the clock and the reads do.

Published FPGA SNN figures on MNIST, for comparison (each the paper's own number): Spiker+
(Carpegna et al., arXiv:2401.01141): 780 us per image, 180 mW, about 140 uJ per image;
Skydiver (Chen et al., arXiv:2203.07516, XC7Z045, 98.5 %): 42.4 uJ per image; Han et al.
2020 (Tsinghua Sci. Tech. 25(4), 97.06 %): 0.477 W at 161 images/s, about 2.96 mJ per image.
"""

from dataclasses import dataclass

__all__ = ["BoardEnergy", "BOARDS", "estimate", "synaptic_ops"]


@dataclass(frozen=True)
class BoardEnergy:
    """Per-operation energies (pJ) and powers (W) of one board; ``guessed``: the terms with no
    published figure (varied in the bounds)."""
    name: str
    p_static_w: float
    p_pll_w: float
    e_clk_pj: float
    e_lc_pj: float
    e_mac_pj: float
    e_read_pj: float
    guessed: tuple


BOARDS = {
    "icebreaker": BoardEnergy("iCE40 UP5K", p_static_w=90e-6, p_pll_w=0.85e-3, e_clk_pj=52.0,
                              e_lc_pj=0.0144, e_mac_pj=24.0, e_read_pj=20.0,
                              guessed=("read",)),
    "ulx3s": BoardEnergy("ECP5 LFE5U-85F", p_static_w=0.298, p_pll_w=0.0, e_clk_pj=44.0,
                         e_lc_pj=0.012, e_mac_pj=20.0, e_read_pj=15.0,
                         guessed=("read", "clk", "lc", "mac")),
}


def synaptic_ops(sizes, weights_read, *, algorithm="ttfs"):
    """Synaptic operations of one inference: ``weights_read`` (total over the weight layers)
    against the dense network of ``sizes``. Returns a dict: ``ac``, ``mac``, ``dense_ac``,
    ``dense_mac``, ``ratio`` (sparse over dense) and ``memory_reads``."""
    if algorithm not in ("ttfs", "pdnn", "ssgd"):
        raise ValueError(f"algorithm must be 'ttfs', 'pdnn' or 'ssgd', not {algorithm!r}")
    dense = sum(int(a) * int(b) for a, b in zip(sizes[:-1], sizes[1:]))
    reads = float(weights_read)
    if reads < 0:
        raise ValueError(f"weights_read must be >= 0, not {weights_read!r}")
    ac = reads if algorithm in ("ttfs", "ssgd") else 0.0
    mac = 0.0 if algorithm == "ssgd" else reads
    return {"ac": ac, "mac": mac, "dense_ac": float(dense) if algorithm == "ttfs" else 0.0,
            "dense_mac": float(dense), "ratio": reads / dense if dense else 0.0,
            "memory_reads": reads}


def estimate(board, *, cycles, weight_reads, clock_mhz, luts, macs=None):
    """The energy of one inference on ``board`` (``"icebreaker"`` or ``"ulx3s"``) from its
    activity: ``cycles`` at ``clock_mhz``, ``weight_reads``, ``macs`` (default: one per weight
    read, as a TTFS layer) and ``luts`` logic cells. Returns a dict of the terms in uJ,
    ``total_uj`` and the ``low_uj`` / ``high_uj`` bounds (module docstring); every value is an
    estimate, labelled so (``"label"``)."""
    if board not in BOARDS:
        raise ValueError(f"board must be one of {', '.join(BOARDS)}, not {board!r}")
    for name, v in (("cycles", cycles), ("weight_reads", weight_reads), ("luts", luts)):
        if v is None or v < 0:
            raise ValueError(f"{name} must be a number >= 0, not {v!r}")
    if clock_mhz is None or not clock_mhz > 0:
        raise ValueError(f"clock_mhz must be > 0, not {clock_mhz!r}")
    b = BOARDS[board]
    macs = weight_reads if macs is None else macs
    t_s = cycles / (clock_mhz * 1e6)

    def terms(scale):
        k = {g: scale for g in b.guessed}
        return {"reads_uj": weight_reads * b.e_read_pj * k.get("read", 1) * 1e-6,
                "macs_uj": macs * b.e_mac_pj * k.get("mac", 1) * 1e-6,
                "clock_uj": cycles * b.e_clk_pj * k.get("clk", 1) * 1e-6,
                "logic_uj": cycles * luts * b.e_lc_pj * k.get("lc", 1) * 1e-6,
                "static_uj": (b.p_static_w + b.p_pll_w) * t_s * 1e6}

    mid = terms(1.0)
    return {**mid, "total_uj": sum(mid.values()),
            "low_uj": sum(terms(0.25).values()), "high_uj": sum(terms(4.0).values()),
            "label": f"estimate ({b.name}; model and sources: spikegate.sim.energy)"}
