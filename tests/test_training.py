"""Losses and optimisers (modelc/training/): values against their definitions, gradients against
finite differences, optimiser steps against hand-computed updates of the documented rules."""
from __future__ import annotations

import numpy as np
import pytest

from modelc.errors import InvalidValueError, UnsupportedFeatureError
from modelc.training import LOSSES, get_loss, get_optimizer

RNG = np.random.default_rng(0)
Y = RNG.standard_normal((5, 3, 4))
TARGETS = {
    "mse": RNG.standard_normal((5, 3, 4)),
    "l1": RNG.standard_normal((5, 3, 4)),
    "nll": RNG.integers(0, 4, (5, 3)),
    "ce": RNG.integers(0, 4, (5, 3)),
    "kld": RNG.dirichlet(np.ones(4), (5, 3)),
}


@pytest.mark.parametrize("name", LOSSES)
def test_loss_gradients_against_finite_differences(name):
    loss = get_loss(name)
    y = np.log(RNG.dirichlet(np.ones(4), (5, 3))) if name in ("nll", "kld") else Y
    _, grad = loss(y, TARGETS[name])
    h = 1e-6
    for index in [(0, 0, 0), (2, 1, 3), (4, 2, 1)]:
        up, down = y.copy(), y.copy()
        up[index] += h
        down[index] -= h
        numeric = (loss(up, TARGETS[name])[0] - loss(down, TARGETS[name])[0]) / (2 * h)
        assert grad[index] == pytest.approx(numeric, abs=1e-8), index


def test_loss_values_by_their_definitions():
    target = TARGETS["mse"]
    assert get_loss("mse")(Y, target)[0] == pytest.approx(((Y - target) ** 2).sum() / Y.size)
    assert get_loss("l1")(Y, target)[0] == pytest.approx(np.abs(Y - target).sum() / Y.size)
    classes = TARGETS["ce"]
    softmax = np.exp(Y) / np.exp(Y).sum(axis=-1, keepdims=True)
    picked = np.take_along_axis(softmax, classes[..., None], axis=-1)
    assert get_loss("ce")(Y, classes)[0] == pytest.approx(-np.log(picked).mean())
    onehot = np.eye(4)[classes]
    assert get_loss("ce")(Y, onehot)[0] == pytest.approx(get_loss("ce")(Y, classes)[0])
    p = TARGETS["kld"]
    assert get_loss("kld")(np.log(softmax), p)[0] == pytest.approx((p * (np.log(p) - np.log(softmax))).mean())


def test_bad_targets_and_names_are_clear_errors():
    with pytest.raises(InvalidValueError, match="class indices"):
        get_loss("ce")(Y, np.full((5, 3), 7))
    with pytest.raises(UnsupportedFeatureError, match="did you mean 'mse'"):
        get_loss("mes")
    with pytest.raises(UnsupportedFeatureError, match="unknown optimizer"):
        get_optimizer("adamm", 1e-3)
    with pytest.raises(InvalidValueError, match="momentun"):
        get_optimizer("sgd", 1e-3, momentun=0.9)


def _steps(name, gradients, **kwargs):
    """The parameter after each update, from p = 1.0, for the given gradient sequence."""
    optimizer = get_optimizer(name, kwargs.pop("lr", 0.1), **kwargs)
    params, trace = {"p": np.array([1.0])}, []
    for g in gradients:
        optimizer.step(params, {"p": np.array([g])})
        trace.append(float(params["p"][0]))
    return trace


def test_sgd_with_momentum_and_nesterov():
    assert _steps("sgd", [1.0, 1.0]) == pytest.approx([0.9, 0.8])
    # buf = 1, then 0.9 * 1 + 1 = 1.9
    assert _steps("sgd", [1.0, 1.0], momentum=0.9) == pytest.approx([0.9, 0.9 - 0.19])
    # nesterov: g + 0.9 * buf = 1.9, then 1 + 0.9 * 1.9 = 2.71
    assert _steps("sgd", [1.0, 1.0], momentum=0.9, nesterov=True) == pytest.approx([1 - 0.19, 1 - 0.19 - 0.271])
    assert _steps("sgd", [0.0], weight_decay=0.5) == pytest.approx([0.95])


def test_adam_and_adamw():
    # step 1: m_hat = g, v_hat = g^2, so the step is lr * g / (|g| + eps)
    assert _steps("adam", [2.0]) == pytest.approx([0.9], rel=1e-7)
    # step 2 with g = 2, then 1: m = 0.1*2*0.9 + 0.1*1 = 0.28, v = 0.001*4*0.999 + 0.001*1 = 0.004996
    m_hat, v_hat = 0.28 / (1 - 0.81), 0.004996 / (1 - 0.999 ** 2)
    assert _steps("adam", [2.0, 1.0])[1] == pytest.approx(0.9 - 0.1 * m_hat / (np.sqrt(v_hat) + 1e-8))
    # AdamW: the decay acts on the parameter: 1 - 0.1 * 0.01 * 1 - 0.1 * 2/2
    assert _steps("adamw", [2.0]) == pytest.approx([1 - 0.001 - 0.1], rel=1e-7)


def test_rmsprop_adagrad_rprop():
    assert _steps("rmsprop", [1.0], lr=0.01) == pytest.approx([1 - 0.01 / (np.sqrt(0.01) + 1e-8)])
    assert _steps("adagrad", [2.0, 2.0], lr=0.1) == pytest.approx([1 - 0.1, 1 - 0.1 - 0.1 * 2 / np.sqrt(8)])
    # rprop: lr, then 1.2 * lr while the sign holds; a change of sign halves the step and skips it
    assert _steps("rprop", [1.0, 1.0, -1.0, -1.0], lr=0.1) == pytest.approx([0.9, 0.78, 0.78, 0.78 + 0.06])
