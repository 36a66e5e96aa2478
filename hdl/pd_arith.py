"""The fixed-point steps of a PD layer in hardware, one function per step of
:mod:`spikegate.golden.sigma_delta_fixed` (same names without the ``_fx``) and
:func:`spikegate.golden.pdnn_fixed.activate_fx`, with the same widths, rounding and saturation.

Each function adds combinational logic to a module and returns the result (named signals where
a waveform reader wants them). Products by the format's constants are shifts and adds in
canonical signed digits (:func:`csd`), summed as a balanced tree: no multiplier. Every
intermediate is as wide as its value can be, so only the named saturations clip; a saturation
(:func:`clip`) is :func:`spikegate.hdl.saturate.saturate` for signed values, built from a test
of the bits above the result's width (no comparator).

**Pipelining.** :func:`encode`, :func:`quantize`, :func:`decode` and :func:`activate` take an
optional ``cut``: a function that registers the values it is given (one pipeline stage) and
returns the registers. Each step calls it a fixed number of times (:data:`ENCODE_CUTS`,
:data:`QUANTIZE_CUTS`, :data:`DECODE_CUTS`, :data:`ACTIVATE_CUTS`), with every value still
needed, so its result comes that many cycles after its operands; ``cut=None`` (the default)
builds the step combinationally. Where an operand enters a pipelined step is stated per
function (``phi`` of :func:`quantize` and ``b`` of :func:`activate` are used only after the
step's first cut, so a memory read may be issued one stage later). The result is the same
integer either way.
"""

from amaranth.hdl import Cat, Const, Mux, Signal, Value, signed

from .arith import times_const

__all__ = ["round_shift", "times", "csd", "clip", "encode", "quantize", "accumulate", "decode",
           "activate", "wrap_increment", "ENCODE_CUTS", "QUANTIZE_CUTS", "DECODE_CUTS",
           "ACTIVATE_CUTS"]

#: Pipeline stages of each step with a ``cut`` (see the module's docstring).
ENCODE_CUTS = 4
QUANTIZE_CUTS = 1
DECODE_CUTS = 3
ACTIVATE_CUTS = 1


def round_shift(value, n):
    """``floor(value / 2**n + 1/2)`` for ``n > 0`` (add half, then Amaranth's flooring signed
    ``>>``: :func:`spikegate.golden.fixed.round_shift`); ``value`` for ``n == 0``; the exact
    ``value << -n`` for ``n < 0`` (as ``sigma_delta_fixed``'s shifts)."""
    value = Value.cast(value)
    if n > 0:
        return (value + (1 << (n - 1))) >> n
    if n == 0:
        return value
    return value << -n


def times(value, c):
    """``value * c`` for a constant ``c >= 0``, as shifts and adds."""
    if c < 0:
        raise ValueError(f"c must be >= 0, not {c!r}")
    return Const(0, 1) if c == 0 else times_const(Value.cast(value), int(c))


def csd(c):
    """The canonical signed digits of an integer ``c >= 0``: ``[(sign, shift), ...]`` with
    ``c = sum(sign << shift)``, no two adjacent (at most ``ceil((bits + 1) / 2)`` terms)."""
    if c < 0:
        raise ValueError(f"c must be >= 0, not {c!r}")
    digits, k = [], 0
    while c:
        if c & 1:
            d = 2 - (c & 3)            # +1 when c = 1 (mod 4), -1 when c = 3 (mod 4)
            digits.append((d, k))
            c -= d
        c >>= 1
        k += 1
    return digits


def clip(value, width):
    """A signed ``value`` saturated to ``signed(width)``: ``saturate(value, signed(width))``,
    with the range test done on the bits above ``width`` (all equal to the sign: in range)."""
    v = Value.cast(value)
    if not v.shape().signed:
        raise TypeError(f"clip needs a signed value, not {v.shape()!r}")
    if len(v) <= width:
        return Cat(v, v[-1].replicate(width - len(v))).as_signed()
    top = v[width - 1:]
    fits = top.all() | ~top.any()
    lo, hi = -(1 << width - 1), (1 << width - 1) - 1
    return Mux(fits, v[:width].as_signed(),
               Mux(v[-1], Const(lo, signed(width)), Const(hi, signed(width))))


def _named(m, value, name):
    s = Signal(Value.cast(value).shape(), name=name)
    m.d.comb += s.eq(value)
    return s


def _cut(cut, values):
    """``values`` (a list) through one pipeline stage (unchanged without ``cut``)."""
    return list(values) if cut is None else list(cut(*values))


def _terms(value, c, sign=1):
    """``sign * value * c`` as signed terms ``(sign, value << shift)``."""
    value = Value.cast(value)
    return [(sign * d, value << k) for d, k in csd(c)]


def _level(terms):
    """One level of a balanced adder tree over signed terms ``(sign, value)``: pairs added or
    subtracted (no negation but at the root)."""
    terms = sorted(terms, key=lambda t: -t[0])          # positive terms first
    out = []
    for i in range(0, len(terms) - 1, 2):
        (sa, a), (sb, b) = terms[i], terms[i + 1]
        out.append((sa, a + b if sa == sb else a - b))
    if len(terms) % 2:
        out.append(terms[-1])
    return out


def _levels(n):
    """Levels of a balanced tree over ``n`` terms."""
    return max(n - 1, 0).bit_length()


def _sum_trees(lists, cut, cuts):
    """The sums of several lists of signed terms, built level by level as balanced trees whose
    levels are spread over ``cuts`` pipeline stages (cut after each; fewer levels in the earlier
    stages); returns one value per list."""
    depth = max(_levels(len(t)) for t in lists)
    per = [depth // cuts + (1 if i >= cuts - depth % cuts else 0) for i in range(cuts)] \
        if cuts else [depth]
    lists = [list(t) for t in lists]
    for stage, n_levels in enumerate(per):
        for _ in range(n_levels):
            lists = [_level(t) if len(t) > 1 else t for t in lists]
        if cut is not None and stage < cuts:
            flat = [v for t in lists for _, v in t]
            regs = iter(cut(*flat))
            lists = [[(s, next(regs)) for s, _ in t] for t in lists]
    out = []
    for t in lists:
        (s, v), = t
        out.append(v if s > 0 else -v)
    return out


def _round_terms(terms, n):
    """``terms`` plus the rounding half of a later ``round_shift(., n)``."""
    return terms + [(1, Const(1 << n - 1))] if n > 0 else terms


def _shift(value, n):
    """The shift of ``round_shift(., n)`` whose half was added already: ``>> n`` (floors) or
    ``<< -n``."""
    return value >> n if n >= 0 else value << -n


def encode(m, x, x_prev, fmt, name="enc", cut=None):
    """:func:`~spikegate.golden.sigma_delta_fixed.encode_fx`: ``a`` (``A_W`` bits) from ``x``
    and ``x_prev`` (``X_W`` bits): ``d = (x << KA_F) - KA x_prev`` exact, ``a =
    saturate(round_shift(d G, X_F + KA_F + G_F - P_F), A_W)``.

    Built as ``x (G << KA_F) - x_prev (KA G)`` plus the rounding half, one tree of terms
    (the same integer as ``d G``), its levels spread over :data:`ENCODE_CUTS` stages; ``a``
    comes out of the last stage."""
    shift = fmt.x_frac + fmt.ka_frac + fmt.gain_frac - fmt.phi_frac
    terms = _terms(x, fmt.gain << fmt.ka_frac) + _terms(x_prev, fmt.ka * fmt.gain, -1)
    dg, = _sum_trees([_round_terms(terms, shift)], cut, ENCODE_CUTS if cut else 0)
    return _named(m, clip(_shift(dg, shift), fmt.a_width), f"{name}_a")


def quantize(m, a, phi, fmt, name="q", cut=None):
    """:func:`~spikegate.golden.sigma_delta_fixed.quantize_fx`: returns ``(s, phi_new)``:
    ``p = phi + a``; ``s = saturate(round_shift(p, P_F), S_W)``; ``phi_new = saturate(p - (s <<
    P_F), PHI_W)``.

    Built as ``p_h = phi + (a + half)`` (then ``s`` is ``p_h >> P_F`` saturated) and, with a
    ``cut`` after ``p_h`` (:data:`QUANTIZE_CUTS`): where ``s`` does not saturate ``p - (s <<
    P_F)`` is ``(p_h mod 2**P_F) - half``, where it does ``p_h - half - (s << P_F)`` with ``s``
    a constant. ``phi`` enters with ``a`` (it is added before the cut)."""
    P = fmt.phi_frac
    half = (1 << P - 1) if P > 0 else 0
    a_h = Value.cast(a) + half if half else Value.cast(a)
    p_h = _named(m, Value.cast(phi) + a_h, f"{name}_ph")
    if cut is not None:
        p_h, = _cut(cut, [p_h])
    lo, hi = -(1 << fmt.spike_width - 1), (1 << fmt.spike_width - 1) - 1
    q = p_h >> P
    s = _named(m, clip(q, fmt.spike_width), f"{name}_s")
    top = q[fmt.spike_width - 1:] if len(q) >= fmt.spike_width else None
    if top is None:
        over = under = Const(0)
    else:
        fits = top.all() | ~top.any()
        over, under = ~fits & ~q[-1], ~fits & q[-1]
    mid = (Value.cast(p_h)[:P] ^ half).as_signed() if P > 0 else Const(0, signed(1))
    phi_hi = clip(p_h - (half + (hi << P)), fmt.phi_width)
    phi_lo = clip(p_h - (half + (lo << P)), fmt.phi_width)
    phi_new = Mux(over, phi_hi, Mux(under, phi_lo, clip(mid, fmt.phi_width)))
    return s, _named(m, phi_new, f"{name}_phi")


def accumulate(u, w, subtract, fmt):
    """One row addition of :func:`~spikegate.golden.sigma_delta_fixed.accumulate_fx` for one
    lane: ``saturate(u - w if subtract else u + w, ACC_W)``."""
    u, w = Value.cast(u), Value.cast(w)
    # u - w = u + ~w + 1: one adder, the subtraction's 1 as its carry-in.
    return clip(u + Mux(subtract, ~w, w) + subtract, fmt.acc_width)


def decode(m, u, y_prev, fmt, name="dec", cut=None):
    """:func:`~spikegate.golden.sigma_delta_fixed.decode_fx`: ``y = saturate(round_shift(KA
    y_prev, KA_F) + round_shift(KB u, KB_F + W_F - Y_F), Y_W)``.

    The two products (each with its rounding half) are trees of terms whose levels are spread
    over :data:`DECODE_CUTS` stages; the sum and its saturation come out of the last."""
    sh = fmt.kb_frac + fmt.w_frac - fmt.y_frac
    decay_t = _round_terms(_terms(y_prev, fmt.ka), fmt.ka_frac) if fmt.ka else []
    spikes_t = _round_terms(_terms(u, fmt.kb), sh)
    lists = [decay_t or [(1, Const(0, 1))], spikes_t]
    decay, spikes = _sum_trees(lists, cut, DECODE_CUTS if cut else 0)
    decay = _named(m, _shift(decay, fmt.ka_frac) if fmt.ka else decay, f"{name}_decay")
    spikes = _named(m, _shift(spikes, sh), f"{name}_in")
    return _named(m, clip(decay + spikes, fmt.y_width), f"{name}_y")


def activate(m, y, b, fmt, next_fmt, name="act", cut=None):
    """:func:`~spikegate.golden.pdnn_fixed.activate_fx`: returns ``(z, act)``: ``z = y + b``
    exact; for a hidden layer ``act = saturate(round_shift(max(z, 0), Y_F - X_F'), X_W')``, for
    the last (``next_fmt`` None) ``act = z``. With a ``cut`` (:data:`ACTIVATE_CUTS`) after
    ``z``: both come out one cycle after ``y`` and ``b``."""
    z = _named(m, Value.cast(y) + b, f"{name}_z")
    if cut is not None:
        z, = _cut(cut, [z])
    if next_fmt is None:
        return z, z
    relu = Mux(z[-1], 0, z)
    act = clip(round_shift(relu, fmt.y_frac - next_fmt.x_frac), next_fmt.x_width)
    return z, _named(m, act, f"{name}_x")


def wrap_increment(counter, n):
    """``counter + 1``, wrapping to 0 after ``n - 1`` (an index over ``n`` things)."""
    return Mux(counter == n - 1, 0, counter + 1)
