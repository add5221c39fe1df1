"""White noise (`xi` in a differential equation): Euler-Maruyama for euler, stochastic Heun for heun.

References are independent of the generated code: analytic moments and solutions (Ornstein-
Uhlenbeck, geometric Brownian motion in Ito and in Stratonovich form) driven by the same
Brownian path, and hand-written NumPy loops. The path comes from the documented stream: a run
of one batch member with seed s draws from Generator(SFC64(SeedSequence(s).spawn(1)[0])), step by
step, the noisy states in NOISE order, each state's units in order; dW = sqrt(dt) * z.
"""
from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from modelc import Network
from modelc.errors import InvalidValueError, NoiseMethodError, UnsupportedFeatureError
from modelc.runtime.compiler import compile_model, compile_source

MODELS = """
ou:
  base: OperatorTemplate
  equations: "v' = -v/tau + sigma*xi"
  variables: {v: output(0.0), tau: 1.0, sigma: 1.0}
pair:
  base: OperatorTemplate
  equations: ["a' = -a/tau + xi", "b' = -b/tau + 2*a + sigma*xi"]
  variables: {a: output(0.0), b: output(0.0), tau: 0.5, sigma: 0.5}
gbm:
  base: OperatorTemplate
  equations: "x' = mu*x + s*x*xi"
  variables: {x: output(1.0), mu: 1.0, s: 1.0}
drive_op:
  base: OperatorTemplate
  equations: "v' = -v/tau + I_ext + sigma*xi"
  variables: {v: output(0.0), tau: 1.0, sigma: 1.0, I_ext: input(0.0)}
drive:
  base: NodeTemplate
  operators: [drive_op]
ou_mean:
  base: OperatorTemplate
  equations: "v' = (mu - v)/tau + sigma*xi"
  variables: {v: output(0.0), mu: 0.5, tau: 1.0, sigma: 0.4}
coupled_op:
  base: OperatorTemplate
  equations: "v' = -v/tau + I_ext + 0.1*r_in*xi"
  variables: {v: output(0.0), tau: 1.0, r_in: input(0.0), I_ext: input(0.0)}
tanh_op:
  base: OperatorTemplate
  equations: "r = tanh(v)"
  variables: {r: output(0.0), v: input(0.0)}
coupled:
  base: NodeTemplate
  operators: [coupled_op, tanh_op]
timed:
  base: OperatorTemplate
  equations: "v' = -v + (1 + sin(t))*xi"
  variables: {v: output(0.0)}
overflow:
  base: OperatorTemplate
  equations: ["v' = -v + 1/(1 + exp(w)) + sigma*xi", "w' = 1"]
  variables: {v: output(0.0), w: variable(709.0), sigma: 0.3}
"""


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    path = tmp_path_factory.mktemp("noise") / "noise.yaml"
    path.write_text(textwrap.dedent(MODELS), encoding="utf-8")
    compile_ = lambda template, **options: compile_model(f"{path}:{template}", **options)
    compile_.source = lambda template: compile_source(f"{path}:{template}")
    return compile_


def normals(seed, steps, units):
    """The standard normals a run of one member draws: (steps, units) in the documented order."""
    return sfc64(np.random.SeedSequence(seed).spawn(1)[0]).standard_normal((steps, units))


def sfc64(seed):
    return np.random.Generator(np.random.SFC64(seed))


# --- accuracy against analytic results -------------------------------------------------------

@pytest.mark.parametrize("method", ["euler", "heun"])
def test_ornstein_uhlenbeck_stationary_variance(models, method):
    """dv = -v/tau dt + sigma dW has the stationary variance sigma^2 tau / 2."""
    mod = models("ou", method=method)
    tau, sigma, dt, n = 1.0, 1.5, 0.01, 10_000
    every = int(round(tau / dt))  # rows one tau apart (correlation 1/e)
    rec = mod.run({"ou/v": np.zeros(n)}, {"ou/tau": tau, "ou/sigma": sigma}, dt=dt, steps=30 * every,
                  sampling_steps=every, seed=1)
    stationary = rec["ou/v"][5:]  # after 5 tau (the start's trace is e^-10)
    assert stationary.var() == pytest.approx(sigma**2 * tau / 2, rel=0.02)
    assert abs(stationary.mean()) < 0.02


def gbm_paths(mod, mu, s, dt, steps, paths, seed):
    """The scheme's X_T for `paths` units, and the Brownian motion W_T that drove each."""
    rec = mod.run({"gbm/x": np.ones(paths)}, {"gbm/mu": mu, "gbm/s": s}, dt=dt, steps=steps, record=[], seed=seed)
    w = (np.sqrt(dt) * normals(seed, steps, paths)).sum(axis=0)
    return rec["final"]["gbm/x"], w


def slope(dts, errors):
    return np.polyfit(np.log(dts), np.log(errors), 1)[0]


def test_euler_maruyama_strong_order_one_half_and_weak_order_one(models):
    """Ito GBM dX = mu X dt + s X dW: X_T = exp((mu - s^2/2) T + s W_T) for the same path."""
    mod = models("gbm", method="euler")
    dts = 2.0 ** -np.arange(3, 9)
    strong, weak = [], []
    for dt in dts:
        steps = int(round(1 / dt))
        x, w = gbm_paths(mod, 1.0, 1.0, dt, steps, 4000, seed=2)
        strong.append(np.mean(np.abs(x - np.exp(0.5 + w))))
        x, w = gbm_paths(mod, 1.0, 0.2, dt, steps, 4000, seed=3)
        # E[X_T] = e exactly: the mean of X_N - X_T on the same paths is E[X_N] - e, with small variance
        weak.append(abs(np.mean(x - np.exp(1.0 - 0.02 + 0.2 * w))))
        assert weak[-1] == pytest.approx(np.e - (1 + dt) ** steps, rel=0.1)  # E[X_N] = (1 + mu dt)^N exactly
    assert slope(dts, strong) == pytest.approx(0.5, abs=0.1)
    assert slope(dts, weak) == pytest.approx(1.0, abs=0.1)


def test_stochastic_heun_converges_to_stratonovich_with_order_one(models):
    """Stratonovich GBM dX = mu X dt + s X o dW: X_T = exp(mu T + s W_T); the Ito solution is far off."""
    mod = models("gbm", method="heun")
    dts = 2.0 ** -np.arange(4, 9)
    errors = []
    for dt in dts:
        x, w = gbm_paths(mod, 0.5, 0.8, dt, int(round(1 / dt)), 2000, seed=4)
        errors.append(np.mean(np.abs(x - np.exp(0.5 + 0.8 * w))))
    assert slope(dts, errors) == pytest.approx(1.0, abs=0.15)
    assert errors[-1] < 0.01
    assert np.mean(np.abs(x - np.exp(0.5 - 0.32 + 0.8 * w))) > 30 * errors[-1]


# --- the same numbers as a hand-written loop ---------------------------------------------------

def test_euler_maruyama_equals_a_hand_loop_with_two_independent_noises(models):
    """Two noisy states of 5 units: a' = -a/tau + xi, b' = -b/tau + 2a + sigma*xi, independent noises."""
    mod = models("pair", method="euler")
    assert mod.NOISE == ["pair/a", "pair/b"]
    tau, sigma, dt, steps, n = 0.5, 0.5, 0.01, 300, 5
    rec = mod.run({"pair/a": np.zeros(n), "pair/b": np.zeros(n)}, {}, dt=dt, steps=steps, seed=12, chunk_steps=64)
    dw = np.sqrt(dt) * normals(12, steps, 2 * n)  # each step: a's units, then b's
    a, b = np.zeros(n), np.zeros(n)
    expected_a, expected_b = [], []
    for i in range(steps):
        a, b = a * (1 - dt / tau) + dw[i, :n], b * (1 - dt / tau) + dt * 2 * a + sigma * dw[i, n:]
        expected_a.append(a)
        expected_b.append(b)
    np.testing.assert_allclose(rec["pair/a"], expected_a, rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(rec["pair/b"], expected_b, rtol=1e-12, atol=1e-14)
    # one unit runs in Python floats: the same numbers
    one = mod.run({"pair/a": [0.0], "pair/b": [0.0]}, {}, dt=dt, steps=steps, seed=12)
    dw = np.sqrt(dt) * normals(12, steps, 2)
    a = 0.0
    for i in range(steps):
        a = a * (1 - dt / tau) + dw[i, 0]
        assert one["pair/a"][i, 0] == a


def test_ornstein_uhlenbeck_equals_the_euler_maruyama_formula_exactly(models):
    mod = models("ou", method="euler")
    tau, sigma, dt, steps = 2.0, 0.7, 0.05, 200
    rec = mod.run({"ou/v": np.full(3, 0.25)}, {"ou/tau": tau, "ou/sigma": sigma}, dt=dt, steps=steps, seed=5)
    dw = np.sqrt(dt) * normals(5, steps, 3)
    v, expected = np.full(3, 0.25), []
    for i in range(steps):
        v = v * (1 - dt / tau) + sigma * dw[i]
        expected.append(v)
    np.testing.assert_array_equal(rec["ou/v"], expected)


@pytest.mark.parametrize("method", ["euler", "heun"])
def test_noise_beside_a_constant_drive_per_unit_in_a_batch(models, method):
    """dv = (mu - v)/tau dt + sigma dW, mu one value per unit, two batch members with their seeds."""
    mod = models("ou_mean", method=method, vector_params=["ou_mean/mu"])
    mu, tau, sigma, dt, steps = np.array([0.5, -1.0, 2.0]), 1.0, 0.4, 0.01, 150
    rec = mod.run({"ou_mean/v": np.zeros((2, 3))}, {"ou_mean/mu": mu}, dt=dt, steps=steps, seed=[3, 4])
    for b, seed in enumerate([3, 4]):
        dw = np.sqrt(dt) * normals(seed, steps, 3)
        v, expected = np.zeros(3), []
        for i in range(steps):
            rate = (mu - v) / tau
            if method == "heun":  # additive noise: the predictor's and the update's noise are the same
                rate = (rate + (mu - (v + rate * dt + sigma * dw[i])) / tau) / 2
            v = v + rate * dt + sigma * dw[i]
            expected.append(v)
        np.testing.assert_allclose(rec["ou_mean/v"][:, b], expected, rtol=1e-11, atol=1e-14)


@pytest.mark.parametrize("method", ["euler", "heun"])
def test_noise_whose_coefficient_reads_a_coupling_equals_a_hand_loop(models, method):
    """dv = (-v/tau + I) dt + 0.1 (W @ tanh(v)) dW: g reads the recurrent input (multiplicative)."""
    mod = models("coupled", method=method, coupling=dict(source_var="tanh_op/r", target_var="coupled_op/r_in",
                                                         input_var="coupled_op/I_ext", output_var="coupled_op/v"))
    rng = np.random.default_rng(0)
    weights, inputs, dt, steps = rng.normal(0, 1, (4, 4)), rng.normal(0, 1, (100, 4)), 0.01, 100
    rec = mod.run({"coupled_op/v": np.full(4, 0.5)}, {"weights": weights}, {"coupled_op/I_ext": inputs}, dt=dt,
                  steps=steps, seed=2)
    dw = np.sqrt(dt) * normals(2, steps, 4)
    v, expected = np.full(4, 0.5), []
    for i in range(steps):
        f, g = (lambda v: -v + inputs[i]), (lambda v: 0.1 * (weights @ np.tanh(v)))
        predictor = v + f(v) * dt + g(v) * dw[i]
        v = predictor if method == "euler" else v + (f(v) + f(predictor)) * dt / 2 + (g(v) + g(predictor)) * dw[i] / 2
        expected.append(v)
    np.testing.assert_allclose(rec["coupled_op/v"], expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("method", ["euler", "heun"])
def test_a_coefficient_in_time_is_taken_at_each_stage_time(models, method):
    """g(t) = 1 + sin(t): Euler takes it at the step's start (for the whole chunk at once), Heun at
    the start and at t + dt (in the stages)."""
    mod = models("timed", method=method)
    dt, steps, t0 = 0.05, 200, 0.3
    rec = mod.run({"timed/v": np.zeros(3)}, dt=dt, steps=steps, t0=t0, seed=4)
    dw, g = np.sqrt(dt) * normals(4, steps, 3), (lambda t: 1 + np.sin(t))
    v, expected = np.zeros(3), []
    for i in range(steps):
        t = t0 + i * dt
        predictor = v - v * dt + g(t) * dw[i]
        v = predictor if method == "euler" else v + (-v - predictor) * dt / 2 + (g(t) + g(t + dt)) * dw[i] / 2
        expected.append(v)
    np.testing.assert_allclose(rec["timed/v"], expected, rtol=1e-12, atol=1e-14)


def test_stochastic_heun_equals_a_hand_loop(models):
    mod = models("gbm", method="heun")
    mu, s, dt, steps, n = 0.3, 0.6, 0.02, 200, 4
    rec = mod.run({"gbm/x": np.ones(n)}, {"gbm/mu": mu, "gbm/s": s}, dt=dt, steps=steps, seed=6)
    dw = np.sqrt(dt) * normals(6, steps, n)
    x, expected = np.ones(n), []
    for i in range(steps):
        predictor = x + mu * x * dt + s * x * dw[i]
        x = x + (mu * x + mu * predictor) * dt / 2 + (s * x + s * predictor) * dw[i] / 2
        expected.append(x)
    np.testing.assert_allclose(rec["gbm/x"], expected, rtol=1e-13)


def test_a_single_unit_handed_over_to_numpy_draws_the_same_numbers(models):
    """One unit runs in Python floats until math.exp overflows (w > 709.78, in the second chunk);
    NumPy redraws that chunk from the same point of the stream (exp is inf there, 1/(1 + inf) = 0)."""
    mod = models("overflow")
    with np.errstate(over="ignore"):
        alone = mod.run({"overflow/v": [0.0]}, dt=0.01, steps=300, chunk_steps=64, seed=13)
        in_batch = mod.run({"overflow/v": [[0.0]]}, dt=0.01, steps=300, chunk_steps=64, seed=13)  # NumPy only
    np.testing.assert_allclose(alone["overflow/v"][:, 0], in_batch["overflow/v"][:, 0, 0], rtol=1e-12)
    assert alone["overflow/w"][-1, 0] > 711


def test_what_cannot_integrate_noise_says_so(models):
    with pytest.raises(NoiseMethodError) as caught:
        models("ou", method="rk4")
    assert caught.value.location.column == 35  # the xi in v' = -v/tau + sigma*xi
    with pytest.raises(UnsupportedFeatureError, match="gradients of a model with noise"):
        models("ou", trainable=["ou/tau"])
    assert models("ou").rhs(0.0, {"ou/v": np.array([2.0])})["ou/v"] == -2.0  # rhs() is the drift


# --- seeds, chunks, batches --------------------------------------------------------------------

def test_seeds_are_reproducible_and_distinct(models):
    mod = models("ou")
    run = lambda seed: mod.run({"ou/v": np.zeros(4)}, dt=0.01, steps=100, seed=seed)["ou/v"]
    np.testing.assert_array_equal(run(3), run(3))
    np.testing.assert_array_equal(run(3), run(np.random.SeedSequence(3)))
    assert not np.array_equal(run(3), run(4))
    assert not np.array_equal(run(None), run(None))  # fresh entropy


def test_a_run_in_chunks_or_in_parts_draws_the_numbers_of_one_run(models):
    mod = models("pair")
    y0 = {"pair/a": np.zeros(3), "pair/b": np.zeros(3)}
    whole = mod.run(y0, dt=0.01, steps=500, seed=8, chunk_steps=500)
    chunked = mod.run(y0, dt=0.01, steps=500, seed=8, chunk_steps=64)
    first = mod.run(y0, dt=0.01, steps=200, seed=8)
    rest = mod.run(first["final"], dt=0.01, steps=300, t0=2.0, seed=first["rng"])
    for name in ("pair/a", "pair/b"):
        np.testing.assert_array_equal(chunked[name], whole[name])
        np.testing.assert_array_equal(np.concatenate([first[name], rest[name]]), whole[name])


def test_a_batch_equals_single_runs_with_the_same_seeds(models):
    mod = models("ou", vector_params=["ou/sigma"])
    sigmas = np.array([[0.5], [1.0], [2.0]])
    batch = mod.run({"ou/v": np.zeros((3, 4))}, {"ou/sigma": sigmas}, dt=0.01, steps=150, seed=[5, 6, 7])
    spawned = mod.run({"ou/v": np.zeros((3, 4))}, {"ou/sigma": sigmas}, dt=0.01, steps=150, seed=9)
    children = np.random.SeedSequence(9).spawn(3)
    for b, seed in enumerate([5, 6, 7]):
        single = mod.run({"ou/v": np.zeros(4)}, {"ou/sigma": sigmas[b]}, dt=0.01, steps=150, seed=seed)
        np.testing.assert_array_equal(batch["ou/v"][:, b], single["ou/v"])
        member = mod.run({"ou/v": np.zeros(4)}, {"ou/sigma": sigmas[b]}, dt=0.01, steps=150,
                         seed=sfc64(children[b]))
        np.testing.assert_array_equal(spawned["ou/v"][:, b], member["ou/v"])


@pytest.mark.parametrize("seed, message", [
    (-1, "seed must be None, an int >= 0, a numpy SeedSequence or Generator, or a list of one per batch member, "
         "got -1"),
    ("a", "seed must be None, an int >= 0, a numpy SeedSequence or Generator, or a list of one per batch member, "
          "got 'a'"),
    ([1, 2], "seed has 2 entries but the run has 3 batch member(s)"),
])
def test_a_bad_seed_is_a_clear_error(models, seed, message):
    mod = models("ou")
    with pytest.raises(InvalidValueError) as caught:
        mod.run({"ou/v": np.zeros((3, 2))}, dt=0.01, steps=10, seed=seed)
    assert caught.value.message == message


def test_the_generated_module_draws_its_noise_without_modelc(models, tmp_path):
    path = tmp_path / "pair.py"
    path.write_text(models.source("pair"), encoding="utf-8")
    script = ("import sys, importlib.util; sys.modules['modelc'] = None\n"
              f"spec = importlib.util.spec_from_file_location('pair', {str(path)!r})\n"
              "mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)\n"
              "print(repr(float(mod.run({'pair/b': [0.0, 0.0]}, dt=0.01, steps=50, seed=7)['pair/b'][-1, 1])))")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    expected = models("pair").run({"pair/b": [0.0, 0.0]}, dt=0.01, steps=50, seed=7)["pair/b"][-1, 1]
    assert float(out) == expected


# --- the Network ----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def drive(tmp_path_factory):
    path = tmp_path_factory.mktemp("noise_net") / "noise.yaml"
    path.write_text(textwrap.dedent(MODELS), encoding="utf-8")
    return f"{path}:drive"


def make_net(drive, sigma=1.0):
    net = Network(dt=0.01)
    net.add_diffeq_node("p", drive, input_var="drive_op/I_ext", output_var="drive_op/v", N=3,
                        node_vars={"drive_op/sigma": sigma})
    return net


def test_network_runs_go_on_with_the_noise_of_the_last_run(drive):
    inputs = np.full((400, 3), 0.5)
    whole = make_net(drive).run(inputs, seed=21)["out"]
    net = make_net(drive)
    parts = np.concatenate([net.run(inputs[:150], seed=21)["out"], net.run(inputs[150:])["out"]])
    np.testing.assert_array_equal(parts, whole)
    net.reset()
    np.testing.assert_array_equal(net.run(inputs, seed=21)["out"], whole)


def test_network_sweep_equals_single_runs_with_the_same_seeds(drive):
    sigmas = [0.5, 1.0, 2.0]
    swept = make_net(drive).sweep({"drive_op/sigma": sigmas}, steps=200, seed=[31, 32, 33])["out"]
    for b, sigma in enumerate(sigmas):
        single = make_net(drive, sigma).run(steps=200, seed=30 + b + 1)["out"]
        np.testing.assert_array_equal(swept[:, b], single)


def test_a_sweep_in_chunks_draws_the_numbers_of_one_batch(drive):
    """chunk_size= (or a scheduler, a store) splits the sets, never their streams: each chunk
    draws what its sets draw in the one batched sweep, for an int seed and for a list."""
    pytest.importorskip("xarray")
    sigmas = [0.5, 1.0, 2.0]
    for seed in (12, [4, 5, 6]):
        batched = make_net(drive).sweep({"drive_op/sigma": sigmas}, steps=50, seed=seed)["out"]
        chunked = make_net(drive).sweep({"drive_op/sigma": sigmas}, steps=50, seed=seed, chunk_size=2)
        np.testing.assert_array_equal(chunked["out"].transpose("drive_op.sigma", "time", "unit").values,
                                      np.moveaxis(batched, 1, 0))
    with pytest.raises(InvalidValueError, match="seed has 2 entries but the sweep has 3 sets"):
        make_net(drive).sweep({"drive_op/sigma": sigmas}, steps=10, chunk_size=1, seed=[1, 2])


def test_simulate_takes_a_seed_and_draws_the_documented_stream(drive):
    """modelc.simulate(..., seed=) is one run of the template: Euler-Maruyama on the seed's stream."""
    import modelc
    ou = drive.replace(":drive", ":ou")
    tau, sigma, dt, steps = 1.0, 1.0, 0.02, 100  # the template's tau and sigma
    obs = modelc.simulate(ou, T=steps * dt, dt=dt, outputs={"v": "ou/v"}, seed=7)
    dw = np.sqrt(dt) * normals(7, steps, 1)[:, 0]
    v, expected = 0.0, []
    for i in range(steps):
        v = v * (1 - dt / tau) + sigma * dw[i]
        expected.append(v)
    np.testing.assert_allclose(obs["v"][:, 0], expected, rtol=0, atol=1e-15)
    again = modelc.simulate(ou, T=steps * dt, dt=dt, outputs={"v": "ou/v"}, seed=7)
    np.testing.assert_array_equal(again["v"], obs["v"])
