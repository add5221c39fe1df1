"""The step program (modelc/codegen/step.py) and the NumPy backend's translation of it.

Unit tests of the statements a scheme produces, any Butcher tableau (rows of zeros included)
against a hand-written loop of the same tableau, and the generated code's hygiene: every name a
generated function uses is declared by its template or handed out by the Namer, and no
function binds a name it never reads.
"""
from __future__ import annotations

import ast
import builtins
import math
from fractions import Fraction as F

import numpy as np
import pytest

from modelc.codegen.generate import generate
from modelc.codegen.numpy import module_context
from modelc.codegen.numpy.arrays import TEMPLATES
from modelc.codegen.options import METHODS
from modelc.codegen.plan import make_plan
from modelc.codegen.schemes import ExplicitRungeKutta, get_scheme
from modelc.codegen.step import Combine, Evaluate, Product, Rate, Stage, make_step_program
from modelc.codegen.templating import declared_names, environment
from modelc.errors import UnsupportedFeatureError
from modelc.ir import Connection, build_system
from modelc.spec import load

from generated import load_source

SEED = "neuron_model_templates.rate_neurons.leaky_integrator.tanh"

# x is driven by sin(t) * y (a per-step term that needs each stage's own time), y by an input.
DRIVEN = """
driven:
  base: OperatorTemplate
  equations:
    - "x' = -a*x + sin(t)*y"
    - "y' = -y + u + tanh(x)"
  variables:
    x: output(0.3)
    y: variable(-0.2)
    a: 1.5
    u: input(0.0)
"""

# Every stage starts from the step's own states in stage 2 (a row of zeros), and stage 3's time
# is not the sum of its row: nothing here may be assumed about a tableau but that it is explicit.
ODD = ExplicitRungeKutta("odd", 1, "A made-up three-stage tableau.", a=((), (), (F(1, 4), F(3, 4))),
                         b=(F(1, 2), F(1, 4), F(1, 4)), c=(F(0), F(1, 3), F(1)))


def _system(path=SEED, coupled=True):
    connections = [Connection("tanh_op/r", "li_op/r_in", "weights")] if coupled else []
    return build_system(load(path), connections)


def _kinds(program) -> list[str]:
    return [type(s).__name__ for s in program.statements]


# --- the statements -------------------------------------------------------------------------

def test_euler_folds_dt_into_one_rate_per_state():
    program = make_step_program(make_plan(_system(), get_scheme("euler")))
    assert _kinds(program) == ["Stage", "Evaluate", "Product", "Rate", "Commit", "Record"]
    rate = next(s for s in program.statements if isinstance(s, Rate))
    assert rate.target.role == "new" and rate.products and rate.drive  # x_new = a*x + (dt*k*W) @ r + dt*drive


def test_rk4_stages_combine_as_the_tableau_says():
    program = make_step_program(make_plan(_system(), get_scheme("rk4")))
    stages = [s for s in program.statements if isinstance(s, Stage)]
    assert [s.time for s in stages] == [0, F(1, 2), F(1, 2), 1]
    combines = [s for s in program.statements if isinstance(s, Combine)]
    starts = [[(a, v.stage) for a, v in c.terms] for c in combines if c.target.role == "state"]
    assert starts == [[(F(1, 2), 0)], [(F(1, 2), 1)], [(F(1), 2)]]
    update = next(c for c in combines if c.target.role == "new")
    assert [(b, v.stage) for b, v in update.terms] == [(F(1, 6), 0), (F(1, 3), 1), (F(1, 3), 2), (F(1, 6), 3)]
    assert {v.stage for c in combines for _, v in c.terms} == {0, 1, 2, 3}
    # every rate is computed in its stage before anything reads it
    seen = set()
    for s in program.statements:
        if isinstance(s, Combine):
            assert {v for _, v in s.terms} <= seen
        if isinstance(s, Rate):
            seen.add(s.target)


def test_a_row_of_zeros_starts_the_stage_from_the_step_states():
    program = make_step_program(make_plan(_system(), ODD))
    combine = next(s for s in program.statements if isinstance(s, Combine) and s.target.stage == 1)
    assert combine.terms == () and combine.base.stage == 0


def test_stage_evaluations_come_in_dependency_order(tmp_path):
    """A function node between two populations: the product feeding the function is computed
    before it, and the product reading the function after it (issue 11's acc_0_ NameError)."""
    path = tmp_path / "chain.yaml"
    path.write_text("""
a_op:
  base: OperatorTemplate
  equations: "x' = -x + I + w_in"
  variables: {x: output(0.1), I: input(0.0), w_in: input(0.0)}
f_op:
  base: OperatorTemplate
  equations: "y = tanh(z)"
  variables: {y: output(0.0), z: input(0.0)}
""")
    populations = {"A": load(f"{path}:a_op"), "R": load(f"{path}:f_op"), "B": load(f"{path}:a_op")}
    from modelc.ir import build_network
    system = build_network(populations, [Connection("A/a_op/x", "R/f_op/z", "W1"),
                                         Connection("R/f_op/y", "B/a_op/w_in", "W2")])
    plan = make_plan(system, get_scheme("euler"))
    assert len({c.name for c in plan.couplings}) == 2  # two products, two names
    computed = {n for n, _ in plan.algebraics} | {c.name for c in plan.couplings}
    done = set()
    for s in make_step_program(plan).statements:
        if isinstance(s, (Evaluate, Product)):
            reads = (s.expr if isinstance(s, Evaluate) else s.coupling.source).free_symbols
            assert {x.name for x in reads} & computed <= done, f"{s.target.name} is computed before what it reads"
            done.add(s.target.name)


def test_a_tableau_that_is_not_explicit_is_refused():
    with pytest.raises(UnsupportedFeatureError, match="not explicit"):
        ExplicitRungeKutta("implicit", 1, "", a=((F(1),),), b=(F(1),), c=(F(1),))
    with pytest.raises(UnsupportedFeatureError, match="as many rows"):
        ExplicitRungeKutta("short", 1, "", a=((),), b=(F(1), F(0)), c=(F(0),))


# --- any tableau, against a hand-written loop of the same tableau ------------------------------

def _driven_rhs(t, x, y, a, u):
    return -a * x + math.sin(t) * y, -y + u + math.tanh(x)


def _hand_loop(scheme, state, a, inputs, dt, t0=0.0):
    """The textbook explicit Runge-Kutta loop, written from the tableau's definition."""
    rows = []
    for n, u in enumerate(inputs):
        t = t0 + n * dt
        ks = []
        for i in range(scheme.stages):
            stage = [s + dt * sum(float(scheme.a[i][j]) * ks[j][q] for j in range(len(scheme.a[i])))
                     for q, s in enumerate(state)]
            ks.append(_driven_rhs(t + float(scheme.c[i]) * dt, *stage, a, u))
        state = [s + dt * sum(float(b) * k[q] for b, k in zip(scheme.b, ks)) for q, s in enumerate(state)]
        rows.append(state)
    return np.array(rows)


@pytest.mark.parametrize("scheme", [ODD] + [get_scheme(m) for m in METHODS], ids=lambda s: s.name)
def test_any_tableau_matches_a_hand_written_loop(tmp_path, scheme):
    (tmp_path / "driven.yaml").write_text(DRIVEN)
    system = build_system(load(f"{tmp_path / 'driven.yaml'}:driven"))
    module = load_source(generate(system, method=scheme), "generated", tmp_path)
    steps, dt = 60, 0.05
    u = 0.3 * np.sin(np.arange(steps) * 0.7)
    want = _hand_loop(scheme, [0.3, -0.2], 1.5, u, dt, t0=0.1)
    names = ["driven/x", "driven/y"] if "driven/x" in module.STATES else sorted(module.STATES)
    for shape in [(1,), (3,), (2, 1)]:  # the float path, then arrays with units and with a batch axis
        result = module.run({n: np.full(shape, v) for n, v in zip(names, (0.3, -0.2))}, {},
                            {next(iter(module.INPUTS)): u.reshape((steps,) + (1,) * len(shape))}, dt, steps, t0=0.1)
        for q, name in enumerate(names):
            got = result[name].reshape(steps, -1)
            np.testing.assert_allclose(got, np.repeat(want[:, q:q + 1], got.shape[1], axis=1), rtol=1e-12, atol=1e-14)


# --- the float path gives up part-way: NumPy goes on from there ------------------------------

def test_the_float_path_hands_over_without_repeating_chunks(tmp_path):
    """math.sqrt fails on a negative number where NumPy gives nan: the run goes on in NumPy from
    the chunk where the float loop stopped, and on_chunk hears of every chunk once."""
    (tmp_path / "sink.yaml").write_text('sink:\n  base: OperatorTemplate\n  equations: "x\' = -1 + 1e-300*sqrt(x)"\n'
                                        "  variables: {x: output(1.0)}\n")
    module = load_source(generate(build_system(load(f"{tmp_path / 'sink.yaml'}:sink"))), "sink", tmp_path)
    reported = []
    with np.errstate(invalid="ignore"):
        result = module.run({"sink/x": np.ones(1)}, {}, {}, 0.125, 24, chunk_steps=8, on_nan="ignore",
                            on_chunk=lambda stop, states: reported.append(stop))
    assert reported == [8, 16, 24]
    x = result["sink/x"][:, 0]
    np.testing.assert_allclose(x[:9], 1 - 0.125 * np.arange(1, 10))  # up to -0.125, then sqrt fails
    assert np.isnan(x[9:]).all()


# --- generated code: names declared, nothing bound in vain -----------------------------------

CASES = [(SEED, True, "rk4"), (SEED, True, "euler"), ("model_templates.neural_mass_models.jansenrit.JRC", False, "heun"),
         ("neuron_model_templates.conductance.hodgkin_huxley.hh", False, "midpoint"),
         ("model_templates.oscillators.kuramoto.kuramoto", False, "rk4")]
FUNCTIONS = ("run", "_run_single_unit", "rhs", "algebraics")


def _functions(source: str):
    return [node for node in ast.parse(source).body if isinstance(node, ast.FunctionDef) and node.name in FUNCTIONS]


def _names(function) -> tuple[set[str], set[str]]:
    stored, loaded = set(), set()
    for node in ast.walk(function):
        if isinstance(node, ast.Name):
            (stored if isinstance(node.ctx, ast.Store) else loaded).add(node.id)
        elif isinstance(node, ast.arg):
            stored.add(node.arg)
    return stored, loaded


@pytest.mark.parametrize("path, coupled, method", CASES)
def test_every_name_is_declared_by_a_template_or_handed_out_by_the_namer(path, coupled, method):
    system = _system(path, coupled)
    plan = make_plan(system, get_scheme(method))
    context = module_context(system, plan, "key", "0", "float64")
    source = environment().get_template("numpy/module.py.j2").render(**context)  # names are handed out while printing
    handed_out = set(context["m"].namer.taken) | (set(context["single"].namer.taken) if context["single"] else set())
    declared = set().union(*(declared_names(t) for t in TEMPLATES))
    module_level = {n.name for n in ast.parse(source).body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    for function in _functions(source):
        stored, loaded = _names(function)
        unknown = {n for n in stored | loaded if n not in declared and n not in handed_out and not hasattr(builtins, n)
                   and not (n.startswith("_") and n in module_level | {"_POPULATION", "_COPY_LIMIT", "_CHUNK_BYTES"})}
        assert not unknown, f"{function.name} uses names no template declares: {sorted(unknown)}"


@pytest.mark.parametrize("path, coupled, method", CASES)
def test_generated_functions_bind_only_what_they_read(path, coupled, method):
    source = generate(_system(path, coupled), method)
    for function in _functions(source):
        stored, loaded = _names(function)
        stored -= {a.arg for a in function.args.args}  # the contract's arguments: a function may not need each
        assert not stored - loaded, f"{function.name} binds names it never reads: {sorted(stored - loaded)}"


# --- the float path computes what the array path computes ---------------------------------------

@pytest.mark.parametrize("text", ["heaviside(x)", "sign(x)", "min(x, 1)", "min(1, x)",
                                  "max(x, -1)", "max(-1, x)"])
def test_float_functions_let_nan_through_as_numpy_does(text):
    from modelc.codegen.printers import SCALAR_HELPERS, ScalarPrinter
    from modelc.equations import parse_expression
    expr, _ = parse_expression(text)
    namespace = {"math": math}
    for helper in SCALAR_HELPERS.values():
        exec(helper, namespace)  # the generated module's helpers: test code, not package code
    for x in (float("nan"), -2.0, 0.0, 3.0):
        namespace["x"] = x
        got = eval(ScalarPrinter({"x": "x"}).doprint(expr), namespace)
        want = eval(NumPyPrinterFor(expr), {"np": np, "x": np.float64(x)})
        assert (math.isnan(got) and math.isnan(want)) or got == want, (text, x, got, want)


def NumPyPrinterFor(expr) -> str:
    from modelc.codegen.printers import NumPyPrinter
    return NumPyPrinter({"x": "x"}).doprint(expr)


NAN_MODEL = """
m:
  base: OperatorTemplate
  equations:
    - "w' = w*1e300"
    - "z' = z*1e300"
    - "x' = -x + 10*heaviside(w - z) + sign(w - z) + min(w - z, 1)"
    - "y = sqrt(x - 0.5)"
  variables: {x: output(1.0), w: variable(1.0), z: variable(1.0), y: variable(0.0)}
"""


def _nan_module(tmp_path, dtype="float64"):
    (tmp_path / "nan.yaml").write_text(NAN_MODEL)
    return load_source(generate(build_system(load(f"{tmp_path / 'nan.yaml'}:m")), dtype=dtype), f"nan_{dtype}", tmp_path)


def test_one_unit_and_two_units_agree_when_nan_appears(tmp_path):
    module = _nan_module(tmp_path)
    with np.errstate(all="ignore"):
        one, two = (module.run({"m/x": np.ones(n), "m/w": np.ones(n), "m/z": np.ones(n)}, {}, {}, 0.1, 6,
                               on_nan="ignore")
                    for n in (1, 2))
    np.testing.assert_array_equal(one["m/x"][:, 0], two["m/x"][:, 0])
    assert np.isnan(one["m/x"][-1, 0])


def test_a_recorded_algebraic_that_turns_nan_is_reported(tmp_path):
    """y = sqrt(x - 0.5) with x decaying below 0.5: records are checked, not only states."""
    (tmp_path / "decay.yaml").write_text('m:\n  base: OperatorTemplate\n  equations: ["x\' = -x", "y = sqrt(x - 0.5)"]\n'
                                         "  variables: {x: output(1.0), y: variable(0.0)}\n")
    module = load_source(generate(build_system(load(f"{tmp_path / 'decay.yaml'}:m"))), "decay", tmp_path)
    for n in (1, 3):
        with np.errstate(invalid="ignore"), pytest.raises(module.NonFiniteError, match=r"variable 'm/y' became nan"):
            module.run({"m/x": np.ones(n)}, {}, {}, 0.1, 20, record=["m/x", "m/y"])


def test_float32_computes_one_unit_in_float32(tmp_path):
    (tmp_path / "driven.yaml").write_text(DRIVEN)
    module = load_source(generate(build_system(load(f"{tmp_path / 'driven.yaml'}:driven")), "rk4", dtype="float32"),
                         "driven32", tmp_path)
    runs = [module.run({n: np.full(units, v) for n, v in module.STATES.items()}, {}, {}, 0.01, 50)
            for units in (1, 2)]
    for name in module.STATES:
        assert runs[0][name].dtype == np.float32
        np.testing.assert_array_equal(runs[0][name][:, 0], runs[1][name][:, 0])


def test_labels_that_python_would_fold_together_stay_apart():
    """'µ' (U+00B5) and 'μ' (U+03BC) are one identifier to Python (NFKC); '𝐀' lies beyond U+FFFF.
    Each node integrates once, from its own input: µ -> μ -> 𝐀 through identity edges (an edge
    carries its source's output variable, here v)."""
    from modelc import Network
    net = Network(dt=1e-3)
    for label in ("µ", "μ", "𝐀"):
        net.add_diffeq_node(label, SEED, weights=np.zeros((2, 2)), source_var="tanh_op/r", target_var="li_op/r_in",
                            input_var="li_op/I_ext", output_var="li_op/v")
    net.add_edge("µ", "μ", np.eye(2))
    net.add_edge("μ", "𝐀", np.eye(2))
    steps, dt, tau = 40, 1e-3, 10.0
    obs = net.run(inputs={"µ": np.ones((steps, 2))}, record_vars=[(label, "li_op/v", False) for label in ("µ", "μ")])
    v = np.zeros((3, 2))
    for _ in range(steps):  # the hand loop: Euler, each node driven by the one before
        drive = np.stack([np.ones(2), v[0], v[1]])
        v = v + dt * (-v / tau + drive)
    np.testing.assert_allclose(obs[("µ", "li_op/v")][-1], v[0], rtol=1e-12)
    np.testing.assert_allclose(obs[("μ", "li_op/v")][-1], v[1], rtol=1e-12)
    np.testing.assert_allclose(obs["out"][-1], v[2], rtol=1e-12)


def test_records_too_large_for_memory_are_refused_before_the_run(tmp_path):
    module = load_source(generate(_system()), "huge", tmp_path)
    with pytest.raises(module.InvalidValueError, match="the records need .*PiB"):
        module.run({"li_op/v": np.zeros(4)}, {"weights": np.zeros((4, 4))}, {}, 1e-3, 10**15)
