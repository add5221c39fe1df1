"""A sweep's results as an xarray.Dataset: gathered in memory, or streamed chunk by chunk into
a Zarr store that an interrupted sweep resumes from.

Dimensions: the swept variables (a grid) or `set` (zipped lists), then `time`, then `unit`
(absent for population means and the named reductions' time axis). A chunk is one box of the
sweep dimensions (sets.Block), so it is written as one region. A store marks each chunk in
`chunk_done` only after its data is written: a chunk cut off while being written is run again.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ...errors import SweepStoreError
from .chunks import SweepJob
from .sets import SET_DIM, Block

DONE = "chunk_done"        # one flag per chunk in a store
FINGERPRINT = "modelc_sweep"
CHUNK_SIZE = "modelc_chunk_size"


class Layout:
    """The dimensions and coordinates of a sweep's results."""

    def __init__(self, job: SweepJob, reduced: str | None):
        self.job, self.reduced = job, reduced   # reduced: None, a named reduction, or "callable"

    def dims(self, values: dict[str, np.ndarray]) -> dict[str, tuple[str, ...]]:
        """{name: dims} of the results, from one chunk's values (one row per set)."""
        sizes = {v.shape[-1] for v in values.values() if v.ndim == self._unit_axis_ndim}
        dims = {}
        for name, value in values.items():
            if self.reduced == "callable":
                rest = tuple(f"{name}_dim_{i}" for i in range(1, value.ndim))
            else:
                rest = ("time",) if self.reduced is None and value.ndim > 1 else ()
                if value.ndim == self._unit_axis_ndim:
                    rest += ("unit",) if len(sizes) == 1 else (f"{name}_unit",)
            dims[name] = tuple(self.job.sets.dims) + rest
        return dims

    @property
    def _unit_axis_ndim(self) -> int:
        return 3 if self.reduced is None else 2

    def coords(self, with_time: bool) -> dict:
        """The parameter values (and the times of the rows) as coordinates."""
        sets = self.job.sets
        coords: dict = {} if sets.grid else {SET_DIM: np.arange(sets.size)}
        for column in sets.columns:
            along = column.dim if sets.grid else SET_DIM
            coords[column.dim] = (along, column.coordinate)
            if column.table.shape[1] > 1:  # values per unit: the index above, the values here
                coords[f"{column.dim}_values"] = ((along, f"{column.dim}_unit"), column.table)
        if with_time:
            coords["time"] = self.job.times
        return coords

    def attrs(self) -> dict:
        job = self.job
        return {"dt": job.dt, "steps": job.steps, "sampling_steps": job.sampling_steps, "t0": job.t0,
                "module_key": job.key, "reduce": self.reduced or "none",
                "swept": {c.dim: c.name for c in job.sets.columns},
                "records": {r.name: r.target + (" (population mean)" if r.mean else "") for r in job.records}}


class MemoryResults:
    """Results gathered into NumPy arrays, a Dataset at the end."""

    chunk_size = None

    def __init__(self, layout: Layout):
        self.layout = layout
        self.arrays: dict[str, np.ndarray] = {}
        self.dims: dict[str, tuple[str, ...]] = {}

    def done(self) -> set[int]:
        return set()

    def start(self, blocks: list[Block], chunk_size: int) -> None:
        self.blocks = blocks

    def write(self, index: int, values: dict[str, np.ndarray]) -> None:
        block = self.blocks[index]
        if not self.arrays:
            self.dims = self.layout.dims(values)
            shape = self.layout.job.sets.shape
            self.arrays = {name: np.full(shape + v.shape[1:], np.nan if v.dtype.kind in "fc" else 0, v.dtype)
                           for name, v in values.items()}
        for name, value in values.items():
            self.arrays[name][block.region] = value.reshape(block.shape + value.shape[1:])

    def dataset(self):
        import xarray
        variables = {name: (self.dims[name], array) for name, array in self.arrays.items()}
        return xarray.Dataset(variables, self.layout.coords(_has_time(self.dims)), self.layout.attrs())


class ZarrResults:
    """Results streamed into a Zarr store at `path`, chunk by chunk; see the module docstring."""

    def __init__(self, layout: Layout, path, fingerprint: str):
        self.layout, self.path, self.fingerprint = layout, str(path), fingerprint
        self.group = None
        self.chunk_size = None
        if Path(self.path).exists():
            self._open_existing()

    def _open_existing(self) -> None:
        import zarr
        try:
            group = zarr.open_group(self.path, mode="r+")
            attrs = group.attrs.asdict()
        except Exception as exc:  # zarr raises many kinds for a folder that is no store
            raise SweepStoreError(f"{self.path} exists and is not a Zarr store ({type(exc).__name__}: {exc})", None,
                                  "give a new path for store=, or remove it") from None
        if attrs.get(FINGERPRINT) != self.fingerprint or DONE not in group:
            what = "another sweep" if FINGERPRINT in attrs else "no modelc sweep (or its creation was cut off)"
            raise SweepStoreError(f"store {self.path} holds {what}; it is resumed only by the same sweep", None,
                                  "the same model, parameter values, inputs, records and reduce resume it; "
                                  "for a new sweep give another path, or remove the store")
        self.group, self.chunk_size = group, int(attrs[CHUNK_SIZE])

    def done(self) -> set[int]:
        if self.group is None:
            return set()
        return {int(i) for i in np.flatnonzero(self.group[DONE][:])}

    def start(self, blocks: list[Block], chunk_size: int) -> None:
        self.blocks, self.chunk_size = blocks, chunk_size

    def write(self, index: int, values: dict[str, np.ndarray]) -> None:
        block = self.blocks[index]
        if self.group is None:
            self._create(values)
        for name, value in values.items():
            self.group[name][block.region] = value.reshape(block.shape + value.shape[1:])
        self.group[DONE][index] = 1   # after the data: a chunk cut off mid-write is run again

    def _create(self, values: dict[str, np.ndarray]) -> None:
        import dask.array
        import xarray
        import zarr
        dims = self.layout.dims(values)
        shape, chunks = self.layout.job.sets.shape, self.blocks[0].shape
        variables = {name: (dims[name], dask.array.empty(shape + v.shape[1:], chunks=chunks + v.shape[1:],
                                                         dtype=v.dtype))
                     for name, v in values.items()}
        variables[DONE] = (("chunk",), dask.array.zeros(len(self.blocks), chunks=1, dtype="i1"))
        attrs = {**self.layout.attrs(), FINGERPRINT: self.fingerprint, CHUNK_SIZE: self.chunk_size}
        dataset = xarray.Dataset(variables, self.layout.coords(_has_time(dims)), attrs)
        try:
            dataset.to_zarr(self.path, mode="w-", compute=False, consolidated=False)
        except (OSError, ValueError) as exc:
            raise SweepStoreError(f"cannot create the store {self.path}: {exc}", None,
                                  "check that the folder exists and is writable") from None
        self.group = zarr.open_group(self.path, mode="r+")

    def dataset(self):
        import xarray
        return xarray.open_zarr(self.path, consolidated=False).drop_vars(DONE)


def _has_time(dims: dict[str, tuple[str, ...]]) -> bool:
    return any("time" in d for d in dims.values())


def default_chunk_size(sets: int, workers: int) -> int:
    """About four chunks per worker (so a slow or lost chunk delays little), at most 4096 sets
    (a chunk's arrays stay small) and at least 64 (the per-chunk cost stays small)."""
    return max(1, min(sets, 4096, max(64, math.ceil(sets / (4 * workers)))))
