"""Tomography operators: geometry conventions, agreement with scikit-image, exact adjoints at realistic
sizes, stacks of slices, fan beam, filtered backprojection, and the errors users see.

The generic checks (dot test, linearity, batching, dense matrix, gradcheck, grad == adjoint, independent
numpy reference of the weights) run over the market entries in tests/linops/test_market.py.
"""

import math
import warnings

import numpy as np
import pytest
import torch

from linops.operators.tomography import (
    FanBeamRadon,
    FanToParallel,
    FilterWindow,
    Radon,
    angle_weights,
    fbp,
    full_range_angles_deg,
    tilt_series_angles_deg,
)
from linops.testing import dottest


def point_image(shape, row, col, dtype=torch.float64):
    x = torch.zeros(1, *shape, dtype=dtype)
    x[0, row, col] = 1.0
    return x


def centred_coordinates(H, W):
    """x to the right, y upwards, origin at the image centre (the documented convention)."""
    rows, cols = torch.meshgrid(
        torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij"
    )
    return cols - (W - 1) / 2, (H - 1) / 2 - rows


def shepp_logan(n):
    data = pytest.importorskip("skimage.data")
    transform = pytest.importorskip("skimage.transform")
    return transform.resize(data.shepp_logan_phantom(), (n, n), anti_aliasing=True)


# ----------------------------------------------------------------------------------------------
# geometry conventions


def test_at_zero_degrees_bin_k_sums_column_k():
    x = torch.rand(1, 9, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    A = Radon((1, 9, 7), angles_deg=[0.0], n_detector=7, dtype=torch.float64)
    torch.testing.assert_close((A @ x)[0, 0], x[0].sum(0), rtol=1e-12, atol=1e-12)


def test_at_ninety_degrees_bin_k_sums_row_from_the_bottom():
    x = torch.rand(1, 9, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    A = Radon((1, 9, 7), angles_deg=[90.0], n_detector=9, dtype=torch.float64)
    torch.testing.assert_close((A @ x)[0, 0], x[0].sum(1).flip(0), rtol=1e-12, atol=1e-12)


ANGLES_DEG = [-60.0, -23.0, 0.0, 30.0, 44.0, 75.0, 90.0, 120.0, 151.0, 200.0]


@pytest.mark.parametrize("row, col", [(5, 22), (27, 3), (16, 14)])
def test_off_centre_point_lands_on_the_predicted_bin(row, col):
    """A point at (x, y) projects to s = x cos theta + y sin theta: on a coarse detector the brightest bin is
    the nearest one; on a fine detector the footprint's centroid is s to within a hundredth of a pixel."""
    H, W = 33, 29
    theta = torch.deg2rad(torch.tensor(ANGLES_DEG, dtype=torch.float64))
    xs, ys = centred_coordinates(H, W)
    s = xs[row, col] * torch.cos(theta) + ys[row, col] * torch.sin(theta)
    x = point_image((H, W), row, col)

    coarse = Radon((1, H, W), angles_deg=ANGLES_DEG, n_detector=45, dtype=torch.float64)
    nearest = torch.round(s / 1.0 + (45 - 1) / 2).long()
    assert torch.equal((coarse @ x)[0].argmax(-1), nearest)

    spacing, n = 0.05, 900
    fine = Radon((1, H, W), angles_deg=ANGLES_DEG, n_detector=n, detector_spacing=spacing, dtype=torch.float64)
    profile = (fine @ x)[0]
    bins = (torch.arange(n, dtype=torch.float64) - (n - 1) / 2) * spacing
    centroid = (profile * bins).sum(-1) / profile.sum(-1)
    torch.testing.assert_close(centroid, s, rtol=0, atol=0.01)


def test_pixel_size_scales_positions_and_lengths():
    """Doubling the pixel size doubles line lengths; with the detector spacing doubled too, bins see the same rays."""
    x = torch.rand(1, 11, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    A = Radon((1, 11, 10), angles_deg=ANGLES_DEG, n_detector=17, dtype=torch.float64)
    B = Radon(
        (1, 11, 10), angles_deg=ANGLES_DEG, n_detector=17, pixel_size=2.0, detector_spacing=2.0, dtype=torch.float64
    )
    torch.testing.assert_close(B @ x, 2 * (A @ x), rtol=1e-12, atol=1e-12)


def test_line_integrals_of_an_off_centre_gaussian():
    """f = exp(-|q - q0|^2 / (2 sigma^2)) has projection sqrt(2 pi) sigma exp(-(s - s0)^2 / (2 sigma^2)),
    s0 = x0 cos theta + y0 sin theta, at every angle."""
    H, W, sigma, x0, y0 = 101, 91, 6.0, 14.0, -9.0
    xs, ys = centred_coordinates(H, W)
    blob = torch.exp(-((xs - x0) ** 2 + (ys - y0) ** 2) / (2 * sigma**2))[None]
    A = Radon((1, H, W), angles_deg=ANGLES_DEG, n_detector=131, dtype=torch.float64)
    theta = torch.deg2rad(torch.tensor(ANGLES_DEG, dtype=torch.float64))[:, None]
    s = torch.arange(131, dtype=torch.float64) - 65
    s0 = x0 * torch.cos(theta) + y0 * torch.sin(theta)
    exact = math.sqrt(2 * math.pi) * sigma * torch.exp(-((s - s0) ** 2) / (2 * sigma**2))
    # measured: 0.21% of the peak (linear interpolation smooths slightly)
    assert float((A @ blob)[0].sub(exact).abs().max()) < 4e-3 * float(exact.max())


# ----------------------------------------------------------------------------------------------
# agreement with scikit-image


def skimage_sinogram(image, angles_deg):
    transform = pytest.importorskip("skimage.transform")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return transform.radon(image, theta=np.asarray(angles_deg), circle=True).T  # (n_angles, n_detector)


@pytest.mark.parametrize(
    "angles_deg", [full_range_angles_deg(180), tilt_series_angles_deg(61, 60.0)], ids=["full-range", "tilt-series"]
)
def test_agrees_with_skimage_radon_on_shepp_logan(angles_deg):
    """skimage's radon(image, theta=angles_deg, circle=True).T is our sinogram (odd N: both rotate about pixel
    (N - 1) / 2; skimage's detector axis is axis 0 with the same direction). Measured: scale 0.99985,
    correlation 0.99998, relative error 0.3% (full range, N = 161)."""
    n = 161
    image = shepp_logan(n)
    A = Radon((1, n, n), angles_deg=angles_deg, n_detector=n, dtype=torch.float64)
    ours = (A @ torch.from_numpy(image)[None]).numpy()[0]
    theirs = skimage_sinogram(image, angles_deg)
    scale = float((ours * theirs).sum() / (ours * ours).sum())
    correlation = float(np.corrcoef(ours.ravel(), theirs.ravel())[0, 1])
    relative_error = float(np.linalg.norm(ours - theirs) / np.linalg.norm(theirs))
    assert abs(scale - 1) < 2e-3, scale
    assert correlation > 0.9999, correlation
    assert relative_error < 0.01, relative_error


# ----------------------------------------------------------------------------------------------
# exact adjoints at realistic sizes and the stored matrices


@pytest.mark.parametrize("dtype, tol", [(torch.float64, 1e-10), (torch.float32, 1e-5)], ids=["float64", "float32"])
def test_dot_test_at_realistic_sizes(dtype, tol):
    for A in (
        Radon.tilt_series((1, 64, 64), 64, 60.0, dtype=dtype),
        Radon.full_range((2, 3, 48, 40), 30, dtype=dtype),
        FanBeamRadon.full_range((1, 50, 50), 40, source_distance=80.0, detector_distance=40.0, dtype=dtype),
    ):
        assert dottest(A, batch=3) < tol


def test_stored_matrices_are_valid_csr_and_exact_transposes():
    A = FanBeamRadon(
        (1, 13, 11),
        angles_deg=[0.0, 40.0, 95.0, 181.0, 300.0],
        source_distance=20.0,
        detector_distance=5.0,
        dtype=torch.float64,
    )
    for m in (A.matrix, A.matrix_t):
        torch.sparse_csr_tensor(m.crow_indices(), m.col_indices(), m.values(), m.shape, check_invariants=True)
    assert torch.equal(A.matrix.to_dense().T, A.matrix_t.to_dense())


def test_memory_bytes_counts_both_matrices():
    A = Radon.full_range((1, 32, 32), 10)
    nnz = A.nnz
    assert A.matrix_t.values().numel() == nnz
    assert A.memory_bytes == 2 * nnz * (4 + 4) + (10 * 32 + 32 * 32 + 2) * 4


def test_float64_and_float32_agree_and_convert():
    x = torch.rand(2, 1, 20, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    A64 = Radon.tilt_series((1, 20, 20), 9, dtype=torch.float64)
    A32 = Radon.tilt_series((1, 20, 20), 9, dtype=torch.float32)
    torch.testing.assert_close((A32 @ x.float()).double(), A64 @ x, rtol=1e-5, atol=1e-5)
    converted = A32.to(torch.float64)
    assert converted.matrix.dtype == torch.float64 and converted.matrix_t.dtype == torch.float64
    assert dottest(converted) < 1e-10


# ----------------------------------------------------------------------------------------------
# stacks of slices (tilt series of projection images)


def test_volume_is_a_stack_of_slice_sinograms():
    angles = tilt_series_angles_deg(7, 60.0)
    volume_op = Radon((2, 5, 12, 10), angles_deg=angles, dtype=torch.float64)
    slice_op = Radon((2, 12, 10), angles_deg=angles, dtype=torch.float64)
    assert volume_op.out_shape == (2, 7, 5, 12)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(3, 2, 5, 12, 10, dtype=torch.float64, generator=g)
    y = torch.randn(3, 2, 7, 5, 12, dtype=torch.float64, generator=g)
    for d in range(5):
        torch.testing.assert_close((volume_op @ x)[:, :, :, d], slice_op @ x[:, :, d], rtol=0, atol=1e-12)
        torch.testing.assert_close((volume_op.H @ y)[:, :, d], slice_op.H @ y[:, :, :, d], rtol=0, atol=1e-12)


def test_fan_beam_volume_is_a_stack_of_fans():
    kwargs = dict(angles_deg=[10.0, 100.0, 250.0], source_distance=30.0, detector_distance=10.0, dtype=torch.float64)
    volume_op = FanBeamRadon((1, 3, 9, 9), **kwargs)
    slice_op = FanBeamRadon((1, 9, 9), **kwargs)
    x = torch.randn(1, 3, 9, 9, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    for d in range(3):
        torch.testing.assert_close((volume_op @ x)[:, :, d], slice_op @ x[:, d], rtol=0, atol=1e-12)


# ----------------------------------------------------------------------------------------------
# fan beam


@pytest.mark.parametrize("row, col", [(5, 22), (27, 3)])
def test_fan_beam_point_lands_where_the_magnification_predicts(row, col):
    """q projects to s = D_sd <q, e_s> / (D_so + <q, e_r>), e_s = (cos, sin), e_r = (-sin, cos)."""
    H, W = 33, 29
    source, detector = 40.0, 25.0
    angles = [0.0, 37.0, 90.0, 163.0, 250.0, 333.0]
    theta = torch.deg2rad(torch.tensor(angles, dtype=torch.float64))
    xs, ys = centred_coordinates(H, W)
    qx, qy = xs[row, col], ys[row, col]
    along = qx * torch.cos(theta) + qy * torch.sin(theta)
    towards = -qx * torch.sin(theta) + qy * torch.cos(theta)
    s = (source + detector) * along / (source + towards)
    spacing, n = 0.05, 2400
    A = FanBeamRadon(
        (1, H, W),
        angles_deg=angles,
        source_distance=source,
        detector_distance=detector,
        n_detector=n,
        detector_spacing=spacing,
        dtype=torch.float64,
    )
    profile = (A @ point_image((H, W), row, col))[0]
    bins = (torch.arange(n, dtype=torch.float64) - (n - 1) / 2) * spacing
    centroid = (profile * bins).sum(-1) / profile.sum(-1)
    torch.testing.assert_close(centroid, s, rtol=0, atol=0.03)


def test_fan_beam_with_a_distant_source_tends_to_parallel_beam():
    x = torch.rand(1, 24, 20, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    angles = [0.0, 20.0, 65.0, 110.0, 160.0]
    fan = FanBeamRadon((1, 24, 20), angles_deg=angles, source_distance=1e6, detector_distance=0.0, n_detector=31)
    parallel = Radon((1, 24, 20), angles_deg=angles, n_detector=31)
    fan, parallel = fan.to(torch.float64), parallel.to(torch.float64)
    y_fan, y_par = fan @ x, parallel @ x
    assert float(torch.linalg.norm(y_fan - y_par) / torch.linalg.norm(y_par)) < 1e-3


# ----------------------------------------------------------------------------------------------
# filtered backprojection


def disc_phantom(n, radius):
    xs, ys = centred_coordinates(n, n)
    r = torch.sqrt(xs**2 + ys**2)
    return (r <= radius).double()[None], r


@pytest.mark.parametrize("window", list(FilterWindow), ids=lambda w: w.value)
def test_fbp_recovers_a_disc_over_the_full_range(window):
    """Measured on 128x128, 180 views: interior mean 1.0000, RMS error 0.6-0.9%, max 3.4%."""
    n = 128
    disc, r = disc_phantom(n, 40)
    A = Radon.full_range((1, n, n), 180, dtype=torch.float64)
    reconstruction = fbp(A, A @ disc, window)[0]
    interior = r <= 32
    error = reconstruction[interior] - 1
    assert abs(float(reconstruction[interior].mean()) - 1) < 5e-3
    assert float(error.pow(2).mean().sqrt()) < 0.02
    assert float(reconstruction[(r > 46) & (r < 60)].abs().mean()) < 0.02


def fan_for(n, views):
    return FanBeamRadon.full_range((1, n, n), views, source_distance=2.0 * n, detector_distance=n, dtype=torch.float64)


def test_rebinned_fan_data_are_the_parallel_data_of_the_same_image():
    """R (A_fan x) = A_par x up to interpolation: a check of the fan <-> parallel line correspondence
    (phi = theta - gamma, t = D_so sin gamma); with a wrong sign of gamma the error is O(1)."""
    n = 64
    xs, ys = centred_coordinates(n, n)
    image = torch.exp(-((xs - 9) ** 2 + (ys + 5) ** 2) / (2 * 6.0**2))[None]
    fan = fan_for(n, 360)
    rebin = FanToParallel(fan)
    parallel = rebin.parallel @ image
    relative = float((rebin @ (fan @ image) - parallel).norm() / parallel.norm())
    assert relative < 5e-3  # measured 4e-4 (bilinear interpolation of a smooth sinogram)
    assert dottest(rebin, tol=1e-12) < 1e-12


def test_fbp_recovers_a_disc_from_a_full_turn_fan():
    """Measured on 128x128, 360 fan views (D_so = 2 n, D_od = n): interior mean 0.9998, RMS error 0.4%
    (parallel FBP on 180 views: 0.6-0.9%)."""
    n = 128
    disc, r = disc_phantom(n, 40)
    fan = fan_for(n, 360)
    reconstruction = fbp(fan, fan @ disc)[0]
    interior = r <= 32
    assert abs(float(reconstruction[interior].mean()) - 1) < 5e-3
    assert float((reconstruction[interior] - 1).pow(2).mean().sqrt()) < 0.02
    assert float(reconstruction[(r > 46) & (r < 60)].abs().mean()) < 0.02


def test_fan_fbp_of_a_stack_is_the_stack_of_fan_fbps():
    disc, _ = disc_phantom(40, 12)
    volume = torch.cat([disc, 0.5 * disc])[None]  # (1, 2, 40, 40)
    volume_op = FanBeamRadon.full_range((1, 2, 40, 40), 90, source_distance=80.0, detector_distance=40.0,
                                        dtype=torch.float64)
    slice_op = fan_for(40, 90)
    stacked = fbp(volume_op, volume_op @ volume)
    for d in range(2):
        torch.testing.assert_close(stacked[:, d], fbp(slice_op, slice_op @ volume[:, d]), rtol=0, atol=1e-12)


def test_fbp_scale_follows_pixel_size_and_spacing():
    n = 96
    disc, r = disc_phantom(n, 30)
    A = Radon.full_range((1, n, n), 120, pixel_size=0.5, detector_spacing=0.4, n_detector=130, dtype=torch.float64)
    reconstruction = fbp(A, A @ disc)[0]
    assert abs(float(reconstruction[r <= 24].mean()) - 1) < 5e-3


def test_fbp_of_a_stack_is_the_stack_of_fbps():
    disc, _ = disc_phantom(40, 12)
    volume = torch.cat([disc, 0.5 * disc])[None]  # (1, 2, 40, 40)
    volume_op = Radon.full_range((1, 2, 40, 40), 60, dtype=torch.float64)
    slice_op = Radon.full_range((1, 40, 40), 60, dtype=torch.float64)
    stacked = fbp(volume_op, volume_op @ volume)
    for d in range(2):
        torch.testing.assert_close(stacked[:, d], fbp(slice_op, slice_op @ volume[:, d]), rtol=0, atol=1e-12)


def test_angle_weights():
    n = 12
    full = angle_weights(torch.deg2rad(torch.tensor(full_range_angles_deg(n))))
    torch.testing.assert_close(full, torch.full((n,), math.pi / n, dtype=torch.float64))
    tilt = angle_weights(np.deg2rad(tilt_series_angles_deg(5, 60.0)))
    torch.testing.assert_close(tilt, torch.full((5,), math.radians(30.0), dtype=torch.float64))
    turn = angle_weights(torch.deg2rad(torch.tensor(2 * full_range_angles_deg(n))))
    torch.testing.assert_close(turn.sum(), torch.tensor(math.pi, dtype=torch.float64))
    shuffled = angle_weights([0.3, 0.0, 0.1])
    torch.testing.assert_close(shuffled, torch.tensor([0.2, 0.1, 0.15], dtype=torch.float64))


# ----------------------------------------------------------------------------------------------
# constructors


def test_angle_constructors():
    full = Radon.full_range((1, 8, 8), 6)
    torch.testing.assert_close(full.angles_deg, torch.arange(6, dtype=torch.float64) * 30)
    tilt = Radon.tilt_series((1, 8, 8), 5, 60.0)
    torch.testing.assert_close(tilt.angles_deg, torch.tensor([-60.0, -30.0, 0.0, 30.0, 60.0], dtype=torch.float64))
    asymmetric = Radon.tilt_series((1, 8, 8), 3, 70.0, min_tilt_deg=-50.0)
    torch.testing.assert_close(asymmetric.angles_deg, torch.tensor([-50.0, 10.0, 70.0], dtype=torch.float64))
    in_radians = Radon((1, 8, 8), angles_rad=np.deg2rad([-60.0, -30.0, 0.0, 30.0, 60.0]))
    torch.testing.assert_close(in_radians.matrix.to_dense(), tilt.matrix.to_dense(), rtol=1e-6, atol=1e-6)


def test_default_detector_covers_the_inscribed_disc():
    assert Radon((1, 20, 30), angles_deg=[0.0]).n_detector == 30
    assert Radon((1, 20, 30), angles_deg=[0.0], detector_spacing=0.5, pixel_size=1.0).n_detector == 60
    fan = FanBeamRadon((1, 20, 20), angles_deg=[0.0], source_distance=40.0, detector_distance=40.0)
    assert fan.n_detector == math.ceil(2 * 80 * 10 / math.sqrt(40**2 - 10**2))


def test_repr_names_the_geometry():
    assert (
        repr(Radon.tilt_series((1, 8, 8), 5, 60.0)) == "Radon(in_shape=(1, 8, 8), 5 views over [-60, 60] deg, 8 bins)"
    )


# ----------------------------------------------------------------------------------------------
# errors that say what was expected


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        (dict(in_shape=(8, 8), angles_deg=[0.0]), ValueError, r"\(C, H, W\) for images or \(C, D, H, W\)"),
        (dict(in_shape=(1, 2, 3, 8, 8), angles_deg=[0.0]), ValueError, r"got \(1, 2, 3, 8, 8\)"),
        (dict(in_shape=(1, 8, 8)), ValueError, "exactly one of angles_deg=... or angles_rad=..., got neither"),
        (dict(in_shape=(1, 8, 8), angles_deg=[0.0], angles_rad=[0.0]), ValueError, "got both"),
        (dict(in_shape=(1, 8, 8), angles_deg=[[0.0, 1.0]]), ValueError, r"1-D sequence, got shape \(1, 2\)"),
        (dict(in_shape=(1, 8, 8), angles_deg=[]), ValueError, "non-empty"),
        (dict(in_shape=(1, 8, 8), angles_rad=[0.0, float("nan")]), ValueError, "finite"),
        (dict(in_shape=(1, 8, 8), angles_deg="many"), TypeError, "sequence of numbers"),
        (dict(in_shape=(1, 8, 8), angles_deg=[0.0], n_detector=0), ValueError, "n_detector must be a positive int"),
        (dict(in_shape=(1, 8, 8), angles_deg=[0.0], detector_spacing=-1.0), ValueError, "detector_spacing"),
        (dict(in_shape=(1, 8, 8), angles_deg=[0.0], pixel_size=0.0), ValueError, "pixel_size"),
        (dict(in_shape=(1, 8, 8), angles_deg=[0.0], dtype=torch.complex64), TypeError, "float32 or torch.float64"),
    ],
)
def test_radon_construction_errors(kwargs, error, message):
    in_shape = kwargs.pop("in_shape")
    with pytest.raises(error, match=message):
        Radon(in_shape, **kwargs)


def test_tilt_series_range_error():
    with pytest.raises(ValueError, match="min <= max"):
        Radon.tilt_series((1, 8, 8), 5, 30.0, min_tilt_deg=40.0)


def test_fan_beam_source_inside_the_image():
    with pytest.raises(ValueError, match=r"source_distance 5.0 must exceed the image half-diagonal 7.07"):
        FanBeamRadon((1, 10, 10), angles_deg=[0.0], source_distance=5.0, detector_distance=5.0)


def test_wrong_input_shape_names_both_shapes():
    A = Radon.tilt_series((1, 8, 8), 5)
    with pytest.raises(ValueError, match=r"expects input of shape \(\*batch, 1, 8, 8\), got \(1, 8, 9\)"):
        A @ torch.zeros(1, 8, 9)
    with pytest.raises(ValueError, match=r"expects input of shape \(\*batch, 1, 5, 8\), got \(1, 8, 5\)"):
        A.H @ torch.zeros(1, 8, 5)


def test_fbp_errors():
    A = Radon.full_range((1, 8, 8), 4)
    with pytest.raises(ValueError, match=r"expects a sinogram of shape \(\*batch, 1, 4, 8\), got \(1, 8, 4\)"):
        fbp(A, torch.zeros(1, 8, 4))
    half_turn = list(range(0, 200, 2))  # a short scan would need Parker weights
    fan = FanBeamRadon((1, 8, 8), angles_deg=half_turn, source_distance=20.0, detector_distance=0.0)
    with pytest.raises(ValueError, match="full turn"):
        fbp(fan, torch.zeros(fan.out_shape))
    for degrees in ([0.0, 1.0, 2.0], [0.0, 37.5, 75.0, 112.5, 150.0]):  # few views bridging a wide gap
        few = FanBeamRadon((1, 8, 8), angles_deg=degrees, source_distance=20.0, detector_distance=0.0)
        with pytest.raises(ValueError, match="no gap over 45 degrees"):
            FanToParallel(few)
    with pytest.raises(TypeError, match="parallel-beam Radon and the full-turn FanBeamRadon"):
        fbp(Radon.full_range((1, 8, 8), 4) @ Radon.full_range((1, 8, 8), 4).H, torch.zeros(1, 4, 8))
    with pytest.raises(TypeError, match="rebins a FanBeamRadon"):
        FanToParallel(A)
