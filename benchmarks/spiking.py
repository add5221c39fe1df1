"""Spiking networks: QIF neurons with dense random weights, modelc against the peers.

    python -m benchmarks.spiking                         # N = 1000 and 4000, 1 s at dt = 1e-4
    python -m benchmarks.spiking --quick                 # 200 steps (a smoke test of the workloads)
    /tmp/modelc-bench-venv/bin/python -m benchmarks.spiking   # with RectiPy 0.12.2 and Brian2

The network (issue 13): N QIF neurons of the shipped template
neuron_model_templates.spiking_neurons.qif.qif (v' = (v^2 + eta + I_ext)/tau + k*s_in,
s' = -s/tau_s + spike, threshold 100, reset -100), s_in = J @ s with dense Gaussian J, a constant
input; time in units of tau = 1, 1 s read as T = 1 at dt = 1e-4 (10 000 steps). Contenders:
- modelc: Network.add_diffeq_node + run (the spike record kept, as a user would);
- hand-written NumPy: the same loop in place, the baseline;
- RectiPy 0.12.2: its own qif template with spike_var/reset_var (torch CPU, one thread);
- Brian2 2.x, numpy and cython targets: NeuronGroup with threshold/reset (s += 1 at the reset),
  the dense J @ s in a network_operation; and Brian2's event-driven way (cython): N^2 Synapses
  whose spikes add J[:, j] onto a decaying synaptic input.
- modelc's run() computes J @ s from the spikes as well: s' = -s/tau_s + spike changes only
  through spikes, so J @ s is carried from step to step (plan.SpikeDriven).
Every contender runs `--repeats` alternating rounds; the figure is the median µs per step, and
the spike count shows that they simulate the same network (the peers detect a spike after the
step that crosses, modelc and RectiPy on the state the step starts from: counts differ a little).
Targets: modelc >= 10x RectiPy and faster than Brian2's numpy target. Numbers measured on a busy
machine are noisy: re-measure on a quiet one. `--steps` shortens a run (N = 4000's dense peers
take about 10 ms a step).
"""
from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time

from . import limit_threads  # noqa: F401  (the package __init__ pinned the BLAS threads)

TEMPLATE = "neuron_model_templates.spiking_neurons.qif.qif"
DT, STEPS, QUICK_STEPS = 1e-4, 10_000, 200
SIZES = (1000, 4000)
PEAK, RESET, ETA, I_EXT = 100.0, -100.0, -5.0, 10.0
SYNAPSES_MAX_N = 2000  # Brian2's N^2 Synapses: their memory grows as N^2


def data(n: int, steps: int) -> dict:
    import numpy as np
    rng = np.random.default_rng(0)
    return dict(J=rng.normal(0.0, 5.0 / np.sqrt(n), (n, n)), inputs=np.full((steps, n), I_EXT),
                v0=rng.uniform(-3.0, 3.0, n))


class Contender:
    """setup() once, run() timed; spikes() after a run."""

    def __init__(self, d: dict, steps: int):
        self.d, self.steps, self.n = d, steps, len(d["v0"])


class Modelc(Contender):
    name = "modelc (Network.run)"

    def setup(self):
        from modelc import Network
        self.net = Network(dt=DT)
        self.net.add_diffeq_node("qif", TEMPLATE, "qif_op/I_ext", "qif_op/s", weights=self.d["J"],
                                 source_var="qif_op/s", target_var="qif_op/s_in", node_vars={"qif_op/v": self.d["v0"]})

    def run(self):
        self.net.reset()
        self.obs = self.net.run(inputs=self.d["inputs"], record_output=False, record_vars=[("qif", "spike")])

    def spikes(self) -> int:
        return int(self.obs[("qif", "spike")].sum())


class HandWritten(Contender):
    name = "hand-written NumPy"

    def setup(self):
        pass

    def run(self):
        import numpy as np
        J, inputs, dt = self.d["J"], self.d["inputs"], DT
        v, s = self.d["v0"].copy(), np.zeros(self.n)
        count = 0
        for step in range(self.steps):
            fired = v > PEAK
            count += int(fired.sum())
            s_in = J @ s
            v += dt * (v * v + ETA + inputs[step] + s_in)
            s *= 1.0 - dt
            s += fired
            v[fired] = RESET
        self.count = count

    def spikes(self) -> int:
        return self.count


@contextlib.contextmanager
def _scratch_cwd():
    """RectiPy (PyRates) writes generated files into the working directory."""
    old = os.getcwd()
    with tempfile.TemporaryDirectory(prefix="modelc-bench-") as folder:
        os.chdir(folder)
        try:
            yield
        finally:
            os.chdir(old)


class RectiPy(Contender):
    name = "RectiPy 0.12.2"

    def setup(self):
        import torch
        import rectipy
        torch.set_num_threads(1)
        with _scratch_cwd():
            self.net = rectipy.Network(dt=DT, device="cpu")
            self.net.add_diffeq_node("qif", TEMPLATE, weights=self.d["J"], source_var="qif_op/s",
                                     target_var="qif_op/s_in", input_var="qif_op/I_ext", output_var="qif_op/s",
                                     spike_var="qif_op/spike", reset_var="qif_op/v", spike_threshold=PEAK,
                                     spike_reset=RESET, clear=True, verbose=False,
                                     node_vars={"all/qif_op/v": self.d["v0"], "all/qif_op/eta": ETA})
        self.inputs = torch.tensor(self.d["inputs"])

    def run(self):
        self.net.reset()
        self.obs = self.net.run(self.inputs, verbose=False, enable_grad=False)

    def spikes(self) -> int:
        return -1  # RectiPy records its output (s), not the spikes


class Brian2(Contender):
    target = "numpy"

    @property
    def name(self):
        return f"Brian2 ({self.target} target)"

    def setup(self):
        import brian2 as b2
        b2.prefs.codegen.target = self.target
        b2.defaultclock.dt = DT * b2.second
        group = b2.NeuronGroup(self.n, """
            dv/dt = (v**2 + eta + I_ext)/second + s_in/second : 1
            ds/dt = -s/second : 1
            s_in : 1
            """, threshold="v > peak", reset="v = reset_value; s += 1", method="euler",
            namespace=dict(eta=ETA, I_ext=I_EXT, peak=PEAK, reset_value=RESET))
        group.v = self.d["v0"]
        J = self.d["J"]

        @b2.network_operation(when="start")
        def couple():
            group.s_in_ = J @ group.s_

        self.monitor = b2.SpikeMonitor(group)
        self.net = b2.Network(group, couple, self.monitor)
        self.net.store()
        self.b2 = b2

    def run(self):
        self.net.restore()
        self.net.run(self.steps * DT * self.b2.second)

    def spikes(self) -> int:
        return int(self.monitor.num_spikes)


class Brian2Cython(Brian2):
    target = "cython"


class Brian2Synapses(Brian2):
    """Brian2's own event-driven coupling: N^2 Synapses, each spike adds its weights onto the
    targets' synaptic input (s_in_i += J_ij; s_in decays as s does): the same network."""

    target = "cython"

    @property
    def name(self):
        return f"Brian2 ({self.target}, Synapses)"

    def setup(self):
        if self.n > SYNAPSES_MAX_N:
            raise MemoryError(f"skipped above N = {SYNAPSES_MAX_N}: Brian2 held over 10 GB building N = 4000's "
                              "16M synapses")
        import brian2 as b2
        b2.prefs.codegen.target = self.target
        b2.defaultclock.dt = DT * b2.second
        group = b2.NeuronGroup(self.n, """
            dv/dt = (v**2 + eta + I_ext)/second + s_in/second : 1
            ds_in/dt = -s_in/second : 1
            """, threshold="v > peak", reset="v = reset_value", method="euler",
            namespace=dict(eta=ETA, I_ext=I_EXT, peak=PEAK, reset_value=RESET))
        group.v = self.d["v0"]
        synapses = b2.Synapses(group, group, "w : 1", on_pre="s_in_post += w")
        synapses.connect()
        synapses.w[:] = self.d["J"][synapses.j[:], synapses.i[:]]  # J[target, source]
        self.monitor = b2.SpikeMonitor(group)
        self.net = b2.Network(group, synapses, self.monitor)
        self.net.store()
        self.b2 = b2


CONTENDERS = [Modelc, HandWritten, RectiPy, Brian2, Brian2Cython, Brian2Synapses]


def measure(n: int, steps: int, repeats: int) -> list[tuple[str, float | None, int | None, str]]:
    """(name, median µs per step or None, spikes in the last run, note) per contender."""
    d = data(n, steps)
    ready, rows = [], []
    for cls in CONTENDERS:
        contender = cls(d, steps)
        try:
            contender.setup()
            contender.run()  # compile, warm up
            ready.append(contender)
        except ImportError as exc:
            rows.append((contender.name, None, None, f"missing: {exc.name or exc}"))
        except Exception as exc:  # a peer that fails says why, the others still run
            rows.append((contender.name, None, None, f"failed: {type(exc).__name__}: {exc}"[:120]))
    times: dict[str, list[float]] = {c.name: [] for c in ready}
    for round_ in range(repeats):
        for contender in (ready if round_ % 2 == 0 else ready[::-1]):
            start = time.perf_counter()
            contender.run()
            times[contender.name].append(time.perf_counter() - start)
    rows += [(c.name, statistics.median(times[c.name]) / steps * 1e6, c.spikes(), "") for c in ready]
    return sorted(rows, key=lambda row: (row[1] is None, row[1] or 0.0))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_STEPS} steps instead of {STEPS}")
    parser.add_argument("--steps", type=int, help=f"steps per run (default {STEPS}: 1 s at dt = {DT:g})")
    parser.add_argument("--repeats", type=int, default=5, help="alternating timed rounds (default 5)")
    parser.add_argument("--sizes", type=int, nargs="*", default=list(SIZES), help="network sizes N")
    args = parser.parse_args(argv)
    steps = args.steps or (QUICK_STEPS if args.quick else STEPS)
    for n in args.sizes:
        rows = measure(n, steps, max(1, args.repeats))
        ours = next((us for name, us, _, _ in rows if name.startswith("modelc")), None)
        print(f"\nQIF network N={n}, {steps} steps at dt={DT:g}")
        print(f"{'contender':28s} {'µs/step':>10} {'modelc is':>11} {'spikes':>8}")
        for name, us, spikes, note in rows:
            if us is None:
                print(f"{name:28s} {note}")
                continue
            ratio = f"{us / ours:.1f}x" if ours else "-"
            print(f"{name:28s} {us:>10.1f} {ratio:>11} {spikes if spikes >= 0 else '-':>8}")
        figures = {name: us for name, us, _, _ in rows if us is not None}
        if ours and "RectiPy 0.12.2" in figures:
            print(f"target modelc >= 10x RectiPy: {figures['RectiPy 0.12.2'] / ours:.1f}x")
        if ours and "Brian2 (numpy target)" in figures:
            print(f"target modelc faster than Brian2 numpy: {figures['Brian2 (numpy target)'] / ours:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
