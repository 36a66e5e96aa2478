"""Stream payloads of the LIF layers of sparse spiking gradient descent
(:mod:`spikegate.hdl.lif_layer`, :mod:`spikegate.hdl.ssgd_network`), defined once and shared by
the gateware and the test benches (through ``.const()`` / ``.from_bits()``)."""

from amaranth.hdl import signed, unsigned
from amaranth.lib import data

from .layouts import RESULT_COUNT_BITS, index_bits

__all__ = ["LIFEventLayout", "LIFActiveLayout", "SSGDResultLayout"]


class LIFEventLayout(data.StructLayout):
    """A spike of one of ``n`` neurons in the current timestep, or the step's end marker.

    One timestep is its spikes (any order, each neuron at most once) followed by exactly one
    marker; a step without spikes is just its marker.

    Members
    -------
    index : unsigned(index_bits(n))
        The neuron that spiked (ignored on a marker).
    last : 1
        1 marks the end of the step (no spike).
    """
    def __init__(self, n):
        super().__init__({"index": unsigned(index_bits(n)), "last": unsigned(1)})


class LIFActiveLayout(data.StructLayout):
    """An active entry (:func:`~spikegate.golden.ssgd_fixed.is_active`): neuron ``index`` at
    timestep ``step`` with surrogate value ``g`` (:func:`~spikegate.golden.ssgd_fixed.surrogate_lookup`,
    unsigned ``g_bits``, ``g_frac`` fractional).

    Members
    -------
    index : unsigned(index_bits(n))
    step : unsigned(step_bits)
    g : unsigned(g_bits)
    """
    def __init__(self, n, step_bits, g_bits):
        super().__init__({"index": unsigned(index_bits(n)), "step": unsigned(step_bits),
                          "g": unsigned(g_bits)})


class SSGDResultLayout(data.StructLayout):
    """The result of one image of an SSGD network (a hidden LIF layer and a readout).

    Members
    -------
    klass : unsigned(index_bits(n_classes))
        ``argmax`` of the logits (lowest index on ties).
    z : array of signed(z_bits), one per class
        The logits ``z = sum_t O[t]`` (:func:`~spikegate.golden.ssgd_train_fixed.readout_forward_fixed`).
    cycles : unsigned(32)
        Clock cycles from the transfer of the image's first beat to the cycle the result is
        valid (counting the first, not the last).
    in_spikes : unsigned(32)
        Input spikes (events) of the image.
    spikes : unsigned(32)
        Hidden spikes over the steps ``1 .. T-1``.
    active : unsigned(32)
        Hidden active entries (events on ``a_stream``).
    lookups : array of unsigned(32), one per weight layer
        Weights read.
    """
    def __init__(self, n_classes, z_bits, n_layers=2):
        super().__init__({
            "klass": unsigned(index_bits(n_classes)),
            "z": data.ArrayLayout(signed(z_bits), n_classes),
            "cycles": unsigned(RESULT_COUNT_BITS),
            "in_spikes": unsigned(RESULT_COUNT_BITS),
            "spikes": unsigned(RESULT_COUNT_BITS),
            "active": unsigned(RESULT_COUNT_BITS),
            "lookups": data.ArrayLayout(unsigned(RESULT_COUNT_BITS), n_layers),
        })
