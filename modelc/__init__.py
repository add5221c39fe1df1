"""modelc: a declarative model compiler for dynamical systems.

    from modelc import compile_model, Network, simulate

Importing modelc is cheap: NumPy, YAML, SymPy and lark load only when they are needed.
"""
from .errors import ModelcError
from .version import __version__


_RESERVOIR = (  # RectiPy's utilities, in modelc.training.reservoir
    "random_connectivity", "input_connections", "normalize", "wta_score")


def __getattr__(name):
    # Late on purpose: `import modelc` (and `modelc --version`) must not load NumPy or YAML.
    if name in ("compile_model", "compile_source"):
        from .runtime import compiler
        return getattr(compiler, name)
    if name in ("Network", "FeedbackNetwork", "Observer"):
        from .runtime import network
        return getattr(network, name)
    if name == "simulate":
        from .runtime import simulate
        return simulate.simulate
    if name in _RESERVOIR:
        from .training import reservoir
        return getattr(reservoir, name)
    raise AttributeError(f"module 'modelc' has no attribute {name!r}")


__all__ = ["compile_model", "compile_source", "simulate", "Network", "FeedbackNetwork", "Observer", "ModelcError",
           "__version__", *_RESERVOIR]
