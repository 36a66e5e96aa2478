"""``spikegate train ttfs --rule sign``: on-chip learning rule on the 8-bit discrete model.

Trains with :mod:`spikegate.golden.sign_backprop` (popcount-based sign backpropagation, the
rule the hardware learning unit implements), online, one image at a time, either from random
initial int8 weights (``--init random``, :func:`~spikegate.golden.sign_backprop.random_discrete_network`)
or fine-tuning a model file (``--init MODEL.npz``, e.g. one trained with exact gradients: its
sizes, thresholds, encoding and discrete config are kept; ``--hidden`` and ``--encoding`` are
then ignored; its float weights are requantized after multiplying the thresholds of its
first layers by ``--theta-scale``, :func:`~spikegate.golden.sign_backprop.requantize`). Writes
a model file of the same format, with float weights ``w_int8 / theta``.

Settings the hardware runs as it is (chosen on digits with ``scripts/bench_sign.py``, the same
for every seed; :data:`SIGN_DEFAULTS`): only images the network gets wrong are trained
(``--errors-only``: the host classifies each image first, then sends ``TRAIN`` only for a
wrong decision); from random weights, threshold 256 and the graded encoding with
``t_max = 3``; when fine-tuning, the thresholds of the first layer doubled (a step of 1 is
half as large a fraction of the threshold; the largest weights saturate). ``--val-split F``
holds out a fraction ``F`` of the training images (never test images) and keeps the weights
of the epoch with the best validation accuracy (the final epoch's test accuracy is recorded
too).

``spikegate train ttfs`` (:mod:`spikegate.scripts.train_ttfs`) adds these options with
:func:`add_sign_arguments` and calls :func:`run_sign` for ``--rule sign``.
"""

import sys
from pathlib import Path

import numpy as np

from spikegate.golden.encoding import EncodingConfig
from spikegate.golden.model_file import TTFSModelFile, load_model, save_model
from spikegate.golden.progress import Progress
from spikegate.golden.sign_backprop import (
    MAX_LFSR_K, MAX_LR_SHIFT, UpdateLFSR, evaluate_discrete, random_discrete_network, requantize,
    train_sign,
)
from spikegate.golden.ttfs_discrete import THETA_MAX, DiscreteConfig, times_to_steps
from spikegate.golden.encoding import encode

from .args import BadArgument, check, existing_file, int_range, number_in, output_file, positive_float

__all__ = ["RULES", "SIGN_DEFAULTS", "VAL_SEED", "add_sign_arguments", "run_sign",
           "train_sign_model", "model_from_network", "split_validation", "scaled_thetas",
           "theta_scale", "init_source"]

RULES = ("exact", "sign")
#: Defaults of the sign rule (``scripts/bench_sign.py`` measures them on digits, seeds 0-2):
#: epochs from random weights and when fine-tuning; the threshold of the random init (a step
#: of 1 is 1/256 of it); the graded encoding's ``t_max`` for random init (inputs spread over 3
#: of the 4 time units: more selective causal sets); ``errors_only``: train only the images the
#: network gets wrong; ``theta_scale``: when fine-tuning, the thresholds of the first layers
#: are multiplied by these (:func:`scaled_thetas`) and the float weights requantized; ``val_split``:
#: fraction of the training images held out to choose the epoch (0: keep the last epoch).
SIGN_DEFAULTS = {"epochs_random": 20, "epochs_finetune": 3, "theta": 256, "lr_shift": 0,
                 "t_max": 3.0, "errors_only": True, "theta_scale": (2.0,), "val_split": 0.0}
#: Seed of the permutation that picks the validation images (:func:`split_validation`).
VAL_SEED = 0


def theta_scale(text):
    """Argument type of ``--theta-scale``: positive numbers separated by commas (checked with
    :func:`scaled_thetas`); returns ``text``."""
    try:
        scaled_thetas([1] * len(str(text).split(",")), text)
    except ValueError as e:
        raise BadArgument(str(e)) from None
    return text


def init_source(text):
    """Argument type of ``--init``: ``random`` or an existing model file."""
    if text == "random":
        return text
    try:
        return existing_file(text)
    except BadArgument as e:
        raise BadArgument(f"{e} (give a model file, or 'random')") from None


def add_sign_arguments(p):
    """Add ``--rule`` and the sign-rule options to the ``train ttfs`` parser ``p``."""
    import argparse

    p.add_argument("--rule", default="exact", choices=RULES,
                   help="learning rule: exact float gradients (default) or the on-chip sign rule "
                        "on the 8-bit discrete model")
    p.add_argument("--lr-shift", type=int_range(0, MAX_LR_SHIFT), default=SIGN_DEFAULTS["lr_shift"],
                   metavar="K",
                   help=f"sign rule: weight step 2**K, K in 0..{MAX_LR_SHIFT} (default: 0)")
    p.add_argument("--init", type=init_source, default="random", metavar="random|MODEL.npz",
                   help="sign rule: random int8 weights (default) or a model file to fine-tune")
    p.add_argument("--theta", type=int_range(1, THETA_MAX), default=SIGN_DEFAULTS["theta"],
                   help=f"sign rule, random init: integer threshold of every layer "
                        f"(default: {SIGN_DEFAULTS['theta']})")
    p.add_argument("--t-max", type=positive_float, default=SIGN_DEFAULTS["t_max"],
                   help=f"sign rule, random init, graded encoding: time of the faintest pixel "
                        f"(default: {SIGN_DEFAULTS['t_max']:g})")
    p.add_argument("--errors-only", default=SIGN_DEFAULTS["errors_only"],
                   action=argparse.BooleanOptionalAction,
                   help="sign rule: train only the images the network classifies wrongly (the "
                        "host classifies first; default: on)")
    p.add_argument("--theta-scale", type=theta_scale,
                   default=",".join(f"{v:g}" for v in SIGN_DEFAULTS["theta_scale"]),
                   metavar="S[,S...]",
                   help="sign rule, fine-tuning: multiply the thresholds of the first layers by "
                        "these factors (the other layers: 1) and requantize the float weights "
                        "(default: "
                        + ",".join(f"{v:g}" for v in SIGN_DEFAULTS["theta_scale"]) + ")")
    p.add_argument("--stochastic-k", type=int_range(0, MAX_LFSR_K), default=0, metavar="K",
                   help="sign rule: stochastic rounding, a candidate write is carried out only "
                        "when K bits of the update LFSR are 0 (expected step 2**lr_shift / 2**K; "
                        f"K in 1..{MAX_LFSR_K}; needs the LFSR in the hardware; default: 0 = off)")
    p.add_argument("--val-split", type=number_in("[0, 1)"), default=SIGN_DEFAULTS["val_split"],
                   metavar="F",
                   help="sign rule: hold out this fraction of the training images and keep the "
                        "epoch with the best validation accuracy (default: 0, the last epoch)")
    return p


def model_from_network(net, encoding, training=None):
    """A :class:`TTFSModelFile` of a :class:`DiscreteNetwork` (float weights = int / theta)."""
    return TTFSModelFile(
        float_weights=[np.asarray(w, dtype=np.float32) / np.float32(t)
                       for w, t in zip(net.weights, net.thetas)],
        int_weights=[np.asarray(w, dtype=np.int8) for w in net.weights],
        thetas=list(net.thetas), discrete=net.config, encoding=encoding,
        training=dict(training or {}))


def split_validation(n, fraction):
    """``(train_idx, val_idx)`` of ``n`` training images: the last ``round(fraction * n)`` of
    ``numpy.random.default_rng(VAL_SEED).permutation(n)`` are held out (0 -> none)."""
    if not (isinstance(fraction, (int, float)) and 0 <= fraction < 1):
        raise ValueError(f"--val-split must be a fraction in [0, 1), not {fraction!r}")
    n_val = int(round(fraction * n))
    if n_val == 0:
        return np.arange(n), np.arange(0)
    if n_val >= n:
        raise ValueError(f"--val-split {fraction} leaves no training image of {n}")
    perm = np.random.default_rng(VAL_SEED).permutation(n)
    return np.sort(perm[:n - n_val]), np.sort(perm[n - n_val:])


def scaled_thetas(thetas, scale):
    """``min(THETA_MAX, max(1, round(theta * s)))`` per layer.

    ``scale``: the factors of the first layers (a number, a sequence, or a string of numbers
    separated by commas); layers beyond them keep their threshold (factor 1).
    """
    if isinstance(scale, str):
        try:
            scale = [float(v) for v in scale.split(",")]
        except ValueError:
            raise ValueError(f"--theta-scale must be numbers separated by commas, not {scale!r}") from None
    scales = [scale] if np.isscalar(scale) else list(scale)
    if len(scales) > len(thetas):
        raise ValueError(f"{len(thetas)} layers but {len(scales)} theta scales ({scale!r})")
    for v in scales:
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                or not np.isfinite(v) or v <= 0:
            raise ValueError(f"a theta scale must be a positive number, not {v!r}")
    scales = scales + [1.0] * (len(thetas) - len(scales))
    return [int(min(THETA_MAX, max(1, round(t * v)))) for t, v in zip(thetas, scales)]


def train_sign_model(ds, *, hidden=(64,), encoding=None, init="random", epochs=None,
                     lr_shift=0, theta=SIGN_DEFAULTS["theta"], seed=0, train_limit=None,
                     quiet=False, discrete=None, callback=None, errors_only=False,
                     theta_scale=None, val_split=0.0, stochastic_k=0):
    """Train with the sign rule on data set ``ds``; returns ``(TTFSModelFile, summary, history)``.

    ``init``: ``"random"`` or a :class:`TTFSModelFile` / path to fine-tune (requantized with
    its thresholds times ``theta_scale`` when given, :func:`scaled_thetas`; ``theta_scale``
    is ignored for a random init). ``errors_only`` is passed to
    :func:`~spikegate.golden.sign_backprop.train_sign`. ``val_split``: fraction of the
    training images held out (:func:`split_validation`); the returned model is then the one
    after the epoch with the best validation accuracy (the first such epoch), otherwise the
    one after the last epoch. ``history`` is ``train_sign``'s per epoch, each entry with the
    test accuracy after the epoch added (``test_accuracy``, and ``val_accuracy`` with a
    validation split). ``stochastic_k``: 0 (default) or ``k`` in 1..8, stochastic rounding
    with one :class:`~spikegate.golden.sign_backprop.UpdateLFSR` for the run (a hardware
    change). ``summary`` is :func:`spikegate.scripts.eval_ttfs.evaluate`'s on the
    test split of the returned model. ``callback(epoch, history_entry, net)`` after every
    epoch (optional).
    """
    from .eval_ttfs import evaluate

    x, y = ds.x_train, ds.y_train
    if train_limit is not None:
        if train_limit < 1:
            raise ValueError(f"--train-limit must be >= 1, not {train_limit!r}")
        x, y = x[:train_limit], y[:train_limit]
    tr_idx, val_idx = split_validation(len(y), val_split)
    x_val, y_val = x[val_idx], y[val_idx]
    x, y = x[tr_idx], y[tr_idx]
    if isinstance(init, (str, Path)) and str(init) != "random":
        init = load_model(init)
    if isinstance(init, TTFSModelFile):
        base = init
        if base.sizes[0] != ds.n_inputs or base.sizes[-1] != ds.n_classes:
            raise ValueError(f"the model has sizes {base.sizes} but data set {ds.name!r} has "
                             f"{ds.n_inputs} inputs and {ds.n_classes} classes")
        if theta_scale is None:
            net = base.network()
        else:
            net = requantize(base.float_weights, scaled_thetas(base.thetas, theta_scale),
                             base.discrete)
        encoding = base.encoding
        source = base.training.get("rule", "exact")
    elif isinstance(init, str) and init == "random":
        encoding = encoding or EncodingConfig()
        cfg = discrete or DiscreteConfig()
        steps = times_to_steps(encode(x, encoding), cfg)
        rate = float(np.mean(steps >= 0))
        if rate == 0:
            raise ValueError(f"no input pixel spikes with encoding {encoding}")
        sizes = [ds.n_inputs] + list(hidden) + [ds.n_classes]
        net = random_discrete_network(sizes, seed=seed, theta=theta, config=cfg, input_rate=rate)
        source = "random"
    else:
        raise ValueError(f"--init must be 'random' or a model file, not {init!r}")
    if epochs is None:
        epochs = SIGN_DEFAULTS["epochs_random" if source == "random" else "epochs_finetune"]
    steps = times_to_steps(encode(x, encoding), net.config)
    steps_val = times_to_steps(encode(x_val, encoding), net.config)
    steps_test = times_to_steps(encode(ds.x_test, encoding), net.config)
    initial_acc, _ = evaluate_discrete(net, steps_test, ds.y_test)

    bar = None

    def on_image(epoch, i, n, acc):
        nonlocal bar
        if quiet:
            return
        if i == 1:
            bar = Progress(n, desc=f"epoch {epoch + 1}/{epochs}")
        bar.update(1, acc=acc)
        if i == n and sys.stderr.isatty():
            bar.close()

    lfsr = UpdateLFSR(stochastic_k) if stochastic_k else None
    history = []
    best = None         # (val accuracy, epoch, weights)
    for epoch in range(epochs):
        # one call per epoch, so the test accuracy can be recorded after each; the shuffling
        # seed of epoch e is seed + e (train_sign's own order for a one-epoch call)
        h = train_sign(net, steps, y, epochs=1, lr_shift=lr_shift, seed=seed + epoch,
                       callback=lambda e, i, n, acc: on_image(epoch, i, n, acc),
                       errors_only=errors_only, lfsr=lfsr)[0]
        h["test_accuracy"], h["test_no_decision"] = evaluate_discrete(net, steps_test, ds.y_test)
        if len(val_idx):
            h["val_accuracy"], _ = evaluate_discrete(net, steps_val, y_val)
            if best is None or h["val_accuracy"] > best[0]:
                best = (h["val_accuracy"], epoch, [w.copy() for w in net.weights])
        history.append(h)
        if callback is not None:
            callback(epoch, h, net)
    selected = epochs
    if best is not None:
        selected = best[1] + 1
        net.weights = best[2]
    model = model_from_network(net, encoding)
    summary, _ = evaluate(model, ds.x_test, ds.y_test)
    seconds = sum(h["seconds"] for h in history)
    model.training = {
        "dataset": ds.name,
        "rule": "sign",
        "init": source if source == "random" else f"model ({source} rule)",
        "sizes": [int(s) for s in net.sizes],
        "train_samples": int(len(y)),
        "config": {"epochs": int(epochs), "lr_shift": int(lr_shift), "seed": int(seed),
                   "theta": [int(t) for t in net.thetas], "errors_only": bool(errors_only),
                   "val_split": float(val_split), "stochastic_k": int(stochastic_k)},
        "initial_discrete_accuracy": initial_acc,
        "test_accuracy_history": [h["test_accuracy"] for h in history],
        "train_accuracy_history": [h["train_accuracy"] for h in history],
        "val_accuracy_history": [h["val_accuracy"] for h in history if "val_accuracy" in h],
        "val_samples": int(len(val_idx)),
        "selected_epoch": int(selected),
        "final_test_accuracy": history[-1]["test_accuracy"] if history else initial_acc,
        "train_seconds": seconds,
        "seconds_per_epoch": seconds / epochs if epochs else 0.0,
        "images_per_s": (len(y) * epochs / seconds) if seconds > 0 else float("nan"),
        "float_accuracy": summary["float_accuracy"],
        "discrete_accuracy": summary["discrete_accuracy"],
    }
    return model, summary, history


def run_sign(args, *, default_encoding="graded"):
    """``spikegate train ttfs --rule sign``: train, print the table, write the model file."""
    from spikegate.golden.data import load_dataset

    from .eval_ttfs import format_table

    # The options' ranges are checked by their argparse types (add_sign_arguments).
    init = args.init
    output = Path(check("-o", output_file, args.output or f"ttfs-sign-{args.dataset}.npz"))
    if init != "random":
        init = load_model(init)
    enc_kw = {} if getattr(args, "threshold", None) is None else {"threshold": args.threshold}
    encoding = EncodingConfig(mode=args.encoding or default_encoding, t_max=args.t_max, **enc_kw)
    # the time grid of a random init: --timesteps / --dt when the parser has them and they
    # are given, else DiscreteConfig's default (T = 32, dt = 1/8)
    grid = DiscreteConfig().to_dict()
    for name in ("timesteps", "dt"):
        if getattr(args, name, None) is not None:
            grid[name] = getattr(args, name)
    discrete = DiscreteConfig.from_dict(grid)
    ds = load_dataset(args.dataset, args.data)
    model, summary, history = train_sign_model(
        ds, hidden=args.hidden, encoding=encoding, init=init, epochs=args.epochs,
        lr_shift=args.lr_shift, theta=args.theta, seed=args.seed,
        train_limit=args.train_limit, quiet=args.quiet, discrete=discrete,
        errors_only=args.errors_only, theta_scale=args.theta_scale, val_split=args.val_split,
        stochastic_k=args.stochastic_k)
    save_model(output, model)
    t = model.training
    print(format_table(summary, f"{args.dataset} test, sign rule from {t['init']}, sizes "
                                f"{'-'.join(map(str, model.sizes))}, {t['images_per_s']:.0f} images/s"))
    print("test accuracy per epoch: " + " ".join(f"{100 * a:.1f}" for a in t["test_accuracy_history"]))
    if t["val_samples"]:
        print("validation accuracy per epoch: "
              + " ".join(f"{100 * a:.1f}" for a in t["val_accuracy_history"])
              + f"; kept epoch {t['selected_epoch']} (the last epoch's test accuracy: "
                f"{100 * t['final_test_accuracy']:.2f} %)")
    print(f"wrote {output}")
    return 0
