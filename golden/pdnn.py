"""PD networks (O'Connor, Gavves, Reisser, Welling, ICLR 2018), their training, and the MLP baseline.

A PD layer computes ``z = dec(Q(enc(x)) @ W) + b``: the input's integer spike counts ``s`` select
rows of ``W`` (``|s_i|`` additions of ``sign(s_i) W[i]``, :func:`~spikegate.golden.sigma_delta.accumulate_rows`),
and the decoder integrates the sum. Training is online, one sample per time step, so time is the
position in the training stream and the network's state carries over from one sample to the next:
on temporally redundant data (:mod:`spikegate.golden.temporal`) the encoders see small changes and
send few spikes. This is petered/pdnn ``pdnn/helpers/pdnnet.py``, ``PDHerdingNetwork`` and
``PDHerdingLayer``, with the settings of ``helpers/demo_pdnn_mnist.py``, ``demo_herding_network``:
``kp = 0.1, kd = 1``, adaptive ``k_beta`` with rate ``1e-3``, ReLU hidden units, softmax output with
negative log-likelihood, plain SGD with learning rate ``0.01`` and minibatch size 1, weights drawn
``N(0, 2 / (n_in + n_out))`` ("xavier-both"), zero biases.

One training step (sample ``x``, label ``y``), every vector op over a whole layer:

1. forward, layer by layer: ``s = Q(enc_f(x))``, ``u = s @ W`` (row additions), ``z = dec_f(u) + b``,
   ``x_next = relu(z)`` (softmax at the top);
2. backward, top down: ``g_z = softmax(z) - onehot(y)`` at the top, ``relu'(z) * g`` below;
   ``e = Q(enc_b(g_z))``; the gradient passed down is ``g = dec_b(e @ W.T)`` (column additions),
   skipped for the first layer, which has nobody to pass it to;
3. updates: ``W -= lr * dW`` with ``dW`` from the chosen rule on the spike trains ``s``, ``e``
   (:mod:`spikegate.golden.pd_updates`; default ``past``, pdnn's ``past_matrix``, the rule of the
   paper's Figure 5), ``b -= lr * g_z`` (the unquantized gradient, as in pdnn);
4. both coders of every layer adapt ``k_beta`` (:meth:`~spikegate.golden.sigma_delta.PDCoder.adapt`).

The backward pass uses the weights from before this step's updates (as Theano's simultaneous
updates in pdnn do).

Operation counts (:class:`OpCounter`). PD network, additions: forward ``sum|s| * n_out``, backward
``sum|e| * n_in`` (layers above the first only), update ``sum|s| * n_out + sum|e| * n_in`` for the
past/future rules, ``n_in * n_out`` for the dense reconstruction rule (pdnn
``PDHerdingLayer.forward_pass_and_state`` / ``backward_pass``). MLP, multiply-adds: ``n_in * n_out``
per layer for each of forward, backward (layers above the first) and update (pdnn
``demo_herding_network.test_callback`` with ``swap_mlp``). pdnn's figure code sets *all* backward
counts to zero (``ops[:, 1, :] = 0``, meant for the first layer only); :meth:`OpCounter.summary`
reports that convention too, as ``figure_kops``.
"""

import copy
import time
from dataclasses import dataclass, field

import numpy as np

from .pd_updates import ONLINE_RULES, add_block, make_rule
from .sigma_delta import PDCoder, accumulate_rows

__all__ = ["OpCounter", "PDLayer", "PDNetwork", "MLP", "init_weights", "train_online",
           "TrainResult", "softmax", "Diverged", "DIVERGENCE_LIMIT"]

# A pre-activation beyond this magnitude means training has diverged (pdnn stops such runs too:
# "This horse ain't goin' nowhere" in demo_herding_network).
DIVERGENCE_LIMIT = 1e6


class Diverged(ArithmeticError):
    """Training diverged: a pre-activation left ``[-DIVERGENCE_LIMIT, DIVERGENCE_LIMIT]``."""


def softmax(z):
    """Softmax over the last axis (numerically stable)."""
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def init_weights(sizes, seed=1234):
    """``N(0, 2 / (n_in + n_out))`` weight matrices for layer sizes ``sizes`` (pdnn "xavier-both")."""
    if len(sizes) < 2 or any((not isinstance(n, (int, np.integer))) or n < 1 for n in sizes):
        raise ValueError(f"sizes must be at least two positive integers, not {sizes!r}")
    rng = np.random.default_rng(seed)
    return [rng.standard_normal((a, b)) * np.sqrt(2.0 / (a + b)) for a, b in zip(sizes[:-1], sizes[1:])]


@dataclass
class OpCounter:
    """Operations spent in training, per layer: forward, backward, update.

    ``kind`` is ``"add"`` (PD network: integer additions) or ``"madd"`` (MLP: multiply-adds).
    """
    n_layers: int
    kind: str = "add"
    fwd: np.ndarray = field(default=None)
    back: np.ndarray = field(default=None)
    update: np.ndarray = field(default=None)
    samples: int = 0

    def __post_init__(self):
        if self.kind not in ("add", "madd"):
            raise ValueError(f"kind must be 'add' or 'madd', not {self.kind!r}")
        for name in ("fwd", "back", "update"):
            if getattr(self, name) is None:
                setattr(self, name, np.zeros(self.n_layers, dtype=np.int64))

    @property
    def total(self):
        return int(self.fwd.sum() + self.back.sum() + self.update.sum())

    def summary(self):
        """Per-sample counts in kOps: ``fwd``, ``back``, ``update``, ``total`` and ``figure_kops``."""
        n = max(self.samples, 1)
        f, b, u = (float(a.sum()) / n / 1e3 for a in (self.fwd, self.back, self.update))
        return {"fwd_kops": f, "back_kops": b, "update_kops": u, "total_kops": f + b + u,
                "figure_kops": f + u, "samples": self.samples, "kind": self.kind}


# ---------------------------------------------------------------------------------------------
# PD network
# ---------------------------------------------------------------------------------------------

class PDLayer:
    """One PD layer: weights, a forward coder (``n_in``), a backward coder (``n_out``), a rule.

    State (all explicit, all per layer): the coders' ``x_prev``, ``phi``, ``k_beta``, running
    magnitude; ``z_dec`` (decoder of ``s @ W``, ``n_out``); ``g_dec`` (decoder of ``e @ W.T``,
    ``n_in``); the update rule's traces.
    """

    def __init__(self, w, b, *, kp=0.1, kd=1.0, kp_back=None, kd_back=None, adaptive=True,
                 adaptation_rate=1e-3, rule="past"):
        self.w = np.array(w, dtype=np.float64)
        if self.w.ndim != 2:
            raise ValueError(f"w must be 2-D (n_in, n_out), not shape {self.w.shape}")
        self.n_in, self.n_out = self.w.shape
        self.b = np.zeros(self.n_out) if b is None else np.array(b, dtype=np.float64)
        kp_back = kp if kp_back is None else kp_back
        kd_back = kd if kd_back is None else kd_back
        self.fwd = PDCoder(kp, kd, self.n_in, adaptive=adaptive, adaptation_rate=adaptation_rate)
        self.back = PDCoder(kp_back, kd_back, self.n_out, adaptive=adaptive,
                            adaptation_rate=adaptation_rate)
        self.rule_name = rule
        self.rule = make_rule(rule, self.n_in, self.n_out, self.fwd.k_alpha, self.back.k_alpha)
        self.reset_state()

    def reset_state(self):
        """Zero all time-dependent state except the adapted ``k_beta``."""
        self.fwd.reset()
        self.back.reset()
        self.z_dec = np.zeros(self.n_out)
        self.g_dec = np.zeros(self.n_in)
        self.rule = make_rule(self.rule_name, self.n_in, self.n_out, self.fwd.k_alpha, self.back.k_alpha)

    def forward(self, x):
        """One step: returns ``(z, s, n_row_additions)``."""
        s = self.fwd.encode(x)
        u, n_rows = accumulate_rows(s, self.w)
        self.z_dec = self.fwd.decode(u, self.z_dec)
        return self.z_dec + self.b, s, n_rows

    def backward(self, grad_z, need_input_grad):
        """One step: returns ``(e, g_in or None, n_column_additions)``; uses the current ``W``."""
        e = self.back.encode(grad_z)
        if not need_input_grad:
            return e, None, 0
        u, n_cols = accumulate_rows(e, self.w.T)
        self.g_dec = self.back.decode(u, self.g_dec)
        return e, self.g_dec, n_cols

    def update(self, s, e, grad_z, lr):
        """Apply the rule's update for this step's spike trains; returns the update op count."""
        for rows, cols, block in self.rule.step(s, e, self.fwd.k_beta, self.back.k_beta):
            add_block(self.w, rows, cols, block, scale=-lr)
        self.b -= lr * grad_z
        return self.rule.op_count(s, e, self.n_in, self.n_out)

    def adapt(self):
        self.fwd.adapt()
        self.back.adapt()


class PDNetwork:
    """A stack of :class:`PDLayer` with ReLU hidden units and a softmax output."""

    kind = "add"
    lr = 0.01            # set by train_online

    def __init__(self, sizes, *, seed=1234, weights=None, rule="past", **layer_kwargs):
        if rule not in ONLINE_RULES:
            raise ValueError(f"rule must be one of {', '.join(ONLINE_RULES)}, not {rule!r}")
        ws = init_weights(sizes, seed) if weights is None else weights
        self.sizes = tuple(int(n) for n in sizes)
        self.layers = [PDLayer(w, None, rule=rule, **layer_kwargs) for w in ws]
        self.ops = OpCounter(len(self.layers), kind="add")

    def forward(self, x, count=None):
        """One time step of the forward pass; returns ``(zs, ss)``."""
        zs, ss = [], []
        h = x
        for i, layer in enumerate(self.layers):
            z, s, n_rows = layer.forward(h)
            if not np.all(np.abs(z) <= DIVERGENCE_LIMIT):          # also catches NaN
                raise Diverged(f"layer {i} pre-activation reached {np.nanmax(np.abs(z)):.3g}")
            if count is not None:
                count.fwd[i] += n_rows * layer.n_out
            zs.append(z)
            ss.append(s)
            h = np.maximum(z, 0.0)
        return zs, ss

    def train_step(self, x, y):
        """One online step on sample ``x`` (``n_in``) with integer label ``y``; returns the output."""
        c = self.ops
        zs, ss = self.forward(x, count=c)
        out = zs[-1]
        grad = softmax(out)
        grad[y] -= 1.0
        grads_z = [None] * len(self.layers)
        es = [None] * len(self.layers)
        for i in range(len(self.layers) - 1, -1, -1):
            layer = self.layers[i]
            grads_z[i] = grad
            e, g_in, n_cols = layer.backward(grad, need_input_grad=i > 0)
            es[i] = e
            c.back[i] += n_cols * layer.n_in
            if i > 0:
                grad = g_in * (zs[i - 1] > 0)
        for i, layer in enumerate(self.layers):
            c.update[i] += layer.update(ss[i], es[i], grads_z[i], self.lr)
            layer.adapt()
        c.samples += 1
        return out

    def predict(self, x):
        """Herded predictions on the sequence ``x`` (``(n, n_in)``), from a zero state.

        Runs a copy of the network (weights and adapted ``k_beta`` frozen, no adaptation), so the
        training state is untouched. Returns ``(labels, forward kOps per sample)``.
        """
        net = copy.deepcopy(self)
        for layer in net.layers:
            layer.reset_state()
        count = OpCounter(len(net.layers))
        out = np.empty(len(x), dtype=np.int64)
        for t in range(len(x)):
            zs, _ = net.forward(x[t], count=count)
            out[t] = int(np.argmax(zs[-1]))
        return out, float(count.fwd.sum()) / max(len(x), 1) / 1e3

    def predict_noise_free(self, x):
        """Labels from the plain (unquantized) MLP with this network's weights, batched."""
        h = np.asarray(x, dtype=np.float64)
        for i, layer in enumerate(self.layers):
            h = h @ layer.w + layer.b
            if i < len(self.layers) - 1:
                h = np.maximum(h, 0.0)
        return np.argmax(h, axis=1)


# ---------------------------------------------------------------------------------------------
# The baseline: a plain MLP of the same shape, trained the same way
# ---------------------------------------------------------------------------------------------

class MLP:
    """ReLU MLP with softmax output, online SGD (minibatch 1); counts multiply-adds like pdnn."""

    kind = "madd"
    lr = 0.01

    def __init__(self, sizes, *, seed=1234, weights=None):
        ws = init_weights(sizes, seed) if weights is None else weights
        self.sizes = tuple(int(n) for n in sizes)
        self.w = [np.array(w, dtype=np.float64) for w in ws]
        self.b = [np.zeros(w.shape[1]) for w in self.w]
        self.ops = OpCounter(len(self.w), kind="madd")

    def train_step(self, x, y):
        hs = [np.asarray(x, dtype=np.float64)]
        for i, (w, b) in enumerate(zip(self.w, self.b)):
            z = hs[-1] @ w + b
            hs.append(np.maximum(z, 0.0) if i < len(self.w) - 1 else z)
        out = hs[-1]
        if not np.all(np.abs(out) <= DIVERGENCE_LIMIT):
            raise Diverged(f"output reached {np.nanmax(np.abs(out)):.3g}")
        grad = softmax(out)
        grad[y] -= 1.0
        c = self.ops
        for i in range(len(self.w) - 1, -1, -1):
            w = self.w[i]
            n_in, n_out = w.shape
            g_in = (w @ grad) * (hs[i] > 0) if i > 0 else None
            # Dense update; rows with a zero input get a zero update, so skip them (same result).
            nz = np.flatnonzero(hs[i])
            w[nz] -= self.lr * np.outer(hs[i][nz], grad)
            self.b[i] -= self.lr * grad
            c.fwd[i] += n_in * n_out
            c.update[i] += n_in * n_out
            if i > 0:
                c.back[i] += n_in * n_out
                grad = g_in
        c.samples += 1
        return out

    def predict(self, x):
        """Labels for ``x`` (batched); returns ``(labels, forward kOps per sample)``."""
        h = np.asarray(x, dtype=np.float64)
        for i, (w, b) in enumerate(zip(self.w, self.b)):
            h = h @ w + b
            if i < len(self.w) - 1:
                h = np.maximum(h, 0.0)
        return np.argmax(h, axis=1), sum(w.size for w in self.w) / 1e3


# ---------------------------------------------------------------------------------------------
# Training loop
# ---------------------------------------------------------------------------------------------

@dataclass
class TrainResult:
    """History of one training run: one dict per evaluation point."""
    history: list
    seconds_per_epoch: float
    ops: dict
    diverged: dict = None


def train_online(net, x_train, y_train, x_test, y_test, *, epochs=1.0, lr=0.01, evals_per_epoch=2,
                 train_eval_size=2000, progress=None, desc="train"):
    """Train ``net`` (:class:`PDNetwork` or :class:`MLP`) online, in the data set's order.

    The training stream is ``x_train`` in order, repeated for ``epochs`` (a float is allowed), as
    pdnn does (no reshuffling: for Temporal MNIST the order *is* the data). At ``evals_per_epoch``
    points per epoch (and at the start) it records: epoch, samples, cumulative training ops
    (GOps), test accuracy (PD: herded and noise-free) and accuracy on the first
    ``train_eval_size`` training samples.

    ``progress`` is ``None`` or a factory ``(total, desc) -> Progress``-like object. A run that
    diverges (:class:`Diverged`) stops there: ``TrainResult.diverged`` gives the sample and reason
    and the last history entry has ``nan`` accuracies.
    """
    if epochs <= 0:
        raise ValueError(f"epochs must be > 0, not {epochs!r}")
    if lr <= 0:
        raise ValueError(f"lr must be > 0, not {lr!r}")
    if len(x_train) != len(y_train) or len(x_test) != len(y_test):
        raise ValueError("x and y must have the same number of samples")
    net.lr = float(lr)
    n = len(x_train)
    total = int(round(epochs * n))
    eval_every = max(1, int(n // max(evals_per_epoch, 1)))
    x_train = np.asarray(x_train, dtype=np.float64)
    x_sub, y_sub = x_train[:train_eval_size], np.asarray(y_train[:train_eval_size])
    history = []
    train_seconds = 0.0

    def evaluate(step):
        rec = {"epoch": step / n, "samples": step, "gops": net.ops.total / 1e9}
        pred, fwd_kops = net.predict(x_test)
        rec["test_acc"] = float(np.mean(pred == y_test))
        rec["test_fwd_kops"] = fwd_kops
        rec["train_acc"] = float(np.mean(net.predict(x_sub)[0] == y_sub))
        if isinstance(net, PDNetwork):
            rec["test_acc_noise_free"] = float(np.mean(net.predict_noise_free(x_test) == y_test))
        rec.update({k: v for k, v in net.ops.summary().items() if k.endswith("kops")})
        history.append(rec)
        return rec

    evaluate(0)
    bar = progress(total, desc) if progress is not None else None
    diverged = None
    correct = 0
    seen = 0
    reported = 0
    step = 0
    while step < total:
        stop = min(total, (step // eval_every + 1) * eval_every)
        t0 = time.perf_counter()
        for k in range(step, stop):
            i = k % n
            try:
                out = net.train_step(x_train[i], int(y_train[i]))
            except Diverged as e:
                diverged = {"sample": k, "reason": str(e)}
                break
            correct += int(np.argmax(out) == y_train[i])
            seen += 1
            if bar is not None and k + 1 - reported >= 200:
                bar.update(k + 1 - reported, acc=correct / seen)
                reported = k + 1
        train_seconds += time.perf_counter() - t0
        if diverged is not None:
            history.append({"epoch": diverged["sample"] / n, "samples": diverged["sample"],
                            "gops": net.ops.total / 1e9, "test_acc": float("nan"),
                            "train_acc": float("nan"), "diverged": diverged["reason"]})
            total = max(diverged["sample"], 1)
            break
        step = stop
        rec = evaluate(step)
        if bar is not None:
            bar.update(step - reported, acc=correct / seen, test=rec["test_acc"])
            reported = step
    if bar is not None:
        bar.close()
    return TrainResult(history=history, seconds_per_epoch=train_seconds / (total / n),
                       ops=net.ops.summary(), diverged=diverged)
