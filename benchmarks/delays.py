"""Cost of a delay: a network coupled through delayed rates against the same network without.

    python -m benchmarks.delays            # full length
    python -m benchmarks.delays --quick    # shorter runs (a smoke test of the workload)
    python -m benchmarks.delays --backend numba   # the compiled backend's cost of a delay

Part 1: leaky integrators with dense random recurrent weights, r_in = W @ tanh(v) against
r_in = W @ tanh(v(t - d)) with d = 10 steps (benchmarks/models/delays.yaml), through the
generated module's run() with the same weights, inputs and dt, alternating, `--repeats` rounds;
the figure is the median round per step. A delayed step adds one write into the history and one
read (per stage). Part 2: a Network of two such populations coupled both ways, with and
without add_edge delays drawn from 1-20 steps per source unit (a gather per stage). Numbers measured on a busy machine are noisy: re-measure on a quiet one.
(Issue 15's target is <= 2x for one delay per connection drawn from 1-20 steps; Network.add_edge
takes RectiPy's delays, one per source unit, not a matrix of them.)
"""
from __future__ import annotations

import argparse
import functools
import os

from . import limit_threads  # noqa: F401  (the package __init__ pinned the BLAS threads)
from .timing import alternating_medians, ratio_rows

MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models", "delays.yaml")
TARGET = 2.0
# (N, method, steps, quick steps)
WORKLOADS = [(100, "euler", 20_000, 2_000), (1000, "euler", 5_000, 500), (1000, "heun", 5_000, 500)]
EDGE_WORKLOADS = [(1000, "euler", 5_000, 500), (1000, "heun", 5_000, 500)]


def module(kind: str, method: str, backend: str = "numpy"):
    from modelc import compile_model
    return compile_model(f"{MODELS}:{kind}", method=method, backend=backend,
                         coupling={"source_var": "tanh_op/r" if kind == "plain" else "delayed_tanh_op/r",
                                   "target_var": "li_op/r_in", "input_var": "li_op/I_ext", "output_var": "li_op/v"})


def per_step(n: int, method: str, steps: int, repeats: int, backend: str = "numpy") -> dict[str, float]:
    """Median seconds per step of each module's run(), from alternating timed runs."""
    import numpy as np
    rng = np.random.default_rng(0)
    params = {"weights": rng.normal(0.0, 1.0 / np.sqrt(n), (n, n))}
    inputs = {"li_op/I_ext": rng.normal(0.0, 0.1, (steps, n))}
    modules = {kind: module(kind, method, backend) for kind in ("plain", "delayed")}
    y0 = {"li_op/v": np.zeros(n)}
    for m in modules.values():  # warm up
        m.run(y0, params, {"li_op/I_ext": inputs["li_op/I_ext"][:100]}, dt=1e-3, steps=100)
    medians = alternating_medians({kind: lambda _, m=m: m.run(y0, params, inputs, dt=1e-3, steps=steps,
                                                              record=["li_op/v"])
                                   for kind, m in modules.items()}, repeats)
    return {kind: median / steps for kind, median in medians.items()}


def network(n: int, method: str, delays, backend: str = "numpy"):
    """Two populations of the seed model coupled both ways (a -> b, b -> a), with RectiPy's delays
    (one per source unit) or none."""
    import numpy as np
    from modelc import Network
    rng = np.random.default_rng(1)
    tanh = "neuron_model_templates.rate_neurons.leaky_integrator.tanh"
    net = Network(dt=1e-3, backend=backend)
    net.add_diffeq_node("a", tanh, input_var="li_op/I_ext", output_var="tanh_op/r", N=n, method=method)
    net.add_diffeq_node("b", tanh, input_var="li_op/r_in", output_var="tanh_op/r", N=n, method=method)
    net.add_edge("a", "b", weights=rng.normal(0, 1 / np.sqrt(n), (n, n)), delays=delays)
    net.add_edge("b", "a", weights=rng.normal(0, 1 / np.sqrt(n), (n, n)), target_var="li_op/r_in",
                 delays=delays, feedback=True)
    return net


def edge_per_step(n: int, method: str, steps: int, repeats: int, backend: str = "numpy") -> dict[str, float]:
    """Median seconds per step of Network.run with and without add_edge delays (1-20 steps)."""
    import numpy as np
    delays = np.random.default_rng(2).integers(1, 21, n)
    inputs = np.random.default_rng(0).normal(0.0, 0.1, (steps, n))
    nets = {"plain": network(n, method, None, backend), "delayed": network(n, method, delays, backend)}
    for net in nets.values():  # compile and warm up
        net.run(inputs[:100])
    medians = alternating_medians({kind: lambda _, net=net: (net.reset(), net.run(inputs))
                                   for kind, net in nets.items()}, repeats)
    return {kind: median / steps for kind, median in medians.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--repeats", type=int, default=5, help="alternating timed rounds (default 5)")
    parser.add_argument("--backend", default="numpy", help="the modules' backend (numpy, numba)")
    args = parser.parse_args(argv)
    print(f"backend {args.backend}")
    print(f"{'N':>6} {'method':>7} {'plain µs/step':>14} {'delayed µs/step':>16} {'ratio':>6}  target <= {TARGET}")
    met = ratio_rows(WORKLOADS, functools.partial(per_step, backend=args.backend), "delayed", TARGET, args.quick,
                     args.repeats)
    print("Network, two populations coupled both ways, add_edge delays of 1-20 steps per source unit:")
    met &= ratio_rows(EDGE_WORKLOADS, functools.partial(edge_per_step, backend=args.backend), "delayed", TARGET,
                      args.quick, args.repeats)
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
