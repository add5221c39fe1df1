"""tanh and exp for the numba kernel as pure arithmetic, so that LLVM vectorizes the loops that call them.

numba compiles math.tanh and math.exp to calls into the C library (ordinary llvmlite builds have
no SVML), and LLVM cannot vectorize a loop that calls a function: a B = 256 sweep of the seed
model then spends most of its step in 25 600 scalar tanh calls. These helpers are written with
operations LLVM has vector instructions for: a range reduction, a polynomial, and 2^k built by
putting k into a float's exponent bits (a bit cast, numba's scalar .view). No branches (the
choices are selects) and no division checks (error_model="numpy").

exp(x) = 2^k 2^(j/32) e^r with 32 k + j = round(32 x / ln 2) and |r| <= ln(2)/64 (ln(2)/32 in two
parts, so r is exact to the last bits, and what rounding r loses is kept); 2^(j/32) from a table of
32 (a float and its remainder: a gather, which vectorizes); e^r - 1 its Taylor polynomial to degree 6.
That rounds as the C library's exp (correctly) in all but about 1 of 200 arguments (1 ulp then);
NumPy's SIMD exp, which the NumPy backend uses on arrays, is 1 ulp off in about 1 of 20.
tanh(x) = t / (t + 2) with t = e^(2|x|) - 1 (range reduction by ln 2 and a Taylor polynomial of degree
13 for e^r - 1, accurate for small x, where tanh(x) ~ x), or 1 - 2 / (t + 2) above |x| = 0.625, with
the sign of x (x itself below 2^-27). Accuracy against NumPy: at most 3 ulp for tanh (near 0) and 1 ulp
for exp (tests/test_numba_functions.py); exp underflows through the subnormals to 0 and overflows to
inf as NumPy's; tanh(+-inf) = +-1, -0.0 stays -0.0; NaN stays NaN.

The helpers are compiled without fast-math whatever the kernel asks (the rounding to an integer
by adding 1.5 * 2^52 must not be reassociated away); LLVM inlines them into the kernel's loops.
"""
from __future__ import annotations

import math
from decimal import Decimal, localcontext

import sympy

# ln 2 = LN2_HI + LN2_LO, LN2_HI with its last 21 bits zero (k * LN2_HI is exact for |k| < 2^21)
LN2_HI = 6.93147180369123816490e-01
LN2_LO = 1.90821492927058770002e-10
INV_LN2 = 1.44269504088896338700e+00
# x + 1.5 * 2^52 rounds x (|x| < 2^51) to the nearest integer, held in the low bits of the mantissa
ROUNDER = 6755399441055744.0
ROUNDER_BITS = 4843621399236968448  # the bits of ROUNDER as an int64

EXPM1_REDUCED = f'''def _expm1_reduced(r):
    """e^r - 1 for |r| <= ln(2)/2: r + r^2/2 + r^3 q(r), q the Taylor polynomial (Horner) of degree 10."""
    q = {1 / math.factorial(13)!r}
''' + "".join(f"    q = q * r + {1 / math.factorial(n)!r}\n" for n in range(12, 2, -1)) + '''    rr = r * r
    return r + (0.5 * rr + rr * r * q)'''

def _exp_table() -> str:
    """2^(j/32), j = 0..31, each as a float and the float of what it leaves (50 digits)."""
    with localcontext() as context:
        context.prec = 50
        powers = [(Decimal(2).ln() * j / 32).exp() for j in range(32)]
    high = [float(p) for p in powers]
    low = [float(p - Decimal(h)) for p, h in zip(powers, high)]
    return f"_EXP_HIGH = np.array({high!r})\n_EXP_LOW = np.array({low!r})"


EXP = f'''def _exp(x):
    """e^x as a correctly rounded exp but in 1 of 200 arguments (1 ulp then; 0 below -745.2, inf above
    709.8, NaN stays NaN), vectorizable: x = (32 k + j) ln(2)/32 + r, e^x = 2^k 2^(j/32) e^r."""
    z = 710.0 if x > 710.0 else (-746.0 if x < -746.0 else x)
    z = z if z == z else 0.0  # (NaN: any k; the polynomial of r = NaN gives NaN)
    kr = z * {32 * INV_LN2!r} + {ROUNDER!r}
    k = np.float64(kr).view(np.int64) - {ROUNDER_BITS}
    kf = kr - {ROUNDER!r}
    high = z - kf * {LN2_HI / 32!r}
    high = high if x == x else x
    low = kf * {LN2_LO / 32!r}
    r = high - low  # |r| <= ln(2)/64, and what its rounding lost:
    lost = (high - r) - low
    q = 0.5 + r * ({1 / 6!r} + r * ({1 / 24!r} + r * ({1 / 120!r} + r * {1 / 720!r})))  # e^r = 1 + r + r^2 q
    p = r + (lost + r * r * q)
    j = k & 31
    t = _EXP_HIGH[j]
    value = t + (_EXP_LOW[j] + t * p)
    k = k >> 5
    half = k >> 1  # 2^k in two normal factors: 2^1024 overflows and 2^-1075 is no float
    return (value * np.int64((half + 1023) << 52).view(np.float64)) * \\
        np.int64((k - half + 1023) << 52).view(np.float64)'''

TANH = f'''def _tanh(x):
    """tanh(x) as NumPy's tanh (to 3 ulp; +-1 beyond |x| = 19.1, -0.0 and NaN kept), vectorizable."""
    a = abs(x)
    a = 20.0 if a > 20.0 else a  # (tanh rounds to 1 from 19.1 on; e^40 is still finite)
    y = a + a
    kr = y * {INV_LN2!r} + {ROUNDER!r}
    k = np.float64(kr).view(np.int64) - {ROUNDER_BITS}
    kf = kr - {ROUNDER!r}
    r = (y - kf * {LN2_HI!r}) - kf * {LN2_LO!r}
    s = np.int64((k + 1023) << 52).view(np.float64)
    t = s * _expm1_reduced(r) + (s - 1.0)  # e^(2a) - 1
    large = a > 0.625
    value = (-2.0 if large else t) / (t + 2.0) + (1.0 if large else 0.0)
    value = a if a < 7.450580596923828e-09 else value  # below 2^-27, tanh(x) rounds to x
    return math.copysign(value, x)'''

# SymPy's function -> the helper the kernel calls, and the helpers' texts in the order they are defined
VECTOR_FUNCTIONS = {sympy.tanh: "_tanh", sympy.exp: "_exp"}
DECORATOR = '@numba.njit(nogil=True, error_model="numpy")'
_TEXTS = {"_expm1_reduced": f"{DECORATOR}\n{EXPM1_REDUCED}", "_EXP_HIGH": _exp_table(), "_exp": f"{DECORATOR}\n{EXP}",
          "_tanh": f"{DECORATOR}\n{TANH}"}
_NEEDS = {"_exp": ("_EXP_HIGH",), "_tanh": ("_expm1_reduced",)}


def helper_texts(functions) -> list[str]:
    """The definitions of the helpers that SymPy's `functions` print as (with their decorators) and of
    what they use, used first."""
    wanted = {VECTOR_FUNCTIONS[f] for f in functions if f in VECTOR_FUNCTIONS}
    wanted |= {n for w in wanted for n in _NEEDS.get(w, ())}
    return [text for name, text in _TEXTS.items() if name in wanted]
