"""Network: a graph of populations and edges, compiled into one generated module.

    network.py    Network, the front: building, values, compiling, run and sweep
    graph.py      nodes and edges by label; the input and output nodes; couplings for the compiler
    nodes.py      checked nodes and edges from the add_* arguments; the function nodes' activations
    variables.py  "node/op/var" names and the values set on nodes; sweep targets; get_var's values
    states.py     the current state of every population and the steps run since reset()
    arguments.py  one run's steps, inputs and records, and the Observer of its result
    sweep.py      a sweep's parameter sets as one batch
    device.py     device -> backend, the dtype, device arrays back to the host
    progress.py   the progress bar of run(verbose=True)
"""
from ..observer import Observer
from .network import Network
from .nodes import ACTIVATIONS

__all__ = ["Network", "Observer", "ACTIVATIONS"]
