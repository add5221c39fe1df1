"""Random graphs of diffeq and function nodes, run by Network, against a hand-written NumPy loop.

The graphs: diffeq nodes of the seed template (leaky integrator + tanh, random small N, random
tau, k, eta and initial v, optionally recurrent weights r_in = J @ tanh(v)) and function nodes
(`add_func_node`, every activation), joined by edges with random weights of the right shapes
(or a number: c times the identity): chains, fan-in, cycles through diffeq nodes, self-loops
and readouts fed back into diffeq nodes. Cycles made of function nodes alone are algebraic
loops (an error, tested at the end), so an edge between two function nodes only runs from
the earlier to the later one.

The reference loop is written from the Network's documented meaning (README, runtime/network):
* an edge adds W @ (source's output_var, or the edge's source_var) into the target's input_var
  (or the edge's target_var); edges into one variable are summed, and recurrent weights add
  J @ tanh(v) into r_in besides; an external input into a node fed by edges adds up with them;
* a function node computes y = f(x) in the same step (an algebraic variable, not delayed): x is
  the sum of its incoming edges plus the external input of the step, if it has one;
* a diffeq node: v' = -v/tau + k*r_in + I_ext + eta with I_ext the sum of its incoming edges
  plus the external input, if it has one; every stage of a Runge-Kutta step sees the same input row;
* obs["out"] and every record row r hold the values after step (r + 1) * sampling_steps,
  computed from the new states and the input row of that step.

Every run is compared with the loop to 1e-10 relative. The known bug of issue 11 (an ODE node
feeding a function node feeding an ODE node, or a readout fed back into its source: NameError
'acc_0_') is caught by the random graphs and has its own regression tests.

Example counts are small in every session (see conftest.py); `pytest -m fuzz` or
MODELC_FUZZ_EXAMPLES=N runs more.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from modelc import Network
from modelc.codegen.options import METHODS
from modelc.errors import ModelcError
from references import ACTIVATIONS, assert_close, step_function

SEED = "neuron_model_templates.rate_neurons.leaky_integrator.tanh"
RTOL = 1e-10
_LONG = int(os.environ.get("MODELC_FUZZ_EXAMPLES") or 0)


# --- a graph, described independently of Network ---------------------------------------------

@dataclass
class Node:
    label: str
    kind: str                       # "diffeq" or "func"
    n: int
    activation: str | None = None   # func
    output_var: str | None = None   # diffeq: "li_op/v" or "tanh_op/r"
    tau: float = 10.0
    k: float = 1.0
    eta: float = 0.0
    v0: np.ndarray | None = None
    J: np.ndarray | None = None     # recurrent: r_in += J @ tanh(v)

    @property
    def input_var(self):
        return "li_op/I_ext" if self.kind == "diffeq" else f"{self.activation}/x"

    @property
    def out_var(self):
        return self.output_var if self.kind == "diffeq" else f"{self.activation}/y"


@dataclass
class Edge:
    source: str
    target: str
    weights: object                 # (n_target, n_source) array, or a number c (c * identity)
    source_var: str | None = None   # None: the source's output_var
    target_var: str | None = None   # None: the target's input_var

    def matrix(self, n_target, n_source):
        return self.weights * np.eye(n_target) if np.ndim(self.weights) == 0 else self.weights


@dataclass
class Graph:
    nodes: list[Node]
    edges: list[Edge]
    method: str = "euler"
    dt: float = 0.05
    steps: int = 12
    sampling_steps: int = 1
    output: str | None = None
    inputs: dict = field(default_factory=dict)   # label -> (steps, n) for every free node, and some fed ones

    def node(self, label) -> Node:
        return next(n for n in self.nodes if n.label == label)

    def into(self, node: Node, var: str) -> list[Edge]:
        return [e for e in self.edges if e.target == node.label and (e.target_var or node.input_var) == var]

    def free(self, node: Node) -> bool:
        """Whether the node's input_var is driven from outside (no edge feeds it)."""
        return not self.into(node, node.input_var)

    def summed(self, node: Node, var: str, values) -> np.ndarray:
        """The sum over the edges into node's var of W @ (the source's value)."""
        total = np.zeros(node.n)
        for edge in self.into(node, var):
            source = self.node(edge.source)
            total = total + edge.matrix(node.n, source.n) @ values[source.label][edge.source_var or source.out_var]
        return total

    def __repr__(self):
        nodes = ", ".join(f"{n.label}:{n.kind}({n.n}{', ' + n.activation if n.activation else ''}"
                          f"{', J' if n.J is not None else ''})" for n in self.nodes)
        edges = ", ".join(f"{e.source}->{e.target}" + (f"[{e.target_var}]" if e.target_var else "")
                          for e in self.edges)
        return (f"Graph({nodes}; {edges}; {self.method}, steps={self.steps}, every {self.sampling_steps}, "
                f"output {self.output})")

    def _repr_pretty_(self, printer, cycle):  # hypothesis prints a falsifying graph with this
        printer.text(repr(self))


def build_network(graph: Graph) -> Network:
    net = Network(dt=graph.dt)
    for node in graph.nodes:
        if node.kind == "func":
            net.add_func_node(node.label, node.n, node.activation)
            continue
        kwargs = dict(weights=node.J, source_var="tanh_op/r", target_var="li_op/r_in") if node.J is not None \
            else dict(N=node.n)
        net.add_diffeq_node(node.label, SEED, input_var="li_op/I_ext", output_var=node.output_var,
                            method=graph.method, node_vars={"li_op/tau": node.tau, "li_op/k": node.k,
                                                            "li_op/eta": node.eta, "li_op/v": node.v0}, **kwargs)
    for edge in graph.edges:
        net.add_edge(edge.source, edge.target, edge.weights, source_var=edge.source_var, target_var=edge.target_var)
    return net


def records_of(graph: Graph) -> list[tuple[str, str]]:
    """Every variable the run records: states, rates, function outputs, fed inputs."""
    record = []
    for node in graph.nodes:
        if node.kind == "diffeq":
            record += [(node.label, "li_op/v"), (node.label, "tanh_op/r")]
            record += [(node.label, var) for var in ("li_op/I_ext", "li_op/r_in")
                       if graph.into(node, var) or (var == "li_op/r_in" and node.J is not None)]
        else:
            record.append((node.label, node.out_var))
            if not graph.free(node):
                record.append((node.label, node.input_var))
    return record


# --- the hand-written loop ---------------------------------------------------------------------

def reference_run(graph: Graph) -> dict:
    """{(label, var): (steps // sampling_steps, n)} by a plain loop of the graph's equations."""
    diffeq = [n for n in graph.nodes if n.kind == "diffeq"]
    funcs = [n for n in graph.nodes if n.kind == "func"]   # edges between them run forward in this order

    def values_of(v, row):
        values = {}
        for node in diffeq:
            values[node.label] = {"li_op/v": v[node.label], "tanh_op/r": np.tanh(v[node.label])}
        for node in funcs:
            x = graph.summed(node, node.input_var, values) + row.get(node.label, 0.0)
            values[node.label] = {node.input_var: x, node.out_var: ACTIVATIONS[node.activation](x)}
        for node in diffeq:
            own = values[node.label]
            own["li_op/I_ext"] = graph.summed(node, "li_op/I_ext", values) + row.get(node.label, 0.0)
            r_in = graph.summed(node, "li_op/r_in", values)
            if node.J is not None:
                r_in = r_in + node.J @ own["tanh_op/r"]
            own["li_op/r_in"] = r_in
        return values

    def f(t, v, row):
        values = values_of(v, row)
        return {node.label: -v[node.label] / node.tau + node.k * values[node.label]["li_op/r_in"]
                + values[node.label]["li_op/I_ext"] + node.eta for node in diffeq}

    step = step_function(graph.method)
    v = {node.label: np.array(node.v0, dtype=float) for node in diffeq}
    record = records_of(graph)
    out = {key: [] for key in record}
    for k in range(graph.steps):
        row = {label: value[k] for label, value in graph.inputs.items()}
        v = step(lambda t, state: f(t, state, row), k * graph.dt, v, graph.dt)
        if (k + 1) % graph.sampling_steps == 0:
            values = values_of(v, row)
            for label, var in record:
                out[(label, var)].append(np.array(values[label][var], dtype=float))
    return {key: np.array(rows) for key, rows in out.items()}


def check(graph: Graph):
    """Run the graph with Network and compare every record and obs["out"] with the loop."""
    net = build_network(graph)
    record = records_of(graph)
    obs = net.run(graph.inputs if graph.inputs else None, steps=None if graph.inputs else graph.steps,
                  sampling_steps=graph.sampling_steps, record_vars=record, output=graph.output)
    want = reference_run(graph)
    rows = graph.steps // graph.sampling_steps
    for key in record:
        assert obs[key].shape == (rows, graph.node(key[0]).n), (key, obs[key].shape)
        assert_close(obs[key], want[key], RTOL, f"{graph!r} {key}")
    out = graph.node(graph.output)
    assert_close(obs["out"], want[(out.label, out.out_var)], RTOL, f"{graph!r} out")


def finish(graph: Graph, rng: np.random.Generator) -> Graph:
    """Inputs for every free node and some nodes fed by edges (they add up), and the output node
    (the last one unless set)."""
    graph.inputs = {node.label: rng.standard_normal((graph.steps, node.n)) for node in graph.nodes
                    if graph.free(node) or rng.random() < 0.3}
    graph.output = graph.output or graph.nodes[-1].label
    return graph


def diffeq(label, n, rng, output_var="li_op/v", recurrent=False) -> Node:
    return Node(label, "diffeq", n, output_var=output_var, tau=float(rng.uniform(1.0, 10.0)),
                k=float(rng.uniform(0.5, 1.5)), eta=float(rng.uniform(-0.5, 0.5)), v0=rng.standard_normal(n),
                J=rng.standard_normal((n, n)) / n if recurrent else None)


def weights(rng, n_target, n_source):
    return rng.standard_normal((n_target, n_source)) / np.sqrt(n_source)


# --- the random graphs -------------------------------------------------------------------------

@st.composite
def graphs(draw):
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    count = draw(st.integers(1, 5))
    nodes = []
    for i in range(count):
        n = draw(st.integers(1, 4))
        if draw(st.booleans()):
            nodes.append(diffeq(f"n{i}", n, rng, draw(st.sampled_from(["li_op/v", "tanh_op/r"])),
                                recurrent=draw(st.booleans())))
        else:
            nodes.append(Node(f"n{i}", "func", n, activation=draw(st.sampled_from(sorted(ACTIVATIONS)))))
    pairs = [(a, b) for a in nodes for b in nodes
             if not (a.kind == b.kind == "func" and nodes.index(a) >= nodes.index(b))]  # no loops of functions
    chosen = draw(st.lists(st.sampled_from(pairs), unique_by=lambda p: (p[0].label, p[1].label), max_size=7)) \
        if pairs else []
    edges = []
    for source, target in chosen:
        source_var = draw(st.sampled_from([None, "li_op/v", "tanh_op/r"])) if source.kind == "diffeq" else None
        target_var = draw(st.sampled_from([None, "li_op/r_in"])) if target.kind == "diffeq" else None
        if source.n == target.n and draw(st.booleans()):
            w = float(rng.uniform(-1.0, 1.0))   # c * identity
        else:
            w = weights(rng, target.n, source.n)
        edges.append(Edge(source.label, target.label, w, source_var, target_var))
    steps = draw(st.integers(1, 16))
    graph = Graph(nodes, edges, method=draw(st.sampled_from(METHODS)), dt=0.05, steps=steps,
                  sampling_steps=draw(st.integers(1, min(3, steps))),
                  output=draw(st.sampled_from([n.label for n in nodes])))
    return finish(graph, rng)


# Every example compiles a network of its own (~50 ms): a session runs 50 and does not shrink a
# failure (shrinking takes minutes; the failing graph is printed as it was drawn); a long run
# (MODELC_FUZZ_EXAMPLES, `pytest -m fuzz`) shrinks.
_PHASES = tuple(Phase) if _LONG else (Phase.explicit, Phase.reuse, Phase.generate)


@pytest.mark.fuzz
@pytest.mark.filterwarnings("ignore:sampling_steps=.* does not divide")  # the rows compared are the whole windows
@settings(max_examples=_LONG or 50, deadline=None, derandomize=not _LONG, database=None, phases=_PHASES,
          report_multiple_bugs=False, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(graphs())
def test_random_graphs_match_the_hand_written_loop(graph):
    check(graph)


# --- named shapes, each on its own --------------------------------------------------------------

def _named(shape: str) -> Graph:
    rng = np.random.default_rng(len(shape))
    if shape == "chain":            # input layer -> A -> B -> readout
        nodes = [Node("inp", "func", 2, activation="identity"), diffeq("A", 3, rng), diffeq("B", 4, rng, "tanh_op/r"),
                 Node("out", "func", 2, activation="softmax")]
        edges = [Edge("inp", "A", weights(rng, 3, 2)), Edge("A", "B", weights(rng, 4, 3)),
                 Edge("B", "out", weights(rng, 2, 4))]
    elif shape == "fan_in":         # three sources into one diffeq node, one of them into r_in
        nodes = [Node("a", "func", 2, activation="relu"), diffeq("B", 3, rng), Node("c", "func", 3, activation="sigmoid"),
                 diffeq("D", 3, rng, recurrent=True)]
        edges = [Edge("a", "D", weights(rng, 3, 2)), Edge("B", "D", 0.7), Edge("c", "D", weights(rng, 3, 3),
                                                                               target_var="li_op/r_in")]
    elif shape == "cycle":          # A -> B -> C -> A, all diffeq, and a self-loop on B
        nodes = [diffeq("A", 2, rng), diffeq("B", 3, rng, "tanh_op/r"), diffeq("C", 2, rng)]
        edges = [Edge("A", "B", weights(rng, 3, 2)), Edge("B", "C", weights(rng, 2, 3)),
                 Edge("C", "A", weights(rng, 2, 2)), Edge("B", "B", -0.5, source_var="li_op/v")]
    elif shape == "func_between":   # issue 11: input -> A (diffeq) -> R (tanh) -> B (diffeq)
        nodes = [diffeq("A", 3, rng), Node("R", "func", 2, activation="tanh"), diffeq("B", 3, rng)]
        edges = [Edge("A", "R", weights(rng, 2, 3)), Edge("R", "B", weights(rng, 3, 2))]
    elif shape == "feedback":       # issue 11: a readout fed back into the node it reads
        nodes = [diffeq("A", 3, rng), Node("R", "func", 2, activation="tanh")]
        edges = [Edge("A", "R", weights(rng, 2, 3)), Edge("R", "A", weights(rng, 3, 2))]
    else:
        raise ValueError(shape)
    return finish(Graph(nodes, edges, method="rk4", steps=20, sampling_steps=2), rng)


@pytest.mark.parametrize("shape", ["chain", "fan_in", "cycle", "func_between", "feedback"])
def test_graph_shapes(shape):
    check(_named(shape))


# --- issue 11's exact case, as a plain regression test -------------------------------------------

def test_function_node_between_two_ode_nodes_runs():
    """input -> A (diffeq) -> add_func_node("R", 2, "tanh") -> B (diffeq), and the readout R fed
    back into A: both failed with NameError: name 'acc_0_' is not defined."""
    rng = np.random.default_rng(11)
    T, dt = 50, 0.01
    W_RA, W_BR, W_AR = rng.standard_normal((2, 3)), rng.standard_normal((3, 2)), rng.standard_normal((3, 2))
    u = rng.standard_normal((T, 3))

    net = Network(dt=dt)
    net.add_diffeq_node("A", SEED, N=3, input_var="li_op/I_ext", output_var="li_op/v")
    net.add_func_node("R", 2, "tanh")
    net.add_diffeq_node("B", SEED, N=3, input_var="li_op/I_ext", output_var="li_op/v")
    net.add_edge("A", "R", W_RA)
    net.add_edge("R", "B", W_BR)
    obs = net.run(inputs=u, record_vars=[("R", "tanh/y"), ("A", "li_op/v")])
    a, b, out, readout = np.zeros(3), np.zeros(3), [], []
    for k in range(T):                      # Euler, the default; tau = 10, k = 1, eta = 0
        a, b = a + dt * (-a / 10 + u[k]), b + dt * (-b / 10 + W_BR @ np.tanh(W_RA @ a))
        out.append(b)
        readout.append(np.tanh(W_RA @ a))
    assert_close(obs["out"], np.array(out), RTOL, "A -> R -> B: out (B)")
    assert_close(obs[("R", "tanh/y")], np.array(readout), RTOL, "A -> R -> B: readout R")

    net = Network(dt=dt)
    net.add_diffeq_node("A", SEED, N=3, input_var="li_op/I_ext", output_var="li_op/v", node_vars={"li_op/v": 0.5})
    net.add_func_node("R", 2, "tanh")
    net.add_edge("A", "R", W_RA)
    net.add_edge("R", "A", W_AR, feedback=True)
    obs = net.run(steps=T, record_vars=[("A", "li_op/v")])
    a, rows, states = np.full(3, 0.5), [], []
    for k in range(T):
        a = a + dt * (-a / 10 + W_AR @ np.tanh(W_RA @ a))
        rows.append(np.tanh(W_RA @ a))
        states.append(a)
    assert_close(obs["out"], np.array(rows), RTOL, "A <-> R: out (the readout R)")
    assert_close(obs[("A", "li_op/v")], np.array(states), RTOL, "A <-> R: A's state")


def test_a_loop_of_function_nodes_alone_is_an_error():
    """f -> g -> f with no state in between has no value: a clear ModelcError naming the cycle."""
    net = Network(dt=0.1)
    net.add_diffeq_node("A", SEED, N=2, input_var="li_op/I_ext", output_var="li_op/v")
    net.add_func_node("f", 2, "tanh")
    net.add_func_node("g", 2, "relu")
    net.add_edge("A", "f", np.eye(2))
    net.add_edge("f", "g", np.eye(2))
    net.add_edge("g", "f", np.eye(2))
    with pytest.raises(ModelcError, match="cycle"):
        net.run(steps=3, output="g")
