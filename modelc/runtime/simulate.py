"""simulate: one call from a template to its recorded outputs, as PyRates users run a circuit.

    import modelc
    obs = modelc.simulate("model_templates.neural_mass_models.jansenrit.JRC", T=2.0, dt=1e-4,
                          outputs={"v_e": "pc/rpo_e_ext/v", "v_i": "pc/rpo_i/v"},
                          sampling_step_size=1e-3)
    frame = obs.to_dataframe(None)   # a pandas DataFrame: one column per output (pandas optional)

PyRates' CircuitTemplate.run(simulation_time, step_size, inputs, outputs, solver,
sampling_step_size) in modelc's terms: one copy of the template (a circuit, a node or an
operator) as the only node of a Network, run once. Times are in the template's time unit.
"""
from __future__ import annotations

import numpy as np

from ..errors import InvalidValueError
from ..spec import load
from .network import Network, Observer


def simulate(template, T: float, dt: float, inputs: dict | None = None, outputs=None, method: str = "euler",
             sampling_step_size: float | None = None, *, node_vars: dict | None = None, sampling: str = "snapshot",
             device: str = "cpu", dtype: str = "float64", backend: str | None = None, seed=None,
             grid: dict | None = None, **sweep_options):
    """Run a template for T time units with step dt; returns an Observer of the outputs.

    template: a dotted path, "file.yaml:template" or a loaded template (circuit, node, operator).
    inputs:   {"node/op/var" (or "op/var" for a node): array of round(T/dt) rows} (one value per
              step, shape (steps,) or (steps, 1)), or a number (held constant). Edges into the
              same variable add up with it.
    outputs:  {name: "node/op/var"} (or a list of paths, named by themselves); None records
              every state. obs[name] has shape (rows, 1); obs.to_dataframe(None) puts them in
              one DataFrame indexed by time.
    method:   the integration scheme (euler, heun, midpoint, rk4, ...).
    sampling_step_size: the time between recorded rows (a whole number of steps; default dt).
              Row k holds the value after step (k + 1) * sampling steps (sampling="snapshot"),
              or the mean over its window (sampling="mean").
    node_vars: {path: value} parameters and initial values, as in Network.add_diffeq_node.
    device, dtype, backend: as in Network (backend="numba": the compiled CPU backend).
    seed:     the white noise's random numbers (a model with xi), as in Network.run and sweep.
    grid:     {path: [values]}: every combination runs (Network.sweep in chunks); the result is an
              xarray.Dataset of the outputs with one dimension per path, then time and unit.
              sweep_options: Network.sweep's scheduler, store, reduce, chunk_size and verbose.
    """
    net = Network(dt=dt, device=device, dtype=dtype, backend=backend)
    template = load(template)
    label = template.name if template.name.isidentifier() else "model"
    constants = {path: value for path, value in (inputs or {}).items() if np.ndim(value) == 0}
    driven = {(label, path): value for path, value in (inputs or {}).items() if np.ndim(value) != 0}
    net.add_diffeq_node(label, template, N=1, method=method, node_vars={**(node_vars or {}), **constants})
    named = _named_outputs(outputs, net, label)
    if grid is not None:
        if sampling != "snapshot":
            raise InvalidValueError("a grid of simulations records snapshots only", None, 'leave sampling="snapshot"')
        return net.sweep(grid, driven or None, steps=_whole_steps(T, net.dt, "T"), record_output=False,
                         record_vars=[(label, path) for path in named.values()],
                         names={(label, path): name for name, path in named.items()},
                         sampling_steps=1 if sampling_step_size is None else _whole_steps(
                             sampling_step_size, net.dt, "sampling_step_size"), seed=seed, **sweep_options)
    obs = net.run(driven or None, steps=_whole_steps(T, net.dt, "T"), record_output=False,
                  record_vars=[(label, path) for path in named.values()], sampling=sampling, seed=seed,
                  sampling_steps=1 if sampling_step_size is None else _whole_steps(sampling_step_size, net.dt,
                                                                                   "sampling_step_size"))
    return Observer(net.dt, obs.sampling_steps, {name: obs[(label, path)] for name, path in named.items()}, obs.times)


def _named_outputs(outputs, net: Network, label: str) -> dict[str, str]:
    """{name: path} of the outputs; every state of the model when outputs is None."""
    if outputs is None:
        return {name.split("/", 1)[1]: name.split("/", 1)[1] for name in net.compile().STATES}
    if isinstance(outputs, str):
        outputs = [outputs]
    if not isinstance(outputs, dict):
        outputs = {path: path for path in outputs}
    if not outputs:
        raise InvalidValueError("outputs names nothing to record", None, 'pass {"name": "node/op/var"} or None '
                                "(every state)")
    return dict(outputs)


def _whole_steps(span, dt: float, what: str) -> int:
    """A time span as a whole number >= 1 of steps dt (PyRates rounds; a span that is not a whole
    number of steps, up to rounding of the floats, is an error here)."""
    try:
        steps = float(span) / dt
    except (TypeError, ValueError):
        raise InvalidValueError(f"{what} must be a number, got {span!r}") from None
    if not np.isfinite(steps) or round(steps) < 1 or abs(steps - round(steps)) > 1e-6 * max(1.0, steps):
        raise InvalidValueError(f"{what} = {span!r} is not a whole number >= 1 of steps dt = {dt:g}", None,
                                f"choose {what} as a multiple of dt")
    return int(round(steps))
