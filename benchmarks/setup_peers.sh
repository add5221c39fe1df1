#!/usr/bin/env bash
# Optional environment for the peer contenders of `python -m benchmarks`.
#
#   bash benchmarks/setup_peers.sh [VENV]        (default VENV: /tmp/modelc-bench-venv)
#   VENV/bin/python -m benchmarks --quick        (then every contender runs in one process)
#
# Installs: torch 2.13.0 (the CPU build; on these machines pip takes it from local disk --
# it must come first, otherwise rectipy pulls a multi-GB CUDA build), rectipy 0.12.2,
# pyrates 1.2.3, brian2, scipy, matplotlib, threadpoolctl, and modelc itself (editable).
# The peers are never needed by modelc or its tests.
set -euo pipefail

VENV="${1:-/tmp/modelc-bench-venv}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PY="${PYTHON:-python3}"

if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check)

echo "== torch (CPU build) =="
"${PIP[@]}" "torch==2.13.0"
echo "== peers =="
"${PIP[@]}" "torch==2.13.0" "rectipy==0.12.2" "pyrates==1.2.3"
# brian2 2.9.0 (the newest on PyPI for Python 3.11) uses numpy.ndarray.ptp, gone in numpy 2.4:
# the whole venv (every contender in it) therefore runs numpy < 2.4.
"${PIP[@]}" "torch==2.13.0" brian2 "numpy<2.4" scipy matplotlib threadpoolctl
echo "== modelc (editable) =="
if ! "${PIP[@]}" -e "$REPO" "numpy<2.4"; then
    echo "warning: 'pip install -e $REPO' failed; falling back to a .pth file pointing at the checkout" >&2
    SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
    echo "$REPO" > "$SITE/modelc-checkout.pth"
    "${PIP[@]}" sympy lark jinja2 "numpy<2.4" pyyaml
fi

echo "== check =="
"$VENV/bin/python" - <<'PY'
import importlib
for name in ("numpy", "torch", "rectipy", "pyrates", "brian2", "modelc"):
    try:
        m = importlib.import_module(name)
        print(f"{name:8s} {getattr(m, '__version__', '?')}")
    except Exception as exc:  # report, do not fail: the suite reports missing peers itself
        print(f"{name:8s} MISSING ({type(exc).__name__}: {exc})")
PY
echo "done: run  $VENV/bin/python -m benchmarks  from $REPO"
