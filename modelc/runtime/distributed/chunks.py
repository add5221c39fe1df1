"""What a worker runs: one chunk of a sweep's sets as one batched call of the generated run().

Imports NumPy and the module cache only (never SymPy, lark, Jinja, Dask or xarray), so a
worker needs modelc's runtime and nothing of the compiler.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from types import ModuleType
from typing import Callable

import numpy as np

from ...errors import CacheError, InvalidValueError, NonFiniteError, ShapeError
from ..cache import CHECKSUM_PREFIX, with_checksum
from ..compiler import cached_module
from .sets import ParameterSets

Reduce = Callable[[dict], dict]


@dataclass(frozen=True)
class Record:
    """One result variable: a recorded variable of the module, or its population mean."""

    name: str     # in the results ("out", "tanh.li_op.v", "tanh.li_op.v_mean")
    target: str   # the module's name ("tanh/li_op/v")
    mean: bool = False


@dataclass
class SweepJob:
    """A sweep as the workers receive it: the module by content hash and source text, the
    unbatched initial states, parameters and inputs, the parameter sets and the run's options.

    inputs: {name: (T, n) shared by every set, (T, B, n) one per set, or a constant}.
    seed: the noise's (Network.sweep's): an int or SeedSequence s gives set b the stream of
    SeedSequence(s).spawn(B)[b], a list of B seeds gives set b what run(seed=seeds[b]) gives;
    so a chunk draws the numbers of the one batched run, whoever runs it and how often."""

    key: str
    source: str                    # the cache entry's text, checksum line included
    sets: ParameterSets
    y0: dict
    params: dict
    inputs: dict
    records: list[Record]
    dt: float
    steps: int
    sampling_steps: int = 1
    t0: float = 0.0
    on_nan: str = "raise"
    seed: object = None

    @classmethod
    def of(cls, module: ModuleType, **fields) -> "SweepJob":
        """The job of a loaded generated module (its key and its verified source text)."""
        return cls(module.KEY, module.__spec__.loader.get_source(module.__name__), **fields)

    @property
    def times(self) -> np.ndarray:
        """The time of each recorded row (row k: after step (k + 1) * sampling_steps)."""
        rows = self.steps // self.sampling_steps
        return self.t0 + np.arange(1, rows + 1) * self.sampling_steps * self.dt

    def fingerprint(self, reduce_name: str) -> str:
        """A hash of everything that decides the results: a store written by another sweep is
        never resumed as this one."""
        digest = hashlib.sha256(repr((self.key, self.dt, self.steps, self.sampling_steps, self.t0, self.on_nan,
                                      self.records, self.sets.grid, reduce_name, _seed_text(self.seed))).encode())
        arrays = [(c.name, c.dim, c.state, c.table) for c in self.sets.columns] + \
            sorted(self.y0.items()) + sorted(self.params.items()) + sorted(self.inputs.items())
        for item in arrays:
            for part in item if isinstance(item, tuple) else (item,):
                array = np.asarray(part)
                digest.update(f"{array.dtype}{array.shape}".encode())
                digest.update(np.ascontiguousarray(array).tobytes() if array.dtype != object else repr(part).encode())
        return digest.hexdigest()


def load(key: str, source: str) -> ModuleType:
    """The module of a job: from this process, from this machine's cache, or stored there from
    the source text (which must pass its checksum)."""
    body = source.rpartition(CHECKSUM_PREFIX)[0]
    if not body or with_checksum(body) != source:
        raise CacheError(f"the source text sent for module {key[:16]} does not pass its checksum", None,
                         "it was damaged on its way; run the sweep again")
    return cached_module(key, lambda _key: body)


def run_chunk(job: SweepJob, start: int, stop: int, reduce: Reduce | None = None) -> dict[str, np.ndarray]:
    """The results of sets start..stop, {name: array (sets, time, unit)} (the unit axis absent
    for a population mean), or what `reduce` makes of them."""
    module = load(job.key, job.source)
    y0, params = job.sets.batched(job.y0, job.params, start, stop)
    inputs = {name: value[:, start:stop] if np.ndim(value) == 3 else value for name, value in job.inputs.items()}
    noise = {"seed": chunk_seed(job.seed, start, stop)} if getattr(module, "NOISE", None) else {}
    try:
        result = module.run(y0, params, inputs, dt=job.dt, steps=job.steps,
                            record=list(dict.fromkeys(r.target for r in job.records)),
                            sampling_steps=job.sampling_steps, t0=job.t0, on_nan=job.on_nan, **noise)
    except FloatingPointError as exc:  # the batch index it names counts from this chunk's first set
        where = f"in the chunk of sets {start}..{stop - 1} (batch index 0 is set {start})"
        if isinstance(exc, NonFiniteError):
            raise NonFiniteError(f"{exc.message} {where}", exc.location, exc.hint) from None
        raise NonFiniteError(f"{exc} {where}", None, "reduce dt, or check parameters, weights and inputs") from None
    records = {}
    for record in job.records:
        value = result[record.target]
        host = value if isinstance(value, np.ndarray) else value.get()  # .get(): CuPy's copy to the host
        value = np.moveaxis(host, 1, 0)
        records[record.name] = np.ascontiguousarray(value.mean(axis=-1) if record.mean else value)
    return records if reduce is None else _checked(reduce(records), stop - start)


def check_seed(seed, sets: int) -> None:
    """A sweep's seed, checked before any chunk runs (a chunk's run() sees only its part)."""
    if isinstance(seed, (list, tuple)):
        if len(seed) != sets:
            raise InvalidValueError(f"seed has {len(seed)} entries but the sweep has {sets} sets", None,
                                    "give one seed per set, or one int for all of them")
    elif not (seed is None or isinstance(seed, np.random.SeedSequence) or
              (isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0)):
        raise InvalidValueError(f"seed must be None, an int >= 0, a numpy SeedSequence, or a list of one per set, "
                                f"got {seed!r}")


def chunk_seed(seed, start: int, stop: int):
    """The seeds of sets start..stop-1 as run() takes them for a batch of stop - start: set b's
    Generator on SeedSequence(seed).spawn(...)[b] (a list of seeds: its entries start..stop-1)."""
    if seed is None:
        return None
    if isinstance(seed, (list, tuple)):
        return list(seed[start:stop])
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    # (spawn_key + (b,) is spawn()'s b-th child; spawn() itself would count the children it made)
    return [np.random.Generator(np.random.SFC64(np.random.SeedSequence(root.entropy, spawn_key=root.spawn_key + (b,),
                                                                     pool_size=root.pool_size)))
            for b in range(start, stop)]


def _seed_text(seed) -> str:
    """A seed as the fingerprint sees it (a SeedSequence by its entropy and spawn key)."""
    if isinstance(seed, np.random.SeedSequence):
        return f"SeedSequence({seed.entropy}, {seed.spawn_key})"
    return repr(seed)


def _checked(summary, sets: int) -> dict[str, np.ndarray]:
    """A reduction's result as {name: array with one row per set}."""
    if not isinstance(summary, dict):
        summary = {"value": summary}
    checked = {}
    for name, value in summary.items():
        value = np.asarray(value)
        if value.ndim == 0 or len(value) != sets:
            raise ShapeError(f"reduce returned {value.shape} for '{name}', but the chunk has {sets} sets", None,
                             "reduce(records) gets {name: array (sets, time, ...)} and returns {name: array "
                             "(sets, ...)}: one row per set")
        checked[str(name)] = value
    return checked
