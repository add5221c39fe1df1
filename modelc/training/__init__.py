"""Training on a generated module's contract (run() and grad()): losses, optimisers, fit loops.

Works on arrays and module functions only, never on a Network: runtime/network calls in here,
and nothing here imports the runtime.
"""
from .losses import LOSSES, get_loss
from .fit import loss_and_gradients
from .optimizers import OPTIMIZERS, get_optimizer

__all__ = ["LOSSES", "OPTIMIZERS", "get_loss", "get_optimizer", "loss_and_gradients"]
