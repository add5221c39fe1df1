"""The CuPy backend, tested on a CPU (no GPU, no CuPy needed).

* The C printer: every function a model may use, float32/float64 spelling, refusals.
* Every node and circuit template in models/: the generated CUDA kernels are compiled as C
  with gcc (tests/fake_cupy.py: a stand-in `cupy` whose RawModule builds the kernels into a
  shared library and runs each launch on the CPU, threads of a block as POSIX threads with a
  barrier) and the generated module's run() -- every strategy that applies -- is compared
  with the NumPy backend's run() and with an RK4 step built from the NumPy backend's rhs().
* Any Butcher tableau (a row of zeros, stage times) through every strategy against a hand-written
  loop of the same tableau, every scheme on coupled networks against the NumPy backend, and
  the kernels' record of what they use (arguments, buffers, helpers): the kernels print the
  step program (codegen/step.py), they do not re-derive it.
* If nvcc is installed, every generated CUDA source is compiled with it (warnings are errors).
* The generated module's own logic with the stand-in: argument checks, record shapes,
  strategy selection, the calls it makes (graph capture, matmul into preallocated arrays),
  the errors without CuPy or without a GPU.
"""
from __future__ import annotations

import ast
import builtins
import concurrent.futures
import glob
import os
import pathlib
import re
import shutil
import subprocess
import sys
import warnings
from fractions import Fraction as F

import numpy as np
import pytest
import sympy

import fake_cupy
from generated import fake_cupy_installed, load_source
from modelc import compile_model
from modelc.codegen.generate import generate
from modelc.codegen.options import METHODS
from modelc.codegen.schemes import ExplicitRungeKutta, get_scheme
from modelc.codegen.templating import declared_names
from modelc.codegen.c_printer import c_helpers, helpers_of, print_c
from modelc.codegen.cupy import cupy_module, kernel_sources, module_source
from modelc.codegen.cupy.module import TEMPLATES
from modelc.equations import parse_expression
from modelc.errors import UnsupportedFeatureError
from modelc.ir import Connection, build_network, build_system
from modelc.spec import CircuitTemplate, Library, NodeTemplate, load

ROOT = pathlib.Path(__file__).resolve().parent.parent
SEED = "neuron_model_templates.rate_neurons.leaky_integrator.tanh"
SEED_COUPLING = dict(source_var="tanh_op/r", target_var="li_op/r_in")
RTOL = 1e-10   # float64: the kernels do the NumPy backend's arithmetic in the same order

ZOO = """\
%YAML 1.2
---
zoo_op:
  base: OperatorTemplate
  description: "Every function the kernels print, population reductions and a reduction of a coupling."
  equations:
    - "x' = -x/tau + a*where(x > 0, sin(x), cos(x)) + heaviside(y - 0.1) + min(x, y, 0.5) - max(x, -y) + sign(y)*abs(x)^3 + u + g*m"
    - "y' = exprel(x) - y + atan2(x, y + 2)*0.1 + sqrt(1 + x^2) - (1 + y^2)^(1/3) + tanh(x)^2 + 0.01*t + k*r_in + acos(tanh(x))/pi"
    - "z' = (x >= y) - 0.5*z + log(1 + z^2) + 1e-3*x^20 + asinh(x) + sigmoid(y)*q + cosh(0.1*z) - 1/(2 + x^2)^0.5 + tan(0.1*z) + atan(x) + asin(0.5*tanh(y)) + sinh(0.1*x) + acosh(2 + x^2) + atanh(0.5*tanh(z))"
    - "m = mean(x*y) + sum(z)/10"
    - "r = tanh(z)"
    - "q = mean(r_in*x)"
  variables:
    x: output(0.1)
    y: variable(0.2)
    z: variable(-0.3)
    m: variable(0.0)
    r: variable(0.0)
    q: variable(0.0)
    tau: 2.0
    a: 0.5
    g: 0.3
    k: 0.7
    u: input(0.0)
    r_in: input(0.0)
zoo:
  base: NodeTemplate
  description: "The feature zoo of the CuPy backend's tests."
  operators: [zoo_op]
"""
ZOO_COUPLING = dict(source_var="zoo_op/r", target_var="zoo_op/r_in")


def _model_templates() -> list[str]:
    library = Library()
    found = []
    for path in sorted(glob.glob(str(ROOT / "models" / "**" / "*.yaml"), recursive=True)):
        for template in library.templates_in(pathlib.Path(path)):
            if isinstance(template, (NodeTemplate, CircuitTemplate)):
                found.append(f"{path}:{template.name}")
    return found


MODEL_TEMPLATES = _model_templates()


def _short(path: str) -> str:
    file, name = path.rsplit(":", 1)
    return f"{pathlib.Path(file).stem}:{name}"


@pytest.fixture(scope="module")
def fake(tmp_path_factory):
    """The stand-in cupy in sys.modules (and a private cache folder) for this module's tests."""
    with fake_cupy_installed(tmp_path_factory.mktemp("cache")) as module:
        yield module


@pytest.fixture(scope="module")
def zoo_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("zoo") / "zoo.yaml"
    path.write_text(ZOO)
    return f"{path}:zoo"


def random_arguments(mod, shape, steps, seed=0, scale=0.05):
    rng = np.random.default_rng(seed)
    y0 = {k: v + scale * max(1.0, abs(v)) * rng.standard_normal(shape) for k, v in mod.STATES.items()}
    params = {k: v * (1 + 0.1 * rng.uniform(-1, 1)) for k, v in mod.PARAMS.items() if v is not None}
    inputs = {k: v + 0.1 * rng.standard_normal((steps,) + shape) for k, v in mod.INPUTS.items()}
    return y0, params, inputs


def assert_matches(got: dict, want: dict, names, rtol=RTOL, what=""):
    for name in names:
        g, w = np.asarray(got[name]), np.asarray(want[name])
        assert g.shape == w.shape, f"{what} {name}: shape {g.shape}, expected {w.shape}"
        scale = max(1.0, float(np.max(np.abs(w))))
        err = float(np.max(np.abs(g - w))) if g.size else 0.0
        assert err <= rtol * scale, f"{what} {name}: max error {err:.3g} > {rtol:g} * {scale:.3g}"


def rk4_step_from_rhs(mod, y, params, inputs_row, dt, t=0.0):
    """One classic RK4 step from the NumPy module's plain rhs() (no plan, no hoisting)."""
    def f(time, state):
        return {k: np.broadcast_to(v, np.shape(y[k])) for k, v in mod.rhs(time, state, params, inputs_row).items()}
    k1 = f(t, y)
    k2 = f(t + dt / 2, {k: y[k] + dt / 2 * k1[k] for k in y})
    k3 = f(t + dt / 2, {k: y[k] + dt / 2 * k2[k] for k in y})
    k4 = f(t + dt, {k: y[k] + dt * k3[k] for k in y})
    return {k: y[k] + dt / 6 * (k1[k] + 2 * k2[k] + 2 * k3[k] + k4[k]) for k in y}


def run_all_strategies(mc, *args, **kwargs):
    """{strategy: result} for every strategy that can run these arguments."""
    results = {}
    for strategy in mc.STRATEGIES:
        try:
            results[strategy] = mc.run(*args, strategy=strategy, **kwargs)
        except ValueError as exc:
            assert "cannot run this model" in str(exc)
    assert results, "no strategy could run"
    return results


# --- the C printer --------------------------------------------------------------------------

@pytest.mark.parametrize("text, c64, c32", [
    ("x^2", "(x*x)", "(x*x)"),
    ("x^3/y", "(x*x*x)/y", "(x*x*x)/y"),
    ("x^-2", "(1.0/(x*x))", "(1.0f/(x*x))"),
    ("1/x", "(1.0/x)", "(1.0f/x)"),
    ("sqrt(x)", "sqrt(x)", "sqrtf(x)"),
    ("1/sqrt(x)", "(1.0/sqrt(x))", "(1.0f/sqrtf(x))"),
    ("x^(1/3)", "cbrt(x)", "cbrtf(x)"),
    ("x^1.5", "pow(x, 1.5)", "powf(x, 1.5f)"),
    ("x^20", "pow(x, 20.0)", "powf(x, 20.0f)"),
    ("tanh(x)", "tanh(x)", "tanhf(x)"),
    ("abs(x)", "fabs(x)", "fabsf(x)"),
    ("atan2(x, y)", "atan2(x, y)", "atan2f(x, y)"),
    ("exprel(x)", "mc_exprel(x)", "mc_exprel(x)"),
    ("heaviside(x)", "mc_heaviside(x, 1.0)", "mc_heaviside(x, 1.0f)"),
    ("sign(x)", "mc_sign(x)", "mc_sign(x)"),
    ("min(x, y, 1)", "mc_min(mc_min(1.0, x), y)", "mc_min(mc_min(1.0f, x), y)"),
    ("max(x, y)", "mc_max(x, y)", "mc_max(x, y)"),
    ("where(x < y, x, y)", "((x < y) ? x : y)", "((x < y) ? x : y)"),
    ("x > 2", "((x > 2.0) ? 1.0 : 0.0)", "((x > 2.0f) ? 1.0f : 0.0f)"),
    ("sigmoid(x)", "(1.0/(1.0 + exp(-x)))", "(1.0f/(1.0f + expf(-x)))"),
    ("pi*x", "3.141592653589793*x", "3.141592653589793f*x"),
    ("x/2", "(0.5)*x", "(0.5f)*x"),
    ("-x/2", "-0.5*x", "-0.5f*x"),
    ("x/3 - 1/2", "(0.3333333333333333)*x - 0.5", "(0.3333333333333333f)*x - 0.5f"),
    ("-x", "-x", "-x"),
])
def test_printer_spells_functions_for_both_precisions(text, c64, c32):
    expr, _ = parse_expression(text)
    names = {"x": "x", "y": "y"}
    got64, got32 = print_c(expr, names, "float64"), print_c(expr, names, "float32")
    assert (got64, got32) == (c64, c32)


@pytest.mark.parametrize("expr", [sympy.erf(sympy.Symbol("x", real=True)), sympy.gamma(sympy.Symbol("x", real=True)),
                                  sympy.Mod(sympy.Symbol("x", real=True), 2), sympy.LambertW(sympy.Symbol("x", real=True))])
def test_printer_refuses_what_it_cannot_print(expr):
    with pytest.raises(UnsupportedFeatureError) as info:
        print_c(expr, {"x": "x"})
    assert info.value.code == "MC301" and "exp, log" in (info.value.hint or "")


def test_printer_refuses_unknown_symbols_and_non_finite_constants():
    x = sympy.Symbol("x", real=True)
    with pytest.raises(UnsupportedFeatureError):
        print_c(x + sympy.Symbol("nope", real=True), {"x": "x"})
    with pytest.raises(UnsupportedFeatureError):
        print_c(x + sympy.zoo, {"x": "x"})


def test_helpers_are_emitted_only_when_used():
    expr, _ = parse_expression("exprel(x) + min(x, 1)*abs(y)")
    assert helpers_of(expr) == {"mc_exprel", "mc_min"}
    used = c_helpers("float64", helpers_of(expr))
    assert "MODELC_FN REAL mc_exprel" in used and "mc_min(" in used and "mc_max" not in used
    assert "expm1f" in c_helpers("float32") and "expm1(" in c_helpers("float64")


def test_unsupported_function_is_a_compile_time_error():
    system = build_system(load(SEED))
    x = sympy.Symbol("li_op/v", real=True)
    system.derivatives["li_op/v"] = sympy.erf(x)
    with pytest.raises(UnsupportedFeatureError) as info:
        generate(system, "euler", "cupy")
    assert "erf" in str(info.value)


@pytest.mark.parametrize("trainable", [(), ("li_op/tau",)], ids=["run", "grad"])
def test_a_step_statement_it_does_not_know_is_refused_by_name(monkeypatch, trainable):
    """A statement kind the CuPy backend does not translate (another backend's feature, a new one)
    is a compile-time error naming it and the backend, in run()'s kernels and in grad()'s: never
    a step that silently leaves it out."""
    from dataclasses import dataclass
    from modelc.codegen import step

    @dataclass(frozen=True)
    class Spark:
        target: None = None

    make = step.make_step_program

    def with_spark(plan):
        program = make(plan)
        program.statements.insert(1, Spark())
        return program

    monkeypatch.setattr("modelc.codegen.cupy.module.make_step_program", with_spark)
    with pytest.raises(UnsupportedFeatureError, match=r"CuPy backend cannot translate the step program's 'Spark'") as info:
        generate(build_system(load(SEED)), "euler", "cupy", trainable=trainable)
    assert info.value.code == "MC301" and "backend='numpy'" in str(info.value)


def test_a_model_with_delays_is_refused_naming_the_feature(tmp_path):
    path = tmp_path / "delayed.yaml"
    path.write_text("""
delayed:
  base: OperatorTemplate
  equations: "x' = -x + past(x, 0.5)"
  variables: {x: output(0.1)}
""")
    with pytest.raises(UnsupportedFeatureError, match=r"CuPy backend cannot translate .*'Recall' statements \(delays"):
        generate(build_system(load(f"{path}:delayed")), "euler", "cupy")


# --- every model: the kernels against the NumPy backend -------------------------------------

@pytest.mark.parametrize("path", MODEL_TEMPLATES, ids=_short)
def test_every_model_matches_the_numpy_backend(fake, path):
    template = load(path)
    mn = compile_model(path, method="rk4")
    mc = compile_model(path, method="rk4", backend="cupy")
    n = 3 if isinstance(template, NodeTemplate) else 1
    shape, steps, dt = (2, n), 6, 1e-3
    y0, params, inputs = random_arguments(mn, shape, steps)
    want = mn.run(y0, params, inputs, dt, steps, record=mn.OUTPUTS, sampling_steps=2)
    for strategy, got in run_all_strategies(mc, y0, params, inputs, dt, steps, record=mn.OUTPUTS,
                                            sampling_steps=2, chunk_steps=2).items():
        assert got["strategy"] == strategy
        assert_matches(got, want, mn.OUTPUTS, what=f"{_short(path)} [{strategy}]")
        assert_matches(got["final"], want["final"], mn.STATES, what=f"{_short(path)} [{strategy}] final")
    # one step against RK4 built from the NumPy backend's plain rhs()
    one = mc.run(y0, params, {k: v[:1] for k, v in inputs.items()}, dt, 1)
    want_one = rk4_step_from_rhs(mn, y0, params, {k: v[0] for k, v in inputs.items()}, dt)
    assert_matches(one["final"], want_one, mn.STATES, rtol=1e-9, what=f"{_short(path)} vs rhs")


@pytest.mark.parametrize("method", METHODS)
def test_seed_model_in_every_scheme_and_strategy(fake, method):
    rng = np.random.default_rng(3)
    n, steps = 6, 10
    W = rng.standard_normal((n, n)) / np.sqrt(n)
    y0 = {"li_op/v": rng.standard_normal((4, n))}
    inputs = {"li_op/I_ext": rng.standard_normal((steps, 4, n))}
    params = {"weights": W, "li_op/eta": rng.standard_normal((4, 1))}
    mn = compile_model(SEED, method=method, coupling=SEED_COUPLING, vector_params=["li_op/eta"])
    mc = compile_model(SEED, method=method, backend="cupy", coupling=SEED_COUPLING, vector_params=["li_op/eta"])
    want = mn.run(y0, params, inputs, 0.1, steps, record=mn.OUTPUTS, sampling_steps=3)
    results = run_all_strategies(mc, y0, params, inputs, 0.1, steps, record=mn.OUTPUTS, sampling_steps=3,
                                 chunk_steps=3)
    assert set(results) == {"persistent", "graph", "stream"}
    for strategy, got in results.items():
        assert_matches(got, want, mn.OUTPUTS, what=f"seed {method} [{strategy}]")


@pytest.mark.parametrize("method", METHODS)
def test_circuit_in_every_scheme_and_strategy(fake, method):
    """A circuit whose populations read each other element-wise: one group, no barriers (fused)."""
    path = "model_templates.neural_mass_models.jansenrit.JRC"
    mn, mc = compile_model(path, method=method), compile_model(path, method=method, backend="cupy")
    steps = 8
    y0, params, inputs = random_arguments(mn, (3, 2), steps, seed=6)
    want = mn.run(y0, params, inputs, 1e-4, steps, record=mn.OUTPUTS, sampling_steps=2)
    results = run_all_strategies(mc, y0, params, inputs, 1e-4, steps, record=mn.OUTPUTS, sampling_steps=2,
                                 chunk_steps=4)
    assert set(results) == {"fused", "graph", "stream"}
    for strategy, got in results.items():
        assert_matches(got, want, mn.OUTPUTS, what=f"JRC {method} [{strategy}]")


def test_feature_zoo_against_rhs_and_algebraics(fake, zoo_path):
    """Every function, two reductions and a reduction of a coupling (three levels), all strategies."""
    mn = compile_model(zoo_path, method="rk4", coupling=ZOO_COUPLING)
    mc = compile_model(zoo_path, method="rk4", backend="cupy", coupling=ZOO_COUPLING)
    rng = np.random.default_rng(5)
    n, steps, dt = 5, 6, 0.01
    y0 = {k: 0.5 * rng.standard_normal((3, n)) for k in mn.STATES}
    params = {"weights": rng.standard_normal((n, n)) / n}
    inputs = {"zoo_op/u": rng.standard_normal((steps, 3, 1))}
    want = mn.run(y0, params, inputs, dt, steps, record=mn.OUTPUTS, sampling_steps=2)
    results = run_all_strategies(mc, y0, params, inputs, dt, steps, record=mn.OUTPUTS, sampling_steps=2,
                                 chunk_steps=2)
    assert set(results) == {"persistent", "graph", "stream"}
    for strategy, got in results.items():
        assert_matches(got, want, mn.OUTPUTS, what=f"zoo [{strategy}]")
    one = mc.run(y0, params, {"zoo_op/u": inputs["zoo_op/u"][:1]}, dt, 1, record=mn.OUTPUTS)
    want_one = rk4_step_from_rhs(mn, y0, mn._check_params(params), {"zoo_op/u": inputs["zoo_op/u"][0]}, dt)
    assert_matches(one["final"], want_one, mn.STATES, rtol=1e-9, what="zoo vs rhs")
    computed = mn.algebraics(dt, one["final"], mn._check_params(params), {"zoo_op/u": inputs["zoo_op/u"][0]})
    computed = {k: np.broadcast_to(v, (3, n)) for k, v in computed.items()}   # records hold every unit
    assert_matches({k: v[0] for k, v in one.items() if k in computed}, computed, list(computed), what="zoo algebraics")
    # the module's own rhs()/algebraics() (CuPy array code) agree with NumPy's
    p = mn._check_params(params)
    assert_matches(mc.rhs(0.3, y0, params, {"zoo_op/u": 0.2}), mn.rhs(0.3, y0, params, {"zoo_op/u": 0.2}),
                   mn.STATES, what="rhs()")
    assert_matches(mc.algebraics(0.3, y0, p, {"zoo_op/u": 0.2}), mn.algebraics(0.3, y0, p, {"zoo_op/u": 0.2}),
                   [n for n, _ in mn.algebraics(0.3, y0, p, {"zoo_op/u": 0.2}).items()], what="algebraics()")


@pytest.mark.parametrize("method", METHODS)
def test_network_of_groups_with_different_sizes(fake, tmp_path, method):
    """Populations coupled only by matrices are separate groups (own kernels, own sizes)."""
    node, kur = load(SEED), load("model_templates.oscillators.kuramoto.kuramoto")

    def system():
        return build_network({"E": node, "I": node, "K": kur},
                             [Connection("E/tanh_op/r", "I/li_op/r_in", "W_ie"),
                              Connection("I/tanh_op/r", "E/li_op/r_in", "W_ei"),
                              Connection("E/tanh_op/r", "K/kuramoto_op/I_ext", "W_ke")],
                             vector_params=["K/kuramoto_op/omega", "E/li_op/tau"])
    rng = np.random.default_rng(0)
    B, nE, nI, nK, steps = 2, 5, 3, 4, 7
    y0 = {"E/li_op/v": rng.standard_normal((B, nE)), "I/li_op/v": rng.standard_normal((B, nI)),
          "K/kuramoto_op/theta": rng.standard_normal((B, nK))}
    params = {"W_ie": rng.standard_normal((nI, nE)), "W_ei": rng.standard_normal((nE, nI)),
              "W_ke": rng.standard_normal((nK, nE)), "K/kuramoto_op/omega": rng.standard_normal(nK),
              "E/li_op/tau": 5 + rng.uniform(size=(B, 1))}
    inputs = {"E/li_op/I_ext": rng.standard_normal((steps, B, nE))}
    mn = load_source(generate(system(), method, "numpy"), f"net_numpy_{method}", tmp_path)
    mc = load_source(generate(system(), method, "cupy"), f"net_cupy_{method}", tmp_path)
    assert mc.GROUPS == [["E"], ["I"], ["K"]]
    want = mn.run(y0, params, inputs, 0.05, steps, record=mn.OUTPUTS)
    results = run_all_strategies(mc, y0, params, inputs, 0.05, steps, record=mn.OUTPUTS, chunk_steps=3)
    assert set(results) == {"graph", "stream"}
    for strategy, got in results.items():
        assert_matches(got, want, mn.OUTPUTS, what=f"network {method} [{strategy}]")
    bad = dict(params, W_ie=rng.standard_normal((nE, nI)))
    with pytest.raises(ValueError, match="W_ie"):
        mc.run(y0, bad, inputs, 0.05, steps)


def test_names_beyond_the_basic_plane_reach_the_module_exactly(fake, tmp_path):
    """'𝐀' lies beyond U+FFFF: the module's Python code names it as one character (json.dumps
    would spell two surrogate escapes, another string), so rhs() and algebraics() find it."""
    system = build_network({"𝐀": load(SEED)}, [])
    mc = load_source(generate(system, "rk4", "cupy"), "astral", tmp_path)
    mn = load_source(generate(system, "rk4", "numpy"), "astral_numpy", tmp_path)
    y = {"𝐀/li_op/v": np.array([0.5, -0.25])}
    inputs = {"𝐀/li_op/I_ext": 0.3, "𝐀/li_op/r_in": -0.1}
    assert_matches(mc.rhs(0.0, y, {}, inputs), mn.rhs(0.0, y, {}, inputs), ["𝐀/li_op/v"], what="rhs()")
    params = mn._check_params({})
    got, want = mc.algebraics(0.0, y, params, inputs), mn.algebraics(0.0, y, params, inputs)
    assert set(got) == set(want) and "𝐀/tanh_op/r" in got
    assert_matches(got, want, list(want), what="algebraics()")


def test_float32(fake):
    mn = compile_model(SEED, method="rk4", dtype="float32", coupling=SEED_COUPLING)
    mc = compile_model(SEED, method="rk4", dtype="float32", backend="cupy", coupling=SEED_COUPLING)
    assert "typedef float REAL;" in mc._SOURCE and "tanhf(" in mc._SOURCE
    rng = np.random.default_rng(1)
    n = 8
    y0 = {"li_op/v": rng.standard_normal(n)}
    params = {"weights": rng.standard_normal((n, n)) / np.sqrt(n)}
    want = mn.run(y0, params, {}, 0.1, 20, record=mn.OUTPUTS)
    for strategy, got in run_all_strategies(mc, y0, params, {}, 0.1, 20, record=mn.OUTPUTS, chunk_steps=7).items():
        assert got["li_op/v"].dtype == np.float32
        assert_matches(got, want, mn.OUTPUTS, rtol=2e-5, what=f"float32 [{strategy}]")
    hh = compile_model("neuron_model_templates.conductance.hodgkin_huxley.hh", method="rk4", dtype="float32",
                       backend="cupy")
    hn = compile_model("neuron_model_templates.conductance.hodgkin_huxley.hh", method="rk4", dtype="float32")
    inputs = {"hh_op/I_ext": 10.0}
    assert_matches(hh.run({}, {}, inputs, 0.01, 300)["final"], hn.run({}, {}, inputs, 0.01, 300)["final"],
                   hn.STATES, rtol=1e-3, what="hh float32")


# --- any tableau: the kernels print the step program ----------------------------------------

# x reads the stage's own time and, coupled, W @ x (a barrier in every stage); y an input.
DRIVEN = """
driven_op:
  base: OperatorTemplate
  equations:
    - "x' = -a*x + sin(t)*y + k*r_in"
    - "y' = -y + u + tanh(x)"
  variables:
    x: output(0.3)
    y: variable(-0.2)
    a: 1.5
    k: 0.5
    u: input(0.0)
    r_in: input(0.0)
driven:
  base: NodeTemplate
  operators: [driven_op]
"""

# Stage 2 starts from the step's own states (a row of zeros) at t + dt/3: nothing may be assumed
# about a tableau but that it is explicit.
ODD = ExplicitRungeKutta("odd", 1, "A made-up three-stage tableau.", a=((), (), (F(1, 4), F(3, 4))),
                         b=(F(1, 2), F(1, 4), F(1, 4)), c=(F(0), F(1, 3), F(1)))


def _driven_hand_loop(scheme, x, y, u, r_in, weights, dt, t0, a=1.5, k=0.5):
    """The textbook explicit Runge-Kutta loop of the driven model, written from the tableau."""
    rows = []
    for n in range(len(u)):
        t = t0 + n * dt
        rates = []
        for i in range(scheme.stages):
            xi = x + dt * sum(float(c) * rates[j][0] for j, c in enumerate(scheme.a[i]))
            yi = y + dt * sum(float(c) * rates[j][1] for j, c in enumerate(scheme.a[i]))
            r = xi @ weights.T if weights is not None else r_in[n]
            rates.append((-a * xi + np.sin(t + float(scheme.c[i]) * dt) * yi + k * r, -yi + u[n] + np.tanh(xi)))
        x = x + dt * sum(float(b) * rate[0] for b, rate in zip(scheme.b, rates))
        y = y + dt * sum(float(b) * rate[1] for b, rate in zip(scheme.b, rates))
        rows.append((x, y))
    return rows


@pytest.mark.parametrize("coupled", [True, False], ids=["coupled", "uncoupled"])
@pytest.mark.parametrize("scheme", [ODD] + [get_scheme(m) for m in METHODS], ids=lambda s: s.name)
def test_any_tableau_matches_a_hand_written_loop(fake, tmp_path, scheme, coupled):
    (tmp_path / "driven.yaml").write_text(DRIVEN)
    template = load(f"{tmp_path / 'driven.yaml'}:driven")
    system = build_system(template, [Connection("driven_op/x", "driven_op/r_in", "weights")] if coupled else [])
    mc = load_source(generate(system, scheme, "cupy"), f"driven_{scheme.name}_{coupled}", tmp_path)
    rng = np.random.default_rng(8)
    B, n, steps, dt, t0 = 2, 4, 9, 0.05, 0.1
    x, y = rng.standard_normal((B, n)), rng.standard_normal((B, n))
    weights = rng.standard_normal((n, n)) / n if coupled else None
    u, r_in = rng.standard_normal((steps, B, n)), rng.standard_normal((steps, B, n))
    want = _driven_hand_loop(scheme, x, y, u, r_in, weights, dt, t0)
    inputs = {"driven_op/u": u} if coupled else {"driven_op/u": u, "driven_op/r_in": r_in}
    params = {"weights": weights} if coupled else {}
    results = run_all_strategies(mc, {"driven_op/x": x, "driven_op/y": y}, params, inputs, dt, steps, t0=t0,
                                 record=["driven_op/x", "driven_op/y"], sampling_steps=3, chunk_steps=6)
    assert set(results) == ({"persistent", "graph", "stream"} if coupled else {"fused", "graph", "stream"})
    for strategy, got in results.items():
        for q, name in enumerate(["driven_op/x", "driven_op/y"]):
            expected = np.array([want[r][q] for r in range(2, steps, 3)])
            np.testing.assert_allclose(got[name], expected, rtol=RTOL, atol=1e-14, err_msg=f"{scheme.name} [{strategy}]")


def test_the_kernels_follow_the_step_program():
    """Rates are kept in memory only for a later kernel; a stage that starts from the step's own
    states reads them (no copy); kernels record their arguments, uses and helpers while built."""
    system = build_system(load(SEED), [Connection("tanh_op/r", "li_op/r_in", "weights")])
    odd = cupy_module(system, ODD)
    table = {k.name: k for k in odd.kernels}
    # stage 2 starts from the step's states: stage 1's kernel computes no starting values for it
    assert not any(key.startswith("mc_ys_") for key in table["mc_stage1_g0"].keys)
    assert "mc_ys_li_op_v" in table["mc_stage2_g0"].buffers            # stage 3's starting values
    assert {key for k in odd.kernels for key in k.buffers} == {"mc_ys_li_op_v", "mc_k0_li_op_v", "mc_k1_li_op_v"}
    midpoint = cupy_module(system, "midpoint")   # k_1 is read only by stage 2's start, in the same kernel
    assert {key for k in midpoint.kernels for key in k.buffers} == {"mc_ys_li_op_v"}
    rk4 = {k.name: k for k in cupy_module(system, "rk4").kernels}
    assert {"dt", "step"} <= rk4["mc_stage4_g0"].uses and "step" not in rk4["mc_stage1_g0"].uses  # records
    assert "step time" not in rk4["mc_stage1_g0"].uses and "mc_t0" not in rk4["mc_stage1_g0"].keys  # no t
    assert "shared memory" in rk4["mc_persistent_g0"].uses and rk4["mc_persistent_g0"].top[0] == "MODELC_SMEM;"
    # no stage reads psi (psi' = omega0): its stage values, and midpoint's k_1 only they read, are not computed
    oa = cupy_module(build_system(load("model_templates.oscillators.kuramoto.kuramoto_oa")), "midpoint")
    assert {key for k in oa.kernels for key in k.buffers} == {"mc_ys_r"}
    assert not any("mc_k0_psi" in line for k in oa.kernels for line in k.body)
    euler = cupy_module(system, "euler")   # dt folded in: the rate is the new value, nothing kept
    assert not any(k.buffers for k in euler.kernels)
    hh = cupy_module(build_system(load("neuron_model_templates.conductance.hodgkin_huxley.hh")), "rk4")
    assert all(k.helpers == {"mc_exprel"} for k in hh.kernels)


def test_generated_functions_use_only_declared_or_handed_out_names(tmp_path):
    """The module's functions that hold model identifiers use only names its templates declare,
    names the Namer handed out, builtins and the module's own private names."""
    system = build_system(load(SEED), [Connection("tanh_op/r", "li_op/r_in", "weights")])
    source = generate(system, "rk4", "cupy")
    m = cupy_module(system, "rk4")
    allowed = set(m.namer.taken) | set().union(*(declared_names(t) for t in TEMPLATES))
    for function in ast.parse(source).body:
        if isinstance(function, ast.FunctionDef) and function.name in ("_algebraics", "rhs", "_constants"):
            names = {n.id for n in ast.walk(function) if isinstance(n, ast.Name)} | \
                {a.arg for a in ast.walk(function) if isinstance(a, ast.arg)}
            unknown = {n for n in names - allowed if not n.startswith("_") and not hasattr(builtins, n)}
            assert not unknown, f"{function.name} uses names no template declares: {sorted(unknown)}"


# --- nvcc ----------------------------------------------------------------------------------

def _one_translation_unit(sources: list[str]) -> str:
    """Many generated sources as one CUDA file: each in a namespace, kernels renamed apart."""
    parts = []
    for k, source in enumerate(sources):
        cut = source.index("#endif", source.index("#ifndef MODELC_KERNEL")) + len("#endif")
        head, body = source[:cut], source[cut:]
        body = body.replace("MODELC_KERNEL void mc_", f"MODELC_KERNEL void m{k}_mc_")
        parts.append((head if k == 0 else "") + f"\nnamespace m{k} {{\n{body}\n}}  // namespace m{k}\n")
    return "\n".join(parts)


def _nvcc(path: pathlib.Path) -> subprocess.CompletedProcess:
    """CUDA C++ to PTX; NVVM's optimiser off (-Xcicc -O0): the check is the language, and it is 3x faster."""
    return subprocess.run(["nvcc", "--ptx", "-Xcicc", "-O0", "-Werror", "all-warnings", str(path),
                           "-o", str(path.with_suffix(".ptx"))], capture_output=True, text=True)


@pytest.mark.skipif(shutil.which("nvcc") is None, reason="nvcc is not installed (the CUDA sources are not compiled)")
def test_nvcc_compiles_every_generated_source(tmp_path, zoo_path):
    node = load(SEED)
    seed_system = build_system(node, [Connection("tanh_op/r", "li_op/r_in", "weights")])
    zoo = build_system(load(zoo_path), [Connection("zoo_op/r", "zoo_op/r_in", "weights")])
    labelled = {}
    for path in MODEL_TEMPLATES:   # every model in every scheme in float64, a few in float32 (the spelling differs)
        system = build_system(load(path))
        for method in METHODS:
            labelled[("float64", _short(path), method)] = module_source(system, method)
    trainable = ["weights", "li_op/tau", "li_op/k", "li_op/eta"]   # grad()'s kernels too
    for dtype, method in [("float64", m) for m in METHODS] + [("float32", "rk4")]:
        labelled[(dtype, "seed grad", method)] = module_source(seed_system, method, dtype, trainable)
    hh = build_system(load("neuron_model_templates.conductance.hodgkin_huxley.hh"))   # grad() without barriers
    labelled[("float64", "hh grad", "rk4")] = module_source(hh, "rk4", trainable=["hh_op/g_Na", "hh_op/C_m"])
    kuramoto = build_system(load("model_templates.oscillators.kuramoto.kuramoto"))
    labelled[("float64", "kuramoto grad", "heun")] = module_source(
        kuramoto, "heun", trainable=[n for n, p in kuramoto.params.items() if p.shape == "scalar"])
    labelled[("float32", "hh", "rk4")] = module_source(
        build_system(load("neuron_model_templates.conductance.hodgkin_huxley.hh")), "rk4", "float32")
    for dtype in ("float64", "float32"):
        for scheme in (get_scheme("euler"), get_scheme("midpoint"), get_scheme("rk4"), ODD):
            labelled[(dtype, "seed", scheme.name)] = module_source(seed_system, scheme, dtype)
            labelled[(dtype, "zoo", scheme.name)] = module_source(zoo, scheme, dtype)
    units = {}
    for dtype in ("float64", "float32"):
        keys = [key for key in labelled if key[0] == dtype]
        path = tmp_path / f"all_{dtype}.cu"
        path.write_text(_one_translation_unit([labelled[key] for key in keys]))
        units[path] = keys
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        results = dict(zip(units, pool.map(_nvcc, units)))
    for path, result in results.items():
        if result.returncode != 0:   # find the culprit(s) for the message
            bad = []
            for key in units[path]:
                one = tmp_path / ("one_" + re.sub(r"\W", "_", "_".join(key)) + ".cu")
                one.write_text(labelled[key])
                if _nvcc(one).returncode != 0:
                    bad.append(key)
            pytest.fail(f"nvcc rejects the generated CUDA of {bad}:\n{result.stderr[-4000:]}")
        assert path.with_suffix(".ptx").read_text().count(".entry") >= len(units[path])


def test_kernel_sources_are_complete_on_their_own(tmp_path):
    """kernel_sources(): each kernel with the preamble and only the helpers it calls compiles as C."""
    system = build_system(load("neuron_model_templates.conductance.hodgkin_huxley.hh"))
    sources = kernel_sources(system, "rk4", "float64")
    assert {"mc_stage1_g0", "mc_stage4_g0", "mc_fused_g0"} <= set(sources)
    assert "mc_exprel" in sources["mc_fused_g0"]
    gcc = shutil.which(os.environ.get("CC", "gcc"))
    if gcc is None:
        pytest.skip("no C compiler")
    for name, source in sources.items():
        path = tmp_path / f"{name}.c"
        path.write_text(fake_cupy.c_harness(source))
        result = subprocess.run([gcc, "-std=gnu11", "-fsyntax-only", "-Wall", "-Werror", "-Wno-unused-function",
                                 str(path)], capture_output=True, text=True)
        assert result.returncode == 0, f"{name}:\n{result.stderr[-3000:]}"
        assert source.count("MODELC_KERNEL void") == 1


# --- the generated module's logic (with the stand-in cupy) ---------------------------------

def test_strategy_selection(fake):
    seed = compile_model(SEED, method="euler", backend="cupy", coupling=SEED_COUPLING)
    W = lambda n: np.zeros((n, n))  # noqa: E731
    assert seed.strategy_for({"li_op/v": np.zeros(100)}, {"weights": W(100)})[0] == "persistent"
    assert seed.strategy_for({"li_op/v": np.zeros((4096, 100))}, {"weights": W(100)}, steps=10)[0] == "persistent"
    name, reason = seed.strategy_for({"li_op/v": np.zeros(4096)}, {"weights": W(4096)}, steps=4096)
    assert name == "graph" and "do not fit one thread block" in reason
    name, reason = seed.strategy_for({"li_op/v": np.zeros(500)}, {"weights": W(500)}, steps=4096)
    assert name == "graph" and "cuBLAS" in reason
    assert seed.strategy_for({"li_op/v": np.zeros(4096)}, {"weights": W(4096)}, steps=1000)[0] == "stream"
    assert seed.strategy_for({"li_op/v": np.zeros(2000)}, {"weights": W(2000)}, steps=1000, chunk_steps=100)[0] == "graph"
    lorenz = compile_model("model_templates.chaos.lorenz.lorenz", method="rk4", backend="cupy")
    assert lorenz.strategy_for({"lorenz_op/x": np.zeros((4096, 1))})[0] == "fused"
    kur = compile_model("model_templates.oscillators.kuramoto.kuramoto", method="rk4", backend="cupy")
    assert kur.strategy_for({"kuramoto_op/theta": np.zeros(1000)})[0] == "persistent"
    assert kur.strategy_for({"kuramoto_op/theta": np.zeros(5000)}, steps=5000)[0] == "graph"
    with pytest.raises(ValueError, match="fused"):
        seed.run({"li_op/v": np.zeros(4)}, {"weights": W(4)}, strategy="fused")
    with pytest.raises(ValueError, match="unknown strategy"):
        seed.run({"li_op/v": np.zeros(4)}, {"weights": W(4)}, strategy="warp-speed")
    with pytest.raises(ValueError, match="do not fit one thread block"):
        seed.run({"li_op/v": np.zeros(1025)}, {"weights": W(1025)}, strategy="persistent")


def test_graph_capture_replays_one_graph_per_chunk_length(fake):
    mc = compile_model(SEED, method="rk4", backend="cupy", coupling=SEED_COUPLING)
    mn = compile_model(SEED, method="rk4", coupling=SEED_COUPLING)
    n, steps = 4, 11
    rng = np.random.default_rng(2)
    args = ({"li_op/v": rng.standard_normal(n)}, {"weights": rng.standard_normal((n, n))},
            {"li_op/I_ext": rng.standard_normal((steps, n))}, 0.1, steps)
    fake_cupy.reset_calls()
    got = mc.run(*args, record=["li_op/v", "li_op/r_in"], sampling_steps=2, chunk_steps=4, strategy="graph")
    names = [name for name, _ in fake_cupy.calls]
    assert names.count("begin_capture") == 2       # chunks of 4, 4 and 3 steps: two distinct lengths
    assert names.count("graph.launch") == 3
    assert names.count("RawModule") <= 1
    matmuls = [detail for name, detail in fake_cupy.calls if name == "matmul"]
    assert matmuls and all(detail == ((n,), (n, n), True) for detail in matmuls)   # gemv into preallocated arrays
    assert names.count("ascontiguousarray") == 0     # the weights are used as given: no transposed copy
    assert names[-1] != "begin_capture" and "synchronize" in names
    want = mn.run(*args, record=["li_op/v", "li_op/r_in"], sampling_steps=2)
    assert_matches(got, want, ["li_op/v", "li_op/r_in"], what="graph")
    assert got["li_op/v"].shape == (5, n)


def test_capture_failure_falls_back_to_launches(fake):
    mc = compile_model(SEED, method="euler", backend="cupy", coupling=SEED_COUPLING)
    n = 3
    args = ({"li_op/v": np.ones(n)}, {"weights": np.eye(n)}, {}, 0.1, 8)
    fake_cupy.Stream.fail_capture = True
    try:
        got = mc.run(*args, chunk_steps=2, strategy="graph")
    finally:
        fake_cupy.Stream.fail_capture = False
    assert got["strategy"] == "stream" and "capture failed" in mc.LAST_RUN["note"]
    assert_matches(got, mc.run(*args, chunk_steps=2, strategy="stream"), ["li_op/v"], rtol=0)


def test_persistent_falls_back_when_the_kernel_cannot_take_the_block(fake):
    mc = compile_model(SEED, method="rk4", backend="cupy", coupling=SEED_COUPLING)
    args = ({"li_op/v": np.linspace(-1, 1, 40)}, {"weights": np.eye(40) * 0.5}, {}, 0.1, 5)
    fake_cupy.RawKernel.max_threads_per_block = 32     # 40 units need a block of 64 threads
    try:
        got = mc.run(*args)
    finally:
        fake_cupy.RawKernel.max_threads_per_block = 1024
    assert got["strategy"] == "stream" and "threads per block" in mc.LAST_RUN["note"]
    assert_matches(got, mc.run(*args), ["li_op/v"], what="fallback")
    assert mc.LAST_RUN["strategy"] == "persistent"


def test_records_batches_and_input_shapes(fake):
    mc = compile_model(SEED, method="heun", backend="cupy", coupling=SEED_COUPLING, vector_params=["li_op/tau"])
    mn = compile_model(SEED, method="heun", coupling=SEED_COUPLING, vector_params=["li_op/tau"])
    rng = np.random.default_rng(4)
    n, steps = 3, 10
    y0 = {"li_op/v": rng.standard_normal((2, 3, n))}           # two batch axes
    params = {"weights": rng.standard_normal((n, n)), "li_op/tau": 5 + rng.uniform(size=(3, 1))}
    for inputs in ({"li_op/I_ext": rng.standard_normal(steps)},
                   {"li_op/I_ext": rng.standard_normal((steps, n))},
                   {"li_op/I_ext": rng.standard_normal((steps, 2, 1, 1))},   # partly broadcast batch
                   {"li_op/I_ext": rng.standard_normal((steps, 2, 3, n))},
                   {"li_op/I_ext": 0.7}):
        want = mn.run(y0, params, inputs, 0.1, steps, record=mn.OUTPUTS, sampling_steps=3)
        for strategy in ("persistent", "stream"):
            got = mc.run(y0, params, inputs, 0.1, steps, record=mn.OUTPUTS, sampling_steps=3, strategy=strategy)
            assert got["li_op/v"].shape == (3, 2, 3, n) and got["li_op/r_in"].shape == (3, 2, 3, n)
            assert got["final"]["li_op/v"].shape == (2, 3, n)
            assert_matches(got, want, mn.OUTPUTS, what=f"inputs {np.shape(inputs['li_op/I_ext'])} [{strategy}]")
    got = mc.run(y0, params, {}, 0.1, 5, record=[], sampling_steps=5)
    assert set(got) == {"final", "strategy"}


def test_argument_checks(fake):
    mc = compile_model(SEED, method="euler", backend="cupy", coupling=SEED_COUPLING)
    ok = ({"li_op/v": np.zeros(3)}, {"weights": np.eye(3)})
    with pytest.raises(KeyError, match="unknown parameter"):
        mc.run(ok[0], {"weights": np.eye(3), "nope": 1.0})
    with pytest.raises(ValueError, match="weight matrix"):
        mc.run(ok[0], {})
    with pytest.raises(ValueError, match=r"\(n_target, n_source\)"):
        mc.run(ok[0], {"weights": np.eye(4)})
    with pytest.raises(ValueError, match="must be a matrix"):
        mc.run(ok[0], {"weights": np.zeros((2, 3, 3))})
    with pytest.raises(KeyError, match="unknown state"):
        mc.run({"nope": np.zeros(3)}, ok[1])
    with pytest.raises(KeyError, match="to record"):
        mc.run(*ok, record=["nope"])
    with pytest.raises(KeyError, match="unknown input"):
        mc.run(*ok, inputs={"nope": 1.0})
    with pytest.raises(ValueError, match="rows"):
        mc.run(*ok, inputs={"li_op/I_ext": np.zeros((5, 3))}, steps=4)
    with pytest.raises(ValueError, match="dt"):
        mc.run(*ok, dt=0)
    with pytest.raises(ValueError, match="compile it as a vector parameter"):
        mc.run(ok[0], {"weights": np.eye(3), "li_op/tau": np.ones(3)})
    wc = compile_model("model_templates.neural_mass_models.wilsoncowan.WC", method="euler", backend="cupy")
    with pytest.raises(ValueError, match="same shape"):
        wc.run({"e/wc_e_op/r": np.zeros(3), "i/wc_i_op/r": np.zeros(2)})


def test_nan_checks_and_on_chunk(fake):
    mc = compile_model("model_templates.oscillators.vanderpol.vdp", method="euler", backend="cupy")
    seen = []
    got = mc.run({"vdp_op/x": np.ones(2)}, {}, {}, 0.01, 10, chunk_steps=4,
                 on_chunk=lambda done, states: seen.append((done, type(states["vdp_op/x"]))))
    assert seen == [(4, np.ndarray), (8, np.ndarray), (10, np.ndarray)] and got["strategy"] == "fused"
    with pytest.raises(FloatingPointError, match="vdp_op/"):
        mc.run({"vdp_op/x": np.array([1.0, 1e200])}, {"vdp_op/mu": 1e10}, {}, 0.1, 50)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mc.run({"vdp_op/x": np.array([1.0, 1e200])}, {"vdp_op/mu": 1e10}, {}, 0.1, 50, chunk_steps=4, on_nan="warn")
    reports = [w for w in caught if issubclass(w.category, RuntimeWarning) and "became" in str(w.message)]
    assert len(reports) == 1  # once per run, not once per chunk


def test_device_arrays_are_accepted(fake):
    mc = compile_model(SEED, method="euler", backend="cupy", coupling=SEED_COUPLING)
    mn = compile_model(SEED, method="euler", coupling=SEED_COUPLING)
    rng = np.random.default_rng(7)
    v, W, I = rng.standard_normal((2, 4)), rng.standard_normal((4, 4)), rng.standard_normal((3, 2, 4))
    want = mn.run({"li_op/v": v}, {"weights": W}, {"li_op/I_ext": I}, 0.1, 3)
    for strategy in ("persistent", "stream"):
        fake_cupy.reset_calls()
        got = mc.run({"li_op/v": fake.asarray(v)}, {"weights": fake.asarray(W)}, {"li_op/I_ext": fake.asarray(I)},
                     0.1, 3, strategy=strategy)
        assert isinstance(got["li_op/v"], np.ndarray) and not isinstance(got["li_op/v"], fake.ndarray)
        assert_matches(got, want, ["li_op/v"], what=f"device arrays [{strategy}]")
        assert ("get", (4, 4)) not in fake_cupy.calls      # the weights never went back to the host
    with pytest.raises(ValueError, match="n_target, n_source"):
        mc.run({"li_op/v": v}, {"weights": fake.asarray(np.eye(3))})


def test_missing_cupy_names_the_install_extra(tmp_path):
    source = generate(build_system(load("model_templates.chaos.lorenz.lorenz")), "euler", "cupy")
    assert not re.search(r"^\s*(import|from)\s+modelc", source, re.M), "the generated module must not import modelc"
    saved = sys.modules.get("cupy")
    sys.modules["cupy"] = None   # import cupy -> ImportError
    try:
        with pytest.raises(ImportError, match=re.escape("pip install modelc[cupy]")):
            load_source(source, "no_cupy_module", tmp_path)
    finally:
        if saved is None:
            del sys.modules["cupy"]
        else:
            sys.modules["cupy"] = saved


@pytest.mark.parametrize("count", [None, 0])
def test_missing_gpu_names_the_install_extra(fake, count):
    mc = compile_model("model_templates.chaos.lorenz.lorenz", method="euler", backend="cupy")
    fake.runtime.device_count = count
    try:
        with pytest.raises(RuntimeError, match=re.escape("pip install modelc[cupy]")):
            mc.run({}, {}, {}, 0.01, 2)
        assert mc.strategy_for({})[0] == "fused"   # choosing needs no GPU
    finally:
        fake.runtime.device_count = 1


def test_structure_of_the_seed_module():
    """One fused kernel per stage (after one matmul), and the strategies' kernels."""
    system = build_system(load(SEED), [Connection("tanh_op/r", "li_op/r_in", "weights")])
    m = cupy_module(system, "rk4")
    assert m.launches.step_ops() == [op for s in range(1, 5) for op in (("matvec", "acc_0"), ("kernel", f"mc_stage{s}_g0"))]
    names = {k.name for k in m.kernels}
    assert {"mc_prologue_g0", "mc_persistent_g0", "mc_observe_l0_g0", "mc_observe_l1_g0"} <= names
    assert "mc_fused_g0" not in names    # a coupling: no fused loop
    euler = cupy_module(system, "euler")
    assert euler.launches.step_ops() == [("matvec", "acc_0"), ("kernel", "mc_stage1_g0")]


def test_recorded_computed_variables_are_checked_and_huge_records_refused(fake, tmp_path):
    """y = sqrt(x - 0.5) turns NaN once x decays below 0.5: the chunk check reads the records of
    computed variables too; records larger than the device can hold are a clear error."""
    (tmp_path / "decay.yaml").write_text('m:\n  base: OperatorTemplate\n  equations: ["x\' = -x", "y = sqrt(x - 0.5)"]\n'
                                         "  variables: {x: output(1.0), y: variable(0.0)}\n")
    mc = load_source(generate(build_system(load(f"{tmp_path / 'decay.yaml'}:m")), "euler", "cupy"), "decay_cupy",
                     tmp_path)
    with np.errstate(invalid="ignore"), pytest.raises(mc.NonFiniteError, match=r"variable 'm/y' became nan"):
        mc.run({"m/x": np.ones(3)}, {}, {}, 0.1, 20, record=["m/x", "m/y"])
    with pytest.raises(mc.InvalidValueError, match="the records need .* of device memory"):
        mc.run({"m/x": np.ones(3)}, {}, {}, 0.1, 10**15)
