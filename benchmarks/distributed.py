"""Distributed sweep benchmarks (issue 16, "Sweeps that outgrow one machine"): Dask workers,
per-chunk overhead and a 10⁶-set sweep streamed to Zarr.

Run from the repository root, by hand (never part of the test run), with modelc[distributed]:

    python -m benchmarks.distributed            # the issue's sizes (a few minutes on 2 free cores)
    python -m benchmarks.distributed --quick    # smaller sizes, a smoke test (under a minute)

Writes benchmarks/results/distributed.md (``--out DIR``). Three parts:

1. Throughput: 10 000 parameter sets (a 100 x 100 grid of He and Hi) of the Jansen-Rit
   neural mass model (dt = 1e-4, 5000 steps, 16 chunks, reduce="mean" so the work is the integration)
   through a LocalCluster of 1 worker process and of 2, one thread each, the cluster started
   before the clock. Sets per second of each and the ratio (target: >= 1.8 with 2 free cores).
2. Per-chunk overhead: chunks of 1 set and 1 step (the work is nothing) through a 1-worker
   cluster, and in this process; wall time / chunks (target: < 50 ms through the cluster).
3. Memory: a 10⁶-set grid (1000 x 1000 of eta and J) of the QIF mean field (200 steps,
   every 20th recorded: 80 MB of results) streamed to a Zarr store by 2 workers, in a fresh
   interpreter. The peak of the summed RSS of the whole process tree (client and scheduler in
   the first process, nannies, workers), sampled every 50 ms (target: < 1 GB). --quick: 10⁵ sets.

The machine may be shared: the 1-min load average is printed with every part, and numbers
measured under load are not the issue's numbers.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import limit_threads  # noqa: F401  (the package __init__ pinned the BLAS threads)

import numpy as np

JRC = "model_templates.neural_mass_models.jansenrit.JRC"
QIF = "model_templates.neural_mass_models.qif.qif"
ONE_THREAD = {var: "1" for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def load() -> str:
    return f"load {os.getloadavg()[0]:.2f}"


def cluster(workers: int):
    from dask.distributed import Client, LocalCluster
    local = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                         env=ONE_THREAD)
    return local, Client(local)


def jrc_network():
    from modelc import Network
    net = Network(dt=1e-4)
    net.add_diffeq_node("jrc", JRC, N=1)
    return net


def throughput(quick: bool) -> list[str]:
    side = 30 if quick else 100
    grid = {"pc/rpo_e_ext/h": np.linspace(2.5, 4.0, side), "pc/rpo_i/h": np.linspace(-25.0, -18.0, side)}
    net, steps = jrc_network(), 300 if quick else 5000  # 16 chunks of ~0.5 s: the overhead is small beside them
    record = [("jrc", "pc/rpo_e_ext/v")]
    net.sweep({key: values[:2] for key, values in grid.items()}, steps=10, record_output=False,
              record_vars=record, chunk_size=1)  # compiled and cached before the clock
    rates = {}
    for workers in (1, 2):
        local, client = cluster(workers)
        try:
            net.sweep({key: values[:2] for key, values in grid.items()}, steps=10, record_output=False,
                      record_vars=record, scheduler=client)  # the workers load the module
            start = time.perf_counter()
            net.sweep(grid, steps=steps, record_output=False, record_vars=record, reduce="mean",
                      scheduler=client, chunk_size=side * side // 16)
            rates[workers] = side * side / (time.perf_counter() - start)
        finally:
            client.close()
            local.close()
    ratio = rates[2] / rates[1]
    return [f"## 1. Throughput: {side * side} sets of Jansen-Rit, {steps} steps ({load()})", "",
            "| workers | sets/s |", "|---|---|", f"| 1 | {rates[1]:.0f} |", f"| 2 | {rates[2]:.0f} |", "",
            f"2 workers / 1 worker: **{ratio:.2f}x** (target >= 1.8 on 2 free cores)", ""]


def overhead(quick: bool) -> list[str]:
    from modelc import Network
    net = Network(dt=1e-3)
    net.add_diffeq_node("qif", QIF, N=1, output_var="qif_op/r")
    chunks = 100 if quick else 400
    etas = list(np.linspace(-6.0, -3.0, chunks))
    net.sweep({"eta": etas[:2]}, steps=1, chunk_size=1)
    start = time.perf_counter()
    net.sweep({"eta": etas}, steps=1, chunk_size=1)
    local_ms = (time.perf_counter() - start) / chunks * 1e3
    local, client = cluster(1)
    try:
        net.sweep({"eta": etas[:2]}, steps=1, scheduler=client)
        start = time.perf_counter()
        net.sweep({"eta": etas}, steps=1, chunk_size=1, scheduler=client)
        dask_ms = (time.perf_counter() - start) / chunks * 1e3
    finally:
        client.close()
        local.close()
    return [f"## 2. Per-chunk overhead: {chunks} chunks of 1 set and 1 step ({load()})", "",
            "| where | ms per chunk |", "|---|---|", f"| this process | {local_ms:.2f} |",
            f"| 1-worker LocalCluster | {dask_ms:.2f} |", "", "target: < 50 ms per chunk through the cluster", ""]


def memory(quick: bool) -> list[str]:
    """Part 3 in a fresh interpreter (this one has grown), its RSS tree sampled from here."""
    import psutil
    side = 316 if quick else 1000
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "qif.zarr"
        child = subprocess.Popen([sys.executable, "-m", "benchmarks.distributed", "--memory-child", str(side),
                                  str(store)], stdout=subprocess.PIPE, text=True, env={**os.environ, **ONE_THREAD})
        peak, root = 0, psutil.Process(child.pid)
        while child.poll() is None:
            try:
                tree = [root] + root.children(recursive=True)
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass
            time.sleep(0.05)
        report = child.stdout.read().strip()
        size = sum(f.stat().st_size for f in store.rglob("*") if f.is_file()) if store.exists() else 0
    return [f"## 3. Memory: {side * side} sets of the QIF mean field streamed to Zarr, 2 workers ({load()})", "",
            f"{report}; store {size / 1e6:.0f} MB on disk", "",
            f"peak RSS of the process tree (client + scheduler, nannies, workers): **{peak / 2**30:.2f} GiB** "
            "(target < 1 GB)", ""]


def memory_child(side: int, store: str) -> None:
    from modelc import Network
    net = Network(dt=1e-3)
    net.add_diffeq_node("qif", QIF, N=1, output_var="qif_op/r")
    grid = {"eta": np.linspace(-6.0, -3.0, side), "J": np.linspace(5.0, 20.0, side)}
    local, client = cluster(2)
    try:
        start = time.perf_counter()
        ds = net.sweep(grid, steps=200, sampling_steps=20, scheduler=client, store=store, chunk_size=4096)
        seconds = time.perf_counter() - start
    finally:
        client.close()
        local.close()
    print(f"{side * side} sets in {seconds:.1f} s ({side * side / seconds:.0f} sets/s), "
          f"out {dict(ds['out'].sizes)}")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.distributed", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="smaller sweeps (a smoke test, not the issue's numbers)")
    parser.add_argument("--part", type=int, action="append", choices=(1, 2, 3), help="run only these parts")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    parser.add_argument("--memory-child", nargs=2, metavar=("SIDE", "STORE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(int(args.memory_child[0]), args.memory_child[1])
        return 0
    parts = {1: throughput, 2: overhead, 3: memory}
    lines = ["# Distributed sweeps" + (" (--quick: not the issue's sizes)" if args.quick else ""), ""]
    for number in args.part or sorted(parts):
        section = parts[number](args.quick)
        print("\n".join(section), flush=True)
        lines += section
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "distributed.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
