"""Reservoir-computing helpers with RectiPy's names and meanings: random recurrent and input
weights, normalising data, and the winner-take-all score of a readout.

Where RectiPy 0.12.2 has a trap, these fix it: input weights have the variance they are asked
for (RectiPy scales by the variance, not its square root); "minmax" maps onto [0, 1] (RectiPy
divides by the old maximum, not the range); normalize returns a new array (RectiPy changes its
argument in place); m·p = 29 with p = 0.29, m = 100 gives 29 inputs per row, not 28.
The random ones take seed= (an int, or a np.random.Generator) for reproducible draws.
"""
from __future__ import annotations

import math

import numpy as np

from ..errors import InvalidValueError, ShapeError, did_you_mean

NORMALIZATIONS = ("minmax", "zscore", "sum")


def random_connectivity(n: int, m: int, p: float, normalize: bool = True, seed=None) -> np.ndarray:
    """An (n, m) coupling matrix: every row has exactly ⌊m·p⌋ nonzero entries at random columns,
    each 1, or 1/⌊m·p⌋ with normalize=True so that every row sums to 1."""
    n, m, count = _whole(n, "n"), _whole(m, "m"), _per_row(m, p)
    if count == 0 and normalize:
        raise InvalidValueError(f"m·p = {m}·{p} < 1 gives rows without inputs, which cannot sum to 1", None,
                                "raise p, or pass normalize=False for a matrix of zeros")
    rng = np.random.default_rng(seed)
    weights = np.zeros((n, m))
    for row in weights:
        row[rng.choice(m, size=count, replace=False)] = 1.0 / count if normalize else 1.0
    return weights


def input_connections(n: int, m: int, p: float, variance: float = 1.0, zero_mean: bool = True,
                      seed=None) -> np.ndarray:
    """(n, m) weights from m inputs onto n units: every input (column) reaches exactly ⌊n·p⌋
    random units, with weights drawn from a normal distribution of the given variance; with
    zero_mean=True, each input's weights are shifted to sum to 0 (it excites as much as it inhibits)."""
    n, m, count = _whole(n, "n"), _whole(m, "m"), _per_row(n, p)
    if count == 0 or (zero_mean and count == 1):
        raise InvalidValueError(f"n·p = {n}·{p} gives {count} unit(s) per input, so every weight would be 0", None,
                                "raise p" + (", or pass zero_mean=False" if count == 1 else ""))
    if not 0.0 <= _float(variance) < math.inf:
        raise InvalidValueError(f"variance must be a number >= 0, got {variance!r}")
    rng = np.random.default_rng(seed)
    weights = np.zeros((n, m))
    for column in weights.T:
        drawn = rng.normal(0.0, math.sqrt(variance), size=count)
        column[rng.choice(n, size=count, replace=False)] = drawn - drawn.mean() if zero_mean else drawn
    return weights


def normalize(x, mode: str = "minmax", row_wise: bool = False) -> np.ndarray:
    """A normalised copy of x: "minmax" onto [0, 1] (a constant becomes 0), "zscore" to mean 0 and
    standard deviation 1 (a constant becomes 0), "sum" to sum 1. row_wise: each row (along the
    last axis) on its own, else the whole array at once."""
    if mode not in NORMALIZATIONS:
        raise InvalidValueError(f"unknown normalization mode {mode!r}", None,
                                did_you_mean(str(mode), NORMALIZATIONS) or f"choose one of {', '.join(NORMALIZATIONS)}")
    x = np.array(x, dtype=np.float64)
    if x.ndim == 0 or x.size == 0:
        raise ShapeError(f"normalize needs an array of numbers, got shape {x.shape}")
    axis = -1 if row_wise else None
    if mode == "minmax":
        low, spread = x.min(axis=axis, keepdims=True), np.ptp(x, axis=axis, keepdims=True)
        return (x - low) / np.where(spread > 0, spread, 1.0)
    if mode == "zscore":
        std = x.std(axis=axis, keepdims=True)
        return (x - x.mean(axis=axis, keepdims=True)) / np.where(std > 0, std, 1.0)
    total = x.sum(axis=axis, keepdims=True)
    if np.any(total == 0):
        raise InvalidValueError("normalize(mode='sum') of " + ("a row" if row_wise else "an array") + " that sums "
                                "to 0", None, "'minmax' or 'zscore' work for data of any sign")
    return x / total


def wta_score(x, y) -> float:
    """Winner-take-all accuracy: the fraction of rows whose largest entry of x (..., n) sits where
    the largest entry of y (..., n) does, or at the class index y (...)."""
    x, y = np.asarray(x), np.asarray(y)
    if x.ndim == 0 or x.size == 0:
        raise ShapeError(f"wta_score needs rows of scores x (..., n), got shape {x.shape}")
    if y.shape == x.shape:
        classes = np.argmax(y, axis=-1)
    elif y.shape == x.shape[:-1] and np.issubdtype(y.dtype, np.integer):
        classes = y
    else:
        raise ShapeError(f"y must have the shape of x {x.shape} (scores or one-hot rows) or {x.shape[:-1]} "
                         f"(class indices), got {y.dtype} of shape {y.shape}")
    return float(np.mean(np.argmax(x, axis=-1) == classes))


def _whole(value, name: str) -> int:
    if isinstance(value, bool) or not (_float(value) >= 1 and _float(value) == int(_float(value))):
        raise InvalidValueError(f"{name} must be a whole number >= 1, got {value!r}")
    return int(value)


def _per_row(size: int, p) -> int:
    """⌊size·p⌋, with p a probability; rounded to 9 digits first so that 100·0.29 counts 29."""
    if not 0.0 <= _float(p) <= 1.0:
        raise InvalidValueError(f"p must be a probability in [0, 1], got {p!r}")
    return math.floor(round(size * float(p), 9))


def _float(value) -> float:
    """value as a float, NaN when it is not a number (so every range check fails on it)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan
