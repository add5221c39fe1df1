"""Tests of the equations stage: equation text -> SymPy and back (modelc/equations/, grammar.lark),
and an operator's equations after its inheritance edits."""
import math
import os

import pytest
import sympy

from modelc.equations import (FUNCTION_NAMES, TIME, Equation, Exprel, PopMean, PopSum, Span, equation_text,
                              expression_text, free_names, operator_equations, parse_equation, parse_expression,
                              symbol)
from modelc.equations.functions import Delayed
from modelc.errors import (ArityError, EquationSyntaxError, HigherOrderDerivativeError,
                           InvalidNameError, ModelcError, TextOrigin, UnknownFunctionError)
from modelc.spec import Library

a, b, c, x, y, v, tau = (symbol(n) for n in ("a", "b", "c", "x", "y", "v", "tau"))


def rhs(text):
    """The SymPy value of an expression."""
    return parse_expression(text)[0]


# --- symbols ------------------------------------------------------------------------------

def test_symbols_are_real_and_time_is_t():
    assert symbol("x").is_real and symbol("x") == sympy.Symbol("x", real=True)
    assert TIME == symbol("t")
    assert rhs("t + 1") == TIME + 1


def test_free_names():
    assert free_names(rhs("a*x + exp(t) + pi + where(y > 0, 1, 2)")) == {"a", "x", "t", "y"}
    assert free_names(sympy.Integer(3)) == set()


# --- equation forms -----------------------------------------------------------------------

@pytest.mark.parametrize("text, kind, target, span", [
    ("d/dt * x = -x/tau", "ode", "x", Span(7, 1)),
    ("d/dt*x=-x/tau", "ode", "x", Span(5, 1)),
    ("x' = -x/tau", "ode", "x", Span(0, 1)),
    ("  x'=-x/tau  ", "ode", "x", Span(2, 1)),
    ("dx/dt = -x/tau", "ode", "x", Span(1, 1)),
    ("dx / dt = -x/tau", "ode", "x", Span(1, 1)),
    ("x = -x/tau", "algebraic", "x", Span(0, 1)),
    ("x\n  = -x/tau", "algebraic", "x", Span(0, 1)),
])
def test_equation_forms(text, kind, target, span):
    eq = parse_equation(text)
    assert isinstance(eq, Equation)
    assert (eq.kind, eq.target, eq.target_span) == (kind, target, span)
    assert eq.rhs == -x / tau
    assert eq.text == text


@pytest.mark.parametrize("text, kind, target", [
    ("dv/dt = 1", "ode", "v"),
    ("dd/dt = 1", "ode", "d"),           # a state called d
    ("d/dt * d = 1", "ode", "d"),
    ("dx = 1", "algebraic", "dx"),       # a plain variable called dx
    ("d1x/dt1 = 1", "ode", "x"),
    ("rate_2' = 1", "ode", "rate_2"),
])
def test_derivative_spellings(text, kind, target):
    eq = parse_equation(text)
    assert (eq.kind, eq.target) == (kind, target)


@pytest.mark.parametrize("text", ["x'' = -x", "d/dt * d/dt * x = -x", "d2x/dt2 = -x",
                                  "d/dt * x' = -x", "d/dt * dx/dt = -x", "x''' = 1"])
def test_higher_order_derivatives_are_refused(text):
    with pytest.raises(HigherOrderDerivativeError) as info:
        parse_equation(text)
    err = info.value
    assert err.code == "MC107"
    assert err.hint == "write it as two first-order equations, e.g. x' = y and y' = ..."
    assert (err.location.line, err.location.column) == (1, 1)


@pytest.mark.parametrize("text, column", [
    ("x + 1 = 2", 1), ("3 = x", 1), ("exp(x) = 1", 1), ("d/dt = 1", 1), ("dx/dt2 = 1", 1),
    ("x * y = 1", 1), ("dx/dy = 1", 1), ("-x = 1", 1), ("x < 1 = 2", 1),
])
def test_other_left_hand_sides_are_syntax_errors(text, column):
    with pytest.raises(EquationSyntaxError) as info:
        parse_equation(text)
    err = info.value
    assert err.code == "MC101"
    assert err.message == "the left-hand side must be a variable or the derivative of one"
    assert "x' = ..." in err.hint
    assert err.location.column == column


# --- numbers ------------------------------------------------------------------------------

@pytest.mark.parametrize("text, value, kind", [
    ("1", 1, sympy.Integer), ("007", 7, sympy.Integer), ("1.", 1.0, sympy.Float),
    (".5", 0.5, sympy.Float), ("1e-3", 1e-3, sympy.Float), ("2.5E+2", 250.0, sympy.Float),
    ("1E3", 1000.0, sympy.Float), ("1.e3", 1000.0, sympy.Float), ("0.0", 0.0, sympy.Float),
])
def test_number_spellings(text, value, kind):
    number = rhs(text)
    assert isinstance(number, kind)
    assert number == kind(value)


# --- operators ----------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("-x^2", -(x**2)),
    ("-x**2", -(x**2)),
    ("-2^2", sympy.Integer(-4)),
    ("2^3^2", sympy.Integer(512)),
    ("2**3**2", sympy.Integer(512)),
    ("a^b^c", a**(b**c)),
    ("2^-1", sympy.Rational(1, 2)),
    ("a-b-c", a - b - c),
    ("a/b/c", a / (b * c)),
    ("a + b*c", a + b * c),
    ("(a + b)*c", (a + b) * c),
    ("a*-b", -a * b),
    ("+a - -b", a + b),
    ("((a))", a),
    ("1/2", sympy.Rational(1, 2)),
])
def test_precedence_and_associativity(text, expected):
    assert rhs(text) == expected


@pytest.mark.parametrize("op, rel", [
    ("<", sympy.Lt), ("<=", sympy.Le), (">", sympy.Gt), (">=", sympy.Ge),
    ("==", sympy.Eq), ("!=", sympy.Ne),
])
def test_comparisons_are_zero_or_one_in_arithmetic(op, rel):
    assert rhs(f"a {op} b") == sympy.Piecewise((1, rel(a, b)), (0, True))
    assert rhs(f"2*(a{op}b)") == 2 * sympy.Piecewise((1, rel(a, b)), (0, True))
    assert rhs(f"where(a {op} b, x, y)") == sympy.Piecewise((x, rel(a, b)), (y, True))


def test_comparison_binds_loosest():
    assert rhs("a + 1 < b * 2") == sympy.Piecewise((1, a + 1 < 2 * b), (0, True))
    assert rhs("1 < 2") == 1 and rhs("2 < 1") == 0


def test_chained_comparison_is_an_error():
    with pytest.raises(EquationSyntaxError) as info:
        parse_equation("x' = a < b < c")
    assert info.value.message == "unexpected '<' in equation"
    assert "cannot be chained" in info.value.hint


# --- functions ----------------------------------------------------------------------------

FUNCTION_CASES = {
    "exp(x)": sympy.exp(x), "log(x)": sympy.log(x), "sqrt(x)": sympy.sqrt(x),
    "abs(x)": sympy.Abs(x), "sign(x)": sympy.sign(x),
    "sin(x)": sympy.sin(x), "cos(x)": sympy.cos(x), "tan(x)": sympy.tan(x),
    "asin(x)": sympy.asin(x), "acos(x)": sympy.acos(x), "atan(x)": sympy.atan(x),
    "atan2(y, x)": sympy.atan2(y, x),
    "arcsin(x)": sympy.asin(x), "arccos(x)": sympy.acos(x), "arctan(x)": sympy.atan(x),
    "arctan2(y, x)": sympy.atan2(y, x),
    "sinh(x)": sympy.sinh(x), "cosh(x)": sympy.cosh(x), "tanh(x)": sympy.tanh(x),
    "asinh(x)": sympy.asinh(x), "acosh(x)": sympy.acosh(x), "atanh(x)": sympy.atanh(x),
    "arcsinh(x)": sympy.asinh(x), "arccosh(x)": sympy.acosh(x), "arctanh(x)": sympy.atanh(x),
    "sigmoid(x)": 1 / (1 + sympy.exp(-x)),
    "heaviside(x)": sympy.Heaviside(x, 1),
    "min(x, y)": sympy.Min(x, y), "min(x, y, a)": sympy.Min(x, y, a),
    "max(x, y)": sympy.Max(x, y), "max(x, y, a, b)": sympy.Max(x, y, a, b),
    "where(x > 0, a, b)": sympy.Piecewise((a, x > 0), (b, True)),
    "ifelse(x > 0, a, b)": sympy.Piecewise((a, x > 0), (b, True)),
    "where(x, a, b)": sympy.Piecewise((a, sympy.Ne(x, 0)), (b, True)),
    "exprel(x)": Exprel(x), "mean(x)": PopMean(x), "sum(x)": PopSum(x),
    # complex numbers: of a real x (every name not declared complex) they are x, x, 0 and arg(x)
    "absv(x)": sympy.Abs(x), "conj(x)": x, "real(x)": x, "imag(x)": sympy.S.Zero, "angle(x)": sympy.arg(x),
    "past(x, tau)": Delayed(x, tau, 1),  # x at t - tau, its initial value before t0 (tests/test_delays.py)
}


@pytest.mark.parametrize("text", sorted(FUNCTION_CASES))
def test_whitelisted_function(text):
    assert rhs(text) == FUNCTION_CASES[text]


def test_every_whitelisted_name_is_tested():
    assert {text.split("(")[0] for text in FUNCTION_CASES} == set(FUNCTION_NAMES)


def test_pi_and_heaviside_at_zero():
    assert rhs("2*pi") == 2 * sympy.pi
    assert rhs("heaviside(0)") == 1
    assert rhs("heaviside(x)").subs(x, 0) == 1


def test_exprel_value_and_derivative():
    assert Exprel(0) == 1 and Exprel(sympy.Float(0.0)) == 1 and rhs("exprel(0)") == 1
    assert isinstance(Exprel(x), Exprel)  # unevaluated for symbols
    assert math.isclose(float(Exprel(sympy.Float(1.0))), math.e - 1)
    assert math.isclose(float(Exprel(sympy.pi).evalf()), (math.exp(math.pi) - 1) / math.pi)
    derivative = sympy.diff(Exprel(x), x)
    closed = sympy.diff((sympy.exp(x) - 1) / x, x)
    assert sympy.simplify(derivative.rewrite(sympy.exp) - closed) == 0
    assert sympy.limit(derivative.rewrite(sympy.exp), x, 0) == sympy.Rational(1, 2)
    h, x0 = 1e-6, 0.3
    numeric = (float(Exprel(sympy.Float(x0 + h))) - float(Exprel(sympy.Float(x0 - h)))) / (2 * h)
    assert math.isclose(float(derivative.subs(x, x0)), numeric, rel_tol=1e-6)


def test_population_reductions_stay_unevaluated():
    mean, total = rhs("mean(v)"), rhs("sum(v*2)")
    assert isinstance(mean, PopMean) and mean.args == (v,)
    assert isinstance(total, PopSum) and total.args == (2 * v,)
    assert rhs("mean(3)") == 3  # the mean of a constant is that constant
    assert isinstance(rhs("sum(3)"), PopSum)


@pytest.mark.parametrize("text, message, column, hint", [
    ("x' = tanhh(x)", "unknown function 'tanhh'", 6, "did you mean 'tanh'"),
    ("x' = foo(x)", "unknown function 'foo'", 6, "known functions: abs"),
    ("x' = pi(x)", "unknown function 'pi'", 6, "'pi' is a constant"),
])
def test_unknown_function(text, message, column, hint):
    with pytest.raises(UnknownFunctionError) as info:
        parse_equation(text)
    err = info.value
    assert (err.code, err.message) == ("MC102", message)
    assert (err.location.column, err.location.length) == (column, len(message.split("'")[1]))
    assert hint in err.hint


@pytest.mark.parametrize("text, message", [
    ("x' = exp(x, y)", "exp() takes 1 argument but 2 were given"),
    ("x' = exp()", "exp() takes 1 argument but 0 were given"),
    ("x' = atan2(x)", "atan2() takes 2 arguments but 1 was given"),
    ("x' = min(x)", "min() takes at least 2 arguments but 1 was given"),
    ("x' = where(x > 0, 1)", "where() takes 3 arguments but 2 were given"),
])
def test_wrong_arity(text, message):
    with pytest.raises(ArityError) as info:
        parse_equation(text)
    assert (info.value.code, info.value.message) == ("MC109", message)
    assert info.value.location.column == 6


def test_function_name_used_as_a_variable():
    with pytest.raises(EquationSyntaxError) as info:
        parse_equation("x' = exp + 1")
    err = info.value
    assert err.message == "'exp' is a function, not a variable"
    assert (err.location.column, err.location.length) == (6, 3)
    assert err.hint == "call it with arguments, e.g. exp(x)"


# --- names --------------------------------------------------------------------------------

@pytest.mark.parametrize("text, message, column", [
    ("x' = __x", "name '__x' starts with two underscores", 6),
    ("x' = lambda + 1", "'lambda' is a Python keyword and cannot be a name", 6),
    ("x' = 1 + None", "'None' is a Python keyword and cannot be a name", 10),
    ("__x' = 1", "name '__x' starts with two underscores", 1),
    ("dclass/dt = 1", "'class' is a Python keyword and cannot be a name", 2),
    ("t = 1", "'t' cannot be defined by an equation", 1),
    ("pi' = 1", "'pi' cannot be defined by an equation", 1),
    ("exp = 1", "'exp' cannot be defined by an equation", 1),
])
def test_invalid_names(text, message, column):
    with pytest.raises(InvalidNameError) as info:
        parse_equation(text)
    err = info.value
    assert (err.code, err.message, err.location.column) == ("MC111", message, column)
    assert err.hint


# --- syntax errors ------------------------------------------------------------------------

@pytest.mark.parametrize("text, message, column, hint", [
    ("x' = (a b", "unexpected 'b' in equation", 9, "expected an operator or ')'"),
    ("x' = a:b", "unexpected ':' in equation", 7,
     "expected an operator or the end of the equation"),
    ("x' = 2x", "unexpected 'x' in equation", 7, "expected an operator or the end of the equation"),
    ("x' = ", "equation ends too early", 5, "expected a number, a name or '('"),
    ("x' = (a + ", "equation ends too early", 10, "expected a number, a name or '('"),
    ("x' = a +* b", "unexpected '*' in equation", 9, "expected a number, a name or '('"),
    ("x'", "equation ends too early", 3, "'='"),
    ("x' = y'", "the derivative y' can only appear on the left-hand side", 6, "variable itself"),
    ("", "empty equation", 1, "x' = -x/tau"),
    ("   ", "empty equation", 1, "x' = -x/tau"),
    ("x' = α + 1", "unexpected character 'α' in equation", 6, "only ASCII"),
    ("x' = 1 + y\u00a0", "unexpected character '\\xa0' in equation", 11, "only ASCII"),
    ("x' = a[1]", "unexpected '[' in equation", 7, "expected an operator"),
    ("x' = a.b", "unexpected '.' in equation", 7, "expected an operator"),
    ("x' = 'a'", "unexpected \"'\" in equation", 6, "a number, a name"),
    ("x' = 1/0", "this part of the expression is infinite, undefined or imaginary", 6, "division"),
    ("x' = -x + 1/(x - x)", "this part of the expression is infinite, undefined or imaginary", 11, "division"),
    ("x' = 2 + log(0)", "this part of the expression is infinite, undefined or imaginary", 10,
     "log(0)"),
    ("x' = sqrt(-1)", "this part of the expression is infinite, undefined or imaginary", 6,
     "sqrt(-1)"),
    ("x' = 1e400", "number 1e400 is too large", 6, None),
    ("x' = 9^9^9", "this constant is about 4.3e369693099, more than a float64 holds (about 1.8e308)", 6,
     "float64"),
    # constants are judged as SymPy folds them, and before it computes a power
    ("x' = -x + 2.0^2000", "this constant is about 1.1e602, more than a float64 holds (about 1.8e308)", 11, None),
    ("x' = 10^400", "this constant is about 1.0e400, more than a float64 holds (about 1.8e308)", 6, None),
    ("x' = -x + pi^(10^9)", "this constant is about 4.9e497149872, more than a float64 holds (about 1.8e308)",
     11, None),
    ("x' = sqrt(2)^1000000", "this constant is about 1.0e150515, more than a float64 holds (about 1.8e308)", 6,
     None),
    ("x' = sqrt(3)^(10^8)", "this constant is about 5.4e23856062, more than a float64 holds (about 1.8e308)",
     6, None),
    ("x' = x*1e308*10", "this constant is about 1.0e309, more than a float64 holds (about 1.8e308)", 6, None),
    ("x' = exp(1000) - x", "this constant is about 2.0e434, more than a float64 holds (about 1.8e308)", 6, None),
    ("x' = " + "1" * 400, "number 11111111111111111111 is too large", 6, "float64"),
    ("x' = 2^-99999", "power too large to compute exactly", 6, "decimal"),
    ("x' = (1 + 10^-300)^(10^300)", "power too large to compute exactly", 6, "decimal"),
    ("x' = (2*x)^(10^8)", "exponent 1e+08 is too large (more than 1024)", 6, "at most 1024"),
    # nesting, as SymPy builds it: the error points at the part that crosses the limit
    ("x' = " + "sin(" * 101 + "x" + ")" * 101, "expression is nested too deeply (more than 100 levels)", 6,
     "split"),
    ("x' = " + "x*(1+" * 51 + "x" + ")" * 51, "expression is nested too deeply (more than 100 levels)", 9,
     "split"),
    # a path strings terms together: Python compiles a + b + c as ((a + b) + c)
    ("x' = sin(" + " + ".join(f"a{i}" for i in range(500)) + ") + " + " + ".join(f"b{i}" for i in range(500)),
     "expression is too long (more than 1000 terms in a row)", 6, "split"),
], ids=lambda value: value[:40] if isinstance(value, str) else None)
def test_syntax_errors(text, message, column, hint):
    with pytest.raises(EquationSyntaxError) as info:
        parse_equation(text)
    err = info.value
    assert (err.code, err.message) == ("MC101", message)
    assert (err.location.line, err.location.column) == (1, column)
    if hint is not None:
        assert hint in err.hint


def test_non_text_is_an_error():
    with pytest.raises(EquationSyntaxError, match="must be text"):
        parse_equation(3.0)


def test_error_format_points_at_the_text():
    with pytest.raises(UnknownFunctionError) as info:
        parse_equation("r = tanhh(v)")
    assert info.value.format() == (
        "<string>:1:5: error: unknown function 'tanhh' [MC102]\n"
        "    r = tanhh(v)\n"
        "        ^^^^^\n"
        "  hint: did you mean 'tanh' or 'atanh' or 'tan'?")


# --- locations in a model file ------------------------------------------------------------

def fake_file_origin(text):
    """The text placed at line 7, column 13 of a fake YAML file."""
    lines = ["%YAML 1.2", "---", "op:", "  base: OperatorTemplate", "  variables: {}",
             "  equations:", "    - key: " + text]
    return TextOrigin.for_string(text, file="fake.yaml", line=7, column=13, file_lines=lines)


@pytest.mark.parametrize("text, error, column, length", [
    ("x' = tanhh(x)", UnknownFunctionError, 18, 5),
    ("x' = (a b", EquationSyntaxError, 21, 1),
    ("x' = a +", EquationSyntaxError, 21, 1),
    ("x'' = a", HigherOrderDerivativeError, 13, 3),
    ("x' = exp(a, b)", ArityError, 18, 3),
    ("x' = __a", InvalidNameError, 18, 3),
])
def test_errors_map_to_the_file(text, error, column, length):
    with pytest.raises(error) as info:
        parse_equation(text, fake_file_origin(text))
    loc = info.value.location
    assert (loc.file, loc.line, loc.column, loc.length) == ("fake.yaml", 7, column, length)
    assert loc.source_line == "    - key: " + text
    assert "fake.yaml:7:" in info.value.format()


def test_symbol_spans_and_locations():
    text = "v' = a*v + a - exp(t)"
    eq = parse_equation(text, fake_file_origin(text))
    assert eq.symbol_spans == {"a": [Span(5, 1), Span(11, 1)], "v": [Span(7, 1)],
                               "t": [Span(19, 1)]}
    assert (eq.location("a").line, eq.location("a").column) == (7, 18)
    assert eq.location("v").column == 20
    assert eq.location().column == 13 and eq.location().length == 1  # the target
    assert eq.location("unused") == eq.location()


def test_target_span_of_dx_dt_points_at_the_name():
    text = "dvm/dt = -vm"
    eq = parse_equation(text, fake_file_origin(text))
    assert eq.target_span == Span(1, 2)
    assert (eq.location().column, eq.location().length) == (14, 2)


# --- parse_expression ---------------------------------------------------------------------

def test_parse_expression_returns_expression_and_spans():
    expr, spans = parse_expression("eta - a*eta")
    assert expr == symbol("eta") - a * symbol("eta")
    assert spans == {"eta": [Span(0, 3), Span(8, 3)], "a": [Span(6, 1)]}


@pytest.mark.parametrize("text, message", [
    ("eta -", "expression ends too early"),
    ("x = 1", "unexpected '=' in expression"),
    ("x'", "the derivative x' can only appear on the left-hand side"),
    ("", "empty expression"),
])
def test_parse_expression_errors(text, message):
    with pytest.raises(EquationSyntaxError) as info:
        parse_expression(text)
    assert info.value.message == message


# --- printing back into the model-file syntax --------------------------------------------

PRINTED = {  # expression -> how it prints (SymPy's own order of terms)
    "-0.5*x + 1e-5": "1e-05 - 0.5*x", "x^y^z": "x^y^z", "(x^y)^z": "(x^y)^z", "(-2)^x": "(-2)^x",
    "x^(-2)": "x^(-2)", "1/sqrt(x)": "1/sqrt(x)", "(a < b) + 1": "where(a < b, 1, 0) + 1",
    "where(x, a, where(y == 1, b, 0.25))": "where(x != 0, a, where(y == 1, b, 0.25))", "exp(1)*x": "exp(1)*x",
    "sigmoid(x)": "1/(1 + exp(-x))", "heaviside(x - 1)": "heaviside(x - 1)", "min(x, max(y, 0))": "min(x, max(0, y))",
    "abs(x)": "abs(x)", "exprel(x/2)": "exprel(x/2)", "sum(x)/mean(y)": "sum(x)/mean(y)", "2.5e20*x": "2.5e+20*x",
}


@pytest.mark.parametrize("text", sorted(FUNCTION_CASES) + sorted(PRINTED))
def test_printed_expressions_parse_back_to_themselves(text):
    printed = expression_text(rhs(text))
    assert rhs(printed) == rhs(text)
    if text in PRINTED:
        assert printed == PRINTED[text]


def test_equation_text_writes_odes_with_a_prime():
    assert equation_text("ode", "v", rhs("-v/tau + a")) == "v' = a - v/tau"
    assert equation_text("algebraic", "r", rhs("tanh(v)")) == "r = tanh(v)"


# --- inheritance edits on parsed equations ------------------------------------------------

def _operator(tmp_path, text: str, name: str = "m"):
    path = tmp_path / "ops.yaml"
    path.write_text(text, encoding="utf-8")
    return Library([tmp_path]).get(f"{path}:{name}")


BASE = """
o:
  base: OperatorTemplate
  equations: ["v' = -v/tau + eta + k*u", "r = tanh(v)"]
  variables: {v: output(0.0), r: variable(0.0), tau: 1.0, eta: 0.0, k: 1.0, u: input(0.0), a: 0.0}
"""


def test_replace_edits_the_expression_and_its_text_unedited_text_stays(tmp_path):
    ode, alg = operator_equations(_operator(tmp_path, BASE + """
m:
  base: o
  equations: {replace: {eta: eta - a}}
"""))
    assert ode.rhs == rhs("-v/tau + eta - a + k*u")
    assert ode.text == "v' = -a + eta + k*u - v/tau"
    assert parse_equation(ode.text).rhs == ode.rhs  # the shown text is what runs
    assert alg.text == "r = tanh(v)"  # untouched by the edit: the user's own text


def test_remove_drops_a_variables_equation_or_zeroes_a_term(tmp_path):
    equations = operator_equations(_operator(tmp_path, BASE + """
m:
  base: o
  equations: {remove: [r, k*u]}
"""))
    assert [(eq.target, eq.text) for eq in equations] == [("v", "v' = eta - v/tau")]


def test_add_appends_and_a_grandchild_edits_the_added_equation(tmp_path):
    equations = operator_equations(_operator(tmp_path, BASE + """
c:
  base: o
  equations: {add: ["w' = -w"]}
m:
  base: c
  equations: {replace: {w: 2*w}}
"""))
    assert [eq.text for eq in equations] == ["v' = -v/tau + eta + k*u", "r = tanh(v)", "w' = -2*w"]


def test_replace_of_a_target_by_a_name_renames_the_equation(tmp_path):
    (ode, alg) = operator_equations(_operator(tmp_path, BASE + """
m:
  base: o
  equations: {replace: {r: q}}
"""))
    assert (alg.target, alg.text) == ("q", "q = tanh(v)")
    assert ode.text == "v' = -v/tau + eta + k*u"


def test_a_name_an_edit_brings_in_is_located_in_the_edit(tmp_path):
    (ode, alg) = operator_equations(_operator(tmp_path, BASE + """
m:
  base: o
  equations: {replace: {eta: eta - b}}
"""))
    assert ode.names() == ["v", "tau", "eta", "k", "u", "b"] and alg.names() == ["v"]
    where = ode.location("b")
    assert (where.line, where.column) == (9, 36)


def test_an_edit_that_makes_a_comparison_with_an_infinity_is_a_located_error(tmp_path):
    operator = _operator(tmp_path, """
o:
  base: OperatorTemplate
  equations: "x' = -x + (v < 1/u)"
  variables: {x: output(0.0), u: 1.0, v: 0.5}
m:
  base: o
  equations: {remove: [u]}
""")
    with pytest.raises(EquationSyntaxError) as info:
        operator_equations(operator)  # v < 1/0: SymPy refuses to compare with an infinity
    assert info.value.message.startswith("editing the equation of 'x': cannot compute it: ")
    assert (info.value.location.line, info.value.location.column) == (8, 24)  # the text starts with a newline


# --- security and robustness --------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "x' = __import__('os').system('touch PWNED')",
    "x' = (lambda: 1)()",
    "x' = open('PWNED', 'w')",
    "x' = x.__class__",
    "x' = [c for c in ()]",
    "x' = exec(\"open('PWNED', 'w')\")",
])
def test_code_is_never_run(text, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(EquationSyntaxError):
        parse_equation(text)
    assert not (tmp_path / "PWNED").exists()
    assert not os.path.exists("PWNED")


def test_deep_nesting_is_a_modelc_error():
    with pytest.raises(EquationSyntaxError, match="nested too deeply"):
        parse_equation("x' = " + "x*(1+" * 5000 + "x" + ")" * 5000)
    with pytest.raises(EquationSyntaxError, match="nested too deeply"):
        parse_equation("x' = " + "exp(" * 5000 + "x" + ")" * 5000)
    with pytest.raises(EquationSyntaxError, match="ends too early"):
        parse_equation("x' = " + "(" * 5000)


def test_what_sympy_folds_flat_is_not_deep():
    """Nesting is measured on what SymPy builds: 5000 signs are one, and a long sum is one level."""
    assert parse_equation("x' = " + "-(" * 2000 + "x" + ")" * 2000).rhs == x
    assert parse_equation("x' = " + "-" * 5000 + "x").rhs == x
    assert parse_equation("x' = " + " + ".join(["x"] * 5000)).rhs == 5000 * x


def test_redundant_parentheses_are_fine():
    assert parse_equation("x' = " + "(" * 5000 + "x" + ")" * 5000).rhs == x


def test_moderate_nesting_parses():
    assert rhs("(1 + " * 100 + "x" + ")" * 100) == x + 100


@pytest.mark.parametrize("text", ["x' = atanh(2) < 0", "x' = 1 < acosh(0.5)",
                                  "x' = where(sum(1) < 2, 1, 0)"])
def test_odd_constants_never_leak_internal_errors(text):
    try:
        parse_equation(text)
    except ModelcError:
        pass
