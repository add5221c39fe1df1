"""The modelc command: each subcommand, and errors printed without a traceback (exit 2)."""
import ast
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import modelc
from modelc.cli import main

# The subprocess imports the same modelc as this test, installed or not.
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(modelc.__file__).parent.parent),
                                                    os.environ.get("PYTHONPATH", "")])}

SEED = "neuron_model_templates.rate_neurons.leaky_integrator.tanh"


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "modelc.cli", *args], capture_output=True, text=True, cwd=cwd, env=ENV)


def test_list_shows_seed_templates_with_descriptions(capsys):
    assert main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    seed = [line for line in lines if line.split()[0] == SEED]
    assert seed and "tanh nonlinearity" in seed[0]
    assert any(line.split()[0] == "neuron_model_templates.rate_neurons.leaky_integrator.sigmoid" for line in lines)


def test_show_prints_parsed_equations_and_latex(capsys):
    assert main(["show", SEED]) == 0
    text = capsys.readouterr().out
    assert "li_op: d/dt v = I_ext + eta + k*r_in - v/tau" in text
    assert "tanh_op: r = tanh(v)" in text
    assert main(["show", SEED, "--latex"]) == 0
    assert r"\frac{d v}{dt}" in capsys.readouterr().out


def test_compile_writes_an_importable_module(tmp_path):
    target = tmp_path / "out" / "tanh_net.py"
    assert main(["compile", SEED, "--method", "rk4", "-o", str(target)]) == 0
    text = target.read_text()
    assert "scheme: rk4" in text and "import numpy as np" in text
    assert not list(target.parent.glob(".*tmp"))  # no temporary file left behind


BAD_MODEL = """\
a:
  base: OperatorTemplate
  equations: "x' = -x + tanhh(y)"
  variables: {x: output(0.0), y: 1.0}
b:
  base: OperatorTemplate
  equations: "z' = -z + q"
  variables: {z: output(0.0)}
"""


def test_check_reports_every_error_with_location_and_exit_2(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(BAD_MODEL)
    done = run_cli("check", str(path))
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert f"{path}:3:25: error: unknown function 'tanhh' [MC102]" in done.stderr
    assert f"{path}:7:25: error: undefined symbol 'q' in operator 'b' [MC103]" in done.stderr
    assert "hint: did you mean 'tanh'" in done.stderr
    assert "2 errors" in done.stderr
    caret_line = done.stderr.splitlines()[2]
    assert caret_line == " " * (4 + 24) + "^^^^^"


def test_check_accepts_a_good_file(tmp_path):
    path = tmp_path / "good.yaml"
    path.write_text(BAD_MODEL.replace("tanhh", "tanh").replace(" + q", ""))
    done = run_cli("check", str(path))
    assert done.returncode == 0, done.stderr
    assert "ok (2 templates)" in done.stdout


@pytest.mark.parametrize("args, message", [
    (["compile", "neuron_model_templates.rate_neurons.leaky_integrato.tanh", "-o", "x.py"],
     "no model file for template path"),
    (["compile", SEED, "--method", "rk5", "-o", "x.py"], "unknown integration method 'rk5'"),
    (["show", "neuron_model_templates.rate_neurons.leaky_integrator.tanhh"], "did you mean 'tanh'"),
])
def test_bad_arguments_are_clear_errors(tmp_path, args, message):
    done = run_cli(*args, cwd=tmp_path)
    assert done.returncode == 2
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "x.py").exists()


# Blocks `import cupy` (an ImportError), whether CuPy is installed or not.
NO_CUPY = "import sys\nsys.modules['cupy'] = None\n"


def run_python(code: str, cwd=None):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, env=ENV)


def test_compile_for_cupy_needs_no_cupy_and_the_module_says_what_to_install(tmp_path):
    target = tmp_path / "net_gpu.py"
    argv = ["compile", SEED, "--source-var", "tanh_op/r", "--target-var", "li_op/r_in", "--backend", "cupy",
            "-o", str(target)]
    done = run_python(NO_CUPY + f"from modelc.cli import main\nsys.exit(main({argv!r}))")
    assert done.returncode == 0, done.stderr
    assert "internal error" not in done.stderr and "wrote" in done.stdout
    text = target.read_text()
    assert "import cupy as cp" in text and 'extern "C" __global__' in text  # the module and its CUDA source
    imported = run_python(NO_CUPY + f"import runpy\nrunpy.run_path({str(target)!r})")
    assert imported.returncode == 1
    last = imported.stderr.strip().splitlines()[-1]
    assert last.startswith("ImportError: this model was compiled for the CuPy backend")
    assert "pip install modelc[cupy]" in last


@pytest.mark.parametrize("args, message", [
    (["--backend", "cuda"], "unknown backend 'cuda' [MC301]"),
    (["--dtype", "int8"], "unsupported dtype 'int8' [MC301]"),
])
def test_choices_are_checked_by_the_compiler(tmp_path, capsys, args, message):
    assert main(["compile", SEED, *args, "-o", str(tmp_path / "x.py")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x.py").exists()


def test_help_lists_the_compilers_choices(capsys):
    from modelc.codegen.options import BACKENDS, DTYPES, METHODS
    with pytest.raises(SystemExit):
        main(["compile", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for choices in (BACKENDS, DTYPES, METHODS):
        assert ", ".join(choices) in text


LATE_IMPORTS = {  # module -> what it may import inside a function, and why
    "cli.py": {"sympy", "ir", "docs",                       # only `show`, `check` and `docs` parse equations
               "runtime.compiler", "runtime.cache", "spec", "resources",  # `modelc --version` loads no YAML
               "runtime.distributed.sweep_file", "runtime.simulate"},     # nor NumPy (`sweep`)
    "runtime/compiler.py": {"codegen.generate", "ir"},      # a cache hit imports no SymPy, lark or Jinja
    "runtime/network/device.py": {"cupy", "numba"},         # optional dependencies
    "runtime/network/progress.py": {"tqdm.auto"},
    "runtime/observer.py": {"matplotlib.pyplot", "pandas"},
    "runtime/distributed/pools.py": {"dask.distributed", "dask.array", "xarray", "zarr"},  # modelc[distributed]
    "runtime/distributed/results.py": {"dask.array", "xarray", "zarr"},
    "__init__.py": {"runtime", "training"},                 # `import modelc` loads no NumPy
}


def _imports(tree):
    """(line, imported names, relative level, inside a function?) of every import statement."""
    late = {id(n) for f in ast.walk(tree) if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
            for n in ast.walk(f) if isinstance(n, (ast.Import, ast.ImportFrom))}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield node.lineno, [a.name for a in node.names], 0, id(node) in late
        elif isinstance(node, ast.ImportFrom):
            yield node.lineno, [node.module or ""], node.level, id(node) in late


def test_runtime_and_cli_never_import_the_package_front_and_import_late_only_to_stay_light():
    root = Path(modelc.__file__).parent
    for path in [root / "cli.py", root / "__init__.py", root / "version.py", *sorted((root / "runtime").rglob("*.py"))]:
        where = path.relative_to(root).as_posix()
        depth = where.count("/")  # how many `.` past the first reach the modelc package
        for line, names, level, late in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            front = names == [""] and level == depth + 1 or any(n.split(".")[0] == "modelc" for n in names)
            assert not front, f"{where}:{line} imports the modelc package front (version: modelc/version.py)"
            if late:
                assert set(names) <= LATE_IMPORTS.get(where, set()), f"{where}:{line}: late import of {names}"


# --- -o writes a regular file, nothing else -------------------------------------------------

def _fifo(tmp_path):
    os.mkfifo(tmp_path / "out.py")
    return "a FIFO"


def _folder(tmp_path):
    (tmp_path / "out.py").mkdir()
    return "a folder"


def _device(tmp_path):
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("only root can make a device node (and replace /dev/null)")
    try:
        os.mknod(tmp_path / "out.py", stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a /dev/null of our own
    except OSError as exc:
        pytest.skip(f"no device nodes here: {exc}")
    return "a device"


@pytest.mark.parametrize("make", [_fifo, _folder, _device])
def test_compile_output_is_never_written_over_a_device_fifo_or_folder(tmp_path, capsys, make):
    kind = make(tmp_path)
    target = tmp_path / "out.py"
    before = target.lstat()
    assert main(["compile", SEED, "-o", str(target)]) == 2
    assert capsys.readouterr().err.splitlines()[0] == \
        f"error: cannot write {target}: it is {kind}, not a regular file [MC207]"
    after = target.lstat()
    assert (after.st_mode, after.st_ino) == (before.st_mode, before.st_ino)
    assert [p.name for p in tmp_path.iterdir()] == ["out.py"]


def test_compile_output_is_never_written_through_a_symbolic_link(tmp_path, capsys):
    outside = tmp_path / "elsewhere" / "module.py"
    outside.parent.mkdir()
    outside.write_text("# someone else's file\n")
    link = tmp_path / "out.py"
    link.symlink_to(outside)
    assert main(["compile", SEED, "-o", str(link)]) == 2
    err = capsys.readouterr().err
    assert f"error: cannot write {link}: it is a symbolic link (to {outside}) [MC207]" in err
    assert link.is_symlink() and outside.read_text() == "# someone else's file\n"


# --- text from model files reaches the terminal as text ---------------------------------------

def test_list_shows_control_characters_as_escapes_and_survives_lone_surrogates(tmp_path, monkeypatch):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "odd.yaml").write_text(
        'red:\n  base: OperatorTemplate\n  description: "\\e[31mRED\\e]0;title\\a done"\n'
        '  equations: "x\' = -x"\n  variables: {x: output(0.0)}\n'
        'lone:\n  base: OperatorTemplate\n  description: "half \\ud800 a pair"\n'
        '  equations: "x\' = -x"\n  variables: {x: output(0.0)}\n', encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "modelc.cli", "list"], capture_output=True,
                          env={**ENV, "MODELC_PATH": str(tmp_path), "PYTHONIOENCODING": "utf-8"})
    assert done.returncode == 0, done.stderr
    lines = {line.split()[0]: line.split(None, 1)[1] for line in done.stdout.decode("utf-8").splitlines()}
    assert lines["pkg.odd.red"] == r"\x1b[31mRED\x1b]0;title\x07 done"
    assert lines["pkg.odd.lone"] == r"half \ud800 a pair"
    assert b"\x1b" not in done.stdout and not done.stderr


def test_modelc_version_loads_neither_yaml_nor_numpy():
    code = "import sys, modelc.cli; print(sorted({'yaml', 'numpy', 'sympy'} & set(sys.modules)))"
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert loaded.strip() == "[]"
