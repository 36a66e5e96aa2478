"""Input encoding: pixel intensity to spike time (bright pixels spike early).

Two rules, chosen by :class:`EncodingConfig`; pixels are floats in ``[0, 1]`` (as
:func:`spikegate.golden.data.load_dataset` returns them) and times are float64 time units,
``np.inf`` meaning "this pixel never spikes":

``graded``
    ``t = t_max * (1 - x)`` for ``x > min_intensity``; ``inf`` for ``x <= min_intensity``.
    The brightest pixel spikes at ``t = 0``, a pixel of intensity ``x`` at ``t_max (1 - x)``.
    With the defaults (``t_max = 1``, ``min_intensity = 0``), the 17 grey levels of the
    ``digits`` data set (``k / 16``) fall exactly on the discrete model's default grid
    ``dt = 1/16``.
``binary`` (the FPGA prototype's rule)
    ``t = 0`` for ``x > threshold``; ``inf`` otherwise. Every input spike arrives at once.

The discrete model turns these times into integer steps with
:func:`spikegate.golden.ttfs_discrete.times_to_steps` (round half up on the ``dt`` grid);
:meth:`EncodingConfig.to_dict` / :meth:`EncodingConfig.from_dict` store the rule in the model
file.
"""

import math
from dataclasses import dataclass

import numpy as np

__all__ = ["ENCODING_MODES", "EncodingConfig", "encode"]

ENCODING_MODES = ("graded", "binary")


def _number(name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a number, not {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, not {value!r}")
    return value


@dataclass(frozen=True)
class EncodingConfig:
    """How pixels become spike times.

    Parameters
    ----------
    mode : str
        ``"graded"`` (time linear in intensity) or ``"binary"`` (spike at 0 or never).
    t_max : float
        Graded mode: the time of a pixel of intensity 0+ (``> 0``, at most 1000).
    threshold : float
        Binary mode: pixels with ``x > threshold`` spike at ``t = 0`` (in ``[0, 1)``).
    min_intensity : float
        Graded mode: pixels with ``x <= min_intensity`` never spike (in ``[0, 1)``).

    Raises
    ------
    ValueError
        For an unknown mode or an out-of-range number, naming the value.
    """
    mode: str = "graded"
    t_max: float = 1.0
    threshold: float = 0.5
    min_intensity: float = 0.0

    def __post_init__(self):
        if self.mode not in ENCODING_MODES:
            raise ValueError(f"encoding mode must be one of {', '.join(ENCODING_MODES)}, "
                             f"not {self.mode!r}")
        t_max = _number("t_max", self.t_max)
        if not 0 < t_max <= 1000:
            raise ValueError(f"t_max must be in (0, 1000], not {self.t_max!r}")
        threshold = _number("threshold", self.threshold)
        if not 0 <= threshold < 1:
            raise ValueError(f"threshold must be in [0, 1), not {self.threshold!r}")
        min_intensity = _number("min_intensity", self.min_intensity)
        if not 0 <= min_intensity < 1:
            raise ValueError(f"min_intensity must be in [0, 1), not {self.min_intensity!r}")
        object.__setattr__(self, "t_max", t_max)
        object.__setattr__(self, "threshold", threshold)
        object.__setattr__(self, "min_intensity", min_intensity)

    def to_dict(self):
        """A JSON-able dict (the model file's ``encoding`` entry)."""
        return {"mode": self.mode, "t_max": self.t_max, "threshold": self.threshold,
                "min_intensity": self.min_intensity}

    @classmethod
    def from_dict(cls, d):
        """Inverse of :meth:`to_dict`; unknown or missing keys raise ``ValueError``."""
        if not isinstance(d, dict):
            raise ValueError(f"an encoding must be a dict, not {type(d).__name__}")
        known = {"mode", "t_max", "threshold", "min_intensity"}
        extra = set(d) - known
        if extra:
            raise ValueError(f"unknown encoding keys {sorted(extra)}; expected {sorted(known)}")
        missing = known - set(d)
        if missing:
            raise ValueError(f"encoding is missing keys {sorted(missing)}")
        return cls(**d)


def encode(x, cfg=None):
    """Spike times (float64, ``np.inf`` = no spike) of pixels ``x`` in ``[0, 1]``.

    ``x`` may have any shape; the result has the same shape. Raises ``ValueError`` for pixels
    outside ``[0, 1]`` or NaN.
    """
    cfg = EncodingConfig() if cfg is None else cfg
    if not isinstance(cfg, EncodingConfig):
        raise TypeError(f"cfg must be an EncodingConfig, not {type(cfg).__name__}")
    x = np.asarray(x, dtype=np.float64)
    if x.size and np.isnan(x).any():
        raise ValueError("pixels must be in [0, 1], got NaN")
    if x.size and (x.min() < 0 or x.max() > 1):
        raise ValueError(f"pixels must be in [0, 1], got range [{x.min()!r}, {x.max()!r}]")
    if cfg.mode == "binary":
        return np.where(x > cfg.threshold, 0.0, np.inf)
    return np.where(x > cfg.min_intensity, cfg.t_max * (1.0 - x), np.inf)
