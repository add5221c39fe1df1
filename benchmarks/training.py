"""Training benchmarks (issue 12, "Training without torch"): the generated gradient against the
forward run, Network.fit_bptt against RectiPy's, and the memory of a long checkpointed grad().

Run from the repository root, by hand (never part of the test run):

    /tmp/modelc-bench-venv/bin/python -m benchmarks.training           # about 5-8 min
    /tmp/modelc-bench-venv/bin/python -m benchmarks.training --quick   # about 1-2 min
    python -m benchmarks.training --part 1 --part 3                    # without RectiPy
    python -m benchmarks.training --part 1 --backend numpy --backend numba  # and the compiled backend

(the venv of ``bash benchmarks/setup_peers.sh`` has RectiPy 0.12.2 and torch; without them part 2
says "missing"). Writes benchmarks/results/training.md (``--out DIR``), one table per part:

1. Backward against forward: the seed model's generated module compiled with
   ``trainable=["weights"]``, N = 100 and 1000, Euler and RK4. ``run`` records the output every
   step (what a fit records); ``grad`` gets a cotangent for every recorded row, as a fit's loss
   gives. µs per step of each (median of alternating rounds, the order reversed every other
   round, as benchmarks/timing.py times), "backward alone" = (grad - run) / run (the issue's
   target: <= 3) and grad / run. grad() runs the forward pass itself (keeping the checkpoints)
   and integrates every segment a second time before its reverse steps, so (grad - 2 run) / run
   is also shown: the reverse steps alone. "One pass" is grad() as a fit calls it: the cotangents
   from a function of the records and checkpoint_steps=None (segments sized to ~64 MiB), so a run
   of one segment is integrated once, keeping what the reverse reads.
2. fit_bptt against RectiPy: seed model N = 100, T = 1000 steps, 20 epochs, adam, mse, the
   recurrent weights fitted to the trajectories of a teacher network. The same math in both:
   the same initial weights (no entry below RectiPy's 1e-6 drop threshold), the same inputs,
   targets and learning rate, float64, one optimiser step per epoch from the same initial
   state. What has to be adjusted, and why (see _fit_task): RectiPy's output row k is the state
   *before* step k+1, modelc's the state after it, so RectiPy gets one more input row and the
   targets with the initial state (0, exactly what both predict) in front: its mse averages
   T+1 rows of which the first is 0, i.e. modelc's loss x T/(T+1); adam is invariant to that
   scale except through eps, so RectiPy's eps is 1e-8 x T/(T+1). RectiPy's losses are shown
   rescaled by (T+1)/T, and the weights both end with are compared.
3. Memory: one grad() of T = 100 000 steps at N = 1000 (Euler; --quick: T = 20 000) in a fresh
   interpreter: the peak RSS above the state just before the call (the kernel's high-water
   mark, reset first) and tracemalloc's peak (NumPy reports its buffers to it). The caller's
   own arrays (weights, inputs, cotangents) are counted apart. For contrast, T = 10 000 with
   checkpoint_steps = 256 and with checkpoint_steps = T (which run()'s chunk cap overrides).

All of it runs with one BLAS thread (the package __init__ pins it; torch is set to 1 thread).
The machine is shared: the 1-min load average is printed with every part.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time

from . import limit_threads  # noqa: F401  (the package __init__ pinned the BLAS threads)

import numpy as np

SEED = "neuron_model_templates.rate_neurons.leaky_integrator.tanh"
COUPLING = dict(source_var="tanh_op/r", target_var="li_op/r_in", input_var="li_op/I_ext")
WIRING = dict(COUPLING, output_var="li_op/v")
STATE, INPUT = "li_op/v", "li_op/I_ext"
_MiB = 1024.0 * 1024.0


def _load() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _fmt_load(a, b) -> str:
    f = lambda x: "?" if x is None else f"{x:.2f}"  # noqa: E731
    return f"1-min load {f(a)} → {f(b)}"


# ----------------------------------------------------------------------------- part 1

def part_backward(quick: bool, repeats: int, log=print, backends=("numpy",)) -> dict:
    """µs/step of module.run and module.grad for the seed model, N = 100, 1000, Euler and RK4, per backend."""
    import modelc
    cases = [(100, "euler", 1000 if quick else 5000), (100, "rk4", 500 if quick else 2000),
             (1000, "euler", 256 if quick else 1024), (1000, "rk4", 128 if quick else 512)]
    rows, load0 = [], _load()
    for (N, method, steps), backend in [(case, backend) for case in cases for backend in backends]:
        mod = modelc.compile_model(SEED, method=method, coupling=dict(COUPLING), trainable=["weights"],
                                   backend=backend)
        rng = np.random.default_rng(0)
        J = rng.standard_normal((N, N)) / math.sqrt(N)
        inputs = {INPUT: rng.standard_normal((steps, N))}
        cot = {STATE: rng.standard_normal((steps, N)) / (steps * N)}
        y0 = mod.initial_state(N)
        params = {"weights": J}
        dt = 1e-2

        def do_run():
            return mod.run({k: v.copy() for k, v in y0.items()}, params, inputs, dt, steps, record=[STATE])

        def do_grad():
            return mod.grad({k: v.copy() for k, v in y0.items()}, params, inputs, dt, steps, cot, checkpoint_steps=256)

        def do_once():  # as a fit calls it: the cotangents from the records, segments sized by memory
            return mod.grad({k: v.copy() for k, v in y0.items()}, params, inputs, dt, steps, lambda result: cot,
                            checkpoint_steps=None, record=[STATE])

        do_run(), do_grad(), do_once()           # warm-up (first-call costs)
        times = {"run": [], "grad": [], "once": []}
        order = [("run", do_run), ("grad", do_grad), ("once", do_once)]
        for r in range(repeats):
            for name, fn in (order if r % 2 == 0 else order[::-1]):
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        run_us = statistics.median(times["run"]) / steps * 1e6
        grad_us = statistics.median(times["grad"]) / steps * 1e6
        once_us = statistics.median(times["once"]) / steps * 1e6
        # the per-round ratio is steadier than the ratio of medians on a noisy machine
        ratios = [g / r for g, r in zip(times["grad"], times["run"])]
        row = dict(N=N, method=method, backend=backend, steps=steps, run_us=run_us, grad_us=grad_us,
                   run_best_us=min(times["run"]) / steps * 1e6, grad_best_us=min(times["grad"]) / steps * 1e6,
                   grad_over_run=grad_us / run_us, backward_alone=(grad_us - run_us) / run_us,
                   reverse_alone=(grad_us - 2 * run_us) / run_us,
                   once_us=once_us, once_backward=(once_us - run_us) / run_us,
                   round_ratio_median=statistics.median(ratios))
        rows.append(row)
        log(f"  N={N} {method} {backend}: run {run_us:.1f} µs/step, grad {grad_us:.1f} µs/step, "
            f"backward alone {row['backward_alone']:.2f}x, grad/run {row['grad_over_run']:.2f}x; "
            f"one pass {once_us:.1f} µs/step, backward alone {row['once_backward']:.2f}x")
    return dict(rows=rows, repeats=repeats, load=_fmt_load(load0, _load()))


def table_backward(res: dict) -> str:
    out = ["| N | scheme | backend | steps | run µs/step (best) | grad µs/step (best), 256-step segments | backward alone "
           "(grad − run)/run | reverse steps alone (grad − 2·run)/run | grad µs/step, one pass (as a fit) | "
           "backward alone, one pass | target: backward ≤ 3× forward |",
           "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in res["rows"]:
        verdict = "**met**" if r["backward_alone"] <= 3 else "**missed**"
        out.append(f"| {r['N']} | {r['method']} | {r.get('backend', 'numpy')} | {r['steps']} | {r['run_us']:.1f} ({r['run_best_us']:.1f}) | "
                   f"{r['grad_us']:.1f} ({r['grad_best_us']:.1f}) | {r['backward_alone']:.2f}× | "
                   f"{r['reverse_alone']:.2f}× | {r['once_us']:.1f} | {r['once_backward']:.2f}× | {verdict} |")
    return "\n".join(out)


# ----------------------------------------------------------------------------- part 2

N_FIT, T_FIT, EPOCHS, LR, DT_FIT, GAIN = 100, 1000, 20, 1e-2, 1e-2, 1.5
ADAM_EPS = 1e-8


def _weights(rng, n: int, gain: float) -> np.ndarray:
    """gain * N(0, 1)/sqrt(n), with no entry below 1e-5 in size: RectiPy (PyRates' min_weight)
    drops |w| < 1e-6, which would give it another network."""
    J = gain * rng.standard_normal((n, n)) / math.sqrt(n)
    small = np.abs(J) < 1e-5
    J[small] = np.copysign(1e-5, J[small])
    return J


def _fit_task(T: int) -> dict:
    """Teacher and student weights, the inputs, the teacher's trajectory (modelc's rows: the state
    after steps 1..T), and RectiPy's versions of the inputs and targets (see the module docstring)."""
    import modelc
    rng = np.random.default_rng(12)
    J_teacher, J_student = _weights(rng, N_FIT, GAIN), _weights(rng, N_FIT, GAIN)
    inputs = rng.standard_normal((T, N_FIT))
    teacher = modelc.Network(dt=DT_FIT)
    teacher.add_diffeq_node("rnn", SEED, weights=J_teacher, **WIRING)
    targets = np.asarray(teacher.run(inputs)["out"])               # (T, N): v after steps 1..T
    return dict(J_student=J_student, inputs=inputs, targets=targets,
                rectipy_inputs=np.vstack([inputs, inputs[-1:]]),    # T+1 rows: its row k is v before step k+1
                rectipy_targets=np.vstack([np.zeros((1, N_FIT)), targets]))  # v(0) = 0 in front


class _ModelcFit:
    name = "modelc Network.fit_bptt"

    def __init__(self, task, epochs):
        self.task, self.epochs = task, epochs

    def setup(self):
        import modelc
        self.net = net = modelc.Network(dt=DT_FIT)
        net.add_diffeq_node("rnn", SEED, weights=self.task["J_student"].copy(), train_params=["weights"], **WIRING)
        net.compile()   # the generated module: a cache hit after the first time

    def fit(self):
        t = self.task
        self.obs = self.net.fit_bptt([t["inputs"]], t["targets"][None], optimizer="adam", lr=LR,
                                     optimizer_kwargs=dict(eps=ADAM_EPS), epochs=self.epochs)

    def losses(self):
        return np.asarray(self.obs["epoch_loss"], dtype=float)

    def weights(self):
        return np.asarray(self.net.get_var("rnn", "weights"), dtype=float)


class _RectiPyFit:
    name = "RectiPy 0.12.2 fit_bptt"

    def __init__(self, task, epochs):
        self.task, self.epochs = task, epochs

    def setup(self):
        import torch
        torch.set_num_threads(1)
        import rectipy
        from .contenders import _scratch_cwd
        with _scratch_cwd(), contextlib.redirect_stdout(io.StringIO()):
            self.net = net = rectipy.Network(dt=DT_FIT, device="cpu")
            net.add_diffeq_node("tanh", SEED, weights=self.task["J_student"].copy(), train_params=["weights"],
                                clear=True, verbose=False, **WIRING)
            net.compile()
        w0 = self.weights()
        if not np.array_equal(w0, self.task["J_student"]):
            raise RuntimeError(f"RectiPy's initial weights differ from J by {np.max(np.abs(w0 - self.task['J_student'])):.1e}")

    def fit(self):
        t, T = self.task, len(self.task["inputs"])
        with contextlib.redirect_stdout(io.StringIO()):   # it prints "Finished optimization after ..."
            self.obs = self.net.fit_bptt([t["rectipy_inputs"]] * self.epochs, [t["rectipy_targets"]] * self.epochs,
                                         optimizer="adam", lr=LR, optimizer_kwargs=dict(eps=ADAM_EPS * T / (T + 1)),
                                         loss="mse", verbose=False)

    def losses(self):
        T = len(self.task["inputs"])
        raw = np.array([float(v) for v in self.obs["epoch_loss"]])
        return raw * (T + 1) / T          # its mean over T+1 rows (the first one 0) -> over the T rows

    def weights(self):
        return list(self.net.parameters())[0].detach().numpy().copy()


def part_fit(quick: bool, rounds: int, log=print) -> dict:
    epochs = 5 if quick else EPOCHS
    load0 = _load()
    task = _fit_task(T_FIT)
    contenders = [_ModelcFit(task, epochs)]
    missing = None
    try:
        import rectipy  # noqa: F401
        import torch  # noqa: F401
        contenders.append(_RectiPyFit(task, epochs))
    except Exception as exc:  # not installed here: modelc alone, and say so
        missing = f"missing: {type(exc).__name__}: {exc}"[:200]
        log(f"  RectiPy: {missing}")
    res = {c.name: dict(times=[], setup=[]) for c in contenders}
    for c in contenders:          # warm-up, untimed: first-call costs (torch's autograd engine, imports)
        c.epochs, epochs_ = 1, c.epochs
        c.setup()
        c.fit()
        c.epochs = epochs_
    for r in range(rounds):
        for c in (contenders if r % 2 == 0 else contenders[::-1]):
            t0 = time.perf_counter()
            c.setup()
            res[c.name]["setup"].append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            c.fit()
            res[c.name]["times"].append(time.perf_counter() - t0)
            res[c.name]["losses"] = c.losses().tolist()
            res[c.name]["weights"] = c.weights()
            log(f"  round {r + 1}: {c.name}: {res[c.name]['times'][-1]:.2f} s, "
                f"loss {res[c.name]['losses'][0]:.6g} → {res[c.name]['losses'][-1]:.6g}")
    for c in contenders:
        d = res[c.name]
        d["median_s"] = statistics.median(d["times"])
        d["best_s"] = min(d["times"])
        d["setup_s"] = statistics.median(d["setup"])
    out = dict(epochs=epochs, T=T_FIT, N=N_FIT, lr=LR, dt=DT_FIT, rounds=rounds, contenders=res, missing=missing)
    if len(contenders) == 2:
        m, p = res[_ModelcFit.name], res[_RectiPyFit.name]
        out["speedup"] = p["median_s"] / m["median_s"]
        out["speedup_rounds"] = statistics.median(pt / mt for pt, mt in zip(p["times"], m["times"]))
        out["loss_rel_diff"] = abs(m["losses"][-1] - p["losses"][-1]) / abs(p["losses"][-1])
        out["max_loss_rel_diff"] = max(abs(a - b) / abs(b) for a, b in zip(m["losses"], p["losses"]))
        out["weights_max_diff"] = float(np.max(np.abs(m["weights"] - p["weights"])))
        out["weights_moved"] = float(np.max(np.abs(m["weights"] - task["J_student"])))
    for d in res.values():
        d.pop("weights", None)
    out["load"] = _fmt_load(load0, _load())
    return out


def table_fit(res: dict) -> str:
    out = ["| contender | fit wall time, median (best) | setup (build + compile) | loss, epoch 1 | "
           f"loss, epoch {res['epochs']} (final) |", "|---|---:|---:|---:|---:|"]
    for name, d in res["contenders"].items():
        out.append(f"| {name} | {d['median_s']:.3f} s ({d['best_s']:.3f} s) | {d['setup_s']:.3f} s | "
                   f"{d['losses'][0]:.6g} | {d['losses'][-1]:.6g} |")
    if res.get("missing"):
        out.append(f"| RectiPy 0.12.2 fit_bptt | {res['missing']} | | | |")
    if "speedup" in res:
        ok_speed = "**met**" if res["speedup"] >= 10 else "**missed**"
        ok_loss = "**met**" if res["loss_rel_diff"] <= 0.01 else "**missed**"
        out += ["", "| target (issue 12) | measured | verdict |", "|---|---|---|",
                f"| fit_bptt ≥ 10× faster than RectiPy's (wall time, {res['epochs']} epochs) | "
                f"{res['speedup']:.1f}× (median of the per-round ratios {res['speedup_rounds']:.1f}×) | {ok_speed} |",
                f"| same final loss within 1 % | relative difference {res['loss_rel_diff']:.1e} (largest over the "
                f"epochs {res['max_loss_rel_diff']:.1e}); final weights differ by at most "
                f"{res['weights_max_diff']:.1e} (they moved by up to {res['weights_moved']:.2f}) | {ok_loss} |"]
    return "\n".join(out)


# ----------------------------------------------------------------------------- part 3

_CHILD = r"""
import json, os, sys, time, gc, tracemalloc, resource
sys.path.insert(0, {repo!r})
import benchmarks  # one BLAS thread
import numpy as np
import modelc
spec = json.loads({spec!r})
N, T, K = spec["N"], spec["T"], spec["K"]

def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
mod = modelc.compile_model({seed!r}, method="euler", coupling={coupling!r}, trainable=["weights"])
rng = np.random.default_rng(0)
J = rng.standard_normal((N, N)) / np.sqrt(N)
inputs = {{"li_op/I_ext": rng.standard_normal((T, N))}}
cot = {{"li_op/v": rng.standard_normal((T, N)) / (T * N)}}
y0 = mod.initial_state(N)
mod.grad(y0, {{"weights": J}}, {{"li_op/I_ext": inputs["li_op/I_ext"][:8]}}, 1e-2, 8, {{"li_op/v": cot["li_op/v"][:8]}})
gc.collect()
res = dict(caller_bytes=J.nbytes + inputs["li_op/I_ext"].nbytes + cot["li_op/v"].nbytes)
rss0 = status("VmRSS")
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")                     # reset the peak-RSS mark
tracemalloc.start()
base = tracemalloc.get_traced_memory()[0]
t0 = time.perf_counter()
g = mod.grad(y0, {{"weights": J}}, inputs, 1e-2, T, cot, checkpoint_steps=K)
res["grad_s"] = time.perf_counter() - t0
res["traced_peak_bytes"] = tracemalloc.get_traced_memory()[1] - base
tracemalloc.stop()
res["rss_peak_extra_bytes"] = status("VmHWM") - rss0
res["process_peak_rss_bytes"] = status("VmHWM")
res["finite"] = bool(np.isfinite(g["params"]["weights"]).all())
chunk = max(64, mod._CHUNK_BYTES // (8 * N))  # run()'s chunk cap; a segment is made of whole chunks
longest = K if K is not None else mod._segment_steps({{"": (N,)}})
res["segment_steps"] = T if longest >= T else chunk * max(1, longest // chunk) if longest > chunk else longest
print("RESULT " + json.dumps(res))
"""


def _memory_child(N: int, T: int, K: int, timeout: float = 900) -> dict:
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    code = _CHILD.format(repo=repo, spec=json.dumps(dict(N=N, T=T, K=K)), seed=SEED, coupling=dict(COUPLING))
    t0 = time.perf_counter()
    try:
        p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                           cwd=tempfile.gettempdir())
    except subprocess.TimeoutExpired:
        return dict(N=N, T=T, K=K, error=f"timeout after {timeout:.0f} s")
    for line in p.stdout.splitlines():
        if line.startswith("RESULT "):
            return dict(json.loads(line[7:]), N=N, T=T, K=K, process_s=time.perf_counter() - t0)
    tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
    return dict(N=N, T=T, K=K, error=tail[:200])


def part_memory(quick: bool, log=print) -> dict:
    load0 = _load()
    N = 1000
    cases = [(N, 20_000 if quick else 100_000, 256), (N, 10_000, 256), (N, 10_000, None)]
    rows = []
    for n, T, K in cases:
        row = _memory_child(n, T, K)
        rows.append(row)
        if "error" in row:
            log(f"  T={T} K={K}: {row['error']}")
        else:
            log(f"  T={T} K={K}: grad {row['grad_s']:.1f} s, peak RSS above the call "
                f"{row['rss_peak_extra_bytes'] / _MiB:.1f} MiB, traced {row['traced_peak_bytes'] / _MiB:.1f} MiB")
    return dict(rows=rows, load=_fmt_load(load0, _load()), quick=quick)


def table_memory(res: dict) -> str:
    out = ["| N | T | checkpoint_steps | grad wall time (tracemalloc on) | grad's own peak: RSS above the call | "
           "grad's own peak: tracemalloc | caller's arrays (J, inputs, cotangents) | process peak RSS |",
           "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in res["rows"]:
        k = f"{'None (~64 MiB)' if r['K'] is None else format(r['K'], ',')} asked, {r.get('segment_steps', '?')} used"
        if "error" in r:
            out.append(f"| {r['N']} | {r['T']} | {k} | {r['error']} | | | | |")
            continue
        out.append(f"| {r['N']} | {r['T']:,} | {k} | {r['grad_s']:.1f} s | {r['rss_peak_extra_bytes'] / _MiB:.1f} MiB | "
                   f"{r['traced_peak_bytes'] / _MiB:.1f} MiB | {r['caller_bytes'] / _MiB:.0f} MiB | "
                   f"{r['process_peak_rss_bytes'] / _MiB:.0f} MiB |")
    main = res["rows"][0]
    if "error" not in main:
        peak = max(main["rss_peak_extra_bytes"], main["traced_peak_bytes"])
        what = f"T = {main['T']:,}"
        if main["T"] < 100_000:
            what += " (--quick; T = 100 000 not measured)"
        ok = "**met**" if peak < 1024 * _MiB else "**missed**"
        out += ["", "| target (issue 12) | measured | verdict |", "|---|---|---|",
                f"| memory of a T = 100 000, N = 1000 grad with checkpointing below 1 GB | {what}: "
                f"{peak / _MiB:.1f} MiB of its own (the larger of RSS and tracemalloc), beside the caller's "
                f"{main['caller_bytes'] / _MiB:.0f} MiB of inputs and cotangents | {ok} |"]
    return "\n".join(out)


# ----------------------------------------------------------------------------- main

def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    here = os.path.dirname(os.path.abspath(__file__))
    ap = argparse.ArgumentParser(prog="python -m benchmarks.training", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer steps, epochs and rounds")
    ap.add_argument("--part", action="append", type=int, choices=(1, 2, 3), default=[],
                    help="run only these parts (repeatable; default all)")
    ap.add_argument("--repeats", type=int, default=None, help="alternating rounds of part 1 (default 7; quick 3)")
    ap.add_argument("--rounds", type=int, default=None, help="alternating rounds of part 2 (default 5; quick 1)")
    ap.add_argument("--backend", action="append", choices=("numpy", "numba"), default=[],
                    help="part 1's backends (repeatable; default numpy)")
    ap.add_argument("--out", default=os.path.join(here, "results"), help="results folder")
    args = ap.parse_args(argv)
    args.load_start = _load()
    parts = sorted(set(args.part)) or [1, 2, 3]
    args.repeats = args.repeats or (3 if args.quick else 7)
    rounds = args.rounds or (1 if args.quick else 5)
    limit_threads()
    t_start = time.perf_counter()
    sections, results = [], {}
    log = lambda s: print(s, flush=True)  # noqa: E731
    if 1 in parts:
        log("== 1. backward against forward (module.run vs module.grad)")
        res = results["backward"] = part_backward(args.quick, args.repeats, log, args.backend or ("numpy",))
        sections.append(("1. Backward pass against the forward step",
                         f"Seed model, generated module (`compile_model(..., trainable=[\"weights\"])`), "
                         f"random J (N(0,1)/√N), random inputs, dt = 0.01; `run` records the output every step, "
                         f"`grad` gets a cotangent for every row (checkpoint_steps = 256; at N = 1000 run()'s chunk cap "
                         f"gives 65-step chunks, and a segment is made of three of them, see part 3); \"one pass\": "
                         f"grad with the cotangents from a function of the records and checkpoint_steps=None, as a "
                         f"fit calls it. Median of "
                         f"{res['repeats']} alternating rounds (best in brackets); {res['load']}.",
                         table_backward(res)))
    if 2 in parts:
        log("== 2. fit_bptt: modelc against RectiPy")
        res = results["fit"] = part_fit(args.quick, rounds, log)
        sections.append(("2. fit_bptt against RectiPy",
                         f"Seed model N = {res['N']}, T = {res['T']} steps (dt = {res['dt']}), {res['epochs']} epochs "
                         f"of one trial, adam (lr = {res['lr']}), mse; the student's recurrent weights "
                         f"(1.5·N(0,1)/√N) fitted to a teacher's trajectory (other weights of the same law) under "
                         f"N(0,1) inputs. modelc: `Network.fit_bptt([inputs], targets[None], optimizer=\"adam\", "
                         f"lr={res['lr']}, epochs={res['epochs']})`; RectiPy: `fit_bptt([inputs] * {res['epochs']}, "
                         f"[targets] * {res['epochs']}, optimizer=\"adam\", lr={res['lr']})` (its epochs are a "
                         f"list), torch 1 thread, float64. What differs, and how it is made the same math: "
                         f"RectiPy's output row k is the state *before* step k+1 (modelc's: after it), so it runs "
                         f"T+1 steps and its targets get the initial state (0, which both predict exactly) in "
                         f"front; its mse then averages T+1 rows, one of them 0, i.e. modelc's loss × T/(T+1), and "
                         f"adam undoes that scale except through eps, so RectiPy's eps is 1e-8·T/(T+1). RectiPy's "
                         f"losses are shown × (T+1)/T. Wall time of the fit_bptt call alone (the networks are "
                         f"built and compiled before), median of {res['rounds']} alternating rounds (best in "
                         f"brackets), a fresh network each round, after one untimed 1-epoch fit of each (first-call "
                         f"costs); setup is RectiPy's PyRates code generation, and for modelc the Network build with "
                         f"its module already loaded in this process; {res['load']}.",
                         table_fit(res)))
    if 3 in parts:
        log("== 3. memory of one long grad() (fresh interpreters)")
        res = results["memory"] = part_memory(args.quick, log)
        sections.append(("3. Memory of a long grad() with checkpointing",
                         "One `grad` (Euler, N = 1000, dense inputs and a cotangent for every step) in a fresh "
                         "interpreter after one small warm-up call: the peak RSS above the process just before "
                         "the call (the kernel's high-water mark, reset first) and tracemalloc's peak, both "
                         "without the caller's arrays, which are listed apart (a fit also holds the run's records, "
                         "(T, N) like the cotangents, unless it records every k-th step). The generated run() "
                         "caps its chunks at about 512 KiB of per-step terms (65 steps at N = 1000); grad's "
                         "segments are made of as many whole chunks as checkpoint_steps allows. The last row asks "
                         "for checkpoint_steps=None: segments of about 64 MiB of the reverse's kept values "
                         f"(what a fit uses). {res['load']}.",
                         table_memory(res)))

    from .__main__ import _meta
    meta = _meta(args, argv)
    meta["command"] = "python -m benchmarks.training " + " ".join(argv)
    meta["elapsed_s"] = time.perf_counter() - t_start
    head = (f"# modelc training benchmarks (issue 12)\n\nMeasured {meta['when']} (modelc at {meta['commit']}) on "
            f"{meta['machine']}; {meta['python']}; numpy {meta['numpy']}; one BLAS thread ({meta['blas']}); "
            f"{meta['load']}. Command: `{meta['command'].strip()}` ({meta['elapsed_s']:.0f} s in all). The "
            f"machine is shared with other engineers' test runs: the times are medians, and each part gives "
            f"its load.\n")
    md = head + "".join(f"\n## {title}\n\n{text}\n\n{table}\n" for title, text, table in sections)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "training.md")
    with open(path, "w") as f:
        f.write(md)
    print()
    print(md)
    print(f"written: {path}; {meta['elapsed_s']:.0f} s in all")
    return 0


if __name__ == "__main__":
    sys.exit(main())
