"""The arguments of one run or sweep for the generated run(): the steps and inputs, the records
to keep, and the Observer made of what comes back.

Time convention: step k advances the state from t_k to t_{k+1} = t_k + dt using row k of the
inputs; row k of a record is the value after step (k + 1) * sampling_steps (sampling="snapshot"),
or the mean of the values after the steps k * sampling_steps + 1 .. (k + 1) * sampling_steps
(sampling="mean"). Steps past the last whole window run but are not recorded (a warning).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from ...errors import InvalidValueError, ShapeError, WiringError
from ..observer import Observer
from .device import to_host
from .graph import Graph, Node
from .nodes import INPUT_KINDS, drive_input
from .variables import constant_inputs, float_array, resolve

# -- inputs --------------------------------------------------------------------------


def run_inputs(graph: Graph, module: ModuleType, inputs, steps, batch: int | None,
               dtype: np.dtype) -> tuple[int, dict]:
    """The run's steps and the generated module's inputs {name: array (T, [B,] n) or constant}.

    inputs: an array for the one input node, or {label or (label, "op/var"): array}; steps=T
    is needed only without inputs. Free inputs held at a value set on a node come along."""
    given = _driven_inputs(graph, module, inputs, batch, dtype)
    _check_input_layers(graph, module, given)
    steps = _steps(given, steps)
    for name, value in constant_inputs(graph, module).items():
        if name not in given:  # one constant per unit: a view over all steps, no copy
            given[name] = np.broadcast_to(value, (steps,) + value.shape) if isinstance(value, np.ndarray) else value
    return steps, given


def drives(graph: Graph, module: ModuleType, inputs) -> tuple[str, ...]:
    """The "label/op/var" that run(inputs=...) drives but that are no free inputs of the module
    compiled without drives (edges, a circuit's edges or another operator feed them): each needs
    a drive (nodes.py), so that the input and what feeds the variable add up."""
    if inputs is None:
        return ()
    keys = inputs if isinstance(inputs, dict) else [graph.input_label()]
    names = (f"{node.label}/{local}" for node, local in (_input_target(graph, key) for key in keys))
    return tuple(sorted(name for name in names if name not in module.INPUTS))


def _driven_inputs(graph: Graph, module: ModuleType, inputs, batch, dtype) -> dict[str, np.ndarray]:
    if inputs is None:
        return {}
    if not isinstance(inputs, dict):
        inputs = {graph.input_label(): inputs}
    given = {}
    for key, value in inputs.items():
        node, local = _input_target(graph, key)
        name = f"{node.label}/{local}"
        if name not in module.INPUTS:  # fed inside the network: its drive takes the input
            name = drive_input(name)
        given[name] = _input_array(node, value, batch, dtype)
    return given


def _check_input_layers(graph: Graph, module: ModuleType, given: dict) -> None:
    """A function node without incoming edges (an input layer) has no state to size it: the run
    must give its input."""
    for node in graph.nodes.values():
        name = f"{node.label}/{node.input_var}"
        if node.kind == "func" and name in module.INPUTS and name not in given and node.input_var not in node.values:
            raise WiringError(f"input node '{node.label}' gets no input from this run", None,
                              f"give it one: inputs={{..., {node.label!r}: array of shape (T, {node.n})}}")


def _input_target(graph: Graph, key) -> tuple[Node, str]:
    """The node and "op/var" an inputs key drives: a node's input_var, or (label, var)."""
    if isinstance(key, tuple):
        node = graph.node(key[0])
        return node, resolve(node, key[1], kinds=INPUT_KINDS, what="input")
    node = graph.node(key)
    if node.input_var is None:
        raise WiringError(f"node '{key}' has no input_var to drive", None,
                          "pass input_var= to add_diffeq_node, or give {(node, 'op/var'): array}")
    return node, node.input_var


def _input_array(node: Node, value, batch, dtype: np.dtype) -> np.ndarray:
    """(T, n) or (T, B, n); (T,) and (T, 1) (or (T, B, 1)) are one value for all n units."""
    array = float_array(value, f"inputs of node '{node.label}'", dtype)  # NaN: the generated run() checks
    n, shape = node.n, array.shape
    if array.ndim == 1:
        return np.broadcast_to(array[:, None], (shape[0], n))
    if array.ndim == 2 and shape[1] in (n, 1):
        return np.broadcast_to(array, (shape[0], n))
    if array.ndim == 3 and batch and shape[1:] in ((batch, n), (batch, 1)):
        return np.broadcast_to(array, (shape[0], batch, n))
    expected = f"(T, {n})" + (f" or (T, {batch}, {n})" if batch else "") + " or (T,) or (T, 1)"
    raise ShapeError(f"inputs of node '{node.label}' must have shape {expected}, got {shape}", None,
                     f"node '{node.label}' has {n} units; rows are time steps")


def _steps(given: dict[str, np.ndarray], steps) -> int:
    """The number of steps: steps= if given, else the inputs' rows; every input has that many."""
    lengths = {name: len(value) for name, value in given.items()}
    if steps is None:
        if not lengths:
            raise InvalidValueError("run needs inputs=(T, n_in) or steps=T")
        steps = next(iter(lengths.values()))
    if int(steps) != steps or steps < 1:
        raise InvalidValueError(f"steps must be a whole number >= 1, got {steps!r}")
    for name, length in lengths.items():
        if length != steps:
            raise ShapeError(f"input of '{name}' has {length} rows but the run has {steps} steps",
                             None, "give every input the same number of rows T")
    return int(steps)


# -- sampling ------------------------------------------------------------------------

SAMPLINGS = ("snapshot", "mean")


def module_sampling_steps(steps: int, sampling_steps, sampling: str) -> int:
    """The generated run()'s sampling_steps for run(sampling_steps=k, sampling=...): k for
    snapshots, 1 for window means (taken after the run by window_means). Checks k; warns when
    k does not divide the steps (the last steps run but are not recorded)."""
    if sampling not in SAMPLINGS:
        raise InvalidValueError(f"sampling must be one of {', '.join(map(repr, SAMPLINGS))}, got {sampling!r}", None,
                                '"snapshot": the value after every k-th step; "mean": the mean over each window of k '
                                "steps")
    if isinstance(sampling_steps, (bool, str, bytes)) or np.ndim(sampling_steps) != 0 or \
            not sampling_steps >= 1 or int(sampling_steps) != sampling_steps:
        raise InvalidValueError(f"sampling_steps must be a whole number >= 1, got {sampling_steps!r}")
    k = int(sampling_steps)
    if k > steps:
        raise InvalidValueError(f"sampling_steps ({k}) is larger than steps ({steps}): the run would record nothing",
                                None, "choose sampling_steps <= steps; the final state comes back either way")
    if steps % k:
        warnings.warn(f"sampling_steps={k} does not divide the {steps} steps: the last {steps % k} steps run (the "
                      "final state includes them) but are not recorded", UserWarning, stacklevel=4)
    return k if sampling == "snapshot" else 1


def window_means(result: dict, names, sampling_steps: int) -> dict:
    """The result with each record in names averaged over windows of sampling_steps rows."""
    out = dict(result)
    for name in names:
        value = to_host(result[name])
        rows = len(value) // sampling_steps
        out[name] = value[:rows * sampling_steps].reshape((rows, sampling_steps) + value.shape[1:]).mean(axis=1)
    return out


# -- records -------------------------------------------------------------------------

@dataclass
class Records:
    """What a run records: Observer key -> ("label/op/var", mean over the units?), and the other
    keys a user may read the same record by (obs[("tanh", "v")] for obs[("tanh", "li_op/v")])."""

    keys: dict[Any, tuple[str, bool]]
    aliases: dict[Any, Any]

    @property
    def names(self) -> list[str]:
        """The variables the generated run() records, each once."""
        return list(dict.fromkeys(name for name, _ in self.keys.values()))

    def observer(self, result: dict, dt: float, sampling_steps: int, t0: float, sweep=None) -> Observer:
        """The Observer of the generated run()'s result (population means taken here, on the host)."""
        records = {}
        for key, (name, mean) in self.keys.items():
            value = to_host(result[name])
            records[key] = value.mean(axis=-1) if mean else value
        rows = len(next(iter(records.values()))) if records else 0
        times = t0 + np.arange(1, rows + 1) * sampling_steps * dt
        means = [key for key, (_, mean) in self.keys.items() if mean]
        return Observer(dt, sampling_steps, records, times, sweep, self.aliases, means)


def records(graph: Graph, record_output: bool, record_vars, output: str | None) -> Records:
    """The records of run(record_output=..., record_vars=[(node, var[, mean]), ...], output=...)."""
    keys: dict[Any, tuple[str, bool]] = {}
    aliases: dict[Any, Any] = {}
    if record_output:
        keys["out"] = (output_name(graph, output), False)
    for item in record_vars or ():
        if isinstance(item, str) or len(item) not in (2, 3):
            raise InvalidValueError(f"record_vars entries are (node, var) or (node, var, mean), got {item!r}")
        label, var = item[0], item[1]
        mean = bool(item[2]) if len(item) == 3 else False
        local = resolve(graph.node(label), var, what="record_vars variable")
        key = (label, local, True) if mean else (label, local)
        keys[key] = (f"{label}/{local}", mean)
        aliases[(label, var, True) if mean else (label, var)] = key
        if mean:  # the mean is also what (node, var) reads, unless the full record is kept too
            aliases.setdefault((label, var), key)
            aliases.setdefault((label, local), key)
    if "out" in keys:  # obs[("tanh", "li_op/v")] is the output too, unless record_vars asked otherwise
        aliases.setdefault(tuple(keys["out"][0].split("/", 1)), "out")
    aliases = {alias: key for alias, key in aliases.items() if alias not in keys or key == alias}
    return Records(keys, aliases)


def output_name(graph: Graph, output: str | None = None) -> str:
    """The output node's output_var, as "label/op/var" (the node given, else the graph's output node)."""
    label = output or graph.output_label()
    node = graph.node(label)
    if node.output_var is None:
        raise WiringError(f"output node '{label}' has no output_var to record", None,
                          "pass output_var= to add_diffeq_node, or record_output=False with record_vars")
    return f"{label}/{node.output_var}"
