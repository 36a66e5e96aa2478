"""The SGD update of the hidden weights on chip (step 9 of
:mod:`spikegate.golden.ssgd_train_fixed`): ``W1[i, j] = sat8(W1[i, j] - ((G1[i, j] + d) >>
lr1_shift))``, ``d`` the dither of the image counter
(:func:`~spikegate.golden.ssgd_train_fixed.dither`), for every gradient entry the backward engine
(:class:`~spikegate.hdl.ssgd_backward.SSGDGradient`) sends, through the weight memory's
:class:`~spikegate.hdl.signatures.WeightPort`.

The weights stay where the forward reads them, row-major by source (word ``i G + j / lanes``
of the :class:`~spikegate.hdl.lookup.WeightLookup`); a column ``j`` is ``n_in`` strided
read-modify-writes, pipelined one per cycle: the read-back of entry ``k`` is issued as it is
taken, ``rb_data`` registered the cycle after, its write the cycle after that, while the
read-backs of entries ``k + 1`` and ``k + 2`` go out (different weights: an image's entries
are distinct weights, so no write is ever read back by a later entry). Only columns of neurons
with events are visited (the others have ``G1 = 0``: no change). Latency 3 cycles (the write
is on the port 2 cycles after the entry's transfer), throughput one weight per cycle;
``i_stream`` is always ready.
"""

from amaranth.hdl import Cat, Const, Module, Signal, signed
from amaranth.lib import stream, wiring
from amaranth.lib.wiring import In, Out

from spikegate.golden.fixed import WEIGHT_BITS
from spikegate.golden.ssgd_train_fixed import TrainFormat
from .layouts import index_bits
from .params import checking
from .saturate import saturate
from .signatures import WeightPort
from .ssgd_backward import GradientLayout

__all__ = ["SSGDUpdate", "weight_step", "sgd_step", "apply_step", "dither"]


def dither(image, shift, bits):
    """:func:`~spikegate.golden.ssgd_train_fixed.dither`: the bit reversal of the low ``bits``
    bits of the image counter ``image``, aligned to ``shift`` bits (``2**(shift - 1)``, round
    half up, when ``bits`` is 0). Wiring and a constant shift: no logic."""
    if bits == 0:
        return Const((1 << shift) >> 1, max(shift, 1))
    r = Cat(*(image[bits - 1 - k] for k in range(bits)))
    return r << (shift - bits) if shift >= bits else r >> (bits - shift)


def weight_step(w, g1, d, shift):
    """``sat8(w - ((g1 + d) >> shift))``: :func:`~spikegate.golden.ssgd_train_fixed.sgd_update`
    for one weight with the dither ``d`` (a flooring shift, then saturation to the weight's 8
    bits): :func:`apply_step` of :func:`sgd_step`."""
    return apply_step(w, sgd_step(g1, d, shift))


def sgd_step(g1, d, shift):
    """``(g1 + d) >> shift``: the amount a weight moves (flooring)."""
    return (g1 + d) >> shift


def apply_step(w, step):
    """``sat8(w - step)``."""
    return saturate(w - step, signed(WEIGHT_BITS))


class SSGDUpdate(wiring.Component):
    """Apply gradient entries to ``W1`` (``n_in x H``).

    Parameters
    ----------
    n_in, H : int
    tfmt : TrainFormat
        ``grad_bits``, ``lr1_shift`` and ``dither_bits``.

    Members
    -------
    i_stream : In(stream)
        :class:`~spikegate.hdl.ssgd_backward.GradientLayout` entries ``G1[index, neuron]``.
    image : In(unsigned(max(dither_bits, 1)))
        Images trained since the weights were loaded (the dither's counter), steady while
        entries come.
    weights : Out(WeightPort)
        To the hidden layer's weight memory (read back, then written); only while the layer
        is not walking rows.
    busy : Out
        An entry is in flight (its read-back or its write).
    reading : Out
        An entry's read-back is in flight: ``busy`` but for the last write, which is on the
        port in the first cycle ``reading`` is low (a user may take the port back the next).
    """

    def __init__(self, n_in, H, tfmt=None):
        tfmt = TrainFormat() if tfmt is None else tfmt
        with checking(self):
            if not isinstance(tfmt, TrainFormat):
                raise TypeError(f"tfmt must be a ssgd_train_fixed.TrainFormat, not {tfmt!r}")
        self._n_in, self._H, self._tfmt = int(n_in), int(H), tfmt
        super().__init__({
            "i_stream": In(stream.Signature(GradientLayout(n_in, H, tfmt.grad_bits))),
            "image": In(max(tfmt.dither_bits, 1)),
            "weights": Out(WeightPort(n_in, H)),
            "busy": Out(1),
            "reading": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        s, port = self.i_stream, self.weights
        b_valid = Signal()
        b_i = Signal(index_bits(self._n_in))
        b_j = Signal(index_bits(self._H))
        # The step (G1 + d) >> lr1_shift is registered with the entry; the write is the
        # read-back minus it, saturated (the gradient's and the weight's block RAM outputs each
        # before one adder).
        tf = self._tfmt
        b_step = Signal(signed(tf.grad_bits + 1 - min(tf.lr1_shift, tf.grad_bits)))
        take = Signal()
        m.d.comb += [s.ready.eq(1), take.eq(s.valid),
                     port.rb_en.eq(take), port.rb_src.eq(s.payload.index),
                     port.rb_dst.eq(s.payload.neuron)]
        m.d.sync += [b_valid.eq(take), b_i.eq(s.payload.index), b_j.eq(s.payload.neuron),
                     b_step.eq(sgd_step(s.payload.g1, dither(self.image, tf.lr1_shift,
                                                             tf.dither_bits), tf.lr1_shift))]
        # The read-back registered (the block RAM's clock-to-out straight into a register),
        # then the write: the old weight minus the step, saturated.
        c_valid = Signal()
        c_i, c_j = Signal.like(b_i), Signal.like(b_j)
        c_step = Signal.like(b_step)
        c_old = Signal.like(port.rb_data)
        m.d.sync += [c_valid.eq(b_valid), c_i.eq(b_i), c_j.eq(b_j), c_step.eq(b_step),
                     c_old.eq(port.rb_data)]
        m.d.comb += [port.w_en.eq(c_valid), port.w_src.eq(c_i), port.w_dst.eq(c_j),
                     port.w_data.eq(apply_step(c_old, c_step)),
                     self.busy.eq(b_valid | c_valid), self.reading.eq(b_valid)]
        return m
