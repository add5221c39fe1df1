"""No code execution from model files, and no name in a model can break the generated module.

- the package source calls no eval/exec/sympify/parse_expr (the one loader of generated
  modules uses importlib's exec_module), YAML is read with the safe loader only;
- model text never runs: YAML tags, equation text, descriptions (they land in a docstring);
- a dotted template path cannot leave its search root;
- names that are Python keywords, dunder names or built in are rejected; names that collide
  with the generated module's own names (np, dt, steps, rec, i, t0, _check_params, x_2, ...)
  are mangled, and the module computes exactly what the same model with plain names computes.
"""
from __future__ import annotations

import ast
import keyword
import re
import tokenize
from io import StringIO
from pathlib import Path

import numpy as np
import pytest

import modelc
from modelc import ModelcError, compile_model
from modelc.codegen.numpy.arrays import TEMPLATES
from modelc.codegen.templating import declared_names
from modelc.equations import FUNCTION_NAMES
from modelc.errors import EquationSyntaxError, InvalidNameError, UnknownTemplateError, YamlSyntaxError
from modelc.resources import resource_dir
from modelc.spec import Library

PACKAGE = Path(modelc.__file__).resolve().parent
SOURCES = sorted(PACKAGE.rglob("*.py"))
BANNED_CALLS = {"eval", "exec", "sympify", "parse_expr", "unsafe_load", "full_load", "load_all"}
IMPORTS = {"__import__", "import_module"}  # allowed with a literal "modelc..." module name only
TEXT_CALL = re.compile(r"\b(eval|exec|sympify|parse_expr)\(")
LOADER = ("runtime/cache.py", "exec_module")  # the one place that loads (executes) generated modules


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else None
            yield node, name


def test_package_source_has_no_eval_exec_sympify_or_parse_expr():
    assert len(SOURCES) > 10
    found, loaders = [], []
    for path in SOURCES:
        where = path.relative_to(PACKAGE).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node, name in _calls(tree):
            if name in BANNED_CALLS:
                found.append(f"{where}:{node.lineno}: {name}(")
            if name == "exec_module":
                loaders.append(where)
            if name in IMPORTS and not (node.args and isinstance(node.args[0], ast.Constant)
                                        and str(node.args[0].value).startswith("modelc.")):
                found.append(f"{where}:{node.lineno}: {name}( of a computed module name")
            if name == "S" and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                found.append(f"{where}:{node.lineno}: S('...') parses text")
        # a plain text scan as well (comments stripped), for anything the AST walk would miss
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#")[0]
            for match in TEXT_CALL.finditer(code):
                if not code[:match.start()].rstrip().endswith("def"):
                    found.append(f"{where}:{line_no}: {line.strip()}")
    assert not found, "code that can run text:\n" + "\n".join(found)
    assert set(loaders) <= {LOADER[0]}, f"generated modules loaded outside {LOADER[0]}: {loaders}"


def test_yaml_is_read_with_the_safe_loader_only():
    unsafe = []
    for path in SOURCES:
        where = path.relative_to(PACKAGE).as_posix()
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node, name in _calls(tree):
            func = node.func
            if not (isinstance(func, ast.Attribute) and ast.unparse(func).startswith("yaml.")):
                continue
            text = ast.unparse(node)
            safe = name.startswith("safe_") or "SafeLoader" in text or name in ("dump", "YAMLError")
            if name in ("load", "compose", "parse", "scan", "compose_all", "load_all") and "Loader=yaml.SafeLoader" \
                    not in text:
                safe = False
            if not safe:
                unsafe.append(f"{where}:{node.lineno}: {text}")
        text = path.read_text(encoding="utf-8")
        for word in ("FullLoader", "UnsafeLoader", "yaml.Loader", "unsafe_load", "full_load"):
            assert word not in text, f"{where} mentions {word}"
    assert not unsafe, "YAML read without the safe loader:\n" + "\n".join(unsafe)


# --- model text never runs -----------------------------------------------------------------

def _compile_file(tmp_path: Path, text: str, template: str = "m"):
    path = tmp_path / "model.yaml"
    path.write_text(text, encoding="utf-8")
    return compile_model(f"{path}:{template}")


@pytest.mark.parametrize("text", [
    "m: !!python/object/apply:os.system ['touch PWNED']\n",
    "m: !!python/name:os.system\n",
    "m:\n  base: !!python/object/new:os.system [touch PWNED]\n",
    "m:\n  base: OperatorTemplate\n  equations: \"x' = __import__('os').system('touch PWNED')\"\n"
    "  variables: {x: output(0.0)}\n",
    "m:\n  base: OperatorTemplate\n  equations: \"x' = (lambda: __import__('os').system('touch PWNED'))()\"\n"
    "  variables: {x: output(0.0)}\n",
    "m:\n  base: OperatorTemplate\n  equations: \"x' = x.__class__\"\n  variables: {x: output(0.0)}\n",
    "m:\n  base: OperatorTemplate\n  equations: \"x' = -x\"\n  variables:\n    x: output(0.0)\n"
    "    \"__import__('os').system('touch PWNED')\": 1.0\n",
    "m:\n  base: os.system\n",
])
def test_model_text_never_runs(tmp_path, monkeypatch, text):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelcError):
        _compile_file(tmp_path, text)
    assert not (tmp_path / "PWNED").exists()


PAYLOAD = 'end """ + __import__("os").system("touch PWNED") + """ \\N{oops} \\x \\ \x00 \u2028 end'
SIMPLE = "m:\n  base: OperatorTemplate\n  equations: \"x' = -x\"\n  variables: {x: output(1.0)}\n"


def test_a_description_cannot_escape_the_module_docstring(tmp_path, monkeypatch):
    """Free text of a model lands in the generated module's docstring, quoted safely."""
    monkeypatch.chdir(tmp_path)
    text = SIMPLE.replace("  equations", "  description: " + _yaml_quoted(PAYLOAD) + "\n  equations")
    module = _compile_file(tmp_path, text)
    assert not (tmp_path / "PWNED").exists()
    assert PAYLOAD in module.__doc__
    assert module.run({}, {}, {}, 0.1, 1)["final"]["m/x"] == pytest.approx(0.9)


def test_a_network_name_cannot_escape_the_module_docstring(tmp_path, monkeypatch):
    from modelc.runtime.compiler import compile_network
    monkeypatch.chdir(tmp_path)
    operator = Library().get(f"{_write(tmp_path, SIMPLE)}:m")
    module = compile_network({"pop": operator}, name=PAYLOAD, description=PAYLOAD)
    assert not (tmp_path / "PWNED").exists()
    assert PAYLOAD in module.__doc__
    assert module.run({}, {}, {}, 0.1, 1)["final"]["pop/m/x"] == pytest.approx(0.9)


def _write(folder: Path, text: str) -> Path:
    path = folder / "model.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _yaml_quoted(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\0", "\\0").replace("\u2028", "\\L")
    return f'"{escaped}"'


# --- template paths stay inside their search root --------------------------------------------

@pytest.fixture
def roots(tmp_path, monkeypatch):
    """A search root with one good model, and a decoy model outside it."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "pkg").mkdir(parents=True)
    outside.mkdir()
    body = "m:\n  base: OperatorTemplate\n  equations: \"x' = -x\"\n  variables: {x: output(0.0)}\n"
    (root / "pkg" / "good.yaml").write_text(body)
    (outside / "evil.yaml").write_text(body)
    (tmp_path / "evil.yaml").write_text(body)
    monkeypatch.setenv("MODELC_PATH", str(root))
    return root, outside


@pytest.mark.parametrize("reference", [
    "..outside.evil.m", "...outside.evil.m", "pkg...outside.evil.m", "pkg/../../outside/evil.m",
    "/tmp/outside.evil.m", "pkg.good.m/../../evil", ".evil.m", "evil.m.", "pkg..good.m", "pkg.good.m\x00",
    "~.outside.evil.m", "pkg.go od.m", "pkg.\u0261ood.m",
])
def test_dotted_paths_cannot_leave_the_search_root(roots, reference):
    root, outside = roots
    assert Library().get("pkg.good.m").name == "m"  # the root works
    with pytest.raises(UnknownTemplateError):
        Library().get(reference)


def test_dotted_base_inside_a_file_cannot_leave_the_search_root(roots, tmp_path):
    root, _ = roots
    (root / "pkg" / "child.yaml").write_text("c:\n  base: ..outside.evil.m\n")
    with pytest.raises(UnknownTemplateError, match="is not a template path") as info:
        Library().get("pkg.child.c")
    assert info.value.location.line == 2


# --- names -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name, error, line", [
    ("lambda", InvalidNameError, 3), ("class", InvalidNameError, 3), ("None", InvalidNameError, 3),
    ("import", InvalidNameError, 3), ("__class__", InvalidNameError, 4), ("__import__", InvalidNameError, 4),
    ("__builtins__", InvalidNameError, 4), ("t", InvalidNameError, 4), ("pi", InvalidNameError, 4),
    ("exp", EquationSyntaxError, 3), ("sum", EquationSyntaxError, 3),
])
def test_names_python_or_modelc_keep_are_rejected(tmp_path, name, error, line):
    """Keywords and dunder names (Python's), time, pi and function names (modelc's) cannot be variables."""
    text = (f"m:\n  base: OperatorTemplate\n  equations: \"x' = -x + {name}\"\n"
            f"  variables: {{x: output(0.0), \"{name}\": 1.0}}\n")
    with pytest.raises(ModelcError) as info:
        _compile_file(tmp_path, text)
    assert isinstance(info.value, error), info.value.format()
    assert info.value.location is not None and info.value.location.line == line, info.value.format()


def _generated_names() -> list[str]:
    """Every identifier of a generated module (a coupled node, RK4) and of the templates."""
    module = compile_model("neuron_model_templates.rate_neurons.leaky_integrator.tanh", method="rk4",
                           coupling=dict(source_var="tanh_op/r", target_var="li_op/r_in", input_var="li_op/I_ext"))
    single = compile_model("model_templates.oscillators.vanderpol.vdp", method="rk4")  # one-unit float loop too
    names = set()
    for generated in (module, single):
        tokens = tokenize.generate_tokens(StringIO(Path(generated.__file__).read_text()).readline)
        names |= {tok.string for tok in tokens if tok.type == tokenize.NAME}
    names |= set().union(*(declared_names(t) for t in TEMPLATES))
    names |= {"np", "numpy", "dt", "steps", "rec", "i", "t0", "params", "inputs", "y0", "record", "row", "final",
              "value", "name", "shapes", "warnings", "difflib", "math", "os", "sys", "print", "len", "range", "float",
              "int", "list", "dict", "input", "output", "variable", "eval", "exec", "open", "object", "type", "id",
              "self", "cls", "e", "x_2", "x_3", "x_4", "dx_1", "dx_2", "drive_x", "inc_x", "rec_x", "u_w", "w_u",
              "acc_0", "acc_1", "acc_0_source", "w_acc_0", "c_0", "c_1", "c_2", "t_2", "t_3", "t_w", "ModelError",
              "ShapeError", "MATRIX_POPULATIONS", "weights", "x_source", "run", "rhs", "algebraics", "STATES",
              "x_next", "s_x", "x_buf", "x_out", "math", "_run_single_unit", "_single_unit"}
    rejected = set(keyword.kwlist) | set(FUNCTION_NAMES) | {"pi", "t", "x", "u", "k"}
    return sorted(n for n in names if n not in rejected and not n.startswith("__"))


def _colliding_model(names: list[str]) -> str:
    """x' = -x/k + u + 0.001*(sum of every other name); the names cycle through the four roles."""
    roles = ["variable", "parameter", "input", "algebraic"]
    equations = ["x' = -x/k + u + 0.001*(" + " + ".join(names) + ")"]
    variables = ["x: output(0.5)", "u: input(0.0)", "k: 2.0"]
    for j, name in enumerate(names):
        role = roles[j % 4]
        if role == "variable":
            equations.append(f"{name}' = -{name} + 0.5*x")
            variables.append(f'"{name}": variable({0.01 * j})')
        elif role == "parameter":
            variables.append(f'"{name}": {1.0 + 0.01 * j}')
        elif role == "input":
            variables.append(f'"{name}": input({0.1 + 0.001 * j})')
        else:
            equations.append(f"{name} = tanh(x) + {0.001 * j}")
            variables.append(f'"{name}": variable(0.0)')
    return ("m:\n  base: OperatorTemplate\n  equations:\n" + "".join(f'    - "{e}"\n' for e in equations)
            + "  variables:\n" + "".join(f"    {v}\n" for v in variables))


@pytest.mark.parametrize("method, units, coupled", [("euler", 3, True), ("heun", 3, True), ("rk4", 3, True),
                                                   ("euler", 1, False), ("rk4", 1, False)])
def test_names_that_collide_with_generated_code_are_mangled(tmp_path, method, units, coupled):
    names = _generated_names()
    assert {"np", "dt", "steps", "rec", "i", "t0", "_check_params", "x_2", "w_acc_0"} <= set(names)
    plain = [f"q{j}" for j in range(len(names))]
    results = []
    for label, chosen in (("colliding", names), ("plain", plain)):
        folder = tmp_path / label
        folder.mkdir()
        path = _write(folder, _colliding_model(chosen))
        coupling = dict(source_var="m/x", target_var=f"m/{chosen[2]}")  # an input: x drives it through W
        module = compile_model(f"{path}:m", method=method, coupling=coupling if coupled else None)
        assert coupled or hasattr(module, "_run_single_unit"), "the one-unit float loop is not exercised"
        rename = dict(zip(names, plain)) if label == "colliding" else {}
        state = {k: np.full(units, v) for k, v in module.STATES.items()}
        record = ["m/x", f"m/{chosen[3]}"]
        params = {"weights": np.full((units, units), 0.01)} if coupled else {}
        out = module.run(state, params, {}, 0.01, 50, record=record)
        results.append({rename.get(k.split("/")[-1], k.split("/")[-1]): v for k, v in out.items() if k != "final"})
        results[-1]["final"] = {rename.get(k.split("/")[-1], k.split("/")[-1]): v for k, v in out["final"].items()}
    colliding, reference = results
    assert set(colliding) == set(reference)
    for key in ("x", plain[3]):
        np.testing.assert_allclose(colliding[key], reference[key], rtol=1e-12, atol=1e-14)
    assert set(colliding["final"]) == set(reference["final"])
    for key in reference["final"]:
        np.testing.assert_allclose(colliding["final"][key], reference["final"][key], rtol=1e-12, atol=1e-14)


def test_generated_module_imports_only_numpy_and_runs_no_text():
    module = compile_model("neuron_model_templates.rate_neurons.leaky_integrator.tanh")
    tree = ast.parse(Path(module.__file__).read_text())
    top = {alias.name for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))
           for alias in node.names}
    assert "numpy" in top and top <= {"numpy", "math"}  # math: scalar code for single units
    inner = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    assert inner <= {"numpy", "math", "warnings", "difflib"}
    assert not [name for _, name in _calls(tree) if name in BANNED_CALLS | IMPORTS | {"compile", "getattr", "open",
                                                                                         "globals", "__import__"}]


def test_templates_hold_no_eval_or_exec():
    for path in sorted(resource_dir("templates").rglob("*.j2")):
        text = path.read_text(encoding="utf-8")
        for banned in ("eval(", "exec(", "__import__", "getattr(", "compile("):
            assert banned not in text, f"{path.name} contains {banned}"
