"""``spikegate board``: talk to a spikegate board over its serial port.

``identify`` prints what the bitstream holds; ``load MODEL`` sends a model file's weights
and thresholds (refused when its shape or time grid differs from the bitstream's);
``classify`` sends images (a ``.npy`` / ``.png`` file, or a range of a data set's test
split), prints each class and the accuracy and statistics; ``train`` sends images with
their labels (bitstreams with the learning unit). ``--port fake:MODEL`` talks to a
pure-Python device instead of a board. The protocol: :mod:`spikegate.hdl.protocol_spec`.
"""

import time
from pathlib import Path

import numpy as np

from spikegate.golden.data import DATASETS, load_dataset
from spikegate.golden.sign_backprop import MAX_LFSR_K, MAX_LR_SHIFT
from spikegate.hdl.protocol_spec import DEFAULT_BAUD

from .args import BadArgument, existing_dir, existing_file, int_range, positive_float, positive_int

__all__ = ["add_parser", "run", "open_transport", "read_image", "parse_range", "summarize"]


def add_parser(subparsers):
    p = subparsers.add_parser("board", help="talk to a spikegate board over its serial port",
                              description=__doc__.split("\n\n")[0])
    p.add_argument("--port", default="/dev/ttyUSB1",
                   help="serial port (default /dev/ttyUSB1), or fake:MODEL for a simulated device")
    p.add_argument("--baud", type=positive_int, default=DEFAULT_BAUD,
                   help=f"baud rate (default {DEFAULT_BAUD}, the board tops' default)")
    p.add_argument("--timeout", type=positive_float, default=1.0,
                   help="seconds to wait for a reply byte (default 1)")
    sub = p.add_subparsers(dest="action", metavar="ACTION")
    sub.required = True
    sub.add_parser("identify", help="print the device's protocol version, network and clock")
    lp = sub.add_parser("load", help="load a model file's weights and thresholds")
    lp.add_argument("model", metavar="MODEL", type=existing_file)
    lp.add_argument("--verify", action="store_true", help="read every weight back and compare")
    for name, helptext in (("classify", "classify images"), ("train", "train on labelled images")):
        sp = sub.add_parser(name, help=helptext)
        sp.add_argument("--model", type=existing_file, required=True, metavar="MODEL",
                        help="model file whose input encoding turns pixels into spike steps")
        if name == "classify":
            sp.add_argument("--image", type=existing_file, metavar="FILE", help=".npy or .png image (pixels in [0, 1] "
                            "or 0..255), of the model's input size once flattened")
        sp.add_argument("--dataset", choices=DATASETS, help="data set (test split)")
        sp.add_argument("--data", type=existing_dir, metavar="DIR",
                        help="IDX directory for mnist / fashion-mnist")
        sp.add_argument("--range", type=parse_range, default="0:100", metavar="A:B",
                        help="test images A to B-1 (default 0:100)")
        if name == "train":
            sp.add_argument("--lr-shift", type=int_range(0, MAX_LR_SHIFT), default=0,
                            help=f"weight step 2**N (0..{MAX_LR_SHIFT})")
            sp.add_argument("--lfsr-k", type=int_range(0, MAX_LFSR_K), default=0,
                            help="stochastic rounding: each write needs K zero LFSR bits "
                                 f"(expected step 2**(N-K)); 0 = off (default), up to {MAX_LFSR_K}")
            sp.add_argument("--errors-only", action="store_true",
                            help="learn only from images the device gets wrong")
            sp.add_argument("--epochs", type=positive_int, default=1)
    p.set_defaults(func=run)
    return p


def parse_range(text):
    """``"A:B"`` -> ``slice(A, B)``: test images ``A`` to ``B - 1``, ``0 <= A < B`` (``A``
    empty: 0, ``B`` empty: to the end). An argparse type (:class:`~spikegate.scripts.args.BadArgument`)."""
    expected = f"must be A:B with integers 0 <= A < B (either may be left out), not {text!r}"
    try:
        a, b = str(text).split(":")
        sl = slice(int(a) if a.strip() else 0, int(b) if b.strip() else None)
    except ValueError:
        raise BadArgument(expected) from None
    if sl.start < 0 or (sl.stop is not None and sl.stop <= sl.start):
        raise BadArgument(expected)
    return sl


def read_image(path, n_inputs):
    """Pixels in [0, 1] (flattened) of a ``.npy`` or ``.png`` file."""
    path = Path(path)
    if path.suffix == ".npy":
        x = np.load(path, allow_pickle=False).astype(np.float64)
    elif path.suffix == ".png":
        import matplotlib
        matplotlib.use("Agg")
        from matplotlib import image
        x = np.asarray(image.imread(path), dtype=np.float64)
        if x.ndim == 3:
            x = x[..., :3].mean(axis=-1)
    else:
        raise ValueError(f"image must be a .npy or .png file, not {str(path)!r}")
    if x.max(initial=0) > 1:
        x = x / 255.0
    x = x.reshape(-1)
    if x.size != n_inputs or x.min(initial=0) < 0 or x.max(initial=0) > 1:
        raise ValueError(f"{path}: expected {n_inputs} pixels in [0, 1] or 0..255, "
                         f"got {x.size} in [{x.min():g}, {x.max():g}]")
    return x


def open_transport(port, baud, timeout):
    """A :class:`SerialTransport`, or for ``fake:MODEL`` a
    :class:`~spikegate.boards.fake.FakeDevice` holding that model's shape (zero weights)."""
    if port.startswith("fake:"):
        from spikegate.boards.fake import FakeDevice
        from spikegate.golden.model_file import load_model
        from spikegate.golden.ttfs_discrete import DiscreteNetwork
        net = load_model(port[5:]).network()
        return FakeDevice(DiscreteNetwork([np.zeros_like(w) for w in net.weights],
                                          [1] * len(net.weights), net.config))
    from spikegate.boards.client import SerialTransport
    return SerialTransport(port, baud, timeout)


def summarize(results, labels=None):
    """Accuracy and per-layer statistics of a list of result dicts, as ``(rows, accuracy)``:
    rows of (quantity, mean, max)."""
    rows = []
    arr = lambda k: np.array([r[k] for r in results], dtype=np.float64)
    decided = arr("decided").astype(bool)
    rows.append(("decided", decided.mean(), 1.0))
    steps = arr("decision_step")[decided] + 1
    rows.append(("timesteps to decision", steps.mean() if steps.size else float("nan"),
                 steps.max(initial=0)))
    rows.append(("cycles", arr("cycles").mean(), arr("cycles").max()))
    spikes = np.array([r["spikes"] for r in results], dtype=np.float64)
    for l in range(spikes.shape[1]):
        rows.append((f"spikes layer {l}", spikes[:, l].mean(), spikes[:, l].max()))
    lookups = np.array([r["lookups"] for r in results], dtype=np.float64)
    for l in range(lookups.shape[1]):
        rows.append((f"lookups layer {l}", lookups[:, l].mean(), lookups[:, l].max()))
    acc = None
    if labels is not None:
        acc = float(np.mean(np.array([r["decision"] for r in results]) == np.asarray(labels)))
    return rows, acc


def _print_summary(results, labels, seconds, clk_hz):
    rows, acc = summarize(results, labels)
    print(f"{'quantity':<24}{'mean':>12}{'max':>12}")
    for name, mean, mx in rows:
        print(f"{name:<24}{mean:>12.2f}{mx:>12.0f}")
    cyc = np.mean([r["cycles"] for r in results])
    if cyc > 0:
        print(f"classifications/s at {clk_hz / 1e6:g} MHz (compute only): {clk_hz / cyc:,.0f}")
    print(f"{len(results)} images in {seconds:.1f} s over the link ({len(results) / seconds:.1f}/s)")
    if acc is not None:
        print(f"accuracy: {acc:.2%} ({len(results)} images)")


def _images(args, model):
    if getattr(args, "image", None):
        return model.encode(read_image(args.image, model.sizes[0])[None]), None
    if not args.dataset:
        raise ValueError("give --image FILE or --dataset NAME")
    d = load_dataset(args.dataset, root=args.data)
    sl = args.range
    x, y = d.x_test[sl], d.y_test[sl]
    if len(x) == 0:
        raise ValueError(f"--range {sl.start}:{'' if sl.stop is None else sl.stop} selects no "
                         f"test image of {args.dataset} ({len(d.y_test)} test images)")
    return model.encode(x), y


def run(args, transport=None):
    from spikegate.boards.client import Client
    from spikegate.golden.model_file import load_model
    from spikegate.golden.progress import Progress
    # The model file and the images are read (and checked) before the port is opened.
    model = load_model(args.model) if args.action != "identify" else None
    if args.action in ("classify", "train"):
        steps, labels = _images(args, model)
    transport = transport or open_transport(args.port, args.baud, args.timeout)
    client = Client(transport)
    info = client.identify()
    if args.action == "identify":
        print(f"protocol version {info.version}")
        print(f"network {'-'.join(map(str, info.sizes))}, lanes {list(info.lanes)}")
        print(f"clock {info.clk_freq_hz / 1e6:g} MHz, {info.timesteps} timesteps of dt "
              f"{info.dt:g}, z with {info.z_frac_bits} fraction bits")
        print(f"learning unit: {'yes' if info.learning else 'no'}; max payload "
              f"{info.max_payload} bytes, weight chunks of {info.max_chunk}")
        return 0
    if args.action == "load":
        total = sum(w.size for w in model.int_weights)
        t0 = time.perf_counter()
        with Progress(total, desc="load") as bar:
            sent = client.load(model, progress=lambda done, _: bar.update(done - bar.n))
        print(f"loaded {total} weights ({sent} bytes) in {time.perf_counter() - t0:.1f} s")
        if args.verify:
            for l, w in enumerate(model.int_weights):
                got = client.read_weights(l)
                bad = np.argwhere(got != w)
                if len(bad):
                    print(f"layer {l}: weight {tuple(bad[0])} reads {got[tuple(bad[0])]}, "
                          f"expected {w[tuple(bad[0])]}")
                    return 1
            print("verified: every weight reads back")
        return 0
    client.check_model(model.sizes, model.discrete)
    results = []
    t0 = time.perf_counter()
    if args.action == "classify":
        with Progress(len(steps), desc="classify") as bar:
            for s in steps:
                results.append(client.classify(s))
                bar.update(1)
        if labels is None:
            r = results[0]
            print(f"class {r['decision']} at step {r['decision_step']} ({r['cycles']} cycles)")
        _print_summary(results, labels, time.perf_counter() - t0, info.clk_freq_hz)
        return 0
    # train
    if not info.learning:
        raise ValueError("this bitstream has no learning unit (identify: learning no)")
    for epoch in range(args.epochs):
        results = []
        with Progress(len(steps), desc=f"train epoch {epoch + 1}") as bar:
            for s, y in zip(steps, labels):
                results.append(client.train(s, int(y), args.lr_shift, lfsr_k=args.lfsr_k,
                                            errors_only=args.errors_only))
                bar.update(1)
        print(f"epoch {epoch + 1}: accuracy while training "
              f"{np.mean([r['decision'] for r in results] == labels):.2%}")
    _print_summary(results, labels, time.perf_counter() - t0, info.clk_freq_hz)
    return 0
