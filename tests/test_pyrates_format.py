"""PyRates' template format, as PyRates users write it: our own small files in that format
(PyRates is GPL; its own templates are checked by tests/test_pyrates_templates.py where it is
installed). Trajectories are compared with Euler loops written by hand in this file.
"""
from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import sympy

from modelc import compile_model
from modelc.cli import main
from modelc.equations import parse_equation
from modelc.errors import (EditTargetError, ErrorGroup, InheritanceCycleError, TemplateFormatError,
                           UndefinedSymbolError, UnsupportedFeatureError, WiringError)
from modelc.runtime.compiler import compile_source
from modelc.ir import build_system
from modelc.spec import EdgeTemplate, Library, parse_value

# Oscillators coupled through an edge operator that reads both ends (Kuramoto's sin(theta_s - theta_t)),
# a rate pair whose edges depress (an edge operator with a state), and circuits made of circuits.
MODELS = """
aliases:
  - &coupling sin_coupling
  - &synapse depressing

phase:
  base: OperatorTemplate
  equations: "theta' = omega + c_in"
  variables: {theta: output(0.0), omega: 1.0, c_in: input(0.0)}

osc:
  base: NodeTemplate
  operators: phase

diff_sin:
  base: OperatorTemplate
  equations: "c = k*sin(a - b)"
  variables: {c: output(0.0), a: input(0.0), b: input(0.0), k: 1.0}

sin_coupling:
  base: EdgeTemplate
  operators: [diff_sin]

pair:
  base: CircuitTemplate
  nodes: {p1: osc, p2: osc}
  edges:
    - [p1/phase/theta, p2/phase/c_in, *coupling, {weight: 0.7, sin_coupling/diff_sin/a: source,
                                                  sin_coupling/diff_sin/b: p2/phase/theta}]
    - [p2/phase/theta, p1/phase/c_in, sin_coupling, {weight: 0.3, diff_sin/a: source, diff_sin/b: p1/phase/theta,
                                                     diff_sin/k: 2.0}]

two_pairs:
  base: CircuitTemplate
  circuits: {left: pair, right: pair}
  edges:
    - [left/p1/phase/theta, right/p1/phase/c_in, null, {weight: 0.5}]

rate:
  base: OperatorTemplate
  equations: "r' = (-r + sigmoid(r_in + I_ext))/tau"
  variables: {r: output(0.1), tau: 2.0, r_in: input(0.0), I_ext: input(0.0)}

rate_node:
  base: NodeTemplate
  operators: [rate]

depress:
  base: OperatorTemplate
  equations: ["x' = (1 - x)/tau_x - k*x*r_pre", "r_eff = r_pre*x"]
  variables: {r_eff: output(0.0), x: variable(1.0), tau_x: 5.0, k: 0.5, r_pre: input(0.0)}

depressing:
  base: EdgeTemplate
  operators: depress

loop:
  base: CircuitTemplate
  nodes: {e: rate_node, i: rate_node}
  edges:
    - [e/rate/r, i/rate/r_in, *synapse, {weight: 2.0}]
    - [i/rate/r, e/rate/r_in, null, {weight: -1.5}]
    - [e/rate/r, e/rate/r_in, depressing, {weight: 1.2, depressing/depress/k: 2.0}]

plain:
  base: EdgeTemplate
  operators: []

plain_loop:
  base: CircuitTemplate
  nodes: {e: rate_node}
  edges:
    - [e/rate/r, e/rate/r_in, plain, {weight: 1.2}]
"""


def _write(folder: Path, text: str, name: str = "models.yaml") -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    return _write(tmp_path_factory.mktemp("pyrates_format"), MODELS)


def _euler(rate, y0, dt, steps):
    """Rows k = the state after step k + 1."""
    y, rows = np.array(y0, dtype=complex if any(isinstance(v, complex) for v in y0) else float), []
    for _ in range(steps):
        y = y + dt * rate(y)
        rows.append(y)
    return np.array(rows)


# --- equations and operators ----------------------------------------------------------------------

def test_PI_is_pi_as_PyRates_writes_it():
    eq = parse_equation("r' = Delta/(PI*tau)")
    assert eq.rhs.has(sympy.pi) and {s.name for s in eq.rhs.free_symbols} == {"Delta", "tau"}


def test_an_equation_defines_its_variable_without_a_declaration(tmp_path):
    path = _write(tmp_path, """
        m:
          base: OperatorTemplate
          equations: ["m_inf = 1/(1 + exp(-v))", "v' = -v + m_inf + I", "w' = v"]
          variables: {v: output(0.5), I: input(0.0)}
        """)
    system = build_system(Library([]).get(f"{path}:m"))
    assert dict(system.algebraics).keys() == {"m/m_inf"}  # an intermediate
    assert system.states["m/w"].init == 0.0  # a state not in variables: starts at 0
    mod = compile_model(f"{path}:m")
    got = mod.run(mod.initial_state(1), {}, {}, 0.1, 3, record=["m/v", "m/w"])
    want = _euler(lambda y: np.array([-y[0] + 1 / (1 + np.exp(-y[0])), y[0]]), [0.5, 0.0], 0.1, 3)
    np.testing.assert_allclose(np.column_stack([got["m/v"][:, 0], got["m/w"][:, 0]]), want, rtol=0, atol=1e-15)


def test_every_undefined_symbol_of_an_operator_is_reported(tmp_path, capsys):
    path = _write(tmp_path, """
        m:
          base: OperatorTemplate
          equations: ["x' = -x + q", "y = w*x + q"]
          variables: {x: output(0.0)}
        """)
    with pytest.raises(ErrorGroup) as info:
        build_system(Library([]).get(f"{path}:m"))
    assert [(type(e), e.message) for e in info.value.errors] == [
        (UndefinedSymbolError, "undefined symbol 'q' in operator 'm'"),
        (UndefinedSymbolError, "undefined symbol 'w' in operator 'm'")]
    assert main(["check", str(path)]) != 0
    err = capsys.readouterr().err
    assert "undefined symbol 'q'" in err and "undefined symbol 'w'" in err


@pytest.mark.parametrize("edit, column", [("replace: {eta: eta - a}", 19), ("remove: [eta]", 19)])
def test_an_edit_of_what_the_parent_lacks_points_at_the_edit(tmp_path, edit, column):
    path = _write(tmp_path, f"""
        p:
          base: OperatorTemplate
          equations: "v' = -v + I"
          variables: {{v: output(0.0), I: input(0.0)}}
        m:
          base: p
          equations: {{{edit}}}
          variables: {{a: 1.0}}
        """)
    with pytest.raises(EditTargetError) as info:
        build_system(Library([]).get(f"{path}:m"))
    assert "'eta' to" in info.value.message and "is not in the equations of the parent" in info.value.message
    assert info.value.location.line == 7 and info.value.location.source_line.strip().startswith("equations:")
    assert info.value.location.source_line[info.value.location.column - 1:].startswith("eta")


def test_a_top_level_aliases_list_is_no_template(models):
    library = Library([])
    assert "aliases" not in library.load_file(models)
    assert main(["check", str(models)]) == 0


def test_operators_given_as_one_name(models):
    node = Library([]).get(f"{models}:osc")
    assert [use.operator.name for use in node.operators] == ["phase"]


# --- edge templates -------------------------------------------------------------------------------

def test_an_edge_operator_reading_both_ends_matches_a_hand_loop(models):
    mod = compile_model(f"{models}:pair")
    assert set(mod.initial_state(1)) == {"p1/phase/theta", "p2/phase/theta"}
    dt, steps, w2 = 0.01, 300, 2.5
    y0 = {"p1/phase/theta": np.array([0.3]), "p2/phase/theta": np.array([-0.4])}
    got = mod.run(y0, {"p2/phase/omega": w2}, {}, dt, steps)

    def rate(y):  # edge p1 -> p2: 0.7*1*sin(th1 - th2); edge p2 -> p1: 0.3*2*sin(th2 - th1)
        return np.array([1.0 + 0.6 * np.sin(y[1] - y[0]), w2 + 0.7 * np.sin(y[0] - y[1])])
    want = _euler(rate, [0.3, -0.4], dt, steps)
    np.testing.assert_allclose(got["p1/phase/theta"][:, 0], want[:, 0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(got["p2/phase/theta"][:, 0], want[:, 1], rtol=0, atol=1e-12)
    # each edge is a population of its own, its values set by the edge row (recorded after the step)
    out = mod.run(y0, {"p2/phase/omega": w2}, {}, dt, 1, record=["sin_coupling/diff_sin/c",
                                                                   "sin_coupling_2/diff_sin/c"])
    th1, th2 = want[0]
    assert out["sin_coupling/diff_sin/c"][0, 0] == pytest.approx(np.sin(th1 - th2), abs=1e-15)
    assert out["sin_coupling_2/diff_sin/c"][0, 0] == pytest.approx(2 * np.sin(th2 - th1), abs=1e-15)


def test_an_edge_operator_with_a_state_matches_a_hand_loop(models):
    mod = compile_model(f"{models}:loop")
    assert set(mod.initial_state(1)) == {"e/rate/r", "i/rate/r", "depressing/depress/x", "depressing_2/depress/x"}
    dt, steps = 0.05, 400

    def rate(y):
        re, ri, x1, x2 = y
        sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
        return np.array([(-re + sig(-1.5 * ri + 1.2 * re * x2 + 0.5)) / 2, (-ri + sig(2.0 * re * x1)) / 2,
                         (1 - x1) / 5 - 0.5 * x1 * re, (1 - x2) / 5 - 2.0 * x2 * re])
    want = _euler(rate, [0.1, 0.1, 1.0, 1.0], dt, steps)
    got = mod.run(mod.initial_state(1), {}, {"e/rate/I_ext": 0.5}, dt, steps)
    names = ["e/rate/r", "i/rate/r", "depressing/depress/x", "depressing_2/depress/x"]
    np.testing.assert_allclose(np.column_stack([got[n][:, 0] for n in names]), want, rtol=0, atol=1e-12)
    assert want[-1, 3] < 0.9  # the synapse did depress


def test_an_edge_template_without_operators_is_a_plain_edge(models):
    system = build_system(Library([]).get(f"{models}:plain_loop"))
    assert list(system.populations) == ["e"]
    assert str(dict(system.algebraics)["e/rate/r_in"]) == "1.2*e/rate/r"


def test_an_edge_template_alone_is_not_a_model(models):
    template = Library([]).get(f"{models}:sin_coupling")
    assert isinstance(template, EdgeTemplate)
    with pytest.raises(TemplateFormatError, match="is an edge template"):
        build_system(template)


@pytest.mark.parametrize("attrs, error, message", [
    ("{sin_coupling/diff_sin/c: source}", TemplateFormatError, "it is not declared input"),
    ("{sin_coupling/diff_sin/q: 1.0}", TemplateFormatError, "has no variable 'sin_coupling/diff_sin/q'"),
    ("{weight: 1.0}", WiringError, "has 2 inputs that could read the source (diff_sin/a, diff_sin/b)"),
    ("{sin_coupling/diff_sin/a: source, sin_coupling/diff_sin/b: p9/phase/theta}", WiringError,
     "edge source 'p9/phase/theta' is not a variable"),
])
def test_bad_edge_rows_are_located_errors(tmp_path, models, attrs, error, message):
    path = _write(tmp_path, f"""
        bad:
          base: CircuitTemplate
          nodes: {{p1: {models}:osc, p2: {models}:osc}}
          edges:
            - [p1/phase/theta, p2/phase/c_in, {models}:sin_coupling, {attrs}]
        """)
    with pytest.raises(error) as info:
        build_system(Library([]).get(f"{path}:bad"))
    assert message in info.value.message
    assert info.value.location.line == 5


# --- circuits of circuits -------------------------------------------------------------------------

def test_circuits_of_circuits_name_their_parts_by_path_and_match_a_hand_loop(models):
    system = build_system(Library([]).get(f"{models}:two_pairs"))
    assert list(system.populations) == ["left/p1", "left/p2", "right/p1", "right/p2", "left/sin_coupling",
                                        "left/sin_coupling_2", "right/sin_coupling", "right/sin_coupling_2"]
    mod = compile_model(f"{models}:two_pairs")
    dt, steps = 0.01, 200
    y0 = dict(zip(["left/p1/phase/theta", "left/p2/phase/theta", "right/p1/phase/theta", "right/p2/phase/theta"],
                  [0.3, -0.4, 1.0, 2.0]))
    got = mod.run({k: np.array([v]) for k, v in y0.items()}, {"right/p2/phase/omega": 3.0}, {}, dt, steps)

    def rate(y):
        l1, l2, r1, r2 = y
        return np.array([1.0 + 0.6 * np.sin(l2 - l1), 1.0 + 0.7 * np.sin(l1 - l2),
                         1.0 + 0.6 * np.sin(r2 - r1) + 0.5 * l1, 3.0 + 0.7 * np.sin(r1 - r2)])
    want = _euler(rate, list(y0.values()), dt, steps)
    np.testing.assert_allclose(np.column_stack([got[n][:, 0] for n in y0]), want, rtol=0, atol=1e-12)


def test_a_label_may_not_name_both_a_node_and_a_circuit(tmp_path, models):
    path = _write(tmp_path, f"""
        bad:
          base: CircuitTemplate
          nodes: {{left: {models}:osc}}
          circuits: {{left: {models}:pair}}
        """)
    with pytest.raises(Exception, match="labels both a node and a circuit"):
        Library([]).get(f"{path}:bad")


# --- complex numbers ------------------------------------------------------------------------------

COMPLEX = """
landau:
  base: OperatorTemplate
  equations:
    - "z' = (lam + i*omega)*z - absv(z)^2*z + u"
    - "r = absv(z)"
    - "phi = angle(z)"
    - "x = real(z)"
    - "y = imag(z)"
    - "w = conj(z)"
  variables: {z: output(0.5+0.2j), i: 0.0+1.0j, lam: 1.0, omega: 3.0, u: input(0.0), r: output, phi: output,
              x: output, y: output, w: variable(complex)}

mean_field:
  base: OperatorTemplate
  equations: "z' = (i*omega - Delta)*z + (s_in - conj(s_in)*z^2)/2"
  variables: {z: output(0.3-0.1j), i: 1j, omega: 2.0, Delta: 0.5, s_in: input(complex)}

mean_field_node:
  base: NodeTemplate
  operators: [mean_field]

coupled:
  base: CircuitTemplate
  nodes: {a: mean_field_node}
  edges:
    - [a/mean_field/z, a/mean_field/s_in, null, {weight: 1.5}]
"""


@pytest.fixture(scope="module")
def complex_models(tmp_path_factory) -> Path:
    return _write(tmp_path_factory.mktemp("pyrates_complex"), COMPLEX)


@pytest.mark.parametrize("text, value", [("variable(-0.6-0.8j)", -0.6 - 0.8j), ("output(0.5+0.1j)", 0.5 + 0.1j),
                                         ("0.0+1.0j", 1j), ("1j", 1j), ("input(complex)", 0j),
                                         ("variable(complex)", 0j), ("variable(2.5)", 2.5)])
def test_complex_values_are_read_as_PyRates_writes_them(text, value):
    parsed = parse_value(text, None, "z")[1]
    assert parsed == value and isinstance(parsed, complex) == isinstance(value, complex)


def test_complex_functions_keep_their_meaning_for_complex_variables():
    eq = parse_equation("y = conj(z) + real(z) + imag(z) + angle(z) + absv(z)^2", complex_names={"z"})
    z = sympy.Symbol("z", complex=True)
    assert eq.rhs == sympy.conjugate(z) + sympy.re(z) + sympy.im(z) + sympy.arg(z) + sympy.Abs(z) ** 2
    assert parse_equation("y = conj(x) + imag(x)").rhs == sympy.Symbol("x", real=True)  # a real x


def test_a_complex_oscillator_matches_a_hand_loop(complex_models):
    mod = compile_model(f"{complex_models}:landau")
    dt, steps = 0.01, 300
    got = mod.run(mod.initial_state(1), {}, {"landau/u": 0.1}, dt, steps,
                  record=["landau/z", "landau/r", "landau/phi", "landau/x", "landau/y", "landau/w"])
    want = _euler(lambda z: (1.0 + 3.0j) * z - abs(z) ** 2 * z + 0.1, [0.5 + 0.2j], dt, steps)[:, 0]
    np.testing.assert_allclose(got["landau/z"][:, 0], want, rtol=0, atol=1e-13)
    for name, part in [("r", np.abs), ("phi", np.angle), ("x", np.real), ("y", np.imag), ("w", np.conj)]:
        np.testing.assert_allclose(got[f"landau/{name}"][:, 0], part(want), rtol=0, atol=1e-13)
    assert abs(want[-1]) == pytest.approx(1.0, abs=0.1)  # on its limit cycle: something happened


def test_a_complex_input_fed_by_an_edge_matches_a_hand_loop(complex_models):
    mod = compile_model(f"{complex_models}:coupled")
    dt, steps = 0.01, 400
    got = mod.run(mod.initial_state(1), {}, {}, dt, steps)["a/mean_field/z"][:, 0]

    def rate(z):
        s = 1.5 * z
        return (2.0j - 0.5) * z + (s - np.conj(s) * z ** 2) / 2
    np.testing.assert_allclose(got, _euler(rate, [0.3 - 0.1j], dt, steps)[:, 0], rtol=0, atol=1e-13)


@pytest.mark.parametrize("options, message", [({"backend": "cupy"}, "need backend='numpy'"),
                                              ({"trainable": ["landau/lam"]}, "and no trainable parameters")])
def test_complex_models_where_a_backend_cannot_compute_them_are_an_error(complex_models, options, message):
    with pytest.raises(UnsupportedFeatureError, match=message):
        compile_source(f"{complex_models}:landau", **options)


def test_the_angle_of_a_real_variable_is_0_or_pi_on_one_unit_and_on_arrays(tmp_path):
    path = _write(tmp_path, """
        m:
          base: OperatorTemplate
          equations: "x' = angle(x - 1) - x/2"
          variables: {x: output(0.5)}
        """)
    mod = compile_model(f"{path}:m")
    assert mod.DTYPE == np.float64
    want = _euler(lambda y: np.where(y < 1, np.pi, 0.0) - y / 2, [0.5, 3.0], 0.1, 50)  # two units
    one = mod.run(mod.initial_state(1), {}, {}, 0.1, 50)["m/x"][:, 0]  # Python floats
    both = mod.run({"m/x": np.array([0.5, 3.0])}, {}, {}, 0.1, 50)["m/x"]  # arrays
    np.testing.assert_allclose(one, want[:, 0], rtol=0, atol=1e-13)
    np.testing.assert_allclose(both, want, rtol=0, atol=1e-13)


def test_a_complex_value_for_a_variable_declared_real_is_an_error(tmp_path, complex_models):
    path = _write(tmp_path, f"""
        n:
          base: NodeTemplate
          operators: {{{complex_models}:landau: {{lam: 1.0+2.0j}}}}
        """)
    with pytest.raises(TemplateFormatError) as info:
        Library([]).get(f"{path}:n")
    assert info.value.message == "complex value '1.0+2.0j' for 'lam', which 'landau' declares real"


def test_complex_noise_is_an_error(tmp_path):
    path = _write(tmp_path, """
        m:
          base: OperatorTemplate
          equations: "z' = -z + xi"
          variables: {z: output(1j)}
        """)
    with pytest.raises(UnsupportedFeatureError, match="and no noise"):
        compile_source(f"{path}:m")


def test_a_circuit_inside_itself_is_a_cycle(tmp_path, models):
    path = _write(tmp_path, f"""
        a:
          base: CircuitTemplate
          nodes: {{p: {models}:osc}}
          circuits: {{inner: b}}
        b:
          base: CircuitTemplate
          circuits: {{again: a}}
        """)
    with pytest.raises(InheritanceCycleError, match="contain each other in a cycle: a -> b -> a"):
        Library([]).get(f"{path}:a")


def test_a_complex_node_runs_in_a_network(complex_models):
    from modelc import Network
    net = Network(dt=0.01)
    net.add_diffeq_node("m", f"{complex_models}:mean_field_node", weights=np.array([[1.5]]),
                        source_var="mean_field/z", target_var="mean_field/s_in", output_var="mean_field/z")
    got = net.run(steps=100)["out"][:, 0]

    def rate(z):
        return (2.0j - 0.5) * z + (1.5 * z - np.conj(1.5 * z) * z ** 2) / 2
    np.testing.assert_allclose(got, _euler(rate, [0.3 - 0.1j], 0.01, 100)[:, 0], rtol=0, atol=1e-13)
