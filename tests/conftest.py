"""Shared fixtures of the unit tests."""

import pytest
import torch


@pytest.fixture
def one_torch_thread():
    """Run a test with one torch thread: tiny tensors gain nothing from more, and on a
    shared 2-core machine OpenMP contention makes them many times slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
