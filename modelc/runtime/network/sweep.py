"""The arguments of Network.sweep: B sets of parameter and initial values, run as one batch
along a leading batch axis of every swept value."""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from ...errors import InvalidValueError, ShapeError
from ..distributed.chunks import Record, SweepJob, check_seed
from ..distributed.runner import run_sweep
from ..distributed.sets import Column, ParameterSets
from .arguments import Records
from .graph import Graph, Node
from .progress import ProgressBar
from .variables import sweep_target


@dataclass
class _Column:
    key: object       # as the user wrote it: "op/var", "label/op/var" or (label, var)
    node: Node
    local: str        # "op/var" of the node
    values: list


class Sweep:
    """The parameter sets of sweep(params, grid): every combination (grid) or the lists zipped."""

    def __init__(self, graph: Graph, params: dict, grid: bool):
        if not params:
            raise InvalidValueError("sweep needs at least one parameter to vary")
        self.columns = [_Column(key, *sweep_target(graph, key), _values(key, values)) for key, values in params.items()]
        lengths = [len(column.values) for column in self.columns]
        if not grid and len(set(lengths)) != 1:
            raise ShapeError("grid=False pairs the value lists element by element; they must have equal lengths, "
                             f"got {lengths}", None, "use grid=True for every combination")
        self.grid = grid
        self.size = math.prod(lengths) if grid else lengths[0]

    def parameters(self) -> list[str]:
        """The swept parameters ("label/op/var"): they compile as vectors, one value per set."""
        return [f"{c.node.label}/{c.local}" for c in self.columns if c.node.variables[c.local].kind == "parameter"]

    def sets(self, module: ModuleType, dtype: np.dtype) -> ParameterSets:
        """The sets as value tables for the generated module (initial states or parameters)."""
        columns = []
        for column in self.columns:
            name = f"{column.node.label}/{column.local}"
            if name not in module.STATES and name not in module.PARAMS:
                raise InvalidValueError(f"'{column.local}' of node '{column.node.label}' is computed by an equation; "
                                        "it cannot be swept", None,
                                        "sweep the parameters or initial states it depends on")
            columns.append(Column(name, dimension_name(column.key), self._table(column, dtype),
                                  name in module.STATES, column.node.n))
        return ParameterSets(columns, self.grid)

    def batched(self, module: ModuleType, y0: dict, params: dict, dtype: np.dtype) -> tuple[dict, dict]:
        """y0 and params of all sets with a leading batch axis: the swept values stacked, the rest broadcast."""
        return self.sets(module, dtype).batched(y0, params)

    @staticmethod
    def _table(column: _Column, dtype: np.dtype) -> np.ndarray:
        """(k, 1) or (k, n): the column's values."""
        try:
            stacked = np.stack([np.asarray(value, dtype=dtype) for value in column.values])
        except (TypeError, ValueError):  # text, or numbers and arrays mixed
            raise InvalidValueError(f"the sweep values of {column.key!r} must be all numbers or all arrays of "
                                    f"{column.node.n}") from None
        if stacked.ndim == 1:
            stacked = stacked[:, None]
        if stacked.shape[1:] not in ((1,), (column.node.n,)):
            raise ShapeError(f"each sweep value of {column.key!r} must be a number or an array of {column.node.n}, "
                             f"got shape {stacked.shape[1:]}")
        return stacked

    def table(self) -> list[dict]:
        """The B parameter sets in batch order, {key: plain Python value}, for Observer.sweep."""
        lists = [c.values for c in self.columns]
        sets = itertools.product(*lists) if self.grid else zip(*lists)
        return [{c.key: _plain(value) for c, value in zip(self.columns, values)} for values in sets]


def dimension_name(key) -> str:
    """A sweep key as a result dimension name: "li_op/tau" -> "li_op.tau", ("tanh", "eta") ->
    "tanh.eta" (a Zarr store cannot hold a "/" in a variable name)."""
    parts = key if isinstance(key, tuple) else (key,)
    return ".".join(str(part) for part in parts).replace("/", ".")


def _values(key, values) -> list:
    values = list(values) if not isinstance(values, np.ndarray) or values.ndim > 0 else [values]
    if not values:
        raise InvalidValueError(f"sweep values of {key!r} are empty")
    return values


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist() if value.ndim else value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value


def run_in_chunks(sweep: Sweep, module: ModuleType, y0: dict, params: dict, inputs: dict, recorded: Records,
                  dtype: np.dtype, progress: bool, names: dict | None = None, **options):
    """Network.sweep with scheduler=, store=, reduce=, chunk_size= or names=: the sets in chunks
    (distributed/), the results an xarray.Dataset. names: {record key as the user wrote it:
    name in the Dataset} ("/" becomes ".": a Zarr store cannot hold it in a name). options:
    dt, steps, sampling_steps, t0, on_nan, seed (the run's), scheduler, store, reduce, chunk_size
    (run_sweep's)."""
    run = {key: options.pop(key) for key in ("dt", "steps", "sampling_steps", "t0", "on_nan", "seed")}
    named = {recorded.aliases.get(key, key): dimension_name(str(name)) for key, name in (names or {}).items()}
    unknown = set(named) - set(recorded.keys)
    if unknown:
        raise InvalidValueError(f"names= names {sorted(map(repr, unknown))[0]}, which is not recorded", None,
                                f"recorded: {', '.join(map(repr, recorded.keys))}")
    check_seed(run["seed"], sweep.size)
    job = SweepJob.of(module, sets=sweep.sets(module, dtype), y0=y0, params=params, inputs=inputs,
                      records=[Record(named[key] if key in named else result_name(key, mean), name, mean)
                               for key, (name, mean) in recorded.keys.items()], **run)
    bar = ProgressBar(sweep.size, unit="set") if progress else None
    try:
        return run_sweep(job, progress=(lambda done, total: bar.update(done)) if bar is not None else None, **options)
    finally:
        if bar is not None:
            bar.close()


def result_name(key, mean: bool) -> str:
    """A record's name in a sweep's Dataset: "out", or "tanh.li_op.v" ("tanh.li_op.v_mean" for a mean)."""
    return key if key == "out" else dimension_name(tuple(key[:2])) + ("_mean" if mean else "")
