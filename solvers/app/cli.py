"""The command line: `demo` (the DDGM comparison) and `reconstruct` (a real tilt series).

    python -m solvers demo [--size 64] [--output out/demo]
    python -m solvers demo --task qpi           # CVDM's task: phase from defocus (TIE)
    python -m solvers reconstruct series.mrc --angles series.rawtlt --solver ddgm --output volume.mrc
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import io
from .choices import SOLVERS, TIMING_NOTE, solver_table

CONVENTIONS = """\
conventions (those of scikit-image's radon and ASTRA's 2-D parallel-beam geometry):
  tilt series   (n_views, rows, cols): one projection image per tilt angle, rows running along the tilt
                axis (an MRC stack: nz = views, ny = rows, nx = cols). A 2-D file is one sinogram
                (n_views, n_detector).
  volume        (rows, thickness, cols): slice r is reconstructed from row r of every view. In a slice
                (thickness x cols, row 0 at the top), x = col points right and y points up; the beam at
                0 degrees runs down the columns, so detector column k sees slice column k.
  angles        degrees, counter-clockwise from +x: at tilt theta, the point (x, y) of a slice lands on
                the detector at s = x cos(theta) + y sin(theta), the rays running along 90 + theta
                degrees. So skimage.transform.radon(slice, theta=angles).T is the sinogram (views x
                detector) of a slice (for odd sizes; scikit-image rotates about pixel N // 2), and ASTRA's
                create_proj_geom('parallel', 1.0, cols, numpy.radians(angles)) with a (thickness, cols)
                volume geometry gives the same projections. Angles within +-3.2 that span more than 0.5
                look like radians and are refused unless --radians (convert) or --degrees (keep) is given.
  detector      column k of a view sits at s = k - (cols - 1) / 2 pixels from the tilt axis, which runs
                through the centre of the detector; voxels are the size of a detector pixel.
  units         the volume is in the input's units (line integrals per pixel); the noise level --noise
                is the std of the input's noise, in the input's units.

nothing lost, nothing overwritten:
  the volume is written slice by slice into OUT.partial.EXT (memory-mapped) with a sidecar
  OUT.EXT.partial.json listing the finished slices, and renamed to OUT only when complete; Ctrl-C keeps the
  finished slices, `--resume` continues. An existing output is replaced only with --overwrite, an input never.
"""


class _Formatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows each option's default, except where there is none to show (flags, and options whose help
    says what their default depends on)."""

    def _get_help_string(self, action):
        if action.default is None or action.default is False:
            return action.help
        return super()._get_help_string(action)


def _int_at_least(low: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def _float_in(low: float, high: float = float("inf"), *, include_low: bool = False):
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = float("nan")
        ok = (value >= low if include_low else value > low) and value <= high
        if not ok:
            bound = f"{'>=' if include_low else '>'} {low:g}" + (f" and <= {high:g}" if high < float("inf") else "")
            raise argparse.ArgumentTypeError(f"expected a number {bound}, got {text!r}")
        return value

    parse.__name__ = "number"
    return parse


def free_cores() -> tuple[int, int, float]:
    """(threads to use, cores this process may use, 1-minute load average): the cores not already busy."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:
        cores = os.cpu_count() or 1
    try:
        load = os.getloadavg()[0]
    except OSError:
        load = 0.0
    return max(1, min(cores, cores - int(load + 0.5))), cores, load


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m solvers", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    demo = sub.add_parser("demo", help="run the DDGM comparison on a held-out test image", formatter_class=_Formatter)
    demo.add_argument("--output", type=Path, default=Path("out/demo"), help="folder for the figure and tables")
    demo.add_argument("--task", choices=("tomography", "qpi"), default="tomography",
                      help="tomography: the DDGM comparison; qpi: CVDM's phase-from-defocus comparison")
    demo.add_argument("--size", type=_int_at_least(8), default=64,
                      help="image side (128 is the DDGM paper's; slower first run)")
    demo.add_argument("--views", type=_int_at_least(2), default=128)
    demo.add_argument("--max-tilt", type=_float_in(0, 90), default=60.0, help="degrees")
    demo.add_argument("--snr", type=_float_in(0), default=10.0)
    demo.add_argument("--image", type=_int_at_least(0), default=0, help="index of the held-out test image")
    demo.add_argument("--seed", type=_int_at_least(0), default=0)
    demo.add_argument("--quiet", action="store_true", help="no progress bars")

    rec = sub.add_parser(
        "reconstruct", help="reconstruct a real tilt series slice by slice", formatter_class=_Formatter,
        description="Reconstruct a tilt series slice by slice (each slice on its own: in-process, or over Dask).",
        epilog=f"solvers ({TIMING_NOTE}):\n{solver_table()}\n\n{CONVENTIONS}",
    )
    rec.add_argument("tilt_series", type=Path, help=f"MRC, TIFF, NPY/NPZ or PNG; supported: {', '.join(io.SUPPORTED)}")
    angles = rec.add_mutually_exclusive_group(required=True)
    angles.add_argument("--angles", type=Path, help="IMOD .rawtlt/.tlt file, one angle (degrees) per line")
    angles.add_argument(
        "--angles-deg",
        help="'start:stop:count' or a comma list of degrees; write --angles-deg=-60:60:61 for a negative start",
    )
    unit = rec.add_mutually_exclusive_group()
    unit.add_argument("--radians", action="store_true", help="the angles are in radians (converted)")
    unit.add_argument("--degrees", action="store_true", help="the angles are degrees even if they look like radians")

    out = rec.add_argument_group("output")
    out.add_argument("--output", type=Path, required=True, help="volume file: .mrc, .tif or .npy")
    out.add_argument("--preview", type=Path, help="preview PNG (default: OUTPUT_preview.png beside the output)")
    out.add_argument("--no-preview", action="store_true", help="write no preview")
    out.add_argument("--overwrite", action="store_true", help="replace an existing output (never an input)")
    out.add_argument("--resume", action="store_true", help="continue an interrupted run (OUTPUT.partial.*)")
    out.add_argument("--pixel-size", type=_float_in(0), default=None,
                     help="detector pixel = voxel size in angstrom for the output header (default: the input's "
                          "header, else 1)")

    sol = rec.add_argument_group("solver")
    sol.add_argument("--solver", choices=list(SOLVERS), default="ddgm", help="see the table below")
    sol.add_argument("--prior", help="a bundled prior (python -m priors list) or NAME.safetensors from "
                                     "`python -m priors train` (default: per solver, see the table)")
    sol.add_argument("--noise", type=_float_in(0), default=None,
                     help="noise std of the input, in its units (default: estimated from the data, and printed)")
    sol.add_argument("--steps", type=_int_at_least(1), default=None,
                     help="noise levels (ddgm, ddrm, dps, padis) or iterations (algebraic, cgls, lsqr, tv); "
                          "default: per solver, see the table")
    sol.add_argument("--gradient-steps", type=_int_at_least(0), default=25, help="DDGM's K")
    sol.add_argument("--sigma-max", type=_float_in(0), default=None,
                     help="first noise level, normalised units (default: ddgm, dps 3; ddrm 30; padis: the prior's "
                          "range; clipped to the prior's range)")
    sol.add_argument("--sigma-min", type=_float_in(0), default=None, help="last noise level (default: 0.03)")
    sol.add_argument("--eta", type=_float_in(0, 1, include_low=True), default=1.0, help="DDRM's eta")
    sol.add_argument("--zeta", type=_float_in(0, include_low=True), default=None,
                     help="data step of dps (default 5 / steps) and padis (default 5 / ||A||)")
    sol.add_argument("--tv-strength", type=_float_in(0, include_low=True), default=20.0,
                     help="TV: lambda = strength x sigma^2 in normalised units")
    sol.add_argument("--svd", choices=["exact", "randomized"], default="exact",
                     help="DDRM's SVD: exact (minutes once, cached on disk) or randomized (top --svd-rank)")
    sol.add_argument("--svd-rank", type=_int_at_least(1), default=None,
                     help="rank of the randomized SVD (with --svd randomized: default 1000)")
    sol.add_argument("--thickness", type=_int_at_least(1), default=None,
                     help="slab thickness in pixels (default: the detector count)")
    sol.add_argument("--tile", type=_int_at_least(8), default=128, help="tile size of the prior for wide slices")
    sol.add_argument("--stride", type=_int_at_least(1), default=96, help="tile stride (at most --tile)")
    sol.add_argument("--seed", type=_int_at_least(0), default=0,
                     help="slice r's randomness comes from (seed, r): the volume does not depend on batches or workers")

    run = rec.add_argument_group("execution")
    run.add_argument("--batch-size", type=_int_at_least(1), default=8,
                     help="slices per task (written together; each slice is solved on its own)")
    run.add_argument("--threads", type=_int_at_least(1), default=None,
                     help="torch threads (per worker with --workers/--scheduler); default: the free cores "
                          "(cores minus the load average), shared among local workers")
    dask = run.add_mutually_exclusive_group()
    dask.add_argument("--workers", type=_int_at_least(1), default=None,
                      help="run on a local Dask cluster of N worker processes (pip install 'dask[distributed]')")
    dask.add_argument("--scheduler", default=None, help="run on an existing Dask cluster, e.g. tcp://host:8786")
    run.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    run.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def check_device(spec: str) -> str:
    import torch

    if spec == "cpu":
        return spec
    if spec == "cuda" or spec.startswith("cuda:"):
        index = spec.partition(":")[2] or "0"
        if not index.isdigit():
            raise ValueError(f"--device {spec}: expected cpu, cuda or cuda:N")
        if not torch.cuda.is_available():
            build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
            raise ValueError(f"--device {spec}: torch sees no CUDA GPU on this machine (torch {torch.__version__}, "
                             f"{build}); use --device cpu")
        if int(index) >= torch.cuda.device_count():
            raise ValueError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) here")
        return spec
    raise ValueError(f"--device {spec}: expected cpu, cuda or cuda:N")


def _demo(args) -> int:
    if args.task == "qpi":
        from .qpi import QPIDemoSettings, run_qpi_demo

        run_qpi_demo(QPIDemoSettings(image=args.image, seed=args.seed), args.output, progress=not args.quiet)
        return 0
    from .demo import DemoSettings, run_demo

    settings = DemoSettings(size=args.size, views=args.views, max_tilt_deg=args.max_tilt, snr=args.snr,
                            image=args.image, seed=args.seed)
    run_demo(settings, args.output, progress=not args.quiet)
    return 0


def _outputs(args, inputs) -> tuple[Path, Path | None]:
    """Check the output and preview paths before any work (see io.check_writable_path)."""
    output = args.output
    partial, sidecar = io.partial_paths(output)
    for path, option in ((output, "--output"), (partial, "--output"), (sidecar, "--output")):
        io.check_writable_path(path, option, inputs=inputs, overwrite=True, suffixes=None)
    if output.suffix.lower() not in io.WRITABLE:
        raise ValueError(f"--output: cannot write {output.suffix or 'a file without extension'!r} ({output}); "
                         f"use one of {', '.join(io.WRITABLE)}")
    if output.exists() and not args.overwrite:
        what = "is complete" if not partial.exists() else "exists"
        raise FileExistsError(f"--output {output} {what}; pass --overwrite to replace it")
    if args.resume and not (partial.exists() and sidecar.exists()):
        raise FileNotFoundError(f"--resume: no unfinished reconstruction for {output} (expected {partial} and "
                                f"{sidecar}); start without --resume")
    if not args.resume and (partial.exists() or sidecar.exists()) and not args.overwrite:
        raise FileExistsError(f"an unfinished reconstruction of {output} exists ({partial}); continue it with "
                              "--resume, or start over with --overwrite")
    preview = None
    if not args.no_preview:
        preview = args.preview or output.with_name(f"{output.stem}_preview.png")
        if preview.suffix.lower() != ".png":
            raise ValueError(f"--preview: the preview is a PNG image, got {preview}")
        io.check_writable_path(preview, "--preview", inputs=[*inputs, output, partial, sidecar],
                               overwrite=args.overwrite)
    return output, preview


def _record(args, series, angles, solver, prior_label, normalisation, sigma, geometry) -> dict:
    """Everything that changes the result, for --resume to compare."""
    return {
        "input": str(args.tilt_series.resolve()),
        "input_bytes": args.tilt_series.stat().st_size,
        "shape": list(series.shape),
        "angles_deg": [round(float(a), 6) for a in angles],
        "solver": repr(solver),
        "prior": prior_label,
        "seed": args.seed,
        "geometry": repr(geometry),
        "tile": [args.tile, args.stride],
        "normalisation": [normalisation.offset, normalisation.scale],
        "noise": sigma,
    }


def _reconstruct(args) -> int:
    import torch

    from . import choices, spectral
    from .noise import estimate_noise
    from .reconstruct import (
        Normalisation,
        SlabGeometry,
        SliceSetup,
        applies_per_slice,
        run_slices,
        sample_rows,
        slice_operator,
    )
    from .tomography import svd_cache_dir

    # -- every option and file checked before any work --------------------------------------------------
    log = (lambda *a, **k: None) if args.quiet else print
    device = check_device(args.device)
    if args.stride > args.tile:
        raise ValueError(f"--stride {args.stride} exceeds --tile {args.tile}; tiles must overlap or touch")
    if args.sigma_max is not None and args.sigma_min is not None and not args.sigma_max > args.sigma_min:
        raise ValueError(f"--sigma-max ({args.sigma_max:g}) must exceed --sigma-min ({args.sigma_min:g})")
    if args.svd == "exact" and args.svd_rank is not None:
        raise ValueError("--svd-rank applies to --svd randomized; add --svd randomized or drop --svd-rank")
    choice = SOLVERS[args.solver]
    if args.prior is not None and not choice.needs_prior:
        raise ValueError(f"--solver {args.solver} uses no prior; drop --prior {args.prior}")
    series = io.open_tilt_series(args.tilt_series)
    n_views, rows, cols = series.shape
    if args.angles is not None:
        angles, source = io.read_angles(args.angles), str(args.angles)
    else:
        angles, source = io.parse_angles(args.angles_deg), "--angles-deg"
    unit = "radians" if args.radians else "degrees" if args.degrees else "auto"
    angles = io.check_angles(angles, n_views, source, unit)
    if cols < 2:
        raise ValueError(f"{args.tilt_series}: {cols} detector column; need at least 2")
    inputs = [args.tilt_series, args.angles]
    if args.prior is not None and args.prior.endswith(".safetensors"):
        inputs += [Path(args.prior), Path(args.prior).with_suffix(".json")]
    output, preview = _outputs(args, inputs)
    loaded = None
    if choice.needs_prior:
        loaded = choices.load_prior(args.prior or choice.default_prior, device=device)
        choices.check_fit(args.solver, loaded)
    executor = None
    if args.workers is not None or args.scheduler is not None:
        from .distributed import _require_distributed

        _require_distributed()
    geometry = SlabGeometry(args.thickness)
    angles_key = tuple(float(a) for a in angles)
    A = slice_operator(geometry, cols, angles_key, device)
    prior = choices.in_normalised_units(loaded) if loaded is not None else None
    svd_request = None
    if args.solver == "ddrm":
        algorithm = spectral.svd_algorithm(spectral.SVDMethod(args.svd), args.svd_rank or 1000)
        svd_request = spectral.SVDRequest(algorithm, str(svd_cache_dir()))
    settings = choices.Settings(args.solver, args.steps, args.gradient_steps, args.sigma_max, args.sigma_min,
                                args.eta, args.zeta, args.tv_strength, svd_request)
    choices.build_solver(settings, A=A, prior=prior, sigma=1.0, log=lambda *a: None)  # its checks, before work

    # -- threads, units, noise ----------------------------------------------------------------------------
    threads, cores, load = free_cores()
    threads = args.threads or max(1, threads // (args.workers or 1))
    if args.scheduler is None:
        torch.set_num_threads(threads)
        log(f"threads: {threads} per {'worker' if args.workers else 'process'} ({cores} cores, load {load:.1f}; "
            "set --threads)")
    normalisation = Normalisation.from_fbp(series.sinograms(sample_rows(rows)), A)
    if args.noise is None:
        estimate = estimate_noise(series.data)
        sigma = estimate.sigma
        log(f"noise: std {sigma:.4g} in the input's units, estimated from the data ({estimate.method}, "
            f"{estimate.samples} values); set it with --noise")
    else:
        sigma = args.noise
        log(f"noise: std {sigma:.4g} in the input's units (--noise)")
    sigma_n = sigma / normalisation.scale
    log(f"normalised units: x_n = (x - {normalisation.offset:.4g}) / {normalisation.scale:.4g}; "
        f"noise std {sigma_n:.4g} in them")
    if svd_request is not None:
        spectral.prepare_svd(A, svd_request, log=log, progress=not args.quiet)
    solver = choices.build_solver(settings, A=A, prior=prior, sigma=sigma_n, log=log)
    geometry = geometry.with_projector_method(A, rows, applies_per_slice(solver))
    setup = SliceSetup(angles_key, cols, geometry, solver, normalisation, seed=args.seed,
                       threads=args.threads if args.scheduler else threads, device=device, tile=args.tile,
                       stride=args.stride, svd=svd_request)
    voxel = args.pixel_size or series.voxel_size or 1.0
    record = _record(args, series, angles, solver, loaded.label if loaded else None, normalisation, sigma, geometry)
    shape = (rows, *A.in_shape[-2:])

    # -- the run ------------------------------------------------------------------------------------------
    writer = io.VolumeWriter(output, shape, record=record, voxel_size=voxel, resume=args.resume)
    left = len(writer.remaining)
    if args.resume:
        log(f"resuming {writer.partial}: {rows - left} of {rows} slices done")
    steps = args.steps or choice.default_steps or 1
    per_slice = choice.seconds_per_slice * (shape[1] * shape[2]) / 128**2 * steps / (choice.default_steps or 1)
    log(f"{args.solver}: {left} slices of {shape[1]} x {shape[2]}, about {per_slice:.2g} s each at 1 thread "
        f"(measured at 128 x 128); the bar shows the time left")
    try:
        if args.workers is not None or args.scheduler is not None:
            from .distributed import DaskExecutor

            executor = DaskExecutor(workers=args.workers, scheduler=args.scheduler, threads=args.threads, log=log)
        run_slices(series, setup, prior, writer, batch_size=args.batch_size, executor=executor,
                   progress=not args.quiet, log=log)
    except KeyboardInterrupt:
        writer.close()
        print(f"\ninterrupted: {len(writer.done)} of {rows} slices are kept in {writer.partial} (listed in "
              f"{writer.sidecar}); run the same command with --resume to continue", file=sys.stderr)
        return 130
    finally:
        if executor is not None:
            executor.close()
    out = writer.finish()
    written = [str(out)]
    if preview is not None:
        from priors.data.files import open_array

        from .figures import volume_preview

        volume = open_array(out).data
        volume_preview(volume, preview, title=f"{args.solver} reconstruction of {args.tilt_series.name}",
                       voxel_size=voxel if (args.pixel_size or series.voxel_size) else None)
        written.append(str(preview))
        del volume
    print(f"wrote {' and '.join(written)}: volume {shape} (rows, thickness, cols), voxel {voxel:g} A")
    return 0


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    try:
        return {"demo": _demo, "reconstruct": _reconstruct}[args.command](args)
    except (FileNotFoundError, FileExistsError, PermissionError, ValueError, KeyError, ImportError, MemoryError,
            ConnectionError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        print(f"error: {message}", file=sys.stderr)
        return 2
