"""SymPy -> C expressions for the bodies of GPU kernels (CUDA C, also plain C99 for tests).

Built on SymPy's C99CodePrinter, with a closed function map: everything a model may contain
(see modelc.equations) is printed, anything else is refused at compile time with
UnsupportedFeatureError -- never a silent fallback. What the map does:

- float32 and float64: REAL is the kernel's element type; literals are spelled `0.5` or
  `0.5f`, functions `exp` or `expf` (C and CUDA both have the `f` variants).
- Integer powers become multiplications (`v*v*v`), x^(1/2) `sqrt`, x^(-1/2) `1/sqrt`,
  x^(1/3) `cbrt`; other powers `pow`.
- exprel, heaviside, sign, min and max are small helper functions (c_helpers) that follow
  NumPy exactly, NaN propagation included (C's fmin would hide a NaN).
- where/Piecewise become nested conditional expressions; comparisons in arithmetic (which
  the parser turns into Piecewise((1, rel), (0, True))) become `(a < b ? 1.0 : 0.0)`.
- Population reductions (mean, sum) and matrix couplings are not element-wise: the CuPy
  backend takes them out of the expressions before printing; meeting one here is a bug.
"""
from __future__ import annotations

import math
from typing import Iterable

import sympy
from sympy.core.numbers import equal_valued
from sympy.printing.c import C99CodePrinter
from sympy.printing.precedence import PRECEDENCE, precedence

from ..equations import Exprel
from ..errors import UnsupportedFeatureError
from .printers import ChoicesMixin

_SUPPORTED = ("exp, log, sqrt, abs, sign, sin, cos, tan, asin, acos, atan, atan2, sinh, cosh, tanh, asinh, "
              "acosh, atanh, sigmoid, heaviside, exprel, min, max, where, mean, sum, powers and comparisons")
_HINT = f"the CuPy kernels can compute {_SUPPORTED}"

# Exponents up to this are written as products (x^12 is 11 multiplications: still cheaper and
# more accurate on a GPU than pow's exp/log pair).
MAX_MULTIPLIED_EXPONENT = 16

# sympy class name -> C function name (float64 spelling; float32 adds an "f")
_C_FUNCTIONS = {
    "exp": "exp", "log": "log", "sin": "sin", "cos": "cos", "tan": "tan",
    "asin": "asin", "acos": "acos", "atan": "atan", "atan2": "atan2",
    "sinh": "sinh", "cosh": "cosh", "tanh": "tanh",
    "asinh": "asinh", "acosh": "acosh", "atanh": "atanh",
    "Abs": "fabs", "floor": "floor", "ceiling": "ceil",
}

# Reserved words of C and C++ (NVRTC compiles as C++) and the CUDA names a kernel sees: a model
# variable is never printed under one of these names.
C_RESERVED = frozenset("""
    auto break case char const continue default do double else enum extern float for goto if
    inline int long register restrict return short signed sizeof static struct switch typedef
    union unsigned void volatile while _Bool _Complex _Imaginary bool true false class new delete
    this template typename namespace using operator private public protected virtual friend
    throw try catch explicit mutable static_cast const_cast dynamic_cast reinterpret_cast
    nullptr constexpr decltype noexcept alignas alignof asm export typeid wchar_t char16_t
    char32_t and or not xor bitand bitor compl and_eq or_eq xor_eq not_eq thread_local
    threadIdx blockIdx blockDim gridDim warpSize REAL
    exp log sqrt cbrt pow sin cos tan asin acos atan atan2 sinh cosh tanh asinh acosh atanh
    fabs floor ceil expm1 log1p fmin fmax isnan isinf j0 j1 jn y0 y1 yn erf erfc gamma
    signbit round trunc rint fmod remainder
""".split())


# The helper function (c_helpers) each SymPy function type is printed as.
_HELPER_OF = {Exprel: "mc_exprel", sympy.Heaviside: "mc_heaviside", sympy.sign: "mc_sign",
              sympy.Min: "mc_min", sympy.Max: "mc_max"}


def helpers_of(expr: sympy.Expr) -> set[str]:
    """The helper functions the printed expr calls (from its function types)."""
    return {_HELPER_OF[type(f)] for f in expr.atoms(*_HELPER_OF)}


def c_helpers(dtype: str, used: Iterable[str] | None = None) -> str:
    """The helper functions printed expressions may call (MODELC_FN is set by the kernels' preamble).

    With `used` (names, as helpers_of gives them), only those."""
    f = "f" if dtype == "float32" else ""
    one, two, six, tiny = (_literal(v, dtype) for v in (1.0, 2.0, 6.0, 1e-6))
    zero = _literal(0.0, dtype)
    helpers = {
        "mc_exprel": f"""\
/* exprel(x) = (exp(x) - 1)/x, 1 at x = 0; the same formula as the NumPy backend's _exprel. */
MODELC_FN REAL mc_exprel(REAL x) {{
    return fabs{f}(x) < {tiny} ? {one} + x/{two} + x*x/{six} : expm1{f}(x)/x;
}}
""",
        "mc_heaviside": f"""\
/* heaviside(x, h0) as numpy.heaviside: 0 below 0, 1 above, h0 at 0, NaN stays NaN. */
MODELC_FN REAL mc_heaviside(REAL x, REAL h0) {{
    return x < {zero} ? {zero} : (x > {zero} ? {one} : (x == {zero} ? h0 : x));
}}
""",
        "mc_sign": f"""\
/* sign(x) as numpy.sign (NaN stays NaN). */
MODELC_FN REAL mc_sign(REAL x) {{
    return x > {zero} ? {one} : (x < {zero} ? -{one} : x);
}}
""",
        "mc_min": """\
/* min(a, b) as numpy.minimum: a NaN in either argument gives NaN (fmin would drop it). */
MODELC_FN REAL mc_min(REAL a, REAL b) {
    return (a != a || b != b) ? a + b : (b < a ? b : a);
}
""",
        "mc_max": """\
/* max(a, b) as numpy.maximum: a NaN in either argument gives NaN. */
MODELC_FN REAL mc_max(REAL a, REAL b) {
    return (a != a || b != b) ? a + b : (b > a ? b : a);
}
""",
    }
    return "".join(text for name, text in helpers.items() if used is None or name in used)


def _literal(value: float, dtype: str) -> str:
    """A floating-point literal of the kernel's type: `0.5` or `0.5f`."""
    value = float(value)
    if not math.isfinite(value):
        raise UnsupportedFeatureError(f"the expression contains the non-finite constant {value!r}",
                                      None, "check the equations for a division by zero or an overflow")
    text = repr(value)
    if "." not in text and "e" not in text and "n" not in text:
        text += ".0"
    return text + ("f" if dtype == "float32" else "")


class CPrinter(ChoicesMixin, C99CodePrinter):
    """Prints one element-wise expression as C; `names` maps model symbol names to C text."""

    printmethod = "_modelc_c"
    language = "C"

    def __init__(self, names: dict[str, str], dtype: str = "float64", backend: str = "CuPy"):
        super().__init__({"allow_unknown_functions": False, "contract": False})
        if dtype not in ("float64", "float32"):
            raise UnsupportedFeatureError(f"unsupported dtype '{dtype}'", None, "choose float64 or float32")
        self.names = names
        self.dtype = dtype
        self.backend = backend

    # -- numbers and symbols ----------------------------------------------------------------

    def literal(self, value) -> str:
        return _literal(value, self.dtype)

    def _fn(self, name: str) -> str:
        return name + "f" if self.dtype == "float32" else name

    def _print_Symbol(self, expr: sympy.Symbol) -> str:
        try:
            return self.names[expr.name]
        except KeyError:
            raise UnsupportedFeatureError(f"no value for '{expr.name}' in a {self.backend} kernel") from None

    def _print_Integer(self, expr) -> str:
        return self.literal(int(expr))

    def _print_Rational(self, expr) -> str:
        return self.literal(float(expr))

    def _print_Float(self, expr, **kwargs) -> str:
        return self.literal(float(expr))

    _print_Zero = _print_One = _print_NegativeOne = _print_Integer
    _print_Half = _print_Rational

    def _print_Pi(self, expr) -> str:
        return self.literal(math.pi)

    def _print_Exp1(self, expr) -> str:
        return self.literal(math.e)

    def _refuse_constant(self, expr) -> str:
        raise UnsupportedFeatureError(f"the expression evaluates to {expr} (a division by zero or an "
                                      "overflow in the model's constants)", None, "check the equations")

    _print_NaN = _print_Infinity = _print_NegativeInfinity = _print_ComplexInfinity = _refuse_constant

    def _print_BooleanTrue(self, expr) -> str:
        return "1"

    def _print_BooleanFalse(self, expr) -> str:
        return "0"

    # -- arithmetic -------------------------------------------------------------------------

    def _print_Pow(self, expr, rational=False) -> str:
        base, exponent = expr.base, expr.exp
        prec = precedence(expr)
        if exponent.is_Number and equal_valued(exponent, int(exponent)) and exponent != 0 \
                and abs(int(exponent)) <= MAX_MULTIPLIED_EXPONENT:
            k = int(exponent)
            factor = self.parenthesize(base, PRECEDENCE["Mul"])
            product = "*".join([factor] * abs(k))
            if k > 0:
                return product if k == 1 else f"({product})"
            return f"({self.literal(1.0)}/{product if abs(k) == 1 else '(' + product + ')'})"
        if equal_valued(exponent, 0.5):
            return f"{self._fn('sqrt')}({self._print(base)})"
        if equal_valued(exponent, -0.5):
            return f"({self.literal(1.0)}/{self._fn('sqrt')}({self._print(base)}))"
        if exponent == sympy.Rational(1, 3):
            return f"{self._fn('cbrt')}({self._print(base)})"
        _ = prec
        return f"{self._fn('pow')}({self._print(base)}, {self._print(exponent)})"

    # -- functions --------------------------------------------------------------------------

    def _print_Function(self, expr) -> str:
        name = type(expr).__name__
        if name in _C_FUNCTIONS:
            args = ", ".join(self._print(a) for a in expr.args)
            return f"{self._fn(_C_FUNCTIONS[name])}({args})"
        raise UnsupportedFeatureError(f"the {self.backend} backend cannot compute the function '{name}' "
                                      "in a kernel", None, _HINT)

    # SymPy's C printer has one method per math function (erf, gamma, hypot, ...): all of them
    # go through the closed map above, so only what the map names can be printed.
    _print_math_func = _print_Function
    _print_exp = _print_log = _print_sin = _print_cos = _print_tan = _print_Function
    _print_asin = _print_acos = _print_atan = _print_atan2 = _print_Function
    _print_sinh = _print_cosh = _print_tanh = _print_asinh = _print_acosh = _print_atanh = _print_Function
    _print_Abs = _print_floor = _print_ceiling = _print_Function
    _print_erf = _print_erfc = _print_gamma = _print_loggamma = _print_hypot = _print_Function
    _print_exp2 = _print_expm1 = _print_log10 = _print_log1p = _print_log2 = _print_fma = _print_Function
    _print_isnan = _print_isinf = _print_Mod = _print_Function

    def _print_sign(self, expr) -> str:
        return f"mc_sign({self._print(expr.args[0])})"

    def _print_Heaviside(self, expr) -> str:
        at_zero = expr.args[1] if len(expr.args) > 1 else sympy.Float(1.0)
        if not at_zero.is_Number:
            raise UnsupportedFeatureError("heaviside's value at 0 must be a number")
        return f"mc_heaviside({self._print(expr.args[0])}, {self.literal(float(at_zero))})"

    def _print_Exprel(self, expr) -> str:
        return f"mc_exprel({self._print(expr.args[0])})"

    def _print_Min(self, expr) -> str:
        return self._nested("mc_min", expr.args)

    def _print_Max(self, expr) -> str:
        return self._nested("mc_max", expr.args)

    @staticmethod
    def _choose(cond: str, value: str, otherwise: str) -> str:
        return f"({cond} ? {value} : {otherwise})"

    def _print_ITE(self, expr) -> str:
        cond, if_true, if_false = expr.args
        return self._choose(self._print(cond), self._print(if_true), self._print(if_false))

    def _print_Relational(self, expr) -> str:
        op = {"==": "==", "!=": "!=", "<": "<", "<=": "<=", ">": ">", ">=": ">="}[expr.rel_op]
        return f"({self._print(expr.lhs)} {op} {self._print(expr.rhs)})"

    def _print_And(self, expr) -> str:
        return "(" + " && ".join(self._print(a) for a in expr.args) + ")"

    def _print_Or(self, expr) -> str:
        return "(" + " || ".join(self._print(a) for a in expr.args) + ")"

    def _print_Not(self, expr) -> str:
        return f"(!{self._print(expr.args[0])})"

    def _print_Xor(self, expr) -> str:
        return "(" + " != ".join(f"(!!{self._print(a)})" for a in expr.args) + ")"

    # -- what must never reach a kernel body -------------------------------------------------

    def _not_elementwise(self, expr) -> str:
        raise UnsupportedFeatureError(f"'{type(expr).__name__}' is not element-wise and cannot be printed "
                                      "inside a kernel body (internal error: it should have been taken out)")

    _print_PopMean = _print_PopSum = _print_MatVec = _not_elementwise

    def _print_not_supported(self, expr) -> str:
        raise UnsupportedFeatureError(f"the {self.backend} backend cannot print '{type(expr).__name__}' "
                                      "in a kernel", None, _HINT)

    emptyPrinter = _print_not_supported


def print_c(expr: sympy.Expr, names: dict[str, str], dtype: str = "float64") -> str:
    """One expression as C (a convenience for tests and tools)."""
    return CPrinter(names, dtype).doprint(expr)


__all__ = ["CPrinter", "print_c", "c_helpers", "helpers_of", "C_RESERVED", "MAX_MULTIPLIED_EXPONENT"]
