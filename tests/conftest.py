"""Fixtures shared by the test modules under tests/ (the nbval hook is in the root conftest.py)."""

import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """One torch thread (deterministic sums, no oversubscription), restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
