"""`python -m priors list` says what each prior fits; `python -m priors train NAME --images PATH` turns a
folder or stack of the user's images into a prior (with its model card) that reconstruct uses."""

import numpy as np
import pytest
import torch

import priors
from priors.__main__ import main as priors_main
from priors.zoo import RECIPES
from priors.zoo.fits import PriorKind, fit_of, fit_of_recipe

pytestmark = pytest.mark.usefixtures("one_thread")


def test_list_says_which_task_and_solvers_each_prior_fits(capsys):
    assert priors_main(["list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    out = "\n".join(lines)
    for name, recipe in RECIPES.items():
        at = next(i for i, line in enumerate(lines) if line.startswith(f"{name} "))
        fit = fit_of_recipe(recipe)
        assert f"solvers: {', '.join(fit.solvers)}; task: {fit.task}" in lines[at + 1]
    assert "solvers: dirac; task: Gaussian blur" in out and "not tomography" in out
    assert "solvers: ddgm; task:" in out  # the blind DDGM prior


def test_the_fit_of_each_loaded_prior_matches_its_recipe():
    for name, recipe in RECIPES.items():
        assert fit_of(priors.load(name)).kind is fit_of_recipe(recipe).kind, name
    assert fit_of_recipe(RECIPES["ddgm-cells"]).kind is PriorKind.BLIND
    assert "ddrm" in fit_of_recipe(RECIPES["cells-conditional"]).solvers
    for name in ("cvdm-qpi", "cvdm-simple-qpi", "cddpm-qpi"):  # supervised p(x | y): CVDM's sampler only
        assert fit_of_recipe(RECIPES[name]).kind is PriorKind.POSTERIOR
        assert fit_of_recipe(RECIPES[name]).solvers == ("cvdm",)


@pytest.fixture(scope="module")
def own_images(tmp_path_factory):
    """A folder of the user's images: two MRC files and a TIFF stack (cell textures, arbitrary units)."""
    import mrcfile
    import tifffile

    from priors.data import Family, ProceduralImages

    folder = tmp_path_factory.mktemp("images")
    images = 500 + 80 * ProceduralImages(Family.CELLS, 48, 4, seed=3).tensor()[:, 0].numpy()
    for i in range(2):
        with mrcfile.new(folder / f"slice{i}.mrc") as mrc:
            mrc.set_data(images[i].astype(np.float32))
    tifffile.imwrite(folder / "stack.tif", images[2:].astype(np.float32))
    (folder / "notes.txt").write_text("not an image")
    return folder


def test_train_on_own_images_then_reconstruct_with_it(own_images, tmp_path, capsys):
    from solvers.app import cli

    out = tmp_path / "mine"
    code = priors_main(["train", "my-cells", "--images", str(own_images), "--size", "24", "--crop", "16",
                        "--steps", "3", "--out", str(out), "--no-progress"])
    assert code == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    assert "--prior" in printed and "my-cells.safetensors" in printed
    card = (out / "my-cells.md").read_text()
    assert str(own_images) in card and "16 training tiles" not in card  # 4 images x 4 tiles, some held out
    assert "training tiles of 24 x 24" in card and "## Quality check (measured)" in card

    from priors.zoo.bundle import load_file

    prior = load_file(out / "my-cells.safetensors")
    assert fit_of(prior).kind is PriorKind.CONDITIONAL
    x = torch.randn(1, 1, 24, 24)
    assert torch.isfinite(prior.denoise(x, 0.5)).all()

    sino = np.random.default_rng(0).random((15, 2, 24)).astype(np.float32)
    np.save(tmp_path / "series.npy", sino)
    code = cli.main(["reconstruct", str(tmp_path / "series.npy"), "--angles-deg=-60:60:15", "--solver", "ddgm",
                     "--steps", "3", "--gradient-steps", "2", "--prior", str(out / "my-cells.safetensors"),
                     "--output", str(tmp_path / "v.npy"), "--quiet", "--threads", "1", "--no-preview"])
    assert code == 0, capsys.readouterr().err
    assert np.isfinite(np.load(tmp_path / "v.npy")).all()


@pytest.mark.parametrize(
    "args, expected",
    [
        (["ddgm-cells"], "is a bundled recipe; choose another name"),
        (["mine", "--like", "dirac-blur"], "--like dirac-blur: a Dirac recipe"),
        (["mine", "--like", "nope"], "--like: unknown recipe 'nope'"),
        (["mine", "--size", "64"], "smaller than the tile size 64"),
        (["bad/name"], "NAME must be a plain file name"),
    ],
)
def test_own_images_bad_requests(own_images, tmp_path, args, expected, capsys):
    code = priors_main(["train", *args, "--images", str(own_images), "--steps", "1", "--out", str(tmp_path)])
    assert code == 2
    assert expected in capsys.readouterr().err
