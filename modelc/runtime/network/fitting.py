"""Fitting a Network by gradients (RectiPy's fit_bptt, test and grad), on the generated grad().

The loops live here; losses, optimisers and one loss-and-gradient call live in modelc.training,
which works on the generated module alone. What is trained is what the graph names: node
train_params ("label/op/var", "label/weights") and edges made with train="gd" ("source->target").
"""
from __future__ import annotations

from contextlib import contextmanager
from types import ModuleType

import numpy as np

from ...errors import InvalidValueError, ShapeError, WiringError
from ...training import get_loss, get_optimizer, loss_and_gradients
from ..observer import Observer
from .arguments import output_name, run_inputs
from .graph import Graph
from .progress import ProgressBar
from .variables import parameter_value, parameter_values


def trained_names(graph: Graph) -> dict[str, str]:
    """{gradient name: module parameter}, or a clear error when nothing is trainable."""
    names = graph.trainables()
    if not names:
        raise WiringError("nothing in the network is trainable", None,
                          'name parameters with add_diffeq_node(..., train_params=["weights", "li_op/tau"]) or '
                          'train an edge with add_edge(..., train="gd")')
    return names


def trials(graph: Graph, module: ModuleType, inputs, targets, dtype) -> tuple[int, dict, np.ndarray, int | None]:
    """(steps, module inputs, targets as records, batch) of fit_bptt/test's inputs: one sequence
    (T, n_in) with targets (T // sampling_steps, n_out), or trials — a list of sequences or an
    array (B, T, n_in) with targets (B, T // sampling_steps, n_out) — run as one batch."""
    batched = isinstance(inputs, (list, tuple)) or (isinstance(inputs, np.ndarray) and inputs.ndim == 3)
    if not batched:
        steps, given = run_inputs(graph, module, inputs, None, batch=None, dtype=dtype)
        return steps, given, np.asarray(targets), None
    inputs, targets = np.stack([np.asarray(x, dtype=dtype) for x in inputs]), np.asarray(targets)
    if targets.ndim < 2 or len(targets) != len(inputs):
        raise ShapeError(f"{len(inputs)} trials of inputs need targets (B = {len(inputs)}, T // sampling_steps, "
                         f"n_out), got shape {targets.shape}")
    steps, given = run_inputs(graph, module, np.swapaxes(inputs, 0, 1), None, batch=len(inputs), dtype=dtype)
    return steps, given, np.swapaxes(targets, 0, 1), len(inputs)


class Trainer:
    """The values being trained (the module's parameters) and the optimiser stepping them."""

    def __init__(self, graph: Graph, optimizer: str, lr: float, optimizer_kwargs: dict | None):
        self.graph = graph
        self.names = trained_names(graph)
        self.params = parameter_values(graph)
        for name, module_name in self.names.items():  # copies: the user's arrays are never changed in place
            if module_name not in self.params:  # a parameter left at its template's default
                label, local = name.split("/", 1)
                self.params[module_name] = parameter_value(graph.nodes[label], local)
            value = self.params[module_name]
            self.params[module_name] = np.array(value) if np.ndim(value) else float(value)
        self.optimizer = get_optimizer(optimizer, lr, **(optimizer_kwargs or {}))

    def step(self, gradients: dict) -> None:
        """One optimiser step, written back into the graph (set_var/get_var see the new values)."""
        self.optimizer.step(self.params, {m: gradients[m] for m in self.names.values()})
        for name, module_name in self.names.items():
            self.graph.set_trained(name, self.params[module_name])


def bptt_updates(module, trainer: Trainer, y0: dict, inputs: dict, targets, steps: int, dt: float,
                 loss_name: str, loss_kwargs, sampling_steps: int, update_steps: int, t0: float,
                 verbose: bool = False):
    """Online truncated BPTT over one sequence: a step of the optimiser every update_steps steps,
    the state carried on (the gradient stops at each update). Returns (Observer, final states)."""
    loss = _loss(loss_name, loss_kwargs)
    if update_steps % sampling_steps:
        raise InvalidValueError(f"update_steps ({update_steps}) must be a multiple of sampling_steps ({sampling_steps})")
    output, losses, outputs = output_name(trainer.graph), [], []
    with _progress(-(-steps // update_steps), "update", verbose) as bar:
        for start, stop, window in windows(inputs, steps, update_steps):
            rows = targets[start // sampling_steps:stop // sampling_steps]
            value, gradients, result = loss_and_gradients(module, y0, trainer.params, window, dt, stop - start,
                                                          output, rows, loss, sampling_steps, t0 + start * dt)
            trainer.step(gradients)
            losses.append(value)
            outputs.append(result[output])
            y0 = result["final"]
            _tick(bar, len(losses), value)
    return observer(dt, sampling_steps, t0, np.concatenate(outputs), loss=losses), y0


def bptt_epochs(module, trainer: Trainer, y0: dict, inputs: dict, targets, steps: int, dt: float,
                loss_name: str, loss_kwargs, sampling_steps: int, epochs: int, t0: float, verbose: bool) -> Observer:
    """Epochs over all trials as one batch: one optimiser step per epoch, every epoch from y0."""
    loss = _loss(loss_name, loss_kwargs)
    output, losses = output_name(trainer.graph), []
    with _progress(int(epochs), "epoch", verbose) as bar:
        for epoch in range(int(epochs)):
            value, gradients, result = loss_and_gradients(module, y0, trainer.params, inputs, dt, steps, output,
                                                          targets, loss, sampling_steps, t0)
            trainer.step(gradients)
            losses.append(value)
            _tick(bar, epoch + 1, value)
    return observer(dt, sampling_steps, t0, result[output], epoch_loss=losses)


@contextmanager
def _progress(total: int, unit: str, verbose: bool):
    """fit_bptt's progress bar (None when not verbose), closed however the loop ends."""
    bar = ProgressBar(total, unit=unit) if verbose else None
    try:
        yield bar
    finally:
        if bar is not None:
            bar.close()


def _tick(bar: ProgressBar | None, done: int, loss: float) -> None:
    if bar is not None:
        bar.show(loss=loss)
        bar.update(done)


def windows(inputs: dict, steps: int, update_steps: int):
    """(start, stop, the inputs of steps start..stop-1) for each chunk of update_steps steps: the
    chunks of online learning (truncated BPTT here, RLS in readout.py). Constant inputs stay."""
    for start in range(0, steps, update_steps):
        stop = min(start + update_steps, steps)
        yield start, stop, {name: value[start:stop] if np.ndim(value) else value for name, value in inputs.items()}


def observer(dt: float, sampling_steps: int, t0: float, outputs: np.ndarray, **series) -> Observer:
    """The Observer of a fit: obs["out"] (batch axis second for trials) and per-update series."""
    records = {"out": outputs, **{key: np.asarray(value) for key, value in series.items()}}
    times = t0 + np.arange(1, len(outputs) + 1) * sampling_steps * dt
    return Observer(dt, sampling_steps, records, times)


def _loss(name: str, kwargs):
    if kwargs:
        raise InvalidValueError(f"loss '{name}' takes no loss_kwargs, got {sorted(kwargs)}")
    return get_loss(name)
