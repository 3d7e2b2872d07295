"""Readers and writers for tilt series, images and angles; bad files give clear errors."""

import numpy as np
import pytest

from solvers.app import io


@pytest.mark.parametrize("suffix", [".mrc", ".tif", ".npy"])
def test_round_trip(tmp_path, suffix):
    pytest.importorskip("mrcfile")
    pytest.importorskip("tifffile")
    data = np.random.default_rng(0).standard_normal((5, 3, 7)).astype(np.float32)
    path = io.write_array(tmp_path / f"stack{suffix}", data)
    np.testing.assert_array_equal(io.read_tilt_series(path), data)


def test_npz_and_png(tmp_path):
    data = np.random.default_rng(1).random((4, 6)).astype(np.float32)
    np.savez(tmp_path / "one.npz", sino=data)
    np.testing.assert_array_equal(io.read_tilt_series(tmp_path / "one.npz")[:, 0, :], data)
    np.savez(tmp_path / "two.npz", a=data, b=data)
    with pytest.raises(ValueError, match=r"holds arrays \['a', 'b'\]; save exactly one array"):
        io.read_array(tmp_path / "two.npz")
    import matplotlib.image

    matplotlib.image.imsave(tmp_path / "image.png", data, cmap="gray", vmin=0, vmax=1)
    png = io.read_array(tmp_path / "image.png")
    assert png.shape == (4, 6)
    np.testing.assert_allclose(png, data, atol=1 / 255 + 1e-3)


def test_angles(tmp_path):
    (tmp_path / "a.rawtlt").write_text("# tilt angles\n-60.0\n\n0\n60.5\n")
    np.testing.assert_allclose(io.read_angles(tmp_path / "a.rawtlt"), [-60, 0, 60.5])
    (tmp_path / "bad.tlt").write_text("-60\nsixty\n")
    with pytest.raises(ValueError, match=r"line 2: expected an angle in degrees, got 'sixty'"):
        io.read_angles(tmp_path / "bad.tlt")
    np.testing.assert_allclose(io.parse_angles("-60:60:5"), [-60, -30, 0, 30, 60])
    np.testing.assert_allclose(io.parse_angles("1,2.5"), [1, 2.5])
    with pytest.raises(ValueError, match=r"start:stop:count"):
        io.parse_angles("a:b")
    with pytest.raises(ValueError, match=r"gives 3 angles but the tilt series has 4 views"):
        io.check_angles(np.zeros(3), 4, "angles.tlt")


def test_bad_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no such file"):
        io.read_array(tmp_path / "missing.mrc")
    (tmp_path / "x.xyz").write_text("1")
    with pytest.raises(ValueError, match=r"unsupported extension '.xyz'; supported: .ali"):
        io.read_array(tmp_path / "x.xyz")
    (tmp_path / "corrupt.mrc").write_bytes(b"not an mrc file at all" * 10)
    with pytest.raises(ValueError, match=r"could not read .*corrupt.mrc as .mrc data"):
        io.read_array(tmp_path / "corrupt.mrc")
    np.save(tmp_path / "nan.npy", np.array([1.0, np.nan]))
    with pytest.raises(ValueError, match=r"NaN or Inf"):
        io.read_array(tmp_path / "nan.npy")
    np.save(tmp_path / "four.npy", np.zeros((2, 2, 2, 2)))
    with pytest.raises(ValueError, match=r"\(n_views, rows, cols\)"):
        io.read_tilt_series(tmp_path / "four.npy")
