"""run_sweep: a SweepJob's chunks through a pool into results (memory or a Zarr store)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from ...errors import InvalidValueError
from .chunks import SweepJob
from .pools import pool, require
from .reductions import reduction
from .results import Layout, MemoryResults, ZarrResults, default_chunk_size


def run_sweep(job: SweepJob, scheduler=None, store=None, reduce=None, chunk_size: int | None = None,
              progress: Callable[[int, int], None] | None = None):
    """The job's results as an xarray.Dataset (see results.py for its dimensions).

    scheduler: None (this process), "processes" (a LocalCluster, closed at the end), a
    dask.distributed Client, a Dask cluster object, or a scheduler address. store: a Zarr path the chunks are written
    to as they finish (the Dataset returned reads it lazily); a store holding this very sweep,
    interrupted, is resumed: only the chunks not marked done run. reduce: None, "mean", "max",
    "final", "peak_frequency" or reduce(records) -> {name: array (sets, ...)}.
    chunk_size: sets per chunk (default: about four chunks per worker, 64..4096 sets); a resumed
    store keeps the chunk size it was written with.
    progress(sets_done, sets_total) is called after each chunk (and once at the start).
    """
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer))
                                   or chunk_size < 1):
        raise InvalidValueError(f"chunk_size must be a whole number >= 1 of sets, got {chunk_size!r}")
    require(store=store is not None)
    summary = reduction(reduce, job.sampling_steps * job.dt)
    reduced = None if reduce is None else ("callable" if callable(reduce) else reduce)
    layout = Layout(job, reduced)
    results = MemoryResults(layout) if store is None else \
        ZarrResults(layout, store, job.fingerprint(_reduce_name(reduce)))
    with pool(scheduler) as workers:
        size = results.chunk_size or chunk_size or default_chunk_size(job.sets.size, workers.workers)
        blocks = job.sets.blocks(size)
        results.start(blocks, size)
        done = results.done()
        finished = sum(blocks[i].stop - blocks[i].start for i in done)
        if progress is not None:
            progress(finished, job.sets.size)
        pending = [i for i in range(len(blocks)) if i not in done]
        for index, values in workers.map(job, summary, blocks, pending):
            results.write(index, values)
            finished += blocks[index].stop - blocks[index].start
            if progress is not None:
                progress(finished, job.sets.size)
    return results.dataset()


def _reduce_name(reduce) -> str:
    """What identifies a reduction in a store's fingerprint (a function by its qualified name)."""
    if reduce is None or isinstance(reduce, str):
        return str(reduce)
    return f"{getattr(reduce, '__module__', '')}.{getattr(reduce, '__qualname__', repr(reduce))}"
