"""Delays: past(x, tau) / x(t - tau) in equation text, an edge's delay and spread (issue 15).

The rule for every scheme (codegen/step.py: Remember, Recall): each step's start value of a
delayed variable joins a ring buffer; a stage at time t reads the value at t - tau, linear
between the stored step values (exact at whole steps: Euler with a delay of whole steps reads
stored values only). Before t0: past() reads the state's initial value, an edge's delay zero.
References: the method-of-steps solution of x' = -x(t - 1), and hand-written NumPy loops that
apply the same rule.
"""
from __future__ import annotations

import numpy as np
import pytest

from modelc.errors import DelayError, UnsupportedFeatureError
from modelc.runtime.compiler import compile_model, compile_source

MODELS = """
dde:
  base: OperatorTemplate
  equations: "x' = -x(t-d)"
  variables: {x: output(1.0), d: 1.0}
dde2:
  base: OperatorTemplate
  equations: "x' = -x - 2*past(x, d)"
  variables: {x: output(1.0), d: 1.0}
li_op:
  base: OperatorTemplate
  equations: ["v' = -v/tau + r_in", "r = tanh(v)"]
  variables: {v: output(0.5), r: output(0.0), tau: 2.0, r_in: input(0.0)}
li:
  base: NodeTemplate
  operators: [li_op]
pair:
  base: CircuitTemplate
  nodes: {a: li, b: li}
  edges:
    - [a/li_op/r, b/li_op/r_in, null, {weight: 2.0, delay: 0.35}]
    - [b/li_op/v, a/li_op/r_in, null, {weight: -1.0, delay: 0.2}]
spread:
  base: CircuitTemplate
  nodes: {a: li, b: li}
  edges:
    - [a/li_op/r, b/li_op/r_in, null, {weight: 2.0, delay: 1.0, spread: 0.4}]
    - [b/li_op/r, a/li_op/r_in, null, {weight: -1.0}]
one_op:
  base: OperatorTemplate
  equations: "v' = -v + 0.5*tanh(past(v, 0.2))"
  variables: {v: output(0.3)}
leak_op:
  base: OperatorTemplate
  equations: "v' = -v + 0.5*r"
  variables: {v: output(0.3), r: input(0.0)}
delayed_tanh_op:
  base: OperatorTemplate
  equations: "r = tanh(v(t - 0.2))"
  variables: {r: output(0.0), v: input(0.0)}
two_ops:
  base: NodeTemplate
  operators: [leak_op, delayed_tanh_op]
bad_past:
  base: OperatorTemplate
  equations: ["x' = -past(y, 1.0)", "y = 2*x"]
  variables: {x: output(1.0), y: variable(0.0)}
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    path = tmp_path_factory.mktemp("delays") / "delays.yaml"
    path.write_text(MODELS)
    return lambda name, **options: compile_model(f"{path}:{name}", **options)


def _method_of_steps(t):
    """x' = -x(t - 1), x = 1 for t <= 0, on [0, 3]."""
    return 1 - t + np.where(t > 1, (t - 1) ** 2 / 2, 0) - np.where(t > 2, (t - 2) ** 3 / 6, 0)


def _recall(past, back):
    """The hand loops' rule: `back` steps (>= 0) before the last entry of past, linear between."""
    whole = int(back)
    later = past[len(past) - 1 - whole]
    fraction = back - whole
    return later if fraction == 0 else (1 - fraction) * later + fraction * past[len(past) - 2 - whole]


@pytest.mark.parametrize("method, order", [("euler", 1), ("heun", 2), ("rk4", 2)])
def test_linear_delay_equation_converges(models, method, order):
    """x' = -x(t-1) against the method of steps on [0, 3]; the error falls at the scheme's order
    (rk4 at 2: its half-step stages read the history between steps, linearly)."""
    module = models("dde", method=method)
    errors = []
    for dt in (0.02, 0.01):
        steps = int(round(3 / dt))
        x = module.run({"dde/x": np.ones(1)}, dt=dt, steps=steps)["dde/x"][:, 0]
        errors.append(abs(x - _method_of_steps(dt * np.arange(1, steps + 1))).max())
    assert errors[1] < 0.02 * 3 ** order  # (dt = 0.01 is small)
    assert errors[0] / errors[1] == pytest.approx(2 ** order, rel=0.15)


def _steps_reference(tau, end):
    """x' = -x - 2 x(t - tau), x = 1 for t <= 0, by the method of steps: solve_ivp on each
    interval of length tau, reading the interval before through its dense output."""
    from scipy.integrate import solve_ivp
    pieces = [lambda t: np.ones_like(t)]
    start, x0 = 0.0, 1.0
    while start < end:
        before = pieces[-1]
        solution = solve_ivp(lambda t, x, before=before: -x - 2 * before(t - tau), (start, start + tau), [x0],
                             dense_output=True, rtol=1e-12, atol=1e-13)
        pieces.append(lambda t, f=solution.sol: f(t)[0])
        start, x0 = start + tau, solution.y[0, -1]

    def x(t):
        return np.array([pieces[min(int(s // tau) + 1, len(pieces) - 1)](s) for s in t])
    return x


@pytest.mark.parametrize("tau, largest_dt", [(1.0, 0.1), (1.5, 0.07)])
@pytest.mark.parametrize("method, order", [("euler", 1), ("heun", 2), ("rk4", 2)])
def test_delay_equation_converges_at_the_schemes_order(models, tau, largest_dt, method, order):
    """Issue 15's check: x' = -x(t) - 2 x(t - tau) with history 1 on [-tau, 0], against the
    method of steps: tau = 1 a whole number of steps (dt = 0.1 ... 0.0125), tau = 1.5 not (dt =
    0.07 ... 0.00875). The solution has kinks (t = 0, tau, ...) that the steps need not meet, so
    the order is the slope of log(error) over four step sizes."""
    pytest.importorskip("scipy")
    module = models("dde2", method=method)
    reference = _steps_reference(tau, 3.5)
    sizes, errors = largest_dt / 2 ** np.arange(4), []
    for dt in sizes:
        steps = int(round(3.5 / dt))
        x = module.run({}, params={"dde2/d": tau}, dt=dt, steps=steps)["dde2/x"][:, 0]
        errors.append(abs(x - reference(dt * np.arange(1, steps + 1))).max())
    slope = np.polyfit(np.log(sizes), np.log(errors), 1)[0]
    assert slope == pytest.approx(order, abs=0.3)


@pytest.mark.parametrize("method", ["euler", "heun", "rk4"])
def test_delay_not_a_multiple_of_dt_equals_hand_loop(models, method):
    """x' = -x - 2 x(t - 1.5) with dt = 0.04 (1.5/0.04 = 37.5 steps), against a hand loop."""
    module = models("dde2", method=method)
    dt, steps, back = 0.04, 150, 1.5 / 0.04
    x = module.run({"dde2/x": np.ones(1)}, params={"dde2/d": 1.5}, dt=dt, steps=steps)["dde2/x"][:, 0]
    tableau = {"euler": ([0.0], [1.0]), "heun": ([0.0, 1.0], [0.5, 0.5]),
               "rk4": ([0.0, 0.5, 0.5, 1.0], [1 / 6, 1 / 3, 1 / 3, 1 / 6])}[method]
    past, value, expected = [1.0] * 40, 1.0, []
    for _ in range(steps):
        past.append(value)
        k = []
        for j, c in enumerate(tableau[0]):
            stage = value + dt * ({0: 0.0, 1: k[-1] * (1.0 if method == "heun" else 0.5),
                                   2: k[-1] * 0.5, 3: k[-1]}[j] if j else 0.0)
            k.append(-stage - 2 * _recall(past, back - c))
        value = value + dt * sum(b * kj for b, kj in zip(tableau[1], k))
        expected.append(value)
    np.testing.assert_allclose(x, expected, rtol=0, atol=1e-12)


def _pair_loop(dt, steps, method, v0):
    """Hand loop of the `pair` circuit: edges delayed by 0.35 and 0.2, zero before t0."""
    tau = 2.0
    va, vb = v0
    ra_past, vb_past = [0.0] * 40, [0.0] * 40
    out = []
    stages = [0.0] if method == "euler" else [0.0, 1.0]
    for _ in range(steps):
        ra_past.append(np.tanh(va))
        vb_past.append(vb)
        ks = []
        for c in stages:
            a = va + (dt * ks[-1][0] if c else 0.0)
            b = vb + (dt * ks[-1][1] if c else 0.0)
            ks.append((-a / tau - 1.0 * _recall(vb_past, 0.2 / dt - c),
                       -b / tau + 2.0 * _recall(ra_past, 0.35 / dt - c)))
        weights = [1.0] if method == "euler" else [0.5, 0.5]
        va += dt * sum(w * k[0] for w, k in zip(weights, ks))
        vb += dt * sum(w * k[1] for w, k in zip(weights, ks))
        out.append((va, vb))
    return np.array(out)


@pytest.mark.parametrize("method, dt", [("euler", 0.05), ("heun", 0.05), ("heun", 0.03)])
def test_edge_delays_equal_hand_loop(models, method, dt):
    """An edge delay of a state and of a computed variable (tanh), whole steps and not."""
    module = models("pair", method=method)
    rec = module.run({"a/li_op/v": np.full(1, 0.5), "b/li_op/v": np.full(1, -0.3)}, dt=dt, steps=120,
                     record=["a/li_op/v", "b/li_op/v", "b/li_op/r_in"])
    expected = _pair_loop(dt, 120, method, (0.5, -0.3))
    np.testing.assert_allclose(rec["a/li_op/v"][:, 0], expected[:, 0], rtol=0, atol=1e-12)
    np.testing.assert_allclose(rec["b/li_op/v"][:, 0], expected[:, 1], rtol=0, atol=1e-12)
    # the recorded input reads the history at the step's end: 2*tanh(v_a(t + dt - 0.35))
    if method == "euler":
        shifted = np.concatenate([np.zeros(6), np.tanh(np.r_[0.5, expected[:, 0]])])[:120]
        np.testing.assert_allclose(rec["b/li_op/r_in"][:, 0], 2 * shifted, rtol=0, atol=1e-12)


def test_spread_is_the_gamma_chain(models):
    """spread: PyRates' chain of round((1.0/0.4)^2) = 6 linear ODEs at rate 6, starting at 0."""
    module = models("spread", method="euler")
    assert sum(name.startswith("a/li_op/r_d") for name in module.STATES) == 6
    dt, steps = 0.01, 400
    rec = module.run({}, dt=dt, steps=steps, record=["a/li_op/v", "b/li_op/v"])
    va, vb, z = 0.5, 0.5, np.zeros(6)
    expected = []
    for _ in range(steps):
        source = np.r_[np.tanh(va), z[:-1]]
        dz = 6.0 * (source - z)
        dva, dvb = -va / 2 - np.tanh(vb), -vb / 2 + 2 * z[-1]
        va, vb, z = va + dt * dva, vb + dt * dvb, z + dt * dz
        expected.append((va, vb))
    np.testing.assert_allclose(np.c_[rec["a/li_op/v"][:, 0], rec["b/li_op/v"][:, 0]], expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name, method", [("dde2", "heun"), ("pair", "rk4")])
def test_run_in_two_parts_equals_one_run(models, name, method):
    module = models(name, method=method)
    one = module.run({}, dt=0.03, steps=200)
    first = module.run({}, dt=0.03, steps=77)
    second = module.run(first["final"], dt=0.03, steps=123, history=first["history"])
    for state in module.STATES:
        np.testing.assert_array_equal(np.concatenate([first[state], second[state]]), one[state])
    with pytest.raises(ValueError, match="dt"):
        module.run(first["final"], dt=0.02, steps=5, history=first["history"])


@pytest.mark.parametrize("name, method", [("pair", "heun"), ("dde2", "rk4"), ("spread", "euler")])
def test_python_floats_equal_numpy_arrays(models, name, method):
    """A single unit runs in Python floats (floats.py), with a batch axis of one in NumPy arrays."""
    module = models(name, method=method)
    record = list(module.STATES) + [n for n in module.OUTPUTS if n.endswith("r_in")]
    floats = module.run({}, dt=0.05, steps=80, record=record)
    arrays = module.run({n: v[None] for n, v in module.initial_state(1).items()}, dt=0.05, steps=80, record=record)
    for name_ in record:
        np.testing.assert_allclose(floats[name_][:, 0], arrays[name_][:, 0, 0], rtol=0, atol=1e-13)
    for source, buffer in floats.get("history", {"buffers": {}})["buffers"].items():  # (a spread has none)
        np.testing.assert_allclose(buffer[:, 0], arrays["history"]["buffers"][source][:, 0, 0], rtol=0, atol=1e-13)


def test_batch_equals_runs_one_by_one(models):
    """A batch of initial states (and of units): each member runs as it would alone."""
    module = models("pair", method="heun")
    v0 = np.array([[0.5, -0.2, 1.0], [0.1, 0.4, -0.7]])  # (batch 2, 3 units)
    batch = module.run({"a/li_op/v": v0, "b/li_op/v": -v0}, dt=0.05, steps=60)
    for b in range(2):
        for unit in range(3):
            alone = module.run({"a/li_op/v": v0[b, unit:unit + 1], "b/li_op/v": -v0[b, unit:unit + 1]},
                               dt=0.05, steps=60)
            np.testing.assert_allclose(batch["b/li_op/v"][:, b, unit], alone["b/li_op/v"][:, 0], rtol=0, atol=1e-14)


def test_spellings_of_a_delay():
    """x(t - tau) is past(x, tau) (PyRates' two spellings), x(t) is x, and the text printed for an
    edited equation reads back as the same expression."""
    from modelc.equations import equation_text, parse_equation
    equation = parse_equation("x' = -x(t - d) + y(t) + past(z, 2*d)")
    assert equation.rhs == parse_equation("x' = -past(x, d) + y + past(z, 2*d)").rhs
    assert parse_equation(equation_text(equation.kind, equation.target, equation.rhs)).rhs == equation.rhs


def test_past_of_an_input_wired_to_a_state(models):
    """x(t - tau) of an input that another operator's state feeds is that state's past."""
    one = models("one_op", method="heun").run({}, dt=0.05, steps=40)["one_op/v"]
    two = models("two_ops", method="heun").run({}, dt=0.05, steps=40)["leak_op/v"]
    np.testing.assert_allclose(two, one, rtol=0, atol=1e-15)


def test_network_runs_go_on_with_their_histories(tmp_path):
    """Network.run twice equals one run of both lengths (the histories go on); reset() starts a
    new history; calls that would run in parts or from a batch refuse delays."""
    from modelc import Network
    path = tmp_path / "delays.yaml"
    path.write_text(MODELS)
    weights = np.array([[0.0, 1.5, -0.5], [0.8, 0.0, 0.2], [-1.0, 0.4, 0.0]])
    inputs = np.sin(np.arange(120)[:, None] * np.array([0.1, 0.2, 0.3]))
    net = Network(dt=0.05)
    net.add_diffeq_node("p", f"{path}:two_ops", weights=weights, source_var="delayed_tanh_op/r",
                        target_var="leak_op/r", input_var="leak_op/r", output_var="leak_op/v", method="heun")
    one = net.run(inputs)["out"]
    net.reset()
    parts = np.concatenate([net.run(inputs[:50])["out"], net.run(inputs[50:])["out"]])
    np.testing.assert_array_equal(parts, one)
    with pytest.raises(UnsupportedFeatureError, match="delays"):
        net.fit_ridge(inputs, np.zeros((120, 3)))
    net.reset()
    np.testing.assert_array_equal(net.run(inputs)["out"], one)


@pytest.mark.parametrize("method", ["euler", "heun"])
def test_add_edge_delays_one_per_source_unit(method):
    """RectiPy's add_edge(delays=...): b's input reads unit j of a as it was delays[j] steps ago
    (0 before the run), against a hand loop with the same rule; two runs equal one."""
    from modelc import Network
    tanh = "neuron_model_templates.rate_neurons.leaky_integrator.tanh"
    rng = np.random.default_rng(3)
    w_ab, delays, dt, steps = rng.normal(0, 1, (2, 3)), np.array([1, 4, 7]), 0.5, 40
    inputs = rng.normal(0, 1, (steps, 3))

    def network():
        net = Network(dt=dt)
        net.add_diffeq_node("a", tanh, input_var="li_op/I_ext", output_var="tanh_op/r", N=3, method=method)
        net.add_diffeq_node("b", tanh, input_var="li_op/r_in", output_var="li_op/v", N=2, method=method)
        net.add_edge("a", "b", weights=w_ab, delays=delays)
        return net
    out = network().run(inputs)["out"]
    va, vb, history, expected = np.zeros(3), np.zeros(2), [np.zeros(3)] * 8, []
    for u in inputs:
        history = history + [np.tanh(va)]
        read = [np.array([history[-1 - int(d - c)][j] for j, d in enumerate(delays)])
                for c in ([0.0] if method == "euler" else [0.0, 1.0])]
        k1a, k1b = -va / 10 + u, -vb / 10 + w_ab @ read[0]
        if method == "euler":
            va, vb = va + dt * k1a, vb + dt * k1b
        else:
            k2a, k2b = -(va + dt * k1a) / 10 + u, -(vb + dt * k1b) / 10 + w_ab @ read[1]
            va, vb = va + dt / 2 * (k1a + k2a), vb + dt / 2 * (k1b + k2b)
        expected.append(vb)
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)
    net = network()
    np.testing.assert_array_equal(np.concatenate([net.run(inputs[:13])["out"], net.run(inputs[13:])["out"]]), out)
    with pytest.raises(ValueError, match="whole numbers of steps >= 1"):
        network().add_edge("b", "a", weights=np.ones((3, 2)), delays=[0, 1])


def test_one_delay_per_unit(models):
    """past(x, d) with d given per unit: each unit as it runs alone with its own d."""
    module = models("dde2", method="heun", vector_params=["dde2/d"])
    both = module.run({"dde2/x": np.array([1.0, 0.5])}, params={"dde2/d": np.array([1.0, 1.5])}, dt=0.1, steps=40)
    for unit, d in enumerate([1.0, 1.5]):
        alone = module.run({"dde2/x": np.array([[1.0, 0.5][unit]])[None]}, params={"dde2/d": d}, dt=0.1, steps=40)
        np.testing.assert_allclose(both["dde2/x"][:, unit], alone["dde2/x"][:, 0, 0], rtol=0, atol=1e-14)


def test_delay_shorter_than_the_step_is_refused(models):
    module = models("dde", method="euler")
    with pytest.raises(ValueError, match="shorter than the step"):
        module.run({}, dt=0.5, steps=3, params={"dde/d": 0.2})


def test_delay_of_a_computed_variable_in_equation_text_is_refused(models):
    with pytest.raises(DelayError, match="not a state"):
        models("bad_past")


@pytest.mark.parametrize("backend", ["cupy"])  # (numba: tests/test_numba_delays.py)
def test_other_backends_refuse_delays_by_name(models, tmp_path, backend):
    path = tmp_path / "dde.yaml"
    path.write_text(MODELS)
    with pytest.raises(UnsupportedFeatureError, match="Recall"):
        compile_source(f"{path}:dde", backend=backend)


def test_gradients_of_a_delayed_model_are_refused(tmp_path):
    path = tmp_path / "dde.yaml"
    path.write_text(MODELS)
    with pytest.raises(UnsupportedFeatureError, match="delays"):
        compile_source(f"{path}:dde2", trainable=["dde2/d"])
