"""The command line: reconstruct real-format files end to end, and fail clearly on bad input."""

import numpy as np
import pytest
import torch

import linops
from priors import Prior, sigma_like
from priors.data import Family, ProceduralImages
from solvers.app import cli, io
from solvers.app.choices import load_prior
from solvers.app.reconstruct import SlabGeometry, reconstruct_tilt_series, tiled_if_wide
from solvers.classical import AlgebraicReconstruction


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def _write_series(tmp_path, rows=3, size=24, views=31):
    """A tilt series (views, rows, size) of `rows` slices of procedural phantoms, in arbitrary units."""
    slices = ProceduralImages(Family.ELLIPSES, size, rows, seed=1).tensor()  # (rows, 1, size, size)
    angles = np.linspace(-60, 60, views)
    A = linops.Radon((1, size, size), angles_deg=torch.as_tensor(angles))
    sino = (A @ (100 + 50 * slices))[:, 0]  # (rows, views, size)
    series = sino.permute(1, 0, 2).numpy()
    io.write_array(tmp_path / "series.npy", series)
    (tmp_path / "series.rawtlt").write_text("\n".join(f"{a:.3f}" for a in angles))
    return slices[:, 0].numpy() * 50 + 100, angles


@pytest.mark.parametrize("solver", ["algebraic", "fbp"])
def test_reconstruct_command_writes_volume_and_preview(tmp_path, solver, capsys):
    truth, _ = _write_series(tmp_path)
    out = tmp_path / "volume.npy"
    code = cli.main(["reconstruct", str(tmp_path / "series.npy"), "--angles", str(tmp_path / "series.rawtlt"),
                     "--solver", solver, "--output", str(out), "--steps", "60", "--quiet"])
    assert code == 0, capsys.readouterr().err
    volume = np.load(out)
    assert volume.shape == truth.shape
    assert (tmp_path / "volume_preview.png").exists()
    # back in the input's units: the reconstruction correlates with the truth and has its mean level
    assert np.corrcoef(volume.ravel(), truth.ravel())[0, 1] > 0.8
    assert abs(volume.mean() - truth.mean()) < 0.1 * truth.std() + 5


def test_angle_spec_and_mrc_output(tmp_path):
    pytest.importorskip("mrcfile")
    _write_series(tmp_path)
    out = tmp_path / "vol.mrc"
    assert cli.main(["reconstruct", str(tmp_path / "series.npy"), "--angles-deg=-60:60:31", "--solver", "fbp",
                     "--output", str(out), "--quiet"]) == 0
    assert io.read_array(out).shape == (3, 24, 24)


def test_bad_input_fails_clearly(tmp_path, capsys):
    _write_series(tmp_path)
    out = str(tmp_path / "o.npy")
    series = str(tmp_path / "series.npy")
    assert cli.main(["reconstruct", str(tmp_path / "missing.mrc"), "--angles-deg", "0:1:2", "--output", out]) == 2
    assert "no such file" in capsys.readouterr().err
    assert cli.main(["reconstruct", series, "--angles-deg=-60:60:30", "--output", out]) == 2
    assert "gives 30 angles but the tilt series has 31 views" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main(["reconstruct", series, "--angles-deg=-60:60:31", "--solver", "magic", "--output", out])
    assert "invalid choice: 'magic'" in capsys.readouterr().err
    np.save(tmp_path / "bad.npy", np.zeros((2, 2, 2, 2)))
    assert cli.main(["reconstruct", str(tmp_path / "bad.npy"), "--angles-deg", "0:1:2", "--output", out]) == 2
    assert "(n_views, rows, cols)" in capsys.readouterr().err
    assert cli.main(["reconstruct", series, "--angles-deg=-60:60:31", "--prior", str(tmp_path / "w.safetensors"),
                     "--output", out]) == 2
    assert "no such weights file" in capsys.readouterr().err
    assert not (tmp_path / "o.npy").exists()


class Pointwise(Prior):
    """A pointwise 'denoiser' (shrinks every pixel): tiled or not, it must give the same result."""

    def denoise(self, x, sigma):
        return x / (1 + sigma_like(sigma, x) ** 2)


def test_wide_slabs_use_the_tiled_prior():
    prior = Pointwise()
    assert tiled_if_wide(prior, 64, 32, tile=64, stride=48) is prior
    tiled = tiled_if_wide(prior, 160, 32, tile=64, stride=48)
    assert tiled is not prior
    x = torch.randn(2, 1, 32, 160, generator=gen(100))
    torch.testing.assert_close(tiled.denoise(x, 0.5), prior.denoise(x, 0.5))


def test_slab_thickness_and_library_call():
    series = np.random.default_rng(0).standard_normal((7, 2, 20)).astype(np.float32)
    volume = reconstruct_tilt_series(series, np.linspace(-60, 60, 7), AlgebraicReconstruction(5), None,
                                     geometry=SlabGeometry(thickness=8), progress=False)
    assert volume.shape == (2, 8, 20)
    with pytest.raises(ValueError, match="6 angles for a tilt series of 7 views"):
        reconstruct_tilt_series(series, np.zeros(6), AlgebraicReconstruction(5), None, progress=False)


def test_prior_from_a_trained_bundle_file(tmp_path):
    import shutil

    import priors
    from priors.zoo import bundled_directory

    for suffix in (".safetensors", ".json"):
        shutil.copy(bundled_directory() / f"whole-ellipses-small{suffix}", tmp_path / f"whole-ellipses-small{suffix}")
    prior = load_prior(str(tmp_path / "whole-ellipses-small.safetensors")).prior
    reference = priors.load("whole-ellipses-small")
    x = torch.rand(2, 1, 64, 64, generator=gen(101))
    torch.testing.assert_close(prior.denoise(x, 0.1), reference.denoise(x, 0.1))


def test_demo_runs_end_to_end_with_the_bundled_priors(tmp_path, monkeypatch):
    import json

    from solvers.app.demo import DemoSettings, run_demo

    monkeypatch.setenv("LINOPS_CACHE", str(tmp_path / "cache"))
    settings = DemoSettings(size=32, views=32, ddgm_steps=4, ddgm_gradient_steps=3, ddrm_steps=3, dps_steps=16,
                            algebraic_iterations=5)
    rows = run_demo(settings, tmp_path / "demo", progress=False, log=lambda *a: None)
    assert [r.name.split(" ")[0] for r in rows] == ["algebraic", "FBP", "DDRM", "DPS*", "DDGM"]
    for name in ("comparison.png", "metrics.md", "metrics.json", "reconstructions.pt"):
        assert (tmp_path / "demo" / name).exists()
    summary = json.loads((tmp_path / "demo" / "metrics.json").read_text())
    assert {m["method"] for m in summary["methods"]} == {r.name for r in rows}
    assert all(m["mse"] > 0 and m["seconds"] >= 0 for m in summary["methods"])
    assert (tmp_path / "cache" / "svd").is_dir()  # DDRM's SVD went to the on-disk cache


def test_reconstruct_with_ddgm_and_the_bundled_prior(tmp_path, capsys):
    _write_series(tmp_path, rows=2, size=24, views=31)
    out = tmp_path / "v.npy"
    code = cli.main(["reconstruct", str(tmp_path / "series.npy"), "--angles", str(tmp_path / "series.rawtlt"),
                     "--solver", "ddgm", "--steps", "4", "--gradient-steps", "3", "--output", str(out), "--quiet"])
    assert code == 0, capsys.readouterr().err
    assert np.isfinite(np.load(out)).all() and np.load(out).shape == (2, 24, 24)
