"""Network: a graph of populations and edges, compiled into one generated module.

    network.py    Network, the front: building, values, compiling, run, sweep and fitting
    busy.py       one call at a time changes a Network (NetworkBusyError otherwise)
    graph.py      nodes and edges by label; the input and output nodes; couplings for the compiler
    nodes.py      checked nodes and edges from the add_* arguments; the function nodes' activations
    variables.py  "node/op/var" names and the values set on nodes; sweep targets; get_var's values
    states.py     the current state of every population and the steps run since reset()
    arguments.py  one run's steps, inputs and records, and the Observer of its result
    sweep.py      a sweep's parameter sets as one batch
    device.py     device -> backend, the dtype, device arrays back to the host
    fitting.py    fit_bptt, test and grad: gradients of the generated backward pass
    readout.py    fit_ridge and fit_rls: readouts in closed form and by recursive least squares
    progress.py   the progress bar of run(verbose=True)
"""
from ..observer import Observer
from .network import FeedbackNetwork, Network
from .nodes import ACTIVATIONS

__all__ = ["Network", "FeedbackNetwork", "Observer", "ACTIVATIONS"]
