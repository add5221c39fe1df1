"""The modelc command: each subcommand, and errors printed without a traceback (exit 2)."""
import os
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
