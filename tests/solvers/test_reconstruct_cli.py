"""`python -m solvers reconstruct` end to end on a tilt series made outside the project (scikit-image's
radon, and ASTRA), saved as MRC + .rawtlt and TIFF: every solver lands the specimen the right way round
and above a quality floor; nothing is lost or overwritten; every bad option is refused up front."""

import json

import numpy as np
import pytest
import torch

from solvers.app import cli, io

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE, VIEWS, ROWS = 33, 31, 2
BLOB = (7, 24)  # (thickness row, col) of a bright off-centre square in every slice


def phantom(rows=ROWS, size=SIZE):
    """Slices (rows, size, size) in [0, 1]: camera texture inside the detector's disc plus a bright
    off-centre square at BLOB (no symmetry: any flip or transpose moves it)."""
    from skimage import data, transform

    camera = data.camera().astype(np.float64) / 255
    yy, xx = np.mgrid[:size, :size]
    c = (size - 1) / 2
    disc = (yy - c) ** 2 + (xx - c) ** 2 <= (size / 2 - 1) ** 2
    out = []
    for r in range(rows):
        crop = camera[128 * r : 128 * r + 256, 100 : 356]
        s = 0.5 * transform.resize(crop, (size, size), anti_aliasing=True)
        s[BLOB[0] - 2 : BLOB[0] + 3, BLOB[1] - 2 : BLOB[1] + 3] = 1.5
        out.append(s * disc)
    return np.stack(out)


def project_skimage(volume, angles):
    """Tilt series (views, rows, cols) by scikit-image's radon (its sinogram transposed per slice)."""
    from skimage.transform import radon

    return np.stack([radon(s, angles, circle=True).T for s in volume]).transpose(1, 0, 2)


@pytest.fixture(scope="module")
def series_files(tmp_path_factory):
    import mrcfile
    import tifffile

    folder = tmp_path_factory.mktemp("series")
    truth = phantom()
    angles = np.linspace(-60, 60, VIEWS)
    clean = project_skimage(truth, angles)
    noisy = clean + 0.05 * clean.std() * np.random.default_rng(0).standard_normal(clean.shape)
    noisy = noisy.astype(np.float32)
    with mrcfile.new(folder / "series.mrc") as mrc:
        mrc.set_data(noisy)
        mrc.voxel_size = 2.5
    tifffile.imwrite(folder / "series.tif", noisy)
    (folder / "series.rawtlt").write_text("\n".join(f"{a:.4f}" for a in angles) + "\n")
    return folder, truth


def run(args, capsys=None):
    code = cli.main(["reconstruct", *map(str, args)])
    err = capsys.readouterr().err if capsys is not None else ""
    return code, err


def base(folder, out, *extra, source="series.mrc"):
    return [folder / source, "--angles", folder / "series.rawtlt", "--output", out, "--quiet", "--threads", "1",
            *extra]


def corr(a, b):
    return float(np.corrcoef(np.ravel(a), np.ravel(b))[0, 1])


def check_orientation_and_quality(volume, truth, floor):
    assert volume.shape == truth.shape
    c = corr(volume, truth)
    for name, flipped in {"left-right": volume[:, :, ::-1], "up-down": volume[:, ::-1, :],
                          "180 degrees": volume[:, ::-1, ::-1], "transposed": volume.transpose(0, 2, 1)}.items():
        assert c > corr(flipped, truth) + 0.1, f"the {name} flip matches the truth as well ({c:.3f})"
    for s in volume:  # the off-centre square is the brightest 5 x 5 region where it should be
        box = np.lib.stride_tricks.sliding_window_view(s, (5, 5)).mean(axis=(-1, -2))
        peak = np.unravel_index(np.argmax(box), box.shape)
        assert abs(peak[0] + 2 - BLOB[0]) <= 1 and abs(peak[1] + 2 - BLOB[1]) <= 1, peak
    assert c > floor, f"correlation with the truth {c:.3f} below the floor {floor}"


# fast settings per solver, and the measured correlation with the truth minus a margin
SOLVER_RUNS = {
    "fbp": ([], 0.78),
    "algebraic": (["--steps", "60"], 0.84),
    "cgls": ([], 0.82),
    "lsqr": ([], 0.82),
    "tv": (["--steps", "100"], 0.88),
    "ddgm": (["--steps", "6", "--gradient-steps", "10"], 0.84),
    "ddrm": (["--steps", "4"], 0.84),
    "dps": (["--steps", "15"], 0.78),
    "padis": (["--steps", "30"], 0.75),
}


@pytest.mark.parametrize("solver", list(SOLVER_RUNS))
def test_every_solver_reconstructs_an_independent_tilt_series(series_files, tmp_path, solver, capsys, monkeypatch):
    monkeypatch.setenv("LINOPS_CACHE", str(tmp_path / "cache"))
    folder, truth = series_files
    extra, floor = SOLVER_RUNS[solver]
    out = tmp_path / f"{solver}.mrc"
    preview = [] if solver == "fbp" else ["--no-preview"]  # (drawing it takes longer than most solves here)
    code, err = run(base(folder, out, "--solver", solver, *extra, *preview), capsys)
    assert code == 0, err
    volume = io.read_array(out)
    check_orientation_and_quality(volume, truth, floor)
    assert (tmp_path / f"{solver}_preview.png").is_file() == (solver == "fbp")
    assert not io.partial_paths(out)[0].exists() and not io.partial_paths(out)[1].exists()
    import mrcfile

    with mrcfile.open(out) as mrc:  # the voxel size travels from the input header
        assert float(mrc.voxel_size.x) == pytest.approx(2.5)


def test_tiff_input_and_pixel_size(series_files, tmp_path, capsys):
    import mrcfile

    folder, truth = series_files
    out_mrc, out_tif = tmp_path / "a.mrc", tmp_path / "b.mrc"
    assert run(base(folder, out_mrc, "--solver", "fbp", "--no-preview"), capsys)[0] == 0
    code, err = run(base(folder, out_tif, "--solver", "fbp", "--no-preview", "--pixel-size", "3.5",
                         source="series.tif"), capsys)
    assert code == 0, err
    np.testing.assert_array_equal(io.read_array(out_mrc), io.read_array(out_tif))
    with mrcfile.open(out_tif) as mrc:
        assert float(mrc.voxel_size.x) == pytest.approx(3.5)


def test_orientation_agrees_with_astra(tmp_path, capsys):
    """A tilt series projected by ASTRA's CPU parallel-beam projector lands the right way round."""
    astra = pytest.importorskip("astra")
    truth = phantom(rows=1)
    angles = np.linspace(-60, 60, VIEWS)
    vol_geom = astra.create_vol_geom(SIZE, SIZE)
    proj_geom = astra.create_proj_geom("parallel", 1.0, SIZE, np.radians(angles))
    projector = astra.create_projector("linear", proj_geom, vol_geom)
    sino_id, sino = astra.create_sino(truth[0], projector)
    astra.data2d.delete(sino_id)
    astra.projector.delete(projector)
    np.save(tmp_path / "astra.npy", sino.astype(np.float32))  # (views, detector): one slice
    out = tmp_path / "astra_fbp.npy"
    code, err = run([tmp_path / "astra.npy", "--angles-deg=-60:60:31", "--solver", "algebraic", "--steps", "60",
                     "--output", out, "--quiet", "--threads", "1"], capsys)
    assert code == 0, err
    check_orientation_and_quality(np.load(out), truth, 0.85)


# ----------------------------------------------------------------------------------------------
# nothing lost, nothing overwritten


def test_never_overwrites_an_input(series_files, tmp_path, capsys):
    folder, _ = series_files
    before = (folder / "series.mrc").read_bytes()
    code, err = run(base(folder, folder / "series.mrc", "--solver", "fbp", "--overwrite"), capsys)
    assert code == 2 and "is an input of this run" in err
    code, err = run(base(folder, tmp_path / "v.npy", "--solver", "fbp", "--preview", folder / "series.mrc"), capsys)
    assert code == 2 and "is a PNG image" in err
    code, err = run(base(folder, tmp_path / "v.npy", "--solver", "fbp", "--preview", folder / "series.rawtlt"), capsys)
    assert code == 2
    assert (folder / "series.mrc").read_bytes() == before
    # the case: a PNG input whose name the old default preview (OUTPUT.png) took
    import matplotlib.image

    matplotlib.image.imsave(tmp_path / "sino.png", np.random.default_rng(0).random((31, 33)), cmap="gray")
    png = (tmp_path / "sino.png").read_bytes()
    code, err = run([tmp_path / "sino.png", "--angles-deg=-60:60:31", "--solver", "fbp", "--output",
                     tmp_path / "sino.npy", "--quiet", "--threads", "1"], capsys)
    assert code == 0, err
    assert (tmp_path / "sino.png").read_bytes() == png and (tmp_path / "sino_preview.png").is_file()
    code, err = run([tmp_path / "sino.png", "--angles-deg=-60:60:31", "--solver", "fbp", "--output",
                     tmp_path / "other.npy", "--preview", tmp_path / "sino.png", "--quiet", "--overwrite"], capsys)
    assert code == 2 and "is an input of this run" in err
    assert (tmp_path / "sino.png").read_bytes() == png


def test_existing_output_needs_overwrite(series_files, tmp_path, capsys):
    folder, _ = series_files
    out = tmp_path / "v.npy"
    np.save(out, np.zeros(3))
    code, err = run(base(folder, out, "--solver", "fbp"), capsys)
    assert code == 2 and "pass --overwrite" in err
    np.testing.assert_array_equal(np.load(out), np.zeros(3))
    assert run(base(folder, out, "--solver", "fbp", "--overwrite"), capsys)[0] == 0
    assert np.load(out).shape == (ROWS, SIZE, SIZE)
    code, err = run(base(folder, out, "--solver", "fbp", "--no-preview", "--overwrite", "--resume"), capsys)
    assert code == 2 and "--resume: no unfinished reconstruction" in err


def test_output_format_and_folder_are_checked_before_any_work(series_files, tmp_path, capsys, monkeypatch):
    folder, _ = series_files
    from solvers.app import choices

    def no_work(*args, **kwargs):
        raise AssertionError("the prior was loaded before the output was checked")

    monkeypatch.setattr(choices, "load_prior", no_work)
    code, err = run(base(folder, tmp_path / "volume.h5", "--solver", "ddgm"), capsys)
    assert code == 2 and "--output: cannot write '.h5'" in err
    (tmp_path / "file").write_text("x")
    code, err = run(base(folder, tmp_path / "file" / "volume.mrc", "--solver", "ddgm"), capsys)
    assert code == 2 and "cannot write into the folder" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_interrupt_keeps_finished_slices_and_resume_finishes(series_files, tmp_path, capsys, monkeypatch):
    """Ctrl-C during the second slice: the first stays on disk, marked done; --resume computes only the
    rest, and the result equals an uninterrupted run bit for bit."""
    from solvers.app import reconstruct

    folder, _ = series_files
    args = ["--solver", "ddgm", "--steps", "3", "--gradient-steps", "2", "--batch-size", "1", "--no-preview"]
    assert run(base(folder, tmp_path / "whole.npy", *args), capsys)[0] == 0
    whole = np.load(tmp_path / "whole.npy")

    real = reconstruct.reconstruct_rows
    calls = []

    def interrupted(setup, prior, rows, sinograms):
        calls.append(list(rows))
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(setup, prior, rows, sinograms)

    monkeypatch.setattr(reconstruct, "reconstruct_rows", interrupted)
    out = tmp_path / "v.npy"
    code, err = run(base(folder, out, *args), capsys)
    assert code == 130 and "--resume" in err
    partial, sidecar = io.partial_paths(out)
    assert not out.exists() and partial.is_file()
    assert json.loads(sidecar.read_text())["done"] == [0]
    np.testing.assert_array_equal(np.load(partial)[0], whole[0])

    code, err = run(base(folder, out, *args), capsys)
    assert code == 2 and "--resume" in err  # an unfinished run is not silently restarted
    code, err = run(base(folder, out, *args[:-1], "--seed", "1", "--resume", "--no-preview"), capsys)
    assert code == 2 and "seed: was 0, now 1" in err  # nor continued with other settings

    calls.clear()
    assert run(base(folder, out, *args, "--resume"), capsys)[0] == 0
    assert calls == [[1]]  # only the unfinished slice
    np.testing.assert_array_equal(np.load(out), whole)
    assert not partial.exists() and not sidecar.exists()


@pytest.mark.slow
def test_ctrl_c_in_a_subprocess_then_resume(tmp_path):
    """A real SIGINT to `python -m solvers reconstruct` keeps the finished slices; --resume completes.
    Eight slices of about a second each: when the first is done, several seconds of work remain, so
    the signal cannot arrive after the run has ended."""
    import os
    import signal
    import subprocess
    import sys
    import time

    import mrcfile

    rows, angles = 8, np.linspace(-60, 60, VIEWS)
    with mrcfile.new(tmp_path / "series.mrc") as mrc:
        mrc.set_data(project_skimage(np.concatenate([phantom()] * (rows // ROWS)), angles).astype(np.float32))
    (tmp_path / "series.rawtlt").write_text("\n".join(f"{a:.4f}" for a in angles) + "\n")
    out = tmp_path / "v.mrc"
    command = [sys.executable, "-m", "solvers", "reconstruct", *map(str, base(tmp_path, out, "--solver", "ddgm",
               "--steps", "60", "--gradient-steps", "20", "--batch-size", "1", "--no-preview"))]
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    # a shell starts background jobs with SIGINT ignored, and Python then keeps it ignored (no
    # KeyboardInterrupt): give the child the default disposition, as a terminal's foreground job has
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    sidecar = io.partial_paths(out)[1]
    deadline = time.time() + 120
    while time.time() < deadline and not (sidecar.exists() and json.loads(sidecar.read_text())["done"]):
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert 0 < len(json.loads(sidecar.read_text())["done"]) < rows  # interrupted mid-run, finished slices kept
    done = subprocess.run([*command, "--resume"], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert io.read_array(out).shape == (rows, SIZE, SIZE)


# ----------------------------------------------------------------------------------------------
# every option checked up front, with its name


@pytest.mark.parametrize(
    "option, value, expected",
    [
        ("--batch-size", "-1", "argument --batch-size: expected an integer >= 1, got '-1'"),
        ("--batch-size", "0", "argument --batch-size: expected an integer >= 1, got '0'"),
        ("--thickness", "0", "argument --thickness: expected an integer >= 1, got '0'"),
        ("--thickness", "-5", "argument --thickness: expected an integer >= 1, got '-5'"),
        ("--steps", "0", "argument --steps: expected an integer >= 1, got '0'"),
        ("--threads", "0", "argument --threads: expected an integer >= 1, got '0'"),
        ("--workers", "0", "argument --workers: expected an integer >= 1, got '0'"),
        ("--noise", "-1", "argument --noise: expected a number > 0, got '-1'"),
        ("--eta", "1.5", "argument --eta: expected a number >= 0 and <= 1, got '1.5'"),
        ("--sigma-min", "nan", "argument --sigma-min: expected a number > 0, got 'nan'"),
        ("--solver", "magic", "argument --solver: invalid choice: 'magic'"),
    ],
)
def test_bad_options_are_refused_by_name(series_files, tmp_path, option, value, expected, capsys):
    folder, _ = series_files
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["reconstruct", *map(str, base(folder, tmp_path / "v.npy")), f"{option}={value}"])
    assert exit_info.value.code == 2
    assert expected in capsys.readouterr().err
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--solver", "ddgm", "--prior", "dirac-blur"], "--prior dirac-blur is a degradation-aware (Dirac)"),
        (["--solver", "dps", "--prior", "dirac-blur"], "Priors that fit dps: cells-conditional"),
        (["--solver", "ddrm", "--prior", "ddgm-cells"], "--prior ddgm-cells is a blind denoiser"),
        (["--solver", "ddgm", "--prior", "padis-patch-small"], "is a patch denoiser (for padis"),
        (["--solver", "fbp", "--prior", "ddgm-cells"], "--solver fbp uses no prior"),
        (["--solver", "ddgm", "--prior", "no-such-prior"], "unknown prior 'no-such-prior'"),
        (["--solver", "ddgm", "--prior", "missing.safetensors"], "no such weights file"),
        (["--tile", "32", "--stride", "64"], "--stride 64 exceeds --tile 32"),
        (["--sigma-max", "0.1", "--sigma-min", "0.5"], "--sigma-max (0.1) must exceed --sigma-min (0.5)"),
        (["--solver", "ddrm", "--svd-rank", "10"], "--svd-rank applies to --svd randomized"),
        (["--solver", "dps", "--steps", "5"], "use at least 13 steps"),
        (["--device", "tpu"], "--device tpu: expected cpu, cuda or cuda:N"),
    ],
)
def test_bad_combinations_are_refused_before_any_work(series_files, tmp_path, extra, expected, capsys):
    folder, _ = series_files
    code, err = run(base(folder, tmp_path / "v.npy", *extra), capsys)
    assert code == 2 and expected in err, err
    assert not any(tmp_path.iterdir())


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_cuda_without_a_gpu_is_a_clear_error(series_files, tmp_path, capsys):
    folder, _ = series_files
    code, err = run(base(folder, tmp_path / "v.npy", "--device", "cuda"), capsys)
    assert code == 2 and "--device cuda: torch sees no CUDA GPU" in err and "use --device cpu" in err


def test_angles_in_radians_are_refused_unless_said(series_files, tmp_path, capsys):
    folder, _ = series_files
    radians = np.radians(np.linspace(-60, 60, VIEWS))
    (tmp_path / "rad.tlt").write_text("\n".join(f"{a:.8f}" for a in radians))
    args = [folder / "series.mrc", "--angles", tmp_path / "rad.tlt", "--solver", "fbp", "--quiet", "--no-preview",
            "--threads", "1"]
    code, err = run([*args, "--output", tmp_path / "r.npy"], capsys)
    assert code == 2 and "looks like radians" in err and "--radians" in err
    assert run([*args, "--output", tmp_path / "r.npy", "--radians"], capsys)[0] == 0
    assert run(base(folder, tmp_path / "d.npy", "--solver", "fbp", "--no-preview"), capsys)[0] == 0
    np.testing.assert_allclose(np.load(tmp_path / "r.npy"), np.load(tmp_path / "d.npy"), rtol=1e-4, atol=1e-4)
    (tmp_path / "small.tlt").write_text("\n".join(f"{a:.3f}" for a in np.linspace(-1, 1, VIEWS)))
    small = [folder / "series.mrc", "--angles", tmp_path / "small.tlt", "--solver", "fbp", "--quiet",
             "--no-preview", "--output", tmp_path / "s.npy"]
    assert run(small, capsys)[0] == 2
    assert run([*small, "--degrees"], capsys)[0] == 0


def test_help_shows_defaults_times_and_conventions(capsys):
    with pytest.raises(SystemExit):
        cli.main(["reconstruct", "--help"])
    text = capsys.readouterr().out
    assert "(default: 8)" in text and "(default: ddgm)" in text
    assert "s/slice" in text and "seconds per 128 x 128 slice" in text
    for solver in ("ddgm", "ddrm", "dps", "padis", "tv", "cgls", "lsqr", "algebraic", "fbp"):
        assert f"\n  {solver} " in text
    assert "conventions" in text and "counter-clockwise" in text and "--radians" in text


# ----------------------------------------------------------------------------------------------
# one noise level, in the input's units, for every solver that weighs data against a prior


def test_one_noise_level_in_input_units_reaches_every_solver(series_files, tmp_path, capsys, monkeypatch):
    import math

    from solvers.app import reconstruct

    folder, _ = series_files
    seen = {}

    def capture(series, setup, prior, writer, **kwargs):
        seen["setup"] = setup
        raise KeyboardInterrupt

    monkeypatch.setattr(reconstruct, "run_slices", capture)
    monkeypatch.setenv("LINOPS_CACHE", str(tmp_path / "cache"))
    noise = 2.0
    for solver in ("ddrm", "tv", "cgls", "lsqr"):
        code, _ = run(base(folder, tmp_path / f"{solver}.npy", "--solver", solver, "--noise", noise), capsys)
        assert code == 130
        setup = seen["setup"]
        sigma_n = noise / setup.normalisation.scale
        s = setup.solver
        if solver == "ddrm":
            assert s.sigma_y == pytest.approx(sigma_n)
        elif solver == "tv":
            assert s.weight == pytest.approx(20.0 * sigma_n**2)
        else:
            assert s.target == pytest.approx(math.sqrt(VIEWS * SIZE) * sigma_n)


def test_the_noise_estimate_is_printed_in_input_units(series_files, tmp_path, capsys):
    """The printed estimate is the estimator's on the input file, in the file's units (its accuracy on
    known noise: test_noise.py)."""
    import re

    from solvers.app.noise import estimate_noise

    folder, _ = series_files
    args = [a for a in base(folder, tmp_path / "v.npy", "--solver", "fbp", "--no-preview") if a != "--quiet"]
    assert run(args)[0] == 0
    out = capsys.readouterr().out
    printed = float(re.search(r"noise: std ([0-9.e+-]+) in the input's units, estimated", out).group(1))
    expected = estimate_noise(io.read_tilt_series(folder / "series.mrc")).sigma
    assert printed == pytest.approx(expected, rel=1e-3)
    scaled = tmp_path / "scaled.npy"
    np.save(scaled, 10 * io.read_tilt_series(folder / "series.mrc"))
    args = [scaled, "--angles", folder / "series.rawtlt", "--output", tmp_path / "w.npy", "--solver", "fbp",
            "--no-preview", "--threads", "1"]
    assert run(args)[0] == 0
    out = capsys.readouterr().out
    assert float(re.search(r"noise: std ([0-9.e+-]+) in the input's units", out).group(1)) == pytest.approx(
        10 * printed, rel=1e-3)


# ----------------------------------------------------------------------------------------------
# slices are independent: the volume does not depend on batching or workers


def test_volume_does_not_depend_on_the_batch_size(series_files, tmp_path, capsys):
    folder, _ = series_files
    args = ["--solver", "ddgm", "--steps", "3", "--gradient-steps", "2", "--no-preview"]
    assert run(base(folder, tmp_path / "b1.npy", *args, "--batch-size", "1"), capsys)[0] == 0
    assert run(base(folder, tmp_path / "b3.npy", *args, "--batch-size", "3"), capsys)[0] == 0
    np.testing.assert_array_equal(np.load(tmp_path / "b1.npy"), np.load(tmp_path / "b3.npy"))
    assert run(base(folder, tmp_path / "s1.npy", *args, "--seed", "1"), capsys)[0] == 0
    assert not np.array_equal(np.load(tmp_path / "b1.npy"), np.load(tmp_path / "s1.npy"))


def test_library_call_is_seeded_per_slice():
    """reconstruct_tilt_series: slice r's result depends on (seed, r) only, not on the batch size
    (before per-slice seeding one generator ran across batches)."""
    import priors
    from solvers.app.reconstruct import reconstruct_tilt_series
    from solvers.ddgm import DDGM
    from solvers.schedules import Geometric

    series = project_skimage(phantom(rows=3, size=17), np.linspace(-60, 60, 15)).astype(np.float32)
    solver, prior = DDGM(Geometric(3.0, 0.1, 3), gradient_steps=2), priors.load("ddgm-cells")
    one = reconstruct_tilt_series(series, np.linspace(-60, 60, 15), solver, prior, batch_size=1, progress=False)
    three = reconstruct_tilt_series(series, np.linspace(-60, 60, 15), solver, prior, batch_size=3, progress=False)
    np.testing.assert_array_equal(one, three)


def test_dask_local_cluster_gives_the_serial_volume_bit_for_bit(series_files, tmp_path, capsys):
    pytest.importorskip("distributed")
    folder, _ = series_files
    args = ["--solver", "ddgm", "--steps", "3", "--gradient-steps", "2", "--no-preview", "--batch-size", "1"]
    assert run(base(folder, tmp_path / "serial.npy", *args), capsys)[0] == 0
    code, err = run(base(folder, tmp_path / "dask.npy", *args, "--workers", "2"), capsys)
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "serial.npy"), np.load(tmp_path / "dask.npy"))


@pytest.mark.slow
def test_dask_existing_scheduler_gives_the_serial_volume(series_files, tmp_path, capsys):
    """--scheduler ADDRESS: an existing cluster (here a LocalCluster of 2 processes on loopback)."""
    import logging

    distributed = pytest.importorskip("distributed")
    folder, _ = series_files
    args = ["--solver", "dps", "--steps", "15", "--no-preview", "--batch-size", "1"]
    assert run(base(folder, tmp_path / "serial.npy", *args), capsys)[0] == 0
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                                  dashboard_address=None, silence_logs=logging.ERROR) as cluster:
        code, err = run(base(folder, tmp_path / "dask.npy", *args, "--scheduler", cluster.scheduler_address), capsys)
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "serial.npy"), np.load(tmp_path / "dask.npy"))
    code, err = run(base(folder, tmp_path / "none.npy", *args, "--scheduler", "tcp://127.0.0.1:9"), capsys)
    assert code == 2 and "--scheduler tcp://127.0.0.1:9: cannot connect" in err


def test_missing_dask_says_how_to_install(series_files, tmp_path, capsys, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "distributed", None)
    folder, _ = series_files
    code, err = run(base(folder, tmp_path / "v.npy", "--solver", "fbp", "--workers", "2"), capsys)
    assert code == 2 and "pip install 'dask[distributed]'" in err
