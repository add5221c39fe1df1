"""GPU check of the CuPy backend (issue 5): correctness against NumPy, then speed.

Run on a machine with an NVIDIA GPU and CuPy (pip install modelc[cupy]):

    python -m benchmarks.gpu_check            # about 2-4 minutes on an H200
    python -m benchmarks.gpu_check --quick    # fewer steps, for a smoke test

1. Correctness, float64, the CuPy backend (every strategy that applies) against the NumPy
   backend: the seed model (leaky integrators, tanh, W @ r), the QIF mean field and
   Hodgkin-Huxley. Pass: max |cupy - numpy| / max |numpy| <= 1e-9 for every recorded variable.
2. Speed: microseconds per step for N = 100, 4096, 16384 (1000 steps) for the three models, the
   strategy that ran, the NumPy backend on the CPU (limited to --cpu-threads threads, 2 by
   default like the project's CI machines; timed on fewer steps when slow, per step), the
   speed-up, and the achieved fraction of HBM bandwidth and FP64 throughput (estimates: bytes =
   the weight matrix read once per matrix-vector product plus the state arrays each kernel
   reads and writes; flops = 2 n^2 per product plus SymPy's operation count of the equations,
   a transcendental function counted as one).
3. The batch sweep: B = 4096 parameter sets (tau) x N = 100 units x 10 000 steps of the seed
   model, against the NumPy backend (timed on a few steps, per step).
4. Gradients (issue 12): grad() of the CuPy backend against the NumPy backend's, float64 (the seed
   network in euler and rk4 with trained weights, tau and a per-unit eta, a batch of trials, a
   computed variable's cotangent; the Kuramoto model's gradients through mean()), pass: every
   gradient within 1e-9 of its size. Then the backward pass's time against the forward's for the
   seed model (euler, one trial, trained weights and tau) at N = 100 and 1000: the forward is
   run() with the training's chunks, the backward grad() given that run's checkpoints (so it is
   the backward alone: every segment integrated again, then swept back); NumPy's ratio beside it.
5. Spiking and noise (issue 13): a QIF network (neuron_model_templates.spiking_neurons.qif.qif,
   N = 1000, dense Gaussian weights J @ s, 1 s at dt = 1e-4: 10 000 steps; --quick: 2000 at 1e-3) forward
   on the GPU in every strategy that applies against the NumPy backend: the spike raster (counts
   per record row of 10 steps) must equal NumPy's; float64 roundoff of cuBLAS's sums against
   NumPy's sum of the fired columns may move a spike by a step late in a chaotic run, so the check
   passes when the totals agree within 0.5% and at most 0.1% of the raster's entries differ
   (the CPU tests demand exact equality on small networks). Then its time per step against
   NumPy's, and an Ornstein-Uhlenbeck process drawn by the device generators (cuRAND XORWOW): its
   stationary variance within 2% of Euler-Maruyama's sigma^2 dt / (1 - (1 - dt/tau)^2).
Targets (issue 5, H200): sweep >= 100x the NumPy backend; seed N=100 <= 10 us/step; seed
N=16384 within 2x of streaming the weight matrix from HBM once per step. Issue 12: the backward
pass per step <= 3x the forward step at N = 100 and 1000. Exit status 0 when every
check passes, 1 when one fails, 2 when there is no GPU/CuPy. Everything runs under a time budget
(--budget seconds, default 280): what does not fit is skipped with a message.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
import traceback

SEED_MODEL = "neuron_model_templates.rate_neurons.leaky_integrator.tanh"
SEED_COUPLING = dict(source_var="tanh_op/r", target_var="li_op/r_in")
QIF_MODEL = "model_templates.neural_mass_models.qif.qif"
HH_MODEL = "neuron_model_templates.conductance.hodgkin_huxley.hh"
KURAMOTO_MODEL = "model_templates.oscillators.kuramoto.kuramoto"
QIF_SPIKING = "neuron_model_templates.spiking_neurons.qif.qif"
OU_TEMPLATE = """\
ou_op:
  base: OperatorTemplate
  equations: "x' = -x/tau + sigma*xi"
  variables: {x: output(0.0), tau: 1.0, sigma: 0.5}
ou:
  base: NodeTemplate
  operators: [ou_op]
"""


class Budget:
    def __init__(self, seconds: float):
        self.start, self.seconds = time.perf_counter(), seconds

    def left(self) -> float:
        return self.seconds - (time.perf_counter() - self.start)


class Report:
    def __init__(self):
        self.failures: list[str] = []
        self.notes: list[str] = []

    def check(self, ok: bool, what: str) -> None:
        print(f"  [{'PASS' if ok else 'FAIL'}] {what}", flush=True)
        if not ok:
            self.failures.append(what)

    def skip(self, what: str) -> None:
        print(f"  [SKIP] {what}", flush=True)
        self.notes.append(what)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer steps (a smoke test, not the issue's numbers)")
    parser.add_argument("--cpu-threads", type=int, default=2, help="threads for NumPy/BLAS on the CPU (default 2)")
    parser.add_argument("--budget", type=float, default=280.0, help="seconds for the whole check (default 280)")
    parser.add_argument("--hbm-tbs", type=float, default=4.8, help="HBM bandwidth, TB/s (H200: 4.8)")
    parser.add_argument("--fp64-tflops", type=float, default=67.0, help="FP64 peak, TFLOP/s (H200: 67)")
    parser.add_argument("--sizes", default="100,4096,16384", help="N of the table (default 100,4096,16384)")
    parser.add_argument("--sweep", default="4096x100", help="B x N of the batch sweep (default 4096x100)")
    parser.add_argument("--steps", type=int, default=None,
                        help="steps of the table (default 1000) and, times 10, of the sweep (default 10000)")
    parser.add_argument("--spiking-n", type=int, default=1000, help="N of the QIF network of section 5 (default 1000)")
    parser.add_argument("--grad-sizes", default="100,1000", help="N of the backward/forward timing (default 100,1000)")
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "BLIS_NUM_THREADS"):
        os.environ[var] = str(args.cpu_threads)   # before NumPy loads its BLAS
    import numpy as np
    try:
        import cupy as cp
    except ImportError as exc:
        print(f"CuPy is not installed ({exc}): pip install modelc[cupy] on a machine with an NVIDIA GPU")
        return 2
    try:
        count = cp.cuda.runtime.getDeviceCount()
        props = cp.cuda.runtime.getDeviceProperties(0) if count else None
    except Exception as exc:  # no driver, no device
        print(f"CuPy cannot reach a GPU ({type(exc).__name__}: {exc})")
        return 2
    if not count:
        print("no CUDA GPU found")
        return 2
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    print(f"GPU: {name}, {props['totalGlobalMem'] / 2**30:.0f} GiB, {props['multiProcessorCount']} SMs; "
          f"CuPy {cp.__version__}; NumPy {np.__version__} on {args.cpu_threads} CPU thread(s)")
    print(f"peaks assumed: HBM {args.hbm_tbs} TB/s, FP64 {args.fp64_tflops} TFLOP/s\n", flush=True)

    from modelc import compile_model
    budget, report = Budget(args.budget), Report()
    ctx = Context(np, cp, compile_model, args, budget, report)
    for section in (ctx.correctness, ctx.gradients, ctx.scaling_table, ctx.batch_sweep, ctx.spiking):
        if budget.left() < 20:
            report.skip(f"{section.__name__}: the time budget is spent")
            continue
        try:
            section()
        except Exception as exc:  # one broken section must not hide the others
            traceback.print_exc()
            report.check(False, f"{section.__name__} crashed: {type(exc).__name__}: {exc}")
    elapsed = time.perf_counter() - budget.start
    print(f"\n{len(report.failures)} failed check(s), {len(report.notes)} skipped, {elapsed:.0f} s in all")
    for failure in report.failures:
        print(f"  FAILED: {failure}")
    return 1 if report.failures else 0


class Context:
    def __init__(self, np, cp, compile_model, args, budget: Budget, report: Report):
        self.np, self.cp, self.compile_model = np, cp, compile_model
        self.args, self.budget, self.report = args, budget, report
        self.quick = args.quick
        self.sizes = tuple(int(v) for v in args.sizes.split(","))
        self.sweep_shape = tuple(int(v) for v in args.sweep.lower().split("x"))
        self.steps = args.steps or (200 if args.quick else 1000)
        self.grad_sizes = tuple(int(v) for v in args.grad_sizes.split(","))

    # -- helpers ------------------------------------------------------------------------------

    def seed_modules(self, method: str, vector_params=(), trainable=()):
        kw = dict(method=method, coupling=SEED_COUPLING, vector_params=vector_params, trainable=trainable)
        return self.compile_model(SEED_MODEL, **kw), self.compile_model(SEED_MODEL, backend="cupy", **kw)

    def modules(self, path: str, method: str):
        return self.compile_model(path, method=method), self.compile_model(path, method=method, backend="cupy")

    def seed_weights(self, n: int):
        rng = self.np.random.default_rng(0)
        return rng.standard_normal((n, n)) / math.sqrt(n)

    def rel_error(self, got: dict, want: dict, names) -> float:
        np = self.np
        worst = 0.0
        for name in names:
            scale = max(float(np.max(np.abs(want[name]))), 1e-300)
            worst = max(worst, float(np.max(np.abs(np.asarray(got[name]) - want[name]))) / scale)
        return worst

    def gpu_seconds(self, run, repeats: int = 3) -> float:
        """Median wall time of run() after one warm-up call (kernels compiled, caches warm)."""
        run()
        self.cp.cuda.Device().synchronize()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            self.cp.cuda.Device().synchronize()
            times.append(time.perf_counter() - start)
        return sorted(times)[len(times) // 2]

    def cpu_seconds_per_step(self, make_run, steps_wanted: int, seconds: float = 2.0) -> tuple[float, int]:
        """NumPy time per step: a short probe, then as many steps as fit `seconds` (<= steps_wanted)."""
        probe_steps = 5
        start = time.perf_counter()
        make_run(probe_steps)()
        per_step = (time.perf_counter() - start) / probe_steps
        steps = int(max(probe_steps, min(steps_wanted, seconds / max(per_step, 1e-9))))
        start = time.perf_counter()
        make_run(steps)()
        return (time.perf_counter() - start) / steps, steps

    # -- 1. correctness ---------------------------------------------------------------------------

    def correctness(self):
        np = self.np
        print("1. CuPy against NumPy, float64 (max |cupy - numpy| / max |numpy| over every recorded variable)")
        steps = self.steps
        for method in ("euler", "rk4"):
            mn, mc = self.seed_modules(method)
            n = 100
            rng = np.random.default_rng(1)
            args = ({"li_op/v": rng.standard_normal((4, n))}, {"weights": self.seed_weights(n)},
                    {"li_op/I_ext": np.ones((steps, n))}, 1e-3 * 10, steps)
            want = mn.run(*args, record=mn.OUTPUTS, sampling_steps=10)
            for strategy in mc.STRATEGIES:
                try:
                    got = mc.run(*args, record=mn.OUTPUTS, sampling_steps=10, strategy=strategy, chunk_steps=100)
                except ValueError:
                    continue   # not applicable to this model
                err = self.rel_error(got, want, mn.OUTPUTS)
                self.report.check(err <= 1e-9, f"seed {method} N={n} B=4 [{strategy}]: {err:.2e}")
        eta = np.linspace(-6.0, -3.0, 64).reshape(64, 1)
        qn = self.compile_model(QIF_MODEL, method="rk4", vector_params=["qif_op/eta"])
        qc = self.compile_model(QIF_MODEL, method="rk4", backend="cupy", vector_params=["qif_op/eta"])
        args = ({"qif_op/r": np.full((64, 1), 0.1)}, {"qif_op/eta": eta}, {"qif_op/I_ext": 3.0}, 1e-3, 10 * steps)
        want = qn.run(*args, record=qn.OUTPUTS, sampling_steps=10)
        for strategy in ("fused", "graph", "stream"):
            got = qc.run(*args, record=qn.OUTPUTS, sampling_steps=10, strategy=strategy, chunk_steps=1000)
            err = self.rel_error(got, want, qn.OUTPUTS)
            self.report.check(err <= 1e-9, f"qif rk4, 64 values of eta [{strategy}]: {err:.2e}")
        hn, hc = self.modules(HH_MODEL, "rk4")
        n = 64
        current = np.broadcast_to(np.linspace(0.0, 15.0, n), (2 * steps, n))
        args = ({}, {}, {"hh_op/I_ext": current}, 0.01, 2 * steps)
        want = hn.run(*args, record=hn.OUTPUTS, sampling_steps=10)
        for strategy in ("fused", "graph", "stream"):
            got = hc.run(*args, record=hn.OUTPUTS, sampling_steps=10, strategy=strategy, chunk_steps=500)
            err = self.rel_error(got, want, hn.OUTPUTS)
            self.report.check(err <= 1e-9, f"hh rk4, {n} neurons, I_ext 0..15 [{strategy}]: {err:.2e}")
        print(flush=True)

    # -- 4. gradients ---------------------------------------------------------------------------------

    def gradients(self):
        np = self.np
        print("4. Gradients: CuPy grad() against NumPy grad(), float64 (max |cupy - numpy| / max |numpy| per gradient)")
        trained = ["weights", "li_op/tau", "li_op/eta"]
        steps, n = min(self.steps, 500), 100
        for method in ("euler", "rk4"):
            mn, mc = self.seed_modules(method, vector_params=["li_op/eta"], trainable=trained)
            rng = np.random.default_rng(2)
            rows = (steps // 5, 4, n)
            args = ({"li_op/v": rng.standard_normal((4, n))},
                    {"weights": self.seed_weights(n), "li_op/tau": 10.0, "li_op/eta": 0.1 * rng.standard_normal(n)},
                    {"li_op/I_ext": rng.standard_normal((steps, 4, n))}, 1e-2, steps,
                    {"li_op/v": rng.standard_normal(rows), "tanh_op/r": rng.standard_normal(rows)})
            want = mn.grad(*args, sampling_steps=5, checkpoint_steps=64)
            for strategy in ("block", "graph"):
                got = mc.grad(*args, sampling_steps=5, checkpoint_steps=64, strategy=strategy)
                err = max(self.rel_error(got["params"], want["params"], trained),
                          self.rel_error(got["y0"], want["y0"], mn.STATES))
                self.report.check(err <= 1e-9, f"seed {method} N={n} B=4, weights, tau, per-unit eta, y0 "
                                  f"[{mc.LAST_GRAD.get('strategy')}]: {err:.2e}")
        kuramoto = dict(method="heun", vector_params=["kuramoto_op/omega"], trainable=["kuramoto_op/K", "kuramoto_op/omega"])
        kn = self.compile_model(KURAMOTO_MODEL, **kuramoto)
        kc = self.compile_model(KURAMOTO_MODEL, backend="cupy", **kuramoto)
        rng = np.random.default_rng(3)
        args = ({"kuramoto_op/theta": rng.uniform(0, 2 * np.pi, 256)},
                {"kuramoto_op/omega": rng.standard_normal(256), "kuramoto_op/K": 2.0}, {}, 1e-2, steps,
                {"kuramoto_op/theta": rng.standard_normal((steps, 256))})
        want, got = kn.grad(*args, checkpoint_steps=64), kc.grad(*args, checkpoint_steps=64)
        err = max(self.rel_error(got["params"], want["params"], want["params"]), self.rel_error(got["y0"], want["y0"], kn.STATES))
        self.report.check(err <= 1e-9, f"kuramoto heun N=256 (through mean()), K, omega, y0: {err:.2e}")
        print(f"\n   backward / forward, seed model (euler, one trial, weights and tau trained, {self.steps} steps, "
              f"segments of 256 steps)")
        header = f"   {'N':>5} {'forward ms':>11} {'backward ms':>12} {'ratio':>6} {'NumPy fwd ms':>13} " \
                 f"{'NumPy bwd ms':>13} {'ratio':>6}"
        print(header, flush=True)
        for n in self.grad_sizes:
            if self.budget.left() < 40:
                self.report.skip(f"gradient timing N={n}: the time budget is spent")
                continue
            mn, mc = self.seed_modules("euler", trainable=["weights", "li_op/tau"])
            rng = np.random.default_rng(4)
            args = ({"li_op/v": 0.1 * rng.standard_normal(n)}, {"weights": self.seed_weights(n)},
                    {"li_op/I_ext": rng.standard_normal((self.steps, n))}, 1e-3, self.steps)
            cotangents = {"li_op/v": rng.standard_normal((self.steps, n))}
            times = []
            for module, timer in ((mc, self.gpu_seconds), (mn, self.cpu_seconds)):
                checkpoints = []
                module.run(*args, record=[], chunk_steps=256, on_chunk=lambda stop, states: checkpoints.append((stop, states)))
                forward = timer(lambda: module.run(*args, record=["li_op/v"], chunk_steps=256))
                backward = timer(lambda: module.grad(*args, cotangents, checkpoint_steps=256, checkpoints=checkpoints))
                times.append((forward, backward))
            (fg, bg), (fc, bc) = times
            print(f"   {n:>5} {fg * 1e3:>11.2f} {bg * 1e3:>12.2f} {bg / fg:>5.1f}x {fc * 1e3:>13.1f} {bc * 1e3:>13.1f} "
                  f"{bc / fc:>5.1f}x   (GPU forward: {mc.LAST_RUN.get('strategy', '?')}, backward: "
                  f"{mc.LAST_GRAD.get('strategy', '?')})", flush=True)
            if not self.quick:
                self.report.check(bg / fg <= 3.0, f"seed N={n}: GPU backward {bg / fg:.1f}x the forward <= 3x")
        print(flush=True)

    def cpu_seconds(self, run, repeats: int = 3) -> float:
        """Median wall time of run() on the CPU, after one warm-up call."""
        run()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return sorted(times)[len(times) // 2]

    # -- 2. microseconds per step -------------------------------------------------------------------

    def scaling_table(self):
        np, cp = self.np, self.cp
        steps, sizes = self.steps, self.sizes
        print(f"2. Microseconds per step ({steps} steps; seed: euler, W on the GPU; qif, hh: rk4, N independent units)")
        header = f"{'model':6} {'N':>6} {'strategy':>10} {'GPU us/step':>12} {'NumPy us/step':>14} " \
                 f"{'speed-up':>9} {'HBM %':>7} {'FP64 %':>7}"
        print(header)
        print("-" * len(header), flush=True)
        hbm, fp64 = self.args.hbm_tbs * 1e12, self.args.fp64_tflops * 1e12
        itemsize = 8
        for model in ("seed", "qif", "hh"):
            for n in sizes:
                if self.budget.left() < 60:
                    self.report.skip(f"{model} N={n}: the time budget is spent")
                    continue
                if model == "seed":
                    mn, mc = self.seed_modules("euler")
                    W = self.seed_weights(n)
                    W_gpu = cp.asarray(W)
                    inputs = {"li_op/I_ext": 1.0}   # the benchmark suite's input (ones), as a constant
                    y0 = {"li_op/v": np.zeros(n)}
                    gpu = lambda s=steps: mc.run(y0, {"weights": W_gpu}, inputs, 1e-3, s, record=[],  # noqa: E731
                                                 chunk_steps=max(1, s // 4))
                    cpu = lambda s: (lambda: mn.run(y0, {"weights": W}, inputs, 1e-3, s, record=[]))  # noqa: E731
                    matvecs, stages = 1, 1
                else:
                    path, dt, inp = (QIF_MODEL, 1e-3, {"qif_op/I_ext": 3.0}) if model == "qif" else \
                        (HH_MODEL, 0.01, {"hh_op/I_ext": 10.0})
                    mn, mc = self.modules(path, "rk4")
                    y0 = {name: np.full(n, init) for name, init in mn.STATES.items()}
                    gpu = lambda s=steps, mc=mc, y0=y0, inp=inp, dt=dt: mc.run(  # noqa: E731
                        y0, {}, inp, dt, s, record=[], chunk_steps=max(1, s // 4))
                    cpu = lambda s, mn=mn, y0=y0, inp=inp, dt=dt: (  # noqa: E731
                        lambda: mn.run(y0, {}, inp, dt, s, record=[]))
                    matvecs, stages = 0, 4
                seconds = self.gpu_seconds(gpu)
                strategy = mc.LAST_RUN.get("strategy", "?")
                gpu_us = seconds / steps * 1e6
                cpu_step, _ = self.cpu_seconds_per_step(cpu, steps, seconds=3.0 if n < 16384 else 6.0)
                cpu_us = cpu_step * 1e6
                states = len(mn.STATES)
                # traffic: weights once per product + every state read and written per stage (graph/stream)
                weight_bytes = matvecs * stages * n * n * itemsize
                state_bytes = 0 if strategy in ("fused", "persistent") else 4 * states * stages * n * itemsize
                flops = matvecs * stages * 2 * n * n + stages * n * self.equation_ops(mn, model)
                hbm_pct = 100 * (weight_bytes + state_bytes) / (gpu_us * 1e-6) / hbm
                fp_pct = 100 * flops / (gpu_us * 1e-6) / fp64
                print(f"{model:6} {n:>6} {strategy:>10} {gpu_us:>12.2f} {cpu_us:>14.1f} {cpu_us / gpu_us:>8.0f}x "
                      f"{hbm_pct:>6.1f}% {fp_pct:>6.2f}%", flush=True)
                if model == "seed" and n == 100 and not self.quick:
                    self.report.check(gpu_us <= 10.0, f"seed N=100: {gpu_us:.2f} us/step <= 10")
                if model == "seed" and n == 16384 and not self.quick:
                    stream_us = n * n * itemsize / hbm * 1e6
                    self.report.check(gpu_us <= 2 * stream_us, f"seed N=16384: {gpu_us:.0f} us/step <= 2 x "
                                      f"{stream_us:.0f} us (the weights streamed from HBM once)")
                del gpu, cpu
                cp.get_default_memory_pool().free_all_blocks()
        print("(HBM %: weights once per product plus state traffic of the per-stage kernels; for 'fused' and "
              "'persistent' the states stay in registers, so only FP64 % is meaningful there)\n", flush=True)

    _ops_cache: dict = {}

    def equation_ops(self, mod, model: str) -> int:
        """Floating-point operations per unit and stage, counted by SymPy on the model's equations."""
        if model not in self._ops_cache:
            import sympy
            from modelc.ir import Connection, build_system
            from modelc.spec import load
            path = {"seed": SEED_MODEL, "qif": QIF_MODEL, "hh": HH_MODEL}[model]
            connections = [Connection("tanh_op/r", "li_op/r_in", "weights")] if model == "seed" else []
            system = build_system(load(path), connections)
            exprs = list(system.derivatives.values()) + [e for _, e in system.algebraics]
            self._ops_cache[model] = int(sum(sympy.count_ops(e) for e in exprs)) + 2 * len(system.states)
        return self._ops_cache[model]

    # -- 3. the batch sweep -------------------------------------------------------------------------

    def batch_sweep(self):
        np = self.np
        B, n = self.sweep_shape
        steps = 10 * self.steps
        print(f"3. Batch sweep: seed model (euler), B = {B} values of tau x N = {n} units x {steps} steps")
        mn, mc = self.seed_modules("euler", vector_params=["li_op/tau"])
        W = self.seed_weights(n)
        taus = np.linspace(5.0, 20.0, B).reshape(B, 1)
        y0 = {"li_op/v": np.zeros((B, n))}
        params = {"weights": W, "li_op/tau": taus}
        inputs = {"li_op/I_ext": 1.0}
        seconds = self.gpu_seconds(lambda: mc.run(y0, params, inputs, 1e-3, steps, record=[]), repeats=1)
        strategy = mc.LAST_RUN.get("strategy", "?")
        gpu_step = seconds / steps
        cpu_step, cpu_steps = self.cpu_seconds_per_step(
            lambda s: (lambda: mn.run(y0, params, inputs, 1e-3, s, record=[])), steps, seconds=4.0)
        speedup = cpu_step / gpu_step
        print(f"  GPU [{strategy}]: {seconds:.2f} s, {gpu_step * 1e6:.1f} us/step, "
              f"{B * n * steps / seconds / 1e9:.2f} G unit-steps/s")
        print(f"  NumPy ({self.args.cpu_threads} threads, timed on {cpu_steps} steps): {cpu_step * 1e3:.2f} ms/step "
              f"-> {cpu_step * steps:.0f} s for the whole sweep")
        # the sweep's results against NumPy on the first steps (float64)
        short = min(steps, 50)
        want = mn.run(y0, params, inputs, 1e-3, short)
        got = mc.run(y0, params, inputs, 1e-3, short)
        err = self.rel_error(got["final"], want["final"], mn.STATES)
        self.report.check(err <= 1e-9, f"sweep, first {short} steps against NumPy: {err:.2e}")
        if (B, n) == (4096, 100) and not self.quick:
            self.report.check(speedup >= 100, f"sweep speed-up over NumPy: {speedup:.0f}x >= 100x")
        else:
            print(f"  speed-up over NumPy: {speedup:.0f}x (the 100x target is for B=4096 x N=100)")
        print(flush=True)

    # -- 5. spiking and noise ------------------------------------------------------------------

    def spiking(self):
        np = self.np
        n, steps, dt = self.args.spiking_n, (2000 if self.quick else 10_000), (1e-3 if self.quick else 1e-4)
        print(f"5. QIF network N={n}, {steps} steps at dt={dt:g}: spike rasters against NumPy; OU noise on the device")
        coupling = dict(source_var="qif_op/s", target_var="qif_op/s_in")
        mn = self.compile_model(QIF_SPIKING, method="euler", coupling=coupling)
        mc = self.compile_model(QIF_SPIKING, method="euler", backend="cupy", coupling=coupling)
        rng = np.random.default_rng(0)
        y0 = {"qif_op/v": rng.uniform(-3.0, 3.0, n)}
        params = {"weights": rng.normal(0.0, 5.0 / math.sqrt(n), (n, n))}
        inputs = {"qif_op/I_ext": 10.0}
        record = ["qif_op/spike"]
        start = time.perf_counter()
        want = mn.run(y0, params, inputs, dt, steps, record=record, sampling_steps=10)["qif_op/spike"]
        cpu_step = (time.perf_counter() - start) / steps
        self.report.check(want.sum() > 0, f"QIF N={n}: NumPy's run spikes ({int(want.sum())} spikes)")
        for strategy in mc.STRATEGIES:
            try:
                got = mc.run(y0, params, inputs, dt, steps, record=record, sampling_steps=10,
                             strategy=strategy)["qif_op/spike"]
            except ValueError:
                continue   # not applicable to these sizes
            differ = float(np.mean(got != want))
            totals = f"{int(got.sum())} spikes vs NumPy's {int(want.sum())}"
            self.report.check(abs(got.sum() - want.sum()) <= 0.005 * max(want.sum(), 1) and differ <= 1e-3,
                              f"QIF N={n} [{strategy}]: {totals}, raster entries differing: {differ:.2e}")
            seconds = self.gpu_seconds(lambda strategy=strategy: mc.run(
                y0, params, inputs, dt, steps, record=record, sampling_steps=10, strategy=strategy), repeats=1)
            print(f"  [{strategy}] {seconds / steps * 1e6:.1f} us/step; NumPy {cpu_step * 1e6:.1f} us/step "
                  f"({cpu_step * steps / seconds:.1f}x)")
        with tempfile.TemporaryDirectory() as folder:
            path = os.path.join(folder, "ou.yaml")
            with open(path, "w") as file:
                file.write(OU_TEMPLATE)
            mc = self.compile_model(f"{path}:ou", method="euler", backend="cupy")
        dt, tau, sigma, ou_steps = 0.05, 1.0, 0.5, 4000
        y0 = {"ou_op/x": np.zeros((16, 1000))}
        rec = mc.run(y0, None, None, dt, ou_steps, sampling_steps=20, seed=1)
        want_var = sigma ** 2 * dt / (1 - (1 - dt / tau) ** 2)
        got_var = float(rec["ou_op/x"][10:].var())
        self.report.check(abs(got_var / want_var - 1) < 0.02,
                          f"OU (16 x 1000 units, {rec['strategy']}): variance {got_var:.5f} vs {want_var:.5f}")
        first, again = (mc.run(y0, None, None, dt, 400, seed=1)["ou_op/x"] for _ in range(2))
        self.report.check(bool(np.array_equal(first, again)), "OU: the same seed draws the same numbers (bit for bit)")
        print(flush=True)


if __name__ == "__main__":
    sys.exit(main())
