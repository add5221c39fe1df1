"""Small, hostile model files (issue 18, "Raw errors and exhaustion from small inputs", the
front end): each must end in a clear ModelcError — a code other than MC000, a location where
one is possible, a message of bounded length — or in a working model, and quickly.

`modelc check` promises to find everything `compile` would refuse, so every case that check
accepts is also compiled and run a few steps. The cases that hung, exhausted memory or
recursed without bound run in a subprocess with a time limit and a memory limit
(`resource.setrlimit`), so a regression fails the test instead of hanging the suite.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

import modelc
from modelc.cli import main
from modelc.errors import ModelcError

try:
    import resource
except ImportError:  # not on POSIX: the subprocesses run without a memory limit
    resource = None

# The subprocesses import the same modelc as this test, installed or not, and use one BLAS
# thread (a BLAS library reserves memory per thread, which a memory limit would count).
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(modelc.__file__).parent.parent),
                                                    os.environ.get("PYTHONPATH", "")]),
       "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
ENV.pop("MODELC_DEBUG", None)
ENV.pop("MODELC_PATH", None)

TIME_LIMIT = 10.0  # seconds for one subprocess: start-up and imports take about one
MEMORY_LIMIT = 1536 * 2**20  # bytes of address space for one subprocess
MESSAGE_LIMIT = 10_000  # characters of error output for one bad value
FAST = 5.0  # seconds for an in-process check and compile of a small file


def _limit_memory():
    if resource is not None:
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_python(args: list[str], timeout: float = TIME_LIMIT, env: dict | None = None, cwd=None):
    """`python ARGS` with a time and a memory limit; a timeout is a test failure, not a hang."""
    start = time.monotonic()
    try:
        done = subprocess.run([sys.executable, *args], capture_output=True, text=True, timeout=timeout,
                              env=env or ENV, cwd=cwd, preexec_fn=_limit_memory if resource else None)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`{' '.join(args)[:200]}` did not finish within {timeout} s")
    done.elapsed = time.monotonic() - start
    return done


# Run in the subprocess: `modelc check FILE`, then (given a template) compile_model and two
# steps of run; prints one JSON line. Any exception but a ModelcError escapes as a traceback.
PROBE = r"""
import contextlib, io, json, sys, warnings
from modelc.cli import main
path, template = sys.argv[1], sys.argv[2]
out, err = io.StringIO(), io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
    check_rc = main(["check", path])
report = {"check_rc": check_rc, "check_out": out.getvalue()[-2000:], "check_err": err.getvalue()[:200000]}
if template:
    import numpy as np
    import modelc
    from modelc.errors import ModelcError
    try:
        module = modelc.compile_model(f"{path}:{template}")
        with warnings.catch_warnings(), np.errstate(all="ignore"):
            warnings.simplefilter("ignore")
            module.run(module.initial_state(1), steps=2, on_nan="ignore")
        report["compile"] = "ok"
    except ModelcError as error:
        group = getattr(error, "errors", None) or [error]
        report["compile"] = {"type": type(error).__name__, "codes": [error.code] + [e.code for e in group],
                             "lines": [e.location.line for e in group if e.location is not None],
                             "length": len(error.format())}
print(json.dumps(report))
"""


def probe(path: Path, template: str = "", timeout: float = TIME_LIMIT) -> dict:
    """check (and compile and run) a file in a limited subprocess; the JSON report."""
    done = run_python(["-c", PROBE, str(path), template], timeout=timeout)
    assert done.returncode == 0 and done.stdout.strip(), \
        f"the probe failed (exit {done.returncode}):\n{done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def assert_check_error(rc: int, stderr: str, path: Path, line: int | None, bounded: bool = True) -> None:
    """check refused the file with a ModelcError (not MC000, not an internal error), located at
    `line` of the file when a line is given, and (when `bounded`: one bad value) with a message
    no longer than MESSAGE_LIMIT plus the source line it shows (and its carets)."""
    assert "internal error" not in stderr and "Traceback" not in stderr, stderr[:3000]
    assert rc == 2, f"check should refuse {path.name} (exit 2), exit {rc}:\n{stderr[:3000]}"
    assert "[MC" in stderr and "[MC000]" not in stderr, stderr[:3000]
    if line is not None:
        assert f"{path.name}:{line}:" in stderr, f"the error should point at line {line}:\n{stderr[:3000]}"
    if not bounded:
        return
    try:
        longest = max(map(len, path.read_text(encoding="utf-8", errors="replace").splitlines()), default=0)
    except OSError:  # not a regular file
        longest = 0
    assert len(stderr) < MESSAGE_LIMIT + 2 * longest, f"{len(stderr)} characters of errors: {stderr[:500]}..."


def check_in_process(path: Path, capsys) -> tuple[int, str]:
    capsys.readouterr()
    rc = main(["check", str(path)])
    return rc, capsys.readouterr().err


def lines_of(error: ModelcError) -> set[int]:
    group = getattr(error, "errors", None) or [error]
    return {e.location.line for e in group if e.location is not None}


def compile_and_run(path: Path, template: str):
    module = modelc.compile_model(f"{path}:{template}", method="rk4")
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore")
        for n in (1, 3):
            module.run(module.initial_state(n), steps=3, on_nan="ignore")
    return module


def operator_file(folder: Path, name: str, equation: str, **variables: str) -> Path:
    """An operator `o` whose equation is on line 3; x (line 5) and then `variables`, one a line."""
    lines = ["o:", "  base: OperatorTemplate", f'  equations: "{equation}"', "  variables:",
             "    x: output(0.0)"] + [f"    {key}: {value}" for key, value in variables.items()]
    path = folder / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- constant overflow: check finds it, located, and compile refuses it the same way ---------

OVERFLOWING_CONSTANTS = ["2.0^2000", "10^400", "pi^(10^9)", "sqrt(2)^1000000", "1e308*10", "2^1023*2.0"]


@pytest.mark.parametrize("constant", OVERFLOWING_CONSTANTS)
def test_a_constant_beyond_float_range_is_a_located_error_in_check_and_compile(constant, tmp_path, capsys):
    """`x' = -x + 2.0^2000` passed check and put a bare `inf` into the module (NameError at run);
    10^400 and pi^(10^9) raised OverflowError, sqrt(2)^1000000 a ValueError (int digits)."""
    path = operator_file(tmp_path, "overflow", f"x' = -x + {constant}")
    start = time.monotonic()
    rc, err = check_in_process(path, capsys)
    assert_check_error(rc, err, path, line=3)
    with pytest.raises(ModelcError) as caught:
        compile_and_run(path, "o")
    assert caught.value.code != "MC000"
    assert 3 in lines_of(caught.value), caught.value.format()
    assert time.monotonic() - start < FAST


BIG = "9" * 5000  # beyond Python's 4300 digits for int(str)

# file texts whose last line holds a YAML number that no float can hold
HUGE_YAML_NUMBERS = {
    "parameter of 5000 digits": "o:\n  base: OperatorTemplate\n  equations: \"x' = -x/tau\"\n  variables:\n"
                                f"    x: output(0.0)\n    tau: {BIG}\n",
    "parameter of 400 digits": "o:\n  base: OperatorTemplate\n  equations: \"x' = -x/tau\"\n  variables:\n"
                               f"    x: output(0.0)\n    tau: {'9' * 400}\n",
    "default: of 5000 digits": "o:\n  base: OperatorTemplate\n  equations: \"x' = -x/tau\"\n  variables:\n"
                               f"    x: output(0.0)\n    tau: {{default: {BIG}, unit: ms}}\n",
    "hexadecimal parameter": "o:\n  base: OperatorTemplate\n  equations: \"x' = -x/tau\"\n  variables:\n"
                             f"    x: output(0.0)\n    tau: 0x{'f' * 300}\n",
    "sexagesimal parameter": "o:\n  base: OperatorTemplate\n  equations: \"x' = -x/tau\"\n  variables:\n"
                             f"    x: output(0.0)\n    tau: 1{':59' * 300}\n",
    "edge weight of 5000 digits": "o:\n  base: OperatorTemplate\n  equations: \"x' = -x + u\"\n  variables:\n"
                                  "    x: output(0.0)\n    u: input(0.0)\nn:\n  base: NodeTemplate\n  operators: [o]\n"
                                  "c:\n  base: CircuitTemplate\n  nodes: {a: n, b: n}\n  edges:\n"
                                  f"    - [a/o/x, b/o/u, null, {{weight: {BIG}}}]\n",
    "override of 5000 digits": "o:\n  base: OperatorTemplate\n  equations: \"x' = -x/tau\"\n  variables:\n"
                               f"    x: output(0.0)\n    tau: 1.0\nn:\n  base: NodeTemplate\n  operators:\n"
                               f"    o: {{tau: {BIG}}}\n",
}


@pytest.mark.parametrize("case", list(HUGE_YAML_NUMBERS))
def test_a_yaml_number_beyond_float_range_is_a_located_error(case, tmp_path, capsys):
    """YAML integers over 4300 digits raised an internal ValueError while the file was read;
    integers beyond float range (decimal, hexadecimal, base 60) an OverflowError."""
    text = HUGE_YAML_NUMBERS[case]
    line = len(text.splitlines())  # the number's
    path = tmp_path / "huge.yaml"
    path.write_text(text, encoding="utf-8")
    start = time.monotonic()
    rc, err = check_in_process(path, capsys)
    assert_check_error(rc, err, path, line=line)
    assert time.monotonic() - start < FAST


# --- deep nesting: check and compile agree, and neither recurses without bound ---------------

@pytest.mark.parametrize("depth", [150, 180, 210])
@pytest.mark.parametrize("opening", ["x*(1+", "sin("])
def test_deeply_nested_equations_are_refused_by_check_or_compile_and_run(opening, depth, tmp_path, capsys):
    """150-210 levels of `x*(1+` or `sin(` passed check, then compile raised RecursionError.
    Either check refuses them (located at the equation) or the module compiles and runs."""
    path = operator_file(tmp_path, "nested", "x' = " + opening * depth + "x" + ")" * depth)
    start = time.monotonic()
    rc, err = check_in_process(path, capsys)
    if rc == 0:
        compile_and_run(path, "o")  # check accepted it: anything raised here is a bug
    else:
        assert_check_error(rc, err, path, line=3)
        with pytest.raises(ModelcError) as caught:
            compile_and_run(path, "o")
        assert caught.value.code != "MC000" and 3 in lines_of(caught.value), caught.value.format()
    assert time.monotonic() - start < 2 * FAST


# --- bounded work --------------------------------------------------------------------------

def test_folding_a_huge_power_takes_bounded_time_and_memory(tmp_path):
    """`sqrt(3)^(10^8)` made check spend 29 s and 2 GB folding the constant: check and compile
    finish in seconds, with a located error or a result."""
    path = operator_file(tmp_path, "power", "x' = -x + sqrt(3)^(10^8)")
    report = probe(path, "o")
    if report["check_rc"] != 0:
        assert_check_error(report["check_rc"], report["check_err"], path, line=3)
        assert report["compile"] != "ok", "check refused what compile accepts"
    if report["compile"] != "ok":
        assert "MC000" not in report["compile"]["codes"] and 3 in report["compile"]["lines"], report["compile"]


def _bomb(levels: int = 9, width: int = 10) -> str:
    """A YAML flow list of nested anchors whose last item expands to width**levels strings."""
    items = ["&l0 [" + ", ".join(["lol"] * width) + "]"]
    items += [f"&l{i} [" + ", ".join([f"*l{i - 1}"] * width) + "]" for i in range(1, levels)]
    return "[" + ", ".join(items) + "]"


BOMBS = {  # file texts whose last line holds the bomb
    "variable value": "o:\n  base: OperatorTemplate\n  equations: \"x' = -x + k\"\n  variables:\n"
                      f"    x: output(0.0)\n    k: {_bomb()}\n",
    "edge weight": "o:\n  base: OperatorTemplate\n  equations: \"x' = -x + u\"\n  variables:\n"
                   "    x: output(0.0)\n    u: input(0.0)\nn:\n  base: NodeTemplate\n  operators: [o]\n"
                   "c:\n  base: CircuitTemplate\n  nodes: {a: n, b: n}\n  edges:\n"
                   f"    - [a/o/x, b/o/u, null, {{weight: {_bomb()}}}]\n",
    "replace: value": "o:\n  base: OperatorTemplate\n  equations: \"x' = -x + u\"\n  variables:\n"
                      "    x: output(0.0)\n    u: input(0.0)\no2:\n  base: o\n  equations:\n    replace:\n"
                      f"      u: {_bomb()}\n",
}


@pytest.mark.parametrize("where", list(BOMBS))
def test_billion_laughs_yaml_gives_a_short_error_quickly(where, tmp_path):
    """A value built from nested YAML anchors (10^9 strings) went into the message as
    repr(value): 30 s, 2.2 GB, then MemoryError. The message shows a bounded excerpt."""
    text = BOMBS[where]
    line = len(text.splitlines())  # the bomb's
    path = tmp_path / "bomb.yaml"
    path.write_text(text, encoding="utf-8")
    done = run_python(["-m", "modelc.cli", "check", str(path)])
    assert_check_error(done.returncode, done.stderr, path, line=line)


# --- files that are not regular files ------------------------------------------------------

def _base_file(folder: Path, target: str) -> Path:
    path = folder / "child.yaml"
    path.write_text(f"o:\n  base: {target}:o\n", encoding="utf-8")
    return path


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_a_base_that_is_a_fifo_is_an_error_not_a_hang(tmp_path):
    """`base: pipe.yaml:o` with pipe.yaml a FIFO blocked forever on open()."""
    os.mkfifo(tmp_path / "pipe.yaml")
    path = _base_file(tmp_path, "pipe.yaml")
    report = probe(path, "o")
    assert_check_error(report["check_rc"], report["check_err"], path, line=2)
    assert report["compile"] != "ok" and "MC000" not in report["compile"]["codes"]


@pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")
def test_a_base_that_is_dev_zero_is_an_error_not_memory_exhaustion(tmp_path):
    """`base: zero.yaml:o` with zero.yaml a link to /dev/zero read until memory ran out."""
    (tmp_path / "zero.yaml").symlink_to("/dev/zero")
    path = _base_file(tmp_path, "zero.yaml")
    report = probe(path, "o")
    assert_check_error(report["check_rc"], report["check_err"], path, line=2)
    assert report["compile"] != "ok" and "MC000" not in report["compile"]["codes"]


def test_a_base_that_is_a_huge_file_is_an_error_not_memory_exhaustion(tmp_path):
    """A regular file far larger than any model (sparse: no disk used) is refused, not read whole."""
    huge = tmp_path / "huge.yaml"
    with open(huge, "wb") as handle:
        handle.truncate(2 * 2**30)  # more than the memory limit of the subprocess
    path = _base_file(tmp_path, "huge.yaml")
    report = probe(path, "o")
    assert_check_error(report["check_rc"], report["check_err"], path, line=2)


GOOD = "good:\n  base: OperatorTemplate\n  equations: \"x' = -x\"\n  variables:\n    x: output(0.0)\n"


def _list_with(folder: Path):
    (folder / "fine.yaml").write_text(GOOD, encoding="utf-8")
    done = run_python(["-m", "modelc.cli", "list"], env={**ENV, "MODELC_PATH": str(folder)})
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr, done.stderr[-3000:]
    assert done.returncode in (0, 2), done.stderr[-3000:]
    listed = [line.split()[0] for line in done.stdout.splitlines() if line.strip()]
    assert "fine.good" in listed, "the good file next to the bad one is listed"
    assert "neuron_model_templates.rate_neurons.leaky_integrator.tanh" in listed, "the shipped models are listed"
    assert len(done.stderr) < MESSAGE_LIMIT
    return done


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs named pipes")
def test_list_with_a_fifo_in_modelc_path_finishes(tmp_path):
    """A FIFO named like a model file in a MODELC_PATH folder hung `modelc list`."""
    os.mkfifo(tmp_path / "pipe.yaml")
    _list_with(tmp_path)


def test_list_with_a_non_utf8_file_in_modelc_path_lists_the_rest(tmp_path):
    """A model file that is not UTF-8 in a MODELC_PATH folder aborted `modelc list` (MC110)."""
    (tmp_path / "latin1.yaml").write_bytes(b"o:\n  base: OperatorTemplate\n  description: \"caf\xe9\"\n")
    _list_with(tmp_path)


# --- inheritance depth ---------------------------------------------------------------------

@pytest.mark.parametrize("order", ["deepest first", "base first"])
def test_a_chain_of_1500_inherited_templates_is_built_or_refused_cleanly(order, tmp_path):
    """t1 inherits t0, ..., t1499 inherits t1498: check raised RecursionError (deepest first)
    and compile a ModelcError with code MC000, which docs/errors.md says is never raised."""
    bodies = ["t0:\n  base: OperatorTemplate\n  equations: \"x' = -x\"\n  variables:\n    x: output(0.0)\n"]
    bodies += [f"t{i}:\n  base: t{i - 1}\n" for i in range(1, 1500)]
    path = tmp_path / "chain.yaml"
    path.write_text("".join(reversed(bodies) if order == "deepest first" else bodies), encoding="utf-8")
    report = probe(path, "t1499", timeout=30)  # 1500 templates are real work: this bounds only a hang
    if report["check_rc"] != 0:
        # one error for each template too deep is fine: the output grows with the file, no faster
        assert_check_error(report["check_rc"], report["check_err"], path, line=None, bounded=False)
        assert report["compile"] != "ok", "check refused what compile accepts"
    if report["compile"] != "ok":
        assert "MC000" not in report["compile"]["codes"], report["compile"]


# --- files that are not UTF-8 text ---------------------------------------------------------

def test_a_binary_model_file_is_an_error_that_says_where(tmp_path, capsys):
    """A byte that is not UTF-8 gave MC110 without a location: the error names the file and the
    line of the first bad byte."""
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"o:\n  base: OperatorTemplate\n  description: \"\x00\xff\xfe\x80\x01\"\n")
    rc, err = check_in_process(path, capsys)
    assert_check_error(rc, err, path, line=3)
    with pytest.raises(ModelcError) as caught:
        modelc.compile_model(f"{path}:o")
    assert caught.value.code != "MC000" and lines_of(caught.value) == {3}, caught.value.format()


def test_a_utf16_model_file_is_read_or_an_error_that_says_where(tmp_path, capsys):
    """A UTF-16 file (with its byte order mark) gave MC110 without a location: it is either read
    as the text it is, or refused with an error at line 1."""
    path = tmp_path / "utf16.yaml"
    path.write_bytes(GOOD.encode("utf-16"))
    rc, err = check_in_process(path, capsys)
    if rc == 0:
        compile_and_run(path, "good")
    else:
        assert_check_error(rc, err, path, line=1)


def test_a_base_that_is_binary_is_an_error_at_the_base(tmp_path, capsys):
    """The same through `base:`: the error points at the bad file's line, or at the `base:` line."""
    (tmp_path / "binary.yaml").write_bytes(b"o:\n  base: OperatorTemplate\n  description: \"\xff\xfe\"\n")
    path = _base_file(tmp_path, "binary.yaml")
    rc, err = check_in_process(path, capsys)
    assert_check_error(rc, err, path, line=None)
    assert f"{path.name}:2:" in err or "binary.yaml:3:" in err, err
