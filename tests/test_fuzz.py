"""Fuzzing the front end with hypothesis.

(a) random well-formed expression trees, printed as equation text (with as few or as many
    parentheses as possible, all number spellings, both power operators, any spacing), parse
    back to exactly the SymPy expression the tree means;
(b) random strings, and random mutations of the shipped model files (deleted characters,
    swapped tokens, wrong indentation, unicode, huge numbers, deep nesting), never raise
    anything but a ModelcError — no KeyError, RecursionError or lark internals;
(c) the same for random YAML structures: wrong types for every key of every kind of template.

Every session runs these with small example counts (this file takes a few seconds). A long
run: `pytest -m fuzz` (2000 examples per test, see conftest.py) or
`MODELC_FUZZ_EXAMPLES=N pytest tests/test_fuzz.py`.
"""
from __future__ import annotations

import operator
import os
from pathlib import Path

import pytest
import sympy
import yaml
from hypothesis import HealthCheck, assume, event, example, given, settings
from hypothesis import strategies as st
from sympy.core.relational import Relational
from sympy.logic.boolalg import BooleanAtom

from modelc.codegen.generate import generate
from modelc.equations import Exprel, PopMean, PopSum, parse_equation, parse_expression, symbol
from modelc.errors import EquationSyntaxError, ModelcError
from modelc.ir import build_system
from modelc.resources import resource_dir
from modelc.spec import Library

pytestmark = pytest.mark.fuzz

_LONG = int(os.environ.get("MODELC_FUZZ_EXAMPLES") or 0)


def fuzz(examples: int):
    """Hypothesis settings: `examples` in every session, MODELC_FUZZ_EXAMPLES in a long run."""
    return settings(max_examples=_LONG or examples, deadline=None, derandomize=not _LONG,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.filter_too_much])


# --- (a) expression trees round-trip -------------------------------------------------------

NAMES = ["x", "y", "v", "tau", "k_1", "I_ext", "t", "d", "dt", "e", "pi", "_a", "alpha2"]
NUMBER_TEXTS = st.one_of(
    st.integers(0, 10**6).map(str),
    st.floats(0, 1e6, allow_nan=False, allow_infinity=False).map(repr),
    st.floats(1e-30, 1e30, allow_nan=False, allow_infinity=False).map(lambda f: f"{f:.6e}"),
    st.sampled_from(["1.", ".5", "2.5E+2", "1e-3", "007", "0.000", "10.25e-1", "3E2"]),
)
SMALL_EXPONENTS = st.one_of(st.sampled_from(["0", "1", "2", "3", "0.5", "1.5", "2."]).map(lambda t: ("num", t)),
                            st.sampled_from(NAMES).map(lambda n: ("name", n)))
# name -> (number of arguments, builder of the expected SymPy value)
FUNCTIONS = {
    "exp": (1, sympy.exp), "log": (1, sympy.log), "sqrt": (1, sympy.sqrt), "abs": (1, sympy.Abs),
    "sin": (1, sympy.sin), "cos": (1, sympy.cos), "tanh": (1, sympy.tanh), "atan": (1, sympy.atan),
    "arctan": (1, sympy.atan), "sign": (1, sympy.sign),
    "sigmoid": (1, lambda a: 1 / (1 + sympy.exp(-a))), "heaviside": (1, lambda a: sympy.Heaviside(a, 1)),
    "exprel": (1, Exprel), "mean": (1, PopMean), "sum": (1, PopSum), "atan2": (2, sympy.atan2),
    "min": (2, sympy.Min), "max": (3, sympy.Max),
    "where": (3, lambda c, a, b: sympy.Piecewise((a, c), (b, True))),
}
COMPARISONS = {"<": sympy.Lt, "<=": sympy.Le, ">": sympy.Gt, ">=": sympy.Ge, "==": sympy.Eq, "!=": sympy.Ne}
BINARY = {"add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv}
PRECEDENCE = {"cmp": 0, "add": 1, "sub": 1, "mul": 2, "div": 2, "neg": 3, "pos": 3, "pow": 4,
              "num": 5, "name": 5, "call": 5}


def _extend(children):
    return st.one_of(
        st.tuples(st.sampled_from(list(BINARY)), children, children),
        st.tuples(st.sampled_from(["neg", "pos"]), children),
        st.tuples(st.just("pow"), children, st.one_of(SMALL_EXPONENTS, st.tuples(st.just("neg"), SMALL_EXPONENTS))),
        st.tuples(st.just("cmp"), st.sampled_from(list(COMPARISONS)), children, children),
        st.sampled_from(list(FUNCTIONS)).flatmap(
            lambda f: st.tuples(st.just("call"), st.just(f), st.lists(children, min_size=FUNCTIONS[f][0],
                                                                      max_size=FUNCTIONS[f][0]))),
    )


TREES = st.recursive(st.one_of(NUMBER_TEXTS.map(lambda t: ("num", t)), st.sampled_from(NAMES).map(lambda n: ("name", n))),
                     _extend, max_leaves=10)


def show(node, minimal: bool, power: str, space: str) -> str:
    """Equation text of a tree: as few parentheses as the grammar needs, or everything wrapped."""
    kind = node[0]

    def wrap(child, needed):
        text = show(child, minimal, power, space)
        return text if minimal and PRECEDENCE[child[0]] >= needed else f"({text})"

    if kind == "num" or kind == "name":
        return node[1]
    if kind in BINARY:
        symbol_ = {"add": "+", "sub": "-", "mul": "*", "div": "/"}[kind]
        left, right = (1, 2) if kind in ("add", "sub") else (2, 3)
        return f"{wrap(node[1], left)}{space}{symbol_}{space}{wrap(node[2], right)}"
    if kind in ("neg", "pos"):
        return ("-" if kind == "neg" else "+") + wrap(node[1], 3)
    if kind == "pow":
        return f"{wrap(node[1], 5)}{power}{wrap(node[2], 3)}"
    if kind == "cmp":
        return f"{wrap(node[2], 1)}{space}{node[1]}{space}{wrap(node[3], 1)}"
    return f"{node[1]}(" + f",{space}".join(show(a, minimal, power, space) for a in node[2]) + ")"


def _number(value):
    return sympy.Piecewise((1, value), (0, True)) if isinstance(value, (Relational, BooleanAtom)) else value


def _condition(value):
    return value if isinstance(value, (Relational, BooleanAtom)) else sympy.Ne(value, 0)


class Meaning:
    """The SymPy expression a tree stands for, and whether any part of it is undefined."""

    def __init__(self, tree):
        self.undefined = False
        self.expr = _number(self.of(tree))

    def of(self, node):
        value = self._of(node)
        if isinstance(value, sympy.Basic) and (value.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo, sympy.I) or
                                               value.is_number and value.evalf(15).is_real is False):
            self.undefined = True  # 1/0, log(0), sqrt(-1), ... somewhere inside
        return value

    def _of(self, node):
        kind = node[0]
        if kind == "num":
            text = node[1]
            return sympy.Integer(int(text)) if text.isdigit() else sympy.Float(float(text))
        if kind == "name":
            return sympy.pi if node[1] == "pi" else symbol(node[1])
        if kind in BINARY:
            return BINARY[kind](_number(self.of(node[1])), _number(self.of(node[2])))
        if kind == "neg":
            return -_number(self.of(node[1]))
        if kind == "pos":
            return _number(self.of(node[1]))
        if kind == "pow":
            return _number(self.of(node[1])) ** _number(self.of(node[2]))
        if kind == "cmp":
            return COMPARISONS[node[1]](_number(self.of(node[2])), _number(self.of(node[3])))
        args = [self.of(a) for a in node[2]]
        if node[1] == "where":
            return FUNCTIONS["where"][1](_condition(args[0]), *map(_number, args[1:]))
        return FUNCTIONS[node[1]][1](*map(_number, args))


LEFT_SIDES = [("y = ", "algebraic", "y"), ("x' = ", "ode", "x"), ("dv/dt = ", "ode", "v"),
              ("d/dt * tau = ", "ode", "tau"), ("r_out=", "algebraic", "r_out")]


@fuzz(300)
@given(tree=TREES, minimal=st.booleans(), power=st.sampled_from(["^", "**"]),
       space=st.sampled_from([" ", "", "  ", "\t"]), lhs=st.sampled_from(LEFT_SIDES))
@example(tree=("sub", ("name", "a"), ("sub", ("name", "b"), ("name", "c"))), minimal=True, power="^", space=" ",
         lhs=LEFT_SIDES[0])
@example(tree=("pow", ("num", "2"), ("pow", ("num", "3"), ("num", "2"))), minimal=True, power="**", space="",
         lhs=LEFT_SIDES[1])
@example(tree=("neg", ("pow", ("name", "x"), ("num", "2"))), minimal=True, power="^", space="", lhs=LEFT_SIDES[0])
def test_printed_expression_trees_parse_back(tree, minimal, power, space, lhs):
    """The text means the tree: it parses to the same SymPy expression, or, only when some part
    of it is undefined (1/0, log(0), sqrt(-1)), it is rejected as an EquationSyntaxError."""
    text = show(tree, minimal, power, space)
    prefix, kind, target = lhs
    try:
        meant = Meaning(tree)
    except (TypeError, ValueError, ArithmeticError):  # SymPy itself refuses (comparing non-reals, ...)
        with pytest.raises(ModelcError):
            parse_equation(prefix + text)
        return
    try:
        equation = parse_equation(prefix + text)
    except EquationSyntaxError as error:
        assert meant.undefined, f"{text!r} was rejected: {error.format()}"
        return
    assert (equation.kind, equation.target) == (kind, target)
    assert equation.rhs == meant.expr, f"{text!r} parsed as {equation.rhs}, meant {meant.expr}"
    assert parse_expression(text)[0] == meant.expr


# --- (b) random text never leaks anything but ModelcError -----------------------------------

EQUATION_ALPHABET = "xytv_0123456789.eE+-*/^()<>=!,' \t\n\"abcdhilmnopqrswτ√\x00[]{}:;#@$&|~`\\"


@fuzz(400)
@given(text=st.one_of(st.text(max_size=80), st.text(alphabet=EQUATION_ALPHABET, max_size=80)))
@example(text="x' = " + "(" * 3000 + "x" + ")" * 3000)
@example(text="x' = " + "exp(" * 2000 + "x" + ")" * 2000)
@example(text="x' = " + "2^" * 3000 + "x")
@example(text="x' = 9" + "9" * 5000)
@example(text="x' = 1" + "+1" * 20000)
@example(text="x' = (lambda: 1)()")
@example(text="x' = __import__('os').system('touch PWNED')")
def test_random_equation_text_only_raises_modelc_errors(text):
    for parse in (parse_equation, parse_expression):
        try:
            parse(text)
        except ModelcError:
            pass


def _shipped_files() -> list[tuple[str, str]]:
    files = sorted(resource_dir("models").rglob("*.yaml"))
    return [(f.stem, f.read_text(encoding="utf-8")) for f in files]


SHIPPED = _shipped_files()
NASTY = ["1e999999", "9" * 400, "-0", ".nan", ".inf", "null", "~", "[" * 300, "{" * 300, "&a", "*a", "!!python/object:os.system",
         "é", "τ", "\u202e", "\ufeff", "\x00", "\t", "'", '"', ":", "- ", "? ", "|", ">", "#", "%YAML 1.1", "---", "...",
         "x''", "d2x/dt2", "__class__", "lambda", "exp(", ")", "output(", "input(1e999)", "base: ", "../", "/etc/passwd",
         "a.b.c", "np", "dt", "rec", "yes", "0x1F", "2001-01-01", "!!binary aGk=", "<<: *a", "$x", "\r\n",
         '\\"\\"\\"', '"""', "\\N{oops}", "\\x", "\\", "\\0", "{{ x }}", "{% raw %}"]


@st.composite
def mutated_model_files(draw):
    """A shipped model file after a few random edits."""
    name, text = draw(st.sampled_from(SHIPPED))
    for _ in range(draw(st.integers(1, 4))):
        lines = text.split("\n")
        how = draw(st.sampled_from(["delete", "insert", "swap_tokens", "indent", "duplicate_line", "replace_number",
                                    "drop_line"]))
        if how == "delete" and text:
            start = draw(st.integers(0, len(text) - 1))
            text = text[:start] + text[start + draw(st.integers(1, 20)):]
        elif how == "insert":
            at = draw(st.integers(0, len(text)))
            piece = draw(st.one_of(st.sampled_from(NASTY), st.text(max_size=8)))
            text = text[:at] + piece + text[at:]
        elif how == "swap_tokens":
            tokens = text.split(" ")
            if len(tokens) > 2:
                i, j = draw(st.integers(0, len(tokens) - 1)), draw(st.integers(0, len(tokens) - 1))
                tokens[i], tokens[j] = tokens[j], tokens[i]
                text = " ".join(tokens)
        elif how == "indent":
            i = draw(st.integers(0, len(lines) - 1))
            lines[i] = draw(st.sampled_from(["", " ", "   ", "\t", "        "])) + lines[i].lstrip(" ")
            text = "\n".join(lines)
        elif how == "duplicate_line":
            i = draw(st.integers(0, len(lines) - 1))
            text = "\n".join(lines[:i + 1] + lines[i:])
        elif how == "drop_line":
            i = draw(st.integers(0, len(lines) - 1))
            text = "\n".join(lines[:i] + lines[i + 1:])
        else:
            import re
            numbers = list(re.finditer(r"\d+\.?\d*", text))
            if numbers:
                m = draw(st.sampled_from(numbers))
                new = draw(st.sampled_from(["1e308", "1e-320", "0", "-1", "9" * 30, "1e999", "nan", "0.0"]))
                text = text[:m.start()] + new + text[m.end():]
    return name, text


def front_end(folder: Path, name: str, text: str, codegen: bool = True) -> None:
    """Load a model file, build every template and generate code for the last one that builds."""
    path = folder / f"{name}.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    library = Library()
    built = None
    try:
        data = library.load_file(path)
    except ModelcError as error:
        event(f"file rejected: {error.code}")
        return
    for template_name in list(data):
        try:
            built = build_system(library.get(f"{path}:{template_name}"))
            event("a template built")
        except ModelcError as error:
            event(f"template rejected: {error.code}")
    if built is not None and codegen:
        try:
            generate(built, "rk4")
            event("code generated")
        except ModelcError as error:
            event(f"codegen rejected: {error.code}")


@pytest.fixture(scope="module")
def scratch(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz")


@fuzz(60)
@given(case=mutated_model_files())
def test_mutated_model_files_only_raise_modelc_errors(case, scratch):
    front_end(scratch, *case)


@fuzz(100)
@given(text=st.text(max_size=200))
@example(text="m: " + "[" * 3000 + "]" * 3000)
@example(text="m: &a [*a]")
@example(text="a: &a [x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: &c [*b, *b, *b, *b, *b, *b, *b]\n"
              "d: &d [*c, *c, *c, *c, *c, *c, *c]\ne: &e [*d, *d, *d, *d, *d, *d, *d]\nf: [*e, *e, *e, *e, *e, *e]\n")
@example(text="m: !!python/object/apply:os.system ['touch PWNED']")
@example(text="\ud800")
def test_random_model_file_text_only_raises_modelc_errors(text, scratch):
    front_end(scratch, "random", text, codegen=False)
    assert not Path("PWNED").exists()


# --- (c) random YAML structures: wrong types for every key -----------------------------------

ANY = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10**20, 10**20), st.floats(), st.text(max_size=12),
              st.sampled_from(["x' = -x", "output(0.0)", "input(1)", "variable(2)", "1e999", "o", "n", "c", "x",
                               "o/x", "a/o/x", "a/o/u", "OperatorTemplate", "tanh(x)"])),
    lambda children: st.one_of(st.lists(children, max_size=4),
                               st.dictionaries(st.one_of(st.text(max_size=6), st.sampled_from(["x", "u", "weight", "delay",
                                                                                             "default", "unit", "o", "a"])),
                                               children, max_size=4)),
    max_leaves=10)
# A file of good templates (each kind, inheritance, edits, overrides, edges), then corrupted.
GOOD_FILE = {
    "o": {"base": "OperatorTemplate", "description": "Leaky unit.", "equations": ["x' = -x/tau + u", "y = 2*x"],
          "variables": {"x": "output(0.0)", "u": "input(0.0)", "y": "variable(0.0)",
                        "tau": {"default": 10.0, "unit": "ms"}}},
    "o2": {"base": "o", "equations": {"replace": {"u": "u + k"}, "add": ["z' = -z + y"], "remove": []},
           "variables": {"k": 1.0, "z": "variable(0.5)"}},
    "p": {"base": "OperatorTemplate", "equations": "u = tanh(x)", "variables": {"u": "output(0.0)", "x": "input(0.0)"}},
    "n": {"base": "NodeTemplate", "operators": {"o": {"tau": 5.0}, "p": None}},
    "n2": {"base": "NodeTemplate", "operators": ["o2", "p"], "label": "n2"},
    "c": {"base": "CircuitTemplate", "nodes": {"a": "n", "b": "n2"},
          "edges": [["a/p/u", "b/o2/u", None, {"weight": 2.0}], ["b/o2/x", "a/p/x", None]]},
}
KEYS = ["base", "equations", "variables", "operators", "nodes", "edges", "description", "label"]
ALL_VALUES = [value for body in GOOD_FILE.values() for value in body.values()]


@st.composite
def yaml_structures(draw):
    """GOOD_FILE with up to three keys set to a value of the wrong type, removed, or added."""
    files = {name: dict(body) for name, body in GOOD_FILE.items()}
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(list(files)))
        key = draw(st.sampled_from(KEYS))
        how = draw(st.sampled_from(["any", "any", "other value", "remove", "random key"]))
        if how == "any":
            files[name][key] = draw(ANY)
        elif how == "other value":
            files[name][key] = draw(st.sampled_from(ALL_VALUES))
        elif how == "remove":
            files[name].pop(key, None)
        else:
            files[name][draw(st.text(max_size=6))] = draw(ANY)
    if not draw(st.integers(0, 9)):
        files[draw(st.text(max_size=5))] = draw(ANY)
    return files


@fuzz(50)
@given(structure=yaml_structures())
def test_random_yaml_structures_only_raise_modelc_errors(structure, scratch):
    try:
        text = yaml.safe_dump(structure, allow_unicode=True, sort_keys=False)
    except yaml.YAMLError:
        assume(False)
    front_end(scratch, "structure", text)
