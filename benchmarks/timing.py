"""Measurement: alternating timed runs, memory, and the compile/cache figures in subprocesses.

- Time per step: every contender is set up once and run once untimed (warm-up); then the
  contenders run in turn, ``repeats`` rounds (the order reversed every other round, so drift in
  the machine's speed hits all alike); the figure is the median round, divided by the steps.
  Network.run and module.run of the N=100 seed workloads get PAIRED_ROUNDS more rounds, the two
  alone, for the median of their per-round ratio (issue 3's overhead bound).
- Memory: one more run per contender under tracemalloc (NumPy reports its buffers to it) and
  with the kernel's peak-RSS mark reset (``/proc/self/clear_refs``; catches torch's buffers);
  the larger of the two is the run's peak extra memory.  What a contender keeps after setup is
  measured the same way around a second ``setup()`` (RSS only for peers, whose setup is slow).
- Compile: ``compile_model`` / ``Network`` in a fresh interpreter with an empty
  ``MODELC_CACHE_DIR`` (cold), then again in another fresh interpreter with the same directory
  (cache hit); three times each, the median kept (after one untimed compile that loads
  sympy/lark into the OS file cache); the child also reports whether sympy/lark were imported.
  For backend="numba" the child imports numba first and times that import on its own
  (numba_import_s), so that the compile and cache-hit figures are modelc's share; module_s is
  the part before the 1-step run (compile_model: the module's source and its import).
"""
from __future__ import annotations

import gc
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import traceback

import numpy as np

from . import contenders as C

_MiB = 1024.0 * 1024.0


def alternating_medians(calls: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each call(round) over `repeats` rounds, the order reversed every other
    round so that neither side always runs first (a warm cache or a busy neighbour then favours none)."""
    times: dict[str, list[float]] = {kind: [] for kind in calls}
    for round_ in range(repeats):
        for kind in (list(calls) if round_ % 2 == 0 else list(calls)[::-1]):
            start = time.perf_counter()
            calls[kind](round_)
            times[kind].append(time.perf_counter() - start)
    return {kind: statistics.median(values) for kind, values in times.items()}


def ratio_rows(workloads, per_step, kind: str, target: float, quick: bool, repeats: int) -> bool:
    """Print one row per (n, method, steps, quick_steps) workload: the plain and the `kind`
    network's µs per step (per_step(n, method, steps, repeats) -> {"plain": s, kind: s}) and their
    ratio against the target. True when every ratio meets it."""
    met = True
    for n, method, steps, quick_steps in workloads:
        figures = per_step(n, method, quick_steps if quick else steps, repeats)
        ratio = figures[kind] / figures["plain"]
        met &= ratio <= target
        print(f"{n:>6} {method:>7} {figures['plain'] * 1e6:>14.2f} {figures[kind] * 1e6:>16.2f} {ratio:>6.2f}  "
              f"{'met' if ratio <= target else 'missed'}")
    return met


def _rss_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def _reset_hwm() -> bool:
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _short(exc: BaseException) -> str:
    if isinstance(exc, C._Missing):
        return str(exc)
    msg = f"{type(exc).__name__}: {exc}".replace("\n", " ")
    return "error: " + (msg[:200] + "..." if len(msg) > 200 else msg)


PAIRED_ROUNDS = 20


def _timed_rounds(live, rounds, times):
    """Run the contenders in turn, `rounds` times (order reversed every other round)."""
    for r in range(rounds):
        order = live if r % 2 == 0 else live[::-1]
        for inst, row in order:
            if row["status"] != "ok":
                continue
            try:
                inst.prepare()
                t0 = time.perf_counter()
                inst.run()
                times[id(inst)].append(time.perf_counter() - t0)
            except Exception as exc:
                row["status"] = _short(exc)


def measure_workload(wl, classes, repeats: int, peers_all: bool, log=print) -> dict:
    """Set up every available contender, time them alternately, measure memory, compare."""
    data = wl.data()
    rows = {}
    live = []
    for cls in classes:
        why = cls.unavailable(wl, peers_all)
        if why == "n/a":
            continue                       # not a contender for this family at all
        row = rows[cls.name] = dict(name=cls.name, kind=cls.kind, note=cls.note, status="ok")
        if why:
            row["status"] = why
            continue
        inst = cls(wl, data)
        try:
            inst.preload()                      # imports are not setup
            gc.collect()
            rss0 = _rss_kib("VmRSS")
            t0 = time.perf_counter()
            inst.setup()
            row["setup_s"] = time.perf_counter() - t0
            rss1 = _rss_kib("VmRSS")
            row["setup_rss_mib"] = (rss1 - rss0) / 1024.0 if rss0 and rss1 else None
            inst.prepare()
            t0 = time.perf_counter()
            inst.run()                                  # warm-up (first-call costs)
            row["first_run_s"] = time.perf_counter() - t0
            live.append((inst, row))
            log(f"  {cls.name}: setup {row['setup_s']:.3f} s, first run {row['first_run_s']:.3f} s")
        except Exception as exc:
            row["status"] = _short(exc)
            row["traceback"] = traceback.format_exc(limit=6)
            log(f"  {cls.name}: {row['status']}")

    times = {id(i): [] for i, _ in live}
    _timed_rounds(live, repeats, times)
    # Network.run against module.run (issue 3: at most 5 % over it) is a small difference between
    # two runs of the same work, finer than the machine's noise over a few rounds: the pair gets
    # extra back-to-back rounds, and the verdict takes the median of the per-round ratios
    pair = [(i, r) for i, r in live if r["name"] in (C.ModelcNetwork.name, C.ModelcModule.name)]
    if wl.family == "seed" and wl.N == 100 and len(pair) == 2:
        _timed_rounds(pair, PAIRED_ROUNDS, times)
    for inst, row in live:
        ts = times[id(inst)]
        if row["status"] == "ok" and ts:
            row["times_s"] = ts
            row["median_s"] = statistics.median(ts)
            row["us_per_step"] = row["median_s"] / wl.steps * 1e6
            row["best_us_per_step"] = min(ts) / wl.steps * 1e6
            row["unit_steps_per_s"] = wl.unit_steps / row["median_s"]
            try:
                row["final"] = np.asarray(inst.final_state(), dtype=float)
            except Exception as exc:
                row["final_error"] = _short(exc)

    # memory
    for inst, row in live:
        if row["status"] != "ok":
            continue
        try:
            row.update(_memory(inst, type(inst), row))
        except Exception as exc:
            row["mem_error"] = _short(exc)
        inst.__dict__.clear()            # drop big buffers before the next contender
    live.clear()
    gc.collect()

    # agreement with the hand-written (in-place) loop, the baseline
    ref = rows.get(C.HandWritten.name, {}).get("final")
    for row in rows.values():
        fin = row.pop("final", None)
        if fin is None or ref is None:
            continue
        if fin.shape != ref.shape:
            row["max_abs_diff"] = float("nan")
            row["agree"] = False
            row["agree_note"] = f"shape {fin.shape} vs {ref.shape}"
            continue
        diff = float(np.max(np.abs(fin - ref))) if fin.size else 0.0
        row["max_abs_diff"] = diff
        row["agree"] = bool(np.isfinite(diff) and diff <= agreement_tol(wl, ref))

    # what the memory target allows: weights + inputs + records, plus 10 %
    budget = _budget_bytes(wl, data)
    for row in rows.values():
        if "run_extra_bytes" in row:
            held = row.get("retained_bytes") or 0
            row["peak_bytes"] = budget["caller"] + held + row["run_extra_bytes"]
            row["budget_bytes"] = budget["allowed"]
    return dict(workload=wl.__dict__.copy(), rows=list(rows.values()), budget=budget)


def agreement_tol(wl, ref: np.ndarray) -> float:
    """Same scheme, same dt, float64: only rounding differs (summation order in J@r)."""
    scale = max(1.0, float(np.max(np.abs(ref)))) if ref.size else 1.0
    return 1e-8 * scale


def _budget_bytes(wl, data) -> dict:
    w = data.get("J")
    i = data.get("inputs")
    wb = w.nbytes if w is not None else 0
    ib = i.nbytes if i is not None else 0
    rb = wl.steps * wl.N * wl.B * 8
    return dict(weights=wb, inputs=ib, records=rb, caller=wb + ib, allowed=1.1 * (wb + ib + rb))


def _memory(inst, cls, row) -> dict:
    out = {}
    if cls.kind != "peer":
        # what setup keeps (a second setup on a fresh instance, traced)
        fresh = cls(inst.wl, inst.data)
        gc.collect()
        tracemalloc.start()
        fresh.setup()
        out["retained_bytes"] = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        del fresh
        gc.collect()
    else:
        rss = row.get("setup_rss_mib")
        out["retained_bytes"] = None if rss is None else max(0.0, rss) * _MiB
    inst.prepare()
    gc.collect()
    rss0 = _rss_kib("VmRSS")
    have_hwm = _reset_hwm()
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    inst.run()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    hwm = _rss_kib("VmHWM") if have_hwm else None
    rss_extra = (hwm - rss0) * 1024 if (hwm and rss0) else 0
    out["run_traced_bytes"] = peak
    out["run_rss_bytes"] = rss_extra
    out["run_extra_bytes"] = max(peak, rss_extra)
    return out


# ----------------------------------------------------------------------------- subprocesses

_CHILD = r"""
import json, os, sys, time
sys.path.insert(0, {repo!r})
import benchmarks  # one BLAS thread
import numpy as np
spec = json.loads({spec!r})
res = {{}}
t0 = time.perf_counter()
import modelc
N, what = spec["N"], spec["what"]
if what == "compile":
    from modelc import compile_model
else:
    from modelc import Network
res["import_s"] = time.perf_counter() - t0
if what == "compile":
    if spec.get("backend") == "numba":  # numba's own import, timed apart from modelc's cache hit
        t0 = time.perf_counter()
        import numba
        res["numba_import_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    mod = compile_model(spec["model"], method=spec["method"], coupling=spec.get("coupling"),
                        backend=spec.get("backend", "numpy"))
    if spec.get("backend") == "numba":  # + numba's JIT (cold) or its cache load (hit): a 1-step run
        res["module_s"] = time.perf_counter() - t0
        mod.run(mod.initial_state(2), {{k: np.eye(2) for k, v in mod.PARAMS.items() if v is None}}, {{}}, 1e-3, 1)
    res["compile_s"] = time.perf_counter() - t0
elif what == "network":
    J = np.random.default_rng(0).standard_normal((N, N)) / np.sqrt(N)
    t0 = time.perf_counter()
    net = Network(dt=1e-3)
    net.add_diffeq_node("tanh", spec["model"], weights=J, method=spec["method"], **spec["coupling"])
    res["add_s"] = time.perf_counter() - t0
    net.compile()  # build the System and generate (cold) or find (hit) the module: no N in it
    res["compile_s"] = time.perf_counter() - t0
    net.run(inputs=np.ones((2, N)))  # the first run also checks and prepares the N x N weights
    res["first_run_s"] = time.perf_counter() - t0
elif what == "populations":
    P, n = spec["P"], N
    rng = np.random.default_rng(0)
    t0 = time.perf_counter()
    net = Network(dt=1e-3)
    for p in range(P):
        net.add_diffeq_node(f"p{{p}}", spec["model"], weights=rng.standard_normal((n, n)) / np.sqrt(n),
                            method=spec["method"], **spec["coupling"])
    for p in range(P - 1):
        net.add_edge(f"p{{p}}", f"p{{p + 1}}", weights=rng.standard_normal((n, n)) / np.sqrt(n))
    res["add_s"] = time.perf_counter() - t0
    net.run(inputs=np.ones((2, n)))
    res["compile_s"] = time.perf_counter() - t0
res["imported"] = {{m: (m in sys.modules) for m in ("sympy", "lark", "yaml", "jinja2")}}
print("RESULT " + json.dumps(res))
"""


def child(spec: dict, cache_dir: str, timeout: float = 600) -> dict:
    """Run one compile measurement in a fresh interpreter; returns its figures or an error."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, MODELC_CACHE_DIR=cache_dir)
    code = _CHILD.format(repo=repo, spec=json.dumps(spec))
    t0 = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           timeout=timeout, env=env, cwd=tempfile.gettempdir())
    except subprocess.TimeoutExpired:
        return dict(error=f"timeout after {timeout:.0f} s")
    wall = time.perf_counter() - t0
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            res = json.loads(line[7:])
            res["process_s"] = wall
            return res
    lines = [ln for ln in re.sub(r"\x1b\[[0-9;]*m", "", p.stderr).splitlines() if ln.strip()]
    return dict(error=(lines or ["no output"])[-1].strip()[:200])  # numba colours its errors


def cold_and_hit(spec: dict, repeats: int = 3) -> dict:
    """The same measurement with an empty cache, then again (fresh process) with it warm;
    each ``repeats`` times, keeping the run with the median time."""
    colds, hits = [], []
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="modelc-cache-") as d:
            colds.append(child(spec, d))
            hits.append(child(spec, d))
    return dict(cold=_median_run(colds), hit=_median_run(hits))


def _median_run(runs: list[dict]) -> dict:
    good = sorted((r for r in runs if "compile_s" in r), key=lambda r: r["compile_s"])
    if not good:
        return runs[0]
    med = dict(good[len(good) // 2])
    med["all_compile_s"] = [r["compile_s"] for r in good]
    return med


def warm_up_files():
    """One throwaway compile, so the OS file cache holds sympy/lark before anything is timed."""
    from .workloads import SEED_COUPLING, SEED_MODEL
    with tempfile.TemporaryDirectory(prefix="modelc-cache-") as d:
        child(dict(what="compile", model=SEED_MODEL, method="heun", coupling=SEED_COUPLING, N=0), d)
