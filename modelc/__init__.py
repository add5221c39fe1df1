"""modelc: a declarative model compiler for dynamical systems.

    from modelc import compile_model, Network

Importing modelc is cheap: NumPy, YAML, SymPy and lark load only when they are needed.
"""
from .errors import ModelcError
from .version import __version__


def __getattr__(name):
    # Late on purpose: `import modelc` (and `modelc --version`) must not load NumPy or YAML.
    if name in ("compile_model", "compile_source"):
        from .runtime import compiler
        return getattr(compiler, name)
    if name in ("Network", "Observer"):
        from .runtime import network
        return getattr(network, name)
    raise AttributeError(f"module 'modelc' has no attribute {name!r}")


__all__ = ["compile_model", "compile_source", "Network", "Observer", "ModelcError", "__version__"]
