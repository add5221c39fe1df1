"""The arguments of Network.sweep: B sets of parameter and initial values, run as one batch
along a leading batch axis of every swept value."""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from types import ModuleType

import numpy as np

from ...errors import InvalidValueError, ShapeError
from .graph import Graph, Node
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
        lists = [column.values for column in self.columns]
        if grid:
            self.sets = list(itertools.product(*lists))
        elif len({len(values) for values in lists}) != 1:
            raise ShapeError("grid=False pairs the value lists element by element; they must have equal lengths, "
                             f"got {[len(values) for values in lists]}", None, "use grid=True for every combination")
        else:
            self.sets = list(zip(*lists))

    @property
    def size(self) -> int:
        return len(self.sets)

    def parameters(self) -> list[str]:
        """The swept parameters ("label/op/var"): they compile as vectors, one value per set."""
        return [f"{c.node.label}/{c.local}" for c in self.columns if c.node.variables[c.local].kind == "parameter"]

    def batched(self, module: ModuleType, y0: dict, params: dict, dtype: np.dtype) -> tuple[dict, dict]:
        """y0 and params with a leading batch axis: the swept values stacked, the rest broadcast."""
        y0, params = dict(y0), dict(params)
        for index, column in enumerate(self.columns):
            name = f"{column.node.label}/{column.local}"
            stacked = self._stacked(index, column, dtype)
            if name in module.STATES:
                y0[name] = np.broadcast_to(stacked, (self.size, column.node.n))
            elif name in module.PARAMS:
                params[name] = stacked
            else:
                raise InvalidValueError(f"'{column.local}' of node '{column.node.label}' is computed by an equation; "
                                        "it cannot be swept", None, "sweep the parameters or initial states it depends on")
        for name, value in y0.items():
            if np.ndim(value) == 1:
                y0[name] = np.broadcast_to(value, (self.size, value.shape[-1]))
        return y0, params

    def _stacked(self, index: int, column: _Column, dtype: np.dtype) -> np.ndarray:
        """(B, 1) or (B, n): the column's value in each set."""
        try:
            stacked = np.stack([np.asarray(s[index], dtype=dtype) for s in self.sets])
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
        return [{c.key: _plain(s[i]) for i, c in enumerate(self.columns)} for s in self.sets]


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
