"""Summaries of each set's records, computed on the worker so only they travel and are stored:
named ones (mean, max, final, peak_frequency) or the user's reduce(records)."""
from __future__ import annotations

import functools
from typing import Callable

import numpy as np

from ...errors import InvalidValueError, did_you_mean


def _mean(x: np.ndarray, interval: float) -> np.ndarray:
    return x.mean(axis=1)


def _max(x: np.ndarray, interval: float) -> np.ndarray:
    return x.max(axis=1)


def _final(x: np.ndarray, interval: float) -> np.ndarray:
    return x[:, -1]


def _peak_frequency(x: np.ndarray, interval: float) -> np.ndarray:
    """The frequency (1 / the unit of dt) of the largest peak of each record's spectrum, the
    constant part left out: the oscillation frequency of a limit cycle."""
    if x.shape[1] < 4:
        raise InvalidValueError(f"peak_frequency needs at least 4 recorded rows, got {x.shape[1]}", None,
                                "record more rows: more steps or a smaller sampling_steps")
    spectrum = np.abs(np.fft.rfft(x - x.mean(axis=1, keepdims=True), axis=1))
    peak = spectrum[:, 1:].argmax(axis=1) + 1
    return np.fft.rfftfreq(x.shape[1], interval)[peak]


NAMED = {"mean": _mean, "max": _max, "final": _final, "peak_frequency": _peak_frequency}


def _apply(summary: Callable, interval: float, records: dict) -> dict:
    return {name: summary(value, interval) for name, value in records.items()}


def reduction(reduce, interval: float) -> Callable | None:
    """The function a worker applies to a chunk's records {name: (sets, time, ...)}: a named
    summary over the time axis of every record (interval: the time between recorded rows), the
    user's callable as it is, or None (keep the records)."""
    if reduce is None or callable(reduce):
        return reduce
    if reduce not in NAMED:
        raise InvalidValueError(f"unknown reduction {reduce!r}", None,
                                did_you_mean(str(reduce), NAMED) or f"named reductions: {', '.join(NAMED)}; "
                                "or pass a function reduce(records) -> {name: array (sets, ...)}")
    return functools.partial(_apply, NAMED[reduce], interval)
