"""Optimisers: update a dict of parameter arrays in place from a dict of gradients.

Each follows torch's update rule and defaults (RectiPy passes optimizer_kwargs to torch), so
a user's settings mean the same here. State (moments, step sizes) lives in the optimiser.
"""
from __future__ import annotations

import numpy as np

from ..errors import InvalidValueError, UnsupportedFeatureError, did_you_mean


class Optimizer:
    def __init__(self, lr: float, weight_decay: float = 0.0):
        if not lr > 0:
            raise InvalidValueError(f"the learning rate must be positive, got {lr!r}")
        self.lr, self.weight_decay = lr, weight_decay
        self.state: dict[str, dict] = {}
        self.steps = 0

    def step(self, params: dict, grads: dict) -> None:
        """One update of every parameter that has a gradient."""
        self.steps += 1
        for name, g in grads.items():
            g = g + self.weight_decay * params[name] if self.weight_decay else g
            params[name] -= self.update(self.state.setdefault(name, {}), g, params[name])

    def update(self, state: dict, g, p):
        raise NotImplementedError


class SGD(Optimizer):
    def __init__(self, lr=1e-3, momentum=0.0, dampening=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(lr, weight_decay)
        self.momentum, self.dampening, self.nesterov = momentum, dampening, nesterov

    def update(self, state, g, p):
        if self.momentum:
            state["buf"] = g.copy() if "buf" not in state else \
                self.momentum * state["buf"] + (1 - self.dampening) * g
            g = g + self.momentum * state["buf"] if self.nesterov else state["buf"]
        return self.lr * g


class Adam(Optimizer):
    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, decoupled=False):
        super().__init__(lr, 0.0 if decoupled else weight_decay)
        self.betas, self.eps, self.decay = betas, eps, weight_decay if decoupled else 0.0

    def update(self, state, g, p):
        b1, b2 = self.betas
        state["m"] = b1 * state.get("m", 0.0) + (1 - b1) * g
        state["v"] = b2 * state.get("v", 0.0) + (1 - b2) * g * g
        m_hat = state["m"] / (1 - b1 ** self.steps)
        v_hat = state["v"] / (1 - b2 ** self.steps)
        return self.lr * m_hat / (np.sqrt(v_hat) + self.eps) + self.lr * self.decay * p


class AdamW(Adam):
    """Adam with the weight decay applied to the parameters, not added to the gradient."""

    def __init__(self, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2):
        super().__init__(lr, betas, eps, weight_decay, decoupled=True)


class RMSprop(Optimizer):
    def __init__(self, lr=1e-2, alpha=0.99, eps=1e-8, weight_decay=0.0, momentum=0.0, centered=False):
        super().__init__(lr, weight_decay)
        self.alpha, self.eps, self.momentum, self.centered = alpha, eps, momentum, centered

    def update(self, state, g, p):
        state["square"] = self.alpha * state.get("square", 0.0) + (1 - self.alpha) * g * g
        average = state["square"]
        if self.centered:
            state["mean"] = self.alpha * state.get("mean", 0.0) + (1 - self.alpha) * g
            average = average - state["mean"] ** 2
        step = g / (np.sqrt(average) + self.eps)
        if self.momentum:
            state["buf"] = self.momentum * state.get("buf", 0.0) + step
            step = state["buf"]
        return self.lr * step


class Adagrad(Optimizer):
    def __init__(self, lr=1e-2, lr_decay=0.0, weight_decay=0.0, initial_accumulator_value=0.0, eps=1e-10):
        super().__init__(lr, weight_decay)
        self.lr_decay, self.initial, self.eps = lr_decay, initial_accumulator_value, eps

    def update(self, state, g, p):
        state["sum"] = state.get("sum", self.initial) + g * g
        lr = self.lr / (1 + (self.steps - 1) * self.lr_decay)
        return lr * g / (np.sqrt(state["sum"]) + self.eps)


class Rprop(Optimizer):
    """Resilient propagation: per-entry step sizes that grow while the gradient keeps its sign."""

    def __init__(self, lr=1e-2, etas=(0.5, 1.2), step_sizes=(1e-6, 50.0)):
        super().__init__(lr)
        self.etas, self.step_sizes = etas, step_sizes

    def update(self, state, g, p):
        size = state.get("size", np.full(np.shape(g), self.lr))
        sign = np.sign(g * state.get("previous", np.zeros(np.shape(g))))
        size = np.clip(np.where(sign > 0, size * self.etas[1], np.where(sign < 0, size * self.etas[0], size)),
                       *self.step_sizes)
        g = np.where(sign < 0, 0.0, g)  # after a change of sign, no step (and no sign to compare next time)
        state["size"], state["previous"] = size, g
        return np.sign(g) * size


OPTIMIZERS = {"sgd": SGD, "adam": Adam, "adamw": AdamW, "rmsprop": RMSprop, "adagrad": Adagrad, "rprop": Rprop}


def get_optimizer(name: str, lr: float, **kwargs) -> Optimizer:
    if name not in OPTIMIZERS:
        raise UnsupportedFeatureError(f"unknown optimizer '{name}'", None,
                                      did_you_mean(name, OPTIMIZERS) or f"choose one of {', '.join(OPTIMIZERS)}")
    try:
        return OPTIMIZERS[name](lr=lr, **kwargs)
    except TypeError as error:
        raise InvalidValueError(f"optimizer '{name}': {error}") from None
