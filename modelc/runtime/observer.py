"""Observer: the recordings of one `Network.run` (or `Network.sweep`) as NumPy arrays.

Row k of every record is the value after step (k + 1) * sampling_steps of the run, i.e. at
time ``obs.times[k] = t0 + (k + 1) * sampling_steps * dt`` (t0: the network's time when the
run started). Records of a run have shape (T // sampling_steps, n); records of a sweep
(T // sampling_steps, B, n), B the number of parameter sets (``obs.sweep``). A record reduced
to the population mean drops the unit axis: (T // sampling_steps,) or (T // sampling_steps, B).

Importing this module imports only NumPy; matplotlib and pandas load when plot/matshow and
to_dataframe are called.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from ..errors import InvalidValueError, ShapeError, UnknownVariableError, did_you_mean
from .cache import atomic_file, ordinary_file_mode


# What reading a file that save() did not write (or a damaged one) raises: another archive, an
# .npy file, a pickle, broken JSON, missing or ill-typed entries.
_MALFORMED = (ValueError, KeyError, IndexError, TypeError, AttributeError, EOFError, zipfile.BadZipFile)


def _key_text(key) -> str:
    return key if isinstance(key, str) else repr(tuple(key))


class Observer:
    """Recorded outputs and variables of a run, indexed like RectiPy's Observer.

    ``obs["out"]``                the network's output (the output node's output_var);
    ``obs[("tanh", "li_op/v")]``  a variable given in ``record_vars`` (short names work too,
                                  as spelled in record_vars); ``obs[(node, var, True)]`` the
                                  population mean when it was recorded reduced;
    ``obs.times``                 the time of every row: row k is the value after step
                                  (k + 1) * sampling_steps, at t0 + (k + 1) * sampling_steps * dt;
    ``obs["steps"]``, obs.steps   the step count of every row (RectiPy's key), unless a record
                                  has that name;
    ``obs.sweep``                 for a sweep: the B parameter sets, a list of dicts, in the
                                  order of the batch axis (axis 1 of every record).
    """

    def __init__(self, dt: float, sampling_steps: int = 1, records: dict | None = None,
                 times: np.ndarray | None = None, sweep: list[dict] | None = None,
                 aliases: dict | None = None, means: Iterable = ()):
        self.dt = float(dt)
        self.sampling_steps = int(sampling_steps)
        self._records: dict[Any, np.ndarray] = dict(records or {})
        rows = len(next(iter(self._records.values()))) if self._records else 0
        self.times = (np.arange(1, rows + 1) * self.sampling_steps * self.dt) if times is None else np.asarray(times)
        self.sweep = sweep
        self._aliases: dict[Any, Any] = dict(aliases or {})
        self._means = set(means)

    # -- access ---------------------------------------------------------------------

    def _resolve(self, key):
        if isinstance(key, list):
            key = tuple(key)
        if key in self._records:
            return key
        if key in self._aliases:
            return self._aliases[key]
        raise UnknownVariableError(f"nothing recorded under {_key_text(key)}",
                                   None, did_you_mean(_key_text(key), [_key_text(k) for k in self.keys()]) or
                                   "recorded: " + ", ".join(_key_text(k) for k in self.keys()) +
                                   "; record more with run(..., record_vars=[(node, var), ...])")

    def __getitem__(self, key) -> np.ndarray:
        if isinstance(key, str) and key == "steps" and key not in self._records and key not in self._aliases:
            return self.steps
        return self._records[self._resolve(key)]

    def __contains__(self, key) -> bool:
        if isinstance(key, str) and key == "steps":
            return True
        try:
            self._resolve(key)
            return True
        except UnknownVariableError:
            return False

    def keys(self) -> list:
        return list(self._records)

    def __iter__(self):
        return iter(self._records)

    def __len__(self) -> int:
        return len(self.times)

    def to_numpy(self, key) -> np.ndarray:
        """The record as an array (the same as obs[key]; RectiPy's name)."""
        return self[key]

    @property
    def steps(self) -> np.ndarray:
        """The step count of every row, relative to the start of the run: (k + 1) * sampling_steps."""
        return np.arange(1, len(self.times) + 1) * self.sampling_steps

    @property
    def recorded_variables(self) -> list:
        return [k for k in self._records if k != "out"]

    def _array(self, y) -> tuple[np.ndarray, str]:
        if isinstance(y, (str, tuple, list)):
            return self[y], _key_text(y)
        return np.asarray(y), ""

    # -- plots ----------------------------------------------------------------------

    def plot(self, y="out", x=None, ax=None, **kwargs):
        """Line plot of a record against time (or against another record x); returns the Axes.

        A (T, n) record draws n lines; a sweep record (T, B, n) draws B*n lines. `figsize`
        is used when no ax is given; other keywords go to ``ax.plot``.
        """
        import matplotlib.pyplot as plt
        figsize = kwargs.pop("figsize", None)
        if ax is None:
            _, ax = plt.subplots(figsize=figsize)
        values, label = self._array(y)
        values = values.reshape(values.shape[0], -1) if values.ndim > 2 else values
        if x is None:
            xs, xlabel = self.times, "time"
        else:
            xs, xlabel = self._array(x)
            xs = xs.reshape(xs.shape[0], -1) if xs.ndim > 2 else xs
        ax.plot(xs, values, **kwargs)
        ax.set_xlabel(xlabel)
        if label:
            ax.set_ylabel(label)
        return ax

    def matshow(self, y="out", ax=None, batch: int | None = None, **kwargs):
        """Units x time image of a record (T, n) (of batch member `batch` for a sweep); returns the Axes."""
        import matplotlib.pyplot as plt
        figsize = kwargs.pop("figsize", None)
        values, label = self._array(y)
        if values.ndim == 3:
            if batch is None:
                raise ShapeError(f"{label or 'this record'} has shape {values.shape} (T, B, n) from a sweep",
                                 None, "choose one parameter set with batch=b")
            values = values[:, batch]
        if values.ndim == 1:
            values = values[:, None]
        if ax is None:
            _, ax = plt.subplots(figsize=figsize)
        t = self.times if len(self.times) == len(values) else np.arange(len(values))
        t0, t1 = (float(t[0]), float(t[-1])) if len(t) else (0.0, 1.0)
        kwargs.setdefault("aspect", "auto")
        kwargs.setdefault("interpolation", "nearest")
        kwargs.setdefault("origin", "lower")
        kwargs.setdefault("extent", (t0, t1, -0.5, values.shape[1] - 0.5))
        ax.imshow(values.T, **kwargs)
        ax.set_xlabel("time")
        ax.set_ylabel("unit")
        if label:
            ax.set_title(label)
        return ax

    # -- spikes (an event's record counts its spikes in each row) -----------------------

    def spikes(self, key) -> tuple[np.ndarray, np.ndarray]:
        """(times, units) of every spike of an event's record, e.g. record_vars=[("qif", "spike")]
        then obs.spikes(("qif", "spike")) (a node label works when one record of it was kept).
        A spike's time is the end of its row: the end of its step with sampling_steps=1. A sweep's
        units are (batch index, unit) pairs, shape (spikes, 2)."""
        counts = self[self._spike_key(key)]
        rows, *units = np.nonzero(counts)
        repeats = counts[(rows, *units)].astype(int)  # a row of several steps may hold several spikes
        units = np.stack(units, axis=-1) if len(units) > 1 else units[0]
        return np.repeat(self.times[rows], repeats), np.repeat(units, repeats, axis=0)

    def firing_rate(self, key, per_unit: bool = False) -> np.ndarray:
        """Spikes per unit of time: the population's mean rate in each row (rows,) ((rows, B) for
        a sweep), or with per_unit=True each unit's mean rate over the whole record (n,)."""
        counts = self[self._spike_key(key)]
        if per_unit:
            return counts.sum(axis=0) / (len(counts) * self.sampling_steps * self.dt)
        return counts.mean(axis=-1) / (self.sampling_steps * self.dt)

    def raster(self, key, ax=None, **kwargs):
        """Raster plot of an event's record (one dot per spike: time, unit); returns the Axes.
        `figsize` is used when no ax is given; other keywords go to ``ax.scatter``."""
        import matplotlib.pyplot as plt
        figsize = kwargs.pop("figsize", None)
        times, units = self.spikes(key)
        if units.ndim > 1:
            raise ShapeError("a raster shows one run; this record is a sweep's", None,
                             "plot one parameter set, e.g. from obs[key][:, b]")
        if ax is None:
            _, ax = plt.subplots(figsize=figsize)
        kwargs.setdefault("s", 2)
        kwargs.setdefault("marker", "|")
        ax.scatter(times, units, **kwargs)
        ax.set_xlabel("time")
        ax.set_ylabel("unit")
        return ax

    def _spike_key(self, key):
        """A record key, or a node label with exactly one record of that node."""
        if key in self:
            return key
        found = [k for k in self._records if isinstance(k, tuple) and k[0] == key and len(k) == 2]
        if len(found) == 1:
            return found[0]
        raise UnknownVariableError(f"no spike record of {_key_text(key)}", None,
                                   "record an event, e.g. run(..., record_vars=[(node, 'spike')]), and pass its key")

    # -- tables and files -----------------------------------------------------------

    def to_dataframe(self, y="out"):
        """A pandas DataFrame indexed by time: one column per unit ((batch, unit) for a sweep).

        y=None: every record of a run (not a sweep) side by side, as PyRates' run() returns
        them: a column per record when each has one unit (or is a population mean), else
        columns (record, unit). pandas is optional (pip install "modelc[pandas]"); without it
        obs[key] and obs.times hold the same numbers."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError('Observer.to_dataframe needs pandas: pip install pandas (or "modelc[pandas]"); '
                              "obs[key] and obs.times hold the same numbers as arrays") from None
        if y is None:
            return self._all_records_frame(pd)
        values, label = self._array(y)
        index = pd.Index(self.times, name="time")
        if values.ndim == 1:
            return pd.DataFrame({label or "value": values}, index=index)
        if values.ndim == 2:
            columns = pd.RangeIndex(values.shape[1], name="batch" if self._is_mean(y) else "unit")
            return pd.DataFrame(values, index=index, columns=columns)
        columns = pd.MultiIndex.from_product([range(values.shape[1]), range(values.shape[2])],
                                             names=["batch", "unit"])
        return pd.DataFrame(values.reshape(values.shape[0], -1), index=index, columns=columns)

    def _all_records_frame(self, pd):
        if any(value.ndim > 2 or (value.ndim == 2 and key in self._means) for key, value in self._records.items()):
            raise ShapeError("to_dataframe() of a sweep needs one record at a time", None, "pass y=key")
        index = pd.Index(self.times, name="time")
        columns = {(_key_text(key), unit): value[:, unit] if value.ndim == 2 else value
                   for key, value in self._records.items()
                   for unit in range(value.shape[1] if value.ndim == 2 else 1)}
        frame = pd.DataFrame(columns, index=index)
        if all(unit == 0 for _, unit in columns):
            frame.columns = [name for name, _ in columns]
        else:
            frame.columns = pd.MultiIndex.from_tuples(list(columns), names=["record", "unit"])
        return frame

    def _is_mean(self, y) -> bool:
        try:
            return self._resolve(y) in self._means
        except (UnknownVariableError, TypeError):
            return False

    def save(self, path) -> Path:
        """Write every record, the times and the sweep table to one file (NumPy's .npz format)
        at path, whatever its suffix; returns the path (Observer.load reads it back)."""
        path = Path(path)
        keys = list(self._records)
        meta = {
            "format": "modelc-observer-1",
            "dt": self.dt,
            "sampling_steps": self.sampling_steps,
            "keys": [k if isinstance(k, str) else list(k) for k in keys],
            "means": [keys.index(k) for k in self._means if k in keys],
            "aliases": [[list(a) if isinstance(a, tuple) else a, keys.index(k)]
                        for a, k in self._aliases.items() if k in keys],
            "sweep": _jsonable(self.sweep),
        }
        arrays = {f"record_{i}": value for i, value in enumerate(self._records.values())}
        with atomic_file(path, ordinary_file_mode()) as handle:  # interrupted, it leaves the old file
            np.savez(handle, meta=np.array(json.dumps(meta)), times=self.times, **arrays)
        return path

    @classmethod
    def load(cls, path) -> "Observer":
        """An Observer written by save(); any other file is an InvalidValueError naming it."""
        try:
            return cls._read(Path(path))
        except _MALFORMED as exc:
            raise InvalidValueError(f"{path} is not an Observer file written by modelc, or it is damaged", None,
                                    "Observer.load reads the .npz files that Observer.save writes") from exc

    @classmethod
    def _read(cls, path: Path) -> "Observer":
        with np.load(path, allow_pickle=False) as data:
            meta = json.loads(str(data["meta"]))
            if not isinstance(meta, dict) or meta.get("format") != "modelc-observer-1":
                raise ValueError("no modelc-observer-1 header")
            keys = [k if isinstance(k, str) else tuple(k) for k in meta["keys"]]
            records = {k: data[f"record_{i}"] for i, k in enumerate(keys)}
            times = data["times"]
        aliases = {(tuple(a) if isinstance(a, list) else a): keys[i] for a, i in meta["aliases"]}
        return cls(meta["dt"], meta["sampling_steps"], records, times, meta["sweep"], aliases,
                   [keys[i] for i in meta["means"]])

    def __eq__(self, other) -> bool:
        if not isinstance(other, Observer):
            return NotImplemented
        return (self.dt == other.dt and self.sampling_steps == other.sampling_steps and
                self.keys() == other.keys() and np.array_equal(self.times, other.times) and
                all(np.array_equal(self[k], other[k]) for k in self.keys()) and
                _jsonable(self.sweep) == _jsonable(other.sweep))

    __hash__ = None

    def __repr__(self) -> str:
        rows = len(self.times)
        span = f", t = {self.times[0]:g} .. {self.times[-1]:g}" if rows else ""
        lines = [f"Observer({rows} rows, dt={self.dt:g}, sampling_steps={self.sampling_steps}{span})"]
        width = max((len(_key_text(k)) for k in self._records), default=0)
        for key, value in self._records.items():
            note = "  (population mean)" if key in self._means else ""
            lines.append(f"  {_key_text(key):<{width}}  {value.shape}{note}")
        if self.sweep is not None:
            names = list(self.sweep[0]) if self.sweep else []
            lines.append(f"  sweep: {len(self.sweep)} parameter sets over {', '.join(map(str, names))}")
        return "\n".join(lines)


def _jsonable(value):
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
