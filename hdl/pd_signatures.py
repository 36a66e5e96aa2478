"""The interfaces of the PD network's Components (:mod:`spikegate.hdl.pd_layer`,
:mod:`spikegate.hdl.pd_classifier`) that :mod:`spikegate.hdl.signatures` does not already
declare, each once, as a ``wiring.Signature``. Weights are loaded through
:class:`~spikegate.hdl.signatures.WeightPort`, rows walked through
:func:`~spikegate.hdl.signatures.row_commands` and :class:`~spikegate.hdl.signatures.Beats`.

========================  ==========================================================
signature                 between
========================  ==========================================================
:class:`PDBiasPort`       the host side and a PD layer: write one bias
:class:`PDTracePort`      a PD layer and an observer (a test bench): every spike event
                          and every decoded neuron, as they happen
========================  ==========================================================

Like those of :mod:`spikegate.hdl.signatures`, each is written from the side that drives
it; they would move there when that module takes the PD network's.
"""

from amaranth.hdl import signed
from amaranth.lib.wiring import Out

from spikegate.golden.sigma_delta_fixed import SDFixedFormat
from .layouts import index_bits
from .signatures import _Keyed

__all__ = ["PDBiasPort", "PDTracePort"]


class PDBiasPort(_Keyed):
    """Write the bias of one of ``n_dst`` neurons (``width`` bits signed, the layer's
    ``y_width``, ``y_frac`` fractional bits). The layer takes it ``In``.

    Members
    -------
    w_en, w_dst, w_data : Out
        Write ``w_data`` to the bias of neuron ``w_dst``; it is used from the next cycle on.
    """

    def __init__(self, n_dst, width):
        self._key = (n_dst, width)
        super().__init__({"w_en": Out(1), "w_dst": Out(index_bits(n_dst)),
                          "w_data": Out(signed(width))})


class PDTracePort(_Keyed):
    """What a PD layer of ``n_src`` inputs and ``n_dst`` neurons computes, as it happens (no
    back-pressure: an observer samples it every cycle). The layer drives it (``Out``).

    Members
    -------
    s_valid, s_index, s_count, s_end : Out
        The encoder emits event ``(s_index, s_count)``; ``s_end`` marks the frame's last
        (``s_count`` is then possibly 0: a marker, no spike). Inputs without a spike emit
        nothing: their count is 0.
    d_valid, d_index, d_u, d_y, d_act : Out
        Neuron ``d_index`` is decoded: the frame's accumulator ``d_u``, the new decoder state
        ``d_y`` and the activation handed on ``d_act`` (``out_bits`` wide).
    """

    def __init__(self, n_src, n_dst, fmt, out_bits):
        if not isinstance(fmt, SDFixedFormat):
            raise TypeError(f"fmt must be an SDFixedFormat, not {fmt!r}")
        self._key = (n_src, n_dst, fmt, out_bits)
        super().__init__({
            "s_valid": Out(1), "s_index": Out(index_bits(n_src)),
            "s_count": Out(signed(fmt.spike_width)), "s_end": Out(1),
            "d_valid": Out(1), "d_index": Out(index_bits(n_dst)),
            "d_u": Out(signed(fmt.acc_width)), "d_y": Out(signed(fmt.y_width)),
            "d_act": Out(signed(out_bits)),
        })
