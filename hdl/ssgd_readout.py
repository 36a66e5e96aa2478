"""The readout's side of the SSGD backward in hardware (steps 5, 6, 8 and 9 of
:mod:`spikegate.golden.ssgd_train_fixed`): the loss gradient ``dlog`` from the logits, ``u =
W2 dlog`` for the hidden layer's events, the readout weight gradient ``G2 = R dlog`` and the
update of ``W2``.

* During the forward, ``R_j = sum_t K[t] s[t, j]`` is accumulated from the hidden layer's trace
  (one read-modify-write per neuron and step, in a memory of ``H`` words).
* On a request (the logits ``z`` and the label): ``k_c = round_shift(z_max - z_c, z_shift)``,
  ``e_c = EXP[k_c]`` (0 past the table; read once for ``S = sum e`` and again for its
  division, not stored), ``p_c = floor((e_c << p_frac) / S)`` by a restoring divider (one
  quotient bit per cycle), ``dlog_c = p_c - (c == label) << p_frac`` (in a memory of ``C``
  words, read with each row's weights).
* Then row by row ``j`` of ``W2`` (by source, as the forward reads it: no transposition), one
  weight per cycle through the readout's :class:`~spikegate.hdl.signatures.WeightPort`: the old
  weight read back is multiplied into ``u_j = sat(round_shift(sum_c W2[j, c] dlog_c, u_shift))``
  and replaced by ``sat8(W2 - ((sat(R_j dlog_c) + d) >> lr2_shift))`` (``R_j = sat(round_shift(
  R_j, r_shift))``; ``d`` the dither of the image counter), so ``u`` sees ``W2`` before the
  update, as the golden model says; ``u_j`` goes out on ``u`` (to
  :class:`~spikegate.hdl.ssgd_backward.SSGDGradient`).

Cycles (``busy`` after the request's transfer): ``C`` (``z_max``, one class per cycle: one
comparator, not a tree of ``C - 1``), ``2 C`` (the table), ``C (e_bits + p_frac + 2)`` (the
divisions, ``e_bits`` the width of ``EXP``), ``H (C + 4)`` (the rows): 1236 for H = 64, C = 10
with the default format (the tests check it).
"""

from types import SimpleNamespace

from amaranth.hdl import Array, Cat, Module, Mux, Signal, signed, unsigned
from amaranth.lib import data, memory, stream, wiring
from amaranth.lib.wiring import In, Out

from spikegate.golden.fixed import unsigned_bits
from spikegate.golden.ssgd_train_fixed import TrainFormat, exp_table, kernel_table
from .layouts import index_bits
from .params import checking
from .saturate import saturate
from .ssgd_backward import block_ram_attrs
from .signatures import LIFTracePort, TableWritePort, WeightPort
from .ssgd_update import dither, weight_step

__all__ = ["SSGDReadoutBackward", "LossRequestLayout"]


class LossRequestLayout(data.StructLayout):
    """The logits ``z`` of an image (signed ``z_bits``, one per class) and its label."""
    def __init__(self, n_classes, z_bits):
        super().__init__({"z": data.ArrayLayout(signed(z_bits), n_classes),
                          "label": unsigned(index_bits(n_classes))})


def _round_shift(value, n):
    return (value + (1 << (n - 1))) >> n if n > 0 else value


class SSGDReadoutBackward(wiring.Component):
    """Loss gradient, ``u``, ``G2`` and the ``W2`` update of a ``H``-``C`` readout.

    Parameters
    ----------
    H, C : int
        Hidden neurons and classes.
    tfmt : TrainFormat

    Members
    -------
    trace : In(LIFTracePort)
        The hidden layer's trace (``R`` is accumulated from its spikes; each image's step 1
        starts it afresh).
    i_stream : In(stream)
        :class:`LossRequestLayout`: start the backward of the image just run forward. Its
        logits ``z`` must hold from the transfer until ``busy`` falls (they are read, not
        copied; the trainer's come from the network's held result).
    image : In
        The images trained since the weights were loaded (the dither's counter).
    weights : Out(WeightPort)
        To the readout layer's weight memory (only while it walks no rows).
    u : Out(TableWritePort)
        ``u_j`` for each ``j``, in order, each the cycle after its row (the last the cycle
        after ``busy`` falls).
    busy : Out
    """

    def __init__(self, H, C, tfmt=None):
        tfmt = TrainFormat() if tfmt is None else tfmt
        with checking(self):
            if not isinstance(tfmt, TrainFormat):
                raise TypeError(f"tfmt must be a ssgd_train_fixed.TrainFormat, not {tfmt!r}")
            for name, v in (("H", H), ("C", C)):
                if not isinstance(v, int) or v < 1:
                    raise ValueError(f"{name} must be a positive integer, not {v!r}")
        self._H, self._C, self._tfmt = H, C, tfmt
        T = tfmt.n_steps
        self._step_bits = unsigned_bits(T - 1)
        K = kernel_table(tfmt)
        self._r_sum_bits = unsigned_bits(int(K.sum()))
        self.k_data = memory.MemoryData(shape=unsigned(tfmt.k_bits), depth=T,
                                        init=[int(v) for v in K])
        E = exp_table(tfmt)
        self._e_bits = unsigned_bits(int(E.max()))
        self.exp_data = memory.MemoryData(shape=unsigned(self._e_bits), depth=tfmt.exp_len,
                                          init=[int(v) for v in E])
        self._dlog_bits = tfmt.p_frac + 2
        #: ``dlog`` of the last request, valid once ``busy`` falls (a memory of ``C`` words).
        self.dlog_data = memory.MemoryData(shape=signed(self._dlog_bits), depth=C, init=[])
        super().__init__({
            "trace": In(LIFTracePort(H, self._step_bits, tfmt.lif)),
            "i_stream": In(stream.Signature(LossRequestLayout(C, tfmt.z_bits))),
            "image": In(max(tfmt.dither_bits, 1)),
            "weights": Out(WeightPort(H, C)),
            "u": Out(TableWritePort(H, signed(tfmt.u_bits))),
            "busy": Out(1),
        })

    def elaborate(self, platform):
        m = Module()
        H = self._H
        blk = block_ram_attrs(platform)
        m.submodules.k_rom = k_rom = memory.Memory(data=self.k_data, attrs=blk)
        m.submodules.exp_rom = exp_rom = memory.Memory(data=self.exp_data, attrs=blk)
        m.submodules.dlog_mem = dlog_mem = memory.Memory(data=self.dlog_data, attrs=blk)
        dlog_wp, dlog_rp = dlog_mem.write_port(), dlog_mem.read_port()
        m.submodules.r_mem = r_mem = memory.Memory(shape=unsigned(self._r_sum_bits), depth=H,
                                                   init=[])
        k_rp, exp_rp = k_rom.read_port(), exp_rom.read_port()
        r_wp, r_rp = r_mem.write_port(), r_mem.read_port()
        m.d.comb += [r_rp.en.eq(0), exp_rp.en.eq(0)]

        self._accumulate_r(m, k_rp, r_rp, r_wp)
        loss = self._loss_registers(m, exp_rp)
        row = self._row_registers()
        req, port = self.i_stream, self.weights
        m.d.comb += [req.ready.eq(~self.busy), port.rb_src.eq(row.rb_j), port.rb_dst.eq(row.rb_col),
                     port.w_src.eq(row.j)]
        with m.FSM(name="readout_bwd"):
            self._loss_states(m, loss, row, exp_rp, dlog_wp)
            self._row_states(m, row, r_rp)
        self._row_datapath(m, row, dlog_rp)
        return m

    def _accumulate_r(self, m, k_rp, r_rp, r_wp):
        """``R`` during the forward: ``R[j] = (step 1 ? 0 : R[j]) + (spike ? K[step] : 0)``."""
        H = self._H
        tr = self.trace
        b_valid, b_first, b_spike = Signal(), Signal(), Signal()
        b_j = Signal(index_bits(H))
        m.d.comb += [k_rp.addr.eq(tr.step), k_rp.en.eq(tr.valid)]
        m.d.sync += [b_valid.eq(tr.valid), b_j.eq(tr.index), b_first.eq(tr.step == 1),
                     b_spike.eq(tr.spike)]
        with m.If(tr.valid):
            m.d.comb += [r_rp.addr.eq(tr.index), r_rp.en.eq(1)]
        m.d.comb += [r_wp.addr.eq(b_j), r_wp.en.eq(b_valid),
                     r_wp.data.eq(Mux(b_first, 0, r_rp.data) + Mux(b_spike, k_rp.data, 0))]

    def _loss_registers(self, m, exp_rp):
        """The loss step's registers (class counter, ``z_max``, ``S``, the divider) and their
        logic outside the state machine; returns them in a namespace."""
        C, tf = self._C, self._tfmt
        # The request: its logits are read where they are (they hold until busy falls), not
        # copied; e_c is not kept either: the division of class c reads EXP[k_c] again.
        req = self.i_stream
        z = Array(req.payload.z[k] for k in range(C))
        label = Signal(index_bits(C))
        S = Signal(unsigned(self._e_bits + unsigned_bits(C)))
        zmax = Signal(signed(tf.z_bits))       # found one class per cycle (ZMAX)
        c = Signal(range(C + 1))
        # z_c = z[c] in a register, loaded with the class c will have: the logit's multiplexer
        # (at c + 1, kept in a register) and k_c's arithmetic are separate paths.
        c_zero, c_inc = Signal(), Signal()          # c goes to 0 / to c + 1
        c_plus = Signal.like(c)
        z_c = Signal(signed(tf.z_bits))
        with m.If(c_zero):
            m.d.sync += [c.eq(0), c_plus.eq(1), z_c.eq(z[0])]
        with m.Elif(c_inc):
            m.d.sync += [c.eq(c_plus), c_plus.eq(c_plus + 1), z_c.eq(z[c_plus])]
        kc = Signal(unsigned(tf.z_bits + 1))
        m.d.comb += kc.eq(_round_shift(zmax - z_c, tf.z_shift))
        in_table = Signal()
        m.d.sync += in_table.eq(kc < tf.exp_len)
        # divider
        n_bits = self._e_bits + tf.p_frac
        num = Signal(n_bits)            # e_c << p_frac, from the EXP read of DIV_START (held)
        m.d.comb += num.eq(Mux(in_table, exp_rp.data, 0) << tf.p_frac)
        rem = Signal(unsigned(S.shape().width + 1))
        quo = Signal(n_bits)
        bit = Signal(range(n_bits + 1))
        div_first, num_bit = Signal(), Signal()
        return SimpleNamespace(label=label, S=S, zmax=zmax, c=c, c_zero=c_zero, c_inc=c_inc,
                               z_c=z_c, kc=kc, in_table=in_table, n_bits=n_bits, num=num,
                               rem=rem, quo=quo, bit=bit, div_first=div_first,
                               num_bit=num_bit)

    def _row_registers(self):
        """The row loop's registers, in a namespace."""
        H, C, tf = self._H, self._C, self._tfmt
        j = Signal(index_bits(H))
        col = Signal(range(C + 1))
        rd_valid = Signal()
        rd_c = Signal(index_bits(C))
        acc = Signal(signed(8 + self._dlog_bits + unsigned_bits(C) + 1))
        r_j = Signal(unsigned(tf.r_bits))
        u_pending = Signal()
        u_j = Signal(index_bits(H))
        q_valid = Signal()          # the read-back's register holds a weight of the row
        # Copies of j and col for the read-back's address alone (few loads, so placed near
        # the weight memory: its address arithmetic and the block RAM's read-first logic
        # follow), counted from themselves so that Yosys keeps them apart.
        rb_j, rb_col = Signal.like(j, name="rb_j"), Signal.like(col, name="rb_col")
        return SimpleNamespace(j=j, col=col, rd_valid=rd_valid, rd_c=rd_c, acc=acc, r_j=r_j,
                               u_pending=u_pending, u_j=u_j, q_valid=q_valid, rb_j=rb_j,
                               rb_col=rb_col)

    def _loss_states(self, m, loss, row, exp_rp, dlog_wp):
        """The states from the request to ``dlog``: ``z_max``, ``S`` and the divisions."""
        C, tf, req = self._C, self._tfmt, self.i_stream
        label, S, zmax, c, c_zero, c_inc, z_c, kc, in_table = (
            loss.label, loss.S, loss.zmax, loss.c, loss.c_zero, loss.c_inc, loss.z_c, loss.kc,
            loss.in_table)
        n_bits, num, rem, quo, bit, div_first, num_bit = (
            loss.n_bits, loss.num, loss.rem, loss.quo, loss.bit, loss.div_first, loss.num_bit)
        j, col = row.j, row.col
        with m.State("IDLE"):
            with m.If(req.valid):
                m.d.sync += [self.busy.eq(1), label.eq(req.payload.label), S.eq(0)]
                m.d.comb += c_zero.eq(1)
                m.next = "ZMAX"
        with m.State("ZMAX"):
            with m.If((c == 0) | (z_c > zmax)):
                m.d.sync += zmax.eq(z_c)
            with m.If(c == C - 1):
                m.d.comb += c_zero.eq(1)
                m.next = "EXP_READ"
            with m.Else():
                m.d.comb += c_inc.eq(1)
        with m.State("EXP_READ"):
            m.d.comb += [exp_rp.addr.eq(kc), exp_rp.en.eq(1)]
            m.next = "EXP_TAKE"
        with m.State("EXP_TAKE"):
            ec = Mux(in_table, exp_rp.data, 0)
            m.d.sync += S.eq(S + ec)
            with m.If(c == C - 1):
                m.d.comb += c_zero.eq(1)
                m.next = "DIV_START"
            with m.Else():
                m.d.comb += c_inc.eq(1)
                m.next = "EXP_READ"
        with m.State("DIV_START"):
            m.d.comb += [exp_rp.addr.eq(kc), exp_rp.en.eq(1)]
            m.d.sync += [rem.eq(0), quo.eq(0), bit.eq(n_bits), div_first.eq(1)]
            m.next = "DIV"
        with m.State("DIV"):
            # num's bit bit - 1: its top bit straight from the table the first cycle, then
            # the one registered the cycle before (no multiplexer before the compare).
            shifted = Signal.like(rem)
            m.d.comb += shifted.eq(_next_remainder(
                rem, Mux(div_first, num[n_bits - 1], num_bit), bit))
            below = (bit - 2)[:max(1, (n_bits - 1).bit_length())]
            m.d.sync += [div_first.eq(0), num_bit.eq(num.bit_select(below, 1))]
            with m.If(bit == 0):
                p = quo
                m.d.comb += [dlog_wp.addr.eq(c), dlog_wp.en.eq(1),
                             dlog_wp.data.eq(p - Mux(c == label, 1 << tf.p_frac, 0))]
                with m.If(c == C - 1):
                    m.d.sync += [j.eq(0), col.eq(0), row.rb_j.eq(0), row.rb_col.eq(0)]
                    m.next = "ROW_R"
                with m.Else():
                    m.d.comb += c_inc.eq(1)
                    m.next = "DIV_START"
            with m.Else():
                with m.If(shifted >= S):
                    m.d.sync += [rem.eq(shifted - S), quo.eq((quo << 1) | 1)]
                with m.Else():
                    m.d.sync += [rem.eq(shifted), quo.eq(quo << 1)]
                m.d.sync += bit.eq(bit - 1)

    def _row_states(self, m, row, r_rp):
        """The row loop's states: ``R_j``, then one weight read-back per cycle, row by row."""
        H, C, tf, port = self._H, self._C, self._tfmt, self.weights
        j, col, rd_valid, acc, r_j, u_pending = (
            row.j, row.col, row.rd_valid, row.acc, row.r_j, row.u_pending)
        with m.State("ROW_R"):
            m.d.comb += [r_rp.addr.eq(j), r_rp.en.eq(1)]
            m.d.sync += [col.eq(0), row.rb_col.eq(0), acc.eq(0)]
            m.next = "ROW_HOLD"
        with m.State("ROW_HOLD"):
            # The row's first read-back goes out here (R_j is there for its G2 the next
            # cycle): the read-back's register before the W2 dlog product costs no cycle.
            m.d.comb += port.rb_en.eq(1)
            m.d.sync += [r_j.eq(saturate(_round_shift(r_rp.data, tf.r_shift),
                                         unsigned(tf.r_bits))), col.eq(1), row.rb_col.eq(1)]
            m.next = "ROW"
        with m.State("ROW"):
            with m.If(col < C):
                m.d.comb += port.rb_en.eq(1)
                m.d.sync += [col.eq(col + 1), row.rb_col.eq(row.rb_col + 1)]
            with m.Elif(~rd_valid & ~row.q_valid):
                m.d.sync += u_pending.eq(1)
                with m.If(j == H - 1):
                    m.d.sync += self.busy.eq(0)
                    m.next = "IDLE"
                with m.Else():
                    m.d.sync += [j.eq(j + 1), row.rb_j.eq(row.rb_j + 1)]
                    m.next = "ROW_R"

    def _row_datapath(self, m, row, dlog_rp):
        """The row loop's pipeline: ``u_j``'s accumulation and output, ``G2`` and the weight
        update written back."""
        C, tf, port = self._C, self._tfmt, self.weights
        j, col, rd_valid, rd_c, acc, r_j, u_pending, u_j = (
            row.j, row.col, row.rd_valid, row.rd_c, row.acc, row.r_j, row.u_pending, row.u_j)
        m.d.sync += [rd_valid.eq(port.rb_en), rd_c.eq(col)]
        # u_j goes out the cycle after its row's end (the last the cycle after busy falls):
        # the row's last product reaches acc in the end cycle.
        with m.If(u_pending):
            m.d.sync += u_pending.eq(0)
            m.d.comb += [self.u.w_en.eq(1), self.u.w_addr.eq(u_j),
                         self.u.w_data.eq(saturate(_round_shift(acc, tf.u_shift),
                                                   signed(tf.u_bits)))]
        with m.If(~u_pending):
            m.d.sync += u_j.eq(j)
        # dlog_c read with the weight (address col), there with it the next cycle.
        d_c = Signal(signed(self._dlog_bits))
        m.d.comb += [dlog_rp.addr.eq(col), dlog_rp.en.eq(port.rb_en), d_c.eq(dlog_rp.data)]
        g2 = Signal(signed(tf.grad_bits))
        m.d.comb += g2.eq(saturate(r_j * d_c, signed(tf.grad_bits)))
        # The read-back W2[j, c] and dlog_c registered (w_old, d_q: the block RAMs' outputs
        # straight into registers), then their product registered, then acc += it (three
        # paths). The row's reads start a cycle early (ROW_HOLD), so its last product still
        # reaches acc in the row's end cycle.
        w_old = Signal.like(port.rb_data)
        d_q = Signal.like(d_c)
        m.d.sync += [row.q_valid.eq(rd_valid), w_old.eq(port.rb_data), d_q.eq(d_c)]
        p_valid = Signal()
        p_r = Signal(signed(8 + self._dlog_bits))
        m.d.sync += [p_valid.eq(row.q_valid), p_r.eq(w_old * d_q)]
        with m.If(p_valid):
            m.d.sync += acc.eq(acc + p_r)
        # The weight's write a cycle after its read-back (G2's multiply, then the update: two
        # paths); the row's last write lands before its end cycle (j unchanged, still busy).
        w_valid = Signal()
        w_c = Signal(index_bits(C))
        g2_r = Signal.like(g2)
        m.d.sync += [w_valid.eq(rd_valid), w_c.eq(rd_c), g2_r.eq(g2)]
        m.d.comb += [port.w_en.eq(w_valid), port.w_dst.eq(w_c),
                     port.w_data.eq(weight_step(w_old, g2_r,
                                                dither(self.image, tf.lr2_shift,
                                                       tf.dither_bits), tf.lr2_shift))]


def _next_remainder(rem, num_bit, bit):
    """``(rem << 1) | num_bit``: the restoring divider's next partial remainder at quotient
    bit ``bit`` (``num_bit`` the numerator's bit ``bit - 1``)."""
    return Cat(num_bit, rem)[:len(rem)]
