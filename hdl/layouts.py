"""Stream payload layouts, defined once and shared by the gateware, the test benches and the
host side (through ``.const()`` / ``.from_bits()``)."""

from amaranth.hdl import unsigned
from amaranth.lib import data

from spikegate.golden.fixed import unsigned_bits

__all__ = ["index_bits", "SpikeEventLayout", "RowCommandLayout", "FireMaskLayout",
           "ClassifierResultLayout", "RESULT_COUNT_BITS"]

RESULT_COUNT_BITS = 32


def index_bits(n):
    """Width of an index into ``n`` things (at least 1)."""
    if n < 1:
        raise ValueError(f"need at least one item, not {n!r}")
    return unsigned_bits(n - 1)


class SpikeEventLayout(data.StructLayout):
    """One input spike, or the end-of-image marker.

    Members
    -------
    index : unsigned(index_bits(n_inputs))
        The neuron that spiked.
    step : unsigned(step_bits)
        The timestep of the spike. Events of one image arrive in non-decreasing step order.
    end : 1
        1 marks the end of the image (``index`` and ``step`` are ignored); every image ends
        with exactly one such beat, an image with no spikes is just that beat.
    """
    def __init__(self, n_inputs, step_bits):
        super().__init__({"index": unsigned(index_bits(n_inputs)), "step": unsigned(step_bits),
                          "end": unsigned(1)})


class RowCommandLayout(data.StructLayout):
    """A request to the sparse weight-lookup datapath: walk the row of ``src``.

    ``op`` is the user's op code, of shape ``op_shape`` (an enum of the layer that uses the
    datapath, e.g. :class:`~spikegate.hdl.ttfs_layer.TTFSOp`); the datapath does not
    interpret it beyond the sets of ops it is told read weights, count lookups or walk
    masked. ``tag`` travels with the row's beats untouched (the TTFS layer passes the
    source's spike step for learning)."""
    def __init__(self, n_src, op_shape, tag_bits=1):
        super().__init__({"src": unsigned(index_bits(n_src)), "op": op_shape,
                          "tag": unsigned(tag_bits)})


class FireMaskLayout(data.StructLayout):
    """The neurons of one lane group that fired in the current step."""
    def __init__(self, n_groups, lanes):
        super().__init__({"group": unsigned(index_bits(n_groups)), "mask": unsigned(lanes)})


class ClassifierResultLayout(data.StructLayout):
    """The result of one image.

    Members
    -------
    decided : 1
        0 when no output neuron fired by the last step (``klass`` is then 0).
    klass : unsigned(index_bits(n_outputs))
        The lowest-indexed output neuron among the first to fire.
    decision_step : unsigned(step_bits)
        The step of the decision (``timesteps`` when none).
    error : 1
        An input event was out of range or out of order; it was dropped.
    cycles : unsigned(32)
        Clock cycles from the image's first beat to the result.
    spikes : array of unsigned(32), one per neuron layer (input first)
        Spikes processed up to the decision.
    lookups : array of unsigned(32), one per weight layer
        Weights read.
    scan_cycles : unsigned(32)
        Cycles spent in scan passes (fire checks without input), all layers added up.
    label_error : 1
        A training image's label was out of range: it was refused, no weight changed.
    learn_cycles : unsigned(32)
        Cycles of the learning phase (0 when the image was not learned).
    """
    def __init__(self, sizes, step_bits):
        n_layers = len(sizes)
        super().__init__({
            "decided": unsigned(1),
            "klass": unsigned(index_bits(sizes[-1])),
            "decision_step": unsigned(step_bits),
            "error": unsigned(1),
            "cycles": unsigned(RESULT_COUNT_BITS),
            "spikes": data.ArrayLayout(unsigned(RESULT_COUNT_BITS), n_layers),
            "lookups": data.ArrayLayout(unsigned(RESULT_COUNT_BITS), n_layers - 1),
            "scan_cycles": unsigned(RESULT_COUNT_BITS),
            "label_error": unsigned(1),
            "learn_cycles": unsigned(RESULT_COUNT_BITS),
        })
