"""One gradient of a loss through a generated module: run() for the predictions, the loss's
gradient as the cotangent of the recorded output, grad() for the rest."""
from __future__ import annotations

from types import ModuleType

import numpy as np

from ..errors import ShapeError
from .losses import Loss

CHECKPOINT_STEPS = 256  # steps between the states kept for the backward pass (memory ~ T/256 states)


def loss_and_gradients(module: ModuleType, y0: dict, params: dict, inputs: dict, dt: float, steps: int,
                       output: str, targets, loss: Loss, sampling_steps: int = 1, t0: float = 0.0):
    """(loss value, {parameter: gradient}, run()'s result) of loss(record of output, targets).

    targets have the shape of the output's record, (steps // sampling_steps, ..., n)."""
    checkpoints = []  # the states grad() starts its segments from: the forward is run once
    result = module.run(y0, params, inputs, dt, steps, record=[output], sampling_steps=sampling_steps, t0=t0,
                        chunk_steps=CHECKPOINT_STEPS, on_chunk=lambda stop, states: checkpoints.append(
                            (stop, {name: value.copy() for name, value in states.items()})))
    predictions = result[output]
    targets = np.asarray(targets)
    if np.issubdtype(targets.dtype, np.floating):
        targets = targets.astype(predictions.dtype, copy=False)
    if targets.shape != predictions.shape and targets.shape != predictions.shape[:-1]:
        raise ShapeError(f"targets must have the shape of the output's record {predictions.shape}, got {targets.shape}")
    value, cotangent = loss(predictions, targets)
    gradients = module.grad(y0, params, inputs, dt, steps, {output: cotangent}, sampling_steps=sampling_steps, t0=t0,
                            checkpoint_steps=CHECKPOINT_STEPS, checkpoints=checkpoints)
    return value, gradients["params"], result
