"""Tests of the IR stage (modelc/ir.py): what a System holds for a template, a circuit or a network.

The numbers a System computes are checked in tests/test_compiler.py and tests/test_models.py;
here: its names, states, parameters, inputs, the order of its algebraic definitions, its
couplings, and what inheritance edits leave in it.
"""
from __future__ import annotations

import textwrap

import pytest
import sympy

from modelc.equations import symbol
from modelc.errors import AlgebraicCycleError, EquationSyntaxError, TemplateFormatError
from modelc.ir import Connection, MatVec, build_network, build_system
from modelc.spec import Library, load

SEED = "neuron_model_templates.rate_neurons.leaky_integrator.tanh"


def _library(tmp_path, text: str) -> Library:
    (tmp_path / "m.yaml").write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return Library([tmp_path])


def s(name: str) -> sympy.Symbol:
    return symbol(name)


# --- one node -------------------------------------------------------------------------------

def test_the_seed_node_as_a_system():
    system = build_system(load(SEED))
    assert system.name == SEED
    assert {n: st.init for n, st in system.states.items()} == {"li_op/v": 0.0}
    assert {n: (p.default, p.shape) for n, p in system.params.items()} == {
        "li_op/tau": (10.0, "scalar"), "li_op/k": (1.0, "scalar"), "li_op/eta": (0.0, "scalar")}
    assert list(system.inputs) == ["li_op/r_in", "li_op/I_ext"]
    assert system.params["li_op/tau"].unit == "time"
    # tanh_op's input v reads li_op's output v (wiring by name inside a node)
    assert system.algebraics == [("tanh_op/v", s("li_op/v")), ("tanh_op/r", sympy.tanh(s("tanh_op/v")))]
    assert system.derivatives == {"li_op/v": -s("li_op/v") / s("li_op/tau") + s("li_op/k") * s("li_op/r_in")
                                  + s("li_op/I_ext") + s("li_op/eta")}
    assert system.populations == {"": ["li_op/v", "li_op/tau", "li_op/k", "li_op/eta", "li_op/r_in",
                                       "li_op/I_ext", "tanh_op/r", "tanh_op/v"]}
    assert system.outputs == ["li_op/v", "tanh_op/v", "tanh_op/r"]
    assert [(prefix, eq.text) for prefix, eq in system.equations] == [
        ("li_op", "v' = -v/tau + k*r_in + I_ext + eta"), ("tanh_op", "r = tanh(v)")]


def test_node_values_override_the_operators_defaults(tmp_path):
    library = _library(tmp_path, """
        o:
          base: OperatorTemplate
          equations: "x' = -x/tau"
          variables: {x: output(1.0), tau: 10.0}
        n:
          base: NodeTemplate
          operators: {o: {tau: 2.0, x: 3.0}}
        """)
    system = build_system(library.get("m.n"))
    assert system.params["o/tau"].default == 2.0 and system.states["o/x"].init == 3.0


def test_algebraic_definitions_come_in_dependency_order(tmp_path):
    library = _library(tmp_path, """
        o:
          base: OperatorTemplate
          equations: ["c = b + a", "x' = c - x", "b = 2*a", "a = x^2"]
          variables: {x: output(0.0), a: variable(0.0), b: variable(0.0), c: variable(0.0)}
        """)
    system = build_system(library.get("m.o"))
    assert [name for name, _ in system.algebraics] == ["o/a", "o/b", "o/c"]
    assert system.derivatives == {"o/x": s("o/c") - s("o/x")}


def test_a_cycle_through_the_wiring_of_a_node_names_every_variable(tmp_path):
    library = _library(tmp_path, """
        f:
          base: OperatorTemplate
          equations: "y = 2*z"
          variables: {y: output(0.0), z: input(0.0)}
        g:
          base: OperatorTemplate
          equations: "z = y + 1"
          variables: {z: output(0.0), y: input(0.0)}
        n:
          base: NodeTemplate
          operators: [f, g]
        """)
    with pytest.raises(AlgebraicCycleError) as info:
        build_system(library.get("m.n"))
    assert info.value.message == "algebraic cycle: f/y -> f/z -> g/z -> g/y -> f/y"


# --- couplings ------------------------------------------------------------------------------

def test_a_matrix_coupling_turns_an_input_into_w_at_source():
    system = build_system(load(SEED), [Connection("tanh_op/r", "li_op/r_in", "weights")], vector_params=["li_op/tau"])
    weights = system.params["weights"]
    assert (weights.default, weights.shape) == (None, "matrix")
    assert system.params["li_op/tau"].shape == "vector"
    assert list(system.inputs) == ["li_op/I_ext"]
    assert dict(system.algebraics)["li_op/r_in"] == MatVec(s("weights"), s("tanh_op/r"))
    assert [name for name, _ in system.algebraics].index("li_op/r_in") > \
        [name for name, _ in system.algebraics].index("tanh_op/r")


CIRCUIT = """
    o:
      base: OperatorTemplate
      equations: "x' = -x + u"
      variables: {x: output(0.0), u: input(0.0)}
    n:
      base: NodeTemplate
      operators: [o]
    c:
      base: CircuitTemplate
      nodes: {a: n, b: n}
      edges:
        - [a/o/x, b/o/u, null, {weight: 2.0}]
        - [b/o/x, b/o/u, null, {weight: -1.5}]
    """


def test_circuit_edges_sum_into_their_target_and_names_carry_the_node_label(tmp_path):
    system = build_system(_library(tmp_path, CIRCUIT).get("m.c"))
    assert list(system.states) == ["a/o/x", "b/o/x"]
    assert list(system.inputs) == ["a/o/u"]
    assert dict(system.algebraics) == {"b/o/u": 2.0 * s("a/o/x") - 1.5 * s("b/o/x")}
    assert system.populations == {"a": ["a/o/x", "a/o/u"], "b": ["b/o/x", "b/o/u"]}
    assert [prefix for prefix, _ in system.equations] == ["a/o", "b/o"]


def test_a_network_of_labelled_populations_and_matrix_connections(tmp_path):
    node = _library(tmp_path, CIRCUIT).get("m.n")
    system = build_network({"p": node, "q": node}, [Connection("p/o/x", "q/o/u", "p_to_q_weights")], name="net")
    assert system.name == "net"
    assert list(system.inputs) == ["p/o/u"]
    assert dict(system.algebraics) == {"q/o/u": MatVec(s("p_to_q_weights"), s("p/o/x"))}
    assert system.params["p_to_q_weights"].shape == "matrix"


# --- what inheritance edits leave -----------------------------------------------------------

def test_the_shown_equations_are_the_edited_ones():
    system = build_system(load("model_templates.neural_mass_models.qif.qif_sfa"))
    texts = dict((eq.target, eq.text) for _, eq in system.equations)
    assert texts["v"] == "v' = (I_ext + J*r*tau - a + eta - pi^2*r^2*tau^2 + r_in*tau + v^2)/tau"
    assert texts["r"] == "r' = (Delta/(pi*tau) + 2*r*v)/tau"  # unedited: as the file writes it
    assert texts["a"] == "a' = x_a/tau_a"


EDITED_PRO = """
    pro:
      base: OperatorTemplate
      equations: "m_out = m_max/(1 + exp(s*(r_thr - r)))"
      variables: {m_out: output(0.0), m_max: 5.0, s: 0.56, r_thr: 6.0, r: input(0.0)}
    pro_v:
      base: pro
      equations: {replace: {r_thr: v_thr, r: v}}
      variables: {v_thr: 6.0, v: input(0.0)}
    syn:
      base: OperatorTemplate
      equations: "v' = -v + m_in"
      variables: {v: output(0.0), m_in: input(0.0)}
    pc:
      base: NodeTemplate
      operators: [pro_v]
    pair:
      base: NodeTemplate
      operators: [syn, pro_v]
    """


def test_parameters_and_free_inputs_no_equation_reads_after_an_edit_are_dropped(tmp_path):
    system = build_system(_library(tmp_path, EDITED_PRO).get("m.pc"))
    assert list(system.params) == ["pro_v/m_max", "pro_v/s", "pro_v/v_thr"]
    assert list(system.inputs) == ["pro_v/v"]
    assert system.populations == {"": ["pro_v/m_out", "pro_v/m_max", "pro_v/s", "pro_v/v_thr", "pro_v/v"]}
    with pytest.raises(TemplateFormatError) as info:
        build_system(_library(tmp_path, EDITED_PRO).get("m.pc"), vector_params=["pro_v/r_thr"])
    assert info.value.message == "'pro_v/r_thr' is read by no equation of m.pc; it has no value to set"


def test_wired_inputs_and_outputs_nothing_reads_stay(tmp_path):
    library = _library(tmp_path, EDITED_PRO + """
    c:
      base: CircuitTemplate
      nodes: {a: pair, b: pair}
      edges: [[a/pro_v/m_out, b/syn/m_in, null], [b/pro_v/m_out, a/pro_v/r, null]]
    """)
    system = build_system(library.get("m.c"))
    # a/pro_v/r is fed by an edge: computed (and recordable), though no equation reads it
    assert dict(system.algebraics)["a/pro_v/r"] == 1.0 * s("b/pro_v/m_out")
    assert "a/pro_v/m_out" in system.outputs and "b/pro_v/m_out" in system.outputs
    assert list(system.inputs) == ["a/syn/m_in"]  # b/pro_v/r and both r_thr are read by nothing
    assert "a/pro_v/r_thr" not in system.params and "b/pro_v/r_thr" not in system.params


# --- constants put in (what code generation does with a computed variable that is a number) ----

def test_a_computed_constant_put_into_the_equations_that_read_it_must_stay_defined(tmp_path):
    library = _library(tmp_path, """
        fine:
          base: OperatorTemplate
          equations: ["y = 2", "z = y + 1", "x' = -x/z + where(y > 1, 1, 1/(y - 2))"]
          variables: {x: output(0.0), y: variable(0.0), z: variable(0.0)}
        bad:
          base: OperatorTemplate
          equations: ["y = 2", "z = y - 2", "x' = -x + 1/z"]
          variables: {x: output(0.0), y: variable(0.0), z: variable(0.0)}
        """)
    fine = build_system(library.get("m.fine"))  # 1/(y - 2) with y = 2 is in a branch never taken
    assert fine.derivatives["fine/x"].has(s("fine/y"))  # checked, not changed: code generation puts it in
    with pytest.raises(EquationSyntaxError) as info:
        build_system(library.get("m.bad"))
    assert info.value.message == ("the equation of 'bad/x' with bad/z = 0: "
                                  "this part of the expression is infinite, undefined or imaginary")
    assert (info.value.location.line, info.value.location.column) == (7, 38)  # the x of x'
