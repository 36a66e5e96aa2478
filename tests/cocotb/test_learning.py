"""On-chip learning as generated Verilog under cocotb: 200+ digits training images, and after
every image every weight of every layer equals :mod:`spikegate.golden.sign_backprop`'s."""

import numpy as np
import pytest

from spikegate.golden.data import load_dataset
from spikegate.golden.encoding import EncodingConfig, encode
from spikegate.golden.sign_backprop import random_discrete_network, sign_backprop_step
from spikegate.golden.ttfs_discrete import DiscreteNetwork, times_to_steps
from spikegate.sim.ttfs_run import simulate_hardware


def golden_weights_after_each(net, steps, labels, lr_shift):
    net = DiscreteNetwork([w.copy() for w in net.weights], list(net.thetas), net.config)
    out = []
    for s, y in zip(steps, labels):
        if 0 <= y < net.sizes[-1]:
            sign_backprop_step(net, s, int(y), lr_shift)
        out.append([w.copy() for w in net.weights])
    return out


@pytest.mark.slow
def test_learning_200_digits_images_bit_exact():
    seed, n, lr_shift = 8, 210, 1
    d = load_dataset("digits")
    net = random_discrete_network((64, 64, 10), seed=seed)
    steps = times_to_steps(encode(d.x_train[:n], EncodingConfig(mode="graded")), net.config)
    labels = d.y_train[:n].copy()
    labels[5] = 12                                   # out of range: refused, nothing changes
    hw = simulate_hardware(net, steps, (3, 2), trace=False, labels=labels, lr_shift=lr_shift,
                           read_weights=True)
    expected = golden_weights_after_each(net, steps, labels, lr_shift)
    assert hw.label_error.tolist() == [int(i == 5) for i in range(n)]
    assert hw.learn_cycles[5] == 0 and (hw.learn_cycles[np.arange(n) != 5] > 0).all()
    changed = 0
    for b in range(n):
        for l in range(len(net.weights)):
            got, exp = hw.weights[l][b], expected[b][l]
            bad = np.argwhere(got != exp)
            assert not len(bad), (f"seed {seed}, image {b} (label {labels[b]}), layer {l}, weight "
                                  f"{tuple(int(x) for x in bad[0])}: hardware {got[tuple(bad[0])]}, "
                                  f"golden {exp[tuple(bad[0])]}")
            prev = expected[b - 1][l] if b else net.weights[l]
            changed += int((exp != prev).sum())
    assert changed > 1000, f"only {changed} weight changes: the test would be weak"


def test_learning_read_back_at_the_ulx3s_latency():
    # The ULX3S timing registers the read-back (rb_latency 2): the weights read after each
    # image are still golden's (read at latency 1 they would be the previous weight's).
    from spikegate.boards.timing import ULX3S
    assert ULX3S.rb_latency == 2
    seed, n, lr_shift = 3, 6, 1
    d = load_dataset("digits")
    net = random_discrete_network((64, 16, 10), seed=seed)
    steps = times_to_steps(encode(d.x_train[:n], EncodingConfig(mode="graded")), net.config)
    labels = d.y_train[:n].copy()
    hw = simulate_hardware(net, steps, (4, 2), trace=False, labels=labels, lr_shift=lr_shift,
                           read_weights=True, timing=ULX3S)
    expected = golden_weights_after_each(net, steps, labels, lr_shift)
    for b in range(n):
        for l in range(len(net.weights)):
            assert np.array_equal(hw.weights[l][b], expected[b][l]), (b, l)
    assert any((expected[-1][l] != net.weights[l]).any() for l in range(2))   # it learned
