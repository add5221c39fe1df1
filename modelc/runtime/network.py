"""Network: a RectiPy-style graph of populations and edges, compiled into ONE generated module.

    from modelc import Network
    net = Network(dt=1e-3)
    net.add_diffeq_node("tanh", "neuron_model_templates.rate_neurons.leaky_integrator.tanh",
                        weights=J, source_var="tanh_op/r", target_var="li_op/r_in",
                        input_var="li_op/I_ext", output_var="li_op/v")
    obs = net.run(inputs=np.ones((10000, N)))

Weight convention (recurrent weights and edges alike): ``weights[i, j]`` is the weight from
unit j of the source to unit i of the target, so ``target_input = weights @ source_output``;
a matrix has shape (n_target, n_source) and is never transposed silently.

Every node and edge becomes part of one System (modelc.ir.build_network) and one generated
module, cached by the network's structure only (templates, labels, connections, which
parameters are per-unit vectors, method, dtype) — never by weight values or population
sizes, so compiling does not depend on N and a network with other weights reuses the module.
A run is one call into the generated ``run``: no per-step Python graph traversal and no
per-step bookkeeping here.

Time convention: step k advances the state from t_k to t_{k+1} = t_k + dt using row k of the
inputs; row k of a record is the value after step (k + 1) * sampling_steps.
"""
from __future__ import annotations

import itertools
import sys
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import numpy as np

from ..errors import (BackendUnavailableError, InvalidNameError, InvalidValueError, NonFiniteError, ShapeError,
                      UnknownVariableError, UnsupportedFeatureError, WiringError, did_you_mean)
from ..spec import CircuitTemplate, NodeTemplate, OperatorTemplate, VariableSpec, load
from .observer import Observer

__all__ = ["Network", "Observer", "ACTIVATIONS"]

# Stateless nodes: y = f(x), one operator named after the activation ("label/<activation>/y").
# Softmax-type functions subtract the population mean first (softmax is shift invariant), which
# keeps exp() in range unless the inputs of one population spread over more than ~700.
ACTIVATIONS = {
    "identity": "y = x",
    "tanh": "y = tanh(x)",
    "sigmoid": "y = sigmoid(x)",
    "relu": "y = max(x, 0)",
    "softmax": "y = exp(x - mean(x))/sum(exp(x - mean(x)))",
    "softmin": "y = exp(mean(x) - x)/sum(exp(mean(x) - x))",
    "log_softmax": "y = x - mean(x) - log(sum(exp(x - mean(x))))",
}
_FUNC_TEMPLATES: dict[str, OperatorTemplate] = {}


def _func_template(activation: str) -> OperatorTemplate:
    if activation not in ACTIVATIONS:
        raise InvalidValueError(f"unknown activation '{activation}'", None,
                                did_you_mean(activation, ACTIVATIONS) or f"choose one of {', '.join(ACTIVATIONS)}")
    if activation not in _FUNC_TEMPLATES:
        _FUNC_TEMPLATES[activation] = OperatorTemplate(
            path=f"modelc.functions.{activation}", name=activation, equations=[ACTIVATIONS[activation]], edits=[],
            variables={"x": VariableSpec("x", "input", 0.0, description="input (sum of incoming edges)"),
                       "y": VariableSpec("y", "output", 0.0, description=f"{activation}(x)")},
            description=f"Stateless node: {ACTIVATIONS[activation]}.")
    return _FUNC_TEMPLATES[activation]


@dataclass
class _Node:
    label: str
    kind: str                      # "diffeq" or "func"
    template: Any                  # NodeTemplate | OperatorTemplate
    n: int
    variables: dict[str, VariableSpec]   # "op/var" -> spec (defaults with the node's overrides)
    op: str | None = None
    input_var: str | None = None   # "op/var"
    output_var: str | None = None  # "op/var"
    source_var: str | None = None
    target_var: str | None = None
    weights: np.ndarray | None = None    # recurrent (n, n), target_var += weights @ source_var
    values: dict[str, Any] = field(default_factory=dict)  # node_vars / set_var: "op/var" -> float | (n,) array
    train_params: list[str] = field(default_factory=list)
    method: str = "euler"
    activation: str | None = None

    def __repr__(self) -> str:
        return f"<{self.kind} node {self.label!r}: {self.n} units of {getattr(self.template, 'path', '?')}>"


@dataclass
class _Edge:
    source: str
    target: str
    source_var: str   # "op/var" of the source node
    target_var: str   # "op/var" of the target node
    weights: np.ndarray  # (n_target, n_source)
    feedback: bool = False
    train: str | None = None


class Network:
    """A graph of populations (diff-eq and function nodes) and weighted edges; see the module docs.

    Network(dt, device="cpu", dtype="float64"). device="cuda" selects the CuPy backend and
    fails with BackendUnavailableError when CuPy, a GPU or the backend is missing (never a
    silent fallback to NumPy).
    """

    def __init__(self, dt: float, device: str = "cpu", dtype: str = "float64"):
        try:
            dt = float(dt)
        except (TypeError, ValueError):
            raise InvalidValueError(f"dt must be a number, got {dt!r}") from None
        if not (dt > 0 and np.isfinite(dt)):
            raise InvalidValueError(f"dt must be a positive number, got {dt!r}")
        self.dt = dt
        self.dtype = _dtype_name(dtype)
        self.device = str(device)
        self.backend = _backend_for(self.device)
        self._np_dtype = np.dtype(self.dtype)
        self._nodes: dict[str, _Node] = {}
        self._edges: dict[tuple[str, str], _Edge] = {}
        self._state: dict[str, np.ndarray] = {}   # qualified state name -> current value (n,)
        self._steps_done = 0
        self._structure_version = 0
        self._compiled: tuple[tuple, ModuleType] | None = None

    # -- building -------------------------------------------------------------------

    def add_diffeq_node(self, label: str, node, weights=None, source_var: str | None = None,
                        target_var: str | None = None, input_var: str | None = None, output_var: str | None = None,
                        N: int | None = None, node_vars: dict | None = None, train_params=None,
                        op: str | None = None, method: str = "euler") -> "_Node":
        """Add a population of N units of a node template (a dotted path, "file.yaml:template" or a template).

        weights:   (N, N) recurrent matrix, ``weights[i, j]`` from unit j to unit i:
                   target_var = weights @ source_var. Sets N (or pass N= without weights).
        input_var: the input(...) variable driven by ``run(inputs=...)`` (and by incoming edges).
        output_var: the variable handed to outgoing edges and recorded as ``obs["out"]``.
        node_vars: {"op/var": value} parameters, initial values of states, or constant values of
                   free inputs; a value is one number or an array of N (one per unit). With
                   ``op="li_op"`` the short names ("tau") work too; so does any name that only
                   one operator of the node has.
        train_params: parameter names recorded for fitting ("weights" = the recurrent matrix).
        method:    integration scheme (euler, heun, midpoint, rk4); all nodes must agree.
        """
        self._check_label(label)
        template = load(node)
        if isinstance(template, CircuitTemplate):
            raise UnsupportedFeatureError(f"'{template.path}' is a circuit; add_diffeq_node takes a node or an "
                                          "operator template", None, "add each node of the circuit with "
                                          "add_diffeq_node and its edges with add_edge")
        variables = _node_variables(template)
        if op is not None and not any(name.startswith(op + "/") for name in variables):
            ops = sorted({name.split("/")[0] for name in variables})
            raise UnknownVariableError(f"node '{label}' has no operator '{op}'", None,
                                       did_you_mean(op, ops) or f"operators: {', '.join(ops)}")
        entry = _Node(label, "diffeq", template, 0, variables, op=op, method=str(method))
        if weights is not None:
            weights = self._as_float_array(weights, "weights")
            if weights.ndim != 2 or weights.shape[0] != weights.shape[1] or (N is not None and weights.shape[0] != N):
                n = N if N is not None else (weights.shape[0] if weights.ndim >= 1 else "N")
                raise ShapeError(f"recurrent weights of node '{label}' must have shape (N, N) = ({n}, {n}), "
                                 f"got {weights.shape}", None,
                                 "weights[i, j] is the weight from unit j to unit i (r_in = weights @ r)")
            entry.n = weights.shape[0]
            entry.weights = weights
        elif N is not None:
            if int(N) != N or N < 1:
                raise InvalidValueError(f"N must be a whole number >= 1, got {N!r}")
            entry.n = int(N)
        else:
            raise InvalidValueError(f"node '{label}' needs its size: pass weights=(N, N) or N=")
        if (source_var is None) != (target_var is None):
            raise WiringError(f"node '{label}': the recurrent coupling needs both source_var and target_var")
        if source_var is not None:
            if weights is None:
                raise WiringError(f"node '{label}': source_var/target_var couple through weights; pass weights=(N, N)")
            entry.source_var = self._resolve(entry, source_var, kinds=("output", "variable"), what="source_var")
            entry.target_var = self._resolve(entry, target_var, kinds=("input",), what="target_var")
        elif weights is not None:
            raise WiringError(f"node '{label}': weights need source_var and target_var (target_var = weights @ source_var)")
        if input_var is not None:
            entry.input_var = self._resolve(entry, input_var, kinds=("input",), what="input_var")
        if output_var is not None:
            entry.output_var = self._resolve(entry, output_var, kinds=("output", "variable"), what="output_var")
        for name, value in (node_vars or {}).items():
            local = self._resolve(entry, name, what="node_vars key")
            entry.values[local] = self._value(entry, local, value)
        if "weights" in _names(train_params) and weights is None:
            raise WiringError(f"node '{label}': train_params names 'weights' but the node has no recurrent weights")
        entry.train_params = [p if p == "weights" else self._resolve(entry, p, kinds=("parameter",), what="train_params")
                              for p in _names(train_params)]
        self._nodes[label] = entry
        self._changed()
        return entry

    def add_func_node(self, label: str, n: int, activation: str = "identity") -> "_Node":
        """Add a stateless node of n units, y = activation(x), with activation one of
        identity, tanh, sigmoid, relu, softmax, softmin, log_softmax (softmax over the n units).

        Without incoming edges, its x is driven by ``run(inputs=...)`` (an input layer);
        incoming edges are summed into x (a readout).
        """
        self._check_label(label)
        if int(n) != n or n < 1:
            raise InvalidValueError(f"n must be a whole number >= 1, got {n!r}")
        template = _func_template(activation)
        entry = _Node(label, "func", template, int(n), _node_variables(template), op=activation,
                      input_var=f"{activation}/x", output_var=f"{activation}/y", activation=activation)
        self._nodes[label] = entry
        self._changed()
        return entry

    def add_edge(self, source: str, target: str, weights, source_var: str | None = None,
                 target_var: str | None = None, feedback: bool = False, train: str | None = None) -> "_Edge":
        """Connect two nodes: target's input_var += weights @ source's output_var.

        weights has shape (n_target, n_source): ``weights[i, j]`` is the weight from source unit j
        to target unit i (never transposed); a number c means c times the identity (equal sizes).
        Several edges into one node are summed. source_var/target_var override the node's
        output_var/input_var. feedback=True marks an edge that closes a loop, so the input and
        output nodes of the graph are still found (it changes nothing in the dynamics).
        """
        src, tgt = self._node(source), self._node(target)
        if (source, target) in self._edges:
            raise WiringError(f"there is already an edge {source} -> {target}", None,
                              f"remove it first with pop_edge({source!r}, {target!r}) or add the weights into one matrix")
        s_var = self._resolve(src, source_var, kinds=("output", "variable"), what="source_var") if source_var \
            else src.output_var
        t_var = self._resolve(tgt, target_var, kinds=("input",), what="target_var") if target_var else tgt.input_var
        if s_var is None:
            raise WiringError(f"node '{source}' has no output_var to send along the edge", None,
                              f"pass output_var= to add_diffeq_node or source_var= to add_edge")
        if t_var is None:
            raise WiringError(f"node '{target}' has no input_var to receive the edge", None,
                              f"pass input_var= to add_diffeq_node or target_var= to add_edge")
        expected = (tgt.n, src.n)
        if np.ndim(weights) == 0:
            if src.n != tgt.n:
                raise ShapeError(f"edge {source} -> {target} needs weights of shape (n_target, n_source) = {expected}; "
                                 "a number means c times the identity and needs equal sizes")
            weights = float(weights) * np.eye(src.n, dtype=self._np_dtype)
        weights = self._as_float_array(weights, "weights")
        if weights.shape != expected:
            hint = "weights[i, j] is the weight from source unit j to target unit i"
            if weights.shape == expected[::-1]:
                hint += "; this looks transposed (pass weights.T if that is what you meant)"
            raise ShapeError(f"edge {source} -> {target} needs weights of shape (n_target, n_source) = {expected}, "
                             f"got {weights.shape}", None, hint)
        edge = _Edge(source, target, s_var, t_var, weights, bool(feedback), train)
        self._edges[(source, target)] = edge
        self._changed()
        return edge

    def pop_node(self, label: str) -> "_Node":
        """Remove a node, its edges and its state; returns the removed node."""
        node = self._nodes.pop(self._node(label).label)
        for key in [k for k in self._edges if label in k]:
            del self._edges[key]
        for name in [n for n in self._state if n.startswith(label + "/")]:
            del self._state[name]
        self._changed()
        return node

    def pop_edge(self, source: str, target: str) -> "_Edge":
        """Remove the edge source -> target; returns it (its weights in .weights)."""
        try:
            edge = self._edges.pop((source, target))
        except KeyError:
            raise UnknownVariableError(f"there is no edge {source} -> {target}", None,
                                       did_you_mean(f"{source} -> {target}", [f"{a} -> {b}" for a, b in self._edges])
                                       or f"edges: {', '.join(f'{a} -> {b}' for a, b in self._edges) or 'none'}") from None
        self._changed()
        return edge

    def get_edge(self, source: str, target: str) -> "_Edge":
        try:
            return self._edges[(source, target)]
        except KeyError:
            raise UnknownVariableError(f"there is no edge {source} -> {target}") from None

    def get_node(self, label: str) -> "_Node":
        return self._node(label)

    # -- inspection -----------------------------------------------------------------

    @property
    def nodes(self) -> list[str]:
        return list(self._nodes)

    @property
    def edges(self) -> list[tuple[str, str]]:
        return list(self._edges)

    def __len__(self) -> int:
        return len(self._nodes)

    def __contains__(self, label) -> bool:
        return label in self._nodes

    def __iter__(self):
        return iter(self._nodes)

    @property
    def n_in(self) -> int:
        return self._node(self._input_label()).n

    @property
    def n_out(self) -> int:
        return self._node(self._output_label()).n

    @property
    def state(self) -> dict[str, dict[str, np.ndarray]]:
        """{node: {"op/var": current value}} of every state (copies)."""
        module = self.compile()
        self._init_states(module)
        out: dict[str, dict[str, np.ndarray]] = {}
        for name, value in self._state.items():
            label, local = name.split("/", 1)
            out.setdefault(label, {})[local] = value.copy()
        return out

    @property
    def time(self) -> float:
        """The network's current time: steps run since the last reset() times dt."""
        return self._steps_done * self.dt

    def __repr__(self) -> str:
        lines = [f"Network(dt={self.dt:g}, device={self.device!r}, dtype={self.dtype!r}): "
                 f"{len(self._nodes)} nodes, {len(self._edges)} edges"]
        lines += [f"  {node!r}" for node in self._nodes.values()]
        lines += [f"  edge {e.source}/{e.source_var} -> {e.target}/{e.target_var} {e.weights.shape}"
                  for e in self._edges.values()]
        return "\n".join(lines)

    def get_var(self, node: str, var: str):
        """A parameter's value, the current value of a state or computed variable, or "weights".

        Arrays come back read-only (copy them to change them; change values with set_var).
        """
        entry = self._node(node)
        if var == "weights" and entry.weights is not None:
            return _readonly(entry.weights)
        local = self._resolve(entry, var, what="variable")
        kind = entry.variables[local].kind
        if kind == "parameter":
            value = entry.values.get(local, entry.variables[local].default)
            return _readonly(value) if isinstance(value, np.ndarray) else value
        module = self.compile()
        name = f"{node}/{local}"
        if name in module.STATES:
            self._init_states(module)
            return _readonly(self._state[name])
        if name in module.INPUTS:
            value = entry.values.get(local, module.INPUTS[name])
            return _readonly(value) if isinstance(value, np.ndarray) else value
        self._init_states(module)
        params = {**module.default_params(), **self._params(module)}
        inputs = {**module.INPUTS, **self._const_inputs(module)}
        computed = module.algebraics(self.time, self._y0(module), params, inputs)
        return _readonly(np.broadcast_to(computed[name], np.shape(computed[name])[:-1] + (entry.n,)))

    def set_var(self, node: str, var: str, value) -> None:
        """Set a parameter (one number or one per unit), "weights", a free input's constant value,
        or the current value of a state (the next run continues from it; reset() goes back to
        the initial values of the template and node_vars)."""
        entry = self._node(node)
        if var == "weights" and entry.weights is not None:
            weights = self._as_float_array(value, "weights")
            if weights.shape != entry.weights.shape:
                raise ShapeError(f"weights of node '{node}' must have shape {entry.weights.shape}, got {weights.shape}",
                                 None, "weights[i, j] is the weight from unit j to unit i")
            entry.weights = weights
            return
        local = self._resolve(entry, var, what="variable")
        kind = entry.variables[local].kind
        if kind in ("parameter", "input"):
            before = isinstance(entry.values.get(local), np.ndarray)
            entry.values[local] = self._value(entry, local, value)
            if kind == "parameter" and before != isinstance(entry.values[local], np.ndarray):
                self._compiled = None  # a scalar became per-unit (or back): other generated code
            return
        module = self.compile()
        name = f"{node}/{local}"
        if name not in module.STATES:
            raise InvalidValueError(f"'{local}' of node '{node}' is computed by an equation; it has no value to set",
                                    None, "set the states or parameters it is computed from")
        self._init_states(module)
        self._state[name] = np.array(np.broadcast_to(self._value(entry, local, value), (entry.n,)), dtype=self._np_dtype)

    def reset(self) -> None:
        """Back to time 0 and the initial states (template defaults, overridden by node_vars)."""
        self._state.clear()
        self._steps_done = 0

    # -- compiling ------------------------------------------------------------------

    def compile(self, method: str | None = None, extra_vector_params=()) -> ModuleType:
        """The generated module of the whole network (compiled once per structure, then cached)."""
        method = method or self._method()
        vector = tuple(sorted(set(self._vector_params()) | set(extra_vector_params)))
        signature = (self._structure_version, method, vector)
        if self._compiled is not None and self._compiled[0] == signature:
            return self._compiled[1]
        from .compiler import compile_network
        populations = {label: node.template for label, node in self._nodes.items()}
        connections = [(f"{n.label}/{n.source_var}", f"{n.label}/{n.target_var}", self._matrix_names()[("", n.label)])
                       for n in self._nodes.values() if n.weights is not None]
        connections += [(f"{e.source}/{e.source_var}", f"{e.target}/{e.target_var}", self._matrix_names()[key])
                        for key, e in self._edges.items()]
        module = compile_network(populations, connections, method=method, backend=self.backend, dtype=self.dtype,
                                 vector_params=vector, name="network")
        self._check_free_inputs(module)
        self._compiled = (signature, module)
        return module

    def _changed(self) -> None:
        self._structure_version += 1
        self._compiled = None
        self._matrix_cache = None

    def _matrix_names(self) -> dict[tuple[str, str], str]:
        """Readable, identifier-safe, unique names of the weight matrices ("tanh_weights", "a_to_b_weights")."""
        if getattr(self, "_matrix_cache", None) is None:
            names: dict[tuple[str, str], str] = {}
            taken: set[str] = set()
            wanted = [(("", n.label), f"{n.label}_weights") for n in self._nodes.values() if n.weights is not None]
            wanted += [(key, f"{key[0]}_to_{key[1]}_weights") for key in self._edges]
            for key, base in wanted:
                name, k = base, 2
                while name in taken:
                    name, k = f"{base}_{k}", k + 1
                taken.add(name)
                names[key] = name
            self._matrix_cache = names
        return self._matrix_cache

    def _method(self) -> str:
        methods = {n.method for n in self._nodes.values() if n.kind == "diffeq"}
        if len(methods) > 1:
            raise InvalidValueError(f"the nodes ask for different methods ({', '.join(sorted(methods))}); the "
                                    "network is integrated with one", None, "pass method= to run()")
        return methods.pop() if methods else "euler"

    def _vector_params(self) -> list[str]:
        return [f"{n.label}/{local}" for n in self._nodes.values() for local, value in n.values.items()
                if isinstance(value, np.ndarray) and n.variables[local].kind == "parameter"]

    def _check_free_inputs(self, module: ModuleType) -> None:
        for node in self._nodes.values():
            for local in node.values:
                name = f"{node.label}/{local}"
                if node.variables[local].kind == "input" and name not in module.INPUTS:
                    raise WiringError(f"node_vars sets '{local}' of node '{node.label}', but that input is wired "
                                      "(fed by another operator or an edge)", None,
                                      "set a constant only on a free input")
                if node.variables[local].kind in ("output", "variable") and name not in module.STATES:
                    raise InvalidValueError(f"node_vars sets '{local}' of node '{node.label}', which is computed by "
                                            "an equation; it has no initial value", None,
                                            "set the states or parameters it is computed from")

    # -- running --------------------------------------------------------------------

    def run(self, inputs=None, sampling_steps: int = 1, record_output: bool = True, record_vars=None,
            verbose: bool = False, method: str | None = None, on_nan: str = "raise", *, steps: int | None = None,
            output: str | None = None) -> Observer:
        """Integrate the network for T steps (one call into the generated code); returns an Observer.

        inputs: (T, n_in) for the input node, (T,) broadcast to its n_in units, or a dict
                {node_label: array} (or {(node, "op/var"): array}) for several inputs; None with
                steps=T runs without external input.
        sampling_steps: record every k-th step. Row k of every record is the value after step
                (k + 1) * sampling_steps, i.e. at time t0 + (k + 1) * sampling_steps * dt;
                obs["out"] has shape (T // sampling_steps, n_out).
        record_output: record the output node's output_var as obs["out"] (`output=` chooses the
                output node when the graph does not tell).
        record_vars: [(node, var), ...], optionally (node, var, True) for the population mean
                (computed after the run from the full record).
        verbose: a progress bar (tqdm if installed, else a plain one on stderr), updated once per
                chunk of 1024 steps.
        on_nan: "raise" (NonFiniteError naming the variable, unit and steps), "warn" or "ignore".
        The run starts from the network's current state and time (the end of the last run,
        until reset()) and leaves the network in its final state.
        """
        module = self.compile(method)
        steps, inputs = self._inputs(module, inputs, steps, batch=None)
        self._init_states(module)
        record, keys, aliases, means = self._records(record_output, record_vars, output)
        result = self._call(module, self._y0(module), self._params(module), inputs, steps, record,
                            sampling_steps, verbose, on_nan)
        t0 = self.time
        self._state = {name: _to_numpy(value) for name, value in result["final"].items()}
        self._steps_done += steps
        return self._observer(result, keys, aliases, means, sampling_steps, t0, None)

    def sweep(self, params: dict, inputs=None, grid: bool = True, sampling_steps: int = 1,
              record_output: bool = True, record_vars=None, verbose: bool = False, method: str | None = None,
              on_nan: str = "raise", *, steps: int | None = None, output: str | None = None) -> Observer:
        """Run B parameter sets at once, as ONE batched run along a leading batch axis.

        params: {var: [values]}, var as "op/var" (or a short name) when one node has it, else
                "node/op/var" or (node, var); values are numbers (or per-unit arrays). Parameters
                and initial values of states can be swept. grid=True: every combination
                (B = product of the lengths); grid=False: zip the lists (equal lengths).
        inputs: as in run(), shared by all sets, or (T, B, n_in) for one input per set.
        The sweep starts from the network's current state and leaves it unchanged. Records have
        shape (T // sampling_steps, B, n); obs.sweep lists the B parameter sets in batch order.
        """
        if not params:
            raise InvalidValueError("sweep needs at least one parameter to vary")
        columns = []
        for key, values in params.items():
            node, local = self._sweep_target(key)
            values = list(values) if not isinstance(values, np.ndarray) or values.ndim > 0 else [values]
            if not values:
                raise InvalidValueError(f"sweep values of {key!r} are empty")
            columns.append((key, node, local, values))
        if grid:
            sets = list(itertools.product(*[c[3] for c in columns]))
        else:
            lengths = {len(c[3]) for c in columns}
            if len(lengths) != 1:
                raise ShapeError("grid=False pairs the value lists element by element; they must have equal lengths, "
                                 f"got {[len(c[3]) for c in columns]}", None, "use grid=True for every combination")
            sets = list(zip(*[c[3] for c in columns]))
        batch = len(sets)
        swept_params = [f"{node.label}/{local}" for _, node, local, _ in columns
                        if node.variables[local].kind == "parameter"]
        module = self.compile(method, extra_vector_params=swept_params)
        steps, inputs = self._inputs(module, inputs, steps, batch=batch)
        self._init_states(module)
        y0, param_values = self._y0(module), self._params(module)
        for index, (key, node, local, _) in enumerate(columns):
            name = f"{node.label}/{local}"
            stacked = np.stack([np.broadcast_to(np.asarray(s[index], dtype=self._np_dtype), np.shape(s[index]))
                                for s in sets])
            if stacked.ndim == 1:
                stacked = stacked[:, None]
            if stacked.shape[1:] not in ((1,), (node.n,)):
                raise ShapeError(f"each sweep value of {key!r} must be a number or an array of {node.n}, "
                                 f"got shape {stacked.shape[1:]}")
            if name in module.STATES:
                y0[name] = np.broadcast_to(stacked, (batch, node.n))
            elif name in module.PARAMS:
                param_values[name] = stacked
            else:
                raise InvalidValueError(f"'{local}' of node '{node.label}' is computed by an equation; it cannot "
                                        "be swept", None, "sweep the parameters or initial states it depends on")
        for name, value in y0.items():
            if np.ndim(value) == 1:
                y0[name] = np.broadcast_to(value, (batch, value.shape[-1]))
        record, keys, aliases, means = self._records(record_output, record_vars, output)
        result = self._call(module, y0, param_values, inputs, steps, record, sampling_steps, verbose, on_nan)
        table = [{key: _plain(s[i]) for i, (key, *_) in enumerate(columns)} for s in sets]
        return self._observer(result, keys, aliases, means, sampling_steps, self.time, table)

    def _call(self, module, y0, params, inputs, steps, record, sampling_steps, verbose, on_nan) -> dict:
        bar = _ProgressBar(steps) if verbose else None
        try:
            return module.run(y0, params, inputs, dt=self.dt, steps=steps, record=record,
                              sampling_steps=sampling_steps, t0=self.time,
                              on_chunk=bar.update if bar is not None else None, on_nan=on_nan)
        except FloatingPointError as exc:
            if isinstance(exc, NonFiniteError):
                raise
            raise NonFiniteError(str(exc), None, "reduce dt, or check parameters, weights and inputs") from None
        finally:
            if bar is not None:
                bar.close()

    def _observer(self, result, keys, aliases, means, sampling_steps, t0, table) -> Observer:
        records = {}
        for key, (name, mean) in keys.items():
            value = _to_numpy(result[name])
            records[key] = value.mean(axis=-1) if mean else value
        rows = len(next(iter(records.values()))) if records else 0
        times = t0 + np.arange(1, rows + 1) * sampling_steps * self.dt
        return Observer(self.dt, sampling_steps, records, times, table, aliases, [k for k, (_, m) in keys.items() if m])

    # -- run arguments --------------------------------------------------------------

    def _init_states(self, module: ModuleType) -> None:
        """Fill in the state of every population that has none yet (initial values + node_vars)."""
        for name, init in module.STATES.items():
            if name in self._state:
                continue
            label, local = name.split("/", 1)
            node = self._nodes[label]
            value = node.values.get(local, init)
            self._state[name] = np.array(np.broadcast_to(np.asarray(value, dtype=self._np_dtype), (node.n,)))
        for name in [n for n in self._state if n not in module.STATES]:
            del self._state[name]

    def _y0(self, module: ModuleType) -> dict:
        return dict(self._state)

    def _params(self, module: ModuleType) -> dict:
        params = {}
        for node in self._nodes.values():
            for local, value in node.values.items():
                if node.variables[local].kind == "parameter":
                    params[f"{node.label}/{local}"] = value
        names = self._matrix_names()
        for node in self._nodes.values():
            if node.weights is not None:
                params[names[("", node.label)]] = node.weights
        for key, edge in self._edges.items():
            params[names[key]] = edge.weights
        return params

    def _const_inputs(self, module: ModuleType) -> dict:
        inputs = {}
        for node in self._nodes.values():
            for local, value in node.values.items():
                name = f"{node.label}/{local}"
                if name in module.INPUTS:
                    inputs[name] = value
        return inputs

    def _inputs(self, module: ModuleType, inputs, steps, batch) -> tuple[int, dict]:
        """The run's steps and the generated module's inputs {name: array (T, [B,] n) or number}."""
        given: dict[str, np.ndarray] = {}
        if inputs is not None and not isinstance(inputs, dict):
            label = self._input_label()
            inputs = {label: inputs}
        for key, value in (inputs or {}).items():
            if isinstance(key, tuple):
                node = self._node(key[0])
                local = self._resolve(node, key[1], kinds=("input",), what="input")
            else:
                node = self._node(key)
                local = node.input_var
                if local is None:
                    raise WiringError(f"node '{key}' has no input_var to drive", None,
                                      "pass input_var= to add_diffeq_node, or give {(node, 'op/var'): array}")
            name = f"{node.label}/{local}"
            if name not in module.INPUTS:
                raise WiringError(f"input '{local}' of node '{node.label}' is fed by edges or operators, "
                                  "so run(inputs=...) cannot drive it", None,
                                  f"free inputs: {', '.join(module.INPUTS) or 'none'}")
            given[name] = self._input_array(node, value, batch)
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
        constants = {n: v for n, v in self._const_inputs(module).items() if n not in given}
        for name, value in constants.items():
            if isinstance(value, np.ndarray):  # one constant per unit: a view over all steps, no copy
                value = np.broadcast_to(value, (int(steps),) + value.shape)
            given[name] = value
        return int(steps), given

    def _input_array(self, node: _Node, value, batch) -> np.ndarray:
        array = np.asarray(value)
        if array.dtype != self._np_dtype:
            array = array.astype(self._np_dtype)
        n, shape = node.n, array.shape
        expected = f"(T, {n})" + (f" or (T, {batch}, {n})" if batch else "") + " or (T,)"
        if array.ndim == 1:
            return np.broadcast_to(array[:, None], (shape[0], n))
        if array.ndim == 2 and shape[1] == n:
            return array
        if array.ndim == 3 and batch and shape[1:] == (batch, n):
            return array
        raise ShapeError(f"inputs of node '{node.label}' must have shape {expected}, got {shape}", None,
                         f"node '{node.label}' has {n} units; rows are time steps")

    def _records(self, record_output, record_vars, output):
        """(names for the generated run, {obs key: (name, mean)}, aliases, mean keys)."""
        keys: dict[Any, tuple[str, bool]] = {}
        aliases: dict[Any, Any] = {}
        if record_output:
            label = output or self._output_label()
            node = self._node(label)
            if node.output_var is None:
                raise WiringError(f"output node '{label}' has no output_var to record", None,
                                  "pass output_var= to add_diffeq_node, or record_output=False with record_vars")
            keys["out"] = (f"{label}/{node.output_var}", False)
        for item in record_vars or ():
            if isinstance(item, str) or len(item) not in (2, 3):
                raise InvalidValueError(f"record_vars entries are (node, var) or (node, var, mean), got {item!r}")
            label, var = item[0], item[1]
            mean = bool(item[2]) if len(item) == 3 else False
            node = self._node(label)
            local = self._resolve(node, var, what="record_vars variable")
            key = (label, local, True) if mean else (label, local)
            keys[key] = (f"{label}/{local}", mean)
            aliases[(label, var, True) if mean else (label, var)] = key
            if mean:
                aliases.setdefault((label, var), key)
                aliases.setdefault((label, local), key)
        if "out" in keys:  # obs[("tanh", "li_op/v")] is the output too, unless record_vars asked otherwise
            aliases.setdefault(tuple(keys["out"][0].split("/", 1)), "out")
        for key in list(aliases):
            if key in keys and aliases[key] != key:
                del aliases[key]
        record = list(dict.fromkeys(name for name, _ in keys.values()))
        return record, keys, aliases, [k for k, (_, m) in keys.items() if m]

    # -- graph ----------------------------------------------------------------------

    def _input_label(self) -> str:
        free = [n.label for n in self._nodes.values() if n.input_var is not None and
                not any(e.target == n.label and e.target_var == n.input_var for e in self._edges.values())]
        if len(free) > 1:
            roots = [label for label in free if not any(e.target == label and not e.feedback
                                                        for e in self._edges.values())]
            free = roots if len(roots) == 1 else free
        if len(free) != 1:
            raise WiringError(("no node takes external input" if not free else
                               f"several nodes take external input ({', '.join(free)})") +
                              "; array inputs need exactly one input node", None,
                              "pass inputs as a dict {node_label: array}" if free else
                              "set input_var= in add_diffeq_node or add an input node with add_func_node")
        return free[0]

    def _output_label(self) -> str:
        sinks = [n.label for n in self._nodes.values() if n.output_var is not None and
                 not any(e.source == n.label and not e.feedback for e in self._edges.values())]
        if not any(n.output_var for n in self._nodes.values()):
            raise WiringError("no node has an output variable, so there is no output to record", None,
                              "pass output_var= to add_diffeq_node, or use record_output=False with record_vars")
        if len(sinks) != 1:
            raise WiringError(("no node is free of outgoing edges" if not sinks else
                               f"several nodes have no outgoing edges ({', '.join(sinks)})") +
                              ", so the output node is not clear", None,
                              "pass output='label' to run(), mark loop-closing edges with add_edge(..., feedback=True),"
                              " or use record_output=False with record_vars")
        return sinks[0]

    # -- names and values -----------------------------------------------------------

    def _check_label(self, label) -> None:
        if not isinstance(label, str) or not label.isidentifier():
            raise InvalidNameError(f"node label {label!r} must be a name (letters, digits, underscores)")
        if label in self._nodes:
            raise InvalidNameError(f"there is already a node '{label}'", None,
                                   f"choose another label or remove it with pop_node({label!r})")

    def _node(self, label) -> _Node:
        try:
            return self._nodes[label]
        except (KeyError, TypeError):
            raise UnknownVariableError(f"there is no node {label!r}", None,
                                       did_you_mean(str(label), self._nodes) or
                                       f"nodes: {', '.join(self._nodes) or 'none'}") from None

    def _resolve(self, node: _Node, name, kinds=None, what: str = "variable") -> str:
        """'op/var' of a node from "op/var", a short name (with op=, or unique), or "label/op/var"."""
        if not isinstance(name, str):
            raise InvalidValueError(f"{what} must be a variable name, got {name!r}")
        local = None
        if name in node.variables:
            local = name
        elif name.startswith(node.label + "/") and name[len(node.label) + 1:] in node.variables:
            local = name[len(node.label) + 1:]
        elif "/" not in name:
            if node.op is not None and f"{node.op}/{name}" in node.variables:
                local = f"{node.op}/{name}"
            else:
                matches = [v for v in node.variables if v.split("/", 1)[1] == name]
                if len(matches) > 1:
                    raise UnknownVariableError(f"{what} '{name}' of node '{node.label}' is ambiguous: "
                                               f"{' or '.join(matches)}", None, f"write it as {matches[0]!r}")
                local = matches[0] if matches else None
        if local is None:
            candidates = list(node.variables) + [v.split("/", 1)[1] for v in node.variables]
            raise UnknownVariableError(f"{what} '{name}' is not a variable of node '{node.label}'", None,
                                       did_you_mean(name, candidates) or
                                       f"variables: {', '.join(node.variables)}")
        if kinds is not None and node.variables[local].kind not in kinds:
            kind = node.variables[local].kind
            want = " or ".join(f"{k}(...)" if k != "parameter" else "a parameter" for k in kinds)
            raise WiringError(f"{what} '{local}' of node '{node.label}' is {'a' if kind != 'input' else 'an'} "
                              f"{kind}; it must be declared {want}")
        return local

    def _value(self, node: _Node, local: str, value):
        """A node value: a Python float, or a per-unit float array of shape (n,)."""
        if isinstance(value, (int, float, np.number)) or np.ndim(value) == 0:
            try:
                return float(value)
            except (TypeError, ValueError):
                raise InvalidValueError(f"value of '{local}' of node '{node.label}' must be a number, "
                                        f"got {value!r}") from None
        array = self._as_float_array(value, local)
        if array.shape != (node.n,):
            raise ShapeError(f"value of '{local}' of node '{node.label}' must be one number or an array of shape "
                             f"({node.n},), got {array.shape}", None, "one value per unit of the population")
        return array

    def _as_float_array(self, value, what: str) -> np.ndarray:
        """The array as the network's dtype; an array that already is one is used, not copied
        (a 4000 x 4000 weight matrix is 128 MB): change it through set_var, not in place."""
        try:
            array = np.asarray(value)
        except (TypeError, ValueError):
            array = np.asarray(None)
        if array.dtype.kind not in "biuf":  # bool, integers, floats; not complex, text or objects
            raise InvalidValueError(f"{what} must be an array of real numbers, got {type(value).__name__}"
                                    + (f" of {array.dtype}" if isinstance(value, np.ndarray) else ""))
        return array.astype(self._np_dtype, copy=False)  # NaN/inf: the generated run() checks every value

    def _sweep_target(self, key) -> tuple[_Node, str]:
        if isinstance(key, tuple):
            node = self._node(key[0])
            return node, self._check_sweepable(node, self._resolve(node, key[1], what="sweep parameter"), key)
        first = key.split("/", 1)[0]
        if "/" in key and first in self._nodes:
            node = self._nodes[first]
            return node, self._check_sweepable(node, self._resolve(node, key, what="sweep parameter"), key)
        found = []
        for node in self._nodes.values():
            try:
                found.append((node, self._resolve(node, key, what="sweep parameter")))
            except (UnknownVariableError, WiringError):
                continue
        if len(found) != 1:
            all_names = [f"{n.label}/{v}" for n in self._nodes.values() for v in n.variables]
            raise UnknownVariableError(
                f"sweep parameter '{key}' " + ("is not a variable of any node" if not found else
                                              f"is in several nodes ({', '.join(n.label for n, _ in found)})"),
                None, did_you_mean(key, all_names) if not found else f"write it as '{found[0][0].label}/{found[0][1]}'")
        return found[0][0], self._check_sweepable(*found[0], key)

    def _check_sweepable(self, node: _Node, local: str, key) -> str:
        if node.variables[local].kind == "input":
            raise InvalidValueError(f"sweep varies parameters and initial values; '{local}' is an input", None,
                                    "vary inputs through inputs=(T, B, n_in)")
        return local


# -- helpers ---------------------------------------------------------------------------

def _node_variables(template) -> dict[str, VariableSpec]:
    """ "op/var" -> VariableSpec of a node or operator template, with the node's value overrides."""
    uses = template.operators if isinstance(template, NodeTemplate) else None
    out: dict[str, VariableSpec] = {}
    if uses is None:
        for var in template.variables.values():
            out[f"{template.name}/{var.name}"] = var
        return out
    for use in uses:
        for var in use.operator.variables.values():
            if var.name in use.overrides:
                var = VariableSpec(var.name, var.kind, use.overrides[var.name][0], var.location, var.unit,
                                   var.description)
            out[f"{use.operator.name}/{var.name}"] = var
    return out


def _names(value) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    return list(value)


def _readonly(value):
    view = np.asarray(value).view()
    view.flags.writeable = False
    return view


def _plain(value):
    if isinstance(value, np.ndarray):
        return value.tolist() if value.ndim else value.item()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _to_numpy(value) -> np.ndarray:
    if isinstance(value, np.ndarray):
        return value
    get = getattr(value, "get", None)  # CuPy arrays copy to the host with .get()
    return get() if callable(get) else np.asarray(value)


def _dtype_name(dtype) -> str:
    try:
        name = np.dtype(dtype).name
    except TypeError:
        name = str(dtype)
    if name not in ("float64", "float32"):
        raise InvalidValueError(f"dtype must be float64 or float32, got {dtype!r}")
    return name


def _backend_for(device: str) -> str:
    if device == "cpu":
        return "numpy"
    if device.split(":")[0] not in ("cuda", "gpu"):
        raise InvalidValueError(f"device must be 'cpu' or 'cuda', got {device!r}")
    from ..codegen.options import BACKENDS
    install = "install CuPy for your CUDA version: pip install modelc[cupy]"
    if "cupy" not in BACKENDS:
        raise BackendUnavailableError("device='cuda' needs the CuPy backend, which this modelc version does not "
                                      "have yet", None, "use device='cpu'")
    try:
        import cupy
    except ImportError:
        raise BackendUnavailableError("device='cuda' needs CuPy, which is not installed", None, install) from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:  # CUDA driver or runtime missing: CuPy raises its own error types
        raise BackendUnavailableError(f"device='cuda' found no usable GPU ({exc})", None,
                                      "check the NVIDIA driver, or use device='cpu'") from None
    if count < 1:
        raise BackendUnavailableError("device='cuda' found no GPU", None, "use device='cpu'")
    return "cupy"


class _ProgressBar:
    """tqdm when installed, else a one-line bar on stderr; updated once per chunk of steps."""

    def __init__(self, total: int):
        self.total, self.done = total, 0
        try:
            from tqdm.auto import tqdm
            self._tqdm = tqdm(total=total, unit="step", leave=True)
        except ImportError:
            self._tqdm = None
            self._draw()

    def update(self, steps_done: int, states=None) -> None:
        if self._tqdm is not None:
            self._tqdm.update(steps_done - self.done)
        self.done = steps_done
        if self._tqdm is None:
            self._draw()

    def _draw(self) -> None:
        width = 30
        filled = int(width * self.done / max(self.total, 1))
        sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total} steps")
        sys.stderr.flush()

    def close(self) -> None:
        if self._tqdm is not None:
            self._tqdm.close()
        else:
            sys.stderr.write("\n")
            sys.stderr.flush()
