"""Fuzzing the front end with hypothesis.

(a) random well-formed expression trees, printed as equation text (with as few or as many
    parentheses as possible, all number spellings, both power operators, any spacing), parse
    back to exactly the SymPy expression the tree means;
(b) random strings, and random mutations of the shipped model files (deleted characters,
    swapped tokens, wrong indentation, unicode, huge numbers, deep nesting), never raise
    anything but a ModelcError — no KeyError, RecursionError or lark internals;
(c) the same for random YAML structures: wrong types for every key of every kind of template;
(d) whatever the front end accepts (what `modelc check` accepts) also compiles and runs: model
    files of random expression trees, mutated shipped files and random YAML structures are
    compiled (NumPy, a random scheme and dtype, maybe vector parameters and a coupling) and run
    a few steps on 1 and 3 units, raising nothing but a ModelcError; an uncoupled unit gives the
    same numbers alone (the float path) as among three (NumPy). What this fuzzing found is kept
    as fixed cases (FOUND), run in every session.

Every session runs these with small example counts (this file takes a few seconds). A long
run: `pytest -m fuzz` (2000 examples per test, see conftest.py) or
`MODELC_FUZZ_EXAMPLES=N pytest tests/test_fuzz.py`.
"""
from __future__ import annotations

import contextlib
import operator
import os
import sys
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
import sympy
import yaml
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import event as _hypothesis_event
from hypothesis.errors import InvalidArgument
from hypothesis import strategies as st
from sympy.core.relational import Relational
from sympy.logic.boolalg import BooleanAtom

import modelc
from modelc.codegen.generate import generate
from modelc.codegen.options import DTYPES, METHODS
from modelc.equations import Exprel, PopMean, PopSum, parse_equation, parse_expression, symbol
from modelc.errors import EquationSyntaxError, ModelcError
from modelc.ir import Connection, System, build_system
from modelc.resources import resource_dir
from modelc.runtime import compiler as _compiler
from modelc.spec import Library
from references import Reference

pytestmark = pytest.mark.fuzz

_LONG = int(os.environ.get("MODELC_FUZZ_EXAMPLES") or 0)


def event(text: str) -> None:
    """hypothesis.event inside a hypothesis test (`--hypothesis-show-statistics`), else nothing."""
    try:
        _hypothesis_event(text)
    except InvalidArgument:
        pass


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


def _too_large(expr) -> bool:
    """A constant (part of an expression) beyond what a float64 holds."""
    return isinstance(expr, sympy.Expr) and expr.is_number and abs(expr.evalf(15)) > sys.float_info.max


class Meaning:
    """The SymPy expression a tree stands for, and whether any part of it is undefined (or a
    constant beyond what a float64 holds: a model may not compute it)."""

    def __init__(self, tree):
        self.undefined = False
        self.expr = _number(self.of(tree))

    def of(self, node):
        value = self._of(node)
        if isinstance(value, sympy.Basic) and (value.has(sympy.zoo, sympy.nan, sympy.oo, -sympy.oo, sympy.I) or
                                               value.is_number and value.evalf(15).is_real is False):
            self.undefined = True  # 1/0, log(0), sqrt(-1), ... somewhere inside
        elif isinstance(value, sympy.Expr) and any(_too_large(part) for part in sympy.preorder_traversal(value)):
            self.undefined = True  # exp(710), (1e30^3)^3^3, sigmoid(-710) = 1/(1 + exp(710)): no float64 holds it
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
@example(tree=("cmp", "<", ("num", "0"), ("cmp", "<", ("num", "0"), ("call", "sum", [("num", "0")]))), minimal=False,
         power="^", space=" ", lhs=LEFT_SIDES[0])
@example(tree=("call", "sigmoid", [("neg", ("num", "710"))]), minimal=False, power="^", space="", lhs=LEFT_SIDES[0])
def test_printed_expression_trees_parse_back(tree, minimal, power, space, lhs):
    """The text means the tree: it parses to the same SymPy expression, or, only when some part
    of it is undefined (1/0, log(0), sqrt(-1)) or beyond float64, it is rejected as an EquationSyntaxError."""
    text = show(tree, minimal, power, space)
    prefix, kind, target = lhs
    try:
        meant = Meaning(tree)
    except (TypeError, ValueError, ArithmeticError, KeyError):  # SymPy itself refuses (comparing non-reals,
        # a Piecewise of a condition with no free symbol: KeyError 'pop from an empty set', ...)
        with pytest.raises(ModelcError):
            parse_equation(prefix + text)
        return
    try:
        equation = parse_equation(prefix + text)
    except EquationSyntaxError as error:
        assert meant.undefined, f"{text!r} was rejected: {error.format()}"  # undefined, or too large
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
def mutated_model_files(draw, max_edits: int = 4):
    """A shipped model file after a few random edits."""
    name, text = draw(st.sampled_from(SHIPPED))
    for _ in range(draw(st.integers(1, max_edits))):
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


def front_end(folder: Path, name: str, text: str, codegen: bool = True) -> list[tuple[str, System]]:
    """Load a model file, build every template and generate code for the last one that builds.

    Returns (template name, System) for every template the front end accepts, as `modelc check`
    does (library.get, then build_system)."""
    path = folder / f"{name}.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    library = Library()
    built = None
    accepted = []
    try:
        data = library.load_file(path)
    except ModelcError as error:
        event(f"file rejected: {error.code}")
        return accepted
    for template_name in list(data):
        try:
            built = build_system(library.get(f"{path}:{template_name}"))
            accepted.append((str(template_name), built))
            event("a template built")
        except ModelcError as error:
            event(f"template rejected: {error.code}")
    if built is not None and codegen:
        try:
            generate(built, "rk4")
            event("code generated")
        except ModelcError as error:
            event(f"codegen rejected: {error.code}")
    return accepted


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


# --- (d) whatever the front end accepts compiles and runs ------------------------------------
# `modelc check` accepting a template promises that compile_model builds it and that the module
# runs: the only exception allowed anywhere on the way is a ModelcError (the generated module's
# own error classes are modelc's when it is loaded through modelc) — never a NameError from a
# bare `inf` in the code, an OverflowError from folding a constant, a RecursionError, ...
# Each example compiles into its own temporary cache folder (removed after it), so a long run
# neither fills the disk nor keeps thousands of modules in memory.

RUN_STEPS = 4


@contextlib.contextmanager
def private_cache():
    """MODELC_CACHE_DIR set to a fresh folder for one example; the folder and the modules loaded
    from it are gone afterwards."""
    old = os.environ.get("MODELC_CACHE_DIR")
    loaded = getattr(_compiler, "_loaded", None)
    before = set(loaded) if isinstance(loaded, dict) else set()
    with tempfile.TemporaryDirectory(prefix="modelc-fuzz-cache-") as folder:
        os.environ["MODELC_CACHE_DIR"] = folder
        try:
            yield Path(folder)
        finally:
            if old is None:
                os.environ.pop("MODELC_CACHE_DIR", None)
            else:
                os.environ["MODELC_CACHE_DIR"] = old
            if isinstance(loaded, dict):
                for key in set(loaded) - before:
                    loaded.pop(key, None)


def _has_population_terms(system: System) -> bool:
    """Whether a unit's value depends on the other units (mean/sum over the population)."""
    exprs = list(system.derivatives.values()) + [expr for _, expr in system.algebraics]
    return any(expr.has(PopMean, PopSum) for expr in exprs)


def run_arguments(module, n: int, seed: int, constant_inputs: bool = False) -> tuple[dict, dict]:
    """(params, inputs) for a run on n <= 3 units: default parameters (vector ones as one value
    per unit, weight matrices random), random inputs (RUN_STEPS, n), or one random number each
    (the same for every step and unit). Unit k sees the same inputs whatever n is."""
    rng = np.random.default_rng(seed)
    params = {}
    for name, shape in module.PARAM_SHAPES.items():
        if shape == "matrix":
            params[name] = rng.standard_normal((3, 3))[:n, :n] / n
        elif shape == "vector":
            params[name] = np.full(n, module.PARAMS[name])
    if constant_inputs:
        inputs = {name: float(rng.standard_normal()) for name in module.INPUTS}
    else:
        inputs = {name: rng.standard_normal((RUN_STEPS, 3))[:, :n] for name in module.INPUTS}
    return params, inputs


def run_module(module, n: int, seed: int, sampling_steps: int = 1, constant_inputs: bool = False):
    """Run a generated module RUN_STEPS steps on n units (run_arguments), every output recorded,
    NaN let through. Returns run's result, or None when the module refuses the run with a
    ModelcError (of modelc: see modelc.runtime.cache.use_modelc_errors)."""
    params, inputs = run_arguments(module, n, seed, constant_inputs)
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            result = module.run(module.initial_state(n), params=params, inputs=inputs, steps=RUN_STEPS,
                                record=list(module.OUTPUTS), sampling_steps=sampling_steps, on_nan="ignore")
        except ModelcError as error:
            event(f"run refused: {error.code}")
            return None
    event("ran")
    return result


def reference_run(module, system: System, method: str, n: int, seed: int, sampling_steps: int,
                  constant_inputs: bool = False):
    """The same run (run_module's arguments) by tests/references.py: the System's SymPy
    expressions through sympy.lambdify and the textbook scheme, no generated code. None when
    the reference cannot evaluate the System."""
    params, inputs = run_arguments(module, n, seed, constant_inputs)
    shapes = {label: (n,) for label in system.populations}
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        try:
            return Reference(system).integrate(method, {}, params, inputs, 1e-3, RUN_STEPS, shapes,
                                               record=list(module.OUTPUTS), sampling_steps=sampling_steps)
        except Exception:  # noqa: BLE001 - a limit of the reference, not of modelc
            event("no reference")
            return None


def _same_numbers(a, b, dtype: str) -> bool:
    """a and b agree: close where both are moderate, and never a NaN or infinity in one where
    the other holds a moderate number (the single-unit float path and NumPy may round
    differently, and past overflow an infinity may be a NaN the other way round)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape:
        return False
    moderate_a, moderate_b = np.abs(a) < 1e6, np.abs(b) < 1e6  # False for NaN
    if np.any(moderate_a & ~np.isfinite(b)) or np.any(moderate_b & ~np.isfinite(a)):
        return False
    both = moderate_a & moderate_b
    rtol = 1e-3 if dtype == "float32" else 1e-6
    return bool(np.allclose(a[both], b[both], rtol=rtol, atol=rtol))


def compile_and_run(data, path: Path, accepted: list[tuple[str, System]]) -> None:
    """Compile every accepted template (a random scheme and dtype, maybe vector parameters and
    a coupling) and run it on 1 and on 3 units."""
    method = data.draw(st.sampled_from(METHODS), label="method")
    dtype = data.draw(st.sampled_from(DTYPES), label="dtype")
    seed = data.draw(st.integers(0, 2**16), label="seed")
    sampling_steps = data.draw(st.sampled_from([1, 1, 1, 2, RUN_STEPS + 1]), label="sampling_steps")
    constant_inputs = data.draw(st.booleans(), label="constant_inputs")
    for name, system in accepted:
        vector = data.draw(st.lists(st.sampled_from(sorted(system.params)), unique=True, max_size=2)
                           if system.params else st.just([]), label=f"vector_params of {name}")
        coupling = None
        if system.inputs and system.outputs and data.draw(st.booleans(), label=f"couple {name}"):
            coupling = {"source_var": data.draw(st.sampled_from(system.outputs), label="source_var"),
                        "target_var": data.draw(st.sampled_from(sorted(system.inputs)), label="target_var")}
        compile_run_compare(path, name, system, method=method, dtype=dtype, vector_params=vector,
                            coupling=coupling, seed=seed, sampling_steps=sampling_steps,
                            constant_inputs=constant_inputs)


def compile_run_compare(path: Path, name: str, system: System, method: str = "euler", dtype: str = "float64",
                        vector_params=(), coupling=None, seed: int = 0, sampling_steps: int = 1,
                        constant_inputs: bool = False) -> None:
    """compile_model of a template check accepted, run on 1 and on 3 units: nothing but a
    ModelcError may escape, and a float64 module without options compiles (check finds
    everything compile refuses). The numbers are right: on three units (float64) they are
    those of the reference (tests/references.py), and a unit that nothing couples to the others
    gives alone (the single-unit float path) what it gives among three (NumPy)."""
    try:
        module = modelc.compile_model(f"{path}:{name}", method=method, backend="numpy", dtype=dtype,
                                      coupling=coupling, vector_params=vector_params)
    except ModelcError as error:
        # only a coupling or vector parameter that does not fit, or a value float32 cannot hold,
        # is check's to miss (see the statistics: `pytest --hypothesis-show-statistics`)
        event(f"compile refused{' (with options)' if coupling or vector_params else ''}: {error.code}")
        assert coupling or vector_params or dtype != "float64", \
            f"check accepted {name} but compile refused it:\n{error.format()}"
        return
    event("compiled")
    one, three = (run_module(module, n, seed, sampling_steps, constant_inputs) for n in (1, 3))
    if three is not None and dtype == "float64":
        if coupling or vector_params:
            connections = [Connection(coupling["source_var"], coupling["target_var"], "weights")] if coupling else []
            system = build_system(Library().get(f"{path}:{name}"), connections, vector_params=vector_params)
        want = reference_run(module, system, method, 3, seed, sampling_steps, constant_inputs)
        if want is not None:
            assert_same_run(three, want, list(module.OUTPUTS), dtype,
                            f"{name} ({method}, {dtype}) on three units", "the reference")
    if one is not None and three is not None and not coupling and not _has_population_terms(system):
        assert_same_run(one, {key: value[..., :1] for key, value in three.items() if key != "final"},
                        list(module.OUTPUTS), dtype, f"{name} ({method}, {dtype}) on one unit", "unit 0 of three")


def assert_same_run(got: dict, want: dict, keys: list[str], dtype: str, what: str, other: str) -> None:
    """Every recorded variable agrees (_same_numbers) up to the first row where some value of
    either run is NaN, infinite or huge; that row too unless something in it is infinite: once
    something overflowed, the order of operations decides (inf - inf is NaN one way, not the other)."""
    rows = min((len(got[key]) for key in keys), default=0)
    for row in range(rows):
        values = [np.asarray(run[key][row], dtype=float) for run in (got, want) for key in keys]
        if not all(np.all(np.abs(v) < 1e6) for v in values):
            rows = row if any(np.any(np.isinf(v)) for v in values) else row + 1
            break
    for key in keys:
        a, b = np.asarray(got[key], dtype=float), np.asarray(want[key], dtype=float)
        try:  # a population with no states and inputs of one number each may keep one unit
            a, b = np.broadcast_arrays(a, b)
        except ValueError:
            raise AssertionError(f"{what}: '{key}' has shape {a.shape}, {other} {b.shape}") from None
        assert _same_numbers(a[:rows], b[:rows], dtype), \
            f"{what}: '{key}' is {a[:rows, ..., 0].tolist()}, {other} gives {b[:rows, ..., 0].tolist()}"


def _names_in(tree) -> set[str]:
    if tree[0] == "name":
        return {tree[1]}
    return set().union(*(_names_in(child) for child in tree[1:] if isinstance(child, tuple)),
                       *(_names_in(child) for child in (tree[2] if tree[0] == "call" else ())))


VALUES = st.sampled_from(["0.0", "1.0", "-1.5", "2", "0.001", "100.0", "-0", "3e-300", "1e300", ".5"])


@st.composite
def tree_models(draw):
    """A model file whose equations are random expression trees: x' = tree, maybe v' = tree and
    y = tree, every other name a parameter or an input; an operator, maybe in a node and a circuit."""
    power, space = draw(st.sampled_from(["^", "**"])), draw(st.sampled_from([" ", ""]))
    targets = [("x", "x' = ", "output")]
    if draw(st.booleans()):
        targets.append(("v", "dv/dt = ", "variable"))
    if draw(st.booleans()):
        targets.append(("y", "y = ", "variable"))
    equations, used = [], set()
    for _, prefix, _ in targets:
        tree = draw(TREES)
        equations.append(prefix + show(tree, draw(st.booleans()), power, space))
        used |= _names_in(tree)
    variables = {target: f"{kind}({draw(VALUES)})" for target, _, kind in targets}
    for name in sorted(used - set(variables) - {"t", "pi"}):
        variables[name] = draw(st.one_of(VALUES.map(float), VALUES.map(lambda v: f"input({v})")))
    files = {"o": {"base": "OperatorTemplate", "equations": equations, "variables": variables}}
    inputs = [name for name, value in variables.items() if isinstance(value, str) and value.startswith("input")]
    if draw(st.booleans()):
        files["n"] = {"base": "NodeTemplate", "operators": ["o"]}
        edges = [["a/o/x", f"b/o/{draw(st.sampled_from(inputs))}", None, {"weight": draw(VALUES.map(float))}]] \
            if inputs else []
        files["c"] = {"base": "CircuitTemplate", "nodes": {"a": "n", "b": "n"}, "edges": edges}
    return yaml.safe_dump(files, sort_keys=False)


@fuzz(20)
@given(text=tree_models(), data=st.data())
def test_models_of_random_expressions_compile_and_run(text, data, scratch):
    accepted = front_end(scratch, "expressions", text, codegen=False)
    with private_cache():
        compile_and_run(data, scratch / "expressions.yaml", accepted)


@fuzz(10)
@given(case=mutated_model_files(max_edits=2), data=st.data())
def test_mutated_model_files_that_check_accepts_compile_and_run(case, data, scratch):
    accepted = front_end(scratch, *case, codegen=False)
    with private_cache():
        compile_and_run(data, scratch / f"{case[0]}.yaml", accepted)


@fuzz(8)
@given(structure=yaml_structures(), data=st.data())
def test_random_yaml_structures_that_check_accepts_compile_and_run(structure, data, scratch):
    try:
        text = yaml.safe_dump(structure, allow_unicode=True, sort_keys=False)
    except yaml.YAMLError:
        assume(False)
    accepted = front_end(scratch, "structure_run", text, codegen=False)
    with private_cache():
        compile_and_run(data, scratch / "structure_run.yaml", accepted)


# --- what the fuzzing above found, kept as fixed cases ------------------------------------------

def _operator(*equations: str, **variables) -> str:
    """The text of a model file with one operator `o`."""
    return yaml.safe_dump({"o": {"base": "OperatorTemplate", "equations": list(equations), "variables": variables}},
                          sort_keys=False)


def _with_circuit(text: str, weight: float, target: str) -> str:
    """text plus a node `n` of `o` and a circuit `c` of two such nodes, a/o/x feeding b/o/<target>."""
    return text + yaml.safe_dump({"n": {"base": "NodeTemplate", "operators": ["o"]},
                                  "c": {"base": "CircuitTemplate", "nodes": {"a": "n", "b": "n"},
                                        "edges": [["a/o/x", f"b/o/{target}", None, {"weight": weight}]]}},
                                 sort_keys=False)


# name -> (model file, template, compile options); each raised something other than a ModelcError
# or gave numbers other than the reference's
FOUND = {
    # the single-unit float path: a negative base to a fractional power is complex in Python
    "float path: (x - 2)^t is complex": (_operator("x' = (x - 2)^t", x="output(0.0)"), "o", {}),
    "float path: a complex compared": (_operator("x' = ((x - 2)^t > 0)", x="output(0.0)"), "o", {}),
    "float path: math.exp of a complex": (_operator("x' = exp((x - 2)^t)", x="output(0.0)"), "o", {}),
    # terms of time (and parameters) in the stages of a multi-stage scheme
    "stage term of t: (-2)^t": (_operator("x' = (-2)^t", x="output(0.0)"), "o", {"method": "heun"}),
    "stage term of t: (-2)^t in float32": (_operator("x' = (-2)^t", x="output(0.0)"), "o",
                                           {"method": "midpoint", "dtype": "float32"}),
    "stage term of t: cos(t) with out=": (_operator("x' = cos(t)", x="output(0.0)"), "o", {"method": "rk4"}),
    "stage term of t: exp(-k*t) with out=": (_operator("x' = exp(-k*t)", x="output(0.0)", k=1.0), "o",
                                             {"method": "heun"}),
    "stage term of t: 1/t at t = 0": (_operator("x' = 1/t", x="output(0.0)"), "o", {"method": "rk4"}),
    # terms of parameters alone, computed with Python floats
    "parameter term: 1/e with e = 0": (_operator("x' = 1/e", x="output(0.0)", e=0.0), "o", {}),
    "parameter term: (1/e < 0) with e = 0": (_operator("x' = (1/e < 0)", x="output(0.0)", e=0.0), "o", {}),
    "parameter term: 10^tau overflows": (_operator("x' = 10^tau", x="output(0.0)", tau=1e300), "o", {}),
    "parameter term: (-k)^1.5 is complex": (_operator("x' = (-k)^1.5", x="output(0.0)", k=1.0), "o", {}),
    "mean of a parameter": (_operator("x' = mean(k)", x="output(0.0)", k=1.0), "o", {}),
    # wrong numbers (the reference, tests/references.py, disagrees)
    "algebraic of t alone, in the stages of heun": (_operator("x' = y", "y = sin(1000*t)", x="output(0.0)",
                                                              y="variable(0.0)"), "o", {"method": "heun"}),
    "sum of a parameter over three units": (_operator("x' = log(sum(k))", x="output(0.0)", k=2.0), "o", {}),
    "sum of an input given as one number": (_operator("x' = sum(u)", x="output(0.0)", u="input(0.0)"), "o",
                                            {"constant_inputs": True}),
    "vector parameter in a logical and": (_operator("x' = (1 <= e) < (u != 3)", x="output(0.5)", e=0.0,
                                                    u="input(0.0)"), "o", {"vector_params": ["o/e"]}),
    # couplings (target = weights @ source)
    "coupling from a constant algebraic": (_operator("x' = -x + u", "y = 2", x="output(0.0)", y="variable(0.0)",
                                                     u="input(0.0)"), "o",
                                           {"coupling": {"source_var": "o/y", "target_var": "o/u"}}),
    "coupling from an algebraic of a parameter": (_operator("x' = -x + u", "y = 2*k", x="output(0.0)",
                                                            y="variable(0.0)", u="input(0.0)", k=1.5), "o",
                                                  {"coupling": {"source_var": "o/y", "target_var": "o/u"}}),
    "coupling from a constant algebraic into a stage term": (
        _operator("x' = u^t", "y = 0", x="output(2.0)", y="variable(1.0)", u="input(1.0)"), "o",
        {"method": "midpoint", "coupling": {"source_var": "o/y", "target_var": "o/u"}}),
    "coupling into a power of a comparison": (_operator("x' = (1 > u)^k", x="output(0.0)", u="input(0.0)", k=2.0),
                                              "o", {"coupling": {"source_var": "o/x", "target_var": "o/u"}}),
    "coupling into a comparison of a comparison": (_operator("x' = (1 <= e) < u", x="output(0.5)", e=0.0,
                                                             u="input(0.0)"), "o",
                                                   {"coupling": {"source_var": "o/x", "target_var": "o/u"}}),
    # an edge of weight 0 makes a divisor 0 (zoo) after wiring
    "edge of weight 0 into 1/u": (_with_circuit(_operator("x' = 1/u", x="output(0.0)", u="input(1.0)"), 0.0, "u"),
                                  "c", {}),
    "edge of weight 0 into v < 1/u": (_with_circuit(_operator("x' = (v < 1/u)", x="output(0.0)", u="input(0.0)",
                                                              v=0.5), 0.0, "u"), "c", {}),
}


@pytest.mark.parametrize("case", list(FOUND))
def test_cases_found_by_fuzzing_are_refused_or_compile_and_run(case, tmp_path):
    """Each is either refused by check (a ModelcError) or compiles and runs on 1 and 3 units
    raising nothing but a ModelcError, with the same numbers for a unit alone and among three."""
    text, template, options = FOUND[case]
    accepted = dict(front_end(tmp_path, "found", text, codegen=False))
    if template in accepted:
        compile_run_compare(tmp_path / "found.yaml", template, accepted[template], **options)
