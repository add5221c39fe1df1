"""Losses: each gives its value and its gradient with respect to the predictions.

The meanings are torch's (RectiPy's users know them): reduction "mean" over every element
(over every sample for nll and ce), predictions (..., n) with the features or classes on the
last axis; nll and ce take class indices (...) or one-hot targets (..., n).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from ..errors import InvalidValueError, UnsupportedFeatureError, did_you_mean

Loss = Callable[[np.ndarray, np.ndarray], "tuple[float, np.ndarray]"]


def mse(y, target):
    """mean((y - target)^2)"""
    difference = np.subtract(y, target, dtype=np.result_type(y, target, float))  # (a fresh array: scaled in place)
    flat = difference.reshape(-1)
    value = float(np.dot(flat, flat)) / difference.size
    difference *= 2.0 / difference.size
    return value, difference


def l1(y, target):
    """mean(|y - target|)"""
    difference = y - target
    return float(np.mean(np.abs(difference))), np.sign(difference) / difference.size


def nll(y, target):
    """-mean(y[class]): y holds log-probabilities."""
    onehot = _onehot(target, y)
    samples = y.size // y.shape[-1]
    return -float(np.sum(y * onehot)) / samples, -onehot / samples


def ce(y, target):
    """Cross entropy of the logits y: -mean(log_softmax(y)[class])."""
    onehot = _onehot(target, y)
    samples = y.size // y.shape[-1]
    shifted = y - np.max(y, axis=-1, keepdims=True)
    log_softmax = shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))
    return -float(np.sum(log_softmax * onehot)) / samples, (np.exp(log_softmax) - onehot) / samples


def kld(y, target):
    """mean(target * (log(target) - y)): y holds log-probabilities, target probabilities."""
    safe = np.where(target > 0, target, 1.0)
    return float(np.mean(np.where(target > 0, target * (np.log(safe) - y), 0.0))), -target / y.size


LOSSES: dict[str, Loss] = {"mse": mse, "l1": l1, "nll": nll, "ce": ce, "kld": kld}


def get_loss(name: str) -> Loss:
    if name not in LOSSES:
        raise UnsupportedFeatureError(f"unknown loss '{name}'", None,
                                      did_you_mean(name, LOSSES) or f"choose one of {', '.join(LOSSES)}")
    return LOSSES[name]


def _onehot(target, y) -> np.ndarray:
    """Class indices (...) or one-hot rows (..., n) as one-hot rows shaped like y."""
    target = np.asarray(target)
    if target.shape == y.shape:
        return target.astype(y.dtype)
    if target.shape != y.shape[:-1] or not np.issubdtype(target.dtype, np.integer):
        raise InvalidValueError(f"targets must be class indices of shape {y.shape[:-1]} or one-hot rows of shape "
                                f"{y.shape}, got {target.dtype} of shape {target.shape}")
    if target.size and (target.min() < 0 or target.max() >= y.shape[-1]):
        raise InvalidValueError(f"class indices must lie in 0..{y.shape[-1] - 1}")
    return np.eye(y.shape[-1], dtype=y.dtype)[target]
