"""The graph of a Network: nodes (populations) and weighted edges, by label.

It also says which node takes the run's input and which gives its output when the graph
alone tells (one node without incoming edges, one without outgoing ones), and what the
compiler needs of the structure: the populations, the connections and their matrix names.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...errors import InvalidNameError, InvalidValueError, UnknownVariableError, WiringError, did_you_mean
from ...spec import CircuitTemplate, VariableSpec

RECURRENT = ""  # the source part of a recurrent matrix's key: ("", label)


@dataclass
class Node:
    label: str
    kind: str                      # "diffeq" or "func"
    template: Any                  # NodeTemplate | OperatorTemplate | CircuitTemplate (n copies of it)
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
    spiking: Any = None            # spikes.Spiking: spike/reset pairs and surrogate settings (add_diffeq_node)

    def __repr__(self) -> str:
        what = "copies of the circuit" if isinstance(self.template, CircuitTemplate) else "units of"
        return f"<{self.kind} node {self.label!r}: {self.n} {what} {getattr(self.template, 'path', '?')}>"


@dataclass
class Edge:
    source: str
    target: str
    source_var: str   # "op/var" of the source node
    target_var: str   # "op/var" of the target node
    weights: np.ndarray  # (n_target, n_source)
    feedback: bool = False
    train: str | None = None
    rls_P: np.ndarray | None = None  # train="rls": fit_rls's P, kept from one call to the next (readout.py)
    delays: np.ndarray | None = None  # (n_source,) in time units: the source's units delayed (add_edge delays=)


class Graph:
    """The nodes and edges of a network; `version` counts changes of its structure."""

    def __init__(self):
        self.nodes: dict[str, Node] = {}
        self.edges: dict[tuple[str, str], Edge] = {}
        self.version = 0

    # -- lookup and change -------------------------------------------------------------

    def node(self, label) -> Node:
        try:
            return self.nodes[label]
        except (KeyError, TypeError):
            raise UnknownVariableError(f"there is no node {label!r}", None,
                                       did_you_mean(str(label), self.nodes) or
                                       f"nodes: {', '.join(self.nodes) or 'none'}") from None

    def edge(self, source: str, target: str) -> Edge:
        try:
            return self.edges[(source, target)]
        except KeyError:
            names = [f"{a} -> {b}" for a, b in self.edges]
            raise UnknownVariableError(f"there is no edge {source} -> {target}", None,
                                       did_you_mean(f"{source} -> {target}", names) or
                                       f"edges: {', '.join(names) or 'none'}") from None

    def check_new_label(self, label) -> None:
        if not isinstance(label, str) or not label.isidentifier():
            raise InvalidNameError(f"node label {label!r} must be a name (letters, digits, underscores)")
        if label in self.nodes:
            raise InvalidNameError(f"there is already a node '{label}'", None,
                                   f"choose another label or remove it with pop_node({label!r})")

    def add_node(self, node: Node) -> Node:
        """Add a node whose label passed check_new_label (checked before its template is loaded)."""
        self.nodes[node.label] = node
        self.version += 1
        return node

    def add_edge(self, edge: Edge) -> Edge:
        source, target = edge.source, edge.target
        if (source, target) in self.edges:
            raise WiringError(f"there is already an edge {source} -> {target}", None,
                              f"remove it first with pop_edge({source!r}, {target!r}) or add the weights into one matrix")
        self.edges[(source, target)] = edge
        self.version += 1
        return edge

    def pop_node(self, label: str) -> Node:
        node = self.nodes.pop(self.node(label).label)
        for key in [k for k in self.edges if label in k]:
            del self.edges[key]
        self.version += 1
        return node

    def pop_edge(self, source: str, target: str) -> Edge:
        self.edge(source, target)  # a clear error when there is no such edge
        edge = self.edges.pop((source, target))
        self.version += 1
        return edge

    # -- where the run's input goes in and its output comes out ---------------------------

    def input_label(self) -> str:
        """The one node that takes external input: an input_var fed by no edge but feedback
        edges, preferring the one root."""
        free = [n.label for n in self.nodes.values() if n.input_var is not None and
                not any(e.target == n.label and e.target_var == n.input_var and not e.feedback
                        for e in self.edges.values())]
        if len(free) > 1:
            roots = [label for label in free if not any(e.target == label and not e.feedback
                                                        for e in self.edges.values())]
            free = roots if len(roots) == 1 else free
        if len(free) != 1:
            raise WiringError(("no node takes external input" if not free else
                               f"several nodes take external input ({', '.join(free)})") +
                              "; array inputs need exactly one input node", None,
                              "pass inputs as a dict {node_label: array}" if free else
                              "set input_var= in add_diffeq_node or add an input node with add_func_node")
        return free[0]

    def output_label(self) -> str:
        """The one node with an output_var and no outgoing edges (feedback edges do not count)."""
        if not any(n.output_var for n in self.nodes.values()):
            raise WiringError("no node has an output variable, so there is no output to record", None,
                              "pass output_var= to add_diffeq_node, or use record_output=False with record_vars")
        sinks = [n.label for n in self.nodes.values() if n.output_var is not None and
                 not any(e.source == n.label and not e.feedback for e in self.edges.values())]
        if len(sinks) != 1:
            raise WiringError(("no node is free of outgoing edges (a loop, or a circuit rebuilt from nodes)"
                               if not sinks else f"several nodes have no outgoing edges ({', '.join(sinks)})") +
                              ", so the output node is not clear", None,
                              "pass output='label' to run(), mark loop-closing edges with add_edge(..., feedback=True),"
                              " or use record_output=False with record_vars")
        return sinks[0]

    # -- what the compiler and the generated run() take ---------------------------------

    def matrices(self) -> dict[str, np.ndarray]:
        """{parameter name: weight matrix} of the recurrent weights and the edges."""
        names = self._matrix_names()
        out = {names[(RECURRENT, n.label)]: n.weights for n in self.nodes.values() if n.weights is not None}
        out.update({names[key]: edge.weights for key, edge in self.edges.items()})
        out.update({f"{names[key]}_delays": edge.delays for key, edge in self.edges.items() if edge.delays is not None})
        return out

    def connections(self) -> list[tuple[str, ...]]:
        """(source, target, matrix name) of every coupling: target += matrix @ source; an edge with
        delays adds the name of its delays (target += matrix @ the source as it was)."""
        names = self._matrix_names()
        out = [(f"{n.label}/{n.source_var}", f"{n.label}/{n.target_var}", names[(RECURRENT, n.label)])
               for n in self.nodes.values() if n.weights is not None]
        out += [(f"{e.source}/{e.source_var}", f"{e.target}/{e.target_var}", names[key])
                + ((f"{names[key]}_delays",) if e.delays is not None else ())  # (and its delays)
                for key, e in self.edges.items()]
        return out

    def trainables(self) -> dict[str, str]:
        """{name a user reads the gradient by: the module's parameter} of everything trained:
        "label/op/var" and "label/weights" (train_params), "source->target" (edges with train="gd")."""
        names = self._matrix_names()
        out = {}
        for node in self.nodes.values():
            for local in node.train_params:
                out[f"{node.label}/{local}"] = names[(RECURRENT, node.label)] if local == "weights" else \
                    f"{node.label}/{local}"
        out.update({f"{s}->{t}": names[(s, t)] for (s, t), e in self.edges.items() if e.train == "gd"})
        return out

    def set_trained(self, name: str, value) -> None:
        """Give a trained parameter (by its name in trainables()) a new value."""
        if "->" in name:
            self.edges[tuple(name.split("->"))].weights = value
            return
        label, local = name.split("/", 1)
        if local == "weights":
            self.nodes[label].weights = value
        else:
            self.nodes[label].values[local] = value

    def _matrix_names(self) -> dict[tuple[str, str], str]:
        """Readable, identifier-safe, unique names of the weight matrices ("tanh_weights", "a_to_b_weights")."""
        wanted = [((RECURRENT, n.label), f"{n.label}_weights") for n in self.nodes.values() if n.weights is not None]
        wanted += [(key, f"{key[0]}_to_{key[1]}_weights") for key in self.edges]
        names: dict[tuple[str, str], str] = {}
        taken: set[str] = set()
        for key, base in wanted:
            name, k = base, 2
            while name in taken:
                name, k = f"{base}_{k}", k + 1
            taken.add(name)
            names[key] = name
        return names

    def method(self) -> str:
        """The one integration method the diff-eq nodes ask for (euler without any)."""
        methods = {n.method for n in self.nodes.values() if n.kind == "diffeq"}
        if len(methods) > 1:
            raise InvalidValueError(f"the nodes ask for different methods ({', '.join(sorted(methods))}); the "
                                    "network is integrated with one", None, "pass method= to run()")
        return methods.pop() if methods else "euler"

    def vector_params(self) -> list[str]:
        """The parameters set to one value per unit (they compile as vectors, not scalars)."""
        return [f"{n.label}/{local}" for n in self.nodes.values() for local, value in n.values.items()
                if isinstance(value, np.ndarray) and n.variables[local].kind == "parameter"]
