"""Tests of spikegate.golden.encoding: pixel to spike time rules and their validation."""

import numpy as np
import pytest

from spikegate.golden.encoding import ENCODING_MODES, EncodingConfig, encode


def test_graded_rule_bright_pixels_early():
    x = np.array([[1.0, 0.75, 0.5, 0.0625, 0.0]])
    t = encode(x, EncodingConfig("graded", t_max=2.0))
    np.testing.assert_array_equal(t, [[0.0, 0.5, 1.0, 1.875, np.inf]])
    assert t.dtype == np.float64


def test_graded_min_intensity():
    x = np.array([0.1, 0.2, 0.21, 1.0])
    t = encode(x, EncodingConfig("graded", min_intensity=0.2))
    assert np.isinf(t[0]) and np.isinf(t[1]), t
    np.testing.assert_allclose(t[2:], [0.79, 0.0])


def test_binary_rule():
    x = np.array([[0.0, 0.5, 0.51, 1.0]])
    t = encode(x, EncodingConfig("binary", threshold=0.5))
    np.testing.assert_array_equal(t, [[np.inf, np.inf, 0.0, 0.0]])


def test_digits_levels_on_default_grid():
    # The 17 grey levels of digits (k / 16, float32) land exactly on dt = 1/16 by default.
    x = (np.arange(17) / 16).astype(np.float32)
    t = encode(x)
    assert np.isinf(t[0])
    np.testing.assert_array_equal(t[1:] * 16, 16 - np.arange(1, 17))


def test_shape_preserved_and_default_config():
    x = np.random.default_rng(0).random((3, 4, 5))
    assert encode(x).shape == (3, 4, 5)
    assert EncodingConfig().mode == "graded"


@pytest.mark.parametrize("kwargs, word", [
    (dict(mode="poisson"), "'poisson'"),
    (dict(t_max=0.0), "t_max"),
    (dict(t_max=float("inf")), "t_max"),
    (dict(t_max="1"), "t_max"),
    (dict(threshold=1.0), "threshold"),
    (dict(threshold=-0.1), "threshold"),
    (dict(min_intensity=1.5), "min_intensity"),
    (dict(min_intensity=True), "min_intensity"),
])
def test_bad_config(kwargs, word):
    with pytest.raises(ValueError, match=word):
        EncodingConfig(**kwargs)


@pytest.mark.parametrize("x", [np.array([1.5]), np.array([-0.1]), np.array([np.nan])])
def test_bad_pixels(x):
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        encode(x)


def test_bad_cfg_type():
    with pytest.raises(TypeError, match="EncodingConfig"):
        encode(np.zeros(3), {"mode": "graded"})


@pytest.mark.parametrize("mode", ENCODING_MODES)
def test_dict_round_trip(mode):
    cfg = EncodingConfig(mode, t_max=3.0, threshold=0.25, min_intensity=0.125)
    assert EncodingConfig.from_dict(cfg.to_dict()) == cfg


def test_from_dict_errors():
    d = EncodingConfig().to_dict()
    with pytest.raises(ValueError, match="unknown encoding keys"):
        EncodingConfig.from_dict({**d, "gain": 2})
    d.pop("t_max")
    with pytest.raises(ValueError, match="missing keys"):
        EncodingConfig.from_dict(d)
    with pytest.raises(ValueError, match="dict"):
        EncodingConfig.from_dict([1, 2])
