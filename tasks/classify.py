"""Sequence classification read at the last step: the loss, accuracy and solved rule that ``seq-image`` and
``listops`` share. The head gives logits ``pred (1, B, C)``; the labels are ``y (B,)``."""

from __future__ import annotations

from typing import Mapping

import torch.nn.functional as F
from torch import Tensor

from harness import Task


class LastStepClassification(Task):
    """A task whose every sequence has one class; a subclass sets ``solved_at`` (the accuracy that solves it)."""

    solved_at: float

    def loss(self, pred: Tensor, y: Tensor) -> Tensor:
        """Mean cross-entropy of the logits ``pred (1, B, C)`` against the classes ``y (B,)``."""
        return F.cross_entropy(pred[-1], y)

    def metrics(self, pred: Tensor, y: Tensor) -> dict[str, float]:
        return {"accuracy": (pred[-1].argmax(-1) == y).float().mean().item()}

    def solved(self, test_metrics: Mapping[str, float]) -> bool:
        return test_metrics["accuracy"] >= self.solved_at
