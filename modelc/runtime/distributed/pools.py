"""Where a sweep's chunks run: in this process (scheduler=None), or on a Dask cluster (a
LocalCluster of worker processes for "processes", a Client, a cluster object, or a
scheduler's address).

A pool yields (chunk index, values) as chunks finish, each chunk exactly once. On a cluster
the job is sent to every worker once; a bounded number of chunks is in flight, so finished
results wait for the writer only a few at a time; a chunk whose worker dies is run again
by Dask on another worker (its result is the same: a chunk is a pure function of the job).
"""
from __future__ import annotations

import contextlib
import itertools
import uuid
from typing import Callable, Iterator

from ...errors import ExtraUnavailableError, InvalidValueError
from .chunks import SweepJob, run_chunk
from .sets import Block

EXTRA = "pip install modelc[distributed]"


def require(store: bool = False, cluster: bool = False) -> None:
    """Import what a sweep in chunks needs of the extra (xarray; zarr and dask.array for a
    store; dask.distributed for a cluster), or say which extra brings it."""
    try:
        import xarray  # noqa: F401
        if store:
            import dask.array  # noqa: F401
            import zarr  # noqa: F401
        if cluster:
            import dask.distributed  # noqa: F401
    except ImportError as exc:
        raise ExtraUnavailableError(f"{exc.name or 'a package'} is not installed ({exc})", None,
                                    f"scheduler=, store= and reduce= of a sweep need Dask, xarray and zarr: "
                                    f"{EXTRA}") from None


class LocalPool:
    """The chunks one after the other in this process."""

    workers = 1

    def map(self, job: SweepJob, reduce: Callable | None, blocks: list[Block],
            pending: list[int]) -> Iterator[tuple[int, dict]]:
        for index in pending:
            yield index, run_chunk(job, blocks[index].start, blocks[index].stop, reduce)


class DaskPool:
    """The chunks on a dask.distributed Client's workers."""

    def __init__(self, client):
        self.client = client
        self.workers = max(1, sum(self.client.nthreads().values()))

    def map(self, job: SweepJob, reduce: Callable | None, blocks: list[Block],
            pending: list[int]) -> Iterator[tuple[int, dict]]:
        from dask.distributed import as_completed
        shared = self.client.scatter(job, broadcast=True, hash=False)
        prefix = f"modelc-chunk-{uuid.uuid4().hex[:8]}"
        waiting = iter(pending)
        running = as_completed(loop=self.client.loop)
        index_of = {}

        def submit(index: int) -> None:
            block = blocks[index]
            future = self.client.submit(run_chunk, shared, block.start, block.stop, reduce,
                                        key=f"{prefix}-{index}", pure=False)
            index_of[future.key] = index
            running.add(future)

        for index in itertools.islice(waiting, 2 * self.workers):  # a few in flight: bounded memory
            submit(index)
        try:
            for future in running:
                values = future.result()  # a chunk's error (a bad parameter set) stops the sweep here
                index = index_of.pop(future.key)
                future.release()
                following = next(waiting, None)
                if following is not None:
                    submit(following)
                yield index, values
        finally:
            for future in list(running.futures):
                future.cancel()
            shared.release()


@contextlib.contextmanager
def pool(scheduler) -> Iterator[LocalPool | DaskPool]:
    """The pool of `scheduler`; a cluster or client made here is closed at the end."""
    if scheduler is None:
        yield LocalPool()
        return
    require(cluster=True)
    from dask.distributed import Client, LocalCluster
    if isinstance(scheduler, Client):
        yield DaskPool(scheduler)
    elif scheduler == "processes":
        with LocalCluster(processes=True, threads_per_worker=1, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            yield DaskPool(client)
    elif hasattr(scheduler, "scheduler_address"):  # a cluster object: LocalCluster, dask-jobqueue's, ...
        with Client(scheduler) as client:
            yield DaskPool(client)
    elif isinstance(scheduler, str) and "://" in scheduler:
        try:
            client = Client(scheduler)
        except OSError as exc:
            raise InvalidValueError(f"cannot reach the Dask scheduler at {scheduler}: {exc}", None,
                                    "start it (dask scheduler) or check the address") from None
        with client:
            yield DaskPool(client)
    else:
        raise InvalidValueError(f"scheduler must be None, 'processes', a dask.distributed Client, a Dask cluster or "
                                f"a scheduler address like 'tcp://host:8786', got {scheduler!r}")
