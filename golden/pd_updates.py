"""Weight-update rules for PD networks: reconstruction, past, future and STDP.

The true gradient of a layer ``z = x @ W`` at time ``t`` is ``x_t (outer) e_t`` with ``e_t = dL/dz_t``.
A PD network only has the spike trains ``xs`` (``= Q(enc(x))``, shape ``(T, n_in)``) and ``es``
(``= Q(enc(e))``, shape ``(T, n_out)``) and their reconstructions

    ``x_hat_t = rx x_hat_{t-1} + bx xs_t``,  ``e_hat_t = re e_hat_{t-1} + be es_t``

(``rx, bx`` = ``k_alpha, k_beta`` of the forward coder, ``re, be`` those of the backward coder).
The four rules all sum, over an infinite horizon, to ``sum_t x_hat_t (outer) e_hat_t``; they differ
in *when* each part is added (paper, Section 2.5 and Appendix; pdnn ``pdnnet.py``
``PDHerdingLayer._get_past_gradient`` and ``helpers/demo_pd_stdp_equivalence.py``):

* **reconstruction** (pdnn ``grad_calc='recon'``): ``dW_t = x_hat_t (outer) e_hat_t``, dense, every step.
* **past** (pdnn ``matrix_weight_grad_calculator``, ``grad_calc='past_matrix'``, the one of the paper's
  Figure 5): a pair ``(i, j)`` is updated only when ``i`` or ``j`` spikes, adding the
  reconstruction products accumulated since the pair's last update, a geometric series:
  ``dW_ij = (V_ij - x_hat-_i e_hat-_j) / (1 - rx re)``, where ``V_ij`` is ``x_hat_i e_hat_j`` just after
  the pair's last update and ``x_hat-``, ``e_hat-`` are the traces decayed to ``t`` before this
  step's spikes. The tail after the last spike is added by :meth:`PastRule.flush`.
* **future** (pdnn ``future_weight_grad_calculator``): at each spike, add everything the new spike
  will ever contribute, ``dW_t = (x_hat_t e_hat_t - x_hat-_t e_hat-_t) / (1 - rx re)``, which equals
  pdnn's ``(bx be / (1 - rx re)) (xs_t (outer) E_t + rx X_{t-1} (outer) es_t)`` with unscaled traces
  ``X, E`` and scale ``1 / (kp_x kp_e + kp_x kd_e + kd_x kp_e)``. Non-zero only on spiking rows and
  columns.
* **STDP**: all of a pair of spikes' contribution is credited at the post-synaptic (error) spike,
  with a two-sided kernel: ``dW_t = (bx be / (1 - rx re)) (x_bar * kappa)_t (outer) es_t`` with
  ``kappa(d) = rx**d`` for a pre-synaptic spike ``d >= 0`` steps before and ``re**d`` for one ``d > 0``
  steps after (pdnn ``demo_pd_stdp_equivalence``: ``x_conv_kbb * e_spikes / (kp**2 + 2 kp kd)``).
  It looks into the future, so it exists here only as a sequence reference (online it *is* the
  future rule).

All rules need ``rx re < 1`` (``kp > 0`` in one of the coders), otherwise the infinite sums diverge.

Two forms: sequence references (``updates_*``, dense ``(T, n_in, n_out)``, for tests and figures) and
online steppers (:class:`ReconRule`, :class:`PastRule`, :class:`FutureRule`) that the PD network
uses, touching only spiking rows and columns, with explicit per-layer state.
"""

import numpy as np

__all__ = ["RULES", "ONLINE_RULES", "updates_recon", "updates_past", "updates_future",
           "updates_stdp", "cumulative_update", "ReconRule", "PastRule", "FutureRule",
           "make_rule", "add_block"]

RULES = ("recon", "past", "future", "stdp")
ONLINE_RULES = ("recon", "past", "future")


def _check(rx, re, need_decay=True):
    for name, r in (("rx", rx), ("re", re)):
        if not 0.0 <= r <= 1.0:
            raise ValueError(f"{name} (k_alpha) must be in [0, 1], not {r!r}")
    if need_decay and rx * re >= 1.0:
        raise ValueError(f"the past/future/STDP rules need rx * re < 1 (kp > 0), not rx={rx!r}, re={re!r}")


def _trains(xs, es):
    xs = np.asarray(xs, dtype=np.float64)
    es = np.asarray(es, dtype=np.float64)
    if xs.ndim != 2 or es.ndim != 2 or xs.shape[0] != es.shape[0]:
        raise ValueError(f"spike trains must be (T, n_in) and (T, n_out) with the same T, "
                         f"not {xs.shape} and {es.shape}")
    return xs, es


def _traces(s, r, b):
    out = np.empty_like(s)
    h = np.zeros(s.shape[1])
    for t in range(s.shape[0]):
        h = r * h + b * s[t]
        out[t] = h
    return out


def updates_recon(xs, es, rx, bx, re, be):
    """Reconstruction rule: per-step updates ``x_hat_t (outer) e_hat_t``, shape ``(T, n_in, n_out)``."""
    xs, es = _trains(xs, es)
    _check(rx, re, need_decay=False)
    return _traces(xs, rx, bx)[:, :, None] * _traces(es, re, be)[:, None, :]


def updates_past(xs, es, rx, bx, re, be):
    """Past rule: returns ``(dws, tail)``; ``dws`` is ``(T, n_in, n_out)``, ``tail`` the flush."""
    xs, es = _trains(xs, es)
    rule = PastRule(xs.shape[1], es.shape[1], rx, re)
    dws = np.zeros((xs.shape[0], xs.shape[1], es.shape[1]))
    for t in range(xs.shape[0]):
        for rows, cols, block in rule.step(xs[t], es[t], bx, be):
            add_block(dws[t], rows, cols, block)
    return dws, rule.flush()


def updates_future(xs, es, rx, bx, re, be):
    """Future rule: per-step ``(x_hat_t e_hat_t - x_hat-_t e_hat-_t) / (1 - rx re)``."""
    xs, es = _trains(xs, es)
    _check(rx, re)
    xh, eh = _traces(xs, rx, bx), _traces(es, re, be)
    xd = rx * np.concatenate([np.zeros_like(xh[:1]), xh[:-1]])
    ed = re * np.concatenate([np.zeros_like(eh[:1]), eh[:-1]])
    return (xh[:, :, None] * eh[:, None, :] - xd[:, :, None] * ed[:, None, :]) / (1.0 - rx * re)


def updates_stdp(xs, es, rx, bx, re, be):
    """STDP rule (non-causal reference): ``c (x_bar * kappa)_t (outer) es_t``, ``c = bx be / (1 - rx re)``."""
    xs, es = _trains(xs, es)
    _check(rx, re)
    past = _traces(xs, rx, 1.0)                               # sum_{tau <= t} rx**(t-tau) xs_tau
    future = _traces(xs[::-1], re, 1.0)[::-1]                 # sum_{tau >= t} re**(tau-t) xs_tau
    future = re * np.concatenate([future[1:], np.zeros_like(future[:1])])   # tau > t only
    c = bx * be / (1.0 - rx * re)
    return c * (past + future)[:, :, None] * es[:, None, :]


def cumulative_update(rule, xs, es, rx, bx, re, be):
    """The total update of ``rule`` (one of :data:`RULES`) over the trains, shape ``(n_in, n_out)``.

    For ``past`` the tail after the last spike is included (:meth:`PastRule.flush`); for
    ``recon`` the sum stops at ``T`` (pad the trains with quiet steps to approach the limit).
    """
    if rule == "recon":
        return updates_recon(xs, es, rx, bx, re, be).sum(axis=0)
    if rule == "past":
        dws, tail = updates_past(xs, es, rx, bx, re, be)
        return dws.sum(axis=0) + tail
    if rule == "future":
        return updates_future(xs, es, rx, bx, re, be).sum(axis=0)
    if rule == "stdp":
        return updates_stdp(xs, es, rx, bx, re, be).sum(axis=0)
    raise ValueError(f"unknown update rule {rule!r}; expected one of {', '.join(RULES)}")


# ---------------------------------------------------------------------------------------------
# Online steppers: explicit per-layer state, vectorized over the spiking rows / columns
# ---------------------------------------------------------------------------------------------

class _OnlineRule:
    """Shared state: the reconstructions ``xh`` (``n_in``) and ``eh`` (``n_out``)."""

    sparse = True

    def __init__(self, n_in, n_out, rx, re):
        _check(rx, re, need_decay=self.sparse)
        self.n_in, self.n_out, self.rx, self.re = int(n_in), int(n_out), float(rx), float(re)
        self.xh = np.zeros(self.n_in)
        self.eh = np.zeros(self.n_out)

    def _advance(self, xs, es, bx, be):
        xd, ed = self.rx * self.xh, self.re * self.eh
        self.xh = xd + bx * xs
        self.eh = ed + be * es
        return xd, ed

    def step(self, xs, es, bx, be):
        """Advance one step; return the update as a list of ``(rows, cols, block)``."""
        raise NotImplementedError

    @staticmethod
    def op_count(xs, es, n_in, n_out):
        """Additions for this step's update (pdnn ``PDHerdingLayer.backward_pass``, sparse rules)."""
        return int(np.abs(xs).sum()) * n_out + int(np.abs(es).sum()) * n_in


class ReconRule(_OnlineRule):
    """Reconstruction rule, online: dense ``x_hat (outer) e_hat`` every step."""

    sparse = False

    def step(self, xs, es, bx, be):
        self._advance(xs, es, bx, be)
        return [(slice(None), slice(None), np.outer(self.xh, self.eh))]

    @staticmethod
    def op_count(xs, es, n_in, n_out):
        """Dense: ``n_in * n_out`` multiply-adds every step (pdnn counts the same for ``recon``)."""
        return n_in * n_out


class FutureRule(_OnlineRule):
    """Future rule, online: ``(x_hat e_hat - x_hat- e_hat-) / (1 - rx re)`` on spiking rows/columns."""

    def step(self, xs, es, bx, be):
        xd, ed = self._advance(xs, es, bx, be)
        c = 1.0 / (1.0 - self.rx * self.re)
        rows = np.flatnonzero(xs)
        cols = np.flatnonzero(es)
        out = []
        if rows.size:
            out.append((rows, slice(None),
                        c * (self.xh[rows, None] * self.eh[None, :] - xd[rows, None] * ed[None, :])))
        if cols.size:
            # rows that did not spike: x_hat = x_hat-, so the update is x_hat- (outer) be * es
            quiet = (xs == 0).astype(np.float64)
            out.append((slice(None), cols, c * (quiet * xd)[:, None] * (self.eh[cols] - ed[cols])[None, :]))
        return out


class PastRule(_OnlineRule):
    """Past rule, online (pdnn ``matrix_weight_grad_calculator``): pair state ``V`` (``n_in x n_out``)."""

    def __init__(self, n_in, n_out, rx, re):
        super().__init__(n_in, n_out, rx, re)
        self.v = np.zeros((self.n_in, self.n_out))

    def step(self, xs, es, bx, be):
        xd, ed = self._advance(xs, es, bx, be)
        c = 1.0 / (1.0 - self.rx * self.re)
        rows = np.flatnonzero(xs)
        cols = np.flatnonzero(es)
        out = []
        if rows.size:
            out.append((rows, slice(None), c * (self.v[rows] - xd[rows, None] * ed[None, :])))
        if cols.size:
            quiet = (xs == 0)
            block = c * (self.v[:, cols] - xd[:, None] * ed[None, cols])
            block[~quiet] = 0.0                        # already counted in the rows block
            out.append((slice(None), cols, block))
        if rows.size:
            self.v[rows] = self.xh[rows, None] * self.eh[None, :]
        if cols.size:
            self.v[:, cols] = self.xh[:, None] * self.eh[None, cols]
        return out

    def flush(self):
        """The pending tail of every pair's series, to infinity: ``V / (1 - rx re)``.

        ``V_ij`` is the pair's product at its last update ``u``; the terms from ``u`` on have not
        been added yet, and without further spikes they decay by ``rx re`` per step.
        """
        return self.v / (1.0 - self.rx * self.re)


def add_block(w, rows, cols, block, scale=1.0):
    """``w[rows][:, cols] += scale * block`` in place, for a block returned by a rule's ``step``."""
    if isinstance(rows, slice):
        w[:, cols] += scale * block
    elif isinstance(cols, slice):
        w[rows] += scale * block
    else:
        w[np.ix_(rows, cols)] += scale * block


def make_rule(name, n_in, n_out, rx, re):
    """The online stepper for rule ``name`` (one of :data:`ONLINE_RULES`)."""
    classes = {"recon": ReconRule, "past": PastRule, "future": FutureRule}
    if name not in classes:
        raise ValueError(f"unknown online update rule {name!r}; expected one of "
                         f"{', '.join(ONLINE_RULES)} (STDP is a non-causal reference only)")
    return classes[name](n_in, n_out, rx, re)
