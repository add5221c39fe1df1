"""The numba kernel's vectorizable tanh and exp (modelc/codegen/numba/functions.py) against NumPy's,
on millions of points over their whole range and at the edges (0, -0, subnormals, where exp
overflows and underflows, where tanh rounds to 1, inf, NaN): the largest difference in units in
the last place. The helpers are loaded as a generated module loads them (their printed text), each
called from a loop over an array, which LLVM must vectorize (what they are for)."""
from __future__ import annotations

import importlib.util
from decimal import Decimal, localcontext

import numpy as np
import pytest
import sympy

pytestmark = pytest.mark.skipif(not importlib.util.find_spec("numba"),
                                reason="the numba kernel's helpers need numba (pip install modelc[compiled])")

LOOPS = '''

@numba.njit(error_model="numpy")
def tanh_loop(x, out):
    for j in range(x.shape[0]):
        out[j] = _tanh(x[j])


@numba.njit(error_model="numpy")
def exp_loop(x, out):
    for j in range(x.shape[0]):
        out[j] = _exp(x[j])
'''


@pytest.fixture(scope="module")
def helpers(tmp_path_factory):
    from modelc.codegen.numba.functions import helper_texts
    path = tmp_path_factory.mktemp("helpers") / "numba_helpers.py"
    path.write_text("import math\n\nimport numba\nimport numpy as np\n\n\n" +
                    "\n\n\n".join(helper_texts({sympy.tanh, sympy.exp})) + LOOPS)
    spec = importlib.util.spec_from_file_location("numba_helpers", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ulps(got: np.ndarray, want: np.ndarray) -> np.ndarray:
    """|got - want| in units of want's last place (equal values, infinities of one sign and two NaNs: 0)."""
    same = (got == want) | (np.isnan(got) & np.isnan(want))
    with np.errstate(invalid="ignore", over="ignore"):
        return np.where(same, 0.0, np.abs(got - want) / np.spacing(np.abs(want)))


def evaluate(loop, x: np.ndarray) -> np.ndarray:
    out = np.empty_like(x)
    loop(x, out)
    return out


EDGES = [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1e-300, -1e-300, np.inf, -np.inf, np.nan, 1e308,
         -1e308, 0.625, -0.625, np.nextafter(0.625, 1), 19.06, 20.0, 22.0, 709.78, 709.79, 710.0, -708.4, -745.13,
         -745.14, -746.0, -1000.0]


def points(rng, scale: float) -> np.ndarray:
    """Uniform over [-scale, scale], normal around 0, logarithmic from 1e-320 to 1e3 of either sign, the edges."""
    log = 10.0 ** rng.uniform(-320, 3, 1_000_000) * rng.choice([-1.0, 1.0], 1_000_000)
    return np.concatenate([rng.uniform(-scale, scale, 2_000_000), rng.standard_normal(1_000_000), log, EDGES])


def test_tanh_within_3_ulp_of_numpy_everywhere(helpers):
    x = points(np.random.default_rng(0), 25.0)
    got, want = evaluate(helpers.tanh_loop, x), np.tanh(x)
    assert ulps(got, want).max() <= 3
    small = np.abs(x) < 2.0 ** -27  # tanh(x) rounds to x there
    np.testing.assert_array_equal(got[small], x[small])


def test_tanh_edges_as_numpy(helpers):
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 19.1, -19.1, 1e308, 5e-324])
    got = evaluate(helpers.tanh_loop, x)
    np.testing.assert_array_equal(got, [0.0, -0.0, 1.0, -1.0, np.nan, 1.0, -1.0, 1.0, 5e-324])
    assert np.signbit(got[1]) and not np.signbit(got[0])


def test_exp_within_1_ulp_of_numpy_everywhere(helpers):
    x = points(np.random.default_rng(1), 750.0)
    with np.errstate(over="ignore"):
        want = np.exp(x)
    got = evaluate(helpers.exp_loop, x)
    tiny = np.abs(want) < np.finfo(float).tiny  # (0 and the subnormals: not NaN)
    assert ulps(got[~tiny], want[~tiny]).max() <= 1
    assert np.abs(got[tiny] - want[tiny]).max() <= 5e-324  # one step of the smallest subnormal


def test_exp_rounds_as_the_exact_value_but_rarely(helpers):
    """Against e^x to 40 digits (decimal): misrounded (by 1 ulp) in under 1 % of the arguments (the
    C library's exp: about 0.1 %; NumPy's SIMD exp: about 5 %)."""
    x = np.random.default_rng(2).uniform(-30.0, 30.0, 20_000)
    with localcontext() as context:
        context.prec = 40
        exact = np.array([float(Decimal(v).exp()) for v in x])
    got = evaluate(helpers.exp_loop, x)
    assert ulps(got, exact).max() <= 1
    assert np.mean(got != exact) < 0.01


def test_exp_edges_as_numpy(helpers):
    x = np.array([0.0, -0.0, np.inf, -np.inf, np.nan, 709.79, 1e308, -745.2, -1e308, 709.78])
    got = evaluate(helpers.exp_loop, x)
    np.testing.assert_array_equal(got[:9], [1.0, 1.0, np.inf, 0.0, np.nan, np.inf, np.inf, 0.0, 0.0])
    assert np.isfinite(got[9]) and ulps(got[9:], np.exp(x[9:])).max() <= 1


@pytest.mark.parametrize("loop", ["tanh_loop", "exp_loop"])
def test_loops_of_the_helpers_vectorize(helpers, loop):
    """LLVM turns a loop of a helper into vector instructions (no libm call in it): the point of them."""
    ir = "".join(getattr(helpers, loop).inspect_llvm().values())
    assert "x double>" in ir
    assert "@tanh" not in ir and "@exp" not in ir
