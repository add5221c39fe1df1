"""modelc benchmark suite -- modelc side by side with hand-written NumPy and the peers.

Run from the repository root (never part of the test run):

    python -m benchmarks                     # every workload, full length (about 15-20 min)
    python -m benchmarks --quick             # shorter runs, same tables (about 6 min; most of it
                                             # numba's cold compiles, 1 repeat each)
    python -m benchmarks --workload seed-euler-N100 --workload sweep   # by name or prefix
    python -m benchmarks --list              # the workload names
    python -m benchmarks --workload spiking  # QIF spiking networks N=1000/4000 (benchmarks/spiking.py)
    python -m benchmarks --out DIR           # default: benchmarks/results/

With the peers (RectiPy 0.12.2, PyRates 1.2.3, Brian2), which live in an optional venv:

    bash benchmarks/setup_peers.sh           # creates /tmp/modelc-bench-venv (or $1)
    /tmp/modelc-bench-venv/bin/python -m benchmarks [--peers-all]

Peers stop at N <= 1000 unless --peers-all (at N=4000 they take minutes and GBs).
--no-compile skips the subprocess compile/cache/scaling figures; --repeats sets the number of
alternating timed rounds (default 5).

What is printed (and written to DIR/results.md, DIR/results.png, DIR/results.json):
- the issue-6 targets, each with its measured figure and "met" / "missed";
- issue 17's targets for the numba backend, against a hand-written C + BLAS loop compiled at
  setup by the system C compiler (benchmarks/hand_c.py; "skipped: no C compiler" without one):
  seed N=100/1000/4000, the B=256 sweep against one-set-at-a-time runs (NumPy and numba) and
  threads=2 against threads=1, the single-unit circuits (QIF, Jansen-Rit, Hodgkin-Huxley RK4)
  against their hand-written float loops, numba's cold compile and cache hit per model;
- per workload and contender: µs per step (median of the alternating runs), speed relative to
  the hand-written in-place loop (the baseline of issues 2 and 6: preallocated, in place,
  written as the equations read; its time / contender time, > 1 is faster), rank, setup time,
  peak memory against the allowance (weights + inputs + records + 10 %), the max abs difference
  of the final state from the in-place loop (a contender that disagrees is flagged and not
  ranked), and "missing: <reason>" / "n/a: <reason>" for a contender that could not run; the
  hand-optimised loop (the compiler's tricks applied by hand) is a contender row, a floor;
- the sweep's throughput (unit-steps per second), batched against one set at a time;
- cold compile (empty MODELC_CACHE_DIR) and cache-hit load, each in a fresh interpreter (numba's
  own import timed apart), and compile time against N and against the number of populations;
- results.png: time per step against N (log-log), one line per contender, Euler and RK4
  (the hand-written loops dashed).
``--render DIR/results.json`` rewrites the markdown and the plot from saved figures.
All contenders run with one BLAS thread (set by benchmarks/__init__.py before NumPy loads).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time

from . import limit_threads  # noqa: F401  (the package __init__ pinned the BLAS threads)


def _meta(args, argv) -> dict:
    import numpy as np
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    blas = "OPENBLAS_NUM_THREADS=1"
    try:
        from threadpoolctl import threadpool_info
        info = [f"{i.get('internal_api')} {i.get('version')} x{i.get('num_threads')}"
                for i in threadpool_info() if i.get("user_api") == "blas"]
        blas = ", ".join(info) or blas
    except ImportError:
        pass
    try:
        load = ("1-min load average %.2f at the start, %.2f at the end (2 cores: above ~1, other "
                "processes competed for the CPU)" % (args.load_start, os.getloadavg()[0]))
    except (OSError, TypeError):
        load = "load average unknown"
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    try:
        import subprocess
        head = subprocess.run(["git", "-C", repo, "rev-parse", "--short", "HEAD"], capture_output=True,
                              text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", repo, "status", "--porcelain", "--", "modelc", "templates",
                                "models"], capture_output=True, text=True, timeout=10).stdout.strip()
        commit = (head + (" + uncommitted changes" if dirty else "")) if head else "unknown"
    except (OSError, subprocess.SubprocessError):
        commit = "unknown"
    return dict(when=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"), load=load, commit=commit,
                machine=f"{os.cpu_count()} cores, {cpu}",
                python=f"Python {platform.python_version()}", numpy=np.__version__, blas=blas,
                command="python -m benchmarks " + " ".join(argv), quick=args.quick,
                repeats=args.repeats)


def _jsonable(x):
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items() if k != "traceback"}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if hasattr(x, "tolist"):
        return x.tolist()
    return x


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps per run")
    ap.add_argument("--workload", action="append", default=[],
                    help="workload name or prefix (repeatable, or comma-separated)")
    ap.add_argument("--out", default=os.path.join(here, "results"), help="results folder")
    ap.add_argument("--repeats", type=int, default=5, help="alternating timed rounds (>= 5)")
    ap.add_argument("--peers-all", action="store_true", help="run the peers at N > 1000 too")
    ap.add_argument("--no-compile", action="store_true", help="skip the compile/cache/scaling figures")
    ap.add_argument("--list", action="store_true", help="list the workloads and exit")
    ap.add_argument("--render", metavar="RESULTS_JSON",
                    help="only rewrite results.md/results.png (in --out) from a saved results.json")
    args = ap.parse_args(argv)
    try:
        args.load_start = os.getloadavg()[0]
    except OSError:
        args.load_start = None

    from . import contenders, report, scaling, timing, workloads
    limit_threads()
    if args.list:
        for w in workloads.ALL:
            print(f"{w.name:18s} {w.family:6s} N={w.N:<5d} B={w.B:<4d} steps={w.steps:<6d} "
                  f"(quick {w.quick_steps}) {w.method} dt={w.dt}")
        return 0
    if args.render:
        with open(args.render) as f:
            saved = json.load(f)
        out = report.write(args.out, saved["results"], saved["compile"], saved["scaling"], saved["meta"])
        print(out["md_text"])
        return 0
    names = [n for item in args.workload for n in item.split(",") if n]
    if "spiking" in names:  # its own contenders and table (benchmarks/spiking.py)
        from . import spiking
        names.remove("spiking")
        spiking.main(["--quick"] if args.quick else [])
        if not names:
            return 0
    selected = [w.with_quick(args.quick) for w in workloads.select(names)]

    t_start = time.perf_counter()
    results = []
    for wl in selected:
        print(f"== {wl.name}: N={wl.N} B={wl.B} steps={wl.steps} {wl.method} dt={wl.dt}", flush=True)
        results.append(timing.measure_workload(wl, contenders.ALL, args.repeats, args.peers_all,
                                               log=lambda s: print(s, flush=True)))
        for r in results[-1]["rows"]:
            if "us_per_step" in r:
                print(f"  -> {r['name']}: {r['us_per_step']:.2f} µs/step, "
                      f"diff {r.get('max_abs_diff', float('nan')):.1e}", flush=True)
            else:
                print(f"  -> {r['name']}: {r['status']}", flush=True)
    comp, sc = {}, {}
    if not args.no_compile:
        print("== compile and cache (fresh interpreters)", flush=True)
        comp = scaling.compile_figures(args.quick)
        print("== compile against the number of populations", flush=True)
        sc = scaling.population_scaling(args.quick)

    meta = _meta(args, argv)
    meta["elapsed_s"] = time.perf_counter() - t_start
    out = report.write(args.out, results, comp, sc, meta)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(_jsonable(dict(meta=meta, results=results, compile=comp, scaling=sc)), f, indent=1)
    print()
    print(out["md_text"])
    print(f"\nwritten: {out['md']}" + (f", {out['png']}" if out["png"] else f" ({out['plot_note']})")
          + f"; {meta['elapsed_s']:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
