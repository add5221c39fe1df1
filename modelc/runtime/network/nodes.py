"""Checked nodes and edges from the arguments of add_diffeq_node, add_func_node and add_edge,
and the templates of the stateless function nodes (ACTIVATIONS).

Weight convention: ``weights[i, j]`` is the weight from unit j of the source to unit i of the
target, so a matrix has shape (n_target, n_source) and is never transposed silently.
"""
from __future__ import annotations

import numpy as np

from ...codegen.options import get_scheme
from ...errors import InvalidValueError, ShapeError, UnknownVariableError, WiringError, did_you_mean
from ...spec import OperatorTemplate, VariableSpec
from .graph import Edge, Node
from .variables import finite_array, node_variables, resolve

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
_FUNC_TEMPLATES: dict[str, OperatorTemplate] = {}  # built once each: the same template, the same cache key

OUTPUT_KINDS = ("output", "variable")  # what a coupling may read
INPUT_KINDS = ("input",)               # what a coupling may drive


def diffeq_node(label: str, template, weights, N, op: str | None, method: str, dtype: np.dtype) -> Node:
    """A population of N units of a node or operator template, or N copies of a circuit (its
    variables "node/op/var"), sized by its (N, N) recurrent weights or by N."""
    variables = node_variables(template)
    if op is not None and not any(name.startswith(op + "/") for name in variables):
        ops = sorted({name.split("/")[0] for name in variables})
        raise UnknownVariableError(f"node '{label}' has no operator '{op}'", None,
                                   did_you_mean(op, ops) or f"operators: {', '.join(ops)}")
    method = get_scheme(str(method)).name
    if weights is None:
        return Node(label, "diffeq", template, _size(label, N), variables, op=op, method=method)
    weights = finite_array(weights, f"recurrent weights of node '{label}'", dtype)
    if weights.ndim != 2 or weights.shape[0] != weights.shape[1] or (N is not None and weights.shape[0] != N):
        n = N if N is not None else (weights.shape[0] if weights.ndim >= 1 else "N")
        raise ShapeError(f"recurrent weights of node '{label}' must have shape (N, N) = ({n}, {n}), "
                         f"got {weights.shape}", None, "weights[i, j] is the weight from unit j to unit i "
                         "(r_in = weights @ r)")
    return Node(label, "diffeq", template, weights.shape[0], variables, op=op, method=method, weights=weights)


def _size(label: str, N) -> int:
    if N is None:
        raise InvalidValueError(f"node '{label}' needs its size: pass weights=(N, N) or N=")
    if int(N) != N or N < 1:
        raise InvalidValueError(f"N must be a whole number >= 1, got {N!r}")
    return int(N)


def wire_diffeq_node(node: Node, source_var, target_var, input_var, output_var) -> None:
    """Set the node's recurrent coupling (target_var = weights @ source_var) and its input and output."""
    if (source_var is None) != (target_var is None):
        raise WiringError(f"node '{node.label}': the recurrent coupling needs both source_var and target_var")
    if source_var is not None and node.weights is None:
        raise WiringError(f"node '{node.label}': source_var/target_var couple through weights; pass weights=(N, N)")
    if source_var is None and node.weights is not None:
        raise WiringError(f"node '{node.label}': weights need source_var and target_var "
                          "(target_var = weights @ source_var)")
    if source_var is not None:
        node.source_var = resolve(node, source_var, kinds=OUTPUT_KINDS, what="source_var")
        node.target_var = resolve(node, target_var, kinds=INPUT_KINDS, what="target_var")
    if input_var is not None:
        node.input_var = resolve(node, input_var, kinds=INPUT_KINDS, what="input_var")
    if output_var is not None:
        node.output_var = resolve(node, output_var, kinds=OUTPUT_KINDS, what="output_var")


def trainable(node: Node, train_params) -> list[str]:
    """The node's parameters named for fitting ("op/var", or "weights" for the recurrent matrix)."""
    names = [train_params] if isinstance(train_params, str) else list(train_params or ())
    if "weights" in names and node.weights is None:
        raise WiringError(f"node '{node.label}': train_params names 'weights' but the node has no recurrent weights")
    return [p if p == "weights" else resolve(node, p, kinds=("parameter",), what="train_params") for p in names]


def func_node(label: str, n, activation: str) -> Node:
    """A stateless node of n units, y = activation(x)."""
    if int(n) != n or n < 1:
        raise InvalidValueError(f"n must be a whole number >= 1, got {n!r}")
    template = _func_template(activation)
    return Node(label, "func", template, int(n), node_variables(template), op=activation,
                input_var=f"{activation}/x", output_var=f"{activation}/y", activation=activation)


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


# A variable fed by edges that a run also drives from outside (run(inputs=...)) gets a drive: a
# population of its own, the identity function node, whose free input x takes the run's array and
# whose output y adds into the variable beside the edges, so that both add up.

def drive_label(name: str) -> str:
    """The drive's population label for "label/op/var": never a node's label (a name has no dots)."""
    return name.replace("/", ".")


def drive_input(name: str) -> str:
    """The generated module's input that drives "label/op/var" through its drive."""
    return f"{drive_label(name)}/identity/x"


def drive_populations(drives) -> dict[str, OperatorTemplate]:
    return {drive_label(name): _func_template("identity") for name in drives}


def drive_connections(drives) -> list[tuple[str, str, float]]:
    """name += 1.0 * the drive's output, elementwise."""
    return [(f"{drive_label(name)}/identity/y", name, 1.0) for name in drives]


TRAINING_RULES = (None, "gd", "rls")  # how an edge's weights are trained: not, by gradients, by RLS


def edge(source: Node, target: Node, weights, source_var, target_var, feedback: bool, train, dtype: np.dtype) -> Edge:
    """target's input_var (or target_var) += weights @ source's output_var (or source_var);
    a number c as weights means c times the identity (equal sizes)."""
    s_var = resolve(source, source_var, kinds=OUTPUT_KINDS, what="source_var") if source_var else source.output_var
    t_var = resolve(target, target_var, kinds=INPUT_KINDS, what="target_var") if target_var else target.input_var
    if s_var is None:
        raise WiringError(f"node '{source.label}' has no output_var to send along the edge", None,
                          "pass output_var= to add_diffeq_node or source_var= to add_edge")
    if t_var is None:
        raise WiringError(f"node '{target.label}' has no input_var to receive the edge", None,
                          "pass input_var= to add_diffeq_node or target_var= to add_edge")
    if train not in TRAINING_RULES:
        raise InvalidValueError(f"train must be one of {', '.join(map(repr, TRAINING_RULES))}, got {train!r}", None,
                                did_you_mean(str(train), [r for r in TRAINING_RULES if r]) or
                                '"gd": by gradient descent (fit_bptt); "rls": by recursive least squares (fit_rls)')
    name, expected = f"{source.label} -> {target.label}", (target.n, source.n)
    if weights is None:  # RectiPy draws random weights here; modelc never invents values silently
        raise InvalidValueError(f"edge {name} needs weights of shape (n_target, n_source) = {expected}", None,
                                f"pass weights=..., e.g. random_connectivity({target.n}, {source.n}, p) from modelc "
                                "for a random sparse matrix, or a number c for c times the identity")
    if np.ndim(weights) == 0:
        if source.n != target.n:
            raise ShapeError(f"edge {name} needs weights of shape (n_target, n_source) = {expected}; "
                             "a number means c times the identity and needs equal sizes")
        weights = float(weights) * np.eye(source.n, dtype=dtype)
    weights = finite_array(weights, f"weights of edge {name}", dtype)
    if weights.shape != expected:
        hint = "weights[i, j] is the weight from source unit j to target unit i"
        if weights.shape == expected[::-1]:
            hint += "; this looks transposed (pass weights.T if that is what you meant)"
        raise ShapeError(f"edge {name} needs weights of shape (n_target, n_source) = {expected}, "
                         f"got {weights.shape}", None, hint)
    return Edge(source.label, target.label, s_var, t_var, weights, bool(feedback), train)
