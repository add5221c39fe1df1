"""Variable names and values of a Network's nodes.

Names: a node's variables are "op/var" ("node/op/var" for a circuit). A user may also write a
short name ("tau") when one operator of the node has it (or the node was added with op=), or
"label/op/var"; node_vars takes "all/op/var" too (RectiPy's and PyRates' wildcard). Values: a
parameter, or a free input's constant, is one number or one per unit (shape (n,)), stored on
its node (node_vars, set_var) and handed to the generated module as "label/op/var".
"""
from __future__ import annotations

from types import ModuleType

import numpy as np

from ...errors import InvalidValueError, NonFiniteError, ShapeError, UnknownVariableError, WiringError, did_you_mean
from ...spec import CircuitTemplate, NodeTemplate, VariableSpec
from .device import to_host
from .graph import Graph, Node


def node_variables(template) -> dict[str, VariableSpec]:
    """ "op/var" -> VariableSpec of a node or operator template, with the node's value overrides;
    "node/op/var" -> VariableSpec of a circuit ("circuit/node/op/var" inside a circuit of it)."""
    if isinstance(template, CircuitTemplate):
        return {f"{label}/{name}": var for label, part in {**template.nodes, **template.circuits}.items()
                for name, var in node_variables(part).items()}
    if not isinstance(template, NodeTemplate):
        return {f"{template.name}/{var.name}": var for var in template.variables.values()}
    out: dict[str, VariableSpec] = {}
    for use in template.operators:
        for var in use.operator.variables.values():
            if var.name in use.overrides:
                var = VariableSpec(var.name, var.kind, use.overrides[var.name][0], var.location, var.unit,
                                   var.description)
            out[f"{use.operator.name}/{var.name}"] = var
    return out


# -- names ---------------------------------------------------------------------------

def resolve(node: Node, name, kinds=None, what: str = "variable") -> str:
    """'op/var' of a node from "op/var", a short name (with op=, or unique), or "label/op/var";
    with `kinds`, the variable must be of one of those kinds ("input", "parameter", ...)."""
    if not isinstance(name, str):
        raise InvalidValueError(f"{what} must be a variable name, got {name!r}")
    local = _local_name(node, name, what)
    if local is None:
        short = [] if isinstance(node.template, CircuitTemplate) else [v.split("/", 1)[1] for v in node.variables]
        candidates = list(node.variables) + short
        raise UnknownVariableError(f"{what} '{name}' is not a variable of node '{node.label}'", None,
                                   did_you_mean(name, candidates) or f"variables: {', '.join(node.variables)}")
    kind = node.variables[local].kind
    if kinds is not None and kind not in kinds:
        want = " or ".join(f"{k}(...)" if k != "parameter" else "a parameter" for k in kinds)
        raise WiringError(f"{what} '{local}' of node '{node.label}' is {'an' if kind == 'input' else 'a'} "
                          f"{kind}; it must be declared {want}")
    return local


def node_var_names(node: Node, key) -> list[str]:
    """The variables a node_vars key sets: the one it names, or for "all/op/var" op/var of the
    population (RectiPy: all its units) or of every node of a circuit that has it (PyRates)."""
    if not (isinstance(key, str) and key.startswith("all/")):
        return [resolve(node, key, what="node_vars key")]
    rest = key[len("all/"):]
    if not isinstance(node.template, CircuitTemplate):
        return [resolve(node, rest, what="node_vars key")]
    found = [name for name in node.variables if _op_var(name) == rest]
    if not found:
        raise UnknownVariableError(f"node_vars key '{key}': no node of circuit '{node.label}' has '{rest}'", None,
                                   did_you_mean(rest, {_op_var(name) for name in node.variables}))
    return found


def _op_var(path: str) -> str:
    """ "op/var" of a circuit's "node/op/var" (or "circuit/node/op/var")."""
    return "/".join(path.split("/")[-2:])


def _local_name(node: Node, name: str, what: str) -> str | None:
    if name in node.variables:
        return name
    prefix = node.label + "/"
    if name.startswith(prefix) and name[len(prefix):] in node.variables:
        return name[len(prefix):]
    if "/" in name:
        return None
    if node.op is not None and f"{node.op}/{name}" in node.variables:
        return f"{node.op}/{name}"
    matches = [v for v in node.variables if v.split("/", 1)[1] == name]
    if len(matches) > 1:
        raise UnknownVariableError(f"{what} '{name}' of node '{node.label}' is ambiguous: "
                                   f"{' or '.join(matches)}", None, f"write it as {matches[0]!r}")
    return matches[0] if matches else None


def sweep_target(graph: Graph, key) -> tuple[Node, str]:
    """The node and "op/var" a sweep key names: (node, var), "label/op/var", or a name that
    exactly one node has."""
    if isinstance(key, tuple):
        node = graph.node(key[0])
        return node, _sweepable(node, resolve(node, key[1], what="sweep parameter"))
    first = key.split("/", 1)[0]
    if "/" in key and first in graph.nodes:
        node = graph.nodes[first]
        return node, _sweepable(node, resolve(node, key, what="sweep parameter"))
    found = []
    for node in graph.nodes.values():
        try:
            found.append((node, resolve(node, key, what="sweep parameter")))
        except (UnknownVariableError, WiringError):
            continue
    if len(found) != 1:
        all_names = [f"{n.label}/{v}" for n in graph.nodes.values() for v in n.variables]
        raise UnknownVariableError(
            f"sweep parameter '{key}' " + ("is not a variable of any node" if not found else
                                          f"is in several nodes ({', '.join(n.label for n, _ in found)})"),
            None, did_you_mean(key, all_names) if not found else f"write it as '{found[0][0].label}/{found[0][1]}'")
    return found[0][0], _sweepable(*found[0])


def _sweepable(node: Node, local: str) -> str:
    if node.variables[local].kind == "input":
        raise InvalidValueError(f"sweep varies parameters and initial values; '{local}' is an input", None,
                                "vary inputs through inputs=(T, B, n_in)")
    return local


# -- values --------------------------------------------------------------------------

def float_array(value, what: str, dtype: np.dtype) -> np.ndarray:
    """The array as the network's dtype; an array that already is one is used, not copied
    (a 4000 x 4000 weight matrix is 128 MB): change it through set_var, not in place."""
    try:
        array = np.asarray(value)
    except (TypeError, ValueError):
        array = np.asarray(None)
    if array.dtype.kind not in "biuf":  # bool, integers, floats; not complex, text or objects
        raise InvalidValueError(f"{what} must be an array of real numbers, got {type(value).__name__}"
                                + (f" of {array.dtype}" if isinstance(value, np.ndarray) else ""))
    return array.astype(dtype, copy=False)


def finite_array(value, what: str, dtype: np.dtype) -> np.ndarray:
    """float_array of finite values only: a NaN or infinity is an error at the call that gives it,
    naming `what` (the node or edge), not one at run() under the generated module's name for it."""
    array = float_array(value, what, dtype)
    # min and max carry any NaN or infinity and read the array without a temporary copy
    if array.size and not (np.isfinite(array.min()) and np.isfinite(array.max())):
        where = tuple(int(k) for k in np.argwhere(~np.isfinite(array))[0])
        index = where if len(where) != 1 else where[0]
        raise InvalidValueError(f"{what} must be finite, got {array[where]} at index {index}")
    return array


def node_value(node: Node, local: str, value, dtype: np.dtype):
    """A node value: a finite Python float, or a per-unit finite float array of shape (n,)."""
    if np.ndim(value) == 0:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise InvalidValueError(f"value of '{local}' of node '{node.label}' must be a number, "
                                    f"got {value!r}") from None
        if not np.isfinite(number):
            raise InvalidValueError(f"value of '{local}' of node '{node.label}' must be finite, got {number}")
        return number
    array = finite_array(value, f"value of '{local}' of node '{node.label}'", dtype)
    if array.shape != (node.n,):
        raise ShapeError(f"value of '{local}' of node '{node.label}' must be one number or an array of shape "
                         f"({node.n},), got {array.shape}", None, "one value per unit of the population")
    return array


def recurrent_weights(node: Node, value, dtype: np.dtype) -> np.ndarray:
    """New recurrent weights for a node: the shape of the ones it has."""
    weights = finite_array(value, f"recurrent weights of node '{node.label}'", dtype)
    if weights.shape != node.weights.shape:
        raise ShapeError(f"weights of node '{node.label}' must have shape {node.weights.shape}, got {weights.shape}",
                         None, "weights[i, j] is the weight from unit j to unit i")
    return weights


def parameter_value(node: Node, local: str):
    """A parameter's value: the node's own (node_vars, set_var), else the template's default."""
    return node.values.get(local, node.variables[local].default)


def parameter_values(graph: Graph) -> dict:
    """The generated module's params: every value set on a node, and every weight matrix."""
    params = {f"{node.label}/{local}": value for node in graph.nodes.values()
              for local, value in node.values.items() if node.variables[local].kind == "parameter"}
    params.update(graph.matrices())
    return params


def constant_inputs(graph: Graph, module: ModuleType) -> dict:
    """The free inputs held at a value set on a node (node_vars, set_var)."""
    return {f"{node.label}/{local}": value for node in graph.nodes.values() for local, value in node.values.items()
            if f"{node.label}/{local}" in module.INPUTS}


def check_node_values(graph: Graph, module: ModuleType) -> None:
    """Values set on inputs and states must name free inputs and states of the compiled module."""
    for node in graph.nodes.values():
        for local in node.values:
            name, kind = f"{node.label}/{local}", node.variables[local].kind
            if kind == "input" and name not in module.INPUTS:
                raise WiringError(f"node_vars sets '{local}' of node '{node.label}', but that input is wired "
                                  "(fed by another operator or an edge)", None, "set a constant only on a free input")
            if kind in ("output", "variable") and name not in module.STATES:
                raise InvalidValueError(f"node_vars sets '{local}' of node '{node.label}', which is computed by "
                                        "an equation; it has no initial value", None,
                                        "set the states or parameters it is computed from")


def current_value(graph: Graph, module: ModuleType, states: dict, node: Node, local: str, time: float):
    """The current value of a state, a free input or a variable computed from them (read-only)."""
    name = f"{node.label}/{local}"
    if name in module.STATES:
        return readonly(states[name])
    if name in module.INPUTS:
        return readonly(node.values.get(local, module.INPUTS[name]))
    params = {**module.default_params(), **parameter_values(graph)}
    inputs = {**module.INPUTS, **constant_inputs(graph, module)}
    computed = to_host(module.algebraics(time, states, params, inputs)[name])
    return readonly(np.broadcast_to(computed, np.shape(computed)[:-1] + (node.n,)))


def domain_error(module: ModuleType, y0: dict, params: dict, inputs: dict, t0: float) -> NonFiniteError | None:
    """The error for a run that went non-finite when the cause is no step size but the values: a
    state's derivative is already NaN or infinite where the run starts (tau = 0 in v/tau). It
    names the state and each parameter that, set to 1 alone, would make that derivative finite."""
    first = {name: value[0] if isinstance(value, np.ndarray) and value.ndim else value
             for name, value in inputs.items()}  # the inputs of step 0

    def bad_rates(values) -> list[str]:
        with np.errstate(all="ignore"):
            rates = module.rhs(t0, y0, values, first)
        return [name for name, rate in rates.items() if not np.all(np.isfinite(to_host(rate)))]

    full = {**module.default_params(), **params}
    bad = bad_rates(full)
    if not bad:
        return None
    scalars = [name for name, value in full.items() if np.ndim(value) <= 1 and module.PARAM_SHAPES[name] != "matrix"]
    culprits = [f"{name} = {_shown(full[name])}" for name in scalars if bad[0] not in bad_rates({**full, name: 1.0})]
    return NonFiniteError(f"the derivative of state '{bad[0]}' is not finite where the run starts, before any step: "
                          "its equation is out of its domain (a division by zero, a logarithm of a negative number, "
                          "...) for these values", None,
                          f"check {', '.join(culprits)}" if culprits else
                          "check the parameters and initial values its equation reads")


def _shown(value) -> str:
    return f"{float(value):g}" if np.ndim(value) == 0 else f"an array with {np.count_nonzero(value == 0)} zeros"


def readonly(value):
    """A read-only view of an array (a number as it is): values change through set_var only."""
    if not isinstance(value, np.ndarray):
        return value
    view = value.view()
    view.flags.writeable = False
    return view
