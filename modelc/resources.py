"""Where the shipped folders `templates/` and `models/` are, in a checkout and in a wheel.

In the repository they sit next to the package; an installed wheel carries them as the
packages `modelc.templates` and `modelc.models` (see pyproject.toml).
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

_CHECKOUT_ROOT = Path(__file__).resolve().parent.parent


def resource_dir(name: str) -> Path:
    """The folder `templates` or `models`, wherever modelc was installed from."""
    spec = importlib.util.find_spec(f"modelc.{name}")
    if spec is not None and spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return _CHECKOUT_ROOT / name
