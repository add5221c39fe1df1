"""Cost of white noise: a noisy network's time per step against the same network without noise.

    python -m benchmarks.noise            # full length
    python -m benchmarks.noise --quick    # shorter runs (a smoke test of the workload)

The network is the seed model's (leaky integrators with tanh rates, dense random recurrent
weights, Network.run with an input array), once as it is and once with `+ sigma*xi` in its
equation (benchmarks/models/noise.yaml). Both run through Network.run with the same weights,
inputs and dt, alternating, `--repeats` rounds; the figure is the median round per step. The
target (issue 13): noisy / plain <= 1.5 for every N and method. Numbers measured on a busy
machine are noisy: re-measure on a quiet one.
"""
from __future__ import annotations

import argparse
import os

from . import limit_threads  # noqa: F401  (the package __init__ pinned the BLAS threads)
from .timing import alternating_medians, ratio_rows

MODELS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "models", "noise.yaml")
TARGET = 1.5
# (N, method, steps, quick steps)
WORKLOADS = [(100, "euler", 20_000, 2_000), (1000, "euler", 5_000, 500), (100, "heun", 20_000, 2_000)]


def network(kind: str, weights, method: str):
    from modelc import Network
    net = Network(dt=1e-3)
    net.add_diffeq_node("p", f"{MODELS}:{kind}", weights=weights, source_var="tanh_op/r",
                        target_var=f"{'noisy_' if kind == 'noisy' else ''}li_op/r_in",
                        input_var=f"{'noisy_' if kind == 'noisy' else ''}li_op/I_ext",
                        output_var=f"{'noisy_' if kind == 'noisy' else ''}li_op/v", method=method)
    return net


def per_step(n: int, method: str, steps: int, repeats: int) -> dict[str, float]:
    """Median seconds per step of each network, from alternating timed runs."""
    import numpy as np
    rng = np.random.default_rng(0)
    weights = rng.normal(0.0, 1.0 / np.sqrt(n), (n, n))
    inputs = rng.normal(0.0, 0.1, (steps, n))
    nets = {kind: network(kind, weights, method) for kind in ("plain", "noisy")}
    for net in nets.values():  # compile and warm up
        net.run(inputs[:100])
    def call(kind):
        def run(round_):
            nets[kind].reset()
            nets[kind].run(inputs, **({"seed": round_} if kind == "noisy" else {}))
        return run
    medians = alternating_medians({kind: call(kind) for kind in nets}, repeats)
    return {kind: median / steps for kind, median in medians.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter runs")
    parser.add_argument("--repeats", type=int, default=5, help="alternating timed rounds (default 5)")
    args = parser.parse_args(argv)
    print(f"{'N':>6} {'method':>7} {'plain µs/step':>14} {'noisy µs/step':>16} {'ratio':>6}  target <= {TARGET}")
    met = ratio_rows(WORKLOADS, per_step, "noisy", TARGET, args.quick, args.repeats)
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
