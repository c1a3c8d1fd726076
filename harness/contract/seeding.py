"""Deterministic random streams: every (seed, stream, index) gives its own generator.

Tasks use these so that batch ``k`` of a run is the same for every cell, on
every machine, whatever was drawn before it.
"""

from __future__ import annotations

import random

import numpy as np
import torch

TRAIN, VAL, TEST, INIT = 0, 1, 2, 3


def derived_seed(seed: int, *keys: int) -> int:
    """A 63-bit seed mixed from ``seed`` and ``keys``."""
    state = np.random.SeedSequence([seed, *keys]).generate_state(2, dtype=np.uint32)
    return (int(state[0]) << 31) ^ int(state[1])


def generator(seed: int, *keys: int) -> torch.Generator:
    """A CPU ``torch.Generator`` for the stream ``(seed, *keys)``."""
    return torch.Generator().manual_seed(derived_seed(seed, *keys))


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch's global generators (model initialisation)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
