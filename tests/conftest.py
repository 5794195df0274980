from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from nas_proxy import load_dataset

SHARED_DATA = Path(os.environ.get("NAS_PROXY_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "FashionMNIST" / "raw").is_dir():
        pytest.skip(f"real data not found at {SHARED_DATA}; set NAS_PROXY_TEST_DATA")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _global_rng_untouched():
    """No library call may draw from (or reseed) the global RNG: everything takes explicit generators."""
    state = torch.random.get_rng_state()
    yield
    assert torch.equal(state, torch.random.get_rng_state()), "the global torch RNG was used"
