"""The workloads of issues 6 and 17, and the data (weights, inputs, parameters) every contender shares.

Each workload builds its data once, from a fixed seed; every contender receives the same
arrays (the same J, the same input array, the same dt), so their final states can be compared.
"""
from __future__ import annotations

import dataclasses
import functools
import math
import os

import numpy as np

SEED_MODEL = "neuron_model_templates.rate_neurons.leaky_integrator.tanh"
SEED_COUPLING = dict(source_var="tanh_op/r", target_var="li_op/r_in",
                     input_var="li_op/I_ext", output_var="li_op/v")
_HERE = os.path.dirname(os.path.abspath(__file__))
# The single systems come from benchmarks/models/nmm.yaml (the same equations and constants
# as the hand-written loops and the PyRates contender), not from the shipped library.
NMM_FILE = os.path.join(_HERE, "models", "nmm.yaml")
QIF_MODEL = NMM_FILE + ":qif"
JR_MODEL = NMM_FILE + ":JRC"
QIF_INPUT = 3.0          # constant I_ext of the QIF workload
# Hodgkin-Huxley from the shipped library (issue 17's third single-unit circuit); at 10 uA/cm^2
# it fires repetitively (about 70 Hz), so the run crosses spikes, not only the resting state.
HH_MODEL = "neuron_model_templates.conductance.hodgkin_huxley.hh"
HH_INPUT = 10.0

# Seed-model parameter defaults (DESIGN.md): tau 10, k 1, eta 0, v(0) = 0.
SEED_PARAMS = dict(tau=10.0, k=1.0, eta=0.0)


@dataclasses.dataclass(frozen=True)
class Workload:
    name: str
    family: str          # "seed" | "qif" | "jr" | "hh" | "sweep"
    N: int               # population size (1 for the single systems)
    steps: int
    method: str          # "euler" | "rk4"
    dt: float
    B: int = 1           # parameter sets (sweep)
    quick_steps: int = 0

    def with_quick(self, quick: bool) -> "Workload":
        if quick and self.quick_steps:
            return dataclasses.replace(self, steps=self.quick_steps)
        return self

    @property
    def unit_steps(self) -> int:
        """Units integrated x steps: the throughput measure of the sweep."""
        return self.B * self.N * self.steps

    def data(self) -> dict:
        return _data(self)


def _seed_weights(N: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.standard_normal((N, N)) / math.sqrt(N)


@functools.lru_cache(maxsize=4)
def _data(wl: Workload) -> dict:
    if wl.family in ("seed", "sweep"):
        J = _seed_weights(wl.N)
        inputs = np.ones((wl.steps, wl.N))
        d = dict(J=J, inputs=inputs, params=dict(SEED_PARAMS), v0=np.zeros(wl.N))
        if wl.family == "sweep":
            # B values of tau, spread over 5..20 (B=1 -> the default 10).
            d["taus"] = np.array([10.0]) if wl.B == 1 else np.linspace(5.0, 20.0, wl.B)
        return d
    if wl.family == "qif":
        return dict(I_ext=QIF_INPUT)
    if wl.family == "hh":
        return dict(I_ext=HH_INPUT)
    if wl.family == "jr":
        return dict()
    raise ValueError(wl.family)


def seed(N: int, steps: int, method: str, quick_steps: int) -> Workload:
    return Workload(f"seed-{method}-N{N}", "seed", N, steps, method, 1e-3, quick_steps=quick_steps)


ALL = [
    seed(100, 10_000, "euler", 2_000),
    seed(1000, 2_000, "euler", 400),
    seed(4000, 500, "euler", 100),
    seed(100, 10_000, "rk4", 2_000),
    seed(1000, 2_000, "rk4", 400),
    seed(4000, 500, "rk4", 50),
    Workload("qif-euler", "qif", 1, 10_000, "euler", 1e-3, quick_steps=2_000),
    Workload("jr-euler", "jr", 1, 10_000, "euler", 1e-4, quick_steps=2_000),
    Workload("hh-rk4", "hh", 1, 10_000, "rk4", 1e-2, quick_steps=2_000),   # dt in ms: 100 ms
    Workload("sweep-B1", "sweep", 100, 1_000, "euler", 1e-3, B=1, quick_steps=200),
    Workload("sweep-B16", "sweep", 100, 1_000, "euler", 1e-3, B=16, quick_steps=200),
    Workload("sweep-B256", "sweep", 100, 1_000, "euler", 1e-3, B=256, quick_steps=200),
]
BY_NAME = {w.name: w for w in ALL}


def select(names: list[str] | None) -> list[Workload]:
    """Workloads by exact name or by prefix ("seed", "seed-rk4", "sweep")."""
    if not names:
        return list(ALL)
    out = []
    for n in names:
        hits = [w for w in ALL if w.name == n] or [w for w in ALL if w.name.startswith(n)]
        if not hits:
            raise SystemExit(f"unknown workload {n!r}; known: {', '.join(BY_NAME)}")
        out += [w for w in hits if w not in out]
    return out
