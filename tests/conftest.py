import random

import numpy as np
import pytest
import torch
from hypothesis import settings

# property tests draw the same examples on every run (a test must not pass or fail by chance); their
# search is as wide as before, only not reseeded per run
settings.register_profile("deterministic", derandomize=True)
settings.load_profile("deterministic")


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


# ----------------------------------------------------------------------------------------------
# problems shared by the priors and solvers tests; each uses the requesting module's SHAPE (float64)


@pytest.fixture(scope="module")
def families(request):
    """Dirac's two severity families on the module's SHAPE: Gaussian blur (std 0.3 -> 2 px) and the smooth
    centred Gaussian mask (0.1 -> 2 px), linear in t."""
    import linops

    shape = request.module.SHAPE
    return {
        "blur": linops.GaussianBlurFamily(shape, linops.LinearRamp(0.3, 2.0), dtype=torch.float64),
        "mask": linops.GaussianMaskFamily(shape, linops.LinearRamp(0.1, 2.0), dtype=torch.float64),
    }


@pytest.fixture(params=["blur", "mask"], ids=str)
def process(request, families):
    """The degradation process y_t = A_t x0 + noise of each family (the test runs once per family)."""
    from priors.dirac import DegradationProcess

    return DegradationProcess(families[request.param])


@pytest.fixture(scope="module")
def stationary_prior(request):
    """A stationary Gaussian prior N(0, C) on the module's SHAPE: C diagonal in the Fourier basis with power
    spectrum P(f) = 1 / (f^2 + 0.02), scaled to unit mean pixel variance."""
    from priors.analytic import GaussianPrior
    from priors.analytic.eigenbasis import isotropic_power_spectrum, stationary_covariance

    shape = request.module.SHAPE
    P = isotropic_power_spectrum(shape[-2:], lambda f: 1.0 / (f**2 + 0.02))
    return GaussianPrior(torch.zeros(shape, dtype=torch.float64), stationary_covariance(P / P.mean(), shape))
