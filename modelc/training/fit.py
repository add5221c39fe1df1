"""One gradient of a loss through a generated module: grad() runs the forward, hands its record
of the output to the loss, and takes the loss's gradient as that record's cotangent."""
from __future__ import annotations

from types import ModuleType

import numpy as np

from ..errors import ShapeError
from .losses import Loss


def loss_and_gradients(module: ModuleType, y0: dict, params: dict, inputs: dict, dt: float, steps: int,
                       output: str, targets, loss: Loss, sampling_steps: int = 1, t0: float = 0.0):
    """(loss value, {parameter: gradient}, run()'s result) of loss(record of output, targets).

    targets have the shape of the output's record, (steps // sampling_steps, ..., n). Segments
    are as long as about 64 MiB of kept values allow (checkpoint_steps=None): a fit of a few
    thousand steps of a network of hundreds of units is integrated once per gradient."""
    targets = np.asarray(targets)
    value = []

    def cotangents(result: dict) -> dict:
        predictions = result[output]
        expected = targets.astype(predictions.dtype, copy=False) if np.issubdtype(targets.dtype, np.floating) else targets
        if expected.shape != predictions.shape and expected.shape != predictions.shape[:-1]:
            raise ShapeError(f"targets must have the shape of the output's record {predictions.shape}, got {expected.shape}")
        loss_value, cotangent = loss(predictions, expected)
        value.append(loss_value)
        return {output: cotangent}

    gradients = module.grad(y0, params, inputs, dt, steps, cotangents, sampling_steps=sampling_steps, t0=t0,
                            checkpoint_steps=None, record=[output])
    return value[0], gradients["params"], gradients["run"]
