"""The error catalogue as data: one minimal bad input per case, and exactly what modelc says.

tests/test_errors.py runs every case and checks the error class (by its code), the exact
message, the exact hint and, where the error points into a file or an equation, the
line and column. docs/make_errors.py turns the same list into docs/errors.md, so the
documentation shows what the code really says and cannot drift.

Kinds of case:
  equation  `source` is one equation, parsed alone (locations are <string>:1:column)
  file      `source` is a model file (written to model.yaml); `template` is loaded and built
            with compile_model("model.yaml:template"); `beside` are files next to it (bytes, or
            a Special file: a named pipe, a folder, a link)
  api       `source` is the body of a function of (mod, np, compile_model) registered with
            @api_case below; `mod` is the seed node compiled with recurrent weights
            (coupling tanh_op/r -> li_op/r_in, input li_op/I_ext), units n = 4
  cli       `source` is the command line after `modelc`; {model} is a model file holding
            `file_source` (text, or bytes written as they are), {dir} a scratch folder. Checked:
            exit status 2, the message on stderr.

In messages and hints, {dir} stands for the folder the case runs in.
"""
from __future__ import annotations

import inspect
import textwrap
from dataclasses import dataclass, field
from typing import Callable


@dataclass(frozen=True)
class Special:
    """A file beside model.yaml that is not bytes: a "named pipe", a "folder" or a "link" to `target`."""

    what: str
    target: str | None = None


@dataclass(frozen=True)
class Case:
    name: str
    code: str
    kind: str
    source: str
    message: str
    line: int | None = None
    column: int | None = None
    hint: str | None = None          # the exact hint ("…" stands for any text); None: no hint
    template: str = "m"              # file cases: the template to compile
    file_source: str | bytes | None = None   # cli cases: the model file {model}
    call: Callable | None = field(default=None, compare=False, repr=False)  # api cases
    beside: tuple[tuple[str, bytes | Special], ...] = ()  # file cases: (name, content) of other files


SEED = "neuron_model_templates.rate_neurons.leaky_integrator.tanh"
COUPLING = dict(source_var="tanh_op/r", target_var="li_op/r_in", input_var="li_op/I_ext", output_var="li_op/v")
N = 4

CASES: list[Case] = []


def eq(name, code, source, message, column, hint=None):
    CASES.append(Case(name, code, "equation", source, message, 1, column, hint))


def file(name, code, source, message, line=None, column=None, hint=None, template="m", beside=()):
    CASES.append(Case(name, code, "file", textwrap.dedent(source).lstrip("\n"), message, line, column, hint,
                      template, beside=tuple(beside)))


def cli(name, code, source, message, hint=None, file_source=None, line=None, column=None):
    if isinstance(file_source, str):
        file_source = textwrap.dedent(file_source).lstrip("\n")
    CASES.append(Case(name, code, "cli", source, message, line, column, hint, file_source=file_source))


def api_case(code, message, hint=None):
    """Register a function (mod, np, compile_model) -> None that must raise `code` with `message`."""
    def register(func):
        lines = inspect.getsource(func).splitlines()
        start = next(i for i, line in enumerate(lines) if line.startswith("def ")) + 1
        body = textwrap.dedent("\n".join(lines[start:]))  # the body: no decorator, no def line
        CASES.append(Case(func.__name__, code, "api", body, message, None, None, hint, call=func))
        return func
    return register


# --- equations --------------------------------------------------------------------------

eq("unknown_function", "MC102", "x' = -x + tanhh(x)", "unknown function 'tanhh'", 11,
   "did you mean 'tanh' or 'atanh' or 'tan'?")
eq("constant_called", "MC102", "x' = pi()", "unknown function 'pi'", 6,
   "'pi' is a constant; write it without parentheses")
eq("too_many_arguments", "MC109", "x' = exp(x, 2)", "exp() takes 1 argument but 2 were given", 6)
eq("too_few_arguments", "MC109", "y = where(x > 0, 1)", "where() takes 3 arguments but 2 were given", 5)
eq("min_of_one", "MC109", "y = min(x)", "min() takes at least 2 arguments but 1 was given", 5)
eq("equation_ends_early", "MC101", "x' = -x +", "equation ends too early", 10, "expected a number, a name or '('")
eq("unclosed_parenthesis", "MC101", "x' = (1 - x", "equation ends too early", 12, "expected ')'")
eq("two_operators", "MC101", "x' = 1 +* x", "unexpected '*' in equation", 9, "expected a number, a name or '('")
eq("chained_comparison", "MC101", "y = a < b < c", "unexpected '<' in equation", 11,
   "comparisons cannot be chained; combine them with where(...)")
eq("second_equals", "MC101", "y = 1 = 2", "unexpected '=' in equation", 7, "expected the end of the equation")
eq("non_ascii", "MC101", "x' = -x/τ", "unexpected character 'τ' in equation", 9,
   "only ASCII letters, digits, '_', operators and parentheses are allowed")
eq("attribute_access", "MC101", "x' = np.exp(x)", "unexpected '.' in equation", 8,
   "expected an operator or the end of the equation")
eq("code_injection", "MC101", "x' = __import__('os').system('touch PWNED')", "unexpected \"'\" in equation", 17,
   "expected a number, a name, '(' or ')'")
eq("lambda", "MC101", "x' = (lambda: 1)()", "unexpected ':' in equation", 13, "expected an operator or ')'")
eq("number_too_large", "MC101", "x' = 1e999 * x", "number 1e999 is too large", 6,
   "a model's numbers must be finite float64 values (at most about 1.8e308)")
eq("division_by_zero", "MC101", "x' = 1/0", "this part of the expression is infinite, undefined or imaginary", 6,
   "is there a division by zero, log(0) or sqrt(-1)?")
eq("constant_overflow", "MC101", "x' = -x + 2.0^2000",
   "this constant is about 1.1e602, more than a float64 holds (about 1.8e308)", 11,
   "a model's numbers must be finite float64 values")
eq("constant_folded_too_large", "MC101", "x' = -x + sqrt(3)^(10^8)",  # judged before SymPy computes 24M digits
   "this constant is about 5.4e23856062, more than a float64 holds (about 1.8e308)", 11,
   "a model's numbers must be finite float64 values")
eq("huge_power", "MC101", "x' = 2^-99999", "power too large to compute exactly", 6,
   "write the base as a decimal number (e.g. 2.0) if you really mean it")
eq("huge_exponent", "MC101", "x' = -x + (2*x)^(10^8)", "exponent 1e+08 is too large (more than 1024)", 11,
   "the power of an expression that holds a variable may have an exponent of at most 1024")
eq("derivative_on_right", "MC101", "x' = -x'", "the derivative x' can only appear on the left-hand side", 7,
   "the right-hand side uses the variable itself, as in x' = -x")
eq("function_as_variable", "MC101", "x' = exp", "'exp' is a function, not a variable", 6,
   "call it with arguments, e.g. exp(x)")
eq("bad_left_side", "MC101", "x + y = 1", "the left-hand side must be a variable or the derivative of one", 1,
   "write y = ..., x' = ..., dx/dt = ... or d/dt * x = ...")
eq("empty_equation", "MC101", "   ", "empty equation", 1, "write an equation such as x' = -x/tau")
eq("deep_nesting", "MC101", "x' = " + "sin(" * 101 + "x" + ")" * 101,
   "expression is nested too deeply (more than 100 levels)", 6, "split it into several algebraic equations")
eq("too_many_terms", "MC101", "x' = " + " + ".join(f"a{i}" for i in range(1, 1002)),
   "expression is too long (more than 1000 terms in a row)", 6, "split it into several algebraic equations")
eq("second_derivative", "MC107", "x'' = -x", "derivative of order 2 of 'x'; only first-order equations are allowed", 1,
   "write it as two first-order equations, e.g. x' = y and y' = ...")
eq("second_derivative_leibniz", "MC107", "d2x/dt2 = -x",
   "derivative of order 2 of 'x'; only first-order equations are allowed", 1,
   "write it as two first-order equations, e.g. x' = y and y' = ...")
eq("keyword_name", "MC111", "lambda = 1", "'lambda' is a Python keyword and cannot be a name", 1,
   "rename it, e.g. 'lambda_'")
eq("dunder_name", "MC111", "__class__ = 1", "name '__class__' starts with two underscores", 1,
   "names starting with '__' are reserved; rename it")
eq("define_time", "MC111", "t = 1", "'t' cannot be defined by an equation", 1,
   "'t' is built in (time, a constant or a function); choose another name")


# --- model files ------------------------------------------------------------------------

file("yaml_unclosed_quote", "MC100", """
    m:
      base: OperatorTemplate
      equations: "x' = -x
    """, "YAML syntax error: found unexpected end of stream", 3, 14, "while scanning a quoted scalar")
file("yaml_tab_indent", "MC100", "m:\n\tbase: OperatorTemplate\n",
     "YAML syntax error: found character '\\t' that cannot start any token", 2, 1,
     "while scanning for the next token")
file("yaml_control_character", "MC100", "m:\n  base: Operator\x07Template\n",
     "YAML syntax error: character '\\x07' is not allowed in a model file", 2, 17,
     "model files are UTF-8 text without control characters")
file("yaml_too_deep", "MC100", "m: " + "[" * 2000 + "]" * 2000 + "\n",
     "YAML structure is nested too deeply (more than 32 levels)", 1, 35, "flatten the nesting of lists and mappings")
file("yaml_alias_cycle", "MC110", "m: &a [*a]\n", "a YAML alias refers to the node that contains it", 1, 4)
file("file_not_a_mapping", "MC110", "- m\n- n\n", "a model file must be a mapping of template names to templates", 1, 1)
file("duplicate_key", "MC110", """
    m:
      base: OperatorTemplate
      base: NodeTemplate
    """, "duplicate key 'base'", 3, 3, "each key may appear once in a mapping")
file("template_not_a_mapping", "MC110", "m: 3\n", "template 'm' must be a mapping with a 'base:' key", 1, 1)
file("missing_base", "MC110", """
    m:
      equations: "x' = -x"
    """, "template 'm' needs 'base:' (one of OperatorTemplate, NodeTemplate, EdgeTemplate, CircuitTemplate "
         "or another template)", 1, 1)
file("misspelled_key", "MC110", """
    m:
      base: OperatorTemplate
      equation: "x' = -x"
      variables: {x: output(0.0)}
    """, "unknown key 'equation' in an operator", 3, 3, "did you mean 'equations'?")
file("no_equations", "MC110", """
    m:
      base: OperatorTemplate
      variables: {x: output(0.0)}
    """, "operator 'm' has no 'equations:'", 1, 1)
file("equations_not_text", "MC110", """
    m:
      base: OperatorTemplate
      equations: 3
      variables: {x: output(0.0)}
    """, "'equations' must be a string or a list of strings", 3, 14,
     "quote equations that YAML could read as something else")
file("empty_equation_string", "MC101", """
    m:
      base: OperatorTemplate
      variables: {x: output(0.0)}
      equations: ""
    """, "empty equation", 4, 14, "write an equation such as x' = -x/tau")
file("empty_equation_in_list", "MC101", """
    m:
      base: OperatorTemplate
      variables: {x: output(0.0)}
      equations: ["x' = -x", '']
    """, "empty equation", 4, 26, "write an equation such as x' = -x/tau")
file("equations_null", "MC110", """
    m:
      base: OperatorTemplate
      variables: {x: output(0.0)}
      equations: null
    """, "'equations:' of operator 'm' is empty", 4, 14,
     "write an equation such as x' = -x/tau, or a list of them")
file("equations_left_blank", "MC110", """
    o:
      base: OperatorTemplate
      equations: "x' = -x"
      variables: {x: output(0.0)}
    m:
      base: o
      equations:
      variables: {x: output(1.0)}
    """, "'equations:' of operator 'm' is empty", 7, 13,
     "write an equation such as x' = -x/tau, or a list of them")
file("variables_not_a_mapping", "MC110", """
    m:
      base: OperatorTemplate
      equations: "x' = -x"
      variables: [x]
    """, "'variables:' must be a mapping of names to values", 4, 14)
file("bad_declaration", "MC110", """
    m:
      base: OperatorTemplate
      equations: "x' = -x"
      variables:
        x: outptu(0.0)
    """, "cannot read the value of variable 'x': 'outptu(0.0)'", 5, 8,
     "write a number (10.0), or output(0.0), input(0.0), variable(0.0)")
file("null_value", "MC110", """
    m:
      base: OperatorTemplate
      equations: "x' = -x*k"
      variables:
        x: output(0.0)
        k: null
    """, "variable 'k' needs a number or output(...)/input(...)/variable(...), got None", 6, 8)
file("infinite_default", "MC110", """
    m:
      base: OperatorTemplate
      equations: "x' = -x/tau"
      variables:
        x: output(0.0)
        tau: .inf
    """, "variable 'tau' must have a finite value, got inf", 6, 10,
     "write an ordinary number (inf, nan and numbers beyond about 1.8e308 are not allowed)")
file("integer_beyond_float64", "MC110", f"""
    m:
      base: OperatorTemplate
      equations: "x' = -x/tau"
      variables:
        x: output(0.0)
        tau: 1{"0" * 400}
    """, f"variable 'tau' must have a finite value, got 1{'0' * 59}…",
     6, 10, "write an ordinary number (inf, nan and numbers beyond about 1.8e308 are not allowed)")
file("integer_too_long_to_read", "MC110", f"""
    m:
      base: OperatorTemplate
      equations: "x' = -x/tau"
      variables:
        x: output(0.0)
        tau: {"9" * 5000}
    """, "number with 5000 digits is too large", 6, 10,
     "a model's numbers must be finite float64 values (at most about 1.8e308)")
file("impossible_date", "MC110", """
    m:
      base: OperatorTemplate
      description: 2001-02-30
      equations: "x' = -x"
      variables: {x: output(0.0)}
    """, "cannot read the YAML value '2001-02-30': day is out of range for month", 3, 16)
# Nine lines of aliases stand for a billion items: messages show the start of a value, never all of it.
LAUGHS = "".join([f"l0: &l0 [{', '.join(['lol'] * 10)}]\n"] +
                 [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]\n" for i in range(1, 9)])
LAUGH = "[[[[[[[[['lol', 'lol', 'lol', 'lol', 'lol', 'lol', 'lol', 'l…"
file("billion_laughs_value", "MC110", LAUGHS + textwrap.dedent("""
    m:
      base: OperatorTemplate
      equations: "x' = -x/tau"
      variables: {x: output(0.0), tau: *l8}
    """).lstrip("\n"), f"cannot read the value of variable 'tau': {LAUGH}", 13, 36,
     "write a number (10.0), or output(0.0), input(0.0), variable(0.0)")
file("billion_laughs_unit", "MC110", LAUGHS + textwrap.dedent("""
    m:
      base: OperatorTemplate
      equations: "x' = -x/tau"
      variables: {x: output(0.0), tau: {default: 1.0, unit: *l8}}
    """).lstrip("\n"), "'unit:' must be text", 13, 57)
file("long_form_without_default", "MC110", """
    m:
      base: OperatorTemplate
      equations: "x' = -x"
      variables:
        x: {unit: ms}
    """, "variable 'x' in long form needs 'default:' (and optionally 'unit:' and 'description:')", 5, 8)
file("description_not_text", "MC110", """
    m:
      base: OperatorTemplate
      description: [a, b]
      equations: "x' = -x"
      variables: {x: output(0.0)}
    """, "'description:' must be text", 3, 16)
file("edge_template", "MC110", """
    m:
      base: EdgeTemplate
    """, "'m' is an edge template; it runs as part of a circuit's edges", 1, 1,
     "use it in a circuit: edges: [[a/op/x, b/op/y, m, {weight: 1.0}]]")
file("bad_variable_name", "MC111", """
    m:
      base: OperatorTemplate
      equations: "x' = -x"
      variables:
        x: output(0.0)
        2k: 1.0
    """, "'2k' is not a valid variable name", 6, 5,
     "names start with a letter or '_' and hold letters, digits and '_'")
file("dunder_variable", "MC111", """
    m:
      base: OperatorTemplate
      equations: "x' = -x"
      variables:
        x: output(0.0)
        __dict__: 1.0
    """, "variable name '__dict__' may not start with '__'", 6, 5)
file("keyword_variable", "MC111", """
    m:
      base: OperatorTemplate
      equations: "x' = -x/lambda"
      variables:
        x: output(0.0)
        lambda: 1.0
    """, "'lambda' is a Python keyword and cannot be a name", 3, 23, "rename it, e.g. 'lambda_'")
file("variable_named_t", "MC111", """
    m:
      base: OperatorTemplate
      equations: "x' = -x + t"
      variables: {x: output(0.0), t: 1.0}
    """, "'t' is built in (time); a variable cannot be named 't'", 4, 31, "choose another name")
file("bad_node_label", "MC111", """
    o:
      base: OperatorTemplate
      equations: "x' = -x"
      variables: {x: output(0.0)}
    n:
      base: NodeTemplate
      operators: [o]
    m:
      base: CircuitTemplate
      nodes: {"a/b": n}
    """, "'a/b' is not a valid node label name", 10, 11,
     "names start with a letter or '_' and hold letters, digits and '_'")
file("equation_in_file", "MC102", """
    m:
      base: OperatorTemplate
      equations: "x' = -x + tanhh(x)"
      variables: {x: output(0.0)}
    """, "unknown function 'tanhh'", 3, 25, "did you mean 'tanh' or 'atanh' or 'tan'?")
file("equation_in_block_scalar", "MC109", """
    m:
      base: OperatorTemplate
      equations: |
        x' = -x +
          exp(x, 2)
      variables: {x: output(0.0)}
    """, "exp() takes 1 argument but 2 were given", 5, 7)
file("equation_in_list", "MC101", """
    m:
      base: OperatorTemplate
      equations:
        - "x' = -x"
        - "y = x +"
      variables: {x: output(0.0), y: output(0.0)}
    """, "equation ends too early", 5, 15, "expected a number, a name or '('")
file("undefined_symbol", "MC103", """
    m:
      base: OperatorTemplate
      equations: "x' = -x/tau"
      variables:
        x: output(0.0)
        tua: 10.0
    """, "undefined symbol 'tau' in operator 'm'", 3, 23, "did you mean 'tua'?")
file("undefined_symbol_from_an_edit", "MC103", """
    o:
      base: OperatorTemplate
      equations: ["x' = -x + eta", "y = 2*x"]
      variables: {x: output(0.0), y: output(0.0), eta: 0.0}
    m:
      base: o
      equations: {replace: {eta: eta - b}}
    """, "undefined symbol 'b' in operator 'm'", 7, 36, "declare it under variables: of 'm'")
file("undeclared_target", "MC103", """
    m:
      base: OperatorTemplate
      equations: "vv' = -vv"
      variables: {v: output(0.0)}
    """, "'v' is declared output(...) in 'm' but no equation defines it", 4, 15, "did you mean 'vv'?")
file("output_without_equation", "MC103", """
    m:
      base: OperatorTemplate
      equations: "x' = -x"
      variables:
        x: output(0.0)
        y: output(0.0)
    """, "'y' is declared output(...) in 'm' but no equation defines it", 6, 5,
     "declare it as a plain number if it is a constant parameter")
file("defined_twice", "MC104", """
    m:
      base: OperatorTemplate
      equations: ["x' = -x", "x' = 1"]
      variables: {x: output(0.0)}
    """, "'x' is defined twice in operator 'm'", 3, 27, "each variable has one equation")
file("input_defined", "MC104", """
    m:
      base: OperatorTemplate
      equations: ["x' = -x + u", "u = 1"]
      variables: {x: output(0.0), u: input(0.0)}
    """, "'u' is an input; an equation cannot define it", 3, 31,
     "declare it as variable(0.0) or output(0.0) to make it a computed variable")
file("operator_twice_in_node", "MC104", """
    o:
      base: OperatorTemplate
      equations: "x' = -x"
      variables: {x: output(0.0)}
    m:
      base: NodeTemplate
      operators: [o, o]
    """, "operator 'o' appears twice in node 'm'", 7, 18, "each operator may be used once in a node")
file("algebraic_cycle", "MC105", """
    m:
      base: OperatorTemplate
      equations: ["a = 2*b", "b = a + 1", "x' = a - x"]
      variables: {x: output(0.0), a: variable(0.0), b: variable(0.0)}
    """, "algebraic cycle: m/a -> m/b -> m/a", 3, 16,
     "break the cycle by making one of these variables a state (an ODE)")
file("derivative_of_parameter", "MC106", """
    m:
      base: OperatorTemplate
      equations: "k' = -k"
      variables: {k: 1.0}
    """, "'k' is a constant parameter; an equation cannot define it", 3, 15,
     "declare it as variable(1.0) or output(1.0) to make it a state")
file("higher_order_in_file", "MC107", """
    m:
      base: OperatorTemplate
      equations: "x'' = -x"
      variables: {x: output(0.0)}
    """, "derivative of order 2 of 'x'; only first-order equations are allowed", 3, 15,
     "write it as two first-order equations, e.g. x' = y and y' = ...")
file("unknown_base", "MC108", """
    m:
      base: OperatorTemplat
      equations: "x' = -x"
    """, "template 'OperatorTemplat' is not in model.yaml", 2, 9,
     "did you mean 'OperatorTemplate' or 'CircuitTemplate'?")
file("unknown_operator_in_node", "MC108", """
    li_op:
      base: OperatorTemplate
      equations: "x' = -x"
      variables: {x: output(0.0)}
    m:
      base: NodeTemplate
      operators: [li]
    """, "template 'li' is not in model.yaml", 7, 15, "it holds: li_op, m")
file("unknown_dotted_path", "MC108", """
    m:
      base: neuron_model_templates.rate_neurons.leaky_integrater.li_op
    """, "no model file for template path 'neuron_model_templates.rate_neurons.leaky_integrater.li_op'", 2, 9,
     "did you mean 'leaky_integrator'? searched: … (set MODELC_PATH to add folders)")
file("dotted_path_escape", "MC108", """
    m:
      base: neuron_model_templates...secrets.x
    """, "'neuron_model_templates...secrets.x' is not a template path", 2, 9,
     "write package.file.template (dotted names only) or path/to/file.yaml:template")
file("missing_file", "MC108", """
    m:
      base: other.yaml:x
    """, "model file '{dir}/other.yaml' does not exist", 2, 9)
file("base_is_a_named_pipe", "MC114", """
    m:
      base: pipe.yaml:x
    """, "model file '{dir}/pipe.yaml' is a named pipe, not a regular file", 2, 9,
     "a model file is an ordinary file of YAML text", beside=[("pipe.yaml", Special("named pipe"))])
file("base_is_a_device", "MC114", """
    m:
      base: zero.yaml:x
    """, "model file '/dev/zero' is a device, not a regular file", 2, 9,
     "a model file is an ordinary file of YAML text", beside=[("zero.yaml", Special("link", "/dev/zero"))])
file("base_is_a_folder", "MC114", """
    m:
      base: models.yaml:x
    """, "model file '{dir}/models.yaml' is a folder, not a regular file", 2, 9,
     "a model file is an ordinary file of YAML text", beside=[("models.yaml", Special("folder"))])
file("base_is_too_large", "MC114", """
    m:
      base: big.yaml:x
    """, "model file '{dir}/big.yaml' is larger than 4 MiB", 2, 9, "split it into several model files",
     beside=[("big.yaml", b"# " * (2 * 2**20) + b"\n")])
file("inheritance_cycle", "MC112", """
    a:
      base: b
    m:
      base: a
    b:
      base: m
    """, "templates inherit from each other in a cycle: m -> a -> b -> m", 3, 1)
# A cycle of 42 templates: the message leaves out the middle.
file("long_inheritance_cycle", "MC112", "m: {base: a39}\n" + "".join(f"a{i}: {{base: a{i - 1}}}\n" for i in range(1, 40))
     + "a0: {base: m}\n", "templates inherit from each other in a cycle: m -> a39 -> a38 -> … -> a1 -> a0 -> m", 1, 1)
file("edge_to_unknown_variable", "MC113", """
    o:
      base: OperatorTemplate
      equations: "x' = -x + u"
      variables: {x: output(0.0), u: input(0.0)}
    n:
      base: NodeTemplate
      operators: [o]
    m:
      base: CircuitTemplate
      nodes: {a: n, b: n}
      edges:
        - [a/o/x, b/o/uu, null, {weight: 2.0}]
    """, "edge target 'b/o/uu' is not a variable of this model", 12, 7,
     "did you mean 'b/o/u' or 'b/o/x' or 'a/o/u'?")
file("edge_into_state", "MC113", """
    o:
      base: OperatorTemplate
      equations: "x' = -x + u"
      variables: {x: output(0.0), u: input(0.0)}
    n:
      base: NodeTemplate
      operators: [o]
    m:
      base: CircuitTemplate
      nodes: {a: n, b: n}
      edges:
        - [a/o/x, b/o/x, null, {weight: 2.0}]
    """, "edge target 'b/o/x' must be declared input(...)", 12, 7,
     "edges add into inputs; declare the target variable as input(0.0)")
file("edge_weight_not_a_number", "MC110", """
    o:
      base: OperatorTemplate
      equations: "x' = -x + u"
      variables: {x: output(0.0), u: input(0.0)}
    n:
      base: NodeTemplate
      operators: [o]
    m:
      base: CircuitTemplate
      nodes: {a: n, b: n}
      edges:
        - [a/o/x, b/o/u, null, {weight: strong}]
    """, "edge weight must be a finite number, got 'strong'", 12, 37)
file("edges_sum_beyond_float64", "MC113", """
    o:
      base: OperatorTemplate
      equations: "x' = -x + u"
      variables: {x: output(0.0), u: input(0.0)}
    n:
      base: NodeTemplate
      operators: [o]
    m:
      base: CircuitTemplate
      nodes: {a: n, b: n}
      edges:
        - [a/o/x, b/o/u, null, {weight: 1.0e+308}]
        - [a/o/x, b/o/u, null, {weight: 1.0e+308}]
    """, "the edges into 'b/o/u': this constant is about 2.0e308, more than a float64 holds (about 1.8e308)", 4, 31,
     "a model's numbers must be finite float64 values")
file("wiring_makes_a_division_by_zero", "MC101", """
    o:
      base: OperatorTemplate
      equations: "x' = -x + 1/u"
      variables: {x: output(0.0), u: input(1.0)}
    n:
      base: NodeTemplate
      operators: [o]
    m:
      base: CircuitTemplate
      nodes: {a: n, b: n}
      edges:
        - [a/o/x, b/o/u, null, {weight: 0.0}]
    """, "the equation of 'b/o/x' with b/o/u = 0: this part of the expression is infinite, undefined or imaginary",
     3, 15, "is there a division by zero, log(0) or sqrt(-1)?")
file("billion_laughs_edge_weight", "MC110", LAUGHS + textwrap.dedent("""
    o:
      base: OperatorTemplate
      equations: "x' = -x + u"
      variables: {x: output(0.0), u: input(0.0)}
    n:
      base: NodeTemplate
      operators: [o]
    m:
      base: CircuitTemplate
      nodes: {a: n, b: n}
      edges:
        - [a/o/x, b/o/u, null, {weight: *l8}]
    """).lstrip("\n"), f"edge weight must be a finite number, got {LAUGH}", 21, 37)
file("override_unknown_variable", "MC110", """
    o:
      base: OperatorTemplate
      equations: "x' = -x/tau"
      variables: {x: output(0.0), tau: 10.0}
    m:
      base: NodeTemplate
      operators: {o: {tua: 5.0}}
    """, "operator 'o' has no variable 'tua'", 7, 19, "did you mean 'tau'?")
file("edit_without_base", "MC110", """
    m:
      base: OperatorTemplate
      equations: {add: ["x' = -x"]}
    """, "equation edits (replace/add/remove) need a base operator to edit", 3, 3)
file("unknown_edit", "MC110", """
    o:
      base: OperatorTemplate
      equations: "x' = -x"
      variables: {x: output(0.0)}
    m:
      base: o
      equations: {rename: {x: y}}
    """, "unknown equation edit 'rename'", 7, 15, "did you mean 'remove' or 'replace'?")
file("replace_with_null", "MC110", """
    o:
      base: OperatorTemplate
      equations: "x' = -x + eta"
      variables: {x: output(0.0), eta: 0.0}
    m:
      base: o
      equations: {replace: {eta: null}}
    """, "'replace:' needs an expression to put in place of 'eta', got None", 7, 30)
file("billion_laughs_replace", "MC110", LAUGHS + textwrap.dedent("""
    o:
      base: OperatorTemplate
      equations: "x' = -x + eta"
      variables: {x: output(0.0), eta: 0.0}
    m:
      base: o
      equations: {replace: {eta: *l8}}
    """).lstrip("\n"), f"'replace:' needs an expression to put in place of 'eta', got {LAUGH}", 16, 30)
file("replace_with_empty_text", "MC101", """
    o:
      base: OperatorTemplate
      equations: "x' = -x + eta"
      variables: {x: output(0.0), eta: 0.0}
    m:
      base: o
      equations: {replace: {eta: ""}}
    """, "empty expression", 7, 30, "write an expression such as eta - a")
file("replace_syntax_error", "MC101", """
    o:
      base: OperatorTemplate
      equations: "x' = -x + eta"
      variables: {x: output(0.0), eta: 0.0}
    m:
      base: o
      equations: {replace: {eta: "eta -"}}
    """, "expression ends too early", 7, 36, "expected a number, a name or '('")
file("edit_makes_a_constant_overflow", "MC101", """
    o:
      base: OperatorTemplate
      equations: "x' = -x + k^400"
      variables: {x: output(0.0), k: 1.0}
    m:
      base: o
      equations: {replace: {k: 10}}
    """, "editing the equation of 'x': this constant is about 1.0e400, more than a float64 holds (about 1.8e308)",
     7, 28, "a model's numbers must be finite float64 values")
file("edit_divides_by_zero", "MC101", """
    o:
      base: OperatorTemplate
      equations: "x' = -x/tau"
      variables: {x: output(0.0), tau: 1.0}
    m:
      base: o
      equations: {remove: [tau]}
    """, "editing the equation of 'x': this part of the expression is infinite, undefined or imaginary", 7, 24,
     "is there a division by zero, log(0) or sqrt(-1)?")
file("edit_makes_a_huge_exponent", "MC101", """
    o:
      base: OperatorTemplate
      equations: "x' = -x + (2*x)^n"
      variables: {x: output(0.0), n: 2.0}
    m:
      base: o
      equations: {replace: {n: 10^8}}
    """, "editing the equation of 'x': exponent 1e+08 is too large (more than 1024)", 7, 28,
     "the power of an expression that holds a variable may have an exponent of at most 1024")
# Each edit doubles the equation: 17 of them would make it 2^17 times as large.
file("edits_make_an_expression_too_large", "MC101", """
    e0:
      base: OperatorTemplate
      equations: "x' = -x"
      variables: {x: output(0.0)}
    """ + "".join(f"""
    e{i}:
      base: e{i - 1}
      equations: {{replace: {{x: sin(x) + cos(x)}}}}
    """ for i in range(1, 18)) + """
    m:
      base: e17
    """, "editing the equation of 'x': expression is too large (more than 100000 operations)", 64, 28,
     "split it into several algebraic equations; an edit that puts an expression into itself doubles it")
file("two_errors_at_once", "MC001", """
    m:
      base: OperatorTemplate
      equations: ["x' = tanhh(x)", "y = x +"]
      variables: {x: output(0.0), y: output(0.0)}
    """, "2 errors")


# --- events (threshold, reset, emitted spike train) -------------------------------------

file("event_unknown_key", "MC130", """
    m:
      base: OperatorTemplate
      equations: "v' = 1"
      variables: {v: output(0.0)}
      events:
        spike: {when: "v > 1", rest: ["v = 0"]}
    """, "unknown key 'rest' in event 'spike'", 6, 28, "did you mean 'reset'?")
file("event_reset_not_a_state", "MC131", """
    m:
      base: OperatorTemplate
      equations: "v' = 1"
      variables: {v: output(0.0), v_r: 0.0}
      events:
        spike: {when: "v > 1", reset: ["v_r = 0"]}
    """, "event 'spike' resets 'v_r', which is not a state (no ODE defines it) of 'm'", 6, 37,
     "a reset assigns a state, e.g. v = v_r")


# --- API: compile_model and the generated module's run() -------------------------------

@api_case("MC302", "unknown integration method 'rk5'", "did you mean 'rk4'?")
def compile_unknown_method(mod, np, compile_model):
    compile_model(SEED, method="rk5")


@api_case("MC301", "unknown backend 'numpyy'", "did you mean 'numpy'…")  # … : other backends may follow
def compile_unknown_backend(mod, np, compile_model):
    compile_model(SEED, backend="numpyy")


@api_case("MC301", "unsupported dtype 'int8'", "choose one of float64, float32")
def compile_unsupported_dtype(mod, np, compile_model):
    compile_model(SEED, dtype="int8")


@api_case("MC108", "a template path must be a non-empty string, got None")
def compile_no_template(mod, np, compile_model):
    compile_model(None)


@api_case("MC108", "'/etc/passwd' is not a template path",
          "write package.file.template (dotted names only) or path/to/file.yaml:template")
def compile_absolute_dotted_path(mod, np, compile_model):
    compile_model("/etc/passwd")


@api_case("MC108", "template 'tanhh' is not in leaky_integrator.yaml", "did you mean 'tanh' or 'tanh_op'?")
def compile_unknown_template(mod, np, compile_model):
    compile_model("neuron_model_templates.rate_neurons.leaky_integrator.tanhh")


@api_case("MC113", "edge source 'tanh_op/rate' is not a variable of this model",
          "did you mean 'tanh_op/r' or 'tanh_op/v'?")
def compile_unknown_coupling_source(mod, np, compile_model):
    compile_model(SEED, coupling=dict(source_var="tanh_op/rate", target_var="li_op/r_in"))


@api_case("MC220", "node 'q': 1 spike_var but 2 reset_var",
          "give one reset_var (the thresholded state) per spike_var")
def network_spike_and_reset_vars_unpaired(mod, np, compile_model):
    from modelc import Network
    Network(dt=1e-3).add_diffeq_node("q", "neuron_model_templates.spiking_neurons.qif.qif", N=2,
                                     spike_var=["qif_op/spike"], reset_var=["qif_op/v", "qif_op/s"])


@api_case("MC113", "a coupling needs both source_var and target_var")
def compile_half_coupling(mod, np, compile_model):
    compile_model(SEED, coupling=dict(source_var="tanh_op/r"))


@api_case("MC113", "input_var 'li_op/I' is not a free input of neuron_model_templates.rate_neurons.leaky_integrator.tanh", "did you mean 'li_op/I_ext'?")
def compile_unknown_input_var(mod, np, compile_model):
    compile_model(SEED, coupling=dict(source_var="tanh_op/r", target_var="li_op/r_in", input_var="li_op/I"))


@api_case("MC110", "'tua' is not a parameter of neuron_model_templates.rate_neurons.leaky_integrator.tanh")
def compile_unknown_vector_param(mod, np, compile_model):
    compile_model(SEED, vector_params=["tua"])


@api_case("MC202", "dt must be a positive number, got 0")
def run_dt_zero(mod, np, compile_model):
    mod.run({}, {"weights": np.zeros((4, 4))}, {}, dt=0, steps=10)


@api_case("MC202", "dt must be a positive number, got nan")
def run_dt_nan(mod, np, compile_model):
    mod.run({}, {"weights": np.zeros((4, 4))}, {}, dt=float("nan"), steps=10)


@api_case("MC202", "steps must be a whole number >= 1, got 0")
def run_no_steps(mod, np, compile_model):
    mod.run({}, {"weights": np.zeros((4, 4))}, {}, dt=1e-3, steps=0)


@api_case("MC202", "steps must be a whole number >= 1, got 2.5")
def run_fractional_steps(mod, np, compile_model):
    mod.run({}, {"weights": np.zeros((4, 4))}, {}, dt=1e-3, steps=2.5)


@api_case("MC202", "sampling_steps must be a whole number >= 1, got -1")
def run_bad_sampling(mod, np, compile_model):
    mod.run({}, {"weights": np.zeros((4, 4))}, {}, dt=1e-3, steps=10, sampling_steps=-1)


@api_case("MC202", "on_nan must be 'raise', 'warn' or 'ignore', got 'stop'")
def run_bad_on_nan(mod, np, compile_model):
    mod.run({}, {"weights": np.zeros((4, 4))}, {}, dt=1e-3, steps=10, on_nan="stop")


@api_case("MC202", "parameter 'weights' (a weight matrix) must be given")
def run_without_weights(mod, np, compile_model):
    mod.run(mod.initial_state(4), {}, {}, dt=1e-3, steps=10)


@api_case("MC202", "parameter 'li_op/tau' must be finite, got nan")
def run_nan_parameter(mod, np, compile_model):
    mod.run(mod.initial_state(4), {"weights": np.zeros((4, 4)), "li_op/tau": float("nan")}, {}, dt=1e-3, steps=10)


@api_case("MC202", "parameter 'weights' must be finite, got inf at index (1, 2)")
def run_infinite_weight(mod, np, compile_model):
    weights = np.zeros((4, 4))
    weights[1, 2] = np.inf
    mod.run(mod.initial_state(4), {"weights": weights}, {}, dt=1e-3, steps=10)


@api_case("MC202", "parameter 'li_op/tau' must be a real number or an array of real numbers, got 'fast'")
def run_text_parameter(mod, np, compile_model):
    mod.run(mod.initial_state(4), {"weights": np.zeros((4, 4)), "li_op/tau": "fast"}, {}, dt=1e-3, steps=10)


@api_case("MC202", "parameter 'li_op/tau' must be a real number or an array of real numbers, got (1+2j)")
def run_complex_parameter(mod, np, compile_model):
    mod.run(mod.initial_state(4), {"weights": np.zeros((4, 4)), "li_op/tau": 1 + 2j}, {}, dt=1e-3, steps=10)


@api_case("MC202", "params must be a dict of names to values, got list")
def run_params_not_a_dict(mod, np, compile_model):
    mod.run(mod.initial_state(4), [np.zeros((4, 4))], {}, dt=1e-3, steps=10)


@api_case("MC202", "initial value of state 'li_op/v' must be finite, got nan at index 2")
def run_nan_initial_state(mod, np, compile_model):
    mod.run({"li_op/v": np.array([0.0, 0.0, np.nan, 0.0])}, {"weights": np.zeros((4, 4))}, {}, dt=1e-3, steps=10)


@api_case("MC202", "input 'li_op/I_ext' must be finite, got nan at index (3, 0)")
def run_nan_input(mod, np, compile_model):
    drive = np.ones((10, 4))
    drive[3, 0] = np.nan
    mod.run(mod.initial_state(4), {"weights": np.zeros((4, 4))}, {"li_op/I_ext": drive}, dt=1e-3, steps=10)


@api_case("MC201", "parameter 'weights' must have shape (n_target, n_source) = (4, 4), got (3, 3)")
def run_weights_wrong_shape(mod, np, compile_model):
    mod.run(mod.initial_state(4), {"weights": np.zeros((3, 3))}, {}, dt=1e-3, steps=10)


@api_case("MC201", "parameter 'weights' must be a matrix (n_target, n_source), got shape (4,)")
def run_weights_not_a_matrix(mod, np, compile_model):
    mod.run(mod.initial_state(4), {"weights": np.zeros(4)}, {}, dt=1e-3, steps=10)


@api_case("MC201", "parameter 'li_op/tau' was compiled as one number for all units, got an array of shape (4,); "
                   "compile it as a vector parameter")
def run_array_for_scalar_parameter(mod, np, compile_model):
    mod.run(mod.initial_state(4), {"weights": np.zeros((4, 4)), "li_op/tau": np.ones(4)}, {}, dt=1e-3, steps=10)


@api_case("MC201", "input 'li_op/I_ext' has 5 rows but the run has 10 steps; expected shape (10, ...)")
def run_input_too_short(mod, np, compile_model):
    mod.run(mod.initial_state(4), {"weights": np.zeros((4, 4))}, {"li_op/I_ext": np.ones((5, 4))}, dt=1e-3, steps=10)


@api_case("MC201", "'li_op/I_ext' has 3 units but 'li_op/v' of the same population has 4; "
                   "expected arrays of shape (..., 4)")
def run_input_wrong_units(mod, np, compile_model):
    mod.run(mod.initial_state(4), {"weights": np.zeros((4, 4))}, {"li_op/I_ext": np.ones((10, 3))}, dt=1e-3, steps=10)


@api_case("MC201", "'li_op/v' has 3 units but 'li_op/I_ext' of the same population has 4; "
                   "expected arrays of shape (..., 4)")
def run_initial_state_wrong_units(mod, np, compile_model):
    mod.run({"li_op/v": np.zeros(3)}, {"weights": np.zeros((4, 4))}, {"li_op/I_ext": np.ones((10, 4))},
            dt=1e-3, steps=10)


@api_case("MC201", "the batch axes of the arrays do not fit together: 'li_op/v' (2,), 'li_op/I_ext' (3,)",
          "batch axes come before the unit axis (after the step axis for inputs) and must broadcast")
def run_batch_mismatch(mod, np, compile_model):
    mod.run({"li_op/v": np.zeros((2, 4))}, {"weights": np.zeros((4, 4))}, {"li_op/I_ext": np.ones((10, 3, 4))},
            dt=1e-3, steps=10)


@api_case("MC205", "unknown parameter(s) 'tua'; this model has 'li_op/tau', 'li_op/k', 'li_op/eta', 'weights'",
          "did you mean 'li_op/tau' or 'li_op/eta'?")
def run_unknown_parameter(mod, np, compile_model):
    mod.run(mod.initial_state(4), {"weights": np.zeros((4, 4)), "tua": 5.0}, {}, dt=1e-3, steps=10)


@api_case("MC205", "unknown input(s) 'I_ext'; this model has 'li_op/I_ext'", "did you mean 'li_op/I_ext'?")
def run_unknown_input(mod, np, compile_model):
    mod.run(mod.initial_state(4), {"weights": np.zeros((4, 4))}, {"I_ext": 1.0}, dt=1e-3, steps=10)


@api_case("MC205", "unknown state(s) 'v'; this model has 'li_op/v'", "did you mean 'li_op/v'?")
def run_unknown_state(mod, np, compile_model):
    mod.run({"v": np.zeros(4)}, {"weights": np.zeros((4, 4))}, {}, dt=1e-3, steps=10)


@api_case("MC202", "y has no value for state(s) 'li_op/v'",
          "rhs() needs every state; initial_state(n) gives a complete dict to start from")
def rhs_missing_state(mod, np, compile_model):
    mod.rhs(0.0, {}, {"weights": np.zeros((4, 4))})


@api_case("MC205", "unknown input(s) 'I_ext'; this model has 'li_op/I_ext'", "did you mean 'li_op/I_ext'?")
def rhs_unknown_input(mod, np, compile_model):
    mod.rhs(0.0, mod.initial_state(4), {"weights": np.zeros((4, 4))}, {"I_ext": 1.0})


@api_case("MC205", "unknown variable(s) to record 'li_op/r'; this model has "
                   "'li_op/v', 'tanh_op/v', 'tanh_op/r', 'li_op/r_in'",
          "did you mean 'li_op/v' or 'li_op/r_in' or 'tanh_op/r'?")
def run_unknown_record(mod, np, compile_model):
    mod.run(mod.initial_state(4), {"weights": np.zeros((4, 4))}, {}, dt=1e-3, steps=10, record=["li_op/r"])


@api_case("MC202", "cannot record 'qif_op/s_in': it reads the spike train of event 'qif_op/spike', which exists "
                   "only during a step (H/dt), not between steps where records are taken",
          "record the event itself (record=['qif_op/spike'] gives its spike counts per row) or a state the spikes "
          "drive")
def run_record_reads_spike_train(mod, np, compile_model):
    qif = compile_model("neuron_model_templates.spiking_neurons.qif.qif",
                        coupling=dict(source_var="qif_op/spike", target_var="qif_op/s_in"))
    qif.run(qif.initial_state(4), {"weights": np.zeros((4, 4))}, {}, dt=1e-3, steps=10, record=["qif_op/s_in"])


@api_case("MC203", "state 'li_op/v' became inf at unit 1 in step 2 (t = 2997)",
          "reduce dt, or check the parameters, the weights and the inputs")
def run_blows_up(mod, np, compile_model):
    y0 = {"li_op/v": np.array([0.0, 1e300, 0.0, 0.0])}  # grows 1000-fold per step: inf in step 2
    with np.errstate(over="ignore"):  # NumPy's own overflow warning; modelc's error follows
        mod.run(y0, {"weights": np.zeros((4, 4)), "li_op/tau": -1.0}, {}, dt=999.0, steps=10)


# --- the command line -------------------------------------------------------------------

cli("cli_check_reports_all", "MC102", "check {model}", "unknown function 'tanhh'",
    "did you mean 'tanh' or 'atanh' or 'tan'?",
    file_source="""
    a:
      base: OperatorTemplate
      equations: "x' = -x + tanhh(x)"
      variables: {x: output(0.0)}
    b:
      base: OperatorTemplate
      equations: "y' = -y + q"
      variables: {y: output(0.0)}
    """, line=3, column=25)
cli("utf16_file", "MC114", "check {model}", "model file is not UTF-8 text (byte 0xff)",
    "it starts like UTF-16 text (a byte order mark); save it as UTF-8",
    file_source="m: {base: OperatorTemplate}\n".encode("utf-16"), line=1, column=1)
cli("binary_file", "MC114", "check {model}", "model file is not UTF-8 text (byte 0xc3)",
    "model files are UTF-8 text; is it a binary file?",
    file_source=b"m:\n  base: Operator\xc3(Template\n", line=2, column=17)
cli("cli_unknown_template", "MC108", f"compile {SEED}h -o {{dir}}/out.py",
    "template 'tanhh' is not in leaky_integrator.yaml", "did you mean 'tanh' or 'tanh_op'?")
cli("cli_unknown_method", "MC302", f"compile {SEED} --method rk5 -o {{dir}}/out.py",
    "unknown integration method 'rk5'", "did you mean 'rk4'?")
cli("cli_unwritable_output", "MC207", f"compile {SEED} -o {{model}}/out.py",
    "cannot write {dir}/model.yaml/out.py: {dir}/model.yaml is not a folder",
    "nothing was written; check the folder exists, is writable and has space",
    file_source="m: {base: OperatorTemplate, equations: \"x' = -x\", variables: {x: output(0.0)}}\n")


file("replace_not_in_parent", "MC115", """
    p:
      base: OperatorTemplate
      equations: "v' = -v + I"
      variables: {v: output(0.0), I: input(0.0)}
    m:
      base: p
      equations:
        replace: {eta: eta - a}
      variables: {a: 1.0}
    """, "'eta' to replace is not in the equations of the parent", 8, 15,
     "the equations it would edit: v' = -v + I")
file("edge_template_two_free_inputs", "MC113", """
    o:
      base: OperatorTemplate
      equations: "x' = -x + u"
      variables: {x: output(0.0), u: input(0.0)}
    n:
      base: NodeTemplate
      operators: [o]
    diff_op:
      base: OperatorTemplate
      equations: "s = sin(a - b)"
      variables: {s: output(0.0), a: input(0.0), b: input(0.0)}
    e:
      base: EdgeTemplate
      operators: [diff_op]
    m:
      base: CircuitTemplate
      nodes: {p: n, q: n}
      edges:
        - [p/o/x, q/o/u, e, {weight: 2.0}]
    """, "edge template 'e' has 2 inputs that could read the source (diff_op/a, diff_op/b)", 19, 7,
     "say which reads it: {e/op/var: source}")
file("edge_template_unknown_variable", "MC110", """
    o:
      base: OperatorTemplate
      equations: "x' = -x + u"
      variables: {x: output(0.0), u: input(0.0)}
    n:
      base: NodeTemplate
      operators: [o]
    e:
      base: EdgeTemplate
      operators: o
    m:
      base: CircuitTemplate
      nodes: {p: n, q: n}
      edges:
        - [p/o/x, q/o/u, e, {e/o/uu: source}]
    """, "edge template 'e' has no variable 'e/o/uu'", 15, 26, "did you mean 'e/o/u' or 'e/o/x'?")


# --- white noise ------------------------------------------------------------------------------

file("noise_not_linear", "MC140", """
    m:
      base: OperatorTemplate
      equations: "v' = -v + sin(xi)"
      variables: {v: output(0.0)}
    """, "white noise 'xi' must enter the equation of 'v' linearly", 3, 29,
     "write x' = f + g*xi: xi times an expression without xi, added to the rest (not inside a function or a power)")
file("noise_in_algebraic_equation", "MC141", """
    m:
      base: OperatorTemplate
      equations: ["v' = -v + y", "y = sigma*xi"]
      variables: {v: output(0.0), y: variable(0.0), sigma: 1.0}
    """, "white noise 'xi' can only stand in a differential equation, not in the equation of 'y'", 3, 41,
     "put it into the equation of the state it drives, e.g. x' = -x/tau + sigma*xi")
cli("noise_method", "MC142", "compile {model}:m --method rk4 -o {dir}/out.py",
    "the method 'rk4' cannot integrate the white noise 'xi' of 'm/v'",
    "use method='euler' (Euler-Maruyama, Ito) or method='heun' (stochastic Heun, Stratonovich)",
    file_source="""
    m:
      base: OperatorTemplate
      equations: "v' = -v + sigma*xi"
      variables: {v: output(0.0), sigma: 1.0}
    """, line=3, column=31)

cli("sweep_file_unknown_reduce", "MC209", "sweep {model}", "unknown reduce 'maen'", "did you mean 'mean'?",
    file_source="""
    model: model_templates.neural_mass_models.qif.qif
    grid: {qif_op/eta: [-5, -4]}
    T: 1.0
    dt: 1e-3
    store: sweep.zarr
    reduce: maen
    """, line=6, column=9)
cli("sweep_file_bad_grid_value", "MC209", "sweep {model}",
    "a value of 'qif_op/eta' must be a finite number, got 'five'",
    file_source="""
    model: model_templates.neural_mass_models.qif.qif
    grid:
      qif_op/eta: [-5, five]
    T: 1.0
    dt: 1e-3
    store: sweep.zarr
    """, line=3, column=20)
cli("sweep_file_unknown_path", "MC205", "sweep {model}", "sweep parameter 'qif_op/etta' is not a variable of any node",
    file_source="""
    model: model_templates.neural_mass_models.qif.qif
    grid: {qif_op/etta: [-5, -4]}
    T: 1.0
    dt: 1e-3
    store: sweep.zarr
    """, line=2, column=8)

# --- delays ------------------------------------------------------------------------------------

file("delay_of_a_computed_variable", "MC145", """
    m:
      base: OperatorTemplate
      equations: ["x' = -past(y, 1.0)", "y = 2*x"]
      variables: {x: output(1.0), y: variable(0.0)}
    """, "the delay in the equation of 'm/x' delays m/y, which is not a state", 3, 16,
     "delay a state (a variable with a differential equation): past(x, tau) or x(t - tau); its history before t0 "
     "is its initial value")

# Codes with no case, and why (test_errors checks every other code has one).
UNCOVERED = {
    "MC000": "the base class ModelcError; every error raised has a more specific code",
    "MC204": "BackendUnavailableError from Network(device='cuda'): its message depends on the machine "
             "(CuPy installed or not, a GPU or not)",
    "MC206": "CacheError: reserved for cache failures that cannot fall back to a temporary folder",
    "MC208": "NetworkBusyError: raised only while another thread's call on the same Network is in progress "
             "(tests/test_network.py runs two threads)",
    "MC210": "SweepStoreError: needs a Zarr store (the distributed extra); tests/test_distributed.py resumes a "
             "store and refuses it to another sweep",
    "MC211": "ExtraUnavailableError: raised only where Dask, xarray or zarr is missing; tests/test_distributed.py "
             "hides xarray to check it",
}
