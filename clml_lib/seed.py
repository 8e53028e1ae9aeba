"""Seeding and deterministic switches shared by the library, the tests and the notebooks."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int, deterministic: bool = True) -> None:
    """Seed Python, NumPy and torch (CPU and every CUDA device).

    With ``deterministic=True`` cuDNN autotuning is switched off and torch is asked for
    deterministic kernels where they exist (``warn_only=True``: an op without a
    deterministic kernel warns instead of failing).

    Raises:
        ValueError: ``seed`` is negative or not an int.
    """
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
        torch.use_deterministic_algorithms(True, warn_only=True)
