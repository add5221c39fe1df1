"""modelc: a declarative model compiler for dynamical systems.

    from modelc import compile_model, Network

Importing modelc is cheap: SymPy and lark load only when a model must be compiled.
"""
__version__ = "0.1.0"

from .errors import ModelcError  # noqa: E402


def __getattr__(name):
    # Lazy: `import modelc` must not pull in NumPy-heavy or SymPy-heavy modules.
    if name == "compile_model":
        from .runtime.compiler import compile_model
        return compile_model
    if name in ("Network", "Observer"):
        from .runtime import network
        return getattr(network, name)
    raise AttributeError(f"module 'modelc' has no attribute {name!r}")


__all__ = ["compile_model", "Network", "Observer", "ModelcError", "__version__"]
