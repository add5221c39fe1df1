"""The B parameter sets of a sweep, computed from their index: every combination of the value
lists (a grid, in itertools.product order: the last list varies fastest) or the lists zipped.

No list of B tuples is ever built (a sweep of 10⁶ sets would hold that list in the client);
the values of sets start..stop are looked up from the value tables when a chunk runs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

SET_DIM = "set"  # the one sweep dimension of a zipped (non-grid) sweep


@dataclass
class Column:
    """One swept variable: its values, one row per value, (k, 1) or (k, n) per unit."""

    name: str          # the generated module's name ("label/op/var" or "op/var")
    dim: str           # its dimension (grid) or coordinate (zipped) name in the results
    table: np.ndarray  # (k, 1) or (k, n)
    state: bool        # an initial state (else a parameter)
    units: int         # n of its population

    @property
    def coordinate(self) -> np.ndarray:
        """The values as a result coordinate: numbers, or 0..k-1 for values given per unit."""
        return self.table[:, 0] if self.table.shape[1] == 1 else np.arange(len(self.table))


@dataclass(frozen=True)
class Block:
    """A chunk of sets: the flat range start..stop, which is also one box of the sweep's dims."""

    start: int
    stop: int
    region: tuple[slice, ...]   # over the sweep dims

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(s.stop - s.start for s in self.region)


class ParameterSets:
    """The sets of a sweep (grid or zipped) over `columns`; see the module docstring."""

    def __init__(self, columns: list[Column], grid: bool):
        self.columns, self.grid = columns, grid
        self.shape = tuple(len(c.table) for c in columns) if grid else (len(columns[0].table),)
        self.size = math.prod(self.shape)

    @property
    def dims(self) -> list[str]:
        return [c.dim for c in self.columns] if self.grid else [SET_DIM]

    def rows(self, start: int, stop: int) -> list[np.ndarray]:
        """For each column, the row of its table that each set start..stop takes."""
        flat = np.arange(start, stop)
        if self.grid:
            return list(np.unravel_index(flat, self.shape))
        return [flat] * len(self.columns)

    def batched(self, y0: dict, params: dict, start: int = 0, stop: int | None = None) -> tuple[dict, dict]:
        """y0 and params of sets start..stop with a leading batch axis: the swept values taken
        from their tables, every other initial state broadcast (parameters broadcast by themselves)."""
        stop = self.size if stop is None else stop
        y0, params = dict(y0), dict(params)
        for column, rows in zip(self.columns, self.rows(start, stop)):
            values = column.table[rows]
            if column.state:
                y0[column.name] = np.broadcast_to(values, (stop - start, column.units))
            else:
                params[column.name] = values
        for name, value in y0.items():
            if np.ndim(value) == 1:
                y0[name] = np.broadcast_to(value, (stop - start, value.shape[-1]))
        return y0, params

    def blocks(self, target: int) -> list[Block]:
        """Chunks of about `target` sets (at most that many), each a contiguous flat range that is
        also a box of the sweep's dims: indices fixed on the leading dims, a slice of one dim,
        whole on the trailing ones. So a chunk is written to a store as one region."""
        target = max(1, int(target))
        axis = next(a for a in range(len(self.shape)) if math.prod(self.shape[a + 1:]) <= target)
        inner = math.prod(self.shape[axis + 1:])
        step = max(1, target // inner)
        blocks = []
        for lead in np.ndindex(*self.shape[:axis]):
            for begin in range(0, self.shape[axis], step):
                end = min(begin + step, self.shape[axis])
                box = tuple(slice(i, i + 1) for i in lead) + (slice(begin, end),) + \
                    tuple(slice(0, n) for n in self.shape[axis + 1:])
                start = int(np.ravel_multi_index(lead + (begin,) + (0,) * (len(self.shape) - axis - 1), self.shape))
                blocks.append(Block(start, start + (end - begin) * inner, box))
        return blocks
