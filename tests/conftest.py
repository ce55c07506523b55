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


@pytest.fixture(params=["compiled", "numpy"])
def jit_impl(request, monkeypatch):
    """Run a test with the numba kernels of ``course_lib.ops._jit`` (the default when numba is
    installed) and again with their NumPy fallbacks."""
    from course_lib.ops import _jit

    if request.param == "numpy":
        monkeypatch.setattr(_jit, "AVAILABLE", False)
    elif not _jit.AVAILABLE:
        pytest.skip("numba is not installed")
    return str(request.param)


@pytest.fixture
def base_family(monkeypatch):
    """Run a test on ShapeNet-lite's base family (``COURSE_VARIETY=base``), whatever the default family is: for
    tests of a base shape's recorded properties (one piece, its fingerprints, its numbers) and of file and folder
    names of the base family.  The wide family's own tests name it explicitly."""
    monkeypatch.setenv("COURSE_VARIETY", "base")
