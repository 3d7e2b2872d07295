import random

import numpy as np
import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def seeded_global_rngs():
    """Every test starts from the same global RNG states (torch, numpy, random), so draws that a test
    cannot pass a generator to (deepinv's adjointness_test and power method, its noise models, network
    initialisation) are reproducible: a test passes or fails the same way on every run. Tests still pass
    explicit generators for their own draws; this is the floor, not the way to seed."""
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 (the legacy global state is what unseeded numpy draws use)
    random.seed(0)


@pytest.fixture
def one_thread():
    """Small problems gain nothing from intra-op threads, and on a shared CPU their spin-waits cost
    seconds; test modules opt in with `pytestmark = pytest.mark.usefixtures("one_thread")`."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
