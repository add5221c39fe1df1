"""Compile-time figures, each measured in a fresh interpreter (see timing.child):

- ``compile_model`` of the seed model (euler, rk4) and of the three single systems (QIF, Jansen-Rit,
  Hodgkin-Huxley): cold (empty ``MODELC_CACHE_DIR``) and cache hit (a second fresh interpreter,
  same cache folder); with numba installed, each again with backend="numba" plus a 1-step run
  (numba's JIT when cold, numba's cache when hit), numba's own import timed apart;
- ``Network.add_diffeq_node`` + ``Network.compile()`` at N = 100, 1000, 4000: compile time must
  not grow with N, since the population and the weights are arrays (the first 2-step run, which
  also checks the N x N weights, is recorded separately as first_run_s);
- a chain of P = 1, 10, 30, 100 populations (n = 10 units each, ``add_diffeq_node`` per population,
  ``add_edge`` from each to the next): compile time may grow at most linearly with P.
"""
from __future__ import annotations

import importlib.util

from .timing import cold_and_hit, warm_up_files
from .workloads import HH_MODEL, JR_MODEL, QIF_MODEL, SEED_COUPLING, SEED_MODEL


def compile_figures(quick: bool = False, log=print) -> dict:
    """Cold and cache-hit figures per model (median of 3 fresh-interpreter pairs; 1 if quick)."""
    items = []
    specs = [("compile_model(seed, euler)", None, dict(what="compile", model=SEED_MODEL, method="euler",
                                                       coupling=SEED_COUPLING, N=0)),
             ("compile_model(seed, rk4)", None, dict(what="compile", model=SEED_MODEL, method="rk4",
                                                     coupling=SEED_COUPLING, N=0)),
             ("compile_model(QIF mean field)", None, dict(what="compile", model=QIF_MODEL,
                                                          method="euler", N=0)),
             ("compile_model(Jansen-Rit circuit)", None, dict(what="compile", model=JR_MODEL,
                                                              method="euler", N=0)),
             ("compile_model(Hodgkin-Huxley, rk4)", None, dict(what="compile", model=HH_MODEL,
                                                               method="rk4", N=0))]
    if importlib.util.find_spec("numba"):  # backend="numba": compile_model + the first run (numba's JIT or cache)
        specs += [(f"{label.replace('compile_model', 'numba: compile_model')} + 1-step run", None,
                   dict(spec, backend="numba")) for label, _, spec in specs[:]]
    for N in (100, 1000, 4000):
        specs.append(("Network(seed) add+compile", N,
                      dict(what="network", model=SEED_MODEL, method="euler", coupling=SEED_COUPLING, N=N)))
    warm_up_files()
    for label, N, spec in specs:
        res = cold_and_hit(spec, repeats=1 if quick else 3)
        res.update(label=label, N=N)
        items.append(res)
        c, h = res["cold"], res["hit"]
        log(f"  {label}{'' if N is None else f' N={N}'}: cold {c.get('compile_s', c.get('error'))}, "
            f"hit {h.get('compile_s', h.get('error'))}")
    return dict(items=items)


def population_scaling(quick: bool = False, log=print) -> dict:
    out = []
    for P in (1, 10, 30, 100):
        spec = dict(what="populations", model=SEED_MODEL, method="euler", coupling=SEED_COUPLING, N=10, P=P)
        res = cold_and_hit(spec, repeats=1 if P == 100 else 3)
        res["P"] = P
        out.append(res)
        log(f"  P={P}: cold {res['cold'].get('compile_s', res['cold'].get('error'))}, "
            f"hit {res['hit'].get('compile_s', res['hit'].get('error'))}")
    return dict(populations=out)
