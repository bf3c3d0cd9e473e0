"""The float64, seeded setting of the flow tests: ``from _float64 import float64_seeded`` in a test module makes
every test of it run with float64 as the default dtype and ``torch.manual_seed(0)`` (zuko's tests/conftest.py)."""

import pytest
import torch


@pytest.fixture(autouse=True)
def float64_seeded():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    yield
    torch.set_default_dtype(previous)
